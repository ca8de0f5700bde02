# Speed benchmark (issue 4): the workloads W1-W4 of shared/notes/peers.md, for the
# VAExprs-style model (bce) and the count model (nb), with 1 and 2 threads.
#
#   Rscript bench/speed.R                          # everything (about 15 minutes)
#   Rscript bench/speed.R --workloads W1,W3 --likelihoods bce --threads 1 --repeats 3
#   Rscript bench/speed.R --peers ../shared/peers/results   # peers' figures measured now
#   Rscript bench/speed.R --workloads W3,W4 --gen no        # training only, no gen_exprs() timing
#
# Per workload, model and thread count it prints seconds per epoch (wall and process
# CPU; the first epoch apart, then the median of further epochs: 20 for W1/W2, 5 for W3,
# 3 for W4, or --repeats), cells per second,
# achieved GFLOP/s (the step's matrix products: 6 x cells x multiply-adds per cell),
# the ratio to the 1-core GEMM bound of peers.md, the peers' figures from peers.md,
# the peak resident memory of the process, and the load of the machine while it ran
# (other processes' cores from /proc/stat). Each workload runs in a fresh R process.
# Then: gen_exprs() time for 1,000 and 100,000 cells (W4-sized NB model).
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    # the last occurrence wins: child processes get the parent's arguments plus their own
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[max(i) + 1L]
}
workloads <- strsplit(opt("workloads", "W1,W2,W3,W4"), ",")[[1]]
likelihoods <- strsplit(opt("likelihoods", "bce,nb"), ",")[[1]]
threads <- as.integer(strsplit(opt("threads", "1,2"), ",")[[1]])
# epochs timed after the first (median taken): more for the small workloads, whose
# epochs take milliseconds (the peers time 100 epochs of W1/W2)
repeats_opt <- opt("repeats", NA)
repeats_for <- function(name) {
    if (!is.na(repeats_opt)) return(as.integer(repeats_opt))
    c(W1 = 20L, W2 = 20L, W3 = 5L, W4 = 3L)[[name]]
}
stage <- opt("stage", "all")

# name = cells, genes, hidden, latent, batch, classes (CVAE when cvae)
W <- list(
    W1 = list(cells = 300, genes = 1000, H = 512, L = 2, batch = 32, classes = 3, cvae = FALSE,
              bound = 0.037, tf = 0.063, torch = 0.126, scvi = NA),
    W2 = list(cells = 90, genes = 19595, H = 256, L = 2, batch = 32, classes = 7, cvae = TRUE,
              bound = 0.131, tf = 0.154, torch = 0.352, scvi = NA),
    W3 = list(cells = 20000, genes = 2000, H = 128, L = 10, batch = 128, classes = 5, cvae = FALSE,
              bound = 0.91, tf = 1.42, torch = 2.03, scvi = 8.70),
    W4 = list(cells = 100000, genes = 2000, H = 128, L = 10, batch = 128, classes = 5, cvae = FALSE,
              bound = 4.55, tf = 7.35, torch = 10.8, scvi = 44.1))

# --peers DIR: the peers' figures from their results/*.json files (shared/peers scripts run
# in this session) instead of the ones recorded in peers.md: 1-thread CPU-s per epoch
# (median of later epochs, else the first epoch when only one was timed).
peers_dir <- opt("peers", NA)
if (!is.na(peers_dir)) {
    files <- c(tf = "keras_tfkeras-graph_t1.json", torch = "torch_t1.json", scvi = "scvi_t1.json")
    for (col in names(files)) {
        f <- file.path(peers_dir, files[[col]])
        key <- col
        for (name in names(W)) W[[name]][[key]] <- NA
        if (!file.exists(f)) next
        summ <- jsonlite::fromJSON(f)$summary
        for (i in seq_len(nrow(summ))) {
            v <- summ$median_later_epoch_cpu_s[i]
            if (is.null(v) || is.na(v)) v <- summ$first_epoch_cpu_s[i]
            if (summ$workload[i] %in% names(W)) W[[summ$workload[i]]][[key]] <- round(v, 3)
        }
    }
}

