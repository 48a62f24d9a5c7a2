// A Notifier double for the supervisor's parts: the test scripts which calls
// are still pending and which answers the kernel refuses, and reads back
// every answer given. No target, no seccomp.
#pragma once

#include <cerrno>
#include <cstdint>
#include <deque>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "shim/runtime/fault.h"
#include "shim/supervisor/notifier.h"

namespace evshim::testing {

class FakeNotifier final : public shim::Notifier {
 public:
  struct Answer {
    uint64_t id;
    int64_t value;
    int error;  // 0: `value` was the answer
  };

  // --- the test's controls ---
  void Queue(const shim::Notification& n) { incoming_.push_back(n); }
  // Call `id` is no longer pending (a signal interrupted it, or it died):
  // ID_VALID says so and answers to it are refused, as the kernel does.
  void Interrupt(uint64_t id) { gone_.insert(id); }
  // Every ioctl fails with `error` from now on (a fault, not the target's).
  void Break(int error) { broken_ = error; }
  // The answers given to call `id`.
  std::vector<Answer> AnswersTo(uint64_t id) const {
    std::vector<Answer> out;
    for (const Answer& a : answers) {
      if (a.id == id) out.push_back(a);
    }
    return out;
  }
  std::vector<Answer> answers;  // delivered ones and refused ones
  std::vector<shim::AddFdRequest> added;
  int next_fd = 3;

  // --- shim::Notifier ---
  shim::FaultOr<std::optional<shim::Notification>> Receive() override {
    if (broken_ != 0) return shim::Fault{"RECV", broken_, "test"};
    if (incoming_.empty()) return std::optional<shim::Notification>{};
    shim::Notification n = incoming_.front();
    incoming_.pop_front();
    return std::optional<shim::Notification>{n};
  }
  shim::FaultOr<shim::Delivery> Respond(uint64_t id, int64_t value, int error) override {
    if (broken_ != 0) return shim::Fault{"SEND", broken_, "test"};
    answers.push_back({id, value, error});
    return gone_.count(id) != 0 ? shim::Delivery::kGone : shim::Delivery::kDelivered;
  }
  shim::FaultOr<shim::Delivery> Continue(uint64_t id) override {
    if (broken_ != 0) return shim::Fault{"SEND", broken_, "test"};
    return gone_.count(id) != 0 ? shim::Delivery::kGone : shim::Delivery::kDelivered;
  }
  shim::FaultOr<shim::AddFdResult> AddFd(const shim::AddFdRequest& request) override {
    if (broken_ != 0) return shim::Fault{"ADDFD", broken_, "test"};
    added.push_back(request);
    shim::AddFdResult r;
    if (gone_.count(request.id) != 0) {
      r.error = ENOENT;
      return r;
    }
    r.fd = request.target_fd >= 0 ? request.target_fd : next_fd++;
    r.answered = request.answer_with_fd;
    if (r.answered) answers.push_back({request.id, r.fd, 0});
    return r;
  }
  bool IdValid(uint64_t id) override { return broken_ == 0 && gone_.count(id) == 0; }
  bool EnableSyncWakeup() override { return true; }

 private:
  std::deque<shim::Notification> incoming_;
  std::set<uint64_t> gone_;
  int broken_ = 0;
};

// Records faults instead of killing anything.
class RecordingFaultSink final : public shim::FaultSink {
 public:
  void OnFault(const shim::Fault& fault, pid_t tid) override { faults.emplace_back(fault, tid); }
  std::vector<std::pair<shim::Fault, pid_t>> faults;
};

}  // namespace evshim::testing
