//! The fused training step (step.rs) against burn's autodiff and optimizers: the same
//! seed must give the same weights after several steps, for every likelihood,
//! activation, optimizer and architecture shape; and the fused step must not depend on
//! the number of threads.

use exprsgen_core::*;

/// Cells in rows, values in [0, 5): three loose groups.
fn values(n: usize, g: usize, seed: u64) -> (Vec<f64>, Vec<u32>) {
    let mut s = seed.wrapping_mul(2862933555777941757).wrapping_add(3037000493);
    let labels: Vec<u32> = (0..n).map(|i| (i % 3) as u32).collect();
    let mut x = vec![0.0; n * g];
    for c in 0..n {
        for j in 0..g {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let u = (s >> 33) as f64 / (1u64 << 31) as f64;
            let boost = if j % 3 == labels[c] as usize { 3.0 } else { 0.0 };
            x[c * g + j] = boost + 2.0 * u;
        }
    }
    (x, labels)
}

/// Counts (cells in rows) of a rough NB-like kind, some zeros, some large values.
fn counts(n: usize, g: usize, seed: u64) -> Vec<f64> {
    let (v, _) = values(n, g, seed);
    v.iter().enumerate().map(|(i, &u)| if i % 7 == 3 { 0.0 } else { (u * u * 3.0).floor() }).collect()
}

/// Values `x` (cells in rows) min-max scaled, with `labels` of 3 classes or none.
fn scaled_data<'a>(x: &'a [f64], n: usize, g: usize, labels: Option<&[u32]>) -> Dataset<'a> {
    let view = DenseView::new(x, n, g, Layout::CellsInRows).unwrap();
    let scaling = Scaling::fit(view).unwrap();
    Dataset::new(view, Transform::MinMax(scaling), labels.map(<[u32]>::to_vec), if labels.is_some() { 3 } else { 0 }).unwrap()
}

/// Counts `x` (cells in rows) with `labels` of 3 classes.
fn count_data<'a>(x: &'a [f64], n: usize, g: usize, labels: &[u32]) -> Dataset<'a> {
    let view = DenseView::new(x, n, g, Layout::CellsInRows).unwrap();
    Dataset::new(view, Transform::Counts { target_sum: 1e4 }, Some(labels.to_vec()), 3).unwrap()
}

fn model(g: usize, k: usize, enc: &[(usize, &str)], dec: &[(usize, &str)], lik: &str) -> ModelSpec {
    let mut decoder: Vec<(usize, String)> = dec.iter().map(|&(u, a)| (u, a.to_string())).collect();
    decoder.last_mut().unwrap().0 = g;
    ModelParams {
        n_genes: g,
        n_classes: k,
        encoder: enc.iter().map(|&(u, a)| (u, a.to_string())).collect(),
        latent_dim: 3,
        decoder,
        likelihood: lik.into(),
        decoder_conditions: vec![],
        encoder_extras: vec![],
        decoder_extras: vec![],
    }
    .check()
    .unwrap()
}

fn train(optimizer: &str, engine: &str, threads: usize) -> TrainSpec {
    TrainParams {
        optimizer: optimizer.into(),
        learning_rate: None,
        regularization: 0.7,
        batch_size: 16,
        seed: 42,
        threads,
        engine: engine.into(),
    }
    .check()
    .unwrap()
}

/// Trains two epochs with each engine and compares the weights and the losses.
fn compare(s: &ModelSpec, optimizer: &str, data: &Dataset, tol: f32) {
    let run = |engine: &str| {
        let mut t = Trainer::new(s, train(optimizer, engine, 1), None).unwrap();
        let stats: Vec<EpochStats> = (0..2).map(|_| t.train_epoch(data).unwrap()).collect();
        (t.weights().unwrap(), stats)
    };
    let (wf, sf) = run("fused");
    let (wb, sb) = run("burn");
    assert_eq!(wf.len(), wb.len());
    for (a, b) in wf.iter().zip(&wb) {
        assert_eq!((&a.name, a.n_in, a.n_out), (&b.name, b.n_in, b.n_out));
        for (x, y) in a.kernel.iter().chain(&a.bias).zip(b.kernel.iter().chain(&b.bias)) {
            let d = (x - y).abs() / (1e-3 + y.abs());
            assert!(d < tol, "{:?} {optimizer}: layer {} differs: fused {x} burn {y}", s.likelihood, a.name);
        }
    }
    // the weights moved away from where they started: the comparison is not trivial
    let w0 = Trainer::new(s, train(optimizer, "fused", 1), None).unwrap().weights().unwrap();
    let moved = w0.iter().zip(&wf).flat_map(|(a, b)| a.kernel.iter().zip(&b.kernel)).filter(|(x, y)| x != y).count();
    assert!(moved > 0, "no weight changed");
    for (a, b) in sf.iter().zip(&sb) {
        assert!((a.loss - b.loss).abs() < 1e-3 * (1.0 + b.loss.abs()), "loss {a:?} vs {b:?}");
        assert!((a.kl - b.kl).abs() < 1e-3 * (1.0 + b.kl.abs()), "kl {a:?} vs {b:?}");
    }
}

