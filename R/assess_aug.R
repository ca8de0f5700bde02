#' How realistic are generated cells?
#'
#' Compares generated cells with real ones on the metrics the single-cell
#' literature uses to judge simulators and generative models (a classifier
#' telling real from generated cells as in scGAN; distributions of gene and
#' cell properties as in SimBench and splatter's `compareSCEs()`; gene-gene
#' correlation; label and marker agreement; neighbourhood mixing and a
#' novelty check), and returns them as one tidy table.
#'
#' @section Representation:
#' Both sets are put on one log scale before comparison (`transform`):
#' `"counts"` divides each cell by its library size, multiplies by the
#' median library size of the real cells and takes `log2(x + 1)`; `"log"`
#' takes `log2(x + 1)` of the values as they are (e.g. RPKM or TPM);
#' `"none"` uses the values as they are (already log-expression). `"auto"`
#' chooses `"counts"` when the real values are all non-negative whole
#' numbers, `"log"` when they are not and exceed 50 somewhere, else
#' `"none"`. Genes are matched by name when both sets have row names. At
#' most `max_cells` cells of each set are used (drawn at random). The
#' principal components are computed on the `n_genes` genes most variable in
#' the real cells, from real and generated cells together.
#'
#' @section Metrics:
#' Each metric is one entry of a table (`R/assess_metrics.R`) that computes
#' it, its reference and its interpretation. Each row of the result has the
#' metric's `value`, a `reference` where one
#' exists (the same statistic between two random halves of the real cells,
#' i.e. the value a perfect generator would reach with these numbers of
#' cells), the `best` possible value and a short `interpretation`.
#' \describe{
#'   \item{`classifier_auc`}{Area under the ROC curve of a random forest
#'     (ranger, 5-fold cross-validation on the top principal components, equal
#'     numbers of real and generated cells, identical cells kept in one fold)
#'     trying to tell real from generated cells. 0.5: indistinguishable; 1:
#'     always told apart. Range 0-1.}
#'   \item{`mmd`}{Maximum mean discrepancy (Gaussian kernel, median-distance
#'     bandwidth) between real and generated cells in PCA space; `reference`
#'     is the MMD between two halves of the real cells. 0 is best; a value
#'     near the reference is as close as sampling noise allows.}
#'   \item{`gene_mean_cor`, `gene_var_cor`, `gene_zero_cor`}{Pearson
#'     correlation over genes of real vs generated gene means, variances
#'     and fractions of zeros (on the log scale). 1 is best.}
#'   \item{`zeros_gap`}{Share of zeros among all generated values minus that
#'     among the real values. 0 is best; smooth (non-count) models have
#'     negative values, as they rarely produce exact zeros.}
#'   \item{`library_size_ks`, `detected_genes_ks`}{Kolmogorov-Smirnov
#'     distance between real and generated library sizes and numbers of
#'     detected genes per cell (count data only). 0 is best, 1 worst.}
#'   \item{`gene_gene_cor`}{Correlation between the upper triangles of the
#'     gene-gene correlation matrices of the most variable genes (up to 200)
#'     in real and in generated cells: whether co-expression is kept. 1 is
#'     best; compare with `reference`.}
#'   \item{`label_accuracy`}{(with labels) Accuracy of a random forest
#'     trained on the real cells' principal components at predicting the
#'     generated cells' labels; `reference` is its out-of-bag accuracy on the
#'     real cells. Close to the reference is best.}
#'   \item{`marker_overlap`}{(with labels) Mean over classes of the Jaccard
#'     overlap between the top 20 marker genes (highest mean log-fold change
#'     against the other classes) found in real and in generated cells;
#'     `reference`: the same between two halves of the real cells. 1 is best.}
#'   \item{`knn_mixing`}{Share of real cells among each generated cell's
#'     `k` nearest neighbours (real and generated pooled in equal numbers,
#'     PCA space), divided by the share expected under perfect mixing. 1:
#'     perfectly mixed; 0: generated cells only have generated neighbours.}
#'   \item{`novelty`}{Median distance from a generated cell to its nearest
#'     real cell, divided by the median distance from a real cell to its
#'     nearest other real cell. Near 1: new cells at real-like distances;
#'     near 0: copies of real cells (memorisation); well above 1: cells far
#'     from any real cell.}
#'   \item{`copies`}{Share of generated cells closer to a real cell than a
#'     twentieth of the real cells' median nearest-neighbour distance
#'     (near-copies of real cells). 0 is best for augmentation.}
#'   \item{`within_class_gene_cor`}{(with labels) As `gene_gene_cor`, after
#'     removing each class's mean from its cells (classes with at least 2
#'     cells in both sets): whether the co-variation of genes within a cell
#'     type is kept, which class means alone cannot give. `reference`: the
#'     same between two halves of the real cells split evenly within each
#'     class.}
#' }
#'
#' @section Held-out cells: memorisation and augmentation utility:
#' When the generator's training cells are known (`train`, or taken from a
#' [gen_exprs()] result given as `gen`) and the `real` cells are other cells
#' (held out from training; real cells that are among the training cells,
#' matched by name, switch these metrics off), four more rows compare the
#' three sets. When the `real` cells are the training cells themselves (as
#' in `assess_aug(gen)` of a [gen_exprs()] result, with nothing held out),
#' `memorisation` is still reported, against the training cells' own
#' distances to their nearest other training cell (a new real cell of the
#' same population is about as far from its nearest training cell): exact
#' copies score 0, new cells about 1 or more. For the first two, equal numbers of held-out, generated and
#' training cells are put in principal components fitted to all three:
#' \describe{
#'   \item{`memorisation`}{Median distance from a generated cell to its
#'     nearest training cell, divided by the same for held-out real cells.
#'     Near 1 (or above): generated cells are no closer to the training cells
#'     than new real cells are; well below 1: the generator copies its
#'     training cells (0 for exact copies).}
#'   \item{`closer_to_train`}{Share of generated cells whose nearest training
#'     cell is nearer than their nearest held-out cell. `reference`: the same
#'     share for held-out cells (nearest training cell vs nearest other
#'     held-out cell), about 0.5. Near the reference is best; near 1: copies.}
#'   \item{`augmentation_accuracy`, `augmentation_rare_recall`}{(with labels
#'     for all three sets) The point of augmentation: a random forest (200
#'     trees, balanced class weights, on `n_pcs` principal components of the
#'     training cells' `n_genes` most variable genes) trained on the training
#'     cells alone (`reference`) and on the training cells plus the generated
#'     cells of their classes (`value`) predicts the held-out cells' labels.
#'     Rows: balanced accuracy (mean recall over classes), and mean recall of
#'     the three classes with the fewest training cells. Higher than the
#'     reference: the generated cells help. To measure what generation adds
#'     to a small study, fit the model on a few cells per class (e.g. 10 % of
#'     a training half, at least 3 per class) and assess against the other
#'     half, as CFGen reports; the per-class recalls are in
#'     `attr(x, "details")$utility`.}
#' }
#'
#' @param real The real cells: a SingleCellExperiment (or
#'   SummarizedExperiment, or a Seurat object), or a matrix (dense, sparse or DelayedArray) with
#'   genes in rows and cells in columns. Or the result of [gen_exprs()], which
#'   holds both its training cells and the generated cells: then `gen` may be
#'   left out.
#' @param gen The generated cells, in any of the forms of `real`, or the
#'   result of [gen_exprs()] (its generated cells are used).
#' @param labels_real,labels_gen Optional cell labels: vectors with one value
#'   per cell, or for a SingleCellExperiment the name of a `colData` column.
#'   Taken from a [gen_exprs()] result of a conditional model when not given.
#' @param assay.type For a SingleCellExperiment: the assay to use (default
#'   `"counts"` when present, else the first assay). For a Seurat object: the
#'   layer of its default assay (`"counts"` by default, `"data"`, `"scale.data"`).
#' @param transform How to put values on a common log scale: `"auto"`,
#'   `"counts"`, `"log"` or `"none"` (see Representation).
#' @param n_genes Integer scalar: number of most variable genes for the
#'   principal components and the classifiers.
#' @param n_pcs Integer scalar: number of principal components.
#' @param max_cells Integer scalar: at most this many cells of each set are
#'   used.
#' @param k Integer scalar: neighbours for `knn_mixing`.
#' @param seed Integer scalar or `NULL`: seed for the subsampling, the
#'   cross-validation folds and the forests; `NULL` draws from R's random
#'   number generator (so `set.seed()` fixes the result either way). R's
#'   random state is left as it was when a seed is given.
#' @param num.threads Integer scalar: threads for ranger.
#' @param train,labels_train Optional: the cells the generator was trained on
#'   (any form of `real`, or a [gen_exprs()] result) and their labels, for the
#'   held-out metrics (see below). Taken from `gen` when it is a [gen_exprs()]
#'   result.
#'
#' @return A data.frame of class `exprsgen_assessment` with columns `metric`,
#'   `value`, `reference`, `best` and `interpretation`, printed as a summary.
#'   The per-gene and per-cell values and the ROC curve behind it are kept
#'   for [plot_assess()] in `attr(x, "details")` (with `utility`: the
#'   per-class recalls behind the augmentation rows).
#' @seealso [plot_assess()] to see the comparison, [gen_exprs()],
#'   [plot_aug()].
#' @examples
#' set.seed(1)
#' counts <- matrix(rpois(50 * 80, 3), 50, 80)
#' fit <- fit_vae(x_train = t(counts), likelihood = "nb", epochs = 5,
#'                batch_size = 16, verbose = FALSE)
#' gen <- gen_exprs(fit, num_samples = 80)
#' a <- assess_aug(gen)
#' a
#' @export
assess_aug <- function(real, gen = NULL, labels_real = NULL, labels_gen = NULL,
                       assay.type = NULL, transform = c("auto", "counts", "log", "none"),
                       n_genes = 2000, n_pcs = 20, max_cells = 5000, k = 10, seed = NULL,
                       num.threads = 1L, train = NULL, labels_train = NULL) {
    call <- rlang::current_env()
    transform <- .check_choice(transform, "transform", call)
    n_genes <- .check_count(n_genes, "n_genes", min = 2L, call = call)
    n_pcs <- .check_count(n_pcs, "n_pcs", min = 1L, call = call)
    max_cells <- .check_count(max_cells, "max_cells", min = 10L, call = call)
    k <- .check_count(k, "k", min = 1L, call = call)
    num.threads <- .check_count(num.threads, "num.threads", min = 1L, call = call)
    if (!is.null(seed)) {
        seed <- .check_count(seed, "seed", min = 0L, call = call)
        return(.with_seed(seed, assess_aug(real, gen, labels_real, labels_gen, assay.type, transform, n_genes,
                                           n_pcs, max_cells, k, NULL, num.threads, train, labels_train)))
    }
    ctx <- .assess_context(real, gen, labels_real, labels_gen, assay.type, transform, n_genes,
                           n_pcs, max_cells, call, train, labels_train)
    ctx$k <- k
    ctx$threads <- num.threads
    # in table order, which is also the order in which they draw random numbers
    rows <- lapply(Filter(function(m) m$applies(ctx), .assess_metrics), function(m) {
        r <- m$compute(ctx)
        ref <- if (is.null(r$reference)) NA_real_ else r$reference
        # (a value that cannot be computed, e.g. without variable genes, reads "undefined")
        .metric(m$name, r$value, ref, m$best, if (is.na(r$value)) "undefined" else m$interpret(r$value, ref, ctx))
    })
    out <- do.call(rbind, rows)
    rownames(out) <- NULL
    details <- list(genes = ctx$genes, cells = ctx$cells, roc = ctx$roc,
                    pca = data.frame(PC1 = ctx$pcs[, 1], PC2 = if (ncol(ctx$pcs) > 1) ctx$pcs[, 2] else 0,
                                     origin = ctx$cells$origin),
                    transform = ctx$transform, n_real = ncol(ctx$lr), n_gen = ncol(ctx$lg),
                    n_train = if (!is.null(ctx$lt)) ncol(ctx$lt) else 0L,
                    n_genes = ncol(ctx$dr), utility = ctx$utility)
    structure(out, class = c("exprsgen_assessment", "data.frame"), details = details)
}

