// The BSD kqueue engine: kqueues, their knotes, the active queue and waiters.
// One engine for every BSD personality: where the kernels differ, the abi
// layer passes a KqueuePolicy (data, not code). Theory of operation: see the
// comment at the top of kqueue.cc.
#pragma once

#include <array>
#include <bit>
#include <cerrno>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <utility>
#include <vector>

#include "emul/engine.h"
#include "emul/flat_id_map.h"
#include "emul/host.h"
#include "emul/result.h"
#include "emul/types.h"

namespace evshim::emul {

// Canonical filters. The abi maps each personality's EVFILT_* numbers here.
// kUser stays last: Kqueues::kFilterCount counts up to it (kOpsByFilter).
enum class KFilter : uint8_t { kRead, kWrite, kExcept, kVnode, kProc, kSignal, kTimer, kFs, kUser };

// Canonical EV_* and NOTE_* bits. For every bit the engine interprets, the
// three BSDs agree (docs/rules-bsd.md §3.2, §3.7), so the canonical value
// is the BSD value; personality-only bits (EV_SYSFLAGS, timer units) are
// handled by the abi codecs.
namespace kev {
constexpr uint16_t kAdd = 0x0001, kDelete = 0x0002, kEnable = 0x0004, kDisable = 0x0008,
                   kOneshot = 0x0010, kClear = 0x0020, kReceipt = 0x0040, kDispatch = 0x0080,
                   kError = 0x4000, kEof = 0x8000;
// Bits that are actions, not properties of the knote.
constexpr uint16_t kActions = kAdd | kDelete | kEnable | kDisable;
constexpr uint32_t kNoteLowat = 0x00000001;
constexpr uint32_t kNoteFfnop = 0x00000000, kNoteFfand = 0x40000000, kNoteFfor = 0x80000000,
                   kNoteFfcopy = 0xc0000000, kNoteFfctrlMask = 0xc0000000,
                   kNoteFflagsMask = 0x00ffffff, kNoteTrigger = 0x01000000;
// EVFILT_PROC (docs/rules-bsd.md §3.5: the same on every BSD).
constexpr uint32_t kNoteExit = 0x80000000, kNoteFork = 0x40000000, kNoteExec = 0x20000000,
                   kNotePctrlMask = 0xf0000000, kNotePdataMask = 0x000fffff,
                   kNoteTrack = 0x00000001, kNoteTrackErr = 0x00000002, kNoteChild = 0x00000004;
// EVFILT_VNODE (docs/rules-bsd.md §3.4). 0x80 is OpenBSD's NOTE_TRUNCATE and FreeBSD's
// NOTE_OPEN: the host reports an open as kNoteOpened (no BSD's bit), which
// the engine writes as kNoteOpenWire; KqueuePolicy::vnode_notes says which
// of the host's bits a kernel has. FreeBSD's CLOSE, CLOSE_WRITE and READ
// are its own values.
constexpr uint32_t kNoteDelete = 0x0001, kNoteWrite = 0x0002, kNoteExtend = 0x0004,
                   kNoteAttrib = 0x0008, kNoteLink = 0x0010, kNoteRename = 0x0020,
                   kNoteRevoke = 0x0040, kNoteTruncate = 0x0080, kNoteClose = 0x0100,
                   kNoteCloseWrite = 0x0200, kNoteRead = 0x0400, kNoteOpened = 0x0800,
                   kNoteOpenWire = 0x0080;
// EVFILT_FS hints, vfs_event_signal's (FreeBSD) and KNOTE(&fs_klist)'s
// (DragonFly): VQ_MOUNT, VQ_UNMOUNT, the same in both kernels' sys/mount.h.
constexpr uint32_t kVqMount = 0x0008, kVqUnmount = 0x0010;
// Linux's _NSIG: EVFILT_SIGNAL idents are the program's (glibc) signal numbers.
constexpr uint64_t kNsig = 65;
}  // namespace kev

// One struct kevent, canonical: a change going in, an event coming out.
struct KeventRecord {
  uint64_t ident = 0;
  KFilter filter = KFilter::kRead;
  int32_t wire_filter = 0;  // the foreign EVFILT_* number, echoed back unchanged
  uint16_t flags = 0;
  uint32_t fflags = 0;
  int64_t data = 0;
  uint64_t udata = 0;
  std::array<uint64_t, 4> ext{};
  friend bool operator==(const KeventRecord&, const KeventRecord&) = default;
};

// A decoded change. `error`: the decoder already knows this change fails
// (unknown filter, bad timer units): it fails in its turn, in order.
struct KChange {
  KeventRecord kev;
  int error = 0;
  bool skip = false;        // FreeBSD skips changes with filter 0 silently
  Nanos timer_period = 0;   // TIMER: the period, units already applied by the abi
  // TIMER with NOTE_ABSTIME (FreeBSD, OpenBSD): timer_period is instead the
  // expiry as CLOCK_REALTIME nanoseconds since the epoch; it fires once.
  bool timer_absolute = false;
  // FreeBSD EV_KEEPUDATA: changing an existing knote keeps its udata.
  bool keep_udata = false;
  // PROC, engine-internal: a NOTE_TRACK registration for a child of this
  // pid (EV_FLAG1 in the kernels, OB kern_event.c:430-447, DF :397-415).
  Pid track_parent = 0;
};

// Where the kernels differ. Each field names its sources.
struct KqueuePolicy {
  // A failed change (or EV_RECEIPT) with no room left in the event list:
  // FreeBSD/OpenBSD return the errno and stop (OB kern_event.c:944-955);
  // DragonFly posts the record regardless (DF kern_event.c:846-857).
  bool post_errors_without_room = false;
  // An EV_ERROR record whose copy-out faults (a NULL or unwritable event
  // list): DragonFly fails the call with that change's error and applies
  // no later change (DF kern_event.c:850-852); FreeBSD and OpenBSD ignore
  // the copy-out's result (OB kern_event.c:948, FreeBSD kqueue_kevent).
  bool record_fault_stops = false;
  // nevents < 0: FreeBSD's kqueue_scan refuses it with EINVAL, after the
  // changes; OpenBSD and DragonFly scan nothing and return 0 (their scan
  // loops run while nevents - total > 0: OB :975, DF :896).
  bool negative_nevents_einval = false;
  // A filter other than READ on a kqueue's descriptor (kqueue_kqfilter):
  // OpenBSD and FreeBSD EINVAL (OB kern_event.c:245-256), DragonFly
  // EOPNOTSUPP (DF kern_event.c:258-269).
  int kqueue_descriptor_filter_errno = EINVAL;
  // The last close of a kqueue while a thread waits in kevent on it.
  // OpenBSD's waiter holds no file reference (FRELE before the scan, OB
  // kern_event.c:967-968): kqueue_close purges and wakes it, and it fails
  // with EBADF (OB :1292-1295, 1543-1586). DragonFly's (holdfp .. dropfp,
  // DF kern_event.c:1055-1072) and FreeBSD's (kern_kevent: fget .. fdrop)
  // hold the file across the wait: the kqueue lives on, knotes and all,
  // until the waiter returns with its events or at its timeout.
  bool close_wakes_waiters = true;
  // When an invalid timeout is rejected (docs/rules-bsd.md §4.2).
  enum class TimeoutCheck : uint8_t {
    kBeforeChanges,  // OpenBSD (OB kern_event.c:911-922)
    kBeforeScan,     // FreeBSD: after the changes, only if nevents > 0
    kNever,          // DragonFly (DF kern_event.c:866-871)
  };
  TimeoutCheck timeout_check = TimeoutCheck::kBeforeScan;
  // EV_ADD on an existing timer restarts it and drops pending expirations
  // (FreeBSD filt_timertouch, OB kern_event.c:516-539); DragonFly only
  // updates the period.
  bool timer_modify_restarts = true;
  // Reported flags keep EV_ADD/EV_ENABLE... as registered (OpenBSD,
  // DragonFly copy the change into kn_kevent); FreeBSD strips them.
  bool report_action_flags = true;
  // EVFILT_USER with EV_CLEAR: OpenBSD and DragonFly also reset fflags and
  // data on retrieval; FreeBSD keeps the saved fflags.
  bool user_clear_resets_fflags = true;
  // A change without EV_ADD (EV_ENABLE, EV_DISABLE, a bare NOTE_TRIGGER)
  // also replaces udata, fflags and data: FreeBSD (hence EV_KEEPUDATA) and
  // DragonFly; OpenBSD only on EV_ADD (OB kern_event.c:1194-1209).
  bool modify_without_add = true;
  // EV_ENABLE of a disabled knote that is ACTIVE (it was queued when
  // disabled, or activity came since) queues it without its filter's yes:
  // DragonFly (DF kern_event.c:1372-1378) and FreeBSD (kqueue_register,
  // done_ev_add: ACTIVE and neither DISABLED nor QUEUED is enqueued); the
  // scan then decides. OpenBSD queues it only on its filter's yes (OB
  // kern_event.c:1220-1227).
  bool enable_queues_active = true;
  // A change measures a knote that is disabled (or that it disables):
  // DragonFly runs the filter before it applies EV_DISABLE (DF
  // kern_event.c:1319-1322, 1355-1358, then :1364-1367), OpenBSD at EV_ADD
  // (OB kern_event.c:1174-1178, 1201-1204, then :1217-1218), so a ready
  // file leaves the knote ACTIVE (and queued if it was enabled). FreeBSD
  // applies EV_DISABLE first and done_ev_add calls f_event only without
  // KN_DISABLED (kqueue_register): not measured, not activated.
  bool measures_disabled = true;
  // EVFILT_PROC at the target's exit: OpenBSD and DragonFly report every
  // proc knote (OB kern_event.c:409-423, DF kern_event.c:378-390); FreeBSD
  // drops one that has no fflags to report (EV_DROP, docs/rules-bsd.md §4.8).
  bool proc_exit_always = true;
  // Extra flags of the exit event: DragonFly adds EV_NODATA (DF kern_event.c:388).
  uint16_t proc_exit_flags = 0;
  // Attaching to an exited, unreaped process: OpenBSD refuses (ESRCH, OB
  // kern_event.c:338-340), DragonFly only with NOTE_EXIT (DF kern_event.c:
  // 296-300), FreeBSD always (pfind_any); the exit is reported at once.
  enum class ZombieAttach : uint8_t { kRefuse, kWithNoteExit, kAlways };
  ZombieAttach zombie_attach = ZombieAttach::kAlways;
  // The EVFILT_VNODE notes this kernel has, as the host reports them
  // (OpenBSD: NOTE_TRUNCATE too; FreeBSD: kNoteOpened, CLOSE, CLOSE_WRITE, READ).
  uint32_t vnode_notes = 0x7f;
  // NOTE_ABSTIME earlier than the boot time: FreeBSD filt_timervalidate
  // subtracts the boot time and refuses a negative result (EINVAL); OpenBSD
  // filt_timeradd expires it at once like any time already past.
  bool abstime_before_boot_einval = false;
  // The shortest period of a relative timer. OpenBSD and DragonFly run
  // timers on the clock tick: a period is a number of ticks, at least one
  // (OB kern_event.c:459-465 timeout_add(max(tticks, 1)), DF :427-431
  // tvtohz_high >= 1), so 0 ms, a negative period (DragonFly) or one under
  // a tick expires at most once per tick: 10 ms at their default hz = 100.
  // FreeBSD has no tick floor (sbintime callouts; the abi already turns 0
  // into one unit): 1 ns.
  Nanos timer_min_period = 1;
  // WRITE on a pipe's read end: the room of the reverse direction, which
  // nothing can fill under Linux (docs/kqueue.md "READ/WRITE data"). 0: the
  // pipe's size, as OpenBSD and DragonFly make both directions alike (OB
  // pipe_pair_create, DF pipe_create); FreeBSD leaves the reverse pipe
  // without a buffer (pipe_paircreate) and filt_pipewrite reports PIPE_BUF.
  int64_t reverse_pipe_room = 0;
  // Added to EV_EOF on a pipe when no byte is left to read: DragonFly's
  // filt_piperead (EV_NODATA once `kn_data` is 0) and filt_pipewrite
  // (EV_EOF|EV_NODATA always), sys_pipe.c; FreeBSD and OpenBSD add nothing.
  uint16_t pipe_eof_nodata = 0;
  // WRITE on an anonymous pipe's end once the other end is closed (the
  // write end's when every reader is gone, the read end's, the reverse
  // direction, when the writer is). FreeBSD hangs that knote on the other
  // end's struct pipe (pipe_kqfilter, `PIPE_PEER`), whose pipeclose wakes
  // it while that end is still PIPE_ACTIVE (filt_pipewrite measures the
  // room: the forward one, or PIPE_BUF for the unbacked reverse pipe) and
  // then clears the list (knlist_clear: knlist_cleardel adds
  // EV_EOF|EV_ONESHOT), so the scan posts it once as measured and drops it
  // (kqueue_scan copies kn_kevent for EV_ONESHOT). OpenBSD and DragonFly
  // keep it: EV_EOF, level, data 0 (filt_pipewrite_common's `pipe_peer`
  // NULL; filt_pipewrite's closed peer).
  bool pipe_close_clears_write = false;
  // READ on a FIFO opened write-only, WRITE on one opened read-only: the
  // filter its open mode lacks (the host tells them once it asked the
  // FIFO's open mode: FdKind::kFifoWriteOnly, kFifoReadOnly; docs/kqueue.md
  // "READ/WRITE data", a FIFO opened one way).
  enum class LackingFifoFilter : uint8_t {
    // DragonFly's fifo_kqfilter checks no open mode and hangs both on the
    // FIFO's sockets (sys/vfs/fifofs/fifo_vnops.c): READ counts the bytes
    // queued, WRITE the room, ready from PIPE_BUF (the send buffer's low
    // mark); NOTE_LOWAT is not read, and EV_EOF needs the other side gone,
    // which this descriptor's own side never is.
    kMeasuresTheFifo,
    // FreeBSD's pipe_kqfilter gives them pipe_nfiltops, whose
    // filt_pipenotsup never fires, not even EV_EOF (sys/kern/sys_pipe.c).
    kNeverFires,
    // OpenBSD's fifo_kqfilter refuses them at EV_ADD: EINVAL
    // (sys/miscfs/fifofs/fifo_vnops.c; vn_kqfilter passes the file's f_flag).
    kRefused,
  };
  LackingFifoFilter lacking_fifo_filter = LackingFifoFilter::kMeasuresTheFifo;
  // EVFILT_EXCEPT on a pipe or FIFO, either end, any open mode: refused at
  // EV_ADD with this errno, 0 to add it (docs/kqueue.md "READ/WRITE data").
  // OpenBSD's pipe_kqfilter and fifo_kqfilter take it from poll(2) only and
  // refuse it through kevent(2) with EINVAL (sys_pipe.c rev 1.149,
  // fifo_vnops.c rev 1.110); DragonFly's pipe_kqfilter and fifo_kqfilter
  // have no case for it: EOPNOTSUPP. FreeBSD has no EVFILT_EXCEPT.
  int except_on_pipe_errno = 0;
  // READ on a regular file fires only while bytes are left (data = size -
  // offset, not 0), unless the knote's fflags ask otherwise (docs/kqueue.md
  // "A regular file that grows"):
  // - `regular_read_poll_fflag` (FreeBSD NOTE_FILE_POLL): always fires, as
  //   poll(2) answers for a file (filt_vfsread: `(kn_sfflags &
  //   NOTE_FILE_POLL) != 0 || kn_data != 0`);
  // - `regular_read_eof_fflag` (OpenBSD NOTE_EOF): fires at data 0 too and
  //   sets that bit in the knote's fflags (filt_ufsread), where it stays
  //   until an EV_CLEAR delivery clears them (knote_submit, OB
  //   kern_event.c:1986-1991).
  // 0: no such flag (DragonFly).
  uint32_t regular_read_poll_fflag = 0;
  uint32_t regular_read_eof_fflag = 0;
};

// How long kevent may wait. The abi reads the timespec (EFAULT is its job).
struct KeventWait {
  uint32_t nevents = 0;
  bool forever = true;
  int64_t sec = 0;
  int64_t nsec = 0;
  // The caller passed nevents < 0 (`nevents` is then 0). The kernels only
  // compare the count with 0 while posting EV_ERROR records, so a negative
  // one never runs out of room (OB kern_event.c:945, FreeBSD kqueue_kevent).
  bool nevents_negative = false;
};

struct KeventOutcome {
  // Change results (EV_ERROR records) or retrieved events. Lent to
  // Complete: a retrieval's list is the engine's reused storage.
  std::vector<KeventRecord> events;
  int error = 0;           // the call fails with this errno
  bool receipts = false;   // `events` are change results, not retrieved events
};

// Receives the outcome now or later. Returns false if the caller can no
// longer take it (interrupted, gone): retrieved events are then put back
// untouched, so nothing is lost and nothing is delivered twice.
class KeventCompletion {
 public:
  virtual ~KeventCompletion() = default;
  virtual bool Complete(const KeventOutcome& outcome) = 0;
  // One retrieved event, the usual retrieval of an event loop: as Complete
  // with a list of that one event, without the list (Kqueues::Deliver and
  // the scan's hand-over, Kqueues::HandOver). The abi's completion answers
  // it from the event itself; this default makes the list.
  virtual bool CompleteOne(const KeventRecord& event) {
    KeventOutcome outcome;
    outcome.events.push_back(event);
    return Complete(outcome);
  }
  // One EV_ERROR record (a change's error, or its receipt), copied out at
  // once, before any later change is applied, as the kernels do inside the
  // change loop (OB kern_event.c:944-952, DF :846-857). False if the
  // copy-out faulted. The records also come back in the outcome.
  virtual bool PostRecord(const KeventRecord& record) {
    (void)record;
    return true;
  }
  // A completion lent by reference (Kevent's second form: on the handler's
  // stack) whose call parks: the copy the waiter keeps. The default has
  // none (nullptr): such a completion is only lent to a call that cannot
  // park (it is answered EINTR, as a wait that ended at once).
  virtual std::unique_ptr<KeventCompletion> KeepForWait() { return nullptr; }
};

// FreeBSD's ext[4] of a knote: kept only when a change set any of it (few
// programs do), so a knote without one spends 8 bytes, not 32.
class ExtWords {
 public:
  using Words = std::array<uint64_t, 4>;
  ExtWords() = default;
  ExtWords(const ExtWords& other) { Set(other.Get()); }
  ExtWords& operator=(const ExtWords& other) {
    if (this != &other) Set(other.Get());
    return *this;
  }
  void Set(const Words& words) {
    if (words == Words{}) {
      words_.reset();
    } else if (words_) {
      *words_ = words;
    } else {
      words_ = std::make_unique<Words>(words);
    }
  }
  Words Get() const { return words_ ? *words_ : Words{}; }

