/*
 * The supervisor's descriptor count, for the scenarios that show closed
 * descriptors leave nothing behind in it (port_scenarios.c
 * `close_no_dissociate`, kq_scenarios.c `close_no_delete`, stress_ports.c
 * `leak_check`). `evshim run` is the program's parent.
 */
#ifndef EVSHIM_TESTBINS_SUPERVISOR_FDS_H
#define EVSHIM_TESTBINS_SUPERVISOR_FDS_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* Entries of /proc/<parent>/fd ("." and ".." included), or exit(1). */
static int supervisor_fd_count(void) {
  char dir[64];
  snprintf(dir, sizeof dir, "/proc/%d/fd", (int)getppid());
  DIR *d = opendir(dir);
  if (d == NULL) {
    perror(dir);
    exit(1);
  }
  int n = 0;
  while (readdir(d) != NULL) n++;
  closedir(d);
  return n;
}

/* `evshim run` starts the program first and builds its supervisor beside it
 * (the loop's epoll, signalfd, timers, inotify, mountinfo), so the count
 * grows for a while after the program starts. Under ASan on a loaded
 * machine that outlasted 100 add-close cycles (8-13 descriptors then, 17
 * later: a false leak). Wait until the count holds still for 10 reads 20 ms
 * apart, at most 10 s, before taking a baseline. */
static void wait_for_supervisor_settled(void) {
  int last = supervisor_fd_count(), same = 0;
  for (int i = 0; i < 500 && same < 10; i++) {
    usleep(20000);
    int now = supervisor_fd_count();
    same = now == last ? same + 1 : 0;
    last = now;
  }
}

#endif
