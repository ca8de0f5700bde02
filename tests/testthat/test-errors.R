# Bad input gives a classed error naming the argument, and changes nothing.

fit_args <- function(...) {
    args <- list(x_train = sim$x, encoder_layers = enc_layers(), decoder_layers = dec_layers(),
                 epochs = 2, batch_size = 16, verbose = FALSE)
    new <- list(...)
    args[names(new)] <- new
    args
}

expect_arg_error <- function(expr, pattern) {
    expect_error(expr, pattern, class = "exprsgen_error")
}

test_that("the VAExprs test cases give clear errors", {
    # miss an encoder
    expect_arg_error(fit_vae(x_train = sim$x, decoder_layers = dec_layers(), epochs = 2,
                             batch_size = 32, validation_split = 0.5, use_generator = FALSE),
                     "encoder_layers")
    # negative regularization parameter
    expect_arg_error(do.call(fit_vae, fit_args(regularization = -1)), "regularization")
    # miss epochs
    expect_arg_error(fit_vae(x_train = sim$x, encoder_layers = enc_layers(),
                             decoder_layers = dec_layers(), batch_size = 32,
                             validation_split = 0.5, use_generator = FALSE), "epochs")
    # miss batch_size
    expect_arg_error(fit_vae(x_train = sim$x, encoder_layers = enc_layers(),
                             decoder_layers = dec_layers(), epochs = 2,
                             validation_split = 0.5, use_generator = FALSE), "batch_size")
})

test_that("bad data give errors naming the argument", {
    x <- sim$x
    x[3, 4] <- NA
    expect_arg_error(do.call(fit_vae, fit_args(x_train = x)), "x_train.*NA")
    x[3, 4] <- Inf
    expect_arg_error(do.call(fit_vae, fit_args(x_train = x)), "x_train")
    expect_arg_error(do.call(fit_vae, fit_args(x_val = x)), "x_val")
    expect_arg_error(do.call(fit_vae, fit_args(x_train = letters)), "x_train")
    expect_arg_error(do.call(fit_vae, fit_args(x_val = sim$x[, 1:10])), "x_val")
    expect_arg_error(do.call(fit_vae, fit_args(object = "cells", x_train = NULL)), "object")
    sce <- SingleCellExperiment::SingleCellExperiment(assays = list(logcounts = t(sim$x)))
    expect_arg_error(do.call(fit_vae, fit_args(object = sce, x_train = NULL)), "assay.type")
})

test_that("bad labels give errors naming the argument", {
    expect_arg_error(do.call(fit_vae, fit_args(y_train = sim$group[-1])), "y_train.*119")
    y <- sim$group
    y[2] <- NA
    expect_arg_error(do.call(fit_vae, fit_args(y_train = y)), "y_train.*NA")
    expect_arg_error(do.call(fit_vae, fit_args(y_train = sim$group, x_val = sim$x)), "y_val")
    sce <- SingleCellExperiment::SingleCellExperiment(
        assays = list(logcounts = t(sim$x)), colData = S4Vectors::DataFrame(type = sim$group))
    expect_arg_error(do.call(fit_vae, fit_args(object = sce, x_train = NULL,
                                               assay.type = "logcounts", labels = "celltype")),
                     "labels.*celltype")
    expect_arg_error(do.call(fit_vae, fit_args(object = sce, x_train = NULL,
                                               assay.type = "logcounts", labels = sim$group[1:5])),
                     "labels")
})

test_that("bad architectures and settings give errors naming the argument", {
    expect_arg_error(layer_dense(10, "swish"), "activation")
    bad <- enc_layers()
    bad[[2]]$activation <- "swish"  # a hand-made layer list is checked too
    expect_arg_error(do.call(fit_vae, fit_args(encoder_layers = bad)), "encoder_layers")
    expect_arg_error(do.call(fit_vae, fit_args(optimizer = "lbfgs")), "optimizer")
    expect_arg_error(do.call(fit_vae, fit_args(decoder_layers = dec_layers(genes = 299))),
                     "decoder_layers.*299.*300")
    expect_arg_error(do.call(fit_vae, fit_args(encoder_layers = list(layer_input(10),
                                                                    layer_dense(8, "relu")))),
                     "encoder_layers.*shape")
    expect_arg_error(do.call(fit_vae, fit_args(latent_dim = 0)), "latent_dim")
    expect_arg_error(do.call(fit_vae, fit_args(batch_size = 1.5)), "batch_size")
    expect_arg_error(do.call(fit_vae, fit_args(validation_split = 1)), "validation_split")
    expect_arg_error(do.call(fit_vae, fit_args(num.threads = 0)), "num.threads")
    expect_arg_error(do.call(fit_vae, fit_args(callbacks = list("stop"))), "callbacks")
    expect_arg_error(callback_early_stopping(monitor = "accuracy"), "monitor")
    expect_arg_error(optimizer_adam(learning_rate = -1), "learning_rate")
    expect_arg_error(layer_dense(0), "units")
    expect_arg_error(layer_input(), "shape")
    expect_error(do.call(fit_vae, fit_args(shuffle = TRUE)), "unused argument")
})

