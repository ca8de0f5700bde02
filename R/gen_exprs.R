#' Generate synthetic cells from a fitted VAE
#'
#' As VAExprs's `gen_exprs()`: the training cells are encoded, latent codes
#' are drawn, and the decoder turns them into cells. For `"bce"` and `"mse"`
#' models (by default, `latent = "gmm"`, as VAExprs) a Gaussian mixture is
#' fitted by BIC with [mclust::Mclust()] to the training cells' latent means
#' (separately for each class of a conditional VAE) and sampled; count models
#' draw as [fit_vae()] chose (see its section Settings chosen from the data:
#' from the aggregate posterior, `latent = "posterior"`: a random training
#' cell of the class, then z ~ q(z|x); or, for models of fewer than 500
#' cells, from the mixture). Models fitted with the
#' `"bce"` or `"mse"` likelihood give the decoder's output with the min-max
#' scaling undone, so values are on the scale of the training data
#' (log-normalised expression for a `"counts"` assay); count models
#' (`likelihoods()$counts`) draw integer counts from the fitted
#' distribution, with library sizes drawn from those of training cells of
#' the same class.
#'
#' For a conditional VAE the generated cells are split among the classes in
#' the proportions of the training cells (largest remainders, so that the
#' numbers add up to `num_samples`), or as `labels` says. A class whose cells
#' cannot support a mixture (a single cell, or cells mclust cannot fit) is
#' sampled from the encoder's posterior distributions of its cells instead.
#' Mixture draws far outside the latent codes of the training cells (beyond
#' their range widened by half its width on each side), which an almost
#' empty mixture component with a huge covariance can produce, are drawn
#' again.
#' mclust's cost grows quickly with the number of cells (its initialisation is
#' quadratic, and some models need many EM iterations), so the mixture of a
#' class is fitted to at most 500 of its cells, chosen at random
#' (`options(exprsgen.mixture_cells = n)` changes this), and BIC chooses among
#' the models with closed-form M-steps: spherical, diagonal and full
#' covariances (`EII`, `VII`, `EEI`, `VEI`, `EVI`, `VVI`, `EEE`, `EEV`,
#' `VEV`, `VVV`), with 1 to 9 components. Above 32 latent dimensions only the
#' spherical and diagonal ones, from a spherical initialisation; above 512,
#' no mixture: codes are drawn from the cells' posteriors, with a message.
#'
#' @param x The result of [fit_vae()] (also after [saveRDS()]/[readRDS()]).
#' @param num_samples Integer scalar: the number of cells to generate. May be
#'   omitted when `labels` is given.
#' @param batch_size Ignored; kept for compatibility with VAExprs (decoding
#'   runs in the Rust core in blocks of its own).
#' @param use_generator Ignored; kept for compatibility with VAExprs.
#' @param labels For a conditional VAE, optionally a named integer vector of
#'   the exact number of cells to generate per class, e.g.
#'   `c(B = 100, "CD14+ Mono" = 50)`; classes not named get none.
#' @param latent Where latent codes come from: `"gmm"` (the VAExprs mixture),
#'   `"prior"` (the standard normal prior N(0, I)), or `"posterior"` (the
#'   aggregate posterior, around given training cells: each generated cell
#'   draws from the posterior q(z|x) of one of `cells`, chosen at random, and
#'   for count models takes its library size). `NULL` (the default): for
#'   count models the draws [fit_vae()] chose with the model's settings
#'   (`"gmm"` for its automatic settings below 500 training cells, else
#'   `"posterior"`, which made generated cells harder to tell from held-out
#'   real cells in the realism benchmark, `bench/realism.R`), or the draws
#'   `tune = TRUE` scored best; `"gmm"` for `"bce"` and `"mse"` models, as
#'   VAExprs (`"posterior"` for them too when `cells` is given).
#' @param cells With `latent = "posterior"`: indices or names of training
#'   cells (default: all). Their labels set the generated cells' labels, and
#'   for count models their library sizes are used.
#' @param conditions For a model fitted with several conditions (or any
#'   conditional model): a data.frame with one row per kind of cell to
#'   generate, a column `n` (how many) and one column per condition (every
#'   label and covariate of the model), e.g. `data.frame(cell_type = "A", batch
#'   = "b2", n = 200)`. Combinations never seen in training are allowed
#'   (counterfactual cells: type A as if sequenced in batch b2); unknown
#'   levels, missing columns and covariates outside their training range are
#'   errors. Not with `labels`.
#'
#' @param num.threads Integer scalar: threads of the Rust core for decoding
#'   and drawing the generated cells (default: the fit's `num.threads`). The
#'   training cells' latent codes are those [fit_vae()] kept in the fit. Each
#'   generated cell draws from a random number generator of its own, so the
#'   cells do not depend on it.
#'
#' @param temperature Numeric scalar >= 0: with `latent = "posterior"`, the
#'   posterior's spread is multiplied by it (z = mean + temperature * sd *
#'   noise). `NULL` (the default): 1.
#' @param library_size Count models: where a generated cell's library size
#'   comes from: `"cells"` (the default), the training cell its code was drawn
#'   around (posterior draws) or a random training cell of its class; or
#'   `"lognormal"`, a log-normal fitted to the library sizes of the class's
#'   training cells (CFGen's), which did not help in the augmentation
#'   benchmark (`bench/realism.md`).
#' @param guard Logical scalar (count models): measure whether the generated
#'   cells are copies of training cells (their distance to the nearest
#'   training cell over the training cells' own nearest-neighbour distance,
#'   at most 1,000 cells of each; see [fit_vae()], section Never a copy), keep
#'   it in the result and warn below 0.9.
#'
#' @section Several conditions:
#' A generated cell's latent code comes from training cells of its class of
#' the primary (first) label, as for one label. Its other conditions are, by
#' default, those of a training cell of its class (the one its code was drawn
#' around, with `latent = "posterior"`), so that conditions keep their joint
#' distribution; with `conditions =` they are the given ones. The shifts of
#' the training cells' latent means (and, for count models, log library sizes)
#' that the other conditions explain, in a least-squares fit of the means on
#' the conditions, are taken out of the codes before drawing and the shifts
#' of the generated cell's own conditions put in: latent arithmetic, as
#' scGen's, so that a code drawn around a batch-1 cell of type A moves to where
#' batch 2 puts such cells (and the library size with it) before it is decoded
#' with batch 2.
#'
#' @section Large requests:
#' Cells are decoded in chunks of 1,024, and Ctrl-C stops the call between
#' chunks. A request whose result would not fit in the memory the session can
#' still allocate (see the section in [fit_vae()]) is refused up front, with
#' the size it would need; ask for the cells in several calls instead.
#'
#' @return A list of class `exprsgen_gen`, as in VAExprs:
#' \describe{
#'   \item{`x_gen`}{The generated cells, cells in rows and genes in columns
#'     (named `gen1`, `gen2`, ... and by gene): a numeric matrix, or for count
#'     models a sparse matrix of integer counts (dgRMatrix).}
#'   \item{`y_gen`}{Factor of the generated cells' labels (`NULL` for a
#'     plain VAE).}
#'   \item{`x_train`}{The training cells on the same scale, cells in rows
#'     (sparse training data as a dgRMatrix, the same slots as the genes x
#'     cells dgCMatrix the model was trained on; on-disk training data as a
#'     DelayedMatrix, still on disk, which [as_sce()], [assess_aug()] and
#'     [plot_aug()] accept).}
#'   \item{`y_train`}{Factor of the training labels (or `NULL`).}
#'   \item{`latent_vector`}{The training cells' latent means, cells in rows.}
#'   \item{`memorisation`}{(count models, `guard = TRUE`) the memorisation
#'     ratio of the generated cells (NA with fewer than 20 cells).}
#'   \item{`conditions_gen`, `conditions_train`}{(conditional models) data.frames
#'     of every condition (labels and covariates) of the generated and the
#'     training cells; [as_sce()] puts them into `colData`.}
#' }
#' [as_sce()] (or `as(x, "SingleCellExperiment")`) turns it into a
#' SingleCellExperiment. Results are reproducible: call [set.seed()] first.
#' @seealso [fit_vae()], [as_sce()], [plot_aug()]
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
#'
#' # several conditions, and cells of a combination never seen in training
#' counts <- matrix(rpois(60 * 50, 3), 60, 50, dimnames = list(NULL, paste0("g", 1:50)))
#' cond <- data.frame(type = rep(c("A", "B"), 30), batch = rep(c("b1", "b2"), each = 30))
#' seen <- !(cond$type == "A" & cond$batch == "b2")
#' fit2 <- fit_vae(x_train = counts[seen, ], y_train = cond[seen, ], likelihood = "nb",
#'                 epochs = 5, batch_size = 16, verbose = FALSE)
#' cf <- gen_exprs(fit2, conditions = data.frame(type = "A", batch = "b2", n = 20))
#' table(cf$conditions_gen$batch)
#' @export
gen_exprs <- function(x, num_samples, batch_size = NULL, use_generator = FALSE,
                      labels = NULL, latent = NULL, cells = NULL, conditions = NULL,
                      num.threads = NULL, temperature = NULL, guard = TRUE,
                      library_size = c("cells", "lognormal")) {
    .check_fit(x, "x")
    num.threads <- min(.check_count(num.threads %||% x$params$num.threads %||% 1L, "num.threads"),
                       max(1L, parallel::detectCores(), na.rm = TRUE))
    if (!is.null(batch_size)) .check_count(batch_size, "batch_size")
    .check_flag(use_generator, "use_generator")
    spec <- x$model$spec
    prep <- .upgrade_preprocessing(x$preprocessing)
    cs <- .conditions_spec(spec, prep)
    counts_model <- identical(prep$transform$type, "counts")
    # draw settings the fit chose (automatic settings, or tune = TRUE), else the defaults
    chosen <- x$params$generation
    latent <- .check_one_of(latent %||% (if (!is.null(cells)) "posterior") %||% chosen$latent %||%
                                (if (counts_model) "posterior" else "gmm"),
                            c("gmm", "prior", "posterior"), "latent")
    if (latent == "gmm" && spec$latent_dim > .mixture_max_dim) {
        cli::cli_inform(c(i = paste("A Gaussian mixture in {spec$latent_dim} latent dimensions would take mclust minutes and",
                                    "needs far more cells than dimensions: drawing from the cells' posteriors instead."),
                          " " = "(mixtures are fitted up to latent_dim {(.mixture_max_dim)})"),
                        class = "exprsgen_message_draws")
        latent <- "posterior"
    }
    temperature <- .check_number(temperature %||% 1, "temperature", min = 0, max = 100)
    guard <- .check_flag(guard, "guard")
    library_size <- .check_choice(library_size, "library_size")
    classes <- spec$classes
    K <- length(classes)
    codes <- if (K) as.integer(prep$y_train) else NULL
    conds_train <- .train_conditions(prep)
    # conditions beyond the primary label: generated cells take them from a training cell
    extra <- .has_conditions(cs) && length(.condition_names(cs)) > (K > 0)
    train_cells <- colnames(prep$x_train)
    pool <- .pool_cells(cells, latent, train_cells)
    given <- NULL
    if (!is.null(conditions)) {
        if (!is.null(labels)) .abort("Give either {.arg labels} or {.arg conditions}, not both.")
        rows <- .given_conditions(cs, conditions, num_samples, missing(num_samples))
        # refused before the rows are repeated into one per generated cell
        .check_gen_memory(spec, sum(rows$n), counts_model, prep$x_train)
        given <- rows$conditions[rep(seq_len(nrow(rows$conditions)), rows$n), , drop = FALSE]
        rownames(given) <- NULL
        gen_class <- if (K) as.integer(given[[names(cs$labels)[1]]]) else NULL
        num_samples <- nrow(given)
    } else {
        sizes <- .class_sizes(spec, labels, num_samples, missing(num_samples), codes, pool)
        num_samples <- sum(sizes)
        .check_gen_memory(spec, num_samples, counts_model, prep$x_train)
        gen_class <- if (K) rep(seq_len(K), sizes) else NULL
    }

    # the weights cross into the core once (decoding, and encoding a fit without $latent)
    handle <- .eg_model_new(x$model, num.threads)
    enc <- .training_latent(x, handle, prep)
    latent_vector <- enc$mean
    dimnames(latent_vector) <- list(train_cells, paste("latent", seq_len(spec$latent_dim)))
    library_sizes <- if (counts_model) prep$library_size %||% .col_sums(prep$x_train)

    # Conditions beyond the primary label shift the latent codes as well as entering
    # the decoder: codes are drawn from the training cells' codes with those shifts
    # removed, then moved to each generated cell's conditions (see .latent_offsets()).
    # For count models the log library sizes get the same treatment.
    L <- spec$latent_dim
    offsets <- if (extra) .latent_offsets(cs, conds_train, cbind(enc$mean, if (counts_model) log(library_sizes)))
    enc_draw <- enc
    if (!is.null(offsets)) enc_draw$mean <- enc$mean - offsets(conds_train)[, seq_len(L), drop = FALSE]

    # Latent code of every generated cell (and library size, and the training cell
    # whose conditions it takes), class by class of the primary label.
    z <- matrix(0, num_samples, spec$latent_dim)
    log_library <- numeric(num_samples)
    source_cell <- integer(num_samples)
    for (k in if (K) seq_len(K) else 1L) {
        rows <- if (K) which(gen_class == k) else seq_len(num_samples)
        if (!length(rows)) next
        members <- if (K) which(codes == k) else seq_along(train_cells)
        what <- if (K) paste0("class {.val ", classes[k], "}") else "the training cells"
        drawn <- .draw_latent(latent, enc_draw, members, intersect(pool, members), length(rows), what,
                              temperature = temperature)
        z[rows, ] <- drawn$z
        if (counts_model || (extra && is.null(given))) {
            # the chosen cell (posterior), else one of its class (prior draws of a
            # class without training cells: any training cell)
            from <- if (length(members)) members else seq_along(train_cells)
            src <- if (is.null(drawn$cell)) from[sample.int(length(from), length(rows), replace = TRUE)]
                   else drawn$cell
            source_cell[rows] <- src
            if (counts_model) {
                log_library[rows] <- if (library_size == "cells") {
                    log(library_sizes[src])
                } else {
                    # CFGen's: a log-normal fitted to the class's training cells
                    ll <- log(library_sizes[from])
                    stats::rnorm(length(rows), mean(ll), if (length(ll) > 1L) stats::sd(ll) else 0)
                }
            }
        }
    }
    gen_conds <- if (!is.null(given)) given
                 else if (extra) conds_train[source_cell, , drop = FALSE]
                 else if (K) stats::setNames(data.frame(factor(classes[gen_class], levels = classes)), names(cs$labels)[1])
    if (!is.null(gen_conds)) rownames(gen_conds) <- NULL
    if (!is.null(offsets)) {
        shift <- offsets(gen_conds)
        z <- z + shift[, seq_len(L), drop = FALSE]
        if (counts_model) log_library <- log_library + shift[, L + 1L] - offsets(conds_train[source_cell, , drop = FALSE])[, L + 1L]
    }
    cond_cols <- .condition_columns(cs, gen_conds)

    gen_names <- paste0("gen", seq_len(num_samples))
    if (counts_model) {
        seed <- sample.int(.Machine$integer.max, 1L)
        csc <- .with_memory_errors(.eg_decode_counts(handle, z, cond_cols, log_library, seed),
                                   "Generation", "Ask for fewer cells with {.arg num_samples} (or {.arg labels}).")
        # CSC slots of genes x cells are the CSR slots of cells x genes.
        x_gen <- methods::new("dgRMatrix", p = csc$p, j = csc$i, x = csc$x,
                              Dim = c(num_samples, spec$n_genes),
                              Dimnames = list(gen_names, prep$genes))
    } else {
        x_gen <- .with_memory_errors(.eg_decode(handle, z, cond_cols, prep$minmax, cells_in_rows = TRUE),
                                     "Generation", "Ask for fewer cells with {.arg num_samples} (or {.arg labels}).")
        dimnames(x_gen) <- list(gen_names, prep$genes)
    }
    memorisation <- NULL
    if (guard && counts_model) {
        # Never a copy: are the generated cells closer to the training cells than
        # these are to each other? (A warmer posterior did not cure an over-trained
        # model's copies in bench/realism.md: fit_vae()'s guard stops training first.)
        memorisation <- ratio <- .gen_memorisation(prep$x_train, x_gen, codes, gen_class)
        if (!is.na(ratio) && ratio < 0.9) {
            cli::cli_warn(c(paste0("The generated cells are closer to the training cells than these are to each other ",
                                   "(memorisation ratio {format(round(ratio, 2))}, below 0.9): near-copies of training cells, ",
                                   "or cells that vary less than real ones."),
                            i = "Fit with fewer {.arg epochs} (the automatic settings' guard stops training before copies), or another likelihood."),
                          class = "exprsgen_warning_memorisation")
        }
    }
    y_gen <- if (K) factor(classes[gen_class], levels = classes)
    # VAExprs's orientation: cells in rows
    out <- list(x_gen = x_gen, y_gen = y_gen, x_train = .cells_by_genes(prep$x_train),
                y_train = prep$y_train, latent_vector = latent_vector)
    if (!is.null(gen_conds)) out[c("conditions_gen", "conditions_train")] <- list(gen_conds, conds_train)
    if (!is.null(memorisation)) out$memorisation <- memorisation
    structure(out,
              class = "exprsgen_gen", likelihood = spec$likelihood,
              assay = .gen_assay_name(prep))
}

