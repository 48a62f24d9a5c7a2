// emul::Host on Linux, for the supervisor.
//
// Watching a target's file without keeping it open: the supervisor takes a
// duplicate with pidfd_getfd, registers it in a private epoll instance (one
// per watch) and closes the duplicate at once. The registration lives while
// any process has the file open and vanishes silently when the last holder
// closes it, so a socket's peer sees EOF exactly as without evshim.
// kcmp(KCMP_EPOLL_TFD) then tells whether a target's descriptor still is
// that file. Each armed watch's epoll fd sits (one-shot) in one collecting
// epoll, itself in the supervisor's main loop: epoll wake-ups are
// synchronous, so once a target's write() has returned, the collecting
// epoll already reports the watch, and TakeReadyWatches() called before a
// call sees every readiness that happened before it.
//
// Watches on the host's own process (the in-process engine) need none of
// that: the program's descriptor itself is registered (local_watches.h).
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include <unordered_map>

#include "shim/runtime/by_number.h"
#include "shim/runtime/fault.h"
#include "shim/runtime/local_watches.h"
#include "shim/runtime/slot_table.h"
#include "emul/host.h"

namespace evshim::shim {

class ObjectTable;

class LinuxHost final : public emul::Host {
 public:
  // `pidfd_of(pid)` returns a pidfd for a target process (owned by the caller).
  // `loop_epoll` is the supervisor's main epoll; the collecting epoll of the
  // watches is registered there with data.u64 = kWatchTag.
  LinuxHost(int loop_epoll, std::function<int(emul::Pid)> pidfd_of);
  ~LinuxHost() override;

  static constexpr uint64_t kWatchTag = 1ULL << 62;

  // The deadline timerfd; the loop calls the core's OnDeadline when it fires.
  int deadline_fd() const { return timer_fd_; }
  // The deadline the timer is armed at (CLOCK_MONOTONIC ns, kNever if
  // none): the engine's idle pump ends a nap there (Engine::Nap).
  emul::Nanos armed_deadline() const { return armed_deadline_.load(std::memory_order_relaxed); }
  // Reads the current readiness of a watch.
  uint32_t Readiness(emul::WatchId id);
  // Every armed watch whose file is ready now, with its readiness (each is
  // then disarmed: one-shot). A watch reported without readiness is re-armed.
  // Appended to `*ready`, whose capacity the caller keeps across calls (no
  // allocation per look).
  void TakeReadyWatches(std::vector<std::pair<emul::WatchId, uint32_t>>* ready);
  // Where the objects' readiness reports go (ObjectReadinessChanged): a
  // direct call, no std::function (two indirect calls less per report).
  void set_readiness_table(ObjectTable* table) { readiness_table_ = table; }
  void set_writable_callback(std::function<void(emul::ObjectId, bool)> cb) {
    writable_cb_ = std::move(cb);
  }
  // Supervisor faults met by the host (an epoll_ctl of our own that fails),
  // with the process whose call met it, or 0 (docs/design.md "Supervisor
  // faults"). One met while constructing is kept in setup_fault().
  void set_fault_sink(std::function<void(const Fault&, emul::Pid)> sink) { fault_sink_ = std::move(sink); }
  const std::optional<Fault>& setup_fault() const { return setup_fault_; }

