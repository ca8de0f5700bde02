//! Hyperparameters. `*Params` are what a caller hands in (unchecked);
//! `check()` turns them into the validated `*Spec` that the rest of the crate takes.

use std::str::FromStr;

use crate::error::{Error, Result};

/// Activation of a dense layer (the keras names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Relu,
    Sigmoid,
    Tanh,
    Elu,
    Softplus,
    Linear,
}

impl Activation {
    pub const NAMES: [&'static str; 6] = ["relu", "sigmoid", "tanh", "elu", "softplus", "linear"];

    pub fn name(self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::Elu => "elu",
            Activation::Softplus => "softplus",
            Activation::Linear => "linear",
        }
    }
}

impl FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "relu" => Activation::Relu,
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "elu" => Activation::Elu,
            "softplus" => Activation::Softplus,
            "linear" | "identity" => Activation::Linear,
            other => {
                return Err(Error::invalid(
                    "activation",
                    format!("'{other}' is unknown; use one of {}", Activation::NAMES.join(", ")),
                ))
            }
        })
    }
}

/// Reconstruction likelihood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Likelihood {
    /// Bernoulli cross-entropy of min-max-scaled values (VAExprs).
    Bce,
    /// Squared error of min-max-scaled values.
    Mse,
    /// Poisson counts.
    Poisson,
    /// Negative binomial counts with a dispersion per gene.
    Nb,
    /// Zero-inflated negative binomial counts (dropout per gene and cell).
    Zinb,
}

impl Likelihood {
    pub const NAMES: [&'static str; 5] = ["bce", "mse", "poisson", "nb", "zinb"];

    /// Whether the model reads raw counts (and generates counts).
    pub fn is_count(self) -> bool {
        matches!(self, Likelihood::Poisson | Likelihood::Nb | Likelihood::Zinb)
    }

    /// Whether the model has a dispersion per gene.
    pub fn has_dispersion(self) -> bool {
        matches!(self, Likelihood::Nb | Likelihood::Zinb)
    }
}

impl FromStr for Likelihood {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "bce" => Likelihood::Bce,
            "mse" => Likelihood::Mse,
            "poisson" => Likelihood::Poisson,
            "nb" => Likelihood::Nb,
            "zinb" => Likelihood::Zinb,
            other => {
                return Err(Error::invalid(
                    "likelihood",
                    format!("'{other}' is unknown; use one of {}", Likelihood::NAMES.join(", ")),
                ))
            }
        })
    }
}

/// Optimizers, with the keras defaults for their learning rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Adam,
    Sgd,
    RmsProp,
    AdaGrad,
}

impl OptimizerKind {
    pub const NAMES: [&'static str; 4] = ["adam", "sgd", "rmsprop", "adagrad"];

    /// keras's default learning rate for this optimizer.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.01,
            _ => 0.001,
        }
    }
}

impl FromStr for OptimizerKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Ok(match s {
            "adam" => OptimizerKind::Adam,
            "sgd" => OptimizerKind::Sgd,
            "rmsprop" => OptimizerKind::RmsProp,
            "adagrad" => OptimizerKind::AdaGrad,
            other => {
                return Err(Error::invalid(
                    "optimizer",
                    format!("'{other}' is unknown; use one of {}", OptimizerKind::NAMES.join(", ")),
                ))
            }
        })
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
}

/// A validated architecture.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelSpec {
    pub n_genes: usize,
    /// 0 for a plain VAE; the number of one-hot condition columns for a CVAE.
    pub n_classes: usize,
    pub encoder: Vec<(usize, Activation)>,
    pub latent_dim: usize,
    pub decoder: Vec<(usize, Activation)>,
    pub likelihood: Likelihood,
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
                    let act = act.parse::<Activation>().map_err(|e| match e {
                        Error::InvalidParameter { rule, .. } => Error::InvalidParameter { field, rule },
                        other => other,
                    })?;
                    Ok((units, act))
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
        let likelihood: Likelihood = self.likelihood.parse()?;
        Ok(ModelSpec { n_genes: self.n_genes, n_classes: self.n_classes, encoder, latent_dim: self.latent_dim, decoder, likelihood })
    }
}

impl ModelSpec {
    /// Width of the encoder's input: genes plus one-hot condition.
    pub fn input_dim(&self) -> usize {
        self.n_genes + self.n_classes
    }

    /// Activation of the output layer.
    pub fn output_activation(&self) -> Activation {
        self.decoder.last().map(|&(_, a)| a).unwrap_or(Activation::Sigmoid)
    }

    /// (name, n_in, n_out) of every parameter block in weight order:
    /// encoder_1.., z_mean, z_log_var, decoder_1.., then for ZINB `dropout` (a dense
    /// head beside the output layer) and for NB/ZINB `dispersion` (per-gene log theta,
    /// stored as a bias with `n_in = 0`).
    pub fn dense_shapes(&self) -> Vec<(String, usize, usize)> {
        let mut out = Vec::new();
        let mut d = self.input_dim();
        for (i, &(u, _)) in self.encoder.iter().enumerate() {
            out.push((format!("encoder_{}", i + 1), d, u));
            d = u;
        }
        out.push(("z_mean".to_string(), d, self.latent_dim));
        out.push(("z_log_var".to_string(), d, self.latent_dim));
        let mut d = self.latent_dim + self.n_classes;
        for (i, &(u, _)) in self.decoder.iter().enumerate() {
            out.push((format!("decoder_{}", i + 1), d, u));
            if i + 1 < self.decoder.len() {
                d = u;
            }
        }
        if self.likelihood == Likelihood::Zinb {
            // a second head on the last hidden layer, beside the output layer
            out.push(("dropout".to_string(), d, self.n_genes));
        }
        if self.likelihood.has_dispersion() {
            out.push(("dispersion".to_string(), 0, self.n_genes));
        }
        out
    }

    /// Number of trainable parameters.
    pub fn n_parameters(&self) -> usize {
        self.dense_shapes().iter().map(|(_, i, o)| i * o + o).sum()
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
    /// "fused" (the hand-written step, the default) or "burn" (burn's autodiff and
    /// optimizers, the reference the fused step is tested against).
    pub engine: String,
}

/// Which implementation runs the training step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The fused step (fused.rs).
    Fused,
    /// burn's autodiff and optimizers, op by op.
    Burn,
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
        let optimizer: OptimizerKind = self.optimizer.parse()?;
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
            other => return Err(Error::invalid("engine", format!("'{other}' is unknown; use \"fused\" or \"burn\""))),
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
        }
    }

    #[test]
    fn shapes_follow_the_architecture() {
        let s = params().check().unwrap();
        let shapes = s.dense_shapes();
        let names: Vec<_> = shapes.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(names, ["encoder_1", "z_mean", "z_log_var", "decoder_1", "decoder_2"]);
        assert_eq!(shapes[0], ("encoder_1".into(), 13, 8));
        assert_eq!(shapes[3], ("decoder_1".into(), 5, 8));
        assert_eq!(s.n_parameters(), (13 * 8 + 8) + 2 * (8 * 2 + 2) + (5 * 8 + 8) + (8 * 10 + 10));
        let z = ModelParams { likelihood: "zinb".into(), ..params() }.check().unwrap();
        let names: Vec<_> = z.dense_shapes().into_iter().map(|s| s.0).collect();
        assert_eq!(names, ["encoder_1", "z_mean", "z_log_var", "decoder_1", "decoder_2", "dropout", "dispersion"]);
        assert_eq!(z.dense_shapes()[5], ("dropout".into(), 8, 10));
        assert_eq!(z.dense_shapes()[6], ("dispersion".into(), 0, 10));
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
