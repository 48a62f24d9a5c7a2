// What a syscall handler may use, and what it answers.
//
// Handlers are pure translation (decode, one core call, encode). The
// transport implements CallContext with real remote memory (shim/) or a fake
// one (tests), so the whole ILP32 path runs without a 32-bit process.
#pragma once

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "abi/common/args.h"
#include "emul/result.h"
#include "emul/types.h"

namespace evshim::emul {
class EventPorts;
class Kqueues;
}

namespace evshim::abi {

// The calling thread's memory. Reads and writes are all-or-nothing:
// EFAULT when any byte is unmapped or not writable.
class GuestMemory {
 public:
  virtual ~GuestMemory() = default;
  virtual emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) = 0;
  virtual emul::Result<void> Write(uint64_t addr, std::span<const std::byte> in) = 0;
  // The caller's bytes [addr, addr + size) themselves, when this memory is
  // the calling thread's own and knows the whole range mapped and writable
  // (the in-process engine: the caller's frames); else nullptr, and the
  // codec copies through Read and Write. A codec given them decodes and
  // encodes in place: no copy through a buffer and no second virtual call.
  // Never for an empty range, never where a trace records the copies.
  virtual std::byte* InPlace(uint64_t addr, size_t size) {
    (void)addr;
    (void)size;
    return nullptr;
  }
};

enum class ObjectKind : uint8_t { kPort, kKqueue };

// The answer to a call.
struct Outcome {
  enum class Kind : uint8_t {
    kValue,      // return `value` (already in the foreign library's convention)
    kError,      // fail with host errno `error`
    kNewObject,  // install the descriptor of emulated object `object`, return its number
    kDeferred,   // answered later through the Responder taken with Defer()
  };
  Kind kind = Kind::kValue;
  int64_t value = 0;
  int error = 0;
  emul::ObjectId object = 0;
  ObjectKind object_kind = ObjectKind::kPort;
  bool cloexec = false;  // kNewObject: install the descriptor close-on-exec
  // A deferred answer whose call keeps its effect even when the thread never
  // gets the answer (kevent's applied changes): a re-issue of the same call
  // (restart, the library's retry or probe) is answered this again, so the
  // effect is never applied twice. Unset: a refused answer is undone by the
  // engine (retrieved events go back, a dispatch queues nothing), and a
  // re-issue is an interrupted call (EINTR).
  bool stands_if_refused = false;

  static Outcome Value(int64_t v) { return {Kind::kValue, v, 0, 0, ObjectKind::kPort}; }
  static Outcome Error(int e) { return {Kind::kError, 0, e, 0, ObjectKind::kPort}; }
  static Outcome NewObject(ObjectKind k, emul::ObjectId o) { return {Kind::kNewObject, 0, 0, o, k}; }
  static Outcome Deferred() { return {Kind::kDeferred, 0, 0, 0, ObjectKind::kPort}; }
};

// Finishes a deferred call. Returns false when the target can no longer get
// the answer (interrupted by a signal, or gone): the caller undoes its effects
// (unless the outcome stands_if_refused).
class Responder {
 public:
  virtual ~Responder() = default;
  // False if the call is no longer pending (check before writing memory).
  virtual bool StillPending() = 0;
  virtual bool Respond(const Outcome& outcome) = 0;
};

class CallContext {
 public:
  virtual ~CallContext() = default;
  virtual emul::Caller caller() const = 0;
  virtual GuestMemory& memory() = 0;
  // The emulated object the caller has at descriptor `fd`:
  // EBADF if `fd` is not open, EBADFD if it is open but not such an object.
  virtual emul::Result<emul::ObjectId> Resolve(int fd, ObjectKind kind) = 0;
  virtual emul::EventPorts& ports() = 0;
  // The kqueue engine; nullptr where the transport has none (the kqueue
  // handlers then answer ENOSYS).
  virtual emul::Kqueues* kqueues() { return nullptr; }
  // Takes over answering this call; the handler then returns Outcome::Deferred().
  virtual std::shared_ptr<Responder> Defer() = 0;
  // Whether a call that may wait (a retrieval) and is answered before its
  // handler returns may give that answer as the handler's own outcome,
  // taking no Responder (AnswerTo, below): the calling thread runs the
  // handler and nothing can take the call away meanwhile, so the answer is
  // never refused. The in-process engine. Default: no (the supervisor's
  // Responder asks the kernel whether the notification is still valid).
  virtual bool AnswersInCall() const { return false; }
  // Remembers the wait a deferred call parked, so the transport can cancel it
  // when the thread goes away.
  virtual void Parked(emul::WaitId id) = 0;
  // The calling process's descriptors of object `from` (inherited at fork)
  // become descriptors of the new object `to`, at the same numbers
  // (KQUEUE_CPONFORK). 0 or an errno. Default: transports that cannot.
  virtual int ReplaceObject(ObjectKind kind, emul::ObjectId from, emul::ObjectId to) {
    (void)kind;
    (void)from;
    (void)to;
    return ENOSYS;
  }
  // A call the table lists but evshim does not implement yet: logged once.
  virtual void NotImplemented(std::string_view what) = 0;
};

// A deferred call's answer given while its handler runs (AnswersInCall).
struct InCallAnswer {
  bool answered = false;
  Outcome outcome;
};

// What a completion answers its call through. Where the transport
// AnswersInCall, into the handler's InCallAnswer until the call parks
// (Park: the transport's Responder is taken then), so a call answered at
// once costs no Responder; elsewhere through the Responder, taken at once.
// Both answer the same: in the call nothing is pending but the call itself,
// which is never refused (the Responder of a call still running says the
// same).
class AnswerTo {
 public:
  AnswerTo(CallContext& ctx, InCallAnswer* slot) {
    if (slot != nullptr && ctx.AnswersInCall()) {
      slot_ = slot;
    } else {
      responder_ = ctx.Defer();
    }
  }
  // Whether the handler's outcome is the InCallAnswer (else Deferred).
  bool in_call() const { return slot_ != nullptr; }
  bool StillPending() { return slot_ != nullptr ? !slot_->answered : responder_->StillPending(); }
  // Inline: every answer of a retrieval or kevent goes through it.
  [[gnu::always_inline]] bool Respond(const Outcome& out) {
    if (slot_ == nullptr) return responder_->Respond(out);
    if (slot_->answered) return false;
    slot_->answered = true;
    slot_->outcome = out;
    return true;
  }
  // The call parked (its handler returns Outcome::Deferred()): answered
  // through the transport's Responder from now on. Before the handler
  // returns, with the context still valid.
  void Park(CallContext& ctx) {
    if (slot_ == nullptr) return;
    slot_ = nullptr;
    responder_ = ctx.Defer();
  }

 private:
  InCallAnswer* slot_ = nullptr;
  std::shared_ptr<Responder> responder_;
};

}  // namespace evshim::abi
