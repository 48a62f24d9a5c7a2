// Theory of operation: the illumos event-port engine.
//
// Specification: illumos port.c (shared/seeds/000_*, cited "port.c:N"),
// port_fd.c and port_vnops.c, summarised as numbered rules in
// docs/rules-ports.md ("rule N"). Tests: tests/unit/event_port_test.cc
// (each test names its rule) and tests/integration/ports_test.cc.
//
// Sources. A port collects events from sources: USER (port_send), ALERT
// (port_alert), FD (port_associate on a descriptor), TIMER (SIGEV_PORT
// timers), FILE (port_associate on a file_obj_t) and the library's AIO/MQ
// (PORT_DISPATCH). Each queued event carries who may retrieve it (Share):
// anyone holding the port (USER, shared DISPATCH; rule 14), a process that
// has the same open file at that fd number (FD; rule 12), or only the owner
// (TIMER, FILE, NOSHARE DISPATCH; rule 34).
//
// States of an FD association (port_fd.c). ACTIVE: armed, the host watches
// the file. FIRED: its event is queued; the association is inactive
// (one-shot, rule 5) and keeps its slot. RETRIEVED: delivered, inactive until
// port_associate again. Re-associating replaces a queued event and the user
// value (rule 7). Associating an already ready descriptor fires at once
// (rule 6). POLLHUP and POLLERR are always reported.
//
// FILE watches (port_fop.c; rule 36). Keyed by (pid, file_obj address): a
// process may watch one file many times. The host resolves the name in the
// target's root and working directory and reports changes as illumos FILE_*
// bits. One-shot like FD: the first change queues the event and deactivates
// the watch until port_associate again, which also drops a queued event and
// compares the caller's stored timestamps (non-zero ones, not for FIFOs) with
// the file's: a difference queues an event at once. Exceptions (DELETE,
// RENAME_*, UNMOUNTED, MOUNTEDOVER) are delivered even unrequested, replace
// a queued event, and end the watch; an inactive watch with nothing queued
// just ends. Re-associating a key with another file replaces the watch.
//
// Slots. Every FD association and FILE watch (for its life), every SIGEV_PORT
// timer, and every queued USER or DISPATCH event holds one of the port's
// max_events slots; none left is EAGAIN (rule 4), except for PORT_DISPATCH,
// which waits for a slot (a parked call: EINTR on a signal; rule 37). Every
// change of the slot count or the queue ends in UpdateReadiness (TakeSlot,
// ReturnSlot, Enqueue, RemoveQueued, Collect), so the host hears when the
// port descriptor should poll POLLOUT (a slot is free) or POLLIN (events are
// queued): port_vnops.c port_poll, rule 3.
//
// Retrieval and waiters (port.c:1162-1578). Get() delivers up to `max`
// events once `nget` are queued; otherwise it parks a Waiter, inserted in the
// kernel's order (port_queue_thread, port.c:1814-1855: fewer-events-first
// with its quirks, rule 30). Only the head waiter is woken, when the queue
// holds at least its nget (Pump). A waiter that finds nothing it may retrieve
// sleeps until new events arrive (pgt_loop, rule 29). Deadlines: a zero
// timeout polls; a non-zero one ends in ETIME, with the events available for
// port_getn and none for port_get (rules 22-25). The timeout is validated only
// when the call would wait (rule 21). A refused delivery (the target thread
// was interrupted by a signal) puts the events back at the head: nothing is
// lost, nothing is delivered twice.
//
// Alert (port.c:1065-1136). While set, every retrieval returns exactly the
// alert event, immediately; queued events stay queued; setting it wakes every
// waiter (rules 16-19). It goes away when cleared or when its owner process
// closes the port.
//
// Close, fork and exec (rules 10, 27, 32-35; docs/design.md "Close and
// exec"). The port is shared by every process that holds its descriptor
// (fork keeps the same port, so does exec unless the descriptor is
// close-on-exec). When a process stops holding it (CloseBy, ProcessExited)
// its FD associations, FILE watches, alert, timer bindings and owner-only
// events go. The transport does not see close() or exec: the engine asks the
// host (HoldsObject) whether the other processes that used the port still
// hold it, lazily, where it matters: before a retrieval (and before waking a
// waiter), before EAGAIN for want of a slot, and before EBUSY for another
// process's alert (Reap). A port used by one process never asks. The last
// close fails waiters and blocked dispatchers with EBADF: a thread still
// waiting when every descriptor is gone was waiting on a descriptor that
// another thread closed, which illumos reports as EBADF (rule 27).
// Exec deletes the process's POSIX timers (ProcessExeced; exec_common ->
// timer_exit); the host reports execs (docs/design.md "Timers at exec").
// Closing an associated descriptor dissociates it and discards its event
// (port_close_fd): the host does not keep the file open and does not see
// close(), so the engine learns of the close when it next checks the
// association (SameFile): before delivery, at re-association or
// dissociation of that number, before counting events, and before the port
// looks full (the last slot, EAGAIN); see DropClosedAtThenFind.
#include "emul/event_port.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <iterator>
#include <set>
#include <utility>

