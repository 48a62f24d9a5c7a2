// Event ports' POSIX timers die at exec (docs/design.md "Close and exec"):
// which processes with timers replaced their image, seen before each of
// their calls and before timers fire.
#pragma once

#include <cstddef>
#include <unordered_map>

#include "emul/event_port.h"
#include "shim/runtime/linux_host.h"

namespace evshim::shim {

class ExecWatch {
 public:
  ExecWatch(LinuxHost& host, emul::EventPorts& ports) : host_(host), ports_(ports) {}
  ~ExecWatch();
  ExecWatch(const ExecWatch&) = delete;
  ExecWatch& operator=(const ExecWatch&) = delete;

  // Process `pid` may have got a timer: watch its image if it has one.
  void Watch(emul::Pid pid);
  // The images replaced since: of `caller` only, or of every watched
  // process (0). Their timers go (EventPorts::ProcessExeced).
  void Notice(emul::Pid caller);
  // Process `pid` exec'd (the process connector's report, or Notice).
  void Seen(emul::Pid pid);
  // Process `pid` is gone.
  void Forget(emul::Pid pid);

 private:
  LinuxHost& host_;
  emul::EventPorts& ports_;
  // /proc/PID/mem of each process with timers (it reads EOF once that image
  // is gone), or one of these when it cannot be opened.
  static constexpr int kImageByConnector = -1, kImageUnwatched = -2;
  std::unordered_map<emul::Pid, int> image_fd_;
  size_t execs_by_connector_ = 0;  // image_fd_ entries the process connector covers
};

}  // namespace evshim::shim
