//! Minibatch training: a `Trainer` owns the model in training (in the fused engine or
//! the reference engine), the optimizer state and the random stream, and runs one pass
//! over a data set per call, so that the caller (R) drives the epoch loop, prints
//! progress and can stop between epochs.

use rand::seq::SliceRandom;
use rand::SeedableRng;

use crate::buffers::copied;
use crate::cpu::{numeric_team, FlushDenormals};
use crate::data::{Batch, Dataset};
use crate::error::{Error, Result};
use crate::optim::Slot;
use crate::reference;
use crate::spec::{Engine, ModelSpec, TrainSpec};
use crate::step::Fused;
use crate::team::Team;
use crate::weights::{copy_weights, initial_weights, DenseWeights};
use crate::Stream;

/// Mean loss and its parts over the cells of one pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochStats {
    /// reconstruction + regularization × KL, averaged over cells.
    pub loss: f64,
    /// The likelihood's reconstruction loss, averaged over cells.
    pub reconstruction: f64,
    /// KL divergence to the N(0, I) prior, averaged over cells.
    pub kl: f64,
}

/// One pass's statistics over the `cells` it covered; `complete` is false when it was
/// ended early.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pass {
    pub stats: EpochStats,
    pub cells: usize,
    pub complete: bool,
}

/// The optimizer's state of one parameter tensor: Adam's first moments `m1` (empty for
/// the other optimizers), the second moments or sums of squares `m2` (empty for SGD),
/// and the number of updates applied.
#[derive(Debug, Clone, PartialEq)]
pub struct SlotState {
    pub m1: Vec<f32>,
    pub m2: Vec<f32>,
    pub time: i32,
}

/// What a trainer holds besides its weights, so that training can continue exactly
/// where it stopped (a checkpoint): the passes run, the random stream's key, stream
/// and position, and the optimizer's state of each kernel and bias, in
/// `ModelSpec::blocks` order (kernel, then bias, per block).
#[derive(Debug, Clone, PartialEq)]
pub struct TrainerState {
    pub epoch: usize,
    pub rng_seed: [u8; 32],
    pub rng_stream: u64,
    pub rng_word_pos: u128,
    pub slots: Vec<SlotState>,
}

/// The model in training and its optimizer state, in one of the two engines.
enum State {
    Fused { step: Box<Fused>, snapshot: Option<Vec<DenseWeights>>, team: Team },
    Burn(Box<reference::Engine>),
}

fn burn_state() -> Error {
    Error::invalid("engine", "\"burn\" cannot save or restore its optimizer's state; use the default engine to checkpoint or resume")
}

/// Cell-weighted sums of batch losses.
#[derive(Default)]
struct Sums(f64, f64, f64);

impl Sums {
    fn add(&mut self, (value, r, k): (f64, f64, f64), cells: usize) {
        let w = cells as f64;
        self.0 += value * w;
        self.1 += r * w;
        self.2 += k * w;
    }

    fn mean(self, n: usize) -> EpochStats {
        let n = n as f64;
        EpochStats { loss: self.0 / n, reconstruction: self.1 / n, kl: self.2 / n }
    }
}

/// Owns a model in training, its optimizer state and its random stream.
pub struct Trainer {
    state: State,
    spec: TrainSpec,
    model_spec: ModelSpec,
    rng: Stream,
    epoch: usize,
    batch: Batch,
}

impl Trainer {
    /// A fresh model (weights drawn from `train.seed`) or, with `weights`, a model that
    /// continues from them.
    pub fn new(model: &ModelSpec, train: TrainSpec, weights: Option<&[DenseWeights]>) -> Result<Self> {
        let mut rng = Stream::seed_from_u64(train.seed);
        let w = match weights {
            Some(w) => copy_weights(w)?,
            None => initial_weights(model, &mut rng)?,
        };
        let state = match train.engine {
            Engine::Fused => {
                State::Fused { step: Box::new(Fused::new(model, w, train.optimizer)?), snapshot: None, team: numeric_team(train.threads)? }
            }
            Engine::Burn => State::Burn(Box::new(reference::Engine::new(model, &train, &w)?)),
        };
        Ok(Trainer { state, spec: train, model_spec: model.clone(), rng, epoch: 0, batch: Batch::default() })
    }

