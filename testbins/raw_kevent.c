/*
 * Raw BSD kqueue ABI test (x86_64, LP64), run under `evshim run` by
 * tests/abi/raw_portfs_run_test.cc as `raw_kevent freebsd|openbsd|dragonfly`.
 * It bypasses the API libraries: it issues the `syscall` instruction with
 * the numbers of docs/abi.md section 1 and builds and reads struct kevent
 * as raw bytes at the documented offsets (section 9), checking every byte
 * written back and nothing past the returned records.
 *
 * Prints "raw_kevent <p>: ok (N checks)" and exits 0, or lists each failure.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "raw_kevent hand-builds LP64 structs: x86_64 only"
#endif

#define FILL 0xAA
#define EV_ADD 0x0001
#define EV_RECEIPT 0x0040
#define EV_ERROR 0x4000
#define EVFILT_READ (-1)

struct personality {
  const char *name;
  long nr_kqueue, nr_kevent;
  size_t size;           /* sizeof(struct kevent) */
  int has_ext;           /* FreeBSD: uint64_t ext[4] at 32 */
  int not_a_kqueue;      /* errno of kevent() on a descriptor that is not a kqueue */
  int strips_action;     /* returned flags lose EV_ADD (FreeBSD) */
};

static const struct personality kPersonalities[] = {
    {"freebsd", 362, 560, 64, 1, EINVAL, 1},
    {"openbsd", 1031, 1030, 32, 0, EBADF, 0},
    {"dragonfly", 1020, 1021, 32, 0, EBADF, 0},
};

static int checks, failures;

#define CHECK(cond, ...)                                   \
  do {                                                     \
    ++checks;                                              \
    if (!(cond)) {                                         \
      ++failures;                                          \
      fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);                        \
      fputc('\n', stderr);                                 \
    }                                                      \
  } while (0)

