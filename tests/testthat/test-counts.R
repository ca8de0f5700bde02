sim_counts <- simulate_counts()
count_sce <- SingleCellExperiment::SingleCellExperiment(
    assays = list(counts = sim_counts$counts),
    colData = S4Vectors::DataFrame(type = sim_counts$label))

count_fit <- function(likelihood = "nb", epochs = 40, ...) {
    fit_vae(count_sce, labels = "type", likelihood = likelihood,
            encoder_layers = list(layer_input(200), layer_dense(64, "relu")),
            decoder_layers = list(layer_dense(64, "relu"), layer_dense(200)),
            epochs = epochs, batch_size = 32, seed = 1, verbose = FALSE,
            optimizer = optimizer_adam(learning_rate = 0.003), ...)
}

test_that("count models train on a dgCMatrix without densifying it", {
    fit <- count_fit("nb", epochs = 30)
    # the training data are the object's own sparse counts, unchanged
    expect_s4_class(fit$preprocessing$x_train, "dgCMatrix")
    expect_identical(fit$preprocessing$x_train, sim_counts$counts)
    expect_identical(fit$preprocessing$transform$type, "counts")
    h <- fit$history
    expect_lt(mean(tail(h$reconstruction, 3)), mean(h$reconstruction[1:3]) - 20)
    # exact NLL: reconstruction per cell is of the order of genes * log-likelihood of counts
    expect_gt(min(h$reconstruction), 0)
    expect_true("dispersion" %in% names(fit$model$weights))
    expect_length(fit$model$weights$dispersion$bias, 200L)
})

test_that("every count likelihood generates integer counts with realistic depth and markers", {
    for (lik in c("nb", "zinb", "poisson", "zip")) {
        fit <- count_fit(lik)
        set.seed(1)
        # (Poisson cells of NB data vary less than real ones: the memorisation check
        # may find them nearer the training cells)
        gen <- suppressWarnings(gen_exprs(fit, labels = c(type1 = 40, type3 = 20)),
                                classes = "exprsgen_warning_memorisation")
        expect_s4_class(gen$x_gen, "dgRMatrix")
        expect_identical(dim(gen$x_gen), c(60L, 200L))
        expect_identical(colnames(gen$x_gen), rownames(sim_counts$counts))
        expect_true(all(gen$x_gen@x == round(gen$x_gen@x)) && all(gen$x_gen@x > 0))
        expect_identical(as.vector(table(gen$y_gen)), c(40L, 0L, 20L))
        # library sizes come from training cells of the same class: within their range
        libs <- Matrix::rowSums(gen$x_gen)
        train_libs <- Matrix::colSums(sim_counts$counts)
        expect_true(all(libs > 0.5 * min(train_libs) & libs < 1.5 * max(train_libs)), info = lik)
        expect_true(abs(log(stats::median(libs)) - log(stats::median(train_libs))) < 0.3,
                    info = lik)
        # each class up-regulates its own marker genes
        m <- as.matrix(gen$x_gen) / libs
        expect_gt(mean(m[gen$y_gen == "type1", 1:20]), 3 * mean(m[gen$y_gen == "type3", 1:20]))
        expect_gt(mean(m[gen$y_gen == "type3", 41:60]), 3 * mean(m[gen$y_gen == "type1", 41:60]))
    }
})

test_that("ZINB generates more zeros than the NB mean alone would", {
    fit <- count_fit("zinb")
    pi <- stats::plogis(fit$model$weights$dropout$bias)
    expect_length(pi, 200L)
    set.seed(2)
    gen <- gen_exprs(fit, 120)
    zeros_gen <- mean(as.matrix(gen$x_gen) == 0)
    zeros_real <- mean(as.matrix(sim_counts$counts) == 0)
    expect_lt(abs(zeros_gen - zeros_real), 0.1)
})