namespace evshim::emul {

namespace {
constexpr uint32_t kAlwaysReported = poll_bits::kHup | poll_bits::kErr;
constexpr uint32_t kAlertSet = 0x01;
constexpr uint32_t kAlertUpdate = 0x02;
}  // namespace

EventPorts::Port* EventPorts::FindInMap(ObjectId id) {
  auto it = ports_.find(id);
  if (it == ports_.end()) return nullptr;
  kept_id_ = id;
  kept_port_ = it->second.get();
  return kept_port_;
}

void EventPorts::ErasePort(ObjectId id) {
  if (Port* p = Find(id); p != nullptr && p->report_held) {
    p->report_held = false;
    if (held_port_ == p) {
      held_port_ = nullptr;
      if (!held_more_.empty()) {
        held_port_ = Find(held_more_.back());  // listed: alive
        held_more_.pop_back();
      }
    } else {
      std::erase(held_more_, id);
    }
    ReportReadable(*p);
  }
  if (kept_id_ == id) {
    kept_id_ = 0;
    kept_port_ = nullptr;
  }
  // The offer of a port whose last close its retrieval's own look found
  // (LastClose freed the kept report's association first): nothing may
  // point at the freed port until the call's end (docs/design.md
  // "Instructions per event", s37).
  if (hand_over_.port != nullptr && hand_over_.port->id == id) hand_over_ = HandOver{};
  ports_.erase(id);
}

Result<ObjectId> EventPorts::Create(Caller) {
  if (ports_.size() + 1 > limits_.max_ports) return Errno{EAGAIN};  // port.c:742-755
  auto port = std::make_unique<Port>();
  port->id = next_port_++;
  port->max_events = limits_.max_events_per_port;  // sampled at creation, port.c:757-762
  ObjectId id = port->id;
  ports_.emplace(id, std::move(port));
  return id;
}

void EventPorts::Enqueue(Port& p, Queued q) {
  // A report kept for this port's retrieval came first: queued ahead.
  if (hand_over_.assoc != nullptr && hand_over_.port == &p) [[unlikely]] QueueHandOver();
  if (spare_nodes_.empty()) {
    p.queue.push_back(q);
  } else {
    p.queue.splice(p.queue.end(), spare_nodes_, spare_nodes_.begin());
    p.queue.back() = q;
  }
  if (FdAssoc* a = p.queue.back().assoc) {
    a->queued_at = std::prev(p.queue.end());
    a->queued = true;
  }
  if (p.queue.back().file != nullptr) p.queue.back().file->queued = std::prev(p.queue.end());
  // A new event wakes waiters that found nothing deliverable (PORTQ_WAIT_EVENTS).
  for (Waiter& w : p.waiters) w.wait_new_events = false;
  UpdateReadiness(p);
  Pump(p);
}

void EventPorts::RemoveQueued(Port& p, QueueIt it) {
  if (it->holds_slot) --p.slots;
  if (it->assoc != nullptr) it->assoc->queued = false;
  if (it->timer != nullptr) it->timer->queued = false;
  if (it->file != nullptr) it->file->queued.reset();
  Recycle(p.queue, it);
  UpdateReadiness(p);
}

void EventPorts::Recycle(QueueList& from, QueueIt it) {
  if (spare_nodes_.size() < kSpareNodes) {
    spare_nodes_.splice(spare_nodes_.end(), from, it);
  } else {
    from.erase(it);
  }
}

void EventPorts::ReportReadinessChange(Port& p) {
  // port_vnops.c port_poll: POLLIN iff events are queued, POLLOUT iff
  // port_curr < port_max_events (rule 3).
  bool readable = !p.queue.empty();
  if (readable != p.readable_reported) {
    if (!reports_held_) {
      p.readable_reported = readable;
      host_.ObjectReadinessChanged(p.id, readable);
    } else if (!p.report_held) {
      p.report_held = true;
      if (held_port_ == nullptr) {
        held_port_ = &p;
      } else {
        held_more_.push_back(p.id);
      }
    }
  }
  bool writable = p.slots < p.max_events;
  if (writable != p.writable_reported) {
    p.writable_reported = writable;
    host_.ObjectWritableChanged(p.id, writable);
  }
}

void EventPorts::ReportReadable(Port& p) {
  const bool readable = !p.queue.empty();
  if (readable == p.readable_reported) return;
  p.readable_reported = readable;
  host_.ObjectReadinessChanged(p.id, readable);
}

void EventPorts::ReleaseHeldReports() {
  Port& first = *std::exchange(held_port_, nullptr);
  first.report_held = false;
  ReportReadable(first);
  if (held_more_.empty()) return;
  for (ObjectId id : held_more_) {
    Port* p = Find(id);
    if (p == nullptr) continue;  // erased: reported then (ErasePort)
    p->report_held = false;
    ReportReadable(*p);
  }
  held_more_.clear();
}

void EventPorts::TakeSlot(Port& p) {
  // The last slot: associations of closed descriptors must not make the port
  // look full (POLLOUT) when illumos would have freed them at the close.
  if (p.slots + 1 == p.max_events) DropClosedAssocs(p);
  ++p.slots;
  UpdateReadiness(p);
}

void EventPorts::ReturnSlot(Port& p) {
  --p.slots;
  UpdateReadiness(p);
}

void EventPorts::FreeAssoc(Port& p, FdAssoc* a) {
  if (a->queued) RemoveQueued(p, a->queued_at);
  if (a == hand_over_.assoc) hand_over_.assoc = nullptr;  // kept aside: discarded as a queued one
  host_.DropWatch(a->watch);
  by_watch_.erase(a->watch);
  ReturnSlot(p);
  if (p.kept_assoc == a) p.kept_assoc = nullptr;
  const int fd = a->fd;
  auto range = p.fd_assocs.equal_range(fd);
  for (auto it = range.first; it != range.second; ++it) {
    if (&it->second == a) {
      p.fd_assocs.erase(it);
      break;
    }
  }
  MarkAlone(p, fd);
}

void EventPorts::MarkAlone(Port& p, int fd) {
  auto range = p.fd_assocs.equal_range(fd);
  const bool alone = range.first != range.second && std::next(range.first) == range.second;
  for (auto it = range.first; it != range.second; ++it) it->second.alone = alone;
}

// port_close_fd (port.c:164-169, 306-316): closing a descriptor removes the
// associations made through it, their slots and queued events. Under evshim
// close() is not seen, so an association whose owner no longer has that
// very file at that number is dropped wherever a program could tell:
// re-association or dissociation of the number (DropClosedAtThenFind), the last
// free slot and EAGAIN (DropClosedAssocs), event counts (DropClosedEvents),
// delivery (Check). One kcmp per association looked at (Closed, inline in
// event_port.h).
void EventPorts::DropClosedAssocs(Port& p) {
  std::vector<FdAssoc*> closed;
  for (auto& [fd, a] : p.fd_assocs) {
    if (Closed(a)) closed.push_back(&a);
  }
  for (FdAssoc* a : closed) FreeAssoc(p, a);
}

void EventPorts::DropClosedEvents(Port& p) {
  std::vector<FdAssoc*> closed;
  for (const Queued& q : p.queue) {
    if (q.assoc != nullptr && Closed(*q.assoc)) closed.push_back(q.assoc);
  }
  for (FdAssoc* a : closed) FreeAssoc(p, a);
}

void EventPorts::DropClosedFds(ObjectId id) {
  Port* p = Find(id);
  if (p == nullptr) return;
  DropClosedAssocs(*p);
  Pump(*p);
  ServeDispatchers(*p);
}

EventPorts::FdAssoc* EventPorts::DropClosedAtThenFindInMap(Port& p, Pid pid, int fd) {
  std::vector<FdAssoc*> closed;
  FdAssoc* found = nullptr;
  auto range = p.fd_assocs.equal_range(fd);
  for (auto it = range.first; it != range.second; ++it) {
    FdAssoc& a = it->second;
    // For the owner (the usual caller) "still open" and "the caller's"
    // are one question: one check of the file answers both.
    const bool owner_has_it = !Closed(a);
    if (!owner_has_it) {
      closed.push_back(&a);
    } else if (found == nullptr && (a.owner == pid || host_.SameFile(pid, fd, a.watch))) {
      found = &a;
    }
  }
  for (FdAssoc* a : closed) FreeAssoc(p, a);
  return found;
}

void EventPorts::LastClose(ObjectId id) {
  Port* p = Find(id);
  if (p == nullptr) return;
  // Every descriptor is gone while threads still wait: another thread closed
  // the one they named, which illumos reports as EBADF (closeandsetf marks
  // the waiter stale; rule 27). The kernel's own EBADFD (port_close,
  // PORTQ_CLOSE; rule 33) needs a waiter without a descriptor: none exists.
  while (!p->waiters.empty()) {
    Waiter w = std::move(p->waiters.front());
    p->waiters.pop_front();
    if (w.deadline) deadlines_.Remove(*w.deadline, w.id);
    wait_port_.erase(w.id);
    Deliver(*p, *w.done, {}, EBADF);
  }
  while (!p->dispatchers.empty()) {
    Dispatcher d = std::move(p->dispatchers.front());
    p->dispatchers.pop_front();
    wait_port_.erase(d.id);
    d.done->Complete(GetOutcome{{}, EBADF, std::nullopt});
  }
  while (!p->fd_assocs.empty()) FreeAssoc(*p, &p->fd_assocs.begin()->second);
  while (!p->file_assocs.empty()) FreeFileAssoc(*p, p->file_assocs.begin()->second.get());
  for (auto& [key, t] : timers_) {
    if (t->port == id) UnbindTimer(*t);  // the timer runs on, notifying nobody
  }
  ErasePort(id);
  RearmDeadline();
}

void EventPorts::CloseBy(ObjectId id, Pid pid) {
  Port* p = Find(id);
  if (p == nullptr) return;
  DropHolder(*p, pid);
  Pump(*p);
  ServeDispatchers(*p);
}

void EventPorts::DropHolder(Port& p, Pid pid) {
  ObjectId id = p.id;
  if (p.alert && p.alert->owner == pid) p.alert.reset();  // port.c:217-221
  std::vector<FdAssoc*> mine;
  for (auto& [fd, a] : p.fd_assocs) {
    if (a.owner == pid) mine.push_back(&a);
  }
  for (FdAssoc* a : mine) FreeAssoc(p, a);  // port_close_sourcefd
  std::vector<FileAssoc*> watches;
  for (auto& [key, f] : p.file_assocs) {
    if (key.first == pid) watches.push_back(f.get());
  }
  for (FileAssoc* f : watches) FreeFileAssoc(p, f);  // port_close_fop
  for (auto& [key, t] : timers_) {
    if (key.first == pid && t->port == id) UnbindTimer(*t);  // timer_close_port
  }
  for (auto it = p.queue.begin(); it != p.queue.end();) {
    auto next = std::next(it);
    if (it->share == Share::kOwnerOnly && it->owner == pid) RemoveQueued(p, it);  // port_discard_events
    it = next;
  }
  std::erase(p.users, pid);
}

void EventPorts::AddUser(Port& p, Pid pid) {
  if (std::find(p.users.begin(), p.users.end(), pid) == p.users.end()) p.users.push_back(pid);
}

void EventPorts::ReapOthers(Port& p, Pid except) {
  std::vector<Pid> gone;
  for (Pid u : p.users) {
    if (u != except && !host_.HoldsObject(u, p.id)) gone.push_back(u);
  }
  for (Pid u : gone) DropHolder(p, u);
}

bool EventPorts::SlotFree(Port& p, Pid caller) {
  if (p.slots < p.max_events) return true;
  Reap(p, caller);  // a process that closed the port unseen may hold slots
  if (p.slots >= p.max_events) DropClosedAssocs(p);  // so may closed descriptors
  return p.slots < p.max_events;
}

void EventPorts::ProcessExited(Pid pid) {
  std::vector<WaitId> gone;
  for (auto& [id, p] : ports_) {
    for (Waiter& w : p->waiters) {
      if (w.caller.pid == pid) gone.push_back(w.id);
    }
  }
  for (WaitId w : gone) CancelWait(w);
  DeleteTimersOf(pid);  // timer_exit
  std::vector<ObjectId> ids;
  for (auto& [id, p] : ports_) ids.push_back(id);
  for (ObjectId id : ids) CloseBy(id, pid);
}

Result<void> EventPorts::Send(Caller caller, ObjectId id, uint32_t events, uint64_t user) {
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  Touch(*p, caller.pid);
  if (!SlotFree(*p, caller.pid)) return Errno{EAGAIN};  // port_alloc_event_local
  TakeSlot(*p);
  Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kUser), events, 0, user},
                     .owner = caller.pid,
                     .share = Share::kAnyone,
                     .holds_slot = true});
  return Ok();
}

