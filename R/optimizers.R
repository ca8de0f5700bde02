#' Optimizers
#'
#' Specifications of the optimizers [fit_vae()] can use, with keras's
#' names and default learning rates. `fit_vae(optimizer = "adam")` is the
#' same as `fit_vae(optimizer = optimizer_adam())`; use the functions to set
#' the learning rate.
#'
#' @param learning_rate Numeric scalar > 0: the step size; `NULL` (the
#'   default) takes keras's default for the optimizer, as the Rust core
#'   defines it (0.001, 0.01 for SGD).
#' @return A list of class `exprsgen_optimizer`.
#' @seealso [fit_vae()]
#' @examples
#' optimizer_adam(learning_rate = 1e-4)
#' @name optimizers
NULL

.optimizer <- function(name, learning_rate) {
    if (is.null(learning_rate)) {
        o <- .vocabulary()$optimizers
        learning_rate <- o$learning_rate[match(name, o$name)]
    }
    structure(list(name = name,
                   learning_rate = .check_positive(learning_rate, "learning_rate")),
              class = "exprsgen_optimizer")
}

#' @rdname optimizers
#' @export
optimizer_adam <- function(learning_rate = NULL) .optimizer("adam", learning_rate)

#' @rdname optimizers
#' @export
optimizer_sgd <- function(learning_rate = NULL) .optimizer("sgd", learning_rate)

#' @rdname optimizers
#' @export
optimizer_rmsprop <- function(learning_rate = NULL) .optimizer("rmsprop", learning_rate)

#' @rdname optimizers
#' @export
optimizer_adagrad <- function(learning_rate = NULL) .optimizer("adagrad", learning_rate)

#' @method print exprsgen_optimizer
#' @export
print.exprsgen_optimizer <- function(x, ...) {
    cat("<exprsgen optimizer> ", x$name, ", learning rate ", format(x$learning_rate), "\n",
        sep = "")
    invisible(x)
}

.as_optimizer <- function(optimizer, call = rlang::caller_env()) {
    if (inherits(optimizer, "exprsgen_optimizer")) {
        if (optimizer$learning_rate <= 0) .abort("{.arg learning_rate} must be positive.", call = call)
        return(optimizer)
    }
    names <- .vocabulary()$optimizers$name
    if (!is.character(optimizer) || length(optimizer) != 1L || !tolower(optimizer) %in% names) {
        .abort(c("{.arg optimizer} must be one of {.val {names}} or an {.fn optimizer_adam}-style object.",
                 x = "Got {.val {format(optimizer)[1]}}."), call = call)
    }
    .optimizer(tolower(optimizer), NULL)
}
