// Theory of operation: the kqueue engine.
//
// Specification: DragonFly kern_event.c (shared/seeds/001_*, cited "DF
// kern_event.c:N") and OpenBSD kern_event.c rev 1.194 (shared/seeds/002_*,
// "OB kern_event.c:N"), with FreeBSD's differences from
// docs/rules-bsd.md ("§N"). Tests:
// tests/unit/kqueue_test.cc (engine, fake host), tests/abi/kevent_codec_test.cc
// (wire formats, handlers with a fake CallContext) and
// tests/integration/kqueue_test.cc (real programs under `evshim run`).
//
// One engine, three personalities. The abi layer decodes each personality's
// struct kevent into a canonical KChange (filters as KFilter, timer units
// already applied, EV_SYSFLAGS already masked) and passes a KqueuePolicy that
// says where its kernel differs: error posting without room, when the
// timeout is validated, whether a re-added timer restarts, which flags an
// event reports, and what EV_CLEAR resets for EVFILT_USER.
//
// Knotes. A knote is keyed by (filter, ident) in its kqueue. fd filters
// (READ, WRITE, EXCEPT) key by descriptor number in the registering process,
// like knote_fdclose (OB kern_event.c:1827-1845): the host does not keep the
// file open, so the engine learns of a close when it next looks at the knote
// (Host::SameFile) and then drops it silently: at retrieval, at re-arming,
// and when a change names the same (filter, fd) again (a reused number
// starts clean). The foreign library also reports each close of a number
// that got an fd knote (FdClosing: evshim_kqueue_fdclose), which drops them
// at the close itself, so the same open file coming back at the number
// (dup2 back, SCM_RIGHTS) does not keep them. A dup'd descriptor is another
// ident and keeps its own knote.
//
// States. A knote is ACTIVE when it has something to report; an active,
// enabled knote is QUEUED on the kqueue's active list. DISABLED knotes keep
// their state (timer counts, user triggers) but are not queued; one queued
// when disabled stays on the list until the next scan takes it off
// (OB kern_event.c:1363-1366); EV_ENABLE re-evaluates them (filter_process,
// OB kern_event.c:1220-1228). EV_DELETE
// drops the knote and whatever it had queued. Each measurement a change
// makes goes through MeasureAfterChange, which activates on a yes and does
// what its caller names on a no (docs/kqueue.md "A change's measurement").
//
// Filters. What differs between filters is one table entry each, the
// BSDs' struct filterops: Kqueues::FilterOps (kqueue.h), the entries in
// kqueue_filters.cc (attach, detach, event, touch, clear, copy for
// KQUEUE_CPONFORK, whether the ident is a descriptor, the poll bits of its
// watch), with the sources that feed each filter. This file is the machinery common to all of them; it asks the
// entry (OpsOf) and never switches on the filter. The sources of activity:
//  - READ/WRITE/EXCEPT: a host watch (Host::WatchFd/ArmWatch, one-shot). When
//    it fires the knote is queued; at retrieval it is re-measured
//    (Host::ProbeFd, the f_event of the scan; not when a change of the same
//    call measured it ready, ready_at_change_), and dropped from the list if no
//    longer ready, its watch re-armed (with that probe's readiness:
//    Host::ArmWatchMeasured). After delivery a level-triggered knote
//    goes back on the list (OB kern_event.c:1433-1444); an EV_CLEAR one
//    re-arms its watch edge-triggered (Host::ArmWatchEdge) so only new
//    activity fires it again; each measurement of it first settles the edge
//    watch (Host::SettleWatchEdge), so what it measured is no later edge.
//    An EV_ONESHOT knote is measured when its watch fires and reported as
//    measured even if the condition is gone by the scan.
//  - TIMER: deadlines kept here; the host's one deadline is armed with the
//    earliest of them and of the waiters' timeouts. data = expirations since
//    the last retrieval, missed periods counted by division (never a step
//    per period); periodic unless EV_ONESHOT; EV_CLEAR forced
//    (DF kern_event.c:489); a period is at least KqueuePolicy::
//    timer_min_period (one tick on OpenBSD and DragonFly). Deadlines
//    saturate at the end of the clock's range.
//  - USER: NOTE_TRIGGER and the FFAND/FFOR/FFCOPY controls on the saved
//    fflags (DF kern_event.c:577-619).
//  - PROC: Host::WatchProcess (refcounted per pid); the host reports exits,
//    forks and execs (OnProcessExit/Fork/Exec). The exit detaches the knote
//    (EV_EOF|EV_ONESHOT, data = wait status, OB kern_event.c:409-423);
//    NOTE_TRACK registers a knote on the child through Register with
//    KChange::track_parent (the kernels' EV_FLAG1), NOTE_TRACKERR on failure.
//  - VNODE: Host::WatchVnode; the host reports canonical NOTE_* bits
//    (OnVnodeEvent), the knote keeps those it asked for (filt_vnode). It is
//    an fd knote: closing the descriptor drops it (Host::SameVnode).
//  - SIGNAL: OnSignal, from the library's counting hook through the abi
//    (evshim_kqueue_signal): data = deliveries since the last retrieval,
//    EV_CLEAR forced; counted while disabled.
//
// Retrieval (kqueue_scan, OB kern_event.c:1274-1450). Collect takes knotes
// from the head of the list up to `max`, re-evaluating each; disabled or no
// longer active ones leave the list. The post-event actions (ONESHOT drops,
// DISPATCH disables, CLEAR resets, others go back to the tail) are applied
// only once the caller has accepted the events (Commit); a refused delivery
// (the thread was interrupted by a signal, or exited) puts the knotes back
// at the head untouched (PutBack): nothing is lost, nothing delivered twice.
// A kevent with nothing to report parks a Waiter; every activation pumps the
// waiters in arrival order, each getting distinct events. A zero timeout
// polls; a timeout returns 0 events; signals end a wait with EINTR and the
// changes stay applied (OB kern_event.c:1314-1317).
//
// Lifetime. A kqueue belongs to the process that created it: the abi's
// Resolve refuses it to any other process (fork does not inherit kqueues,
// docs/rules-bsd.md §4.6), except that FreeBSD's KQUEUE_CPONFORK kqueues are copied for
// the child (ForkPrepare in the parent, ForkClaim in the child: the
// library's atfork hook, docs/kqueue.md "Fork"). Its last close drops every knote and wakes waiters with EBADF
// (OpenBSD); on DragonFly and FreeBSD a waiter holds the file, so the kqueue
// lives on until its last waiter returns (KqueuePolicy::close_wakes_waiters).
// The owner's exit frees it. The kqueue's descriptor polls readable while
// its list is not empty (Host::ObjectReadinessChanged), so a kqueue can
// watch another.
#include "emul/kqueue.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <utility>

