// illumos formatters for `evshim trace` (abi/trace/format.h).
#include "abi/illumos/trace.h"

#include <fmt/format.h>

#include <array>
#include <cerrno>
#include <vector>

#include "abi/common/wire.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/layouts.h"
#include "abi/illumos/portfs.h"

namespace evshim::abi::illumos {

using trace::Answer;
using trace::Arg;
using trace::CallText;
using trace::CallView;
using trace::FlagName;
using trace::ResultText;
using trace::ValueName;

namespace {

constexpr std::array<FlagName, 10> kPollNames = {{
    {POLLIN, "POLLIN"},
    {POLLPRI, "POLLPRI"},
    {POLLOUT, "POLLOUT"},
    {POLLERR, "POLLERR"},
    {POLLHUP, "POLLHUP"},
    {POLLNVAL, "POLLNVAL"},
    {POLLRDNORM, "POLLRDNORM"},
    {POLLRDBAND, "POLLRDBAND"},
    {POLLWRBAND, "POLLWRBAND"},
    {POLLRDHUP, "POLLRDHUP"},
}};

constexpr std::array<ValueName, 7> kSourceNames = {{
    {PORT_SOURCE_AIO, "PORT_SOURCE_AIO"},
    {PORT_SOURCE_TIMER, "PORT_SOURCE_TIMER"},
    {PORT_SOURCE_USER, "PORT_SOURCE_USER"},
    {PORT_SOURCE_FD, "PORT_SOURCE_FD"},
    {PORT_SOURCE_ALERT, "PORT_SOURCE_ALERT"},
    {PORT_SOURCE_MQ, "PORT_SOURCE_MQ"},
    {PORT_SOURCE_FILE, "PORT_SOURCE_FILE"},
}};

constexpr std::array<ValueName, 3> kAlertNames = {{
    {PORT_ALERT_SET, "PORT_ALERT_SET"},
    {PORT_ALERT_UPDATE, "PORT_ALERT_UPDATE"},
    {PORT_ALERT_INVALID, "PORT_ALERT_INVALID"},
}};

// sys/time_impl.h (docs/rules-ports.md §3.2)
constexpr std::array<ValueName, 6> kClockNames = {{
    {0, "__CLOCK_REALTIME0"},
    {1, "CLOCK_VIRTUAL"},
    {2, "CLOCK_THREAD_CPUTIME_ID"},
    {3, "CLOCK_REALTIME"},
    {4, "CLOCK_MONOTONIC"},
    {5, "CLOCK_PROCESS_CPUTIME_ID"},
}};

// sys/siginfo.h (docs/rules-ports.md §3.3)
constexpr std::array<ValueName, 4> kSigevNames = {{
    {1, "SIGEV_NONE"},
    {2, "SIGEV_SIGNAL"},
    {3, "SIGEV_THREAD"},
    {4, "SIGEV_PORT"},
}};

constexpr std::array<FlagName, 1> kTimerFlags = {{{1, "TIMER_ABSTIME"}}};

constexpr size_t kMaxListShown = 32;

std::string Dec(int64_t v) { return fmt::format("{}", v); }

// The fd of a PORT_SOURCE_FD object is a uintptr_t: decimal when it can be an fd.
std::string FdObject(uint64_t object) {
  return object <= 0x7fffffffULL ? Dec(static_cast<int64_t>(object)) : trace::Hex(object);
}

std::string ReadTimespec(const CallView& call, uint64_t ptr) {
  if (ptr == 0) return "NULL";
  const TimespecLayout& l = Timespec(call.model());
  std::vector<std::byte> bytes(l.size);
  if (!call.Read(ptr, bytes)) return trace::Hex(ptr);
  ByteReader r(bytes);
  return trace::Timespec(r.GetLong(l.sec, call.pointer_size()), r.GetLong(l.nsec, call.pointer_size()));
}

// --- portfs ---

enum class Op : uint8_t { kCreate, kAssociate, kDissociate, kSend, kSendn, kGet, kGetn, kAlert, kDispatch, kOther };

Op OpOf(const SyscallArgs& a) {
  const uint32_t op = a.Uint(0);
  const uint32_t code = op & PORT_CODE_MASK;
  if (op & PORT_SYS_NOPORT) {
    if (code == PORT_CREATE) return Op::kCreate;
    if (code == PORT_SENDN) return Op::kSendn;
  }
  switch (code) {
    case PORT_ASSOCIATE: return Op::kAssociate;
    case PORT_DISSOCIATE: return Op::kDissociate;
    case PORT_SEND: return Op::kSend;
    case PORT_GET: return Op::kGet;
    case PORT_GETN: return Op::kGetn;
    case PORT_ALERT: return Op::kAlert;
    case PORT_DISPATCH: return Op::kDispatch;
    default: return Op::kOther;
  }
}

constexpr std::array<std::string_view, 10> kPortfsNames = {
    "port_create", "port_associate", "port_dissociate", "port_send", "port_sendn",
    "port_get",    "port_getn",      "port_alert",      "port_dispatch", "portfs"};

void PortfsEnter(const CallView& call, CallText& out) {
  const SyscallArgs& a = call.args();
  auto port = [&] { return Arg{"port", Dec(a.Int(1))}; };
  switch (OpOf(a)) {
    case Op::kCreate:
      out.name = "port_create";
      return;
    case Op::kAssociate:
    case Op::kDissociate: {
      const bool assoc = OpOf(a) == Op::kAssociate;
      out.name = assoc ? "port_associate" : "port_dissociate";
      const int32_t source = a.Int(2);
      const bool fd = source == PORT_SOURCE_FD;
      out.args.push_back(port());
      out.args.push_back({"source", trace::Enum(source, kSourceNames)});
      out.args.push_back({"object", fd ? FdObject(a.Ulong(3)) : trace::Hex(a.Ulong(3))});
      if (assoc) {
        const uint32_t events = static_cast<uint32_t>(a.Int(4));
        out.args.push_back({"events", fd ? PollNames(events) : trace::Hex(events)});
        out.args.push_back({"user", trace::Pointer(a.Ptr(5))});
      }
      return;
    }
    case Op::kSend:
      out.name = "port_send";
      out.args = {port(), {"events", Dec(a.Int(2))}, {"user", trace::Pointer(a.Ptr(3))}};
      return;
    case Op::kSendn: {
      out.name = "port_sendn";
      const uint32_t nent = a.Uint(3);
      std::string ports = trace::Pointer(a.Ptr(1));
      const size_t shown = std::min<size_t>(nent, kMaxListShown);
      std::vector<std::byte> raw(shown * 4);
      if (nent > 0 && nent <= PORT_MAX_LIST && call.Read(a.Ptr(1), raw)) {
        ByteReader r(raw);
        ports = "[";
        for (size_t i = 0; i < shown; ++i) ports += (i ? ", " : "") + Dec(r.Get<int32_t>(i * 4));
        ports += nent > shown ? ", ...]" : "]";
      }
      out.args = {{"ports", ports},
                  {"errors", trace::Pointer(a.Ptr(2)), true},
                  {"nent", Dec(nent)},
                  {"events", Dec(a.Int(4))},
                  {"user", trace::Pointer(a.Ptr(5))}};
      return;
    }
    case Op::kGet: {
      out.name = "port_get";
      // The timeout travels by value; a4 says whether there is one (port.c:607-613).
      std::string timeout = a.Ptr(5) == 0 ? "NULL" : trace::Timespec(a.Long(3), a.Long(4));
      out.args = {port(), {"pe", trace::Pointer(a.Ptr(2)), true}, {"timeout", timeout}};
      return;
    }
    case Op::kGetn:
      out.name = "port_getn";
      out.args = {port(),
                  {"list", trace::Pointer(a.Ptr(2)), true},
                  {"max", Dec(a.Uint(3))},
                  {"nget", Dec(a.Uint(4))},
                  {"timeout", ReadTimespec(call, a.Ptr(5))}};
      return;
    case Op::kAlert:
      out.name = "port_alert";
      out.args = {port(),
                  {"flags", trace::Enum(a.Uint(2), kAlertNames)},
                  {"events", Dec(a.Int(3))},
                  {"user", trace::Pointer(a.Ptr(4))}};
      return;
    case Op::kDispatch:
      out.name = "port_dispatch";
      out.args = {port(), {"a1", trace::Hex(a.Ulong(2))}, {"a2", trace::Hex(a.Ulong(3))},
                  {"a3", trace::Hex(a.Ulong(4))}, {"a4", trace::Hex(a.Ulong(5))}};
      return;
    case Op::kOther:
      out.name = "portfs";
      out.args = {{"opcode", trace::Hex(a.Uint(0))}};
      for (int i = 1; i < 6; ++i) {
        static constexpr std::string_view kNames[] = {"", "a0", "a1", "a2", "a3", "a4"};
        out.args.push_back({kNames[i], trace::Hex(a.Ulong(i))});
      }
      return;
  }
}

// The events a retrieval wrote at `list`; empty when it wrote none.
std::string EventsWritten(const CallView& call, uint64_t list, uint32_t count, bool array) {
  const size_t size = PortEvent(call.model()).size;
  const size_t shown = std::min<size_t>(count, kMaxListShown);
  std::vector<std::byte> bytes(size * shown);
  if (count == 0 || !call.Written(list, bytes)) return {};
  std::string s = array ? "[" : "";
  for (size_t i = 0; i < shown; ++i) {
    if (i) s += ", ";
    s += PortEventText(call.model(), std::span(bytes).subspan(i * size, size));
  }
  if (array) s += count > shown ? ", ...]" : "]";
  return s;
}

void PortfsExit(const CallView& call, const CallText& entered, const Answer& answer, ResultText& out) {
  (void)entered;
  const SyscallArgs& a = call.args();
  trace::DefaultResult(answer, out);
  if (answer.error != 0) return;
  switch (OpOf(a)) {
    case Op::kGet:
      if (std::string ev = EventsWritten(call, a.Ptr(2), 1, false); !ev.empty()) out.outputs.emplace_back(1, ev);
      return;
    case Op::kGetn: {
      // The two results (docs/abi.md "Two results"), as the library decodes them.
      const uint64_t v = static_cast<uint64_t>(answer.value);
      uint32_t count;
      bool etime;
      if (call.model() == DataModel::kLp64) {
        count = static_cast<uint32_t>(v);
        etime = static_cast<int>(v >> 32) == kEtime;
      } else {
        count = static_cast<uint32_t>(v) & ~kIlp32EtimeBit;
        etime = (v & kIlp32EtimeBit) != 0;
      }
      if (etime) {
        out.text = fmt::format("{} (nget={})", trace::ErrorText(ETIME), count);
        out.failed = true;
        out.errname = trace::ErrnoName(ETIME);
      } else {
        out.text = fmt::format("0 (nget={})", count);
      }
      if (a.Uint(3) != 0) {
        if (std::string ev = EventsWritten(call, a.Ptr(2), count, true); !ev.empty()) {
          out.outputs.emplace_back(1, ev);
        }
      }
      return;
    }
    case Op::kSendn: {
      // errors[] is written only when some send failed (port.c:1045-1050).
      const uint32_t nent = a.Uint(3);
      const size_t shown = std::min<size_t>(nent, kMaxListShown);
      std::vector<std::byte> raw(shown * 4);
      if (nent == 0 || !call.Written(a.Ptr(2), raw)) return;
      ByteReader r(raw);
      std::string s = "[";
      for (size_t i = 0; i < shown; ++i) {
        const int32_t e = r.Get<int32_t>(i * 4);
        s += i ? ", " : "";
        s += e == 0 ? std::string("0") : std::string(trace::ErrnoName(e));
      }
      s += nent > shown ? ", ...]" : "]";
      out.outputs.emplace_back(1, s);
      return;
    }
    case Op::kCreate:
    case Op::kAssociate:
    case Op::kDissociate:
    case Op::kSend:
    case Op::kAlert:
    case Op::kDispatch:
    case Op::kOther:
      return;
  }
}

// --- timers (sys/timer.h, docs/rules-ports.md §3) ---

std::string SigeventText(const CallView& call, uint64_t ptr) {
  if (ptr == 0) return "NULL";
  const size_t ps = call.pointer_size();
  // The kernel copies the old sigevent: notify, signo, value (T:607).
  std::vector<std::byte> bytes(8 + ps);
  if (!call.Read(ptr, bytes)) return trace::Hex(ptr);
  ByteReader r(bytes);
  const int32_t notify = r.Get<int32_t>(0);
  const int32_t signo = r.Get<int32_t>(4);
  const uint64_t value = r.GetPtr(8, ps);
  std::string name = trace::Enum(notify, kSigevNames);
  if (notify == 4) {  // SIGEV_PORT: sival_ptr is a port_notify_t
    const PortNotifyLayout& l = call.model() == DataModel::kLp64 ? kPortNotifyLp64 : kPortNotifyIlp32;
    std::vector<std::byte> pn(l.size);
    if (value != 0 && call.Read(value, pn)) {
      ByteReader p(pn);
      return fmt::format("{{sigev_notify={}, portnfy_port={}, portnfy_user={}}}", name,
                         p.Get<int32_t>(l.port), trace::Pointer(p.GetPtr(l.user, ps)));
    }
    return fmt::format("{{sigev_notify={}, sigev_value={}}}", name, trace::Pointer(value));
  }
  if (notify == 1) return fmt::format("{{sigev_notify={}}}", name);
  return fmt::format("{{sigev_notify={}, sigev_signo={}, sigev_value={}}}", name, signo,
                     trace::Pointer(value));
}

std::string ItimerspecFrom(DataModel m, std::span<const std::byte> bytes) {
  const size_t ps = PointerSize(m);
  ByteReader r(bytes);
  return fmt::format("{{it_interval={}, it_value={}}}", trace::Timespec(r.GetLong(0, ps), r.GetLong(ps, ps)),
                     trace::Timespec(r.GetLong(2 * ps, ps), r.GetLong(3 * ps, ps)));
}

std::string ReadItimerspec(const CallView& call, uint64_t ptr) {
  if (ptr == 0) return "NULL";
  std::vector<std::byte> bytes(4 * call.pointer_size());
  if (!call.Read(ptr, bytes)) return trace::Hex(ptr);
  return ItimerspecFrom(call.model(), bytes);
}

void WrittenItimerspec(const CallView& call, uint64_t ptr, size_t index, ResultText& out) {
  std::vector<std::byte> bytes(4 * call.pointer_size());
  if (ptr != 0 && call.Written(ptr, bytes)) out.outputs.emplace_back(index, ItimerspecFrom(call.model(), bytes));
}

Arg TimerId(const SyscallArgs& a) { return {"timerid", Dec(a.Int(0))}; }

void TimerCreateEnter(const CallView& call, CallText& out) {
  const SyscallArgs& a = call.args();
  out.name = "timer_create";
  out.args = {{"clock", trace::Enum(a.Int(0), kClockNames)},
              {"evp", SigeventText(call, a.Ptr(1))},
              {"timerid", trace::Pointer(a.Ptr(2)), true}};
}
void TimerCreateExit(const CallView& call, const CallText&, const Answer& answer, ResultText& out) {
  trace::DefaultResult(answer, out);
  std::array<std::byte, 4> id{};
  if (answer.error == 0 && call.Written(call.args().Ptr(2), id)) {
    out.outputs.emplace_back(2, fmt::format("[{}]", ByteReader(id).Get<int32_t>(0)));
  }
}

void TimerDeleteEnter(const CallView& call, CallText& out) {
  out.name = "timer_delete";
  out.args = {TimerId(call.args())};
}
void TimerGetoverrunEnter(const CallView& call, CallText& out) {
  out.name = "timer_getoverrun";
  out.args = {TimerId(call.args())};
}
void PlainExit(const CallView&, const CallText&, const Answer& answer, ResultText& out) {
  trace::DefaultResult(answer, out);
}

void TimerSettimeEnter(const CallView& call, CallText& out) {
  const SyscallArgs& a = call.args();
  out.name = "timer_settime";
  out.args = {TimerId(a),
              {"flags", trace::Flags(a.Uint(1), kTimerFlags)},
              {"value", ReadItimerspec(call, a.Ptr(2))},
              {"ovalue", trace::Pointer(a.Ptr(3)), true}};
}
void TimerSettimeExit(const CallView& call, const CallText&, const Answer& answer, ResultText& out) {
  trace::DefaultResult(answer, out);
  if (answer.error == 0) WrittenItimerspec(call, call.args().Ptr(3), 3, out);
}

void TimerGettimeEnter(const CallView& call, CallText& out) {
  out.name = "timer_gettime";
  out.args = {TimerId(call.args()), {"value", trace::Pointer(call.args().Ptr(1)), true}};
}
void TimerGettimeExit(const CallView& call, const CallText&, const Answer& answer, ResultText& out) {
  trace::DefaultResult(answer, out);
  if (answer.error == 0) WrittenItimerspec(call, call.args().Ptr(1), 1, out);
}

constexpr std::array<std::string_view, 5> kTimerNames = {
    "timer_create", "timer_delete", "timer_settime", "timer_gettime", "timer_getoverrun"};

void TimerEnter(const CallView& call, CallText& out) {
  // One formatter for the five timer entries: the table preset the name.
  if (out.name == "timer_create") return TimerCreateEnter(call, out);
  if (out.name == "timer_delete") return TimerDeleteEnter(call, out);
  if (out.name == "timer_settime") return TimerSettimeEnter(call, out);
  if (out.name == "timer_gettime") return TimerGettimeEnter(call, out);
  return TimerGetoverrunEnter(call, out);
}

void TimerExit(const CallView& call, const CallText& entered, const Answer& answer, ResultText& out) {
  if (entered.name == "timer_create") return TimerCreateExit(call, entered, answer, out);
  if (entered.name == "timer_settime") return TimerSettimeExit(call, entered, answer, out);
  if (entered.name == "timer_gettime") return TimerGettimeExit(call, entered, answer, out);
  return PlainExit(call, entered, answer, out);
}

}  // namespace

std::string PollNames(uint32_t bits) { return trace::Flags(bits, kPollNames); }

std::string SourceName(int32_t source) { return trace::Enum(source, kSourceNames); }

std::string PortEventText(DataModel m, std::span<const std::byte> bytes) {
  const PortEventLayout& l = PortEvent(m);
  ByteReader r(bytes);
  const uint32_t events = r.Get<uint32_t>(l.events);
  const uint16_t source = r.Get<uint16_t>(l.source);
  const uint64_t object = r.GetPtr(l.object, PointerSize(m));
  const uint64_t user = r.GetPtr(l.user, PointerSize(m));
  std::string ev, obj;
  switch (source) {
    case PORT_SOURCE_FD:
      ev = PollNames(events);
      obj = FdObject(object);
      break;
    case PORT_SOURCE_USER:  // events: the sender's value; object: the sender's pid
      ev = Dec(static_cast<int32_t>(events));
      obj = Dec(static_cast<int64_t>(object));
      break;
    default:
      ev = Dec(static_cast<int32_t>(events));
      obj = trace::Hex(object);
      break;
  }
  return fmt::format("{{source={}, events={}, object={}, user={}}}", SourceName(source), ev, obj,
                     trace::Pointer(user));
}

const trace::Formatter kPortfsTrace{&PortfsEnter, &PortfsExit, kPortfsNames};
const trace::Formatter kTimerTrace{&TimerEnter, &TimerExit, kTimerNames};

}  // namespace evshim::abi::illumos
