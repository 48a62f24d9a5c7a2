// kqueue(2), kqueuex(2)/kqueue1(2) and kevent(2) for the BSD personalities:
// decode, one call into emul::Kqueues, encode. The personality is data
// (personalities.cc); the kernels' sources are cited there and here.
#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>
#include <utility>

#include "abi/bsd/kevent.h"
#include "abi/common/small_buffer.h"
#include "abi/common/spare_block.h"
#include "abi/common/wire.h"
#include "abi/freebsd/constants.h"
#include "abi/openbsd/constants.h"

namespace evshim::abi::bsd {

using emul::KChange;
using emul::KFilter;
using emul::KeventRecord;

const KeventLayout& Layout(const KqueuePersonality& p, DataModel m, KeventAbi abi) {
  if (abi == KeventAbi::kFreebsd11) return m == DataModel::kLp64 ? kFreebsd11Lp64 : kFreebsd11Ilp32;
  return m == DataModel::kLp64 ? p.current_lp64 : p.current_ilp32;
}

const TimespecLayout& Timespec(const KqueuePersonality& p, DataModel m) {
  return m == DataModel::kLp64 ? kTimespecLp64 : p.timespec_ilp32;
}

namespace {

constexpr emul::Nanos kMaxPeriod = INT64_MAX / 4;
// NOTE_ABSTIME: nanoseconds since the epoch; beyond this (the year 2146)
// the timer never fires in practice.
constexpr emul::Nanos kMaxAbsolute = INT64_MAX / 2;

emul::Nanos Scale(int64_t v, emul::Nanos unit, emul::Nanos max = kMaxPeriod) {
  if (v <= 0) return 0;
  if (v > max / unit) return max;
  return v * unit;
}

// EVFILT_TIMER: the period in nanoseconds, or the kernel's errno.
int DecodeTimer(const KqueuePersonality& p, KChange& c) {
  const uint32_t ff = c.kev.fflags;
  const int64_t data = c.kev.data;
  switch (p.timer_units) {
    case KqueuePersonality::TimerUnits::kFreebsdBits: {
      // filt_timervalidate / timer2sbintime (docs/rules-bsd.md §3.6, §4.4).
      using namespace freebsd;
      if (ff & ~(NOTE_TIMER_PRECMASK | NOTE_ABSTIME)) return EINVAL;
      if (std::popcount(ff & NOTE_TIMER_PRECMASK) > 1) return EINVAL;
      if (data < 0) return EINVAL;
      int64_t d = data == 0 && !(c.kev.flags & emul::kev::kOneshot) ? 1 : data;
      emul::Nanos unit = (ff & NOTE_SECONDS)    ? emul::kNanosPerSecond
                         : (ff & NOTE_USECONDS) ? 1'000
                         : (ff & NOTE_NSECONDS) ? 1
                                                : 1'000'000;
      // NOTE_ABSTIME: `data` is the CLOCK_REALTIME expiry in those units.
      c.timer_absolute = (ff & NOTE_ABSTIME) != 0;
      c.timer_period = Scale(d, unit, c.timer_absolute ? kMaxAbsolute : kMaxPeriod);
      return 0;
    }
    case KqueuePersonality::TimerUnits::kOpenbsdEnum: {
      using namespace openbsd;
      if (ff & ~(NOTE_TIMER_UNITMASK | NOTE_ABSTIME)) return EINVAL;
      if (data < 0) return EINVAL;
      emul::Nanos unit = 1'000'000;
      switch (ff & NOTE_TIMER_UNITMASK) {
        case NOTE_SECONDS: unit = emul::kNanosPerSecond; break;
        case NOTE_USECONDS: unit = 1'000; break;
        case NOTE_NSECONDS: unit = 1; break;
        default: break;
      }
      // NOTE_ABSTIME (current OpenBSD filt_timervalidate): an epoch time in those units.
      c.timer_absolute = (ff & NOTE_ABSTIME) != 0;
      c.timer_period = Scale(data, unit, c.timer_absolute ? kMaxAbsolute : kMaxPeriod);
      return 0;
    }
    case KqueuePersonality::TimerUnits::kMillisecondsOnly:
      // No validation; fflags ignored (DF kern_event.c:421-432, 476-496).
      c.timer_period = Scale(data, 1'000'000);
      return 0;
  }
  return EINVAL;
}

}  // namespace

std::optional<KFilter> CanonicalFilter(const KqueuePersonality& p, int32_t number) {
  if (number < 0 && number > -static_cast<int32_t>(kFilterSlots)) {
    const uint8_t slot = p.filter_slots[static_cast<size_t>(-number)];
    if (slot == 0) return std::nullopt;
    return static_cast<KFilter>(slot - 1);
  }
  for (const FilterNumber& f : p.filters) {
    if (f.number == number) return f.filter;
  }
  return std::nullopt;
}

int32_t FilterNumberOf(const KqueuePersonality& p, KFilter filter) {
  for (const FilterNumber& f : p.filters) {
    if (f.filter == filter) return f.number;
  }
  return 0;
}

KChange DecodeChange(const KqueuePersonality& p, const KeventLayout& l,
                     std::span<const std::byte> in) {
  KChange c;
  DecodeChange(p, l, in, c);
  return c;
}

namespace {

// The codecs' one body each. Inlined twice: for a layout that is a copy of
// one of the constant layouts (KeventLayout::shape), with that constant, so
// that every offset and width is known when compiled (no switch on a
// field's width), and for any other layout, read at run time.
[[gnu::always_inline]] inline void DecodeChangeIn(const KqueuePersonality& p, const KeventLayout& l,
                                                  std::span<const std::byte> in, KChange& c) {
  ByteReader r(in);
  c = KChange{};
  c.kev.ident = r.GetField(l.ident);
  c.kev.wire_filter = static_cast<int32_t>(r.GetField(l.filter));
  c.kev.flags = static_cast<uint16_t>(r.GetField(l.flags) & ~uint64_t{p.sysflags});
  c.kev.fflags = static_cast<uint32_t>(r.GetField(l.fflags));
  c.kev.data = static_cast<int64_t>(r.GetField(l.data));
  c.kev.udata = r.GetField(l.udata);
  c.keep_udata = (c.kev.flags & p.keep_udata) != 0;
  if (l.has_ext()) {
    static_assert(sizeof c.kev.ext == KeventLayout::kExtCount * sizeof(uint64_t));
    if (l.ext.width == sizeof(uint64_t)) {
      std::memcpy(c.kev.ext.data(), in.data() + l.ext.offset, sizeof c.kev.ext);  // the one width there is
    } else {
      for (size_t i = 0; i < KeventLayout::kExtCount; ++i) c.kev.ext[i] = r.GetField(l.ext_element(i));
    }
  }
  const int32_t wf = c.kev.wire_filter;
  if (wf == 0 && p.skip_filter_zero) {
    c.skip = true;
    return;
  }
  const std::optional<KFilter> filter = CanonicalFilter(p, wf);
  if (!filter) {
    // Not a filter of this kernel, or one it has no filterops for: EINVAL
    // (OB kern_event.c:1051-1064). One of its filters that evshim does not
    // emulate: EOPNOTSUPP.
    const bool kernel_filter = wf < 0 && wf >= -p.filter_syscount;
    const bool without_ops = kernel_filter && (p.filters_without_ops >> (-wf - 1)) & 1u;
    c.error = kernel_filter && !without_ops ? EOPNOTSUPP : EINVAL;
    return;
  }
  c.kev.filter = *filter;
  // The one filter whose change the abi translates: the timer's units.
  if (c.kev.filter == KFilter::kTimer) c.error = DecodeTimer(p, c);
}

[[gnu::always_inline]] inline void EncodeEventIn(const KeventLayout& l, const KeventRecord& ev,
                                                 std::span<std::byte> out) {
  ByteWriter w(out);
  w.PutField(l.ident, ev.ident);
  w.PutField(l.filter, static_cast<uint64_t>(static_cast<int64_t>(ev.wire_filter)));
  w.PutField(l.flags, ev.flags);
  w.PutField(l.fflags, ev.fflags);
  w.PutField(l.data, static_cast<uint64_t>(ev.data));
  w.PutField(l.udata, ev.udata);
  if (l.has_ext()) {
    if (l.ext.width == sizeof(uint64_t)) {
      std::memcpy(out.data() + l.ext.offset, ev.ext.data(), sizeof ev.ext);
    } else {
      for (size_t i = 0; i < KeventLayout::kExtCount; ++i) w.PutField(l.ext_element(i), ev.ext[i]);
    }
  }
}

// `codec(layout)` with the constant layout `l` is a copy of, when it names
// one, else with `l` itself.
template <typename Codec>
[[gnu::always_inline]] inline void WithConstantLayout(const KeventLayout& l, Codec&& codec) {
  switch (l.shape) {
    case KeventLayout::Shape::kFreebsdLp64:
      return codec(kFreebsdLp64);
    case KeventLayout::Shape::kFreebsd11Lp64:
      return codec(kFreebsd11Lp64);
    case KeventLayout::Shape::kAny:
      break;
  }
  codec(l);
}

}  // namespace

void DecodeChange(const KqueuePersonality& p, const KeventLayout& l, std::span<const std::byte> in,
                  KChange& c) {
  WithConstantLayout(l, [&](const KeventLayout& layout) __attribute__((always_inline)) {
    DecodeChangeIn(p, layout, in, c);
  });
}

void EncodeEvent(const KeventLayout& l, const KeventRecord& ev, std::span<std::byte> out) {
  WithConstantLayout(l, [&](const KeventLayout& layout) __attribute__((always_inline)) {
    EncodeEventIn(layout, ev, out);
  });
}

std::pair<int64_t, int64_t> DecodeTimespec(const TimespecLayout& l, std::span<const std::byte> in) {
  ByteReader r(in);
  return {r.GetLong(l.sec, l.sec_width), r.GetLong(l.nsec, l.nsec_width)};
}

Outcome SysKqueue(CallContext& ctx, const SyscallArgs&, const KqueuePersonality&) {
  emul::Kqueues* kqs = ctx.kqueues();
  if (kqs == nullptr) return Outcome::Error(ENOSYS);
  emul::Result<emul::ObjectId> kq = kqs->Create(ctx.caller());
  if (!kq.ok()) return Outcome::Error(kq.error().value);
  return Outcome::NewObject(ObjectKind::kKqueue, *kq);
}

// FreeBSD kqueuex(u_int flags), OpenBSD kqueue1(int flags): the foreign
// flag values; anything else is EINVAL.
Outcome SysKqueueFlags(CallContext& ctx, const SyscallArgs& a, const KqueuePersonality& p) {
  const uint32_t flags = a.Uint(0);
  if (flags & ~p.kq_flags_valid) return Outcome::Error(EINVAL);
  emul::Kqueues* kqs = ctx.kqueues();
  if (kqs == nullptr) return Outcome::Error(ENOSYS);
  emul::Result<emul::ObjectId> kq = kqs->Create(ctx.caller(), (flags & p.kq_cponfork) != 0);
  if (!kq.ok()) return Outcome::Error(kq.error().value);
  Outcome out = Outcome::NewObject(ObjectKind::kKqueue, *kq);
  out.cloexec = (flags & p.kq_cloexec) != 0;
  return out;
}

namespace {

// The largest struct kevent and struct timespec: one of each fits on the
// stack whatever the layout.
constexpr size_t kMaxKeventSize = kFreebsdLp64.size;
static_assert(kFreebsdIlp32.size <= kMaxKeventSize && kFreebsd11Lp64.size <= kMaxKeventSize &&
              kOpenbsdIlp32.size <= kMaxKeventSize);
constexpr size_t kMaxTimespecSize = kTimespecLp64.size;
static_assert(kOpenbsdTimespecIlp32.size <= kMaxTimespecSize &&
              kFreebsdTimespecIlp32.size <= kMaxTimespecSize);

// Every kevent makes one on its handler's stack, lent to the core; a call
// that parks has it copied for its waiter (KeepForWait), that copy's block
// kept per thread (ThreadSpareBlock).
class KeventDone final : public emul::KeventCompletion, public ThreadSpareBlock<KeventDone> {
 public:
  static constexpr size_t kEventsOnStack = 16;
  KeventDone(const KeventLayout& layout, bool record_slot_advances_on_fault, GuestMemory& memory,
             AnswerTo responder, uint64_t eventlist)
      : layout_(layout), advance_on_fault_(record_slot_advances_on_fault), memory_(memory),
        responder_(std::move(responder)), eventlist_(eventlist) {}
  // The copy the parked call's waiter keeps (the core owns it).
  std::unique_ptr<emul::KeventCompletion> KeepForWait() override {
    auto copy = std::make_unique<KeventDone>(*this);
    kept_ = copy.get();
    return copy;
  }
  // The call parked (its handler returns Outcome::Deferred()): its
  // waiter's copy answers through the transport from now on.
  void Park(CallContext& ctx) { kept_->responder_.Park(ctx); }

