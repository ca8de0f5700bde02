//! R values ⇄ core types. Shape and type errors become core errors naming the argument.

use exprsgen_core::buffers::{copied, from_fn, with_capacity, zeros};
use exprsgen_core::{
    Activation, Condition, Conditions, CscView, Dataset, DenseView, DenseWeights, Error, LayerExtras, Layout, ModelParams, Norm, Scaling,
    Source, TrainParams, Transform,
};
use extendr_api::prelude::*;

pub type CoreResult<T> = std::result::Result<T, Error>;

/// Element `name` of an R list, read from memory. (Not `Robj::dollar`, which evaluates
/// R's `$`: an interrupt arriving during that evaluation would surface as an error.)
pub fn field(list: &Robj, name: &str) -> CoreResult<Robj> {
    let l: List = list.try_into().map_err(|_| Error::Internal(format!("expected a list holding '{name}'")))?;
    l.iter().find(|(n, _)| *n == name).map(|(_, v)| v).ok_or_else(|| Error::Internal(format!("missing field '{name}'")))
}

pub fn usize_of(x: &Robj, name: &'static str) -> CoreResult<usize> {
    let v = x.as_real().or_else(|| x.as_integer().map(f64::from));
    match v {
        Some(v) if v.is_finite() && v >= 0.0 && v.fract() == 0.0 => Ok(v as usize),
        _ => Err(Error::InvalidParameter { field: name, rule: "must be a non-negative whole number".into() }),
    }
}

fn usizes_of(x: &Robj, name: &'static str) -> CoreResult<Vec<usize>> {
    let v: Vec<f64> = if let Some(s) = x.as_integer_slice() {
        s.iter().map(|&i| i as f64).collect()
    } else if let Some(s) = x.as_real_slice() {
        s.to_vec()
    } else if x.is_null() {
        Vec::new()
    } else {
        return Err(Error::InvalidParameter { field: name, rule: "must be numeric".into() });
    };
    v.into_iter()
        .map(|u| {
            if u.is_finite() && u >= 0.0 && u.fract() == 0.0 {
                Ok(u as usize)
            } else {
                Err(Error::InvalidParameter { field: name, rule: "must hold whole numbers".into() })
            }
        })
        .collect()
}

fn strings_of(x: &Robj, name: &'static str) -> CoreResult<Vec<String>> {
    if x.is_null() {
        return Ok(Vec::new());
    }
    x.as_str_vector()
        .map(|v| v.into_iter().map(String::from).collect())
        .ok_or(Error::InvalidParameter { field: name, rule: "must be a character vector".into() })
}

/// `list(n_genes, n_classes, encoder_units, encoder_activation, latent_dim,
/// decoder_units, decoder_activation)`.
pub fn model_params(spec: &Robj) -> CoreResult<ModelParams> {
    let layers = |units: &str, acts: &str, name: &'static str| -> CoreResult<Vec<(usize, String)>> {
        let u = usizes_of(&field(spec, units)?, name)?;
        let a = strings_of(&field(spec, acts)?, name)?;
        if u.len() != a.len() {
            return Err(Error::LengthMismatch { field: name, got: a.len(), expected: u.len() });
        }
        Ok(u.into_iter().zip(a).collect())
    };
    Ok(ModelParams {
        n_genes: usize_of(&field(spec, "n_genes")?, "n_genes")?,
        n_classes: usize_of(&field(spec, "n_classes")?, "n_classes")?,
        encoder: layers("encoder_units", "encoder_activation", "encoder_layers")?,
        latent_dim: usize_of(&field(spec, "latent_dim")?, "latent_dim")?,
        decoder: layers("decoder_units", "decoder_activation", "decoder_layers")?,
        likelihood: field(spec, "likelihood")?
            .as_str()
            .ok_or(Error::InvalidParameter { field: "likelihood", rule: "must be a string".into() })?
            .to_string(),
        encoder_extras: extras(spec, "encoder")?,
        decoder_extras: extras(spec, "decoder")?,
        // `decoder_conditions`: 0-based `lo, hi` pairs, one per decoder layer; fits made
        // before it have none (the whole condition into the first layer)
        decoder_conditions: match field(spec, "decoder_conditions") {
            Ok(v) if !v.is_null() => {
                let r = usizes_of(&v, "decoder_conditions")?;
                if r.len() % 2 != 0 {
                    return Err(Error::InvalidParameter { field: "decoder_conditions", rule: "must hold pairs of column indices".into() });
                }
                r.chunks(2).map(|p| (p[0], p[1])).collect()
            }
            _ => Vec::new(),
        },
    })
}