test_that("latent = prior and posterior, and cells =", {
    fit <- count_fit("nb", epochs = 10)
    set.seed(3)
    prior <- gen_exprs(fit, 30, latent = "prior")
    expect_identical(nrow(prior$x_gen), 30L)
    set.seed(3)
    post <- gen_exprs(fit, 25, latent = "posterior", cells = c("c1", "c2", "c3"))
    expect_identical(as.character(unique(post$y_gen)), "type1")
    set.seed(3)
    post2 <- gen_exprs(fit, 25, latent = "posterior", cells = 1:3)
    expect_identical(post$x_gen, post2$x_gen)
    expect_error(gen_exprs(fit, 5, latent = "posterior", cells = "nope"), "cells",
                 class = "exprsgen_error")
    expect_error(gen_exprs(fit, 5, latent = "gmm", cells = 1:3), "posterior", class = "exprsgen_error")
    # `cells` given: posterior draws; otherwise count models draw as fit_vae() chose
    # (its automatic settings for these 180 cells: the mixture), bce models from the mixture
    set.seed(3)
    expect_identical(gen_exprs(fit, 25, cells = 1:3)$x_gen, post$x_gen)
    expect_identical(fit$params$generation$latent, "gmm")
    set.seed(3)
    gmm <- gen_exprs(fit, 25, latent = "gmm")
    set.seed(3)
    expect_identical(gen_exprs(fit, 25)$x_gen, gmm$x_gen)
    set.seed(3)
    expect_false(identical(gen_exprs(fit, 25, latent = "posterior")$x_gen, gmm$x_gen))
    expect_error(gen_exprs(fit, 5, latent = "flow"), "latent", class = "exprsgen_error_argument")
    expect_error(gen_exprs(fit, labels = c(type9 = 3)), "type9", class = "exprsgen_error")
    expect_error(gen_exprs(fit, 10, labels = c(type1 = 3)), "num_samples", class = "exprsgen_error")
    expect_error(gen_exprs(fit, latent = "posterior", cells = 1:3, labels = c(type2 = 3)),
                 "type2", class = "exprsgen_error")
    set.seed(4)
    a <- gen_exprs(fit, 15)
    set.seed(4)
    b <- gen_exprs(fit, 15)
    expect_identical(a$x_gen, b$x_gen)
})

test_that("as_sce gives Bioconductor containers", {
    fit <- count_fit("nb", epochs = 5)
    set.seed(5)
    gen <- gen_exprs(fit, labels = c(type2 = 7, type3 = 5))
    sce <- as(gen, "SingleCellExperiment")
    expect_s4_class(sce, "SingleCellExperiment")
    expect_identical(SummarizedExperiment::assayNames(sce), c("counts", "logcounts"))
    expect_s4_class(SummarizedExperiment::assay(sce, "counts"), "dgCMatrix")
    expect_identical(rownames(sce), rownames(sim_counts$counts))
    expect_identical(as.character(sce$origin), rep("generated", 12))
    expect_identical(as.character(sce$label), rep(c("type2", "type3"), c(7, 5)))
    expect_equal(Matrix::t(SummarizedExperiment::assay(sce, "counts")),
                 methods::as(gen$x_gen, "CsparseMatrix"), ignore_attr = TRUE)
    both <- as_sce(gen, real = TRUE)
    expect_identical(ncol(both), 180L + 12L)
    expect_identical(as.vector(table(both$origin)), c(180L, 12L))
    expect_equal(SummarizedExperiment::assay(both, "counts")[, 1:180], sim_counts$counts,
                 ignore_attr = TRUE)
    expect_s3_class(plot_aug(gen, "PCA"), "ggplot")
    # a bce model's values go into logcounts
    vae <- quick_fit(x_train = sim$x, epochs = 1)
    sce2 <- as_sce(gen_exprs(vae, 4))
    expect_identical(SummarizedExperiment::assayNames(sce2), "logcounts")
})

test_that("bce models take sparse input too, with the same fit as dense", {
    dense <- SingleCellExperiment::SingleCellExperiment(
        assays = list(counts = as.matrix(sim_counts$counts)))
    sparse <- SingleCellExperiment::SingleCellExperiment(assays = list(counts = sim_counts$counts))
    args <- list(encoder_layers = list(layer_input(200), layer_dense(16, "relu")),
                 decoder_layers = list(layer_dense(16, "relu"), layer_dense(200, "sigmoid")),
                 epochs = 3, batch_size = 32, seed = 1, verbose = FALSE)
    a <- do.call(fit_vae, c(list(dense), args))
    b <- do.call(fit_vae, c(list(sparse), args))
    expect_s4_class(b$preprocessing$x_train, "dgCMatrix")
    expect_equal(a$model$weights, b$model$weights, tolerance = 1e-6)
    # a sparse x_train (cells x genes) works as well
    c <- do.call(fit_vae, c(list(x_train = Matrix::t(sim_counts$counts)), args))
    expect_true(all(is.finite(c$history$loss)))
})