# What the metrics compare, in an environment (metrics may cache shared results in
# it, see .cached()): both sets on one log scale (lr, lg: genes x cells), per-gene
# and per-cell properties, the most variable genes (dr, dg: cells x genes), principal
# components (pr, pg), equal-sized random subsets (bal_r, bal_g), labels; and when
# the generator's training cells are known and differ from the real ones, those on
# the same scale (lt; dt: the most variable genes, cells x genes).
.assess_context <- function(real, gen, labels_real, labels_gen, assay.type, transform,
                            n_genes, n_pcs, max_cells, call, train = NULL, labels_train = NULL) {
    for (a in c("real", "gen", "train")) {
        v <- get(a)
        if (inherits(v, "exprsgen_gen")) .check_gen(v, a, call)
    }
    if (inherits(real, "exprsgen_gen")) {
        if (is.null(gen)) gen <- real
        if (is.null(labels_real)) labels_real <- real$y_train
        real <- .genes_by_cells(real$x_train)
    }
    if (is.null(gen)) {
        .abort("Give the generated cells as {.arg gen} (or a {.fn gen_exprs} result as {.arg real}).", call = call)
    }
    if (inherits(train, "exprsgen_gen")) {
        if (is.null(labels_train)) labels_train <- train$y_train
        train <- .genes_by_cells(train$x_train)
    }
    if (inherits(gen, "exprsgen_gen")) {
        if (is.null(labels_gen)) labels_gen <- gen$y_gen
        if (is.null(train)) {
            train <- .genes_by_cells(gen$x_train)
            if (is.null(labels_train)) labels_train <- gen$y_train
        }
        gen <- .genes_by_cells(gen$x_gen)
    }
    r <- .assess_input(real, labels_real, assay.type, "real", call)
    g <- .assess_input(gen, labels_gen, assay.type, "gen", call)
    tr <- if (!is.null(train)) .assess_input(train, labels_train, assay.type, "train", call)
    # Real cells that are the training cells themselves leave nothing held out.
    # (memorisation is then measured against the training cells' own nearest
    # neighbours instead, when the real cells are the training cells)
    self_train <- FALSE
    if (!is.null(tr) && !is.null(colnames(r$x)) && !is.null(colnames(tr$x)) &&
        any(colnames(r$x) %in% colnames(tr$x))) {
        self_train <- ncol(r$x) == ncol(tr$x) && all(colnames(r$x) == colnames(tr$x))
        tr <- NULL
    }
    if (!is.null(rownames(r$x)) && !is.null(rownames(g$x))) {
        common <- intersect(rownames(r$x), rownames(g$x))
        if (!is.null(tr) && !is.null(rownames(tr$x))) common <- intersect(common, rownames(tr$x))
        if (length(common) < 2L) {
            .abort("{.arg real} and {.arg gen} share {length(common)} gene name{?s}; at least 2 are needed.", call = call)
        }
        r$x <- r$x[common, , drop = FALSE]
        g$x <- g$x[common, , drop = FALSE]
        if (!is.null(tr) && !is.null(rownames(tr$x))) tr$x <- tr$x[common, , drop = FALSE]
    } else if (nrow(r$x) != nrow(g$x)) {
        .abort("{.arg real} has {nrow(r$x)} genes (rows) but {.arg gen} has {nrow(g$x)}.", call = call)
    }
    if (!is.null(tr) && nrow(tr$x) != nrow(r$x)) {
        .abort("{.arg train} has {nrow(tr$x)} genes (rows) but {.arg real} has {nrow(r$x)}.", call = call)
    }
    if (ncol(r$x) < 5L || ncol(g$x) < 5L) {
        .abort("{.arg real} and {.arg gen} need at least 5 cells each, not {ncol(r$x)} and {ncol(g$x)}.", call = call)
    }
    r <- .subsample_cells(r, max_cells)
    g <- .subsample_cells(g, max_cells)
    r$x <- .as_numeric_matrix(r$x, "real", call)
    g$x <- .as_numeric_matrix(g$x, "gen", call)
    if (transform == "auto") transform <- .guess_transform(r$x)
    .check_whole_counts(r$x, transform, "real", call)
    .check_whole_counts(g$x, transform, "gen", call)
    ctx <- new.env(parent = emptyenv())
    ctx$transform <- transform
    ctx$lib_r <- Matrix::colSums(r$x)
    ctx$lib_g <- Matrix::colSums(g$x)
    target <- stats::median(ctx$lib_r)
    lr <- ctx$lr <- .log_scale(r$x, transform, ctx$lib_r, target)
    lg <- ctx$lg <- .log_scale(g$x, transform, ctx$lib_g, target)
    # per-gene properties on all genes, per-cell properties of both sets
    genes <- ctx$genes <- data.frame(gene = rownames(lr) %||% paste0("gene", seq_len(nrow(lr))),
                                     mean_real = Matrix::rowMeans(lr), mean_gen = Matrix::rowMeans(lg),
                                     var_real = .row_vars(lr), var_gen = .row_vars(lg),
                                     zero_real = .row_zeros(lr), zero_gen = .row_zeros(lg))
    ctx$cells <- data.frame(origin = factor(rep(c("real", "generated"), c(ncol(lr), ncol(lg))),
                                            levels = c("real", "generated")),
                            library_size = c(ctx$lib_r, ctx$lib_g),
                            detected = c(Matrix::colSums(r$x != 0), Matrix::colSums(g$x != 0)))
    # most variable genes (in the real cells), dense, cells in rows
    hv <- order(genes$var_real, decreasing = TRUE)[seq_len(min(n_genes, nrow(lr)))]
    hv <- hv[genes$var_real[hv] > 0]
    if (length(hv) < 2L) .abort("{.arg real} has fewer than 2 genes that vary between cells.", call = call)
    ctx$dr <- t(as.matrix(lr[hv, , drop = FALSE]))
    ctx$dg <- t(as.matrix(lg[hv, , drop = FALSE]))
    ctx$pcs <- .joint_pca(ctx$dr, ctx$dg, n_pcs)
    ctx$pr <- ctx$pcs[seq_len(nrow(ctx$dr)), , drop = FALSE]
    ctx$pg <- ctx$pcs[nrow(ctx$dr) + seq_len(nrow(ctx$dg)), , drop = FALSE]
    m <- min(nrow(ctx$pr), nrow(ctx$pg))
    ctx$bal_r <- sample.int(nrow(ctx$pr), m)
    ctx$bal_g <- sample.int(nrow(ctx$pg), m)
    ctx$labels_real <- r$labels
    ctx$labels_gen <- g$labels
    ctx$n_genes <- n_genes
    ctx$n_pcs <- n_pcs
    ctx$self_train <- self_train
    if (!is.null(tr)) {
        # after every draw above, so that the other metrics do not depend on it
        tr <- .subsample_cells(tr, max_cells)
        tr$x <- .as_numeric_matrix(tr$x, "train", call)
        .check_whole_counts(tr$x, transform, "train", call)
        ctx$lt <- .log_scale(tr$x, transform, Matrix::colSums(tr$x), target)
        ctx$dt <- t(as.matrix(ctx$lt[hv, , drop = FALSE]))
        ctx$labels_train <- tr$labels
    }
    ctx
}

