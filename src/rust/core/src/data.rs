//! Borrowed expression matrices, per-gene min-max scaling and minibatch gathering.
//!
//! R hands over its own memory. A genes × cells matrix (Bioconductor) stores each
//! cell contiguously; a cells × genes matrix (VAExprs's `x_train`) stores each gene
//! contiguously. Neither is copied or transposed: a minibatch is gathered from it.

use crate::error::{Error, Result};

/// How cells lie in the borrowed column-major buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// An R matrix with genes in rows and cells in columns: one cell is contiguous.
    CellsInColumns,
    /// An R matrix with cells in rows and genes in columns: one gene is contiguous.
    CellsInRows,
}

/// A dense expression matrix viewed without copying.
#[derive(Debug, Clone, Copy)]
pub struct DenseView<'a> {
    values: &'a [f64],
    n_cells: usize,
    n_genes: usize,
    layout: Layout,
}

impl<'a> DenseView<'a> {
    pub fn new(values: &'a [f64], n_cells: usize, n_genes: usize, layout: Layout) -> Result<Self> {
        if values.len() != n_cells * n_genes {
            return Err(Error::LengthMismatch { field: "x", got: values.len(), expected: n_cells * n_genes });
        }
        Ok(DenseView { values, n_cells, n_genes, layout })
    }

    pub fn n_cells(&self) -> usize {
        self.n_cells
    }

    pub fn n_genes(&self) -> usize {
        self.n_genes
    }

    /// Value of gene `g` in cell `c`.
    #[inline]
    pub fn get(&self, c: usize, g: usize) -> f64 {
        match self.layout {
            Layout::CellsInColumns => self.values[c * self.n_genes + g],
            Layout::CellsInRows => self.values[g * self.n_cells + c],
        }
    }

    /// Visit the values of cell `c` in gene order.
    #[inline]
    fn for_cell(&self, c: usize, mut f: impl FnMut(usize, f64)) {
        match self.layout {
            Layout::CellsInColumns => {
                let row = &self.values[c * self.n_genes..(c + 1) * self.n_genes];
                row.iter().enumerate().for_each(|(g, &v)| f(g, v));
            }
            Layout::CellsInRows => (0..self.n_genes).for_each(|g| f(g, self.values[g * self.n_cells + c])),
        }
    }
}

/// Per-gene min-max scaling fitted on training cells: `(x - min) / (max - min)`,
/// with constant genes mapped to 0 instead of NaN.
#[derive(Debug, Clone, PartialEq)]
pub struct Scaling {
    pub min: Vec<f64>,
    pub max: Vec<f64>,
    inv_range: Vec<f64>,
}

impl Scaling {
    pub fn new(min: Vec<f64>, max: Vec<f64>) -> Result<Self> {
        if min.len() != max.len() {
            return Err(Error::LengthMismatch { field: "max", got: max.len(), expected: min.len() });
        }
        if min.iter().chain(&max).any(|v| !v.is_finite()) {
            return Err(Error::NonFinite { field: "minmax" });
        }
        let inv_range = min
            .iter()
            .zip(&max)
            .map(|(&lo, &hi)| if hi > lo { 1.0 / (hi - lo) } else { 0.0 })
            .collect();
        Ok(Scaling { min, max, inv_range })
    }

