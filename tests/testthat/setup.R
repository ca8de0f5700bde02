# Shared fixtures: the VAExprs simulation, smaller (3 groups of 40 cells, 300 genes,
# 30 up-regulated genes per group), cells in rows as VAExprs's x_train.
simulate_groups <- function(n = 40, m = 300, deg = 30, g = 3, seed = 1) {
    set.seed(seed)
    mat <- matrix(rnorm(n * m * g, 5, 5), m, n * g)
    rownames(mat) <- paste0("gene", seq_len(m))
    colnames(mat) <- paste0("cell", seq_len(n * g))
    group <- factor(rep(paste0("group", seq_len(g)), each = n))
    for (i in seq_len(g)) {
        rows <- (deg * (i - 1) + 1):(deg * i)
        mat[rows, group == paste0("group", i)] <- mat[rows, group == paste0("group", i)] + 15
    }
    mat[mat < 0] <- 0
    list(x = t(mat), group = group, deg = deg)
}

sim <- simulate_groups()
n_genes <- ncol(sim$x)

enc_layers <- function(units = 32) list(layer_input(shape = n_genes), layer_dense(units, "relu"))
dec_layers <- function(units = 32, genes = n_genes) {
    list(layer_dense(units, "relu"), layer_dense(genes, "sigmoid"))
}

quick_fit <- function(..., epochs = 5, seed = 1) {
    fit_vae(..., encoder_layers = enc_layers(), decoder_layers = dec_layers(),
            epochs = epochs, batch_size = 16, seed = seed, verbose = FALSE)
}

# NB counts (genes x cells, sparse) for three cell types with distinct profiles and
# varying library sizes.
simulate_counts <- function(n_per = 60, genes = 200, types = 3, seed = 1, theta = 2) {
    set.seed(seed)
    base <- matrix(stats::rgamma(genes * types, shape = 0.6, rate = 0.6), genes, types)
    for (k in seq_len(types)) {
        up <- ((k - 1) * 20 + 1):(k * 20)
        base[up, k] <- base[up, k] + 6
    }
    label <- factor(rep(paste0("type", seq_len(types)), each = n_per))
    lib <- round(stats::rlnorm(length(label), log(2000), 0.4))
    props <- sweep(base, 2, colSums(base), "/")
    mu <- props[, as.integer(label)] * rep(lib, each = genes)
    counts <- matrix(stats::rnbinom(length(mu), size = theta, mu = mu), genes, length(label),
                     dimnames = list(paste0("g", seq_len(genes)), paste0("c", seq_along(label))))
    list(counts = Matrix::Matrix(counts, sparse = TRUE), label = label, lib = lib)
}
