#include "shim/supervisor/linux_host.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace evshim::shim {

using emul::Errno;
using emul::Result;

namespace {
int PidfdGetfd(int pidfd, int fd) {
  return static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}
}  // namespace

LinuxHost::LinuxHost(int loop_epoll, std::function<int(emul::Pid)> pidfd_of)
    : loop_epoll_(loop_epoll), pidfd_of_(std::move(pidfd_of)) {
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
}

LinuxHost::~LinuxHost() {
  for (auto& [id, w] : watches_) {
    if (w.epfd >= 0) close(w.epfd);
  }
  if (timer_fd_ >= 0) close(timer_fd_);
}

emul::Nanos LinuxHost::Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * emul::kNanosPerSecond + ts.tv_nsec;
}

void LinuxHost::ArmDeadline(emul::Nanos when) {
  if (when == armed_deadline_) return;
  armed_deadline_ = when;
  itimerspec its{};
  if (when != kNever) {
    if (when <= 0) when = 1;
    its.it_value.tv_sec = when / emul::kNanosPerSecond;
    its.it_value.tv_nsec = when % emul::kNanosPerSecond;
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

Result<void> LinuxHost::Register(Watch& w, emul::Pid pid, int fd, uint32_t mask) {
  int pidfd = pidfd_of_(pid);
  if (pidfd < 0) return Errno{EBADF};
  int dup = PidfdGetfd(pidfd, fd);
  if (dup < 0) return Errno{errno == EBADF ? EBADF : errno};
  // A new private epoll each time the mask changes: epoll keys registrations
  // by (file, descriptor number), and the number we registered under is gone.
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    int err = errno;
    close(dup);
    return Errno{err};
  }
  epoll_event ev{};
  ev.events = mask;  // level-triggered: an already ready file reports at once
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, dup, &ev) != 0) {
    // Files without poll support (regular files) cannot be registered:
    // illumos reports them always ready for the requested bits.
    int err = errno;
    close(dup);
    close(epfd);
    return Errno{err};
  }
  close(dup);  // never keep the target's file open
  if (w.epfd >= 0) close(w.epfd);  // also drops it from the main loop
  w.epfd = epfd;
  w.tfd = dup;
  w.mask = mask;
  w.registered = true;
  w.in_loop = false;
  return {};
}

Result<emul::WatchId> LinuxHost::WatchFd(emul::Pid pid, int fd) {
  // The file is registered by the first ArmWatch, which knows the mask.
  if (!FdOpen(pid, fd)) return Errno{EBADF};
  emul::WatchId id = next_watch_++;
  watches_.emplace(id, Watch{});
  return id;
}

uint32_t LinuxHost::Readiness(emul::WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return 0;
  Watch& w = it->second;
  if (!w.registered) return w.mask & (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM);
  epoll_event ev{};
  int n = epoll_wait(w.epfd, &ev, 1, 0);
  return n == 1 ? ev.events : 0;
}

Result<uint32_t> LinuxHost::ArmWatch(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return Errno{EBADF};
  Watch& w = it->second;
  if (w.pollless) {
    w.mask = events;
  } else if (!w.registered || w.mask != events) {
    Result<void> r = Register(w, pid, fd, events);
    if (!r.ok()) {
      // epoll refuses files without poll support (regular files): illumos
      // reports those always ready for the requested bits.
      if (r.error().value != EPERM) return r.error();
      w.pollless = true;
      w.mask = events;
    }
  }
  uint32_t ready = Readiness(id);
  if (ready != 0 || !w.registered) return ready;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = kWatchTag | id;
  int op = w.in_loop ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(loop_epoll_, op, w.epfd, &ev) != 0) return Errno{errno};
  w.in_loop = true;
  return 0u;
}

void LinuxHost::RearmInLoop(emul::WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end() || !it->second.in_loop) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = kWatchTag | id;
  epoll_ctl(loop_epoll_, EPOLL_CTL_MOD, it->second.epfd, &ev);
}

void LinuxHost::DisarmWatch(emul::WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end() || !it->second.in_loop) return;
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = kWatchTag | id;
  epoll_ctl(loop_epoll_, EPOLL_CTL_MOD, it->second.epfd, &ev);
}

void LinuxHost::DropWatch(emul::WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return;
  if (it->second.epfd >= 0) close(it->second.epfd);
  watches_.erase(it);
}

bool LinuxHost::SameFile(emul::Pid pid, int fd, emul::WatchId id) {
  auto it = watches_.find(id);
  if (it == watches_.end()) return false;
  const Watch& w = it->second;
  if (!w.registered) return FdOpen(pid, fd);
  kcmp_epoll_slot slot{};
  slot.efd = static_cast<uint32_t>(w.epfd);
  slot.tfd = static_cast<uint32_t>(w.tfd);
  slot.toff = 0;
  long r = syscall(SYS_kcmp, pid, getpid(), KCMP_EPOLL_TFD, fd, reinterpret_cast<uintptr_t>(&slot));
  return r == 0;
}

bool LinuxHost::FdOpen(emul::Pid pid, int fd) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  struct stat st {};
  return lstat(path, &st) == 0;
}

void LinuxHost::ObjectReadinessChanged(emul::ObjectId obj, bool readable) {
  if (readiness_cb_) readiness_cb_(obj, readable);
}

}  // namespace evshim::shim
