//! The dense VAE / CVAE as plain parameter blocks, and its forward pass: the one
//! written-out forward code that both the training step (`step.rs`) and inference
//! (`infer.rs`) run, batched and spread over the team.
//!
//! encoder: `[x | c]` → dense layers → (`z_mean`, `z_log_var`);
//! decoder: `[z | c]` → dense layers → output layer (one value per gene) and, beside it,
//! the likelihood's heads. `c` is the condition row (one-hot labels, covariates),
//! present only in a conditional model; a decoder layer reads the columns of `c` that
//! `ModelSpec::decoder_conditions` gives it (by default all, into the first layer
//! only). Buffers are row-major `[cells, units]`.

use crate::Stream;

use crate::activation::Activation;
use crate::buffers::{copied, elements, reserve, resize};
use crate::error::Result;
use crate::likelihood::Outputs;
use crate::optim::Slot;
use crate::products::{self, matmul_bias};
use crate::spec::{LayerExtras, ModelSpec, Norm};
use crate::team::Team;
use crate::weights::{check_weights, copy_weights, DenseWeights};

/// One parameter block: a dense layer `y = x W + b` (`W` row-major `[n_in, n_out]`), or
/// (`n_in = 0`) a per-gene parameter held in `bias`; with optimizer state.
#[derive(Clone, Debug)]
pub(crate) struct Layer {
    pub name: String,
    pub n_in: usize,
    pub n_out: usize,
    pub kernel: Slot,
    pub bias: Slot,
}

/// The parameter blocks of a model, in `ModelSpec::blocks` order.
#[derive(Clone, Debug)]
pub(crate) struct Network {
    pub spec: ModelSpec,
    pub layers: Vec<Layer>,
    /// Index of the normalisation block of each encoder layer, then of each decoder
    /// layer (`None`: not normalised).
    pub enc_norm: Vec<Option<usize>>,
    pub dec_norm: Vec<Option<usize>>,
}

/// Layer normalisation's epsilon (keras's default).
pub(crate) const NORM_EPS: f32 = 1e-3;

/// A dropout mask of `rate` into `out`: 0 for a dropped unit, `1 / (1 - rate)` for a kept
/// one, one uniform draw from `rng` per unit (the reference engine draws the same).
pub(crate) fn dropout_mask(rng: &mut Stream, rate: f32, out: &mut [f32]) {
    use rand::RngExt;
    let keep = 1.0 / (1.0 - rate);
    for v in out.iter_mut() {
        *v = if rng.random::<f32>() < rate { 0.0 } else { keep };
    }
}

/// Back through a hidden layer's activation and what follows it (`act`'s buffers of
/// the forward pass): `gy`, the gradient of the layer's output, becomes that of its
/// pre-activation; a normalisation's scale and shift gradients go to `norm`'s
/// `bias.grad`.
pub(crate) fn hidden_backward(
    activation: Activation,
    ex: LayerExtras,
    norm: Option<&mut Layer>,
    n: usize,
    u: usize,
    act: &Act,
    gy: &mut [f32],
) {
    if ex.is_none() {
        activation.backward(&act.a, &act.h, gy);
    } else {
        extras_backward(ex, norm, n, u, act, gy);
        activation.backward(&act.a, &act.z, gy);
    }
}

/// Back through dropout and the normalisation: `gy` becomes the gradient of the
/// activation's output.
fn extras_backward(ex: LayerExtras, norm: Option<&mut Layer>, n: usize, u: usize, act: &Act, gy: &mut [f32]) {
    if ex.dropout > 0.0 {
        for (g, m) in gy.iter_mut().zip(&act.mask) {
            *g *= m;
        }
    }
    if let Some(post) = ex.activation {
        post.backward(&act.normed, &act.post, gy);
    }
    match (norm, ex.norm) {
        (Some(blk), Norm::Batch { .. }) => batch_norm_backward(blk, n, u, act, gy),
        (Some(blk), _) => layer_norm_backward(blk, n, u, act, gy),
        (None, _) => {}
    }
}

