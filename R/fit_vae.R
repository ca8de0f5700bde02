#' Fit a variational autoencoder to gene-expression data
#'
#' Trains a variational autoencoder (VAE) on the cells of a matrix or a
#' SingleCellExperiment, or a conditional VAE (CVAE) when cell labels are
#' given. The arguments are those of VAExprs's `fit_vae()`; training runs in
#' exprsgen's Rust core.
#'
#' Each gene is min-max scaled to \[0, 1\] with the minimum and maximum of the
#' training cells (validation cells use the same parameters and are clipped
#' to \[0, 1\]; a constant gene is scaled to 0). The encoder maps a cell, and
#' for a CVAE its one-hot label, to the mean and log-variance of a Gaussian
#' posterior; a latent code is drawn from it (reparameterisation) and the
#' decoder, given the code and the label, reconstructs the cell. The loss per
#' cell is `genes * mean binary cross-entropy + regularization * KL`, with
#' `KL = -0.5 * sum(1 + log_var - mean^2 - exp(log_var))`, averaged over the
#' cells of each minibatch. Minibatches are drawn in a new random order each
#' epoch.
#'
#' @param object A SingleCellExperiment or SummarizedExperiment with genes in
#'   rows and cells in columns, holding a dense matrix, a dgCMatrix (used in
#'   place, never densified) or a DelayedArray (read into memory, as a sparse
#'   matrix when it is sparse); or a Seurat object (its default assay's
#'   `assay.type` layer, `"counts"` by default, labels and covariates from its
#'   meta.data); alternative to `x_train`.
#' @param x_train A numeric matrix (dense, or sparse such as a dgCMatrix)
#'   with cells in rows and genes in columns (VAExprs's orientation), used as
#'   it is (no log transformation). Sparse matrices are never densified.
#' @param x_val Optional numeric matrix of validation cells, same genes as
#'   `x_train`: matched by column name when both have column names
#'   (an error when the names differ), by position otherwise.
#' @param y_train Optional labels (character or factor), one per row of
#'   `x_train`: makes the model a conditional VAE. Several conditions: a
#'   data.frame with one row per cell and one column per condition (each a
#'   label, except the columns named in `covariates`).
#' @param y_val Labels of `x_val`, required with `x_val` for a conditional VAE
#'   (a data.frame with the columns of `y_train` for several conditions).
#' @param encoder_layers A list: [layer_input()] followed by [layer_dense()]
#'   layers. If both `encoder_layers` and `decoder_layers` are missing, one
#'   hidden layer of ReLU units is used on each side: 256 for `"bce"` and
#'   `"mse"` (as VAExprs); for count likelihoods 256 below 500 training cells
#'   and 128 from 500 on (see the section Settings chosen from the data).
#' @param decoder_layers A list of [layer_dense()] layers; the last has as
#'   many units as there are genes (typically `activation = "sigmoid"`).
#' @param latent_dim Integer scalar: dimension of the latent space. `NULL`
#'   (the default) is 2 for the `"bce"` and `"mse"` likelihoods (VAExprs's
#'   default); for count likelihoods 2 below 500 training cells and 10 from
#'   500 on (see the section Settings chosen from the data; figures from the
#'   realism benchmark, `bench/realism.R` in the source repository, in
#'   `bench/realism.md`).
#' @param regularization Numeric scalar from 0 to 1e6: weight of the KL term.
#' @param epochs Integer scalar: number of passes over the training cells.
#'   May be left out for count likelihoods, which then choose it from the
#'   number of cells (see the section Settings chosen from the data); the
#'   `"bce"` and `"mse"` likelihoods need it, as VAExprs.
#' @param batch_size Integer scalar: cells per minibatch. May be left out for
#'   count likelihoods (128), as `epochs`.
#' @param preprocessing Optional `$preprocessing` of an earlier fit, to train
#'   again on exactly the same prepared data and scaling.
#' @param use_generator Ignored (minibatches are always built in the Rust
#'   core); kept for compatibility with VAExprs.
#' @param optimizer `"adam"`, `"sgd"`, `"rmsprop"`, `"adagrad"`, or an
#'   object from [optimizer_adam()] and friends to set the learning rate.
#' @param validation_split Numeric scalar in \[0, 1): the fraction of cells
#'   held out at random for validation when `x_val` is not given.
#' @param callbacks `NULL`, a [callback_early_stopping()] or a
#'   [callback_reduce_lr_on_plateau()], or a list holding one of each.
#' @param assay.type Character scalar: the assay of `object` to use (for a
#'   Seurat object the layer of its default assay: `"counts"`, `"data"` or
#'   `"scale.data"`). With the
#'   `"bce"` or `"mse"` likelihood a `"counts"` assay is log-normalised with
#'   [scuttle::logNormCounts()] (as VAExprs does) and any other assay is used
#'   as it is; count likelihoods use the assay's raw counts.
#' @param labels For `object`: `NULL` (a plain VAE; labels are never taken
#'   from `colData` silently), the name of a `colData(object)` column, or a
#'   vector with one label per cell. Several conditions: several column names,
#'   e.g. `c("cell_type", "batch")`, or a data.frame with one row per cell. The
#'   first is the primary label: generated cells are split among its classes
#'   and draw their latent codes from training cells of their class (see
#'   [gen_exprs()]); put the cell type first.
#' @param likelihood Character scalar, the model of the data given the latent
#'   code: one of `likelihoods()$name` (see [likelihoods()]). `"bce"` (the
#'   default, as VAExprs) is the Bernoulli cross-entropy of per-gene
#'   min-max-scaled values, for any non-negative or log-scale expression, and
#'   generates smooth values on the scale of the training data. The count
#'   likelihoods (`likelihoods()$counts`, e.g. `"nb"`, negative binomial with a
#'   dispersion per gene, or `"zinb"`, zero-inflated) model raw UMI counts: the
#'   encoder reads `log1p` of library-size-normalised counts (counts per
#'   10,000), so the latent space describes composition rather than depth; the
#'   decoder gives per-gene proportions (softmax) that times the cell's library
#'   size are the means. Their loss is the exact negative log-likelihood
#'   (lgamma terms included), so `history` values are comparable across runs
#'   and models of the same data, and [gen_exprs()] draws integer counts.
#'
#'   `"bce"` stays the default for every input, a SingleCellExperiment with a
#'   counts assay included, so that VAExprs code (whose `yan` example stores
#'   RPKM values in its `"counts"` assay) runs unchanged; ask for `"nb"` or
#'   `"zinb"` to model UMI counts as counts.
#' @param seed A whole number from 0 to 2^53, or `NULL` to draw one from R's random number
#'   generator, so that `set.seed()` makes the fit reproducible. It fixes the
#'   validation split (`validation_split`), the initial weights, the minibatch
#'   order and the sampling noise: the same seed and data give the same fit.
#' @param num.threads Integer scalar: threads of the Rust core (at most the
#'   number of cores). Large matrix products and element-wise work are split
#'   into pieces that the threads take as they come free (small ones stay on
#'   one thread), so a thread the system is busy elsewhere does not hold up
#'   the others; an idle thread waits at most 0.1 ms before it sleeps. Two
#'   threads train large models about 1.6-1.8 times as fast as one. Results
#'   do not depend on it.
#' @param verbose Logical scalar: report progress and per-epoch losses.
#' @param kl_warmup Integer scalar >= 0: epochs of KL warm-up (scVI's
#'   `n_epochs_kl_warmup`). In epoch `e < kl_warmup` the KL term is weighted
#'   `regularization * e / kl_warmup` instead of `regularization`, so that the
#'   decoder learns to use the latent code before the prior pulls the codes
#'   together; 0 (the default) trains with the full weight from the start.
#'   The weight of each epoch is in `history$kl_weight`; `history$loss` is
#'   always computed with the full weight, so epochs compare (also for early
#'   stopping).
#'
#' @param covariates Optional continuous conditions (e.g. the fraction of
#'   mitochondrial counts): names of `colData(object)` columns (or of `y_train`'s
#'   columns), or numbers, one row per cell (a vector, matrix or data.frame).
#'   Each is centred and scaled with the training cells' mean and standard
#'   deviation, and its training range is kept: generation refuses values
#'   outside it.
#' @param decoder_conditions Which decoder layers read the conditions (the
#'   encoder always reads them all, after the genes): `"first"` (all conditions
#'   into the first decoder layer, as VAExprs's CVAE), `"all"` (into every
#'   decoder layer, as scVI's `deeply_inject_covariates`), or `"additive"` (the
#'   primary label into the first layer, the other labels and the covariates
#'   into the output layer only, so that their effects add up on the log scale
#'   of the expression, as batch effects are commonly modelled). `NULL` (the
#'   default): `"first"` for one label, `"additive"` for several conditions:
#'   on a simulation of two cell types in two batches with one combination held
#'   out, counterfactual cells of that combination were told apart from the
#'   held-out real ones with an AUC of 0.70-0.72 (`"additive"`), against
#'   0.96-0.99 for `"all"` and `"first"`; cells of combinations seen in training
#'   scored alike under all three.
#'
#' @param tune Logical scalar (count likelihoods): `TRUE` chooses the model's
#'   settings on the user's own cells: a fifth of each class is held out, a
#'   few candidate settings are fitted to the rest and scored on the held-out
#'   cells with [assess_aug()]'s held-out metrics, and the best is fitted to
#'   all the cells (see the section Choosing settings on your own cells).
#'   Leave `epochs`, `latent_dim` and the layers out: tuning chooses them.
#' @param guard Logical scalar (count likelihoods with a dispersion, `"nb"`
#'   and `"zinb"`): stop training when the model begins to hand back its
#'   training cells (see the section Never a copy). `FALSE` trains for all
#'   `epochs`.
#' @param resume A fit to continue training: a checkpoint file written by
#'   [callback_model_checkpoint()], or a fit (read from such a file, or
#'   returned by an interrupted `fit_vae()`). Training goes on from its last
#'   epoch with its own data and settings; only `epochs` (the total, which
#'   may be raised), `callbacks`, `num.threads` and `verbose` may be given
#'   with it.
#'
#' @section Settings chosen from the data:
#' With a count likelihood, the settings not given are chosen from the
#' number of training cells, by rules measured on the realism and
#' augmentation benchmark (`bench/realism.R`, figures in `bench/realism.md`
#' in the source repository; augmentation: a generator fitted on a few cells
#' per class adds cells to a classifier's training set, which then predicts
#' held-out real cells):
#' \tabular{rrrrl}{
#'   **training cells** \tab **latent_dim** \tab **hidden units** \tab **epochs x batch_size** \tab **[gen_exprs()] draws** \cr
#'   fewer than 500 \tab 2 \tab 256 \tab 200 x 128 \tab a mixture per class (`"gmm"`) \cr
#'   500 to 40,000 \tab 10 \tab 128 \tab 200 x 128 \tab a training cell's posterior (`"posterior"`) \cr
#'   more than 40,000 \tab 10 \tab 128 \tab (400 x 20,000 / cells) x 128 \tab `"posterior"` \cr
#' }
#' Why:
#' \itemize{
#'   \item Fewer than 500 cells, where augmentation is for: the largest
#'     augmentation gains measured (116 cells of 16 types: +0.22 balanced
#'     accuracy, against +0.19 for latent 10 with posterior draws; 12 cells of
#'     3 types: +0.35 against +0.27), and a 100-cell model that carries its
#'     labels (label accuracy 0.96 against 0.44).
#'   \item 500 to 40,000 cells: generated cells hardest to tell from held-out
#'     real ones (1,048 cells, 100 epochs: classifier AUC 0.88 against 0.93
#'     for latent 2 with 256 units; 0.83 after 200 epochs).
#'   \item More than 40,000 cells: scVI's epoch rule, a bounded number of
#'     optimizer steps (about 62,500), e.g. 80 epochs of 100,000 cells.
#' }
#' More optimizer steps (smaller batches, or more epochs) did worse on few
#' cells: generated cells nearer their training cells and less useful to a
#' classifier; 100 epochs did worse than 200. A `latent_dim` given gets
#' posterior draws. A message says what was chosen (with `verbose`),
#' `print(fit)` says it again, and `fit$params$chosen` names the settings that
#' were chosen rather than given. The settings given are used as given: VAExprs
#' code that passes `epochs` and `batch_size` trains as before.
#'
#' @section Choosing settings on your own cells:
#' `tune = TRUE` holds out a fifth of each class (classes of at least 3
#' cells; at least 5 cells in all), fits three candidates to the other cells
#' with the automatic settings' `batch_size` and the seed of the fit:
#' \enumerate{
#'   \item the automatic settings (above);
#'   \item the other latent size (10 instead of 2, or 2 instead of 10), same width and epochs;
#'   \item the automatic settings with half the epochs;
#' }
#' and scores each with both kinds of draws (`"posterior"` and `"gmm"`): as
#' many cells per class as were held out are generated and compared with the
#' held-out cells by [assess_aug()] (classifier AUC, memorisation ratio, label
#' accuracy, augmentation gain). Candidates whose memorisation ratio is at
#' least 0.9 and whose label accuracy is at least 0.95 times the held-out
#' cells' own, less one held-out cell's worth (1 / cells held out), come first
#' (all of them when none does); among those the lowest
#' AUC wins, ties going to the larger augmentation gain. The winner is fitted
#' to all the cells, and [gen_exprs()] then draws as it was scored. The
#' table of scores is `fit$tuning` (`chosen` marks the winner). Cost: the
#' three candidates train on four fifths of the cells, 0.8 + 0.8 + 0.4 times
#' one fit, plus the final fit and the scoring (at most 1,000 cells of each
#' set): about 3 times one automatic fit. Progress is
#' reported per candidate; Ctrl-C during tuning returns the candidate in
#' training (fitted to four fifths of the cells) with a warning.
#'
#' @section Never a copy:
#' A generator that hands back its training cells is no use for
#' augmentation and unsafe where cells are patient data. With `guard = TRUE`
#' (the default; likelihoods with a dispersion, whose cells vary as much as
#' real ones: a Poisson model's cells of over-dispersed data are nearer the
#' training cells however long it trains), every tenth of the epochs, cells are
#' generated around (at most 1,000) training cells with the weights of that
#' moment and their distance to the nearest training cell is compared with
#' the training cells' own distance to their nearest other training cell (a
#' new real cell is about that far): the memorisation ratio, as
#' [assess_aug()]'s. When it is below 0.9 at two checks in a row, training
#' stops and the weights of the last check that passed are returned
#' (`params$stop_reason` is `"memorisation"`, the checks are in
#' `params$guard`). Data sets of more than 20,000 cells and on-disk data are
#' not checked (copies are a small-data failure, and a check reads the
#' data). [gen_exprs()] measures the same ratio for the cells it generates and
#' warns below 0.9.
#'
#' @section Several conditions:
#' Real studies record more than a cell type: batches, donors, samples,
#' conditions, sequencing depth. `labels` (or `y_train`) may name several
#' categorical conditions and `covariates` continuous ones; each cell's
#' conditions form one row (every label one-hot over its levels, then the
#' scaled covariates) that the encoder reads with the genes and the decoder
#' with the latent code, as `decoder_conditions` routes it. [gen_exprs()] then
#' generates cells of any combination, including ones never seen in training
#' (`conditions =`), [encode()] reads new cells with their conditions, and
#' [normalized_exprs()] decodes cells under other conditions (batch-corrected
#' expression).
#'
#' @section Training engine:
#' Each minibatch step (forward pass, loss, backward pass, optimizer update)
#' runs as one fused, hand-written step in the Rust core, tested against the
#' same model trained with burn's automatic differentiation and optimizers.
#' `options(exprsgen.engine = "burn")` trains with burn instead (slower; for
#' comparison and debugging); both give the same fit up to float rounding.
#'
#' @section Large and on-disk data:
#' A dgCMatrix is used in place: minibatches are gathered from its slots and
#' it is never densified. A DelayedArray (such as an HDF5Array or
#' TENxMatrix) is never read whole: before training one pass checks its
#' values and computes library sizes (and, for `"bce"`/`"mse"`, the scaling),
#' then each epoch reads blocks of cells (about 10 million values each; set
#' `options(exprsgen.block_cells = n)` to change it) in an order drawn from
#' the seed, shuffling cells within each block. Memory then grows with the
#' block size, not with the number of cells.
#'
#' @section Interrupts, checkpoints and memory:
#' Ctrl-C (or SIGINT to an Rscript) stops training after the current
#' minibatch (the core asks R about every 0.1 s): the model after that step
#' is returned with a warning, the interrupted epoch's history row covering
#' the cells trained on, and `params$stop_reason` is `"interrupted"`. Such a
#' fit can be continued with `fit_vae(resume = fit)` (the interrupted epoch
#' counts as run).
#'
#' [callback_model_checkpoint()] writes the fit so far to a file during
#' training; `fit_vae(resume = file, epochs = E)` continues it to `E` epochs
#' in all (as keras's `initial_epoch`) with its data, architecture, settings,
#' optimizer state and random stream: a fit resumed after `k` of `E` epochs
#' is the fit an uninterrupted `E`-epoch run with the same seed gives. A run
#' that early stopping ended continues only with other `callbacks` (the same
#' would stop it again at once); one that the memorisation guard ended is
#' not continued.
#'
#' Before any weights are allocated, the memory the model and its training
#' need is compared with what the session can still allocate (Linux's
#' `MemAvailable`, the room under an address-space limit such as
#' `ulimit -v`, and the room under the memory limit of the control group the
#' session runs in: a Docker container, a Slurm `--mem` job, cgroup v1 or
#' v2); a model that does not fit is refused with an error naming
#' the argument that makes it large. `options(exprsgen.memory_limit = bytes)`
#' sets the limit assumed; with `options(exprsgen.engine = "burn")`, whose
#' failed allocations end the process, the address-space and control-group
#' limits hold whatever that option says. Count likelihoods take counts up
#' to 1e9 per entry.
#'
#' @return A list of class `exprsgen_fit`, made only of plain R data (it
#'   survives [saveRDS()]):
#' \describe{
#'   \item{`model`}{The architecture and the trained weights (class
#'     `exprsgen_model`; see [plot_vae()]).}
#'   \item{`preprocessing`}{The training (and validation) data as prepared,
#'     genes in rows and cells in columns, their labels, and the scaling
#'     parameters (`minmax`).}
#'   \item{`history`}{A data.frame with one row per epoch: `loss`,
#'     `val_loss` (NA without validation cells), the parts of the loss
#'     (`reconstruction`, `kl`, and `val_` of each), and the `kl_weight` and
#'     `learning_rate` in effect in that epoch.}
#'   \item{`params`}{The training settings, the seed, the epochs run, why
#'     training stopped, and `epoch_seconds`: wall and process-CPU seconds of
#'     each epoch's training pass; for count models also `chosen` (the
#'     settings chosen from the data), `regime`, `generation` (the draws
#'     [gen_exprs()] makes by default) and `guard` (the memorisation checks).}
#'   \item{`tuning`}{With `tune = TRUE`: the candidates' scores.}
#'   \item{`latent`}{The training cells' latent means and log-variances under
#'     the trained encoder (`mean`, `log_var`: cells x latent matrices),
#'     computed once after training; [gen_exprs()] draws around them and
#'     [encode()] returns them, without encoding the training cells again.}
#' }
#' @seealso [gen_exprs()] to generate cells, [plot_vae()], [plot_aug()].
#' @examples
#' set.seed(1)
#' x <- matrix(rexp(60 * 50), 60, 50)
#' fit <- fit_vae(x_train = x,
#'                encoder_layers = list(layer_input(shape = 50),
#'                                      layer_dense(16, "relu")),
#'                decoder_layers = list(layer_dense(16, "relu"),
#'                                      layer_dense(50, "sigmoid")),
#'                epochs = 5, batch_size = 16, verbose = FALSE)
#' fit$history
#'
#' # cell types in two batches, and a continuous covariate
#' counts <- matrix(rpois(60 * 50, 3), 60, 50, dimnames = list(NULL, paste0("g", 1:50)))
#' cond <- data.frame(type = rep(c("A", "B"), 30), batch = rep(c("b1", "b2"), each = 30),
#'                    depth = runif(60))
#' fit2 <- fit_vae(x_train = counts, y_train = cond, covariates = "depth",
#'                 likelihood = "nb", epochs = 5, batch_size = 16, verbose = FALSE)
#' fit2
#'
#' # a count model with the settings chosen from the data, then on held-out cells
#' fit3 <- fit_vae(x_train = counts, y_train = cond$type, likelihood = "nb", verbose = FALSE)
#' fit3
#' \donttest{
#' fit4 <- fit_vae(x_train = counts, y_train = cond$type, likelihood = "nb", tune = TRUE,
#'                 verbose = FALSE)
#' fit4$tuning[, c("fit", "draws", "classifier_auc", "memorisation", "chosen")]
#' }
#' @export
fit_vae <- function(object = NULL, x_train = NULL, x_val = NULL, y_train = NULL, y_val = NULL,
                    encoder_layers, decoder_layers, latent_dim = NULL, regularization = 1,
                    epochs, batch_size, preprocessing = NULL, use_generator = FALSE,
                    optimizer = "adam", validation_split = 0, callbacks = NULL,
                    assay.type = "counts", labels = NULL,
                    likelihood = "bce", seed = NULL,
                    num.threads = 1L, verbose = TRUE, kl_warmup = 0, covariates = NULL,
                    decoder_conditions = NULL, tune = FALSE, guard = TRUE, resume = NULL) {
    call <- rlang::current_env()
    if (!is.null(resume)) {
        # training continues with the data and settings of `resume`
        free <- c("resume", "epochs", "callbacks", "num.threads", "verbose")
        given <- setdiff(names(match.call())[-1L], free)
        if (length(given)) {
            .abort(c("{.arg {given}} cannot be given with {.arg resume}: training continues with the data and settings of the fit it resumes.",
                     i = "Only {.arg epochs} (the new total), {.arg callbacks}, {.arg num.threads} and {.arg verbose} may be given."),
                   class = "exprsgen_error_argument")
        }
        epochs <- if (missing(epochs) || is.null(epochs)) NULL else .check_count(epochs, "epochs")
        num.threads <- min(.check_count(num.threads, "num.threads"), max(1L, parallel::detectCores(), na.rm = TRUE))
        return(.resume_fit(resume, epochs, callbacks, .check_flag(verbose, "verbose"), num.threads, call))
    }
    # Cheap checks first, before any data is touched.
    likelihood_given <- !missing(likelihood)
    likelihood <- .check_one_of(likelihood, .vocabulary()$likelihoods$name, "likelihood")
    counts <- .is_count_likelihood(likelihood)
    auto <- c(epochs = missing(epochs) || is.null(epochs), batch_size = missing(batch_size) || is.null(batch_size))
    if (!counts && any(auto)) {
        what <- names(auto)[auto][1]
        .abort(c("{.arg {what}} is missing: how many {if (what == 'epochs') 'passes over the data' else 'cells per minibatch'}?",
                 i = paste("Count likelihoods ({.code likelihood = \"nb\"}) choose {.arg epochs} and {.arg batch_size}",
                           "from the data when they are not given.")))
    }
    tune <- .check_flag(tune, "tune")
    guard <- .check_flag(guard, "guard")
    if (tune) {
        if (!counts) .abort("{.arg tune} = TRUE needs a count likelihood (e.g. {.code likelihood = \"nb\"}).")
        given <- c(epochs = !auto[["epochs"]], latent_dim = !is.null(latent_dim),
                   encoder_layers = !missing(encoder_layers), decoder_layers = !missing(decoder_layers))
        if (any(given)) {
            .abort(c("{.arg tune} = TRUE chooses {.arg {names(given)[given]}}: leave {?it/them} out.",
                     i = "Or give your settings and leave {.arg tune} FALSE."))
        }
    }
    if (!auto[["epochs"]]) epochs <- .check_count(epochs, "epochs")
    if (!auto[["batch_size"]]) batch_size <- .check_count(batch_size, "batch_size")
    regularization <- .check_number(regularization, "regularization", min = 0, max = 1e6)
    validation_split <- .check_number(validation_split, "validation_split", min = 0, max = 1,
                                      max_open = TRUE)
    num.threads <- min(.check_count(num.threads, "num.threads"),
                       max(1L, parallel::detectCores(), na.rm = TRUE))
    verbose <- .check_flag(verbose, "verbose")
    .check_flag(use_generator, "use_generator")
    optimizer <- .as_optimizer(optimizer)
    if (!is.null(latent_dim)) latent_dim <- .check_count(latent_dim, "latent_dim")
    cbs <- .as_callbacks(callbacks)
    kl_warmup <- .check_count(kl_warmup, "kl_warmup", min = 0)
    layers_given <- c(encoder = !missing(encoder_layers), decoder = !missing(decoder_layers))
    latent_given <- !is.null(latent_dim)
    if (sum(layers_given) == 1L) {
        missing_arg <- paste0(names(layers_given)[!layers_given], "_layers")
        .abort("{.arg {missing_arg}} is missing (give both encoder and decoder layers, or neither for the defaults).")
    }
    seed <- if (is.null(seed)) sample.int(.Machine$integer.max, 1L) else .check_seed(seed)
    if (!is.null(preprocessing)) {
        given <- c(object = !is.null(object), x_train = !is.null(x_train), y_train = !is.null(y_train),
                   x_val = !is.null(x_val), y_val = !is.null(y_val))
        if (any(given)) {
            .abort(c("Give either {.arg preprocessing} or data ({.arg {names(given)[given]}}), not both.",
                     i = "{.arg preprocessing} holds the data it was prepared from."))
        }
    }

    # Data.
    prep <- if (is.null(preprocessing)) {
        .prepare_inputs(object, x_train, x_val, y_train, y_val, assay.type, labels,
                        validation_split, counts, call, covariates, threads = num.threads, seed = seed)
    } else {
        p <- .upgrade_preprocessing(.check_preprocessing(preprocessing, call))
        .check_data_files(p, "preprocessing", call)
        p
    }
    if (is.null(preprocessing)) .check_gene_names(prep$genes, if (is.null(object)) "x_train" else "object", call)
    if (!counts && !likelihood_given && verbose && is.null(preprocessing) && .holds_counts(prep)) {
        cli::cli_inform(c(i = paste("These look like raw counts: the default {.code likelihood = \"bce\"} (VAExprs's model) fits",
                                    "log-normalised, min-max-scaled values and generates values on that scale."),
                          " " = paste("{.code likelihood = \"nb\"} models the counts themselves (depth, overdispersion),",
                                      "generates whole-number counts, and chooses its settings from the data; see {.code ?fit_vae}.")),
                        class = "exprsgen_message_counts_hint", .frequency = "once",
                        .frequency_id = "exprsgen_counts_hint")
    }
    n_genes <- length(prep$genes)
    n_cells <- ncol(prep$x_train)
    # settings not given, chosen from the number of cells (count models; see .auto_settings())
    chosen <- if (counts) .auto_settings(n_cells)
    if (auto[["batch_size"]]) batch_size <- chosen$batch_size
    tuning <- NULL
    if (tune) {
        shared <- list(likelihood = likelihood, batch_size = batch_size, regularization = regularization, guard = guard,
                       optimizer = optimizer, callbacks = callbacks, seed = seed, num.threads = num.threads,
                       kl_warmup = kl_warmup, decoder_conditions = decoder_conditions)
        t <- .with_seed(seed, .tune(prep, shared, chosen, verbose))
        if (!is.null(t$interrupted)) {
            cli::cli_warn(c("Tuning was interrupted: returning the candidate fit in training when it stopped.",
                            i = "It was fitted to {ncol(t$interrupted$preprocessing$x_train)} of the {n_cells} cells."),
                          class = "exprsgen_warning_interrupted")
            t$interrupted$tuning <- t$table
            return(t$interrupted)
        }
        tuning <- t$table
        chosen$latent_dim <- t$best$latent_dim
        chosen$units <- t$best$units
        chosen$epochs <- t$best$epochs
        chosen$generation <- list(latent = t$best$draws)
        chosen$regime <- paste0("tuned: ", t$best$fit, ", ", t$best$draws, " draws")
        if (verbose) {
            cli::cli_inform(c(v = paste("Tuning chose {t$best$fit} with {t$best$draws} draws (held-out AUC",
                                        "{format(round(t$best$classifier_auc, 3))}, memorisation",
                                        "{format(round(t$best$memorisation, 2))}); fitting it to all {n_cells} cells.")),
                            class = "exprsgen_message_tune")
        }
    }
    if (auto[["epochs"]]) epochs <- chosen$epochs
    latent_dim <- latent_dim %||% if (counts) chosen$latent_dim else 2L
    # the rule's draws go with its latent size: a latent size given gets the
    # count models' posterior draws
    if (counts && latent_given) chosen$generation <- list(latent = "posterior")
    conditions <- .conditions_layout(.train_conditions(prep))
    classes <- if (is.null(prep$y_train)) character(0) else levels(prep$y_train)
    one_level <- names(conditions$labels)[lengths(conditions$labels) < 2L]
    if (length(one_level)) {
        cli::cli_inform(c(i = "All training cells have the same {.val {one_level}}: the conditional VAE has a single class of {?it/each}."))
    }
    if (!all(layers_given)) {
        units <- if (counts) chosen$units else 256L
        encoder_layers <- list(layer_input(shape = n_genes), layer_dense(units, "relu"))
        decoder_layers <- list(layer_dense(units, "relu"),
                               layer_dense(n_genes, if (counts) "linear" else "sigmoid"))
    }
    spec <- .model_spec(encoder_layers, decoder_layers, latent_dim, n_genes, classes, call, conditions)
    spec$likelihood <- likelihood
    spec$decoder_conditions <- .decoder_routes(conditions, decoder_conditions, length(spec$decoder_units), call)
    out_act <- spec$decoder_activation[length(spec$decoder_activation)]
    if (counts && out_act != "linear") {
        cli::cli_inform(c(i = paste("The output layer's {.val {out_act}} activation is not used by the {.val {likelihood}}",
                                    "likelihood: its outputs go through a softmax over genes.")))
    }
    if (is.null(preprocessing)) {
        if (counts) {
            prep$transform <- list(type = "counts", target_sum = 1e4)
        } else {
            # the genes' ranges found when the data were read (fitted on the training
            # cells only: found again after a split)
            prep$minmax <- if (is.null(prep$x_val) && !is.null(prep$scan)) {
                prep$scan[c("min", "max")]
            } else if (!.is_delayed(prep$x_train)) {
                .eg_minmax(prep$x_train)
            } else {
                .scan_cells(prep$x_train, "x_train", FALSE, call)[c("min", "max")]
            }
            prep$transform <- c(list(type = "minmax"), prep$minmax)
        }
    } else if (identical(prep$transform$type, "counts") != counts) {
        .abort("{.arg preprocessing} was prepared for another kind of likelihood than {.val {likelihood}}.")
    }
    prep$classes <- classes
    if (is.null(preprocessing)) prep$files <- .data_files(prep$x_train, prep$x_val)
    prep$scan <- NULL
    prep$genes_named <- NULL

    # Training.
    .check_fit_memory(spec, batch_size, ncol(prep$x_train), if (is.null(object)) "x_train" else "object",
                      isTRUE(cbs$stopping$restore_best_weights), call)
    if (counts && verbose && !any(auto)) .advise_steps(epochs, ncol(prep$x_train), batch_size)
    if (counts && verbose && any(auto)) {
        cli::cli_inform(c(i = paste0("{n_cells} training cells: {epochs} epoch{?s} of {batch_size}-cell minibatches ",
                                     "({.emph {chosen$regime}}; see {.code ?fit_vae}, section Settings chosen from the data).")),
                        class = "exprsgen_message_auto")
    }
    .check_checkpoint_folder(cbs$checkpoint, call)
    train <- list(optimizer = optimizer$name, learning_rate = optimizer$learning_rate,
                  regularization = regularization, batch_size = batch_size,
                  seed = seed, threads = num.threads, engine = .engine())
    # all that training needs, kept in checkpoints to continue from (fit_vae(resume =))
    setup <- list(spec = spec, train = train, epochs = epochs, callbacks = cbs, kl_warmup = kl_warmup,
                  guard = guard,
                  params = list(batch_size = batch_size, optimizer = optimizer$name,
                                learning_rate = optimizer$learning_rate, regularization = regularization,
                                kl_warmup = kl_warmup, latent_dim = latent_dim, seed = seed,
                                num.threads = num.threads,
                                chosen = if (counts) c(names(auto)[auto],
                                                       if (!latent_given) "latent_dim",
                                                       if (!all(layers_given)) "units"),
                                regime = if (counts) chosen$regime,
                                generation = if (counts) chosen$generation))
    out <- .run_fit(setup, prep, verbose, call)
    if (!is.null(tuning)) out$tuning <- tuning
    out
}

