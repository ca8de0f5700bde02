# Fuzz suite (issue 13): random calls of every exported function with random
# arguments, random dimensions, random corruptions of matrices, sparse slots and fit
# objects. Each call runs in a forked child process under a time limit, and the whole
# run under an address-space limit (`ulimit -v`), so that nothing a call does can
# take the runner down. Not part of CI (it takes tens of minutes).
#
#   Rscript bench/fuzz.R                         # 10,000 calls, 2 at a time
#   Rscript bench/fuzz.R --calls 500 --seed 7 --jobs 1 --timeout 30 --memory 4e9
#   Rscript bench/fuzz.R --replay fuzz-out/case-123.rds   # one recorded call, here
#   Rscript bench/fuzz.R --calls 40 --only fork,signal,batch_kill,stale,dupnames
#
# Families: random calls of each exported function (issue 13), and the multi-step
# cases of issue 23 (case_*(): forks after threaded fits, SIGINT at random moments
# then resume, the batch script killed or over a file-size limit, HDF5 files changed
# after the fit, duplicated/empty/NA gene names).
#
# Outcomes per call: ok (a value), classed (an exprsgen error: the expected answer to
# bad input), unclassed (any other R error: a message the user cannot act on),
# crash (the child died: a signal, an abort, a segfault), hang (killed at the time
# limit). Every call that is not ok or classed is saved to --dir (default fuzz-out) as
# an .rds file holding the call, for --replay; the table of all calls goes to
# --dir/calls.tsv and a summary is printed.
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[max(i) + 1L]
}
n_calls <- as.integer(opt("calls", "10000"))
seed <- as.integer(opt("seed", "1"))
jobs <- as.integer(opt("jobs", "2"))
timeout <- as.numeric(opt("timeout", "60"))
memory <- as.numeric(opt("memory", "4e9"))
out_dir <- opt("dir", "fuzz-out")
replay <- opt("replay", NA)
only <- opt("only", NA)  # e.g. "fork,signal": only these families (names in random_call())

# Re-run under the address-space limit (children inherit it).
if (is.na(replay) && Sys.getenv("EXPRSGEN_FUZZ_LIMITED") != "1") {
    cmd <- sprintf("ulimit -v %.0f && EXPRSGEN_FUZZ_LIMITED=1 exec %s --vanilla %s %s",
                   memory / 1024, shQuote(file.path(R.home("bin"), "Rscript")),
                   shQuote(normalizePath(sub("^--file=", "", grep("^--file=", commandArgs(), value = TRUE)))),
                   paste(shQuote(args), collapse = " "))
    quit(status = system2("bash", c("-c", shQuote(cmd))))
}

suppressPackageStartupMessages({
    library(exprsgen)
    library(Matrix)
    library(SingleCellExperiment)
})

# Fixtures: fitted models and generated cells, made in a separate R process so that
# this one never runs the Rust core (its threads would not survive a fork).
fixtures_file <- file.path(tempdir(), "fuzz-fixtures.rds")
fixture_code <- '
suppressPackageStartupMessages(library(exprsgen))
set.seed(1)
counts <- matrix(rpois(60 * 20, 3), 60, 20, dimnames = list(paste0("c", 1:60), paste0("g", 1:20)))
counts[, 1] <- counts[, 1] + 1L
lab <- rep(c("a", "b", "c"), 20)
fits <- list(
  bce = fit_vae(x_train = counts, epochs = 2, batch_size = 16, verbose = FALSE, seed = 1),
  bce_cvae = fit_vae(x_train = counts, y_train = lab, epochs = 2, batch_size = 16, verbose = FALSE, seed = 1),
  nb = suppressMessages(fit_vae(x_train = counts, y_train = lab, likelihood = "nb", epochs = 2, batch_size = 16, verbose = FALSE, seed = 1)),
  poisson = suppressMessages(fit_vae(x_train = counts, likelihood = "poisson", epochs = 2, batch_size = 16, verbose = FALSE, seed = 1)),
  mse_val = fit_vae(x_train = counts, likelihood = "mse", validation_split = 0.2, epochs = 2, batch_size = 16, verbose = FALSE, seed = 1))
gens <- list(nb = gen_exprs(fits$nb, 40), bce = gen_exprs(fits$bce_cvae, 40))
assessment <- assess_aug(gens$nb, n_pcs = 5)
saveRDS(list(counts = counts, lab = lab, fits = fits, gens = gens, assessment = assessment), commandArgs(TRUE)[1])
'
if (is.na(replay)) {
    status <- system2(file.path(R.home("bin"), "Rscript"), c("--vanilla", "-e", shQuote(fixture_code), fixtures_file))
    if (status != 0) stop("could not make the fixtures")
    fx <- readRDS(fixtures_file)
}

