# Nothing kills the R session: a panic inside the Rust core, or memory the core cannot
# have, is an R error of class "exprsgen_error_core", and R goes on.

probe <- function(what) exprsgen:::.core(.Call(exprsgen:::wrap__eg_panic_probe, what))

test_that("a panic in the core is a classed R error, and R goes on", {
    expect_true(probe("ok"))
    err <- expect_error(probe("panic"), "internal error", class = "exprsgen_error_core")
    expect_s3_class(err, "exprsgen_error")
    expect_match(conditionMessage(err), "panicked, as asked")
    # the session, the core and its panic guard all still work
    expect_true(probe("ok"))
    expect_error(probe("panic"), "internal error", class = "exprsgen_error_core")
    v <- exprsgen:::.core(.Call(exprsgen:::wrap__eg_vocabulary))
    expect_true("bce" %in% v$likelihoods$name)
})

test_that("memory the core cannot have is a classed R error saying so", {
    err <- expect_error(probe("alloc"), "could not allocate", class = "exprsgen_error_core")
    expect_match(conditionMessage(err), "memory")
    expect_match(conditionMessage(err), "panic probe's vector")
    expect_true(probe("ok"))
    expect_error(probe("nonsense"), "what", class = "exprsgen_error_core")
})

test_that("a model too large for any machine is an error naming the layer", {
    # an encoder layer of 2^56 units over 10 genes: about 3 EB of weights
    spec <- list(n_genes = 10, n_classes = 0, encoder_units = 2^56, encoder_activation = "relu",
                 latent_dim = 2, decoder_units = c(16, 10),
                 decoder_activation = c("relu", "sigmoid"), likelihood = "bce")
    train <- list(optimizer = "adam", learning_rate = NULL, regularization = 1, batch_size = 16,
                  seed = 1, threads = 1, engine = "fused")
    data <- list(x = NULL, labels = NULL, x_val = NULL, labels_val = NULL,
                 transform = list(type = "minmax", min = rep(0, 10), max = rep(1, 10)))
    err <- expect_error(exprsgen:::.eg_trainer_new(spec, train, data), "could not allocate",
                        class = "exprsgen_error_core")
    expect_match(conditionMessage(err), "encoder_1")
    expect_match(conditionMessage(err), "memory")
    expect_true(probe("ok"))
})

test_that("fit_vae() with a billion-unit layer is refused before the core, and by the core if let through", {
    # R's check first: it names the argument
    expect_error(fit_vae(x_train = sim$x,
                         encoder_layers = list(layer_input(shape = n_genes), layer_dense(1e9, "relu")),
                         decoder_layers = list(layer_dense(16, "relu"), layer_dense(n_genes, "sigmoid")),
                         epochs = 1, batch_size = 16, verbose = FALSE),
                 "encoder_layers", class = "exprsgen_error_memory")
    # with R's check told that memory is unlimited, the core's fallible allocation
    # 300 genes x 1e9 units: 1.2 TB of weights. Linux refuses such an allocation unless
    # told to promise any amount of memory (vm.overcommit_memory = 1); there the
    # allocation would succeed and filling it would exhaust memory, so not tried.
    overcommit <- tryCatch(readLines("/proc/sys/vm/overcommit_memory", warn = FALSE),
                           error = function(e) NA_character_)
    skip_if_not(identical(overcommit, "0") || identical(overcommit, "2"),
                "the system may promise memory it does not have (vm.overcommit_memory)")
    old <- options(exprsgen.memory_limit = Inf)
    on.exit(options(old))
    err <- expect_error(
        fit_vae(x_train = sim$x,
                encoder_layers = list(layer_input(shape = n_genes), layer_dense(1e9, "relu")),
                decoder_layers = list(layer_dense(16, "relu"), layer_dense(n_genes, "sigmoid")),
                epochs = 1, batch_size = 16, verbose = FALSE),
        "could not allocate 1.2 TB", class = "exprsgen_error_core")
    expect_match(conditionMessage(err), "memory")
    expect_true(probe("ok"))
})
