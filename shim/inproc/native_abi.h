// The system-call conventions of the process the engine is built into
// (docs/design.md "The engine in 32-bit programs"): an x86_64 engine
// serves LP64 programs entering with `syscall`, an i386 engine (build32)
// ILP32 programs entering with `int $0x80` or the vDSO's sysenter. The
// engine is compiled once per process model, so the choice is made here,
// at compile time.
#pragma once

#include <linux/audit.h>

#include <cstdint>

#include "abi/common/data_model.h"
#include "abi/syscall_table.h"

namespace evshim::shim::inproc {

#if defined(__x86_64__)
inline constexpr abi::DataModel kProcessModel = abi::DataModel::kLp64;
inline constexpr uint32_t kProcessAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__i386__)
inline constexpr abi::DataModel kProcessModel = abi::DataModel::kIlp32;
inline constexpr uint32_t kProcessAuditArch = AUDIT_ARCH_I386;
#else
#error "the in-process engine serves x86_64 and i386 programs only"
#endif

// The number this process issues for a foreign call.
constexpr int ProcessNumber(const abi::SyscallEntry& e) {
  return kProcessModel == abi::DataModel::kLp64 ? e.nr_lp64 : e.nr_ilp32;
}

}  // namespace evshim::shim::inproc
