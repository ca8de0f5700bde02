//! Hyperparameters. `*Params` are what a caller hands in (unchecked); `check()` turns
//! them into the validated `*Spec` that the rest of the crate takes. A `ModelSpec` also
//! says which parameter blocks the model has and in which order (`blocks`): the one
//! layout that weights, initialisation, the fused step, inference, the reference engine
//! and R's parameter counts all follow.

use crate::activation::Activation;
use crate::data::{Dataset, Transform};
use crate::error::{Error, Result};
use crate::likelihood::{self, Likelihood};
use crate::optim::OptimizerKind;

/// A normalisation after a hidden dense layer's activation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Norm {
    #[default]
    None,
    /// Layer normalisation (per cell, over the layer's units) with a learnt scale and
    /// shift per unit (keras's `layer_layer_normalization()`, epsilon 1e-3).
    Layer,
    /// Batch normalisation (keras's `layer_batch_normalization()`): in a training step
    /// each unit is centred and scaled by its mean and (biased) variance over the
    /// batch's cells, then scaled and shifted by learnt weights; each step also moves
    /// the unit's moving mean and variance towards the batch's, `moving = momentum *
    /// moving + (1 - momentum) * batch` (as keras). Inference, evaluation passes and
    /// generation use the moving statistics.
    Batch { momentum: f32, epsilon: f32 },
}

/// keras's defaults for `layer_batch_normalization()`.
pub const BATCH_NORM_MOMENTUM: f32 = 0.99;
pub const BATCH_NORM_EPSILON: f32 = 1e-3;

impl Norm {
    pub fn parse(name: &str, field: &'static str) -> Result<Norm> {
        match name {
            "none" => Ok(Norm::None),
            "layer" => Ok(Norm::Layer),
            "batch" => Norm::batch(BATCH_NORM_MOMENTUM, BATCH_NORM_EPSILON, field),
            _ => Err(Error::invalid(field, format!("has an unknown normalisation '{name}' (use 'none', 'layer' or 'batch')"))),
        }
    }

    /// Batch normalisation with `momentum` in [0, 1] and `epsilon` > 0.
    pub fn batch(momentum: f32, epsilon: f32, field: &'static str) -> Result<Norm> {
        if !(0.0..=1.0).contains(&momentum) {
            return Err(Error::invalid(field, "has a batch normalisation momentum outside [0, 1]"));
        }
        if !(epsilon > 0.0 && epsilon.is_finite()) {
            return Err(Error::invalid(field, "has a batch normalisation epsilon that is not a positive number"));
        }
        Ok(Norm::Batch { momentum, epsilon })
    }

    /// Values per unit in the normalisation's parameter block: scale and shift, then
    /// (batch normalisation) the moving mean and the moving variance.
    pub fn width(self) -> usize {
        match self {
            Norm::None => 0,
            Norm::Layer => 2,
            Norm::Batch { .. } => 4,
        }
    }
}

/// What follows a hidden dense layer's activation, in keras's order: a normalisation,
/// an activation of its own (`activation`: keras's `layer_activation()`, e.g. the ReLU
/// after scVI's batch normalisation of a linear layer), then dropout of a fraction
/// `dropout` of the units (training only, the others scaled by `1 / (1 - dropout)`).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LayerExtras {
    pub norm: Norm,
    pub activation: Option<Activation>,
    pub dropout: f32,
}

impl LayerExtras {
    pub fn is_none(&self) -> bool {
        self.norm == Norm::None && self.activation.is_none() && self.dropout == 0.0
    }
}

/// Architecture as handed in: hidden layers of the encoder, latent size, decoder layers
/// (the last decoder layer is the output and must have `n_genes` units).
#[derive(Debug, Clone, PartialEq)]
pub struct ModelParams {
    pub n_genes: usize,
    pub n_classes: usize,
    pub encoder: Vec<(usize, String)>,
    pub latent_dim: usize,
    pub decoder: Vec<(usize, String)>,
    pub likelihood: String,
    /// Which columns `lo..hi` of the condition row each decoder layer reads beside its
    /// input (one range per decoder layer, the last the output layer, whose input the
    /// likelihood's heads read too); empty: all of it into the first layer only (the
    /// VAExprs CVAE).
    pub decoder_conditions: Vec<(usize, usize)>,
    /// Normalisation and dropout after each encoder layer, and after each decoder layer
    /// but the output layer; empty: none.
    pub encoder_extras: Vec<LayerExtras>,
    pub decoder_extras: Vec<LayerExtras>,
}