# Trains the model of `setup` (see fit_vae()) on `prep`, from scratch or from the
# state `resume`, writing checkpoints when asked, and assembles the fit.
.run_fit <- function(setup, prep, verbose, call, resume = NULL) {
    threads <- setup$train$threads
    guard <- if (setup$guard && .guarded_likelihood(setup$spec$likelihood)) {
        .guard_plan(prep, setup$epochs, setup$train$seed, threads)
    }
    assemble <- function(run, latent) {
        model <- structure(list(spec = setup$spec, weights = run$weights), class = "exprsgen_model")
        p <- setup$params
        params <- c(list(epochs = setup$epochs, epochs_run = nrow(run$history)),
                    p[c("batch_size", "optimizer", "learning_rate", "regularization", "kl_warmup", "latent_dim",
                        "seed", "num.threads")],
                    list(stop_reason = run$stop_reason, best_epoch = run$best_epoch, seconds = run$seconds,
                         epoch_seconds = run$epoch_seconds, guard = run$guard),
                    p[c("chosen", "regime", "generation")])
        out <- list(model = model, preprocessing = prep, history = run$history, params = params,
                    latent = latent)
        # what training continues from (checkpoints, interrupted fits)
        if (!is.null(run$state)) out$checkpoint <- list(version = 1L, setup = setup, state = run$state)
        structure(out, class = "exprsgen_fit")
    }
    cb <- setup$callbacks$checkpoint
    checkpoint <- if (!is.null(cb)) {
        warned <- FALSE
        list(every = cb$save_freq, save = function(run) {
            path <- .checkpoint_path(cb$filepath, nrow(run$history))
            fit <- assemble(run, latent = NULL)
            # (a failed write's warnings, e.g. "cannot open file", go into one warning)
            why <- character(0)
            tryCatch(withCallingHandlers(.write_atomic(path, function(f) saveRDS(fit, f)), warning = function(w) {
                why <<- c(why, conditionMessage(w))
                invokeRestart("muffleWarning")
            }), error = function(e) {
                if (!warned) {
                    cli::cli_warn(c("The checkpoint {.file {path}} could not be written; training goes on.",
                                    x = paste(c(why, conditionMessage(e)), collapse = "; ")),
                                  class = "exprsgen_warning_checkpoint")
                }
                warned <<- TRUE
            })
        })
    }
    # Training handles its own interrupts; then the training cells' latent codes, once:
    # gen_exprs() and encode() draw around them (an interrupt there keeps the model:
    # the codes are then encoded when first needed).
    run <- latent <- NULL
    tryCatch({
        run <- .with_memory_errors(
            .train(setup$spec, setup$train, prep, setup$epochs, setup$callbacks$stopping, verbose,
                   schedule = list(kl_warmup = setup$kl_warmup, plateau = setup$callbacks$plateau),
                   guard = guard, resume = resume, checkpoint = checkpoint),
            "Training", "Use a smaller model (fewer units, a smaller {.arg latent_dim}) or fewer genes.", call = call)
        model <- structure(list(spec = setup$spec, weights = run$weights), class = "exprsgen_model")
        latent <- .encode_training(model, prep, threads)
    }, interrupt = function(e) {
        if (is.null(run)) rlang::interrupt()  # (not past training: nothing to return)
        cli::cli_warn(c("Interrupted while encoding the training cells after training: the model is returned without their codes.",
                        i = "{.fn gen_exprs} and {.fn encode} encode them when they need them."),
                      class = "exprsgen_warning_interrupted")
    })
    fit <- NULL
    tryCatch(suspendInterrupts(fit <- assemble(run, latent)), interrupt = function(e) NULL)
    fit
}

