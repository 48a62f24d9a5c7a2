/*
 * poll()/select()/epoll on a port or kqueue descriptor sees the readiness
 * that happened before the call (issue 14 item 1; docs/abi.md §10 "poll()
 * on a port or kqueue descriptor"). The kernels activate an association or
 * a knote inside the wake-up of the watched file (illumos port.c:158-162;
 * DragonFly kern_event.c:1454-1556; OpenBSD kern_event.c:1298-1308), so
 * the port's or kqueue's poll state is current the moment the write returns.
 * Under evshim the descriptor is a socketpair end whose byte the engine or
 * the supervisor writes when it has looked at the watches. So the poll
 * family is interposed here: a call that involves an object descriptor
 * (directly, through a program epoll that holds one, or through a nested
 * port or kqueue, which is itself an object) first makes the readiness
 * current: in-process (evshim_engine_poll_begin, which settles) or,
 * supervised, with a private request whose answer comes after the
 * supervisor collected every ready watch and wrote the descriptors' bytes.
 * In fast mode every poll-family call of a process with an object, involved
 * or not, is also counted from before its settle to its return
 * (evshim_engine_poll_begin/end): the engine writes a descriptor's byte only
 * while some thread is counted, or for an object given to epoll_ctl(ADD),
 * and owes it otherwise (docs/design.md "The readiness byte on demand").
 *
 * Which descriptors are involved is a hint bitmap, as for close
 * (report_closing in the libraries): the library marks each object
 * descriptor it returns, its dup/dup2/dup3/fcntl(F_DUPFD) copies, and each
 * epoll that epoll_ctl(ADD) gave a marked descriptor; close() and a
 * replacing dup2/dup3 clear the number. A call involving no marked number
 * costs one load while the process has no object, and one bit test per
 * descriptor (a word test per 64 for select) afterwards. A stale bit costs
 * one settle; a descriptor the library never saw (made by a raw syscall,
 * received with SCM_RIGHTS, an object added to an epoll already inside
 * another epoll) is not settled: docs/abi.md §10.
 *
 * C, included once by each foreign library (shim/foreign/illumos/port.c,
 * shim/foreign/bsd/kqueue.c), which defines before including it:
 *   SETTLE_SUPERVISED()  issues the supervised mode's private request
 * and calls settle_note_object() for each object descriptor it returns,
 * settle_note_close() from its close(), settle_note_dup() from dup2/dup3
 * once they succeeded. The engine entry (engine_entry.h) is included by the
 * library when EVSHIM_FAST_PATH is set.
 */
#ifndef EVSHIM_POLL_SETTLE_H
#define EVSHIM_POLL_SETTLE_H

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <stdio.h>
#include <sys/select.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef SETTLE_SUPERVISED
#error "define SETTLE_SUPERVISED() before including poll_settle.h"
#endif

/* These run inside TSan's interceptors in a ThreadSanitizer build (its
 * poll interceptor's "real" poll is this one): no instrumentation. */
#if defined(__SANITIZE_THREAD__)
#define SETTLE_NO_TSAN __attribute__((no_sanitize("thread")))
#else
#define SETTLE_NO_TSAN
#endif
#define SETTLE_EXPORT __attribute__((visibility("default"))) SETTLE_NO_TSAN
/* Helpers one library may not use. */
#define SETTLE_FN static SETTLE_NO_TSAN __attribute__((unused))

#define SETTLE_BITS 65536
#define SETTLE_WORD_BITS (8 * sizeof(unsigned long))
static unsigned long settle_hint[SETTLE_BITS / SETTLE_WORD_BITS];
static int settle_high;  /* a number beyond the bitmap was marked */
static int settle_any;   /* some number was ever marked: else every call costs this one load */
/* Objects of the supervisor in a fast-mode process (a FreeBSD
 * KQUEUE_CPONFORK kqueue): those settle there too. */
static int settle_supervisor_objects;

