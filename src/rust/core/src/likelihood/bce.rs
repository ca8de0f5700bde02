//! Bernoulli cross-entropy of per-gene min-max-scaled values (VAExprs's loss): the
//! output layer's activation gives the Bernoulli mean. With a sigmoid output the stable
//! logits form `max(l, 0) - t l + ln(1 + e^-|l|)` is used; other outputs are clamped to
//! [1e-7, 1 - 1e-7] as keras does.

use crate::Stream;

use super::{Family, Info, Row, RowGrad};
use crate::activation::Activation;

pub(crate) struct Bce;

impl Family for Bce {
    const INFO: Info = Info {
        name: "bce",
        description: "Bernoulli cross-entropy of per-gene min-max-scaled values (VAExprs); smooth values on the data's scale",
        counts: false,
        heads: &[],
        gene_params: &[],
    };
    type Genes = ();
    type Scratch = ();

    fn row(&self, row: &Row<'_>, _: &(), _: &mut (), grad: &mut RowGrad<'_>) -> f64 {
        let act = row.activation;
        if act == Activation::Sigmoid {
            return crate::simd::bce_sigmoid_row(row.logits, row.target, grad.logits, row.scale);
        }
        let (lo, hi) = (1e-7f32, 1.0 - 1e-7f32);
        let mut s = 0.0f64;
        for (j, (&a, &t)) in row.logits.iter().zip(row.target).enumerate() {
            let y = act.apply(a);
            let pc = y.clamp(lo, hi);
            let v = -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln());
            let inside = y >= lo && y <= hi;
            let dp = if inside { -t / pc + (1.0 - t) / (1.0 - pc) } else { 0.0 };
            s += v as f64;
            grad.logits[j] = dp * act.grad(a, y) * row.scale;
        }
        s
    }

    fn generate(&self, row: &Row<'_>, _: &(), _: &mut (), _: &mut Stream, out: &mut [f64]) {
        self.mean(row, &(), &mut (), out);
    }

    fn mean(&self, row: &Row<'_>, _: &(), _: &mut (), out: &mut [f64]) {
        for (o, &a) in out.iter_mut().zip(row.logits) {
            *o = row.activation.apply(a) as f64;
        }
    }
}
