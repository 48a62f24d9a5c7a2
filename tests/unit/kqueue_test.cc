// The kqueue engine with a fake host: descriptors whose readiness and byte
// counts the test sets, and a manual clock. Each test cites the kernel
// behaviour it pins ("OB kern_event.c:N" = OpenBSD rev 1.194, "DF" =
// DragonFly; shared/seeds/).
#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>

#include "emul/kqueue.h"

namespace evshim::emul {
namespace {

namespace pb = poll_bits;

class KqFakeHost : public Host {
 public:
  struct File {
    uint32_t ready = 0;
    int64_t readable = 0;
    int64_t writable = 0;
    bool pipe = false;
    bool regular = false;  // a regular file (readable: bytes to EOF; no readiness)
    FdKind kind = FdKind::kUnknown;  // what the host's probe found (a pipe's end)
  };
  using FileRef = std::shared_ptr<File>;

  FileRef Open(Pid pid, int fd) {
    auto f = std::make_shared<File>();
    fds_[{pid, fd}] = f;
    return f;
  }
  void Dup(Pid pid, int from, int to) { fds_[{pid, to}] = fds_.at({pid, from}); }
  // fork: the child has the parent's open files at the same numbers.
  void Inherit(Pid parent, Pid child) {
    std::vector<std::pair<std::pair<Pid, int>, FileRef>> copy;
    for (auto& [key, f] : fds_) {
      if (key.first == parent) copy.push_back({{child, key.second}, f});
    }
    for (auto& [key, f] : copy) fds_[key] = f;
  }
  void Close(Pid pid, int fd) { fds_.erase({pid, fd}); }
  // Changes a file; armed watches on it fire through `engine`.
  void Set(Kqueues& engine, const FileRef& f, uint32_t ready, int64_t readable, int64_t writable = 0) {
    f->ready = ready;
    f->readable = readable;
    f->writable = writable;
    std::vector<WatchId> fire;
    for (auto& [id, w] : watches_) {
      if (w.file.lock() != f || !(ready & w.mask)) continue;
      if (w.edge) w.edge_pending = true;  // new activity: an edge (EPOLLET)
      if (w.armed) {
        w.armed = false;
        w.edge_pending = false;  // reported
        fire.push_back(id);
      }
    }
    for (WatchId id : fire) engine.OnWatchReady(id, ready);
  }
  void Advance(Kqueues& engine, Nanos d) {
    now_ += d;
    if (deadline_ <= now_) engine.OnDeadline();
  }
  bool readable(ObjectId o) const { return readable_.count(o) != 0; }
  size_t watches() const { return watches_.size(); }
  Nanos deadline() const { return deadline_; }

  Nanos Now() override { return now_; }
  // CLOCK_REALTIME - CLOCK_MONOTONIC: the monotonic clock's 0 (boot) is this epoch time.
  static constexpr Nanos kBootRealtime = 1'700'000'000LL * 1'000'000'000LL;
  Nanos RealtimeOffset() override { return kBootRealtime; }
  // Processes that hold no descriptor of any kqueue (the supervisor's HoldsObject).
  void Stranger(Pid pid) { strangers_.insert(pid); }
  bool HoldsObject(Pid pid, ObjectId) override { return strangers_.count(pid) == 0; }
  std::set<Pid> strangers_;
  // Descriptors that are kqueues (the supervisor's KqueueAt).
  void MarkKqueue(Pid pid, int fd, ObjectId kq) { kqueue_at_[{pid, fd}] = kq; }
  std::optional<ObjectId> KqueueAt(Pid pid, int fd) override {
    auto it = kqueue_at_.find({pid, fd});
    if (it == kqueue_at_.end()) return std::nullopt;
    return it->second;
  }
  std::map<std::pair<Pid, int>, ObjectId> kqueue_at_;
  int deadline_arms = 0;  // ArmDeadline calls
  void ArmDeadline(Nanos when) override {
    ++deadline_arms;
    deadline_ = when;
  }
  Result<WatchId> WatchFd(Pid pid, int fd) override {
    auto it = fds_.find({pid, fd});
    if (it == fds_.end()) return Errno{EBADF};
    watches_[next_] = Watch{it->second, 0, false};
    return next_++;
  }
  Result<uint32_t> ArmWatch(WatchId id, Pid, int, uint32_t events) override {
    Watch& w = watches_.at(id);
    w.edge = false;
    w.mask = events;
    FileRef f = w.file.lock();
    uint32_t now = f ? f->ready & events : 0;
    w.armed = now == 0;
    return now;
  }
  Result<uint32_t> ArmWatchEdge(WatchId id, Pid, int, uint32_t events) override {
    ++edge_arms;
    Watch& w = watches_.at(id);
    RegisterEdge(w, events);
    if (during_edge_arm) {
      // Activity that lands while the engine arms: reported by this arm.
      auto act = std::move(during_edge_arm);
      during_edge_arm = nullptr;
      if (FileRef f = w.file.lock()) act(*f);
      w.armed = false;
      w.edge_pending = false;
      FileRef f = w.file.lock();
      return f ? f->ready & events : 0u;
    }
    if (w.edge_pending) {
      w.edge_pending = false;
      FileRef f = w.file.lock();
      return f ? f->ready & events : 0u;
    }
    w.armed = true;  // only new activity (a later Set) fires it
    return 0u;
  }
  std::function<void(File&)> during_edge_arm;
  void SettleWatchEdge(WatchId id, Pid, int, uint32_t events) override {
    Watch& w = watches_.at(id);
    RegisterEdge(w, events);
    w.edge_pending = false;
  }
  // The in-process host's look (LocalWatches::QuietSinceArm), when
  // `level_looks` is on: a delivered level knote's watch is armed with no
  // call (ArmWatchIfFree), a Set() that makes its file ready fires it, and
  // Look() stands for a complete look at the loop: a watch armed before it
  // and not fired since is one whose file was not ready.
  bool level_looks = false;
  int free_arms = 0;
  void Look() { ++looks_; }
  // What ArmWatchIfFree does with `level_looks` on: arms the watch (kArms),
  // or leaves it as it was, as the in-process host does where arming would
  // cost a look of its own (kBusy: `events`, LocalWatches::Arm's kIfFree)
  // or the watch has no record (kGone: EBADF).
  enum class IfFree { kArms, kBusy, kGone };
  IfFree if_free = IfFree::kArms;
  Result<uint32_t> ArmWatchIfFree(WatchId id, Pid pid, int fd, uint32_t events) override {
    if (!level_looks) return Host::ArmWatchIfFree(id, pid, fd, events);
    if (if_free == IfFree::kBusy) return events;
    if (if_free == IfFree::kGone) return Errno{EBADF};
    ++free_arms;
    Watch& w = watches_.at(id);
    w.edge = false;
    w.mask = events;
    w.armed = true;  // a ready file is reported by the next look
    w.armed_at = looks_;
    return 0u;
  }
  bool QuietSinceArm(WatchId id) override {
    auto it = watches_.find(id);
    return level_looks && it != watches_.end() && it->second.armed && !it->second.edge &&
           it->second.armed_at < looks_;
  }
  void DisarmWatch(WatchId id) override { watches_.at(id).armed = false; }
  void DropWatch(WatchId id) override { watches_.erase(id); }
  int same_file_asks = 0;  // SameFile calls
  bool SameFile(Pid pid, int fd, WatchId id) override {
    ++same_file_asks;
    auto it = fds_.find({pid, fd});
    auto w = watches_.find(id);
    return it != fds_.end() && w != watches_.end() && w->second.file.lock() == it->second;
  }
  bool FdOpen(Pid pid, int fd) override { return fds_.count({pid, fd}) != 0; }
  int readiness_reports = 0;  // ObjectReadinessChanged calls
  void ObjectReadinessChanged(ObjectId obj, bool r) override {
    ++readiness_reports;
    if (r) {
      readable_.insert(obj);
    } else {
      readable_.erase(obj);
    }
  }
  int probes = 0;  // ProbeFd calls (docs/kqueue.md "What a kevent costs")
  // A descriptor number another thread closes while the engine measures it
  // (after SameFile confirmed it, before the probe): that probe finds it
  // closed. -1: none.
  int close_at_probe = -1;
  int probes_before_close = 0;  // of that descriptor, before the one that closes it
  Result<FdProbe> ProbeFd(Pid pid, int fd, FdProbeNeeds, FdKind) override {
    ++probes;
    if (fd == close_at_probe && probes_before_close-- == 0) {
      close_at_probe = -1;
      probes_before_close = 0;
      Close(pid, fd);
    }
    auto it = fds_.find({pid, fd});
    if (it == fds_.end()) return Errno{EBADF};
    FdProbe p;
    p.revents = it->second->ready;
    p.readable = it->second->readable;
    p.writable = it->second->writable;
    p.pipe = it->second->pipe;
    p.regular = it->second->regular;
    p.kind = it->second->kind;
    p.eof_error = eof_error;
    return p;
  }
  int edge_arms = 0;

  // --- processes (EVFILT_PROC) ---
  std::set<Pid> live;                 // running processes
  std::map<Pid, int64_t> zombies;     // exited, not reaped: wait status
  bool fork_exec_supported = true;    // false: no process connector
  std::map<Pid, int> proc_refs;       // WatchProcess - UnwatchProcess
  Result<ProcessState> WatchProcess(Pid pid, bool fork_exec, bool was_forked) override {
    if (fork_exec && !fork_exec_supported) return Errno{EOPNOTSUPP};
    ProcessState st;
    if (zombies.count(pid)) {
      st.zombie = true;
      st.status = zombies.at(pid);
    } else if (!live.count(pid) && !was_forked) {
      return Errno{ESRCH};
    } else if (!live.count(pid)) {
      return Errno{ESRCH};
    }
    ++proc_refs[pid];
    return st;
  }
  void UnwatchProcess(Pid pid) override {
    if (--proc_refs[pid] == 0) proc_refs.erase(pid);
  }
  // --- files (EVFILT_VNODE) ---
  std::map<WatchId, std::pair<Pid, int>> vnodes;
  std::set<WatchId> vnode_use;  // watches that report opens, closes and reads
  Result<WatchId> WatchVnode(Pid pid, int fd, bool use_events) override {
    if (!fds_.count({pid, fd})) return Errno{EBADF};
    vnodes[next_] = {pid, fd};
    if (use_events) vnode_use.insert(next_);
    return next_++;
  }
  void WatchVnodeUse(WatchId id) override { vnode_use.insert(id); }
  bool SameVnode(Pid pid, int fd, WatchId id) override {
    return vnodes.count(id) && fds_.count({pid, fd}) != 0;
  }
  void DropVnode(WatchId id) override { vnodes.erase(id); }
  // --- mount tables (EVFILT_FS) ---
  std::map<WatchId, Pid> mount_watches;
  int mounts_error = 0;  // WatchMounts fails with this errno
  Result<WatchId> WatchMounts(Pid pid) override {
    if (mounts_error != 0) return Errno{mounts_error};
    mount_watches[next_] = pid;
    return next_++;
  }
  void DropMounts(WatchId id) override { mount_watches.erase(id); }
  // The socket error ProbeFd reports with EOF.
  int eof_error = 0;

 private:
  struct Watch {
    std::weak_ptr<File> file;
    uint32_t mask;
    bool armed;
    bool edge = false;          // registered edge-triggered
    bool edge_pending = false;  // activity not yet reported
    int armed_at = 0;           // looks_ when armed by ArmWatchIfFree
  };
  // Edge-triggered like Linux's EPOLLET: a new registration reports the
  // present state once; after that only new activity (a later Set).
  static void RegisterEdge(Watch& w, uint32_t events) {
    if (w.edge && w.mask == events) return;
    w.edge = true;
    w.mask = events;
    FileRef f = w.file.lock();
    w.edge_pending = f && (f->ready & events);
  }
  std::map<std::pair<Pid, int>, FileRef> fds_;
  std::map<WatchId, Watch> watches_;
  std::set<ObjectId> readable_;
  WatchId next_ = 1;
  int looks_ = 0;
  Nanos now_ = 1'000'000'000;
  Nanos deadline_ = kNever;
};

struct Captured {
  bool called = false;
  KeventOutcome out;
  int handed_one = 0;  // answers through CompleteOne, without a list
};

class Capture final : public KeventCompletion {
 public:
  Capture(Captured* c, bool accept = true) : c_(c), accept_(accept) {}
  bool Complete(const KeventOutcome& out) override {
    if (!accept_) return false;
    c_->called = true;
    c_->out = out;
    return true;
  }
  bool CompleteOne(const KeventRecord& event) override {
    if (!accept_) return false;
    ++c_->handed_one;
    c_->called = true;
    c_->out = KeventOutcome{};
    c_->out.events.push_back(event);
    return true;
  }

 private:
  Captured* c_;
  bool accept_;
};

// A caller's event list with room for `writable` records (a NULL list has
// none): PostRecord copies them out, and fails past that.
class RecordList final : public KeventCompletion {
 public:
  RecordList(Captured* c, std::vector<KeventRecord>* copied, size_t writable)
      : c_(c), copied_(copied), writable_(writable) {}
  bool PostRecord(const KeventRecord& r) override {
    if (copied_->size() >= writable_) return false;
    copied_->push_back(r);
    return true;
  }
  bool Complete(const KeventOutcome& out) override {
    c_->called = true;
    c_->out = out;
    return true;
  }

 private:
  Captured* c_;
  std::vector<KeventRecord>* copied_;
  size_t writable_;
};

constexpr Caller kP{100, 100};
constexpr Caller kP2{100, 101};  // another thread of the same process

KqueuePolicy FreebsdPolicy() {
  KqueuePolicy p;
  p.negative_nevents_einval = true;
  p.close_wakes_waiters = false;
  p.report_action_flags = false;
  p.user_clear_resets_fflags = false;
  p.proc_exit_always = false;
  p.measures_disabled = false;
  p.reverse_pipe_room = 512;  // PIPE_BUF: filt_pipewrite on the unbacked reverse pipe
  p.pipe_close_clears_write = true;  // pipeclose's knlist_clear
  p.lacking_fifo_filter = KqueuePolicy::LackingFifoFilter::kNeverFires;  // pipe_kqfilter's pipe_nfiltops
  p.regular_read_poll_fflag = 0x2;  // NOTE_FILE_POLL (filt_vfsread)
  return p;
}
KqueuePolicy OpenbsdPolicy() {
  KqueuePolicy p;
  p.timeout_check = KqueuePolicy::TimeoutCheck::kBeforeChanges;
  p.modify_without_add = false;
  p.enable_queues_active = false;
  p.zombie_attach = KqueuePolicy::ZombieAttach::kRefuse;
  p.vnode_notes = 0xff;
  p.timer_min_period = 10'000'000;  // one tick at hz = 100
  p.regular_read_eof_fflag = 0x2;  // NOTE_EOF (filt_ufsread)
  p.lacking_fifo_filter = KqueuePolicy::LackingFifoFilter::kRefused;  // fifo_kqfilter's EINVAL
  p.except_on_pipe_errno = EINVAL;  // pipe_kqfilter, fifo_kqfilter: not through kevent(2)
  return p;
}
KqueuePolicy DragonflyPolicy() {
  KqueuePolicy p;
  p.post_errors_without_room = true;
  p.record_fault_stops = true;
  p.kqueue_descriptor_filter_errno = EOPNOTSUPP;
  p.close_wakes_waiters = false;
  p.timeout_check = KqueuePolicy::TimeoutCheck::kNever;
  p.timer_modify_restarts = false;
  p.proc_exit_flags = 0x1000;  // EV_NODATA
  p.pipe_eof_nodata = 0x1000;  // EV_NODATA
  p.zombie_attach = KqueuePolicy::ZombieAttach::kWithNoteExit;
  p.timer_min_period = 10'000'000;  // one tick at hz = 100
  p.except_on_pipe_errno = EOPNOTSUPP;  // pipe_kqfilter, fifo_kqfilter: no EXCEPT case
  return p;
}

KChange Ch(KFilter f, uint64_t ident, uint16_t flags, uint32_t fflags = 0, int64_t data = 0,
           uint64_t udata = 0) {
  KChange c;
  c.kev.ident = ident;
  c.kev.filter = f;
  c.kev.wire_filter = -static_cast<int32_t>(f) - 1;
  c.kev.flags = flags;
  c.kev.fflags = fflags;
  c.kev.data = data;
  c.kev.udata = udata;
  return c;
}

KChange Timer(uint64_t ident, uint16_t flags, Nanos period) {
  KChange c = Ch(KFilter::kTimer, ident, flags);
  c.timer_period = period;
  return c;
}

KeventWait Poll(uint32_t n) { return KeventWait{n, false, 0, 0}; }
KeventWait Forever(uint32_t n) { return KeventWait{n, true, 0, 0}; }
KeventWait Wait(uint32_t n, int64_t sec, int64_t nsec) { return KeventWait{n, false, sec, nsec}; }

class KqueueTest : public ::testing::Test {
 protected:
  KqueueTest() : kq_(engine_.Create(kP).value()) {}

  // kevent() that must complete at once.
  KeventOutcome Call(std::vector<KChange> changes, KeventWait w,
                     const KqueuePolicy& pol = FreebsdPolicy(), Caller who = kP) {
    Captured c;
    auto wid = engine_.Kevent(who, kq_, pol, changes, false, w,
                              std::make_unique<Capture>(&c));
    EXPECT_FALSE(wid.has_value());
    EXPECT_TRUE(c.called);
    return c.out;
  }
  std::vector<KeventRecord> Get(uint32_t n = 8, const KqueuePolicy& pol = FreebsdPolicy()) {
    return Call({}, Poll(n), pol).events;
  }
  // A pipe at `r` (read end) and `w` (write end), writable with room for
  // 4096 bytes; the read end's WRITE room (the reverse direction) is the
  // host's answer for it, the pipe's size. Levels asked at each look.
  std::pair<KqFakeHost::FileRef, KqFakeHost::FileRef> OpenPipe(int r_fd, int w_fd) {
    auto r = host_.Open(kP.pid, r_fd);
    auto w = host_.Open(kP.pid, w_fd);
    r->pipe = w->pipe = true;
    r->kind = FdKind::kPipeReadEnd;
    w->kind = FdKind::kPipeWriteEnd;
    w->ready = pb::kOut;
    w->writable = 4096;
    r->writable = 65536;
    host_.level_looks = true;
    return {r, w};
  }
  // A FIFO opened read-only at `rd_fd`, write-only at `wr_fd` and O_RDWR
  // at `both_fd` (the host found their open modes), empty.
  std::tuple<KqFakeHost::FileRef, KqFakeHost::FileRef, KqFakeHost::FileRef> OpenFifo(int rd_fd, int wr_fd,
                                                                                     int both_fd) {
    auto rd = host_.Open(kP.pid, rd_fd);
    auto wr = host_.Open(kP.pid, wr_fd);
    auto both = host_.Open(kP.pid, both_fd);
    rd->pipe = wr->pipe = both->pipe = true;
    rd->kind = FdKind::kFifoReadOnly;
    wr->kind = FdKind::kFifoWriteOnly;
    both->kind = FdKind::kFifo;
    return {rd, wr, both};
  }
  // The same FIFO with `level_looks` on, empty: the write-only descriptor
  // polls POLLOUT, and both count 4096 bytes of room.
  std::tuple<KqFakeHost::FileRef, KqFakeHost::FileRef, KqFakeHost::FileRef> OpenEmptyFifoLooked(int rd_fd, int wr_fd,
                                                                                                int both_fd) {
    auto fifo = OpenFifo(rd_fd, wr_fd, both_fd);
    host_.level_looks = true;
    std::get<1>(fifo)->ready = pb::kOut;
    std::get<0>(fifo)->writable = std::get<1>(fifo)->writable = 4096;
    return fifo;
  }
  // `passes` looks, each followed by a retrieval that takes the WRITE
  // knote on `ident` alone, with `room` and no EV_EOF (a level knote whose
  // yes no poll bit carries).
  void ExpectTheWriteAloneAfterEachLook(int passes, const KqueuePolicy& pol, uint64_t ident, int64_t room) {
    for (int pass = 0; pass < passes; ++pass) {
      SCOPED_TRACE(pass);
      host_.Look();
      auto ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].ident, ident);
      EXPECT_EQ(ev[0].filter, KFilter::kWrite);
      EXPECT_EQ(ev[0].data, room);
      EXPECT_EQ(ev[0].flags & kev::kEof, 0);
    }
  }
  // Closes the descriptors as the library reports a close (FdClosing): no
  // knote is left on them.
  void CloseReported(std::initializer_list<int> fds) {
    for (int fd : fds) {
      host_.Close(kP.pid, fd);
      engine_.FdClosing(kP.pid, fd);
    }
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  }
  // One knote queued (the kqueue polls readable) that the next scan takes
  // off without posting it (its filter says no, or it is disabled): the
  // kqueue is empty and not readable after it.
  void ExpectOneQueuedThatTheScanDrops(const KqueuePolicy& pol) {
    EXPECT_EQ(engine_.PendingCount(kq_), 1u);
    EXPECT_TRUE(host_.readable(kq_));
    EXPECT_TRUE(Get(8, pol).empty());
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    EXPECT_FALSE(host_.readable(kq_));
  }
  WaitId Park(Captured* c, KeventWait w, Caller who = kP, bool accept = true,
              std::vector<KChange> changes = {}, const KqueuePolicy& pol = FreebsdPolicy()) {
    auto wid = engine_.Kevent(who, kq_, pol, changes, false, w,
                              std::make_unique<Capture>(c, accept));
    EXPECT_TRUE(wid.has_value());
    return wid.value_or(0);
  }

  KqFakeHost host_;
  Kqueues engine_{host_};
  ObjectId kq_;
};

TEST_F(KqueueTest, IdsDoNotCollideWithPorts) {
  EXPECT_GE(kq_, ObjectId{1} << 40);
  EXPECT_EQ(engine_.Owner(kq_), kP.pid);
}

// What the engine reads before a kevent without a look (shim/inproc
// KeventWithoutLook): a kqueue with knotes, none of them fed by a host
// source at a look (READ, WRITE, EXCEPT, VNODE, PROC, SIGNAL). Each add and
// each way a knote goes (EV_DELETE, a delivered EV_ONESHOT, its
// descriptor's close) keeps the count.
TEST_F(KqueueTest, FedByNoHostSourceCountsTheKnotesALookFeeds) {
  EXPECT_FALSE(engine_.FedByNoHostSource(kq_));  // empty: the look stays
  EXPECT_FALSE(engine_.SomeKnoteFedByNoHostSource());
  Call({Ch(KFilter::kUser, 1, kev::kAdd), Ch(KFilter::kTimer, 2, kev::kAdd, 0, 3600000)}, Poll(0));
  EXPECT_TRUE(engine_.FedByNoHostSource(kq_));
  EXPECT_TRUE(engine_.SomeKnoteFedByNoHostSource());
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kSignal, 10, kev::kAdd)}, Poll(0));
  EXPECT_FALSE(engine_.FedByNoHostSource(kq_));
  Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0));
  EXPECT_FALSE(engine_.FedByNoHostSource(kq_));  // SIGNAL still
  Call({Ch(KFilter::kSignal, 10, kev::kDelete)}, Poll(0));
  EXPECT_TRUE(engine_.FedByNoHostSource(kq_));
  host_.Set(engine_, f, pb::kIn, 1);
  Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0));
  EXPECT_FALSE(engine_.FedByNoHostSource(kq_));
  ASSERT_EQ(Get().size(), 1u);  // delivered: the one-shot knote goes
  EXPECT_TRUE(engine_.FedByNoHostSource(kq_));
  Call({Ch(KFilter::kWrite, 5, kev::kAdd)}, Poll(0));
  EXPECT_FALSE(engine_.FedByNoHostSource(kq_));
  engine_.FdClosing(kP.pid, 5);
  EXPECT_TRUE(engine_.FedByNoHostSource(kq_));
  Call({Ch(KFilter::kUser, 1, kev::kDelete), Ch(KFilter::kTimer, 2, kev::kDelete)}, Poll(0));
  EXPECT_FALSE(engine_.FedByNoHostSource(kq_));  // empty again
  EXPECT_FALSE(engine_.SomeKnoteFedByNoHostSource());
  // Another kqueue with only a READ knote: every knote is fed by a look.
  host_.Open(kP.pid, 6);
  const ObjectId other = engine_.Create(kP).value();
  std::vector<KChange> read{Ch(KFilter::kRead, 6, kev::kAdd)};
  Captured c;
  EXPECT_FALSE(engine_.Kevent(kP, other, FreebsdPolicy(), read, false, Poll(0), std::make_unique<Capture>(&c)));
  EXPECT_EQ(c.out.error, 0);
  EXPECT_EQ(engine_.KnoteCount(other), 1u);
  EXPECT_FALSE(engine_.SomeKnoteFedByNoHostSource());
  Call({Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0));
  EXPECT_TRUE(engine_.SomeKnoteFedByNoHostSource());
  EXPECT_FALSE(engine_.FedByNoHostSource(other));
  engine_.Close(kq_);
  EXPECT_FALSE(engine_.SomeKnoteFedByNoHostSource());
}

TEST_F(KqueueTest, ReadOnPipeReportsBytesAndUdata) {
  auto f = host_.Open(kP.pid, 5);
  EXPECT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd, 0, 0, 0xdead)}, Poll(0)).events.size(), 0u);
  EXPECT_TRUE(Get().empty());
  host_.Set(engine_, f, pb::kIn, 7);
  EXPECT_TRUE(host_.readable(kq_));  // the kqueue's own descriptor polls readable
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 5u);
  EXPECT_EQ(ev[0].data, 7);
  EXPECT_EQ(ev[0].udata, 0xdeadu);
  EXPECT_EQ(ev[0].flags, 0);  // FreeBSD strips EV_ADD from what it reports
  // Level-triggered: still readable, reported again (OB kern_event.c:1433-1444).
  EXPECT_EQ(Get().size(), 1u);
  host_.Set(engine_, f, 0, 0);
  EXPECT_TRUE(Get().empty());  // re-measured at the scan: no longer ready
}

TEST_F(KqueueTest, OpenbsdReportsTheRegisteredFlags) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 1;
  auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kEnable)}, Poll(4), OpenbsdPolicy());
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].flags, kev::kAdd | kev::kEnable);  // kn_kevent = *kev (OB :1143)
}

TEST_F(KqueueTest, EofOnHangup) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  host_.Set(engine_, f, pb::kIn | pb::kHup | pb::kRdHup, 0);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(ev[0].flags & kev::kEof);
}