SETTLE_FN void settle_mark(int fd) {
  if (fd < 0) return;
  __atomic_store_n(&settle_any, 1, __ATOMIC_RELAXED);
  if (fd >= SETTLE_BITS) {
    __atomic_store_n(&settle_high, 1, __ATOMIC_RELAXED);
    return;
  }
  __atomic_fetch_or(&settle_hint[(unsigned)fd / SETTLE_WORD_BITS], 1ul << ((unsigned)fd % SETTLE_WORD_BITS),
                    __ATOMIC_RELAXED);
}

/*
 * The process whose memory this library's state is in: set at load, and in
 * a fork child by an atfork handler. A vfork child (or any clone sharing
 * the memory: CLONE_VM) sees its parent's value, and so its parent's hint
 * bitmaps and engine, but has a descriptor table of its own (Linux's vfork,
 * as illumos's and the BSDs' vfork, copies the table): its closes are not
 * the parent's, so they must not drop the parent's associations or knotes
 * nor clear its hints. Asked only when a close meets a hinted number (a
 * getpid system call), so a plain close still costs one bit test.
 */
static int settle_memory_pid;

SETTLE_FN int settle_in_memory_sharing_child(void) {
  const int owner = __atomic_load_n(&settle_memory_pid, __ATOMIC_RELAXED);
  return owner != 0 && (int)syscall(SYS_getpid) != owner;
}

/*
 * Whether this process runs in the memory of the process the library's
 * state was recorded for: a vfork child (or a clone with CLONE_VM), as
 * opposed to a copy made without the atfork handler (a raw clone without
 * CLONE_VM), which settle_in_memory_sharing_child cannot tell apart from
 * it. Asked by kcmp(KCMP_VM) (two system calls, so only where a rare
 * call asks: close_range and closefrom); 0 when kcmp cannot answer (no
 * CONFIG_CHECKPOINT_RESTORE, a seccomp profile, another user's parent),
 * which only costs the parent's engine a check of what it kept.
 */
SETTLE_FN int settle_in_a_child_sharing_memory(void) {
  const int owner = __atomic_load_n(&settle_memory_pid, __ATOMIC_RELAXED);
  if (owner == 0) return 0;
  const long self = syscall(SYS_getpid);
  if (self == owner) return 0;
  return syscall(SYS_kcmp, self, (long)owner, (long)KCMP_VM, 0L, 0L) == 0;
}

static SETTLE_NO_TSAN void settle_record_memory_pid(void) {
  __atomic_store_n(&settle_memory_pid, (int)syscall(SYS_getpid), __ATOMIC_RELAXED);
}

__attribute__((constructor)) static SETTLE_NO_TSAN void settle_init_memory_pid(void) {
  settle_record_memory_pid();
  pthread_atfork(NULL, NULL, settle_record_memory_pid);
}

SETTLE_FN void settle_clear(int fd) {
  if (fd < 0 || fd >= SETTLE_BITS) return; /* the high flag stays: a stale hint only costs a settle */
  const unsigned long bit = 1ul << ((unsigned)fd % SETTLE_WORD_BITS);
  if (__atomic_load_n(&settle_hint[(unsigned)fd / SETTLE_WORD_BITS], __ATOMIC_RELAXED) & bit) {
    if (settle_in_memory_sharing_child()) return; /* the parent's hint */
    __atomic_fetch_and(&settle_hint[(unsigned)fd / SETTLE_WORD_BITS], ~bit, __ATOMIC_RELAXED);
  }
}

SETTLE_FN int settle_marked(int fd) {
  if (fd < 0) return 0;
  if (fd >= SETTLE_BITS) return __atomic_load_n(&settle_high, __ATOMIC_RELAXED);
  return (__atomic_load_n(&settle_hint[(unsigned)fd / SETTLE_WORD_BITS], __ATOMIC_RELAXED) >>
          ((unsigned)fd % SETTLE_WORD_BITS)) & 1;
}

SETTLE_FN int settle_anything(void) { return __atomic_load_n(&settle_any, __ATOMIC_RELAXED); }