# Whether the prepared data are raw counts (for the hint to count users): a "counts"
# assay (log-normalised on its way in), or an x_train in memory of whole non-negative
# numbers, not only 0 and 1.
.holds_counts <- function(prep) {
    if (identical(prep$normalization, "logNormCounts")) return(TRUE)
    x <- prep$x_train
    v <- if (methods::is(x, "dgCMatrix")) x@x else if (is.matrix(x) && is.double(x)) x else return(FALSE)
    if (!length(v)) return(FALSE)
    scan <- .scan_values(v)  # c(finite, counts, max), one pass in the core
    scan[[2]] == 1 && scan[[3]] > 1
}

# Gene names are how encode() and normalized_exprs() match new cells' genes to the
# model's: duplicated or empty ones would match the wrong gene silently.
.check_gene_names <- function(genes, arg, call) {
    empty <- is.na(genes) | !nzchar(genes)
    if (any(empty)) {
        .abort(c("{.arg {arg}} has {sum(empty)} gene{?s} without a name (e.g. gene {which(empty)[1]}).",
                 i = "Name every gene, or remove the unnamed ones."), call = call)
    }
    dup <- unique(genes[duplicated(genes)])
    if (length(dup)) {
        .abort(c("{.arg {arg}} has duplicated gene names: {.val {utils::head(dup, 5)}}{if (length(dup) > 5) ', ...' else ''}.",
                 i = "Make them unique (e.g. {.code make.unique()}) or keep one row per gene."), call = call)
    }
    invisible(genes)
}

