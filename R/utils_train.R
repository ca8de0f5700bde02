# The epoch loop, driven from R: progress after each epoch, early stopping, and a
# clean stop on interrupt: the core asks R between minibatches (every 0.1 s) and ends
# the pass, so the model after the last complete minibatch is kept.
# `schedule`: list(kl_warmup = epochs of KL warm-up (0: none), plateau = a
# callback_reduce_lr_on_plateau() or NULL); the KL weight and learning rate in effect
# in each epoch are recorded in the history.
# `resume`: the `$checkpoint$state` of a checkpoint or interrupted fit (made by
# `state()` below), with `weights`: training continues after its epoch, as the run that
# saved it would have. `checkpoint`: list(every, save = function(run)) from
# callback_model_checkpoint(): `save` gets the run so far (as returned here, with its
# state) every `every` epochs and after the last (also when early stopping or the
# memorisation guard ends the run).
.train <- function(spec, train, prep, epochs, stopping, verbose,
                   schedule = list(kl_warmup = 0L, plateau = NULL), guard = NULL,
                   resume = NULL, checkpoint = NULL) {
    cs <- .conditions_spec(spec, prep)
    y_train <- .condition_columns(cs, .train_conditions(prep))
    y_val <- .condition_columns(cs, .train_conditions(prep, "val"))
    # The trainer gets its data once, here; an on-disk matrix is read block by block
    # in each pass instead (.pass).
    on_disk <- .is_delayed(prep$x_train)
    data <- if (on_disk) list(x = NULL, labels = NULL, x_val = NULL, labels_val = NULL)
            else list(x = prep$x_train, labels = y_train, x_val = prep$x_val, labels_val = y_val)
    data$transform <- prep$transform
    trainer <- .eg_trainer_new(spec, train, data, weights = resume$weights)
    x_train <- if (on_disk) prep$x_train
    x_val <- if (on_disk) prep$x_val
    has_val <- !is.null(prep$x_val)
    monitored <- function(cb, what) {
        if (is.null(cb)) return(NULL)
        if (cb$monitor == "val_loss" && !has_val) {
            cli::cli_warn(c("{what} monitors {.val val_loss} but there are no validation cells.",
                            i = "Monitoring the training {.val loss} instead."))
            return("loss")
        }
        cb$monitor
    }
    monitor <- monitored(stopping, "Early stopping")
    plateau <- schedule$plateau
    plateau_monitor <- monitored(plateau, "Reducing the learning rate on a plateau")
    rates <- .schedule(train$regularization, train$learning_rate, schedule$kl_warmup, plateau)
    # (rows added as epochs run: `epochs` may be a cap far above what runs)
    rows <- min(epochs, 1024L)
    hist <- matrix(NA_real_, rows, 8,
                   dimnames = list(NULL, c("loss", "val_loss", "reconstruction", "kl",
                                           "val_reconstruction", "val_kl", "kl_weight", "learning_rate")))
    timing <- matrix(NA_real_, rows, 2, dimnames = list(NULL, c("wall", "cpu")))
    cpu_now <- function() sum(proc.time()[c("user.self", "sys.self")])
    best <- list(value = Inf, epoch = NA_integer_)
    wait <- 0L
    done <- 0L
    restore_best <- !is.null(stopping) && stopping$restore_best_weights
    # the best weights so far when they are not in the trainer (a resumed run)
    snapshot <- NULL
    earlier_seconds <- 0
    stop_reason <- "completed"
    partial <- NA_real_  # cells trained on in an interrupted last epoch
    n_train <- ncol(prep$x_train)
    n_val <- if (has_val) ncol(prep$x_val) else 0L
    # the memorisation guard (see .guard_plan()): the weights of the last check passed
    guard_log <- NULL
    guard_kept <- NULL
    if (!is.null(resume)) {
        .eg_trainer_restore(trainer, resume$trainer)
        done <- resume$epoch
        rows <- max(rows, done)
        hist <- rbind(resume$hist, matrix(NA_real_, rows - done, ncol(hist)))[seq_len(rows), , drop = FALSE]
        timing <- rbind(resume$timing, matrix(NA_real_, rows - done, ncol(timing)))[seq_len(rows), , drop = FALSE]
        best <- resume$best
        wait <- resume$wait
        rates$restore(resume$rates)
        .eg_trainer_rates(trainer, resume$rates$current[["kl_weight"]], resume$rates$current[["learning_rate"]])
        guard_log <- resume$guard_log
        guard_kept <- resume$guard_kept
        snapshot <- resume$snapshot
        earlier_seconds <- resume$seconds
    }
    progress <- .progress(epochs, has_val, verbose)
    start <- proc.time()[["elapsed"]]
    # what training after this point needs (see `resume`)
    state <- function() {
        list(trainer = .eg_trainer_state(trainer), epoch = done,
             hist = hist[seq_len(done), , drop = FALSE], timing = timing[seq_len(done), , drop = FALSE],
             best = best, wait = wait, rates = rates$state(), guard_log = guard_log, guard_kept = guard_kept,
             snapshot = if (restore_best && !is.na(best$epoch)) snapshot %||% .eg_trainer_weights(trainer, snapshot = TRUE),
             seconds = earlier_seconds + proc.time()[["elapsed"]] - start)
    }
    # the run after `done` epochs, as .train() returns it
    run <- function(weights, stop_reason, state = NULL) {
        list(weights = weights, history = data.frame(epoch = seq_len(done), hist[seq_len(done), , drop = FALSE]),
             stop_reason = stop_reason, best_epoch = best$epoch, seconds = earlier_seconds + proc.time()[["elapsed"]] - start,
             guard = guard_log, epoch_seconds = data.frame(epoch = seq_len(done), timing[seq_len(done), , drop = FALSE]),
             state = state)
    }
    tryCatch({
        for (epoch in seq.int(done + 1L, length.out = max(0L, epochs - done))) {
            if (epoch > nrow(hist)) {
                hist <- rbind(hist, hist * NA)
                timing <- rbind(timing, timing * NA)
            }
            r <- rates$before(epoch)
            if (r$changed) .eg_trainer_rates(trainer, r$kl_weight, r$learning_rate)
            t0 <- c(proc.time()[["elapsed"]], cpu_now())
            st <- rates$full_loss(.pass(trainer, x_train, y_train, TRUE, train$batch_size))
            if (st[[4]] == 0) {  # interrupted before its first step
                stop_reason <- "interrupted"
                break
            }
            hist[epoch, c("loss", "reconstruction", "kl")] <- st[seq_len(3L)]
            hist[epoch, c("kl_weight", "learning_rate")] <- c(r$kl_weight, r$learning_rate)
            done <- epoch
            timing[epoch, ] <- c(proc.time()[["elapsed"]], cpu_now()) - t0
            if (st[[4]] < n_train) {  # interrupted: the model after its last step is kept
                partial <- st[[4]]
                stop_reason <- "interrupted"
                break
            }
            if (has_val) {
                sv <- rates$full_loss(.pass(trainer, x_val, y_val, FALSE, train$batch_size))
                if (sv[[4]] < n_val) {
                    stop_reason <- "interrupted"
                    break
                }
                hist[epoch, c("val_loss", "val_reconstruction", "val_kl")] <- sv[seq_len(3L)]
            }
            progress$update(epoch, hist[epoch, "loss"], hist[epoch, "val_loss"])
            if (!is.null(guard) && epoch %% guard$every == 0L) {
                w <- .eg_trainer_weights(trainer)
                ratio <- .guard_check(guard, spec, w, prep, epoch)
                guard_log <- rbind(guard_log, data.frame(epoch = epoch, memorisation = ratio))
                if (!is.na(ratio) && ratio < 0.9) {
                    # two checks in a row (one estimate on few cells is noisy); the
                    # earliest model is kept when none passed
                    if (is.null(guard_kept)) guard_kept <- list(weights = w, epoch = epoch, passed = FALSE)
                    if (nrow(guard_log) >= 2L && isTRUE(guard_log$memorisation[nrow(guard_log) - 1L] < 0.9)) {
                        stop_reason <- "memorisation"
                        break
                    }
                } else {
                    guard_kept <- list(weights = w, epoch = epoch, passed = TRUE)
                }
            }
            if (!is.null(plateau_monitor)) rates$after(hist[epoch, plateau_monitor])
            if (!is.null(monitor)) {
                value <- hist[epoch, monitor]
                reference <- if (is.finite(best$value)) best$value else
                    if (is.null(stopping$baseline)) Inf else stopping$baseline
                if (value < reference - stopping$min_delta) {
                    best <- list(value = value, epoch = epoch)
                    wait <- 0L
                    if (stopping$restore_best_weights) {
                        .eg_trainer_snapshot(trainer)
                        snapshot <- NULL
                    }
                } else {
                    wait <- wait + 1L
                    if (wait >= stopping$patience) {  # as keras: `patience` epochs without improvement
                        stop_reason <- "early_stopping"
                        break
                    }
                }
            }
            if (!is.null(checkpoint) && (epoch %% checkpoint$every == 0L || epoch == epochs)) {
                checkpoint$save(run(.eg_trainer_weights(trainer), "checkpoint", state()))
            }
        }
    }, interrupt = function(e) {
        stop_reason <<- "interrupted"
    })
    # Winding down (weights, state, messages) with interrupts held: a second Ctrl-C
    # (pressed twice, or during the first one's wind-down) is dropped once the run is
    # assembled, since training has already stopped.
    wind_down <- function() {
        seconds <- earlier_seconds + proc.time()[["elapsed"]] - start
        if (stop_reason == "memorisation") done <<- guard_kept$epoch
        if (done == 0L) {
            .abort("Training was interrupted before its first minibatch completed; no model to return.",
                   class = "exprsgen_error_interrupted", call = NULL)
        }
        progress$done(done, seconds, stop_reason, hist[done, ])
        weights <- NULL
        if (restore_best && !is.na(best$epoch)) {
            weights <- snapshot %||% .eg_trainer_weights(trainer, snapshot = TRUE)
        }
        if (stop_reason == "memorisation") {
            last <- guard_log[nrow(guard_log), ]
            cli::cli_inform(c(i = paste0("Stopped at epoch {last$epoch}: cells generated from the model were closer to the training cells ",
                                         "than these are to each other (memorisation ratio {format(round(last$memorisation, 2))}, below 0.9)."),
                              " " = if (guard_kept$passed) "The model of epoch {guard_kept$epoch}, the last one checked without copies, is returned."
                                    else "No check passed: the model of epoch {guard_kept$epoch}, the first checked, is returned."),
                            class = "exprsgen_message_guard")
            weights <- guard_kept$weights
        }
        if (is.null(weights)) weights <- .eg_trainer_weights(trainer)
        if (stop_reason == "interrupted") {
            if (is.na(partial)) {
                cli::cli_warn("Training was interrupted after {done} epoch{?s}; the model of that epoch is returned.",
                              class = "exprsgen_warning_interrupted")
            } else {
                cli::cli_warn(c(paste("Training was interrupted in epoch {done}, after {partial} of {n_train} cells;",
                                      "the model after that minibatch is returned."),
                                i = "The last row of the history covers those {partial} cells."),
                              class = "exprsgen_warning_interrupted")
            }
        }
        # the state training continues from: an interrupted run carries it (none from
        # the reference engine, whose optimizer state stays in burn), and a run that
        # early stopping ended leaves it in its checkpoint (a guard's stop is not
        # continued: fit_vae(resume =) refuses it)
        st <- NULL
        if (identical(train$engine, "fused") &&
            (stop_reason == "interrupted" || (!is.null(checkpoint) && stop_reason == "early_stopping"))) {
            st <- state()
            # (the weights to continue from, when those returned are others)
            if (!identical(weights, current <- .eg_trainer_weights(trainer))) st$weights <- current
        }
        out <- run(weights, stop_reason, if (stop_reason == "interrupted") st)
        out$seconds <- seconds
        # a run that early stopping or the guard ended: its checkpoint is the fit
        # returned, so that the file holds the last epoch trained
        if (!is.null(checkpoint) && stop_reason %in% c("early_stopping", "memorisation")) {
            final <- out
            final$state <- st
            checkpoint$save(final)
        }
        out
    }
    out <- NULL
    tryCatch(suspendInterrupts(out <- wind_down()), interrupt = function(e) NULL)
    out
}

