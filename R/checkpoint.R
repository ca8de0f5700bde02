#' Save the fit during training, to resume it later
#'
#' The keras callback of the same name, for [fit_vae()]'s `callbacks`
#' argument: every `save_freq` epochs, and after the last one (also when
#' early stopping or the memorisation guard ends training), the fit so far
#' is written to `filepath` with [saveRDS()]. The file is a complete fit:
#' [readRDS()] it and [gen_exprs()], [encode()] or [plot_aug()] use it as any
#' other; it also holds what training needs to continue (the optimizer's
#' state, the random stream, the epochs run, the callbacks' counters), so
#' that `fit_vae(resume = filepath)` carries on where it stopped and gives the
#' fit an uninterrupted run would have given.
#'
#' Each write goes to a temporary file in the same folder, renamed to
#' `filepath` once complete: a job killed while writing (SIGKILL, an
#' out-of-memory kill, a full disk) leaves the previous checkpoint intact,
#' never a truncated one. A write that fails (a full disk) is reported with a
#' warning and training goes on.
#'
#' @param filepath Character scalar: the file to write. `"{epoch}"` in it is
#'   replaced by the epoch (`"{epoch:03d}"` pads it to 3 digits, as keras),
#'   which keeps one file per checkpoint; without it each checkpoint replaces
#'   the previous one. Its folder must exist.
#' @param save_freq `"epoch"` (every epoch) or an integer scalar >= 1: save
#'   every `save_freq` epochs (keras counts batches here; exprsgen counts
#'   epochs, the unit training can continue from).
#' @param verbose Ignored (accepted for keras compatibility).
#'
#' @return A list of class `exprsgen_callback`.
#' @seealso [fit_vae()] (argument `resume`), [callback_early_stopping()]
#' @examples
#' set.seed(1)
#' counts <- matrix(rpois(60 * 30, 3), 60, 30, dimnames = list(NULL, paste0("g", 1:30)))
#' path <- tempfile(fileext = ".rds")
#' fit <- fit_vae(x_train = counts, likelihood = "nb", epochs = 4, batch_size = 16,
#'                callbacks = callback_model_checkpoint(path, save_freq = 2),
#'                seed = 1, verbose = FALSE)
#' # continue the same run to 8 epochs (`epochs` is the total)
#' longer <- fit_vae(resume = path, epochs = 8, verbose = FALSE)
#' nrow(longer$history)
#' @export
callback_model_checkpoint <- function(filepath, save_freq = 1L, verbose = 0) {
    if (!is.character(filepath) || length(filepath) != 1L || is.na(filepath) || !nzchar(filepath)) {
        .abort("{.arg filepath} must be a file name (a character scalar).")
    }
    if (identical(save_freq, "epoch")) save_freq <- 1L
    save_freq <- .check_count(save_freq, "save_freq")
    structure(list(type = "model_checkpoint", filepath = filepath, save_freq = save_freq),
              class = "exprsgen_callback")
}

# The checkpoint file of `epoch`: "{epoch}" or "{epoch:0Nd}" in the path replaced.
.checkpoint_path <- function(filepath, epoch) {
    m <- regmatches(filepath, regexpr("\\{epoch(:0?[0-9]+d)?\\}", filepath))
    if (!length(m)) return(filepath)
    width <- suppressWarnings(as.integer(gsub("[^0-9]", "", sub("^\\{epoch:?", "", m))))
    value <- if (is.na(width)) as.character(epoch) else formatC(epoch, width = width, flag = "0")
    sub(m, value, filepath, fixed = TRUE)
}

# Before training: the checkpoint's folder exists and can be written to.
.check_checkpoint_folder <- function(cb, call) {
    if (is.null(cb)) return(invisible())
    dir <- dirname(.checkpoint_path(cb$filepath, 1L))
    if (!dir.exists(dir)) {
        .abort("The folder of {.fn callback_model_checkpoint}'s {.arg filepath} does not exist: {.file {dir}}.",
               call = call, class = "exprsgen_error_argument")
    }
    if (file.access(dir, 2L) != 0L) {
        .abort("The folder of {.fn callback_model_checkpoint}'s {.arg filepath} cannot be written to: {.file {dir}}.",
               call = call, class = "exprsgen_error_argument")
    }
    if (!identical(.engine(call), "fused")) {
        .abort(c("Checkpoints need the default training engine: the {.val burn} engine keeps its optimizer's state to itself.",
                 i = "Leave {.code options(exprsgen.engine)} unset to write checkpoints."),
               call = call, class = "exprsgen_error_argument")
    }
    invisible()
}

