test_that("an interrupt (SIGINT) stops training cleanly and keeps the model", {
    skip_on_os("windows")
    script <- tempfile(fileext = ".R")
    out <- tempfile(fileext = ".rds")
    writeLines(c(
        "suppressMessages(library(exprsgen))",
        "set.seed(1)",
        "x <- matrix(rexp(400 * 300), 400, 300)",
        "fit <- suppressWarnings(fit_vae(x_train = x,",
        "    encoder_layers = list(layer_input(300), layer_dense(64, 'relu')),",
        "    decoder_layers = list(layer_dense(64, 'relu'), layer_dense(300, 'sigmoid')),",
        "    epochs = 100000, batch_size = 16, seed = 1))",
        sprintf("saveRDS(fit, '%s')", out),
        "gen <- gen_exprs(fit, 5)",
        "cat('generated', nrow(gen$x_gen), '\\n')"), script)
    p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script,
                               stdout = "|", stderr = "2>&1")
    on.exit(p$kill(), add = TRUE)
    # wait until training is under way (the first epoch is reported)
    seen <- ""
    deadline <- Sys.time() + 60
    while (!grepl("epoch 1/", seen) && Sys.time() < deadline && p$is_alive()) {
        p$poll_io(1000)
        seen <- paste0(seen, p$read_output())
    }
    expect_match(seen, "epoch 1/")
    Sys.sleep(0.5)
    p$interrupt()
    p$wait(60000)
    rest <- paste0(seen, p$read_all_output())
    expect_identical(p$get_exit_status(), 0L)
    expect_match(rest, "interrupted")
    expect_match(rest, "generated 5")
    fit <- readRDS(out)
    expect_identical(fit$params$stop_reason, "interrupted")
    expect_gte(fit$params$epochs_run, 1L)
    expect_lt(fit$params$epochs_run, 100000L)
    expect_identical(nrow(fit$history), fit$params$epochs_run)
})
