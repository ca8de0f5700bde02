#' Latent codes of cells under a fitted model
#'
#' The encoder of a [fit_vae()] model applied to cells: the training cells
#' (`newdata = NULL`, the codes [gen_exprs()] draws around) or new ones, for
#' plots, clustering or neighbour searches in the model's latent space.
#'
#' New cells are read as the training cells were: a matrix has cells in rows
#' and genes in columns (as `x_train`), a SingleCellExperiment genes in rows;
#' genes are matched by name (every gene of the model must be there, extra
#' genes are dropped), and a `"counts"` assay is log-normalised first when the
#' model was fitted that way (scaled likelihoods). A conditional model needs
#' each cell's label: `labels`, or the colData column the model was fitted
#' with.
#'
#' @param fit The result of [fit_vae()].
#' @param newdata `NULL` (the training cells), a numeric matrix (cells x
#'   genes, with gene names as column names) or a SingleCellExperiment /
#'   SummarizedExperiment (genes x cells).
#' @param labels For a conditional model and new cells: one label per cell,
#'   or the name of a colData column of `newdata` (default: the column the
#'   model was fitted with, when it has one). For a model of several conditions:
#'   a data.frame with a column per condition (one row per cell), or the names
#'   of the colData columns holding them, in the model's order (default: the
#'   columns named as the model's conditions).
#' @param samples `FALSE` for the posterior means; `TRUE` for one draw from
#'   each cell's posterior q(z|x) (R's random number generator).
#' @param assay.type For a SingleCellExperiment: the assay to read (default:
#'   the one the model was fitted on, else `"counts"`).
#' @param name With a SingleCellExperiment `newdata`: when a string, the SCE is
#'   returned with the codes as `reducedDim(newdata, name)` instead of the
#'   matrix.
#' @return A cells x latent matrix (`latent 1`, `latent 2`, ...), rows named
#'   by cell; or the SingleCellExperiment with the codes as a reducedDim.
#' @seealso [gen_exprs()], whose `latent_vector` are `encode(fit)`.
#' @examples
#' set.seed(1)
#' x <- matrix(rpois(80 * 30, 3), 80, 30,
#'             dimnames = list(NULL, paste0("gene", 1:30)))
#' fit <- fit_vae(x_train = x[1:60, ], likelihood = "nb", epochs = 5,
#'                batch_size = 16, verbose = FALSE)
#' head(encode(fit))             # the training cells
#' encode(fit, x[61:80, ])       # new cells
#' @export
encode <- function(fit, newdata = NULL, labels = NULL, samples = FALSE, assay.type = NULL,
                   name = NULL) {
    call <- rlang::current_env()
    .check_fit(fit, "fit")
    samples <- .check_flag(samples, "samples")
    spec <- fit$model$spec
    prep <- .upgrade_preprocessing(fit$preprocessing)
    cells <- .cells_of(prep, spec, newdata, labels, assay.type, name, "SingleCellExperiment", call)
    x <- cells$x
    codes <- cells$codes
    sce <- if (!is.null(name)) newdata
    handle <- .eg_model_new(fit$model, fit$params$num.threads %||% 1L)
    enc <- if (is.null(newdata)) .training_latent(fit, handle, prep)
           else .encode_cells(handle, list(x_train = x, transform = prep$transform), codes)
    z <- enc$mean
    if (samples) z <- z + exp(0.5 * enc$log_var) * matrix(stats::rnorm(length(z)), nrow(z))
    dimnames(z) <- list(colnames(x), paste("latent", seq_len(spec$latent_dim)))
    if (is.null(sce)) return(z)
    SingleCellExperiment::reducedDim(sce, name) <- z
    sce
}

# The cells encode() and normalized_exprs() read: the training cells (newdata NULL)
# or new ones, genes x cells, and their condition codes; `name` (a reducedDim or assay
# to add) needs newdata of class `container`.
.cells_of <- function(prep, spec, newdata, labels, assay.type, name, container, call) {
    if (!is.null(name)) {
        if (!methods::is(newdata, container)) {
            .abort("{.arg name} needs a {container} as {.arg newdata}.", call = call)
        }
        if (!is.character(name) || length(name) != 1L || is.na(name) || !nzchar(name)) {
            .abort("{.arg name} must be a single non-empty string.", call = call)
        }
    }
    cs <- .conditions_spec(spec, prep)
    if (is.null(newdata)) {
        if (!is.null(labels)) .abort("{.arg labels} is for {.arg newdata}; the training cells have theirs.", call = call)
        conds <- .train_conditions(prep)
    } else {
        newdata <- .from_seurat(newdata, assay.type %||% prep$assay.type %||% "counts", "newdata", call)
        x <- .encode_input(newdata, prep, assay.type, call)$x
        conds <- .new_conditions(cs, labels, newdata, prep, ncol(x), call)
    }
    list(x = if (is.null(newdata)) prep$x_train else x, conds = conds, codes = .condition_columns(cs, conds))
}

