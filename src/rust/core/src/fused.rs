//! The fused training step: forward pass, loss, backward pass and optimizer update of
//! the dense VAE/CVAE written out by hand over plain `f32` buffers.
//!
//! burn's autodiff runs the same model op by op (an allocation, a graph node and a pass
//! over memory for each of dozens of element-wise operations per step, and an unfused
//! optimizer update), which made its epochs 2-4x the time of the step's matrix products
//! alone. Here every matrix product goes straight to a kernel: for batches of up to 64
//! cells this crate's own (`kernels`, which read the large operand in place), otherwise
//! `matrixmultiply`'s (the one burn's CPU backend calls too); element-wise work is done
//! in one pass per layer, the buffers are allocated once per trainer, and each
//! optimizer update is one loop.
//! The arithmetic is the model's and the optimizers' as burn defines them: the tests
//! compare this step with burn's autodiff and burn's optimizers on every likelihood,
//! activation and optimizer.
//!
//! Threads: a product is split into blocks of rows or columns of its result and
//! element-wise loops into blocks of cells; every output value is computed by one thread
//! in the same order whatever the thread count, and reductions run in a fixed order, so
//! results do not depend on the number of threads.

use rand::rngs::StdRng;

use crate::counts;
use crate::kernels::{self, Isa};
use crate::data::Batch;
use crate::error::Result;
use crate::team::Team;
use crate::spec::{Activation, Likelihood, ModelSpec, OptimizerKind, TrainSpec};
use crate::train::standard_normal;
use crate::weights::DenseWeights;

/// Products with fewer multiply-adds than this run on one thread: below it, handing work
/// to a second thread costs more than it saves.
const SPLIT_MIN_MADDS: usize = 1 << 19;
/// Element-wise loops over fewer values than this run on one thread.
const SPLIT_MIN_VALUES: usize = 1 << 14;
/// Column sums, and copies of `A^T` for `product_nt`, of fewer values than this stay on
/// one thread.
const COL_SUMS_SPLIT_MIN: usize = 1 << 18;

struct SendPtr<T = f32>(*mut T);

impl<T> Clone for SendPtr<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The pointer (a method, so that closures capture the whole `Send` wrapper).
    #[inline(always)]
    fn get(self) -> *mut T {
        self.0
    }
}
// SAFETY: used only to hand disjoint parts of one buffer to the team's threads, which
// all finish before `Team::run` returns and the buffer is used again.
unsafe impl<T> Send for SendPtr<T> {}
unsafe impl<T> Sync for SendPtr<T> {}

/// Products over batches of at most this many cells use `kernels` (no packing of the
/// large operand), larger ones `matrixmultiply`, whose packing is then shared by more
/// cells. Measured with the training step alone (1 thread): 32 cells and 19,595 genes
/// (W2) 0.143 -> 0.092 s/epoch; 128 cells and 2,000 genes (W3) 0.586 -> 0.626 at 1
/// thread and 0.340 -> 0.38 at 2.
const KERNELS_MAX_CELLS: usize = 64;

/// How many tiles ahead (in the same rows) the kernel step fetches parameters and
/// moments for the optimizer update (W2, 1 thread: 1 tile ahead -3%, 2 -10%, 3 -7%,
/// 6 -2%), for kernels of at least `PREFETCH_MIN_VALUES` values: smaller ones (W1's
/// 512k) stay in cache, and fetching ahead made W1 10% slower.
const PREFETCH_TILES: usize = 2;
const PREFETCH_MIN_VALUES: usize = 1 << 21;

/// Inner dimensions at least this long, and 8 times the longer outer one, are cut into
/// chunks of `K_CHUNK` whose products are summed in a fixed order (see `matmul`).
const K_SPLIT_MIN: usize = 1024;
const K_CHUNK: usize = 512;

