//! Expression matrices borrowed from R without copying.
//!
//! A dense genes × cells matrix (Bioconductor's orientation, and the one `fit_vae()`
//! prepares) stores each cell contiguously; a dense cells × genes matrix stores each
//! gene contiguously (still read, e.g. for fits saved by earlier versions); a sparse
//! genes × cells dgCMatrix stores each cell as one slice of its CSC slots. None is
//! copied, densified or transposed: minibatches are gathered from them.

use crate::buffers::{from_fn, zeros};
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
            counts &= crate::simd::is_count(v);
            max = max.max(v);
        }
        if !finite {
            break;
        }
    }
    ValueScan { finite, counts: finite && counts, max }
}

/// CSC slots (R's dgCMatrix: `p`, `i`, `x`) of a matrix.
pub type CscSlots = (Vec<i32>, Vec<i32>, Vec<f64>);

/// A dense column-major matrix of `n_rows` rows (`values(k)` its `k`-th value, `len` of
/// them) as the CSC slots of its non-zero values, in one pass after counting them; or
/// `None` when more than `max_share` of the values are non-zero (the dense matrix is
/// then the smaller). NaN is kept as a non-zero value.
pub fn compress_columns(len: usize, n_rows: usize, max_share: f64, values: impl Fn(usize) -> f64) -> Result<Option<CscSlots>> {
    if n_rows == 0 || len % n_rows != 0 {
        return Err(Error::invalid("x", "has inconsistent dimensions"));
    }
    let nnz = (0..len).filter(|&k| values(k) != 0.0).count();
    if nnz as f64 > max_share * len as f64 {
        return Ok(None);
    }
    if nnz > i32::MAX as usize {
        return Err(Error::invalid("x", "has more non-zero values than a dgCMatrix holds"));
    }
    let n_cols = len / n_rows;
    let (mut p, mut i, mut x) =
        (zeros::<i32>(n_cols + 1, "a sparse block")?, zeros::<i32>(nnz, "a sparse block")?, zeros::<f64>(nnz, "a sparse block")?);
    let mut k = 0;
    for c in 0..n_cols {
        for r in 0..n_rows {
            let v = values(c * n_rows + r);
            if v != 0.0 {
                i[k] = r as i32;
                x[k] = v;
                k += 1;
            }
        }
        p[c + 1] = k as i32;
    }
    Ok(Some((p, i, x)))
}

/// What `transpose_scan` finds besides the `ValueScan`: each cell's sum (library
/// size) and each gene's range.
#[derive(Debug, Clone, PartialEq)]
pub struct DenseScan {
    pub values: ValueScan,
    pub cell_sums: Vec<f64>,
    pub gene_min: Vec<f64>,
    pub gene_max: Vec<f64>,
}

/// Cells and genes per tile of `transpose_scan`: runs of 1024 cells (8 KiB) read from
/// each gene, so that the hardware prefetchers keep up, and a tile of 128 KiB that
/// stays in the second-level cache while it is read by genes and written by cells.
pub(crate) const TILE_CELLS: usize = 1024;
const TILE_GENES: usize = 8;

