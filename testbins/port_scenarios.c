/*
 * Event-port scenarios run under `evshim run` by tests/integration/ports_test.cc.
 * argv[1] names the scenario; exit 0 = the behaviour matched illumos.
 * Each scenario cites the rule (shared/design/research/ports.md) it checks.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <evshim_portfs.h>
#include <port.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, errno, \
              strerror(errno));                                                  \
      exit(1);                                                                   \
    }                                                                            \
  } while (0)

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

static int port;

/* Rule 25: port_get with a 1 s timeout and nothing queued is ETIME after ~1 s. */
static int etime(void) {
  port_event_t ev;
  struct timespec to = {1, 0};
  double t0 = now_s();
  CHECK(port_get(port, &ev, &to) == -1 && errno == ETIME);
  double dt = now_s() - t0;
  printf("ETIME after %.3f s\n", dt);
  CHECK(dt >= 0.95 && dt < 3.0);
  return 0;
}

static void *send_later(void *arg) {
  sleep_ms(100);
  CHECK(port_send(port, 7, arg) == 0);
  return NULL;
}

/* A thread blocked in port_get wakes when another thread calls port_send. */
static int wake_on_send(void) {
  pthread_t t;
  pthread_create(&t, NULL, send_later, (void *)0x77);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0);
  CHECK(ev.portev_source == PORT_SOURCE_USER && ev.portev_events == 7 && ev.portev_user == (void *)0x77);
  pthread_join(t, NULL);
  printf("woken by port_send\n");
  return 0;
}

static int got[2];
static void *getter(void *arg) {
  port_event_t ev;
  struct timespec to = {5, 0};
  CHECK(port_get(port, &ev, &to) == 0);
  got[(long)arg] = ev.portev_events;
  return NULL;
}

/* Two threads blocked on one port each get one of two events, exactly once. */
static int two_waiters(void) {
  pthread_t a, b;
  pthread_create(&a, NULL, getter, (void *)0);
  pthread_create(&b, NULL, getter, (void *)1);
  sleep_ms(200);
  CHECK(port_send(port, 1, NULL) == 0);
  CHECK(port_send(port, 2, NULL) == 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECK((got[0] == 1 && got[1] == 2) || (got[0] == 2 && got[1] == 1));
  uint_t n = 0;
  CHECK(port_getn(port, NULL, 0, &n, NULL) == 0 && n == 0); /* rule 20: max 0 = count */
  printf("each waiter got one event: %d %d\n", got[0], got[1]);
  return 0;
}

/* The supervisor never keeps a target's file open: with the pipe's read end
 * associated, closing it makes the writer see EPIPE as without evshim. */
static int epipe(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) == 0);
  signal(SIGPIPE, SIG_IGN);
  CHECK(close(p[0]) == 0);
  CHECK(write(p[1], "x", 1) == -1 && errno == EPIPE);
  printf("writer saw EPIPE\n");
  return 0;
}

/* Same for a socket: the peer sees EOF when the program closes its end. */
static int socket_eof(void) {
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)sv[0], POLLIN, NULL) == 0);
  CHECK(close(sv[0]) == 0);
  char c;
  CHECK(read(sv[1], &c, 1) == 0);
  printf("peer saw EOF\n");
  return 0;
}

/* Rules 5-7: FD associations are one-shot, fire at once when ready, and
 * re-association replaces the user value. */
static int fd_oneshot(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(write(p[1], "x", 1) == 1);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, (void *)1) == 0);
  port_event_t ev;
  struct timespec zero = {0, 0};
  CHECK(port_get(port, &ev, &zero) == 0 && ev.portev_source == PORT_SOURCE_FD);
  CHECK(ev.portev_object == (uintptr_t)p[0] && ev.portev_events == POLLIN && ev.portev_user == (void *)1);
  memset(&ev, 0, sizeof ev);
  CHECK(port_get(port, &ev, &zero) == 0 && ev.portev_source == 0); /* one-shot: nothing more */
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, (void *)2) == 0);
  CHECK(port_get(port, &ev, &zero) == 0 && ev.portev_user == (void *)2);
  /* writability: POLLOUT, and illumos semantics for POLLWRNORM through <poll.h> */
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[1], POLLOUT, (void *)3) == 0);
  CHECK(port_get(port, &ev, &zero) == 0 && ev.portev_events == POLLOUT && ev.portev_user == (void *)3);
  /* rule 11: dissociate of a retrieved (inactive) association is ENOENT */
  CHECK(port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)p[1]) == -1 && errno == ENOENT);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) == 0);
  CHECK(port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)p[0]) == 0);
  CHECK(port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)99) == -1 && errno == EBADFD);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)99, POLLIN, NULL) == -1 && errno == EBADFD);
  CHECK(port_associate(port, 99, 0, 0, NULL) == -1 && errno == EINVAL);
  printf("one-shot associations behave\n");
  return 0;
}

