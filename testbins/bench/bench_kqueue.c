/*
 * kqueue benchmarks for scripts/bench (run under evshim), compiled once per
 * BSD personality against its <sys/event.h>.
 *   bench_kqueue_P user N          EVFILT_USER trigger + kevent wait
 *   bench_kqueue_P fdwait N        kevent(change EV_ADD|EV_ONESHOT on a ready pipe + wait)
 *   bench_kqueue_P loop PAIRS N    token round robin over socketpairs (EVFILT_READ)
 *   bench_kqueue_P memory COUNT    supervisor memory for COUNT knotes
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
  double t0 = bench_now();
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
  double dt = bench_now() - t0;
  bench_report(API, "loop", "events_per_s", (double)n / dt, "ev/s", pairs);
}

static void memory(long count) {
  bench_raise_nofile();
  pid_t sup = getppid();
  int kq = kqueue();
  struct timespec zero = {0, 0};
  struct kevent out;
  kevent(kq, NULL, 0, &out, 1, &zero);
  long before = bench_rss_kb(sup);
  for (long i = 0; i < count; i++) {
    int p[2];
    DIE_IF(pipe(p) != 0);
    struct kevent ch;
    EV_SET(&ch, p[0], EVFILT_READ, EV_ADD, 0, 0, 0);
    DIE_IF(kevent(kq, &ch, 1, NULL, 0, NULL) != 0);
    close(p[1]); /* the knote (and its watch) stays; halves the descriptors */
  }
  long after = bench_rss_kb(sup);
  bench_report(API, "memory", "supervisor_rss_kb_delta", (double)(after - before), "kB", count);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long a = atol(argv[2]);
  if (!strcmp(argv[1], "user")) user(a);
  else if (!strcmp(argv[1], "fdwait")) fdwait(a);
  else if (!strcmp(argv[1], "loop") && argc == 4) loop(a, atol(argv[3]));
  else if (!strcmp(argv[1], "memory")) memory(a);
  else return 2;
  return 0;
}
