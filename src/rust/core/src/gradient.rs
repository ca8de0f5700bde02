//! The gradient of each layer's kernel, `x^T dy`, fused with the kernel's optimizer
//! update: with the vector kernels each tile of the gradient goes from the stack
//! straight into the update and the gradient is never stored; with `matrixmultiply` it
//! is made and updated block by block while the block is in cache.

use crate::kernels::{self, Isa};
use crate::optim::{apply_update, begin_update, Opt, Slot, SlotPtrs};
use crate::products::KERNELS_MAX_CELLS;
use crate::team::{Team, SPLIT_MIN_MADDS};

/// How many tiles ahead (in the same rows) the kernel step fetches parameters and
/// moments for the optimizer update (W2, 1 thread: 1 tile ahead -3%, 2 -10%, 3 -7%,
/// 6 -2%), for kernels of at least `PREFETCH_MIN_VALUES` values: smaller ones (W1's
/// 512k) stay in cache, and fetching ahead made W1 10% slower.
const PREFETCH_TILES: usize = 2;
const PREFETCH_MIN_VALUES: usize = 1 << 21;

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
/// Whether `kernel_step` over `n` cells takes the gradient's tiles straight from the
/// vector kernels (else the gradient goes through `Slot::grad`).
pub(crate) fn tiles_in_registers(n: usize) -> bool {
    Isa::detect().is_some() && n <= KERNELS_MAX_CELLS
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn kernel_step(team: &Team, opt: Opt, n_in: usize, n: usize, n_out: usize, x: &[f32], dy: &[f32], slot: &mut Slot) {
    assert!(x.len() >= n * n_in && dy.len() >= n * n_out && slot.value.len() == n_in * n_out, "kernel_step: sizes");
    let c = begin_update(slot, opt.kind);
    let threads = team.threads();
    let (xp, dp) = (x.as_ptr() as usize, dy.as_ptr() as usize);
    if let (Some(isa), true) = (Isa::detect(), tiles_in_registers(n)) {
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