# Count models kept improving over thousands of optimizer steps in the realism
# benchmark (bench/realism.md): say so when a fit will take far fewer.
.advise_steps <- function(epochs, n_cells, batch_size, enough = 2000) {
    per_epoch <- ceiling(n_cells / min(batch_size, n_cells))
    steps <- epochs * per_epoch
    if (steps < enough) {
        cli::cli_inform(c(i = paste0("{steps} optimizer step{?s} ({epochs} epoch{?s} of {per_epoch} minibatch{?es}): ",
                                     "count models generated the most realistic cells after about 1,500-3,000 in the realism benchmark."),
                          " " = "More {.arg epochs} or a smaller {.arg batch_size} give more."),
                        class = "exprsgen_message_few_steps")
    }
    invisible(steps)
}

# The training engine: option exprsgen.engine, "fused" (default) or another of the
# core's engines ("burn").
.engine <- function(call = rlang::caller_env()) {
    engine <- getOption("exprsgen.engine", "fused")
    engines <- .vocabulary()$engines
    if (!(is.character(engine) && length(engine) == 1L && engine %in% engines)) {
        .abort("Option {.code exprsgen.engine} must be one of {.val {engines}}.", call = call)
    }
    engine
}

# `x` as one of `choices` (a character vector), or an error naming `name`.
.check_one_of <- function(x, choices, name, call = rlang::caller_env()) {
    if (!is.character(x) || length(x) != 1L || is.na(x) || !x %in% choices) {
        .abort("{.arg {name}} must be one of {.val {choices}}.", call = call)
    }
    x
}