TEST_F(KqueueTest, LowatWaitsForEnoughBytes) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 10)}, Poll(0));
  host_.Set(engine_, f, pb::kIn, 4);
  EXPECT_TRUE(Get().empty());
  host_.Set(engine_, f, pb::kIn, 12);
  ASSERT_EQ(Get().size(), 1u);
}

// The lost wake-up of CPython's asyncio (issue 14 item 5): asyncio watches
// its subprocess's stdin, a pipe's write end, with EVFILT_READ; the child
// exits, the reader is gone. Linux polls that end POLLERR; the BSDs' pipe
// read filter reports EV_EOF (FreeBSD/OpenBSD/DragonFly filt_piperead). The
// waker counted POLLERR but the filter did not: the knote stayed queued,
// undeliverable, the kqueue polling readable and the waiter asleep. The
// kernels queue a knote only when its filter says so (DF kern_event.c:1796-1797)
// and drop it from the list when the filter says no (DF :1510-1518, OB :1410-1416).
TEST_F(KqueueTest, ReadOnAPipeWriteEndWakesTheWaiterWhenTheReaderGoes) {
  auto f = host_.Open(kP.pid, 5);
  f->pipe = true;
  f->ready = pb::kOut;
  f->writable = 4096;
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  Captured c;
  Park(&c, Forever(4));
  host_.Set(engine_, f, pb::kOut | pb::kErr, 0, 4096);  // the reader closed
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].ident, 5u);
  EXPECT_EQ(c.out.events[0].flags & kev::kEof, kev::kEof);
  EXPECT_EQ(c.out.events[0].data, 0);
  // Level-triggered: reported again, and the kqueue polls readable only
  // while an event can be retrieved.
  EXPECT_EQ(Get().size(), 1u);
  Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0));
  EXPECT_FALSE(host_.readable(kq_));
}

// The BSDs' pipes run both ways; Linux's one way, so a program under evshim
// can never write the reverse direction. READ on a pipe's write end reads
// that direction (filt_piperead on the end's own struct pipe: FreeBSD
// sys_pipe.c; OpenBSD filt_piperead_common; DragonFly filt_piperead, its
// rpb): no byte, whatever the forward direction holds (the host's FIONREAD
// on a write end counts those), and EV_EOF with data 0 once every reader is
// gone (Linux: POLLERR). WRITE on the read end measures the reverse
// direction's room (OpenBSD filt_pipewrite_common, DragonFly
// filt_pipewrite: the buffer's size, both directions made alike; here the
// pipe's size, as the host reports it; FreeBSD filt_pipewrite: PIPE_BUF, the
// reverse pipe having no buffer until written): ready with no poll bit,
// level (reported again after a look that did not report the file), and
// EV_EOF with data 0 once the write end is gone (Linux: POLLHUP).
TEST_F(KqueueTest, PipeFiltersOnTheWrongEndMeasureTheReverseDirection) {
  const std::pair<KqueuePolicy, int64_t> policies[] = {
      {FreebsdPolicy(), 512}, {OpenbsdPolicy(), 65536}, {DragonflyPolicy(), 65536}};
  for (const auto& [pol, room] : policies) {
    SCOPED_TRACE(room);
    auto [r, w] = OpenPipe(5, 6);
    Call({Ch(KFilter::kRead, 6, kev::kAdd, 0, 0, 0x61), Ch(KFilter::kWrite, 5, kev::kAdd, 0, 0, 0x51)}, Poll(0),
         pol);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);  // WRITE on the read end; READ on the write end is not ready
    EXPECT_EQ(ev[0].ident, 5u);
    EXPECT_EQ(ev[0].filter, KFilter::kWrite);
    EXPECT_EQ(ev[0].data, room);
    EXPECT_EQ(ev[0].flags & kev::kEof, 0);
    // Bytes written into the pipe (the write end's FIONREAD counts them).
    host_.Set(engine_, w, pb::kOut, 3, 4093);
    host_.Set(engine_, r, pb::kIn, 3, 65536);
    host_.Look();
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);  // level: the WRITE again; still no READ
    EXPECT_EQ(ev[0].ident, 5u);
    EXPECT_EQ(ev[0].data, room);
    // Every reader gone: READ on the write end says EV_EOF, with no byte.
    host_.Set(engine_, w, pb::kOut | pb::kErr, 3, 4093);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 2u);
    for (const KeventRecord& e : ev) {
      if (e.ident != 6u) continue;
      EXPECT_EQ(e.filter, KFilter::kRead);
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof);
      EXPECT_EQ(e.data, 0);
      EXPECT_EQ(e.fflags, 0u);
    }
    // The write end gone: WRITE on the read end says EV_EOF, data 0
    // (OpenBSD: pipe_peer NULL; DragonFly: wpb PIPE_CLOSED); FreeBSD's
    // pipeclose posts it once with PIPE_BUF, EV_ONESHOT (knlist_clear:
    // WriteOnAPipeAtItsOtherEndsCloseIsPostedPerKernel).
    host_.Set(engine_, r, pb::kIn | pb::kHup, 3, 65536);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 2u);
    for (const KeventRecord& e : ev) {
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof);
      EXPECT_EQ(e.data, e.filter == KFilter::kWrite && pol.pipe_close_clears_write ? room : 0);
    }
    Call({Ch(KFilter::kRead, 6, kev::kDelete)}, Poll(0), pol);
    if (!pol.pipe_close_clears_write) Call({Ch(KFilter::kWrite, 5, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
    host_.Close(kP.pid, 6);
  }
}

// EV_ADD of WRITE on a pipe whose other end is closed: the three refuse it
// in pipe_kqfilter (EPIPE: FreeBSD sys_pipe.c, `pipe_present !=
// PIPE_ACTIVE`; OpenBSD, `pipe_peer` NULL; DragonFly, the peer's buffer
// PIPE_CLOSED), on the write end (no reader: Linux POLLERR) and on the read
// end (no writer: POLLHUP; its WRITE is the reverse direction). READ is
// accepted (pipe_kqfilter checks nothing for it), and so is a FIFO's WRITE.
TEST_F(KqueueTest, WriteOnAPipeWhoseOtherEndIsClosedIsRefusedWithEpipe) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto r = host_.Open(kP.pid, 5);
    auto w = host_.Open(kP.pid, 6);
    auto f = host_.Open(kP.pid, 7);
    r->pipe = w->pipe = f->pipe = true;
    r->kind = FdKind::kPipeReadEnd;
    w->kind = FdKind::kPipeWriteEnd;
    f->kind = FdKind::kFifo;
    w->ready = f->ready = pb::kOut | pb::kErr;
    w->writable = f->writable = 4096;
    r->ready = pb::kHup;
    r->writable = 65536;
    // Room for the record: EV_ERROR with EPIPE, no knote.
    auto out = Call({Ch(KFilter::kWrite, 6, kev::kAdd, 0, 0, 0x66)}, Poll(4), pol);
    EXPECT_EQ(out.error, 0);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].flags & kev::kError, kev::kError);
    EXPECT_EQ(out.events[0].data, EPIPE);
    EXPECT_EQ(out.events[0].udata, 0x66u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    out = Call({Ch(KFilter::kWrite, 5, kev::kAdd)}, Poll(4), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].flags & kev::kError, kev::kError);
    EXPECT_EQ(out.events[0].data, EPIPE);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    // No room (FreeBSD and OpenBSD: the call fails with it).
    if (!pol.post_errors_without_room) {
      EXPECT_EQ(Call({Ch(KFilter::kWrite, 6, kev::kAdd)}, Poll(0), pol).error, EPIPE);
      EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    }
    // READ on both ends and the FIFO's WRITE are added, and report EV_EOF.
    out = Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kRead, 6, kev::kAdd),
                Ch(KFilter::kWrite, 7, kev::kAdd)},
               Poll(8), pol);
    EXPECT_EQ(out.error, 0);
    ASSERT_EQ(out.events.size(), 3u);
    for (const KeventRecord& e : out.events) {
      EXPECT_EQ(e.flags & kev::kError, 0) << e.ident;
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof) << e.ident;
    }
    EXPECT_EQ(engine_.KnoteCount(kq_), 3u);
    Call({Ch(KFilter::kRead, 5, kev::kDelete), Ch(KFilter::kRead, 6, kev::kDelete),
          Ch(KFilter::kWrite, 7, kev::kDelete)},
         Poll(0), pol);
    host_.Close(kP.pid, 5);
    host_.Close(kP.pid, 6);
    host_.Close(kP.pid, 7);
  }
}

// WRITE on a pipe's end at the close of its other end (the write end's
// when the reader goes, Linux POLLERR; the read end's, the reverse
// direction, when the writer goes, POLLHUP). OpenBSD filt_pipewrite_common
// (`pipe_peer` NULL) and DragonFly filt_pipewrite (the peer closed): EV_EOF
// with data 0, level, until EV_DELETE. FreeBSD hangs the knote on the
// closing end's struct pipe, whose pipeclose wakes it (filt_pipewrite
// measures the room, the end still PIPE_ACTIVE: the forward room, PIPE_BUF
// for the reverse pipe) and then clears that list (knlist_clear:
// knlist_cleardel adds EV_EOF|EV_ONESHOT): one record, EV_ONESHOT shown,
// then the knote is gone (kqueue_scan copies kn_kevent and drops it), so
// EV_DELETE finds nothing (ENOENT) and a new EV_ADD is refused (EPIPE).
TEST_F(KqueueTest, WriteOnAPipeAtItsOtherEndsCloseIsPostedPerKernel) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    const bool freebsd = pol.pipe_close_clears_write;
    SCOPED_TRACE(freebsd);
    auto [r, w] = OpenPipe(5, 6);
    ASSERT_EQ(Call({Ch(KFilter::kWrite, 6, kev::kAdd, 0, 0, 0x66), Ch(KFilter::kWrite, 5, kev::kAdd, 0, 0, 0x55)},
                   Poll(0), pol)
                  .error,
              0);
    EXPECT_EQ(Get(8, pol).size(), 2u);
    // The reader gone with 3 bytes unread: the room Linux measures is 4093.
    host_.Set(engine_, w, pb::kOut | pb::kErr, 3, 4093);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 2u);
    for (const KeventRecord& e : ev) {
      if (e.ident != 6u) continue;
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof);
      EXPECT_EQ(e.flags & kev::kOneshot, freebsd ? kev::kOneshot : 0);
      EXPECT_EQ(e.data, freebsd ? 4093 : 0);
      EXPECT_EQ(e.udata, 0x66u);
    }
    // Next scan: FreeBSD's knote is gone; the others' is still there, level.
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), freebsd ? 1u : 2u);
    for (const KeventRecord& e : ev) {
      if (e.ident != 6u) continue;
      EXPECT_EQ(e.flags & (kev::kEof | kev::kOneshot), kev::kEof);
      EXPECT_EQ(e.data, 0);
    }
    EXPECT_EQ(engine_.KnoteCount(kq_), freebsd ? 1u : 2u);
    // (EV_RECEIPT: the change's record only, no scan.)
    auto out = Call({Ch(KFilter::kWrite, 6, kev::kDelete | kev::kReceipt)}, Poll(4), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].data, freebsd ? ENOENT : 0);
    out = Call({Ch(KFilter::kWrite, 6, kev::kAdd | kev::kReceipt)}, Poll(4), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].data, EPIPE);
    // The writer gone: the read end's WRITE (the reverse direction).
    host_.Set(engine_, r, pb::kHup, 0, 65536);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].ident, 5u);
    EXPECT_EQ(ev[0].flags & kev::kEof, kev::kEof);
    EXPECT_EQ(ev[0].flags & kev::kOneshot, freebsd ? kev::kOneshot : 0);
    EXPECT_EQ(ev[0].data, freebsd ? 512 : 0);
    EXPECT_EQ(ev[0].udata, 0x55u);
    EXPECT_EQ(Get(8, pol).size(), freebsd ? 0u : 1u);
    EXPECT_EQ(engine_.KnoteCount(kq_), freebsd ? 0u : 1u);
    if (!freebsd) Call({Ch(KFilter::kWrite, 5, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
    host_.Close(kP.pid, 6);
  }
}

// FreeBSD's knote disabled at the close (EV_DISPATCH after a delivery):
// pipeclose's wake-up activates it (knote: active, not queued) and
// knlist_clear makes it EV_ONESHOT; EV_ENABLE then queues it (its
// f_event says EV_EOF), and the scan posts it once and drops it.
TEST_F(KqueueTest, FreebsdDisabledWriteKnoteAtThePipesCloseIsPostedOnceAfterEnable) {
  const KqueuePolicy pol = FreebsdPolicy();
  auto [r, w] = OpenPipe(5, 6);
  ASSERT_EQ(Call({Ch(KFilter::kWrite, 6, kev::kAdd | kev::kDispatch)}, Poll(0), pol).error, 0);
  ASSERT_EQ(Get(8, pol).size(), 1u);  // delivered: disabled now
  host_.Set(engine_, w, pb::kOut | pb::kErr, 0, 4096);
  EXPECT_TRUE(Get(8, pol).empty());
  auto out = Call({Ch(KFilter::kWrite, 6, kev::kEnable)}, Poll(8), pol);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].flags & (kev::kEof | kev::kOneshot), kev::kEof | kev::kOneshot);
  EXPECT_EQ(out.events[0].data, 4096);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  EXPECT_TRUE(Get(8, pol).empty());
  host_.Close(kP.pid, 5);
  host_.Close(kP.pid, 6);
}

// EV_ADD|EV_DISABLE of WRITE on a pipe whose other end is closed: refused
// by pipe_kqfilter (EPIPE) on the three, before any measurement (FreeBSD
// sys_pipe.c pipe_kqfilter; OpenBSD and DragonFly measure the disabled
// knote at EV_ADD, and their probe tells). FreeBSD measures no disabled
// knote, so it asks the poll bits: one probe, on every EV_ADD|EV_DISABLE of
// WRITE, none on its other changes. A FIFO's is added.
TEST_F(KqueueTest, DisabledWriteOnAPipeWhoseOtherEndIsClosedIsRefusedWithEpipe) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    SCOPED_TRACE(pol.measures_disabled);
    auto [r, w] = OpenPipe(5, 6);
    auto f = host_.Open(kP.pid, 7);
    f->pipe = true;
    f->kind = FdKind::kFifo;
    f->ready = pb::kOut | pb::kErr;
    // Both ends open: added, as before.
    host_.probes = 0;
    ASSERT_EQ(Call({Ch(KFilter::kWrite, 6, kev::kAdd | kev::kDisable)}, Poll(0), pol).error, 0);
    if (!pol.measures_disabled) {
      EXPECT_EQ(host_.probes, 1);
      host_.probes = 0;
      ASSERT_EQ(Call({Ch(KFilter::kWrite, 6, kev::kDisable)}, Poll(0), pol).error, 0);
      ASSERT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kDisable)}, Poll(0), pol).error, 0);
      EXPECT_EQ(host_.probes, 0);
    }
    Call({Ch(KFilter::kWrite, 6, kev::kDelete), Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    // The reader gone; the writer gone.
    host_.Set(engine_, w, pb::kOut | pb::kErr, 0, 4096);
    host_.Set(engine_, r, pb::kHup, 0, 65536);
    for (int fd : {6, 5}) {
      SCOPED_TRACE(fd);
      auto out = Call({Ch(KFilter::kWrite, static_cast<uint64_t>(fd), kev::kAdd | kev::kDisable, 0, 0, 0x77)},
                      Poll(4), pol);
      ASSERT_EQ(out.events.size(), 1u);
      EXPECT_EQ(out.events[0].flags & kev::kError, kev::kError);
      EXPECT_EQ(out.events[0].data, EPIPE);
      EXPECT_EQ(out.events[0].udata, 0x77u);
      EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    }
    ASSERT_EQ(Call({Ch(KFilter::kWrite, 7, kev::kAdd | kev::kDisable)}, Poll(0), pol).error, 0);
    EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
    Call({Ch(KFilter::kWrite, 7, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
    host_.Close(kP.pid, 6);
    host_.Close(kP.pid, 7);
  }
}

// A FIFO opened one way (the host found its open mode: kFifoReadOnly,
// kFifoWriteOnly). FreeBSD's pipe_kqfilter gives the filter its open mode
// lacks pipe_nfiltops (READ without FREAD, WRITE without FWRITE), whose
// filt_pipenotsup never fires: no bytes, no room, no EV_EOF
// (freebsd-src sys/kern/sys_pipe.c). The filters the open mode has, and a
// FIFO open both ways, are unchanged. OpenBSD and DragonFly: the next tests.
TEST_F(KqueueTest, FreebsdNeverFiresAFifosFilterItsOpenModeLacks) {
  const KqueuePolicy pol = FreebsdPolicy();
  auto [rd, wr, both] = OpenFifo(5, 6, 7);
  host_.level_looks = true;
  // 3 bytes queued: the reader polls POLLIN, the writer POLLOUT.
  rd->ready = pb::kIn;
  rd->readable = 3;
  wr->ready = pb::kOut;
  wr->readable = 3;
  rd->writable = wr->writable = both->writable = 4093;
  both->ready = pb::kIn | pb::kOut;
  both->readable = 3;
  ASSERT_EQ(Call({Ch(KFilter::kWrite, 5, kev::kAdd, 0, 0, 0x51), Ch(KFilter::kRead, 6, kev::kAdd, 0, 0, 0x61),
                  Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kWrite, 6, kev::kAdd),
                  Ch(KFilter::kRead, 7, kev::kAdd), Ch(KFilter::kWrite, 7, kev::kAdd)},
                 Poll(0), pol)
                .error,
            0);
  auto ev = Get(8, pol);
  std::set<std::pair<uint64_t, KFilter>> seen;
  for (const KeventRecord& e : ev) seen.insert({e.ident, e.filter});
  EXPECT_EQ(seen, (std::set<std::pair<uint64_t, KFilter>>{
                      {5, KFilter::kRead}, {6, KFilter::kWrite}, {7, KFilter::kRead}, {7, KFilter::kWrite}}));
  // The writers gone (the reader polls POLLHUP), the readers gone (the
  // writer polls POLLERR): still nothing.
  host_.Set(engine_, rd, pb::kIn | pb::kHup, 3);
  host_.Set(engine_, wr, pb::kOut | pb::kErr, 3, 4093);
  seen.clear();
  for (const KeventRecord& e : Get(8, pol)) seen.insert({e.ident, e.filter});
  EXPECT_EQ(seen.count({5, KFilter::kWrite}), 0u);
  EXPECT_EQ(seen.count({6, KFilter::kRead}), 0u);
  EXPECT_TRUE(seen.count({5, KFilter::kRead}));
  EXPECT_TRUE(seen.count({6, KFilter::kWrite}));
  EXPECT_EQ(engine_.KnoteCount(kq_), 6u);  // added, not refused
  CloseReported({5, 6, 7});
}

// OpenBSD's fifo_kqfilter refuses READ on a FIFO opened without FREAD and
// WRITE on one opened without FWRITE with EINVAL (openbsd/src
// sys/miscfs/fifofs/fifo_vnops.c rev 1.110 fifo_kqfilter; vn_kqfilter
// passes the file's f_flag): the failed change's rules (an EV_ERROR record,
// kevent's -1 without room; EV_RECEIPT the same), EV_ADD|EV_DISABLE too
// (OpenBSD attaches before it disables), whatever the FIFO holds. The
// filters the open mode has, a FIFO open both ways, and an anonymous pipe's
// wrong end (sys_pipe.c pipe_kqfilter checks no open mode: the reverse
// direction) are added.
TEST_F(KqueueTest, OpenbsdRefusesAFifosFilterItsOpenModeLacksWithEinval) {
  const KqueuePolicy pol = OpenbsdPolicy();
  auto [rd, wr, both] = OpenFifo(5, 6, 7);
  OpenPipe(8, 9);
  for (int64_t queued : {0, 3}) {
    SCOPED_TRACE(queued);
    rd->ready = queued > 0 ? pb::kIn : 0u;
    rd->readable = wr->readable = queued;
    wr->ready = pb::kOut;
    rd->writable = wr->writable = 4096 - queued;
    auto out = Call({Ch(KFilter::kRead, 6, kev::kAdd, 0, 0, 0x61), Ch(KFilter::kWrite, 5, kev::kAdd, 0, 0, 0x51),
                     Ch(KFilter::kRead, 6, kev::kAdd | kev::kDisable, 0, 0, 0x62),
                     Ch(KFilter::kWrite, 5, kev::kAdd | kev::kReceipt, 0, 0, 0x52)},
                    Poll(8), pol);
    ASSERT_EQ(out.error, 0);
    ASSERT_EQ(out.events.size(), 4u);
    for (const KeventRecord& e : out.events) {
      EXPECT_EQ(e.flags & kev::kError, kev::kError);
      EXPECT_EQ(e.data, EINVAL);
    }
    EXPECT_EQ(out.events[0].udata, 0x61u);
    EXPECT_EQ(out.events[3].udata, 0x52u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    // No room for the record: the call fails, the changes after it unapplied.
    out = Call({Ch(KFilter::kRead, 6, kev::kAdd), Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0), pol);
    EXPECT_EQ(out.error, EINVAL);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  }
  // The readers gone, the writers gone: still refused.
  host_.Set(engine_, wr, pb::kOut | pb::kErr, 3, 4093);
  host_.Set(engine_, rd, pb::kIn | pb::kHup, 3, 4093);
  EXPECT_EQ(Call({Ch(KFilter::kRead, 6, kev::kAdd)}, Poll(0), pol).error, EINVAL);
  EXPECT_EQ(Call({Ch(KFilter::kWrite, 5, kev::kAdd)}, Poll(0), pol).error, EINVAL);
  // Added: the filters the open modes have, both on O_RDWR, and both on
  // each end of an anonymous pipe.
  ASSERT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kWrite, 6, kev::kAdd),
                  Ch(KFilter::kRead, 7, kev::kAdd), Ch(KFilter::kWrite, 7, kev::kAdd),
                  Ch(KFilter::kRead, 8, kev::kAdd), Ch(KFilter::kWrite, 8, kev::kAdd),
                  Ch(KFilter::kRead, 9, kev::kAdd), Ch(KFilter::kWrite, 9, kev::kAdd)},
                 Poll(0), pol)
                .error,
            0);
  EXPECT_EQ(engine_.KnoteCount(kq_), 8u);
  CloseReported({5, 6, 7, 8, 9});
}

// DragonFly's fifo_kqfilter checks no open mode and hangs READ and WRITE on
// the FIFO's sockets (DragonFlyBSD sys/vfs/fifofs/fifo_vnops.c
// fifo_kqfilter): READ on a FIFO opened write-only counts the bytes queued
// (filt_fiforead: `so_rcv.ssb_cc`, ready above 0), WRITE on one opened
// read-only the room (filt_fifowrite: `ssb_space(&so->so_snd)`, ready from
// `ssb_lowat`, PIPE_BUF, fifo_open); neither reads NOTE_LOWAT. EV_EOF needs
// SS_ISDISCONNECTED, which fifo_close sets only when the last writer (READ)
// or reader (WRITE) goes: never while this descriptor is open, so the
// other side's close reports the bytes or the room, without EV_EOF. Level,
// with no poll bit behind the yes: delivered again at each retrieval.
TEST_F(KqueueTest, DragonflyMeasuresTheFifoForAFilterItsOpenModeLacks) {
  const KqueuePolicy pol = DragonflyPolicy();
  // Empty: the reader polls nothing, the writer POLLOUT. READ on the
  // writer says no; WRITE on the reader has the room.
  auto [rd, wr, both] = OpenEmptyFifoLooked(5, 6, 7);
  ASSERT_EQ(Call({Ch(KFilter::kWrite, 5, kev::kAdd, kev::kNoteLowat, 8192, 0x51),
                  Ch(KFilter::kRead, 6, kev::kAdd, kev::kNoteLowat, 2, 0x61)},
                 Poll(0), pol)
                .error,
            0);
  ExpectTheWriteAloneAfterEachLook(2, pol, 5, 4096);
  // 1 byte queued (under the READ knote's NOTE_LOWAT mark, not read). A
  // write-only descriptor never polls POLLIN (Linux pipe_poll): the bytes
  // are seen when a change measures the knote (docs/kqueue.md), here an
  // EV_ADD again. Then the FIFO filled but for 511 bytes: WRITE below
  // PIPE_BUF says no.
  host_.Set(engine_, rd, pb::kIn, 1, 4095);
  host_.Set(engine_, wr, pb::kOut, 1, 4095);
  ASSERT_EQ(Call({Ch(KFilter::kRead, 6, kev::kAdd, kev::kNoteLowat, 2, 0x61)}, Poll(0), pol).error, 0);
  for (int pass = 0; pass < 2; ++pass) {
    host_.Look();
    std::set<std::pair<uint64_t, int64_t>> seen;
    for (const KeventRecord& e : Get(8, pol)) seen.insert({e.ident, e.data});
    EXPECT_EQ(seen, (std::set<std::pair<uint64_t, int64_t>>{{5, 4095}, {6, 1}}));
  }
  host_.Set(engine_, rd, pb::kIn, 3585, 511);
  host_.Set(engine_, wr, 0, 3585, 511);
  host_.Look();
  auto ev = Get(8, pol);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 6u);
  EXPECT_EQ(ev[0].data, 3585);
  // The readers gone (the writer polls POLLERR), the writers gone (the
  // reader polls POLLHUP): the bytes and the room, without EV_EOF.
  host_.Set(engine_, wr, pb::kErr, 3, 4093);
  host_.Set(engine_, rd, pb::kIn | pb::kHup, 3, 4093);
  host_.Look();
  ev = Get(8, pol);
  ASSERT_EQ(ev.size(), 2u);
  for (const KeventRecord& e : ev) {
    EXPECT_EQ(e.flags & (kev::kEof | pol.pipe_eof_nodata), 0);
    EXPECT_EQ(e.data, e.ident == 5u ? 4093 : 3);
  }
  CloseReported({5, 6, 7});
}

