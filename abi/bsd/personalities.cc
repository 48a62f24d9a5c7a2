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

using emul::KFilter;

// The emulated filters of each kernel, by name (FreeBSD has no EVFILT_EXCEPT,
// OpenBSD no EVFILT_FS).
constexpr FilterNumber kFreebsdFilters[] = {
    {KFilter::kRead, freebsd::EVFILT_READ},     {KFilter::kWrite, freebsd::EVFILT_WRITE},
    {KFilter::kVnode, freebsd::EVFILT_VNODE},   {KFilter::kProc, freebsd::EVFILT_PROC},
    {KFilter::kSignal, freebsd::EVFILT_SIGNAL}, {KFilter::kTimer, freebsd::EVFILT_TIMER},
    {KFilter::kUser, freebsd::EVFILT_USER},     {KFilter::kFs, freebsd::EVFILT_FS},
};
constexpr FilterNumber kOpenbsdFilters[] = {
    {KFilter::kRead, openbsd::EVFILT_READ},     {KFilter::kWrite, openbsd::EVFILT_WRITE},
    {KFilter::kExcept, openbsd::EVFILT_EXCEPT}, {KFilter::kVnode, openbsd::EVFILT_VNODE},
    {KFilter::kProc, openbsd::EVFILT_PROC},     {KFilter::kSignal, openbsd::EVFILT_SIGNAL},
    {KFilter::kTimer, openbsd::EVFILT_TIMER},   {KFilter::kUser, openbsd::EVFILT_USER},
};
constexpr FilterNumber kDragonflyFilters[] = {
    {KFilter::kRead, dragonfly::EVFILT_READ},     {KFilter::kWrite, dragonfly::EVFILT_WRITE},
    {KFilter::kExcept, dragonfly::EVFILT_EXCEPT}, {KFilter::kVnode, dragonfly::EVFILT_VNODE},
    {KFilter::kProc, dragonfly::EVFILT_PROC},     {KFilter::kSignal, dragonfly::EVFILT_SIGNAL},
    {KFilter::kTimer, dragonfly::EVFILT_TIMER},   {KFilter::kUser, dragonfly::EVFILT_USER},
    {KFilter::kFs, dragonfly::EVFILT_FS},
};
// The engine posts the hints as the two kernels spell them.
static_assert(freebsd::VQ_MOUNT == emul::kev::kVqMount && freebsd::VQ_UNMOUNT == emul::kev::kVqUnmount);
static_assert(dragonfly::VQ_MOUNT == emul::kev::kVqMount && dragonfly::VQ_UNMOUNT == emul::kev::kVqUnmount);

// Each canonical filter at most once, each number at most once, none 0.
constexpr bool KeyedOnce(std::span<const FilterNumber> filters) {
  for (size_t i = 0; i < filters.size(); ++i) {
    if (filters[i].number == 0) return false;
    for (size_t j = i + 1; j < filters.size(); ++j) {
      if (filters[i].filter == filters[j].filter || filters[i].number == filters[j].number) return false;
    }
  }
  return true;
}
static_assert(KeyedOnce(kFreebsdFilters) && KeyedOnce(kOpenbsdFilters) && KeyedOnce(kDragonflyFilters));
// Each number has its slot (KqueuePersonality::filter_slots).
constexpr bool Slotted(std::span<const FilterNumber> filters) {
  for (const FilterNumber& f : filters) {
    if (f.number >= 0 || static_cast<size_t>(-f.number) >= kFilterSlots) return false;
  }
  return true;
}
static_assert(Slotted(kFreebsdFilters) && Slotted(kOpenbsdFilters) && Slotted(kDragonflyFilters));

}  // namespace

