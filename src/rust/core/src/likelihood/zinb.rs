//! Zero-inflated negative binomial counts: a structural zero with probability
//! `pi = sigmoid(dropout logit)` (a head: one logit per gene and cell), else
//! NB(mu, theta) with a dispersion per gene (as `nb`).

use crate::Stream;

use super::count::{self, Scratch, Terms};
use super::nb::{self, GeneTerms, Genes};
use super::special::{log_add_exp, sigmoid, softplus, LogFactorials};
use super::{Family, Info, Row, RowGrad};
use crate::team::Team;

pub(crate) struct Zinb;

/// The terms of one count (as `nb::terms`) with dropout logit `pi_logit`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) fn terms(lf: &LogFactorials, x: f64, mu: f64, log_mu: f64, gene: &GeneTerms, pi_logit: f64, r: f64, l1: f64) -> Terms {
    if x > 0.0 {
        let t = nb::terms(lf, x, mu, log_mu, gene, r, l1);
        return Terms { nll: t.nll + softplus(pi_logit), d_head: sigmoid(pi_logit), ..t };
    }
    let theta = gene.theta;
    let log_p_theta = -l1;
    let log_nb0 = theta * log_p_theta;
    let a = -softplus(-pi_logit); // ln pi
    let b = -softplus(pi_logit) + log_nb0; // ln(1 - pi) + ln NB(0)
    let lse_ab = log_add_exp(a, b);
    let w = (b - lse_ab).exp(); // share of the NB zero in all zeros
    let pi = sigmoid(pi_logit);
    let frac_mu = r / (1.0 + r);
    Terms {
        nll: -lse_ab,
        d_log_mu: w * theta * frac_mu,
        d_gene: -w * theta * (log_p_theta + frac_mu),
        d_head: w * pi - (1.0 - w) * (1.0 - pi),
    }
}

impl Family for Zinb {
    const INFO: Info = Info {
        name: "zinb",
        description: "zero-inflated negative binomial counts (dropout per gene and cell, dispersion per gene)",
        counts: true,
        heads: &["dropout"],
        gene_params: &["dispersion"],
    };
    type Genes = Genes;
    type Scratch = Scratch;

    fn prepare(&self, team: &Team, params: &[&[f32]], genes: &mut Genes) {
        genes.fill(team, params[0]);
    }

    fn row(&self, row: &Row<'_>, genes: &Genes, s: &mut Scratch, grad: &mut RowGrad<'_>) -> f64 {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        count::dispersion_ratios(s, &m, &genes.inv_theta);
        let (lf, ratio, l1, pi) = (s.log_factorials, &s.ratio, &s.l1, row.heads[0]);
        count::cell_loss::<true, true>(row, &m, s, grad, |j, x, mu, log_mu| {
            terms(&lf, x, mu, log_mu, &genes.terms[j], pi[j] as f64, ratio[j], l1[j])
        })
    }

    fn generate(&self, row: &Row<'_>, genes: &Genes, s: &mut Scratch, rng: &mut Stream, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        count::dispersion_ratios(s, &m, &genes.inv_theta);
        count::zero_probabilities(s, &m, Some(&genes.theta));
        for (j, o) in out.iter_mut().enumerate() {
            *o = if count::dropout(rng, sigmoid(row.heads[0][j] as f64)) {
                0.0
            } else {
                count::draw(rng, s.e[j] * m.scale, s.p0[j], Some(nb::nb_draw(genes, s, j)))
            };
        }
    }

    fn mean(&self, row: &Row<'_>, _: &Genes, s: &mut Scratch, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        for (j, o) in out.iter_mut().enumerate() {
            *o = (1.0 - sigmoid(row.heads[0][j] as f64)) * s.e[j] * m.scale;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nll(x: f64, lm: f64, lt: f64, pl: f64) -> f64 {
        let (lf, gene, r) = (LogFactorials::default(), GeneTerms::new(lt), (lm - lt).exp());
        terms(&lf, x, lm.exp(), lm, &gene, pl, r, r.ln_1p()).nll
    }

    #[test]
    fn terms_are_a_mixture_of_a_zero_and_the_nb() {
        for &(lm, lt, pl) in &[(2.5f64.ln(), 1.3f64.ln(), -0.4), (-3.0, 2.0, 2.0), (4.0, -1.0, -4.0)] {
            let pi = sigmoid(pl);
            for x in [0.0, 1.0, 5.0, 17.0, 60.0] {
                let nb_p = (-nb::reference(x, lm, lt)).exp();
                let want = if x == 0.0 { pi + (1.0 - pi) * nb_p } else { (1.0 - pi) * nb_p };
                assert!(((-nll(x, lm, lt, pl)).exp() - want).abs() < 1e-10 * (1.0 + want), "x={x}");
            }
            let total: f64 = (0..20000).map(|x| (-nll(x as f64, lm, lt, pl)).exp()).sum();
            assert!((total - 1.0).abs() < 1e-6, "{total}");
        }
    }
}
