#' Generated cells as a SingleCellExperiment
#'
#' Turns the result of [gen_exprs()] into a SingleCellExperiment with genes
#' in rows and cells in columns, optionally with the real training cells
#' before the generated ones, for downstream Bioconductor analysis.
#' `as(gen, "SingleCellExperiment")` is `as_sce(gen)`.
#'
#' For count models (see [likelihoods()]) the `counts` assay holds
#' the integer counts as a sparse dgCMatrix and `logcounts` the
#' log-normalised counts ([scuttle::normalizeCounts()], library-size factors).
#' For the other models the values are on the scale of the training data and
#' go into one assay: `logcounts` (log-normalised counts, or a matrix given
#' as `x_train`), or the assay the model was trained on when it was used as
#' it is. The training cells of a model fitted to on-disk data (HDF5Array,
#' TENxMatrix) stay on disk: with `real = TRUE` the assays are DelayedArrays
#' that read them when needed.
#'
#' @param x The result of [gen_exprs()].
#' @param real Logical scalar: include the real training cells too.
#'
#' @return A SingleCellExperiment. `colData` has `origin` (`"real"` or
#'   `"generated"`) and, for a conditional model, `label` (the first label)
#'   and a column for each condition (labels and covariates) by its name.
#' @seealso [gen_exprs()], [plot_aug()]
#' @examples
#' set.seed(1)
#' counts <- matrix(rpois(40 * 30, 5), 40, 30)
#' fit <- fit_vae(x_train = counts, likelihood = "nb", epochs = 3,
#'                batch_size = 16, verbose = FALSE)
#' gen <- gen_exprs(fit, num_samples = 10)
#' as_sce(gen)
#' as_sce(gen, real = TRUE)
#' @export
as_sce <- function(x, real = FALSE) {
    .check_gen(x, "x")
    real <- .check_flag(real, "real")
    n_gen <- nrow(x$x_gen)
    n_real <- if (real) nrow(x$x_train) else 0L
    gen_names <- rownames(x$x_gen) %||% paste0("gen", seq_len(n_gen))
    real_names <- rownames(x$x_train) %||% paste0("real", seq_len(n_real))
    cells <- make.unique(c(if (real) real_names, gen_names))
    genes <- colnames(x$x_gen) %||% colnames(x$x_train)
    assay_name <- attr(x, "assay") %||% "logcounts"
    counts_model <- identical(assay_name, "counts")
    # genes x cells, as Bioconductor stores them
    part <- function(m) {
        m <- .genes_by_cells(m)
        if (.is_delayed(m)) return(m)  # on-disk training cells stay on disk
        if (counts_model) methods::as(methods::as(m, "CsparseMatrix"), "generalMatrix") else as.matrix(m)
    }
    values <- if (!real) {
        part(x$x_gen)
    } else {
        train <- part(x$x_train)
        gen <- part(x$x_gen)
        if (.is_delayed(train)) DelayedArray::acbind(train, DelayedArray::DelayedArray(gen)) else cbind(train, gen)
    }
    dimnames(values) <- list(genes, cells)
    cd <- S4Vectors::DataFrame(origin = factor(rep(c("real", "generated"), c(n_real, n_gen)),
                                               levels = c("real", "generated")),
                               row.names = cells)
    if (!is.null(x$y_gen)) {
        cd$label <- factor(c(if (real) as.character(x$y_train), as.character(x$y_gen)),
                           levels = union(levels(factor(x$y_train)), levels(factor(x$y_gen))))
    }
    # every condition of a conditional model (labels and covariates), by its name
    if (!is.null(x$conditions_gen) && (!real || !is.null(x$conditions_train))) {
        for (nm in setdiff(names(x$conditions_gen), names(cd))) {
            g <- x$conditions_gen[[nm]]
            r <- if (real) x$conditions_train[[nm]]
            cd[[nm]] <- if (is.factor(g)) factor(c(as.character(r), as.character(g)), levels = union(levels(r), levels(g)))
                        else c(r, g)
        }
    }
    assays <- if (counts_model) {
        # a cell without any counts (a generated one can be) keeps logcounts 0
        sf <- scuttle::librarySizeFactors(values)
        sf[!(sf > 0)] <- 1
        list(counts = values, logcounts = scuttle::normalizeCounts(values, size.factors = sf))
    } else {
        stats::setNames(list(values), assay_name)
    }
    SingleCellExperiment::SingleCellExperiment(assays = assays, colData = cd)
}

# as(gen, "SingleCellExperiment"), registered when the namespace loads.
.register_coercions <- function(where) {
    methods::setOldClass("exprsgen_gen", where = where)
    # SingleCellExperiment may not be loaded yet (loading it would add seconds to
    # library(exprsgen)); methods then notes that the class is undefined, harmlessly:
    # the coercion is found by name once it is.
    suppressMessages(methods::setAs("exprsgen_gen", "SingleCellExperiment", function(from) as_sce(from),
                                    where = where))
}

`%||%` <- function(a, b) if (is.null(a)) b else a