Result<void> EventPorts::Alert(Caller caller, ObjectId id, uint32_t flags, uint32_t events,
                               uint64_t user) {
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  Touch(*p, caller.pid);
  if (events == 0) {  // leave alert mode; flags ignored (port.c:698-704)
    p->alert.reset();
    return Ok();
  }
  if ((flags & (kAlertSet | kAlertUpdate)) == (kAlertSet | kAlertUpdate)) return Errno{EINVAL};
  // An alert whose owner closed the port unseen is gone (rule 19).
  if (flags == kAlertUpdate && p->alert && p->alert->owner != caller.pid) Reap(*p, caller.pid);
  if (flags == kAlertUpdate && p->alert) return Errno{EBUSY};  // port.c:1091-1096
  p->alert = AlertState{events, user, caller.pid};
  // Every waiting thread wakes with the alert (port.c:1110-1136).
  std::list<Waiter> waiters = std::move(p->waiters);
  p->waiters.clear();
  PortEvent ev{static_cast<uint16_t>(PortSource::kAlert), events, 0, user};
  for (Waiter& w : waiters) {
    if (w.deadline) deadlines_.Remove(*w.deadline, w.id);
    wait_port_.erase(w.id);
    GetOutcome out;
    out.events.push_back(ev);
    w.done->Complete(std::move(out));  // the alert is not consumed: nothing to put back
  }
  RearmDeadline();
  return Ok();
}

Result<void> EventPorts::AssociateFd(Caller caller, ObjectId id, int64_t object, uint32_t events,
                                     uint64_t user) {
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  if (object < 0 || object > INT_MAX) return Errno{EBADFD};  // port_fd.c: not a valid fd
  Touch(*p, caller.pid);
  int fd = static_cast<int>(object);
  FdAssoc* a = DropClosedAtThenFind(*p, caller.pid, fd);  // a reused number starts clean (port_close_fd)
  if (a == nullptr) {
    if (!host_.FdOpen(caller.pid, fd)) return Errno{EBADFD};
    if (!SlotFree(*p, caller.pid)) return Errno{EAGAIN};
    Result<WatchId> watch = host_.WatchFd(caller.pid, fd);
    if (!watch.ok()) return watch.error().value == EBADF ? Errno{EBADFD} : watch.error();
    FdAssoc fresh;
    fresh.port = id;
    fresh.fd = fd;
    fresh.owner = caller.pid;  // the child may re-associate, but the owner stays (rule 12)
    fresh.watch = *watch;
    a = &p->fd_assocs.emplace(fd, fresh)->second;
    MarkAlone(*p, fd);
    p->had_fd_assoc = true;
    by_watch_[a->watch] = a;
    TakeSlot(*p);
  } else if (a->queued) {
    // "Remove any events that were already fired" (port_fd.c; rule 7).
    RemoveQueued(*p, a->queued_at);
  }
  a->events = events;
  a->user = user;
  p->kept_assoc = a;
  // Every retrieval and the poll family's settle route ready watches first,
  // so a ready file already registered may be reported there (rule 6 holds
  // at the first look; the host saves its poll).
  Result<uint32_t> ready = host_.ArmWatchReportedAtLook(a->watch, caller.pid, fd, events | kAlwaysReported);
  if (!ready.ok()) {
    FreeAssoc(*p, a);
    return ready.error().value == EBADF ? Errno{EBADFD} : ready.error();
  }
  uint32_t fired = *ready & (events | kAlwaysReported);
  if (fired != 0) {
    a->active = false;
    Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kFd), fired,
                                       static_cast<uint64_t>(fd), a->user},
                       .assoc = a,
                       .owner = a->owner,
                       .share = Share::kSameFile});
  } else {
    a->active = true;
  }
  return Ok();
}

