/* Shared helpers for the benchmark programs: timing, JSON output, limits. */
#ifndef EVSHIM_BENCH_COMMON_H
#define EVSHIM_BENCH_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DIE_IF(cond)                                                                          \
  do {                                                                                        \
    if (cond) {                                                                               \
      fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #cond, strerror(errno)); \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One JSON object per line: what scripts/bench reads. */
static inline void bench_report(const char *api, const char *bench, const char *metric, double value,
                                const char *unit, long param) {
  printf("{\"api\":\"%s\",\"bench\":\"%s\",\"metric\":\"%s\",\"value\":%.6g,\"unit\":\"%s\",\"param\":%ld}\n",
         api, bench, metric, value, unit, param);
  fflush(stdout);
}

/* pollwait's other thread: at each byte on `go` it waits 50 us (spinning:
 * a sleep's timer slack is as long), so that the measuring thread is
 * asleep in poll() by then, and writes a byte to `out`. */
struct bench_late_writer {
  int go[2];
  int out;
  pthread_t thread;
};

static inline void *bench_late_writer_main(void *arg) {
  struct bench_late_writer *w = (struct bench_late_writer *)arg;
  char c;
  while (read(w->go[0], &c, 1) == 1) {
    double until = bench_now() + 50e-6;
    while (bench_now() < until) {
    }
    DIE_IF(write(w->out, "x", 1) != 1);
  }
  return NULL;
}

static inline void bench_late_writer_start(struct bench_late_writer *w, int out) {
  DIE_IF(pipe(w->go) != 0);
  w->out = out;
  DIE_IF(pthread_create(&w->thread, NULL, bench_late_writer_main, w) != 0);
}

/* The next write, 50 us from now. */
static inline void bench_late_writer_kick(struct bench_late_writer *w) { DIE_IF(write(w->go[1], "g", 1) != 1); }

static inline void bench_late_writer_stop(struct bench_late_writer *w) {
  close(w->go[1]);
  pthread_join(w->thread, NULL);
  close(w->go[0]);
}

/* 10000 socketpairs need 20000 descriptors: raise the hard limit when
 * allowed (root), else the soft one to the hard one. */
static inline void bench_raise_nofile(void) {
  struct rlimit want = {65536, 65536};
  if (setrlimit(RLIMIT_NOFILE, &want) == 0) return;
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
}

/* Resident memory (kB) and open descriptors of process `pid`. */
static inline long bench_rss_kb(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  long kb = -1;
  if (!f) return -1;
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "VmRSS:", 6) == 0) kb = atol(line + 6);
  }
  fclose(f);
  return kb;
}

/* A watch count: a number, or "max": as many one-descriptor watches as the
 * descriptor limit (raised first) leaves room for. */
static inline long bench_watch_count(const char *arg) {
  if (strcmp(arg, "max") != 0) return atol(arg);
  bench_raise_nofile();
  struct rlimit rl;
  DIE_IF(getrlimit(RLIMIT_NOFILE, &rl) != 0);
  return (long)rl.rlim_cur - 64;
}

/* Resident memory (kB) of this process, and the number of descriptors
 * process `pid` holds (-1 if it cannot be read). */
static inline long bench_self_rss_kb(void) { return bench_rss_kb(getpid()); }

static inline long bench_fd_count(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
  DIR *d = opendir(path);
  if (!d) return -1;
  long n = 0;
  while (readdir(d)) n++;
  closedir(d);
  return n - 2; /* . and .. */
}

/* The supervisor, when this program runs under `evshim run`: its parent, if
 * that is the evshim executable; 0 otherwise (native, preload-only). */
static inline pid_t bench_supervisor(void) {
  char path[64], exe[4096];
  pid_t parent = getppid();
  snprintf(path, sizeof path, "/proc/%d/exe", (int)parent);
  ssize_t n = readlink(path, exe, sizeof exe - 1);
  if (n <= 0) return 0;
  exe[n] = '\0';
  const char *base = strrchr(exe, '/');
  return strcmp(base ? base + 1 : exe, "evshim") == 0 ? parent : 0;
}

/* Memory per watch, measured where it lives: this process (an in-process
 * engine's tables) and the supervisor (its tables, and the descriptors it
 * holds per watch). Kernel memory (the epoll entries themselves) is in
 * neither RSS: the native epoll run gives that baseline's user-space part. */
struct bench_mem {
  pid_t sup;
  long self_kb, sup_kb, sup_fds;
};

/* Whether process `pid` waits in an epoll wait (the supervisor's loop);
 * -1 if its /proc/PID/syscall cannot be read (ptrace access: Yama's
 * ptrace_scope keeps a child from its parent's unless root).
 * `evshim run` builds its supervisor after the program's exec (shim/cli:
 * Supervisor is made once the probes end), so the program's first
 * instructions run alongside that set-up: its descriptors and tables
 * (about 8 descriptors, 200-350 kB) would be counted as the watches' when
 * `before` is read first, 11-35 bytes a watch at 10000 to 20000 watches
 * (docs/performance.md "Session 38: a knote's bytes"). */