.check_choice <- function(x, name, call = rlang::caller_env()) {
    choices <- eval(formals(sys.function(sys.parent()))[[name]])
    if (identical(x, choices)) return(choices[1])
    if (!is.character(x) || length(x) != 1L || !x %in% choices) {
        .abort("{.arg {name}} must be one of {.val {choices}}.", call = call)
    }
    x
}

# list(stopping, plateau): the early-stopping and learning-rate callbacks (or NULL).
.as_callbacks <- function(callbacks, call = rlang::caller_env()) {
    if (is.null(callbacks)) return(list(stopping = NULL, plateau = NULL, checkpoint = NULL))
    if (inherits(callbacks, "exprsgen_callback")) callbacks <- list(callbacks)
    ok <- is.list(callbacks) && all(vapply(callbacks, inherits, logical(1), "exprsgen_callback"))
    if (!ok) {
        .abort(paste("{.arg callbacks} must be {.fn callback_early_stopping}, {.fn callback_reduce_lr_on_plateau}",
                     "or {.fn callback_model_checkpoint} (or a list of them)."),
               call = call)
    }
    callbacks <- lapply(callbacks, .remake_callback, call = call)
    type <- vapply(callbacks, function(cb) cb$type, character(1))
    twice <- unique(type[duplicated(type)])
    if (length(twice)) {
        .abort("{.arg callbacks} may hold one callback of each kind (two of type {.val {twice}}).", call = call)
    }
    list(stopping = if (any(type == "early_stopping")) callbacks[[which(type == "early_stopping")]],
         plateau = if (any(type == "reduce_lr_on_plateau")) callbacks[[which(type == "reduce_lr_on_plateau")]],
         checkpoint = if (any(type == "model_checkpoint")) callbacks[[which(type == "model_checkpoint")]])
}