# New cells as genes x cells in the model's gene order, prepared as the training
# cells were.
.encode_input <- function(newdata, prep, assay.type, call) {
    if (methods::is(newdata, "SummarizedExperiment")) {
        an <- SummarizedExperiment::assayNames(newdata)
        assay.type <- assay.type %||% prep$assay.type %||% "counts"
        if (!is.character(assay.type) || length(assay.type) != 1L || !assay.type %in% an) {
            .abort(c("{.arg assay.type} must name an assay of {.arg newdata}.", i = "Assays: {.val {an}}."), call = call)
        }
        x <- .as_expression(SummarizedExperiment::assay(newdata, assay.type), "newdata", call,
                            counts = identical(prep$transform$type, "counts"))
        genes <- rownames(newdata)
        if (identical(prep$normalization, "logNormCounts")) {
            se <- SummarizedExperiment::SummarizedExperiment(list(counts = x))
            if (any(Matrix::colSums(x) <= 0)) .abort("{.arg newdata} has cells without any counts.", call = call)
            x <- SummarizedExperiment::assay(scuttle::logNormCounts(se), "logcounts")
        }
        cells <- colnames(newdata)
    } else {
        if (!is.null(assay.type)) .abort("{.arg assay.type} is for a SingleCellExperiment {.arg newdata}.", call = call)
        x <- .as_expression(newdata, "newdata", call, counts = identical(prep$transform$type, "counts"))
        genes <- colnames(x)
        cells <- rownames(x)
        x <- .genes_by_cells(x)
    }
    if (ncol(x) == 0L) .abort("{.arg newdata} has no cells.", call = call)
    if (is.null(genes)) {
        if (nrow(x) != length(prep$genes)) {
            .abort("{.arg newdata} has {nrow(x)} genes without names; the model has {length(prep$genes)}.", call = call)
        }
        genes <- prep$genes
    }
    # a model gene named twice would be matched to its first row, silently
    twice <- intersect(prep$genes, genes[duplicated(genes)])
    if (length(twice)) {
        .abort(c(paste("{.arg newdata} has duplicated names for {length(twice)} of the model's genes:",
                       "{.val {utils::head(twice, 5)}}{if (length(twice) > 5) ', ...'}."),
                 i = "Keep one row per gene."), call = call, class = "exprsgen_error_argument")
    }
    idx <- match(prep$genes, genes)
    if (anyNA(idx)) {
        miss <- prep$genes[is.na(idx)]
        .abort(c("{.arg newdata} lacks {length(miss)} of the model's {length(prep$genes)} genes.",
                 x = "Missing: {.val {utils::head(miss, 5)}}{if (length(miss) > 5) ', ...'}."), call = call)
    }
    x <- x[idx, , drop = FALSE]
    dimnames(x) <- list(prep$genes, cells %||% paste0("cell", seq_len(ncol(x))))
    if (.is_delayed(x)) return(list(x = x))
    if (methods::is(x, "sparseMatrix")) x <- methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix")
    list(x = x)
}

# Conditions of new cells for a conditional model (NULL for a plain VAE): `labels` is a
# data.frame with a column per condition, one label per cell (one-label models), or
# names of colData columns of `newdata` (by default those named as the model's
# conditions, or the column a one-label model was fitted with).
.new_conditions <- function(cs, labels, newdata, prep, n, call) {
    if (!.has_conditions(cs)) {
        if (!is.null(labels)) .abort("{.arg labels} is for a conditional model; this one has none.", call = call)
        return(NULL)
    }
    conds <- .condition_names(cs)
    cd <- if (methods::is(newdata, "SummarizedExperiment")) SummarizedExperiment::colData(newdata)
    columns <- labels
    if (is.null(labels)) {
        columns <- if (!is.null(cd) && all(conds %in% colnames(cd))) conds
                   else if (length(conds) == 1L) prep$label_column
    } else if (!(is.character(labels) && is.null(dim(labels)) &&
                 (length(conds) > 1L || (length(labels) == 1L && n != 1L)))) {
        columns <- NULL
    }
    if (is.null(labels) || !is.null(columns)) {
        if (is.null(columns) || is.null(cd) || !all(columns %in% colnames(cd)) || length(columns) != length(conds)) {
            .abort(c("{.arg labels} is needed: the model is conditional on {.val {conds}}.",
                     i = "Give a data.frame with a column for each, one row per cell, or the names of colData columns of {.arg newdata}."),
                   call = call)
        }
        labels <- stats::setNames(as.data.frame(cd[columns], optional = TRUE), conds)
    }
    .check_conditions(cs, labels, n, "labels", call, range = FALSE)
}

