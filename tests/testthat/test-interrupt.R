test_that("an interrupt (SIGINT) stops training cleanly and keeps the model", {
    skip_on_os("windows")
    out <- tempfile(fileext = ".rds")
    r <- interrupt_after(c(
        "suppressMessages(library(exprsgen))",
        "set.seed(1)",
        "x <- matrix(rexp(400 * 300), 400, 300)",
        "fit <- suppressWarnings(fit_vae(x_train = x,",
        "    encoder_layers = list(layer_input(300), layer_dense(64, 'relu')),",
        "    decoder_layers = list(layer_dense(64, 'relu'), layer_dense(300, 'sigmoid')),",
        "    epochs = 100000, batch_size = 16, seed = 1))",
        sprintf("saveRDS(fit, '%s')", out),
        "gen <- gen_exprs(fit, 5)",
        "cat('generated', nrow(gen$x_gen), '\\n')"), "epoch 1/", 0.5)
    expect_match(r$seen, "epoch 1/")
    expect_identical(r$status, 0L)
    expect_match(r$all, "interrupted")
    expect_match(r$all, "generated 5")
    fit <- readRDS(out)
    expect_identical(fit$params$stop_reason, "interrupted")
    expect_gte(fit$params$epochs_run, 1L)
    expect_lt(fit$params$epochs_run, 100000L)
    expect_identical(nrow(fit$history), fit$params$epochs_run)
})

# An Rscript child training one long epoch (about 15 s here); it writes "training"
# just before fit_vae() is called and the fit's summary when it returns.
interrupt_child <- function(verbose) {
    script <- tempfile(fileext = ".R")
    out <- tempfile(fileext = ".rds")
    writeLines(c(
        "suppressMessages(library(exprsgen))",
        "set.seed(1)",
        "x <- matrix(rexp(40000 * 300), 40000, 300)",
        "cat('training\\n')",
        sprintf("fit <- fit_vae(x_train = x, encoder_layers = list(layer_input(300), layer_dense(1024, 'relu')),
            decoder_layers = list(layer_dense(1024, 'relu'), layer_dense(300, 'sigmoid')),
            epochs = 1, batch_size = 8, seed = 1, verbose = %s)", verbose),
        "cat('returned\\n')",
        "gen <- gen_exprs(fit, 3)",
        sprintf("saveRDS(list(params = fit$params, history = fit$history, n_gen = nrow(gen$x_gen)), '%s')", out)),
        script)
    p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script,
                               stdout = "|", stderr = "2>&1")
    list(p = p, out = out)
}

for (verbose in c(FALSE, TRUE)) {
    test_that(paste0("an interrupt in the middle of a long first epoch takes effect within a second (verbose = ",
                     verbose, ")"), {
        skip_on_os("windows")
        skip_on_cran()
        ch <- interrupt_child(verbose)
        p <- ch$p
        on.exit(p$kill(), add = TRUE)
        seen <- ""
        deadline <- Sys.time() + 60
        while (!grepl("training", seen) && Sys.time() < deadline && p$is_alive()) {
            p$poll_io(200)
            seen <- paste0(seen, p$read_output())
        }
        expect_match(seen, "training")
        Sys.sleep(3)  # data preparation done, well inside the first epoch
        expect_true(p$is_alive())
        sent <- Sys.time()
        p$interrupt()
        # fit_vae() returns (the epoch alone lasts far longer)
        while (!grepl("returned", seen) && Sys.time() < sent + 30 && p$is_alive()) {
            p$poll_io(100)
            seen <- paste0(seen, p$read_output())
        }
        took <- as.numeric(difftime(Sys.time(), sent, units = "secs"))
        p$wait(60000)
        rest <- paste0(seen, p$read_all_output())
        expect_identical(p$get_exit_status(), 0L)
        expect_lt(took, 2)
        expect_match(rest, "interrupted in epoch 1")
        expect_match(rest, "returned")
        fit <- readRDS(ch$out)
        expect_identical(fit$params$stop_reason, "interrupted")
        expect_identical(fit$params$epochs_run, 1L)
        expect_identical(nrow(fit$history), 1L)
        expect_true(is.finite(fit$history$loss))
        expect_identical(fit$n_gen, 3L)
    })
}