# The memorisation ratio of generated count cells against the training cells, without
# held-out cells: the median distance from a generated cell to its nearest training
# cell over the median distance from a training cell of the same classes to its
# nearest other training cell (see .self_memorisation()), on log-normalised counts
# (2,000 most variable genes of both sets, 20 principal components). At most
# 1,000 cells of each set; NA with fewer than 20 generated cells.
.gen_memorisation <- function(x_train, x_gen, codes, gen_class, max_cells = 1000L) {
    n_gen <- nrow(x_gen)
    if (n_gen < 20L || ncol(x_train) < 20L) return(NA_real_)
    gi <- if (n_gen > max_cells) sort(sample.int(n_gen, max_cells)) else seq_len(n_gen)
    n_t <- ncol(x_train)
    ti <- if (n_t > max_cells) sort(sample.int(n_t, max_cells)) else seq_len(n_t)
    xt <- x_train[, ti, drop = FALSE]
    if (.is_delayed(xt)) xt <- methods::as(xt, "dgCMatrix")
    xg <- Matrix::t(x_gen[gi, , drop = FALSE])
    # the reference: training cells of the generated cells' classes, in their proportions
    query <- if (is.null(codes) || is.null(gen_class)) {
        seq_along(ti)
    } else {
        pool <- split(seq_along(ti), factor(codes[ti], levels = seq_len(max(codes))))
        want <- tabulate(gen_class[gi], length(pool))
        unlist(lapply(seq_along(pool), function(k) {
            p <- pool[[k]]
            if (!want[k] || !length(p)) integer(0) else p[sample.int(length(p), min(length(p), want[k]))]
        }), use.names = FALSE)
    }
    if (length(query) < 5L) return(NA_real_)
    .memorisation_ratio(xt, xg, query)
}

