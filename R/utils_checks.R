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
        range <- if (is.infinite(max) && is.infinite(min)) "(finite)"
                 else if (is.infinite(max)) paste0(">= ", min, " (finite)")
                 else if (max_open) "in [{min}, {max})" else "in [{min}, {max}]"
        .abort(paste0("{.arg {name}} must be a single number ", range, "."), call = call)
    }
    as.numeric(x)
}

.check_positive <- function(x, name, call = rlang::caller_env()) {
    if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x <= 0) {
        .abort("{.arg {name}} must be a single positive (finite) number.", call = call)
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
    finite <- if (is.double(x)) .scan_values(x)[[1]] == 1 else all(is.finite(x))
    if (!finite) {
        .abort("{.arg {name}} contains NA, NaN or infinite values.", call = call)
    }
    invisible(x)
}

# c(finite, counts, max) of a double vector or matrix, in one pass in the core.
.scan_values <- function(x) .core(.Call(wrap__eg_scan_values, x))

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
        if (!is.integer(idx)) bad(paste0("its {.code ", idx_name, "} is not integer"))
        # range and order of the indices: one pass in the core (R's took seconds at
        # 100,000 cells)
        rule <- .core(.Call(wrap__eg_check_compressed, p, idx, n_minor))
        if (identical(rule, "range")) bad(paste0("its {.code ", idx_name, "} has indices out of range, or NA"))
        if (identical(rule, "order")) {
            bad(paste0("its {.code ", idx_name, "} is not sorted, or repeats an index, within a ",
                       if (csc) "column" else "row"))
        }
        nnz <- length(idx)
    } else {
        return(invisible(x))  # other sparse classes: not indexed by these slots
    }
    if (has("x") && length(x@x) != nnz) bad("its {.code @x} has a different length than its indices")
    dn <- x@Dimnames
    if (!is.list(dn) || length(dn) != 2L ||
        !all(vapply(seq_len(2L), function(k) is.null(dn[[k]]) || length(dn[[k]]) == d[k], logical(1)))) {
        bad("its {.code @Dimnames} do not match its dimensions")
    }
    invisible(x)
}

# Bytes this R session can still allocate: the option `exprsgen.memory_limit` (bytes)
# when set, else what Linux reports (MemAvailable, and the room left under the hard
# limits: an address-space limit such as `ulimit -v`, a control group's); Inf where
# unknown.
.memory_available <- function(call = rlang::caller_env()) {
    opt <- getOption("exprsgen.memory_limit")
    if (!is.null(opt)) {
        if (!is.numeric(opt) || length(opt) != 1L || is.na(opt) || opt <= 0) {
            .abort("Option {.code exprsgen.memory_limit} must be a positive number of bytes, not {.val {format(opt)}}.",
                   call = call)
        }
        return(as.numeric(opt))
    }
    avail <- .kb_field(.read_lines("/proc/meminfo"), "MemAvailable")
    avail <- min(avail, .hard_room(), na.rm = TRUE)
    if (is.na(avail)) Inf else max(avail, 0)
}

# Bytes left under the limits whose excess kills the process rather than failing an
# allocation: the address-space limit (`ulimit -v`) and the control groups' memory
# limits (.cgroup_room()); Inf without either.
.hard_room <- function() {
    room <- Inf
    limits <- grep("^Max address space", .read_lines("/proc/self/limits"), value = TRUE)
    if (length(limits)) {
        soft <- suppressWarnings(as.numeric(strsplit(trimws(sub("^Max address space", "", limits[1])), " +")[[1]][1]))
        used <- .kb_field(.read_lines("/proc/self/status"), "VmSize")
        if (is.finite(soft) && is.finite(used)) room <- soft - used
    }
    max(min(room, .cgroup_room()), 0)
}

.read_lines <- function(f) tryCatch(suppressWarnings(readLines(f, warn = FALSE)), error = function(e) character(0))

# A "Key:  N kB" line of /proc/meminfo or /proc/self/status, in bytes (NA if absent).
.kb_field <- function(lines, key) {
    v <- grep(paste0("^", key, ":"), lines, value = TRUE)
    if (length(v)) as.numeric(gsub("[^0-9]", "", v[1])) * 1024 else NA_real_
}