#' Normalised (and condition-corrected) expression from a fitted model
#'
#' Each cell's latent code (its posterior mean, as [encode()] gives it) decoded
#' without sampling noise: for count models the fitted mean counts at a common
#' library size (scVI's `get_normalized_expression()`), for `"bce"`/`"mse"` the
#' reconstruction on the training scale. Decoding with other labels than the
#' cells' own (`decode_labels`) gives their expression as if they were of
#' that class: with a batch as the label, batch-corrected expression.
#'
#' @inheritParams encode
#' @param decode_labels For a conditional model: the labels to decode with,
#'   one class name for all cells or one per cell; `NULL` (default) decodes
#'   each cell with its own label. For a model of several conditions: a
#'   data.frame with the conditions to change (one row for all cells, or one per
#'   cell), e.g. `data.frame(batch = "b1")`; the others stay the cells' own.
#' @param library_size Count models: the library size of the decoded means,
#'   one number (default 1e4: counts per 10,000) or one per cell.
#' @return A genes x cells matrix; with a SingleCellExperiment `newdata` and a
#'   `name`, the SCE with it as `assay(newdata, name)`, restricted to the
#'   model's genes (a message says how many genes of `newdata` were left out).
#' @seealso [encode()], [gen_exprs()].
#' @examples
#' set.seed(1)
#' x <- matrix(rpois(80 * 30, 3), 80, 30,
#'             dimnames = list(NULL, paste0("gene", 1:30)))
#' batch <- rep(c("b1", "b2"), 40)
#' fit <- fit_vae(x_train = x, y_train = batch, likelihood = "nb", epochs = 5,
#'                batch_size = 16, verbose = FALSE)
#' norm <- normalized_exprs(fit)                       # own batches
#' as_b1 <- normalized_exprs(fit, decode_labels = "b1") # all as if in batch b1
#' dim(as_b1)
#' @export
normalized_exprs <- function(fit, newdata = NULL, labels = NULL, decode_labels = NULL,
                             library_size = 1e4, assay.type = NULL, name = NULL) {
    call <- rlang::current_env()
    .check_fit(fit, "fit")
    spec <- fit$model$spec
    prep <- .upgrade_preprocessing(fit$preprocessing)
    counts_model <- identical(prep$transform$type, "counts")
    cells <- .cells_of(prep, spec, newdata, labels, assay.type, name, "SummarizedExperiment", call)
    x <- cells$x
    codes <- cells$codes
    sce <- if (!is.null(name)) newdata
    n <- ncol(x)
    cs <- .conditions_spec(spec, prep)
    out_conds <- cells$conds
    if (!is.null(decode_labels)) {
        if (!.has_conditions(cs)) .abort("{.arg decode_labels} is for a conditional model; this one has none.")
        given <- .check_conditions(cs, decode_labels, n, "decode_labels", call, partial = TRUE)
        for (nm in names(given)) out_conds[[nm]] <- given[[nm]]
    }
    out_codes <- .condition_columns(cs, out_conds)
    if (counts_model) {
        if (!is.numeric(library_size) || !length(library_size) %in% c(1L, n) || anyNA(library_size) ||
            any(!is.finite(library_size)) || any(library_size <= 0)) {
            .abort("{.arg library_size} must be one positive number, or one per cell ({n}).")
        }
    }
    .check_memory(as.numeric(n) * spec$n_genes * 16, paste0("The normalised expression of ", n, " cells"),
                  "Ask for fewer cells at a time.", call = call)
    handle <- .eg_model_new(fit$model, fit$params$num.threads %||% 1L)
    z <- .encode_cells(handle, list(x_train = x, transform = prep$transform), codes)$mean
    values <- if (counts_model) {
        .eg_decode_means(handle, z, out_codes, rep_len(log(library_size), n), cells_in_rows = FALSE)
    } else {
        .eg_decode(handle, z, out_codes, prep$minmax, cells_in_rows = FALSE)
    }
    dimnames(values) <- list(prep$genes, colnames(x))
    if (is.null(sce)) return(values)
    if (!identical(rownames(sce), prep$genes)) {
        extra <- setdiff(rownames(sce), prep$genes)
        if (length(extra)) {
            cli::cli_inform(c(i = paste0("{.arg newdata} has {length(extra)} gene{?s} the model was not trained on ",
                                         "(e.g. {.val {utils::head(extra, 3)}}): the result keeps the model's ",
                                         "{length(prep$genes)} gene{?s} only."),
                              " " = "Add the assay to the full object with {.code newdata[rownames(result), ]} or without {.arg name}."),
                            class = "exprsgen_message_genes_dropped")
        }
        sce <- sce[prep$genes, ]
    }
    SummarizedExperiment::assay(sce, name, withDimnames = FALSE) <- values
    sce
}
