//! The fused training step: forward pass (`network.rs`), loss (the likelihood's, plus
//! the KL term), backward pass and optimizer update of every parameter, written out by
//! hand over buffers kept between steps.
//!
//! burn's autodiff runs the same model op by op (an allocation, a graph node and a pass
//! over memory for each of dozens of element-wise operations per step, and an unfused
//! optimizer update), which made its epochs 2-4x the time of the step's matrix products
//! alone. Here every product goes straight to a kernel (`products.rs`), element-wise
//! work is one pass per layer, and each kernel's optimizer update follows its gradient
//! tile by tile (`gradient.rs`). The arithmetic is the model's and the optimizers' as
//! burn defines them: the tests compare this step with burn's autodiff and optimizers
//! (the reference engine) on every likelihood, activation and optimizer. Results do not
//! depend on the number of threads.

use crate::Stream;

use crate::buffers::{elements, reserve, resize};
use crate::data::Batch;
use crate::error::Result;
use crate::gradient::{self, kernel_step};
use crate::likelihood::LossWork;
use crate::network::{hidden_backward, Acts, Network};
use crate::optim::{update_slot, Opt, OptimizerKind};
use crate::products::{self, col_sums, matmul};
use crate::spec::{ModelSpec, TrainSpec};
use crate::team::Team;
use crate::weights::DenseWeights;

/// A model in training with the fused step: its parameters (with optimizer state) and
/// the step's buffers.
pub(crate) struct Fused {
    pub net: Network,
    acts: Acts,
    loss: LossWork,
    d_mean: Vec<f32>,
    d_log_var: Vec<f32>,
    /// Ping-pong buffers for gradients flowing back through hidden layers.
    g1: Vec<f32>,
    g2: Vec<f32>,
}

impl Fused {
    /// A model in training from `weights` (taken over), with the state of `optimizer`
    /// allocated.
    pub fn new(spec: &ModelSpec, weights: Vec<DenseWeights>, optimizer: OptimizerKind) -> Result<Self> {
        let mut net = Network::from_weights(spec, weights)?;
        for blk in &mut net.layers {
            blk.kernel.reserve_state(optimizer).map_err(|e| e.of_layer(&blk.name))?;
            blk.bias.reserve_state(optimizer).map_err(|e| e.of_layer(&blk.name))?;
        }
        Ok(Fused {
            net,
            acts: Acts::default(),
            loss: LossWork::default(),
            d_mean: Vec::new(),
            d_log_var: Vec::new(),
            g1: Vec::new(),
            g2: Vec::new(),
        })
    }

    /// Gives every buffer of the step room for batches of up to `n` cells (see
    /// `buffers`), so that a batch too large for memory is an error here and `step`
    /// allocates nothing; to be called on the thread that runs the steps.
    pub fn reserve(&mut self, n: usize) -> Result<()> {
        let Fused { net, acts, loss, d_mean, d_log_var, g1, g2 } = self;
        net.reserve(acts, n, true)?;
        let spec = &net.spec;
        loss.reserve(n, spec.n_genes, spec.likelihood.info())?;
        const WHAT: &str = "the gradients of a batch";
        let latent = elements(&[n, spec.latent_dim], WHAT)?;
        reserve(d_mean, latent, WHAT)?;
        reserve(d_log_var, latent, WHAT)?;
        // The gradient flows back into the input of every dense layer but those that read
        // the data (the first encoder layer, or the latent heads without encoder layers).
        let m = spec.encoder.len();
        let reads_data = |i: usize| if m == 0 { i < 2 } else { i == 0 };
        let mut widest = 0;
        for (i, blk) in net.layers.iter().enumerate().filter(|(_, b)| b.n_in > 0) {
            if !reads_data(i) {
                products::reserve(n, blk.n_out, blk.n_in, true)?;
                widest = widest.max(blk.n_in);
            }
        }
        let through = elements(&[n, widest], WHAT)?;
        reserve(g1, through, WHAT)?;
        reserve(g2, through, WHAT)?;
        if !gradient::tiles_in_registers(n) {
            // the kernels' gradients go through memory (gradient.rs)
            for blk in net.layers.iter_mut().filter(|b| b.n_in > 0) {
                let len = elements(&[blk.n_in, blk.n_out], "the gradient of the kernel").map_err(|e| e.of_layer(&blk.name))?;
                reserve(&mut blk.kernel.grad, len, "the gradient of the kernel").map_err(|e| e.of_layer(&blk.name))?;
            }
        }
        Ok(())
    }

