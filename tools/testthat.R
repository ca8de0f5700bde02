# Runs tests/testthat against the installed exprsgen; exits non-zero on any failure
# and ends with a "N passed, N failed" line.
suppressMessages(library(testthat))
# the project's own runs are not CRAN's: the slower tests (real SIGINTs to child
# processes) run too, as under devtools::test()
if (!nzchar(Sys.getenv("NOT_CRAN"))) Sys.setenv(NOT_CRAN = "true")
res <- as.data.frame(test_dir("tests/testthat", package = "exprsgen", load_package = "installed",
                              reporter = ProgressReporter$new(show_praise = FALSE),
                              stop_on_failure = FALSE))
failed <- sum(res$failed) + sum(res$error)
cat(sprintf("testthat: %d passed, %d failed, %d skipped\n",
            sum(res$passed), failed, sum(res$skipped)))
if (failed > 0 || nrow(res) == 0) quit(status = 1)
