#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks (R 4.2 and the Debian r-cran-*/r-bioc-*
# packages exprsgen needs), then builds and installs exprsgen from this checkout.
# Idempotent: packages already present are not reinstalled, and the Rust build is
# incremental (cargo's target directory src/rust/target is kept between runs;
# EXPRSGEN_TARGET_DIR overrides it). Needs the Rust toolchain (cargo, rustc >= 1.92).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(
  r-base-dev pandoc
  r-cran-cli r-cran-rlang r-cran-ggplot2 r-cran-mclust r-cran-matrix
  r-bioc-singlecellexperiment r-bioc-summarizedexperiment r-bioc-s4vectors
  r-bioc-scater r-bioc-scuttle r-bioc-delayedarray r-bioc-hdf5array
  r-cran-testthat r-cran-processx r-cran-knitr r-cran-rmarkdown r-bioc-biocstyle
  r-cran-rtsne r-cran-uwot
  r-cran-ranger r-cran-irlba r-cran-patchwork r-bioc-biocneighbors r-cran-withr
  r-cran-seuratobject r-cran-seurat
)

missing=()
for p in "${DEBS[@]}"; do
  if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != "install ok installed" ]; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="$PATH:$HOME/.cargo/bin"
if ! command -v cargo >/dev/null; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi

echo "setup: building and installing exprsgen"
start=$(date +%s)
R CMD INSTALL --no-docs --no-multiarch . > "${TMPDIR:-/tmp}/exprsgen-install.log" 2>&1 || {
  tail -n 60 "${TMPDIR:-/tmp}/exprsgen-install.log" >&2
  echo "setup: R CMD INSTALL failed (full log: ${TMPDIR:-/tmp}/exprsgen-install.log)" >&2
  exit 1
}
echo "setup: exprsgen installed in $(( $(date +%s) - start )) s"
