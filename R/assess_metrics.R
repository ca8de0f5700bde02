# The metrics of assess_aug(), one entry each: its name, the best value, when it
# applies, how it is computed from the context (.assess_context(): value and,
# where one exists, reference), and how a value is read. A new metric is one entry.
# Entries run in table order, which is also the order in which they draw random
# numbers (the forests' seeds, the halves, BiocNeighbors' index): keep it, or the
# same seed gives other figures.

.assess_metric <- function(name, best, compute, interpret = function(value, reference, ctx) NULL,
                           applies = function(ctx) TRUE) {
    list(name = name, best = best, compute = compute, interpret = interpret, applies = applies)
}

# A value computed once per assessment and shared by several metrics.
.cached <- function(ctx, key, f) {
    if (is.null(ctx[[key]])) ctx[[key]] <- f()
    ctx[[key]]
}

# Two random halves of the real cells.
.real_halves <- function(ctx) .cached(ctx, "half", function() .halves(nrow(ctx$pr)))

.nearest <- function(ctx) .cached(ctx, "novelty", function() .novelty(ctx$pr, ctx$pg))

.labelled <- function(ctx) !is.null(ctx$labels_real) && !is.null(ctx$labels_gen)

.label_results <- function(ctx) {
    .cached(ctx, "label_results", function() {
        .label_metrics(ctx$pr, ctx$labels_real, ctx$pg, ctx$labels_gen, ctx$dr, ctx$dg,
                       .real_halves(ctx), ctx$threads)
    })
}

.is_counts <- function(ctx) ctx$transform == "counts"

.gene_cor <- function(real, gen) {
    function(ctx) list(value = .safe_cor(ctx$genes[[real]], ctx$genes[[gen]]))
}

# (distances to the nearest other cell need at least 2 cells of each set)
.has_train <- function(ctx) !is.null(ctx$dt) && nrow(ctx$dt) >= 2L

# The real cells are the generator's training cells (e.g. assess_aug(gen) of a
# gen_exprs() result): memorisation only, against the training cells' own nearest
# neighbours.
.self_train <- function(ctx) isTRUE(ctx$self_train) && min(nrow(ctx$dr), nrow(ctx$dg)) >= 3L

# Utility needs two or more training classes that the held-out cells have too, and
# training cells that vary.
.augmentable <- function(ctx) {
    .labelled(ctx) && .has_train(ctx) && !is.null(ctx$labels_train) &&
        sum(unique(as.character(ctx$labels_train)) %in% as.character(ctx$labels_real)) >= 2L &&
        sum(.row_vars(ctx$lt) > 0) >= 2L
}

.interpret_gain <- function(gain) {
    if (is.na(gain)) "undefined" else if (gain >= 0.01) sprintf("generated cells help (%+.3f)", gain)
    else if (gain > -0.01) sprintf("no change (%+.3f)", gain) else sprintf("generated cells hurt (%+.3f)", gain)
}

