/*
 * A program built with AddressSanitizer: its runtime aborts ("ASan runtime
 * does not come first in initial library list") when a preloaded library
 * comes before it, so `evshim run` must preload nothing into it
 * (tests/integration/ports_test.cc Launcher.PreloadsNothingIntoASanitizedProgram).
 */
#include <stdio.h>

int main(void) {
  puts("hello");
  return 0;
}
