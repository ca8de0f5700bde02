# Line coverage of R/ by the testthat tests (covr), per file and in all.
#   Rscript tools/coverage.R
# The package is built into a temporary library with the checkout's cargo target
# directory, so the Rust core is not compiled again from scratch.
Sys.setenv(EXPRSGEN_TARGET_DIR = normalizePath("src/rust/target", mustWork = FALSE),
           NOT_CRAN = "true")
cov <- covr::package_coverage(type = "tests", quiet = TRUE)
by_file <- covr::tally_coverage(cov, by = "line")
per_file <- tapply(by_file$value > 0, by_file$filename, mean)
print(round(sort(100 * per_file), 1))
cat(sprintf("coverage: %.1f %% of the lines of R/\n", covr::percent_coverage(cov, by = "line")))
