/*
 * kqueue scenarios run under `evshim run` by tests/integration/kqueue_test.cc.
 * One source, compiled against each personality's <sys/event.h> and library
 * (kq_scenarios_freebsd, _openbsd, _dragonfly). argv[1] names the scenario;
 * exit 0 = the behaviour matched the foreign kernel. Citations: "OB" =
 * OpenBSD kern_event.c rev 1.194, "DF" = DragonFly kern_event.c (shared/seeds/).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHECK(cond)                                                                             \
  do {                                                                                          \
    if (!(cond)) {                                                                              \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, errno, \
              strerror(errno));                                                                 \
      exit(1);                                                                                  \
    }                                                                                           \
  } while (0)

#if defined(EVFILT_SENDFILE)
#define FREEBSD 1
#elif defined(EVFILT_DEVICE)
#define OPENBSD 1
#else
#define DRAGONFLY 1
#endif

static const struct timespec kZero = {0, 0};

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

static int add(int kq, uintptr_t ident, short filter, unsigned short flags, unsigned fflags,
               intptr_t data, void *udata) {
  struct kevent kev;
  EV_SET(&kev, ident, filter, flags, fflags, data, udata);
  return kevent(kq, &kev, 1, NULL, 0, NULL);
}

static int get(int kq, struct kevent *out, int n, const struct timespec *ts) {
  return kevent(kq, NULL, 0, out, n, ts);
}

/* USER + the kqueue descriptor polls readable while events are pending. */
static int user_pollable(void) {
  int kq = kqueue();
  CHECK(kq >= 0);
  struct pollfd p = {kq, POLLIN, 0};
  CHECK(poll(&p, 1, 0) == 0);
  CHECK(add(kq, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, (void *)0x1234) == 0);
  CHECK(add(kq, 1, EVFILT_USER, 0, NOTE_TRIGGER | NOTE_FFCOPY | 0x21, 0, (void *)0x1234) == 0);
  CHECK(poll(&p, 1, 1000) == 1 && (p.revents & POLLIN));
  struct kevent ev;
  CHECK(get(kq, &ev, 1, &kZero) == 1);
  CHECK(ev.ident == 1 && ev.filter == EVFILT_USER && ev.udata == (void *)0x1234);
  CHECK((ev.fflags & NOTE_FFLAGSMASK) == 0x21);
  CHECK(get(kq, &ev, 1, &kZero) == 0); /* EV_CLEAR consumed the trigger */
  p.revents = 0;
  CHECK(poll(&p, 1, 0) == 0);
  close(kq);
  return 0;
}

/* READ on a pipe: data = bytes readable, udata kept; EV_EOF when the writer closes. */
static int pipe_read(void) {
  int kq = kqueue(), fds[2];
  CHECK(kq >= 0 && pipe(fds) == 0);
  CHECK(add(kq, (uintptr_t)fds[0], EVFILT_READ, EV_ADD, 0, 0, (void *)"cookie") == 0);
  struct kevent ev;
  CHECK(get(kq, &ev, 1, &kZero) == 0);
  CHECK(write(fds[1], "hello", 5) == 5);
  CHECK(get(kq, &ev, 1, NULL) == 1);
  CHECK(ev.ident == (uintptr_t)fds[0] && ev.filter == EVFILT_READ && ev.data == 5);
  CHECK(strcmp((const char *)ev.udata, "cookie") == 0);
  CHECK(!(ev.flags & EV_EOF));
  char buf[8];
  CHECK(read(fds[0], buf, sizeof buf) == 5);
  CHECK(get(kq, &ev, 1, &kZero) == 0); /* drained: level-triggered knote is quiet */
  close(fds[1]);
  CHECK(get(kq, &ev, 1, NULL) == 1);
  CHECK(ev.flags & EV_EOF);
  return 0;
}