.assess_metrics <- list(
    .assess_metric("classifier_auc", 0.5, function(ctx) {
        auc <- .classifier_auc(ctx$pr[ctx$bal_r, , drop = FALSE], ctx$pg[ctx$bal_g, , drop = FALSE],
                               ctx$threads)
        ctx$roc <- auc$roc
        list(value = auc$auc)
    }, function(value, reference, ctx) .interpret_auc(value)),
    .assess_metric("mmd", 0, function(ctx) {
        half <- .real_halves(ctx)
        pr <- ctx$pr
        pg <- ctx$pg
        mm <- min(length(half$a), nrow(pg), 1000L)
        a_idx <- half$a[seq_len(min(length(half$a), mm))]
        b_idx <- half$b[seq_len(min(length(half$b), mm))]
        sigma <- .median_distance(rbind(pr[a_idx, , drop = FALSE], pg[seq_len(mm), , drop = FALSE]))
        list(value = .mmd(pr[a_idx, , drop = FALSE], pg[sample.int(nrow(pg), mm), , drop = FALSE], sigma),
             reference = .mmd(pr[a_idx, , drop = FALSE], pr[b_idx, , drop = FALSE], sigma))
    }, function(value, reference, ctx) {
        if (is.na(reference)) "no real-vs-real reference"
        else if (value <= 2 * reference + 1e-12) "within sampling noise of real vs real"
        else if (value <= 5 * reference) "somewhat different from real" else "distributions differ"
    }),
    .assess_metric("gene_mean_cor", 1, .gene_cor("mean_real", "mean_gen")),
    .assess_metric("gene_var_cor", 1, .gene_cor("var_real", "var_gen")),
    .assess_metric("gene_zero_cor", 1, .gene_cor("zero_real", "zero_gen"), function(value, reference, ctx) {
        if (stats::sd(ctx$genes$zero_gen) == 0 || stats::sd(ctx$genes$zero_real) == 0) "undefined: no variation"
    }),
    .assess_metric("zeros_gap", 0, function(ctx) {
        list(value = mean(ctx$genes$zero_gen) - mean(ctx$genes$zero_real))
    }, function(value, reference, ctx) {
        if (abs(value) <= 0.05) "similar share of zeros"
        else if (value < 0) "fewer zeros than real cells" else "more zeros than real cells"
    }),
    .assess_metric("library_size_ks", 0, function(ctx) list(value = .ks(ctx$lib_r, ctx$lib_g)),
                   applies = .is_counts),
    .assess_metric("detected_genes_ks", 0, function(ctx) {
        d <- ctx$cells$detected
        list(value = .ks(d[ctx$cells$origin == "real"], d[ctx$cells$origin == "generated"]))
    }, applies = .is_counts),
    .assess_metric("gene_gene_cor", 1, function(ctx) {
        half <- .real_halves(ctx)
        top <- seq_len(min(200L, ncol(ctx$dr)))
        list(value = .cor_agreement(ctx$dr[, top, drop = FALSE], ctx$dg[, top, drop = FALSE]),
             reference = .cor_agreement(ctx$dr[half$a, top, drop = FALSE], ctx$dr[half$b, top, drop = FALSE]))
    }, function(value, reference, ctx) {
        if (is.na(reference)) "no real-halves reference" else if (value >= 0.8 * reference) "co-expression kept"
        else if (value >= 0.4 * reference) "co-expression partly kept" else "co-expression lost"
    }),
    .assess_metric("knn_mixing", 1, function(ctx) {
        list(value = .knn_mixing(ctx$pr[ctx$bal_r, , drop = FALSE], ctx$pg[ctx$bal_g, , drop = FALSE], ctx$k))
    }, function(value, reference, ctx) {
        if (value >= 0.7) "well mixed" else if (value >= 0.3) "partly mixed" else "separate from real cells"
    }),
    .assess_metric("novelty", 1, function(ctx) list(value = .nearest(ctx)$ratio), function(value, reference, ctx) {
        if (value < 0.2) "copies of real cells" else if (value <= 2) "new cells at real-like distances"
        else "far from any real cell"
    }),
    .assess_metric("copies", 0, function(ctx) list(value = .nearest(ctx)$copies), function(value, reference, ctx) {
        if (value >= 0.5) "mostly copies of real cells" else if (value >= 0.05) "some copies of real cells"
        else "no copies"
    }),
    .assess_metric("label_accuracy", 1, function(ctx) {
        lab <- .label_results(ctx)
        list(value = lab$accuracy, reference = lab$oob)
    }, function(value, reference, ctx) {
        if (is.na(reference)) "no real-cell reference" else if (value >= 0.8 * reference) "labels recognisable"
        else if (value >= 0.5 * reference) "labels partly recognisable" else "labels not recognisable"
    }, applies = .labelled),
    .assess_metric("marker_overlap", 1, function(ctx) {
        lab <- .label_results(ctx)
        list(value = lab$markers, reference = lab$markers_ref)
    }, applies = .labelled),
    .assess_metric("within_class_gene_cor", 1, function(ctx) {
        top <- seq_len(min(200L, ncol(ctx$dr)))
        half <- .stratified_halves(ctx$labels_real)
        yr <- ctx$labels_real
        list(value = .within_class_agreement(ctx$dr[, top, drop = FALSE], yr, ctx$dg[, top, drop = FALSE],
                                             ctx$labels_gen),
             reference = .within_class_agreement(ctx$dr[half$a, top, drop = FALSE], yr[half$a],
                                                 ctx$dr[half$b, top, drop = FALSE], yr[half$b]))
    }, function(value, reference, ctx) {
        if (is.na(value)) "undefined" else if (is.na(reference) || reference <= 0) "no co-expression within classes to keep"
        else if (value >= 0.8 * reference) "co-expression within classes kept"
        else if (value >= 0.4 * reference) "co-expression within classes partly kept"
        else "co-expression within classes lost"
    }, applies = .labelled),
    .assess_metric("memorisation", 1, function(ctx) list(value = .memorised(ctx)$ratio),
                   function(value, reference, ctx) {
        if (value < 0.5) "copies of training cells"
        else if (value < 0.9) paste("closer to the training cells than", if (.has_train(ctx)) "new real cells are" else "they are to each other")
        else "no sign of copying"
    }, applies = function(ctx) .has_train(ctx) || .self_train(ctx)),
    .assess_metric("closer_to_train", 0.5, function(ctx) {
        m <- .memorised(ctx)
        list(value = m$share_gen, reference = m$share_real)
    }, function(value, reference, ctx) {
        if (value <= reference + 0.1) "as close to training as to held-out cells"
        else if (value < 0.9) "nearer the training cells"
        else if (isTRUE(.memorised(ctx)$ratio >= 0.9)) "nearer the training cells, but no copies (see memorisation)"
        else "copies of training cells"
    }, applies = .has_train),
    .assess_metric("augmentation_accuracy", 1, function(ctx) {
        u <- .augmentation(ctx)
        list(value = u$with$balanced, reference = u$without$balanced)
    }, function(value, reference, ctx) .interpret_gain(value - reference), applies = .augmentable),
    .assess_metric("augmentation_rare_recall", 1, function(ctx) {
        u <- .augmentation(ctx)
        list(value = u$with$rare, reference = u$without$rare)
    }, function(value, reference, ctx) .interpret_gain(value - reference), applies = .augmentable)
)

