/*
 * evshim: the illumos event-port library. Each function issues the portfs
 * system call the way illumos libc does (event_port.c), and turns evshim's
 * Linux-convention result (docs/abi.md) into the illumos API's.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <time.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "evshim_portfs.h"
#include "port.h"

#define EXPORT __attribute__((visibility("default")))

/*
 * On LP64 the upper half of the opcode register carries a per-thread call
 * number (illumos reads the opcode as an int, so those bits are free). When a
 * signal with SA_RESTART interrupts a wait, Linux re-issues the same call;
 * the identical call number tells the supervisor it is a restart, which
 * illumos never does: it answers EINTR (docs/abi.md "Signals").
 */
#if defined(__x86_64__)
static __thread unsigned call_seq;
#endif

/*
 * Fast mode (the default; docs/design.md "The in-process fast path"): the
 * call is served inside this process by libevshim-engine, unless
 * EVSHIM_SUPERVISED=1 or the port is not one of the engine's (a port made by
 * a raw portfs call belongs to the supervisor): then the system call goes
 * out as before. x86_64 and i386 (build32 builds an i386 engine).
 */
#if defined(__SANITIZE_THREAD__)
#define NOT_TSAN_INSTRUMENTED __attribute__((no_sanitize("thread")))
#else
#define NOT_TSAN_INSTRUMENTED
#endif
/* Inlined into each API function, so `evshim trace --sites` tells them apart:
 * the portfs helpers below, and fast_call too (its call into the engine is
 * the site in fast mode; -O2 inlines it anyway, -O1 would not: the ASan
 * build, docs/ci.md). */
#define CALL_SITE __attribute__((always_inline)) inline

#if defined(EVSHIM_FAST_PATH)
#include "engine_entry.h"
static CALL_SITE int fast_call(long nr, long a0, long a1, long a2, long a3, long a4, long a5, long *r) {
  return evshim_engine_try(nr, a0, a1, a2, a3, a4, a5, r);
}
/* Raw foreign calls of the program are trapped and served by the engine;
 * this library's calls for the supervisor pass the trap (SUPERVISOR_SYSCALL)
 * and SIGSYS stays the trap's (the signal wrappers). */
#include "trap_library.h"
#define HAS_TRAP 1
#else
static CALL_SITE int fast_call(long nr, long a0, long a1, long a2, long a3, long a4, long a5, long *r) {
  (void)nr, (void)a0, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)r;
  return 0;
}
#define SUPERVISOR_SYSCALL(nr, a0, a1, a2, a3, a4, a5) syscall(nr, a0, a1, a2, a3, a4, a5)
#endif

/* A foreign call without the call-number protocol (the timer calls). */
static long foreign_call(long nr, long a0, long a1, long a2, long a3) {
  long r;
  if (fast_call(nr, a0, a1, a2, a3, 0, 0, &r)) return r;
  return SUPERVISOR_SYSCALL(nr, a0, a1, a2, a3, 0, 0);
}

static CALL_SITE long portfs_once(long op, long a0, long a1, long a2, long a3, long a4) {
  return SUPERVISOR_SYSCALL(EVSHIM_SYS_portfs, op, a0, a1, a2, a3, a4); /* -1 and errno on error */
}

static long with_call_number(long op) {
#if defined(__x86_64__)
  call_seq += 2;
  op |= (long)((unsigned long)(call_seq | 1) << 32);
#endif
  return op;
}

/*
 * A wait (port_get/port_getn) returns EINTR when a signal interrupts it. But
 * the kernel can drop a reply it already accepted when a signal breaks the
 * wait at that moment, so on EINTR the library asks once more, with the
 * probe bit: the supervisor answers with the result it had sent (the events
 * are already in the buffer), or ECANCELED if the wait was really
 * interrupted (docs/abi.md "Call numbers").
 */
