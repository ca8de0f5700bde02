//! Input data: matrices borrowed from R (`view`), the per-gene scaling of the scaled
//! likelihoods (`scaling`), and data sets with labels and transform from which
//! minibatches are gathered (`dataset`).

mod dataset;
mod scaling;
#[cfg(test)]
mod tests;
mod view;

pub use dataset::{one_hot, Batch, Dataset, Transform};
pub use scaling::Scaling;
pub use view::{CscView, DenseView, Layout, Source};
