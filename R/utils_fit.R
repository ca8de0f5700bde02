# One validation of fit_vae() results (and their $model) before any use: a fit read
# back from a file, edited or built by hand must fail here with a clear error, not
# deep inside (a length-zero condition, a code out of range, Matrix's C code).

.fit_error <- function(arg, what, call) {
    .abort(c(paste0("{.arg {arg}} is not a valid {.fn fit_vae} result: ", what, "."),
             i = "Fit the model again with {.fn fit_vae}, or read it back unchanged with {.fn readRDS}."),
           call = call, class = c("exprsgen_error_invalid_fit", "exprsgen_error_argument"))
}

.is_whole <- function(v, min = 0) {
    is.numeric(v) && length(v) >= 1L && !anyNA(v) && all(is.finite(v)) && all(v == round(v)) &&
        all(v >= min) && all(v <= .Machine$integer.max)
}

# A fit's $model (class exprsgen_model): list(spec, weights) as fit_vae() made it.
.check_model <- function(m, arg, call = rlang::caller_env()) {
    bad <- function(what) .fit_error(arg, what, call)
    if (!inherits(m, "exprsgen_model") || !is.list(m)) bad("its model is not an exprsgen model")
    if (!is.null(m$spec) && !is.list(m$spec)) bad("its model has no {.code $spec} list")
    if (!is.list(m$spec)) bad("its model has no {.code $spec} list")
    if (!is.list(m$weights) || !length(m$weights)) bad("its model has no {.code $weights} list")
    s <- m$spec
    for (f in c("n_genes", "latent_dim")) {
        if (!.is_whole(s[[f]], 1) || length(s[[f]]) != 1L) bad(paste0("{.code $spec$", f, "} is not a positive whole number"))
    }
    if (!.is_whole(s$n_classes, 0) || length(s$n_classes) != 1L) bad("{.code $spec$n_classes} is not a whole number")
    if (!.is_whole(s$encoder_units, 1) || !.is_whole(s$decoder_units, 1)) bad("its layer sizes are not positive whole numbers")
    if (!is.character(s$encoder_activation) || length(s$encoder_activation) != length(s$encoder_units) ||
        !is.character(s$decoder_activation) || length(s$decoder_activation) != length(s$decoder_units)) {
        bad("its activations do not match its layers")
    }
    if (s$decoder_units[length(s$decoder_units)] != s$n_genes) bad("its output layer does not have one unit per gene")
    if (!is.character(s$likelihood) || length(s$likelihood) != 1L ||
        !s$likelihood %in% .vocabulary()$likelihoods$name) {
        bad("{.code $spec$likelihood} is not a likelihood exprsgen knows")
    }
    if (!is.null(s$conditions)) {
        cs <- s$conditions
        if (!is.list(cs)) bad("{.code $spec$conditions} is not one exprsgen makes")
        lv_ok <- is.list(cs$labels) && (!length(cs$labels) || !is.null(names(cs$labels))) &&
            all(vapply(cs$labels, function(l) is.character(l) && length(l) >= 1L && !anyNA(l), logical(1)))
        cov <- cs$covariates
        cov_ok <- is.data.frame(cov) && all(c("name", "center", "scale", "min", "max") %in% names(cov)) &&
            all(vapply(cov[c("center", "scale", "min", "max")], function(v) is.numeric(v) && all(is.finite(v)), logical(1))) &&
            all(cov$scale > 0)
        if (!lv_ok || !cov_ok) bad("{.code $spec$conditions} is not one exprsgen makes")
        if (.condition_width(cs) != s$n_classes) bad("its conditions do not match {.code $spec$n_classes}")
        if (!identical(if (length(cs$labels)) cs$labels[[1]] else character(0), as.character(s$classes))) {
            bad("{.code $spec$classes} are not the levels of its first label")
        }
    } else if (s$n_classes > 0 && (!is.character(s$classes) || length(s$classes) != s$n_classes || anyNA(s$classes))) {
        bad("{.code $spec$classes} does not hold one name per class")
    }
    b <- tryCatch(.blocks(s), error = function(e) bad(paste0("its architecture is not valid (", conditionMessage(e), ")")))
    ok <- vapply(m$weights, function(w) is.list(w) && all(vapply(w, is.numeric, logical(1))), logical(1))
    if (!all(ok)) bad("its weights are not numeric arrays")
    # (checked here, naming the argument, rather than by the core)
    if (length(m$weights) != nrow(b)) bad(paste0("it has ", length(m$weights), " weight blocks where its architecture has ", nrow(b)))
    for (i in seq_len(nrow(b))) {
        w <- m$weights[[i]]
        if (!identical(as.numeric(dim(w$kernel)), as.numeric(c(b$n_in[i], b$n_out[i]))) || length(w$bias) != b$n_out[i]) {
            bad(sprintf("the weights of its layer '%s' are not the %g x %g kernel and %g biases its architecture needs",
                        b$name[i], b$n_in[i], b$n_out[i], b$n_out[i]))
        }
    }
    invisible(m)
}

