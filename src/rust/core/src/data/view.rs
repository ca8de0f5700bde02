//! Expression matrices borrowed from R without copying.
//!
//! A dense genes × cells matrix (Bioconductor's orientation, and the one `fit_vae()`
//! prepares) stores each cell contiguously; a dense cells × genes matrix stores each
//! gene contiguously (still read, e.g. for fits saved by earlier versions); a sparse
//! genes × cells dgCMatrix stores each cell as one slice of its CSC slots. None is
//! copied, densified or transposed: minibatches are gathered from them.

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
        match n_cells.checked_mul(n_genes) {
            Some(len) if len == values.len() => {}
            len => return Err(Error::LengthMismatch { field: "x", got: values.len(), expected: len.unwrap_or(usize::MAX) }),
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

/// A sparse genes × cells matrix in CSC form (R's dgCMatrix slots `p`, `i`, `x`):
/// cell `c` is `i[p[c]..p[c+1]]`, `x[p[c]..p[c+1]]`.
#[derive(Debug, Clone, Copy)]
pub struct CscView<'a> {
    p: &'a [i32],
    i: &'a [i32],
    x: &'a [f64],
    n_genes: usize,
}

impl<'a> CscView<'a> {
    /// Checks the slots' consistency so that gathering can never index out of range.
    pub fn new(p: &'a [i32], i: &'a [i32], x: &'a [f64], n_genes: usize) -> Result<Self> {
        let bad = |rule: &str| Error::invalid("x", format!("is not a valid sparse matrix: {rule}"));
        if p.is_empty() || p[0] != 0 {
            return Err(bad("column pointers must start at 0"));
        }
        if i.len() != x.len() || p[p.len() - 1] as usize != x.len() {
            return Err(bad("slot lengths disagree"));
        }
        if p.windows(2).any(|w| w[1] < w[0]) {
            return Err(bad("column pointers decrease"));
        }
        // Runs on every epoch over every stored value, so without a branch per value
        // (vectorised; `any` took ~1 ns a value, a serial 0.1 s per epoch at 100k cells).
        // A negative index reads as a huge unsigned one.
        let limit = n_genes.min(u32::MAX as usize) as u32;
        let out_of_range = i.chunks(1 << 16).any(|c| c.iter().fold(false, |bad, &g| bad | (g as u32 >= limit)));
        if out_of_range {
            return Err(bad("row index out of range"));
        }
        Ok(CscView { p, i, x, n_genes })
    }
}

/// Checks the index slot `idx` of a compressed sparse matrix (a dgCMatrix's `@i`, a
/// dgRMatrix's `@j`) against its pointers `p`: every index in `0..n_minor`, strictly
/// increasing within each column (row), as the Matrix classes require. Returns the rule
/// broken, if any. One pass at memory speed: R's own check of a 100,000-cell matrix
/// took seconds.
pub fn check_compressed(p: &[i32], idx: &[i32], n_minor: usize) -> std::result::Result<(), &'static str> {
    if p.first() != Some(&0) || p.windows(2).any(|w| w[1] < w[0]) || p.last().map(|&e| e as usize) != Some(idx.len()) {
        return Err("pointers");
    }
    let limit = n_minor.min(u32::MAX as usize) as u32;
    // a negative index (R's NA among them) reads as a huge unsigned one
    if idx.chunks(1 << 16).any(|c| c.iter().fold(false, |bad, &g| bad | (g as u32 >= limit))) {
        return Err("range");
    }
    for w in p.windows(2) {
        let slice = &idx[w[0] as usize..w[1] as usize];
        if slice.windows(2).any(|ab| ab[1] <= ab[0]) {
            return Err("order");
        }
    }
    Ok(())
}

/// What one pass over an expression matrix's values finds: whether all are finite,
/// whether all are counts (non-negative whole numbers), and the largest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ValueScan {
    pub finite: bool,
    pub counts: bool,
    pub max: f64,
}

/// Scans `values` once (R's checks made several passes and logical vectors as long as
/// the data, seconds at 40 million values).
pub fn scan_values(values: &[f64]) -> ValueScan {
    let (mut finite, mut counts, mut max) = (true, true, f64::NEG_INFINITY);
    for chunk in values.chunks(1 << 14) {
        for &v in chunk {
            finite &= v.is_finite();
            counts &= v >= 0.0 && v == v.trunc();
            max = max.max(v);
        }
        if !finite {
            break;
        }
    }
    ValueScan { finite, counts: finite && counts, max }
}

/// Cells of an expression matrix, dense or sparse.
#[derive(Debug, Clone, Copy)]
pub enum Source<'a> {
    Dense(DenseView<'a>),
    Sparse(CscView<'a>),
}

impl<'a> From<DenseView<'a>> for Source<'a> {
    fn from(v: DenseView<'a>) -> Self {
        Source::Dense(v)
    }
}

impl<'a> From<CscView<'a>> for Source<'a> {
    fn from(v: CscView<'a>) -> Self {
        Source::Sparse(v)
    }
}

impl<'a> Source<'a> {
    pub fn n_cells(&self) -> usize {
        match self {
            Source::Dense(d) => d.n_cells,
            Source::Sparse(s) => s.p.len() - 1,
        }
    }

    pub fn n_genes(&self) -> usize {
        match self {
            Source::Dense(d) => d.n_genes,
            Source::Sparse(s) => s.n_genes,
        }
    }

    /// The values of cell `c` as one slice, when the source stores them contiguously
    /// (a dense matrix with cells in columns).
    #[inline]
    pub fn dense_cell(&self, c: usize) -> Option<&'a [f64]> {
        match self {
            Source::Dense(d) if d.layout == Layout::CellsInColumns => Some(&d.values[c * d.n_genes..(c + 1) * d.n_genes]),
            _ => None,
        }
    }

    /// Visit the stored values of cell `c` (all genes when dense, the non-zeros when
    /// sparse), in gene order.
    #[inline]
    pub fn for_cell(&self, c: usize, mut f: impl FnMut(usize, f64)) {
        match self {
            Source::Dense(d) => d.for_cell(c, f),
            Source::Sparse(s) => {
                let (a, b) = (s.p[c] as usize, s.p[c + 1] as usize);
                for k in a..b {
                    f(s.i[k] as usize, s.x[k]);
                }
            }
        }
    }

    /// Whether genes absent from `for_cell` are zeros (sparse storage).
    pub fn is_sparse(&self) -> bool {
        matches!(self, Source::Sparse(_))
    }
}
