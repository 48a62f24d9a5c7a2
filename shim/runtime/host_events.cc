#include "shim/runtime/host_events.h"

#include <unistd.h>

namespace evshim::shim {

bool HostEventRouter::Route(uint64_t data) {
  if (data & LinuxHost::kHostTag) {  // kqueue PROC/VNODE sources
    host_.OnHostEvent(data);
    return true;
  }
  if (data & LinuxHost::kWatchTag) {
    CollectWatchReadiness();
    return true;
  }
  switch (data & loop_tag::kMask) {
    case loop_tag::kDeadline: {
      uint64_t ticks;
      while (read(host_.deadline_fd(), &ticks, sizeof ticks) > 0) {
      }
      if (hooks_.before_deadline) hooks_.before_deadline();
      engines_.OnDeadline();
      return true;
    }
    case loop_tag::kPathWatch:
      host_.ReadPathEvents();
      return true;
    case loop_tag::kObject: {
      // Every holder closed the descriptor: the last close
      // (docs/rules-ports.md rule 33; kqueue_close).
      const emul::ObjectId obj = data & ~loop_tag::kMask;
      std::optional<Fault> fault;
      if (objects_.Remove(obj, &fault)) engines_.LastClose(obj);
      if (fault && hooks_.on_fault) hooks_.on_fault(*fault);
      return true;
    }
    default:
      return false;
  }
}

void HostEventRouter::CollectWatchReadiness() {
  // The list's capacity is kept for the next look (no allocation per
  // event); taken out of the member meanwhile, so that a nested look (from
  // an engine's reaction) would use a list of its own.
  std::vector<std::pair<emul::WatchId, uint32_t>> ready = std::move(ready_scratch_);
  for (int pass = 0; pass < 8; ++pass) {
    ready.clear();
    host_.TakeReadyWatches(&ready);
    if (ready.empty()) break;
    for (auto [id, revents] : ready) engines_.OnWatchReady(id, revents);
    if (!hooks_.after_watch_pass()) break;
  }
  ready.clear();
  ready_scratch_ = std::move(ready);
}

}  // namespace evshim::shim
