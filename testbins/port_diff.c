/*
 * port_diff FIRST_SEED LAST_SEED STEPS: a random walk of event-port calls
 * and file operations, one fresh world (a port, six pipes or socketpairs)
 * per seed, every result printed. The walk depends on the seed alone and
 * every file operation's effect is there before the next call, so one
 * illumos-exact emulation prints one text, whichever path serves it:
 * tests/integration/mode_diff.py runs it in fast mode and supervised and
 * requires the same output (docs/design.md "Both paths, one answer").
 * Covers what the fast path keeps between calls: associations placed
 * without a look (rules 5, 6), identity answers kept until a close (rule 10,
 * numbers closed, reopened and replaced by dup2), the queue's order across
 * sources, port_send, port_alert, port_dissociate, port_getn's counts.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <port.h>

#include "diff_walk.h"

enum { kMaxGet = 4 };

static const char *source_name(int source) {
  switch (source) {
    case PORT_SOURCE_FD: return "fd";
    case PORT_SOURCE_USER: return "user";
    case PORT_SOURCE_ALERT: return "alert";
    default: return "other";
  }
}

/* The user value printed is the pointer's number: the step that set it. A
 * user event's object is the sender's pid (port.c port_send): "self". */
static void print_events(const port_event_t *ev, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    printf(" [%s ev=%#x obj=", source_name(ev[i].portev_source), (unsigned)ev[i].portev_events);
    if (ev[i].portev_source == PORT_SOURCE_USER && ev[i].portev_object == (uintptr_t)getpid()) {
      printf("self");
    } else {
      printf("%lu", (unsigned long)ev[i].portev_object);
    }
    printf(" user=%lu]", (unsigned long)(uintptr_t)ev[i].portev_user);
  }
}

static void walk(unsigned seed, unsigned steps) {
  seed_rand(seed);
  next_rand(2);
  const int port = port_create();
  if (port < 0) {
    perror("port_create");
    exit(2);
  }
  struct file files[kFiles];
  for (int i = 0; i < kFiles; i++) open_file(&files[i], i, i % 2);
  int alert_set = 0;
  char buf[70000];
  memset(buf, 'x', sizeof buf);
  printf("seed %u\n", seed);
  for (unsigned step = 1; step <= steps; step++) {
    const int index = (int)next_rand(kFiles);
    struct file *f = &files[index];
    const unsigned op = next_rand(100);
    const int changes_readiness = (op >= 28 && op < 50) || (op >= 86 && op < 97); /* writes, drains, closes */
    if (changes_readiness) {
      /* Before a file's readiness changes: a port call that counts the
       * queue (max 0), so the associations made since are evaluated
       * first. In fast mode an association placed without a look is
       * evaluated at the next look, not at port_associate (docs/abi.md
       * §10, "Fast mode: rule 6 at the next look"): a file that stops
       * being ready in between gives no event there, as illumos would
       * (rule 6, port.c:153-163). The walk does not test that one
       * difference; scenario associate_ready_then_drained does. */
      uint_t count = 0;
      struct timespec zero = {0, 0};
      printf("%u: count", step);
      result(port_getn(port, NULL, 0, &count, &zero));
      printf(" queued=%u\n", count);
    }
    printf("%u:", step);
    if (op < 22) {
      /* Associate an end (the read end mostly) for POLLIN, POLLOUT or both. */
      static const int events[] = {POLLIN, POLLIN, POLLOUT, POLLIN | POLLOUT, POLLPRI | POLLIN};
      int fd = next_rand(4) == 0 ? f->w : f->r;
      if (fd < 0 && next_rand(8) != 0) fd = f->r >= 0 ? f->r : f->w; /* mostly an open one */
      const int ev = events[next_rand(5)];
      printf(" associate fd=%d ev=%#x", fd, (unsigned)ev);
      result(port_associate(port, PORT_SOURCE_FD, (uintptr_t)fd, ev, (void *)(uintptr_t)step));
    } else if (op < 28) {
      const int fd = next_rand(4) == 0 ? f->w : f->r;
      printf(" dissociate fd=%d", fd);
      result(port_dissociate(port, PORT_SOURCE_FD, (uintptr_t)fd));
    } else if (op < 42) {
      write_step(f, buf, sizeof buf);
    } else if (op < 50) {
      drain_step(f, buf, sizeof buf);
    } else if (op < 58) {
      printf(" send");
      result(port_send(port, (int)step, (void *)(uintptr_t)step));
    } else if (op < 82) {
      port_event_t ev[kMaxGet];
      const unsigned max = 1 + next_rand(kMaxGet);
      uint_t nget = next_rand(max + 1);
      struct timespec zero = {0, 0};
      printf(" getn max=%u nget=%u", max, nget);
      const int r = port_getn(port, ev, max, &nget, &zero);
      result(r);
      printf(" got=%u", nget);
      print_events(ev, nget <= max ? nget : 0);
    } else if (op < 86) {
      port_event_t ev;
      struct timespec zero = {0, 0};
      printf(" get");
      const int r = port_get(port, &ev, &zero);
      result(r);
      if (r == 0) print_events(&ev, 1);
    } else if (op < 91) {
      reopen_step(files, index);
    } else if (op < 94) {
      close_writer_step(f);
    } else if (op < 97) {
      move_step(files, f);
    } else {
      /* An alert holds every retrieval until it is cleared: set it one
       * time in three, clear it at the next alert step mostly. */
      if (!alert_set && next_rand(3) != 0) {
        printf(" alert skipped\n");
        continue;
      }
      const int flags = alert_set ? PORT_ALERT_SET : (next_rand(2) ? PORT_ALERT_SET : PORT_ALERT_UPDATE);
      const int ev = alert_set && next_rand(4) != 0 ? 0 : (int)(1 + next_rand(7));
      printf(" alert flags=%d ev=%d", flags, ev);
      const int r = port_alert(port, flags, ev, (void *)(uintptr_t)step);
      result(r);
      if (r == 0) alert_set = ev != 0;
    }
    printf("\n");
  }
  /* What is left queued, in order, the alert cleared first. */
  port_event_t left[64];
  uint_t nleft = 1;
  printf("end: alert off");
  result(port_alert(port, PORT_ALERT_SET, 0, NULL));
  printf("\n");
  struct timespec zero = {0, 0};
  printf("end: getn max=64");
  result(port_getn(port, left, 64, &nleft, &zero));
  printf(" got=%u", nleft);
  print_events(left, nleft <= 64 ? nleft : 0);
  printf("\n");
  close(port);
  for (int i = 0; i < kFiles; i++) {
    close_fd(&files[i].r);
    close_fd(&files[i].w);
  }
}

int main(int argc, char **argv) { return walk_main(argc, argv, walk); }