/// Back through batch normalisation in training (`act.inv_std` per unit): the scale's
/// and shift's gradients into `blk.bias.grad` (the moving statistics' are 0), and `gy`
/// becomes `γ / (n sd) (n gy - Σ gy - x̂ Σ gy x̂)`, each sum over the batch.
fn batch_norm_backward(blk: &mut Layer, n: usize, u: usize, act: &Act, gy: &mut [f32]) {
    let (gamma, grad) = (&blk.bias.value[..u], &mut blk.bias.grad);
    grad.fill(0.0);
    let (d_gamma, rest) = grad.split_at_mut(u);
    let d_beta = &mut rest[..u];
    for r in 0..n {
        for j in 0..u {
            let i = r * u + j;
            d_gamma[j] += gy[i] * act.xhat[i];
            d_beta[j] += gy[i];
        }
    }
    let nf = n as f32;
    for r in 0..n {
        for j in 0..u {
            let i = r * u + j;
            gy[i] = gamma[j] * act.inv_std[j] / nf * (nf * gy[i] - d_beta[j] - act.xhat[i] * d_gamma[j]);
        }
    }
}

/// Back through layer normalisation (`act.inv_std` per cell).
fn layer_norm_backward(blk: &mut Layer, n: usize, u: usize, act: &Act, gy: &mut [f32]) {
    let (gamma, grad) = (&blk.bias.value[..u], &mut blk.bias.grad);
    grad.fill(0.0);
    for r in 0..n {
        for j in 0..u {
            let i = r * u + j;
            grad[j] += gy[i] * act.xhat[i];
            grad[u + j] += gy[i];
        }
    }
    let inv_u = 1.0 / u as f32;
    for r in 0..n {
        let (row, xh) = (&mut gy[r * u..(r + 1) * u], &act.xhat[r * u..(r + 1) * u]);
        let (mut m1, mut m2) = (0.0f32, 0.0f32);
        for j in 0..u {
            let d = row[j] * gamma[j];
            m1 += d;
            m2 += d * xh[j];
        }
        let (m1, m2, inv) = (m1 * inv_u, m2 * inv_u, act.inv_std[r]);
        for j in 0..u {
            row[j] = inv * (row[j] * gamma[j] - m1 - xh[j] * m2);
        }
    }
}

/// One layer's values for the batch: before (`a`) and after (`h`) the activation and
/// what follows it; with a normalisation or dropout, the activation's output (`z`), the
/// normalised values and `1 / sd` (`xhat`; `inv_std`: per cell for layer
/// normalisation, per unit for batch normalisation) and the dropout mask; in a training
/// step with batch normalisation, each unit's mean and variance over the batch
/// (`batch_mean`, `batch_var`), which then move the moving statistics.
#[derive(Clone, Debug, Default)]
pub(crate) struct Act {
    pub a: Vec<f32>,
    pub h: Vec<f32>,
    pub z: Vec<f32>,
    pub xhat: Vec<f32>,
    pub inv_std: Vec<f32>,
    pub mask: Vec<f32>,
    pub batch_mean: Vec<f32>,
    pub batch_var: Vec<f32>,
    /// With an activation after the normalisation: its input and its output (before
    /// dropout).
    pub normed: Vec<f32>,
    pub post: Vec<f32>,
}

/// The forward pass's buffers, kept between batches.
#[derive(Clone, Debug, Default)]
pub(crate) struct Acts {
    pub enc: Vec<Act>,
    pub mean: Vec<f32>,
    pub log_var: Vec<f32>,
    /// Reparameterisation noise and `exp(log_var / 2)` (training).
    pub eps: Vec<f32>,
    pub sd: Vec<f32>,
    /// The condition rows `[n, conditions]` (a conditional model), read by the decoder
    /// layers their `decoder_conditions` say.
    pub cond: Vec<f32>,
    /// `[z | condition columns of the first layer]`, the decoder's input.
    pub dec_in: Vec<f32>,
    /// Hidden decoder layers (all but the output layer).
    pub dec: Vec<Act>,
    /// `[h | c[lo..hi]]` of each hidden decoder layer whose next layer reads condition
    /// columns (empty otherwise): that layer's input.
    pub dec_cat: Vec<Vec<f32>>,
    /// The output layer's pre-activations.
    pub logits: Vec<f32>,
    /// The likelihood's heads' pre-activations.
    pub heads: Vec<Vec<f32>>,
}