/// Normalisation and dropout after each layer of the encoder or the decoder:
/// `<side>_norm` ("none", "layer" or "batch") and `<side>_dropout` (rates), one per
/// layer, and for batch normalisations `<side>_norm_momentum` and
/// `<side>_norm_epsilon` (one per layer, NA elsewhere; keras's defaults when absent), and
/// `<side>_activation_after` (an activation after the normalisation, "none" elsewhere); a
/// spec without them (fits made before) has none.
fn extras(spec: &Robj, side: &str) -> CoreResult<Vec<LayerExtras>> {
    let (norm, dropout) = (field(spec, &format!("{side}_norm")), field(spec, &format!("{side}_dropout")));
    let field_name = if side == "encoder" { "encoder_layers" } else { "decoder_layers" };
    match (norm, dropout) {
        (Ok(n), Ok(d)) if !n.is_null() && !d.is_null() => {
            let names = strings_of(&n, field_name)?;
            let rates =
                d.as_real_slice().ok_or(Error::InvalidParameter { field: field_name, rule: "has non-numeric dropout rates".into() })?;
            if names.len() != rates.len() {
                return Err(Error::LengthMismatch { field: field_name, got: rates.len(), expected: names.len() });
            }
            // batch normalisation's momentum and epsilon per layer (optional)
            let per_layer = |what: &str| -> CoreResult<Option<Vec<f64>>> {
                match field(spec, &format!("{side}_norm_{what}")) {
                    Ok(v) if !v.is_null() => {
                        let v = v.as_real_slice().ok_or(Error::InvalidParameter {
                            field: field_name,
                            rule: format!("has a non-numeric batch normalisation {what}"),
                        })?;
                        if v.len() != names.len() {
                            return Err(Error::LengthMismatch { field: field_name, got: v.len(), expected: names.len() });
                        }
                        Ok(Some(v.to_vec()))
                    }
                    _ => Ok(None),
                }
            };
            let (momentum, epsilon) = (per_layer("momentum")?, per_layer("epsilon")?);
            // an activation after the normalisation (layer_activation()), "none" elsewhere
            let after = match field(spec, &format!("{side}_activation_after")) {
                Ok(v) if !v.is_null() => {
                    let v = strings_of(&v, field_name)?;
                    if v.len() != names.len() {
                        return Err(Error::LengthMismatch { field: field_name, got: v.len(), expected: names.len() });
                    }
                    v.iter()
                        .map(|a| if a == "none" { Ok(None) } else { Activation::parse(a, field_name).map(Some) })
                        .collect::<CoreResult<Vec<_>>>()?
                }
                _ => vec![None; names.len()],
            };
            names
                .iter()
                .zip(rates)
                .enumerate()
                .map(|(i, (n, &r))| {
                    let norm = match (Norm::parse(n, field_name)?, &momentum, &epsilon) {
                        (Norm::Batch { momentum: m0, epsilon: e0 }, m, e) => {
                            let m = m.as_ref().map_or(m0, |v| v[i] as f32);
                            let e = e.as_ref().map_or(e0, |v| v[i] as f32);
                            Norm::batch(m, e, field_name)?
                        }
                        (norm, _, _) => norm,
                    };
                    Ok(LayerExtras { norm, activation: after[i], dropout: r as f32 })
                })
                .collect()
        }
        _ => Ok(Vec::new()),
    }
}

