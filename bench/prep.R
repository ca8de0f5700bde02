# Data preparation before the first epoch against one epoch, on W3 (a dense 20,000 cells
# x 2,000 genes matrix, as bench/speed.R): fit_vae()'s checks, orientation, library sizes
# and gene ranges (.prepare_inputs plus the ranges for bce), timed alone, then the
# median epoch of a 3-epoch fit of the same data in the same session.
#   Rscript bench/prep.R [--threads 1,2] [--likelihoods bce,nb]
suppressMessages({library(exprsgen); library(Matrix)})
args <- commandArgs(TRUE)
opt <- function(name, default) {
    i <- match(paste0("--", name), args)
    if (is.na(i)) default else args[i + 1]
}
threads <- as.integer(strsplit(opt("threads", "1,2"), ",")[[1]])
liks <- strsplit(opt("likelihoods", "bce,nb"), ",")[[1]]
set.seed(1)
n <- 20000; g <- 2000
mu <- rlnorm(g, 0, 1.2)
counts <- matrix(as.double(rnbinom(n * g, size = 2, mu = rep(mu, each = n))), n, g,
                 dimnames = list(paste0("c", 1:n), paste0("g", 1:g)))
ns <- asNamespace("exprsgen")
rows <- list()
for (lik in liks) for (th in threads) {
    x <- if (lik == "bce") log1p(counts) else counts
    counts_model <- lik != "bce"
    prep_s <- vapply(1:3, function(i) {
        gc()
        system.time({
            a <- list(NULL, x, NULL, NULL, NULL, NULL, NULL, 0, counts_model, rlang::current_env())
            # (builds before the threaded preparation have no `threads`)
            if ("threads" %in% names(formals(ns$.prepare_inputs))) a$threads <- th
            p <- do.call(ns$.prepare_inputs, a)
            if (!counts_model && is.null(p$scan)) mm <- ns$.eg_minmax(p$x_train)
        })[["elapsed"]]
    }, numeric(1))
    fit <- fit_vae(x_train = x, likelihood = lik, epochs = 3, batch_size = 128, latent_dim = 10,
                   encoder_layers = list(layer_input(g), layer_dense(128, "relu")),
                   decoder_layers = list(layer_dense(128, "relu"), layer_dense(g, if (counts_model) "linear" else "sigmoid")),
                   verbose = FALSE, seed = 1, num.threads = th)
    epoch <- stats::median(fit$params$epoch_seconds$wall)
    rows[[length(rows) + 1]] <- data.frame(likelihood = lik, threads = th, prep_s = round(stats::median(prep_s), 3),
                                           epoch_s = round(epoch, 3), ratio = round(stats::median(prep_s) / epoch, 2))
}
cat("W3 (dense 20,000 x 2,000): preparation before training (median of 3) vs one epoch (median of 3)\n")
print(do.call(rbind, rows), row.names = FALSE)
