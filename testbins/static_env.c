/*
 * A static program (no loader reads its LD_PRELOAD): prints its
 * environment, one entry a line, as the kernel gave it. The preloaded
 * signal wrappers pass nothing on to it, so it shows the environment its
 * parent passed, unchanged (tests/integration/ports_test.cc).
 */
#include <stdio.h>

extern char **environ;

int main(void) {
  for (char **e = environ; *e != NULL; e++) puts(*e);
  return 0;
}
