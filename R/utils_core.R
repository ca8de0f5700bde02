# Calls into the Rust core (src/rust/binding). Each .Call returns its value or a
# string of class "exprsgen_core_error", raised here as an R error.

.core <- function(result, call = rlang::caller_env(2)) {
    if (inherits(result, "exprsgen_core_error")) {
        msg <- unclass(result)
        cli::cli_abort("{msg}", class = c("exprsgen_error_core", "exprsgen_error"),
                       call = call)
    }
    result
}

.eg_trainer_new <- function(model, train, weights = NULL) {
    .core(.Call(wrap__eg_trainer_new, model, train, weights))
}

.eg_trainer_epoch <- function(trainer, x, cells_in_rows, labels, transform, train) {
    .core(.Call(wrap__eg_trainer_epoch, trainer, x, cells_in_rows, labels, transform, train))
}

.eg_trainer_snapshot <- function(trainer) {
    .core(.Call(wrap__eg_trainer_snapshot, trainer))
}

.eg_trainer_weights <- function(trainer, snapshot = FALSE) {
    .core(.Call(wrap__eg_trainer_weights, trainer, snapshot))
}

.eg_minmax <- function(x, cells_in_rows) {
    .core(.Call(wrap__eg_minmax, x, cells_in_rows))
}

.eg_encode <- function(model, weights, x, cells_in_rows, labels, transform) {
    .core(.Call(wrap__eg_encode, model, weights, x, cells_in_rows, labels, transform))
}

.eg_decode_counts <- function(model, weights, z, labels, log_library, seed) {
    .core(.Call(wrap__eg_decode_counts, model, weights, z, labels, log_library, seed))
}

.eg_decode <- function(model, weights, z, labels, minmax, cells_in_rows = TRUE) {
    .core(.Call(wrap__eg_decode, model, weights, z, labels,
                minmax$min, minmax$max, cells_in_rows))
}

.eg_trainer_permutation <- function(trainer, n) {
    .core(.Call(wrap__eg_trainer_permutation, trainer, as.integer(n)))
}
