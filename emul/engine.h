// What the two emulation engines (EventPorts, Kqueues) have in common, as
// the runtime sees them: one interface, the deadline queue they both keep,
// and the router that sends each host event to the engine that owns it
// (docs/design.md "Two engines over shared parts").
#pragma once

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>
#include <vector>

#include "emul/host.h"
#include "emul/types.h"

namespace evshim::emul {

class Engines;

// Whether `when` (an engine's NextDeadline) is due: the one test of every
// catch-up, the router's and the in-process engine's (which asks its two
// engines on their final types, shim/inproc/engine.cc). No deadline, no
// clock read: this runs before every call of every engine. `host` is
// anything that points at a host, read only when the clock is (a caller
// holding its host in a member passes the member: nothing loaded early).
template <typename HostPointer>
bool DeadlineDue(Nanos when, const HostPointer& host) {
  return when != Host::kNever && when <= host->Now();
}

// Objects and waits are numbered per engine: event ports below this, kqueues
// from it (Kqueues::kFirstId, kFirstWait), so an id names its engine.
constexpr uint64_t kKqueueIdBase = uint64_t{1} << 40;

// An engine's timed events (waiters' timeouts, timers), earliest first;
// among equal deadlines, in key order (a timer's key holds its id, a wait's
// its id: the older first). `Key` is the engine's own name for what is due;
// a key is in the queue at most once per deadline. Ordered by (deadline,
// key) so that removing one entry is logarithmic even when a guest gives
// thousands of timers one deadline (a scan of the equal ones would make
// their teardown quadratic).
template <typename Key>
class DeadlineQueue {
 public:
  void Add(Nanos when, Key key) { queue_.emplace(when, std::move(key)); }
  // Forgets the entry (`when`, `key`); nothing if there is none.
  void Remove(Nanos when, const Key& key) { queue_.erase(std::pair<Nanos, Key>(when, key)); }
  Nanos Next() const { return queue_.empty() ? Host::kNever : queue_.begin()->first; }
  bool Due(Nanos now) const { return !queue_.empty() && queue_.begin()->first <= now; }
  // The earliest entry, removed, if it is due at `now`.
  std::optional<std::pair<Nanos, Key>> TakeDue(Nanos now) {
    if (!Due(now)) return std::nullopt;
    std::pair<Nanos, Key> e = *queue_.begin();
    queue_.erase(queue_.begin());
    return e;
  }
  bool empty() const { return queue_.empty(); }
  size_t size() const { return queue_.size(); }

 private:
  std::set<std::pair<Nanos, Key>> queue_;
};

// One emulation engine. Objects, waits and watches are each engine's own:
// the runtime asks which engine owns one and tells only that one.
class Engine {
 public:
  virtual ~Engine() = default;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  virtual bool OwnsObject(ObjectId obj) const = 0;
  virtual bool OwnsWait(WaitId wait) const = 0;
  virtual bool OwnsWatch(WatchId watch) const = 0;

  // The object's last descriptor is gone, in every process.
  virtual void LastClose(ObjectId obj) = 0;
  // The waiting thread is gone (interrupted, exited): forget its wait.
  virtual void CancelWait(WaitId wait) = 0;
  // Process exit: its waiters vanish, its per-process state goes.
  virtual void ProcessExited(Pid pid) = 0;
  // A watched descriptor became ready (Host::ArmWatch, one-shot).
  virtual void OnWatchReady(WatchId watch, uint32_t revents) = 0;
  // OnWatchReady if this engine owns the watch; whether it does. One
  // look-up of the watch where OwnsWatch and then OnWatchReady take two:
  // every routed host event passes here (Engines::OnWatchReady).
  virtual bool RouteWatchReady(WatchId watch, uint32_t revents) {
    if (!OwnsWatch(watch)) return false;
    OnWatchReady(watch, revents);
    return true;
  }
  // Runs what is due now, then arms the next deadline.
  virtual void OnDeadline() = 0;
  // The earliest time OnDeadline wants to run (Host::kNever if none).
  virtual Nanos NextDeadline() const = 0;
  // OnDeadline if a deadline is already due (before handling a call).
  void CatchUpDeadlines() {
    if (DeadlineDue(NextDeadline(), &host_)) OnDeadline();
  }

 protected:
  explicit Engine(Host& host) : host_(host) {}
  // The engine's next deadline changed: alone, it arms the host's timer;
  // under an Engines router, the router arms it at the earliest of all.
  void RearmDeadline();

  Host& host_;

 private:
  friend class Engines;
  Engines* router_ = nullptr;
};

// The engines of one runtime (the supervisor's, or one process's in-process
// engine). Owns the host's one deadline timer, and routes each event to the
// engine that owns its object, wait or watch.
class Engines {
 public:
  explicit Engines(Host& host) : host_(host) {}
  Engines(const Engines&) = delete;
  Engines& operator=(const Engines&) = delete;
  ~Engines();

  // `engine` takes part (it must outlive this router, or be removed by
  // its destruction: see ~Engines).
  void Add(Engine& engine);

  void LastClose(ObjectId obj);
  void CancelWait(WaitId wait);
  void OnWatchReady(WatchId watch, uint32_t revents);
  void ProcessExited(Pid pid);
  // The host's timer fired: every engine with a deadline due runs it.
  void OnDeadline();
  void CatchUpDeadlines();
  // Whether CatchUpDeadlines would run a deadline now.
  bool AnyDeadlineDue() const;
  // Arms the host's timer at the earliest deadline of all engines.
  void Rearm();

 private:
  Host& host_;
  std::vector<Engine*> engines_;
};

inline void Engine::RearmDeadline() {
  if (router_ != nullptr) {
    router_->Rearm();
  } else {
    host_.ArmDeadline(NextDeadline());
  }
}

inline Engines::~Engines() {
  for (Engine* e : engines_) e->router_ = nullptr;
}

inline void Engines::Add(Engine& engine) {
  engine.router_ = this;
  engines_.push_back(&engine);
  Rearm();
}

inline void Engines::LastClose(ObjectId obj) {
  for (Engine* e : engines_) {
    if (e->OwnsObject(obj)) return e->LastClose(obj);
  }
}

inline void Engines::CancelWait(WaitId wait) {
  for (Engine* e : engines_) {
    if (e->OwnsWait(wait)) return e->CancelWait(wait);
  }
}

inline void Engines::OnWatchReady(WatchId watch, uint32_t revents) {
  for (Engine* e : engines_) {
    if (e->RouteWatchReady(watch, revents)) return;
  }
}

inline void Engines::ProcessExited(Pid pid) {
  for (Engine* e : engines_) e->ProcessExited(pid);
}

inline void Engines::OnDeadline() {
  const Nanos now = host_.Now();
  for (Engine* e : engines_) {
    if (e->NextDeadline() <= now) e->OnDeadline();
  }
}

inline void Engines::CatchUpDeadlines() {
  for (Engine* e : engines_) e->CatchUpDeadlines();
}

inline bool Engines::AnyDeadlineDue() const {
  Nanos when = Host::kNever;
  for (const Engine* e : engines_) when = std::min(when, e->NextDeadline());
  return DeadlineDue(when, &host_);
}

inline void Engines::Rearm() {
  Nanos when = Host::kNever;
  for (const Engine* e : engines_) when = std::min(when, e->NextDeadline());
  host_.ArmDeadline(when);
}

}  // namespace evshim::emul
