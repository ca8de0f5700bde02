// Registers the routines that extendr generates (R_init_exprsgen_extendr).
#include <R_ext/Rdynload.h>

void R_init_exprsgen_extendr(DllInfo *dll);

void R_init_exprsgen(DllInfo *dll) {
  R_init_exprsgen_extendr(dll);
}