  emul::Nanos Now() override;
  emul::Nanos RealtimeOffset() override;
  void SendTimerSignal(emul::Pid pid, int signo, uint64_t value, int timer_id) override;
  void ArmDeadline(emul::Nanos when) override;
  emul::Result<emul::WatchId> WatchFd(emul::Pid pid, int fd) override;
  emul::Result<uint32_t> ArmWatch(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override;
  emul::Result<uint32_t> ArmWatchMeasured(emul::WatchId id, emul::Pid pid, int fd, uint32_t events,
                                          uint32_t measured) override;
  emul::Result<uint32_t> ArmWatchReportedAtLook(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override;
  bool QuietSinceArm(emul::WatchId id) override { return IsLocal(id) && local_ && local_->QuietSinceArm(id); }
  emul::Result<uint32_t> ArmWatchIfFree(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override {
    (void)pid;
    if (IsLocal(id) && local_) return local_->Arm(id, fd, events, nullptr, LocalWatches::kIfFree);
    return events;
  }
  // The in-process engine's looks at its loop (LocalWatches::BeginLook).
  // A look that may make descriptors routes an exit left owed (the pidfd
  // stays readable until then) and opens the pidfds owed by NOTE_TRACK
  // watches the idle pump recorded (OpenOwedPidfds).
  uint64_t BeginLook() {
    if (may_create_) {
      exit_owed_ = false;
      if (pidfd_owed_) OpenOwedPidfds();
    }
    return local_ ? local_->BeginLook() : 0;
  }
  void EndLook(uint64_t look) {
    if (local_) local_->EndLook(look);
  }
  emul::Result<uint32_t> ArmWatchEdge(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override;
  void SettleWatchEdge(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) override;
  emul::Result<emul::FdProbe> ProbeFd(emul::Pid pid, int fd, emul::FdProbeNeeds needs,
                                       emul::FdKind known) override;
  emul::Result<emul::FdProbe> ProbeReadableAfterLook(emul::Pid pid, int fd, emul::FdKind known,
                                                     emul::WatchId watch) override;
  void DisarmWatch(emul::WatchId id) override;
  void DropWatch(emul::WatchId id) override;
  void ReleaseWatch(emul::WatchId id, emul::Pid pid, int fd, emul::FdKind kind) override;
  void ForgetFd(emul::Pid pid, int fd) override;
  // Inline in its own body, the local process's watch first (every
  // association's re-arm and every delivery asks): the other processes'
  // path, with its system call and its list, is out of line, so the usual
  // call saves no registers it does not use.
  bool SameFile(emul::Pid pid, int fd, emul::WatchId id) override {
    if (IsLocal(id)) [[likely]] {
      // A watch not registered yet can tell only that the number is open.
      return pid == local_pid_ && local_->SameFile(fd, id, local_stat_fd_ == fd && file_check_memo_);
    }
    return SameFileOfAnother(pid, fd, id);
  }
  bool FdOpen(emul::Pid pid, int fd) override;
  void ObjectReadinessChanged(emul::ObjectId obj, bool readable) override;
  void ObjectWritableChanged(emul::ObjectId obj, bool writable) override {
    if (writable_cb_) writable_cb_(obj, writable);
  }

  size_t watch_count() const { return watches_.size() + (local_ ? local_->size() : 0); }
  // The in-process engine (shim/inproc/): process `pid` is the host's own.
  // Its descriptors are watched as they are (LocalWatches: no duplicate, no
  // epoll per watch) and probed locally.
  void set_local_process(emul::Pid pid);
  // With a local process: the epoll its engine reads and waits on (the
  // watches' level registrations, the loop epoll nested: LocalWatches),
  // or -1 when there is none (then the loop epoll).
  int look_fd() const { return local_ ? local_->look_fd() : -1; }
  // Whether the last TakeReadyWatches saw the loop epoll report (nested in
  // the look epoll): its sources need a look. Always true without one.
  bool TakeLoopReport() { return !local_ || local_->look_fd() < 0 || local_->TakeLoopReport(); }
  // A source of the engine's read at each look in the look epoll itself
  // (LocalWatches::AddLookSource); false without a look epoll (then the
  // caller puts it in the loop epoll).
  bool AddLookSource(int fd) { return local_ && local_->AddLookSource(fd); }
  // Whether the last TakeReadyWatches saw that source report; cleared.
  bool TakeLookSourceReport() { return local_ && local_->TakeLookSourceReport(); }
  // The reports the looks have read so far (LocalWatches::reports_taken);
  // 0 for ever without local watches.
  uint64_t LookReportsTaken() const { return local_ ? local_->reports_taken() : 0; }
  // The local watches' switch-offs decided per call (LocalWatches), and the
  // end of a call or of a look made outside one.
  void set_switch_offs_per_call(bool on) {
    if (local_) local_->set_switch_offs_per_call(on);
  }
  void EndCall() {
    if (local_) local_->EndCall();
  }
  // Whether the thread that looks may make descriptors (the engine's idle
  // pump may not: LocalWatches::set_may_create). What it cannot do without
  // one is owed to the next look that may (OwedToACall): the look epoll's
  // renewal, the exit status of a watched process that is not this
  // process's child and that /proc alone can give (ProcessExited), and the
  // pidfd of a process NOTE_TRACK watches from a fork message the pump
  // read (WatchProcess, OpenOwedPidfds).
  void set_local_may_create(bool on) {
    may_create_ = on;
    if (local_) local_->set_may_create(on);
  }
  bool OwedToACall() const { return OwedKeepingTheLookReadable() || pidfd_owed_; }
  // The part of it that keeps the look epoll readable until a call does it
  // (the lingering registration, the exited process's pidfd): the idle
  // pump then looks once a millisecond instead of polling that epoll. An
  // owed pidfd does not (the connector, in the loop, still wakes a poll).
  bool OwedKeepingTheLookReadable() const { return (local_ && local_->renewal_owed()) || exit_owed_; }
  // LocalWatches::set_one_shot_associations, PlacementWithoutLook.
  void set_one_shot_associations(bool on) {
    if (local_) local_->set_one_shot_associations(on);
  }
  LocalWatches::Placement LocalPlacementWithoutLook(int fd) {
    if (!local_ || local_->look_fd() < 0) return LocalWatches::Placement::kByALook;
    return local_->PlacementWithoutLook(fd);
  }
  // The in-process engine runs one call at a time under its lock, and the
  // engines ask about the same descriptor more than once in a call (an
  // association's number is checked by DropClosedAt, then by FindAssoc):
  // the answers of SameFile are kept until ForgetFileChecks(), which the
  // engine calls whenever it takes or gives up its lock. One answer per
  // call is what a program can observe: a close racing a call is ordered
  // before or after it either way.
  void set_file_check_memo(bool on) {
    file_check_memo_ = on;
    file_checks_.clear();
    if (local_) local_->set_memo(on);
  }
  void ForgetFileChecks() {
    file_checks_.clear();
    local_stat_fd_ = -1;
    kept_confirmed_fd_ = -1;
    if (local_) local_->ForgetFileChecks();
  }
  // The host's own process's number `fd` alone (the in-process engine keeps
  // the other answers across calls while nothing was closed).
  void ForgetLocalFileCheck(int fd) {
    if (fd == local_stat_fd_) local_stat_fd_ = -1;
    if (fd == kept_confirmed_fd_) kept_confirmed_fd_ = -1;
    if (local_) local_->ForgetFileCheck(fd);
    // A watch the kcmp path answers (not a local one) on this process's
    // number: its answer goes too.
    if (!file_checks_.empty()) [[unlikely]] {  // in-process, almost always none
      std::erase_if(file_checks_, [&](const FileCheck& c) { return c.pid == local_pid_ && c.fd == fd; });
    }
  }
  // The host's own process's descriptor `fd` as fstat saw it (nullptr: not
  // open), kept with the identity answers while they are kept: a kqueue
  // change asks whether the number is open, whether it is a kqueue and what
  // kind of file it is, and its look whether it is still open, all of one
  // fstat. Only what an open file never changes is read from it (its type,
  // its inode); a regular file's size is asked anew.
  const struct stat* LocalStat(int fd);
  // Hears of each file registered for a watch (the in-process engine notes
  // watches on its own objects' descriptors: a port in a port).
  void set_register_callback(std::function<void(int)> cb) {
    register_cb_ = std::move(cb);
    if (local_) local_->set_register_callback(register_cb_);
  }

  // --- kqueue PROC and VNODE sources (linux_host_kqueue.cc) ---
  // Main-loop events with this bit set are the host's own: OnHostEvent.
  static constexpr uint64_t kHostTag = 1ULL << 61;
  void OnHostEvent(uint64_t data);
  // Where process and file events go (the supervisor's kqueue engine).
  struct KqueueSink {
    std::function<void(emul::Pid, int64_t)> exit;   // pid, wait status
    std::function<void(emul::Pid, emul::Pid)> fork;  // parent, child
    std::function<void(emul::Pid)> exec;
    std::function<void(emul::WatchId, uint32_t)> vnode;  // canonical NOTE_* bits
    std::function<void(emul::WatchId, uint32_t)> mounts;  // emul::mount_bits (EVFILT_FS)
  };
  void set_kqueue_sink(KqueueSink sink) { kqueue_sink_ = std::move(sink); }
  emul::Result<ProcessState> WatchProcess(emul::Pid pid, bool fork_exec, bool was_forked) override;
  void UnwatchProcess(emul::Pid pid) override;
  emul::Result<emul::WatchId> WatchVnode(emul::Pid pid, int fd, bool use_events) override;
  void WatchVnodeUse(emul::WatchId id) override;
  bool SameVnode(emul::Pid pid, int fd, emul::WatchId id) override;
  void DropVnode(emul::WatchId id) override;
  // kqueue FS: the mount table of `pid`'s mount namespace, read from
  // /proc/PID/mountinfo, one reader per namespace for all its watches.
  emul::Result<emul::WatchId> WatchMounts(emul::Pid pid) override;
  void DropMounts(emul::WatchId id) override;
  // Reads every watched mount table again and reports the changes. A loop
  // whose epoll is nested in another (the in-process engine's) calls it at
  // each report of its loop: the outer epoll's check of the nested one
  // polls the mountinfo descriptor, which takes the change it shows
  // (mounts_poll), so the inner epoll never reports it.
  void CheckMountTables();
  size_t mount_watch_count() const { return mount_watches_.size(); }
  // Whether loop event `data` is a mount table's (the supervisor handles
  // them before the calls of its batch: a mount made before a call is seen
  // by it).
  static bool IsMountTableEvent(uint64_t data);
  // Whether the netlink process connector is in use (for tests and logs).
  bool proc_connector() const { return connector_state_ > 0; }
  // Event ports' timers die at exec: every exec the connector reports (of
  // any process) goes to `sink`. ListenForExecs starts the connector if it
  // can (false: unavailable); ReadExecs reads what it has queued, so an exec
  // that happened before now is reported now.
  void set_exec_sink(std::function<void(emul::Pid)> sink) { exec_sink_ = std::move(sink); }
  bool ListenForExecs() { return EnsureConnector(); }
  void ReadExecs() {
    if (connector_fd_ >= 0) ReadConnector();
  }

  // --- illumos PORT_SOURCE_FILE watches and lazy close detection
  // (linux_host_ports.cc; docs/design.md "Close and exec") ---
  // The inotify descriptor of file watches (created on first use); the
  // supervisor polls it and calls ReadPathEvents when it is readable.
  int path_inotify_fd();
  // Made by the first file watch, not ahead of need: once made it joins
  // the loop epoll with data `tag` (the in-process engine: a program's
  // descriptors are its own budget, libevent's test-fdleak runs at
  // RLIMIT_NOFILE 20). 0 (the default): the caller adds it.
  void set_path_inotify_loop_tag(uint64_t tag) { path_inotify_loop_tag_ = tag; }
  void ReadPathEvents();
  // /proc/self/mountinfo, which polls POLLPRI when the mount table changes
  // (MOUNTEDOVER); the supervisor polls it and calls OnMountsChanged.
  int path_mounts_fd();
  void OnMountsChanged();
  // Where file events go (EventPorts::OnFileEvent), as illumos FILE_* bits.
  void set_path_sink(std::function<void(emul::WatchId, uint32_t)> sink) { path_sink_ = std::move(sink); }
  // Answers HoldsObject (the supervisor knows the objects' descriptors).
  void set_holds_callback(std::function<bool(emul::Pid, emul::ObjectId)> cb) { holds_cb_ = std::move(cb); }
  // Hears of each process watch begun (WatchProcess): the in-process
  // engine starts its idle pump, which takes an exit status while the
  // program makes no call, before the program may reap the process.
  void set_process_watch_callback(std::function<void()> cb) { process_watch_cb_ = std::move(cb); }
  emul::Result<emul::PathWatch> WatchPath(emul::Pid pid, const std::string& path, bool nofollow) override;
  void DropPathWatch(emul::WatchId id) override;
  bool HoldsObject(emul::Pid pid, emul::ObjectId obj) override {
    return holds_cb_ ? holds_cb_(pid, obj) : true;
  }
  // Answers KqueueAt (the supervisor knows which sockets are kqueues).
  void set_kqueue_at_callback(std::function<std::optional<emul::ObjectId>(emul::Pid, int)> cb) {
    kqueue_at_cb_ = std::move(cb);
  }
  std::optional<emul::ObjectId> KqueueAt(emul::Pid pid, int fd) override {
    // A kqueue's descriptor is an object's, a socket (ObjectTable::
    // MakePair): a number of this process that the call's kept fstat
    // (LocalStat, a kept watch's confirmation) shows not to be a socket is
    // none. The in-process engine's callback answers so from that same
    // fstat; this spares its indirect call for every fd knote's attach.
    if (pid == local_pid_ && fd == local_stat_fd_ && file_check_memo_ && !S_ISSOCK(local_stat_.st_mode)) {
      return std::nullopt;
    }
    return kqueue_at_cb_ ? kqueue_at_cb_(pid, fd) : std::nullopt;
  }
  size_t path_watch_count() const { return path_watches_.size(); }

 private:
  struct Watch {  // 20 bytes, 24 in its table slot (docs/design.md "Memory per watch")
    int epfd = -1;       // private epoll holding the target's file
    int tfd = -1;        // the descriptor number it was registered under
    uint32_t mask = 0;   // registered poll bits
    bool registered = false;  // the file is registered in epfd
    bool in_loop = false;     // epfd is in the collecting epoll (collect_epoll_)
    bool pollless = false;    // a file epoll refuses (regular file): always ready
    bool edge = false;        // registered EPOLLET (kqueue EV_CLEAR)
  };
  emul::Result<void> Register(Watch& w, emul::Pid pid, int fd, uint32_t mask, bool edge = false);
  emul::Result<uint32_t> Arm(emul::WatchId id, emul::Pid pid, int fd, uint32_t events, bool edge);
  // A duplicate of process `pid`'s descriptor `fd` (-1 and errno).
  int DupTargetFd(emul::Pid pid, int fd);
  emul::Pid local_pid_ = -1;
  // Watches of the local process; their ids carry kLocalWatch.
  static constexpr emul::WatchId kLocalWatch = 1ULL << 47;
  static bool IsLocal(emul::WatchId id) { return (id & kLocalWatch) != 0; }
  // SameFile of a watch of another process (the supervisor's): kcmp.
  __attribute__((noinline)) bool SameFileOfAnother(emul::Pid pid, int fd, emul::WatchId id);
  std::unique_ptr<LocalWatches> local_;
  struct FileCheck {
    emul::Pid pid;
    int fd;
    emul::WatchId watch;
    bool same;
  };
  bool file_check_memo_ = false;
  int local_stat_fd_ = -1;  // LocalStat's number (-1: none kept)
  // Only st_mode, st_ino and st_dev are read from it (ConfirmKept sets no
  // other field).
  struct stat local_stat_ {};
  static constexpr size_t kMaxFileChecks = 32;  // bounded: a full memo starts again
  std::vector<FileCheck> file_checks_;
  // The host's own process: a level READ knote's watch kept after its
  // knote went (ReleaseWatch), one per number, for the number's next
  // knote (docs/kqueue.md "What a kevent costs"). What the number's fstat
  // said of the file is kept with it (LocalStat's answer once the file is
  // confirmed). Kept as it is the first time (no call); kept with its
  // level registration on from its second knote (LocalWatches::Keep), so
  // that registration confirms the number (one EPOLL_CTL_MOD, no fstat)
  // and the call's look reports the file (no poll).
  struct KeptWatch {
    emul::WatchId id = 0;
    uint64_t dev = 0, ino = 0;
    uint32_t mode = 0;
    emul::FdKind kind = emul::FdKind::kUnknown;
    bool parked = false;      // no knote uses it
    bool registered = false;  // its registration is kept on
  };
  enum class Kept : uint8_t { kNone, kConfirmed, kClosed };
  // A parked watch of number `fd` still names its file (kConfirmed: then
  // LocalStat answers for it), or the number is closed; otherwise the
  // watch is dropped (kNone: the caller looks itself).
  Kept ConfirmKept(int fd);
  // The watch kept for number `fd`, taken by a new knote, when this call
  // confirmed it (ConfirmKept's kConfirmed, kept_confirmed_fd_); 0 if not.
  emul::WatchId UnparkConfirmedKept(int fd);
  // KeptWatch by number: asked several times per kevent, so the usual
  // small numbers are an index (shim/runtime/by_number.h: no hashing, a
  // chunk of 64 numbers allocated by its first watch kept); larger ones a
  // map.
  class KeptWatches {
   public:
    KeptWatch* Find(int fd) { return kept_.Find(fd); }
    void Put(int fd, const KeptWatch& k) { kept_.Put(fd, k); }  // k.id != 0
    void Erase(int fd) { kept_.Erase(fd); }
    bool empty() const { return kept_.empty(); }

   private:
    ByNumber<KeptWatch, 1 << 14> kept_;
  };
  KeptWatches kept_;
  int kept_confirmed_fd_ = -1;  // ConfirmKept's kConfirmed, kept with the identity answers
  std::function<void(int)> register_cb_;
  void RearmInLoop(emul::WatchId id);

  // kqueue PROC: one entry per watched process, shared by its knotes.
  struct ProcWatch {
    int refs = 0;
    int pidfd = -1;          // polls readable once the process has exited
    // /proc/PID/stat of a process that is not the local process's child,
    // held open without the connector (fast mode): the idle pump reads a
    // zombie's status from it (pread, no descriptor made). Bound to that
    // process: once it is reaped the read fails (ESRCH), a recycled pid
    // is never read.
    int stat_fd = -1;
    // Recorded by a look that may make no descriptor (the idle pump
    // routing a fork message for NOTE_TRACK): no pidfd yet, the next look
    // that may opens it (OpenOwedPidfds).
    bool pidfd_owed = false;
    bool exited = false;     // the pidfd fired, or the process is a zombie or gone
    bool reported = false;   // the exit went to the sink
    bool has_status = false;
    int64_t status = 0;      // wait status, from the connector or /proc
  };
  bool EnsureConnector();
  void ReadConnector();
  void ProcessExited(emul::Pid pid);
  void ReportExit(emul::Pid pid);
  void OpenOwedPidfds();
  void AddPidfdToLoop(emul::Pid pid, int pidfd);
  void CloseProcFds(ProcWatch& w);
  std::unordered_map<emul::Pid, ProcWatch> proc_watches_;
  int connector_fd_ = -1;
  int connector_state_ = 0;  // 0 not tried, 1 listening, -1 unavailable
  bool may_create_ = true;   // set_local_may_create
  bool exit_owed_ = false;   // an exit left to a look that may make descriptors (OwedToACall)
  bool pidfd_owed_ = false;  // a ProcWatch's pidfd_owed (OwedToACall)
  // kqueue VNODE: inotify watches on the file a target's descriptor names.
  struct VnodeWatch {
    emul::Pid pid = 0;
    int fd = -1;
    int wd = -1;
    uint64_t dev = 0, ino = 0, nlink = 0;
    int64_t size = 0;
    bool dir = false;
    bool deleted = false;  // NOTE_DELETE already reported
    // A directory: its parent is watched too, because Linux says nothing to
    // an open directory that is removed (IN_DELETE_SELF waits for the last
    // close); the parent hears IN_DELETE with this name.
    int parent_wd = -1;
    std::string name;
  };
  void ReadInotify();
  // kqueue FS: a line of a mount table (ReadMountTable).
  struct MountLine {
    uint64_t id;        // the mount ID
    uint64_t identity;  // hash of its parent, device, root and mount point
    uint64_t whole;     // hash of the whole line
  };
  // One per watched mount namespace.
  struct MountTable {
    uint32_t tag = 0;  // its loop tag's low word
    uint64_t ns = 0;   // the namespace (/proc/PID/ns/mnt's inode)
    int fd = -1;       // /proc/PID/mountinfo of a process in it: polls POLLPRI at a change
    // What the last read saw, by ID.
    std::vector<MountLine> mounts;
    std::vector<emul::WatchId> watches;
  };
  bool ReadMountTable(int fd, std::vector<MountLine>* out);
  void CheckMountTable(MountTable& t);
  std::vector<MountTable> mount_tables_;
  std::unordered_map<emul::WatchId, uint64_t> mount_watches_;  // watch -> namespace
  uint32_t next_mount_tag_ = 1;
  int inotify_fd_ = -1;
  std::unordered_map<emul::WatchId, VnodeWatch> vnodes_;
  KqueueSink kqueue_sink_;
  std::function<void(emul::Pid)> exec_sink_;

  // PORT_SOURCE_FILE: an inotify watch on the file (and one on the directory
  // it was found in, for its name's removal and renames), shared by every
  // watch on the same inode.
  struct PathWatchState {
    int wd = -1;          // the file
    int dir_wd = -1;      // its directory (-1: none, e.g. another file system)
    std::string path;     // where it was found (our view), to stat it again
    std::string name;     // its name in that directory
    uint64_t dev = 0, ino = 0;
    uint64_t mnt_id = 0;  // the mount the file was found on (0: unknown)
    int64_t size = 0;
    emul::FileStamp atime, mtime;
  };
  uint32_t TranslatePathEvent(PathWatchState& w, int wd, uint32_t mask, const char* name);
  void ReleaseWd(int wd, emul::WatchId id);
  int path_inotify_fd_ = -1;
  uint64_t path_inotify_loop_tag_ = 0;  // set_path_inotify_loop_tag
  int path_mounts_fd_ = -1;
  std::unordered_map<emul::WatchId, PathWatchState> path_watches_;
  std::unordered_map<int, std::vector<emul::WatchId>> path_by_wd_;
  std::function<void(emul::WatchId, uint32_t)> path_sink_;
  std::function<bool(emul::Pid, emul::ObjectId)> holds_cb_;
  std::function<void()> process_watch_cb_;  // set_process_watch_callback
  std::function<std::optional<emul::ObjectId>(emul::Pid, int)> kqueue_at_cb_;

  int loop_epoll_;
  emul::Pid self_pid_;  // where the watches' epolls live (kcmp)
  int collect_epoll_ = -1;  // armed watches' epoll fds, one-shot; in the main loop
  int timer_fd_;
  std::function<int(emul::Pid)> pidfd_of_;
  ObjectTable* readiness_table_ = nullptr;
  std::function<void(emul::ObjectId, bool)> writable_cb_;
  std::function<void(const Fault&, emul::Pid)> fault_sink_;
  std::optional<Fault> setup_fault_;
  // Makes collect_epoll_ and adds it to the loop; false (errno) on a failure.
  bool MakeCollectEpoll();
  // Reports the failed host call `operation` (errno) while doing `detail`.
  void HostFault(const char* operation, std::string detail, emul::Pid pid);
  // The supervised watches, by id (the id names the record's slot:
  // slot_table.h); their ids carry kSlotWatch.
  static constexpr emul::WatchId kSlotWatch = 1ULL << 46;
  SlotTable<Watch> watches_;
  // Ids of the other watches (VNODE, PORT_SOURCE_FILE): counted, below kSlotWatch.
  emul::WatchId next_watch_ = 1;
  // Written under the caller's lock (ArmDeadline); the engine's idle pump
  // reads it without one (armed_deadline()).
  std::atomic<emul::Nanos> armed_deadline_{kNever};
};

}  // namespace evshim::shim
