# Fit time of the count model's automatic settings (issue 22) against the settings the
# issue measured as today's defaults (200 epochs of 128-cell minibatches, latent 10,
# 128 hidden units), on the same data in one session, the two alternating.
#
#   Rscript bench/defaults.R [--threads 2] [--repeats 2] [--sets small,w3] [--tune]
#
# --tune: also fit_vae(tune = TRUE), whose cost the issue bounds at 4 automatic fits.
#
# small: 200 cells of ../shared/data/mouse_bladder (stratified), every gene detected in
#        at least 3 of them (the few-cell case the settings are chosen for);
# w3:    W3 of shared/notes/peers.md as NB counts: 20,000 cells x 2,000 genes, 5 classes.
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[max(i) + 1L]
}
threads <- as.integer(opt("threads", "2"))
repeats <- as.integer(opt("repeats", "2"))
sets <- strsplit(opt("sets", "small,w3"), ",")[[1]]
suppressMessages({library(exprsgen); library(SingleCellExperiment)})

small <- function() {
    dir <- file.path("..", "shared", "data", "mouse_bladder")
    m <- methods::as(Matrix::readMM(gzfile(file.path(dir, "counts.mtx.gz"))), "CsparseMatrix")
    dimnames(m) <- list(readLines(file.path(dir, "genes.txt")), readLines(file.path(dir, "cells.txt")))
    lab <- utils::read.delim(file.path(dir, "labels.tsv"))
    label <- factor(lab$label[match(colnames(m), lab[[1]])])
    set.seed(1)
    idx <- sort(unlist(lapply(split(seq_along(label), label), function(i) i[sample.int(length(i), max(3, round(length(i) * 200 / 2100)))])))
    m <- m[, idx]
    m <- m[Matrix::rowSums(m > 0) >= 3, ]
    SingleCellExperiment(assays = list(counts = m), colData = S4Vectors::DataFrame(label = droplevels(label[idx])))
}
w3 <- function() {
    set.seed(1)
    genes <- 2000
    n <- 20000
    prof <- matrix(stats::rgamma(genes * 5, 0.4), genes, 5)
    label <- factor(sample(paste0("t", 1:5), n, replace = TRUE))
    lib <- round(stats::rlnorm(n, log(3000), 0.4))
    mu <- sweep(prof, 2, colSums(prof), "/")[, as.integer(label)] * rep(lib, each = genes)
    x <- Matrix::Matrix(stats::rnbinom(length(mu), size = 2, mu = mu), genes, n, sparse = TRUE,
                        dimnames = list(paste0("g", 1:genes), paste0("c", 1:n)))
    SingleCellExperiment(assays = list(counts = x), colData = S4Vectors::DataFrame(label = label))
}

for (s in sets) {
    sce <- get(s)()
    g <- nrow(sce)
    today <- function() fit_vae(sce, labels = "label", likelihood = "nb", epochs = 200, batch_size = 128,
                                latent_dim = 10, encoder_layers = list(layer_input(g), layer_dense(128, "relu")),
                                decoder_layers = list(layer_dense(128, "relu"), layer_dense(g)),
                                seed = 1, num.threads = threads, verbose = FALSE)
    auto <- function() fit_vae(sce, labels = "label", likelihood = "nb", seed = 1, num.threads = threads,
                               verbose = FALSE)
    tuned <- function() fit_vae(sce, labels = "label", likelihood = "nb", seed = 1, num.threads = threads,
                                verbose = FALSE, tune = TRUE)
    times <- if ("--tune" %in% args) list(today = numeric(0), auto = numeric(0), tuned = numeric(0))
             else list(today = numeric(0), auto = numeric(0))
    for (r in seq_len(repeats)) {
        for (k in names(times)) {
            t <- system.time(f <- get(k)())[["elapsed"]]
            times[[k]] <- c(times[[k]], t)
            if (k == "auto") chosen <- f$params
        }
    }
    cat(sprintf("%s: %d cells x %d genes, %d threads; automatic settings: %d epochs of %d cells, latent %d\n",
                s, ncol(sce), g, threads, chosen$epochs, chosen$batch_size, chosen$latent_dim))
    cat(sprintf("  today's 200 x 128: median %.1f s (%s)\n  automatic:        median %.1f s (%s)\n  ratio %.2f\n",
                stats::median(times$today), paste(round(times$today, 1), collapse = ", "),
                stats::median(times$auto), paste(round(times$auto, 1), collapse = ", "),
                stats::median(times$auto) / stats::median(times$today)))
    if (!is.null(times$tuned)) {
        cat(sprintf("  tune = TRUE:       median %.1f s (%s), %.2f automatic fits\n", stats::median(times$tuned),
                    paste(round(times$tuned, 1), collapse = ", "), stats::median(times$tuned) / stats::median(times$auto)))
    }
}
