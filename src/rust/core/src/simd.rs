//! Hot element-wise loops, compiled twice: for the baseline x86-64 target (SSE2), for
//! which R packages are built, and with AVX2/FMA enabled, chosen at run time when the
//! CPU has them (8-wide vectors instead of 4). Element-wise IEEE operations round the
//! same at any vector width, no FMA contraction happens, and no reduction is reordered,
//! so results do not depend on which version ran.

#[inline(always)]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `$name` calling the `#[inline(always)]` body `$body` either directly or
/// through a copy compiled for AVX2/FMA.
macro_rules! dispatch {
    ($(#[$doc:meta])* $vis:vis fn $name:ident / $avx:ident ($($arg:ident : $ty:ty),*) -> $ret:ty = $body:ident) => {
        $(#[$doc])*
        $vis fn $name($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                if has_avx2() {
                    // SAFETY: the CPU has the features `$avx` is compiled for.
                    return unsafe { $avx($($arg),*) };
                }
            }
            $body($($arg),*)
        }

        /// `$name` compiled for AVX2/FMA.
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA (`has_avx2`); the body itself is safe code.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        unsafe fn $avx($($arg: $ty),*) -> $ret {
            $body($($arg),*)
        }
    };
}

/// `e^x` for `x <= 0` in f32, branch-free so that loops over it vectorise: range
/// reduction by `ln 2` and a degree-7 Taylor polynomial (relative error below 3e-7,
/// tested against the standard library); inputs below -87 give about 1.6e-38.
#[inline(always)]
pub(crate) fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.max(-87.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((k as i32 + 127) << 23) as u32)
}

/// `ln(1 + e)` for `e` in [0, 1] in f32, branch-free: `2 atanh(e / (2 + e))` as a
/// series in `s = e / (2 + e) <= 1/3` (relative error below 3e-7, no cancellation for
/// small `e`).
#[inline(always)]
pub(crate) fn log1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let q = 1.0 + s2 * (1.0 / 3.0 + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    2.0 * s * q
}

#[inline(always)]
/// Binary cross-entropy from logits `l` against targets `t` for one cell: returns the
/// sum over genes and writes `(sigmoid(l) - t) * scale` (the gradient) into `d`.
fn bce_row_body(l: &[f32], t: &[f32], d: &mut [f32], scale: f32) -> f64 {
    const LANES: usize = 64;
    let mut total = 0.0f64;
    let mut v = [0.0f32; LANES];
    for ((lc, tc), dc) in l.chunks(LANES).zip(t.chunks(LANES)).zip(d.chunks_mut(LANES)) {
        let len = lc.len();
        for (((&a, &y), d), v) in lc.iter().zip(tc).zip(dc.iter_mut()).zip(v.iter_mut()) {
            let e = exp_nonpos(-a.abs());
            let inv = 1.0 / (1.0 + e);
            let sig = if a >= 0.0 { inv } else { e * inv };
            *v = a.max(0.0) - y * a + log1p_unit(e);
            *d = (sig - y) * scale;
        }
        total += v[..len].iter().map(|&x| x as f64).sum::<f64>();
    }
    total
}

dispatch! {
    /// Binary cross-entropy from logits `l` against targets `t` for one cell: returns
    /// the sum over genes and writes `(sigmoid(l) - t) * scale` (the gradient) into `d`.
    pub(crate) fn bce_sigmoid_row / bce_sigmoid_row_avx2(l: &[f32], t: &[f32], d: &mut [f32], scale: f32) -> f64 = bce_row_body
}

/// One Adam update of a block of parameters; `c` = [beta1, beta2, bias-corrected
/// factor, epsilon, learning rate].
#[inline(always)]
fn adam_body(p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], c: [f32; 5]) {
    let [b1, b2, factor, eps, lr] = c;
    for (((p, &g), m1), m2) in p.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
        let a = *m1 * b1 + g * (1.0 - b1);
        let b = *m2 * b2 + g * g * (1.0 - b2);
        *m1 = a;
        *m2 = b;
        *p -= (a * factor / (b.sqrt() + eps)) * lr;
    }
}

dispatch! {
    /// Adam's update of `p` from gradient `g` and moments `m1`, `m2` (burn's formula).
    pub(crate) fn adam / adam_avx2(p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], c: [f32; 5]) -> () = adam_body
}

/// `adam` inlined into its caller, for callers compiled for a vector instruction set.
#[inline(always)]
pub(crate) fn adam_inline(p: &mut [f32], g: &[f32], m1: &mut [f32], m2: &mut [f32], c: [f32; 5]) {
    adam_body(p, g, m1, m2, c)
}

