//! Count likelihoods: exact negative log-likelihoods (lgamma terms included) and their
//! derivatives, element by element, and sampling from the fitted distributions.
//!
//! Parameterisation per gene g of a cell: mean `mu = exp(log_mu)`, NB dispersion
//! (inverse overdispersion) `theta = exp(log_theta)`, ZINB dropout probability
//! `pi = sigmoid(pi_logit)`. Derivatives are with respect to `log_mu`, `log_theta`
//! and `pi_logit`; the training step feeds them to burn's autodiff (train.rs).

use rand::rngs::StdRng;
use rand::RngExt;
use rand_distr::{Distribution, Gamma, Poisson};

/// NLL of one observation and its derivatives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Terms {
    pub nll: f64,
    pub d_log_mu: f64,
    pub d_log_theta: f64,
    pub d_pi_logit: f64,
}

/// `ln(1 + e^x)` without overflow.
#[inline]
pub fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

#[inline]
fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(e^a + e^b)`.
#[inline]
fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// ln Γ(v), v > 0.
#[inline]
pub fn lgamma(v: f64) -> f64 {
    libm::lgamma(v)
}

/// ψ(v) = d ln Γ(v) / dv for v > 0 (recurrence to v >= 6, then the asymptotic series).
pub fn digamma(mut v: f64) -> f64 {
    let mut r = 0.0;
    while v < 6.0 {
        r -= 1.0 / v;
        v += 1.0;
    }
    let f = 1.0 / (v * v);
    r + v.ln() - 0.5 / v
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// `ln Γ(x + θ) - ln Γ(θ)` and `ψ(x + θ) - ψ(θ)` for a count `x` (exact sums for
/// small counts, which are most of them, the special functions otherwise).
#[inline]
fn gamma_ratio(x: f64, theta: f64) -> (f64, f64) {
    if x == 0.0 {
        (0.0, 0.0)
    } else if x < 16.0 {
        let (mut l, mut d) = (0.0, 0.0);
        let mut k = 0.0;
        while k < x {
            l += (theta + k).ln();
            d += 1.0 / (theta + k);
            k += 1.0;
        }
        (l, d)
    } else {
        (lgamma(x + theta) - lgamma(theta), digamma(x + theta) - digamma(theta))
    }
}

/// ln(x!) for a count.
#[inline]
pub fn log_factorial(x: f64) -> f64 {
    if x < 2.0 {
        0.0
    } else {
        lgamma(x + 1.0)
    }
}

/// Poisson(x | mu).
pub fn poisson(x: f64, log_mu: f64) -> Terms {
    let mu = log_mu.exp();
    Terms { nll: mu - x * log_mu + log_factorial(x), d_log_mu: mu - x, d_log_theta: 0.0, d_pi_logit: 0.0 }
}

/// Negative binomial NB(x | mu, theta): variance mu + mu^2 / theta.
pub fn nb(x: f64, log_mu: f64, log_theta: f64) -> Terms {
    let (mu, theta) = (log_mu.exp(), log_theta.exp());
    // ln(theta / (theta + mu)) and ln(mu / (theta + mu)), without cancellation
    let log_p_theta = -softplus(log_mu - log_theta);
    let log_p_mu = -softplus(log_theta - log_mu);
    let (lg, dg) = gamma_ratio(x, theta);
    let nll = -(lg - log_factorial(x) + theta * log_p_theta + x * log_p_mu);
    let frac_mu = log_p_mu.exp(); // mu / (theta + mu)
    Terms {
        nll,
        d_log_mu: (x + theta) * frac_mu - x,
        d_log_theta: -theta * (dg + log_p_theta + (mu - x) / (theta + mu)),
        d_pi_logit: 0.0,
    }
}

/// ln(x!) for whole x < `FACTORIAL_TABLE`, read from a table built once.
const FACTORIAL_TABLE: usize = 1024;

fn log_factorial_table() -> &'static [f64] {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let mut t = vec![0.0; FACTORIAL_TABLE];
        for i in 2..FACTORIAL_TABLE {
            t[i] = t[i - 1] + (i as f64).ln();
        }
        t
    })
}

/// Per-gene values the count likelihoods reuse for every cell of a batch.
#[derive(Debug, Clone, Copy)]
pub struct GeneTerms {
    pub theta: f64,
    pub log_theta: f64,
    lgamma_theta: f64,
    digamma_theta: f64,
    /// `ln Γ(k + θ) - ln Γ(θ)` and `ψ(k + θ) - ψ(θ)` for counts `k < SMALL_COUNT`, as
    /// the exact sums `Σ_{i<k} ln(θ + i)` and `Σ_{i<k} 1 / (θ + i)`.
    small_lg: [f64; SMALL_COUNT],
    small_dg: [f64; SMALL_COUNT],
}

/// Counts below this use the per-gene tables of [`GeneTerms`].
const SMALL_COUNT: usize = 16;

impl GeneTerms {
    pub fn new(log_theta: f64) -> Self {
        let theta = log_theta.exp();
        let (mut small_lg, mut small_dg) = ([0.0; SMALL_COUNT], [0.0; SMALL_COUNT]);
        for k in 1..SMALL_COUNT {
            let t = theta + (k - 1) as f64;
            small_lg[k] = small_lg[k - 1] + t.ln();
            small_dg[k] = small_dg[k - 1] + 1.0 / t;
        }
        GeneTerms { theta, log_theta, lgamma_theta: lgamma(theta), digamma_theta: digamma(theta), small_lg, small_dg }
    }
}

/// The same values as [`poisson`], [`nb`] and [`zinb`] from a cell's `mu` and
/// `log_mu` and a gene's precomputed [`GeneTerms`], with fewer special-function calls:
/// zeros (most entries) need one `ln_1p`; small counts exact sums; larger counts one
/// `lgamma` and one `digamma`; `ln(x!)` from a table.
pub struct FastCounts {
    table: &'static [f64],
}

impl Default for FastCounts {
    fn default() -> Self {
        FastCounts { table: log_factorial_table() }
    }
}

impl FastCounts {
    #[inline]
    fn log_factorial(&self, x: f64) -> f64 {
        if x < FACTORIAL_TABLE as f64 {
            self.table[x as usize]
        } else {
            lgamma(x + 1.0)
        }
    }

    #[inline]
    pub fn poisson(&self, x: f64, mu: f64, log_mu: f64) -> Terms {
        Terms { nll: mu - x * log_mu + self.log_factorial(x), d_log_mu: mu - x, d_log_theta: 0.0, d_pi_logit: 0.0 }
    }

    #[inline]
    pub fn nb(&self, x: f64, mu: f64, log_mu: f64, gene: &GeneTerms) -> Terms {
        let r = mu / gene.theta;
        self.nb_given(x, mu, log_mu, gene, r, r.ln_1p())
    }

    /// [`FastCounts::nb`] with `r = mu / theta` and `l1 = ln(1 + r)` computed by the
    /// caller (e.g. for a whole cell at once).
    #[inline]
    pub fn nb_given(&self, x: f64, mu: f64, log_mu: f64, gene: &GeneTerms, r: f64, l1: f64) -> Terms {
        let theta = gene.theta;
        let log_p_theta = -l1;
        let frac_mu = r / (1.0 + r); // mu / (theta + mu)
        if x == 0.0 {
            return Terms {
                nll: theta * l1,
                d_log_mu: theta * frac_mu,
                d_log_theta: -theta * (log_p_theta + frac_mu),
                d_pi_logit: 0.0,
            };
        }
        let log_p_mu = log_mu - gene.log_theta - l1;
        let (lg, dg) = if x < SMALL_COUNT as f64 {
            (gene.small_lg[x as usize], gene.small_dg[x as usize])
        } else {
            (lgamma(x + theta) - gene.lgamma_theta, digamma(x + theta) - gene.digamma_theta)
        };
        Terms {
            nll: -(lg - self.log_factorial(x) + theta * log_p_theta + x * log_p_mu),
            d_log_mu: (x + theta) * frac_mu - x,
            d_log_theta: -theta * (dg + log_p_theta + (mu - x) / (theta + mu)),
            d_pi_logit: 0.0,
        }
    }

    #[inline]
    pub fn zinb(&self, x: f64, mu: f64, log_mu: f64, gene: &GeneTerms, pi_logit: f64) -> Terms {
        let r = mu / gene.theta;
        self.zinb_given(x, mu, log_mu, gene, pi_logit, r, r.ln_1p())
    }

    /// [`FastCounts::zinb`] with `r = mu / theta` and `l1 = ln(1 + r)` given.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn zinb_given(&self, x: f64, mu: f64, log_mu: f64, gene: &GeneTerms, pi_logit: f64, r: f64, l1: f64) -> Terms {
        if x > 0.0 {
            let t = self.nb_given(x, mu, log_mu, gene, r, l1);
            return Terms { nll: t.nll + softplus(pi_logit), d_pi_logit: sigmoid(pi_logit), ..t };
        }
        let theta = gene.theta;
        let log_p_theta = -l1;
        let log_nb0 = theta * log_p_theta;
        let a = -softplus(-pi_logit); // ln pi
        let b = -softplus(pi_logit) + log_nb0; // ln(1 - pi) + ln NB(0)
        let lse_ab = log_add_exp(a, b);
        let w = (b - lse_ab).exp();
        let pi = sigmoid(pi_logit);
        let frac_mu = r / (1.0 + r);
        Terms {
            nll: -lse_ab,
            d_log_mu: w * theta * frac_mu,
            d_log_theta: -w * theta * (log_p_theta + frac_mu),
            d_pi_logit: w * pi - (1.0 - w) * (1.0 - pi),
        }
    }
}

/// Zero-inflated NB: a structural zero with probability pi, else NB(mu, theta).
pub fn zinb(x: f64, log_mu: f64, log_theta: f64, pi_logit: f64) -> Terms {
    if x > 0.0 {
        let t = nb(x, log_mu, log_theta);
        return Terms { nll: t.nll + softplus(pi_logit), d_pi_logit: sigmoid(pi_logit), ..t };
    }
    let theta = log_theta.exp();
    let log_p_theta = -softplus(log_mu - log_theta);
    let log_nb0 = theta * log_p_theta;
    let a = -softplus(-pi_logit); // ln pi
    let b = -softplus(pi_logit) + log_nb0; // ln(1 - pi) + ln NB(0)
    let lse_ab = log_add_exp(a, b);
    let w = (b - lse_ab).exp(); // share of the NB zero in all zeros
    let pi = sigmoid(pi_logit);
    let frac_mu = (-softplus(log_theta - log_mu)).exp();
    Terms {
        nll: -lse_ab,
        d_log_mu: w * theta * frac_mu,
        d_log_theta: -w * theta * (log_p_theta + frac_mu),
        d_pi_logit: w * pi - (1.0 - w) * (1.0 - pi),
    }
}

/// Small means are drawn by inversion of the pmf (one uniform, usually one term: most
/// entries of sparse data are zeros); larger ones as a Gamma-Poisson mixture.
const INVERSION_MAX_MEAN: f64 = 8.0;

/// A draw from NB(mu, theta) (Poisson when `theta` is None), optionally zero-inflated.
pub fn sample(rng: &mut StdRng, mu: f64, theta: Option<f64>, pi: Option<f64>) -> f64 {
    if let Some(p) = pi {
        if rng.random::<f64>() < p {
            return 0.0;
        }
    }
    if !(mu > 0.0) {
        return 0.0;
    }
    if mu < INVERSION_MAX_MEAN {
        let u: f64 = rng.random::<f64>();
        // P(0) and the ratio P(k+1)/P(k) = (k + theta)/(k + 1) * q (NB) or mu/(k + 1) (Poisson)
        let (mut p, q, th) = match theta {
            Some(th) if th.is_finite() && th > 0.0 => {
                let log_p_theta = -softplus(mu.ln() - th.ln());
                ((th * log_p_theta).exp(), mu / (th + mu), th)
            }
            _ => ((-mu).exp(), 0.0, 0.0),
        };
        let mut cum = p;
        let mut k = 0.0f64;
        while u >= cum && k < 10_000.0 {
            p *= if q > 0.0 { (k + th) / (k + 1.0) * q } else { mu / (k + 1.0) };
            k += 1.0;
            cum += p;
            if p < 1e-300 {
                break;
            }
        }
        return k;
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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * (1.0 + a.abs().max(b.abs()))
    }

    #[test]
    fn special_functions() {
        assert!(close(lgamma(5.0), 24f64.ln(), 1e-12));
        // ψ(1) = -γ, ψ(n + 1) = ψ(n) + 1/n
        assert!(close(digamma(1.0), -0.5772156649015329, 1e-10));
        assert!(close(digamma(10.5) - digamma(9.5), 1.0 / 9.5, 1e-10));
        assert!(close(digamma(0.01), -100.56088545786867, 1e-8));
        for (x, th) in [(3.0, 0.7), (20.0, 2.5), (100.0, 0.1)] {
            let (l, d) = gamma_ratio(x, th);
            assert!(close(l, lgamma(x + th) - lgamma(th), 1e-9));
            assert!(close(d, digamma(x + th) - digamma(th), 1e-8));
        }
    }

    #[test]
    fn distributions_sum_to_one_and_match_known_values() {
        let (lm, lt, p) = (2.5f64.ln(), 1.3f64.ln(), -0.4);
        let total = |f: &dyn Fn(f64) -> f64| (0..400).map(|x| (-f(x as f64)).exp()).sum::<f64>();
        assert!(close(total(&|x| poisson(x, lm).nll), 1.0, 1e-10));
        assert!(close(total(&|x| nb(x, lm, lt).nll), 1.0, 1e-10));
        assert!(close(total(&|x| zinb(x, lm, lt, p).nll), 1.0, 1e-10));
        // R: dnbinom(3, size = 1.3, mu = 2.5) = 0.1221679...
        let want = {
            let (mu, th) = (2.5f64, 1.3f64);
            (lgamma(3.0 + th) - lgamma(th) - lgamma(4.0)).exp() * (th / (th + mu)).powf(th) * (mu / (th + mu)).powi(3)
        };
        assert!(close((-nb(3.0, lm, lt).nll).exp(), want, 1e-12));
        // A huge theta is Poisson.
        assert!(close(nb(4.0, lm, 25.0).nll, poisson(4.0, lm).nll, 1e-8));
        // Mean of the NB is mu.
        let mean: f64 = (0..2000).map(|x| x as f64 * (-nb(x as f64, lm, lt).nll).exp()).sum();
        assert!(close(mean, 2.5, 1e-8));
    }

    #[test]
    fn fast_terms_match_the_reference() {
        let f = FastCounts::default();
        for &lt in &[-3.0, -0.5, 0.0, 1.2, 4.0, 9.0] {
            let gene = GeneTerms::new(lt);
            for &lm in &[-12.0, -3.0, 0.0, 1.5, 4.0, 8.0] {
                for &x in &[0.0, 1.0, 2.0, 3.0, 4.0, 7.0, 15.0, 16.0, 40.0, 300.0, 2000.0] {
                    for &pl in &[-4.0, 0.0, 2.5] {
                        let mu = f64::exp(lm);
                        let pairs = [
                            (poisson(x, lm), f.poisson(x, mu, lm)),
                            (nb(x, lm, lt), f.nb(x, mu, lm, &gene)),
                            (zinb(x, lm, lt, pl), f.zinb(x, mu, lm, &gene, pl)),
                        ];
                        for (a, b) in pairs {
                            for (u, v) in [(a.nll, b.nll), (a.d_log_mu, b.d_log_mu), (a.d_log_theta, b.d_log_theta), (a.d_pi_logit, b.d_pi_logit)] {
                                let e = (u - v).abs() / (1.0 + u.abs());
                                assert!(e < 1e-9, "x={x} lm={lm} lt={lt} pl={pl}: {a:?} vs {b:?}");
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn derivatives_match_finite_differences() {
        let h = 1e-6;
        for &x in &[0.0, 1.0, 4.0, 37.0] {
            for &(lm, lt, p) in &[(0.3, -0.5, -1.0), (2.0, 1.0, 0.5), (-3.0, 2.0, 2.0)] {
                let fd = |f: &dyn Fn(f64, f64, f64) -> f64, i: usize| {
                    let mut a = [lm, lt, p];
                    let mut b = [lm, lt, p];
                    a[i] += h;
                    b[i] -= h;
                    (f(a[0], a[1], a[2]) - f(b[0], b[1], b[2])) / (2.0 * h)
                };
                let t = zinb(x, lm, lt, p);
                let f = |a: f64, b: f64, c: f64| zinb(x, a, b, c).nll;
                assert!(close(t.d_log_mu, fd(&f, 0), 1e-5), "zinb d_log_mu x={x}");
                assert!(close(t.d_log_theta, fd(&f, 1), 1e-5), "zinb d_log_theta x={x}");
                assert!(close(t.d_pi_logit, fd(&f, 2), 1e-5), "zinb d_pi x={x}");
                let t = nb(x, lm, lt);
                let f = |a: f64, b: f64, _: f64| nb(x, a, b).nll;
                assert!(close(t.d_log_mu, fd(&f, 0), 1e-5), "nb d_log_mu x={x}");
                assert!(close(t.d_log_theta, fd(&f, 1), 1e-5), "nb d_log_theta x={x}");
                let t = poisson(x, lm);
                let f = |a: f64, _: f64, _: f64| poisson(x, a).nll;
                assert!(close(t.d_log_mu, fd(&f, 0), 1e-5), "poisson x={x}");
            }
        }
    }

    #[test]
    fn both_samplers_have_the_right_moments() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 60_000;
        // below and above the inversion threshold, NB and Poisson
        for &(mu, th) in &[(0.3, Some(1.5)), (6.0, Some(0.8)), (20.0, Some(3.0)), (2.0, None), (30.0, None)] {
            let xs: Vec<f64> = (0..n).map(|_| sample(&mut rng, mu, th, None)).collect();
            let m = xs.iter().sum::<f64>() / n as f64;
            let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
            let want_v = mu + th.map_or(0.0, |t| mu * mu / t);
            assert!(close(m, mu, 0.04), "mean {m} vs {mu} ({th:?})");
            assert!(close(v, want_v, 0.08), "var {v} vs {want_v} ({th:?})");
            if let Some(t) = th {
                let p0 = (t / (t + mu)).powf(t);
                let zeros = xs.iter().filter(|&&x| x == 0.0).count() as f64 / n as f64;
                assert!((zeros - p0).abs() < 0.01, "zeros {zeros} vs {p0}");
            }
        }
    }

    #[test]
    fn samples_have_the_right_moments() {
        let mut rng = StdRng::seed_from_u64(1);
        let n = 40_000;
        let (mu, th, pi) = (4.0, 2.0, 0.25);
        let xs: Vec<f64> = (0..n).map(|_| sample(&mut rng, mu, Some(th), Some(pi))).collect();
        let m = xs.iter().sum::<f64>() / n as f64;
        let zeros = xs.iter().filter(|&&x| x == 0.0).count() as f64 / n as f64;
        assert!(close(m, (1.0 - pi) * mu, 0.03), "mean {m}");
        let p0 = pi + (1.0 - pi) * (th / (th + mu)).powf(th);
        assert!((zeros - p0).abs() < 0.01, "zeros {zeros} vs {p0}");
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n as f64;
        let nb_var = mu + mu * mu / th;
        let want_v = (1.0 - pi) * (nb_var + mu * mu) - ((1.0 - pi) * mu).powi(2);
        assert!(close(v, want_v, 0.05), "var {v} vs {want_v}");
        assert!(xs.iter().all(|x| x.fract() == 0.0 && *x >= 0.0));
    }
}
