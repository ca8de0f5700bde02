//! Negative binomial counts with one dispersion per gene: `x ~ NB(mu, theta)`, variance
//! `mu + mu^2 / theta`, `theta = exp(log_theta)` (a per-gene parameter, 0 at start:
//! theta = 1).

use crate::Stream;

use super::count::{self, Scratch, Terms};
use super::special::{digamma, lgamma, LogFactorials};
use super::{Family, Info, Row, RowGrad};
use crate::team::{SendPtr, Team};

pub(crate) struct Nb;

/// Counts below this use the per-gene tables of [`GeneTerms`].
const SMALL_COUNT: usize = 16;

/// Per-gene values the NB likelihoods reuse for every cell of a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct GeneTerms {
    pub theta: f64,
    pub log_theta: f64,
    lgamma_theta: f64,
    digamma_theta: f64,
    /// `ln Γ(k + θ) - ln Γ(θ)` and `ψ(k + θ) - ψ(θ)` for counts `k < SMALL_COUNT`, as
    /// the exact sums `Σ_{i<k} ln(θ + i)` and `Σ_{i<k} 1 / (θ + i)`.
    small_lg: [f64; SMALL_COUNT],
    small_dg: [f64; SMALL_COUNT],
}

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

/// Every gene's [`GeneTerms`], `theta` and `1 / theta`.
#[derive(Default)]
pub(crate) struct Genes {
    pub terms: Vec<GeneTerms>,
    pub theta: Vec<f64>,
    pub inv_theta: Vec<f64>,
}

impl Genes {
    /// Computed by the team into buffers kept between steps (a few hundred nanoseconds
    /// per gene, for every step; a fresh half-megabyte table each step cost page
    /// faults and, with threads, TLB shootdowns).
    pub fn fill(&mut self, team: &Team, log_theta: &[f32]) {
        let g = log_theta.len();
        if self.terms.len() != g {
            self.terms.resize(g, GeneTerms::new(0.0));
        }
        self.inv_theta.resize(g, 0.0);
        self.theta.resize(g, 0.0);
        const CHUNK: usize = 256;
        let (pg, pi) = (SendPtr(self.terms.as_mut_ptr()), SendPtr(self.inv_theta.as_mut_ptr()));
        let pt = SendPtr(self.theta.as_mut_ptr());
        team.run(g.div_ceil(CHUNK), &|c| {
            for j in c * CHUNK..((c + 1) * CHUNK).min(g) {
                let t = GeneTerms::new(log_theta[j] as f64);
                // SAFETY: chunk c alone writes elements c * CHUNK.. of both buffers,
                // inside their lengths.
                unsafe {
                    *pi.get().add(j) = 1.0 / t.theta;
                    *pt.get().add(j) = t.theta;
                    *pg.get().add(j) = t;
                }
            }
        });
    }
}

/// The terms of one count with mean `mu = exp(log_mu)`, given `r = mu / theta` and
/// `l1 = ln(1 + r)`: zeros (most entries) need nothing more; small counts exact sums;
/// larger counts one `lgamma` and one `digamma`. `d_gene` is d / d log theta.
#[inline(always)]
pub(crate) fn terms(lf: &LogFactorials, x: f64, mu: f64, log_mu: f64, gene: &GeneTerms, r: f64, l1: f64) -> Terms {
    let theta = gene.theta;
    let log_p_theta = -l1;
    let frac_mu = r / (1.0 + r); // mu / (theta + mu)
    if x == 0.0 {
        return Terms { nll: theta * l1, d_log_mu: theta * frac_mu, d_gene: -theta * (log_p_theta + frac_mu), d_head: 0.0 };
    }
    let log_p_mu = log_mu - gene.log_theta - l1;
    let (lg, dg) = if x < SMALL_COUNT as f64 {
        (gene.small_lg[x as usize], gene.small_dg[x as usize])
    } else {
        (lgamma(x + theta) - gene.lgamma_theta, digamma(x + theta) - gene.digamma_theta)
    };
    Terms {
        nll: -(lg - lf.get(x) + theta * log_p_theta + x * log_p_mu),
        d_log_mu: (x + theta) * frac_mu - x,
        d_gene: -theta * (dg + log_p_theta + (mu - x) / (theta + mu)),
        d_head: 0.0,
    }
}

