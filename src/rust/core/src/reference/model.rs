//! The VAE / CVAE as a burn module, built from and read back as plain weights.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{backend::Backend, Tensor, TensorData};

use crate::buffers::copied;
use crate::error::{Error, Result};
use crate::Stream;

use crate::network::{dropout_mask, NORM_EPS};
use crate::spec::{ModelSpec, Norm, Role};
use crate::weights::{check_weights, DenseWeights};

/// The batch statistics of a training step's batch normalisations: the index of the
/// normalisation (in `Vae::norms`), each unit's mean and variance over the batch.
pub type BatchStats = Vec<(usize, Vec<f32>, Vec<f32>)>;

#[derive(Module, Debug)]
pub struct Vae<B: Backend> {
    pub(crate) encoder: Vec<Linear<B>>,
    pub(crate) z_mean: Linear<B>,
    pub(crate) z_log_var: Linear<B>,
    /// Hidden decoder layers and the output layer.
    pub(crate) decoder: Vec<Linear<B>>,
    /// The likelihood's heads beside the output layer.
    pub(crate) heads: Vec<Linear<B>>,
    /// The likelihood's per-gene parameters.
    pub(crate) genes: Vec<Param<Tensor<B, 1>>>,
    /// The hidden layers' normalisations (scale, then shift), encoder layers first.
    pub(crate) norms: Vec<Param<Tensor<B, 1>>>,
    #[module(skip)]
    pub(crate) spec: ModelSpec,
}

/// A dense layer from a row-major `[n_in, n_out]` kernel and a bias.
fn dense<B: Backend>(kernel: Vec<f32>, bias: Vec<f32>, n_in: usize, n_out: usize, device: &B::Device) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(kernel, [n_in, n_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [n_out]), device))),
    }
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().to_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))
}

fn values_or_empty<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    values(t).unwrap_or_default()
}

