# Child R processes for the tests of interrupts and signals.

# Runs Rscript with `args` (in folder `wd`), sends it `signal` `pause` seconds after it
# has printed `marker` (and, with `again`, SIGINT once more that many seconds later:
# Ctrl-C pressed twice), and returns what it printed (`seen` before the signal and
# `all` of it) and its exit status.
signal_after <- function(args, marker, pause, signal = tools::SIGINT, again = NULL, wd = NULL, deadline = 60) {
    p <- processx::process$new(file.path(R.home("bin"), "Rscript"), args, wd = wd,
                               stdout = "|", stderr = "2>&1", env = c(Sys.getenv(), NO_COLOR = "1"))
    on.exit(p$kill(), add = TRUE)
    seen <- ""
    until <- Sys.time() + deadline
    while (!grepl(marker, seen) && Sys.time() < until && p$is_alive()) {
        p$poll_io(1000)
        seen <- paste0(seen, p$read_output())
    }
    Sys.sleep(pause)
    p$signal(signal)
    if (!is.null(again)) {
        Sys.sleep(again)
        p$interrupt()
    }
    p$wait(60000)
    list(seen = seen, all = paste0(seen, p$read_all_output()), status = p$get_exit_status())
}

# The R code `lines` as an Rscript child, interrupted (SIGINT) as signal_after() says.
interrupt_after <- function(lines, marker, pause, deadline = 60, again = NULL) {
    script <- tempfile(fileext = ".R")
    writeLines(lines, script)
    signal_after(script, marker, pause, again = again, deadline = deadline)
}