/* An object descriptor the library returned. */
SETTLE_FN void settle_note_object(int fd) { settle_mark(fd); }
SETTLE_FN void settle_note_supervisor_object(int fd) {
  __atomic_store_n(&settle_supervisor_objects, 1, __ATOMIC_RELAXED);
  settle_mark(fd);
}
/* `fd` is being closed (close, or replaced by dup2/dup3). */
SETTLE_FN void settle_note_close(int fd) { settle_clear(fd); }
/* `newfd` now names what `oldfd` names (a successful dup of any kind). */
SETTLE_FN void settle_note_dup(int oldfd, int newfd) {
  if (newfd < 0 || oldfd == newfd) return;
  if (settle_marked(oldfd)) {
    settle_mark(newfd);
  } else {
    settle_clear(newfd);
  }
}

/* A descriptor number may name another file now (a close or a replacing
 * dup went through): the engine checks again what it kept about numbers
 * (evshim_engine_fd_closed). Called once the close returned. */
SETTLE_FN void settle_note_closed(void) {
#if defined(EVSHIM_FAST_PATH)
  evshim_engine_fd_closed();
#endif
}
/* The same for the one number `fd` (a close, the number a dup2 or dup3
 * replaced, a stream's or directory's number): the engine checks again
 * only what it kept about that number (evshim_engine_fd_closed_at). -1
 * (a stream without a number): every number, as settle_note_closed. */
SETTLE_FN void settle_note_closed_at(int fd) {
#if defined(EVSHIM_FAST_PATH)
  if (fd < 0) {
    evshim_engine_fd_closed();
  } else {
    evshim_engine_fd_closed_at(fd);
  }
#else
  (void)fd;
#endif
}

/* Before a poll-family call of a process with objects: makes every
 * object's readiness current when `involved` (see the top of this file),
 * and in fast mode counts the thread as a poller until settle_leave: while
 * one is counted the engine writes a readable object's byte at once, else
 * it owes it (docs/design.md "The readiness byte on demand"). Every such
 * call is counted, involved or not: a descriptor the library never saw may
 * be an object's all the same. Returns the token for settle_leave. */
SETTLE_FN int settle_enter(int involved) {
  const int saved = errno;
  int token = 0;
#if defined(EVSHIM_FAST_PATH)
  token = evshim_engine_poll_begin(involved);
  if (involved && (!(token & EVSHIM_POLL_SETTLED) ||
                   __atomic_load_n(&settle_supervisor_objects, __ATOMIC_RELAXED))) {
    SETTLE_SUPERVISED();
  }
#else
  if (involved) SETTLE_SUPERVISED();
#endif
  errno = saved;
  return token;
}

SETTLE_FN void settle_leave(int token) {
#if defined(EVSHIM_FAST_PATH)
  if (token & EVSHIM_POLL_COUNTED) {
    const int saved = errno;
    evshim_engine_poll_end(token);
    errno = saved;
  }
#else
  (void)token;
#endif
}

/* `call` (the next definition's), inside settle_enter/settle_leave once the
 * process has an object. */
#define SETTLE_AROUND(involved, call)             \
  __extension__({                                 \
    int settle_result;                            \
    if (!settle_anything()) {                     \
      settle_result = (call);                     \
    } else {                                      \
      const int settle_token = settle_enter(involved); \
      settle_result = (call);                     \
      settle_leave(settle_token);                 \
    }                                             \
    settle_result;                                \
  })

/* NULL with entries is the kernel's EFAULT, not ours to read. A pointer
 * that is not NULL is read as the kernel would (docs/abi.md §10). */
/* The array comes as a number: glibc declares poll's array write-only (for
 * revents), and its fd fields are the program's input all the same. */
SETTLE_FN int settle_pollfds_involved(uintptr_t array, nfds_t n) {
  const struct pollfd *fds = (const struct pollfd *)array;
  if (fds == NULL) return 0;
  for (nfds_t i = 0; i < n; i++) {
    if (settle_marked(fds[i].fd)) return 1;
  }
  return 0;
}