static CALL_SITE long portfs_wait(long op, long a0, long a1, long a2, long a3, long a4) {
  long r;
  /* In-process, an interrupted wait is simply EINTR: no reply to lose. */
  if (fast_call(EVSHIM_SYS_portfs, op, a0, a1, a2, a3, a4, &r)) return r;
  op = with_call_number(op);
  r = portfs_once(op, a0, a1, a2, a3, a4);
#if defined(__x86_64__)
  if (r == -1 && errno == EINTR) {
    long probe = (long)((unsigned long)op | (1ul << 63));
    do r = portfs_once(probe, a0, a1, a2, a3, a4);
    while (r == -1 && errno == EINTR);
    if (r == -1 && errno == ECANCELED) errno = EINTR;
  }
#endif
  return r;
}

/*
 * The other calls never fail with EINTR on illumos. Under evshim a signal can
 * interrupt the round trip to the supervisor; the call is then re-issued with
 * the same call number, and the supervisor answers it with the outcome the
 * first attempt had (it never applies a call twice).
 */
static CALL_SITE long portfs(long op, long a0, long a1, long a2, long a3, long a4) {
  long r;
  if (fast_call(EVSHIM_SYS_portfs, op, a0, a1, a2, a3, a4, &r)) return r;
  op = with_call_number(op);
  do r = portfs_once(op, a0, a1, a2, a3, a4);
  while (r == -1 && errno == EINTR);
  return r;
}

/* poll()/select()/epoll on a port descriptor (shim/foreign/poll_settle.h):
 * supervised, the private request is a PORT_EVSHIM_SETTLE call, whose
 * answer comes after the supervisor applied all readiness. */
#define SETTLE_SUPERVISED() ((void)portfs(EVSHIM_PORT_SETTLE | EVSHIM_PORT_SYS_NOPORT, 0, 0, 0, 0, 0))
#include "poll_settle.h"

/* Linux <poll.h> bits -> illumos bits at the syscall boundary, and back. */
static int poll_to_illumos(int ev) {
  int out = ev & 0x00ff;
  if (ev & POLLWRNORM) out |= POLLOUT;
#ifdef POLLWRBAND
  if (ev & POLLWRBAND) out |= EVSHIM_ILLUMOS_POLLWRBAND;
#endif
#ifdef POLLRDHUP
  if (ev & POLLRDHUP) out |= EVSHIM_ILLUMOS_POLLRDHUP;
#endif
  return out;
}

static int poll_from_illumos(int ev) {
  int out = ev & 0x00ff;
#ifdef POLLWRBAND
  if (ev & EVSHIM_ILLUMOS_POLLWRBAND) out |= POLLWRBAND;
#endif
#ifdef POLLRDHUP
  if (ev & EVSHIM_ILLUMOS_POLLRDHUP) out |= POLLRDHUP;
#endif
  return out;
}

/*
 * evshim timers are handed out as tagged timer_t values, so the timer_*
 * functions below can tell them from glibc's (kernel ids or pointers, never
 * this pattern).
 */
#if defined(__x86_64__)
#define TIMER_TAG 0x7e5e000000000000ull
#define TIMER_TAG_MASK 0xffff000000000000ull
#else
#define TIMER_TAG 0xfe5e0000ul
#define TIMER_TAG_MASK 0xffff0000ul
#endif

static timer_t timer_from_id(int id) { return (timer_t)(uintptr_t)(TIMER_TAG | (unsigned)id); }

static int timer_to_id(timer_t t, int *id) {
  uintptr_t v = (uintptr_t)t;
  if ((v & TIMER_TAG_MASK) != TIMER_TAG) return 0;
  *id = (int)(v & 0xffff);
  return 1;
}

static void fix_event(port_event_t *pe) {
  if (pe->portev_source == PORT_SOURCE_FD) pe->portev_events = poll_from_illumos(pe->portev_events);
  /* illumos's object is the timer id; the program knows its timer_t. */
  if (pe->portev_source == PORT_SOURCE_TIMER) pe->portev_object = (uintptr_t)timer_from_id((int)pe->portev_object);
}

static void fix_events(port_event_t *pe, unsigned n) {
  for (unsigned i = 0; i < n; i++) fix_event(&pe[i]);
}

