//! What a conditional model is conditioned on: per cell, one or several categorical
//! labels (each one-hot over its levels) and continuous covariates (one value each),
//! laid side by side in one condition row of `width()` values that the encoder reads
//! after the genes and the decoder after the latent code.

use crate::buffers::{elements, reserve};
use crate::error::{Error, Result};

/// One column of conditions.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// 0-based codes over `levels` classes: `levels` one-hot values.
    Categorical { codes: Vec<u32>, levels: usize },
    /// One value per cell (already scaled by the caller).
    Continuous { values: Vec<f32> },
}

impl Condition {
    fn len(&self) -> usize {
        match self {
            Condition::Categorical { codes, .. } => codes.len(),
            Condition::Continuous { values } => values.len(),
        }
    }

    fn width(&self) -> usize {
        match self {
            Condition::Categorical { levels, .. } => *levels,
            Condition::Continuous { .. } => 1,
        }
    }
}

/// The conditions of `n` cells (none for a plain VAE).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Conditions {
    columns: Vec<Condition>,
}

impl Conditions {
    /// No conditions (a plain VAE).
    pub fn none() -> Conditions {
        Conditions::default()
    }

    /// One label per cell (0-based codes over `levels` classes), or none when `codes`
    /// is `None` and `levels` is 0.
    pub fn labels(codes: Option<Vec<u32>>, levels: usize) -> Result<Conditions> {
        match codes {
            Some(codes) => Conditions::new(vec![Condition::Categorical { codes, levels }]),
            None if levels > 0 => Err(Error::invalid("labels", "are needed by a conditional model")),
            None => Ok(Conditions::none()),
        }
    }

    /// Columns of equal length, codes within their levels, covariates finite.
    pub fn new(columns: Vec<Condition>) -> Result<Conditions> {
        let n = columns.first().map_or(0, Condition::len);
        for c in &columns {
            if c.len() != n {
                return Err(Error::LengthMismatch { field: "labels", got: c.len(), expected: n });
            }
            match c {
                Condition::Categorical { codes, levels } => {
                    if *levels == 0 || codes.iter().any(|&k| k as usize >= *levels) {
                        return Err(Error::LabelOutOfRange { field: "labels", n_classes: *levels });
                    }
                }
                Condition::Continuous { values } => {
                    if values.iter().any(|v| !v.is_finite()) {
                        return Err(Error::NonFinite { field: "covariates" });
                    }
                }
            }
        }
        columns.iter().try_fold(0usize, |w, c| w.checked_add(c.width())).ok_or(Error::size_overflow("the conditions"))?;
        Ok(Conditions { columns })
    }

    /// Values in one condition row: the levels of every label plus one per covariate.
    pub fn width(&self) -> usize {
        self.columns.iter().map(Condition::width).sum()
    }

    /// Number of cells (`None` without conditions, which fit any number).
    pub fn n_cells(&self) -> Option<usize> {
        self.columns.first().map(Condition::len)
    }

    pub fn is_empty(&self) -> bool {
        self.columns.is_empty()
    }

    /// The condition rows of `cells` (row-major `cells.len() × width()`) into `out`, its
    /// allocation reused; empty without conditions.
    pub fn rows_into(&self, cells: impl Iterator<Item = usize>, n: usize, out: &mut Vec<f32>) -> Result<()> {
        const WHAT: &str = "the conditions";
        let w = self.width();
        let len = elements(&[n, w], WHAT)?;
        out.clear();
        reserve(out, len, WHAT)?;
        out.resize(len, 0.0);
        if w == 0 {
            return Ok(());
        }
        for (r, c) in cells.enumerate().take(n) {
            let row = &mut out[r * w..(r + 1) * w];
            let mut at = 0;
            for col in &self.columns {
                match col {
                    Condition::Categorical { codes, levels } => {
                        row[at + codes[c] as usize] = 1.0;
                        at += levels;
                    }
                    Condition::Continuous { values } => {
                        row[at] = values[c];
                        at += 1;
                    }
                }
            }
        }
        Ok(())
    }

    /// The condition rows of `cells` (`cells.len() × width()`).
    pub fn rows(&self, cells: &[usize]) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.rows_into(cells.iter().copied(), cells.len(), &mut out)?;
        Ok(out)
    }

    /// The rows of cells `start..start + m`.
    pub fn range(&self, start: usize, m: usize) -> Result<Vec<f32>> {
        let mut out = Vec::new();
        self.rows_into(start..start + m, m, &mut out)?;
        Ok(out)
    }
}
