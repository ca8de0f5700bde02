# inst/scripts/exprsgen-batch.R end to end, in an Rscript child: inputs, outputs, exit status.

script <- system.file("scripts", "exprsgen-batch.R", package = "exprsgen")
# A folder holding in.rds: 45 simulated cells of 3 types (colData column "type").
rds_input <- function() {
    wd <- tempfile("batch")
    dir.create(wd)
    d <- simulate_counts(n_per = 15, genes = 80)
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$counts),
                                                      colData = S4Vectors::DataFrame(type = d$label))
    saveRDS(sce, file.path(wd, "in.rds"))
    wd
}

run_script <- function(args, wd) {
    processx::run(file.path(R.home("bin"), "Rscript"), c(script, args), wd = wd, error_on_status = FALSE,
                  env = c(Sys.getenv(), NO_COLOR = "1"))
}

test_that("a MatrixMarket file with gene, cell and label files: model, SCE and MatrixMarket out", {
    skip_if_not_installed("processx")  # installed by tools/setup.sh
    expect_true(nzchar(script))
    wd <- tempfile("batch")
    dir.create(wd)
    d <- simulate_counts(n_per = 20, genes = 80)
    Matrix::writeMM(d$counts, file.path(wd, "counts.mtx"))
    writeLines(rownames(d$counts), file.path(wd, "genes.tsv"))
    writeLines(paste0(colnames(d$counts), "\tsample1"), file.path(wd, "cells.tsv"))
    writeLines(as.character(d$label), file.path(wd, "labels.tsv"))
    r <- run_script(c("--input", "counts.mtx", "--genes", "genes.tsv", "--cells", "cells.tsv",
                      "--labels", "labels.tsv", "--out", "res", "--epochs", "3", "--batch-size", "16",
                      "--per-class", "6", "--seed", "2"), wd)
    expect_identical(r$status, 0L)
    # time-stamped progress lines
    expect_match(r$stdout, "^\\d{4}-\\d{2}-\\d{2} \\d{2}:\\d{2}:\\d{2} exprsgen")
    expect_match(r$stdout, "generated 18 cells")
    fit <- readRDS(file.path(wd, "res", "model.rds"))
    expect_s3_class(fit, "exprsgen_fit")
    expect_identical(fit$model$spec$classes, levels(d$label))
    sce <- readRDS(file.path(wd, "res", "generated.rds"))
    expect_s4_class(sce, "SingleCellExperiment")
    expect_identical(as.vector(table(sce$label)), c(6L, 6L, 6L))
    mm <- Matrix::readMM(file.path(wd, "res", "generated.mtx"))
    expect_identical(dim(mm), c(80L, 18L))
    expect_equal(unname(as.matrix(mm)), unname(as.matrix(SummarizedExperiment::assay(sce, "counts"))))
    expect_identical(readLines(file.path(wd, "res", "generated_genes.tsv")), rownames(d$counts))
    expect_identical(readLines(file.path(wd, "res", "generated_labels.tsv")), as.character(sce$label))
    # the same seed: the same model
    r2 <- run_script(c("--input", "counts.mtx", "--genes", "genes.tsv", "--cells", "cells.tsv",
                       "--labels", "labels.tsv", "--out", "res2", "--epochs", "3", "--batch-size", "16",
                       "--per-class", "6", "--seed", "2"), wd)
    expect_identical(readRDS(file.path(wd, "res2", "model.rds"))$model$weights, fit$model$weights)
})

test_that("an .rds SingleCellExperiment with a colData label column; bad input exits 1 with one line", {
    skip_if_not_installed("processx")
    wd <- rds_input()
    r <- run_script(c("--input", "in.rds", "--labels", "type", "--out", "o", "--epochs", "2",
                      "--batch-size", "16", "--per-class", "4"), wd)
    expect_identical(r$status, 0L)
    expect_identical(ncol(readRDS(file.path(wd, "o", "generated.rds"))), 12L)
    bad <- list(
        c("--input", "missing.mtx", "--out", "b"),
        c("--input", "in.rds", "--labels", "nope", "--out", "b"),
        c("--input", "in.rds", "--out", "b", "--epochs", "-3"),
        c("--input", "in.rds", "--out", "b", "--likelihood", "gauss"),
        c("--input", "in.rds", "--out", "b", "--frobnicate", "1"),
        c("--input", "in.rds")
    )
    for (args in bad) {
        r <- run_script(args, wd)
        expect_identical(r$status, 1L, label = paste(args, collapse = " "))
        err <- strsplit(trimws(r$stderr), "\n")[[1]]
        last <- err[length(err)]
        expect_match(last, "^exprsgen-batch: error: ", label = paste(args, collapse = " "))
    }
    help <- run_script("--help", wd)
    expect_identical(help$status, 0L)
    expect_match(help$stdout, "--per-class")
})