EXPORT int port_create(void) {
  int port = (int)portfs(EVSHIM_PORT_CREATE | EVSHIM_PORT_SYS_NOPORT, 0, 0, 0, 0, 0);
  if (port >= 0) settle_note_object(port);
  return port;
}

/*
 * port_close_fd (illumos port.c:164-169): closing a descriptor removes the
 * associations made through it. The supervisor does not see close(), and
 * when the same open file comes back at the same number (dup2 back,
 * SCM_RIGHTS) nothing tells it the close happened. So close(), dup2() and
 * dup3() are interposed here: closing a number this process associated
 * first tells the supervisor (EVSHIM_PORT_FD_CLOSING). The numbers are kept
 * as a hint bitmap, so every other close costs one bit test; a stale bit
 * costs one call. The closes inside libc (fclose, pclose, closedir,
 * close_range, closefrom) report the same way (poll_settle.h); raw close
 * syscalls and an exec'd image are not seen (docs/design.md "Closing an
 * associated descriptor").
 */
#define FD_HINT_BITS 65536
#define FD_HINT_WORD_BITS (8 * sizeof(unsigned long))
static unsigned long fd_hint[FD_HINT_BITS / FD_HINT_WORD_BITS];
static int fd_hint_high; /* a number beyond the bitmap was associated */

static void hint_associated(uintptr_t fd) {
  if (fd >= FD_HINT_BITS) {
    __atomic_store_n(&fd_hint_high, 1, __ATOMIC_RELAXED);
    return;
  }
  __atomic_fetch_or(&fd_hint[fd / FD_HINT_WORD_BITS], 1ul << (fd % FD_HINT_WORD_BITS), __ATOMIC_RELAXED);
}

static void report_closing(int fd) {
  if (fd < 0) return;
  int hinted;
  if (fd >= FD_HINT_BITS) {
    hinted = __atomic_load_n(&fd_hint_high, __ATOMIC_RELAXED);
  } else {
    unsigned long bit = 1ul << ((unsigned)fd % FD_HINT_WORD_BITS);
    hinted = (__atomic_load_n(&fd_hint[(unsigned)fd / FD_HINT_WORD_BITS], __ATOMIC_RELAXED) & bit) != 0;
    /* A vfork child's close is not its parent's (poll_settle.h,
     * settle_memory_pid): no report, the parent's bit stays. */
    if (!hinted || settle_in_memory_sharing_child()) return;
    hinted = (__atomic_fetch_and(&fd_hint[(unsigned)fd / FD_HINT_WORD_BITS], ~bit, __ATOMIC_RELAXED) & bit) != 0;
  }
  if (!hinted || (fd >= FD_HINT_BITS && settle_in_memory_sharing_child())) return;
  int saved = errno;
  (void)portfs(EVSHIM_PORT_FD_CLOSING | EVSHIM_PORT_SYS_NOPORT, fd, 0, 0, 0, 0);
  errno = saved;
}

/* The hinted numbers a close_range or closefrom closes (poll_settle.h). */
static void report_closing_range(unsigned first, unsigned last) {
  fd_walk_each_hinted(fd_hint, FD_HINT_BITS, &fd_hint_high, first, last, report_closing);
}

EXPORT int port_associate(int port, int source, uintptr_t object, int events, void *user) {
  if (source == PORT_SOURCE_FD) {
    events = poll_to_illumos(events);
    hint_associated(object);  /* before the call: an association never lacks its bit */
  }
  return (int)portfs(EVSHIM_PORT_ASSOCIATE, port, source, (long)object, events, (long)user);
}

EXPORT int port_dissociate(int port, int source, uintptr_t object) {
  return (int)portfs(EVSHIM_PORT_DISSOCIATE, port, source, (long)object, 0, 0);
}

EXPORT int port_send(int port, int events, void *user) {
  return (int)portfs(EVSHIM_PORT_SEND, port, events, (long)user, 0, 0);
}

