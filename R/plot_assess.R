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
    r_text <- function(metric) {
        if (is.finite(val[[metric]])) sprintf("r = %.3f", val[[metric]]) else "r undefined"
    }
    scatter <- function(a, b, title, metric, note = NULL) {
        g <- data.frame(real = d$genes[[a]], generated = d$genes[[b]])
        ggplot2::ggplot(g, ggplot2::aes(x = .data$real, y = .data$generated)) +
            ggplot2::geom_abline(slope = 1, intercept = 0, colour = "grey60") +
            ggplot2::geom_point(size = 0.5, alpha = 0.4) +
            ggplot2::labs(title = title, subtitle = paste0(r_text(metric), note %||% "\n"),
                          x = "real", y = "generated") +
            theme
    }
    # Fractions of zeros: smooth models (bce, mse) generate no exact zeros, and the
    # panel says so instead of drawing a line at 0.
    zero_real <- 100 * mean(d$genes$zero_real)
    zero_gen <- 100 * mean(d$genes$zero_gen)
    zeros <- scatter("zero_real", "zero_gen", "Fractions of zeros", "gene_zero_cor",
                     sprintf("\n%.0f%% real, %.0f%% generated", zero_real, zero_gen))
    if (all(d$genes$zero_gen == 0) || all(d$genes$zero_real == 0)) {
        which_none <- if (all(d$genes$zero_gen == 0)) "generated" else "real"
        zeros <- zeros +
            ggplot2::annotate("label", x = mean(range(d$genes$zero_real)), y = mean(range(d$genes$zero_gen)),
                              label = paste0("no zeros in the\n", which_none, " cells",
                                             if (which_none == "generated") "\n(smooth values):" else ":",
                                             "\nnothing to compare"),
                              size = 2.6, label.size = 0.2, fill = "white", alpha = 0.9)
    }
    cells <- d$cells
    counts <- identical(d$transform, "counts")
    lib <- ggplot2::ggplot(cells, ggplot2::aes(x = .data$library_size, colour = .data$origin)) +
        ggplot2::geom_density() +
        ggplot2::scale_colour_manual(values = colours) +
        ggplot2::labs(title = if (counts) "Library sizes" else "Cell totals",
                      subtitle = if (counts) sprintf("KS distance %.3f\n", val[["library_size_ks"]]) else "sum of each cell's values\n",
                      x = if (counts) "counts per cell" else "sum of values", colour = NULL) +
        theme + ggplot2::theme(legend.position = "bottom")
    if (counts) lib <- lib + ggplot2::scale_x_log10()
    roc <- ggplot2::ggplot(d$roc, ggplot2::aes(x = .data$fpr, y = .data$tpr)) +
        ggplot2::geom_abline(slope = 1, intercept = 0, colour = "grey60", linetype = "dashed") +
        ggplot2::geom_step(direction = "vh", colour = "#1b6ca8") +
        ggplot2::labs(title = "Real vs generated",
                      subtitle = sprintf("classifier AUC %.3f\n(0.5: cannot tell)", val[["classifier_auc"]]),
                      x = "false positive rate", y = "true positive rate") +
        theme
    pca <- ggplot2::ggplot(d$pca, ggplot2::aes(x = .data$PC1, y = .data$PC2, colour = .data$origin)) +
        ggplot2::geom_point(size = 0.6, alpha = 0.6) +
        ggplot2::scale_colour_manual(values = colours) +
        ggplot2::labs(title = "Principal components", subtitle = sprintf("kNN mixing %.2f\n(1: well mixed)", val[["knn_mixing"]]),
                      colour = NULL) +
        theme + ggplot2::theme(legend.position = "bottom")
    patchwork::wrap_plots(
        scatter("mean_real", "mean_gen", "Gene means", "gene_mean_cor"),
        scatter("var_real", "var_gen", "Gene variances", "gene_var_cor"),
        zeros, lib, roc, pca, ncol = 3)
}
