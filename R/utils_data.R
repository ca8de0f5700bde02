# Input preparation for fit_vae(): matrices and SummarizedExperiment objects
# become one training matrix, labels a factor, and validation cells are split off
# or checked.
#
# Orientation is decided here, once: prepared matrices have genes in rows and cells
# in columns (a cell is one column), as Bioconductor stores them and as the Rust core
# reads them (a minibatch is a handful of contiguous columns). An assay of a
# SummarizedExperiment is used as it is; VAExprs's `x_train` (cells in rows) is turned
# around here: a dgCMatrix or DelayedArray by Matrix::t()/t() (O(non-zeros), or
# nothing read), a dense matrix by one t() (a copy; the core would otherwise read
# each value of a cell from another column). Nothing downstream transposes again
# to call the core.

# The transpose of a cells x genes matrix (or the reverse): free between a dgRMatrix
# and a dgCMatrix (the CSR slots of one are the CSC slots of the other) and for a
# DelayedArray (delayed); an O(non-zeros) copy of a dgCMatrix into another dgCMatrix;
# a copy of a dense matrix. The one place exprsgen turns matrices around:
# inputs as they are prepared, outputs in VAExprs's orientation.
.genes_by_cells <- function(x) {
    if (methods::is(x, "dgRMatrix")) {
        return(methods::new("dgCMatrix", i = x@j, p = x@p, x = x@x, Dim = rev(x@Dim),
                            Dimnames = rev(x@Dimnames)))
    }
    if (methods::is(x, "sparseMatrix")) return(Matrix::t(x))
    t(x)
}

.cells_by_genes <- function(x) {
    if (methods::is(x, "dgCMatrix")) {
        return(methods::new("dgRMatrix", j = x@i, p = x@p, x = x@x, Dim = rev(x@Dim),
                            Dimnames = rev(x@Dimnames)))
    }
    if (methods::is(x, "sparseMatrix")) return(Matrix::t(x))
    t(x)
}

