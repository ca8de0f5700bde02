# assess_aug() on cases with known answers, plot_history() and plot_assess().

# Three cell types with distinct NB profiles (genes x cells counts), so that genes
# are correlated through the cell types.
cts <- simulate_counts(n_per = 100, genes = 150, types = 3, seed = 11)
real <- as.matrix(cts$counts)

metric <- function(a, name) a$value[a$metric == name]
reference <- function(a, name) a$reference[a$metric == name]

test_that("a bootstrap of the real cells is indistinguishable but flagged as copies", {
    set.seed(1)
    boot <- real[, sample(ncol(real), ncol(real), replace = TRUE)]
    a <- assess_aug(real, boot, seed = 1)
    expect_s3_class(a, "exprsgen_assessment")
    expect_true(all(c("metric", "value", "reference", "best", "interpretation") %in% names(a)))
    expect_equal(attr(a, "details")$transform, "counts")
    expect_lt(abs(metric(a, "classifier_auc") - 0.5), 0.12)
    expect_gt(metric(a, "gene_mean_cor"), 0.98)
    expect_gt(metric(a, "gene_gene_cor"), 0.9)
    expect_lt(metric(a, "library_size_ks"), 0.15)
    expect_lt(abs(metric(a, "zeros_gap")), 0.02)
    # copies of training cells must be visible as such
    expect_lt(metric(a, "novelty"), 0.05)
    expect_gt(metric(a, "copies"), 0.9)
    expect_match(a$interpretation[a$metric == "copies"], "copies")
})

test_that("permuting each gene independently destroys gene-gene correlation only", {
    set.seed(2)
    perm <- t(apply(real, 1, sample))
    a <- assess_aug(real, perm, seed = 2)
    # the marginal gene properties are untouched ...
    expect_gt(metric(a, "gene_mean_cor"), 0.999)
    expect_gt(metric(a, "gene_var_cor"), 0.99)
    # ... the co-expression is gone, while real halves agree well
    expect_gt(reference(a, "gene_gene_cor"), 0.7)
    expect_lt(metric(a, "gene_gene_cor"), 0.3)
    expect_match(a$interpretation[a$metric == "gene_gene_cor"], "lost")
    # cells that mix the types are easy to tell apart and are not copies
    expect_gt(metric(a, "classifier_auc"), 0.8)
    expect_lt(metric(a, "copies"), 0.05)
})

test_that("generated cells of another type are flagged by labels, AUC and mixing", {
    type1 <- real[, cts$label == "type1"]
    type2 <- real[, cts$label == "type2"]
    a <- assess_aug(type1, type2, labels_real = rep("A", ncol(type1)), labels_gen = rep("A", ncol(type2)),
                    seed = 3)
    expect_gt(metric(a, "classifier_auc"), 0.95)
    expect_lt(metric(a, "knn_mixing"), 0.2)
    # with labels: a classifier trained on real cells (all types) predicts the labels
    both <- assess_aug(real, cbind(type2, type1),
                       labels_real = cts$label,
                       labels_gen = rep(c("type1", "type2"), c(ncol(type2), ncol(type1))), seed = 3)
    expect_lt(metric(both, "label_accuracy"), 0.2)
    expect_gt(reference(both, "label_accuracy"), 0.9)
    expect_lt(metric(both, "marker_overlap"), reference(both, "marker_overlap"))
    good <- assess_aug(real[, c(TRUE, FALSE)], real[, c(FALSE, TRUE)],
                       labels_real = cts$label[c(TRUE, FALSE)], labels_gen = cts$label[c(FALSE, TRUE)], seed = 3)
    expect_gt(metric(good, "label_accuracy"), 0.9)
    expect_gt(metric(good, "marker_overlap"), 0.5)
    expect_gt(metric(good, "knn_mixing"), 0.7)
    expect_lt(metric(good, "novelty"), 2)
    expect_gt(metric(good, "novelty"), 0.5)
})

