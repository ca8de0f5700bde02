# assess_aug() with the generator's training cells known: memorisation, co-variation
# within classes, and augmentation utility, on cases with known answers.

# A simulator of NB counts: `types` classes sharing a base profile, each with 10
# marker genes `fold` times higher, and three programs of 15 genes whose activity
# varies from cell to cell (co-variation within a class).
simulate_programs <- function(genes = 200, types = 6, fold = 3, seed = 1) {
    set.seed(seed)
    base <- matrix(stats::rgamma(genes, shape = 0.8, rate = 0.4), genes, types)
    for (k in seq_len(types)) {
        up <- sample.int(genes, 10)
        base[up, k] <- base[up, k] * fold
    }
    list(base = base, programs = split(sample.int(genes, 45), rep(1:3, each = 15)), types = types)
}
draw_cells <- function(s, n_per, seed) {
    set.seed(seed)
    label <- factor(rep(paste0("type", seq_len(s$types)), each = n_per))
    n <- length(label)
    mu <- s$base[, as.integer(label)]
    for (p in s$programs) mu[p, ] <- mu[p, ] * rep(exp(stats::rnorm(n, 0, 0.7)), each = length(p))
    lib <- round(stats::rlnorm(n, log(3000), 0.3))
    mu <- sweep(mu, 2, colSums(mu), "/") * rep(lib, each = nrow(mu))
    x <- matrix(stats::rnbinom(length(mu), size = 5, mu = mu), nrow(mu),
                dimnames = list(paste0("g", seq_len(nrow(mu))), paste0("c", seed, "_", seq_len(n))))
    list(x = x, y = label)
}

sp <- simulate_programs()
train <- draw_cells(sp, 60, 1)
held <- draw_cells(sp, 60, 2)
fresh <- draw_cells(sp, 60, 3)

value <- function(a, name) a$value[a$metric == name]
ref <- function(a, name) a$reference[a$metric == name]
says <- function(a, name) a$interpretation[a$metric == name]
against_held <- function(gen, labels_gen, tr = train$x, labels_tr = train$y, seed = 1) {
    assess_aug(held$x, gen, labels_real = held$y, labels_gen = labels_gen, train = tr,
               labels_train = labels_tr, seed = seed)
}

test_that("copies of the training cells are flagged as memorised; new cells are not", {
    copy <- against_held(train$x, train$y)
    expect_lt(value(copy, "memorisation"), 0.05)
    expect_match(says(copy, "memorisation"), "copies")
    expect_gt(value(copy, "closer_to_train"), 0.95)
    expect_lt(abs(ref(copy, "closer_to_train") - 0.5), 0.1)
    expect_match(says(copy, "closer_to_train"), "copies")
    new <- against_held(fresh$x, fresh$y)
    expect_gt(value(new, "memorisation"), 0.85)
    expect_lt(value(new, "memorisation"), 1.2)
    expect_lt(abs(value(new, "closer_to_train") - ref(new, "closer_to_train")), 0.1)
    expect_match(says(new, "memorisation"), "no sign")
    # the metrics before the new ones are those of an assessment without training cells
    plain <- assess_aug(held$x, fresh$x, labels_real = held$y, labels_gen = fresh$y, seed = 1)
    expect_equal(plain$value, new$value[seq_len(nrow(plain))])
    expect_false(any(c("memorisation", "closer_to_train", "augmentation_accuracy") %in% plain$metric))
})

test_that("within-class gene-gene correlation sees co-variation that class means hide", {
    new <- against_held(fresh$x, fresh$y)
    expect_gt(ref(new, "within_class_gene_cor"), 0.2)
    expect_gt(value(new, "within_class_gene_cor"), 0.7 * ref(new, "within_class_gene_cor"))
    # each gene permuted within its class: class means (and markers) stay, programs go
    perm <- fresh$x
    for (cl in levels(fresh$y)) {
        i <- fresh$y == cl
        perm[, i] <- t(apply(perm[, i], 1, sample))
    }
    lost <- against_held(perm, fresh$y)
    expect_lt(value(lost, "within_class_gene_cor"), 0.2 * ref(lost, "within_class_gene_cor"))
    expect_match(says(lost, "within_class_gene_cor"), "lost")
    expect_gt(value(lost, "label_accuracy"), 0.9 * ref(lost, "label_accuracy"))
})