# The ratio of .self_memorisation() for count matrices (genes x cells) of training
# cells `xt` and generated cells `xg`: log-normalised counts of the 2,000 genes most
# variable in both, 20 principal components.
.memorisation_ratio <- function(xt, xg, query = seq_len(ncol(xt))) {
    lib_t <- Matrix::colSums(xt)
    lib_g <- Matrix::colSums(xg)
    target <- stats::median(lib_t)
    lt <- .log_scale(if (is.matrix(xt)) xt else methods::as(xt, "CsparseMatrix"), "counts", lib_t, target)
    lg <- .log_scale(if (is.matrix(xg)) xg else methods::as(xg, "CsparseMatrix"), "counts", lib_g, target)
    .self_memorisation(lt, lg, 2000L, 20L, query)
}

# The shifts of the training cells' latent means (and log library sizes) that their
# conditions beyond the primary label explain: a least-squares fit of the means on the conditions (each
# label's levels one-hot, the first level the reference, the primary label's classes
# each their own intercept; covariates linear). Returns a function of a conditions
# data.frame giving each row's shift (rows x latent), the primary label's part left
# out; so that codes of cells of one condition can be moved to another (latent
# arithmetic, as scGen's), also to combinations never seen in training.
.latent_offsets <- function(cs, conds, means) {
    design <- function(d) {
        cols <- list()
        for (nm in names(cs$labels)[-1]) {
            lv <- cs$labels[[nm]]
            for (v in lv[-1]) cols[[paste(nm, v)]] <- as.numeric(as.character(d[[nm]]) == v)
        }
        for (i in seq_len(nrow(cs$covariates))) {
            r <- cs$covariates[i, ]
            cols[[r$name]] <- (as.numeric(d[[r$name]]) - r$center) / r$scale
        }
        matrix(unlist(cols, use.names = FALSE), nrow(d), length(cols), dimnames = list(NULL, names(cols)))
    }
    x2 <- design(conds)
    if (!ncol(x2)) return(NULL)
    x1 <- if (length(cs$labels)) stats::model.matrix(~ 0 + f, data.frame(f = conds[[names(cs$labels)[1]]]))
          else matrix(1, nrow(conds), 1)
    coef <- qr.coef(qr(cbind(x1, x2)), means)
    beta <- coef[ncol(x1) + seq_len(ncol(x2)), , drop = FALSE]
    beta[is.na(beta)] <- 0  # a level that cannot be told apart from others: no shift
    function(d) design(d) %*% beta
}

