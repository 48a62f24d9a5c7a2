/*
 * libevshim-signals.so: the foreign libraries' signal wrappers
 * (trap_library.h, with sigaction() and signal() as the libraries define
 * them around it), preloaded by `evshim run` in fast mode (shim/cli/
 * launch_preload.h; docs/design.md "A copy that survives a fault",
 * Gating). It links libevshim-engine, so the engine is loaded with the
 * program, in the global scope, and its constructors (FindInheritedTrap,
 * GuardFaultSignals) find these wrappers to be the program's signal
 * functions: the engine's copy into the program's memory that survives a
 * fault is then on also when the foreign library is loaded later with
 * dlopen(RTLD_LOCAL) (CPython's kqueue module), which shares this engine
 * (same soname).
 *
 * Where the library is linked too, its wrappers come after these
 * (RTLD_NEXT reaches them, then libc): each step drops the same signals
 * from a mask (idempotent), and a kept signal's disposition is set once,
 * by the first (evshim_kept_sigaction); every other sigaction() goes on to
 * the library's, whose EVFILT_SIGNAL hook sees it.
 *
 * The launcher appends this library to the user's LD_PRELOAD and leaves the
 * user's own value in EVSHIM_USER_LD_PRELOAD ("" unset, "=VALUE" set): the
 * constructor below puts it back, so the program sees its environment as
 * given and no child inherits the preload (a 32-bit child's loader would
 * complain of it; a 64-bit child goes without the copy, as before).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))
/* Never built with a sanitizer runtime in use (the launcher preloads it
 * only where foreign_sanitize is none); trap_library.h wants the name. */
#define NOT_TSAN_INSTRUMENTED

#include "trap_library.h"

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
  static trap_sigaction_fn next;
  if (next == NULL) next = TRAP_NEXT(trap_sigaction_fn, "sigaction");
  int r;
  if (evshim_kept_sigaction(sig, act, oldact, &r)) return r;
  struct sigaction copy;
  return next(sig, trap_action(act, &copy), oldact);
}

/* glibc's signal() is BSD signal(): SA_RESTART, the signal blocked in its
 * handler. Through sigaction() above: libc's signal() sets the disposition
 * with its internal sigaction, which no wrapper sees. */
EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction a, old;
  memset(&a, 0, sizeof a);
  a.sa_handler = handler;
  a.sa_flags = SA_RESTART;
  sigemptyset(&a.sa_mask);
  if (sig > 0 && sig < 65) sigaddset(&a.sa_mask, sig);
  if (sigaction(sig, &a, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

/* The user's LD_PRELOAD back (see above), before the program's main. */
__attribute__((constructor)) static void evshim_signals_restore_environment(void) {
  const char *saved = getenv("EVSHIM_USER_LD_PRELOAD");
  if (saved == NULL) return;
  if (saved[0] == '=') {
    setenv("LD_PRELOAD", saved + 1, 1);
  } else {
    unsetenv("LD_PRELOAD");
  }
  unsetenv("EVSHIM_USER_LD_PRELOAD");
}
