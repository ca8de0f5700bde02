# Same seed => same fit: fits a set of models covering every likelihood, optimizer,
# activation, engine, input kind and both matrix-product paths (batches of at most 64
# cells and larger), and saves their weights, histories and generated cells. Run it
# before and after a change to the core and compare:
#
#   Rscript bench/same_fit.R --out before.rds      # on the old build
#   Rscript bench/same_fit.R --out after.rds --compare before.rds
#
# The comparison prints, per model, whether the weights and the loss history are
# bit-identical, and the largest relative difference otherwise; and the same for
# the generated cells (gen_exprs()), whose decoding may differ at float rounding.
suppressMessages(library(exprsgen))
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default = NA) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[i + 1L]
}
out <- opt("out", "same_fit.rds")
compare <- opt("compare")

set.seed(1)
sim <- local({
    n <- 40; m <- 300; g <- 3
    mat <- matrix(rnorm(n * m * g, 5, 5), m, n * g)
    group <- factor(rep(paste0("group", seq_len(g)), each = n))
    for (i in seq_len(g)) mat[(30 * (i - 1) + 1):(30 * i), group == paste0("group", i)] <-
        mat[(30 * (i - 1) + 1):(30 * i), group == paste0("group", i)] + 15
    mat[mat < 0] <- 0
    dimnames(mat) <- list(paste0("gene", seq_len(m)), paste0("cell", seq_len(n * g)))
    list(x = t(mat), group = group)
})
cnt <- local({
    genes <- 200; types <- 3; n_per <- 60
    base <- matrix(rgamma(genes * types, 0.6, 0.6), genes, types)
    for (k in seq_len(types)) base[((k - 1) * 20 + 1):(k * 20), k] <- base[((k - 1) * 20 + 1):(k * 20), k] + 6
    label <- factor(rep(paste0("type", seq_len(types)), each = n_per))
    lib <- round(rlnorm(length(label), log(2000), 0.4))
    mu <- sweep(base, 2, colSums(base), "/")[, as.integer(label)] * rep(lib, each = genes)
    counts <- matrix(rnbinom(length(mu), size = 2, mu = mu), genes, length(label),
                     dimnames = list(paste0("g", seq_len(genes)), paste0("c", seq_along(label))))
    list(counts = counts, label = label)
})
sce <- SingleCellExperiment::SingleCellExperiment(
    assays = list(counts = Matrix::Matrix(cnt$counts, sparse = TRUE)),
    colData = S4Vectors::DataFrame(type = cnt$label))
big <- local({   # 400 cells x 2100 genes: products split between threads
    set.seed(3)
    x <- matrix(rpois(400 * 2100, 2), 400, 2100)
    x[cbind(seq_len(400), sample.int(2100, 400, TRUE))] <- 40
    x
})

g <- ncol(sim$x)
L <- function(u, a) layer_dense(u, a)
# Count models with the architecture that was their default before count models got
# their own (latent 10, 128 hidden): builds on either side of that change compare.
fit_counts <- function(genes, ..., latent_dim = 2) {
    fit_vae(..., latent_dim = latent_dim, encoder_layers = list(layer_input(genes), L(256, "relu")),
            decoder_layers = list(L(256, "relu"), L(genes, "linear")))
}
runs <- list(
    bce_vae = function() fit_vae(x_train = sim$x, epochs = 4, batch_size = 16, seed = 1, verbose = FALSE,
                                 encoder_layers = list(layer_input(g), L(32, "relu")),
                                 decoder_layers = list(L(32, "relu"), L(g, "sigmoid"))),
    bce_cvae_val_2t = function() fit_vae(x_train = sim$x, y_train = sim$group, validation_split = 0.2,
                                         epochs = 4, batch_size = 16, seed = 2, num.threads = 2, verbose = FALSE,
                                         encoder_layers = list(layer_input(g), L(32, "relu")),
                                         decoder_layers = list(L(32, "relu"), L(g, "sigmoid"))),
    mse_deep = function() fit_vae(x_train = sim$x, y_train = sim$group, likelihood = "mse",
                                  epochs = 3, batch_size = 16, seed = 3, verbose = FALSE,
                                  encoder_layers = list(layer_input(g), L(24, "tanh"), L(16, "elu")),
                                  decoder_layers = list(L(16, "softplus"), L(24, "sigmoid"), L(g, "linear"))),
    bce_clamped = function() fit_vae(x_train = sim$x, epochs = 3, batch_size = 16, seed = 4, verbose = FALSE,
                                     encoder_layers = list(layer_input(g), L(16, "elu")),
                                     decoder_layers = list(L(g, "softplus"))),
    sgd = function() fit_vae(x_train = sim$x, optimizer = "sgd", epochs = 3, batch_size = 16, seed = 5, verbose = FALSE),
    rmsprop = function() fit_vae(x_train = sim$x, optimizer = "rmsprop", epochs = 3, batch_size = 16, seed = 5, verbose = FALSE),
    adagrad = function() fit_vae(x_train = sim$x, optimizer = "adagrad", epochs = 3, batch_size = 16, seed = 5, verbose = FALSE),
    early_stop = function() fit_vae(x_train = sim$x, validation_split = 0.25, epochs = 8, batch_size = 16, seed = 6,
                                    callbacks = callback_early_stopping(patience = 1, restore_best_weights = TRUE),
                                    verbose = FALSE),
    poisson_sce = function() fit_counts(nrow(sce), sce, labels = "type", likelihood = "poisson", epochs = 4, batch_size = 32, seed = 7, verbose = FALSE),
    nb_sce = function() fit_counts(nrow(sce), sce, labels = "type", likelihood = "nb", epochs = 4, batch_size = 32, seed = 7, verbose = FALSE),
    zinb_sce_val = function() fit_counts(nrow(sce), sce, labels = "type", likelihood = "zinb", validation_split = 0.2,
                                      epochs = 4, batch_size = 32, seed = 7, verbose = FALSE),
    zip_sce = function() fit_counts(nrow(sce), sce, labels = "type", likelihood = "zip", epochs = 4, batch_size = 32, seed = 7, verbose = FALSE),
    nb_dense_rows = function() fit_counts(nrow(cnt$counts), x_train = t(cnt$counts), likelihood = "nb", epochs = 4, batch_size = 32, seed = 8, verbose = FALSE),
    nb_sparse_rows = function() fit_counts(nrow(cnt$counts), x_train = Matrix::Matrix(t(cnt$counts), sparse = TRUE), y_train = cnt$label,
                                        likelihood = "nb", epochs = 4, batch_size = 32, seed = 8, verbose = FALSE),
    zinb_big_b128_2t = function() fit_counts(ncol(big), x_train = big, likelihood = "zinb", latent_dim = 5, epochs = 2, batch_size = 128,
                                          num.threads = 2, seed = 9, verbose = FALSE),
    bce_big_b32_2t = function() fit_vae(x_train = big, epochs = 2, batch_size = 32, num.threads = 2, seed = 9, verbose = FALSE),
    nb_delayed = function() fit_counts(nrow(cnt$counts), SingleCellExperiment::SingleCellExperiment(
                                        assays = list(counts = DelayedArray::DelayedArray(cnt$counts))),
                                    likelihood = "nb", epochs = 3, batch_size = 32, seed = 10, verbose = FALSE),
    burn_bce = function() withr_engine("burn", fit_vae(x_train = sim$x, y_train = sim$group, epochs = 3,
                                                      batch_size = 16, seed = 11, verbose = FALSE)),
    burn_zinb = function() withr_engine("burn", fit_counts(nrow(sce), sce, labels = "type", likelihood = "zinb", epochs = 3,
                                                       batch_size = 32, seed = 11, verbose = FALSE))
)
withr_engine <- function(engine, expr) {
    old <- options(exprsgen.engine = engine)
    on.exit(options(old))
    expr
}

