//! Inference with stored weights: latent posteriors of cells, and decoding of latent
//! codes into cells (values on the training scale, or integer counts drawn from the
//! likelihood). A `Model` is built once from the weights and keeps its team and
//! buffers, and runs the same forward code as training (`network.rs`), in chunks of
//! cells.

use crate::Stream;
use rand::SeedableRng;

use crate::buffers::{elements, from_fn, with_capacity, zeros};
use crate::cpu::{numeric_team, FlushDenormals};
use crate::data::{Batch, Conditions, Dataset, Scaling};
use crate::error::{Error, Result};
use crate::likelihood::GeneCache;
use crate::network::{Acts, Network};
use crate::spec::ModelSpec;
use crate::team::Team;
use crate::weights::DenseWeights;

/// Cells per chunk of the forward pass.
const CHUNK: usize = 1024;

/// Integer counts as a sparse genes × samples matrix in CSC form (R's dgCMatrix slots).
/// The counts are kept as `u32` (a third less memory to fill than doubles, for
/// results of gigabytes); the rare count above `u32::MAX` is held in `large` (its
/// position in `x`, which holds 0 there, and its value). `values_into` writes the
/// doubles R needs.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseCounts {
    pub p: Vec<i32>,
    pub i: Vec<i32>,
    pub x: Vec<u32>,
    pub large: Vec<(usize, f64)>,
}

impl SparseCounts {
    /// Number of non-zero counts.
    pub fn len(&self) -> usize {
        self.x.len()
    }

    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    /// The counts as doubles into `dest` (of length `len()`).
    pub fn values_into(&self, dest: &mut [f64]) {
        dest.iter_mut().zip(&self.x).for_each(|(d, &x)| *d = x as f64);
        self.patch_large(dest);
    }

    /// The counts above `u32::MAX` into `dest`, which holds the others as doubles.
    pub fn patch_large(&self, dest: &mut [f64]) {
        for &(k, v) in &self.large {
            dest[k] = v;
        }
    }

    /// A count appended to the current cell (`v > 0`).
    #[inline(always)]
    fn push(&mut self, gene: usize, v: f64) {
        self.i.push(gene as i32);
        if v <= u32::MAX as f64 {
            self.x.push(v as u32);
        } else {
            self.large.push((self.x.len(), v));
            self.x.push(0);
        }
    }
}

/// A fitted model ready for inference.
pub struct Model {
    net: Network,
    team: Team,
    acts: Acts,
    batch: Batch,
    genes: GeneCache,
    /// Asked between chunks; true ends the call with `Error::Interrupted`.
    interrupt: Option<fn() -> bool>,
}

impl Model {
    /// The model of `weights` (checked against `spec`), computing on `threads` threads.
    pub fn new(spec: &ModelSpec, weights: &[DenseWeights], threads: usize) -> Result<Model> {
        if threads == 0 {
            return Err(Error::invalid("num.threads", "must be a positive integer"));
        }
        Ok(Model {
            net: Network::new(spec, weights)?,
            team: numeric_team(threads)?,
            acts: Acts::default(),
            batch: Batch::default(),
            genes: None,
            interrupt: None,
        })
    }

    /// Lets `check` (e.g. "has the user pressed Ctrl-C?") end long encodings and
    /// decodings between chunks of cells.
    pub fn set_interrupt(&mut self, check: fn() -> bool) {
        self.interrupt = Some(check);
    }

    fn interrupted(&self, start: usize) -> Result<()> {
        match self.interrupt {
            Some(check) if start > 0 && check() => Err(Error::Interrupted),
            _ => Ok(()),
        }
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.net.spec
    }