Result<void> EventPorts::DissociateFd(Caller caller, ObjectId id, int64_t object) {
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  // port_fd.c port_dissociate_fd, in its order (rule 11).
  if (object < 0 || object > INT_MAX) return Errno{EBADFD};
  if (!p->had_fd_assoc) return Errno{ENOENT};
  int fd = static_cast<int>(object);
  if (!host_.FdOpen(caller.pid, fd)) return Errno{EBADFD};
  FdAssoc* a = DropClosedAtThenFind(*p, caller.pid, fd);
  if (a == nullptr) {
    ServeDispatchers(*p);
    return Errno{ENOENT};
  }
  if (a->owner != caller.pid) return Errno{EACCES};
  // A fired association's event kept aside for a retrieval (OfferHandOver)
  // is as good as queued.
  bool was_live = a->active || a->queued || a == hand_over_.assoc;
  FreeAssoc(*p, a);
  ServeDispatchers(*p);
  return was_live ? Ok() : Result<void>(Errno{ENOENT});
}

void EventPorts::FdClosing(Caller caller, int64_t object) {
  if (object < 0 || object > INT_MAX) return;
  const int fd = static_cast<int>(object);
  for (auto& [id, p] : ports_) {
    std::vector<FdAssoc*> closing;
    auto range = p->fd_assocs.equal_range(fd);
    for (auto it = range.first; it != range.second; ++it) {
      FdAssoc* a = &it->second;
      // Its owner's descriptor, still open: the close is about to happen.
      if (a->owner == caller.pid && host_.SameFile(caller.pid, fd, a->watch)) closing.push_back(a);
    }
    if (closing.empty()) continue;
    for (FdAssoc* a : closing) FreeAssoc(*p, a);
    ServeDispatchers(*p);
  }
}

EventPorts::Verdict EventPorts::Check(Port& p, const Queued& q, Pid pid) {
  switch (q.share) {
    case Share::kAnyone:
      return Verdict::kDeliver;
    case Share::kOwnerOnly:
      return q.owner == pid ? Verdict::kDeliver : Verdict::kSkip;
    case Share::kSameFile: {
      FdAssoc* a = q.assoc;
      // The owner closed (or replaced) the descriptor: the association is
      // gone and its event with it (rule 10).
      if (!host_.SameFile(a->owner, a->fd, a->watch)) {
        FreeAssoc(p, a);
        return Verdict::kDiscard;
      }
      if (pid == a->owner) return Verdict::kDeliver;
      return host_.SameFile(pid, a->fd, a->watch) ? Verdict::kDeliver : Verdict::kSkip;
    }
  }
  return Verdict::kSkip;
}

EventPorts::QueueList EventPorts::Collect(Port& p, Pid pid, uint32_t max) {
  QueueList taken;
  for (auto it = p.queue.begin(); it != p.queue.end() && taken.size() < max;) {
    auto next = std::next(it);
    switch (Check(p, *it, pid)) {
      case Verdict::kDeliver:
        if (it->assoc != nullptr) it->assoc->queued = false;
        if (it->file != nullptr) it->file->queued.reset();
        if (it->timer != nullptr) {
          // timer_port_callback: events = expirations since the last
          // delivery; the count restarts (timer.c, T:1026-1051).
          it->ev.events = static_cast<uint32_t>(it->timer->pending);
          it->timer->pending = 0;
          it->timer->queued = false;
        }
        taken.splice(taken.end(), p.queue, it);
        break;
      case Verdict::kSkip:
        break;
      case Verdict::kDiscard:
        // Check() erased this event with its association; an association has
        // at most one queued event, so `next` is still valid.
        break;
    }
    it = next;
  }
  for (const Queued& q : taken) {
    if (q.holds_slot) --p.slots;
  }
  UpdateReadiness(p);
  return taken;
}

void EventPorts::Requeue(Port& p, QueueList& taken) {
  // The nodes go back to the head in their order; a spliced node keeps its
  // iterator, so the sources' queued_at still name it.
  for (auto it = taken.begin(); it != taken.end(); ++it) {
    Queued& q = *it;
    if (q.holds_slot) ++p.slots;
    if (FdAssoc* a = q.assoc) {
      a->queued_at = it;
      a->queued = true;
    }
    if (q.file != nullptr) q.file->queued = it;
    if (q.timer != nullptr) {  // undo the delivery: the expirations count again
      q.timer->pending += static_cast<int>(q.ev.events);
      q.timer->queued = true;
    }
  }
  p.queue.splice(p.queue.begin(), taken);
  UpdateReadiness(p);
}

bool GetCompletion::CompleteOne(const PortEvent& ev) {
  GetOutcome out;
  out.events.push_back(ev);
  return Complete(out);
}

void EventPorts::QueueHandOver() {
  Port* p = hand_over_.port;
  FdAssoc* a = hand_over_.assoc;
  const PortEvent ev = hand_over_.ev;
  hand_over_ = HandOver{};
  if (a == nullptr) return;
  Enqueue(*p, Queued{.ev = ev, .assoc = a, .owner = a->owner, .share = Share::kSameFile});
}

bool EventPorts::TakeHandOver(Port& p, GetCompletion& done) {
  FdAssoc* a = hand_over_.assoc;
  const PortEvent ev = hand_over_.ev;
  hand_over_ = HandOver{};
  // Check's kSameFile for its owner, the caller (HandOverFits).
  if (Closed(*a)) {
    FreeAssoc(p, a);
    return false;
  }
  ++straight_hand_overs_;
  // As Deliver's one event: refused, it goes back to the head (the queue
  // is empty: Enqueue puts it there).
  if (!done.CompleteOne(ev)) {
    Enqueue(p, Queued{.ev = ev, .assoc = a, .owner = a->owner, .share = Share::kSameFile});
  }
  return true;
}

void EventPorts::Deliver(Port& p, GetCompletion& done, QueueList&& taken, int error) {
  if (error == 0 && taken.size() == 1) {
    // One event (an event loop's usual retrieval): handed over as it is,
    // no outcome list filled and emptied (GetCompletion::CompleteOne);
    // refused, it goes back to the head as below.
    if (!done.CompleteOne(taken.front().ev)) {
      Requeue(p, taken);
      return;
    }
    Recycle(taken, taken.begin());
    return;
  }
  GetOutcome out;
  out.error = error;
  out.events = std::move(spare_events_);  // borrowed storage (a nested Deliver finds none)
  out.events.clear();
  for (const Queued& q : taken) out.events.push_back(q.ev);
  const bool delivered = done.Complete(out);
  spare_events_ = std::move(out.events);
  if (!delivered && !taken.empty()) {
    Requeue(p, taken);
    return;
  }
  while (!taken.empty()) Recycle(taken, taken.begin());
}

// port_queue_thread (port.c:1814-1855), including its quirk: the search stops
// at the last waiter and inserts before it.
void EventPorts::InsertWaiter(Port& p, Waiter w) {
  if (p.waiters.empty()) {
    p.waiters.push_back(std::move(w));
    return;
  }
  auto it = p.waiters.begin();
  while (true) {
    if (w.spec.nget <= it->spec.nget) break;
    if (std::next(it) == p.waiters.end()) break;
    ++it;
  }
  p.waiters.insert(it, std::move(w));
}