/// `list(optimizer, learning_rate (NULL = default), regularization, batch_size, seed, threads, engine)`.
pub fn train_params(train: &Robj) -> CoreResult<TrainParams> {
    let lr = field(train, "learning_rate")?;
    let regularization = field(train, "regularization")?
        .as_real()
        .ok_or(Error::InvalidParameter { field: "regularization", rule: "must be a number".into() })?;
    Ok(TrainParams {
        optimizer: field(train, "optimizer")?
            .as_str()
            .ok_or(Error::InvalidParameter { field: "optimizer", rule: "must be a string".into() })?
            .to_string(),
        learning_rate: if lr.is_null() { None } else { lr.as_real() },
        regularization,
        batch_size: usize_of(&field(train, "batch_size")?, "batch_size")?,
        seed: usize_of(&field(train, "seed")?, "seed")? as u64,
        threads: usize_of(&field(train, "threads")?, "num.threads")?,
        engine: field(train, "engine")?
            .as_str()
            .ok_or(Error::InvalidParameter { field: "engine", rule: "must be a string".into() })?
            .to_string(),
    })
}

/// The `dim` attribute of `x`, if any.
fn dims_of(x: &Robj) -> Option<Vec<usize>> {
    let d = x.get_attrib("dim")?;
    d.as_integer_slice().map(|s| s.iter().map(|&v| v.max(0) as usize).collect())
}

/// A numeric (double) R matrix viewed in place; `cells_in_rows` tells its orientation.
pub fn dense_view<'a>(x: &'a Robj, cells_in_rows: bool, name: &'static str) -> CoreResult<DenseView<'a>> {
    let values = x.as_real_slice().ok_or(Error::InvalidParameter { field: name, rule: "must be a double matrix".into() })?;
    let dims = dims_of(x).ok_or(Error::InvalidParameter { field: name, rule: "must be a matrix".into() })?;
    if dims.len() != 2 {
        return Err(Error::InvalidParameter { field: name, rule: "must be a two-dimensional matrix".into() });
    }
    let (n_cells, n_genes, layout) =
        if cells_in_rows { (dims[0], dims[1], Layout::CellsInRows) } else { (dims[1], dims[0], Layout::CellsInColumns) };
    DenseView::new(values, n_cells, n_genes, layout)
        .map_err(|_| Error::InvalidParameter { field: name, rule: "has inconsistent dimensions".into() })
}

/// A dense double matrix (see `dense_view`) or a genes × cells dgCMatrix, in place.
pub fn source<'a>(x: &'a Robj, cells_in_rows: bool, name: &'static str) -> CoreResult<Source<'a>> {
    if x.inherits("dgCMatrix") {
        if cells_in_rows {
            return Err(Error::InvalidParameter { field: name, rule: "as a dgCMatrix must have genes in rows".into() });
        }
        let slot = |s: &str| x.get_attrib(s).ok_or(Error::InvalidParameter { field: name, rule: format!("has no slot '{s}'") });
        let bad = |s: &str| Error::InvalidParameter { field: name, rule: format!("has a malformed slot '{s}'") };
        let (p, i, v, dim) = (slot("p")?, slot("i")?, slot("x")?, slot("Dim")?);
        // The slices borrow R vectors kept alive by `x`'s attributes (its slots), which
        // live as long as `x` and are not modified while borrowed (copy-on-modify).
        // SAFETY: slot `p` is an attribute of `x`, so it lives (unmoved) as long as `x`.
        let p: &'a [i32] = unsafe { std::mem::transmute::<&[i32], &'a [i32]>(p.as_integer_slice().ok_or_else(|| bad("p"))?) };
        // SAFETY: slot `i` is an attribute of `x`, so it lives (unmoved) as long as `x`.
        let i: &'a [i32] = unsafe { std::mem::transmute::<&[i32], &'a [i32]>(i.as_integer_slice().ok_or_else(|| bad("i"))?) };
        // SAFETY: slot `x` is an attribute of `x`, so it lives (unmoved) as long as `x`.
        let v: &'a [f64] = unsafe { std::mem::transmute::<&[f64], &'a [f64]>(v.as_real_slice().ok_or_else(|| bad("x"))?) };
        let dim = dim.as_integer_slice().ok_or_else(|| bad("Dim"))?;
        if dim.len() != 2 || p.len() != dim[1].max(0) as usize + 1 {
            return Err(bad("Dim"));
        }
        return Ok(CscView::new(p, i, v, dim[0].max(0) as usize)?.into());
    }
    Ok(dense_view(x, cells_in_rows, name)?.into())
}

