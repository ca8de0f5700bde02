#' The likelihoods exprsgen can fit
#'
#' The models of the data given the latent code that [fit_vae()]'s
#' `likelihood` argument accepts, as the Rust core defines them.
#'
#' Scaled likelihoods (`counts` `FALSE`, such as `"bce"`, the default, as
#' VAExprs) model per-gene min-max-scaled values of any non-negative or
#' log-scale expression and generate smooth values on the scale of the
#' training data. Count likelihoods (`counts` `TRUE`, such as `"nb"` and
#' `"zinb"`) model raw UMI counts: the encoder reads `log1p` of
#' library-size-normalised counts (counts per 10,000), the decoder gives
#' per-gene proportions (softmax) that times the cell's library size are the
#' means, the loss is the exact negative log-likelihood, and [gen_exprs()]
#' draws integer counts.
#'
#' @return A data.frame with one row per likelihood: `name`, `counts`
#'   (whether it models raw counts), `parameters` (the parameter blocks it
#'   adds beside the output layer, e.g. a dropout head or a per-gene
#'   dispersion) and `description`.
#' @seealso [fit_vae()]
#' @examples
#' likelihoods()
#' @export
likelihoods <- function() {
    v <- .vocabulary()$likelihoods
    extra <- mapply(function(h, g) paste(c(h, g), collapse = ", "), v$heads, v$gene_params)
    data.frame(name = v$name, counts = v$counts, parameters = unname(extra),
               description = v$description, stringsAsFactors = FALSE)
}
