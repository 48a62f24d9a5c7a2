// BSD kqueue formatters for `evshim trace` (abi/trace/format.h). Records are
// read field by field at the offsets of abi/bsd/kevent.h, as the program
// wrote them (no EV_SYSFLAGS masking, no filter mapping: the trace shows the
// bytes, the handler decides what they mean).
#include "abi/bsd/trace.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>
#include <vector>

#include "abi/common/wire.h"
#include "abi/dragonfly/constants.h"
#include "abi/freebsd/constants.h"
#include "abi/openbsd/constants.h"

namespace evshim::abi::bsd {

using trace::Answer;
using trace::Arg;
using trace::CallText;
using trace::CallView;
using trace::FlagName;
using trace::ResultText;
using trace::ValueName;

namespace {

constexpr size_t kMaxListShown = 32;

// --- names, per personality (each spelled from its own constants.h) ---

namespace fb = freebsd;
namespace ob = openbsd;
namespace df = dragonfly;

constexpr std::array<ValueName, 13> kFreebsdFilters = {{
    {fb::EVFILT_READ, "EVFILT_READ"},
    {fb::EVFILT_WRITE, "EVFILT_WRITE"},
    {fb::EVFILT_AIO, "EVFILT_AIO"},
    {fb::EVFILT_VNODE, "EVFILT_VNODE"},
    {fb::EVFILT_PROC, "EVFILT_PROC"},
    {fb::EVFILT_SIGNAL, "EVFILT_SIGNAL"},
    {fb::EVFILT_TIMER, "EVFILT_TIMER"},
    {fb::EVFILT_PROCDESC, "EVFILT_PROCDESC"},
    {fb::EVFILT_FS, "EVFILT_FS"},
    {fb::EVFILT_LIO, "EVFILT_LIO"},
    {fb::EVFILT_USER, "EVFILT_USER"},
    {fb::EVFILT_SENDFILE, "EVFILT_SENDFILE"},
    {fb::EVFILT_EMPTY, "EVFILT_EMPTY"},
}};
constexpr std::array<ValueName, 10> kOpenbsdFilters = {{
    {ob::EVFILT_READ, "EVFILT_READ"},
    {ob::EVFILT_WRITE, "EVFILT_WRITE"},
    {ob::EVFILT_AIO, "EVFILT_AIO"},
    {ob::EVFILT_VNODE, "EVFILT_VNODE"},
    {ob::EVFILT_PROC, "EVFILT_PROC"},
    {ob::EVFILT_SIGNAL, "EVFILT_SIGNAL"},
    {ob::EVFILT_TIMER, "EVFILT_TIMER"},
    {ob::EVFILT_DEVICE, "EVFILT_DEVICE"},
    {ob::EVFILT_EXCEPT, "EVFILT_EXCEPT"},
    {ob::EVFILT_USER, "EVFILT_USER"},
}};
constexpr std::array<ValueName, 10> kDragonflyFilters = {{
    {df::EVFILT_READ, "EVFILT_READ"},
    {df::EVFILT_WRITE, "EVFILT_WRITE"},
    {df::EVFILT_AIO, "EVFILT_AIO"},
    {df::EVFILT_VNODE, "EVFILT_VNODE"},
    {df::EVFILT_PROC, "EVFILT_PROC"},
    {df::EVFILT_SIGNAL, "EVFILT_SIGNAL"},
    {df::EVFILT_TIMER, "EVFILT_TIMER"},
    {df::EVFILT_EXCEPT, "EVFILT_EXCEPT"},
    {df::EVFILT_USER, "EVFILT_USER"},
    {df::EVFILT_FS, "EVFILT_FS"},
}};

// EV_ERROR before EV_FLAG2 (FreeBSD: the same bit; a returned record means EV_ERROR).
constexpr std::array<FlagName, 14> kFreebsdEv = {{
    {fb::EV_ADD, "EV_ADD"},
    {fb::EV_DELETE, "EV_DELETE"},
    {fb::EV_ENABLE, "EV_ENABLE"},
    {fb::EV_DISABLE, "EV_DISABLE"},
    {fb::EV_ONESHOT, "EV_ONESHOT"},
    {fb::EV_CLEAR, "EV_CLEAR"},
    {fb::EV_RECEIPT, "EV_RECEIPT"},
    {fb::EV_DISPATCH, "EV_DISPATCH"},
    {fb::EV_FORCEONESHOT, "EV_FORCEONESHOT"},
    {fb::EV_KEEPUDATA, "EV_KEEPUDATA"},
    {fb::EV_DROP, "EV_DROP"},
    {fb::EV_FLAG1, "EV_FLAG1"},
    {fb::EV_ERROR, "EV_ERROR"},
    {fb::EV_EOF, "EV_EOF"},
}};
constexpr std::array<FlagName, 11> kOpenbsdEv = {{
    {ob::EV_ADD, "EV_ADD"},
    {ob::EV_DELETE, "EV_DELETE"},
    {ob::EV_ENABLE, "EV_ENABLE"},
    {ob::EV_DISABLE, "EV_DISABLE"},
    {ob::EV_ONESHOT, "EV_ONESHOT"},
    {ob::EV_CLEAR, "EV_CLEAR"},
    {ob::EV_RECEIPT, "EV_RECEIPT"},
    {ob::EV_DISPATCH, "EV_DISPATCH"},
    {ob::EV_FLAG1, "EV_FLAG1"},
    {ob::EV_ERROR, "EV_ERROR"},
    {ob::EV_EOF, "EV_EOF"},
}};
constexpr std::array<FlagName, 13> kDragonflyEv = {{
    {df::EV_ADD, "EV_ADD"},
    {df::EV_DELETE, "EV_DELETE"},
    {df::EV_ENABLE, "EV_ENABLE"},
    {df::EV_DISABLE, "EV_DISABLE"},
    {df::EV_ONESHOT, "EV_ONESHOT"},
    {df::EV_CLEAR, "EV_CLEAR"},
    {df::EV_RECEIPT, "EV_RECEIPT"},
    {df::EV_DISPATCH, "EV_DISPATCH"},
    {df::EV_HUP, "EV_HUP"},
    {df::EV_NODATA, "EV_NODATA"},
    {df::EV_FLAG1, "EV_FLAG1"},
    {df::EV_ERROR, "EV_ERROR"},
    {df::EV_EOF, "EV_EOF"},
}};

// EVFILT_READ / EVFILT_WRITE / EVFILT_EXCEPT.
constexpr std::array<FlagName, 2> kFreebsdRead = {{{fb::NOTE_LOWAT, "NOTE_LOWAT"},
                                                   {fb::NOTE_FILE_POLL, "NOTE_FILE_POLL"}}};
constexpr std::array<FlagName, 2> kOpenbsdRead = {{{ob::NOTE_LOWAT, "NOTE_LOWAT"}, {ob::NOTE_EOF, "NOTE_EOF"}}};
constexpr std::array<FlagName, 1> kDragonflyRead = {{{df::NOTE_LOWAT, "NOTE_LOWAT"}}};
constexpr std::array<FlagName, 1> kLowat = {{{fb::NOTE_LOWAT, "NOTE_LOWAT"}}};
constexpr std::array<FlagName, 1> kOpenbsdExcept = {{{ob::NOTE_OOB, "NOTE_OOB"}}};
constexpr std::array<FlagName, 1> kDragonflyExcept = {{{df::NOTE_OOB, "NOTE_OOB"}}};

// EVFILT_VNODE.
constexpr std::array<FlagName, 11> kFreebsdVnode = {{
    {fb::NOTE_DELETE, "NOTE_DELETE"},
    {fb::NOTE_WRITE, "NOTE_WRITE"},
    {fb::NOTE_EXTEND, "NOTE_EXTEND"},
    {fb::NOTE_ATTRIB, "NOTE_ATTRIB"},
    {fb::NOTE_LINK, "NOTE_LINK"},
    {fb::NOTE_RENAME, "NOTE_RENAME"},
    {fb::NOTE_REVOKE, "NOTE_REVOKE"},
    {fb::NOTE_OPEN, "NOTE_OPEN"},
    {fb::NOTE_CLOSE, "NOTE_CLOSE"},
    {fb::NOTE_CLOSE_WRITE, "NOTE_CLOSE_WRITE"},
    {fb::NOTE_READ, "NOTE_READ"},
}};
constexpr std::array<FlagName, 8> kOpenbsdVnode = {{
    {ob::NOTE_DELETE, "NOTE_DELETE"},
    {ob::NOTE_WRITE, "NOTE_WRITE"},
    {ob::NOTE_EXTEND, "NOTE_EXTEND"},
    {ob::NOTE_ATTRIB, "NOTE_ATTRIB"},
    {ob::NOTE_LINK, "NOTE_LINK"},
    {ob::NOTE_RENAME, "NOTE_RENAME"},
    {ob::NOTE_REVOKE, "NOTE_REVOKE"},
    {ob::NOTE_TRUNCATE, "NOTE_TRUNCATE"},
}};
constexpr std::array<FlagName, 7> kDragonflyVnode = {{
    {df::NOTE_DELETE, "NOTE_DELETE"},
    {df::NOTE_WRITE, "NOTE_WRITE"},
    {df::NOTE_EXTEND, "NOTE_EXTEND"},
    {df::NOTE_ATTRIB, "NOTE_ATTRIB"},
    {df::NOTE_LINK, "NOTE_LINK"},
    {df::NOTE_RENAME, "NOTE_RENAME"},
    {df::NOTE_REVOKE, "NOTE_REVOKE"},
}};

// EVFILT_PROC: the same values on the three kernels.
static_assert(fb::NOTE_EXIT == ob::NOTE_EXIT && fb::NOTE_EXIT == df::NOTE_EXIT);
static_assert(fb::NOTE_CHILD == ob::NOTE_CHILD && fb::NOTE_CHILD == df::NOTE_CHILD);
constexpr std::array<FlagName, 6> kProc = {{
    {fb::NOTE_EXIT, "NOTE_EXIT"},
    {fb::NOTE_FORK, "NOTE_FORK"},
    {fb::NOTE_EXEC, "NOTE_EXEC"},
    {fb::NOTE_TRACK, "NOTE_TRACK"},
    {fb::NOTE_TRACKERR, "NOTE_TRACKERR"},
    {fb::NOTE_CHILD, "NOTE_CHILD"},
}};

// EVFILT_USER: the trigger, the two-bit control (FFCOPY = FFAND|FFOR, so it
// is listed first), then the user's 24 bits in hex.
static_assert(fb::NOTE_FFCOPY == ob::NOTE_FFCOPY && fb::NOTE_FFCOPY == df::NOTE_FFCOPY);
static_assert(fb::NOTE_TRIGGER == ob::NOTE_TRIGGER && fb::NOTE_TRIGGER == df::NOTE_TRIGGER);
// EVFILT_FS's hints: the same in FreeBSD's and DragonFly's sys/mount.h.
static_assert(fb::VQ_MOUNT == df::VQ_MOUNT && fb::VQ_UNMOUNT == df::VQ_UNMOUNT);
constexpr std::array<FlagName, 2> kFs = {{{fb::VQ_MOUNT, "VQ_MOUNT"}, {fb::VQ_UNMOUNT, "VQ_UNMOUNT"}}};
constexpr std::array<FlagName, 4> kUser = {{
    {fb::NOTE_TRIGGER, "NOTE_TRIGGER"},
    {fb::NOTE_FFCOPY, "NOTE_FFCOPY"},
    {fb::NOTE_FFAND, "NOTE_FFAND"},
    {fb::NOTE_FFOR, "NOTE_FFOR"},
}};

// EVFILT_TIMER. FreeBSD: one bit per unit. OpenBSD: an enumeration in the
// low two bits (0 = milliseconds, shown only with other bits). DragonFly:
// milliseconds only, fflags unused (hex).
constexpr std::array<FlagName, 5> kFreebsdTimer = {{
    {fb::NOTE_SECONDS, "NOTE_SECONDS"},
    {fb::NOTE_MSECONDS, "NOTE_MSECONDS"},
    {fb::NOTE_USECONDS, "NOTE_USECONDS"},
    {fb::NOTE_NSECONDS, "NOTE_NSECONDS"},
    {fb::NOTE_ABSTIME, "NOTE_ABSTIME"},
}};
constexpr std::array<FlagName, 1> kOpenbsdTimerBits = {{{ob::NOTE_ABSTIME, "NOTE_ABSTIME"}}};

constexpr std::array<FlagName, 2> kFreebsdKqueuex = {
    {{fb::KQUEUE_CLOEXEC, "KQUEUE_CLOEXEC"}, {fb::KQUEUE_CPONFORK, "KQUEUE_CPONFORK"}}};
constexpr std::array<FlagName, 2> kOpenbsdKqueue1 = {{{ob::O_NONBLOCK, "O_NONBLOCK"}, {ob::O_CLOEXEC, "O_CLOEXEC"}}};

const KqueuePersonality& Kernel(Personality p) {
  switch (p) {
    case Personality::kOpenbsd: return Openbsd();
    case Personality::kDragonfly: return Dragonfly();
    case Personality::kFreebsd:
    case Personality::kIllumos: break;
  }
  return Freebsd();
}

// The canonical filter of a wire filter number, if the personality has it.
std::optional<emul::KFilter> Canonical(Personality p, int16_t filter) {
  return CanonicalFilter(Kernel(p), filter);
}

std::string Dec(int64_t v) { return fmt::format("{}", v); }

// An ident: decimal when it can be a descriptor, pid or timer id.
std::string Ident(uint64_t v) { return v <= 0x7fffffffULL ? Dec(static_cast<int64_t>(v)) : trace::Hex(v); }

// A host signal number (EVFILT_SIGNAL idents and the signal hook are the
// program's glibc numbers): SIGUSR1, or the number.
std::string SignalName(int64_t sig) {
  if (sig > 0 && sig < 65) {
    if (const char* abbrev = sigabbrev_np(static_cast<int>(sig)); abbrev != nullptr) {
      return fmt::format("SIG{}", abbrev);
    }
  }
  return Dec(sig);
}

// A returned EV_ERROR record's data: the host errno the program sees.
std::string ErrnoData(int64_t data) {
  if (data == 0) return "0";
  if (data > 0 && data < 4096 && strerrorname_np(static_cast<int>(data)) != nullptr) {
    return std::string(trace::ErrnoName(static_cast<int>(data)));
  }
  return Dec(data);
}

std::string ReadTimeout(const CallView& call, uint64_t ptr) {
  if (ptr == 0) return "NULL";
  const TimespecLayout& l = Timespec(Kernel(call.personality()), call.model());
  std::vector<std::byte> bytes(l.size);
  if (!call.Read(ptr, bytes)) return trace::Hex(ptr);
  auto [sec, nsec] = DecodeTimespec(l, bytes);
  return trace::Timespec(sec, nsec);
}

// `count` records at `ptr` as a list, from `bytes` (the first shown ones).
std::string KeventList(Personality p, const KeventLayout& l, std::span<const std::byte> bytes, size_t count,
                       bool returned) {
  const size_t shown = bytes.size() / l.size;
  std::string s = "[";
  for (size_t i = 0; i < shown; ++i) {
    if (i) s += ", ";
    s += KeventText(p, l, bytes.subspan(i * l.size, l.size), returned);
  }
  return s + (count > shown ? ", ...]" : "]");
}

// --- kevent(kq, changelist, nchanges, eventlist, nevents, timeout) ---

void KeventEnterAbi(const CallView& call, CallText& out, KeventAbi abi) {
  const SyscallArgs& a = call.args();
  const KeventLayout& l = Layout(Kernel(call.personality()), call.model(), abi);
  const uint64_t changelist = a.Ptr(1);
  const int32_t nchanges = a.Int(2);
  std::string changes = trace::Pointer(changelist);
  if (changelist != 0 && nchanges > 0) {
    const size_t shown = std::min<size_t>(static_cast<size_t>(nchanges), kMaxListShown);
    std::vector<std::byte> bytes(shown * l.size);
    if (call.Read(changelist, bytes)) {
      changes = KeventList(call.personality(), l, bytes, static_cast<size_t>(nchanges), false);
    }
  }
  out.args = {{"kq", Dec(a.Int(0))},
              {"changelist", changes},
              {"nchanges", Dec(nchanges)},
              {"eventlist", trace::Pointer(a.Ptr(3)), true},
              {"nevents", Dec(a.Int(4))},
              {"timeout", ReadTimeout(call, a.Ptr(5))}};
}

void KeventExitAbi(const CallView& call, const Answer& answer, ResultText& out, KeventAbi abi) {
  trace::DefaultResult(answer, out);
  if (answer.error != 0 || answer.value <= 0) return;
  const KeventLayout& l = Layout(Kernel(call.personality()), call.model(), abi);
  const size_t count = static_cast<size_t>(answer.value);
  const size_t shown = std::min(count, kMaxListShown);
  std::vector<std::byte> bytes(shown * l.size);
  const uint64_t eventlist = call.args().Ptr(3);
  if (eventlist == 0 || !call.Written(eventlist, bytes)) return;
  out.outputs.emplace_back(3, KeventList(call.personality(), l, bytes, count, true));
}

void KeventEnter(const CallView& call, CallText& out) {
  out.name = "kevent";
  KeventEnterAbi(call, out, KeventAbi::kCurrent);
}
void KeventExit(const CallView& call, const CallText&, const Answer& answer, ResultText& out) {
  KeventExitAbi(call, answer, out, KeventAbi::kCurrent);
}
void Kevent11Enter(const CallView& call, CallText& out) {
  out.name = "freebsd11_kevent";
  KeventEnterAbi(call, out, KeventAbi::kFreebsd11);
}
void Kevent11Exit(const CallView& call, const CallText&, const Answer& answer, ResultText& out) {
  KeventExitAbi(call, answer, out, KeventAbi::kFreebsd11);
}

// --- kqueue(), kqueuex(flags) / kqueue1(flags), evshim_kqueue_signal(signo) ---

void KqueueEnter(const CallView&, CallText& out) { out.name = "kqueue"; }

void KqueueFlagsEnter(const CallView& call, CallText& out) {
  const uint32_t flags = call.args().Uint(0);
  if (call.personality() == Personality::kOpenbsd) {
    out.name = "kqueue1";
    out.args = {{"flags", trace::Flags(flags, kOpenbsdKqueue1)}};
  } else {
    out.name = "kqueuex";
    out.args = {{"flags", trace::Flags(flags, kFreebsdKqueuex)}};
  }
}

void SignalEnter(const CallView& call, CallText& out) {
  out.name = "evshim_kqueue_signal";
  out.args = {{"signo", SignalName(call.args().Int(0))}};
}

void FdCloseEnter(const CallView& call, CallText& out) {
  out.name = "evshim_kqueue_fdclose";
  out.args = {{"fd", Dec(call.args().Int(0))}};
}

void SettleEnter(const CallView&, CallText& out) { out.name = "evshim_kqueue_settle"; }

void ForkEnter(const CallView& call, CallText& out) {
  out.name = "evshim_kqueue_fork";
  const int32_t phase = call.args().Int(0);
  out.args = {{"phase", phase == 1 ? std::string("prepare") : phase == 2 ? std::string("child") : Dec(phase)},
              {"token", Dec(call.args().Uint(1))}};
}

void PlainExit(const CallView&, const CallText&, const Answer& answer, ResultText& out) {
  trace::DefaultResult(answer, out);
}

constexpr std::array<std::string_view, 1> kKqueueNames = {"kqueue"};
constexpr std::array<std::string_view, 2> kKqueueFlagsNames = {"kqueuex", "kqueue1"};
constexpr std::array<std::string_view, 1> kKeventNames = {"kevent"};
constexpr std::array<std::string_view, 1> kKevent11Names = {"freebsd11_kevent"};
constexpr std::array<std::string_view, 1> kSignalNames = {"evshim_kqueue_signal"};
constexpr std::array<std::string_view, 1> kForkNames = {"evshim_kqueue_fork"};
constexpr std::array<std::string_view, 1> kFdCloseNames = {"evshim_kqueue_fdclose"};
constexpr std::array<std::string_view, 1> kSettleNames = {"evshim_kqueue_settle"};

}  // namespace

std::string FilterName(Personality p, int16_t filter) {
  switch (p) {
    case Personality::kOpenbsd: return trace::Enum(filter, kOpenbsdFilters);
    case Personality::kDragonfly: return trace::Enum(filter, kDragonflyFilters);
    case Personality::kFreebsd:
    case Personality::kIllumos: break;
  }
  return trace::Enum(filter, kFreebsdFilters);
}

std::string EvFlagNames(Personality p, uint16_t flags) {
  switch (p) {
    case Personality::kOpenbsd: return trace::Flags(flags, kOpenbsdEv);
    case Personality::kDragonfly: return trace::Flags(flags, kDragonflyEv);
    case Personality::kFreebsd:
    case Personality::kIllumos: break;
  }
  return trace::Flags(flags, kFreebsdEv);
}

std::string NoteNames(Personality p, int16_t filter, uint32_t fflags) {
  const std::optional<emul::KFilter> f = Canonical(p, filter);
  if (!f) return trace::Hex(fflags);
  const bool ob = p == Personality::kOpenbsd;
  const bool dfly = p == Personality::kDragonfly;
  switch (*f) {
    case emul::KFilter::kRead:
      return ob ? trace::Flags(fflags, kOpenbsdRead)
                : dfly ? trace::Flags(fflags, kDragonflyRead) : trace::Flags(fflags, kFreebsdRead);
    case emul::KFilter::kWrite: return trace::Flags(fflags, kLowat);
    case emul::KFilter::kExcept:
      return ob ? trace::Flags(fflags, kOpenbsdExcept) : trace::Flags(fflags, kDragonflyExcept);
    case emul::KFilter::kVnode:
      return ob ? trace::Flags(fflags, kOpenbsdVnode)
                : dfly ? trace::Flags(fflags, kDragonflyVnode) : trace::Flags(fflags, kFreebsdVnode);
    case emul::KFilter::kProc: return trace::Flags(fflags, kProc);
    case emul::KFilter::kSignal: return trace::Hex(fflags);
    case emul::KFilter::kUser: return trace::Flags(fflags, kUser);
    case emul::KFilter::kFs: return trace::Flags(fflags, kFs);
    case emul::KFilter::kTimer:
      if (dfly) return trace::Hex(fflags);
      if (!ob) return trace::Flags(fflags, kFreebsdTimer);
      {
        static constexpr std::string_view kUnits[] = {"NOTE_MSECONDS", "NOTE_SECONDS", "NOTE_USECONDS",
                                                      "NOTE_NSECONDS"};
        const uint32_t unit = fflags & ob::NOTE_TIMER_UNITMASK;
        const uint32_t rest = fflags & ~ob::NOTE_TIMER_UNITMASK;
        if (unit == 0) return trace::Flags(rest, kOpenbsdTimerBits);
        std::string s(kUnits[unit]);
        if (rest != 0) s += "|" + trace::Flags(rest, kOpenbsdTimerBits);
        return s;
      }
  }
  return trace::Hex(fflags);
}

std::string KeventText(Personality p, const KeventLayout& l, std::span<const std::byte> bytes, bool returned) {
  ByteReader r(bytes);
  const uint64_t ident = r.GetField(l.ident);
  const auto filter = static_cast<int16_t>(r.GetField(l.filter));
  const auto flags = static_cast<uint16_t>(r.GetField(l.flags));
  const auto fflags = static_cast<uint32_t>(r.GetField(l.fflags));
  const auto data = static_cast<int64_t>(r.GetField(l.data));
  const uint64_t udata = r.GetField(l.udata);
  const bool is_signal = Canonical(p, filter) == emul::KFilter::kSignal;
  // EV_ERROR has the same value on the three kernels.
  static_assert(fb::EV_ERROR == ob::EV_ERROR && fb::EV_ERROR == df::EV_ERROR);
  const bool error_record = returned && (flags & fb::EV_ERROR) != 0;
  std::string s = fmt::format("{{ident={}, {}, {}, fflags={}, data={}, udata={}",
                              is_signal ? SignalName(static_cast<int64_t>(ident)) : Ident(ident),
                              FilterName(p, filter), EvFlagNames(p, flags), NoteNames(p, filter, fflags),
                              error_record ? ErrnoData(data) : Dec(data), trace::Pointer(udata));
  if (l.has_ext()) {
    std::array<uint64_t, KeventLayout::kExtCount> ext{};
    for (size_t i = 0; i < ext.size(); ++i) ext[i] = r.GetField(l.ext_element(i));
    if (ext != std::array<uint64_t, 4>{}) {
      s += fmt::format(", ext=[{}, {}, {}, {}]", trace::Hex(ext[0]), trace::Hex(ext[1]), trace::Hex(ext[2]),
                       trace::Hex(ext[3]));
    }
  }
  return s + "}";
}

const trace::Formatter kKqueueTrace{&KqueueEnter, &PlainExit, kKqueueNames};
const trace::Formatter kKqueueFlagsTrace{&KqueueFlagsEnter, &PlainExit, kKqueueFlagsNames};
const trace::Formatter kKeventTrace{&KeventEnter, &KeventExit, kKeventNames};
const trace::Formatter kFreebsd11KeventTrace{&Kevent11Enter, &Kevent11Exit, kKevent11Names};
const trace::Formatter kKqueueSignalTrace{&SignalEnter, &PlainExit, kSignalNames};
const trace::Formatter kKqueueForkTrace{&ForkEnter, &PlainExit, kForkNames};
const trace::Formatter kKqueueFdCloseTrace{&FdCloseEnter, &PlainExit, kFdCloseNames};
const trace::Formatter kKqueueSettleTrace{&SettleEnter, &PlainExit, kSettleNames};

}  // namespace evshim::abi::bsd
