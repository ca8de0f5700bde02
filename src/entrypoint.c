// Registers the routines that extendr generates (R_init_exprsgen_extendr).
#include <R_ext/Rdynload.h>

void R_init_exprsgen_extendr(DllInfo *dll);
void exprsgen_init_protection(void);

void R_init_exprsgen(DllInfo *dll) {
  R_init_exprsgen_extendr(dll);
  /* extendr's protection list, allocated now rather than at the first object it
     protects, which that allocation's garbage collection could free (lib.rs) */
  exprsgen_init_protection();
}
