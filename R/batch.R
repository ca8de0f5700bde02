# The batch job of inst/scripts/exprsgen-batch.R (its header documents the
# arguments): fit a model to a counts file, save it, generate cells per class and
# write them. The script is a wrapper around .batch_job(), so that the tests' child
# processes run (and measure) the package's code.

.batch_outputs <- c("model.rds", "generated.rds", "generated.mtx", "generated_genes.tsv", "generated_cells.tsv",
             "generated_labels.tsv")

.batch_main <- function(args) {
    opts <- .batch_parse_args(args)
    .batch_prepare_out(opts)
    checkpoint <- if (!is.null(opts$checkpoint)) {
        callback_model_checkpoint(opts$checkpoint, save_freq = opts$checkpoint_every)
    }
    if (is.null(opts$resume)) {
        .batch_log("exprsgen ", as.character(utils::packageVersion("exprsgen")), ": reading ", opts$input)
        data <- .batch_read_input(opts)
        .batch_log("read ", nrow(data$object), " genes x ", ncol(data$object), " cells",
                 if (!is.null(data$labels)) paste0(", ", length(unique(as.character(data$labels))), " classes"))
        withr::local_seed(opts$seed)
        .batch_log("fitting a ", opts$likelihood, " model: ",
                 if (is.null(opts$epochs)) "epochs chosen from the data" else paste(opts$epochs, "epochs"), ", ",
                 if (is.null(opts$batch_size)) "batch size chosen from the data" else paste("batch size", opts$batch_size))
        fit <- fit_vae(data$object, labels = data$labels, assay.type = opts$assay,
                                 likelihood = opts$likelihood, epochs = opts$epochs,
                                 batch_size = opts$batch_size, latent_dim = opts$latent_dim,
                                 validation_split = opts$validation_split, callbacks = checkpoint,
                                 num.threads = opts$threads, verbose = TRUE)
    } else {
        .batch_log("exprsgen ", as.character(utils::packageVersion("exprsgen")), ": resuming ", opts$resume)
        fit <- fit_vae(resume = opts$resume, epochs = opts$epochs, callbacks = checkpoint,
                                 num.threads = opts$threads, verbose = TRUE)
    }
    h <- fit$history[nrow(fit$history), ]
    .batch_log("trained ", fit$params$epochs_run, " epochs in ", round(fit$params$seconds, 1), " s; final loss ",
             signif(h$loss, 6))
    .write_atomic(file.path(opts$out, "model.rds"), function(f) saveRDS(fit, f))
    .batch_log("saved ", file.path(opts$out, "model.rds"))
    if (identical(fit$params$stop_reason, "interrupted")) {
        # the checkpoint becomes the interrupted fit, which --resume continues
        cb <- fit$checkpoint$setup$callbacks$checkpoint
        if (!is.null(cb) && !is.null(fit$checkpoint$state)) {
            path <- .checkpoint_path(cb$filepath, fit$params$epochs_run)
            .write_atomic(path, function(f) saveRDS(fit, f))
            .batch_log("saved the checkpoint ", path, " (continue with --resume ", path, ")")
        }
        signal <- if (.sigterm_received()) "SIGTERM" else "interrupted"
        .batch_log(signal, ": the model of ", fit$params$epochs_run, " epochs is saved; nothing generated")
        return(if (signal == "SIGTERM") 143L else 130L)
    }
    classes <- fit$model$spec$classes
    gen <- if (length(classes)) {
        gen_exprs(fit, labels = stats::setNames(rep(opts$per_class, length(classes)), classes),
                            num.threads = opts$threads)
    } else {
        gen_exprs(fit, opts$n, num.threads = opts$threads)
    }
    .batch_log("generated ", nrow(gen$x_gen), " cells")
    sce <- as_sce(gen)
    out <- function(name) file.path(opts$out, name)
    .write_atomic(out("generated.rds"), function(f) saveRDS(sce, f))
    values <- SummarizedExperiment::assay(sce, 1L)
    .write_atomic(out("generated.mtx"), function(f) {
        Matrix::writeMM(methods::as(methods::as(values, "CsparseMatrix"), "generalMatrix"), f)
    })
    .write_atomic(out("generated_genes.tsv"), function(f) writeLines(rownames(sce), f))
    .write_atomic(out("generated_cells.tsv"), function(f) writeLines(colnames(sce), f))
    if (!is.null(sce$label)) .write_atomic(out("generated_labels.tsv"), function(f) writeLines(as.character(sce$label), f))
    .batch_log("wrote generated.rds and generated.mtx (", SummarizedExperiment::assayNames(sce)[1], ") in ", opts$out)
    invisible(0L)
}


