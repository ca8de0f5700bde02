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
    expect_error(gen_exprs(broken, 10), "decoder_2", class = "exprsgen_error_core")
})
