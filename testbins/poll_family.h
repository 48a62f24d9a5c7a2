/*
 * The ways a program looks at a port's or kqueue's descriptor with a zero
 * timeout (port_scenarios.c, kq_scenarios.c: `poll_family_after_ready`):
 * poll, ppoll, select, pselect, epoll_wait/epoll_pwait/epoll_pwait2 on a
 * program epoll holding it, an epoll inside an epoll, and poll on copies
 * made by dup, dup2 and fcntl(F_DUPFD_CLOEXEC).
 */
#ifndef EVSHIM_TESTBINS_POLL_FAMILY_H
#define EVSHIM_TESTBINS_POLL_FAMILY_H

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

enum look {
  LOOK_POLL,
  LOOK_PPOLL,
  LOOK_SELECT,
  LOOK_PSELECT,
  LOOK_EPOLL_WAIT,
  LOOK_EPOLL_PWAIT,
  LOOK_EPOLL_PWAIT2,
  LOOK_NESTED_EPOLL,
  LOOK_DUP,
  LOOK_DUP2,
  LOOK_FCNTL_DUPFD,
  LOOK_COUNT
};

static const char *const look_names[LOOK_COUNT] = {
    "poll", "ppoll", "select", "pselect", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "epoll_wait(epoll in epoll)", "poll(dup)", "poll(dup2)", "poll(fcntl F_DUPFD_CLOEXEC)"};

struct looker {
  int fd;       /* the object's descriptor */
  int ep;       /* a program epoll holding it */
  int ep_outer; /* an epoll holding `ep` */
  int dup_fd, dup2_fd, fcntl_fd;
};

/* Returns 0, or -1 if a descriptor could not be made. */
static int looker_open(struct looker *l, int fd) {
  struct epoll_event ev = {.events = EPOLLIN, .data = {.fd = fd}};
  l->fd = fd;
  l->ep = epoll_create1(EPOLL_CLOEXEC);
  l->ep_outer = epoll_create1(EPOLL_CLOEXEC);
  if (l->ep < 0 || l->ep_outer < 0 || epoll_ctl(l->ep, EPOLL_CTL_ADD, fd, &ev) != 0) return -1;
  ev.data.fd = l->ep;
  if (epoll_ctl(l->ep_outer, EPOLL_CTL_ADD, l->ep, &ev) != 0) return -1;
  l->dup_fd = dup(fd);
  l->dup2_fd = dup2(fd, 900);
  l->fcntl_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return l->dup_fd >= 0 && l->dup2_fd == 900 && l->fcntl_fd >= 0 ? 0 : -1;
}

static void looker_close(struct looker *l) {
  close(l->ep_outer);
  close(l->ep);
  close(l->dup_fd);
  close(l->dup2_fd);
  close(l->fcntl_fd);
}

static int poll_one(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

/* Whether the object reads as readable, looked at `how`, timeout 0. */
static int looks_readable(const struct looker *l, enum look how) {
  const struct timespec zero = {0, 0};
  struct timeval tv = {0, 0};
  struct epoll_event out;
  struct pollfd p = {l->fd, POLLIN, 0};
  fd_set set;
  sigset_t none;
  sigemptyset(&none);
  FD_ZERO(&set);
  FD_SET(l->fd, &set);
  switch (how) {
    case LOOK_POLL: return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
    case LOOK_PPOLL: return ppoll(&p, 1, &zero, &none) == 1 && (p.revents & POLLIN);
    case LOOK_SELECT: return select(l->fd + 1, &set, NULL, NULL, &tv) == 1 && FD_ISSET(l->fd, &set);
    case LOOK_PSELECT: return pselect(l->fd + 1, &set, NULL, NULL, &zero, &none) == 1 && FD_ISSET(l->fd, &set);
    case LOOK_EPOLL_WAIT: return epoll_wait(l->ep, &out, 1, 0) == 1;
    case LOOK_EPOLL_PWAIT: return epoll_pwait(l->ep, &out, 1, 0, &none) == 1;
    case LOOK_EPOLL_PWAIT2: return epoll_pwait2(l->ep, &out, 1, &zero, &none) == 1;
    case LOOK_NESTED_EPOLL: return epoll_wait(l->ep_outer, &out, 1, 0) == 1;
    case LOOK_DUP: return poll_one(l->dup_fd);
    case LOOK_DUP2: return poll_one(l->dup2_fd);
    case LOOK_FCNTL_DUPFD: return poll_one(l->fcntl_fd);
    case LOOK_COUNT: break;
  }
  return 0;
}

#endif
