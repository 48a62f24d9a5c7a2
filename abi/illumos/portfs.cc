// SysPortfs implements the illumos portfs system call (port.c:556-715).
#include "abi/illumos/portfs.h"

#include <cerrno>
#include <algorithm>
#include <array>
#include <bit>
#include <climits>
#include <string>
#include <utility>
#include <vector>

#include "abi/common/spare_block.h"
#include "abi/common/wire.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/layouts.h"
#include "abi/illumos/port_move.h"
#include "emul/event_port.h"

namespace evshim::abi::illumos {

using emul::Errno;
using emul::Result;

namespace {
// Bits whose meaning differs: illumos POLLWRBAND 0x100 (Linux POLLWRNORM),
// illumos POLLRDHUP 0x4000 (Linux 0x2000); illumos POLLWRNORM == POLLOUT.
constexpr uint32_t kSameBits = 0x00ff;  // IN PRI OUT ERR HUP NVAL RDNORM RDBAND

// Bit kFrom of `v` as bit kTo (one bit each): a shift and a mask, no
// branch (every association and every delivered FD event converts).
template <uint32_t kFrom, uint32_t kTo>
constexpr uint32_t MovedBit(uint32_t v) {
  static_assert(std::has_single_bit(kFrom) && std::has_single_bit(kTo));
  if constexpr (kFrom >= kTo) {
    return (v >> std::countr_zero(kFrom / kTo)) & kTo;
  } else {
    return (v << std::countr_zero(kTo / kFrom)) & kTo;
  }
}
}  // namespace

uint32_t PollToCanonical(uint32_t b) {
  return (b & kSameBits) | MovedBit<POLLWRBAND, emul::poll_bits::kWrBand>(b) |
         MovedBit<POLLRDHUP, emul::poll_bits::kRdHup>(b);
}

uint32_t PollFromCanonical(uint32_t c) {
  return (c & kSameBits) | MovedBit<emul::poll_bits::kWrNorm, POLLWRNORM>(c) |
         MovedBit<emul::poll_bits::kWrBand, POLLWRBAND>(c) | MovedBit<emul::poll_bits::kRdHup, POLLRDHUP>(c);
}

namespace {

// The record's fields, pointers of `ptr` bytes, fill it whole: an encoded
// record has no byte left unwritten (no gap to clear first).
constexpr bool FieldsCoverRecord(const PortEventLayout& l, size_t ptr) {
  return l.events == 0 && l.source == 4 && l.pad == 6 && l.object == 8 && l.user == 8 + ptr &&
         l.size == 8 + 2 * ptr;
}
static_assert(FieldsCoverRecord(kPortEventLp64, 8) && FieldsCoverRecord(kPortEventIlp32, 4));

template <DataModel kModel>
[[gnu::always_inline]] inline void EncodePortEventIn(const emul::PortEvent& ev, std::span<std::byte> out) {
  constexpr const PortEventLayout& l = PortEvent(kModel);
  constexpr size_t ptr = PointerSize(kModel);
  ByteWriter w(out);
  uint32_t events = ev.source == PORT_SOURCE_FD ? PollFromCanonical(ev.events) : ev.events;
  w.Put<int32_t>(l.events, static_cast<int32_t>(events));
  w.Put<uint16_t>(l.source, ev.source);
  w.Put<uint16_t>(l.pad, 0);
  w.PutPtr(l.object, ptr, ev.object);
  w.PutPtr(l.user, ptr, ev.user);
}

// port_event_t[] from `events`, in order, into `out` (their size each).
template <DataModel kModel>
void EncodePortEventsIn(std::span<const emul::PortEvent> events, std::span<std::byte> out) {
  constexpr size_t size = PortEvent(kModel).size;
  for (size_t i = 0; i < events.size(); ++i) EncodePortEventIn<kModel>(events[i], out.subspan(i * size, size));
}

void EncodePortEvents(DataModel m, std::span<const emul::PortEvent> events, std::span<std::byte> out) {
  switch (m) {
    case DataModel::kLp64:
      return EncodePortEventsIn<DataModel::kLp64>(events, out);
    case DataModel::kIlp32:
      return EncodePortEventsIn<DataModel::kIlp32>(events, out);
  }
}

}  // namespace

void EncodePortEvent(DataModel m, const emul::PortEvent& ev, std::span<std::byte> out) {
  EncodePortEvents(m, std::span<const emul::PortEvent>(&ev, 1), out);
}

emul::PortEvent DecodePortEvent(DataModel m, std::span<const std::byte> in) {
  const PortEventLayout& l = PortEvent(m);
  ByteReader r(in);
  emul::PortEvent ev;
  ev.source = r.Get<uint16_t>(l.source);
  uint32_t events = r.Get<uint32_t>(l.events);
  ev.events = ev.source == PORT_SOURCE_FD ? PollToCanonical(events) : events;
  ev.object = r.GetPtr(l.object, PointerSize(m));
  ev.user = r.GetPtr(l.user, PointerSize(m));
  return ev;
}

int64_t EncodeGetnResult(DataModel m, uint32_t count, bool etime) {
  if (m == DataModel::kLp64) {
    return static_cast<int64_t>(count) | (etime ? (static_cast<int64_t>(kEtime) << 32) : 0);
  }
  return static_cast<int64_t>(count | (etime ? kIlp32EtimeBit : 0));
}

namespace {

// Writes the events a retrieval produced and answers the call. Every
// port_get makes one on its handler's stack, lent to the core; a retrieval
// that parks has it copied for its waiter (KeepForWait), that copy's block
// kept per thread (ThreadSpareBlock).
class GetCompletion final : public emul::GetCompletion, public ThreadSpareBlock<GetCompletion> {
 public:
  static constexpr size_t kEventsOnStack = 16;
  GetCompletion(DataModel model, GuestMemory& memory, CallContext& ctx, InCallAnswer* in_call,
                uint64_t list, bool getn)
      : model_(model), memory_(memory), responder_(ctx, in_call), list_(list), getn_(getn) {}
  // The copy the parked retrieval's waiter keeps (the core owns it).
  std::unique_ptr<emul::GetCompletion> KeepForWait() override {
    auto copy = std::make_unique<GetCompletion>(*this);
    kept_ = copy.get();
    return copy;
  }
  // The retrieval parked (its handler returns Outcome::Deferred()): its
  // waiter's copy answers through the transport from now on.
  void Park(CallContext& ctx) { kept_->responder_.Park(ctx); }
  bool in_call() const { return responder_.in_call(); }

