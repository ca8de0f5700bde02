//! Minibatch training: a `Trainer` owns the model, the optimizer state and the RNG,
//! and runs one epoch per call so that the caller (R) drives the epoch loop,
//! prints progress and can stop between epochs.

use burn::module::AutodiffModule;
use burn::optim::{
    AdaGrad, AdaGradConfig, Adam, AdamConfig, GradientsParams, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{activation, backend::Backend, ElementConversion, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::counts;
use crate::data::{Batch, Dataset};
use crate::error::{Error, Result};
use crate::loss;
use crate::model::{Cpu, CpuAutodiff, DecoderOut, Vae};
use crate::fused::FusedVae;
use crate::team::Team;
use crate::spec::{Engine, Likelihood, ModelSpec, OptimizerKind, TrainSpec};
use crate::weights::DenseWeights;

type Model = Vae<CpuAutodiff>;

enum Optim {
    Adam(OptimizerAdaptor<Adam, Model, CpuAutodiff>),
    Sgd(OptimizerAdaptor<Sgd<Cpu>, Model, CpuAutodiff>),
    RmsProp(OptimizerAdaptor<RmsProp, Model, CpuAutodiff>),
    AdaGrad(OptimizerAdaptor<AdaGrad, Model, CpuAutodiff>),
}

impl Optim {
    /// keras's defaults for the constants each optimizer has.
    fn new(kind: OptimizerKind) -> Self {
        match kind {
            OptimizerKind::Adam => Optim::Adam(AdamConfig::new().with_epsilon(1e-7).init()),
            OptimizerKind::Sgd => Optim::Sgd(SgdConfig::new().init()),
            OptimizerKind::RmsProp => Optim::RmsProp(
                RmsPropConfig::new().with_alpha(0.9).with_momentum(0.0).with_epsilon(1e-7).init(),
            ),
            OptimizerKind::AdaGrad => Optim::AdaGrad(AdaGradConfig::new().with_epsilon(1e-7).init()),
        }
    }

    fn step(&mut self, lr: f64, model: Model, grads: GradientsParams) -> Model {
        match self {
            Optim::Adam(o) => o.step(lr, model, grads),
            Optim::Sgd(o) => o.step(lr, model, grads),
            Optim::RmsProp(o) => o.step(lr, model, grads),
            Optim::AdaGrad(o) => o.step(lr, model, grads),
        }
    }
}

/// x86 MXCSR bits "flush to zero" and "denormals are zero".
#[cfg(target_arch = "x86_64")]
const FTZ_DAZ: u32 = 0x8040;

/// Sets flush-to-zero/denormals-are-zero on this thread and returns the previous
/// float-mode register (0 where there is none). Training drives Adam's moment estimates
/// and many gradients towards subnormal floats, which the CPU handles tens of times more
/// slowly (measured: 100,000-cell epochs 17 s instead of 10.4 s); TensorFlow trains with
/// these flags too.
#[allow(deprecated)]
fn set_flush_denormals() -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_getcsr, _mm_setcsr};
        // SAFETY: MXCSR only holds this thread's floating-point modes.
        unsafe {
            let saved = _mm_getcsr();
            _mm_setcsr(saved | FTZ_DAZ);
            saved
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        0
    }
}

#[allow(deprecated)]
fn restore_float_modes(saved: u32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: restores the value read by `set_flush_denormals` on this thread.
    unsafe {
        std::arch::x86_64::_mm_setcsr(saved)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = saved;
}

/// Flushes subnormals on the calling thread (e.g. R's) while it lives and restores the
/// caller's float modes when dropped, on every exit path, so that R's own arithmetic is
/// unchanged.
pub(crate) struct FlushDenormals(u32);

impl FlushDenormals {
    pub(crate) fn new() -> Self {
        FlushDenormals(set_flush_denormals())
    }
}

impl Drop for FlushDenormals {
    fn drop(&mut self) {
        restore_float_modes(self.0);
    }
}

/// Mean loss and its parts over the cells of one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// reconstruction + regularization × KL, averaged over cells.
    pub loss: f64,
    /// reconstruction term (binary cross-entropy summed over genes), averaged over cells.
    pub reconstruction: f64,
    /// KL divergence to the N(0, I) prior, averaged over cells.
    pub kl: f64,
}

