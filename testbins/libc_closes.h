/*
 * What the libc-close scenarios of port_scenarios.c and kq_scenarios.c
 * share (`libc_close_same_file_back`: fclose, pclose, closedir,
 * close_range, closefrom reach the kernel's close, so they dissociate and
 * drop knotes as close does; shim/foreign/poll_settle.h). The includer
 * defines CHECK first.
 */
#ifndef EVSHIM_TESTBINS_LIBC_CLOSES_H
#define EVSHIM_TESTBINS_LIBC_CLOSES_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#ifndef CHECK
#error "define CHECK before including libc_closes.h"
#endif

enum { LC_FCLOSE, LC_PCLOSE, LC_CLOSEDIR, LC_CLOSE_RANGE, LC_CLOSEFROM, LC_CLOSE_RANGE_HIGH, LC_CLOSEFROM_HIGH,
       LC_CLOSE_RANGE_CLOEXEC, LC_COUNT };
static const char *const lc_names[LC_COUNT] = {"fclose", "pclose", "closedir", "close_range", "closefrom",
                                               "close_range beyond 65535", "closefrom beyond 65535",
                                               "close_range(CLOSE_RANGE_CLOEXEC)"};

/* Numbers beyond the libraries' 65536-bit hint bitmap: RLIMIT_NOFILE must
 * reach them (root may raise the hard limit). 0 when it cannot. */
static int lc_allow_high(int want) {
  struct rlimit rl;
  CHECK(getrlimit(RLIMIT_NOFILE, &rl) == 0);
  if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur <= (rlim_t)want) {
    rl.rlim_cur = (rlim_t)want + 64;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < rl.rlim_cur) rl.rlim_max = rl.rlim_cur;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  }
  return 1;
}

/* `fd` moved to the lowest free number >= `at` (the old number closed). */
static int lc_move(int fd, int at) {
  int n = fcntl(fd, F_DUPFD, at);
  CHECK(n >= at);
  CHECK(close(fd) == 0);
  return n;
}

/* Nothing open in [from, to] (a range close must not take anything else). */
static void lc_none_open(int from, int to) {
  for (int fd = from; fd <= to; fd++) CHECK(fcntl(fd, F_GETFD) == -1 && errno == EBADF);
}

/* Case `how`'s libc close of number `n` (its stream `f`, its directory
 * `d`), then, unless it closed nothing (CLOSE_RANGE_CLOEXEC), the same open
 * file back at `n` from the kept dup `keep`. */
static void lc_close_then_back(int how, int n, int keep, FILE *f, DIR *d) {
  switch (how) {
    case LC_FCLOSE: CHECK(fclose(f) == 0); break;
    case LC_PCLOSE: CHECK(pclose(f) == 0); break;
    case LC_CLOSEDIR: CHECK(closedir(d) == 0); break;
    case LC_CLOSE_RANGE: CHECK(close_range((unsigned)n, (unsigned)n + 16, 0) == 0); break;
    case LC_CLOSE_RANGE_HIGH: CHECK(close_range((unsigned)n, ~0u, 0) == 0); break;
    case LC_CLOSEFROM:
    case LC_CLOSEFROM_HIGH: closefrom(n); break;
    case LC_CLOSE_RANGE_CLOEXEC:
      CHECK(close_range((unsigned)n, (unsigned)n, CLOSE_RANGE_CLOEXEC) == 0);
      CHECK(fcntl(n, F_GETFD) == FD_CLOEXEC); /* still open, only marked */
      break;
    default: CHECK(0);
  }
  if (how != LC_CLOSE_RANGE_CLOEXEC) {
    CHECK(fcntl(n, F_GETFD) == -1 && errno == EBADF);
    /* Back at N by F_DUPFD (N is the lowest free number from N): the
     * library's dup2 would report N itself (a hinted number it replaces,
     * closed or not), which would hide a missed close. */
    CHECK(fcntl(keep, F_DUPFD, n) == n);
  }
}

#endif
