ck_counts <- function(n = 120, g = 40) {
    set.seed(1)
    matrix(rpois(n * g, 3), n, g, dimnames = list(NULL, paste0("g", seq_len(g))))
}

ck_fit <- function(epochs, callbacks = NULL, ...) {
    fit_vae(x_train = ck_counts(), y_train = rep(c("A", "B"), 60), likelihood = "nb", batch_size = 16,
            seed = 7, verbose = FALSE, validation_split = 0.2, epochs = epochs, callbacks = callbacks, ...)
}

test_that("a fit resumed from a checkpoint equals the uninterrupted fit", {
    d <- withr::local_tempdir()
    # the learning-rate schedule, early stopping's counters and the KL warm-up
    # continue too
    plateau <- callback_reduce_lr_on_plateau(monitor = "loss", patience = 1, factor = 0.5)
    stopping <- callback_early_stopping(monitor = "val_loss", patience = 50, restore_best_weights = TRUE)
    whole <- ck_fit(12, list(plateau, stopping), kl_warmup = 8)
    ck <- callback_model_checkpoint(file.path(d, "ck-{epoch:02d}.rds"), save_freq = 5)
    saved <- ck_fit(12, list(plateau, stopping, ck), kl_warmup = 8)
    # one file per checkpoint, the last after the last epoch, no temporary file left
    expect_setequal(list.files(d, all.files = TRUE, no.. = TRUE), c("ck-05.rds", "ck-10.rds", "ck-12.rds"))
    # writing checkpoints changes nothing
    expect_identical(saved$model$weights, whole$model$weights)
    progress <- testthat::capture_messages(
        expect_message(res <- fit_vae(resume = file.path(d, "ck-05.rds")), "after epoch 5, up to epoch 12",
                       class = "exprsgen_message_resume"))
    expect_match(progress[1], "^epoch 6/12")
    expect_identical(res$model$weights, whole$model$weights)
    expect_identical(res$history, whole$history)
    expect_identical(res$latent, whole$latent)
    expect_identical(res$params$best_epoch, whole$params$best_epoch)
    expect_identical(res$params$guard, whole$params$guard)
    expect_null(res$checkpoint)
    # and from a fit read back, on 2 threads, to a later total
    ck10 <- readRDS(file.path(d, "ck-10.rds"))
    longer <- ck_fit(15, list(plateau, stopping), kl_warmup = 8)
    res15 <- fit_vae(resume = ck10, epochs = 15, num.threads = 2, verbose = FALSE)
    expect_identical(res15$model$weights, longer$model$weights)
    expect_identical(res15$history, longer$history)
})

test_that("a checkpoint is a fit that gen_exprs() and print() accept", {
    path <- withr::local_tempfile(fileext = ".rds")
    ck_fit(4, callback_model_checkpoint(path, save_freq = "epoch"))
    ck <- readRDS(path)
    expect_s3_class(ck, "exprsgen_fit")
    expect_identical(ck$params$stop_reason, "checkpoint")
    expect_identical(ck$params$epochs_run, 4L)
    gen <- gen_exprs(ck, labels = c(A = 3, B = 2))
    expect_identical(dim(gen$x_gen), c(5L, 40L))
    expect_output(print(ck), "4 epochs \\(checkpoint\\)")
    expect_output(print(callback_model_checkpoint(path, save_freq = 3)), "every 3 epochs")
})

test_that("an interrupted fit can be continued", {
    skip_on_os("windows")
    out <- tempfile(fileext = ".rds")
    r <- interrupt_after(c(
        "suppressMessages(library(exprsgen))",
        "set.seed(1)",
        "x <- matrix(rpois(300 * 200, 2), 300, 200)",
        "fit <- suppressWarnings(fit_vae(x_train = x, likelihood = 'nb', epochs = 100000, batch_size = 16, seed = 1))",
        sprintf("saveRDS(fit, '%s')", out)), "epoch 1/", 0.5)
    fit <- readRDS(out)
    expect_identical(fit$params$stop_reason, "interrupted")
    expect_false(is.null(fit$checkpoint$state))
    n <- fit$params$epochs_run
    res <- fit_vae(resume = fit, epochs = n + 2L, verbose = FALSE)
    expect_identical(res$params$stop_reason, "completed")
    expect_identical(nrow(res$history), n + 2L)
    expect_identical(res$history[seq_len(n), ], fit$history)
})

