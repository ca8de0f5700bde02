//! Optimizers: their names and keras's default learning rates, the parameter slots that
//! hold their state, the update formulas of the fused step (burn's arithmetic), and the
//! burn optimizer each one is checked against (the reference engine).

use burn::module::AutodiffModule;
use burn::optim::adaptor::OptimizerAdaptor;
use burn::optim::{AdaGrad, AdaGradConfig, Adam, AdamConfig, GradientsParams, Optimizer, RmsProp, RmsPropConfig, Sgd, SgdConfig};
use burn::tensor::backend::AutodiffBackend;

use crate::buffers::zeros;
use crate::error::{Error, Result};
use crate::team::{SendPtr, Team, SPLIT_MIN_VALUES};

/// Optimizers, with the keras defaults for their learning rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    Adam,
    Sgd,
    RmsProp,
    AdaGrad,
}

impl OptimizerKind {
    pub const ALL: [OptimizerKind; 4] = [OptimizerKind::Adam, OptimizerKind::Sgd, OptimizerKind::RmsProp, OptimizerKind::AdaGrad];

    pub fn name(self) -> &'static str {
        match self {
            OptimizerKind::Adam => "adam",
            OptimizerKind::Sgd => "sgd",
            OptimizerKind::RmsProp => "rmsprop",
            OptimizerKind::AdaGrad => "adagrad",
        }
    }

    /// keras's default learning rate for this optimizer.
    pub fn default_learning_rate(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 0.01,
            _ => 0.001,
        }
    }

    pub fn parse(name: &str) -> Result<OptimizerKind> {
        Self::ALL.into_iter().find(|o| o.name() == name).ok_or_else(|| {
            let names: Vec<_> = Self::ALL.iter().map(|o| o.name()).collect();
            Error::invalid("optimizer", format!("'{name}' is unknown; use one of {}", names.join(", ")))
        })
    }
}

/// One parameter tensor with its gradient and optimizer state.
#[derive(Clone, Debug, Default)]
pub(crate) struct Slot {
    pub value: Vec<f32>,
    /// The gradient, where it goes through memory (biases, and kernels updated from
    /// `matrixmultiply`'s products); empty until then.
    pub grad: Vec<f32>,
    /// Adam's first moment.
    pub m1: Vec<f32>,
    /// Adam's second moment, RMSprop's square average, AdaGrad's sum of squares.
    pub m2: Vec<f32>,
    /// Number of updates applied.
    pub time: i32,
}

impl Slot {
    /// A slot without gradient buffer (allocated when first needed).
    pub fn new(value: Vec<f32>) -> Self {
        Slot { value, ..Slot::default() }
    }

    /// A slot with a zeroed gradient buffer of its size.
    pub fn with_grad(value: Vec<f32>) -> Result<Self> {
        let grad = zeros(value.len(), "the gradient")?;
        Ok(Slot { value, grad, ..Slot::default() })
    }

    /// Allocates the state `kind` keeps (zeros, as `begin_update` would at the first
    /// update), so that a model whose optimizer state does not fit in memory fails
    /// here rather than in a step.
    pub fn reserve_state(&mut self, kind: OptimizerKind) -> Result<()> {
        let n = self.value.len();
        if kind != OptimizerKind::Sgd && self.m2.len() != n {
            self.m2 = zeros(n, "the optimizer's state")?;
        }
        if kind == OptimizerKind::Adam && self.m1.len() != n {
            self.m1 = zeros(n, "Adam's first moments")?;
        }
        Ok(())
    }
}

/// The optimizer and its learning rate.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Opt {
    pub kind: OptimizerKind,
    pub lr: f32,
}

const B1: f32 = 0.9;
const B2: f32 = 0.999;
const EPS: f32 = 1e-7;
const ALPHA: f32 = 0.9;

/// Starts one update of `slot`: counts it and returns Adam's bias-correction constants
/// `[factor, epsilon]` (burn's formula: epsilon inside the correction).
pub(crate) fn begin_update(slot: &mut Slot, kind: OptimizerKind) -> [f32; 2] {
    let n = slot.value.len();
    if kind != OptimizerKind::Sgd && slot.m2.len() != n {
        slot.m2 = vec![0.0; n];
    }
    if kind == OptimizerKind::Adam && slot.m1.len() != n {
        slot.m1 = vec![0.0; n];
    }
    slot.time += 1;
    let t = slot.time;
    let bc2 = (1.0 - B2.powi(t)).sqrt();
    [bc2 / (1.0 - B1.powi(t)), EPS * bc2]
}

/// Raw views of a slot's buffers, for updating disjoint ranges from several threads.
#[derive(Clone, Copy)]
pub(crate) struct SlotPtrs {
    pub value: SendPtr,
    pub grad: SendPtr,
    pub m1: SendPtr,
    pub m2: SendPtr,
}

impl SlotPtrs {
    pub fn new(slot: &mut Slot) -> Self {
        SlotPtrs {
            value: SendPtr(slot.value.as_mut_ptr()),
            grad: SendPtr(slot.grad.as_mut_ptr()),
            m1: SendPtr(slot.m1.as_mut_ptr()),
            m2: SendPtr(slot.m2.as_mut_ptr()),
        }
    }