# The stored values of a base matrix or dgCMatrix (a sparse matrix's zeros left out).
.values <- function(x) if (methods::is(x, "dgCMatrix")) x@x else as.vector(x)

.check_whole_counts <- function(x, transform, name, call) {
    if (transform == "log" && any(.values(x) < 0)) {
        .abort(c("{.arg {name}} has negative values, which {.code transform = \"log\"} (log2(x + 1)) cannot take.",
                 i = "Use {.code transform = \"none\"} for values already on a log scale."), call = call)
    }
    if (transform != "counts") return(invisible())
    v <- .values(x)
    if (any(v < 0 | v != round(v))) {
        .abort("{.arg {name}} must hold non-negative whole counts for {.code transform = \"counts\"}.", call = call)
    }
}

#' @method print exprsgen_assessment
#' @export
print.exprsgen_assessment <- function(x, digits = 3, ...) {
    d <- attr(x, "details")
    cat(sprintf("Real vs generated cells: %d real, %d generated%s, %d variable genes, transform \"%s\"\n",
                d$n_real, d$n_gen, if (isTRUE(d$n_train > 0)) sprintf(", %d training", d$n_train) else "",
                d$n_genes, d$transform))
    df <- as.data.frame(unclass(x)[c("metric", "value", "reference", "best", "interpretation")],
                        stringsAsFactors = FALSE)
    df$value <- formatC(df$value, digits = digits, format = "fg")
    df$reference <- ifelse(is.na(x$reference), "", formatC(x$reference, digits = digits, format = "fg"))
    print(df, row.names = FALSE, right = FALSE)
    invisible(x)
}

