# On-disk and other DelayedArray inputs (genes x cells) are never read whole: every
# pass over the cells (checks, training epochs, encoding) reads blocks of cells,
# each a dgCMatrix (or dense matrix), and hands them to the Rust core one by one.
# Memory is one block plus what the pass keeps (latent means, library sizes).

.is_delayed <- function(x) methods::is(x, "DelayedArray")

# Cells per block: option exprsgen.block_cells, else about 10 million values; at
# least one minibatch.
.block_size <- function(n_genes, batch_size = 1L) {
    size <- .option_count("exprsgen.block_cells", max(1, 1e7 %/% max(1L, n_genes)), call = NULL)
    max(as.integer(batch_size), as.integer(size))
}

.cell_blocks <- function(n_cells, size) {
    starts <- seq.int(1L, n_cells, by = size)
    lapply(starts, function(s) s:min(n_cells, s + size - 1L))
}

# Cells `idx` of a genes x cells DelayedArray, in memory: a dgCMatrix when the array
# is sparse or the block mostly zeros (counts read from an HDF5 dataset are declared
# dense; training from dense blocks of sparse counts took half again as long as from
# sparse ones), else a dense double matrix. A block (at most about 1e7 values,
# .block_size) is read dense and compressed by the core in one pass: DelayedArray's
# own sparse reading of an HDF5 dataset took ten times as long (0.9 s against 0.1 s
# for 5,000 cells of 2,000 genes).
.read_cells <- function(x, idx) {
    out <- as.matrix(x[, idx, drop = FALSE])
    if (!storage.mode(out) %in% c("integer", "double")) storage.mode(out) <- "double"  # e.g. logical
    sparse <- .compress(out, if (DelayedArray::is_sparse(x)) 1 else 1 / 3)
    if (!is.null(sparse)) return(sparse)
    if (storage.mode(out) != "double") storage.mode(out) <- "double"
    out
}

# A dense matrix as a dgCMatrix, or NULL when more than `max_share` of its values are
# non-zero.
.compress <- function(x, max_share) {
    slots <- .core(.Call(wrap__eg_compress, x, as.double(max_share)))
    if (is.null(slots)) return(NULL)
    methods::new("dgCMatrix", p = slots$p, i = slots$i, x = slots$x, Dim = dim(x),
                 Dimnames = dimnames(x) %||% list(NULL, NULL))
}

.col_sums <- function(x) {
    if (.is_delayed(x)) DelayedArray::colSums(x) else Matrix::colSums(x)
}

# One pass over a genes x cells DelayedArray before training: it must be readable,
# finite (and hold counts for a count likelihood). Returns per-gene min and max and
# per-cell library sizes.
.scan_cells <- function(x, name, counts, call) {
    g <- nrow(x)
    lo <- rep(Inf, g)
    hi <- rep(-Inf, g)
    lib <- numeric(ncol(x))
    for (idx in .cell_blocks(ncol(x), .block_size(g))) {
        block <- tryCatch(.read_cells(x, idx), error = function(e) {
            .abort(c("{.arg {name}} could not be read.", x = conditionMessage(e)), call = call)
        })
        values <- if (methods::is(block, "dgCMatrix")) block@x else block
        .check_finite(values, name, call = call)
        if (counts) .check_counts_values(values, name, call)
        mm <- .eg_minmax(block)
        lo <- pmin(lo, mm$min)
        hi <- pmax(hi, mm$max)
        lib[idx] <- Matrix::colSums(block)
    }
    list(min = lo, max = hi, library_size = lib)
}

