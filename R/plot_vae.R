#' Draw the architecture of a fitted VAE
#'
#' A diagram of the layers of the model: name, type, and input and output
#' shapes, coloured by part (encoder, mean, log-variance, latent, decoder,
#' condition) as in VAExprs. Drawn with ggplot2, so it prints, and
#' [ggplot2::ggsave()] or [png()] write it to a file.
#'
#' @param x The result of [fit_vae()] or its `$model`.
#' @param node_color Named list of colours, as in VAExprs: `encoder_col`,
#'   `mean_vector_col`, `stddev_vector_col` (the log-variance layer),
#'   `latent_vector_col`, `decoder_col` and `condition_col`.
#'
#' @return A ggplot object. The layer table it draws is its `$data`.
#' @seealso [fit_vae()]
#' @examples
#' set.seed(1)
#' x <- matrix(rexp(60 * 50), 60, 50)
#' fit <- fit_vae(x_train = x,
#'                encoder_layers = list(layer_input(shape = 50),
#'                                      layer_dense(16, "relu")),
#'                decoder_layers = list(layer_dense(16, "relu"),
#'                                      layer_dense(50, "sigmoid")),
#'                epochs = 2, batch_size = 16, verbose = FALSE)
#' plot_vae(fit$model)
#' @export
plot_vae <- function(x, node_color = list(encoder_col = "tomato",
                                          mean_vector_col = "orange",
                                          stddev_vector_col = "lavender",
                                          latent_vector_col = "lightblue",
                                          decoder_col = "palegreen",
                                          condition_col = "gray")) {
    if (inherits(x, "exprsgen_fit")) {
        .check_fit(x, "x", data = FALSE)
        x <- x$model
    }
    if (!inherits(x, "exprsgen_model")) {
        .abort("{.arg x} must be the result of {.fn fit_vae} or its {.code $model}.")
    }
    .check_model(x, "x")
    defaults <- eval(formals(sys.function())$node_color)
    if (!is.list(node_color) || is.null(names(node_color)) ||
        !all(names(node_color) %in% names(defaults))) {
        .abort("{.arg node_color} must be a named list with names among {.val {names(defaults)}}.")
    }
    colours <- utils::modifyList(defaults, node_color)
    fill <- c(encoder = colours$encoder_col, mean = colours$mean_vector_col,
              log_variance = colours$stddev_vector_col, latent = colours$latent_vector_col,
              decoder = colours$decoder_col, condition = colours$condition_col)

    nodes <- .model_layers(x)
    w <- 1.5
    h <- 0.72
    nodes$label <- paste0(nodes$name, " : ", nodes$type, "\ninput: ", nodes$input_shape,
                          "\noutput: ", nodes$output_shape)
    edges <- .model_edges(nodes, w, h)
    role <- factor(nodes$role, levels = names(fill))
    nodes$role <- role
    ggplot2::ggplot(nodes) +
        ggplot2::geom_path(data = edges, ggplot2::aes(x = .data$x, y = .data$y, group = .data$edge),
                           arrow = grid::arrow(length = grid::unit(0.12, "cm"), type = "closed"),
                           colour = "grey30", linewidth = 0.35) +
        ggplot2::geom_tile(ggplot2::aes(x = .data$x, y = .data$y, fill = .data$role),
                           width = w, height = h, colour = "black", linewidth = 0.3) +
        ggplot2::geom_text(ggplot2::aes(x = .data$x, y = .data$y, label = .data$label),
                           size = 2.6, lineheight = 0.9) +
        ggplot2::scale_fill_manual(values = fill, drop = TRUE, name = NULL,
                                   labels = c(encoder = "encoder", mean = "mean",
                                              log_variance = "log-variance", latent = "latent",
                                              decoder = "decoder", condition = "condition")) +
        ggplot2::scale_y_reverse() +
        ggplot2::coord_cartesian(clip = "off") +
        ggplot2::theme_void() +
        ggplot2::theme(legend.position = "bottom", plot.margin = ggplot2::margin(6, 6, 6, 6))
}

