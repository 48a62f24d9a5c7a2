// The trap's seccomp filter (trap.cc; docs/design.md "Raw foreign calls in
// fast mode: the trap"), built from the architecture and its numbers so
// that tests/unit/trap_filter_test.cc can run it for both x86 ABIs.
#pragma once

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>

#include <cstdint>
#include <vector>

namespace evshim::shim::inproc {

// SECCOMP_RET_DATA of the trap: the handler sees it as si_errno, so a SIGSYS
// from this filter is told apart from one of any other filter or a kill(2).
inline constexpr uint32_t kTrapData = 0x5e5;
// An evshim-private number only the trap filter knows (the launcher's filter
// and the supervisor do not): trapped, it answers 0; an image that finds
// it trapped knows it inherited the filter across exec (docs/abi.md §1).
inline constexpr int kProbeNr = 1099;

// TRAP for the numbers `nrs` of architecture `arch` unless the call comes
// from the gate (`gate_ip`: the address after its system-call instruction);
// everything else, the other architecture's calls included (an exec'd
// program of the other width, `int $0x80` in a 64-bit process), is left to
// the other filters (ALLOW here). At most 250 numbers (8-bit jumps).
inline std::vector<sock_filter> TrapFilter(uint32_t arch, const std::vector<uint32_t>& nrs, uint64_t gate_ip) {
  auto stmt = [](uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; };
  auto jump = [](uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) { return sock_filter{code, jt, jf, k}; };
  const auto n = static_cast<uint8_t>(nrs.size());
  std::vector<sock_filter> f;
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
  // Another architecture: past the number load and the n comparisons, to the ALLOW.
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, static_cast<uint8_t>(n + 1)));
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
  for (uint8_t i = 0; i < n; ++i) {
    // match: to the gate check after the ALLOW below
    f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, nrs[i], static_cast<uint8_t>(n - i), 0));
  }
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  // The gate: instruction_pointer is the address after its system call.
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, instruction_pointer)));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(gate_ip), 0, 2));
  f.push_back(stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, instruction_pointer) + 4));
  f.push_back(jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(gate_ip >> 32), 1, 0));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_TRAP | kTrapData));
  f.push_back(stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
  return f;
}

}  // namespace evshim::shim::inproc