impl<B: Backend> Vae<B> {
    /// Rebuild a model from plain weights, checking every shape against `spec`.
    pub fn from_weights(spec: &ModelSpec, weights: &[DenseWeights], device: &B::Device) -> Result<Self> {
        check_weights(spec, weights)?;
        let (mut encoder, mut decoder, mut heads, mut genes, mut norms) = (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut z_mean, mut z_log_var) = (None, None);
        for (b, w) in spec.blocks().into_iter().zip(weights) {
            let kernel = copied(&w.kernel, "a copy of the kernel").map_err(|e| e.of_layer(&b.name))?;
            let bias = copied(&w.bias, "a copy of the biases").map_err(|e| e.of_layer(&b.name))?;
            let layer = |kernel, bias| dense::<B>(kernel, bias, b.n_in, b.n_out, device);
            match b.role {
                Role::Encoder => encoder.push(layer(kernel, bias)),
                Role::Mean => z_mean = Some(layer(kernel, bias)),
                Role::LogVar => z_log_var = Some(layer(kernel, bias)),
                Role::Decoder | Role::Output => decoder.push(layer(kernel, bias)),
                Role::Head => heads.push(layer(kernel, bias)),
                Role::Gene => genes.push(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [b.n_out]), device))),
                Role::Norm => norms.push(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [b.n_out]), device))),
            }
        }
        match (z_mean, z_log_var) {
            (Some(z_mean), Some(z_log_var)) => Ok(Vae { encoder, z_mean, z_log_var, decoder, heads, genes, norms, spec: spec.clone() }),
            _ => Err(Error::Internal("latent layers missing".into())),
        }
    }

    /// Every parameter block, in the order of `ModelSpec::blocks`.
    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        let dense_layers: Vec<&Linear<B>> =
            self.encoder.iter().chain([&self.z_mean, &self.z_log_var]).chain(self.decoder.iter()).chain(self.heads.iter()).collect();
        let mut genes = self.genes.iter();
        let mut norms = self.norms.iter();
        let mut dense = dense_layers.into_iter();
        self.spec
            .blocks()
            .into_iter()
            .map(|b| {
                let (kernel, bias) = if b.role == Role::Gene || b.role == Role::Norm {
                    let p = if b.role == Role::Gene { genes.next() } else { norms.next() };
                    let p = p.ok_or_else(|| Error::Internal("per-gene parameter or normalisation missing".into()))?;
                    (Vec::new(), values(p.val())?)
                } else {
                    let l = dense.next().ok_or_else(|| Error::Internal("layer missing".into()))?;
                    let bias = match &l.bias {
                        Some(p) => values(p.val())?,
                        None => vec![0.0; b.n_out],
                    };
                    (values(l.weight.val())?, bias)
                };
                Ok(DenseWeights { name: b.name, n_in: b.n_in, n_out: b.n_out, kernel, bias })
            })
            .collect()
    }

    /// `x`: `[batch, genes + classes]` (transformed genes, then one-hot condition)
    /// → (`z_mean`, `z_log_var`), each `[batch, latent]`.
    /// Training draws dropout masks from `rng` (as the fused step does) and normalises
    /// in batch normalisations by the batch's statistics, which go to `stats`.
    pub fn encode(&self, x: Tensor<B, 2>, mut rng: Option<&mut Stream>, stats: &mut BatchStats) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let mut h = x;
        for (i, (layer, &(_, act))) in self.encoder.iter().zip(&self.spec.encoder).enumerate() {
            h = self.extras(act.burn(layer.forward(h)), false, i, rng.as_deref_mut(), stats);
        }
        (self.z_mean.forward(h.clone()), self.z_log_var.forward(h))
    }

    /// What follows hidden layer `i`'s activation (of the decoder or the encoder): its
    /// normalisation, then dropout with a mask drawn from `rng` (training).
    fn extras(&self, h: Tensor<B, 2>, decoder: bool, i: usize, rng: Option<&mut Stream>, stats: &mut BatchStats) -> Tensor<B, 2> {
        let (extras, others) = if decoder {
            (&self.spec.decoder_extras, self.spec.encoder_extras.iter().filter(|e| e.norm != Norm::None).count())
        } else {
            (&self.spec.encoder_extras, 0)
        };
        let ex = extras[i];
        let [n, u] = h.dims();
        let mut h = h;
        let k = others + extras[..i].iter().filter(|e| e.norm != Norm::None).count();
        match ex.norm {
            Norm::Layer => {
                let p = self.norms[k].val();
                let mean = h.clone().mean_dim(1);
                let centered = h - mean;
                let var = centered.clone().powi_scalar(2).mean_dim(1);
                let xhat = centered / var.add_scalar(NORM_EPS).sqrt();
                let gamma = p.clone().narrow(0, 0, u).unsqueeze::<2>();
                let beta = p.narrow(0, u, u).unsqueeze::<2>();
                h = xhat * gamma + beta;
            }
            Norm::Batch { epsilon, .. } => {
                let p = self.norms[k].val();
                let (mean, var) = if rng.is_some() {
                    // the batch's statistics per unit (the biased variance), through
                    // which the gradient flows
                    let mean = h.clone().mean_dim(0);
                    let var = (h.clone() - mean.clone()).powi_scalar(2).mean_dim(0);
                    stats.push((k, values_or_empty(mean.clone()), values_or_empty(var.clone())));
                    (mean, var)
                } else {
                    (p.clone().narrow(0, 2 * u, u).unsqueeze::<2>(), p.clone().narrow(0, 3 * u, u).unsqueeze::<2>())
                };
                let xhat = (h - mean) / var.add_scalar(epsilon).sqrt();
                let gamma = p.clone().narrow(0, 0, u).unsqueeze::<2>();
                let beta = p.narrow(0, u, u).unsqueeze::<2>();
                h = xhat * gamma + beta;
            }
            Norm::None => {}
        }
        if let Some(post) = ex.activation {
            h = post.burn(h);
        }
        if let (Some(rng), true) = (rng, ex.dropout > 0.0) {
            let mut mask = vec![0.0f32; n * u];
            dropout_mask(rng, ex.dropout, &mut mask);
            let device = h.device();
            h = h * Tensor::from_data(TensorData::new(mask, [n, u]), &device);
        }
        h
    }

    /// After a training step: the moving mean and variance of each batch
    /// normalisation in `stats` move towards the batch's (as `Network` does).
    pub fn update_moving_statistics(mut self, stats: &BatchStats) -> Result<Self> {
        let norms = self.spec.norms();
        for (k, mean, var) in stats {
            let (u, momentum) = match norms.get(*k) {
                Some(&(_, u, Norm::Batch { momentum, .. })) => (u, momentum),
                _ => return Err(Error::Internal("batch statistics of a layer without batch normalisation".into())),
            };
            let mut p = values(self.norms[*k].val())?;
            if mean.len() != u || var.len() != u || p.len() != 4 * u {
                return Err(Error::Internal("batch statistics of the wrong size".into()));
            }
            for j in 0..u {
                p[2 * u + j] = momentum * p[2 * u + j] + (1.0 - momentum) * mean[j];
                p[3 * u + j] = momentum * p[3 * u + j] + (1.0 - momentum) * var[j];
            }
            let param = std::mem::replace(&mut self.norms[*k], Param::from_tensor(Tensor::zeros([1], &Default::default())));
            // (the same parameter, so that the optimizer's state stays with it)
            self.norms[*k] = param.map(|t| {
                let device = t.device();
                Tensor::from_data(TensorData::new(p, [4 * u]), &device).require_grad()
            });
        }
        Ok(self)
    }

    /// `z`: `[batch, latent]`, `cond`: `[batch, conditions]` for a CVAE → the output
    /// layer's pre-activations and each head's, `[batch, genes]`.
    pub fn decode_heads(
        &self,
        z: Tensor<B, 2>,
        cond: Option<Tensor<B, 2>>,
        mut rng: Option<&mut Stream>,
        stats: &mut BatchStats,
    ) -> (Tensor<B, 2>, Vec<Tensor<B, 2>>) {
        // each decoder layer's input: the previous output, then its condition columns
        let with_conditions = |h: Tensor<B, 2>, j: usize| match (&cond, self.spec.decoder_conditions.get(j)) {
            (Some(c), Some(&(lo, hi))) if hi > lo => Tensor::cat(vec![h, c.clone().narrow(1, lo, hi - lo)], 1),
            _ => h,
        };
        let mut h = with_conditions(z, 0);
        let last = self.decoder.len().saturating_sub(1);
        for (j, (layer, &(_, act))) in self.decoder.iter().zip(&self.spec.decoder).take(last).enumerate() {
            h = with_conditions(self.extras(act.burn(layer.forward(h)), true, j, rng.as_deref_mut(), stats), j + 1);
        }
        let heads = self.heads.iter().map(|l| l.forward(h.clone())).collect();
        let logits = match self.decoder.last() {
            Some(out) => out.forward(h),
            None => h,
        };
        (logits, heads)
    }
}
