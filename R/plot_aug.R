#' Plot real and generated cells together
#'
#' Puts the training cells and the generated cells of [gen_exprs()] into one
#' SingleCellExperiment ([as_sce()]), computes a reduced-dimension
#' representation with scater (`scater::run<plot_fun>()`) and plots it,
#' coloured by origin (real or generated) and shaped by label. Values of
#' `"bce"`/`"mse"` models are used as they are: they are already on the
#' (log-normalised) scale of the training data, so, unlike VAExprs, nothing
#' is log-normalised a second time. Counts of count models are
#' log-normalised once.
#'
#' @param x The result of [gen_exprs()].
#' @param plot_fun Character scalar: `"PCA"`, `"TSNE"`, `"UMAP"`, `"MDS"`,
#'   `"NMF"` or `"DiffusionMap"` (the last three need packages scater
#'   suggests).
#' @param ... Further arguments for the `scater::run*()` function, e.g.
#'   `ncomponents` or `perplexity`.
#'
#' @return A ggplot object.
#' @seealso [gen_exprs()]
#' @examples
#' set.seed(1)
#' x <- matrix(rexp(60 * 50), 60, 50)
#' fit <- fit_vae(x_train = x,
#'                encoder_layers = list(layer_input(shape = 50),
#'                                      layer_dense(16, "relu")),
#'                decoder_layers = list(layer_dense(16, "relu"),
#'                                      layer_dense(50, "sigmoid")),
#'                epochs = 5, batch_size = 16, verbose = FALSE)
#' plot_aug(gen_exprs(fit, num_samples = 30), "PCA")
#' @export
plot_aug <- function(x, plot_fun = "PCA", ...) {
    call <- rlang::current_env()
    .check_gen(x, "x")
    funs <- c(PCA = "PCA", TSNE = "TSNE", UMAP = "UMAP", MDS = "MDS", NMF = "NMF",
              DIFFUSIONMAP = "DiffusionMap")
    if (!is.character(plot_fun) || length(plot_fun) != 1L || !toupper(plot_fun) %in% names(funs)) {
        .abort("{.arg plot_fun} must be one of {.val {unname(funs)}}.")
    }
    plot_fun <- funs[[toupper(plot_fun)]]
    needs <- c(TSNE = "Rtsne", UMAP = "uwot", NMF = "RcppML", DiffusionMap = "destiny")
    if (plot_fun %in% names(needs) && !requireNamespace(needs[[plot_fun]], quietly = TRUE)) {
        .abort("{.arg plot_fun} = {.val {plot_fun}} needs the package {.pkg {needs[[plot_fun]]}}, which is not installed.")
    }
    if (ncol(x$x_gen) < 2L) {
        .abort("{.arg x} has {ncol(x$x_gen)} gene{?s}; {.fn plot_aug} needs at least 2 to reduce to two dimensions.")
    }
    sce <- as_sce(x, real = TRUE)
    # Reduced dimensions of log-scale values: log-normalised counts for count
    # models, the training scale (already log-normalised, or as given) otherwise.
    assay_name <- if ("logcounts" %in% SummarizedExperiment::assayNames(sce)) "logcounts" else
        SummarizedExperiment::assayNames(sce)[1]
    cd <- SummarizedExperiment::colData(sce)
    has_labels <- "label" %in% colnames(cd)
    run <- getExportedValue("scater", paste0("run", plot_fun))
    args <- list(...)
    n <- ncol(sce)
    # UMAP's neighbourhood (15 by default) must be smaller than the number of cells
    if (plot_fun == "UMAP" && is.null(args$n_neighbors)) {
        if (n < 3L) .abort("{.arg plot_fun} = {.val UMAP} needs at least 3 cells (real and generated); {.arg x} has {n}.")
        args$n_neighbors <- min(15L, n - 1L)
    }
    sce <- tryCatch(do.call(run, c(list(sce, exprs_values = assay_name), args)), error = function(e) {
        .abort(c("{.arg plot_fun} = {.val {plot_fun}} failed on the {n} cells of {.arg x}:", x = conditionMessage(e)),
               call = call, class = "exprsgen_error_argument")
    })
    # ggplot2 has six distinct shapes: with more labels, colour by label instead.
    if (has_labels && nlevels(cd$label) > 6L) {
        colour <- "label"
        shape <- "origin"
    } else {
        colour <- "origin"
        shape <- if (has_labels) "label" else NULL
    }
    scater::plotReducedDim(sce, dimred = plot_fun, colour_by = colour, shape_by = shape,
                           point_alpha = 0.8)
}