# The KL weight and learning rate of each epoch: a linear KL warm-up over the first
# `kl_warmup` epochs (weight regularization * epoch / kl_warmup, as scVI's
# n_epochs_kl_warmup), and the learning rate divided on plateaus of the monitored
# loss (keras's ReduceLROnPlateau). The loss is always reported with the full KL
# weight (reconstruction + regularization * kl), so that epochs compare.
.schedule <- function(regularization, learning_rate, kl_warmup, plateau) {
    current <- c(kl_weight = regularization, learning_rate = learning_rate)
    lr <- learning_rate
    best <- Inf
    wait <- 0L
    cooldown <- 0L
    weight <- function(epoch) {
        if (kl_warmup > 0 && epoch < kl_warmup) regularization * epoch / kl_warmup else regularization
    }
    list(state = function() list(current = current, lr = lr, best = best, wait = wait, cooldown = cooldown),
         restore = function(s) {
        current <<- s$current
        lr <<- s$lr
        best <<- s$best
        wait <<- s$wait
        cooldown <<- s$cooldown
    }, before = function(epoch) {
        new <- c(kl_weight = weight(epoch), learning_rate = lr)
        changed <- !identical(new, current)
        current <<- new
        list(changed = changed, kl_weight = new[["kl_weight"]], learning_rate = new[["learning_rate"]])
    }, full_loss = function(st) {
        # (the core's loss is exact when the weight is the full one)
        if (current[["kl_weight"]] != regularization) st[1] <- st[2] + regularization * st[3]
        st
    }, after = function(value) {
        # keras's ReduceLROnPlateau.on_epoch_end
        if (cooldown > 0L) {
            cooldown <<- cooldown - 1L
            wait <<- 0L
        }
        if (value < best - plateau$min_delta) {
            best <<- value
            wait <<- 0L
        } else if (cooldown == 0L) {
            wait <<- wait + 1L
            if (wait >= plateau$patience) {
                lr <<- max(lr * plateau$factor, plateau$min_lr)
                wait <<- 0L
                cooldown <<- plateau$cooldown
            }
        }
    })
}

