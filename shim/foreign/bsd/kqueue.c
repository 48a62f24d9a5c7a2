/*
 * evshim: the kqueue library of one BSD personality (FreeBSD, OpenBSD or
 * DragonFly: the <sys/event.h> it is compiled against decides). Each
 * function issues the personality's system call with the foreign wire
 * layouts (struct kevent is already one; the timeout is converted to the
 * foreign struct timespec) and reports errors the Linux way: -1 and errno.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* Functions that may run inside TSan's interceptors or a signal handler in
 * a ThreadSanitizer build (see the signal hook below). */
#if defined(__SANITIZE_THREAD__)
#define NOT_TSAN_INSTRUMENTED __attribute__((no_sanitize("thread")))
#else
#define NOT_TSAN_INSTRUMENTED
#endif

/* The foreign struct timespec (docs/rules-bsd.md §2): 16 bytes on
 * x86_64; on i386 FreeBSD and DragonFly 8 (32-bit time_t), OpenBSD 12
 * (64-bit time_t, 4-byte aligned). */
#if defined(__x86_64__)
struct wire_timespec {
  int64_t sec;
  int64_t nsec;
};
#elif defined(EVFILT_DEVICE) /* OpenBSD */
struct wire_timespec {
  int64_t sec;
  int32_t nsec;
} __attribute__((packed, aligned(4)));
#else
struct wire_timespec {
  int32_t sec;
  int32_t nsec;
};
#endif

static const struct wire_timespec *to_wire(const struct timespec *ts, struct wire_timespec *out) {
  if (ts == NULL) return NULL;
  out->sec = ts->tv_sec;
  out->nsec = ts->tv_nsec;
  return out;
}

/*
 * Fast mode (the default; docs/design.md "The in-process fast path"): the
 * call is served inside this process by libevshim-engine, unless
 * EVSHIM_SUPERVISED=1 or the kqueue is not one of the engine's (one made by
 * a raw system call, or with KQUEUE_CPONFORK, belongs to the supervisor):
 * then the system call goes out as before. x86_64 and i386 (build32 builds
 * an i386 engine).
 */
#if defined(EVSHIM_FAST_PATH)
#include "engine_entry.h"
NOT_TSAN_INSTRUMENTED static int fast_call(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
                                           long *r) {
  return evshim_engine_try(nr, a0, a1, a2, a3, a4, a5, r);
}
/* Raw foreign calls of the program are trapped and served by the engine;
 * this library's calls for the supervisor pass the trap (SUPERVISOR_SYSCALL)
 * and SIGSYS stays the trap's (the signal wrappers; sigaction() below). */
#include "trap_library.h"
#define HAS_TRAP 1
#else
NOT_TSAN_INSTRUMENTED static int fast_call(long nr, long a0, long a1, long a2, long a3, long a4, long a5,
                                           long *r) {
  (void)nr, (void)a0, (void)a1, (void)a2, (void)a3, (void)a4, (void)a5, (void)r;
  return 0;
}
#define SUPERVISOR_SYSCALL(nr, a0, a1, a2, a3, a4, a5) syscall(nr, a0, a1, a2, a3, a4, a5)
#endif

/* A foreign call: in-process when the engine serves it, else the syscall. */
NOT_TSAN_INSTRUMENTED static long foreign_call(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
  long r;
  if (fast_call(nr, a0, a1, a2, a3, a4, a5, &r)) return r;
  return SUPERVISOR_SYSCALL(nr, a0, a1, a2, a3, a4, a5);
}

/* The library's own reads of a call's arguments before the call (the
 * change list's hints, the timeout's conversion): 0 when read, -1 for a bad
 * pointer, never SIGSEGV (FreeBSD's kevent answers EFAULT:
 * kern_event.c kern_kevent_fp's copyin). The caller then passes the pointer
 * on as it was, and the call answers EFAULT. */
#if defined(EVSHIM_FAST_PATH)
/* This thread's own stack as the engine knows it (evshim_engine_thread_stack),
 * asked at the thread's first read: [own_stack_low, own_stack_high), mapped
 * while the thread lives. own_stack_high 0: not asked yet; an empty range
 * (low == high != 0): unknown, every read goes to the engine. */
static __thread uintptr_t own_stack_low __attribute__((tls_model("initial-exec")));
static __thread uintptr_t own_stack_high __attribute__((tls_model("initial-exec")));

__attribute__((noinline, cold)) static void learn_own_stack(void) {
  uintptr_t low = 0, high = 0;
  evshim_engine_thread_stack(&low, &high);
  if (low >= high) low = high = 1; /* unknown, and asked */
  own_stack_low = low;
  own_stack_high = high;
}
#endif

/* Inline: a one-change kevent reads its change here (an event loop's
 * re-arm), where the engine's entry would cost a call and its own stack
 * test. */
static inline __attribute__((always_inline)) int read_program(void *dst, const void *src, size_t n) {
#if defined(EVSHIM_FAST_PATH)
  /* On this thread's stack above this frame (the caller's locals: a change
   * list of one, a timeout): mapped while the caller runs, so copied
   * directly, as the engine's ReadProgram does. Elsewhere (the heap, a
   * signal handler's alternate stack, a fiber's, a bad pointer) the
   * engine's read, which never faults. */
  if (own_stack_high == 0) learn_own_stack();
  const uintptr_t here = (uintptr_t)__builtin_frame_address(0), addr = (uintptr_t)src;
  const uintptr_t low = own_stack_low, high = own_stack_high;
  if (here >= low && here < high && addr >= here && addr < high && n <= high - addr) {
    memcpy(dst, src, n);
    return 0;
  }
  return evshim_engine_read_program(dst, src, n);
#else
  struct iovec local = {dst, n}, remote = {(void *)src, n};
  int saved = errno;
  const ssize_t r = n == 0 ? 0 : process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
  errno = saved;
  return r == (ssize_t)n ? 0 : -1;
#endif
}

/* poll()/select()/epoll on a kqueue descriptor (shim/foreign/poll_settle.h):
 * supervised, the private request is evshim_kqueue_settle, whose answer
 * comes after the supervisor applied all readiness. */
