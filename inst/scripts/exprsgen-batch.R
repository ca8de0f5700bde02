#!/usr/bin/env Rscript
# exprsgen in a batch job: fit a model to a counts file, save it, generate cells per
# class, and write them as a SingleCellExperiment (.rds) and as MatrixMarket files.
#
#   Rscript exprsgen-batch.R --input counts.mtx --genes genes.tsv --cells cells.tsv \
#       --labels labels.tsv --out results/ [options]
#   Rscript exprsgen-batch.R --input sce.rds --labels cell_type --out results/
#   Rscript exprsgen-batch.R --input h5se_dir/ --labels cell_type --out results/
#   Rscript exprsgen-batch.R --input tenx.h5 --labels labels.tsv --out results/
#
# Input (--input):
#   *.mtx[.gz]   a MatrixMarket matrix, genes in rows and cells in columns (as 10x
#                writes it), with --genes and --cells: text files with one name per
#                line (the first column of a TSV, as features.tsv)
#   *.rds        a SingleCellExperiment (or SummarizedExperiment, or Seurat object)
#   a directory  an HDF5-backed SummarizedExperiment (HDF5Array::saveHDF5SummarizedExperiment)
#   *.h5         a 10x HDF5 file (HDF5Array::TENxMatrix; --group, default "matrix")
# Labels (--labels, optional): the name of a colData column (.rds, directory), or a
#   text file with one label per cell (the first column of a TSV).
# Options: --assay counts --likelihood nb --epochs 100 --batch-size 64 --latent-dim
#   (default: exprsgen's) --per-class 100 (cells to generate per class; without labels
#   --n 100 cells) --seed 1 --threads 1 --validation-split 0
# Output in --out: model.rds (the fit: readRDS() then gen_exprs()), generated.rds (a
# SingleCellExperiment), generated.mtx with generated_genes.tsv, generated_cells.tsv and
# generated_labels.tsv. Progress goes to standard output, one time-stamped line per
# step; bad input ends the job with a one-line message on standard error and exit
# status 1.

main <- function(args) {
    opts <- parse_args(args)
    log_line("exprsgen ", as.character(utils::packageVersion("exprsgen")), ": reading ", opts$input)
    data <- read_input(opts)
    log_line("read ", nrow(data$object), " genes x ", ncol(data$object), " cells",
             if (!is.null(data$labels)) paste0(", ", length(unique(as.character(data$labels))), " classes"))
    set.seed(opts$seed)
    log_line("fitting a ", opts$likelihood, " model: ", opts$epochs, " epochs, batch size ", opts$batch_size)
    fit <- exprsgen::fit_vae(data$object, labels = data$labels, assay.type = opts$assay,
                             likelihood = opts$likelihood, epochs = opts$epochs,
                             batch_size = opts$batch_size, latent_dim = opts$latent_dim,
                             validation_split = opts$validation_split,
                             num.threads = opts$threads, verbose = TRUE)
    h <- fit$history[nrow(fit$history), ]
    log_line("trained ", fit$params$epochs_run, " epochs in ", round(fit$params$seconds, 1), " s; final loss ",
             signif(h$loss, 6))
    dir.create(opts$out, recursive = TRUE, showWarnings = FALSE)
    saveRDS(fit, file.path(opts$out, "model.rds"))
    log_line("saved ", file.path(opts$out, "model.rds"))
    classes <- fit$model$spec$classes
    gen <- if (length(classes)) {
        exprsgen::gen_exprs(fit, labels = stats::setNames(rep(opts$per_class, length(classes)), classes),
                            num.threads = opts$threads)
    } else {
        exprsgen::gen_exprs(fit, opts$n, num.threads = opts$threads)
    }
    log_line("generated ", nrow(gen$x_gen), " cells")
    sce <- exprsgen::as_sce(gen)
    saveRDS(sce, file.path(opts$out, "generated.rds"))
    values <- SummarizedExperiment::assay(sce, 1L)
    Matrix::writeMM(methods::as(methods::as(values, "CsparseMatrix"), "generalMatrix"),
                    file.path(opts$out, "generated.mtx"))
    writeLines(rownames(sce), file.path(opts$out, "generated_genes.tsv"))
    writeLines(colnames(sce), file.path(opts$out, "generated_cells.tsv"))
    if (!is.null(sce$label)) writeLines(as.character(sce$label), file.path(opts$out, "generated_labels.tsv"))
    log_line("wrote generated.rds and generated.mtx (", SummarizedExperiment::assayNames(sce)[1], ") in ", opts$out)
    invisible(0L)
}

log_line <- function(...) {
    cat(format(Sys.time(), "%Y-%m-%d %H:%M:%S"), " ", ..., "\n", sep = "")
    utils::flush.console()
}