impl Acts {
    /// The input of decoder layer `j` (`j = p - 1`: the output layer and the heads):
    /// `[z | c[..]]`, the previous layer's `h`, or `[h | c[lo..hi]]`.
    pub fn decoder_input(&self, spec: &ModelSpec, j: usize) -> &[f32] {
        decoder_input(spec, j, &self.dec_in, &self.dec, &self.dec_cat)
    }
}

/// `Acts::decoder_input` from the buffers themselves (for borrows of single fields).
fn decoder_input<'a>(spec: &ModelSpec, j: usize, dec_in: &'a [f32], dec: &'a [Act], dec_cat: &'a [Vec<f32>]) -> &'a [f32] {
    match j {
        0 => dec_in,
        j if spec.decoder_condition_width(j) > 0 => &dec_cat[j - 1],
        j => &dec[j - 1].h,
    }
}

/// The rows `[n, width]` of `out`: `[first | cond[lo..hi]]`, `first` `[n, w]`, `cond`
/// `[n, k]`.
fn concat_rows(n: usize, first: &[f32], w: usize, cond: &[f32], k: usize, (lo, hi): (usize, usize), out: &mut Vec<f32>) {
    let width = w + hi - lo;
    resize(out, n * width);
    for r in 0..n {
        out[r * width..r * width + w].copy_from_slice(&first[r * w..(r + 1) * w]);
        out[r * width + w..(r + 1) * width].copy_from_slice(&cond[r * k + lo..r * k + hi]);
    }
}

/// Standard normal draws (ziggurat, `rand_distr`) from `rng`.
pub fn standard_normal(rng: &mut Stream, n: usize) -> Vec<f32> {
    use rand_distr::{Distribution, StandardNormal};
    StandardNormal.sample_iter(rng).take(n).collect()
}

/// `standard_normal` into `out`: the same draws, in place.
fn fill_standard_normal(rng: &mut Stream, out: &mut [f32]) {
    use rand_distr::{Distribution, StandardNormal};
    out.iter_mut().for_each(|v| *v = StandardNormal.sample(rng));
}

impl Network {
    /// A model from a copy of plain weights (in `ModelSpec::blocks` order), shapes
    /// checked.
    pub fn new(spec: &ModelSpec, weights: &[DenseWeights]) -> Result<Self> {
        check_weights(spec, weights)?;
        Network::from_checked(spec, copy_weights(weights)?)
    }

    /// A model that takes plain weights over (no copy), shapes checked.
    pub fn from_weights(spec: &ModelSpec, weights: Vec<DenseWeights>) -> Result<Self> {
        check_weights(spec, &weights)?;
        Network::from_checked(spec, weights)
    }

    fn from_checked(spec: &ModelSpec, weights: Vec<DenseWeights>) -> Result<Self> {
        let layers = spec
            .blocks()
            .into_iter()
            .zip(weights)
            .map(|(b, w)| {
                Ok(Layer {
                    n_in: b.n_in,
                    n_out: b.n_out,
                    // a kernel's gradient buffer is made only if it is needed (gradient.rs)
                    kernel: Slot::new(w.kernel),
                    bias: Slot::with_grad(w.bias).map_err(|e| e.of_layer(&b.name))?,
                    name: b.name,
                })
            })
            .collect::<Result<Vec<Layer>>>()?;
        let norm = |prefix: &str, n: usize| -> Vec<Option<usize>> {
            (0..n).map(|i| layers.iter().position(|l| l.name == format!("{prefix}_{}_norm", i + 1))).collect()
        };
        let (enc_norm, dec_norm) = (norm("encoder", spec.encoder.len()), norm("decoder", spec.decoder.len()));
        Ok(Network { spec: spec.clone(), layers, enc_norm, dec_norm })
    }

