//! Inference from R: a fitted model's handle, encoding cells and decoding latent codes
//! (scaled values, means, or drawn counts).

use exprsgen_core::buffers::zeros;
use exprsgen_core::{Dataset, Error, Model, SparseCounts};
use extendr_api::prelude::*;

use crate::convert::*;
use crate::guard::*;

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

extendr_module! {
    mod model;
    fn eg_model_new;
    fn eg_model_encode;
    fn eg_model_decode;
    fn eg_model_decode_counts;
    fn eg_model_decode_means;
}
