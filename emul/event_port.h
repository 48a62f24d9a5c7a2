// The illumos event-port engine: ports, their queues, sources and waiters.
// Theory of operation: see the comment at the top of event_port.cc.
#pragma once

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "emul/engine.h"
#include "emul/flat_id_map.h"
#include "emul/host.h"
#include "emul/result.h"
#include "emul/types.h"

namespace evshim::emul {

// Event sources, numbered as illumos numbers them (these numbers are the
// identity of a source; the ILP32/LP64 codecs copy them unchanged).
enum class PortSource : uint16_t {
  kAio = 1,
  kTimer = 2,
  kUser = 3,
  kFd = 4,
  kAlert = 5,
  kMq = 6,
  kFile = 7,
};

struct PortEvent {
  uint16_t source = 0;
  uint32_t events = 0;
  uint64_t object = 0;
  uint64_t user = 0;
  friend bool operator==(const PortEvent&, const PortEvent&) = default;
};

struct PortLimits {
  uint32_t max_events_per_port = 65536;  // process.max-port-events
  uint32_t max_ports = 8192;             // project.max-port-ids
  uint32_t max_timers_per_process = 32;  // timer_max = max(_TIMER_MAX 32, 4 * NCPU)
};

// POSIX timers (illumos timer.c). Clock ids and notify kinds are illumos's.
namespace timer_abi {
constexpr int kClockRealtime0 = 0;  // __CLOCK_REALTIME0
constexpr int kClockVirtual = 1;
constexpr int kClockThreadCputime = 2;
constexpr int kClockRealtime = 3;
constexpr int kClockHighres = 4;  // = CLOCK_MONOTONIC
constexpr int kClockProcessCputime = 5;
constexpr int kClockMax = 6;
constexpr int kSigevNone = 1;
constexpr int kSigevSignal = 2;
constexpr int kSigevThread = 3;
constexpr int kSigevPort = 4;
constexpr int kNsig = 65;  // signal numbers are the host's (docs/abi.md); illumos NSIG is 74
constexpr uint32_t kTimerAbstime = 0x1;
}  // namespace timer_abi

struct TimerNotify {
  int notify = timer_abi::kSigevSignal;
  int signo = 14;  // SIGALRM: the backends' default sigevent (host numbering)
  uint64_t value = 0;
  bool value_is_id = true;  // evp == NULL: si_value is the timer id (timer.c:692)
  // SIGEV_PORT/SIGEV_THREAD: the port the caller named, resolved by the
  // handler (an errno when it is not a port: EBADF / EBADFD), and portnfy_user.
  Result<ObjectId> port = Errno{EBADF};
  uint64_t user = 0;
};

struct TimerSpec {
  Nanos value = 0;     // 0 disarms
  Nanos interval = 0;  // 0: one-shot
};

// How long a retrieval may wait. The foreign kernel validates the timeout only
// when the call would actually block (docs/rules-ports.md rule 21), so the decoder hands
// over what it read and the engine decides.
struct Timeout {
  enum class Kind : uint8_t { kForever, kValue, kFault };
  Kind kind = Kind::kForever;
  int64_t sec = 0;
  int64_t nsec = 0;
  static Timeout Forever() { return {}; }
  static Timeout Value(int64_t s, int64_t ns) { return {Kind::kValue, s, ns}; }
  static Timeout Fault() { return {Kind::kFault, 0, 0}; }
};

struct GetSpec {
  uint32_t max = 1;           // port_getn `max` (1 for port_get)
  uint32_t nget = 1;          // port_getn `*nget`: the minimum to wait for
  bool one = false;           // port_get: a timeout returns ETIME with no event
  bool list_is_null = false;  // the event list pointer was NULL
  Timeout timeout;
};

// A decoded illumos file_obj_t (PORT_SOURCE_FILE): the timestamps the
// program last saw and the name, read from its memory by the codec.
struct FileObject {
  FileStamp atime, mtime, ctime;
  std::string name;
};

struct GetOutcome {
  std::vector<PortEvent> events;
  // 0, or ETIME (events may still be non-empty for port_getn), or EINTR,
  // EBADFD, EINVAL, EFAULT.
  int error = 0;
  // For max == 0: the number of queued events (docs/rules-ports.md rule 20).
  std::optional<uint32_t> count_only;
};

// Receives the outcome of a retrieval, now or later. Returns false when the
// caller can no longer receive it (the target was interrupted, died, or the
// copy-out faulted before any byte was written): the engine then puts the
// events back at the head of the queue, in order, so nothing is lost.
class GetCompletion {
 public:
  virtual ~GetCompletion() = default;
  // By reference: the engine keeps the outcome's event list and reuses its
  // storage for the next retrieval (no allocation per retrieval).
  virtual bool Complete(const GetOutcome& outcome) = 0;
  // One event and no error, the usual retrieval of an event loop: the same
  // answer as Complete of an outcome holding `ev` alone, handed over
  // without the outcome's list (EventPorts::Deliver). The default builds
  // that outcome; a completion on the hot path answers from the event.
  virtual bool CompleteOne(const PortEvent& ev);
  // A completion lent by reference (EventPorts::Get's second form: on the
  // handler's stack) whose retrieval parks: the copy the waiter keeps.
  // The default has none (nullptr): such a completion is only lent to a
  // retrieval that cannot park.
  virtual std::unique_ptr<GetCompletion> KeepForWait() { return nullptr; }
};

// A port's whole state, as one engine hands it to another: the move of a
// port shared across fork from the in-process engine to the supervisor
// (docs/design.md "Moving a port at fork"). Canonical and pid-free: the
// importing caller becomes the owner of everything (the exporting engine
// serves one process). FILE watches are not part of it (ExportPort refuses).
struct PortState {
  struct Assoc {  // a PORT_SOURCE_FD association of the caller's
    int32_t fd = -1;
    uint32_t events = 0;  // canonical poll bits
    uint64_t user = 0;
    bool active = false;  // armed; else fired (its event is queued) or retrieved
    friend bool operator==(const Assoc&, const Assoc&) = default;
  };
  struct Timer {  // a SIGEV_PORT timer of the caller's: bound to this port, or unbound
    int32_t id = 0;
    bool bound = true;    // false: its port was closed; it notifies nobody (it moves with a port all the same)
    int32_t clock = 0;   // illumos clock id
    int32_t notify = 0;  // timer_abi::kSigevPort or kSigevThread
    uint64_t user = 0;   // portnfy_user
    int32_t pending = 0;  // expirations not yet delivered
    int32_t overrun = 0;
    Nanos next = 0;       // monotonic deadline, 0 = disarmed
    Nanos interval = 0;
    friend bool operator==(const Timer&, const Timer&) = default;
  };
  enum class EventKind : uint8_t {
    kPlain,  // USER, or a dispatched AIO/MQ event: holds a slot
    kFd,     // the fired event of assocs[ref]
    kTimer,  // the expiry event of timers[ref] (its count is the timer's pending)
  };
  struct Event {
    EventKind kind = EventKind::kPlain;
    uint32_t ref = 0;
    PortEvent ev;             // kPlain: the event as queued
    bool owner_only = false;  // kPlain: a PORT_SYS_NOSHARE dispatch
    friend bool operator==(const Event&, const Event&) = default;
  };
  uint32_t max_events = 0;
  bool had_fd_assoc = false;
  bool had_file_source = false;  // port_dissociate(FILE) is ENOENT, not EINVAL
  bool alert = false;
  uint32_t alert_events = 0;
  uint64_t alert_user = 0;
  std::vector<Assoc> assocs;
  std::vector<Timer> timers;
  std::vector<Event> queue;  // head first
  friend bool operator==(const PortState&, const PortState&) = default;
};

class EventPorts final : public Engine {
 public:
  EventPorts(Host& host, PortLimits limits) : Engine(host), limits_(limits) {}
  EventPorts(const EventPorts&) = delete;
  EventPorts& operator=(const EventPorts&) = delete;

