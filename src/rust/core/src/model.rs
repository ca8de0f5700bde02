//! The VAE / CVAE module.
//!
//! encoder: `[x | c]` → dense layers → (`z_mean`, `z_log_var`);
//! decoder: `[z | c]` → dense layers → output (genes). `c` is the one-hot condition,
//! present only in a conditional model.

use burn::module::{Module, Param};
use burn::nn::Linear;
use burn::tensor::{activation, backend::Backend, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::RngExt;

use crate::spec::{Activation, ModelSpec};

/// The CPU backend all computation runs on.
pub type Cpu = burn::backend::NdArray<f32>;
/// The same backend with reverse-mode autodiff, for training.
pub type CpuAutodiff = burn::backend::Autodiff<Cpu>;

#[derive(Module, Debug)]
pub struct Vae<B: Backend> {
    pub(crate) encoder: Vec<Linear<B>>,
    pub(crate) z_mean: Linear<B>,
    pub(crate) z_log_var: Linear<B>,
    pub(crate) decoder: Vec<Linear<B>>,
    /// ZINB: dropout logits, a head on the last hidden layer of the decoder.
    pub(crate) dropout: Option<Linear<B>>,
    /// NB/ZINB: log theta per gene.
    pub(crate) dispersion: Option<Param<Tensor<B, 1>>>,
    #[module(skip)]
    pub(crate) spec: ModelSpec,
}

/// The decoder's heads: output-layer pre-activations (`[batch, genes]`) and, for
/// ZINB, dropout logits (`[batch, genes]`).
pub struct DecoderOut<B: Backend> {
    pub logits: Tensor<B, 2>,
    pub dropout: Option<Tensor<B, 2>>,
}

/// Apply an activation; softplus uses the overflow-free form `relu(x) + log1p(exp(-|x|))`.
pub fn activate<B: Backend>(x: Tensor<B, 2>, act: Activation) -> Tensor<B, 2> {
    match act {
        Activation::Relu => activation::relu(x),
        Activation::Sigmoid => activation::sigmoid(x),
        Activation::Tanh => activation::tanh(x),
        Activation::Elu => activation::elu(x, 1.0),
        Activation::Softplus => activation::relu(x.clone()) + x.abs().neg().exp().log1p(),
        Activation::Linear => x,
    }
}

/// A dense layer from a row-major `[n_in, n_out]` kernel and a bias.
pub(crate) fn dense<B: Backend>(kernel: Vec<f32>, bias: Vec<f32>, n_in: usize, n_out: usize, device: &B::Device) -> Linear<B> {
    Linear {
        weight: Param::from_tensor(Tensor::from_data(TensorData::new(kernel, [n_in, n_out]), device)),
        bias: Some(Param::from_tensor(Tensor::from_data(TensorData::new(bias, [n_out]), device))),
    }
}

impl ModelSpec {
    /// A new model with Glorot-uniform kernels and zero biases (keras's defaults),
    /// drawn from `rng` so that a seed fixes the initial weights.
    /// The dispersion (log theta) starts at 0 (theta = 1).
    pub fn init<B: Backend>(&self, rng: &mut StdRng, device: &B::Device) -> Vae<B> {
        let blocks: Vec<crate::weights::DenseWeights> = self
            .dense_shapes()
            .into_iter()
            .map(|(name, n_in, n_out)| {
                let limit = (6.0 / (n_in + n_out) as f64).sqrt() as f32;
                let kernel = (0..n_in * n_out).map(|_| (rng.random::<f32>() * 2.0 - 1.0) * limit).collect();
                crate::weights::DenseWeights { name, n_in, n_out, kernel, bias: vec![0.0; n_out] }
            })
            .collect();
        // The shapes come from the spec itself, so they always fit.
        match Vae::from_weights(self, &blocks, device) {
            Ok(v) => v,
            Err(e) => unreachable!("initial weights fit their own spec: {e}"),
        }
    }
}

impl<B: Backend> Vae<B> {
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// `x`: `[batch, genes + classes]` (scaled genes, then one-hot condition)
    /// → (`z_mean`, `z_log_var`), each `[batch, latent]`.
    pub fn encode(&self, x: Tensor<B, 2>) -> (Tensor<B, 2>, Tensor<B, 2>) {
        let mut h = x;
        for (layer, &(_, act)) in self.encoder.iter().zip(&self.spec.encoder) {
            h = activate(layer.forward(h), act);
        }
        (self.z_mean.forward(h.clone()), self.z_log_var.forward(h))
    }

    /// `z`: `[batch, latent]`, `cond`: `[batch, classes]` for a CVAE
    /// → the output layer before its activation, `[batch, genes]`.
    pub fn decode_pre(&self, z: Tensor<B, 2>, cond: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        self.decode_heads(z, cond).logits
    }

    /// The decoder's output layer before activation and, for ZINB, the dropout head.
    pub fn decode_heads(&self, z: Tensor<B, 2>, cond: Option<Tensor<B, 2>>) -> DecoderOut<B> {
        let mut h = match cond {
            Some(c) => Tensor::cat(vec![z, c], 1),
            None => z,
        };
        let last = self.decoder.len().saturating_sub(1);
        for (layer, &(_, act)) in self.decoder.iter().zip(&self.spec.decoder).take(last) {
            h = activate(layer.forward(h), act);
        }
        let dropout = self.dropout.as_ref().map(|d| d.forward(h.clone()));
        let logits = match self.decoder.last() {
            Some(out) => out.forward(h),
            None => h,
        };
        DecoderOut { logits, dropout }
    }

    /// log theta per gene (NB/ZINB), as a tracked tensor `[genes]`.
    pub fn log_theta(&self) -> Option<Tensor<B, 1>> {
        self.dispersion.as_ref().map(|p| p.val())
    }

    /// The decoder's output, `[batch, genes]`, in the scaled space.
    pub fn decode(&self, z: Tensor<B, 2>, cond: Option<Tensor<B, 2>>) -> Tensor<B, 2> {
        activate(self.decode_pre(z, cond), self.spec.output_activation())
    }
}
