# Conditions of a conditional model: one or several categorical labels (each one-hot
# over its levels) and continuous covariates (centred and scaled with the training
# cells' mean and standard deviation), fed to the encoder and the decoder side by side
# as one condition row (the core's data/conditions.rs). The first label is the
# primary one (`spec$classes`, `y_train`, `y_gen`): generated cells are split among
# its classes, and their latent codes come from training cells of their class.
#
# The layout lives in the model's spec, as plain R data:
#   spec$conditions = list(labels = list(<name> = <levels>, ...),
#                          covariates = data.frame(name, center, scale, min, max))
# and the cells' values in a data.frame with one column per condition (factors for
# labels, numbers for covariates, as the user gave them).

.no_covariates <- function() {
    data.frame(name = character(0), center = numeric(0), scale = numeric(0),
               min = numeric(0), max = numeric(0), stringsAsFactors = FALSE)
}

# The conditions of a spec; fits made before several conditions have (at most) one
# label, named after the colData column it came from (`prep$label_column`) or "label".
.conditions_spec <- function(spec, prep = NULL) {
    if (!is.null(spec$conditions)) return(spec$conditions)
    labels <- if (spec$n_classes > 0) stats::setNames(list(spec$classes), .label_name(prep)) else list()
    list(labels = labels, covariates = .no_covariates())
}

.label_name <- function(prep) prep$label_column %||% "label"

.condition_names <- function(cs) c(names(cs$labels), cs$covariates$name)

.has_conditions <- function(cs) length(cs$labels) + nrow(cs$covariates) > 0L

# Width of the condition row the core reads: every label's levels, one per covariate.
.condition_width <- function(cs) sum(lengths(cs$labels)) + nrow(cs$covariates)

# The layout of conditions prepared by .gather_conditions() (training cells).
.conditions_layout <- function(conds) {
    if (is.null(conds)) return(list(labels = list(), covariates = .no_covariates()))
    is_label <- vapply(conds, is.factor, logical(1))
    cov <- names(conds)[!is_label]
    stats_of <- function(v) {
        s <- stats::sd(v)
        c(center = mean(v), scale = if (is.finite(s) && s > 0) s else 1, min = min(v), max = max(v))
    }
    st <- matrix(vapply(conds[cov], stats_of, numeric(4)), 4, length(cov),
                 dimnames = list(c("center", "scale", "min", "max"), cov))
    list(labels = lapply(conds[is_label], levels),
         covariates = data.frame(name = cov, center = unname(st["center", ]), scale = unname(st["scale", ]),
                                 min = unname(st["min", ]), max = unname(st["max", ]),
                                 stringsAsFactors = FALSE))
}

# The training (or validation) cells' conditions: a data.frame with one column per
# condition, or NULL. Fits made before several conditions keep their labels in y_train
# only.
.train_conditions <- function(prep, which = c("train", "val")) {
    which <- match.arg(which)
    stored <- prep[[if (which == "train") "conditions" else "conditions_val"]]
    if (!is.null(stored)) return(stored)
    y <- prep[[if (which == "train") "y_train" else "y_val"]]
    if (is.null(y)) return(NULL)
    stats::setNames(data.frame(y), .label_name(prep))
}

# Conditions as the core reads them: a list of factors (labels, with the model's
# levels) and numeric vectors (scaled covariates), in the model's order; NULL without
# conditions. `conds` has been checked (.check_conditions()).
.condition_columns <- function(cs, conds) {
    if (!.has_conditions(cs) || is.null(conds)) return(NULL)
    labels <- lapply(names(cs$labels), function(n) factor(as.character(conds[[n]]), levels = cs$labels[[n]]))
    covs <- lapply(seq_len(nrow(cs$covariates)), function(i) {
        r <- cs$covariates[i, ]
        (as.numeric(conds[[r$name]]) - r$center) / r$scale
    })
    c(labels, covs)
}

# The rows `idx` of core condition columns (NULL stays NULL).
.condition_rows <- function(cols, idx) {
    if (is.null(cols)) return(NULL)
    lapply(cols, function(v) v[idx])
}