  bool Complete(const emul::GetOutcome& out) override {
    if (!responder_.StillPending()) return false;
    if (out.count_only) {
      return responder_.Respond(Outcome::Value(EncodeGetnResult(model_, *out.count_only, false)));
    }
    if (out.error != 0 && out.error != ETIME) return responder_.Respond(Outcome::Error(out.error));
    if (!getn_ && out.error == ETIME) return responder_.Respond(Outcome::Error(ETIME));
    return Answer(out.events, out.error == ETIME);
  }

  // One event, no error: Complete of an outcome holding `ev` alone, the
  // same copy-out and answer (Answer) without the list.
  bool CompleteOne(const emul::PortEvent& ev) override {
    if (!responder_.StillPending()) return false;
    return Answer(std::span<const emul::PortEvent>(&ev, 1), false);
  }

 private:
  // The events written to the caller's list (none: nothing written) and
  // the call answered with their count. Inline in each caller: one event
  // needs neither the heap branch nor the count's loop.
  [[gnu::always_inline]] bool Answer(std::span<const emul::PortEvent> events, bool etime) {
    if (!events.empty()) {
      const size_t size = PortEvent(model_).size;
      const size_t total = size * events.size();
      // Where the memory lends the caller's list in place (GuestMemory::
      // InPlace: the caller's own frames), the events are encoded there.
      if (std::byte* in_place = memory_.InPlace(list_, total)) {
        EncodePortEvents(model_, events, std::span<std::byte>(in_place, total));
        return AnswerWritten(events.size(), etime);
      }
      // Else the usual few events are encoded on the stack (no allocation
      // per retrieval); a longer list on the heap. One write either way.
      std::array<std::byte, kEventsOnStack * kPortEventLp64.size> on_stack;
      std::vector<std::byte> on_heap;
      std::span<std::byte> bytes(on_stack.data(), total);
      if (total > on_stack.size()) {
        on_heap.resize(total);
        bytes = std::span<std::byte>(on_heap);
      }
      // Every byte is a field's (FieldsCoverRecord): nothing to clear first.
      EncodePortEvents(model_, events, bytes);
      if (!memory_.Write(list_, bytes).ok()) {
        // Copy-out fault after dequeue: EFAULT and the events are lost (docs/rules-ports.md rule 28).
        responder_.Respond(Outcome::Error(EFAULT));
        return true;
      }
    }
    return AnswerWritten(events.size(), etime);
  }
  // The answer once `count` events are in the caller's list.
  [[gnu::always_inline]] bool AnswerWritten(size_t count, bool etime) {
    if (!getn_) return responder_.Respond(Outcome::Value(0));
    return responder_.Respond(
        Outcome::Value(EncodeGetnResult(model_, static_cast<uint32_t>(count), etime)));
  }