#[test]
fn fused_step_matches_burn_for_scaled_likelihoods_and_activations() {
    let (n, g) = (40, 9);
    let (x, labels) = values(n, g, 1);
    let plain = scaled_data(&x, n, g, None);
    let cond = scaled_data(&x, n, g, Some(&labels));
    // the VAExprs model, plain and conditional
    compare(&model(g, 0, &[(12, "relu")], &[(12, "relu"), (0, "sigmoid")], "bce"), "adam", &plain, 2e-3);
    compare(&model(g, 3, &[(12, "relu")], &[(12, "relu"), (0, "sigmoid")], "bce"), "adam", &cond, 2e-3);
    // deeper, other activations, squared error
    compare(&model(g, 3, &[(10, "tanh"), (8, "elu")], &[(8, "softplus"), (10, "sigmoid"), (0, "linear")], "mse"), "adam", &cond, 2e-3);
    // no hidden layers at all; a clamped non-sigmoid output under BCE
    compare(&model(g, 0, &[], &[(0, "sigmoid")], "bce"), "adam", &plain, 2e-3);
    compare(&model(g, 0, &[(12, "elu")], &[(0, "softplus")], "bce"), "adam", &plain, 2e-3);
    // every optimizer
    for opt in ["sgd", "rmsprop", "adagrad"] {
        compare(&model(g, 3, &[(12, "relu")], &[(12, "tanh"), (0, "sigmoid")], "bce"), opt, &cond, 2e-3);
    }
}

#[test]
fn fused_step_matches_burn_for_count_likelihoods() {
    let (n, g) = (40, 9);
    let x = counts(n, g, 2);
    let (_, labels) = values(n, g, 2);
    let data = count_data(&x, n, g, &labels);
    for lik in ["poisson", "nb", "zinb", "zip"] {
        let s = model(g, 3, &[(12, "relu")], &[(12, "relu"), (0, "linear")], lik);
        compare(&s, "adam", &data, 5e-3);
    }
}

#[test]
fn fused_results_do_not_depend_on_the_thread_count() {
    // large enough that products and element-wise loops are split between threads
    let (n, g) = (300, 2100);
    let (x, labels) = values(n, g, 3);
    let data = scaled_data(&x, n, g, Some(&labels));
    let s = model(g, 3, &[(128, "relu")], &[(128, "relu"), (0, "sigmoid")], "bce");
    let cx = counts(n, g, 5);
    let cdata = count_data(&cx, n, g, &labels);
    let cs = model(g, 3, &[(128, "relu")], &[(128, "relu"), (0, "linear")], "zinb");
    // batches of 32 cells (the last one 12) use the unpacked kernels, of 128 matrixmultiply
    for batch_size in [32, 128] {
        for (s, d) in [(&s, &data), (&cs, &cdata)] {
            let run = |threads| {
                let mut t = Trainer::new(s, TrainSpec { batch_size, ..train("adam", "fused", threads) }, None).unwrap();
                let l = t.train_epoch(d).unwrap();
                (t.weights().unwrap(), l)
            };
            let (w1, l1) = run(1);
            let (w2, l2) = run(2);
            assert_eq!(l1, l2);
            assert!(w1 == w2, "{:?}, batch {batch_size}: weights differ between 1 and 2 threads", s.likelihood);
        }
    }
}

