/*
 * The foreign libraries' side of the trap (trap.h; docs/design.md "Raw
 * foreign calls in fast mode: the trap"). Included once by each library
 * (shim/foreign/illumos/port.c, shim/foreign/bsd/kqueue.c) in its fast-path build; it
 * DEFINES functions. The including file defines EXPORT and
 * NOT_TSAN_INSTRUMENTED and includes <dlfcn.h>, <signal.h>, <string.h>, <unistd.h>.
 *
 * 1. SUPERVISOR_SYSCALL: a foreign call meant for the supervisor goes
 *    through the trap's gate while the trap is on (the filter would trap it
 *    anywhere else), else it is issued in place as before (`evshim trace
 *    --sites` names the library function that issued it).
 * 2. The program cannot take SIGSYS away from the trap: a blocked forced
 *    SIGSYS kills the process, and a replaced handler would lose every raw
 *    call. While the trap is on (or may come: trap.h evshim_trap_unblock),
 *    the mask functions drop SIGSYS from what they block; sigaction(),
 *    signal(), sigset(), sigignore(), bsd_signal() and sysv_signal() for
 *    SIGSYS set the program's disposition, which the engine's handler calls
 *    for every SIGSYS that is not the trap's. A handler's sa_mask never
 *    holds SIGSYS. Raw rt_sigaction/rt_sigprocmask system calls are not seen
 *    (docs/abi.md §10).
 * 3. The same for SIGSEGV and SIGBUS, which the engine keeps for its copy
 *    into the program's memory that survives a fault (docs/design.md "A
 *    copy that survives a fault"): never blocked while that copy may be on,
 *    and their dispositions the program's record while its handler is
 *    installed (evshim_kept_sigaction). evshim_library_signals marks this
 *    library: the engine uses the copy only when the program's signal
 *    functions are this library's (not loaded RTLD_LOCAL, no sanitizer
 *    runtime first).
 */
#ifndef EVSHIM_INPROC_TRAP_LIBRARY_H
#define EVSHIM_INPROC_TRAP_LIBRARY_H

#include "trap.h"

#define SUPERVISOR_SYSCALL(nr, a0, a1, a2, a3, a4, a5)                                                    \
  (evshim_trap_active()                                                                                  \
       ? evshim_supervisor_syscall((long)(nr), (long)(a0), (long)(a1), (long)(a2), (long)(a3), (long)(a4), \
                                   (long)(a5))                                                           \
       : syscall((long)(nr), (long)(a0), (long)(a1), (long)(a2), (long)(a3), (long)(a4), (long)(a5)))

typedef int (*trap_sigmask_fn)(int, const sigset_t *, sigset_t *);
typedef int (*trap_sigaction_fn)(int, const struct sigaction *, struct sigaction *);
typedef sighandler_t (*trap_signal_fn)(int, sighandler_t);

NOT_TSAN_INSTRUMENTED static void *trap_next(const char *name) { return dlsym(RTLD_NEXT, name); }
#define TRAP_NEXT(type, name) (__extension__(type) trap_next(name))

/* The set to pass on: SIGSYS dropped from what would block it. */
NOT_TSAN_INSTRUMENTED static const sigset_t *trap_mask(int how, const sigset_t *set, sigset_t *copy) {
  if (set == NULL || how == SIG_UNBLOCK) return set;
  *copy = *set;
  evshim_trap_unblock(copy);
  return copy;
}

/* The action to pass on for any signal: SIGSYS never in its sa_mask. */
NOT_TSAN_INSTRUMENTED static const struct sigaction *trap_action(const struct sigaction *act,
                                                                  struct sigaction *copy) {
  if (act == NULL) return act;
  *copy = *act;
  evshim_trap_unblock(&copy->sa_mask);
  return copy;
}

/* The body of an including file's sigaction() when it adds nothing of its
 * own (the ports library, the preloaded wrappers): a kept signal's
 * disposition is the engine's record; any other goes on, with SIGSYS,
 * SIGSEGV and SIGBUS out of its sa_mask. */
__attribute__((unused)) NOT_TSAN_INSTRUMENTED static int trap_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
  static trap_sigaction_fn next;
  if (next == NULL) next = TRAP_NEXT(trap_sigaction_fn, "sigaction");
  int r;
  if (evshim_kept_sigaction(sig, act, oldact, &r)) return r;
  struct sigaction copy;
  return next(sig, trap_action(act, &copy), oldact);
}

/* glibc's signal() is BSD signal(): SA_RESTART, the signal blocked in its
 * handler. Through the including file's sigaction(): libc's signal() sets
 * the disposition with its internal sigaction, which no wrapper sees. */
