//! The training step's matrix products, in which one side is a batch of cells, computed
//! without packing the large operand.
//!
//! `matrixmultiply` first copies ("packs") both operands of every product into its own
//! layout. With a batch of 32 cells, each value of a layer's kernel is used only 32 times
//! after it has been packed. At the shapes of the VAExprs vignette's yan data (19,595
//! genes), packing took a fifth of the step. Here the large operand is read in place:
//! a tile of `MR x NR` results stays in registers while, for each step of the inner
//! dimension, `NR` values of one row of the large operand are loaded as vectors (16
//! values in AVX-512, 8 in AVX2) and multiplied by `MR` broadcast values of the small one.
//!
//! The kernel-gradient product goes one step further: each tile of the gradient is
//! handed, while it is still on the stack, to the optimizer update of the same
//! parameters (see `gradient::kernel_step`). The gradient is never written to memory.
//!
//! Each result value is a sum over the inner dimension in its natural order: FMAs in
//! order within a block of at most `KC` steps, and blocks added to the running value in
//! order. The order does not depend on how rows and columns are shared among threads, so
//! results do not depend on the number of threads. Without AVX2/FMA, callers use
//! `matrixmultiply` instead.

// (Over 400 lines: the tile macro, its instantiations and the drivers share private
// state, the tile-shape table and the edge buffer; the tests are in tests.rs.)

use std::cell::RefCell;

/// Inner-dimension steps per block of the forward products.
pub(crate) const KC: usize = 256;
/// Values the tile buffer holds (the largest `MR x NR`).
const TILE_MAX: usize = 384;

/// The vector instructions the products use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Isa {
    Avx512,
    Avx2,
}

impl Isa {
    /// The best the CPU has, or `None` without AVX2/FMA (then `matrixmultiply` is used).
    pub(crate) fn detect() -> Option<Isa> {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx512f") {
                return Some(Isa::Avx512);
            }
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Some(Isa::Avx2);
            }
        }
        None
    }
}

/// Tile shapes: `Wide` for products whose small side is the rows (forward products,
/// kernel gradients), `Narrow` for the transposed product, whose columns are the cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Shape {
    Wide,
    Narrow,
}

/// `(MR, NV)`: a tile's rows and vectors of columns, for `isa` and `shape`. The one
/// table of tile shapes: `tiles` instantiates its kernels from it.
const fn tile_regs(isa: Isa, shape: Shape) -> (usize, usize) {
    match (isa, shape) {
        (Isa::Avx512, Shape::Wide) => (8, 3),
        (Isa::Avx512, Shape::Narrow) => (12, 2),
        (Isa::Avx2, Shape::Wide) => (4, 3),
        (Isa::Avx2, Shape::Narrow) => (6, 2),
    }
}

/// `(MR, NR)`: a tile's rows and columns, for `isa` and `shape`.
pub(crate) fn tile(isa: Isa, shape: Shape) -> (usize, usize) {
    let (mr, nv) = tile_regs(isa, shape);
    let lanes = match isa {
        Isa::Avx512 => 16,
        Isa::Avx2 => 8,
    };
    (mr, nv * lanes)
}

/// The tile shape that computes the fewest padding values for a product of `rows x
/// cols` results.
pub(crate) fn best_shape(isa: Isa, rows: usize, cols: usize) -> Shape {
    let area = |shape: Shape| {
        let (mr, nr) = tile(isa, shape);
        rows.div_ceil(mr) * mr * cols.div_ceil(nr) * nr
    };
    // ties: the shape whose columns need no zero-padded copy of a last, partial strip
    let edge = |shape: Shape| cols % tile(isa, shape).1 != 0;
    if (area(Shape::Narrow), edge(Shape::Narrow)) < (area(Shape::Wide), edge(Shape::Wide)) {
        Shape::Narrow
    } else {
        Shape::Wide
    }
}

/// `out = part`, or `out += part` when `add`, in fixed pieces of 16 values: a copy of a
/// length known only at run time would be a call to `memcpy` for each row of a tile.
#[inline(always)]
fn store_row(out: &mut [f32], part: &[f32], add: bool) {
    let (out_pieces, out_rest) = out.as_chunks_mut::<16>();
    let (part_pieces, part_rest) = part.as_chunks::<16>();
    for (o, p) in out_pieces.iter_mut().zip(part_pieces) {
        if add {
            o.iter_mut().zip(p).for_each(|(o, &v)| *o += v);
        } else {
            *o = *p;
        }
    }
    for (o, &v) in out_rest.iter_mut().zip(part_rest) {
        if add {
            *o += v
        } else {
            *o = v
        }
    }
}

