// A host for unit tests of the core: processes with descriptor tables that
// point at fake open files whose readiness the test sets, and a manual clock.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <utility>
#include <vector>

#include "emul/host.h"

namespace evshim::testing {

class FakeHost : public emul::Host {
 public:
  struct File {
    uint32_t ready = 0;  // canonical poll bits
  };
  using FileRef = std::shared_ptr<File>;

  // --- the test's controls ---
  FileRef NewFile() { return std::make_shared<File>(); }
  void Open(emul::Pid pid, int fd, FileRef f) { fds_[{pid, fd}] = std::move(f); }
  void Close(emul::Pid pid, int fd) { fds_.erase({pid, fd}); }
  // fork: the child gets the parent's table (same open files).
  void Fork(emul::Pid parent, emul::Pid child) {
    std::vector<std::pair<int, FileRef>> copy;
    for (auto& [key, f] : fds_) {
      if (key.first == parent) copy.emplace_back(key.second, f);
    }
    for (auto& [fd, f] : copy) fds_[{child, fd}] = f;
  }
  // Makes `f` ready; armed watches on it report (through `deliver`).
  template <typename Deliver>
  void SetReady(const FileRef& f, uint32_t bits, Deliver deliver) {
    f->ready = bits;
    std::vector<std::pair<emul::WatchId, uint32_t>> fire;
    for (auto& [id, w] : watches_) {
      if (w.armed && w.file.lock() == f && (bits & (w.mask | kAlways))) {
        w.armed = false;
        fire.emplace_back(id, bits & (w.mask | kAlways));
      }
    }
    for (auto& [id, bits2] : fire) deliver(id, bits2);
  }
  void Advance(emul::Nanos d) { now_ += d; }
  // How many times the core read the clock (Now).
  int clock_reads() const { return clock_reads_; }
  struct SentSignal {
    emul::Pid pid;
    int signo;
    uint64_t value;
  };
  const std::vector<SentSignal>& signals() const { return signals_; }
  emul::Nanos deadline() const { return deadline_; }
  bool readable(emul::ObjectId o) const { return readable_.count(o) != 0; }
  // POLLOUT as last reported (a new object is writable).
  bool writable(emul::ObjectId o) const { return unwritable_.count(o) == 0; }
  int writable_changes = 0;  // every POLLOUT report, even a momentary one
  size_t live_watches() const { return watches_.size(); }
  bool armed(emul::WatchId id) const { return watches_.count(id) && watches_.at(id).armed; }

  // --- emul::Host ---
  emul::Nanos Now() override {
    ++clock_reads_;
    return now_;
  }
  void ArmDeadline(emul::Nanos when) override { deadline_ = when; }
  emul::Nanos RealtimeOffset() override { return 1'700'000'000LL * 1'000'000'000LL; }
  void SendTimerSignal(emul::Pid pid, int signo, uint64_t value, int) override {
    signals_.push_back({pid, signo, value});
  }
  emul::Result<emul::WatchId> WatchFd(emul::Pid pid, int fd) override {
    auto it = fds_.find({pid, fd});
    if (it == fds_.end()) return emul::Errno{EBADF};
    emul::WatchId id = next_++;
    watches_[id] = Watch{it->second, 0, false};
    return id;
  }
  emul::Result<uint32_t> ArmWatch(emul::WatchId id, emul::Pid, int, uint32_t events) override {
    Watch& w = watches_.at(id);
    w.mask = events;
    FileRef f = w.file.lock();
    uint32_t now = f ? (f->ready & (events | kAlways)) : 0;
    w.armed = now == 0;
    return now;
  }
  void DisarmWatch(emul::WatchId id) override { watches_.at(id).armed = false; }
  void DropWatch(emul::WatchId id) override { watches_.erase(id); }
  bool SameFile(emul::Pid pid, int fd, emul::WatchId id) override {
    auto it = fds_.find({pid, fd});
    auto w = watches_.find(id);
    return it != fds_.end() && w != watches_.end() && w->second.file.lock() == it->second;
  }
  bool FdOpen(emul::Pid pid, int fd) override { return fds_.count({pid, fd}) != 0; }
  void ObjectReadinessChanged(emul::ObjectId obj, bool readable) override {
    if (readable) {
      readable_.insert(obj);
    } else {
      readable_.erase(obj);
    }
  }
  void ObjectWritableChanged(emul::ObjectId obj, bool writable) override {
    ++writable_changes;
    if (writable) {
      unwritable_.erase(obj);
    } else {
      unwritable_.insert(obj);
    }
  }

 private:
  static constexpr uint32_t kAlways = 0x18;  // POLLERR | POLLHUP
  struct Watch {
    std::weak_ptr<File> file;
    uint32_t mask;
    bool armed;
  };
  std::map<std::pair<emul::Pid, int>, FileRef> fds_;
  std::map<emul::WatchId, Watch> watches_;
  std::set<emul::ObjectId> readable_;
  std::set<emul::ObjectId> unwritable_;
  emul::WatchId next_ = 1;
  emul::Nanos now_ = 1'000'000'000;
  int clock_reads_ = 0;
  emul::Nanos deadline_ = kNever;
  std::vector<SentSignal> signals_;
};

}  // namespace evshim::testing
