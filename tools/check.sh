#!/usr/bin/env bash
# R CMD check --as-cran on the source tarball of tools/build-tarball.sh (vendored crates,
# so the check's install builds offline), with tests, examples and the vignette.
#
#   bash tools/check.sh [TARBALL]     # default: build one from the committed HEAD
#   bash tools/check.sh --bioc        # BiocCheck instead, on the tarball Bioconductor gets
#
# --bioc: BiocCheck::BiocCheck() on a tarball of the committed HEAD without the vendored
# crates (Bioconductor's builders have a network; the offline tarball, 12 MB, is over
# its 5 MB limit and stays for air-gapped installs). Offline: BiocManager reads the
# release table from tools/bioc-config.yaml (BIOCONDUCTOR_CONFIG_FILE), and the checks
# that need Bioconductor's or CRAN's servers are switched off (no-check-deprecated,
# no-check-CRAN, no-check-bioc-help). Installs BiocCheck (r-bioc-bioccheck) if missing.
# Ends with one line "BiocCheck: N errors, N warnings, N notes"; exits non-zero on
# any error or warning.
#
# Run offline: the CRAN incoming checks that ask CRAN's servers and the check of file
# times against a time server are switched off, and the PDF manual is not built (no
# LaTeX on these machines: --no-manual). Installs checkbashisms and qpdf if missing. Prints the check's summary and exits non-zero on
# any ERROR or WARNING.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh >/dev/null
# the check's own tools: checkbashisms (configure, cleanup) and qpdf (PDF sizes)
if ! command -v checkbashisms >/dev/null || ! command -v qpdf >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends devscripts qpdf >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ "${1:-}" = "--bioc" ]; then
  if ! Rscript -e 'quit(status = !requireNamespace("BiocCheck", quietly = TRUE))' 2>/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends r-bioc-bioccheck >/dev/null
  fi
  git archive --format=tar HEAD | (mkdir -p "$work/exprsgen" && tar -x -C "$work/exprsgen")
  (cd "$work" && R CMD build exprsgen > build.log 2>&1) || { tail -n 40 "$work/build.log"; exit 1; }
  tarball=$(ls "$work"/exprsgen_*.tar.gz)
  echo "check: $(basename "$tarball") without vendored crates ($(du -h "$tarball" | cut -f1))"
  # BiocCheck installs the package: the checkout's cargo target directory keeps that
  # build incremental
  export BIOCONDUCTOR_CONFIG_FILE="$PWD/tools/bioc-config.yaml" EXPRSGEN_TARGET_DIR="$PWD/src/rust/target"
  cd "$work"
  Rscript -e '
    res <- BiocCheck::BiocCheck(commandArgs(TRUE)[1], `no-check-deprecated` = TRUE, `no-check-CRAN` = TRUE,
                                `no-check-bioc-help` = TRUE, `quit-with-status` = FALSE)
    n <- vapply(c("error", "warning", "note"), function(k) length(res[[k]]), integer(1))
    cat(sprintf("BiocCheck: %d errors, %d warnings, %d notes\n", n[["error"]], n[["warning"]], n[["note"]]))
    quit(status = as.integer(n[["error"]] + n[["warning"]] > 0))' "$tarball" 2>&1 | tee bioccheck.log | tail -n 60
  status=${PIPESTATUS[0]}
  cp bioccheck.log "${CHECK_LOG:-/tmp/exprsgen-bioccheck.log}"
  echo "check: full log in ${CHECK_LOG:-/tmp/exprsgen-bioccheck.log}"
  exit "$status"
fi
tarball="${1:-}"
if [ -z "$tarball" ]; then
  bash tools/build-tarball.sh "$work"
  tarball=$(ls "$work"/exprsgen_*.tar.gz)
fi
tarball="$(cd "$(dirname "$tarball")" && pwd)/$(basename "$tarball")"
cd "$work"
export _R_CHECK_CRAN_INCOMING_REMOTE_=false _R_CHECK_FUTURE_FILE_TIMESTAMPS_=false NOT_CRAN=false
status=0
R CMD check --as-cran --no-manual "$tarball" > check.log 2>&1 || status=$?
sed -n '/^Status:/,$p' check.log
grep -E "^\* .*\.\.\. (NOTE|WARNING|ERROR)" -A12 exprsgen.Rcheck/00check.log || true
cp exprsgen.Rcheck/00check.log "${CHECK_LOG:-/tmp/exprsgen-00check.log}"
echo "check: full log in ${CHECK_LOG:-/tmp/exprsgen-00check.log}"
if grep -qE "^Status:.*(ERROR|WARNING)" check.log || [ "$status" -ne 0 ]; then exit 1; fi
