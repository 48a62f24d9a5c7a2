#include "abi/illumos/timers.h"

#include <cerrno>
#include <vector>

#include "abi/common/wire.h"
#include "abi/illumos/layouts.h"
#include "emul/event_port.h"

namespace evshim::abi::illumos {

namespace {

using emul::Result;

// The part of struct sigevent the kernel copies in: `struct oldsigevent`
// (T:607): notify@0, signo@4, value@8 (pointer-sized). 24 / 12 bytes.
constexpr size_t kOldSigeventLp64 = 24, kOldSigeventIlp32 = 12;

struct Itimerspec {
  int64_t interval_sec, interval_nsec, value_sec, value_nsec;
};

Result<Itimerspec> ReadItimerspec(CallContext& ctx, DataModel m, uint64_t addr) {
  const TimespecLayout& ts = Timespec(m);
  std::vector<std::byte> raw(ts.size * 2);
  if (!ctx.memory().Read(addr, raw).ok()) return emul::Errno{EFAULT};
  ByteReader r(raw);
  const size_t w = PointerSize(m);
  return Itimerspec{r.GetLong(ts.sec, w), r.GetLong(ts.nsec, w), r.GetLong(ts.size + ts.sec, w),
                    r.GetLong(ts.size + ts.nsec, w)};
}

Result<void> WriteItimerspec(CallContext& ctx, DataModel m, uint64_t addr, const emul::TimerSpec& s) {
  const TimespecLayout& ts = Timespec(m);
  std::vector<std::byte> raw(ts.size * 2);
  ByteWriter w(raw);
  const size_t pw = PointerSize(m);
  w.PutLong(ts.sec, pw, s.interval / emul::kNanosPerSecond);
  w.PutLong(ts.nsec, pw, s.interval % emul::kNanosPerSecond);
  w.PutLong(ts.size + ts.sec, pw, s.value / emul::kNanosPerSecond);
  w.PutLong(ts.size + ts.nsec, pw, s.value % emul::kNanosPerSecond);
  if (!ctx.memory().Write(addr, raw).ok()) return emul::Errno{EFAULT};
  return {};
}

}  // namespace

Outcome SysTimerCreate(CallContext& ctx, const SyscallArgs& a) {
  const DataModel m = a.model();
  const int clock = a.Int(0);
  const uint64_t evp = a.Ptr(1), tidp = a.Ptr(2);
  if (clock < 0 || clock >= emul::timer_abi::kClockMax) return Outcome::Error(EINVAL);  // T:598
  emul::TimerNotify notify;
  if (evp != 0) {
    std::vector<std::byte> raw(m == DataModel::kLp64 ? kOldSigeventLp64 : kOldSigeventIlp32);
    if (!ctx.memory().Read(evp, raw).ok()) return Outcome::Error(EFAULT);  // T:606-608
    ByteReader r(raw);
    notify.notify = r.Get<int32_t>(0);
    notify.signo = r.Get<int32_t>(4);
    notify.value = r.GetPtr(8, PointerSize(m));
    notify.value_is_id = false;
    if (notify.notify == emul::timer_abi::kSigevPort || notify.notify == emul::timer_abi::kSigevThread) {
      // The port_notify_t that sigev_value points to (T:610-641).
      const PortNotifyLayout& pn = m == DataModel::kLp64 ? kPortNotifyLp64 : kPortNotifyIlp32;
      std::vector<std::byte> pnraw(pn.size);
      if (!ctx.memory().Read(notify.value, pnraw).ok()) return Outcome::Error(EFAULT);
      ByteReader pr(pnraw);
      notify.port = ctx.Resolve(pr.Get<int32_t>(pn.port), ObjectKind::kPort);
      notify.user = pr.GetPtr(pn.user, PointerSize(m));
    }
  }
  Result<int> id = ctx.ports().TimerCreate(ctx.caller(), clock, notify);
  if (!id.ok()) return Outcome::Error(id.error().value);
  int32_t out = *id;
  std::byte bytes[4];
  ByteWriter(bytes).Put<int32_t>(0, out);
  if (!ctx.memory().Write(tidp, bytes).ok()) {  // copyout fails: the timer goes (T:779-782)
    (void)ctx.ports().TimerDelete(ctx.caller(), *id);
    return Outcome::Error(EFAULT);
  }
  return Outcome::Value(0);
}

Outcome SysTimerDelete(CallContext& ctx, const SyscallArgs& a) {
  Result<void> r = ctx.ports().TimerDelete(ctx.caller(), a.Int(0));
  return r.ok() ? Outcome::Value(0) : Outcome::Error(r.error().value);
}

Outcome SysTimerSettime(CallContext& ctx, const SyscallArgs& a) {
  const DataModel m = a.model();
  const int id = a.Int(0);
  const uint32_t flags = static_cast<uint32_t>(a.Int(1));
  const uint64_t value = a.Ptr(2), ovalue = a.Ptr(3);
  Result<Itimerspec> spec = ReadItimerspec(ctx, m, value);
  if (!spec.ok()) return Outcome::Error(EFAULT);
  // The old value is written before the new one is validated (T:848-851).
  if (ovalue != 0) {
    Result<emul::TimerSpec> old = ctx.ports().TimerGettime(ctx.caller(), id);
    if (!old.ok()) return Outcome::Error(old.error().value);
    if (!WriteItimerspec(ctx, m, ovalue, *old).ok()) return Outcome::Error(EFAULT);
  }
  Result<emul::TimerSpec> r = ctx.ports().TimerSettime(ctx.caller(), id, flags, spec->value_sec,
                                                       spec->value_nsec, spec->interval_sec,
                                                       spec->interval_nsec);
  return r.ok() ? Outcome::Value(0) : Outcome::Error(r.error().value);
}

Outcome SysTimerGettime(CallContext& ctx, const SyscallArgs& a) {
  Result<emul::TimerSpec> r = ctx.ports().TimerGettime(ctx.caller(), a.Int(0));
  if (!r.ok()) return Outcome::Error(r.error().value);
  if (!WriteItimerspec(ctx, a.model(), a.Ptr(1), *r).ok()) return Outcome::Error(EFAULT);
  return Outcome::Value(0);
}

Outcome SysTimerGetoverrun(CallContext& ctx, const SyscallArgs& a) {
  Result<int> r = ctx.ports().TimerGetoverrun(ctx.caller(), a.Int(0));
  return r.ok() ? Outcome::Value(*r) : Outcome::Error(r.error().value);
}

}  // namespace evshim::abi::illumos