test_that("an interrupt stops gen_exprs() of many cells within a second or two", {
    skip_on_os("windows")
    skip_on_cran()
    script <- tempfile(fileext = ".R")
    writeLines(c(
        "suppressMessages(library(exprsgen))",
        "set.seed(1)",
        "x <- matrix(rpois(200 * 1000, 2), 200, 1000)",
        "fit <- suppressMessages(fit_vae(x_train = x, likelihood = 'nb', epochs = 1, batch_size = 64, verbose = FALSE))",
        "cat('generating\\n')",
        "r <- tryCatch(gen_exprs(fit, 2e5), interrupt = function(e) 'interrupted')",
        "cat(if (is.character(r)) r else 'finished', '\\n')"), script)
    p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script, stdout = "|", stderr = "2>&1")
    on.exit(p$kill(), add = TRUE)
    seen <- ""
    deadline <- Sys.time() + 60
    while (!grepl("generating", seen) && Sys.time() < deadline && p$is_alive()) {
        p$poll_io(200)
        seen <- paste0(seen, p$read_output())
    }
    expect_match(seen, "generating")
    Sys.sleep(2)  # well inside the generation (about a minute in all here)
    sent <- Sys.time()
    p$interrupt()
    while (!grepl("interrupted|finished", seen) && Sys.time() < sent + 30 && p$is_alive()) {
        p$poll_io(100)
        seen <- paste0(seen, p$read_output())
    }
    expect_lt(as.numeric(difftime(Sys.time(), sent, units = "secs")), 3)
    expect_match(seen, "interrupted")
})

test_that("an interrupt while on-disk blocks train in the background stops cleanly", {
    skip_on_os("windows")
    skip_if_not_installed("HDF5Array")
    out <- tempfile(fileext = ".rds")
    r <- interrupt_after(c(
        "suppressMessages({library(exprsgen); library(HDF5Array)})",
        "set.seed(1)",
        "x <- matrix(rpois(300 * 4000, 1), 300, 4000)",
        "h5 <- writeHDF5Array(x, tempfile(fileext = '.h5'), 'counts', chunkdim = c(300L, 100L))",
        "options(exprsgen.block_cells = 200)",
        "sce <- SingleCellExperiment::SingleCellExperiment(list(counts = h5))",
        "fit <- suppressWarnings(fit_vae(sce, likelihood = 'nb',",
        "    encoder_layers = list(layer_input(300), layer_dense(64, 'relu')),",
        "    decoder_layers = list(layer_dense(64, 'relu'), layer_dense(300)),",
        "    epochs = 100000, batch_size = 16, seed = 1))",
        sprintf("saveRDS(fit, '%s')", out),
        "cat('saved', fit$params$stop_reason, '\\n')"), "epoch 1/", 0.3, deadline = 120)
    expect_match(r$seen, "epoch 1/")
    expect_identical(r$status, 0L)
    expect_match(r$all, "saved interrupted")
    fit <- readRDS(out)
    expect_gte(fit$params$epochs_run, 1L)
    expect_lt(fit$params$epochs_run, 100000L)
})

test_that("an interrupt while the training cells are encoded after training keeps the model", {
    d <- simulate_counts(n_per = 20, genes = 100)
    x <- as.matrix(Matrix::t(d$counts))
    # the encoding pass interrupted: an interrupt condition raised where it runs
    ns <- asNamespace("exprsgen")
    original <- get(".encode_training", ns)
    unlockBinding(".encode_training", ns)
    assign(".encode_training", function(...) {
        signalCondition(structure(class = c("interrupt", "condition"), list(message = "", call = NULL)))
        stop("not interrupted")
    }, envir = ns)
    restore <- function() {
        assign(".encode_training", original, envir = ns)
        lockBinding(".encode_training", ns)
    }
    fit <- NULL
    tryCatch(
        expect_warning(fit <- fit_vae(x_train = x, y_train = d$label, likelihood = "nb", epochs = 3,
                               batch_size = 16, seed = 1, verbose = FALSE),
                       "encoding the training cells", class = "exprsgen_warning_interrupted"),
        finally = restore())
    expect_s3_class(fit, "exprsgen_fit")
    expect_null(fit$latent)
    expect_identical(fit$params$epochs_run, 3L)
    # the codes are encoded when needed: the same cells as from the uninterrupted fit
    full <- fit_vae(x_train = x, y_train = d$label, likelihood = "nb", epochs = 3, batch_size = 16, seed = 1,
                    verbose = FALSE)
    expect_equal(fit$model$weights, full$model$weights)
    set.seed(1)
    a <- gen_exprs(fit, num_samples = 20)
    set.seed(1)
    b <- gen_exprs(full, num_samples = 20)
    expect_identical(a$x_gen, b$x_gen)
    expect_equal(encode(fit), encode(full))
})

test_that("Ctrl-C pressed twice still returns the model", {
    skip_on_os("windows")
    skip_on_cran()
    for (again in c(0.02, 0.2)) {
        out <- tempfile(fileext = ".rds")
        r <- interrupt_after(c(
            "suppressMessages(library(exprsgen))",
            "set.seed(1)",
            "x <- matrix(rpois(3000 * 200, 2), 3000, 200)",
            "fit <- suppressWarnings(fit_vae(x_train = x, likelihood = 'nb', epochs = 100000, batch_size = 16, seed = 1))",
            sprintf("suspendInterrupts(saveRDS(fit, '%s'))", out)), "epoch 1/", 0.3, again = again)
        expect_identical(r$status, 0L)
        fit <- readRDS(out)
        expect_identical(fit$params$stop_reason, "interrupted")
        expect_false(is.null(fit$checkpoint$state))
    }
})
