// Host effects the core needs, behind an interface so the core is testable
// without seccomp, processes or real descriptors (tests/support/fake_host.h).
#pragma once

#include <cstdint>

#include "emul/result.h"
#include "emul/types.h"

namespace evshim::emul {

class Host {
 public:
  virtual ~Host() = default;

  virtual Nanos Now() = 0;
  // The core wants OnDeadline() called at (or soon after) `when`; kNever disarms.
  static constexpr Nanos kNever = INT64_MAX;
  virtual void ArmDeadline(Nanos when) = 0;

  // --- Watching a target's open file without keeping it open. ---
  // Starts watching the file that process `pid` has at descriptor `fd`.
  // EBADF if the descriptor is not open. The watch is disarmed until Arm().
  virtual Result<WatchId> WatchFd(Pid pid, int fd) = 0;
  // Arms the watch for `events` (canonical poll bits; POLLERR|POLLHUP always
  // implied). Returns the file's readiness right now, masked, so an already
  // ready descriptor fires at once. When it becomes ready later the host calls
  // Core::OnWatchReady once and disarms (one-shot). `pid`/`fd` name a
  // descriptor the caller holds for the same file (needed to change the mask).
  virtual Result<uint32_t> ArmWatch(WatchId id, Pid pid, int fd, uint32_t events) = 0;
  virtual void DisarmWatch(WatchId id) = 0;
  virtual void DropWatch(WatchId id) = 0;
  // True if process `pid` has, at descriptor `fd`, the very open file the
  // watch was made on (illumos getf(fd) == association's file_t).
  virtual bool SameFile(Pid pid, int fd, WatchId id) = 0;
  // True if process `pid` has descriptor `fd` open at all.
  virtual bool FdOpen(Pid pid, int fd) = 0;
  // The object's descriptor should poll readable (events queued) or not.
  virtual void ObjectReadinessChanged(ObjectId obj, bool readable) = 0;
};

}  // namespace evshim::emul
