#' Plot the training history of a fit
#'
#' The loss per epoch of [fit_vae()], on the training cells and (when there
#' were validation cells) on the validation cells, with its two parts: the
#' reconstruction term and the KL divergence (before multiplying by
#' `regularization`).
#'
#' @param fit The result of [fit_vae()].
#' @param components Logical scalar: also show the reconstruction and KL
#'   parts (one panel each, their own y scales).
#'
#' @return A ggplot object.
#' @seealso [fit_vae()], [plot_assess()]
#' @examples
#' set.seed(1)
#' x <- matrix(rexp(60 * 50), 60, 50)
#' fit <- fit_vae(x_train = x, epochs = 10, batch_size = 16,
#'                validation_split = 0.2, verbose = FALSE)
#' plot_history(fit)
#' @export
plot_history <- function(fit, components = TRUE) {
    .check_fit(fit, "fit", data = FALSE)
    components <- .check_flag(components, "components")
    h <- fit$history
    if (nrow(h) == 0L) .abort("{.arg fit} has no epochs in its history.")
    parts <- if (components) c(loss = "loss", reconstruction = "reconstruction", kl = "KL divergence")
             else c(loss = "loss")
    bad <- names(parts)[!vapply(names(parts), function(p) is.numeric(h[[p]]) && length(h[[p]]) == nrow(h), logical(1))]
    if (!is.numeric(h$epoch)) bad <- c("epoch", bad)
    if (length(bad)) {
        .abort(c("{.arg fit} is not a fit of {.fn fit_vae}: its history has no numeric column{?s} {.field {bad}}.",
                 i = "{.arg components = FALSE} plots the loss alone."),
               class = c("exprsgen_error_invalid_fit", "exprsgen_error_argument"))
    }
    long <- do.call(rbind, lapply(names(parts), function(p) {
        val <- paste0("val_", if (p == "loss") "loss" else p)
        rbind(data.frame(epoch = h$epoch, value = h[[p]], set = "training", part = parts[[p]]),
              if (val %in% names(h) && any(!is.na(h[[val]])))
                  data.frame(epoch = h$epoch, value = h[[val]], set = "validation", part = parts[[p]]))
    }))
    long$part <- factor(long$part, levels = unname(parts))
    long$set <- factor(long$set, levels = c("training", "validation"))
    long <- long[!is.na(long$value), , drop = FALSE]
    p <- ggplot2::ggplot(long, ggplot2::aes(x = .data$epoch, y = .data$value, colour = .data$set)) +
        ggplot2::geom_line() +
        ggplot2::scale_colour_manual(values = c(training = "#1b6ca8", validation = "#d1495b"), drop = TRUE) +
        ggplot2::labs(x = "epoch", y = NULL, colour = NULL) +
        ggplot2::theme_bw() +
        ggplot2::theme(legend.position = "bottom")
    if (nrow(long) <= 2L * length(parts)) p <- p + ggplot2::geom_point()
    if (components) p <- p + ggplot2::facet_wrap(~part, nrow = 1, scales = "free_y")
    if (identical(fit$params$stop_reason, "early_stopping") && !is.na(fit$params$best_epoch %||% NA)) {
        p <- p + ggplot2::geom_vline(xintercept = fit$params$best_epoch, linetype = "dashed", colour = "grey40")
    }
    p
}
