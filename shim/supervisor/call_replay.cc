#include "shim/supervisor/call_replay.h"

#include <cerrno>

namespace evshim::shim {

bool SameCall(const CallRegisters& a, const Notification& n) {
  if (a.nr != n.nr) return false;
  if ((a.args[0] & ~kProbeBit) != (n.args[0] & ~kProbeBit)) return false;
  for (int i = 1; i < 6; ++i) {
    if (a.args[i] != n.args[i]) return false;
  }
  return true;
}

CallRegisters RegistersOf(const Notification& n) { return CallRegisters{n.nr, n.args}; }

bool CallReplay::Send(pid_t tid, uint64_t id, int64_t value, int error) {
  FaultOr<Delivery> d = notifier_.Respond(id, value, error);
  if (!d.ok()) {
    faults_.OnFault(d.fault(), tid);
    return false;
  }
  return *d == Delivery::kDelivered;
}

bool CallReplay::SendOutcome(pid_t tid, uint64_t id, const abi::Outcome& out) {
  return out.kind == abi::Outcome::Kind::kValue ? Send(tid, id, out.value, 0) : Send(tid, id, 0, out.error);
}

bool CallReplay::AnswerRepeat(const Notification& n, bool numbered, ParkedCalls& parked,
                              const std::function<void(emul::WaitId)>& cancel_wait) {
  const bool probe = numbered && (n.args[0] & kProbeBit) != 0;
  const int interrupted_errno = probe ? ECANCELED : EINTR;
  // A parked call of this thread was abandoned: a signal interrupted it.
  if (auto old = parked.TakeThread(n.tid)) {
    cancel_wait(old->first);
    if (SameCall(old->second.call, n)) {
      Send(n.tid, n.id, 0, interrupted_errno);
      return true;
    }
  }
  if (auto it = last_.find(n.tid); it != last_.end()) {
    const Record rec = it->second;
    last_.erase(it);
    if (SameCall(rec.call, n)) {
      if (rec.wait) {
        Send(n.tid, n.id, 0, interrupted_errno);
      } else if (!SendOutcome(n.tid, n.id, rec.outcome) || numbered) {
        last_[n.tid] = rec;  // it may come back again
      }
      return true;
    }
  }
  if (probe) {  // nothing to recover: the probed wait never reached us
    Send(n.tid, n.id, 0, ECANCELED);
    return true;
  }
  return false;
}

bool CallReplay::AnswerNow(const Notification& n, bool numbered, const abi::Outcome& out, bool remember) {
  const bool delivered = SendOutcome(n.tid, n.id, out);
  // Done, but the thread may not get the answer (interrupted, or the kernel
  // dropped an accepted reply): an identical re-issue replays it.
  if ((!delivered || numbered) && remember) last_[n.tid] = Record{RegistersOf(n), /*wait=*/false, out};
  return delivered;
}

bool CallReplay::AnswerParked(pid_t tid, uint64_t id, const CallRegisters& call, bool numbered,
                              const abi::Outcome& out) {
  if (SendOutcome(tid, id, out)) {
    // The kernel can still drop a reply it accepted (a signal that broke the
    // target's wait just before): a probe or re-issue gets this answer again,
    // the events it wrote stay valid.
    if (numbered) last_[tid] = Record{call, /*wait=*/false, out};
    return true;
  }
  // The thread was interrupted before it got the answer. Either the engine
  // undoes the call (retrieved events go back) and a re-issue of it answers
  // EINTR, or its effect stands (a kevent's changes are applied) and a
  // re-issue gets this answer again: a retry that applied the changes once
  // more would trigger a one-shot twice.
  last_[tid] = Record{call, /*wait=*/!out.stands_if_refused, out};
  return false;
}

void CallReplay::WaitAbandoned(const ParkedCall& call) {
  last_[call.tid] = Record{call.call, /*wait=*/true, abi::Outcome::Error(EINTR)};
}

}  // namespace evshim::shim
