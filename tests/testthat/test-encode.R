# encode(): the fitted encoder as a tool.

local({
    set.seed(3)
    x <- matrix(rpois(90 * 25, 3), 90, 25, dimnames = list(paste0("c", 1:90), paste0("g", 1:25)))
    x[, 1] <- x[, 1] + 1
    lab <- rep(c("a", "b", "c"), 30)
    fit <- suppressMessages(fit_vae(x_train = x, y_train = lab, likelihood = "nb", epochs = 3,
                                    batch_size = 16, verbose = FALSE, seed = 1))

    test_that("encode(fit) gives the training cells' latent means, as gen_exprs() uses them", {
        z <- encode(fit)
        expect_identical(dim(z), c(90L, fit$model$spec$latent_dim))
        expect_identical(rownames(z), rownames(x))
        gen <- gen_exprs(fit, 10)
        expect_equal(z, gen$latent_vector)
    })

    test_that("new cells: genes matched by name, labels given, the same codes for the same cells", {
        z <- encode(fit)
        new <- x[1:20, rev(seq_len(ncol(x)))]  # genes in another order, plus an extra gene
        new <- cbind(new, extra = 7)
        expect_equal(encode(fit, new, labels = lab[1:20]), z[1:20, ])
        # another label changes the code (the encoder reads it)
        other <- encode(fit, x[1:20, ], labels = rep("b", 20))
        expect_false(isTRUE(all.equal(other[lab[1:20] != "b", ], z[1:20, ][lab[1:20] != "b", ])))
    })

    test_that("bad new cells are clear errors", {
        expect_error(encode(fit, x[, -3], labels = lab), "g3", class = "exprsgen_error")
        expect_error(encode(fit, x), "labels", class = "exprsgen_error")
        expect_error(encode(fit, x[1:3, ], labels = c("a", "b", "zzz")), "zzz", class = "exprsgen_error")
        expect_error(encode(fit, x[1:3, ], labels = c("a", "b")), "labels", class = "exprsgen_error")
        expect_error(encode(fit, replace(x, 4, -1), labels = lab), "newdata", class = "exprsgen_error")
        expect_error(encode(fit, samples = NA), "samples", class = "exprsgen_error")
        expect_error(encode(5), "fit", class = "exprsgen_error")
    })

    test_that("posterior draws: as many, reproducible under set.seed, spread around the means", {
        set.seed(9)
        a <- encode(fit, samples = TRUE)
        set.seed(9)
        b <- encode(fit, samples = TRUE)
        expect_identical(a, b)
        expect_false(isTRUE(all.equal(a, encode(fit))))
    })

    test_that("a SingleCellExperiment: labels from the fitted colData column, codes as a reducedDim", {
        sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(x)),
                                                          colData = S4Vectors::DataFrame(type = lab))
        f2 <- fit_vae(object = sce, labels = "type", epochs = 2, batch_size = 16, verbose = FALSE, seed = 2)
        expect_equal(encode(f2, sce), encode(f2))
        out <- encode(f2, sce, name = "VAE")
        expect_s4_class(out, "SingleCellExperiment")
        expect_equal(SingleCellExperiment::reducedDim(out, "VAE"), encode(f2))
        expect_error(encode(f2, sce, name = 3), "name", class = "exprsgen_error")
    })
})