# One training epoch (train = TRUE) or evaluation pass over the trainer's data (x
# NULL: the in-memory data it was created with), or over an on-disk x block by block,
# in an order drawn from the trainer's random stream. Returns c(loss, reconstruction,
# kl, cells): a user interrupt ends the pass after its current minibatch, and `cells`
# then says how many cells it covered. On disk, each block trains on a thread of the
# core while R reads the next one (read-ahead), so that an epoch costs about the
# longer of the two rather than their sum; the blocks train in the same order, so
# the fit is the same.
.pass <- function(trainer, x, y, train, batch_size) {
    if (is.null(x)) return(.eg_trainer_epoch(trainer, train))
    blocks <- .cell_blocks(ncol(x), .block_size(nrow(x), batch_size))
    order <- if (train) .eg_trainer_permutation(trainer, length(blocks)) else seq_along(blocks)
    total <- c(0, 0, 0)  # (an interrupt before the first block gives c(0, 0, 0, 0))
    cells <- 0
    # Waits for the block training in the background (none: NULL) and counts its cells.
    # Also called whenever the pass ends (an interrupt or an error while reading, at any
    # point), so that no block is left training: it stops after its current minibatch.
    finish <- function(stop = FALSE) {
        st <- .eg_trainer_wait(trainer, stop)
        if (!is.null(st)) {
            total <<- total + st[seq_len(3L)] * st[[4]]
            cells <<- cells + st[[4]]
        }
        st
    }
    on.exit(finish(stop = TRUE))
    tryCatch({
        ahead <- .read_cells(x, blocks[[order[1]]])
        for (k in seq_along(order)) {
            idx <- blocks[[order[k]]]
            .eg_trainer_start(trainer, ahead, .condition_rows(y, idx), train)
            ahead <- if (k < length(order)) .read_cells(x, blocks[[order[k + 1]]])
            st <- finish()
            if (st[[4]] < length(idx)) break
        }
    }, interrupt = function(e) finish(stop = TRUE))
    c(total / max(cells, 1), cells)
}

# Posterior means and log-variances of all training cells (model handle from
# .eg_model_new()); `codes`: their conditions as .condition_columns() gives them.
.encode_cells <- function(handle, prep, codes) {
    x <- prep$x_train
    # In memory: chunks of cells (each call returns to R, so that Ctrl-C is seen within
    # one chunk's time; a cell's code does not depend on the others in its chunk).
    chunk <- .option_count("exprsgen.encode_cells", 4096L)
    if (!.is_delayed(x) && ncol(x) <= chunk) return(.eg_encode(handle, x, codes, prep$transform))
    blocks <- if (.is_delayed(x)) .cell_blocks(ncol(x), .block_size(nrow(x))) else .cell_blocks(ncol(x), chunk)
    read <- if (.is_delayed(x)) function(idx) .read_cells(x, idx) else function(idx) x[, idx, drop = FALSE]
    parts <- lapply(blocks, function(idx) {
        .eg_encode(handle, read(idx), .condition_rows(codes, idx), prep$transform)
    })
    list(mean = do.call(rbind, lapply(parts, `[[`, "mean")),
         log_var = do.call(rbind, lapply(parts, `[[`, "log_var")))
}

# The files an on-disk matrix reads (HDF5 datasets, 10x HDF5 files): their path, size
# and modification time, kept in the fit (`$preprocessing$files`) so that a file
# deleted, truncated or replaced after the fit is named instead of failing deep in
# rhdf5 or giving stale values. NULL for data in memory.
.data_files <- function(...) {
    paths <- unlist(lapply(list(...), function(x) {
        if (!.is_delayed(x)) return(NULL)
        unlist(DelayedArray::seedApply(x, function(s) tryCatch(HDF5Array::path(s), error = function(e) NULL)))
    }))
    if (!length(paths)) return(NULL)
    paths <- unique(normalizePath(paths, mustWork = FALSE))
    info <- file.info(paths, extra_cols = FALSE)
    data.frame(path = paths, size = info$size, mtime = as.numeric(info$mtime), stringsAsFactors = FALSE)
}

# Before on-disk training cells are read again (generating, encoding, resuming): the
# files are those the fit was trained on.
.check_data_files <- function(prep, arg, call) {
    files <- prep$files
    if (is.null(files) || !nrow(files)) return(invisible())
    now <- file.info(files$path, extra_cols = FALSE)
    gone <- is.na(now$size)
    changed <- !gone & (now$size != files$size | as.numeric(now$mtime) != files$mtime)
    if (any(gone | changed)) {
        i <- which(gone | changed)[1]
        what <- if (gone[i]) "no longer exists" else "has changed since the fit (size or modification time)"
        .abort(c("The file {.file {files$path[i]}} holding {.arg {arg}}'s training cells {what}.",
                 i = "Restore it, or fit the model again to the data as they are now."),
               call = call, class = c("exprsgen_error_data_changed", "exprsgen_error_argument"))
    }
    invisible()
}
