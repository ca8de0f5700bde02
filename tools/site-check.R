# Loads every page of the built site (tools/site.R) in headless Chromium, as a reader's
# browser renders it, and checks the rendered pages: every internal link leads to a file
# of the site (anchors included), every image is there, and no page shows R error
# output. Takes screenshots of the home page, the reference index and one article into
# site-shots/. Installs chromium when missing. Exits 1 on any problem.
#   Rscript tools/site-check.R [SITE_DIR]
args <- commandArgs(trailingOnly = TRUE)
site <- normalizePath(if (length(args)) args[1] else "site", mustWork = TRUE)
browser <- Sys.which(c("chromium", "chromium-browser"))
browser <- browser[nzchar(browser)][1]
if (is.na(browser)) {
    system(paste(if (Sys.info()[["user"]] != "root") "sudo",
                 "env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium"),
           ignore.stdout = TRUE)
    browser <- Sys.which("chromium")
    if (!nzchar(browser)) stop("could not install chromium")
}
flags <- c("--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=3000")
render <- function(page) {
    out <- suppressWarnings(system2(browser, c(flags, "--dump-dom", paste0("file://", page)), stdout = TRUE, stderr = FALSE))
    paste(out, collapse = "\n")
}
attr_values <- function(html, tag, attr) {
    m <- regmatches(html, gregexpr(sprintf("<%s\\b[^>]*\\b%s=\"[^\"]*\"", tag, attr), html))[[1]]
    sub(sprintf(".*\\b%s=\"([^\"]*)\"", attr), "\\1", m)
}
pages <- list.files(site, pattern = "\\.html$", recursive = TRUE, full.names = TRUE)
problems <- character(0)
n_links <- n_images <- 0L
ids <- list()
doms <- list()
for (page in pages) doms[[page]] <- render(page)
for (page in pages) {
    dom <- doms[[page]]
    if (!nzchar(dom)) {
        problems <- c(problems, paste(page, ": the browser rendered nothing"))
        next
    }
    # R error output in rendered code: "#> Error" (cli colours it in spans, so the text
    # is read without tags). Errors shown on purpose are in chunks with
    # `error = TRUE, class.error = "expected-error"`, whose output blocks carry that class.
    for (block in regmatches(dom, gregexpr("(?s)<pre\\b[^>]*>.*?</pre>", dom, perl = TRUE))[[1]]) {
        if (grepl("^<pre\\b[^>]*expected-error", block)) next
        text <- gsub("&gt;", ">", gsub("&lt;", "<", gsub("<[^>]+>", "", block), fixed = TRUE), fixed = TRUE)
        if (grepl("(^|\n)\\s*(#>|##) *(Error|Warning: Error)\\b", text, perl = TRUE)) {
            problems <- c(problems, paste0(basename(page), ": R error output in the page: ",
                                           sub("(?s).*?((#>|##) *Error[^\n]*).*", "\\1", text, perl = TRUE)))
        }
    }
    rel <- function(u) !grepl("^(https?:|mailto:|javascript:|data:|#$)", u) && nzchar(u)
    links <- Filter(rel, attr_values(dom, "a", "href"))
    for (u in links) {
        n_links <- n_links + 1L
        parts <- strsplit(u, "#", fixed = TRUE)[[1]]
        target <- if (nzchar(parts[1])) normalizePath(file.path(dirname(page), utils::URLdecode(parts[1])), mustWork = FALSE) else page
        if (dir.exists(target)) target <- file.path(target, "index.html")
        if (!file.exists(target)) {
            problems <- c(problems, sprintf("%s: broken link %s", basename(page), u))
        } else if (length(parts) > 1L && grepl("\\.html$", target) && target %in% pages) {
            tdom <- doms[[target]]
            if (!grepl(sprintf("id=\"%s\"", parts[2]), tdom, fixed = TRUE)) {
                problems <- c(problems, sprintf("%s: link to a missing anchor %s", basename(page), u))
            }
        }
    }
    for (u in Filter(rel, attr_values(dom, "img", "src"))) {
        n_images <- n_images + 1L
        target <- normalizePath(file.path(dirname(page), utils::URLdecode(u)), mustWork = FALSE)
        if (!file.exists(target)) problems <- c(problems, sprintf("%s: missing image %s", basename(page), u))
    }
}
shots <- file.path(dirname(site), "site-shots")
dir.create(shots, showWarnings = FALSE)
for (p in c("index.html", "reference/index.html", "articles/counts.html")) {
    f <- file.path(site, p)
    if (!file.exists(f)) next
    png <- file.path(shots, paste0(gsub("[/.]", "-", sub("\\.html$", "", p)), ".png"))
    suppressWarnings(system2(browser, c(flags, "--window-size=1280,1400", paste0("--screenshot=", png), paste0("file://", f)),
                             stdout = FALSE, stderr = FALSE))
}
cat(sprintf("site-check: %d pages, %d internal links, %d images checked; %d problems\n",
            length(pages), n_links, n_images, length(problems)))
if (length(problems)) {
    cat(unique(problems), sep = "\n")
    quit(status = 1)
}
cat("screenshots in", normalizePath(shots), "\n")