#ifdef EVSHIM_SYS_kqueuex
#define EVSHIM_SYS_kqueue_settle 1015 /* FreeBSD */
#elif defined(EVSHIM_SYS_kqueue1)
#define EVSHIM_SYS_kqueue_settle 1035 /* OpenBSD */
#else
#define EVSHIM_SYS_kqueue_settle 1024 /* DragonFly */
#endif
#define SETTLE_SUPERVISED() ((void)SUPERVISOR_SYSCALL(EVSHIM_SYS_kqueue_settle, 0L, 0L, 0L, 0L, 0L, 0L))
#include "poll_settle.h"

/* A new kqueue descriptor: the poll family settles calls that involve it. */
static int noted_kqueue(int kq) {
  if (kq >= 0) settle_note_object(kq);
  return kq;
}

EXPORT int kqueue(void) { return noted_kqueue((int)foreign_call(EVSHIM_SYS_kqueue, 0, 0, 0, 0, 0, 0)); }

#ifdef EVSHIM_SYS_kqueuex
/*
 * KQUEUE_CPONFORK (docs/kqueue.md, "Fork"): the kqueue is copied into the
 * child at fork. The supervisor cannot see a fork as it happens, so this
 * library tells it, from pthread_atfork handlers registered when the first
 * such kqueue is made: the parent, in "prepare" (every thread of glibc's
 * fork runs it under the fork lock), has the supervisor copy its
 * copy-on-fork kqueues and gets a token; the child, before fork() returns
 * in it, claims the copies with that token, and its inherited descriptors
 * become the copies' (same numbers). A raw fork/clone system call, vfork
 * and posix_spawn run no handlers: their child gets no copy (EBADF).
 */
#define EVSHIM_SYS_kqueue_fork 1013
static unsigned long fork_token;

static void fork_prepare(void) {
  int saved = errno;
  long token = SUPERVISOR_SYSCALL(EVSHIM_SYS_kqueue_fork, 1L, 0L, 0, 0, 0, 0);
  fork_token = token > 0 ? (unsigned long)token : 0;
  errno = saved;
}

static void fork_parent(void) { fork_token = 0; }

static void fork_child(void) {
  int saved = errno;
  if (fork_token != 0) SUPERVISOR_SYSCALL(EVSHIM_SYS_kqueue_fork, 2L, (long)fork_token, 0, 0, 0, 0);
  fork_token = 0;
  errno = saved;
}

static pthread_once_t fork_hook_once = PTHREAD_ONCE_INIT;
static void install_fork_hook(void) { pthread_atfork(fork_prepare, fork_parent, fork_child); }

EXPORT int kqueuex(unsigned int flags) {
  /* A copy-on-fork kqueue is shared with children: the supervisor's. */
  int kq = (flags & KQUEUE_CPONFORK) ? (int)SUPERVISOR_SYSCALL(EVSHIM_SYS_kqueuex, (long)flags, 0, 0, 0, 0, 0)
                                     : (int)foreign_call(EVSHIM_SYS_kqueuex, (long)flags, 0, 0, 0, 0, 0);
  if (kq >= 0 && (flags & KQUEUE_CPONFORK)) pthread_once(&fork_hook_once, install_fork_hook);
  if (kq >= 0 && (flags & KQUEUE_CPONFORK)) settle_note_supervisor_object(kq);
  return noted_kqueue(kq);
}

/* FreeBSD libc: kqueue1(O_CLOEXEC) is kqueuex(KQUEUE_CLOEXEC). */
EXPORT int kqueue1(int flags) {
  if (flags & ~O_CLOEXEC) {
    errno = EINVAL;
    return -1;
  }
  return kqueuex((flags & O_CLOEXEC) ? KQUEUE_CLOEXEC : 0);
}
#endif

#ifdef EVSHIM_SYS_kqueue1
/* OpenBSD kqueue1: glibc's O_CLOEXEC/O_NONBLOCK become OpenBSD's; any other
 * bit reaches the kernel, which refuses it (EINVAL). */
EXPORT int kqueue1(int flags) {
  long wire = 0;
  if (flags & O_CLOEXEC) wire |= 0x10000;
  if (flags & O_NONBLOCK) wire |= 0x0004;
  if (flags & ~(O_CLOEXEC | O_NONBLOCK)) wire |= 0x40000000;
  return noted_kqueue((int)foreign_call(EVSHIM_SYS_kqueue1, wire, 0, 0, 0, 0, 0));
}
#endif

/*
 * EVFILT_SIGNAL (docs/kqueue.md, "Signals"). Linux cannot watch a signal's
 * delivery without taking part in it, so this library does: when a kevent
 * change adds an EVFILT_SIGNAL knote, the signal gets a counting handler
 * that reports each delivery to the supervisor (evshim_kqueue_signal) and
 * then does what the program asked for: it calls the program's handler, or
 * nothing if the signal is ignored (SIG_IGN, or SIG_DFL whose default is to
 * ignore). sigaction() and signal() below keep the program's view: it sets
 * and reads its own dispositions as if the hook were not there. A signal
 * with a knote is hooked whenever it gets a disposition the hook can keep,
 * also after the knote was added (libevent sets SIG_IGN afterwards).
 * Not hooked: SIGKILL and SIGSTOP (cannot be caught), signals whose default
 * action terminates or stops the process while they are SIG_DFL, and SIGCHLD
 * while SIG_IGN (the kernel does not send it: children are reaped at once,
 * which FreeBSD's kqueue(2) also says).
 */
#define EVSHIM_SIGNALS 65 /* Linux _NSIG */
#ifdef EVSHIM_SYS_kqueuex
#define EVSHIM_SYS_kqueue_signal 1012 /* FreeBSD */
#elif defined(EVSHIM_SYS_kqueue1)
#define EVSHIM_SYS_kqueue_signal 1033 /* OpenBSD */
#else
#define EVSHIM_SYS_kqueue_signal 1022 /* DragonFly */
#endif

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);