/// Standard normal draws (ziggurat, `rand_distr`) from `rng`.
pub fn standard_normal(rng: &mut StdRng, n: usize) -> Vec<f32> {
    use rand_distr::{Distribution, StandardNormal};
    StandardNormal.sample_iter(rng).take(n).collect()
}

struct BatchLoss<B: Backend> {
    /// What backward() differentiates (for count models a surrogate with the exact
    /// gradient, not the loss value itself).
    total: Tensor<B, 1>,
    /// The loss value: reconstruction + regularization × KL, averaged over cells.
    value: f64,
    reconstruction: f64,
    kl: f64,
}

fn tensor2<B: Backend>(v: Vec<f32>, rows: usize, cols: usize, device: &B::Device) -> Tensor<B, 2> {
    Tensor::from_data(TensorData::new(v, [rows, cols]), device)
}

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap_or_default()
}

/// Forward pass and loss of one gathered batch.
fn batch_loss<B: Backend>(
    model: &Vae<B>,
    batch: &Batch,
    regularization: f64,
    rng: &mut StdRng,
    device: &B::Device,
) -> BatchLoss<B> {
    let spec = model.spec();
    let (n, g, k, l) = (batch.n, spec.n_genes, spec.n_classes, spec.latent_dim);
    let x = tensor2::<B>(batch.input.clone(), n, spec.input_dim(), device);
    let cond = (k > 0).then(|| tensor2::<B>(batch.condition.clone(), n, k, device));
    let target = if spec.likelihood.is_count() {
        None
    } else if k > 0 {
        Some(x.clone().slice([0..n, 0..g]))
    } else {
        Some(x.clone())
    };
    let (mean, log_var) = model.encode(x);
    let eps = tensor2::<B>(standard_normal(rng, n * l), n, l, device);
    let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
    let heads = model.decode_heads(z, cond);
    let kl = loss::kl_normal(mean, log_var);
    let kl_mean = kl.clone().mean().into_scalar().elem::<f64>();
    let kl_term = kl.mean().mul_scalar(regularization);
    let (recon, reconstruction) = match (spec.likelihood, target) {
        (Likelihood::Bce, Some(t)) => {
            let r = loss::bce(heads.logits, t, spec.output_activation()).sum_dim(1).mean();
            let v = r.clone().into_scalar().elem::<f64>();
            (r, v)
        }
        (Likelihood::Mse, Some(t)) => {
            let out = crate::model::activate(heads.logits, spec.output_activation());
            let r = (out - t).powi_scalar(2).sum_dim(1).mean();
            let v = r.clone().into_scalar().elem::<f64>();
            (r, v)
        }
        (lik, _) => count_surrogate(model, heads, batch, lik, device),
    };
    let total = recon + kl_term;
    BatchLoss { total, value: reconstruction + regularization * kl_mean, reconstruction, kl: kl_mean }
}

