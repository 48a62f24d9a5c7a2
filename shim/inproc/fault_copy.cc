// The copy into or out of the program's memory that survives a fault
// (trap_install.h; docs/design.md "A copy that survives a fault").
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <ucontext.h>

#include "shim/inproc/trap_install.h"

// int evshim_fault_copy(void* dst, const void* src, size_t n): 0 when the n
// bytes were copied, 1 when the copy faulted (the engine's SIGSEGV/SIGBUS
// handler moved the instruction pointer from evshim_fault_copy_insn, the
// one instruction that touches either buffer, to evshim_fault_copy_fixup).
// The direction flag is clear at every call (both ABIs).
#if defined(__x86_64__)
asm(R"(
  .pushsection .text.evshim_fault_copy,"ax",@progbits
  .globl evshim_fault_copy
  .hidden evshim_fault_copy
  .globl evshim_fault_copy_insn
  .hidden evshim_fault_copy_insn
  .globl evshim_fault_copy_fixup
  .hidden evshim_fault_copy_fixup
  .type evshim_fault_copy,@function
evshim_fault_copy:
  mov %rdx, %rcx
evshim_fault_copy_insn:
  rep movsb
  xor %eax, %eax
  ret
evshim_fault_copy_fixup:
  mov $1, %eax
  ret
  .size evshim_fault_copy, .-evshim_fault_copy
  .popsection
)");
#elif defined(__i386__)
// cdecl: the arguments on the stack; esi and edi are the caller's, saved
// around the copy (the fix-up pops them as the normal return does).
asm(R"(
  .pushsection .text.evshim_fault_copy,"ax",@progbits
  .globl evshim_fault_copy
  .hidden evshim_fault_copy
  .globl evshim_fault_copy_insn
  .hidden evshim_fault_copy_insn
  .globl evshim_fault_copy_fixup
  .hidden evshim_fault_copy_fixup
  .type evshim_fault_copy,@function
evshim_fault_copy:
  push %edi
  push %esi
  mov 12(%esp), %edi
  mov 16(%esp), %esi
  mov 20(%esp), %ecx
evshim_fault_copy_insn:
  rep movsb
  xor %eax, %eax
  pop %esi
  pop %edi
  ret
evshim_fault_copy_fixup:
  mov $1, %eax
  pop %esi
  pop %edi
  ret
  .size evshim_fault_copy, .-evshim_fault_copy
  .popsection
)");
#else
#error "the fault-surviving copy is written for x86_64 and i386"
#endif
extern "C" {
int evshim_fault_copy(void* dst, const void* src, size_t n) __attribute__((visibility("hidden")));
extern const char evshim_fault_copy_insn[] __attribute__((visibility("hidden")));
extern const char evshim_fault_copy_fixup[] __attribute__((visibility("hidden")));
}

namespace evshim::shim::inproc {

bool CopyCatchingFaults(void* dst, const void* src, size_t n) {
  const bool opened = OpenFaultSignalsForCopy();  // on the engine's own thread (trap_install.h)
  const bool copied = evshim_fault_copy(dst, src, n) == 0;
  if (opened) CloseFaultSignalsAfterCopy();
  return copied;
}

bool RecoverCopyFault(void* ucv) {
  auto* uc = static_cast<ucontext_t*>(ucv);
#if defined(__x86_64__)
  greg_t& ip = uc->uc_mcontext.gregs[REG_RIP];
#else
  greg_t& ip = uc->uc_mcontext.gregs[REG_EIP];
#endif
  if (static_cast<uintptr_t>(ip) != reinterpret_cast<uintptr_t>(evshim_fault_copy_insn)) return false;
  ip = static_cast<greg_t>(reinterpret_cast<uintptr_t>(evshim_fault_copy_fixup));
  return true;
}

}  // namespace evshim::shim::inproc
