//! The VAE loss: reconstruction (binary cross-entropy × genes) + regularization × KL.

use burn::tensor::{activation, backend::Backend, Tensor};

use crate::spec::Activation;

/// Element-wise binary cross-entropy of `target` in [0, 1] against a Bernoulli mean
/// given by `act(pre)`. With a sigmoid output it uses the stable logits form
/// `max(l, 0) - x l + log(1 + exp(-|l|))`; otherwise the output is clamped to
/// [1e-7, 1 - 1e-7] as keras does.
pub fn bce<B: Backend>(pre: Tensor<B, 2>, target: Tensor<B, 2>, act: Activation) -> Tensor<B, 2> {
    match act {
        Activation::Sigmoid => {
            let softplus_neg_abs = pre.clone().abs().neg().exp().log1p();
            activation::relu(pre.clone()) - target * pre + softplus_neg_abs
        }
        other => {
            let p = crate::model::activate(pre, other).clamp(1e-7, 1.0 - 1e-7);
            let one_minus_t = target.clone().neg() + 1.0;
            (target * p.clone().log() + one_minus_t * (p.neg() + 1.0).log()).neg()
        }
    }
}

/// KL(q(z|x) || N(0, I)) per cell for a diagonal Gaussian with log-variance `log_var`:
/// `-0.5 * sum(1 + log_var - mean^2 - exp(log_var))`. Shape `[batch, 1]`.
pub fn kl_normal<B: Backend>(mean: Tensor<B, 2>, log_var: Tensor<B, 2>) -> Tensor<B, 2> {
    let inner = log_var.clone() + 1.0 - mean.powi_scalar(2) - log_var.exp();
    inner.sum_dim(1).mul_scalar(-0.5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    type B = burn::backend::NdArray<f32>;

    fn t(v: Vec<f32>, r: usize, c: usize) -> Tensor<B, 2> {
        Tensor::from_data(TensorData::new(v, [r, c]), &Default::default())
    }

    fn values(x: Tensor<B, 2>) -> Vec<f32> {
        x.into_data().to_vec::<f32>().unwrap()
    }

    #[test]
    fn kl_matches_closed_form() {
        // KL(N(m, s^2) || N(0,1)) = 0.5 (m^2 + s^2 - 1 - ln s^2), summed over dimensions.
        let (m, lv) = (vec![0.5f32, -1.0, 0.0, 0.0], vec![0.2f32, -0.3, 0.0, 1.0]);
        let got = values(kl_normal(t(m.clone(), 2, 2), t(lv.clone(), 2, 2)));
        let want: Vec<f32> = (0..2)
            .map(|i| (0..2).map(|j| 0.5 * (m[i * 2 + j].powi(2) + lv[i * 2 + j].exp() - 1.0 - lv[i * 2 + j])).sum())
            .collect();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
        }
        assert_eq!(got[0] > 0.0, true);
    }

    #[test]
    fn bce_logits_form_matches_the_definition_and_is_stable() {
        let logits = vec![-3.0f32, 0.0, 2.5, 40.0, -40.0, 1.0];
        let target = vec![0.0f32, 0.5, 1.0, 1.0, 0.0, 0.25];
        let got = values(bce(t(logits.clone(), 2, 3), t(target.clone(), 2, 3), Activation::Sigmoid));
        for i in 0..6 {
            let p = 1.0 / (1.0 + (-(logits[i] as f64)).exp());
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            let want = -(target[i] as f64 * p.ln() + (1.0 - target[i] as f64) * (1.0 - p).ln());
            assert!((got[i] as f64 - want).abs() < 1e-4, "i={i}: {} vs {want}", got[i]);
        }
        assert!(got.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn bce_clamps_non_sigmoid_outputs() {
        let got = values(bce(t(vec![0.3, 1.5], 1, 2), t(vec![0.3, 1.0], 1, 2), Activation::Linear));
        let want0 = -(0.3f64 * 0.3f64.ln() + 0.7 * 0.7f64.ln());
        assert!((got[0] as f64 - want0).abs() < 1e-5);
        assert!(got[1].is_finite() && got[1] < 1e-5);
    }
}
