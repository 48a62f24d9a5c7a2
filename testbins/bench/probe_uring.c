/*
 * Research probe (issue 15 item 1): can the fast path's "look" for readiness
 * be a read of an io_uring completion ring instead of an epoll_wait?
 * Raw io_uring_setup/io_uring_enter through syscall(), no liburing.
 * docs/design.md "A look without a system call (io_uring, measured; not
 * adopted yet)" has the findings.
 *   probe_uring order          when a multishot poll completion is visible in
 *                              the CQ ring after a write by this thread,
 *                              another thread, another process, and a look by
 *                              a thread that is not the ring's submitter (the
 *                              submitter asleep, or busy in user space); per
 *                              setup flag set. One JSON line per case.
 *   probe_uring loop PAIRS N [SETUP [ARM]]  bench_epoll's token round
 *                              robin, one poll per socketpair end, the look a
 *                              read of the CQ ring. SETUP: none, coop,
 *                              taskrun (coop + TASKRUN_FLAG, the default),
 *                              defer (DEFER_TASKRUN + SINGLE_ISSUER +
 *                              TASKRUN_FLAG). ARM: multishot (default), or
 *                              oneshot (re-armed with one io_uring_enter per
 *                              event: the port_associate model), or
 *                              levelcheck (multishot, and a poll() per event:
 *                              rule 6's check at re-association).
 *   probe_uring ctlwait PAIRS N [ARM]  the same loop on epoll, the
 *                              epoll_wait through the ring
 *                              (IORING_OP_EPOLL_WAIT, Linux 6.15). ARM: rearm
 *                              (default: EPOLLONESHOT registrations, each
 *                              event's EPOLL_CTL_MOD queued and submitted
 *                              with the next wait, hard-linked before it:
 *                              the port_associate model, one io_uring_enter
 *                              an event), or level (no re-arm: the ring's
 *                              own cost against epoll_wait(2)). A kernel
 *                              without the opcode: one JSON line with
 *                              "error".
 *   probe_uring rearm          completions of a file left ready (edge or
 *                              level?), a one-shot re-arm on a ready file.
 *   probe_uring close          an armed poll and close(): does the peer see
 *                              the hang-up?
 * Exit 77 (with the reason on stderr) where io_uring cannot be set up.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/io_uring.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>

#include "bench_common.h"

struct ring {
  int fd;
  unsigned setup;
  unsigned *sq_tail, *sq_mask, *sq_flags, *sq_array;
  struct io_uring_sqe *sqes;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
};

struct setup_kind {
  const char *name;
  unsigned flags;
};

static const struct setup_kind kSetups[] = {
    {"none", 0},
    {"coop", IORING_SETUP_COOP_TASKRUN},
    {"taskrun", IORING_SETUP_COOP_TASKRUN | IORING_SETUP_TASKRUN_FLAG},
    {"defer", IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_TASKRUN_FLAG},
};

static int uring_enter(const struct ring *r, unsigned submit, unsigned min_complete, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, r->fd, submit, min_complete, flags, NULL, 0);
}

/* Waits for at least one completion, at most `ms` milliseconds. */
static int uring_wait_ms(const struct ring *r, long ms) {
  struct __kernel_timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
  struct io_uring_getevents_arg arg = {.sigmask = 0, .sigmask_sz = _NSIG / 8, .ts = (uint64_t)(uintptr_t)&ts};
  return (int)syscall(__NR_io_uring_enter, r->fd, 0, 1, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, &arg,
                      sizeof arg);
}