namespace evshim::emul {

namespace {
constexpr Nanos kHuge = INT64_MAX / 4;
}  // namespace

Kqueues::~Kqueues() {
  for (auto& [uid, kn] : knotes_) {
    if (auto detach = OpsOf(kn->kev.filter).detach) detach(*this, *kn);
  }
}

bool Kqueues::Stale(const Knote& kn) {
  // Only the filter's own state (Knote's union).
  if (IsIoFilter(kn.kev.filter)) return kn.io.watch && !host_.SameFile(kn.owner, kn.fd, *kn.io.watch);
  if (kn.kev.filter == KFilter::kVnode) {
    return kn.vnode.watch && !host_.SameVnode(kn.owner, kn.fd, *kn.vnode.watch);
  }
  return false;
}

const Kqueues::Kq* Kqueues::FindInMap(ObjectId id) const {
  auto it = kqs_.find(id);
  if (it == kqs_.end()) return nullptr;
  last_found_ = it->second.get();
  return last_found_;
}

std::optional<Pid> Kqueues::Owner(ObjectId id) const {
  const Kq* kq = Find(id);
  if (kq == nullptr) return std::nullopt;
  return kq->owner;
}

Result<ObjectId> Kqueues::Create(Caller caller, bool copy_on_fork) {
  if (kqs_.size() >= limits_.max_kqueues) return Errno{ENOMEM};
  auto kq = std::make_unique<Kq>();
  kq->id = next_kq_++;
  kq->owner = caller.pid;
  kq->copy_on_fork = copy_on_fork;
  ObjectId id = kq->id;
  kqs_.emplace(id, std::move(kq));
  return id;
}

// kqueue_fork_copy: a new kqueue with a copy of each knote whose filter has
// an f_copy, active ones activated. The copy watches the parent's
// descriptors (the child inherits the same open files at the same numbers;
// ForkClaim moves it to the child's).
ObjectId Kqueues::CopyKqueue(Kq& from) {
  auto owned = std::make_unique<Kq>();
  Kq& to = *owned;
  to.id = next_kq_++;
  to.owner = 0;
  to.copy_on_fork = true;  // inherited again by the child's own forks
  to.policy = from.policy;
  kqs_.emplace(to.id, std::move(owned));
  std::unordered_map<uint64_t, Knote*> copy_of;
  for (const Knote& src : from.knotes) {
    const FilterOps& ops = OpsOf(src.kev.filter);
    if (ops.copy == nullptr) continue;  // e.g. a per-process source
    if (knotes_.size() >= limits_.max_knotes) break;
    // The registration and what it would report; not its place in a list.
    // Its host resources are the filter's to take anew (f_copy).
    Knote& n = to.knotes.Add(src.kev.filter, src.kev.ident, tables_);
    n = src;
    n.uid = next_uid_++;
    n.kq = to.id;
    n.active = n.queued = n.ready_at_change = false;
    n.awaits_look = false;  // its watch is the copy's own, not armed yet
    n.queue_prev = n.queue_next = nullptr;
    if (!ops.copy(*this, src, n)) {  // e.g. closed meanwhile: nothing to copy
      to.knotes.Erase(n, tables_);
      continue;
    }
    copy_of[src.uid] = &n;
    knotes_.emplace(n.uid, &n);
  }
  // The active list in the parent's order, then the idle fd knotes armed.
  for (Knote* src : from.queue) {
    auto it = copy_of.find(src->uid);
    if (it != copy_of.end()) Activate(to, *it->second);
  }
  for (auto& [uid, n] : copy_of) {
    const Knote& src = *knotes_.at(uid);
    if (src.active) {
      n->active = true;  // disabled but active: EV_ENABLE brings it back
    } else if (!n->disabled) {
      ArmFd(to, *n);
    } else {
      // Disabled, idle: the file's activity from now on activates the copy
      // (knote: ACTIVE, not queued), for EV_ENABLE to queue (done_ev_add),
      // as for the parent's (ArmFdForActivity).
      ArmFdForActivity(to, *n);
    }
  }
  return to.id;
}

uint64_t Kqueues::ForkPrepare(Pid parent) {
  std::vector<Kq*> sources;
  for (auto& [id, kq] : kqs_) {
    if (kq->owner == parent && kq->copy_on_fork && !kq->closed) sources.push_back(kq.get());
  }
  if (sources.empty()) return 0;
  std::vector<std::pair<ObjectId, ObjectId>> copies;
  for (Kq* from : sources) {
    if (kqs_.size() >= limits_.max_kqueues) break;  // that kqueue is not copied
    copies.emplace_back(from->id, CopyKqueue(*from));
  }
  const uint64_t token = next_fork_token_++;
  fork_copies_[token] = ForkCopies{parent, std::move(copies)};
  RearmDeadline();
  return token;
}

std::vector<std::pair<ObjectId, ObjectId>> Kqueues::ForkClaim(uint64_t token, Pid child) {
  auto it = fork_copies_.find(token);
  if (it == fork_copies_.end() || child == it->second.parent) return {};
  // A forked child inherited every descriptor of the parent's kqueues.
  for (const auto& [parent_kq, copy] : it->second.copies) {
    if (!host_.HoldsObject(child, parent_kq)) return {};
  }
  std::vector<std::pair<ObjectId, ObjectId>> copies = std::move(it->second.copies);
  fork_copies_.erase(it);
  for (auto& [parent_kq, copy] : copies) {
    Kq* kq = Find(copy);
    if (kq == nullptr) continue;
    kq->owner = child;
    for (Knote& kn : kq->knotes) {
      if (kn.fd >= 0) kn.owner = child;  // its descriptors are the child's now
    }
  }
  return copies;
}

void Kqueues::ForkSourceClosed(ObjectId from) {
  for (auto it = fork_copies_.begin(); it != fork_copies_.end();) {
    std::erase_if(it->second.copies, [&](const std::pair<ObjectId, ObjectId>& pair) {
      if (pair.first != from) return false;
      Destroy(pair.second);  // unclaimed: nobody waits on it
      return true;
    });
    it = it->second.copies.empty() ? fork_copies_.erase(it) : std::next(it);
  }
}

Kqueues::Knote* Kqueues::FindKnote(Kq& kq, KFilter f, uint64_t ident) {
  return kq.knotes.Find(f, ident);
}

Kqueues::ReadinessHold::~ReadinessHold() {
  if (!holds_) return;
  Kq* kq = self_.Find(id_);
  if (kq == nullptr) return;
  kq->readiness_held = false;
  if (std::exchange(kq->readiness_moved, false) && kq->readable_reported != was_) {
    self_.host_.ObjectReadinessChanged(kq->id, kq->readable_reported);
  }
}

void Kqueues::ReadinessMoved(Kq& kq) {
  const bool readable = !kq.queue.empty();
  kq.readable_reported = readable;
  if (kq.readiness_held) {
    kq.readiness_moved = true;
  } else {
    host_.ObjectReadinessChanged(kq.id, readable);
  }
  // Without this, a knote on a kqueue whose descriptor signal was not yet
  // drained would wait for a wake-up the host never sends again.
  if (readable) WakeWatchers(kq.id);
}

void Kqueues::WakeWatchersOf(ObjectId id) {
  std::vector<uint64_t> uids;
  auto range = kq_watchers_.equal_range(id);
  for (auto it = range.first; it != range.second; ++it) uids.push_back(it->second);
  for (uint64_t uid : uids) {
    auto k = knotes_.find(uid);
    if (k == knotes_.end()) continue;
    Knote& kn = *k->second;
    Kq* outer = Find(kn.kq);
    if (outer == nullptr || outer->id == id) continue;  // itself: already readable
    Activate(*outer, kn);
    Pump(*outer);
  }
}

void Kqueues::Enqueue(Kq& kq, Knote& kn, bool at_head) {
  if (kn.queued) return;
  if (at_head) {
    kq.queue.PushFront(kn);
  } else {
    kq.queue.PushBack(kn);
  }
  kn.queued = true;
  UpdateReadiness(kq);
}

void Kqueues::Dequeue(Kq& kq, Knote& kn) {
  if (!kn.queued) return;
  kq.queue.Erase(kn);
  kn.queued = false;
  kn.awaits_look = false;
  UpdateReadiness(kq);
}

void Kqueues::Activate(Kq& kq, Knote& kn) {
  kn.active = true;
  if (!kn.disabled) Enqueue(kq, kn);  // knote_activate: not while disabled
}

void Kqueues::QueueHeldNow() {
  Knote& kn = *std::exchange(held_, nullptr);
  // At the head: it was held on an empty list, so any knote queued since was
  // activated after it (none is today between the change and the scan: a
  // guard for the order, knote_activate's).
  Enqueue(*held_kq_, kn, /*at_head=*/true);
}

void Kqueues::Drop(Kq& kq, Knote& kn) {
  if (held_ == &kn) held_ = nullptr;  // never queued: nothing to take off
  Dequeue(kq, kn);
  // Measured ready by this call's changes (EV_ONESHOT delivered, EV_DELETE):
  // usually the last listed, which leaves the list now so that the call's
  // end looks nothing up. One listed elsewhere stays: the end's look-up
  // finds it gone (or its watch's next knote, whose bit goes then anyway).
  if (kn.ready_at_change) {
    if (!ready_at_change_.empty()) {
      if (ready_at_change_.back() == kn.uid) ready_at_change_.pop_back();
    } else if (ready_at_change_first_ == kn.uid) {
      ready_at_change_first_ = 0;
    }
  }
  if (auto detach = OpsOf(kn.kev.filter).detach) detach(*this, kn);
  knotes_.erase(kn.uid);
  kq.knotes.Erase(kn, tables_);  // kn is gone
}

namespace {
// Heap order for std::push_heap (a max-heap): the earliest (when, uid) first.
struct LaterDeadline {
  template <typename D>
  bool operator()(const D& a, const D& b) const {
    return a.when != b.when ? a.when > b.when : a.uid > b.uid;
  }
};
}  // namespace

void Kqueues::AddDeadline(Nanos when, DeadlineKind kind, uint64_t id) {
  deadlines_moved_ = true;
  if (kind == DeadlineKind::kWait) {
    deadlines_.Add(when, std::make_pair(kind, id));
    return;
  }
  if (timer_heap_stale_ > timer_heap_.size() / 2 + 32) CompactTimerHeap(nullptr);
  timer_heap_.push_back(TimerDeadline{when, id});
  std::push_heap(timer_heap_.begin(), timer_heap_.end(), LaterDeadline{});
}

void Kqueues::RemoveDeadline(Nanos when, DeadlineKind kind, uint64_t id) {
  deadlines_moved_ = true;
  if (kind == DeadlineKind::kWait) {
    deadlines_.Remove(when, std::make_pair(kind, id));
    return;
  }
  // Called while the knote still runs for `when`: this entry is named, as
  // it would still look live.
  const TimerDeadline gone{when, id};
  if (!timer_heap_.empty() && timer_heap_.front().when == when && timer_heap_.front().uid == id) {
    PopTimerDeadline();
    PruneTimerHeap();
    return;
  }
  ++timer_heap_stale_;
  if (timer_heap_stale_ > timer_heap_.size() / 2 + 32) CompactTimerHeap(&gone);
}

// A timer knote that runs for this very deadline (ExpireTimer checks the same).
bool Kqueues::TimerDeadlineLive(const TimerDeadline& d) const {
  auto it = knotes_.find(d.uid);
  if (it == knotes_.end()) return false;
  const Knote& kn = *it->second;
  return kn.kev.filter == KFilter::kTimer && kn.timer.running && kn.timer.next_fire == d.when;
}

void Kqueues::PopTimerDeadline() {
  deadlines_moved_ = true;
  std::pop_heap(timer_heap_.begin(), timer_heap_.end(), LaterDeadline{});
  timer_heap_.pop_back();
}

void Kqueues::PruneTimerHeap() {
  while (!timer_heap_.empty() && !TimerDeadlineLive(timer_heap_.front())) {
    PopTimerDeadline();
    if (timer_heap_stale_ > 0) --timer_heap_stale_;
  }
}

// Keeps the live entries once each (a timer removed and added again for
// the same deadline has two), then gives back the room of the dropped ones.
void Kqueues::CompactTimerHeap(const TimerDeadline* also_drop) {
  deadlines_moved_ = true;
  std::erase_if(timer_heap_, [&](const TimerDeadline& d) {
    if (also_drop != nullptr && d.when == also_drop->when && d.uid == also_drop->uid) return true;
    return !TimerDeadlineLive(d);
  });
  std::sort(timer_heap_.begin(), timer_heap_.end(),
            [](const TimerDeadline& a, const TimerDeadline& b) { return LaterDeadline{}(b, a); });
  timer_heap_.erase(std::unique(timer_heap_.begin(), timer_heap_.end(),
                                [](const TimerDeadline& a, const TimerDeadline& b) {
                                  return a.when == b.when && a.uid == b.uid;
                                }),
                    timer_heap_.end());
  std::make_heap(timer_heap_.begin(), timer_heap_.end(), LaterDeadline{});
  if (timer_heap_.capacity() > 2 * timer_heap_.size() + 64) timer_heap_.shrink_to_fit();
  timer_heap_stale_ = 0;
}

std::optional<std::pair<Nanos, std::pair<Kqueues::DeadlineKind, uint64_t>>> Kqueues::TakeDueDeadline(Nanos now) {
  deadlines_moved_ = true;
  PruneTimerHeap();
  // At equal deadlines the waiters' come first (kWait before kTimer, as one
  // queue ordered by (when, kind, id) gives them).
  if (!timer_heap_.empty() && timer_heap_.front().when <= now && timer_heap_.front().when < deadlines_.Next()) {
    const TimerDeadline d = timer_heap_.front();
    PopTimerDeadline();
    return std::make_pair(d.when, std::make_pair(DeadlineKind::kTimer, d.uid));
  }
  return deadlines_.TakeDue(now);
}

// Arms an fd knote's host watch for `want`: level, or edge for EV_CLEAR.
// Returns the readiness the host reports at once.
Result<uint32_t> Kqueues::ArmWatchAsFlagsSay(Knote& kn, uint32_t want) {
  return (kn.kev.flags & kev::kClear) ? host_.ArmWatchEdge(*kn.io.watch, kn.owner, kn.fd, want)
                                      : host_.ArmWatch(*kn.io.watch, kn.owner, kn.fd, want);
}

// Arms the host watch of an fd knote that has nothing to report; level or,
// for EV_CLEAR, edge. Readiness reported at once activates it.
void Kqueues::ArmFd(Kq& kq, Knote& kn) {
  const uint32_t want = WatchMask(kn);
  if (want == 0 || !kn.io.watch) return;  // want: an fd filter's (Knote's union)
  Result<uint32_t> ready = ArmWatchAsFlagsSay(kn, want);
  if (!ready.ok()) return;  // the descriptor is gone: found stale at the next look
  if (*ready & want) Activate(kq, kn);
}

// FreeBSD adds a knote disabled without measuring it (kqueue_register runs
// f_event only without KN_DISABLED), yet its file's activity while it is
// disabled activates it (knote: ACTIVE, not queued), and EV_ENABLE then
// queues it for the scan to decide (done_ev_add). So its watch is armed for
// activity after now only: the file's present state is no activity.
void Kqueues::ArmFdForActivity(Kq& kq, Knote& kn) {
  const uint32_t want = WatchMask(kn);
  if (want == 0 || !kn.io.watch) return;  // not an fd filter's
  host_.SettleWatchEdge(*kn.io.watch, kn.owner, kn.fd, want);
  Result<uint32_t> ready = host_.ArmWatchEdge(*kn.io.watch, kn.owner, kn.fd, want);
  if (ready.ok() && (*ready & want)) Activate(kq, kn);  // activity since the settle
}

// The scan's filter (or a change's, MeasureAfterChange) just found the
// knote not ready. The kernels take it off the list and queue it again only
// when the file's next event makes the filter say yes (DF kern_event.c:
// 1510-1518 and 1796-1797, OB :1410-1416); a change never queues it
// (DF :1319-1322, OB :1174-1178).
// A level watch that reports at once is reporting the very state the filter
// refused (bytes under NOTE_LOWAT, a regular file at EOF): queued again, the
// knote could never be delivered, the kqueue would poll readable and its
// waiters would sleep through the activity that follows (the watch is not
// armed while it reports). So then only new activity may wake it: an edge
// watch (a new edge registration reports the current state once, hence the
// second arm). Activity that landed before that registration is in its
// report, not looked at: so the filter looks once more once it is armed.
bool Kqueues::ArmFdNotReady(Kq& kq, Knote& kn) {
  const uint32_t want = WatchMask(kn);
  if (want == 0 || !kn.io.watch) return false;  // want: an fd filter's (Knote's union)
  // A level watch is armed with what the filter's probe just measured
  // (the registration it re-armed reports whatever comes after).
  const bool measured = last_probe_.uid == kn.uid && !(kn.kev.flags & kev::kClear);
  Result<uint32_t> ready =
      measured ? host_.ArmWatchMeasured(*kn.io.watch, kn.owner, kn.fd, want, last_probe_.revents)
               : ArmWatchAsFlagsSay(kn, want);
  last_probe_ = {};
  if (!ready.ok() || !(*ready & want)) return false;  // armed (or the descriptor is gone)
  for (int arm = 0; arm < 2 && ready.ok() && (*ready & want); ++arm) {
    ready = host_.ArmWatchEdge(*kn.io.watch, kn.owner, kn.fd, want);
  }
  if (!ready.ok()) return false;  // the descriptor is gone: found stale at the next look
  bool dropped = false;
  if ((*ready & want) || Evaluate(kq, kn, &dropped)) Activate(kq, kn);  // Pump looks again
  return dropped;
}

// The kernels put a delivered level knote back on the list and re-evaluate
// it at the next scan, dropping it if the filter says no (DF
// kern_event.c:1545-1548 then 1510-1518; OB :1433-1444 then :1410-1416). A
// file not ready makes READ and WRITE say no (no byte, no EOF, no error:
// the bits poll reports), so a host that can tell the file was not
// reported by a look made since (Host::QuietSinceArm) spares the
// measurement. Not for a kqueue's descriptor (its readiness is applied
// lazily), nor for WRITE with NOTE_LOWAT (room at the mark says yes without
// POLLOUT: WriteEvent), nor for WRITE on a pipe's read end (the reverse
// direction's room says yes with no poll bit: ReverseWriteEvent), nor for
// the filter a FIFO's open mode lacks (DragonFly's bytes or room say yes
// with no poll bit: LackingFifoFilterEvent); EV_ONESHOT,
// EV_CLEAR and EV_DISPATCH knotes are not requeued.
void Kqueues::ArmForNextLook(Knote& kn) {
  if (!kn.io.watch || kn.io.watched_kq) return;
  if (kn.kev.filter == KFilter::kWrite &&
      ((kn.sfflags & kev::kNoteLowat) || kn.io_kind == FdKind::kPipeReadEnd ||
       kn.io_kind == FdKind::kFifoReadOnly)) {
    return;
  }
  if (kn.kev.filter == KFilter::kRead && kn.io_kind == FdKind::kFifoWriteOnly) return;
  const uint32_t want = WatchMask(kn);
  if (want == 0) return;
  Result<uint32_t> ready = host_.ArmWatchIfFree(*kn.io.watch, kn.owner, kn.fd, want);
  // Not armed (it would cost a look) or gone: the scan measures it.
  kn.awaits_look = ready.ok() && (*ready & want) == 0;
}

void Kqueues::NoteChangeMeasure(Knote& kn, bool ready) {
  const bool keep = ready && !(kn.kev.flags & kev::kClear);
  if (keep && !kn.ready_at_change) {
    if (ready_at_change_first_ == 0) {
      ready_at_change_first_ = kn.uid;
    } else {
      ready_at_change_.push_back(kn.uid);
    }
  }
  kn.ready_at_change = keep;
}

void Kqueues::ForgetChangeMeasuresNow() {
  auto forget = [this](uint64_t uid) {
    auto it = knotes_.find(uid);
    if (it != knotes_.end()) it->second->ready_at_change = false;
  };
  forget(std::exchange(ready_at_change_first_, 0));
  for (uint64_t uid : ready_at_change_) forget(uid);
  ready_at_change_.clear();
}

bool Kqueues::Evaluate(Kq& kq, Knote& kn, bool* dropped) {
  kn.awaits_look = false;  // measured: the look's answer is superseded
  const bool ready = Measure(kq, kn, dropped);
  // A no leaves a queued knote queued (a change's or an activity's
  // measurement; the scan dequeues first): a stale EV_ONESHOT reports it.
  if (!*dropped) kn.measured = ready || kn.queued;
  return ready;
}

bool Kqueues::Measure(Kq& kq, Knote& kn, bool* dropped) {
  *dropped = false;
  return OpsOf(kn.kev.filter).event(*this, kq, kn, dropped);
}

// The kernels run the filter at a change and only activate (knote_activate,
// OB kern_event.c:1174-1178, 1201-1204, 1224-1227; KNOTE_ACTIVATE, DF
// kern_event.c:1319-1322, 1355-1358): a no takes nothing back, and a queued
// knote stays on the list (the kqueue polls readable) until the scan's
// filter takes it off (OB :1410-1416, DF :1510-1518) or, EV_ONESHOT, posts
// it as last measured (DF :1510-1531; OB :303-319 with :1410). What
// differs is each step's (docs/kqueue.md "A change's measurement").
bool Kqueues::ChangeMeasures(const Kq& kq, const Knote& kn, uint16_t flags) {
  const bool disabled = kn.disabled || (flags & kev::kDisable);
  return !disabled || kq.policy.measures_disabled;
}

bool Kqueues::MeasureAfterChange(Kq& kq, Knote& kn, ChangeStep step) {
  bool dropped = false;
  const bool ready = Evaluate(kq, kn, &dropped);
  // Its descriptor closed while it was measured: gone silently, the change
  // succeeds (OB kern_event.c:1155-1172; knote_fdclose).
  if (dropped) return true;
  if (OpsOf(kn.kev.filter).on_descriptor) NoteChangeMeasure(kn, ready);
  if (ready) {
    // The call's last change, on an empty list: held for the scan's
    // hand-over instead of queued (held_).
    if (hold_for_hand_over_ && held_ == nullptr && kn.ready_at_change && !kn.disabled && !kn.queued &&
        kq.queue.empty()) {
      kn.active = true;
      held_ = &kn;
      held_kq_ = &kq;
      return false;
    }
    QueueHeld();  // activated first (the same knote, measured again): ahead
    Activate(kq, kn);
    return false;
  }
  // A watch armed here is armed as after the scan's no (ArmFdNotReady): one
  // that reports at once the state the filter refused (bytes under
  // NOTE_LOWAT, a regular file at EOF) does not queue the knote.
  switch (step) {
    case ChangeStep::kNew:
      return ArmFdNotReady(kq, kn);  // neither active nor queued
    case ChangeStep::kAdd:
      // Off the list (not active, or disabled and left ACTIVE): its watch
      // armed for the registration's new fflags and data.
      if (!kn.queued) return ArmFdNotReady(kq, kn);
      break;
    case ChangeStep::kModify:
      break;  // off the list: its watch is armed already (an enabled knote)
    case ChangeStep::kEnable:
      // Still on the list (disabled with no scan since: EV_DISABLE only
      // marks it): it stays where it is, on the three (DF :1374-1376 and
      // FreeBSD done_ev_add enqueue only a knote not QUEUED; OB :1220-1227
      // takes nothing back).
      if (kn.queued) break;
      if (kn.active && kq.policy.enable_queues_active) {
        // DF :1372-1378, FreeBSD done_ev_add: on the list for the scan.
        QueueHeld();
        Enqueue(kq, kn);
        kn.measured = true;  // a queued EV_ONESHOT is posted as the enable measured it
        break;
      }
      // OpenBSD, or nothing active: not queued. An ACTIVE left on a knote
      // off the list changes nothing there (knote_activate, OB :1731-1739).
      kn.active = false;
      return ArmFdNotReady(kq, kn);
  }
  // Left on the list. An EV_ONESHOT is posted as last measured, so its
  // file's next activity is measured when it comes (RouteWatchReady), as
  // the kernels' knote() does (DF :1796-1797); the scan measures the others.
  if (!kn.queued || !(kn.kev.flags & kev::kOneshot)) return false;
  return ArmFdNotReady(kq, kn);
}

// An EV_ADD on an existing knote: new fflags, data and udata (FreeBSD: not
// udata with EV_KEEPUDATA); whatever has already triggered stays triggered
// (OB kern_event.c:1194-1209). FreeBSD's ext[] stays as registered: only
// udata, kn_sfflags and kn_sdata change (kqueue_register).
void Kqueues::Modify(Kq& kq, Knote& kn, const KChange& change) {
  const bool add = (change.kev.flags & kev::kAdd) != 0;
  if (add || kq.policy.modify_without_add) {
    kn.sfflags = change.kev.fflags;
    kn.sdata = change.kev.data;
    if (!change.keep_udata) kn.kev.udata = change.kev.udata;
  }
  if (auto touch = OpsOf(kn.kev.filter).touch) touch(*this, kq, kn, change);
}

void Kqueues::DropClosedKnotesAt(Kq& kq, uint64_t ident) {
  if (kq.knotes.empty()) return;
  for (const FilterOps* ops : AllFilters()) {
    if (!ops->on_descriptor) continue;
    Knote* kn = FindKnote(kq, ops->filter, ident);
    if (kn != nullptr && Stale(*kn)) Drop(kq, *kn);
  }
}

void Kqueues::DropClosedKnotes() {
  std::vector<uint64_t> closed;
  for (auto& [uid, kn] : knotes_) {
    if (OpsOf(kn->kev.filter).on_descriptor && Stale(*kn)) closed.push_back(uid);
  }
  for (uint64_t uid : closed) {
    auto it = knotes_.find(uid);
    if (it == knotes_.end()) continue;
    if (Kq* kq = Find(it->second->kq)) Drop(*kq, *it->second);
  }
}

namespace {
// An anonymous pipe's end whose other end is closed, as its probe's poll
// bits say (Linux: POLLERR on a write end with no reader, POLLHUP on a read
// end with no writer).
bool PipePeerClosed(FdKind kind, uint32_t revents) {
  switch (kind) {
    case FdKind::kPipeWriteEnd:
      return (revents & poll_bits::kErr) != 0;
    case FdKind::kPipeReadEnd:
      return (revents & poll_bits::kHup) != 0;
    case FdKind::kUnknown:
    case FdKind::kRegular:
    case FdKind::kPipe:
    case FdKind::kFifo:
    case FdKind::kFifoReadOnly:
    case FdKind::kFifoWriteOnly:
    case FdKind::kSocket:
    case FdKind::kSocketOther:
    case FdKind::kOther:
      return false;
  }
  return false;
}

// A FIFO opened one way, and the filter its open mode lacks.
bool LacksOpenModeFor(KFilter filter, FdKind kind) {
  return (filter == KFilter::kRead && kind == FdKind::kFifoWriteOnly) ||
         (filter == KFilter::kWrite && kind == FdKind::kFifoReadOnly);
}
}  // namespace

bool Kqueues::UnmeasuredWriteOnAClosedPipe(Knote& kn) {
  if (!kn.io.watch) return false;
  Result<FdProbe> pr = host_.ProbeFd(kn.owner, kn.fd, FdProbeNeeds::kReadiness, kn.io_kind);
  if (!pr.ok()) return false;  // closed meanwhile: dropped when met (knote_fdclose)
  if (pr->kind == FdKind::kPipe && (pr->revents & (poll_bits::kHup | poll_bits::kErr))) {
    // The bits show a close; which way the pipe is open tells whose (the
    // probe of WRITE asks it when they do: PipeWay).
    pr = host_.ProbeFd(kn.owner, kn.fd, FdProbeNeeds::kWritable, pr->kind);
    if (!pr.ok()) return false;
  }
  kn.io_kind = pr->kind;  // the file the watch just confirmed: its kind stands
  return PipePeerClosed(pr->kind, pr->revents);
}

int Kqueues::Register(Kq& kq, Caller caller, KChange& change) {
  KeventRecord& kev = change.kev;
  const FilterOps& ops = OpsOf(kev.filter);
  const bool fd_filter = ops.on_descriptor;
  if (fd_filter) {
    if (kev.ident > static_cast<uint64_t>(INT_MAX)) return EBADF;  // OB kern_event.c:1066-1070
    if (!host_.FdOpen(caller.pid, static_cast<int>(kev.ident))) return EBADF;
  }
  // The number was closed (and perhaps reused) since: every knote on it went
  // with the close, whatever its filter (knote_fdclose, OB kern_event.c:
  // 1826-1845); this change starts clean.
  if (fd_filter) DropClosedKnotesAt(kq, kev.ident);
  Knote* kn = FindKnote(kq, kev.filter, kev.ident);
  if (kn == nullptr && !(kev.flags & kev::kAdd)) return ENOENT;  // OB kern_event.c:1115-1119

  if (kev.flags & kev::kAdd) {
    if (kn == nullptr) {
      if (knotes_.size() >= limits_.max_knotes) DropClosedKnotes();  // they went at close
      if (knotes_.size() >= limits_.max_knotes) return ENOMEM;
      Knote& n = kq.knotes.Add(kev.filter, kev.ident, tables_);
      n.uid = next_uid_++;
      n.kq = kq.id;
      n.kev.ident = kev.ident;
      n.kev.udata = kev.udata;
      n.kev.wire_filter = kev.wire_filter;
      n.kev.flags = kev.flags;
      n.kev.filter = kev.filter;
      n.ext.Set(kev.ext);
      if (!kq.policy.report_action_flags) n.kev.flags &= static_cast<uint16_t>(~kev::kActions);
      n.sfflags = kev.fflags;
      n.sdata = kev.data;
      n.owner = caller.pid;
      n.fd = fd_filter ? static_cast<int>(kev.ident) : -1;
      // A knote with a host watch is indexed once its attach gave it its
      // watch's uid (AdoptWatchUid): one insert instead of an insert and a
      // re-key. Nothing finds it by uid before (its watch is not armed).
      // Either uid is new to the index: counted up, or the watch's, which
      // no other knote holds (one watch per knote, dropped only with it),
      // so no look-up first (insert_new).
      const bool by_watch = ops.watch_mask != 0;
      if (!by_watch) knotes_.insert_new(n.uid, &n);
      if (int err = ops.attach(*this, kq, n, caller, change); err != 0) {
        Drop(kq, n);  // not indexed (by_watch): its erase finds nothing
        return err;
      }
      if (by_watch) knotes_.insert_new(n.uid, &n);
      if (n.proc.drop_now) {
        Drop(kq, n);
        return 0;
      }
      // The new knote's fflags and data are not echoed (OB kern_event.c:1139-1142).
      kev.fflags = 0;
      kev.data = 0;
      kn = &n;
      if (kev.flags & kev::kDisable) kn->disabled = true;
      // A pending event activates it (OB kern_event.c:1174-1178, DF
      // :1319-1322); otherwise nothing to take back: its attach activates
      // only what its filter then reports. FreeBSD measures no disabled
      // knote (KqueuePolicy::measures_disabled): its watch is armed for the
      // activity to come (ArmFdForActivity), and EV_ENABLE measures it.
      if (ChangeMeasures(kq, *kn, kev.flags)) {
        const uint64_t uid = kn->uid;
        attached_uid_ = uid;
        const bool listed = MeasureAfterChange(kq, *kn, ChangeStep::kNew);
        attached_uid_ = 0;
        // WRITE on a pipe whose other end is closed: the three refuse the
        // knote (pipe_kqfilter's EPIPE: FreeBSD sys_pipe.c, the peer's
        // `pipe_present != PIPE_ACTIVE`; OpenBSD, `pipe_peer` NULL;
        // DragonFly, the peer's buffer PIPE_CLOSED). The add's own probe
        // tells (measured just now, so the knote is still there): POLLERR
        // on a write end (no reader left), POLLHUP on a read end (no
        // writer left: its WRITE is the reverse direction). READ is
        // accepted (pipe_kqfilter checks nothing for it), as is a FIFO.
        if (kev.filter == KFilter::kWrite && last_probe_.uid == uid &&
            PipePeerClosed(kn->io_kind, last_probe_.revents)) {
          Drop(kq, *kn);
          return EPIPE;
        }
        if (listed) return 0;  // or dropped: its descriptor was closed meanwhile
        // EXCEPT on a pipe or FIFO: OpenBSD's EINVAL, DragonFly's
        // EOPNOTSUPP (KqueuePolicy::except_on_pipe_errno); its filter never
        // says yes there (no POLLPRI). The add's probe found the kind. Both
        // kernels measure a knote added disabled, so this sees every add.
        if (kev.filter == KFilter::kExcept && kq.policy.except_on_pipe_errno != 0 && IsPipeKind(kn->io_kind)) {
          Drop(kq, *kn);
          return kq.policy.except_on_pipe_errno;
        }
        // OpenBSD's fifo_kqfilter refuses READ on a FIFO opened without
        // FREAD and WRITE without FWRITE: EINVAL (KqueuePolicy::
        // LackingFifoFilter). The add's probe learned the open mode
        // (PipeWay, asked whenever the poll bits show the descriptor could
        // be open the other way); its filter said no.
        if (kq.policy.lacking_fifo_filter == KqueuePolicy::LackingFifoFilter::kRefused &&
            LacksOpenModeFor(kev.filter, kn->io_kind)) {
          Drop(kq, *kn);
          return EINVAL;
        }
      } else {
        // FreeBSD measures no disabled knote, but pipe_kqfilter refuses
        // WRITE on a pipe whose other end is closed before any of that
        // (EPIPE, as above): its EV_ADD|EV_DISABLE asks the poll bits.
        if (kev.filter == KFilter::kWrite && UnmeasuredWriteOnAClosedPipe(*kn)) {
          Drop(kq, *kn);
          return EPIPE;
        }
        ArmFdForActivity(kq, *kn);
      }
    } else {
      Modify(kq, *kn, change);  // a triggered USER knote activates in its touch
      // Measured as the kernels' filter_modify (OB kern_event.c:1201-1204, DF
      // :1319-1322): a ready file is queued again (EV_CLEAR too). Not ready:
      // a queued knote stays queued for the scan. Only descriptor knotes:
      // the others' sources activate them when their filter turns (a
      // timer's expiry, a trigger in the touch, a process event). FreeBSD
      // measures no knote disabled, or being disabled, here (EV_ENABLE
      // measures it below).
      if (fd_filter && ChangeMeasures(kq, *kn, kev.flags) && MeasureAfterChange(kq, *kn, ChangeStep::kAdd)) {
        return 0;
      }
    }
  } else if (kev.flags & kev::kDelete) {
    kn->keep_watch = true;  // DropClosedKnotesAt confirmed its file above
    Drop(kq, *kn);  // its queued event goes with it
    return 0;
  } else {
    // A change without EV_ADD still touches the knote: NOTE_TRIGGER and
    // the fflags controls of EVFILT_USER (DF kern_event.c:577-609), and on
    // FreeBSD/DragonFly udata too (hence FreeBSD's EV_KEEPUDATA).
    Modify(kq, *kn, change);
    // FreeBSD and DragonFly then run the filter as for EV_ADD and activate
    // the knote if it says yes, never deactivating it (DF kern_event.c:
    // 1331-1358; FreeBSD kqueue_register, done_ev_add: f_event unless
    // KN_DISABLED): so an EV_ENABLE (or any change) on an enabled EV_CLEAR
    // knote whose file is ready reports it again. nng re-arms its knotes
    // with EV_ENABLE|EV_DISPATCH|EV_CLEAR on knotes added with
    // EV_ADD|EV_DISABLE|EV_CLEAR (EV_DISPATCH is not taken without EV_ADD,
    // so they stay enabled): without this its UDP sender waited for a
    // POLLOUT that never came. OpenBSD runs no filter here (OB
    // kern_event.c:1194-1215). DragonFly measures a disabled knote too, and
    // one this change disables, before disabling it (DF :1355-1358, then
    // :1364-1367): a ready file queues an enabled one, which EV_DISABLE
    // then leaves on the list. FreeBSD measures neither (EV_ENABLE does,
    // below). Not ready: left queued or not, as it was; the scan takes it
    // off (DF :1510-1518).
    if (fd_filter && kq.policy.modify_without_add && ChangeMeasures(kq, *kn, kev.flags) &&
        MeasureAfterChange(kq, *kn, ChangeStep::kModify)) {
      return 0;
    }
  }

  // EV_DISABLE only marks the knote (OB kern_event.c:1217-1218, DF
  // :1361-1367, FreeBSD kqueue_register): a queued one stays on the list,
  // counted (the kqueue polls readable), until the scan takes it off with
  // ACTIVE kept (Collect; OB :1363-1366, DF :1503-1509), so EV_ENABLE
  // before that finds it where it was.
  if ((kev.flags & kev::kDisable) && !kn->disabled) kn->disabled = true;
  if ((kev.flags & kev::kEnable) && kn->disabled) {
    kn->disabled = false;
    // Measured (OB kern_event.c:1220-1227; DragonFly measured it in the
    // modify above, DF :1355-1358, FreeBSD after clearing KN_DISABLED): a
    // pending event queues it. Not ready: DragonFly and FreeBSD queue it
    // still if it is ACTIVE (DF :1372-1378), OpenBSD does not.
    if (MeasureAfterChange(kq, *kn, ChangeStep::kEnable)) return 0;
  }
  return 0;
}

std::vector<Kqueues::Taken> Kqueues::Collect(Kq& kq, uint32_t max) {
  // Both lists reuse the last scan's storage (Recycle): a retrieval
  // allocates nothing for them in the steady state.
  std::vector<Taken> taken;
  taken.swap(spare_taken_);
  taken.clear();
  // Only the knotes on the list now: one that re-activates during the scan
  // is not collected twice (the end marker, OB kern_event.c:1320-1331).
  // Each knote is listed with its address, which holds while no knote has
  // gone since (KnoteTable::Shared::erased); after a drop (a closed
  // descriptor found by the scan) it is found again by its uid. Today a
  // scan drops only the knote it is measuring (each filter's event drops
  // its own knote), which it does not visit again, so the look-up by uid
  // finds every other one where it was: it is there for a filter that
  // would drop another knote, not reached by any test.
  // One knote queued (the usual retrieval of an event loop): listed in
  // place, without the vector.
  std::pair<uint64_t, Knote*> one[1];
  std::vector<std::pair<uint64_t, Knote*>> listed;
  std::span<const std::pair<uint64_t, Knote*>> scan;
  if (kq.queue.size() == 1) {
    Knote* k = *kq.queue.begin();
    one[0] = {k->uid, k};
    scan = one;
  } else {
    listed.swap(spare_listed_);
    listed.clear();
    listed.reserve(kq.queue.size());
    for (Knote* k : kq.queue) listed.emplace_back(k->uid, k);
    scan = listed;
  }
  const uint64_t erased = tables_.erased;
  for (const auto& [uid, at] : scan) {
    if (taken.size() >= max) break;
    Knote* found = at;
    if (tables_.erased != erased) {
      auto it = knotes_.find(uid);
      if (it == knotes_.end()) continue;
      found = it->second;
    }
    Knote& kn = *found;
    if (!kn.queued) continue;
    const bool looked = kn.awaits_look;  // Dequeue forgets it
    Dequeue(kq, kn);
    if (kn.disabled) continue;  // stays active (OB kern_event.c:1363-1366)
    // Delivered level knote the look since did not report: the filter would
    // say no (ArmForNextLook); its watch stays armed.
    if (looked && host_.QuietSinceArm(*kn.io.watch)) {
      kn.active = false;
      continue;
    }
    bool dropped = false;
    // EV_ONESHOT is posted without the re-check: its condition may be gone
    // (DF kern_event.c:1510-1531; OB :303-319, filter_process's
    // `kev != NULL && EV_ONESHOT`; FreeBSD kqueue_scan copies kn_kevent),
    // with what it last measured. A closed descriptor still drops it.
    const bool oneshot = (kn.kev.flags & kev::kOneshot) != 0 && kn.measured;
    const int64_t last_data = kn.data;
    const uint32_t last_fflags = kn.fflags;
    const uint16_t last_eof = kn.eof;
    // Measured ready by a change of this very call: that is the scan's answer.
    const bool measured_now = kn.ready_at_change;
    if (!measured_now && !Evaluate(kq, kn, &dropped)) {
      if (dropped) continue;
      if (oneshot) {
        kn.data = last_data;
        kn.fflags = last_fflags;
        kn.eof = last_eof;
        taken.push_back(Taken{&kn, Report(kn)});
        continue;
      }
      kn.active = false;
      (void)ArmFdNotReady(kq, kn);  // dropped or not, the scan is done with it
      // A readiness reported by re-arming puts it back on the list; it will
      // be looked at again by the next scan, not this one.
      continue;
    }
    taken.push_back(Taken{&kn, Report(kn)});
  }
  UpdateReadiness(kq);
  if (scan.data() != one) Recycle(listed, spare_listed_);
  if (taken.empty()) Recycle(taken, spare_taken_);
  return taken;
}

KeventRecord Kqueues::Report(const Knote& kn) {
  KeventRecord ev = kn.Registered();
  ev.flags = static_cast<uint16_t>(kn.kev.flags | kn.eof);
  ev.fflags = kn.fflags;
  ev.data = kn.data;
  return ev;
}

// Post-event actions (OB kern_event.c:1419-1444), once delivered.
void Kqueues::Commit(Kq& kq, std::vector<Taken>& taken) {
  for (Taken& t : taken) CommitOne(kq, *t.kn);
}

void Kqueues::CommitOne(Kq& kq, Knote& kn) {
  const uint16_t flags = kn.kev.flags;
  if (flags & kev::kOneshot) {
    kn.keep_watch = true;  // measured (or confirmed) by this very scan
    Drop(kq, kn);
    return;
  }
  if (flags & (kev::kClear | kev::kDispatch)) {
    if (flags & kev::kDispatch) kn.disabled = true;
    if (flags & kev::kClear) OpsOf(kn.kev.filter).clear(kq, kn);
    kn.active = false;
    if (!kn.disabled) ArmFd(kq, kn);
    return;
  }
  Enqueue(kq, kn);  // level-triggered: back on the list, re-checked at the next scan
  ArmForNextLook(kn);
}

void Kqueues::PutBack(Kq& kq, std::vector<Taken>& taken) {
  for (auto it = taken.rbegin(); it != taken.rend(); ++it) PutBackOne(kq, *it->kn);
}

void Kqueues::PutBackOne(Kq& kq, Knote& kn) {
  kn.active = true;
  Enqueue(kq, kn, /*at_head=*/true);
}

bool Kqueues::Deliver(Kq& kq, KeventCompletion& done, std::vector<Taken>&& taken) {
  bool delivered = false;
  if (taken.size() == 1) {
    // The usual one event: handed over as it is, no list lent and filled.
    delivered = done.CompleteOne(taken.front().ev);
  } else {
    KeventOutcome out;
    out.events.swap(spare_events_);  // lent storage (a nested Deliver finds none)
    out.events.clear();
    for (const Taken& t : taken) out.events.push_back(t.ev);
    delivered = done.Complete(out);
    Recycle(out.events, spare_events_);
  }
  if (delivered) {
    Commit(kq, taken);
  } else {
    PutBack(kq, taken);
  }
  Recycle(taken, spare_taken_);
  return delivered;
}

// What Collect would do with that knote: take it off the list, no filter
// run (a change of this call measured it ready: `measured_now`), its
// report made; then Deliver's answer and post-event actions for it alone.
// Nothing else runs between the change and here (the engine is held for
// the call), so the scan's order and its answer are the same: the changes
// first, then the list, which holds only this knote.
Kqueues::Knote* Kqueues::SoleKnoteMeasuredByChange(Kq& kq) {
  if (kq.queue.size() != 1) return nullptr;
  Knote* kn = *kq.queue.begin();
  if (!kn->ready_at_change || kn->disabled || kn->awaits_look) return nullptr;
  return kn;
}

Kqueues::Knote* Kqueues::TakeHeldForHandOver(Kq& kq) {
  Knote* kn = held_;
  // SoleKnoteMeasuredByChange's test, the list being this knote alone.
  if (held_kq_ == &kq && kq.queue.empty() && kn->ready_at_change && !kn->disabled && !kn->awaits_look) {
    ++held_hand_overs_;
    held_ = nullptr;
    return kn;  // not queued: HandOver's Dequeue takes nothing off
  }
  QueueHeldNow();
  return nullptr;
}

void Kqueues::HandOver(Kq& kq, KeventCompletion& done, Knote& kn) {
  ++hand_overs_;
  Dequeue(kq, kn);
  if (done.CompleteOne(Report(kn))) {
    CommitOne(kq, kn);
  } else {
    PutBackOne(kq, kn);
  }
}

void Kqueues::RemoveWaiter(Kq& kq, std::list<Waiter>::iterator it) {
  if (it->deadline) RemoveDeadline(*it->deadline, DeadlineKind::kWait, it->id);
  wait_kq_.erase(it->id);
  kq.waiters.erase(it);
}

void Kqueues::PumpWaiters(Kq& kq) {
  int rescans = 0;
  while (!kq.waiters.empty() && !kq.queue.empty()) {
    auto it = kq.waiters.begin();
    std::vector<Taken> taken = Collect(kq, it->max);
    if (taken.empty()) {
      // Nothing deliverable (stale, or the filter said no). A knote that
      // activity re-queued while the scan re-armed its watch
      // (ArmFdNotReady) is looked at once more, now.
      if (++rescans > 1) break;
      continue;
    }
    std::unique_ptr<KeventCompletion> done = std::move(it->done);
    RemoveWaiter(kq, it);
    Deliver(kq, *done, std::move(taken));
  }
  // Only when this engine's deadlines moved since it last armed the timer
  // (a kevent on descriptors starts and stops none: no rearm per call).
  if (std::exchange(deadlines_moved_, false)) RearmDeadline();
}

std::optional<WaitId> Kqueues::KeventWith(Caller caller, ObjectId id, const KqueuePolicy& policy,
                                          std::span<KChange> changes, bool changes_fault,
                                          const KeventWait& wait, KeventCompletion& done,
                                          std::unique_ptr<KeventCompletion>* owned) {
  // Changes may have activated knotes other threads are waiting for.
  auto pump_others = [&] {
    if (Kq* k = Find(id)) {
      Pump(*k);  // rearms the deadline: the changes may have started or stopped timers
    } else {
      RearmDeadline();
    }
    ForgetChangeMeasures();  // the call's scans are done
    ReapClosed();
  };
  auto finish = [&](const KeventOutcome& out) -> std::optional<WaitId> {
    QueueHeld();  // not the scan: queued where its change put it
    done.Complete(out);
    pump_others();
    return std::nullopt;
  };
  auto fail = [&](int err) {
    KeventOutcome out;
    out.error = err;
    return finish(out);
  };
  // What the changes of an earlier call measured is not this call's.
  ForgetChangeMeasures();
  Kq* kq = Find(id);
  if (kq == nullptr || kq->closed) return fail(EBADF);
  const ReadinessHold hold(*this, *kq);
  kq->policy = policy;
  const bool timeout_valid =
      wait.forever || (wait.sec >= 0 && wait.nsec >= 0 && wait.nsec < kNanosPerSecond);
  if (policy.timeout_check == KqueuePolicy::TimeoutCheck::kBeforeChanges && !timeout_valid) {
    return fail(EINVAL);  // OB kern_event.c:919-922, before any change
  }

  // The change list, in order (OB kern_event.c:929-960, DF kern_event.c:820-858).
  // Each EV_ERROR record is copied out as it is made, so the records made
  // before the room ran out are in the caller's list even when the call
  // then fails. `room` counts nevents down and is only compared with 0: a
  // negative nevents never runs out (OB :945, FreeBSD kqueue_kevent).
  KeventOutcome records;
  records.receipts = true;
  int64_t room = wait.nevents_negative ? -1 : static_cast<int64_t>(wait.nevents);
  for (KChange& c : changes) {
    if (c.skip) continue;
    // The last change of a call that will scan may hold its knote (held_);
    // not while any READ knote watches a kqueue: a knote queued on this one
    // would activate it (WakeWatchers).
    hold_for_hand_over_ = &c == &changes.back() && wait.nevents > 0 && !(c.kev.flags & kev::kReceipt) &&
                          kq_watchers_.empty();
    int err = c.error != 0 ? c.error : Register(*kq, caller, c);
    hold_for_hand_over_ = false;
    if (err == 0 && !(c.kev.flags & kev::kReceipt)) continue;
    if (room == 0 && !policy.post_errors_without_room) {
      return fail(err);  // 0 for a receipt: the call returns 0 (OB kern_event.c:953-955)
    }
    KeventRecord r = c.kev;
    r.flags = kev::kError;  // every other flag is replaced
    r.data = err;
    if (!done.PostRecord(r) && policy.record_fault_stops) {
      return fail(err);  // DragonFly: the registration's error, no later change (DF :850-852)
    }
    records.events.push_back(r);
    if (room > 0) --room;
  }
  if (changes_fault) {
    if (!records.events.empty()) return finish(records);
    return fail(EFAULT);
  }
  if (!records.events.empty()) return finish(records);  // no scan (OB :961-965)
  if (wait.nevents_negative && policy.negative_nevents_einval) {
    return fail(EINVAL);  // FreeBSD kqueue_scan: maxevents < 0
  }
  if (wait.nevents == 0) return finish(KeventOutcome{});
  if (policy.timeout_check == KqueuePolicy::TimeoutCheck::kBeforeScan && !timeout_valid) {
    return fail(EINVAL);  // FreeBSD kqueue_scan: timespecvalid_interval
  }

  Nanos rel = 0;
  if (!wait.forever) {
    // DragonFly takes any tv_nsec (DF kern_event.c:866-869): both parts are
    // clamped before they are added, so no value overflows.
    const Nanos whole = std::clamp<int64_t>(wait.sec, -kHuge / kNanosPerSecond, kHuge / kNanosPerSecond);
    rel = std::min(whole * kNanosPerSecond + std::clamp<int64_t>(wait.nsec, -kHuge, kHuge), kHuge);
  }
  const bool poll_only = !wait.forever && rel <= 0;
  if (Knote* kn = held_ != nullptr ? TakeHeldForHandOver(*kq) : SoleKnoteMeasuredByChange(*kq)) {
    HandOver(*kq, done, *kn);
    pump_others();
    return std::nullopt;
  }
  std::vector<Taken> taken = Collect(*kq, wait.nevents);
  if (!taken.empty()) {
    Deliver(*kq, done, std::move(taken));
    pump_others();
    return std::nullopt;
  }
  if (poll_only) {
    // Zero timeout, or (DragonFly) a negative/invalid one: an expired target
    // returns 0 (DF kern_event.c:908-943).
    return finish(KeventOutcome{});
  }
  std::unique_ptr<KeventCompletion> kept = owned != nullptr ? std::move(*owned) : done.KeepForWait();
  if (kept == nullptr) return fail(EINTR);  // a lent completion that cannot wait (none in the abi)
  Waiter w{next_wait_++, caller, wait.nevents, std::nullopt, std::move(kept)};
  if (!wait.forever) {
    w.deadline = AddNanos(host_.Now(), rel);
    AddDeadline(*w.deadline, DeadlineKind::kWait, w.id);
  }
  WaitId wid = w.id;
  wait_kq_[wid] = id;
  kq->waiters.push_back(std::move(w));
  pump_others();
  return wait_kq_.count(wid) ? std::optional<WaitId>(wid) : std::nullopt;
}

void Kqueues::CancelWait(WaitId wid) {
  CancelWaitOnly(wid);
  ReapClosed();
}

void Kqueues::CancelWaitOnly(WaitId wid) {
  auto wk = wait_kq_.find(wid);
  if (wk == wait_kq_.end()) return;
  Kq* kq = Find(wk->second);
  if (kq == nullptr) {
    wait_kq_.erase(wk);
    return;
  }
  for (auto it = kq->waiters.begin(); it != kq->waiters.end(); ++it) {
    if (it->id == wid) {
      RemoveWaiter(*kq, it);
      break;
    }
  }
  RearmDeadline();
}

void Kqueues::Close(ObjectId id) {
  Kq* kq = Find(id);
  if (kq == nullptr || kq->closed) return;
  if (!kq->policy.close_wakes_waiters && !kq->waiters.empty()) {
    // DragonFly, FreeBSD: the waiters hold the file; the kqueue goes when
    // the last of them returns (ReapClosed).
    kq->closed = true;
    closed_with_waiters_.push_back(id);
    return;
  }
  Destroy(id);
}

void Kqueues::ReapClosedNow() {
  std::erase_if(closed_with_waiters_, [this](ObjectId id) {
    Kq* kq = Find(id);
    if (kq == nullptr) return true;
    if (!kq->waiters.empty()) return false;
    Destroy(id);
    return true;
  });
}

void Kqueues::Destroy(ObjectId id) {
  Kq* kq = Find(id);
  if (kq == nullptr) return;
  while (!kq->waiters.empty()) {
    auto it = kq->waiters.begin();
    std::unique_ptr<KeventCompletion> done = std::move(it->done);
    RemoveWaiter(*kq, it);
    KeventOutcome out;
    out.error = EBADF;
    done->Complete(std::move(out));
  }
  while (!kq->knotes.empty()) Drop(*kq, kq->knotes.front());
  if (kq->readable_reported) host_.ObjectReadinessChanged(id, false);
  if (last_found_ == kq) last_found_ = nullptr;
  kqs_.erase(id);
  RearmDeadline();
}

void Kqueues::ProcessExited(Pid pid) {
  std::vector<ObjectId> owned;
  for (auto& [id, kq] : kqs_) {
    std::vector<WaitId> gone;
    for (Waiter& w : kq->waiters) {
      if (w.caller.pid == pid) gone.push_back(w.id);
    }
    for (WaitId w : gone) CancelWaitOnly(w);
    // Its kqueues. Not the fork copies it made that are still unclaimed:
    // FreeBSD copies inside fork, so a child whose parent exits at once
    // (fork; parent _exit) has its copy; ours waits for the child's claim
    // (ForkSourceClosed frees it if none comes).
    if (kq->owner == pid) owned.push_back(id);
  }
  for (ObjectId id : owned) Destroy(id);
  ReapClosed();
}

void Kqueues::AdoptWatchUid(Knote& kn, WatchId watch) {
  // Not in knotes_ yet: an added knote is entered after its attach
  // (Register), a fork copy after its f_copy (CopyKqueue).
  kn.uid = kWatchUid | watch;
}

void Kqueues::OnWatchReady(WatchId watch, uint32_t revents) { (void)RouteWatchReady(watch, revents); }

bool Kqueues::RouteWatchReady(WatchId watch, uint32_t revents) {
  auto it = knotes_.find(kWatchUid | watch);
  if (it == knotes_.end()) return false;
  Knote& kn = *it->second;
  Kq* kq = Find(kn.kq);
  if (kq == nullptr) return true;
  (void)revents;  // the scan re-measures
  if (kn.kev.flags & kev::kOneshot) {
    // An EV_ONESHOT event is reported as last measured, even if the
    // condition is gone by the scan: measure it now (f_event at KNOTE
    // time, DF kern_event.c:1796-1797), queued already or not (a change
    // that found it not ready left it queued); not ready (e.g. below
    // NOTE_LOWAT): not activated (a queued one stays queued, reported as
    // measured now), and its watch armed for new activity only, as after
    // the scan's no (a level watch would report the refused state again).
    bool dropped = false;
    if (!Evaluate(*kq, kn, &dropped)) {
      if (!dropped) (void)ArmFdNotReady(*kq, kn);  // dropped or not, nothing more to do
      Pump(*kq);
      return true;
    }
  }
  Activate(*kq, kn);
  Pump(*kq);
  ReapClosed();
  return true;
}

void Kqueues::FdClosing(Pid pid, int64_t fd) {
  if (fd < 0 || fd > INT_MAX) return;  // no such descriptor number
  host_.ForgetFd(pid, static_cast<int>(fd));
  const uint64_t ident = static_cast<uint64_t>(fd);
  std::vector<uint64_t> closing;
  for (auto& [id, kq] : kqs_) {
    if (kq->owner != pid) continue;  // the process's own kqueues (fd_kqlist)
    for (const FilterOps* ops : AllFilters()) {
      if (!ops->on_descriptor) continue;
      if (Knote* kn = FindKnote(*kq, ops->filter, ident); kn != nullptr && kn->owner == pid) {
        closing.push_back(kn->uid);
      }
    }
  }
  for (uint64_t uid : closing) {
    auto it = knotes_.find(uid);
    if (it == knotes_.end()) continue;
    if (Kq* kq = Find(it->second->kq)) Drop(*kq, *it->second);
  }
  ReapClosed();
}

void Kqueues::OnDeadline() {
  const Nanos now = host_.Now();
  std::vector<ObjectId> touched;
  while (auto due = TakeDueDeadline(now)) {
    auto [when, what] = *due;
    if (what.first == DeadlineKind::kTimer) {
      auto k = knotes_.find(what.second);
      if (k == knotes_.end()) continue;
      if (Kq* kq = ExpireTimer(*k->second, when, now)) touched.push_back(kq->id);
      continue;
    }
    auto wk = wait_kq_.find(what.second);
    if (wk == wait_kq_.end()) continue;
    Kq* kq = Find(wk->second);
    if (kq == nullptr) continue;
    for (auto it = kq->waiters.begin(); it != kq->waiters.end(); ++it) {
      if (it->id != what.second) continue;
      it->deadline.reset();  // already erased from deadlines_
      std::unique_ptr<KeventCompletion> done = std::move(it->done);
      RemoveWaiter(*kq, it);
      done->Complete(KeventOutcome{});  // timed out: 0 events
      break;
    }
  }
  for (ObjectId id : touched) {
    if (Kq* kq = Find(id)) Pump(*kq);
  }
  ReapClosed();
  RearmDeadline();
}

size_t Kqueues::PendingCount(ObjectId id) const {
  const Kq* kq = Find(id);
  return kq == nullptr ? 0 : kq->queue.size();
}
size_t Kqueues::KnoteCount(ObjectId id) const {
  const Kq* kq = Find(id);
  return kq == nullptr ? 0 : kq->knotes.size();
}
size_t Kqueues::WaiterCount(ObjectId id) const {
  const Kq* kq = Find(id);
  return kq == nullptr ? 0 : kq->waiters.size();
}

}  // namespace evshim::emul
