//! Borrowed expression matrices, their transforms and minibatch gathering.
//!
//! R hands over its own memory. A dense genes × cells matrix (Bioconductor) stores
//! each cell contiguously; a dense cells × genes matrix (VAExprs's `x_train`) stores
//! each gene contiguously; a sparse genes × cells dgCMatrix stores each cell as one
//! slice of its CSC slots. None is copied, densified or transposed: a minibatch is
//! gathered from it.

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

    /// Fit on every cell of `source` (implicit zeros of a sparse matrix included);
    /// fails on a non-finite value.
    pub fn fit<'a>(source: impl Into<Source<'a>>) -> Result<Self> {
        let source = source.into();
        let g = source.n_genes();
        let mut min = vec![f64::INFINITY; g];
        let mut max = vec![f64::NEG_INFINITY; g];
        let mut stored = vec![0usize; g];
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

/// What the model reads from a cell.
#[derive(Debug, Clone, Copy)]
pub enum Transform<'a> {
    /// Min-max-scaled values; the target is the scaled input itself (bce, mse).
    MinMax(&'a Scaling),
    /// Raw counts: the encoder reads `log1p(count * target_sum / library size)`,
    /// the target is the counts and the library size is kept (poisson, nb, zinb).
    Counts { target_sum: f64 },
}

/// A gathered minibatch, row-major.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub n: usize,
    /// `[n, genes + classes]`: transformed genes, then the one-hot condition.
    pub input: Vec<f32>,
    /// `[n, genes]` counts (count transform only).
    pub counts: Vec<f32>,
    /// `[n]` natural log of each cell's library size (count transform only).
    pub log_library: Vec<f32>,
    /// `[n, classes]` one-hot condition.
    pub condition: Vec<f32>,
}

/// Cells with optional class labels (0-based codes) and the transform to apply.
#[derive(Debug, Clone, Copy)]
pub struct Dataset<'a> {
    pub source: Source<'a>,
    pub transform: Transform<'a>,
    pub labels: Option<&'a [u32]>,
    pub n_classes: usize,
}

impl<'a> Dataset<'a> {
    pub fn new(
        source: impl Into<Source<'a>>,
        transform: Transform<'a>,
        labels: Option<&'a [u32]>,
        n_classes: usize,
    ) -> Result<Self> {
        let source = source.into();
        if let Transform::MinMax(scaling) = transform {
            if scaling.n_genes() != source.n_genes() {
                return Err(Error::LengthMismatch { field: "minmax", got: scaling.n_genes(), expected: source.n_genes() });
            }
        }
        match labels {
            Some(l) => {
                if l.len() != source.n_cells() {
                    return Err(Error::LengthMismatch { field: "labels", got: l.len(), expected: source.n_cells() });
                }
                if l.iter().any(|&k| k as usize >= n_classes) {
                    return Err(Error::LabelOutOfRange { field: "labels", n_classes });
                }
            }
            None if n_classes > 0 => return Err(Error::invalid("labels", "are needed by a conditional model")),
            None => {}
        }
        Ok(Dataset { source, transform, labels, n_classes })
    }

    pub fn n_cells(&self) -> usize {
        self.source.n_cells()
    }

    pub fn n_genes(&self) -> usize {
        self.source.n_genes()
    }