# gen_exprs(conditions =): list(conditions = its rows checked against the model, n =
# how many cells of each).
.given_conditions <- function(cs, conditions, num_samples, no_num, call = rlang::caller_env()) {
    if (!.has_conditions(cs)) .abort("{.arg conditions} needs a conditional model (fitted with labels or covariates).", call = call)
    if (methods::is(conditions, "DataFrame")) conditions <- as.data.frame(conditions, optional = TRUE)
    if (!is.data.frame(conditions) || !"n" %in% names(conditions) || !nrow(conditions)) {
        names_all <- .condition_names(cs)
        .abort(c("{.arg conditions} must be a data.frame with a column {.code n} (cells to generate) and one per condition.",
                 i = "Conditions: {.val {names_all}}."), call = call)
    }
    n <- conditions$n
    if (!is.numeric(n) || anyNA(n) || any(n < 0) || any(n != round(n))) {
        .abort("{.arg conditions}{.code $n} must hold non-negative whole numbers.", call = call)
    }
    if (sum(n) < 1) .abort("{.arg conditions} asks for no cells.", call = call)
    if (sum(n) > .Machine$integer.max) {
        asked <- format(sum(n), big.mark = ",", scientific = FALSE)
        limit <- format(.Machine$integer.max, big.mark = ",")
        .abort("{.arg conditions} asks for {asked} cells, more than {limit} (one matrix's limit).",
               call = call)
    }
    if (!no_num && .check_count(num_samples, "num_samples", call = call) != sum(n)) {
        .abort("{.arg num_samples} ({num_samples}) differs from the sum of {.arg conditions}{.code $n} ({sum(n)}).", call = call)
    }
    rows <- .check_conditions(cs, conditions[setdiff(names(conditions), "n")], nrow(conditions), "conditions", call)
    list(conditions = rows, n = n)
}

