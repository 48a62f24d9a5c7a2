/*
 * The system call a thread of this process is blocked in, as
 * /proc/self/task/TID/syscall shows it: for the scenarios that send a
 * signal, or make a call, only once another thread waits inside its call
 * (kq_scenarios.c `close_under_waiter`, port_scenarios.c `await_port_wait`,
 * stress_ports.c `wait_cap`). A fixed pause is a guess a loaded machine
 * outruns.
 */
#ifndef EVSHIM_TESTBINS_THREAD_SYSCALL_H
#define EVSHIM_TESTBINS_THREAD_SYSCALL_H

#include <stdio.h>
#include <sys/syscall.h>
#include <sys/types.h>

/* The number of the system call thread `tid` is blocked in; -1 if it runs
 * (or the file cannot be read). */
static long thread_syscall(pid_t tid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/self/task/%d/syscall", (int)tid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  long nr = -1;
  if (fscanf(f, "%ld", &nr) != 1) nr = -1;
  fclose(f);
  return nr;
}

/* Whether `nr` is the in-process engine's wait (fast mode): ppoll for the
 * thread watching the loop, epoll_pwait for the others. An i386 glibc
 * issues ppoll_time64 for ppoll (its first choice since Linux 5.1). */
static inline int is_engine_wait(long nr) {
#ifdef SYS_ppoll_time64
  if (nr == SYS_ppoll_time64) return 1;
#endif
  return nr == SYS_ppoll || nr == SYS_epoll_pwait;
}

#endif
