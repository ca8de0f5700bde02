# Realism check (issue 3): hold out half of each class, fit a CVAE on the other half
# with the bce, nb and zinb likelihoods, generate as many cells per class as were
# held out, and compare generated with held-out cells.
#
#   Rscript bench/realism.R [path/to/shared/data]      (default ../shared/data)
#
# Data: a simulated NB count data set with four cell types, and celseq2_3cl (UMI
# counts, three cell lines) from shared/data. Metrics, all on log-normalised values
# (library-size factors, log2(x + 1)) of the 2,000 most variable genes:
#   knn_mixing  mean share of other-origin cells among each cell's 10 nearest
#               neighbours in the held-out cells' PCA space (top 10 PCs), pooled
#               held-out + generated; 0.5 = fully mixed, 0 = separate
#   cor_mean    correlation of per-gene means (generated vs held-out)
#   cor_var     correlation of per-gene variances
#   cor_zero    correlation of per-gene fractions of zeros
#   zero_frac   overall fraction of zeros, generated (held-out in brackets)
#   ks_libsize  Kolmogorov-Smirnov distance of library sizes (count models only)
args <- commandArgs(trailingOnly = TRUE)
shared <- if (length(args)) args[1] else file.path("..", "shared", "data")
suppressMessages({library(exprsgen); library(SingleCellExperiment)})

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
    lib <- round(stats::rlnorm(length(label), log(5000), 0.5))
    mu <- prof[, as.integer(label)] * rep(lib, each = genes)
    x <- matrix(stats::rnbinom(length(mu), size = 1.5, mu = mu), genes)
    # dropouts on top: a quarter of the expressed entries of low-mean genes
    drop <- stats::runif(length(x)) < 0.25 * (mu < 1)
    x[drop] <- 0
    dimnames(x) <- list(paste0("g", seq_len(genes)), paste0("c", seq_along(label)))
    list(counts = Matrix::Matrix(x, sparse = TRUE), label = label)
}

celseq <- function(dir) {
    m <- Matrix::readMM(gzfile(file.path(dir, "counts.mtx.gz")))
    m <- methods::as(m, "CsparseMatrix")
    dimnames(m) <- list(readLines(file.path(dir, "genes.txt")), readLines(file.path(dir, "cells.txt")))
    lab <- utils::read.delim(file.path(dir, "labels.tsv"))
    list(counts = m, label = factor(lab$label))
}

lognorm <- function(counts) {
    as.matrix(scuttle::normalizeCounts(counts, size.factors = scuttle::librarySizeFactors(counts)))
}

evaluate <- function(real_log, gen_log, real_counts = NULL, gen_counts = NULL) {
    pca <- stats::prcomp(t(real_log), rank. = 10)
    proj <- function(m) scale(t(m), center = pca$center, scale = FALSE) %*% pca$rotation
    pts <- rbind(proj(real_log), proj(gen_log))
    origin <- rep(c("real", "gen"), c(ncol(real_log), ncol(gen_log)))
    d <- as.matrix(stats::dist(pts))
    diag(d) <- Inf
    nn <- t(apply(d, 1, function(r) order(r)[1:10]))
    mixing <- mean(rowMeans(matrix(origin[nn], nrow(nn)) != origin))
    zero <- function(m) rowMeans(m == 0)
    out <- data.frame(knn_mixing = mixing,
                      cor_mean = stats::cor(rowMeans(real_log), rowMeans(gen_log)),
                      cor_var = stats::cor(apply(real_log, 1, stats::var), apply(gen_log, 1, stats::var)),
                      cor_zero = stats::cor(zero(real_log), zero(gen_log)),
                      zero_frac = sprintf("%.3f (%.3f)", mean(gen_log == 0), mean(real_log == 0)),
                      ks_libsize = NA_real_)
    if (!is.null(gen_counts)) {
        out$ks_libsize <- suppressWarnings(stats::ks.test(Matrix::colSums(real_counts),
                                                          Matrix::colSums(gen_counts))$statistic)
    }
    out
}

check <- function(name, data) {
    set.seed(1)
    counts <- data$counts[Matrix::rowSums(data$counts > 0) >= 3, ]
    # the 2,000 most variable genes of the log-normalised data
    v <- apply(lognorm(counts), 1, stats::var)
    counts <- counts[order(v, decreasing = TRUE)[seq_len(min(2000, length(v)))], ]
    counts <- counts[, Matrix::colSums(counts) > 0]
    label <- droplevels(data$label[match(colnames(counts), colnames(data$counts))])
    held <- unlist(lapply(split(seq_along(label), label), function(i) i[sample.int(length(i), length(i) %/% 2)]))
    train <- setdiff(seq_along(label), held)
    sce <- SingleCellExperiment(assays = list(counts = counts[, train]),
                                colData = S4Vectors::DataFrame(label = label[train]))
    want <- table(label[held])
    real_counts <- counts[, held]
    real_log <- lognorm(real_counts)
    genes <- nrow(counts)
    rows <- list()
    for (lik in c("bce", "nb", "zinb")) {
        t <- system.time(fit <- fit_vae(sce, labels = "label", likelihood = lik,
            encoder_layers = list(layer_input(genes), layer_dense(128, "relu")),
            decoder_layers = list(layer_dense(128, "relu"),
                                  layer_dense(genes, if (lik == "bce") "sigmoid" else "linear")),
            latent_dim = 10, epochs = 100, batch_size = 32, seed = 1, verbose = FALSE))[["elapsed"]]
        set.seed(2)
        gen <- suppressMessages(gen_exprs(fit, labels = stats::setNames(as.integer(want), names(want))))
        if (lik == "bce") {
            gen_log <- t(gen$x_gen)
            res <- evaluate(real_log, gen_log)
        } else {
            gen_counts <- Matrix::t(methods::as(gen$x_gen, "CsparseMatrix"))
            res <- evaluate(real_log, lognorm(gen_counts), real_counts, gen_counts)
        }
        rows[[lik]] <- cbind(data.frame(data = name, likelihood = lik, fit_s = round(t, 1)), res)
    }
    do.call(rbind, rows)
}

results <- rbind(check("simulated (4 types, 1000 cells)", simulated()),
                 check("celseq2_3cl (3 lines, 240 cells)", celseq(file.path(shared, "celseq2_3cl"))))
num <- vapply(results, is.numeric, logical(1))
results[num] <- lapply(results[num], function(v) round(v, 3))
print(results, row.names = FALSE)
