// The trap's seccomp filter (shim/inproc/trap_filter.h), run by a small
// classic-BPF interpreter over synthetic seccomp_data, for both x86 ABIs:
// the foreign numbers of the process's own architecture trap unless they
// come from the gate; everything else, the other architecture's calls
// included, is allowed (left to the launcher's filter).
#include <gtest/gtest.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "shim/inproc/trap_filter.h"

namespace {

using evshim::shim::inproc::kTrapData;
using evshim::shim::inproc::TrapFilter;

// The instructions TrapFilter uses: LD W ABS, JEQ K, RET K.
uint32_t RunFilter(const std::vector<sock_filter>& f, const seccomp_data& d) {
  uint32_t acc = 0;
  size_t pc = 0;
  int steps = 0;
  while (pc < f.size() && ++steps < 10000) {
    const sock_filter& i = f[pc];
    if (i.code == (BPF_LD | BPF_W | BPF_ABS)) {
      EXPECT_LE(i.k + 4, sizeof d);
      std::memcpy(&acc, reinterpret_cast<const char*>(&d) + i.k, 4);
      ++pc;
    } else if (i.code == (BPF_JMP | BPF_JEQ | BPF_K)) {
      pc += 1 + (acc == i.k ? i.jt : i.jf);
    } else if (i.code == (BPF_RET | BPF_K)) {
      return i.k;
    } else {
      ADD_FAILURE() << "unexpected instruction " << i.code;
      return 0;
    }
  }
  ADD_FAILURE() << "ran off the program";
  return 0;
}

seccomp_data Call(uint32_t arch, int nr, uint64_t ip) {
  seccomp_data d{};
  d.arch = arch;
  d.nr = nr;
  d.instruction_pointer = ip;
  return d;
}

constexpr uint64_t kGateIp = 0x3e5e0000 + 0x17;
constexpr uint32_t kTrap = SECCOMP_RET_TRAP | kTrapData;

TEST(TrapFilter, I386EngineTrapsI386ForeignNumbersOnly) {
  const auto f = TrapFilter(AUDIT_ARCH_I386, {1000, 1010, 560, 1099}, kGateIp);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_I386, 1000, 0x8049000)), kTrap);  // portfs through int $0x80
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_I386, 1099, 0xf7fc5579)), kTrap);  // the probe, from the vDSO
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_I386, 1000, kGateIp)), SECCOMP_RET_ALLOW);  // the gate
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_I386, 11, 0x8049000)), SECCOMP_RET_ALLOW);  // execve
  // An exec'd 64-bit program (a shell) under the inherited filter: all of
  // its calls pass, 1000 included (x86_64 has no portfs there).
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 59, 0x401000)), SECCOMP_RET_ALLOW);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 1000, 0x401000)), SECCOMP_RET_ALLOW);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 231, 0x401000)), SECCOMP_RET_ALLOW);
}

TEST(TrapFilter, X86_64EngineLeavesI386CallsAlone) {
  const auto f = TrapFilter(AUDIT_ARCH_X86_64, {182, 362, 560, 1099}, kGateIp);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 182, 0x7f0000001000)), kTrap);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 182, kGateIp)), SECCOMP_RET_ALLOW);
  // Same low half as the gate, another upper half: not the gate.
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 182, kGateIp | (1ull << 32))), kTrap);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_X86_64, 0, 0x401000)), SECCOMP_RET_ALLOW);
  // int $0x80 in a 64-bit process, or an exec'd i386 program.
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_I386, 20, 0x8049000)), SECCOMP_RET_ALLOW);
  EXPECT_EQ(RunFilter(f, Call(AUDIT_ARCH_I386, 182, 0x8049000)), SECCOMP_RET_ALLOW);
}

}  // namespace
