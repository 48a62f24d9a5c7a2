// emul::Host on Linux, for the supervisor.
//
// Watching a target's file without keeping it open: the supervisor takes a
// duplicate with pidfd_getfd, registers it in a private epoll instance (one
// per watch) and closes the duplicate at once. The registration lives while
// any process has the file open and vanishes silently when the last holder
// closes it, so a socket's peer sees EOF exactly as without evshim.
// kcmp(KCMP_EPOLL_TFD) then tells whether a target's descriptor still is
// that file. Each watch's epoll fd sits in the supervisor's main loop
// (one-shot) while armed.
#pragma once

#include <functional>
#include <unordered_map>

#include "emul/host.h"

namespace evshim::shim {

class LinuxHost final : public emul::Host {
 public:
  // `pidfd_of(pid)` returns a pidfd for a target process (owned by the caller).
  // `loop_epoll` is the supervisor's main epoll; watch ids are registered
  // there with data.u64 = kWatchTag | id.
  LinuxHost(int loop_epoll, std::function<int(emul::Pid)> pidfd_of);
  ~LinuxHost() override;

  static constexpr uint64_t kWatchTag = 1ULL << 62;

  // The deadline timerfd; the loop calls the core's OnDeadline when it fires.
  int deadline_fd() const { return timer_fd_; }
  // Reads the current readiness of a watch that fired in the main loop.
  uint32_t Readiness(emul::WatchId id);
  // Puts a watch that fired spuriously back into the main loop.
  void RearmInLoop(emul::WatchId id);
  void set_readiness_callback(std::function<void(emul::ObjectId, bool)> cb) {
    readiness_cb_ = std::move(cb);
  }

  emul::Nanos Now() override;
  emul::Nanos RealtimeOffset() override;
  void SendTimerSignal(emul::Pid pid, int signo, uint64_t value, int timer_id) override;
  void ArmDeadline(emul::Nanos when) override;
  emul::Result<emul::WatchId> WatchFd(emul::Pid pid, int fd) override;
  emul::Result<uint32_t> ArmWatch(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override;
  emul::Result<uint32_t> ArmWatchEdge(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override;
  emul::Result<emul::FdProbe> ProbeFd(emul::Pid pid, int fd) override;
  // The one timerfd serves several engines: each arms its own slot and the
  // timer fires at the earliest. ArmDeadline() is slot 0.
  static constexpr int kDeadlineSlots = 2;
  void ArmDeadlineSlot(int slot, emul::Nanos when);
  void DisarmWatch(emul::WatchId id) override;
  void DropWatch(emul::WatchId id) override;
  bool SameFile(emul::Pid pid, int fd, emul::WatchId id) override;
  bool FdOpen(emul::Pid pid, int fd) override;
  void ObjectReadinessChanged(emul::ObjectId obj, bool readable) override;

  size_t watch_count() const { return watches_.size(); }

 private:
  struct Watch {
    int epfd = -1;       // private epoll holding the target's file
    int tfd = -1;        // the descriptor number it was registered under
    uint32_t mask = 0;   // registered poll bits
    bool registered = false;  // the file is registered in epfd
    bool in_loop = false;     // epfd is in the main loop's epoll
    bool pollless = false;    // a file epoll refuses (regular file): always ready
    bool edge = false;        // registered EPOLLET (kqueue EV_CLEAR)
  };
  emul::Result<void> Register(Watch& w, emul::Pid pid, int fd, uint32_t mask, bool edge = false);
  emul::Result<uint32_t> Arm(emul::WatchId id, emul::Pid pid, int fd, uint32_t events, bool edge);
  void ApplyDeadline();

  int loop_epoll_;
  int timer_fd_;
  std::function<int(emul::Pid)> pidfd_of_;
  std::function<void(emul::ObjectId, bool)> readiness_cb_;
  std::unordered_map<emul::WatchId, Watch> watches_;
  emul::WatchId next_watch_ = 1;
  emul::Nanos armed_deadline_ = kNever;
  emul::Nanos slots_[kDeadlineSlots] = {kNever, kNever};
};

// The host as one engine sees it: everything is LinuxHost's, except that
// ArmDeadline arms this engine's own deadline slot.
class DeadlineSlotHost final : public emul::Host {
 public:
  DeadlineSlotHost(LinuxHost& host, int slot) : host_(host), slot_(slot) {}
  emul::Nanos Now() override { return host_.Now(); }
  emul::Nanos RealtimeOffset() override { return host_.RealtimeOffset(); }
  void SendTimerSignal(emul::Pid pid, int signo, uint64_t value, int timer_id) override {
    host_.SendTimerSignal(pid, signo, value, timer_id);
  }
  void ArmDeadline(emul::Nanos when) override { host_.ArmDeadlineSlot(slot_, when); }
  emul::Result<emul::WatchId> WatchFd(emul::Pid pid, int fd) override { return host_.WatchFd(pid, fd); }
  emul::Result<uint32_t> ArmWatch(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override {
    return host_.ArmWatch(id, pid, fd, events);
  }
  emul::Result<uint32_t> ArmWatchEdge(emul::WatchId id, emul::Pid pid, int fd,
                                      uint32_t events) override {
    return host_.ArmWatchEdge(id, pid, fd, events);
  }
  void DisarmWatch(emul::WatchId id) override { host_.DisarmWatch(id); }
  void DropWatch(emul::WatchId id) override { host_.DropWatch(id); }
  bool SameFile(emul::Pid pid, int fd, emul::WatchId id) override { return host_.SameFile(pid, fd, id); }
  bool FdOpen(emul::Pid pid, int fd) override { return host_.FdOpen(pid, fd); }
  void ObjectReadinessChanged(emul::ObjectId obj, bool readable) override {
    host_.ObjectReadinessChanged(obj, readable);
  }
  emul::Result<emul::FdProbe> ProbeFd(emul::Pid pid, int fd) override { return host_.ProbeFd(pid, fd); }

 private:
  LinuxHost& host_;
  int slot_;
};

}  // namespace evshim::shim