# Conditions of training cells from fit_vae()'s arguments: `labels` (NULL, colData
# column names, one label per cell, or a data.frame of labels) and `covariates` (NULL,
# column names, or numbers: a vector, matrix or data.frame with one row per cell).
# `table` holds the columns names refer to (colData(object), or y_train when it is a
# data.frame). Returns a data.frame (factors, then numbers) or NULL.
.gather_conditions <- function(labels, covariates, table, n, labels_arg, call) {
    frame <- function(x) if (methods::is(x, "DataFrame")) as.data.frame(x, optional = TRUE) else x
    table <- frame(table)
    labels <- frame(labels)
    covariates <- frame(covariates)
    named <- function(x) {
        is.character(x) && !is.null(table) && !anyNA(x) && length(x) >= 1L &&
            (length(x) != n || n == 1L && length(x) == 1L && x %in% names(table))
    }
    pick <- function(cols, arg) {
        unknown <- setdiff(cols, names(table))
        if (length(unknown)) {
            where <- if (labels_arg == "labels") "colData(object)" else "y_train"
            .abort(c("{.arg {arg}} names {.val {unknown}}, not {?a column/columns} of {.code {where}}.",
                     i = "Columns: {.val {names(table)}}."), call = call)
        }
        if (anyDuplicated(cols)) .abort("{.arg {arg}} names a column twice.", call = call)
        table[cols]
    }
    # covariates first: a y_train data.frame's columns named there are not labels
    cov <- NULL
    if (!is.null(covariates)) {
        cov <- if (named(covariates)) pick(covariates, "covariates")
               else if (is.data.frame(covariates)) covariates
               else if (is.matrix(covariates)) as.data.frame(covariates)
               else if (is.numeric(covariates) && is.null(dim(covariates))) data.frame(covariate = covariates)
               else .abort("{.arg covariates} must name columns or hold numbers, one row per cell.", call = call)
        if (is.null(names(cov)) || any(!nzchar(names(cov))) || anyNA(names(cov))) {
            names(cov) <- paste0("covariate", seq_along(cov))
        }
        for (nm in names(cov)) {
            v <- cov[[nm]]
            if (!is.numeric(v) || !is.null(dim(v))) .abort("{.arg covariates} column {.val {nm}} must be numeric.", call = call)
            if (length(v) != n) .abort("{.arg covariates} has {length(v)} value{?s} but there {?is/are} {n} cell{?s}.", call = call)
            if (anyNA(v) || any(!is.finite(v))) .abort("{.arg covariates} column {.val {nm}} has missing or infinite values.", call = call)
            cov[[nm]] <- as.numeric(v)
        }
        cov <- as.data.frame(cov, optional = TRUE)
    }
    lab <- NULL
    if (!is.null(labels)) {
        lab <- if (is.data.frame(labels)) labels[setdiff(names(labels), names(cov))]
               else if (named(labels)) pick(labels, labels_arg)
               else stats::setNames(list(labels), "label")
        if (is.data.frame(labels) && (is.null(names(lab)) || any(!nzchar(names(lab))))) {
            .abort("{.arg {labels_arg}} must have named columns.", call = call)
        }
        if (is.data.frame(labels) && !ncol(labels)) {
            .abort("{.arg {labels_arg}} has no columns: give one label per cell, or leave it out for a plain VAE.", call = call)
        }
        if (!length(lab)) lab <- NULL
        for (nm in names(lab)) lab[[nm]] <- .as_labels(lab[[nm]], n, labels_arg, call)
        if (!is.null(lab)) lab <- as.data.frame(lab, optional = TRUE)
    }
    if (is.null(lab) && is.null(cov)) return(NULL)
    out <- if (is.null(lab)) cov else if (is.null(cov)) lab else cbind(lab, cov)
    if (anyDuplicated(names(out))) {
        .abort("A condition appears twice in {.arg {labels_arg}} and {.arg covariates}: {.val {names(out)[duplicated(names(out))]}}.",
               call = call)
    }
    rownames(out) <- NULL
    out
}