    /// One minibatch: forward, loss, and (when `learn`) backward and an optimizer update.
    /// Returns (loss, reconstruction, KL), each averaged over the batch's cells.
    pub fn step(&mut self, batch: &Batch, train: &TrainSpec, rng: &mut Stream, learn: bool, team: &Team) -> (f64, f64, f64) {
        let n = batch.n;
        // dropout masks (training only), then the reparameterisation's noise, in the
        // order the reference engine draws them
        self.net.encode(team, &batch.input, n, &mut self.acts, if learn { Some(&mut *rng) } else { None });
        self.net.sample_latent(rng, n, &batch.condition, &mut self.acts);
        self.net.decode(team, n, &mut self.acts, if learn { Some(&mut *rng) } else { None });
        let recon = {
            let out = self.net.outputs(&self.acts, n);
            self.net.spec.likelihood.loss(team, &out, batch, &self.net.gene_params(), &mut self.loss)
        };
        let kl = self.kl(n, train.regularization);
        let value = recon + train.regularization * kl;
        if learn && value.is_finite() {
            let opt = Opt { kind: train.optimizer, lr: train.learning_rate as f32 };
            self.backward(batch, team, opt);
            // kernels were updated in `backward`; now the biases and per-gene parameters
            for blk in &mut self.net.layers {
                if !blk.bias.value.is_empty() {
                    update_slot(&mut blk.bias, opt, team);
                }
            }
            self.net.update_moving_statistics(&self.acts);
        }
        (value, recon, kl)
    }

    /// Mean KL over the cells and, into `d_mean`/`d_log_var`, `regularization` times its
    /// gradient.
    fn kl(&mut self, n: usize, regularization: f64) -> f64 {
        let l = self.net.spec.latent_dim;
        let a = &self.acts;
        resize(&mut self.d_mean, n * l);
        resize(&mut self.d_log_var, n * l);
        let c = (regularization / n as f64) as f32;
        let mut total = 0.0f64;
        for r in 0..n {
            let mut s = 0.0f32;
            for j in 0..l {
                let i = r * l + j;
                let (m, lv) = (a.mean[i], a.log_var[i]);
                let e = lv.exp();
                s += 1.0 + lv - m * m - e;
                self.d_mean[i] = c * m;
                self.d_log_var[i] = c * 0.5 * (e - 1.0);
            }
            total += (-0.5 * s) as f64;
        }
        total / n as f64
    }

