# KL warm-up and learning-rate schedules: what each epoch trains with.

test_that("kl_warmup raises the KL weight linearly and reports the full-weight loss", {
    plain <- quick_fit(x_train = sim$x, epochs = 6, regularization = 2)
    warm <- quick_fit(x_train = sim$x, epochs = 6, regularization = 2, kl_warmup = 4)
    h <- warm$history
    expect_equal(h$kl_weight, 2 * c(1, 2, 3, 4, 4, 4) / 4)
    expect_equal(plain$history$kl_weight, rep(2, 6))
    # the loss in the history always weighs the KL term fully, so epochs compare
    expect_equal(h$loss, h$reconstruction + 2 * h$kl, tolerance = 1e-12)
    expect_equal(plain$history$loss, plain$history$reconstruction + 2 * plain$history$kl, tolerance = 1e-6)
    # the first epoch already trains differently; a lower KL weight lets the codes spread
    expect_false(isTRUE(all.equal(warm$model$weights, plain$model$weights)))
    expect_gt(h$kl[1], plain$history$kl[1])
    expect_equal(warm$params$kl_warmup, 4L)
    # 0 (the default) is no warm-up: the same fit as without the argument
    expect_identical(quick_fit(x_train = sim$x, epochs = 6, regularization = 2, kl_warmup = 0)$model$weights,
                     plain$model$weights)
    # the same seed, the same warmed-up fit
    expect_identical(quick_fit(x_train = sim$x, epochs = 6, regularization = 2, kl_warmup = 4)$model$weights,
                     warm$model$weights)
})

test_that("the learning rate falls on plateaus, as keras's ReduceLROnPlateau", {
    # an improvement of 1e9 is never reached: every `patience` epochs is a plateau
    cb <- callback_reduce_lr_on_plateau(monitor = "loss", factor = 0.5, patience = 2, min_delta = 1e9,
                                        min_lr = 1e-4)
    fit <- quick_fit(x_train = sim$x, epochs = 9, callbacks = cb,
                     optimizer = optimizer_adam(learning_rate = 1e-3))
    # epoch 1 sets the best loss; epochs 2-3 fail to beat it by 1e9, then 4-5, ...
    expect_equal(fit$history$learning_rate, c(1e-3, 1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4, 1.25e-4))
    with_cooldown <- quick_fit(x_train = sim$x, epochs = 7, optimizer = optimizer_adam(learning_rate = 1e-3),
                               callbacks = callback_reduce_lr_on_plateau("loss", 0.5, patience = 1,
                                                                         min_delta = 1e9, cooldown = 2))
    # (keras: two epochs of cooldown after each reduction, then one without improvement)
    expect_equal(with_cooldown$history$learning_rate, c(1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4, 1.25e-4))
    # a smaller rate trains differently from a constant one
    const <- quick_fit(x_train = sim$x, epochs = 9, optimizer = optimizer_adam(learning_rate = 1e-3))
    expect_false(isTRUE(all.equal(fit$model$weights, const$model$weights)))
    expect_equal(const$history$learning_rate, rep(1e-3, 9))
    # a real plateau detector leaves an improving loss alone
    easy <- quick_fit(x_train = sim$x, epochs = 5, callbacks = callback_reduce_lr_on_plateau("loss", patience = 3))
    expect_equal(easy$history$learning_rate, rep(easy$params$learning_rate, 5))
    # together with early stopping; val_loss without validation cells falls back to the loss
    cbs <- list(callback_early_stopping("loss", patience = 10),
                callback_reduce_lr_on_plateau(patience = 1, min_delta = 1e9))
    expect_warning(quick_fit(x_train = sim$x, epochs = 2, callbacks = cbs), "no validation cells")
    both <- suppressWarnings(quick_fit(x_train = sim$x, epochs = 4, callbacks = cbs))
    expect_equal(both$history$learning_rate, 1e-3 * c(1, 1, 0.1, 0.01))
})

test_that("schedule arguments are checked", {
    expect_error(callback_reduce_lr_on_plateau(factor = 1.5), "factor", class = "exprsgen_error_argument")
    expect_error(callback_reduce_lr_on_plateau(factor = 0), "factor", class = "exprsgen_error_argument")
    expect_error(callback_reduce_lr_on_plateau(patience = 0), "patience", class = "exprsgen_error_argument")
    expect_error(callback_reduce_lr_on_plateau(monitor = "acc"), "monitor", class = "exprsgen_error_argument")
    expect_error(quick_fit(x_train = sim$x, kl_warmup = -1), "kl_warmup", class = "exprsgen_error_argument")
    expect_error(quick_fit(x_train = sim$x, kl_warmup = 1e12), "kl_warmup. must be at most", class = "exprsgen_error_argument")
    expect_error(quick_fit(x_train = sim$x, callbacks = list(callback_early_stopping(), callback_early_stopping())),
                 "one callback of each kind", class = "exprsgen_error_argument")
    expect_output(print(callback_reduce_lr_on_plateau()), "learning rate x 0.1")
})