/* WRITE on a socketpair: data = space; EV_EOF after the peer shuts down. */
static int socket_eof(void) {
  int kq = kqueue(), sv[2];
  CHECK(kq >= 0 && socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0);
  CHECK(add(kq, (uintptr_t)sv[0], EVFILT_WRITE, EV_ADD, 0, 0, NULL) == 0);
  struct kevent ev;
  CHECK(get(kq, &ev, 1, &kZero) == 1);
  CHECK(ev.filter == EVFILT_WRITE && ev.data > 0);
  CHECK(add(kq, (uintptr_t)sv[0], EVFILT_WRITE, EV_DELETE, 0, 0, NULL) == 0);
  CHECK(add(kq, (uintptr_t)sv[0], EVFILT_READ, EV_ADD, 0, 0, NULL) == 0);
  CHECK(get(kq, &ev, 1, &kZero) == 0);
  CHECK(shutdown(sv[1], SHUT_WR) == 0);
  CHECK(get(kq, &ev, 1, NULL) == 1);
  CHECK(ev.filter == EVFILT_READ && (ev.flags & EV_EOF));
  return 0;
}

/* TIMER: periodic counts expirations, one-shot fires once. */
static int timer(void) {
  int kq = kqueue();
  CHECK(kq >= 0);
  CHECK(add(kq, 7, EVFILT_TIMER, EV_ADD, 0, 20, NULL) == 0); /* 20 ms on every BSD */
  struct kevent ev;
  double t0 = now_s();
  CHECK(get(kq, &ev, 1, NULL) == 1);
  CHECK(ev.ident == 7 && ev.filter == EVFILT_TIMER && ev.data >= 1);
  CHECK(now_s() - t0 >= 0.015);
  sleep_ms(110);
  CHECK(get(kq, &ev, 1, NULL) == 1);
  CHECK(ev.data >= 3); /* expirations since the last retrieval */
  CHECK(add(kq, 7, EVFILT_TIMER, EV_DELETE, 0, 0, NULL) == 0);
  CHECK(add(kq, 8, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 10, NULL) == 0);
  CHECK(get(kq, &ev, 1, NULL) == 1 && ev.ident == 8 && ev.data == 1);
  struct timespec wait = {0, 60 * 1000 * 1000};
  CHECK(get(kq, &ev, 1, &wait) == 0);
  return 0;
}

/* A timeout returns 0 events after the time has passed. */
static int timeout(void) {
  int kq = kqueue();
  struct kevent ev;
  struct timespec ts = {0, 80 * 1000 * 1000};
  double t0 = now_s();
  CHECK(get(kq, &ev, 1, &ts) == 0);
  CHECK(now_s() - t0 >= 0.075);
  return 0;
}

/* knote_fdclose (OB kern_event.c:1827-1845): closing the watched number
 * drops its knote silently; a dup'd number keeps its own. */
static int close_drops(void) {
  int kq = kqueue(), fds[2];
  CHECK(kq >= 0 && pipe(fds) == 0);
  int dupfd = dup(fds[0]);
  CHECK(dupfd >= 0);
  CHECK(add(kq, (uintptr_t)fds[0], EVFILT_READ, EV_ADD, 0, 0, NULL) == 0);
  CHECK(add(kq, (uintptr_t)dupfd, EVFILT_READ, EV_ADD, 0, 0, NULL) == 0);
  close(fds[0]);
  CHECK(write(fds[1], "x", 1) == 1);
  struct kevent ev[4];
  CHECK(get(kq, ev, 4, NULL) == 1);
  CHECK(ev[0].ident == (uintptr_t)dupfd);
  /* The closed number now names nothing in this kqueue. */
  int fds2[2];
  CHECK(pipe(fds2) == 0);
  int reused = fds2[0] == fds[0] ? fds2[0] : dup2(fds2[0], fds[0]);
  CHECK(reused == fds[0]);
  struct kevent ch;
  EV_SET(&ch, (uintptr_t)fds[0], EVFILT_READ, EV_ENABLE, 0, 0, NULL);
  CHECK(kevent(kq, &ch, 1, NULL, 0, NULL) == -1 && errno == ENOENT);
  return 0;
}