    /// A copy of the current weights.
    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        self.layers
            .iter()
            .map(|b| {
                Ok(DenseWeights {
                    name: b.name.clone(),
                    n_in: b.n_in,
                    n_out: b.n_out,
                    kernel: copied(&b.kernel.value, "a copy of the kernel").map_err(|e| e.of_layer(&b.name))?,
                    bias: copied(&b.bias.value, "a copy of the biases").map_err(|e| e.of_layer(&b.name))?,
                })
            })
            .collect()
    }

    /// Index of the output layer; the heads follow it, then the per-gene parameters.
    pub fn output_index(&self) -> usize {
        self.spec.encoder.len() + 1 + self.spec.decoder.len()
    }

    /// Index of per-gene parameter `q`.
    pub fn gene_index(&self, q: usize) -> usize {
        self.output_index() + 1 + self.spec.likelihood.info().heads.len() + q
    }

    /// The per-gene parameters' values (`Info::gene_params` order).
    pub fn gene_params(&self) -> Vec<&[f32]> {
        let nq = self.spec.likelihood.info().gene_params.len();
        (0..nq).map(|q| self.layers[self.gene_index(q)].bias.value.as_slice()).collect()
    }

    /// Gives `acts` (and this thread's product scratch) room for the forward pass of
    /// up to `n` cells, with the reparameterisation's buffers when `training`, so that
    /// `encode`, `sample_latent`, `set_latent` and `decode` of as many cells allocate
    /// nothing: a batch too large for memory fails here.
    pub fn reserve(&self, acts: &mut Acts, n: usize, training: bool) -> Result<()> {
        let spec = &self.spec;
        let (g, l, m, p) = (spec.n_genes, spec.latent_dim, spec.encoder.len(), spec.decoder.len());
        let nh = spec.likelihood.info().heads.len();
        let cells = |v: &mut Vec<f32>, width: usize| -> Result<()> {
            const WHAT: &str = "the activations of a batch";
            reserve(v, elements(&[n, width], WHAT)?, WHAT)
        };
        let extras = |act: &mut Act, units: usize, ex: LayerExtras| -> Result<()> {
            cells(&mut act.a, units)?;
            cells(&mut act.h, units)?;
            if !ex.is_none() {
                cells(&mut act.z, units)?;
                cells(&mut act.xhat, units)?;
                cells(&mut act.inv_std, 1)?;
                cells(&mut act.mask, units)?;
            }
            if ex.activation.is_some() {
                cells(&mut act.normed, units)?;
                cells(&mut act.post, units)?;
            }
            if let Norm::Batch { .. } = ex.norm {
                const WHAT: &str = "the batch normalisation's statistics";
                reserve(&mut act.inv_std, n.max(units), WHAT)?;
                reserve(&mut act.batch_mean, units, WHAT)?;
                reserve(&mut act.batch_var, units, WHAT)?;
            }
            Ok(())
        };
        acts.enc.resize_with(m, Act::default);
        for (i, (act, &(units, _))) in acts.enc.iter_mut().zip(&spec.encoder).enumerate() {
            extras(act, units, spec.encoder_extras[i])?;
        }
        cells(&mut acts.mean, l)?;
        cells(&mut acts.log_var, l)?;
        if training {
            cells(&mut acts.eps, l)?;
            cells(&mut acts.sd, l)?;
        }
        cells(&mut acts.dec_in, spec.decoder_input_dim())?;
        acts.dec.resize_with(p - 1, Act::default);
        for (i, (act, &(units, _))) in acts.dec.iter_mut().zip(&spec.decoder).enumerate() {
            extras(act, units, spec.decoder_extras[i])?;
        }
        acts.dec_cat.resize_with(p - 1, Vec::new);
        for (j, cat) in acts.dec_cat.iter_mut().enumerate() {
            if spec.decoder_condition_width(j + 1) > 0 {
                cells(cat, spec.decoder_layer_input(j + 1))?;
            }
        }
        cells(&mut acts.cond, spec.n_classes)?;
        cells(&mut acts.logits, g)?;
        acts.heads.resize_with(nh, Vec::new);
        for head in &mut acts.heads {
            cells(head, g)?;
        }
        for blk in self.layers.iter().filter(|b| b.n_in > 0) {
            products::reserve(n, blk.n_in, blk.n_out, false)?;
        }
        Ok(())
    }

    /// Encoder of `n` cells, `input` `[n, genes + classes]`: fills `acts.enc`,
    /// `acts.mean` and `acts.log_var`.
    /// Training draws dropout masks from `rng`; without it (inference, evaluation) no
    /// unit is dropped.
    pub fn encode(&self, team: &Team, input: &[f32], n: usize, acts: &mut Acts, mut rng: Option<&mut Stream>) {
        let spec = &self.spec;
        let (d, l, m) = (spec.input_dim(), spec.latent_dim, spec.encoder.len());
        acts.enc.resize_with(m, Act::default);
        for i in 0..m {
            let (blk, act) = (&self.layers[i], spec.encoder[i].1);
            let (before, rest) = acts.enc.split_at_mut(i);
            let (x, x_w): (&[f32], usize) = if i == 0 { (input, d) } else { (&before[i - 1].h, blk.n_in) };
            let cur = &mut rest[0];
            resize(&mut cur.a, n * blk.n_out);
            matmul_bias(team, n, x_w, blk.n_out, x, false, &blk.kernel.value, false, 0.0, Some(&blk.bias.value), &mut cur.a);
            self.activate(act, spec.encoder_extras[i], self.enc_norm[i], n, blk.n_out, cur, rng.as_deref_mut());
        }
        let (hm, hm_w): (&[f32], usize) = if m == 0 { (input, d) } else { (&acts.enc[m - 1].h, spec.encoder[m - 1].0) };
        for (buf, blk) in [(&mut acts.mean, &self.layers[m]), (&mut acts.log_var, &self.layers[m + 1])] {
            resize(buf, n * l);
            matmul_bias(team, n, hm_w, l, hm, false, &blk.kernel.value, false, 0.0, Some(&blk.bias.value), buf);
        }
    }

    /// The reparameterisation `z = mean + exp(log_var / 2) * eps`, `eps` drawn from
    /// `rng`, written with the `condition` rows (`[n, conditions]`) into `acts.dec_in`.
    pub fn sample_latent(&self, rng: &mut Stream, n: usize, condition: &[f32], acts: &mut Acts) {
        let (l, k) = (self.spec.latent_dim, self.spec.n_classes);
        let (lo, hi) = self.spec.decoder_conditions.first().copied().unwrap_or((0, 0));
        resize(&mut acts.eps, n * l);
        fill_standard_normal(rng, &mut acts.eps);
        resize(&mut acts.sd, n * l);
        let dw = l + hi - lo;
        resize(&mut acts.dec_in, n * dw);
        for r in 0..n {
            for j in 0..l {
                let i = r * l + j;
                let sd = (acts.log_var[i] * 0.5).exp();
                acts.sd[i] = sd;
                acts.dec_in[r * dw + j] = acts.mean[i] + sd * acts.eps[i];
            }
            acts.dec_in[r * dw + l..(r + 1) * dw].copy_from_slice(&condition[r * k + lo..r * k + hi]);
        }
        resize(&mut acts.cond, n * k);
        acts.cond.copy_from_slice(&condition[..n * k]);
    }

    /// Given latent codes `z` (`[n, latent]`) and the `condition` rows, the decoder's
    /// input into `acts.dec_in` (and the condition rows into `acts.cond`).
    pub fn set_latent(&self, z: &[f32], n: usize, condition: &[f32], acts: &mut Acts) {
        let (l, k) = (self.spec.latent_dim, self.spec.n_classes);
        let first = self.spec.decoder_conditions.first().copied().unwrap_or((0, 0));
        resize(&mut acts.cond, n * k);
        acts.cond.copy_from_slice(&condition[..n * k]);
        concat_rows(n, z, l, condition, k, first, &mut acts.dec_in);
    }

    /// Decoder of `n` cells from `acts.dec_in`: fills `acts.dec`, `acts.logits` and
    /// `acts.heads`.
    /// Training draws dropout masks from `rng`.
    pub fn decode(&self, team: &Team, n: usize, acts: &mut Acts, mut rng: Option<&mut Stream>) {
        let spec = &self.spec;
        let (g, m, p) = (spec.n_genes, spec.encoder.len(), spec.decoder.len());
        let k = spec.n_classes;
        acts.dec.resize_with(p - 1, Act::default);
        acts.dec_cat.resize_with(p - 1, Vec::new);
        for j in 0..p - 1 {
            let (blk, act) = (&self.layers[m + 2 + j], spec.decoder[j].1);
            let (before, rest) = acts.dec.split_at_mut(j);
            let (cat_before, cat_rest) = acts.dec_cat.split_at_mut(j);
            let x = decoder_input(spec, j, &acts.dec_in, before, cat_before);
            let cur = &mut rest[0];
            resize(&mut cur.a, n * blk.n_out);
            matmul_bias(team, n, blk.n_in, blk.n_out, x, false, &blk.kernel.value, false, 0.0, Some(&blk.bias.value), &mut cur.a);
            self.activate(act, spec.decoder_extras[j], self.dec_norm[j], n, blk.n_out, cur, rng.as_deref_mut());
            if spec.decoder_condition_width(j + 1) > 0 {
                // the next layer's input: this layer's output, then its condition columns
                concat_rows(n, &cur.h, blk.n_out, &acts.cond, k, spec.decoder_conditions[j + 1], &mut cat_rest[0]);
            }
        }
        let last = decoder_input(spec, p - 1, &acts.dec_in, &acts.dec, &acts.dec_cat);
        let out_i = self.output_index();
        let out = &self.layers[out_i];
        resize(&mut acts.logits, n * g);
        matmul_bias(team, n, out.n_in, g, last, false, &out.kernel.value, false, 0.0, Some(&out.bias.value), &mut acts.logits);
        let nh = spec.likelihood.info().heads.len();
        acts.heads.resize_with(nh, Vec::new);
        for (h, buf) in acts.heads.iter_mut().enumerate() {
            let head = &self.layers[out_i + 1 + h];
            resize(buf, n * g);
            matmul_bias(team, n, head.n_in, g, last, false, &head.kernel.value, false, 0.0, Some(&head.bias.value), buf);
        }
    }

    /// A hidden layer's activation and what follows it: `cur.a` → `cur.h` (through
    /// `cur.z` when a normalisation or dropout follows; dropout only with `rng`).
    #[allow(clippy::too_many_arguments)]
    fn activate(&self, act: Activation, ex: LayerExtras, norm: Option<usize>, n: usize, u: usize, cur: &mut Act, rng: Option<&mut Stream>) {
        resize(&mut cur.h, n * u);
        if ex.is_none() {
            act.forward(&cur.a, &mut cur.h);
            return;
        }
        resize(&mut cur.z, n * u);
        act.forward(&cur.a, &mut cur.z);
        let training = rng.is_some();
        match (norm, ex.norm) {
            (Some(i), Norm::Batch { epsilon, .. }) => {
                let p = &self.layers[i].bias.value;
                let (gamma, beta) = (&p[..u], &p[u..2 * u]);
                resize(&mut cur.xhat, n * u);
                resize(&mut cur.inv_std, u);
                if training {
                    // each unit's mean and (biased) variance over the batch's cells
                    resize(&mut cur.batch_mean, u);
                    resize(&mut cur.batch_var, u);
                    cur.batch_mean.fill(0.0);
                    cur.batch_var.fill(0.0);
                    for r in 0..n {
                        for (m, v) in cur.batch_mean.iter_mut().zip(&cur.z[r * u..(r + 1) * u]) {
                            *m += v;
                        }
                    }
                    let inv_n = 1.0 / n as f32;
                    cur.batch_mean.iter_mut().for_each(|m| *m *= inv_n);
                    for r in 0..n {
                        for j in 0..u {
                            let d = cur.z[r * u + j] - cur.batch_mean[j];
                            cur.batch_var[j] += d * d;
                        }
                    }
                    cur.batch_var.iter_mut().for_each(|v| *v *= inv_n);
                }
                let (mean, var) = if training { (&cur.batch_mean[..], &cur.batch_var[..]) } else { (&p[2 * u..3 * u], &p[3 * u..4 * u]) };
                for (inv, v) in cur.inv_std.iter_mut().zip(var) {
                    *inv = 1.0 / (v + epsilon).sqrt();
                }
                for r in 0..n {
                    for j in 0..u {
                        let i = r * u + j;
                        let xh = (cur.z[i] - mean[j]) * cur.inv_std[j];
                        cur.xhat[i] = xh;
                        cur.h[i] = gamma[j] * xh + beta[j];
                    }
                }
            }
            (Some(i), _) => {
                let (gamma, beta) = self.layers[i].bias.value.split_at(u);
                resize(&mut cur.xhat, n * u);
                resize(&mut cur.inv_std, n);
                for r in 0..n {
                    let row = &cur.z[r * u..(r + 1) * u];
                    let mean = row.iter().sum::<f32>() / u as f32;
                    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / u as f32;
                    let inv = 1.0 / (var + NORM_EPS).sqrt();
                    cur.inv_std[r] = inv;
                    for j in 0..u {
                        let xh = (row[j] - mean) * inv;
                        cur.xhat[r * u + j] = xh;
                        cur.h[r * u + j] = gamma[j] * xh + beta[j];
                    }
                }
            }
            (None, _) => cur.h.copy_from_slice(&cur.z),
        }
        if let Some(post) = ex.activation {
            resize(&mut cur.normed, n * u);
            resize(&mut cur.post, n * u);
            cur.normed.copy_from_slice(&cur.h);
            post.forward(&cur.normed, &mut cur.post);
            cur.h.copy_from_slice(&cur.post);
        }
        if let (Some(rng), true) = (rng, ex.dropout > 0.0) {
            resize(&mut cur.mask, n * u);
            dropout_mask(rng, ex.dropout, &mut cur.mask);
            for (h, m) in cur.h.iter_mut().zip(&cur.mask) {
                *h *= m;
            }
        }
    }

    /// After a training step: each batch normalisation's moving mean and variance move
    /// towards the batch's (`acts`, from the step's forward pass), `moving = momentum *
    /// moving + (1 - momentum) * batch`.
    pub fn update_moving_statistics(&mut self, acts: &Acts) {
        let Network { spec, layers, enc_norm, dec_norm } = self;
        let sides = [(&spec.encoder_extras, enc_norm, &acts.enc), (&spec.decoder_extras, dec_norm, &acts.dec)];
        for (extras, norms, acts) in sides {
            for ((ex, norm), act) in extras.iter().zip(norms.iter()).zip(acts.iter()) {
                if let (Norm::Batch { momentum, .. }, Some(i)) = (ex.norm, *norm) {
                    let u = act.batch_mean.len();
                    let p = &mut layers[i].bias.value;
                    let (mean, var) = p[2 * u..4 * u].split_at_mut(u);
                    for j in 0..u {
                        mean[j] = momentum * mean[j] + (1.0 - momentum) * act.batch_mean[j];
                        var[j] = momentum * var[j] + (1.0 - momentum) * act.batch_var[j];
                    }
                }
            }
        }
    }

    /// The decoder's outputs in `acts` for `n` cells.
    pub fn outputs<'a>(&self, acts: &'a Acts, n: usize) -> Outputs<'a> {
        let g = self.spec.n_genes;
        Outputs { n, n_genes: g, logits: &acts.logits[..n * g], heads: &acts.heads, activation: self.spec.output_activation() }
    }
}
