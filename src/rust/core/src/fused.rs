//! The fused training step: forward pass, loss, backward pass and optimizer update of
//! the dense VAE/CVAE written out by hand over plain `f32` buffers.
//!
//! burn's autodiff runs the same model op by op (an allocation, a graph node and a pass
//! over memory for each of dozens of element-wise operations per step, and an unfused
//! optimizer update), which made its epochs 2-4x the time of the step's matrix products
//! alone. Here every matrix product goes straight to `matrixmultiply`'s kernel (the one
//! burn's CPU backend calls too), element-wise work is done in one pass per layer, the
//! buffers are allocated once per trainer, and each optimizer update is one loop.
//! The arithmetic is the model's and the optimizers' as burn defines them: the tests
//! compare this step with burn's autodiff and burn's optimizers on every likelihood,
//! activation and optimizer.
//!
//! Threads: a product is split into blocks of rows or columns of its result and
//! element-wise loops into blocks of cells; every output value is computed by one thread
//! in the same order whatever the thread count, and reductions run in a fixed order, so
//! results do not depend on the number of threads.

use rand::rngs::StdRng;
use rayon::prelude::*;

use crate::counts;
use crate::data::Batch;
use crate::error::{Error, Result};
use crate::spec::{Activation, Likelihood, ModelSpec, OptimizerKind, TrainSpec};
use crate::train::standard_normal;
use crate::weights::DenseWeights;

/// Products with fewer multiply-adds than this run on one thread: below it, handing work
/// to a second thread costs more than it saves.
const SPLIT_MIN_MADDS: usize = 1 << 19;
/// Element-wise loops over fewer values than this run on one thread.
const SPLIT_MIN_VALUES: usize = 1 << 14;

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only to hand disjoint blocks of one output matrix to threads that all
// finish before the matrix is read again (inside one `for_each`).
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `C[m x n] = beta * C + A[m x k] * B[k x n]`, `C` row-major. `A` is stored row-major
/// as `m x k`, or as `k x m` when `a_t`; `B` as `k x n`, or as `n x k` when `b_t`.
#[allow(clippy::too_many_arguments)]
fn matmul(threads: usize, m: usize, k: usize, n: usize, a: &[f32], a_t: bool, b: &[f32], b_t: bool, beta: f32, c: &mut [f32]) {
    assert!(a.len() >= m * k && b.len() >= k * n && c.len() >= m * n, "matmul: buffer too small");
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = if a_t { (1isize, m as isize) } else { (k as isize, 1isize) };
    let (rsb, csb) = if b_t { (1isize, k as isize) } else { (n as isize, 1isize) };
    let (ap, bp, cp) = (a.as_ptr() as usize, b.as_ptr() as usize, SendPtr(c.as_mut_ptr()));
    // SAFETY: the strides describe matrices inside the slices checked above; each call
    // writes its own block of C.
    let run = move |r0: usize, r1: usize, c0: usize, c1: usize| unsafe {
        let cp = cp;
        matrixmultiply::sgemm(
            r1 - r0,
            k,
            c1 - c0,
            1.0,
            (ap as *const f32).offset(r0 as isize * rsa),
            rsa,
            csa,
            (bp as *const f32).offset(c0 as isize * csb),
            rsb,
            csb,
            beta,
            cp.0.add(r0 * n + c0),
            n as isize,
            1,
        )
    };
    if threads <= 1 || m * n * k < SPLIT_MIN_MADDS {
        run(0, m, 0, n);
        return;
    }
    // split the larger side into one block per thread (multiples of 16: whole kernel tiles)
    let split_cols = n >= m;
    let len = if split_cols { n } else { m };
    let step = len.div_ceil(threads).div_ceil(16) * 16;
    let parts = len.div_ceil(step);
    (0..parts).into_par_iter().for_each(|p| {
        let (s, e) = (p * step, ((p + 1) * step).min(len));
        if split_cols {
            run(0, m, s, e)
        } else {
            run(s, e, 0, n)
        }
    });
}

/// Calls `f(first_row, rows_a, rows_b)` on blocks of whole rows of two row-major buffers
/// (`wa`, `wb` values per row), in parallel when the work is large enough.
fn for_rows<F>(threads: usize, n: usize, a: &mut [f32], wa: usize, b: &mut [f64], wb: usize, f: F)
where
    F: Fn(usize, &mut [f32], &mut [f64]) + Sync + Send,
{
    if threads <= 1 || n * wa.max(1) < SPLIT_MIN_VALUES || n < 2 {
        f(0, &mut a[..n * wa], &mut b[..n * wb]);
        return;
    }
    let rows = n.div_ceil(threads);
    a[..n * wa]
        .par_chunks_mut((rows * wa).max(1))
        .zip(b[..n * wb].par_chunks_mut((rows * wb).max(1)))
        .enumerate()
        .for_each(|(i, (ca, cb))| f(i * rows, ca, cb));
}

