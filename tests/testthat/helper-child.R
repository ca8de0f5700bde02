# Child R processes for the tests of interrupts and signals.

# Runs the R code `lines` in an Rscript child, sends it SIGINT `pause` seconds after it
# has printed `marker`, and returns what it printed (`seen` before the interrupt and
# all of it) and its exit status; with `again`, a second SIGINT that many seconds later.
interrupt_after <- function(lines, marker, pause, deadline = 60, again = NULL) {
    script <- tempfile(fileext = ".R")
    writeLines(lines, script)
    p <- processx::process$new(file.path(R.home("bin"), "Rscript"), script,
                               stdout = "|", stderr = "2>&1")
    on.exit(p$kill(), add = TRUE)
    seen <- ""
    until <- Sys.time() + deadline
    while (!grepl(marker, seen) && Sys.time() < until && p$is_alive()) {
        p$poll_io(1000)
        seen <- paste0(seen, p$read_output())
    }
    Sys.sleep(pause)
    p$interrupt()
    # a second SIGINT `again` seconds later (Ctrl-C pressed twice)
    if (!is.null(again)) {
        Sys.sleep(again)
        p$interrupt()
    }
    p$wait(60000)
    list(seen = seen, all = paste0(seen, p$read_all_output()), status = p$get_exit_status())
}
