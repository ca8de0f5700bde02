use super::view::TILE_CELLS;
use super::*;
use crate::error::Error;

// A 3-cell × 2-gene matrix in both layouts.
const CELLS_IN_ROWS: [f64; 6] = [1.0, 2.0, 3.0, 5.0, 5.0, 5.0];
const CELLS_IN_COLS: [f64; 6] = [1.0, 5.0, 2.0, 5.0, 3.0, 5.0];

#[test]
fn layouts_agree_and_constant_genes_scale_to_zero() {
    let a = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
    let b = DenseView::new(&CELLS_IN_COLS, 3, 2, Layout::CellsInColumns).unwrap();
    let sa = Scaling::fit(a).unwrap();
    assert_eq!(sa, Scaling::fit(b).unwrap());
    assert_eq!(sa.min, vec![1.0, 5.0]);
    assert_eq!(sa.max, vec![3.0, 5.0]);
    let t = Transform::MinMax(sa.clone());
    let (da, db) = (Dataset::new(a, t.clone(), None, 0).unwrap(), Dataset::new(b, t, None, 0).unwrap());
    let (mut oa, mut ob) = (Batch::default(), Batch::default());
    da.gather(&[2, 0, 1], &mut oa).unwrap();
    db.gather(&[2, 0, 1], &mut ob).unwrap();
    assert_eq!(oa.input, ob.input);
    assert_eq!(oa.input, vec![1.0, 0.0, 0.0, 0.0, 0.5, 0.0]);
    assert!((sa.invert(0, 0.5) - 2.0).abs() < 1e-12);
}

