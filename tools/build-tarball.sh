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
  # Cargo.lock holds crates for every platform (Windows bindings alone are hundreds of
  # MB). The crates no Linux or macOS build uses keep only their manifest (cargo reads
  # every crate of the lock file) with empty files where it names any, and a checksum
  # file that lists no files.
  keep=$(mktemp)
  for t in x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu x86_64-apple-darwin aarch64-apple-darwin; do
    cargo tree --locked -p exprsgen --target "$t" -e normal,build --prefix none --format '{p}'
  done | sed -E 's/ \(.*//; s/ v/-/' | sort -u > "$keep"
  for d in vendor/*/; do
    d=${d%/}
    grep -qx "$(basename "$d")" "$keep" && continue
    pkg=$(grep -o '"package":"[0-9a-f]*"' "$d/.cargo-checksum.json")
    paths=$(grep -E '^(path|build) *= *"' "$d/Cargo.toml" | sed -E 's/^[a-z]+ *= *"([^"]*)".*/\1/' || true)
    find "$d" -mindepth 1 -maxdepth 1 ! -name Cargo.toml -exec rm -rf {} +
    mkdir -p "$d/src" && : > "$d/src/lib.rs"
    for p in $paths; do mkdir -p "$d/$(dirname "$p")" && : > "$d/$p"; done
    printf '{"files":{},%s}' "$pkg" > "$d/.cargo-checksum.json"
  done
  rm -f "$keep"
  tar -cf - vendor | xz -T2 -6 > vendor.tar.xz
  rm -rf vendor
  echo "build-tarball: vendor.tar.xz $(du -h vendor.tar.xz | cut -f1)"
)
echo "build-tarball: R CMD build"
(cd "$work" && R CMD build exprsgen > build.log 2>&1) || { tail -n 40 "$work/build.log"; exit 1; }
tarball=$(ls "$work"/exprsgen_*.tar.gz)
cp "$tarball" "$out/"
echo "build-tarball: $out/$(basename "$tarball") ($(du -h "$tarball" | cut -f1))"