static inline int bench_in_epoll_wait(pid_t pid) {
  char path[64];
  long nr = -1;
  snprintf(path, sizeof path, "/proc/%d/syscall", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  const int fields = fscanf(f, "%ld", &nr);
  fclose(f);
  if (fields == EOF) return -1;  /* no access: the read fails */
  if (fields != 1) return 0;     /* "running" */
#ifdef SYS_epoll_wait
  if (nr == SYS_epoll_wait) return 1;
#endif
#ifdef SYS_epoll_pwait2
  if (nr == SYS_epoll_pwait2) return 1;
#endif
  return nr == SYS_epoll_pwait;
}

/* Waits (2 s at most) until the supervisor is in its loop, its set-up done
 * and no call of ours in its hands; not at all where that cannot be seen. */
static inline void bench_supervisor_settle(pid_t sup) {
  for (int i = 0; i < 2000 && bench_in_epoll_wait(sup) == 0; i++) {
    struct timespec ms = {0, 1000000};
    nanosleep(&ms, NULL);
  }
}

static inline struct bench_mem bench_mem_now(void) {
  struct bench_mem m = {bench_supervisor(), 0, 0, 0};
  if (m.sup > 0) bench_supervisor_settle(m.sup);
  m.self_kb = bench_self_rss_kb();
  if (m.sup > 0) {
    m.sup_kb = bench_rss_kb(m.sup);
    m.sup_fds = bench_fd_count(m.sup);
  }
  return m;
}

/* One line: value = bytes per watch in both processes together. */
static inline void bench_report_memory(const char *api, const char *kind, struct bench_mem before,
                                       long count) {
  struct bench_mem after = bench_mem_now();
  long self_kb = after.self_kb - before.self_kb, sup_kb = after.sup_kb - before.sup_kb;
  double per = (double)(self_kb + sup_kb) * 1024.0 / (double)count;
  printf("{\"api\":\"%s\",\"bench\":\"memory-%s\",\"metric\":\"bytes_per_watch\",\"value\":%.6g,"
         "\"unit\":\"B\",\"param\":%ld,\"process_kb\":%ld,\"supervisor_kb\":%ld,"
         "\"supervisor_fds\":%ld}\n",
         api, kind, per, count, self_kb, sup_kb, after.sup_fds - before.sup_fds);
  fflush(stdout);
}

/* `procs K ...`: K copies of a loop benchmark in K forked processes of one
 * tree (under one `evshim run`), started together; the parent reports the
 * aggregate events/s (all events over the span from the first start to the
 * last end). A loop calls bench_start() after its set-up and bench_done()
 * at its end; outside `procs` both only read the clock. */
static int bench_child_up = -1, bench_child_go = -1;

static inline double bench_start(void) {
  if (bench_child_up >= 0) {
    char c = 'r';
    DIE_IF(write(bench_child_up, &c, 1) != 1);
    DIE_IF(read(bench_child_go, &c, 1) != 1);
  }
  return bench_now();
}

/* In a `procs` child: sends the times to the parent and exits. */
static inline void bench_done(double t0, double t1) {
  if (bench_child_up < 0) return;
  double times[2] = {t0, t1};
  DIE_IF(write(bench_child_up, times, sizeof times) != sizeof times);
  _exit(0);
}

static inline void bench_procs(const char *api, long k, long pairs, long n, void (*loop)(long, long)) {
  int up[2], go[2];
  DIE_IF(k < 1 || k > 256);
  DIE_IF(pipe(up) != 0 || pipe(go) != 0);
  fflush(stdout);
  for (long i = 0; i < k; i++) {
    pid_t pid = fork();
    DIE_IF(pid < 0);
    if (pid == 0) {
      close(up[0]);
      close(go[1]);
      bench_child_up = up[1];
      bench_child_go = go[0];
      loop(pairs, n);
      _exit(1); /* a loop returns only outside `procs` */
    }
  }
  close(up[1]);
  close(go[0]);
  for (long i = 0; i < k; i++) { /* every child set up */
    char c;
    DIE_IF(read(up[0], &c, 1) != 1);
  }
  for (long i = 0; i < k; i++) DIE_IF(write(go[1], "g", 1) != 1);
  double first = 0, last = 0;
  for (long i = 0; i < k; i++) { /* 16-byte writes: atomic on a pipe */
    double times[2];
    DIE_IF(read(up[0], times, sizeof times) != sizeof times);
    if (i == 0 || times[0] < first) first = times[0];
    if (i == 0 || times[1] > last) last = times[1];
  }
  for (long i = 0; i < k; i++) {
    int status;
    DIE_IF(wait(&status) < 0);
    DIE_IF(!WIFEXITED(status) || WEXITSTATUS(status) != 0);
  }
  bench_report(api, "procs", "events_per_s", (double)(k * n) / (last - first), "ev/s", k);
}

#endif