/*
 * In a ThreadSanitizer build (tests only, docs/design.md "Tests and
 * threads") the runtime's sigaction interceptor comes before this library:
 * the program's sigaction() reaches TSan, whose "real" sigaction is the one
 * below (dlsym RTLD_NEXT from libtsan), called also while TSan initializes,
 * before any thread state exists. And the counting handler is installed
 * past TSan (RTLD_NEXT from here is libc), so it runs where TSan does not
 * expect instrumented code: inside a signal, possibly in the runtime itself.
 * These functions therefore carry no TSan instrumentation; what they pass
 * on (TSan's own handler, registered through sigaction) does the rest.
 */

static struct sigaction program_action[EVSHIM_SIGNALS]; /* what the program set, when hooked */
static volatile sig_atomic_t hooked[EVSHIM_SIGNALS];
/* Signals some kevent change added an EVFILT_SIGNAL knote for (never
 * cleared, as the hook stays after EV_DELETE): a disposition the hook can
 * keep that the program sets later is hooked then (libevent adds the knote
 * first, then sets SIG_IGN). */
static int wanted[EVSHIM_SIGNALS]; /* __atomic: read without hook_lock */
static int any_wanted;
NOT_TSAN_INSTRUMENTED static int is_wanted(int sig) { return __atomic_load_n(&wanted[sig], __ATOMIC_RELAXED); }
/* A pending signal counted before its delivery (the send-time count of the
 * BSD kernels, see count_pending_signals): the thread id that counted it,
 * 0 if none. The counting handler does not count that delivery again. */
static int counted_pending[EVSHIM_SIGNALS];
static pthread_mutex_t hook_lock = PTHREAD_MUTEX_INITIALIZER;
/* Per thread: signals the hook swallowed (ignored ones) and program
 * handlers it ran, for kevent's EINTR rule below. */
static __thread volatile unsigned passive_signals __attribute__((tls_model("initial-exec")));
static __thread volatile unsigned handled_signals __attribute__((tls_model("initial-exec")));

/* dlsym's object pointer as a function pointer (POSIX guarantees it works). */
NOT_TSAN_INSTRUMENTED static void *next_symbol(const char *name) { return dlsym(RTLD_NEXT, name); }
#define NEXT(type, name) (__extension__(type) next_symbol(name))

NOT_TSAN_INSTRUMENTED static sigaction_fn real_sigaction(void) {
  static sigaction_fn fn;
  if (fn == NULL) fn = NEXT(sigaction_fn, "sigaction");
  return fn;
}

NOT_TSAN_INSTRUMENTED static int default_ignores(int sig) {
  return sig == SIGCHLD || sig == SIGWINCH || sig == SIGURG || sig == SIGCONT;
}

/* Whether a disposition is one the hook can count without changing it. */
NOT_TSAN_INSTRUMENTED static int hookable(int sig, const struct sigaction *a) {
  if (sig <= 0 || sig >= EVSHIM_SIGNALS || sig == SIGKILL || sig == SIGSTOP) return 0;
  if (!(a->sa_flags & SA_SIGINFO) && a->sa_handler == SIG_IGN) return sig != SIGCHLD;
  if (!(a->sa_flags & SA_SIGINFO) && a->sa_handler == SIG_DFL) return default_ignores(sig);
  return 1;
}

NOT_TSAN_INSTRUMENTED static void counting_handler(int sig, siginfo_t *info, void *uc) {
  int saved = errno;
  if (__atomic_exchange_n(&counted_pending[sig], 0, __ATOMIC_SEQ_CST) == 0) {
    foreign_call(EVSHIM_SYS_kqueue_signal, (long)sig, 0, 0, 0, 0, 0);
  }
  struct sigaction a = program_action[sig];
  if (a.sa_flags & SA_RESETHAND) {
    /* One delivery, then the default (SA_RESETHAND). */
    program_action[sig].sa_handler = SIG_DFL;
    program_action[sig].sa_flags &= ~(SA_SIGINFO | SA_RESETHAND);
    if (!default_ignores(sig)) {
      struct sigaction dfl;
      memset(&dfl, 0, sizeof dfl);
      dfl.sa_handler = SIG_DFL;
      hooked[sig] = 0;
      real_sigaction()(sig, &dfl, NULL);
    }
  }
  errno = saved;
  if (a.sa_flags & SA_SIGINFO) {
    handled_signals++;
    a.sa_sigaction(sig, info, uc);
  } else if (a.sa_handler != SIG_IGN && a.sa_handler != SIG_DFL) {
    handled_signals++;
    a.sa_handler(sig);
  } else {
    passive_signals++; /* ignored: the BSD kernel would not interrupt anything */
  }
}

/* Installs the counting handler over the program's disposition `a`. */
NOT_TSAN_INSTRUMENTED static int install_hook(int sig, const struct sigaction *a) {
  struct sigaction h;
  memset(&h, 0, sizeof h);
  h.sa_sigaction = counting_handler;
  h.sa_mask = a->sa_mask;
#if defined(HAS_TRAP)
  evshim_trap_unblock(&h.sa_mask);
#endif
  h.sa_flags = SA_SIGINFO | (a->sa_flags & (SA_RESTART | SA_NODEFER | SA_ONSTACK | SA_NOCLDSTOP |
                                            SA_NOCLDWAIT));
  const int passive = !(a->sa_flags & SA_SIGINFO) && (a->sa_handler == SIG_IGN || a->sa_handler == SIG_DFL);
  if (passive) h.sa_flags |= SA_RESTART;
  return real_sigaction()(sig, &h, NULL);
}

static void forget_counted_pending(void) {
  for (int sig = 1; sig < EVSHIM_SIGNALS; sig++) __atomic_store_n(&counted_pending[sig], 0, __ATOMIC_RELAXED);
}
static pthread_once_t signal_fork_once = PTHREAD_ONCE_INIT;
/* A child starts with no pending signal (fork), so nothing it inherits
 * was counted. */
static void install_signal_fork_hook(void) { pthread_atfork(NULL, NULL, forget_counted_pending); }