/// Several conditions (two labels and a covariate) routed to decoder layers other than
/// the first (every layer; or some to the output layer and the likelihood's heads
/// only): the fused step still matches burn's autodiff.
#[test]
fn fused_step_matches_burn_with_several_conditions_injected() {
    let (n, g) = (40, 9);
    let x = counts(n, g, 4);
    let (_, labels) = values(n, g, 4);
    let view = DenseView::new(&x, n, g, Layout::CellsInRows).unwrap();
    let conditions = Conditions::new(vec![
        Condition::Categorical { codes: labels.clone(), levels: 3 },
        Condition::Categorical { codes: (0..n).map(|i| (i % 2) as u32).collect(), levels: 2 },
        Condition::Continuous { values: (0..n).map(|i| (i as f32 / n as f32) - 0.5).collect() },
    ])
    .unwrap();
    let data = Dataset::with_conditions(view, Transform::Counts { target_sum: 1e4 }, conditions).unwrap();
    for (lik, dec) in [("zinb", &[(12, "relu"), (0, "linear")][..]), ("nb", &[(10, "relu"), (8, "tanh"), (0, "linear")][..])] {
        let plain = model(g, 6, &[(12, "relu")], dec, lik);
        let p = plain.decoder.len();
        // the whole condition into every decoder layer (scVI's deep injection)
        let injected = ModelSpec { decoder_conditions: vec![(0, 6); p], ..plain.clone() };
        // the first label into the first layer, the rest into the output layer only
        let mut routes = vec![(0, 0); p];
        routes[0] = (0, 3);
        routes[p - 1] = (3, 6);
        let split = ModelSpec { decoder_conditions: routes, ..plain.clone() };
        // each widens the decoder layers it feeds
        let widths = |s: &ModelSpec| s.blocks().iter().map(|b| b.n_in).collect::<Vec<_>>();
        assert_ne!(widths(&plain), widths(&injected));
        assert_ne!(widths(&plain), widths(&split));
        compare(&injected, "adam", &data, 5e-3);
        compare(&split, "adam", &data, 5e-3);
    }
}

fn extras(norm: bool, dropout: f32) -> LayerExtras {
    LayerExtras { norm: if norm { Norm::Layer } else { Norm::None }, dropout, activation: None }
}

/// Layer normalisation and dropout after hidden layers of the encoder and the decoder:
/// the fused step matches burn's autodiff (the same masks drawn from the same seed),
/// and the normalisations' scales and shifts are trained.
#[test]
fn fused_step_matches_burn_with_dropout_and_layer_normalisation() {
    let (n, g) = (40, 9);
    let (x, labels) = values(n, g, 5);
    let cond = scaled_data(&x, n, g, Some(&labels));
    let cx = counts(n, g, 6);
    let cdata = count_data(&cx, n, g, &labels);
    let scaled = model(g, 3, &[(12, "relu"), (10, "tanh")], &[(12, "elu"), (0, "sigmoid")], "bce");
    let count = model(g, 3, &[(12, "relu")], &[(10, "relu"), (8, "softplus"), (0, "linear")], "zinb");
    let cases = [
        (
            ModelSpec {
                encoder_extras: vec![extras(true, 0.0), extras(false, 0.3)],
                decoder_extras: vec![extras(true, 0.2), extras(false, 0.0)],
                ..scaled.clone()
            },
            &cond,
            2e-3,
        ),
        (
            ModelSpec {
                encoder_extras: vec![extras(true, 0.1)],
                decoder_extras: vec![extras(false, 0.25), extras(true, 0.0), extras(false, 0.0)],
                ..count.clone()
            },
            &cdata,
            5e-3,
        ),
    ];
    for (s, data, tol) in cases {
        compare(&s, "adam", data, tol);
        // the normalisations were trained away from scale 1 and shift 0
        let mut t = Trainer::new(&s, train("adam", "fused", 1), None).unwrap();
        t.train_epoch(data).unwrap();
        let norms: Vec<DenseWeights> = t.weights().unwrap().into_iter().filter(|w| w.name.ends_with("_norm")).collect();
        assert_eq!(norms.len(), 2);
        for w in norms {
            let u = w.n_out / 2;
            assert!(w.bias[..u].iter().any(|&v| v != 1.0) && w.bias[u..].iter().any(|&v| v != 0.0), "{} not trained", w.name);
        }
    }
}

