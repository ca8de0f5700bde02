//! Poisson counts: `x ~ Poisson(mu)`, `mu` = library size × the decoder's proportion.

use crate::Stream;

use super::count::{self, Scratch, Terms};
use super::special::LogFactorials;
use super::{Family, Info, Row, RowGrad};

pub(crate) struct Poisson;

/// The terms of one count with mean `mu = exp(log_mu)`.
#[inline(always)]
pub(crate) fn terms(lf: &LogFactorials, x: f64, mu: f64, log_mu: f64) -> Terms {
    Terms { nll: mu - x * log_mu + lf.get(x), d_log_mu: mu - x, ..Terms::default() }
}

impl Family for Poisson {
    const INFO: Info = Info { name: "poisson", description: "Poisson counts (raw UMI counts)", counts: true, heads: &[], gene_params: &[] };
    type Genes = ();
    type Scratch = Scratch;

    fn row(&self, row: &Row<'_>, _: &(), s: &mut Scratch, grad: &mut RowGrad<'_>) -> f64 {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        let lf = s.log_factorials;
        count::cell_loss::<false, false>(row, &m, s, grad, |_, x, mu, log_mu| terms(&lf, x, mu, log_mu))
    }

    fn generate(&self, row: &Row<'_>, _: &(), s: &mut Scratch, rng: &mut Stream, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        count::zero_probabilities(s, &m, None);
        for (o, (&e, &p0)) in out.iter_mut().zip(s.e.iter().zip(&s.p0)) {
            *o = count::draw(rng, e * m.scale, p0, None);
        }
    }

    fn mean(&self, row: &Row<'_>, _: &(), s: &mut Scratch, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        for (o, &e) in out.iter_mut().zip(&s.e) {
            *o = e * m.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::likelihood::special::log_factorial;

    /// Poisson(x | mu) written out.
    fn reference(x: f64, log_mu: f64) -> f64 {
        log_mu.exp() - x * log_mu + log_factorial(x)
    }

    #[test]
    fn terms_match_the_definition_and_sum_to_one() {
        let lf = LogFactorials::default();
        for &lm in &[-12.0, -3.0, 0.0, 1.5, 4.0, 8.0] {
            for &x in &[0.0, 1.0, 3.0, 15.0, 16.0, 300.0, 2000.0] {
                let t = terms(&lf, x, f64::exp(lm), lm);
                assert!((t.nll - reference(x, lm)).abs() < 1e-9 * (1.0 + t.nll.abs()), "x={x} lm={lm}");
            }
        }
        let lm = 2.5f64.ln();
        let total: f64 = (0..400).map(|x| (-reference(x as f64, lm)).exp()).sum();
        assert!((total - 1.0).abs() < 1e-10);
    }
}
