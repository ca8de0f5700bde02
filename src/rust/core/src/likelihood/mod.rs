//! Likelihoods: the model of a cell's values given the decoder's output. Each family is
//! one file holding all of it (its loss and gradient per cell, the parameter blocks it
//! adds beside the output layer, how it generates values) behind one trait, `Family`,
//! and one entry in the registry (`register!`). Everything else (the fused step, the reference
//! engine, inference, the block layout, the names R sees) reads the family from there.
//!
//! Two kinds of family exist. *Scaled* families (`counts: false`) read and reconstruct
//! per-gene min-max-scaled values: the target is the scaled input, the output layer's
//! activation gives the reconstruction, and generation decodes values on the training
//! scale. *Count* families (`counts: true`) read raw counts (the encoder sees log1p of
//! library-size-normalised counts), the output layer's pre-activations are turned into
//! per-gene proportions by a softmax, the means are proportions times the library size
//! (`count.rs`), and generation draws integer counts.

use std::any::Any;

use crate::Stream;

use crate::activation::Activation;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::team::Team;

mod count;
mod driver;
mod special;
#[cfg(test)]
mod tests;

pub use driver::LossWork;

/// Declares each family's module and registers the family.
macro_rules! register {
    ($($module:ident::$family:ident),* $(,)?) => {
        $(mod $module;)*
        /// Every likelihood, in the order R lists them.
        static LIKELIHOODS: &[&dyn Likelihood] = &[$(&$module::$family),*];
    };
}

// The registry: a family's module and its type, one entry each.
register!(bce::Bce, mse::Mse, poisson::Poisson, nb::Nb, zinb::Zinb, zip::Zip);

/// Most dense heads a family may add beside the output layer.
pub const MAX_HEADS: usize = 2;
/// Most per-gene parameter vectors a family may have.
pub const MAX_GENE_PARAMS: usize = 2;

/// What a family is, for the rest of the crate and for R.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    pub name: &'static str,
    /// One line for users.
    pub description: &'static str,
    /// Reads raw counts and generates integer counts (else: scaled values).
    pub counts: bool,
    /// Dense layers beside the output layer (`n_genes` units each, from the decoder's
    /// last hidden layer), e.g. ZINB's dropout logits. Weight order: after the decoder.
    pub heads: &'static [&'static str],
    /// Vectors of one value per gene, starting at 0 (e.g. NB's log dispersion). Weight
    /// order: after the heads.
    pub gene_params: &'static [&'static str],
}

/// One cell of a batch, as a family sees it. Slices are `n_genes` long unless said.
pub struct Row<'a> {
    /// The output layer's pre-activations.
    pub logits: &'a [f32],
    /// The family's heads' pre-activations (`Info::heads` order; the rest empty).
    pub heads: [&'a [f32]; MAX_HEADS],
    /// Scaled families: the scaled input, the reconstruction target (else empty).
    pub target: &'a [f32],
    /// Count families: the cell's counts (else empty).
    pub counts: &'a [f32],
    /// Count families: the natural log of the cell's library size.
    pub log_library: f64,
    /// The output layer's activation.
    pub activation: Activation,
    /// Gradients are of the mean over the batch's cells: `1 / cells`.
    pub scale: f32,
}