# Progress reporting: a cli progress bar in interactive sessions, a line every
# tenth of the run otherwise (Rscript, knitr).
.progress <- function(epochs, has_val, verbose, envir = parent.frame()) {
    fmt <- function(epoch, loss, val) {
        paste0("epoch ", epoch, "/", epochs, "  loss ", format(signif(loss, 5)),
               if (has_val && !is.na(val)) paste0("  val_loss ", format(signif(val, 5))))
    }
    if (!verbose) {
        return(list(update = function(...) NULL, done = function(...) NULL))
    }
    if (interactive()) {
        # The bar belongs to the caller's frame (.train), so it ends with it.
        bar <- cli::cli_progress_bar("Training", total = epochs, clear = TRUE,
                                     format = "{cli::pb_bar} {cli::pb_status} | ETA {cli::pb_eta}",
                                     .envir = envir)
        list(update = function(epoch, loss, val) {
            cli::cli_progress_update(id = bar, set = epoch, status = fmt(epoch, loss, val),
                                     .envir = envir)
        }, done = function(done, seconds, reason, row) {
            cli::cli_progress_done(id = bar, .envir = envir)
            .progress_summary(done, seconds, reason, fmt(done, row[["loss"]], row[["val_loss"]]))
        })
    } else {
        every <- max(1L, epochs %/% 10L)
        list(update = function(epoch, loss, val) {
            if (epoch == 1L || epoch %% every == 0L) cli::cli_text(fmt(epoch, loss, val))
        }, done = function(done, seconds, reason, row) {
            .progress_summary(done, seconds, reason, fmt(done, row[["loss"]], row[["val_loss"]]))
        })
    }
}

