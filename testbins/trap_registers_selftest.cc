// The i386 trap's register layout (shim/inproc/trap_registers.h) against
// the real i386 <sys/ucontext.h>: a synthetic ucontext_t as the kernel
// saves it for a seccomp SIGSYS from `int $0x80` or sysenter. Built in
// build32 and run in the VM by scripts/vm/guest-tests (every *-selftest).
#include <ucontext.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>

#include "shim/inproc/trap_registers.h"

#if !defined(__i386__)
#error "trap_registers-selftest checks the i386 layout (build32)"
#endif

namespace {
int failures = 0;
void Check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL %s\n", what);
    ++failures;
  }
}
}  // namespace

int main() {
  using namespace evshim::shim::inproc;
  ucontext_t uc{};
  greg_t* g = uc.uc_mcontext.gregs;
  for (int i = 0; i < NGREG; ++i) g[i] = 0x3000 + i;
  g[REG_EAX] = 1000;
  g[REG_EBX] = 5;
  g[REG_ECX] = 11;
  g[REG_EDX] = static_cast<greg_t>(0xf7a01234u);
  g[REG_ESI] = 3;
  g[REG_EDI] = 0x40000000;
  g[REG_EBP] = 0x7e;
  uint64_t args[6];
  ReadTrappedArgs(kTrapRegistersI386, g, args);
  Check(args[0] == 5 && args[1] == 11, "ebx, ecx");
  Check(args[2] == 0xf7a01234u, "edx zero-extended");
  Check(args[3] == 3 && args[4] == 0x40000000 && args[5] == 0x7e, "esi, edi, ebp");
  WriteTrappedResult(kTrapRegistersI386, g, -EBADF);
  Check(g[REG_EAX] == -EBADF, "eax holds the result");
  Check(g[REG_EIP] == 0x3000 + REG_EIP && g[REG_UESP] == 0x3000 + REG_UESP, "eip, esp untouched");
  if (failures != 0) return 1;
  std::printf("trap_registers: i386 ucontext layout ok\n");
  return 0;
}
