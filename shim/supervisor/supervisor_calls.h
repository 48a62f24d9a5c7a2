// The supervisor's parts that serve one call (private to supervisor.cc):
// the listener as the parts use it (readiness applied before every answer,
// tracing), the fault sink, the responder of a deferred call and the
// CallContext the abi handlers see.
#pragma once

#include <signal.h>

#include <cstdio>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "abi/common/call.h"
#include "abi/trace/observer.h"
#include "shim/supervisor/supervisor.h"

namespace evshim::shim {

namespace supervisor_log {
inline void Log(const char* fmt, auto... args) {
  std::fprintf(stderr, "evshim: ");
  std::fprintf(stderr, fmt, args...);
  std::fputc('\n', stderr);
}
}  // namespace supervisor_log

// The listener as the supervisor's parts use it: readiness is applied
// before every answer (docs/design.md "Emulated objects"), and `evshim trace`
// hears of every answer.
class Supervisor::Answering final : public Notifier {
 public:
  explicit Answering(Supervisor& sup) : sup_(sup) {}
  FaultOr<std::optional<Notification>> Receive() override { return sup_.notifier_->Receive(); }
  FaultOr<Delivery> Respond(uint64_t id, int64_t value, int error) override {
    sup_.objects_->ApplyReadiness();
    FaultOr<Delivery> d = sup_.notifier_->Respond(id, value, error);
    if (sup_.options_.observer != nullptr) {  // trace
      sup_.options_.observer->OnExit(id, value, error, d.ok() && *d == Delivery::kDelivered);
    }
    return d;
  }
  FaultOr<Delivery> Continue(uint64_t id) override {
    sup_.objects_->ApplyReadiness();
    return sup_.notifier_->Continue(id);
  }
  FaultOr<AddFdResult> AddFd(const AddFdRequest& request) override {
    if (request.answer_with_fd) sup_.objects_->ApplyReadiness();  // ADDFD_FLAG_SEND answers the call
    FaultOr<AddFdResult> r = sup_.notifier_->AddFd(request);
    if (r.ok() && r->answered && sup_.options_.observer != nullptr) {
      sup_.options_.observer->OnExit(request.id, r->fd, 0, true);  // trace
    }
    return r;
  }
  bool IdValid(uint64_t id) override { return sup_.notifier_->IdValid(id); }
  bool EnableSyncWakeup() override { return sup_.notifier_->EnableSyncWakeup(); }

 private:
  Supervisor& sup_;
};

// A fault is logged with its cause, and the process whose call met it is
// killed: evshim can no longer serve it truthfully (docs/design.md
// "Supervisor faults").
class Supervisor::Faults final : public FaultSink {
 public:
  explicit Faults(Supervisor& sup) : sup_(sup) {}
  void OnFault(const Fault& fault, pid_t tid) override {
    if (tid <= 0) {
      // Outside any call a fault can repeat at every loop event: logged once.
      std::string text = fault.Describe();
      if (logged_.insert(text).second) supervisor_log::Log("supervisor fault: %s (logged once)", text.c_str());
      return;
    }
    auto t = sup_.tgid_of_.find(tid);
    const pid_t pid = t != sup_.tgid_of_.end() ? static_cast<pid_t>(t->second) : tid;
    supervisor_log::Log("supervisor fault serving process %d: %s; the process is killed, evshim cannot serve it "
        "correctly (docs/design.md \"Supervisor faults\")",
        pid, fault.Describe().c_str());
    kill(pid, SIGKILL);
  }

 private:
  Supervisor& sup_;
  std::set<std::string> logged_;
};

// Answers one notification, now or later. Shared by the handler and any
// completion that outlives it.
class Supervisor::NotifResponder final : public abi::Responder {
 public:
  NotifResponder(Supervisor& sup, const Notification& n, bool numbered)
      : sup_(sup), id_(n.id), tid_(n.tid), call_(RegistersOf(n)), numbered_(numbered) {}
  bool StillPending() override {
    if (answered_) return false;
    return sup_.answering_->IdValid(id_);
  }
  bool Respond(const abi::Outcome& out) override {
    if (answered_) return false;
    answered_ = true;
    sup_.parked_.Answered(tid_, id_);
    switch (out.kind) {
      case abi::Outcome::Kind::kValue:
      case abi::Outcome::Kind::kError:
        return sup_.replay_->AnswerParked(tid_, id_, call_, numbered_, out);
      case abi::Outcome::Kind::kNewObject: {
        bool delivered = false;
        sup_.InstallObject(tid_, id_, out.object_kind, out.object, &delivered, out.cloexec);
        return delivered;
      }
      case abi::Outcome::Kind::kDeferred:
        break;
    }
    return false;
  }
  // The completion met a supervisor fault: not answered (its events go back),
  // the fault is handled instead.
  bool Fail(const Fault& fault) {
    if (answered_) return false;
    answered_ = true;
    sup_.parked_.Answered(tid_, id_);
    sup_.faults_->OnFault(fault, tid_);
    return false;
  }