/// What is done with each tile of a product (see `tiles`). Implementations mark `tile`
/// `#[inline(always)]`: it must be compiled into the vector code (a closure may be left
/// out of line, and is then compiled without the vector instructions).
pub(crate) trait Epilogue {
    /// Tile rows `i0..i0 + rows`, columns `j0..j0 + w` of the product, valued
    /// `t[r * ldt + j]`.
    ///
    /// # Safety
    /// Whatever the implementation writes to was promised by its maker.
    unsafe fn tile(&mut self, i0: usize, rows: usize, j0: usize, w: usize, t: &[f32], ldt: usize);
}

/// Closures as epilogues, for the tests (the step's own epilogues are types).
#[cfg(test)]
impl<F: FnMut(usize, usize, usize, usize, &[f32], usize)> Epilogue for F {
    /// # Safety
    /// None needed: the closure is safe code.
    #[inline(always)]
    unsafe fn tile(&mut self, i0: usize, rows: usize, j0: usize, w: usize, t: &[f32], ldt: usize) {
        self(i0, rows, j0, w, t, ldt)
    }
}

/// Stores tiles into `C` (`ldc` values per row, tile row `i` at row `i`), or adds them
/// when `add`.
struct Store {
    c: *mut f32,
    ldc: usize,
    add: bool,
}

impl Epilogue for Store {
    /// # Safety
    /// `c` is writable over the tile's rows and columns at `ldc` values per row (as
    /// `nn`'s and `nt_rows`' callers promise), and no other thread writes there.
    #[inline(always)]
    unsafe fn tile(&mut self, i0: usize, rows: usize, j0: usize, w: usize, t: &[f32], ldt: usize) {
        for r in 0..rows {
            let out = std::slice::from_raw_parts_mut(self.c.add((i0 + r) * self.ldc + j0), w);
            store_row(out, &t[r * ldt..r * ldt + w], self.add);
        }
    }
}

/// One product `A[m x kc] * B[kc x n]` cut into tiles. `A[i, kk]` is at
/// `a + i * rsa + kk * csa`, `B[kk, j]` at `b + kk * ldb + j`. Tiles are visited by
/// blocks of `cb` columns (rounded to whole tiles), in each block by rows of tiles.
#[derive(Clone, Copy)]
pub(crate) struct Tiles {
    pub m: usize,
    pub kc: usize,
    pub n: usize,
    pub a: *const f32,
    pub rsa: usize,
    pub csa: usize,
    pub b: *const f32,
    pub ldb: usize,
    pub cb: usize,
}

