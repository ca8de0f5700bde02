#' Plot an assessment of generated cells
#'
#' A compact figure of [assess_aug()]'s comparison: real vs generated gene
#' means, variances and fractions of zeros (one point per gene, the diagonal
#' is perfect agreement), library sizes (count data) or mean expression per
#' cell, the real-vs-generated classifier's ROC curve (the diagonal is
#' indistinguishable) and the first two principal components.
#'
#' @param x The result of [assess_aug()].
#'
#' @return A patchwork (a ggplot that prints as one figure).
#' @seealso [assess_aug()]
#' @examples
#' set.seed(1)
#' counts <- matrix(rpois(50 * 80, 3), 50, 80)
#' fit <- fit_vae(x_train = t(counts), likelihood = "nb", epochs = 5,
#'                batch_size = 16, verbose = FALSE)
#' plot_assess(assess_aug(gen_exprs(fit, num_samples = 80)))
#' @export
plot_assess <- function(x) {
    if (!inherits(x, "exprsgen_assessment")) .abort("{.arg x} must be the result of {.fn assess_aug}.")
    d <- attr(x, "details")
    val <- stats::setNames(x$value, x$metric)
    theme <- ggplot2::theme_bw(base_size = 9) + ggplot2::theme(plot.margin = ggplot2::margin(5.5, 14, 5.5, 5.5))
    colours <- c(real = "#1b6ca8", generated = "#d1495b")
    scatter <- function(a, b, title, metric, note = NULL) {
        g <- data.frame(real = d$genes[[a]], generated = d$genes[[b]])
        ggplot2::ggplot(g, ggplot2::aes(x = .data$real, y = .data$generated)) +
            ggplot2::geom_abline(slope = 1, intercept = 0, colour = "grey60") +
            ggplot2::geom_point(size = 0.5, alpha = 0.4) +
            ggplot2::labs(title = title, subtitle = paste0(sprintf("r = %.3f", val[[metric]]), note),
                          x = "real", y = "generated") +
            theme
    }
    cells <- d$cells
    counts <- identical(d$transform, "counts")
    lib <- ggplot2::ggplot(cells, ggplot2::aes(x = .data$library_size, colour = .data$origin)) +
        ggplot2::geom_density() +
        ggplot2::scale_colour_manual(values = colours) +
        ggplot2::labs(title = if (counts) "Library sizes" else "Total expression per cell",
                      subtitle = if (counts) sprintf("KS distance %.3f", val[["library_size_ks"]]),
                      x = if (counts) "counts per cell" else "sum of values", colour = NULL) +
        theme + ggplot2::theme(legend.position = "bottom")
    if (counts) lib <- lib + ggplot2::scale_x_log10()
    roc <- ggplot2::ggplot(d$roc, ggplot2::aes(x = .data$fpr, y = .data$tpr)) +
        ggplot2::geom_abline(slope = 1, intercept = 0, colour = "grey60", linetype = "dashed") +
        ggplot2::geom_step(direction = "vh", colour = "#1b6ca8") +
        ggplot2::coord_equal() +
        ggplot2::labs(title = "Real vs generated classifier",
                      subtitle = sprintf("AUC %.3f (0.5 = indistinguishable)", val[["classifier_auc"]]),
                      x = "false positive rate", y = "true positive rate") +
        theme
    pca <- ggplot2::ggplot(d$pca, ggplot2::aes(x = .data$PC1, y = .data$PC2, colour = .data$origin)) +
        ggplot2::geom_point(size = 0.6, alpha = 0.6) +
        ggplot2::scale_colour_manual(values = colours) +
        ggplot2::labs(title = "Principal components", subtitle = sprintf("kNN mixing %.2f", val[["knn_mixing"]]),
                      colour = NULL) +
        theme + ggplot2::theme(legend.position = "bottom")
    patchwork::wrap_plots(
        scatter("mean_real", "mean_gen", "Gene means", "gene_mean_cor"),
        scatter("var_real", "var_gen", "Gene variances", "gene_var_cor"),
        scatter("zero_real", "zero_gen", "Fractions of zeros", "gene_zero_cor",
                sprintf("; zeros: %.0f%% real, %.0f%% generated", 100 * mean(d$genes$zero_real),
                        100 * mean(d$genes$zero_gen))),
        lib, roc, pca, ncol = 3)
}
