// Moving a port to another engine: export, forget, import (docs/design.md
// "Moving a port at fork"). A port the in-process engine serves becomes
// reachable by a second process at fork (docs/rules-ports.md rule 34,
// port.c:241-248: the child shares the port), so its whole state is handed
// to the supervisor, which then serves both processes. Nothing may be lost
// or delivered twice: the queue moves in order, a fired association keeps
// its event and stays inactive (rule 5), an armed one is armed again (a
// readiness that arrived meanwhile fires at once, as rule 6), a timer keeps
// its id, deadline, period and undelivered expirations (timer.c T:459-467).
#include <algorithm>
#include <cerrno>
#include <climits>
#include <set>

#include "emul/event_port.h"

namespace evshim::emul {

namespace {
constexpr uint32_t kAlwaysReported = poll_bits::kHup | poll_bits::kErr;
uint64_t TimerKey(Pid pid, int id) {
  return (1ULL << 63) | (static_cast<uint64_t>(pid) << 32) | static_cast<uint32_t>(id);
}
}  // namespace

Result<PortState> EventPorts::ExportPort(ObjectId id, Pid pid, bool unbound_timers) {
  EndHandOver();  // a kept report is in the queue that moves
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  for (Pid u : p->users) {
    if (u != pid) return Errno{ENOTSUP};
  }
  if (!p->file_assocs.empty()) return Errno{ENOTSUP};
  for (const Queued& q : p->queue) {
    if (q.ev.source == static_cast<uint16_t>(PortSource::kFile)) return Errno{ENOTSUP};
  }
  DropClosedAssocs(*p);  // port_close_fd, before the state is written down
  PortState s;
  s.max_events = p->max_events;
  s.had_fd_assoc = p->had_fd_assoc;
  s.had_file_source = p->had_file_source;
  if (p->alert) {
    s.alert = true;
    s.alert_events = p->alert->events;
    s.alert_user = p->alert->user;
  }
  std::map<const FdAssoc*, uint32_t> assoc_index;
  for (auto& [fd, a] : p->fd_assocs) {
    assoc_index[&a] = static_cast<uint32_t>(s.assocs.size());
    s.assocs.push_back(PortState::Assoc{a.fd, a.events, a.user, a.active});
  }
  std::map<const Timer*, uint32_t> timer_index;
  for (auto& [key, t] : timers_) {
    const bool mine = t->port == id || (unbound_timers && !t->port && t->pid == pid);
    if (!mine) continue;
    if (t->pid != pid || (t->notify.notify != timer_abi::kSigevPort && t->notify.notify != timer_abi::kSigevThread)) {
      return Errno{ENOTSUP};
    }
    timer_index[t.get()] = static_cast<uint32_t>(s.timers.size());
    s.timers.push_back(PortState::Timer{t->id, t->port.has_value(), t->clock, t->notify.notify, t->notify.user,
                                        t->pending, t->overrun, t->next, t->interval});
  }
  for (const Queued& q : p->queue) {
    PortState::Event e;
    if (q.assoc != nullptr) {
      e.kind = PortState::EventKind::kFd;
      e.ref = assoc_index.at(q.assoc);
      e.ev = q.ev;
    } else if (q.timer != nullptr) {
      e.kind = PortState::EventKind::kTimer;
      e.ref = timer_index.at(q.timer);
      e.ev = q.ev;
    } else {
      e.kind = PortState::EventKind::kPlain;
      e.ev = q.ev;
      e.owner_only = q.share == Share::kOwnerOnly;
    }
    s.queue.push_back(e);
  }
  return s;
}

std::vector<WaitId> EventPorts::ForgetExported(ObjectId id, Pid pid, const PortState& exported) {
  std::vector<WaitId> displaced;
  Port* p = Find(id);
  if (p == nullptr) return displaced;
  for (Waiter& w : p->waiters) {
    if (w.deadline) deadlines_.Remove(*w.deadline, w.id);
    wait_port_.erase(w.id);
    displaced.push_back(w.id);
  }
  for (Dispatcher& d : p->dispatchers) {
    wait_port_.erase(d.id);
    displaced.push_back(d.id);
  }
  for (auto& [fd, a] : p->fd_assocs) {
    host_.DropWatch(a.watch);
    by_watch_.erase(a.watch);
  }
  for (const PortState::Timer& moved : exported.timers) {
    Timer* t = FindTimer(pid, moved.id);
    if (t == nullptr) continue;
    if (t->next != 0) deadlines_.Remove(t->next, TimerKey(t->pid, t->id));
    timers_.erase({pid, moved.id});
  }
  // Its descriptor no longer reports anything from here: no readiness call
  // (the transport replaces the descriptor).
  ErasePort(id);
  RearmDeadline();
  return displaced;
}

bool EventPorts::HasFreeSlot(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr || p->slots < p->max_events;
}

std::vector<ObjectId> EventPorts::PortsWithTimersOf(Pid pid, bool* unbound) const {
  std::set<ObjectId> ports;
  *unbound = false;
  for (auto it = timers_.lower_bound({pid, INT_MIN}); it != timers_.end() && it->first.first == pid; ++it) {
    if (it->second->port) {
      ports.insert(*it->second->port);
    } else {
      *unbound = true;
    }
  }
  return {ports.begin(), ports.end()};
}

namespace {

// The checks ImportPort makes before it changes anything: a state a program
// could have written (the supervisor reads it from the caller's memory) is
// accepted only if a port could really be in it.
bool Consistent(const PortState& s, const PortLimits& limits) {
  if (s.max_events == 0 || s.max_events > limits.max_events_per_port) return false;
  if (s.assocs.size() > s.max_events || s.timers.size() > limits.max_timers_per_process) return false;
  std::set<int32_t> fds;
  for (const PortState::Assoc& a : s.assocs) {
    if (a.fd < 0 || !fds.insert(a.fd).second) return false;
  }
  std::set<int32_t> ids;
  for (const PortState::Timer& t : s.timers) {
    if (t.id < 0 || t.id >= static_cast<int32_t>(limits.max_timers_per_process)) return false;
    if (!ids.insert(t.id).second) return false;
    if (t.clock != timer_abi::kClockRealtime0 && t.clock != timer_abi::kClockRealtime &&
        t.clock != timer_abi::kClockHighres) {
      return false;
    }
    if (t.notify != timer_abi::kSigevPort && t.notify != timer_abi::kSigevThread) return false;
    if (t.pending < 0 || t.overrun < 0 || t.next < 0 || t.interval < 0) return false;
  }
  uint64_t slots = s.assocs.size();
  for (const PortState::Timer& t : s.timers) slots += t.bound ? 1 : 0;  // a bound timer holds a slot
  std::vector<bool> assoc_queued(s.assocs.size()), timer_queued(s.timers.size());
  for (const PortState::Event& e : s.queue) {
    switch (e.kind) {
      case PortState::EventKind::kPlain:
        if (e.ev.source != static_cast<uint16_t>(PortSource::kUser) &&
            e.ev.source != static_cast<uint16_t>(PortSource::kAio) &&
            e.ev.source != static_cast<uint16_t>(PortSource::kMq)) {
          return false;
        }
        ++slots;
        break;
      case PortState::EventKind::kFd:
        // One event per association, and only a fired (inactive) one has it.
        if (e.ref >= s.assocs.size() || assoc_queued[e.ref] || s.assocs[e.ref].active) return false;
        assoc_queued[e.ref] = true;
        break;
      case PortState::EventKind::kTimer:
        if (e.ref >= s.timers.size() || timer_queued[e.ref] || s.timers[e.ref].pending <= 0 ||
            !s.timers[e.ref].bound) {
          return false;
        }
        timer_queued[e.ref] = true;
        break;
    }
    if (slots > s.max_events) return false;
  }
  // A bound timer's undelivered expirations are its queued event (FireTimer).
  for (size_t i = 0; i < s.timers.size(); ++i) {
    if (s.timers[i].bound && s.timers[i].pending > 0 && !timer_queued[i]) return false;
  }
  return true;
}

}  // namespace

Result<ObjectId> EventPorts::ImportPort(Caller caller, const PortState& s) {
  if (!Consistent(s, limits_)) return Errno{EINVAL};
  for (const PortState::Timer& t : s.timers) {
    if (FindTimer(caller.pid, t.id) != nullptr) return Errno{EAGAIN};
  }
  Result<ObjectId> made = Create(caller);
  if (!made.ok()) return made.error();
  const ObjectId id = *made;
  Port& p = *Find(id);
  p.max_events = s.max_events;
  p.had_fd_assoc = s.had_fd_assoc || !s.assocs.empty();
  p.had_file_source = s.had_file_source;
  p.users.push_back(caller.pid);
  // Associations: watched again at the caller's descriptor (the same open
  // file: the exporter dropped closed ones). A descriptor closed since is
  // port_close_fd: the association is not carried.
  std::vector<FdAssoc*> assocs(s.assocs.size(), nullptr);
  std::vector<FdAssoc*> armed;
  for (size_t i = 0; i < s.assocs.size(); ++i) {
    const PortState::Assoc& in = s.assocs[i];
    Result<WatchId> watch = host_.WatchFd(caller.pid, in.fd);
    if (!watch.ok()) {
      if (watch.error().value == EBADF) continue;
      LastClose(id);
      return watch.error();
    }
    FdAssoc fresh;
    fresh.port = id;
    fresh.fd = in.fd;
    fresh.owner = caller.pid;
    fresh.watch = *watch;
    fresh.events = in.events;
    fresh.user = in.user;
    FdAssoc* a = &p.fd_assocs.emplace(in.fd, fresh)->second;
    MarkAlone(p, in.fd);
    by_watch_[a->watch] = a;
    ++p.slots;
    assocs[i] = a;
    if (in.active) armed.push_back(a);
  }
  std::vector<Timer*> timers;
  for (const PortState::Timer& in : s.timers) {
    auto t = std::make_unique<Timer>();
    t->pid = caller.pid;
    t->id = in.id;
    t->clock = in.clock;
    t->notify.notify = in.notify;
    t->notify.port = id;
    t->notify.user = in.user;
    if (in.bound) {
      t->port = id;
      ++p.slots;
    }
    t->pending = in.pending;
    t->overrun = in.overrun;
    t->next = in.next;
    t->interval = in.interval;
    if (t->next != 0) deadlines_.Add(t->next, TimerKey(caller.pid, in.id));
    timers.push_back(t.get());
    timers_.emplace(std::make_pair(caller.pid, in.id), std::move(t));
  }
  for (const PortState::Event& e : s.queue) {
    Queued q;
    q.owner = caller.pid;
    q.ev = e.ev;
    switch (e.kind) {
      case PortState::EventKind::kPlain:
        q.share = e.owner_only ? Share::kOwnerOnly : Share::kAnyone;
        q.holds_slot = true;
        ++p.slots;
        break;
      case PortState::EventKind::kFd:
        q.assoc = assocs[e.ref];
        if (q.assoc == nullptr) continue;  // its descriptor was closed
        q.ev = PortEvent{static_cast<uint16_t>(PortSource::kFd), e.ev.events,
                         static_cast<uint64_t>(q.assoc->fd), q.assoc->user};
        q.share = Share::kSameFile;
        break;
      case PortState::EventKind::kTimer:
        q.timer = timers[e.ref];
        q.timer->queued = true;
        q.ev = PortEvent{static_cast<uint16_t>(PortSource::kTimer), 0, static_cast<uint64_t>(q.timer->id),
                         q.timer->notify.user};
        q.share = Share::kOwnerOnly;
        break;
    }
    p.queue.push_back(q);
    if (FdAssoc* a = q.assoc) {
      a->queued_at = std::prev(p.queue.end());
      a->queued = true;
    }
  }
  if (s.alert) p.alert = AlertState{s.alert_events, s.alert_user, caller.pid};
  UpdateReadiness(p);
  RearmDeadline();
  // Armed associations are armed again: readiness that arrived since the
  // exporter last looked fires now (rule 6), at the tail of the queue.
  for (FdAssoc* a : armed) {
    Result<uint32_t> ready = host_.ArmWatch(a->watch, caller.pid, a->fd, a->events | kAlwaysReported);
    if (!ready.ok()) {
      FreeAssoc(p, a);  // its descriptor went meanwhile
      continue;
    }
    uint32_t fired = *ready & (a->events | kAlwaysReported);
    if (fired == 0) {
      a->active = true;
      continue;
    }
    Enqueue(p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kFd), fired,
                                      static_cast<uint64_t>(a->fd), a->user},
                      .assoc = a,
                      .owner = caller.pid,
                      .share = Share::kSameFile});
  }
  return id;
}

}  // namespace evshim::emul