/// `e^x` for `x <= 0` in f32, branch-free so that loops over it vectorise: range
/// reduction by `ln 2` and a degree-7 Taylor polynomial (relative error below 3e-7,
/// tested against the standard library); inputs below -87 give about 1.6e-38.
#[inline(always)]
fn exp_nonpos(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = x.max(-87.0);
    let k = (x * LOG2E + ROUND) - ROUND;
    let r = (x - k * LN2_HI) - k * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    p * f32::from_bits(((k as i32 + 127) << 23) as u32)
}

/// `ln(1 + e)` for `e` in [0, 1] in f32, branch-free: `2 atanh(e / (2 + e))` as a
/// series in `s = e / (2 + e) <= 1/3` (relative error below 3e-7, no cancellation for
/// small `e`).
#[inline(always)]
fn log1p_unit(e: f32) -> f32 {
    let s = e / (2.0 + e);
    let s2 = s * s;
    let q = 1.0
        + s2 * (1.0 / 3.0
            + s2 * (1.0 / 5.0 + s2 * (1.0 / 7.0 + s2 * (1.0 / 9.0 + s2 * (1.0 / 11.0 + s2 * (1.0 / 13.0))))));
    2.0 * s * q
}

/// Binary cross-entropy from logits `l` against targets `t` for one cell: returns the
/// sum over genes and writes `(sigmoid(l) - t) * scale` (the gradient) into `d`.
fn bce_sigmoid_row(l: &[f32], t: &[f32], d: &mut [f32], scale: f32) -> f64 {
    const LANES: usize = 64;
    let mut total = 0.0f64;
    let mut v = [0.0f32; LANES];
    for ((lc, tc), dc) in l.chunks(LANES).zip(t.chunks(LANES)).zip(d.chunks_mut(LANES)) {
        let len = lc.len();
        for i in 0..len {
            let (a, y) = (lc[i], tc[i]);
            let e = exp_nonpos(-a.abs());
            let inv = 1.0 / (1.0 + e);
            let sig = if a >= 0.0 { inv } else { e * inv };
            v[i] = a.max(0.0) - y * a + log1p_unit(e);
            dc[i] = (sig - y) * scale;
        }
        total += v[..len].iter().map(|&x| x as f64).sum::<f64>();
    }
    total
}

/// One parameter tensor with its gradient and optimizer state.
#[derive(Clone, Debug, Default)]
struct Slot {
    value: Vec<f32>,
    grad: Vec<f32>,
    /// Adam's first moment.
    m1: Vec<f32>,
    /// Adam's second moment, RMSprop's square average, AdaGrad's sum of squares.
    m2: Vec<f32>,
    /// Number of updates applied.
    time: i32,
}

impl Slot {
    fn new(value: Vec<f32>) -> Self {
        let n = value.len();
        Slot { value, grad: vec![0.0; n], m1: Vec::new(), m2: Vec::new(), time: 0 }
    }
}

/// A dense layer `y = x W + b` (`W` row-major `[n_in, n_out]`), or a bias-only block.
#[derive(Clone, Debug)]
struct Block {
    name: String,
    n_in: usize,
    n_out: usize,
    kernel: Slot,
    bias: Slot,
}

/// Activations of one layer for the batch: before (`a`) and after (`h`) the activation.
#[derive(Clone, Debug, Default)]
struct Act {
    a: Vec<f32>,
    h: Vec<f32>,
}

#[derive(Clone, Debug, Default)]
struct Work {
    enc: Vec<Act>,
    mean: Vec<f32>,
    log_var: Vec<f32>,
    eps: Vec<f32>,
    sd: Vec<f32>,
    /// `[z | condition]`, the decoder's input.
    dec_in: Vec<f32>,
    /// hidden decoder layers (all but the output layer)
    dec: Vec<Act>,
    logits: Vec<f32>,
    pi: Vec<f32>,
    d_logits: Vec<f32>,
    d_pi: Vec<f32>,
    /// per cell and gene: d NLL / d log theta (summed over cells in a fixed order)
    d_theta: Vec<f32>,
    row_loss: Vec<f64>,
    d_mean: Vec<f32>,
    d_log_var: Vec<f32>,
    /// ping-pong buffers for gradients flowing back through hidden layers
    g1: Vec<f32>,
    g2: Vec<f32>,
}