# A callback as its constructor makes it, so that one built or changed by hand is
# checked as the constructor checks its arguments (callbacks saved before they had a
# `type` are early stopping ones).
.remake_callback <- function(cb, call) {
    type <- cb$type %||% "early_stopping"
    make <- switch(if (is.character(type) && length(type) == 1L) type else "",
                   early_stopping = callback_early_stopping,
                   reduce_lr_on_plateau = callback_reduce_lr_on_plateau,
                   model_checkpoint = callback_model_checkpoint)
    if (is.null(make)) {
        .abort("{.arg callbacks} holds a callback of unknown type: make callbacks with the {.code callback_*()} functions.",
               call = call, class = "exprsgen_error_argument")
    }
    args <- unclass(cb)
    args$type <- NULL
    out <- tryCatch(do.call(make, args), error = function(e) {
        .abort(c("{.arg callbacks} holds a {.val {type}} callback its constructor would not make:", x = conditionMessage(e)),
               call = call, class = "exprsgen_error_argument")
    })
    missing_fields <- setdiff(setdiff(names(out), "type"), names(args))
    if (length(missing_fields)) {
        .abort("{.arg callbacks} holds a {.val {type}} callback without {.field {missing_fields}}: make it with its {.code callback_*()} function.",
               call = call, class = "exprsgen_error_argument")
    }
    out
}

