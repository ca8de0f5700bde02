//! What the count families share: the means of a cell (a softmax over its genes times
//! its library size), the loss of a cell from per-count terms with the gradient taken
//! back through the softmax, and draws from Poisson and negative binomial
//! distributions.

use crate::Stream;
use rand::RngExt;
use rand_distr::{Distribution, Gamma, Poisson};

use super::special::LogFactorials;
use super::{Row, RowGrad};

/// The negative log-likelihood of one count and its derivatives with respect to
/// `log_mu`, the family's head value at that gene (e.g. a dropout logit) and its
/// per-gene parameter (e.g. log theta).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Terms {
    pub nll: f64,
    pub d_log_mu: f64,
    pub d_head: f64,
    pub d_gene: f64,
}

/// Buffers of one thread: `e = exp(logit - max)` per gene, for NB-based families
/// `mu / theta` and `ln(1 + mu / theta)`, and when drawing the probabilities of zero.
#[derive(Default)]
pub(crate) struct Scratch {
    pub e: Vec<f64>,
    pub ratio: Vec<f64>,
    pub l1: Vec<f64>,
    pub p0: Vec<f64>,
    pub log_factorials: LogFactorials,
}

/// A cell's softmax: `mu_j = e_j * scale`, `ln mu_j = logit_j + shift`.
pub(crate) struct Means {
    pub sum_e: f64,
    pub shift: f64,
    pub scale: f64,
}

/// The cell's means from its logits and ln library size, with `e` filled (in f64).
pub(crate) fn means(logits: &[f32], log_library: f64, e: &mut Vec<f64>) -> Means {
    if e.len() != logits.len() {
        e.resize(logits.len(), 0.0);
    }
    let mx = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
    crate::simd::exp_shifted_row(logits, mx, e);
    let mx = mx as f64;
    let sum_e: f64 = e.iter().sum();
    let lse = mx + sum_e.ln();
    Means { sum_e, shift: log_library - lse, scale: log_library.exp() / sum_e }
}

/// `mu / theta` and `ln(1 + mu / theta)` for the whole cell at once, into the scratch.
pub(crate) fn dispersion_ratios(s: &mut Scratch, m: &Means, inv_theta: &[f64]) {
    let g = s.e.len();
    s.ratio.resize(g, 0.0);
    s.l1.resize(g, 0.0);
    s.ratio.iter_mut().zip(s.e.iter().zip(inv_theta.iter())).for_each(|(q, (&e, &it))| *q = e * m.scale * it);
    crate::simd::log1p_f64_row(&s.ratio, &mut s.l1);
}

/// Every gene's probability of a zero count, into `s.p0`, for the whole cell at once
/// (vector loops instead of one `exp` per draw): `(1 + mu / theta)^-theta` for the
/// negative binomial with per-gene `theta` (after `dispersion_ratios`), `e^-mu` for
/// the Poisson (`theta` None).
pub(crate) fn zero_probabilities(s: &mut Scratch, m: &Means, theta: Option<&[f64]>) {
    let g = s.e.len();
    s.p0.resize(g, 0.0);
    match theta {
        Some(th) => s.p0.iter_mut().zip(th.iter().zip(&s.l1)).for_each(|(p, (&t, &l))| *p = -(t * l)),
        None => s.p0.iter_mut().zip(&s.e).for_each(|(p, &e)| *p = -(e * m.scale)),
    }
    crate::simd::exp_nonpos_f64_row(&mut s.p0);
}

/// The loss of a cell whose count at gene `j` has the terms `terms(j, x, mu, log_mu)`
/// (means from `means`, scratch filled), and its gradient into `grad`: with respect to
/// the logits through the softmax, and (when `HEAD` / `GENE`) to the family's head and
/// per-gene parameter. Derivatives are rounded to f32 per count, as burn's f32
/// surrogate of the reference engine did.
#[inline(always)]
pub(crate) fn cell_loss<const HEAD: bool, const GENE: bool>(
    row: &Row<'_>,
    m: &Means,
    s: &Scratch,
    grad: &mut RowGrad<'_>,
    terms: impl Fn(usize, f64, f64, f64) -> Terms,
) -> f64 {
    let g = row.logits.len();
    let scale = row.scale as f64;
    let (mut nll, mut sum_g) = (0.0f64, 0.0f64);
    for j in 0..g {
        let x = row.counts[j] as f64;
        let log_mu = row.logits[j] as f64 + m.shift;
        let mu = s.e[j] * m.scale;
        let t = terms(j, x, mu, log_mu);
        nll += t.nll;
        let gm = (t.d_log_mu * scale) as f32;
        grad.logits[j] = gm;
        sum_g += gm as f64;
        if HEAD {
            grad.heads[0][j] = (t.d_head * scale) as f32;
        }
        if GENE {
            grad.genes[0][j] = (t.d_gene * scale) as f32;
        }
    }
    // through log-softmax: d/dl_j = g_j - softmax_j * sum(g)
    let inv_sum = 1.0 / m.sum_e;
    for j in 0..g {
        grad.logits[j] = (grad.logits[j] as f64 - s.e[j] * inv_sum * sum_g) as f32;
    }
    nll
}

