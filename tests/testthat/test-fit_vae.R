test_that("training lowers the loss and records the history", {
    fit <- quick_fit(x_train = sim$x, x_val = sim$x, epochs = 30,
                     optimizer = optimizer_adam(learning_rate = 0.003))
    h <- fit$history
    expect_s3_class(fit, "exprsgen_fit")
    expect_identical(h$epoch, 1:30)
    expect_true(all(is.finite(h$loss)) && all(is.finite(h$val_loss)))
    expect_lt(mean(tail(h$loss, 3)), mean(h$loss[1:3]) - 10)
    # Reconstruction beats the best per-gene constant (BCE against each gene's mean),
    # which a model that ignores the cells cannot do.
    lo <- apply(sim$x, 2, min)
    s <- sweep(sweep(sim$x, 2, lo), 2, apply(sim$x, 2, max) - lo, "/")
    p <- matrix(colMeans(s), nrow(s), ncol(s), byrow = TRUE)
    constant <- mean(rowSums(-(s * log(p) + (1 - s) * log(1 - p))))
    # (The attainable gain here is about 7 nats per cell; an untrained decoder gains none.)
    expect_lt(tail(h$reconstruction, 1), constant - 3)
    # the loss is the reconstruction plus regularization times the KL (regularization 1)
    expect_equal(h$loss, h$reconstruction + h$kl, tolerance = 1e-5)
})

test_that("reconstruction of training cells beats a shuffled-gene baseline", {
    fit <- quick_fit(x_train = sim$x, epochs = 40, optimizer = optimizer_adam(learning_rate = 0.003))
    rec <- exprsgen:::.reconstruct(fit)
    expect_identical(dim(rec), dim(sim$x))
    err <- mean((rec - sim$x)^2)
    set.seed(2)
    shuffled <- sim$x[, sample(ncol(sim$x))]
    baseline <- mean((shuffled - sim$x)^2)
    expect_lt(err, 0.5 * baseline)
})

test_that("the same seed gives the same fit; another seed does not", {
    a <- quick_fit(x_train = sim$x, seed = 7)
    b <- quick_fit(x_train = sim$x, seed = 7)
    c <- quick_fit(x_train = sim$x, seed = 8)
    expect_identical(a$model$weights, b$model$weights)
    expect_identical(a$history, b$history)
    expect_false(identical(a$model$weights, c$model$weights))
    # the thread count does not change the result
    two <- quick_fit(x_train = sim$x, seed = 7, num.threads = 2)
    expect_identical(two$model$weights, a$model$weights)
    # seed = NULL draws the seed from R's RNG: set.seed() governs the fit.
    set.seed(3)
    d <- quick_fit(x_train = sim$x, seed = NULL)
    set.seed(3)
    e <- quick_fit(x_train = sim$x, seed = NULL)
    expect_identical(d$model$weights, e$model$weights)
})

test_that("the fused training step and burn's engine give the same fit", {
    fused <- quick_fit(x_train = sim$x, seed = 4, epochs = 3)
    burn <- withr::with_options(list(exprsgen.engine = "burn"),
                                quick_fit(x_train = sim$x, seed = 4, epochs = 3))
    expect_equal(burn$history$loss, fused$history$loss, tolerance = 1e-4)
    for (layer in names(fused$model$weights)) {
        expect_equal(burn$model$weights[[layer]], fused$model$weights[[layer]], tolerance = 1e-3,
                     label = layer)
    }
    expect_error(withr::with_options(list(exprsgen.engine = "gpu"), quick_fit(x_train = sim$x)),
                 "exprsgen.engine", class = "exprsgen_error_argument")
})

test_that("matrix and SingleCellExperiment inputs give the same fit", {
    sce <- SingleCellExperiment::SingleCellExperiment(
        assays = list(logcounts = t(sim$x)),
        colData = S4Vectors::DataFrame(type = sim$group))
    from_matrix <- quick_fit(x_train = sim$x, y_train = sim$group)
    from_sce <- quick_fit(object = sce, assay.type = "logcounts", labels = "type")
    expect_identical(from_sce$model$weights, from_matrix$model$weights)
    expect_identical(from_sce$history, from_matrix$history)
    # labels as a vector are the same as a colData column
    from_vector <- quick_fit(object = sce, assay.type = "logcounts", labels = sim$group)
    expect_identical(from_vector$model$weights, from_matrix$model$weights)
})