    /// Adam (epsilon inside the bias correction as burn writes it), SGD, RMSprop (alpha
    /// 0.9, no momentum) or AdaGrad on elements `s..s + len`, from the gradient there.
    /// The moments start at zero, so the first update needs no case of its own
    /// (0 * beta + x == x exactly, as burn's first step computes it).
    ///
    /// # Safety
    /// `s..s + len` lies inside the slot's buffers (of its optimizer) and no other
    /// thread touches it meanwhile.
    pub unsafe fn apply(self, opt: Opt, c: [f32; 2], s: usize, len: usize) {
        let g = std::slice::from_raw_parts(self.grad.get().add(s), len);
        self.apply_from::<false>(opt, c, s, g)
    }

    /// `apply` from the gradient `g` of elements `s..s + g.len()` rather than the
    /// slot's own. `INLINE`: Adam's loop is inlined, for a caller compiled for a vector
    /// instruction set (the kernels' epilogues), instead of calling the AVX2 copy; the
    /// arithmetic is the same.
    ///
    /// # Safety
    /// As `apply`.
    #[inline(always)]
    pub unsafe fn apply_from<const INLINE: bool>(self, opt: Opt, c: [f32; 2], s: usize, g: &[f32]) {
        let len = g.len();
        let p = std::slice::from_raw_parts_mut(self.value.get().add(s), len);
        let lr = opt.lr;
        match opt.kind {
            OptimizerKind::Adam => {
                let m1 = std::slice::from_raw_parts_mut(self.m1.get().add(s), len);
                let m2 = std::slice::from_raw_parts_mut(self.m2.get().add(s), len);
                if INLINE {
                    crate::simd::adam_inline(p, g, m1, m2, [B1, B2, c[0], c[1], lr]);
                } else {
                    crate::simd::adam(p, g, m1, m2, [B1, B2, c[0], c[1], lr]);
                }
            }
            OptimizerKind::Sgd => p.iter_mut().zip(g).for_each(|(p, &g)| *p -= g * lr),
            OptimizerKind::RmsProp => {
                let s2 = std::slice::from_raw_parts_mut(self.m2.get().add(s), len);
                for ((p, &g), s) in p.iter_mut().zip(g).zip(s2.iter_mut()) {
                    let v = *s * ALPHA + g * g * (1.0 - ALPHA);
                    *s = v;
                    *p -= (g / (v.sqrt() + EPS)) * lr;
                }
            }
            OptimizerKind::AdaGrad => {
                let s2 = std::slice::from_raw_parts_mut(self.m2.get().add(s), len);
                for ((p, &g), s) in p.iter_mut().zip(g).zip(s2.iter_mut()) {
                    let v = *s + g * g;
                    *s = v;
                    *p -= (g / (v.sqrt() + EPS)) * lr;
                }
            }
        }
    }
}

/// One optimizer update of a whole slot from its gradient.
pub(crate) fn update_slot(slot: &mut Slot, opt: Opt, team: &Team) {
    let c = begin_update(slot, opt.kind);
    apply_update(SlotPtrs::new(slot), slot.value.len(), opt, c, team);
}

/// The optimizer update (constants `c` from `begin_update`) of all `n` values of a
/// slot from its gradient, in contiguous chunks spread over the team.
pub(crate) fn apply_update(ptrs: SlotPtrs, n: usize, opt: Opt, c: [f32; 2], team: &Team) {
    let threads = team.threads();
    let chunk = if threads > 1 && n >= SPLIT_MIN_VALUES { n.div_ceil(2 * threads) } else { n.max(1) };
    team.run(n.div_ceil(chunk), &|k| {
        let (s, e) = (k * chunk, ((k + 1) * chunk).min(n));
        // SAFETY: chunk k owns elements s..e.
        unsafe { ptrs.apply(opt, c, s, e - s) }
    });
}

/// burn's optimizer for each kind, with keras's defaults for the constants each has:
/// what the reference engine trains with.
pub(crate) enum BurnOptimizer<M: AutodiffModule<B>, B: AutodiffBackend> {
    Adam(OptimizerAdaptor<Adam, M, B>),
    Sgd(OptimizerAdaptor<Sgd<B::InnerBackend>, M, B>),
    RmsProp(OptimizerAdaptor<RmsProp, M, B>),
    AdaGrad(OptimizerAdaptor<AdaGrad, M, B>),
}

impl<M: AutodiffModule<B>, B: AutodiffBackend> BurnOptimizer<M, B> {
    pub fn new(kind: OptimizerKind) -> Self {
        match kind {
            OptimizerKind::Adam => BurnOptimizer::Adam(AdamConfig::new().with_epsilon(EPS).init()),
            OptimizerKind::Sgd => BurnOptimizer::Sgd(SgdConfig::new().init()),
            OptimizerKind::RmsProp => {
                BurnOptimizer::RmsProp(RmsPropConfig::new().with_alpha(ALPHA).with_momentum(0.0).with_epsilon(EPS).init())
            }
            OptimizerKind::AdaGrad => BurnOptimizer::AdaGrad(AdaGradConfig::new().with_epsilon(EPS).init()),
        }
    }

    pub fn step(&mut self, lr: f64, model: M, grads: GradientsParams) -> M {
        match self {
            BurnOptimizer::Adam(o) => o.step(lr, model, grads),
            BurnOptimizer::Sgd(o) => o.step(lr, model, grads),
            BurnOptimizer::RmsProp(o) => o.step(lr, model, grads),
            BurnOptimizer::AdaGrad(o) => o.step(lr, model, grads),
        }
    }
}
