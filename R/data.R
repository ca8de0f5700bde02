#' Human preimplantation embryos (Yan et al. 2013)
#'
#' Expression (RPKM) of 20214 genes in 90 cells of human preimplantation
#' embryos, the data set of the VAExprs vignette, with its annotation.
#'
#' @format `yan`: a numeric matrix with genes in rows and cells in columns
#'   (RPKM, not counts). `ann`: a data.frame with one row per cell and the
#'   column `cell_type1` (developmental stage: zygote, 2cell, 4cell, 8cell,
#'   16cell, blast).
#' @source Yan L. et al. (2013) Single-cell RNA-Seq profiling of human
#'   preimplantation embryos and embryonic stem cells. Nat Struct Mol Biol
#'   20:1131. GEO GSE36552; as distributed with the SC3 package
#'   (hemberg-lab/SC3 `data/yan.rda`).
#' @examples
#' data(yan, ann, package = "exprsgen")
#' dim(yan)
#' table(ann$cell_type1)
#' @name yan
#' @aliases ann
#' @docType data
#' @keywords datasets
NULL
