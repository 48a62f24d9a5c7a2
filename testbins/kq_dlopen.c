/*
 * A program that loads the FreeBSD kqueue library with dlopen(RTLD_LOCAL),
 * as CPython loads an extension module that links it (docs/clients.md):
 * the library's wrappers (close(), the signal functions) then interpose
 * nothing of the program's or the engine's (libc's come first in the global
 * scope).
 *
 * `kq_dlopen` (no argument): three rounds of kqueue, a socket's READ knote,
 * a wait, EV_DELETE, then close of the socket pair and of the kqueue. Each
 * round's kqueue reuses the last one's number, which the engine must not
 * take for the object it removed at the last close (kqueue_close, OB
 * kern_event.c:1512: a closed kqueue is gone; fd_getfile, OB
 * kern_event.c:1076-1080: the number names the new one).
 *
 * `kq_dlopen fault_copy`: the engine's copy that survives a fault
 * (docs/design.md "A copy that survives a fault", Gating), which needs the
 * signal wrappers `evshim run` preloads in fast mode. With
 * process_vm_readv/writev taken away (a seccomp filter: EPERM), kevent's
 * change and event lists on the heap are copied (the events arrive; without
 * the copy: EFAULT); then, in turn, bad event lists (unmapped, PROT_NONE,
 * read-only, running into a guard page, a truncated file's mapping) are
 * EFAULT and the kqueue goes on; a SIGSEGV handler the program set with
 * sigaction() (before the engine was made, and another after) runs on a
 * real fault and longjmps out, and sigaction() shows it back; SIGSEGV and
 * SIGBUS blocked with sigprocmask() (not shown blocked) still give EFAULT
 * for a bad list; and before the library is loaded, a block of them does
 * not hold either. Where the build's libraries carry a sanitizer runtime
 * the launcher preloads nothing (FAULT_COPY_EXPECTED 0): the heap lists
 * are EFAULT there, and the rest is checked all the same.
 *
 * `kq_dlopen fault_copy_gated_off`: the same where a library the user
 * preloads interposes sigaction() first (as a sanitizer runtime does;
 * testbins/sigaction_first.c): the launcher's preload comes after it, the
 * engine's gating says off, and the heap lists are EFAULT.
 *
 * `kq_dlopen pingpong N`: N round trips of a byte over a socket pair, each
 * waited for with kevent() into an event list on the heap, as an event
 * loop keeps it (a measure of the copy for a dlopen'ed library:
 * docs/performance.md "The copy for the program's children (session 21)").
 *
 * Exit 0 = every round or check worked.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fault_copy.h"

typedef int (*kqueue_fn)(void);
typedef int (*kevent_fn)(int, const struct kevent *, int, struct kevent *, int, const struct timespec *);

static kqueue_fn kq_create;
static kevent_fn kev;
/* Whether the copy is expected on (fault_copy) or off (fault_copy_gated_off). */
static int expect_copy = FAULT_COPY_EXPECTED;

