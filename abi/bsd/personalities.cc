// FreeBSD, OpenBSD and DragonFly as data for the one kqueue implementation
// (kevent.cc). Each difference cites where it comes from.
#include <cerrno>

#include "abi/bsd/kevent.h"
#include "abi/dragonfly/constants.h"
#include "abi/freebsd/constants.h"
#include "abi/openbsd/constants.h"

namespace evshim::abi::bsd {

namespace {

using Policy = emul::KqueuePolicy;

// OpenBSD's and DragonFly's timer granularity: one clock tick at their
// default hz (100; sys/conf/param.c in both).
constexpr emul::Nanos kOneTick = emul::kNanosPerSecond / 100;

// Index: emul::KFilter {kRead, kWrite, kExcept, kVnode, kProc, kSignal, kTimer, kUser}.
constexpr KqueuePersonality kFreebsd{
    .personality = Personality::kFreebsd,
    .filter_number = {freebsd::EVFILT_READ, freebsd::EVFILT_WRITE, 0 /* no EXCEPT */,
                      freebsd::EVFILT_VNODE, freebsd::EVFILT_PROC, freebsd::EVFILT_SIGNAL,
                      freebsd::EVFILT_TIMER, freebsd::EVFILT_USER},
    .filter_syscount = freebsd::EVFILT_SYSCOUNT,
    .filters_without_ops = 0,
    .sysflags = freebsd::EV_SYSFLAGS,
    .keep_udata = freebsd::EV_KEEPUDATA,
    .timer_units = KqueuePersonality::TimerUnits::kFreebsdBits,
    .not_a_kqueue_errno = EINVAL,  // kqueue_acquire: f_type != DTYPE_KQUEUE (docs/rules-bsd.md §4.1)
    .negative_nchanges_einval = true,
    .skip_filter_zero = true,
    .timeout_read_before_fd = true,
    .record_slot_advances_on_fault = false,  // kevent_copyout: eventlist += count on success
    .policy = Policy{.post_errors_without_room = false,
                     .record_fault_stops = false,  // (void)k_ops->k_copyout(...)
                     .negative_nevents_einval = true,  // kqueue_scan: maxevents < 0
                     .kqueue_descriptor_filter_errno = EINVAL,  // kqueue_kqfilter
                     .close_wakes_waiters = false,  // kern_kevent holds the file (fget .. fdrop)
                     .timeout_check = Policy::TimeoutCheck::kBeforeScan,
                     .timer_modify_restarts = true,
                     .report_action_flags = false,  // kn_kevent.flags &= ~(EV_ADD|EV_DELETE|...)
                     .user_clear_resets_fflags = false,
                     // filt_proc: EV_DROP when nothing subscribed (docs/rules-bsd.md §4.8)
                     .proc_exit_always = false,
                     .zombie_attach = Policy::ZombieAttach::kAlways,  // pfind_any
                     // NOTE_OPEN (reported as kNoteOpened), CLOSE, CLOSE_WRITE, READ
                     .vnode_notes = 0x7f | emul::kev::kNoteOpened | emul::kev::kNoteClose |
                                    emul::kev::kNoteCloseWrite | emul::kev::kNoteRead,
                     // filt_timervalidate: NOTE_ABSTIME minus the boot time < 0
                     .abstime_before_boot_einval = true},
    .kq_cloexec = freebsd::KQUEUE_CLOEXEC,
    .kq_cponfork = freebsd::KQUEUE_CPONFORK,
    // sys_kqueuex: anything else is EINVAL
    .kq_flags_valid = freebsd::KQUEUE_CLOEXEC | freebsd::KQUEUE_CPONFORK,
    .timespec_ilp32 = kFreebsdTimespecIlp32,
    .current_lp64 = kFreebsdLp64,
    .current_ilp32 = kFreebsdIlp32,
};

constexpr KqueuePersonality kOpenbsd{
    .personality = Personality::kOpenbsd,
    .filter_number = {openbsd::EVFILT_READ, openbsd::EVFILT_WRITE, openbsd::EVFILT_EXCEPT,
                      openbsd::EVFILT_VNODE, openbsd::EVFILT_PROC, openbsd::EVFILT_SIGNAL,
                      openbsd::EVFILT_TIMER, openbsd::EVFILT_USER},
    .filter_syscount = openbsd::EVFILT_SYSCOUNT,
    .filters_without_ops = 1u << ~openbsd::EVFILT_AIO,  // OB kern_event.c:180
    .sysflags = openbsd::EV_SYSFLAGS,  // OB kern_event.c:942
    .keep_udata = 0,
    .timer_units = KqueuePersonality::TimerUnits::kOpenbsdEnum,
    .not_a_kqueue_errno = EBADF,  // OB kern_event.c:906-909
    .negative_nchanges_einval = false,
    .skip_filter_zero = false,
    .timeout_read_before_fd = false,  // OB kern_event.c:903-912: the fd first
    .record_slot_advances_on_fault = true,  // OB kern_event.c:948-950
    .policy = Policy{.post_errors_without_room = false,  // OB kern_event.c:945-955
                     .record_fault_stops = false,  // OB kern_event.c:948: copyout result ignored
                     .negative_nevents_einval = false,  // :975
                     .kqueue_descriptor_filter_errno = EINVAL,  // :245-256
                     .close_wakes_waiters = true,  // :967-968, 1292-1295, 1543-1586
                     .timeout_check = Policy::TimeoutCheck::kBeforeChanges,  // :911-922
                     .timer_modify_restarts = true,                          // :516-539
                     .report_action_flags = true,                            // :1143
                     .user_clear_resets_fflags = true,
                     .modify_without_add = false,  // :1194-1209
                     .proc_exit_always = true,     // :409-423
                     .zombie_attach = Policy::ZombieAttach::kRefuse,  // :338-340
                     .vnode_notes = 0xff,   // NOTE_TRUNCATE (docs/rules-bsd.md §3.4)
                     // one tick at hz = 100: timeout_add(max(tticks, 1)) (:459-465)
                     .timer_min_period = kOneTick},
    .kq_cloexec = openbsd::O_CLOEXEC,
    .kq_cponfork = 0,
    .kq_flags_valid = openbsd::O_CLOEXEC | openbsd::O_NONBLOCK,  // sys_kqueue1
    .timespec_ilp32 = kOpenbsdTimespecIlp32,
    .current_lp64 = kOpenbsdLp64,
    .current_ilp32 = kOpenbsdIlp32,
};

constexpr KqueuePersonality kDragonfly{
    .personality = Personality::kDragonfly,
    .filter_number = {dragonfly::EVFILT_READ, dragonfly::EVFILT_WRITE, dragonfly::EVFILT_EXCEPT,
                      dragonfly::EVFILT_VNODE, dragonfly::EVFILT_PROC, dragonfly::EVFILT_SIGNAL,
                      dragonfly::EVFILT_TIMER, dragonfly::EVFILT_USER},
    .filter_syscount = dragonfly::EVFILT_SYSCOUNT,
    .filters_without_ops = 0,  // aio_filtops (DF kern_event.c:176-180)
    .sysflags = dragonfly::EV_SYSFLAGS,  // DF kern_event.c:827-828
    .keep_udata = 0,
    .timer_units = KqueuePersonality::TimerUnits::kMillisecondsOnly,  // DF kern_event.c:427-428
    .not_a_kqueue_errno = EBADF,  // DF kern_event.c:1058-1061
    .negative_nchanges_einval = false,
    .skip_filter_zero = false,
    .timeout_read_before_fd = true,   // DF kern_event.c:1047-1057
    .record_slot_advances_on_fault = false,  // DF kern_event.c:759-765
    .policy = Policy{.post_errors_without_room = true,  // DF kern_event.c:846-857
                     .record_fault_stops = true,  // DF kern_event.c:850-852
                     .negative_nevents_einval = false,  // DF kern_event.c:896
                     .kqueue_descriptor_filter_errno = EOPNOTSUPP,  // DF kern_event.c:258-269
                     .close_wakes_waiters = false,  // DF kern_event.c:1055-1072
                     .timeout_check = Policy::TimeoutCheck::kNever,  // DF kern_event.c:866-871
                     .timer_modify_restarts = false,
                     .report_action_flags = true,
                     .user_clear_resets_fflags = true,
                     .proc_exit_always = true,                  // DF kern_event.c:378-390
                     .proc_exit_flags = dragonfly::EV_NODATA,   // DF kern_event.c:388
                     .zombie_attach = Policy::ZombieAttach::kWithNoteExit,  // :296-300
                     .vnode_notes = 0x7f,
                     // one tick at hz = 100: tvtohz_high(0 or < 0) = 1 (:427-431)
                     .timer_min_period = kOneTick},
    .kq_cloexec = 0,
    .kq_cponfork = 0,
    .kq_flags_valid = 0,  // no kqueue1
    .timespec_ilp32 = kFreebsdTimespecIlp32,
    .current_lp64 = kDragonflyLp64,
    .current_ilp32 = kDragonflyIlp32,
};

}  // namespace

const KqueuePersonality& Freebsd() { return kFreebsd; }
const KqueuePersonality& Openbsd() { return kOpenbsd; }
const KqueuePersonality& Dragonfly() { return kDragonfly; }

}  // namespace evshim::abi::bsd