/// A validated architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub n_genes: usize,
    /// 0 for a plain VAE; for a CVAE the width of a condition row (`data::Conditions`):
    /// the one-hot columns of every label plus one column per covariate.
    pub n_classes: usize,
    pub encoder: Vec<(usize, Activation)>,
    pub latent_dim: usize,
    pub decoder: Vec<(usize, Activation)>,
    pub likelihood: &'static dyn Likelihood,
    /// The columns `lo..hi` of the condition row that each decoder layer reads after
    /// its input (`[z | c[lo..hi]]`, `[h | c[lo..hi]]`), one range per decoder layer.
    pub decoder_conditions: Vec<(usize, usize)>,
    /// Normalisation and dropout after each encoder layer and each hidden decoder layer
    /// (one entry per layer; the output layer's is none).
    pub encoder_extras: Vec<LayerExtras>,
    pub decoder_extras: Vec<LayerExtras>,
}

/// What a parameter block is in the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Encoder,
    Mean,
    LogVar,
    Decoder,
    /// The decoder's last layer: one value per gene.
    Output,
    /// A dense layer beside the output layer, from the same input (e.g. ZINB's dropout
    /// logits), defined by the likelihood.
    Head,
    /// One value per gene, no input (e.g. NB's log dispersion), defined by the
    /// likelihood; stored as a bias with `n_in = 0`.
    Gene,
    /// A hidden layer's normalisation: its scale then its shift per unit, stored as
    /// `2 * units` biases with `n_in = 0`.
    Norm,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Encoder => "encoder",
            Role::Mean => "mean",
            Role::LogVar => "log_variance",
            Role::Decoder => "decoder",
            Role::Output => "output",
            Role::Head => "head",
            Role::Gene => "gene",
            Role::Norm => "normalization",
        }
    }
}

/// One parameter block: a dense layer `y = x W + b` with `W` of `n_in x n_out`, or
/// (`n_in = 0`) a vector of `n_out` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockShape {
    pub name: String,
    pub role: Role,
    pub n_in: usize,
    pub n_out: usize,
}

impl BlockShape {
    /// Number of values: kernel and bias.
    pub fn size(&self) -> usize {
        self.n_in * self.n_out + self.n_out
    }
}

impl ModelParams {
    pub fn check(self) -> Result<ModelSpec> {
        if self.n_genes == 0 {
            return Err(Error::invalid("n_genes", "must be positive"));
        }
        if self.latent_dim == 0 {
            return Err(Error::invalid("latent_dim", "must be a positive integer"));
        }
        let layers = |field: &'static str, v: Vec<(usize, String)>| -> Result<Vec<(usize, Activation)>> {
            v.into_iter()
                .map(|(units, act)| {
                    if units == 0 {
                        return Err(Error::invalid(field, "has a layer with 0 units"));
                    }
                    Ok((units, Activation::parse(&act, field)?))
                })
                .collect()
        };
        let encoder = layers("encoder_layers", self.encoder)?;
        let decoder = layers("decoder_layers", self.decoder)?;
        match decoder.last() {
            None => return Err(Error::invalid("decoder_layers", "must have at least one dense layer")),
            Some(&(units, _)) if units != self.n_genes => {
                return Err(Error::invalid(
                    "decoder_layers",
                    format!("must end with a layer of {} units (the number of genes), not {units}", self.n_genes),
                ))
            }
            _ => {}
        }
        let likelihood = likelihood::by_name(&self.likelihood)?;
        let extras = |field: &'static str, v: Vec<LayerExtras>, n: usize, last_plain: bool| -> Result<Vec<LayerExtras>> {
            let v = if v.is_empty() { vec![LayerExtras::default(); n] } else { v };
            if v.len() != n {
                return Err(Error::invalid(field, format!("must say the normalisation and dropout of each of its {n} layers")));
            }
            if v.iter().any(|e| !(e.dropout >= 0.0 && e.dropout < 1.0)) {
                return Err(Error::invalid(field, "has a dropout rate outside [0, 1)"));
            }
            if last_plain && v.last().is_some_and(|e| !e.is_none()) {
                return Err(Error::invalid(field, "may not normalise or drop out the output layer"));
            }
            Ok(v)
        };
        let encoder_extras = extras("encoder_layers", self.encoder_extras, encoder.len(), false)?;
        let decoder_extras = extras("decoder_layers", self.decoder_extras, decoder.len(), true)?;
        let decoder_conditions = if self.decoder_conditions.is_empty() {
            (0..decoder.len()).map(|j| if j == 0 { (0, self.n_classes) } else { (0, 0) }).collect()
        } else {
            self.decoder_conditions
        };
        if decoder_conditions.len() != decoder.len() || decoder_conditions.iter().any(|&(lo, hi)| lo > hi || hi > self.n_classes) {
            return Err(Error::invalid(
                "decoder_conditions",
                format!("must be one range of the {} condition columns per decoder layer", self.n_classes),
            ));
        }
        // Sizes that overflow a machine word would describe more memory than exists.
        if self.n_genes.checked_add(self.n_classes).is_none() || self.latent_dim.checked_add(self.n_classes).is_none() {
            return Err(Error::size_overflow("the weights"));
        }
        let spec = ModelSpec {
            n_genes: self.n_genes,
            n_classes: self.n_classes,
            encoder,
            latent_dim: self.latent_dim,
            decoder,
            likelihood,
            decoder_conditions,
            encoder_extras,
            decoder_extras,
        };
        let bytes = spec.blocks().iter().try_fold(0usize, |total, b| {
            let values = b.n_in.checked_mul(b.n_out)?.checked_add(b.n_out)?;
            total.checked_add(values.checked_mul(std::mem::size_of::<f32>())?)
        });
        if bytes.is_none() {
            return Err(Error::size_overflow("the weights"));
        }
        Ok(spec)
    }
}