# Warm-up (pure R, no Rust): namespaces loaded and their lazy-loaded objects forced
# here once, not in every child (a second per call otherwise).
for (ns in c("exprsgen", "cli", "rlang", "ggplot2", "grid", "gtable", "scales", "Matrix", "methods",
             "SingleCellExperiment", "SummarizedExperiment", "S4Vectors", "DelayedArray", "scuttle",
             "mclust", "ranger", "irlba", "patchwork", "stats", "utils", "grDevices", "graphics",
             "HDF5Array", "rhdf5", "processx")) {
    if (requireNamespace(ns, quietly = TRUE)) invisible(eapply(asNamespace(ns), function(x) NULL, all.names = TRUE))
}
invisible(tryCatch(cli::cli_abort("warm {.arg up}"), error = function(e) conditionMessage(e)))
grDevices::pdf(NULL)
print(ggplot2::ggplot(data.frame(x = 1:3, y = 1:3), ggplot2::aes(x, y)) + ggplot2::geom_point())
invisible(grDevices::dev.off())

# ---- random values -------------------------------------------------------------
pick <- function(x) x[[sample.int(length(x), 1L)]]
maybe <- function(p) stats::runif(1) < p

odd_values <- list(0, 1, 2, 5, -1, -0.5, 0.5, 1.5, NA, NA_integer_, NA_character_, Inf, -Inf,
                   NaN, 1e9, 1e12, 2^31, 2^40, "a", "", TRUE, FALSE, NULL, c(1, 2),
                   list(1), integer(0), character(0), factor("a"), matrix(1, 1, 1),
                   as.Date("2020-01-01"), 3 + 0i)

# Half of the calls are "strict": every argument drawn from its valid values, so that
# training, generation and plotting run (and can crash) rather than stop at a check.
strict <- FALSE
rand_count <- function(valid) if (strict || maybe(0.8)) pick(valid) else pick(odd_values)

rand_values <- function(n, g) {
    kind <- pick(c("pois", "pois", "rexp", "big", "zero", "binary"))
    v <- switch(kind,
                pois = stats::rpois(n * g, pick(c(0.1, 1, 5, 50))),
                rexp = stats::rexp(n * g),
                big = round(stats::runif(n * g, 0, pick(c(1e6, 1e10, 1e14)))),
                zero = numeric(n * g),
                binary = stats::rbinom(n * g, 1, 0.3))
    matrix(v, n, g)
}

corrupt_dense <- function(m) {
    if (!length(m)) return(m)
    k <- sample.int(length(m), min(length(m), pick(c(1, 3, 10))))
    what <- pick(c("NA", "Inf", "neg", "frac", "huge", "char", "logical", "zero_row", "zero_col",
                   "dimnames_dup", "dimnames_null", "df", "integer", "none"))
    switch(what,
           "NA" = { m[k] <- NA; m },
           "Inf" = { m[k] <- Inf; m },
           neg = { m[k] <- -1; m },
           frac = { m[k] <- 0.5; m },
           huge = { m[k] <- 1e15; m },
           char = { storage.mode(m) <- "character"; m },
           logical = { m > 0 },
           zero_row = { m[1, ] <- 0; m },
           zero_col = { m[, 1] <- 0; m },
           dimnames_dup = { if (nrow(m)) rownames(m) <- rep("x", nrow(m)); m },
           dimnames_null = unname(m),
           df = as.data.frame(m),
           integer = { storage.mode(m) <- "integer"; m },
           none = m)
}

corrupt_sparse <- function(s) {
    s <- methods::as(methods::as(s, "CsparseMatrix"), "generalMatrix")
    nnz <- length(s@i)
    what <- pick(c("i_big", "i_neg", "i_na", "i_short", "i_long", "p_end", "p_short", "p_na", "p_dec",
                   "dim_big", "dim_small", "dim_neg", "dim_len", "x_short", "x_na", "unsorted",
                   "dup", "i_double", "dimnames_len"))
    if (nnz < 2L && what %in% c("i_big", "i_neg", "i_na", "unsorted", "dup", "x_na", "i_short")) what <- "dim_neg"
    switch(what,
           i_big = { s@i[sample.int(nnz, 1)] <- 1e6L; s },
           i_neg = { s@i[sample.int(nnz, 1)] <- -5L; s },
           i_na = { s@i[sample.int(nnz, 1)] <- NA_integer_; s },
           i_short = { s@i <- s@i[-nnz]; s },
           i_long = { s@i <- c(s@i, 0L); s },
           p_end = { s@p[length(s@p)] <- s@p[length(s@p)] + 3L; s },
           p_short = { s@p <- s@p[-length(s@p)]; s },
           p_na = { s@p[max(1L, length(s@p) - 1L)] <- NA_integer_; s },
           p_dec = { if (length(s@p) > 2) s@p[2] <- s@p[length(s@p)] + 10L; s },
           dim_big = { s@Dim <- s@Dim + c(1000L, 0L); s },
           dim_small = { s@Dim <- pmax(0L, s@Dim - c(1L, 0L)); s },
           dim_neg = { s@Dim <- c(-1L, s@Dim[2]); s },
           dim_len = { s@Dim <- c(s@Dim, 1L); s },
           x_short = { s@x <- s@x[-1]; s },
           x_na = { s@x[1] <- NA; s },
           unsorted = { s@i[1:2] <- rev(s@i[1:2]); s },
           dup = { s@i[2] <- s@i[1]; s },
           i_double = { s@i <- as.numeric(s@i); s },
           dimnames_len = { s@Dimnames <- list(letters[1:2], NULL); s })
}

