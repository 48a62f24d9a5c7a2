/*
 * Stress and fault scenarios for event ports, run under evshim by
 * tests/integration/stress_test.cc (short); run by hand with larger
 * arguments for a long run.
 *
 *   stress_ports exactly_once P K M C N
 *       P producer processes x K threads each send N user events (port_send
 *       and port_sendn, half each) with unique ids; M consumer threads in
 *       the parent and C consumer processes (forked, sharing the port)
 *       retrieve them with port_getn while SIGALRM fires every millisecond
 *       (SA_RESTART in the parent, not in the children). Every id must
 *       arrive exactly once; an alert ends the consumers.
 *   stress_ports many_waiters T    T threads block in port_get; one alert wakes them all
 *   stress_ports emfile            port_create until EMFILE
 *   stress_ports efault            port_getn into a buffer whose second slot is inaccessible
 *   stress_ports fork_storm F      F children each send one event and exit
 *   stress_ports sup_fds           prints the supervisor's open descriptors (for leak checks)
 *   stress_ports leak_check R      R rounds of create/associate/close; the supervisor's
 *                                  descriptor count must come back to its baseline
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <evshim_portfs.h>
#include <port.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "supervisor_fds.h"
#include "thread_syscall.h"

#define CHECK(cond)                                                                       \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      fprintf(stderr, "%s:%d: check failed: %s (errno %d %s)\n", __FILE__, __LINE__, #cond, \
              errno, strerror(errno));                                                    \
      exit(1);                                                                            \
    }                                                                                     \
  } while (0)

static int port;

struct shared {
  atomic_long received;
  atomic_long duplicates;
  atomic_long bad;
  atomic_long eintr;
  atomic_long etime;
  unsigned char seen[]; /* one byte per id */
};
static struct shared *sh;
static long total;

static void on_alarm(int sig) { (void)sig; }

static void start_storm(int restart) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm;
  sa.sa_flags = restart ? SA_RESTART : 0;
  sigaction(SIGALRM, &sa, NULL);
  struct itimerval it = {{0, 1000}, {0, 1000}};
  setitimer(ITIMER_REAL, &it, NULL);
}

static void *consumer(void *arg) {
  (void)arg;
  for (;;) {
    port_event_t ev[16];
    uint_t n = 1;
    struct timespec to = {1, 0};
    int r = port_getn(port, ev, 16, &n, &to);
    if (r != 0) {
      if (errno == EINTR) {
        atomic_fetch_add(&sh->eintr, 1);
        continue;
      }
      if (errno == ETIME) {
        atomic_fetch_add(&sh->etime, 1);
      } else {
        fprintf(stderr, "port_getn: %s\n", strerror(errno));
        atomic_fetch_add(&sh->bad, 1);
        return NULL;
      }
    }
    for (uint_t i = 0; i < n; i++) {
      if (ev[i].portev_source == PORT_SOURCE_ALERT) return NULL;
      long id = (long)(intptr_t)ev[i].portev_user;
      if (ev[i].portev_source != PORT_SOURCE_USER || id < 0 || id >= total) {
        atomic_fetch_add(&sh->bad, 1);
        continue;
      }
      if (__atomic_exchange_n(&sh->seen[id], 1, __ATOMIC_SEQ_CST)) atomic_fetch_add(&sh->duplicates, 1);
      atomic_fetch_add(&sh->received, 1);
    }
  }
}

static long per_thread;
struct producer_arg {
  long base;
};
static void *producer(void *p) {
  long base = ((struct producer_arg *)p)->base;
  for (long i = 0; i < per_thread; i++) {
    long id = base + i;
    int r;
    if (i % 2 == 0) {
      do r = port_send(port, 1, (void *)(intptr_t)id);
      while (r != 0 && (errno == EINTR || errno == EAGAIN));
    } else {
      int ports[1] = {port}, errors[1] = {0};
      do r = port_sendn(ports, errors, 1, 1, (void *)(intptr_t)id);
      while (r != 1 && (errno == EINTR || errors[0] == EAGAIN));
    }
  }
  return NULL;
}

