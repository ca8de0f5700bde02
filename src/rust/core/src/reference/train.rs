//! Training with the reference engine: a minibatch's loss as burn tensors, burn's
//! backward pass and burn's optimizers, in a rayon pool of its own.

use crate::Stream;
use burn::module::AutodiffModule;
use burn::optim::GradientsParams;
use burn::tensor::{backend::Backend, ElementConversion, Tensor, TensorData};

use super::{BatchStats, Cpu, CpuAutodiff, Vae};
use crate::cpu::set_flush_denormals;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::likelihood::{LossWork, Outputs};
use crate::network::standard_normal;
use crate::optim::BurnOptimizer;
use crate::spec::{ModelSpec, TrainSpec};
use crate::team::Team;
use crate::weights::DenseWeights;

type Model = Vae<CpuAutodiff>;

/// KL(q(z|x) || N(0, I)) per cell for a diagonal Gaussian with log-variance `log_var`:
/// `-0.5 * sum(1 + log_var - mean^2 - exp(log_var))`. Shape `[batch, 1]`.
pub(crate) fn kl_normal<B: Backend>(mean: Tensor<B, 2>, log_var: Tensor<B, 2>) -> Tensor<B, 2> {
    let inner = log_var.clone() + 1.0 - mean.powi_scalar(2) - log_var.exp();
    inner.sum_dim(1).mul_scalar(-0.5)
}

fn tensor2<B: Backend>(v: Vec<f32>, rows: usize, cols: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

struct BatchLoss<B: Backend> {
    /// What backward() differentiates: a surrogate with the loss's gradient.
    total: Tensor<B, 1>,
    /// (loss, reconstruction, KL), each averaged over cells.
    parts: (f64, f64, f64),
    /// The batch normalisations' statistics of a training step.
    stats: BatchStats,
}

/// Forward pass and loss of one gathered batch. The reconstruction enters as
/// `sum(head * d loss / d head)` over the output layer, the likelihood's heads and its
/// per-gene parameters, with the family's gradients held constant, so that burn
/// differentiates everything before the heads.
fn batch_loss<B: Backend>(
    model: &Vae<B>,
    batch: &Batch,
    regularization: f64,
    learn: bool,
    rng: &mut Stream,
    team: &Team,
    work: &mut LossWork,
) -> BatchLoss<B> {
    let device = Default::default();
    let spec = model.spec.clone();
    let (n, g, k, l) = (batch.n, spec.n_genes, spec.n_classes, spec.latent_dim);
    let x = tensor2::<B>(batch.input.clone(), n, spec.input_dim(), &device);
    let cond = (k > 0).then(|| tensor2::<B>(batch.condition.clone(), n, k, &device));
    // dropout masks (training only) and the reparameterisation's noise, drawn in the
    // fused step's order
    let mut stats = BatchStats::new();
    let (mean, log_var) = model.encode(x, if learn { Some(&mut *rng) } else { None }, &mut stats);
    let eps = tensor2::<B>(standard_normal(rng, n * l), n, l, &device);
    let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
    let (logits, heads) = model.decode_heads(z, cond, if learn { Some(&mut *rng) } else { None }, &mut stats);
    let kl = kl_normal(mean, log_var);
    let kl_mean = kl.clone().mean().into_scalar().elem::<f64>();
    let kl_term = kl.mean().mul_scalar(regularization);
    let head_values: Vec<Vec<f32>> = heads.iter().map(|h| values(h.clone())).collect();
    let gene_values: Vec<Vec<f32>> = model.genes.iter().map(|p| values(p.val())).collect();
    let logit_values = values(logits.clone());
    let out = Outputs { n, n_genes: g, logits: &logit_values, heads: &head_values, activation: spec.output_activation() };
    let params: Vec<&[f32]> = gene_values.iter().map(|v| v.as_slice()).collect();
    let reconstruction = spec.likelihood.loss(team, &out, batch, &params, work);
    let mut surrogate = (logits * tensor2::<B>(work.d_logits.clone(), n, g, &device)).sum();
    for (h, head) in heads.into_iter().enumerate() {
        surrogate = surrogate + (head * tensor2::<B>(work.d_heads[h].clone(), n, g, &device)).sum();
    }
    for (q, p) in model.genes.iter().enumerate() {
        let mut grad = vec![0.0f32; g];
        work.sum_genes[q].total(n, &mut grad);
        surrogate = surrogate + (p.val() * Tensor::<B, 1>::from_data(TensorData::new(grad, [g]), &device)).sum();
    }
    BatchLoss { total: surrogate + kl_term, parts: (reconstruction + regularization * kl_mean, reconstruction, kl_mean), stats }
}

/// A model in training with the reference engine, its optimizer state and its thread
/// pool.
pub(crate) struct Engine {
    pool: rayon::ThreadPool,
    state: State,
}

struct State {
    model: Option<Model>,
    optim: BurnOptimizer<Model, CpuAutodiff>,
    snapshot: Option<Model>,
    /// The likelihood's loss runs on the calling thread of the pool.
    team: Team,
    work: LossWork,
}

impl Engine {
    pub fn new(spec: &ModelSpec, train: &TrainSpec, weights: &[DenseWeights]) -> Result<Self> {
        let device = Default::default();
        let model = Vae::from_weights(spec, weights, &device)?;
        // The pool's threads run only this trainer's work: subnormals flushed for good.
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(train.threads)
            .start_handler(|_| {
                set_flush_denormals();
            })
            .build()
            .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
        let team = Team::new(1, || {}).map_err(|e| Error::Internal(format!("threads: {e}")))?;
        let state =
            State { model: Some(model), optim: BurnOptimizer::new(train.optimizer), snapshot: None, team, work: LossWork::default() };
        Ok(Engine { pool, state })
    }

    /// Runs `f` in the engine's pool.
    pub fn run<R: Send>(&mut self, f: impl FnOnce(&mut InPool) -> R + Send) -> R {
        let Engine { pool, state } = self;
        pool.install(|| f(&mut InPool(state)))
    }

    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        self.state.model.as_ref().ok_or_else(|| Error::Internal("no model".into()))?.weights()
    }

    /// Remembers the current weights (cheap: burn's tensors are shared, not copied).
    pub fn snapshot(&mut self) -> Result<()> {
        self.state.snapshot = Some(self.state.model.as_ref().ok_or_else(|| Error::Internal("no model".into()))?.clone());
        Ok(())
    }

    pub fn snapshot_weights(&self) -> Result<Option<Vec<DenseWeights>>> {
        self.state.snapshot.as_ref().map(|m| m.weights()).transpose()
    }
}

