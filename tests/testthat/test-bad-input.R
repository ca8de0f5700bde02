# A catalogue of bad inputs across every exported function: each must give a classed
# exprsgen error that names the argument (or option) at fault, and leave every input
# as it was. (test-errors.R holds the messages checked in more detail.)

local({
    set.seed(1)
    counts <- matrix(rpois(60 * 20, 3), 60, 20, dimnames = list(paste0("c", 1:60), paste0("g", 1:20)))
    counts[, 1] <- counts[, 1] + 1
    lab <- rep(c("a", "b", "c"), 20)
    fit_nb <- suppressMessages(fit_vae(x_train = counts, y_train = lab, likelihood = "nb",
                                       epochs = 2, batch_size = 16, verbose = FALSE, seed = 1))
    fit_bce <- fit_vae(x_train = counts, epochs = 2, batch_size = 16, verbose = FALSE, seed = 1)
    gen <- gen_exprs(fit_nb, 30)
    sparse <- methods::as(counts, "CsparseMatrix")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(counts)),
                                                      colData = S4Vectors::DataFrame(type = lab))
    real <- t(counts)
    env <- environment()

    tamper <- function(f, expr) { eval(substitute(expr), list(f = f)) }
    fit_with <- function(...) {
        args <- list(x_train = counts, epochs = 1, batch_size = 16, verbose = FALSE)
        new <- list(...)
        args[names(new)] <- new
        do.call(fit_vae, args)
    }
    bad_sparse <- function(edit) { m <- sparse; edit(m) }

    # case: expression, the text the message must contain (the argument's name)
    cases <- list(
        # fit_vae: data
        list(quote(fit_with(x_train = counts[0, ])), "x_train"),
        list(quote(fit_with(x_train = counts[, 0])), "x_train"),
        list(quote(fit_with(x_train = letters)), "x_train"),
        list(quote(fit_with(x_train = list(1, 2))), "x_train"),
        list(quote(fit_with(x_train = matrix("a", 3, 3))), "x_train"),
        list(quote(fit_with(x_train = replace(counts, 5, NA))), "x_train"),
        list(quote(fit_with(x_train = replace(counts, 5, Inf))), "x_train"),
        list(quote(fit_with(x_train = replace(counts, 5, -1), likelihood = "nb")), "x_train"),
        list(quote(fit_with(x_train = replace(counts, 5, 0.5), likelihood = "nb")), "x_train"),
        list(quote(fit_with(x_train = replace(counts, 5, 1e12), likelihood = "nb")), "x_train"),
        list(quote(fit_with(x_train = rbind(counts, 0), likelihood = "nb")), "x_train"),
        list(quote(fit_with(x_train = NULL)), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@i[5] <- 100000L; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@i[5] <- -1L; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@i[5] <- NA_integer_; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@i <- m@i[-1]; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@p[length(m@p)] <- 1L; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@p <- m@p[-1]; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@Dim <- c(5L, 20L); m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@x <- m@x[-1]; m }))), "x_train"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@i[1:2] <- m@i[2:1]; m }))), "x_train"),
        list(quote(fit_with(x_val = bad_sparse(function(m) { m@i[5] <- 100000L; m }))), "x_val"),
        list(quote(fit_with(x_train = bad_sparse(function(m) { m@Dimnames <- list(letters[1:2], NULL); m }))), "x_train"),
        list(quote(fit_with(y_train = lab[-1])), "y_train"),
        list(quote(fit_with(y_train = replace(lab, 3, NA))), "y_train"),
        list(quote(fit_with(y_train = replace(lab, 3, ""))), "y_train"),
        # fit_vae: several conditions and covariates
        list(quote(fit_with(y_train = data.frame(a = lab, b = replace(lab, 2, NA)))), "y_train"),
        list(quote(fit_with(y_train = data.frame(a = lab[-1]))), "y_train"),
        list(quote(fit_with(y_train = data.frame(a = lab, p = seq_along(lab)), covariates = "q")), "covariates"),
        list(quote(fit_with(y_train = data.frame(a = lab, p = lab), covariates = "p")), "covariates"),
        list(quote(fit_with(covariates = "p")), "covariates"),
        list(quote(fit_with(covariates = replace(seq_along(lab), 4, NA))), "covariates"),
        list(quote(fit_with(covariates = seq_len(5))), "covariates"),
        list(quote(fit_with(covariates = list(a = 1))), "covariates"),
        list(quote(fit_with(object = sce, x_train = NULL, labels = c("type", "nope"))), "labels"),
        list(quote(fit_with(object = sce, x_train = NULL, labels = "type", covariates = "type")), "covariates"),
        list(quote(fit_with(y_train = list(lab))), "y_train"),
        list(quote(fit_with(x_val = counts[, 1:5])), "x_val"),
        list(quote(fit_with(x_val = counts[0, ])), "x_val"),
        list(quote(fit_with(x_val = `colnames<-`(counts, paste0("other", 1:20)))), "x_val"),
        list(quote(fit_with(x_val = counts, y_train = lab)), "y_val"),
        list(quote(fit_with(x_val = counts, y_train = lab, y_val = rep("zzz", 60))), "y_val"),
        list(quote(fit_with(y_val = lab)), "y_val"),
        list(quote(fit_with(object = 5, x_train = NULL)), "object"),
        list(quote(fit_with(object = sce)), "object"),
        list(quote(fit_with(object = sce, x_train = NULL, assay.type = "nope")), "assay.type"),
        list(quote(fit_with(object = sce, x_train = NULL, labels = "nocolumn")), "labels"),
        list(quote(fit_with(object = sce, x_train = NULL, labels = lab[-1])), "labels"),
        list(quote(fit_with(preprocessing = list(), x_train = NULL)), "preprocessing"),
        # fit_vae: settings
        list(quote(fit_with(epochs = 0)), "epochs"),
        list(quote(fit_with(epochs = -1)), "epochs"),
        list(quote(fit_with(epochs = 1.5)), "epochs"),
        list(quote(fit_with(epochs = NA)), "epochs"),
        list(quote(fit_with(epochs = "10")), "epochs"),
        list(quote(fit_with(epochs = Inf)), "epochs"),
        list(quote(fit_with(epochs = 1e10)), "epochs"),
        list(quote(fit_with(epochs = 1:2)), "epochs"),
        list(quote(fit_with(batch_size = 0)), "batch_size"),
        list(quote(fit_with(batch_size = NA)), "batch_size"),
        list(quote(fit_with(latent_dim = 0)), "latent_dim"),
        list(quote(fit_with(latent_dim = 1e10)), "latent_dim"),
        list(quote(fit_with(latent_dim = 1e7)), "latent_dim"),
        list(quote(fit_with(regularization = -1)), "regularization"),
        list(quote(fit_with(regularization = NA)), "regularization"),
        list(quote(fit_with(regularization = Inf)), "regularization"),
        list(quote(fit_with(regularization = 1e300)), "regularization"),
        list(quote(fit_with(validation_split = 1)), "validation_split"),
        list(quote(fit_with(validation_split = -0.1)), "validation_split"),
        list(quote(fit_with(optimizer = "foo")), "optimizer"),
        list(quote(fit_with(optimizer = 3)), "optimizer"),
        list(quote(fit_with(seed = -1)), "seed"),
        list(quote(fit_with(seed = 1.5)), "seed"),
        list(quote(fit_with(seed = 2^60)), "seed"),
        list(quote(fit_with(seed = "a")), "seed"),
        list(quote(fit_with(likelihood = "foo")), "likelihood"),
        list(quote(fit_with(likelihood = c("nb", "bce"))), "likelihood"),
        list(quote(fit_with(num.threads = 0)), "num.threads"),
        list(quote(fit_with(verbose = NA)), "verbose"),
        list(quote(fit_with(verbose = "yes")), "verbose"),
        list(quote(fit_with(kl_warmup = -1)), "kl_warmup"),
        list(quote(fit_with(use_generator = NA)), "use_generator"),
        list(quote(fit_with(callbacks = "x")), "callbacks"),
        list(quote(fit_with(callbacks = list(1))), "callbacks"),
        list(quote(fit_with(encoder_layers = "a", decoder_layers = list(layer_dense(20)))), "encoder_layers"),
        list(quote(fit_with(encoder_layers = list(layer_input(20), layer_dense(4)))), "decoder_layers"),
        list(quote(fit_with(encoder_layers = list(layer_input(7), layer_dense(4)),
                            decoder_layers = list(layer_dense(4), layer_dense(20)))), "encoder_layers"),
        list(quote(fit_with(encoder_layers = list(layer_input(20), layer_dense(4)),
                            decoder_layers = list(layer_dense(4), layer_dense(19)))), "decoder_layers"),
        list(quote(fit_with(encoder_layers = list(layer_input(20), layer_dense(1e9)),
                            decoder_layers = list(layer_dense(4), layer_dense(20)))), "encoder_layers"),
        list(quote(fit_with(encoder_layers = list(layer_input(20), layer_dense(4)),
                            decoder_layers = list(layer_dense(2e8), layer_dense(20)))), "decoder_layers"),
        # layers, optimizers, callbacks
        list(quote(layer_dense(0)), "units"),
        list(quote(layer_dense(3e9)), "units"),
        list(quote(layer_dense("a")), "units"),
        list(quote(layer_dense(NA)), "units"),
        list(quote(layer_dense()), "units"),
        list(quote(layer_dense(4, activation = "foo")), "activation"),
        list(quote(layer_dense(4, name = 5)), "name"),
        list(quote(layer_input(0)), "shape"),
        list(quote(layer_input(c(2, 3))), "shape"),
        list(quote(optimizer_adam(0)), "learning_rate"),
        list(quote(optimizer_adam(-1)), "learning_rate"),
        list(quote(optimizer_sgd(Inf)), "learning_rate"),
        list(quote(optimizer_rmsprop("a")), "learning_rate"),
        list(quote(optimizer_adagrad(NA)), "learning_rate"),
        list(quote(callback_early_stopping(monitor = "foo")), "monitor"),
        list(quote(callback_early_stopping(patience = -1)), "patience"),
        list(quote(callback_early_stopping(min_delta = -1)), "min_delta"),
        list(quote(callback_early_stopping(restore_best_weights = NA)), "restore_best_weights"),
        list(quote(callback_early_stopping(baseline = "a")), "baseline"),
        list(quote(callback_reduce_lr_on_plateau(factor = 1)), "factor"),
        list(quote(callback_reduce_lr_on_plateau(factor = 0)), "factor"),
        list(quote(callback_reduce_lr_on_plateau(patience = -1)), "patience"),
        list(quote(callback_reduce_lr_on_plateau(min_lr = -1)), "min_lr"),
        list(quote(callback_reduce_lr_on_plateau(cooldown = -1)), "cooldown"),
        # gen_exprs
        list(quote(gen_exprs(5, 10)), "x"),
        list(quote(gen_exprs(fit_nb, conditions = data.frame(label = "a"))), "conditions"),
        list(quote(gen_exprs(fit_nb, conditions = data.frame(label = "z", n = 3))), "conditions"),
        list(quote(gen_exprs(fit_nb, conditions = data.frame(n = 3))), "conditions"),
        list(quote(gen_exprs(fit_nb, conditions = data.frame(label = "a", other = 1, n = 3))), "conditions"),
        list(quote(gen_exprs(fit_nb, conditions = data.frame(label = "a", n = -1))), "conditions"),
        list(quote(gen_exprs(fit_nb, conditions = data.frame(label = "a", n = 0))), "conditions"),
        list(quote(gen_exprs(fit_nb, conditions = list(label = "a", n = 3))), "conditions"),
        list(quote(gen_exprs(fit_nb, 5, conditions = data.frame(label = "a", n = 3))), "num_samples"),
        list(quote(gen_exprs(fit_nb, labels = c(a = 1), conditions = data.frame(label = "a", n = 3))), "conditions"),
        list(quote(gen_exprs(fit_bce, conditions = data.frame(label = "a", n = 3))), "conditions"),
        list(quote(gen_exprs(structure(list(), class = "exprsgen_fit"), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$model <- NULL; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$model$spec$n_genes <- "a"; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$model$spec$n_classes <- 0L; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$model$weights <- list(); f }), 10)), "x"),
        list(quote(plot_history(tamper(fit_nb, { f$model$spec$conditions <- 1; f }))), "fit"),
        list(quote(gen_exprs(tamper(fit_nb, { f$model$weights[[1]][[1]] <- "a"; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$preprocessing$y_train <- factor(rep("z", 60)); f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$preprocessing$x_train <- letters; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$preprocessing$library_size <- -1; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_bce, { f$preprocessing$minmax <- NULL; f }), 10)), "x"),
        list(quote(gen_exprs(tamper(fit_nb, { f$model$spec$likelihood <- "bce"; f }), 10)), "x"),
        list(quote(gen_exprs(fit_nb, 0)), "num_samples"),
        list(quote(gen_exprs(fit_nb, -1)), "num_samples"),
        list(quote(gen_exprs(fit_nb, NA)), "num_samples"),
        list(quote(gen_exprs(fit_nb, "a")), "num_samples"),
        list(quote(gen_exprs(fit_nb, 2e9)), "num_samples"),
        list(quote(gen_exprs(fit_nb)), "num_samples"),
        list(quote(gen_exprs(fit_nb, labels = c(zzz = 3))), "labels"),
        list(quote(gen_exprs(fit_nb, labels = c(a = -3))), "labels"),
        list(quote(gen_exprs(fit_nb, labels = c(3, 4))), "labels"),
        list(quote(gen_exprs(fit_nb, labels = c(a = 2e9, b = 2e9))), "labels"),
        list(quote(gen_exprs(fit_nb, labels = c(a = 0))), "labels"),
        list(quote(gen_exprs(fit_bce, labels = c(a = 3))), "labels"),
        list(quote(gen_exprs(fit_nb, 10, latent = "foo")), "latent"),
        list(quote(gen_exprs(fit_nb, 10, cells = 0)), "cells"),
        list(quote(gen_exprs(fit_nb, 10, cells = "nocell")), "cells"),
        list(quote(gen_exprs(fit_nb, 10, cells = 1, latent = "gmm")), "cells"),
        list(quote(gen_exprs(fit_nb, 10, batch_size = 0)), "batch_size"),
        list(quote(gen_exprs(fit_nb, 10, use_generator = NA)), "use_generator"),
        # plots, as_sce
        list(quote(plot_vae(5)), "x"),
        list(quote(plot_vae(tamper(fit_nb, { f$model$spec$decoder_units <- 3L; f }))), "x"),
        list(quote(plot_history(5)), "fit"),
        list(quote(plot_history(fit_nb, components = NA)), "components"),
        # (a history without its KL column: bench/fuzz.R, case 6520 of seed 24)
        list(quote(plot_history(tamper(fit_nb, { f$history$kl <- NULL; f }))), "fit"),
        list(quote(plot_aug(5)), "x"),
        list(quote(plot_aug(gen, plot_fun = "foo")), "plot_fun"),
        list(quote(plot_assess(5)), "x"),
        list(quote(as_sce(5)), "x"),
        list(quote(as_sce(gen, real = NA)), "real"),
        # assess_aug
        list(quote(assess_aug(5, real)), "real"),
        list(quote(assess_aug(real, "a")), "gen"),
        list(quote(assess_aug(real, `rownames<-`(real, paste0("x", 1:20)))), "gen"),
        list(quote(assess_aug(real, real[, 1:2])), "gen"),
        list(quote(assess_aug(real[, 1:2], real)), "real"),
        list(quote(assess_aug(real, replace(real, 3, NA))), "gen"),
        list(quote(assess_aug(real, real, labels_real = lab[-1])), "labels_real"),
        list(quote(assess_aug(real, real, labels_real = replace(lab, 2, NA), labels_gen = lab)), "labels_real"),
        list(quote(assess_aug(real, -real, transform = "log")), "gen"),
        list(quote(assess_aug(real, real, transform = "foo")), "transform"),
        list(quote(assess_aug(real, real, n_pcs = 0)), "n_pcs"),
        list(quote(assess_aug(real, real, max_cells = 1)), "max_cells"),
        list(quote(assess_aug(real, real, seed = -1)), "seed"),
        list(quote(assess_aug(real, real, n_genes = 0)), "n_genes"),
        list(quote(assess_aug(real, bad_sparse(function(m) { m@i[5] <- 100000L; m }))), "gen"),
        list(quote(assess_aug(gen, train = 5)), "train")
    )

    test_that(sprintf("%d bad inputs give classed errors naming the argument, inputs unchanged", length(cases)), {
        expect_gte(length(cases), 80L)
        keep <- c("counts", "lab", "fit_nb", "fit_bce", "gen", "sparse", "sce", "real")
        before <- lapply(mget(keep, envir = env), serialize, connection = NULL)
        for (case in cases) {
            label <- paste(deparse(case[[1]], width.cutoff = 200L), collapse = " ")
            err <- tryCatch({ suppressWarnings(suppressMessages(eval(case[[1]], env))); NULL },
                            error = function(e) e)
            expect(inherits(err, "exprsgen_error"),
                   sprintf("%s\n  gave %s", label,
                           if (is.null(err)) "no error" else paste0("an unclassed error: ", conditionMessage(err))))
            if (inherits(err, "exprsgen_error")) {
                msg <- cli::ansi_strip(conditionMessage(err))
                expect(grepl(case[[2]], msg, fixed = TRUE),
                       sprintf("%s\n  does not name `%s`: %s", label, case[[2]], msg))
            }
        }
        after <- lapply(mget(keep, envir = env), serialize, connection = NULL)
        expect_identical(after, before)
    })

    test_that("options with bad values are errors naming the option", {
        for (opt in c("exprsgen.block_cells", "exprsgen.mixture_cells")) {
            for (v in list(NA, "text", 1e12, -5)) {
                old <- options(structure(list(v), names = opt))
                expr <- if (opt == "exprsgen.block_cells") quote(fit_with(x_train = DelayedArray::DelayedArray(counts))) else
                    quote(gen_exprs(fit_bce, 5, latent = "gmm"))
                err <- tryCatch(suppressMessages(eval(expr, env)), error = function(e) e)
                options(old)
                expect_s3_class(err, "exprsgen_error")
                expect_match(conditionMessage(err), opt, fixed = TRUE)
            }
        }
    })
})

