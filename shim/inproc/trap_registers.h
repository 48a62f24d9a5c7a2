// Where a trapped system call's number, arguments and result are in the
// registers the kernel saves for a seccomp SIGSYS (ucontext_t's gregs),
// for each x86 entry ABI (shim/inproc/trap.cc; docs/design.md "Raw foreign
// calls in fast mode: the trap"). The indices are glibc's <sys/ucontext.h>
// REG_* values of each architecture, written out so that both layouts can
// be tested on any host (tests/unit/trap_registers_test.cc); trap.cc checks
// them against the header of the architecture it is built for.
#pragma once

#include <cstdint>
#include <type_traits>

namespace evshim::shim::inproc {

struct TrapRegisters {
  int result;   // the return register (held the call's number on entry)
  int args[6];  // the argument registers, in the system call's order
};

// x86_64 `syscall`: rdi, rsi, rdx, r10, r8, r9; rax.
inline constexpr TrapRegisters kTrapRegistersX86_64{13, {8, 9, 12, 2, 0, 1}};
// i386 `int $0x80` and sysenter (the kernel stores the sixth argument, that
// __kernel_vsyscall pushed, in ebp's slot before seccomp sees the call):
// ebx, ecx, edx, esi, edi, ebp; eax.
inline constexpr TrapRegisters kTrapRegistersI386{11, {8, 10, 9, 5, 4, 6}};

// The arguments of the trapped call, zero-extended from the register width
// `Greg` (an i386 register is 32 bits: a pointer above 2 GiB stays positive).
template <typename Greg>
void ReadTrappedArgs(const TrapRegisters& layout, const Greg* gregs, uint64_t out[6]) {
  using Unsigned = std::make_unsigned_t<Greg>;
  for (int i = 0; i < 6; ++i) out[i] = static_cast<Unsigned>(gregs[layout.args[i]]);
}

// The call's result (a value, or -errno) where the interrupted code reads it.
template <typename Greg>
void WriteTrappedResult(const TrapRegisters& layout, Greg* gregs, long result) {
  gregs[layout.result] = static_cast<Greg>(result);
}

}  // namespace evshim::shim::inproc