# A cells x genes input (VAExprs's orientation), as one of the classes users hold.
rand_matrix <- function(n = if (strict) pick(c(3, 20, 60, 60)) else pick(c(0, 1, 3, 20, 60, 60)),
                        g = if (strict) pick(c(2, 5, 20, 20)) else pick(c(0, 1, 5, 20, 20))) {
    m <- rand_values(n, g)
    if (strict) m[, 1] <- m[, 1] + 1  # no cell without counts
    if (maybe(0.7) && length(m)) dimnames(m) <- list(paste0("c", seq_len(n)), paste0("g", seq_len(g)))
    if (!strict && maybe(0.2)) m <- corrupt_dense(m)
    forms <- c("dense", "dense", "dense", "dgC", "dgC", "dgT", "dgR", "delayed")
    form <- pick(if (strict) forms else c(forms, "corrupt_sparse", "list", "vector"))
    if (!is.matrix(m) || !is.numeric(m)) return(m)
    switch(form,
           dense = m,
           dgC = methods::as(m, "CsparseMatrix"),
           dgT = methods::as(m, "TsparseMatrix"),
           dgR = methods::as(m, "RsparseMatrix"),
           delayed = DelayedArray::DelayedArray(m),
           corrupt_sparse = if (length(m)) corrupt_sparse(m) else m,
           list = as.list(m),
           vector = as.vector(m))
}

rand_labels <- function(n) {
    if (!strict && maybe(0.15)) return(pick(odd_values))
    len <- if (strict || maybe(0.8)) n else max(0, n + pick(c(-1, 1, 5)))
    y <- sample(pick(list(c("a", "b", "c"), c("a", "b"), "a", c(1, 2), c(TRUE, FALSE))), len, replace = TRUE)
    if (strict) return(if (maybe(0.3)) factor(y) else y)
    if (maybe(0.15) && len) y[1] <- NA
    if (maybe(0.1) && len && is.character(y)) y[1] <- ""
    if (maybe(0.2)) y <- factor(y)
    if (maybe(0.05)) y <- data.frame(a = y, b = y)
    y
}

rand_sce <- function(n = pick(c(1, 3, 20, 60)), g = pick(c(1, 5, 20))) {
    m <- t(rand_values(n, g))
    dimnames(m) <- if (maybe(0.8)) list(paste0("g", seq_len(g)), paste0("c", seq_len(n)))
    m <- pick(list(m, methods::as(m, "CsparseMatrix")))
    sce <- SingleCellExperiment(list(counts = m))
    if (maybe(0.7)) {
        y <- rand_labels(n)
        if (is.atomic(y) && length(y) >= n) SummarizedExperiment::colData(sce)$type <- y[seq_len(n)]
    }
    if (!strict && maybe(0.1)) SummarizedExperiment::assayNames(sce) <- "other"
    sce
}

# Layers as calls, evaluated in the child (a bad unit count is the call's error).
rand_layers <- function(g) {
    # (1e7 units train, slowly: a call past the time limit, not a hang; 1e9 is refused)
    units <- function() rand_count(c(list(2L, 4L, 8L, 32L, 1000L, 1e5), if (!strict) list(1e9)))
    act <- function() pick(list("relu", "relu", "sigmoid", "linear", "tanh", "softplus", "elu", "foo", NULL, NA, 3))
    dense <- function(u) bquote(layer_dense(.(u), .(act())))
    enc <- list(bquote(layer_input(.(rand_count(list(g, g, g + 1))))), dense(units()))
    if (maybe(0.3)) enc <- c(enc, list(dense(units())))
    dec <- list(dense(units()), dense(rand_count(list(g, g, g - 1))))
    list(enc = as.call(c(as.name("list"), enc)), dec = as.call(c(as.name("list"), dec)))
}

rand_optimizer <- function() {
    pick(list("adam", "sgd", "rmsprop", "adagrad", "foo", 1, NULL,
              quote(optimizer_adam(rand_count(list(1e-3, 0.1)))),
              quote(optimizer_sgd(rand_count(list(1e-2)))),
              quote(optimizer_rmsprop(rand_count(list(1e-3)))),
              quote(optimizer_adagrad(rand_count(list(1e-2))))))
}