SETTLE_FN int settle_fdset_involved(int nfds, const fd_set *set) {
  if (set == NULL || nfds <= 0) return 0;
  const unsigned long *words = (const unsigned long *)(const void *)set;
  const unsigned whole = (unsigned)nfds / SETTLE_WORD_BITS;
  for (unsigned w = 0; w < whole; w++) {
    if (w >= SETTLE_BITS / SETTLE_WORD_BITS) return __atomic_load_n(&settle_high, __ATOMIC_RELAXED);
    if (words[w] & __atomic_load_n(&settle_hint[w], __ATOMIC_RELAXED)) return 1;
  }
  const unsigned rest = (unsigned)nfds % SETTLE_WORD_BITS;
  if (rest != 0) {
    if (whole >= SETTLE_BITS / SETTLE_WORD_BITS) return __atomic_load_n(&settle_high, __ATOMIC_RELAXED);
    const unsigned long mask = (1ul << rest) - 1;
    if (words[whole] & mask & __atomic_load_n(&settle_hint[whole], __ATOMIC_RELAXED)) return 1;
  }
  return 0;
}

SETTLE_FN int settle_select_involved(int nfds, const fd_set *r, const fd_set *w, const fd_set *e) {
  return settle_fdset_involved(nfds, r) || settle_fdset_involved(nfds, w) || settle_fdset_involved(nfds, e);
}

/* The next definition of a function (libc's), looked up once. */
SETTLE_FN void *settle_next(const char *name, void **slot) {
  void *f = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
  if (f == NULL) {
    f = dlsym(RTLD_NEXT, name);
    __atomic_store_n(slot, f, __ATOMIC_RELEASE);
  }
  return f;
}
#define SETTLE_NEXT(type, name)                            \
  __extension__({                                          \
    static void *next_slot;                                \
    type next_fn;                                          \
    void *p = settle_next(name, &next_slot);               \
    memcpy(&next_fn, &p, sizeof next_fn);                  \
    next_fn;                                               \
  })
#define SETTLE_MISSING()  \
  do {                    \
    errno = ENOSYS;       \
    return -1;            \
  } while (0)

SETTLE_EXPORT int poll(struct pollfd *fds, nfds_t n, int timeout) {
  typedef int (*fn_t)(struct pollfd *, nfds_t, int);
  fn_t next = SETTLE_NEXT(fn_t, "poll");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_pollfds_involved((uintptr_t)fds, n), next(fds, n, timeout));
}

SETTLE_EXPORT int ppoll(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask) {
  typedef int (*fn_t)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *);
  fn_t next = SETTLE_NEXT(fn_t, "ppoll");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_pollfds_involved((uintptr_t)fds, n), next(fds, n, timeout, mask));
}

/* _FORTIFY_SOURCE's poll and ppoll (glibc's reach its own __poll inside,
 * past the interposed poll). */
SETTLE_EXPORT int __poll_chk(struct pollfd *fds, nfds_t n, int timeout, size_t fdslen) {
  typedef int (*fn_t)(struct pollfd *, nfds_t, int, size_t);
  fn_t next = SETTLE_NEXT(fn_t, "__poll_chk");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(n <= fdslen / sizeof(*fds) && settle_pollfds_involved((uintptr_t)fds, n),
                       next(fds, n, timeout, fdslen));
}

SETTLE_EXPORT int __ppoll_chk(struct pollfd *fds, nfds_t n, const struct timespec *timeout, const sigset_t *mask,
                              size_t fdslen) {
  typedef int (*fn_t)(struct pollfd *, nfds_t, const struct timespec *, const sigset_t *, size_t);
  fn_t next = SETTLE_NEXT(fn_t, "__ppoll_chk");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(n <= fdslen / sizeof(*fds) && settle_pollfds_involved((uintptr_t)fds, n),
                       next(fds, n, timeout, mask, fdslen));
}

SETTLE_EXPORT int select(int nfds, fd_set *r, fd_set *w, fd_set *e, struct timeval *timeout) {
  typedef int (*fn_t)(int, fd_set *, fd_set *, fd_set *, struct timeval *);
  fn_t next = SETTLE_NEXT(fn_t, "select");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_select_involved(nfds, r, w, e), next(nfds, r, w, e, timeout));
}