test_that("a counts assay is log-normalised as scater::logNormCounts does", {
    set.seed(4)
    counts <- matrix(rpois(300 * 60, 3), 300, 60,
                     dimnames = list(paste0("g", 1:300), paste0("c", 1:60)))
    sce <- SingleCellExperiment::SingleCellExperiment(assays = list(counts = counts))
    fit <- fit_vae(sce, encoder_layers = list(layer_input(300), layer_dense(16, "relu")),
                   decoder_layers = list(layer_dense(16, "relu"), layer_dense(300, "sigmoid")),
                   epochs = 2, batch_size = 16, seed = 1, verbose = FALSE)
    expected <- SummarizedExperiment::assay(scuttle::logNormCounts(sce), "logcounts")
    expect_equal(fit$preprocessing$x_train, as.matrix(expected))
    expect_identical(fit$preprocessing$normalization, "logNormCounts")
    expect_identical(fit$preprocessing$genes, rownames(counts))
})

test_that("a conditional VAE generates each group with its own genes up-regulated", {
    fit <- fit_vae(x_train = sim$x, y_train = sim$group,
                   encoder_layers = enc_layers(64), decoder_layers = dec_layers(64),
                   epochs = 60, batch_size = 16, seed = 1, verbose = FALSE,
                   optimizer = optimizer_adam(learning_rate = 0.003))
    expect_identical(fit$model$spec$classes, levels(sim$group))
    set.seed(1)
    gen <- gen_exprs(fit, num_samples = 90)
    expect_identical(levels(gen$y_gen), levels(sim$group))
    expect_identical(as.vector(table(gen$y_gen)), c(30L, 30L, 30L))
    for (k in 1:3) {
        block <- (sim$deg * (k - 1) + 1):(sim$deg * k)
        cells <- gen$x_gen[gen$y_gen == paste0("group", k), , drop = FALSE]
        others <- gen$x_gen[gen$y_gen != paste0("group", k), , drop = FALSE]
        # group k's own block is high in its generated cells, not in the others
        expect_gt(mean(cells[, block]) - mean(others[, block]), 8)
        expect_gt(mean(cells[, block]) - mean(cells[, -seq_len(3 * sim$deg)]), 8)
    }
})

test_that("validation cells are split off reproducibly and scaled with training parameters", {
    set.seed(5)
    fit <- quick_fit(x_train = sim$x, y_train = sim$group, validation_split = 0.25)
    p <- fit$preprocessing
    # prepared matrices hold genes in rows and cells in columns
    expect_identical(ncol(p$x_train) + ncol(p$x_val), nrow(sim$x))
    expect_identical(ncol(p$x_val), 30L)
    expect_identical(rownames(p$x_train), colnames(sim$x))
    expect_identical(p$x_train, t(sim$x[colnames(p$x_train), ]))
    expect_length(p$y_val, 30L)
    expect_true(all(is.finite(fit$history$val_loss)))
    expect_identical(p$minmax$min, unname(apply(p$x_train, 1, min)))
    set.seed(5)
    again <- quick_fit(x_train = sim$x, y_train = sim$group, validation_split = 0.25)
    expect_identical(again$preprocessing$x_val, p$x_val)
})

test_that("constant genes do not produce NaN", {
    x <- sim$x
    x[, 1:5] <- 3
    fit <- quick_fit(x_train = x)
    expect_true(all(is.finite(fit$history$loss)))
    set.seed(1)
    gen <- gen_exprs(fit, 20)
    expect_true(all(is.finite(gen$x_gen)))
    expect_true(all(gen$x_gen[, 1:5] == 3))
})

