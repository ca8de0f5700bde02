#!/usr/bin/env bash
# All tests: set up, then the core crate's cargo tests and the package's testthat tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
export PATH="$PATH:$HOME/.cargo/bin"
R_HOME="$(R RHOME)"
export R_HOME
echo "== cargo test (exprsgen-core)"
cargo test --release --locked -p exprsgen-core --manifest-path src/rust/Cargo.toml \
  --target-dir "${EXPRSGEN_TARGET_DIR:-$PWD/src/rust/target}"
echo "== testthat (exprsgen)"
Rscript tools/testthat.R
