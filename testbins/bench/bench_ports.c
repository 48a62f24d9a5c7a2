/*
 * Event-port benchmarks for scripts/bench (run under evshim).
 *   bench_ports user N           port_send + port_get
 *   bench_ports fdwait N         port_associate + port_getn on a ready pipe
 *   bench_ports pollwait N       port_associate, then poll() on the port's descriptor
 *                                until another thread's write (50 us later) makes the
 *                                pipe ready, then port_getn with a zero timeout: a
 *                                program that waits outside the library's calls
 *   bench_ports loop PAIRS N     token round robin over socketpairs (re-associate per event)
 *   bench_ports threads T N      N user events consumed by T threads blocked in port_get
 *   bench_ports procs K PAIRS N  K loops in K processes of one tree: aggregate events/s
 *   bench_ports memory fd COUNT|max  bytes per FD association (this process + the supervisor)
 */
#define _GNU_SOURCE
#include <poll.h>
#include <port.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench_common.h"

static void user(long n) {
  int port = port_create();
  DIE_IF(port < 0);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    DIE_IF(port_send(port, 1, NULL) != 0);
    port_event_t ev;
    DIE_IF(port_get(port, &ev, NULL) != 0);
  }
  bench_report("ports", "user", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
}

static void fdwait(long n) {
  int port = port_create(), p[2];
  DIE_IF(pipe(p) != 0);
  DIE_IF(write(p[1], "x", 1) != 1);
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    DIE_IF(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) != 0);
    port_event_t ev[1];
    uint_t nget = 1;
    DIE_IF(port_getn(port, ev, 1, &nget, NULL) != 0 || nget != 1);
  }
  bench_report("ports", "fdwait", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
}

static void loop(long pairs, long n) {
  bench_raise_nofile();
  int port = port_create();
  int (*sv)[2] = calloc((size_t)pairs, sizeof *sv);
  for (long i = 0; i < pairs; i++) {
    DIE_IF(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0);
    DIE_IF(port_associate(port, PORT_SOURCE_FD, (uintptr_t)sv[i][0], POLLIN, (void *)(intptr_t)i) != 0);
  }
  DIE_IF(write(sv[0][1], "t", 1) != 1);
  double t0 = bench_start();
  for (long done = 0; done < n;) {
    port_event_t ev[8];
    uint_t nget = 1;
    DIE_IF(port_getn(port, ev, 8, &nget, NULL) != 0);
    for (uint_t j = 0; j < nget; j++, done++) {
      long i = (long)(intptr_t)ev[j].portev_user;
      char c;
      DIE_IF(read(sv[i][0], &c, 1) != 1);
      DIE_IF(port_associate(port, PORT_SOURCE_FD, (uintptr_t)sv[i][0], POLLIN, (void *)(intptr_t)i) != 0);
      DIE_IF(write(sv[(i + 1) % pairs][1], &c, 1) != 1);
    }
  }
  double t1 = bench_now();
  bench_done(t0, t1);
  double dt = t1 - t0;
  bench_report("ports", "loop", "events_per_s", (double)n / dt, "ev/s", pairs);
}

static int tport;
static long per_thread;
static void *consumer(void *arg) {
  (void)arg;
  for (long i = 0; i < per_thread; i++) {
    port_event_t ev;
    DIE_IF(port_get(tport, &ev, NULL) != 0);
  }
  return NULL;
}

static void pollwait(long n) {
  int port = port_create(), p[2];
  DIE_IF(port < 0 || pipe(p) != 0);
  struct bench_late_writer w;
  bench_late_writer_start(&w, p[1]);
  struct timespec zero = {0, 0};
  double t0 = bench_now();
  for (long i = 0; i < n; i++) {
    DIE_IF(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) != 0);
    bench_late_writer_kick(&w);
    struct pollfd pfd = {port, POLLIN, 0};
    DIE_IF(poll(&pfd, 1, -1) != 1);
    port_event_t ev[1];
    uint_t nget = 1;
    DIE_IF(port_getn(port, ev, 1, &nget, &zero) != 0 || nget != 1);
    char c;
    DIE_IF(read(p[0], &c, 1) != 1);
  }
  bench_report("ports", "pollwait", "us_per_op", (bench_now() - t0) / (double)n * 1e6, "us", n);
  bench_late_writer_stop(&w);
}

static void threads(long t, long n) {
  tport = port_create();
  per_thread = n / t;
  pthread_t *ids = calloc((size_t)t, sizeof *ids);
  for (long i = 0; i < t; i++) pthread_create(&ids[i], NULL, consumer, NULL);
  usleep(100 * 1000);
  double t0 = bench_now();
  /* A port holds at most process.max-port-events (65536) events: a producer
   * whose port_send makes no system call (fast mode) can run that far ahead
   * of one taker, and port_send is then EAGAIN (port.c, rule 4): wait for
   * room, as a real producer must. */
  for (long i = 0; i < per_thread * t; i++) {
    while (port_send(tport, 1, NULL) != 0) {
      DIE_IF(errno != EAGAIN);
      sched_yield();
    }
  }
  for (long i = 0; i < t; i++) pthread_join(ids[i], NULL);
  double dt = bench_now() - t0;
  bench_report("ports", "threads", "events_per_s", (double)(per_thread * t) / dt, "ev/s", t);
}

static void memory(long count) {
  bench_raise_nofile();
  int port = port_create();
  port_event_t ev;
  struct timespec zero = {0, 0};
  port_get(port, &ev, &zero); /* warm up the engine's tables */
  struct bench_mem before = bench_mem_now();
  for (long i = 0; i < count; i++) {
    int p[2];
    DIE_IF(pipe(p) != 0);
    DIE_IF(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) != 0);
    close(p[1]); /* the association (and its watch) stays; halves the descriptors */
  }
  bench_report_memory("ports", "fd", before, count);
}

int main(int argc, char **argv) {
  if (argc < 3) return 2;
  long a = atol(argv[2]);
  if (!strcmp(argv[1], "user")) user(a);
  else if (!strcmp(argv[1], "fdwait")) fdwait(a);
  else if (!strcmp(argv[1], "pollwait")) pollwait(a);
  else if (!strcmp(argv[1], "loop") && argc == 4) loop(a, atol(argv[3]));
  else if (!strcmp(argv[1], "procs") && argc == 5) bench_procs("ports", a, atol(argv[3]), atol(argv[4]), loop);
  else if (!strcmp(argv[1], "threads") && argc == 4) threads(a, atol(argv[3]));
  else if (!strcmp(argv[1], "memory") && argc == 4 && !strcmp(argv[2], "fd")) memory(bench_watch_count(argv[3]));
  else return 2;
  return 0;
}
