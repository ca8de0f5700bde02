//! Running a family over a batch: cells spread over the team, gradients and their
//! column sums in buffers kept between steps; and generation, cell by cell.

use crate::Stream;

use super::{Family, GeneCache, Info, Outputs, Row, RowGrad, MAX_GENE_PARAMS, MAX_HEADS};
use crate::buffers::{elements, reserve, resize, zeros};
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::team::{SendPtr, Team, SPLIT_MIN_VALUES};

/// Rows per block of [`BlockSums`].
const SUM_ROWS: usize = 16;

/// Column sums of a `[n x g]` gradient (a bias gradient) taken while its rows are
/// made: each block of `SUM_ROWS` rows is summed in row order into its own row of
/// `part`, and the block sums are added in block order. The order is fixed, so the
/// result does not depend on the number of threads, and no pass over the whole
/// gradient (mostly in the other core's cache) is needed afterwards.
#[derive(Clone, Debug, Default)]
pub(crate) struct BlockSums {
    part: Vec<f32>,
}

impl BlockSums {
    fn prepare(&mut self, n: usize, g: usize) -> SendPtr<f32> {
        resize(&mut self.part, n.div_ceil(SUM_ROWS) * g);
        SendPtr(self.part.as_mut_ptr())
    }

    /// Adds `row`, row `r` of the gradient, to its block's sums.
    ///
    /// # Safety
    /// `part` comes from `prepare(n, g)` with `r < n`, `row.len() == g`; rows of one
    /// block are added by one thread, in order.
    unsafe fn add(part: SendPtr<f32>, r: usize, row: &[f32]) {
        let g = row.len();
        let sums = std::slice::from_raw_parts_mut(part.get().add((r / SUM_ROWS) * g), g);
        if r % SUM_ROWS == 0 {
            sums.copy_from_slice(row);
        } else {
            sums.iter_mut().zip(row).for_each(|(s, &v)| *s += v);
        }
    }

    /// The column sums of all `n` rows into `out` (`g` values).
    pub(crate) fn total(&self, n: usize, out: &mut [f32]) {
        let g = out.len();
        out.copy_from_slice(&self.part[..g]);
        for b in 1..n.div_ceil(SUM_ROWS) {
            out.iter_mut().zip(&self.part[b * g..(b + 1) * g]).for_each(|(o, &v)| *o += v);
        }
    }
}

/// A batch's loss gradients, kept between steps.
#[derive(Default)]
pub struct LossWork {
    pub(crate) row_loss: Vec<f64>,
    /// `[n, genes]`: with respect to the output layer's pre-activations, ...
    pub(crate) d_logits: Vec<f32>,
    /// ... each head's, ...
    pub(crate) d_heads: Vec<Vec<f32>>,
    /// ... and each per-gene parameter (per cell).
    pub(crate) d_genes: Vec<Vec<f32>>,
    /// Column sums of the above: the output layer's and heads' bias gradients and the
    /// per-gene parameters' gradients.
    pub(crate) sum_logits: BlockSums,
    pub(crate) sum_heads: Vec<BlockSums>,
    pub(crate) sum_genes: Vec<BlockSums>,
    genes: GeneCache,
}

impl LossWork {
    /// Gives the gradients of `info`'s family room for batches of up to `n` cells over
    /// `g` genes, so that `batch_loss` allocates nothing for them.
    pub(crate) fn reserve(&mut self, n: usize, g: usize, info: Info) -> Result<()> {
        const WHAT: &str = "the loss gradients of a batch";
        let (nh, nq) = (info.heads.len(), info.gene_params.len());
        let values = elements(&[n, g], WHAT)?;
        let sums = elements(&[n.div_ceil(SUM_ROWS), g], WHAT)?;
        reserve(&mut self.row_loss, n, WHAT)?;
        reserve(&mut self.d_logits, values, WHAT)?;
        self.d_heads.resize_with(nh, Vec::new);
        self.d_genes.resize_with(nq, Vec::new);
        for d in self.d_heads.iter_mut().chain(self.d_genes.iter_mut()) {
            reserve(d, values, WHAT)?;
        }
        self.sum_heads.resize_with(nh, BlockSums::default);
        self.sum_genes.resize_with(nq, BlockSums::default);
        for s in std::iter::once(&mut self.sum_logits).chain(self.sum_heads.iter_mut()).chain(self.sum_genes.iter_mut()) {
            reserve(&mut s.part, sums, WHAT)?;
        }
        Ok(())
    }
}

/// The family's per-gene values, taken out of `cache` (the caller puts them back):
/// computed when missing, or always when `fresh` (the parameters change at every
/// training step).
fn take_gene_values<F: Family>(f: &F, team: &Team, params: &[&[f32]], cache: &mut GeneCache, fresh: bool) -> Box<F::Genes> {
    let (mut genes, new) = match cache.take().map(|c| c.downcast::<F::Genes>()) {
        Some(Ok(genes)) => (genes, false),
        _ => (Box::<F::Genes>::default(), true),
    };
    if fresh || new {
        f.prepare(team, params, &mut genes);
    }
    genes
}

