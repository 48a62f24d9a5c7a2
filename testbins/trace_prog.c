/*
 * Programs for the trace tests (tests/integration/trace_test.cc) and the
 * tracing benchmark (docs/trace.md). argv[1] names the mode:
 *   forkexec      creates a port, forks; the child execs this program as
 *                 `child PORT`, which sends an event on the inherited port;
 *                 the parent collects it and exercises the other opcodes.
 *   layouts       every field of the structures the trace decodes (port_event_t,
 *                 port_notify_t in a sigevent, itimerspec, timespec) holds its
 *                 own value, the user cookies pointer-wide: the goldens of the
 *                 i386 build (in the VM) and the x86_64 one differ only where
 *                 the data models do.
 *   bench N       N x (port_send + port_get with a zero timeout); prints the time.
 *   tree          a tree whose processes each make their own port (so it runs
 *                 in fast mode too, docs/trace.md "Fast mode"): a thread sends,
 *                 the main thread gets; a forked child makes a port, then execs
 *                 this program as `treechild`, which makes one more and waits
 *                 on it until ETIME; the parent's last call follows the child.
 *   dropuid       (run as root) forks a child that gives up root for the
 *                 user `nobody` (65534), as nginx's workers do, then makes a
 *                 port and sends on it: a process of the traced tree under
 *                 another user is still traced.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <port.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                                             \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: check failed: %s (errno %s)\n", __FILE__, __LINE__, #cond, strerror(errno)); \
      exit(1);                                                                                  \
    }                                                                                           \
  } while (0)

static int forkexec(const char *self) {
  int port = port_create();
  CHECK(port >= 0);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    char arg[16];
    snprintf(arg, sizeof arg, "%d", port);
    execl(self, self, "child", arg, (char *)NULL);
    _exit(127);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0);
  CHECK(ev.portev_source == PORT_SOURCE_USER && ev.portev_events == 7);
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[1], POLLOUT, (void *)0x1234) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN | POLLPRI, NULL) == 0);
  CHECK(port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)p[0]) == 0);
  int ports[2] = {port, 99}, errors[2] = {-1, -1};
  CHECK(port_sendn(ports, errors, 2, 5, (void *)0x55) == 1);
  port_event_t list[4];
  uint_t nget = 2;
  struct timespec zero = {0, 0};
  CHECK(port_getn(port, list, 4, &nget, &zero) == 0 && nget == 2);
  uint_t count = 0;
  CHECK(port_getn(port, NULL, 0, &count, NULL) == 0 && count == 0);
  CHECK(port_alert(port, PORT_ALERT_SET, 3, (void *)0x66) == 0);
  /* A timeout other than zero: the library turns a zero-timeout port_get
   * into port_getn (docs/abi.md §3); the alert returns at once anyway. */
  struct timespec one_s = {1, 0};
  CHECK(port_get(port, &ev, &one_s) == 0 && ev.portev_source == PORT_SOURCE_ALERT);
  CHECK(port_alert(port, 0, 0, NULL) == 0);
  nget = 1;
  struct timespec short_wait = {0, 50 * 1000 * 1000};
  CHECK(port_getn(port, list, 4, &nget, &short_wait) == -1 && errno == ETIME && nget == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, 1000, POLLIN, NULL) == -1 && errno == EBADFD);
  CHECK(port_send(12345, 1, NULL) == -1 && errno == EBADF);
  close(port);
  printf("forkexec done\n");
  return 0;
}

static int child(const char *port_arg) {
  int port = atoi(port_arg);
  CHECK(port_send(port, 7, (void *)0x77) == 0);
  return 0;
}

/* 0xc0ffee.. in the upper half of a pointer: 32 bits on i386, 64 on x86_64. */
#define COOKIE(low) ((void *)(((uintptr_t)0xc0ffee00u << (sizeof(void *) * 8 - 32)) | (uintptr_t)(low)))

