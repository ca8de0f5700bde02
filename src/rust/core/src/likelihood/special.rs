//! Special functions of the count likelihoods, in f64.

/// `ln(1 + e^x)` without overflow.
#[inline]
pub(crate) fn softplus(x: f64) -> f64 {
    if x > 0.0 {
        x + (-x).exp().ln_1p()
    } else {
        x.exp().ln_1p()
    }
}

/// `1 / (1 + e^-x)` without overflow.
#[inline]
pub(crate) fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// `ln(e^a + e^b)`.
#[inline]
pub(crate) fn log_add_exp(a: f64, b: f64) -> f64 {
    let m = a.max(b);
    m + ((a - m).exp() + (b - m).exp()).ln()
}

/// ln Γ(v), v > 0.
#[inline]
pub(crate) fn lgamma(v: f64) -> f64 {
    libm::lgamma(v)
}

/// ψ(v) = d ln Γ(v) / dv for v > 0 (recurrence to v >= 6, then the asymptotic series).
pub(crate) fn digamma(mut v: f64) -> f64 {
    let mut r = 0.0;
    while v < 6.0 {
        r -= 1.0 / v;
        v += 1.0;
    }
    let f = 1.0 / (v * v);
    r + v.ln() - 0.5 / v - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f / 132.0))))
}

/// ln(x!) for whole x < `FACTORIAL_TABLE`, read from a table built once.
const FACTORIAL_TABLE: usize = 1024;

/// ln(x!) for counts: from a table for small counts, else `lgamma(x + 1)`.
#[derive(Clone, Copy)]
pub(crate) struct LogFactorials(&'static [f64]);

impl Default for LogFactorials {
    fn default() -> Self {
        static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
        LogFactorials(TABLE.get_or_init(|| {
            let mut t = vec![0.0; FACTORIAL_TABLE];
            for i in 2..FACTORIAL_TABLE {
                t[i] = t[i - 1] + (i as f64).ln();
            }
            t
        }))
    }
}

impl LogFactorials {
    #[inline]
    pub(crate) fn get(&self, x: f64) -> f64 {
        if x < FACTORIAL_TABLE as f64 {
            self.0[x as usize]
        } else {
            lgamma(x + 1.0)
        }
    }
}

/// ln(x!) for a count, by `lgamma` (the reference the table is tested against).
#[cfg(test)]
pub(crate) fn log_factorial(x: f64) -> f64 {
    if x < 2.0 {
        0.0
    } else {
        lgamma(x + 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let lf = LogFactorials::default();
        for x in [0.0, 1.0, 2.0, 7.0, 1023.0, 1024.0, 5000.0] {
            assert!(close(lf.get(x), log_factorial(x), 1e-12), "{x}");
        }
        assert!(close(log_add_exp(-1000.0, -1000.0), -1000.0 + 2f64.ln(), 1e-12));
        assert!(close(softplus(800.0), 800.0, 1e-12) && softplus(-800.0) >= 0.0);
        assert!(close(sigmoid(-800.0) + sigmoid(800.0), 1.0, 1e-12));
    }
}