# --out checked before any work: a folder (made if missing) that can be written, and
# holding no outputs of an earlier run unless --overwrite (which removes them, so that
# the new run's files are not mixed with old ones).
.batch_prepare_out <- function(opts) {
    out <- opts$out
    if (!nzchar(out)) stop("--out is empty: give the folder for the results")
    if (file.exists(out) && !dir.exists(out)) stop("--out '", out, "' is a file, not a folder")
    if (!dir.exists(out) && !dir.create(out, recursive = TRUE, showWarnings = FALSE)) {
        stop("--out '", out, "' could not be created")
    }
    if (file.access(out, 2L) != 0L) stop("--out '", out, "' cannot be written to")
    old <- .batch_outputs[file.exists(file.path(out, .batch_outputs))]
    if (length(old)) {
        if (!opts$overwrite) {
            stop("--out '", out, "' holds the outputs of an earlier run (", paste(old, collapse = ", "),
                 "): give another folder, or --overwrite to replace them")
        }
        unlink(file.path(out, old))
    }
}

.batch_log <- function(...) {
    cat(format(Sys.time(), "%Y-%m-%d %H:%M:%S"), " ", ..., "\n", sep = "")
    utils::flush.console()
}

# --name value pairs, checked; defaults as the header says.
.batch_parse_args <- function(args) {
    known <- c("input", "genes", "cells", "labels", "out", "assay", "likelihood", "epochs", "batch-size",
               "latent-dim", "per-class", "n", "seed", "threads", "validation-split", "group",
               "checkpoint", "checkpoint-every", "resume")
    overwrite <- args == "--overwrite"
    args <- args[!overwrite]
    if (length(args) %% 2L != 0L || !all(startsWith(args[c(TRUE, FALSE)], "--"))) {
        stop("arguments must be --name value pairs (see the script's header)")
    }
    names <- sub("^--", "", args[c(TRUE, FALSE)])
    bad <- setdiff(names, known)
    if (length(bad)) stop("unknown argument --", bad[1])
    twice <- unique(names[duplicated(names)])
    if (length(twice)) stop("--", twice[1], " is given more than once")
    val <- stats::setNames(args[c(FALSE, TRUE)], names)
    get <- function(name, default = NULL) if (name %in% names) val[[name]] else default
    num <- function(name, default, whole = TRUE, min = 0) {
        v <- get(name)
        if (is.null(v)) return(default)
        x <- suppressWarnings(as.numeric(v))
        if (is.na(x) || !is.finite(x) || (whole && x != round(x)) || x < min) {
            stop("--", name, " must be a ", if (whole) "whole ", "number >= ", min, ", not '", v, "'")
        }
        x
    }
    resume <- get("resume")
    if (!is.null(resume)) {
        fixed <- intersect(names, c("input", "genes", "cells", "labels", "assay", "likelihood", "batch-size",
                                    "latent-dim", "seed", "validation-split", "group"))
        if (length(fixed)) stop("--", fixed[1], " cannot be given with --resume: the checkpoint holds the data and settings")
        if (!file.exists(resume)) stop("--resume '", resume, "' does not exist")
    } else if (is.null(get("input"))) {
        stop("--input is missing: a .mtx, .rds, .h5 file or an HDF5 directory")
    }
    checkpoint <- get("checkpoint")
    if (!is.null(checkpoint) && (!nzchar(checkpoint) || dir.exists(checkpoint))) {
        stop("--checkpoint must name a file, not '", checkpoint, "'")
    }
    if (!is.null(checkpoint) && !dir.exists(dirname(checkpoint))) {
        stop("--checkpoint '", checkpoint, "': its folder does not exist")
    }
    if ("checkpoint-every" %in% names && is.null(checkpoint)) stop("--checkpoint-every needs --checkpoint")
    if (is.null(get("out"))) stop("--out is missing: the folder for the results")
    likelihood <- get("likelihood", "nb")
    known_lik <- likelihoods()$name
    if (!likelihood %in% known_lik) stop("--likelihood must be one of ", paste(known_lik, collapse = ", "), ", not '", likelihood, "'")
    split <- num("validation-split", 0, whole = FALSE)
    if (split >= 1) stop("--validation-split must be below 1, not '", get("validation-split"), "'")
    list(input = get("input"), genes = get("genes"), cells = get("cells"), labels = get("labels"),
         out = get("out"), assay = get("assay", "counts"), likelihood = likelihood,
         epochs = num("epochs", NULL, min = 1), batch_size = num("batch-size", NULL, min = 1),
         latent_dim = num("latent-dim", NULL, min = 1),
         per_class = num("per-class", 100, min = 1), n = num("n", 100, min = 1), seed = num("seed", 1),
         threads = num("threads", 1, min = 1), validation_split = split,
         group = get("group", "matrix"), overwrite = any(overwrite), resume = resume, checkpoint = checkpoint,
         checkpoint_every = num("checkpoint-every", 1, min = 1))
}