static void hook_signal(int sig) {
  if (sig <= 0 || sig >= EVSHIM_SIGNALS) return;
#if defined(HAS_TRAP)
  {
    /* The engine's (the trap's SIGSYS, the fault copy's SIGSEGV and
     * SIGBUS: docs/kqueue.md "Signals"). */
    struct sigaction cur;
    int r;
    if (evshim_kept_sigaction(sig, NULL, &cur, &r)) return;
  }
#endif
  pthread_once(&signal_fork_once, install_signal_fork_hook);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&hook_lock);
  __atomic_store_n(&wanted[sig], 1, __ATOMIC_RELAXED);
  __atomic_store_n(&any_wanted, 1, __ATOMIC_RELAXED);
  if (!hooked[sig]) {
    struct sigaction cur;
    if (real_sigaction()(sig, NULL, &cur) == 0 && hookable(sig, &cur)) {
      program_action[sig] = cur;
      if (install_hook(sig, &cur) == 0) hooked[sig] = 1;
    }
  }
  pthread_mutex_unlock(&hook_lock);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
}

NOT_TSAN_INSTRUMENTED EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *oldact) {
#if defined(HAS_TRAP)
  /* SIGSYS belongs to the trap, SIGSEGV and SIGBUS to the fault copy
   * (trap_library.h); no handler's mask holds them. */
  int trapped;
  if (evshim_kept_sigaction(sig, act, oldact, &trapped)) return trapped;
  struct sigaction unmasked;
  act = trap_action(act, &unmasked);
#endif
  if (sig <= 0 || sig >= EVSHIM_SIGNALS) return real_sigaction()(sig, act, oldact);
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&hook_lock);
  int r = 0;
  if (!hooked[sig] && is_wanted(sig) && act != NULL && hookable(sig, act)) {
    /* A knote waits for this signal and the disposition is one the hook
     * can keep: hook it now. */
    struct sigaction prev;
    r = real_sigaction()(sig, NULL, &prev);
    if (r == 0) {
      program_action[sig] = *act;
      r = install_hook(sig, act);
    }
    if (r == 0) {
      hooked[sig] = 1;
      if (oldact != NULL) *oldact = prev;
    }
  } else if (!hooked[sig]) {
    r = real_sigaction()(sig, act, oldact);
  } else {
    struct sigaction prev = program_action[sig];
    if (act != NULL) {
      if (hookable(sig, act)) {
        program_action[sig] = *act;
        r = install_hook(sig, act);
      } else {
        /* A disposition the hook cannot keep (SIG_DFL that terminates,
         * SIGCHLD ignored): the program's own, unhooked. */
        r = real_sigaction()(sig, act, NULL);
        if (r == 0) hooked[sig] = 0;
      }
    }
    if (r == 0 && oldact != NULL) *oldact = prev;
  }
  pthread_mutex_unlock(&hook_lock);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  return r;
}

/* glibc's signal() is BSD signal(): SA_RESTART, handler kept. */
EXPORT sighandler_t signal(int sig, sighandler_t handler) {
  struct sigaction a, old;
  memset(&a, 0, sizeof a);
  a.sa_handler = handler;
  a.sa_flags = SA_RESTART;
  sigemptyset(&a.sa_mask);
  if (sig > 0 && sig < EVSHIM_SIGNALS) sigaddset(&a.sa_mask, sig);
  if (sigaction(sig, &a, &old) != 0) return SIG_ERR;
  return old.sa_handler;
}

/* exec keeps ignored signals ignored and resets caught ones: a signal the
 * program ignores gets SIG_IGN back before exec (posix_spawn, system and
 * popen bypass these: docs/kqueue.md). */
