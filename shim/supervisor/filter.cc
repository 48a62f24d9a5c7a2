#include "shim/supervisor/filter.h"

#include <linux/audit.h>
#include <linux/seccomp.h>
#include <stddef.h>

#include "abi/syscall_table.h"

namespace evshim::shim {

namespace {
sock_filter Stmt(uint16_t code, uint32_t k) { return sock_filter{code, 0, 0, k}; }
sock_filter Jump(uint16_t code, uint32_t k, uint8_t jt, uint8_t jf) {
  return sock_filter{code, jt, jf, k};
}
}  // namespace

std::vector<sock_filter> BuildFilter() {
  std::vector<int> lp64, ilp32;
  for (const abi::SyscallEntry& e : abi::AllSyscalls()) {
    lp64.push_back(e.nr_lp64);
    ilp32.push_back(e.nr_ilp32);
  }
  std::vector<sock_filter> f;
  auto emit_arch = [&](uint32_t arch, const std::vector<int>& nrs) {
    // if (arch != ARCH) skip this block
    const auto block = static_cast<uint8_t>(nrs.size() + 3);  // LD nr, the JEQs, two RETs
    f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)));
    f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, arch, 0, block));
    f.push_back(Stmt(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)));
    for (size_t i = 0; i < nrs.size(); ++i) {
      // match -> jump to the NOTIFY return at the end of this block
      f.push_back(Jump(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nrs[i]),
                       static_cast<uint8_t>(nrs.size() - i), 0));
    }
    f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));
    f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF));
  };
  emit_arch(AUDIT_ARCH_X86_64, lp64);
  emit_arch(AUDIT_ARCH_I386, ilp32);
  f.push_back(Stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW));  // other architectures, x32
  return f;
}

}  // namespace evshim::shim