# The input as a SummarizedExperiment-like object, and the labels (a column name or a
# vector, or NULL).
.batch_read_input <- function(opts) {
    path <- opts$input
    if (!file.exists(path)) stop("--input '", path, "' does not exist")
    first_column <- function(file, what) {
        if (!file.exists(file)) stop("--", what, " '", file, "' does not exist")
        lines <- readLines(file, warn = FALSE)
        sub("\t.*$", "", lines[nzchar(lines)])
    }
    labels <- opts$labels
    labels_from_file <- !is.null(labels) && file.exists(labels)
    if (labels_from_file) labels <- first_column(labels, "labels")
    if ((dir.exists(path) || grepl("\\.h5$", path, ignore.case = TRUE)) && !requireNamespace("HDF5Array", quietly = TRUE)) {
        stop("--input '", path, "' needs the HDF5Array package (Bioconductor; Debian: r-bioc-hdf5array)")
    }
    if (dir.exists(path)) {
        object <- HDF5Array::loadHDF5SummarizedExperiment(path)
    } else if (grepl("\\.rds$", path, ignore.case = TRUE)) {
        object <- readRDS(path)
    } else if (grepl("\\.h5$", path, ignore.case = TRUE)) {
        m <- HDF5Array::TENxMatrix(path, group = opts$group)
        object <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
    } else if (grepl("\\.mtx(\\.gz)?$", path, ignore.case = TRUE)) {
        if (is.null(opts$genes) || is.null(opts$cells)) stop("--genes and --cells are needed with a .mtx input")
        m <- methods::as(Matrix::readMM(path), "CsparseMatrix")
        genes <- first_column(opts$genes, "genes")
        cells <- first_column(opts$cells, "cells")
        if (length(genes) != nrow(m) || length(cells) != ncol(m)) {
            stop("--input has ", nrow(m), " genes x ", ncol(m), " cells but --genes names ", length(genes),
                 " and --cells ", length(cells))
        }
        dimnames(m) <- list(make.unique(genes), make.unique(cells))
        object <- SummarizedExperiment::SummarizedExperiment(list(counts = m))
    } else {
        stop("--input must be a .mtx, .rds or .h5 file or an HDF5 directory, not '", path, "'")
    }
    if (!is.null(labels) && !labels_from_file && !(is.character(labels) && length(labels) == 1L)) {
        stop("--labels must be a colData column or a file")
    }
    if (!is.null(labels) && !labels_from_file && !methods::is(object, "Seurat") &&
        !labels %in% colnames(SummarizedExperiment::colData(object))) {
        stop("--labels '", labels, "' is neither a file nor a colData column of --input")
    }
    list(object = object, labels = labels)
}

# The whole job (exprsgen-batch.R): returns its exit status. Stopped outside training
# (reading, generating, writing) by an interrupt or SIGTERM, nothing is saved; an error
# is one line on standard error.
.batch_job <- function(args) {
    tryCatch({
        .catch_sigterm()
        .batch_main(args)
    }, interrupt = function(e) {
        term <- isTRUE(tryCatch(.sigterm_received(), error = function(e) FALSE))
        cat("exprsgen-batch: ", if (term) "SIGTERM" else "interrupted", " before the job was done\n", sep = "",
            file = stderr())
        if (term) 143L else 130L
    }, error = function(e) {
        msg <- gsub("\\s+", " ", paste(conditionMessage(e), collapse = " "))
        msg <- gsub("\033\\[[0-9;]*m", "", msg)  # no terminal colours in log files
        cat("exprsgen-batch: error: ", trimws(msg), "\n", sep = "", file = stderr())
        1L
    })
}
