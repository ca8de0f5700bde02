# lintr over R/, tests/ and inst/scripts with the package's .lintr; exits 1 on any lint.
#   Rscript tools/lint.R
source(file.path("tools", "need.R"))
need("lintr")
lints <- lintr::lint_package()
print(lints)
cat(sprintf("lint: %d lints\n", length(lints)))
if (length(lints)) quit(status = 1)
