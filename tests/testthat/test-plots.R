test_that("plot_vae draws every layer with its shapes and role", {
    fit <- quick_fit(x_train = sim$x, y_train = sim$group, epochs = 1)
    p <- plot_vae(fit$model)
    expect_s3_class(p, "ggplot")
    layers <- p$data
    expect_identical(layers$name, c("input", "condition", "concatenate", "encoder_1", "z_mean",
                                    "z_log_var", "latent", "concatenate_1", "decoder_1",
                                    "decoder_2"))
    expect_identical(as.character(layers$role[layers$name == "condition"]), "condition")
    expect_identical(layers$output_shape[layers$name == "concatenate"], "(None, 303)")
    expect_identical(layers$output_shape[layers$name == "decoder_2"], "(None, 300)")
    expect_identical(plot_vae(fit)$data, layers)
    file <- tempfile(fileext = ".png")
    ggplot2::ggsave(file, p, width = 5, height = 7)
    expect_gt(file.size(file), 1000)
    expect_error(plot_vae(list()), class = "exprsgen_error")
    vae <- quick_fit(x_train = sim$x, epochs = 1)
    expect_false("condition" %in% plot_vae(vae)$data$name)
})

test_that("plot_aug shows real and generated cells, without log-normalising again", {
    fit <- quick_fit(x_train = sim$x, y_train = sim$group, epochs = 3)
    set.seed(1)
    gen <- gen_exprs(fit, 60)
    p <- plot_aug(gen, "PCA")
    expect_s3_class(p, "ggplot")
    expect_identical(nrow(p$data), nrow(sim$x) + 60L)
    expect_identical(sort(unique(as.character(p$data$colour_by))), c("generated", "real"))
    expect_identical(sort(unique(as.character(p$data$shape_by))), levels(sim$group))
    # the PCA is of the values as given: same as prcomp on the top-500 (all) genes
    values <- rbind(gen$x_train, gen$x_gen)
    pc <- stats::prcomp(values)$x[, 1]
    expect_gt(abs(stats::cor(pc, p$data$X)), 0.999)
    for (fun in c("MDS", "TSNE", "UMAP")) {
        expect_s3_class(plot_aug(gen, fun), "ggplot")
    }
    expect_error(plot_aug(gen, "LDA"), "plot_fun", class = "exprsgen_error")
})
