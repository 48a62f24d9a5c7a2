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

#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>

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

static inline void thread_syscall_pause_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  nanosleep(&ts, NULL);
}

/* A signal meant to end a wait, or an event meant to end one, comes once
 * the thread waits: one handled on its way there (a fixed pause's guess,
 * outrun on a loaded machine) ends nothing. Waits up to 10 s for thread
 * *tid (0 until the thread sets it) to block in the foreign call
 * `foreign_nr` (supervised) or the engine's wait (fast mode), then 100 ms
 * for a supervisor to take the call (a signal before that restarts an
 * SA_RESTART call as a new one). Whether it was seen waiting. */
static inline int await_thread_wait(atomic_int *tid, long foreign_nr) {
  int waiting = 0;
  for (int i = 0; i < 10000 && !waiting; i++) {
    const pid_t t = atomic_load(tid);
    const long nr = t != 0 ? thread_syscall(t) : -1;
    waiting = nr == foreign_nr || is_engine_wait(nr);
    if (!waiting) thread_syscall_pause_ms(1);
  }
  if (waiting) thread_syscall_pause_ms(100);
  return waiting;
}

#endif
