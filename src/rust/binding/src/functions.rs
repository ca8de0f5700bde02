//! The functions R calls (`.Call(wrap__eg_*)`), each a guarded shim over the core.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::Duration;

use exprsgen_core::buffers::{from_fn, zeros};
use exprsgen_core::{
    check_compressed, compress_columns, scan_values, transpose_scan, vocabulary, Dataset, Error, Model, Pass, Source, SparseCounts,
    Trainer, Transform,
};
use extendr_api::prelude::*;

use crate::convert::*;

static INIT: Once = Once::new();

/// Run `f`; turn an error or a panic into an `exprsgen_core_error` string (a user
/// interrupt into an `exprsgen_core_interrupt` one).
fn guard(f: impl FnOnce() -> CoreResult<Robj>) -> Robj {
    INIT.call_once(|| {
        // Panics are caught below and reported once, as an R error; the default hook
        // would also print a "thread panicked" line and a backtrace.
        std::panic::set_hook(Box::new(|_| {}));
        // matrixmultiply sizes its GEMM thread pool once per process from this variable
        // (default: all physical cores), which would ignore `num.threads`; matrix
        // products run on one thread unless the user asked otherwise.
        if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
            std::env::set_var("MATMUL_NUM_THREADS", "1");
        }
    });
    let mut class = "exprsgen_core_error";
    let out = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return value,
        Ok(Err(Error::Interrupted)) => {
            class = "exprsgen_core_interrupt";
            Error::Interrupted.to_string()
        }
        Ok(Err(e)) => e.to_string(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            format!("internal error (please report): {what}")
        }
    };
    let mut r: Robj = out.into();
    let _ = r.set_class([class]);
    r
}

fn flag(x: &Robj, name: &'static str) -> CoreResult<bool> {
    x.as_bool().ok_or(Error::InvalidParameter { field: name, rule: "must be TRUE or FALSE".into() })
}

fn named_list<const N: usize>(names: [&str; N], values: [Robj; N]) -> CoreResult<Robj> {
    List::from_names_and_values(names, values).map(Robj::from).map_err(|e| Error::Internal(format!("{e}")))
}

/// What R must know about the core (see exprsgen_core::vocabulary): `list(likelihoods =
/// list(name, counts, description, heads, gene_params), activations = list(name,
/// aliases), optimizers = list(name, learning_rate), engines)`.
#[extendr]
pub fn eg_vocabulary() -> Robj {
    guard(|| {
        let v = vocabulary();
        let strings = |s: &[&str]| Robj::from(s.iter().map(|x| x.to_string()).collect::<Vec<String>>());
        let lik = &v.likelihoods;
        let likelihoods = named_list(
            ["name", "counts", "description", "heads", "gene_params"],
            [
                strings(&lik.iter().map(|l| l.name).collect::<Vec<_>>()),
                Robj::from(lik.iter().map(|l| l.counts).collect::<Vec<bool>>()),
                strings(&lik.iter().map(|l| l.description).collect::<Vec<_>>()),
                List::from_values(lik.iter().map(|l| strings(l.heads))).into(),
                List::from_values(lik.iter().map(|l| strings(l.gene_params))).into(),
            ],
        )?;
        let activations = named_list(
            ["name", "aliases"],
            [
                strings(&v.activations.iter().map(|a| a.0).collect::<Vec<_>>()),
                List::from_values(v.activations.iter().map(|a| strings(a.1))).into(),
            ],
        )?;
        let optimizers = named_list(
            ["name", "learning_rate"],
            [
                strings(&v.optimizers.iter().map(|o| o.0).collect::<Vec<_>>()),
                Robj::from(v.optimizers.iter().map(|o| o.1).collect::<Vec<f64>>()),
            ],
        )?;
        named_list(["likelihoods", "activations", "optimizers", "engines"], [likelihoods, activations, optimizers, strings(v.engines)])
    })
}