__attribute__((unused)) static sighandler_t trap_bsd_signal(int sig, sighandler_t handler) {
  struct sigaction a, old;
  memset(&a, 0, sizeof a);
  a.sa_handler = handler;
  a.sa_flags = SA_RESTART;
  sigemptyset(&a.sa_mask);
  if (sig > 0 && sig < 65) sigaddset(&a.sa_mask, sig); /* 65: Linux _NSIG */
  if (sigaction(sig, &a, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

/* A kept signal (SIGSYS, SIGSEGV, SIGBUS) through the engine: the program's
 * disposition `handler` with `flags`. 0 when `sig` is not kept now. */
NOT_TSAN_INSTRUMENTED static int trap_set_handler(int sig, sighandler_t handler, int flags, sighandler_t *old) {
  struct sigaction a, prev;
  memset(&a, 0, sizeof a);
  a.sa_handler = handler;
  a.sa_flags = flags;
  sigemptyset(&a.sa_mask);
  int r;
  if (!evshim_kept_sigaction(sig, &a, &prev, &r)) return 0;
  *old = r == 0 ? prev.sa_handler : SIG_ERR;
  return 1;
}

NOT_TSAN_INSTRUMENTED EXPORT int sigprocmask(int how, const sigset_t *set, sigset_t *old) {
  static trap_sigmask_fn next;
  if (next == NULL) next = TRAP_NEXT(trap_sigmask_fn, "sigprocmask");
  sigset_t copy;
  return next(how, trap_mask(how, set, &copy), old);
}

NOT_TSAN_INSTRUMENTED EXPORT int pthread_sigmask(int how, const sigset_t *set, sigset_t *old) {
  static trap_sigmask_fn next;
  if (next == NULL) next = TRAP_NEXT(trap_sigmask_fn, "pthread_sigmask");
  sigset_t copy;
  return next(how, trap_mask(how, set, &copy), old);
}

EXPORT int sigsuspend(const sigset_t *mask) {
  typedef int (*fn_t)(const sigset_t *);
  static fn_t next;
  if (next == NULL) next = TRAP_NEXT(fn_t, "sigsuspend");
  sigset_t copy;
  return next(trap_mask(SIG_SETMASK, mask, &copy));
}

/* The mark the engine looks for (trap.cc LibrariesInterposeSignals): the
 * signal functions the program reaches are this library's. */
EXPORT void evshim_library_signals(void) {}

/* Whether `sig` is kept unblockable now (SIGSYS: the trap is on, or may
 * come; SIGSEGV, SIGBUS: the fault copy may be on). */
static int trap_guards(int sig) {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  evshim_trap_unblock(&s);
  return !sigismember(&s, sig);
}

/* The BSD mask calls (deprecated, still exported by glibc). */
static int trap_bsd_mask(int mask) {
  static const int kept[] = {SIGSYS, SIGSEGV, SIGBUS};
  for (unsigned i = 0; i < sizeof kept / sizeof kept[0]; i++) {
    if (trap_guards(kept[i])) mask &= ~(1 << (kept[i] - 1));
  }
  return mask;
}
EXPORT int sigblock(int mask) {
  typedef int (*fn_t)(int);
  static fn_t next;
  if (next == NULL) next = TRAP_NEXT(fn_t, "sigblock");
  return next(trap_bsd_mask(mask));
}
EXPORT int sigsetmask(int mask) {
  typedef int (*fn_t)(int);
  static fn_t next;
  if (next == NULL) next = TRAP_NEXT(fn_t, "sigsetmask");
  return next(trap_bsd_mask(mask));
}

/* System V: sighold blocks, sigset/sigignore set dispositions. */
EXPORT int sighold(int sig) {
  typedef int (*fn_t)(int);
  static fn_t next;
  if (next == NULL) next = TRAP_NEXT(fn_t, "sighold");
  if (trap_guards(sig)) return 0;
  return next(sig);
}
EXPORT sighandler_t sigset(int sig, sighandler_t disp) {
  static trap_signal_fn next;
  if (next == NULL) next = TRAP_NEXT(trap_signal_fn, "sigset");
  sighandler_t old;
  if (disp != SIG_HOLD && trap_set_handler(sig, disp, 0, &old)) return old;
  if (disp == SIG_HOLD && trap_guards(sig)) {
    /* Not blocked; the disposition stays, and is returned. */
    struct sigaction cur;
    int r;
    if (!evshim_kept_sigaction(sig, NULL, &cur, &r)) r = TRAP_NEXT(trap_sigaction_fn, "sigaction")(sig, NULL, &cur);
    return r == 0 ? cur.sa_handler : SIG_ERR;
  }
  return next(sig, disp);
}
EXPORT int sigignore(int sig) {
  typedef int (*fn_t)(int);
  static fn_t next;
  if (next == NULL) next = TRAP_NEXT(fn_t, "sigignore");
  sighandler_t old;
  if (trap_set_handler(sig, SIG_IGN, 0, &old)) return old == SIG_ERR ? -1 : 0;
  return next(sig);
}
EXPORT sighandler_t sysv_signal(int sig, sighandler_t handler) {
  static trap_signal_fn next;
  if (next == NULL) next = TRAP_NEXT(trap_signal_fn, "sysv_signal");
  sighandler_t old;
  if (trap_set_handler(sig, handler, SA_RESETHAND | SA_NODEFER, &old)) return old;
  return next(sig, handler);
}

/* glibc's bsd_signal is signal(): the library's signal() (the including file
 * defines it through its sigaction()). */
EXPORT sighandler_t bsd_signal(int sig, sighandler_t handler) { return signal(sig, handler); }

#endif