thread_local! {
    /// The last, partial column strip of `B`, copied with zero padding to whole vectors.
    static EDGE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

macro_rules! isa_tiles {
    ($name:ident, $feat:literal, $lanes:expr, $zero:ident, $load:ident, $store:ident, $set1:ident, $fmadd:ident) => {
        /// Hands every tile of the product to `epi`.
        ///
        /// # Safety
        /// The CPU has the features; `p` describes readable matrices.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = $feat)]
        unsafe fn $name<const MR: usize, const NV: usize, E: Epilogue>(p: Tiles, epi: &mut E) {
            use std::arch::x86_64::*;
            const L: usize = $lanes;
            let nr = NV * L;
            assert!(MR * nr <= TILE_MAX && p.m > 0 && p.n > 0);
            let mut t = [0.0f32; TILE_MAX];
            let full = p.n / nr * nr;
            let cb = (p.cb / nr).max(1) * nr;
            EDGE.with(|edge| {
                let mut edge = edge.borrow_mut();
                if full < p.n {
                    // the partial last strip, zero-padded to `nr` columns
                    let w = p.n - full;
                    edge.clear();
                    edge.resize(p.kc * nr, 0.0);
                    for kk in 0..p.kc {
                        let src = std::slice::from_raw_parts(p.b.add(kk * p.ldb + full), w);
                        store_row(&mut edge[kk * nr..kk * nr + w], src, false);
                    }
                }
                let edge_ptr = edge.as_ptr();
                let mut c0 = 0;
                while c0 < p.n {
                    let c1 = (c0 + cb).min(p.n);
                    let mut i0 = 0;
                    while i0 < p.m {
                        let rows = MR.min(p.m - i0);
                        // rows past the end repeat the last row; their results are dropped
                        let mut ap = [p.a; MR];
                        for (r, a) in ap.iter_mut().enumerate() {
                            *a = p.a.add((i0 + r.min(rows - 1)) * p.rsa);
                        }
                        let mut j0 = c0;
                        while j0 < c1 {
                            let w = nr.min(p.n - j0);
                            let (bp, ld) = if j0 >= full { (edge_ptr, nr) } else { (p.b.add(j0), p.ldb) };
                            // first row of tiles: fetch the next strip of B meanwhile
                            let (pf, pfl) = if i0 == 0 && j0 + nr < full { (p.b.add(j0 + nr), p.ldb) } else { (bp, 0) };
                            let mut acc = [[$zero(); NV]; MR];
                            for kk in 0..p.kc {
                                let bk = bp.add(kk * ld);
                                let fk = pf.add(kk * pfl);
                                for v in 0..NV {
                                    _mm_prefetch::<_MM_HINT_T0>(fk.add(v * L) as *const i8);
                                }
                                let mut bv = [$zero(); NV];
                                for (v, b) in bv.iter_mut().enumerate() {
                                    *b = $load(bk.add(v * L));
                                }
                                for r in 0..MR {
                                    let av = $set1(*ap[r].add(kk * p.csa));
                                    for v in 0..NV {
                                        acc[r][v] = $fmadd(av, bv[v], acc[r][v]);
                                    }
                                }
                            }
                            for r in 0..MR {
                                for v in 0..NV {
                                    $store(t.as_mut_ptr().add(r * nr + v * L), acc[r][v]);
                                }
                            }
                            epi.tile(i0, rows, j0, w, &t[..MR * nr], nr);
                            j0 += nr;
                        }
                        i0 += MR;
                    }
                    c0 = c1;
                }
            })
        }
    };
}

isa_tiles!(tiles_avx512, "avx512f", 16, _mm512_setzero_ps, _mm512_loadu_ps, _mm512_storeu_ps, _mm512_set1_ps, _mm512_fmadd_ps);
isa_tiles!(tiles_avx2, "avx2,fma", 8, _mm256_setzero_ps, _mm256_loadu_ps, _mm256_storeu_ps, _mm256_set1_ps, _mm256_fmadd_ps);

/// Runs `p` tile by tile with the tile shape of `isa` and `shape` (see `isa_tiles`).
///
/// # Safety
/// `isa` came from `Isa::detect`; `p` describes readable matrices: `A` rows `0..m`,
/// steps `0..kc`, and `B` steps `0..kc`, columns `0..n`.
#[inline(always)]
pub(crate) unsafe fn tiles<E: Epilogue>(isa: Isa, shape: Shape, p: Tiles, epi: &mut E) {
    if p.m == 0 || p.n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    match (isa, shape) {
        (Isa::Avx512, Shape::Wide) => {
            const T: (usize, usize) = tile_regs(Isa::Avx512, Shape::Wide);
            tiles_avx512::<{ T.0 }, { T.1 }, E>(p, epi)
        }
        (Isa::Avx512, Shape::Narrow) => {
            const T: (usize, usize) = tile_regs(Isa::Avx512, Shape::Narrow);
            tiles_avx512::<{ T.0 }, { T.1 }, E>(p, epi)
        }
        (Isa::Avx2, Shape::Wide) => {
            const T: (usize, usize) = tile_regs(Isa::Avx2, Shape::Wide);
            tiles_avx2::<{ T.0 }, { T.1 }, E>(p, epi)
        }
        (Isa::Avx2, Shape::Narrow) => {
            const T: (usize, usize) = tile_regs(Isa::Avx2, Shape::Narrow);
            tiles_avx2::<{ T.0 }, { T.1 }, E>(p, epi)
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (isa, shape, p, epi);
        unreachable!("no vector kernels on this architecture")
    }
}

/// `C[m x n] = A[m x k] * B[k x n]`, or `C += A * B` when `accumulate`; all row-major
/// with leading dimensions `lda`, `ldb`, `ldc`; in tiles of `shape` (any shape gives
/// the same values).
///
/// # Safety
/// As `tiles`; `C` is writable over `m` rows of `ldc` values and no other thread uses it.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn nn(
    isa: Isa,
    shape: Shape,
    m: usize,
    k: usize,
    n: usize,
    a: *const f32,
    lda: usize,
    b: *const f32,
    ldb: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    if k == 0 && !accumulate {
        for i in 0..m {
            std::slice::from_raw_parts_mut(c.add(i * ldc), n).fill(0.0);
        }
    }
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let add = accumulate || k0 > 0;
        let p = Tiles { m, kc, n, a: a.add(k0), rsa: lda, csa: 1, b: b.add(k0 * ldb), ldb, cb: 0 };
        tiles(isa, shape, p, &mut Store { c, ldc, add });
        k0 += kc;
    }
}