static void unhook_ignored(void) {
  for (int sig = 1; sig < EVSHIM_SIGNALS; sig++) {
    if (hooked[sig] && !(program_action[sig].sa_flags & SA_SIGINFO) &&
        program_action[sig].sa_handler == SIG_IGN) {
      real_sigaction()(sig, &program_action[sig], NULL);
      hooked[sig] = 0;
    }
  }
}
static void rehook_ignored(void) {
  for (int sig = 1; sig < EVSHIM_SIGNALS; sig++) {
    struct sigaction cur;
    if (!hooked[sig] && real_sigaction()(sig, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == SIG_IGN && program_action[sig].sa_handler == SIG_IGN &&
        hookable(sig, &cur) && install_hook(sig, &cur) == 0) {
      hooked[sig] = 1;
    }
  }
}
typedef int (*execve_fn)(const char *, char *const[], char *const[]);
EXPORT int execve(const char *path, char *const argv[], char *const envp[]) {
  static execve_fn real;
  if (real == NULL) real = NEXT(execve_fn, "execve");
  unhook_ignored();
  int r = real(path, argv, envp);
  int saved = errno;
  rehook_ignored();
  errno = saved;
  return r;
}
EXPORT int execv(const char *path, char *const argv[]) { return execve(path, argv, environ); }
EXPORT int execvp(const char *file, char *const argv[]) {
  typedef int (*execvp_fn)(const char *, char *const[]);
  static execvp_fn real;
  if (real == NULL) real = NEXT(execvp_fn, "execvp");
  unhook_ignored();
  int r = real(file, argv);
  int saved = errno;
  rehook_ignored();
  errno = saved;
  return r;
}

/*
 * knote_fdclose (OpenBSD kern_event.c:1826-1845, DragonFly 1868-1902): a
 * close removes every knote on the number. The supervisor does not see
 * close(), and when the same open file comes back at the same number (dup2
 * back, SCM_RIGHTS) nothing tells it the close happened. So close(), dup2()
 * and dup3() are interposed here: closing a number that got an fd knote
 * (READ, WRITE, EXCEPT, VNODE; a kqueue watched by a kqueue is a READ
 * knote) first tells the supervisor (evshim_kqueue_fdclose), which drops
 * the knotes on it in the process's kqueues. The numbers are a hint bitmap
 * set at EV_ADD, so every other close costs one bit test; a stale bit costs
 * one call. The closes inside libc (fclose, pclose, closedir, close_range,
 * closefrom) report the same way (poll_settle.h). Closes this library does
 * not see (a raw close syscall, an exec'd image) fall back to the
 * supervisor's lazy rule (docs/kqueue.md "Not yet"). Signal handlers may
 * close: these functions are async-signal-safe (the next close/dup2/dup3
 * are looked up in a constructor, the raw system call before that), keep
 * errno, and carry no TSan instrumentation (they may run inside TSan's own
 * close interceptor, like the signal hook above).
 */
#ifdef EVSHIM_SYS_kqueuex
#define EVSHIM_SYS_kqueue_fdclose 1014 /* FreeBSD */
#elif defined(EVSHIM_SYS_kqueue1)
#define EVSHIM_SYS_kqueue_fdclose 1034 /* OpenBSD */
#else
#define EVSHIM_SYS_kqueue_fdclose 1023 /* DragonFly */
#endif
#define FD_HINT_BITS 65536
#define FD_HINT_WORD_BITS (8 * sizeof(unsigned long))
static unsigned long fd_hint[FD_HINT_BITS / FD_HINT_WORD_BITS];
static int fd_hint_high; /* a number beyond the bitmap got a knote */

static int is_fd_filter(short filter) {
#ifdef EVFILT_EXCEPT
  if (filter == EVFILT_EXCEPT) return 1;
#endif
  return filter == EVFILT_READ || filter == EVFILT_WRITE || filter == EVFILT_VNODE;
}

/* Before the call: a knote never lacks its bit. */
static void hint_knote(uintptr_t ident, short filter, unsigned short flags) {
  if (!(flags & EV_ADD) || !is_fd_filter(filter)) return;
  if (ident >= FD_HINT_BITS) {
    __atomic_store_n(&fd_hint_high, 1, __ATOMIC_RELAXED);
    return;
  }
  __atomic_fetch_or(&fd_hint[ident / FD_HINT_WORD_BITS], 1ul << (ident % FD_HINT_WORD_BITS), __ATOMIC_RELAXED);
}

NOT_TSAN_INSTRUMENTED static int is_hinted(int fd) {
  if (fd < 0) return 0;
  if (fd >= FD_HINT_BITS) return __atomic_load_n(&fd_hint_high, __ATOMIC_RELAXED);
  const unsigned long bit = 1ul << ((unsigned)fd % FD_HINT_WORD_BITS);
  return (__atomic_load_n(&fd_hint[(unsigned)fd / FD_HINT_WORD_BITS], __ATOMIC_RELAXED) & bit) != 0;
}

NOT_TSAN_INSTRUMENTED static void report_closing(int fd) {
  /* A vfork child's close is not its parent's (poll_settle.h,
   * settle_memory_pid): no report, the parent's bit stays. */
  if (!is_hinted(fd) || settle_in_memory_sharing_child()) return;
  if (fd < FD_HINT_BITS) {
    const unsigned long bit = 1ul << ((unsigned)fd % FD_HINT_WORD_BITS);
    if (!(__atomic_fetch_and(&fd_hint[(unsigned)fd / FD_HINT_WORD_BITS], ~bit, __ATOMIC_RELAXED) & bit)) return;
  }
  int saved = errno;
  /* Served in-process for the engine's kqueues; the supervisor's kqueues
   * of this process (KQUEUE_CPONFORK) need it too. */
  long r;
  if (!fast_call(EVSHIM_SYS_kqueue_fdclose, (long)fd, 0, 0, 0, 0, 0, &r) ||
      __atomic_load_n(&settle_supervisor_objects, __ATOMIC_RELAXED)) {
    (void)SUPERVISOR_SYSCALL(EVSHIM_SYS_kqueue_fdclose, (long)fd, 0L, 0L, 0L, 0L, 0L);
  }
  errno = saved;
}

/* The hinted numbers a close_range or closefrom closes (poll_settle.h). */
NOT_TSAN_INSTRUMENTED static void report_closing_range(unsigned first, unsigned last) {
  fd_walk_each_hinted(fd_hint, FD_HINT_BITS, &fd_hint_high, first, last, report_closing);
}

/* dup2/dup3 close `newfd` only when `oldfd` is open and differs from it. */
NOT_TSAN_INSTRUMENTED static void report_replaced(int oldfd, int newfd) {
  if (oldfd == newfd || !is_hinted(newfd)) return;
  int saved = errno;
  const long flags = syscall(SYS_fcntl, (long)oldfd, (long)F_GETFD);
  errno = saved;
  if (flags != -1) report_closing(newfd);
}

typedef int (*close_fn)(int);
typedef int (*dup2_fn)(int, int);
typedef int (*dup3_fn)(int, int, int);
static close_fn next_close;
static dup2_fn next_dup2;
static dup3_fn next_dup3;

NOT_TSAN_INSTRUMENTED __attribute__((constructor)) static void find_next_close(void) {
  __atomic_store_n(&next_close, NEXT(close_fn, "close"), __ATOMIC_RELEASE);
  __atomic_store_n(&next_dup2, NEXT(dup2_fn, "dup2"), __ATOMIC_RELEASE);
  __atomic_store_n(&next_dup3, NEXT(dup3_fn, "dup3"), __ATOMIC_RELEASE);
}

NOT_TSAN_INSTRUMENTED EXPORT int close(int fd) {
  report_closing(fd);
  settle_note_close(fd);
  close_fn next = __atomic_load_n(&next_close, __ATOMIC_ACQUIRE);
  const int r = next == NULL ? (int)syscall(SYS_close, (long)fd) : next(fd);
  settle_note_closed_at(fd);
  return r;
}

NOT_TSAN_INSTRUMENTED EXPORT int dup2(int oldfd, int newfd) {
  report_replaced(oldfd, newfd);
  dup2_fn next = __atomic_load_n(&next_dup2, __ATOMIC_ACQUIRE);
  const int r = next == NULL ? (int)syscall(SYS_dup2, (long)oldfd, (long)newfd) : next(oldfd, newfd);
  if (r >= 0) settle_note_dup(oldfd, r);
  settle_note_closed_at(newfd);
  return r;
}

NOT_TSAN_INSTRUMENTED EXPORT int dup3(int oldfd, int newfd, int flags) {
  if ((flags & ~O_CLOEXEC) == 0) report_replaced(oldfd, newfd); /* else EINVAL, nothing closed */
  dup3_fn next = __atomic_load_n(&next_dup3, __ATOMIC_ACQUIRE);
  const int r = next == NULL ? (int)syscall(SYS_dup3, (long)oldfd, (long)newfd, (long)flags)
                             : next(oldfd, newfd, flags);
  if (r >= 0) settle_note_dup(oldfd, r);
  settle_note_closed_at(newfd);
  return r;
}

static int64_t mono_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}

