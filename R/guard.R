# The memorisation guard of count models (issue 22): during training, every tenth of
# the epochs, cells are generated around (at most 1,000) training cells with the
# weights of that moment and compared with the training cells (.memorisation_ratio():
# generated-to-nearest-training distance over the training cells' own
# nearest-neighbour distance). Below 0.9 the generator has begun to hand back its
# training cells: training stops and the weights of the last check that passed are
# kept. A data set of more than 20,000 cells, or one on disk, is not checked (copies
# are a small-data failure, and each check would read the data again).
.guard_plan <- function(prep, epochs, seed, threads, max_cells = 1000L) {
    n <- ncol(prep$x_train)
    if (n < 20L || n > 20000L || .is_delayed(prep$x_train) || epochs < 10L) return(NULL)
    idx <- .with_seed(seed, sort(sample.int(n, min(n, max_cells))))
    list(every = max(1L, epochs %/% 10L), cells = idx, seed = seed, threads = threads)
}

# Likelihoods the guard checks: those with a dispersion per gene (the core's gene_params), whose
# generated cells can vary as much as real ones. A Poisson model of over-dispersed
# counts generates cells that vary less, which read as near the training cells at any
# training length.
.guarded_likelihood <- function(likelihood) {
    v <- .vocabulary()$likelihoods
    i <- match(likelihood, v$name)
    !is.na(i) && "dispersion" %in% unlist(v$gene_params[i])
}

# The memorisation ratio of the model with weights `weights` (see .guard_plan()).
.guard_check <- function(plan, spec, weights, prep, epoch) {
    model <- structure(list(spec = spec, weights = weights), class = "exprsgen_model")
    handle <- .eg_model_new(model, plan$threads)
    idx <- plan$cells
    x <- prep$x_train[, idx, drop = FALSE]
    conds <- .train_conditions(prep)
    cols <- .condition_columns(.conditions_spec(spec, prep), if (!is.null(conds)) conds[idx, , drop = FALSE])
    enc <- .eg_encode(handle, x, cols, prep$transform)
    lib <- prep$library_size[idx] %||% .col_sums(x)
    .with_seed(plan$seed + epoch, {
        z <- enc$mean + exp(0.5 * enc$log_var) * matrix(stats::rnorm(length(enc$mean)), nrow(enc$mean))
        csc <- .eg_decode_counts(handle, z, cols, log(lib), sample.int(.Machine$integer.max, 1L))
        xg <- methods::new("dgCMatrix", p = csc$p, i = csc$i, x = csc$x, Dim = c(spec$n_genes, length(idx)))
        .memorisation_ratio(x, xg)
    })
}