.check_preprocessing <- function(p, call) {
    need <- c("x_train", "genes", "transform")
    if (!is.list(p) || !all(need %in% names(p))) {
        .abort("{.arg preprocessing} must be the {.code $preprocessing} of an earlier {.fn fit_vae} result.",
               call = call)
    }
    p
}

# The architecture as plain R data (what the core and plot_vae() read).
.model_spec <- function(encoder_layers, decoder_layers, latent_dim, n_genes, classes, call,
                        conditions = NULL) {
    as_layers <- function(x, arg) {
        if (inherits(x, "exprsgen_layer")) x <- list(x)
        if (!is.list(x) || !length(x) || !all(vapply(x, inherits, logical(1), "exprsgen_layer"))) {
            .abort("{.arg {arg}} must be a list of {.fn layer_input}/{.fn layer_dense} layers.", call = call)
        }
        for (l in x) .check_activation(l$activation, arg, call = call)
        x
    }
    enc <- as_layers(encoder_layers, "encoder_layers")
    dec <- as_layers(decoder_layers, "decoder_layers")
    if (enc[[1]]$type == "input") {
        if (enc[[1]]$units != n_genes) {
            .abort(c("{.arg encoder_layers} starts with {.code layer_input(shape = {enc[[1]]$units})} but the data have {n_genes} genes.",
                     i = "The shape of the input layer is the number of genes."), call = call)
        }
        enc <- enc[-1]
    }
    enc <- .dense_with_extras(enc, "encoder_layers", call)
    dec <- .dense_with_extras(dec, "decoder_layers", call)
    if (!length(dec$dense)) .abort("{.arg decoder_layers} must hold {.fn layer_dense} layers.", call = call)
    out_layer <- length(dec$dense)
    if (dec$norm[out_layer] != "none" || dec$after[out_layer] != "none" || dec$dropout[out_layer] > 0) {
        .abort(paste("{.arg decoder_layers} may not end with a normalisation or {.fn layer_dropout}:",
                     "the output layer's values are the likelihood's."), call = call)
    }
    enc_extras <- enc
    dec_extras <- dec
    enc <- enc$dense
    dec <- dec$dense
    last <- dec[[length(dec)]]$units
    if (last != n_genes) {
        .abort(c("The last layer of {.arg decoder_layers} has {last} unit{?s} but the data have {n_genes} genes.",
                 i = "The decoder's output is one value per gene."), call = call)
    }
    units <- function(ls) vapply(ls, function(l) as.integer(l$units), integer(1))
    acts <- function(ls) vapply(ls, function(l) l$activation, character(1))
    lname <- function(ls) vapply(ls, function(l) if (is.null(l$name)) NA_character_ else l$name, character(1))
    # n_classes: the width of the condition row (one-hot labels and covariates)
    width <- if (is.null(conditions)) length(classes) else .condition_width(conditions)
    spec <- list(n_genes = n_genes, n_classes = width, latent_dim = latent_dim,
                 encoder_units = units(enc), encoder_activation = acts(enc), encoder_names = lname(enc),
                 decoder_units = units(dec), decoder_activation = acts(dec), decoder_names = lname(dec),
                 classes = classes, conditions = conditions,
                 encoder_norm = enc_extras$norm, encoder_dropout = enc_extras$dropout,
                 decoder_norm = dec_extras$norm, decoder_dropout = dec_extras$dropout)
    # batch normalisation's settings, per layer (NA elsewhere), and activations after a
    # normalisation ("none" elsewhere), only in models that have them
    if (any(c(enc_extras$norm, dec_extras$norm) == "batch")) {
        spec[c("encoder_norm_momentum", "encoder_norm_epsilon")] <- enc_extras[c("momentum", "epsilon")]
        spec[c("decoder_norm_momentum", "decoder_norm_epsilon")] <- dec_extras[c("momentum", "epsilon")]
    }
    if (any(c(enc_extras$after, dec_extras$after) != "none")) {
        spec$encoder_activation_after <- enc_extras$after
        spec$decoder_activation_after <- dec_extras$after
    }
    spec
}