/// Exact count NLL, averaged over cells, and a surrogate whose gradient is the NLL's:
/// `sum(log_mu * dNLL/dlog_mu) + sum(log_theta * dNLL/dlog_theta) + sum(pi_logit * dNLL/dpi_logit)`
/// with the derivatives (counts.rs) held constant. burn differentiates the rest (softmax,
/// decoder, encoder).
fn count_surrogate<B: Backend>(
    model: &Vae<B>,
    heads: DecoderOut<B>,
    batch: &Batch,
    lik: Likelihood,
    device: &B::Device,
) -> (Tensor<B, 1>, f64) {
    let (n, g) = (batch.n, model.spec().n_genes);
    let log_lib = Tensor::<B, 2>::from_data(TensorData::new(batch.log_library.clone(), [n, 1]), device);
    let log_mu = activation::log_softmax(heads.logits, 1) + log_lib;
    let lm = values(log_mu.clone());
    let log_theta = model.log_theta();
    let lt = log_theta.clone().map(values).unwrap_or_default();
    let pl = heads.dropout.clone().map(values).unwrap_or_default();
    let mut g_mu = vec![0.0f32; n * g];
    let mut g_theta = vec![0.0f64; if lt.is_empty() { 0 } else { g }];
    let mut g_pi = vec![0.0f32; pl.len()];
    let mut nll = 0.0f64;
    let inv_n = 1.0 / n as f64;
    for r in 0..n {
        for j in 0..g {
            let idx = r * g + j;
            let x = batch.counts[idx] as f64;
            let t = match lik {
                Likelihood::Poisson => counts::poisson(x, lm[idx] as f64),
                Likelihood::Nb => counts::nb(x, lm[idx] as f64, lt[j] as f64),
                _ => counts::zinb(x, lm[idx] as f64, lt[j] as f64, pl[idx] as f64),
            };
            nll += t.nll;
            g_mu[idx] = (t.d_log_mu * inv_n) as f32;
            if !g_theta.is_empty() {
                g_theta[j] += t.d_log_theta * inv_n;
            }
            if !g_pi.is_empty() {
                g_pi[idx] = (t.d_pi_logit * inv_n) as f32;
            }
        }
    }
    let mut surrogate = (log_mu * tensor2::<B>(g_mu, n, g, device)).sum();
    if let Some(lt) = log_theta {
        let gt: Vec<f32> = g_theta.into_iter().map(|v| v as f32).collect();
        surrogate = surrogate + (lt * Tensor::<B, 1>::from_data(TensorData::new(gt, [g]), device)).sum();
    }
    if let Some(p) = heads.dropout {
        surrogate = surrogate + (p * tensor2::<B>(g_pi, n, g, device)).sum();
    }
    (surrogate, nll * inv_n)
}

/// The model in training and its optimizer state, in one of the two engines.
enum State {
    Fused { net: Box<FusedVae>, snapshot: Option<Vec<DenseWeights>>, team: Team },
    Burn { model: Option<Model>, optim: Box<Optim>, snapshot: Option<Model> },
}

/// Runs `f` in burn's pool when there is one, else on this thread with subnormals
/// flushed (the fused engine's team flushes them on its own threads).
fn run_in<R: Send>(pool: &Option<rayon::ThreadPool>, f: impl FnOnce() -> R + Send) -> R {
    match pool {
        Some(pool) => pool.install(f),
        None => {
            let _flush = FlushDenormals::new();
            f()
        }
    }
}

/// Owns a model in training, its optimizer state and its random stream.
pub struct Trainer {
    state: State,
    spec: TrainSpec,
    model_spec: ModelSpec,
    rng: StdRng,
    /// burn's thread pool (the fused engine has its own team of threads).
    pool: Option<rayon::ThreadPool>,
    epoch: usize,
    batch: Batch,
}

