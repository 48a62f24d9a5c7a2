// A target thread's memory: process_vm_readv/writev, and /proc/TID/mem where
// the kernel has no cross-memory attach (ENOSYS). All or nothing: a short
// transfer is the guest's EFAULT. A transfer the host refuses for evshim's own
// reasons (EPERM from Yama or an undumpable target, ENOMEM) is a supervisor
// Fault, kept here for the supervisor (fault()); the handler is only stopped
// with EFAULT, which the supervisor never sends (docs/design.md "Supervisor
// faults").
#pragma once

#include <sys/types.h>
#include <sys/uio.h>

#include <optional>

#include "abi/common/call.h"
#include "shim/runtime/fault.h"

namespace evshim::abi::trace {
class CallObserver;  // abi/trace/observer.h
}

namespace evshim::shim {

class Notifier;

// The host calls remote memory uses; tests substitute them.
struct MemoryTransfer {
  using Fn = ssize_t (*)(pid_t, const iovec*, unsigned long, const iovec*, unsigned long, unsigned long);
  Fn read;   // process_vm_readv's signature
  Fn write;  // process_vm_writev's
  static MemoryTransfer Host();
};

class RemoteMemory final : public abi::GuestMemory {
 public:
  // `notifier`/`id`: the call this memory belongs to. A tid can be recycled
  // once its call is gone, so every read is followed by a check that the call
  // is still pending before anything read is acted on (seccomp_unotify(2));
  // a dead call reads as EFAULT and its answer is lost anyway (died()).
  // notifier == nullptr: no check (tracing reads only for display).
  // trace: `observer` (null when tracing is off) hears of each write.
  RemoteMemory(pid_t tid, Notifier* notifier = nullptr, uint64_t id = 0,
               abi::trace::CallObserver* observer = nullptr,
               MemoryTransfer transfer = MemoryTransfer::Host())
      : tid_(tid), notifier_(notifier), observer_(observer), id_(id), transfer_(transfer) {}

  emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override;
  emul::Result<void> Write(uint64_t addr, std::span<const std::byte> in) override;

  // The call died (a signal) while its memory was used: whatever the handler
  // answers, it did not happen for the program.
  bool died() const { return died_; }
  // The first supervisor fault met, if any.
  const std::optional<Fault>& fault() const { return fault_; }

 private:
  // One transfer; false with the guest's EFAULT or a recorded fault.
  bool Transfer(bool write, uint64_t addr, void* local, size_t len);
  bool ThroughProcMem(bool write, uint64_t addr, void* local, size_t len);

  pid_t tid_;
  Notifier* notifier_;
  abi::trace::CallObserver* observer_;
  uint64_t id_;
  MemoryTransfer transfer_;
  bool died_ = false;
  bool no_cross_memory_attach_ = false;
  std::optional<Fault> fault_;
};

}  // namespace evshim::shim
