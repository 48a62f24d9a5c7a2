/*
 * libevshim-signals.so: the foreign libraries' signal wrappers
 * (trap_library.h, with sigaction() and signal() as the libraries define
 * them around it), preloaded by `evshim run` in fast mode (shim/cli/
 * launch_preload.h; docs/design.md "A copy that survives a fault", The
 * wrappers preloaded). Being first in the global scope from the start, they
 * are the program's signal functions, so the engine's gating says on also
 * when the foreign library is loaded later with dlopen(RTLD_LOCAL)
 * (CPython's kqueue module): that engine gets the copy into the program's
 * memory that survives a fault.
 *
 * Small and C only, and it does not link the engine: a program that never
 * loads a foreign library pays for these few functions, not for the
 * engine and its C++ runtime. Until an engine is loaded the wrappers keep
 * SIGSYS, SIGSEGV and SIGBUS out of every mask (what a fast-mode engine
 * under `evshim run` would do from its start: the trap may come, and the
 * fault copy may be on, so no thread may have them blocked when it comes)
 * and leave dispositions alone; the engine's constructor hands over its own
 * two entries (evshim_signals_attach, called from trap.cc), which decide
 * from then on.
 *
 * Where the library is linked too, its wrappers come after these (RTLD_NEXT
 * reaches them, then libc): each step drops the same signals from a mask
 * (idempotent), and a kept signal's disposition is set once, by the first
 * (evshim_kept_sigaction); every other sigaction() goes on to the
 * library's, whose EVFILT_SIGNAL hook sees it.
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

#include "trap.h"

#define EXPORT __attribute__((visibility("default")))
/* Never built with a sanitizer runtime in use (the launcher preloads it
 * only where foreign_sanitize is none); trap_library.h wants the name. */
#define NOT_TSAN_INSTRUMENTED

typedef int (*kept_sigaction_fn)(int, const struct sigaction *, struct sigaction *, int *);
typedef void (*trap_unblock_fn)(sigset_t *);
/* The engine's entries, once one is loaded (__atomic: read in handlers). */
static kept_sigaction_fn engine_kept_sigaction;
static trap_unblock_fn engine_trap_unblock;

/* Called by the engine's constructor (trap.cc) when this library is loaded. */
EXPORT void evshim_signals_attach(kept_sigaction_fn kept, trap_unblock_fn unblock) {
  __atomic_store_n(&engine_kept_sigaction, kept, __ATOMIC_RELEASE);
  __atomic_store_n(&engine_trap_unblock, unblock, __ATOMIC_RELEASE);
}

static void preload_trap_unblock(sigset_t *set) {
  trap_unblock_fn engine = __atomic_load_n(&engine_trap_unblock, __ATOMIC_ACQUIRE);
  if (engine != NULL) {
    engine(set);
  } else if (set != NULL) {
    sigdelset(set, SIGSYS);
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
  }
}

static int preload_kept_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact, int *r) {
  kept_sigaction_fn engine = __atomic_load_n(&engine_kept_sigaction, __ATOMIC_ACQUIRE);
  return engine != NULL ? engine(sig, act, oldact, r) : 0;
}

/* trap_library.h's wrappers, on the two entries above. Its mark is
 * renamed: an engine that knows this library (one that attaches) looks for
 * evshim_preloaded_signals too; an older one finds no mark of the object
 * that has the program's signal functions and keeps the copy off, rather
 * than rely on wrappers it never attached to. */
#define evshim_trap_unblock preload_trap_unblock
#define evshim_kept_sigaction preload_kept_sigaction
#define evshim_library_signals evshim_preloaded_signals
#include "trap_library.h"

EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
  return trap_sigaction(sig, act, oldact);
}

/* BSD signal(), through sigaction() above (trap_library.h). */
EXPORT sighandler_t signal(int sig, sighandler_t handler) { return trap_bsd_signal(sig, handler); }

/* The user's LD_PRELOAD back (see above), before the program's main. A
 * mask inherited across exec is opened as the engine's constructor would
 * (the initial thread's: every later thread's is made through the
 * wrappers). */
__attribute__((constructor)) static void evshim_signals_start(void) {
  const char *saved = getenv("EVSHIM_USER_LD_PRELOAD");
  if (saved != NULL) {
    if (saved[0] == '=') {
      setenv("LD_PRELOAD", saved + 1, 1);
    } else {
      unsetenv("LD_PRELOAD");
    }
    unsetenv("EVSHIM_USER_LD_PRELOAD");
  }
  if (__atomic_load_n(&engine_trap_unblock, __ATOMIC_ACQUIRE) == NULL) {
    sigset_t kept;
    sigemptyset(&kept);
    sigaddset(&kept, SIGSYS);
    sigaddset(&kept, SIGSEGV);
    sigaddset(&kept, SIGBUS);
    trap_sigmask_fn real = TRAP_NEXT(trap_sigmask_fn, "pthread_sigmask");
    if (real != NULL) real(SIG_UNBLOCK, &kept, NULL);
  }
}