# Indices of the training cells latent = "posterior" draws around.
.pool_cells <- function(cells, latent, train_cells, call = rlang::caller_env()) {
    if (is.null(cells)) return(seq_along(train_cells))
    if (latent != "posterior") {
        .abort("{.arg cells} is used only with {.code latent = \"posterior\"}.", call = call)
    }
    idx <- if (is.character(cells)) match(cells, train_cells) else
        if (is.numeric(cells) && all(cells == round(cells))) as.integer(cells) else NA_integer_
    if (!length(idx) || anyNA(idx) || any(idx < 1L | idx > length(train_cells))) {
        .abort("{.arg cells} must be indices (1 to {length(train_cells)}) or names of training cells.",
               call = call)
    }
    unique(idx)
}

# Number of cells to generate per class (or in all, for a plain VAE).
.class_sizes <- function(spec, labels, num_samples, no_num, codes, pool,
                         call = rlang::caller_env()) {
    if (!is.null(labels)) {
        if (!length(spec$classes)) .abort("{.arg labels} needs a conditional VAE (fitted with labels).", call = call)
        if (!is.numeric(labels) || is.null(names(labels)) || anyNA(labels) ||
            any(labels < 0) || any(labels != round(labels)) || anyDuplicated(names(labels)) ||
            any(!nzchar(names(labels)))) {
            .abort("{.arg labels} must be a named vector of non-negative whole numbers, one per class.",
                   call = call)
        }
        unknown <- setdiff(names(labels), spec$classes)
        if (length(unknown)) {
            .abort(c("{.arg labels} names unknown class{?es} {.val {unknown}}.",
                     i = "Classes: {.val {spec$classes}}."), call = call)
        }
        if (sum(labels) > .Machine$integer.max) {
            asked <- format(sum(labels), big.mark = ",", scientific = FALSE)
            limit <- format(.Machine$integer.max, big.mark = ",")
            .abort("{.arg labels} asks for {asked} cells, more than {limit} (one matrix's limit).",
                   call = call)
        }
        sizes <- integer(length(spec$classes))
        sizes[match(names(labels), spec$classes)] <- as.integer(labels)
        if (!no_num && .check_count(num_samples, "num_samples", call = call) != sum(sizes)) {
            .abort("{.arg num_samples} ({num_samples}) differs from the sum of {.arg labels} ({sum(sizes)}).",
                   call = call)
        }
        if (sum(sizes) < 1) .abort("{.arg labels} asks for no cells.", call = call)
        return(sizes)
    }
    if (no_num) .abort("{.arg num_samples} is missing.", call = call)
    num_samples <- .check_count(num_samples, "num_samples", call = call)
    if (!length(spec$classes)) return(num_samples)
    .allocate(tabulate(codes[pool], length(spec$classes)), num_samples)
}

