//! Inference with stored weights: latent means of cells, and decoding of latent codes.

use burn::tensor::{Tensor, TensorData};

use burn::tensor::activation;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::counts;
use crate::data::{one_hot, Batch, Dataset, Scaling};
use crate::error::{Error, Result};
use crate::model::{Cpu, Vae};
use crate::spec::ModelSpec;
use crate::train::FlushDenormals;
use crate::weights::DenseWeights;

const CHUNK: usize = 1024;

fn to_vec(t: Tensor<Cpu, 2>) -> Result<Vec<f32>> {
    t.into_data().to_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))
}

/// Posterior q(z|x) of every cell of `data`: (`z_mean`, `z_log_var`), each row-major
/// `[cells, latent]`.
pub fn encode(spec: &ModelSpec, weights: &[DenseWeights], data: &Dataset) -> Result<(Vec<f32>, Vec<f32>)> {
    let _flush = FlushDenormals::new();
    let device = Default::default();
    let model = Vae::<Cpu>::from_weights(spec, weights, &device)?;
    if data.width() != spec.input_dim() {
        return Err(Error::LengthMismatch { field: "x", got: data.width(), expected: spec.input_dim() });
    }
    let cells: Vec<usize> = (0..data.n_cells()).collect();
    let mut means = Vec::with_capacity(cells.len() * spec.latent_dim);
    let mut log_vars = Vec::with_capacity(cells.len() * spec.latent_dim);
    let mut batch = Batch::default();
    for chunk in cells.chunks(CHUNK) {
        data.gather(chunk, &mut batch)?;
        let x = Tensor::<Cpu, 2>::from_data(TensorData::new(batch.input.clone(), [chunk.len(), spec.input_dim()]), &device);
        let (mean, log_var) = model.encode(x);
        means.extend(to_vec(mean)?);
        log_vars.extend(to_vec(log_var)?);
    }
    Ok((means, log_vars))
}

fn check_codes(spec: &ModelSpec, z: &[f32], labels: Option<&[u32]>) -> Result<usize> {
    let l = spec.latent_dim;
    if z.len() % l != 0 {
        return Err(Error::LengthMismatch { field: "z", got: z.len(), expected: (z.len() / l + 1) * l });
    }
    if z.iter().any(|v| !v.is_finite()) {
        return Err(Error::NonFinite { field: "z" });
    }
    let n = z.len() / l;
    let k = spec.n_classes;
    match labels {
        Some(lab) if lab.len() != n => return Err(Error::LengthMismatch { field: "labels", got: lab.len(), expected: n }),
        Some(lab) if lab.iter().any(|&c| c as usize >= k) => {
            return Err(Error::LabelOutOfRange { field: "labels", n_classes: k })
        }
        None if k > 0 => return Err(Error::invalid("labels", "are needed by a conditional model")),
        _ => {}
    }
    Ok(n)
}

/// Integer counts as a sparse genes × samples matrix in CSC form (R's dgCMatrix slots).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseCounts {
    pub p: Vec<i32>,
    pub i: Vec<i32>,
    pub x: Vec<f64>,
}

