# The names R uses come from the Rust core; R's parameter counts and diagrams follow
# the core's parameter blocks.

test_that("likelihoods, activations, optimizers and engines are the core's", {
    l <- likelihoods()
    expect_true(all(c("bce", "mse", "poisson", "nb", "zinb", "zip") %in% l$name))
    expect_identical(l$counts[match(c("bce", "mse", "nb", "zip"), l$name)], c(FALSE, FALSE, TRUE, TRUE))
    expect_identical(l$parameters[match(c("bce", "zinb"), l$name)], c("", "dropout, dispersion"))
    expect_error(fit_vae(x_train = sim$x, likelihood = "gaussian", epochs = 1, batch_size = 8),
                 "zip", class = "exprsgen_error_argument")
    expect_identical(layer_dense(3, "identity")$activation, "linear")
    expect_error(layer_dense(3, "swish"), "softplus", class = "exprsgen_error_argument")
    expect_identical(optimizer_sgd()$learning_rate, 0.01)
    expect_identical(optimizer_adam()$learning_rate, 0.001)
    expect_identical(optimizer_adam(0.02)$learning_rate, 0.02)
    expect_error(fit_vae(x_train = sim$x, optimizer = "lbfgs", epochs = 1, batch_size = 8),
                 "adagrad", class = "exprsgen_error_argument")
})

test_that("print() counts every stored weight and plot_vae() shows every block, for every likelihood", {
    counts <- t(as.matrix(simulate_counts(n_per = 10, genes = 60)$counts))
    for (i in seq_len(nrow(likelihoods()))) {
        lik <- likelihoods()$name[i]
        x <- if (likelihoods()$counts[i]) counts else sim$x[, 1:60]
        fit <- fit_vae(x_train = x, likelihood = lik, latent_dim = 3, epochs = 1, batch_size = 8,
                       encoder_layers = list(layer_input(60), layer_dense(6, "relu")),
                       decoder_layers = list(layer_dense(5, "relu"), layer_dense(60)),
                       seed = 1, verbose = FALSE)
        stored <- sum(vapply(fit$model$weights, function(l) length(l$kernel) + length(l$bias), numeric(1)))
        expected <- (60 * 6 + 6) + 2 * (6 * 3 + 3) + (3 * 5 + 5) + (5 * 60 + 60)
        expect_gte(stored, expected)
        header <- utils::capture.output(print(fit$model))[1]
        expect_match(header, paste0(" ", stored, " parameters"), fixed = TRUE, info = lik)
        drawn <- plot_vae(fit)$data
        expect_true(all(names(fit$model$weights) %in% drawn$name), info = lik)
        heads <- drawn[drawn$type == "Dense (head)", ]
        expect_identical(heads$input_shape, rep("(None, 5)", nrow(heads)), info = lik)
    }
    # the heads of the zero-inflated models and the dispersions are there
    zinb <- fit_vae(x_train = counts, likelihood = "zinb", epochs = 1, batch_size = 8, verbose = FALSE)
    expect_true(all(c("dropout", "dispersion") %in% plot_vae(zinb)$data$name))
})
