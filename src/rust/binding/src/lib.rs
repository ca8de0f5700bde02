//! exprsgen's R binding: converts R values, calls exprsgen-core, maps errors.
//!
//! Every function returns either its value or a character scalar of class
//! `exprsgen_core_error` that the R side turns into a classed condition; nothing
//! here raises an R error or lets a panic cross into R.

mod convert;
mod functions;
mod interrupt;

// The registration table (`extendr_module!`) sits beside the functions in functions.rs.