 private:
  std::unique_ptr<Words> words_;
};

class Kqueues final : public Engine {
 public:
  // Kqueue ids never collide with event-port ids (ports count from 1).
  static constexpr ObjectId kFirstId = kKqueueIdBase;
  static constexpr WaitId kFirstWait = kKqueueIdBase;

  // Per-tree caps (docs/design.md "Bounds"): beyond them kqueue() and an
  // EV_ADD fail with ENOMEM, the BSDs' answer when the kernel cannot
  // allocate, instead of the supervisor growing without bound.
  struct Limits {
    size_t max_kqueues = 65536;
    size_t max_knotes = 1u << 20;
  };
  explicit Kqueues(Host& host) : Engine(host) {}
  Kqueues(Host& host, Limits limits) : Engine(host), limits_(limits) {}
  size_t kqueue_count() const { return kqs_.size(); }
  size_t knote_count() const { return knotes_.size(); }
  Kqueues(const Kqueues&) = delete;
  Kqueues& operator=(const Kqueues&) = delete;
  ~Kqueues();

  // --- objects ---
  // `copy_on_fork`: FreeBSD kqueuex(KQUEUE_CPONFORK), see ForkPrepare.
  Result<ObjectId> Create(Caller caller, bool copy_on_fork = false);
  // The kqueue's last descriptor is gone: its knotes go, waiters get EBADF;
  // or, where a waiter holds the kqueue (KqueuePolicy::close_wakes_waiters
  // false), once the last waiter has returned.
  void Close(ObjectId kq);
  // Exit: the process's waiters vanish and its kqueues are freed.
  void ProcessExited(Pid pid) override;
  // Close, then ForkSourceClosed: no child can claim its copies any more.
  void LastClose(ObjectId kq) override {
    Close(kq);
    ForkSourceClosed(kq);
  }
  bool Exists(ObjectId kq) const { return kqs_.count(kq) != 0; }
  // Some kqueue has a knote no host source feeds: FedByNoHostSource can be
  // true for some kqueue (a test of two counts, before any look-up).
  bool SomeKnoteFedByNoHostSource() const { return tables_.knotes != tables_.fed_by_look; }
  // Whether kqueue `kq` has knotes and no host source feeds any of them
  // (only USER and TIMER knotes): a look before a kevent on it could
  // activate none of its knotes (docs/kqueue.md "What a kevent costs (fast
  // mode)", *No look*). False for an unknown or closed one.
  bool FedByNoHostSource(ObjectId kq) const {
    const Kq* k = Find(kq);
    return k != nullptr && !k->closed && !k->knotes.empty() && k->knotes.fed_by_look() == 0;
  }
  // The process that created the kqueue: kqueues are not inherited by fork.
  std::optional<Pid> Owner(ObjectId kq) const;

