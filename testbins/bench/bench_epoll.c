/*
 * Native Linux baselines for scripts/bench: the closest epoll/eventfd
 * equivalent of each foreign call measured by bench_ports and bench_kqueue.
 *   bench_epoll user N         eventfd write + epoll_wait + read (port_send + port_get)
 *   bench_epoll fdwait N       epoll_ctl(MOD, ONESHOT) + epoll_wait on a ready pipe
 *   bench_epoll pollwait N     epoll_ctl(MOD, ONESHOT), then poll() on the epoll's
 *                              descriptor until another thread's write (50 us later),
 *                              then epoll_wait with a zero timeout (bench_ports pollwait)
 *   bench_epoll fdwait-fionread N  the same plus a FIONREAD (kevent's EVFILT_READ data):
 *                              the ceiling of the kqueue personalities' fdwait
 *   bench_epoll loop PAIRS N   token passed round robin over socketpairs (level-triggered)
 *   bench_epoll loop-oneshot PAIRS N  the same loop with the event-port rules on bare
 *                              epoll: EPOLLONESHOT registrations, re-armed with
 *                              EPOLL_CTL_MOD after each event (port_associate's
 *                              re-arm, rules 5 and 6): the ceiling of any epoll-based
 *                              emulation that keeps them (docs/performance.md)
 *   bench_epoll loop-fionread PAIRS N  the level loop plus a FIONREAD per event (kevent's
 *                              EVFILT_READ data: the bytes to read): the same ceiling
 *                              for the kqueue personalities
 *   bench_epoll procs K PAIRS N  K loops in K processes at once: aggregate events/s
 *   bench_epoll threads T N    N events consumed by T threads blocked in epoll_wait
 *                              on one eventfd (port_send + port_get by T threads)
 *   bench_epoll memory fd COUNT|max  bytes per epoll entry in this process (the baseline)
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "bench_common.h"

static void user(long n) {
  int ep = epoll_create1(0), efd = eventfd(0, EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = efd};
  DIE_IF(epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev) != 0);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    uint64_t one = 1;
    DIE_IF(write(efd, &one, sizeof one) != sizeof one);
    struct epoll_event out;
    DIE_IF(epoll_wait(ep, &out, 1, -1) != 1);
    DIE_IF(read(efd, &one, sizeof one) != sizeof one);
  }
  bench_report("epoll", "user", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
}

/* The extra system call per event of an exact emulation's ceiling
 * (docs/performance.md "The ceiling of the loop goal"): none, a re-arm MOD
 * of a one-shot registration (ports), or a FIONREAD (kevent's data). */
enum extra { EXTRA_NONE, EXTRA_REARM, EXTRA_FIONREAD };

static void fdwait_with(long n, enum extra extra, const char *name) {
  int ep = epoll_create1(0), p[2];
  DIE_IF(pipe(p) != 0);
  DIE_IF(write(p[1], "x", 1) != 1);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.fd = p[0]};
  DIE_IF(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0);
  struct epoll_event out;
  DIE_IF(epoll_wait(ep, &out, 1, -1) != 1);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    DIE_IF(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) != 0);
    DIE_IF(epoll_wait(ep, &out, 1, -1) != 1);
    int avail = 0;
    DIE_IF(extra == EXTRA_FIONREAD && (ioctl(p[0], FIONREAD, &avail) != 0 || avail != 1));
  }
  bench_report("epoll", name, "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
}

static void fdwait(long n) { fdwait_with(n, EXTRA_NONE, "fdwait"); }

static void pollwait(long n) {
  int ep = epoll_create1(0), p[2];
  DIE_IF(ep < 0 || pipe(p) != 0);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLONESHOT, .data.fd = p[0]};
  DIE_IF(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0);
  struct bench_late_writer w;
  bench_late_writer_start(&w, p[1]);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    DIE_IF(epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev) != 0);
    bench_late_writer_kick(&w);
    struct pollfd pfd = {ep, POLLIN, 0};
    DIE_IF(poll(&pfd, 1, -1) != 1);
    struct epoll_event out;
    DIE_IF(epoll_wait(ep, &out, 1, 0) != 1);
    char c;
    DIE_IF(read(p[0], &c, 1) != 1);
  }
  bench_report("epoll", "pollwait", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
  bench_late_writer_stop(&w);
}

