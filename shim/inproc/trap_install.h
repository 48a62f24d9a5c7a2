// The engine's side of the trap (trap.h): installing it.
#pragma once

namespace evshim::shim::inproc {

// Adds the trap filter and the SIGSYS handler to this process (every
// thread), once; called when the first engine is made (fast mode). False
// when it is not installed: no seccomp filter is on the process (no
// supervisor: the decision in docs/design.md), the gate's address is taken,
// or the kernel refused the filter.
bool InstallTrap();

}  // namespace evshim::shim::inproc