.progress_summary <- function(done, seconds, reason, last) {
    why <- switch(reason, completed = "", early_stopping = " (early stopping)",
                  interrupted = " (interrupted)", memorisation = " (memorisation guard)")
    cli::cli_alert_success("Trained {done} epoch{?s} in {format(round(seconds, 1), nsmall = 1)} s{why}: {last}")
}


# Memory a fit needs, checked before the core allocates it: per parameter the weights,
# gradient and two optimizer moments (float), a snapshot when the best weights are
# kept, and the weights handed back to R (double, built in the core then copied into
# R: twice); per cell of a minibatch the activations and their gradients. The
# argument named is the one whose size dominates.
.check_fit_memory <- function(spec, batch_size, n_cells, data_arg, restore, call) {
    b <- .blocks(spec)
    params <- sum(b$n_in * b$n_out + b$n_out)
    batch <- min(batch_size, n_cells)
    bytes <- params * (4 * 4 + if (restore) 4 else 0) + params * 8 * 2 +
        batch * sum(b$n_out) * 4 * 4
    enc <- max(spec$encoder_units, 0)
    dec <- max(utils::head(spec$decoder_units, -1L), 0)
    sizes <- c(encoder_layers = enc, decoder_layers = dec, latent_dim = spec$latent_dim,
               genes = spec$n_genes)
    arg <- names(sizes)[which.max(sizes)]
    hint <- switch(arg,
        encoder_layers = "Use fewer units in the layers of {.arg encoder_layers}.",
        decoder_layers = "Use fewer units in the layers of {.arg decoder_layers}.",
        latent_dim = "Use a smaller {.arg latent_dim}.",
        genes = paste0("Select fewer genes of {.arg ", data_arg, "} (e.g. the most variable ones)."))
    what <- paste0("The model (", format(params, big.mark = ",", scientific = FALSE),
                   " parameters) and its training")
    .check_memory(bytes, what, hint, call = call, hard = identical(.engine(call), "burn"))
}