/// Calls `f(first_row, rows_a, rows_b)` on blocks of whole rows of two row-major buffers
/// (`wa`, `wb` values per row), spread over the team when the work is large enough.
fn for_rows<F>(team: &Team, n: usize, a: &mut [f32], wa: usize, b: &mut [f64], wb: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f64]) + Sync,
{
    let threads = team.threads();
    if threads <= 1 || n * wa.max(1) < SPLIT_MIN_VALUES || n < 2 {
        f(0, &mut a[..n * wa], &mut b[..n * wb]);
        return;
    }
    // whole blocks of SUM_ROWS rows, so that block sums (see `BlockSums`) are made by
    // one chunk
    let rows = n.div_ceil(2 * threads).div_ceil(SUM_ROWS) * SUM_ROWS;
    let (pa, pb) = (SendPtr(a.as_mut_ptr()), SendPtr(b.as_mut_ptr()));
    team.run(n.div_ceil(rows), &|c| {
        let (r0, r1) = (c * rows, ((c + 1) * rows).min(n));
        // SAFETY: chunk c owns rows r0..r1 of both buffers, inside their lengths.
        let (ca, cb) = unsafe {
            (
                std::slice::from_raw_parts_mut(pa.get().add(r0 * wa), (r1 - r0) * wa),
                std::slice::from_raw_parts_mut(pb.get().add(r0 * wb), (r1 - r0) * wb),
            )
        };
        f(r0, ca, cb)
    });
}

/// Row `r` of each buffer in `ptrs` (`g` values), or empty slices past `used`.
///
/// # Safety
/// The first `used` pointers point to buffers of at least `(r + 1) * g` values whose
/// row `r` nobody else touches meanwhile.
unsafe fn rows_of<'a, const N: usize>(ptrs: &[SendPtr; N], used: usize, r: usize, g: usize) -> [&'a mut [f32]; N] {
    std::array::from_fn(|i| if i < used { std::slice::from_raw_parts_mut(ptrs[i].get().add(r * g), g) } else { &mut [][..] })
}

fn buffers<const N: usize>(v: &mut [Vec<f32>]) -> [SendPtr; N] {
    std::array::from_fn(|i| SendPtr(v.get_mut(i).map_or(std::ptr::null_mut(), |b| b.as_mut_ptr())))
}

pub(super) fn batch_loss<F: Family>(f: &F, team: &Team, out: &Outputs<'_>, batch: &Batch, params: &[&[f32]], w: &mut LossWork) -> f64 {
    let (n, g) = (batch.n, out.n_genes);
    let info = F::INFO;
    let (nh, nq) = (info.heads.len(), info.gene_params.len());
    let width = batch.input.len() / n.max(1);
    w.row_loss.clear();
    w.row_loss.resize(n, 0.0);
    resize(&mut w.d_logits, n * g);
    w.d_heads.resize_with(nh, Vec::new);
    w.d_genes.resize_with(nq, Vec::new);
    w.d_heads.iter_mut().chain(w.d_genes.iter_mut()).for_each(|d| resize(d, n * g));
    w.sum_heads.resize_with(nh, BlockSums::default);
    w.sum_genes.resize_with(nq, BlockSums::default);
    let taken = take_gene_values(f, team, params, &mut w.genes, true);
    let genes: &F::Genes = &taken;
    // block sums of the gradients this family has (the others stay unallocated)
    let s_logits = w.sum_logits.prepare(n, g);
    let s_heads: [SendPtr; MAX_HEADS] =
        std::array::from_fn(|i| w.sum_heads.get_mut(i).map_or(SendPtr(std::ptr::null_mut()), |s| s.prepare(n, g)));
    let s_genes: [SendPtr; MAX_GENE_PARAMS] =
        std::array::from_fn(|i| w.sum_genes.get_mut(i).map_or(SendPtr(std::ptr::null_mut()), |s| s.prepare(n, g)));
    let (p_heads, p_genes) = (buffers::<MAX_HEADS>(&mut w.d_heads), buffers::<MAX_GENE_PARAMS>(&mut w.d_genes));
    for_rows(team, n, &mut w.d_logits, g, &mut w.row_loss, 1, |r0, dls, loss| {
        let mut scratch = F::Scratch::default();
        for (i, (dl, lrow)) in dls.chunks_mut(g).zip(loss.iter_mut()).enumerate() {
            let r = r0 + i;
            let row = Row {
                logits: &out.logits[r * g..(r + 1) * g],
                heads: std::array::from_fn(|h| if h < nh { &out.heads[h][r * g..(r + 1) * g] } else { &[][..] }),
                target: if info.counts { &[] } else { &batch.input[r * width..r * width + g] },
                counts: if info.counts { &batch.counts[r * g..(r + 1) * g] } else { &[] },
                log_library: if info.counts { batch.log_library[r] as f64 } else { 0.0 },
                activation: out.activation,
                scale: 1.0 / n as f32,
            };
            // SAFETY: row r of the heads' and genes' gradients (sized n x g above)
            // belongs to the block of rows this call owns; so do row r's block sums.
            unsafe {
                let mut grad = RowGrad { logits: dl, heads: rows_of(&p_heads, nh, r, g), genes: rows_of(&p_genes, nq, r, g) };
                *lrow = f.row(&row, genes, &mut scratch, &mut grad);
                BlockSums::add(s_logits, r, grad.logits);
                for h in 0..nh {
                    BlockSums::add(s_heads[h], r, grad.heads[h]);
                }
                for q in 0..nq {
                    BlockSums::add(s_genes[q], r, grad.genes[q]);
                }
            }
        }
    });
    w.genes = Some(taken);
    w.row_loss.iter().sum::<f64>() / n as f64
}