# Two halves of the cells with each class split evenly.
.stratified_halves <- function(y) {
    a <- unlist(lapply(split(seq_along(y), y), function(i) i[sample.int(length(i), length(i) %/% 2L)]),
                use.names = FALSE)
    list(a = sort(a), b = setdiff(seq_along(y), a))
}

# Gene-gene correlation agreement after removing each class's mean (cells of
# classes with at least 2 cells in both sets): co-variation within cell types.
.within_class_agreement <- function(a, ya, b, yb) {
    ya <- as.character(ya)
    yb <- as.character(yb)
    classes <- intersect(names(which(table(ya) >= 2)), names(which(table(yb) >= 2)))
    if (!length(classes)) return(NA_real_)
    centre <- function(x, y) {
        keep <- y %in% classes
        x <- x[keep, , drop = FALSE]
        y <- y[keep]
        x - rowsum(x, y)[y, , drop = FALSE] / as.vector(table(y)[y])
    }
    .cor_agreement(centre(a, ya), centre(b, yb))
}

# Generated and held-out real cells against the training cells, equal numbers of
# each (in PCA space): the median distance to the nearest training cell (generated /
# held-out: 1 = no closer than new real cells are), and the share of cells whose
# nearest training cell is nearer than their nearest held-out cell (0.5 when
# training and held-out cells are alike; the reference is that share for held-out
# cells against the other held-out cells).
.memorised <- function(ctx) {
    if (!.has_train(ctx)) return(.cached(ctx, "memorised", function() .memorised_self(ctx)))
    .cached(ctx, "memorised", function() {
        n <- min(length(ctx$bal_r), nrow(ctx$dt))
        rows <- function(x, idx) x[idx, , drop = FALSE]
        dr <- rows(ctx$dr, ctx$bal_r[seq_len(n)])
        dg <- rows(ctx$dg, ctx$bal_g[seq_len(n)])
        dt <- rows(ctx$dt, sample.int(nrow(ctx$dt), n))
        # components fitted to all three sets: cells outside a fit have shrunk scores,
        # which would bring the training cells nearer to everything
        # (distinct cells only, as in .joint_pca())
        all <- rbind(dr, dg, dt)
        fit <- all[!duplicated(all), , drop = FALSE]
        centre <- colMeans(fit)
        p <- sweep(all, 2, centre) %*% .rotation(sweep(fit, 2, centre), min(ctx$n_pcs, ncol(fit) - 1L, nrow(fit) - 1L))
        pr <- rows(p, seq_len(n))
        pg <- rows(p, n + seq_len(n))
        pt <- rows(p, 2L * n + seq_len(n))
        nearest <- function(ref, query) BiocNeighbors::queryKNN(ref, query, k = 1L, warn.ties = FALSE)$distance[, 1]
        d_gt <- nearest(pt, pg)
        d_rt <- nearest(pt, pr)
        d_gr <- nearest(pr, pg)
        d_rr <- BiocNeighbors::findKNN(pr, k = 1L, warn.ties = FALSE)$distance[, 1]
        ref <- stats::median(d_rt)
        list(ratio = if (ref > 0) stats::median(d_gt) / ref else NA_real_,
             share_gen = mean(d_gt < d_gr), share_real = mean(d_rt < d_rr))
    })
}