// EVFILT_EXCEPT on a pipe, either end, or a FIFO, any open mode, through
// kevent(2): OpenBSD refuses it with EINVAL (openbsd/src sys/kern/sys_pipe.c
// rev 1.149 pipe_kqfilter and sys/miscfs/fifofs/fifo_vnops.c rev 1.110
// fifo_kqfilter: EVFILT_EXCEPT without __EV_POLL), DragonFly with EOPNOTSUPP
// (DragonFlyBSD/DragonFlyBSD sys/kern/sys_pipe.c pipe_kqfilter and
// sys/vfs/fifofs/fifo_vnops.c fifo_kqfilter have no case for it): the failed
// change's record, udata echoed, EV_ADD|EV_DISABLE too, whatever the pipe
// holds or whoever closed. A socket's is added. FreeBSD has no EVFILT_EXCEPT.
TEST_F(KqueueTest, ExceptOnAPipeOrFifoIsRefusedWithEachKernelsErrno) {
  auto [r, w] = OpenPipe(5, 6);
  auto [rd, wr, both] = OpenFifo(7, 8, 9);
  // A pipe whose way was not asked: the real host's EXCEPT probe stops at
  // fstat (FdKind::kPipe).
  auto unasked = host_.Open(kP.pid, 10);
  unasked->pipe = true;
  unasked->kind = FdKind::kPipe;
  auto sock = host_.Open(kP.pid, 11);
  sock->kind = FdKind::kSocket;
  host_.Set(engine_, r, pb::kIn, 3, 65536);
  for (const auto& [pol, err] : {std::pair{OpenbsdPolicy(), EINVAL}, std::pair{DragonflyPolicy(), EOPNOTSUPP}}) {
    SCOPED_TRACE(err);
    std::vector<KChange> changes;
    for (uint64_t fd = 5; fd <= 10; ++fd) changes.push_back(Ch(KFilter::kExcept, fd, kev::kAdd, 0, 0, 0x70 + fd));
    changes.push_back(Ch(KFilter::kExcept, 5, kev::kAdd | kev::kDisable, 0, 0, 0x80));
    changes.push_back(Ch(KFilter::kExcept, 8, kev::kAdd | kev::kReceipt, 0, 0, 0x81));
    auto out = Call(changes, Poll(16), pol);
    ASSERT_EQ(out.error, 0);
    ASSERT_EQ(out.events.size(), changes.size());
    for (size_t i = 0; i < changes.size(); ++i) {
      EXPECT_EQ(out.events[i].flags & kev::kError, kev::kError);
      EXPECT_EQ(out.events[i].data, err);
      EXPECT_EQ(out.events[i].udata, changes[i].kev.udata);
    }
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    ASSERT_EQ(Call({Ch(KFilter::kExcept, 11, kev::kAdd)}, Poll(0), pol).error, 0);
    EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
    ASSERT_EQ(Call({Ch(KFilter::kExcept, 11, kev::kDelete)}, Poll(0), pol).error, 0);
  }
  // The writer gone (the reader polls POLLHUP): still refused.
  host_.Set(engine_, r, pb::kIn | pb::kHup, 3, 65536);
  EXPECT_EQ(Call({Ch(KFilter::kExcept, 5, kev::kAdd)}, Poll(0), OpenbsdPolicy()).error, EINVAL);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  CloseReported({5, 6, 7, 8, 9, 10, 11});
}

// NOTE_LOWAT is not read on pipes and FIFOs, on the three kernels: READ is
// ready from one byte (FreeBSD sys/kern/sys_pipe.c filt_piperead, its FIFOs
// being named pipes; OpenBSD sys/kern/sys_pipe.c filt_piperead and
// sys/miscfs/fifofs/fifo_vnops.c filt_fiforead; DragonFly sys/kern/sys_pipe.c
// filt_piperead and sys/vfs/fifofs/fifo_vnops.c filt_fiforead), WRITE from
// PIPE_BUF of room (filt_pipewrite on the three; OpenBSD's and DragonFly's
// filt_fifowrite against the send buffer's low mark, PIPE_BUF from
// fifo_open), which evshim reads as Linux's POLLOUT, a free page slot
// (docs/kqueue.md "READ/WRITE data"). A socket's mark still counts
// (filt_soread).
TEST_F(KqueueTest, NoteLowatIsNotReadOnPipesAndFifos) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto [r, w] = OpenPipe(5, 6);
    auto [rd, wr, both] = OpenFifo(7, 8, 9);
    auto sock = host_.Open(kP.pid, 10);
    sock->kind = FdKind::kSocket;
    host_.Set(engine_, r, pb::kIn, 3, 65536);
    host_.Set(engine_, rd, pb::kIn, 3, 4093);
    host_.Set(engine_, wr, pb::kOut, 3, 4093);
    host_.Set(engine_, both, pb::kIn | pb::kOut, 3, 4093);
    host_.Set(engine_, sock, pb::kIn | pb::kOut, 3, 4093);
    ASSERT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 100),
                    Ch(KFilter::kWrite, 6, kev::kAdd, kev::kNoteLowat, 1 << 20),
                    Ch(KFilter::kRead, 7, kev::kAdd, kev::kNoteLowat, 100),
                    Ch(KFilter::kWrite, 8, kev::kAdd, kev::kNoteLowat, 1 << 20),
                    Ch(KFilter::kRead, 9, kev::kAdd, kev::kNoteLowat, 100),
                    Ch(KFilter::kWrite, 9, kev::kAdd, kev::kNoteLowat, 1 << 20),
                    Ch(KFilter::kRead, 10, kev::kAdd, kev::kNoteLowat, 100)},
                   Poll(0), pol)
                  .error,
              0);
    std::set<std::tuple<uint64_t, KFilter, int64_t>> seen;
    for (const KeventRecord& e : Get(16, pol)) seen.insert({e.ident, e.filter, e.data});
    EXPECT_EQ(seen, (std::set<std::tuple<uint64_t, KFilter, int64_t>>{{5, KFilter::kRead, 3},
                                                                       {6, KFilter::kWrite, 4096},
                                                                       {7, KFilter::kRead, 3},
                                                                       {8, KFilter::kWrite, 4093},
                                                                       {9, KFilter::kRead, 3},
                                                                       {9, KFilter::kWrite, 4093}}));
    // Room without POLLOUT (no free page slot): WRITE says no, however low
    // the mark.
    host_.Set(engine_, w, 0, 3, 600);
    host_.Set(engine_, both, pb::kIn, 3, 600);
    ASSERT_EQ(Call({Ch(KFilter::kWrite, 6, kev::kAdd, kev::kNoteLowat, 1),
                    Ch(KFilter::kWrite, 9, kev::kAdd, kev::kNoteLowat, 1)},
                   Poll(0), pol)
                  .error,
              0);
    seen.clear();
    for (const KeventRecord& e : Get(16, pol)) seen.insert({e.ident, e.filter, e.data});
    EXPECT_EQ(seen.count({6, KFilter::kWrite, 600}), 0u);
    EXPECT_EQ(seen.count({9, KFilter::kWrite, 600}), 0u);
    EXPECT_EQ(seen.count({9, KFilter::kRead, 3}), 1u);
    CloseReported({5, 6, 7, 8, 9, 10});
  }
}

// DragonFly adds EV_NODATA to a pipe's EV_EOF when no byte is left:
// filt_piperead once `kn_data` is 0, filt_pipewrite always (sys_pipe.c);
// FreeBSD and OpenBSD never.
TEST_F(KqueueTest, DragonflyPipeEofCarriesNodataOnceNoByteIsLeft) {
  constexpr uint16_t kNodata = 0x1000;
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    const uint16_t nodata = pol.pipe_eof_nodata;
    SCOPED_TRACE(nodata);
    auto [r, w] = OpenPipe(5, 6);
    ASSERT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kWrite, 6, kev::kAdd),
                    Ch(KFilter::kWrite, 5, kev::kAdd), Ch(KFilter::kRead, 6, kev::kAdd)},
                   Poll(0), pol)
                  .error,
              0);
    // The writer gone with 3 bytes left: READ has EV_EOF without EV_NODATA;
    // WRITE on the read end (the reverse direction) has both.
    host_.Set(engine_, r, pb::kIn | pb::kHup, 3, 65536);
    auto ev = Get(8, pol);
    int seen = 0;
    for (const KeventRecord& e : ev) {
      if (e.ident != 5u) continue;
      ++seen;
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof);
      if (e.filter == KFilter::kRead) {
        EXPECT_EQ(e.data, 3);
        EXPECT_EQ(e.flags & kNodata, 0);
      } else {
        EXPECT_EQ(e.data, pol.pipe_close_clears_write ? 512 : 0);  // FreeBSD: PIPE_BUF, once
        EXPECT_EQ(e.flags & kNodata, nodata);
      }
    }
    EXPECT_EQ(seen, 2);
    // Read to the end: READ now has EV_NODATA too.
    host_.Set(engine_, r, pb::kHup, 0, 65536);
    ev = Get(8, pol);
    seen = 0;
    for (const KeventRecord& e : ev) {
      if (e.ident != 5u || e.filter != KFilter::kRead) continue;
      ++seen;
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof);
      EXPECT_EQ(e.data, 0);
      EXPECT_EQ(e.flags & kNodata, nodata);
    }
    EXPECT_EQ(seen, 1);
    // The readers gone too: the write end's WRITE and READ (reverse) both.
    host_.Set(engine_, w, pb::kOut | pb::kErr, 0, 4096);
    ev = Get(8, pol);
    seen = 0;
    for (const KeventRecord& e : ev) {
      if (e.ident != 6u) continue;
      ++seen;
      EXPECT_EQ(e.flags & kev::kEof, kev::kEof);
      EXPECT_EQ(e.flags & kNodata, nodata) << static_cast<int>(e.filter);
    }
    EXPECT_EQ(seen, 2);
    // (FreeBSD's WRITE knotes went with their one record: ENOENT.)
    constexpr uint16_t kDel = kev::kDelete | kev::kReceipt;
    Call({Ch(KFilter::kRead, 5, kDel), Ch(KFilter::kWrite, 6, kDel), Ch(KFilter::kWrite, 5, kDel),
          Ch(KFilter::kRead, 6, kDel)},
         Poll(8), pol);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    host_.Close(kP.pid, 5);
    host_.Close(kP.pid, 6);
  }
}

// A socket with a pending error (POLLERR, no hang-up) is readable without
// EV_EOF (filt_soread: so_error), so the waiter wakes and reads the error.
TEST_F(KqueueTest, SocketErrorWakesTheWaiterWithoutEof) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  Captured c;
  Park(&c, Forever(4));
  host_.Set(engine_, f, pb::kErr, 0);
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].flags & kev::kEof, 0);
}

// NOTE_LOWAT with a parked waiter: bytes below the mark do not wake it,
// the bytes that reach it do.
TEST_F(KqueueTest, LowatWakesTheWaiterWhenEnoughBytesArrive) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 10)}, Poll(0));
  Captured c;
  Park(&c, Forever(4));
  host_.Set(engine_, f, pb::kIn, 4);
  EXPECT_FALSE(c.called);
  EXPECT_FALSE(host_.readable(kq_));
  host_.Set(engine_, f, pb::kIn, 12);
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].data, 12);
}

// The same, with the bytes that reach the mark landing while the scan
// re-arms the watch: the knote is queued again by that activity, and the
// waiter must get it now, not at some later call.
TEST_F(KqueueTest, LowatActivityDuringTheRearmWakesTheWaiter) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 10)}, Poll(0));
  Captured c;
  Park(&c, Forever(4));
  host_.during_edge_arm = [](KqFakeHost::File& file) { file.readable = 12; };
  host_.Set(engine_, f, pb::kIn, 4);
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].data, 12);
}

TEST_F(KqueueTest, ClearIsEdgeTriggered) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear)}, Poll(0));
  host_.Set(engine_, f, pb::kIn, 3);
  ASSERT_EQ(Get().size(), 1u);
  EXPECT_TRUE(Get().empty());  // still readable, but no new activity
  EXPECT_GE(host_.edge_arms, 1);
  host_.Set(engine_, f, pb::kIn, 5);  // more data arrives
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 5);
}

// An EV_CLEAR knote added while data is pending: activated by the
// registration (DF kern_event.c:1312-1322, OB :1174-1178), cleared by the
// retrieval (DF :1535-1544, OB knote_submit :1980-1993): reported once, and
// again only for new data. The host's edge watch, registered after the
// first report, must not report the old data as an edge (nginx, libevent
// EV_ET). Also data arriving while the event is queued is part of it.
TEST_F(KqueueTest, ClearAddedWhileDataIsPendingIsReportedOnce) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    f->ready = pb::kIn;
    f->readable = 3;
    auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear)}, Poll(4), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].data, 3);
    EXPECT_TRUE(Get(8, pol).empty());
    EXPECT_TRUE(Get(8, pol).empty());
    host_.Set(engine_, f, pb::kIn, 5);  // new data: one more event
    host_.Set(engine_, f, pb::kIn, 9);  // while that one is queued
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 9);
    EXPECT_TRUE(Get(8, pol).empty());
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
  }
}

// A stale EV_ONESHOT event (the condition gone before the retrieval) is
// still reported, as last measured: DragonFly posts EV_ONESHOT without the
// filter_event re-check (DF kern_event.c:1510-1531), OpenBSD's process
// functions return active for EV_ONESHOT (OB :303-319, `kev != NULL &&
// EV_ONESHOT`), FreeBSD's kqueue_scan copies kn_kevent for EV_ONESHOT.
// The registration measures a new knote (OB kern_event.c:1174-1178); the
// scan of the same call reports that measurement instead of probing again
// (docs/kqueue.md "What a kevent costs"). The next call measures anew (the
// level knote went back on the list, OB :1433-1444), and an EV_CLEAR knote
// is measured by the scan too (its measurement settles the edge watch).
TEST_F(KqueueTest, AKnoteTheChangesFoundReadyIsNotMeasuredAgainByThatCallsScan) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 3;
  host_.probes = 0;
  auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(8));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, 3);
  EXPECT_EQ(host_.probes, 1);
  host_.probes = 0;
  out = Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(8));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(host_.probes, 1);
  f->readable = 5;
  out = Call({}, Poll(8));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, 5);  // measured again by the next call
  EXPECT_EQ(host_.probes, 2);
  host_.probes = 0;
  out = Call({Ch(KFilter::kRead, 5, kev::kDelete), Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear)}, Poll(8));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(host_.probes, 2);
}

// The same with several changes found ready in one call: the first listed
// in its own word, the rest in the list (Kqueues::ready_at_change_first_,
// ready_at_change_). Each is measured once, by its change; the call's end
// forgets all of them, so the next call's scan measures each again and
// reports what it finds then (the level knotes back on the list, OB
// kern_event.c:1433-1444), also when the first listed went with its
// EV_ONESHOT event.
TEST_F(KqueueTest, SeveralKnotesTheChangesFoundReadyAreEachMeasuredOnceThenAgain) {
  for (uint16_t first_flags : {uint16_t{kev::kAdd}, uint16_t{kev::kAdd | kev::kOneshot}}) {
    SCOPED_TRACE(first_flags & kev::kOneshot ? "the first EV_ONESHOT" : "all level");
    const int base = first_flags & kev::kOneshot ? 15 : 5;  // new knotes each time
    std::vector<KqFakeHost::FileRef> files;
    for (int fd = base; fd < base + 3; ++fd) {
      files.push_back(host_.Open(kP.pid, fd));
      files.back()->ready = pb::kIn;
      files.back()->readable = fd;
    }
    auto ident = [&](int i) { return static_cast<uint64_t>(base + i); };
    host_.probes = 0;
    auto out = Call({Ch(KFilter::kRead, ident(0), first_flags), Ch(KFilter::kRead, ident(1), kev::kAdd),
                     Ch(KFilter::kRead, ident(2), kev::kAdd)},
                    Poll(8));
    ASSERT_EQ(out.events.size(), 3u);
    EXPECT_EQ(host_.probes, 3) << "one measurement each, by its change";
    const bool first_stays = !(first_flags & kev::kOneshot);
    for (auto& f : files) f->readable += 10;
    host_.probes = 0;
    out = Call({}, Poll(8));
    ASSERT_EQ(out.events.size(), first_stays ? 3u : 2u);
    EXPECT_EQ(host_.probes, first_stays ? 3 : 2) << "measured again by the next call";
    for (const auto& ev : out.events) EXPECT_EQ(ev.data, static_cast<int64_t>(ev.ident) + 10) << ev.ident;
    for (int i = first_stays ? 0 : 1; i < 3; ++i) {
      ASSERT_TRUE(Call({Ch(KFilter::kRead, ident(i), kev::kDelete)}, Poll(0)).events.empty());
    }
  }
}

// A delivered level knote goes back on the list and the next scan asks the
// filter again, taking the knote off when it says no (DF
// kern_event.c:1545-1548 then 1510-1518; OB :1433-1444 then :1410-1416).
// READ says no for a file with nothing to report (no byte, no EOF, no
// error: none of the poll bits its watch waits for), so when the host can
// tell that a look made since the delivery did not find the file ready
// (Host::QuietSinceArm), the scan drops the knote with no probe. A file
// that became ready again after the delivery fires the watch and is
// measured and returned (docs/kqueue.md "What a kevent costs").
TEST_F(KqueueTest, DeliveredLevelKnoteALookFoundNotReadyIsDroppedUnmeasured) {
  host_.level_looks = true;
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  host_.Set(engine_, f, pb::kIn, 2);
  ASSERT_EQ(Get().size(), 1u);
  EXPECT_EQ(host_.free_arms, 1) << "the delivered knote's watch is armed for the next look";
  host_.Set(engine_, f, 0, 0);  // read dry
  host_.Look();
  host_.probes = 0;
  EXPECT_TRUE(Get().empty());
  EXPECT_EQ(host_.probes, 0) << "the look stands for the filter's no";
  EXPECT_FALSE(host_.readable(kq_));
  // Off the list, its watch still armed: new bytes activate it again.
  host_.Set(engine_, f, pb::kIn, 4);
  EXPECT_TRUE(host_.readable(kq_));
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 4);
  // Ready again after the delivery, between two looks: the watch fired, so
  // the scan measures and returns it (level-triggered).
  host_.Set(engine_, f, 0, 0);
  host_.Set(engine_, f, pb::kIn, 6);
  host_.Look();
  ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 6);
  // No look since the delivery: the scan measures (the host cannot tell).
  host_.probes = 0;
  ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(host_.probes, 1);
}

// Kqueues::ArmForNextLook owes the look only a knote whose watch the host
// armed again for it (Host::ArmWatchIfFree answered 0). Where the host did
// not (arming would cost a look of its own: `events`; the watch has no
// record: an error), its watch is as it was, and the host's word on that
// earlier arm (QuietSinceArm) is not an answer for this delivery: the next
// scan runs the filter (DF kern_event.c:1510-1518; OB :1410-1416). Here the
// earlier arm is still in place and a look passed it with the file read
// dry: the scan measures (one probe) and drops the knote. Fails with
// ArmForNextLook's `(*ready & want) == 0` taken out (busy: no probe, the
// look's quiet taken) and with its `ready.ok()` inverted (gone: no probe)
// or taken out (gone: the error's value read, bad_variant_access).
TEST_F(KqueueTest, DeliveredLevelKnoteTheHostDidNotArmAgainIsMeasuredByTheScan) {
  host_.level_looks = true;
  int fd = 5;
  for (KqFakeHost::IfFree answer : {KqFakeHost::IfFree::kBusy, KqFakeHost::IfFree::kGone}) {
    SCOPED_TRACE(answer == KqFakeHost::IfFree::kBusy ? "busy" : "gone");
    host_.if_free = KqFakeHost::IfFree::kArms;
    host_.free_arms = 0;
    auto f = host_.Open(kP.pid, fd);
    host_.Set(engine_, f, pb::kIn, 2);
    // Delivered (handed over) and back on the list, its watch armed.
    ASSERT_EQ(Call({Ch(KFilter::kRead, static_cast<uint64_t>(fd), kev::kAdd)}, Poll(8)).events.size(), 1u);
    ASSERT_EQ(host_.free_arms, 1);
    // Delivered again (no look since: measured), and this time not armed.
    host_.if_free = answer;
    ASSERT_EQ(Get().size(), 1u);
    host_.Set(engine_, f, 0, 0);  // read dry
    host_.Look();
    host_.probes = 0;
    EXPECT_TRUE(Get().empty());
    EXPECT_EQ(host_.probes, 1) << "the scan measures the knote";
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    // Ready again later: reported (a level knote off the list, re-armed by the scan's no).
    host_.if_free = KqFakeHost::IfFree::kArms;
    host_.Set(engine_, f, pb::kIn, 3);
    auto ev = Get();
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 3);
    CloseReported({fd});
    ++fd;
  }
}

// WRITE on a FIFO opened read-only is not re-armed for the look
// (ArmForNextLook): such a descriptor never polls POLLOUT (Linux
// pipe_poll), so a look can never report it, while DragonFly's
// fifo_kqfilter hangs WRITE on the FIFO's socket whatever the open mode and
// filt_fifowrite says yes with the room (DragonFlyBSD sys/vfs/fifofs/
// fifo_vnops.c; LackingFifoFilterEvent). Level, so delivered at every
// retrieval, looks between them. Without NOTE_LOWAT (with it the knote is
// excluded as a NOTE_LOWAT WRITE first:
// DragonflyMeasuresTheFifoForAFilterItsOpenModeLacks). Fails with
// ArmForNextLook's FdKind::kFifoReadOnly taken out: a look's quiet drops the
// knote at the second retrieval.
TEST_F(KqueueTest, DragonflyWriteOnAReadOnlyFifoIsMeasuredAtEveryScan) {
  const KqueuePolicy pol = DragonflyPolicy();
  (void)OpenEmptyFifoLooked(5, 6, 7);
  ASSERT_EQ(Call({Ch(KFilter::kWrite, 5, kev::kAdd, 0, 0, 0x51)}, Poll(0), pol).error, 0);
  ExpectTheWriteAloneAfterEachLook(3, pol, 5, 4096);
  EXPECT_EQ(host_.free_arms, 0);
  CloseReported({5, 6, 7});
}

// A WRITE knote with NOTE_LOWAT says yes while the room to write reaches
// the mark (filt_sowrite: sbspace >= lowat; data = the room, docs/kqueue.md
// "READ/WRITE data"), which may hold while the file does not poll POLLOUT
// (a Linux socket polls writable only with a quarter or half of its buffer
// free). A look that did not report the file then says nothing of the
// filter: the scan measures it (DF kern_event.c:1510-1518) and returns it.
TEST_F(KqueueTest, DeliveredLowatWriteKnoteIsMeasuredThoughTheLookSawNoPollout) {
  host_.level_looks = true;
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kOut;
  f->writable = 4096;
  auto out = Call({Ch(KFilter::kWrite, 5, kev::kAdd, kev::kNoteLowat, 100)}, Poll(4));
  ASSERT_EQ(out.events.size(), 1u);
  host_.Set(engine_, f, 0, 0, 1000);  // part of the buffer filled: no POLLOUT, 1000 bytes of room
  host_.Look();
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 1000);
}

TEST_F(KqueueTest, StaleOneshotIsStillReported) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, 0, 0, 0x77)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 4);
    host_.Set(engine_, f, 0, 0);  // read by someone before the kevent
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].ident, 5u);
    EXPECT_EQ(ev[0].data, 4);
    EXPECT_EQ(ev[0].udata, 0x77u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // and gone
    // Ready at registration, gone before the retrieval: the same.
    f->ready = pb::kIn;
    f->readable = 2;
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0), pol);
    f->ready = 0;
    f->readable = 0;
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 2);
    // Closed before the retrieval: dropped silently (knote_fdclose).
    f->ready = pb::kIn;
    f->readable = 2;
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
    EXPECT_TRUE(Get(8, pol).empty());
    // Below NOTE_LOWAT when the data came: never activated, nothing stale.
    f = host_.Open(kP.pid, 5);
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, kev::kNoteLowat, 10)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 2);
    host_.Set(engine_, f, 0, 0);
    EXPECT_TRUE(Get(8, pol).empty());
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
  }
}

TEST_F(KqueueTest, OneshotDeliversOnceAndDrops) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 1;
  Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0));
  EXPECT_EQ(Get().size(), 1u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  EXPECT_TRUE(Get().empty());
}

// The scan's hand-over (Kqueues::HandOver): the one knote on the list,
// measured ready by this call's own change, is the scan's whole answer
// (kqueue_scan takes the list in order, OB kern_event.c:1320-1444, DF
// kern_event.c kqueue_scan; FreeBSD kqueue_scan), so it is answered
// without Collect's and Deliver's lists, as they would: its report, the
// EV_ONESHOT drop, a level knote back on the list; refused, back at the
// head untouched.
TEST_F(KqueueTest, TheChangesOneReadyKnoteIsHandedOverAsTheScanWouldTakeIt) {
  auto f = host_.Open(kP.pid, 5);
  host_.Set(engine_, f, pb::kIn, 3);
  Captured c;
  std::vector<KChange> fdwait{Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, 0, 0, 0xbeef)};
  EXPECT_FALSE(engine_.Kevent(kP, kq_, FreebsdPolicy(), fdwait, false, Poll(1), std::make_unique<Capture>(&c)));
  EXPECT_EQ(engine_.HandOverCount(), 1u);
  EXPECT_EQ(c.handed_one, 1);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].ident, 5u);
  EXPECT_EQ(c.out.events[0].data, 3);
  EXPECT_EQ(c.out.events[0].udata, 0xbeefu);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // EV_ONESHOT: dropped once delivered
  EXPECT_FALSE(host_.readable(kq_));
  // Refused (the caller interrupted): the knote stays, on the list, and the
  // next scan reports it once.
  Captured refused;
  EXPECT_FALSE(engine_.Kevent(kP, kq_, FreebsdPolicy(), fdwait, false, Poll(1),
                              std::make_unique<Capture>(&refused, false)));
  EXPECT_EQ(engine_.HandOverCount(), 2u);
  EXPECT_FALSE(refused.called);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  EXPECT_TRUE(host_.readable(kq_));
  // No change measured it: Collect's scan, whose one event Deliver hands
  // over as it is too (CompleteOne).
  Captured again;
  EXPECT_FALSE(engine_.Kevent(kP, kq_, FreebsdPolicy(), {}, false, Poll(8), std::make_unique<Capture>(&again)));
  EXPECT_EQ(engine_.HandOverCount(), 2u);
  EXPECT_EQ(again.handed_one, 1);
  ASSERT_EQ(again.out.events.size(), 1u);
  EXPECT_EQ(again.out.events[0].udata, 0xbeefu);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  // A level knote: delivered, then back on the list (OB :1433-1444).
  auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(engine_.HandOverCount(), 3u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0));
  // EV_DISPATCH: delivered, then disabled (OB :1426-1428), off the list;
  // its EV_ENABLE measures it ready and is handed it again.
  out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kDispatch)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(engine_.HandOverCount(), 4u);
  EXPECT_EQ(engine_.PendingCount(kq_), 0u);
  EXPECT_TRUE(Get().empty());
  out = Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(engine_.HandOverCount(), 5u);
  Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0));
  // EV_CLEAR: its change's measurement is not kept for the scan (it
  // settles the edge watch), so the scan measures it: not handed over.
  out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(engine_.HandOverCount(), 5u);
  EXPECT_TRUE(Get().empty());  // cleared: no new activity
}

