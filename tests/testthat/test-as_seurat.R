# Seurat objects: fit_vae(), encode() and assess_aug() read them, as_seurat() writes them.

skip_if_not_installed("SeuratObject")  # installed by tools/setup.sh

local({
    d <- simulate_counts(n_per = 30, genes = 120)
    meta <- data.frame(cluster = d$label, depth = log(Matrix::colSums(d$counts)),
                       row.names = colnames(d$counts))
    so <- suppressWarnings(SeuratObject::CreateSeuratObject(d$counts, meta.data = meta))
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = d$counts),
                                                      colData = S4Vectors::DataFrame(meta))
    args <- list(labels = "cluster", covariates = "depth", likelihood = "nb", epochs = 2,
                 batch_size = 16, verbose = FALSE, seed = 1)
    f_seurat <- do.call(fit_vae, c(list(so), args))
    so_data <- SeuratObject::SetAssayData(so, slot = "data", new.data = log1p(d$counts))
    f_data <- fit_vae(so_data, assay.type = "data", labels = "cluster", epochs = 2, batch_size = 16,
                      verbose = FALSE, seed = 1)

    test_that("fit_vae() reads a Seurat object's counts and meta.data, as from the SCE", {
        f_sce <- do.call(fit_vae, c(list(sce), args))
        expect_identical(f_seurat$model$weights, f_sce$model$weights)
        expect_identical(f_seurat$model$spec$classes, levels(d$label))
        expect_equal(encode(f_seurat, so), encode(f_seurat))
        # the "data" layer (log-normalised by Seurat) for a scaled likelihood, used as is
        expect_equal(max(f_data$preprocessing$x_train), max(log1p(d$counts)))
        expect_error(fit_vae(so, assay.type = "logcounts", labels = "cluster", epochs = 1, batch_size = 16,
                             verbose = FALSE), "assay.type", class = "exprsgen_error")
        expect_error(fit_vae(so, labels = "nope", likelihood = "nb", epochs = 1, batch_size = 16,
                             verbose = FALSE), "nope", class = "exprsgen_error")
    })

    test_that("as_seurat() holds the generated (and real) cells with as_sce()'s metadata", {
        set.seed(2)
        gen <- gen_exprs(f_seurat, 40)
        out <- as_seurat(gen, real = TRUE)
        expect_s4_class(out, "Seurat")
        expect_identical(ncol(out), 40L + ncol(d$counts))
        meta_sce <- as.data.frame(SummarizedExperiment::colData(as_sce(gen, real = TRUE)))
        expect_identical(names(meta_sce), intersect(names(out[[]]), names(meta_sce)))
        expect_identical(as.character(out$origin), as.character(meta_sce$origin))
        expect_equal(unname(out$depth), meta_sce$depth)
        counts <- SeuratObject::GetAssayData(out, slot = "counts")
        expect_equal(unname(as.matrix(counts[, ncol(d$counts) + 1:40])), unname(t(as.matrix(gen$x_gen))))
        # assess_aug() reads Seurat objects
        a <- assess_aug(out[, out$origin == "real"], out[, out$origin == "generated"], seed = 1)
        expect_true("classifier_auc" %in% a$metric)
        # a bce model: log-scale values in the data layer only
        g2 <- gen_exprs(f_data, 10)
        s2 <- as_seurat(g2)
        expect_equal(unname(as.matrix(SeuratObject::GetAssayData(s2, slot = "data"))),
                     unname(t(g2$x_gen)), tolerance = 1e-6)
        expect_error(as_seurat(gen, assay = ""), "assay", class = "exprsgen_error")
    })
})
