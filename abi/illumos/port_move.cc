// PORT_EVSHIM_ADOPT's record (port_move.h) and handler.
#include "abi/illumos/port_move.h"

#include <cerrno>

#include "abi/common/wire.h"

namespace evshim::abi::illumos {

using emul::Errno;
using emul::PortState;
using emul::Result;

namespace {
constexpr uint32_t kHadFdAssoc = 1, kHadFileSource = 2, kAlert = 4;
constexpr uint32_t kTimerUnbound = 1;
}  // namespace

std::vector<std::byte> EncodePortState(const PortState& s) {
  const size_t total = kPortStateHeader + s.assocs.size() * kPortStateAssoc +
                       s.timers.size() * kPortStateTimer + s.queue.size() * kPortStateEvent;
  std::vector<std::byte> out(total);
  ByteWriter w(out);
  w.Put<uint32_t>(0, kPortStateMagic);
  w.Put<uint32_t>(4, kPortStateVersion);
  w.Put<uint32_t>(8, s.max_events);
  w.Put<uint32_t>(12, (s.had_fd_assoc ? kHadFdAssoc : 0) | (s.had_file_source ? kHadFileSource : 0) |
                          (s.alert ? kAlert : 0));
  w.Put<uint32_t>(16, s.alert_events);
  w.Put<uint32_t>(20, static_cast<uint32_t>(s.assocs.size()));
  w.Put<uint64_t>(24, s.alert_user);
  w.Put<uint32_t>(32, static_cast<uint32_t>(s.timers.size()));
  w.Put<uint32_t>(36, static_cast<uint32_t>(s.queue.size()));
  size_t at = kPortStateHeader;
  for (const PortState::Assoc& a : s.assocs) {
    w.Put<int32_t>(at, a.fd);
    w.Put<uint32_t>(at + 4, a.events);
    w.Put<uint64_t>(at + 8, a.user);
    w.Put<uint32_t>(at + 16, a.active ? 1 : 0);
    at += kPortStateAssoc;
  }
  for (const PortState::Timer& t : s.timers) {
    w.Put<int32_t>(at, t.id);
    w.Put<int32_t>(at + 4, t.clock);
    w.Put<int32_t>(at + 8, t.notify);
    w.Put<int32_t>(at + 12, t.pending);
    w.Put<uint64_t>(at + 16, t.user);
    w.Put<int32_t>(at + 24, t.overrun);
    w.Put<uint32_t>(at + 28, t.bound ? 0 : kTimerUnbound);
    w.Put<int64_t>(at + 32, t.next);
    w.Put<int64_t>(at + 40, t.interval);
    at += kPortStateTimer;
  }
  for (const PortState::Event& e : s.queue) {
    w.Put<uint8_t>(at, static_cast<uint8_t>(e.kind));
    w.Put<uint8_t>(at + 1, e.owner_only ? 1 : 0);
    w.Put<uint16_t>(at + 2, e.ev.source);
    w.Put<uint32_t>(at + 4, e.ref);
    w.Put<uint32_t>(at + 8, e.ev.events);
    w.Put<uint64_t>(at + 16, e.ev.object);
    w.Put<uint64_t>(at + 24, e.ev.user);
    at += kPortStateEvent;
  }
  return out;
}

Result<PortStateHeader> DecodePortStateHeader(std::span<const std::byte> bytes) {
  if (bytes.size() < kPortStateHeader) return Errno{EINVAL};
  ByteReader r(bytes);
  if (r.Get<uint32_t>(0) != kPortStateMagic || r.Get<uint32_t>(4) != kPortStateVersion) return Errno{EINVAL};
  if ((r.Get<uint32_t>(12) & ~(kHadFdAssoc | kHadFileSource | kAlert)) != 0) return Errno{EINVAL};
  if (r.Get<uint64_t>(40) != 0) return Errno{EINVAL};
  PortStateHeader h;
  h.assocs = r.Get<uint32_t>(20);
  h.timers = r.Get<uint32_t>(32);
  h.events = r.Get<uint32_t>(36);
  // 64-bit arithmetic: three 32-bit counts times small sizes cannot wrap.
  const uint64_t total = kPortStateHeader + uint64_t{h.assocs} * kPortStateAssoc +
                         uint64_t{h.timers} * kPortStateTimer + uint64_t{h.events} * kPortStateEvent;
  if (total > kMaxPortStateBytes) return Errno{EINVAL};
  h.total = static_cast<size_t>(total);
  return h;
}

Result<PortState> DecodePortState(std::span<const std::byte> bytes) {
  Result<PortStateHeader> h = DecodePortStateHeader(bytes);
  if (!h.ok()) return h.error();
  if (bytes.size() != h->total) return Errno{EINVAL};
  ByteReader r(bytes);
  PortState s;
  s.max_events = r.Get<uint32_t>(8);
  const uint32_t flags = r.Get<uint32_t>(12);
  s.had_fd_assoc = (flags & kHadFdAssoc) != 0;
  s.had_file_source = (flags & kHadFileSource) != 0;
  s.alert = (flags & kAlert) != 0;
  s.alert_events = r.Get<uint32_t>(16);
  s.alert_user = r.Get<uint64_t>(24);
  size_t at = kPortStateHeader;
  s.assocs.reserve(h->assocs);
  for (uint32_t i = 0; i < h->assocs; ++i, at += kPortStateAssoc) {
    const uint32_t active = r.Get<uint32_t>(at + 16);
    if (active > 1 || r.Get<uint32_t>(at + 20) != 0) return Errno{EINVAL};
    s.assocs.push_back(PortState::Assoc{r.Get<int32_t>(at), r.Get<uint32_t>(at + 4), r.Get<uint64_t>(at + 8),
                                        active == 1});
  }
  s.timers.reserve(h->timers);
  for (uint32_t i = 0; i < h->timers; ++i, at += kPortStateTimer) {
    const uint32_t timer_flags = r.Get<uint32_t>(at + 28);
    if ((timer_flags & ~kTimerUnbound) != 0) return Errno{EINVAL};
    PortState::Timer t;
    t.bound = (timer_flags & kTimerUnbound) == 0;
    t.id = r.Get<int32_t>(at);
    t.clock = r.Get<int32_t>(at + 4);
    t.notify = r.Get<int32_t>(at + 8);
    t.pending = r.Get<int32_t>(at + 12);
    t.user = r.Get<uint64_t>(at + 16);
    t.overrun = r.Get<int32_t>(at + 24);
    t.next = r.Get<int64_t>(at + 32);
    t.interval = r.Get<int64_t>(at + 40);
    s.timers.push_back(t);
  }
  s.queue.reserve(h->events);
  for (uint32_t i = 0; i < h->events; ++i, at += kPortStateEvent) {
    const uint8_t kind = r.Get<uint8_t>(at), owner_only = r.Get<uint8_t>(at + 1);
    if (kind > static_cast<uint8_t>(PortState::EventKind::kTimer) || owner_only > 1 ||
        r.Get<uint32_t>(at + 12) != 0) {
      return Errno{EINVAL};
    }
    PortState::Event e;
    e.kind = static_cast<PortState::EventKind>(kind);
    e.owner_only = owner_only == 1;
    e.ev.source = r.Get<uint16_t>(at + 2);
    e.ref = r.Get<uint32_t>(at + 4);
    e.ev.events = r.Get<uint32_t>(at + 8);
    e.ev.object = r.Get<uint64_t>(at + 16);
    e.ev.user = r.Get<uint64_t>(at + 24);
    s.queue.push_back(e);
  }
  return s;
}

Outcome AdoptPort(CallContext& ctx, const SyscallArgs& a) {
  const uint64_t addr = a.Ptr(1);
  const uint64_t size = a.Ulong(2);
  if (size < kPortStateHeader || size > kMaxPortStateBytes) return Outcome::Error(EINVAL);
  std::vector<std::byte> bytes(kPortStateHeader);
  if (!ctx.memory().Read(addr, bytes).ok()) return Outcome::Error(EFAULT);
  Result<PortStateHeader> h = DecodePortStateHeader(bytes);
  if (!h.ok()) return Outcome::Error(h.error().value);
  if (h->total != size) return Outcome::Error(EINVAL);
  bytes.resize(h->total);
  if (h->total > kPortStateHeader &&
      !ctx.memory().Read(addr + kPortStateHeader, std::span(bytes).subspan(kPortStateHeader)).ok()) {
    return Outcome::Error(EFAULT);
  }
  Result<PortState> state = DecodePortState(bytes);
  if (!state.ok()) return Outcome::Error(state.error().value);
  Result<emul::ObjectId> port = ctx.ports().ImportPort(ctx.caller(), *state);
  if (!port.ok()) return Outcome::Error(port.error().value);
  Outcome out = Outcome::NewObject(ObjectKind::kPort, *port);
  out.cloexec = true;  // a stand-in: the engine puts it at the port's own numbers
  return out;
}

}  // namespace evshim::abi::illumos
