#' Stop training when a monitored loss has stopped improving
#'
#' The keras callback of the same name, for [fit_vae()]'s `callbacks`
#' argument: training stops once `monitor` has not improved by more than
#' `min_delta` for `patience` epochs in a row.
#'
#' @param monitor Character scalar: `"val_loss"` (the loss on validation
#'   cells; when there are none, the training loss is monitored instead,
#'   with a warning) or `"loss"`.
#' @param min_delta Numeric scalar >= 0: the least decrease that counts as
#'   an improvement.
#' @param patience Integer scalar >= 0: epochs without improvement before
#'   training stops.
#' @param verbose Ignored (accepted for keras compatibility).
#' @param mode Only `"auto"` or `"min"` (losses are minimised).
#' @param baseline Optional numeric scalar: training stops if the monitored
#'   value does not improve on it within `patience` epochs.
#' @param restore_best_weights Logical scalar: if `TRUE`, the returned model
#'   has the weights of the best epoch rather than of the last one.
#'
#' @return A list of class `exprsgen_callback`.
#' @seealso [fit_vae()]
#' @examples
#' callback_early_stopping(monitor = "loss", patience = 5,
#'                         restore_best_weights = TRUE)
#' @export
callback_early_stopping <- function(monitor = "val_loss", min_delta = 0, patience = 0,
                                    verbose = 0, mode = c("auto", "min", "max"),
                                    baseline = NULL, restore_best_weights = FALSE) {
    if (!is.character(monitor) || length(monitor) != 1L || !monitor %in% c("loss", "val_loss")) {
        .abort("{.arg monitor} must be {.val loss} or {.val val_loss}.")
    }
    mode <- match.arg(mode)
    if (mode == "max") .abort("{.arg mode} = {.val max} makes no sense for a loss; use {.val min}.")
    if (!is.null(baseline)) baseline <- .check_number(baseline, "baseline")
    structure(list(type = "early_stopping", monitor = monitor,
                   min_delta = .check_number(min_delta, "min_delta", min = 0),
                   patience = .check_count(patience, "patience", min = 0),
                   baseline = baseline,
                   restore_best_weights = .check_flag(restore_best_weights,
                                                      "restore_best_weights")),
              class = "exprsgen_callback")
}

#' @method print exprsgen_callback
#' @export
print.exprsgen_callback <- function(x, ...) {
    cat("<exprsgen callback> early stopping on ", x$monitor, ", patience ", x$patience,
        if (x$restore_best_weights) ", restoring the best weights", "\n", sep = "")
    invisible(x)
}
