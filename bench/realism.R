# Realism benchmark (issue 12): how hard are generated cells to tell from held-out
# real cells, and how much do they help a classifier trained on few real cells?
#
#   Rscript bench/realism.R [--data bladder,celseq,celseq100,yan,sim] [--variants v1,v2,...]
#                           [--epochs 100] [--threads 2] [--no-utility] [--utility-only]
#                           [--seeds 3] [--out results.tsv] [--genes all] [--shared ../shared/data]
#
# Protocol (../shared/notes/realism.md): the model trains on every gene detected in at
# least 3 cells (`--genes 2000`: on the 2,000 most variable genes of the log-normalised
# counts instead, which is faster and a different protocol: library sizes then count
# those genes only); assess_aug() compares cells on the 2,000 genes most variable in
# the held-out cells. A stratified half of each class trains the model, the other
# half is the reference; as many cells per class are generated as the reference has,
# and assess_aug(held-out, generated, n_pcs = 50) gives every number (the training
# half is the generator's `train`). Reference rows on the same split: `copy` (the
# training half itself as "generated": the best a generator can do at that size, and
# what memorisation looks like) and `independent` (each gene drawn independently
# from its class's training cells).
# Utility: the same generator fitted on 10 % of each class of the training half (at
# least 3 cells) generates each class back to its size in that half; assess_aug's
# augmentation rows compare a few-cell classifier with and without those cells on
# the held-out half (gain = with - without).
# Data: mouse_bladder and celseq2_3cl (UMI counts), yan (RPKM: only the bce
# variants, which model it as VAExprs does), and a simulated NB data set.
# Variants are the entries of `variants` below: fit_vae() and gen_exprs() arguments.
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[max(i) + 1L]
}
flag <- function(name) any(args == paste0("--", name))
shared <- opt("shared", file.path("..", "shared", "data"))
which_data <- strsplit(opt("data", "bladder,celseq,yan,sim"), ",")[[1]]
epochs <- as.integer(opt("epochs", "100"))
threads <- as.integer(opt("threads", "2"))
out_file <- opt("out", "")
n_seeds <- as.integer(opt("seeds", "3"))
utility_only <- flag("utility-only")
n_genes <- opt("genes", "all")
utility <- !flag("no-utility")
suppressMessages({library(exprsgen); library(SingleCellExperiment)})

hidden <- function(units, genes, lik, depth = 1L) {
    out <- if (lik %in% c("bce", "mse")) "sigmoid" else "linear"
    list(encoder_layers = c(list(layer_input(genes)), rep(list(layer_dense(units, "relu")), depth)),
         decoder_layers = c(rep(list(layer_dense(units, "relu")), depth), list(layer_dense(genes, out))))
}

# name = list(likelihood, fit = extra fit_vae() arguments (a function of the number of
# genes), gen = extra gen_exprs() arguments)
l10 <- function(...) {
    extra <- list(...)
    function(g) c(hidden(128, g, "nb"), list(latent_dim = 10), extra)
}
post <- list(latent = "posterior")
t_post <- function(t) list(latent = "posterior", temperature = t)
# a validation tenth for the schedule and early stopping
val_es <- function(...) l10(validation_split = 0.1, callbacks = list(
    callback_early_stopping(patience = 20, restore_best_weights = TRUE),
    callback_reduce_lr_on_plateau(factor = 0.5, patience = 8)), ...)
