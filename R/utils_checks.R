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

# The slots of a sparse matrix from package Matrix, checked in O(non-zeros) before
# anything else reads them: Matrix's C code trusts them, and an index out of range
# there crashes R. Indices must also be sorted without duplicates within a column
# (row, for RsparseMatrix), as the classes require; a matrix built by
# Matrix::sparseMatrix() (which sums duplicates) always is.
.check_sparse <- function(x, name, call = rlang::caller_env()) {
    bad <- function(what) {
        .abort(c(paste0("{.arg {name}} is not a valid sparse matrix: ", what, "."),
                 i = "Rebuild it, e.g. with {.fn Matrix::sparseMatrix}, or check it with {.fn methods::validObject}."),
               call = call, class = c("exprsgen_error_invalid_sparse", "exprsgen_error_argument"))
    }
    has <- function(s) methods::.hasSlot(x, s)
    if (!has("Dim")) bad("it has no {.code @Dim} slot")
    d <- x@Dim
    if (!is.integer(d) || length(d) != 2L || anyNA(d) || any(d < 0L)) {
        bad("its {.code @Dim} is not two non-negative integers")
    }
    index_ok <- function(v, n) is.integer(v) && !anyNA(v) && (!length(v) || (min(v) >= 0L && max(v) < n))
    if (methods::is(x, "TsparseMatrix")) {
        if (!index_ok(x@i, d[1]) || !index_ok(x@j, d[2]) || length(x@i) != length(x@j)) {
            bad("its {.code @i} and {.code @j} are not row and column indices in range")
        }
        nnz <- length(x@i)
    } else if (methods::is(x, "CsparseMatrix") || methods::is(x, "RsparseMatrix")) {
        csc <- methods::is(x, "CsparseMatrix")
        idx_name <- if (csc) "@i" else "@j"
        idx <- if (csc) x@i else x@j
        n_major <- if (csc) d[2] else d[1]
        n_minor <- if (csc) d[1] else d[2]
        p <- x@p
        if (!is.integer(p) || length(p) != n_major + 1L || anyNA(p) || p[1L] != 0L ||
            any(diff(p) < 0L) || p[length(p)] != length(idx)) {
            bad(paste0("its {.code @p} does not hold ", n_major + 1L,
                       " non-decreasing pointers from 0 to the number of entries"))
        }
        if (!index_ok(idx, n_minor)) bad(paste0("its {.code ", idx_name, "} has indices out of range, or NA"))
        nnz <- length(idx)
        if (nnz > 1L) {
            first <- logical(nnz)
            starts <- p[-length(p)][diff(p) > 0L] + 1L
            first[starts] <- TRUE
            if (any(diff(idx) <= 0L & !first[-1L])) {
                bad(paste0("its {.code ", idx_name, "} is not sorted, or repeats an index, within a ",
                           if (csc) "column" else "row"))
            }
        }
    } else {
        return(invisible(x))  # other sparse classes: not indexed by these slots
    }
    if (has("x") && length(x@x) != nnz) bad("its {.code @x} has a different length than its indices")
    invisible(x)
}