// The knote never queued (Kqueues::held_, docs/design.md "Instructions per
// event", s38): the call's last change measures its knote ready on an
// empty list, and the scan that follows takes exactly that knote (the
// changes first, then the list: OB kern_event.c:929-965 then 1320-1444, DF
// kern_event.c:820-858 then kqueue_scan, FreeBSD kqueue_kevent then
// kqueue_scan), so it is handed over without being queued: the same
// answers as the queued road, for each post-event action.
TEST_F(KqueueTest, TheLastChangesReadyKnoteIsHandedOverWithoutBeingQueued) {
  auto f = host_.Open(kP.pid, 5);
  host_.Set(engine_, f, pb::kIn, 3);
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    const uint64_t held = engine_.HeldHandOverCount();
    auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, 0, 0, 0xbeef)}, Poll(1), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].data, 3);
    EXPECT_EQ(out.events[0].udata, 0xbeefu);
    EXPECT_EQ(engine_.HeldHandOverCount(), held + 1);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // EV_ONESHOT: gone
    EXPECT_FALSE(host_.readable(kq_));
    // A level knote: delivered, then on the list for the next scan.
    out = Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(1), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(engine_.HeldHandOverCount(), held + 2);
    EXPECT_EQ(engine_.PendingCount(kq_), 1u);
    EXPECT_TRUE(host_.readable(kq_));
    // EV_ADD on it again: it is queued already, so the scan takes the list.
    out = Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(1), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(engine_.HeldHandOverCount(), held + 2);
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    // Refused: at the head of the list, reported once by the next scan.
    Captured refused;
    std::vector<KChange> fdwait{Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)};
    EXPECT_FALSE(engine_.Kevent(kP, kq_, pol, fdwait, false, Poll(1), std::make_unique<Capture>(&refused, false)));
    EXPECT_EQ(engine_.HeldHandOverCount(), held + 3);
    EXPECT_EQ(engine_.PendingCount(kq_), 1u);
    EXPECT_TRUE(host_.readable(kq_));
    ASSERT_EQ(Get(8, pol).size(), 1u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    EXPECT_FALSE(host_.readable(kq_));
  }
}

// Where the held knote is not the scan's answer, it is queued where its
// change put it: the call ends before a scan (FreeBSD's invalid timeout
// after the changes, kqueue_scan's timespecvalid_interval; the change list
// unreadable after it, EFAULT), its change disabled it (EV_ADD|EV_DISABLE
// on an enabled knote: OpenBSD and DragonFly measure it first,
// OB kern_event.c:1201-1204 then :1217-1218, DF :1355-1358 then
// :1364-1367: it stays on the list, ACTIVE, until the scan takes it off),
// or a READ knote watches the kqueue (its activation reaches that knote,
// kqueue_wakeup's KNOTE; the watching kqueue polls readable).
TEST_F(KqueueTest, AHeldKnoteIsQueuedWhereTheScanDoesNotTakeIt) {
  auto f = host_.Open(kP.pid, 5);
  host_.Set(engine_, f, pb::kIn, 1);
  const uint64_t held = engine_.HeldHandOverCount();
  // No scan: an invalid timeout, checked after the changes on FreeBSD.
  EXPECT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Wait(1, 0, -1)).error, EINVAL);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  EXPECT_TRUE(host_.readable(kq_));
  ASSERT_EQ(Get().size(), 1u);
  // No scan: the change list unreadable after the change.
  KChange add = Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot);
  Captured faulted;
  engine_.Kevent(kP, kq_, FreebsdPolicy(), {&add, 1}, true, Poll(1), std::make_unique<Capture>(&faulted));
  EXPECT_EQ(faulted.out.error, EFAULT);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  EXPECT_TRUE(host_.readable(kq_));
  ASSERT_EQ(Get().size(), 1u);
  EXPECT_EQ(engine_.HeldHandOverCount(), held);
  // Disabled by its own change after its measurement: on the list, not
  // reported; EV_ENABLE reports it.
  for (const KqueuePolicy& pol : {OpenbsdPolicy(), DragonflyPolicy()}) {
    // An enabled knote off the list on a file that turns ready with no
    // report yet (the look comes with the next call).
    host_.Set(engine_, f, 0, 0);
    Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0), pol);
    f->ready = pb::kIn;
    f->readable = 2;
    ASSERT_EQ(engine_.PendingCount(kq_), 0u);
    const uint64_t at = engine_.HeldHandOverCount();
    EXPECT_TRUE(Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kDisable)}, Poll(1), pol).events.empty());
    EXPECT_EQ(engine_.HeldHandOverCount(), at);
    Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 2);
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    ASSERT_EQ(engine_.KnoteCount(kq_), 0u);
  }
  // Watched by a READ knote of another kqueue (filt_kqueue): that knote is
  // activated as the change queues this kqueue's knote, as before.
  const ObjectId outer = engine_.Create(kP).value();
  host_.Open(kP.pid, 20);
  host_.MarkKqueue(kP.pid, 20, kq_);
  Captured watch;
  std::vector<KChange> read_kq{Ch(KFilter::kRead, 20, kev::kAdd)};
  engine_.Kevent(kP, outer, FreebsdPolicy(), read_kq, false, Poll(0), std::make_unique<Capture>(&watch));
  ASSERT_EQ(watch.out.error, 0);
  const uint64_t before = engine_.HeldHandOverCount();
  auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(engine_.HeldHandOverCount(), before);
  EXPECT_EQ(engine_.PendingCount(outer), 1u);
  EXPECT_TRUE(host_.readable(outer));
}

// A new knote's first measurement is made on the file its attach just
// found at the number (Host::WatchFd), as kqueue_register measures it on
// the file it holds (OB kern_event.c:1066-1176): no identity check first
// (Kqueues::attached_uid_). Any later measurement asks (knote_fdclose
// observed lazily): a number closed since drops the knote silently.
TEST_F(KqueueTest, TheAddsOwnMeasurementAsksNoIdentityCheck) {
  auto f = host_.Open(kP.pid, 5);
  host_.Set(engine_, f, pb::kIn, 1);
  const int asks = host_.same_file_asks;
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  EXPECT_EQ(host_.same_file_asks, asks);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  host_.Close(kP.pid, 5);  // not reported: the scan's check finds it
  EXPECT_TRUE(Get().empty());
  EXPECT_GT(host_.same_file_asks, asks);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
}

// A completion lent by reference (Kevent's second form, the abi's on its
// handler's stack) is answered in the call, or, if the call parks, copied
// for the waiter (KeepForWait); one with no copy to keep is answered EINTR,
// as a wait that ended at once, and no waiter is left.
TEST_F(KqueueTest, ALentCompletionParksThroughItsCopyOrIsAnsweredEintr) {
  auto f = host_.Open(kP.pid, 5);
  host_.Set(engine_, f, pb::kIn, 1);
  std::vector<KChange> fdwait{Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)};
  Captured now;
  Capture lent_now(&now);
  EXPECT_FALSE(engine_.Kevent(kP, kq_, FreebsdPolicy(), fdwait, false, Poll(1), lent_now));
  ASSERT_EQ(now.out.events.size(), 1u);
  // Nothing to report and no timeout: the call would park.
  class Keeps final : public KeventCompletion {
   public:
    explicit Keeps(Captured* c) : c_(c) {}
    bool Complete(const KeventOutcome& out) override {
      c_->called = true;
      c_->out = out;
      return true;
    }
    std::unique_ptr<KeventCompletion> KeepForWait() override { return std::make_unique<Capture>(c_); }

   private:
    Captured* c_;
  };
  const KeventWait forever = Forever(1);
  Captured parked;
  Keeps keeps(&parked);
  auto wid = engine_.Kevent(kP, kq_, FreebsdPolicy(), {}, false, forever, keeps);
  ASSERT_TRUE(wid.has_value());
  EXPECT_EQ(engine_.WaiterCount(kq_), 1u);
  Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0));  // wakes the waiter's copy
  EXPECT_TRUE(parked.called);
  ASSERT_EQ(parked.out.events.size(), 1u);
  EXPECT_EQ(engine_.WaiterCount(kq_), 0u);
  Captured cannot;
  Capture no_copy(&cannot);
  EXPECT_FALSE(engine_.Kevent(kP, kq_, FreebsdPolicy(), {}, false, forever, no_copy));
  EXPECT_TRUE(cannot.called);
  EXPECT_EQ(cannot.out.error, EINTR);
  EXPECT_EQ(engine_.WaiterCount(kq_), 0u);
}

// Where the scan's answer is not the change's knote alone, the scan runs
// (Collect), and its answer is the kernels': the list in order (an earlier
// queued knote first; both knotes two changes measured ready), and a knote
// a later change of the same call disabled is not reported (kqueue_scan
// skips KN_DISABLED, OB kern_event.c:1363-1366, DF kern_event.c:1503-1509,
// FreeBSD kqueue_scan) until EV_ENABLE measures it again.
TEST_F(KqueueTest, TheScanRunsWhenTheChangesKnoteIsNotItsWholeAnswer) {
  auto a = host_.Open(kP.pid, 5);
  auto b = host_.Open(kP.pid, 6);
  host_.Set(engine_, a, pb::kIn, 1);
  host_.Set(engine_, b, pb::kIn, 2);
  // Queued, not scanned, then read dry: the scan's filter says no, no
  // event (the f_event re-check, OB kern_event.c:1410-1416, DF :1510-1518).
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  host_.Set(engine_, a, 0, 0);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  EXPECT_TRUE(Call({}, Poll(1)).events.empty());
  host_.Set(engine_, a, pb::kIn, 1);
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));  // queued, not scanned
  auto out = Call({Ch(KFilter::kRead, 6, kev::kAdd | kev::kOneshot)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].ident, 5u);  // queued first
  out = Call({}, Poll(2));
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].ident, 6u);  // 5 went back to the tail
  EXPECT_EQ(out.events[1].ident, 5u);
  Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0));
  // Two changes measured ready: both, in order.
  out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot), Ch(KFilter::kRead, 6, kev::kAdd | kev::kOneshot)},
             Poll(2));
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].ident, 5u);
  EXPECT_EQ(out.events[1].ident, 6u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  // Measured ready, then disabled by the call's next change: not reported.
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot), Ch(KFilter::kRead, 5, kev::kDisable)},
               Poll(1), pol);
    EXPECT_TRUE(out.events.empty());
    EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
    out = Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(1), pol);
    ASSERT_EQ(out.events.size(), 1u);
    EXPECT_EQ(out.events[0].ident, 5u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  }
  EXPECT_EQ(engine_.HandOverCount(), 3u);  // the three EV_ENABLEs only
}

// A kevent's changes and scan under one ReadinessHold: the kqueue's
// readiness goes to the host once, as it is at the end, and not at all when
// it ends as it began (fdwait: a ready EV_ONESHOT knote added and collected
// by one call leaves the kqueue empty, as it was). The knote's activation
// at its registration made it readable in between (OB kern_event.c:
// 1174-1178, knote_activate :1731-1739), which no thread outside the call
// could see (the engine lock).
TEST_F(KqueueTest, ACallThatEndsWithTheReadinessItBeganWithReportsNothing) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 1;
  const int before = host_.readiness_reports;
  auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(host_.readiness_reports, before);  // empty before, empty after
  EXPECT_FALSE(host_.readable(kq_));
  // Left with an event queued (no room to take it): one report, readable.
  auto g = host_.Open(kP.pid, 6);
  g->ready = pb::kIn;
  g->readable = 1;
  Call({Ch(KFilter::kRead, 6, kev::kAdd)}, Poll(0));
  EXPECT_EQ(host_.readiness_reports, before + 1);
  EXPECT_TRUE(host_.readable(kq_));
  // Taken and put back on the list (level): readable before and after.
  EXPECT_EQ(Get(1).size(), 1u);
  EXPECT_EQ(host_.readiness_reports, before + 1);
  EXPECT_TRUE(host_.readable(kq_));
  // Dropped: empty at the end, one report.
  Call({Ch(KFilter::kRead, 6, kev::kDelete)}, Poll(0));
  EXPECT_EQ(host_.readiness_reports, before + 2);
  EXPECT_FALSE(host_.readable(kq_));
}

TEST_F(KqueueTest, DispatchDisablesAfterDeliveryAndEnableRearms) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 1;
  Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kDispatch)}, Poll(0));
  EXPECT_EQ(Get().size(), 1u);
  EXPECT_TRUE(Get().empty());
  Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0));
  EXPECT_EQ(Get().size(), 1u);
}

// A change without EV_ADD on an enabled knote runs the filter on FreeBSD
// and DragonFly, and activates the knote if it says yes (DF kern_event.c:
// 1331-1358; FreeBSD kqueue_register, done_ev_add); OpenBSD runs none
// (OB kern_event.c:1194-1215). nng's kqueue poller re-arms with
// EV_ENABLE|EV_DISPATCH|EV_CLEAR knotes it added with
// EV_ADD|EV_DISABLE|EV_CLEAR: they stay enabled, and its UDP sender
// waits for the POLLOUT that re-arm reports on a writable socket.
TEST_F(KqueueTest, EnableOnAnEnabledClearKnoteReportsAReadyFileAgainOnFreebsdAndDragonfly) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), DragonflyPolicy(), OpenbsdPolicy()}) {
    const bool runs_filter = pol.modify_without_add;
    auto f = host_.Open(kP.pid, 5);
    f->ready = pb::kIn;
    f->readable = 3;
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kDisable | kev::kClear)}, Poll(0), pol);
    Call({Ch(KFilter::kRead, 5, kev::kEnable | kev::kDispatch | kev::kClear)}, Poll(0), pol);
    ASSERT_EQ(Get(8, pol).size(), 1u);
    EXPECT_TRUE(Get(8, pol).empty());  // EV_CLEAR: no new activity
    // Not EV_DISPATCH (taken only with EV_ADD): still enabled; the re-arm
    // finds the file ready.
    Call({Ch(KFilter::kRead, 5, kev::kEnable | kev::kDispatch | kev::kClear)}, Poll(0), pol);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), runs_filter ? 1u : 0u);
    if (runs_filter) {
      EXPECT_EQ(ev[0].data, 3);
    }
    EXPECT_TRUE(Get(8, pol).empty());
    // Any change does it there (here: new udata), not one that disables.
    Call({Ch(KFilter::kRead, 5, 0, 0, 0, 7)}, Poll(0), pol);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), runs_filter ? 1u : 0u);
    Call({Ch(KFilter::kRead, 5, kev::kDisable)}, Poll(0), pol);
    EXPECT_TRUE(Get(8, pol).empty());
    // A file not ready: nothing.
    f->ready = 0;
    f->readable = 0;
    Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
    Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
    EXPECT_TRUE(Get(8, pol).empty());
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
  }
}

// What a change's measurement of a knote does (docs/kqueue.md "A change's
// measurement"; Kqueues::MeasureAfterChange). EV_ADD on an existing knote
// runs its filter and activates it if the file is ready, on all three
// kernels (OB kern_event.c:1194-1204 with filter_modify :717-736; DF
// kern_event.c:1312-1322; FreeBSD kqueue_register, done_ev_add), whatever
// its flags: an EV_CLEAR knote already reported for the data the file holds
// is reported again, with the udata of the new EV_ADD.
TEST_F(KqueueTest, AddOnAnExistingKnoteQueuesItIfTheFileIsReady) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    f->ready = pb::kIn;
    f->readable = 3;
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear, 0, 0, 1)}, Poll(0), pol);
    ASSERT_EQ(Get(8, pol).size(), 1u);
    EXPECT_TRUE(Get(8, pol).empty());  // EV_CLEAR: no new activity
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear, 0, 0, 9)}, Poll(0), pol);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 3);
    EXPECT_EQ(ev[0].udata, 9u);
    EXPECT_TRUE(Get(8, pol).empty());
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
  }
}

// The kernels measure a knote at each activity of its file (knote() runs
// f_event with the hint, DF kern_event.c:1796-1797) and post a queued
// EV_ONESHOT knote as last measured, without a re-check (DF :1510-1531; OB
// :303-319 and the scan's filter_process :1410; FreeBSD kqueue_scan). So
// when EV_ADD on an existing knote (OB :1201-1204, DF :1319-1322) or
// EV_ENABLE of a disabled one (OB :1220-1227; DF :1355-1358 then
// :1372-1378) finds the file no longer ready, the next activity is measured
// and reported as it was, even when gone by the retrieval. Here a one-shot
// knote a change leaves on the list (or off it, OpenBSD's EV_ENABLE) has
// its watch armed, and that activity is measured when the watch fires
// (Kqueues::RouteWatchReady) rather than found gone by the scan, which
// would post the change's measurement (data 0).
TEST_F(KqueueTest, AChangeThatFindsTheFileNotReadyLetsItsNextActivityBeMeasured) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    // EV_ADD on an existing, queued knote.
    auto f = host_.Open(kP.pid, 5);
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 4);  // measured at the activity: queued
    host_.Set(engine_, f, 0, 0);        // read by someone
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 3);  // new activity
    host_.Set(engine_, f, 0, 0);        // gone again before the retrieval
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 3);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    // EV_ENABLE of a disabled knote that was active when disabled.
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 4);
    Call({Ch(KFilter::kRead, 5, kev::kDisable)}, Poll(0), pol);
    host_.Set(engine_, f, 0, 0);
    Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 2);
    host_.Set(engine_, f, 0, 0);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 2);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    host_.Close(kP.pid, 5);
  }
}

// A change without EV_ADD runs the filter on FreeBSD and DragonFly and only
// activates (DF kern_event.c:1355-1358; FreeBSD kqueue_register,
// done_ev_add); OpenBSD runs none (OB :1194-1215). Neither takes a queued
// knote off the list when the file is no longer ready: it stays queued (the
// kqueue polls readable) until the scan's filter says no and takes it off
// (DF :1510-1518, OB :1410-1416). The next activity is reported.
TEST_F(KqueueTest, AChangeWithoutAddLeavesAQueuedKnoteToTheScan) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), DragonflyPolicy(), OpenbsdPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 2);  // queued
    host_.Set(engine_, f, 0, 0);        // read by someone
    Call({Ch(KFilter::kRead, 5, kev::kEnable, 0, 0, 7)}, Poll(0), pol);  // enabled already
    ExpectOneQueuedThatTheScanDrops(pol);
    host_.Set(engine_, f, pb::kIn, 4);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 4);
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
  }
}

// EV_ADD on a queued knote whose file is no longer ready (read by someone
// since the activity that queued it, or under the NOTE_LOWAT mark the
// change sets): the kernels run the filter (filter_modify, OB
// kern_event.c:1201-1204; DF kern_event.c:1319-1322; FreeBSD
// kqueue_register, done_ev_add) and only activate on a yes (knote_activate,
// OB :1731-1739; KNOTE_ACTIVATE, DF :161-165): the no takes nothing back.
// The knote stays on the list and the kqueue polls readable (its count:
// filt_kqueue, OB :266-274, DF :281-287) until the scan, whose filter says
// no and takes a level knote off silently (OB :1410-1416, DF :1510-1518).
// A queued EV_ONESHOT is posted without a re-check, with what the change
// measured (data 0) and its udata, and goes (OB :1410 with the filters'
// f_process rule, :303-319, and :1422-1425; DF :1510-1533; FreeBSD
// kqueue_scan copies kn_kevent).
TEST_F(KqueueTest, AddOnAQueuedKnoteWhoseFileIsNoLongerReadyLeavesItToTheScan) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    // Level, read by someone.
    Call({Ch(KFilter::kRead, 5, kev::kAdd, 0, 0, 1)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 2);  // queued
    host_.Set(engine_, f, 0, 0);        // read by someone
    Call({Ch(KFilter::kRead, 5, kev::kAdd, 0, 0, 2)}, Poll(0), pol);
    ExpectOneQueuedThatTheScanDrops(pol);
    host_.Set(engine_, f, pb::kIn, 4);  // the next activity is reported
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 4);
    EXPECT_EQ(ev[0].udata, 2u);
    // Level, the file still readable but under the mark EV_ADD now sets.
    Call({Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 10, 3)}, Poll(0), pol);
    ExpectOneQueuedThatTheScanDrops(pol);
    host_.Set(engine_, f, pb::kIn, 12);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 12);
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    host_.Set(engine_, f, 0, 0);
    // EV_ONESHOT, read by someone.
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, 0, 0, 1)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 4);  // measured at the activity: queued
    host_.Set(engine_, f, 0, 0);
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, 0, 0, 9)}, Poll(0), pol);
    EXPECT_EQ(engine_.PendingCount(kq_), 1u);
    EXPECT_TRUE(host_.readable(kq_));
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 0);
    EXPECT_EQ(ev[0].udata, 9u);
    EXPECT_EQ(ev[0].flags & kev::kOneshot, kev::kOneshot);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    EXPECT_FALSE(host_.readable(kq_));
    host_.Close(kP.pid, 5);
  }
}

// A change without EV_ADD on a queued EV_ONESHOT knote whose file is no
// longer ready: FreeBSD and DragonFly measure it (DF kern_event.c:1355-1358;
// FreeBSD done_ev_add) and only activate; OpenBSD runs no filter (OB
// kern_event.c:1194-1215). It stays queued and is posted as last measured:
// by the change (FreeBSD, DragonFly: data 0, the change's udata) or at its
// activity (OpenBSD: data 4, udata as registered) (DF :1510-1533, OB
// :303-319 and :1410).
TEST_F(KqueueTest, AChangeWithoutAddLeavesAQueuedOneshotKnoteToBePostedAsMeasured) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), DragonflyPolicy(), OpenbsdPolicy()}) {
    const bool measures = pol.modify_without_add;
    auto f = host_.Open(kP.pid, 5);
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, 0, 0, 1)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 4);  // queued
    host_.Set(engine_, f, 0, 0);        // read by someone
    Call({Ch(KFilter::kRead, 5, kev::kEnable, 0, 0, 7)}, Poll(0), pol);  // enabled already
    EXPECT_EQ(engine_.PendingCount(kq_), 1u);
    EXPECT_TRUE(host_.readable(kq_));
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, measures ? 0 : 4);
    EXPECT_EQ(ev[0].udata, measures ? 7u : 1u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    EXPECT_FALSE(host_.readable(kq_));
    host_.Close(kP.pid, 5);
  }
}

// EV_ENABLE of a disabled knote that is ACTIVE (it was queued when
// disabled), its file no longer ready. DragonFly queues it without asking
// its filter (DF kern_event.c:1372-1378: ACTIVE and not QUEUED, after the
// modify step measured it, :1355-1358), as FreeBSD does (done_ev_add:
// f_event, then a knote ACTIVE and neither DISABLED nor QUEUED is
// enqueued); OpenBSD queues it only on its filter's yes (OB
// kern_event.c:1220-1227). Queued, the kqueue polls readable until the
// scan, which drops a level knote (DF :1510-1518) and posts an EV_ONESHOT
// one as the enable measured it, data 0 (DF :1510-1533). EV_ADD on the
// knote while disabled, its filter saying no, takes nothing back (DF
// :1319-1322, OB :1201-1204): still ACTIVE at the enable.
TEST_F(KqueueTest, EnableOfAnActiveKnoteQueuesItWithoutTheFiltersYesOnFreebsdAndDragonfly) {
  const std::pair<KqueuePolicy, bool> policies[] = {
      {FreebsdPolicy(), true}, {DragonflyPolicy(), true}, {OpenbsdPolicy(), false}};
  for (const auto& [pol, queues] : policies) {
    auto f = host_.Open(kP.pid, 5);
    for (bool add_while_disabled : {false, true}) {
      SCOPED_TRACE(add_while_disabled ? "EV_ADD while disabled" : "EV_DISABLE, EV_ENABLE");
      Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0), pol);
      host_.Set(engine_, f, pb::kIn, 2);  // queued
      Call({Ch(KFilter::kRead, 5, kev::kDisable)}, Poll(0), pol);
      // The scan takes a disabled knote off the list, ACTIVE kept (OB
      // :1363-1366, DF :1503-1509); EV_DISABLE left it there
      // (DisableOfAQueuedKnoteLeavesItQueuedUntilTheScan).
      EXPECT_TRUE(Get(8, pol).empty());
      host_.Set(engine_, f, 0, 0);  // read by someone
      if (add_while_disabled) Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0), pol);
      Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
      EXPECT_EQ(engine_.PendingCount(kq_), queues ? 1u : 0u);
      EXPECT_EQ(host_.readable(kq_), queues);
      EXPECT_TRUE(Get(8, pol).empty());
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);
      EXPECT_FALSE(host_.readable(kq_));
      host_.Set(engine_, f, pb::kIn, 3);  // the next activity is reported
      auto ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].data, 3);
      Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
      host_.Set(engine_, f, 0, 0);
    }
    // EV_ONESHOT: posted as the enable measured it, or (OpenBSD) not
    // queued, its next activity reported.
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(0), pol);
    host_.Set(engine_, f, pb::kIn, 4);
    Call({Ch(KFilter::kRead, 5, kev::kDisable)}, Poll(0), pol);
    EXPECT_TRUE(Get(8, pol).empty());
    host_.Set(engine_, f, 0, 0);
    Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
    EXPECT_EQ(engine_.PendingCount(kq_), queues ? 1u : 0u);
    auto ev = Get(8, pol);
    if (queues) {
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].data, 0);
    } else {
      EXPECT_TRUE(ev.empty());
      host_.Set(engine_, f, pb::kIn, 3);
      ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].data, 3);
    }
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    host_.Close(kP.pid, 5);
  }
}