static int exactly_once(int P, int K, int M, int C, long N) {
  total = (long)P * K * N;
  per_thread = N;
  sh = mmap(NULL, sizeof *sh + (size_t)total, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  CHECK(sh != MAP_FAILED);
  pid_t kids[64];
  int nkids = 0;
  for (int c = 0; c < C; c++) { /* consumer processes: no SA_RESTART */
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      start_storm(0);
      consumer(NULL);
      _exit(0);
    }
    kids[nkids++] = pid;
  }
  pid_t producers[64];
  for (int p = 0; p < P; p++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
      start_storm(p % 2);
      pthread_t t[64];
      struct producer_arg args[64];
      for (int k = 0; k < K; k++) {
        args[k].base = ((long)p * K + k) * N;
        pthread_create(&t[k], NULL, producer, &args[k]);
      }
      for (int k = 0; k < K; k++) pthread_join(t[k], NULL);
      _exit(0);
    }
    producers[p] = pid;
  }
  start_storm(1); /* parent consumers: SA_RESTART */
  pthread_t cons[64];
  for (int m = 0; m < M; m++) pthread_create(&cons[m], NULL, consumer, NULL);
  for (int p = 0; p < P; p++) {
    int st;
    CHECK(waitpid(producers[p], &st, 0) == producers[p] && WIFEXITED(st) && WEXITSTATUS(st) == 0);
  }
  double deadline = (double)time(NULL) + 60;
  while (atomic_load(&sh->received) < total && time(NULL) < deadline) usleep(10 * 1000);
  CHECK(port_alert(port, PORT_ALERT_SET, 1, NULL) == 0); /* wakes every consumer */
  for (int m = 0; m < M; m++) pthread_join(cons[m], NULL);
  for (int c = 0; c < nkids; c++) {
    int st;
    CHECK(waitpid(kids[c], &st, 0) == kids[c]);
  }
  struct itimerval off = {{0, 0}, {0, 0}};
  setitimer(ITIMER_REAL, &off, NULL);
  long missing = 0;
  for (long i = 0; i < total; i++) missing += !sh->seen[i];
  printf("events %ld received %ld duplicates %ld missing %ld bad %ld (EINTR seen %ld, ETIME %ld)\n", total,
         atomic_load(&sh->received), atomic_load(&sh->duplicates), missing, atomic_load(&sh->bad),
         atomic_load(&sh->eintr), atomic_load(&sh->etime));
  CHECK(atomic_load(&sh->duplicates) == 0 && missing == 0 && atomic_load(&sh->bad) == 0);
  CHECK(atomic_load(&sh->received) == total);
  return 0;
}

static atomic_int woken;
/* wait_cap's waiters' thread ids, each set by its thread (NULL: none kept). */
static atomic_int *waiter_tids;
static void *waiter(void *arg) {
  if (waiter_tids != NULL) atomic_store(&waiter_tids[(intptr_t)arg], (int)gettid());
  port_event_t ev;
  if (port_get(port, &ev, NULL) == 0 && ev.portev_source == PORT_SOURCE_ALERT) atomic_fetch_add(&woken, 1);
  return NULL;
}

/* Thousands of threads blocked at once: all wake with the alert (docs/rules-ports.md rule 17). */
static int many_waiters(int T) {
  pthread_t *t = calloc((size_t)T, sizeof *t);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  for (int i = 0; i < T; i++) CHECK(pthread_create(&t[i], &attr, waiter, NULL) == 0);
  usleep(500 * 1000);
  CHECK(port_alert(port, PORT_ALERT_SET, 7, NULL) == 0);
  for (int i = 0; i < T; i++) pthread_join(t[i], NULL);
  printf("%d of %d waiters woken by the alert\n", atomic_load(&woken), T);
  CHECK(atomic_load(&woken) == T);
  return 0;
}