  // Change results go out one by one, as the change loop makes them.
  bool PostRecord(const emul::KeventRecord& record) override {
    std::array<std::byte, kMaxKeventSize> on_stack;
    const std::span<std::byte> bytes(on_stack.data(), layout_.size);
    EncodeEvent(layout_, record, bytes);
    const bool ok = memory_.Write(eventlist_ + record_slot_ * layout_.size, bytes).ok();
    if (ok || advance_on_fault_) ++record_slot_;
    return ok;
  }

  bool Complete(const emul::KeventOutcome& out) override {
    if (out.error != 0 || out.events.empty() || out.receipts) {
      // Nothing to take back (change results are already out: PostRecord),
      // and the changes are applied whether or not the thread hears of it:
      // the answer stands even if a signal took the thread away first.
      Outcome answer = out.error != 0 ? Outcome::Error(out.error)
                                      : Outcome::Value(static_cast<int64_t>(out.events.size()));
      answer.stands_if_refused = true;
      return responder_.Respond(answer);
    }
    if (!responder_.StillPending()) return false;  // the events go back
    const size_t total = layout_.size * out.events.size();
    if (std::byte* in_place = memory_.InPlace(eventlist_, total)) {
      for (size_t i = 0; i < out.events.size(); ++i) {
        EncodeEvent(layout_, out.events[i], std::span<std::byte>(in_place + i * layout_.size, layout_.size));
      }
      return AnswerWritten(out.events.size());
    }
    // The usual few events are encoded on the stack (no allocation per
    // retrieval), a longer list on the heap; one write either way. The
    // layouts have no padding (Contiguous): every byte is written.
    SmallBuffer<std::byte, kEventsOnStack * kMaxKeventSize> bytes;
    bytes.resize(layout_.size * out.events.size());
    for (size_t i = 0; i < out.events.size(); ++i) {
      EncodeEvent(layout_, out.events[i], bytes.span().subspan(i * layout_.size, layout_.size));
    }
    return Answer(bytes.span(), out.events.size());
  }