/// Min-max scaling of one cell's values into `out`, clamped to [0, 1]; false when a
/// value is not finite.
#[inline(always)]
fn minmax_body(out: &mut [f32], values: &[f64], lo: &[f64], inv_range: &[f64]) -> bool {
    let mut finite = true;
    for ((o, &v), (&lo, &ir)) in out.iter_mut().zip(values).zip(lo.iter().zip(inv_range)) {
        finite &= v.is_finite();
        *o = ((v - lo) * ir).clamp(0.0, 1.0) as f32;
    }
    finite
}

dispatch! {
    pub(crate) fn minmax_row / minmax_row_avx2(out: &mut [f32], values: &[f64], lo: &[f64], inv_range: &[f64]) -> bool = minmax_body
}

/// `ln(1 + r)` for `r >= 0` in f64, branch-free: `u = 1 + r` split into `2^e m` with
/// `m` in [sqrt(1/2), sqrt(2)), `ln m = 2 atanh((m - 1) / (m + 1))` as a series, and a
/// correction for the rounding of `1 + r` (relative error below 1e-15, tested).
#[inline(always)]
pub(crate) fn log1p_f64(r: f64) -> f64 {
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    let u = 1.0 + r;
    let c = (r - (u - 1.0)) / u;
    let bits = u.to_bits();
    let e = ((bits >> 52) as i64 - 1023) as f64;
    let m = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000);
    let big = m > std::f64::consts::SQRT_2;
    let (m, e) = if big { (m * 0.5, e + 1.0) } else { (m, e) };
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let q = 1.0
        + z * (1.0 / 3.0
            + z * (1.0 / 5.0
                + z * (1.0 / 7.0
                    + z * (1.0 / 9.0
                        + z * (1.0 / 11.0
                            + z * (1.0 / 13.0 + z * (1.0 / 15.0 + z * (1.0 / 17.0 + z * (1.0 / 19.0 + z * (1.0 / 21.0))))))))));
    e * LN2_HI + (2.0 * s * q + c + e * LN2_LO)
}

/// `ln(1 + y)` for `y >= 0` in f32, the same way (relative error below 3e-7, tested).
#[inline(always)]
pub(crate) fn log1p_f32(y: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let u = 1.0 + y;
    let c = (y - (u - 1.0)) / u;
    let bits = u.to_bits();
    let e = ((bits >> 23) as i32 - 127) as f32;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let big = m > std::f32::consts::SQRT_2;
    let (m, e) = if big { (m * 0.5, e + 1.0) } else { (m, e) };
    let s = (m - 1.0) / (m + 1.0);
    let z = s * s;
    let q = 1.0 + z * (1.0 / 3.0 + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0))));
    e * LN2_HI + (2.0 * s * q + c + e * LN2_LO)
}

