// Where the trap's SIGSYS handler finds a trapped call (shim/inproc/
// trap_registers.h): synthetic saved registers of both x86 entry ABIs. The
// i386 layout is checked against the real i386 <sys/ucontext.h> by
// testbins/trap_registers_selftest.cc, run in the VM (scripts/vm-test).
#include <gtest/gtest.h>

#include <ucontext.h>

#include <cerrno>
#include <cstdint>

#include "shim/inproc/trap_registers.h"

namespace {

using evshim::shim::inproc::kTrapRegistersI386;
using evshim::shim::inproc::kTrapRegistersX86_64;
using evshim::shim::inproc::ReadTrappedArgs;
using evshim::shim::inproc::WriteTrappedResult;

#if defined(__x86_64__)
// x86_64 `syscall`: the arguments in rdi, rsi, rdx, r10, r8, r9, the
// result in rax (this host's own ucontext_t).
TEST(TrapRegisters, X86_64ArgumentsAndResult) {
  ucontext_t uc{};
  greg_t* g = uc.uc_mcontext.gregs;
  for (int i = 0; i < NGREG; ++i) g[i] = 0x1000 + i;  // every other register a distinct decoy
  g[REG_RAX] = 182;
  g[REG_RDI] = 5;
  g[REG_RSI] = 11;
  g[REG_RDX] = 0x7fff12345678;
  g[REG_R10] = 3;
  g[REG_R8] = -1;
  g[REG_R9] = 0x7e;
  uint64_t args[6];
  ReadTrappedArgs(kTrapRegistersX86_64, g, args);
  EXPECT_EQ(args[0], 5u);
  EXPECT_EQ(args[1], 11u);
  EXPECT_EQ(args[2], 0x7fff12345678u);
  EXPECT_EQ(args[3], 3u);
  EXPECT_EQ(args[4], ~0ull);
  EXPECT_EQ(args[5], 0x7eu);
  WriteTrappedResult(kTrapRegistersX86_64, g, -EBADF);
  EXPECT_EQ(g[REG_RAX], -EBADF);
  EXPECT_EQ(g[REG_RDI], 5);
}
#endif

// i386 `int $0x80` / sysenter: the arguments in ebx, ecx, edx, esi, edi,
// ebp, the result in eax; 32-bit registers, zero-extended (a pointer above
// 2 GiB, usual in an i386 process's mmap area, stays that address).
// glibc's i386 gregset_t: 19 registers, gs fs es ds edi esi ebp esp ebx edx
// ecx eax trapno err eip cs efl uesp ss.
TEST(TrapRegisters, I386ArgumentsAndResult) {
  int32_t g[19];
  for (int i = 0; i < 19; ++i) g[i] = 0x2000 + i;
  g[11] = 1000;                             // eax: portfs's i386 number
  g[8] = 5;                                 // ebx
  g[10] = 11;                               // ecx
  g[9] = static_cast<int32_t>(0xf7a01234);  // edx: a high pointer
  g[5] = 3;                                 // esi
  g[4] = -1;                                // edi
  g[6] = 0x7e;                              // ebp: the sixth argument
  uint64_t args[6];
  ReadTrappedArgs(kTrapRegistersI386, g, args);
  EXPECT_EQ(args[0], 5u);
  EXPECT_EQ(args[1], 11u);
  EXPECT_EQ(args[2], 0xf7a01234u);
  EXPECT_EQ(args[3], 3u);
  EXPECT_EQ(args[4], 0xffffffffu);
  EXPECT_EQ(args[5], 0x7eu);
  WriteTrappedResult(kTrapRegistersI386, g, -EBADF);
  EXPECT_EQ(g[11], -EBADF);
  EXPECT_EQ(g[8], 5);
  EXPECT_EQ(g[7], 0x2000 + 7);  // esp untouched
}

}  // namespace
