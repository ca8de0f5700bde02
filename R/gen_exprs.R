#' Generate synthetic cells from a fitted VAE
#'
#' As VAExprs's `gen_exprs()`: the training cells are encoded (latent means),
#' a Gaussian mixture is fitted to them by BIC with [mclust::Mclust()]
#' (separately for each class of a conditional VAE), latent codes are drawn
#' from the mixture and decoded by the Rust core, and the min-max scaling is
#' undone, so that generated values are on the scale of the training data
#' (log-normalised expression for a `"counts"` assay).
#'
#' For a conditional VAE the generated cells are split among the classes in
#' the proportions of the training cells (largest remainders, so that the
#' numbers add up to `num_samples`). A class whose cells cannot support a
#' mixture (a single cell, or cells mclust cannot fit) is sampled from the
#' encoder's posterior distributions of its cells instead.
#'
#' @param x The result of [fit_vae()] (also after [saveRDS()]/[readRDS()]).
#' @param num_samples Integer scalar: the number of cells to generate.
#' @param batch_size Ignored; kept for compatibility with VAExprs (decoding
#'   runs in the Rust core in blocks of its own).
#' @param use_generator Ignored; kept for compatibility with VAExprs.
#'
#' @return A list, as in VAExprs:
#' \describe{
#'   \item{`x_gen`}{Numeric matrix of generated cells, cells in rows and
#'     genes in columns (named `gen1`, `gen2`, ... and by gene).}
#'   \item{`y_gen`}{Factor of the generated cells' labels (`NULL` for a
#'     plain VAE).}
#'   \item{`x_train`}{The training cells on the same scale, cells in rows.}
#'   \item{`y_train`}{Factor of the training labels (or `NULL`).}
#'   \item{`latent_vector`}{The training cells' latent means, cells in rows.}
#' }
#' Results are reproducible: call [set.seed()] first.
#' @seealso [fit_vae()], [plot_aug()]
#' @examples
#' set.seed(1)
#' x <- matrix(rexp(60 * 50), 60, 50)
#' fit <- fit_vae(x_train = x,
#'                encoder_layers = list(layer_input(shape = 50),
#'                                      layer_dense(16, "relu")),
#'                decoder_layers = list(layer_dense(16, "relu"),
#'                                      layer_dense(50, "sigmoid")),
#'                epochs = 5, batch_size = 16, verbose = FALSE)
#' gen <- gen_exprs(fit, num_samples = 10)
#' dim(gen$x_gen)
#' @export
gen_exprs <- function(x, num_samples, batch_size = NULL, use_generator = FALSE) {
    if (!inherits(x, "exprsgen_fit")) {
        .abort("{.arg x} must be the result of {.fn fit_vae}, not {.cls {class(x)[1]}}.")
    }
    if (missing(num_samples)) .abort("{.arg num_samples} is missing.")
    num_samples <- .check_count(num_samples, "num_samples")
    if (!is.null(batch_size)) .check_count(batch_size, "batch_size")
    .check_flag(use_generator, "use_generator")
    spec <- x$model$spec
    w <- x$model$weights
    prep <- x$preprocessing
    codes <- if (spec$n_classes) as.integer(prep$y_train) else NULL

    enc <- .eg_encode(spec, w, prep$x_train, prep$cells_in_rows, codes, prep$minmax)
    cells <- if (prep$cells_in_rows) rownames(prep$x_train) else colnames(prep$x_train)
    latent <- enc$mean
    dimnames(latent) <- list(cells, paste("latent", seq_len(spec$latent_dim)))

    if (spec$n_classes == 0L) {
        y_gen <- NULL
        gen_codes <- NULL
        z <- .sample_latent(latent, enc$log_var, num_samples, "the training cells")
    } else {
        counts <- .allocate(tabulate(codes, spec$n_classes), num_samples)
        gen_codes <- rep(seq_len(spec$n_classes), counts)
        z <- matrix(0, num_samples, spec$latent_dim)
        for (k in which(counts > 0)) {
            in_k <- codes == k
            z[gen_codes == k, ] <- .sample_latent(latent[in_k, , drop = FALSE],
                                                  enc$log_var[in_k, , drop = FALSE], counts[k],
                                                  paste0("class {.val ", spec$classes[k], "}"))
        }
        y_gen <- factor(spec$classes[gen_codes], levels = spec$classes)
    }
    x_gen <- .eg_decode(spec, w, z, gen_codes, prep$minmax, cells_in_rows = TRUE)
    dimnames(x_gen) <- list(paste0("gen", seq_len(num_samples)), prep$genes)
    x_train <- if (prep$cells_in_rows) prep$x_train else t(prep$x_train)
    list(x_gen = x_gen, y_gen = y_gen, x_train = x_train, y_train = prep$y_train,
         latent_vector = latent)
}

# Split n among classes in proportion to `sizes` (largest remainders).
.allocate <- function(sizes, n) {
    share <- n * sizes / sum(sizes)
    out <- floor(share)
    left <- n - sum(out)
    if (left > 0) {
        extra <- order(share - out, sizes, decreasing = TRUE)[seq_len(left)]
        out[extra] <- out[extra] + 1
    }
    as.integer(out)
}

# n latent codes: from a Gaussian mixture fitted by BIC to the latent means, or,
# where mclust cannot fit one, from the posteriors of randomly chosen cells.
.sample_latent <- function(mean, log_var, n, what) {
    fit <- NULL
    if (nrow(mean) >= 2L) {
        fit <- tryCatch(suppressWarnings(.mclust_fit(mean)), error = function(e) NULL)
        if (!is.null(fit) && is.null(fit$modelName)) fit <- NULL
    }
    if (!is.null(fit)) {
        z <- .mclust_sim(fit, n)
        return(unname(z[, -1, drop = FALSE]))
    }
    cli::cli_inform(c(i = paste0("No Gaussian mixture could be fitted for ", what,
                                 " ({nrow(mean)} cell{?s}): sampling from the cells' posteriors instead.")))
    idx <- sample.int(nrow(mean), n, replace = TRUE)
    noise <- matrix(stats::rnorm(n * ncol(mean)), n, ncol(mean))
    mean[idx, , drop = FALSE] + exp(0.5 * log_var[idx, , drop = FALSE]) * noise
}

# mclust evaluates calls to its own functions (mclustBIC, summaryMclustBIC, simEII,
# ...) in the caller's frame, so they are found only when mclust is attached. These
# two wrappers run in mclust's namespace instead of attaching it.
.in_mclust <- function(f) {
    environment(f) <- asNamespace("mclust")
    f
}
.mclust_fit <- function(data) .in_mclust(function(data) mclust::Mclust(data, verbose = FALSE))(data)
.mclust_sim <- function(model, n) {
    .in_mclust(function(m, n) mclust::sim(modelName = m$modelName, parameters = m$parameters, n = n))(model, n)
}

# Reconstruction of the training cells (latent means decoded with their own
# labels), cells in rows, on the scale of the training data.
.reconstruct <- function(fit) {
    spec <- fit$model$spec
    prep <- fit$preprocessing
    codes <- if (spec$n_classes) as.integer(prep$y_train) else NULL
    enc <- .eg_encode(spec, fit$model$weights, prep$x_train, prep$cells_in_rows, codes, prep$minmax)
    .eg_decode(spec, fit$model$weights, enc$mean, codes, prep$minmax, cells_in_rows = TRUE)
}