variants <- list(
    bce_vaexprs = list(likelihood = "bce", fit = function(g) list()),
    nb_defaults = list(likelihood = "nb", fit = function(g) list()),
    nb_l10_h128 = list(likelihood = "nb", fit = l10()),
    nb_l10_h128_post = list(likelihood = "nb", fit = l10(), gen = post),
    nb_l10_e300 = list(likelihood = "nb", fit = l10(), epochs = 300),
    nb_l10_e300_post = list(likelihood = "nb", fit = l10(), epochs = 300, gen = post),
    nb_l10_warm = list(likelihood = "nb", fit = l10(kl_warmup = 50)),
    nb_l10_warm_post = list(likelihood = "nb", fit = l10(kl_warmup = 50), gen = post),
    nb_l10_sched = list(likelihood = "nb", fit = val_es(kl_warmup = 50), epochs = 400),
    nb_l10_sched_post = list(likelihood = "nb", fit = val_es(kl_warmup = 50), epochs = 400, gen = post),
    zinb_l10_post = list(likelihood = "zinb", fit = l10(), gen = post),
    # a lighter KL term (beta-VAE, beta < 1) keeps more of each cell in its code
    nb_l10_beta05_post = list(likelihood = "nb", fit = l10(regularization = 0.5), gen = post),
    nb_l10_beta02_post = list(likelihood = "nb", fit = l10(regularization = 0.2), gen = post),
    nb_l20_beta05_post = list(likelihood = "nb", gen = post,
                              fit = function(g) c(hidden(128, g, "nb"), list(latent_dim = 20, regularization = 0.5))),
    nb_l10_h256_post = list(likelihood = "nb", gen = post,
                            fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 10))),
    nb_l10_d2_post = list(likelihood = "nb", gen = post,
                          fit = function(g) c(hidden(128, g, "nb", depth = 2L), list(latent_dim = 10))),
    # a heavier KL term (beta > 1): codes that keep less of each cell's sampling noise
    nb_l10_beta2_post = list(likelihood = "nb", fit = l10(regularization = 2), gen = post),
    nb_l10_beta3_post = list(likelihood = "nb", fit = l10(regularization = 3), gen = post),
    nb_l10_beta3_gmm = list(likelihood = "nb", fit = l10(regularization = 3), gen = list(latent = "gmm")),
    nb_l10_beta5_post = list(likelihood = "nb", fit = l10(regularization = 5), gen = post),
    nb_l10_beta3_e300_post = list(likelihood = "nb", fit = l10(regularization = 3), gen = post, epochs = 300),
    # more optimizer steps: smaller batches, or larger ones taken further
    nb_l10_bs32_post = list(likelihood = "nb", fit = l10(), gen = post, batch_size = 32),
    nb_l10_bs64_post = list(likelihood = "nb", fit = l10(), gen = post, batch_size = 64),
    nb_l10_e200_post = list(likelihood = "nb", fit = l10(), gen = post, epochs = 200),
    nb_l10_lr3_post = list(likelihood = "nb", fit = l10(optimizer = optimizer_adam(3e-3)), gen = post),
    nb_l10_lr3_e300_post = list(likelihood = "nb", fit = l10(optimizer = optimizer_adam(3e-3)), gen = post,
                                epochs = 300),
    nb_l10_bs32_e300_post = list(likelihood = "nb", fit = l10(), gen = post, batch_size = 32, epochs = 300),
    # issue 22: the package as a user calls it (no settings), and the levers measured
    defaults = list(likelihood = "nb", fit = function(g) list(), auto = TRUE),
    today = list(likelihood = "nb", fit = l10(), gen = post, epochs = 200),
    nb_l2_h256_gmm = list(likelihood = "nb", fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 2)),
                          gen = list(latent = "gmm"), epochs = 200),
    nb_l10_t15 = list(likelihood = "nb", fit = l10(), gen = t_post(1.5), epochs = 200),
    nb_l10_t2 = list(likelihood = "nb", fit = l10(), gen = t_post(2), epochs = 200),
    nb_l10_bs16_e100 = list(likelihood = "nb", fit = l10(), gen = post, batch_size = 16, epochs = 100),
    nb_l10_bs16_e200 = list(likelihood = "nb", fit = l10(), gen = post, batch_size = 16, epochs = 200),
    nb_l10_bs16_e200_t15 = list(likelihood = "nb", fit = l10(), gen = t_post(1.5), batch_size = 16, epochs = 200),
    nb_l10_bs32_e200 = list(likelihood = "nb", fit = l10(), gen = post, batch_size = 32, epochs = 200),
    nb_l10_e100 = list(likelihood = "nb", fit = l10(), gen = post, epochs = 100),
    nb_l10_e50 = list(likelihood = "nb", fit = l10(), gen = post, epochs = 50),
    nb_l10_gmm = list(likelihood = "nb", fit = l10(), gen = list(latent = "gmm"), epochs = 200),
    nb_l2_h128_gmm = list(likelihood = "nb", fit = function(g) c(hidden(128, g, "nb"), list(latent_dim = 2)),
                          gen = list(latent = "gmm"), epochs = 200),
    nb_l2_h128_post = list(likelihood = "nb", fit = function(g) c(hidden(128, g, "nb"), list(latent_dim = 2)),
                           gen = post, epochs = 200),
    nb_l2_h128_e100_gmm = list(likelihood = "nb", fit = function(g) c(hidden(128, g, "nb"), list(latent_dim = 2)),
                               gen = list(latent = "gmm"), epochs = 100),
    nb_l10_h256_e200 = list(likelihood = "nb", gen = post, epochs = 200,
                            fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 10))),
    nb_l10_h256_gmm = list(likelihood = "nb", gen = list(latent = "gmm"), epochs = 200,
                           fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 10))),
    nb_l2_h256_post = list(likelihood = "nb", gen = post, epochs = 200,
                           fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 2))),
    nb_l10_h512_e200 = list(likelihood = "nb", gen = post, epochs = 200,
                            fit = function(g) c(hidden(512, g, "nb"), list(latent_dim = 10))),
    nb_l5_h256_e200 = list(likelihood = "nb", gen = post, epochs = 200,
                           fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 5))),
    nb_l2_h256_gmm_lognormal = list(likelihood = "nb", fit = function(g) c(hidden(256, g, "nb"), list(latent_dim = 2)),
                                    gen = list(latent = "gmm", library_size = "lognormal"), epochs = 200),
    nb_l10_lognormal = list(likelihood = "nb", fit = l10(), gen = list(latent = "posterior", library_size = "lognormal"),
                            epochs = 200),
    nb_l10_e400 = list(likelihood = "nb", fit = l10(), gen = post, epochs = 400),       # scVI's epoch rule below 20,000 cells
    nb_l10_warmall = list(likelihood = "nb", fit = l10(kl_warmup = 200), gen = post, epochs = 200),  # scVI: warm-up all along
    nb_l10_drop = list(likelihood = "nb", gen = post, epochs = 200, fit = function(g) list(
        encoder_layers = list(layer_input(g), layer_dense(128, "relu"), layer_dropout(0.1)),
        decoder_layers = list(layer_dense(128, "relu"), layer_dropout(0.1), layer_dense(g, "linear")),
        latent_dim = 10)),
    zinb_l10_e200 = list(likelihood = "zinb", fit = l10(), gen = post, epochs = 200)
)
chosen <- strsplit(opt("variants", paste(names(variants), collapse = ",")), ",")[[1]]
unknown <- setdiff(chosen, c(names(variants), "copy", "independent"))
if (length(unknown)) stop("unknown variants: ", paste(unknown, collapse = ", "))

