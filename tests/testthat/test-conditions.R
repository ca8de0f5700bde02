# Several conditions: labels and covariates in fit_vae(), gen_exprs(conditions =),
# counterfactual cells, and conditions in encode(), normalized_exprs() and as_sce().

# NB counts of two cell types in two batches: type A expresses genes 1-15 higher, type
# B genes 16-30, and batch b2 multiplies genes 41-50 by 4 (an additive shift on the
# log scale); cells x genes.
simulate_batches <- function(n_per = 150, g = 60, seed = 42) {
    set.seed(seed)
    type <- rep(c("A", "B"), each = 2 * n_per)
    batch <- rep(rep(c("b1", "b2"), each = n_per), 2)
    n <- length(type)
    logmu <- matrix(log(exp(stats::rnorm(g, 1.5, 0.7))), n, g, byrow = TRUE)
    logmu[type == "A", 1:15] <- logmu[type == "A", 1:15] + 1.5
    logmu[type == "B", 16:30] <- logmu[type == "B", 16:30] + 1.5
    logmu[batch == "b2", 41:50] <- logmu[batch == "b2", 41:50] + log(4)
    lib <- exp(stats::rnorm(n, 0, 0.2))
    x <- matrix(stats::rnbinom(n * g, mu = exp(logmu) * lib, size = 5), n, g,
                dimnames = list(paste0("c", seq_len(n)), paste0("g", seq_len(g))))
    list(x = x, type = type, batch = batch, shift = 41:50)
}