/* Descriptor exhaustion: port_create fails with EMFILE, like open(2). */
static int emfile(void) {
  struct rlimit rl = {64, 64};
  CHECK(setrlimit(RLIMIT_NOFILE, &rl) == 0);
  int n = 0;
  for (;;) {
    int p = port_create();
    if (p < 0) {
      CHECK(errno == EMFILE);
      break;
    }
    n++;
    CHECK(n < 100);
  }
  printf("EMFILE after %d ports\n", n);
  /* the supervisor still serves this process */
  CHECK(port_send(port, 1, NULL) == 0);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0);
  return 0;
}

/* A half-accessible event buffer: EFAULT, nothing written outside the first page. */
static int efault(void) {
  long page = sysconf(_SC_PAGESIZE);
  char *mem = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(mem != MAP_FAILED);
  /* The second page made inaccessible, not unmapped: an unmapped hole can be
   * filled by the next mmap of anyone in the process (ThreadSanitizer's
   * runtime maps a page at the engine's first thread-local destructor). */
  CHECK(mprotect(mem + page, (size_t)page, PROT_NONE) == 0);
  memset(mem, 0xaa, (size_t)page);
  port_event_t *slot = (port_event_t *)(mem + page - sizeof(port_event_t)); /* room for one */
  CHECK(port_send(port, 1, NULL) == 0);
  CHECK(port_send(port, 2, NULL) == 0);
  uint_t n = 2;
  CHECK(port_getn(port, slot, 2, &n, NULL) == -1 && errno == EFAULT);
  for (char *p = mem; p < (char *)slot; p++) CHECK((unsigned char)*p == 0xaa);
  /* a bad pointer for port_get's single event */
  CHECK(port_send(port, 3, NULL) == 0);
  CHECK(port_get(port, (port_event_t *)(mem + page), NULL) == -1 && errno == EFAULT);
  /* the supervisor still serves us */
  CHECK(port_send(port, 4, NULL) == 0);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == 0 && ev.portev_events == 4);
  printf("EFAULT, nothing written outside the buffer\n");
  return 0;
}

/* A fork storm: every child's event arrives (the port is shared). */
static int fork_storm(int F) {
  for (int i = 0; i < F; i++) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) _exit(port_send(port, 1, (void *)(intptr_t)i) == 0 ? 0 : 1);
  }
  int ok = 0;
  for (int i = 0; i < F; i++) {
    int st;
    pid_t pid = wait(&st);
    CHECK(pid > 0);
    ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
  }
  CHECK(ok == F);
  uint_t n = 0;
  CHECK(port_getn(port, NULL, 0, &n, NULL) == 0);
  printf("%u events from %d children\n", n, F);
  CHECK((int)n == F);
  return 0;
}

/* Resources come back: after R rounds of ports with associations that are
 * closed again, the supervisor holds as many descriptors as before. */
static int leak_check(int R) {
  port_event_t ev;
  struct timespec zero = {0, 0};
  port_get(port, &ev, &zero);
  wait_for_supervisor_settled();
  int before = supervisor_fd_count();
  for (int r = 0; r < R; r++) {
    int p = port_create(), fds[2];
    CHECK(p >= 0 && pipe(fds) == 0);
    CHECK(port_associate(p, PORT_SOURCE_FD, (uintptr_t)fds[0], POLLIN, NULL) == 0);
    CHECK(write(fds[1], "x", 1) == 1);
    CHECK(port_send(p, 1, NULL) == 0);
    close(fds[0]);
    close(fds[1]);
    close(p);
  }
  /* the supervisor notices last closes asynchronously: let it catch up */
  int after = -1;
  for (int i = 0; i < 100; i++) {
    port_get(port, &ev, &zero);
    after = supervisor_fd_count();
    if (after <= before) break;
    usleep(20 * 1000);
  }
  printf("supervisor descriptors: %d before, %d after %d rounds\n", before, after, R);
  CHECK(after <= before);
  return 0;
}