SETTLE_EXPORT int pselect(int nfds, fd_set *r, fd_set *w, fd_set *e, const struct timespec *timeout,
                          const sigset_t *mask) {
  typedef int (*fn_t)(int, fd_set *, fd_set *, fd_set *, const struct timespec *, const sigset_t *);
  fn_t next = SETTLE_NEXT(fn_t, "pselect");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_select_involved(nfds, r, w, e), next(nfds, r, w, e, timeout, mask));
}

SETTLE_EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout) {
  typedef int (*fn_t)(int, struct epoll_event *, int, int);
  fn_t next = SETTLE_NEXT(fn_t, "epoll_wait");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_marked(epfd), next(epfd, events, maxevents, timeout));
}

SETTLE_EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout,
                              const sigset_t *mask) {
  typedef int (*fn_t)(int, struct epoll_event *, int, int, const sigset_t *);
  fn_t next = SETTLE_NEXT(fn_t, "epoll_pwait");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_marked(epfd), next(epfd, events, maxevents, timeout, mask));
}

#if defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 35)
SETTLE_EXPORT int epoll_pwait2(int epfd, struct epoll_event *events, int maxevents, const struct timespec *timeout,
                               const sigset_t *mask) {
  typedef int (*fn_t)(int, struct epoll_event *, int, const struct timespec *, const sigset_t *);
  fn_t next = SETTLE_NEXT(fn_t, "epoll_pwait2");
  if (next == NULL) SETTLE_MISSING();
  return SETTLE_AROUND(settle_marked(epfd), next(epfd, events, maxevents, timeout, mask));
}
#endif
#endif

/* An epoll given an object descriptor (or an epoll holding one) involves
 * it from then on. Marked before the call, so a wait in another thread that
 * starts once the descriptor is in never lacks the bit. In fast mode the
 * object keeps its byte exact from then on: the epoll may be waited on
 * where the library cannot see (evshim_engine_epoll_add). */
SETTLE_EXPORT int epoll_ctl(int epfd, int op, int fd, struct epoll_event *event) {
  typedef int (*fn_t)(int, int, int, struct epoll_event *);
  if (op == EPOLL_CTL_ADD && settle_anything() && settle_marked(fd)) {
    settle_mark(epfd);
#if defined(EVSHIM_FAST_PATH)
    evshim_engine_epoll_add(fd);
#endif
  }
  fn_t next = SETTLE_NEXT(fn_t, "epoll_ctl");
  if (next == NULL) SETTLE_MISSING();
  return next(epfd, op, fd, event);
}

SETTLE_EXPORT int dup(int fd) {
  typedef int (*fn_t)(int);
  fn_t next = SETTLE_NEXT(fn_t, "dup");
  if (next == NULL) SETTLE_MISSING();
  const int r = next(fd);
  if (r >= 0) {
    const int saved = errno;
    settle_note_dup(fd, r);
    errno = saved;
  }
  return r;
}

/*
 * Closes inside libc that the library's close() does not see (docs/design.md
 * "Closing an associated descriptor"): fclose, pclose (glibc's pclose
 * closes through its own fclose, not the exported one), closedir,
 * close_range and closefrom (glibc's closefrom calls its close_range
 * inside, not the exported symbol). Each reports the close of its hinted
 * numbers before it, as close() does (report_closing, the library's:
 * port_close_fd, illumos port.c:164-169; knote_fdclose, OpenBSD
 * kern_event.c:1826-1845, DragonFly :1868-1902), and afterwards lets the
 * engine check again what it kept about numbers (settle_note_closed_at;
 * for a range settle_note_range_closed, which a vfork child skips).
 * Compiled in every build: supervised mode runs the same library build,
 * and a build without the engine reports to the supervisor. close_range and
 * closefrom are async-signal-safe as libc's are: their next definitions are
 * looked up in a constructor (the raw system call before that), and the
 * walk over numbers beyond the hint bitmap reads /proc/self/fd with raw
 * system calls. Still unseen: a raw close system call, freopen's close of
 * the old descriptor, an exec'd image (docs/abi.md §10).
 */
#include "fd_range_walk.h"

