# Rebuilds data/yan.rda and data/ann.rda from ../shared/data/yan (see its README):
#   Rscript tools/make-data.R [path/to/shared/data/yan]
args <- commandArgs(trailingOnly = TRUE)
src <- if (length(args)) args[1] else file.path("..", "shared", "data", "yan")
m <- Matrix::readMM(gzfile(file.path(src, "counts.mtx.gz")))
genes <- readLines(file.path(src, "genes.txt"))
cells <- readLines(file.path(src, "cells.txt"))
yan <- as.matrix(m)
dimnames(yan) <- list(genes, cells)
lab <- utils::read.delim(file.path(src, "labels.tsv"), stringsAsFactors = FALSE)
stopifnot(identical(lab[[1]], cells))
ann <- data.frame(cell_type1 = lab[[2]], row.names = cells)
save(yan, file = file.path("data", "yan.rda"), compress = "xz")
save(ann, file = file.path("data", "ann.rda"), compress = "xz")
