/*
 * kq_diff FIRST_SEED LAST_SEED STEPS: the kqueue counterpart of
 * port_diff.c, compiled against each personality's <sys/event.h> and
 * library (kq_diff_freebsd, _openbsd, _dragonfly). A random walk of kevent
 * changes (READ, WRITE and USER knotes with EV_ADD, EV_DELETE, EV_ENABLE,
 * EV_DISABLE, EV_ONESHOT, EV_CLEAR, EV_DISPATCH, EV_RECEIPT), scans and
 * file operations, one fresh world per seed, every result printed;
 * tests/integration/mode_diff.py requires the same output in fast mode and
 * supervised (docs/design.md "Both paths, one answer").
 */
#define _GNU_SOURCE
#include <sys/event.h>

#include "diff_walk.h"

enum { kMaxScan = 4 };

static const char *filter_name(int filter) {
  switch (filter) {
    case EVFILT_READ: return "read";
    case EVFILT_WRITE: return "write";
    case EVFILT_USER: return "user";
    default: return "other";
  }
}

static void print_events(const struct kevent *ev, int n) {
  for (int i = 0; i < n; i++) {
    printf(" [%s id=%lu fl=%#x ff=%#x data=%lld ud=%lu]", filter_name(ev[i].filter), (unsigned long)ev[i].ident,
           (unsigned)ev[i].flags, (unsigned)ev[i].fflags, (long long)ev[i].data,
           (unsigned long)(uintptr_t)ev[i].udata);
  }
}

static void walk(unsigned seed, unsigned steps) {
  seed_rand(seed);
  next_rand(2);
  const int kq = kqueue();
  if (kq < 0) {
    perror("kqueue");
    exit(2);
  }
  struct file files[kFiles];
  for (int i = 0; i < kFiles; i++) open_file(&files[i], i, i % 2);
  static char buf[300000];
  memset(buf, 'x', sizeof buf);
  const struct timespec zero = {0, 0};
  printf("seed %u\n", seed);
  for (unsigned step = 1; step <= steps; step++) {
    const int index = (int)next_rand(kFiles);
    struct file *f = &files[index];
    const unsigned op = next_rand(100);
    const int changes_readiness = (op >= 38 && op < 60) || (op >= 86 && op < 100);
    if (changes_readiness) {
      /* Before a file's readiness changes: a kevent call with nothing to
       * do, which looks, so the activity before it is taken first. Fast
       * mode takes a file's activity at its next look, the kernels in the
       * wake-up (DF kern_event.c:1796-1797): an EV_ONESHOT knote whose
       * file woke and stopped being ready before the next look is posted
       * by DragonFly and FreeBSD (DF :1510, no f_event for a one-shot)
       * and not by fast mode (docs/abi.md §10 "Fast mode"). The walk does
       * not test that one difference. */
      printf("%u: look", step);
      result(kevent(kq, NULL, 0, NULL, 0, &zero));
      printf("\n");
    }
    printf("%u:", step);
    if (op < 30) {
      static const unsigned short flags[] = {
          EV_ADD, EV_ADD, EV_ADD | EV_CLEAR, EV_ADD | EV_ONESHOT, EV_ADD | EV_DISPATCH,
          EV_ADD | EV_DISABLE, EV_DELETE, EV_ENABLE, EV_DISABLE, EV_ADD | EV_DISPATCH | EV_CLEAR,
      };
      /* READ on the read end, WRITE on the write end; for files 0 and 4
       * the other way round: READ on a pipe's write end and WRITE on its
       * read end, the BSDs' reverse direction, which nothing writes here
       * (docs/kqueue.md "READ/WRITE data"; since session 34). Each number
       * gets one of the two filters only: a READ and a WRITE knote on one
       * file end can be activated by one wake-up together (the peer's
       * close), and the order of the two is the pipe's or socket layer's
       * (pipeselwakeup, sorwakeup and sowwakeup), which the seeds do not
       * give, and the two paths differ there. */
      const int write_filter = next_rand(3) == 0;
      const int reverse = index % 4 == 0;
      const int fd = write_filter != reverse ? f->w : f->r;
      unsigned short fl = flags[next_rand(sizeof flags / sizeof flags[0])];
      if (next_rand(4) == 0) fl |= EV_RECEIPT;
      struct kevent ch, out[2];
      EV_SET(&ch, (uintptr_t)(unsigned)fd, write_filter ? EVFILT_WRITE : EVFILT_READ, fl, 0, 0,
             (void *)(uintptr_t)step);
      printf(" change %s fd=%d fl=%#x", write_filter ? "write" : "read", fd, (unsigned)fl);
      const int r = kevent(kq, &ch, 1, out, 2, &zero);
      result(r);
      if (r > 0) print_events(out, r);
    } else if (op < 38) {
      const unsigned ident = 1 + next_rand(2);
      static const unsigned short flags[] = {EV_ADD | EV_CLEAR, EV_ADD, EV_ADD | EV_ONESHOT, 0, 0, 0, EV_DELETE,
                                             EV_DISABLE, EV_ENABLE};
      const unsigned short fl = flags[next_rand(sizeof flags / sizeof flags[0])];
      const unsigned fflags = fl == 0 ? NOTE_TRIGGER : 0;
      struct kevent ch, out[2];
      EV_SET(&ch, ident, EVFILT_USER, fl, fflags, 0, (void *)(uintptr_t)step);
      printf(" user id=%u fl=%#x ff=%#x", ident, (unsigned)fl, fflags);
      const int r = kevent(kq, &ch, 1, out, 2, &zero);
      result(r);
      if (r > 0) print_events(out, r);
    } else if (op < 52) {
      write_step(f, buf, sizeof buf);
    } else if (op < 60) {
      drain_step(f, buf, sizeof buf);
    } else if (op < 86) {
      struct kevent out[kMaxScan];
      const int n = 1 + (int)next_rand(kMaxScan);
      printf(" scan n=%d", n);
      const int r = kevent(kq, NULL, 0, out, n, &zero);
      result(r);
      if (r > 0) print_events(out, r);
    } else if (op < 91) {
      reopen_step(files, index);
    } else if (op < 95) {
      close_writer_step(f);
    } else {
      move_step(files, f);
    }
    printf("\n");
  }
  /* What is left, in order. */
  struct kevent left[64];
  printf("end: scan n=64");
  const int r = kevent(kq, NULL, 0, left, 64, &zero);
  result(r);
  if (r > 0) print_events(left, r);
  printf("\n");
  close(kq);
  for (int i = 0; i < kFiles; i++) {
    close_fd(&files[i].r);
    close_fd(&files[i].w);
  }
}

int main(int argc, char **argv) { return walk_main(argc, argv, walk); }
