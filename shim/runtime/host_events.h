// The host events of a runtime's loop (the supervisor's main loop, the
// in-process engine's pump), routed to their owners in one place: the
// host's own sources (kqueue PROC/VNODE), the watches' collecting epoll,
// the deadline timer, PORT_SOURCE_FILE's inotify and the objects' last
// closes. Each loop keeps its own other sources (the listener, signals...).
#pragma once

#include <cstdint>
#include <functional>
#include <utility>
#include <vector>

#include "emul/engine.h"
#include "shim/runtime/object_table.h"
#include "shim/runtime/fault.h"
#include "shim/runtime/linux_host.h"

namespace evshim::shim {

// Tags of a loop epoll's data: the top byte (LinuxHost's kWatchTag and
// kHostTag are bits 62 and 61). 1, 2, 4, 5, 7, 8, 10, 11 are the loops' own.
namespace loop_tag {
constexpr uint64_t kDeadline = 3ULL << 56;   // LinuxHost::deadline_fd
constexpr uint64_t kObject = 6ULL << 56;     // | ObjectId: our end's hang-up (ObjectTable)
constexpr uint64_t kPathWatch = 9ULL << 56;  // LinuxHost::path_inotify_fd
constexpr uint64_t kMask = 0xffULL << 56;
}  // namespace loop_tag

class HostEventRouter {
 public:
  struct Hooks {
    // Before due deadlines run (the supervisor: an exec'd image's timers
    // must not fire). May be empty.
    std::function<void()> before_deadline;
    // After each pass of ready watches: applies readiness, and says whether
    // another pass is worth a look (a byte sent can make a watch on that
    // object's descriptor ready: a port in a port).
    std::function<bool()> after_watch_pass;
    // A fault met while routing (an unexpected epoll_ctl failure).
    std::function<void(const Fault&)> on_fault;
  };
  HostEventRouter(LinuxHost& host, emul::Engines& engines, ObjectTable& objects, Hooks hooks)
      : host_(host), engines_(engines), objects_(objects), hooks_(std::move(hooks)) {}

  // Handles loop event `data` if it is one of these sources (true); false:
  // a tag of the loop's own.
  bool Route(uint64_t data);
  // Hands every ready watch to the engine that owns it; a few passes follow
  // chains of objects watched by objects (a deeper one finishes in the loop).
  void CollectWatchReadiness();

 private:
  LinuxHost& host_;
  emul::Engines& engines_;
  ObjectTable& objects_;
  Hooks hooks_;
  std::vector<std::pair<emul::WatchId, uint32_t>> ready_scratch_;  // CollectWatchReadiness
};

}  // namespace evshim::shim
