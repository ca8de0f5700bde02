//! Weights as plain values (what R stores): one `DenseWeights` per parameter block of
//! `ModelSpec::blocks`, their check, and the initial weights of a new model.

use crate::Stream;
use rand::RngExt;

use crate::buffers::{copied, elements, from_fn, zeros};
use crate::error::{Error, Result};
use crate::spec::ModelSpec;

/// One parameter block: `kernel` is row-major `[n_in, n_out]` (keras's kernel layout).
/// A block with `n_in = 0` has only a `bias` (a per-gene parameter).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseWeights {
    pub name: String,
    pub n_in: usize,
    pub n_out: usize,
    pub kernel: Vec<f32>,
    pub bias: Vec<f32>,
}

/// Checks plain weights against `spec`: one block per `ModelSpec::blocks` entry, in
/// order, with the sizes the architecture says, and finite values.
pub(crate) fn check_weights(spec: &ModelSpec, weights: &[DenseWeights]) -> Result<()> {
    let shapes = spec.blocks();
    if weights.len() != shapes.len() {
        return Err(Error::Weights(format!("{} layers given, the architecture has {}", weights.len(), shapes.len())));
    }
    for (b, w) in shapes.into_iter().zip(weights) {
        let (name, n_in, n_out) = (b.name, b.n_in, b.n_out);
        if Some(w.kernel.len()) != n_in.checked_mul(n_out) || w.bias.len() != n_out || w.n_in != n_in || w.n_out != n_out {
            return Err(Error::Weights(format!(
                "layer '{name}' needs a {n_in} x {n_out} kernel and {n_out} biases, got a {} x {} kernel of {} values and {} biases",
                w.n_in,
                w.n_out,
                w.kernel.len(),
                w.bias.len()
            )));
        }
        if w.kernel.iter().chain(&w.bias).any(|v| !v.is_finite()) {
            return Err(Error::Weights(format!("layer '{name}' has non-finite values")));
        }
    }
    Ok(())
}

/// The weights of a new model: Glorot-uniform kernels and zero biases (keras's
/// defaults), drawn from `rng` block by block in weight order, so that a seed fixes
/// them. Per-gene parameters start at 0 (e.g. theta = 1), normalisations at scale 1 and
/// shift 0 (batch normalisation's moving mean at 0, its moving variance at 1). A model too large for the
/// machine's memory is an `OutOfMemory` error.
pub fn initial_weights(spec: &ModelSpec, rng: &mut Stream) -> Result<Vec<DenseWeights>> {
    let mut norms = spec.norms().into_iter();
    spec.blocks()
        .into_iter()
        .map(|b| {
            let (n_in, n_out) = (b.n_in, b.n_out);
            let limit = (6.0 / (n_in + n_out) as f64).sqrt() as f32;
            let kernel = elements(&[n_in, n_out], "the kernel")
                .and_then(|n| from_fn(n, "the kernel", |_| (rng.random::<f32>() * 2.0 - 1.0) * limit))
                .map_err(|e| e.of_layer(&b.name))?;
            let mut bias = zeros(n_out, "the biases").map_err(|e| e.of_layer(&b.name))?;
            if b.role == crate::spec::Role::Norm {
                // a normalisation's scale starts at 1, its shift at 0; batch
                // normalisation's moving mean at 0 and moving variance at 1 (as keras)
                let (_, u, norm) = norms.next().ok_or_else(|| Error::Internal("a normalisation block without its layer".into()))?;
                bias[..u].fill(1.0);
                if norm.width() == 4 {
                    bias[3 * u..].fill(1.0);
                }
            }
            Ok(DenseWeights { name: b.name, n_in, n_out, kernel, bias })
        })
        .collect()
}

/// A copy of `weights`.
pub(crate) fn copy_weights(weights: &[DenseWeights]) -> Result<Vec<DenseWeights>> {
    weights
        .iter()
        .map(|w| {
            let kernel = copied(&w.kernel, "a copy of the kernel").map_err(|e| e.of_layer(&w.name))?;
            let bias = copied(&w.bias, "a copy of the biases").map_err(|e| e.of_layer(&w.name))?;
            Ok(DenseWeights { name: w.name.clone(), n_in: w.n_in, n_out: w.n_out, kernel, bias })
        })
        .collect()
}
