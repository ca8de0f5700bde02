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

/// Called once by `R_init_exprsgen` (src/entrypoint.c) when R loads the library.
///
/// extendr keeps every `Robj` alive through one preserved R list that it allocates
/// lazily, at the first object it protects. That first object is often a vector
/// just allocated and not yet protected (the first `strings()` of `eg_vocabulary`),
/// and the list's allocation (800 kB) may run R's garbage collector, which then frees
/// it: R later hands its memory to another object while our code and R's caches
/// still point to it (seen as `.vocabulary()$likelihoods$name` turning into another
/// vector in long knitr sessions). Protecting `NULL` here allocates that list while
/// nothing of ours is unprotected.
#[no_mangle]
pub extern "C" fn exprsgen_init_protection() {
    // `NULL` needs no protection of its own; dropping it unprotects it again.
    let _ = std::panic::catch_unwind(|| drop(Robj::from(())));
}

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