thread_local! {
    /// Partial products of a split inner dimension, reused between calls.
    static PARTIAL: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// `C[m x n] = beta * C + A[m x k] * B[k x n]`, `C` row-major. `A` is stored row-major
/// as `m x k`, or as `k x m` when `a_t`; `B` as `k x n`, or as `n x k` when `b_t`.
///
/// Threads share a product in one of two ways. A long inner dimension with a small
/// result (e.g. the input layer's `[cells x genes] * [genes x units]`) is always cut
/// into fixed chunks whose partial products are summed in chunk order, with one thread
/// or several, so the arithmetic does not depend on the thread count. Otherwise the
/// result is cut into blocks of rows or columns (several per thread, so that a thread
/// that wakes late still finds work); each value is then computed exactly as by one
/// call.
///
/// With at most `KERNELS_MAX_CELLS` rows (cells), `A` not transposed and `beta` 0 or 1,
/// the product goes to `product_nn` or `product_nt` instead (`kernels`), whose results
/// are cut only into blocks of rows or columns.
#[allow(clippy::too_many_arguments)]
fn matmul(team: &Team, m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, beta: f32, c: &mut [f32]) {
    matmul_bias(team, m, k, n, a, a_t, b, b_t, beta, None, c)
}

/// `matmul` with `C = bias (each row) + A * B` when `bias` is given (then `beta` is
/// ignored); each block sets its part of the bias just before its product.
#[allow(clippy::too_many_arguments)]
fn matmul_bias(team: &Team, m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, beta: f32, bias: Option<&[f32]>, c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul: buffer too small");
    assert!(bias.is_none_or(|b| b.len() == n), "matmul: bias of the wrong length");
    let beta = if bias.is_some() { 1.0 } else { beta };
    let bias_ptr = bias.map(|b| b.as_ptr() as usize);
    if m == 0 || n == 0 {
        return;
    }
    if let (Some(isa), false, true, true) = (Isa::detect(), a_t, beta == 0.0 || beta == 1.0, m <= KERNELS_MAX_CELLS) {
        if b_t {
            return product_nt(team, isa, m, k, n, a, b, beta == 1.0, c);
        }
        return product_nn(team, isa, m, k, n, a, b, beta == 1.0, bias, c);
    }
    let (rsa, csa) = if a_t { (1isize, m as isize) } else { (k as isize, 1isize) };
    let (rsb, csb) = if b_t { (1isize, k as isize) } else { (n as isize, 1isize) };
    let (ap, bp) = (a.as_ptr() as usize, b.as_ptr() as usize);
    // SAFETY (all calls below): the strides describe matrices inside the slices checked
    // above, offsets stay inside them, and each call writes its own block of its output.
    let block = move |r0: usize, r1: usize, c0: usize, c1: usize, k0: usize, k1: usize, beta: f32, out: SendPtr, ldo: usize| unsafe {
        let out = out.get();
        if let (Some(bp), 1.0) = (bias_ptr, beta) {
            let bias = std::slice::from_raw_parts((bp as *const f32).add(c0), c1 - c0);
            for r in r0..r1 {
                std::slice::from_raw_parts_mut(out.add(r * ldo + c0), c1 - c0).copy_from_slice(bias);
            }
        }
        matrixmultiply::sgemm(
            r1 - r0,
            k1 - k0,
            c1 - c0,
            1.0,
            (ap as *const f32).offset(r0 as isize * rsa + k0 as isize * csa),
            rsa,
            csa,
            (bp as *const f32).offset(k0 as isize * rsb + c0 as isize * csb),
            rsb,
            csb,
            beta,
            out.add(r0 * ldo + c0),
            ldo as isize,
            1,
        )
    };
    if k >= K_SPLIT_MIN && k >= 8 * m.max(n) {
        let parts = k.div_ceil(K_CHUNK);
        PARTIAL.with(|cell| {
            let mut partial = cell.borrow_mut();
            if partial.len() < parts * m * n {
                partial.resize(parts * m * n, 0.0);
            }
            let partial = &mut partial[..parts * m * n];
            let base = SendPtr(partial.as_mut_ptr());
            team.run(parts, &|p| {
                let (k0, k1) = (p * K_CHUNK, ((p + 1) * K_CHUNK).min(k));
                // chunk p writes only its own m x n block of `partial`
                block(0, m, 0, n, k0, k1, 0.0, SendPtr(unsafe { base.get().add(p * m * n) }), n)
            });
            let c = &mut c[..m * n];
            if let Some(bias) = bias {
                for (row, part) in c.chunks_mut(n).zip(partial[..m * n].chunks(n)) {
                    row.iter_mut().zip(bias.iter().zip(part)).for_each(|(c, (&b, &v))| *c = b + v);
                }
            } else if beta == 0.0 {
                c.copy_from_slice(&partial[..m * n]);
            } else {
                c.iter_mut().zip(&partial[..m * n]).for_each(|(c, &v)| *c = *c * beta + v);
            }
            for p in 1..parts {
                c.iter_mut().zip(&partial[p * m * n..(p + 1) * m * n]).for_each(|(c, &v)| *c += v);
            }
        });
        return;
    }
    let cp = SendPtr(c.as_mut_ptr());
    let threads = team.threads();
    if threads <= 1 || m * n * k < SPLIT_MIN_MADDS {
        block(0, m, 0, n, 0, k, beta, cp, n);
        return;
    }
    // blocks of the longer side of the result, in whole kernel tiles (multiples of 16)
    let split_cols = n >= m;
    let len = if split_cols { n } else { m };
    let step = (len.div_ceil(4 * threads).div_ceil(16) * 16).max(64);
    let parts = len.div_ceil(step);
    team.run(parts, &|p| {
        let (s, e) = (p * step, ((p + 1) * step).min(len));
        if split_cols {
            block(0, m, s, e, 0, k, beta, cp, n)
        } else {
            block(s, e, 0, n, 0, k, beta, cp, n)
        }
    });
}

/// How work on `m x n` values, in tiles of `mr x nr`, is shared among threads:
/// `(cut_columns, step, parts)`, in steps of whole tiles, with about four parts per
/// thread along the side that gives more of them (one part when `madds` is too little
/// work to share).
fn shares(team: &Team, m: usize, n: usize, (mr, nr): (usize, usize), madds: usize) -> (bool, usize, usize) {
    let threads = team.threads();
    if threads <= 1 || madds < SPLIT_MIN_MADDS {
        return (true, n, 1);
    }
    let cut = |len: usize, unit: usize| {
        let step = len.div_ceil(4 * threads).div_ceil(unit) * unit;
        (step, len.div_ceil(step))
    };
    let (col_step, col_parts) = cut(n, nr);
    let (row_step, row_parts) = cut(m, mr);
    if col_parts >= row_parts {
        (true, col_step, col_parts)
    } else {
        (false, row_step, row_parts)
    }
}

/// `matmul_bias` with `A` and `B` not transposed, by `kernels::nn`: each part of the
/// result (a block of rows or columns) sets its bias, then adds `A * B` over the whole
/// inner dimension.
#[allow(clippy::too_many_arguments)]
fn product_nn(team: &Team, isa: Isa, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], accumulate: bool, bias: Option<&[f32]>, c: &mut [f32]) {
    let shape = kernels::best_shape(isa, m, n);
    let (by_cols, step, parts) = shares(team, m, n, kernels::tile(isa, shape), m * n * k);
    let len = if by_cols { n } else { m };
    let (ap, bp, cp) = (a.as_ptr() as usize, b.as_ptr() as usize, SendPtr(c.as_mut_ptr()));
    team.run(parts, &|p| {
        let (s, e) = (p * step, ((p + 1) * step).min(len));
        let (r0, r1, c0, c1) = if by_cols { (0, m, s, e) } else { (s, e, 0, n) };
        // SAFETY: part p writes only rows r0..r1, columns c0..c1 of C; the sizes were
        // checked by `matmul_bias`, and `isa` came from `Isa::detect`.
        unsafe {
            let out = cp.get();
            if let Some(bias) = bias {
                for r in r0..r1 {
                    std::slice::from_raw_parts_mut(out.add(r * n + c0), c1 - c0).copy_from_slice(&bias[c0..c1]);
                }
            }
            let (a0, b0) = ((ap as *const f32).add(r0 * k), (bp as *const f32).add(c0));
            kernels::nn(isa, shape, r1 - r0, k, c1 - c0, a0, k, b0, n, out.add(r0 * n + c0), n, accumulate || bias.is_some());
        }
    });
}

thread_local! {
    /// `A^T` packed for `product_nt`, and the transposed result, reused between calls.
    static NT_BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
}