/* Whether thread `tid` is inside the foreign portfs call
 * (/proc/self/task/TID/syscall): supervised, its notification is then
 * queued to the supervisor, which takes them in order. */
static int in_portfs(pid_t tid) { return thread_syscall(tid) == EVSHIM_SYS_portfs; }

/* With --max-waits CAP: CAP threads wait; one more gets ENOMEM at once.
 * (Supervised only.) The main thread's call comes after every waiter's is
 * in the supervisor's queue: after a fixed pause (300 ms, too short for 50
 * threads on a loaded machine) the main thread could be among the CAP
 * parked and wait for ever, a late waiter taking the ENOMEM. */
static int wait_cap(int cap) {
  pthread_t *t = calloc((size_t)cap, sizeof *t);
  waiter_tids = calloc((size_t)cap, sizeof *waiter_tids);
  CHECK(t != NULL && waiter_tids != NULL);
  for (int i = 0; i < cap; i++) CHECK(pthread_create(&t[i], NULL, waiter, (void *)(intptr_t)i) == 0);
  int in_call = 0;
  for (int tries = 0; tries < 30000 && in_call < cap; tries++) {
    while (in_call < cap && atomic_load(&waiter_tids[in_call]) != 0 && in_portfs(atomic_load(&waiter_tids[in_call]))) {
      in_call++;
    }
    if (in_call < cap) usleep(1000);
  }
  CHECK(in_call == cap);
  port_event_t ev;
  CHECK(port_get(port, &ev, NULL) == -1 && errno == ENOMEM);
  CHECK(port_alert(port, PORT_ALERT_SET, 1, NULL) == 0);
  for (int i = 0; i < cap; i++) pthread_join(t[i], NULL);
  CHECK(atomic_load(&woken) == cap);
  CHECK(port_alert(port, 0, 0, NULL) == 0);
  CHECK(port_send(port, 5, NULL) == 0); /* below the cap again: served */
  CHECK(port_get(port, &ev, NULL) == 0 && ev.portev_events == 5);
  printf("wait %d: ENOMEM; the %d waiters were served\n", cap + 1, cap);
  return 0;
}

/* The supervisor dies (kill -9): every later foreign call fails with ENOSYS,
 * and the program itself goes on (docs/design.md "When the supervisor dies"). */
static int supervisor_dies(void) {
  pid_t sup = getppid();
  CHECK(kill(sup, SIGKILL) == 0);
  for (int i = 0; i < 500 && getppid() == sup; i++) usleep(10 * 1000);
  CHECK(getppid() != sup);
  errno = 0;
  CHECK(port_send(port, 1, NULL) == -1 && errno == ENOSYS);
  CHECK(port_create() == -1 && errno == ENOSYS);
  printf("ENOSYS after the supervisor died\n");
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  port = port_create();
  CHECK(port >= 0);
  if (!strcmp(argv[1], "exactly_once") && argc == 7)
    return exactly_once(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atol(argv[6]));
  if (!strcmp(argv[1], "many_waiters") && argc == 3) return many_waiters(atoi(argv[2]));
  if (!strcmp(argv[1], "emfile")) return emfile();
  if (!strcmp(argv[1], "efault")) return efault();
  if (!strcmp(argv[1], "fork_storm") && argc == 3) return fork_storm(atoi(argv[2]));
  if (!strcmp(argv[1], "leak_check") && argc == 3) return leak_check(atoi(argv[2]));
  if (!strcmp(argv[1], "supervisor_dies")) return supervisor_dies();
  if (!strcmp(argv[1], "wait_cap") && argc == 3) return wait_cap(atoi(argv[2]));
  fprintf(stderr, "bad arguments\n");
  return 2;
}