impl Trainer {
    /// A fresh model (weights drawn from `train.seed`) or, with `weights`, a model that
    /// continues from them.
    pub fn new(model: &ModelSpec, train: TrainSpec, weights: Option<&[DenseWeights]>) -> Result<Self> {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(train.seed);
        let state = match train.engine {
            Engine::Fused => {
                let w = match weights {
                    Some(w) => w.to_vec(),
                    None => model.init::<Cpu>(&mut rng, &device).weights()?,
                };
                let team = Team::new(train.threads, || {
                    set_flush_denormals();
                })
                .map_err(|e| Error::Internal(format!("threads: {e}")))?;
                State::Fused { net: Box::new(FusedVae::new(model, &w)?), snapshot: None, team }
            }
            Engine::Burn => {
                let vae = match weights {
                    Some(w) => Vae::from_weights(model, w, &device)?,
                    None => model.init::<CpuAutodiff>(&mut rng, &device),
                };
                State::Burn { model: Some(vae), optim: Box::new(Optim::new(train.optimizer)), snapshot: None }
            }
        };
        // The pool's threads run only this trainer's work: subnormals flushed for good.
        let pool = match train.engine {
            Engine::Fused => None,
            Engine::Burn => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(train.threads)
                    .start_handler(|_| {
                        set_flush_denormals();
                    })
                    .build()
                    .map_err(|e| Error::Internal(format!("thread pool: {e}")))?,
            ),
        };
        Ok(Trainer { state, spec: train, model_spec: model.clone(), rng, pool, epoch: 0, batch: Batch::default() })
    }

    /// A random order of `0..n` from the trainer's own stream (e.g. the order in which
    /// blocks of an on-disk matrix are visited), so that the seed fixes it too.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        order
    }

    /// Number of condition classes of the model in training (0 for a plain VAE).
    pub fn n_classes(&self) -> Result<usize> {
        Ok(self.model_spec.n_classes)
    }

    /// One pass over `data` in a fresh random order, one optimizer step per minibatch.
    pub fn train_epoch(&mut self, data: &Dataset) -> Result<EpochStats> {
        self.check_data(data)?;
        let n = data.n_cells();
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        let bs = self.spec.batch_size.min(n).max(1);
        let (mut sum, mut rec, mut kl) = (0.0, 0.0, 0.0);
        let device = Default::default();
        let (batch, rng, spec, epoch) = (&mut self.batch, &mut self.rng, &self.spec, self.epoch);
        let acc = (&mut sum, &mut rec, &mut kl);
        let state = &mut self.state;
        let body = move || -> Result<()> {
            for cells in order.chunks(bs) {
                let (value, r, k) = match state {
                    State::Fused { net, team, .. } => {
                        data.gather_with(cells, batch, Some(team))?;
                        net.step(batch, spec, rng, true, team)
                    }
                    State::Burn { model, optim, .. } => {
                        data.gather(cells, batch)?;
                        let m = model.take().ok_or_else(|| Error::Internal("the model was lost in a failed step".into()))?;
                        let out = batch_loss(&m, batch, spec.regularization, rng, &device);
                        if !out.value.is_finite() {
                            *model = Some(m);
                        } else {
                            let grads = GradientsParams::from_grads(out.total.backward(), &m);
                            *model = Some(optim.step(spec.learning_rate, m, grads));
                        }
                        (out.value, out.reconstruction, out.kl)
                    }
                };
                if !value.is_finite() {
                    return Err(Error::Diverged { epoch: epoch + 1, value });
                }
                let w = cells.len() as f64;
                *acc.0 += value * w;
                *acc.1 += r * w;
                *acc.2 += k * w;
            }
            Ok(())
        };
        run_in(&self.pool, body)?;
        self.epoch += 1;
        let n = n as f64;
        Ok(EpochStats { loss: sum / n, reconstruction: rec / n, kl: kl / n })
    }

    /// The loss on `data` with the current weights, without training
    /// (sampling noise included, as for the training loss).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<EpochStats> {
        self.check_data(data)?;
        let n = data.n_cells();
        let device = Default::default();
        let (mut sum, mut rec, mut kl) = (0.0, 0.0, 0.0);
        let cells: Vec<usize> = (0..n).collect();
        let bs = self.spec.batch_size.max(1);
        let (batch, rng, spec) = (&mut self.batch, &mut self.rng, &self.spec);
        let state = &mut self.state;
        let body = || -> Result<()> {
            let burn_model = match state {
                State::Burn { model, .. } => Some(model.as_ref().ok_or_else(|| Error::Internal("no model".into()))?.valid()),
                State::Fused { .. } => None,
            };
            for chunk in cells.chunks(bs) {
                let (value, r, k) = match (state as &mut State, &burn_model) {
                    (State::Fused { net, team, .. }, _) => {
                        data.gather_with(chunk, batch, Some(team))?;
                        net.step(batch, spec, rng, false, team)
                    }
                    (_, Some(m)) => {
                        data.gather(chunk, batch)?;
                        let out = batch_loss::<Cpu>(m, batch, spec.regularization, rng, &device);
                        (out.value, out.reconstruction, out.kl)
                    }
                    _ => return Err(Error::Internal("no model".into())),
                };
                let w = chunk.len() as f64;
                sum += value * w;
                rec += r * w;
                kl += k * w;
            }
            Ok(())
        };
        run_in(&self.pool, body)?;
        let n = n as f64;
        Ok(EpochStats { loss: sum / n, reconstruction: rec / n, kl: kl / n })
    }

    /// The current weights.
    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        match &self.state {
            State::Fused { net, .. } => Ok(net.weights()),
            State::Burn { model, .. } => model.as_ref().ok_or_else(|| Error::Internal("no model".into()))?.weights(),
        }
    }

    /// Remember the current weights, e.g. as the best so far for early stopping.
    pub fn snapshot(&mut self) -> Result<()> {
        match &mut self.state {
            State::Fused { net, snapshot, .. } => *snapshot = Some(net.weights()),
            // cheap: burn's tensors are shared, not copied
            State::Burn { model, snapshot, .. } => {
                *snapshot = Some(model.as_ref().ok_or_else(|| Error::Internal("no model".into()))?.clone())
            }
        }
        Ok(())
    }

    /// The weights remembered by the last `snapshot()`, if any.
    pub fn snapshot_weights(&self) -> Result<Option<Vec<DenseWeights>>> {
        match &self.state {
            State::Fused { snapshot, .. } => Ok(snapshot.clone()),
            State::Burn { snapshot, .. } => snapshot.as_ref().map(|m| m.weights()).transpose(),
        }
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        let spec = &self.model_spec;
        if data.n_genes() != spec.n_genes {
            return Err(Error::LengthMismatch { field: "genes", got: data.n_genes(), expected: spec.n_genes });
        }
        if spec.likelihood.is_count() != matches!(data.transform, crate::data::Transform::Counts { .. }) {
            return Err(Error::invalid("likelihood", "does not match the data transform (counts vs min-max)"));
        }
        if data.n_classes != spec.n_classes {
            return Err(Error::LengthMismatch { field: "classes", got: data.n_classes, expected: spec.n_classes });
        }
        if data.n_cells() == 0 {
            return Err(Error::invalid("x", "has no cells"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_normal_draws_are_standard_normal_and_seeded() {
        let n = 200_000;
        let x = standard_normal(&mut StdRng::seed_from_u64(7), n);
        assert_eq!(x.len(), n);
        assert_eq!(x, standard_normal(&mut StdRng::seed_from_u64(7), n));
        assert_ne!(x, standard_normal(&mut StdRng::seed_from_u64(8), n));
        let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
        let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01 && (var - 1.0).abs() < 0.02, "mean {mean}, var {var}");
        // tails: P(|Z| > 2) = 0.0455, P(Z > 3) = 0.00135
        let p2 = x.iter().filter(|v| v.abs() > 2.0).count() as f64 / n as f64;
        let p3 = x.iter().filter(|&&v| v > 3.0).count() as f64 / n as f64;
        assert!((p2 - 0.0455).abs() < 0.003 && (p3 - 0.00135).abs() < 0.0004, "tails {p2} {p3}");
    }

    #[test]
    fn denormals_are_flushed_inside_and_restored_outside() {
        let tiny = std::hint::black_box(1e-40f32); // a subnormal f32
        assert!(tiny > 0.0 && !tiny.is_normal());
        // inside: a subnormal operand reads as zero (DAZ) on x86_64
        let inside = {
            let _flush = FlushDenormals::new();
            std::hint::black_box(tiny) * std::hint::black_box(1.0f32)
        };
        #[cfg(target_arch = "x86_64")]
        assert_eq!(inside, 0.0);
        let _ = inside;
        // outside: IEEE behaviour again
        let outside = std::hint::black_box(tiny) * std::hint::black_box(1.0f32);
        assert_eq!(outside, tiny);
    }
}
