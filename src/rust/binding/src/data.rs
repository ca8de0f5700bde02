//! Data preparation from R: gene ranges, checks of sparse slots, value scans,
//! compression of blocks and the transposition of dense cells x genes matrices.

use exprsgen_core::{check_compressed, compress_columns, scan_values, transpose_scan, Error};
use extendr_api::prelude::*;

use crate::convert::*;
use crate::guard::*;

/// Per-gene minimum and maximum over the cells of `x`: `list(min, max)`.
#[extendr]
pub fn eg_minmax(x: Robj, cells_in_rows: Robj) -> Robj {
    guard(|| {
        let src = source(&x, flag(&cells_in_rows, "cells_in_rows")?, "x")?;
        let s = exprsgen_core::Scaling::fit(src)?;
        named_list(["min", "max"], [Robj::from(s.min.clone()), Robj::from(s.max.clone())])
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

extendr_module! {
    mod data;
    fn eg_minmax;
    fn eg_check_compressed;
    fn eg_scan_values;
    fn eg_compress;
    fn eg_transpose_scan;
}