read_mtx <- function(dir) {
    m <- methods::as(Matrix::readMM(gzfile(file.path(dir, "counts.mtx.gz"))), "CsparseMatrix")
    dimnames(m) <- list(readLines(file.path(dir, "genes.txt")), readLines(file.path(dir, "cells.txt")))
    lab <- utils::read.delim(file.path(dir, "labels.tsv"))
    list(counts = m, label = factor(lab$label[match(colnames(m), lab[[1]])] %||% lab$label), counts_data = TRUE)
}
`%||%` <- function(a, b) if (is.null(a) || anyNA(a)) b else a

simulated <- function(n_per = 250, genes = 2000, types = 4) {
    set.seed(7)
    base <- stats::rgamma(genes, shape = 0.3, rate = 1)
    prof <- sapply(seq_len(types), function(k) {
        p <- base
        up <- sample.int(genes, 150)
        p[up] <- p[up] * 6 + 0.2
        p / sum(p)
    })
    label <- factor(rep(paste0("type", seq_len(types)), each = n_per))
    n <- length(label)
    # two gene programs whose activity varies from cell to cell (co-variation within a type)
    prog <- split(sample.int(genes, 200), rep(1:2, each = 100))
    mu <- prof[, as.integer(label)]
    for (p in prog) mu[p, ] <- mu[p, ] * rep(exp(stats::rnorm(n, 0, 0.6)), each = length(p))
    lib <- round(stats::rlnorm(n, log(5000), 0.5))
    mu <- sweep(mu, 2, colSums(mu), "/") * rep(lib, each = genes)
    x <- matrix(stats::rnbinom(length(mu), size = 1.5, mu = mu), genes)
    dimnames(x) <- list(paste0("g", seq_len(genes)), paste0("c", seq_len(n)))
    list(counts = Matrix::Matrix(x, sparse = TRUE), label = label, counts_data = TRUE)
}