/// `e^x` for `x <= 0` in f64, branch-free: range reduction by `ln 2` (in two parts)
/// and a degree-12 Taylor polynomial (relative error below 1e-15, tested); inputs
/// below -708 give about 3e-308.
#[inline(always)]
pub(crate) fn exp_nonpos_f64(x: f64) -> f64 {
    const LOG2E: f64 = std::f64::consts::LOG2_E;
    const LN2_HI: f64 = 6.931_471_803_691_238_164_90e-01;
    const LN2_LO: f64 = 1.908_214_929_270_587_700_02e-10;
    const ROUND: f64 = 6_755_399_441_055_744.0; // 1.5 * 2^52: adding it rounds to an integer
    let x = x.max(-708.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let mut p = 1.0 / 479_001_600.0;
    for d in [39_916_800.0, 3_628_800.0, 362_880.0, 40_320.0, 5_040.0, 720.0, 120.0, 24.0, 6.0, 2.0, 1.0, 1.0] {
        p = p * r + 1.0 / d;
    }
    p * f64::from_bits(((k as i64 + 1023) << 52) as u64)
}

#[inline(always)]
fn exp_nonpos_f64_row_body(x: &mut [f64]) {
    x.iter_mut().for_each(|v| *v = exp_nonpos_f64(*v));
}

dispatch! {
    /// `x[i] = e^x[i]` for `x[i] <= 0`, in place.
    pub(crate) fn exp_nonpos_f64_row / exp_nonpos_f64_row_avx2(x: &mut [f64]) -> () = exp_nonpos_f64_row_body
}

#[inline(always)]
fn log1p_f64_row_body(r: &[f64], out: &mut [f64]) {
    out.iter_mut().zip(r).for_each(|(o, &r)| *o = log1p_f64(r));
}

dispatch! {
    /// `out[i] = ln(1 + r[i])` for `r[i] >= 0`.
    pub(crate) fn log1p_f64_row / log1p_f64_row_avx2(r: &[f64], out: &mut [f64]) -> () = log1p_f64_row_body
}

#[inline(always)]
fn log1p_scaled_body(x: &[f32], scale: f32, out: &mut [f32]) {
    out.iter_mut().zip(x).for_each(|(o, &x)| *o = log1p_f32(x * scale));
}

dispatch! {
    /// `out[i] = ln(1 + x[i] * scale)` for `x[i] * scale >= 0`.
    pub(crate) fn log1p_scaled / log1p_scaled_avx2(x: &[f32], scale: f32, out: &mut [f32]) -> () = log1p_scaled_body
}

#[inline(always)]
fn exp_shifted_body(l: &[f32], shift: f32, out: &mut [f64]) {
    out.iter_mut().zip(l).for_each(|(o, &v)| *o = exp_nonpos(v - shift) as f64);
}

dispatch! {
    /// `out[i] = exp(l[i] - shift)` for `l[i] <= shift` (softmax numerators), computed
    /// in f32 (the logits' precision) and widened.
    pub(crate) fn exp_shifted_row / exp_shifted_row_avx2(l: &[f32], shift: f32, out: &mut [f64]) -> () = exp_shifted_body
}

/// Copies one cell's counts to f32 and sums them; false when a value is negative, not
/// whole or not finite.
#[inline(always)]
fn count_row_body(values: &[f64], out: &mut [f32]) -> (f64, bool) {
    // Four running sums: whole numbers below 2^53 add exactly in any order, and the
    // loop no longer waits on one chain of additions.
    let mut total = [0.0f64; 4];
    let mut ok = true;
    let mut oc = out.chunks_exact_mut(4);
    let mut vc = values.chunks_exact(4);
    for (o, v) in (&mut oc).zip(&mut vc) {
        for i in 0..4 {
            ok &= v[i] >= 0.0 && v[i].floor() == v[i] && v[i] < f64::INFINITY;
            o[i] = v[i] as f32;
            total[i] += v[i];
        }
    }
    for (o, &v) in oc.into_remainder().iter_mut().zip(vc.remainder()) {
        ok &= v >= 0.0 && v.floor() == v && v < f64::INFINITY;
        *o = v as f32;
        total[0] += v;
    }
    // a sum past 2^53 could round; it is then only the library size of a huge cell
    ((total[0] + total[1]) + (total[2] + total[3]), ok)
}

dispatch! {
    pub(crate) fn count_row / count_row_avx2(values: &[f64], out: &mut [f32]) -> (f64, bool) = count_row_body
}

/// Whether `v` is a count (a non-negative whole number), without a call to `trunc`
/// (baseline x86-64 has no rounding instruction): below 2^52, adding and subtracting
/// 2^52 rounds to a whole number; from 2^52 on every double is whole.
#[inline(always)]
pub(crate) fn is_count(v: f64) -> bool {
    const TWO52: f64 = 4_503_599_627_370_496.0;
    v >= 0.0 && (v >= TWO52 || (v + TWO52) - TWO52 == v)
}

#[inline(always)]
fn column_scan_body(col: &[f64], sums: &mut [f64], lo: &mut f64, hi: &mut f64) -> (bool, bool) {
    for (s, &v) in sums.iter_mut().zip(col) {
        *s += v;
    }
    const TWO52: f64 = 4_503_599_627_370_496.0;
    let (mut l, mut h) = ([*lo; 4], [*hi; 4]);
    let (mut finite, mut counts) = ([true; 4], [true; 4]);
    let mut chunks = col.chunks_exact(4);
    for c in &mut chunks {
        for i in 0..4 {
            let v = c[i];
            l[i] = if v < l[i] { v } else { l[i] };
            h[i] = if v > h[i] { v } else { h[i] };
            finite[i] &= v.abs() < f64::INFINITY;
            let a = v.abs().min(TWO52);
            counts[i] &= (v >= 0.0) & ((a + TWO52) - TWO52 == a);
        }
    }
    for &v in chunks.remainder() {
        l[0] = if v < l[0] { v } else { l[0] };
        h[0] = if v > h[0] { v } else { h[0] };
        finite[0] &= v.is_finite();
        counts[0] &= is_count(v);
    }
    *lo = l.iter().fold(f64::INFINITY, |a, &b| a.min(b));
    *hi = h.iter().fold(f64::NEG_INFINITY, |a, &b| a.max(b));
    let finite = finite.iter().all(|&f| f);
    (finite, finite && counts.iter().all(|&c| c))
}

dispatch! {
    /// One gene's values `col` over a run of cells (`transpose_scan`): added to the
    /// cells' `sums`, their range folded into `lo` and `hi`, and whether all are finite
    /// and all counts. Four lanes of comparisons without branches, so that the loop
    /// vectorises (one branch per value took most of the pass's time).
    pub(crate) fn column_scan / column_scan_avx2(col: &[f64], sums: &mut [f64], lo: &mut f64, hi: &mut f64) -> (bool, bool) = column_scan_body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_log1p_are_accurate() {
        let mut x = -90.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpos(x) as f64, (x as f64).exp());
            if x >= -87.0 {
                assert!((got - want).abs() <= 3e-7 * want, "exp({x}): {got} vs {want}");
            } else {
                assert!(got < 2e-38);
            }
            x += 0.001;
        }
        let mut e = 0.0f32;
        while e <= 1.0 {
            let (got, want) = (log1p_unit(e) as f64, (e as f64).ln_1p());
            assert!((got - want).abs() <= 3e-7 * want + 1e-30, "log1p({e}): {got} vs {want}");
            e += 1e-5;
        }
        assert_eq!(log1p_unit(1e-30), 1e-30);
    }

    #[test]
    fn fast_exp_f64_is_accurate() {
        let mut x = 0.0f64;
        let mut n = 0;
        while x > -720.0 {
            let (got, want) = (exp_nonpos_f64(x), x.exp());
            if x >= -708.0 {
                assert!((got - want).abs() <= 1e-15 * want, "exp({x}): {got} vs {want}");
            } else {
                assert!(got < 4e-308);
            }
            x = if x > -1e-12 { x - 1e-15 } else { x * 1.0007 - 1e-9 };
            n += 1;
        }
        assert!(n > 10_000);
        assert_eq!(exp_nonpos_f64(0.0), 1.0);
        let mut v = [0.0, -1.0, -1e-10, -800.0];
        exp_nonpos_f64_row(&mut v);
        assert_eq!(&v[..3], &[1.0, exp_nonpos_f64(-1.0), exp_nonpos_f64(-1e-10)]);
        assert!((v[1] - (-1f64).exp()).abs() < 1e-16);
    }

    #[test]
    fn fast_log1p_is_accurate() {
        let mut r = 0.0f64;
        let mut n = 0;
        while r < 1e12 {
            for v in [r, r * 1.37 + 1e-300] {
                let (got, want) = (log1p_f64(v), v.ln_1p());
                assert!((got - want).abs() <= 1e-15 * want.abs() + 1e-300, "log1p({v}): {got} vs {want}");
                let v32 = v as f32;
                if v32.is_finite() {
                    let (got, want) = (log1p_f32(v32) as f64, (v32 as f64).ln_1p());
                    assert!((got - want).abs() <= 3e-7 * want.abs() + 1e-38, "log1p_f32({v32}): {got} vs {want}");
                }
            }
            r = if r < 1e-20 { 1e-20 } else { r * 1.01 };
            n += 1;
        }
        assert!(n > 5000);
        let mut a = [0.0f64; 3];
        log1p_f64_row(&[0.0, 1.0, 1e-12], &mut a);
        assert_eq!(a, [0.0, 1f64.ln_1p(), 1e-12f64.ln_1p()]);
        assert_eq!(count_row(&[1.0, 0.0, 3.0], &mut [0.0; 3]), (4.0, true));
        assert!(!count_row(&[1.0, 0.5], &mut [0.0; 2]).1);
        assert!(!count_row(&[-1.0], &mut [0.0; 1]).1);
        assert!(!count_row(&[f64::NAN], &mut [0.0; 1]).1);
        assert!(!count_row(&[f64::INFINITY], &mut [0.0; 1]).1);
    }

    #[test]
    fn bce_row_matches_the_definition() {
        let l: Vec<f32> = (0..150).map(|i| (i as f32 - 75.0) * 0.37).collect();
        let t: Vec<f32> = (0..150).map(|i| (i % 7) as f32 / 6.0).collect();
        let mut d = vec![0.0; 150];
        let got = bce_sigmoid_row(&l, &t, &mut d, 0.5);
        let mut want = 0.0f64;
        for i in 0..150 {
            let (a, y) = (l[i] as f64, t[i] as f64);
            want += a.max(0.0) - y * a + (-a.abs()).exp().ln_1p();
            let sig = 1.0 / (1.0 + (-a).exp());
            assert!((d[i] as f64 - (sig - y) * 0.5).abs() < 1e-6, "gradient {i}");
        }
        assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
    }
}
