//! Weights as plain values (what R stores), to and from a module.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::backend::Backend;

use crate::error::{Error, Result};
use crate::model::{dense, Vae};
use crate::spec::{Likelihood, ModelSpec};

/// One dense layer: `kernel` is row-major `[n_in, n_out]` (keras's kernel layout).
/// A block with `n_in = 0` has only a `bias` (the NB/ZINB dispersion).
#[derive(Debug, Clone, PartialEq)]
pub struct DenseWeights {
    pub name: String,
    pub n_in: usize,
    pub n_out: usize,
    pub kernel: Vec<f32>,
    pub bias: Vec<f32>,
}

fn values<B: Backend, const D: usize>(p: &Param<burn::tensor::Tensor<B, D>>) -> Result<Vec<f32>> {
    p.val().into_data().convert::<f32>().to_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))
}

/// Checks plain weights against `spec`: one block per `ModelSpec::dense_shapes` entry,
/// in order, with names and sizes as the architecture says, and finite values.
pub(crate) fn check_weights(spec: &ModelSpec, weights: &[DenseWeights]) -> Result<()> {
    let shapes = spec.dense_shapes();
    if weights.len() != shapes.len() {
        return Err(Error::Weights(format!("{} layers given, the architecture has {}", weights.len(), shapes.len())));
    }
    for ((name, n_in, n_out), w) in shapes.into_iter().zip(weights) {
        if w.kernel.len() != n_in * n_out || w.bias.len() != n_out || w.n_in != n_in || w.n_out != n_out {
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

impl<B: Backend> Vae<B> {
    /// Every dense layer, in the order of `ModelSpec::dense_shapes`.
    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        let layers: Vec<&Linear<B>> = self
            .encoder
            .iter()
            .chain([&self.z_mean, &self.z_log_var])
            .chain(self.decoder.iter())
            .chain(self.dropout.iter())
            .collect();
        let mut out = self
            .spec
            .dense_shapes()
            .into_iter()
            .zip(layers)
            .map(|((name, n_in, n_out), l)| {
                let bias = match &l.bias {
                    Some(b) => values(b)?,
                    None => vec![0.0; n_out],
                };
                Ok(DenseWeights { name, n_in, n_out, kernel: values(&l.weight)?, bias })
            })
            .collect::<Result<Vec<_>>>()?;
        if let Some(d) = &self.dispersion {
            out.push(DenseWeights { name: "dispersion".into(), n_in: 0, n_out: self.spec.n_genes, kernel: vec![], bias: values(d)? });
        }
        Ok(out)
    }

    /// Rebuild a model from plain weights, checking every shape against `spec`.
    pub fn from_weights(spec: &ModelSpec, weights: &[DenseWeights], device: &B::Device) -> Result<Self> {
        check_weights(spec, weights)?;
        let mut layers = Vec::with_capacity(weights.len());
        let mut dispersion = None;
        for w in weights {
            let (n_in, n_out) = (w.n_in, w.n_out);
            if n_in == 0 {
                dispersion = Some(Param::from_tensor(burn::tensor::Tensor::from_data(
                    burn::tensor::TensorData::new(w.bias.clone(), [n_out]),
                    device,
                )));
            } else {
                layers.push(dense::<B>(w.kernel.clone(), w.bias.clone(), n_in, n_out, device));
            }
        }
        let dropout = if spec.likelihood == Likelihood::Zinb { layers.pop() } else { None };
        let decoder = layers.split_off(spec.encoder.len() + 2);
        let z_log_var = layers.pop();
        let z_mean = layers.pop();
        match (z_mean, z_log_var) {
            (Some(z_mean), Some(z_log_var)) => {
                Ok(Vae { encoder: layers, z_mean, z_log_var, decoder, dropout, dispersion, spec: spec.clone() })
            }
            _ => Err(Error::Internal("latent layers missing".into())),
        }
    }
}