# `data`: the training cells are going to be read (on disk: their files are checked).
.check_fit <- function(x, arg = "x", call = rlang::caller_env(), data = TRUE) {
    if (!inherits(x, "exprsgen_fit")) {
        .abort("{.arg {arg}} must be the result of {.fn fit_vae}, not {.cls {class(x)[1]}}.", call = call)
    }
    bad <- function(what) .fit_error(arg, what, call)
    if (!is.list(x)) bad("it is not a list")
    missing_parts <- setdiff(c("model", "preprocessing", "history", "params"), names(x))
    if (length(missing_parts)) bad(paste0("it has no ", paste0("{.code $", missing_parts, "}", collapse = ", ")))
    .check_model(x$model, arg, call)
    s <- x$model$spec
    p <- x$preprocessing
    if (!is.list(p)) bad("its {.code $preprocessing} is not a list")
    if (!is.list(p$transform)) bad("{.code $preprocessing$transform} is not one exprsgen makes")
    xt <- p$x_train
    if (!(is.matrix(xt) || methods::is(xt, "Matrix") || .is_delayed(xt))) bad("its training cells are missing")
    if (methods::is(xt, "sparseMatrix")) .check_sparse(xt, paste0(arg, "$preprocessing$x_train"), call)
    if (data) .check_data_files(p, arg, call)
    genes_dim <- if (isTRUE(p$cells_in_rows)) ncol(xt) else nrow(xt)
    n_cells <- if (isTRUE(p$cells_in_rows)) nrow(xt) else ncol(xt)
    if (genes_dim != s$n_genes || n_cells < 1L) bad("its training cells do not have the model's genes")
    if (!is.character(p$genes) || length(p$genes) != s$n_genes) bad("{.code $preprocessing$genes} does not name the model's genes")
    type <- p$transform$type
    if (!is.character(type) || length(type) != 1L || !type %in% c("counts", "minmax")) {
        bad("{.code $preprocessing$transform} is not one exprsgen makes")
    }
    if (identical(type, "counts") != isTRUE(.is_count_likelihood(s$likelihood))) {
        bad("its preprocessing does not match its likelihood")
    }
    ts <- p$transform$target_sum
    if (type == "counts" && !(is.numeric(ts) && length(ts) == 1L && is.finite(ts) && ts > 0)) {
        bad("{.code $preprocessing$transform$target_sum} is not a positive number")
    }
    if (type == "minmax") {
        mm <- p$minmax
        if (!is.list(mm) || !is.numeric(mm$min) || !is.numeric(mm$max) ||
            length(mm$min) != s$n_genes || length(mm$max) != s$n_genes) {
            bad("{.code $preprocessing$minmax} does not hold one range per gene")
        }
    } else if (!is.null(p$library_size) &&
               (!is.numeric(p$library_size) || length(p$library_size) != n_cells ||
                anyNA(p$library_size) || any(p$library_size <= 0))) {
        bad("{.code $preprocessing$library_size} does not hold one positive size per training cell")
    }
    if (length(s$classes) > 0) {
        y <- p$y_train
        if (!is.factor(y) || length(y) != n_cells || anyNA(y) || !identical(levels(y), s$classes)) {
            bad("its training labels do not match the model's classes")
        }
    }
    if (!is.null(s$conditions) && .has_conditions(s$conditions)) {
        conds <- p$conditions
        cs <- s$conditions
        label_ok <- function(nm) {
            v <- conds[[nm]]
            is.factor(v) && !anyNA(v) && all(levels(v) %in% cs$labels[[nm]])
        }
        covariate_ok <- function(nm) is.numeric(conds[[nm]]) && all(is.finite(conds[[nm]]))
        ok <- is.data.frame(conds) && nrow(conds) == n_cells && identical(names(conds), .condition_names(cs)) &&
            all(vapply(names(cs$labels), label_ok, logical(1))) &&
            all(vapply(cs$covariates$name, covariate_ok, logical(1)))
        if (!ok) bad("its training cells' conditions do not match the model's")
    }
    if (!is.null(x$latent)) {
        lat_ok <- function(m) is.matrix(m) && is.double(m) && identical(dim(m), c(n_cells, as.integer(s$latent_dim))) && all(is.finite(m))
        if (!is.list(x$latent) || !lat_ok(x$latent$mean) || !lat_ok(x$latent$log_var)) {
            bad("its {.code $latent} does not hold the training cells' latent codes")
        }
    }
    if (!is.data.frame(x$history)) bad("its {.code $history} is not a data frame")
    if (!is.list(x$params)) bad("its {.code $params} is not a list")
    invisible(x)
}

