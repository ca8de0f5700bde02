#' Generated cells as a Seurat object
#'
#' Turns the result of [gen_exprs()] into a Seurat object (package
#' SeuratObject), optionally with the real training cells before the generated
#' ones, for users whose analyses live in Seurat. The cells, values and
#' metadata columns are those of [as_sce()]: `origin`, and for a conditional
#' model `label` and every condition.
#'
#' For count models the assay's `counts` hold the integer counts and its
#' `data` the log-normalised counts; for `"bce"`/`"mse"` models, whose values
#' are on the scale of the training data (log-normalised expression), only
#' `data` is set.
#'
#' Seurat does not allow underscores in gene names (it would replace them with
#' dashes and warn): they are replaced here, with a message, and each gene's
#' name in the fit is kept in the assay's feature metadata (column
#' `gene_name`, see `seurat[["RNA"]][[]]`), so that nothing is lost.
#' Duplicated gene names are an error.
#'
#' @inheritParams as_sce
#' @param assay Character scalar: the name of the Seurat assay.
#' @return A Seurat object.
#' @seealso [as_sce()], [gen_exprs()]; [fit_vae()] and [assess_aug()] accept
#'   Seurat objects.
#' @examples
#' if (requireNamespace("SeuratObject", quietly = TRUE)) {
#'     set.seed(1)
#'     counts <- matrix(rpois(40 * 30, 5), 40, 30,
#'                      dimnames = list(NULL, paste0("gene", 1:30)))
#'     fit <- fit_vae(x_train = counts, likelihood = "nb", epochs = 3,
#'                    batch_size = 16, verbose = FALSE)
#'     as_seurat(gen_exprs(fit, num_samples = 10), real = TRUE)
#' }
#' @export
as_seurat <- function(x, real = FALSE, assay = "RNA") {
    .need_seurat("as_seurat()")
    if (!is.character(assay) || length(assay) != 1L || is.na(assay) || !nzchar(assay)) {
        .abort("{.arg assay} must be a single non-empty string.")
    }
    sce <- as_sce(x, real = real)
    # Seurat would stop with "a different number of cells and/or features"
    if (!is.null(rownames(sce))) .check_gene_names(rownames(sce), "x", rlang::current_env())
    genes <- rownames(sce)
    if (!is.null(genes) && any(grepl("_", genes, fixed = TRUE))) {
        seurat_genes <- gsub("_", "-", genes, fixed = TRUE)
        clash <- unique(seurat_genes[duplicated(seurat_genes)])
        if (length(clash)) {
            .abort(c("{.arg x} has gene names that are alike once Seurat's dashes replace their underscores: {.val {utils::head(clash, 5)}}.",
                     i = "Rename them so that they stay distinct (e.g. {.code make.unique()})."),
                   class = "exprsgen_error_argument")
        }
        cli::cli_inform(c(i = paste("{sum(seurat_genes != genes)} gene name{?s} with underscores, which Seurat does not allow,",
                                    "{?is/are} written with dashes; the names of the fit are in the assay's feature metadata",
                                    "({.code gene_name}).")),
                        class = "exprsgen_message_seurat_names")
        rownames(sce) <- seurat_genes
    }
    meta <- as.data.frame(SummarizedExperiment::colData(sce), optional = TRUE)
    an <- SummarizedExperiment::assayNames(sce)
    values <- function(name) {
        m <- SummarizedExperiment::assay(sce, name, withDimnames = TRUE)
        methods::as(methods::as(methods::as(m, "CsparseMatrix"), "generalMatrix"), "dMatrix")
    }
    seurat_assay <- if ("counts" %in% an) {
        a <- SeuratObject::CreateAssayObject(counts = values("counts"))
        SeuratObject::SetAssayData(a, slot = "data", new.data = values("logcounts"))
    } else {
        SeuratObject::CreateAssayObject(data = values(an[1]))
    }
    if (!is.null(genes)) seurat_assay[["gene_name"]] <- genes
    suppressWarnings(SeuratObject::CreateSeuratObject(seurat_assay, assay = assay, meta.data = meta,
                                                      project = "exprsgen"))
}

.need_seurat <- function(what, call = rlang::caller_env()) {
    if (!requireNamespace("SeuratObject", quietly = TRUE)) {
        .abort(c("{what} needs the SeuratObject package.",
                 i = "Install it (on Debian: {.code apt-get install r-cran-seuratobject})."),
               call = call)
    }
}

# A Seurat object as a SingleCellExperiment over the same matrices (no copy of a
# dgCMatrix): the `assay.type` layer ("counts", "data" or "scale.data") of its
# default assay, named as that layer (or "logcounts" for "data"), and its meta.data
# as colData. Other objects are returned as they are.
.from_seurat <- function(object, assay.type, arg, call) {
    if (!methods::is(object, "Seurat")) return(object)
    .need_seurat(paste0("A Seurat {.arg ", arg, "}"), call = call)
    layers <- c("counts", "data", "scale.data")
    if (!is.character(assay.type) || length(assay.type) != 1L || !assay.type %in% layers) {
        .abort(c("{.arg assay.type} must name a layer of the Seurat object's assay: {.val {layers}}.",
                 i = "{.val counts} holds raw counts, {.val data} log-normalised values."), call = call)
    }
    default <- SeuratObject::DefaultAssay(object)
    m <- tryCatch(SeuratObject::GetAssayData(object, slot = assay.type, assay = default),
                  error = function(e) {
                      .abort(c("{.arg {arg}}: its {.val {assay.type}} could not be read.",
                               x = conditionMessage(e)), call = call)
                  })
    if (!length(m) || ncol(m) != ncol(object)) {
        .abort("{.arg {arg}}: assay {.val {default}} has no {.val {assay.type}} values for its cells.", call = call)
    }
    SingleCellExperiment::SingleCellExperiment(assays = stats::setNames(list(m), assay.type),
                                               colData = S4Vectors::DataFrame(object[[]], check.names = FALSE))
}
