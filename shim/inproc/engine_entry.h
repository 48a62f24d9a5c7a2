/*
 * The one entry of libevshim-engine.so (issue 15, docs/design.md "The
 * in-process fast path"), called by the foreign libraries instead of the
 * foreign system call. C, so the libraries stay C.
 */
#ifndef EVSHIM_ENGINE_ENTRY_H
#define EVSHIM_ENGINE_ENTRY_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Serves foreign call `nr` (the x86_64 number the library would issue, see
 * abi/syscall_table.cc) with the six argument registers `args` (LP64).
 * *handled = 0: not served here (supervised mode, EVSHIM_SUPERVISED=1; or a
 * descriptor that is not one of this process's in-process objects): the
 * library issues the system call. *handled = 1: the call's result, with
 * syscall(2)'s convention (-1 and errno on failure).
 */
long evshim_engine_call(int nr, const long args[6], int *handled);

/*
 * Makes the readiness of this process's in-process objects current: every
 * watched descriptor that became ready, every due deadline and counted
 * signal is applied, and each port or kqueue descriptor gets (or loses) its
 * byte, so the program's own poll()/select()/epoll on it sees what happened
 * before (shim/foreign/poll_settle.h; docs/abi.md §10). Returns 1 when done
 * here (or nothing to do: no engine yet, or called from a signal handler
 * that interrupted this thread inside the engine), 0 in supervised mode:
 * the library then asks the supervisor. The libraries' poll family uses
 * evshim_engine_poll_begin (below), which settles and counts the poller.
 */
int evshim_engine_settle(void);

/*
 * Copies `n` bytes of the program's memory at `src` to `dst` for a library
 * that reads a call's argument itself before the call (the kqueue library's
 * change-list hints and timeout conversion): 0 when copied, -1 (errno
 * unchanged) when `src` is not readable, never SIGSEGV. The library then
 * passes the bad pointer on, and the call answers EFAULT as the foreign
 * kernel's copyin would. The caller's stack directly; elsewhere the engine's
 * copy that survives a fault (docs/design.md), or process_vm_readv.
 */
int evshim_engine_read_program(void *dst, const void *src, size_t n);

/*
 * The calling thread's own stack, [*low, *high): mapped readable and
 * writable for as long as the thread lives, the bounds the engine's own
 * reads use (evshim_engine_read_program). *low == *high when it cannot be
 * told. The kqueue library asks once per thread, then copies a change list
 * or timeout that lies on that stack above its own frame without this
 * library's call (docs/design.md "Instructions per event", s39).
 */
void evshim_engine_thread_stack(uintptr_t *low, uintptr_t *high);

/*
 * Around each of the program's poll-family calls (shim/foreign/poll_settle.h)
 * in a process with objects: begin before the call, end after it with the
 * token begin returned. While a thread is between the two, a readable
 * object's descriptor has its byte at once; outside, the byte is owed and
 * sent when a poller comes (docs/design.md "The readiness byte on demand").
 * `involved`: the call names an object's descriptor (or an epoll holding
 * one): the readiness is settled first, as evshim_engine_settle.
 * The token: EVSHIM_POLL_SETTLED when the settle was done here (or there was
 * nothing to do), 0 in supervised mode (the library then asks the
 * supervisor); EVSHIM_POLL_COUNTED: the thread was counted.
 */
#define EVSHIM_POLL_COUNTED 1
#define EVSHIM_POLL_SETTLED 2
int evshim_engine_poll_begin(int involved);
void evshim_engine_poll_end(int token);

/*
 * The program gives `fd`, a descriptor the library marked, to
 * epoll_ctl(EPOLL_CTL_ADD): an object there keeps its byte exact from then
 * on (whatever waits on that epoll may do so without the library).
 */
void evshim_engine_epoll_add(int fd);

/*
 * Called by the libraries' exec wrappers just before the new image
 * replaces this one: with a supervisor present, each in-process event port
 * that the new image keeps (a descriptor without FD_CLOEXEC) moves to the
 * supervisor, as at fork (docs/design.md "Moving a port at fork"), so it
 * outlives this image's engine. Nothing otherwise (and nothing in a vfork
 * child).
 */
void evshim_engine_before_exec(void);

/*
 * Called by the libraries' wrappers of the calls that start a child which
 * execs while this process goes on (posix_spawn, posix_spawnp, system,
 * popen, vfork), in the parent, before the child exists: with a supervisor
 * present, each in-process event port the child keeps (a descriptor without
 * FD_CLOEXEC) moves to the supervisor, as at fork, and the process's timers
 * follow (its timer calls go there from then on). Nothing otherwise.
 */
void evshim_engine_before_spawn(void);

/*
 * Called by the libraries' sendmsg wrapper before a message passes the
 * descriptors `fds` (SCM_RIGHTS): each that is an in-process event port
 * moves to the supervisor (with a supervisor present), because the
 * receiving process shares the port from then on.
 */
void evshim_engine_before_send_fds(const int *fds, int count);

/*
 * Descriptor numbers of this process may name other files from now on:
 * the libraries' close_range and closefrom wrappers call it once the call
 * returned (and fclose, pclose of a stream without a number; the other
 * closes name theirs: evshim_engine_fd_closed_at below). Identity answers the engine kept
 * across calls (which object a port or kqueue descriptor is; whether a
 * watched number still names its file) are checked again after it.
 * Async-signal-safe (one atomic add), callable before any engine exists.
 */
void evshim_engine_fd_closed(void);
/* The same for the one number `fd` the library closed or replaced (close,
 * dup2, dup3): only what the engine kept about that number is checked
 * again. Async-signal-safe (atomic operations), callable before any
 * engine exists. */
void evshim_engine_fd_closed_at(int fd);

/*
 * For tests (the foreign libraries never call it): how many retrievals this
 * process's engine answered by its two hand-overs since it was made, a
 * port_get/port_getn from the one report its own look kept for it
 * (EventPorts::OfferHandOver) and a kevent from the one knote its own
 * change measured ready (Kqueues::HandOver). Both answer as the queued path
 * would, so only these counts tell the roads apart. Returns 0 and zeros
 * when no engine serves this process (supervised mode, or no call yet).
 */
struct evshim_engine_hand_over_counts {
  unsigned long long port_retrievals;
  unsigned long long kevents;
};
int evshim_engine_hand_overs(struct evshim_engine_hand_over_counts *counts);

/* The libraries' form of it: 1 and the result in *r when served here, 0
 * when the library must issue the system call. */
static inline int evshim_engine_try(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
                                    long *r) {
  const long args[6] = {a0, a1, a2, a3, a4, a5};
  int handled = 0;
  long v = evshim_engine_call((int)nr, args, &handled);
  if (handled) *r = v;
  return handled;
}

#ifdef __cplusplus
}
#endif

#endif
