# Line coverage of R/ by the testthat tests (covr), per file and in all.
#   Rscript tools/coverage.R
# The package is built into a temporary library with the checkout's cargo target
# directory, so the Rust core is not compiled again from scratch.
source(file.path("tools", "need.R"))
need("covr")
Sys.setenv(EXPRSGEN_TARGET_DIR = normalizePath("src/rust/target", mustWork = FALSE),
           NOT_CRAN = "true")
# covr builds in the checkout: objects compiled with its gcov flags (or left by another
# build) must not be linked into a later ordinary install, nor old ones into this one
system2("sh", "cleanup")
cov <- tryCatch(covr::package_coverage(type = "tests", quiet = TRUE), finally = system2("sh", "cleanup"))
by_file <- covr::tally_coverage(cov, by = "line")
per_file <- tapply(by_file$value > 0, by_file$filename, mean)
print(round(sort(100 * per_file), 1))
cat(sprintf("coverage: %.1f %% of the lines of R/\n", covr::percent_coverage(cov, by = "line")))