    /// Posterior q(z|x) of every cell of `data`: (`z_mean`, `z_log_var`), each row-major
    /// `[cells, latent]`.
    pub fn encode(&mut self, data: &Dataset) -> Result<(Vec<f32>, Vec<f32>)> {
        let _flush = FlushDenormals::new();
        self.net.spec.check_data(data)?;
        let (n, l) = (data.n_cells(), self.net.spec.latent_dim);
        const WHAT: &str = "the latent means and log-variances";
        let values = elements(&[n, l], WHAT)?;
        let mut means = with_capacity(values, WHAT)?;
        let mut log_vars = with_capacity(values, WHAT)?;
        let cells = from_fn(n, "the cell indices", |i| i)?;
        self.net.reserve(&mut self.acts, n.min(CHUNK), false)?;
        for (c, chunk) in cells.chunks(CHUNK).enumerate() {
            self.interrupted(c)?;
            data.gather_with(chunk, &mut self.batch, Some(&self.team))?;
            self.net.encode(&self.team, &self.batch.input, chunk.len(), &mut self.acts, None);
            means.extend_from_slice(&self.acts.mean[..chunk.len() * l]);
            log_vars.extend_from_slice(&self.acts.log_var[..chunk.len() * l]);
        }
        Ok((means, log_vars))
    }

    /// Decodes latent codes `z` (row-major `[n, latent]`) with the cells' `conditions`
    /// (none for a plain VAE), chunk by chunk, handing each chunk's first row index and
    /// size to `each` once the decoder's outputs are in `self.acts`.
    fn decode_chunks(
        &mut self,
        z: &[f32],
        conditions: &Conditions,
        mut each: impl FnMut(&mut Self, usize, usize) -> Result<()>,
    ) -> Result<usize> {
        let n = self.check_codes(z, conditions)?;
        let l = self.net.spec.latent_dim;
        self.net.reserve(&mut self.acts, n.min(CHUNK), false)?;
        for start in (0..n).step_by(CHUNK) {
            self.interrupted(start)?;
            let m = CHUNK.min(n - start);
            let cond = conditions.range(start, m)?;
            self.net.set_latent(&z[start * l..(start + m) * l], m, &cond, &mut self.acts);
            self.net.decode(&self.team, m, &mut self.acts, None);
            each(self, start, m)?;
        }
        Ok(n)
    }

    /// Decodes latent codes of a scaled-likelihood model and undoes the scaling.
    /// Returns the values of gene `g` of sample `i` at `i * genes + g`
    /// (`cells_in_rows = false`) or `g * n + i` (`true`).
    pub fn decode(&mut self, z: &[f32], conditions: &Conditions, scaling: &Scaling, cells_in_rows: bool) -> Result<Vec<f64>> {
        let _flush = FlushDenormals::new();
        if self.net.spec.likelihood.is_count() {
            return Err(Error::invalid("likelihood", "is a count likelihood: use decode_counts"));
        }
        if scaling.n_genes() != self.net.spec.n_genes {
            return Err(Error::LengthMismatch { field: "minmax", got: scaling.n_genes(), expected: self.net.spec.n_genes });
        }
        self.decode_dense(z, conditions, &[], false, cells_in_rows, "the decoded cells", |j, v| scaling.invert(j, v as f32))
    }

    /// The decoded values of every code in `z` (the likelihood's reconstruction, or its
    /// means with `means`), each mapped by `value(gene, v)`, as a dense matrix laid out
    /// as `decode` says.
    #[allow(clippy::too_many_arguments)]
    fn decode_dense(
        &mut self,
        z: &[f32],
        conditions: &Conditions,
        log_library: &[f64],
        means: bool,
        cells_in_rows: bool,
        what: &'static str,
        value: impl Fn(usize, f64) -> f64,
    ) -> Result<Vec<f64>> {
        let n = z.len() / self.net.spec.latent_dim.max(1);
        let g = self.net.spec.n_genes;
        let mut out = elements(&[n, g], what).and_then(|len| zeros::<f64>(len, what))?;
        let mut rng = Stream::seed_from_u64(0); // unused: reconstructions and means draw nothing
        self.decode_chunks(z, conditions, |model, start, m| {
            let out_ref = &mut out;
            let mut sink = |r: usize, values: &[f64]| {
                let i = start + r;
                for (j, &v) in values.iter().enumerate() {
                    out_ref[if cells_in_rows { j * n + i } else { i * g + j }] = value(j, v);
                }
                Ok(())
            };
            let lib = if log_library.is_empty() { &[][..] } else { &log_library[start..start + m] };
            model.generate_rows(m, lib, &mut rng, means, &mut sink)
        })?;
        Ok(out)
    }

