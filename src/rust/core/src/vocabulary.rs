//! What R must know about the core, in one place and read from where each thing is
//! defined: the likelihoods (and which are count models), the activations (and their
//! aliases), the optimizers (and their default learning rates) and the engines. R keeps
//! no copies of these lists; the parameter blocks of a model are `ModelSpec::blocks`.

use crate::activation::Activation;
use crate::likelihood::{self, Info};
use crate::optim::OptimizerKind;
use crate::spec::Engine;

pub struct Vocabulary {
    pub likelihoods: Vec<Info>,
    /// (name, aliases)
    pub activations: Vec<(&'static str, &'static [&'static str])>,
    /// (name, default learning rate)
    pub optimizers: Vec<(&'static str, f64)>,
    pub engines: &'static [&'static str],
}

pub fn vocabulary() -> Vocabulary {
    Vocabulary {
        likelihoods: likelihood::all().iter().map(|l| l.info()).collect(),
        activations: Activation::ALL.iter().map(|a| (a.name(), a.aliases())).collect(),
        optimizers: OptimizerKind::ALL.iter().map(|o| (o.name(), o.default_learning_rate())).collect(),
        engines: &Engine::NAMES,
    }
}