    /// A random order of `0..n` from the trainer's own stream (e.g. the order in which
    /// blocks of an on-disk matrix are visited), so that the seed fixes it too.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut self.rng);
        order
    }

    pub fn model_spec(&self) -> &ModelSpec {
        &self.model_spec
    }

    /// The KL weight and learning rate of the steps from now on (warm-up and
    /// learning-rate schedules); the optimizer's state is kept.
    pub fn set_rates(&mut self, regularization: f64, learning_rate: f64) -> Result<()> {
        if !(regularization.is_finite() && regularization >= 0.0) {
            return Err(Error::invalid("regularization", "must be a non-negative number"));
        }
        if !(learning_rate.is_finite() && learning_rate > 0.0) {
            return Err(Error::invalid("learning_rate", "must be a positive number"));
        }
        self.spec.regularization = regularization;
        self.spec.learning_rate = learning_rate;
        Ok(())
    }

    /// The current `(regularization, learning_rate)`.
    pub fn rates(&self) -> (f64, f64) {
        (self.spec.regularization, self.spec.learning_rate)
    }

    /// One pass over `data` in a fresh random order, one optimizer step per minibatch.
    pub fn train_epoch(&mut self, data: &Dataset) -> Result<EpochStats> {
        self.train_pass(data, &mut || false).map(|p| p.stats)
    }

    /// As [`Trainer::train_epoch`], but `stop` is asked before every minibatch after the
    /// first and ends the pass early when it returns true (a user interrupt): the
    /// weights are then those after the last complete step, and the statistics cover
    /// the cells trained on.
    pub fn train_pass(&mut self, data: &Dataset, stop: &mut dyn FnMut() -> bool) -> Result<Pass> {
        self.model_spec.check_data(data)?;
        let n = data.n_cells();
        let order = self.permutation(n);
        let bs = self.spec.batch_size.min(n).max(1);
        self.reserve(bs)?;
        let (batch, rng, spec, epoch) = (&mut self.batch, &mut self.rng, &self.spec, self.epoch);
        let check = |v: (f64, f64, f64)| if v.0.is_finite() { Ok(v) } else { Err(Error::Diverged { epoch: epoch + 1, value: v.0 }) };
        let mut sums = Sums::default();
        let mut done = 0usize;
        match &mut self.state {
            State::Fused { step, team, .. } => {
                let _flush = FlushDenormals::new();
                for cells in order.chunks(bs) {
                    if done > 0 && stop() {
                        break;
                    }
                    data.gather_with(cells, batch, Some(team))?;
                    sums.add(check(step.step(batch, spec, rng, true, team))?, cells.len());
                    done += cells.len();
                }
            }
            // (one pool call per minibatch: `stop` asks R, on this thread only)
            State::Burn(engine) => {
                for cells in order.chunks(bs) {
                    if done > 0 && stop() {
                        break;
                    }
                    engine.run(|e| -> Result<()> {
                        data.gather(cells, batch)?;
                        sums.add(check(e.train_batch(batch, spec, rng)?)?, cells.len());
                        Ok(())
                    })?;
                    done += cells.len();
                }
            }
        }
        self.epoch += 1;
        Ok(Pass { stats: sums.mean(done.max(1)), cells: done, complete: done == n })
    }

    /// The loss on `data` with the current weights, without training (sampling noise
    /// included, as for the training loss).
    pub fn evaluate(&mut self, data: &Dataset) -> Result<EpochStats> {
        self.evaluate_pass(data, &mut || false).map(|p| p.stats)
    }

    /// As [`Trainer::evaluate`], ended early when `stop` returns true (asked before
    /// every minibatch after the first; the reference engine runs its pass whole).
    pub fn evaluate_pass(&mut self, data: &Dataset, stop: &mut dyn FnMut() -> bool) -> Result<Pass> {
        self.model_spec.check_data(data)?;
        let n = data.n_cells();
        let cells: Vec<usize> = (0..n).collect();
        let bs = self.spec.batch_size.max(1);
        self.reserve(bs.min(n))?;
        let (batch, rng, spec) = (&mut self.batch, &mut self.rng, &self.spec);
        let mut sums = Sums::default();
        let mut done = 0usize;
        match &mut self.state {
            State::Fused { step, team, .. } => {
                let _flush = FlushDenormals::new();
                for chunk in cells.chunks(bs) {
                    if done > 0 && stop() {
                        break;
                    }
                    data.gather_with(chunk, batch, Some(team))?;
                    sums.add(step.step(batch, spec, rng, false, team), chunk.len());
                    done += chunk.len();
                }
            }
            State::Burn(engine) => engine.run(|e| -> Result<()> {
                let model = e.valid_model()?;
                for chunk in cells.chunks(bs) {
                    data.gather(chunk, batch)?;
                    sums.add(e.eval_batch(&model, batch, spec, rng), chunk.len());
                    done += chunk.len();
                }
                Ok(())
            })?,
        }
        Ok(Pass { stats: sums.mean(done.max(1)), cells: done, complete: done == n })
    }

    /// Room in the step's buffers for batches of up to `cells` cells (the fused
    /// engine; burn allocates its own), so that a batch too large for memory is an
    /// error before the pass rather than an abort inside it.
    fn reserve(&mut self, cells: usize) -> Result<()> {
        match &mut self.state {
            State::Fused { step, .. } => step.reserve(cells),
            State::Burn(_) => Ok(()),
        }
    }

    /// The state to continue training from (see [`TrainerState`]); the fused engine
    /// only (burn's optimizer state stays inside burn).
    pub fn state(&self) -> Result<TrainerState> {
        let step = match &self.state {
            State::Fused { step, .. } => step,
            State::Burn(_) => return Err(burn_state()),
        };
        let copy = |v: &[f32]| copied(v, "a copy of the optimizer's state");
        let slots = step
            .net
            .layers
            .iter()
            .flat_map(|l| [&l.kernel, &l.bias])
            .map(|s: &Slot| Ok(SlotState { m1: copy(&s.m1)?, m2: copy(&s.m2)?, time: s.time }))
            .collect::<Result<Vec<_>>>()?;
        Ok(TrainerState {
            epoch: self.epoch,
            rng_seed: self.rng.get_seed(),
            rng_stream: self.rng.get_stream(),
            rng_word_pos: self.rng.get_word_pos(),
            slots,
        })
    }

    /// Continue from `state` (of a trainer of the same architecture and optimizer):
    /// with the weights given to [`Trainer::new`], the next pass is the one the saved
    /// trainer would have run.
    pub fn restore(&mut self, state: &TrainerState) -> Result<()> {
        let step = match &mut self.state {
            State::Fused { step, .. } => step,
            State::Burn(_) => return Err(burn_state()),
        };
        let slots: Vec<&mut Slot> = step.net.layers.iter_mut().flat_map(|l| [&mut l.kernel, &mut l.bias]).collect();
        if slots.len() != state.slots.len() {
            return Err(Error::LengthMismatch { field: "state", got: state.slots.len(), expected: slots.len() });
        }
        // all sizes checked before anything changes
        for (slot, saved) in slots.iter().zip(&state.slots) {
            if slot.m1.len() != saved.m1.len() || slot.m2.len() != saved.m2.len() || saved.time < 0 {
                return Err(Error::invalid("state", "does not match the model's optimizer (another optimizer or architecture)"));
            }
            if saved.m1.iter().chain(&saved.m2).any(|v| !v.is_finite()) {
                return Err(Error::NonFinite { field: "state" });
            }
        }
        for (slot, saved) in slots.into_iter().zip(&state.slots) {
            slot.m1.copy_from_slice(&saved.m1);
            slot.m2.copy_from_slice(&saved.m2);
            slot.time = saved.time;
        }
        let mut rng = Stream::from_seed(state.rng_seed);
        rng.set_stream(state.rng_stream);
        rng.set_word_pos(state.rng_word_pos);
        self.rng = rng;
        self.epoch = state.epoch;
        Ok(())
    }

    /// The current weights.
    pub fn weights(&self) -> Result<Vec<DenseWeights>> {
        match &self.state {
            State::Fused { step, .. } => step.net.weights(),
            State::Burn(engine) => engine.weights(),
        }
    }

    /// Remember the current weights, e.g. as the best so far for early stopping.
    pub fn snapshot(&mut self) -> Result<()> {
        match &mut self.state {
            State::Fused { step, snapshot, .. } => {
                // the old snapshot goes first: two of them need not fit at once
                *snapshot = None;
                *snapshot = Some(step.net.weights()?);
            }
            State::Burn(engine) => engine.snapshot()?,
        }
        Ok(())
    }

    /// The weights remembered by the last `snapshot()`, if any.
    pub fn snapshot_weights(&self) -> Result<Option<Vec<DenseWeights>>> {
        match &self.state {
            State::Fused { snapshot, .. } => snapshot.as_deref().map(copy_weights).transpose(),
            State::Burn(engine) => engine.snapshot_weights(),
        }
    }
}