void EventPorts::PumpWaiters(Port& p) {
  // Before waking a waiter of one process, the other processes that closed
  // the port unseen lose their events (rule 32, lazily).
  if (!p.waiters.empty() && !p.queue.empty()) Reap(p, p.waiters.front().caller.pid);
  while (!p.waiters.empty() && !p.alert) {
    Waiter& head = p.waiters.front();
    if (head.wait_new_events || p.queue.size() < head.spec.nget) return;
    // Events of closed descriptors do not count towards nget (port_close_fd
    // removed them).
    if (head.spec.nget > 1) {
      DropClosedEvents(p);
      if (p.queue.size() < head.spec.nget) return;
    }
    Waiter w = std::move(head);
    p.waiters.pop_front();
    QueueList taken = Collect(p, w.caller.pid, w.spec.max);
    if (taken.empty()) {
      // Nothing this process may retrieve: loop with the same deadline (rule 29).
      w.wait_new_events = true;
      InsertWaiter(p, std::move(w));
      return;
    }
    if (w.deadline) deadlines_.Remove(*w.deadline, w.id);
    wait_port_.erase(w.id);
    Deliver(p, *w.done, std::move(taken), 0);
  }
}

std::optional<WaitId> EventPorts::GetWith(Caller caller, ObjectId id, const GetSpec& spec, GetCompletion& done,
                                          std::unique_ptr<GetCompletion>* owned) {
  auto finish = [&](GetOutcome out) {
    done.Complete(std::move(out));
    return std::nullopt;
  };
  Port* p = Find(id);
  if (p == nullptr) return finish(GetOutcome{{}, EBADFD, std::nullopt});
  Touch(*p, caller.pid);
  // A look's report kept for this retrieval (OfferHandOver): taken below
  // when it is all this call would take, else queued first.
  bool straight = false;
  if (hand_over_.assoc != nullptr) [[unlikely]] {
    straight = HandOverFits(*p, caller.pid, spec);
    if (!straight) QueueHandOver();
  }
  Reap(*p, caller.pid);  // what other processes closed unseen is not counted or delivered
  // The checks of port_getn, in order (port.c:1188-1237; rule 20).
  if (spec.nget > spec.max && spec.max > 0) return finish(GetOutcome{{}, EINVAL, std::nullopt});
  // Counts never include events of descriptors closed since (port_close_fd).
  if (spec.max == 0 || spec.nget > 1) DropClosedEvents(*p);
  if (spec.max == 0) {
    return finish(GetOutcome{{}, 0, static_cast<uint32_t>(p->queue.size())});
  }
  if (spec.list_is_null) return finish(GetOutcome{{}, EFAULT, std::nullopt});
  if (spec.nget == 0) return finish(GetOutcome{});
  if (p->alert) {
    GetOutcome out;
    out.events.push_back(
        PortEvent{static_cast<uint16_t>(PortSource::kAlert), p->alert->events, 0, p->alert->user});
    return finish(std::move(out));
  }

  bool wait_new_events = false;
  bool timeout_checked = false;
  auto validate_timeout = [&]() -> int {
    timeout_checked = true;
    switch (spec.timeout.kind) {
      case Timeout::Kind::kForever:
        return 0;
      case Timeout::Kind::kFault:
        return EFAULT;
      case Timeout::Kind::kValue:
        if (spec.timeout.sec == 0 && spec.timeout.nsec == 0) return 0;  // port.c:1793
        if (spec.timeout.sec < 0 || spec.timeout.nsec < 0 || spec.timeout.nsec >= kNanosPerSecond) {
          return EINVAL;  // port.c:1798-1800
        }
        return 0;
    }
    return EINVAL;
  };
  bool poll_only = spec.timeout.kind == Timeout::Kind::kValue && spec.timeout.sec == 0 &&
                   spec.timeout.nsec == 0;

  if (straight || p->queue.size() >= spec.nget || poll_only) {
    // Enough events queued (no timeout validation, rule 21), or a zero
    // timeout: take what is deliverable now (rule 24).
    if (straight && TakeHandOver(*p, done)) {
      ServeDispatchers(*p);
      return std::nullopt;
    }
    // (Kept report of a closed file: gone, nothing taken, as Collect's.)
    QueueList taken = straight ? QueueList{} : Collect(*p, caller.pid, spec.max);
    if (!taken.empty() || poll_only) {
      // Answered now: no waiter is made (the completion takes the events).
      Deliver(*p, done, std::move(taken), 0);
      ServeDispatchers(*p);
      return std::nullopt;
    }
    // Nothing deliverable to this process: wait for new events (pgt_loop).
    wait_new_events = true;
  }
  if (!timeout_checked) {
    if (int err = validate_timeout(); err != 0) {
      Deliver(*p, done, {}, err);
      return std::nullopt;
    }
  }
  std::unique_ptr<GetCompletion> kept = owned != nullptr ? std::move(*owned) : done.KeepForWait();
  if (kept == nullptr) {
    Deliver(*p, done, {}, EINTR);  // a lent completion that cannot wait (none in the transports)
    return std::nullopt;
  }
  Waiter w{next_wait_++, caller, id, spec, std::move(kept), std::nullopt, wait_new_events};
  if (spec.timeout.kind == Timeout::Kind::kValue) {
    Nanos rel = spec.timeout.sec > (INT64_MAX / kNanosPerSecond) - 1
                    ? INT64_MAX / 2
                    : spec.timeout.sec * kNanosPerSecond + spec.timeout.nsec;
    w.deadline = AddNanos(host_.Now(), rel);
    deadlines_.Add(*w.deadline, w.id);
  }
  WaitId wid = w.id;
  wait_port_[wid] = id;
  InsertWaiter(*p, std::move(w));
  RearmDeadline();
  Pump(*p);
  ServeDispatchers(*p);
  return wait_port_.count(wid) ? std::optional<WaitId>(wid) : std::nullopt;
}

void EventPorts::CancelWait(WaitId wid) {
  auto wp = wait_port_.find(wid);
  if (wp == wait_port_.end()) return;
  Port* p = Find(wp->second);
  wait_port_.erase(wp);
  if (p == nullptr) return;
  for (auto it = p->waiters.begin(); it != p->waiters.end(); ++it) {
    if (it->id != wid) continue;
    if (it->deadline) deadlines_.Remove(*it->deadline, wid);
    p->waiters.erase(it);
    break;
  }
  for (auto it = p->dispatchers.begin(); it != p->dispatchers.end(); ++it) {
    if (it->id == wid) {
      p->dispatchers.erase(it);  // interrupted: nothing was queued (EINTR)
      break;
    }
  }
  RearmDeadline();
  Pump(*p);
}

