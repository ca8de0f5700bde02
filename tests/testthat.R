library(testthat)
library(exprsgen)

test_check("exprsgen")
