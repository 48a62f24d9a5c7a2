/*
 * Raw foreign system calls in fast mode (issue 15 item 4; docs/design.md
 * "Raw foreign calls in fast mode: the trap"). A program that issues the
 * foreign numbers itself (portfs, kevent, the illumos timer calls) would
 * reach the supervisor, which does not know the engine's objects. So the
 * engine adds a second seccomp filter that answers SECCOMP_RET_TRAP for the
 * x86_64 foreign numbers (TRAP outranks the launcher's USER_NOTIF), and
 * serves the call in its SIGSYS handler, writing the result into RAX.
 *
 * The libraries' own calls to the supervisor must pass that filter: they go
 * through one `syscall` instruction at a fixed address (the same in every
 * image, so an exec'd image's calls pass the filter it inherited), which is
 * the only place the filter lets the foreign numbers through.
 *
 * C, so the foreign libraries (shim/foreign/illumos/port.c, shim/foreign/bsd/kqueue.c)
 * use it; exported from libevshim-engine.so (engine.map).
 */
#ifndef EVSHIM_INPROC_TRAP_H
#define EVSHIM_INPROC_TRAP_H

#include <signal.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 while this process's foreign calls are trapped (the filter is on it and
 * the engine's SIGSYS handler is installed). */
int evshim_trap_active(void);

/*
 * A foreign system call meant for the supervisor, passing the trap (the
 * libraries' fallback: supervised mode, or an object that is not the
 * engine's). syscall(2)'s convention: -1 and errno on failure. ENOSYS when
 * the trap is active but its gate could not be mapped in this image
 * (docs/abi.md §10).
 */
long evshim_supervisor_syscall(long nr, long a0, long a1, long a2, long a3, long a4, long a5);

/*
 * The program's disposition of a signal the engine keeps: SIGSYS while the
 * trap is active, SIGSEGV and SIGBUS while the fault copy is on
 * (docs/design.md "A copy that survives a fault"). The engine's handler
 * stays installed and calls the program's for every such signal that is not
 * the engine's own (a kill(2), another seccomp filter, a fault outside the
 * engine's copy). Returns 1 and stores the result in *r (0, or -1 and
 * errno) when it took the call; 0 when `sig` is not kept now (the caller
 * passes the call to libc).
 */
int evshim_kept_sigaction(int sig, const struct sigaction *act, struct sigaction *oldact, int *r);

/* Removes from `set` the signals the program may not block: SIGSYS while
 * the trap is active or may come (a blocked forced SIGSYS kills the
 * process), SIGSEGV and SIGBUS while the fault copy may be on (a fault on
 * a blocked one kills the process, whatever its handler). */
void evshim_trap_unblock(sigset_t *set);

#ifdef __cplusplus
}
#endif

#endif