datasets <- list(
    bladder = function() read_mtx(file.path(shared, "mouse_bladder")),
    celseq = function() read_mtx(file.path(shared, "celseq2_3cl")),
    celseq100 = function() read_mtx(file.path(shared, "celseq2_3cl")),
    yan = function() {
        d <- read_mtx(file.path(shared, "yan"))
        d$counts_data <- FALSE
        d
    },
    sim = simulated
)

lognorm <- function(counts) {
    lib <- Matrix::colSums(counts)
    log1p(Matrix::t(Matrix::t(counts) / lib * stats::median(lib)))
}

# Genes detected in >= 3 cells (then, with --genes N, the N most variable).
prepare <- function(d) {
    counts <- d$counts[Matrix::rowSums(d$counts > 0) >= 3, ]
    if (n_genes != "all") {
        l <- lognorm(counts)
        v <- Matrix::rowMeans(l^2) - Matrix::rowMeans(l)^2
        counts <- counts[order(v, decreasing = TRUE)[seq_len(min(as.integer(n_genes), length(v)))], ]
    }
    keep <- Matrix::colSums(counts) > 0
    list(counts = counts[, keep], label = droplevels(d$label[keep]), counts_data = d$counts_data)
}

stratified <- function(label, share) {
    idx <- unlist(lapply(split(seq_along(label), label), function(i) {
        i[sample.int(length(i), max(min(3L, length(i)), round(share * length(i))))]
    }), use.names = FALSE)
    sort(idx)
}

sce_of <- function(counts, label) {
    SingleCellExperiment(assays = list(counts = counts), colData = S4Vectors::DataFrame(label = label))
}

# Each gene drawn from its class's cells independently (counts, genes x cells).
independent_genes <- function(counts, label, sizes) {
    parts <- lapply(names(sizes), function(cl) {
        x <- as.matrix(counts[, label == cl, drop = FALSE])
        n <- sizes[[cl]]
        cols <- matrix(sample.int(ncol(x), nrow(x) * n, replace = TRUE), nrow(x))
        matrix(x[cbind(rep(seq_len(nrow(x)), n), as.vector(cols))], nrow(x))
    })
    x <- do.call(cbind, parts)
    dimnames(x) <- list(rownames(counts), paste0("ind", seq_len(ncol(x))))
    list(x = Matrix::Matrix(x, sparse = TRUE), y = factor(rep(names(sizes), sizes), levels = levels(label)))
}

# Variants that differ only in gen_exprs() arguments share their fits.
fits <- new.env()
fit_and_generate <- function(v, sce, sizes, ep, seed = 1) {
    g <- nrow(sce)
    steps <- if (isTRUE(v$auto)) list() else list(epochs = ep, batch_size = v$batch_size %||% 128L)
    args <- c(list(likelihood = v$likelihood), steps, list(seed = seed, num.threads = threads, verbose = FALSE),
              v$fit(g))
    key <- paste(ncol(sce), paste(deparse(args), collapse = ""))
    if (is.null(fits[[key]])) {
        t <- system.time(fit <- do.call(fit_vae, c(list(sce, labels = "label"), args)))[["elapsed"]]
        fits[[key]] <- list(fit = fit, seconds = t)
    }
    fit <- fits[[key]]$fit
    t <- fits[[key]]$seconds
    set.seed(1 + seed)
    gen <- suppressMessages(do.call(gen_exprs, c(list(fit, labels = sizes), v$gen)))
    list(gen = gen, seconds = t, epochs = fit$params$epochs_run %||% nrow(fit$history))
}

