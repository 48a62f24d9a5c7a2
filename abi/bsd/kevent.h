// BSD kqueue/kevent: wire layouts, the per-personality description, the
// codecs and the handlers. One implementation; FreeBSD, OpenBSD and
// DragonFly are data (KqueuePersonality), defined in personalities.cc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "abi/common/call.h"
#include "abi/common/data_model.h"
#include "emul/kqueue.h"

namespace evshim::abi::bsd {

// struct kevent: offsets and sizes (docs/rules-bsd.md §2, verified by the
// static_asserts below and tests/abi/event_h_check.c, compiled -m64/-m32).
struct KeventLayout {
  size_t size, ident, filter, flags, fflags, data, data_width, udata, ext;
  bool has_ext;
};
// FreeBSD >= 12 struct kevent (kevent, 560); ILP32 = struct kevent32.
constexpr KeventLayout kFreebsdLp64{64, 0, 8, 10, 12, 16, 8, 24, 32, true};
constexpr KeventLayout kFreebsdIlp32{56, 0, 4, 6, 8, 12, 8, 20, 24, true};
// FreeBSD 11 struct kevent (freebsd11_kevent, 363): intptr_t data, no ext.
constexpr KeventLayout kFreebsd11Lp64{32, 0, 8, 10, 12, 16, 8, 24, 0, false};
constexpr KeventLayout kFreebsd11Ilp32{20, 0, 4, 6, 8, 12, 4, 16, 0, false};
// OpenBSD: __int64_t data (4-byte aligned on i386).
constexpr KeventLayout kOpenbsdLp64{32, 0, 8, 10, 12, 16, 8, 24, 0, false};
constexpr KeventLayout kOpenbsdIlp32{24, 0, 4, 6, 8, 12, 8, 20, 0, false};
// DragonFly: intptr_t data (x86_64 only; the ILP32 row is what i386 would be).
constexpr KeventLayout kDragonflyLp64{32, 0, 8, 10, 12, 16, 8, 24, 0, false};
constexpr KeventLayout kDragonflyIlp32{20, 0, 4, 6, 8, 12, 4, 16, 0, false};

// Every layout is contiguous: each field ends where the next begins.
constexpr bool Contiguous(const KeventLayout& l, size_t ptr) {
  return l.ident == 0 && l.filter == ptr && l.flags == l.filter + 2 && l.fflags == l.flags + 2 &&
         l.data == l.fflags + 4 && l.udata == l.data + l.data_width &&
         (l.has_ext ? (l.ext == l.udata + ptr && l.size == l.ext + 32) : l.size == l.udata + ptr);
}
static_assert(Contiguous(kFreebsdLp64, 8) && kFreebsdLp64.size == 64);
static_assert(Contiguous(kFreebsdIlp32, 4) && kFreebsdIlp32.size == 56);
static_assert(Contiguous(kFreebsd11Lp64, 8) && kFreebsd11Lp64.size == 32);
static_assert(Contiguous(kFreebsd11Ilp32, 4) && kFreebsd11Ilp32.size == 20);
static_assert(Contiguous(kOpenbsdLp64, 8) && kOpenbsdLp64.size == 32);
static_assert(Contiguous(kOpenbsdIlp32, 4) && kOpenbsdIlp32.size == 24);
static_assert(Contiguous(kDragonflyLp64, 8) && kDragonflyLp64.size == 32);
static_assert(Contiguous(kDragonflyIlp32, 4) && kDragonflyIlp32.size == 20);

// struct timespec (the kevent timeout).
struct TimespecLayout {
  size_t size, sec, sec_width, nsec, nsec_width;
};
constexpr TimespecLayout kTimespecLp64{16, 0, 8, 8, 8};
constexpr TimespecLayout kFreebsdTimespecIlp32{8, 0, 4, 4, 4};   // 32-bit time_t on i386
constexpr TimespecLayout kOpenbsdTimespecIlp32{12, 0, 8, 8, 4};  // 64-bit time_t, 4-aligned
static_assert(kTimespecLp64.nsec + kTimespecLp64.nsec_width == kTimespecLp64.size);
static_assert(kFreebsdTimespecIlp32.nsec + kFreebsdTimespecIlp32.nsec_width == 8);
static_assert(kOpenbsdTimespecIlp32.nsec + kOpenbsdTimespecIlp32.nsec_width == 12);

enum class KeventAbi : uint8_t { kCurrent, kFreebsd11 };

// Everything that differs between the BSDs, as data.
struct KqueuePersonality {
  Personality personality;
  // The EVFILT_* number of each canonical filter (index: emul::KFilter), 0 = none.
  std::array<int16_t, 8> filter_number;
  int16_t filter_syscount;  // EVFILT_SYSCOUNT: -1..-syscount are the kernel's filters
  // The kernel's filters that have no filterops (bit ~filter, i.e. bit 2 for
  // -3): EINVAL, like a number that is no filter (OpenBSD EVFILT_AIO: a
  // NULL sysfilt_ops entry, OB kern_event.c:177-187, 1057-1064). The other
  // filters evshim does not emulate give EOPNOTSUPP.
  uint32_t filters_without_ops;
  uint16_t sysflags;        // EV_SYSFLAGS, masked off every change
  uint16_t keep_udata;      // FreeBSD EV_KEEPUDATA; 0 where the kernel has none
  enum class TimerUnits : uint8_t { kFreebsdBits, kOpenbsdEnum, kMillisecondsOnly };
  TimerUnits timer_units;
  int not_a_kqueue_errno;        // kevent on a descriptor that is not a kqueue
  bool negative_nchanges_einval;  // FreeBSD kqueue_kevent: nchanges < 0, before any change
  bool skip_filter_zero;         // FreeBSD: `if (!kevp->filter) continue;`
  bool timeout_read_before_fd;   // FreeBSD, DragonFly copy the timeout in first
  // Where the EV_ERROR record after one whose copy-out faulted goes:
  // OpenBSD moves on to the next slot regardless (OB kern_event.c:948-950);
  // FreeBSD's kevent_copyout (and DragonFly's, DF :759-765) advance the
  // list only when the copy-out succeeded.
  bool record_slot_advances_on_fault;
  emul::KqueuePolicy policy;
  // kqueuex(2) / kqueue1(2) flags (the foreign values).
  uint32_t kq_cloexec;
  uint32_t kq_cponfork;  // FreeBSD KQUEUE_CPONFORK; 0 where the kernel has none
  uint32_t kq_flags_valid;
  TimespecLayout timespec_ilp32;
  KeventLayout current_lp64, current_ilp32;
};

const KqueuePersonality& Freebsd();
const KqueuePersonality& Openbsd();
const KqueuePersonality& Dragonfly();

const KeventLayout& Layout(const KqueuePersonality& p, DataModel m, KeventAbi abi);
const TimespecLayout& Timespec(const KqueuePersonality& p, DataModel m);

// One change: wire bytes -> canonical (EV_SYSFLAGS masked, filter mapped,
// timer units applied; a change the kernel would refuse carries its errno).
emul::KChange DecodeChange(const KqueuePersonality& p, const KeventLayout& l,
                           std::span<const std::byte> in);
// One event (or EV_ERROR record): canonical -> wire bytes. ext is zeroed
// for layouts without it.
void EncodeEvent(const KeventLayout& l, const emul::KeventRecord& ev, std::span<std::byte> out);
// The timeout: (sec, nsec) as the foreign types hold them, sign-extended.
std::pair<int64_t, int64_t> DecodeTimespec(const TimespecLayout& l, std::span<const std::byte> in);

// Handlers shared by the personalities.
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p);
Outcome SysKqueueFlags(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p);
Outcome SysKevent(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p,
                  KeventAbi abi);