/* 0, or the errno io_uring_setup gave (the caller decides whether to skip). */
static int ring_open(struct ring *r, unsigned setup, unsigned entries) {
  struct io_uring_params p;
  memset(&p, 0, sizeof p);
  p.flags = setup;
  int fd = (int)syscall(__NR_io_uring_setup, entries, &p);
  if (fd < 0) return errno;
  r->fd = fd;
  r->setup = setup;
  size_t sq_len = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  size_t cq_len = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  DIE_IF(!(p.features & IORING_FEAT_SINGLE_MMAP)); /* 5.4+; multishot poll needs 5.13 */
  size_t len = sq_len > cq_len ? sq_len : cq_len;
  char *rings = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
  DIE_IF(rings == MAP_FAILED);
  r->sqes = mmap(NULL, p.sq_entries * sizeof(struct io_uring_sqe), PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
  DIE_IF(r->sqes == MAP_FAILED);
  r->sq_tail = (unsigned *)(rings + p.sq_off.tail);
  r->sq_mask = (unsigned *)(rings + p.sq_off.ring_mask);
  r->sq_flags = (unsigned *)(rings + p.sq_off.flags);
  r->sq_array = (unsigned *)(rings + p.sq_off.array);
  r->cq_head = (unsigned *)(rings + p.cq_off.head);
  r->cq_tail = (unsigned *)(rings + p.cq_off.tail);
  r->cq_mask = (unsigned *)(rings + p.cq_off.ring_mask);
  r->cqes = (struct io_uring_cqe *)(rings + p.cq_off.cqes);
  return 0;
}

/* The next SQE, zeroed and queued (the caller fills it before the enter
 * that submits it). */
static struct io_uring_sqe *ring_next_sqe(struct ring *r) {
  unsigned tail = *r->sq_tail, idx = tail & *r->sq_mask;
  struct io_uring_sqe *sqe = &r->sqes[idx];
  memset(sqe, 0, sizeof *sqe);
  r->sq_array[idx] = idx;
  atomic_store_explicit((_Atomic unsigned *)r->sq_tail, tail + 1, memory_order_release);
  return sqe;
}

/* Queues one poll SQE (multishot or one-shot); ring_submit sends them. */
static void ring_queue_poll(struct ring *r, int fd, unsigned events, int multishot, uint64_t user_data) {
  struct io_uring_sqe *sqe = ring_next_sqe(r);
  sqe->opcode = IORING_OP_POLL_ADD;
  sqe->fd = fd;
  sqe->poll32_events = events;
  sqe->len = multishot ? IORING_POLL_ADD_MULTI : 0;
  sqe->user_data = user_data;
}

static void ring_submit(struct ring *r, unsigned count) {
  DIE_IF(uring_enter(r, count, 0, 0) != (int)count);
}

/* The look: a load of the CQ tail. Returns the next completion, or NULL. */
static struct io_uring_cqe *ring_peek(const struct ring *r) {
  unsigned head = *r->cq_head;
  unsigned tail = atomic_load_explicit((_Atomic unsigned *)r->cq_tail, memory_order_acquire);
  return head == tail ? NULL : &r->cqes[head & *r->cq_mask];
}

static void ring_consume(struct ring *r) {
  atomic_store_explicit((_Atomic unsigned *)r->cq_head, *r->cq_head + 1, memory_order_release);
}

static int ring_taskrun_pending(const struct ring *r) {
  return (atomic_load_explicit((_Atomic unsigned *)r->sq_flags, memory_order_acquire) & IORING_SQ_TASKRUN) != 0;
}

static int ring_drain(struct ring *r) {
  int n = 0;
  while (ring_peek(r)) {
    ring_consume(r);
    n++;
  }
  return n;
}

static void ring_close(struct ring *r) { close(r->fd); }

/* io_uring_setup refused: exit 77 with the reason (the smoke test skips). */
static void skip_unavailable(int err, const char *setup) {
  fprintf(stderr, "probe_uring: io_uring_setup (%s) failed: %s; io_uring unavailable here\n", setup, strerror(err));
  exit(77);
}

/* ------------------------------------------------------------------ order */

enum writer_kind { kSameThread, kOtherThread, kOtherProcess, kOtherThreadLooks, kOtherThreadLooksBusy };
static const char *const kWriterNames[] = {"same-thread", "other-thread", "other-process", "non-submitter-looks",
                                           "non-submitter-looks-busy"};

/* What one trial found. */
enum found {
  kAtLook,            /* in the ring at the first load after the write */
  kAfterTaskrunEnter, /* not yet; SQ_TASKRUN set; one io_uring_enter posted it */
  kAfterEnterNoFlag,  /* not yet, SQ_TASKRUN clear, but an enter posted it: a look trusting the flag misses */
  kAfterSpin,         /* not after the enter; appeared within 20 ms of loads, no system call of ours */
  kAfterWait,         /* only after waiting in io_uring_enter (min_complete 1) */
  kNotIn100ms,        /* not within 100 ms */
  kFoundCount
};
static const char *const kFoundNames[] = {"at_look",          "after_taskrun_enter", "after_enter_flag_clear",
                                          "after_spin_20ms", "after_wait",          "not_in_100ms"};

/* Shared with the writer (thread or process): a sequence the looker bumps to
 * ask for a write, and one the writer bumps once its write() returned. */
struct handshake {
  _Atomic long asked, written, stop;
};

/* The submitter waits in user space, with no system call: a call's return
 * would run its pending task work and hide what is being measured. */
static void spin_until(_Atomic long *v, long want) {
  while (atomic_load(v) < want) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
  }
}

