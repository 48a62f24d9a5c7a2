/*
 * kqueue benchmarks for scripts/bench (run under evshim), compiled once per
 * BSD personality against its <sys/event.h>.
 *   bench_kqueue_P user N          EVFILT_USER trigger + kevent wait
 *   bench_kqueue_P fdwait N        kevent(change EV_ADD|EV_ONESHOT on a ready pipe + wait)
 *   bench_kqueue_P loop PAIRS N    token round robin over socketpairs (EVFILT_READ)
 *   bench_kqueue_P procs K PAIRS N K loops in K processes of one tree: aggregate events/s
 *   bench_kqueue_P memory KIND COUNT|max  bytes per knote (this process + the supervisor);
 *                                  KIND fd (EVFILT_READ on a pipe), user (EVFILT_USER),
 *                                  timer (EVFILT_TIMER, 1 hour: never fires here)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <sys/event.h>
#include <sys/socket.h>

#include "bench_common.h"

#ifndef PERSONALITY
#define PERSONALITY "kqueue"
#endif
#define API "kqueue-" PERSONALITY

static void user(long n) {
  int kq = kqueue();
  DIE_IF(kq < 0);
  struct kevent kev;
  EV_SET(&kev, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, 0);
  DIE_IF(kevent(kq, &kev, 1, NULL, 0, NULL) != 0);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    struct kevent trig, out;
    EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
    DIE_IF(kevent(kq, &trig, 1, NULL, 0, NULL) != 0);
    DIE_IF(kevent(kq, NULL, 0, &out, 1, NULL) != 1);
  }
  bench_report(API, "user", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
}

static void fdwait(long n) {
  int kq = kqueue(), p[2];
  DIE_IF(pipe(p) != 0);
  DIE_IF(write(p[1], "x", 1) != 1);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    struct kevent ch, out;
    EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, 0);
    DIE_IF(kevent(kq, &ch, 1, &out, 1, NULL) != 1);
  }
  bench_report(API, "fdwait", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
}

static void loop(long pairs, long n) {
  bench_raise_nofile();
  int kq = kqueue();
  int (*sv)[2] = calloc((size_t)pairs, sizeof *sv);
  for (long i = 0; i < pairs; i++) {
    DIE_IF(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0);
    struct kevent ch;
    EV_SET(&ch, sv[i][0], EVFILT_READ, EV_ADD, 0, 0, (void *)(intptr_t)i);
    DIE_IF(kevent(kq, &ch, 1, NULL, 0, NULL) != 0);
  }
  DIE_IF(write(sv[0][1], "t", 1) != 1);
  double t0 = bench_start();
  for (long done = 0; done < n;) {
    struct kevent out[8];
    int k = kevent(kq, NULL, 0, out, 8, NULL);
    DIE_IF(k <= 0);
    for (int j = 0; j < k; j++, done++) {
      long i = (long)(intptr_t)out[j].udata;
      char c;
      DIE_IF(read(sv[i][0], &c, 1) != 1);
      DIE_IF(write(sv[(i + 1) % pairs][1], &c, 1) != 1);
    }
  }
  double t1 = bench_now();
  bench_done(t0, t1);
  double dt = t1 - t0;
  bench_report(API, "loop", "events_per_s", (double)n / dt, "ev/s", pairs);
}

/* Knotes that need no descriptor are added in batches of one kevent call. */
static void add_knotes(int kq, short filter, long count) {
  enum { kBatch = 256 };
  struct kevent ch[kBatch];
  for (long i = 0; i < count;) {
    int n = 0;
    for (; n < kBatch && i < count; n++, i++) {
      if (filter == EVFILT_USER) EV_SET(&ch[n], (uintptr_t)i, EVFILT_USER, EV_ADD, 0, 0, 0);
      else EV_SET(&ch[n], (uintptr_t)i, EVFILT_TIMER, EV_ADD, 0, 3600 * 1000, 0); /* ms */
    }
    DIE_IF(kevent(kq, ch, n, NULL, 0, NULL) != 0);
  }
}

static void memory(const char *kind, long count) {
  bench_raise_nofile();
  int kq = kqueue();
  struct timespec zero = {0, 0};
  struct kevent out;
  kevent(kq, NULL, 0, &out, 1, &zero); /* warm up the engine's tables */
  struct bench_mem before = bench_mem_now();
  if (!strcmp(kind, "user")) {
    add_knotes(kq, EVFILT_USER, count);
  } else if (!strcmp(kind, "timer")) {
    add_knotes(kq, EVFILT_TIMER, count);
  } else {
    for (long i = 0; i < count; i++) {
      int p[2];
      DIE_IF(pipe(p) != 0);
      struct kevent ch;
      EV_SET(&ch, p[0], EVFILT_READ, EV_ADD, 0, 0, 0);
      DIE_IF(kevent(kq, &ch, 1, NULL, 0, NULL) != 0);
      close(p[1]); /* the knote (and its watch) stays; halves the descriptors */
    }
  }
  bench_report_memory(API, kind, before, count);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long a = atol(argv[2]);
  if (!strcmp(argv[1], "user")) user(a);
  else if (!strcmp(argv[1], "fdwait")) fdwait(a);
  else if (!strcmp(argv[1], "loop") && argc == 4) loop(a, atol(argv[3]));
  else if (!strcmp(argv[1], "procs") && argc == 5) bench_procs(API, a, atol(argv[3]), atol(argv[4]), loop);
  else if (!strcmp(argv[1], "memory") && argc == 4 &&
           (!strcmp(argv[2], "fd") || !strcmp(argv[2], "user") || !strcmp(argv[2], "timer")))
    memory(argv[2], bench_watch_count(argv[3]));
  else return 2;
  return 0;
}
