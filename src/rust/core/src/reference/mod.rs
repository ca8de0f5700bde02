//! The reference engine: the same model trained with burn's modules, autodiff and
//! optimizers, op by op (`options(exprsgen.engine = "burn")` in R). The tests check the
//! fused step against it, and it is the road to a GPU backend. Everything a family or
//! an activation defines is taken from its one place (`likelihood/`, `activation.rs`):
//! the loss enters as a surrogate whose gradient is the family's, so burn
//! differentiates the network, the reparameterisation and the KL term.

mod model;
mod train;

/// The CPU backend the reference engine runs on.
pub type Cpu = burn::backend::NdArray<f32>;
/// The same backend with reverse-mode autodiff, for training.
pub type CpuAutodiff = burn::backend::Autodiff<Cpu>;

pub use model::{BatchStats, Vae};
pub(crate) use train::Engine;