  // One retrieved event (never a change result: those go by PostRecord and
  // end in Complete): encoded on the stack, then Complete's answer.
  bool CompleteOne(const emul::KeventRecord& event) override {
    if (!responder_.StillPending()) return false;  // the event goes back
    if (std::byte* in_place = memory_.InPlace(eventlist_, layout_.size)) {
      EncodeEvent(layout_, event, std::span<std::byte>(in_place, layout_.size));
      return AnswerWritten(1);
    }
    std::array<std::byte, kMaxKeventSize> on_stack;
    const std::span<std::byte> bytes(on_stack.data(), layout_.size);
    EncodeEvent(layout_, event, bytes);
    return Answer(bytes, 1);
  }

 private:
  // The retrieved events' copy-out and the call's answer, for both.
  bool Answer(std::span<const std::byte> encoded, size_t count) {
    if (!memory_.Write(eventlist_, encoded).ok()) {
      Outcome lost = Outcome::Error(EFAULT);  // events are lost, as copyout loses them
      lost.stands_if_refused = true;
      responder_.Respond(lost);
      return true;
    }
    return AnswerWritten(count);
  }
  // The call's answer once its events are in the caller's list (written
  // there in place, GuestMemory::InPlace, or copied by Answer). Refused,
  // the events go back (the engine's PutBack): the call is void, and what
  // was written to the list is not an answer.
  bool AnswerWritten(size_t count) { return responder_.Respond(Outcome::Value(static_cast<int64_t>(count))); }