static void writer_loop(struct handshake *h, int fd) {
  for (long k = 1;; k++) {
    while (atomic_load(&h->asked) < k) {
      if (atomic_load(&h->stop)) return;
      sched_yield();
    }
    DIE_IF(write(fd, "w", 1) != 1);
    atomic_store(&h->written, k);
  }
}

/* The submitter and the other party on two different processors when the
 * process may use two: a writer sharing the submitter's processor can only
 * run once the submitter is switched out, and that kernel transition runs
 * the submitter's task work, hiding the case where both run at once. */
static int cpu_slot[2] = {-1, -1};

static void find_two_cpus(void) {
  cpu_set_t set;
  DIE_IF(sched_getaffinity(0, sizeof set, &set) != 0);
  int found = 0;
  for (int c = 0; c < CPU_SETSIZE && found < 2; c++) {
    if (CPU_ISSET(c, &set)) cpu_slot[found++] = c;
  }
  if (found < 2) cpu_slot[0] = cpu_slot[1] = -1;
}

static void pin_self(int slot) {
  if (cpu_slot[slot] < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu_slot[slot], &set);
  DIE_IF(sched_setaffinity(0, sizeof set, &set) != 0);
}

static void unpin_self(void) {
  if (cpu_slot[0] < 0) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu_slot[0], &set);
  CPU_SET(cpu_slot[1], &set);
  DIE_IF(sched_setaffinity(0, sizeof set, &set) != 0);
}

struct writer_args {
  struct handshake *h;
  int fd;
};

static void *writer_thread(void *p) {
  struct writer_args *a = p;
  pin_self(1);
  writer_loop(a->h, a->fd);
  return NULL;
}

/* The non-submitter look: this thread writes and looks itself while the
 * submitter sleeps in a system call (read on a pipe, wake_fd), or computes
 * in user space until `done` (wake_fd -1). */
struct looker_args {
  struct ring *r;
  _Atomic long done;
  int fd, read_fd, wake_fd, err;
  long trials;
  long found[kFoundCount];
};

/* The longest spin (kAfterSpin) and wait (kAfterWait) that found the
 * completion, in microseconds. */
static double spin_us_max, wait_us_max;