  // --- KQUEUE_CPONFORK (FreeBSD kqueuex; kqueue_fork_copy) ---
  // Process `parent` is about to fork: copies each of its copy-on-fork
  // kqueues with the knotes whose filter can be copied (fd filters on
  // descriptors other than kqueues, TIMER, USER; not PROC, SIGNAL) and
  // their active state. The copies belong to nobody until a child claims
  // them. Returns the claim token, 0 if the parent has no such kqueue.
  uint64_t ForkPrepare(Pid parent);
  // The child that `token`'s fork made takes the copies: the pairs are
  // (the parent's kqueue, the child's copy). Empty if the token is unknown
  // or already claimed, or if `child` is the parent or does not hold the
  // parent's kqueues (Host::HoldsObject): another process guessing tokens
  // neither takes nor destroys the child's copies.
  std::vector<std::pair<ObjectId, ObjectId>> ForkClaim(uint64_t token, Pid child);
  // The last descriptor of kqueue `from` is gone, in every process: no child
  // can claim a copy of it any more (each one's inherited descriptor of
  // `from` is what its claim replaces). Frees the unclaimed copies. The
  // parent's exit alone does not: its child may not have claimed yet.
  void ForkSourceClosed(ObjectId from);

  // --- kevent(2) ---
  // Applies `changes` in order, then retrieves up to wait.nevents events,
  // now (calls `done`) or later (returns the parked wait's id).
  // `changes_fault`: the change list became unreadable after `changes`.
  // The changes are the caller's (the abi's reused storage); each one's
  // kev is updated as it is applied (the new knote's fflags and data).
  std::optional<WaitId> Kevent(Caller caller, ObjectId kq, const KqueuePolicy& policy,
                               std::span<KChange> changes, bool changes_fault,
                               const KeventWait& wait, std::unique_ptr<KeventCompletion> done) {
    KeventCompletion& lent = *done;
    return KeventWith(caller, kq, policy, changes, changes_fault, wait, lent, &done);
  }
  // The same, `done` lent (a completion on the caller's stack: most calls
  // are answered before Kevent returns, and make none); a call that parks
  // keeps `done.KeepForWait()` in its waiter.
  std::optional<WaitId> Kevent(Caller caller, ObjectId kq, const KqueuePolicy& policy,
                               std::span<KChange> changes, bool changes_fault,
                               const KeventWait& wait, KeventCompletion& done) {
    return KeventWith(caller, kq, policy, changes, changes_fault, wait, done, nullptr);
  }
  void CancelWait(WaitId id) override;