void EventPorts::AbortWait(WaitId wid, int error) {
  auto wp = wait_port_.find(wid);
  if (wp == wait_port_.end()) return;
  Port* p = Find(wp->second);
  wait_port_.erase(wp);
  if (p == nullptr) return;
  for (auto it = p->waiters.begin(); it != p->waiters.end(); ++it) {
    if (it->id != wid) continue;
    Waiter w = std::move(*it);
    p->waiters.erase(it);
    if (w.deadline) deadlines_.Remove(*w.deadline, wid);
    Deliver(*p, *w.done, {}, error);
    break;
  }
  for (auto it = p->dispatchers.begin(); it != p->dispatchers.end(); ++it) {
    if (it->id != wid) continue;
    Dispatcher d = std::move(*it);
    p->dispatchers.erase(it);
    d.done->Complete(GetOutcome{{}, error, std::nullopt});
    break;
  }
  RearmDeadline();
  Pump(*p);
}

void EventPorts::OnWatchReady(WatchId watch, uint32_t revents) { (void)RouteWatchReady(watch, revents); }

bool EventPorts::RouteWatchReady(WatchId watch, uint32_t revents) {
  auto it = by_watch_.find(watch);
  if (it == by_watch_.end()) return false;
  AssocReady(it->second, revents);
  return true;
}

void EventPorts::AssocReady(FdAssoc* a, uint32_t revents) {
  if (!a->active) return;
  uint32_t fired = revents & (a->events | kAlwaysReported);
  if (fired == 0) {
    // Readiness we were not asked for: stay armed.
    (void)host_.ArmWatch(a->watch, a->owner, a->fd, a->events | kAlwaysReported);
    return;
  }
  a->active = false;  // one-shot: pollwakeup clears PORT_KEV_VALID (rule 5)
  Port* p = Find(a->port);
  if (p == nullptr) return;
  p->kept_assoc = a;  // its re-association usually follows
  if (p == hand_over_.port && hand_over_.assoc == nullptr && p->queue.empty() && p->waiters.empty() &&
      !p->alert) {
    // Kept for the call's retrieval (OfferHandOver): queued only if another
    // event or call needs the queue first.
    hand_over_.assoc = a;
    hand_over_.ev = PortEvent{static_cast<uint16_t>(PortSource::kFd), fired, static_cast<uint64_t>(a->fd), a->user};
    return;
  }
  Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kFd), fired,
                                     static_cast<uint64_t>(a->fd), a->user},
                     .assoc = a,
                     .owner = a->owner,
                     .share = Share::kSameFile});
}

void EventPorts::OnDeadline() {
  Nanos now = host_.Now();
  while (auto due = deadlines_.TakeDue(now)) {
    const uint64_t key = due->second;
    if (key & kTimerKey) {
      Timer* t = FindTimer(static_cast<Pid>((key >> 32) & 0x7fffffff), static_cast<int>(key & 0xffffffff));
      if (t != nullptr) FireTimer(*t, now);
      continue;
    }
    WaitId wid = key;
    auto wp = wait_port_.find(wid);
    if (wp == wait_port_.end()) continue;
    Port* p = Find(wp->second);
    wait_port_.erase(wp);
    if (p == nullptr) continue;
    for (auto it = p->waiters.begin(); it != p->waiters.end(); ++it) {
      if (it->id != wid) continue;
      Waiter w = std::move(*it);
      p->waiters.erase(it);
      // port_getn still collects what is available; port_get returns none (rule 25).
      QueueList taken;
      if (!w.spec.one) {
        Reap(*p, w.caller.pid);
        taken = Collect(*p, w.caller.pid, w.spec.max);
      }
      Deliver(*p, *w.done, std::move(taken), ETIME);
      Pump(*p);
      ServeDispatchers(*p);
      break;
    }
  }
  RearmDeadline();
}

uint32_t EventPorts::QueuedCount(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr ? 0 : static_cast<uint32_t>(p->queue.size());
}
uint32_t EventPorts::SlotsInUse(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr ? 0 : p->slots;
}
size_t EventPorts::WaiterCount(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr ? 0 : p->waiters.size();
}
size_t EventPorts::AssociationCount(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr ? 0 : p->fd_assocs.size();
}
size_t EventPorts::FileWatchCount(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr ? 0 : p->file_assocs.size();
}
size_t EventPorts::DispatcherCount(ObjectId id) const {
  const Port* p = Find(id);
  return p == nullptr ? 0 : p->dispatchers.size();
}

}  // namespace evshim::emul