static enum found look_after_write(struct ring *r, int *enter_err) {
  if (ring_peek(r)) return kAtLook;
  int flag = ring_taskrun_pending(r);
  if (uring_enter(r, 0, 0, IORING_ENTER_GETEVENTS) < 0 && !*enter_err) *enter_err = errno;
  if (ring_peek(r)) return flag ? kAfterTaskrunEnter : kAfterEnterNoFlag;
  double t0 = bench_now();
  while (bench_now() - t0 < 0.020) { /* clock_gettime is a vDSO read: no kernel entry */
    if (ring_peek(r)) {
      double us = (bench_now() - t0) * 1e6;
      if (us > spin_us_max) spin_us_max = us;
      return kAfterSpin;
    }
  }
  t0 = bench_now();
  if (uring_wait_ms(r, 100) < 0 && errno != ETIME && !*enter_err) *enter_err = errno;
  if (!ring_peek(r)) return kNotIn100ms;
  double us = (bench_now() - t0) * 1e6;
  if (us > wait_us_max) wait_us_max = us;
  return kAfterWait;
}

static void *non_submitter_looker(void *p) {
  struct looker_args *a = p;
  pin_self(1);
  for (long t = 0; t < a->trials; t++) {
    usleep(2000); /* the submitter is asleep in read(), or spinning, by now */
    DIE_IF(write(a->fd, "w", 1) != 1);
    a->found[look_after_write(a->r, &a->err)]++;
    ring_drain(a->r);
    char buf[64];
    while (read(a->read_fd, buf, sizeof buf) > 0) {
    }
  }
  if (a->wake_fd >= 0) DIE_IF(write(a->wake_fd, "x", 1) != 1);
  atomic_store(&a->done, 1);
  return NULL;
}