weights_of <- function(fit) {
    w <- fit$model$weights
    unlist(lapply(w, function(l) c(as.vector(l$kernel), l$bias)))
}
res <- list()
for (name in names(runs)) {
    t0 <- proc.time()[["elapsed"]]
    fit <- tryCatch(runs[[name]](), error = function(e) {
        cat(sprintf("%-18s not available in this build: %s\n", name, conditionMessage(e)))
        NULL
    })
    if (is.null(fit)) next
    set.seed(100)
    gen <- if (name %in% c("early_stop", "sgd", "rmsprop", "adagrad")) NULL else
        gen_exprs(fit, num_samples = 50, latent = "gmm")  # the mixture, every build's default once
    a <- if (!is.null(gen) && name %in% c("nb_sce", "bce_cvae_val_2t")) as.data.frame(assess_aug(gen, seed = 1))
    res[[name]] <- list(assess = if (!is.null(a)) stats::setNames(a$value, a$metric),weights = weights_of(fit), history = as.matrix(fit$history[, 2:7]),
                        n_parameters = sum(lengths(lapply(fit$model$weights, unlist))),
                        gen = if (!is.null(gen)) as.matrix(gen$x_gen),
                        latent = if (!is.null(gen)) gen$latent_vector)
    cat(sprintf("%-18s %5.1f s  loss %.6f\n", name, proc.time()[["elapsed"]] - t0,
                fit$history$loss[nrow(fit$history)]))
}
saveRDS(res, out)

if (!is.na(compare)) {
    ref <- readRDS(compare)
    rel <- function(a, b) if (is.null(a) && is.null(b)) 0 else max(abs(a - b) / (1e-6 + abs(b)), na.rm = TRUE)
    cat("\nmodel               weights      history      latent means  generated     assess_aug\n")
    for (name in intersect(names(res), names(ref))) {
        a <- res[[name]]; b <- ref[[name]]
        cell <- function(x, y) {
            if (is.null(x) && is.null(y)) return(sprintf("%-12s", "-"))
            if (!is.null(names(x)) && !is.null(names(y))) {   # metrics: matched by name
                y <- y[names(x)]
                if (identical(is.na(x), is.na(y))) { x <- x[!is.na(x)]; y <- y[!is.na(y)] }
            }
            if (!identical(dim(as.matrix(x)), dim(as.matrix(y)))) return(sprintf("%-12s", "SHAPE"))
            if (identical(unname(x), unname(y))) sprintf("%-12s", "identical")
            else sprintf("%-12s", formatC(rel(unname(x), unname(y)), digits = 2, format = "e"))
        }
        cat(sprintf("%-18s  %s %s %s  %s  %s\n", name, cell(a$weights, b$weights), cell(a$history, b$history),
                    cell(a$latent, b$latent), cell(a$gen, b$gen), cell(a$assess, b$assess)))
    }
}
