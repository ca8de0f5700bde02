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

#' Reduce the learning rate when a monitored loss has stopped improving
#'
#' The keras callback of the same name, for [fit_vae()]'s `callbacks`
#' argument: once `monitor` has not improved by more than `min_delta` for
#' `patience` epochs in a row, the learning rate is multiplied by `factor`
#' (never below `min_lr`), and the count starts again after `cooldown`
#' epochs. The optimizer's state (e.g. Adam's moments) is kept. The learning
#' rate of each epoch is in the fit's `history$learning_rate`.
#'
#' @inheritParams callback_early_stopping
#' @param factor Numeric scalar in (0, 1): the learning rate is multiplied by
#'   it on a plateau.
#' @param patience Integer scalar >= 1: epochs without improvement before the
#'   learning rate is reduced.
#' @param cooldown Integer scalar >= 0: epochs after a reduction before
#'   epochs without improvement count again.
#' @param min_lr Numeric scalar >= 0: the lowest learning rate.
#'
#' @return A list of class `exprsgen_callback`.
#' @seealso [fit_vae()], [callback_early_stopping()]
#' @examples
#' callback_reduce_lr_on_plateau(monitor = "loss", factor = 0.5, patience = 5)
#' @export
callback_reduce_lr_on_plateau <- function(monitor = "val_loss", factor = 0.1, patience = 10,
                                          verbose = 0, mode = c("auto", "min", "max"),
                                          min_delta = 1e-4, cooldown = 0, min_lr = 0) {
    if (!is.character(monitor) || length(monitor) != 1L || !monitor %in% c("loss", "val_loss")) {
        .abort("{.arg monitor} must be {.val loss} or {.val val_loss}.")
    }
    mode <- match.arg(mode)
    if (mode == "max") .abort("{.arg mode} = {.val max} makes no sense for a loss; use {.val min}.")
    factor <- .check_number(factor, "factor", min = 0, max = 1)
    if (factor <= 0 || factor >= 1) .abort("{.arg factor} must be between 0 and 1 (exclusive), not {factor}.")
    structure(list(type = "reduce_lr_on_plateau", monitor = monitor, factor = factor,
                   patience = .check_count(patience, "patience", min = 1),
                   min_delta = .check_number(min_delta, "min_delta", min = 0),
                   cooldown = .check_count(cooldown, "cooldown", min = 0),
                   min_lr = .check_number(min_lr, "min_lr", min = 0)),
              class = "exprsgen_callback")
}

#' @method print exprsgen_callback
#' @export
print.exprsgen_callback <- function(x, ...) {
    if (identical(x$type, "model_checkpoint")) {
        cat("<exprsgen callback> checkpoint to ", x$filepath, " every ",
            if (x$save_freq == 1L) "epoch" else paste(x$save_freq, "epochs"), "\n", sep = "")
    } else if (identical(x$type, "reduce_lr_on_plateau")) {
        cat("<exprsgen callback> learning rate x ", x$factor, " after ", x$patience,
            " epochs without improvement of ", x$monitor, "\n", sep = "")
    } else {
        cat("<exprsgen callback> early stopping on ", x$monitor, ", patience ", x$patience,
            if (x$restore_best_weights) ", restoring the best weights", "\n", sep = "")
    }
    invisible(x)
}
