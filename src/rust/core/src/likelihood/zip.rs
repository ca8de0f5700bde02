//! Zero-inflated Poisson counts (as scVI and scDesign3 offer): a structural zero with
//! probability `pi = sigmoid(dropout logit)` (a head: one logit per gene and cell), else
//! Poisson(mu).

use crate::Stream;

use super::count::{self, Scratch, Terms};
use super::poisson;
use super::special::{log_add_exp, sigmoid, softplus, LogFactorials};
use super::{Family, Info, Row, RowGrad};

pub(crate) struct Zip;

/// The terms of one count with mean `mu = exp(log_mu)` and dropout logit `pi_logit`.
#[inline(always)]
pub(crate) fn terms(lf: &LogFactorials, x: f64, mu: f64, log_mu: f64, pi_logit: f64) -> Terms {
    if x > 0.0 {
        let t = poisson::terms(lf, x, mu, log_mu);
        return Terms { nll: t.nll + softplus(pi_logit), d_head: sigmoid(pi_logit), ..t };
    }
    let a = -softplus(-pi_logit); // ln pi
    let b = -softplus(pi_logit) - mu; // ln(1 - pi) + ln Poisson(0)
    let lse_ab = log_add_exp(a, b);
    let w = (b - lse_ab).exp(); // share of the Poisson zero in all zeros
    let pi = sigmoid(pi_logit);
    Terms { nll: -lse_ab, d_log_mu: w * mu, d_head: w * pi - (1.0 - w) * (1.0 - pi), d_gene: 0.0 }
}

impl Family for Zip {
    const INFO: Info = Info {
        name: "zip",
        description: "zero-inflated Poisson counts (dropout per gene and cell)",
        counts: true,
        heads: &["dropout"],
        gene_params: &[],
    };
    type Genes = ();
    type Scratch = Scratch;

    fn row(&self, row: &Row<'_>, _: &(), s: &mut Scratch, grad: &mut RowGrad<'_>) -> f64 {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        let (lf, pi) = (s.log_factorials, row.heads[0]);
        count::cell_loss::<true, false>(row, &m, s, grad, |j, x, mu, log_mu| terms(&lf, x, mu, log_mu, pi[j] as f64))
    }

    fn generate(&self, row: &Row<'_>, _: &(), s: &mut Scratch, rng: &mut Stream, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        count::zero_probabilities(s, &m, None);
        for (j, (o, &e)) in out.iter_mut().zip(&s.e).enumerate() {
            *o = if count::dropout(rng, sigmoid(row.heads[0][j] as f64)) { 0.0 } else { count::draw(rng, e * m.scale, s.p0[j], None) };
        }
    }

    fn mean(&self, row: &Row<'_>, _: &(), s: &mut Scratch, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        for (j, (o, &e)) in out.iter_mut().zip(&s.e).enumerate() {
            *o = (1.0 - sigmoid(row.heads[0][j] as f64)) * e * m.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn terms_are_a_mixture_of_a_zero_and_the_poisson() {
        let lf = LogFactorials::default();
        for &(mu, pl) in &[(2.5f64, -0.4f64), (0.05, 2.0), (40.0, -4.0)] {
            let pi = sigmoid(pl);
            let p = |x: f64| (-terms(&lf, x, mu, mu.ln(), pl).nll).exp();
            for x in [0.0, 1.0, 3.0, 20.0] {
                let pois = (-poisson::terms(&lf, x, mu, mu.ln()).nll).exp();
                let want = if x == 0.0 { pi + (1.0 - pi) * pois } else { (1.0 - pi) * pois };
                assert!((p(x) - want).abs() < 1e-12 * (1.0 + want), "mu={mu} x={x}");
            }
            let total: f64 = (0..400).map(|x| p(x as f64)).sum();
            assert!((total - 1.0).abs() < 1e-10, "{total}");
        }
    }

    #[test]
    fn draws_have_the_mixture_moments() {
        let (mu, pi_logit) = (3.0f64, -0.6f64);
        let pi = sigmoid(pi_logit);
        let logits = vec![0.0f32; 4];
        let heads = vec![pi_logit as f32; 4];
        // four genes with equal proportions: mu per gene = library / 4
        let row = Row {
            logits: &logits,
            heads: [&heads, &[]],
            target: &[],
            counts: &[],
            log_library: (4.0 * mu).ln(),
            activation: crate::activation::Activation::Linear,
            scale: 1.0,
        };
        let mut rng = Stream::seed_from_u64(5);
        let (mut s, mut out) = (Scratch::default(), vec![0.0; 4]);
        let mut xs = Vec::new();
        for _ in 0..20_000 {
            Zip.generate(&row, &(), &mut s, &mut rng, &mut out);
            xs.extend_from_slice(&out);
        }
        let n = xs.len() as f64;
        let mean = xs.iter().sum::<f64>() / n;
        let zeros = xs.iter().filter(|&&x| x == 0.0).count() as f64 / n;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        assert!((mean - (1.0 - pi) * mu).abs() < 0.02 * mu, "mean {mean}");
        assert!((zeros - (pi + (1.0 - pi) * (-mu).exp())).abs() < 0.01, "zeros {zeros}");
        // Var = (1 - pi) mu (1 + pi mu)
        let want = (1.0 - pi) * mu * (1.0 + pi * mu);
        assert!((var - want).abs() < 0.05 * want, "var {var} vs {want}");
        assert!(xs.iter().all(|x| x.fract() == 0.0 && *x >= 0.0));
    }
}
