//! Inference with stored weights: latent means of cells, and decoding of latent codes.

use burn::tensor::{Tensor, TensorData};

use crate::data::{one_hot, Dataset, Scaling};
use crate::error::{Error, Result};
use crate::model::{Cpu, Vae};
use crate::spec::ModelSpec;
use crate::weights::DenseWeights;

const CHUNK: usize = 1024;

fn to_vec(t: Tensor<Cpu, 2>) -> Result<Vec<f32>> {
    t.into_data().to_vec::<f32>().map_err(|e| Error::Internal(format!("{e:?}")))
}

/// Posterior q(z|x) of every cell of `data`: (`z_mean`, `z_log_var`), each row-major
/// `[cells, latent]`.
pub fn encode(spec: &ModelSpec, weights: &[DenseWeights], data: &Dataset) -> Result<(Vec<f32>, Vec<f32>)> {
    let device = Default::default();
    let model = Vae::<Cpu>::from_weights(spec, weights, &device)?;
    if data.width() != spec.input_dim() {
        return Err(Error::LengthMismatch { field: "x", got: data.width(), expected: spec.input_dim() });
    }
    let cells: Vec<usize> = (0..data.n_cells()).collect();
    let mut means = Vec::with_capacity(cells.len() * spec.latent_dim);
    let mut log_vars = Vec::with_capacity(cells.len() * spec.latent_dim);
    let mut rows = Vec::new();
    for chunk in cells.chunks(CHUNK) {
        data.gather(chunk, &mut rows)?;
        let x = Tensor::<Cpu, 2>::from_data(TensorData::new(rows.clone(), [chunk.len(), spec.input_dim()]), &device);
        let (mean, log_var) = model.encode(x);
        means.extend(to_vec(mean)?);
        log_vars.extend(to_vec(log_var)?);
    }
    Ok((means, log_vars))
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
    if scaling.n_genes() != spec.n_genes {
        return Err(Error::LengthMismatch { field: "minmax", got: scaling.n_genes(), expected: spec.n_genes });
    }
    let device = Default::default();
    let model = Vae::<Cpu>::from_weights(spec, weights, &device)?;
    let g = spec.n_genes;
    let mut out = vec![0.0f64; n * g];
    for start in (0..n).step_by(CHUNK) {
        let m = CHUNK.min(n - start);
        let zt = Tensor::<Cpu, 2>::from_data(TensorData::new(z[start * l..(start + m) * l].to_vec(), [m, l]), &device);
        let cond = labels.map(|lab| {
            let c = one_hot(lab[start..start + m].iter().copied(), m, k);
            Tensor::<Cpu, 2>::from_data(TensorData::new(c, [m, k]), &device)
        });
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