test_that("bad count input is refused before training, naming the argument", {
    neg <- sim_counts$counts
    neg@x[1] <- -1
    bad <- SingleCellExperiment::SingleCellExperiment(assays = list(counts = neg))
    expect_error(fit_vae(bad, likelihood = "nb", epochs = 1, batch_size = 8, verbose = FALSE),
                 "object.*counts", class = "exprsgen_error")
    frac <- sim_counts$counts
    frac@x[1] <- 0.5
    x_before <- frac
    expect_error(fit_vae(x_train = Matrix::t(frac), likelihood = "zinb", epochs = 1,
                         batch_size = 8, verbose = FALSE), "x_train", class = "exprsgen_error")
    expect_identical(frac, x_before)
    with_na <- sim_counts$counts
    with_na@x[3] <- NA
    expect_error(fit_vae(x_train = Matrix::t(with_na), epochs = 1, batch_size = 8, verbose = FALSE),
                 "x_train.*NA", class = "exprsgen_error")
    expect_error(fit_vae(x_train = Matrix::t(sim_counts$counts), likelihood = "gaussian",
                         epochs = 1, batch_size = 8), "likelihood", class = "exprsgen_error")
    expect_error(fit_vae(count_sce, labels = "celltype", likelihood = "nb", epochs = 1,
                         batch_size = 8), "celltype", class = "exprsgen_error")
})

test_that("generated counts do not depend on the number of threads", {
    d <- simulate_counts(n_per = 40, genes = 300)
    fit <- fit_vae(x_train = Matrix::t(d$counts), y_train = d$label, likelihood = "zinb",
                   epochs = 2, batch_size = 32, verbose = FALSE, seed = 1)
    set.seed(5)
    one <- gen_exprs(fit, 3000, num.threads = 1)
    set.seed(5)
    two <- gen_exprs(fit, 3000, num.threads = 2)
    expect_identical(one$x_gen, two$x_gen)
    expect_gt(length(one$x_gen@x), 1000)
    expect_error(gen_exprs(fit, 10, num.threads = 0), "num.threads", class = "exprsgen_error")
})

test_that("library_size = 'lognormal' draws library sizes from each class's log-normal", {
    fit <- count_fit("nb", epochs = 5)
    lib <- Matrix::colSums(sim_counts$counts)
    set.seed(1)
    gen <- gen_exprs(fit, labels = c(type1 = 400, type2 = 0, type3 = 400), library_size = "lognormal",
                     latent = "posterior", guard = FALSE)
    sizes <- Matrix::rowSums(gen$x_gen)
    for (k in c("type1", "type3")) {
        real <- log(lib[sim_counts$label == k])
        drawn <- log(sizes[gen$y_gen == k])
        # new values, not the training cells' own
        expect_lt(mean(round(exp(drawn)) %in% round(exp(real))), 0.5)
        # the class's log-normal: the counts drawn sum to about the library size asked for
        expect_equal(mean(drawn), mean(real), tolerance = 0.05)
        expect_equal(stats::sd(drawn), stats::sd(real), tolerance = 0.25)
    }
    set.seed(1)
    own <- gen_exprs(fit, labels = c(type1 = 400), latent = "posterior", guard = FALSE)
    expect_true(all(Matrix::rowSums(own$x_gen) <= max(lib) * 1.5))
    expect_error(gen_exprs(fit, 5, library_size = "poisson"), "library_size", class = "exprsgen_error_argument")
})

test_that("a count user who leaves likelihood at its default hears once that a count model exists", {
    withr::local_options(rlib_message_verbosity = "default")
    set.seed(4)
    counts <- matrix(rpois(40 * 20, 3), 40, 20, dimnames = list(NULL, paste0("g", 1:20)))
    # (the once-per-session memory of rlang, emptied for this test)
    env <- get("message_freq_env", asNamespace("rlang"), inherits = FALSE)
    rm(list = ls(env, all.names = TRUE), envir = env)
    expect_message(fit_vae(x_train = counts, epochs = 1, batch_size = 8), "raw counts",
                   class = "exprsgen_message_counts_hint")
    second <- testthat::capture_messages(fit_vae(x_train = counts, epochs = 1, batch_size = 8))
    expect_false(any(grepl("raw counts", second)))
    rm(list = ls(env, all.names = TRUE), envir = env)
    # not for a likelihood given, values that are not counts, or verbose = FALSE
    for (call in list(quote(fit_vae(x_train = counts, likelihood = "bce", epochs = 1, batch_size = 8)),
                      quote(fit_vae(x_train = counts + 0.5, epochs = 1, batch_size = 8)),
                      quote(fit_vae(x_train = counts, epochs = 1, batch_size = 8, verbose = FALSE)))) {
        expect_false(any(grepl("raw counts", testthat::capture_messages(eval(call)))))
    }
    # a SingleCellExperiment's "counts" assay
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(counts)))
    expect_message(fit_vae(sce, epochs = 1, batch_size = 8), "raw counts", class = "exprsgen_message_counts_hint")
})