  // --- host callbacks ---
  void OnWatchReady(WatchId watch, uint32_t revents) override;
  bool RouteWatchReady(WatchId watch, uint32_t revents) override;
  // EVFILT_PROC sources (Host::WatchProcess): `status` is the wait status.
  void OnProcessExit(Pid pid, int64_t status);
  void OnProcessFork(Pid parent, Pid child);
  void OnProcessExec(Pid pid);
  // EVFILT_VNODE (Host::WatchVnode): what happened, canonical NOTE_* bits.
  void OnVnodeEvent(WatchId watch, uint32_t notes);
  // EVFILT_FS (Host::WatchMounts): the watched mount table changed,
  // emul::mount_bits.
  void OnMountEvent(WatchId watch, uint32_t changes);
  // Process `pid` is about to close descriptor `fd` (reported by the foreign
  // library's close/dup2/dup3): every knote of an fd filter (READ, WRITE,
  // EXCEPT, VNODE) on that number in the process's kqueues goes, with its
  // queued event, and nothing is reported for it (knote_fdclose, OB
  // kern_event.c:1826-1845, DF kern_event.c:1868-1902). USER, TIMER,
  // SIGNAL and PROC idents are not descriptors: untouched.
  void FdClosing(Pid pid, int64_t fd);
  // EVFILT_SIGNAL: signal `signo` was delivered to process `pid` (reported
  // by the foreign library's counting hook, shim/foreign/bsd/kqueue.c).
  void OnSignal(Pid pid, int signo);
  void OnDeadline() override;
  Nanos NextDeadline() const override {
    return timer_heap_.empty() ? deadlines_.Next() : std::min(deadlines_.Next(), timer_heap_.front().when);
  }

  // --- ownership (emul/engine.h) ---
  bool OwnsObject(ObjectId obj) const override { return obj >= kFirstId; }
  bool OwnsWait(WaitId wait) const override { return wait >= kFirstWait; }
  bool OwnsWatch(WatchId watch) const override { return knotes_.count(kWatchUid | watch) != 0; }

  // --- inspection (tests, the descriptor's readiness) ---
  size_t PendingCount(ObjectId kq) const;
  size_t KnoteCount(ObjectId kq) const;
  size_t WaiterCount(ObjectId kq) const;
  // Retrievals answered by the scan's hand-over (HandOver) since the
  // engine began: which road a retrieval took, for the tests.
  uint64_t HandOverCount() const { return hand_overs_; }
  // Of those, the knotes handed over without ever being queued (held_).
  uint64_t HeldHandOverCount() const { return held_hand_overs_; }

 private:
  struct Knote;
  struct Kq;
  // The layout is compact (docs/design.md "Memory per watch"): a knote
  // costs one allocation of at most kKnoteBytes, so fields are ordered by
  // size and rarely used state (FreeBSD's ext[]) lives outside it.
  struct Knote {
    uint64_t uid = 0;
    ObjectId kq = 0;
    // As registered: what every event echoes (fflags and data are below).
    struct Registration {
      uint64_t ident = 0;
      uint64_t udata = 0;
      int32_t wire_filter = 0;  // the foreign EVFILT_* number
      uint16_t flags = 0;
      KFilter filter = KFilter::kRead;
    } kev;
    ExtWords ext;           // FreeBSD ext[], as registered
    int64_t sdata = 0;      // the registered data
    int64_t data = 0;       // what the next event reports
    // Its neighbours in its kqueue's active list while `queued` (KnoteQueue).
    Knote* queue_prev = nullptr;
    Knote* queue_next = nullptr;
    uint32_t sfflags = 0;   // the registered fflags
    uint32_t fflags = 0;    // what the next event reports
    // The registering process and descriptor (fd filters, VNODE; -1: none).
    Pid owner = 0;
    int fd = -1;
    uint16_t eof = 0;  // EV_EOF when the far side is gone
    // The flags are bits, so the knote keeps its 128 bytes with the queue's
    // two links (docs/design.md "Memory per watch").
    bool disabled : 1 = false;
    bool active : 1 = false;    // has an event to report (queued unless disabled)
    bool queued : 1 = false;
    // Its data/fflags/eof are what the kernels would post for it as a
    // stale EV_ONESHOT event (Collect): its last measurement said yes, or
    // found the file not ready while the knote stayed on the list (the
    // kernels post a queued EV_ONESHOT as last measured, DF kern_event.c:
    // 1510-1531, OB :303-319).
    bool measured : 1 = false;
    // Delivered level-triggered and back on the list with its watch armed
    // for the next look (Host::ArmWatchReportedAtLook): the scan takes the
    // host's Host::QuietSinceArm for the filter's "not ready" (Collect).
    bool awaits_look : 1 = false;
    bool vnode_use : 1 = false;  // VNODE: its watch reports opens, closes and reads
    // Goes with its descriptor still naming its file (a delivered
    // EV_ONESHOT, EV_DELETE): its watch may serve the number's next knote
    // (Host::ReleaseWatch).
    bool keep_watch : 1 = false;
    // Measured ready (not EV_CLEAR) by a change of the current kevent call:
    // that call's scan reports it unmeasured (listed in ready_at_change_).
    bool ready_at_change : 1 = false;
    // Each filter's own state (the kernels' kn_hook, kn_ptr), used only by
    // its FilterOps entry and the source that feeds it.
    struct User {
      bool triggered : 1 = false;
    } user;
    struct Proc {
      bool watched : 1 = false;   // counted in Host::WatchProcess (until the exit detaches it)
      bool drop_now : 1 = false;  // attached to a zombie with nothing to report (FreeBSD EV_DROP)
    } proc;
    // READ, WRITE, EXCEPT: what the host found the watched file to be, kept
    // with the knote, as the knote is tied to one open file (Host::ProbeFd's
    // `known`). Beside the flags, not in Io: it packs into their padding.
    FdKind io_kind = FdKind::kUnknown;
    struct Io {  // READ, WRITE, EXCEPT
      OptionalId<WatchId> watch;
      // READ on a kqueue's descriptor: that kqueue (filt_kqueue reports its count).
      OptionalId<ObjectId> watched_kq;
      // READ on a regular file: the host's vnode watch (Host::WatchVnode)
      // whose reports measure it again, as the file systems' VN_KNOTE at a
      // write runs filt_vfsread/filt_ufsread (docs/kqueue.md "A regular file
      // that grows"). Made at the knote's first measurement, gone with it.
      OptionalId<WatchId> file;
    };
    struct Timer {
      Nanos period = 0;
      Nanos next_fire = 0;
      bool running = false;
      bool absolute = false;  // NOTE_ABSTIME: one expiry, no period
    };
    struct Vnode {
      OptionalId<WatchId> watch;
    };
    struct Fs {
      OptionalId<WatchId> watch;  // Host::WatchMounts
    };
    // A knote has one filter for life, so the filters' states share their
    // bytes (docs/design.md "Memory per watch"): only the member of
    // kev.filter is ever read (IsIoFilter, kVnode, kTimer), and code common
    // to every filter asks the filter first (Stale). All zero bytes: no
    // watch, no kqueue, no timer running.
    union {
      Io io;
      Timer timer;
      Vnode vnode;
      Fs fs;
    };
    // Made through its largest member, so that every byte of the union
    // starts zero whichever filter reads it (a member made instead leaves
    // the bytes past its fields unset).
    static_assert(sizeof(Io) >= sizeof(Timer) && sizeof(Io) >= sizeof(Vnode) && sizeof(Io) >= sizeof(Fs));
    Knote() : io() {}