rand_callbacks <- function() {
    pick(list(NULL, "x", list(1),
              quote(callback_early_stopping(monitor = pick(list("loss", "val_loss", "foo", 1)),
                                            patience = rand_count(list(0L, 1L, 3L)),
                                            min_delta = rand_count(list(0, 0.01)),
                                            restore_best_weights = pick(list(TRUE, FALSE, NA)))),
              quote(callback_reduce_lr_on_plateau(monitor = pick(list("loss", "val_loss")),
                                                  factor = rand_count(list(0.5, 0.1)),
                                                  patience = rand_count(list(1L, 2L)),
                                                  cooldown = rand_count(list(0L, 1L)),
                                                  min_lr = rand_count(list(0, 1e-6))))))
}

# A fit object, sometimes tampered with: a component removed, a field of the wrong
# type, a different class, weights of the wrong size.
rand_fit <- function() {
    f <- pick(fx$fits)
    if (strict || !maybe(0.5)) return(f)
    what <- pick(c("drop_top", "field", "class", "weights", "spec", "prep", "list"))
    switch(what,
           drop_top = { f[[pick(names(f))]] <- NULL; f },
           field = {
               top <- pick(c("model", "preprocessing", "params", "history"))
               if (is.list(f[[top]]) && length(f[[top]])) f[[top]][[pick(names(f[[top]]))]] <- pick(odd_values)
               else f[[top]] <- pick(odd_values)
               f
           },
           class = { class(f) <- pick(list("exprsgen_fit", "list", c("exprsgen_fit", "foo"))); if (maybe(0.5)) f <- unclass(f); f },
           weights = {
               w <- f$model$weights
               i <- sample.int(length(w), 1)
               f$model$weights[[i]] <- pick(list(NULL, list(), list(kernel = matrix(0, 2, 2), bias = 0), "a",
                                                 lapply(w[[i]], function(a) a[-1])))
               f
           },
           spec = { f$model$spec[[pick(names(f$model$spec))]] <- pick(odd_values); f },
           prep = { f$preprocessing[[pick(names(f$preprocessing))]] <- pick(c(odd_values, list(rand_matrix()))); f },
           list = unclass(pick(odd_values)))
}

rand_gen <- function() {
    g <- pick(fx$gens)
    if (maybe(0.3)) g[[pick(names(g))]] <- pick(c(odd_values, list(rand_matrix())))
    if (maybe(0.1)) g <- rand_matrix()
    g
}

# ---- random calls -----------------------------------------------------------------
# Each returns a call (language object) with its arguments already evaluated into it.
mk <- function(fun, args) as.call(c(list(as.name(fun)), args))
some <- function(args, p = 0.35) args[stats::runif(length(args)) < p]
fuzz_fit_vae <- function() {
    use_object <- maybe(0.25)
    data <- if (use_object) list(object = rand_sce()) else list(x_train = rand_matrix())
    x <- if (use_object) t(SummarizedExperiment::assay(data$object)) else data$x_train
    n <- tryCatch(NROW(x), error = function(e) 10L)
    g <- tryCatch(NCOL(x), error = function(e) 5L)
    args <- c(data, list(epochs = rand_count(list(1L, 2L, 3L)), batch_size = rand_count(list(4L, 16L, 1000L)),
                         verbose = if (!strict && maybe(0.1)) pick(odd_values) else FALSE))
    optional <- list(
        y_train = if (!use_object) rand_labels(n),
        labels = if (use_object) pick(list("type", "nope", rand_labels(n))),
        assay.type = if (use_object) pick(list("counts", "other", "nope", 1)),
        x_val = rand_matrix(pick(c(0, 3, 10)), pick(c(g, g, g + 1))),
        y_val = rand_labels(10),
        likelihood = pick(c(list("bce", "mse", "nb", "zinb", "poisson", "zip"), if (!strict) list("foo", NA, c("nb", "bce")))),
        latent_dim = rand_count(c(list(1L, 2L, 10L), if (!strict) list(1e7))),
        regularization = rand_count(c(list(0, 1, 2), if (!strict) list(1e300))),
        validation_split = rand_count(list(0, 0.2, 0.5)),
        optimizer = rand_optimizer(),
        callbacks = rand_callbacks(),
        seed = rand_count(list(1L, 42L, 2^40)),
        kl_warmup = rand_count(list(0L, 1L, 5L)),
        num.threads = rand_count(list(1L, 2L)),
        use_generator = pick(list(FALSE, TRUE, if (!strict) NA)))
    if (strict) {
        optional <- optional[c("y_train", "likelihood", "latent_dim", "regularization", "validation_split",
                               "seed", "kl_warmup", "num.threads")]
        optional$optimizer <- pick(list("adam", "sgd", "rmsprop", "adagrad", quote(optimizer_adam(0.01))))
        optional$callbacks <- pick(list(NULL, quote(callback_early_stopping(monitor = "loss", patience = 1L)),
                                        quote(callback_reduce_lr_on_plateau(monitor = "loss", patience = 1L))))
    }
    args <- c(args, Filter(Negate(is.null), some(optional, if (strict) 0.4 else 0.25)))
    if (maybe(0.3)) {
        l <- rand_layers(g)
        args$encoder_layers <- l$enc
        args$decoder_layers <- l$dec
    }
    mk("fit_vae", args)
}

