// The seccomp filter: every (arch, number) in the syscall table goes to the
// supervisor as a user notification; everything else is allowed.
//
// Built by hand rather than with libseccomp: libseccomp 2.5 refuses numbers it
// does not know for a non-native architecture, and evshim's i386 numbers are
// deliberately numbers no kernel knows.
#pragma once

#include <linux/filter.h>

#include <vector>

namespace evshim::shim {

std::vector<sock_filter> BuildFilter();

}  // namespace evshim::shim