static long raw(long nr, long a0, long a1, long a2, long a3, long a4, long a5) {
  long ret;
  register long r10 __asm__("r10") = a3;
  register long r8 __asm__("r8") = a4;
  register long r9 __asm__("r9") = a5;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"(nr), "D"(a0), "S"(a1), "d"(a2), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

/* struct kevent at the LP64 offsets: ident@0 filter@8 flags@10 fflags@12 data@16 udata@24 [ext@32]. */
static void put_kevent(unsigned char *p, const struct personality *P, uint64_t ident, int16_t filter,
                       uint16_t flags, uint32_t fflags, int64_t data, uint64_t udata) {
  memset(p, 0, P->size);
  memcpy(p + 0, &ident, 8);
  memcpy(p + 8, &filter, 2);
  memcpy(p + 10, &flags, 2);
  memcpy(p + 12, &fflags, 4);
  memcpy(p + 16, &data, 8);
  memcpy(p + 24, &udata, 8);
}

static void check_bytes(const char *what, const unsigned char *got, const unsigned char *want, size_t n) {
  for (size_t i = 0; i < n; i++) {
    CHECK(got[i] == want[i], "%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i], want[i]);
  }
}

static void check_untouched(const char *what, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) CHECK(p[i] == FILL, "%s: byte %zu was written (0x%02x)", what, i, p[i]);
}

#if defined(WITH_LIBRARY)
#include <signal.h>
static volatile sig_atomic_t program_sigsys;
static void on_sigsys(int sig) {
  (void)sig;
  program_sigsys++;
}
int kqueue(void); /* the personality's libevshim-kqueue-* (no header: this file keeps its own constants) */
#endif

static void run(const struct personality *P) {
#if defined(WITH_LIBRARY)
  /* Made by the library: in fast mode an in-process object, and every raw
   * call below is served by the engine's trap. */
  long made_raw = raw(P->nr_kqueue, 0, 0, 0, 0, 0, 0);
  CHECK(made_raw >= 0, "raw kqueue returned %ld", made_raw);
  close((int)made_raw);
  long kq = kqueue();
#else
  long kq = raw(P->nr_kqueue, 0, 0, 0, 0, 0, 0);
#endif
  CHECK(kq >= 0, "kqueue returned %ld", kq);
  if (kq < 0) return;
  int fds[2];
  CHECK(pipe(fds) == 0, "pipe");
  unsigned char change[64], list[2 * 64], want[64];
  unsigned char ts[16] = {0}; /* struct timespec {0, 0}: poll */

  /* EV_ADD a read filter; udata with all bits used. ext[] on FreeBSD is
   * copied unchanged, so give it a pattern too. */
  put_kevent(change, P, (uint64_t)fds[0], EVFILT_READ, EV_ADD, 0, 0, 0x8877665544332211ULL);
  if (P->has_ext) {
    for (int i = 0; i < 32; i++) change[32 + i] = (unsigned char)(i + 1);
  }
  long r = raw(P->nr_kevent, kq, (long)change, 1, 0, 0, (long)ts);
  CHECK(r == 0, "kevent EV_ADD returned %ld", r);
  /* Nothing readable yet: 0 events, nothing written. */
  memset(list, FILL, sizeof list);
  r = raw(P->nr_kevent, kq, 0, 0, (long)list, 2, (long)ts);
  CHECK(r == 0, "empty poll returned %ld", r);
  check_untouched("empty poll", list, sizeof list);

  CHECK(write(fds[1], "abc", 3) == 3, "write");
  memset(list, FILL, sizeof list);
  r = raw(P->nr_kevent, kq, 0, 0, (long)list, 2, 0 /* wait */);
  CHECK(r == 1, "kevent wait returned %ld", r);
  put_kevent(want, P, (uint64_t)fds[0], EVFILT_READ, P->strips_action ? 0 : EV_ADD, 0, 3,
             0x8877665544332211ULL);
  if (P->has_ext) memcpy(want + 32, change + 32, 32);
  check_bytes("read event", list, want, P->size);
  check_untouched("past one event", list + P->size, sizeof list - P->size);

  /* EV_RECEIPT on a closed descriptor: an EV_ERROR record, data = glibc EBADF. */
  put_kevent(change, P, 999, EVFILT_READ, EV_ADD | EV_RECEIPT, 0, 0, 0x42);
  memset(list, FILL, sizeof list);
  r = raw(P->nr_kevent, kq, (long)change, 1, (long)list, 2, (long)ts);
  CHECK(r == 1, "receipt returned %ld", r);
  uint16_t flags;
  int64_t data;
  memcpy(&flags, list + 10, 2);
  memcpy(&data, list + 16, 8);
  CHECK(flags & EV_ERROR, "receipt flags 0x%x lack EV_ERROR", flags);
  CHECK(data == EBADF, "receipt data %lld, want %d", (long long)data, EBADF);
  check_untouched("past the receipt", list + P->size, sizeof list - P->size);

  /* Errors are -errno with glibc's values; the not-a-kqueue errno is the personality's. */
  r = raw(P->nr_kevent, fds[0], 0, 0, (long)list, 1, (long)ts);
  CHECK(r == -P->not_a_kqueue, "kevent on a pipe returned %ld, want %d", r, -P->not_a_kqueue);
  r = raw(P->nr_kevent, 1000, 0, 0, (long)list, 1, (long)ts);
  CHECK(r == -EBADF, "kevent on a closed fd returned %ld", r);
  close(fds[0]);
  close(fds[1]);
  close((int)kq);
}

int main(int argc, char **argv) {
  const struct personality *P = NULL;
  for (size_t i = 0; i < sizeof kPersonalities / sizeof kPersonalities[0]; i++) {
    if (argc > 1 && strcmp(argv[1], kPersonalities[i].name) == 0) P = &kPersonalities[i];
  }
  if (P == NULL) {
    fprintf(stderr, "usage: raw_kevent freebsd|openbsd|dragonfly\n");
    return 2;
  }
#if defined(WITH_LIBRARY)
  /* The program blocks SIGSYS and installs its own handler first, through
   * the kqueue library's signal wrappers: the raw calls are still served
   * (fast mode: the trap keeps SIGSYS), and its handler gets the SIGSYS
   * that is not the trap's. */
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_sigsys;
  sigfillset(&sa.sa_mask);
  CHECK(sigaction(SIGSYS, &sa, NULL) == 0, "sigaction");
  sigset_t sys;
  sigemptyset(&sys);
  sigaddset(&sys, SIGSYS);
  CHECK(sigprocmask(SIG_BLOCK, &sys, NULL) == 0, "sigprocmask");
#endif
  run(P);
#if defined(WITH_LIBRARY)
  CHECK(sigprocmask(SIG_UNBLOCK, &sys, NULL) == 0, "unblock");
  CHECK(raise(SIGSYS) == 0 && program_sigsys == 1, "the program's SIGSYS handler ran %d times", (int)program_sigsys);
#endif
  if (failures) {
    fprintf(stderr, "raw_kevent %s: %d of %d checks failed\n", P->name, failures, checks);
    return 1;
  }
  printf("raw_kevent %s: ok (%d checks)\n", P->name, checks);
  return 0;
}
