# The memorisation guard's estimator and remedies (issue 22), on real data:
#
#   Rscript bench/memorisation.R [--threads 2] [--overtrain-epochs 1000]
#
# 1. mouse_bladder, the stratified training half (1,048 cells), default fit: the
#    memorisation ratio against held-out cells (assess_aug(), 20 and 50 PCs), the
#    estimate from the training cells alone (gen_exprs()$memorisation, assess_aug(gen)),
#    and the held-out real cells judged by that estimate (1 for an unbiased estimator).
# 2. celseq2_3cl, 100 training cells, 16-cell batches trained far too long
#    (--overtrain-epochs, guard off): the same figures, then the posterior temperature
#    raised (1.5 to 4): does a warmer posterior undo the copies? And the same data
#    with the guard on: where does it stop?
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[max(i) + 1L]
}
threads <- as.integer(opt("threads", "2"))
over <- as.integer(opt("overtrain-epochs", "1000"))
suppressMessages({library(exprsgen); library(SingleCellExperiment)})

read_set <- function(name) {
    dir <- file.path("..", "shared", "data", name)
    m <- methods::as(Matrix::readMM(gzfile(file.path(dir, "counts.mtx.gz"))), "CsparseMatrix")
    dimnames(m) <- list(readLines(file.path(dir, "genes.txt")), readLines(file.path(dir, "cells.txt")))
    lab <- utils::read.delim(file.path(dir, "labels.tsv"))
    list(m = m, label = factor(lab$label[match(colnames(m), lab[[1]])]))
}
split_set <- function(d, n_train = NULL) {
    set.seed(1)
    tr <- sort(unlist(lapply(split(seq_along(d$label), d$label), function(i) i[sample.int(length(i), round(length(i) / 2))])))
    held <- setdiff(seq_along(d$label), tr)
    if (!is.null(n_train)) tr <- sort(sample(tr, n_train))
    m <- d$m[Matrix::rowSums(d$m[, tr] > 0) >= 3, ]
    sizes <- table(d$label[held])
    list(train = SingleCellExperiment(list(counts = m[, tr]), colData = S4Vectors::DataFrame(label = d$label[tr])),
         held = SingleCellExperiment(list(counts = m[, held]), colData = S4Vectors::DataFrame(label = d$label[held])),
         sizes = stats::setNames(as.integer(sizes), names(sizes)))
}
metric <- function(a, m) a$value[a$metric == m]
report <- function(s, gen, what) {
    for (np in c(20L, 50L)) {
        a <- assess_aug(s$held, gen, labels_real = "label", n_pcs = np, seed = 1, num.threads = threads)
        own <- assess_aug(gen, n_pcs = np, seed = 1, num.threads = threads)
        # the held-out real cells as if generated, judged against the training cells alone
        as_gen <- gen
        as_gen$x_gen <- Matrix::t(counts(s$held))
        rownames(as_gen$x_gen) <- paste0("gen", seq_len(nrow(as_gen$x_gen)))
        as_gen$y_gen <- s$held$label
        real <- assess_aug(as_gen, n_pcs = np, seed = 1, num.threads = threads)
        cat(sprintf("  %-34s %d PCs: held-out memorisation %.2f, closer_to_train %.2f (ref. %.2f); from the training cells: %.2f; held-out real cells so judged: %.2f\n",
                    what, np, metric(a, "memorisation"), metric(a, "closer_to_train"),
                    a$reference[a$metric == "closer_to_train"], metric(own, "memorisation"), metric(real, "memorisation")))
    }
}

cat("1. mouse_bladder, training half, default fit\n")
s <- split_set(read_set("mouse_bladder"))
fit <- fit_vae(s$train, labels = "label", likelihood = "nb", seed = 1, num.threads = threads, verbose = FALSE)
set.seed(2)
gen <- gen_exprs(fit, labels = s$sizes)
cat(sprintf("  gen_exprs()$memorisation %.2f; guard checks %s\n", gen$memorisation,
            paste(sprintf("%.2f", fit$params$guard$memorisation), collapse = " ")))
report(s, gen, "default fit")

cat(sprintf("2. celseq2_3cl, 100 training cells, %d epochs of 16-cell batches\n", over))
s <- split_set(read_set("celseq2_3cl"), n_train = 100L)
fit <- fit_vae(s$train, labels = "label", likelihood = "nb", epochs = over, batch_size = 16, latent_dim = 10,
               encoder_layers = list(layer_input(nrow(s$train)), layer_dense(128, "relu")),
               decoder_layers = list(layer_dense(128, "relu"), layer_dense(nrow(s$train))),
               seed = 1, num.threads = threads, verbose = FALSE, guard = FALSE)
for (t in c(1, 1.5, 2.25, 3.375, 4)) {
    set.seed(2)
    gen <- suppressWarnings(gen_exprs(fit, labels = s$sizes, latent = "posterior", temperature = t))
    report(s, gen, sprintf("guard off, temperature %.2f", t))
}
guarded <- fit_vae(s$train, labels = "label", likelihood = "nb", epochs = over, batch_size = 16, latent_dim = 10,
                   encoder_layers = list(layer_input(nrow(s$train)), layer_dense(128, "relu")),
                   decoder_layers = list(layer_dense(128, "relu"), layer_dense(nrow(s$train))),
                   seed = 1, num.threads = threads, verbose = FALSE)
cat(sprintf("  guard on: stopped (%s) with the model of epoch %d; checks: %s\n", guarded$params$stop_reason,
            guarded$params$epochs_run,
            paste(sprintf("%d:%.2f", guarded$params$guard$epoch, guarded$params$guard$memorisation), collapse = " ")))
set.seed(2)
gen <- gen_exprs(guarded, labels = s$sizes, latent = "posterior")
report(s, gen, "guard on")