fuzz_gen_exprs <- function() {
    args <- list(rand_fit(), rand_count(list(1L, 10L, 100L, 1e9)))
    optional <- list(labels = pick(list(c(a = 5), c(a = 2, b = 3), c(zzz = 1), c(1, 2), c(a = -1), c(a = 2e9), c(a = NA))),
                     latent = pick(list("gmm", "prior", "posterior", "foo", NA)),
                     cells = pick(list(1:5, 0, "c1", "zz", 1e9, NA)),
                     batch_size = rand_count(list(32L)), use_generator = pick(list(FALSE, NA)))
    args <- c(args, some(optional, 0.25))
    if (maybe(0.1)) args[[2]] <- NULL
    mk("gen_exprs", args)
}

fuzz_assess <- function() {
    real <- pick(list(t(fx$counts), fx$gens$nb, rand_matrix(pick(c(5, 20)), pick(c(3, 20, 60))), rand_sce()))
    gen <- pick(list(NULL, t(fx$counts[sample.int(60, 30), ]), rand_gen(), rand_matrix(pick(c(5, 20)), pick(c(2, 10, 40)))))
    args <- list(real, gen)
    optional <- list(labels_real = rand_labels(60), labels_gen = rand_labels(30),
                     transform = pick(list("auto", "counts", "log", "none", "foo")),
                     n_pcs = rand_count(list(2L, 5L, 50L)), n_genes = rand_count(list(10L, 2000L)),
                     max_cells = rand_count(list(10L, 5000L)), seed = rand_count(list(1L)),
                     train = pick(list(NULL, t(fx$counts), rand_matrix(20, 20))),
                     labels_train = rand_labels(60), num.threads = rand_count(list(1L)))
    mk("assess_aug", c(args, some(optional, 0.25)))
}

fuzz_small <- function() {
    pick(list(
        function() mk("layer_dense", some(list(units = rand_count(list(4L, 1e5)), activation = pick(list("relu", "foo", NULL, 1)),
                                               name = pick(list(NULL, "x", 5, NA))), 0.8)),
        function() mk("layer_input", list(rand_count(list(5L, 20L)))),
        function() mk(pick(c("optimizer_adam", "optimizer_sgd", "optimizer_rmsprop", "optimizer_adagrad")),
                      some(list(learning_rate = rand_count(list(1e-3, 0.1))), 0.8)),
        function() mk("callback_early_stopping", some(list(monitor = pick(list("loss", "val_loss", "foo", 1, NA)),
                                                           min_delta = rand_count(list(0, 0.1)), patience = rand_count(list(0L, 5L)),
                                                           restore_best_weights = pick(list(TRUE, NA, "a")),
                                                           baseline = rand_count(list(NULL, 1))), 0.5)),
        function() mk("callback_reduce_lr_on_plateau", some(list(monitor = pick(list("loss", "foo")), factor = rand_count(list(0.5)),
                                                                 patience = rand_count(list(1L)), min_delta = rand_count(list(0)),
                                                                 cooldown = rand_count(list(0L)), min_lr = rand_count(list(0))), 0.5)),
        function() mk("plot_vae", list(pick(list(rand_fit(), rand_fit()$model)))),
        function() mk("plot_history", c(list(rand_fit()), some(list(components = pick(list(TRUE, FALSE, NA, "a")))))),
        function() mk("plot_aug", c(list(rand_gen()), some(list(plot_fun = pick(list("PCA", "tSNE", "UMAP", "foo", 1, NA)))))),
        function() mk("plot_assess", list(pick(list(fx$assessment, rand_gen(), rand_matrix(), pick(odd_values))))),
        function() mk("as_sce", c(list(rand_gen()), some(list(real = pick(list(TRUE, FALSE, NA, "a")))))),
        function() mk("likelihoods", list())
    ))()
}

# ---- families of issue 23: several steps each, run by the case_*() functions below
# (defined in the runner, so its forked children have them). A case that finds its
# property broken stops with an unclassed error, counted as such.
fuzz_fork <- function() mk("case_fork", list(threads = pick(list(1L, 2L)), generate = maybe(0.5)))
fuzz_signal <- function() {
    mk("case_signal", list(delay = stats::runif(1, 0, 3), threads = pick(list(1L, 2L)),
                           validation_split = pick(list(0, 0.2)), checkpoint = maybe(0.5)))
}
fuzz_batch_kill <- function() {
    mk("case_batch_kill", list(delay = stats::runif(1, 1, 12), signal = pick(list("KILL", "TERM", "INT", "XFSZ")),
                               file_kb = pick(list(NA, 20, 200))))
}
fuzz_stale <- function() {
    mk("case_stale", list(change = pick(list("delete", "truncate", "touch", "replace")),
                          then = pick(list("gen", "encode", "refit", "resume", "normalized"))))
}
fuzz_dupnames <- function() {
    mk("case_dupnames", list(how = pick(list("duplicated", "empty", "NA")),
                             where = pick(list("x_train", "sce", "newdata", "seurat"))))
}