/// Columns of `A^T` packed for `nt_rows`: `at[kk * mp + r] = A[r, kk]` for the `m`
/// rows of `A` (`lda` values apart), zero for `m <= r < mp`, steps `k0..k1`.
///
/// # Safety
/// `A` is readable over `m` rows of `k1` steps; `at` writable over `k1 * mp` values.
pub(crate) unsafe fn pack_transposed(m: usize, mp: usize, k0: usize, k1: usize, a: *const f32, lda: usize, at: *mut f32) {
    const STEP: usize = 64;
    let mut s = k0;
    while s < k1 {
        let e = (s + STEP).min(k1);
        for kk in s..e {
            std::slice::from_raw_parts_mut(at.add(kk * mp + m), mp - m).fill(0.0);
        }
        for r in 0..m {
            let row = std::slice::from_raw_parts(a.add(r * lda + s), e - s);
            for (i, &v) in row.iter().enumerate() {
                *at.add((s + i) * mp + r) = v;
            }
        }
        s = e;
    }
}

/// Rows of `CT = W * A^T`: `ct[i * mp + r] = sum_kk W[i, kk] * at[kk * mp + r]` for
/// `rows` rows of `W` (`ldw` apart) and `k` steps; `at` from `pack_transposed`, `mp` a
/// multiple of `tile(isa, Shape::Narrow).1`.
///
/// # Safety
/// As `tiles`; `ct` writable over `rows * mp` values, used by no other thread.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn nt_rows(isa: Isa, rows: usize, k: usize, mp: usize, w: *const f32, ldw: usize, at: *const f32, ct: *mut f32) {
    if k == 0 {
        std::slice::from_raw_parts_mut(ct, rows * mp).fill(0.0);
    }
    let mut k0 = 0;
    while k0 < k {
        let kc = KC.min(k - k0);
        let add = k0 > 0;
        let p = Tiles { m: rows, kc, n: mp, a: w.add(k0), rsa: ldw, csa: 1, b: at.add(k0 * mp), ldb: mp, cb: mp };
        tiles(isa, Shape::Narrow, p, &mut Store { c: ct, ldc: mp, add });
        k0 += kc;
    }
}

/// Tiles of a kernel's gradient `x^T dy` for rows `0..rows` of the kernel (columns of
/// `x`, starting at `x`, `ldx` values per cell) and columns `0..cols` (of `dy`, `ldy`
/// per cell), over `cells` cells; `epi` gets each tile as in `tiles`. Columns are
/// visited in blocks whose part of `dy` stays in cache.
///
/// # Safety
/// As `tiles`.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn gradient_tiles<E: Epilogue>(
    isa: Isa,
    shape: Shape,
    rows: usize,
    cells: usize,
    cols: usize,
    x: *const f32,
    ldx: usize,
    dy: *const f32,
    ldy: usize,
    epi: &mut E,
) {
    let cb = (1usize << 16) / cells.max(1);
    let p = Tiles { m: rows, kc: cells, n: cols, a: x, rsa: 1, csa: ldx, b: dy, ldb: ldy, cb };
    tiles(isa, shape, p, epi)
}

/// Asks for the cache lines of `len` values from `p` (which need not point into an
/// allocation: a prefetch never faults).
#[inline(always)]
pub(crate) fn prefetch(p: *const f32, len: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        let mut o = 0;
        while o < len {
            // SAFETY: a prefetch reads nothing the program sees and cannot fault.
            unsafe { std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.wrapping_add(o) as *const i8) };
            o += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, len);
}

#[cfg(test)]
mod tests;