test_that("early stopping stops, reports why, and restores the best weights", {
    cb <- callback_early_stopping(monitor = "loss", min_delta = 1e6, patience = 2,
                                  restore_best_weights = TRUE)
    fit <- quick_fit(x_train = sim$x, epochs = 20, callbacks = cb)
    # no improvement can exceed min_delta: stop after 1 + patience epochs
    expect_identical(fit$params$stop_reason, "early_stopping")
    expect_identical(nrow(fit$history), 3L)
    expect_identical(fit$params$best_epoch, 1L)
    # the restored weights are those after epoch 1, not after epoch 3
    one <- quick_fit(x_train = sim$x, epochs = 1)
    three <- quick_fit(x_train = sim$x, epochs = 3)
    expect_identical(fit$model$weights, one$model$weights)
    expect_false(identical(fit$model$weights, three$model$weights))
    # val_loss without validation data falls back to loss, with a warning
    expect_warning(quick_fit(x_train = sim$x, epochs = 2,
                             callbacks = list(callback_early_stopping(patience = 1))),
                   "no validation cells")
})

test_that("all optimizers and activations train", {
    for (opt in c("adam", "sgd", "rmsprop", "adagrad")) {
        fit <- quick_fit(x_train = sim$x, optimizer = opt, epochs = 2)
        expect_true(all(is.finite(fit$history$loss)), info = opt)
    }
    for (act in c("relu", "sigmoid", "tanh", "elu", "softplus", "linear")) {
        fit <- fit_vae(x_train = sim$x,
                       encoder_layers = list(layer_input(n_genes), layer_dense(8, act)),
                       decoder_layers = list(layer_dense(8, act), layer_dense(n_genes, "sigmoid")),
                       epochs = 2, batch_size = 32, seed = 1, verbose = FALSE)
        expect_true(all(is.finite(fit$history$loss)), info = act)
    }
})

test_that("progress is reported unless verbose = FALSE", {
    expect_message(fit_vae(x_train = sim$x, encoder_layers = enc_layers(),
                           decoder_layers = dec_layers(), epochs = 2, batch_size = 32),
                   "Trained 2 epochs")
    expect_silent(quick_fit(x_train = sim$x, epochs = 2))
})

test_that("default layers are used when both encoder and decoder are omitted", {
    fit <- fit_vae(x_train = sim$x, epochs = 1, batch_size = 32, verbose = FALSE)
    expect_identical(fit$model$spec$encoder_units, 256L)
    expect_identical(fit$model$spec$decoder_units, c(256L, n_genes))
    expect_identical(fit$model$spec$latent_dim, 2L)
    # count models: the benchmark's choice for the number of cells (120: latent 2, 256
    # hidden units; 500 and more: latent 10, 128; see test-auto-settings.R)
    counts <- round(sim$x)
    nb <- fit_vae(x_train = counts, likelihood = "nb", epochs = 1, batch_size = 32, verbose = FALSE)
    expect_identical(nb$model$spec$latent_dim, 2L)
    expect_identical(nb$model$spec$encoder_units, 256L)
    expect_identical(nb$model$spec$decoder_units, c(256L, n_genes))
    expect_identical(nb$params$latent_dim, 2L)
    big <- fit_vae(x_train = counts[rep(seq_len(nrow(counts)), 5), ], likelihood = "nb", epochs = 1,
                   batch_size = 128, verbose = FALSE)
    expect_identical(big$model$spec$latent_dim, 10L)
    expect_identical(big$model$spec$decoder_units, c(128L, n_genes))
    # few optimizer steps for a count model: a hint, only when verbose
    expect_message(fit_vae(x_train = counts, likelihood = "nb", epochs = 2, batch_size = 32),
                   "optimizer steps", class = "exprsgen_message_few_steps")
    expect_no_message(fit_vae(x_train = counts, likelihood = "nb", epochs = 2, batch_size = 32, verbose = FALSE),
                      class = "exprsgen_message_few_steps")
    expect_no_message(fit_vae(x_train = sim$x, epochs = 2, batch_size = 32), class = "exprsgen_message_few_steps")
    # what the user asks for stands
    expect_identical(fit_vae(x_train = counts, likelihood = "nb", latent_dim = 3, epochs = 1, batch_size = 32,
                             verbose = FALSE)$model$spec$latent_dim, 3L)
})

