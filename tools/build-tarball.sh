#!/usr/bin/env bash
# A source tarball that installs without a network: the committed tree with every Rust
# crate the build needs vendored (src/rust/vendor.tar.xz, from `cargo vendor` against
# Cargo.lock), built with `R CMD build` (vignette included).
#
#   bash tools/build-tarball.sh [OUTDIR]     # writes OUTDIR/exprsgen_<version>.tar.gz
#
# configure extracts the crates and builds with `cargo --offline` and a cargo home of
# its own. Needs cargo (and, to vendor, crates.io once) here; the tarball's install
# needs only cargo and rustc.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:$HOME/.cargo/bin"
out="$(mkdir -p "${1:-.}" && cd "${1:-.}" && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive --format=tar HEAD | (mkdir -p "$work/exprsgen" && tar -x -C "$work/exprsgen")
(
  cd "$work/exprsgen/src/rust"
  echo "build-tarball: vendoring the crates of Cargo.lock"
  cargo vendor --locked --versioned-dirs --quiet vendor > /dev/null
  # the crates' own test data and docs are not needed to build them; cargo checks
  # the files it reads against the crates' checksums, so those are kept as they are
  tar -cJf vendor.tar.xz vendor
  rm -rf vendor
  echo "build-tarball: vendor.tar.xz $(du -h vendor.tar.xz | cut -f1)"
)
echo "build-tarball: R CMD build"
(cd "$work" && R CMD build exprsgen > build.log 2>&1) || { tail -n 40 "$work/build.log"; exit 1; }
tarball=$(ls "$work"/exprsgen_*.tar.gz)
cp "$tarball" "$out/"
echo "build-tarball: $out/$(basename "$tarball") ($(du -h "$tarball" | cut -f1))"