# Smooth (bce/mse) models generate log-normalised values (scuttle::logNormCounts of
# the training cells, as fit_vae() does): they are compared with the held-out cells'.
assess <- function(held, gen, labels_gen = NULL, train = NULL, labels_train = NULL, smooth = FALSE) {
    if (smooth) held <- scuttle::logNormCounts(held)
    as.data.frame(assess_aug(held, gen, labels_real = "label", labels_gen = labels_gen, train = train,
                             labels_train = labels_train, n_pcs = 50, seed = 1, num.threads = threads,
                             assay.type = if (smooth) "logcounts", transform = if (smooth) "none" else "auto"))
}

rows <- list()
record <- function(data, variant, a, seconds = NA, epochs_run = NA) {
    a$data <- data
    a$variant <- variant
    a$fit_s <- seconds
    a$epochs_run <- epochs_run
    rows[[length(rows) + 1L]] <<- a
    if (nzchar(out_file)) {  # written as it goes, so a long run that stops keeps its rows
        utils::write.table(a, out_file, sep = "\t", quote = FALSE, row.names = FALSE,
                           append = length(rows) > 1L, col.names = length(rows) == 1L)
    }
    auc <- a$value[a$metric == "classifier_auc"]
    cat(sprintf("  %-22s AUC %s  fit %s s\n", variant, if (length(auc)) sprintf("%.3f", auc) else "-",
                format(round(seconds, 1))))
}