# `write(tmp)` writes the file under a temporary name in `path`'s folder, renamed to
# `path` when complete: a process killed (or a disk full) while writing leaves no
# truncated file under the final name, and an earlier file there stays whole.
.write_atomic <- function(path, write) {
    tmp <- file.path(dirname(path), paste0(".", basename(path), ".part-", Sys.getpid()))
    ok <- FALSE
    on.exit(if (!ok) unlink(tmp))
    write(tmp)
    if (!file.rename(tmp, path)) stop("could not rename the temporary file to ", path, call. = FALSE)
    ok <- TRUE
    invisible(path)
}

# The fit `resume` names (a file or a fit), with what training continues from.
.read_resume <- function(resume, call) {
    if (is.character(resume)) {
        if (length(resume) != 1L || is.na(resume) || !nzchar(resume)) {
            .abort("{.arg resume} must be a fit or the name of a checkpoint file.", call = call,
                   class = "exprsgen_error_argument")
        }
        if (!file.exists(resume)) {
            .abort("{.arg resume}: no file {.file {resume}}.", call = call, class = "exprsgen_error_argument")
        }
        path <- resume
        resume <- tryCatch(readRDS(path), error = function(e) {
            .abort(c("{.arg resume}: {.file {path}} could not be read.", x = conditionMessage(e)),
                   call = call, class = "exprsgen_error_argument")
        })
    }
    if (!inherits(resume, "exprsgen_fit")) {
        .abort("{.arg resume} must be a fit of {.fn fit_vae} or a checkpoint file, not {.obj_type_friendly {resume}}.",
               call = call, class = "exprsgen_error_argument")
    }
    if (identical(resume$params$stop_reason, "memorisation")) {
        .abort(c(paste("{.arg resume} cannot be continued: the memorisation guard ended that run, as cells generated",
                       "from the model were becoming copies of the training cells."),
                 i = "Its fit is the last model checked without copies; training further would make more."),
               call = call, class = "exprsgen_error_argument")
    }
    ck <- resume$checkpoint
    if (is.null(ck) || !identical(ck$version, 1L) || is.null(ck$state)) {
        why <- switch(resume$params$stop_reason %||% "",
                      interrupted = "it was interrupted, but trained by the {.val burn} engine, whose state is not kept",
                      paste("it finished training ({.val {resume$params$stop_reason}}): only checkpoints and interrupted fits",
                            "keep the state training continues from"))
        .abort(c(paste0("{.arg resume} cannot be continued: ", why, "."),
                 i = paste("Write checkpoints with {.code callbacks = callback_model_checkpoint(filepath)};",
                           "the last one can be continued with more {.arg epochs}.")),
               call = call, class = "exprsgen_error_argument")
    }
    .check_fit(resume, "resume", call)
    resume
}

# fit_vae(resume =): training continues from the fit's state with its own data,
# architecture and settings, up to `epochs` in all (the fit's own total when NULL).
.resume_fit <- function(resume, epochs, callbacks, verbose, num.threads, call) {
    fit <- .read_resume(resume, call)
    ck <- fit$checkpoint
    setup <- ck$setup
    done <- ck$state$epoch
    if (!is.null(epochs)) setup$epochs <- epochs
    if (setup$epochs <= done) {
        .abort(c("{.arg epochs} is the total number of epochs, as keras counts them: {setup$epochs} were asked and {done} have run.",
                 i = "Give more than {done} to train further."),
               call = call, class = "exprsgen_error_argument")
    }
    if (identical(fit$params$stop_reason, "early_stopping") && is.null(callbacks)) {
        .abort(c("{.arg resume} was ended by early stopping at epoch {done}: with the same callbacks, training would stop again at once.",
                 i = paste("Its fit ({.fn readRDS} of the checkpoint) is the final one; to train further, give {.arg callbacks}",
                           "(without {.fn callback_early_stopping}, or with a larger {.arg patience}).")),
               call = call, class = "exprsgen_error_argument")
    }
    if (!is.null(callbacks)) setup$callbacks <- .as_callbacks(callbacks, call)
    .check_checkpoint_folder(setup$callbacks$checkpoint, call)
    setup$train$threads <- num.threads
    setup$params$num.threads <- num.threads
    if (!identical(.engine(call), "fused")) {
        .abort("Resuming needs the default training engine (the {.val burn} engine does not keep its optimizer's state).",
               call = call, class = "exprsgen_error_argument")
    }
    if (verbose) {
        cli::cli_inform(c(i = "Resuming training after epoch {done}, up to epoch {setup$epochs}."),
                        class = "exprsgen_message_resume")
    }
    state <- ck$state
    state$weights <- state$weights %||% fit$model$weights
    out <- .run_fit(setup, fit$preprocessing, verbose, call, resume = state)
    if (!is.null(fit$tuning)) out$tuning <- fit$tuning
    out
}
