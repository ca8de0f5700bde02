//! What every `.Call` entry point shares: `guard()` (errors and panics become classed
//! strings, never an R error or an unwinding across R), flag and list helpers, the
//! handles of external pointers; and the panic probe that tests it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Once;

use exprsgen_core::buffers::zeros;
use exprsgen_core::Error;
use extendr_api::prelude::*;

use crate::convert::*;

static INIT: Once = Once::new();

/// Run `f`; turn an error or a panic into an `exprsgen_core_error` string (a user
/// interrupt into an `exprsgen_core_interrupt` one).
pub(crate) fn guard(f: impl FnOnce() -> CoreResult<Robj>) -> Robj {
    INIT.call_once(|| {
        // Panics are caught below and reported once, as an R error; the default hook
        // would also print a "thread panicked" line and a backtrace.
        std::panic::set_hook(Box::new(|_| {}));
        // matrixmultiply sizes its GEMM thread pool once per process from this variable
        // (default: all physical cores), which would ignore `num.threads`; matrix
        // products run on one thread unless the user asked otherwise.
        if std::env::var_os("MATMUL_NUM_THREADS").is_none() {
            std::env::set_var("MATMUL_NUM_THREADS", "1");
        }
    });
    let mut class = "exprsgen_core_error";
    let out = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => return value,
        Ok(Err(Error::Interrupted)) => {
            class = "exprsgen_core_interrupt";
            Error::Interrupted.to_string()
        }
        Ok(Err(e)) => e.to_string(),
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown".into());
            format!("internal error (please report): {what}")
        }
    };
    let mut r: Robj = out.into();
    let _ = r.set_class([class]);
    r
}

pub(crate) fn flag(x: &Robj, name: &'static str) -> CoreResult<bool> {
    x.as_bool().ok_or(Error::InvalidParameter { field: name, rule: "must be TRUE or FALSE".into() })
}

pub(crate) fn named_list<const N: usize>(names: [&str; N], values: [Robj; N]) -> CoreResult<Robj> {
    List::from_names_and_values(names, values).map(Robj::from).map_err(|e| Error::Internal(format!("{e}")))
}

pub(crate) fn handle<T: 'static, R>(ptr: &Robj, what: &'static str, f: impl FnOnce(&mut T) -> CoreResult<R>) -> CoreResult<R> {
    let mut p: ExternalPtr<T> =
        ptr.try_into().map_err(|_| Error::InvalidParameter { field: what, rule: format!("is not a live exprsgen {what}") })?;
    let t = p
        .try_addr_mut()
        .map_err(|_| Error::InvalidParameter { field: what, rule: "is no longer valid (was it saved and reloaded?)".into() })?;
    f(t)
}

/// For the tests: what becomes of a failure inside `guard`. `what = "panic"` panics in
/// the core's place; `"alloc"` asks for a vector no machine can hold (4 EB) and returns
/// the `OutOfMemory` error; `"ok"` returns TRUE. Each must come back to R as a value
/// (the first two as `exprsgen_core_error`s), the R session going on.
#[extendr]
pub fn eg_panic_probe(what: Robj) -> Robj {
    guard(|| match what.as_str() {
        Some("panic") => panic!("the panic probe panicked, as asked"),
        Some("alloc") => {
            let v = zeros::<f64>(1 << 59, "the panic probe's vector")?;
            Ok(Robj::from(v.len() as f64))
        }
        Some("ok") => Ok(Robj::from(true)),
        _ => Err(Error::InvalidParameter { field: "what", rule: "must be \"panic\", \"alloc\" or \"ok\"".into() }),
    })
}

extendr_module! {
    mod guard;
    fn eg_panic_probe;
}