/// An R matrix of cells in rows (`x`: `n_cells x n_genes`, column-major, as the user
/// holds it) turned into genes x cells (`out`, one cell contiguous: what minibatches
/// are gathered from) in one pass of tiles that also scans it: finiteness, counts,
/// the largest value, every cell's sum and every gene's range. R's `t()`, `colSums()`
/// and the checks were four passes over the data and took longer than an epoch.
/// `threads` threads take contiguous ranges of cells. Cell sums add the genes in order
/// (exact for counts below 2^53); the results do not depend on `threads`.
pub fn transpose_scan(x: &[f64], n_cells: usize, n_genes: usize, out: &mut [f64], threads: usize) -> Result<DenseScan> {
    let len = n_cells.checked_mul(n_genes).ok_or(Error::invalid("x", "has too many values"))?;
    if x.len() != len || out.len() != len {
        return Err(Error::LengthMismatch { field: "x", got: x.len().min(out.len()), expected: len });
    }
    let mut cell_sums = zeros(n_cells, "the library sizes")?;
    // ranges of whole tiles, one per thread
    let tiles = n_cells.div_ceil(TILE_CELLS).max(1);
    let threads = threads.clamp(1, tiles);
    let per = tiles.div_ceil(threads) * TILE_CELLS;
    let mut parts = Vec::with_capacity(threads);
    for _ in 0..threads {
        let lo = from_fn(n_genes, "the genes' ranges", |_| f64::INFINITY)?;
        let hi = from_fn(n_genes, "the genes' ranges", |_| f64::NEG_INFINITY)?;
        parts.push((lo, hi, true, true));
    }
    std::thread::scope(|scope| {
        let (mut sums_left, mut out_left) = (&mut cell_sums[..], &mut out[..]);
        let mut start = 0;
        for part in parts.iter_mut() {
            let m = per.min(n_cells - start);
            let (sums, rest) = std::mem::take(&mut sums_left).split_at_mut(m);
            sums_left = rest;
            let (dest, rest) = std::mem::take(&mut out_left).split_at_mut(m * n_genes);
            out_left = rest;
            let first = start;
            scope.spawn(move || {
                let (lo, hi, finite, counts) = part;
                let (f, c) = transpose_cells(x, n_cells, n_genes, first, dest, sums, lo, hi);
                *finite = f;
                *counts = c;
            });
            start += m;
        }
    });
    let (mut gene_min, mut gene_max, mut finite, mut counts) = parts.remove(0);
    for (lo, hi, f, c) in parts {
        gene_min.iter_mut().zip(&lo).for_each(|(a, &b)| *a = a.min(b));
        gene_max.iter_mut().zip(&hi).for_each(|(a, &b)| *a = a.max(b));
        finite &= f;
        counts &= c;
    }
    let max = gene_max.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    Ok(DenseScan { values: ValueScan { finite, counts: finite && counts, max }, cell_sums, gene_min, gene_max })
}

/// `transpose_scan` of the cells `first..first + sums.len()` into `out` (their columns),
/// with their sums, the genes' ranges over them folded into `lo` and `hi`; returns
/// whether all values were finite and all counts.
#[allow(clippy::too_many_arguments)]
fn transpose_cells(
    x: &[f64],
    n_cells: usize,
    n_genes: usize,
    first: usize,
    out: &mut [f64],
    sums: &mut [f64],
    lo: &mut [f64],
    hi: &mut [f64],
) -> (bool, bool) {
    let (mut finite, mut counts) = (true, true);
    // a tile is read gene by gene (contiguous in `x`), then written cell by cell
    // (contiguous in `out`) while it is in the caches
    for t0 in (0..sums.len()).step_by(TILE_CELLS) {
        let nc = TILE_CELLS.min(sums.len() - t0);
        let c0 = first + t0;
        let tile_sums = &mut sums[t0..t0 + nc];
        for g0 in (0..n_genes).step_by(TILE_GENES) {
            let ng = TILE_GENES.min(n_genes - g0);
            for g in g0..g0 + ng {
                let col = &x[g * n_cells + c0..g * n_cells + c0 + nc];
                let (f, c) = crate::simd::column_scan(col, tile_sums, &mut lo[g], &mut hi[g]);
                finite &= f;
                counts &= c;
            }
            // the tile's columns were just read: written cell by cell from the caches
            for c in 0..nc {
                let dest = &mut out[(t0 + c) * n_genes + g0..(t0 + c) * n_genes + g0 + ng];
                for (k, d) in dest.iter_mut().enumerate() {
                    *d = x[(g0 + k) * n_cells + c0 + c];
                }
            }
        }
    }
    (finite, counts)
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