fn resize(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

/// `act(a)` into `h`.
fn activate_into(act: Activation, a: &[f32], h: &mut [f32]) {
    match act {
        Activation::Relu => h.iter_mut().zip(a).for_each(|(h, &a)| *h = if a > 0.0 { a } else { 0.0 }),
        Activation::Sigmoid => h.iter_mut().zip(a).for_each(|(h, &a)| *h = sigmoid(a)),
        Activation::Tanh => h.iter_mut().zip(a).for_each(|(h, &a)| *h = a.tanh()),
        Activation::Elu => h.iter_mut().zip(a).for_each(|(h, &a)| *h = if a > 0.0 { a } else { a.exp() - 1.0 }),
        Activation::Softplus => h.iter_mut().zip(a).for_each(|(h, &a)| *h = a.max(0.0) + (-a.abs()).exp().ln_1p()),
        Activation::Linear => h.copy_from_slice(a),
    }
}

/// `dy ⊙ act'(a)` in place (`h = act(a)`).
fn activate_backward(act: Activation, a: &[f32], h: &[f32], dy: &mut [f32]) {
    match act {
        Activation::Relu => dy.iter_mut().zip(a).for_each(|(d, &a)| {
            if a <= 0.0 {
                *d = 0.0
            }
        }),
        Activation::Sigmoid => dy.iter_mut().zip(h).for_each(|(d, &y)| *d *= y * (1.0 - y)),
        Activation::Tanh => dy.iter_mut().zip(h).for_each(|(d, &y)| *d *= 1.0 - y * y),
        Activation::Elu => dy.iter_mut().zip(a.iter().zip(h)).for_each(|(d, (&a, &y))| {
            if a <= 0.0 {
                *d *= y + 1.0
            }
        }),
        Activation::Softplus => dy.iter_mut().zip(a).for_each(|(d, &a)| *d *= sigmoid(a)),
        Activation::Linear => {}
    }
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Derivative of an activation at `a` (`y = act(a)`), for the output layer.
#[inline]
fn act_grad(act: Activation, a: f32, y: f32) -> f32 {
    match act {
        Activation::Relu => {
            if a > 0.0 {
                1.0
            } else {
                0.0
            }
        }
        Activation::Sigmoid => y * (1.0 - y),
        Activation::Tanh => 1.0 - y * y,
        Activation::Elu => {
            if a > 0.0 {
                1.0
            } else {
                y + 1.0
            }
        }
        Activation::Softplus => sigmoid(a),
        Activation::Linear => 1.0,
    }
}

#[inline]
fn act_one(act: Activation, a: f32) -> f32 {
    let mut h = [0.0f32];
    activate_into(act, &[a], &mut h);
    h[0]
}

/// Column sums of a row-major `[n, w]` matrix, rows added in order.
fn col_sums(x: &[f32], n: usize, w: usize, out: &mut [f32]) {
    out.iter_mut().for_each(|v| *v = 0.0);
    for r in 0..n {
        out.iter_mut().zip(&x[r * w..(r + 1) * w]).for_each(|(o, &v)| *o += v);
    }
}

/// Each row of `out` (`[n, w]`) set to `bias`.
fn fill_rows(out: &mut [f32], bias: &[f32]) {
    if bias.is_empty() {
        return;
    }
    out.chunks_mut(bias.len()).for_each(|row| row.copy_from_slice(bias));
}

/// The dense VAE/CVAE with its optimizer state, trained by the fused step.
#[derive(Clone, Debug)]
pub struct FusedVae {
    spec: ModelSpec,
    blocks: Vec<Block>,
    work: Work,
}

impl FusedVae {
    /// A model from plain weights (in `ModelSpec::dense_shapes` order), shapes checked.
    pub fn new(spec: &ModelSpec, weights: &[DenseWeights]) -> Result<Self> {
        let shapes = spec.dense_shapes();
        if weights.len() != shapes.len() {
            return Err(Error::Weights(format!("{} layers given, the architecture has {}", weights.len(), shapes.len())));
        }
        let mut blocks = Vec::with_capacity(shapes.len());
        for ((name, n_in, n_out), w) in shapes.into_iter().zip(weights) {
            if w.kernel.len() != n_in * n_out || w.bias.len() != n_out {
                return Err(Error::Weights(format!(
                    "layer '{name}' needs a {n_in} x {n_out} kernel and {n_out} biases, got {} and {} values",
                    w.kernel.len(),
                    w.bias.len()
                )));
            }
            if w.kernel.iter().chain(&w.bias).any(|v| !v.is_finite()) {
                return Err(Error::Weights(format!("layer '{name}' has non-finite values")));
            }
            blocks.push(Block { name, n_in, n_out, kernel: Slot::new(w.kernel.clone()), bias: Slot::new(w.bias.clone()) });
        }
        Ok(FusedVae { spec: spec.clone(), blocks, work: Work::default() })
    }

    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The current weights.
    pub fn weights(&self) -> Vec<DenseWeights> {
        self.blocks
            .iter()
            .map(|b| DenseWeights {
                name: b.name.clone(),
                n_in: b.n_in,
                n_out: b.n_out,
                kernel: b.kernel.value.clone(),
                bias: b.bias.value.clone(),
            })
            .collect()
    }

    /// Forward pass of one batch; fills the work buffers up to the output heads.
    fn forward(&mut self, batch: &Batch, rng: &mut StdRng, threads: usize) {
        let spec = &self.spec;
        let (n, g, k, l) = (batch.n, spec.n_genes, spec.n_classes, spec.latent_dim);
        let d = spec.input_dim();
        let m = spec.encoder.len();
        let p = spec.decoder.len();
        let w = &mut self.work;
        w.enc.resize_with(m, Act::default);
        w.dec.resize_with(p - 1, Act::default);
        // encoder
        for i in 0..m {
            let (blk, act) = (&self.blocks[i], spec.encoder[i].1);
            let (before, rest) = w.enc.split_at_mut(i);
            let (x, x_w): (&[f32], usize) = if i == 0 { (&batch.input, d) } else { (&before[i - 1].h, blk.n_in) };
            let cur = &mut rest[0];
            resize(&mut cur.a, n * blk.n_out);
            fill_rows(&mut cur.a, &blk.bias.value);
            matmul(threads, n, x_w, blk.n_out, x, false, &blk.kernel.value, false, 1.0, &mut cur.a);
            resize(&mut cur.h, n * blk.n_out);
            activate_into(act, &cur.a, &mut cur.h);
        }
        let (hm, hm_w): (&[f32], usize) = if m == 0 { (&batch.input, d) } else { (&w.enc[m - 1].h, spec.encoder[m - 1].0) };
        for (buf, blk) in [(&mut w.mean, &self.blocks[m]), (&mut w.log_var, &self.blocks[m + 1])] {
            resize(buf, n * l);
            fill_rows(buf, &blk.bias.value);
            matmul(threads, n, hm_w, l, hm, false, &blk.kernel.value, false, 1.0, buf);
        }
        // reparameterisation: z = mean + exp(log_var / 2) * eps, written into [z | c]
        w.eps = standard_normal(rng, n * l);
        resize(&mut w.sd, n * l);
        let dw = l + k;
        resize(&mut w.dec_in, n * dw);
        for r in 0..n {
            for j in 0..l {
                let i = r * l + j;
                let sd = (w.log_var[i] * 0.5).exp();
                w.sd[i] = sd;
                w.dec_in[r * dw + j] = w.mean[i] + sd * w.eps[i];
            }
            if k > 0 {
                w.dec_in[r * dw + l..(r + 1) * dw].copy_from_slice(&batch.condition[r * k..(r + 1) * k]);
            }
        }
        // decoder hidden layers
        for j in 0..p - 1 {
            let (blk, act) = (&self.blocks[m + 2 + j], spec.decoder[j].1);
            let (before, rest) = w.dec.split_at_mut(j);
            let x: &[f32] = if j == 0 { &w.dec_in } else { &before[j - 1].h };
            let cur = &mut rest[0];
            resize(&mut cur.a, n * blk.n_out);
            fill_rows(&mut cur.a, &blk.bias.value);
            matmul(threads, n, blk.n_in, blk.n_out, x, false, &blk.kernel.value, false, 1.0, &mut cur.a);
            resize(&mut cur.h, n * blk.n_out);
            activate_into(act, &cur.a, &mut cur.h);
        }
        let last: &[f32] = if p == 1 { &w.dec_in } else { &w.dec[p - 2].h };
        let out = &self.blocks[m + 1 + p];
        resize(&mut w.logits, n * g);
        fill_rows(&mut w.logits, &out.bias.value);
        matmul(threads, n, out.n_in, g, last, false, &out.kernel.value, false, 1.0, &mut w.logits);
        if spec.likelihood == Likelihood::Zinb {
            let drop = &self.blocks[m + 2 + p];
            resize(&mut w.pi, n * g);
            fill_rows(&mut w.pi, &drop.bias.value);
            matmul(threads, n, drop.n_in, g, last, false, &drop.kernel.value, false, 1.0, &mut w.pi);
        }
    }

    /// Reconstruction loss (mean over cells) and, into `d_logits`/`d_pi`/`d_theta`, its
    /// gradient with respect to the output heads.
    fn reconstruction(&mut self, batch: &Batch, threads: usize) -> f64 {
        let spec = &self.spec;
        let (n, g) = (batch.n, spec.n_genes);
        let w = &mut self.work;
        let inv_n = 1.0 / n as f32;
        w.row_loss.clear();
        w.row_loss.resize(n, 0.0);
        resize(&mut w.d_logits, n * g);
        let out_act = spec.output_activation();
        let width = spec.input_dim();
        let logits = &w.logits;
        match spec.likelihood {
            Likelihood::Bce | Likelihood::Mse => {
                let input = &batch.input;
                let lik = spec.likelihood;
                for_rows(threads, n, &mut w.d_logits, g, &mut w.row_loss, 1, |r0, dl, loss| {
                    for (i, (drow, lrow)) in dl.chunks_mut(g).zip(loss.iter_mut()).enumerate() {
                        let r = r0 + i;
                        let (lg, t) = (&logits[r * g..(r + 1) * g], &input[r * width..r * width + g]);
                        if lik == Likelihood::Bce && out_act == Activation::Sigmoid {
                            *lrow = bce_sigmoid_row(lg, t, drow, inv_n);
                            continue;
                        }
                        let mut s = 0.0f64;
                        for j in 0..g {
                            let (a, t) = (lg[j], t[j]);
                            let (v, d) = match (lik, out_act) {
                                (Likelihood::Bce, Activation::Sigmoid) => {
                                    let v = a.max(0.0) - t * a + (-a.abs()).exp().ln_1p();
                                    (v, sigmoid(a) - t)
                                }
                                (Likelihood::Bce, act) => {
                                    let y = act_one(act, a);
                                    let (lo, hi) = (1e-7f32, 1.0 - 1e-7f32);
                                    let pc = y.clamp(lo, hi);
                                    let v = -(t * pc.ln() + (1.0 - t) * (1.0 - pc).ln());
                                    let inside = y >= lo && y <= hi;
                                    let dp = if inside { -t / pc + (1.0 - t) / (1.0 - pc) } else { 0.0 };
                                    (v, dp * act_grad(act, a, y))
                                }
                                (_, act) => {
                                    let y = act_one(act, a);
                                    let e = y - t;
                                    (e * e, 2.0 * e * act_grad(act, a, y))
                                }
                            };
                            s += v as f64;
                            drow[j] = d * inv_n;
                        }
                        *lrow = s;
                    }
                });
            }
            lik => {
                let zinb = lik == Likelihood::Zinb;
                let log_theta: &[f32] = if lik.has_dispersion() { &self.blocks[self.blocks.len() - 1].bias.value } else { &[] };
                if zinb {
                    resize(&mut w.d_pi, n * g);
                }
                if lik.has_dispersion() {
                    resize(&mut w.d_theta, n * g);
                }
                let (counts, log_lib, pi) = (&batch.counts, &batch.log_library, &w.pi);
                let genes: Vec<counts::GeneTerms> = log_theta.iter().map(|&v| counts::GeneTerms::new(v as f64)).collect();
                let fast = counts::FastCounts::default();
                // d_pi and d_theta ride along in one buffer per row: [d_logit | d_pi | d_theta]
                let extra = usize::from(zinb) + usize::from(lik.has_dispersion());
                let mut rows = std::mem::take(&mut w.g1);
                resize(&mut rows, n * g * (1 + extra));
                for_rows(threads, n, &mut rows, g * (1 + extra), &mut w.row_loss, 1, |r0, buf, loss| {
                    let mut e = vec![0.0f64; g];
                    for (i, (row, lrow)) in buf.chunks_mut(g * (1 + extra)).zip(loss.iter_mut()).enumerate() {
                        let r = r0 + i;
                        let lg = &logits[r * g..(r + 1) * g];
                        // softmax and log-softmax in f64 over the row
                        let mx = lg.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
                        let mut sum_e = 0.0f64;
                        for (e, &v) in e.iter_mut().zip(lg) {
                            *e = (v as f64 - mx).exp();
                            sum_e += *e;
                        }
                        let lse = mx + sum_e.ln();
                        let shift = log_lib[r] as f64 - lse;
                        let scale = (log_lib[r] as f64).exp() / sum_e;
                        let (dl, rest) = row.split_at_mut(g);
                        let (dp, dt) = rest.split_at_mut(if zinb { g } else { 0 });
                        let mut s = 0.0f64;
                        let mut sum_g = 0.0f64;
                        for j in 0..g {
                            let x = counts[r * g + j] as f64;
                            let log_mu = lg[j] as f64 + shift;
                            let mu = e[j] * scale;
                            let t = match lik {
                                Likelihood::Poisson => fast.poisson(x, mu, log_mu),
                                Likelihood::Nb => fast.nb(x, mu, log_mu, &genes[j]),
                                _ => fast.zinb(x, mu, log_mu, &genes[j], pi[r * g + j] as f64),
                            };
                            s += t.nll;
                            // float the per-element derivatives as burn's f32 surrogate does
                            let gm = (t.d_log_mu * inv_n as f64) as f32;
                            dl[j] = gm;
                            sum_g += gm as f64;
                            if zinb {
                                dp[j] = (t.d_pi_logit * inv_n as f64) as f32;
                            }
                            if !dt.is_empty() {
                                dt[j] = (t.d_log_theta * inv_n as f64) as f32;
                            }
                        }
                        // through log-softmax: d/dl_j = g_j - softmax_j * sum(g)
                        let inv_sum = 1.0 / sum_e;
                        for j in 0..g {
                            dl[j] = (dl[j] as f64 - e[j] * inv_sum * sum_g) as f32;
                        }
                        *lrow = s;
                    }
                });
                let stride = g * (1 + extra);
                for r in 0..n {
                    let row = &rows[r * stride..(r + 1) * stride];
                    w.d_logits[r * g..(r + 1) * g].copy_from_slice(&row[..g]);
                    if zinb {
                        w.d_pi[r * g..(r + 1) * g].copy_from_slice(&row[g..2 * g]);
                    }
                    if lik.has_dispersion() {
                        let o = if zinb { 2 * g } else { g };
                        w.d_theta[r * g..(r + 1) * g].copy_from_slice(&row[o..o + g]);
                    }
                }
                w.g1 = rows;
            }
        }
        w.row_loss.iter().sum::<f64>() / n as f64
    }

    /// Mean KL over the cells and, into `d_mean`/`d_log_var`, `regularization` times its
    /// gradient.
    fn kl(&mut self, n: usize, regularization: f64) -> f64 {
        let l = self.spec.latent_dim;
        let w = &mut self.work;
        resize(&mut w.d_mean, n * l);
        resize(&mut w.d_log_var, n * l);
        let c = (regularization / n as f64) as f32;
        let mut total = 0.0f64;
        for r in 0..n {
            let mut s = 0.0f32;
            for j in 0..l {
                let i = r * l + j;
                let (m, lv) = (w.mean[i], w.log_var[i]);
                let e = lv.exp();
                s += 1.0 + lv - m * m - e;
                w.d_mean[i] = c * m;
                w.d_log_var[i] = c * 0.5 * (e - 1.0);
            }
            total += (-0.5 * s) as f64;
        }
        total / n as f64
    }

    /// Backward pass from the heads' gradients to every parameter's gradient.
    fn backward(&mut self, batch: &Batch, threads: usize) {
        let spec = &self.spec;
        let (n, g, l) = (batch.n, spec.n_genes, spec.latent_dim);
        let k = spec.n_classes;
        let m = spec.encoder.len();
        let p = spec.decoder.len();
        let zinb = spec.likelihood == Likelihood::Zinb;
        let nb = self.blocks.len();
        let (blocks, w) = (&mut self.blocks, &mut self.work);
        if spec.likelihood.has_dispersion() {
            let disp = &mut blocks[nb - 1].bias;
            disp.grad.iter_mut().for_each(|v| *v = 0.0);
            for r in 0..n {
                disp.grad.iter_mut().zip(&w.d_theta[r * g..(r + 1) * g]).for_each(|(a, &b)| *a += b);
            }
        }
        // output layer (and ZINB dropout head)
        let out_i = m + 1 + p;
        let out_in = blocks[out_i].n_in;
        {
            let last: &[f32] = if p == 1 { &w.dec_in } else { &w.dec[p - 2].h };
            let out = &mut blocks[out_i];
            matmul(threads, out_in, n, g, last, true, &w.d_logits, false, 0.0, &mut out.kernel.grad);
            col_sums(&w.d_logits, n, g, &mut out.bias.grad);
            if zinb {
                let drop = &mut blocks[m + 2 + p];
                matmul(threads, out_in, n, g, last, true, &w.d_pi, false, 0.0, &mut drop.kernel.grad);
                col_sums(&w.d_pi, n, g, &mut drop.bias.grad);
            }
        }
        // gradient with respect to the output layer's input
        let mut gy = std::mem::take(&mut w.g1);
        let mut gx = std::mem::take(&mut w.g2);
        resize(&mut gy, n * out_in);
        matmul(threads, n, g, out_in, &w.d_logits, false, &blocks[out_i].kernel.value, true, 0.0, &mut gy);
        if zinb {
            matmul(threads, n, g, out_in, &w.d_pi, false, &blocks[m + 2 + p].kernel.value, true, 1.0, &mut gy);
        }
        // hidden decoder layers, last to first; gy holds d(output of layer j)
        for j in (0..p - 1).rev() {
            let blk = &mut blocks[m + 2 + j];
            let act = &w.dec[j];
            activate_backward(spec.decoder[j].1, &act.a, &act.h, &mut gy);
            let x: &[f32] = if j == 0 { &w.dec_in } else { &w.dec[j - 1].h };
            matmul(threads, blk.n_in, n, blk.n_out, x, true, &gy, false, 0.0, &mut blk.kernel.grad);
            col_sums(&gy, n, blk.n_out, &mut blk.bias.grad);
            resize(&mut gx, n * blk.n_in);
            matmul(threads, n, blk.n_out, blk.n_in, &gy, false, &blk.kernel.value, true, 0.0, &mut gx);
            std::mem::swap(&mut gx, &mut gy);
        }
        // gy: d[z | c]; through the reparameterisation into d_mean / d_log_var (which
        // already hold the KL part)
        let dw = l + k;
        for r in 0..n {
            for j in 0..l {
                let i = r * l + j;
                let dz = gy[r * dw + j];
                w.d_mean[i] += dz;
                w.d_log_var[i] += dz * w.eps[i] * 0.5 * w.sd[i];
            }
        }
        // latent heads
        let d = spec.input_dim();
        let (hm, hm_w): (&[f32], usize) = if m == 0 { (&batch.input, d) } else { (&w.enc[m - 1].h, spec.encoder[m - 1].0) };
        for (bi, dv) in [(m, &w.d_mean), (m + 1, &w.d_log_var)] {
            let blk = &mut blocks[bi];
            matmul(threads, hm_w, n, l, hm, true, dv, false, 0.0, &mut blk.kernel.grad);
            col_sums(dv, n, l, &mut blk.bias.grad);
        }
        if m > 0 {
            resize(&mut gy, n * hm_w);
            matmul(threads, n, l, hm_w, &w.d_mean, false, &blocks[m].kernel.value, true, 0.0, &mut gy);
            matmul(threads, n, l, hm_w, &w.d_log_var, false, &blocks[m + 1].kernel.value, true, 1.0, &mut gy);
        }
        // encoder layers, last to first
        for i in (0..m).rev() {
            let blk = &mut blocks[i];
            let act = &w.enc[i];
            activate_backward(spec.encoder[i].1, &act.a, &act.h, &mut gy);
            let (x, x_w): (&[f32], usize) = if i == 0 { (&batch.input, d) } else { (&w.enc[i - 1].h, blk.n_in) };
            matmul(threads, x_w, n, blk.n_out, x, true, &gy, false, 0.0, &mut blk.kernel.grad);
            col_sums(&gy, n, blk.n_out, &mut blk.bias.grad);
            if i > 0 {
                resize(&mut gx, n * blk.n_in);
                matmul(threads, n, blk.n_out, blk.n_in, &gy, false, &blk.kernel.value, true, 0.0, &mut gx);
                std::mem::swap(&mut gx, &mut gy);
            }
        }
        w.g1 = gy;
        w.g2 = gx;
    }

    /// One optimizer update of every parameter from its gradient (burn's formulas).
    fn update(&mut self, train: &TrainSpec, threads: usize) {
        let lr = train.learning_rate as f32;
        let kind = train.optimizer;
        for blk in &mut self.blocks {
            for slot in [&mut blk.kernel, &mut blk.bias] {
                if slot.value.is_empty() {
                    continue;
                }
                update_slot(slot, kind, lr, threads);
            }
        }
    }

    /// One minibatch: forward, loss, and (when `learn`) backward and an optimizer update.
    /// Returns (loss, reconstruction, KL), each averaged over the batch's cells.
    pub fn step(&mut self, batch: &Batch, train: &TrainSpec, rng: &mut StdRng, learn: bool) -> (f64, f64, f64) {
        let threads = train.threads;
        self.forward(batch, rng, threads);
        let recon = self.reconstruction(batch, threads);
        let kl = self.kl(batch.n, train.regularization);
        let value = recon + train.regularization * kl;
        if learn && value.is_finite() {
            self.backward(batch, threads);
            self.update(train, threads);
        }
        (value, recon, kl)
    }
}

/// Adam (epsilon inside the bias correction as burn writes it), SGD, RMSprop (alpha
/// 0.9, no momentum) and AdaGrad, each as one pass over the parameter.
fn update_slot(slot: &mut Slot, kind: OptimizerKind, lr: f32, threads: usize) {
    const B1: f32 = 0.9;
    const B2: f32 = 0.999;
    const EPS: f32 = 1e-7;
    const ALPHA: f32 = 0.9;
    let n = slot.value.len();
    if kind != OptimizerKind::Sgd && slot.m2.len() != n {
        slot.m2 = vec![0.0; n];
    }
    if kind == OptimizerKind::Adam && slot.m1.len() != n {
        slot.m1 = vec![0.0; n];
    }
    slot.time += 1;
    let t = slot.time;
    let chunk = if threads > 1 && n >= SPLIT_MIN_VALUES { n.div_ceil(threads) } else { n.max(1) };
    // The moments start at zero, so the first update needs no case of its own
    // (0 * beta + x == x exactly, as burn's first step computes it).
    match kind {
        OptimizerKind::Adam => {
            let bc2 = (1.0 - B2.powi(t)).sqrt();
            let factor = bc2 / (1.0 - B1.powi(t));
            let eps = EPS * bc2;
            slot.value
                .par_chunks_mut(chunk)
                .zip(slot.grad.par_chunks(chunk))
                .zip(slot.m1.par_chunks_mut(chunk))
                .zip(slot.m2.par_chunks_mut(chunk))
                .for_each(|(((p, g), m1), m2)| {
                    for (((p, &g), m1), m2) in p.iter_mut().zip(g).zip(m1.iter_mut()).zip(m2.iter_mut()) {
                        let a = *m1 * B1 + g * (1.0 - B1);
                        let b = *m2 * B2 + g * g * (1.0 - B2);
                        *m1 = a;
                        *m2 = b;
                        *p -= (a * factor / (b.sqrt() + eps)) * lr;
                    }
                });
        }
        OptimizerKind::Sgd => {
            slot.value.par_chunks_mut(chunk).zip(slot.grad.par_chunks(chunk)).for_each(|(p, g)| {
                p.iter_mut().zip(g).for_each(|(p, &g)| *p -= g * lr);
            });
        }
        OptimizerKind::RmsProp => {
            slot.value
                .par_chunks_mut(chunk)
                .zip(slot.grad.par_chunks(chunk))
                .zip(slot.m2.par_chunks_mut(chunk))
                .for_each(|((p, g), s)| {
                    for ((p, &g), s) in p.iter_mut().zip(g).zip(s.iter_mut()) {
                        let v = *s * ALPHA + g * g * (1.0 - ALPHA);
                        *s = v;
                        *p -= (g / (v.sqrt() + EPS)) * lr;
                    }
                });
        }
        OptimizerKind::AdaGrad => {
            slot.value
                .par_chunks_mut(chunk)
                .zip(slot.grad.par_chunks(chunk))
                .zip(slot.m2.par_chunks_mut(chunk))
                .for_each(|((p, g), s)| {
                    for ((p, &g), s) in p.iter_mut().zip(g).zip(s.iter_mut()) {
                        let v = *s + g * g;
                        *s = v;
                        *p -= (g / (v.sqrt() + EPS)) * lr;
                    }
                });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fast_exp_and_log1p_are_accurate() {
        let mut x = -90.0f32;
        while x <= 0.0 {
            let (got, want) = (exp_nonpos(x) as f64, (x as f64).exp());
            if x >= -87.0 {
                assert!((got - want).abs() <= 3e-7 * want, "exp({x}): {got} vs {want}");
            } else {
                assert!(got < 2e-38);
            }
            x += 0.001;
        }
        let mut e = 0.0f32;
        while e <= 1.0 {
            let (got, want) = (log1p_unit(e) as f64, (e as f64).ln_1p());
            assert!((got - want).abs() <= 3e-7 * want + 1e-30, "log1p({e}): {got} vs {want}");
            e += 1e-5;
        }
        assert_eq!(log1p_unit(1e-30), 1e-30);
    }

    #[test]
    fn bce_row_matches_the_definition() {
        let l: Vec<f32> = (0..150).map(|i| (i as f32 - 75.0) * 0.37).collect();
        let t: Vec<f32> = (0..150).map(|i| (i % 7) as f32 / 6.0).collect();
        let mut d = vec![0.0; 150];
        let got = bce_sigmoid_row(&l, &t, &mut d, 0.5);
        let mut want = 0.0f64;
        for i in 0..150 {
            let (a, y) = (l[i] as f64, t[i] as f64);
            want += a.max(0.0) - y * a + (-a.abs()).exp().ln_1p();
            let sig = 1.0 / (1.0 + (-a).exp());
            assert!((d[i] as f64 - (sig - y) * 0.5).abs() < 1e-6, "gradient {i}");
        }
        assert!((got - want).abs() < 1e-5 * want, "{got} vs {want}");
    }
}
