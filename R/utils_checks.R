# Argument checks. Errors name the argument, point at the user-facing function
# (`call`, the caller's frame by default) and have class "exprsgen_error_argument"
# (plus "exprsgen_error") so that tests and users can catch them.

.abort <- function(msg, call = rlang::caller_env(), class = "exprsgen_error_argument",
                   .envir = parent.frame()) {
    cli::cli_abort(msg, class = c(class, "exprsgen_error"), call = call, .envir = .envir)
}

.check_count <- function(x, name, min = 1, call = rlang::caller_env()) {
    if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) ||
        x != round(x) || x < min) {
        .abort("{.arg {name}} must be a whole number >= {min}.", call = call)
    }
    if (x > .Machine$integer.max) {
        .abort("{.arg {name}} must be at most {(.Machine$integer.max)}, not {format(x)}.", call = call)
    }
    as.integer(x)
}

.check_number <- function(x, name, min = -Inf, max = Inf, max_open = FALSE,
                          call = rlang::caller_env()) {
    if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) ||
        x < min || x > max || (max_open && x >= max)) {
        range <- if (max_open) "in [{min}, {max})" else "in [{min}, {max}]"
        .abort(paste0("{.arg {name}} must be a single number ", range, "."), call = call)
    }
    as.numeric(x)
}

.check_flag <- function(x, name, call = rlang::caller_env()) {
    if (!is.logical(x) || length(x) != 1L || is.na(x)) {
        .abort("{.arg {name}} must be TRUE or FALSE.", call = call)
    }
    x
}

.check_finite <- function(x, name, call = rlang::caller_env()) {
    if (!all(is.finite(x))) {
        .abort("{.arg {name}} contains NA, NaN or infinite values.", call = call)
    }
    invisible(x)
}