/// Small means are drawn by inversion of the pmf (one uniform, usually one term: most
/// entries of sparse data are zeros); larger ones as a Gamma-Poisson mixture.
const INVERSION_MAX_MEAN: f64 = 8.0;

/// The negative binomial of a draw: `theta` and `r = mu / theta` (as
/// `dispersion_ratios` computes it for a whole cell).
#[derive(Clone, Copy)]
pub(crate) struct NbDraw {
    pub theta: f64,
    pub r: f64,
}

/// `1 / (k + 1)` for the first steps of the inversion (a product instead of a division).
const RECIPROCALS: [f64; 32] = {
    let mut t = [0.0; 32];
    let mut k = 0;
    while k < 32 {
        t[k] = 1.0 / (k + 1) as f64;
        k += 1;
    }
    t
};

/// A draw from NB(mu, theta), or Poisson(mu) when `nb` is None; `p0` is its
/// probability of zero (`zero_probabilities`).
#[inline(always)]
pub(crate) fn draw(rng: &mut Stream, mu: f64, p0: f64, nb: Option<NbDraw>) -> f64 {
    if !(mu > 0.0) {
        return 0.0;
    }
    let theta = nb.map(|d| d.theta);
    if mu < INVERSION_MAX_MEAN {
        let u: f64 = rng.random::<f64>();
        // P(0) = (1 + mu / theta)^-theta (NB) or e^-mu (Poisson), and the ratio
        // P(k+1)/P(k) = (k + theta)/(k + 1) * q with q = mu / (theta + mu), or mu/(k + 1)
        let nb = nb.filter(|d| d.theta.is_finite() && d.theta > 0.0);
        let mut p = if nb.is_some() || theta.is_none() { p0 } else { (-mu).exp() };
        if u < p {
            return 0.0; // most entries
        }
        let (q, th) = nb.map_or((0.0, 0.0), |d| (d.r / (1.0 + d.r), d.theta));
        let mut cum = p;
        let mut k = 0usize;
        while u >= cum && k < 10_000 {
            let inv = if k < RECIPROCALS.len() { RECIPROCALS[k] } else { 1.0 / (k + 1) as f64 };
            p *= if q > 0.0 { (k as f64 + th) * q * inv } else { mu * inv };
            k += 1;
            cum += p;
            if p < 1e-300 {
                break;
            }
        }
        return k as f64;
    }
    let lambda = match theta {
        Some(th) if th.is_finite() && th > 0.0 => match Gamma::new(th, mu / th) {
            Ok(g) => g.sample(rng),
            Err(_) => mu,
        },
        _ => mu,
    };
    if !(lambda > 0.0) || !lambda.is_finite() {
        return 0.0;
    }
    match Poisson::new(lambda) {
        Ok(p) => p.sample(rng),
        Err(_) => lambda.round(),
    }
}

/// Whether a zero-inflated draw is a structural zero (probability `pi`); one uniform.
pub(crate) fn dropout(rng: &mut Stream, pi: f64) -> bool {
    rng.random::<f64>() < pi
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn both_samplers_have_the_right_moments() {
        let mut rng = Stream::seed_from_u64(3);
        let n = 60_000;
        // below and above the inversion threshold, NB and Poisson
        for &(mu, th) in &[(0.3, Some(1.5)), (6.0, Some(0.8)), (20.0, Some(3.0)), (2.0, None), (30.0, None)] {
            let nb = th.map(|theta: f64| NbDraw { theta, r: mu / theta });
            let p0 = th.map_or((-mu).exp(), |t: f64| (-t * (mu / t).ln_1p()).exp());
            let xs: Vec<f64> = (0..n).map(|_| draw(&mut rng, mu, p0, nb)).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            let want_v = mu + th.map_or(0.0, |t| mu * mu / t);
            assert!(close(m, mu, 0.04), "mean {m} vs {mu} ({th:?})");
            assert!(close(v, want_v, 0.08), "var {v} vs {want_v} ({th:?})");
            assert!(xs.iter().all(|x| x.fract() == 0.0 && *x >= 0.0));
            if let Some(t) = th {
                let p0 = (t / (t + mu)).powf(t);
                let zeros = xs.iter().filter(|&&x| x == 0.0).count() as f64 / n as f64;
                assert!((zeros - p0).abs() < 0.01, "zeros {zeros} vs {p0}");
            }
        }
        assert_eq!(draw(&mut rng, 0.0, 1.0, Some(NbDraw { theta: 1.0, r: 0.0 })), 0.0);
        // an unusable theta falls back to the Poisson
        let xs: Vec<f64> = (0..n).map(|_| draw(&mut rng, 2.0, f64::NAN, Some(NbDraw { theta: f64::INFINITY, r: 0.0 }))).collect();
        assert!((xs.iter().sum::<f64>() / n as f64 - 2.0).abs() < 0.05);
    }
}