# A list of layers: dense layers, each optionally followed by a normalisation, an
# activation (layer_activation()) and then a dropout layer. Returns list(dense = the
# dense layers, norm = "none"/"layer"/"batch", after = the activation after the
# normalisation ("none"), dropout = rates, and batch normalisation's momentum and
# epsilon (NA elsewhere), one per dense layer). An activation right after a linear
# dense layer becomes that layer's activation.
.dense_with_extras <- function(layers, arg, call) {
    dense <- list()
    norm <- after <- character(0)
    dropout <- momentum <- epsilon <- numeric(0)
    for (l in layers) {
        if (l$type == "dense") {
            dense[[length(dense) + 1L]] <- l
            norm <- c(norm, "none")
            after <- c(after, "none")
            dropout <- c(dropout, 0)
            momentum <- c(momentum, NA_real_)
            epsilon <- c(epsilon, NA_real_)
            next
        }
        k <- length(dense)
        if (l$type == "input") {
            .abort("{.arg {arg}} may hold {.fn layer_input} only first, then {.fn layer_dense} layers.", call = call)
        }
        fn <- switch(l$type, dropout = "layer_dropout", activation = "layer_activation",
                     if (identical(l$norm, "batch")) "layer_batch_normalization" else "layer_layer_normalization")
        if (k == 0L) .abort("{.arg {arg}}: {.fn {fn}} must follow a {.fn layer_dense}.", call = call)
        if (l$type == "activation") {
            if (dropout[k] > 0 || after[k] != "none") {
                .abort("{.arg {arg}}: one {.fn layer_activation} per dense layer, before its {.fn layer_dropout}.", call = call)
            }
            if (norm[k] != "none") {
                after[k] <- l$activation
            } else if (identical(dense[[k]]$activation, "linear")) {
                dense[[k]]$activation <- l$activation
            } else {
                .abort(c("{.arg {arg}}: {.fn layer_activation} follows a {.fn layer_dense} that has an activation ({.val {dense[[k]]$activation}}).",
                         i = "Give that layer no activation, or put a normalisation between them."), call = call)
            }
            next
        }
        if (l$type == "normalization") {
            if (norm[k] != "none" || dropout[k] > 0 || after[k] != "none") {
                .abort("{.arg {arg}}: one normalisation per dense layer, before its {.fn layer_dropout}.", call = call)
            }
            norm[k] <- l$norm
            if (identical(l$norm, "batch")) {
                momentum[k] <- l$momentum
                epsilon[k] <- l$epsilon
            }
        } else if (l$type == "dropout") {
            if (dropout[k] > 0) .abort("{.arg {arg}}: one {.fn layer_dropout} per dense layer.", call = call)
            dropout[k] <- l$rate
        }
    }
    list(dense = dense, norm = norm, after = after, dropout = dropout, momentum = momentum, epsilon = epsilon)
}

#' @method print exprsgen_fit
#' @export
print.exprsgen_fit <- function(x, ...) {
    .check_fit(x, "x", data = FALSE)
    s <- x$model$spec
    cat("<exprsgen fit> ", if (s$n_classes) "conditional VAE" else "VAE", ": ",
        s$n_genes, " genes, latent dimension ", s$latent_dim, "\n", sep = "")
    cs <- .conditions_spec(s, x$preprocessing)
    if (length(.condition_names(cs)) > 1L || nrow(cs$covariates)) {
        cov <- cs$covariates$name
        cat("  conditions: ", paste(names(cs$labels), collapse = ", "),
            if (length(cov)) paste0(if (length(cs$labels)) "; ", "covariate", if (length(cov) > 1L) "s", " ",
                                    paste(cov, collapse = ", ")),
            "\n", sep = "")
    }
    if (length(s$classes)) cat("  classes: ", paste(s$classes, collapse = ", "), "\n", sep = "")
    p <- x$preprocessing
    n_cells <- if (isTRUE(p$cells_in_rows)) nrow(p$x_train) else ncol(p$x_train)
    runs <- nrow(x$history)
    cat("  trained on ", n_cells, " cells for ", runs, " epoch", if (runs != 1) "s",
        " (", x$params$stop_reason %||% "unknown", ")",
        if (runs && is.numeric(x$params$seconds))
            paste0(" in ", format(round(x$params$seconds, 1), nsmall = 1), " s, ",
                   format(signif(x$params$seconds / runs, 3)), " s/epoch"), "\n", sep = "")
    ch <- x$params$chosen
    if (length(ch) || !is.null(x$tuning)) {
        g <- x$params$generation
        what <- c(epochs = paste(x$params$epochs, "epochs"), batch_size = paste0(x$params$batch_size, "-cell minibatches"),
                  latent_dim = paste("latent dimension", s$latent_dim), units = paste(s$encoder_units[1], "hidden units"))
        cat("  chosen from the data (", x$params$regime, "): ", paste(what[intersect(names(what), ch)], collapse = ", "),
            if (!is.null(g)) paste0("; ", g$latent, " draws"),
            "\n", sep = "")
        if (!is.null(x$tuning)) {
            cat("  tuned on held-out cells: ", nrow(x$tuning), " candidates scored, see $tuning\n", sep = "")
        }
    }
    if (runs) {
        h <- x$history[runs, ]
        cat("  final loss ", format(signif(h$loss, 5)),
            if (isTRUE(!is.na(h$val_loss))) paste0(", val_loss ", format(signif(h$val_loss, 5))), "\n", sep = "")
    }
    invisible(x)
}

#' @method print exprsgen_model
#' @export
print.exprsgen_model <- function(x, ...) {
    layers <- .model_layers(x)
    cat("<exprsgen model> ", nrow(layers), " layers, ", .n_parameters(x$spec),
        " parameters\n", sep = "")
    print(layers[, c("name", "type", "input_shape", "output_shape")], row.names = FALSE)
    invisible(x)
}

.n_parameters <- function(spec) {
    b <- .blocks(spec)
    sum(b$n_in * b$n_out + b$n_out)
}