#[test]
fn gather_appends_one_hot_labels() {
    let a = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
    let s = Scaling::fit(a).unwrap();
    let labels = [1u32, 0, 1];
    let d = Dataset::new(a, Transform::MinMax(s), Some(labels.to_vec()), 2).unwrap();
    let mut out = Batch::default();
    d.gather(&[0, 1], &mut out).unwrap();
    assert_eq!(out.input, vec![0.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 0.0]);
    assert_eq!(d.conditions(&[1, 2]).unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
}

#[test]
fn rejects_non_finite_and_bad_labels() {
    let mut v = CELLS_IN_ROWS;
    v[1] = f64::NAN;
    let a = DenseView::new(&v, 3, 2, Layout::CellsInRows).unwrap();
    assert_eq!(Scaling::fit(a), Err(Error::NonFinite { field: "x" }));
    let s = Scaling::new(vec![0.0, 0.0], vec![1.0, 1.0]).unwrap();
    let d = Dataset::new(a, Transform::MinMax(s.clone()), None, 0).unwrap();
    assert!(d.gather(&[1], &mut Batch::default()).is_err());
    assert!(d.gather(&[0], &mut Batch::default()).is_ok());
    let ok = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
    let t = Transform::MinMax(s);
    assert!(Dataset::new(ok, t.clone(), Some(vec![0, 1, 2]), 2).is_err());
    assert!(Dataset::new(ok, t.clone(), Some(vec![0, 1]), 2).is_err());
    assert!(Dataset::new(ok, t, None, 2).is_err());
    assert!(DenseView::new(&CELLS_IN_ROWS, 2, 2, Layout::CellsInRows).is_err());
}

// The 2 x 3 genes x cells matrix [[0, 2, 0], [5, 0, 1]] as CSC and dense.
const P: [i32; 4] = [0, 1, 2, 3];
const I: [i32; 3] = [1, 0, 1];
const X: [f64; 3] = [5.0, 2.0, 1.0];
const DENSE: [f64; 6] = [0.0, 5.0, 2.0, 0.0, 0.0, 1.0];

#[test]
fn sparse_gathers_like_dense() {
    let sp = CscView::new(&P, &I, &X, 2).unwrap();
    let de = DenseView::new(&DENSE, 3, 2, Layout::CellsInColumns).unwrap();
    let (ss, sd) = (Scaling::fit(sp).unwrap(), Scaling::fit(de).unwrap());
    assert_eq!(ss, sd);
    let labels = [0u32, 1, 1];
    for t in [Transform::MinMax(ss), Transform::Counts { target_sum: 10.0 }] {
        let a = Dataset::new(sp, t.clone(), Some(labels.to_vec()), 2).unwrap();
        let b = Dataset::new(de, t, Some(labels.to_vec()), 2).unwrap();
        let (mut ba, mut bb) = (Batch::default(), Batch::default());
        a.gather(&[2, 0, 1], &mut ba).unwrap();
        b.gather(&[2, 0, 1], &mut bb).unwrap();
        assert_eq!(ba.input, bb.input);
        assert_eq!(ba.counts, bb.counts);
        assert_eq!(ba.log_library, bb.log_library);
    }
    let d = Dataset::new(sp, Transform::Counts { target_sum: 10.0 }, None, 0).unwrap();
    let mut b = Batch::default();
    d.gather(&[1], &mut b).unwrap();
    assert_eq!(b.counts, vec![2.0, 0.0]);
    assert_eq!(b.input, vec![(2.0f32 * 10.0 / 2.0).ln_1p(), 0.0]);
    assert_eq!(b.log_library, vec![2f32.ln()]);
}

#[test]
fn counts_must_be_whole_and_cells_non_empty() {
    let x = [0.5, 2.0, 1.0];
    let sp = CscView::new(&P, &I, &x, 2).unwrap();
    let d = Dataset::new(sp, Transform::Counts { target_sum: 1e4 }, None, 0).unwrap();
    assert!(d.gather(&[0], &mut Batch::default()).unwrap_err().to_string().contains("whole counts"));
    assert!(d.gather(&[1, 2], &mut Batch::default()).is_ok());
    let empty = CscView::new(&[0, 0, 1], &[0], &[3.0], 2).unwrap();
    let d = Dataset::new(empty, Transform::Counts { target_sum: 1e4 }, None, 0).unwrap();
    assert!(d.gather(&[0], &mut Batch::default()).is_err());
    // malformed slots are refused up front
    assert!(CscView::new(&[0, 2], &[0, 5], &[1.0, 1.0], 2).is_err());
    assert!(CscView::new(&[0, 2], &[0, -1], &[1.0, 1.0], 2).is_err());
    assert!(CscView::new(&[0, 2], &[0, 2], &[1.0, 1.0], 2).is_err());
    // a bad index far into a long slot (past the first block of the check)
    let n = 200_001;
    let mut idx: Vec<i32> = (0..n).map(|k| (k % 7) as i32).collect();
    let ones = vec![1.0; n];
    assert!(CscView::new(&[0, n as i32], &idx, &ones, 7).is_ok());
    idx[n - 2] = 7;
    assert!(CscView::new(&[0, n as i32], &idx, &ones, 7).is_err());
    idx[n - 2] = i32::MIN;
    assert!(CscView::new(&[0, n as i32], &idx, &ones, 7).is_err());
    assert!(CscView::new(&[1, 2], &[0], &[1.0], 2).is_err());
    assert!(CscView::new(&[0, 2, 1], &[0, 1], &[1.0, 1.0], 2).is_err());
}

#[test]
fn conditions_lay_labels_and_covariates_side_by_side() {
    let a = DenseView::new(&CELLS_IN_ROWS, 3, 2, Layout::CellsInRows).unwrap();
    let s = Scaling::fit(a).unwrap();
    let cond = Conditions::new(vec![
        Condition::Categorical { codes: vec![1, 0, 1], levels: 2 },
        Condition::Categorical { codes: vec![2, 2, 0], levels: 3 },
        Condition::Continuous { values: vec![0.5, -1.0, 2.0] },
    ])
    .unwrap();
    assert_eq!(cond.width(), 6);
    let d = Dataset::with_conditions(a, Transform::MinMax(s), cond.clone()).unwrap();
    assert_eq!(d.width(), 2 + 6);
    let mut out = Batch::default();
    d.gather(&[2, 1], &mut out).unwrap();
    // cell 2: genes (1, 0), label 1 of 2, label 0 of 3, covariate 2
    assert_eq!(&out.input[..8], &[1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0]);
    assert_eq!(&out.condition[6..], &[1.0, 0.0, 0.0, 0.0, 1.0, -1.0]);
    assert_eq!(cond.range(1, 2).unwrap(), d.conditions(&[1, 2]).unwrap());
    // one label alone is the one-hot of before
    let one = Conditions::labels(Some(vec![1, 0, 1]), 2).unwrap();
    assert_eq!(one.rows(&[0, 1]).unwrap(), vec![0.0, 1.0, 1.0, 0.0]);
    // columns of different lengths, codes outside their levels, non-finite covariates
    let bad = |c: Vec<Condition>| Conditions::new(c).is_err();
    assert!(bad(vec![Condition::Categorical { codes: vec![0, 1], levels: 2 }, Condition::Continuous { values: vec![1.0] }]));
    assert!(bad(vec![Condition::Categorical { codes: vec![0, 3], levels: 3 }]));
    assert!(bad(vec![Condition::Categorical { codes: vec![], levels: 0 }]));
    assert!(bad(vec![Condition::Continuous { values: vec![f32::NAN] }]));
    // conditions for another number of cells than the data's
    let short = Conditions::labels(Some(vec![0, 1]), 2).unwrap();
    assert!(Dataset::with_conditions(a, Transform::Counts { target_sum: 1.0 }, short).is_err());
}

#[test]
fn compressed_slots_are_checked_for_range_and_order() {
    // columns [0, 2] and [1]; 3 rows
    assert_eq!(check_compressed(&[0, 2, 3], &[0, 2, 1], 3), Ok(()));
    assert_eq!(check_compressed(&[0, 2, 3], &[2, 0, 1], 3), Err("order"));
    assert_eq!(check_compressed(&[0, 2, 3], &[1, 1, 1], 3), Err("order"));
    assert_eq!(check_compressed(&[0, 2, 3], &[0, 3, 1], 3), Err("range"));
    assert_eq!(check_compressed(&[0, 2, 3], &[0, i32::MIN, 1], 3), Err("range"));
    assert_eq!(check_compressed(&[0, 3, 2], &[0, 1, 2], 3), Err("pointers"));
    assert_eq!(check_compressed(&[0, 2, 4], &[0, 1, 2], 3), Err("pointers"));
    // an index repeated across columns is fine
    assert_eq!(check_compressed(&[0, 1, 2], &[1, 1], 3), Ok(()));
}

#[test]
fn one_scan_finds_non_finite_values_non_counts_and_the_largest() {
    let s = scan_values(&[0.0, 3.0, 7.0]);
    assert!(s.finite && s.counts && s.max == 7.0);
    let s = scan_values(&[0.0, 2.5, 1.0]);
    assert!(s.finite && !s.counts && s.max == 2.5);
    assert!(!scan_values(&[1.0, -1.0]).counts);
    let s = scan_values(&[1.0, f64::NAN, 2.0]);
    assert!(!s.finite && !s.counts);
    assert!(!scan_values(&[f64::INFINITY]).finite);
    assert_eq!(scan_values(&[]).max, f64::NEG_INFINITY);
}

#[test]
fn counts_are_told_from_fractions_at_every_size() {
    for v in [0.0, 1.0, 2.0, 1e6, 4_503_599_627_370_495.0, 4_503_599_627_370_496.0, 1e300] {
        assert!(scan_values(&[v]).counts, "{v}");
    }
    for v in [0.5, 1.0 + f64::EPSILON, 4_503_599_627_370_495.5, 1e-300, -1.0, -0.5] {
        assert!(!scan_values(&[v]).counts, "{v}");
    }
}

#[test]
fn transpose_scan_is_t_colsums_and_the_checks_in_one_pass() {
    // sizes that are not multiples of the tile
    let (n, g) = (150, 70);
    let x: Vec<f64> = (0..n * g).map(|k| ((k * 7919) % 13) as f64).collect();
    let mut out = vec![0.0; n * g];
    let s = transpose_scan(&x, n, g, &mut out, 1).unwrap();
    for c in 0..n {
        for j in 0..g {
            assert_eq!(out[c * g + j], x[j * n + c]);
        }
        let sum: f64 = (0..g).map(|j| x[j * n + c]).sum();
        assert_eq!(s.cell_sums[c], sum);
    }
    for j in 0..g {
        let col = &x[j * n..(j + 1) * n];
        assert_eq!(s.gene_min[j], col.iter().cloned().fold(f64::INFINITY, f64::min));
        assert_eq!(s.gene_max[j], col.iter().cloned().fold(f64::NEG_INFINITY, f64::max));
    }
    assert_eq!(s.values, scan_values(&x));
    // the same on several threads, with cells beyond one tile each
    let (n2, g2) = (2 * TILE_CELLS + 37, 5);
    let x2: Vec<f64> = (0..n2 * g2).map(|k| ((k * 31) % 11) as f64 - 0.5 * (k == 4000) as u8 as f64).collect();
    let mut o1 = vec![0.0; n2 * g2];
    let mut o3 = vec![0.0; n2 * g2];
    let s1 = transpose_scan(&x2, n2, g2, &mut o1, 1).unwrap();
    assert_eq!(s1, transpose_scan(&x2, n2, g2, &mut o3, 3).unwrap());
    assert_eq!(o1, o3);
    assert!(s1.values.finite && !s1.values.counts);
    let mut y = x.clone();
    y[777] = 0.5;
    assert_eq!(transpose_scan(&y, n, g, &mut out, 2).unwrap().values, scan_values(&y));
    y[778] = f64::NAN;
    let v = transpose_scan(&y, n, g, &mut out, 2).unwrap().values;
    assert!(!v.finite && !v.counts);
    assert!(transpose_scan(&x, n, g, &mut out[1..], 1).is_err());
}

#[test]
fn dense_columns_compress_to_csc_unless_mostly_non_zero() {
    // 3 rows x 3 columns, column-major
    let v = [0.0, 2.0, 0.0, 0.0, 0.0, 0.0, f64::NAN, 0.0, 5.0];
    let (p, i, x) = compress_columns(9, 3, 0.5, |k| v[k]).unwrap().unwrap();
    assert_eq!(p, vec![0, 1, 1, 3]);
    assert_eq!(i, vec![1, 0, 2]);
    assert!(x[0] == 2.0 && x[1].is_nan() && x[2] == 5.0);
    assert!(compress_columns(9, 3, 0.3, |k| v[k]).unwrap().is_none());
    assert!(compress_columns(8, 3, 0.5, |k| v[k]).is_err());
}