#ifndef CLOSE_RANGE_UNSHARE
#define CLOSE_RANGE_UNSHARE (1u << 1)
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1u << 2)
#endif

/* The library's report that `fd` is being closed (before the close; a
 * number without its hint bit costs one bit test), and the same for every
 * hinted number in [first, last]. Defined by the library after its hint
 * bitmap. */
static SETTLE_NO_TSAN void report_closing(int fd);
static SETTLE_NO_TSAN void report_closing_range(unsigned first, unsigned last);

/* The poll hints of numbers a range closes go too (a stale one would cost
 * one settle). */
SETTLE_FN void settle_note_close_range(unsigned first, unsigned last) {
  if (first > last || first >= SETTLE_BITS || !settle_anything()) return;
  if (settle_in_memory_sharing_child()) return; /* the parent's hints */
  const unsigned top = last < SETTLE_BITS - 1 ? last : SETTLE_BITS - 1;
  for (unsigned fd = first; fd <= top; fd++) {
    if (fd % SETTLE_WORD_BITS == 0 && fd + SETTLE_WORD_BITS - 1 <= top) {
      if (__atomic_load_n(&settle_hint[fd / SETTLE_WORD_BITS], __ATOMIC_RELAXED) != 0) {
        __atomic_store_n(&settle_hint[fd / SETTLE_WORD_BITS], 0ul, __ATOMIC_RELAXED);
      }
      fd += SETTLE_WORD_BITS - 1;
      continue;
    }
    settle_clear((int)fd);
  }
}

/* libc declares these pointers nonnull, and glibc answers a NULL one all
 * the same (EINVAL for closedir): the test must stay. */
SETTLE_FN uintptr_t settle_opaque(const void *p) {
  uintptr_t v = (uintptr_t)p;
  __asm__("" : "+r"(v));
  return v;
}

/* A libc close of the stream's or directory's number `fd` (-1: none). */
SETTLE_FN void settle_closing_one(int fd) {
  if (fd < 0) return;
  report_closing(fd);
  settle_note_close(fd);
}

SETTLE_EXPORT int fclose(FILE *stream) {
  typedef int (*fn_t)(FILE *);
  fn_t next = SETTLE_NEXT(fn_t, "fclose");
  if (next == NULL) SETTLE_MISSING();
  int number = -1;
  if (settle_opaque(stream) != 0) {
    const int saved = errno;
    number = fileno(stream);
    settle_closing_one(number); /* -1 for a stream without one (fmemopen) */
    errno = saved;
  }
  const int r = next(stream);
  settle_note_closed_at(number);
  return r;
}

SETTLE_EXPORT int pclose(FILE *stream) {
  typedef int (*fn_t)(FILE *);
  fn_t next = SETTLE_NEXT(fn_t, "pclose");
  if (next == NULL) SETTLE_MISSING();
  int number = -1;
  if (settle_opaque(stream) != 0) {
    const int saved = errno;
    number = fileno(stream);
    settle_closing_one(number);
    errno = saved;
  }
  const int r = next(stream);
  settle_note_closed_at(number);
  return r;
}

SETTLE_EXPORT int closedir(DIR *dir) {
  typedef int (*fn_t)(DIR *);
  fn_t next = SETTLE_NEXT(fn_t, "closedir");
  if (next == NULL) SETTLE_MISSING();
  int number = -1;
  if (settle_opaque(dir) != 0) { /* glibc: EINVAL */
    const int saved = errno;
    number = dirfd(dir);
    settle_closing_one(number);
    errno = saved;
  }
  const int r = next(dir);
  settle_note_closed_at(number);
  return r;
}

typedef int (*settle_close_range_fn)(unsigned int, unsigned int, int);
typedef void (*settle_closefrom_fn)(int);
static settle_close_range_fn settle_next_close_range;
static settle_closefrom_fn settle_next_closefrom;