test_that("x_val genes are matched by name: reordered columns give the same fit", {
    x <- sim$x
    colnames(x) <- paste0("g", seq_len(ncol(x)))
    v <- x[1:30, ]
    a <- fit_vae(x_train = x, x_val = v, epochs = 2, batch_size = 16, verbose = FALSE, seed = 3)
    b <- fit_vae(x_train = x, x_val = v[, rev(seq_len(ncol(v)))], epochs = 2, batch_size = 16,
                 verbose = FALSE, seed = 3)
    expect_identical(a$history$val_loss, b$history$val_loss)
    # without names on x_val, by position (as VAExprs)
    c <- fit_vae(x_train = x, x_val = unname(v), epochs = 2, batch_size = 16, verbose = FALSE, seed = 3)
    expect_identical(a$history$val_loss, c$history$val_loss)
})

test_that("seeds above the integer range work and fix the fit", {
    a <- fit_vae(x_train = sim$x, epochs = 1, batch_size = 16, verbose = FALSE, seed = 2^40)
    b <- fit_vae(x_train = sim$x, epochs = 1, batch_size = 16, verbose = FALSE, seed = 2^40)
    c <- fit_vae(x_train = sim$x, epochs = 1, batch_size = 16, verbose = FALSE, seed = 2^40 + 1)
    expect_identical(a$history$loss, b$history$loss)
    expect_false(identical(a$history$loss, c$history$loss))
})

