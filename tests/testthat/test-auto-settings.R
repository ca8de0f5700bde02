# Settings chosen from the data (issue 22): count models without epochs/batch_size,
# tune = TRUE, and memorisation reported without held-out cells.

counts_x <- function(n_per, types = 3, genes = 100, seed = 1) {
    d <- simulate_counts(n_per = n_per, genes = genes, types = types, seed = seed)
    list(x = Matrix::t(d$counts), y = d$label)
}

test_that("count models choose epochs, batch size, latent size and draws by the documented rule", {
    # the table of ?fit_vae, section "Settings chosen from the data"
    tab <- exprsgen:::.auto_settings_table(c(100, 499, 500, 20000, 40000, 1e5, 1e6))
    expect_identical(tab$batch_size, rep(128L, 7))
    expect_identical(tab$epochs, as.integer(c(200, 200, 200, 200, 200, 80, 8)))
    expect_identical(tab$latent_dim, as.integer(c(2, 2, 10, 10, 10, 10, 10)))
    expect_identical(tab$units, as.integer(c(256, 256, 128, 128, 128, 128, 128)))
    expect_identical(tab$draws, rep(c("gmm", "posterior"), c(2, 5)))
    for (n_per in c(20, 170)) {
        d <- counts_x(n_per)
        fit <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", seed = 1, verbose = FALSE)
        rule <- exprsgen:::.auto_settings(3 * n_per)
        expect_identical(fit$params$epochs, rule$epochs)
        expect_identical(fit$params$batch_size, rule$batch_size)
        expect_identical(fit$model$spec$latent_dim, rule$latent_dim)
        expect_identical(fit$model$spec$encoder_units, rule$units)
        expect_identical(fit$params$generation, rule$generation)
        expect_setequal(fit$params$chosen, c("epochs", "batch_size", "latent_dim", "units"))
        expect_output(print(fit), "chosen from the data")
    }
})

test_that("settings given are used as given, as VAExprs code passes them", {
    d <- counts_x(20)
    fit <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", epochs = 3, batch_size = 7,
                   latent_dim = 4, seed = 1, verbose = FALSE)
    expect_identical(fit$params$epochs, 3L)
    expect_identical(fit$params$batch_size, 7L)
    expect_identical(fit$model$spec$latent_dim, 4L)
    expect_setequal(fit$params$chosen, "units")
    # one of the two given: the other is chosen
    fit2 <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", epochs = 3, seed = 1, verbose = FALSE)
    expect_identical(fit2$params$batch_size, 128L)
    expect_true("batch_size" %in% fit2$params$chosen)
    # bce/mse (VAExprs's models) still need both, and say so naming the argument
    expect_error(fit_vae(x_train = sim$x, batch_size = 16, verbose = FALSE), "epochs",
                 class = "exprsgen_error_argument")
    expect_error(fit_vae(x_train = sim$x, epochs = 2, verbose = FALSE), "batch_size",
                 class = "exprsgen_error_argument")
})

