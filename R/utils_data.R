# Input preparation for fit_vae(): matrices and SummarizedExperiment objects
# become one training matrix (kept in its own orientation, never transposed),
# labels become a factor, and validation cells are split off or checked.

# A dense double matrix or a dgCMatrix (never densified), or an error naming `name`.
# With `counts = TRUE` the values must be non-negative whole numbers.
.as_expression <- function(x, name, call, counts = FALSE) {
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
        if (!methods::is(x, "dgCMatrix")) {
            x <- methods::as(methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix"), "dMatrix")
        }
        values <- x@x
    } else {
        if (!is.matrix(x) || !(is.numeric(x) || is.logical(x))) {
            .abort("{.arg {name}} must be a numeric matrix, not {.cls {class(x)[1]}}.", call = call)
        }
        if (storage.mode(x) != "double") storage.mode(x) <- "double"
        values <- x
    }
    .check_finite(values, name, call = call)
    if (counts && (any(values < 0) || any(values != round(values)))) {
        .abort(c("{.arg {name}} must hold counts (non-negative whole numbers) for a count likelihood.",
                 i = "Use {.code likelihood = \"bce\"} or {.code \"mse\"} for other values."),
               call = call)
    }
    x
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
    droplevels(as.factor(y))
}

# Prepared training inputs. For a SummarizedExperiment the assay is used as
# genes x cells (cells in columns); for x_train as cells x genes (VAExprs).
.prepare_inputs <- function(object, x_train, x_val, y_train, y_val, assay.type, labels,
                            validation_split, counts, call) {
    normalization <- "none"
    if (!is.null(object)) {
        if (!methods::is(object, "SummarizedExperiment")) {
            .abort("{.arg object} must be a SingleCellExperiment or SummarizedExperiment, not {.cls {class(object)[1]}}.",
                   call = call)
        }
        if (!is.null(x_train)) .abort("Give either {.arg object} or {.arg x_train}, not both.", call = call)
        if (!is.character(assay.type) || length(assay.type) != 1L ||
            !assay.type %in% SummarizedExperiment::assayNames(object)) {
            .abort(c("{.arg assay.type} must name an assay of {.arg object}.",
                     i = "Assays: {.val {SummarizedExperiment::assayNames(object)}}."), call = call)
        }
        if (is.null(rownames(object))) rownames(object) <- paste0("gene", seq_len(nrow(object)))
        if (is.null(colnames(object))) colnames(object) <- paste0("cell", seq_len(ncol(object)))
        y <- .labels_from_object(object, labels, call)
        x <- .as_expression(SummarizedExperiment::assay(object, assay.type), "object", call,
                            counts = counts)
        scan <- if (.is_delayed(x)) .scan_cells(x, "object", counts, call)
        lib <- if (is.null(scan)) .col_sums(x) else scan$library_size
        if ((counts || assay.type == "counts") && any(lib <= 0)) {
            .abort("{.arg object} has cells without any counts; remove them first.", call = call)
        }
        if (!counts && assay.type == "counts") {
            # As VAExprs: log-normalised counts (size factors from library sizes,
            # or those already stored in the object).
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
        cells_in_rows <- FALSE
        split <- .split_cells(ncol(x), validation_split, call)
        x_val <- NULL
        y_val <- NULL
        if (!is.null(split)) {
            x_val <- x[, split$val, drop = FALSE]
            x <- x[, split$train, drop = FALSE]
            lib <- lib[split$train]
            if (!is.null(scan)) scan$library_size <- scan$library_size[split$train]
            if (!is.null(y)) {
                y_val <- y[split$val]
                y <- y[split$train]
            }
        }
        genes <- rownames(x)
        x_train <- x
        y_train <- y
        library_size <- if (counts) lib
    } else {
        if (is.null(x_train)) {
            .abort("Give the training data as {.arg x_train} (cells x genes) or {.arg object}.", call = call)
        }
        x_train <- .as_expression(x_train, "x_train", call, counts = counts)
        y_train <- .as_labels(y_train, nrow(x_train), "y_train", call)
        if (is.null(colnames(x_train))) colnames(x_train) <- paste0("gene", seq_len(ncol(x_train)))
        if (is.null(rownames(x_train))) rownames(x_train) <- paste0("cell", seq_len(nrow(x_train)))
        scan <- NULL
        if (.is_delayed(x_train)) {
            x_train <- t(x_train)  # delayed: genes x cells, nothing is read
            scan <- .scan_cells(x_train, "x_train", counts, call)
        }
        library_size <- if (counts) {
            if (is.null(scan)) Matrix::rowSums(x_train) else scan$library_size
        }
        if (counts && any(library_size <= 0)) {
            .abort("{.arg x_train} has cells (rows) without any counts; remove them first.", call = call)
        }
        cells_in_rows <- !.is_delayed(x_train)
        if (!is.null(x_val) && .is_delayed(x_train)) {
            .abort("{.arg x_val} is not supported with an on-disk {.arg x_train}; use {.arg validation_split}.",
                   call = call)
        }
        if (!is.null(x_val)) {
            if (validation_split > 0) {
                cli::cli_warn("{.arg validation_split} is ignored because {.arg x_val} is given.")
            }
            x_val <- .as_expression(x_val, "x_val", call, counts = counts)
            if (ncol(x_val) != ncol(x_train)) {
                .abort("{.arg x_val} has {ncol(x_val)} genes (columns) but {.arg x_train} has {ncol(x_train)}.",
                       call = call)
            }
            if (!is.null(y_train)) {
                if (is.null(y_val)) .abort("{.arg y_val} is needed with {.arg x_val} for a conditional VAE.", call = call)
                y_val <- .as_labels(y_val, nrow(x_val), "y_val", call)
                unknown <- setdiff(levels(y_val), levels(y_train))
                if (length(unknown)) .abort("{.arg y_val} has labels not in {.arg y_train}: {.val {unknown}}.", call = call)
                y_val <- factor(y_val, levels = levels(y_train))
            } else if (!is.null(y_val)) {
                .abort("{.arg y_val} is given but {.arg y_train} is not.", call = call)
            }
        } else {
            if (!is.null(y_val)) .abort("{.arg y_val} is given but {.arg x_val} is not.", call = call)
            split <- .split_cells(nrow(x_train), validation_split, call)
            if (!is.null(split) && !cells_in_rows) {
                x_val <- x_train[, split$val, drop = FALSE]
                x_train <- x_train[, split$train, drop = FALSE]
                library_size <- library_size[split$train]
                if (!is.null(y_train)) {
                    y_val <- y_train[split$val]
                    y_train <- y_train[split$train]
                }
            } else if (!is.null(split)) {
                x_val <- x_train[split$val, , drop = FALSE]
                x_train <- x_train[split$train, , drop = FALSE]
                library_size <- library_size[split$train]
                if (!is.null(y_train)) {
                    y_val <- y_train[split$val]
                    y_train <- y_train[split$train]
                }
            }
        }
        genes <- colnames(x_train)
        # A sparse matrix with cells in rows is stored by gene; the core gathers cells,
        # so it gets the genes x cells transpose (one O(non-zeros) copy).
        if (methods::is(x_train, "dgCMatrix")) {
            x_train <- Matrix::t(x_train)
            if (!is.null(x_val)) x_val <- Matrix::t(methods::as(x_val, "CsparseMatrix"))
            cells_in_rows <- FALSE
        } else if (methods::is(x_val, "dgCMatrix")) {
            x_val <- as.matrix(x_val)
        }
    }
    list(x_train = x_train, y_train = y_train, x_val = x_val, y_val = y_val,
         cells_in_rows = cells_in_rows, genes = genes, normalization = normalization,
         library_size = library_size, scan = scan,
         assay.type = if (is.null(object)) NULL else assay.type)
}

.labels_from_object <- function(object, labels, call) {
    if (is.null(labels)) {
        cd <- SummarizedExperiment::colData(object)
        if (ncol(cd) > 0) {
            cli::cli_inform(c(i = "Fitting a VAE without labels; for a conditional VAE pass {.arg labels}, e.g. {.code labels = \"{colnames(cd)[1]}\"}."))
        }
        return(NULL)
    }
    if (is.character(labels) && length(labels) == 1L && ncol(object) != 1L) {
        cd <- SummarizedExperiment::colData(object)
        if (!labels %in% colnames(cd)) {
            .abort(c("{.arg labels} = {.val {labels}} is not a column of {.code colData(object)}.",
                     i = "Columns: {.val {colnames(cd)}}."), call = call)
        }
        return(.as_labels(cd[[labels]], ncol(object), "labels", call))
    }
    .as_labels(labels, ncol(object), "labels", call)
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