EXPORT int port_sendn(int ports[], int errors[], uint_t nent, int events, void *user) {
  uint_t done = 0;
  int total = 0;
  /* illumos libc sends lists above PORT_MAX_LIST in pieces (event_port.c). */
  do {
    uint_t chunk = nent - done > 8192 ? 8192 : nent - done;
    long r = portfs(EVSHIM_PORT_SENDN | EVSHIM_PORT_SYS_NOPORT, (long)(ports + done),
                    (long)(errors + done), chunk, events, (long)user);
    if (r < 0) return done == 0 ? -1 : total;
    total += (int)r;
    done += chunk;
  } while (done < nent);
  return total;
}

/* PORT_GETN's two results (docs/abi.md §3): the count and whether ETIME. */
static unsigned getn_count(long r, int *etime) {
  unsigned long v = (unsigned long)r;
#if defined(__x86_64__)
  *etime = (int)(v >> 32) == ETIME;
  return (unsigned)(v & 0xffffffffu);
#else
  *etime = (v & EVSHIM_PORT_ILP32_ETIME_BIT) != 0;
  return (unsigned)(v & ~EVSHIM_PORT_ILP32_ETIME_BIT);
#endif
}

EXPORT int port_get(int port, port_event_t *pe, struct timespec *timeout) {
  if (timeout != NULL && timeout->tv_sec == 0 && timeout->tv_nsec == 0) {
    /*
     * A zero timeout with nothing queued succeeds and leaves *pe untouched
     * (port.c:614-619, 1284-1285, 1539-1543: no copyout), and PORT_GET's
     * result is 0 either way, so the library could not tell whether *pe
     * holds a new event to translate. It asks PORT_GETN for one event
     * instead, which returns the count: PORT_GET is port_getn with one
     * event (port.c:614-617; PORTGET_ONE changes nothing else), and a zero
     * timeout never ends in ETIME (docs/abi.md §3).
     */
    static const struct timespec zero = {0, 0};
    long r = portfs_wait(EVSHIM_PORT_GETN, port, (long)pe, 1, 1, (long)&zero);
    if (r == -1) return -1;
    int etime;
    if (getn_count(r, &etime) == 1 && pe != NULL) fix_event(pe);
    return 0;
  }
  long sec = timeout ? (long)timeout->tv_sec : 0;
  long nsec = timeout ? timeout->tv_nsec : 0;
  long r = portfs_wait(EVSHIM_PORT_GET, port, (long)pe, sec, nsec, (long)timeout);
  if (r < 0) return -1;
  /* Success with a timeout other than zero, or none, always wrote an event. */
  if (pe != NULL) fix_event(pe);
  return 0;
}

EXPORT int port_getn(int port, port_event_t list[], uint_t max, uint_t *nget, struct timespec *timeout) {
  if (nget == NULL) {
    errno = EINVAL;
    return -1;
  }
  long r = portfs_wait(EVSHIM_PORT_GETN, port, (long)list, max, *nget, (long)timeout);
  if (r == -1) return -1; /* a hard error: *nget is not updated (event_port.c) */
  int etime;
  unsigned count = getn_count(r, &etime);
  *nget = count;
  if (max != 0 && list != NULL) fix_events(list, count);
  if (etime) {
    errno = ETIME;
    return -1;
  }
  return 0;
}

EXPORT int port_alert(int port, int flags, int events, void *user) {
  return (int)portfs(EVSHIM_PORT_ALERT, port, flags, events, (long)user, 0);
}

/* ---- timers: SIGEV_PORT through the illumos timer calls, the rest to glibc ---- */

/* illumos struct sigevent (sys/siginfo.h); natural alignment gives the
 * illumos layout for both data models (40 / 24 bytes). */
struct illumos_sigevent { /* glibc's <signal.h> defines the field names as macros */
  int notify;
  int signo;
  void *value;
  void *notify_function;
  void *notify_attributes;
  int pad2;
};

