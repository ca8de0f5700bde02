# The documentation site (pkgdown): reference pages grouped by task (_pkgdown.yml), the
# vignette, the articles of vignettes/articles and NEWS, built into site/ (not
# committed). Installs pkgdown (r-cran-pkgdown) when missing; the package is installed
# into a temporary library with the checkout's cargo target directory.
#   Rscript tools/site.R          # then: Rscript tools/site-check.R
source(file.path("tools", "need.R"))
need(c("pkgdown", "HDF5Array"), c("r-cran-pkgdown", "r-bioc-hdf5array"))
Sys.setenv(EXPRSGEN_TARGET_DIR = normalizePath("src/rust/target", mustWork = FALSE), NOT_CRAN = "true")
# Offline: no look-up of the package on CRAN or Bioconductor for the home page's links;
# and downlit, which links code to the documentation of packages that are not
# installed (VAExprs) through CRAN's package list (fetched from a fixed address), gets
# an empty list: such code is left unlinked.
options(pkgdown.internet = FALSE)
utils::assignInNamespace("CRAN_urls", function() data.frame(Package = character(0), URL = character(0)),
                         "downlit")
system2("sh", "cleanup")
pkgdown::build_site(".", override = list(destination = "site"), preview = FALSE, new_process = FALSE,
                    install = TRUE)
system2("sh", "cleanup")
pages <- list.files("site", pattern = "\\.html$", recursive = TRUE)
cat(sprintf("site: %d pages in %s\n", length(pages), normalizePath("site")))