# Data of the peers' kinds: W1 the VAExprs simulation; W2-W4 NB counts (per-gene
# lognormal means, a 4x up-regulated block per class, lognormal size factors, theta 2).
make_data <- function(w, name) {
    set.seed(1)
    if (name == "W1") {
        g <- 3; n <- 100; m <- 1000
        mat <- matrix(rnorm(n * m * g, 5, 5), m, n * g)
        group <- rep(seq_len(g), each = n)
        for (i in seq_len(g)) {
            rows <- (100 * (i - 1) + 1):(100 * i)
            mat[rows, group == i] <- mat[1:100, group == i] + rnorm(100, 6, 10)
        }
        mat[mat < 0] <- 0
        return(list(values = mat, counts = NULL, label = factor(group)))
    }
    label <- factor(sample(rep(seq_len(w$classes), length.out = w$cells)))
    base <- rlnorm(w$genes, 0, 1.2)
    block <- max(1, w$genes %/% (4 * w$classes))
    fc <- matrix(1, w$genes, w$classes)
    for (k in seq_len(w$classes)) fc[((k - 1) * block + 1):(k * block), k] <- 4
    sf <- rlnorm(w$cells, 0, 0.3)
    parts <- lapply(split(seq_len(w$cells), ceiling(seq_len(w$cells) / 10000)), function(idx) {
        mu <- base * fc[, as.integer(label[idx])] * rep(sf[idx], each = w$genes)
        x <- rnbinom(length(mu), size = 2, mu = mu)
        Matrix::Matrix(matrix(as.numeric(x), w$genes), sparse = TRUE)
    })
    counts <- do.call(cbind, parts)
    dimnames(counts) <- list(paste0("g", seq_len(w$genes)), paste0("c", seq_len(w$cells)))
    values <- as.matrix(scuttle::normalizeCounts(counts, size.factors = scuttle::librarySizeFactors(counts)))
    list(values = values, counts = counts, label = label)
}

others_cores <- function() {
    # cumulative busy jiffies of all CPUs, and of this process
    cpu <- as.numeric(strsplit(readLines("/proc/stat", 1), " +")[[1]][-1])
    busy <- sum(cpu[1:3]) + sum(cpu[6:8])
    self <- as.numeric(strsplit(readLines("/proc/self/stat"), " ")[[1]][14:15])
    c(busy = busy, self = sum(self))
}

run_workload <- function(name) {
    suppressMessages({library(exprsgen); library(SingleCellExperiment)})
    w <- W[[name]]
    d <- make_data(w, name)
    out <- list()
    for (lik in likelihoods) {
        if (lik != "bce" && is.null(d$counts)) next  # W1 has no counts
        x <- if (lik == "bce") d$values else d$counts
        sce <- SingleCellExperiment(assays = stats::setNames(list(x), if (lik == "bce") "logcounts" else "counts"),
                                    colData = S4Vectors::DataFrame(label = d$label))
        for (th in threads) {
            epochs <- 1 + repeats_for(name)
            s0 <- others_cores(); t0 <- proc.time()[["elapsed"]]
            fit <- suppressMessages(fit_vae(sce, assay.type = if (lik == "bce") "logcounts" else "counts",
                           labels = if (w$cvae) "label" else NULL, likelihood = lik,
                           encoder_layers = list(layer_input(w$genes), layer_dense(w$H, "relu")),
                           decoder_layers = list(layer_dense(w$H, "relu"),
                                                 layer_dense(w$genes, if (lik == "bce") "sigmoid" else "linear")),
                           latent_dim = w$L, epochs = epochs, batch_size = w$batch, seed = 1,
                           num.threads = th, verbose = FALSE))
            s1 <- others_cores(); el <- proc.time()[["elapsed"]] - t0
            hz <- 100
            others <- ((s1[["busy"]] - s0[["busy"]]) - (s1[["self"]] - s0[["self"]])) / hz / el
            es <- fit$params$epoch_seconds
            later <- es[-1, ]
            k <- if (w$cvae) w$classes else 0
            macs <- (w$genes + k) * w$H + w$H * 2 * w$L + (w$L + k) * w$H + w$H * w$genes
            gflop <- 6 * w$cells * macs / 1e9
            wall <- stats::median(later$wall)
            cpu <- stats::median(later$cpu)
            out[[length(out) + 1]] <- data.frame(
                workload = name, model = lik, threads = th,
                first_wall = round(es$wall[1], 3), wall = round(wall, 3), cpu = round(cpu, 3),
                cells_per_s = round(w$cells / wall), gflops = round(gflop / wall, 1),
                x_bound_cpu = round(cpu / w$bound, 2),
                tf_keras = w$tf, torch = w$torch, scvi = w$scvi,
                others_cores = round(others, 2))
        }
    }
    res <- do.call(rbind, out)
    s <- readLines("/proc/self/status")
    res$peak_rss_mb <- round(as.numeric(sub("[^0-9]*([0-9]+).*", "\\1", grep("^VmHWM", s, value = TRUE))) / 1024)
    res$load1 <- as.numeric(strsplit(readLines("/proc/loadavg"), " ")[[1]][1])
    res
}