# Memorisation when the real cells are the training cells: the median distance from
# a generated cell to its nearest training cell over the median distance from a
# training cell to its nearest other training cell (leave-one-out: a held-out cell of
# the same population is about as far from its nearest training cell). Equal numbers
# of both, principal components fitted to both.
.memorised_self <- function(ctx) {
    list(ratio = .self_memorisation(ctx$lr[, ctx$bal_r, drop = FALSE], ctx$lg[, ctx$bal_g, drop = FALSE],
                                    ctx$n_genes, ctx$n_pcs))
}

# The ratio itself: `lt` training cells and `lg` generated cells (genes x cells, one log
# scale), on the `n_genes` genes most variable in both sets (chosen on the training
# cells alone, they would spread those apart and make anything else look close to
# them) and `n_pcs` principal components fitted to both; `query`: the training cells
# whose nearest-other-training-cell distances form the reference (default: all).
.self_memorisation <- function(lt, lg, n_genes, n_pcs, query = seq_len(ncol(lt))) {
    v <- .row_vars(cbind(lt, lg))
    hv <- order(v, decreasing = TRUE)[seq_len(min(n_genes, nrow(lt)))]
    hv <- hv[v[hv] > 0]
    if (length(hv) < 2L) return(NA_real_)
    dt <- t(as.matrix(lt[hv, , drop = FALSE]))
    dg <- t(as.matrix(lg[hv, , drop = FALSE]))
    all <- rbind(dt, dg)
    fit <- all[!duplicated(all), , drop = FALSE]
    centre <- colMeans(fit)
    p <- sweep(all, 2, centre) %*% .rotation(sweep(fit, 2, centre), min(n_pcs, ncol(fit) - 1L, nrow(fit) - 1L))
    pt <- p[seq_len(nrow(dt)), , drop = FALSE]
    pg <- p[nrow(dt) + seq_len(nrow(dg)), , drop = FALSE]
    d_gt <- BiocNeighbors::queryKNN(pt, pg, k = 1L, warn.ties = FALSE)$distance[, 1]
    d_tt <- BiocNeighbors::findKNN(pt, k = 1L, warn.ties = FALSE)$distance[query, 1]
    ref <- stats::median(d_tt)
    if (ref > 0) stats::median(d_gt) / ref else NA_real_
}

# Augmentation utility: a random forest (balanced class weights) trained on the
# generator's training cells alone, and on them plus the generated cells of their
# classes, predicts the held-out real cells. Features: principal components of the
# training cells' most variable genes. Returns balanced accuracy and mean recall of
# the (up to) 3 rarest training classes, with and without.
.augmentation <- function(ctx) {
    .cached(ctx, "utility", function() {
        yt <- as.character(ctx$labels_train)
        classes <- unique(yt)
        lt <- ctx$lt
        vt <- .row_vars(lt)
        hv <- order(vt, decreasing = TRUE)[seq_len(min(ctx$n_genes, nrow(lt)))]
        hv <- hv[vt[hv] > 0]
        xt <- t(as.matrix(lt[hv, , drop = FALSE]))
        centre <- colMeans(xt)
        rot <- .rotation(sweep(xt, 2, centre), min(ctx$n_pcs, nrow(xt) - 1L, ncol(xt) - 1L))
        pcs <- function(l) sweep(t(as.matrix(l[hv, , drop = FALSE])), 2, centre) %*% rot
        keep_g <- as.character(ctx$labels_gen) %in% classes
        keep_r <- as.character(ctx$labels_real) %in% classes
        pt <- pcs(lt)
        pg <- pcs(ctx$lg[, keep_g, drop = FALSE])
        pr <- pcs(ctx$lr[, keep_r, drop = FALSE])
        yg <- as.character(ctx$labels_gen)[keep_g]
        yr <- as.character(ctx$labels_real)[keep_r]
        rare <- names(sort(table(yt)))[seq_len(min(3L, length(classes)))]
        rare <- intersect(rare, yr)
        score <- function(x, y) {
            colnames(x) <- paste0("PC", seq_len(ncol(x)))
            y <- factor(y, levels = sort(classes))
            w <- as.vector(1 / table(y))
            w[!is.finite(w)] <- 0
            rf <- ranger::ranger(x = x, y = y, num.trees = 200, class.weights = w / sum(w),
                                 num.threads = ctx$threads, seed = sample.int(.Machine$integer.max, 1L),
                                 verbose = FALSE)
            colnames(pr) <- colnames(x)
            pred <- as.character(stats::predict(rf, pr, num.threads = ctx$threads)$predictions)
            recall <- vapply(split(pred == yr, yr), mean, numeric(1))
            list(balanced = mean(recall), rare = if (length(rare)) mean(recall[rare]) else NA_real_,
                 recall = recall)
        }
        without <- score(pt, yt)
        with <- score(rbind(pt, pg), c(yt, yg))
        list(without = without, with = with, rare = rare)
    })
}

