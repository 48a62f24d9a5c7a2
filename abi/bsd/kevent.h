// BSD kqueue/kevent: wire layouts, the per-personality description, the
// codecs and the handlers. One implementation; FreeBSD, OpenBSD and
// DragonFly are data (KqueuePersonality), defined in personalities.cc.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

#include "abi/common/call.h"
#include "abi/common/data_model.h"
#include "abi/common/wire.h"
#include "emul/kqueue.h"

namespace evshim::abi::bsd {

// struct kevent: each field's offset, width and signedness (docs/rules-bsd.md
// §2; the offsets are verified by the static_asserts below and by
// tests/abi/event_h_check.c, compiled -m64/-m32). The codecs read only this.
struct KeventLayout {
  size_t size;
  WireField ident;   // uintptr_t
  WireField filter;  // short (FreeBSD, OpenBSD, DragonFly: int16_t)
  WireField flags;   // u_short
  WireField fflags;  // u_int
  WireField data;    // int64_t or intptr_t
  WireField udata;   // void *
  WireField ext;     // FreeBSD uint64_t ext[4]: one element's width; absent elsewhere
  // Which of the constant layouts below this is (a copy of), if any: the
  // codecs then read their offsets as constants (DecodeChange, EncodeEvent),
  // with the same code as for any layout.
  enum class Shape : uint8_t { kAny, kFreebsdLp64, kFreebsd11Lp64 };
  Shape shape = Shape::kAny;
  static constexpr size_t kExtCount = 4;
  constexpr bool has_ext() const { return ext.width != 0; }
  constexpr WireField ext_element(size_t i) const {
    return WireField{ext.offset + ext.width * i, ext.width, ext.is_signed};
  }
};
// FreeBSD >= 12 struct kevent (kevent, 560); ILP32 = struct kevent32.
constexpr KeventLayout kFreebsdLp64{64,           Unsigned(0, 8),  Signed(8, 2),   Unsigned(10, 2),
                                    Unsigned(12, 4), Signed(16, 8), Unsigned(24, 8), Unsigned(32, 8),
                                    KeventLayout::Shape::kFreebsdLp64};
constexpr KeventLayout kFreebsdIlp32{56, Unsigned(0, 4), Signed(4, 2), Unsigned(6, 2), Unsigned(8, 4),
                                     Signed(12, 8), Unsigned(20, 4), Unsigned(24, 8)};
// FreeBSD 11 struct kevent (freebsd11_kevent, 363): intptr_t data, no ext.
constexpr KeventLayout kFreebsd11Lp64{32,           Unsigned(0, 8),  Signed(8, 2),   Unsigned(10, 2),
                                      Unsigned(12, 4), Signed(16, 8), Unsigned(24, 8), {},
                                      KeventLayout::Shape::kFreebsd11Lp64};
constexpr KeventLayout kFreebsd11Ilp32{20, Unsigned(0, 4), Signed(4, 2), Unsigned(6, 2), Unsigned(8, 4),
                                       Signed(12, 4), Unsigned(16, 4), {}};
// OpenBSD: __int64_t data (4-byte aligned on i386).
constexpr KeventLayout kOpenbsdLp64 = kFreebsd11Lp64;
constexpr KeventLayout kOpenbsdIlp32{24, Unsigned(0, 4), Signed(4, 2), Unsigned(6, 2), Unsigned(8, 4),
                                     Signed(12, 8), Unsigned(20, 4), {}};
// DragonFly: intptr_t data (x86_64 only; the ILP32 row is what i386 would be).
constexpr KeventLayout kDragonflyLp64 = kFreebsd11Lp64;
constexpr KeventLayout kDragonflyIlp32 = kFreebsd11Ilp32;

// Every layout is contiguous (each field ends where the next begins, the
// last at the struct's end), and ident and udata are pointer-sized alike.
constexpr bool Contiguous(const KeventLayout& l) {
  const WireField in_order[] = {l.ident, l.filter, l.flags, l.fflags, l.data, l.udata};
  size_t end = 0;
  for (const WireField& f : in_order) {
    if (f.offset != end || f.width == 0) return false;
    end = f.end();
  }
  if (l.has_ext()) {
    if (l.ext.offset != end) return false;
    end += l.ext.width * KeventLayout::kExtCount;
  }
  return end == l.size && l.ident.width == l.udata.width && l.filter.is_signed && l.data.is_signed;
}
// A layout that names a shape has that constant's every field.
constexpr bool SameField(const WireField& a, const WireField& b) {
  return a.offset == b.offset && a.width == b.width && a.is_signed == b.is_signed;
}
constexpr bool ShapeHolds(const KeventLayout& l) {
  const KeventLayout* c = nullptr;
  switch (l.shape) {
    case KeventLayout::Shape::kAny:
      return true;
    case KeventLayout::Shape::kFreebsdLp64:
      c = &kFreebsdLp64;
      break;
    case KeventLayout::Shape::kFreebsd11Lp64:
      c = &kFreebsd11Lp64;
      break;
  }
  return l.size == c->size && SameField(l.ident, c->ident) && SameField(l.filter, c->filter) &&
         SameField(l.flags, c->flags) && SameField(l.fflags, c->fflags) && SameField(l.data, c->data) &&
         SameField(l.udata, c->udata) && SameField(l.ext, c->ext);
}
static_assert(ShapeHolds(kFreebsdLp64) && ShapeHolds(kFreebsd11Lp64) && ShapeHolds(kOpenbsdLp64) &&
              ShapeHolds(kDragonflyLp64));
static_assert(Contiguous(kFreebsdLp64) && kFreebsdLp64.size == 64);
static_assert(Contiguous(kFreebsdIlp32) && kFreebsdIlp32.size == 56);
static_assert(Contiguous(kFreebsd11Lp64) && kFreebsd11Lp64.size == 32);
static_assert(Contiguous(kFreebsd11Ilp32) && kFreebsd11Ilp32.size == 20);
static_assert(Contiguous(kOpenbsdLp64) && kOpenbsdLp64.size == 32);
static_assert(Contiguous(kOpenbsdIlp32) && kOpenbsdIlp32.size == 24);
static_assert(Contiguous(kDragonflyLp64) && kDragonflyLp64.size == 32);
static_assert(Contiguous(kDragonflyIlp32) && kDragonflyIlp32.size == 20);

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

// A filter the personality has: the canonical filter and its EVFILT_* number.
struct FilterNumber {
  emul::KFilter filter;
  int32_t number;
};

// The EVFILT_* numbers -1 .. -(kFilterSlots - 1) indexed (the kernels'
// filters: EVFILT_SYSCOUNT is at most 15 in the three).
constexpr size_t kFilterSlots = 32;
// Slot -number: the canonical filter + 1, 0 if the kernel has none there.
using FilterSlots = std::array<uint8_t, kFilterSlots>;
constexpr FilterSlots SlotsOf(std::span<const FilterNumber> filters) {
  FilterSlots slots{};
  for (const FilterNumber& f : filters) {
    if (f.number < 0 && static_cast<size_t>(-f.number) < kFilterSlots) {
      slots[static_cast<size_t>(-f.number)] = static_cast<uint8_t>(static_cast<uint8_t>(f.filter) + 1);
    }
  }
  return slots;
}

// Everything that differs between the BSDs, as data.
struct KqueuePersonality {
  Personality personality;
  // The emulated filters this kernel has, by canonical filter; a canonical
  // filter that is not listed is not this kernel's (FreeBSD has no EXCEPT).
  std::span<const FilterNumber> filters;
  // The same by number (SlotsOf(filters)): CanonicalFilter indexes it
  // instead of searching the list (about 40 instructions for USER, the
  // list's last).
  FilterSlots filter_slots;
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

// The three kernels (personalities.cc); the syscall table binds the
// handlers below to them.
extern const KqueuePersonality kFreebsdKqueue;
extern const KqueuePersonality kOpenbsdKqueue;
extern const KqueuePersonality kDragonflyKqueue;
inline const KqueuePersonality& Freebsd() { return kFreebsdKqueue; }
inline const KqueuePersonality& Openbsd() { return kOpenbsdKqueue; }
inline const KqueuePersonality& Dragonfly() { return kDragonflyKqueue; }

// The canonical filter of EVFILT_* number `number`, if the kernel has it.
std::optional<emul::KFilter> CanonicalFilter(const KqueuePersonality& p, int32_t number);
// The kernel's EVFILT_* number of `filter`; 0 if it has none.
int32_t FilterNumberOf(const KqueuePersonality& p, emul::KFilter filter);

const KeventLayout& Layout(const KqueuePersonality& p, DataModel m, KeventAbi abi);
const TimespecLayout& Timespec(const KqueuePersonality& p, DataModel m);

// One change: wire bytes -> canonical (EV_SYSFLAGS masked, filter mapped,
// timer units applied; a change the kernel would refuse carries its errno).
emul::KChange DecodeChange(const KqueuePersonality& p, const KeventLayout& l,
                           std::span<const std::byte> in);
// The same into `c` (every field written): a list's element decoded in
// place, without a temporary copied in.
void DecodeChange(const KqueuePersonality& p, const KeventLayout& l, std::span<const std::byte> in,
                  emul::KChange& c);
// One event (or EV_ERROR record): canonical -> wire bytes. ext is zeroed
// for layouts without it.
void EncodeEvent(const KeventLayout& l, const emul::KeventRecord& ev, std::span<std::byte> out);
// The timeout: (sec, nsec) as the foreign types hold them, sign-extended.
std::pair<int64_t, int64_t> DecodeTimespec(const TimespecLayout& l, std::span<const std::byte> in);

// Handlers shared by the personalities.
Outcome SysKqueue(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p);
Outcome SysKqueueFlags(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p);
Outcome SysKevent(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p);
// FreeBSD 11 compat kevent (32-byte struct kevent).
Outcome SysFreebsd11Kevent(CallContext& ctx, const SyscallArgs& args, const KqueuePersonality& p);
// evshim_kqueue_signal(signo): the library's hook saw signal `signo` (host
// numbering) delivered to the calling process (EVFILT_SIGNAL).
Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& args);
// evshim_kqueue_fdclose(fd): the library's close/dup2/dup3 is about to close
// descriptor `fd`, which got an fd knote (knote_fdclose).
Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& args);
// evshim_kqueue_settle(): the library's poll family is about to look at a
// kqueue descriptor. Does nothing itself: the readiness collected before
// every call and the descriptor bytes written before every answer are the
// point (docs/abi.md §10).
Outcome SysKqueueSettle(CallContext& ctx, const SyscallArgs& args);
// evshim_kqueue_fork(phase, token), FreeBSD KQUEUE_CPONFORK: phase 1 (the
// parent, in pthread_atfork's prepare) copies its copy-on-fork kqueues and
// returns a token; phase 2 (the child, before fork returns) claims the
// copies and gets their descriptors in place of the parent's.
Outcome SysKqueueFork(CallContext& ctx, const SyscallArgs& args);

}  // namespace evshim::abi::bsd
