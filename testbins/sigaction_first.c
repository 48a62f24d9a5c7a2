/*
 * A library that interposes sigaction() and passes it on (dlsym RTLD_NEXT),
 * as a sanitizer runtime does, for a user's LD_PRELOAD under `evshim run`
 * (tests/integration/kqueue_test.cc KqueueDlopen): the launcher's signal
 * wrappers come after it, so the engine's gating says off (docs/design.md
 * "A copy that survives a fault", The wrappers preloaded).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stddef.h>

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

__attribute__((visibility("default"))) int sigaction(int sig, const struct sigaction *act, struct sigaction *old) {
  static sigaction_fn next;
  if (next == NULL) *(void **)&next = dlsym(RTLD_NEXT, "sigaction");
  return next(sig, act, old);
}