/// Dropout is deterministic under a seed, changes training, and is off at inference.
#[test]
fn dropout_is_seeded_in_training_and_off_at_inference() {
    let (n, g) = (40, 9);
    let (x, labels) = values(n, g, 7);
    let data = scaled_data(&x, n, g, Some(&labels));
    let plain = model(g, 3, &[(12, "relu")], &[(12, "relu"), (0, "sigmoid")], "bce");
    let dropped = ModelSpec {
        encoder_extras: vec![extras(false, 0.5)],
        decoder_extras: vec![extras(false, 0.5), extras(false, 0.0)],
        ..plain.clone()
    };
    let fit = |s: &ModelSpec, seed: u64| {
        let mut t = Trainer::new(s, TrainSpec { seed, ..train("adam", "fused", 1) }, None).unwrap();
        t.train_epoch(&data).unwrap();
        t.weights().unwrap()
    };
    let (a, b) = (fit(&dropped, 3), fit(&dropped, 3));
    assert!(a == b, "same seed, different weights");
    assert!(fit(&plain, 3) != a, "dropout changed nothing in training");
    // inference: no unit dropped, so the model reads as the same weights without dropout
    let encode = |s: &ModelSpec| Model::new(s, &a, 1).unwrap().encode(&data).unwrap();
    assert_eq!(encode(&dropped), encode(&plain));
}

/// scVI's hidden layer after its linear map: batch normalisation, ReLU, dropout.
fn scvi(dropout: f32) -> LayerExtras {
    LayerExtras {
        norm: Norm::Batch { momentum: 0.99, epsilon: 1e-3 },
        dropout,
        activation: Some(Activation::parse("relu", "test").unwrap()),
    }
}

fn batch_norm(dropout: f32) -> LayerExtras {
    LayerExtras { norm: Norm::Batch { momentum: 0.9, epsilon: 1e-3 }, dropout, activation: None }
}

/// Batch normalisation after hidden layers of the encoder and the decoder (with and
/// without dropout, beside a layer normalisation): the fused step matches burn's
/// autodiff, moving statistics included, and so does an evaluation pass, which reads
/// the moving statistics; the scales, shifts and moving statistics all moved.
///
/// Weights are compared after SGD steps. The bias of a unit that the activation passes
/// for every cell of a batch has a gradient of 0 up to rounding (the normalisation
/// removes any shift of the unit), and the adaptive optimizers turn that rounding
/// into steps of the learning rate's size, different in each engine: with Adam the
/// losses are compared.
#[test]
fn fused_step_matches_burn_with_batch_normalisation() {
    let (n, g) = (40, 9);
    let (x, labels) = values(n, g, 8);
    let cond = scaled_data(&x, n, g, Some(&labels));
    let cx = counts(n, g, 9);
    let cdata = count_data(&cx, n, g, &labels);
    let scaled = model(g, 3, &[(12, "relu"), (10, "tanh")], &[(12, "elu"), (0, "sigmoid")], "bce");
    let count = model(g, 3, &[(12, "relu")], &[(10, "relu"), (8, "softplus"), (0, "linear")], "nb");
    let cases = [
        (
            ModelSpec {
                encoder_extras: vec![batch_norm(0.0), batch_norm(0.2)],
                decoder_extras: vec![batch_norm(0.0), extras(false, 0.0)],
                ..scaled.clone()
            },
            &cond,
            3e-3,
        ),
        (
            ModelSpec {
                encoder_extras: vec![batch_norm(0.1)],
                decoder_extras: vec![extras(true, 0.0), batch_norm(0.25), extras(false, 0.0)],
                ..count.clone()
            },
            &cdata,
            5e-3,
        ),
        // scVI's layers: a linear dense layer, batch normalisation, ReLU, dropout
        (
            ModelSpec {
                encoder_extras: vec![scvi(0.1)],
                decoder_extras: vec![scvi(0.0), extras(false, 0.0)],
                ..model(g, 3, &[(12, "linear")], &[(10, "linear"), (0, "linear")], "nb")
            },
            &cdata,
            5e-3,
        ),
    ];
    for (s, data, tol) in cases {
        compare(&s, "sgd", data, tol);
        for opt in ["sgd", "adam"] {
            let mut fused = Trainer::new(&s, train(opt, "fused", 1), None).unwrap();
            let mut reference = Trainer::new(&s, train(opt, "burn", 1), None).unwrap();
            for _ in 0..2 {
                let (tf, tb) = (fused.train_epoch(data).unwrap(), reference.train_epoch(data).unwrap());
                assert!((tf.loss - tb.loss).abs() < 1e-3 * (1.0 + tb.loss.abs()), "{opt}: training {tf:?} vs {tb:?}");
            }
            // evaluation (moving statistics): the same loss from both engines
            let (ef, eb) = (fused.evaluate(data).unwrap(), reference.evaluate(data).unwrap());
            assert!((ef.loss - eb.loss).abs() < 1e-3 * (1.0 + eb.loss.abs()), "{opt}: evaluation {ef:?} vs {eb:?}");
        }
        let mut fused = Trainer::new(&s, train("adam", "fused", 1), None).unwrap();
        fused.train_epoch(data).unwrap();
        let w = fused.weights().unwrap();
        for b in w.iter().filter(|w| {
            w.name.ends_with("_norm") && w.n_out % 4 == 0 && s.norms().iter().any(|(name, _, norm)| *name == w.name && norm.width() == 4)
        }) {
            let u = b.n_out / 4;
            let (scale, rest) = b.bias.split_at(u);
            let (shift, rest) = rest.split_at(u);
            let (mean, var) = rest.split_at(u);
            assert!(scale.iter().any(|&v| v != 1.0) && shift.iter().any(|&v| v != 0.0), "{}: scale and shift not trained", b.name);
            assert!(mean.iter().any(|&v| v != 0.0) && var.iter().any(|&v| v != 1.0), "{}: moving statistics did not move", b.name);
            assert!(var.iter().all(|&v| v > 0.0), "{}: a moving variance is not positive", b.name);
        }
    }
}