// evshim_kqueue_signal(signo): the library's hook saw signal `signo` (host
// numbering) delivered to the calling process (EVFILT_SIGNAL).
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& args);
// evshim_kqueue_fdclose(fd): the library's close/dup2/dup3 is about to close
// descriptor `fd`, which got an fd knote (knote_fdclose).
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& args);
// evshim_kqueue_fork(phase, token), FreeBSD KQUEUE_CPONFORK: phase 1 (the
// parent, in pthread_atfork's prepare) copies its copy-on-fork kqueues and
// returns a token; phase 2 (the child, before fork returns) claims the
// copies and gets their descriptors in place of the parent's.
Outcome SysKqueueFork(CallContext& ctx, const SyscallArgs& args);

}  // namespace evshim::abi::bsd

// The table's entry points (abi/syscall_table.cc).
namespace evshim::abi::freebsd {
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueFork(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueuex(CallContext& ctx, const SyscallArgs& args);
Outcome SysKevent(CallContext& ctx, const SyscallArgs& args);
Outcome SysFreebsd11Kevent(CallContext& ctx, const SyscallArgs& args);
}  // namespace evshim::abi::freebsd
namespace evshim::abi::openbsd {
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueue1(CallContext& ctx, const SyscallArgs& args);
Outcome SysKevent(CallContext& ctx, const SyscallArgs& args);
}  // namespace evshim::abi::openbsd
namespace evshim::abi::dragonfly {
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& args);
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& args);
Outcome SysKevent(CallContext& ctx, const SyscallArgs& args);
}  // namespace evshim::abi::dragonfly