/*
 * As for event ports (docs/abi.md "Call numbers"): on LP64 each kevent call
 * carries a per-thread number in the upper half of the kq register (the
 * kernel reads an int), so the supervisor can tell a re-issue of the same
 * call from a new one: an interrupted call is never applied twice, and on
 * EINTR the library probes (bit 63) for an answer the kernel dropped.
 */
#if defined(__x86_64__)
static __thread unsigned kevent_seq;
#endif

static int kevent_call(long kq, const struct kevent *changelist, long nchanges, struct kevent *eventlist,
                       long nevents, const struct wire_timespec *ts) {
  long fast;
  /* In-process, an interrupted wait is simply EINTR: no reply to lose. */
  if (fast_call(EVSHIM_SYS_kevent, kq, (long)changelist, nchanges, (long)eventlist, nevents, (long)ts, &fast)) {
    return (int)fast;
  }
#if defined(__x86_64__)
  kevent_seq += 2;
  kq = (long)(((unsigned long)(kevent_seq | 1) << 32) | (unsigned int)kq);
#endif
  int r = (int)SUPERVISOR_SYSCALL(EVSHIM_SYS_kevent, kq, changelist, nchanges, eventlist, nevents, ts);
#if defined(__x86_64__)
  if (r == -1 && errno == EINTR) {
    long probe = (long)((unsigned long)kq | (1ul << 63));
    do r = (int)SUPERVISOR_SYSCALL(EVSHIM_SYS_kevent, probe, changelist, nchanges, eventlist, nevents, ts);
    while (r == -1 && errno == EINTR);
    if (r == -1 && errno == ECANCELED) errno = EINTR;
  }
#endif
  return r;
}

/*
 * A kqueue is not passable (docs/kqueue.md "Passing a kqueue";
 * docs/rules-bsd.md §4.6): the BSDs' unp_internalize refuses a message
 * whose SCM_RIGHTS list holds one, and sends nothing. FreeBSD: the kqueue's
 * fileops lack DFLAG_PASSABLE, EOPNOTSUPP; DragonFly: DTYPE_KQUEUE,
 * EOPNOTSUPP; OpenBSD: DTYPE_KQUEUE, EINVAL. Each walks the list once and
 * the first descriptor that fails decides (a closed one is EBADF): FreeBSD
 * and DragonFly from the first, OpenBSD from the last. Linux passes any
 * socket, and the supervisor does not see sendmsg, so the library's
 * sendmsg/sendmmsg check the list (a raw sendmsg system call is not seen:
 * docs/kqueue.md "Not yet").
 */
#if defined(EVSHIM_SYS_kqueue1)
#define KQUEUE_NOT_PASSABLE EINVAL
#define PASS_LIST_BACKWARDS 1
#else
#define KQUEUE_NOT_PASSABLE EOPNOTSUPP
#define PASS_LIST_BACKWARDS 0
#endif
/* Linux's own bounds (SCM_MAX_FD descriptors per list; the control buffer is
 * refused far below 1 MiB, optmem_max): past them the kernel answers. */
#define PASS_MAX_FDS 253
#define PASS_MAX_CONTROL (1u << 20)

/* A descriptor this library returned as a kqueue (the settle bitmap: one
 * bit test for any other), confirmed by a kevent with no change and no
 * event list, which only a kqueue accepts: in-process or the supervisor's,
 * and a stale bit (a number closed behind the library's back) is not taken
 * for one. */
static int is_kqueue(int fd) {
  if (!settle_marked(fd)) return 0;
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return 0; /* an epoll holding a kqueue */
  const int saved = errno;
  const struct wire_timespec zero = {0, 0};
  const int r = kevent_call(fd, NULL, 0, NULL, 0, &zero);
  errno = saved;
  return r == 0;
}

/* Calls `visit` on each descriptor of the message's SCM_RIGHTS lists, in
 * the kernel's order, until it returns non-zero; returns that (0: none). */
static int each_passed_fd(const struct msghdr *msg, int (*visit)(int fd)) {
  if (msg == NULL || msg->msg_control == NULL || msg->msg_controllen < sizeof(struct cmsghdr) ||
      msg->msg_controllen > PASS_MAX_CONTROL) {
    return 0;
  }
  for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL;
       c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len < CMSG_LEN(0)) continue;
    const size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    if (count > PASS_MAX_FDS) return 0;
    const unsigned char *data = CMSG_DATA(c);
    for (size_t i = 0; i < count; i++) {
      int fd;
      memcpy(&fd, data + (PASS_LIST_BACKWARDS ? count - 1 - i : i) * sizeof fd, sizeof fd);
      const int r = visit(fd);
      if (r != 0) return r;
    }
  }
  return 0;
}

static int kqueue_in_list(int fd) { return is_kqueue(fd); }
static int first_refusal(int fd) {
  const int saved = errno;
  const long open = syscall(SYS_fcntl, (long)fd, (long)F_GETFD);
  errno = saved;
  if (open == -1) return -1; /* EBADF: the kernel's own answer */
  return is_kqueue(fd) ? KQUEUE_NOT_PASSABLE : 0;
}

/* The errno the BSDs refuse the message with, 0 to let it go. Only a list
 * with a marked descriptor costs more than a bit test per descriptor. */
static int refusal(const struct msghdr *msg) {
  if (!settle_anything() || !each_passed_fd(msg, kqueue_in_list)) return 0;
  const int r = each_passed_fd(msg, first_refusal);
  return r > 0 ? r : 0;
}