/// The engine's state inside its pool.
pub(crate) struct InPool<'a>(&'a mut State);

impl InPool<'_> {
    /// One optimizer step on `batch`; returns (loss, reconstruction, KL).
    pub fn train_batch(&mut self, batch: &Batch, train: &TrainSpec, rng: &mut Stream) -> Result<(f64, f64, f64)> {
        let s = &mut *self.0;
        let m = s.model.take().ok_or_else(|| Error::Internal("the model was lost in a failed step".into()))?;
        let out = batch_loss(&m, batch, train.regularization, true, rng, &s.team, &mut s.work);
        if !out.parts.0.is_finite() {
            s.model = Some(m);
        } else {
            let grads = GradientsParams::from_grads(out.total.backward(), &m);
            s.model = Some(s.optim.step(train.learning_rate, m, grads).update_moving_statistics(&out.stats)?);
        }
        Ok(out.parts)
    }

    /// The model without autodiff, for evaluation passes.
    pub fn valid_model(&self) -> Result<Vae<Cpu>> {
        Ok(self.0.model.as_ref().ok_or_else(|| Error::Internal("no model".into()))?.valid())
    }

    /// The loss of `batch` under `model` (from `valid_model`), without training.
    pub fn eval_batch(&mut self, model: &Vae<Cpu>, batch: &Batch, train: &TrainSpec, rng: &mut Stream) -> (f64, f64, f64) {
        let s = &mut *self.0;
        batch_loss(model, batch, train.regularization, false, rng, &s.team, &mut s.work).parts
    }
}
