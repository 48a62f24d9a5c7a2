/*
 * The numbers a range close (close_range, closefrom) closes that a foreign
 * library must report first (shim/foreign/poll_settle.h): those with their
 * bit set in the library's hint bitmap and, once a number beyond the bitmap
 * got a hint (the "high" flag), the open ones beyond it. Bounded whatever
 * the range: by the bitmap's words, and by the entries of /proc/self/fd.
 * C (the libraries), also compiled as C++ by its unit test
 * (tests/unit/fd_range_walk_test.cc). Raw system calls only, no lock, no
 * allocation: async-signal-safe; errno is the caller's to keep.
 */
#ifndef EVSHIM_FD_RANGE_WALK_H
#define EVSHIM_FD_RANGE_WALK_H

#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* They may run inside TSan's interceptors (the libraries' close wrappers). */
#if defined(__SANITIZE_THREAD__)
#define FD_WALK_FN static __attribute__((unused, no_sanitize("thread")))
#else
#define FD_WALK_FN static __attribute__((unused))
#endif
#define FD_WALK_WORD_BITS (8 * sizeof(unsigned long))

/* Calls report() for each open number in [first, last] (first is beyond
 * the hint bitmap, where there are no bits: the library's "high" flag).
 * Bounded by what is open: the entries of /proc/self/fd; without /proc, by
 * RLIMIT_NOFILE (a number opened above a soft limit lowered since is then
 * not reported). Raw system calls only: async-signal-safe, no errno kept
 * (the caller keeps it). */
FD_WALK_FN void fd_walk_each_open(unsigned first, unsigned last, void (*report)(int)) {
  const long dir = syscall(SYS_openat, (long)AT_FDCWD, "/proc/self/fd", (long)(O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir < 0) {
    struct {
      uint64_t cur, max;
    } lim;
    if (syscall(SYS_prlimit64, 0L, (long)RLIMIT_NOFILE, 0L, &lim) != 0 || lim.cur == 0) return;
    const uint64_t top = lim.cur - 1 < (uint64_t)last ? lim.cur - 1 : (uint64_t)last;
    for (uint64_t fd = first; fd <= top; fd++) report((int)fd);
    return;
  }
  /* struct linux_dirent64: d_ino (8), d_off (8), d_reclen (2), d_type (1), d_name. */
  union {
    char bytes[2048];
    uint64_t align;
  } buf;
  for (;;) {
    const long got = syscall(SYS_getdents64, dir, buf.bytes, (long)sizeof buf.bytes);
    if (got <= 0) break;
    for (long at = 0; at + 19 < got;) {
      unsigned short reclen;
      memcpy(&reclen, buf.bytes + at + 16, sizeof reclen);
      if (reclen == 0 || at + reclen > got) break;
      const char *name = buf.bytes + at + 19;
      uint64_t fd = 0;
      int digits = 0;
      for (long i = 0; at + 19 + i < at + reclen && name[i] >= '0' && name[i] <= '9' && digits < 11; i++, digits++) {
        fd = fd * 10 + (uint64_t)(name[i] - '0');
      }
      if (digits > 0 && digits < 11 && fd != (uint64_t)dir && fd >= first && fd <= last) report((int)fd);
      at += reclen;
    }
  }
  (void)syscall(SYS_close, dir);
}

/* Calls report() for each number in [first, last] whose bit is set in
 * `hint` (`bits` numbers), and, when `high` (a number beyond the bitmap was
 * hinted), for each open number beyond it in the range. Bounded by the
 * bitmap's words and by what is open, whatever the range. */
FD_WALK_FN void fd_walk_each_hinted(const unsigned long *hint, unsigned bits, const int *high, unsigned first,
                                    unsigned last, void (*report)(int)) {
  const unsigned word_bits = FD_WALK_WORD_BITS;
  if (first > last) return;
  if (first < bits) {
    const unsigned top = last < bits - 1 ? last : bits - 1;
    for (unsigned w = first / word_bits; w <= top / word_bits; w++) {
      unsigned long word = __atomic_load_n(&hint[w], __ATOMIC_RELAXED);
      if (w == first / word_bits) word &= ~0ul << (first % word_bits);
      if (w == top / word_bits && top % word_bits != word_bits - 1) word &= (1ul << (top % word_bits + 1)) - 1;
      while (word != 0) {
        const unsigned b = (unsigned)__builtin_ctzl(word);
        report((int)(w * word_bits + b));
        word &= word - 1;
      }
    }
  }
  if (last >= bits && __atomic_load_n(high, __ATOMIC_RELAXED)) {
    fd_walk_each_open(first > bits ? first : bits, last, report);
  }
}

#endif