test_that("assess_aug() takes generated cells that are all zero", {
    set.seed(2)
    r <- matrix(rpois(20 * 60, 3), 20, 60)
    g <- r
    g[, 1:3] <- 0
    a <- assess_aug(r, g, n_pcs = 5)
    expect_s3_class(a, "exprsgen_assessment")
    expect_true(all(is.finite(a$value[a$metric == "classifier_auc"])))
})

test_that("a memory limit refuses a fit or generation that would exceed it, naming the argument", {
    old <- options(exprsgen.memory_limit = 1e6)
    on.exit(options(old))
    expect_error(fit_vae(x_train = sim$x, encoder_layers = list(layer_input(n_genes), layer_dense(2000)),
                         decoder_layers = list(layer_dense(8), layer_dense(n_genes)),
                         epochs = 1, batch_size = 16, verbose = FALSE),
                 "encoder_layers", class = "exprsgen_error_memory")
    options(old)
    fit <- fit_vae(x_train = sim$x, epochs = 1, batch_size = 16, verbose = FALSE)
    options(exprsgen.memory_limit = 1e6)
    expect_error(gen_exprs(fit, 1e5), "num_samples", class = "exprsgen_error_memory")
    expect_s3_class(gen_exprs(fit, 10), "exprsgen_gen")
})