/* Linux clock ids to illumos's (sys/time_impl.h). */
static int clock_to_illumos(clockid_t c) {
  switch (c) {
    case CLOCK_REALTIME: return 3;
    case CLOCK_MONOTONIC: return 4; /* CLOCK_HIGHRES */
    case CLOCK_PROCESS_CPUTIME_ID: return 5;
    case CLOCK_THREAD_CPUTIME_ID: return 2;
    default: return 6; /* not a clock: EINVAL */
  }
}

/* glibc's own function of that name (ISO C cannot cast void * to a function). */
typedef void (*any_fn)(void);
static any_fn next_fn(const char *name) {
  void *p = dlsym(RTLD_NEXT, name);
  any_fn f;
  memcpy(&f, &p, sizeof f);
  return f;
}
#define NEXT(name, type) ((type)next_fn(name))

EXPORT int timer_create(clockid_t clock, struct sigevent *sev, timer_t *tid) {
  if (sev == NULL || sev->sigev_notify != SIGEV_PORT) {
    int (*next)(clockid_t, struct sigevent *, timer_t *) =
        NEXT("timer_create", int (*)(clockid_t, struct sigevent *, timer_t *));
    if (next == NULL) {
      errno = ENOSYS;
      return -1;
    }
    return next(clock, sev, tid);
  }
  struct illumos_sigevent ise = {4 /* illumos SIGEV_PORT */, 0, sev->sigev_value.sival_ptr, NULL, NULL, 0};
  int id = -1;
  if (foreign_call(EVSHIM_SYS_timer_create, clock_to_illumos(clock), (long)&ise, (long)&id, 0) != 0) return -1;
  *tid = timer_from_id(id);
  return 0;
}

EXPORT int timer_delete(timer_t t) {
  int id;
  if (!timer_to_id(t, &id)) return NEXT("timer_delete", int (*)(timer_t))(t);
  return (int)foreign_call(EVSHIM_SYS_timer_delete, id, 0, 0, 0);
}

EXPORT int timer_settime(timer_t t, int flags, const struct itimerspec *value, struct itimerspec *ovalue) {
  int id;
  if (!timer_to_id(t, &id))
    return NEXT("timer_settime", int (*)(timer_t, int, const struct itimerspec *, struct itimerspec *))(
        t, flags, value, ovalue);
  return (int)foreign_call(EVSHIM_SYS_timer_settime, id, flags, (long)value, (long)ovalue);
}

EXPORT int timer_gettime(timer_t t, struct itimerspec *value) {
  int id;
  if (!timer_to_id(t, &id)) return NEXT("timer_gettime", int (*)(timer_t, struct itimerspec *))(t, value);
  return (int)foreign_call(EVSHIM_SYS_timer_gettime, id, (long)value, 0, 0);
}

EXPORT int timer_getoverrun(timer_t t) {
  int id;
  if (!timer_to_id(t, &id)) return NEXT("timer_getoverrun", int (*)(timer_t))(t);
  return (int)foreign_call(EVSHIM_SYS_timer_getoverrun, id, 0, 0, 0);
}

/* The close side of port_close_fd (see report_closing). */
typedef int (*close_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);

EXPORT int close(int fd) {
  static close_fn next_close;
  close_fn next = __atomic_load_n(&next_close, __ATOMIC_RELAXED);
  if (next == NULL) {
    next = NEXT("close", close_fn);
    __atomic_store_n(&next_close, next, __ATOMIC_RELAXED);
  }
  report_closing(fd);
  settle_note_close(fd);
  const int r = next == NULL ? (int)syscall(SYS_close, fd) : next(fd);
  settle_note_closed_at(fd);
  return r;
}

/* dup2/dup3 close `newfd` only when `oldfd` is open and differs from it. */
static void report_replaced(int oldfd, int newfd) {
  if (oldfd != newfd && newfd >= 0 && fcntl(oldfd, F_GETFD) != -1) report_closing(newfd);
}

