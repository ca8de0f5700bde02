//! Training from R: a trainer handle with its data, one pass per call (in memory, or a
//! block of on-disk cells on a thread of its own), rates, snapshots, weights, and the
//! state a checkpoint saves and a resumed fit restores.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use exprsgen_core::buffers::from_fn;
use exprsgen_core::{Dataset, Error, Pass, Source, Trainer, Transform};
use extendr_api::prelude::*;

use crate::convert::*;
use crate::guard::*;

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

extendr_module! {
    mod trainer;
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
}