static int layouts(void) {
  int port = port_create();
  CHECK(port >= 0);
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(port_send(port, 0x1234567, COOKIE(1)) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[1], POLLOUT, COOKIE(2)) == 0);
  port_event_t list[4];
  uint_t nget = 2;
  struct timespec wait = {3, 250000000};
  CHECK(port_getn(port, list, 4, &nget, &wait) == 0 && nget == 2);
  CHECK(list[0].portev_user == COOKIE(1) && list[1].portev_user == COOKIE(2));
  port_notify_t pn = {port, COOKIE(3)};
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_PORT;
  sev.sigev_value.sival_ptr = &pn;
  timer_t timer;
  CHECK(timer_create(CLOCK_MONOTONIC, &sev, &timer) == 0);
  struct itimerspec far = {{7, 8}, {1000, 9}}, old;
  CHECK(timer_settime(timer, 0, &far, &old) == 0);
  CHECK(timer_delete(timer) == 0);
  /* ETIME: the two results travel differently per data model (docs/abi.md). */
  nget = 1;
  struct timespec short_wait = {0, 1000000};
  CHECK(port_getn(port, list, 4, &nget, &short_wait) == -1 && errno == ETIME && nget == 0);
  close(port);
  printf("layouts done\n");
  return 0;
}

static void *tree_sender(void *arg) {
  int port = *(int *)arg;
  CHECK(port_send(port, 1, (void *)0x11) == 0);
  return NULL;
}

static int treechild(void) {
  int port = port_create();
  CHECK(port >= 0);
  port_event_t ev;
  struct timespec wait = {0, 20 * 1000 * 1000};
  CHECK(port_get(port, &ev, &wait) == -1 && errno == ETIME);
  return 0;
}

static int tree(const char *self) {
  int port = port_create();
  CHECK(port >= 0);
  pthread_t t;
  CHECK(pthread_create(&t, NULL, tree_sender, &port) == 0);
  CHECK(pthread_join(t, NULL) == 0);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0 && ev.portev_events == 1);
  fflush(stdout);
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    int own = port_create();
    CHECK(own >= 0);
    CHECK(port_send(own, 2, (void *)0x22) == 0);
    port_event_t list[4];
    uint_t nget = 1;
    struct timespec zero = {0, 0};
    CHECK(port_getn(own, list, 4, &nget, &zero) == 0 && nget == 1 && list[0].portev_events == 2);
    execl(self, self, "treechild", (char *)NULL);
    _exit(127);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(port_send(port, 3, (void *)0x33) == 0);
  close(port);
  printf("tree done\n");
  return 0;
}

static int dropuid(void) {
  pid_t child = fork();
  CHECK(child >= 0);
  if (child == 0) {
    CHECK(setgid(65534) == 0 && setuid(65534) == 0);
    int own = port_create();
    CHECK(own >= 0);
    CHECK(port_send(own, 5, (void *)0x55) == 0);
    _exit(0);
  }
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  printf("dropuid done\n");
  return 0;
}

static int bench(long n) {
  int port = port_create();
  CHECK(port >= 0);
  struct timespec zero = {0, 0}, t0, t1;
  port_event_t ev;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  for (long i = 0; i < n; i++) {
    CHECK(port_send(port, 1, NULL) == 0);
    CHECK(port_get(port, &ev, &zero) == 0);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
  printf("calls=%ld seconds=%.6f us_per_call=%.3f\n", 2 * n, s, s * 1e6 / (double)(2 * n));
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "forkexec") == 0) return forkexec("/proc/self/exe");
  if (argc >= 3 && strcmp(argv[1], "child") == 0) return child(argv[2]);
  if (argc >= 2 && strcmp(argv[1], "layouts") == 0) return layouts();
  if (argc >= 2 && strcmp(argv[1], "tree") == 0) return tree("/proc/self/exe");
  if (argc >= 2 && strcmp(argv[1], "treechild") == 0) return treechild();
  if (argc >= 3 && strcmp(argv[1], "bench") == 0) return bench(atol(argv[2]));
  if (argc >= 2 && strcmp(argv[1], "dropuid") == 0) return dropuid();
  fprintf(stderr, "usage: trace_prog forkexec | layouts | tree | bench N | dropuid\n");
  return 2;
}