// An EV_DISPATCH knote after its delivery is disabled (OB kern_event.c:
// 1426-1432, DF :1540-1544), yet its file's activity while it is disabled
// activates it: knote() runs the filter and marks it ACTIVE, not queued
// while disabled (KNOTE_ACTIVATE, DF :161-165; knote_activate, OB
// :1731-1739). EV_ENABLE then queues an ACTIVE knote without its filter's
// yes on FreeBSD and DragonFly (DF :1372-1378; done_ev_add), so activity
// gone again by then leaves the kqueue readable until the scan drops the
// knote (no event); OpenBSD queues only on its filter's yes (OB
// :1220-1227). evshim does not watch a delivered EV_DISPATCH knote's file
// (a decision, docs/kqueue.md "Not watched while dispatched": watching cost
// 1.30x the cpu of every EV_DISPATCH cycle for a readability that yields no
// event), so on the three the kqueue stays unreadable there: this pins it.
// Activity still there at the EV_ENABLE is reported on the three, as the
// kernels do. Level and EV_CLEAR.
TEST_F(KqueueTest, DispatchKnoteIsNotWatchedWhileDisabled) {
  const std::pair<KqueuePolicy, const char*> policies[] = {
      {FreebsdPolicy(), "FreeBSD"}, {DragonflyPolicy(), "DragonFly"}, {OpenbsdPolicy(), "OpenBSD"}};
  for (const auto& [pol, name] : policies) {
    for (const uint16_t clear : {uint16_t{0}, kev::kClear}) {
      SCOPED_TRACE(std::string(name) + (clear ? " EV_CLEAR" : " level"));
      auto f = host_.Open(kP.pid, 5);
      Call({Ch(KFilter::kRead, 5, static_cast<uint16_t>(kev::kAdd | kev::kDispatch | clear))}, Poll(0), pol);
      host_.Set(engine_, f, pb::kIn, 1);
      auto ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);  // delivered: disabled from now
      EXPECT_EQ(ev[0].data, 1);
      host_.Set(engine_, f, 0, 0);  // read
      EXPECT_TRUE(Get(8, pol).empty());
      // Activity while disabled, gone again by the EV_ENABLE.
      host_.Set(engine_, f, pb::kIn, 2);
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);  // ACTIVE, not queued
      EXPECT_FALSE(host_.readable(kq_));
      host_.Set(engine_, f, 0, 0);
      Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);  // FreeBSD and DragonFly: 1 (not watched here)
      EXPECT_FALSE(host_.readable(kq_));
      EXPECT_TRUE(Get(8, pol).empty());  // the scan's filter says no
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);
      EXPECT_FALSE(host_.readable(kq_));
      // Enabled again: the next activity is reported, and disables it.
      host_.Set(engine_, f, pb::kIn, 3);
      ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].data, 3);
      // Activity while disabled that is still there at the EV_ENABLE.
      host_.Set(engine_, f, pb::kIn, 4);
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);
      Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
      ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].data, 4);
      Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
      host_.Close(kP.pid, 5);
    }
  }
}

// EV_DISABLE of a queued knote only marks it (OB kern_event.c:1217-1218; DF
// kern_event.c:1361-1367; FreeBSD kqueue_register sets KN_DISABLED): it
// stays on the list, counted, so the kqueue polls readable (filt_kqueue,
// `kn_data = kq_count`: OB :266-274, DF :281-287; FreeBSD kqueue_poll reads
// kq_count) until a scan takes it off without posting it, ACTIVE kept (OB
// :1363-1366, DF :1503-1509, FreeBSD kqueue_scan's KN_DISABLED test). A
// later EV_ENABLE of the ready file queues it again and it is reported.
TEST_F(KqueueTest, DisableOfAQueuedKnoteLeavesItQueuedUntilTheScan) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    for (uint16_t extra : {uint16_t{0}, uint16_t{kev::kOneshot}}) {
      SCOPED_TRACE(extra ? "EV_ONESHOT" : "level");
      Call({Ch(KFilter::kRead, 5, kev::kAdd | extra)}, Poll(0), pol);
      host_.Set(engine_, f, pb::kIn, 2);  // queued
      Call({Ch(KFilter::kRead, 5, kev::kDisable)}, Poll(0), pol);
      ExpectOneQueuedThatTheScanDrops(pol);  // taken off, not posted
      EXPECT_EQ(engine_.KnoteCount(kq_), 1u);  // an EV_ONESHOT one too
      Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
      auto ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].data, 2);
      if (!extra) Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
      EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
      host_.Set(engine_, f, 0, 0);
    }
    host_.Close(kP.pid, 5);
  }
}

// EV_DISABLE then EV_ENABLE with no scan between: the knote never left the
// list, so it keeps its place ahead of the knotes queued after it. The
// kernels' EV_ENABLE enqueues only a knote not QUEUED (DF kern_event.c:
// 1372-1378; FreeBSD done_ev_add; OB knote_activate :1736-1738), and this
// one still is. Its file read by someone between the two: still queued on
// the three (OpenBSD's EV_ENABLE takes nothing back either, OB :1220-1227),
// the scan drops it silently (OB :1410-1416, DF :1510-1518).
TEST_F(KqueueTest, DisableThenEnableWithNoScanBetweenKeepsTheKnotesPlace) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f5 = host_.Open(kP.pid, 5);
    auto f6 = host_.Open(kP.pid, 6);
    for (bool drained : {false, true}) {
      SCOPED_TRACE(drained ? "read by someone between" : "still ready");
      Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kRead, 6, kev::kAdd)}, Poll(0), pol);
      host_.Set(engine_, f5, pb::kIn, 2);  // queued first
      host_.Set(engine_, f6, pb::kIn, 3);
      Call({Ch(KFilter::kRead, 5, kev::kDisable)}, Poll(0), pol);
      if (drained) host_.Set(engine_, f5, 0, 0);
      Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
      EXPECT_EQ(engine_.PendingCount(kq_), 2u);
      auto ev = Get(8, pol);
      ASSERT_EQ(ev.size(), drained ? 1u : 2u);
      if (drained) {
        EXPECT_EQ(ev[0].ident, 6u);
      } else {
        EXPECT_EQ(ev[0].ident, 5u);
        EXPECT_EQ(ev[1].ident, 6u);
      }
      Call({Ch(KFilter::kRead, 5, kev::kDelete), Ch(KFilter::kRead, 6, kev::kDelete)}, Poll(0),
           pol);
      host_.Set(engine_, f5, 0, 0);
      host_.Set(engine_, f6, 0, 0);
    }
    host_.Close(kP.pid, 5);
    host_.Close(kP.pid, 6);
  }
}

// FreeBSD runs no filter on a disabled knote at a change: kqueue_register
// sets KN_DISABLED from EV_DISABLE before done_ev_add (on a new knote
// before its attach), and done_ev_add calls f_event only without
// KN_DISABLED (sys/kern/kern_event.c, kqueue_register, read in
// sobomax/freebsd14_vendor through the code search). DragonFly measures
// first and disables after (DF kern_event.c:1319-1322 and 1355-1358, then
// :1364-1367), as OpenBSD does at EV_ADD (OB :1174-1178, 1201-1204, then
// :1217-1218): the knote is ACTIVE, and queued if it was enabled.
// - EV_ADD|EV_DISABLE of a new knote on a ready file, the file drained,
//   EV_ENABLE: DragonFly queues the ACTIVE knote (DF :1372-1378) for the
//   scan to drop; FreeBSD's is not ACTIVE, nothing queued; OpenBSD queues
//   only on the filter's yes (OB :1220-1227).
// - EV_ADD|EV_DISABLE, or EV_DISABLE alone on FreeBSD and DragonFly (OpenBSD
//   measures nothing without EV_ADD, OB :1194-1215), on an enabled EV_CLEAR
//   knote whose file still has the bytes it reported: DragonFly (and
//   OpenBSD with EV_ADD) queue it, then disable it, so the kqueue polls
//   readable until the scan; FreeBSD leaves it off the list.
TEST_F(KqueueTest, FreebsdMeasuresNoDisabledKnoteAtAChange) {
  const std::pair<KqueuePolicy, const char*> policies[] = {
      {FreebsdPolicy(), "FreeBSD"}, {DragonflyPolicy(), "DragonFly"}, {OpenbsdPolicy(), "OpenBSD"}};
  for (const auto& [pol, name] : policies) {
    SCOPED_TRACE(name);
    const bool freebsd = std::string(name) == "FreeBSD";
    const bool dragonfly = std::string(name) == "DragonFly";
    auto f = host_.Open(kP.pid, 5);
    f->ready = pb::kIn;
    f->readable = 2;
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kDisable)}, Poll(0), pol);
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    host_.Set(engine_, f, 0, 0);  // read by someone
    Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
    EXPECT_EQ(engine_.PendingCount(kq_), dragonfly ? 1u : 0u);
    EXPECT_EQ(host_.readable(kq_), dragonfly);
    EXPECT_TRUE(Get(8, pol).empty());
    EXPECT_FALSE(host_.readable(kq_));
    host_.Set(engine_, f, pb::kIn, 3);  // the next activity is reported
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 3);
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    host_.Set(engine_, f, 0, 0);
    for (bool with_add : {true, false}) {
      SCOPED_TRACE(with_add ? "EV_ADD|EV_DISABLE" : "EV_DISABLE");
      const bool measured = !freebsd && (with_add || dragonfly);
      Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kClear)}, Poll(0), pol);
      host_.Set(engine_, f, pb::kIn, 2);
      ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);  // reported; its bytes still there
      const uint16_t add = with_add ? kev::kAdd | kev::kClear : 0;
      Call({Ch(KFilter::kRead, 5, static_cast<uint16_t>(add | kev::kDisable))}, Poll(0), pol);
      EXPECT_EQ(engine_.PendingCount(kq_), measured ? 1u : 0u);
      EXPECT_EQ(host_.readable(kq_), measured);
      EXPECT_TRUE(Get(8, pol).empty());
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);
      Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0), pol);
      ev = Get(8, pol);
      ASSERT_EQ(ev.size(), 1u);  // measured ready by the enable (on the three)
      EXPECT_EQ(ev[0].data, 2);
      Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
      host_.Set(engine_, f, 0, 0);
    }
    host_.Close(kP.pid, 5);
  }
}

// A change queues a knote only when its filter says yes (OB kern_event.c:
// 1174-1178, 1201-1204, 1224-1227; DF kern_event.c:1319-1322, 1355-1358):
// a READ knote under its NOTE_LOWAT mark is not queued by the add, by
// EV_ADD on it, by a change without EV_ADD nor by EV_ENABLE, though the
// file polls readable, and the kqueue does not poll readable. Its watch,
// re-armed for new activity only (as after the scan's no, DF :1510-1518),
// still wakes it when enough bytes come. (The fflags and data go with each
// change: FreeBSD and DragonFly replace them on changes without EV_ADD.)
TEST_F(KqueueTest, AChangeQueuesAKnoteOnlyWhenItsFilterSaysSo) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    f->ready = pb::kIn;
    f->readable = 2;
    const std::pair<const char*, std::vector<KChange>> changes[] = {
        {"EV_ADD of a new knote", {Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 10)}},
        {"EV_ADD on an existing knote", {Ch(KFilter::kRead, 5, kev::kAdd, kev::kNoteLowat, 10)}},
        {"a change without EV_ADD", {Ch(KFilter::kRead, 5, kev::kEnable, kev::kNoteLowat, 10)}},
        {"EV_ENABLE of a disabled knote",
         {Ch(KFilter::kRead, 5, kev::kDisable, kev::kNoteLowat, 10),
          Ch(KFilter::kRead, 5, kev::kEnable, kev::kNoteLowat, 10)}},
    };
    for (const auto& [what, change] : changes) {
      SCOPED_TRACE(what);
      Call(change, Poll(0), pol);
      EXPECT_EQ(engine_.PendingCount(kq_), 0u);
      EXPECT_FALSE(host_.readable(kq_));
    }
    EXPECT_TRUE(Get(8, pol).empty());
    host_.Set(engine_, f, pb::kIn, 12);
    EXPECT_TRUE(host_.readable(kq_));
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 12);
    Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 5);
  }
}

// An EV_ONESHOT knote is measured when its file's activity comes (f_event
// at KNOTE time, DF kern_event.c:1796-1797), since it is reported as it was
// then (DF :1510-1531). Activity its filter refuses (bytes under the
// NOTE_LOWAT mark) does not queue it (knote_activate only on a yes, OB
// kern_event.c:1174-1178), and the kqueue does not poll readable; enough
// bytes later do. The watch is re-armed for new activity only, as after
// the scan's no (ArmFdNotReady).
TEST_F(KqueueTest, OneshotActivityUnderTheLowWaterMarkDoesNotQueueTheKnote) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = host_.Open(kP.pid, 5);
    Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot, kev::kNoteLowat, 10)}, Poll(0), pol);
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    host_.Set(engine_, f, pb::kIn, 2);  // activity under the mark
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    EXPECT_FALSE(host_.readable(kq_));
    EXPECT_TRUE(Get(8, pol).empty());
    host_.Set(engine_, f, pb::kIn, 12);
    EXPECT_TRUE(host_.readable(kq_));
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 12);
    EXPECT_EQ(ev[0].flags & kev::kOneshot, kev::kOneshot);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // delivered: gone
    host_.Close(kP.pid, 5);
  }
}

// A descriptor closed by another thread while a change measures its knote
// (after the change found it open): the knote goes silently and the change
// succeeds (OB kern_event.c:1155-1172: "Drop the knote silently without
// error"; knote_fdclose :1826-1845), whichever step measured it: the add of
// a new knote, EV_ADD on an existing one, a change without EV_ADD (FreeBSD
// and DragonFly measure there, OB :1194-1215 does not), EV_ENABLE. Nothing
// touches the knote after: the add carries EV_DISABLE|EV_ENABLE, whose
// enable step would measure it again (OpenBSD and DragonFly take both
// flags; FreeBSD's library refuses them before the engine, docs/rules-bsd.md).
TEST_F(KqueueTest, ADescriptorClosedWhileAChangeMeasuresItDropsTheKnoteSilently) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    struct Step {
      const char* what;
      uint16_t setup;  // 0: no knote before the change
      uint16_t change;
      bool measures;
    };
    const Step steps[] = {
        {"EV_ADD of a new knote", 0, kev::kAdd | kev::kDisable | kev::kEnable, true},
        // FreeBSD measures no knote that the change disables (kqueue_register)
        {"EV_ADD on an existing knote", kev::kAdd, kev::kAdd | kev::kDisable, pol.measures_disabled},
        {"a change without EV_ADD", kev::kAdd, kev::kEnable, pol.modify_without_add},
        {"EV_ENABLE of a disabled knote", kev::kAdd | kev::kDisable, kev::kEnable, true},
    };
    for (const Step& s : steps) {
      SCOPED_TRACE(s.what);
      auto f = host_.Open(kP.pid, 5);
      f->ready = pb::kIn;
      f->readable = 1;
      if (s.setup != 0) {
        Call({Ch(KFilter::kRead, 5, s.setup)}, Poll(0), pol);
        EXPECT_EQ(Get(8, pol).size(), (s.setup & kev::kDisable) ? 0u : 1u);
      }
      host_.close_at_probe = 5;
      KChange c = Ch(KFilter::kRead, 5, s.change | kev::kReceipt);
      auto out = Call({c}, Poll(4), pol);
      EXPECT_EQ(out.error, 0);
      ASSERT_EQ(out.events.size(), 1u);  // the receipt
      EXPECT_EQ(out.events[0].flags & kev::kError, kev::kError);
      EXPECT_EQ(out.events[0].data, 0);  // no error
      if (!s.measures) {
        EXPECT_EQ(host_.close_at_probe, 5);  // not measured: still there
        host_.close_at_probe = -1;
        Call({Ch(KFilter::kRead, 5, kev::kDelete)}, Poll(0), pol);
        host_.Close(kP.pid, 5);
        continue;
      }
      EXPECT_EQ(host_.close_at_probe, -1);
      EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
      EXPECT_EQ(host_.watches(), 0u);
      EXPECT_TRUE(Get(8, pol).empty());
      EXPECT_FALSE(host_.readable(kq_));
    }
  }
}

// The same when the descriptor goes at the look that follows the arming of
// a knote its change found not ready (ArmFdNotReady: the watch reported the
// refused state, here bytes under NOTE_LOWAT, so it is re-armed for new
// activity and the filter looks once more).
TEST_F(KqueueTest, ADescriptorClosedAtTheLookAfterAChangeArmsItDropsTheKnoteSilently) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    struct Step {
      const char* what;
      uint16_t setup;  // 0: no knote before the change
      uint16_t change;
    };
    const Step steps[] = {
        {"EV_ADD of a new knote", 0, kev::kAdd | kev::kDisable | kev::kEnable},
        // Not disabled by it: FreeBSD measures no knote a change disables.
        {"EV_ADD on an existing knote", kev::kAdd, kev::kAdd},
        {"EV_ENABLE of a disabled knote", kev::kAdd | kev::kDisable, kev::kEnable},
    };
    for (const Step& s : steps) {
      SCOPED_TRACE(s.what);
      auto f = host_.Open(kP.pid, 5);
      f->ready = pb::kIn;
      f->readable = 2;
      if (s.setup != 0) Call({Ch(KFilter::kRead, 5, s.setup, kev::kNoteLowat, 10)}, Poll(0), pol);
      host_.close_at_probe = 5;
      host_.probes_before_close = 1;
      auto out = Call({Ch(KFilter::kRead, 5, s.change | kev::kReceipt, kev::kNoteLowat, 10)}, Poll(4), pol);
      EXPECT_EQ(out.error, 0);
      ASSERT_EQ(out.events.size(), 1u);  // the receipt
      EXPECT_EQ(out.events[0].data, 0);  // no error
      EXPECT_EQ(host_.close_at_probe, -1);
      EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
      EXPECT_EQ(host_.watches(), 0u);
      EXPECT_TRUE(Get(8, pol).empty());
      EXPECT_FALSE(host_.readable(kq_));
    }
  }
}

TEST_F(KqueueTest, DisableKeepsPendingStateDeleteDrains) {
  Call({Timer(1, kev::kAdd, 10'000'000)}, Poll(0));
  Call({Ch(KFilter::kTimer, 1, kev::kDisable)}, Poll(0));
  host_.Advance(engine_, 25'000'000);
  EXPECT_TRUE(Get().empty());  // disabled: nothing reported
  Call({Ch(KFilter::kTimer, 1, kev::kEnable)}, Poll(0));
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 2);  // expirations kept while disabled
  host_.Advance(engine_, 10'000'000);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  Call({Ch(KFilter::kTimer, 1, kev::kDelete)}, Poll(0));
  EXPECT_EQ(engine_.PendingCount(kq_), 0u);  // its queued event went with it
  EXPECT_FALSE(host_.readable(kq_));
  EXPECT_TRUE(Get().empty());
}

TEST_F(KqueueTest, DeleteOfUnknownKnoteIsEnoentAsRecordOrErrno) {
  // nevents > 0: an EV_ERROR record, no scan (OB kern_event.c:944-965).
  auto out = Call({Ch(KFilter::kUser, 9, kev::kDelete, 0, 0, 77)}, Poll(4));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_TRUE(out.receipts);
  EXPECT_EQ(out.events[0].flags, kev::kError);
  EXPECT_EQ(out.events[0].data, ENOENT);
  EXPECT_EQ(out.events[0].udata, 77u);
  // nevents == 0: the call fails with it (OB kern_event.c:953-955).
  out = Call({Ch(KFilter::kUser, 9, kev::kDelete)}, Poll(0));
  EXPECT_EQ(out.error, ENOENT);
}

TEST_F(KqueueTest, ErrorWithoutRoomStopsTheRemainingChanges) {
  auto out = Call({Ch(KFilter::kUser, 9, kev::kDelete), Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0));
  EXPECT_EQ(out.error, ENOENT);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // the second change was not applied
}

TEST_F(KqueueTest, DragonflyPostsErrorsEvenWithoutRoom) {
  // DF kern_event.c:846-857: no check on nevents.
  auto out = Call({Ch(KFilter::kUser, 9, kev::kDelete), Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0),
                  DragonflyPolicy());
  EXPECT_EQ(out.error, 0);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, ENOENT);
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
}

TEST_F(KqueueTest, ReceiptReportsSuccessAsZeroError) {
  auto out = Call({Ch(KFilter::kUser, 1, kev::kAdd | kev::kReceipt, 0, 55)}, Poll(2));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].flags, kev::kError);
  EXPECT_EQ(out.events[0].data, 0);
  EXPECT_EQ(out.events[0].fflags, 0u);  // a new knote's fflags/data are not echoed
  // A receipt with no room: the call returns 0 (OB kern_event.c:953-955).
  out = Call({Ch(KFilter::kUser, 2, kev::kAdd | kev::kReceipt)}, Poll(0));
  EXPECT_EQ(out.error, 0);
  EXPECT_TRUE(out.events.empty());
}

// --- Change results and the room in the event list (issue 14, items 10 and 11) ---

// kevent() with the caller's list writable for `writable` records.
KeventOutcome CallWithList(Kqueues& engine, ObjectId kq, std::vector<KChange> changes, KeventWait w,
                           const KqueuePolicy& pol, size_t writable,
                           std::vector<KeventRecord>* copied) {
  Captured c;
  auto wid = engine.Kevent(kP, kq, pol, changes, false, w,
                           std::make_unique<RecordList>(&c, copied, writable));
  EXPECT_FALSE(wid.has_value());
  EXPECT_TRUE(c.called);
  return c.out;
}

TEST_F(KqueueTest, RecordsMadeBeforeTheRoomRunsOutAreCopiedOut) {
  // OB kern_event.c:940-956 (copyout at 948), FreeBSD kqueue_kevent: the
  // first failure fills the one slot, the second finds nevents == 0 and
  // the call fails with its errno; the first record is in the list.
  for (const KqueuePolicy& pol : {OpenbsdPolicy(), FreebsdPolicy()}) {
    std::vector<KeventRecord> copied;
    auto out = CallWithList(engine_, kq_,
                            {Ch(KFilter::kUser, 9, kev::kDelete, 0, 0, 1),
                             Ch(KFilter::kUser, 10, kev::kDelete, 0, 0, 2),
                             Ch(KFilter::kUser, 1, kev::kAdd)},
                            Poll(1), pol, 8, &copied);
    EXPECT_EQ(out.error, ENOENT);
    ASSERT_EQ(copied.size(), 1u);
    EXPECT_EQ(copied[0].ident, 9u);
    EXPECT_EQ(copied[0].flags, kev::kError);
    EXPECT_EQ(copied[0].data, ENOENT);
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // the change after the second failure: not applied
  }
}

TEST_F(KqueueTest, DragonflyPostsPastTheRoomUntilACopyOutFaults) {
  // DF kern_event.c:846-857: a record is copied out whatever nevents says;
  // when the copy-out faults (a NULL list, DF :759-765) the call fails with
  // that change's error and no later change is applied (DF :850-852).
  std::vector<KeventRecord> copied;
  auto out = CallWithList(engine_, kq_,
                          {Ch(KFilter::kUser, 9, kev::kDelete), Ch(KFilter::kUser, 1, kev::kAdd)},
                          Poll(0), DragonflyPolicy(), 0, &copied);
  EXPECT_EQ(out.error, ENOENT);
  EXPECT_TRUE(copied.empty());
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  // A list with room for one record past nevents == 0: the first failure is
  // posted, the second faults and ends the call.
  out = CallWithList(engine_, kq_,
                     {Ch(KFilter::kUser, 9, kev::kDelete), Ch(KFilter::kUser, 10, kev::kDelete),
                      Ch(KFilter::kUser, 1, kev::kAdd)},
                     Poll(0), DragonflyPolicy(), 1, &copied);
  EXPECT_EQ(out.error, ENOENT);
  ASSERT_EQ(copied.size(), 1u);
  EXPECT_EQ(copied[0].ident, 9u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
}

TEST_F(KqueueTest, OpenbsdAndFreebsdIgnoreARecordsCopyOutFault) {
  // OB kern_event.c:948 (copyout's result unused), FreeBSD
  // (void)k_copyout: the record counts and the changes go on.
  for (const KqueuePolicy& pol : {OpenbsdPolicy(), FreebsdPolicy()}) {
    std::vector<KeventRecord> copied;
    auto out = CallWithList(engine_, kq_,
                            {Ch(KFilter::kUser, 9, kev::kDelete), Ch(KFilter::kUser, 1, kev::kAdd)},
                            Poll(2), pol, 0, &copied);
    EXPECT_EQ(out.error, 0);
    EXPECT_EQ(out.events.size(), 1u);  // the call returns nerrors = 1
    EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
    Call({Ch(KFilter::kUser, 1, kev::kDelete)}, Poll(0), pol);
  }
}

TEST_F(KqueueTest, NegativeNeventsNeverRunsOutOfRecordRoom) {
  // The kernels compare nevents with 0 only (OB kern_event.c:945, FreeBSD
  // kqueue_kevent), so nevents < 0 posts every record...
  KeventWait negative = Poll(0);
  negative.nevents_negative = true;
  for (const KqueuePolicy& pol : {OpenbsdPolicy(), FreebsdPolicy(), DragonflyPolicy()}) {
    auto out = Call({Ch(KFilter::kUser, 9, kev::kDelete), Ch(KFilter::kUser, 10, kev::kDelete),
                     Ch(KFilter::kUser, 1, kev::kAdd)},
                    negative, pol);
    EXPECT_EQ(out.error, 0);
    EXPECT_EQ(out.events.size(), 2u);
    EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
    Call({Ch(KFilter::kUser, 1, kev::kDelete)}, Poll(0), pol);
  }
  // ... and without records, FreeBSD's kqueue_scan refuses it (EINVAL)
  // after applying the changes; OpenBSD and DragonFly return 0 (OB :975, DF :896).
  auto out = Call({Ch(KFilter::kUser, 1, kev::kAdd)}, negative, FreebsdPolicy());
  EXPECT_EQ(out.error, EINVAL);
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
  for (const KqueuePolicy& pol : {OpenbsdPolicy(), DragonflyPolicy()}) {
    out = Call({Ch(KFilter::kUser, 1, kev::kAdd | kev::kEnable, kev::kNoteTrigger)}, negative, pol);
    EXPECT_EQ(out.error, 0);
    EXPECT_TRUE(out.events.empty());  // nothing scanned, although USER 1 is triggered
  }
}

// --- A kqueue's descriptor takes only EVFILT_READ (issue 14, item 8) ---

TEST_F(KqueueTest, KqueueDescriptorRefusesFiltersOtherThanRead) {
  // kqueue_kqfilter: OpenBSD and FreeBSD EINVAL (OB kern_event.c:245-256),
  // DragonFly EOPNOTSUPP (DF kern_event.c:258-269).
  ObjectId inner = engine_.Create(kP).value();
  host_.Open(kP.pid, 7);
  host_.MarkKqueue(kP.pid, 7, inner);
  const std::pair<KqueuePolicy, int> cases[] = {
      {OpenbsdPolicy(), EINVAL}, {FreebsdPolicy(), EINVAL}, {DragonflyPolicy(), EOPNOTSUPP}};
  for (const auto& [pol, err] : cases) {
    for (KFilter f : {KFilter::kWrite, KFilter::kExcept, KFilter::kVnode}) {
      auto out = Call({Ch(f, 7, kev::kAdd)}, Poll(1), pol);
      ASSERT_EQ(out.events.size(), 1u);
      EXPECT_EQ(out.events[0].data, err) << static_cast<int>(f);
    }
    EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
    EXPECT_EQ(Call({Ch(KFilter::kRead, 7, kev::kAdd)}, Poll(0), pol).error, 0);
    Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), pol);
  }
  EXPECT_EQ(host_.watches(), 0u);
  EXPECT_TRUE(host_.vnodes.empty());
}

