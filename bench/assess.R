# Time of assess_aug() (issue 5: <= 30 s for 5,000 real + 5,000 generated cells x 2,000
# genes). Real and "generated" cells are NB counts of five cell types (the generated
# ones drawn with a different dispersion), as sparse genes x cells matrices.
#
#   Rscript bench/assess.R [--cells 5000] [--genes 2000] [--threads 1]
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else as.numeric(args[max(i) + 1L])
}
cells <- opt("cells", 5000)
genes <- opt("genes", 2000)
threads <- opt("threads", 1)
suppressMessages(library(exprsgen))
set.seed(1)
types <- 5
base <- matrix(rlnorm(genes * types, 0, 1.2), genes, types)
for (k in seq_len(types)) base[((k - 1) * 50 + 1):(k * 50), k] <- base[((k - 1) * 50 + 1):(k * 50), k] * 4
simulate <- function(theta) {
    label <- sample(types, cells, replace = TRUE)
    lib <- rlnorm(cells, log(3000), 0.3)
    props <- sweep(base, 2, colSums(base), "/")
    mu <- props[, label] * rep(lib, each = genes)
    m <- Matrix::Matrix(matrix(as.numeric(rnbinom(length(mu), size = theta, mu = mu)), genes), sparse = TRUE)
    list(x = m, label = paste0("type", label))
}
real <- simulate(2)
gen <- simulate(1)
cat(sprintf("%d real + %d generated cells x %d genes (%.0f%% zeros), %d thread(s)\n",
            cells, cells, genes, 100 * (1 - Matrix::nnzero(real$x) / length(real$x)), threads))
t0 <- proc.time()
a <- assess_aug(real$x, gen$x, labels_real = real$label, labels_gen = gen$label, seed = 1,
                num.threads = threads)
el <- proc.time() - t0
print(a)
cat(sprintf("\nassess_aug: %.1f s wall, %.1f s CPU (target <= 30 s)\n", el[["elapsed"]],
            el[["user.self"]] + el[["sys.self"]]))