test_that("augmentation utility: real-like cells help a few-cell classifier, shuffled labels hurt", {
    few <- unlist(lapply(split(seq_along(train$y), train$y), `[`, 1:3))
    good <- against_held(fresh$x, fresh$y, train$x[, few], train$y[few])
    expect_gt(value(good, "augmentation_accuracy") - ref(good, "augmentation_accuracy"), 0.1)
    expect_match(says(good, "augmentation_accuracy"), "help")
    expect_true(is.finite(value(good, "augmentation_rare_recall")))
    set.seed(4)
    bad <- against_held(fresh$x, sample(fresh$y), train$x[, few], train$y[few])
    expect_lt(value(bad, "augmentation_accuracy") - ref(bad, "augmentation_accuracy"), -0.1)
    expect_match(says(bad, "augmentation_accuracy"), "hurt")
    u <- attr(good, "details")$utility
    expect_named(u$with$recall, sort(levels(train$y)))
})

test_that("a gen_exprs() result brings its training cells; they are not held-out cells", {
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = Matrix::Matrix(train$x, sparse = TRUE)))
    sce$type <- train$y
    fit <- fit_vae(sce, labels = "type", likelihood = "nb", epochs = 3, batch_size = 32,
                   encoder_layers = list(layer_input(200), layer_dense(16, "relu")),
                   decoder_layers = list(layer_dense(16, "relu"), layer_dense(200, "linear")),
                   latent_dim = 4, seed = 1, verbose = FALSE)
    set.seed(1)
    gen <- gen_exprs(fit, labels = table(held$y))
    a <- assess_aug(held$x, gen, labels_real = held$y, seed = 1)
    expect_true(all(c("memorisation", "closer_to_train", "within_class_gene_cor",
                      "augmentation_accuracy", "augmentation_rare_recall") %in% a$metric))
    expect_equal(attr(a, "details")$n_train, ncol(train$x))
    expect_output(print(a), "360 training")
    # the training cells as "real": nothing is held out; memorisation is measured
    # against the training cells' own nearest neighbours, the other held-out rows are off
    own <- assess_aug(gen, seed = 1)
    expect_true("memorisation" %in% own$metric)
    expect_false(any(c("closer_to_train", "augmentation_accuracy") %in% own$metric))
    expect_identical(assess_aug(sce, gen, labels_real = "type", seed = 1)$metric, own$metric)
    expect_error(assess_aug(unname(held$x), unname(fresh$x), train = unname(train$x[1:50, ])), "train",
                 class = "exprsgen_error_argument")
    # genes are matched by name
    sub <- assess_aug(held$x, fresh$x, train = train$x[1:50, ], seed = 1)
    expect_equal(nrow(attr(sub, "details")$genes), 50)
    expect_error(assess_aug(held$x, fresh$x, train = train$x, labels_train = 1:3), "labels_train",
                 class = "exprsgen_error_argument")
    # a single training cell: nothing to measure against, no error
    one <- assess_aug(held$x, fresh$x, labels_real = held$y, labels_gen = fresh$y, train = train$x[, 1, drop = FALSE],
                      labels_train = train$y[1], seed = 1)
    expect_false(any(c("memorisation", "augmentation_accuracy") %in% one$metric))
    # utility needs two training classes the held-out cells share, and training cells that vary
    no_util <- function(tr, y) {
        a <- assess_aug(held$x, fresh$x, labels_real = held$y, labels_gen = fresh$y, train = tr, labels_train = y,
                        seed = 1)
        expect_true("memorisation" %in% a$metric)
        expect_false("augmentation_accuracy" %in% a$metric)
    }
    no_util(train$x[, 1:10], rep("type1", 10))
    no_util(train$x[, 1:10], rep(c("other", "unknown"), 5))
    flat <- train$x[, 1:10]
    flat[] <- 3
    no_util(flat, train$y[1:10])
})
