#!/usr/bin/env bash
# Time of a clean `R CMD INSTALL` (issue 4: <= 5 minutes on this 2-core machine) and of
# an incremental rebuild after touching one Rust file, from a copy of this checkout's
# committed tree, into a temporary library with a fresh cargo target directory; and
# the installed package's size.
#
#   bash bench/install.sh          # the committed HEAD
#   bash bench/install.sh REV      # another commit, for a side-by-side comparison
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive --format=tar "${1:-HEAD}" | (mkdir -p "$work/src" && tar -x -C "$work/src")
mkdir -p "$work/lib"
export EXPRSGEN_TARGET_DIR="$work/target"
t0=$(date +%s.%N)
R CMD INSTALL --no-docs --no-multiarch -l "$work/lib" "$work/src" > "$work/clean.log" 2>&1 \
  || { tail -n 40 "$work/clean.log"; exit 1; }
t1=$(date +%s.%N)
touch "$work/src/src/rust/core/src/lib.rs"
R CMD INSTALL --no-docs --no-multiarch -l "$work/lib" "$work/src" > "$work/incr.log" 2>&1 \
  || { tail -n 40 "$work/incr.log"; exit 1; }
t2=$(date +%s.%N)
printf 'clean R CMD INSTALL (fresh cargo target):   %6.1f s wall (target <= 300 s)\n' "$(awk "BEGIN{print $t1 - $t0}")"
printf 'rebuild after touching one Rust file:       %6.1f s wall\n' "$(awk "BEGIN{print $t2 - $t1}")"
printf 'installed package (%s): %s MB\n' "$work/lib/exprsgen" "$(du -sk "$work/lib/exprsgen" | awk '{printf "%.1f", $1 / 1024}')"
printf 'cargo target directory: %s MB; %s cores; load %s\n' "$(du -sm "$work/target" | cut -f1)" "$(nproc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