/* Kqueues are not inherited (research/kevent-abi.md §4.6): the child sees EBADF. */
static int fork_ebadf(void) {
  int kq = kqueue();
  CHECK(kq >= 0);
  CHECK(add(kq, 1, EVFILT_USER, EV_ADD, NOTE_TRIGGER, 0, NULL) == 0);
  pid_t pid = fork();
  CHECK(pid >= 0);
  if (pid == 0) {
    struct kevent ev;
    int r = get(kq, &ev, 1, &kZero);
    _exit(r == -1 && errno == EBADF ? 0 : 1);
  }
  int status;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  struct kevent ev;
  CHECK(get(kq, &ev, 1, &kZero) == 1 && ev.ident == 1);
  return 0;
}

static void on_signal(int sig) { (void)sig; }

static int sig_kq;
static void *trigger_later(void *arg) {
  (void)arg;
  sleep_ms(100);
  CHECK(add(sig_kq, 5, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
  return NULL;
}

/* A signal ends a wait with EINTR, never restarted (OB kern_event.c:1314-1317),
 * even with SA_RESTART; nothing is lost. */
static int eintr(void) {
  for (int restart = 0; restart < 2; restart++) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = restart ? SA_RESTART : 0;
    CHECK(sigaction(SIGALRM, &sa, NULL) == 0);
    int kq = kqueue();
    CHECK(kq >= 0);
    CHECK(add(kq, 5, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, NULL) == 0);
    struct itimerval it = {{0, 0}, {0, 100 * 1000}};
    CHECK(setitimer(ITIMER_REAL, &it, NULL) == 0);
    struct kevent ev;
    errno = 0;
    CHECK(get(kq, &ev, 1, NULL) == -1 && errno == EINTR);
    sig_kq = kq;
    pthread_t t;
    pthread_create(&t, NULL, trigger_later, NULL);
    /* The usual retry loop. (A re-issue of the identical call right after
     * EINTR is indistinguishable from a kernel restart to the supervisor,
     * which may answer it EINTR once more.) */
    int r;
    while ((r = get(kq, &ev, 1, NULL)) == -1 && errno == EINTR) {
    }
    CHECK(r == 1 && ev.ident == 5);
    pthread_join(t, NULL);
    close(kq);
  }
  return 0;
}

static int shared_kq;
static uintptr_t got[2];
static void *waiter(void *arg) {
  struct kevent ev;
  int r = get(shared_kq, &ev, 1, NULL);
  got[(intptr_t)arg] = r == 1 ? ev.ident : 0;
  return NULL;
}

/* Several threads waiting on one kqueue each get distinct events. */
static int two_waiters(void) {
  shared_kq = kqueue();
  CHECK(shared_kq >= 0);
  pthread_t a, b;
  pthread_create(&a, NULL, waiter, (void *)0);
  pthread_create(&b, NULL, waiter, (void *)1);
  sleep_ms(100);
  struct kevent ch[2];
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_ONESHOT, NOTE_TRIGGER, 0, NULL);
  EV_SET(&ch[1], 2, EVFILT_USER, EV_ADD | EV_ONESHOT, NOTE_TRIGGER, 0, NULL);
  CHECK(kevent(shared_kq, ch, 2, NULL, 0, NULL) == 0);
  pthread_join(a, NULL);
  pthread_join(b, NULL);
  CHECK(got[0] != 0 && got[1] != 0 && got[0] != got[1]);
  return 0;
}

