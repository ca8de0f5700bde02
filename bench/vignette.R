# Wall time of the vignette's code, chunk by chunk (issue 4: the VAExprs vignette,
# both examples with 100 epochs each, generation and plots, in under 30 s).
#
#   Rscript bench/vignette.R [--threads N]
#
# Extracts the R code of vignettes/exprsgen.Rmd (knitr::purl), runs it chunk by chunk
# in one R session with plots going to a null device, and prints the seconds of each
# chunk, the total of the two VAExprs examples (chunks sim-* and yan-*) and the total
# of everything.
args <- commandArgs(trailingOnly = TRUE)
threads <- if (length(i <- which(args == "--threads"))) as.integer(args[i + 1]) else 1L
this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
root <- normalizePath(file.path(dirname(this), ".."))
rmd <- file.path(root, "vignettes", "exprsgen.Rmd")
script <- tempfile(fileext = ".R")
invisible(knitr::purl(rmd, output = script, documentation = 1, quiet = TRUE))
lines <- readLines(script)
starts <- grep("^## ----", lines)
labels <- sub("-+$", "", sub(",.*$", "", sub("^## -+", "", lines[starts])))
ends <- c(starts[-1] - 1L, length(lines))
grDevices::pdf(NULL)
if (threads != 1L) {
    # the vignette leaves num.threads at its default; ask fit_vae() for more
    fit_vae_orig <- exprsgen::fit_vae
    fit_vae <- function(...) fit_vae_orig(..., num.threads = threads)
}
env <- new.env(parent = globalenv())
if (threads != 1L) assign("fit_vae", fit_vae, envir = env)
times <- numeric(0)
for (k in seq_along(starts)) {
    code <- lines[starts[k]:ends[k]]
    if (labels[k] == "setup") next
    t0 <- proc.time()[["elapsed"]]
    exprs <- parse(text = code)
    for (e in exprs) {
        v <- withVisible(eval(e, env))
        if (v$visible && inherits(v$value, c("ggplot", "patchwork"))) print(v$value)
    }
    times[labels[k]] <- proc.time()[["elapsed"]] - t0
}
vaexprs <- grepl("^(sim|yan)-", names(times))
cat(sprintf("%-28s %7.2f s\n", names(times), times), sep = "")
cat(sprintf("\nVAExprs examples (sim-*, yan-*): %.1f s wall (target < 30 s)\n", sum(times[vaexprs])))
cat(sprintf("whole vignette code:              %.1f s wall\n", sum(times)))
cat(sprintf("(num.threads = %d; R %s; %s)\n", threads, getRversion(), format(Sys.time())))
