skip_if_not_installed("HDF5Array")

on_disk <- function(m, as.sparse = TRUE) {
    HDF5Array::writeHDF5Array(as.matrix(m), tempfile(fileext = ".h5"), "counts",
                              chunkdim = c(nrow(m), 16L), as.sparse = as.sparse)
}

h5_args <- list(labels = "type", likelihood = "nb",
                encoder_layers = list(layer_input(200), layer_dense(32, "relu")),
                decoder_layers = list(layer_dense(32, "relu"), layer_dense(200)),
                epochs = 3, batch_size = 32, seed = 1, verbose = FALSE)

test_that("an HDF5-backed SingleCellExperiment trains without being read whole", {
    sc <- simulate_counts()
    h5 <- on_disk(sc$counts)
    disk <- SingleCellExperiment::SingleCellExperiment(
        assays = list(counts = h5), colData = S4Vectors::DataFrame(type = sc$label))
    mem <- SingleCellExperiment::SingleCellExperiment(
        assays = list(counts = sc$counts), colData = S4Vectors::DataFrame(type = sc$label))
    a <- do.call(fit_vae, c(list(disk), h5_args))
    b <- do.call(fit_vae, c(list(mem), h5_args))
    # kept on disk, and (in one block) the very same fit as in memory
    expect_true(methods::is(a$preprocessing$x_train, "DelayedArray"))
    expect_identical(a$history, b$history)
    expect_identical(a$model$weights, b$model$weights)
    expect_equal(a$preprocessing$library_size, unname(Matrix::colSums(sc$counts)))
    # in many blocks (16 cells each), streaming still trains and generates
    withr::local_options(exprsgen.block_cells = 16)
    c <- do.call(fit_vae, c(list(disk), utils::modifyList(h5_args, list(epochs = 15))))
    expect_lt(tail(c$history$loss, 1), c$history$loss[1])
    set.seed(1)
    gen <- gen_exprs(c, labels = c(type2 = 10))
    expect_identical(dim(gen$x_gen), c(10L, 200L))
    expect_identical(nrow(gen$latent_vector), 180L)
    # the same seed gives the same block order and fit
    d <- do.call(fit_vae, c(list(disk), utils::modifyList(h5_args, list(epochs = 15))))
    expect_identical(c$model$weights, d$model$weights)
    # a bce model scales with minima and maxima found while streaming
    e <- fit_vae(disk, labels = "type", epochs = 2, batch_size = 32, seed = 1, verbose = FALSE)
    expect_equal(e$preprocessing$minmax$max,
                 unname(apply(as.matrix(SummarizedExperiment::assay(scuttle::logNormCounts(mem), "logcounts")), 1, max)),
                 tolerance = 1e-6)
})

test_that("bad on-disk data are refused before training", {
    sc <- simulate_counts(n_per = 10)
    frac <- as.matrix(sc$counts)
    frac[2, 3] <- 1.5
    bad <- SingleCellExperiment::SingleCellExperiment(assays = list(counts = on_disk(frac, FALSE)))
    expect_error(fit_vae(bad, likelihood = "nb", epochs = 1, batch_size = 8, verbose = FALSE),
                 "object.*counts", class = "exprsgen_error")
    path <- tempfile(fileext = ".h5")
    gone <- HDF5Array::writeHDF5Array(as.matrix(sc$counts), path, "counts")
    unlink(path)
    expect_error(fit_vae(x_train = t(gone), likelihood = "nb", epochs = 1, batch_size = 8,
                         verbose = FALSE),
                 "x_train.*could not be read", class = "exprsgen_error")
})

test_that("an on-disk x_train with cells in rows trains like its genes x cells object", {
    sc <- simulate_counts()
    args <- h5_args[names(h5_args) != "labels"]
    rows <- do.call(fit_vae, c(list(x_train = DelayedArray::DelayedArray(t(as.matrix(sc$counts)))), args))
    sce <- SingleCellExperiment::SingleCellExperiment(assays = list(counts = DelayedArray::DelayedArray(as.matrix(sc$counts))))
    cols <- do.call(fit_vae, c(list(sce), args))
    expect_identical(rows$preprocessing$genes, rownames(sc$counts))
    expect_identical(rows$model$weights, cols$model$weights)
    expect_identical(rows$history, cols$history)
})

test_that("an on-disk x_val is read into memory for an in-memory x_train", {
    val <- sim$x[1:30, ]
    a <- quick_fit(x_train = sim$x, x_val = DelayedArray::DelayedArray(val))
    b <- quick_fit(x_train = sim$x, x_val = val)
    expect_identical(a$history, b$history)
    expect_true(is.matrix(a$preprocessing$x_val))
})