test_that("batch outputs: checked before training, never mixed with an earlier run's, written whole", {
    skip_if_not_installed("processx")
    wd <- rds_input()
    fails <- function(args, pattern) {
        t <- system.time(r <- run_script(args, wd))[["elapsed"]]
        expect_identical(r$status, 1L, label = paste(args, collapse = " "))
        expect_match(r$stderr, pattern, label = paste(args, collapse = " "))
        # refused before reading and training: no progress beyond the start
        expect_false(grepl("fitting", r$stdout), label = paste(args, collapse = " "))
    }
    writeLines("x", file.path(wd, "afile"))
    fails(c("--input", "in.rds", "--out", ""), "--out is empty")
    fails(c("--input", "in.rds", "--out", "afile"), "is a file")
    fails(c("--input", "in.rds", "--out", "o", "--per-class", "0"), "--per-class must be a whole number >= 1")
    fails(c("--input", "in.rds", "--out", "o", "--n", "0"), "--n must be")
    fails(c("--input", "in.rds", "--out", "o", "--epochs", "2", "--epochs", "5"), "--epochs is given more than once")
    fails(c("--input", "in.rds", "--out", "o", "--validation-split", "1"), "validation-split")
    expect_false(file.exists(file.path(wd, "o", "model.rds")))
    # a run with labels, then one without into the same folder: refused, then replaced
    ok <- run_script(c("--input", "in.rds", "--labels", "type", "--out", "o", "--epochs", "2",
                       "--batch-size", "16", "--per-class", "3"), wd)
    expect_identical(ok$status, 0L)
    expect_true(file.exists(file.path(wd, "o", "generated_labels.tsv")))
    # no temporary files left behind
    expect_setequal(list.files(file.path(wd, "o"), all.files = TRUE, no.. = TRUE),
                    c("model.rds", "generated.rds", "generated.mtx", "generated_genes.tsv",
                      "generated_cells.tsv", "generated_labels.tsv"))
    again <- c("--input", "in.rds", "--out", "o", "--epochs", "2", "--batch-size", "16", "--n", "5")
    fails(again, "--overwrite")
    r <- run_script(c(again, "--overwrite"), wd)
    expect_identical(r$status, 0L)
    expect_false(file.exists(file.path(wd, "o", "generated_labels.tsv")))
    expect_identical(ncol(readRDS(file.path(wd, "o", "generated.rds"))), 5L)
    # without --epochs and --batch-size, the count model's automatic settings
    r <- run_script(c("--input", "in.rds", "--labels", "type", "--out", "auto", "--per-class", "2"), wd)
    expect_identical(r$status, 0L)
    expect_match(r$stdout, "epochs chosen from the data")
    expect_identical(readRDS(file.path(wd, "auto", "model.rds"))$params$epochs,
                     exprsgen:::.auto_settings(45)$epochs)
})

test_that("an interrupt during a batch fit saves the model and exits non-zero", {
    skip_if_not_installed("processx")
    skip_on_os("windows")
    wd <- rds_input()
    r <- signal_after(c(script, "--input", "in.rds", "--out", "o", "--epochs", "100000", "--batch-size", "8"),
                      "epoch 1/", 0.5, wd = wd)
    out <- r$all
    expect_identical(r$status, 130L)
    expect_match(out, "interrupted: the model of")
    fit <- readRDS(file.path(wd, "o", "model.rds"))
    expect_identical(fit$params$stop_reason, "interrupted")
    expect_false(file.exists(file.path(wd, "o", "generated.rds")))
})

test_that("SIGTERM saves a checkpoint that --resume continues, and the job ends 143", {
    skip_if_not_installed("processx")
    skip_on_os("windows")
    wd <- rds_input()
    r <- signal_after(c(script, "--input", "in.rds", "--out", "o", "--epochs", "100000", "--batch-size", "8",
                        "--checkpoint", "ck.rds", "--checkpoint-every", "1000"),
                      "epoch 1/", 0.5, signal = tools::SIGTERM, wd = wd)
    out <- r$all
    expect_identical(r$status, 143L)
    expect_match(out, "SIGTERM: the model of")
    expect_match(out, "continue with --resume ck.rds")
    ck <- readRDS(file.path(wd, "ck.rds"))
    expect_identical(ck$params$stop_reason, "interrupted")
    n <- ck$params$epochs_run
    expect_false(file.exists(file.path(wd, "o", "generated.rds")))
    # settings belong to the checkpoint
    r <- run_script(c("--resume", "ck.rds", "--input", "in.rds", "--out", "o2"), wd)
    expect_identical(r$status, 1L)
    expect_match(r$stderr, "--input cannot be given with --resume")
    r <- run_script(c("--resume", "ck.rds", "--out", "o2", "--epochs", n + 2L, "--n", "12"), wd)
    expect_identical(r$status, 0L)
    expect_match(r$stdout, "resuming ck.rds")
    fit <- readRDS(file.path(wd, "o2", "model.rds"))
    expect_identical(nrow(fit$history), n + 2L)
    expect_identical(fit$history[seq_len(n), ], ck$history)
    expect_identical(ncol(readRDS(file.path(wd, "o2", "generated.rds"))), 12L)
})

test_that("an HDF5-backed SummarizedExperiment folder goes through the batch script end to end", {
    skip_if_not_installed("processx")
    skip_if_not_installed("HDF5Array")
    wd <- tempfile("batch")
    dir.create(wd)
    d <- simulate_counts(n_per = 15, genes = 80)
    se <- SummarizedExperiment::SummarizedExperiment(list(counts = as.matrix(d$counts)),
                                                     colData = S4Vectors::DataFrame(type = d$label))
    HDF5Array::saveHDF5SummarizedExperiment(se, file.path(wd, "h5se"))
    r <- run_script(c("--input", "h5se", "--labels", "type", "--out", "o", "--epochs", "2",
                      "--batch-size", "16", "--per-class", "3"), wd)
    expect_identical(r$status, 0L, label = r$stderr)
    sce <- readRDS(file.path(wd, "o", "generated.rds"))
    expect_identical(ncol(sce), 9L)
    expect_identical(dim(Matrix::readMM(file.path(wd, "o", "generated.mtx"))), c(80L, 9L))
})