/// Decode latent codes of a count model and draw integer counts from the fitted
/// distribution (Poisson, NB or ZINB) with mean `library size × softmax(output)`.
/// `log_library[s]` is the natural log of sample `s`'s library size; `seed` fixes the
/// draws.
pub fn decode_counts(
    spec: &ModelSpec,
    weights: &[DenseWeights],
    z: &[f32],
    labels: Option<&[u32]>,
    log_library: &[f64],
    seed: u64,
) -> Result<SparseCounts> {
    let _flush = FlushDenormals::new();
    if !spec.likelihood.is_count() {
        return Err(Error::invalid("likelihood", "is not a count likelihood"));
    }
    let n = check_codes(spec, z, labels)?;
    if log_library.len() != n {
        return Err(Error::LengthMismatch { field: "library sizes", got: log_library.len(), expected: n });
    }
    if log_library.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("library sizes", "must be positive and finite"));
    }
    let (l, k, g) = (spec.latent_dim, spec.n_classes, spec.n_genes);
    let device = Default::default();
    let model = Vae::<Cpu>::from_weights(spec, weights, &device)?;
    let theta: Option<Vec<f64>> = model
        .log_theta()
        .map(|t| to_vec1(t).map(|v| v.into_iter().map(|x| (x as f64).exp()).collect()))
        .transpose()?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut out = SparseCounts { p: vec![0], ..Default::default() };
    for start in (0..n).step_by(CHUNK) {
        let m = CHUNK.min(n - start);
        let (zt, cond) = code_tensors(z, labels, start, m, l, k);
        let heads = model.decode_heads(zt, cond);
        let log_rho = to_vec(activation::log_softmax(heads.logits, 1))?;
        let pi = heads.dropout.map(|d| to_vec(activation::sigmoid(d))).transpose()?;
        for r in 0..m {
            let ll = log_library[start + r];
            for j in 0..g {
                let mu = (log_rho[r * g + j] as f64 + ll).exp();
                let x = counts::sample(
                    &mut rng,
                    mu,
                    theta.as_ref().map(|t| t[j]),
                    pi.as_ref().map(|p| p[r * g + j] as f64),
                );
                if x > 0.0 {
                    out.i.push(j as i32);
                    out.x.push(x);
                }
            }
            if out.x.len() > i32::MAX as usize {
                return Err(Error::invalid("num_samples", "gives more non-zero counts than a dgCMatrix holds"));
            }
            out.p.push(out.x.len() as i32);
        }
    }
    Ok(out)
}

/// Rows `start..start + m` of the latent codes `z` (`l` wide) and, for a CVAE, their
/// one-hot conditions over `k` classes, as tensors.
fn code_tensors(z: &[f32], labels: Option<&[u32]>, start: usize, m: usize, l: usize, k: usize) -> (Tensor<Cpu, 2>, Option<Tensor<Cpu, 2>>) {
    let device = Default::default();
    let zt = Tensor::<Cpu, 2>::from_data(TensorData::new(z[start * l..(start + m) * l].to_vec(), [m, l]), &device);
    let cond = labels.map(|lab| {
        let c = one_hot(lab[start..start + m].iter().copied(), m, k);
        Tensor::<Cpu, 2>::from_data(TensorData::new(c, [m, k]), &device)
    });
    (zt, cond)
}

fn to_vec1(t: Tensor<Cpu, 1>) -> Result<Vec<f32>> {
    t.into_data().to_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))
}

/// Decode latent codes `z` (row-major `[n, latent]`) with condition codes `labels`
/// (0-based, for a CVAE) and undo the scaling. Returns the values of gene `g` of
/// sample `i` at `i * genes + g` (`cells_in_rows = false`) or `g * n + i` (`true`).
pub fn decode(
    spec: &ModelSpec,
    weights: &[DenseWeights],
    z: &[f32],
    labels: Option<&[u32]>,
    scaling: &Scaling,
    cells_in_rows: bool,
) -> Result<Vec<f64>> {
    let _flush = FlushDenormals::new();
    if spec.likelihood.is_count() {
        return Err(Error::invalid("likelihood", "is a count likelihood: use decode_counts"));
    }
    let n = check_codes(spec, z, labels)?;
    let (l, k) = (spec.latent_dim, spec.n_classes);
    if scaling.n_genes() != spec.n_genes {
        return Err(Error::LengthMismatch { field: "minmax", got: scaling.n_genes(), expected: spec.n_genes });
    }
    let device = Default::default();
    let model = Vae::<Cpu>::from_weights(spec, weights, &device)?;
    let g = spec.n_genes;
    let mut out = vec![0.0f64; n * g];
    for start in (0..n).step_by(CHUNK) {
        let m = CHUNK.min(n - start);
        let (zt, cond) = code_tensors(z, labels, start, m, l, k);
        let y = to_vec(model.decode(zt, cond))?;
        for i in 0..m {
            for j in 0..g {
                let v = scaling.invert(j, y[i * g + j]);
                let idx = if cells_in_rows { j * n + start + i } else { (start + i) * g + j };
                out[idx] = v;
            }
        }
    }
    Ok(out)
}