# One row per layer as keras would list it: name, type, shapes, role and position.
.model_layers <- function(model) {
    s <- model$spec
    L <- s$latent_dim
    K <- s$n_classes
    shape <- function(d) paste0("(None, ", d, ")")
    shapes <- function(a, b) paste0("[", shape(a), ", ", shape(b), "]")
    rows <- list()
    # `beside`: drawn in the row of the layer before it
    add <- function(name, type, input, output, role, x = 0, beside = FALSE) {
        rows[[length(rows) + 1L]] <<- data.frame(name = name, type = type, input_shape = input,
                                                 output_shape = output, role = role, x = x,
                                                 beside = beside)
    }
    named <- function(names, i, default) if (is.na(names[i])) default else names[i]
    add("input", "InputLayer", shape(s$n_genes), shape(s$n_genes), "encoder")
    d <- s$n_genes
    if (K) {
        add("condition", "InputLayer", shape(K), shape(K), "condition", x = 1.8, beside = TRUE)
        add("concatenate", "Concatenate", shapes(s$n_genes, K), shape(s$n_genes + K), "encoder")
        d <- s$n_genes + K
    }
    b <- .blocks(s)
    # a hidden layer's normalisation and dropout, as keras lists them after it
    extras <- function(side, i, name, units, role) {
        norm <- s[[paste0(side, "_norm")]][i]
        rate <- s[[paste0(side, "_dropout")]][i]
        if (!is.null(norm) && !is.na(norm) && norm != "none") {
            type <- if (norm == "batch") {
                paste0("BatchNormalization (momentum ", s[[paste0(side, "_norm_momentum")]][i] %||% 0.99, ")")
            } else {
                "LayerNormalization"
            }
            add(paste0(name, "_norm"), type, shape(units), shape(units), role)
        }
        after <- s[[paste0(side, "_activation_after")]][i]
        if (!is.null(after) && !is.na(after) && after != "none") {
            add(paste0(name, "_activation"), paste0("Activation (", after, ")"), shape(units), shape(units), role)
        }
        if (!is.null(rate) && !is.na(rate) && rate > 0) {
            add(paste0(name, "_dropout"), paste0("Dropout (", rate, ")"), shape(units), shape(units), role)
        }
    }
    for (i in seq_along(s$encoder_units)) {
        nm <- named(s$encoder_names, i, paste0("encoder_", i))
        add(nm, paste0("Dense (", s$encoder_activation[i], ")"), shape(d),
            shape(s$encoder_units[i]), "encoder")
        extras("encoder", i, nm, s$encoder_units[i], "encoder")
        d <- s$encoder_units[i]
    }
    add("z_mean", "Dense", shape(d), shape(L), "mean", x = -0.85)
    add("z_log_var", "Dense", shape(d), shape(L), "log_variance", x = 0.85, beside = TRUE)
    add("latent", "Sampling", shapes(L, L), shape(L), "latent")
    # each decoder layer's input: the previous output and the condition columns routed
    # to it (fit_vae()'s decoder_conditions)
    dec_in <- b$n_in[match(paste0("decoder_", seq_along(s$decoder_units)), b$name)]
    prev <- c(L, utils::head(s$decoder_units, -1L))
    if (K && dec_in[1] > L) {
        add("concatenate_1", "Concatenate", shapes(L, dec_in[1] - L), shape(dec_in[1]), "decoder")
    }
    for (i in seq_along(s$decoder_units)) {
        nm <- named(s$decoder_names, i, paste0("decoder_", i))
        cond <- if (i > 1L && dec_in[i] > prev[i]) paste0(" + condition (", dec_in[i] - prev[i], ")") else ""
        add(nm, paste0("Dense (", s$decoder_activation[i], ")", cond), shape(dec_in[i]),
            shape(s$decoder_units[i]), "decoder")
        if (i < length(s$decoder_units)) extras("decoder", i, nm, s$decoder_units[i], "decoder")
    }
    # The likelihood's parameter blocks beside the output layer (as the core lists
    # them): dense heads from the last hidden layer, per-gene parameters.
    extra <- b[b$role %in% c("head", "gene"), , drop = FALSE]
    side <- c(1.8, -1.8, 3.6, -3.6)
    for (i in seq_len(nrow(extra))) {
        if (extra$role[i] == "head") {
            add(extra$name[i], "Dense (head)", shape(extra$n_in[i]), shape(extra$n_out[i]), "decoder",
                x = side[i], beside = TRUE)
        } else {
            add(extra$name[i], "Parameter (per gene)", "-", shape(extra$n_out[i]), "decoder",
                x = side[i], beside = TRUE)
        }
    }
    out <- do.call(rbind, rows)
    # Rows of the diagram: the condition beside the input, z_log_var beside z_mean, the
    # likelihood's blocks beside the output layer.
    out$y <- cumsum(!out$beside)
    out
}

# Arrows between layer boxes (w x h), as paths: from the bottom of one box to the
# top of the next; the condition feeds both concatenations along the right side.
.model_edges <- function(nodes, w, h) {
    idx <- function(n) match(n, nodes$name)
    main <- which(!nodes$beside & nodes$name != "z_mean")
    pairs <- list()
    for (j in seq_along(main)[-1]) {
        from <- main[j - 1]
        to <- main[j]
        if (nodes$name[to] == "latent") {
            pairs <- c(pairs, list(c(from, idx("z_mean")), c(from, idx("z_log_var")),
                                   c(idx("z_mean"), to), c(idx("z_log_var"), to)))
        } else {
            pairs <- c(pairs, list(c(from, to)))
        }
    }
    paths <- lapply(seq_along(pairs), function(k) {
        p <- pairs[[k]]
        data.frame(edge = k, x = nodes$x[p], y = nodes$y[p] + c(h / 2, -h / 2))
    })
    # the likelihood's heads read the output layer's input
    output <- main[length(main)]
    for (head in which(nodes$beside & nodes$type == "Dense (head)")) {
        k <- length(paths) + 1L
        from <- main[length(main) - 1L]
        paths[[k]] <- data.frame(edge = k, x = c(nodes$x[from], nodes$x[head]),
                                 y = c(nodes$y[from] + h / 2, nodes$y[output] - h / 2))
    }
    if ("condition" %in% nodes$name) {
        cnd <- idx("condition")
        for (target in intersect(c("concatenate", "concatenate_1"), nodes$name)) {
            t <- idx(target)
            k <- length(paths) + 1L
            side <- nodes$x[cnd]
            paths[[k]] <- data.frame(edge = k,
                                     x = c(side, side, nodes$x[t] + w / 2),
                                     y = c(nodes$y[cnd] + h / 2, nodes$y[t], nodes$y[t]))
        }
    }
    do.call(rbind, paths)
}