static int rounds(void) {
  int last_kq = -1;
  for (int round = 0; round < 3; ++round) {
    int kq = kq_create(), s[2];
    if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) {
      fprintf(stderr, "round %d: kqueue/socketpair: %s\n", round, strerror(errno));
      return 1;
    }
    if (round > 0 && kq != last_kq) fprintf(stderr, "round %d: kqueue at %d, not %d\n", round, kq, last_kq);
    last_kq = kq;
    struct kevent ch, ev[4];
    EV_SET(&ch, s[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
    if (kev(kq, &ch, 1, NULL, 0, NULL) != 0) {
      fprintf(stderr, "round %d: EV_ADD on %d through kqueue %d: %s\n", round, s[0], kq, strerror(errno));
      return 1;
    }
    const struct timespec ten_ms = {0, 10000000};
    if (kev(kq, NULL, 0, ev, 4, &ten_ms) != 0) {
      fprintf(stderr, "round %d: an event on an idle socket\n", round);
      return 1;
    }
    if (write(s[1], "x", 1) != 1 || kev(kq, NULL, 0, ev, 4, &ten_ms) != 1 || ev[0].ident != (uintptr_t)s[0]) {
      fprintf(stderr, "round %d: no READ event after a write\n", round);
      return 1;
    }
    EV_SET(&ch, s[0], EVFILT_READ, EV_DELETE, 0, 0, NULL);
    if (kev(kq, &ch, 1, NULL, 0, NULL) != 0) {
      fprintf(stderr, "round %d: EV_DELETE: %s\n", round, strerror(errno));
      return 1;
    }
    close(s[0]);
    close(s[1]);
    close(kq);
  }
  return 0;
}

/* fault_copy: a kqueue with two READ knotes, both readable (a socket with
 * two bytes, a pipe with one): two events, so a list with room for one
 * before a guard page faults. */
static int ready_kqueue(int *kq, int sv[2]) {
  int p[2];
  *kq = kq_create();
  if (*kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0 || pipe(p) != 0) return -1;
  struct kevent ch[2];
  EV_SET(&ch[0], sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
  EV_SET(&ch[1], p[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
  if (kev(*kq, ch, 2, NULL, 0, NULL) != 0 || write(sv[1], "ab", 2) != 2 || write(p[1], "y", 1) != 1) return -1;
  return 0;
}

/* The READ event through lists on the heap: 0 when it arrived as the
 * build expects (copied; EFAULT without the copy). */
static int heap_lists(int kq, int fd) {
  struct kevent *changes = malloc(sizeof *changes), *events = calloc(4, sizeof *events);
  struct timespec *zero = calloc(1, sizeof *zero);
  if (changes == NULL || events == NULL || zero == NULL) return -1;
  EV_SET(&changes[0], fd, EVFILT_READ, EV_ADD, 0, 0, NULL);
  errno = 0;
  const int n = kev(kq, changes, 1, events, 4, zero);
  int found = 0;
  for (int i = 0; i < n && i < 4; i++) found |= events[i].ident == (uintptr_t)fd && events[i].data == 2;
  const int ok = expect_copy ? n == 2 && found : n == -1 && errno == EFAULT;
  if (!ok) fprintf(stderr, "heap lists: kevent %d (%s), ident %lu\n", n, strerror(errno), (unsigned long)events[0].ident);
  free(changes);
  free(events);
  free(zero);
  return ok ? 0 : -1;
}

/* Every bad event list is EFAULT and the kqueue still reports. */
static int bad_lists(int kq) {
  void *bad[FAULT_COPY_BAD];
  fault_copy_bad_buffers(bad, sizeof(struct kevent) + 8);
  const struct timespec zero = {0, 0};
  for (int i = 0; i < FAULT_COPY_BAD; i++) {
    if (bad[i] == NULL) return 1;
    errno = 0;
    const int n = kev(kq, NULL, 0, bad[i], 2, &zero);
    if (n != -1 || errno != EFAULT) {
      fprintf(stderr, "bad list %d: kevent %d (%s)\n", i, n, strerror(errno));
      return 10 + i;
    }
    struct kevent out[4];
    if (kev(kq, NULL, 0, out, 4, &zero) != 2) return 20 + i;
  }
  return 0;
}

static sigjmp_buf fault_jump;
static volatile sig_atomic_t handler_runs;
static void on_fault(int sig, siginfo_t *info, void *uc) {
  (void)sig, (void)info, (void)uc;
  handler_runs++;
  siglongjmp(fault_jump, 1);
}
static void on_fault_too(int sig, siginfo_t *info, void *uc) { on_fault(sig, info, uc); }

static int set_fault_handler(void (*h)(int, siginfo_t *, void *)) {
  struct sigaction a;
  memset(&a, 0, sizeof a);
  a.sa_sigaction = h;
  a.sa_flags = SA_SIGINFO;
  sigemptyset(&a.sa_mask);
  return sigaction(SIGSEGV, &a, NULL);
}

/* A real fault (a write to a PROT_NONE page) runs `h`, which longjmps out;
 * sigaction() shows `h` back. */
static int real_fault_runs(void (*h)(int, siginfo_t *, void *), volatile char *none) {
  const int before = handler_runs;
  if (sigsetjmp(fault_jump, 1) == 0) {
    none[0] = 1;
    return 1; /* no fault */
  }
  struct sigaction cur;
  if (handler_runs != before + 1) return 2;
  if (sigaction(SIGSEGV, NULL, &cur) != 0 || !(cur.sa_flags & SA_SIGINFO) || cur.sa_sigaction != h) return 3;
  return 0;
}

static int fault_copy(void) {
  void *bad[FAULT_COPY_BAD];
  fault_copy_bad_buffers(bad, 8);
  if (bad[1] == NULL) return 2;
  /* The program's handler, set before the engine exists. */
  if (set_fault_handler(on_fault) != 0) return 3;
  int kq, sv[2];
  if (ready_kqueue(&kq, sv) != 0) return 4;
  if (deny_process_vm_calls() != 0) return 5;
  if (heap_lists(kq, sv[0]) != 0) return 6;
  int r = bad_lists(kq);
  if (r != 0) return 100 + r;
  /* The program's handlers run on real faults: the one set before, and
   * one set while the engine keeps SIGSEGV. */
  if ((r = real_fault_runs(on_fault, bad[1])) != 0) return 40 + r;
  if (set_fault_handler(on_fault_too) != 0) return 44;
  if ((r = real_fault_runs(on_fault_too, bad[1])) != 0) return 45 + r;
  if (heap_lists(kq, sv[0]) != 0) return 49;
  /* SIGSEGV and SIGBUS blocked: a mask read back does not hold them while
   * the copy may run, and a bad list is still EFAULT (a fault on a blocked
   * SIGSEGV would kill the process). */
  sigset_t block, cur;
  sigemptyset(&block);
  sigaddset(&block, SIGSEGV);
  sigaddset(&block, SIGBUS);
  if (sigprocmask(SIG_BLOCK, &block, NULL) != 0 || sigprocmask(SIG_BLOCK, NULL, &cur) != 0) return 50;
  if (expect_copy == (sigismember(&cur, SIGSEGV) || sigismember(&cur, SIGBUS))) return 51;
  errno = 0;
  const struct timespec zero = {0, 0};
  if (kev(kq, NULL, 0, bad[1], 2, &zero) != -1 || errno != EFAULT) return 52;
  if (heap_lists(kq, sv[0]) != 0) return 53;
  printf("heap lists %s; bad event lists EFAULT; the program's SIGSEGV handlers ran\n",
         expect_copy ? "copied without process_vm_readv/writev" : "EFAULT (the copy gated off)");
  return 0;
}

/* Before any engine is loaded, the preloaded wrappers keep SIGSEGV and
 * SIGBUS out of a mask (no thread may have them blocked when the copy
 * comes): 0 when a block of both reads back as the build expects. */
static int unblockable_before_the_engine(void) {
  sigset_t both, cur;
  sigemptyset(&both);
  sigaddset(&both, SIGSEGV);
  sigaddset(&both, SIGBUS);
  if (sigprocmask(SIG_BLOCK, &both, NULL) != 0 || sigprocmask(SIG_BLOCK, NULL, &cur) != 0) return -1;
  const int blocked = sigismember(&cur, SIGSEGV) || sigismember(&cur, SIGBUS);
  sigprocmask(SIG_UNBLOCK, &both, NULL);
  return blocked == !FAULT_COPY_EXPECTED ? 0 : -1;
}

static int pingpong(long n) {
  int kq = kq_create(), s[2];
  struct kevent *ev = malloc(4 * sizeof *ev);
  if (kq < 0 || ev == NULL || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) return 1;
  EV_SET(&ev[0], s[0], EVFILT_READ, EV_ADD, 0, 0, NULL);
  if (kev(kq, ev, 1, NULL, 0, NULL) != 0) return 1;
  for (long i = 0; i < n; i++) {
    char c = 'x';
    if (write(s[1], &c, 1) != 1 || kev(kq, NULL, 0, ev, 4, NULL) != 1 || read(s[0], &c, 1) != 1) {
      fprintf(stderr, "pingpong: round %ld: %s\n", i, strerror(errno));
      return 1;
    }
  }
  free(ev);
  return 0;
}

int main(int argc, char **argv) {
  if (argc > 1 && strncmp(argv[1], "fault_copy", 10) == 0 && unblockable_before_the_engine() != 0) {
    fprintf(stderr, "fault_copy: SIGSEGV/SIGBUS blocked %s before the engine was loaded\n",
            FAULT_COPY_EXPECTED ? "(no preload?)" : "not shown");
    return 1;
  }
  void *lib = dlopen(KQ_LIBRARY, RTLD_NOW | RTLD_LOCAL);
  if (lib == NULL) {
    fprintf(stderr, "dlopen %s: %s\n", KQ_LIBRARY, dlerror());
    return 2;
  }
  /* POSIX's way to take a function from dlsym (ISO C has no cast for it). */
  *(void **)&kq_create = dlsym(lib, "kqueue");
  *(void **)&kev = dlsym(lib, "kevent");
  if (kq_create == NULL || kev == NULL) {
    fprintf(stderr, "dlsym: %s\n", dlerror());
    return 2;
  }
  if (argc < 2) return rounds();
  if (strcmp(argv[1], "fault_copy") == 0 || strcmp(argv[1], "fault_copy_gated_off") == 0) {
    if (strcmp(argv[1], "fault_copy_gated_off") == 0) expect_copy = 0;
    const int r = fault_copy();
    if (r != 0) fprintf(stderr, "fault_copy: check %d failed\n", r);
    return r == 0 ? 0 : 1;
  }
  if (strcmp(argv[1], "pingpong") == 0 && argc == 3) return pingpong(atol(argv[2]));
  fprintf(stderr, "usage: %s [fault_copy | fault_copy_gated_off | pingpong N]\n", argv[0]);
  return 2;
}
