#!/usr/bin/env bash
# The main job: set up, then knit the vignette (both VAExprs examples end to end) to
# output/exprsgen.html, writing its figures as PNG files into output/figures/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh
out="$PWD/output"
mkdir -p "$out/figures"
rm -f "$out"/figures/*.png
start=$(date +%s)
EXPRSGEN_FIGURE_DIR="$out/figures" OUT_DIR="$out" Rscript -e '
  rmarkdown::render("vignettes/exprsgen.Rmd", output_dir = Sys.getenv("OUT_DIR"),
                    intermediates_dir = tempdir(), envir = new.env(), quiet = TRUE)'
echo "main: vignette knitted in $(( $(date +%s) - start )) s"
echo "main: output/exprsgen.html and $(ls "$out"/figures/*.png | wc -l) figures in output/figures/"