test_that("the automatic settings are announced once when verbose", {
    d <- counts_x(10)
    out <- capture.output(msgs <- capture_messages(
        fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", seed = 1, epochs = 2)))
    expect_length(grep("30 training cells: 2 epochs of 128-cell minibatches", msgs), 1L)
})

test_that("tune = TRUE scores its candidates on held-out cells and keeps the best by the rule", {
    d <- counts_x(30, genes = 80)
    out <- capture.output(msgs <- capture_messages(
        fit <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", seed = 3, tune = TRUE, batch_size = 32)))
    # progress: one line per candidate fit, then the choice
    expect_length(grep("Tuning [0-9]/[0-9]", msgs), 3L)
    expect_length(grep("Tuning chose", msgs), 1L)
    t <- fit$tuning
    cands <- exprsgen:::.tune_candidates(exprsgen:::.auto_settings(72))
    expect_identical(nrow(t), length(cands$fits) * length(cands$draws))
    expect_true(all(c("classifier_auc", "memorisation", "label_accuracy", "eligible", "chosen") %in% names(t)))
    expect_identical(sum(t$chosen), 1L)
    best <- t[t$chosen, ]
    # the rule: eligible candidates first, the lowest AUC among them
    pool <- if (any(t$eligible)) t[t$eligible, ] else t
    expect_identical(best$classifier_auc, min(pool$classifier_auc))
    expect_identical(t$n_held, rep(18L, nrow(t)))
    expect_identical(t$eligible, t$memorisation >= 0.9 & t$label_accuracy >= 0.95 * t$label_accuracy_real - 1 / 18)
    # the final fit has the chosen candidate's settings, on all the cells
    expect_identical(fit$model$spec$latent_dim, best$latent_dim)
    expect_identical(fit$params$epochs, best$epochs)
    expect_identical(fit$params$generation$latent, best$draws)
    expect_identical(ncol(fit$preprocessing$x_train), 90L)
    expect_output(print(fit), "tuned on held-out cells")
    # gen_exprs() draws as tuning chose
    gen <- gen_exprs(fit, num_samples = 10)
    expect_identical(nrow(gen$x_gen), 10L)
    # the same seed chooses the same
    fit2 <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", seed = 3, tune = TRUE, batch_size = 32,
                    verbose = FALSE)
    expect_identical(fit2$tuning, t)
})

test_that("the tuning rule puts candidates that copy or lose the labels last", {
    rows <- list(
        data.frame(fit = "a", classifier_auc = 0.6, memorisation = 0.7, label_accuracy = 1, label_accuracy_real = 1,
                   utility_gain = 0.1),
        data.frame(fit = "b", classifier_auc = 0.7, memorisation = 1.1, label_accuracy = 0.5, label_accuracy_real = 1,
                   utility_gain = 0.1),
        data.frame(fit = "c", classifier_auc = 0.8, memorisation = 1.0, label_accuracy = 0.99, label_accuracy_real = 1,
                   utility_gain = 0),
        data.frame(fit = "d", classifier_auc = 0.8, memorisation = 1.0, label_accuracy = 0.99, label_accuracy_real = 1,
                   utility_gain = 0.05))
    t <- exprsgen:::.tune_table(rows)
    expect_identical(t$eligible, c(FALSE, FALSE, TRUE, TRUE))
    # one held-out cell's worth of slack on the label accuracy: 0.9 of 1 passes with 10 held out
    near <- lapply(rows, function(r) cbind(r, n_held = 10L))
    near[[2]]$label_accuracy <- 0.9
    expect_identical(exprsgen:::.tune_table(near)$eligible, c(FALSE, TRUE, TRUE, TRUE))
    expect_identical(t$fit[t$chosen], "d")  # tie on AUC: the larger utility gain
    # none eligible: the lowest AUC of all
    t2 <- exprsgen:::.tune_table(rows[1:2])
    expect_identical(t2$fit[t2$chosen], "a")
})

test_that("tune = TRUE refuses what it would choose, and non-count models", {
    d <- counts_x(10)
    expect_error(fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", tune = TRUE, epochs = 5),
                 "epochs", class = "exprsgen_error_argument")
    expect_error(fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", tune = TRUE, latent_dim = 3),
                 "latent_dim", class = "exprsgen_error_argument")
    expect_error(fit_vae(x_train = sim$x, tune = TRUE, epochs = 2, batch_size = 8), "count likelihood",
                 class = "exprsgen_error_argument")
    expect_error(fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", tune = NA), "tune",
                 class = "exprsgen_error_argument")
    expect_error(fit_vae(x_train = d$x[1:6, ], likelihood = "nb", tune = TRUE), "hold out",
                 class = "exprsgen_error_argument")
})

test_that("assess_aug() of a gen_exprs() result reports memorisation, and flags exact copies", {
    d <- counts_x(40)
    fit <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", epochs = 30, seed = 1, verbose = FALSE)
    set.seed(1)
    gen <- gen_exprs(fit, num_samples = 120)
    a <- assess_aug(gen, n_pcs = 10, seed = 1)
    expect_true("memorisation" %in% a$metric)
    m <- a$value[a$metric == "memorisation"]
    expect_gt(m, 0.5)
    # generated cells that are the training cells: copies
    copies <- gen
    copies$x_gen <- gen$x_train
    rownames(copies$x_gen) <- paste0("gen", seq_len(nrow(copies$x_gen)))
    a2 <- assess_aug(copies, n_pcs = 10, seed = 1)
    expect_lt(a2$value[a2$metric == "memorisation"], 0.05)
    expect_identical(a2$interpretation[a2$metric == "memorisation"], "copies of training cells")
    # half copies, half generated: between the two
    half <- gen
    half$x_gen <- rbind(gen$x_train[1:60, ], gen$x_gen[61:120, ])
    rownames(half$x_gen) <- paste0("gen", 1:120)
    a3 <- assess_aug(half, n_pcs = 10, seed = 1)
    expect_lt(a3$value[a3$metric == "memorisation"], m)
})

test_that("gen_exprs(temperature =) scales the posterior's spread", {
    enc <- list(mean = matrix(c(0, 5), 2, 3), log_var = matrix(log(0.25), 2, 3))
    set.seed(1)
    cold <- exprsgen:::.draw_latent("posterior", enc, 1:2, 1:2, 200, "test", temperature = 0)
    expect_identical(cold$z, enc$mean[cold$cell, ])
    set.seed(1)
    one <- exprsgen:::.draw_latent("posterior", enc, 1:2, 1:2, 2000, "test", temperature = 1)
    set.seed(1)
    two <- exprsgen:::.draw_latent("posterior", enc, 1:2, 1:2, 2000, "test", temperature = 2)
    expect_equal(sd(one$z - enc$mean[one$cell, ]), 0.5, tolerance = 0.05)
    expect_equal(two$z - enc$mean[two$cell, ], 2 * (one$z - enc$mean[one$cell, ]))
    fit <- fit_vae(x_train = counts_x(10)$x, likelihood = "nb", epochs = 2, seed = 1, verbose = FALSE)
    expect_error(gen_exprs(fit, 5, temperature = -1), "temperature", class = "exprsgen_error_argument")
})

# Three types, each cell with a strong profile of its own: a model that trains long
# enough learns the cells themselves.
memorisable <- function() {
    set.seed(1)
    n <- 60
    g <- 300
    type <- rep(1:3, each = 20)
    tp <- matrix(rgamma(g * 3, 0.5, 0.1), g, 3)
    own <- matrix(rgamma(g * n, 0.3, 0.3), g, n)
    x <- matrix(rpois(g * n, tp[, type] * 0.5 + own), n, g, byrow = TRUE)
    colnames(x) <- paste0("g", 1:g)
    list(x = x, y = paste0("t", type))
}

test_that("the memorisation guard stops training before the model hands back its training cells", {
    d <- memorisable()
    ck <- withr::local_tempfile(fileext = ".rds")
    msgs <- capture_messages(
        fit <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", epochs = 300, batch_size = 8,
                       latent_dim = 10, seed = 1, verbose = FALSE,
                       callbacks = callback_model_checkpoint(ck, save_freq = 1000)))
    g <- fit$params$guard
    expect_identical(g$epoch, seq(30L, by = 30L, length.out = nrow(g)))
    expect_identical(fit$params$stop_reason, "memorisation")
    # stopped after two checks in a row below 0.9; the last check that passed is kept
    n <- nrow(g)
    expect_true(all(g$memorisation[(n - 1):n] < 0.9))
    kept <- max(g$epoch[g$memorisation >= 0.9])
    expect_identical(fit$params$epochs_run, kept)
    expect_identical(nrow(fit$history), kept)
    expect_length(grep("Stopped at epoch", msgs), 1L)
    # the checkpoint written when the guard stopped is the fit returned, and is not continued
    saved <- readRDS(ck)
    expect_identical(saved$model$weights, fit$model$weights)
    expect_identical(saved$params$stop_reason, "memorisation")
    expect_error(fit_vae(resume = ck, epochs = 400), "memorisation guard", class = "exprsgen_error_argument")
    # the weights returned are those of that epoch: the same fit stopped there
    fit_kept <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", epochs = kept, batch_size = 8,
                        latent_dim = 10, seed = 1, verbose = FALSE, guard = FALSE)
    expect_equal(fit$model$weights, fit_kept$model$weights)
    # without the guard it trains on, and the cells it then generates are near-copies
    free <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "nb", epochs = 300, batch_size = 8,
                    latent_dim = 10, seed = 1, verbose = FALSE, guard = FALSE)
    expect_identical(free$params$epochs_run, 300L)
    expect_null(free$params$guard)
    set.seed(1)
    expect_warning(gen <- gen_exprs(free, num_samples = 60), class = "exprsgen_warning_memorisation")
    expect_lt(gen$memorisation, 0.9)
    set.seed(1)
    expect_no_warning(gen_ok <- gen_exprs(fit, num_samples = 60))
    expect_gte(gen_ok$memorisation, 0.9)
    # the check can be switched off at generation too
    set.seed(1)
    expect_no_warning(gen_off <- gen_exprs(free, num_samples = 60, guard = FALSE))
    expect_null(gen_off$memorisation)
    expect_error(fit_vae(x_train = d$x, likelihood = "nb", epochs = 2, guard = "yes"), "guard",
                 class = "exprsgen_error_argument")
    # likelihoods without a dispersion are not checked (their cells vary less than
    # over-dispersed real ones at any training length)
    pois <- fit_vae(x_train = d$x, y_train = d$y, likelihood = "poisson", epochs = 20, batch_size = 8,
                    latent_dim = 10, seed = 1, verbose = FALSE)
    expect_null(pois$params$guard)
    expect_identical(pois$params$epochs_run, 20L)
})