static void order_case(const struct setup_kind *setup, enum writer_kind kind, long trials) {
  struct ring r;
  int err = ring_open(&r, setup->flags, 64);
  if (err == EINVAL) { /* a flag this kernel does not know: say so, go on */
    printf("{\"probe\":\"order\",\"case\":\"%s\",\"setup\":\"%s\",\"error\":\"io_uring_setup: %s\"}\n",
           kWriterNames[kind], setup->name, strerror(err));
    return;
  }
  if (err) skip_unavailable(err, setup->name);
  int sv[2];
  DIE_IF(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0);
  ring_queue_poll(&r, sv[0], POLLIN, 1, 1);
  ring_submit(&r, 1);
  long found[kFoundCount] = {0};
  int enter_err = 0;
  spin_us_max = wait_us_max = 0;
  pin_self(0);
  char buf[64];

  if (kind == kOtherThreadLooks || kind == kOtherThreadLooksBusy) {
    /* The submitter (this thread) blocks in read() on a pipe, or spins in
     * user space; another thread writes to the socket and looks. */
    int wake[2];
    DIE_IF(pipe(wake) != 0);
    /* Each miss may wait 120 ms: fewer trials. */
    struct looker_args a = {.r = &r, .fd = sv[1], .read_fd = sv[0],
                            .wake_fd = kind == kOtherThreadLooks ? wake[1] : -1,
                            .trials = trials / 10 > 5 ? trials / 10 : 5};
    pthread_t id;
    DIE_IF(pthread_create(&id, NULL, non_submitter_looker, &a) != 0);
    char c;
    if (kind == kOtherThreadLooks) DIE_IF(read(wake[0], &c, 1) != 1);
    else spin_until(&a.done, 1);
    pthread_join(id, NULL);
    memcpy(found, a.found, sizeof found);
    enter_err = a.err;
    close(wake[0]);
    close(wake[1]);
  } else {
    struct handshake *h = mmap(NULL, sizeof *h, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    DIE_IF(h == MAP_FAILED);
    pthread_t id;
    pid_t child = -1;
    struct writer_args wa = {h, sv[1]};
    if (kind == kOtherThread) DIE_IF(pthread_create(&id, NULL, writer_thread, &wa) != 0);
    if (kind == kOtherProcess) {
      child = fork();
      DIE_IF(child < 0);
      if (child == 0) {
        pin_self(1);
        writer_loop(h, sv[1]);
        _exit(0);
      }
    }
    for (long t = 1; t <= trials; t++) {
      if (kind == kSameThread) {
        DIE_IF(write(sv[1], "w", 1) != 1);
      } else { /* the submitter stays in user space until the write returned */
        atomic_store(&h->asked, t);
        spin_until(&h->written, t);
      }
      found[look_after_write(&r, &enter_err)]++;
      ring_drain(&r);
      while (read(sv[0], buf, sizeof buf) > 0) {
      }
      ring_drain(&r); /* reading does not post: nothing to drop */
    }
    atomic_store(&h->stop, 1);
    if (kind == kOtherThread) pthread_join(id, NULL);
    if (kind == kOtherProcess) DIE_IF(waitpid(child, NULL, 0) != child);
    munmap(h, sizeof *h);
  }
  long done = 0;
  for (int f = 0; f < kFoundCount; f++) done += found[f];
  printf("{\"probe\":\"order\",\"case\":\"%s\",\"setup\":\"%s\",\"two_cpus\":%s,\"trials\":%ld",
         kWriterNames[kind], setup->name, cpu_slot[0] >= 0 ? "true" : "false", done);
  for (int f = 0; f < kFoundCount; f++) printf(",\"%s\":%ld", kFoundNames[f], found[f]);
  printf(",\"spin_us_max\":%.0f,\"wait_us_max\":%.0f,\"enter_error\":\"%s\"}\n", spin_us_max, wait_us_max, enter_err ? strerror(enter_err) : "");
  fflush(stdout);
  close(sv[0]);
  close(sv[1]);
  ring_close(&r);
  unpin_self();
}

static void order(long trials) {
  find_two_cpus();
  for (size_t s = 0; s < sizeof kSetups / sizeof kSetups[0]; s++) {
    for (int k = kSameThread; k <= kOtherThreadLooksBusy; k++) order_case(&kSetups[s], (enum writer_kind)k, trials);
  }
}

/* ------------------------------------------------------------------- loop */

static const struct setup_kind *setup_named(const char *name) {
  for (size_t s = 0; s < sizeof kSetups / sizeof kSetups[0]; s++) {
    if (!strcmp(kSetups[s].name, name)) return &kSetups[s];
  }
  return NULL;
}

/* oneshot: the port model, one one-shot poll per association, submitted
 * again by each "port_associate" after the read (one io_uring_enter, which
 * also arms on the file the number names now and posts at once if ready). */
/* levelcheck: multishot polls, and each "port_associate" asks poll() whether
 * the file is still ready (rule 6: a multishot poll posts at wake-ups only,
 * so a file left ready posts nothing at re-association). */
enum arm_kind { kArmMultishot, kArmOneshot, kArmLevelCheck };
static const char *const kArmNames[] = {"multishot", "oneshot", "levelcheck"};

static void loop(long pairs, long n, const struct setup_kind *setup, enum arm_kind arm) {
  int oneshot = arm == kArmOneshot;
  bench_raise_nofile();
  struct ring r;
  int err = ring_open(&r, setup->flags, 4096);
  if (err) skip_unavailable(err, setup->name);
  int (*sv)[2] = calloc((size_t)pairs, sizeof *sv);
  DIE_IF(!sv);
  for (long i = 0; i < pairs; i++) {
    DIE_IF(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0);
    ring_queue_poll(&r, sv[i][0], POLLIN, !oneshot, (uint64_t)i);
    if ((i + 1) % 1024 == 0 || i + 1 == pairs) ring_submit(&r, (unsigned)(i % 1024 + 1));
  }
  DIE_IF(write(sv[0][1], "t", 1) != 1);
  long waits = 0, taskrun_enters = 0, rearms = 0, second_looks_found = 0;
  double t0 = bench_start();
  for (long done = 0; done < n;) {
    struct io_uring_cqe *cqe = ring_peek(&r); /* port_getn's look */
    if (!cqe) {
      if (ring_taskrun_pending(&r)) {
        taskrun_enters++;
        DIE_IF(uring_enter(&r, 0, 0, IORING_ENTER_GETEVENTS) < 0);
      } else {
        waits++;
        DIE_IF(uring_enter(&r, 0, 1, IORING_ENTER_GETEVENTS) < 0 && errno != EINTR);
      }
      continue;
    }
    long i = (long)cqe->user_data;
    int res = cqe->res;
    unsigned flags = cqe->flags;
    ring_consume(&r);
    DIE_IF(res < 0 && (errno = -res));
    if (!oneshot && !(flags & IORING_CQE_F_MORE)) { /* the kernel ended the multishot: arm anew */
      rearms++;
      ring_queue_poll(&r, sv[i][0], POLLIN, 1, (uint64_t)i);
      ring_submit(&r, 1);
    }
    char c;
    DIE_IF(read(sv[i][0], &c, 1) != 1);
    if (oneshot) { /* port_associate */
      rearms++;
      ring_queue_poll(&r, sv[i][0], POLLIN, 0, (uint64_t)i);
      ring_submit(&r, 1);
    }
    if (arm == kArmLevelCheck) { /* port_associate: a ready file fires at once */
      struct pollfd pf = {.fd = sv[i][0], .events = POLLIN};
      DIE_IF(poll(&pf, 1, 0) != 0);
    }
    /* port_associate's look (rule 6's order): a load, and the flag. */
    if (ring_peek(&r) || ring_taskrun_pending(&r)) second_looks_found++;
    DIE_IF(write(sv[(i + 1) % pairs][1], &c, 1) != 1);
    done++;
  }
  double t1 = bench_now();
  bench_done(t0, t1);
  bench_report("uring-probe", "loop", "events_per_s", (double)n / (t1 - t0), "ev/s", pairs);
  fprintf(stderr,
          "{\"probe\":\"loop\",\"setup\":\"%s\",\"arm\":\"%s\",\"events\":%ld,\"waits\":%ld,\"taskrun_enters\":%ld,"
          "\"rearms\":%ld,\"associate_looks_found\":%ld}\n",
          setup->name, kArmNames[arm], n, waits, taskrun_enters, rearms, second_looks_found);
}

/* ---------------------------------------------------------------- ctlwait */

/* Not in Debian 12's <linux/io_uring.h>: the opcode after IORING_OP_RECV_ZC
 * (Linux 6.15, include/uapi/linux/io_uring.h). */
enum { kOpEpollWait = 59 };

enum { kCtlwaitMod = 1, kCtlwaitWait = 2 };

/* One enter: the queued re-arm (if any), then the wait; returns the wait's
 * result (events, or -errno). */
static int ctlwait_enter(struct ring *r, int ep, int rearm_fd, struct epoll_event *rearm_ev,
                         struct epoll_event *out, int max) {
  unsigned submit = 0;
  if (rearm_fd >= 0) {
    struct io_uring_sqe *sqe = ring_next_sqe(r);
    sqe->opcode = IORING_OP_EPOLL_CTL;
    sqe->fd = ep;
    sqe->len = EPOLL_CTL_MOD;
    sqe->off = (uint64_t)rearm_fd;
    sqe->addr = (uint64_t)(uintptr_t)rearm_ev;
    sqe->flags = IOSQE_IO_HARDLINK; /* the wait runs after it, whatever its result */
    sqe->user_data = kCtlwaitMod;
    submit++;
  }
  struct io_uring_sqe *sqe = ring_next_sqe(r);
  sqe->opcode = kOpEpollWait;
  sqe->fd = ep;
  sqe->addr = (uint64_t)(uintptr_t)out;
  sqe->len = (unsigned)max;
  sqe->user_data = kCtlwaitWait;
  submit++;
  DIE_IF(uring_enter(r, submit, submit, IORING_ENTER_GETEVENTS) != (int)submit);
  int waited = -EIO;
  for (unsigned c = 0; c < submit; c++) {
    struct io_uring_cqe *cqe = ring_peek(r);
    DIE_IF(!cqe);
    if (cqe->user_data == kCtlwaitWait) waited = cqe->res;
    else DIE_IF(cqe->res != 0 && (errno = -cqe->res));
    ring_consume(r);
  }
  return waited;
}

static void ctlwait(long pairs, long n, int rearm) {
  bench_raise_nofile();
  struct ring r;
  int err = ring_open(&r, IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN, 64);
  if (err) skip_unavailable(err, "defer");
  int ep = epoll_create1(0);
  DIE_IF(ep < 0);
  int (*sv)[2] = calloc((size_t)pairs, sizeof *sv);
  DIE_IF(!sv);
  const uint32_t events = EPOLLIN | (rearm ? EPOLLONESHOT : 0);
  for (long i = 0; i < pairs; i++) {
    DIE_IF(socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0);
    struct epoll_event ev = {.events = events, .data.u64 = (uint64_t)i};
    DIE_IF(epoll_ctl(ep, EPOLL_CTL_ADD, sv[i][0], &ev) != 0);
  }
  DIE_IF(write(sv[0][1], "t", 1) != 1);
  long pending = -1; /* the association to re-arm with the next wait */
  struct epoll_event rearm_ev;
  double t0 = bench_start();
  for (long done = 0; done < n;) {
    struct epoll_event out[8];
    if (pending >= 0) rearm_ev = (struct epoll_event){.events = events, .data.u64 = (uint64_t)pending};
    int k = ctlwait_enter(&r, ep, pending >= 0 ? sv[pending][0] : -1, &rearm_ev, out, 8);
    pending = -1;
    if (k == -EINVAL && done == 0) { /* no IORING_OP_EPOLL_WAIT (before 6.15) */
      printf("{\"probe\":\"ctlwait\",\"arm\":\"%s\",\"error\":\"EINVAL\"}\n", rearm ? "rearm" : "level");
      return;
    }
    DIE_IF(k <= 0 && (errno = -k));
    for (int j = 0; j < k; j++, done++) {
      long i = (long)out[j].data.u64;
      char c;
      DIE_IF(read(sv[i][0], &c, 1) != 1);
      if (rearm) pending = i; /* port_associate: the MOD goes with the next wait */
      DIE_IF(write(sv[(i + 1) % pairs][1], &c, 1) != 1);
    }
  }
  double t1 = bench_now();
  bench_done(t0, t1);
  bench_report("uring-probe", rearm ? "ctlwait-rearm" : "ctlwait-level", "events_per_s", (double)n / (t1 - t0),
               "ev/s", pairs);
}

/* ------------------------------------------------------------------ rearm */

/* Completions posted now (after one enter to run any task work). */
static int completions_now(struct ring *r, unsigned *last_mask) {
  DIE_IF(uring_enter(r, 0, 0, IORING_ENTER_GETEVENTS) < 0);
  int n = 0;
  struct io_uring_cqe *cqe;
  while ((cqe = ring_peek(r))) {
    *last_mask = (unsigned)cqe->res;
    ring_consume(r);
    n++;
  }
  return n;
}

static void rearm(void) {
  struct ring r;
  int err = ring_open(&r, kSetups[2].flags, 64);
  if (err) skip_unavailable(err, kSetups[2].name);
  int sv[2];
  DIE_IF(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0);
  unsigned mask = 0;
  DIE_IF(write(sv[1], "a", 1) != 1);
  ring_queue_poll(&r, sv[0], POLLIN, 1, 1);
  ring_submit(&r, 1);
  int at_arm = completions_now(&r, &mask);
  usleep(20 * 1000);
  int left_ready_idle = completions_now(&r, &mask);
  int per_write = 0;
  for (int k = 0; k < 5; k++) {
    DIE_IF(write(sv[1], "b", 1) != 1);
    per_write += completions_now(&r, &mask);
  }
  char buf[16];
  DIE_IF(read(sv[0], buf, sizeof buf) != 6);
  int after_read = completions_now(&r, &mask);
  /* A one-shot poll armed on a ready file completes in the submitting call. */
  DIE_IF(write(sv[1], "c", 1) != 1);
  completions_now(&r, &mask);
  int sock2[2];
  DIE_IF(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sock2) != 0);
  DIE_IF(write(sock2[1], "d", 1) != 1);
  ring_queue_poll(&r, sock2[0], POLLIN, 0, 2);
  ring_submit(&r, 1);
  int oneshot_at_submit = ring_peek(&r) != NULL;
  ring_drain(&r);
  printf("{\"probe\":\"rearm\",\"completions_at_arm_of_ready_file\":%d,\"completions_left_ready_20ms\":%d,"
         "\"completions_for_5_writes_unread\":%d,\"completions_after_read\":%d,"
         "\"oneshot_on_ready_file_posted_by_submit\":%s,\"last_mask\":%u}\n",
         at_arm, left_ready_idle, per_write, after_read, oneshot_at_submit ? "true" : "false", mask);
  fflush(stdout);
  close(sv[0]);
  close(sv[1]);
  close(sock2[0]);
  close(sock2[1]);
  ring_close(&r);
}