  // --- objects ---
  Result<ObjectId> Create(Caller caller);
  // The last descriptor of the port is gone (in every process). Waiters and
  // blocked dispatchers fail with EBADF (rule 27; docs/design.md).
  void LastClose(ObjectId port) override;
  // Process `pid` stopped holding the port (close of a shared port, exit):
  // its associations, its alert, its non-shareable events go (rule 32).
  void CloseBy(ObjectId port, Pid pid);
  // Process exit: CloseBy for every port, and its waiters vanish.
  void ProcessExited(Pid pid) override;
  // The process replaced its image (execve): its POSIX timers, of every
  // notification kind, are deleted (illumos exec_common -> timer_exit).
  void ProcessExeced(Pid pid);
  bool Exists(ObjectId port) const { return ports_.count(port) != 0; }
  size_t port_count() const { return ports_.size(); }

  // --- sources ---
  Result<void> Send(Caller caller, ObjectId port, uint32_t events, uint64_t user);
  Result<void> Alert(Caller caller, ObjectId port, uint32_t flags, uint32_t events, uint64_t user);
  Result<void> AssociateFd(Caller caller, ObjectId port, int64_t fd, uint32_t events, uint64_t user);
  Result<void> DissociateFd(Caller caller, ObjectId port, int64_t fd);
  // The caller is about to close descriptor `fd` (reported by the foreign
  // library's close/dup2/dup3): the associations it made through it go,
  // in every port (port_close_fd, port.c:164-169, 306-316).
  void FdClosing(Caller caller, int64_t fd);
  // PORT_SOURCE_FILE (port_fop.c; rule 36). `object` is the file_obj_t's
  // address in the caller: with the pid, the watch's key and portev_object.
  // `events` may carry FILE_NOFOLLOW; other bits outside FILE_EVENTS_MASK
  // are EINVAL.
  Result<void> AssociateFile(Caller caller, ObjectId port, uint64_t object, const FileObject& fo,
                             uint32_t events, uint64_t user);
  Result<void> DissociateFile(Caller caller, ObjectId port, uint64_t object);
  // PORT_DISPATCH (port.c:668-681, 945-970; rule 37): queues an event of
  // source AIO or MQ; when the port has no free slot the call waits for one
  // (parked like a retrieval: returns its id). `done` hears 0 or an errno;
  // `noshare`: only the dispatching process may retrieve it.
  std::optional<WaitId> Dispatch(Caller caller, ObjectId port, int32_t source, uint32_t events,
                                 uint64_t object, uint64_t user, bool noshare,
                                 std::unique_ptr<GetCompletion> done);