# Split n among classes in proportion to `sizes` (largest remainders).
.allocate <- function(sizes, n) {
    share <- as.numeric(n) * sizes / sum(sizes)
    out <- floor(share)
    left <- n - sum(out)
    if (left > 0) {
        extra <- order(share - out, sizes, decreasing = TRUE)[seq_len(left)]
        out[extra] <- out[extra] + 1
    }
    as.integer(out)
}

# n latent codes for one group of training cells (`members`): from a Gaussian
# mixture of their latent means, from the prior, or from the posteriors of cells
# of `pool`. Returns list(z, cell = the training cell each code came from, or NULL).
.draw_latent <- function(latent, enc, members, pool, n, what,
                         fit_mixture = .mclust_fit, sim_mixture = .mclust_sim, temperature = 1) {
    L <- ncol(enc$mean)
    posterior <- function(from) {
        idx <- from[sample.int(length(from), n, replace = TRUE)]
        noise <- matrix(stats::rnorm(n * L), n, L) * temperature
        list(z = enc$mean[idx, , drop = FALSE] + exp(0.5 * enc$log_var[idx, , drop = FALSE]) * noise,
             cell = idx)
    }
    if (latent == "prior") return(list(z = matrix(stats::rnorm(n * L), n, L), cell = NULL))
    if (latent == "posterior") {
        if (!length(pool)) .abort(paste0("{.arg cells} holds no cell of ", what, "."), call = NULL)
        return(posterior(pool))
    }
    if (!length(members)) {
        .abort(c(paste0(sub("^(.)", "\\U\\1", what, perl = TRUE), " has no training cells (all of its cells went to validation): ",
                        "no latent codes to draw from."),
                 i = "Generate it with {.code latent = \"prior\"}, or fit again with a smaller {.arg validation_split}."),
               call = NULL, class = "exprsgen_error_argument")
    }
    fit <- NULL
    if (length(members) >= 2L) {
        cap <- .option_count("exprsgen.mixture_cells", 500L, min = 2, call = NULL)
        sub <- if (length(members) > cap) members[sample.int(length(members), cap)] else members
        fit <- tryCatch(suppressWarnings(fit_mixture(enc$mean[sub, , drop = FALSE])),
                        error = function(e) NULL)
        if (!is.null(fit) && is.null(fit$modelName)) fit <- NULL
    }
    if (!is.null(fit)) {
        # A mixture can hold a near-empty component with a huge covariance, whose
        # draws decode to nonsense: codes outside the cells' latent range (widened by
        # half its width on each side) are drawn again, at worst from a posterior.
        m <- enc$mean[members, , drop = FALSE]
        lo <- apply(m, 2, min)
        hi <- apply(m, 2, max)
        pad <- 0.5 * (hi - lo)
        outside <- function(z) rowSums(sweep(z, 2, lo - pad) < 0 | sweep(z, 2, hi + pad) > 0) > 0
        z <- unname(sim_mixture(fit, n)[, -1, drop = FALSE])
        bad <- outside(z)
        for (try in seq_len(10)) {
            if (!any(bad)) break
            z[bad, ] <- unname(sim_mixture(fit, sum(bad))[, -1, drop = FALSE])
            bad <- outside(z)
        }
        if (any(bad)) z[bad, ] <- posterior(members)$z[seq_len(sum(bad)), , drop = FALSE]
        return(list(z = z, cell = NULL))
    }
    cli::cli_inform(c(i = paste0("No Gaussian mixture could be fitted for ", what,
                                 " ({length(members)} cell{?s}): sampling from the cells' posteriors instead.")))
    posterior(members)
}