# Bytes left under the memory limits of the control groups this process is in (a
# Docker or Kubernetes container, a Slurm --mem job, systemd's MemoryMax): cgroup v2's
# memory.max less memory.current, v1's memory.limit_in_bytes less memory.usage_in_bytes,
# the kernel's reclaimable file cache (inactive_file) counted as free, for the group
# and each group above it that the file system shows; the smallest. Inf without a
# limit. `root` and `self` are the cgroup mount and /proc/self/cgroup (tests use others).
.cgroup_room <- function(root = getOption("exprsgen.cgroup_root", "/sys/fs/cgroup"),
                         self = getOption("exprsgen.cgroup_self", "/proc/self/cgroup")) {
    read <- .read_lines
    number <- function(f) {
        v <- read(f)
        if (!length(v)) return(NA_real_)
        x <- suppressWarnings(as.numeric(v[1]))
        if (is.na(x) || x >= 2^60) NA_real_ else x  # "max", or v1's "no limit" (2^63 - page)
    }
    stat <- function(f, key) {
        v <- grep(paste0("^", key, " "), read(f), value = TRUE)
        if (length(v)) suppressWarnings(as.numeric(sub("^\\S+ ", "", v[1]))) else 0
    }
    ancestors <- function(path) {
        parts <- strsplit(path, "/", fixed = TRUE)[[1]]
        parts <- parts[nzchar(parts)]
        c("", vapply(seq_along(parts), function(i) paste0("/", paste(parts[seq_len(i)], collapse = "/")), ""))
    }
    room <- Inf
    for (line in read(self)) {
        f <- strsplit(line, ":", fixed = TRUE)[[1]]
        if (length(f) < 3L) next
        path <- paste(f[-seq_len(2L)], collapse = ":")
        if (f[2] == "") {  # v2
            dirs <- file.path(root, c("", "unified"))
            files <- c(limit = "memory.max", used = "memory.current", cache = "inactive_file")
        } else if ("memory" %in% strsplit(f[2], ",", fixed = TRUE)[[1]]) {  # v1
            dirs <- file.path(root, "memory")
            files <- c(limit = "memory.limit_in_bytes", used = "memory.usage_in_bytes", cache = "total_inactive_file")
        } else {
            next
        }
        for (d in dirs) for (a in ancestors(path)) {
            g <- paste0(d, a)
            limit <- number(file.path(g, files[["limit"]]))
            if (is.na(limit)) next
            used <- number(file.path(g, files[["used"]]))
            cache <- stat(file.path(g, "memory.stat"), files[["cache"]])
            room <- min(room, limit - (if (is.na(used)) 0 else max(0, used - cache)))
        }
    }
    room
}

.format_bytes <- function(b) {
    units <- c("bytes", "kB", "MB", "GB", "TB", "PB", "EB")
    k <- if (b < 1) 1L else min(length(units), floor(log(b, 1000)) + 1L)
    paste(format(signif(b / 1000^(k - 1L), 3)), units[k])
}

# Refuses early (an R error naming `arg`) what would need more memory than is left:
# a failed allocation deep in R or the core is worse than a clear "no" here. With
# `hard = TRUE` (the burn engine, whose allocations abort the process when they fail)
# the hard limits apply even when the option `exprsgen.memory_limit` is set.
.check_memory <- function(bytes, what, hint, call = rlang::caller_env(), hard = FALSE) {
    avail <- .memory_available(call)
    room <- if (hard) .hard_room() else Inf
    if (is.finite(bytes) && bytes <= min(avail, room)) return(invisible(bytes))
    limit <- if (room < avail) {
        c(i = paste0("The burn engine cannot recover from a failed allocation: the process's ",
                     "hard limits (`ulimit -v`, its control group's) apply whatever the option ",
                     "{.code exprsgen.memory_limit} says; the default engine reports such a failure ",
                     "as an error instead."))
    } else {
        c(i = "Option {.code exprsgen.memory_limit} (bytes) overrides the memory assumed available.")
    }
    .abort(c(paste0(what, " would need about ", .format_bytes(bytes), ", more than the ",
                    .format_bytes(min(avail, room)), " this R session can still allocate."),
             i = hint, limit),
           call = call, class = c("exprsgen_error_memory", "exprsgen_error_argument"))
}

# A whole-number option (e.g. exprsgen.block_cells), `default` when unset; an error
# naming the option when it is not a whole number in [min, max].
.option_count <- function(name, default, min = 1, max = .Machine$integer.max, call = rlang::caller_env()) {
    v <- getOption(name)
    if (is.null(v)) return(as.integer(default))
    if (!is.numeric(v) || length(v) != 1L || is.na(v) || !is.finite(v) || v != round(v) ||
        v < min || v > max) {
        .abort(c("Option {.code {name}} must be a whole number from {min} to {format(max, big.mark = ',')}, not {.val {format(v)}}.",
                 i = "Reset it with {.code options({name} = NULL)}."),
               call = call, class = c("exprsgen_error_option", "exprsgen_error_argument"))
    }
    as.integer(v)
}

# A seed: a whole number from 0 to 2^53 (an integer when it fits one, as before).
.check_seed <- function(x, name = "seed", call = rlang::caller_env()) {
    if (!is.numeric(x) || length(x) != 1L || is.na(x) || !is.finite(x) || x != round(x) ||
        x < 0 || x > 2^53) {
        .abort("{.arg {name}} must be a whole number from 0 to 2^53.", call = call)
    }
    if (x <= .Machine$integer.max) as.integer(x) else as.numeric(x)
}

# R's own "cannot allocate vector" (an estimate by .check_memory() can fall short
# of what the allocator finds, e.g. under an address-space limit), as a classed
# memory error saying what to reduce.
.with_memory_errors <- function(expr, what, hint, call = rlang::caller_env()) {
    withCallingHandlers(expr, error = function(e) {
        if (!inherits(e, "exprsgen_error") && grepl("cannot allocate", conditionMessage(e), fixed = TRUE)) {
            .abort(c(paste0(what, " ran out of memory: ", conditionMessage(e), "."), i = hint),
                   call = call, class = c("exprsgen_error_memory", "exprsgen_error_argument"))
        }
    })
}
