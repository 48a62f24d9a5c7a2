/*
 * kqueue exactly-once under a signal storm (issue 7), compiled per BSD
 * personality: K producer threads each add-and-trigger N one-shot EVFILT_USER
 * knotes with unique idents; M consumer threads collect them with kevent
 * while SIGALRM fires every millisecond without SA_RESTART. Every ident must
 * arrive exactly once.
 *   stress_kqueue_P K M N [producers]
 * With "producers", only the producer threads take SIGALRM (every 100 us;
 * the others block it), so signals land while the supervisor handles their
 * add-and-trigger calls: a call whose changes were applied must not fail
 * with EINTR and be retried (docs/design.md "Signals and exactly once").
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/event.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int kq;
static long total, per_thread;
static unsigned char *seen;
static atomic_long received, duplicates, bad, eintrs;
static atomic_int stop;

static void on_alarm(int sig) { (void)sig; }

static void *producer(void *arg) {
  long base = (long)(intptr_t)arg;
  for (long i = 0; i < per_thread; i++) {
    struct kevent ch[2];
    EV_SET(&ch[0], (uintptr_t)(base + i), EVFILT_USER, EV_ADD | EV_ONESHOT, 0, 0, 0);
    EV_SET(&ch[1], (uintptr_t)(base + i), EVFILT_USER, 0, NOTE_TRIGGER, 0, 0);
    int r;
    do r = kevent(kq, ch, 2, NULL, 0, NULL);
    while (r == -1 && errno == EINTR);
    if (r != 0) atomic_fetch_add(&bad, 1);
  }
  return NULL;
}

static int aim_at_producers;

static void block_alarm(void) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGALRM);
  pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *consumer(void *arg) {
  (void)arg;
  if (aim_at_producers) block_alarm();
  while (!atomic_load(&stop)) {
    struct kevent ev[8];
    struct timespec to = {0, 100 * 1000 * 1000};
    int n = kevent(kq, NULL, 0, ev, 8, &to);
    if (n < 0) {
      if (errno == EINTR) {
        atomic_fetch_add(&eintrs, 1);
        continue;
      }
      atomic_fetch_add(&bad, 1);
      return NULL;
    }
    for (int i = 0; i < n; i++) {
      long id = (long)ev[i].ident;
      if (ev[i].filter != EVFILT_USER || id < 0 || id >= total) {
        atomic_fetch_add(&bad, 1);
        continue;
      }
      if (__atomic_exchange_n(&seen[id], 1, __ATOMIC_SEQ_CST)) atomic_fetch_add(&duplicates, 1);
      atomic_fetch_add(&received, 1);
    }
  }
  return NULL;
}

int main(int argc, char **argv) {
  if (argc != 4 && !(argc == 5 && strcmp(argv[4], "producers") == 0)) return 2;
  aim_at_producers = argc == 5;
  int K = atoi(argv[1]), M = atoi(argv[2]);
  per_thread = atol(argv[3]);
  total = K * per_thread;
  seen = calloc((size_t)total, 1);
  kq = kqueue();
  if (kq < 0) return 1;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_alarm; /* no SA_RESTART */
  sigaction(SIGALRM, &sa, NULL);
  const long period_us = aim_at_producers ? 100 : 1000;
  struct itimerval it = {{0, period_us}, {0, period_us}};
  setitimer(ITIMER_REAL, &it, NULL);
  pthread_t p[16], c[16];
  for (int m = 0; m < M; m++) pthread_create(&c[m], NULL, consumer, NULL);
  for (int k = 0; k < K; k++) pthread_create(&p[k], NULL, producer, (void *)(intptr_t)(k * per_thread));
  if (aim_at_producers) block_alarm(); /* after the producers inherited an open mask */
  for (int k = 0; k < K; k++) pthread_join(p[k], NULL);
  time_t deadline = time(NULL) + 60;
  while (atomic_load(&received) < total && time(NULL) < deadline) usleep(10 * 1000);
  atomic_store(&stop, 1);
  for (int m = 0; m < M; m++) pthread_join(c[m], NULL);
  long missing = 0;
  for (long i = 0; i < total; i++) missing += !seen[i];
  printf("events %ld received %ld duplicates %ld missing %ld bad %ld (EINTR seen %ld)\n", total,
         atomic_load(&received), atomic_load(&duplicates), missing, atomic_load(&bad), atomic_load(&eintrs));
  return (atomic_load(&duplicates) == 0 && missing == 0 && atomic_load(&bad) == 0) ? 0 : 1;
}