# One set of cells: genes x cells matrix and labels.
.assess_input <- function(x, labels, assay.type, name, call) {
    x <- .from_seurat(x, assay.type %||% "counts", name, call)
    if (methods::is(x, "SummarizedExperiment")) {
        an <- SummarizedExperiment::assayNames(x)
        if (length(an) == 0L) .abort("{.arg {name}} has no assays.", call = call)
        assay.type <- assay.type %||% (if ("counts" %in% an) "counts" else an[1])
        if (!assay.type %in% an) {
            .abort("{.arg {name}} has no assay {.val {assay.type}} (it has {.val {an}}).", call = call)
        }
        if (is.character(labels) && length(labels) == 1L && ncol(x) != 1L) {
            cd <- SummarizedExperiment::colData(x)
            if (!labels %in% colnames(cd)) {
                .abort("{.arg labels_{name}} {.val {labels}} is not a column of {.code colData({name})}.", call = call)
            }
            labels <- cd[[labels]]
        }
        x <- SummarizedExperiment::assay(x, assay.type, withDimnames = TRUE)
    }
    if (!(is.matrix(x) || methods::is(x, "Matrix") || .is_delayed(x))) {
        .abort("{.arg {name}} must be a SingleCellExperiment, a matrix (genes x cells) or a {.fn gen_exprs} result.",
               call = call)
    }
    if (is.matrix(x) && !is.numeric(x)) .abort("{.arg {name}} must be numeric.", call = call)
    if (methods::is(x, "sparseMatrix")) .check_sparse(x, name, call)
    if (!is.null(labels)) {
        if (length(labels) != ncol(x)) {
            .abort("{.arg labels_{name}} has {length(labels)} value{?s} but {.arg {name}} has {ncol(x)} cells.",
                   call = call)
        }
        if (anyNA(labels)) .abort("{.arg labels_{name}} contains NA labels.", call = call)
        labels <- factor(labels)
    }
    list(x = x, labels = labels)
}

