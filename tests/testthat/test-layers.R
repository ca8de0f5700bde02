# layer_dropout() and layer_layer_normalization(): specifications, training in the
# fused step (= burn), deterministic under a seed, off at inference.

test_that("layer constructors give specifications and check their arguments", {
    d <- layer_dropout(0.25)
    expect_s3_class(d, "exprsgen_layer")
    expect_identical(d$rate, 0.25)
    expect_output(print(d), "dropout, rate 0.25")
    expect_output(print(layer_layer_normalization()), "layer normalization")
    expect_error(layer_dropout(1), "rate", class = "exprsgen_error")
    expect_error(layer_dropout(-0.1), "rate", class = "exprsgen_error")
    expect_error(layer_dropout(), "rate", class = "exprsgen_error")
    expect_error(layer_layer_normalization(axis = 2), "axis", class = "exprsgen_error")
})

local({
    set.seed(7)
    x <- matrix(rpois(120 * 40, 3), 120, 40, dimnames = list(NULL, paste0("g", 1:40)))
    lab <- rep(c("a", "b", "c"), 40)
    fit_with <- function(enc, dec, seed = 1, epochs = 4) {
        fit_vae(x_train = x, y_train = lab, likelihood = "nb",
                encoder_layers = c(list(layer_input(40)), enc), decoder_layers = dec,
                epochs = epochs, batch_size = 16, verbose = FALSE, seed = seed)
    }
    enc <- list(layer_dense(24, "relu"), layer_layer_normalization(), layer_dropout(0.3))
    dec <- list(layer_dense(16, "tanh"), layer_dropout(0.2), layer_dense(40))
    fit <- fit_with(enc, dec)

    test_that("normalisation adds a scale and a shift per unit, trained from 1 and 0", {
        w <- fit$model$weights$encoder_1_norm
        expect_length(w$bias, 48L)
        expect_false(all(w$bias[1:24] == 1))
        expect_false(all(w$bias[25:48] == 0))
        expect_identical(fit$model$spec$encoder_norm, "layer")
        expect_identical(fit$model$spec$decoder_dropout, c(0.2, 0))
        layers <- exprsgen:::.model_layers(fit$model)
        expect_true(all(c("encoder_1_norm", "encoder_1_dropout", "decoder_1_dropout") %in% layers$name))
        expect_s3_class(plot_vae(fit), "ggplot")
    })

    test_that("dropout is drawn from the seed, changes training, and is off at inference", {
        expect_identical(fit_with(enc, dec)$model$weights, fit$model$weights)
        no_dropout <- fit_with(list(layer_dense(24, "relu"), layer_layer_normalization()),
                               list(layer_dense(16, "tanh"), layer_dense(40)))
        expect_false(identical(no_dropout$model$weights, fit$model$weights))
        # the same weights read without dropout give the same codes: none is dropped
        same <- fit
        same$model$spec$encoder_dropout[] <- 0
        same$model$spec$decoder_dropout[] <- 0
        expect_identical(encode(same), encode(fit))
        expect_identical(encode(fit), encode(fit))
        # validation losses without dropout: the evaluation pass draws no mask
        v <- fit_vae(x_train = x, y_train = lab, likelihood = "nb",
                     encoder_layers = c(list(layer_input(40)), enc), decoder_layers = dec,
                     epochs = 3, batch_size = 16, verbose = FALSE, seed = 1, validation_split = 0.2)
        expect_true(all(is.finite(v$history$val_loss)))
    })

    test_that("the fused step and burn's engine give the same fit with normalisation and dropout", {
        fused <- fit_with(enc, dec, epochs = 2)
        burn <- withr::with_options(list(exprsgen.engine = "burn"), fit_with(enc, dec, epochs = 2))
        expect_equal(burn$history$loss, fused$history$loss, tolerance = 1e-4)
        for (layer in names(fused$model$weights)) {
            expect_equal(burn$model$weights[[layer]], fused$model$weights[[layer]], tolerance = 1e-3,
                         label = layer)
        }
    })

    test_that("a fit with normalisation survives saveRDS() and generates", {
        path <- tempfile(fileext = ".rds")
        saveRDS(fit, path)
        back <- readRDS(path)
        set.seed(2)
        a <- gen_exprs(back, 20)
        set.seed(2)
        expect_identical(a$x_gen, gen_exprs(fit, 20)$x_gen)
    })

    test_that("misplaced normalisation or dropout layers are clear errors", {
        expect_error(fit_with(list(layer_dropout(0.2), layer_dense(8)), dec), "must follow",
                     class = "exprsgen_error")
        expect_error(fit_with(enc, list(layer_dense(16), layer_dense(40), layer_dropout(0.1))),
                     "output layer", class = "exprsgen_error")
        expect_error(fit_with(list(layer_dense(8), layer_dropout(0.1), layer_layer_normalization()), dec),
                     "before", class = "exprsgen_error")
        expect_error(fit_with(list(layer_dense(8), layer_dropout(0.1), layer_dropout(0.2)), dec),
                     "one", class = "exprsgen_error")
    })
})