static void loop_with(long pairs, long n, enum extra extra, const char *name) {
  bench_raise_nofile();
  int ep = epoll_create1(0);
  int (*sv)[2] = calloc((size_t)pairs, sizeof *sv);
  const uint32_t events = EPOLLIN | (extra == EXTRA_REARM ? EPOLLONESHOT : 0);
  for (long i = 0; i < pairs; i++) {
    DIE_IF(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0);
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)i};
    DIE_IF(epoll_ctl(ep, EPOLL_CTL_ADD, sv[i][0], &ev) != 0);
  }
  DIE_IF(write(sv[0][1], "t", 1) != 1);
  double t0 = bench_start();
  for (long done = 0; done < n;) {
    struct epoll_event out[8];
    int k = epoll_wait(ep, out, 8, -1);
    DIE_IF(k <= 0);
    for (int j = 0; j < k; j++, done++) {
      long i = (long)out[j].data.u64;
      int avail = 0;
      DIE_IF(extra == EXTRA_FIONREAD && (ioctl(sv[i][0], FIONREAD, &avail) != 0 || avail != 1));
      char c;
      DIE_IF(read(sv[i][0], &c, 1) != 1);
      if (extra == EXTRA_REARM) {
        struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)i};
        DIE_IF(epoll_ctl(ep, EPOLL_CTL_MOD, sv[i][0], &ev) != 0);
      }
      DIE_IF(write(sv[(i + 1) % pairs][1], &c, 1) != 1);
    }
  }
  double t1 = bench_now();
  bench_done(t0, t1);
  bench_report("epoll", name, "events_per_s", (double)n / (t1 - t0), "ev/s", pairs);
}

static void loop(long pairs, long n) { loop_with(pairs, n, EXTRA_NONE, "loop"); }

/* The same watches as bench_ports/bench_kqueue memory fd: a pipe's read end
 * per watch, the write end closed. */
/* bench_ports threads: one producer posts N user events, T threads each
 * take N/T of them, blocked in port_get. Here: a semaphore eventfd (one
 * read takes one event) in one level-triggered epoll shared by the T
 * threads; a thread that lost the race for an event (EAGAIN) waits again. */
static int tep, tefd;
static long per_thread;
static void *consumer(void *arg) {
  (void)arg;
  for (long taken = 0; taken < per_thread;) {
    struct epoll_event out;
    DIE_IF(epoll_wait(tep, &out, 1, -1) != 1);
    uint64_t one;
    if (read(tefd, &one, sizeof one) == sizeof one) taken++;
    else DIE_IF(errno != EAGAIN);
  }
  return NULL;
}

static void threads(long t, long n) {
  tep = epoll_create1(0);
  tefd = eventfd(0, EFD_NONBLOCK | EFD_SEMAPHORE);
  struct epoll_event ev = {.events = EPOLLIN, .data.fd = tefd};
  DIE_IF(epoll_ctl(tep, EPOLL_CTL_ADD, tefd, &ev) != 0);
  per_thread = n / t;
  pthread_t *ids = calloc((size_t)t, sizeof *ids);
  for (long i = 0; i < t; i++) pthread_create(&ids[i], NULL, consumer, NULL);
  usleep(100 * 1000);
  double t0 = bench_now();
  for (long i = 0; i < per_thread * t; i++) {
    uint64_t one = 1;
    DIE_IF(write(tefd, &one, sizeof one) != sizeof one);
  }
  for (long i = 0; i < t; i++) pthread_join(ids[i], NULL);
  double dt = bench_now() - t0;
  bench_report("epoll", "threads", "events_per_s", (double)(per_thread * t) / dt, "ev/s", t);
}

static void memory(long count) {
  bench_raise_nofile();
  int ep = epoll_create1(0);
  struct bench_mem before = bench_mem_now();
  for (long i = 0; i < count; i++) {
    int p[2];
    DIE_IF(pipe(p) != 0);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
    DIE_IF(epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0);
    close(p[1]);
  }
  bench_report_memory("epoll", "fd", before, count);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long a = atol(argv[2]);
  if (!strcmp(argv[1], "user")) user(a);
  else if (!strcmp(argv[1], "fdwait")) fdwait(a);
  else if (!strcmp(argv[1], "pollwait")) pollwait(a);
  else if (!strcmp(argv[1], "fdwait-fionread")) fdwait_with(a, EXTRA_FIONREAD, "fdwait-fionread");
  else if (!strcmp(argv[1], "loop") && argc == 4) loop(a, atol(argv[3]));
  else if (!strcmp(argv[1], "loop-oneshot") && argc == 4) loop_with(a, atol(argv[3]), EXTRA_REARM, "loop-oneshot");
  else if (!strcmp(argv[1], "loop-fionread") && argc == 4) loop_with(a, atol(argv[3]), EXTRA_FIONREAD, "loop-fionread");
  else if (!strcmp(argv[1], "procs") && argc == 5) bench_procs("epoll", a, atol(argv[3]), atol(argv[4]), loop);
  else if (!strcmp(argv[1], "threads") && argc == 4) threads(a, atol(argv[3]));
  else if (!strcmp(argv[1], "memory") && argc == 4 && !strcmp(argv[2], "fd")) memory(bench_watch_count(argv[3]));
  else return 2;
  return 0;
}
