// Host effects the core needs, behind an interface so the core is testable
// without seccomp, processes or real descriptors (tests/support/fake_host.h).
#pragma once

#include <cstdint>

#include "emul/result.h"
#include "emul/types.h"

namespace evshim::emul {

// What a descriptor holds right now (kqueue READ/WRITE `data`).
struct FdProbe {
  uint32_t revents = 0;   // canonical poll bits (IN OUT PRI ERR HUP RDHUP)
  int64_t readable = 0;   // bytes to read; pending connections (listening socket); bytes to EOF (file)
  int64_t writable = 0;   // free space for writing
  bool regular = false;   // a regular file: no readiness notifications exist
  bool listening = false; // a listening socket
};

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

  // --- POSIX timers (event ports' SIGEV_* timers). ---
  // CLOCK_REALTIME minus CLOCK_MONOTONIC, for absolute realtime deadlines.
  virtual Nanos RealtimeOffset() { return 0; }
  // Queues signal `signo` (host numbering) to process `pid` as a timer
  // expiry (si_code SI_TIMER, si_value = value).
  virtual void SendTimerSignal(Pid pid, int signo, uint64_t value, int timer_id) {
    (void)pid;
    (void)signo;
    (void)value;
    (void)timer_id;
  }

  // --- Added for kqueue (emul/kqueue.h); defaults keep other hosts compiling. ---
  // Like ArmWatch, but the watch fires only for activity after the previous
  // report (edge-triggered, for EV_CLEAR). The returned readiness is the
  // activity not yet reported. Default: level-triggered ArmWatch.
  virtual Result<uint32_t> ArmWatchEdge(WatchId id, Pid pid, int fd, uint32_t events) {
    return ArmWatch(id, pid, fd, events);
  }
  // Measures process `pid`'s descriptor `fd` without keeping it open.
  // EBADF if it is not open.
  virtual Result<FdProbe> ProbeFd(Pid pid, int fd) {
    (void)pid;
    (void)fd;
    return Errno{ENOSYS};
  }
};

}  // namespace evshim::emul
