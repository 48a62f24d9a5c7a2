#include "shim/supervisor/exec_watch.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <vector>

namespace evshim::shim {

ExecWatch::~ExecWatch() {
  for (auto& [pid, fd] : image_fd_) {
    if (fd >= 0) close(fd);
  }
}

// illumos deletes a process's POSIX timers at exec (exec_common: "Delete the
// POSIX timers" -> timer_exit, timer.c:1000). Linux does not tell the
// supervisor about an execve, so, for each process that has timers:
// /proc/PID/mem opened then keeps the old address space; once that image is
// gone (exec or exit) a read returns 0 bytes (mem_rw: mmget_not_zero fails),
// while a live one returns EIO at address 0. It is checked before each call
// of that process and before timers fire, so the new image never sees the
// old timers. Exact, per process, one pread. Only if the file cannot be
// opened does the process connector (CAP_NET_ADMIN) stand in: its exec
// message is queued before the new image runs, but it carries every exec of
// the machine and drops messages when it overflows.
void ExecWatch::Watch(emul::Pid pid) {
  if (image_fd_.count(pid) != 0 || ports_.TimerCount(pid) == 0) return;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/mem", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Without either, the timers live until exit (docs/design.md).
    fd = host_.ListenForExecs() ? kImageByConnector : kImageUnwatched;
    if (fd == kImageByConnector) ++execs_by_connector_;
  }
  image_fd_[pid] = fd;
}

void ExecWatch::Notice(emul::Pid caller) {
  if (execs_by_connector_ > 0) host_.ReadExecs();
  auto replaced = [](int fd) {
    char byte;
    return fd >= 0 && pread(fd, &byte, 1, 0) == 0;
  };
  if (caller != 0) {
    auto it = image_fd_.find(caller);
    if (it != image_fd_.end() && replaced(it->second)) Seen(caller);
    return;
  }
  std::vector<emul::Pid> gone;
  for (auto& [pid, fd] : image_fd_) {
    if (replaced(fd)) gone.push_back(pid);
  }
  for (emul::Pid pid : gone) Seen(pid);
}

void ExecWatch::Forget(emul::Pid pid) {
  auto img = image_fd_.find(pid);
  if (img == image_fd_.end()) return;
  if (img->second >= 0) close(img->second);
  if (img->second == kImageByConnector) --execs_by_connector_;
  image_fd_.erase(img);
}

void ExecWatch::Seen(emul::Pid pid) {
  Forget(pid);
  ports_.ProcessExeced(pid);
}

}  // namespace evshim::shim