.metric <- function(metric, value, reference, best, interpretation) {
    if (is.null(interpretation)) {
        interpretation <- if (is.na(value)) "undefined" else if (best == 1) {
            # relative to what real cells reach against each other, when known
            r <- if (!is.na(reference) && reference > 0) value / reference else value
            if (r >= 0.9) "good" else if (r >= 0.7) "fair" else "poor"
        } else {
            if (value <= 0.1) "similar" else if (value <= 0.3) "somewhat different" else "different"
        }
    }
    data.frame(metric = metric, value = as.numeric(value), reference = as.numeric(reference),
               best = best, interpretation = interpretation, stringsAsFactors = FALSE)
}

.interpret_auc <- function(auc) {
    d <- abs(auc - 0.5)
    if (d < 0.1) "hard to tell apart" else if (d < 0.3) "partly distinguishable" else "easily told apart"
}

# Cross-validated AUC of a random forest telling real (0) from generated (1) cells.
.classifier_auc <- function(pr, pg, threads, folds = 5L) {
    x <- rbind(pr, pg)
    colnames(x) <- paste0("PC", seq_len(ncol(x)))
    y <- factor(rep(c("real", "generated"), c(nrow(pr), nrow(pg))), levels = c("real", "generated"))
    # Identical cells (e.g. copies of real cells among the generated ones) share a fold:
    # a held-out cell whose exact twin is in the training folds would be judged by the
    # twin's label, which biases the AUC (below 0.5 for a bootstrap of the real cells).
    key <- do.call(paste, c(as.data.frame(signif(x, 6)), sep = "\r"))
    group <- match(key, unique(key))
    fold <- sample(rep_len(seq_len(folds), max(group)))[group]
    # Repeated cells of one class train the forest once: many copies of a few cells
    # would otherwise make their places look "generated" to held-out cells nearby.
    first <- !duplicated(paste(key, y))
    score <- numeric(length(y))
    for (f in seq_len(folds)) {
        test <- fold == f
        train <- !test & first
        if (!any(test)) next
        if (sum(train) < 2L || length(unique(y[train])) < 2L) {
            # (many identical cells: nothing to learn from in this fold)
            score[test] <- 0.5
            next
        }
        rf <- ranger::ranger(x = x[train, , drop = FALSE], y = y[train], num.trees = 100,
                             probability = TRUE, num.threads = threads,
                             min.node.size = .rf_node_size(sum(train)),
                             seed = sample.int(.Machine$integer.max, 1L), verbose = FALSE)
        score[test] <- stats::predict(rf, x[test, , drop = FALSE], num.threads = threads)$predictions[, "generated"]
    }
    truth <- y == "generated"
    list(auc = .auc(score, truth), roc = .roc(score, truth))
}

# Leaves of at least this many cells: a forest that can isolate single cells learns
# duplicated cells by heart (a bootstrap of the real cells would look distinguishable).
.rf_node_size <- function(n) max(10L, as.integer(n %/% 20L))

# Mann-Whitney AUC with ties counted half.
.auc <- function(score, truth) {
    r <- rank(score)
    n1 <- sum(truth)
    n0 <- sum(!truth)
    (sum(r[truth]) - n1 * (n1 + 1) / 2) / (n1 * n0)
}

.roc <- function(score, truth) {
    th <- sort(unique(c(-Inf, score, Inf)), decreasing = TRUE)
    tpr <- vapply(th, function(t) mean(score[truth] >= t), numeric(1))
    fpr <- vapply(th, function(t) mean(score[!truth] >= t), numeric(1))
    data.frame(fpr = fpr, tpr = tpr)
}

.halves <- function(n) {
    idx <- sample.int(n)
    h <- n %/% 2L
    list(a = idx[seq_len(h)], b = idx[h + seq_len(n - h)])
}

.sq_dist <- function(a, b) {
    pmax(0, outer(rowSums(a^2), rowSums(b^2), "+") - 2 * tcrossprod(a, b))
}