typedef ssize_t (*sendmsg_fn)(int, const struct msghdr *, int);
typedef int (*sendmmsg_fn)(int, struct mmsghdr *, unsigned int, int);
EXPORT ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
  static sendmsg_fn next;
  if (next == NULL) next = NEXT(sendmsg_fn, "sendmsg");
  const int refused = refusal(msg);
  if (refused != 0) {
    errno = refused;
    return -1;
  }
  if (next == NULL) return syscall(SYS_sendmsg, fd, msg, flags);
  return next(fd, msg, flags);
}
/* The messages before a refused one are sent and counted, as FreeBSD's
 * libc sendmmsg (a sendmsg per message) and OpenBSD's sendmmsg answer. */
EXPORT int sendmmsg(int fd, struct mmsghdr *msgs, unsigned int count, int flags) {
  static sendmmsg_fn next;
  if (next == NULL) next = NEXT(sendmmsg_fn, "sendmmsg");
  if (msgs != NULL) {
    /* The kernel sends at most UIO_MAXIOV (1024) messages per call. */
    for (unsigned int i = 0; i < count && i < 1024; i++) {
      const int refused = refusal(&msgs[i].msg_hdr);
      if (refused == 0) continue;
      if (i == 0) {
        errno = refused;
        return -1;
      }
      count = i;
      break;
    }
  }
  if (next == NULL) return (int)syscall(SYS_sendmmsg, fd, msgs, count, flags);
  return next(fd, msgs, count, flags);
}

/*
 * Blocked signals. The BSD kernels count a signal when it is sent, before
 * the mask or the disposition is looked at; Linux keeps a blocked signal
 * pending, out of the counting handler's sight, until it is unblocked. So
 * kevent counts the watched signals pending for the calling thread (its own
 * and the process's: sigpending) before it asks the supervisor, once per
 * pending instance: the thread that counted it is recorded, and the
 * counting handler does not count that delivery again when the signal is
 * finally unblocked. A counted signal no longer pending that the handler
 * did not see was taken another way (sigwait, signalfd): forgotten.
 * Linux keeps one pending instance of a standard signal (BSD counts each
 * send), and shows one pending bit for several queued real-time ones (the
 * others are counted as the handler gets them): docs/kqueue.md.
 */
static void count_pending_signals(void) {
  sigset_t pending;
  if (sigpending(&pending) != 0) return;
  int self = 0;
  for (int sig = 1; sig < EVSHIM_SIGNALS; sig++) {
    if (!is_wanted(sig)) continue;
    const int is_pending = sigismember(&pending, sig) == 1;
    int owner = __atomic_load_n(&counted_pending[sig], __ATOMIC_SEQ_CST);
    if (is_pending == (owner != 0)) continue;
    if (self == 0) self = (int)syscall(SYS_gettid);
    if (is_pending) {
      if (!__atomic_compare_exchange_n(&counted_pending[sig], &owner, self, 0, __ATOMIC_SEQ_CST,
                                       __ATOMIC_SEQ_CST)) {
        continue;
      }
      /* The instance seen may have been delivered (and counted by the
       * handler, which found no mark) before the mark was set: if it is no
       * longer pending and the mark is still ours, nobody relied on it. */
      sigset_t again;
      if (sigpending(&again) == 0 && sigismember(&again, sig) != 1) {
        int mine = self;
        if (__atomic_compare_exchange_n(&counted_pending[sig], &mine, 0, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)) {
          continue;
        }
      }
      foreign_call(EVSHIM_SYS_kqueue_signal, (long)sig, 0, 0, 0, 0, 0);
    } else if (owner == self) {
      __atomic_compare_exchange_n(&counted_pending[sig], &owner, 0, 0, __ATOMIC_SEQ_CST,
                                  __ATOMIC_SEQ_CST);
    }
  }
}

/* A watched signal taken by sigwait and co. never reaches the handler: it
 * is counted here, unless kevent counted it while it was pending. */
static void taken_without_handler(int sig) {
  if (sig <= 0 || sig >= EVSHIM_SIGNALS || !is_wanted(sig)) return;
  if (__atomic_exchange_n(&counted_pending[sig], 0, __ATOMIC_SEQ_CST) == 0) {
    foreign_call(EVSHIM_SYS_kqueue_signal, (long)sig, 0, 0, 0, 0, 0);
  }
}

EXPORT int sigtimedwait(const sigset_t *set, siginfo_t *info, const struct timespec *timeout) {
  typedef int (*fn_t)(const sigset_t *, siginfo_t *, const struct timespec *);
  static fn_t real;
  if (real == NULL) real = NEXT(fn_t, "sigtimedwait");
  int sig = real(set, info, timeout);
  int saved = errno;
  taken_without_handler(sig);
  errno = saved;
  return sig;
}
EXPORT int sigwaitinfo(const sigset_t *set, siginfo_t *info) { return sigtimedwait(set, info, NULL); }
EXPORT int sigwait(const sigset_t *set, int *sig) {
  int r;
  do r = sigtimedwait(set, NULL, NULL);
  while (r == -1 && errno == EINTR); /* POSIX sigwait does not fail with EINTR */
  if (r == -1) return errno;
  *sig = r;
  return 0;
}

/* Whether the calling thread blocks a watched signal: then a wait is cut
 * into slices, and pending signals are counted between them, so that one
 * sent during the wait ends it (the supervisor, where the wait happens,
 * cannot see another process's pending signals as they come). */
static int blocks_watched_signal(void) {
  sigset_t mask;
  if (pthread_sigmask(SIG_BLOCK, NULL, &mask) != 0) return 0;
  for (int sig = 1; sig < EVSHIM_SIGNALS; sig++) {
    if (is_wanted(sig) && sigismember(&mask, sig) == 1) return 1;
  }
  return 0;
}

#define BLOCKED_SIGNAL_SLICE_NS 20000000LL /* 20 ms: the latency for such a signal */

/* What is left of a valid timeout started at `start`, in ns, at least 0;
 * INT64_MAX for one too long to count in ns (centuries). */
static int64_t remaining_ns(const struct timespec *timeout, int64_t start) {
  const int64_t sec = timeout->tv_sec; /* 32 bits on i386: never that long */
  if (sec >= INT64_MAX / 1000000000LL - 1) return INT64_MAX;
  int64_t rem = sec * 1000000000LL + timeout->tv_nsec - (mono_ns() - start);
  return rem < 0 ? 0 : rem;
}

