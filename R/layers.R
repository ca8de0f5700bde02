#' Layer specifications for the encoder and the decoder
#'
#' Small constructors with the names and arguments of their keras
#' counterparts, so that VAExprs code such as
#' `list(layer_input(shape = c(1000)), layer_dense(units = 512, activation = "relu"))`
#' works unchanged. They return plain specifications (lists) that
#' [fit_vae()] turns into a model; nothing is built until then.
#'
#' The encoder is `layer_input()` followed by any number of `layer_dense()`;
#' the latent layers (`z_mean`, `z_log_var`) are added by [fit_vae()]. The
#' decoder is one or more `layer_dense()`, the last with as many units as
#' there are genes (usually `activation = "sigmoid"`, as the data are scaled
#' to \[0, 1\]). For a conditional VAE the one-hot labels are appended to the
#' inputs of both encoder and decoder automatically.
#'
#' A hidden `layer_dense()` (of the encoder, or of the decoder but its output
#' layer) may be followed by a normalisation and then `layer_dropout()`, in
#' that order; both act on the layer's output after its activation. The
#' normalisation is `layer_layer_normalization()` (each cell's values of that
#' layer centred and scaled to unit variance, then scaled and shifted per unit
#' by trained weights, as keras's `LayerNormalization` with `epsilon = 1e-3`)
#' or `layer_batch_normalization()` (keras's `BatchNormalization`: in each
#' training step every unit is centred and scaled by its mean and variance
#' over the minibatch's cells, then scaled and shifted by trained weights, and
#' its moving mean and variance move towards the minibatch's by `moving =
#' momentum * moving + (1 - momentum) * batch`; encoding, decoding,
#' generation and validation losses use the moving statistics, so that each
#' cell is treated on its own). Both are trained in the fused step, which the
#' tests check against the same model in burn.
#'
#' `layer_activation()` after a normalisation applies an activation to its
#' output (keras's `Activation` layer), so that the normalisation can come
#' between a linear `layer_dense()` and its activation: with it scVI's layers
#' are written as they are (a linear map, batch normalisation, ReLU, dropout;
#' see the example). Right after a linear `layer_dense()` it is that layer's
#' activation.
#'
#' @param shape Integer scalar: the number of genes (the width of one cell).
#'   A vector of length one, as keras accepts, is fine.
#' @param units Integer scalar: the number of units (output width).
#' @param activation Character scalar: an activation of the Rust core:
#'   `"relu"`, `"sigmoid"`, `"tanh"`, `"elu"`, `"softplus"` or `"linear"`
#'   (also `"identity"`, or `NULL`, meaning linear, as in keras).
#' @param name Optional character scalar: a name shown by [plot_vae()].
#' @param ... Other keras arguments are not supported and give an error.
#'
#' @return A list of class `exprsgen_layer`.
#' @seealso [fit_vae()]
#' @examples
#' encoder <- list(layer_input(shape = 100), layer_dense(32, "relu"))
#' decoder <- list(layer_dense(32, "relu"), layer_dense(100, "sigmoid"))
#' encoder[[2]]
#' # normalisation and dropout after a hidden layer
#' encoder <- list(layer_input(shape = 100), layer_dense(64, "relu"),
#'                 layer_layer_normalization(), layer_dropout(0.1))
#' # scVI's encoder and decoder layers: 128 units, batch normalisation
#' # (momentum 0.99 and epsilon 0.001, as scVI's), ReLU, dropout 0.1
#' encoder <- list(layer_input(shape = 100), layer_dense(128),
#'                 layer_batch_normalization(momentum = 0.99, epsilon = 0.001),
#'                 layer_activation("relu"), layer_dropout(0.1))
#' decoder <- list(layer_dense(128), layer_batch_normalization(),
#'                 layer_activation("relu"), layer_dense(100))
#' @name layers
NULL

#' @rdname layers
#' @export
layer_input <- function(shape, name = NULL, ...) {
    .no_dots(...)
    if (missing(shape)) .abort("{.arg shape} is missing: give the number of genes.")
    shape <- .check_count(shape, "shape")
    structure(list(type = "input", units = shape, activation = "linear",
                   name = .check_name(name)), class = "exprsgen_layer")
}

#' @rdname layers
#' @export
layer_dense <- function(units, activation = NULL, name = NULL, ...) {
    .no_dots(...)
    if (missing(units)) .abort("{.arg units} is missing.")
    units <- .check_count(units, "units")
    activation <- .check_activation(activation)
    structure(list(type = "dense", units = units, activation = activation,
                   name = .check_name(name)), class = "exprsgen_layer")
}