test_that("R's own arithmetic keeps subnormal numbers after training and generation", {
    fit <- quick_fit(x_train = sim$x, epochs = 2)
    gen <- gen_exprs(fit, 5)
    tiny <- .Machine$double.xmin / 4
    one <- as.numeric(Sys.getenv("EXPRSGEN_ONE", "1"))  # not constant-folded
    expect_gt(tiny * one, 0)
    expect_identical(tiny * one, tiny)
})

test_that("a dense x_train is turned around, checked and summed in one pass, as t(), colSums() and the ranges", {
    set.seed(11)
    # cells beyond one tile of the core (1,024) on two threads, named and unnamed
    x <- matrix(rpois(2100 * 7, 2), 2100, 7)
    x[6, ] <- c(5e8, rep(1, 6))  # a large count summed exactly
    for (threads in 1:2) {
        p <- exprsgen:::.prepare_matrix(x, NULL, TRUE, rlang::current_env(), threads = threads)
        want <- t(x)
        storage.mode(want) <- "double"
        dimnames(want) <- list(paste0("gene", 1:7), paste0("cell", 1:2100))
        expect_identical(p$x_train, want)
        expect_identical(p$library_size, rowSums(x))
        expect_identical(p$scan$min, apply(x, 2, min) + 0)
        expect_identical(p$scan$max, apply(x, 2, max) + 0)
    }
    named <- x
    dimnames(named) <- list(paste0("c", 1:2100), paste0("g", 1:7))
    p <- exprsgen:::.prepare_matrix(named, NULL, FALSE, rlang::current_env())
    expect_identical(dimnames(p$x_train), rev(dimnames(named)))
    expect_identical(dimnames(named), list(paste0("c", 1:2100), paste0("g", 1:7)))  # the user's matrix untouched
    # the checks of the pass: the first bad value anywhere
    bad <- x + 0
    bad[2100, 7] <- 0.5
    expect_error(fit_vae(x_train = bad, likelihood = "nb", epochs = 1, batch_size = 64, verbose = FALSE), "x_train.*counts", class = "exprsgen_error")
    bad[1, 1] <- NA
    expect_error(fit_vae(x_train = bad, epochs = 1, batch_size = 64, verbose = FALSE), "x_train.*NA", class = "exprsgen_error")
    bad <- x + 0
    bad[3, 2] <- 2e9
    expect_error(fit_vae(x_train = bad, likelihood = "nb", epochs = 1, batch_size = 64, verbose = FALSE), "x_train.*up to", class = "exprsgen_error")
    # a copy that would not fit is refused before the core allocates it
    withr::with_options(list(exprsgen.memory_limit = 1000),
                        expect_error(fit_vae(x_train = x, likelihood = "nb", epochs = 1, batch_size = 64, verbose = FALSE),
                                     "x_train.*genes x cells", class = "exprsgen_error_memory"))
    # a bce fit's gene ranges are those of the cells
    f <- fit_vae(x_train = log1p(x[1:300, ]), epochs = 1, batch_size = 64, verbose = FALSE)
    expect_identical(f$preprocessing$minmax$min, unname(apply(log1p(x[1:300, ]), 2, min)))
    expect_identical(f$preprocessing$minmax$max, unname(apply(log1p(x[1:300, ]), 2, max)))
})

test_that("seed = fixes the validation split too, and leaves R's random state alone", {
    fit_with <- function() {
        fit_vae(x_train = sim$x, validation_split = 0.2, epochs = 2, batch_size = 16,
                encoder_layers = enc_layers(), decoder_layers = dec_layers(), seed = 42, verbose = FALSE)
    }
    set.seed(1)
    a <- fit_with()
    state <- .Random.seed
    set.seed(2)
    b <- fit_with()
    expect_identical(colnames(a$preprocessing$x_val), colnames(b$preprocessing$x_val))
    expect_identical(a$model$weights, b$model$weights)
    expect_identical(a$history, b$history)
    # the split did not draw from R's stream: the same as without a split
    set.seed(1)
    fit_vae(x_train = sim$x, epochs = 2, batch_size = 16, encoder_layers = enc_layers(),
            decoder_layers = dec_layers(), seed = 42, verbose = FALSE)
    expect_identical(.Random.seed, state)
})
