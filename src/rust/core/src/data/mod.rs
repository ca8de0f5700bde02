//! Input data: matrices borrowed from R (`view`), the per-gene scaling of the scaled
//! likelihoods (`scaling`), and data sets with conditions (`conditions`) and transform from which
//! minibatches are gathered (`dataset`).

mod conditions;
mod dataset;
mod scaling;
#[cfg(test)]
mod tests;
mod view;

pub use conditions::{Condition, Conditions};
pub use dataset::{Batch, Dataset, Transform};
pub use scaling::Scaling;
pub use view::{check_compressed, compress_columns, scan_values, transpose_scan, CscView, DenseScan, DenseView, Layout, Source, ValueScan};