/// Where a family writes the gradient of one cell's loss, times `Row::scale`.
pub struct RowGrad<'a> {
    pub logits: &'a mut [f32],
    /// With respect to each head's pre-activations.
    pub heads: [&'a mut [f32]; MAX_HEADS],
    /// With respect to each per-gene parameter (summed over cells by the caller).
    pub genes: [&'a mut [f32]; MAX_GENE_PARAMS],
}

/// A likelihood family. Implementations are unit structs registered in `LIKELIHOODS`.
pub trait Family: Sync + Send + 'static {
    const INFO: Info;
    /// Values computed once per batch from the per-gene parameters (e.g. special
    /// functions of the dispersion).
    type Genes: Default + Send + Sync + 'static;
    /// Buffers one thread reuses from cell to cell.
    type Scratch: Default;

    /// Fills `genes` from the per-gene parameters (`Info::gene_params` order).
    fn prepare(&self, team: &Team, params: &[&[f32]], genes: &mut Self::Genes) {
        let _ = (team, params, genes);
    }

    /// The loss of one cell (its negative log-likelihood, up to a constant for scaled
    /// families), and its gradient into `grad`.
    fn row(&self, row: &Row<'_>, genes: &Self::Genes, scratch: &mut Self::Scratch, grad: &mut RowGrad<'_>) -> f64;

    /// Values of one generated cell into `out`: integer counts drawn from the fitted
    /// distribution (count families, from `rng`), or the reconstruction on the scaled
    /// range (scaled families).
    fn generate(&self, row: &Row<'_>, genes: &Self::Genes, scratch: &mut Self::Scratch, rng: &mut Stream, out: &mut [f64]);

    /// The fitted distribution's mean for one cell into `out`: expected counts at the
    /// row's library size (count families), or the reconstruction on the scaled range.
    fn mean(&self, row: &Row<'_>, genes: &Self::Genes, scratch: &mut Self::Scratch, out: &mut [f64]);
}

/// Per-gene values cached between calls (a family's `Genes`).
pub type GeneCache = Option<Box<dyn Any + Send + Sync>>;

/// The decoder's outputs for a batch: row-major `[n, n_genes]` each.
pub struct Outputs<'a> {
    pub n: usize,
    pub n_genes: usize,
    pub logits: &'a [f32],
    pub heads: &'a [Vec<f32>],
    pub activation: Activation,
}

/// A family seen from the rest of the crate: whole batches, without its types.
pub trait Likelihood: Sync + Send {
    fn info(&self) -> Info;

    /// Mean loss over the batch's cells; the gradients, and the column sums of those
    /// with respect to the output layer and the heads (their biases' gradients) and
    /// the per-gene parameters, into `work`.
    fn loss(&self, team: &Team, out: &Outputs<'_>, batch: &Batch, params: &[&[f32]], work: &mut LossWork) -> f64;

    /// Generates one cell per row of `out` (`log_library[r]`: ln library size of cell
    /// `r`, for count families), in row order, handing each to `sink(r, values)`:
    /// draws, or with `means` the distribution's means (`Family::mean`, no draws).
    /// `cache` keeps the per-gene values for later calls with the same parameters.
    #[allow(clippy::too_many_arguments)]
    fn generate(
        &self,
        team: &Team,
        out: &Outputs<'_>,
        params: &[&[f32]],
        log_library: &[f64],
        cache: &mut GeneCache,
        rng: &mut Stream,
        means: bool,
        sink: &mut dyn FnMut(usize, &[f64]) -> Result<()>,
    ) -> Result<()>;
}

impl<F: Family> Likelihood for F {
    fn info(&self) -> Info {
        F::INFO
    }

    fn loss(&self, team: &Team, out: &Outputs<'_>, batch: &Batch, params: &[&[f32]], work: &mut LossWork) -> f64 {
        driver::batch_loss(self, team, out, batch, params, work)
    }

    fn generate(
        &self,
        team: &Team,
        out: &Outputs<'_>,
        params: &[&[f32]],
        log_library: &[f64],
        cache: &mut GeneCache,
        rng: &mut Stream,
        means: bool,
        sink: &mut dyn FnMut(usize, &[f64]) -> Result<()>,
    ) -> Result<()> {
        driver::generate(self, team, out, params, log_library, cache, rng, means, sink)
    }
}

impl dyn Likelihood {
    pub fn name(&self) -> &'static str {
        self.info().name
    }

    /// Whether the model reads raw counts (and generates counts).
    pub fn is_count(&self) -> bool {
        self.info().counts
    }
}

impl std::fmt::Debug for dyn Likelihood {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl PartialEq for dyn Likelihood {
    fn eq(&self, other: &Self) -> bool {
        self.name() == other.name()
    }
}

/// Every registered likelihood.
pub fn all() -> &'static [&'static dyn Likelihood] {
    LIKELIHOODS
}

/// The likelihood called `name`.
pub fn by_name(name: &str) -> Result<&'static dyn Likelihood> {
    LIKELIHOODS.iter().copied().find(|l| l.name() == name).ok_or_else(|| {
        let names: Vec<_> = LIKELIHOODS.iter().map(|l| l.name()).collect();
        Error::invalid("likelihood", format!("'{name}' is unknown; use one of {}", names.join(", ")))
    })
}