test_that("one-gene models: plot_aug() says it needs two genes; cells without counts convert", {
    set.seed(1)
    x <- matrix(rpois(50, 1), 50, 1)
    x[1:3, 1] <- c(1, 2, 3)
    x[x == 0] <- 1
    fit <- suppressMessages(fit_vae(x_train = x, likelihood = "nb", epochs = 2, batch_size = 16, verbose = FALSE))
    gen <- gen_exprs(fit, 30)
    expect_error(plot_aug(gen), "2", class = "exprsgen_error_argument")
    gen$x_gen[1:2, ] <- 0  # generated cells without any counts
    sce <- as_sce(gen, real = TRUE)
    expect_identical(unname(as.matrix(SummarizedExperiment::assay(sce, "logcounts"))[1, 51:52]), c(0, 0))
})

test_that("assess_aug() on cells that are nearly all identical gives an AUC, not a ranger error", {
    # (bench/fuzz.R's case: most cells all-zero, so cross-validation folds of
    # identical cells leave a fold with one class to learn from)
    r <- matrix(0, 5, 20, dimnames = list(paste0("c", 1:5), paste0("g", 1:20)))
    r[c(15, 19, 56, 63, 65, 79)] <- 1
    g <- matrix(0, 20, 5, dimnames = list(paste0("c", 1:20), paste0("g", 1:5)))
    g[c(2, 4, 5, 8, 11, 32, 35, 60, 62, 65, 83, 90)] <- 1
    for (seed in c(4, 5, 6)) {  # seeds whose folds failed in ranger before the fix
        a <- suppressWarnings(assess_aug(r, g, transform = "none", n_pcs = 2, seed = seed))
        auc <- a$value[a$metric == "classifier_auc"]
        expect_true(is.finite(auc) && auc >= 0 && auc <= 1)
    }
})

