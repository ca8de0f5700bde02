//! A data set (cells, their labels and the transform the model reads them through) and
//! the gathering of minibatches from it.

use super::conditions::Conditions;
use super::scaling::Scaling;
use super::view::Source;
use crate::buffers::{elements, from_fn, reserve};
use crate::error::{Error, Result};

/// What the model reads from a cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Transform {
    /// Min-max-scaled values; the target is the scaled input itself (scaled likelihoods).
    MinMax(Scaling),
    /// Raw counts: the encoder reads `log1p(count * target_sum / library size)`,
    /// the target is the counts and the library size is kept (count likelihoods).
    Counts { target_sum: f64 },
}

/// A gathered minibatch, row-major.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub n: usize,
    /// `[n, genes + conditions]`: transformed genes, then the condition row.
    pub input: Vec<f32>,
    /// `[n, genes]` counts (count transform only).
    pub counts: Vec<f32>,
    /// `[n]` natural log of each cell's library size (count transform only).
    pub log_library: Vec<f32>,
    /// `[n, conditions]` condition rows (one-hot labels, covariates).
    pub condition: Vec<f32>,
}

/// Cells with their conditions (none for a plain VAE) and the transform to apply.
#[derive(Debug, Clone)]
pub struct Dataset<'a> {
    pub source: Source<'a>,
    pub transform: Transform,
    pub conditions: Conditions,
}

impl<'a> Dataset<'a> {
    /// Cells with optional class labels (0-based codes over `n_classes` classes).
    pub fn new(source: impl Into<Source<'a>>, transform: Transform, labels: Option<Vec<u32>>, n_classes: usize) -> Result<Self> {
        Self::with_conditions(source, transform, Conditions::labels(labels, n_classes)?)
    }

    /// Cells with any conditions (labels and covariates).
    pub fn with_conditions(source: impl Into<Source<'a>>, transform: Transform, conditions: Conditions) -> Result<Self> {
        let source = source.into();
        if let Transform::MinMax(scaling) = &transform {
            if scaling.n_genes() != source.n_genes() {
                return Err(Error::LengthMismatch { field: "minmax", got: scaling.n_genes(), expected: source.n_genes() });
            }
        }
        if let Some(n) = conditions.n_cells() {
            if n != source.n_cells() {
                return Err(Error::LengthMismatch { field: "labels", got: n, expected: source.n_cells() });
            }
        }
        Ok(Dataset { source, transform, conditions })
    }

    pub fn n_cells(&self) -> usize {
        self.source.n_cells()
    }

    pub fn n_genes(&self) -> usize {
        self.source.n_genes()
    }

    /// Width of one input row: genes followed by the condition row.
    pub fn width(&self) -> usize {
        self.source.n_genes() + self.conditions.width()
    }

    /// Gather the rows of `cells` into `batch`. Fails on a non-finite value, and for
    /// counts on a negative or fractional value or a cell without counts, so such
    /// data never reach the model.
    pub fn gather(&self, cells: &[usize], batch: &mut Batch) -> Result<()> {
        self.gather_with(cells, batch, None)
    }

