//! exprsgen's R binding: converts R values, calls exprsgen-core, maps errors.
//!
//! Every function returns either its value or a character scalar of class
//! `exprsgen_core_error` that the R side turns into a classed condition; nothing
//! here raises an R error or lets a panic cross into R. One module per concept, as
//! in the core: trainer, model, data, vocabulary, signals; `guard` is what they share.

mod convert;
mod data;
mod guard;
mod interrupt;
mod model;
mod signals;
mod trainer;
mod vocabulary;

use extendr_api::prelude::*;

// Each module registers its own functions; this table gathers them.
extendr_module! {
    mod exprsgen;
    use guard;
    use vocabulary;
    use trainer;
    use model;
    use data;
    use signals;
}