# gen_exprs() results (or VAExprs-style lists with x_gen and x_train), checked once
# before as_sce(), plot_aug() or assess_aug() read them.
.check_gen <- function(x, arg = "x", call = rlang::caller_env()) {
    if (!is.list(x) || !all(c("x_gen", "x_train") %in% names(x))) {
        .abort("{.arg {arg}} must be the result of {.fn gen_exprs}.", call = call)
    }
    bad <- function(what) {
        .abort(c(paste0("{.arg {arg}} is not a valid {.fn gen_exprs} result: ", what, "."),
                 i = "Generate the cells again with {.fn gen_exprs}."),
               call = call, class = c("exprsgen_error_invalid_gen", "exprsgen_error_argument"))
    }
    for (part in c("x_gen", "x_train")) {
        m <- x[[part]]
        # (the training cells of a fit to on-disk data stay on disk: a DelayedMatrix)
        delayed_ok <- part == "x_train" && .is_delayed(m) && length(dim(m)) == 2L &&
            DelayedArray::type(m) %in% c("double", "integer", "logical")
        if (!((is.matrix(m) && (is.numeric(m) || is.logical(m))) || methods::is(m, "Matrix") || delayed_ok)) {
            bad(paste0("{.code $", part, "} is not a numeric matrix"))
        }
        if (methods::is(m, "sparseMatrix")) .check_sparse(m, paste0(arg, "$", part), call)
        if (ncol(m) < 1L) bad(paste0("{.code $", part, "} has no genes"))
    }
    if (ncol(x$x_gen) != ncol(x$x_train)) {
        bad("{.code $x_gen} has {ncol(x$x_gen)} genes but {.code $x_train} has {ncol(x$x_train)}")
    }
    for (part in c("y_gen", "y_train")) {
        y <- x[[part]]
        n <- nrow(x[[if (part == "y_gen") "x_gen" else "x_train"]])
        if (!is.null(y) && (!is.atomic(y) || !is.null(dim(y)) || length(y) != n || anyNA(y))) {
            bad(paste0("{.code $", part, "} does not hold one label per cell"))
        }
    }
    if (is.null(x$y_gen) != is.null(x$y_train)) bad("it has labels for only one of its generated and training cells")
    for (part in c("conditions_gen", "conditions_train")) {
        cd <- x[[part]]
        n <- nrow(x[[if (part == "conditions_gen") "x_gen" else "x_train"]])
        if (!is.null(cd) && (!is.data.frame(cd) || nrow(cd) != n || anyNA(cd))) {
            bad(paste0("{.code $", part, "} does not hold the conditions of each cell"))
        }
    }
    invisible(x)
}

# The training cells' latent means and log-variances (cells x latent matrices) under
# `model`, encoded by the core (`threads`, or an open `handle`).
.encode_training <- function(model, prep, threads = 1L, handle = .eg_model_new(model, threads)) {
    cs <- .conditions_spec(model$spec, prep)
    enc <- .encode_cells(handle, prep, .condition_columns(cs, .train_conditions(prep)))
    list(mean = enc$mean, log_var = enc$log_var)
}

# The training cells' codes of a fit: those fit_vae() kept (`$latent`), or, for a fit
# saved by a version that did not keep them, encoded now.
.training_latent <- function(x, handle, prep = .upgrade_preprocessing(x$preprocessing)) {
    x$latent %||% .encode_training(x$model, prep, handle = handle)
}

# Evaluates `expr` with R's random number generator seeded from `seed` (a whole
# number up to 2^53), leaving the caller's random state as it was.
.with_seed <- function(seed, expr) {
    # withr restores the caller's random stream (or its absence) and RNG kind afterwards
    withr::with_seed(as.integer(seed %% .Machine$integer.max), expr)
}