  // --- retrieval ---
  // Calls `done` now, or parks the request and returns its id; a parked
  // request is completed by a later event, alert, deadline or close.
  std::optional<WaitId> Get(Caller caller, ObjectId port, const GetSpec& spec,
                            std::unique_ptr<GetCompletion> done) {
    GetCompletion& lent = *done;
    return GetWith(caller, port, spec, lent, &done);
  }
  // The same, `done` lent (a completion on the caller's stack: most
  // retrievals are answered before Get returns, and make none); a
  // retrieval that parks keeps `done.KeepForWait()` in its waiter (none:
  // answered EINTR, as a wait that ended at once; the transports' lent
  // completions all keep a copy).
  std::optional<WaitId> Get(Caller caller, ObjectId port, const GetSpec& spec, GetCompletion& done) {
    return GetWith(caller, port, spec, done, nullptr);
  }
  // One FD report handed straight to the retrieval that follows it in the
  // same call (the in-process engine's look, then its port_get/port_getn;
  // docs/design.md "Instructions per event", s37). While offered for
  // `port`, the first FD report for it that finds its queue empty, no
  // waiter and no alert is kept aside instead of queued (its association
  // fired, inactive, as when queued); that port's next Get takes it
  // straight to its completion when it would have taken exactly that one
  // event (port_get, or port_getn with nget 1 and a list, by the
  // association's owner, the port of one process). Anything else that
  // would see the queue puts the kept event in it first, in its place:
  // another event queued on the port (a second report, a FILE event, a
  // timer that fired after the look), any other retrieval, the offer's
  // end. Its association freed (closed, dissociated) discards it, as its
  // queued event would be.
  void OfferHandOver(ObjectId port) { hand_over_.port = Find(port); }
  // The offer ends (after the call's handler): a report not taken is queued.
  void EndHandOver() {
    if (hand_over_.port != nullptr) [[unlikely]] QueueHandOver();
  }
  // The retrievals answered straight from a look's report (tests).
  uint64_t StraightHandOvers() const { return straight_hand_overs_; }
  // The waiting thread is gone (interrupted by a signal, exited): forget it.
  void CancelWait(WaitId id) override;
  // Ends a parked call with `error` (its port descriptor was closed: EBADF).
  void AbortWait(WaitId id, int error);
  // Drops the port's associations whose descriptors were closed, then serves
  // waiting dispatchers (the supervisor's periodic sweep while calls wait).
  void DropClosedFds(ObjectId port);