  const KeventLayout& layout_;
  bool advance_on_fault_;
  GuestMemory& memory_;
  AnswerTo responder_;
  uint64_t eventlist_;
  uint64_t record_slot_ = 0;
  KeventDone* kept_ = nullptr;  // KeepForWait's copy, while its waiter lives
};

constexpr int64_t kChunk = 64;
// A list of up to this many changes is read and decoded on the stack.
constexpr size_t kChangesOnStack = 4;

}  // namespace

namespace {

// kevent(kq, changelist, nchanges, eventlist, nevents, timeout).
Outcome Kevent(CallContext& ctx, const SyscallArgs& a, const KqueuePersonality& p, KeventAbi abi) {
  emul::Kqueues* kqs = ctx.kqueues();
  if (kqs == nullptr) return Outcome::Error(ENOSYS);
  const DataModel m = a.model();
  const KeventLayout& layout = Layout(p, m, abi);
  const int32_t fd = a.Int(0);
  const uint64_t changelist = a.Ptr(1);
  int32_t nchanges = a.Int(2);
  const uint64_t eventlist = a.Ptr(3);
  int32_t nevents = a.Int(4);
  const uint64_t timeout = a.Ptr(5);

  emul::KeventWait wait;
  auto read_timeout = [&]() -> int {
    if (timeout == 0) return 0;
    const TimespecLayout& tl = Timespec(p, m);
    std::array<std::byte, kMaxTimespecSize> on_stack;
    const std::span<std::byte> ts(on_stack.data(), tl.size);
    if (!ctx.memory().Read(timeout, ts).ok()) return EFAULT;
    auto [sec, nsec] = DecodeTimespec(tl, ts);
    wait.forever = false;
    wait.sec = sec;
    wait.nsec = nsec;
    return 0;
  };
  // A read also fails when a signal has interrupted the caller meanwhile
  // (the supervisor's memory checks the call is still alive): then nothing
  // happened and nothing is answered, so a retry of the same call is served
  // afresh instead of being answered with a remembered EFAULT.
  auto fault = [&ctx](int err) {
    std::shared_ptr<Responder> r = ctx.Defer();
    if (r->StillPending()) r->Respond(Outcome::Error(err));
    return Outcome::Deferred();
  };
  if (p.timeout_read_before_fd) {
    if (int err = read_timeout(); err != 0) return fault(err);
  }
  emul::Result<emul::ObjectId> kq = ctx.Resolve(fd, ObjectKind::kKqueue);
  if (!kq.ok()) {
    int err = kq.error().value;
    return Outcome::Error(err == EBADFD ? p.not_a_kqueue_errno : err);
  }
  if (!p.timeout_read_before_fd) {
    if (int err = read_timeout(); err != 0) return fault(err);
  }
  if (p.negative_nchanges_einval && nchanges < 0) return Outcome::Error(EINVAL);
  nchanges = std::max(nchanges, 0);
  wait.nevents_negative = nevents < 0;
  nevents = std::max(nevents, 0);
  wait.nevents = static_cast<uint32_t>(nevents);

  // The change list, in chunks as the kernels copy it in; a fault ends it.
  // A short list (the usual one or two) is read and decoded on the stack,
  // so the call allocates nothing; a longer one on the heap.
  // Answered at once (the usual kevent of an event loop), the answer is
  // the handler's outcome where the transport allows (AnswerTo); a call
  // that parks takes the transport's Responder then.
  InCallAnswer in_call;
  AnswerTo responder(ctx, &in_call);
  const bool answers_in_call = responder.in_call();
  // A chunk the memory lends in place (GuestMemory::InPlace: the caller's
  // own frames) is decoded where it lies, without the copy.
  GuestMemory& memory = ctx.memory();
  SmallBuffer<emul::KChange, kChangesOnStack> changes;
  SmallBuffer<std::byte, kChangesOnStack * kMaxKeventSize> raw;
  bool changes_fault = false;
  for (int64_t done = 0; done < nchanges;) {
    int64_t n = std::min<int64_t>(kChunk, nchanges - done);
    const uint64_t chunk_at = changelist + static_cast<uint64_t>(done) * layout.size;
    const size_t chunk_size = static_cast<size_t>(n) * layout.size;
    std::span<const std::byte> chunk;
    if (const std::byte* in_place = memory.InPlace(chunk_at, chunk_size)) {
      chunk = std::span<const std::byte>(in_place, chunk_size);
    } else {
      raw.resize(chunk_size);
      if (!memory.Read(chunk_at, raw.span()).ok()) {
        // A signal took the caller away meanwhile (as for the timeout above):
        // no change is applied, not even the chunks already read, so the
        // re-issued call is served afresh and none is applied twice.
        if (!responder.StillPending()) return Outcome::Deferred();
        changes_fault = true;
        break;
      }
      chunk = raw.span();
    }
    const size_t first = changes.size();
    changes.resize(first + static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      emul::KChange& c = changes[first + static_cast<size_t>(i)];
      DecodeChange(p, layout, chunk.subspan(i * layout.size, layout.size), c);
      if (c.error == EOPNOTSUPP) {
        ctx.NotImplemented(std::string(PersonalityName(p.personality)) + " kevent filter " +
                           std::to_string(c.kev.wire_filter));
      }
    }
    done += n;
  }

  KeventDone done(layout, p.record_slot_advances_on_fault, memory, std::move(responder), eventlist);
  if (std::optional<emul::WaitId> w =
          kqs->Kevent(ctx.caller(), *kq, p.policy, changes.span(), changes_fault, wait, done)) {
    done.Park(ctx);
    ctx.Parked(*w);
    return Outcome::Deferred();
  }
  // Not parked: the core answered the call before it returned.
  if (answers_in_call) return in_call.answered ? in_call.outcome : Outcome::Error(EINTR);
  return Outcome::Deferred();
}

}  // namespace

Outcome SysKevent(CallContext& ctx, const SyscallArgs& a, const KqueuePersonality& p) {
  return Kevent(ctx, a, p, KeventAbi::kCurrent);
}

Outcome SysFreebsd11Kevent(CallContext& ctx, const SyscallArgs& a, const KqueuePersonality& p) {
  return Kevent(ctx, a, p, KeventAbi::kFreebsd11);
}

Outcome SysKqueueSignal(CallContext& ctx, const SyscallArgs& a) {
  emul::Kqueues* kqs = ctx.kqueues();
  if (kqs == nullptr) return Outcome::Error(ENOSYS);
  const int32_t signo = a.Int(0);
  if (signo <= 0 || static_cast<uint64_t>(signo) >= emul::kev::kNsig) return Outcome::Error(EINVAL);
  kqs->OnSignal(ctx.caller().pid, signo);
  return Outcome::Value(0);
}

Outcome SysKqueueFdClose(CallContext& ctx, const SyscallArgs& a) {
  emul::Kqueues* kqs = ctx.kqueues();
  if (kqs == nullptr) return Outcome::Error(ENOSYS);
  const int32_t fd = a.Int(0);
  if (fd < 0) return Outcome::Error(EBADF);
  kqs->FdClosing(ctx.caller().pid, fd);
  return Outcome::Value(0);
}

Outcome SysKqueueSettle(CallContext&, const SyscallArgs&) { return Outcome::Value(0); }

Outcome SysKqueueFork(CallContext& ctx, const SyscallArgs& a) {
  emul::Kqueues* kqs = ctx.kqueues();
  if (kqs == nullptr) return Outcome::Error(ENOSYS);
  const emul::Pid pid = ctx.caller().pid;
  switch (a.Int(0)) {
    case 1:  // prepare, in the parent
      return Outcome::Value(static_cast<int64_t>(kqs->ForkPrepare(pid)));
    case 2:  // the child, with the token it inherited
      for (const auto& [parent_kq, copy] : kqs->ForkClaim(a.Uint(1), pid)) {
        if (int err = ctx.ReplaceObject(ObjectKind::kKqueue, parent_kq, copy); err != 0) {
          return Outcome::Error(err);
        }
      }
      return Outcome::Value(0);
    default:
      return Outcome::Error(EINVAL);
  }
}

}  // namespace evshim::abi::bsd
