# fit_vae(tune = TRUE): candidate settings fitted to most of the user's cells and scored
# on the cells held out, by assess_aug()'s held-out metrics (issue 22).

# The candidates: fits (latent size, width, epochs) and, on each fit, both kinds of
# draws. `auto` is the automatic settings of the data (.auto_settings()): it, the
# other regime's latent size (2 or 10) at the same width, and it with half the epochs
# (a guard against copying). Documented in ?fit_vae (section "Choosing settings on
# your own cells"): keep the two in step.
.tune_candidates <- function(auto) {
    other <- if (auto$latent_dim == 2L) 10L else 2L
    fits <- list(
        list(fit = paste("latent", auto$latent_dim), latent_dim = auto$latent_dim, units = auto$units,
             epochs = auto$epochs),
        list(fit = paste("latent", other), latent_dim = other, units = auto$units, epochs = auto$epochs),
        list(fit = paste("latent", auto$latent_dim, "half the epochs"), latent_dim = auto$latent_dim,
             units = auto$units, epochs = max(1L, auto$epochs %/% 2L))
    )
    list(fits = fits, draws = c("posterior", "gmm"))
}

# Cells held out for scoring: a fifth of each class with at least 3 cells (at least
# one), or a fifth of all cells without labels. R's random number generator.
.tune_split <- function(y, n) {
    groups <- if (is.null(y)) list(seq_len(n)) else split(seq_len(n), y)
    held <- unlist(lapply(groups, function(i) {
        if (length(i) < 3L) return(integer(0))
        i[sample.int(length(i), max(1L, floor(length(i) / 5)))]
    }), use.names = FALSE)
    sort(held)
}

# The prepared data restricted to cells `idx` (training cells of a candidate).
.prep_cells <- function(prep, idx) {
    out <- prep
    out$x_train <- prep$x_train[, idx, drop = FALSE]
    if (!is.null(prep$y_train)) out$y_train <- prep$y_train[idx]
    if (!is.null(prep$conditions)) out$conditions <- prep$conditions[idx, , drop = FALSE]
    if (!is.null(prep$library_size)) out$library_size <- prep$library_size[idx]
    out$scan <- NULL
    out$genes_named <- NULL
    out$transform <- list(type = "counts", target_sum = 1e4)
    out
}

# Fits every candidate to most of the cells and scores its draws on the rest. `args`:
# the fit_vae() arguments every candidate shares. Returns list(best = the row of the
# chosen candidate, table = the scores, interrupted = a candidate fit that was
# interrupted, or NULL).
.tune <- function(prep, args, auto, verbose) {
    n <- ncol(prep$x_train)
    held <- .tune_split(prep$y_train, n)
    if (length(held) < 5L) {
        .abort(c("{.arg tune} = TRUE needs at least 5 cells to hold out (a fifth of each class of 3 or more cells): these data give {length(held)}.",
                 i = "Fit with the automatic settings instead ({.code tune = FALSE})."), call = NULL)
    }
    kept <- setdiff(seq_len(n), held)
    sub <- .prep_cells(prep, kept)
    held_x <- prep$x_train[, held, drop = FALSE]
    if (.is_delayed(held_x)) held_x <- methods::as(held_x, "dgCMatrix")
    held_y <- if (!is.null(prep$y_train)) prep$y_train[held]
    sizes <- if (!is.null(held_y)) table(held_y)
    cands <- .tune_candidates(auto)
    rows <- list()
    n_fits <- length(cands$fits)
    for (i in seq_len(n_fits)) {
        f <- cands$fits[[i]]
        if (verbose) {
            cli::cli_inform(c(i = paste("Tuning {i}/{n_fits}: {f$fit} ({f$units} units, {f$epochs} epochs) on",
                                        "{length(kept)} cells, {length(held)} held out.")),
                            class = "exprsgen_message_tune")
        }
        g <- length(prep$genes)
        layers <- list(encoder_layers = list(layer_input(g), layer_dense(f$units, "relu")),
                       decoder_layers = list(layer_dense(f$units, "relu"), layer_dense(g, "linear")))
        fit <- do.call(fit_vae, c(list(preprocessing = sub, latent_dim = f$latent_dim, epochs = f$epochs,
                                       verbose = FALSE), layers, args))
        if (identical(fit$params$stop_reason, "interrupted")) {
            return(list(best = NULL, table = .tune_table(rows), interrupted = fit))
        }
        for (d in cands$draws) {
            gen <- suppressMessages(
                if (is.null(sizes)) gen_exprs(fit, num_samples = length(held), latent = d)
                else gen_exprs(fit, labels = stats::setNames(as.integer(sizes), names(sizes)), latent = d))
            # (at most 1,000 cells of each set: scoring stays small next to the fits)
            a <- assess_aug(held_x, gen, labels_real = held_y, n_pcs = min(20L, length(held) - 1L),
                            max_cells = 1000L, seed = 1L, num.threads = args$num.threads)
            val <- function(m) if (any(a$metric == m)) a$value[a$metric == m][1] else NA_real_
            ref <- function(m) if (any(a$metric == m)) a$reference[a$metric == m][1] else NA_real_
            rows[[length(rows) + 1L]] <- data.frame(
                fit = f$fit, latent_dim = f$latent_dim, units = f$units, epochs = f$epochs,
                draws = d,
                classifier_auc = val("classifier_auc"), memorisation = val("memorisation"),
                label_accuracy = val("label_accuracy"), label_accuracy_real = ref("label_accuracy"),
                utility_gain = val("augmentation_accuracy") - ref("augmentation_accuracy"),
                n_held = length(held), stringsAsFactors = FALSE)
        }
    }
    table <- .tune_table(rows)
    list(best = table[table$chosen, , drop = FALSE], table = table, interrupted = NULL)
}

# The scores as one table, with the documented rule's choice marked: candidates whose
# memorisation ratio is at least 0.9 and whose label accuracy is at least 0.95 times
# the held-out real cells' own (less one held-out cell's worth, 1 / n_held: with few
# held-out cells one cell moves the accuracy by more than 5 %) come first (all
# candidates when none qualifies); among them the lowest classifier AUC, ties broken
# by the larger utility gain.
.tune_table <- function(rows) {
    if (!length(rows)) return(NULL)
    t <- do.call(rbind, rows)
    slack <- if (is.null(t$n_held)) 0 else 1 / t$n_held
    label_ok <- is.na(t$label_accuracy) | is.na(t$label_accuracy_real) |
        t$label_accuracy >= 0.95 * t$label_accuracy_real - slack
    t$eligible <- !is.na(t$memorisation) & t$memorisation >= 0.9 & label_ok
    pool <- if (any(t$eligible)) which(t$eligible) else seq_len(nrow(t))
    gain <- ifelse(is.na(t$utility_gain), 0, t$utility_gain)
    best <- pool[order(t$classifier_auc[pool], -gain[pool])[1]]
    t$chosen <- seq_len(nrow(t)) == best
    t
}