    // The registration as a record (fflags and data 0).
    KeventRecord Registered() const {
      KeventRecord r;
      r.ident = kev.ident;
      r.filter = kev.filter;
      r.wire_filter = kev.wire_filter;
      r.flags = kev.flags;
      r.udata = kev.udata;
      r.ext = ext.Get();
      return r;
    }
  };
  // Budget of one knote's allocation (glibc chunks of 16 bytes, 8 of them
  // the header): tests/unit/memory_budget_test.cc pins the total per knote.
  static constexpr size_t kKnoteBytes = 128;
  static_assert(sizeof(Knote) <= kKnoteBytes, "a knote outgrew its memory budget");
  // A kqueue's active list (kq_head), linked through its knotes: no node of
  // its own per active knote. A knote is on at most one list, its kqueue's.
  class KnoteQueue {
   public:
    class Iter {
     public:
      explicit Iter(Knote* at) : at_(at) {}
      Knote* operator*() const { return at_; }
      Iter& operator++() {
        at_ = at_->queue_next;
        return *this;
      }
      bool operator==(const Iter& o) const { return at_ == o.at_; }

     private:
      Knote* at_;
    };
    Iter begin() const { return Iter(head_); }
    Iter end() const { return Iter(nullptr); }
    bool empty() const { return head_ == nullptr; }
    size_t size() const { return size_; }
    void PushBack(Knote& kn) {
      kn.queue_prev = tail_;
      kn.queue_next = nullptr;
      (tail_ != nullptr ? tail_->queue_next : head_) = &kn;
      tail_ = &kn;
      ++size_;
    }
    void PushFront(Knote& kn) {
      kn.queue_prev = nullptr;
      kn.queue_next = head_;
      (head_ != nullptr ? head_->queue_prev : tail_) = &kn;
      head_ = &kn;
      ++size_;
    }
    void Erase(Knote& kn) {
      (kn.queue_prev != nullptr ? kn.queue_prev->queue_next : head_) = kn.queue_next;
      (kn.queue_next != nullptr ? kn.queue_next->queue_prev : tail_) = kn.queue_prev;
      kn.queue_prev = kn.queue_next = nullptr;
      --size_;
    }

   private:
    Knote* head_ = nullptr;
    Knote* tail_ = nullptr;
    size_t size_ = 0;
  };
  // A kqueue's knotes by (filter, ident), the key read from the knote
  // itself. Intrusive: an entry is the knote and one link, allocated once
  // (136 bytes, the same glibc chunk as the unordered_set node it replaces;
  // docs/design.md "Memory per watch"), and the buckets are a table of
  // heads, a power of two of them, at most two knotes a bucket on average
  // (4 to 8 bytes a knote, where the set's prime count at one knote a
  // bucket took 8 or more).
  // Entries do not move, so Knote* and Knote& stay valid until the knote is
  // erased. Erase takes the knote's own entry: its bucket's chain is walked
  // for the link that points at it (no key compared). The key's fields
  // (kev.filter, kev.ident) are never changed once a knote is in.
  //
  // The program chooses the idents (USER, TIMER, SIGNAL, PROC: any 64-bit
  // value): the bucket is a multiplicative hash of the key mixed with a
  // key of the table's own (`seed`, from the Kqueues' address and a
  // count), so no fixed set of idents collides in every process; a chain
  // is bounded by the kqueue's knotes (limits_.max_knotes) as before.
  class KnoteTable {
    struct Entry {
      Knote kn;
      Entry* next = nullptr;
    };

   public:
    KnoteTable() = default;
    KnoteTable(const KnoteTable&) = delete;
    KnoteTable& operator=(const KnoteTable&) = delete;
    ~KnoteTable() {
      for (Entry* head : buckets_) {
        while (head != nullptr) delete std::exchange(head, head->next);
      }
    }
    class Iter {
     public:
      Iter(const KnoteTable* t, size_t bucket, Entry* at) : t_(t), bucket_(bucket), at_(at) {}
      Knote& operator*() const { return at_->kn; }
      Iter& operator++() {
        at_ = at_->next;
        if (at_ == nullptr) *this = t_->FirstFrom(bucket_ + 1);
        return *this;
      }
      bool operator==(const Iter& o) const { return at_ == o.at_; }

     private:
      const KnoteTable* t_;
      size_t bucket_;
      Entry* at_;
    };
    Iter begin() const { return FirstFrom(first_); }
    Iter end() const { return Iter(this, 0, nullptr); }
    bool empty() const { return size_ == 0; }
    size_t size() const { return size_; }
    // The first knote: buckets before `first_` are empty, so a loop that
    // drops the front until none is left walks the buckets once.
    Knote& front() {
      while (buckets_[first_] == nullptr) ++first_;
      return buckets_[first_]->kn;
    }
    Knote* Find(KFilter filter, uint64_t ident) const {
      if (size_ == 0) return nullptr;  // spares hashing the key
      for (Entry* e = buckets_[Bucket(filter, ident)]; e != nullptr; e = e->next) {
        if (e->kn.kev.ident == ident && e->kn.kev.filter == filter) return &e->kn;
      }
      return nullptr;
    }
    // What the tables of one Kqueues share: the entry of the last knote
    // dropped, for the next one added, and the counts over every kqueue.
    struct Shared {
      Shared() = default;
      Shared(const Shared&) = delete;
      Shared& operator=(const Shared&) = delete;
      ~Shared() { delete spare; }
      Entry* spare = nullptr;
      size_t knotes = 0;
      size_t fed_by_look = 0;  // FedByTheLook
      uint64_t erased = 0;     // knotes erased so far (Collect's addresses)
      uint64_t tables = 0;     // tables keyed so far (KnoteTable::seed_)
    };
    // A new knote with this key (not in the table yet), in the entry a
    // knote dropped before left (`shared.spare`) when there is one: a knote
    // added and dropped per call (EV_ONESHOT) allocates nothing. The spare
    // is made new in place.
    Knote& Add(KFilter filter, uint64_t ident, Shared& shared) {
      Count(filter, shared, 1);
      Entry* e = shared.spare;
      if (e == nullptr) {
        e = new Entry;
      } else {
        shared.spare = nullptr;
        std::destroy_at(&e->kn);
        std::construct_at(&e->kn);
      }
      e->kn.kev.filter = filter;
      e->kn.kev.ident = ident;
      if (size_ >= 2 * buckets_.size()) Grow(shared);
      Link(e, Bucket(filter, ident));
      ++size_;
      return e->kn;
    }
    // The knote's entry goes to `shared.spare` if that is empty.
    void Erase(const Knote& kn, Shared& shared) {
      // The link that holds this very knote: its address is compared, no key
      // (Entry is not standard-layout for every compiler: no cast from kn).
      Entry** link = &buckets_[Bucket(kn.kev.filter, kn.kev.ident)];
      while (&(*link)->kn != &kn) link = &(*link)->next;
      Entry* const e = *link;
      *link = e->next;
      --size_;
      ++shared.erased;
      Count(kn.kev.filter, shared, -1);
      if (shared.spare == nullptr) {
        shared.spare = e;
      } else {
        delete e;
      }
    }