test_that("errors leave the inputs and the global environment untouched", {
    x <- sim$x
    x_before <- x
    globals <- ls(globalenv(), all.names = TRUE)
    expect_error(do.call(fit_vae, fit_args(x_train = x, decoder_layers = dec_layers(genes = 5))))
    expect_error(do.call(fit_vae, fit_args(x_train = x, regularization = -1)))
    fit <- do.call(fit_vae, fit_args(x_train = x))
    expect_identical(x, x_before)
    expect_identical(ls(globalenv(), all.names = TRUE), globals)
})

test_that("gen_exprs rejects bad arguments", {
    fit <- quick_fit(x_train = sim$x, epochs = 1)
    expect_arg_error(gen_exprs(list(), 10), "fit_vae")
    expect_arg_error(gen_exprs(fit, 0), "num_samples")
    expect_arg_error(gen_exprs(fit), "num_samples")
    expect_arg_error(gen_exprs(fit, 10, batch_size = -2), "batch_size")
    broken <- fit
    broken$model$weights$decoder_2$bias <- 1:3 + 0
    expect_error(gen_exprs(broken, 10), "x.*decoder_2", class = "exprsgen_error_invalid_fit")
})

test_that("unclear failures of issue 23 (item 8) are classed errors naming the argument", {
    set.seed(1)
    counts <- matrix(rpois(60 * 30, 3), 60, 30, dimnames = list(NULL, paste0("g", 1:30)))
    lab <- c(rep("A", 29), rep("B", 30), "solo")
    # a class whose only cell went to validation (seed 1 puts it there)
    fit <- fit_vae(x_train = counts, y_train = lab, likelihood = "nb", epochs = 2, batch_size = 16,
                   verbose = FALSE, validation_split = 0.2, seed = 1)
    expect_false("solo" %in% as.character(fit$preprocessing$y_train))
    expect_error(suppressMessages(gen_exprs(fit, labels = c(solo = 5), latent = "gmm")),
                 "\"solo\" has no training cells", class = "exprsgen_error_argument")
    expect_identical(nrow(gen_exprs(fit, labels = c(solo = 5), latent = "prior")$x_gen), 5L)
    # print() of a fit without history rows
    empty <- fit
    empty$history <- empty$history[0, ]
    expect_output(print(empty), "for 0 epochs")
    # forged callbacks are checked as their constructors check them
    expect_error(fit_vae(x_train = counts, likelihood = "nb", epochs = 2, batch_size = 16, verbose = FALSE,
                         callbacks = structure(list(type = "nonsense"), class = "exprsgen_callback")),
                 "unknown type", class = "exprsgen_error_argument")
    expect_error(fit_vae(x_train = counts, likelihood = "nb", epochs = 2, batch_size = 16, verbose = FALSE,
                         callbacks = structure(list(type = "early_stopping"), class = "exprsgen_callback")),
                 "without", class = "exprsgen_error_argument")
    forged <- callback_early_stopping(monitor = "loss")
    forged$patience <- -1
    expect_error(fit_vae(x_train = counts, likelihood = "nb", epochs = 2, batch_size = 16, verbose = FALSE,
                         callbacks = forged), "patience", class = "exprsgen_error_argument")
    # weights and transform that do not fit the model: named in R, not by the core
    bad <- fit
    bad$model$weights[[1]]$kernel <- bad$model$weights[[1]]$kernel[-1, ]
    expect_error(gen_exprs(bad, 3), "x.*layer 'encoder_1'", class = "exprsgen_error_invalid_fit")
    bad <- fit
    bad$preprocessing$transform$target_sum <- -1
    expect_error(encode(bad), "fit.*target_sum", class = "exprsgen_error_invalid_fit")
    # duplicated genes reaching as_seurat()
    skip_if_not_installed("SeuratObject")
    g <- gen_exprs(fit, labels = c(A = 3))
    colnames(g$x_gen)[2] <- "g1"
    expect_error(as_seurat(g), "duplicated gene names", class = "exprsgen_error")
})

test_that("UMAP of a few cells and mixtures in many latent dimensions end quickly", {
    skip_if_not_installed("uwot")
    set.seed(2)
    counts <- matrix(rpois(4 * 30, 3), 4, 30, dimnames = list(NULL, paste0("g", 1:30)))
    fit <- fit_vae(x_train = counts, likelihood = "nb", epochs = 2, batch_size = 4, verbose = FALSE)
    expect_s3_class(plot_aug(gen_exprs(fit, 4), plot_fun = "UMAP"), "ggplot")
    expect_error(plot_aug(gen_exprs(fit, 4), plot_fun = "UMAP", n_neighbors = 50), "UMAP.*failed",
                 class = "exprsgen_error_argument")
    big <- matrix(rpois(40 * 30, 3), 40, 30, dimnames = list(NULL, paste0("g", 1:30)))
    wide <- fit_vae(x_train = big, likelihood = "nb", latent_dim = 600, epochs = 1, batch_size = 20, verbose = FALSE)
    t0 <- proc.time()[["elapsed"]]
    expect_message(g <- gen_exprs(wide, 5, latent = "gmm"), "600 latent dimensions", class = "exprsgen_message_draws")
    expect_identical(nrow(g$x_gen), 5L)
    # 40 dimensions: spherical and diagonal mixtures only
    mid <- fit_vae(x_train = big, likelihood = "nb", latent_dim = 40, epochs = 1, batch_size = 20, verbose = FALSE)
    expect_identical(nrow(gen_exprs(mid, 5, latent = "gmm")$x_gen), 5L)
})