test_that("R's own allocation failures during training become classed memory errors", {
    err <- tryCatch(exprsgen:::.with_memory_errors(stop("cannot allocate vector of size 76.3 Mb"),
                                                  "Training", "Use a smaller model."),
                    error = function(e) e)
    expect_s3_class(err, "exprsgen_error_memory")
    expect_match(conditionMessage(err), "76.3 Mb")
    # other errors pass through unchanged
    err2 <- tryCatch(exprsgen:::.with_memory_errors(stop("something else"), "Training", "x"), error = function(e) e)
    expect_false(inherits(err2, "exprsgen_error"))
    expect_identical(conditionMessage(err2), "something else")
})

test_that("duplicated or empty gene names are refused before training, naming the argument", {
    x <- sim$x
    colnames(x)[2] <- colnames(x)[1]
    expect_error(quick_fit(x_train = x), "duplicated gene names.*gene1", class = "exprsgen_error_argument")
    colnames(x)[2] <- ""
    expect_error(quick_fit(x_train = x), "without a name", class = "exprsgen_error_argument")
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(round(sim$x))))
    rownames(sce)[3] <- rownames(sce)[4]
    expect_error(fit_vae(sce, likelihood = "nb", epochs = 1, batch_size = 16, verbose = FALSE),
                 "object.*duplicated", class = "exprsgen_error_argument")
})

test_that("data given with preprocessing =, a y_train without columns and labels that print alike are refused", {
    fit <- quick_fit(x_train = sim$x, y_train = sim$group)
    expect_error(quick_fit(preprocessing = fit$preprocessing, x_train = sim$x), "preprocessing.*x_train",
                 class = "exprsgen_error_argument")
    expect_error(quick_fit(preprocessing = fit$preprocessing, y_train = sim$group), "y_train",
                 class = "exprsgen_error_argument")
    again <- quick_fit(preprocessing = fit$preprocessing)
    expect_identical(again$model$weights, fit$model$weights)
    expect_error(quick_fit(x_train = sim$x, y_train = data.frame(row.names = seq_len(nrow(sim$x)))),
                 "no columns", class = "exprsgen_error_argument")
    close <- rep(c(1, 1 + 1e-15, 2), length.out = nrow(sim$x))
    expect_error(quick_fit(x_train = sim$x, y_train = close), "printed digits", class = "exprsgen_error_argument")
    # numeric labels that print apart are fine
    ok <- quick_fit(x_train = sim$x, y_train = rep(c(1, 2, 3), length.out = nrow(sim$x)))
    expect_identical(ok$model$spec$classes, c("1", "2", "3"))
})