    /// Width of one input row: genes followed by the one-hot condition.
    pub fn width(&self) -> usize {
        self.source.n_genes() + self.n_classes
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
        batch.n = n;
        // Every value of `input` (and of `counts`) is written below, row by row on the
        // threads, so the buffers are not zeroed here.
        batch.input.resize(n * w, 0.0);
        batch.condition = self.conditions(cells);
        let counts = matches!(self.transform, Transform::Counts { .. });
        let sparse = self.source.is_sparse();
        batch.log_library.clear();
        if counts {
            batch.counts.resize(n * g, 0.0);
        } else {
            batch.counts.clear();
        }
        let zero: Vec<f32> = match self.transform {
            Transform::MinMax(scaling) if self.source.is_sparse() => (0..g).map(|j| scaling.apply(j, 0.0)).collect(),
            _ => Vec::new(),
        };
        // one cell: its input row, and for counts its count row and log library size
        let fill = |c: usize, row: &mut [f32], count_row: &mut [f32], log_lib: &mut f32| -> Result<()> {
            match self.transform {
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
                Transform::Counts { target_sum } => {
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
        if self.n_classes > 0 {
            for r in 0..n {
                batch.input[r * w + g..(r + 1) * w].copy_from_slice(&batch.condition[r * self.n_classes..(r + 1) * self.n_classes]);
            }
        }
        Ok(())
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
        let sa = Scaling::fit(a).unwrap();
        assert_eq!(sa, Scaling::fit(b).unwrap());
        assert_eq!(sa.min, vec![1.0, 5.0]);
        assert_eq!(sa.max, vec![3.0, 5.0]);
        let t = Transform::MinMax(&sa);
        let (da, db) = (Dataset::new(a, t, None, 0).unwrap(), Dataset::new(b, t, None, 0).unwrap());
        let (mut oa, mut ob) = (Batch::default(), Batch::default());
        da.gather(&[2, 0, 1], &mut oa).unwrap();
        db.gather(&[2, 0, 1], &mut ob).unwrap();
        assert_eq!(oa.input, ob.input);
        assert_eq!(oa.input, vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.0]);
        assert!((sa.invert(0, 0.5) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn gather_appends_one_hot_labels() {
        let a = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
        let s = Scaling::fit(a).unwrap();
        let labels = [1u32, 0, 1];
        let d = Dataset::new(a, Transform::MinMax(&s), Some(&labels), 2).unwrap();
        let mut out = Batch::default();
        d.gather(&[0, 1], &mut out).unwrap();
        assert_eq!(out.input, vec![0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0]);
        assert_eq!(d.conditions(&[1, 2]), vec![1.0, 0.0, 0.0, 1.0]);
    }

    #[test]
    fn rejects_non_finite_and_bad_labels() {
        let mut v = CELLS_IN_ROWS;
        v[1] = f64::NAN;
        let a = DenseView::new(&v, 3, 2, Layout::CellsInRows).unwrap();
        assert_eq!(Scaling::fit(a), Err(Error::NonFinite { field: "x" }));
        let s = Scaling::new(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
        let d = Dataset::new(a, Transform::MinMax(&s), None, 0).unwrap();
        assert!(d.gather(&[1], &mut Batch::default()).is_err());
        assert!(d.gather(&[0], &mut Batch::default()).is_ok());
        let ok = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
        let t = Transform::MinMax(&s);
        assert!(Dataset::new(ok, t, Some(&[0, 1, 2]), 2).is_err());
        assert!(Dataset::new(ok, t, Some(&[0, 1]), 2).is_err());
        assert!(Dataset::new(ok, t, None, 2).is_err());
        assert!(DenseView::new(&CELLS_IN_ROWS, 2, 2, Layout::CellsInRows).is_err());
    }

    // The 2 x 3 genes x cells matrix [[0, 2, 0], [5, 0, 1]] as CSC and dense.
    const P: [i32; 4] = [0, 1, 2, 3];
    const I: [i32; 3] = [1, 0, 1];
    const X: [f64; 3] = [5.0, 2.0, 1.0];
    const DENSE: [f64; 6] = [0.0, 5.0, 2.0, 0.0, 0.0, 1.0];

    #[test]
    fn sparse_gathers_like_dense() {
        let sp = CscView::new(&P, &I, &X, 2).unwrap();
        let de = DenseView::new(&DENSE, 3, 2, Layout::CellsInColumns).unwrap();
        let (ss, sd) = (Scaling::fit(sp).unwrap(), Scaling::fit(de).unwrap());
        assert_eq!(ss, sd);
        let labels = [0u32, 1, 1];
        for t in [Transform::MinMax(&ss), Transform::Counts { target_sum: 10.0 }] {
            let a = Dataset::new(sp, t, Some(&labels), 2).unwrap();
            let b = Dataset::new(de, t, Some(&labels), 2).unwrap();
            let (mut ba, mut bb) = (Batch::default(), Batch::default());
            a.gather(&[2, 0, 1], &mut ba).unwrap();
            b.gather(&[2, 0, 1], &mut bb).unwrap();
            assert_eq!(ba.input, bb.input);
            assert_eq!(ba.counts, bb.counts);
            assert_eq!(ba.log_library, bb.log_library);
        }
        let d = Dataset::new(sp, Transform::Counts { target_sum: 10.0 }, None, 0).unwrap();
        let mut b = Batch::default();
        d.gather(&[1], &mut b).unwrap();
        assert_eq!(b.counts, vec![2.0, 0.0]);
        assert_eq!(b.input, vec![(2.0f32 * 10.0 / 2.0).ln_1p(), 0.0]);
        assert_eq!(b.log_library, vec![2f32.ln()]);
    }

    #[test]
    fn counts_must_be_whole_and_cells_non_empty() {
        let x = [0.5, 2.0, 1.0];
        let sp = CscView::new(&P, &I, &x, 2).unwrap();
        let d = Dataset::new(sp, Transform::Counts { target_sum: 1e4 }, None, 0).unwrap();
        assert!(d.gather(&[0], &mut Batch::default()).unwrap_err().to_string().contains("whole counts"));
        assert!(d.gather(&[1, 2], &mut Batch::default()).is_ok());
        let empty = CscView::new(&[0, 0, 1], &[0], &[3.0], 2).unwrap();
        let d = Dataset::new(empty, Transform::Counts { target_sum: 1e4 }, None, 0).unwrap();
        assert!(d.gather(&[0], &mut Batch::default()).is_err());
        // malformed slots are refused up front
        assert!(CscView::new(&[0, 2], &[0, 5], &[1.0, 1.0], 2).is_err());
        assert!(CscView::new(&[0, 2], &[0, -1], &[1.0, 1.0], 2).is_err());
        assert!(CscView::new(&[0, 2], &[0, 2], &[1.0, 1.0], 2).is_err());
        // a bad index far into a long slot (past the first block of the check)
        let n = 200_001;
        let mut idx: Vec<i32> = (0..n).map(|k| (k % 7) as i32).collect();
        let ones = vec![1.0; n];
        assert!(CscView::new(&[0, n as i32], &idx, &ones, 7).is_ok());
        idx[n - 2] = 7;
        assert!(CscView::new(&[0, n as i32], &idx, &ones, 7).is_err());
        idx[n - 2] = i32::MIN;
        assert!(CscView::new(&[0, n as i32], &idx, &ones, 7).is_err());
        assert!(CscView::new(&[1, 2], &[0], &[1.0], 2).is_err());
        assert!(CscView::new(&[0, 2, 1], &[0, 1], &[1.0, 1.0], 2).is_err());
    }
}