// --- The last close of a kqueue with a waiter (issue 14, item 12) ---

TEST_F(KqueueTest, DragonflyAndFreebsdWaiterOutlivesTheLastClose) {
  // DF kern_event.c:1055-1072 (holdfp .. dropfp around kern_kevent) and
  // FreeBSD kern_kevent (fget .. fdrop): the waiter holds the file, so the
  // close does not reach kqueue_close; the waiter stays until its timeout.
  for (const KqueuePolicy& pol : {DragonflyPolicy(), FreebsdPolicy()}) {
    kq_ = engine_.Create(kP).value();
    Call({Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0), pol);
    Captured d;
    Park(&d, Wait(1, 1, 0), kP2, true, {}, pol);
    engine_.Close(kq_);
    EXPECT_FALSE(d.called);
    EXPECT_TRUE(engine_.Exists(kq_));
    host_.Advance(engine_, 999'000'000);
    EXPECT_FALSE(d.called);
    host_.Advance(engine_, 1'000'000);
    ASSERT_TRUE(d.called);
    EXPECT_EQ(d.out.error, 0);
    EXPECT_TRUE(d.out.events.empty());
    EXPECT_FALSE(engine_.Exists(kq_));  // freed once the waiter returned (dropfp)
  }
}

TEST_F(KqueueTest, DragonflyWaiterOnAClosedKqueueStillGetsItsEvents) {
  // Until the waiter returns, the kqueue and its knotes are intact: a
  // timer that fires meanwhile is what it returns (DF kern_event.c:1069-1072).
  Call({Timer(1, kev::kAdd | kev::kOneshot, 100'000'000)}, Poll(0), DragonflyPolicy());
  Captured d;
  Park(&d, Wait(1, 5, 0), kP2, true, {}, DragonflyPolicy());
  engine_.Close(kq_);
  EXPECT_FALSE(d.called);
  host_.Advance(engine_, 100'000'000);
  ASSERT_TRUE(d.called);
  ASSERT_EQ(d.out.events.size(), 1u);
  EXPECT_EQ(d.out.events[0].filter, KFilter::kTimer);
  EXPECT_FALSE(engine_.Exists(kq_));
  EXPECT_EQ(host_.deadline(), Host::kNever);  // the waiter's timeout went with it
}

TEST_F(KqueueTest, InterruptedWaiterOnAClosedKqueueFreesIt) {
  Captured d;
  WaitId w = Park(&d, Forever(1), kP2, true, {}, DragonflyPolicy());
  engine_.Close(kq_);
  EXPECT_TRUE(engine_.Exists(kq_));
  engine_.CancelWait(w);  // the thread took a signal: EINTR
  EXPECT_FALSE(engine_.Exists(kq_));
}

TEST_F(KqueueTest, DecoderErrorsKeepTheirPlaceInOrder) {
  KChange bad = Ch(KFilter::kUser, 3, kev::kAdd);
  bad.error = EINVAL;
  auto out = Call({Ch(KFilter::kUser, 1, kev::kAdd), bad, Ch(KFilter::kUser, 2, kev::kAdd)}, Poll(4));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, EINVAL);
  EXPECT_EQ(out.events[0].ident, 3u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 2u);
}

TEST_F(KqueueTest, FdFilterOnClosedDescriptorIsEbadf) {
  auto out = Call({Ch(KFilter::kRead, 42, kev::kAdd)}, Poll(0));
  EXPECT_EQ(out.error, EBADF);
  out = Call({Ch(KFilter::kRead, uint64_t{1} << 33, kev::kAdd)}, Poll(0));
  EXPECT_EQ(out.error, EBADF);  // ident > INT_MAX (OB kern_event.c:1066-1070)
}

TEST_F(KqueueTest, UserTriggerAndFflagsControls) {
  Call({Ch(KFilter::kUser, 1, kev::kAdd | kev::kClear, kev::kNoteFfcopy | 0x11)}, Poll(0));
  EXPECT_TRUE(Get().empty());  // not triggered yet
  Call({Ch(KFilter::kUser, 1, 0, kev::kNoteFfor | 0x100)}, Poll(0));
  Call({Ch(KFilter::kUser, 1, 0, kev::kNoteFfand | 0x101)}, Poll(0));
  EXPECT_TRUE(Get().empty());  // modifying does not trigger
  Call({Ch(KFilter::kUser, 1, 0, kev::kNoteTrigger)}, Poll(0));
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, 0x101u);  // (0x11 | 0x100) & 0x101
  EXPECT_TRUE(Get().empty());  // EV_CLEAR: the trigger is consumed
}

// A kqueue's knotes are found by (filter, ident) whatever the idents
// (emul/kqueue.h KnoteTable): thousands of USER knotes whose idents differ
// only in their high bits or only past the 61 bits the table's hash keeps
// whole, a TIMER with an ident a USER knote has, through the table's
// growth, deletions from the middle of its chains, and additions again.
// Each one keeps its own fflags (NOTE_FFCOPY at its add; an EV_ADD of a key
// that is there modifies that knote, FreeBSD kqueue_register's kn found by
// kn_id and filter), and every triggered one is reported once.
TEST_F(KqueueTest, KnotesAreFoundByFilterAndIdentWhateverTheIdents) {
  std::vector<uint64_t> idents;
  for (uint64_t i = 0; i < 1500; ++i) {
    idents.push_back(i << 40);                // the high bits only
    idents.push_back((uint64_t{7} << 61) | i);  // past the hashed bits: i's twin there
  }
  std::vector<KChange> add;
  for (uint32_t i = 0; i < idents.size(); ++i) add.push_back(Ch(KFilter::kUser, idents[i], kev::kAdd, kev::kNoteFfcopy | i));
  add.push_back(Ch(KFilter::kTimer, idents[1], kev::kAdd, 0, 3600000, 1));
  ASSERT_EQ(Call(add, Poll(0)).error, 0);
  EXPECT_EQ(engine_.KnoteCount(kq_), idents.size() + 1);
  // Every other one deleted, then added again with another udata.
  std::vector<KChange> del, again, trigger;
  constexpr uint32_t kAgain = 0x100000;
  for (uint32_t i = 0; i < idents.size(); i += 2) {
    del.push_back(Ch(KFilter::kUser, idents[i], kev::kDelete));
    again.push_back(Ch(KFilter::kUser, idents[i], kev::kAdd, kev::kNoteFfcopy | kAgain | i));
  }
  ASSERT_EQ(Call(del, Poll(0)).error, 0);
  EXPECT_EQ(engine_.KnoteCount(kq_), idents.size() / 2 + 1);
  ASSERT_EQ(Call(again, Poll(0)).error, 0);
  ASSERT_EQ(Call(again, Poll(0)).error, 0);  // there: modified, not added twice
  EXPECT_EQ(engine_.KnoteCount(kq_), idents.size() + 1);
  for (uint64_t id : idents) trigger.push_back(Ch(KFilter::kUser, id, 0, kev::kNoteTrigger));
  ASSERT_EQ(Call(trigger, Poll(0)).error, 0);
  std::vector<KeventRecord> ev = Get(static_cast<uint32_t>(idents.size() + 10));
  ASSERT_EQ(ev.size(), idents.size());
  std::map<uint64_t, uint64_t> seen;
  for (const KeventRecord& r : ev) {
    EXPECT_EQ(r.filter, KFilter::kUser);
    EXPECT_TRUE(seen.emplace(r.ident, r.fflags).second) << "reported twice: " << r.ident;
  }
  for (size_t i = 0; i < idents.size(); ++i) {
    ASSERT_EQ(seen.count(idents[i]), 1u) << idents[i];
    EXPECT_EQ(seen[idents[i]], (i % 2 == 0 ? kAgain : 0) | i) << idents[i];
  }
  // The TIMER knote with a USER knote's ident is its own.
  ASSERT_EQ(Call({Ch(KFilter::kUser, idents[1], kev::kDelete)}, Poll(0)).error, 0);
  EXPECT_EQ(Call({Ch(KFilter::kUser, idents[1], kev::kDelete)}, Poll(0)).error, ENOENT);
  EXPECT_EQ(Call({Ch(KFilter::kTimer, idents[1], kev::kDelete)}, Poll(0)).error, 0);
  EXPECT_EQ(Call({Ch(KFilter::kTimer, idents[1], kev::kDelete)}, Poll(0)).error, ENOENT);
}

TEST_F(KqueueTest, UserWithoutClearStaysTriggered) {
  Call({Ch(KFilter::kUser, 1, kev::kAdd, kev::kNoteTrigger)}, Poll(0));
  EXPECT_EQ(Get().size(), 1u);
  EXPECT_EQ(Get().size(), 1u);
  // EV_CLEAR in a modify resets the trigger (DF kern_event.c:611-625).
  Call({Ch(KFilter::kUser, 1, kev::kClear)}, Poll(0));
  EXPECT_TRUE(Get().empty());
}

TEST_F(KqueueTest, ModifyUpdatesUdataWithoutRetriggering) {
  // OpenBSD: only EV_ADD modifies (OB kern_event.c:1194-1209).
  Call({Ch(KFilter::kUser, 1, kev::kAdd | kev::kClear, 0, 0, 1)}, Poll(0), OpenbsdPolicy());
  Call({Ch(KFilter::kUser, 1, kev::kAdd, 0, 0, 2)}, Poll(0), OpenbsdPolicy());
  EXPECT_TRUE(Get(8, OpenbsdPolicy()).empty());
  Call({Ch(KFilter::kUser, 1, 0, kev::kNoteTrigger, 0, 3)}, Poll(0), OpenbsdPolicy());
  auto ev = Get(8, OpenbsdPolicy());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].udata, 2u);  // the bare trigger did not replace it
}

TEST_F(KqueueTest, FreebsdEnableReplacesUdata) {
  // FreeBSD updates udata on any change to an existing knote (why EV_KEEPUDATA exists).
  Call({Ch(KFilter::kUser, 1, kev::kAdd, 0, 0, 1)}, Poll(0));
  Call({Ch(KFilter::kUser, 1, kev::kEnable, kev::kNoteTrigger, 0, 9)}, Poll(0));
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].udata, 9u);
}

TEST_F(KqueueTest, FreebsdKeepUdataKeepsTheRegisteredUdata) {
  // FreeBSD kqueue_register: `if ((kev->flags & EV_KEEPUDATA) == 0)
  // kn->kn_kevent.udata = kev->udata;` (kevent(2) EV_KEEPUDATA).
  Call({Ch(KFilter::kUser, 1, kev::kAdd, 0, 0, 1)}, Poll(0));
  KChange trigger = Ch(KFilter::kUser, 1, 0, kev::kNoteTrigger, 0, 0);
  trigger.keep_udata = true;
  Call({trigger}, Poll(0));
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].udata, 1u);
}

TEST_F(KqueueTest, FreebsdExtStaysAsRegistered) {
  // kqueue_register changes only udata, kn_sfflags and kn_sdata of an
  // existing knote; ext[] is what EV_ADD stored (kevent(2): ext[2] and ext[3]
  // pass through the kernel as-is).
  KChange add = Ch(KFilter::kUser, 1, kev::kAdd, 0, 0, 1);
  add.kev.ext = {0, 0, 0x33, 0xc0ffee00000000aaULL};
  Call({add}, Poll(0));
  Call({Ch(KFilter::kUser, 1, 0, kev::kNoteTrigger, 0, 1)}, Poll(0));  // ext all zero
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ext[2], 0x33u);
  EXPECT_EQ(ev[0].ext[3], 0xc0ffee00000000aaULL);
}

TEST_F(KqueueTest, TimerPeriodicCountsExpirations) {
  Call({Timer(7, kev::kAdd, 10'000'000)}, Poll(0));
  EXPECT_EQ(host_.deadline(), 1'010'000'000);
  host_.Advance(engine_, 10'000'000);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 1);
  EXPECT_TRUE(ev[0].flags & kev::kClear);  // forced (DF kern_event.c:489)
  EXPECT_TRUE(Get().empty());
  host_.Advance(engine_, 35'000'000);  // three more periods, one deadline
  ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 3);
}

// The host's timer is armed again only when the kqueue's deadlines moved
// (a timer or a waiter's timeout added, removed, taken): a kevent on
// descriptors arms nothing, and a timer still arms at its deadline.
TEST_F(KqueueTest, TheTimerIsArmedOnlyWhenDeadlinesMoved) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 1;
  Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(1));  // the first arms (kNever)
  const int arms = host_.deadline_arms;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd | kev::kOneshot)}, Poll(1)).events.size(), 1u);
  }
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  host_.Set(engine_, f, pb::kIn, 2);  // a watch's report pumps too
  EXPECT_EQ(Get().size(), 1u);
  EXPECT_EQ(host_.deadline_arms, arms);
  EXPECT_EQ(host_.deadline(), Host::kNever);
  Call({Timer(7, kev::kAdd, 10'000'000)}, Poll(0));
  EXPECT_EQ(host_.deadline(), 1'010'000'000);
  const int after_timer = host_.deadline_arms;
  EXPECT_GT(after_timer, arms);
  EXPECT_EQ(Get().size(), 1u);  // the READ knote again (level); the timer not due
  EXPECT_EQ(host_.deadline_arms, after_timer);
  host_.Advance(engine_, 10'000'000);
  EXPECT_EQ(host_.deadline(), 1'020'000'000);  // fired: the next period armed
  Call({Timer(7, kev::kDelete, 0)}, Poll(0));
  EXPECT_EQ(host_.deadline(), Host::kNever);
}

TEST_F(KqueueTest, TimerOneshotFiresOnce) {
  Call({Timer(7, kev::kAdd | kev::kOneshot, 5'000'000)}, Poll(0));
  host_.Advance(engine_, 50'000'000);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 1);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  EXPECT_EQ(host_.deadline(), Host::kNever);
}

TEST_F(KqueueTest, TimerModifyRestartsAndDropsPending) {
  Call({Timer(7, kev::kAdd, 10'000'000)}, Poll(0));
  host_.Advance(engine_, 10'000'000);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  Call({Timer(7, kev::kAdd, 50'000'000)}, Poll(0));  // FB filt_timertouch, OB :516-539
  EXPECT_EQ(engine_.PendingCount(kq_), 0u);
  host_.Advance(engine_, 40'000'000);
  EXPECT_TRUE(Get().empty());
  host_.Advance(engine_, 10'000'000);
  EXPECT_EQ(Get().size(), 1u);
}

TEST_F(KqueueTest, DragonflyTimerModifyKeepsPending) {
  Call({Timer(7, kev::kAdd, 10'000'000)}, Poll(0), DragonflyPolicy());
  host_.Advance(engine_, 10'000'000);
  Call({Timer(7, kev::kAdd, 50'000'000)}, Poll(0), DragonflyPolicy());
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
}

// A periodic timer of 0 (or a DragonFly negative period, decoded as 0, or
// one under a tick) expires at most once per tick on OpenBSD and DragonFly:
// OB kern_event.c:459-465 (timeout_add(max(tticks, 1))), DF kern_event.c:
// 427-431 + 451 (tvtohz_high >= 1, one kn_data++ per callout). Before, a
// 0 period stepped the catch-up 1 ns at a time: this test never ended.
TEST_F(KqueueTest, TimerZeroPeriodExpiresAtMostOncePerTick) {
  for (const KqueuePolicy& pol : {OpenbsdPolicy(), DragonflyPolicy()}) {
    Call({Timer(7, kev::kAdd, 0), Timer(8, kev::kAdd, 3'000'000)}, Poll(0), pol);
    const Nanos start = host_.Now();
    EXPECT_EQ(host_.deadline(), start + 10'000'000);
    host_.Advance(engine_, 10'000'000);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].data, 1);
    EXPECT_EQ(ev[1].data, 1);
    // 1000 s late: one step, 100000 ticks counted.
    host_.Advance(engine_, 1000 * kNanosPerSecond);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 2u);
    EXPECT_EQ(ev[0].data, 100'000);
    EXPECT_EQ(ev[1].data, 100'000);
    EXPECT_GT(host_.deadline(), host_.Now());
    Call({Timer(7, kev::kDelete, 0), Timer(8, kev::kDelete, 0)}, Poll(0), pol);
  }
}

// FreeBSD has no tick (the abi makes 0 one unit): a 1 ns period, the clock
// 2^50 ns late, counts every period in one arithmetic step.
TEST_F(KqueueTest, TimerCatchUpIsArithmeticForAnyPeriod) {
  Call({Timer(7, kev::kAdd, 1), Timer(8, kev::kAdd, 7)}, Poll(0));
  host_.Advance(engine_, Nanos{1} << 50);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[0].data, Nanos{1} << 50);
  EXPECT_EQ(ev[1].data, (Nanos{1} << 50) / 7);
  EXPECT_EQ(host_.deadline(), host_.Now() + 1);  // the next 1 ns boundary
  Call({Timer(7, kev::kDelete, 0), Timer(8, kev::kDelete, 0)}, Poll(0));
  // DragonFly's EV_ADD on a running timer changes the period only: the floor too.
  Call({Timer(9, kev::kAdd, 20'000'000)}, Poll(0), DragonflyPolicy());
  Call({Timer(9, kev::kAdd, 0)}, Poll(0), DragonflyPolicy());
  host_.Advance(engine_, 20'000'000);
  host_.Advance(engine_, 1000 * kNanosPerSecond);
  ev = Get(8, DragonflyPolicy());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 9u);
  EXPECT_EQ(ev[0].data, 1 + 100'000);
}

// Periods, timeouts and clocks near the end of the 64-bit range saturate:
// no deadline wraps into the past (which would fire in a loop).
TEST_F(KqueueTest, HugeTimesNeverWrapADeadline) {
  const Nanos huge = INT64_MAX / 4;
  host_.Advance(engine_, 3 * huge);  // the clock late in its range
  Captured c;
  Park(&c, Wait(1, INT64_MAX, 0));             // a timeout beyond the range
  Call({Timer(7, kev::kAdd, huge)}, Poll(0));  // a period beyond it
  host_.Advance(engine_, 1);
  EXPECT_FALSE(c.called);
  EXPECT_TRUE(Get().empty());
  EXPECT_GE(host_.deadline(), host_.Now());
  // DragonFly reads tv_nsec unvalidated (DF kern_event.c:866-869).
  Captured d;
  auto wid = engine_.Kevent(kP, kq_, DragonflyPolicy(), {}, false,
                            Wait(1, INT64_MAX / kNanosPerSecond, INT64_MAX), std::make_unique<Capture>(&d));
  ASSERT_TRUE(wid.has_value());
  EXPECT_GE(host_.deadline(), host_.Now());
  engine_.CancelWait(*wid);
  EXPECT_FALSE(d.called);
}

KChange AbsTimer(uint64_t ident, uint16_t flags, Nanos realtime) {
  KChange c = Timer(ident, flags, realtime);
  c.timer_absolute = true;
  return c;
}

TEST_F(KqueueTest, AbstimeFiresOnceAtTheRealtimeAndStaysActive) {
  // FreeBSD filt_timerstart (kc->to = 0), OpenBSD filt_timeradd
  // (ft_reschedule = 0): an absolute timer fires once; EV_CLEAR is not forced
  // (filt_timerattach), so without it the event stays until EV_DELETE.
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy()}) {
    const Nanos real_now = host_.Now() + KqFakeHost::kBootRealtime;
    Call({AbsTimer(7, kev::kAdd, real_now + 30'000'000)}, Poll(0), pol);
    EXPECT_EQ(host_.deadline(), host_.Now() + 30'000'000);
    host_.Advance(engine_, 29'000'000);
    EXPECT_TRUE(Get(8, pol).empty());
    host_.Advance(engine_, 1'000'000);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 1);
    EXPECT_FALSE(ev[0].flags & kev::kClear);
    EXPECT_EQ(host_.deadline(), Host::kNever);  // no next period
    host_.Advance(engine_, 100'000'000);
    ev = Get(8, pol);  // still active, not counted again
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 1);
    Call({Ch(KFilter::kTimer, 7, kev::kDelete)}, Poll(0), pol);
  }
}

TEST_F(KqueueTest, AbstimeWithClearIsReportedOnce) {
  const Nanos real_now = host_.Now() + KqFakeHost::kBootRealtime;
  Call({AbsTimer(7, kev::kAdd | kev::kClear, real_now + 10'000'000)}, Poll(0));
  host_.Advance(engine_, 50'000'000);
  ASSERT_EQ(Get().size(), 1u);
  EXPECT_TRUE(Get().empty());
}

TEST_F(KqueueTest, AbstimeAlreadyPastFiresAtOnce) {
  // OpenBSD filt_timeradd: "Expire immediately"; FreeBSD: a callout at an
  // uptime already past runs at once.
  const Nanos real_now = host_.Now() + KqFakeHost::kBootRealtime;
  auto ev = Call({AbsTimer(7, kev::kAdd, real_now - 1'000'000'000)}, Poll(4)).events;
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 1);
}

TEST_F(KqueueTest, AbstimeBeforeBootDiffers) {
  // FreeBSD filt_timervalidate: the time minus the boot time < 0 is EINVAL;
  // OpenBSD has no such check: the time is past, it fires at once.
  KqueuePolicy fb = FreebsdPolicy();
  fb.abstime_before_boot_einval = true;
  auto out = Call({AbsTimer(7, kev::kAdd, 1'000'000)}, Poll(4), fb);
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].flags, kev::kError);
  EXPECT_EQ(out.events[0].data, EINVAL);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  auto ev = Call({AbsTimer(7, kev::kAdd, 1'000'000)}, Poll(4), OpenbsdPolicy()).events;
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].flags & kev::kError, 0);
  EXPECT_EQ(ev[0].data, 1);
}

TEST_F(KqueueTest, AbstimeReAddRestartsWithTheNewFlags) {
  // filt_timertouch / filt_timermodify: EV_ADD on a periodic timer with
  // NOTE_ABSTIME turns it into a one-time absolute timer, pending dropped.
  const Nanos real_now = host_.Now() + KqFakeHost::kBootRealtime;
  Call({Timer(7, kev::kAdd, 10'000'000)}, Poll(0));
  host_.Advance(engine_, 10'000'000);
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
  Call({AbsTimer(7, kev::kAdd, real_now + 50'000'000)}, Poll(0));
  EXPECT_EQ(engine_.PendingCount(kq_), 0u);
  host_.Advance(engine_, 30'000'000);
  EXPECT_TRUE(Get().empty());
  host_.Advance(engine_, 15'000'000);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 1);
  EXPECT_EQ(host_.deadline(), Host::kNever);
  // And back to a past absolute time: fires at the re-add.
  Call({AbsTimer(7, kev::kAdd, real_now)}, Poll(0));
  EXPECT_EQ(engine_.PendingCount(kq_), 1u);
}

TEST_F(KqueueTest, KqueueWatchingAKqueueReportsItsPendingCount) {
  // filt_kqueue (DF kern_event.c:281-287, OB kern_event.c:267-272,
  // FreeBSD filt_kqueue): data = kq_count, the inner kqueue's pending events.
  ObjectId inner = engine_.Create(kP).value();
  host_.Open(kP.pid, 20);  // the inner kqueue's descriptor
  host_.MarkKqueue(kP.pid, 20, inner);
  auto on_inner = [&](std::vector<KChange> ch) {
    Captured c;
    engine_.Kevent(kP, inner, FreebsdPolicy(), ch, false, Poll(0),
                   std::make_unique<Capture>(&c));
  };
  on_inner({Ch(KFilter::kUser, 1, kev::kAdd | kev::kClear), Ch(KFilter::kUser, 2, kev::kAdd | kev::kClear)});
  Call({Ch(KFilter::kRead, 20, kev::kAdd)}, Poll(0));
  EXPECT_TRUE(Get().empty());
  // A waiter on the outer kqueue wakes when the inner one gets an event,
  // without the descriptor's readiness (the host never fires the watch here).
  Captured c;
  Park(&c, Forever(4));
  on_inner({Ch(KFilter::kUser, 1, 0, kev::kNoteTrigger)});
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].ident, 20u);
  EXPECT_EQ(c.out.events[0].data, 1);
  on_inner({Ch(KFilter::kUser, 2, 0, kev::kNoteTrigger)});
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 2);
  // Drained: the outer knote has nothing to report.
  Captured drained;
  engine_.Kevent(kP, inner, FreebsdPolicy(), {}, false, Poll(8), std::make_unique<Capture>(&drained));
  EXPECT_EQ(drained.out.events.size(), 2u);
  EXPECT_TRUE(Get().empty());
}

TEST_F(KqueueTest, WaiterWokenByEvent) {
  Captured c;
  Park(&c, Forever(4));
  EXPECT_EQ(engine_.WaiterCount(kq_), 1u);
  Call({Ch(KFilter::kUser, 1, kev::kAdd, kev::kNoteTrigger)}, Poll(0));
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(engine_.WaiterCount(kq_), 0u);
}

TEST_F(KqueueTest, TimeoutReturnsZeroEvents) {
  Captured c;
  Park(&c, Wait(4, 0, 20'000'000));
  host_.Advance(engine_, 19'000'000);
  EXPECT_FALSE(c.called);
  host_.Advance(engine_, 1'000'000);
  ASSERT_TRUE(c.called);
  EXPECT_EQ(c.out.error, 0);
  EXPECT_TRUE(c.out.events.empty());
}

TEST_F(KqueueTest, TwoWaitersGetDistinctEvents) {
  Captured a, b;
  Park(&a, Forever(1), kP);
  Park(&b, Forever(1), kP2);
  Call({Ch(KFilter::kUser, 1, kev::kAdd | kev::kOneshot, kev::kNoteTrigger),
        Ch(KFilter::kUser, 2, kev::kAdd | kev::kOneshot, kev::kNoteTrigger)},
       Poll(0));
  ASSERT_TRUE(a.called && b.called);
  ASSERT_EQ(a.out.events.size(), 1u);
  ASSERT_EQ(b.out.events.size(), 1u);
  EXPECT_NE(a.out.events[0].ident, b.out.events[0].ident);
}

TEST_F(KqueueTest, RefusedDeliveryLosesNothing) {
  // The waiting thread was interrupted: the oneshot knote must survive.
  Captured c;
  Park(&c, Forever(4), kP, /*accept=*/false);
  Call({Ch(KFilter::kUser, 1, kev::kAdd | kev::kOneshot, kev::kNoteTrigger)}, Poll(0));
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 1u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
}