/* Rule 10: closing an associated descriptor dissociates it silently and
 * discards its queued event. */
static int close_discards(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(write(p[1], "x", 1) == 1);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) == 0);
  uint_t n = 0;
  CHECK(port_getn(port, NULL, 0, &n, NULL) == 0 && n == 1);
  CHECK(close(p[0]) == 0);
  port_event_t ev[2];
  struct timespec zero = {0, 0};
  n = 1;
  CHECK(port_getn(port, ev, 2, &n, &zero) == 0 && n == 0);
  printf("closed descriptor's event discarded\n");
  return 0;
}

/* Rule 25: port_getn returns what it has with ETIME; *nget tells how many. */
static int getn_partial(void) {
  CHECK(port_send(port, 1, NULL) == 0);
  port_event_t ev[4];
  uint_t n = 3;
  struct timespec to = {0, 50 * 1000 * 1000};
  CHECK(port_getn(port, ev, 4, &n, &to) == -1 && errno == ETIME);
  CHECK(n == 1 && ev[0].portev_events == 1);
  n = 5;
  CHECK(port_getn(port, ev, 4, &n, &to) == -1 && errno == EINVAL); /* nget > max */
  printf("partial getn: ETIME with nget=1\n");
  return 0;
}

static void *alert_later(void *arg) {
  (void)arg;
  sleep_ms(100);
  CHECK(port_alert(port, PORT_ALERT_SET, 0x99, (void *)0xa) == 0);
  return NULL;
}

/* Rules 16-18: alert wakes waiters, returns at once while set, keeps queued events. */
static int alert(void) {
  pthread_t t;
  pthread_create(&t, NULL, alert_later, NULL);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0 && ev.portev_source == PORT_SOURCE_ALERT && ev.portev_events == 0x99);
  pthread_join(t, NULL);
  CHECK(port_send(port, 5, NULL) == 0);
  CHECK(port_get(port, &ev, NULL) == 0 && ev.portev_source == PORT_SOURCE_ALERT);
  CHECK(port_alert(port, PORT_ALERT_UPDATE, 1, NULL) == -1 && errno == EBUSY);
  CHECK(port_alert(port, PORT_ALERT_SET | PORT_ALERT_UPDATE, 1, NULL) == -1 && errno == EINVAL);
  CHECK(port_alert(port, 0, 0, NULL) == 0);
  CHECK(port_get(port, &ev, NULL) == 0 && ev.portev_source == PORT_SOURCE_USER && ev.portev_events == 5);
  printf("alert mode behaves\n");
  return 0;
}

/* Rule 15: port_sendn fills errors[] and returns the number of successes. */
static int sendn(void) {
  int other = port_create();
  CHECK(other >= 0);
  int p[2];
  CHECK(pipe(p) == 0);
  int ports[4] = {port, 12345, p[0], other};
  int errors[4] = {-1, -1, -1, -1};
  CHECK(port_sendn(ports, errors, 4, 3, (void *)9) == 2);
  CHECK(errors[0] == 0 && errors[1] == EBADF && errors[2] == EBADFD && errors[3] == 0);
  CHECK(port_sendn(ports, errors, 0, 3, NULL) == -1 && errno == EINVAL);
  port_event_t ev;
  CHECK(port_get(other, &ev, NULL) == 0 && ev.portev_user == (void *)9);
  printf("sendn: 2 sent, errors filled\n");
  return 0;
}

/* Errors for descriptors that are not ports (port.c:588-594). */
static int bad_ports(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  port_event_t ev;
  CHECK(port_send(12345, 1, NULL) == -1 && errno == EBADF);
  CHECK(port_send(p[0], 1, NULL) == -1 && errno == EBADFD);
  CHECK(port_get(p[0], &ev, NULL) == -1 && errno == EBADFD);
  printf("EBADF/EBADFD as illumos\n");
  return 0;
}