/* A kqueue watches another kqueue (its descriptor is pollable). */
static int kq_in_kq(void) {
  int inner = kqueue(), outer = kqueue();
  CHECK(inner >= 0 && outer >= 0);
  CHECK(add(outer, (uintptr_t)inner, EVFILT_READ, EV_ADD, 0, 0, NULL) == 0);
  CHECK(add(inner, 3, EVFILT_USER, EV_ADD, 0, 0, NULL) == 0);
  struct kevent ev;
  CHECK(get(outer, &ev, 1, &kZero) == 0);
  CHECK(add(inner, 3, EVFILT_USER, 0, NOTE_TRIGGER, 0, NULL) == 0);
  struct timespec ts = {2, 0};
  CHECK(get(outer, &ev, 1, &ts) == 1);
  CHECK(ev.ident == (uintptr_t)inner && ev.filter == EVFILT_READ);
  return 0;
}

/* Errors: as EV_ERROR records when there is room, as the return otherwise;
 * the errno for a descriptor that is not a kqueue differs (abi.md §4.1). */
static int errors(void) {
  int kq = kqueue(), fds[2];
  CHECK(kq >= 0 && pipe(fds) == 0);
  struct kevent ch, ev[2];
  EV_SET(&ch, 99, EVFILT_USER, EV_DELETE, 0, 0, (void *)7);
  CHECK(kevent(kq, &ch, 1, ev, 2, &kZero) == 1);
  CHECK(ev[0].flags == EV_ERROR && ev[0].data == ENOENT && ev[0].udata == (void *)7);
#if defined(DRAGONFLY)
  /* DragonFly posts the record even with nevents == 0 (DF kern_event.c:846-857). */
  CHECK(kevent(kq, &ch, 1, ev, 0, &kZero) == 1 && ev[0].data == ENOENT);
#else
  CHECK(kevent(kq, &ch, 1, NULL, 0, &kZero) == -1 && errno == ENOENT);
#endif
  EV_SET(&ch, 1, EVFILT_USER, EV_ADD | EV_RECEIPT, 0, 0, NULL);
  CHECK(kevent(kq, &ch, 1, ev, 2, &kZero) == 1);
  CHECK(ev[0].flags == EV_ERROR && ev[0].data == 0);
  CHECK(get(fds[0], ev, 1, &kZero) == -1);
#if defined(FREEBSD)
  CHECK(errno == EINVAL);
#else
  CHECK(errno == EBADF);
#endif
  CHECK(get(1000, ev, 1, &kZero) == -1 && errno == EBADF);
  close(kq);
  CHECK(get(kq, ev, 1, &kZero) == -1 && errno == EBADF);
  return 0;
}

static int kqueue_flags(void) {
#if defined(FREEBSD) || defined(OPENBSD)
  int kq = kqueue1(O_CLOEXEC);
  CHECK(kq >= 0);
  CHECK(fcntl(kq, F_GETFD) & FD_CLOEXEC);
  int plain = kqueue();
  CHECK(!(fcntl(plain, F_GETFD) & FD_CLOEXEC));
#endif
#if defined(FREEBSD)
  CHECK(kqueuex(0x2) == -1 && errno == EINVAL);
#endif
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SCENARIO\n", argv[0]);
    return 2;
  }
  const char *s = argv[1];
  if (!strcmp(s, "user_pollable")) return user_pollable();
  if (!strcmp(s, "pipe_read")) return pipe_read();
  if (!strcmp(s, "socket_eof")) return socket_eof();
  if (!strcmp(s, "timer")) return timer();
  if (!strcmp(s, "timeout")) return timeout();
  if (!strcmp(s, "close_drops")) return close_drops();
  if (!strcmp(s, "fork_ebadf")) return fork_ebadf();
  if (!strcmp(s, "eintr")) return eintr();
  if (!strcmp(s, "two_waiters")) return two_waiters();
  if (!strcmp(s, "kq_in_kq")) return kq_in_kq();
  if (!strcmp(s, "errors")) return errors();
  if (!strcmp(s, "kqueue_flags")) return kqueue_flags();
  fprintf(stderr, "unknown scenario %s\n", s);
  return 2;
}
