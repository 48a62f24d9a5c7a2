// The illumos POSIX timer calls (timer.c; __clock_timer.S argument order).
#pragma once

#include "abi/common/call.h"

namespace evshim::abi::illumos {

// SysTimerCreate implements timer_create(clock, evp, tidp).
Outcome SysTimerCreate(CallContext& ctx, const SyscallArgs& args);
// SysTimerDelete implements timer_delete(tid).
Outcome SysTimerDelete(CallContext& ctx, const SyscallArgs& args);
// SysTimerSettime implements timer_settime(tid, flags, value, ovalue).
Outcome SysTimerSettime(CallContext& ctx, const SyscallArgs& args);
// SysTimerGettime implements timer_gettime(tid, value).
Outcome SysTimerGettime(CallContext& ctx, const SyscallArgs& args);
// SysTimerGetoverrun implements timer_getoverrun(tid).
Outcome SysTimerGetoverrun(CallContext& ctx, const SyscallArgs& args);

}  // namespace evshim::abi::illumos
