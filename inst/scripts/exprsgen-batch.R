#!/usr/bin/env Rscript
# exprsgen in a batch job: fit a model to a counts file, save it, generate cells per
# class, and write them as a SingleCellExperiment (.rds) and as MatrixMarket files.
#
#   Rscript exprsgen-batch.R --input counts.mtx --genes genes.tsv --cells cells.tsv \
#       --labels labels.tsv --out results/ [options]
#   Rscript exprsgen-batch.R --input sce.rds --labels cell_type --out results/
#   Rscript exprsgen-batch.R --input h5se_dir/ --labels cell_type --out results/
#   Rscript exprsgen-batch.R --input tenx.h5 --labels labels.tsv --out results/
#
# Input (--input):
#   *.mtx[.gz]   a MatrixMarket matrix, genes in rows and cells in columns (as 10x
#                writes it), with --genes and --cells: text files with one name per
#                line (the first column of a TSV, as features.tsv)
#   *.rds        a SingleCellExperiment (or SummarizedExperiment, or Seurat object)
#   a directory  an HDF5-backed SummarizedExperiment (HDF5Array::saveHDF5SummarizedExperiment)
#   *.h5         a 10x HDF5 file (HDF5Array::TENxMatrix; --group, default "matrix")
# Labels (--labels, optional): the name of a colData column (.rds, directory), or a
#   text file with one label per cell (the first column of a TSV).
# Options: --assay counts --likelihood nb --epochs --batch-size --latent-dim (default:
#   exprsgen's; a count likelihood chooses them from the number of cells, see ?fit_vae)
#   --per-class 100 (cells to generate per class; without labels --n 100 cells) --seed 1
#   --threads 1 --validation-split 0 --overwrite (replace the outputs of an earlier run
#   in --out; without it the job stops before training if there are any)
# Long jobs: --checkpoint FILE writes the fit so far every --checkpoint-every epochs
#   (default 1) and when the job is stopped; --resume FILE continues a checkpoint (its
#   data and settings: give no input or model options, only --epochs, the new total,
#   --threads, --checkpoint and the outputs' options). See ?callback_model_checkpoint.
# Output in --out: model.rds (the fit: readRDS() then gen_exprs()), generated.rds (a
# SingleCellExperiment), generated.mtx with generated_genes.tsv, generated_cells.tsv and
# generated_labels.tsv. Each file is written under a temporary name in --out and then
# renamed, so that a killed job or a full disk leaves no truncated file. Progress goes
# to standard output, one time-stamped line per step; bad input (every argument, and
# --out, checked before training) ends the job with a one-line message on standard
# error and exit status 1. An interrupt (Ctrl-C, SIGINT) or SIGTERM (a scheduler's
# scancel, docker stop) during training saves the model trained so far as model.rds
# (and the checkpoint, to --resume from) and ends the job with exit status 130 (SIGINT)
# or 143 (SIGTERM); at another moment it ends the job with that status at once.

args <- commandArgs(trailingOnly = TRUE)
if (any(args %in% c("--help", "-h"))) {
    this <- sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE))
    header <- readLines(this)
    header <- header[seq_len(which(!startsWith(header, "#"))[1] - 1L)][-1]
    cat(sub("^# ?", "", header), sep = "\n")
    quit(save = "no", status = 0)
}
# the job is the package's (exprsgen:::.batch_job, R/batch.R); this catches only a
# package that cannot be loaded
status <- tryCatch({
    suppressPackageStartupMessages(library(exprsgen))
    exprsgen:::.batch_job(args)
}, error = function(e) {
    cat("exprsgen-batch: error: ", trimws(gsub("\\s+", " ", conditionMessage(e))), "\n", sep = "", file = stderr())
    1L
})
quit(save = "no", status = status)