EXPORT int dup2(int oldfd, int newfd) {
  static dup2_fn next_dup2;
  dup2_fn next = __atomic_load_n(&next_dup2, __ATOMIC_RELAXED);
  if (next == NULL) {
    next = NEXT("dup2", dup2_fn);
    __atomic_store_n(&next_dup2, next, __ATOMIC_RELAXED);
  }
  report_replaced(oldfd, newfd);
  int r = next == NULL ? (int)syscall(SYS_dup2, oldfd, newfd) : next(oldfd, newfd);
  if (r >= 0) settle_note_dup(oldfd, r);
  settle_note_closed_at(newfd);
  return r;
}

EXPORT int dup3(int oldfd, int newfd, int flags) {
  static dup3_fn next_dup3;
  dup3_fn next = __atomic_load_n(&next_dup3, __ATOMIC_RELAXED);
  if (next == NULL) {
    next = NEXT("dup3", dup3_fn);
    __atomic_store_n(&next_dup3, next, __ATOMIC_RELAXED);
  }
  report_replaced(oldfd, newfd);
  int r = next == NULL ? (int)syscall(SYS_dup3, oldfd, newfd, flags) : next(oldfd, newfd, flags);
  if (r >= 0) settle_note_dup(oldfd, r);
  settle_note_closed_at(newfd);
  return r;
}

#if defined(HAS_TRAP)
/*
 * Rule 35 in fast mode: a port the new image keeps (a descriptor without
 * FD_CLOEXEC) must outlive this image's engine, so it moves to the
 * supervisor just before exec, as at fork (evshim_engine_before_exec;
 * docs/design.md "Moving a port at fork"). Every exec entry of glibc is
 * wrapped: glibc's execl/execv/execvp call its internal execve, not ours.
 * A child started while this process goes on (posix_spawn, system, popen,
 * vfork: glibc's system and popen spawn with its internal posix_spawn, and a
 * vfork child's exec cannot move what its parent's engine serves) is
 * prepared in the parent before it exists (evshim_engine_before_spawn),
 * which also takes the process's timers along, so they stay reachable.
 */
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);
typedef int (*fexecve_fn)(int, char *const[], char *const[]);
typedef int (*execveat_fn)(int, const char *, char *const[], char *const[], int);
typedef int (*spawn_fn)(pid_t *, const char *, const posix_spawn_file_actions_t *, const posix_spawnattr_t *,
                        char *const[], char *const[]);
extern char **environ;

EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
  evshim_engine_before_exec();
  execve_fn next = NEXT("execve", execve_fn);
  if (next == NULL) return (int)syscall(SYS_execve, path, argv, envp);
  return next(path, argv, envp);
}
EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
EXPORT int execvpe(const char *file, char *const argv[], char *const envp[]) {
  evshim_engine_before_exec();
  execvpe_fn next = NEXT("execvpe", execvpe_fn);
  if (next == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return next(file, argv, envp);
}
EXPORT int execvp(const char *file, char *const argv[]) { return execvpe(file, argv, environ); }
EXPORT int fexecve(int fd, char *const argv[], char *const envp[]) {
  evshim_engine_before_exec();
  fexecve_fn next = NEXT("fexecve", fexecve_fn);
  if (next == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return next(fd, argv, envp);
}
EXPORT int execveat(int dirfd, const char *path, char *const argv[], char *const envp[], int flags) {
  evshim_engine_before_exec();
  execveat_fn next = NEXT("execveat", execveat_fn);
  if (next == NULL) return (int)syscall(SYS_execveat, dirfd, path, argv, envp, flags);
  return next(dirfd, path, argv, envp, flags);
}
EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
                       const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  evshim_engine_before_spawn();
  spawn_fn next = NEXT("posix_spawn", spawn_fn);
  if (next == NULL) return ENOSYS;
  return next(pid, path, actions, attr, argv, envp);
}
EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
                        const posix_spawnattr_t *attr, char *const argv[], char *const envp[]) {
  evshim_engine_before_spawn();
  spawn_fn next = NEXT("posix_spawnp", spawn_fn);
  if (next == NULL) return ENOSYS;
  return next(pid, file, actions, attr, argv, envp);
}

