//! The functions R calls (`.Call(wrap__eg_*)`), each a guarded shim over the core.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use extendr_api::prelude::*;
use exprsgen_core::{decode, decode_counts, encode, Dataset, Error, Trainer};

use crate::convert::*;

static INIT: Once = Once::new();

/// Run `f`; turn an error or a panic into an `exprsgen_core_error` string.
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
    let out = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return value,
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
    let _ = r.set_class(["exprsgen_core_error"]);
    r
}

fn flag(x: &Robj, name: &'static str) -> CoreResult<bool> {
    x.as_bool().ok_or(Error::InvalidParameter { field: name, rule: "must be TRUE or FALSE".into() })
}

fn with_trainer<T>(ptr: &Robj, f: impl FnOnce(&mut Trainer) -> CoreResult<T>) -> CoreResult<T> {
    let mut p: ExternalPtr<Trainer> = ptr
        .try_into()
        .map_err(|_| Error::InvalidParameter { field: "trainer", rule: "is not a live exprsgen trainer".into() })?;
    let t = p
        .try_addr_mut()
        .map_err(|_| Error::InvalidParameter { field: "trainer", rule: "is no longer valid (was it saved and reloaded?)".into() })?;
    f(t)
}

/// Create a trainer: a new model from `model` (architecture) and `train` (settings),
/// or one continuing from `weights` when not NULL.
#[extendr]
pub fn eg_trainer_new(model: Robj, train: Robj, weights: Robj) -> Robj {
    guard(|| {
        let spec = model_params(&model)?.check()?;
        let train = train_params(&train)?.check()?;
        let w = if weights.is_null() { None } else { Some(weights_from_r(&weights)?) };
        let t = Trainer::new(&spec, train, w.as_deref())?;
        Ok(ExternalPtr::new(t).into())
    })
}

/// One epoch of training (`train = TRUE`) or an evaluation pass (`FALSE`) over `x`
/// (a dense matrix or a genes × cells dgCMatrix) with `transform` (see convert.rs).
/// Returns `c(loss, reconstruction, kl)`.
#[extendr]
pub fn eg_trainer_epoch(trainer: Robj, x: Robj, cells_in_rows: Robj, labels: Robj, transform: Robj, train: Robj) -> Robj {
    guard(|| {
        let src = source(&x, flag(&cells_in_rows, "cells_in_rows")?, "x")?;
        let tr = crate::convert::transform(&transform)?;
        let lab = crate::convert::labels(&labels, "labels")?;
        let train = flag(&train, "train")?;
        with_trainer(&trainer, |t| {
            let n_classes = t.n_classes()?;
            let data = Dataset::new(src, tr.as_core(), lab.as_deref(), n_classes)?;
            let st = if train { t.train_epoch(&data)? } else { t.evaluate(&data)? };
            Ok(vec![st.loss, st.reconstruction, st.kl].into())
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
            Ok(Robj::from(t.permutation(n as usize).into_iter().map(|i| i as i32 + 1).collect::<Vec<i32>>()))
        })
    })
}

/// Remember the trainer's current weights (the best so far).
#[extendr]
pub fn eg_trainer_snapshot(trainer: Robj) -> Robj {
    guard(|| with_trainer(&trainer, |t| t.snapshot().map(|_| Robj::from(true))))
}

/// The trainer's weights (`snapshot = FALSE`) or those of its last snapshot (`TRUE`;
/// NULL when there is none), as `list(layer = list(kernel, bias))`.
#[extendr]
pub fn eg_trainer_weights(trainer: Robj, snapshot: Robj) -> Robj {
    guard(|| {
        let snap = flag(&snapshot, "snapshot")?;
        with_trainer(&trainer, |t| {
            let w = if snap { t.snapshot_weights()? } else { Some(t.weights()?) };
            match w {
                Some(w) => weights_to_r(&w),
                None => Ok(Robj::from(())),
            }
        })
    })
}

/// Per-gene minimum and maximum over the cells of `x`: `list(min, max)`.
#[extendr]
pub fn eg_minmax(x: Robj, cells_in_rows: Robj) -> Robj {
    guard(|| {
        let src = source(&x, flag(&cells_in_rows, "cells_in_rows")?, "x")?;
        let s = exprsgen_core::Scaling::fit(src)?;
        List::from_names_and_values(["min", "max"], [Robj::from(s.min.clone()), Robj::from(s.max.clone())])
            .map(Robj::from)
            .map_err(|e| Error::Internal(format!("{e}")))
    })
}

