//! Matrix products of the fused step and of inference, in which one side is a batch of
//! cells, spread over the team; and column sums (bias gradients).
//!
//! For batches of up to `KERNELS_MAX_CELLS` cells every product goes to this crate's own
//! kernels (`kernels`, which read the large operand in place), otherwise to
//! `matrixmultiply`'s (the one burn's CPU backend calls too). A product is split into
//! blocks of rows or columns of its result; every output value is computed by one
//! thread in the same order whatever the thread count, and a split inner dimension is
//! summed in a fixed order, so results do not depend on the number of threads.

use crate::buffers::{elements, reserve as reserve_buffer, resize};
use crate::error::Result;
use crate::kernels::{self, Isa};
use crate::team::{SendPtr, Team, SPLIT_MIN_MADDS, SPLIT_MIN_SUMS};

/// Products over batches of at most this many cells use `kernels` (no packing of the
/// large operand), larger ones `matrixmultiply`, whose packing is then shared by more
/// cells. Measured with the training step alone (1 thread): 32 cells and 19,595 genes
/// (W2) 0.143 -> 0.092 s/epoch; 128 cells and 2,000 genes (W3) 0.586 -> 0.626 at 1
/// thread and 0.340 -> 0.38 at 2.
pub(crate) const KERNELS_MAX_CELLS: usize = 64;

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
pub(crate) fn matmul(team: &Team, m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, beta: f32, c: &mut [f32]) {
    matmul_bias(team, m, k, n, a, a_t, b, b_t, beta, None, c)
}

/// `matmul` with `C = bias (each row) + A * B` when `bias` is given (then `beta` is
/// ignored); each block sets its part of the bias just before its product.
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul_bias(
    team: &Team,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
    beta: f32,
    bias: Option<&[f32]>,
    c: &mut [f32],
) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul: buffer too small");
    assert!(bias.is_none_or(|b| b.len() == n), "matmul: bias of the wrong length");
    let beta = if bias.is_some() { 1.0 } else { beta };
    let bias_ptr = bias.map(|b| b.as_ptr() as usize);
    if m == 0 || n == 0 {
        return;
    }
    let path = path(m, k, n, a_t, beta);
    if let Path::Kernels(isa) = path {
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
    if path == Path::SplitK {
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
                // SAFETY: p < parts, so the offset lies inside `partial` (parts * m * n
                // values), and chunk p writes only its own m x n block of it.
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

/// Which code computes a product (see `matmul`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    /// The vector kernels (`product_nn`, `product_nt`).
    Kernels(Isa),
    /// `matrixmultiply` over fixed chunks of the inner dimension, summed in order.
    SplitK,
    /// `matrixmultiply` over blocks of rows or columns of the result.
    Blocks,
}

/// The path of `C[m x n] = beta * C + A[m x k] * B` (after a bias set `beta` to 1).
fn path(m: usize, k: usize, n: usize, a_t: bool, beta: f32) -> Path {
    match (Isa::detect(), a_t, beta == 0.0 || beta == 1.0, m <= KERNELS_MAX_CELLS) {
        (Some(isa), false, true, true) => Path::Kernels(isa),
        _ if k >= K_SPLIT_MIN && k >= 8 * m.max(n) => Path::SplitK,
        _ => Path::Blocks,
    }
}

/// Values of scratch that a product of `m` cells (`A` not transposed, `beta` 0 or 1)
/// needs: `(PARTIAL, A^T packed, transposed result)` (see `matmul_bias` and
/// `product_nt`).
fn scratch(m: usize, k: usize, n: usize, b_t: bool) -> Result<[usize; 3]> {
    const WHAT: &str = "the work space of a matrix product";
    if m == 0 || n == 0 {
        return Ok([0; 3]);
    }
    match path(m, k, n, false, 0.0) {
        Path::Kernels(isa) if b_t => {
            let nr = kernels::tile(isa, kernels::Shape::Narrow).1;
            let mp = m.div_ceil(nr) * nr;
            Ok([0, elements(&[k, mp], WHAT)?, elements(&[n, mp], WHAT)?])
        }
        Path::SplitK => Ok([elements(&[k.div_ceil(K_CHUNK), m, n], WHAT)?, 0, 0]),
        _ => Ok([0; 3]),
    }
}

/// Gives the calling thread's scratch room for every product `A[m' x k] * B` (`B`
/// stored `n x k` when `b_t`) of up to `m` cells, so that such products allocate
/// nothing; to be called on the thread that will compute them.
pub(crate) fn reserve(m: usize, k: usize, n: usize, b_t: bool) -> Result<()> {
    const WHAT: &str = "the work space of a matrix product";
    // Each path's scratch grows with the cells; the largest is needed by the most
    // cells that still take that path.
    let mut need = [0usize; 3];
    for cells in [m, m.min(KERNELS_MAX_CELLS), m.min(k / 8)] {
        for (need, s) in need.iter_mut().zip(scratch(cells, k, n, b_t)?) {
            *need = (*need).max(s);
        }
    }
    PARTIAL.with(|cell| reserve_buffer(&mut cell.borrow_mut(), need[0], WHAT))?;
    NT_BUFFERS.with(|cell| {
        let (at, ct) = &mut *cell.borrow_mut();
        reserve_buffer(at, need[1], WHAT)?;
        reserve_buffer(ct, need[2], WHAT)
    })
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
fn product_nn(
    team: &Team,
    isa: Isa,
    m: usize,
    k: usize,
    n: usize,
    a: &[f32],
    b: &[f32],
    accumulate: bool,
    bias: Option<&[f32]>,
    c: &mut [f32],
) {
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
        let (ap, atp, bp, ctp, cp) =
            (a.as_ptr() as usize, SendPtr(at.as_mut_ptr()), b.as_ptr() as usize, SendPtr(ct.as_mut_ptr()), SendPtr(c.as_mut_ptr()));
        let threads = team.threads();
        // (a small copy stays on one thread: a region of its own costs more than it saves)
        let pack_step = if threads > 1 && m * k >= SPLIT_MIN_SUMS { k.div_ceil(2 * threads) } else { k.max(1) };
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
pub(crate) fn col_sums(team: &Team, x: &[f32], n: usize, w: usize, out: &mut [f32]) {
    let threads = team.threads();
    if threads <= 1 || n * w < SPLIT_MIN_SUMS {
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

/// The capacities of this thread's product scratch (for the tests of `reserve`).
#[cfg(test)]
pub(crate) fn scratch_capacities() -> [usize; 3] {
    let partial = PARTIAL.with(|c| c.borrow().capacity());
    let (at, ct) = NT_BUFFERS.with(|c| {
        let b = c.borrow();
        (b.0.capacity(), b.1.capacity())
    });
    [partial, at, ct]
}