# mclust evaluates calls to its own functions (mclustBIC, summaryMclustBIC, simEII,
# ...) in the caller's frame, so they are found only when mclust is attached. These
# two wrappers run in mclust's namespace instead of attaching it.
.in_mclust <- function(f) {
    environment(f) <- asNamespace("mclust")
    f
}
# mclust's models with closed-form M-steps (spherical, diagonal and full covariances);
# EVE, VEE, VVE and EVV need iterative M-steps and took three quarters of the time.
.mixture_models <- c("EII", "VII", "EEI", "VEI", "EVI", "VVI", "EEE", "EEV", "VEV", "VVV")
# Above 32 latent dimensions the full-covariance models and mclust's default (full)
# hierarchical initialisation cost O(d^3) and O(d^2) per step (500 cells: 1.5 s at 32
# dimensions, 16 s at 128); spherical and diagonal models from a spherical
# initialisation took 0.9 s at 128 and 2.0 s at 512 dimensions. Beyond 512, no mixture
# (gen_exprs() draws from the posteriors, with a message).
.mixture_max_dim <- 512L
.mclust_fit <- function(data) {
    d <- ncol(data)
    if (d == 1L) {
        return(.in_mclust(function(data) mclust::Mclust(data, modelNames = c("E", "V"), verbose = FALSE))(data))
    }
    if (d <= 32L) {
        return(.in_mclust(function(data, models) mclust::Mclust(data, modelNames = models, verbose = FALSE))(data, .mixture_models))
    }
    .in_mclust(function(data, models) {
        mclust::Mclust(data, modelNames = models, verbose = FALSE,
                       initialization = list(hcPairs = mclust::hc(data, modelName = "EII")))
    })(data, .mixture_models[seq_len(6L)])
}
.mclust_sim <- function(model, n) {
    .in_mclust(function(m, n) mclust::sim(modelName = m$modelName, parameters = m$parameters, n = n))(model, n)
}