# --name value pairs, checked; defaults as the header says.
parse_args <- function(args) {
    known <- c("input", "genes", "cells", "labels", "out", "assay", "likelihood", "epochs", "batch-size",
               "latent-dim", "per-class", "n", "seed", "threads", "validation-split", "group")
    if (length(args) %% 2L != 0L || !all(startsWith(args[c(TRUE, FALSE)], "--"))) {
        stop("arguments must be --name value pairs (see the script's header)")
    }
    names <- sub("^--", "", args[c(TRUE, FALSE)])
    bad <- setdiff(names, known)
    if (length(bad)) stop("unknown argument --", bad[1])
    val <- stats::setNames(args[c(FALSE, TRUE)], names)
    get <- function(name, default = NULL) if (name %in% names) val[[name]] else default
    num <- function(name, default, whole = TRUE) {
        v <- get(name)
        if (is.null(v)) return(default)
        x <- suppressWarnings(as.numeric(v))
        if (is.na(x) || (whole && x != round(x)) || x < 0) stop("--", name, " must be a ", if (whole) "whole ", "number >= 0, not '", v, "'")
        x
    }
    if (is.null(get("input"))) stop("--input is missing: a .mtx, .rds, .h5 file or an HDF5 directory")
    if (is.null(get("out"))) stop("--out is missing: the folder for the results")
    list(input = get("input"), genes = get("genes"), cells = get("cells"), labels = get("labels"),
         out = get("out"), assay = get("assay", "counts"), likelihood = get("likelihood", "nb"),
         epochs = num("epochs", 100), batch_size = num("batch-size", 64),
         latent_dim = if (is.null(get("latent-dim"))) NULL else num("latent-dim", NULL),
         per_class = num("per-class", 100), n = num("n", 100), seed = num("seed", 1),
         threads = num("threads", 1), validation_split = num("validation-split", 0, whole = FALSE),
         group = get("group", "matrix"))
}

# The input as a SummarizedExperiment-like object, and the labels (a column name or a
# vector, or NULL).
read_input <- function(opts) {
    path <- opts$input
    if (!file.exists(path)) stop("--input '", path, "' does not exist")
    first_column <- function(file, what) {
        if (!file.exists(file)) stop("--", what, " '", file, "' does not exist")
        lines <- readLines(file, warn = FALSE)
        sub("\t.*$", "", lines[nzchar(lines)])
    }
    labels <- opts$labels
    labels_from_file <- !is.null(labels) && file.exists(labels)
    if (labels_from_file) labels <- first_column(labels, "labels")
    if (dir.exists(path)) {
        object <- HDF5Array::loadHDF5SummarizedExperiment(path)
    } else if (grepl("\\.rds$", path, ignore.case = TRUE)) {
        object <- readRDS(path)
    } else if (grepl("\\.h5$", path, ignore.case = TRUE)) {
        m <- HDF5Array::TENxMatrix(path, group = opts$group)
        object <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
    } else if (grepl("\\.mtx(\\.gz)?$", path, ignore.case = TRUE)) {
        if (is.null(opts$genes) || is.null(opts$cells)) stop("--genes and --cells are needed with a .mtx input")
        m <- methods::as(Matrix::readMM(path), "CsparseMatrix")
        genes <- first_column(opts$genes, "genes")
        cells <- first_column(opts$cells, "cells")
        if (length(genes) != nrow(m) || length(cells) != ncol(m)) {
            stop("--input has ", nrow(m), " genes x ", ncol(m), " cells but --genes names ", length(genes),
                 " and --cells ", length(cells))
        }
        dimnames(m) <- list(make.unique(genes), make.unique(cells))
        object <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
    } else {
        stop("--input must be a .mtx, .rds or .h5 file or an HDF5 directory, not '", path, "'")
    }
    if (!is.null(labels) && !labels_from_file && !(is.character(labels) && length(labels) == 1L)) {
        stop("--labels must be a colData column or a file")
    }
    if (!is.null(labels) && !labels_from_file && !methods::is(object, "Seurat") &&
        !labels %in% colnames(SummarizedExperiment::colData(object))) {
        stop("--labels '", labels, "' is neither a file nor a colData column of --input")
    }
    list(object = object, labels = labels)
}

args <- commandArgs(trailingOnly = TRUE)
if (any(args %in% c("--help", "-h"))) {
    this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
    header <- readLines(this)
    header <- header[seq_len(which(!startsWith(header, "#"))[1] - 1L)][-1]
    cat(sub("^# ?", "", header), sep = "\n")
    quit(save = "no", status = 0)
}
status <- tryCatch({
    suppressPackageStartupMessages(library(exprsgen))
    main(args)
}, error = function(e) {
    msg <- gsub("\\s+", " ", paste(conditionMessage(e), collapse = " "))
    msg <- gsub("\033\\[[0-9;]*m", "", msg)  # no terminal colours in log files
    cat("exprsgen-batch: error: ", trimws(msg), "\n", sep = "", file = stderr())
    1L
})
quit(save = "no", status = status)