    // How many of its knotes a host source feeds through the engine's
    // look (FedByTheLook).
    size_t fed_by_look() const { return fed_by_look_; }
    // The filters whose events the host reports at a look: the descriptor
    // filters' watches, VNODE's, PROC's process watch, the signals counted
    // for SIGNAL. USER is the program's (NOTE_TRIGGER) and TIMER's
    // deadlines are run by the clock (Engine::CatchUpDeadlines).
    static bool FedByTheLook(KFilter f) {
      switch (f) {
        case KFilter::kRead:
        case KFilter::kWrite:
        case KFilter::kExcept:
        case KFilter::kVnode:
        case KFilter::kProc:
        case KFilter::kSignal:
        case KFilter::kFs:
          return true;
        case KFilter::kTimer:
        case KFilter::kUser:
          return false;
      }
      return true;
    }

   private:
    void Count(KFilter f, Shared& shared, int by) {
      shared.knotes += static_cast<size_t>(by);
      if (!FedByTheLook(f)) return;
      fed_by_look_ += static_cast<size_t>(by);
      shared.fed_by_look += static_cast<size_t>(by);
    }
    size_t Bucket(KFilter filter, uint64_t ident) const {
      uint64_t h = ((ident << 4) | static_cast<uint64_t>(filter)) ^ seed_;
      h *= 0x9e3779b97f4a7c15ull;  // 2^64 / the golden ratio, odd
      return static_cast<size_t>(h >> shift_);
    }
    Iter FirstFrom(size_t bucket) const {
      for (; bucket < buckets_.size(); ++bucket) {
        if (buckets_[bucket] != nullptr) return Iter(this, bucket, buckets_[bucket]);
      }
      return end();
    }
    void Link(Entry* e, size_t bucket) {
      e->next = buckets_[bucket];
      buckets_[bucket] = e;
      if (bucket < first_) first_ = bucket;
    }
    // Twice the buckets (4 at first), every entry linked again; the key is
    // made with the first bucket table.
    void Grow(Shared& shared) {
      if (buckets_.empty()) {
        seed_ = (reinterpret_cast<uintptr_t>(&shared) ^ (++shared.tables << 32)) * 0xbf58476d1ce4e5b9ull;
      }
      std::vector<Entry*> old(buckets_.empty() ? 4 : buckets_.size() * 2, nullptr);
      old.swap(buckets_);
      shift_ = 64 - static_cast<unsigned>(std::countr_zero(buckets_.size()));
      first_ = buckets_.size();
      for (Entry* head : old) {
        while (head != nullptr) {
          Entry* e = std::exchange(head, head->next);
          Link(e, Bucket(e->kn.kev.filter, e->kn.kev.ident));
        }
      }
    }
    std::vector<Entry*> buckets_;
    size_t size_ = 0;
    size_t first_ = 0;  // no knote in a bucket before it
    unsigned shift_ = 64;
    uint64_t seed_ = 0;
    size_t fed_by_look_ = 0;
  };
  struct Waiter {
    WaitId id;
    Caller caller;
    uint32_t max;
    std::optional<Nanos> deadline;
    std::unique_ptr<KeventCompletion> done;
  };
  struct Kq {
    ObjectId id;
    Pid owner;  // 0: a fork copy not yet claimed (freed by ForkSourceClosed)
    bool copy_on_fork = false;
    KqueuePolicy policy;  // of the last kevent call (one personality per program)
    // Its knotes, by (filter, ident); the nodes do not move, so Knote* and
    // Knote& stay valid until the knote is dropped.
    KnoteTable knotes;
    KnoteQueue queue;
    std::list<Waiter> waiters;
    bool readable_reported = false;
    // Its last descriptor is gone; it lives on for the waiters that hold it.
    bool closed = false;
    // A kevent call on it is under way (ReadinessHold): readable_reported
    // changed without telling the host yet (`readiness_moved`).
    bool readiness_held = false;
    bool readiness_moved = false;
  };
  // For the span of one kevent call, a kqueue's readiness goes to the host
  // once, as it is at the end, if it changed at all in between (a knote
  // activated by a change then collected, a level knote taken off the list
  // and put back). The host keeps only the last state and applies it after
  // the call (ObjectReadinessChanged), so it sees what it saw before, for
  // one report instead of two, and none when it ends as it began (the
  // host's last report says so already: a ready knote added and collected
  // by one call); watchers are still woken at each change
  // (UpdateReadiness).
  class ReadinessHold {
   public:
    ReadinessHold(Kqueues& self, Kq& kq)
        : self_(self), id_(kq.id), holds_(!kq.readiness_held), was_(kq.readable_reported) {
      kq.readiness_held = true;
    }
    ~ReadinessHold();
    ReadinessHold(const ReadinessHold&) = delete;
    ReadinessHold& operator=(const ReadinessHold&) = delete;

   private:
    Kqueues& self_;
    ObjectId id_;
    bool holds_;  // not nested in another hold of the same kqueue
    bool was_;    // readable_reported at the start: what the host was last told
  };
  // One filter's operations, as the BSDs' struct filterops; the entries
  // are in kqueue_filters.cc (Filters), one per KFilter.
  struct FilterOps {
    KFilter filter;
    bool on_descriptor;   // the ident is a descriptor: knote_fdclose drops it (f_isfd)
    uint32_t watch_mask;  // the poll bits its host watch waits for; 0: no fd watch
    // f_attach: the knote is new; 0 or the errno that refuses it.
    int (*attach)(Kqueues& self, Kq& kq, Knote& kn, Caller caller, const KChange& change);
    // f_detach: releases what attach took (host watches, indexes,
    // deadlines); nullptr: nothing. Safe to call twice.
    void (*detach)(Kqueues& self, Knote& kn);
    // f_event: refreshes what the knote reports; true if it has an event.
    // May drop the knote (its descriptor was closed): sets *dropped.
    bool (*event)(Kqueues& self, Kq& kq, Knote& kn, bool* dropped);
    // f_touch EVENT_REGISTER: a change (with or without EV_ADD) to an
    // existing knote, after the registration is updated; nullptr: nothing.
    void (*touch)(Kqueues& self, Kq& kq, Knote& kn, const KChange& change);
    // EV_CLEAR after the event was delivered (f_touch EVENT_PROCESS).
    void (*clear)(const Kq& kq, Knote& kn);
    // f_copy (FreeBSD KQUEUE_CPONFORK): `copy` is `src` with a new uid and
    // kqueue, off every list; takes its own host resources. False: not
    // copied (and nothing taken). nullptr: the filter is never copied.
    bool (*copy)(Kqueues& self, const Knote& src, Knote& copy);
  };
  struct Filters;
  // Each filter's operations, at its KFilter value (kqueue_filters.cc
  // checks the order). Inline: a call asks several times per knote.
  static constexpr size_t kFilterCount = static_cast<size_t>(KFilter::kUser) + 1;
  static const std::array<const FilterOps*, kFilterCount> kOpsByFilter;
  static const FilterOps& OpsOf(KFilter f) { return *kOpsByFilter[static_cast<size_t>(f)]; }
  static std::span<const FilterOps* const> AllFilters();
  struct Taken {
    Knote* kn;
    KeventRecord ev;
  };
  enum class DeadlineKind : uint8_t { kWait, kTimer };

