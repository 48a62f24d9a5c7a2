/*
 * Demo: an illumos event-port program. A pipe is associated with a port; a
 * second thread writes to the pipe and sends a user event; the main thread
 * collects with port_getn and a timeout, re-associating the pipe as illumos
 * requires (associations are one-shot).
 */
#include <errno.h>
#include <evshim_portfs.h>
#include <poll.h>
#include <port.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include "thread_syscall.h"

static int port, pipefd[2];
static atomic_int main_tid;

/* The producer acts once the main thread waits in its port_getn, so that
 * each event ends a wait: `evshim trace` shows both calls blocked
 * (docs/trace.md), and the tests compare those lines. A fixed pause from
 * the thread's start is a guess that a loaded machine outruns. */
static void *producer(void *arg) {
  (void)arg;
  await_thread_wait(&main_tid, EVSHIM_SYS_portfs);
  if (write(pipefd[1], "hello", 5) != 5) perror("write");
  /* The main thread reads the bytes before its next port_getn: until then
   * it is still in (or just out of) the first wait. */
  int queued = 1;
  for (int i = 0; i < 10000 && ioctl(pipefd[0], FIONREAD, &queued) == 0 && queued > 0; i++) thread_syscall_pause_ms(1);
  await_thread_wait(&main_tid, EVSHIM_SYS_portfs);
  if (port_send(port, 42, (void *)"user event from the producer") != 0) perror("port_send");
  return NULL;
}

static const char *source_name(int s) {
  switch (s) {
    case PORT_SOURCE_FD: return "PORT_SOURCE_FD";
    case PORT_SOURCE_USER: return "PORT_SOURCE_USER";
    case PORT_SOURCE_ALERT: return "PORT_SOURCE_ALERT";
    case PORT_SOURCE_TIMER: return "PORT_SOURCE_TIMER";
    default: return "?";
  }
}

int main(void) {
  atomic_store(&main_tid, (int)getpid());
  port = port_create();
  if (port < 0) {
    perror("port_create");
    return 1;
  }
  printf("port_create() = %d\n", port);
  if (pipe(pipefd) != 0) return 1;
  if (port_associate(port, PORT_SOURCE_FD, (uintptr_t)pipefd[0], POLLIN, (void *)"pipe cookie") != 0) {
    perror("port_associate");
    return 1;
  }
  pthread_t t;
  pthread_create(&t, NULL, producer, NULL);
  int received = 0;
  while (received < 2) {
    port_event_t ev[4];
    uint_t nget = 1;
    struct timespec timeout = {2, 0};
    if (port_getn(port, ev, 4, &nget, &timeout) != 0) {
      if (errno == ETIME && nget == 0) {
        printf("port_getn: timed out\n");
        return 1;
      }
      if (errno != ETIME) {
        perror("port_getn");
        return 1;
      }
    }
    for (uint_t i = 0; i < nget; i++) {
      printf("event: source=%s events=0x%x object=%lu user=\"%s\"\n", source_name(ev[i].portev_source),
             ev[i].portev_events, (unsigned long)ev[i].portev_object, (const char *)ev[i].portev_user);
      if (ev[i].portev_source == PORT_SOURCE_FD) {
        char buf[16] = {0};
        ssize_t n = read(pipefd[0], buf, sizeof buf - 1);
        printf("  read %zd bytes from the pipe: \"%s\"\n", n, buf);
      }
      received++;
    }
  }
  pthread_join(t, NULL);
  port_event_t ev;
  struct timespec short_wait = {0, 200 * 1000 * 1000};
  if (port_get(port, &ev, &short_wait) != 0 && errno == ETIME) printf("port_get with 200 ms timeout: ETIME, as on illumos\n");
  close(port);
  printf("done\n");
  return 0;
}