/* Rule 3: the port descriptor polls readable while events are queued. */
static int pollable(void) {
  struct pollfd pfd = {port, POLLIN, 0};
  CHECK(poll(&pfd, 1, 0) == 0);
  CHECK(port_send(port, 1, NULL) == 0);
  CHECK(poll(&pfd, 1, 1000) == 1 && (pfd.revents & POLLIN));
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0);
  CHECK(port_send(port, 2, NULL) == 0); /* drain happens on the next call naming the port */
  CHECK(port_get(port, &ev, NULL) == 0);
  struct timespec zero = {0, 0};
  CHECK(port_get(port, &ev, &zero) == 0);
  pfd.revents = 0;
  CHECK(poll(&pfd, 1, 0) == 0);
  printf("port descriptor polls POLLIN iff events queued\n");
  return 0;
}

/* Rules 14, 34: after fork the child has the same port; user events are
 * retrievable by either process. */
static int fork_shares(void) {
  CHECK(port_send(port, 11, (void *)0x11) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    port_event_t ev;
    struct timespec to = {2, 0};
    if (port_get(port, &ev, &to) != 0 || ev.portev_events != 11) _exit(2);
    if (port_send(port, 22, (void *)0x22) != 0) _exit(3);
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  port_event_t ev;
  struct timespec zero = {0, 0};
  CHECK(port_get(port, &ev, &zero) == 0 && ev.portev_events == 22);
  printf("fork: the child retrieved the parent's event and sent one back\n");
  return 0;
}

/* Rule 12: a child may not dissociate its parent's association (EACCES). */
static int fork_dissociate(void) {
  int p[2];
  CHECK(pipe(p) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)p[0], POLLIN, NULL) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    if (port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)p[0]) != -1 || errno != EACCES) _exit(2);
    _exit(0);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)p[0]) == 0);
  printf("child got EACCES, parent dissociated\n");
  return 0;
}

/* A blocked port_get, for the kill -9 test. */
static int block_forever(void) {
  printf("blocking\n");
  fflush(stdout);
  port_event_t ev;
  port_get(port, &ev, NULL);
  return 1;
}

static void on_alarm(int sig) { (void)sig; }

/* Rule 26: a signal interrupts a wait with EINTR (no SA_RESTART either). */
static int eintr(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = SA_RESTART;
  sigaction(SIGALRM, &sa, NULL);
  alarm(1);
  port_event_t ev;
  struct timespec to = {5, 0};
  double t0 = now_s();
  int r = port_get(port, &ev, &to);
  CHECK(r == -1 && errno == EINTR);
  CHECK(now_s() - t0 < 3.0);
  /* nothing was lost: an event sent now is retrieved */
  CHECK(port_send(port, 3, NULL) == 0);
  CHECK(port_get(port, &ev, &to) == 0 && ev.portev_events == 3);
  printf("EINTR, and the port still works\n");
  return 0;
}

/* Timers with SIGEV_PORT (timer.c): one event per delivery, portev_events =
 * expirations since the last one, portev_object = the timer. */
static int timer_port(void) {
  port_notify_t pn = {port, (void *)0x7171};
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_PORT;
  sev.sigev_value.sival_ptr = &pn;
  timer_t t;
  CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
  struct itimerspec its = {{0, 10 * 1000 * 1000}, {0, 10 * 1000 * 1000}};
  CHECK(timer_settime(t, 0, &its, NULL) == 0);
  sleep_ms(65);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0);
  CHECK(ev.portev_source == PORT_SOURCE_TIMER && ev.portev_user == (void *)0x7171);
  CHECK(ev.portev_object == (uintptr_t)t);
  CHECK(ev.portev_events >= 4);
  printf("timer event: %d expirations\n", ev.portev_events);
  struct itimerspec cur;
  CHECK(timer_gettime(t, &cur) == 0 && cur.it_interval.tv_nsec == 10 * 1000 * 1000);
  CHECK(timer_getoverrun(t) == 0); /* only the signal path counts overruns */
  /* the next event counts from zero again */
  struct timespec to = {2, 0};
  CHECK(port_get(port, &ev, &to) == 0 && ev.portev_events >= 1 && ev.portev_events <= 3);
  /* timer_delete removes an undelivered event */
  sleep_ms(30);
  uint_t n = 0;
  CHECK(port_getn(port, NULL, 0, &n, NULL) == 0 && n == 1);
  CHECK(timer_delete(t) == 0);
  CHECK(port_getn(port, NULL, 0, &n, NULL) == 0 && n == 0);
  CHECK(timer_delete(t) == -1 && errno == EINVAL);
  /* a bad port in the notification: EBADF / EBADFD */
  pn.portnfy_port = 4321;
  CHECK(timer_create(CLOCK_REALTIME, &sev, &t) == -1 && errno == EBADF);
  int p[2];
  CHECK(pipe(p) == 0);
  pn.portnfy_port = p[0];
  CHECK(timer_create(CLOCK_REALTIME, &sev, &t) == -1 && errno == EBADFD);
  printf("SIGEV_PORT timers behave\n");
  return 0;
}

