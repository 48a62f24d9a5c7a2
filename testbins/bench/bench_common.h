/* Shared helpers for the benchmark programs: timing, JSON output, limits. */
#ifndef EVSHIM_BENCH_COMMON_H
#define EVSHIM_BENCH_COMMON_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
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

#endif
