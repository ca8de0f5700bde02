# Forked workers (parallel::mclapply, BiocParallel's MulticoreParam) inherit the core's
# handles but not their threads (issue 23): a child must be able to drop what it
# inherited, and to train and generate with threads of its own.

test_that("forked children drop inherited handles and fit and generate with threads of their own", {
    skip_on_os("windows")
    d <- simulate_counts(n_per = 30, genes = 60)
    x <- Matrix::t(d$counts)
    fit <- fit_vae(x_train = as.matrix(x), y_train = d$label, likelihood = "nb", epochs = 3, batch_size = 16,
                   num.threads = 2, seed = 1, verbose = FALSE)
    set.seed(1)
    gen <- gen_exprs(fit, num_samples = 30, num.threads = 2)
    # handles of the parent, alive in R's memory when the children are forked
    handle <- exprsgen:::.eg_model_new(fit$model, 2L)
    res <- parallel::mclapply(1:2, function(i) {
        rm(handle)
        gc()  # finalizers of the inherited handles run in the child
        f <- fit_vae(x_train = as.matrix(x), y_train = d$label, likelihood = "nb", epochs = 3, batch_size = 16,
                     num.threads = 2, seed = 1, verbose = FALSE)
        set.seed(1)
        g <- gen_exprs(f, num_samples = 30, num.threads = 2)
        list(weights = f$model$weights, gen = g$x_gen, i = i)
    }, mc.cores = 2)
    for (r in res) {
        expect_type(r, "list")  # a child that died gives NULL or a try-error
        # the same fit and cells as the parent's threads gave
        expect_equal(r$weights, fit$model$weights)
        expect_identical(r$gen, gen$x_gen)
    }
    expect_identical(vapply(res, `[[`, integer(1), "i"), 1:2)
    rm(handle)
    gc()
})