// --- POSIX timers (illumos timer.c; docs/rules-ports.md §3.4) ---
namespace evshim::emul {

namespace {
bool ValidTimespec(int64_t sec, int64_t nsec) {  // itimerspecfix
  return sec >= 0 && nsec >= 0 && nsec < kNanosPerSecond;
}
Nanos ToNanos(int64_t sec, int64_t nsec) {
  if (sec > INT64_MAX / kNanosPerSecond - 1) return INT64_MAX / 2;
  return sec * kNanosPerSecond + nsec;
}
}  // namespace

EventPorts::Timer* EventPorts::FindTimer(Pid pid, int id) {
  auto it = timers_.find({pid, id});
  return it == timers_.end() ? nullptr : it->second.get();
}

void EventPorts::DeleteTimersOf(Pid pid) {
  std::vector<std::pair<int, std::optional<ObjectId>>> gone;
  for (auto it = timers_.lower_bound({pid, INT_MIN}); it != timers_.end() && it->first.first == pid; ++it) {
    gone.emplace_back(it->first.second, it->second->port);
  }
  for (auto& [id, port] : gone) {
    DeleteTimer(*FindTimer(pid, id));
    if (port) {
      if (Port* p = Find(*port)) ServeDispatchers(*p);  // the timer's slot came back
    }
  }
}

void EventPorts::ProcessExeced(Pid pid) {
  // exec_common: "Delete the POSIX timers" (timer_exit, T:1000-1015), of
  // every kind; the process's ports and associations are not touched here
  // (a close-on-exec descriptor's close is seen lazily; docs/design.md).
  DeleteTimersOf(pid);
}

bool EventPorts::HasTimers() const { return !timers_.empty(); }

size_t EventPorts::TimerCount(Pid pid) const {
  // Keyed by (pid, id): the process's timers are one range (asked at every
  // call while timers exist, so no full scan).
  auto first = timers_.lower_bound({pid, INT_MIN});
  auto last = timers_.lower_bound({pid + 1, INT_MIN});
  return static_cast<size_t>(std::distance(first, last));
}

Result<int> EventPorts::TimerCreate(Caller caller, int clock, const TimerNotify& notify) {
  using namespace timer_abi;
  if (clock < 0 || clock >= kClockMax) return Errno{EINVAL};  // no backend (T:598-599)
  switch (notify.notify) {  // T:644-656
    case kSigevNone:
    case kSigevThread:
    case kSigevPort:
      break;
    case kSigevSignal:
      if (notify.signo < 1 || notify.signo >= kNsig) return Errno{EINVAL};
      break;
    default:
      return Errno{EINVAL};
  }
  int id = 0;  // the lowest free slot (T:531-545)
  while (id < static_cast<int>(limits_.max_timers_per_process) && FindTimer(caller.pid, id)) ++id;
  if (id >= static_cast<int>(limits_.max_timers_per_process)) return Errno{EAGAIN};
  auto t = std::make_unique<Timer>();
  t->pid = caller.pid;
  t->id = id;
  t->clock = clock;
  t->notify = notify;
  if (notify.notify == kSigevPort || notify.notify == kSigevThread) {
    // port_associate_ksource then port_alloc_event: EBADF / EBADFD / EAGAIN
    // (T:733-753), before the backend's own check (T:773).
    if (!notify.port.ok()) return notify.port.error();
    Port* p = Find(*notify.port);
    if (p == nullptr) return Errno{EBADFD};
    Touch(*p, caller.pid);
    if (!SlotFree(*p, caller.pid)) return Errno{EAGAIN};
    ++p->slots;  // one wired event slot for the timer's life
    t->port = *notify.port;
  }
  // Only the realtime and high-resolution clocks have timers (clock_*.c).
  if (clock != kClockRealtime0 && clock != kClockRealtime && clock != kClockHighres) {
    if (t->port) --Find(*t->port)->slots;
    return Errno{EINVAL};
  }
  if (t->port) UpdateReadiness(*Find(*t->port));  // the timer's slot may have filled the port
  timers_.emplace(std::make_pair(caller.pid, id), std::move(t));
  return id;
}

void EventPorts::UnbindTimer(Timer& t) {
  if (!t.port) return;
  if (Port* p = Find(*t.port)) {
    for (auto it = p->queue.begin(); it != p->queue.end(); ++it) {
      if (it->timer == &t) {
        RemoveQueued(*p, it);
        break;
      }
    }
    ReturnSlot(*p);
  }
  t.port.reset();
  t.queued = false;
}

void EventPorts::DeleteTimer(Timer& t) {
  // timer_delete_locked: the undelivered event goes with it (T:143-160).
  UnbindTimer(t);
  if (t.next != 0) deadlines_.Remove(t.next, kTimerKey | (static_cast<uint64_t>(t.pid) << 32) | static_cast<uint32_t>(t.id));
  timers_.erase({t.pid, t.id});
  RearmDeadline();
}

Result<void> EventPorts::TimerDelete(Caller caller, int id) {
  Timer* t = FindTimer(caller.pid, id);
  if (t == nullptr) return Errno{EINVAL};
  std::optional<ObjectId> port = t->port;
  DeleteTimer(*t);
  if (port) {
    if (Port* p = Find(*port)) ServeDispatchers(*p);
  }
  return Ok();
}

Result<TimerSpec> EventPorts::TimerGettime(Caller caller, int id) {
  Timer* t = FindTimer(caller.pid, id);
  if (t == nullptr) return Errno{EINVAL};
  TimerSpec s;
  s.interval = t->interval;
  if (t->next != 0) s.value = std::max<Nanos>(1, t->next - host_.Now());
  return s;
}

Result<TimerSpec> EventPorts::TimerSettime(Caller caller, int id, uint32_t flags, int64_t vs,
                                           int64_t vns, int64_t is, int64_t ins) {
  Timer* t = FindTimer(caller.pid, id);
  // The old value is reported first (T:848-851), then the new one checked.
  if (t == nullptr) return Errno{EINVAL};
  Result<TimerSpec> old = TimerGettime(caller, id);
  const bool value_set = vs != 0 || vns != 0;
  if (!ValidTimespec(vs, vns) || (value_set && !ValidTimespec(is, ins))) return Errno{EINVAL};
  const uint64_t key = kTimerKey | (static_cast<uint64_t>(t->pid) << 32) | static_cast<uint32_t>(t->id);
  if (t->next != 0) deadlines_.Remove(t->next, key);
  t->next = 0;
  t->interval = value_set ? ToNanos(is, ins) : 0;
  if (value_set) {
    Nanos now = host_.Now();
    Nanos v = ToNanos(vs, vns);
    if (flags & timer_abi::kTimerAbstime) {
      // Absolute: in the timer's clock; realtime clocks convert to monotonic.
      bool realtime = t->clock != timer_abi::kClockHighres;
      Nanos mono = realtime ? v - host_.RealtimeOffset() : v;
      t->next = std::max(mono, now);
    } else {
      t->next = AddNanos(now, v);
    }
    if (t->next <= 0) t->next = 1;
    deadlines_.Add(t->next, key);
  }
  RearmDeadline();
  return old;
}

Result<int> EventPorts::TimerGetoverrun(Caller caller, int id) {
  Timer* t = FindTimer(caller.pid, id);
  if (t == nullptr) return Errno{EINVAL};
  return t->overrun;  // only the signal path counts overruns (T:414-415)
}

void EventPorts::FireTimer(Timer& t, Nanos now) {
  // Periodic timers catch up: every missed period is an expiration. O(1)
  // whatever the interval (1 ns included): the count is a division, the
  // next expiry the first period boundary after `now`, never a step per
  // period. The count saturates (it_pending is an int).
  int expirations = 1;
  if (t.interval > 0) {
    const Nanos late = now > t.next ? now - t.next : 0;
    const Nanos missed = late / t.interval;
    expirations += missed > INT_MAX / 2 ? INT_MAX / 2 : static_cast<int>(missed);
    t.next = AddNanos(now - late % t.interval, t.interval);
    if (t.next == kLatest) {
      t.next = 0;  // beyond the clock's range: it never expires again
    } else {
      deadlines_.Add(t.next, kTimerKey | (static_cast<uint64_t>(t.pid) << 32) | static_cast<uint32_t>(t.id));
    }
  } else {
    t.next = 0;
  }
  // timer_fire (T:459-467): while an expiry is undelivered, count it.
  if (t.pending > 0) {
    int64_t sum = static_cast<int64_t>(t.pending) + expirations;
    t.pending = sum > INT_MAX ? INT_MAX : static_cast<int>(sum);
    if (t.notify.notify == timer_abi::kSigevSignal) t.overrun += expirations;
    return;
  }
  if (t.port) {
    Port* p = Find(*t.port);
    if (p == nullptr) return;
    t.pending = expirations;
    t.queued = true;
    Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kTimer), 0,
                                       static_cast<uint64_t>(t.id), t.notify.user},
                       .timer = &t,
                       .owner = t.pid,
                       .share = Share::kOwnerOnly});
    return;
  }
  if (t.notify.notify == timer_abi::kSigevSignal) {
    t.overrun = expirations - 1;
    host_.SendTimerSignal(t.pid, t.notify.signo,
                          t.notify.value_is_id ? static_cast<uint64_t>(t.id) : t.notify.value, t.id);
  }
}

}  // namespace evshim::emul