/* The change list read in pieces this long (on the stack). */
#define CHANGES_READ_AT_ONCE 32

/* What the library does for one change before the call: its signal's
 * counting hook, its number's close hint. */
static void note_change(const struct kevent *change) {
  if (change->filter == EVFILT_SIGNAL && (change->flags & EV_ADD)) hook_signal((int)change->ident);
  hint_knote(change->ident, change->filter, change->flags);
}

/* The change list's hints and signal hooks, read in pieces (out of line:
 * its pieces' frame is not the one-change call's). */
__attribute__((noinline)) static void read_hints(const struct kevent *changelist, int nchanges) {
  for (int i = 0, got = 0; changelist != NULL && i < nchanges; i += got) {
    struct kevent piece[CHANGES_READ_AT_ONCE];
    got = nchanges - i < CHANGES_READ_AT_ONCE ? nchanges - i : CHANGES_READ_AT_ONCE;
    if (read_program(piece, changelist + i, (size_t)got * sizeof piece[0]) != 0) break;
    for (int j = 0; j < got; j++) note_change(&piece[j]);
  }
}

EXPORT int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
                  int nevents, const struct timespec *timeout) {
  /* Read through read_program: a bad list stops the hints there, and the
   * call answers EFAULT (bounded by nchanges, as the call's own reading).
   * One change (an event loop's re-arm): read alone, no piece of the list. */
  if (changelist != NULL && nchanges == 1) {
    struct kevent one;
    if (read_program(&one, changelist, sizeof one) == 0) note_change(&one);
  } else if (changelist != NULL && nchanges > 1) {
    read_hints(changelist, nchanges);
  }
  /* The timeout, read once: a bad one goes on as it is (EFAULT). */
  struct timespec timeout_read;
  const struct timespec *bad_timeout = NULL;
  if (timeout != NULL) {
    if (read_program(&timeout_read, timeout, sizeof timeout_read) == 0) {
      timeout = &timeout_read;
    } else {
      bad_timeout = timeout;
    }
  }
  if (bad_timeout != NULL) {
    return kevent_call(kq, changelist, nchanges, eventlist, nevents, (const struct wire_timespec *)bad_timeout);
  }
  int sliced = 0;
  if (__atomic_load_n(&any_wanted, __ATOMIC_RELAXED)) {
    count_pending_signals();
    /* Only a wait that is valid on every personality and longer than a
     * slice is cut (an invalid timeout reaches the supervisor as it is). */
    const int valid = timeout == NULL || (timeout->tv_sec >= 0 && timeout->tv_nsec >= 0 &&
                                          timeout->tv_nsec < 1000000000L);
    const int long_wait = timeout == NULL || timeout->tv_sec > 0 ||
                          timeout->tv_nsec > BLOCKED_SIGNAL_SLICE_NS;
    sliced = nevents > 0 && valid && long_wait && blocks_watched_signal();
  }
  const int64_t start = timeout != NULL || sliced ? mono_ns() : 0;
  struct timespec left;
  const struct timespec *t = timeout;
  for (;;) {
    int in_slice = 0;
    if (sliced) {
      int64_t rem = timeout != NULL ? remaining_ns(timeout, start) : INT64_MAX;
      if (rem > BLOCKED_SIGNAL_SLICE_NS) {
        rem = BLOCKED_SIGNAL_SLICE_NS;
        in_slice = 1;
      }
      if (timeout != NULL || in_slice) {
        left.tv_sec = (time_t)(rem / 1000000000LL);
        left.tv_nsec = (long)(rem % 1000000000LL);
        t = &left;
      }
    }
    const unsigned passive = passive_signals, handled = handled_signals;
    struct wire_timespec ts;
    int r = kevent_call(kq, changelist, nchanges, eventlist, nevents, to_wire(t, &ts));
    const int ignored_interrupt =
        r == -1 && errno == EINTR && passive != passive_signals && handled == handled_signals;
    if (!ignored_interrupt && !(in_slice && r == 0)) return r;
    /* Either only an ignored signal the hook caught interrupted the wait
     * (on the BSDs nothing would have), or a slice ended with nothing. The
     * changes are applied (the supervisor answers EINTR only to a
     * restarted call); wait for the rest. */
    changelist = NULL;
    nchanges = 0;
    if (in_slice) count_pending_signals();
    if (timeout != NULL && !sliced) {
      /* The timeout was valid (or the call would not have waited). */
      int64_t rem = remaining_ns(timeout, start);
      if (rem == INT64_MAX) continue; /* too long to matter: pass it again */
      left.tv_sec = (time_t)(rem / 1000000000LL);
      left.tv_nsec = (long)(rem % 1000000000LL);
      t = &left;
    }
  }
}

#ifdef EVSHIM_SYS_freebsd11_kevent
EXPORT int freebsd11_kevent(int kq, const struct kevent_freebsd11 *changelist, int nchanges,
                            struct kevent_freebsd11 *eventlist, int nevents,
                            const struct timespec *timeout) {
  for (int i = 0, got = 0; changelist != NULL && i < nchanges; i += got) {
    struct kevent_freebsd11 piece[CHANGES_READ_AT_ONCE];
    got = nchanges - i < CHANGES_READ_AT_ONCE ? nchanges - i : CHANGES_READ_AT_ONCE;
    if (read_program(piece, changelist + i, (size_t)got * sizeof piece[0]) != 0) break;
    for (int j = 0; j < got; j++) hint_knote(piece[j].ident, piece[j].filter, piece[j].flags);
  }
  struct timespec timeout_read;
  struct wire_timespec ts;
  const struct wire_timespec *wire = NULL;
  if (timeout != NULL) {
    wire = read_program(&timeout_read, timeout, sizeof timeout_read) == 0
               ? to_wire(&timeout_read, &ts)
               : (const struct wire_timespec *)timeout; /* bad: EFAULT */
  }
  return (int)foreign_call(EVSHIM_SYS_freebsd11_kevent, (long)kq, (long)changelist, (long)nchanges,
                           (long)eventlist, (long)nevents, (long)wire);
}
#endif
