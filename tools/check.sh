#!/usr/bin/env bash
# R CMD check --as-cran on the source tarball of tools/build-tarball.sh (vendored crates,
# so the check's install builds offline), with tests, examples and the vignette.
#
#   bash tools/check.sh [TARBALL]     # default: build one from the committed HEAD
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
