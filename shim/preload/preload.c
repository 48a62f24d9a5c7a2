/*
 * libevshim-preload.so: puts a program under evshim without the launcher.
 *
 * Under `evshim run` (EVSHIM_SUPERVISOR=1 and a seccomp filter present) it
 * does nothing: the launcher is already the supervisor. Otherwise, before
 * main(), it starts a supervisor for this process tree (`evshim --serve`),
 * allows it to read this process's memory under Yama (PR_SET_PTRACER, again
 * in every forked child), installs the filter and hands the listener over.
 * Tiny and dependency-free on purpose: no symbol but the constructor.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evshim_filter.h"

#ifndef PR_SET_PTRACER
#define PR_SET_PTRACER 0x59616d61
#endif
#ifndef EVSHIM_INSTALLED_BIN
#define EVSHIM_INSTALLED_BIN ""
#endif

static pid_t supervisor_pid;
static const char self_marker;  /* an object of this library, for dladdr */

static int seccomp_filters(void) {
  FILE *f = fopen("/proc/self/status", "re");
  int n = 0;
  if (f == NULL) return 0;
  char line[256];
  while (fgets(line, sizeof line, f)) {
    if (strncmp(line, "Seccomp_filters:", 16) == 0) {
      n = atoi(line + 16);
      break;
    }
  }
  fclose(f);
  return n;
}

static void find_evshim(char *out, size_t len) {
  const char *env = getenv("EVSHIM_BIN");
  if (env && *env) {
    snprintf(out, len, "%s", env);
    return;
  }
  Dl_info info;
  if (dladdr(&self_marker, &info) && info.dli_fname) {
    snprintf(out, len, "%s", info.dli_fname);
    char *slash = strrchr(out, '/');
    if (slash) {
      snprintf(slash + 1, len - (size_t)(slash + 1 - out), "evshim");
      if (access(out, X_OK) == 0) return;
    }
  }
  snprintf(out, len, "%s", EVSHIM_INSTALLED_BIN);
}

static void allow_supervisor(void) {
  if (supervisor_pid > 0) prctl(PR_SET_PTRACER, (unsigned long)supervisor_pid, 0, 0, 0);
}

static int send_fd(int sock, int fd) {
  char dummy = 'L';
  struct iovec iov = {&dummy, 1};
  union {
    char buf[CMSG_SPACE(sizeof(int))];
    struct cmsghdr align;
  } ctrl;
  memset(&ctrl, 0, sizeof ctrl);
  struct msghdr msg = {0};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl.buf;
  msg.msg_controllen = sizeof ctrl.buf;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

__attribute__((constructor)) static void evshim_preload_init(void) {
  const char *supervisor = getenv("EVSHIM_SUPERVISOR");
  if (supervisor && *supervisor == '1' && seccomp_filters() > 0) return;

  char evshim[PATH_MAX];
  find_evshim(evshim, sizeof evshim);
  int sv[2];
  if (evshim[0] == '\0' || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) {
    fprintf(stderr, "evshim: preload: cannot start a supervisor (evshim binary not found)\n");
    return;
  }
  /* The supervisor is started before the filter exists, so it is not under
   * it (otherwise the filter would never become unused and it would never
   * exit). Double fork: it must not be a child the program could wait for. */
  pid_t mid = fork();
  if (mid < 0) {
    close(sv[0]);
    close(sv[1]);
    return;
  }
  if (mid == 0) {
    close(sv[0]);
    pid_t sup = fork();
    if (sup != 0) _exit(sup < 0);
    pid_t self = getpid();
    if (write(sv[1], &self, sizeof self) != sizeof self) _exit(1);
    int flags = fcntl(sv[1], F_GETFD);
    fcntl(sv[1], F_SETFD, flags & ~FD_CLOEXEC);
    char fdarg[16];
    snprintf(fdarg, sizeof fdarg, "%d", sv[1]);
    unsetenv("LD_PRELOAD");
    /* EVSHIM_TRACE=FILE (or 1: standard error) traces the tree (docs/trace.md). */
    const char *trace = getenv("EVSHIM_TRACE");
    char tracearg[PATH_MAX + 16];
    if (trace && *trace) {
      snprintf(tracearg, sizeof tracearg, "--trace=%s", trace);
      execl(evshim, evshim, "--serve", fdarg, tracearg, (char *)NULL);
    }
    execl(evshim, evshim, "--serve", fdarg, (char *)NULL);
    _exit(127);
  }
  close(sv[1]);
  int status;
  while (waitpid(mid, &status, 0) < 0 && errno == EINTR) {
  }
  if (read(sv[0], &supervisor_pid, sizeof supervisor_pid) != sizeof supervisor_pid) {
    close(sv[0]);
    return;
  }
  allow_supervisor();
  pthread_atfork(NULL, NULL, allow_supervisor);

  struct sock_fprog prog = {(unsigned short)(sizeof evshim_filter / sizeof evshim_filter[0]),
                            (struct sock_filter *)evshim_filter};
  prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
  long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (listener < 0) {
    if (errno != EBUSY) /* EBUSY: another supervisor already listens */
      fprintf(stderr, "evshim: preload: cannot install the seccomp filter: %s\n", strerror(errno));
    close(sv[0]); /* the supervisor sees EOF and exits */
    return;
  }
  send_fd(sv[0], (int)listener);
  close((int)listener);
  close(sv[0]);
  setenv("EVSHIM_SUPERVISOR", "1", 1);
  /* A traced tree runs supervised: fast-path calls are not traced yet. */
  const char *traced = getenv("EVSHIM_TRACE");
  if (traced && *traced) setenv("EVSHIM_SUPERVISED", "1", 1);
}
