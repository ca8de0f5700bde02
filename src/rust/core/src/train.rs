//! Minibatch training: a `Trainer` owns the model, the optimizer state and the RNG,
//! and runs one epoch per call so that the caller (R) drives the epoch loop,
//! prints progress and can stop between epochs.

use burn::module::AutodiffModule;
use burn::optim::{
    AdaGrad, AdaGradConfig, Adam, AdamConfig, GradientsParams, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig,
};
use burn::optim::adaptor::OptimizerAdaptor;
use burn::tensor::{backend::Backend, ElementConversion, Tensor, TensorData};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};

use crate::data::Dataset;
use crate::error::{Error, Result};
use crate::loss;
use crate::model::{Cpu, CpuAutodiff, Vae};
use crate::spec::{ModelSpec, OptimizerKind, TrainSpec};
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

/// Standard normal draws (Box–Muller) from `rng`.
pub fn standard_normal(rng: &mut StdRng, n: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f64 = 1.0 - rng.random::<f64>(); // (0, 1]
        let u2: f64 = rng.random::<f64>();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = 2.0 * std::f64::consts::PI * u2;
        out.push((r * t.cos()) as f32);
        out.push((r * t.sin()) as f32);
    }
    out.truncate(n);
    out
}

struct BatchLoss<B: Backend> {
    total: Tensor<B, 1>,
    reconstruction: f64,
    kl: f64,
}

/// Forward pass and loss of one gathered batch (`rows`: `[batch, genes + classes]`).
fn batch_loss<B: Backend>(
    model: &Vae<B>,
    rows: &[f32],
    batch: usize,
    n_genes: usize,
    cond: Option<Vec<f32>>,
    regularization: f64,
    rng: &mut StdRng,
    device: &B::Device,
) -> BatchLoss<B> {
    let spec = model.spec();
    let width = spec.input_dim();
    let x = Tensor::<B, 2>::from_data(TensorData::new(rows.to_vec(), [batch, width]), device);
    let target = if spec.n_classes > 0 { x.clone().slice([0..batch, 0..n_genes]) } else { x.clone() };
    let cond = cond.map(|c| Tensor::<B, 2>::from_data(TensorData::new(c, [batch, spec.n_classes]), device));
    let (mean, log_var) = model.encode(x);
    let eps = Tensor::<B, 2>::from_data(TensorData::new(standard_normal(rng, batch * spec.latent_dim), [batch, spec.latent_dim]), device);
    let z = mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps;
    let pre = model.decode_pre(z, cond);
    let recon = loss::bce(pre, target, spec.output_activation()).sum_dim(1);
    let kl = loss::kl_normal(mean, log_var);
    let reconstruction = recon.clone().mean().into_scalar().elem::<f64>();
    let kl_mean = kl.clone().mean().into_scalar().elem::<f64>();
    let total = (recon + kl.mul_scalar(regularization)).mean();
    BatchLoss { total, reconstruction, kl: kl_mean }
}

/// Owns a model in training, its optimizer state and its random stream.
pub struct Trainer {
    model: Option<Model>,
    optim: Optim,
    spec: TrainSpec,
    rng: StdRng,
    pool: rayon::ThreadPool,
    epoch: usize,
    rows: Vec<f32>,
    snapshot: Option<Model>,
}

impl Trainer {
    /// A fresh model (weights drawn from `train.seed`) or, with `weights`, a model that
    /// continues from them.
    pub fn new(model: &ModelSpec, train: TrainSpec, weights: Option<&[DenseWeights]>) -> Result<Self> {
        let device = Default::default();
        let mut rng = StdRng::seed_from_u64(train.seed);
        let vae = match weights {
            Some(w) => Vae::from_weights(model, w, &device)?,
            None => model.init::<CpuAutodiff>(&mut rng, &device),
        };
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(train.threads)
            .build()
            .map_err(|e| Error::Internal(format!("thread pool: {e}")))?;
        Ok(Trainer { model: Some(vae), optim: Optim::new(train.optimizer), spec: train, rng, pool, epoch: 0, rows: Vec::new(), snapshot: None })
    }