#[allow(clippy::too_many_arguments)]
pub(super) fn generate<F: Family>(
    f: &F,
    team: &Team,
    out: &Outputs<'_>,
    params: &[&[f32]],
    log_library: &[f64],
    cache: &mut GeneCache,
    rng: &mut Stream,
    means: bool,
    sink: &mut dyn FnMut(usize, &[f64]) -> Result<()>,
) -> Result<()> {
    let n = out.n;
    let info = F::INFO;
    if info.counts && log_library.len() != n {
        return Err(Error::LengthMismatch { field: "library sizes", got: log_library.len(), expected: n });
    }
    let genes = take_gene_values(f, team, params, cache, false);
    let result = rows_generated(f, team, out, &genes, log_library, rng, means, sink);
    *cache = Some(genes);
    result
}

/// Rows a task of `rows_generated` draws at a time.
const GENERATED_ROWS: usize = 32;

/// `generate`'s loop over the rows of `out`, with the per-gene values `genes`: waves of
/// rows drawn on the team's threads into a buffer, then handed to `sink` in order. Each
/// row draws from a generator of its own, seeded from one number of `rng`'s stream and
/// the row's index, so that the values do not depend on the number of threads.
#[allow(clippy::too_many_arguments)]
fn rows_generated<F: Family>(
    f: &F,
    team: &Team,
    out: &Outputs<'_>,
    genes: &F::Genes,
    log_library: &[f64],
    rng: &mut Stream,
    means: bool,
    sink: &mut dyn FnMut(usize, &[f64]) -> Result<()>,
) -> Result<()> {
    use rand::{RngExt, SeedableRng};
    let (n, g) = (out.n, out.n_genes);
    let info = F::INFO;
    let base: u64 = if means { 0 } else { rng.random() };
    let wave = GENERATED_ROWS * team.threads().max(1);
    let rows_in_buffer = wave.min(n);
    let mut values = elements(&[rows_in_buffer, g], "generated cells").and_then(|len| zeros::<f64>(len, "generated cells"))?;
    let ptr = SendPtr(values.as_mut_ptr());
    for start in (0..n).step_by(wave) {
        let m = wave.min(n - start);
        let task = |t: usize| {
            let mut scratch = F::Scratch::default();
            for k in t * GENERATED_ROWS..((t + 1) * GENERATED_ROWS).min(m) {
                let r = start + k;
                let row = Row {
                    logits: &out.logits[r * g..(r + 1) * g],
                    heads: std::array::from_fn(|h| if h < info.heads.len() { &out.heads[h][r * g..(r + 1) * g] } else { &[][..] }),
                    target: &[],
                    counts: &[],
                    log_library: if info.counts { log_library[r] } else { 0.0 },
                    activation: out.activation,
                    scale: 1.0,
                };
                // SAFETY: row k of the buffer belongs to this task alone; the buffer holds
                // `rows_in_buffer >= m` rows and outlives `team.run`.
                let dest = unsafe { std::slice::from_raw_parts_mut(ptr.get().add(k * g), g) };
                if means {
                    f.mean(&row, genes, &mut scratch, dest);
                } else {
                    let mut row_rng = Stream::seed_from_u64(base ^ (r as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
                    f.generate(&row, genes, &mut scratch, &mut row_rng, dest);
                }
            }
        };
        let tasks = m.div_ceil(GENERATED_ROWS);
        if tasks > 1 && m * g >= SPLIT_MIN_VALUES {
            team.run(tasks, &task);
        } else {
            (0..tasks).for_each(task);
        }
        for k in 0..m {
            sink(start + k, &values[k * g..(k + 1) * g])?;
        }
    }
    Ok(())
}