/* Timers are not inherited across fork (timer_create(3C)). */
static int timer_fork(void) {
  port_notify_t pn = {port, NULL};
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_PORT;
  sev.sigev_value.sival_ptr = &pn;
  timer_t t;
  CHECK(timer_create(CLOCK_REALTIME, &sev, &t) == 0);
  pid_t pid = fork();
  if (pid == 0) {
    struct itimerspec cur;
    _exit(timer_gettime(t, &cur) == -1 && errno == EINVAL ? 0 : 1);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct itimerspec cur;
  CHECK(timer_gettime(t, &cur) == 0);
  printf("the child has no timer, the parent still does\n");
  return 0;
}

static volatile sig_atomic_t got_signo, got_code;
static void *volatile got_value;
static void on_timer_signal(int sig, siginfo_t *si, void *uc) {
  (void)uc;
  got_signo = sig;
  got_code = si->si_code;
  got_value = si->si_value.sival_ptr;
}

/* The illumos timer call with SIGEV_SIGNAL (raw syscall, illumos sigevent):
 * the supervisor queues the signal with SI_TIMER and the sigevent's value.
 * And timer_create through the library with SIGEV_SIGNAL still goes to glibc. */
static int timer_signal(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_sigaction = on_timer_signal;
  sa.sa_flags = SA_SIGINFO;
  sigaction(SIGUSR1, &sa, NULL);
  struct {
    int notify, signo;
    void *value, *fn, *attr;
    int pad;
  } ise = {2 /* illumos SIGEV_SIGNAL */, SIGUSR1, (void *)0x5150, NULL, NULL, 0};
  int id = -1;
  CHECK(syscall(EVSHIM_SYS_timer_create, 4 /* CLOCK_HIGHRES */, &ise, &id) == 0 && id >= 0);
  struct itimerspec its = {{0, 0}, {0, 20 * 1000 * 1000}};
  CHECK(syscall(EVSHIM_SYS_timer_settime, id, 0, &its, NULL) == 0);
  for (int i = 0; i < 200 && !got_signo; i++) sleep_ms(5);
  CHECK(got_signo == SIGUSR1 && got_code == SI_TIMER && got_value == (void *)0x5150);
  CHECK(syscall(EVSHIM_SYS_timer_delete, id) == 0);
  CHECK(syscall(EVSHIM_SYS_timer_create, 1 /* CLOCK_VIRTUAL */, &ise, &id) == -1 && errno == EINVAL);
  /* glibc's own timers still work through the same entry points */
  got_signo = 0;
  struct sigevent sev;
  memset(&sev, 0, sizeof sev);
  sev.sigev_notify = SIGEV_SIGNAL;
  sev.sigev_signo = SIGUSR1;
  sev.sigev_value.sival_ptr = (void *)0x6160;
  timer_t t;
  CHECK(timer_create(CLOCK_MONOTONIC, &sev, &t) == 0);
  CHECK(timer_settime(t, 0, &its, NULL) == 0);
  for (int i = 0; i < 200 && !got_signo; i++) sleep_ms(5);
  CHECK(got_signo == SIGUSR1 && got_value == (void *)0x6160);
  CHECK(timer_delete(t) == 0);
  printf("signal timers: evshim's and glibc's\n");
  return 0;
}

struct scenario {
  const char *name;
  int (*fn)(void);
};

int main(int argc, char **argv) {
  static const struct scenario all[] = {
      {"etime", etime},           {"wake_on_send", wake_on_send}, {"two_waiters", two_waiters},
      {"epipe", epipe},           {"socket_eof", socket_eof},     {"fd_oneshot", fd_oneshot},
      {"close_discards", close_discards}, {"getn_partial", getn_partial}, {"alert", alert},
      {"sendn", sendn},           {"bad_ports", bad_ports},       {"pollable", pollable},
      {"fork_shares", fork_shares}, {"fork_dissociate", fork_dissociate},
      {"block_forever", block_forever}, {"eintr", eintr},
      {"timer_port", timer_port}, {"timer_fork", timer_fork}, {"timer_signal", timer_signal},
  };
  if (argc != 2) {
    fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
    return 2;
  }
  port = port_create();
  CHECK(port >= 0);
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) {
    if (strcmp(all[i].name, argv[1]) == 0) return all[i].fn();
  }
  fprintf(stderr, "unknown scenario %s\n", argv[1]);
  return 2;
}