/// At inference a batch-normalised model treats each cell on its own (moving
/// statistics): a cell's code is the same encoded alone or among others; in training
/// the batch's statistics make the step depend on the batch.
#[test]
fn batch_normalisation_uses_moving_statistics_at_inference() {
    let (n, g) = (40, 9);
    let (x, labels) = values(n, g, 10);
    let data = scaled_data(&x, n, g, Some(&labels));
    let s = ModelSpec {
        encoder_extras: vec![batch_norm(0.0)],
        decoder_extras: vec![batch_norm(0.0), extras(false, 0.0)],
        ..model(g, 3, &[(12, "relu")], &[(12, "relu"), (0, "sigmoid")], "bce")
    };
    let mut t = Trainer::new(&s, train("adam", "fused", 1), None).unwrap();
    t.train_epoch(&data).unwrap();
    let w = t.weights().unwrap();
    let (all, _) = Model::new(&s, &w, 1).unwrap().encode(&data).unwrap();
    // the first 5 cells (column-major, cells in rows), under the same scaling
    let first: Vec<f64> = (0..g).flat_map(|j| (0..5).map(move |c| (j, c))).map(|(j, c)| x[j * n + c]).collect();
    let view = DenseView::new(&first, 5, g, Layout::CellsInRows).unwrap();
    let scaling = Scaling::fit(DenseView::new(&x, n, g, Layout::CellsInRows).unwrap()).unwrap();
    let few = Dataset::new(view, Transform::MinMax(scaling), Some(labels[..5].to_vec()), 3).unwrap();
    let (some, _) = Model::new(&s, &w, 1).unwrap().encode(&few).unwrap();
    let l = s.latent_dim;
    for (a, b) in some.iter().zip(&all[..5 * l]) {
        assert!((a - b).abs() < 1e-5, "a cell's code depends on the others at inference: {a} vs {b}");
    }
    // the initial moving statistics (mean 0, variance 1) are what a new model reads
    let w0 = Trainer::new(&s, train("adam", "fused", 1), None).unwrap().weights().unwrap();
    let norm = w0.iter().find(|b| b.name == "encoder_1_norm").unwrap();
    let u = norm.n_out / 4;
    assert!(norm.bias[2 * u..3 * u].iter().all(|&v| v == 0.0) && norm.bias[3 * u..].iter().all(|&v| v == 1.0));
}