constexpr KqueuePersonality kFreebsdKqueue{
    .personality = Personality::kFreebsd,
    .filters = kFreebsdFilters,
    .filter_slots = SlotsOf(kFreebsdFilters),
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
                     // kqueue_register: KN_DISABLED set before done_ev_add,
                     // whose f_event runs only without it
                     .measures_disabled = false,
                     // filt_proc: EV_DROP when nothing subscribed (docs/rules-bsd.md §4.8)
                     .proc_exit_always = false,
                     .zombie_attach = Policy::ZombieAttach::kAlways,  // pfind_any
                     // NOTE_OPEN (reported as kNoteOpened), CLOSE, CLOSE_WRITE, READ
                     .vnode_notes = 0x7f | emul::kev::kNoteOpened | emul::kev::kNoteClose |
                                    emul::kev::kNoteCloseWrite | emul::kev::kNoteRead,
                     // filt_timervalidate: NOTE_ABSTIME minus the boot time < 0
                     .abstime_before_boot_einval = true,
                     // filt_pipewrite on the unbacked reverse pipe: PIPE_BUF
                     .reverse_pipe_room = 512,
                     // sys_pipe.c pipeclose: knlist_clear of the closing
                     // end's list, where the other end's WRITE hangs
                     .pipe_close_clears_write = true,
                     // sys_pipe.c pipe_kqfilter: pipe_nfiltops for READ
                     // without FREAD, WRITE without FWRITE (FIFOs too)
                     .lacking_fifo_filter = Policy::LackingFifoFilter::kNeverFires,
                     // vfs_subr.c filt_vfsread: NOTE_FILE_POLL always fires
                     .regular_read_poll_fflag = freebsd::NOTE_FILE_POLL},
    .kq_cloexec = freebsd::KQUEUE_CLOEXEC,
    .kq_cponfork = freebsd::KQUEUE_CPONFORK,
    // sys_kqueuex: anything else is EINVAL
    .kq_flags_valid = freebsd::KQUEUE_CLOEXEC | freebsd::KQUEUE_CPONFORK,
    .timespec_ilp32 = kFreebsdTimespecIlp32,
    .current_lp64 = kFreebsdLp64,
    .current_ilp32 = kFreebsdIlp32,
};

constexpr KqueuePersonality kOpenbsdKqueue{
    .personality = Personality::kOpenbsd,
    .filters = kOpenbsdFilters,
    .filter_slots = SlotsOf(kOpenbsdFilters),
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
                     .enable_queues_active = false,  // :1220-1227
                     .proc_exit_always = true,     // :409-423
                     .zombie_attach = Policy::ZombieAttach::kRefuse,  // :338-340
                     .vnode_notes = 0xff,   // NOTE_TRUNCATE (docs/rules-bsd.md §3.4)
                     // one tick at hz = 100: timeout_add(max(tticks, 1)) (:459-465)
                     .timer_min_period = kOneTick,
                     // fifo_vnops.c fifo_kqfilter: READ without FREAD,
                     // WRITE without FWRITE, EINVAL
                     .lacking_fifo_filter = Policy::LackingFifoFilter::kRefused,
                     // sys_pipe.c pipe_kqfilter, fifo_vnops.c fifo_kqfilter:
                     // EVFILT_EXCEPT without __EV_POLL (kevent(2)), EINVAL
                     .except_on_pipe_errno = EINVAL,
                     // ufs_vnops.c filt_ufsread: NOTE_EOF fires at the end
                     .regular_read_eof_fflag = openbsd::NOTE_EOF},
    .kq_cloexec = openbsd::O_CLOEXEC,
    .kq_cponfork = 0,
    .kq_flags_valid = openbsd::O_CLOEXEC | openbsd::O_NONBLOCK,  // sys_kqueue1
    .timespec_ilp32 = kOpenbsdTimespecIlp32,
    .current_lp64 = kOpenbsdLp64,
    .current_ilp32 = kOpenbsdIlp32,
};

constexpr KqueuePersonality kDragonflyKqueue{
    .personality = Personality::kDragonfly,
    .filters = kDragonflyFilters,
    .filter_slots = SlotsOf(kDragonflyFilters),
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
                     .timer_min_period = kOneTick,
                     // sys_pipe.c filt_piperead, filt_pipewrite
                     .pipe_eof_nodata = dragonfly::EV_NODATA,
                     // fifo_vnops.c fifo_kqfilter: no open mode checked;
                     // filt_fiforead, filt_fifowrite on the FIFO's sockets
                     .lacking_fifo_filter = Policy::LackingFifoFilter::kMeasuresTheFifo,
                     // sys_pipe.c pipe_kqfilter, fifo_vnops.c fifo_kqfilter
                     // (and ufsfifo_kqfilter's ufs_kqfilter): no EXCEPT case
                     .except_on_pipe_errno = EOPNOTSUPP},
    .kq_cloexec = 0,
    .kq_cponfork = 0,
    .kq_flags_valid = 0,  // no kqueue1
    .timespec_ilp32 = kFreebsdTimespecIlp32,
    .current_lp64 = kDragonflyLp64,
    .current_ilp32 = kDragonflyIlp32,
};

}  // namespace evshim::abi::bsd