case_fork <- function(threads, generate) {
    fit <- fit_vae(x_train = fx$counts, y_train = fx$lab, likelihood = "nb", epochs = 2, batch_size = 16,
                   num.threads = threads, verbose = FALSE)
    if (generate) gen_exprs(fit, 5, num.threads = threads)
    got <- parallel::mclapply(1:2, function(i) {
        gc()
        own <- fit_vae(x_train = fx$counts, likelihood = "nb", epochs = 1, batch_size = 16, num.threads = threads,
                       verbose = FALSE)
        nrow(gen_exprs(fit, 4, num.threads = threads)$x_gen) + nrow(gen_exprs(own, 1, num.threads = threads)$x_gen)
    }, mc.cores = 2)
    if (!identical(unlist(got), c(5L, 5L))) stop("a forked child failed: ", paste(format(got), collapse = "; "))
    invisible(TRUE)
}

# SIGINT to this process at a random moment of a long fit: the fit returns (or, when
# the signal came before training, R's interrupt), and an interrupted fit resumes.
case_signal <- function(delay, threads, validation_split, checkpoint) {
    x <- matrix(stats::rpois(600 * 60, 2), 600, 60, dimnames = list(NULL, paste0("g", 1:60)))
    ck <- tempfile(fileext = ".rds")
    system(sprintf("(sleep %.2f; kill -INT %d) >/dev/null 2>&1 &", delay, Sys.getpid()))
    fit <- tryCatch(suppressWarnings(fit_vae(x_train = x, likelihood = "nb", epochs = 100000, batch_size = 32,
                                             num.threads = threads, validation_split = validation_split,
                                             callbacks = if (checkpoint) callback_model_checkpoint(ck, save_freq = 3),
                                             verbose = FALSE)),
                    interrupt = function(e) NULL)
    if (is.null(fit)) return(invisible("interrupted outside training"))
    if (!identical(fit$params$stop_reason, "interrupted")) stop("not interrupted: ", fit$params$stop_reason)
    n <- fit$params$epochs_run
    if (file.exists(ck)) {
        last <- readRDS(ck)
        if (!inherits(last, "exprsgen_fit") || last$params$epochs_run > n) stop("a bad checkpoint")
        nrow(gen_exprs(last, 3)$x_gen)
    }
    res <- fit_vae(resume = fit, epochs = n + 1L, verbose = FALSE)
    if (nrow(res$history) != n + 1L) stop("the resumed fit has ", nrow(res$history), " epochs, not ", n + 1L)
    invisible(TRUE)
}

# The batch script killed at a random moment (or hitting a file-size limit, as a full
# disk would stop it): whatever it left under its outputs' names reads back whole.
case_batch_kill <- function(delay, signal, file_kb) {
    wd <- tempfile("fuzzbatch")
    dir.create(wd)
    on.exit(unlink(wd, recursive = TRUE))
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(fx$counts)),
                                                      colData = S4Vectors::DataFrame(type = fx$lab))
    saveRDS(sce, file.path(wd, "in.rds"))
    script <- system.file("scripts", "exprsgen-batch.R", package = "exprsgen")
    cmd <- sprintf("cd %s && %s exec %s %s --input in.rds --labels type --out out --epochs 400 --batch-size 8 --checkpoint ck.rds --checkpoint-every 20 --per-class 30 > log 2>&1",
                   shQuote(wd), if (is.na(file_kb)) "" else sprintf("ulimit -f %d &&", file_kb),
                   shQuote(file.path(R.home("bin"), "Rscript")), shQuote(script))
    p <- processx::process$new("bash", c("-c", cmd))
    on.exit(p$kill(), add = TRUE)
    Sys.sleep(delay)
    if (p$is_alive()) p$signal(switch(signal, KILL = tools::SIGKILL, TERM = tools::SIGTERM, INT = tools::SIGINT, XFSZ = 25L))
    p$wait(40000)
    if (p$is_alive()) stop("the batch job did not end after SIGINT/SIGTERM")
    readers <- list(rds = readRDS, mtx = Matrix::readMM, tsv = readLines)
    for (f in list.files(wd, recursive = TRUE, pattern = "\\.(rds|mtx|tsv)$")) {
        ok <- tryCatch({
            readers[[tools::file_ext(f)]](file.path(wd, f))
            TRUE
        }, error = function(e) FALSE, warning = function(w) FALSE)
        if (!ok) stop("a truncated output under its final name: ", f, " (", signal, " after ", round(delay, 1), " s)")
    }
    invisible(TRUE)
}

