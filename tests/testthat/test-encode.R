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

    test_that("the fit keeps the training cells' codes; a fit without them is encoded again, to the same codes", {
        expect_identical(dim(fit$latent$mean), c(90L, fit$model$spec$latent_dim))
        expect_identical(dim(fit$latent$log_var), dim(fit$latent$mean))
        old <- fit
        old$latent <- NULL  # as saved by a version that did not keep them
        expect_identical(encode(old), encode(fit))
        set.seed(5)
        a <- gen_exprs(fit, 30)
        set.seed(5)
        b <- gen_exprs(old, 30)
        expect_identical(a$latent_vector, b$latent_vector)
        expect_identical(a$x_gen, b$x_gen)
        bad <- fit
        bad$latent$mean <- bad$latent$mean[-1, ]
        expect_error(gen_exprs(bad, 5), "latent", class = "exprsgen_error")
        bad <- fit
        bad$latent$log_var[2, 1] <- NaN
        expect_error(encode(bad), "latent", class = "exprsgen_error")
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

test_that("normalized_exprs(): count means at a common library size, decoded with chosen labels", {
    set.seed(5)
    # two batches; genes 1-5 shifted up in batch b2
    n <- 120L
    batch <- rep(c("b1", "b2"), n / 2)
    mu <- matrix(4, n, 30)
    mu[batch == "b2", 1:5] <- 20
    x <- matrix(rpois(length(mu), mu), n, 30, dimnames = list(paste0("c", 1:n), paste0("g", 1:30)))
    fit <- suppressMessages(fit_vae(x_train = x, y_train = batch, likelihood = "nb", epochs = 40,
                                    batch_size = 16, verbose = FALSE, seed = 1))
    own <- normalized_exprs(fit)
    expect_identical(dim(own), c(30L, n))
    expect_identical(dimnames(own), list(colnames(x), rownames(x)))
    expect_equal(unname(colSums(own)), rep(1e4, n), tolerance = 1e-6)  # means at library size 1e4
    expect_equal(unname(colSums(normalized_exprs(fit, library_size = 50))), rep(50, n), tolerance = 1e-6)
    # the shifted genes are higher in b2 cells; decoded as b1 the shift is gone
    shifted <- function(m, cells) mean(colSums(m[1:5, cells]) / colSums(m[6:30, cells]))
    as_b1 <- normalized_exprs(fit, decode_labels = "b1")
    expect_gt(shifted(own, batch == "b2"), 1.5 * shifted(own, batch == "b1"))
    expect_lt(abs(shifted(as_b1, batch == "b2") / shifted(as_b1, batch == "b1") - 1), 0.25)
    # new cells by name, decode labels per cell; errors name the argument
    expect_equal(normalized_exprs(fit, x[1:4, ], labels = batch[1:4]), own[, 1:4])
    expect_error(normalized_exprs(fit, decode_labels = "b9"), "b9", class = "exprsgen_error")
    expect_error(normalized_exprs(fit, library_size = -1), "library_size", class = "exprsgen_error")
    expect_error(normalized_exprs(fit, decode_labels = batch[-1]), "decode_labels", class = "exprsgen_error")
})

test_that("normalized_exprs() of a bce model is its reconstruction; an SCE gets it as an assay", {
    set.seed(6)
    x <- matrix(rpois(60 * 20, 3), 60, 20, dimnames = list(paste0("c", 1:60), paste0("g", 1:20)))
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = t(x)))
    fit <- fit_vae(object = sce, epochs = 2, batch_size = 16, verbose = FALSE, seed = 3)
    rec <- normalized_exprs(fit)
    expect_equal(rec, t(exprsgen:::.reconstruct(fit)), ignore_attr = TRUE)
    out <- normalized_exprs(fit, sce, name = "vae")
    expect_equal(unname(as.matrix(SummarizedExperiment::assay(out, "vae"))), unname(rec))
    # genes the model was not trained on: left out, and said so
    # (without counts: the same library sizes)
    wider <- SingleCellExperiment::SingleCellExperiment(list(counts = rbind(t(x), extra1 = 0, extra2 = 0)))
    expect_message(out2 <- normalized_exprs(fit, wider, name = "vae"), "2 genes the model was not trained on",
                   class = "exprsgen_message_genes_dropped")
    expect_identical(rownames(out2), colnames(x))
    expect_equal(SummarizedExperiment::assay(out2, "vae"), SummarizedExperiment::assay(out, "vae"))
})

test_that("training cells are encoded in chunks (interruptible between them) to the very same codes", {
    set.seed(2)
    x <- matrix(rpois(500 * 40, 2), 500, 40, dimnames = list(NULL, paste0("g", 1:40)))
    fit <- fit_vae(x_train = x, y_train = rep(c("a", "b"), 250), likelihood = "nb", epochs = 2, batch_size = 64,
                   seed = 1, verbose = FALSE)
    prep <- exprsgen:::.upgrade_preprocessing(fit$preprocessing)
    old <- options(exprsgen.encode_cells = 37)
    on.exit(options(old))
    chunked <- exprsgen:::.encode_training(fit$model, prep)
    expect_identical(chunked$mean, fit$latent$mean)
    expect_identical(chunked$log_var, fit$latent$log_var)
})

test_that("new cells naming a model gene twice are refused, not matched to its first row", {
    set.seed(3)
    x <- matrix(rpois(40 * 12, 3), 40, 12, dimnames = list(NULL, paste0("g", 1:12)))
    fit <- fit_vae(x_train = x, likelihood = "nb", epochs = 1, batch_size = 8, verbose = FALSE)
    dup <- cbind(x[1:5, ], g3 = 0)
    expect_error(encode(fit, dup), "duplicated names.*g3", class = "exprsgen_error_argument")
    expect_error(normalized_exprs(fit, dup), "duplicated names", class = "exprsgen_error_argument")
    # a name twice among genes the model does not use is harmless
    extra <- cbind(x[1:5, ], other = 1, other = 2)
    expect_identical(encode(fit, extra), encode(fit, x[1:5, ]))
})