    fn model(&self) -> Result<&Model> {
        self.model.as_ref().ok_or_else(|| Error::Internal("the model was lost in a failed step".into()))
    }

    /// Number of condition classes of the model in training (0 for a plain VAE).
    pub fn n_classes(&self) -> Result<usize> {
        Ok(self.model()?.spec().n_classes)
    }

    pub fn epochs_done(&self) -> usize {
        self.epoch
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
        let n_genes = data.view.n_genes();
        let model = self.model.take().ok_or_else(|| Error::Internal("no model".into()))?;
        let (rows, rng, optim, spec, epoch) = (&mut self.rows, &mut self.rng, &mut self.optim, &self.spec, self.epoch);
        let acc = (&mut sum, &mut rec, &mut kl);
        let (model, result) = self.pool.install(move || {
            let mut model = model;
            for cells in order.chunks(bs) {
                if let Err(e) = data.gather(cells, rows) {
                    return (model, Err(e));
                }
                let cond = (data.n_classes > 0).then(|| data.conditions(cells));
                let out = batch_loss(&model, rows, cells.len(), n_genes, cond, spec.regularization, rng, &device);
                let value = out.total.clone().into_scalar().elem::<f64>();
                if !value.is_finite() {
                    return (model, Err(Error::Diverged { epoch: epoch + 1, value }));
                }
                let w = cells.len() as f64;
                *acc.0 += value * w;
                *acc.1 += out.reconstruction * w;
                *acc.2 += out.kl * w;
                let grads = GradientsParams::from_grads(out.total.backward(), &model);
                model = optim.step(spec.learning_rate, model, grads);
            }
            (model, Ok(()))
        });
        self.model = Some(model);
        result?;
        self.epoch += 1;
        let n = n as f64;
        Ok(EpochStats { loss: sum / n, reconstruction: rec / n, kl: kl / n })
    }

    /// The loss on `data` with the current weights, without training
    /// (sampling noise included, as for the training loss).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<EpochStats> {
        self.check_data(data)?;
        let model = self.model()?.valid();
        let n = data.n_cells();
        let device = Default::default();
        let n_genes = data.view.n_genes();
        let (mut sum, mut rec, mut kl) = (0.0, 0.0, 0.0);
        let cells: Vec<usize> = (0..n).collect();
        let bs = self.spec.batch_size.max(1);
        let (rows, rng, reg) = (&mut self.rows, &mut self.rng, self.spec.regularization);
        self.pool.install(|| -> Result<()> {
            for chunk in cells.chunks(bs) {
                data.gather(chunk, rows)?;
                let cond = (data.n_classes > 0).then(|| data.conditions(chunk));
                let out = batch_loss::<Cpu>(&model, rows, chunk.len(), n_genes, cond, reg, rng, &device);
                let w = chunk.len() as f64;
                sum += out.total.into_scalar().elem::<f64>() * w;
                rec += out.reconstruction * w;
                kl += out.kl * w;
            }
            Ok(())
        })?;
        let n = n as f64;
        Ok(EpochStats { loss: sum / n, reconstruction: rec / n, kl: kl / n })
    }

    /// The current weights.
    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        self.model()?.weights()
    }

    /// Remember the current weights (cheap: tensors are shared, not copied), e.g. as the
    /// best so far for early stopping.
    pub fn snapshot(&mut self) -> Result<()> {
        self.snapshot = Some(self.model()?.clone());
        Ok(())
    }

    /// The weights remembered by the last `snapshot()`, if any.
    pub fn snapshot_weights(&self) -> Result<Option<Vec<DenseWeights>>> {
        self.snapshot.as_ref().map(|m| m.weights()).transpose()
    }

    fn check_data(&self, data: &Dataset) -> Result<()> {
        let spec = self.model()?.spec();
        if data.view.n_genes() != spec.n_genes {
            return Err(Error::LengthMismatch { field: "genes", got: data.view.n_genes(), expected: spec.n_genes });
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