// --- PORT_SOURCE_FILE (port_fop.c; docs/rules-ports.md rule 36, §1.7) and PORT_DISPATCH
// (port.c:668-681, 945-970; rule 37) ---
namespace evshim::emul {

void EventPorts::FreeFileAssoc(Port& p, FileAssoc* a) {
  if (a->queued) RemoveQueued(p, *a->queued);
  host_.DropPathWatch(a->watch);
  by_path_watch_.erase(a->watch);
  ReturnSlot(p);
  p.file_assocs.erase({a->owner, a->object});
}

Result<void> EventPorts::AssociateFile(Caller caller, ObjectId id, uint64_t object,
                                       const FileObject& fo, uint32_t events, uint64_t user) {
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  // port_associate_fop: the events first (the codec checks them before its
  // copyin too), then the lookup.
  if ((events & ~file_bits::kEventsMask) != 0) return Errno{EINVAL};
  Touch(*p, caller.pid);
  const bool nofollow = (events & file_bits::kNoFollow) != 0;
  events &= ~file_bits::kNoFollow;
  Result<PathWatch> w = host_.WatchPath(caller.pid, fo.name, nofollow);
  if (!w.ok()) return w.error();
  p->had_file_source = true;  // port_fop_associate_source, after the lookup
  auto key = std::make_pair(caller.pid, object);
  auto found = p->file_assocs.find(key);
  FileAssoc* a = found == p->file_assocs.end() ? nullptr : found->second.get();
  if (a != nullptr && (a->dev != w->dev || a->ino != w->ino || a->dir_dev != w->dir_dev ||
                       a->dir_ino != w->dir_ino)) {
    FreeFileAssoc(*p, a);  // "If it is not the same vnode, just discard it"
    a = nullptr;
  }
  if (a == nullptr) {
    if (!SlotFree(*p, caller.pid)) {  // port_pfp_setup: port_alloc_event_local
      host_.DropPathWatch(w->id);
      return Errno{EAGAIN};
    }
    TakeSlot(*p);
    auto owned = std::make_unique<FileAssoc>();
    owned->port = id;
    owned->owner = caller.pid;
    owned->object = object;
    a = owned.get();
    p->file_assocs.emplace(key, std::move(owned));
  } else {
    // Re-association: a queued event goes; events and user are replaced.
    if (a->queued) RemoveQueued(*p, *a->queued);
    host_.DropPathWatch(a->watch);
    by_path_watch_.erase(a->watch);
  }
  a->watch = w->id;
  by_path_watch_[a->watch] = a;
  a->dev = w->dev;
  a->ino = w->ino;
  a->dir_dev = w->dir_dev;
  a->dir_ino = w->dir_ino;
  a->events = events;
  a->user = user;
  a->active = true;
  // port_check_timestamp: each non-zero stored time that differs from the
  // file's fires its (requested) event now; FIFOs are not compared.
  if (!w->fifo) {
    uint32_t fired = 0;
    if ((events & file_bits::kAccess) && !fo.atime.zero() && fo.atime != w->atime) {
      fired |= file_bits::kAccess;
    }
    if ((events & file_bits::kModified) && !fo.mtime.zero() && fo.mtime != w->mtime) {
      fired |= file_bits::kModified;
    }
    if ((events & file_bits::kAttrib) && !fo.ctime.zero() && fo.ctime != w->ctime) {
      fired |= file_bits::kAttrib;
    }
    if (fired != 0) {
      a->active = false;
      Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kFile), fired, a->object, a->user},
                         .file = a,
                         .owner = a->owner,
                         .share = Share::kOwnerOnly});
    }
  }
  return Ok();
}

Result<void> EventPorts::DissociateFile(Caller caller, ObjectId id, uint64_t object) {
  Port* p = Find(id);
  if (p == nullptr) return Errno{EBADFD};
  // port_dissociate_fop: no FILE source on this port is EINVAL; the key is
  // the caller's pid and the object; found but retrieved is ENOENT.
  if (!p->had_file_source) return Errno{EINVAL};
  auto found = p->file_assocs.find({caller.pid, object});
  if (found == p->file_assocs.end()) return Errno{ENOENT};
  FileAssoc* a = found->second.get();
  const bool live = a->active || a->queued.has_value();
  FreeFileAssoc(*p, a);
  ServeDispatchers(*p);
  return live ? Ok() : Result<void>(Errno{ENOENT});
}

void EventPorts::OnFileEvent(WatchId watch, uint32_t events) {
  auto it = by_path_watch_.find(watch);
  if (it == by_path_watch_.end()) return;
  FileAssoc* a = it->second;
  Port* p = Find(a->port);
  if (p == nullptr) return;
  if (uint32_t exception = events & file_bits::kException) {
    // port_fop_excep: an active watch, or one whose event is still queued,
    // gets the exception (replacing the queued event); the watch ends.
    const bool deliver = a->active || a->queued.has_value();
    const Pid owner = a->owner;
    const uint64_t object = a->object, user = a->user;
    // The watch's slot passes to the event (held until retrieved), without
    // a moment free in between: a full port stays full and its descriptor
    // never polls POLLOUT meanwhile (rule 3).
    if (deliver) ++p->slots;
    FreeFileAssoc(*p, a);
    if (deliver) {
      Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kFile), exception, object, user},
                         .owner = owner,
                         .share = Share::kOwnerOnly,
                         .holds_slot = true});
    }
    ServeDispatchers(*p);
    return;
  }
  if (!a->active) return;  // one-shot: inactive until port_associate again
  const uint32_t fired = events & a->events;
  if (fired == 0) return;
  a->active = false;
  Enqueue(*p, Queued{.ev = PortEvent{static_cast<uint16_t>(PortSource::kFile), fired, a->object, a->user},
                     .file = a,
                     .owner = a->owner,
                     .share = Share::kOwnerOnly});
}

std::optional<WaitId> EventPorts::Dispatch(Caller caller, ObjectId id, int32_t source,
                                           uint32_t events, uint64_t object, uint64_t user,
                                           bool noshare, std::unique_ptr<GetCompletion> done) {
  auto fail = [&](int error) {
    done->Complete(GetOutcome{{}, error, std::nullopt});
    return std::nullopt;
  };
  Port* p = Find(id);
  if (p == nullptr) return fail(EBADFD);
  // Only the library's sources (port.c:675-678).
  if (source != static_cast<int32_t>(PortSource::kAio) &&
      source != static_cast<int32_t>(PortSource::kMq)) {
    return fail(EINVAL);
  }
  Touch(*p, caller.pid);
  Dispatcher d{next_wait_++, caller,
               PortEvent{static_cast<uint16_t>(source), events, object, user}, noshare,
               std::move(done)};
  if (!p->dispatchers.empty() || !SlotFree(*p, caller.pid)) {
    // port_alloc_event_block: sleep until a slot frees (EINTR on a signal).
    WaitId wid = d.id;
    wait_port_[wid] = id;
    p->dispatchers.push_back(std::move(d));
    return wid;
  }
  ++p->slots;
  if (!d.done->Complete(GetOutcome{})) {
    --p->slots;  // the caller is gone: nothing is queued
    return std::nullopt;
  }
  Enqueue(*p, Queued{.ev = d.ev,
                     .owner = caller.pid,
                     .share = noshare ? Share::kOwnerOnly : Share::kAnyone,
                     .holds_slot = true});
  return std::nullopt;
}

void EventPorts::ServeWaitingDispatchers(Port& p) {
  // Called where slots may have freed, never from inside a queue walk.
  while (!p.dispatchers.empty() && p.slots < p.max_events) {
    Dispatcher d = std::move(p.dispatchers.front());
    p.dispatchers.pop_front();
    wait_port_.erase(d.id);
    // Answer first: an interrupted caller (EINTR) must not have queued anything.
    if (!d.done->Complete(GetOutcome{})) continue;
    TakeSlot(p);
    Enqueue(p, Queued{.ev = d.ev,
                      .owner = d.caller.pid,
                      .share = d.noshare ? Share::kOwnerOnly : Share::kAnyone,
                      .holds_slot = true});
  }
}

}  // namespace evshim::emul