  // --- POSIX timers with port notification (timer.c; docs/rules-ports.md §3.4) ---
  // `clock` is illumos's id. Returns the new timer id (lowest free slot).
  Result<int> TimerCreate(Caller caller, int clock, const TimerNotify& notify);
  Result<void> TimerDelete(Caller caller, int id);
  // Arms (or disarms, value 0) the timer; relative unless kTimerAbstime.
  // Returns the previous setting, as timer_gettime would have.
  Result<TimerSpec> TimerSettime(Caller caller, int id, uint32_t flags, int64_t value_sec,
                                 int64_t value_nsec, int64_t interval_sec, int64_t interval_nsec);
  Result<TimerSpec> TimerGettime(Caller caller, int id);
  Result<int> TimerGetoverrun(Caller caller, int id);
  size_t TimerCount(Pid pid) const;
  bool HasTimers() const;  // any process has a timer (the host then watches for execs)

  // --- moving a port to another engine (docs/design.md "Moving a port at fork") ---
  // The port's state as process `pid`, its only user, sees it, with the
  // timers bound to it and, with `unbound_timers`, `pid`'s timers whose port
  // is gone (a process's timer ids are one table: they move together).
  // Associations whose descriptor was closed are dropped first
  // (port_close_fd). ENOTSUP: the port has FILE watches or events, or
  // another process used it; EBADFD: no such port. Nothing changes for the
  // port's users.
  Result<PortState> ExportPort(ObjectId port, Pid pid, bool unbound_timers);
  // After a successful export: the port and the exported timers are
  // forgotten without a word to the port's waiters (their calls are issued
  // again to the new owner by the transport: returned here, never
  // completed); its watches are dropped.
  std::vector<WaitId> ForgetExported(ObjectId port, Pid pid, const PortState& exported);
  // A new port with `state`, owned by `caller`: associations are watched
  // again at the caller's descriptors (an armed one that is ready fires at
  // once), timers take their ids in the caller's table. EINVAL: the state is
  // inconsistent or beyond this engine's limits; EAGAIN: too many ports or a
  // timer id is taken; a host error of a watch. Nothing is left on failure.
  Result<ObjectId> ImportPort(Caller caller, const PortState& state);

  // The ports `pid`'s timers are bound to; `*unbound`: it has timers whose
  // port is gone.
  std::vector<ObjectId> PortsWithTimersOf(Pid pid, bool* unbound) const;

  // --- host callbacks ---
  void OnWatchReady(WatchId watch, uint32_t revents) override;
  bool RouteWatchReady(WatchId watch, uint32_t revents) override;
  // A watched file changed (file_bits; exceptions end the watch).
  void OnFileEvent(WatchId watch, uint32_t events);
  void OnDeadline() override;
  Nanos NextDeadline() const override { return deadlines_.Next(); }

  // --- the port descriptor's POLLIN reports over one call ---
  // While a ReportHold lives, a port's POLLIN change is not reported at
  // once (Host::ObjectReadinessChanged): its end reports each port whose
  // POLLIN then differs from what the host was last told, and none whose
  // POLLIN ends as it began (an event queued by a call's look and taken by
  // its port_get). For a host that applies the reports only after the call
  // (the in-process engine: ObjectTable::ApplyReadiness at the call's end,
  // none inside it) that is what it sees anyway, for no report instead of
  // two (docs/design.md "Instructions per event"). A port erased meanwhile
  // is reported at its erasure; a host that applies reports inside the call
  // (a watch on an object's descriptor: a port in a port) lets them out
  // first (ReportHeldNow). POLLOUT is reported at once as always.
  class ReportHold {
   public:
    explicit ReportHold(EventPorts& ports) : ports_(&ports) { ports.reports_held_ = true; }
    ReportHold(const ReportHold&) = delete;
    ReportHold& operator=(const ReportHold&) = delete;
    ~ReportHold() { Release(); }
    // Ends the hold before the object's end (idempotent).
    void Release() {
      if (ports_ == nullptr) return;
      ports_->reports_held_ = false;
      ports_->ReportHeldNow();
      ports_ = nullptr;
    }