    /// Backward pass: every gradient, and each kernel's optimizer update as soon as its
    /// gradient is known (block by block, while the block is in cache) and after the
    /// gradient flowing through it has been computed.
    fn backward(&mut self, batch: &Batch, team: &Team, opt: Opt) {
        let (out_i, gene_0) = (self.net.output_index(), self.net.gene_index(0));
        let Fused { net, acts: a, loss, d_mean, d_log_var, g1, g2 } = self;
        // the normalisations' blocks come last (`ModelSpec::blocks`)
        let (enc_norm, dec_norm) = (&net.enc_norm, &net.dec_norm);
        let first_norm = net.layers.len() - enc_norm.iter().chain(dec_norm).flatten().count();
        let spec = &net.spec;
        let (blocks, norm_blocks) = net.layers.split_at_mut(first_norm);
        let (n, g, l) = (batch.n, spec.n_genes, spec.latent_dim);
        let (m, p) = (spec.encoder.len(), spec.decoder.len());
        let nh = spec.likelihood.info().heads.len();
        // per-gene parameters, the output layer's and the heads' biases: column sums
        for (q, sums) in loss.sum_genes.iter().enumerate() {
            sums.total(n, &mut blocks[gene_0 + q].bias.grad);
        }
        loss.sum_logits.total(n, &mut blocks[out_i].bias.grad);
        for h in 0..nh {
            loss.sum_heads[h].total(n, &mut blocks[out_i + 1 + h].bias.grad);
        }
        // gradient with respect to the output layer's input (old kernels), then the
        // kernels' gradients and updates
        let out_in = blocks[out_i].n_in;
        let mut gy = std::mem::take(g1);
        let mut gx = std::mem::take(g2);
        resize(&mut gy, n * out_in);
        matmul(team, n, g, out_in, &loss.d_logits, false, &blocks[out_i].kernel.value, true, 0.0, &mut gy);
        for h in 0..nh {
            matmul(team, n, g, out_in, &loss.d_heads[h], false, &blocks[out_i + 1 + h].kernel.value, true, 1.0, &mut gy);
        }
        {
            let last: &[f32] = a.decoder_input(spec, p - 1);
            kernel_step(team, opt, out_in, n, g, last, &loss.d_logits, &mut blocks[out_i].kernel);
            for h in 0..nh {
                kernel_step(team, opt, out_in, n, g, last, &loss.d_heads[h], &mut blocks[out_i + 1 + h].kernel);
            }
        }
        // hidden decoder layers, last to first; gy holds d(input of layer j + 1), whose
        // first units are d(output of layer j) (the rest, the condition columns that
        // layer reads, is dropped)
        for j in (0..p - 1).rev() {
            let blk = &mut blocks[m + 2 + j];
            let act = &a.dec[j];
            let cond_w = spec.decoder_condition_width(j + 1);
            if cond_w > 0 {
                drop_columns(&mut gy, n, blk.n_out + cond_w, blk.n_out);
            }
            let norm = dec_norm[j].map(|i| &mut norm_blocks[i - first_norm]);
            hidden_backward(spec.decoder[j].1, spec.decoder_extras[j], norm, n, blk.n_out, act, &mut gy);
            let x: &[f32] = a.decoder_input(spec, j);
            col_sums(team, &gy, n, blk.n_out, &mut blk.bias.grad);
            resize(&mut gx, n * blk.n_in);
            matmul(team, n, blk.n_out, blk.n_in, &gy, false, &blk.kernel.value, true, 0.0, &mut gx);
            kernel_step(team, opt, blk.n_in, n, blk.n_out, x, &gy, &mut blk.kernel);
            std::mem::swap(&mut gx, &mut gy);
        }
        // gy: d[z | c]; through the reparameterisation into d_mean / d_log_var (which
        // already hold the KL part)
        let dw = spec.decoder_input_dim();
        for r in 0..n {
            for j in 0..l {
                let i = r * l + j;
                let dz = gy[r * dw + j];
                d_mean[i] += dz;
                d_log_var[i] += dz * a.eps[i] * 0.5 * a.sd[i];
            }
        }
        // latent heads
        let d = spec.input_dim();
        let (hm, hm_w): (&[f32], usize) = if m == 0 { (&batch.input, d) } else { (&a.enc[m - 1].h, spec.encoder[m - 1].0) };
        if m > 0 {
            resize(&mut gy, n * hm_w);
            matmul(team, n, l, hm_w, d_mean, false, &blocks[m].kernel.value, true, 0.0, &mut gy);
            matmul(team, n, l, hm_w, d_log_var, false, &blocks[m + 1].kernel.value, true, 1.0, &mut gy);
        }
        for (bi, dv) in [(m, &*d_mean), (m + 1, &*d_log_var)] {
            let blk = &mut blocks[bi];
            col_sums(team, dv, n, l, &mut blk.bias.grad);
            kernel_step(team, opt, hm_w, n, l, hm, dv, &mut blk.kernel);
        }
        // encoder layers, last to first
        for i in (0..m).rev() {
            let blk = &mut blocks[i];
            let act = &a.enc[i];
            let norm = enc_norm[i].map(|k| &mut norm_blocks[k - first_norm]);
            hidden_backward(spec.encoder[i].1, spec.encoder_extras[i], norm, n, blk.n_out, act, &mut gy);
            let (x, x_w): (&[f32], usize) = if i == 0 { (&batch.input, d) } else { (&a.enc[i - 1].h, blk.n_in) };
            col_sums(team, &gy, n, blk.n_out, &mut blk.bias.grad);
            if i > 0 {
                resize(&mut gx, n * blk.n_in);
                matmul(team, n, blk.n_out, blk.n_in, &gy, false, &blk.kernel.value, true, 0.0, &mut gx);
            }
            kernel_step(team, opt, x_w, n, blk.n_out, x, &gy, &mut blk.kernel);
            if i > 0 {
                std::mem::swap(&mut gx, &mut gy);
            }
        }
        *g1 = gy;
        *g2 = gx;
    }
}