/// Gene `j`'s negative binomial for a draw, from a cell's `dispersion_ratios`.
#[inline(always)]
pub(crate) fn nb_draw(genes: &Genes, s: &Scratch, j: usize) -> count::NbDraw {
    count::NbDraw { theta: genes.theta[j], r: s.ratio[j] }
}

impl Family for Nb {
    const INFO: Info = Info {
        name: "nb",
        description: "negative binomial counts with a dispersion per gene (raw UMI counts)",
        counts: true,
        heads: &[],
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
        let (lf, ratio, l1) = (s.log_factorials, &s.ratio, &s.l1);
        count::cell_loss::<false, true>(row, &m, s, grad, |j, x, mu, log_mu| terms(&lf, x, mu, log_mu, &genes.terms[j], ratio[j], l1[j]))
    }

    fn generate(&self, row: &Row<'_>, genes: &Genes, s: &mut Scratch, rng: &mut Stream, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        count::dispersion_ratios(s, &m, &genes.inv_theta);
        count::zero_probabilities(s, &m, Some(&genes.theta));
        for (j, o) in out.iter_mut().enumerate() {
            *o = count::draw(rng, s.e[j] * m.scale, s.p0[j], Some(nb_draw(genes, s, j)));
        }
    }

    fn mean(&self, row: &Row<'_>, _: &Genes, s: &mut Scratch, out: &mut [f64]) {
        let m = count::means(row.logits, row.log_library, &mut s.e);
        for (o, &e) in out.iter_mut().zip(&s.e) {
            *o = e * m.scale;
        }
    }
}

/// NB(x | mu, theta) written out, for the tests of this and the zero-inflated family.
#[cfg(test)]
pub(crate) fn reference(x: f64, log_mu: f64, log_theta: f64) -> f64 {
    use super::special::{log_factorial, softplus};
    let theta = log_theta.exp();
    let lg = lgamma(x + theta) - lgamma(theta);
    -(lg - log_factorial(x) - theta * softplus(log_mu - log_theta) - x * softplus(log_theta - log_mu))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nll(x: f64, lm: f64, lt: f64) -> f64 {
        let (lf, gene, r) = (LogFactorials::default(), GeneTerms::new(lt), (lm - lt).exp());
        terms(&lf, x, lm.exp(), lm, &gene, r, r.ln_1p()).nll
    }

    #[test]
    fn terms_match_the_definition_and_known_values() {
        for &lt in &[-3.0, -0.5, 0.0, 1.2, 4.0, 9.0] {
            for &lm in &[-12.0, -3.0, 0.0, 1.5, 4.0, 8.0] {
                for &x in &[0.0, 1.0, 2.0, 7.0, 15.0, 16.0, 40.0, 300.0, 2000.0] {
                    let (a, b) = (nll(x, lm, lt), reference(x, lm, lt));
                    assert!((a - b).abs() < 1e-8 * (1.0 + b.abs()), "x={x} lm={lm} lt={lt}: {a} vs {b}");
                }
            }
        }
        let (lm, lt) = (2.5f64.ln(), 1.3f64.ln());
        let total: f64 = (0..400).map(|x| (-nll(x as f64, lm, lt)).exp()).sum();
        assert!((total - 1.0).abs() < 1e-10);
        // R: dnbinom(3, size = 1.3, mu = 2.5)
        let want = {
            let (mu, th) = (2.5f64, 1.3f64);
            (lgamma(3.0 + th) - lgamma(th) - lgamma(4.0)).exp() * (th / (th + mu)).powf(th) * (mu / (th + mu)).powi(3)
        };
        assert!(((-nll(3.0, lm, lt)).exp() - want).abs() < 1e-12);
        // a huge theta is Poisson; the mean is mu
        let pois = 2.5 - 4.0 * lm + lgamma(5.0);
        assert!((nll(4.0, lm, 25.0) - pois).abs() < 1e-8 * pois.abs());
        let mean: f64 = (0..2000).map(|x| x as f64 * (-nll(x as f64, lm, lt)).exp()).sum();
        assert!((mean - 2.5).abs() < 1e-8);
    }
}