   private:
    EventPorts* ports_;
  };
  // The reports a hold kept so far, now (the hold goes on). Inline, the
  // usual end of a call first: its one port held, whose POLLIN ends as
  // the host was last told (an event queued by the look and taken by the
  // retrieval): nothing to report.
  void ReportHeldNow() {
    if (held_port_ == nullptr) return;
    if (held_more_.empty() && (!held_port_->queue.empty()) == held_port_->readable_reported) [[likely]] {
      held_port_->report_held = false;
      held_port_ = nullptr;
      return;
    }
    ReleaseHeldReports();
  }

  // --- ownership (emul/engine.h): ports and their waits are numbered below
  // kKqueueIdBase ---
  bool OwnsObject(ObjectId obj) const override { return obj < kKqueueIdBase; }
  bool OwnsWait(WaitId wait) const override { return wait < kKqueueIdBase; }
  bool OwnsWatch(WatchId watch) const override { return by_watch_.count(watch) != 0; }

  // --- inspection (tests, tracing, the port fd's readiness) ---
  uint32_t QueuedCount(ObjectId port) const;
  uint32_t SlotsInUse(ObjectId port) const;
  bool HasFreeSlot(ObjectId port) const;  // POLLOUT (rule 3)
  size_t WaiterCount(ObjectId port) const;
  size_t AssociationCount(ObjectId port) const;
  size_t FileWatchCount(ObjectId port) const;
  size_t DispatcherCount(ObjectId port) const;
  // What the in-process engine asks of a port before it decides whether a
  // call needs a look (shim/inproc/engine.cc), read in one lookup; nullopt
  // when the port is gone.
  struct Glance {
    uint32_t queued = 0;
    size_t fd_associations = 0;
    size_t file_watches = 0;
  };
  // Inline: the in-process engine asks before most port calls.
  std::optional<Glance> GlanceAt(ObjectId id) const {
    const Port* p = Find(id);
    if (p == nullptr) return std::nullopt;
    return Glance{static_cast<uint32_t>(p->queue.size()), p->fd_assocs.size(), p->file_assocs.size()};
  }

