#' exprsgen: generating gene-expression samples with variational autoencoders
#'
#' exprsgen learns gene-expression data with a variational autoencoder (VAE),
#' or a conditional VAE (CVAE) when cell labels are given, and generates
#' synthetic cells. It keeps the functions and arguments of 'VAExprs'
#' ([fit_vae()], [gen_exprs()], [plot_vae()], [plot_aug()]) and trains in a
#' Rust core instead of keras/TensorFlow: no Python is involved.
#'
#' @useDynLib exprsgen, .registration = TRUE
#' @importFrom rlang .data
#' @importClassesFrom Matrix dgCMatrix dgRMatrix
#' @keywords internal
"_PACKAGE"



.onLoad <- function(libname, pkgname) {
    .register_coercions(topenv(environment(.register_coercions)))
}