/// Posterior of every cell: `list(mean, log_var)`, each a cells × latent matrix.
#[extendr]
pub fn eg_encode(model: Robj, weights: Robj, x: Robj, cells_in_rows: Robj, labels: Robj, transform: Robj) -> Robj {
    guard(|| {
        let spec = model_params(&model)?.check()?;
        let w = weights_from_r(&weights)?;
        let src = source(&x, flag(&cells_in_rows, "cells_in_rows")?, "x")?;
        let tr = crate::convert::transform(&transform)?;
        let lab = crate::convert::labels(&labels, "labels")?;
        let data = Dataset::new(src, tr.as_core(), lab.as_deref(), spec.n_classes)?;
        let (mean, log_var) = encode(&spec, &w, &data)?;
        let (n, l) = (data.n_cells(), spec.latent_dim);
        // row-major [n, l] → R column-major n × l
        let to_r = |v: Vec<f32>| {
            let mut out = vec![0.0f64; n * l];
            for i in 0..n {
                for j in 0..l {
                    out[j * n + i] = v[i * l + j] as f64;
                }
            }
            matrix(out, n, l)
        };
        List::from_names_and_values(["mean", "log_var"], [to_r(mean)?, to_r(log_var)?])
            .map(Robj::from)
            .map_err(|e| Error::Internal(format!("{e}")))
    })
}

/// An n × latent R matrix as row-major f32 values, and n.
fn latent_rows(z: &Robj, latent_dim: usize) -> CoreResult<(Vec<f32>, usize)> {
    let zv = dense_view(z, true, "z")?;
    if zv.n_genes() != latent_dim {
        return Err(Error::LengthMismatch { field: "z", got: zv.n_genes(), expected: latent_dim });
    }
    let n = zv.n_cells();
    let mut rows = vec![0.0f32; n * latent_dim];
    for i in 0..n {
        for j in 0..latent_dim {
            rows[i * latent_dim + j] = zv.get(i, j) as f32;
        }
    }
    Ok((rows, n))
}

/// Decode `z` (an n × latent matrix) of a count model, with 1-based condition codes
/// `labels` (or NULL) and natural-log library sizes `log_library`, and draw integer
/// counts (`seed` fixes the draws). Returns `list(p, i, x)`: the CSC slots of a
/// genes × n matrix.
#[extendr]
pub fn eg_decode_counts(model: Robj, weights: Robj, z: Robj, labels: Robj, log_library: Robj, seed: Robj) -> Robj {
    guard(|| {
        let spec = model_params(&model)?.check()?;
        let w = weights_from_r(&weights)?;
        let (rows, _) = latent_rows(&z, spec.latent_dim)?;
        let lab = crate::convert::labels(&labels, "labels")?;
        let ll = log_library
            .as_real_vector()
            .ok_or(Error::InvalidParameter { field: "library sizes", rule: "must be numeric".into() })?;
        let seed = seed
            .as_real()
            .or_else(|| seed.as_integer().map(f64::from))
            .filter(|s| s.is_finite() && *s >= 0.0)
            .ok_or(Error::InvalidParameter { field: "seed", rule: "must be a non-negative number".into() })?;
        let out = decode_counts(&spec, &w, &rows, lab.as_deref(), &ll, seed as u64)?;
        List::from_names_and_values(["p", "i", "x"], [Robj::from(out.p), Robj::from(out.i), Robj::from(out.x)])
            .map(Robj::from)
            .map_err(|e| Error::Internal(format!("{e}")))
    })
}

/// Decode `z` (an n × latent matrix) with 1-based condition codes `labels` (or NULL)
/// and undo the scaling. Returns an n × genes matrix (`cells_in_rows = TRUE`) or a
/// genes × n matrix.
#[extendr]
pub fn eg_decode(model: Robj, weights: Robj, z: Robj, labels: Robj, min: Robj, max: Robj, cells_in_rows: Robj) -> Robj {
    guard(|| {
        let spec = model_params(&model)?.check()?;
        let w = weights_from_r(&weights)?;
        let (rows, n) = latent_rows(&z, spec.latent_dim)?;
        let sc = scaling(&min, &max)?;
        let lab = crate::convert::labels(&labels, "labels")?;
        let out_rows = flag(&cells_in_rows, "cells_in_rows")?;
        let values = decode(&spec, &w, &rows, lab.as_deref(), &sc, out_rows)?;
        if out_rows {
            matrix(values, n, spec.n_genes)
        } else {
            matrix(values, spec.n_genes, n)
        }
    })
}

extendr_module! {
    mod exprsgen;
    fn eg_trainer_new;
    fn eg_trainer_epoch;
    fn eg_trainer_snapshot;
    fn eg_trainer_permutation;
    fn eg_trainer_weights;
    fn eg_minmax;
    fn eg_encode;
    fn eg_decode;
    fn eg_decode_counts;
}
