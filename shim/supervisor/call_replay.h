// Exactly once across signals (docs/abi.md "Call numbers, restarts and lost
// replies"; docs/design.md "Signals and exactly once"). A thread has one
// system call in flight. When its answer may not have reached it (the kernel
// refused it because a signal interrupted the thread, or the call is
// numbered and the kernel may drop an accepted reply), the call and its
// outcome are kept; if the thread issues the identical call next (a kernel
// restart after SA_RESTART, or the foreign library retrying with the same
// call number), it is the same call:
//   - a non-blocking call's outcome is replayed, never applied twice;
//   - a wait that was interrupted answers EINTR (illumos and the BSDs never
//     restart these waits);
//   - a probe (bit 63 of a numbered call) gets the answer already sent (the
//     events are in its buffer) or ECANCELED, which the library turns into
//     EINTR.
// Calls without a call number (ILP32, raw syscalls) are replayed only when
// the answer was refused; a reply the kernel dropped after accepting it is
// not recovered for them (docs/abi.md).
#pragma once

#include <sys/types.h>

#include <functional>
#include <unordered_map>

#include "abi/common/call.h"
#include "shim/runtime/fault.h"
#include "shim/supervisor/notifier.h"
#include "shim/supervisor/parked_calls.h"

namespace evshim::shim {

// Bit 63 of a numbered call's first register: "did my interrupted wait
// complete?" (docs/abi.md "Call numbers").
inline constexpr uint64_t kProbeBit = 1ULL << 63;

// Same number and registers; the probe bit is not part of the call.
bool SameCall(const CallRegisters& a, const Notification& n);
CallRegisters RegistersOf(const Notification& n);

class CallReplay {
 public:
  // Answers go through `notifier`; a fault met answering goes to `faults`.
  CallReplay(Notifier& notifier, FaultSink& faults) : notifier_(notifier), faults_(faults) {}

  // Before call `n` is handled. `numbered`: it carries a call number (LP64
  // portfs or kevent with bit 32). A parked call the thread abandoned is
  // taken from `parked` and `cancel_wait` undoes it in the engines. Returns
  // true when `n` was answered here (a restart, a re-issue or a probe): the
  // caller must not handle it.
  bool AnswerRepeat(const Notification& n, bool numbered, ParkedCalls& parked,
                    const std::function<void(emul::WaitId)>& cancel_wait);

  // Answers a call that finished now with `out` (a value or an error).
  // Unless `remember` is false (the call died while its memory was read:
  // nothing happened for the program, a re-issue must run again), the
  // outcome is kept for a re-issue when the answer was refused, or always
  // for a numbered call. True when delivered.
  bool AnswerNow(const Notification& n, bool numbered, const abi::Outcome& out, bool remember);

  // Answers a parked wait later. Refused: the events go back (the caller
  // sees false) and a re-issue of the wait answers EINTR.
  bool AnswerParked(pid_t tid, uint64_t id, const CallRegisters& call, bool numbered,
                    const abi::Outcome& out);

  // A parked wait found abandoned (its notification is no longer valid): a
  // kernel restart arriving later still answers EINTR.
  void WaitAbandoned(const ParkedCall& call);

  void ForgetThread(pid_t tid) { last_.erase(tid); }
  size_t remembered() const { return last_.size(); }

 private:
  struct Record {
    CallRegisters call;
    bool wait;  // an interrupted wait: EINTR (ECANCELED to a probe)
    abi::Outcome outcome;
  };
  bool Send(pid_t tid, uint64_t id, int64_t value, int error);
  bool SendOutcome(pid_t tid, uint64_t id, const abi::Outcome& out);

  Notifier& notifier_;
  FaultSink& faults_;
  std::unordered_map<pid_t, Record> last_;
};

}  // namespace evshim::shim
