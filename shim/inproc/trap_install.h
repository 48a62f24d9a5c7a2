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

// For a thread of the engine's own (the idle pump), made while this holds
// and so inheriting it: every signal blocked on this thread, SIGSEGV and
// SIGBUS too (the system call itself: the libraries' functions keep those
// two open). A signal sent to the process then never lands on the engine's
// thread (the foreign kernel has none): the program's handler runs on one
// of the program's threads, or waits until one unblocks it. Test
// InprocFaultCopy.ASentSigsegvNeverRunsOnTheEnginesThread. False if the
// mask could not be set; RestoreSignalMask(*old) after.
bool BlockEverySignal(sigset_t* old);
void RestoreSignalMask(const sigset_t& old);

// Called first on such a thread, to say SIGSEGV and SIGBUS are blocked
// there: each CopyCatchingFaults on it then opens them for the copy's time
// (a fault with them blocked kills), and a SIGSEGV or SIGBUS sent to the
// process that the thread takes in that window is sent again after it.
void MarkFaultSignalsBlockedOnThisThread();
// Used by CopyCatchingFaults: true when this thread's fault signals were
// opened (then CloseFaultSignalsAfterCopy once the copy is over).
bool OpenFaultSignalsForCopy();
void CloseFaultSignalsAfterCopy();

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
