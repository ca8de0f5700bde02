# Calls into the Rust core (src/rust/binding). Each .Call returns its value or a
# string of class "exprsgen_core_error", raised here as an R error.

.core <- function(result, call = rlang::caller_env(2)) {
    # Ctrl-C seen by the core between chunks of cells: the user's interrupt, resumed.
    if (inherits(result, "exprsgen_core_interrupt")) rlang::interrupt()
    if (inherits(result, "exprsgen_core_error")) {
        msg <- unclass(result)
        cli::cli_abort("{msg}", class = c("exprsgen_error_core", "exprsgen_error"),
                       call = call)
    }
    result
}

# What the core defines and R must know (likelihoods, activations, optimizers,
# engines), read once per session: R keeps no copies of these lists.
.vocabulary <- local({
    cache <- NULL
    function() {
        if (is.null(cache)) cache <<- .core(.Call(wrap__eg_vocabulary))
        cache
    }
})

# Whether `likelihood` (a valid name) is a count model.
.is_count_likelihood <- function(likelihood) {
    v <- .vocabulary()$likelihoods
    v$counts[match(likelihood, v$name)]
}

# The parameter blocks of an architecture (plain R spec), in weight order:
# data.frame(name, role, n_in, n_out).
.blocks <- function(spec) {
    as.data.frame(.core(.Call(wrap__eg_blocks, spec)), stringsAsFactors = FALSE)
}

# Training: a trainer holds its data from its creation; `data` is
# list(x, labels, x_val, labels_val, transform) with genes x cells matrices (x NULL
# for data read block by block, passed to .eg_trainer_start).
.eg_trainer_new <- function(model, train, data, weights = NULL) {
    .core(.Call(wrap__eg_trainer_new, model, train, weights, data))
}

.eg_trainer_epoch <- function(trainer, train) {
    .core(.Call(wrap__eg_trainer_epoch, trainer, train))
}

# A block trained on a thread of the core while R goes on (reads the next block);
# .eg_trainer_wait() returns its c(loss, reconstruction, kl, cells), NULL when none
# was training (`stop`: end it after its current minibatch).
.eg_trainer_start <- function(trainer, x, labels, train) {
    .core(.Call(wrap__eg_trainer_start, trainer, x, labels, train))
}

.eg_trainer_wait <- function(trainer, stop = FALSE) {
    .core(.Call(wrap__eg_trainer_wait, trainer, stop))
}

# Sets the KL weight and learning rate of the next steps; returns the previous ones.
.eg_trainer_rates <- function(trainer, regularization, learning_rate) {
    .core(.Call(wrap__eg_trainer_rates, trainer, as.double(regularization), as.double(learning_rate)))
}

.eg_trainer_snapshot <- function(trainer) {
    .core(.Call(wrap__eg_trainer_snapshot, trainer))
}

.eg_trainer_weights <- function(trainer, snapshot = FALSE) {
    .core(.Call(wrap__eg_trainer_weights, trainer, snapshot))
}

# What the trainer holds besides its weights (optimizer state, random stream, passes
# run), and the trainer continuing from such a state (checkpoints, fit_vae(resume =)).
.eg_trainer_state <- function(trainer) {
    .core(.Call(wrap__eg_trainer_state, trainer))
}

.eg_trainer_restore <- function(trainer, state) {
    .core(.Call(wrap__eg_trainer_restore, trainer, state))
}

# Batch jobs (inst/scripts/exprsgen-batch.R): SIGTERM stops training as Ctrl-C does,
# and the job can tell which of the two it got.
.catch_sigterm <- function() {
    .core(.Call(wrap__eg_catch_sigterm))
}

.sigterm_received <- function() {
    .core(.Call(wrap__eg_sigterm_received))
}

.eg_trainer_permutation <- function(trainer, n) {
    .core(.Call(wrap__eg_trainer_permutation, trainer, as.integer(n)))
}

.eg_minmax <- function(x, cells_in_rows = FALSE) {
    .core(.Call(wrap__eg_minmax, x, cells_in_rows))
}

# Inference: a model handle is built once from the fit's weights and used for every
# encoding and decoding call of one gen_exprs().
.eg_model_new <- function(model, threads = 1L) {
    .core(.Call(wrap__eg_model_new, model$spec, model$weights, as.integer(threads)))
}

.eg_encode <- function(handle, x, labels, transform, cells_in_rows = FALSE) {
    .core(.Call(wrap__eg_model_encode, handle, x, cells_in_rows, labels, transform))
}

.eg_decode_counts <- function(handle, z, labels, log_library, seed) {
    .core(.Call(wrap__eg_model_decode_counts, handle, z, labels, log_library, seed))
}

.eg_decode <- function(handle, z, labels, minmax, cells_in_rows = TRUE) {
    .core(.Call(wrap__eg_model_decode, handle, z, labels, minmax$min, minmax$max, cells_in_rows))
}

.eg_decode_means <- function(handle, z, labels, log_library, cells_in_rows = FALSE) {
    .core(.Call(wrap__eg_model_decode_means, handle, z, labels, as.double(log_library), cells_in_rows))
}