test_that("assess_aug takes SingleCellExperiments and gen_exprs results; seeds reproduce", {
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = cts$counts))
    sce$type <- cts$label
    fit <- fit_vae(sce, labels = "type", likelihood = "nb", epochs = 3, batch_size = 32,
                   encoder_layers = list(layer_input(150), layer_dense(16, "relu")),
                   decoder_layers = list(layer_dense(16, "relu"), layer_dense(150, "linear")),
                   seed = 1, verbose = FALSE)
    set.seed(1)
    gen <- gen_exprs(fit, num_samples = 120)
    a1 <- assess_aug(gen, seed = 5)
    a2 <- assess_aug(sce, gen, labels_real = "type", seed = 5)
    expect_true("label_accuracy" %in% a1$metric)
    expect_equal(a1$value, a2$value)
    expect_equal(attr(a1, "details")$n_gen, 120)
    # R's random stream is left alone when a seed is given
    set.seed(9)
    x1 <- runif(1)
    set.seed(9)
    assess_aug(gen, seed = 5)
    x2 <- runif(1)
    expect_identical(x1, x2)
    expect_output(print(a1), "classifier_auc")
    # log-scale values are used as they are
    lg <- assess_aug(log1p(real), log1p(real[, 1:100]), seed = 1)
    expect_equal(attr(lg, "details")$transform, "none")
    expect_false("library_size_ks" %in% lg$metric)
    # smooth values without exact zeros: the gap in zeros says so
    smooth <- assess_aug(log1p(real), log1p(real) + 0.01, seed = 1)
    expect_equal(metric(smooth, "zeros_gap"), -mean(real == 0))
    expect_true(is.na(metric(smooth, "gene_zero_cor")))
    expect_match(smooth$interpretation[smooth$metric == "zeros_gap"], "fewer zeros")
})

test_that("assess_aug errors name the argument", {
    expect_error(assess_aug(real), "gen", class = "exprsgen_error_argument")
    expect_error(assess_aug(unname(real), unname(real[1:10, ])), "genes", class = "exprsgen_error_argument")
    expect_error(assess_aug(real, `rownames<-`(real, paste0("x", seq_len(nrow(real))))), "share 0 gene names",
                 class = "exprsgen_error_argument")
    expect_error(assess_aug(real, "x"), "gen", class = "exprsgen_error_argument")
    expect_error(assess_aug(real, real, labels_real = 1:3), "labels_real", class = "exprsgen_error_argument")
    expect_error(assess_aug(real, real, n_pcs = 0), "n_pcs", class = "exprsgen_error_argument")
    expect_error(assess_aug(real, real, transform = "sqrt"), "transform", class = "exprsgen_error_argument")
    expect_error(assess_aug(real, real + 0.5, transform = "counts"), "whole counts",
                 class = "exprsgen_error_argument")
    bad <- real
    bad[1, 1] <- NA
    expect_error(assess_aug(real, bad), "`gen` holds missing", class = "exprsgen_error_argument")
    expect_error(assess_aug(Matrix::Matrix(bad, sparse = TRUE), real), "`real` holds missing",
                 class = "exprsgen_error_argument")
})

test_that("plot_history and plot_assess draw what they are given", {
    fit <- quick_fit(x_train = sim$x, epochs = 6, validation_split = 0.2)
    p <- plot_history(fit)
    expect_s3_class(p, "ggplot")
    d <- ggplot2::layer_data(p, 1)
    expect_equal(nrow(d), 6 * 2 * 3)  # epochs x (training, validation) x parts
    expect_equal(sort(unique(p$data$set)), factor(c("training", "validation")))
    p1 <- plot_history(fit, components = FALSE)
    expect_equal(nrow(ggplot2::layer_data(p1, 1)), 6 * 2)
    expect_error(plot_history(list()), "fit", class = "exprsgen_error_argument")
    a <- assess_aug(real, real[, sample(ncol(real))], seed = 1)
    pa <- plot_assess(a)
    expect_s3_class(pa, "patchwork")
    expect_equal(length(pa$patches$plots) + 1L, 6L)
    path <- tempfile(fileext = ".png")
    ggplot2::ggsave(path, pa, width = 9, height = 6, dpi = 50)
    expect_gt(file.size(path), 1000)
    expect_error(plot_assess(data.frame()), "assess_aug", class = "exprsgen_error_argument")
    # the zero-fraction panel says when a side has no zeros (smooth generated values)
    zeros_panel <- pa$patches$plots[[3]]
    has_label <- function(p) any(vapply(p$layers, function(l) inherits(l$geom, "GeomLabel"), logical(1)))
    expect_false(has_label(zeros_panel))
    smooth <- real + 0.5
    a2 <- assess_aug(real, smooth, seed = 1, transform = "none")
    zeros2 <- plot_assess(a2)$patches$plots[[3]]
    expect_true(has_label(zeros2))
    expect_match(zeros2$labels$subtitle, "0% generated")
})