    /// Fit on every cell of `view`; fails on a non-finite value.
    pub fn fit(view: &DenseView) -> Result<Self> {
        let g = view.n_genes();
        let mut min = vec![f64::INFINITY; g];
        let mut max = vec![f64::NEG_INFINITY; g];
        let mut finite = true;
        for c in 0..view.n_cells() {
            view.for_cell(c, |j, v| {
                finite &= v.is_finite();
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
        if view.n_cells() == 0 {
            return Err(Error::invalid("x", "has no cells"));
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

/// Cells with optional class labels (0-based codes) and the scaling to apply.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    pub view: DenseView<'a>,
    pub scaling: &'a Scaling,
    pub labels: Option<&'a [u32]>,
    pub n_classes: usize,
}

impl<'a> Dataset<'a> {
    pub fn new(view: DenseView<'a>, scaling: &'a Scaling, labels: Option<&'a [u32]>, n_classes: usize) -> Result<Self> {
        if scaling.n_genes() != view.n_genes() {
            return Err(Error::LengthMismatch { field: "minmax", got: scaling.n_genes(), expected: view.n_genes() });
        }
        match labels {
            Some(l) => {
                if l.len() != view.n_cells() {
                    return Err(Error::LengthMismatch { field: "labels", got: l.len(), expected: view.n_cells() });
                }
                if l.iter().any(|&k| k as usize >= n_classes) {
                    return Err(Error::LabelOutOfRange { field: "labels", n_classes });
                }
            }
            None if n_classes > 0 => return Err(Error::invalid("labels", "are needed by a conditional model")),
            None => {}
        }
        Ok(Dataset { view, scaling, labels, n_classes })
    }

    pub fn n_cells(&self) -> usize {
        self.view.n_cells()
    }

    /// Width of one gathered row: scaled genes followed by the one-hot condition.
    pub fn width(&self) -> usize {
        self.view.n_genes() + self.n_classes
    }

    /// Write the rows of `cells` into `out` (row-major, `cells.len() × width()`).
    /// Fails on a non-finite value, so NA never reaches the model.
    pub fn gather(&self, cells: &[usize], out: &mut Vec<f32>) -> Result<()> {
        let w = self.width();
        let g = self.view.n_genes();
        out.clear();
        out.resize(cells.len() * w, 0.0);
        let mut finite = true;
        for (r, &c) in cells.iter().enumerate() {
            let row = &mut out[r * w..(r + 1) * w];
            self.view.for_cell(c, |j, v| {
                finite &= v.is_finite();
                row[j] = self.scaling.apply(j, v);
            });
            if let Some(l) = self.labels {
                row[g + l[c] as usize] = 1.0;
            }
        }
        if finite {
            Ok(())
        } else {
            Err(Error::NonFinite { field: "x" })
        }
    }

    /// The one-hot condition rows of `cells` (`cells.len() × n_classes`).
    pub fn conditions(&self, cells: &[usize]) -> Vec<f32> {
        one_hot(cells.iter().map(|&c| self.labels.map_or(0, |l| l[c])), cells.len(), self.n_classes)
    }
}

/// Row-major one-hot matrix of `n` codes over `k` classes (empty when `k == 0`).
pub fn one_hot(codes: impl Iterator<Item = u32>, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0f32; n * k];
    if k > 0 {
        for (i, c) in codes.enumerate().take(n) {
            out[i * k + c as usize] = 1.0;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 3-cell × 2-gene matrix in both layouts.
    const CELLS_IN_ROWS: [f64; 6] = [1.0, 2.0, 3.0, 5.0, 5.0, 5.0];
    const CELLS_IN_COLS: [f64; 6] = [1.0, 5.0, 2.0, 5.0, 3.0, 5.0];

    #[test]
    fn layouts_agree_and_constant_genes_scale_to_zero() {
        let a = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
        let b = DenseView::new(&CELLS_IN_COLS, 3, 2, Layout::CellsInColumns).unwrap();
        let sa = Scaling::fit(&a).unwrap();
        assert_eq!(sa, Scaling::fit(&b).unwrap());
        assert_eq!(sa.min, vec![1.0, 5.0]);
        assert_eq!(sa.max, vec![3.0, 5.0]);
        let (da, db) = (Dataset::new(a, &sa, None, 0).unwrap(), Dataset::new(b, &sa, None, 0).unwrap());
        let (mut oa, mut ob) = (Vec::new(), Vec::new());
        da.gather(&[2, 0, 1], &mut oa).unwrap();
        db.gather(&[2, 0, 1], &mut ob).unwrap();
        assert_eq!(oa, ob);
        assert_eq!(oa, vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.0]);
        assert!((sa.invert(0, 0.5) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn gather_appends_one_hot_labels() {
        let a = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
        let s = Scaling::fit(&a).unwrap();
        let labels = [1u32, 0, 1];
        let d = Dataset::new(a, &s, Some(&labels), 2).unwrap();
        let mut out = Vec::new();
        d.gather(&[0, 1], &mut out).unwrap();
        assert_eq!(out, vec![0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0]);
        assert_eq!(d.conditions(&[1, 2]), vec![1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn rejects_non_finite_and_bad_labels() {
        let mut v = CELLS_IN_ROWS;
        v[1] = f64::NAN;
        let a = DenseView::new(&v, 3, 2, Layout::CellsInRows).unwrap();
        assert_eq!(Scaling::fit(&a), Err(Error::NonFinite { field: "x" }));
        let s = Scaling::new(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
        let d = Dataset::new(a, &s, None, 0).unwrap();
        assert!(d.gather(&[1], &mut Vec::new()).is_err());
        assert!(d.gather(&[0], &mut Vec::new()).is_ok());
        let ok = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
        assert!(Dataset::new(ok, &s, Some(&[0, 1, 2]), 2).is_err());
        assert!(Dataset::new(ok, &s, Some(&[0, 1]), 2).is_err());
        assert!(Dataset::new(ok, &s, None, 2).is_err());
        assert!(DenseView::new(&CELLS_IN_ROWS, 2, 2, Layout::CellsInRows).is_err());
    }
}