local({
    d <- simulate_batches(n_per = 40)
    pct <- seq(0.01, 0.2, length.out = nrow(d$x))
    conds <- data.frame(type = d$type, batch = d$batch, pct = pct)
    fit <- fit_vae(x_train = d$x, y_train = conds, covariates = "pct", likelihood = "nb",
                   epochs = 3, batch_size = 32, verbose = FALSE, seed = 1)

    test_that("fit_vae() takes several labels and a covariate: layout, widths, training data", {
        cs <- fit$model$spec$conditions
        expect_identical(names(cs$labels), c("type", "batch"))
        expect_identical(cs$labels$batch, c("b1", "b2"))
        expect_identical(cs$covariates$name, "pct")
        expect_equal(cs$covariates$center, mean(pct))
        expect_equal(cs$covariates$scale, stats::sd(pct))
        expect_equal(c(cs$covariates$min, cs$covariates$max), range(pct))
        # width: 2 + 2 one-hot columns and one covariate; the primary label's classes
        expect_identical(fit$model$spec$n_classes, 5L)
        expect_identical(fit$model$spec$classes, c("A", "B"))
        expect_identical(as.character(fit$preprocessing$y_train), d$type)
        expect_equal(fit$preprocessing$conditions$pct, pct)
        # the encoder reads genes and conditions; by default ("additive") the first
        # decoder layer reads the latent code and the first label, the output layer its
        # hidden units and the other conditions
        b <- exprsgen:::.blocks(fit$model$spec)
        L <- fit$model$spec$latent_dim
        expect_equal(b$n_in[b$name == "encoder_1"], 60L + 5L)
        expect_equal(b$n_in[b$name == "decoder_1"], L + 2L)
        # (the hidden width the automatic settings chose for these cells)
        H <- fit$model$spec$decoder_units[1]
        expect_identical(H, exprsgen:::.auto_settings(nrow(d$x))$units)
        expect_equal(b$n_in[b$name == "decoder_2"], H + 3L)
        expect_output(print(fit), "type, batch; covariate pct")
    })

    test_that("decoder_conditions routes the condition to the decoder's layers", {
        widths <- function(mode) {
            f <- fit_vae(x_train = d$x, y_train = conds, covariates = "pct", likelihood = "nb",
                         epochs = 1, batch_size = 32, verbose = FALSE, seed = 1,
                         decoder_conditions = mode)
            b <- exprsgen:::.blocks(f$model$spec)
            b$n_in[b$name %in% c("decoder_1", "decoder_2")]
        }
        L <- fit$model$spec$latent_dim
        H <- fit$model$spec$decoder_units[1]
        expect_equal(widths("first"), c(L + 5L, H))
        expect_equal(widths("all"), c(L + 5L, H + 5L))
        expect_equal(widths("additive"), c(L + 2L, H + 3L))
        expect_error(widths("deep"), "decoder_conditions", class = "exprsgen_error")
        # one label: the VAExprs CVAE, the label into the first layer only
        one <- fit_vae(x_train = d$x, y_train = d$type, likelihood = "nb", epochs = 1,
                       batch_size = 32, verbose = FALSE, seed = 1)
        b <- exprsgen:::.blocks(one$model$spec)
        expect_equal(b$n_in[b$name %in% c("decoder_1", "decoder_2")], c(L + 2L, H))
    })

    test_that("gen_exprs(conditions =): exact numbers per row, conditions carried to the SCE", {
        set.seed(2)
        want <- data.frame(type = c("A", "B", "A"), batch = c("b2", "b1", "b1"), pct = c(0.05, 0.1, 0.15),
                           n = c(7, 0, 4))
        gen <- gen_exprs(fit, conditions = want)
        expect_identical(nrow(gen$x_gen), 11L)
        expect_identical(as.character(gen$y_gen), rep("A", 11))
        expect_identical(as.character(gen$conditions_gen$batch), rep(c("b2", "b1"), c(7, 4)))
        expect_equal(gen$conditions_gen$pct, rep(c(0.05, 0.15), c(7, 4)))
        sce <- as_sce(gen, real = TRUE)
        cd <- SummarizedExperiment::colData(sce)
        expect_true(all(c("origin", "label", "type", "batch", "pct") %in% names(cd)))
        expect_equal(cd$pct, c(pct, rep(c(0.05, 0.15), c(7, 4))))
        expect_identical(as.character(cd$batch), c(d$batch, rep(c("b2", "b1"), c(7, 4))))
        # reproducible under set.seed
        set.seed(2)
        expect_identical(gen_exprs(fit, conditions = want)$x_gen, gen$x_gen)
    })

    test_that("default generation takes every condition from a training cell of the class", {
        set.seed(3)
        gen <- gen_exprs(fit, 200)
        cg <- gen$conditions_gen
        expect_identical(names(cg), c("type", "batch", "pct"))
        expect_identical(cg$type, gen$y_gen)
        # each generated cell's conditions are those of one training cell of its type
        key <- function(df) paste(df$type, df$batch, df$pct)
        expect_true(all(key(cg) %in% key(conds)))
        gl <- gen_exprs(fit, labels = c(B = 30))
        expect_true(all(gl$conditions_gen$type == "B"))
        expect_true(all(key(gl$conditions_gen) %in% key(conds[conds$type == "B", ])))
    })

    test_that("bad conditions: unknown levels, missing columns, covariates out of range", {
        ok <- data.frame(type = "A", batch = "b1", pct = 0.1, n = 3)
        expect_error(gen_exprs(fit, conditions = transform(ok, batch = "b9")), "b9",
                     class = "exprsgen_error")
        expect_error(gen_exprs(fit, conditions = ok[, -2]), "batch", class = "exprsgen_error")
        expect_error(gen_exprs(fit, conditions = transform(ok, pct = 0.5)), "training range",
                     class = "exprsgen_error")
        expect_error(gen_exprs(fit, conditions = transform(ok, pct = NA)), "pct",
                     class = "exprsgen_error")
        expect_error(gen_exprs(fit, conditions = ok[, -4]), "n", class = "exprsgen_error")
        expect_error(normalized_exprs(fit, decode_labels = data.frame(batch = "b3")), "b3",
                     class = "exprsgen_error")
        expect_error(encode(fit, d$x[1:5, ], labels = d$type[1:5]), "labels",
                     class = "exprsgen_error")
    })

    test_that("encode() and normalized_exprs() with several conditions", {
        z <- encode(fit)
        set.seed(1)
        expect_equal(z, gen_exprs(fit, 5)$latent_vector)
        # new cells: conditions as a data.frame, or from colData columns of the same names
        expect_equal(encode(fit, d$x[1:10, ], labels = conds[1:10, ]), z[1:10, ])
        sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(d$x)),
                                                          colData = S4Vectors::DataFrame(conds))
        expect_equal(encode(fit, sce), z)
        expect_error(encode(fit, d$x[1:10, -4], labels = conds[1:10, ]), "g4", class = "exprsgen_error")
        # decoding with one condition changed keeps the others
        own <- normalized_exprs(fit)
        as_b1 <- normalized_exprs(fit, decode_labels = data.frame(batch = "b1"))
        expect_equal(as_b1[, d$batch == "b1"], own[, d$batch == "b1"])
        expect_false(isTRUE(all.equal(as_b1[, d$batch == "b2"], own[, d$batch == "b2"])))
    })

    test_that("a fit with conditions survives saveRDS() and validation cells keep theirs", {
        path <- tempfile(fileext = ".rds")
        saveRDS(fit, path)
        back <- readRDS(path)
        set.seed(4)
        a <- gen_exprs(back, conditions = data.frame(type = "B", batch = "b2", pct = 0.1, n = 5))
        set.seed(4)
        b <- gen_exprs(fit, conditions = data.frame(type = "B", batch = "b2", pct = 0.1, n = 5))
        expect_identical(a$x_gen, b$x_gen)
        v <- fit_vae(x_train = d$x, y_train = conds, covariates = "pct", likelihood = "nb",
                     epochs = 2, batch_size = 32, verbose = FALSE, seed = 1, validation_split = 0.25)
        expect_identical(nrow(v$preprocessing$conditions_val), 40L)
        expect_true(all(is.finite(v$history$val_loss)))
        # and given validation cells: their conditions as a data.frame
        w <- fit_vae(x_train = d$x[1:120, ], y_train = conds[1:120, ], covariates = "pct",
                     x_val = d$x[121:160, ], y_val = conds[121:160, ], likelihood = "nb",
                     epochs = 2, batch_size = 32, verbose = FALSE, seed = 1)
        expect_true(all(is.finite(w$history$val_loss)))
        expect_error(fit_vae(x_train = d$x[1:120, ], y_train = conds[1:120, ], covariates = "pct",
                             x_val = d$x[121:160, ], y_val = conds[121:160, 1:2], likelihood = "nb",
                             epochs = 1, batch_size = 32, verbose = FALSE), "pct", class = "exprsgen_error")
    })

    test_that("a SingleCellExperiment: labels and covariates by colData column", {
        sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(d$x)),
                                                          colData = S4Vectors::DataFrame(conds))
        f <- fit_vae(sce, labels = c("type", "batch"), covariates = "pct", likelihood = "nb",
                     epochs = 2, batch_size = 32, verbose = FALSE, seed = 1)
        expect_identical(names(f$model$spec$conditions$labels), c("type", "batch"))
        g <- fit_vae(x_train = d$x, y_train = conds, covariates = "pct", likelihood = "nb",
                     epochs = 2, batch_size = 32, verbose = FALSE, seed = 1)
        expect_identical(f$model$weights, g$model$weights)
    })
})

