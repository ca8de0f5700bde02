test_that("gen_exprs returns VAExprs's list with dimnames", {
    fit <- quick_fit(x_train = sim$x, y_train = sim$group, epochs = 5)
    set.seed(1)
    gen <- gen_exprs(fit, num_samples = 50)
    expect_named(gen, c("x_gen", "y_gen", "x_train", "y_train", "latent_vector",
                        "conditions_gen", "conditions_train"))
    expect_identical(gen$conditions_gen$label, gen$y_gen)
    expect_identical(dim(gen$x_gen), c(50L, n_genes))
    expect_identical(colnames(gen$x_gen), colnames(sim$x))
    expect_identical(rownames(gen$x_gen), paste0("gen", 1:50))
    expect_equal(gen$x_train, sim$x)
    expect_identical(gen$y_train, sim$group)
    expect_identical(dim(gen$latent_vector), c(nrow(sim$x), 2L))
    expect_identical(rownames(gen$latent_vector), rownames(sim$x))
    # class proportions as in training (equal here), exact counts adding up
    expect_identical(as.vector(table(gen$y_gen)), c(17L, 17L, 16L))
    # values within each gene's training range (min-max scaling undone)
    lo <- apply(sim$x, 2, min)
    hi <- apply(sim$x, 2, max)
    expect_true(all(sweep(gen$x_gen, 2, lo) >= -1e-9) && all(sweep(gen$x_gen, 2, hi) <= 1e-9))
    # a smooth model samples VAExprs's mixture by default
    set.seed(1)
    expect_identical(gen_exprs(fit, num_samples = 50, latent = "gmm")$x_gen, gen$x_gen)
    # ... and draws around given cells when they are named
    set.seed(2)
    around <- gen_exprs(fit, num_samples = 10, cells = 1:5)
    expect_identical(as.character(unique(around$y_gen)), as.character(sim$group[1]))
})

test_that("the same seed gives the identical generated matrix", {
    fit <- quick_fit(x_train = sim$x, epochs = 5)
    set.seed(42)
    a <- gen_exprs(fit, 40)
    set.seed(42)
    b <- gen_exprs(fit, 40)
    set.seed(43)
    c <- gen_exprs(fit, 40)
    expect_identical(a$x_gen, b$x_gen)
    expect_false(identical(a$x_gen, c$x_gen))
    expect_null(a$y_gen)
})

test_that("classes of any number, including a class of one cell, are sampled", {
    y <- as.character(sim$group)
    y[1] <- "singleton"
    y[2:3] <- "pair"
    fit <- quick_fit(x_train = sim$x, y_train = y, epochs = 3)
    expect_length(fit$model$spec$classes, 5L)
    set.seed(1)
    gen <- suppressMessages(gen_exprs(fit, num_samples = 240))
    counts <- table(gen$y_gen)
    expect_identical(sum(counts), 240L)
    expect_identical(counts[["singleton"]], 2L)
    expect_identical(counts[["pair"]], 4L)
    expect_true(all(is.finite(gen$x_gen)))
    expect_message(gen_exprs(fit, num_samples = 240), "singleton")
})

test_that("the fit survives saveRDS and a new R process", {
    fit <- quick_fit(x_train = sim$x, y_train = sim$group, epochs = 3)
    path <- tempfile(fileext = ".rds")
    out <- tempfile(fileext = ".rds")
    saveRDS(fit, path)
    code <- sprintf("suppressMessages(library(exprsgen)); fit <- readRDS('%s'); set.seed(9); saveRDS(gen_exprs(fit, 25), '%s')",
                    path, out)
    status <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)),
                      stdout = FALSE, stderr = FALSE)
    expect_identical(status, 0L)
    there <- readRDS(out)
    set.seed(9)
    here <- gen_exprs(fit, 25)
    expect_identical(there$x_gen, here$x_gen)
    expect_identical(there$y_gen, here$y_gen)
})

test_that("absurd mixture draws are redrawn, never decoded", {
    set.seed(1)
    enc <- list(mean = matrix(stats::rnorm(200), 100, 2), log_var = matrix(-2, 100, 2))
    calls <- 0
    # a mixture whose first draws come from a huge component
    fake_sim <- function(model, n) {
        calls <<- calls + 1
        z <- matrix(stats::rnorm(2 * n), n, 2)
        if (calls == 1) z[seq_len(n %/% 2), ] <- 1e6
        cbind(group = 1, z)
    }
    fake_fit <- function(data) list(modelName = "VVV")
    out <- exprsgen:::.draw_latent("gmm", enc, 1:100, 1:100, 50, "test",
                                   fit_mixture = fake_fit, sim_mixture = fake_sim)
    expect_gt(calls, 1)
    expect_true(all(abs(out$z) < 10))
    expect_identical(dim(out$z), c(50L, 2L))
})