TEST_F(KqueueTest, CancelledWaitIsForgotten) {
  Captured c;
  WaitId w = Park(&c, Forever(4));
  engine_.CancelWait(w);
  Call({Ch(KFilter::kUser, 1, kev::kAdd, kev::kNoteTrigger)}, Poll(0));
  EXPECT_FALSE(c.called);
  EXPECT_EQ(Get().size(), 1u);
}

TEST_F(KqueueTest, TimeoutValidationPerPersonality) {
  // OpenBSD: before any change (OB kern_event.c:911-922).
  auto out = Call({Ch(KFilter::kUser, 1, kev::kAdd)}, Wait(0, 0, 2'000'000'000), OpenbsdPolicy());
  EXPECT_EQ(out.error, EINVAL);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  // FreeBSD: after the changes, and only if nevents > 0.
  out = Call({Ch(KFilter::kUser, 1, kev::kAdd)}, Wait(0, 0, 2'000'000'000), FreebsdPolicy());
  EXPECT_EQ(out.error, 0);
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
  out = Call({Ch(KFilter::kUser, 2, kev::kAdd)}, Wait(1, -1, 0), FreebsdPolicy());
  EXPECT_EQ(out.error, EINVAL);
  EXPECT_EQ(engine_.KnoteCount(kq_), 2u);
  // DragonFly: never; a negative timeout is already expired (DF kern_event.c:866-871).
  out = Call({}, Wait(1, -1, 0), DragonflyPolicy());
  EXPECT_EQ(out.error, 0);
  EXPECT_TRUE(out.events.empty());
}

TEST_F(KqueueTest, ClosedDescriptorDropsKnoteSilently) {
  auto f = host_.Open(kP.pid, 5);
  host_.Dup(kP.pid, 5, 6);
  Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kRead, 6, kev::kAdd)}, Poll(0));
  host_.Close(kP.pid, 5);  // knote_fdclose (OB kern_event.c:1827-1845)
  host_.Set(engine_, f, pb::kIn, 1);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);  // only the dup's knote
  EXPECT_EQ(ev[0].ident, 6u);
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
}

// knote_fdclose removes every knote on the closed number, whatever its
// filter (OB kern_event.c:1826-1845, DF kern_event.c:1868-1902): a change
// naming the reused number with another filter drops them too, so cycles
// that alternate filters on one number keep one knote and one watch.
TEST_F(KqueueTest, ReusedNumberDropsClosedKnotesOfEveryFilter) {
  for (int cycle = 0; cycle < 50; ++cycle) {
    host_.Open(kP.pid, 5);
    KFilter f = (cycle % 3 == 0) ? KFilter::kRead : (cycle % 3 == 1) ? KFilter::kWrite : KFilter::kExcept;
    auto out = Call({Ch(f, 5, kev::kAdd)}, Poll(0));
    ASSERT_EQ(out.error, 0) << cycle;
    host_.Close(kP.pid, 5);
  }
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
  EXPECT_EQ(host_.watches(), 1u);
}

TEST_F(KqueueTest, ReusedDescriptorNumberStartsClean) {
  auto f = host_.Open(kP.pid, 5);
  f->ready = pb::kIn;
  f->readable = 1;
  Call({Ch(KFilter::kRead, 5, kev::kAdd, 0, 0, 1)}, Poll(0));
  host_.Close(kP.pid, 5);
  host_.Open(kP.pid, 5);  // a new file, not ready
  // EV_ENABLE on the number finds no knote: the old one went with the close.
  auto out = Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0));
  EXPECT_EQ(out.error, ENOENT);
  EXPECT_TRUE(Get().empty());
  EXPECT_EQ(host_.watches(), 0u);  // its watch was dropped
}

// knote_fdclose (OB kern_event.c:1826-1845, DF kern_event.c:1868-1902): a
// close removes, in every kqueue of the closing process, the knotes of the
// fd filters on that number, before anything else can happen to the file;
// they report nothing. Reported by the library (FdClosing), so it holds even
// while the number still names the same open file (dup2 back, SCM_RIGHTS),
// where the lazy check (Host::SameFile) sees nothing.
TEST_F(KqueueTest, FdClosingDropsTheKnotesOnThatNumberInEveryKqueueOfTheProcess) {
  auto f = host_.Open(kP.pid, 5);
  auto g = host_.Open(kP.pid, 7);
  f->ready = g->ready = pb::kIn | pb::kOut;
  f->readable = g->readable = 1;
  f->writable = g->writable = 1;
  auto out = Call({Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kWrite, 5, kev::kAdd),
                   Ch(KFilter::kExcept, 5, kev::kAdd), Ch(KFilter::kVnode, 5, kev::kAdd, kev::kNoteWrite),
                   Ch(KFilter::kRead, 7, kev::kAdd),
                   // Not descriptors: an ident 5 that is a user event, a timer, a signal, a pid.
                   Ch(KFilter::kUser, 5, kev::kAdd, kev::kNoteTrigger), Timer(5, kev::kAdd, 1'000'000'000),
                   Ch(KFilter::kSignal, 5, kev::kAdd)},
                  Poll(0));
  ASSERT_EQ(out.error, 0);
  // A second kqueue of the process, and another process's with its own fd 5.
  const ObjectId kq2 = engine_.Create(kP).value();
  constexpr Caller kOther{200, 200};
  auto other_file = host_.Open(kOther.pid, 5);
  other_file->ready = pb::kIn;
  other_file->readable = 1;
  const ObjectId kq3 = engine_.Create(kOther).value();
  Captured c2, c3;
  KChange add2 = Ch(KFilter::kRead, 5, kev::kAdd), add3 = add2;
  engine_.Kevent(kP, kq2, FreebsdPolicy(), {&add2, 1}, false, Poll(0),
                 std::make_unique<Capture>(&c2));
  engine_.Kevent(kOther, kq3, FreebsdPolicy(), {&add3, 1}, false, Poll(0),
                 std::make_unique<Capture>(&c3));
  ASSERT_TRUE(c2.called && c3.called);
  EXPECT_EQ(engine_.KnoteCount(kq_), 8u);
  const size_t watches = host_.watches();

  engine_.FdClosing(kP.pid, 5);

  EXPECT_EQ(engine_.KnoteCount(kq_), 4u);  // READ 7, USER, TIMER, SIGNAL
  EXPECT_EQ(engine_.KnoteCount(kq2), 0u);
  EXPECT_EQ(engine_.KnoteCount(kq3), 1u);  // another process's descriptor 5
  EXPECT_EQ(host_.watches(), watches - 4);  // READ, WRITE, EXCEPT here, READ in kq2
  EXPECT_TRUE(host_.vnodes.empty());
  EXPECT_EQ(engine_.PendingCount(kq2), 0u);
  // The same file is still at 5, ready: nothing is reported for it.
  std::set<std::pair<KFilter, uint64_t>> reported;
  for (const KeventRecord& ev : Get()) reported.insert({ev.filter, ev.ident});
  EXPECT_EQ(reported, (std::set<std::pair<KFilter, uint64_t>>{{KFilter::kRead, 7}, {KFilter::kUser, 5}}));
  engine_.OnSignal(kP.pid, 5);  // the signal knote on ident 5 is still there
  reported.clear();
  for (const KeventRecord& ev : Get()) reported.insert({ev.filter, ev.ident});
  EXPECT_TRUE(reported.count({KFilter::kSignal, 5})) << "signal knote dropped";
  // The number registers afresh.
  EXPECT_EQ(Call({Ch(KFilter::kRead, 5, kev::kEnable)}, Poll(0)).error, ENOENT);
  EXPECT_EQ(Call({Ch(KFilter::kRead, 5, kev::kAdd, 0, 0, 0x55)}, Poll(0)).error, 0);
  // Numbers that cannot be descriptors change nothing.
  engine_.FdClosing(kP.pid, -1);
  engine_.FdClosing(kP.pid, int64_t{1} << 32 | 5);
  EXPECT_EQ(engine_.KnoteCount(kq_), 5u);
}

TEST_F(KqueueTest, CloseWakesWaitersWithEbadfAndFreesKnotes) {
  // OpenBSD: kqueue_close purges and wakes the sleeper (OB kern_event.c:1573-1586,
  // 1543-1571), which fails with EBADF (OB :1292-1295).
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd), Timer(1, kev::kAdd, 1'000'000)}, Poll(0), OpenbsdPolicy());
  Captured d;
  Park(&d, Forever(1), kP2, true, {}, OpenbsdPolicy());
  engine_.Close(kq_);
  ASSERT_TRUE(d.called);
  EXPECT_EQ(d.out.error, EBADF);
  EXPECT_EQ(host_.watches(), 0u);
  EXPECT_EQ(host_.deadline(), Host::kNever);
  Captured e;
  engine_.Kevent(kP, kq_, FreebsdPolicy(), {}, false, Poll(1), std::make_unique<Capture>(&e));
  EXPECT_EQ(e.out.error, EBADF);
}

TEST_F(KqueueTest, OwnerExitFreesItsKqueues) {
  Call({Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0));
  engine_.ProcessExited(kP.pid);
  EXPECT_FALSE(engine_.Exists(kq_));
  EXPECT_FALSE(engine_.Owner(kq_).has_value());
}

// KQUEUE_CPONFORK (FreeBSD kqueuex(2); kern_event.c kqueue_fork_copy): the
// copy has the copyable knotes with their state; both then live apart.
class KqueueForkTest : public ::testing::Test {
 protected:
  static constexpr Caller kParent{100, 100};
  static constexpr Pid kChild = 200;
  KeventOutcome On(ObjectId kq, Pid pid, std::vector<KChange> ch, KeventWait w) {
    Captured c;
    engine_.Kevent(Caller{pid, pid}, kq, FreebsdPolicy(), ch, false, w,
                   std::make_unique<Capture>(&c));
    EXPECT_TRUE(c.called);
    return c.out;
  }
  KqFakeHost host_;
  Kqueues engine_{host_};
};

TEST_F(KqueueForkTest, ChildGetsACopyWithTheActiveState) {
  ObjectId kq = engine_.Create(kParent, /*copy_on_fork=*/true).value();
  ObjectId plain = engine_.Create(kParent).value();
  auto pipe = host_.Open(kParent.pid, 5);
  host_.Open(kParent.pid, 6);
  host_.MarkKqueue(kParent.pid, 6, plain);
  host_.Open(kParent.pid, 7);
  KChange timer = Timer(2, kev::kAdd, 50'000'000);
  On(kq, kParent.pid,
     {Ch(KFilter::kUser, 1, kev::kAdd | kev::kClear, kev::kNoteTrigger, 0, 11), timer,
      Ch(KFilter::kRead, 5, kev::kAdd), Ch(KFilter::kRead, 6, kev::kAdd),
      Ch(KFilter::kVnode, 7, kev::kAdd, kev::kNoteWrite), Ch(KFilter::kSignal, 10, kev::kAdd),
      Ch(KFilter::kUser, 3, kev::kAdd | kev::kClear)},
     Poll(0));
  const uint64_t token = engine_.ForkPrepare(kParent.pid);
  ASSERT_NE(token, 0u);
  host_.Inherit(kParent.pid, kChild);
  EXPECT_EQ(engine_.ForkPrepare(999), 0u);  // no copy-on-fork kqueue there
  auto copies = engine_.ForkClaim(token, kChild);
  ASSERT_EQ(copies.size(), 1u);  // `plain` has no KQUEUE_CPONFORK: not copied
  EXPECT_EQ(copies[0].first, kq);
  const ObjectId child_kq = copies[0].second;
  EXPECT_EQ(engine_.Owner(child_kq), kChild);
  EXPECT_TRUE(engine_.ForkClaim(token, 300).empty());  // claimed once
  // Copied: USER 1 (and its pending trigger), TIMER, READ on the pipe,
  // VNODE, USER 3. Not: READ on a kqueue's descriptor (not the child's),
  // SIGNAL (a per-process source).
  EXPECT_EQ(engine_.KnoteCount(child_kq), 5u);
  EXPECT_EQ(engine_.PendingCount(child_kq), 1u);
  auto ev = On(child_kq, kChild, {}, Poll(8)).events;
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 1u);
  EXPECT_EQ(ev[0].udata, 11u);
  // The parent still has its own, untouched by the child's retrieval.
  ev = On(kq, kParent.pid, {}, Poll(8)).events;
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 1u);
  // Apart from now on: a trigger in the child is the child's.
  On(child_kq, kChild, {Ch(KFilter::kUser, 3, 0, kev::kNoteTrigger)}, Poll(0));
  EXPECT_EQ(engine_.PendingCount(child_kq), 1u);
  EXPECT_EQ(engine_.PendingCount(kq), 0u);
  // The timer runs in both, from the parent's schedule.
  host_.Advance(engine_, 50'000'000);
  EXPECT_EQ(engine_.PendingCount(kq), 1u);
  EXPECT_EQ(engine_.PendingCount(child_kq), 2u);
  // The child's descriptors are its own: the parent closing 5 does not drop
  // the child's knote on the same pipe, which still fires.
  host_.Close(kParent.pid, 5);
  host_.Set(engine_, pipe, pb::kIn, 3);
  ev = On(child_kq, kChild, {}, Poll(8)).events;
  bool pipe_read = false;
  for (const KeventRecord& e : ev) pipe_read |= e.filter == KFilter::kRead && e.ident == 5 && e.data == 3;
  EXPECT_TRUE(pipe_read);
  EXPECT_EQ(engine_.KnoteCount(kq), 7u);  // the parent's READ on 5 goes at its next look
  On(kq, kParent.pid, {}, Poll(8));
  EXPECT_EQ(engine_.KnoteCount(kq), 6u);
}

TEST_F(KqueueForkTest, CopiesOutliveTheParentUntilClaimed) {
  // FreeBSD kqueue_fork_copy runs inside fork: a child whose parent exits at
  // once (the daemon pattern) still has its copy when it gets to claim it.
  ObjectId kq = engine_.Create(kParent, true).value();
  On(kq, kParent.pid, {Ch(KFilter::kUser, 1, kev::kAdd | kev::kClear, kev::kNoteTrigger)}, Poll(0));
  const uint64_t token = engine_.ForkPrepare(kParent.pid);
  EXPECT_EQ(engine_.kqueue_count(), 2u);
  engine_.ProcessExited(kParent.pid);
  EXPECT_EQ(engine_.kqueue_count(), 1u);  // the parent's own kqueue went
  auto copies = engine_.ForkClaim(token, kChild);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(engine_.Owner(copies[0].second), kChild);
  EXPECT_EQ(engine_.PendingCount(copies[0].second), 1u);
  engine_.ForkSourceClosed(kq);  // the child's inherited descriptor replaced: claimed copies stay
  EXPECT_EQ(engine_.kqueue_count(), 1u);
}

TEST_F(KqueueForkTest, UnclaimedCopiesGoWithTheSourcesLastDescriptor) {
  // A fork that failed (or a child that died before it claimed): once no
  // process holds the parent's kqueue, nobody can claim its copies.
  ObjectId kq = engine_.Create(kParent, true).value();
  ObjectId other = engine_.Create(kParent, true).value();
  On(kq, kParent.pid, {Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0));
  const uint64_t token = engine_.ForkPrepare(kParent.pid);
  EXPECT_EQ(engine_.kqueue_count(), 4u);
  engine_.ProcessExited(kParent.pid);
  EXPECT_EQ(engine_.kqueue_count(), 2u);
  engine_.ForkSourceClosed(kq);
  EXPECT_EQ(engine_.kqueue_count(), 1u);  // `other`'s copy may still be claimed
  auto copies = engine_.ForkClaim(token, kChild);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(copies[0].first, other);
  engine_.ForkSourceClosed(other);
  EXPECT_EQ(engine_.kqueue_count(), 1u);
  EXPECT_TRUE(engine_.ForkClaim(token, kChild).empty());
}

TEST_F(KqueueForkTest, OnlyAChildHoldingTheKqueueClaims) {
  // evshim_kqueue_fork(2, token) is evshim's own call: the parent itself, or
  // a process without the parent's kqueue (tokens are small numbers), takes
  // nothing and leaves the copies to the child.
  ObjectId kq = engine_.Create(kParent, true).value();
  On(kq, kParent.pid, {Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0));
  const uint64_t token = engine_.ForkPrepare(kParent.pid);
  constexpr Pid kIntruder = 300;
  host_.Stranger(kIntruder);
  EXPECT_TRUE(engine_.ForkClaim(token, kIntruder).empty());
  EXPECT_TRUE(engine_.ForkClaim(token, kParent.pid).empty());
  auto copies = engine_.ForkClaim(token, kChild);
  ASSERT_EQ(copies.size(), 1u);
  EXPECT_EQ(engine_.Owner(copies[0].second), kChild);
}

TEST_F(KqueueForkTest, CopiesAreCopiedAgainAtTheChildsFork) {
  ObjectId kq = engine_.Create(kParent, true).value();
  On(kq, kParent.pid, {Ch(KFilter::kUser, 1, kev::kAdd)}, Poll(0));
  const ObjectId child_kq = engine_.ForkClaim(engine_.ForkPrepare(kParent.pid), kChild).at(0).second;
  auto grandchild = engine_.ForkClaim(engine_.ForkPrepare(kChild), 300);
  ASSERT_EQ(grandchild.size(), 1u);
  EXPECT_EQ(grandchild[0].first, child_kq);
  EXPECT_EQ(engine_.KnoteCount(grandchild[0].second), 1u);
}

TEST_F(KqueueTest, ChangesFaultAfterAppliedOnes) {
  Captured c;
  KChange add = Ch(KFilter::kUser, 1, kev::kAdd);
  engine_.Kevent(kP, kq_, FreebsdPolicy(), {&add, 1}, true, Poll(1),
                 std::make_unique<Capture>(&c));
  EXPECT_EQ(c.out.error, EFAULT);
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
}


// ---- EVFILT_PROC (OB kern_event.c:321-450, DF kern_event.c:289-418) ----

constexpr Pid kChild = 200;

TEST_F(KqueueTest, ProcExitReportsWaitStatusThenGoes) {
  host_.live.insert(kChild);
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExit, 0, 0x77)}, Poll(0), OpenbsdPolicy());
  EXPECT_EQ(host_.proc_refs[kChild], 1);
  EXPECT_TRUE(Get(8, OpenbsdPolicy()).empty());
  engine_.OnProcessExit(kChild, 7 << 8);
  auto ev = Get(8, OpenbsdPolicy());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteExit);
  EXPECT_EQ(ev[0].data, 7 << 8);  // W_EXITCODE (OB :419)
  EXPECT_EQ(ev[0].udata, 0x77u);
  // EV_CLEAR forced at attach (OB :343), EV_EOF|EV_ONESHOT at exit (OB :418).
  EXPECT_EQ(ev[0].flags, kev::kAdd | kev::kClear | kev::kEof | kev::kOneshot);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);  // one-shot: dropped once read
  EXPECT_EQ(host_.proc_refs.count(kChild), 0u);
}

TEST_F(KqueueTest, ProcNoSuchProcessIsEsrch) {
  auto out = Call({Ch(KFilter::kProc, 4242, kev::kAdd, kev::kNoteExit)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, ESRCH);  // OB :334-336, DF :301-303
  out = Call({Ch(KFilter::kProc, 0, kev::kAdd, kev::kNoteExit)}, Poll(1));
  EXPECT_EQ(out.events[0].data, ESRCH);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
}

TEST_F(KqueueTest, ProcZombieAttachDiffers) {
  host_.zombies[kChild] = 3 << 8;
  // OpenBSD: exiting processes cannot be specified (OB :338-340).
  auto out = Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExit)}, Poll(1), OpenbsdPolicy());
  EXPECT_EQ(out.events[0].data, ESRCH);
  EXPECT_EQ(host_.proc_refs.count(kChild), 0u);
  // DragonFly: only with NOTE_EXIT (zpfind, DF :296-300), and it fires at once (:325-331).
  KqueuePolicy df = DragonflyPolicy();
  df.zombie_attach = KqueuePolicy::ZombieAttach::kWithNoteExit;
  out = Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteFork)}, Poll(1), df);
  EXPECT_EQ(out.events[0].data, ESRCH);
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExit)}, Poll(0), df);
  auto ev = Get(8, df);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 3 << 8);
  // FreeBSD: always; a knote with nothing to report is dropped (EV_DROP).
  KqueuePolicy fb = FreebsdPolicy();
  fb.proc_exit_always = false;
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteFork)}, Poll(0), fb);
  EXPECT_TRUE(Get(8, fb).empty());
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
}

TEST_F(KqueueTest, ProcExitWithoutNoteExitDependsOnTheKernel) {
  host_.live.insert(kChild);
  KqueuePolicy fb = FreebsdPolicy();
  fb.proc_exit_always = false;
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExec)}, Poll(0), fb);
  engine_.OnProcessExit(kChild, 0);
  EXPECT_TRUE(Get(8, fb).empty());  // FreeBSD: EV_DROP
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  KqueuePolicy df = DragonflyPolicy();
  df.proc_exit_flags = 0x1000;
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExec)}, Poll(0), df);
  engine_.OnProcessExit(kChild, 0);
  auto ev = Get(8, df);
  ASSERT_EQ(ev.size(), 1u);  // DF :378-390: reported anyway, with EV_NODATA
  EXPECT_EQ(ev[0].fflags, 0u);
  EXPECT_EQ(ev[0].flags & (kev::kEof | 0x1000), kev::kEof | 0x1000);
}

TEST_F(KqueueTest, ProcTrackFollowsTheChild) {
  host_.live.insert({kChild, kChild + 1});
  const uint32_t ff = kev::kNoteExit | kev::kNoteFork | kev::kNoteExec | kev::kNoteTrack;
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, ff, 0, 0x55)}, Poll(0), OpenbsdPolicy());
  engine_.OnProcessFork(kChild, kChild + 1);
  auto ev = Get(8, OpenbsdPolicy());
  ASSERT_EQ(ev.size(), 2u);
  std::sort(ev.begin(), ev.end(), [](auto& a, auto& b) { return a.ident < b.ident; });
  EXPECT_EQ(ev[0].ident, static_cast<uint64_t>(kChild));
  EXPECT_EQ(ev[0].fflags, kev::kNoteFork);
  // The new knote: NOTE_CHILD, data = the parent (OB :348-352), same udata.
  EXPECT_EQ(ev[1].ident, static_cast<uint64_t>(kChild + 1));
  EXPECT_EQ(ev[1].fflags, kev::kNoteChild);
  EXPECT_EQ(ev[1].data, kChild);
  EXPECT_EQ(ev[1].udata, 0x55u);
  EXPECT_EQ(host_.proc_refs[kChild + 1], 1);
  // It tracks the child's own events with the same fflags.
  engine_.OnProcessExec(kChild + 1);
  engine_.OnProcessExit(kChild + 1, 5 << 8);
  ev = Get(8, OpenbsdPolicy());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteExec | kev::kNoteExit);
  EXPECT_EQ(ev[0].data, 5 << 8);
  // A child that cannot be tracked: NOTE_TRACKERR on the parent's (OB :444-446).
  engine_.OnProcessFork(kChild, 999);
  ev = Get(8, OpenbsdPolicy());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteFork | kev::kNoteTrackErr);
}

TEST_F(KqueueTest, ProcForkWithoutTrackAndUnseenNotes) {
  host_.live.insert(kChild);
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExit)}, Poll(0));
  engine_.OnProcessFork(kChild, kChild + 1);  // not asked for
  engine_.OnProcessExec(kChild);
  EXPECT_TRUE(Get().empty());
  EXPECT_EQ(engine_.KnoteCount(kq_), 1u);
  // A host that cannot see forks refuses NOTE_FORK/EXEC/TRACK.
  host_.fork_exec_supported = false;
  auto out = Call({Ch(KFilter::kProc, kChild, kev::kAdd | kev::kReceipt, kev::kNoteFork)}, Poll(1));
  EXPECT_EQ(out.events[0].data, 0);  // an existing knote is only modified
  host_.live.insert(kChild + 5);
  out = Call({Ch(KFilter::kProc, kChild + 5, kev::kAdd, kev::kNoteFork)}, Poll(1));
  EXPECT_EQ(out.events[0].data, EOPNOTSUPP);
}

TEST_F(KqueueTest, ProcKnotesGoWithTheKqueue) {
  host_.live.insert(kChild);
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExit)}, Poll(0));
  Call({Ch(KFilter::kProc, kChild, kev::kDelete)}, Poll(0));
  EXPECT_EQ(host_.proc_refs.count(kChild), 0u);
  Call({Ch(KFilter::kProc, kChild, kev::kAdd, kev::kNoteExit)}, Poll(0));
  engine_.Close(kq_);
  EXPECT_EQ(host_.proc_refs.count(kChild), 0u);
}

// ---- EVFILT_SIGNAL ----

TEST_F(KqueueTest, SignalCountsDeliveriesSinceLastRetrieval) {
  Call({Ch(KFilter::kSignal, 10, kev::kAdd, 0, 0, 9)}, Poll(0));
  engine_.OnSignal(kP.pid, 10);
  engine_.OnSignal(kP.pid, 10);
  engine_.OnSignal(kP.pid, 12);      // not watched
  engine_.OnSignal(kP.pid + 1, 10);  // another process
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 10u);
  EXPECT_EQ(ev[0].data, 2);
  EXPECT_EQ(ev[0].flags & kev::kClear, kev::kClear);  // EV_CLEAR implied
  EXPECT_TRUE(Get().empty());
  // Disabled: still counted, reported once enabled.
  Call({Ch(KFilter::kSignal, 10, kev::kDisable, 0, 0, 9)}, Poll(0));
  engine_.OnSignal(kP.pid, 10);
  EXPECT_TRUE(Get().empty());
  Call({Ch(KFilter::kSignal, 10, kev::kEnable, 0, 0, 9)}, Poll(0));
  ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 1);
}

TEST_F(KqueueTest, SignalWakesAWaiterAndRejectsBadNumbers) {
  Call({Ch(KFilter::kSignal, 17, kev::kAdd)}, Poll(0));
  Captured c;
  Park(&c, Forever(1));
  engine_.OnSignal(kP.pid, 17);
  ASSERT_TRUE(c.called);
  ASSERT_EQ(c.out.events.size(), 1u);
  EXPECT_EQ(c.out.events[0].data, 1);
  auto out = Call({Ch(KFilter::kSignal, 0, kev::kAdd), Ch(KFilter::kSignal, 65, kev::kAdd)}, Poll(2));
  ASSERT_EQ(out.events.size(), 2u);
  EXPECT_EQ(out.events[0].data, EINVAL);
  EXPECT_EQ(out.events[1].data, EINVAL);
}

