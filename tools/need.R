# need(): installs the Debian packages of the R packages a tool script needs, when
# they are missing (R and its packages come from Debian here: r-cran-NAME, r-bioc-NAME;
# no CRAN). Sourced by tools/coverage.R and tools/lint.R.
need <- function(packages, debian = paste0("r-cran-", tolower(packages))) {
    missing <- !vapply(packages, requireNamespace, logical(1), quietly = TRUE)
    if (!any(missing)) return(invisible())
    sudo <- if (Sys.info()[["user"]] == "root") character(0) else "sudo"
    cmd <- c(sudo, "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y", "-qq",
             "--no-install-recommends", debian[missing])
    message("installing ", paste(debian[missing], collapse = ", "))
    status <- system2(cmd[1], cmd[-1], stdout = FALSE)
    if (status != 0 || !all(vapply(packages[missing], requireNamespace, logical(1), quietly = TRUE))) {
        stop("could not install ", paste(debian[missing], collapse = ", "), " (apt-get update first?)", call. = FALSE)
    }
    invisible()
}
