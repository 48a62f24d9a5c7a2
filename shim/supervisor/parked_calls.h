// Calls parked in the supervisor (port_get, port_getn, kevent waiting) until
// their events, deadline, alert or close arrive. One part owns every index of
// them, so they cannot drift apart: wait id -> call, thread -> wait id (a
// thread has one call in flight), and the port descriptor the call named
// (docs/design.md "Close and exec": a waiter whose port descriptor another
// thread closed fails with EBADF).
#pragma once

#include <sys/types.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "emul/types.h"

namespace evshim::shim {

// A call as the thread issued it: number and registers.
struct CallRegisters {
  int nr = 0;
  std::array<uint64_t, 6> args{};
};

struct ParkedCall {
  pid_t tid = 0;
  uint64_t notif_id = 0;
  CallRegisters call;
  // The object descriptor the call named (object, descriptor number).
  std::optional<std::pair<emul::ObjectId, int>> named;
};

class ParkedCalls {
 public:
  // `capacity`: threads parked at once in the tree (--max-waits).
  explicit ParkedCalls(size_t capacity) : capacity_(capacity) {}

  size_t size() const { return calls_.size(); }
  bool empty() const { return calls_.empty(); }
  bool full() const { return calls_.size() >= capacity_; }

  // Parks `call` as wait `wait`. A thread has one call in flight: a wait it
  // left parked is displaced and returned (the caller cancels it).
  std::optional<emul::WaitId> Park(emul::WaitId wait, ParkedCall call);
  // The call of notification `notif_id` was answered: forgotten. Nothing if
  // the thread's parked call is another one (a later call of the thread).
  void Answered(pid_t tid, uint64_t notif_id);
  // The thread issued a new call: its parked one, if any, was abandoned
  // (a signal interrupted it). Removed and returned.
  std::optional<std::pair<emul::WaitId, ParkedCall>> TakeThread(pid_t tid);
  // Removes and returns every parked call `doomed` selects (the sweep of
  // interrupted calls, a process's exit).
  std::vector<std::pair<emul::WaitId, ParkedCall>> TakeIf(
      const std::function<bool(const ParkedCall&)>& doomed);
  // The parked calls that named an object: (wait, tid, object, descriptor).
  struct Named {
    emul::WaitId wait;
    pid_t tid;
    emul::ObjectId object;
    int fd;
  };
  std::vector<Named> NamedObjects() const;
  // The object named by wait `wait` no longer matters (its waiter is being
  // aborted): the call stays parked until answered.
  void ForgetNamed(emul::WaitId wait);

  // Every index agrees with the others (unit tests; cheap enough for debug).
  bool Consistent() const;

 private:
  size_t capacity_;
  std::unordered_map<emul::WaitId, ParkedCall> calls_;
  std::unordered_map<pid_t, emul::WaitId> by_thread_;
};

}  // namespace evshim::shim