typedef int (*system_fn)(const char *);
typedef FILE *(*popen_fn)(const char *, const char *);
EXPORT int system(const char *command) {
  if (command != NULL) evshim_engine_before_spawn(); /* system(NULL) runs no command of the program's */
  system_fn next = NEXT("system", system_fn);
  if (next == NULL) {
    errno = ENOSYS;
    return -1;
  }
  return next(command);
}
EXPORT FILE *popen(const char *command, const char *type) {
  evshim_engine_before_spawn();
  popen_fn next = NEXT("popen", popen_fn);
  if (next == NULL) {
    errno = ENOSYS;
    return NULL;
  }
  return next(command, type);
}

/*
 * vfork cannot be wrapped by a C function: its child returns through the
 * wrapper's frame and reuses that stack before the parent returns through
 * it. So vfork is a stub that calls evshim_prepare_vfork (which prepares the
 * child's ports as above and returns glibc's vfork) with the stack as the
 * caller left it, and jumps there. The child then runs in this process's
 * memory as with glibc's own vfork.
 */
static pid_t vfork_by_fork(void) { return fork(); } /* no next vfork found */
__attribute__((used, visibility("hidden"))) void *evshim_prepare_vfork(void);
__attribute__((used, visibility("hidden"))) void *evshim_prepare_vfork(void) {
  static void *next;
  evshim_engine_before_spawn();
  void *f = __atomic_load_n(&next, __ATOMIC_ACQUIRE);
  if (f == NULL) {
    f = dlsym(RTLD_NEXT, "vfork");
    if (f == NULL) {
      pid_t (*fallback)(void) = vfork_by_fork;
      memcpy(&f, &fallback, sizeof f);
    }
    __atomic_store_n(&next, f, __ATOMIC_RELEASE);
  }
  return f;
}
#if defined(__CET__)
#define VFORK_LANDING_PAD_64 "endbr64\n"
#define VFORK_LANDING_PAD_32 "endbr32\n"
#else
#define VFORK_LANDING_PAD_64 ""
#define VFORK_LANDING_PAD_32 ""
#endif
#if defined(__x86_64__)
/* The call keeps the stack 16-byte aligned (8 below the return address). */
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        "vfork:\n" VFORK_LANDING_PAD_64
        "  subq $8, %rsp\n"
        "  call evshim_prepare_vfork\n"
        "  addq $8, %rsp\n"
        "  jmp *%rax\n"
        ".size vfork, .-vfork\n");
#elif defined(__i386__)
__asm__(".text\n"
        ".globl vfork\n"
        ".type vfork, @function\n"
        "vfork:\n" VFORK_LANDING_PAD_32
        "  subl $12, %esp\n"
        "  call evshim_prepare_vfork\n"
        "  addl $12, %esp\n"
        "  jmp *%eax\n"
        ".size vfork, .-vfork\n");
#endif

/*
 * A port passed to another process (SCM_RIGHTS) is shared from then on:
 * it moves to the supervisor before the message goes (rule 34 as at fork;
 * docs/design.md "Moving a port at fork"). Only descriptors this library
 * returned as objects are looked at (settle_marked: a bit test), so a
 * sendmsg without them costs a few loads.
 */