# A dense double matrix or a dgCMatrix (never densified), or an error naming `name`.
# With `counts = TRUE` the values must be non-negative whole numbers.
.as_expression <- function(x, name, call, counts = FALSE, check_dense = TRUE) {
    if (is.data.frame(x)) {
        if (!all(vapply(x, is.numeric, logical(1)))) {
            .abort("{.arg {name}} must be numeric; its data.frame has non-numeric columns.",
                   call = call)
        }
        x <- as.matrix(x)
    }
    if (.is_delayed(x)) {
        # Streamed in blocks of cells later; here only: can it be read at all?
        tryCatch(as.array(x[1L, 1L, drop = FALSE]), error = function(e) {
            .abort(c("{.arg {name}} could not be read.", x = conditionMessage(e)), call = call)
        })
        return(x)
    }
    if (methods::is(x, "sparseMatrix")) {
        .check_sparse(x, name, call)
        if (!methods::is(x, "dgCMatrix")) {
            x <- methods::as(methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix"), "dMatrix")
        }
        values <- x@x
    } else {
        if (!is.matrix(x) || !(is.numeric(x) || is.logical(x))) {
            .abort("{.arg {name}} must be a numeric matrix, not {.cls {class(x)[1]}}.", call = call)
        }
        if (storage.mode(x) != "double") storage.mode(x) <- "double"
        # a dense x_train is checked in the pass that turns it around (.transpose_cells)
        if (!check_dense) return(x)
        values <- x
    }
    .check_finite(values, name, call = call)
    if (counts) .check_counts_values(values, name, call)
    x
}

# A dense cells x genes matrix turned into genes x cells by the core in one pass that
# also checks its values (as .as_expression) and finds each cell's sum and each
# gene's range: list(x, library_size, min, max). R's t(), colSums() and checks were
# four passes over the data, longer than an epoch.
.transpose_cells <- function(x, name, counts, call, dimnames = NULL, threads = 1L) {
    # the new matrix is allocated inside the core's call: refused here rather than there
    .check_memory(8 * as.numeric(length(x)), paste0("{.arg ", name, "} turned into genes x cells"),
                  "Give it as a sparse dgCMatrix, or as an on-disk HDF5Array, which is read in blocks.", call = call)
    tr <- .core(.Call(wrap__eg_transpose_scan, x, dimnames, as.integer(threads)))
    .check_scanned(tr$scan, name, counts, call)
    tr$scan <- NULL
    tr
}

# Counts for a count likelihood: non-negative whole numbers up to .max_count (beyond
# it the core's single-precision arithmetic loses the likelihood: the NB loss turned
# negative near 1e11; real counts per gene and cell stay far below).
.max_count <- 1e9
.check_counts_values <- function(values, name, call) {
    scan <- if (is.double(values)) .scan_values(values) else c(1, all(values >= 0 & values == round(values)), max(values, -Inf))
    .check_scanned(scan, name, TRUE, call, finite = FALSE)
}

# The errors a scan c(finite, counts, max) of `name`'s values calls for: values that
# are not finite (with `finite`), and for a count likelihood values that are not
# counts or too large.
.check_scanned <- function(scan, name, counts, call, finite = TRUE) {
    if (finite && scan[[1]] != 1) {
        .abort("{.arg {name}} contains NA, NaN or infinite values.", call = call)
    }
    if (!counts) return(invisible())
    if (scan[[2]] != 1) {
        .abort(c("{.arg {name}} must hold counts (non-negative whole numbers) for a count likelihood.",
                 i = "Use a likelihood that is not a count model (e.g. {.code likelihood = \"bce\"}) for other values."),
               call = call)
    }
    if (scan[[3]] > .max_count) {
        largest <- scan[[3]]
        .abort(c("{.arg {name}} holds counts up to {format(largest)}; count likelihoods take counts up to {format(.max_count)}.",
                 i = "Counts that large are not UMI or read counts of one gene in one cell; scale them or use {.code likelihood = \"mse\"}."),
               call = call)
    }
}

# Labels as a factor without unused levels, or an error.
.as_labels <- function(y, n, name, call) {
    if (is.null(y)) return(NULL)
    if (is.data.frame(y) || methods::is(y, "DataFrame")) {
        if (ncol(y) != 1L) .abort("{.arg {name}} must be a vector, not a table.", call = call)
        y <- y[[1]]
    }
    if (!(is.character(y) || is.factor(y) || is.numeric(y) || is.logical(y)) ||
        !is.null(dim(y))) {
        .abort("{.arg {name}} must be a character or factor vector.", call = call)
    }
    if (length(y) != n) {
        .abort("{.arg {name}} has {length(y)} label{?s} but there {?is/are} {n} cell{?s}.",
               call = call)
    }
    if (anyNA(y)) .abort("{.arg {name}} contains NA labels.", call = call)
    if (any(!nzchar(as.character(y)))) .abort("{.arg {name}} contains empty labels ({.val {\"\"}}).", call = call)
    if (is.numeric(y) && length(unique(y)) != length(unique(as.character(y)))) {
        .abort(c("{.arg {name}} has numeric labels that differ by less than their printed digits (e.g. 1 and 1 + 1e-15).",
                 i = "Give labels as text or factors."), call = call)
    }
    droplevels(as.factor(y))
}

# Prepared training inputs: list(x_train, y_train, conditions, x_val, y_val,
# conditions_val, genes, normalization, library_size, scan, assay.type), matrices genes
# x cells; `conditions` a data.frame of every label and covariate (NULL without), and
# y_train its first label (the primary one, NULL without labels).
.prepare_inputs <- function(object, x_train, x_val, y_train, y_val, assay.type, labels,
                            validation_split, counts, call, covariates = NULL, threads = 1L, seed = NULL) {
    p <- if (!is.null(object)) {
        if (!is.null(x_train)) .abort("Give either {.arg object} or {.arg x_train}, not both.", call = call)
        .prepare_object(.from_seurat(object, assay.type, "object", call), assay.type, labels, counts, call,
                        covariates)
    } else {
        .prepare_matrix(x_train, y_train, counts, call, covariates, threads)
    }
    if (!is.null(x_val)) {
        if (!is.null(object)) .abort("{.arg x_val} is for {.arg x_train}; with {.arg object} use {.arg validation_split}.", call = call)
        p <- .given_validation(p, x_val, y_val, validation_split, counts, call)
    } else {
        if (!is.null(y_val)) .abort("{.arg y_val} is given but {.arg x_val} is not.", call = call)
        # the split is drawn from the fit's seed (R's random state is left as it was)
        p <- if (is.null(seed)) .split_validation(p, validation_split, call)
             else .with_seed(seed, .split_validation(p, validation_split, call))
    }
    if (!counts) p$library_size <- NULL
    p
}

# A SummarizedExperiment's assay (genes x cells), log-normalised as VAExprs does for a
# "counts" assay under a scaled likelihood.
.prepare_object <- function(object, assay.type, labels, counts, call, covariates = NULL) {
    if (!methods::is(object, "SummarizedExperiment")) {
        .abort("{.arg object} must be a SingleCellExperiment, SummarizedExperiment or Seurat object, not {.cls {class(object)[1]}}.",
               call = call)
    }
    if (!is.character(assay.type) || length(assay.type) != 1L ||
        !assay.type %in% SummarizedExperiment::assayNames(object)) {
        .abort(c("{.arg assay.type} must name an assay of {.arg object}.",
                 i = "Assays: {.val {SummarizedExperiment::assayNames(object)}}."), call = call)
    }
    if (is.null(rownames(object))) rownames(object) <- paste0("gene", seq_len(nrow(object)))
    if (is.null(colnames(object))) colnames(object) <- paste0("cell", seq_len(ncol(object)))
    conds <- .labels_from_object(object, labels, covariates, call)
    x <- .as_expression(SummarizedExperiment::assay(object, assay.type), "object", call,
                        counts = counts)
    scan <- if (.is_delayed(x)) .scan_cells(x, "object", counts, call)
    lib <- if (is.null(scan)) .col_sums(x) else scan$library_size
    if ((counts || assay.type == "counts") && any(lib <= 0)) {
        .abort("{.arg object} has cells without any counts; remove them first.", call = call)
    }
    normalization <- "none"
    if (!counts && assay.type == "counts") {
        # As VAExprs: log-normalised counts (size factors from library sizes, or those
        # already stored in the object).
        negative <- if (!is.null(scan)) any(scan$min < 0) else
            any(if (methods::is(x, "dgCMatrix")) x@x < 0 else x < 0)
        if (negative) {
            .abort("The {.val counts} assay of {.arg object} has negative values.", call = call)
        }
        object <- SummarizedExperiment::SummarizedExperiment(
            assays = list(counts = x), colData = SummarizedExperiment::colData(object))
        x <- SummarizedExperiment::assay(scuttle::logNormCounts(object), "logcounts")
        x <- .as_expression(x, "object", call)
        normalization <- "logNormCounts"
        scan <- if (.is_delayed(x)) .scan_cells(x, "object", FALSE, call)
    }
    list(x_train = x, y_train = .primary_label(conds), conditions = conds, genes = rownames(x),
         normalization = normalization, library_size = lib, scan = scan, assay.type = assay.type,
         label_column = if (is.character(labels) && length(labels) == 1L && ncol(object) != 1L) labels)
}

# VAExprs's x_train (cells x genes), turned into genes x cells (see the top of this file).
.prepare_matrix <- function(x_train, y_train, counts, call, covariates = NULL, threads = 1L) {
    if (is.null(x_train)) {
        .abort("Give the training data as {.arg x_train} (cells x genes) or {.arg object}.", call = call)
    }
    x <- .as_expression(x_train, "x_train", call, counts = counts, check_dense = FALSE)
    if (nrow(x) == 0L || ncol(x) == 0L) {
        .abort("{.arg x_train} has {nrow(x)} cell{?s} (rows) and {ncol(x)} gene{?s} (columns); it needs at least one of each.",
               call = call)
    }
    genes_named <- !is.null(colnames(x))
    names <- list(colnames(x) %||% paste0("gene", seq_len(ncol(x))),
                  rownames(x) %||% paste0("cell", seq_len(nrow(x))))
    dense <- is.matrix(x)
    scan <- if (dense) .transpose_cells(x, "x_train", counts, call, names, threads)
    table <- if (is.data.frame(y_train) || methods::is(y_train, "DataFrame")) y_train
    conds <- .gather_conditions(y_train, covariates, table, nrow(x), "y_train", call)
    if (dense) {
        x <- scan$x
        scan$x <- NULL
    } else {
        if (is.null(colnames(x))) colnames(x) <- names[[1]]
        if (is.null(rownames(x))) rownames(x) <- names[[2]]
        x <- .genes_by_cells(x)
        if (.is_delayed(x)) scan <- .scan_cells(x, "x_train", counts, call)
    }
    lib <- if (counts) (if (is.null(scan)) .col_sums(x) else scan$library_size)
    if (counts && any(lib <= 0)) {
        .abort("{.arg x_train} has cells (rows) without any counts; remove them first.", call = call)
    }
    list(x_train = x, y_train = .primary_label(conds), conditions = conds, genes = rownames(x),
         normalization = "none", library_size = lib, scan = scan, assay.type = NULL,
         genes_named = genes_named)
}

# Validation cells given as x_val (cells x genes) and y_val.
.given_validation <- function(p, x_val, y_val, validation_split, counts, call) {
    if (.is_delayed(p$x_train)) {
        .abort("{.arg x_val} is not supported with an on-disk {.arg x_train}; use {.arg validation_split}.",
               call = call)
    }
    if (validation_split > 0) {
        cli::cli_warn("{.arg validation_split} is ignored because {.arg x_val} is given.")
    }
    x_val <- .as_expression(x_val, "x_val", call, counts = counts)
    if (nrow(x_val) == 0L) .abort("{.arg x_val} has no cells (rows).", call = call)
    if (ncol(x_val) != nrow(p$x_train)) {
        .abort("{.arg x_val} has {ncol(x_val)} genes (columns) but {.arg x_train} has {nrow(p$x_train)}.",
               call = call)
    }
    # Genes are matched by name when both matrices name them (by position otherwise).
    if (isTRUE(p$genes_named) && !is.null(colnames(x_val))) {
        idx <- match(p$genes, colnames(x_val))
        if (anyNA(idx) || anyDuplicated(colnames(x_val))) {
            missing_genes <- p$genes[is.na(idx)]
            shown <- utils::head(missing_genes, 5)
            more <- if (length(missing_genes) > 5) ", ..." else ""
            .abort(c("The genes (column names) of {.arg x_val} are not those of {.arg x_train}.",
                     x = if (length(missing_genes)) "Not in {.arg x_val}: {.val {shown}}{more}." else
                         "{.arg x_val} repeats gene names."),
                   call = call)
        }
        if (!identical(idx, seq_along(idx))) x_val <- x_val[, idx, drop = FALSE]
    }
    if (!is.null(p$conditions)) {
        if (is.null(y_val)) .abort("{.arg y_val} is needed with {.arg x_val} for a conditional VAE.", call = call)
        cs <- .conditions_layout(p$conditions)
        if (!is.data.frame(y_val) && !methods::is(y_val, "DataFrame")) {
            y_val <- .as_labels(y_val, nrow(x_val), "y_val", call)
        } else if (nrow(y_val) != nrow(x_val)) {
            .abort("{.arg y_val} has {nrow(y_val)} row{?s} but {.arg x_val} has {nrow(x_val)} cell{?s}.", call = call)
        }
        p$conditions_val <- .check_conditions(cs, y_val, nrow(x_val), "y_val", call, range = FALSE)
        p$y_val <- .primary_label(p$conditions_val)
    } else if (!is.null(y_val)) {
        .abort("{.arg y_val} is given but {.arg y_train} is not.", call = call)
    }
    # the training matrix's kind: dense with dense, sparse with sparse, in memory
    if (.is_delayed(x_val)) {
        x_val <- if (DelayedArray::is_sparse(x_val)) methods::as(x_val, "dgCMatrix") else as.matrix(x_val)
    }
    x_val <- .genes_by_cells(x_val)
    if (methods::is(p$x_train, "dgCMatrix")) {
        x_val <- methods::as(x_val, "CsparseMatrix")
    } else if (methods::is(x_val, "sparseMatrix")) {
        x_val <- as.matrix(x_val)
    }
    p$x_val <- x_val
    p
}

# Validation cells split off at random (R's RNG) from the training cells.
.split_validation <- function(p, validation_split, call) {
    split <- .split_cells(ncol(p$x_train), validation_split, call)
    if (is.null(split)) return(p)
    p$x_val <- p$x_train[, split$val, drop = FALSE]
    p$x_train <- p$x_train[, split$train, drop = FALSE]
    if (!is.null(p$library_size)) p$library_size <- p$library_size[split$train]
    if (!is.null(p$scan)) p$scan$library_size <- p$scan$library_size[split$train]
    if (!is.null(p$conditions)) {
        p$conditions_val <- p$conditions[split$val, , drop = FALSE]
        p$conditions <- p$conditions[split$train, , drop = FALSE]
        rownames(p$conditions_val) <- rownames(p$conditions) <- NULL
        p$y_val <- .primary_label(p$conditions_val)
        p$y_train <- .primary_label(p$conditions)
    }
    p
}

# The first label of a conditions data.frame (NULL without labels).
.primary_label <- function(conds) {
    if (is.null(conds)) return(NULL)
    first <- which(vapply(conds, is.factor, logical(1)))[1]
    if (is.na(first)) NULL else conds[[first]]
}

# A prepared list from before the orientation was fixed (x_train with cells in rows),
# turned around once.
.upgrade_preprocessing <- function(p) {
    if (isTRUE(p$cells_in_rows)) {
        p$x_train <- .genes_by_cells(p$x_train)
        if (!is.null(p$x_val)) p$x_val <- .genes_by_cells(p$x_val)
    }
    p$cells_in_rows <- NULL
    p
}

.labels_from_object <- function(object, labels, covariates, call) {
    cd <- SummarizedExperiment::colData(object)
    if (is.null(labels) && is.null(covariates)) {
        if (ncol(cd) > 0) {
            first <- colnames(cd)[1]
            cli::cli_inform(c(i = "Fitting a VAE without labels; for a conditional VAE pass {.arg labels}, e.g. {.code labels = \"{first}\"}."))
        }
        return(NULL)
    }
    .gather_conditions(labels, covariates, cd, ncol(object), "labels", call)
}

# Random train/validation split of n cells (R's RNG), or NULL.
.split_cells <- function(n, validation_split, call) {
    if (validation_split <= 0) return(NULL)
    n_train <- round(n * (1 - validation_split))
    if (n_train < 1 || n_train >= n) {
        .abort("{.arg validation_split} = {validation_split} leaves no training or no validation cells out of {n}.",
               call = call)
    }
    idx <- sample.int(n)
    list(train = sort(idx[seq_len(n_train)]), val = sort(idx[-seq_len(n_train)]))
}