impl ModelSpec {
    /// Width of the encoder's input: genes plus one-hot condition.
    pub fn input_dim(&self) -> usize {
        self.n_genes + self.n_classes
    }

    /// Width of the decoder's input: latent code plus the first layer's conditions.
    pub fn decoder_input_dim(&self) -> usize {
        self.decoder_layer_input(0)
    }

    /// Width of the encoder's last hidden layer (the latent heads' input).
    pub fn encoder_output_dim(&self) -> usize {
        self.encoder.last().map_or(self.input_dim(), |&(u, _)| u)
    }

    /// Number of condition columns decoder layer `j` reads.
    pub fn decoder_condition_width(&self, j: usize) -> usize {
        self.decoder_conditions.get(j).map_or(0, |&(lo, hi)| hi - lo)
    }

    /// Width of the input of decoder layer `j` (0-based; `decoder.len() - 1` is the
    /// output layer, whose input the likelihood's heads read too): the latent code or
    /// the previous layer's units, then the layer's condition columns.
    pub fn decoder_layer_input(&self, j: usize) -> usize {
        let before = if j == 0 { self.latent_dim } else { self.decoder[j - 1].0 };
        before + self.decoder_condition_width(j)
    }

    /// Width of the input of the output layer and of the likelihood's heads.
    pub fn decoder_hidden_dim(&self) -> usize {
        self.decoder_layer_input(self.decoder.len().saturating_sub(1))
    }

    /// Activation of the output layer.
    pub fn output_activation(&self) -> Activation {
        self.decoder.last().map(|&(_, a)| a).unwrap_or(Activation::Sigmoid)
    }

    /// Every parameter block in weight order: `encoder_1..`, `z_mean`, `z_log_var`,
    /// `decoder_1..` (the last is the output layer), then the likelihood's heads and its
    /// per-gene parameters.
    pub fn blocks(&self) -> Vec<BlockShape> {
        let block = |name: String, role, n_in, n_out| BlockShape { name, role, n_in, n_out };
        let mut out = Vec::new();
        let mut d = self.input_dim();
        for (i, &(u, _)) in self.encoder.iter().enumerate() {
            out.push(block(format!("encoder_{}", i + 1), Role::Encoder, d, u));
            d = u;
        }
        out.push(block("z_mean".into(), Role::Mean, d, self.latent_dim));
        out.push(block("z_log_var".into(), Role::LogVar, d, self.latent_dim));
        let p = self.decoder.len();
        for (i, &(u, _)) in self.decoder.iter().enumerate() {
            let role = if i + 1 == p { Role::Output } else { Role::Decoder };
            out.push(block(format!("decoder_{}", i + 1), role, self.decoder_layer_input(i), u));
        }
        let info = self.likelihood.info();
        for name in info.heads {
            out.push(block(name.to_string(), Role::Head, self.decoder_hidden_dim(), self.n_genes));
        }
        for name in info.gene_params {
            out.push(block(name.to_string(), Role::Gene, 0, self.n_genes));
        }
        // normalisations last, so that a model without them keeps its block indices
        for (name, u, norm) in self.norms() {
            out.push(block(name, Role::Norm, 0, norm.width() * u));
        }
        out
    }