SETTLE_NO_TSAN __attribute__((constructor)) static void settle_find_next_closes(void) {
  void *p = dlsym(RTLD_NEXT, "close_range");
  settle_close_range_fn cr;
  memcpy(&cr, &p, sizeof cr);
  __atomic_store_n(&settle_next_close_range, cr, __ATOMIC_RELEASE);
  p = dlsym(RTLD_NEXT, "closefrom");
  settle_closefrom_fn cf;
  memcpy(&cf, &p, sizeof cf);
  __atomic_store_n(&settle_next_closefrom, cf, __ATOMIC_RELEASE);
}

/* Linux close_range: EINVAL for unknown flags or first > last, before any
 * close; with CLOSE_RANGE_CLOEXEC nothing is closed (the numbers only get
 * FD_CLOEXEC). Else every number of [first, last] is closed. */
SETTLE_FN void settle_closing_range(unsigned first, unsigned last, unsigned flags) {
  if ((flags & ~(unsigned)(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC)) != 0 || first > last) return;
  if (flags & CLOSE_RANGE_CLOEXEC) return;
  const int saved = errno;
  report_closing_range(first, last);
  settle_note_close_range(first, last);
  errno = saved;
}

/* After a close_range or closefrom: the engine checks again what it kept
 * about numbers (settle_note_closed), unless this is a vfork child, whose
 * descriptor table is its own: its parent's numbers still name the same
 * files (CPython's subprocess closes a range in its vfork child at every
 * spawn, which made the parent check every kept answer again). errno is
 * the close's. */
SETTLE_FN void settle_note_range_closed(void) {
  const int saved = errno;
  if (!settle_in_a_child_sharing_memory()) settle_note_closed();
  errno = saved;
}

#if defined(__GLIBC_PREREQ)
#if !__GLIBC_PREREQ(2, 34)
int close_range(unsigned int first, unsigned int last, int flags);
void closefrom(int lowfd);
#endif
#endif

SETTLE_EXPORT int close_range(unsigned int first, unsigned int last, int flags) {
  settle_closing_range(first, last, (unsigned)flags);
  settle_close_range_fn next = __atomic_load_n(&settle_next_close_range, __ATOMIC_ACQUIRE);
  const int r = next == NULL ? (int)syscall(SYS_close_range, first, last, flags) : next(first, last, flags);
  settle_note_range_closed();
  return r;
}

/* glibc: closefrom(low) closes [max(low, 0), ~0U] (close_range, or a walk
 * of /proc/self/fd without it). */
SETTLE_EXPORT void closefrom(int lowfd) {
  const unsigned first = lowfd < 0 ? 0u : (unsigned)lowfd;
  settle_closing_range(first, ~0u, 0);
  settle_closefrom_fn next = __atomic_load_n(&settle_next_closefrom, __ATOMIC_ACQUIRE);
  if (next == NULL) {
    (void)syscall(SYS_close_range, first, ~0u, 0);
  } else {
    next(lowfd);
  }
  settle_note_range_closed();
}

/* fcntl's third argument is read as glibc's own wrapper reads it. The
 * symbols are named with asm labels: with _FILE_OFFSET_BITS=64 glibc's
 * header redirects the C name fcntl to fcntl64. */
#define SETTLE_FCNTL(name)                                            \
  SETTLE_EXPORT int settle_##name(int fd, int cmd, ...) __asm__(#name); \
  SETTLE_EXPORT int settle_##name(int fd, int cmd, ...) {             \
    typedef int (*fn_t)(int, int, ...);                               \
    va_list ap;                                                       \
    va_start(ap, cmd);                                                \
    void *arg = va_arg(ap, void *);                                   \
    va_end(ap);                                                       \
    fn_t next = SETTLE_NEXT(fn_t, #name);                             \
    if (next == NULL) SETTLE_MISSING();                               \
    const int r = next(fd, cmd, arg);                                 \
    if (r >= 0 && (cmd == F_DUPFD || cmd == F_DUPFD_CLOEXEC)) {       \
      settle_note_dup(fd, r);                                         \
    }                                                                 \
    return r;                                                         \
  }
SETTLE_FCNTL(fcntl)
#if defined(__GLIBC_PREREQ)
#if __GLIBC_PREREQ(2, 28)
SETTLE_FCNTL(fcntl64)
#endif
#endif

#endif