.median_distance <- function(x) {
    x <- x[seq_len(min(nrow(x), 1000L)), , drop = FALSE]
    d <- sqrt(.sq_dist(x, x))
    v <- stats::median(d[upper.tri(d)])
    if (!is.finite(v) || v <= 0) 1 else v
}

# Maximum mean discrepancy (biased estimate, square root) with a Gaussian kernel.
.mmd <- function(a, b, sigma) {
    k <- function(x, y) exp(-.sq_dist(x, y) / (2 * sigma^2))
    sqrt(max(0, mean(k(a, a)) + mean(k(b, b)) - 2 * mean(k(a, b))))
}

# Correlation of the upper triangles of two gene-gene correlation matrices.
.cor_agreement <- function(a, b) {
    ca <- suppressWarnings(stats::cor(a))
    cb <- suppressWarnings(stats::cor(b))
    ca[is.na(ca)] <- 0
    cb[is.na(cb)] <- 0
    ut <- upper.tri(ca)
    .safe_cor(ca[ut], cb[ut])
}

.safe_cor <- function(a, b) {
    ok <- is.finite(a) & is.finite(b)
    if (sum(ok) < 3L || stats::sd(a[ok]) == 0 || stats::sd(b[ok]) == 0) return(NA_real_)
    stats::cor(a[ok], b[ok])
}

.ks <- function(a, b) unname(suppressWarnings(stats::ks.test(a, b)$statistic))

.knn_mixing <- function(pr, pg, k) {
    x <- rbind(pr, pg)
    k <- min(k, nrow(x) - 1L)
    nn <- BiocNeighbors::findKNN(x, k = k, get.distance = FALSE, warn.ties = FALSE)$index
    gen_rows <- nrow(pr) + seq_len(nrow(pg))
    real_share <- rowMeans(nn[gen_rows, , drop = FALSE] <= nrow(pr))
    expected <- nrow(pr) / (nrow(x) - 1)
    mean(real_share) / expected
}

.novelty <- function(pr, pg) {
    d_real <- BiocNeighbors::findKNN(pr, k = 1L, warn.ties = FALSE)$distance[, 1]
    d_gen <- BiocNeighbors::queryKNN(pr, pg, k = 1L, warn.ties = FALSE)$distance[, 1]
    ref <- stats::median(d_real)
    if (!is.finite(ref) || ref <= 0) ref <- max(stats::median(d_gen), .Machine$double.eps)
    list(ratio = stats::median(d_gen) / ref, copies = mean(d_gen < ref / 20))
}

.label_metrics <- function(pr, yr, pg, yg, dr, dg, half, threads) {
    colnames(pr) <- colnames(pg) <- paste0("PC", seq_len(ncol(pr)))
    rf <- ranger::ranger(x = pr, y = yr, num.trees = 200, num.threads = threads,
                         seed = sample.int(.Machine$integer.max, 1L), verbose = FALSE)
    pred <- stats::predict(rf, pg, num.threads = threads)$predictions
    accuracy <- mean(as.character(pred) == as.character(yg))
    markers <- .marker_overlap(dr, yr, dg, yg)
    markers_ref <- .marker_overlap(dr[half$a, , drop = FALSE], yr[half$a],
                                   dr[half$b, , drop = FALSE], yr[half$b])
    list(accuracy = accuracy, oob = 1 - rf$prediction.error, markers = markers, markers_ref = markers_ref)
}

# Mean Jaccard overlap of each class's top markers (mean difference to the other
# classes) in two sets of cells; classes with at least 2 cells in both sets.
.marker_overlap <- function(a, ya, b, yb, top = 20L) {
    ya <- as.character(ya)
    yb <- as.character(yb)
    classes <- intersect(names(which(table(ya) >= 2)), names(which(table(yb) >= 2)))
    classes <- classes[vapply(classes, function(cl) any(ya != cl) && any(yb != cl), logical(1))]
    if (length(classes) == 0L) return(NA_real_)
    top <- min(top, ncol(a))
    mk <- function(x, y, cl) {
        d <- colMeans(x[y == cl, , drop = FALSE]) - colMeans(x[y != cl, , drop = FALSE])
        order(d, decreasing = TRUE)[seq_len(top)]
    }
    mean(vapply(classes, function(cl) {
        s1 <- mk(a, ya, cl)
        s2 <- mk(b, yb, cl)
        length(intersect(s1, s2)) / length(union(s1, s2))
    }, numeric(1)))
}
