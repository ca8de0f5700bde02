# Counterfactual cells (issue 14): NB counts of two cell types in two batches, batch b2
# multiplying 10 genes by 4; the cells of type A in batch b2 are held out. A CVAE on
# labels c(type, batch) generates type A in batch b2 (never seen), and they are compared
# with the held-out real ones: assess_aug()'s classifier AUC, the batch-shift genes, and
# the per-gene means of the type genes. References: generated A in b1 against the held
# out A-b2 (the shift missing), and generated cells of seen combinations against real
# ones of the same combination (what the model reaches where it has data).
#
#   Rscript bench/counterfactual.R                               # every decoder route, seeds 42 and 7
#   Rscript bench/counterfactual.R --routes additive --seeds 42 --epochs 600
suppressMessages(library(exprsgen))
args <- commandArgs(trailingOnly = TRUE)
opt <- function(name, default) {
    i <- which(args == paste0("--", name))
    if (length(i) == 0L) default else args[i + 1L]
}
routes <- strsplit(opt("routes", "first,all,additive"), ",")[[1]]
seeds <- as.integer(strsplit(opt("seeds", "42,7"), ",")[[1]])
epochs <- as.integer(opt("epochs", "150"))

simulate <- function(seed, n_per = 150, g = 60) {
    set.seed(seed)
    type <- rep(c("A", "B"), each = 2 * n_per)
    batch <- rep(rep(c("b1", "b2"), each = n_per), 2)
    n <- length(type)
    logmu <- matrix(log(exp(rnorm(g, 1.5, 0.7))), n, g, byrow = TRUE)
    logmu[type == "A", 1:15] <- logmu[type == "A", 1:15] + 1.5
    logmu[type == "B", 16:30] <- logmu[type == "B", 16:30] + 1.5
    logmu[batch == "b2", 41:50] <- logmu[batch == "b2", 41:50] + log(4)
    lib <- exp(rnorm(n, 0, 0.2))
    x <- matrix(rnbinom(n * g, mu = exp(logmu) * lib, size = 5), n, g,
                dimnames = list(paste0("c", 1:n), paste0("g", 1:g)))
    list(x = x, type = type, batch = batch)
}
norm <- function(m) {
    m <- as.matrix(m)
    log1p(m / rowSums(m) * 1000)
}
auc <- function(real, gen) {
    a <- assess_aug(t(real), t(as.matrix(gen)), seed = 1)
    a$value[a$metric == "classifier_auc"]
}
rows <- list()
for (seed in seeds) {
    d <- simulate(seed)
    held <- d$type == "A" & d$batch == "b2"
    for (route in routes) {
        t0 <- proc.time()[["elapsed"]]
        fit <- fit_vae(x_train = d$x[!held, ], y_train = data.frame(type = d$type, batch = d$batch)[!held, ],
                       likelihood = "nb", epochs = epochs, batch_size = 32, verbose = FALSE, seed = 3,
                       decoder_conditions = route)
        set.seed(5)
        gen <- function(type, batch) gen_exprs(fit, conditions = data.frame(type = type, batch = batch, n = sum(held)))$x_gen
        cf <- gen("A", "b2")
        a_b1 <- gen("A", "b1")
        b_b2 <- gen("B", "b2")
        shift <- function(m) mean(norm(m)[, 41:50]) - mean(norm(m)[, 31:40])
        rows[[length(rows) + 1L]] <- data.frame(
            seed = seed, decoder_conditions = route,
            auc_counterfactual = auc(d$x[held, ], cf),
            auc_A_b1_vs_heldout = auc(d$x[held, ], a_b1),
            auc_seen_B_b2 = auc(d$x[d$type == "B" & d$batch == "b2", ], b_b2),
            shift_real = shift(d$x[held, ]), shift_counterfactual = shift(cf),
            type_genes_max_abs_diff = max(abs(colMeans(norm(cf)[, 1:30]) - colMeans(norm(d$x[held, ])[, 1:30]))),
            seconds = round(proc.time()[["elapsed"]] - t0, 1))
    }
}
out <- do.call(rbind, rows)
print(format(out, digits = 3), row.names = FALSE)