 private:
  struct Port;
  struct FdAssoc;
  struct FileAssoc;
  struct Timer;
  // Who may retrieve a queued event (port.c:205-240).
  enum class Share : uint8_t { kAnyone, kSameFile, kOwnerOnly };
  // What a queued event came from: a pointer of one of three kinds, the
  // kind in its two low bits, so the three share one word. Two bits, not
  // three: in a 32-bit build a record inside a map node is only 4-aligned
  // (an i386 fast-mode port crashed on the third bit). Read as a T*: null
  // unless the pointer is of this kind. The three members of Queued's union
  // share this layout, so any of them may read it.
  template <typename T, uintptr_t kKind>
  struct SourceRef {
    static constexpr uintptr_t kKindBits = 3;
    uintptr_t bits;  // trivial, for the union; Queued zeroes it (`assoc{}`)
    SourceRef() = default;
    SourceRef(T* p) : bits(p == nullptr ? 0 : reinterpret_cast<uintptr_t>(p) | kKind) {  // NOLINT: as a T*
      static_assert(alignof(T) > kKindBits && kKind <= kKindBits, "the kind must fit below the record's alignment");
    }
    operator T*() const {
      return (bits & kKindBits) == kKind ? reinterpret_cast<T*>(bits & ~kKindBits) : nullptr;
    }
    T* operator->() const { return *this; }
  };
  // Fields by size (40 bytes, a 64-byte list node): a fired association's event.
  struct Queued {
    PortEvent ev;
    union {
      SourceRef<FdAssoc, 1> assoc{};  // for FD events
      SourceRef<Timer, 2> timer;      // for TIMER events: events = expirations, set at delivery
      SourceRef<FileAssoc, 3> file;   // for FILE events of a live watch
    };
    Pid owner = 0;
    Share share = Share::kAnyone;
    bool holds_slot = false;   // user events hold a slot until retrieved
  };
  static_assert(sizeof(Queued) <= 40, "a queued event outgrew its memory budget");
  using QueueList = std::list<Queued>;
  using QueueIt = QueueList::iterator;
  // Fields by size: 48 bytes, kept in its fd_assocs node (96 bytes;
  // docs/design.md "Memory per watch").
  struct FdAssoc {
    ObjectId port = 0;
    WatchId watch = 0;
    uint64_t user = 0;
    QueueIt queued_at{};               // its fired, unretrieved event, if `queued`
    int fd = -1;
    Pid owner = 0;
    uint32_t events = 0;
    bool active = false;               // armed, waiting for readiness
    bool queued = false;               // beside `active`, not an optional: 8 bytes less
    // The port's only association of its number (MarkAlone): then it is
    // all that number's look-up would find (Port::kept_assoc).
    bool alone = false;
  };
  static_assert(sizeof(FdAssoc) <= 48, "an association outgrew its memory budget");
  // A PORT_SOURCE_FILE watch (port_fop.c portfop_t), keyed by (pid, object).
  struct FileAssoc {
    ObjectId port;
    Pid owner;
    uint64_t object;
    WatchId watch;
    uint64_t dev, ino, dir_dev, dir_ino;  // re-associating another file replaces the watch
    uint32_t events = 0;
    uint64_t user = 0;
    bool active = false;
    std::optional<QueueIt> queued;
  };
  // A PORT_DISPATCH call waiting for a free slot (port_alloc_event_block).
  struct Dispatcher {
    WaitId id;
    Caller caller;
    PortEvent ev;
    bool noshare;
    std::unique_ptr<GetCompletion> done;
  };
  struct Waiter {
    WaitId id;
    Caller caller;
    ObjectId port;
    GetSpec spec;
    std::unique_ptr<GetCompletion> done;
    std::optional<Nanos> deadline;
    bool wait_new_events = false;  // found nothing deliverable; sleep until new events
  };
  struct Timer {
    Pid pid;
    int id;
    int clock;
    TimerNotify notify;
    std::optional<ObjectId> port;  // bound port (IT_PORT) while it lasts
    bool queued = false;           // its (single, wired) event is in the port's queue
    int pending = 0;               // it_pending: expirations not yet delivered
    int overrun = 0;               // it_overrun (signal path)
    Nanos next = 0;                // monotonic deadline; 0 = disarmed
    Nanos interval = 0;
  };
  struct AlertState {
    uint32_t events;
    uint64_t user;
    Pid owner;
  };
  struct Port {
    ObjectId id;
    uint32_t max_events;
    uint32_t slots = 0;
    std::list<Queued> queue;
    std::list<Waiter> waiters;  // head first (port_queue_thread order)
    std::multimap<int, FdAssoc> fd_assocs;  // nodes do not move: FdAssoc* stays valid
    // The association last reported or associated, while it lives
    // (FreeAssoc forgets it): when it is alone on its number, the
    // number's re-association finds it with no look-up of fd_assocs
    // (DropClosedAtThenFind; an event loop re-associates the file it was
    // just told of).
    FdAssoc* kept_assoc = nullptr;
    bool had_fd_assoc = false;
    std::map<std::pair<Pid, uint64_t>, std::unique_ptr<FileAssoc>> file_assocs;
    bool had_file_source = false;  // port_fop_associate_source: never undone
    std::list<Dispatcher> dispatchers;
    // Processes that used the port: with more than one, a process may have
    // closed its descriptor unseen (Reap).
    std::vector<Pid> users;
    std::optional<AlertState> alert;
    bool readable_reported = false;  // what the host was last told (POLLIN)
    bool writable_reported = true;  // a new port has free slots
    bool report_held = false;        // held_port_ or in held_more_ (ReportHold)
  };