# The HDF5 file of an on-disk fit changed afterwards: a classed error, never stale values.
case_stale <- function(change, then) {
    path <- tempfile(fileext = ".h5")
    h5 <- HDF5Array::writeHDF5Array(t(fx$counts), path, "counts")
    ck <- tempfile(fileext = ".rds")
    fit <- fit_vae(SingleCellExperiment::SingleCellExperiment(list(counts = h5)), likelihood = "nb", epochs = 2,
                   batch_size = 16, verbose = FALSE, callbacks = callback_model_checkpoint(ck, save_freq = 1))
    switch(change,
           delete = unlink(path),
           truncate = writeBin(readBin(path, "raw", 200), path),
           touch = Sys.setFileTime(path, Sys.time() + 10),
           replace = {
               unlink(path)
               HDF5Array::writeHDF5Array(t(fx$counts[, 20:1]), path, "counts")
           })
    r <- tryCatch(switch(then,
                         gen = gen_exprs(fit, 5),
                         encode = encode(fit),
                         normalized = normalized_exprs(fit),
                         refit = fit_vae(preprocessing = fit$preprocessing, likelihood = "nb", epochs = 1, batch_size = 16,
                                         verbose = FALSE),
                         resume = fit_vae(resume = ck, epochs = 4, verbose = FALSE)),
                  exprsgen_error = function(e) e)
    if (!inherits(r, "exprsgen_error")) stop("the changed file (", change, ") was read by ", then)
    invisible(TRUE)
}

# Duplicated, empty or NA gene names: refused with a classed error, never matched silently.
case_dupnames <- function(how, where) {
    x <- fx$counts
    names <- colnames(x)
    names[2] <- switch(how, duplicated = names[1], empty = "", "NA" = NA)
    fit <- fx$fits$nb
    r <- tryCatch(switch(where,
                         x_train = fit_vae(x_train = `colnames<-`(x, names), likelihood = "nb", epochs = 1, batch_size = 16,
                                           verbose = FALSE),
                         sce = fit_vae(SingleCellExperiment::SingleCellExperiment(list(counts = `rownames<-`(t(x), names))),
                                       likelihood = "nb", epochs = 1, batch_size = 16, verbose = FALSE),
                         newdata = encode(fit, `colnames<-`(x, names)),
                         seurat = {
                             g <- gen_exprs(fit, 5)
                             colnames(g$x_gen) <- names
                             as_seurat(g)
                         }),
                  exprsgen_error = function(e) e)
    if (!inherits(r, "exprsgen_error")) stop("gene names with one ", how, " accepted by ", where)
    invisible(TRUE)
}

random_call <- function() {
    strict <<- maybe(0.5)
    # the issue-13 families, then those of issue 23 (about 6 % of the calls; a
    # killed batch job, each a Rscript start of a few seconds, 0.6 %)
    families <- list(fit_vae = fuzz_fit_vae, gen_exprs = fuzz_gen_exprs, assess = fuzz_assess, small = fuzz_small,
                     fork = fuzz_fork, signal = fuzz_signal, batch_kill = fuzz_batch_kill, stale = fuzz_stale,
                     dupnames = fuzz_dupnames)
    weight <- c(3, 2, 1, 2, 0.12, 0.12, 0.05, 0.12, 0.12)
    if (!is.na(only)) weight[!names(families) %in% strsplit(only, ",")[[1]]] <- 0
    f <- families[[sample.int(length(families), 1L, prob = weight)]]
    tryCatch(suppressMessages(f()), error = function(e) mk("likelihoods", list()))  # a generator slip: a harmless call
}

# ---- running one call in a child ---------------------------------------------------
run_here <- function(call) {
    grDevices::pdf(NULL)
    tryCatch(withCallingHandlers({
        value <- eval(call, envir = new.env(parent = globalenv()))
        if (inherits(value, "ggplot") || inherits(value, "patchwork")) print(value)
        list(outcome = "ok", class = "", message = "")
    }, warning = function(w) invokeRestart("muffleWarning"),
       message = function(m) invokeRestart("muffleMessage")),
    exprsgen_error = function(e) list(outcome = "classed", class = class(e)[1],
                                      message = cli::ansi_strip(conditionMessage(e))),
    error = function(e) list(outcome = "unclassed", class = class(e)[1],
                             message = conditionMessage(e)),
    interrupt = function(e) list(outcome = "unclassed", class = "interrupt", message = "interrupt"))
}

if (!is.na(replay)) {
    case <- readRDS(replay)
    print(case$call)
    print(run_here(case$call))
    quit(status = 0)
}