    /// Number of codes in `z`, after checking that `log_library` has one finite value
    /// per code.
    fn check_library(&self, z: &[f32], log_library: &[f64]) -> Result<usize> {
        let n = z.len() / self.net.spec.latent_dim.max(1);
        if log_library.len() != n {
            return Err(Error::LengthMismatch { field: "library sizes", got: log_library.len(), expected: n });
        }
        if log_library.iter().any(|v| !v.is_finite()) {
            return Err(Error::invalid("library sizes", "must be positive and finite"));
        }
        Ok(n)
    }

    /// Decodes latent codes of a count model and draws integer counts from the fitted
    /// distribution with mean `library size × softmax(output)`. `log_library[s]` is the
    /// natural log of sample `s`'s library size; `seed` fixes the draws.
    pub fn decode_counts(&mut self, z: &[f32], conditions: &Conditions, log_library: &[f64], seed: u64) -> Result<SparseCounts> {
        let _flush = FlushDenormals::new();
        if !self.net.spec.likelihood.is_count() {
            return Err(Error::invalid("likelihood", "is not a count likelihood"));
        }
        let n = self.check_library(z, log_library)?;
        let mut rng = Stream::seed_from_u64(seed);
        let mut out = SparseCounts { p: with_capacity(n + 1, "the generated counts")?, ..Default::default() };
        out.p.push(0);
        self.decode_chunks(z, conditions, |model, start, m| {
            let out_ref = &mut out;
            let mut sink = |_: usize, values: &[f64]| {
                let nonzero = values.iter().filter(|&&x| x > 0.0).count();
                let want = out_ref.x.len() + nonzero;
                let room = |_| Error::out_of_memory::<u64>(want, "the generated counts");
                out_ref.i.try_reserve(nonzero).map_err(room)?;
                out_ref.x.try_reserve(nonzero).map_err(room)?;
                for (j, &x) in values.iter().enumerate() {
                    if x > 0.0 {
                        out_ref.push(j, x);
                    }
                }
                if out_ref.x.len() > i32::MAX as usize {
                    return Err(Error::invalid("num_samples", "gives more non-zero counts than a dgCMatrix holds"));
                }
                out_ref.p.push(out_ref.x.len() as i32);
                Ok(())
            };
            model.generate_rows(m, &log_library[start..start + m], &mut rng, false, &mut sink)?;
            // after the first chunk, room for all cells at its density (and a little
            // more), rather than by doublings that copy gigabytes
            let done = start + m;
            if start == 0 && done < n && !out.x.is_empty() {
                let want = (out.x.len() as f64 / done as f64 * n as f64 * 1.05) as usize;
                if want > out.x.capacity() {
                    let extra = want - out.x.len();
                    // a failed reservation is not an error: growing by doubling still works
                    let _ = out.i.try_reserve_exact(extra).and_then(|_| out.x.try_reserve_exact(extra));
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// Decodes latent codes of a count model into the fitted distribution's means at
    /// library sizes `exp(log_library)`: normalised expression (no draws). Returns the
    /// value of gene `g` of sample `i` at `g * n + i` (`cells_in_rows = true`) or
    /// `i * genes + g`.
    pub fn decode_means(&mut self, z: &[f32], conditions: &Conditions, log_library: &[f64], cells_in_rows: bool) -> Result<Vec<f64>> {
        let _flush = FlushDenormals::new();
        if !self.net.spec.likelihood.is_count() {
            return Err(Error::invalid("likelihood", "is not a count likelihood: use decode"));
        }
        self.check_library(z, log_library)?;
        self.decode_dense(z, conditions, log_library, true, cells_in_rows, "the decoded means", |_, v| v)
    }

    /// The likelihood's values of the `m` decoded cells in `self.acts`.
    fn generate_rows(
        &mut self,
        m: usize,
        log_library: &[f64],
        rng: &mut Stream,
        means: bool,
        sink: &mut dyn FnMut(usize, &[f64]) -> Result<()>,
    ) -> Result<()> {
        let Model { net, team, acts, genes, .. } = self;
        let out = net.outputs(acts, m);
        net.spec.likelihood.generate(team, &out, &net.gene_params(), log_library, genes, rng, means, sink)
    }

    /// Number of codes in `z`, after checking it and the conditions.
    fn check_codes(&self, z: &[f32], conditions: &Conditions) -> Result<usize> {
        let (l, k) = (self.net.spec.latent_dim, self.net.spec.n_classes);
        if z.len() % l != 0 {
            return Err(Error::LengthMismatch { field: "z", got: z.len(), expected: (z.len() / l + 1) * l });
        }
        if z.iter().any(|v| !v.is_finite()) {
            return Err(Error::NonFinite { field: "z" });
        }
        let n = z.len() / l;
        match conditions.n_cells() {
            None if k > 0 => return Err(Error::invalid("labels", "are needed by a conditional model")),
            Some(m) if m != n => return Err(Error::LengthMismatch { field: "labels", got: m, expected: n }),
            _ if conditions.width() != k => {
                return Err(Error::LengthMismatch { field: "conditions", got: conditions.width(), expected: k })
            }
            _ => {}
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{DenseView, Layout};
    use crate::spec::ModelParams;
    use crate::weights::initial_weights;

    #[test]
    fn sparse_counts_keep_counts_beyond_u32() {
        let mut c = SparseCounts::default();
        let big = u32::MAX as f64 * 3.0;
        for (j, v) in [(0, 1.0), (3, u32::MAX as f64), (4, big), (7, 2.0)] {
            c.push(j, v);
        }
        assert_eq!(c.i, vec![0, 3, 4, 7]);
        assert_eq!(c.large, vec![(2, big)]);
        let mut d = vec![0.0; c.len()];
        c.values_into(&mut d);
        assert_eq!(d, vec![1.0, u32::MAX as f64, big, 2.0]);
    }

    fn room(m: &Model) -> Vec<(usize, usize)> {
        let a = &m.acts;
        let of = |v: &Vec<f32>| (v.as_ptr() as usize, v.capacity());
        let mut out: Vec<_> = [&a.mean, &a.log_var, &a.dec_in, &a.logits].into_iter().map(of).collect();
        out.extend(a.enc.iter().chain(&a.dec).flat_map(|act| [of(&act.a), of(&act.h)]));
        out.extend(a.dec_cat.iter().map(of));
        out.extend(a.heads.iter().map(of));
        out.extend(crate::products::scratch_capacities().map(|c| (0, c)));
        out
    }

    /// Encoding and decoding more cells than a chunk allocate nothing in the forward
    /// pass beyond what `Network::reserve` gave it.
    #[test]
    fn inference_runs_in_the_room_reserved() {
        let (n, g) = (CHUNK + 300, 1200);
        let x: Vec<f64> = (0..n * g).map(|i| ((i * 7919) % 13) as f64).collect();
        let view = DenseView::new(&x, n, g, Layout::CellsInColumns).unwrap();
        let data = Dataset::new(view, crate::data::Transform::Counts { target_sum: 1e4 }, None, 0).unwrap();
        let spec = ModelParams {
            n_genes: g,
            n_classes: 0,
            encoder: vec![(16, "relu".into())],
            latent_dim: 2,
            decoder: vec![(8, "relu".into()), (g, "linear".into())],
            likelihood: "zinb".into(),
            decoder_conditions: vec![],
            encoder_extras: vec![],
            decoder_extras: vec![],
        }
        .check()
        .unwrap();
        let w = initial_weights(&spec, &mut Stream::seed_from_u64(1)).unwrap();
        let mut m = Model::new(&spec, &w, 2).unwrap();
        let Model { net, acts, .. } = &mut m;
        net.reserve(acts, CHUNK, false).unwrap();
        let before = room(&m);
        let (z, _) = m.encode(&data).unwrap();
        assert_eq!(room(&m), before);
        let counts = m.decode_counts(&z, &Conditions::none(), &vec![7.0; n], 3).unwrap();
        assert_eq!(counts.p.len(), n + 1);
        assert_eq!(room(&m), before);
    }
}