    /// The normalisations' blocks in weight order (encoder layers, then decoder
    /// layers): name, the layer's units and the normalisation.
    pub fn norms(&self) -> Vec<(String, usize, Norm)> {
        let side = |prefix: &str, layers: &[(usize, Activation)], extras: &[LayerExtras]| {
            layers
                .iter()
                .zip(extras)
                .enumerate()
                .filter(|(_, (_, e))| e.norm != Norm::None)
                .map(|(i, (&(u, _), e))| (format!("{prefix}_{}_norm", i + 1), u, e.norm))
                .collect::<Vec<_>>()
        };
        let mut out = side("encoder", &self.encoder, &self.encoder_extras);
        out.extend(side("decoder", &self.decoder, &self.decoder_extras));
        out
    }

    /// Number of trainable parameters.
    pub fn n_parameters(&self) -> usize {
        self.blocks().iter().map(BlockShape::size).sum()
    }

    /// Whether `data` can go through this model: its genes, transform and classes.
    pub fn check_data(&self, data: &Dataset) -> Result<()> {
        if data.n_genes() != self.n_genes {
            return Err(Error::LengthMismatch { field: "genes", got: data.n_genes(), expected: self.n_genes });
        }
        if self.likelihood.is_count() != matches!(data.transform, Transform::Counts { .. }) {
            return Err(Error::invalid("likelihood", "does not match the data transform (counts vs min-max)"));
        }
        let width = data.conditions.width();
        if width == 0 && self.n_classes > 0 {
            return Err(Error::invalid("labels", "are needed by a conditional model"));
        }
        if width != self.n_classes {
            return Err(Error::LengthMismatch { field: "conditions", got: width, expected: self.n_classes });
        }
        if data.n_cells() == 0 {
            return Err(Error::invalid("x", "has no cells"));
        }
        Ok(())
    }
}

/// Training settings as handed in.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainParams {
    pub optimizer: String,
    /// `None`: the optimizer's keras default.
    pub learning_rate: Option<f64>,
    pub regularization: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub threads: usize,
    /// One of `Engine::NAMES`.
    pub engine: String,
}

/// Which implementation runs the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The fused step (step.rs).
    Fused,
    /// burn's autodiff and optimizers, op by op (reference/).
    Burn,
}

impl Engine {
    pub const NAMES: [&'static str; 2] = ["fused", "burn"];
}

/// Validated training settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainSpec {
    pub optimizer: OptimizerKind,
    pub learning_rate: f64,
    pub regularization: f64,
    pub batch_size: usize,
    pub seed: u64,
    pub threads: usize,
    pub engine: Engine,
}

