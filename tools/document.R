# Regenerates NAMESPACE and man/ from the roxygen comments (development only):
#   Rscript tools/document.R
roxygen2::roxygenise(roclets = c("rd", "namespace"), load_code = roxygen2::load_source)