/// Keeps the first `keep` of the `width` columns of the row-major `[n, width]` matrix
/// `v`, in place: `[n, keep]`.
fn drop_columns(v: &mut Vec<f32>, n: usize, width: usize, keep: usize) {
    for r in 1..n {
        v.copy_within(r * width..r * width + keep, r * keep);
    }
    v.truncate(n * keep);
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;
    use crate::cpu::numeric_team;
    use crate::data::{Dataset, DenseView, Layout, Scaling, Transform};
    use crate::spec::{LayerExtras, ModelParams, Norm, TrainParams};
    use crate::weights::initial_weights;

    /// Where each buffer of the step lives and how much room it has.
    fn buffers(f: &Fused) -> Vec<(usize, usize)> {
        fn of<T>(v: &Vec<T>) -> (usize, usize) {
            (v.as_ptr() as usize, v.capacity())
        }
        let a = &f.acts;
        let mut out: Vec<(usize, usize)> =
            [&a.mean, &a.log_var, &a.eps, &a.sd, &a.dec_in, &a.cond, &a.logits, &f.d_mean, &f.d_log_var].into_iter().map(of).collect();
        // g1 and g2 trade places in the backward pass
        let (g1, g2) = (of(&f.g1), of(&f.g2));
        out.extend([g1.min(g2), g1.max(g2)]);
        out.extend(a.enc.iter().chain(&a.dec).flat_map(|act| {
            [&act.a, &act.h, &act.z, &act.xhat, &act.inv_std, &act.mask, &act.batch_mean, &act.batch_var, &act.normed, &act.post].map(of)
        }));
        out.extend(a.dec_cat.iter().map(of));
        out.extend(a.heads.iter().chain(&f.loss.d_heads).chain(&f.loss.d_genes).chain([&f.loss.d_logits]).map(of));
        out.push(of(&f.loss.row_loss));
        for blk in &f.net.layers {
            out.extend([&blk.kernel, &blk.bias].into_iter().flat_map(|s| [of(&s.grad), of(&s.m1), of(&s.m2)]));
        }
        out.extend(products::scratch_capacities().map(|c| (0, c)));
        out
    }

    /// After `reserve(n)`, steps of `n` cells or fewer allocate nothing: every buffer
    /// keeps its place and its room. Batches on either side of `KERNELS_MAX_CELLS`,
    /// long inner dimensions (split products), heads and per-gene parameters, a
    /// conditional model, no encoder layers and no hidden decoder layer, normalisations
    /// and dropout.
    #[test]
    fn reserve_leaves_nothing_for_the_step_to_allocate() {
        let (n, g) = (100, 2000);
        let mut s = 5u64;
        let x: Vec<f64> = (0..n * g)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 40) % 7) as f64
            })
            .collect();
        let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
        let view = DenseView::new(&x, n, g, Layout::CellsInColumns).unwrap();
        // (likelihood, classes, encoder units, hidden decoder units, optimizer, inject)
        type Case<'a> = (&'a str, usize, &'a [usize], &'a [usize], &'a str, bool);
        let cases: [Case; 5] = [
            ("bce", 0, &[16], &[24], "adam", false),
            ("zinb", 3, &[16, 8], &[8], "rmsprop", true),
            ("nb", 0, &[], &[32], "sgd", false),
            ("mse", 3, &[8], &[], "adagrad", false),
            ("nb", 3, &[8], &[24, 12], "adam", true),
        ];
        for (lik, k, enc, dec, opt, inject) in cases {
            let counts = lik == "nb" || lik == "zinb";
            let transform = if counts { Transform::Counts { target_sum: 1e4 } } else { Transform::MinMax(Scaling::fit(view).unwrap()) };
            let data = Dataset::new(view, transform, (k > 0).then(|| labels.clone()), k).unwrap();
            let act = |&u: &usize| (u, "relu".to_string());
            let mut decoder: Vec<(usize, String)> = dec.iter().map(act).collect();
            decoder.push((g, "linear".into()));
            let spec = ModelParams {
                n_genes: g,
                n_classes: k,
                encoder: enc.iter().map(act).collect(),
                latent_dim: 3,
                decoder,
                likelihood: lik.into(),
                // every decoder layer reads the whole condition
                decoder_conditions: if inject { vec![(0, k); dec.len() + 1] } else { vec![] },
                encoder_extras: vec![],
                decoder_extras: vec![],
            }
            .check()
            .unwrap();
            // layer and batch normalisation and dropout after hidden layers, in the last case
            let spec = if dec.len() == 2 {
                let ex = |norm, dropout| LayerExtras { norm, dropout, activation: None };
                ModelSpec {
                    encoder_extras: vec![ex(Norm::Layer, 0.2)],
                    decoder_extras: vec![
                        LayerExtras {
                            activation: Some(crate::activation::Activation::parse("relu", "test").unwrap()),
                            ..ex(Norm::Batch { momentum: 0.99, epsilon: 1e-3 }, 0.5)
                        },
                        ex(Norm::Layer, 0.0),
                        ex(Norm::None, 0.0),
                    ],
                    ..spec
                }
            } else {
                spec
            };
            for threads in [1, 2] {
                let train = TrainParams {
                    optimizer: opt.into(),
                    learning_rate: None,
                    regularization: 1.0,
                    batch_size: n,
                    seed: 1,
                    threads,
                    engine: "fused".into(),
                }
                .check()
                .unwrap();
                let mut rng = Stream::seed_from_u64(1);
                let mut f = Fused::new(&spec, initial_weights(&spec, &mut rng).unwrap(), train.optimizer).unwrap();
                let team = numeric_team(threads).unwrap();
                f.reserve(n).unwrap();
                let before = buffers(&f);
                let mut batch = Batch::default();
                for cells in [n, 30, 64, 65, 1, n] {
                    let idx: Vec<usize> = (0..cells).collect();
                    data.gather(&idx, &mut batch).unwrap();
                    for learn in [true, false] {
                        f.step(&batch, &train, &mut rng, learn, &team);
                        assert_eq!(buffers(&f), before, "{lik}, {threads} threads, {cells} cells");
                    }
                }
            }
        }
    }
}