impl TrainParams {
    pub fn check(self) -> Result<TrainSpec> {
        let optimizer = OptimizerKind::parse(&self.optimizer)?;
        let learning_rate = self.learning_rate.unwrap_or_else(|| optimizer.default_learning_rate());
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(Error::invalid("learning_rate", "must be a positive number"));
        }
        if !(self.regularization.is_finite() && self.regularization >= 0.0) {
            return Err(Error::invalid("regularization", "must be a non-negative number"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", "must be a positive integer"));
        }
        if self.threads == 0 {
            return Err(Error::invalid("num.threads", "must be a positive integer"));
        }
        let engine = match self.engine.as_str() {
            "fused" => Engine::Fused,
            "burn" => Engine::Burn,
            other => return Err(Error::invalid("engine", format!("'{other}' is unknown; use one of {}", Engine::NAMES.join(", ")))),
        };
        Ok(TrainSpec {
            engine,
            optimizer,
            learning_rate,
            regularization: self.regularization,
            batch_size: self.batch_size,
            seed: self.seed,
            threads: self.threads,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ModelParams {
        ModelParams {
            n_genes: 10,
            n_classes: 3,
            encoder: vec![(8, "relu".into())],
            latent_dim: 2,
            decoder: vec![(8, "relu".into()), (10, "sigmoid".into())],
            likelihood: "bce".into(),
            decoder_conditions: vec![],
            encoder_extras: vec![],
            decoder_extras: vec![],
        }
    }

    fn names(s: &ModelSpec) -> Vec<String> {
        s.blocks().into_iter().map(|b| b.name).collect()
    }

    #[test]
    fn blocks_follow_the_architecture() {
        let s = params().check().unwrap();
        let blocks = s.blocks();
        assert_eq!(names(&s), ["encoder_1", "z_mean", "z_log_var", "decoder_1", "decoder_2"]);
        assert_eq!((blocks[0].n_in, blocks[0].n_out), (13, 8));
        assert_eq!((blocks[3].n_in, blocks[3].n_out), (5, 8));
        assert_eq!(blocks[4].role, Role::Output);
        assert_eq!(s.n_parameters(), (13 * 8 + 8) + 2 * (8 * 2 + 2) + (5 * 8 + 8) + (8 * 10 + 10));
        let z = ModelParams { likelihood: "zinb".into(), ..params() }.check().unwrap();
        assert_eq!(names(&z), ["encoder_1", "z_mean", "z_log_var", "decoder_1", "decoder_2", "dropout", "dispersion"]);
        let b = z.blocks();
        assert_eq!((b[5].role, b[5].n_in, b[5].n_out), (Role::Head, 8, 10));
        assert_eq!((b[6].role, b[6].n_in, b[6].n_out), (Role::Gene, 0, 10));
        // without hidden decoder layers the heads read [z | c]
        let flat = ModelParams { likelihood: "zinb".into(), decoder: vec![(10, "linear".into())], ..params() };
        assert_eq!(flat.check().unwrap().blocks()[4].n_in, 5);
        assert!(ModelParams { likelihood: "gaussian".into(), ..params() }.check().is_err());
    }

    #[test]
    fn rejects_bad_architectures() {
        let mut p = params();
        p.decoder.last_mut().unwrap().0 = 9;
        assert!(matches!(p.check(), Err(Error::InvalidParameter { field: "decoder_layers", .. })));
        let mut p = params();
        p.encoder[0].1 = "swish".into();
        let e = p.check().unwrap_err();
        assert!(e.to_string().contains("'encoder_layers'") && e.to_string().contains("swish"), "{e}");
        let mut p = params();
        p.latent_dim = 0;
        assert!(p.check().is_err());
        let mut p = params();
        p.decoder.clear();
        assert!(p.check().is_err());
    }

    #[test]
    fn architectures_whose_sizes_overflow_are_out_of_memory() {
        let huge = 1usize << 40;
        let wide = ModelParams { encoder: vec![(huge, "relu".into())], latent_dim: huge, ..params() };
        let e = wide.check().unwrap_err();
        assert!(matches!(e, Error::OutOfMemory { bytes: u64::MAX, .. }), "{e:?}");
        assert!(e.to_string().contains("memory"), "{e}");
        let classes = ModelParams { n_classes: usize::MAX, ..params() };
        assert!(matches!(classes.check(), Err(Error::OutOfMemory { .. })));
    }

    #[test]
    fn rejects_bad_training_settings() {
        let ok = TrainParams {
            optimizer: "adam".into(),
            learning_rate: None,
            regularization: 1.0,
            batch_size: 32,
            seed: 1,
            threads: 1,
            engine: "fused".into(),
        };
        assert_eq!(ok.clone().check().unwrap().learning_rate, 0.001);
        let sgd = TrainParams { optimizer: "sgd".into(), ..ok.clone() };
        assert_eq!(sgd.check().unwrap().learning_rate, 0.01);
        for bad in [
            TrainParams { regularization: -1.0, ..ok.clone() },
            TrainParams { optimizer: "lbfgs".into(), ..ok.clone() },
            TrainParams { learning_rate: Some(0.0), ..ok.clone() },
            TrainParams { batch_size: 0, ..ok.clone() },
            TrainParams { threads: 0, ..ok.clone() },
            TrainParams { engine: "gpu".into(), ..ok.clone() },
        ] {
            assert!(bad.check().is_err());
        }
    }
}