  DataModel model_;
  GuestMemory& memory_;
  AnswerTo responder_;
  uint64_t list_;
  bool getn_;
  GetCompletion* kept_ = nullptr;  // KeepForWait's copy, while its waiter lives
};

// Answers a PORT_DISPATCH call, now or when a slot frees.
class DispatchCompletion final : public emul::GetCompletion {
 public:
  explicit DispatchCompletion(std::shared_ptr<Responder> responder) : responder_(std::move(responder)) {}
  bool Complete(const emul::GetOutcome& out) override {
    if (!responder_->StillPending()) return false;
    return responder_->Respond(out.error != 0 ? Outcome::Error(out.error) : Outcome::Value(0));
  }

 private:
  std::shared_ptr<Responder> responder_;
};

// pn_get: a NUL-terminated name of at most MAXPATHLEN bytes (NUL included)
// from the caller's memory; EFAULT if unreadable, ENAMETOOLONG if longer.
// Read page by page, so a name that ends before an unmapped page is fine.
Result<std::string> ReadPathName(GuestMemory& memory, uint64_t addr) {
  constexpr uint64_t kPage = 4096;
  std::string name;
  std::vector<std::byte> chunk;
  while (name.size() < MAXPATHLEN) {
    size_t n = static_cast<size_t>(kPage - (addr % kPage));
    n = std::min(n, MAXPATHLEN - name.size());
    chunk.resize(n);
    if (!memory.Read(addr, chunk).ok()) return Errno{EFAULT};
    for (std::byte b : chunk) {
      if (b == std::byte{0}) return name;
      name.push_back(static_cast<char>(b));
    }
    addr += n;
  }
  return Errno{ENAMETOOLONG};
}

}  // namespace

emul::FileObject DecodeFileObj(DataModel m, std::span<const std::byte> in, uint64_t* name_ptr) {
  const FileObjLayout& l = FileObj(m);
  const TimespecLayout& t = Timespec(m);
  const size_t w = PointerSize(m);
  ByteReader r(in);
  auto stamp = [&](size_t at) {
    return emul::FileStamp{r.GetLong(at + t.sec, w), r.GetLong(at + t.nsec, w)};
  };
  emul::FileObject fo;
  fo.atime = stamp(l.atime);
  fo.mtime = stamp(l.mtime);
  fo.ctime = stamp(l.ctime);
  *name_ptr = r.GetPtr(l.name, w);
  return fo;
}

namespace {

Outcome FromResult(const Result<void>& r);

// port_associate(PORT_SOURCE_FILE), in port_associate_fop's order: the
// events, the file_obj_t copyin (EFAULT), the name (EFAULT, ENAMETOOLONG),
// then the lookup (the engine and the host).
Outcome AssociateFile(CallContext& ctx, const SyscallArgs& a, emul::ObjectId port) {
  const DataModel m = a.model();
  const uint64_t object = a.Ptr(3);
  const uint32_t events = static_cast<uint32_t>(a.Int(4));
  if ((events & ~FILE_EVENTS_MASK) != 0) return Outcome::Error(EINVAL);
  std::vector<std::byte> raw(FileObj(m).size);
  if (!ctx.memory().Read(object, raw).ok()) return Outcome::Error(EFAULT);
  uint64_t name_ptr = 0;
  emul::FileObject fo = DecodeFileObj(m, raw, &name_ptr);
  Result<std::string> name = ReadPathName(ctx.memory(), name_ptr);
  if (!name.ok()) return Outcome::Error(name.error().value);
  fo.name = std::move(*name);
  return FromResult(ctx.ports().AssociateFile(ctx.caller(), port, object, fo, events, a.Ptr(5)));
}

// PORT_DISPATCH (port.c:668-681): a0 port, a1 source, a2 events, a3 object,
// a4 user; PORT_SYS_NOSHARE (0x200) in the opcode keeps the event private.
Outcome Dispatch(CallContext& ctx, const SyscallArgs& a, emul::ObjectId port) {
  if (a.Int(2) != PORT_SOURCE_AIO && a.Int(2) != PORT_SOURCE_MQ) return Outcome::Error(EINVAL);
  const bool noshare = (a.Uint(0) & PORT_SYS_NOSHARE) != 0;
  auto responder = ctx.Defer();
  auto done = std::make_unique<DispatchCompletion>(std::move(responder));
  if (std::optional<emul::WaitId> wait =
          ctx.ports().Dispatch(ctx.caller(), port, a.Int(2), static_cast<uint32_t>(a.Int(3)),
                               a.Ulong(4), a.Ptr(5), noshare, std::move(done))) {
    ctx.Parked(*wait);
  }
  return Outcome::Deferred();
}

Outcome FromResult(const Result<void>& r) {
  return r.ok() ? Outcome::Value(0) : Outcome::Error(r.error().value);
}

// PORT_SENDN (port.c:978-1054; docs/rules-ports.md rule 15).
Outcome Sendn(CallContext& ctx, const SyscallArgs& a) {
  const uint64_t ports_ptr = a.Ptr(1), errors_ptr = a.Ptr(2);
  const uint32_t nent = a.Uint(3), events = static_cast<uint32_t>(a.Int(4));
  const uint64_t user = a.Ptr(5);
  if (nent == 0 || nent > PORT_MAX_LIST) return Outcome::Error(EINVAL);
  std::vector<std::byte> raw(size_t{nent} * 4);
  if (!ctx.memory().Read(ports_ptr, raw).ok()) return Outcome::Error(EFAULT);
  ByteReader ports(raw);
  std::vector<std::byte> errors_raw(size_t{nent} * 4);
  ByteWriter errors(errors_raw);
  uint32_t sent = 0;
  bool any_failed = false;
  for (uint32_t i = 0; i < nent; ++i) {
    int err = 0;
    Result<emul::ObjectId> port = ctx.Resolve(ports.Get<int32_t>(i * 4), ObjectKind::kPort);
    if (!port.ok()) {
      err = port.error().value;
    } else {
      Result<void> r = ctx.ports().Send(ctx.caller(), *port, events, user);
      if (!r.ok()) err = r.error().value;
    }
    errors.Put<int32_t>(i * 4, err);
    if (err == 0) {
      ++sent;
    } else {
      any_failed = true;
    }
  }
  if (any_failed && !ctx.memory().Write(errors_ptr, errors_raw).ok()) return Outcome::Error(EFAULT);
  return Outcome::Value(sent);
}

// PORT_GET and PORT_GETN (port.c:596-643).
Outcome Get(CallContext& ctx, const SyscallArgs& a, emul::ObjectId port, bool getn) {
  const DataModel m = a.model();
  emul::GetSpec spec;
  uint64_t list = a.Ptr(2);
  if (getn) {
    spec.max = a.Uint(3);
    spec.nget = a.Uint(4);
    uint64_t tp = a.Ptr(5);
    if (tp != 0) {
      const TimespecLayout& tl = Timespec(m);
      // On the stack: no allocation per retrieval with a timeout.
      static_assert(kTimespecIlp32.size <= kTimespecLp64.size);
      std::array<std::byte, kTimespecLp64.size> on_stack;
      const std::span<std::byte> ts(on_stack.data(), tl.size);
      if (ctx.memory().Read(tp, ts).ok()) {
        ByteReader r(ts);
        spec.timeout = emul::Timeout::Value(r.GetLong(tl.sec, PointerSize(m)),
                                            r.GetLong(tl.nsec, PointerSize(m)));
      } else {
        spec.timeout = emul::Timeout::Fault();  // EFAULT only if the call would wait
      }
    }
  } else {
    // port_get passes the timeout by value; a4 only says whether there is one
    // (port.c:607-613). portfs32 sign-extends the 32-bit values (port.c:529-547).
    spec.max = 1;
    spec.nget = 1;
    spec.one = true;
    if (a.Ptr(5) != 0) {
      spec.timeout = emul::Timeout::Value(a.Long(3), a.Long(4));
    }
  }
  spec.list_is_null = list == 0;
  // Answered at once (the usual retrieval of an event loop), the answer is
  // the handler's outcome where the transport allows (AnswerTo); a
  // retrieval that parks takes the transport's Responder then.
  InCallAnswer in_call;
  GetCompletion done(m, ctx.memory(), ctx, &in_call, list, getn);
  const bool answers_in_call = done.in_call();
  if (std::optional<emul::WaitId> wait = ctx.ports().Get(ctx.caller(), port, spec, done)) {
    done.Park(ctx);
    ctx.Parked(*wait);
    return Outcome::Deferred();
  }
  // Not parked: the core answered the retrieval before it returned.
  if (answers_in_call) return in_call.answered ? in_call.outcome : Outcome::Error(EINTR);
  return Outcome::Deferred();
}

}  // namespace

Outcome SysPortfs(CallContext& ctx, const SyscallArgs& a) {
  const uint32_t opcode = a.Uint(0);
  if (opcode & PORT_SYS_NOPORT) {
    switch (opcode & PORT_CODE_MASK) {
      case PORT_CREATE: {
        Result<emul::ObjectId> port = ctx.ports().Create(ctx.caller());
        if (!port.ok()) return Outcome::Error(port.error().value);
        return Outcome::NewObject(ObjectKind::kPort, *port);
      }
      case PORT_SENDN:
        return Sendn(ctx, a);
      case PORT_EVSHIM_FD_CLOSING:
        ctx.ports().FdClosing(ctx.caller(), a.Int(1));
        return Outcome::Value(0);
      case PORT_EVSHIM_SETTLE:
        return Outcome::Value(0);
      case PORT_EVSHIM_ADOPT:
        return AdoptPort(ctx, a);
      default:
        break;  // anything else treats a0 as a port descriptor (port.c:567-580)
    }
  }
  // All remaining opcodes name a port in a0: EBADF, then EBADFD (port.c:588-594).
  Result<emul::ObjectId> port = ctx.Resolve(a.Int(1), ObjectKind::kPort);
  if (!port.ok()) return Outcome::Error(port.error().value);
  emul::EventPorts& ports = ctx.ports();
  switch (opcode & PORT_CODE_MASK) {
    case PORT_ASSOCIATE:
    case PORT_DISSOCIATE: {
      const int32_t source = a.Int(2);
      const bool assoc = (opcode & PORT_CODE_MASK) == PORT_ASSOCIATE;
      if (source == PORT_SOURCE_FD) {
        // `object` is a uintptr_t: an fd above INT_MAX is EBADFD (port_fd.c).
        uint64_t object = a.Ulong(3);
        int64_t fd = object > static_cast<uint64_t>(INT_MAX) ? -1 : static_cast<int64_t>(object);
        if (assoc) {
          return FromResult(ports.AssociateFd(ctx.caller(), *port, fd,
                                              PollToCanonical(static_cast<uint32_t>(a.Int(4))),
                                              a.Ptr(5)));
        }
        return FromResult(ports.DissociateFd(ctx.caller(), *port, fd));
      }
      if (source == PORT_SOURCE_FILE) {
        if (assoc) return AssociateFile(ctx, a, *port);
        return FromResult(ports.DissociateFile(ctx.caller(), *port, a.Ptr(3)));
      }
      return Outcome::Error(EINVAL);  // port.c:645-661
    }
    case PORT_SEND:
      return FromResult(ports.Send(ctx.caller(), *port, static_cast<uint32_t>(a.Int(2)), a.Ptr(3)));
    case PORT_GET:
      return Get(ctx, a, *port, false);
    case PORT_GETN:
      return Get(ctx, a, *port, true);
    case PORT_ALERT:
      return FromResult(ports.Alert(ctx.caller(), *port, a.Uint(2), a.Uint(3), a.Ptr(4)));
    case PORT_DISPATCH:
      return Dispatch(ctx, a, *port);
    default:
      return Outcome::Error(EINVAL);  // port.c:706-708
  }
}

}  // namespace evshim::abi::illumos