 private:
  Supervisor& sup_;
  uint64_t id_;
  pid_t tid_;
  CallRegisters call_;
  bool numbered_;
  bool answered_ = false;
};

class Supervisor::Context final : public abi::CallContext {
 public:
  Context(Supervisor& sup, const Notification& n, emul::Pid pid, bool numbered)
      : sup_(sup), n_(n), caller_{pid, static_cast<emul::Pid>(n.tid)},
        memory_(std::make_shared<RemoteMemory>(n.tid, sup.answering_.get(), n.id, sup.options_.observer,
                                               sup.options_.memory_transfer)),
        numbered_(numbered) {}
  bool call_died() const { return memory_->died(); }
  // A supervisor fault met while serving the call (its memory, ADDFD).
  std::optional<Fault> fault() const { return fault_ ? fault_ : memory_->fault(); }

  emul::Caller caller() const override { return caller_; }
  abi::GuestMemory& memory() override { return *memory_; }
  emul::Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    emul::Result<emul::ObjectId> r = sup_.ResolveObject(n_.tid, fd, kind);
    // kqueues are not inherited by fork: another process's kqueue is a
    // closed descriptor to this one (docs/rules-bsd.md §4.6). A
    // KQUEUE_CPONFORK child has its own copy at that number instead.
    if (r.ok() && kind == abi::ObjectKind::kKqueue && sup_.kqueues_->Owner(*r) != caller_.pid) {
      return emul::Errno{EBADF};
    }
    if (r.ok()) last_object_ = {*r, fd};
    return r;
  }
  emul::EventPorts& ports() override { return *sup_.ports_; }
  emul::Kqueues* kqueues() override { return sup_.kqueues_.get(); }
  std::shared_ptr<abi::Responder> Defer() override {
    deferred_ = std::make_shared<DeferredResponder>(std::make_shared<NotifResponder>(sup_, n_, numbered_),
                                                    memory_);
    return deferred_;
  }
  void Parked(emul::WaitId id) override {
    if (sup_.parked_.full()) {
      // Too many waiting threads in the tree (--max-waits): this one fails
      // with ENOMEM instead of growing the supervisor without bound.
      sup_.CancelWait(id);
      if (deferred_) deferred_->Respond(abi::Outcome::Error(ENOMEM));
      return;
    }
    // last_object_: the port it waits on (docs/rules-ports.md rule 27: SweepClosedPorts).
    std::optional<emul::WaitId> displaced = sup_.parked_.Park(id, ParkedCall{n_.tid, n_.id, RegistersOf(n_), last_object_});
    if (displaced) sup_.CancelWait(*displaced);
  }
  int ReplaceObject(abi::ObjectKind kind, emul::ObjectId from, emul::ObjectId to) override {
    return sup_.ReplaceObjectDescriptors(n_.id, caller_.pid, kind, from, to, &fault_);
  }
  void NotImplemented(std::string_view what) override {
    std::string key(what);
    if (sup_.reported_.insert(key).second) {
      supervisor_log::Log("%.*s is not implemented yet (answered ENOSYS/ENOTSUP); see docs/abi.md",
          static_cast<int>(what.size()), what.data());
    }
  }
  std::optional<std::pair<emul::ObjectId, int>> last_object() const { return last_object_; }

 private:
  // Keeps the target memory object alive as long as a completion may use it,
  // and turns a fault met there into a fault, not an answer.
  class DeferredResponder final : public abi::Responder {
   public:
    DeferredResponder(std::shared_ptr<NotifResponder> inner, std::shared_ptr<RemoteMemory> mem)
        : inner_(std::move(inner)), mem_(std::move(mem)) {}
    bool StillPending() override { return inner_->StillPending(); }
    bool Respond(const abi::Outcome& out) override {
      if (mem_->fault()) return inner_->Fail(*mem_->fault());
      return inner_->Respond(out);
    }

   private:
    std::shared_ptr<NotifResponder> inner_;
    std::shared_ptr<RemoteMemory> mem_;
  };

  Supervisor& sup_;
  const Notification& n_;
  emul::Caller caller_;
  std::shared_ptr<RemoteMemory> memory_;
  std::shared_ptr<abi::Responder> deferred_;
  bool numbered_;
  std::optional<std::pair<emul::ObjectId, int>> last_object_;
  std::optional<Fault> fault_;
};

}  // namespace evshim::shim