/* ------------------------------------------------------------------ close */

static int peer_hung_up(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  DIE_IF(poll(&p, 1, 0) < 0);
  return (p.revents & POLLHUP) != 0;
}

static void close_case(void) {
  struct ring r;
  int err = ring_open(&r, kSetups[2].flags, 64);
  if (err) skip_unavailable(err, kSetups[2].name);
  int sv[2];
  DIE_IF(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0);
  ring_queue_poll(&r, sv[0], POLLIN, 1, 1);
  ring_submit(&r, 1);
  DIE_IF(close(sv[0]) != 0);
  unsigned mask = 0;
  int posted_at_close = completions_now(&r, &mask);
  int hup_while_armed = peer_hung_up(sv[1]);
  /* Cancel the poll: IORING_OP_POLL_REMOVE by user_data. */
  unsigned tail = *r.sq_tail, idx = tail & *r.sq_mask;
  struct io_uring_sqe *sqe = &r.sqes[idx];
  memset(sqe, 0, sizeof *sqe);
  sqe->opcode = IORING_OP_POLL_REMOVE;
  sqe->addr = 1;
  sqe->user_data = 99;
  r.sq_array[idx] = idx;
  atomic_store_explicit((_Atomic unsigned *)r.sq_tail, tail + 1, memory_order_release);
  ring_submit(&r, 1);
  completions_now(&r, &mask);
  int hup_after_cancel = peer_hung_up(sv[1]);
  printf("{\"probe\":\"close\",\"completions_at_close\":%d,\"peer_sees_hangup_while_poll_armed\":%s,"
         "\"peer_sees_hangup_after_poll_remove\":%s}\n",
         posted_at_close, hup_while_armed ? "true" : "false", hup_after_cancel ? "true" : "false");
  fflush(stdout);
  close(sv[1]);
  ring_close(&r);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  if (!strcmp(argv[1], "order")) order(argc >= 3 ? atol(argv[2]) : 200);
  else if (!strcmp(argv[1], "loop") && argc >= 4 && argc <= 6) {
    const struct setup_kind *setup = setup_named(argc >= 5 ? argv[4] : "taskrun");
    int arm = 0;
    while (argc == 6 && arm < 3 && strcmp(argv[5], kArmNames[arm])) arm++;
    if (!setup || arm == 3) return 2;
    loop(atol(argv[2]), atol(argv[3]), setup, (enum arm_kind)arm);
  } else if (!strcmp(argv[1], "ctlwait") && argc >= 4 && argc <= 5) {
    if (argc == 5 && strcmp(argv[4], "rearm") && strcmp(argv[4], "level")) return 2;
    ctlwait(atol(argv[2]), atol(argv[3]), argc == 4 || !strcmp(argv[4], "rearm"));
  } else if (!strcmp(argv[1], "rearm")) rearm();
  else if (!strcmp(argv[1], "close")) close_case();
  else return 2;
  return 0;
}
