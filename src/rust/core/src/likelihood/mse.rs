//! Squared error of per-gene min-max-scaled values against the output layer's
//! activation.

use crate::Stream;

use super::{Family, Info, Row, RowGrad};

pub(crate) struct Mse;

impl Family for Mse {
    const INFO: Info = Info {
        name: "mse",
        description: "squared error of per-gene min-max-scaled values; smooth values on the data's scale",
        counts: false,
        heads: &[],
        gene_params: &[],
    };
    type Genes = ();
    type Scratch = ();

    fn row(&self, row: &Row<'_>, _: &(), _: &mut (), grad: &mut RowGrad<'_>) -> f64 {
        let act = row.activation;
        let mut s = 0.0f64;
        for (j, (&a, &t)) in row.logits.iter().zip(row.target).enumerate() {
            let y = act.apply(a);
            let e = y - t;
            s += (e * e) as f64;
            grad.logits[j] = 2.0 * e * act.grad(a, y) * row.scale;
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
