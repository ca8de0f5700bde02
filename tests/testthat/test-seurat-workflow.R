test_that("generated cells go through Seurat's workflow with the real ones", {
    skip_if_not_installed("Seurat")   # installed by tools/setup.sh (r-cran-seurat)
    suppressPackageStartupMessages(library(Seurat))
    set.seed(5)
    genes <- 200
    profile <- matrix(rgamma(genes * 2, shape = 0.4), genes, 2)
    profile[1:40, 1] <- profile[1:40, 1] + 5
    profile[41:80, 2] <- profile[41:80, 2] + 5
    profile <- sweep(profile, 2, colSums(profile), "/")
    type <- rep(c("T_cell", "B_cell"), each = 50)
    mu <- profile[, match(type, unique(type))] * 2000
    # gene names with underscores, which Seurat does not allow
    counts <- Matrix::Matrix(rnbinom(length(mu), size = 2, mu = mu), genes, 100, sparse = TRUE,
                             dimnames = list(paste0("GENE_", seq_len(genes)), paste0("cell", 1:100)))
    fit <- fit_vae(x_train = Matrix::t(counts), y_train = type, likelihood = "nb", epochs = 60, batch_size = 32,
                   seed = 5, verbose = FALSE)
    gen <- gen_exprs(fit, labels = c(T_cell = 50, B_cell = 50))
    expect_message(both <- as_seurat(gen, real = TRUE), "underscores", class = "exprsgen_message_seurat_names")
    # Seurat's own names, and the fit's kept
    expect_identical(rownames(both), gsub("_", "-", rownames(counts)))
    expect_identical(both[["RNA"]][["gene_name"]][, 1], rownames(counts))
    both <- NormalizeData(both, verbose = FALSE)
    both <- FindVariableFeatures(both, nfeatures = 100, verbose = FALSE)
    both <- ScaleData(both, verbose = FALSE)
    both <- RunPCA(both, npcs = 8, verbose = FALSE)
    both <- FindNeighbors(both, dims = 1:8, verbose = FALSE)
    both <- FindClusters(both, resolution = 0.2, verbose = FALSE)
    both <- suppressWarnings(RunUMAP(both, dims = 1:8, verbose = FALSE))
    expect_identical(dim(Embeddings(both, "umap")), c(200L, 2L))
    expect_s3_class(DimPlot(both, group.by = "label", shape.by = "origin"), "ggplot")
    # generated cells cluster with the real cells of their type
    tab <- table(both$seurat_clusters[both$origin == "generated"], both$label[both$origin == "generated"])
    real <- table(both$seurat_clusters[both$origin == "real"], both$label[both$origin == "real"])
    majority <- function(t) colnames(t)[apply(t, 1, which.max)]
    shared <- intersect(rownames(tab)[rowSums(tab) > 0], rownames(real)[rowSums(real) > 0])
    expect_gt(length(shared), 0L)
    expect_identical(majority(tab[shared, , drop = FALSE]), majority(real[shared, , drop = FALSE]))
    # and back into a fit: Seurat's object is accepted as it is
    refit <- fit_vae(both, labels = "label", likelihood = "nb", epochs = 2, batch_size = 32, verbose = FALSE)
    expect_identical(refit$preprocessing$genes, rownames(both))
})