.subsample_cells <- function(s, max_cells) {
    if (ncol(s$x) > max_cells) {
        keep <- sort(sample.int(ncol(s$x), max_cells))
        s$x <- s$x[, keep, drop = FALSE]
        if (!is.null(s$labels)) s$labels <- droplevels(s$labels[keep])
    }
    s
}

# A base matrix, or a dgCMatrix when sparse (DelayedArray realised after subsampling).
.as_numeric_matrix <- function(x, name, call) {
    if (.is_delayed(x)) x <- methods::as(x, "dgCMatrix")
    v <- if (methods::is(x, "sparseMatrix")) {
        x <- methods::as(methods::as(x, "CsparseMatrix"), "generalMatrix")
        x@x
    } else {
        x <- as.matrix(x)
        storage.mode(x) <- "double"
        x
    }
    if (any(!is.finite(v))) .abort("{.arg {name}} holds missing or non-finite values.", call = call)
    x
}

.guess_transform <- function(x) {
    v <- .values(x)
    if (length(v) && all(v >= 0) && all(v == round(v))) "counts"
    else if (length(v) && max(v) > 50) "log" else "none"
}

# log2 scale (zeros stay zeros, so sparse matrices stay sparse).
.log_scale <- function(x, transform, lib, target) {
    f <- switch(transform,
                counts = function(v, s) log2(v * s + 1),
                log = function(v, s) log2(v + 1),
                none = function(v, s) v)
    scale <- ifelse(lib > 0, target / lib, 0)
    if (methods::is(x, "dgCMatrix")) {
        s <- rep(scale, diff(x@p))
        x@x <- f(x@x, s)
        x
    } else {
        f(x, rep(scale, each = nrow(x)))
    }
}

