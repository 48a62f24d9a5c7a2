// The dispatch's observer: what a transport reports about each foreign call
// it serves, for `evshim trace`. Tracing observes; it never decides: no
// callback can change an argument, a result or the order of anything.
//
// A transport holds a `CallObserver*` that is null when tracing is off, so
// the only cost on the hot path is that pointer check. Per call, in order:
//   OnEnter        once, before the handler runs (and before any answer);
//   OnWrite        for each region the call wrote into the caller's memory
//                  (the handler's own writes: port events, error lists, ...);
//   OnDeferred     if the handler returned Outcome::Deferred() (the call may
//                  already be answered by then: a retrieval that found events);
//   OnExit         once, when the caller is answered; `delivered` is false
//                  when the caller could no longer receive it (interrupted).
// A call that is never answered (its thread was interrupted or exited while
// parked) gets no OnExit; observers treat a new OnEnter from the same thread
// as the end of its previous call.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "abi/common/call.h"
#include "abi/common/data_model.h"
#include "abi/syscall_table.h"

namespace evshim::abi::trace {

struct CallStart {
  uint64_t id = 0;  // the transport's id for this call (unique while it is in flight)
  emul::Caller caller{};
  DataModel model = DataModel::kLp64;
  int nr = 0;
  const SyscallEntry* entry = nullptr;  // nullptr: a number evshim does not know
  std::array<uint64_t, 6> raw{};
  uint64_t ip = 0;                  // the instruction pointer after the syscall instruction
  GuestMemory* memory = nullptr;    // the caller's memory, readable during OnEnter only
};

class CallObserver {
 public:
  virtual ~CallObserver() = default;
  virtual void OnEnter(const CallStart& call) { (void)call; }
  virtual void OnWrite(uint64_t id, uint64_t addr, std::span<const std::byte> bytes) {
    (void)id;
    (void)addr;
    (void)bytes;
  }
  virtual void OnDeferred(uint64_t id) { (void)id; }
  virtual void OnExit(uint64_t id, int64_t value, int error, bool delivered) {
    (void)id;
    (void)value;
    (void)error;
    (void)delivered;
  }
};

}  // namespace evshim::abi::trace
