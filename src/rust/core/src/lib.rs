//! exprsgen-core: the numerics of exprsgen, free of R.
//!
//! A variational autoencoder (VAE), or a conditional VAE when cell labels are given,
//! over gene-expression data: per-gene min-max-scaled values or raw counts, as the
//! likelihood says. Layers, from the bottom:
//!
//! - `buffers`, `team`, `cpu`, `simd`, `kernels`, `products`: fallible allocation and
//!   work buffers, threads, float modes, vector loops and the matrix products;
//! - `activation`, `likelihood`, `optim`: one place per activation, likelihood family
//!   and optimizer;
//! - `spec`, `weights`, `data`: the architecture and its parameter blocks, plain
//!   weights, and the data sets minibatches are gathered from;
//! - `network` (the forward pass), `gradient` and `step` (the fused training step),
//!   `reference` (the same model trained with burn, the tests' oracle);
//! - `train` (`Trainer`) and `infer` (`Model`): what the R binding calls;
//!   `vocabulary`: the names R needs.

// Off x86-64 the vector kernels (and what only they use) are compiled but never called.
#![cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]

pub mod activation;
pub mod buffers;
mod cpu;
pub mod data;
pub mod error;
mod gradient;
pub mod infer;
mod kernels;
pub mod likelihood;
mod network;
pub mod optim;
mod products;
pub mod reference;
mod simd;
pub mod spec;
mod step;
pub mod team;
pub mod train;
pub mod vocabulary;
pub mod weights;

/// The random stream of training and generation: ChaCha12, the generator behind
/// `rand::rngs::StdRng` (same seeding, same numbers), named so that its position can
/// be saved and restored (checkpoints).
pub type Stream = rand::rngs::ChaCha12Rng;

pub use activation::Activation;
pub use data::{
    check_compressed, compress_columns, scan_values, transpose_scan, Batch, Condition, Conditions, CscView, Dataset, DenseScan, DenseView,
    Layout, Scaling, Source, Transform,
};
pub use error::{Error, Result};
pub use infer::{Model, SparseCounts};
pub use likelihood::Likelihood;
pub use network::standard_normal;
pub use optim::OptimizerKind;
pub use spec::{BlockShape, Engine, LayerExtras, ModelParams, ModelSpec, Norm, Role, TrainParams, TrainSpec};
pub use train::{EpochStats, Pass, SlotState, Trainer, TrainerState};
pub use vocabulary::{vocabulary, Vocabulary};
pub use weights::{initial_weights, DenseWeights};