# layer_batch_normalization(): keras's BatchNormalization after a hidden layer.
local({
    set.seed(8)
    x <- matrix(rpois(120 * 40, 3), 120, 40, dimnames = list(NULL, paste0("g", 1:40)))
    lab <- rep(c("a", "b", "c"), 40)
    # scVI's layout: dense, batch normalisation, dropout
    enc <- list(layer_dense(24, "relu"), layer_batch_normalization(momentum = 0.9), layer_dropout(0.1))
    dec <- list(layer_dense(16, "relu"), layer_batch_normalization(), layer_dense(40))
    fit_bn <- function(enc, dec, epochs = 3, optimizer = "sgd", ...) {
        fit_vae(x_train = x, y_train = lab, likelihood = "nb", encoder_layers = c(list(layer_input(40)), enc),
                decoder_layers = dec, epochs = epochs, batch_size = 16, verbose = FALSE, seed = 1,
                optimizer = optimizer, ...)
    }
    fit <- fit_bn(enc, dec)

    test_that("layer_batch_normalization() takes keras's momentum and epsilon and checks them", {
        b <- layer_batch_normalization()
        expect_identical(c(b$momentum, b$epsilon), c(0.99, 0.001))
        expect_output(print(layer_batch_normalization(momentum = 0.9)), "batch normalization, momentum 0.9")
        expect_error(layer_batch_normalization(momentum = 1.5), "momentum", class = "exprsgen_error")
        expect_error(layer_batch_normalization(epsilon = 0), "epsilon", class = "exprsgen_error")
        expect_error(layer_batch_normalization(axis = 2), "axis", class = "exprsgen_error")
        expect_error(fit_bn(list(layer_batch_normalization(), layer_dense(8)), dec),
                     "layer_batch_normalization.*must follow", class = "exprsgen_error")
        expect_error(fit_bn(enc, list(layer_dense(16), layer_dense(40), layer_batch_normalization())),
                     "output layer", class = "exprsgen_error")
    })

    test_that("batch normalisation keeps a scale, a shift and moving statistics per unit, all trained", {
        w <- fit$model$weights$encoder_1_norm$bias
        expect_length(w, 4L * 24L)
        u <- 24L
        expect_false(all(w[seq_len(u)] == 1))                # scale
        expect_false(all(w[u + seq_len(u)] == 0))            # shift
        expect_false(all(w[2L * u + seq_len(u)] == 0))       # moving mean
        expect_true(all(w[3L * u + seq_len(u)] > 0))         # moving variance
        expect_false(all(w[3L * u + seq_len(u)] == 1))
        expect_identical(fit$model$spec$encoder_norm, "batch")
        expect_identical(fit$model$spec$encoder_norm_momentum, 0.9)
        expect_identical(fit$model$spec$decoder_norm_momentum, c(0.99, NA))
        # shown by print() and plot_vae()
        layers <- exprsgen:::.model_layers(fit$model)
        expect_identical(layers$type[layers$name == "encoder_1_norm"], "BatchNormalization (momentum 0.9)")
        expect_output(print(fit$model), "BatchNormalization")
        expect_true("decoder_1_norm" %in% plot_vae(fit)$data$name)
    })

    test_that("encoding, generation and validation read the moving statistics: a cell is treated on its own", {
        codes <- encode(fit)
        few <- encode(fit, newdata = x[1:5, ], labels = lab[1:5])
        expect_equal(unname(few), unname(codes[1:5, ]), tolerance = 1e-6)
        # the moving statistics are what inference reads: other values, other codes
        moved <- fit
        moved$model$weights$encoder_1_norm$bias[2L * 24L + 1:24] <- 0
        expect_false(isTRUE(all.equal(encode(moved, newdata = x, labels = lab), encode(fit, newdata = x, labels = lab))))
        v <- fit_bn(enc, dec, validation_split = 0.2)
        expect_true(all(is.finite(v$history$val_loss)))
        g <- gen_exprs(fit, 30)
        expect_true(all(is.finite(as.matrix(g$x_gen))))
    })

    test_that("the fused step and burn's engine give the same fit with batch normalisation", {
        # (SGD: with adaptive optimizers, biases whose gradient is 0 up to rounding take
        # steps of different signs in each engine; the core's tests compare their losses)
        burn <- withr::with_options(list(exprsgen.engine = "burn"), fit_bn(enc, dec))
        expect_equal(burn$history$loss, fit$history$loss, tolerance = 1e-4)
        for (layer in names(fit$model$weights)) {
            expect_equal(burn$model$weights[[layer]], fit$model$weights[[layer]], tolerance = 1e-3,
                         label = layer)
        }
    })

    test_that("layer_activation() after a normalisation writes scVI's layers, as burn trains them too", {
        expect_output(print(layer_activation("relu")), "activation, relu")
        expect_error(layer_activation("nope"), "activation", class = "exprsgen_error")
        scvi_enc <- list(layer_dense(24), layer_batch_normalization(), layer_activation("relu"), layer_dropout(0.1))
        scvi_dec <- list(layer_dense(16), layer_batch_normalization(), layer_activation("relu"), layer_dense(40))
        s <- fit_bn(scvi_enc, scvi_dec)
        expect_identical(s$model$spec$encoder_activation, "linear")
        expect_identical(s$model$spec$encoder_activation_after, "relu")
        expect_identical(s$model$spec$decoder_activation_after, c("relu", "none"))
        layers <- exprsgen:::.model_layers(s$model)
        i <- match(c("encoder_1", "encoder_1_norm", "encoder_1_activation", "encoder_1_dropout"), layers$name)
        expect_false(anyNA(i))
        expect_identical(diff(i), c(1L, 1L, 1L))
        expect_identical(layers$type[i[3]], "Activation (relu)")
        # the activation acts: without it, another model
        plain <- fit_bn(list(layer_dense(24), layer_batch_normalization(), layer_dropout(0.1)),
                        list(layer_dense(16), layer_batch_normalization(), layer_dense(40)))
        expect_false(isTRUE(all.equal(plain$model$weights, s$model$weights)))
        burn <- withr::with_options(list(exprsgen.engine = "burn"), fit_bn(scvi_enc, scvi_dec))
        expect_equal(burn$history$loss, s$history$loss, tolerance = 1e-4)
        for (layer in names(s$model$weights)) {
            expect_equal(burn$model$weights[[layer]], s$model$weights[[layer]], tolerance = 1e-3, label = layer)
        }
        # right after a linear dense layer it is that layer's activation (keras's output
        # layer written as Dense + Activation)
        folded <- suppressMessages(fit_bn(enc, list(layer_dense(16, "relu"), layer_dense(40), layer_activation("softplus"))))
        expect_identical(folded$model$spec$decoder_activation[2], "softplus")
        expect_null(folded$model$spec$decoder_activation_after)
        expect_error(fit_bn(list(layer_dense(24, "relu"), layer_activation("tanh")), dec),
                     "has an activation", class = "exprsgen_error")
        expect_error(fit_bn(list(layer_dense(24), layer_batch_normalization(), layer_dropout(0.1), layer_activation("relu")), dec),
                     "before its", class = "exprsgen_error")
    })

    test_that("a batch-normalised fit resumes from a checkpoint as if never stopped", {
        ck <- withr::local_tempfile(fileext = ".rds")
        whole <- fit_bn(enc, dec, epochs = 4, optimizer = "adam")
        fit_bn(enc, dec, epochs = 2, optimizer = "adam", callbacks = callback_model_checkpoint(ck))
        resumed <- fit_vae(resume = ck, epochs = 4, verbose = FALSE)
        expect_identical(resumed$model$weights, whole$model$weights)
    })
})
