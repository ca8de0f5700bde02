//! exprsgen-core: the numerics of exprsgen, free of R.
//!
//! A variational autoencoder (VAE), or a conditional VAE when cell labels are given,
//! over per-gene min-max-scaled expression; trained with burn on minibatches that
//! this crate gathers itself from a borrowed dense matrix.

// Off x86-64 the vector kernels (and what only they use) are compiled but never called.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

pub mod counts;
pub mod data;
pub mod error;
pub mod fused;
pub mod generate;
mod kernels;
pub mod loss;
pub mod model;
mod simd;
pub mod team;
pub mod spec;
pub mod train;
pub mod weights;

pub use data::{Batch, CscView, Dataset, DenseView, Layout, Scaling, Source, Transform};
pub use error::{Error, Result};
pub use generate::{decode, decode_counts, encode, SparseCounts};
pub use model::Vae;
pub use spec::{Activation, Engine, Likelihood, ModelParams, ModelSpec, OptimizerKind, TrainParams, TrainSpec};
pub use train::{EpochStats, Trainer};
pub use weights::DenseWeights;