    /// `gather`, with the cells spread over `team`'s threads.
    pub fn gather_with(&self, cells: &[usize], batch: &mut Batch, team: Option<&crate::team::Team>) -> Result<()> {
        let (w, g, n) = (self.width(), self.n_genes(), cells.len());
        const WHAT: &str = "a batch of cells";
        batch.n = n;
        // Every value of `input` (and of `counts`) is written below, row by row on the
        // threads, so the buffers are not zeroed here.
        let len = elements(&[n, w], WHAT)?;
        reserve(&mut batch.input, len, WHAT)?;
        batch.input.resize(len, 0.0);
        self.conditions.rows_into(cells.iter().copied(), n, &mut batch.condition)?;
        let counts = matches!(self.transform, Transform::Counts { .. });
        let sparse = self.source.is_sparse();
        batch.log_library.clear();
        if counts {
            let len = elements(&[n, g], WHAT)?;
            reserve(&mut batch.counts, len, WHAT)?;
            batch.counts.resize(len, 0.0);
        } else {
            batch.counts.clear();
        }
        let zero: Vec<f32> = match &self.transform {
            Transform::MinMax(scaling) if self.source.is_sparse() => from_fn(g, WHAT, |j| scaling.apply(j, 0.0))?,
            _ => Vec::new(),
        };
        // one cell: its input row, and for counts its count row and log library size
        let fill = |c: usize, row: &mut [f32], count_row: &mut [f32], log_lib: &mut f32| -> Result<()> {
            match &self.transform {
                Transform::MinMax(scaling) => {
                    if !zero.is_empty() {
                        row[..g].copy_from_slice(&zero);
                    }
                    let mut finite = true;
                    match self.source.dense_cell(c) {
                        // contiguous values: one loop the compiler vectorises
                        Some(values) => finite = crate::simd::minmax_row(&mut row[..g], values, &scaling.min, &scaling.inv_range),
                        None => self.source.for_cell(c, |j, v| {
                            finite &= v.is_finite();
                            row[j] = scaling.apply(j, v);
                        }),
                    }
                    if !finite {
                        return Err(Error::NonFinite { field: "x" });
                    }
                }
                &Transform::Counts { target_sum } => {
                    if sparse {
                        count_row.fill(0.0);
                    }
                    let mut total = 0.0f64;
                    let mut bad = None;
                    let dense_ok = self.source.dense_cell(c).map(|values| {
                        let (t, ok) = crate::simd::count_row(values, count_row);
                        total = t;
                        ok
                    });
                    if dense_ok != Some(true) {
                        // sparse, or dense with a bad value: visit the values one by one
                        total = 0.0;
                        self.source.for_cell(c, |j, v| {
                            if !(v.is_finite() && v >= 0.0 && v.fract() == 0.0) {
                                bad = Some(v);
                            }
                            count_row[j] = v as f32;
                            total += v;
                        });
                    }
                    if let Some(v) = bad {
                        return Err(if v.is_finite() {
                            Error::invalid("x", format!("must hold non-negative whole counts for a count likelihood (found {v})"))
                        } else {
                            Error::NonFinite { field: "x" }
                        });
                    }
                    if total <= 0.0 {
                        return Err(Error::invalid("x", "has a cell without any counts"));
                    }
                    let scale = (target_sum / total) as f32;
                    crate::simd::log1p_scaled(count_row, scale, &mut row[..g]);
                    *log_lib = total.ln() as f32;
                }
            }
            Ok(())
        };
        reserve(&mut batch.log_library, n, WHAT)?;
        batch.log_library.resize(n, 0.0);
        let (pi, pc, pl) = (batch.input.as_mut_ptr() as usize, batch.counts.as_mut_ptr() as usize, batch.log_library.as_mut_ptr() as usize);
        // the first error in cell order, whatever the thread count
        let first_error: std::sync::Mutex<Option<(usize, Error)>> = std::sync::Mutex::new(None);
        const ROWS: usize = 16;
        let chunk = |k: usize| {
            for r in k * ROWS..((k + 1) * ROWS).min(n) {
                // SAFETY: row r of each buffer belongs to this chunk alone; the buffers
                // were sized above (counts only when `counts`).
                let (row, count_row, log_lib) = unsafe {
                    (
                        std::slice::from_raw_parts_mut((pi as *mut f32).add(r * w), w),
                        if counts { std::slice::from_raw_parts_mut((pc as *mut f32).add(r * g), g) } else { &mut [][..] },
                        &mut *(pl as *mut f32).add(r),
                    )
                };
                if let Err(e) = fill(cells[r], row, count_row, log_lib) {
                    let mut slot = first_error.lock().unwrap_or_else(|e| e.into_inner());
                    if slot.as_ref().is_none_or(|(row, _)| r < *row) {
                        *slot = Some((r, e));
                    }
                    return;
                }
            }
        };
        match team {
            Some(team) if n * g >= 1 << 14 => team.run(n.div_ceil(ROWS), &chunk),
            _ => (0..n.div_ceil(ROWS)).for_each(chunk),
        }
        if let Some((_, e)) = first_error.into_inner().unwrap_or_else(|e| e.into_inner()) {
            return Err(e);
        }
        if !counts {
            batch.log_library.clear();
        }
        let k = w - g;
        if k > 0 {
            for r in 0..n {
                batch.input[r * w + g..(r + 1) * w].copy_from_slice(&batch.condition[r * k..(r + 1) * k]);
            }
        }
        Ok(())
    }

    /// The condition rows of `cells` (`cells.len() × conditions.width()`).
    pub fn conditions(&self, cells: &[usize]) -> Result<Vec<f32>> {
        self.conditions.rows(cells)
    }
}