  // Inline, the last kqueue found first (a call finds its kqueue several
  // times; FindInMap otherwise).
  Kq* Find(ObjectId id) { return const_cast<Kq*>(std::as_const(*this).Find(id)); }
  const Kq* Find(ObjectId id) const {
    if (last_found_ != nullptr && last_found_->id == id) return last_found_;
    return FindInMap(id);
  }
  __attribute__((noinline, cold)) const Kq* FindInMap(ObjectId id) const;
  Knote* FindKnote(Kq& kq, KFilter f, uint64_t ident);
  int Register(Kq& kq, Caller caller, KChange& change);
  // A change to an existing knote: the registration, then the filter's touch.
  void Modify(Kq& kq, Knote& kn, const KChange& change);
  static bool WantsVnodeUse(const Kq& kq, uint32_t sfflags);
  // filter_process: refreshes what the knote would report; false if nothing.
  // May drop an fd knote whose descriptor was closed (sets *dropped).
  // Measure, and record in Knote::measured whether it reported an event
  // (or found a queued knote not ready: it stays queued, posted as measured).
  bool Evaluate(Kq& kq, Knote& kn, bool* dropped);
  bool Measure(Kq& kq, Knote& kn, bool* dropped);
  // The step of kqueue_register that measures a knote; each does its own
  // with a "not ready" (MeasureAfterChange; docs/kqueue.md "A change's
  // measurement").
  enum class ChangeStep : uint8_t {
    kNew,     // the add of a new knote
    kAdd,     // EV_ADD on an existing knote
    kModify,  // a change without EV_ADD (FreeBSD, DragonFly)
    kEnable,  // EV_ENABLE of a disabled knote
  };
  // A change's measurement (the f_event of kqueue_register): the knote is
  // activated if its filter says yes; a no takes nothing back (a queued
  // knote stays queued for the scan), what `step` does then. True if it
  // dropped the knote (its descriptor was closed meanwhile): the change
  // then succeeds and touches it no more.
  bool MeasureAfterChange(Kq& kq, Knote& kn, ChangeStep step);
  // Whether a change with `flags` measures the knote before EV_ENABLE:
  // not one that is disabled, or that the change disables, on FreeBSD
  // (KqueuePolicy::measures_disabled).
  static bool ChangeMeasures(const Kq& kq, const Knote& kn, uint16_t flags);
  // The event a knote reports now.
  static KeventRecord Report(const Knote& kn);
  void Activate(Kq& kq, Knote& kn);
  // READ on a regular file: its vnode watch (Knote::Io::file) reported.
  void OnRegularFileChange(Kq& kq, Knote& kn);
  void Enqueue(Kq& kq, Knote& kn, bool at_head = false);
  void Dequeue(Kq& kq, Knote& kn);
  void Drop(Kq& kq, Knote& kn);
  Result<uint32_t> ArmWatchAsFlagsSay(Knote& kn, uint32_t want);
  void ArmFd(Kq& kq, Knote& kn);
  void ArmFdForActivity(Kq& kq, Knote& kn);
  // A new WRITE knote that no change measures (FreeBSD's EV_ADD|EV_DISABLE)
  // on a pipe whose other end is closed, which pipe_kqfilter refuses: one
  // poll, and which way the pipe is open only when it shows the close.
  bool UnmeasuredWriteOnAClosedPipe(Knote& kn);
  // After the filter said "not ready": arms so that only new activity wakes.
  // True if its last look dropped the knote (its descriptor was closed).
  bool ArmFdNotReady(Kq& kq, Knote& kn);
  // A level fd knote just delivered, back on the list: its watch armed so
  // that the next look reports it if still ready (Knote::awaits_look).
  void ArmForNextLook(Knote& kn);
  // The poll bits an fd knote's host watch waits for (0: not an fd filter).
  static uint32_t WatchMask(const Knote& kn) { return OpsOf(kn.kev.filter).watch_mask; }
  // The filters whose state is Knote::io.
  static bool IsIoFilter(KFilter f) { return f == KFilter::kRead || f == KFilter::kWrite || f == KFilter::kExcept; }
  // A relative timer's period as `kq`'s kernel runs it (its minimum period).
  static Nanos TimerPeriod(const Kq& kq, Nanos requested);
  void StartTimer(Knote& kn, Nanos now);
  // A timer knote's deadline `when` passed at `now`: counts, re-arms; its
  // kqueue if the knote activated (kqueue_filters.cc).
  Kq* ExpireTimer(Knote& kn, Nanos when, Nanos now);
  // Starts a timer knote as `change` says: relative and periodic, or
  // absolute (NOTE_ABSTIME). 0 or the kernel's errno.
  int ArmTimer(Kq& kq, Knote& kn, const KChange& change);
  // The descriptor of an fd knote was closed or now names another file.
  bool Stale(const Knote& kn);
  // knote_fdclose observed lazily: drops the knotes (of every fd filter) on
  // `ident` whose descriptor was closed; DropClosedKnotes: every such knote
  // (before ENOMEM for --max-knotes).
  void DropClosedKnotesAt(Kq& kq, uint64_t ident);
  void DropClosedKnotes();
  // The watched process exited; true if the knote is to be dropped silently.
  bool ApplyExit(Kq& kq, Knote& kn, int64_t status);
  std::vector<uint64_t> ProcKnotes(Pid pid) const;
  template <typename Fn>
  void ForEachProcKnote(Pid pid, Fn&& fn);
  // Kevent, with `done` owned by `*owned` (given to the waiter if the call
  // parks) or lent (nullptr: its KeepForWait).
  std::optional<WaitId> KeventWith(Caller caller, ObjectId id, const KqueuePolicy& policy,
                                   std::span<KChange> changes, bool changes_fault, const KeventWait& wait,
                                   KeventCompletion& done, std::unique_ptr<KeventCompletion>* owned);
  std::vector<Taken> Collect(Kq& kq, uint32_t max);
  // The knote the scan would take alone with no measurement of its own:
  // the only one queued, enabled, measured ready by a change of this very
  // call (Collect's `measured_now`), no look owed; else null (Kevent).
  Knote* SoleKnoteMeasuredByChange(Kq& kq);
  // The knote held off the list (held_, not null) if the scan's hand-over
  // may take it as SoleKnoteMeasuredByChange would, else null (then it is
  // queued, and the list has no knote that one would take).
  Knote* TakeHeldForHandOver(Kq& kq);
  // Queues the held knote, where it would have been queued at its change.
  void QueueHeld() {
    if (held_ != nullptr) [[unlikely]] QueueHeldNow();
  }
  __attribute__((noinline, cold)) void QueueHeldNow();
  // Collect and Deliver for that one knote, without their lists.
  void HandOver(Kq& kq, KeventCompletion& done, Knote& kn);
  void Commit(Kq& kq, std::vector<Taken>& taken);
  void CommitOne(Kq& kq, Knote& kn);
  void PutBack(Kq& kq, std::vector<Taken>& taken);
  void PutBackOne(Kq& kq, Knote& kn);
  // Hands events to a waiter; false if refused (then put back). By
  // reference: no vector moved into a parameter and destroyed per call.
  bool Deliver(Kq& kq, KeventCompletion& done, std::vector<Taken>&& taken);
  // Hands the kqueue's queued events to its waiters, then rearms the
  // deadline if this engine's deadlines moved. Inline, the usual case first
  // (nobody waits, no deadline moved): every kevent and every routed watch
  // report pumps.
  void Pump(Kq& kq) {
    if (kq.waiters.empty() && !deadlines_moved_) return;
    PumpWaiters(kq);
  }
  void PumpWaiters(Kq& kq);
  // Whether `kq` polls readable (a knote on its list) moved: reported, and
  // its watchers woken. Inline, the usual answer first (no move): every
  // Enqueue and Dequeue asks, several times a call.
  void UpdateReadiness(Kq& kq) {
    if (kq.queue.empty() != kq.readable_reported) [[likely]] return;
    ReadinessMoved(kq);
  }
  void ReadinessMoved(Kq& kq);
  // `kq` has events now: the READ knotes watching its descriptor activate
  // (kqueue_wakeup's KNOTE on kq_sel, DF kern_event.c, OB kqueue_wakeup).
  // Inline, as the two below: a call usually has nothing for them to do.
  void WakeWatchers(ObjectId kq) {
    if (!kq_watchers_.empty()) WakeWatchersOf(kq);
  }
  // Out of line for good: link-time optimization inlined it into
  // ReadinessMoved, whose every call then paid its frame.
  __attribute__((noinline)) void WakeWatchersOf(ObjectId kq);
  void AddDeadline(Nanos when, DeadlineKind kind, uint64_t id);
  void RemoveDeadline(Nanos when, DeadlineKind kind, uint64_t id);
  void RemoveWaiter(Kq& kq, std::list<Waiter>::iterator it);
  void CancelWaitOnly(WaitId id);
  // Frees the kqueue at once: its waiters get EBADF, its knotes go.
  void Destroy(ObjectId kq);
  // Frees the closed kqueues whose last waiter has left. Called at the end
  // of the entry points, where no caller holds a Kq reference.
  void ReapClosed() {
    if (!closed_with_waiters_.empty()) ReapClosedNow();
  }
  void ReapClosedNow();

