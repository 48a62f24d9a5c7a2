// An emul::Engine for tests of the routing around the engines: it owns the
// object, wait and watch the test gives it and records what it is told.
#pragma once

#include <vector>

#include "emul/engine.h"

namespace evshim::testing {

// An engine that owns what the test gives it and records what it is told.
class RecordingEngine final : public emul::Engine {
 public:
  RecordingEngine(emul::Host& host, emul::ObjectId object, emul::WaitId wait, emul::WatchId watch)
      : Engine(host), object_(object), wait_(wait), watch_(watch) {}
  bool OwnsObject(emul::ObjectId obj) const override { return obj == object_; }
  bool OwnsWait(emul::WaitId wait) const override { return wait == wait_; }
  bool OwnsWatch(emul::WatchId watch) const override { return watch == watch_; }
  void LastClose(emul::ObjectId obj) override { closed.push_back(obj); }
  void CancelWait(emul::WaitId wait) override { cancelled.push_back(wait); }
  void ProcessExited(emul::Pid pid) override { exited.push_back(pid); }
  void OnWatchReady(emul::WatchId watch, uint32_t) override { ready.push_back(watch); }
  void OnDeadline() override {
    ++deadlines_run;
    next_ = emul::Host::kNever;
    RearmDeadline();
  }
  emul::Nanos NextDeadline() const override { return next_; }
  void SetDeadline(emul::Nanos when) {
    next_ = when;
    RearmDeadline();
  }

  std::vector<emul::ObjectId> closed;
  std::vector<emul::WaitId> cancelled;
  std::vector<emul::Pid> exited;
  std::vector<emul::WatchId> ready;
  int deadlines_run = 0;

 private:
  emul::ObjectId object_;
  emul::WaitId wait_;
  emul::WatchId watch_;
  emul::Nanos next_ = emul::Host::kNever;
};

}  // namespace evshim::testing