# Name of the assay that generated values belong in: raw counts for count models,
# the assay trained on when it was used as is, else "logcounts" (log-normalised
# counts, or a matrix given as x_train).
.gen_assay_name <- function(prep) {
    if (identical(prep$transform$type, "counts")) return("counts")
    if (!is.null(prep$assay.type) && identical(prep$normalization, "none")) return(prep$assay.type)
    "logcounts"
}

# Reconstruction of the training cells (latent means decoded with their own
# labels), cells in rows, on the scale of the training data (bce/mse models).
.reconstruct <- function(fit) {
    spec <- fit$model$spec
    prep <- .upgrade_preprocessing(fit$preprocessing)
    codes <- .condition_columns(.conditions_spec(spec, prep), .train_conditions(prep))
    handle <- .eg_model_new(fit$model)
    .eg_decode(handle, .training_latent(fit, handle, prep)$mean, codes, prep$minmax, cells_in_rows = TRUE)
}

#' @method print exprsgen_gen
#' @export
print.exprsgen_gen <- function(x, ...) {
    .check_gen(x, "x")
    cat("<exprsgen generated cells> ", nrow(x$x_gen), " cells x ", ncol(x$x_gen), " genes",
        if (methods::is(x$x_gen, "sparseMatrix")) " (integer counts)", "\n", sep = "")
    if (!is.null(x$y_gen)) {
        tab <- table(x$y_gen)
        cat("  labels: ", paste0(names(tab), " ", tab, collapse = ", "), "\n", sep = "")
    }
    cat("  with ", nrow(x$x_train), " training cells; as_sce() makes a SingleCellExperiment\n",
        sep = "")
    invisible(x)
}

# Memory the generated matrix needs (the core's copy and R's): dense values for
# bce/mse models; for count models the non-zeros, estimated from the training cells'
# density (twice it, at most all entries). Refused early rather than failing late.
.check_gen_memory <- function(spec, n, counts_model, x_train, call = rlang::caller_env()) {
    entries <- as.numeric(n) * spec$n_genes
    bytes <- if (counts_model) {
        density <- if (methods::is(x_train, "dgCMatrix")) length(x_train@x) / max(1, prod(dim(x_train)))
                   else if (is.matrix(x_train)) mean(x_train[seq_len(min(length(x_train), 1e6))] != 0)
                   else 0.5
        entries * min(1, 2 * density) * 36
    } else {
        entries * 16
    }
    bytes <- bytes + as.numeric(n) * spec$latent_dim * 8 * 3
    .check_memory(bytes, paste0(format(n, big.mark = ",", scientific = FALSE), " generated cells of ",
                                format(spec$n_genes, big.mark = ","), " genes"),
                  "Ask for fewer cells with {.arg num_samples} (or {.arg labels}), e.g. in several calls.",
                  call = call)
}