#' @rdname layers
#' @param rate Numeric scalar in \[0, 1): the fraction of the previous layer's
#'   units set to 0 in each training step (the others scaled by
#'   `1 / (1 - rate)`, as keras does); no unit is dropped when the model
#'   encodes, decodes or generates, nor in validation losses.
#' @export
layer_dropout <- function(rate, name = NULL, ...) {
    .no_dots(...)
    if (missing(rate)) .abort("{.arg rate} is missing: the fraction of units to drop.")
    rate <- .check_number(rate, "rate", min = 0, max = 1, max_open = TRUE)
    structure(list(type = "dropout", rate = rate, name = .check_name(name)),
              class = "exprsgen_layer")
}

#' @rdname layers
#' @export
layer_layer_normalization <- function(name = NULL, ...) {
    .no_dots(...)
    structure(list(type = "normalization", norm = "layer", name = .check_name(name)),
              class = "exprsgen_layer")
}

#' @rdname layers
#' @param momentum Numeric scalar in \[0, 1\]: how much of the moving mean
#'   and variance each training step keeps (keras's default 0.99).
#' @param epsilon Positive numeric scalar added to the variance before its
#'   square root (keras's default 0.001).
#' @export
layer_batch_normalization <- function(momentum = 0.99, epsilon = 0.001, name = NULL, ...) {
    .no_dots(...)
    momentum <- .check_number(momentum, "momentum", min = 0, max = 1)
    epsilon <- .check_number(epsilon, "epsilon", min = 0)
    if (!(epsilon > 0)) .abort("{.arg epsilon} must be a positive number.")
    structure(list(type = "normalization", norm = "batch", momentum = momentum, epsilon = epsilon,
                   name = .check_name(name)),
              class = "exprsgen_layer")
}

#' @rdname layers
#' @export
layer_activation <- function(activation, name = NULL, ...) {
    .no_dots(...)
    if (missing(activation)) .abort("{.arg activation} is missing.")
    structure(list(type = "activation", activation = .check_activation(activation), name = .check_name(name)),
              class = "exprsgen_layer")
}

#' @method print exprsgen_layer
#' @export
print.exprsgen_layer <- function(x, ...) {
    if (x$type == "input") {
        cat("<exprsgen layer> input, shape (None, ", x$units, ")\n", sep = "")
    } else if (x$type == "dropout") {
        cat("<exprsgen layer> dropout, rate ", x$rate, "\n", sep = "")
    } else if (x$type == "activation") {
        cat("<exprsgen layer> activation, ", x$activation, "\n", sep = "")
    } else if (x$type == "normalization" && identical(x$norm, "batch")) {
        cat("<exprsgen layer> batch normalization, momentum ", x$momentum, ", epsilon ", x$epsilon, "\n", sep = "")
    } else if (x$type == "normalization") {
        cat("<exprsgen layer> layer normalization\n", sep = "")
    } else {
        cat("<exprsgen layer> dense, ", x$units, " units, ", x$activation,
            " activation\n", sep = "")
    }
    invisible(x)
}

.check_activation <- function(activation, arg = "activation", call = rlang::caller_env()) {
    if (is.null(activation)) return("linear")
    v <- .vocabulary()$activations
    aliases <- unlist(v$aliases)
    canonical <- c(v$name, rep(v$name, lengths(v$aliases)))
    if (!is.character(activation) || length(activation) != 1L || is.na(activation) ||
        !activation %in% c(v$name, aliases)) {
        shown <- if (is.character(activation)) activation[1] else class(activation)[1]
        .abort(c("{.arg {arg}} must be one of {.val {v$name}}.",
                 x = "Got {.val {shown}}."), call = call)
    }
    canonical[match(activation, c(v$name, aliases))]
}

.check_name <- function(name, call = rlang::caller_env()) {
    if (is.null(name)) return(NULL)
    if (!is.character(name) || length(name) != 1L || is.na(name)) {
        .abort("{.arg name} must be a character scalar.", call = call)
    }
    name
}

.no_dots <- function(..., call = rlang::caller_env()) {
    dots <- list(...)
    if (length(dots)) {
        nm <- names(dots)
        nm <- if (is.null(nm)) rep("", length(dots)) else nm
        nm[nm == ""] <- "(unnamed)"
        .abort("Unsupported argument{?s}: {.arg {nm}}.", call = call)
    }
}