  // The port found last is kept (a call names its port several times: the
  // engine's glance, the handler, the look's reports); ErasePort forgets it.
  [[gnu::always_inline]] Port* Find(ObjectId id) {
    if (id == kept_id_) return kept_port_;
    return FindInMap(id);
  }
  const Port* Find(ObjectId id) const { return const_cast<EventPorts*>(this)->Find(id); }
  __attribute__((noinline, cold)) Port* FindInMap(ObjectId id);
  void ErasePort(ObjectId id);
  void Enqueue(Port& p, Queued q);
  // An FD association's watch reported `revents` (OnWatchReady).
  void AssocReady(FdAssoc* a, uint32_t revents);
  void RemoveQueued(Port& p, QueueIt it);
  void FreeAssoc(Port& p, FdAssoc* a);
  // Sets `alone` on number `fd`'s associations of `p` after one was added
  // or removed.
  void MarkAlone(Port& p, int fd);
  void FreeFileAssoc(Port& p, FileAssoc* a);
  // Records that `pid` uses the port (usually its first and only user:
  // one compare, inline).
  void Touch(Port& p, Pid pid) {
    if (!p.users.empty() && p.users.front() == pid) return;
    AddUser(p, pid);
  }
  void AddUser(Port& p, Pid pid);
  // Rule 32 observed lazily: every other user of the port that no longer
  // holds it loses what CloseBy takes (docs/design.md "Close and exec").
  // Inline, a port of one process first (every retrieval and queued event).
  void Reap(Port& p, Pid except) {
    if (p.users.size() >= 2) ReapOthers(p, except);
  }
  void ReapOthers(Port& p, Pid except);
  void DropHolder(Port& p, Pid pid);  // CloseBy without waking anyone
  bool SlotFree(Port& p, Pid caller);  // a slot is free (after reaping, if needed)
  // Hands freed slots to the PORT_DISPATCH callers waiting for one.
  // Inline, a port none waits on first (every retrieval and association).
  void ServeDispatchers(Port& p) {
    if (!p.dispatchers.empty()) ServeWaitingDispatchers(p);
  }
  void ServeWaitingDispatchers(Port& p);
  // Drops the associations made through `fd` whose owner closed it, then
  // returns the one `pid` made through that file at `fd`, if any.
  // Inline, the port's kept association first (every re-association of an
  // event loop): the multimap's walk is out of line.
  FdAssoc* DropClosedAtThenFind(Port& p, Pid pid, int fd) {
    // The number's only association, kept from its report or its last
    // association: all the look-up would find (the same checks).
    if (FdAssoc* k = p.kept_assoc; k != nullptr && k->fd == fd && k->alone) {
      if (Closed(*k)) {
        FreeAssoc(p, k);
        return nullptr;
      }
      return k->owner == pid || host_.SameFile(pid, fd, k->watch) ? k : nullptr;
    }
    return DropClosedAtThenFindInMap(p, pid, fd);
  }
  FdAssoc* DropClosedAtThenFindInMap(Port& p, Pid pid, int fd);
  // port_close_fd observed lazily (event_port.cc, above Closed): the
  // association's owner no longer has its file at its number.
  bool Closed(const FdAssoc& a) { return !host_.SameFile(a.owner, a.fd, a.watch); }
  void DropClosedAssocs(Port& p);
  void DropClosedEvents(Port& p);
  // May `pid` retrieve this queued event? May drop a stale FD association
  // (its owner closed the descriptor) and report kDiscard.
  enum class Verdict : uint8_t { kDeliver, kSkip, kDiscard };
  Verdict Check(Port& p, const Queued& q, Pid pid);
  // The events taken leave the queue as its own list nodes (spliced: no
  // allocation, and their associations' iterators stay valid).
  QueueList Collect(Port& p, Pid pid, uint32_t max);
  // Hands `taken` to a retrieval's completion (a waiter's, or the call's
  // own when answered at once); puts them back at the head if refused.
  // Taken by reference: `taken` is left empty either way (no list moved in).
  void Deliver(Port& p, GetCompletion& done, QueueList&& taken, int error);
  void Requeue(Port& p, QueueList& taken);
  // A node that leaves a queue is kept for the next Enqueue (up to
  // kSpareNodes of them, shared by all ports), so that an event cycling
  // through the queue allocates nothing.
  void Recycle(QueueList& from, QueueIt it);
  static constexpr size_t kSpareNodes = 64;
  void InsertWaiter(Port& p, Waiter w);
  // Inline, a port nobody waits on first (every queued event).
  void Pump(Port& p) {
    if (!p.waiters.empty()) PumpWaiters(p);
  }
  void PumpWaiters(Port& p);
  // Reports the port descriptor's POLLIN and POLLOUT to the host when they
  // change (POLLIN at the hold's end while a ReportHold lives).
  // Inline, no change first (every queued or taken event asks), then a
  // POLLIN change held over a call (the look's queued event): the port is
  // noted for the hold's end, as ReportReadinessChange would.
  void UpdateReadiness(Port& p) {
    if ((p.slots < p.max_events) == p.writable_reported) [[likely]] {
      if ((!p.queue.empty()) == p.readable_reported) [[likely]] return;
      if (reports_held_ && !p.report_held && held_port_ == nullptr) {
        p.report_held = true;
        held_port_ = &p;
        return;
      }
    }
    ReportReadinessChange(p);
  }
  void ReportReadinessChange(Port& p);
  // Reports POLLIN if it differs from what the host was last told.
  void ReportReadable(Port& p);
  void ReleaseHeldReports();
  // A slot is taken or given back (port_curr); POLLOUT follows.
  void TakeSlot(Port& p);
  void ReturnSlot(Port& p);
  void FireTimer(Timer& t, Nanos now);
  void UnbindTimer(Timer& t);
  void DeleteTimer(Timer& t);
  void DeleteTimersOf(Pid pid);  // timer_exit
  Timer* FindTimer(Pid pid, int id);

