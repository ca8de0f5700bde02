//! Tests every registered family the same way: its gradients against finite differences
//! of its own loss, for the output layer, the heads and the per-gene parameters; and
//! what it generates. A new family is covered by being registered.

use crate::Stream;
use rand::SeedableRng;

use super::*;
use crate::team::Team;

/// A small pseudo-random stream in [0, 1).
fn stream(seed: u64) -> impl FnMut() -> f32 {
    let mut s = seed.wrapping_mul(2862933555777941757).wrapping_add(3037000493);
    move || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 40) as f32 / (1u64 << 24) as f32
    }
}

struct Case {
    n: usize,
    g: usize,
    logits: Vec<f32>,
    heads: Vec<Vec<f32>>,
    params: Vec<Vec<f32>>,
    batch: Batch,
    activation: Activation,
}

fn case(lik: &dyn Likelihood, activation: Activation, seed: u64) -> Case {
    let (n, g) = (3, 5);
    let mut u = stream(seed);
    let info = lik.info();
    let logits = (0..n * g).map(|_| 3.0 * u() - 1.5).collect();
    let heads = info.heads.iter().map(|_| (0..n * g).map(|_| 4.0 * u() - 2.0).collect()).collect();
    let params = info.gene_params.iter().map(|_| (0..g).map(|_| 2.0 * u() - 1.0).collect()).collect();
    let mut batch = Batch { n, ..Batch::default() };
    if info.counts {
        // zeros, small and large counts
        batch.counts = (0..n * g).map(|i| [0.0, 1.0, 3.0, 0.0, 25.0][i % 5] + if i % 7 == 0 { 40.0 } else { 0.0 }).collect();
        batch.log_library = (0..n).map(|r| (batch.counts[r * g..(r + 1) * g].iter().sum::<f32>() + 3.0).ln()).collect();
        batch.input = vec![0.0; n * g];
    } else {
        batch.input = (0..n * g).map(|_| u()).collect();
    }
    Case { n, g, logits, heads, params, batch, activation }
}

fn loss(lik: &dyn Likelihood, c: &Case, team: &Team, work: &mut LossWork) -> f64 {
    let out = Outputs { n: c.n, n_genes: c.g, logits: &c.logits, heads: &c.heads, activation: c.activation };
    let params: Vec<&[f32]> = c.params.iter().map(|p| p.as_slice()).collect();
    lik.loss(team, &out, &c.batch, &params, work)
}

/// Central difference of the mean loss in one value reached by `at`.
fn finite_difference(lik: &dyn Likelihood, c: &mut Case, team: &Team, at: impl Fn(&mut Case) -> &mut f32) -> f64 {
    let h = 1e-2f32;
    let x0 = *at(c);
    *at(c) = x0 + h;
    let up = loss(lik, c, team, &mut LossWork::default());
    *at(c) = x0 - h;
    let down = loss(lik, c, team, &mut LossWork::default());
    *at(c) = x0;
    (up - down) / (2.0 * h as f64)
}

fn assert_close(what: &str, analytic: f32, numeric: f64) {
    let (a, b) = (analytic as f64, numeric);
    assert!((a - b).abs() <= 2e-3 + 2e-2 * b.abs(), "{what}: gradient {a} vs finite difference {b}");
}

#[test]
fn gradients_of_every_family_match_finite_differences() {
    let team = Team::new(1, || {}).unwrap();
    for &lik in all() {
        let info = lik.info();
        // (a clamped BCE output is flat outside [1e-7, 1 - 1e-7]: linear outputs kept inside)
        let activations: &[Activation] = match (info.counts, info.name) {
            (true, _) => &[Activation::Linear],
            (false, "bce") => &[Activation::Sigmoid, Activation::Linear],
            _ => &[Activation::Sigmoid, Activation::Linear, Activation::Softplus],
        };
        for (k, &act) in activations.iter().enumerate() {
            let mut c = case(lik, act, 11 + k as u64);
            if act == Activation::Linear && info.name == "bce" {
                c.logits.iter_mut().for_each(|v| *v = 0.2 + 0.6 * (*v + 1.5) / 3.0);
            }
            let mut work = LossWork::default();
            let value = loss(lik, &c, &team, &mut work);
            assert!(value.is_finite(), "{}: loss {value}", info.name);
            let (n, g) = (c.n, c.g);
            for i in 0..n * g {
                let fd = finite_difference(lik, &mut c, &team, |c| &mut c.logits[i]);
                assert_close(&format!("{} ({act:?}) logit {i}", info.name), work.d_logits[i], fd);
                for h in 0..info.heads.len() {
                    let fd = finite_difference(lik, &mut c, &team, |c| &mut c.heads[h][i]);
                    assert_close(&format!("{} head {} {i}", info.name, info.heads[h]), work.d_heads[h][i], fd);
                }
            }
            // the column sums are the sums of the per-cell gradients
            let mut sums = vec![0.0f32; g];
            work.sum_logits.total(n, &mut sums);
            for j in 0..g {
                let direct: f32 = (0..n).map(|r| work.d_logits[r * g + j]).sum();
                assert!((sums[j] - direct).abs() < 1e-6, "{}: bias gradient", info.name);
            }
            for q in 0..info.gene_params.len() {
                work.sum_genes[q].total(n, &mut sums);
                for j in 0..g {
                    let fd = finite_difference(lik, &mut c, &team, |c| &mut c.params[q][j]);
                    assert_close(&format!("{} {} {j}", info.name, info.gene_params[q]), sums[j], fd);
                }
            }
        }
    }
}