.row_vars <- function(x) {
    n <- ncol(x)
    mu <- Matrix::rowMeans(x)
    sq <- if (methods::is(x, "dgCMatrix")) {
        y <- x
        y@x <- y@x^2
        Matrix::rowMeans(y)
    } else {
        rowMeans(x^2)
    }
    pmax(0, (sq - mu^2) * n / max(1, n - 1))
}

.row_zeros <- function(x) 1 - Matrix::rowSums(x != 0) / ncol(x)

# Principal components of real and generated cells together (rows), centred, fitted
# to the distinct cells only: cells repeated among the generated ones (copies of real
# cells) would otherwise weigh more in the fit, and cells outside the fit have scores
# shrunk towards the centre, which a classifier can pick up.
.joint_pca <- function(dr, dg, n_pcs) {
    all <- rbind(dr, dg)
    probe <- all %*% matrix(stats::runif(ncol(all) * 2L), ncol(all), 2L)
    distinct <- !duplicated(signif(probe, 10))
    fit <- all[distinct, , drop = FALSE]
    centre <- colMeans(fit)
    n_pcs <- min(n_pcs, ncol(fit) - 1L, nrow(fit) - 1L)
    fit <- sweep(fit, 2, centre)
    rotation <- .rotation(fit, n_pcs)
    sweep(all, 2, centre) %*% rotation
}

.rotation <- function(centred, n_pcs) {
    if (n_pcs >= min(dim(centred)) / 2) svd(centred, nu = 0, nv = n_pcs)$v
    else irlba::irlba(centred, nv = n_pcs)$v
}