namespace evshim::abi::freebsd {
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueSignal(ctx, a);
}
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueFdClose(ctx, a);
}
Outcome SysKqueueFork(CallContext& ctx, const SyscallArgs& a) { return bsd::SysKqueueFork(ctx, a); }
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& a) { return bsd::SysKqueue(ctx, a, bsd::Freebsd()); }
Outcome SysKqueuex(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueFlags(ctx, a, bsd::Freebsd());
}
Outcome SysKevent(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKevent(ctx, a, bsd::Freebsd(), bsd::KeventAbi::kCurrent);
}
Outcome SysFreebsd11Kevent(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKevent(ctx, a, bsd::Freebsd(), bsd::KeventAbi::kFreebsd11);
}
}  // namespace evshim::abi::freebsd

namespace evshim::abi::openbsd {
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueSignal(ctx, a);
}
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueFdClose(ctx, a);
}
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& a) { return bsd::SysKqueue(ctx, a, bsd::Openbsd()); }
Outcome SysKqueue1(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueFlags(ctx, a, bsd::Openbsd());
}
Outcome SysKevent(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKevent(ctx, a, bsd::Openbsd(), bsd::KeventAbi::kCurrent);
}
}  // namespace evshim::abi::openbsd

namespace evshim::abi::dragonfly {
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueSignal(ctx, a);
}
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueueFdClose(ctx, a);
}
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKqueue(ctx, a, bsd::Dragonfly());
}
Outcome SysKevent(CallContext& ctx, const SyscallArgs& a) {
  return bsd::SysKevent(ctx, a, bsd::Dragonfly(), bsd::KeventAbi::kCurrent);
}
}  // namespace evshim::abi::dragonfly