dir.create(out_dir, showWarnings = FALSE, recursive = TRUE)
set.seed(seed)
calls_file <- file.path(out_dir, "calls.tsv")
cat("id\tfunction\toutcome\tclass\tseconds\tmessage\targs\n", file = calls_file)
# A short description of a call's arguments: name=class[dims] (or the value when short).
describe <- function(call) {
    a <- as.list(call)[-1]
    nm <- names(a) %||% rep("", length(a))
    d <- vapply(seq_along(a), function(i) {
        v <- a[[i]]
        s <- if (is.language(v)) paste(deparse(v, width.cutoff = 60L)[1], collapse = "")
             else if (is.atomic(v) && length(v) <= 3 && is.null(dim(v))) paste(deparse(v), collapse = "")
             else paste0("<", class(v)[1], if (!is.null(dim(v))) paste0(" ", paste(dim(v), collapse = "x")), ">")
        paste0(if (nzchar(nm[i])) paste0(nm[i], "="), substr(s, 1, 60))
    }, character(1))
    gsub("[\t\n]+", " ", paste(d, collapse = ", "))
}
`%||%` <- function(a, b) if (is.null(a)) b else a

record <- function(id, call, r, seconds) {
    msg <- gsub("[\t\n]+", " ", substr(r$message, 1, 300))
    cat(sprintf("%d\t%s\t%s\t%s\t%.2f\t%s\t%s\n", id, as.character(call[[1]]), r$outcome, r$class, seconds, msg,
                describe(call)),
        file = calls_file, append = TRUE)
    if (!r$outcome %in% c("ok", "classed")) {
        saveRDS(list(call = call, result = r), file.path(out_dir, sprintf("case-%d.rds", id)))
    }
    r$outcome
}

running <- list()
outcomes <- character(0)
shown <- 0L
next_id <- 1L
started <- Sys.time()
while (next_id <= n_calls || length(running)) {
    while (length(running) < jobs && next_id <= n_calls) {
        call <- random_call()
        job <- parallel::mcparallel(run_here(call), silent = TRUE, mc.set.seed = TRUE)
        running[[as.character(job$pid)]] <- list(job = job, call = call, id = next_id, t0 = Sys.time())
        next_id <- next_id + 1L
    }
    done <- parallel::mccollect(lapply(running, `[[`, "job"), wait = FALSE, timeout = 0.05)
    for (pid in names(done)) {
        key <- names(running)[vapply(running, function(r) as.character(r$job$pid) == pid, logical(1))]
        if (!length(key)) next
        r <- running[[key]]
        res <- done[[pid]]
        if (!is.list(res) || is.null(res$outcome)) {
            res <- list(outcome = "crash", class = "", message = paste("the child died:", paste(format(res), collapse = " ")))
        }
        outcomes <- c(outcomes, record(r$id, r$call, res, as.numeric(difftime(Sys.time(), r$t0, units = "secs"))))
        running[[key]] <- NULL
    }
    # a child that finished without a result (killed by a signal) never shows in
    # mccollect's answer: reap it by pid
    for (key in names(running)) {
        r <- running[[key]]
        age <- as.numeric(difftime(Sys.time(), r$t0, units = "secs"))
        alive <- tools::pskill(r$job$pid, 0L)
        if (age > timeout || !alive) {
            if (alive) tools::pskill(r$job$pid, tools::SIGKILL)
            late <- parallel::mccollect(r$job, wait = FALSE, timeout = 1)
            res <- if (is.list(late) && is.list(late[[1]]) && !is.null(late[[1]]$outcome)) late[[1]]
                   else if (alive) list(outcome = "hang", class = "", message = sprintf("killed after %.0f s", age))
                   else list(outcome = "crash", class = "", message = "the child died without a result")
            outcomes <- c(outcomes, record(r$id, r$call, res, age))
            running[[key]] <- NULL
        }
    }
    if (length(outcomes) >= shown + 500L) {
        shown <- length(outcomes)
        cat(sprintf("%d calls, %.0f s: %s\n", shown, as.numeric(difftime(Sys.time(), started, units = "secs")),
                    paste(names(table(outcomes)), table(outcomes), collapse = ", ")))
    }
}

tab <- table(factor(outcomes, levels = c("ok", "classed", "unclassed", "crash", "hang")))
cat(sprintf("\n%d calls in %.0f s (seed %d, %d at a time, %.0f s and %s address space per call)\n",
            length(outcomes), as.numeric(difftime(Sys.time(), started, units = "secs")), seed, jobs, timeout,
            format(structure(memory, class = "object_size"), units = "auto", standard = "SI")))
print(tab)
calls <- utils::read.delim(calls_file, quote = "", stringsAsFactors = FALSE)
bad <- calls[!calls$outcome %in% c("ok", "classed"), ]
if (nrow(bad)) {
    cat("\nNot ok or classed, by function and message (first 80 characters):\n")
    key <- paste(bad$outcome, bad$`function`, substr(bad$message, 1, 80))
    print(utils::head(sort(table(key), decreasing = TRUE), 40))
}
cat("\nBy function:\n")
print(table(calls$`function`, factor(calls$outcome, levels = names(tab))))