  // Get, with `done` owned by `*owned` (given to the waiter if it parks)
  // or lent (nullptr: its KeepForWait).
  std::optional<WaitId> GetWith(Caller caller, ObjectId id, const GetSpec& spec, GetCompletion& done,
                                std::unique_ptr<GetCompletion>* owned);
  // OfferHandOver: the port offered, and the report kept for its retrieval.
  struct HandOver {
    Port* port = nullptr;
    FdAssoc* assoc = nullptr;  // kept: fired, in no queue
    PortEvent ev{};
  };
  // Whether `p`'s retrieval takes the kept report straight: it would have
  // taken exactly that one event (the checks of Get before Collect pass,
  // and Collect, on a queue of that event alone, takes it).
  bool HandOverFits(const Port& p, Pid pid, const GetSpec& spec) const {
    return hand_over_.port == &p && spec.max != 0 && spec.nget == 1 && !spec.list_is_null && !p.alert &&
           p.queue.empty() && p.users.size() <= 1 && hand_over_.assoc->owner == pid;
  }
  // The kept report to the completion (the one event Collect would have
  // taken); false: its owner closed the file (Check's rule 10), the
  // association and its event are gone and nothing was taken.
  bool TakeHandOver(Port& p, GetCompletion& done);
  // The kept report into its port's queue, at its tail; the offer ends.
  void QueueHandOver();

  PortLimits limits_;
  HandOver hand_over_;
  uint64_t straight_hand_overs_ = 0;
  std::unordered_map<ObjectId, std::unique_ptr<Port>> ports_;
  // Find's kept port (nodes never move: a Port lives in its unique_ptr).
  // Id 0 names no port, so the empty entry answers nullptr for it.
  ObjectId kept_id_ = 0;
  Port* kept_port_ = nullptr;
  bool reports_held_ = false;              // a ReportHold lives
  // The ports with report_held set: the first (a call's own port, usually
  // the only one: no list), then the others.
  Port* held_port_ = nullptr;
  std::vector<ObjectId> held_more_;
  FlatIdMap<FdAssoc*> by_watch_;
  std::unordered_map<WatchId, FileAssoc*> by_path_watch_;
  // Deadlines of waiters (key = WaitId) and timers (key = kTimerKey | pid << 32 | id).
  static constexpr uint64_t kTimerKey = 1ULL << 63;
  DeadlineQueue<uint64_t> deadlines_;
  std::map<std::pair<Pid, int>, std::unique_ptr<Timer>> timers_;
  std::unordered_map<WaitId, ObjectId> wait_port_;
  QueueList spare_nodes_;  // Recycle
  // The storage of the last retrieval's event list, lent to the next one
  // (Deliver).
  std::vector<PortEvent> spare_events_;
  ObjectId next_port_ = 1;
  WaitId next_wait_ = 1;
};

}  // namespace evshim::emul