test_that("blocks are read dense and compressed when mostly zeros, whatever the dataset declares", {
    set.seed(4)
    m <- matrix(0L, 50, 40)
    m[sample(length(m), 300)] <- rpois(300, 3) + 1L  # 15 % non-zero
    m[7, 3] <- NA
    declared_dense <- HDF5Array::writeHDF5Array(m, tempfile(fileext = ".h5"), "counts", chunkdim = c(50L, 8L))
    expect_false(DelayedArray::is_sparse(declared_dense))
    idx <- 3:30
    got <- exprsgen:::.read_cells(declared_dense, idx)
    expect_s4_class(got, "dgCMatrix")
    want <- m[, idx] + 0
    expect_identical(is.na(as.matrix(got)), is.na(want))  # an integer NA is kept as NaN
    want[is.na(want)] <- 0
    got[is.na(got)] <- 0
    expect_identical(unname(as.matrix(got)), want)
    # mostly non-zero: a dense double matrix; declared sparse: always compressed
    full <- matrix(rpois(2000, 5) + 1L, 50, 40)
    expect_identical(exprsgen:::.read_cells(on_disk(full, as.sparse = FALSE), idx), full[, idx] + 0)
    expect_s4_class(exprsgen:::.read_cells(HDF5Array::HDF5Array(on_disk(full)@seed@filepath, "counts", as.sparse = TRUE), idx),
                    "dgCMatrix")
    # a logical dataset is read as numbers
    lg <- HDF5Array::writeHDF5Array(m > 2, tempfile(fileext = ".h5"), "flags", chunkdim = c(50L, 8L))
    expect_identical(unname(as.matrix(exprsgen:::.read_cells(lg, idx))), (m[, idx] > 2) + 0)
    # the NA is found by the checks before training
    x <- SingleCellExperiment::SingleCellExperiment(list(counts = declared_dense))
    expect_error(fit_vae(x, likelihood = "nb", epochs = 1, batch_size = 8, verbose = FALSE),
                 "NA", class = "exprsgen_error")
})

test_that("the results of an on-disk fit go where in-memory ones go: as_sce(), assess_aug(), plot_aug()", {
    sc <- simulate_counts()
    disk <- SingleCellExperiment::SingleCellExperiment(
        assays = list(counts = on_disk(sc$counts)), colData = S4Vectors::DataFrame(type = sc$label))
    fit <- do.call(fit_vae, c(list(disk), h5_args))
    set.seed(1)
    gen <- gen_exprs(fit, labels = c(type1 = 20, type3 = 20))
    # the training cells stay on disk in the result
    expect_true(methods::is(gen$x_train, "DelayedArray"))
    sce <- as_sce(gen)
    expect_identical(ncol(sce), 40L)
    both <- as_sce(gen, real = TRUE)
    expect_identical(ncol(both), 220L)
    expect_identical(as.vector(table(both$origin)), c(180L, 40L))
    # the real part is the training counts, read from disk only when asked
    expect_true(methods::is(SummarizedExperiment::assay(both, "counts"), "DelayedArray"))
    expect_equal(unname(as.matrix(SummarizedExperiment::assay(both, "counts")[, 1:180])),
                 unname(as.matrix(sc$counts)))
    a <- assess_aug(gen, n_pcs = 5, seed = 1)
    expect_true("memorisation" %in% a$metric)
    expect_s3_class(suppressWarnings(plot_aug(gen, "PCA")), "ggplot")
})

test_that("an HDF5 file deleted, truncated or replaced after the fit is named, not read", {
    sc <- simulate_counts(n_per = 10)
    path <- tempfile(fileext = ".h5")
    h5 <- HDF5Array::writeHDF5Array(as.matrix(sc$counts), path, "counts")
    sce <- SingleCellExperiment::SingleCellExperiment(assays = list(counts = h5))
    fit <- fit_vae(sce, likelihood = "nb", epochs = 2, batch_size = 8, verbose = FALSE)
    expect_identical(fit$preprocessing$files$path, normalizePath(path))
    expect_identical(dim(gen_exprs(fit, 3)$x_gen), c(3L, nrow(sc$counts)))
    # replaced by a file of other values (same size): the modification time tells
    Sys.setFileTime(path, Sys.time() + 5)
    expect_error(gen_exprs(fit, 3), "has changed since the fit", class = "exprsgen_error_data_changed")
    expect_error(encode(fit), "has changed", class = "exprsgen_error_data_changed")
    expect_error(fit_vae(preprocessing = fit$preprocessing, likelihood = "nb", epochs = 1, batch_size = 8,
                         verbose = FALSE), "preprocessing.*has changed", class = "exprsgen_error_data_changed")
    # truncated
    writeBin(readBin(path, "raw", 100), path)
    expect_error(gen_exprs(fit, 3), "has changed", class = "exprsgen_error_data_changed")
    # deleted; printing and plotting the history need no data
    unlink(path)
    expect_error(gen_exprs(fit, 3), "no longer exists", class = "exprsgen_error_data_changed")
    expect_output(print(fit), "exprsgen fit")
    # a fit in memory has no files to check
    mem <- fit_vae(x_train = t(as.matrix(sc$counts)), likelihood = "nb", epochs = 1, batch_size = 8, verbose = FALSE)
    expect_null(mem$preprocessing$files)
})
