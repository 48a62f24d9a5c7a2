// Supervisor faults: something failed on evshim's side (a host call refused
// for a reason that is not the program's: Yama's EPERM on remote memory, an
// epoll_ctl that fails, a seccomp ioctl that fails other than because the
// target went away). A fault is not a guest errno (emul::Errno): it never
// travels in an emul::Result and is never turned into an invented errno for
// the program. What happens instead is in docs/design.md "Supervisor faults".
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <variant>

namespace evshim::shim {

struct Fault {
  const char* operation = "";  // the host call that failed, e.g. "process_vm_readv"
  int error = 0;               // its errno
  std::string detail;          // what evshim was doing, for the log
  std::string Describe() const;
};

// A value, or the fault that prevented it.
template <typename T>
class [[nodiscard]] FaultOr {
 public:
  FaultOr(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  FaultOr(Fault f) : v_(std::move(f)) {}      // NOLINT
  bool ok() const { return v_.index() == 0; }
  const T& value() const { return std::get<0>(v_); }
  const T& operator*() const { return value(); }
  const T* operator->() const { return &value(); }
  const Fault& fault() const { return std::get<1>(v_); }

 private:
  std::variant<T, Fault> v_;
};

// Where faults go. The supervisor's sink logs the fault and ends the process
// it happened for (docs/design.md "Supervisor faults"); tests record them.
class FaultSink {
 public:
  virtual ~FaultSink() = default;
  // `tid`: the thread whose call met the fault, or 0 when no call did.
  virtual void OnFault(const Fault& fault, pid_t tid) = 0;
};

}  // namespace evshim::shim