test_that("counterfactual cells (type A in batch b2, never seen) sit where held-out real ones do", {
    d <- simulate_batches()
    held <- d$type == "A" & d$batch == "b2"
    fit <- fit_vae(x_train = d$x[!held, ], y_train = data.frame(type = d$type, batch = d$batch)[!held, ],
                   likelihood = "nb", epochs = 150, batch_size = 32, verbose = FALSE, seed = 3)
    set.seed(5)
    cf <- gen_exprs(fit, conditions = data.frame(type = "A", batch = "b2", n = sum(held)))
    same <- gen_exprs(fit, conditions = data.frame(type = "A", batch = "b1", n = sum(held)))
    auc <- function(gen) {
        a <- assess_aug(t(d$x[held, ]), t(as.matrix(gen$x_gen)), seed = 1)
        a$value[a$metric == "classifier_auc"]
    }
    auc_cf <- auc(cf)
    auc_b1 <- auc(same)
    # the batch-1 cells of type A are told apart from the real batch-2 ones; the
    # counterfactual ones far less (0.70-0.72 measured over seeds and training lengths,
    # where cells of combinations seen in training score 0.5-0.65)
    expect_gt(auc_b1, 0.95)
    expect_lt(auc_cf, 0.85)
    # the batch-shift genes: shifted as in the real cells, relative to the other genes
    norm <- function(m) {
        m <- as.matrix(m)
        log1p(m / rowSums(m) * 1000)
    }
    lfc <- function(m) mean(norm(m)[, d$shift]) - mean(norm(m)[, -c(1:30, d$shift)])
    expect_lt(abs(lfc(cf$x_gen) - lfc(d$x[held, ])), 0.15)
    expect_gt(lfc(cf$x_gen) - lfc(same$x_gen), 0.8)
    # and the cell type's genes are those of type A
    type_genes <- function(m) colMeans(norm(m)[, 1:30])
    expect_lt(max(abs(type_genes(cf$x_gen) - type_genes(d$x[held, ]))), 0.35)
})

test_that("gen_exprs(conditions =) refuses a request too large for memory before building it", {
    d <- simulate_batches(n_per = 20)
    fit <- fit_vae(x_train = d$x, y_train = data.frame(type = d$type, batch = d$batch), likelihood = "nb",
                   epochs = 1, batch_size = 32, verbose = FALSE, seed = 1)
    t <- system.time(err <- tryCatch(
        withr::with_options(list(exprsgen.memory_limit = 1e8),
                            gen_exprs(fit, conditions = data.frame(type = "A", batch = "b2", n = 2e9))),
        error = function(e) e))[["elapsed"]]
    expect_s3_class(err, "exprsgen_error_memory")
    expect_lt(t, 5)
})
