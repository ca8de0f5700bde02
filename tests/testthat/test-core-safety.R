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

test_that("the memory limit of the control group (container, Slurm job) is the memory available", {
    fake <- function(lines, files) {
        root <- tempfile("cgroup")
        for (f in names(files)) {
            dir.create(dirname(file.path(root, f)), recursive = TRUE, showWarnings = FALSE)
            writeLines(files[[f]], file.path(root, f))
        }
        writeLines(lines, file.path(root, "self"))
        root
    }
    room <- function(root) exprsgen:::.cgroup_room(root, file.path(root, "self"))
    gb <- 1e9
    # v2: a 1.5 GB container with 0.5 GB in use, of which 0.1 GB reclaimable file cache
    v2 <- fake("0::/job", list("job/memory.max" = format(1.5 * gb, scientific = FALSE),
                               "job/memory.current" = format(0.5 * gb, scientific = FALSE),
                               "job/memory.stat" = c("anon 1", "inactive_file 100000000"),
                               "memory.max" = "max"))
    expect_equal(room(v2), 1.1 * gb)
    # the tighter limit of a parent group counts
    v2p <- fake("0::/slurm/job", list("slurm/memory.max" = format(1 * gb, scientific = FALSE),
                                      "slurm/job/memory.max" = "max"))
    expect_equal(room(v2p), 1 * gb)
    # v1, with the hierarchy's "no limit" above the job's limit
    v1 <- fake(c("5:cpu:/", "4:memory:/slurm/uid_0/job_7"),
               list("memory/memory.limit_in_bytes" = "9223372036854771712",
                    "memory/slurm/uid_0/job_7/memory.limit_in_bytes" = format(2 * gb, scientific = FALSE),
                    "memory/slurm/uid_0/job_7/memory.usage_in_bytes" = format(0.5 * gb, scientific = FALSE)))
    expect_equal(room(v1), 1.5 * gb)
    # no limits anywhere, or no cgroup files at all: nothing assumed
    expect_identical(room(fake("0::/", list("memory.max" = "max"))), Inf)
    expect_identical(exprsgen:::.cgroup_room(tempfile(), tempfile()), Inf)
    # a fit that needs more than the group allows is refused before training
    withr_opts <- options(exprsgen.cgroup_root = v2, exprsgen.cgroup_self = file.path(v2, "self"))
    on.exit(options(withr_opts))
    expect_lte(exprsgen:::.memory_available(), 1.1 * gb)
    x <- matrix(rpois(20 * 2000, 1), 20, 2000)
    expect_error(fit_vae(x_train = x, likelihood = "nb", epochs = 1, batch_size = 10, verbose = FALSE,
                         encoder_layers = list(layer_input(2000), layer_dense(30000, "relu")),
                         decoder_layers = list(layer_dense(16, "relu"), layer_dense(2000))),
                 "encoder_layers", class = "exprsgen_error_memory")
})

test_that("the first object the binding returns survives a garbage collection at the first protection", {
    # In a fresh session, extendr allocates its protection list (800 kB) when it first
    # protects an object. When that allocation ran R's garbage collector, the first
    # vector of that call (the vocabulary's likelihood names) was freed while still in
    # use, and later handed to another object of its size: R's cached vocabulary then
    # held unrelated strings. The child fills R's vector heap to just below its
    # collection trigger, so that the allocation collects, then reuses small vectors.
    out <- tempfile(fileext = ".rds")
    code <- sprintf(paste(
        "library(exprsgen)",
        "g <- gc()",
        "filler <- numeric(max(0, g[2, 4] * 1024^2 / 8 - g[2, 1] - 60000))",
        "v <- exprsgen:::.vocabulary()",
        "junk <- lapply(1:5000, function(i) as.character(i + 0:5))",
        "saveRDS(v, %s)", sep = "; "), deparse(out))
    status <- system2(file.path(R.home("bin"), "Rscript"), c("-e", shQuote(code)),
                      stdout = FALSE, stderr = FALSE)
    expect_equal(status, 0L)
    v <- readRDS(out)
    expect_identical(v, exprsgen:::.vocabulary())
    expect_true(all(c("bce", "nb", "zinb") %in% v$likelihoods$name))
})

test_that("the burn engine under ulimit -v refuses a model over the limit even with exprsgen.memory_limit = Inf", {
    skip_on_os(c("windows", "mac"))
    # burn's allocations abort the process when they fail (the default engine's are
    # errors), so the hard limits hold whatever the option says: this child, limited to
    # 3 GB of address space, was killed (SIGABRT) inside burn's optimizer step before.
    code <- paste(
        "library(exprsgen)",
        "options(exprsgen.engine = 'burn', exprsgen.memory_limit = Inf)",
        "x <- matrix(runif(20 * 20000), 20, 20000)",
        "r <- tryCatch(fit_vae(x_train = x, epochs = 1, batch_size = 10, verbose = FALSE,",
        "  encoder_layers = list(layer_input(20000), layer_dense(8192, 'relu')),",
        "  decoder_layers = list(layer_dense(8192, 'relu'), layer_dense(20000, 'sigmoid'))),",
        "  error = function(e) e)",
        "cat(class(r)[1], '\\n'); cat(conditionMessage(r), '\\n')", sep = "\n")
    script <- tempfile(fileext = ".R")
    writeLines(code, script)
    out <- suppressWarnings(system2("sh", c("-c", shQuote(paste("ulimit -v 3000000 &&", shQuote(file.path(R.home("bin"), "Rscript")),
                                                            shQuote(script), "2>&1"))), stdout = TRUE))
    expect_null(attr(out, "status"))
    expect_match(out[1], "exprsgen_error_memory")
    expect_match(paste(out, collapse = " "), "burn engine cannot recover")
})
