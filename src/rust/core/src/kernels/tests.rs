//! The kernels against a plain reference, on every instruction set the CPU has.

use super::*;

fn isas() -> Vec<Isa> {
    let mut v = Vec::new();
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            v.push(Isa::Avx512);
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            v.push(Isa::Avx2);
        }
    }
    v
}

fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// `A[m x k] * B[k x n]` in f64, `A[i, kk]` at `a[i * rsa + kk * csa]`.
#[allow(clippy::too_many_arguments)]
fn reference(m: usize, k: usize, n: usize, a: &[f32], rsa: usize, csa: usize, b: &[f32], ldb: usize) -> Vec<f64> {
    let mut c = vec![0.0f64; m * n];
    for i in 0..m {
        for kk in 0..k {
            let av = a[i * rsa + kk * csa] as f64;
            for j in 0..n {
                c[i * n + j] += av * b[kk * ldb + j] as f64;
            }
        }
    }
    c
}

fn assert_close(got: &[f32], want: &[f64], k: usize, what: &str) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        // each term is below 1 in size: the error grows at most with k
        let tol = 1e-6 * (k as f64 + 1.0);
        assert!((g as f64 - w).abs() <= tol, "{what}: value {i}: {g} vs {w}");
    }
}

const SHAPES: [(usize, usize, usize); 9] =
    [(1, 1, 1), (3, 5, 7), (8, 256, 48), (9, 257, 49), (32, 300, 100), (7, 513, 17), (33, 40, 95), (12, 1, 300), (26, 600, 33)];

#[test]
fn products_match_a_reference_on_every_instruction_set_and_edge() {
    for isa in isas() {
        for &(m, k, n) in &SHAPES {
            let (a, b) = (values(m * k, 1), values(k * n, 2));
            let want = reference(m, k, n, &a, k, 1, &b, n);
            // C = A B, into a wider C (ldc > n) whose extra columns must survive
            let ldc = n + 3;
            let mut c = vec![7.0f32; m * ldc];
            // SAFETY: `isa` is the CPU's; a, b and c hold m x k, k x n and m x ldc values.
            unsafe { nn(isa, best_shape(isa, m, n), m, k, n, a.as_ptr(), k, b.as_ptr(), n, c.as_mut_ptr(), ldc, false) };
            let got: Vec<f32> = (0..m).flat_map(|i| c[i * ldc..i * ldc + n].to_vec()).collect();
            assert_close(&got, &want, k, &format!("{isa:?} nn {m}x{k}x{n}"));
            assert!((0..m).all(|i| c[i * ldc + n..(i + 1) * ldc].iter().all(|&v| v == 7.0)), "{isa:?}: wrote past n");
            // C += A B
            let mut c2 = vec![1.0f32; m * n];
            // SAFETY: as above, c2 holding m x n values.
            unsafe { nn(isa, Shape::Narrow, m, k, n, a.as_ptr(), k, b.as_ptr(), n, c2.as_mut_ptr(), n, true) };
            let want2: Vec<f64> = want.iter().map(|v| v + 1.0).collect();
            assert_close(&c2, &want2, k, &format!("{isa:?} nn+= {m}x{k}x{n}"));

            // C = A B^T computed as (B A^T)^T: here B is W [n x k]
            let w = values(n * k, 3);
            let wt: Vec<f32> = (0..k).flat_map(|kk| (0..n).map(|j| w[j * k + kk]).collect::<Vec<_>>()).collect();
            let want_t = reference(m, k, n, &a, k, 1, &wt, n);
            let nr = tile(isa, Shape::Narrow).1;
            let mp = m.div_ceil(nr) * nr;
            let mut at = vec![f32::NAN; k * mp];
            // SAFETY: a holds m rows of k values, at k x mp values.
            unsafe { pack_transposed(m, mp, 0, k, a.as_ptr(), k, at.as_mut_ptr()) };
            let mut ct = vec![0.0f32; n * mp];
            // SAFETY: `isa` is the CPU's; w holds n x k values, at k x mp, ct n x mp.
            unsafe { nt_rows(isa, n, k, mp, w.as_ptr(), k, at.as_ptr(), ct.as_mut_ptr()) };
            let got_t: Vec<f32> = (0..m).flat_map(|r| (0..n).map(|i| ct[i * mp + r]).collect::<Vec<_>>()).collect();
            assert_close(&got_t, &want_t, k, &format!("{isa:?} nt {m}x{k}x{n}"));

            // gradient tiles: x [k cells x m], dy [k cells x n], gradient x^T dy
            let x = values(k * m, 4);
            let want_g = reference(m, k, n, &x, 1, m, &b, n);
            let mut g = vec![f32::NAN; m * n];
            let mut seen = vec![0u8; m * n];
            let shape = best_shape(isa, m, n);
            let nr = tile(isa, shape).1;
            // SAFETY: `isa` is the CPU's; x holds k x m values and b k x n; the epilogue
            // is safe code.
            unsafe {
                gradient_tiles(isa, shape, m, k, n, x.as_ptr(), m, b.as_ptr(), n, &mut |i0, rows, j0, wd, t: &[f32], ldt| {
                    assert_eq!(ldt, nr, "{isa:?}: tiles as wide as `tile` says");
                    for r in 0..rows {
                        for j in 0..wd {
                            g[(i0 + r) * n + j0 + j] = t[r * ldt + j];
                            seen[(i0 + r) * n + j0 + j] += 1;
                        }
                    }
                })
            };
            assert!(seen.iter().all(|&s| s == 1), "{isa:?}: each gradient value handed over once");
            assert_close(&g, &want_g, k, &format!("{isa:?} gradient {m}x{k}x{n}"));
        }
    }
}

#[test]
fn results_do_not_depend_on_how_the_work_is_cut() {
    for isa in isas() {
        let (m, k, n) = (40, 700, 150);
        let (a, b) = (values(m * k, 5), values(k * n, 6));
        let mut whole = vec![0.0f32; m * n];
        // SAFETY: `isa` is the CPU's; a, b and whole hold m x k, k x n and m x n values.
        unsafe { nn(isa, Shape::Wide, m, k, n, a.as_ptr(), k, b.as_ptr(), n, whole.as_mut_ptr(), n, false) };
        // cut into blocks of rows and columns as threads share the work, and in
        // tiles of the other shape
        let mut parts = vec![0.0f32; m * n];
        for (r0, r1) in [(0, 24), (24, 40)] {
            for (c0, c1) in [(0, 48), (48, 96), (96, 150)] {
                // SAFETY: the block (rows r0..r1, columns c0..c1) lies inside a, b and parts.
                unsafe {
                    nn(
                        isa,
                        Shape::Narrow,
                        r1 - r0,
                        k,
                        c1 - c0,
                        a.as_ptr().add(r0 * k),
                        k,
                        b.as_ptr().add(c0),
                        n,
                        parts.as_mut_ptr().add(r0 * n + c0),
                        n,
                        false,
                    )
                };
            }
        }
        assert!(whole == parts, "{isa:?}: cutting the product changed its values");
    }
}