/// The parameter blocks of the architecture `model`, in weight order:
/// `list(name, role, n_in, n_out)`.
#[extendr]
pub fn eg_blocks(model: Robj) -> Robj {
    guard(|| {
        let blocks = model_params(&model)?.check()?.blocks();
        let ints = |f: fn(&exprsgen_core::BlockShape) -> usize| Robj::from(blocks.iter().map(|b| f(b) as f64).collect::<Vec<f64>>());
        named_list(
            ["name", "role", "n_in", "n_out"],
            [
                Robj::from(blocks.iter().map(|b| b.name.clone()).collect::<Vec<String>>()),
                Robj::from(blocks.iter().map(|b| b.role.name().to_string()).collect::<Vec<String>>()),
                ints(|b| b.n_in),
                ints(|b| b.n_out),
            ],
        )
    })
}

/// A trainer and the data sets it was given. While a block of on-disk cells trains in
/// the background (`eg_trainer_start`), the trainer is on that thread (`trainer` is
/// None) and `running` holds the thread and the block.
pub struct TrainerHandle {
    trainer: Option<Trainer>,
    transform: Transform,
    train: Option<HeldData>,
    val: Option<HeldData>,
    running: Option<Running>,
}

/// What using the trainer while a block trains in the background is.
fn busy() -> Error {
    Error::Internal("a block is still training (eg_trainer_wait was not called)".into())
}

/// A block training on a thread of its own: the thread gives the trainer back with
/// the pass's result (or a panic's payload).
struct Running {
    thread: std::thread::JoinHandle<(Trainer, std::thread::Result<CoreResult<Pass>>)>,
    stop: Arc<AtomicBool>,
    // the R matrix whose memory the thread's data set reads: kept alive (and protected
    // from R's garbage collector) until the thread has been joined
    _x: Robj,
}

impl TrainerHandle {
    fn trainer(&mut self) -> CoreResult<&mut Trainer> {
        self.trainer.as_mut().ok_or_else(busy)
    }