/// `C [m x n] (+)= A [m x k] * B^T` with `B` stored `n x k` (the gradient through a
/// layer, `B` its kernel): computed as `(B * A^T)^T`, so that `B`, the large operand,
/// is read in place and only `A^T`, `k` rows of `m` cells, is packed.
#[allow(clippy::too_many_arguments)]
fn product_nt(team: &Team, isa: Isa, m: usize, k: usize, n: usize, a: &[f32], b: &[f32], accumulate: bool, c: &mut [f32]) {
    let nr = kernels::tile(isa, kernels::Shape::Narrow).1;
    let mp = m.div_ceil(nr) * nr;
    NT_BUFFERS.with(|cell| {
        let mut bufs = cell.borrow_mut();
        let (at, ct) = &mut *bufs;
        resize(at, k * mp);
        resize(ct, n * mp);
        let (ap, atp, bp, ctp, cp) = (a.as_ptr() as usize, SendPtr(at.as_mut_ptr()), b.as_ptr() as usize, SendPtr(ct.as_mut_ptr()), SendPtr(c.as_mut_ptr()));
        let threads = team.threads();
        // (a small copy stays on one thread: a region of its own costs more than it saves)
        let pack_step = if threads > 1 && m * k >= COL_SUMS_SPLIT_MIN { k.div_ceil(2 * threads) } else { k.max(1) };
        // SAFETY: chunk q packs steps k0..k1, rows k0..k1 of `at` (sized k x mp above)
        team.run(k.div_ceil(pack_step), &|q| unsafe {
            let (k0, k1) = (q * pack_step, ((q + 1) * pack_step).min(k));
            kernels::pack_transposed(m, mp, k0, k1, ap as *const f32, k, atp.get());
        });
        let (step, parts) = if threads <= 1 || m * n * k < SPLIT_MIN_MADDS {
            (n, 1)
        } else {
            let mr = kernels::tile(isa, kernels::Shape::Narrow).0;
            let step = n.div_ceil(4 * threads).div_ceil(mr) * mr;
            (step, n.div_ceil(step))
        };
        team.run(parts, &|p| {
            let (i0, i1) = (p * step, ((p + 1) * step).min(n));
            // SAFETY: part p computes rows i0..i1 of `ct` and writes columns i0..i1 of C,
            // inside the sizes checked by `matmul_bias` and set above.
            unsafe {
                let ct_part = ctp.get().add(i0 * mp);
                kernels::nt_rows(isa, i1 - i0, k, mp, (bp as *const f32).add(i0 * k), k, atp.get(), ct_part);
                let out = cp.get();
                for r in 0..m {
                    for i in i0..i1 {
                        let v = *ct_part.add((i - i0) * mp + r);
                        let o = out.add(r * n + i);
                        *o = if accumulate { *o + v } else { v };
                    }
                }
            }
        });
    });
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

/// One parameter tensor with its gradient and optimizer state.
#[derive(Clone, Debug, Default)]
struct Slot {
    value: Vec<f32>,
    grad: Vec<f32>,
    /// Adam's first moment.
    m1: Vec<f32>,
    /// Adam's second moment, RMSprop's square average, AdaGrad's sum of squares.
    m2: Vec<f32>,
    /// Number of updates applied.
    time: i32,
}

impl Slot {
    fn new(value: Vec<f32>) -> Self {
        let n = value.len();
        Slot { value, grad: vec![0.0; n], m1: Vec::new(), m2: Vec::new(), time: 0 }
    }
}

/// A dense layer `y = x W + b` (`W` row-major `[n_in, n_out]`), or a bias-only block.
#[derive(Clone, Debug)]
struct Block {
    name: String,
    n_in: usize,
    n_out: usize,
    kernel: Slot,
    bias: Slot,
}

/// Activations of one layer for the batch: before (`a`) and after (`h`) the activation.
#[derive(Clone, Debug, Default)]
struct Act {
    a: Vec<f32>,
    h: Vec<f32>,
}

#[derive(Clone, Debug, Default)]
struct Work {
    enc: Vec<Act>,
    mean: Vec<f32>,
    log_var: Vec<f32>,
    eps: Vec<f32>,
    sd: Vec<f32>,
    /// `[z | condition]`, the decoder's input.
    dec_in: Vec<f32>,
    /// hidden decoder layers (all but the output layer)
    dec: Vec<Act>,
    logits: Vec<f32>,
    pi: Vec<f32>,
    d_logits: Vec<f32>,
    d_pi: Vec<f32>,
    /// per cell and gene: d NLL / d log theta (summed over cells in a fixed order)
    d_theta: Vec<f32>,
    row_loss: Vec<f64>,
    d_mean: Vec<f32>,
    d_log_var: Vec<f32>,
    /// ping-pong buffers for gradients flowing back through hidden layers
    g1: Vec<f32>,
    g2: Vec<f32>,
    /// count models: per-gene terms of the dispersion, and `1 / theta`
    genes: Vec<counts::GeneTerms>,
    inv_theta: Vec<f64>,
    /// column sums of `d_logits`, `d_pi` and `d_theta`: the output heads' bias (and
    /// dispersion) gradients
    sum_logits: BlockSums,
    sum_pi: BlockSums,
    sum_theta: BlockSums,
}

/// Sizes a work buffer to `len` values. Every buffer sized this way is overwritten in
/// full before it is read, so the old contents are kept rather than zeroed: filling
/// megabytes with zeros on one thread each step cost more than a tenth of a step.
fn resize(v: &mut Vec<f32>, len: usize) {
    if v.len() != len {
        v.resize(len, 0.0);
    }
}

/// `act(a)` into `h`.
fn activate_into(act: Activation, a: &[f32], h: &mut [f32]) {
    match act {
        Activation::Relu => h.iter_mut().zip(a).for_each(|(h, &a)| *h = if a > 0.0 { a } else { 0.0 }),
        Activation::Sigmoid => h.iter_mut().zip(a).for_each(|(h, &a)| *h = sigmoid(a)),
        Activation::Tanh => h.iter_mut().zip(a).for_each(|(h, &a)| *h = a.tanh()),
        Activation::Elu => h.iter_mut().zip(a).for_each(|(h, &a)| *h = if a > 0.0 { a } else { a.exp() - 1.0 }),
        Activation::Softplus => h.iter_mut().zip(a).for_each(|(h, &a)| *h = a.max(0.0) + (-a.abs()).exp().ln_1p()),
        Activation::Linear => h.copy_from_slice(a),
    }
}

/// `dy ⊙ act'(a)` in place (`h = act(a)`).
fn activate_backward(act: Activation, a: &[f32], h: &[f32], dy: &mut [f32]) {
    match act {
        // a select, not a branch: the signs are random and the loop vectorises
        Activation::Relu => dy.iter_mut().zip(a).for_each(|(d, &a)| *d = if a > 0.0 { *d } else { 0.0 }),
        Activation::Sigmoid => dy.iter_mut().zip(h).for_each(|(d, &y)| *d *= y * (1.0 - y)),
        Activation::Tanh => dy.iter_mut().zip(h).for_each(|(d, &y)| *d *= 1.0 - y * y),
        Activation::Elu => dy.iter_mut().zip(a.iter().zip(h)).for_each(|(d, (&a, &y))| *d *= if a > 0.0 { 1.0 } else { y + 1.0 }),
        Activation::Softplus => dy.iter_mut().zip(a).for_each(|(d, &a)| *d *= sigmoid(a)),
        Activation::Linear => {}
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Derivative of an activation at `a` (`y = act(a)`), for the output layer.
#[inline]
fn act_grad(act: Activation, a: f32, y: f32) -> f32 {
    match act {
        Activation::Relu => {
            if a > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => 1.0 - y * y,
        Activation::Elu => {
            if a > 0.0 {
                1.0
            } else {
                y + 1.0
            }
        }
        Activation::Softplus => sigmoid(a),
        Activation::Linear => 1.0,
    }
}

#[inline]
fn act_one(act: Activation, a: f32) -> f32 {
    let mut h = [0.0f32];
    activate_into(act, &[a], &mut h);
    h[0]
}

/// Each gene's [`counts::GeneTerms`] (special functions of its dispersion) and
/// `1 / theta`, computed by the team into buffers kept between steps (a few hundred
/// nanoseconds per gene, for every step; a fresh half-megabyte table each step cost
/// page faults and, with threads, TLB shootdowns).
fn gene_terms(team: &Team, log_theta: &[f32], genes: &mut Vec<counts::GeneTerms>, inv_theta: &mut Vec<f64>) {
    let g = log_theta.len();
    if genes.len() != g {
        genes.resize(g, counts::GeneTerms::new(0.0));
    }
    inv_theta.resize(g, 0.0);
    const CHUNK: usize = 256;
    let (pg, pi) = (SendPtr(genes.as_mut_ptr()), SendPtr(inv_theta.as_mut_ptr()));
    team.run(g.div_ceil(CHUNK), &|c| {
        for j in c * CHUNK..((c + 1) * CHUNK).min(g) {
            let t = counts::GeneTerms::new(log_theta[j] as f64);
            // SAFETY: chunk c alone writes elements c * CHUNK.. of both buffers, inside
            // their lengths.
            unsafe {
                *pi.get().add(j) = 1.0 / t.theta;
                *pg.get().add(j) = t;
            }
        }
    });
}

/// Sums of columns `c0..c0 + out.len()` of a row-major `[n, w]` matrix into `out`,
/// rows added in order.
fn col_sums_range(x: &[f32], n: usize, w: usize, c0: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for r in 0..n {
        out.iter_mut().zip(&x[r * w + c0..]).for_each(|(o, &v)| *o += v);
    }
}

/// Column sums of a row-major `[n, w]` matrix, rows added in order. Split over the
/// team only when large: a region costs more than summing a few thousand values,
/// and the rows were mostly written by the other thread.
fn col_sums(team: &Team, x: &[f32], n: usize, w: usize, out: &mut [f32]) {
    let threads = team.threads();
    if threads <= 1 || n * w < COL_SUMS_SPLIT_MIN {
        return col_sums_range(x, n, w, 0, &mut out[..w]);
    }
    let step = w.div_ceil(2 * threads).max(16);
    let po = SendPtr(out.as_mut_ptr());
    team.run(w.div_ceil(step), &|c| {
        let (c0, c1) = (c * step, ((c + 1) * step).min(w));
        // SAFETY: chunk c owns columns c0..c1 of `out`.
        col_sums_range(x, n, w, c0, unsafe { std::slice::from_raw_parts_mut(po.get().add(c0), c1 - c0) })
    });
}

/// Rows per block of [`BlockSums`].
const SUM_ROWS: usize = 16;

/// Column sums of a `[n x g]` gradient (a bias gradient) taken while its rows are
/// made: each block of `SUM_ROWS` rows is summed in row order into its own row of
/// `part`, and the block sums are added in block order. The order is fixed, so the
/// result does not depend on the number of threads, and no pass over the whole
/// gradient (mostly in the other core's cache) is needed afterwards.
#[derive(Clone, Debug, Default)]
struct BlockSums {
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
    fn total(&self, n: usize, out: &mut [f32]) {
        let g = out.len();
        out.copy_from_slice(&self.part[..g]);
        for b in 1..n.div_ceil(SUM_ROWS) {
            out.iter_mut().zip(&self.part[b * g..(b + 1) * g]).for_each(|(o, &v)| *o += v);
        }
    }
}

/// The dense VAE/CVAE with its optimizer state, trained by the fused step.
#[derive(Clone, Debug)]
pub struct FusedVae {
    spec: ModelSpec,
    blocks: Vec<Block>,
    work: Work,
}

impl FusedVae {
    /// A model from plain weights (in `ModelSpec::dense_shapes` order), shapes checked.
    pub fn new(spec: &ModelSpec, weights: &[DenseWeights]) -> Result<Self> {
        crate::weights::check_weights(spec, weights)?;
        let blocks = spec
            .dense_shapes()
            .into_iter()
            .zip(weights)
            .map(|((name, n_in, n_out), w)| Block {
                name,
                n_in,
                n_out,
                // a kernel's gradient buffer is made only if it is needed (see
                // `kernel_step`)
                kernel: Slot { grad: Vec::new(), ..Slot::new(w.kernel.clone()) },
                bias: Slot::new(w.bias.clone()),
            })
            .collect();
        Ok(FusedVae { spec: spec.clone(), blocks, work: Work::default() })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The current weights.
    pub fn weights(&self) -> Vec<DenseWeights> {
        self.blocks
            .iter()
            .map(|b| DenseWeights {
                name: b.name.clone(),
                n_in: b.n_in,
                n_out: b.n_out,
                kernel: b.kernel.value.clone(),
                bias: b.bias.value.clone(),
            })
            .collect()
    }

    /// Forward pass of one batch; fills the work buffers up to the output heads.
    fn forward(&mut self, batch: &Batch, rng: &mut StdRng, team: &Team) {
        let spec = &self.spec;
        let (n, g, k, l) = (batch.n, spec.n_genes, spec.n_classes, spec.latent_dim);
        let d = spec.input_dim();
        let m = spec.encoder.len();
        let p = spec.decoder.len();
        let w = &mut self.work;
        w.enc.resize_with(m, Act::default);
        w.dec.resize_with(p - 1, Act::default);
        // encoder
        for i in 0..m {
            let (blk, act) = (&self.blocks[i], spec.encoder[i].1);
            let (before, rest) = w.enc.split_at_mut(i);
            let (x, x_w): (&[f32], usize) = if i == 0 { (&batch.input, d) } else { (&before[i - 1].h, blk.n_in) };
            let cur = &mut rest[0];
            resize(&mut cur.a, n * blk.n_out);
            matmul_bias(team, n, x_w, blk.n_out, x, false, &blk.kernel.value, false, 0.0, Some(&blk.bias.value), &mut cur.a);
            resize(&mut cur.h, n * blk.n_out);
            activate_into(act, &cur.a, &mut cur.h);
        }
        let (hm, hm_w): (&[f32], usize) = if m == 0 { (&batch.input, d) } else { (&w.enc[m - 1].h, spec.encoder[m - 1].0) };
        for (buf, blk) in [(&mut w.mean, &self.blocks[m]), (&mut w.log_var, &self.blocks[m + 1])] {
            resize(buf, n * l);
            matmul_bias(team, n, hm_w, l, hm, false, &blk.kernel.value, false, 0.0, Some(&blk.bias.value), buf);
        }
        // reparameterisation: z = mean + exp(log_var / 2) * eps, written into [z | c]
        w.eps = standard_normal(rng, n * l);
        resize(&mut w.sd, n * l);
        let dw = l + k;
        resize(&mut w.dec_in, n * dw);
        for r in 0..n {
            for j in 0..l {
                let i = r * l + j;
                let sd = (w.log_var[i] * 0.5).exp();
                w.sd[i] = sd;
                w.dec_in[r * dw + j] = w.mean[i] + sd * w.eps[i];
            }
            if k > 0 {
                w.dec_in[r * dw + l..(r + 1) * dw].copy_from_slice(&batch.condition[r * k..(r + 1) * k]);
            }
        }
        // decoder hidden layers
        for j in 0..p - 1 {
            let (blk, act) = (&self.blocks[m + 2 + j], spec.decoder[j].1);
            let (before, rest) = w.dec.split_at_mut(j);
            let x: &[f32] = if j == 0 { &w.dec_in } else { &before[j - 1].h };
            let cur = &mut rest[0];
            resize(&mut cur.a, n * blk.n_out);
            matmul_bias(team, n, blk.n_in, blk.n_out, x, false, &blk.kernel.value, false, 0.0, Some(&blk.bias.value), &mut cur.a);
            resize(&mut cur.h, n * blk.n_out);
            activate_into(act, &cur.a, &mut cur.h);
        }
        let last: &[f32] = if p == 1 { &w.dec_in } else { &w.dec[p - 2].h };
        let out = &self.blocks[m + 1 + p];
        resize(&mut w.logits, n * g);
        matmul_bias(team, n, out.n_in, g, last, false, &out.kernel.value, false, 0.0, Some(&out.bias.value), &mut w.logits);
        if spec.likelihood == Likelihood::Zinb {
            let drop = &self.blocks[m + 2 + p];
            resize(&mut w.pi, n * g);
            matmul_bias(team, n, drop.n_in, g, last, false, &drop.kernel.value, false, 0.0, Some(&drop.bias.value), &mut w.pi);
        }
    }

    /// Reconstruction loss (mean over cells) and, into `d_logits`/`d_pi`/`d_theta`, its
    /// gradient with respect to the output heads.
    fn reconstruction(&mut self, batch: &Batch, team: &Team) -> f64 {
        let spec = &self.spec;
        let (n, g) = (batch.n, spec.n_genes);
        let w = &mut self.work;
        let inv_n = 1.0 / n as f32;
        w.row_loss.clear();
        w.row_loss.resize(n, 0.0);
        resize(&mut w.d_logits, n * g);
        let out_act = spec.output_activation();
        let width = spec.input_dim();
        let logits = &w.logits;
        match spec.likelihood {
            Likelihood::Bce | Likelihood::Mse => {
                let input = &batch.input;
                let lik = spec.likelihood;
                let p_sum = w.sum_logits.prepare(n, g);
                for_rows(team, n, &mut w.d_logits, g, &mut w.row_loss, 1, |r0, dl, loss| {
                    for (i, (drow, lrow)) in dl.chunks_mut(g).zip(loss.iter_mut()).enumerate() {
                        let r = r0 + i;
                        let (lg, t) = (&logits[r * g..(r + 1) * g], &input[r * width..r * width + g]);
                        if lik == Likelihood::Bce && out_act == Activation::Sigmoid {
                            *lrow = crate::simd::bce_sigmoid_row(lg, t, drow, inv_n);
                            // SAFETY: this chunk owns row r's block, rows in order
                            unsafe { BlockSums::add(p_sum, r, drow) };
                            continue;
                        }
                        let mut s = 0.0f64;
                        for j in 0..g {
                            let (a, t) = (lg[j], t[j]);
                            let (v, d) = match (lik, out_act) {
                                (Likelihood::Bce, Activation::Sigmoid) => {
                                    let v = a.max(0.0) - t * a + (-a.abs()).exp().ln_1p();
                                    (v, sigmoid(a) - t)
                                }
                                (Likelihood::Bce, act) => {
                                    let y = act_one(act, a);
                                    let (lo, hi) = (1e-7f32, 1.0 - 1e-7f32);
                                    let pc = y.clamp(lo, hi);
                                    let v = -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln());
                                    let inside = y >= lo && y <= hi;
                                    let dp = if inside { -t / pc + (1.0 - t) / (1.0 - pc) } else { 0.0 };
                                    (v, dp * act_grad(act, a, y))
                                }
                                (_, act) => {
                                    let y = act_one(act, a);
                                    let e = y - t;
                                    (e * e, 2.0 * e * act_grad(act, a, y))
                                }
                            };
                            s += v as f64;
                            drow[j] = d * inv_n;
                        }
                        // SAFETY: this chunk owns row r's block, rows in order
                        unsafe { BlockSums::add(p_sum, r, drow) };
                        *lrow = s;
                    }
                });
            }
            lik => {
                let zinb = lik == Likelihood::Zinb;
                let log_theta: &[f32] = if lik.has_dispersion() { &self.blocks[self.blocks.len() - 1].bias.value } else { &[] };
                if zinb {
                    resize(&mut w.d_pi, n * g);
                }
                if lik.has_dispersion() {
                    resize(&mut w.d_theta, n * g);
                }
                let (counts, log_lib, pi) = (&batch.counts, &batch.log_library, &w.pi);
                gene_terms(team, log_theta, &mut w.genes, &mut w.inv_theta);
                let (genes, inv_theta) = (&w.genes, &w.inv_theta);
                let fast = counts::FastCounts::default();
                let has_theta = lik.has_dispersion();
                let (p_pi, p_theta) = (SendPtr(w.d_pi.as_mut_ptr()), SendPtr(w.d_theta.as_mut_ptr()));
                // block sums of the heads this model has (the others stay unallocated)
                let s_logits = w.sum_logits.prepare(n, g);
                let s_pi = if zinb { w.sum_pi.prepare(n, g) } else { SendPtr(std::ptr::null_mut()) };
                let s_theta = if has_theta { w.sum_theta.prepare(n, g) } else { SendPtr(std::ptr::null_mut()) };
                for_rows(team, n, &mut w.d_logits, g, &mut w.row_loss, 1, |r0, dls, loss| {
                    let mut e = vec![0.0f64; g];
                    let (mut ratio, mut l1) = (vec![0.0f64; g], vec![0.0f64; g]);
                    for (i, (dl, lrow)) in dls.chunks_mut(g).zip(loss.iter_mut()).enumerate() {
                        let r = r0 + i;
                        // SAFETY: row r of d_pi / d_theta (sized n x g above when used)
                        // belongs to the block of rows this call owns.
                        let dp: &mut [f32] = if zinb { unsafe { std::slice::from_raw_parts_mut(p_pi.get().add(r * g), g) } } else { &mut [] };
                        let dt: &mut [f32] = if has_theta { unsafe { std::slice::from_raw_parts_mut(p_theta.get().add(r * g), g) } } else { &mut [] };
                        let lg = &logits[r * g..(r + 1) * g];
                        // softmax and log-softmax in f64 over the row
                        let mx = lg.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
                        crate::simd::exp_shifted_row(lg, mx, &mut e);
                        let mx = mx as f64;
                        let sum_e: f64 = e.iter().sum();
                        let lse = mx + sum_e.ln();
                        let shift = log_lib[r] as f64 - lse;
                        let scale = (log_lib[r] as f64).exp() / sum_e;
                        if has_theta {
                            // mu / theta and ln(1 + mu / theta) for the whole cell at once
                            ratio.iter_mut().zip(e.iter().zip(inv_theta.iter())).for_each(|(q, (&e, &it))| *q = e * scale * it);
                            crate::simd::log1p_f64_row(&ratio, &mut l1);
                        }
                        let mut s = 0.0f64;
                        let mut sum_g = 0.0f64;
                        for j in 0..g {
                            let x = counts[r * g + j] as f64;
                            let log_mu = lg[j] as f64 + shift;
                            let mu = e[j] * scale;
                            let t = match lik {
                                Likelihood::Poisson => fast.poisson(x, mu, log_mu),
                                Likelihood::Nb => fast.nb_given(x, mu, log_mu, &genes[j], ratio[j], l1[j]),
                                _ => fast.zinb_given(x, mu, log_mu, &genes[j], pi[r * g + j] as f64, ratio[j], l1[j]),
                            };
                            s += t.nll;
                            // float the per-element derivatives as burn's f32 surrogate does
                            let gm = (t.d_log_mu * inv_n as f64) as f32;
                            dl[j] = gm;
                            sum_g += gm as f64;
                            if zinb {
                                dp[j] = (t.d_pi_logit * inv_n as f64) as f32;
                            }
                            if has_theta {
                                dt[j] = (t.d_log_theta * inv_n as f64) as f32;
                            }
                        }
                        // through log-softmax: d/dl_j = g_j - softmax_j * sum(g)
                        let inv_sum = 1.0 / sum_e;
                        for j in 0..g {
                            dl[j] = (dl[j] as f64 - e[j] * inv_sum * sum_g) as f32;
                        }
                        // SAFETY: this chunk owns row r's block, rows in order
                        unsafe {
                            BlockSums::add(s_logits, r, dl);
                            if zinb {
                                BlockSums::add(s_pi, r, dp);
                            }
                            if has_theta {
                                BlockSums::add(s_theta, r, dt);
                            }
                        }
                        *lrow = s;
                    }
                });
            }
        }
        w.row_loss.iter().sum::<f64>() / n as f64
    }

    /// Mean KL over the cells and, into `d_mean`/`d_log_var`, `regularization` times its
    /// gradient.
    fn kl(&mut self, n: usize, regularization: f64) -> f64 {
        let l = self.spec.latent_dim;
        let w = &mut self.work;
        resize(&mut w.d_mean, n * l);
        resize(&mut w.d_log_var, n * l);
        let c = (regularization / n as f64) as f32;
        let mut total = 0.0f64;
        for r in 0..n {
            let mut s = 0.0f32;
            for j in 0..l {
                let i = r * l + j;
                let (m, lv) = (w.mean[i], w.log_var[i]);
                let e = lv.exp();
                s += 1.0 + lv - m * m - e;
                w.d_mean[i] = c * m;
                w.d_log_var[i] = c * 0.5 * (e - 1.0);
            }
            total += (-0.5 * s) as f64;
        }
        total / n as f64
    }

    /// Backward pass from the heads' gradients to every parameter's gradient.
    /// Backward pass: every gradient, and each kernel's optimizer update as soon as its
    /// gradient is known (block by block, while the block is in cache) and after the
    /// gradient flowing through it has been computed.
    fn backward(&mut self, batch: &Batch, team: &Team, opt: Opt) {
        let spec = &self.spec;
        let (n, g, l) = (batch.n, spec.n_genes, spec.latent_dim);
        let k = spec.n_classes;
        let m = spec.encoder.len();
        let p = spec.decoder.len();
        let zinb = spec.likelihood == Likelihood::Zinb;
        let nb = self.blocks.len();
        let (blocks, w) = (&mut self.blocks, &mut self.work);
        if spec.likelihood.has_dispersion() {
            w.sum_theta.total(n, &mut blocks[nb - 1].bias.grad);
        }
        // output layer (and ZINB dropout head)
        let out_i = m + 1 + p;
        let out_in = blocks[out_i].n_in;
        w.sum_logits.total(n, &mut blocks[out_i].bias.grad);
        if zinb {
            w.sum_pi.total(n, &mut blocks[m + 2 + p].bias.grad);
        }
        // gradient with respect to the output layer's input (old kernels), then the
        // kernels' gradients and updates
        let mut gy = std::mem::take(&mut w.g1);
        let mut gx = std::mem::take(&mut w.g2);
        resize(&mut gy, n * out_in);
        matmul(team, n, g, out_in, &w.d_logits, false, &blocks[out_i].kernel.value, true, 0.0, &mut gy);
        if zinb {
            matmul(team, n, g, out_in, &w.d_pi, false, &blocks[m + 2 + p].kernel.value, true, 1.0, &mut gy);
        }
        {
            let last: &[f32] = if p == 1 { &w.dec_in } else { &w.dec[p - 2].h };
            kernel_step(team, opt, out_in, n, g, last, &w.d_logits, &mut blocks[out_i].kernel);
            if zinb {
                kernel_step(team, opt, out_in, n, g, last, &w.d_pi, &mut blocks[m + 2 + p].kernel);
            }
        }
        // hidden decoder layers, last to first; gy holds d(output of layer j)
        for j in (0..p - 1).rev() {
            let blk = &mut blocks[m + 2 + j];
            let act = &w.dec[j];
            activate_backward(spec.decoder[j].1, &act.a, &act.h, &mut gy);
            let x: &[f32] = if j == 0 { &w.dec_in } else { &w.dec[j - 1].h };
            col_sums(team, &gy, n, blk.n_out, &mut blk.bias.grad);
            resize(&mut gx, n * blk.n_in);
            matmul(team, n, blk.n_out, blk.n_in, &gy, false, &blk.kernel.value, true, 0.0, &mut gx);
            kernel_step(team, opt, blk.n_in, n, blk.n_out, x, &gy, &mut blk.kernel);
            std::mem::swap(&mut gx, &mut gy);
        }
        // gy: d[z | c]; through the reparameterisation into d_mean / d_log_var (which
        // already hold the KL part)
        let dw = l + k;
        for r in 0..n {
            for j in 0..l {
                let i = r * l + j;
                let dz = gy[r * dw + j];
                w.d_mean[i] += dz;
                w.d_log_var[i] += dz * w.eps[i] * 0.5 * w.sd[i];
            }
        }
        // latent heads
        let d = spec.input_dim();
        let (hm, hm_w): (&[f32], usize) = if m == 0 { (&batch.input, d) } else { (&w.enc[m - 1].h, spec.encoder[m - 1].0) };
        if m > 0 {
            resize(&mut gy, n * hm_w);
            matmul(team, n, l, hm_w, &w.d_mean, false, &blocks[m].kernel.value, true, 0.0, &mut gy);
            matmul(team, n, l, hm_w, &w.d_log_var, false, &blocks[m + 1].kernel.value, true, 1.0, &mut gy);
        }
        for (bi, dv) in [(m, &w.d_mean), (m + 1, &w.d_log_var)] {
            let blk = &mut blocks[bi];
            col_sums(team, dv, n, l, &mut blk.bias.grad);
            kernel_step(team, opt, hm_w, n, l, hm, dv, &mut blk.kernel);
        }
        // encoder layers, last to first
        for i in (0..m).rev() {
            let blk = &mut blocks[i];
            let act = &w.enc[i];
            activate_backward(spec.encoder[i].1, &act.a, &act.h, &mut gy);
            let (x, x_w): (&[f32], usize) = if i == 0 { (&batch.input, d) } else { (&w.enc[i - 1].h, blk.n_in) };
            col_sums(team, &gy, n, blk.n_out, &mut blk.bias.grad);
            if i > 0 {
                resize(&mut gx, n * blk.n_in);
                matmul(team, n, blk.n_out, blk.n_in, &gy, false, &blk.kernel.value, true, 0.0, &mut gx);
            }
            kernel_step(team, opt, x_w, n, blk.n_out, x, &gy, &mut blk.kernel);
            if i > 0 {
                std::mem::swap(&mut gx, &mut gy);
            }
        }
        w.g1 = gy;
        w.g2 = gx;
    }

    /// One optimizer update of every parameter from its gradient (burn's formulas).
    /// The optimizer update of the biases (and dispersion); kernels are updated in
    /// `backward`.
    fn update_biases(&mut self, opt: Opt, team: &Team) {
        for blk in &mut self.blocks {
            if !blk.bias.value.is_empty() {
                update_slot(&mut blk.bias, opt, team);
            }
        }
    }

    /// One minibatch: forward, loss, and (when `learn`) backward and an optimizer update.
    /// Returns (loss, reconstruction, KL), each averaged over the batch's cells.
    pub fn step(&mut self, batch: &Batch, train: &TrainSpec, rng: &mut StdRng, learn: bool, team: &Team) -> (f64, f64, f64) {
        self.forward(batch, rng, team);
        let recon = self.reconstruction(batch, team);
        let kl = self.kl(batch.n, train.regularization);
        let value = recon + train.regularization * kl;
        if learn && value.is_finite() {
            let opt = Opt { kind: train.optimizer, lr: train.learning_rate as f32 };
            self.backward(batch, team, opt);
            self.update_biases(opt, team);
        }
        (value, recon, kl)
    }
}

/// The optimizer and its learning rate.
#[derive(Clone, Copy, Debug)]
struct Opt {
    kind: OptimizerKind,
    lr: f32,
}

const B1: f32 = 0.9;
const B2: f32 = 0.999;
const EPS: f32 = 1e-7;
const ALPHA: f32 = 0.9;

/// Starts one update of `slot`: counts it and returns Adam's bias-correction constants
/// `[factor, epsilon]` (burn's formula: epsilon inside the correction).
fn begin_update(slot: &mut Slot, kind: OptimizerKind) -> [f32; 2] {
    let n = slot.value.len();
    if kind != OptimizerKind::Sgd && slot.m2.len() != n {
        slot.m2 = vec![0.0; n];
    }
    if kind == OptimizerKind::Adam && slot.m1.len() != n {
        slot.m1 = vec![0.0; n];
    }
    slot.time += 1;
    let t = slot.time;
    let bc2 = (1.0 - B2.powi(t)).sqrt();
    [bc2 / (1.0 - B1.powi(t)), EPS * bc2]
}

/// Raw views of a slot's buffers, for updating disjoint ranges from several threads.
#[derive(Clone, Copy)]
struct SlotPtrs {
    value: SendPtr,
    grad: SendPtr,
    m1: SendPtr,
    m2: SendPtr,
}

impl SlotPtrs {
    fn new(slot: &mut Slot) -> Self {
        SlotPtrs {
            value: SendPtr(slot.value.as_mut_ptr()),
            grad: SendPtr(slot.grad.as_mut_ptr()),
            m1: SendPtr(slot.m1.as_mut_ptr()),
            m2: SendPtr(slot.m2.as_mut_ptr()),
        }
    }

    /// Adam (epsilon inside the bias correction as burn writes it), SGD, RMSprop (alpha
    /// 0.9, no momentum) or AdaGrad on elements `s..s + len`, from the gradient there.
    /// The moments start at zero, so the first update needs no case of its own
    /// (0 * beta + x == x exactly, as burn's first step computes it).
    ///
    /// SAFETY: `s..s + len` lies inside the slot's buffers (of its optimizer) and no
    /// other thread touches it meanwhile.
    unsafe fn apply(self, opt: Opt, c: [f32; 2], s: usize, len: usize) {
        let g = std::slice::from_raw_parts(self.grad.get().add(s), len);
        self.apply_from::<false>(opt, c, s, g)
    }

    /// `apply` from the gradient `g` of elements `s..s + g.len()` rather than the
    /// slot's own. `INLINE`: Adam's loop is inlined, for a caller compiled for a vector
    /// instruction set (the kernels' epilogues), instead of calling the AVX2 copy; the
    /// arithmetic is the same.
    ///
    /// SAFETY: as `apply`.
    #[inline(always)]
    unsafe fn apply_from<const INLINE: bool>(self, opt: Opt, c: [f32; 2], s: usize, g: &[f32]) {
        let len = g.len();
        let p = std::slice::from_raw_parts_mut(self.value.get().add(s), len);
        let lr = opt.lr;
        match opt.kind {
            OptimizerKind::Adam => {
                let m1 = std::slice::from_raw_parts_mut(self.m1.get().add(s), len);
                let m2 = std::slice::from_raw_parts_mut(self.m2.get().add(s), len);
                if INLINE {
                    crate::simd::adam_inline(p, g, m1, m2, [B1, B2, c[0], c[1], lr]);
                } else {
                    crate::simd::adam(p, g, m1, m2, [B1, B2, c[0], c[1], lr]);
                }
            }
            OptimizerKind::Sgd => p.iter_mut().zip(g).for_each(|(p, &g)| *p -= g * lr),
            OptimizerKind::RmsProp => {
                let s2 = std::slice::from_raw_parts_mut(self.m2.get().add(s), len);
                for ((p, &g), s) in p.iter_mut().zip(g).zip(s2.iter_mut()) {
                    let v = *s * ALPHA + g * g * (1.0 - ALPHA);
                    *s = v;
                    *p -= (g / (v.sqrt() + EPS)) * lr;
                }
            }
            OptimizerKind::AdaGrad => {
                let s2 = std::slice::from_raw_parts_mut(self.m2.get().add(s), len);
                for ((p, &g), s) in p.iter_mut().zip(g).zip(s2.iter_mut()) {
                    let v = *s + g * g;
                    *s = v;
                    *p -= (g / (v.sqrt() + EPS)) * lr;
                }
            }
        }
    }
}

/// One optimizer update of a whole slot from its gradient.
fn update_slot(slot: &mut Slot, opt: Opt, team: &Team) {
    let c = begin_update(slot, opt.kind);
    apply_update(SlotPtrs::new(slot), slot.value.len(), opt, c, team);
}

/// The optimizer update (constants `c` from `begin_update`) of all `n` values of a
/// slot from its gradient, in contiguous chunks spread over the team.
fn apply_update(ptrs: SlotPtrs, n: usize, opt: Opt, c: [f32; 2], team: &Team) {
    let threads = team.threads();
    let chunk = if threads > 1 && n >= SPLIT_MIN_VALUES { n.div_ceil(2 * threads) } else { n.max(1) };
    team.run(n.div_ceil(chunk), &|k| {
        let (s, e) = (k * chunk, ((k + 1) * chunk).min(n));
        // SAFETY: chunk k owns elements s..e.
        unsafe { ptrs.apply(opt, c, s, e - s) }
    });
}

/// The optimizer update of a kernel from tiles of its gradient (`kernel_step`).
struct UpdateTiles {
    ptrs: SlotPtrs,
    opt: Opt,
    c: [f32; 2],
    /// Index of the kernel value of the tiles' row 0, column 0.
    first: usize,
    n_out: usize,
    /// Fetch the parameters and moments of tiles ahead.
    fetch: bool,
}

impl kernels::Epilogue for UpdateTiles {
    /// SAFETY: the tiles are of the part of the kernel that `ptrs`' maker gave this
    /// update alone.
    #[inline(always)]
    unsafe fn tile(&mut self, i0: usize, rows: usize, j0: usize, w: usize, t: &[f32], ldt: usize) {
        for r in 0..rows {
            let at = self.first + (i0 + r) * self.n_out + j0;
            if self.fetch {
                // the parameters and moments of the tile after next in these rows
                let ahead = at + PREFETCH_TILES * ldt;
                for arr in [self.ptrs.value, self.ptrs.m1, self.ptrs.m2] {
                    kernels::prefetch(arr.get().wrapping_add(ahead), w);
                }
            }
            self.ptrs.apply_from::<true>(self.opt, self.c, at, &t[r * ldt..r * ldt + w]);
        }
    }
}

/// The gradient of a kernel `W [n_in x n_out]` of a layer `y = x W + b`, i.e.
/// `x^T dy` with `x [n x n_in]` and `dy [n x n_out]`, and the kernel's optimizer
/// update. With the vector kernels (batches of at most `KERNELS_MAX_CELLS` cells), each
/// tile of the gradient goes from the stack straight into the update and the gradient
/// is never stored. Otherwise each block of the gradient (up to 1M values) is made by
/// `matrixmultiply` and updated right after it is computed, instead of being written to
/// memory whole and read back. The values are those of `matmul` followed by
/// `update_slot`.
#[allow(clippy::too_many_arguments)]
fn kernel_step(team: &Team, opt: Opt, n_in: usize, n: usize, n_out: usize, x: &[f32], dy: &[f32], slot: &mut Slot) {
    assert!(x.len() >= n * n_in && dy.len() >= n * n_out && slot.value.len() == n_in * n_out, "kernel_step: sizes");
    let c = begin_update(slot, opt.kind);
    let threads = team.threads();
    let (xp, dp) = (x.as_ptr() as usize, dy.as_ptr() as usize);
    if let (Some(isa), true) = (Isa::detect(), n <= KERNELS_MAX_CELLS) {
        let ptrs = SlotPtrs::new(slot);
        let fetch = n_in * n_out >= PREFETCH_MIN_VALUES;
        // tiles of the gradient go from the stack straight into the update; parts are
        // blocks of whole tiles along the kernel's longer side, two per thread
        let by_rows = n_in >= n_out;
        let shape = kernels::best_shape(isa, n_in, n_out);
        let (mr, nr) = kernels::tile(isa, shape);
        let (len, unit) = if by_rows { (n_in, mr) } else { (n_out, nr) };
        let share = threads > 1 && n_in * n_out * n >= SPLIT_MIN_MADDS;
        let step = if share { len.div_ceil(2 * threads).div_ceil(unit) * unit } else { len.max(1) };
        team.run(len.div_ceil(step), &|b| {
            let (s, e) = (b * step, ((b + 1) * step).min(len));
            let (r0, r1, c0, c1) = if by_rows { (s, e, 0, n_out) } else { (0, n_in, s, e) };
            // SAFETY: part b reads x's columns r0..r1 and dy's columns c0..c1 (sizes
            // checked above) and updates only elements [r0..r1, c0..c1] of the kernel.
            unsafe {
                let (x0, d0) = ((xp as *const f32).add(r0), (dp as *const f32).add(c0));
                let mut update = UpdateTiles { ptrs, opt, c, first: r0 * n_out + c0, n_out, fetch };
                kernels::gradient_tiles(isa, shape, r1 - r0, n, c1 - c0, x0, n_in, d0, n_out, &mut update);
            }
        });
        return;
    }
    // without the kernels: the gradient goes through memory, block by block
    slot.grad.resize(n_in * n_out, 0.0);
    let ptrs = SlotPtrs::new(slot);
    const BLOCK: usize = 1 << 20;
    let by_rows = n_in >= n_out;
    let len = if by_rows { n_in } else { n_out };
    // blocks of at most BLOCK values, and at least two per thread when there is work
    let per_block = (BLOCK / if by_rows { n_out } else { n_in }.max(1)).max(1);
    let share = if threads > 1 && n_in * n_out * n >= SPLIT_MIN_MADDS { len.div_ceil(2 * threads) } else { len };
    let step = per_block.min(share).max(1);
    let step = if by_rows { step } else { (step.div_ceil(16) * 16).min(len.max(1)) };
    let parts = len.div_ceil(step);
    // Blocks of columns shared among threads update their parameters afterwards, in
    // contiguous chunks: with 2 threads, updating row segments of each block cost 1.6
    // times the CPU time (W3, 2 threads: Adam's CPU time -15%). With one thread (or
    // blocks of rows) the update follows each block while it is in cache.
    let update_after = !by_rows && parts > 1 && threads > 1;
    team.run(parts, &|b| {
        let (s, e) = (b * step, ((b + 1) * step).min(len));
        let (r0, r1, c0, c1) = if by_rows { (s, e, 0, n_out) } else { (0, n_in, s, e) };
        // SAFETY: this block writes rows r0..r1, columns c0..c1 of the gradient and
        // updates the same elements of the kernel and its moments; no other block
        // touches them. x^T is x read with swapped strides.
        unsafe {
            matrixmultiply::sgemm(
                r1 - r0,
                n,
                c1 - c0,
                1.0,
                (xp as *const f32).add(r0),
                1,
                n_in as isize,
                (dp as *const f32).add(c0),
                n_out as isize,
                1,
                0.0,
                ptrs.grad.get().add(r0 * n_out + c0),
                n_out as isize,
                1,
            );
            if by_rows {
                ptrs.apply(opt, c, r0 * n_out, (r1 - r0) * n_out);
            } else if !update_after {
                for r in r0..r1 {
                    ptrs.apply(opt, c, r * n_out + c0, c1 - c0);
                }
            }
        }
    });
    if update_after {
        apply_update(ptrs, n_in * n_out, opt, c, team);
    }
}