static void before_passing(const struct msghdr *msg) {
  if (msg == NULL || msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr)) return;
  if (!settle_anything()) return;
  int batch[64];
  int n = 0;
  for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    const unsigned char *data = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, data + i * sizeof fd, sizeof fd);
      if (!settle_marked(fd)) continue;
      batch[n++] = fd;
      if (n == (int)(sizeof batch / sizeof batch[0])) {
        evshim_engine_before_send_fds(batch, n);
        n = 0;
      }
    }
  }
  if (n > 0) evshim_engine_before_send_fds(batch, n);
}
typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*sendmmsg_fn)(int, struct mmsghdr *, unsigned int, int);
EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  static sendmsg_fn next_sendmsg;
  sendmsg_fn next = __atomic_load_n(&next_sendmsg, __ATOMIC_RELAXED);
  if (next == NULL) {
    next = NEXT("sendmsg", sendmsg_fn);
    __atomic_store_n(&next_sendmsg, next, __ATOMIC_RELAXED);
  }
  before_passing(msg);
  if (next == NULL) return syscall(SYS_sendmsg, fd, msg, flags);
  return next(fd, msg, flags);
}
EXPORT int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int count, int flags) {
  static sendmmsg_fn next_sendmmsg;
  sendmmsg_fn next = __atomic_load_n(&next_sendmmsg, __ATOMIC_RELAXED);
  if (next == NULL) {
    next = NEXT("sendmmsg", sendmmsg_fn);
    __atomic_store_n(&next_sendmmsg, next, __ATOMIC_RELAXED);
  }
  /* The kernel sends at most UIO_MAXIOV (1024) messages per call. */
  if (msgs != NULL) {
    for (unsigned int i = 0; i < count && i < 1024; i++) before_passing(&msgs[i].msg_hdr);
  }
  if (next == NULL) return (int)syscall(SYS_sendmmsg, fd, msgs, count, flags);
  return next(fd, msgs, count, flags);
}

/* The list forms collect their arguments (as glibc does, on the stack) and
 * take the vector forms above. */
static long count_list_args(const char *arg, va_list ap) {
  long n = 1;
  va_list c;
  va_copy(c, ap);
  if (arg != NULL) {
    while (va_arg(c, const char *) != NULL) {
      if (++n >= 1L << 20) break; /* more than any exec accepts: E2BIG below */
    }
  } else {
    n = 0;
  }
  va_end(c);
  return n;
}
#define COLLECT_LIST_ARGS(argv, n, arg, ap)                 \
  do {                                                      \
    (argv)[0] = (char *)(arg);                              \
    for (long i_ = 1; i_ <= (n); i_++) (argv)[i_] = va_arg((ap), char *); \
  } while (0)

EXPORT int execl(const char *path, const char *arg, ...) {
  va_list ap;
  va_start(ap, arg);
  long n = count_list_args(arg, ap);
  if (n >= 1L << 20) {
    va_end(ap);
    errno = E2BIG;
    return -1;
  }
  char *argv[n + 1];
  COLLECT_LIST_ARGS(argv, n, arg, ap); /* argv[n] is the terminating NULL */
  va_end(ap);
  return execve(path, argv, environ);
}
EXPORT int execlp(const char *file, const char *arg, ...) {
  va_list ap;
  va_start(ap, arg);
  long n = count_list_args(arg, ap);
  if (n >= 1L << 20) {
    va_end(ap);
    errno = E2BIG;
    return -1;
  }
  char *argv[n + 1];
  COLLECT_LIST_ARGS(argv, n, arg, ap);
  va_end(ap);
  return execvpe(file, argv, environ);
}
EXPORT int execle(const char *path, const char *arg, ...) {
  va_list ap;
  va_start(ap, arg);
  long n = count_list_args(arg, ap);
  if (n >= 1L << 20) {
    va_end(ap);
    errno = E2BIG;
    return -1;
  }
  char *argv[n + 1];
  COLLECT_LIST_ARGS(argv, n, arg, ap);
  char *const *envp = va_arg(ap, char *const *);
  va_end(ap);
  return execve(path, argv, envp);
}
#endif

#if defined(HAS_TRAP)
/* SIGSYS belongs to the trap, SIGSEGV and SIGBUS to the fault copy
 * (trap_library.h): while the engine holds one, the program's disposition
 * is kept for the deliveries that are not the engine's, and no handler's
 * mask holds them. */
NOT_TSAN_INSTRUMENTED EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
  return trap_sigaction(sig, act, oldact);
}

/* glibc's signal() is BSD signal(): SA_RESTART, handler kept. */
EXPORT sighandler_t signal(int sig, sighandler_t handler) { return trap_bsd_signal(sig, handler); }
#endif
