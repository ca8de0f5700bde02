# Settings of a count model that the user did not give, chosen from the number of
# training cells (issue 22; the figures behind each rule are in bench/realism.md, and
# the table of ?fit_vae, section "Settings chosen from the data", shows them: keep the
# two in step).
#
# - Fewer than 500 cells ("few cells", where augmentation is for): latent dimension 2,
#   one hidden layer of 256 units on each side, and gen_exprs() draws from a Gaussian
#   mixture fitted to each class's codes (VAExprs's method). On the few-cell
#   augmentation benchmark this gave the largest classifier gains (116 mouse-bladder
#   cells of 16 types: +0.221 against +0.191 for latent 10 with posterior draws;
#   12 CEL-seq2 cells: +0.354 against +0.272), and a 100-cell CEL-seq2 model that
#   carried its labels (0.96 label accuracy against 0.44).
# - 500 cells or more: latent dimension 10, 128 hidden units, draws from the posteriors
#   of training cells of the class: harder to tell from held-out real cells there.
# - batch_size 128 and 200 epochs (fewer optimizer steps did worse, more steps, by
#   smaller batches or more epochs, did worse on few cells); above 40,000 cells,
#   scVI's rule (400 * 20,000 / cells epochs), so that a large data set trains for a
#   bounded number of optimizer steps (about 62,500).
.auto_settings <- function(n_cells) {
    n <- as.numeric(n_cells)
    few <- n < 500
    epochs <- as.integer(max(2, min(200, round(400 * 20000 / n))))
    list(epochs = epochs, batch_size = 128L,
         latent_dim = if (few) 2L else 10L, units = if (few) 256L else 128L,
         generation = list(latent = if (few) "gmm" else "posterior"),
         regime = if (few) "few cells" else if (n <= 40000) "medium" else "many cells")
}

# The rule as a table, for ?fit_vae and the tests: what a data set of each size gets.
.auto_settings_table <- function(cells = c(100, 499, 500, 2000, 20000, 40000, 1e5, 1e6)) {
    rows <- lapply(cells, function(n) {
        s <- .auto_settings(n)
        steps <- s$epochs * ceiling(n / s$batch_size)
        data.frame(cells = n, batch_size = s$batch_size, epochs = s$epochs, steps = steps,
                   latent_dim = s$latent_dim, units = s$units, draws = s$generation$latent, regime = s$regime)
    })
    do.call(rbind, rows)
}