test_that("resume is refused, naming the argument, when it cannot continue", {
    d <- withr::local_tempdir()
    path <- file.path(d, "ck.rds")
    done <- ck_fit(3, callback_model_checkpoint(path))
    expect_error(fit_vae(resume = done), "finished training", class = "exprsgen_error_argument")
    expect_error(fit_vae(resume = path, epochs = 3), "3 were asked and 3 have run", class = "exprsgen_error_argument")
    expect_error(fit_vae(resume = path, epochs = 5, latent_dim = 3, seed = 1), "latent_dim.*seed.*cannot be given",
                 class = "exprsgen_error_argument")
    expect_error(fit_vae(resume = path, x_train = ck_counts()), "x_train", class = "exprsgen_error_argument")
    expect_error(fit_vae(resume = file.path(d, "none.rds")), "no file", class = "exprsgen_error_argument")
    writeLines("not an rds", bad <- file.path(d, "bad.rds"))
    expect_error(fit_vae(resume = bad), "could not be read", class = "exprsgen_error_argument")
    expect_error(fit_vae(resume = list(a = 1)), "must be a fit", class = "exprsgen_error_argument")
    expect_error(fit_vae(resume = c("a", "b")), "checkpoint file", class = "exprsgen_error_argument")
    # a state that does not fit the model: the core's check, as an R error
    ck <- readRDS(path)
    ck$checkpoint$state$trainer$slots[[1]]$m1 <- 1
    expect_error(fit_vae(resume = ck, epochs = 5, verbose = FALSE), "state", class = "exprsgen_error")
})

test_that("checkpoints are written whole or not at all", {
    d <- withr::local_tempdir()
    expect_error(callback_model_checkpoint(""), "filepath")
    expect_error(callback_model_checkpoint("a.rds", save_freq = 0), "save_freq")
    expect_error(ck_fit(2, callback_model_checkpoint(file.path(d, "no", "such", "ck.rds"))),
                 "does not exist", class = "exprsgen_error_argument")
    # a write that fails leaves the earlier checkpoint whole, warns once, and
    # training goes on
    path <- file.path(d, "ck.rds")
    ck_fit(2, callback_model_checkpoint(path))
    before <- readRDS(path)
    # a folder under the temporary file's name makes every write fail
    dir.create(file.path(d, paste0(".ck.rds.part-", Sys.getpid())))
    expect_warning(fit <- ck_fit(4, callback_model_checkpoint(path)), "could not be written",
                   class = "exprsgen_warning_checkpoint")
    expect_identical(fit$params$epochs_run, 4L)
    expect_identical(readRDS(path)$model$weights, before$model$weights)
    expect_identical(exprsgen:::.checkpoint_path("a/ck-{epoch}.rds", 7L), "a/ck-7.rds")
    expect_identical(exprsgen:::.checkpoint_path("ck-{epoch:03d}.rds", 7L), "ck-007.rds")
})

test_that("the burn engine refuses checkpoints instead of writing ones it cannot continue", {
    withr::local_options(exprsgen.engine = "burn")
    expect_error(ck_fit(2, callback_model_checkpoint(withr::local_tempfile())), "default training engine",
                 class = "exprsgen_error_argument")
})

test_that("a run ended by early stopping leaves its last epoch in the checkpoint", {
    d <- withr::local_tempdir()
    path <- file.path(d, "ck.rds")
    # an improvement of 1e9 is never seen: training stops after epoch 1 + patience
    stopping <- callback_early_stopping(monitor = "loss", patience = 2, min_delta = 1e9)
    fit <- ck_fit(20, list(stopping, callback_model_checkpoint(path, save_freq = 10)))
    expect_identical(fit$params$stop_reason, "early_stopping")
    expect_identical(fit$params$epochs_run, 3L)
    # no periodic checkpoint was due (every 10 epochs): the one written at the stop
    saved <- readRDS(path)
    expect_identical(saved$params$stop_reason, "early_stopping")
    expect_identical(saved$history, fit$history)
    expect_identical(saved$model$weights, fit$model$weights)
    # the same callbacks would stop again at once: resuming asks for others
    expect_error(fit_vae(resume = path, epochs = 6), "early stopping at epoch 3",
                 class = "exprsgen_error_argument")
    # with others it continues from epoch 3, as a run without that early stopping would
    more <- fit_vae(resume = path, epochs = 6, callbacks = list(), verbose = FALSE)
    plain <- ck_fit(6)
    expect_identical(nrow(more$history), 6L)
    expect_identical(more$model$weights, plain$model$weights)
})