  std::unordered_map<ObjectId, std::unique_ptr<Kq>> kqs_;
  // The kqueue Find found last: a program's calls name one kqueue over and
  // over, and a kevent finds it more than once. A Kq stays where it is
  // (unique_ptr) until its erase, which clears this. One entry, where the
  // object table keeps eight (shim/runtime/object_table.h): that table
  // serves every kind and a call names several objects there.
  mutable const Kq* last_found_ = nullptr;
  // Every knote by uid (owned by its Kq::knotes). A knote with a host
  // watch (READ, WRITE, EXCEPT) takes kWatchUid | its watch's id as its uid
  // once it has the watch (AdoptWatchUid), so this one index also finds it
  // by watch (OnWatchReady, OwnsWatch): one entry per fd knote where two
  // were (docs/design.md "Memory per watch"). Other uids count up from 1
  // and never reach kWatchUid; a host's watch ids are unique while they
  // live, and a knote drops its watch only as it goes (Drop).
  static constexpr uint64_t kWatchUid = 1ULL << 63;
  FlatIdMap<Knote*> knotes_;
  void AdoptWatchUid(Knote& kn, WatchId watch);
  Limits limits_;
  // The readiness bits the last fd probe measured, and of which knote: the
  // filter's "not ready" is followed by arming the same file's watch, which
  // then needs no look of its own (Host::ArmWatchMeasured).
  struct LastProbe {
    uint64_t uid = 0;
    uint32_t revents = 0;
  } last_probe_;
  // fd knotes (not EV_CLEAR) the changes of the current kevent call found
  // ready (Knote::ready_at_change): the scan of that call reports what they
  // measured instead of measuring again (nothing the engine sees can happen
  // in between: the call holds the engine). Their uids, so the bits are
  // cleared at each call's start and end (ForgetChangeMeasures). The first
  // in its own word (`ready_at_change_first_`, 0: none; no uid is 0): a
  // call of one change (an event loop's re-arm) lists it without the
  // vector's out-of-line push_back; the rest follow in the vector, which
  // keeps its storage.
  uint64_t ready_at_change_first_ = 0;
  std::vector<uint64_t> ready_at_change_;
  void ForgetChangeMeasures() {
    if (ready_at_change_first_ != 0) ForgetChangeMeasuresNow();
  }
  void ForgetChangeMeasuresNow();
  // A retrieval's event list, lent to KeventCompletion::Complete (Deliver).
  std::vector<KeventRecord> spare_events_;
  // The node of the last knote dropped, for the next one added
  // (KnoteTable::Add), and the knotes' counts over every kqueue.
  KnoteTable::Shared tables_;
  // Collect's lists, kept between scans (only small ones: a scan that once
  // took thousands of events does not hold their memory for good).
  std::vector<std::pair<uint64_t, Knote*>> spare_listed_;
  std::vector<Taken> spare_taken_;
  uint64_t hand_overs_ = 0;
  uint64_t held_hand_overs_ = 0;
  // The knote whose add measures it now (Register, ChangeStep::kNew): its
  // attach just made its watch for the file at its number (Host::WatchFd
  // found the number open), with the engine held since, so the probe does
  // not ask Host::SameFile first. kqueue_register measures a new knote on
  // the file it took at the lookup (OB kern_event.c:1077, filter_process
  // at :1175); a close racing the add is ordered after this call (the
  // library's close report waits for the engine) and drops the knote then,
  // the order OpenBSD's fd_checkclosed allows ("the insert happening in
  // full before the close", :1155-1172). 0: none.
  uint64_t attached_uid_ = 0;
  // The knote never queued (docs/design.md "Instructions per event", s38):
  // the last change of a kevent that will scan (no EV_RECEIPT, room for an
  // event, no READ knote watches any kqueue) measured it ready on a kqueue
  // whose list was empty. It is active, not queued, and the scan's
  // hand-over takes it (TakeHeldForHandOver): queued it would have been the
  // list's only knote, taken at once. Anything else queues it first, where
  // it would have been: every answer of the call that is not the scan
  // (KeventWith's `finish`), a hand-over it does not fit (disabled by its
  // change), and a later measurement of the same change that queues
  // (MeasureAfterChange: EV_DISABLE|EV_ENABLE measures it again), so the
  // list's order stands. Nothing else runs between the hold and the scan:
  // the hold is the last change's last measurement but that one, no look
  // or watch report comes in a call's changes, and no READ knote watches
  // a kqueue (WakeWatchers). Drop forgets it. `hold_for_hand_over_` is on
  // only while that last change is applied (MeasureAfterChange asks).
  Knote* held_ = nullptr;
  Kq* held_kq_ = nullptr;
  bool hold_for_hand_over_ = false;
  template <typename T>
  static void Recycle(std::vector<T>& used, std::vector<T>& spare) {
    if (used.capacity() > 64 || used.capacity() <= spare.capacity()) return;
    used.clear();
    spare.swap(used);
  }
  void NoteChangeMeasure(Knote& kn, bool ready);
  std::unordered_map<WatchId, uint64_t> by_vnode_;
  std::unordered_map<WatchId, uint64_t> by_mounts_;  // EVFILT_FS: Host::WatchMounts -> knote uid
  std::multimap<Pid, uint64_t> proc_knotes_;
  std::multimap<ObjectId, uint64_t> kq_watchers_;  // watched kqueue -> READ knote
  DeadlineQueue<std::pair<DeadlineKind, uint64_t>> deadlines_;  // the waiters'
  // The timers' deadlines (docs/design.md "Memory per watch"): a binary
  // min-heap of (when, uid), 16 bytes a timer where a DeadlineQueue node
  // takes 64. A removal pops the entry if it is first and otherwise leaves
  // it, stale (its knote no longer runs for `when`), to be dropped when it
  // comes first or by a compaction once stale entries are half the heap:
  // the heap stays within twice the running timers (plus a constant).
  struct TimerDeadline {
    Nanos when;
    uint64_t uid;
  };
  std::vector<TimerDeadline> timer_heap_;
  size_t timer_heap_stale_ = 0;
  // deadlines_ or timer_heap_ changed since Pump last armed the host's
  // timer (AddDeadline, RemoveDeadline, PopTimerDeadline, CompactTimerHeap,
  // TakeDueDeadline set it): Pump rearms only then. Another engine's
  // change arms the timer itself (Engines::Rearm, with this one's).
  bool deadlines_moved_ = true;
  bool TimerDeadlineLive(const TimerDeadline& d) const;
  void PopTimerDeadline();
  void PruneTimerHeap();  // drops stale entries from the front
  void CompactTimerHeap(const TimerDeadline* also_drop);
  // The earliest due deadline of either kind, removed: (when, (kind, id)).
  std::optional<std::pair<Nanos, std::pair<DeadlineKind, uint64_t>>> TakeDueDeadline(Nanos now);
  std::unordered_map<WaitId, ObjectId> wait_kq_;
  std::vector<ObjectId> closed_with_waiters_;
  // Copies of ForkPrepare not yet claimed, by token.
  struct ForkCopies {
    Pid parent = 0;
    std::vector<std::pair<ObjectId, ObjectId>> copies;  // (the parent's kqueue, its copy)
  };
  std::unordered_map<uint64_t, ForkCopies> fork_copies_;
  uint64_t next_fork_token_ = 1;
  ObjectId CopyKqueue(Kq& from);
  ObjectId next_kq_ = kFirstId;
  WaitId next_wait_ = kFirstWait;
  uint64_t next_uid_ = 1;
};

}  // namespace evshim::emul