for (dn in which_data) {
    set.seed(1)
    d <- prepare(datasets[[dn]]())
    half_idx <- stratified(d$label, 0.5)
    held_idx <- setdiff(seq_along(d$label), half_idx)
    train_idx <- half_idx
    if (dn == "celseq100") train_idx <- sort(half_idx[stratified(d$label[half_idx], 100 / length(half_idx))])
    train_sce <- sce_of(d$counts[, train_idx], d$label[train_idx])
    held_sce <- sce_of(d$counts[, held_idx], d$label[held_idx])
    sizes <- table(d$label[held_idx])
    sizes <- stats::setNames(as.integer(sizes), names(sizes))
    # few cells for the utility runs: 10 % of each class of the training half, >= 3
    set.seed(3)
    few_idx <- train_idx[stratified(d$label[train_idx], 0.1)]
    few_sce <- sce_of(d$counts[, few_idx], d$label[few_idx])
    back <- table(d$label[train_idx])
    back <- stats::setNames(as.integer(back), names(back))
    rm(list = ls(fits), envir = fits)
    cat(sprintf("%s: %d genes, %d training, %d held-out, %d few cells, %d classes\n", dn, nrow(d$counts),
                length(train_idx), length(held_idx), length(few_idx), nlevels(d$label)))
    aug <- function(a) a[grepl("^augmentation", a$metric), ]
    for (vn in chosen) {
        if (vn == "copy") {
            a <- if (!utility_only) assess(held_sce, train_sce, labels_gen = train_sce$label, train = train_sce,
                                           labels_train = train_sce$label)
            if (utility) {
                # the best augmentation there is: the rest of the training half, real cells
                u <- assess(held_sce, train_sce, labels_gen = train_sce$label, train = few_sce,
                            labels_train = few_sce$label)
                a <- rbind(a[!grepl("^augmentation", a$metric), ], aug(u))
            }
            record(dn, vn, a)
            next
        }
        if (vn == "independent") {
            set.seed(2)
            a <- NULL
            if (!utility_only) {
                ind <- independent_genes(counts(train_sce), train_sce$label, sizes)
                a <- assess(held_sce, ind$x, ind$y, train_sce, train_sce$label)
            }
            if (utility) {
                ind_few <- independent_genes(counts(few_sce), few_sce$label, back)
                u <- assess(held_sce, ind_few$x, ind_few$y, few_sce, few_sce$label)
                a <- rbind(a[!grepl("^augmentation", a$metric), ], aug(u))
            }
            record(dn, vn, a)
            next
        }
        v <- variants[[vn]]
        if (!d$counts_data && !v$likelihood %in% c("bce", "mse")) next
        smooth <- v$likelihood %in% c("bce", "mse")
        ep <- v$epochs %||% epochs
        r <- list(seconds = NA, epochs = NA)
        a <- NULL
        if (!utility_only) {
            r <- fit_and_generate(v, train_sce, sizes, ep)
            a <- assess(held_sce, r$gen, smooth = smooth)
        }
        if (utility) {
            # the headline: the few-cell gain for n_seeds generator seeds, mean and spread
            per_seed <- lapply(seq_len(n_seeds), function(s) {
                u <- fit_and_generate(v, few_sce, back, v$epochs %||% max(epochs, 200L), seed = s)
                aug(assess(held_sce, u$gen, smooth = smooth))
            })
            ua <- per_seed[[1]]
            ua$value <- Reduce(`+`, lapply(per_seed, `[[`, "value")) / n_seeds
            ua$reference <- Reduce(`+`, lapply(per_seed, `[[`, "reference")) / n_seeds
            gains <- vapply(per_seed, function(u) u$value[1] - u$reference[1], numeric(1))
            sd_row <- ua[1, ]
            sd_row$metric <- "augmentation_gain_sd"
            sd_row$value <- if (n_seeds > 1L) stats::sd(gains) else NA_real_
            sd_row$reference <- NA_real_
            a <- rbind(a[!grepl("^augmentation", a$metric), ], ua, sd_row)
            cat(sprintf("  %-22s utility gains %s\n", vn, paste(sprintf("%+.3f", gains), collapse = " ")))
        }
        record(dn, vn, a, r$seconds, r$epochs)
    }
}

results <- do.call(rbind, rows)

# One line per data set and variant: value (reference) of the main metrics.
wide <- do.call(rbind, lapply(split(results, list(results$data, results$variant), drop = TRUE), function(a) {
    v <- function(m) a$value[a$metric == m][1]
    r <- function(m) a$reference[a$metric == m][1]
    f <- function(x) if (is.null(x) || length(x) == 0L || is.na(x)) "-" else sprintf("%.2f", x)
    vr <- function(m) paste0(f(v(m)), "/", f(r(m)))
    gain <- function(m) if (is.na(v(m) - r(m))) "-" else sprintf("%+.3f", v(m) - r(m))
    data.frame(data = a$data[1], variant = a$variant[1], auc = f(v("classifier_auc")),
               mmd = vr("mmd"), knn = f(v("knn_mixing")), gene_mean = f(v("gene_mean_cor")),
               gene_gene = vr("gene_gene_cor"), within = vr("within_class_gene_cor"),
               label_acc = vr("label_accuracy"), markers = vr("marker_overlap"),
               memo = f(v("memorisation")), closer = vr("closer_to_train"),
               lib_ks = f(v("library_size_ks")),
               util = paste0(f(r("augmentation_accuracy")), gain("augmentation_accuracy")),
               util_sd = f(v("augmentation_gain_sd")),
               rare = paste0(f(r("augmentation_rare_recall")), gain("augmentation_rare_recall")),
               fit_s = f(a$fit_s[1]), stringsAsFactors = FALSE)
}))
wide <- wide[order(match(wide$data, which_data), match(wide$variant, chosen)), ]
cat("\nvalue/reference; util, rare: without + gain from generated cells; knn = knn_mixing (1 = mixed)\n")
print(wide, row.names = FALSE)
