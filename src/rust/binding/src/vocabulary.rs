//! What R reads of the core's vocabulary: likelihoods, activations, optimizers,
//! engines, and the parameter blocks of an architecture.

use exprsgen_core::vocabulary;
use extendr_api::prelude::*;

use crate::convert::*;
use crate::guard::*;

/// What R must know about the core (see exprsgen_core::vocabulary): `list(likelihoods =
/// list(name, counts, description, heads, gene_params), activations = list(name,
/// aliases), optimizers = list(name, learning_rate), engines)`.
#[extendr]
pub fn eg_vocabulary() -> Robj {
    guard(|| {
        let v = vocabulary();
        let strings = |s: &[&str]| Robj::from(s.iter().map(|x| x.to_string()).collect::<Vec<String>>());
        let lik = &v.likelihoods;
        let likelihoods = named_list(
            ["name", "counts", "description", "heads", "gene_params"],
            [
                strings(&lik.iter().map(|l| l.name).collect::<Vec<_>>()),
                Robj::from(lik.iter().map(|l| l.counts).collect::<Vec<bool>>()),
                strings(&lik.iter().map(|l| l.description).collect::<Vec<_>>()),
                List::from_values(lik.iter().map(|l| strings(l.heads))).into(),
                List::from_values(lik.iter().map(|l| strings(l.gene_params))).into(),
            ],
        )?;
        let activations = named_list(
            ["name", "aliases"],
            [
                strings(&v.activations.iter().map(|a| a.0).collect::<Vec<_>>()),
                List::from_values(v.activations.iter().map(|a| strings(a.1))).into(),
            ],
        )?;
        let optimizers = named_list(
            ["name", "learning_rate"],
            [
                strings(&v.optimizers.iter().map(|o| o.0).collect::<Vec<_>>()),
                Robj::from(v.optimizers.iter().map(|o| o.1).collect::<Vec<f64>>()),
            ],
        )?;
        named_list(["likelihoods", "activations", "optimizers", "engines"], [likelihoods, activations, optimizers, strings(v.engines)])
    })
}

/// The parameter blocks of the architecture `model`, in weight order:
/// `list(name, role, n_in, n_out)`.
#[extendr]
pub fn eg_blocks(model: Robj) -> Robj {
    guard(|| {
        let blocks = model_params(&model)?.check()?.blocks();
        let ints = |f: fn(&exprsgen_core::BlockShape) -> usize| Robj::from(blocks.iter().map(|b| f(b) as f64).collect::<Vec<f64>>());
        named_list(
            ["name", "role", "n_in", "n_out"],
            [
                Robj::from(blocks.iter().map(|b| b.name.clone()).collect::<Vec<String>>()),
                Robj::from(blocks.iter().map(|b| b.role.name().to_string()).collect::<Vec<String>>()),
                ints(|b| b.n_in),
                ints(|b| b.n_out),
            ],
        )
    })
}

extendr_module! {
    mod vocabulary;
    fn eg_vocabulary;
    fn eg_blocks;
}
