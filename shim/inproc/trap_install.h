// The engine's side of the trap (trap.h): installing it; and the copy into
// the program's memory that survives a fault, whose SIGSEGV and SIGBUS the
// engine keeps as it keeps SIGSYS (docs/design.md "A copy that survives a
// fault").
#pragma once

#include <signal.h>
#include <stddef.h>

namespace evshim::shim::inproc {

// Adds the trap filter and the SIGSYS handler to this process (every
// thread), once; called when the first engine is made (fast mode). False
// when it is not installed: no seccomp filter is on the process (no
// supervisor: the decision in docs/design.md), the gate's address is taken,
// or the kernel refused the filter.
bool InstallTrap();

// Installs the engine's SIGSEGV and SIGBUS handler, once; called when the
// first engine is made (fast mode). Nothing is installed, and every copy
// stays on process_vm_readv/writev, unless the signal functions the
// program's code reaches are the foreign library's (trap_library.h: the
// interposition is global) and the mode is fast.
void InstallFaultCopy();

// Whether a copy with CopyCatchingFaults may run on this thread now: the
// handler is installed and SIGSEGV and SIGBUS are surely unblocked here.
bool FaultCopyReady();

// Copies n bytes from src to dst with plain instructions; false when one of
// them faulted (SIGSEGV or SIGBUS; part of dst may have been written). Only
// where FaultCopyReady() said yes. fault_copy.cc.
bool CopyCatchingFaults(void* dst, const void* src, size_t n);

// In the engine's SIGSEGV/SIGBUS handler: when the faulting instruction is
// the copy's, moves the context's instruction pointer to its fix-up and
// returns true. fault_copy.cc.
bool RecoverCopyFault(void* ucontext);

// The engine's own "block every signal" set: every signal but SIGSEGV and
// SIGBUS (blocked, a fault kills the process whatever its handler; the
// engine copies into the program's memory inside such masks).
inline void FillEngineMask(sigset_t* set) {
  sigfillset(set);
  sigdelset(set, SIGSEGV);
  sigdelset(set, SIGBUS);
}

}  // namespace evshim::shim::inproc