/// `list(type = "minmax", min, max)` or `list(type = "counts", target_sum)`.
pub fn transform(t: &Robj) -> CoreResult<Transform> {
    let kind = field(t, "type")?.as_str().unwrap_or("").to_string();
    match kind.as_str() {
        "minmax" => Ok(Transform::MinMax(scaling(&field(t, "min")?, &field(t, "max")?)?)),
        "counts" => {
            let s = field(t, "target_sum")?.as_real().unwrap_or(f64::NAN);
            if !(s.is_finite() && s > 0.0) {
                return Err(Error::InvalidParameter { field: "target_sum", rule: "must be a positive number".into() });
            }
            Ok(Transform::Counts { target_sum: s })
        }
        _ => Err(Error::Internal(format!("unknown transform '{kind}'"))),
    }
}

/// A data set over an R matrix that it keeps alive: built once (slots checked once),
/// used for every epoch.
pub struct HeldData {
    // declared first, so dropped before the R object it borrows from
    pub data: Dataset<'static>,
    _x: Robj,
}

impl HeldData {
    pub fn new(x: Robj, cells_in_rows: bool, name: &'static str, transform: Transform, conditions: Conditions) -> CoreResult<Self> {
        let src = source(&x, cells_in_rows, name)?;
        // SAFETY: the views point into R vectors owned by `x`, which this struct holds
        // for as long as `data` lives: extendr keeps it protected from R's garbage
        // collector, which never moves objects, and nothing writes to it meanwhile
        // (R's copy-on-modify semantics; the trainer is private to fit_vae()).
        let src = unsafe { std::mem::transmute::<Source<'_>, Source<'static>>(src) };
        let data = Dataset::with_conditions(src, transform, conditions)?;
        Ok(HeldData { data, _x: x })
    }
}

pub fn scaling(min: &Robj, max: &Robj) -> CoreResult<Scaling> {
    let v = |x: &Robj| {
        let values = x.as_real_slice().ok_or(Error::InvalidParameter { field: "minmax", rule: "must be numeric".into() })?;
        copied(values, "the per-gene scaling")
    };
    Scaling::new(v(min)?, v(max)?)
}

/// 1-based integer codes → 0-based codes.
fn codes(x: &Robj, name: &'static str) -> CoreResult<Vec<u32>> {
    let codes = x.as_integer_slice().ok_or(Error::InvalidParameter { field: name, rule: "must be integer codes".into() })?;
    let mut out = with_capacity(codes.len(), "the labels")?;
    for &c in codes {
        if c < 1 {
            return Err(Error::LabelOutOfRange { field: name, n_classes: 0 });
        }
        out.push((c - 1) as u32);
    }
    Ok(out)
}

/// One column of conditions: a factor (a label, one-hot over its levels) or a
/// numeric vector (a covariate, as it is).
fn condition(x: &Robj, name: &'static str) -> CoreResult<Condition> {
    if x.is_factor() {
        let levels = x.get_attrib("levels").map_or(0, |l| l.len());
        return Ok(Condition::Categorical { codes: codes(x, name)?, levels });
    }
    let values = x
        .as_real_slice()
        .ok_or(Error::InvalidParameter { field: name, rule: "must hold factors (labels) or numeric vectors (covariates)".into() })?;
    let mut out = with_capacity(values.len(), "the covariates")?;
    out.extend(values.iter().map(|&v| v as f32));
    Ok(Condition::Continuous { values: out })
}