# Conditions given for cells (to decode with, or of new cells to encode), checked
# against the model: a data.frame with a column per condition (a vector is the only
# label of a one-label model; one row applies to all `n` cells). With `partial`,
# columns may be left out (the result then holds only those given). Unknown levels and
# missing columns are errors; covariates outside the training range too with `range`.
.check_conditions <- function(cs, conds, n, arg, call, partial = FALSE, range = TRUE) {
    names_all <- .condition_names(cs)
    if (methods::is(conds, "DataFrame")) conds <- as.data.frame(conds, optional = TRUE)
    if (!is.data.frame(conds)) {
        if (length(names_all) != 1L || !is.atomic(conds) || !is.null(dim(conds))) {
            .abort(c("{.arg {arg}} must be a data.frame with a column for each condition of the model.",
                     i = "Conditions: {.val {names_all}}."), call = call)
        }
        conds <- stats::setNames(data.frame(conds, stringsAsFactors = FALSE), names_all)
    }
    unknown_cols <- setdiff(names(conds), names_all)
    if (length(unknown_cols)) {
        .abort(c("{.arg {arg}} has {?a column/columns} the model has no condition for: {.val {unknown_cols}}.",
                 i = "Conditions: {.val {names_all}}."), call = call)
    }
    missing_cols <- setdiff(names_all, names(conds))
    if (!partial && length(missing_cols)) {
        .abort(c("{.arg {arg}} lacks {?the condition/conditions} {.val {missing_cols}}.",
                 i = "Give a column for each condition of the model: {.val {names_all}}."), call = call)
    }
    if (!nrow(conds) %in% c(1L, n)) {
        .abort("{.arg {arg}} has {nrow(conds)} row{?s}: give one, or one per cell ({n}).", call = call)
    }
    out <- list()
    for (nm in intersect(names_all, names(conds))) {
        v <- conds[[nm]]
        if (nm %in% names(cs$labels)) {
            lv <- cs$labels[[nm]]
            v <- as.character(v)
            if (anyNA(v)) .abort("{.arg {arg}} has missing values of {.val {nm}}.", call = call)
            bad <- setdiff(unique(v), lv)
            if (length(bad)) {
                .abort(c("{.arg {arg}}: {.val {nm}} has {?a level/levels} the model was not fitted with: {.val {bad}}.",
                         i = "Levels of {.val {nm}}: {.val {lv}}."), call = call)
            }
            out[[nm]] <- factor(rep_len(v, n), levels = lv)
        } else {
            r <- cs$covariates[cs$covariates$name == nm, ]
            if (!is.numeric(v) || anyNA(v) || any(!is.finite(v))) {
                .abort("{.arg {arg}}: covariate {.val {nm}} must be finite numbers.", call = call)
            }
            if (range && any(v < r$min | v > r$max)) {
                outside <- v[v < r$min | v > r$max][1]
                lo <- signif(r$min, 4)
                hi <- signif(r$max, 4)
                .abort(c("{.arg {arg}}: covariate {.val {nm}} = {.val {outside}} is outside the training range [{lo}, {hi}].",
                         i = "The decoder has not learnt covariate values it was not trained on."), call = call)
            }
            out[[nm]] <- rep_len(as.numeric(v), n)
        }
    }
    as.data.frame(out, optional = TRUE)
}

# Which condition columns each decoder layer reads (the core's
# ModelSpec::decoder_conditions), as 0-based (lo, hi) pairs, one per decoder layer:
#   "first":    all of them into the first layer (the VAExprs CVAE);
#   "all":      all of them into every layer (scVI's deeply injected covariates);
#   "additive": the first label into the first layer, the other labels and the
#               covariates into the output layer (and the likelihood's heads) only, so
#               that their effects add up on the output's (logit) scale.
.decoder_routes <- function(cs, mode, n_layers, call) {
    modes <- c("first", "all", "additive")
    k <- .condition_width(cs)
    mode <- if (is.null(mode)) if (length(.condition_names(cs)) > 1L) "additive" else "first"
            else .check_one_of(mode, modes, "decoder_conditions", call = call)
    routes <- matrix(0L, n_layers, 2L)
    if (k == 0L) return(as.integer(t(routes)))
    primary <- if (length(cs$labels)) length(cs$labels[[1]]) else 0L
    switch(mode,
        first = routes[1, ] <- c(0L, k),
        all = routes[] <- rep(c(0L, k), each = n_layers),
        additive = {
            routes[1, ] <- c(0L, primary)
            routes[n_layers, seq_len(2L)] <- c(if (n_layers == 1L) 0L else primary, k)
        })
    as.integer(t(routes))
}
