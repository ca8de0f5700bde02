//! Per-gene min-max scaling, fitted on the training cells (the scaled families' input
//! and target).

use super::view::Source;
use crate::buffers::{filled, from_fn, zeros};
use crate::error::{Error, Result};

/// Per-gene min-max scaling fitted on training cells: `(x - min) / (max - min)`,
/// with constant genes mapped to 0 instead of NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    pub(crate) inv_range: Vec<f64>,
}

impl Scaling {
    pub fn new(min: Vec<f64>, max: Vec<f64>) -> Result<Self> {
        if min.len() != max.len() {
            return Err(Error::LengthMismatch { field: "max", got: max.len(), expected: min.len() });
        }
        if min.iter().chain(&max).any(|v| !v.is_finite()) {
            return Err(Error::NonFinite { field: "minmax" });
        }
        let inv_range = from_fn(min.len(), "the per-gene scaling", |j| if max[j] > min[j] { 1.0 / (max[j] - min[j]) } else { 0.0 })?;
        Ok(Scaling { min, max, inv_range })
    }

    /// Fit on every cell of `source` (implicit zeros of a sparse matrix included);
    /// fails on a non-finite value.
    pub fn fit<'a>(source: impl Into<Source<'a>>) -> Result<Self> {
        let source = source.into();
        let g = source.n_genes();
        const WHAT: &str = "the per-gene scaling";
        let mut min = filled(g, f64::INFINITY, WHAT)?;
        let mut max = filled(g, f64::NEG_INFINITY, WHAT)?;
        let mut stored = zeros::<usize>(g, WHAT)?;
        let mut finite = true;
        for c in 0..source.n_cells() {
            source.for_cell(c, |j, v| {
                finite &= v.is_finite();
                stored[j] += 1;
                if v < min[j] {
                    min[j] = v;
                }
                if v > max[j] {
                    max[j] = v;
                }
            });
        }
        if !finite {
            return Err(Error::NonFinite { field: "x" });
        }
        if source.n_cells() == 0 {
            return Err(Error::invalid("x", "has no cells"));
        }
        for j in 0..g {
            if stored[j] < source.n_cells() {
                min[j] = min[j].min(0.0);
                max[j] = max[j].max(0.0);
            }
        }
        Scaling::new(min, max)
    }

    pub fn n_genes(&self) -> usize {
        self.min.len()
    }

    /// Scaled value of gene `g`, clamped to [0, 1] (cells outside the training range,
    /// e.g. validation cells, are clamped like a sigmoid output would be).
    #[inline]
    pub fn apply(&self, g: usize, v: f64) -> f32 {
        ((v - self.min[g]) * self.inv_range[g]).clamp(0.0, 1.0) as f32
    }

    /// Inverse of `apply` for a value in [0, 1].
    #[inline]
    pub fn invert(&self, g: usize, s: f32) -> f64 {
        self.min[g] + s as f64 * (self.max[g] - self.min[g])
    }
}
