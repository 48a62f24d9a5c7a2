// Tracing of the fast path (issue 15 item 6; docs/trace.md "Fast mode"):
// the engine reports each call it serves, as the supervisor reports to its
// CallObserver, in records (shim/trace/record.h) sent to the launcher's
// tracer over the channel named by EVSHIM_TRACE_CHANNEL. The launcher's
// Tracer formats them, so output, summary and ordering stay in one place.
//
// Off (no channel in the environment) a call costs one load and one
// predictable branch (On()). All the rest runs under the engine's lock, so
// the records of one process reach the launcher in the engine's order.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <vector>

#include "abi/common/call.h"
#include "abi/syscall_table.h"

namespace evshim::shim::inproc::fasttrace {

// 0 = not decided yet, 1 = off, 2 = on (decided once per process image).
extern std::atomic<int> g_state;
bool Decide();
inline bool On() {
  const int s = g_state.load(std::memory_order_relaxed);
  if (__builtin_expect(s == 1, 1)) return false;
  return s == 2 || Decide();
}

// The library's call into the engine (the return address of
// evshim_engine_call), for --sites. Only called while On().
void NoteCallSite(const void* return_address);

// One traced call; each thread has two, reused (a signal handler's call may
// come while the thread waits in one). Every member runs under the engine's
// lock.
class CallTrace {
 public:
  CallTrace() = default;
  ~CallTrace();
  CallTrace(const CallTrace&) = delete;
  CallTrace& operator=(const CallTrace&) = delete;

  // The call enters: reads its inputs as the formatter shows them.
  void Begin(const abi::SyscallEntry& entry, int nr, const uint64_t raw[6], pid_t pid, pid_t tid,
             abi::GuestMemory& memory);
  // The memory the handler is given: the process's, and each write it
  // makes (now or from a later completion) is reported.
  abi::GuestMemory& memory();
  // The handler returned: `foreign` = the call goes to the supervisor
  // (nothing is reported: the supervisor traces it); `deferred` = it parked.
  void Handled(bool foreign, bool deferred);
  // A deferred call is answered (Waiter::Respond, maybe on another thread).
  void Answered(const abi::Outcome& outcome);
  // The call returns `result` (value or -errno) to the program.
  void End(long result);
  bool busy() const { return phase_ != Phase::kIdle; }

 private:
  class Memory;
  enum class Phase : uint8_t { kIdle, kHandling, kOpen, kDone };
  void AddExit(int64_t value, int error);
  void Flush();

  Phase phase_ = Phase::kIdle;
  uint64_t id_ = 0;
  bool answered_early_ = false;  // answered before the handler returned
  std::vector<std::byte> pending_;
  Memory* memory_ = nullptr;
  CallTrace* outer_ = nullptr;  // the call this one interrupted (a signal handler's)
};

// The calling thread's CallTrace, begun; nullptr while tracing is off or
// the channel is gone.
CallTrace* Begin(const abi::SyscallEntry& entry, int nr, const uint64_t raw[6], pid_t pid, pid_t tid,
                 abi::GuestMemory& memory);
// The call the calling thread is in (for the responder it defers to).
CallTrace* Current();

}  // namespace evshim::shim::inproc::fasttrace
