# Scale benchmark (issue 3): one epoch of an NB CVAE on synthetic sparse counts, the
# peak resident memory of the R process, and gen_exprs() for as many cells.
#
#   Rscript bench/scale.R                       # 100,000 cells x 2,000 genes, dgCMatrix in memory
#   Rscript bench/scale.R --cells 1000000 --density 0.05 --on-disk   # HDF5Array on disk
#
# Options: --cells N --genes N --density D (target non-zero fraction) --types N
#          --on-disk (write the counts to an HDF5 file and train from it)
#          --gen N (cells to generate; default = --cells; 0 skips) --threads N
# Data are simulated block by block (never dense), saved, and read back by a fresh
# R process that does the fitting, so the reported peak memory (VmHWM) is that of
# the fitting process alone.
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- match(paste0("--", name), args)
    if (is.na(i)) default else if (is.logical(default)) TRUE else as(args[i + 1], class(default))
}
cells <- opt("cells", 100000)
genes <- opt("genes", 2000)
density <- opt("density", 0.10)
types <- opt("types", 5)
on_disk <- opt("on-disk", FALSE)
n_gen <- opt("gen", cells)
threads <- opt("threads", 1)
stage <- opt("stage", "all")
work <- opt("work", file.path(tempdir(), "exprsgen-scale"))
dir.create(work, showWarnings = FALSE, recursive = TRUE)
data_file <- file.path(work, sprintf("counts_%d_%d.rds", cells, genes))
h5_file <- file.path(work, sprintf("counts_%d_%d.h5", cells, genes))
label_file <- file.path(work, sprintf("labels_%d_%d.rds", cells, genes))

simulate <- function() {
    set.seed(42)
    # gene proportions per type: a shared gamma profile, 100 markers up per type
    base <- stats::rgamma(genes, shape = 0.35, rate = 1)
    profiles <- sapply(seq_len(types), function(k) {
        p <- base
        up <- sample.int(genes, 100)
        p[up] <- p[up] * 8 + 0.5
        p / sum(p)
    })
    label <- factor(paste0("type", sample.int(types, cells, replace = TRUE)))
    # library size tuned so that about `density` of the entries are non-zero
    lib_mean <- uniroot(function(L) {
        mean(1 - (2 / (2 + L * profiles[, 1]))^2) - density
    }, c(1, 1e6))$root
    lib <- round(stats::rlnorm(cells, log(lib_mean), 0.35))
    block <- 20000
    parts <- lapply(split(seq_len(cells), ceiling(seq_len(cells) / block)), function(idx) {
        mu <- profiles[, as.integer(label[idx])] * rep(lib[idx], each = genes)
        x <- stats::rnbinom(length(mu), size = 2, mu = mu)
        nz <- which(x > 0)
        Matrix::sparseMatrix(i = (nz - 1) %% genes + 1, j = (nz - 1) %/% genes + 1,
                             x = as.numeric(x[nz]), dims = c(genes, length(idx)))
    })
    counts <- do.call(cbind, parts)
    dimnames(counts) <- list(paste0("gene", seq_len(genes)), paste0("cell", seq_len(cells)))
    list(counts = counts, label = label)
}

if (stage %in% c("all", "simulate")) {
    if (!file.exists(data_file)) {
        t <- system.time(sim <- simulate())[["elapsed"]]
        cat(sprintf("simulated %d cells x %d genes in %.1f s; non-zero fraction %.3f\n",
                    cells, genes, t, length(sim$counts@x) / (as.numeric(cells) * genes)))
        saveRDS(sim, data_file, compress = FALSE)
        saveRDS(sim$label, label_file)
    }
    if (!file.exists(label_file)) saveRDS(readRDS(data_file)$label, label_file)
    if (on_disk && !file.exists(h5_file)) {
        sim <- readRDS(data_file)
        t <- system.time(HDF5Array::writeHDF5Array(sim$counts, h5_file, "counts",
                                                   H5type = "H5T_STD_I32LE", chunkdim = c(genes, 256L),
                                                   as.sparse = TRUE, verbose = FALSE))[["elapsed"]]
        cat(sprintf("wrote %s (%.0f MB) in %.1f s\n", h5_file, file.size(h5_file) / 2^20, t))
    }
    rm(list = intersect("sim", ls()))
    if (stage == "all") {
        rscript <- file.path(R.home("bin"), "Rscript")
        this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
        status <- system2(rscript, c(this, args, "--stage", "fit", "--work", work))
        quit(status = status)
    }
}

if (stage == "fit") {
    suppressMessages({library(exprsgen); library(SingleCellExperiment)})
    # on disk, only the labels are read into memory
    sim <- if (on_disk) list(label = readRDS(label_file)) else readRDS(data_file)
    counts <- if (on_disk) HDF5Array::HDF5Array(h5_file, "counts") else sim$counts
    if (on_disk) dimnames(counts) <- list(paste0("gene", seq_len(genes)), paste0("cell", seq_len(cells)))
    sce <- SingleCellExperiment(assays = list(counts = counts),
                                colData = S4Vectors::DataFrame(type = sim$label))
    rm(sim); invisible(gc())
    rss <- function() {
        s <- readLines("/proc/self/status")
        kb <- function(k) as.numeric(sub("[^0-9]*([0-9]+).*", "\\1", grep(paste0("^", k), s, value = TRUE)))
        c(now = kb("VmRSS") / 1024, peak = kb("VmHWM") / 1024)
    }
    cat(sprintf("input: %s, %d cells x %d genes; R process RSS %.0f MB before fitting\n",
                class(counts)[1], cells, genes, rss()[["now"]]))
    load <- function() {
        l <- readLines("/proc/loadavg")
        as.numeric(strsplit(l, " ")[[1]][1])
    }
    cpu0 <- proc.time()
    t <- system.time(fit <- fit_vae(sce, labels = "type", likelihood = "nb",
        encoder_layers = list(layer_input(genes), layer_dense(128, "relu")),
        decoder_layers = list(layer_dense(128, "relu"), layer_dense(genes)),
        latent_dim = 10, epochs = 1, batch_size = 128, seed = 1, num.threads = threads,
        verbose = FALSE))
    cat(sprintf("fit_vae, 1 epoch (NB CVAE, 128 hidden, 10 latent, batch 128): %.1f s wall, %.1f s CPU, load %.2f\n",
                t[["elapsed"]], t[["user.self"]] + t[["sys.self"]], load()))
    cat(sprintf("  epoch loss %.1f; peak RSS of the R process so far %.0f MB\n",
                fit$history$loss, rss()[["peak"]]))
    cat(sprintf("  the training epoch alone: %.1f s wall (fit_vae's other passes: checks, latent codes)\n",
                fit$params$epoch_seconds$wall[1]))
    if (n_gen > 0) {
        set.seed(1)
        t <- system.time(gen <- gen_exprs(fit, num_samples = n_gen))
        cat(sprintf("gen_exprs(num_samples = %d): %.1f s wall (%d non-zero counts)\n",
                    n_gen, t[["elapsed"]], length(gen$x_gen@x)))
        t <- system.time(sce_gen <- as_sce(gen))
        cat(sprintf("as_sce(): %.1f s\n", t[["elapsed"]]))
    }
    cat(sprintf("peak RSS of the R process: %.0f MB\n", rss()[["peak"]]))
}