#[test]
fn every_family_generates_values_of_its_kind() {
    let team = Team::new(1, || {}).unwrap();
    for &lik in all() {
        let info = lik.info();
        let c = case(lik, if info.counts { Activation::Linear } else { Activation::Sigmoid }, 3);
        let out = Outputs { n: c.n, n_genes: c.g, logits: &c.logits, heads: &c.heads, activation: c.activation };
        let params: Vec<&[f32]> = c.params.iter().map(|p| p.as_slice()).collect();
        let log_library = vec![(500.0f64).ln(); c.n];
        let run = |seed| {
            let mut rows = Vec::new();
            let mut rng = Stream::seed_from_u64(seed);
            lik.generate(&team, &out, &params, &log_library, &mut None, &mut rng, false, &mut |r, v| {
                rows.push((r, v.to_vec()));
                Ok(())
            })
            .unwrap();
            rows
        };
        let rows = run(1);
        assert_eq!(rows.iter().map(|r| r.0).collect::<Vec<_>>(), (0..c.n).collect::<Vec<_>>());
        assert_eq!(rows, run(1), "{}: not reproducible", info.name);
        // the means: deterministic; for count families they sum to at most the library
        // size (exactly, without zero inflation), and many draws average to them
        let mut means = Vec::new();
        lik.generate(&team, &out, &params, &log_library, &mut None, &mut Stream::seed_from_u64(0), true, &mut |_, v| {
            means.push(v.to_vec());
            Ok(())
        })
        .unwrap();
        if info.counts {
            for m in &means {
                let total: f64 = m.iter().sum();
                assert!(m.iter().all(|x| *x >= 0.0) && total <= 500.0 * (1.0 + 1e-9), "{}: {m:?}", info.name);
                if info.heads.is_empty() {
                    assert!((total - 500.0).abs() < 1e-6 * 500.0, "{}: means sum to {total}", info.name);
                }
            }
            let draws: Vec<Vec<(usize, Vec<f64>)>> = (0..4000u64).map(|s| run(100 + s)).collect();
            for r in 0..c.n {
                for j in 0..c.g {
                    let avg = draws.iter().map(|d| d[r].1[j]).sum::<f64>() / draws.len() as f64;
                    let mu = means[r][j];
                    assert!(
                        (avg - mu).abs() <= 0.1 * mu.max(1.0) + 3.0 * (mu.max(1.0) * 10.0 / draws.len() as f64).sqrt(),
                        "{}: mean {mu} but draws average {avg}",
                        info.name
                    );
                }
            }
        } else {
            assert_eq!(means, rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), "{}: mean != reconstruction", info.name);
        }
        for (_, v) in &rows {
            assert_eq!(v.len(), c.g);
            if info.counts {
                assert!(v.iter().all(|x| *x >= 0.0 && x.fract() == 0.0), "{}: {v:?}", info.name);
            } else {
                assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "{}: {v:?}", info.name);
            }
        }
        if info.counts {
            let total: f64 = rows.iter().map(|(_, v)| v.iter().sum::<f64>()).sum();
            assert!(total > 50.0, "{}: libraries of 500 gave {rows:?}", info.name);
            assert_ne!(rows, run(2), "{}: the seed does not change the draws", info.name);
        }
    }
}

#[test]
fn the_registry_is_consistent() {
    let names: Vec<_> = all().iter().map(|l| l.name()).collect();
    for (i, n) in names.iter().enumerate() {
        assert!(!names[..i].contains(n), "{n} registered twice");
        assert_eq!(by_name(n).unwrap().name(), *n);
    }
    for l in all() {
        assert!(l.info().heads.len() <= MAX_HEADS && l.info().gene_params.len() <= MAX_GENE_PARAMS);
    }
    let e = by_name("gaussian").unwrap_err().to_string();
    assert!(e.contains("'likelihood'") && e.contains("zinb"), "{e}");
}