    /// Waits for the block training in the background, if any (asking it to stop
    /// first with `stop`, and whenever the user interrupts), and takes the trainer
    /// back. Returns the pass's result, None when nothing was running.
    fn finish(&mut self, stop: bool) -> Option<CoreResult<Pass>> {
        let run = self.running.take()?;
        if stop {
            run.stop.store(true, Ordering::Relaxed);
        }
        let mut asked = crate::interrupt::poller(POLL);
        while !run.thread.is_finished() {
            if asked() {
                run.stop.store(true, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        let out = match run.thread.join() {
            Ok((trainer, result)) => {
                self.trainer = Some(trainer);
                match result {
                    Ok(r) => r,
                    Err(payload) => std::panic::resume_unwind(payload),
                }
            }
            // the thread's body catches panics; only a failed join lands here
            Err(_) => Err(Error::Internal("the training thread ended abnormally".into())),
        };
        drop(run._x);
        Some(out)
    }
}

impl Drop for TrainerHandle {
    fn drop(&mut self) {
        // never free the block (or the trainer) under a running thread
        if let Some(run) = self.running.take() {
            run.stop.store(true, Ordering::Relaxed);
            let _ = run.thread.join();
        }
    }
}

fn handle<T: 'static, R>(ptr: &Robj, what: &'static str, f: impl FnOnce(&mut T) -> CoreResult<R>) -> CoreResult<R> {
    let mut p: ExternalPtr<T> =
        ptr.try_into().map_err(|_| Error::InvalidParameter { field: what, rule: format!("is not a live exprsgen {what}") })?;
    let t = p
        .try_addr_mut()
        .map_err(|_| Error::InvalidParameter { field: what, rule: "is no longer valid (was it saved and reloaded?)".into() })?;
    f(t)
}

fn with_trainer<R>(ptr: &Robj, f: impl FnOnce(&mut TrainerHandle) -> CoreResult<R>) -> CoreResult<R> {
    handle(ptr, "trainer", f)
}

/// A data set from `x` (or NULL for none), its conditions (see `convert::conditions`)
/// and the transform.
fn held(x: Robj, labels: &Robj, name: &'static str, transform: &Transform, n_classes: usize) -> CoreResult<Option<HeldData>> {
    if x.is_null() {
        return Ok(None);
    }
    let cond = conditions(labels, n_classes, "labels")?;
    HeldData::new(x, false, name, transform.clone(), cond).map(Some)
}

/// Create a trainer: a new model from `model` (architecture) and `train` (settings),
/// or one continuing from `weights` when not NULL, with its data: `data = list(x,
/// labels, x_val, labels_val, transform)`, matrices genes x cells (`x` NULL when the
/// data come block by block, see `eg_trainer_start`).
#[extendr]
pub fn eg_trainer_new(model: Robj, train: Robj, weights: Robj, data: Robj) -> Robj {
    guard(|| {
        let spec = model_params(&model)?.check()?;
        let train = train_params(&train)?.check()?;
        let w = if weights.is_null() { None } else { Some(weights_from_r(&weights)?) };
        let transform = crate::convert::transform(&field(&data, "transform")?)?;
        let k = spec.n_classes;
        let train_data = held(field(&data, "x")?, &field(&data, "labels")?, "x_train", &transform, k)?;
        let val = held(field(&data, "x_val")?, &field(&data, "labels_val")?, "x_val", &transform, k)?;
        for d in train_data.iter().chain(&val) {
            spec.check_data(&d.data)?;
        }
        let trainer = Trainer::new(&spec, train, w.as_deref())?;
        Ok(ExternalPtr::new(TrainerHandle { trainer: Some(trainer), transform, train: train_data, val, running: None }).into())
    })
}

/// `c(loss, reconstruction, kl, cells)`: the pass's mean losses over the `cells` it
/// covered (fewer than all when a user interrupt ended it).
fn stats(p: Pass) -> Robj {
    vec![p.stats.loss, p.stats.reconstruction, p.stats.kl, p.cells as f64].into()
}

/// How often a pass asks R whether the user pressed Ctrl-C.
const POLL: Duration = Duration::from_millis(100);

/// One epoch of training over the trainer's data (`train = TRUE`) or an evaluation pass
/// over its validation data (`FALSE`), ended early by a user interrupt. Returns
/// `c(loss, reconstruction, kl, cells)`.
#[extendr]
pub fn eg_trainer_epoch(trainer: Robj, train: Robj) -> Robj {
    guard(|| {
        let train = flag(&train, "train")?;
        with_trainer(&trainer, |t| {
            let TrainerHandle { trainer, train: data, val, .. } = t;
            let trainer = trainer.as_mut().ok_or_else(busy)?;
            let missing = || Error::Internal("the trainer has no such data".into());
            let mut stop = crate::interrupt::poller(POLL);
            let st = if train {
                trainer.train_pass(&data.as_ref().ok_or_else(missing)?.data, &mut stop)?
            } else {
                trainer.evaluate_pass(&val.as_ref().ok_or_else(missing)?.data, &mut stop)?
            };
            Ok(stats(st))
        })
    })
}

/// One training pass (`train = TRUE`) or evaluation pass over a block of cells `x`
/// (read from disk; genes x cells) with conditions `labels`, on a thread of its own:
/// this returns at once, so that R can read the next block meanwhile (read-ahead);
/// `eg_trainer_wait` gives the pass's `c(loss, reconstruction, kl, cells)`. Nothing
/// else may use the trainer until then.
#[extendr]
pub fn eg_trainer_start(trainer: Robj, x: Robj, labels: Robj, train: Robj) -> Robj {
    guard(|| {
        let train = flag(&train, "train")?;
        with_trainer(&trainer, |t| {
            let k = t.trainer()?.model_spec().n_classes;
            let src = source(&x, false, "x")?;
            // SAFETY: the views point into R vectors owned by `x`, which `Running` holds
            // until the thread reading them has been joined (`finish`, or the handle's
            // drop): extendr keeps it protected from R's garbage collector, which never
            // moves objects, and nothing writes to it meanwhile (copy-on-modify; the
            // block is private to .pass()).
            let src = unsafe { std::mem::transmute::<Source<'_>, Source<'static>>(src) };
            let data = Dataset::with_conditions(src, t.transform.clone(), conditions(&labels, k, "labels")?)?;
            t.trainer()?.model_spec().check_data(&data)?;
            let mut worker = t.trainer.take().ok_or_else(busy)?;
            let stop = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&stop);
            let thread = std::thread::Builder::new().name("exprsgen-block".into()).spawn(move || {
                let result = catch_unwind(AssertUnwindSafe(|| {
                    let mut stop = || flag.load(Ordering::Relaxed);
                    if train {
                        worker.train_pass(&data, &mut stop)
                    } else {
                        worker.evaluate_pass(&data, &mut stop)
                    }
                }));
                (worker, result)
            });
            match thread {
                Ok(thread) => {
                    t.running = Some(Running { thread, stop, _x: x.clone() });
                    Ok(Robj::from(true))
                }
                Err(e) => Err(Error::Internal(format!("could not start a training thread: {e}"))),
            }
        })
    })
}

/// Waits for the block started by `eg_trainer_start` (asking it to stop after its
/// current minibatch when `stop` is TRUE or the user interrupts) and returns its
/// `c(loss, reconstruction, kl, cells)`; NULL when no block was training.
#[extendr]
pub fn eg_trainer_wait(trainer: Robj, stop: Robj) -> Robj {
    guard(|| {
        let stop = flag(&stop, "stop")?;
        with_trainer(&trainer, |t| match t.finish(stop) {
            None => Ok(Robj::from(())),
            Some(r) => r.map(stats),
        })
    })
}

/// A random permutation of `1..n` from the trainer's random stream.
#[extendr]
pub fn eg_trainer_permutation(trainer: Robj, n: Robj) -> Robj {
    guard(|| {
        let n = n
            .as_integer()
            .filter(|&v| v >= 0)
            .ok_or(Error::InvalidParameter { field: "n", rule: "must be a non-negative integer".into() })?;
        with_trainer(&trainer, |t| {
            Ok(Robj::from(t.trainer()?.permutation(n as usize).into_iter().map(|i| i as i32 + 1).collect::<Vec<i32>>()))
        })
    })
}

/// Set the KL weight and learning rate of the following steps; returns the previous
/// `c(regularization, learning_rate)`.
#[extendr]
pub fn eg_trainer_rates(trainer: Robj, regularization: Robj, learning_rate: Robj) -> Robj {
    guard(|| {
        let num =
            |x: &Robj, name: &'static str| x.as_real().ok_or(Error::InvalidParameter { field: name, rule: "must be a number".into() });
        let (reg, lr) = (num(&regularization, "regularization")?, num(&learning_rate, "learning_rate")?);
        with_trainer(&trainer, |t| {
            let old = t.trainer()?.rates();
            t.trainer()?.set_rates(reg, lr)?;
            Ok(Robj::from(vec![old.0, old.1]))
        })
    })
}

/// Remember the trainer's current weights (the best so far).
#[extendr]
pub fn eg_trainer_snapshot(trainer: Robj) -> Robj {
    guard(|| with_trainer(&trainer, |t| t.trainer()?.snapshot().map(|_| Robj::from(true))))
}

/// The trainer's weights (`snapshot = FALSE`) or those of its last snapshot (`TRUE`;
/// NULL when there is none), as `list(layer = list(kernel, bias))`.
#[extendr]
pub fn eg_trainer_weights(trainer: Robj, snapshot: Robj) -> Robj {
    guard(|| {
        let snap = flag(&snapshot, "snapshot")?;
        with_trainer(&trainer, |t| {
            let w = if snap { t.trainer()?.snapshot_weights()? } else { Some(t.trainer()?.weights()?) };
            match w {
                Some(w) => weights_to_r(&w),
                None => Ok(Robj::from(())),
            }
        })
    })
}

/// What the trainer holds besides its weights, to continue training from (a
/// checkpoint): `list(epoch, seed = <32 raw bytes>, stream = c(high, low), word_pos =
/// c(4 32-bit words, high first), slots = list(list(m1, m2, time), ...))`, the
/// optimizer's state of each kernel and bias in block order.
#[extendr]
pub fn eg_trainer_state(trainer: Robj) -> Robj {
    guard(|| {
        with_trainer(&trainer, |t| {
            let s = t.trainer()?.state()?;
            let words = |v: u128, n: usize| -> Robj {
                Robj::from((0..n).rev().map(|k| ((v >> (32 * k)) & 0xffff_ffff) as f64).collect::<Vec<f64>>())
            };
            let floats =
                |v: &[f32]| -> CoreResult<Robj> { Ok(from_fn(v.len(), "a copy of the optimizer's state for R", |j| v[j] as f64)?.into()) };
            let slots = s
                .slots
                .iter()
                .map(|sl| named_list(["m1", "m2", "time"], [floats(&sl.m1)?, floats(&sl.m2)?, Robj::from(sl.time)]))
                .collect::<CoreResult<Vec<Robj>>>()?;
            named_list(
                ["epoch", "seed", "stream", "word_pos", "slots"],
                [
                    Robj::from(s.epoch as f64),
                    Robj::from(Raw::from_bytes(&s.rng_seed)),
                    words(s.rng_stream as u128, 2),
                    words(s.rng_word_pos, 4),
                    List::from_values(slots).into(),
                ],
            )
        })
    })
}

/// Continue from a state of `eg_trainer_state` (the trainer was made with the saved
/// weights); the trainer is unchanged when `state` does not fit it.
#[extendr]
pub fn eg_trainer_restore(trainer: Robj, state: Robj) -> Robj {
    guard(|| {
        let bad = |what: &str| Error::InvalidParameter { field: "state", rule: format!("is not a trainer state ({what})") };
        let words = |x: Robj, n: usize, what: &str| -> CoreResult<u128> {
            let v = x.as_real_slice().filter(|v| v.len() == n).ok_or_else(|| bad(what))?;
            v.iter().try_fold(0u128, |acc, &w| {
                if w.is_finite() && w >= 0.0 && w <= u32::MAX as f64 && w.fract() == 0.0 {
                    Ok((acc << 32) | w as u128)
                } else {
                    Err(bad(what))
                }
            })
        };
        let seed: [u8; 32] = field(&state, "seed")?.as_raw_slice().and_then(|b| b.try_into().ok()).ok_or_else(|| bad("seed"))?;
        let epoch = field(&state, "epoch")?.as_real().filter(|e| e.is_finite() && *e >= 0.0).ok_or_else(|| bad("epoch"))? as usize;
        let floats = |x: Robj, what: &str| -> CoreResult<Vec<f32>> {
            let v = x.as_real_slice().ok_or_else(|| bad(what))?;
            from_fn(v.len(), "the optimizer's state", |j| v[j] as f32)
        };
        let slots: List = field(&state, "slots")?.try_into().map_err(|_| bad("slots"))?;
        let slots = slots
            .values()
            .map(|sl| {
                Ok(exprsgen_core::SlotState {
                    m1: floats(field(&sl, "m1")?, "m1")?,
                    m2: floats(field(&sl, "m2")?, "m2")?,
                    time: field(&sl, "time")?.as_integer().ok_or_else(|| bad("time"))?,
                })
            })
            .collect::<CoreResult<Vec<_>>>()?;
        let s = exprsgen_core::TrainerState {
            epoch,
            rng_seed: seed,
            rng_stream: words(field(&state, "stream")?, 2, "stream")? as u64,
            rng_word_pos: words(field(&state, "word_pos")?, 4, "word_pos")?,
            slots,
        };
        with_trainer(&trainer, |t| t.trainer()?.restore(&s).map(|_| Robj::from(true)))
    })
}

/// Batch jobs: SIGTERM from now on stops training as an interrupt does (see
/// interrupt::catch_sigterm); TRUE when the handler is installed.
#[extendr]
pub fn eg_catch_sigterm() -> Robj {
    guard(|| Ok(Robj::from(crate::interrupt::catch_sigterm())))
}

/// Whether a SIGTERM has arrived since `eg_catch_sigterm`.
#[extendr]
pub fn eg_sigterm_received() -> Robj {
    guard(|| Ok(Robj::from(crate::interrupt::sigterm_received())))
}

/// Per-gene minimum and maximum over the cells of `x`: `list(min, max)`.
#[extendr]
pub fn eg_minmax(x: Robj, cells_in_rows: Robj) -> Robj {
    guard(|| {
        let src = source(&x, flag(&cells_in_rows, "cells_in_rows")?, "x")?;
        let s = exprsgen_core::Scaling::fit(src)?;
        named_list(["min", "max"], [Robj::from(s.min.clone()), Robj::from(s.max.clone())])
    })
}

/// A fitted model for inference, from `model` (architecture) and `weights`, computing
/// on `threads` threads: the weights cross into Rust once.
#[extendr]
pub fn eg_model_new(model: Robj, weights: Robj, threads: Robj) -> Robj {
    guard(|| {
        let spec = model_params(&model)?.check()?;
        let w = weights_from_r(&weights)?;
        let threads = usize_of(&threads, "num.threads")?;
        let mut m = Model::new(&spec, &w, threads)?;
        m.set_interrupt(crate::interrupt::pending);
        Ok(ExternalPtr::new(m).into())
    })
}

fn with_model<R>(ptr: &Robj, f: impl FnOnce(&mut Model) -> CoreResult<R>) -> CoreResult<R> {
    handle(ptr, "model", f)
}

/// Posterior of every cell of `x` (conditions `labels`, `transform`): `list(mean,
/// log_var)`, each a cells × latent matrix.
#[extendr]
pub fn eg_model_encode(model: Robj, x: Robj, cells_in_rows: Robj, labels: Robj, transform: Robj) -> Robj {
    guard(|| {
        let src = source(&x, flag(&cells_in_rows, "cells_in_rows")?, "x")?;
        let tr = crate::convert::transform(&transform)?;
        with_model(&model, |m| {
            let data = Dataset::with_conditions(src, tr, conditions(&labels, m.spec().n_classes, "labels")?)?;
            let (mean, log_var) = m.encode(&data)?;
            let (n, l) = (data.n_cells(), m.spec().latent_dim);
            // row-major [n, l] → R column-major n × l
            let to_r = |v: Vec<f32>| {
                let mut out = zeros::<f64>(v.len(), "the latent means and log-variances for R")?;
                for i in 0..n {
                    for j in 0..l {
                        out[j * n + i] = v[i * l + j] as f64;
                    }
                }
                matrix(out, n, l)
            };
            named_list(["mean", "log_var"], [to_r(mean)?, to_r(log_var)?])
        })
    })
}

/// An n × latent R matrix as row-major f32 values, and n.
fn latent_rows(z: &Robj, latent_dim: usize) -> CoreResult<(Vec<f32>, usize)> {
    let zv = dense_view(z, true, "z")?;
    if zv.n_genes() != latent_dim {
        return Err(Error::LengthMismatch { field: "z", got: zv.n_genes(), expected: latent_dim });
    }
    let n = zv.n_cells();
    let mut rows = zeros::<f32>(n * latent_dim, "the latent codes")?;
    for i in 0..n {
        for j in 0..latent_dim {
            rows[i * latent_dim + j] = zv.get(i, j) as f32;
        }
    }
    Ok((rows, n))
}

/// Decode `z` (an n × latent matrix) of a count model, with conditions `labels`
/// (see `convert::conditions`) and natural-log library sizes `log_library`, and draw integer
/// counts (`seed` fixes the draws). Returns `list(p, i, x)`: the CSC slots of a
/// genes × n matrix.
#[extendr]
pub fn eg_model_decode_counts(model: Robj, z: Robj, labels: Robj, log_library: Robj, seed: Robj) -> Robj {
    guard(|| {
        let ll = log_library.as_real_slice().ok_or(Error::InvalidParameter { field: "library sizes", rule: "must be numeric".into() })?;
        let seed = seed
            .as_real()
            .or_else(|| seed.as_integer().map(f64::from))
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or(Error::InvalidParameter { field: "seed", rule: "must be a non-negative number".into() })?;
        with_model(&model, |m| {
            let (rows, _) = latent_rows(&z, m.spec().latent_dim)?;
            let mut out = m.decode_counts(&rows, &conditions(&labels, m.spec().n_classes, "labels")?, ll, seed as u64)?;
            let SparseCounts { p, i, .. } = &mut out;
            let (p, i) = (Robj::from(std::mem::take(p)), Robj::from(std::mem::take(i)));
            // one pass from the core's u32 counts into R's doubles, then the rare large ones
            let mut x: Robj = Doubles::from_values(out.x.iter().map(|&v| v as f64)).into();
            out.patch_large(x.as_real_slice_mut().ok_or_else(|| Error::Internal("a numeric vector for the counts".into()))?);
            named_list(["p", "i", "x"], [p, i, x])
        })
    })
}

/// Decode `z` (an n × latent matrix) of a count model into the fitted means at library
/// sizes `exp(log_library)`, with conditions `labels` (see
/// `convert::conditions`). Returns a
/// genes × n matrix (`cells_in_rows = FALSE`) or an n × genes one.
#[extendr]
pub fn eg_model_decode_means(model: Robj, z: Robj, labels: Robj, log_library: Robj, cells_in_rows: Robj) -> Robj {
    guard(|| {
        let ll = log_library.as_real_slice().ok_or(Error::InvalidParameter { field: "library sizes", rule: "must be numeric".into() })?;
        let out_rows = flag(&cells_in_rows, "cells_in_rows")?;
        with_model(&model, |m| {
            let (rows, n) = latent_rows(&z, m.spec().latent_dim)?;
            let g = m.spec().n_genes;
            let values = m.decode_means(&rows, &conditions(&labels, m.spec().n_classes, "labels")?, ll, out_rows)?;
            if out_rows {
                matrix(values, n, g)
            } else {
                matrix(values, g, n)
            }
        })
    })
}

/// Decode `z` (an n × latent matrix) with conditions `labels` (see
/// `convert::conditions`)
/// and undo the scaling. Returns an n × genes matrix (`cells_in_rows = TRUE`) or a
/// genes × n matrix.
#[extendr]
pub fn eg_model_decode(model: Robj, z: Robj, labels: Robj, min: Robj, max: Robj, cells_in_rows: Robj) -> Robj {
    guard(|| {
        let sc = scaling(&min, &max)?;
        let out_rows = flag(&cells_in_rows, "cells_in_rows")?;
        with_model(&model, |m| {
            let (rows, n) = latent_rows(&z, m.spec().latent_dim)?;
            let g = m.spec().n_genes;
            let values = m.decode(&rows, &conditions(&labels, m.spec().n_classes, "labels")?, &sc, out_rows)?;
            if out_rows {
                matrix(values, n, g)
            } else {
                matrix(values, g, n)
            }
        })
    })
}

/// Checks a compressed sparse matrix's index slot `idx` against its pointers `p`
/// (see `check_compressed`): "" when valid, else the rule broken ("pointers", "range"
/// or "order").
#[extendr]
pub fn eg_check_compressed(p: Robj, idx: Robj, n_minor: Robj) -> Robj {
    guard(|| {
        let p = p.as_integer_slice().ok_or(Error::InvalidParameter { field: "p", rule: "must be integer".into() })?;
        let idx = idx.as_integer_slice().ok_or(Error::InvalidParameter { field: "i", rule: "must be integer".into() })?;
        let n = usize_of(&n_minor, "n_minor")?;
        Ok(Robj::from(check_compressed(p, idx, n).err().unwrap_or("")))
    })
}

/// One pass over a numeric vector's values: `c(finite, counts, max)` (see `scan_values`).
#[extendr]
pub fn eg_scan_values(values: Robj) -> Robj {
    guard(|| {
        let v = values.as_real_slice().ok_or(Error::InvalidParameter { field: "values", rule: "must be double".into() })?;
        let s = scan_values(v);
        Ok(Robj::from(vec![s.finite as i32 as f64, s.counts as i32 as f64, s.max]))
    })
}

/// A dense cells x genes matrix `x` (as users hold it) as genes x cells, scanned in the
/// same pass (`transpose_scan`, on `threads` threads). Returns `list(x, scan = c(finite, counts, max),
/// library_size, min, max)`: the new matrix (with `dimnames`, a list of genes and cells), whether all values are
/// finite and all are counts, the largest value, each cell's sum and each gene's range.
#[extendr]
pub fn eg_transpose_scan(x: Robj, dimnames: Robj, threads: Robj) -> Robj {
    guard(|| {
        let values = x.as_real_slice().ok_or(Error::InvalidParameter { field: "x", rule: "must be a double matrix".into() })?;
        let dim = x.get_attrib("dim").and_then(|d| d.as_integer_slice().map(<[i32]>::to_vec));
        let (n_cells, n_genes) = match dim.as_deref() {
            Some(&[r, c]) if r >= 0 && c >= 0 => (r as usize, c as usize),
            _ => return Err(Error::InvalidParameter { field: "x", rule: "must be a matrix".into() }),
        };
        let mut out = Robj::alloc_vector(extendr_api::rtype_to_sxp(Rtype::Doubles), values.len());
        let dest = out.as_real_slice_mut().ok_or_else(|| Error::Internal("a numeric matrix for the cells".into()))?;
        let scan = transpose_scan(values, n_cells, n_genes, dest, usize_of(&threads, "num.threads")?)?;
        out.set_attrib("dim", [n_genes as i32, n_cells as i32]).map_err(|e| Error::Internal(format!("{e}")))?;
        // set here: in R, the list holding the matrix would make `dimnames<-` copy it
        if !dimnames.is_null() {
            out.set_attrib("dimnames", dimnames).map_err(|e| Error::Internal(format!("{e}")))?;
        }
        let v = scan.values;
        named_list(
            ["x", "scan", "library_size", "min", "max"],
            [
                out,
                Robj::from(vec![v.finite as i32 as f64, v.counts as i32 as f64, v.max]),
                Robj::from(scan.cell_sums),
                Robj::from(scan.gene_min),
                Robj::from(scan.gene_max),
            ],
        )
    })
}

/// A dense matrix `x` (integer or double; an integer NA becomes NaN) as the slots
/// `list(p, i, x)` of a dgCMatrix, or NULL when more than `max_share` of its values are
/// non-zero.
#[extendr]
pub fn eg_compress(x: Robj, max_share: Robj) -> Robj {
    guard(|| {
        let share = max_share
            .as_real()
            .filter(|s| (0.0..=1.0).contains(s))
            .ok_or(Error::InvalidParameter { field: "max_share", rule: "must be a number in [0, 1]".into() })?;
        let rows = x.get_attrib("dim").and_then(|d| d.as_integer_slice().map(|d| d.first().copied().unwrap_or(-1))).unwrap_or(-1);
        if rows < 0 {
            return Err(Error::InvalidParameter { field: "x", rule: "must be a matrix".into() });
        }
        let slots = if let Some(v) = x.as_integer_slice() {
            compress_columns(v.len(), rows as usize, share, |k| if v[k] == i32::MIN { f64::NAN } else { v[k] as f64 })?
        } else if let Some(v) = x.as_real_slice() {
            compress_columns(v.len(), rows as usize, share, |k| v[k])?
        } else {
            return Err(Error::InvalidParameter { field: "x", rule: "must be an integer or double matrix".into() });
        };
        match slots {
            None => Ok(Robj::from(())),
            Some((p, i, v)) => named_list(["p", "i", "x"], [Robj::from(p), Robj::from(i), Robj::from(v)]),
        }
    })
}

/// For the tests: what becomes of a failure inside `guard`. `what = "panic"` panics in
/// the core's place; `"alloc"` asks for a vector no machine can hold (4 EB) and returns
/// the `OutOfMemory` error; `"ok"` returns TRUE. Each must come back to R as a value
/// (the first two as `exprsgen_core_error`s), the R session going on.
#[extendr]
pub fn eg_panic_probe(what: Robj) -> Robj {
    guard(|| match what.as_str() {
        Some("panic") => panic!("the panic probe panicked, as asked"),
        Some("alloc") => {
            let v = zeros::<f64>(1 << 59, "the panic probe's vector")?;
            Ok(Robj::from(v.len() as f64))
        }
        Some("ok") => Ok(Robj::from(true)),
        _ => Err(Error::InvalidParameter { field: "what", rule: "must be \"panic\", \"alloc\" or \"ok\"".into() }),
    })
}

extendr_module! {
    mod exprsgen;
    fn eg_vocabulary;
    fn eg_blocks;
    fn eg_trainer_new;
    fn eg_trainer_epoch;
    fn eg_trainer_start;
    fn eg_trainer_wait;
    fn eg_trainer_snapshot;
    fn eg_trainer_rates;
    fn eg_trainer_permutation;
    fn eg_trainer_weights;
    fn eg_trainer_state;
    fn eg_trainer_restore;
    fn eg_catch_sigterm;
    fn eg_sigterm_received;
    fn eg_minmax;
    fn eg_model_new;
    fn eg_model_encode;
    fn eg_model_decode;
    fn eg_model_decode_counts;
    fn eg_model_decode_means;
    fn eg_check_compressed;
    fn eg_scan_values;
    fn eg_compress;
    fn eg_transpose_scan;
    fn eg_panic_probe;
}
