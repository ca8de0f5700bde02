//! Batch jobs: SIGTERM read as an interrupt (see interrupt::catch_sigterm).

use extendr_api::prelude::*;

use crate::guard::*;

/// Batch jobs: SIGTERM from now on stops training as an interrupt does (see
/// interrupt::catch_sigterm); TRUE when the handler is installed.
#[extendr]
pub fn eg_catch_sigterm() -> Robj {
    guard(|| Ok(Robj::from(crate::interrupt::catch_sigterm())))
}

/// Whether a SIGTERM has arrived since `eg_catch_sigterm`.
#[extendr]
pub fn eg_sigterm_received() -> Robj {
    guard(|| Ok(Robj::from(crate::interrupt::sigterm_received())))
}

extendr_module! {
    mod signals;
    fn eg_catch_sigterm;
    fn eg_sigterm_received;
}