gen_timing <- function() {
    suppressMessages({library(exprsgen); library(SingleCellExperiment)})
    w <- W$W4
    d <- make_data(w, "W4")
    sce <- SingleCellExperiment(assays = list(counts = d$counts), colData = S4Vectors::DataFrame(label = d$label))
    fit <- fit_vae(sce, labels = "label", likelihood = "nb",
                   encoder_layers = list(layer_input(w$genes), layer_dense(w$H, "relu")),
                   decoder_layers = list(layer_dense(w$H, "relu"), layer_dense(w$genes)),
                   latent_dim = w$L, epochs = 1, batch_size = w$batch, seed = 1, verbose = FALSE)
    rows <- list()
    for (threads in c(1L, 2L)) for (n in c(1000, 100000)) {
        set.seed(1)
        t <- system.time(gen_exprs(fit, n, num.threads = threads))[["elapsed"]]
        rows[[length(rows) + 1L]] <- data.frame(
            task = sprintf("gen_exprs(num_samples = %d, num.threads = %d), NB CVAE on W4", n, threads),
            seconds = round(t, 2))
    }
    do.call(rbind, rows)
}

if (stage == "all") {
    rscript <- file.path(R.home("bin"), "Rscript")
    this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
    res <- list()
    for (name in workloads) {
        f <- tempfile(fileext = ".rds")
        st <- system2(rscript, c(this, args, "--stage", name, "--out", f))
        if (st != 0 || !file.exists(f)) stop("workload ", name, " failed")
        res[[name]] <- readRDS(f)
    }
    cat("\nSeconds per epoch (first epoch apart; then medians of",
        if (is.na(repeats_opt)) "20 (W1, W2), 5 (W3) or 3 (W4)" else repeats_opt,
        "epochs). x_bound_cpu = CPU-s / 1-core GEMM bound (peers.md);\n",
        "tf_keras, torch, scvi: their 1-thread CPU-s per epoch",
        if (is.na(peers_dir)) "from peers.md" else paste("measured in", peers_dir),
        "(scvi: NB/ZINB SCVI).\n\n")
    print(do.call(rbind, res), row.names = FALSE)
    f <- tempfile(fileext = ".rds")
    if (opt("gen", "yes") != "no" && system2(rscript, c(this, "--stage", "gen", "--out", f)) == 0) {
        cat("\n")
        print(readRDS(f), row.names = FALSE)
    }
} else if (stage == "gen") {
    saveRDS(gen_timing(), opt("out", ""))
} else {
    saveRDS(run_workload(stage), opt("out", ""))
}
