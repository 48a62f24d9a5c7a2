#include "abi/syscall_table.h"

#include <algorithm>
#include <array>
#include <atomic>

#include "abi/bsd/kevent.h"
#include "abi/bsd/trace.h"
#include "abi/illumos/portfs.h"
#include "abi/illumos/timers.h"
#include "abi/illumos/trace.h"

namespace evshim::abi {
namespace {

using P = Personality;
using S = Support;

// illumos: portfs keeps 182 on x86_64 (Linux putpmsg, never implemented);
// on i386 182 is chown, so it moves. The timer calls (194-198) are Linux
// xattr/stat calls on both architectures, so they move.
// FreeBSD: 362/363 are free on x86_64 but connect/listen on i386; 560/583
// are free on both. DragonFly reuses 362/363 with other semantics and
// OpenBSD's 72/269/270 are fcntl/faccessat/pselect6: both move, so every
// number names exactly one (personality, call).
constexpr std::array kTable = {
    SyscallEntry{P::kIllumos, Call::kPortfs, "portfs", 182, 1000, "182", S::kPartial,
                 "every opcode and source (FD, FILE, USER, ALERT, DISPATCH AIO/MQ); "
                 "deviations: closes seen lazily, FILE via inotify (docs/abi.md)",
                 &illumos::SysPortfs, &illumos::kPortfsTrace},
    SyscallEntry{P::kIllumos, Call::kTimerCreate, "timer_create", 1001, 1001, "194", S::kFull,
                 "SIGEV_PORT/THREAD (port), SIGEV_SIGNAL, SIGEV_NONE; REALTIME and HIGHRES clocks",
                 &illumos::SysTimerCreate, &illumos::kTimerTrace},
    SyscallEntry{P::kIllumos, Call::kTimerDelete, "timer_delete", 1002, 1002, "195", S::kFull, "", &illumos::SysTimerDelete, &illumos::kTimerTrace},
    SyscallEntry{P::kIllumos, Call::kTimerSettime, "timer_settime", 1003, 1003, "196", S::kFull, "", &illumos::SysTimerSettime, &illumos::kTimerTrace},
    SyscallEntry{P::kIllumos, Call::kTimerGettime, "timer_gettime", 1004, 1004, "197", S::kFull, "", &illumos::SysTimerGettime, &illumos::kTimerTrace},
    SyscallEntry{P::kIllumos, Call::kTimerGetoverrun, "timer_getoverrun", 1005, 1005, "198",
                 S::kFull, "", &illumos::SysTimerGetoverrun, &illumos::kTimerTrace},
    SyscallEntry{P::kFreebsd, Call::kKqueue, "kqueue", 362, 1010, "362", S::kPartial,
                 "see kevent", Handler::Bind<&bsd::SysKqueue>(bsd::kFreebsdKqueue), &bsd::kKqueueTrace},
    SyscallEntry{P::kFreebsd, Call::kKevent11, "freebsd11_kevent", 363, 1011, "363", S::kPartial,
                 "FreeBSD 11 compat, 32-byte struct kevent; as kevent", Handler::Bind<&bsd::SysFreebsd11Kevent>(bsd::kFreebsdKqueue),
                 &bsd::kFreebsd11KeventTrace},
    SyscallEntry{P::kFreebsd, Call::kKevent, "kevent", 560, 560, "560", S::kPartial,
                 "READ/WRITE/TIMER/USER/PROC/SIGNAL/VNODE/FS (docs/kqueue.md: limits; VNODE NOTE_OPEN/CLOSE/"
                 "CLOSE_WRITE/READ from inotify; FS: the caller's mount namespace); NOTE_ABSTIME: CLOCK_REALTIME, "
                 "once; EVFILT_AIO/PROCDESC/LIO/SENDFILE/EMPTY not yet (EOPNOTSUPP)",
                 Handler::Bind<&bsd::SysKevent>(bsd::kFreebsdKqueue), &bsd::kKeventTrace},
    SyscallEntry{P::kFreebsd, Call::kKqueuex, "kqueuex", 583, 583, "583", S::kPartial,
                 "KQUEUE_CLOEXEC; KQUEUE_CPONFORK through the library's fork hook (docs/kqueue.md)",
                 Handler::Bind<&bsd::SysKqueueFlags>(bsd::kFreebsdKqueue),
                 &bsd::kKqueueFlagsTrace},
    SyscallEntry{P::kDragonfly, Call::kKqueue, "kqueue", 1020, 1020, "362", S::kPartial,
                 "see kevent", Handler::Bind<&bsd::SysKqueue>(bsd::kDragonflyKqueue), &bsd::kKqueueTrace},
    SyscallEntry{P::kDragonfly, Call::kKevent, "kevent", 1021, 1021, "363", S::kPartial,
                 "READ/WRITE/EXCEPT/TIMER/USER/PROC/SIGNAL/VNODE/FS (docs/kqueue.md: limits; FS: the "
                 "caller's mount namespace); EVFILT_AIO not yet (EOPNOTSUPP)",
                 Handler::Bind<&bsd::SysKevent>(bsd::kDragonflyKqueue), &bsd::kKeventTrace},
    SyscallEntry{P::kOpenbsd, Call::kKevent, "kevent", 1030, 1030, "72", S::kPartial,
                 "READ/WRITE/EXCEPT/TIMER/USER/PROC/SIGNAL/VNODE (docs/kqueue.md: limits); "
                 "NOTE_ABSTIME: CLOCK_REALTIME, once; EVFILT_DEVICE not yet (EOPNOTSUPP); "
                 "EVFILT_AIO EINVAL (no filterops, as OpenBSD)",
                 Handler::Bind<&bsd::SysKevent>(bsd::kOpenbsdKqueue), &bsd::kKeventTrace},
    SyscallEntry{P::kOpenbsd, Call::kKqueue, "kqueue", 1031, 1031, "269", S::kPartial,
                 "see kevent", Handler::Bind<&bsd::SysKqueue>(bsd::kOpenbsdKqueue), &bsd::kKqueueTrace},
    SyscallEntry{P::kOpenbsd, Call::kKqueuex, "kqueue1", 1032, 1032, "270", S::kPartial,
                 "O_CLOEXEC, O_NONBLOCK", Handler::Bind<&bsd::SysKqueueFlags>(bsd::kOpenbsdKqueue), &bsd::kKqueueFlagsTrace},
    // evshim-private (no foreign number): libevshim-kqueue's signal hook
    // reports each delivery of a signal a kqueue may count (EVFILT_SIGNAL).
    SyscallEntry{P::kFreebsd, Call::kKqueueSignal, "evshim_kqueue_signal", 1012, 1012, "-",
                 S::kFull, "evshim-private: EVFILT_SIGNAL delivery report from the library",
                 &bsd::SysKqueueSignal, &bsd::kKqueueSignalTrace},
    SyscallEntry{P::kFreebsd, Call::kKqueueFork, "evshim_kqueue_fork", 1013, 1013, "-",
                 S::kFull, "evshim-private: KQUEUE_CPONFORK, the library's pthread_atfork hook",
                 &bsd::SysKqueueFork, &bsd::kKqueueForkTrace},
    SyscallEntry{P::kDragonfly, Call::kKqueueSignal, "evshim_kqueue_signal", 1022, 1022, "-",
                 S::kFull, "evshim-private: EVFILT_SIGNAL delivery report from the library",
                 &bsd::SysKqueueSignal, &bsd::kKqueueSignalTrace},
    SyscallEntry{P::kOpenbsd, Call::kKqueueSignal, "evshim_kqueue_signal", 1033, 1033, "-",
                 S::kFull, "evshim-private: EVFILT_SIGNAL delivery report from the library",
                 &bsd::SysKqueueSignal, &bsd::kKqueueSignalTrace},
    // evshim-private: the library's close/dup2/dup3 reports the close of a
    // number that got an fd knote (knote_fdclose, docs/kqueue.md).
    SyscallEntry{P::kFreebsd, Call::kKqueueFdClose, "evshim_kqueue_fdclose", 1014, 1014, "-",
                 S::kFull, "evshim-private: close of a descriptor with knotes, from the library",
                 &bsd::SysKqueueFdClose, &bsd::kKqueueFdCloseTrace},
    SyscallEntry{P::kDragonfly, Call::kKqueueFdClose, "evshim_kqueue_fdclose", 1023, 1023, "-",
                 S::kFull, "evshim-private: close of a descriptor with knotes, from the library",
                 &bsd::SysKqueueFdClose, &bsd::kKqueueFdCloseTrace},
    SyscallEntry{P::kOpenbsd, Call::kKqueueFdClose, "evshim_kqueue_fdclose", 1034, 1034, "-",
                 S::kFull, "evshim-private: close of a descriptor with knotes, from the library",
                 &bsd::SysKqueueFdClose, &bsd::kKqueueFdCloseTrace},
    // evshim-private: the library's poll/select/epoll_wait is about to look
    // at a kqueue descriptor; the readiness applied before every answer is
    // the point (docs/abi.md §10 "poll() on a port or kqueue descriptor").
    SyscallEntry{P::kFreebsd, Call::kKqueueSettle, "evshim_kqueue_settle", 1015, 1015, "-",
                 S::kFull, "evshim-private: the library's poll family, readiness made current",
                 &bsd::SysKqueueSettle, &bsd::kKqueueSettleTrace},
    SyscallEntry{P::kDragonfly, Call::kKqueueSettle, "evshim_kqueue_settle", 1024, 1024, "-",
                 S::kFull, "evshim-private: the library's poll family, readiness made current",
                 &bsd::SysKqueueSettle, &bsd::kKqueueSettleTrace},
    SyscallEntry{P::kOpenbsd, Call::kKqueueSettle, "evshim_kqueue_settle", 1035, 1035, "-",
                 S::kFull, "evshim-private: the library's poll family, readiness made current",
                 &bsd::SysKqueueSettle, &bsd::kKqueueSettleTrace},
};

constexpr bool NumbersDistinct() {
  for (size_t i = 0; i < kTable.size(); ++i) {
    for (size_t j = i + 1; j < kTable.size(); ++j) {
      if (kTable[i].nr_lp64 == kTable[j].nr_lp64) return false;
      if (kTable[i].nr_ilp32 == kTable[j].nr_ilp32) return false;
    }
  }
  return true;
}
static_assert(NumbersDistinct(), "each number must name one (personality, call)");

}  // namespace

std::span<const SyscallEntry> AllSyscalls() { return kTable; }

const SyscallEntry* FindSyscall(DataModel model, int nr) {
  const auto number = [model](const SyscallEntry& e) { return model == DataModel::kLp64 ? e.nr_lp64 : e.nr_ilp32; };
  // The entry found last is tried first: a program makes the same call over
  // and over, and the kqueue entries are far down the table. A number names
  // one entry per model (checked above), so a hit is the answer.
  static std::atomic<const SyscallEntry*> last_found{nullptr};
  if (const SyscallEntry* last = last_found.load(std::memory_order_relaxed); last != nullptr && number(*last) == nr) {
    return last;
  }
  for (const SyscallEntry& e : kTable) {
    if (number(e) == nr) {
      last_found.store(&e, std::memory_order_relaxed);
      return &e;
    }
  }
  return nullptr;
}

}  // namespace evshim::abi