// ---- EVFILT_FS ----
// filt_fsattach (DF kern_event.c:656-662, FreeBSD vfs_subr.c): EV_CLEAR
// forced, any ident; filt_fs (DF :671-675, FreeBSD filt_fsevent) ORs each
// hint into fflags until the EV_CLEAR delivery; data stays 0. The host
// reports the mount table's changes (mount_bits), the engine posts VQ_*.

TEST_F(KqueueTest, FsReportsMountAndUnmountHintsAccumulatedUntilDelivered) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), DragonflyPolicy()}) {
    SCOPED_TRACE(pol.report_action_flags ? "DragonFly" : "FreeBSD");
    Call({Ch(KFilter::kFs, 0, kev::kAdd, 0, 0, 0x55)}, Poll(0), pol);
    ASSERT_EQ(host_.mount_watches.size(), 1u);
    EXPECT_EQ(host_.mount_watches.begin()->second, kP.pid);  // the registering process's table
    const WatchId w = host_.mount_watches.begin()->first;
    EXPECT_TRUE(Get(8, pol).empty());  // nothing until a mount
    engine_.OnMountEvent(w, mount_bits::kMounted);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].fflags, kev::kVqMount);
    EXPECT_EQ(ev[0].data, 0);
    EXPECT_EQ(ev[0].udata, 0x55u);
    EXPECT_TRUE(ev[0].flags & kev::kClear);  // forced by filt_fsattach
    EXPECT_TRUE(Get(8, pol).empty());        // EV_CLEAR: reported once
    // Two changes before a retrieval: one event, both hints.
    engine_.OnMountEvent(w, mount_bits::kMounted);
    engine_.OnMountEvent(w, mount_bits::kUnmounted);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].fflags, kev::kVqMount | kev::kVqUnmount);
    // An update of a mount (MNT_UPDATE) signals nothing in either kernel.
    engine_.OnMountEvent(w, mount_bits::kRemounted);
    EXPECT_TRUE(Get(8, pol).empty());
    Call({Ch(KFilter::kFs, 0, kev::kDelete)}, Poll(0), pol);
    EXPECT_TRUE(host_.mount_watches.empty());
  }
}

TEST_F(KqueueTest, FsHintsOfADisabledKnoteWaitForItsEnable) {
  // knote() runs filt_fs on a disabled knote too (DF kern_event.c:1794-1797):
  // the hint is kept, and EV_ENABLE queues the active knote (:1372-1378).
  const KqueuePolicy pol = DragonflyPolicy();
  Call({Ch(KFilter::kFs, 7, kev::kAdd | kev::kDisable)}, Poll(0), pol);
  const WatchId w = host_.mount_watches.begin()->first;
  engine_.OnMountEvent(w, mount_bits::kUnmounted);
  EXPECT_TRUE(Get(8, pol).empty());
  Call({Ch(KFilter::kFs, 7, kev::kEnable)}, Poll(0), pol);
  auto ev = Get(8, pol);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].ident, 7u);
  EXPECT_EQ(ev[0].fflags, kev::kVqUnmount);
}

TEST_F(KqueueTest, FsDeleteAndCloseDropTheMountWatch) {
  Call({Ch(KFilter::kFs, 0, kev::kAdd), Ch(KFilter::kFs, 1, kev::kAdd)}, Poll(0));
  ASSERT_EQ(host_.mount_watches.size(), 2u);
  const WatchId first = host_.mount_watches.begin()->first;
  Call({Ch(KFilter::kFs, 0, kev::kDelete)}, Poll(0));
  EXPECT_EQ(host_.mount_watches.size(), 1u);
  engine_.OnMountEvent(first, mount_bits::kMounted);  // its watch is gone: nothing, no crash
  EXPECT_TRUE(Get().empty());
  engine_.Close(kq_);
  EXPECT_TRUE(host_.mount_watches.empty());
}

TEST_F(KqueueTest, FsWatchTheHostCannotMakeFailsTheChange) {
  host_.mounts_error = ENOMEM;
  auto out = Call({Ch(KFilter::kFs, 0, kev::kAdd)}, Poll(1));
  ASSERT_EQ(out.events.size(), 1u);
  EXPECT_EQ(out.events[0].data, ENOMEM);
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
}

// ---- EVFILT_VNODE ----

TEST_F(KqueueTest, VnodeReportsRequestedNotes) {
  host_.Open(kP.pid, 6);
  Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, kev::kNoteWrite | kev::kNoteDelete)}, Poll(0));
  EXPECT_EQ(host_.vnodes.size(), 1u);
  const WatchId w = host_.vnodes.begin()->first;
  engine_.OnVnodeEvent(w, kev::kNoteAttrib);  // not asked for
  EXPECT_TRUE(Get().empty());
  engine_.OnVnodeEvent(w, kev::kNoteWrite | kev::kNoteExtend);
  engine_.OnVnodeEvent(w, kev::kNoteDelete);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  // accumulated; the write's hint whole (NOTE_EXTEND too: the rule below)
  EXPECT_EQ(ev[0].fflags, kev::kNoteWrite | kev::kNoteExtend | kev::kNoteDelete);
  EXPECT_TRUE(Get().empty());                                   // EV_CLEAR
}

// BSD file systems post one hint per operation (a growing write:
// NOTE_WRITE|NOTE_EXTEND; OpenBSD's shrinking setattr: NOTE_ATTRIB|
// NOTE_TRUNCATE; mkdir/rmdir on the directory: NOTE_WRITE|NOTE_LINK), and
// filt_vnode copies the whole hint when any requested bit is in it (`if
// (kn->kn_sfflags & hint) kn->kn_fflags |= hint`); bits the kernel lacks
// (0x80 outside OpenBSD) are not in its hints.
TEST_F(KqueueTest, VnodeReportsTheWholeHintWhenAnyRequestedBitIsInIt) {
  struct Case {
    KqueuePolicy pol;
    uint32_t ask, hint, want;
  };
  KqueuePolicy fb = FreebsdPolicy();
  fb.vnode_notes = 0x7f | kev::kNoteOpened | kev::kNoteClose | kev::kNoteCloseWrite | kev::kNoteRead;
  const uint32_t write_extend = kev::kNoteWrite | kev::kNoteExtend;
  const uint32_t attrib_trunc = kev::kNoteAttrib | kev::kNoteTruncate;
  const uint32_t write_link = kev::kNoteWrite | kev::kNoteLink;
  for (const Case& c : {Case{fb, kev::kNoteWrite, write_extend, write_extend},
                        Case{OpenbsdPolicy(), kev::kNoteWrite, write_extend, write_extend},
                        Case{DragonflyPolicy(), kev::kNoteWrite, write_extend, write_extend},
                        Case{DragonflyPolicy(), kev::kNoteExtend, write_extend, write_extend},
                        Case{OpenbsdPolicy(), kev::kNoteTruncate, attrib_trunc, attrib_trunc},
                        Case{OpenbsdPolicy(), kev::kNoteAttrib, attrib_trunc, attrib_trunc},
                        Case{fb, kev::kNoteAttrib, attrib_trunc, kev::kNoteAttrib},
                        Case{DragonflyPolicy(), kev::kNoteAttrib, attrib_trunc, kev::kNoteAttrib},
                        Case{fb, kev::kNoteLink, write_link, write_link},
                        Case{OpenbsdPolicy(), kev::kNoteDelete, write_extend, 0u}}) {
    host_.Open(kP.pid, 6);
    Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, c.ask)}, Poll(0), c.pol);
    engine_.OnVnodeEvent(host_.vnodes.begin()->first, c.hint);
    auto ev = Get(8, c.pol);
    if (c.want == 0) {
      EXPECT_TRUE(ev.empty());
    } else {
      ASSERT_EQ(ev.size(), 1u);
      EXPECT_EQ(ev[0].fflags, c.want) << "ask " << c.ask << " hint " << c.hint;
    }
    Call({Ch(KFilter::kVnode, 6, kev::kDelete)}, Poll(0), c.pol);
  }
}

TEST_F(KqueueTest, VnodeWithoutClearKeepsFiring) {
  host_.Open(kP.pid, 6);
  Call({Ch(KFilter::kVnode, 6, kev::kAdd, kev::kNoteWrite)}, Poll(0));
  engine_.OnVnodeEvent(host_.vnodes.begin()->first, kev::kNoteWrite);
  EXPECT_EQ(Get().size(), 1u);
  EXPECT_EQ(Get().size(), 1u);  // kn_fflags stay set: level-triggered
}

// FreeBSD's vnode notes as the host reports them (abi/bsd/personalities.cc).
constexpr uint32_t kFreebsdVnodeNotes =
    0x7f | kev::kNoteOpened | kev::kNoteClose | kev::kNoteCloseWrite | kev::kNoteRead;

TEST_F(KqueueTest, VnodeTruncateOnlyWhereTheKernelHasIt) {
  host_.Open(kP.pid, 6);
  const uint32_t ask = kev::kNoteAttrib | kev::kNoteTruncate;  // 0x80 = FreeBSD NOTE_OPEN
  Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, ask)}, Poll(0));
  engine_.OnVnodeEvent(host_.vnodes.begin()->first, kev::kNoteAttrib | kev::kNoteTruncate);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteAttrib);  // FreeBSD (vnode_notes 0x7f)
  KqueuePolicy fb = FreebsdPolicy();
  fb.vnode_notes = kFreebsdVnodeNotes;
  Call({}, Poll(0), fb);
  engine_.OnVnodeEvent(host_.vnodes.begin()->first, kev::kNoteAttrib | kev::kNoteTruncate);
  ev = Get(8, fb);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteAttrib);  // with NOTE_OPEN emulated, still not 0x80
  KqueuePolicy ob = OpenbsdPolicy();
  ob.vnode_notes = 0xff;
  Call({}, Poll(0), ob);
  engine_.OnVnodeEvent(host_.vnodes.begin()->first, kev::kNoteAttrib | kev::kNoteTruncate);
  ev = Get(8, ob);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, ask);
}

TEST_F(KqueueTest, VnodeOpenCloseReadOnFreebsd) {
  // FreeBSD kqueue(2): NOTE_OPEN 0x80, NOTE_CLOSE 0x100 (closed without
  // write access), NOTE_CLOSE_WRITE 0x200, NOTE_READ 0x400 (vop_open_post,
  // vop_close_post, vop_read_post). The host reports an open as kNoteOpened,
  // so OpenBSD's NOTE_TRUNCATE (also 0x80) never reads as an open.
  KqueuePolicy fb = FreebsdPolicy();
  fb.vnode_notes = kFreebsdVnodeNotes;
  host_.Open(kP.pid, 6);
  const uint32_t ask = kev::kNoteOpenWire | kev::kNoteClose | kev::kNoteCloseWrite | kev::kNoteRead;
  Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, ask)}, Poll(0), fb);
  const WatchId w = host_.vnodes.begin()->first;
  engine_.OnVnodeEvent(w, kev::kNoteOpened | kev::kNoteRead);
  auto ev = Get(8, fb);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteOpenWire | kev::kNoteRead);
  engine_.OnVnodeEvent(w, kev::kNoteClose);
  ev = Get(8, fb);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteClose);
  engine_.OnVnodeEvent(w, kev::kNoteCloseWrite);
  ev = Get(8, fb);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].fflags, kev::kNoteCloseWrite);
  // A truncation is not an open on FreeBSD.
  engine_.OnVnodeEvent(w, kev::kNoteAttrib | kev::kNoteTruncate);
  EXPECT_TRUE(Get(8, fb).empty());
}

TEST_F(KqueueTest, VnodeUseEventsOnlyForKnotesThatAskForThem) {
  // Opens, closes and reads wake the host at every use of the file: only a
  // FreeBSD knote asking for NOTE_OPEN/CLOSE/CLOSE_WRITE/READ gets them, also
  // when a later EV_ADD asks; OpenBSD's 0x80 (NOTE_TRUNCATE) is not NOTE_OPEN.
  KqueuePolicy fb = FreebsdPolicy();
  fb.vnode_notes = kFreebsdVnodeNotes;
  host_.Open(kP.pid, 6);
  host_.Open(kP.pid, 7);
  Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, kev::kNoteWrite | kev::kNoteDelete)}, Poll(0), fb);
  ASSERT_EQ(host_.vnodes.size(), 1u);
  const WatchId plain = host_.vnodes.begin()->first;
  EXPECT_EQ(host_.vnode_use.count(plain), 0u);
  Call({Ch(KFilter::kVnode, 7, kev::kAdd | kev::kClear, kev::kNoteOpenWire)}, Poll(0), fb);
  ASSERT_EQ(host_.vnodes.size(), 2u);
  EXPECT_EQ(host_.vnode_use.count(host_.vnodes.rbegin()->first), 1u);
  Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, kev::kNoteWrite | kev::kNoteRead)}, Poll(0), fb);
  EXPECT_EQ(host_.vnode_use.count(plain), 1u);

  KqueuePolicy ob = OpenbsdPolicy();
  host_.Open(kP.pid, 8);
  Call({Ch(KFilter::kVnode, 8, kev::kAdd | kev::kClear, kev::kNoteTruncate)}, Poll(0), ob);
  ASSERT_EQ(host_.vnodes.size(), 3u);
  EXPECT_EQ(host_.vnode_use.count(host_.vnodes.rbegin()->first), 0u);
}

TEST_F(KqueueTest, VnodeOpenIsNotATruncateOnOpenbsd) {
  // OpenBSD has no NOTE_OPEN: 0x80 is NOTE_TRUNCATE, and an open, a close
  // or a read is nothing it reports.
  KqueuePolicy ob = OpenbsdPolicy();
  host_.Open(kP.pid, 6);
  Call({Ch(KFilter::kVnode, 6, kev::kAdd | kev::kClear, 0xffff)}, Poll(0), ob);
  engine_.OnVnodeEvent(host_.vnodes.begin()->first,
                       kev::kNoteOpened | kev::kNoteClose | kev::kNoteCloseWrite | kev::kNoteRead);
  EXPECT_TRUE(Get(8, ob).empty());
}

TEST_F(KqueueTest, VnodeCloseDropsTheKnote) {
  host_.Open(kP.pid, 6);
  Call({Ch(KFilter::kVnode, 6, kev::kAdd, kev::kNoteWrite)}, Poll(0));
  engine_.OnVnodeEvent(host_.vnodes.begin()->first, kev::kNoteWrite);
  host_.Close(kP.pid, 6);
  EXPECT_TRUE(Get().empty());  // knote_fdclose: silently
  EXPECT_EQ(engine_.KnoteCount(kq_), 0u);
  EXPECT_TRUE(host_.vnodes.empty());
  auto out = Call({Ch(KFilter::kVnode, 6, kev::kAdd, kev::kNoteWrite)}, Poll(1));
  EXPECT_EQ(out.events[0].data, EBADF);
}

TEST_F(KqueueTest, SocketEofCarriesTheError) {
  auto f = host_.Open(kP.pid, 5);
  Call({Ch(KFilter::kRead, 5, kev::kAdd)}, Poll(0));
  host_.eof_error = ECONNRESET;
  host_.Set(engine_, f, pb::kIn | pb::kRdHup | pb::kErr, 0);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].flags & kev::kEof, kev::kEof);
  EXPECT_EQ(ev[0].fflags, static_cast<uint32_t>(ECONNRESET));
}

}  // namespace
}  // namespace evshim::emul

namespace evshim::emul {
namespace {

// Bounds (issue 7): per-tree caps give ENOMEM, the BSDs' answer when the
// kernel cannot allocate a kqueue or a knote, and nothing grows past them.
TEST(KqueueLimits, CapsOnKqueuesAndKnotesAreEnomem) {
  KqFakeHost host;
  Kqueues engine(host, Kqueues::Limits{2, 3});
  Result<ObjectId> a = engine.Create(kP), b = engine.Create(kP);
  ASSERT_TRUE(a.ok() && b.ok());
  Result<ObjectId> c = engine.Create(kP);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().value, ENOMEM);
  auto add = [&](uint64_t ident) {
    Captured cap;
    KChange change = Ch(KFilter::kUser, ident, kev::kAdd);
    engine.Kevent(kP, *a, FreebsdPolicy(), {&change, 1}, false, Poll(0),
                  std::make_unique<Capture>(&cap));
    return cap.out.error;
  };
  EXPECT_EQ(add(1), 0);
  EXPECT_EQ(add(2), 0);
  EXPECT_EQ(add(3), 0);
  EXPECT_EQ(add(4), ENOMEM);
  EXPECT_EQ(engine.knote_count(), 3u);
  EXPECT_EQ(add(2), 0);  // modifying an existing knote needs no new one
  engine.Close(*a);
  EXPECT_EQ(engine.knote_count(), 0u);
  EXPECT_TRUE(engine.Create(kP).ok());  // room again
}

}  // namespace
}  // namespace evshim::emul

namespace evshim::emul {
namespace {

// READ on a regular file measures size - offset (FreeBSD filt_vfsread,
// freebsd/freebsd-src sys/kern/vfs_subr.c; OpenBSD filt_ufsread,
// openbsd/src sys/ufs/ufs/ufs_vnops.c; DragonFly filt_ufsread,
// DragonFlyBSD/DragonFlyBSD sys/vfs/ufs/ufs_vnops.c) and is run again by the
// file system's VN_KNOTE at each write: a knote at EOF is activated when the
// file grows (DF kern_event.c:1796-1797), the `tail -f` pattern. The fake
// file has no readiness (epoll refuses a regular file); only its vnode watch
// can wake the knote.
class RegularFileReadTest : public KqueueTest {
 protected:
  KqFakeHost::FileRef OpenRegular(int fd) {
    auto f = host_.Open(kP.pid, fd);
    f->regular = true;
    f->kind = FdKind::kRegular;
    return f;
  }
  // The file's vnode watches (the host's count), all on `fd`.
  size_t Watches(int fd) {
    size_t n = 0;
    for (auto& [id, who] : host_.vnodes) n += who.second == fd ? 1 : 0;
    return n;
  }
  void Changed(int fd, uint32_t notes = kev::kNoteWrite | kev::kNoteExtend) {
    std::vector<WatchId> ids;
    for (auto& [id, who] : host_.vnodes) {
      if (who.second == fd) ids.push_back(id);
    }
    for (WatchId id : ids) engine_.OnVnodeEvent(id, notes);
  }
};

TEST_F(RegularFileReadTest, ReadAtEofFiresWhenTheFileGrowsOnEachPersonality) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = OpenRegular(7);
    EXPECT_TRUE(Call({Ch(KFilter::kRead, 7, kev::kAdd, 0, 0, 0x77)}, Poll(8), pol).events.empty());
    ASSERT_EQ(Watches(7), 1u);  // one watch for the knote, made at its first measurement
    EXPECT_FALSE(host_.readable(kq_));
    // A change that leaves nothing to read (a rewrite at EOF, attributes)
    // does not queue it.
    Changed(7, kev::kNoteAttrib);
    EXPECT_EQ(engine_.PendingCount(kq_), 0u);
    EXPECT_FALSE(host_.readable(kq_));
    // Another process appends 5 bytes: the waiter is woken with them.
    Captured c;
    Park(&c, Forever(4), kP, true, {}, pol);
    f->readable = 5;
    Changed(7);
    ASSERT_TRUE(c.called);
    ASSERT_EQ(c.out.events.size(), 1u);
    EXPECT_EQ(c.out.events[0].data, 5);
    EXPECT_EQ(c.out.events[0].udata, 0x77u);
    EXPECT_EQ(c.out.events[0].flags & kev::kEof, 0);
    // Level: still 5 to read. The program reads to EOF: nothing any more.
    EXPECT_EQ(Get(8, pol).size(), 1u);
    f->readable = 0;
    EXPECT_TRUE(Get(8, pol).empty());
    // The next append fires again, with its own count.
    f->readable = 3;
    Changed(7);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 3);
    EXPECT_EQ(Watches(7), 1u);  // still the knote's one watch
    // The watch goes with the knote.
    Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), pol);
    EXPECT_EQ(Watches(7), 0u);
    host_.Close(kP.pid, 7);
  }
}

TEST_F(RegularFileReadTest, ClearAndOneshotAtEofFireAtTheNextAppend) {
  auto f = OpenRegular(7);
  Call({Ch(KFilter::kRead, 7, kev::kAdd | kev::kClear)}, Poll(0));
  f->readable = 4;
  Changed(7);
  auto ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 4);
  EXPECT_TRUE(Get().empty());  // EV_CLEAR: reported once
  // Unread bytes and another write: filt_vfsread says yes again (data 6).
  f->readable = 6;
  Changed(7);
  ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 6);
  Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0));
  EXPECT_EQ(Watches(7), 0u);

  f->readable = 0;
  Call({Ch(KFilter::kRead, 7, kev::kAdd | kev::kOneshot)}, Poll(0));
  f->readable = 2;
  Changed(7);
  ev = Get();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].data, 2);
  EXPECT_EQ(Watches(7), 0u);  // delivered EV_ONESHOT: gone with its watch
}

// The fflag that makes READ on a regular file fire at its end: FreeBSD's
// NOTE_FILE_POLL fires always, as poll(2) answers for a file (filt_vfsread,
// freebsd/freebsd-src sys/kern/vfs_subr.c: `(kn_sfflags & NOTE_FILE_POLL)
// != 0 || kn_data != 0`); OpenBSD's NOTE_EOF fires at data 0 and reports
// NOTE_EOF in fflags (filt_ufsread, openbsd/src sys/ufs/ufs/ufs_vnops.c),
// which stays there until an EV_CLEAR delivery clears it (knote_submit, OB
// kern_event.c:1986-1991). DragonFly has no such flag: 0x2 is its
// NOTE_OOB, which a file's READ ignores.
TEST_F(RegularFileReadTest, TheFflagThatFiresAtTheEndPerKernel) {
  // One event of the knote on 7, with this data and these fflags.
  auto expect_one = [&](const KqueuePolicy& pol, int64_t data, uint32_t fflags) {
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, data);
    EXPECT_EQ(ev[0].fflags, fflags);
  };
  // FreeBSD NOTE_FILE_POLL: at the end, level, each scan.
  auto f = OpenRegular(7);
  Call({Ch(KFilter::kRead, 7, kev::kAdd, 0x2)}, Poll(0), FreebsdPolicy());
  expect_one(FreebsdPolicy(), 0, 0);
  expect_one(FreebsdPolicy(), 0, 0);
  f->readable = 3;
  expect_one(FreebsdPolicy(), 3, 0);
  Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), FreebsdPolicy());
  host_.Close(kP.pid, 7);

  // OpenBSD NOTE_EOF: at the end, with NOTE_EOF in fflags, which stays
  // after the file grows (level).
  f = OpenRegular(7);
  Call({Ch(KFilter::kRead, 7, kev::kAdd, 0x2)}, Poll(0), OpenbsdPolicy());
  expect_one(OpenbsdPolicy(), 0, 0x2);
  f->readable = 4;
  Changed(7);
  expect_one(OpenbsdPolicy(), 4, 0x2);  // kn_fflags |= NOTE_EOF, never cleared here
  Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), OpenbsdPolicy());
  // With EV_CLEAR the delivery clears it: the next report has bytes only.
  f->readable = 0;
  Call({Ch(KFilter::kRead, 7, kev::kAdd | kev::kClear, 0x2)}, Poll(0), OpenbsdPolicy());
  expect_one(OpenbsdPolicy(), 0, 0x2);
  f->readable = 2;
  Changed(7);
  expect_one(OpenbsdPolicy(), 2, 0);
  Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), OpenbsdPolicy());
  host_.Close(kP.pid, 7);

  // Nothing at the end: DragonFly with 0x2, the other two without it.
  const std::pair<KqueuePolicy, uint32_t> quiet[] = {
      {DragonflyPolicy(), 0x2}, {FreebsdPolicy(), 0}, {OpenbsdPolicy(), 0}};
  for (const auto& [pol, fflags] : quiet) {
    f = OpenRegular(7);
    Call({Ch(KFilter::kRead, 7, kev::kAdd, fflags)}, Poll(0), pol);
    EXPECT_TRUE(Get(8, pol).empty());
    Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), pol);
    host_.Close(kP.pid, 7);
  }
}

// EV_DISPATCH: delivered once, then disabled; an append while disabled
// posts nothing until EV_ENABLE, which measures it (OB kern_event.c:
// 1220-1227; FreeBSD and DragonFly queue it, ACTIVE). A knote added
// disabled (FreeBSD measures none at the add) is measured at EV_ENABLE and
// woken by appends from then on.
TEST_F(RegularFileReadTest, DispatchAndAddedDisabledFireAfterEnable) {
  for (const KqueuePolicy& pol : {FreebsdPolicy(), OpenbsdPolicy(), DragonflyPolicy()}) {
    auto f = OpenRegular(7);
    Call({Ch(KFilter::kRead, 7, kev::kAdd | kev::kDispatch)}, Poll(0), pol);
    f->readable = 1;
    Changed(7);
    ASSERT_EQ(Get(8, pol).size(), 1u);
    f->readable = 2;
    Changed(7);
    EXPECT_TRUE(Get(8, pol).empty());  // disabled by its delivery
    Call({Ch(KFilter::kRead, 7, kev::kEnable)}, Poll(0), pol);
    auto ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 2);
    Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), pol);

    f->readable = 0;
    Call({Ch(KFilter::kRead, 7, kev::kAdd | kev::kDisable)}, Poll(0), pol);
    Call({Ch(KFilter::kRead, 7, kev::kEnable)}, Poll(0), pol);
    EXPECT_TRUE(Get(8, pol).empty());
    f->readable = 4;
    Changed(7);
    ev = Get(8, pol);
    ASSERT_EQ(ev.size(), 1u);
    EXPECT_EQ(ev[0].data, 4);
    Call({Ch(KFilter::kRead, 7, kev::kDelete)}, Poll(0), pol);
    EXPECT_EQ(Watches(7), 0u);
    host_.Close(kP.pid, 7);
  }
}

TEST_F(RegularFileReadTest, TheWatchGoesWithTheDescriptorsClose) {
  OpenRegular(7);
  OpenRegular(8);
  Call({Ch(KFilter::kRead, 7, kev::kAdd), Ch(KFilter::kRead, 8, kev::kAdd)}, Poll(0));
  EXPECT_EQ(host_.vnodes.size(), 2u);
  engine_.FdClosing(kP.pid, 7);  // knote_fdclose
  EXPECT_EQ(Watches(7), 0u);
  EXPECT_EQ(Watches(8), 1u);
  // Closed behind the library's back (a raw close): dropped when met, here
  // by the file's next change.
  host_.Close(kP.pid, 8);
  Changed(8);
  EXPECT_EQ(host_.vnodes.size(), 0u);
  EXPECT_TRUE(Get().empty());
}

}  // namespace
}  // namespace evshim::emul