/// The conditions of cells: NULL (none), 1-based integer codes of one label over the
/// model's `width` classes, or a list of factors (labels) and numeric vectors
/// (covariates) in the model's order.
pub fn conditions(x: &Robj, width: usize, name: &'static str) -> CoreResult<Conditions> {
    if x.is_null() {
        return Ok(Conditions::none());
    }
    if let Some(list) = x.as_list() {
        let mut columns = with_capacity(list.len(), "the conditions")?;
        for (_, col) in list.iter() {
            columns.push(condition(&col, name)?);
        }
        return Conditions::new(columns);
    }
    if x.is_factor() {
        return Conditions::new(vec![condition(x, name)?]);
    }
    Conditions::labels(Some(codes(x, name)?), width)
}

/// `list(name = list(kernel = <n_in x n_out matrix>, bias = <numeric>), ...)`.
pub fn weights_from_r(w: &Robj) -> CoreResult<Vec<DenseWeights>> {
    let list: List = w.try_into().map_err(|_| Error::Weights("must be a list of layers".into()))?;
    list.iter()
        .map(|(name, layer)| {
            let kernel = field(&layer, "kernel").map_err(|_| Error::Weights(format!("layer '{name}' has no kernel")))?;
            let bias = field(&layer, "bias").map_err(|_| Error::Weights(format!("layer '{name}' has no bias")))?;
            let k = kernel.as_real_slice().ok_or_else(|| Error::Weights(format!("kernel of '{name}' is not a double matrix")))?;
            let dims = dims_of(&kernel).unwrap_or_default();
            if dims.len() != 2 {
                return Err(Error::Weights(format!("kernel of '{name}' is not a matrix")));
            }
            let (n_in, n_out) = (dims[0], dims[1]);
            if k.len() != n_in * n_out {
                return Err(Error::Weights(format!("kernel of '{name}' has {} values for {n_in} x {n_out}", k.len())));
            }
            // R is column-major; the core wants row-major [n_in, n_out].
            let mut row_major = zeros::<f32>(k.len(), "the weights")?;
            for o in 0..n_out {
                for i in 0..n_in {
                    row_major[i * n_out + o] = k[o * n_in + i] as f32;
                }
            }
            let b = bias.as_real_slice().ok_or_else(|| Error::Weights(format!("bias of '{name}' is not numeric")))?;
            let bias = from_fn(b.len(), "the weights", |j| b[j] as f32)?;
            Ok(DenseWeights { name: name.to_string(), n_in, n_out, kernel: row_major, bias })
        })
        .collect()
}

pub fn matrix(values: Vec<f64>, nrow: usize, ncol: usize) -> CoreResult<Robj> {
    let mut r: Robj = values.into();
    r.set_attrib("dim", [nrow as i32, ncol as i32]).map_err(|e| Error::Internal(format!("{e}")))?;
    Ok(r)
}

pub fn weights_to_r(w: &[DenseWeights]) -> CoreResult<Robj> {
    let names: Vec<&str> = w.iter().map(|l| l.name.as_str()).collect();
    let values = w
        .iter()
        .map(|l| {
            let mut col_major = zeros::<f64>(l.kernel.len(), "the weights for R")?;
            for i in 0..l.n_in {
                for o in 0..l.n_out {
                    col_major[o * l.n_in + i] = l.kernel[i * l.n_out + o] as f64;
                }
            }
            let kernel = matrix(col_major, l.n_in, l.n_out)?;
            let bias: Robj = from_fn(l.bias.len(), "the weights for R", |j| l.bias[j] as f64)?.into();
            List::from_names_and_values(["kernel", "bias"], [kernel, bias]).map(Robj::from).map_err(|e| Error::Internal(format!("{e}")))
        })
        .collect::<CoreResult<Vec<Robj>>>()?;
    List::from_names_and_values(names, values).map(Robj::from).map_err(|e| Error::Internal(format!("{e}")))
}
