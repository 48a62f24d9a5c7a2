#include "shim/supervisor/supervisor.h"
#include "shim/supervisor/termination.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "abi/common/call.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/portfs.h"
#include "abi/syscall_table.h"
#include "abi/trace/observer.h"
#include "shim/supervisor/filter.h"
#include "shim/supervisor/supervisor_calls.h"
#include "shim/supervisor/target_fds.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;

namespace {

// Tags for the main loop's epoll data; the host's sources use
// loop_tag (shim/runtime/host_events.h) and LinuxHost's bits.
constexpr uint64_t kTagListener = 1ULL << 56;
constexpr uint64_t kTagSignal = 2ULL << 56;
constexpr uint64_t kTagSweep = 4ULL << 56;
constexpr uint64_t kTagProcess = 5ULL << 56;
constexpr uint64_t kTagPathMounts = 10ULL << 56;  // the mount table changed (MOUNTEDOVER)
constexpr uint64_t kTagTerminate = 11ULL << 56;  // SIGTERM/SIGINT under `evshim run`
// How long the loop has to come back to a termination request before the
// supervisor exits without it (termination.h).
constexpr unsigned kTerminateGraceSeconds = 3;

// The foreign libraries number their LP64 portfs calls in the upper half of the
// opcode register (docs/abi.md "Call numbers"): bit 32 set = numbered, bits
// 32..62 the number, bit 63 = a probe (call_replay.h). The same for kevent,
// in the upper half of the kq register.
bool Numbered(const Notification& n, const abi::SyscallEntry* entry) {
  return entry != nullptr && (entry->call == abi::Call::kPortfs || entry->call == abi::Call::kKevent) &&
         n.arch == AUDIT_ARCH_X86_64 && ((n.args[0] >> 32) & 1) != 0;
}

}  // namespace

Supervisor::Supervisor(int listener, SupervisorOptions options)
    : listener_(listener), options_(options), parked_(options.max_parked_waits) {
  if (options_.notifier == nullptr) seccomp_ = std::make_unique<SeccompNotifier>(listener);
  notifier_ = options_.notifier != nullptr ? options_.notifier : seccomp_.get();
  answering_ = std::make_unique<Answering>(*this);
  if (options_.fault_sink == nullptr) own_faults_ = std::make_unique<Faults>(*this);
  faults_ = options_.fault_sink != nullptr ? options_.fault_sink : own_faults_.get();
  replay_ = std::make_unique<CallReplay>(*answering_, *faults_);
  // Each association holds an epoll fd: allow as many as the system lets us.
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  epoll_ = epoll_create1(EPOLL_CLOEXEC);
  program_ends_ = std::make_unique<target_fds::TargetEnds>([this](emul::Pid pid) { return PidfdOf(pid); });
  objects_ = std::make_unique<ObjectTable>(epoll_, loop_tag::kObject, *program_ends_, /*drain_at_once=*/false);
  host_ = std::make_unique<LinuxHost>(epoll_, [this](emul::Pid pid) { return PidfdOf(pid); });
  host_->set_readiness_table(objects_.get());
  host_->set_writable_callback([this](emul::ObjectId o, bool w) { objects_->OnWritable(o, w); });
  host_->set_exec_sink([this](emul::Pid pid) { execs_->Seen(pid); });
  host_->set_fault_sink([this](const Fault& f, emul::Pid pid) { faults_->OnFault(f, static_cast<pid_t>(pid)); });
  ports_ = std::make_unique<emul::EventPorts>(*host_, options_.port_limits);
  kqueues_ = std::make_unique<emul::Kqueues>(*host_, options_.kqueue_limits);
  engines_ = std::make_unique<emul::Engines>(*host_);
  engines_->Add(*ports_);
  engines_->Add(*kqueues_);
  execs_ = std::make_unique<ExecWatch>(*host_, *ports_);
  // kqueue PROC/VNODE sources (linux_host_kqueue.cc) feed the engine.
  host_->set_kqueue_sink(LinuxHost::KqueueSink{
      [this](emul::Pid pid, int64_t status) { kqueues_->OnProcessExit(pid, status); },
      [this](emul::Pid parent, emul::Pid child) { kqueues_->OnProcessFork(parent, child); },
      [this](emul::Pid pid) { kqueues_->OnProcessExec(pid); },
      [this](emul::WatchId id, uint32_t notes) { kqueues_->OnVnodeEvent(id, notes); },
      [this](emul::WatchId id, uint32_t changes) { kqueues_->OnMountEvent(id, changes); }});

  if (options_.sync_wakeup && !notifier_->EnableSyncWakeup()) options_.sync_wakeup = false;
  // The loop's own descriptors: without one of them the supervisor cannot
  // serve the tree at all; Run() then ends at once (docs/design.md
  // "Supervisor faults").
  auto add = [this](int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      faults_->OnFault(Fault{"epoll_ctl", errno, "adding the supervisor's descriptor " + std::to_string(fd)}, 0);
      cannot_serve_ = true;
    }
  };
  if (host_->setup_fault()) {
    faults_->OnFault(*host_->setup_fault(), 0);
    cannot_serve_ = true;
  }
  add(listener_, kTagListener, EPOLLIN);
  add(host_->deadline_fd(), loop_tag::kDeadline, EPOLLIN);
  // Event ports: PORT_SOURCE_FILE watches, and who still holds a port
  // (docs/design.md "Close and exec").
  host_->set_path_sink([this](emul::WatchId id, uint32_t bits) { ports_->OnFileEvent(id, bits); });
  host_->set_holds_callback([this](emul::Pid pid, emul::ObjectId obj) { return objects_->Holds(pid, obj); });
  host_->set_kqueue_at_callback([this](emul::Pid pid, int fd) -> std::optional<emul::ObjectId> {
    Result<emul::ObjectId> r = ResolveObject(static_cast<pid_t>(pid), fd, abi::ObjectKind::kKqueue);
    if (!r.ok()) return std::nullopt;
    return *r;
  });
  if (host_->path_inotify_fd() >= 0) add(host_->path_inotify_fd(), loop_tag::kPathWatch, EPOLLIN);
  if (host_->path_mounts_fd() >= 0) add(host_->path_mounts_fd(), kTagPathMounts, EPOLLPRI);
  router_ = std::make_unique<HostEventRouter>(*host_, *engines_, *objects_, HostEventRouter::Hooks{
      // An exec'd image's timers must not fire.
      .before_deadline = [this] { if (ports_->HasTimers()) execs_->Notice(0); },
      // A port or kqueue that becomes readable gets its byte at once.
      .after_watch_pass = [this] { objects_->ApplyReadiness(); return true; },
      .on_fault = [this](const Fault& f) { faults_->OnFault(f, 0); }});

  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGHUP);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGQUIT);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  if (options_.child > 0 && pipe2(terminate_pipe_, O_CLOEXEC | O_NONBLOCK) == 0) {
    // `evshim run`: termination requests are forwarded by a handler, not
    // read from the signalfd: they must work even if the loop is stuck.
    sigdelset(&mask, SIGTERM);
    sigdelset(&mask, SIGINT);
    add(terminate_pipe_[0], kTagTerminate, EPOLLIN);
    termination::Install(options_.child, terminate_pipe_[1], kTerminateGraceSeconds);
  }
  signal_fd_ = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
  add(signal_fd_, kTagSignal, EPOLLIN);

  // Parked calls abandoned by an EINTR are found by a periodic check.
  sweep_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  itimerspec its{};
  its.it_interval.tv_nsec = 200'000'000;
  its.it_value.tv_nsec = 200'000'000;
  timerfd_settime(sweep_fd_, 0, &its, nullptr);
  add(sweep_fd_, kTagSweep, EPOLLIN);
}

Supervisor::~Supervisor() {
  engines_.reset();
  ports_.reset();
  kqueues_.reset();
  host_.reset();
  for (auto& [pid, p] : processes_) close(p.pidfd);
  execs_.reset();
  objects_.reset();
  if (sweep_fd_ >= 0) close(sweep_fd_);
  if (signal_fd_ >= 0) close(signal_fd_);
  for (int fd : terminate_pipe_) {
    if (fd >= 0) close(fd);
  }
  if (epoll_ >= 0) close(epoll_);
  close(listener_);
}

bool Supervisor::Respond(pid_t tid, uint64_t id, int64_t value, int error) {
  FaultOr<Delivery> d = answering_->Respond(id, value, error);
  if (!d.ok()) {
    faults_->OnFault(d.fault(), tid);
    return false;
  }
  return *d == Delivery::kDelivered;  // kGone: interrupted or dead meanwhile, routine
}

void Supervisor::CancelWait(emul::WaitId wait) { engines_->CancelWait(wait); }

emul::Pid Supervisor::ProcessOf(pid_t tid) {
  auto it = tgid_of_.find(tid);
  if (it != tgid_of_.end()) return it->second;
  emul::Pid tgid = tid;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/status", tid);
  if (FILE* f = std::fopen(path, "re")) {
    char line[256];
    while (std::fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "Tgid:", 5) == 0) {
        tgid = static_cast<emul::Pid>(std::atoi(line + 5));
        break;
      }
    }
    std::fclose(f);
  }
  tgid_of_[tid] = tgid;
  PidfdOf(tgid);
  return tgid;
}

int Supervisor::PidfdOf(emul::Pid pid) {
  auto it = processes_.find(pid);
  if (it != processes_.end()) return it->second.pidfd;
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return -1;
  processes_[pid].pidfd = fd;
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagProcess | static_cast<uint32_t>(pid);
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    // Its exit would go unseen (waiters, associations and timers kept).
    faults_->OnFault(Fault{"epoll_ctl", errno, "watching the exit of process " + std::to_string(pid)}, pid);
  }
  return fd;
}

void Supervisor::ProcessGone(emul::Pid pid) {
  // Exit closes every descriptor: the process's associations, alerts and
  // owner-only events go, its waiters vanish (docs/rules-ports.md rule 35).
  objects_->ForgetProcess(pid);
  auto waits = parked_.TakeIf([this, pid](const ParkedCall& call) {
    auto t = tgid_of_.find(call.tid);
    return t != tgid_of_.end() && t->second == pid;
  });
  for (const auto& [wait, call] : waits) CancelWait(wait);
  engines_->ProcessExited(pid);
  execs_->Forget(pid);
  auto it = processes_.find(pid);
  if (it != processes_.end()) {
    close(it->second.pidfd);
    processes_.erase(it);
  }
  for (auto t = tgid_of_.begin(); t != tgid_of_.end();) {
    if (t->second == pid) {
      replay_->ForgetThread(t->first);
      t = tgid_of_.erase(t);
    } else {
      ++t;
    }
  }
}

Result<emul::ObjectId> Supervisor::ResolveObject(pid_t tid, int fd, abi::ObjectKind kind) {
  Result<uint64_t> inode = target_fds::SocketInode(tid, fd);
  if (!inode.ok()) return inode.error();
  std::optional<emul::ObjectId> obj = objects_->FindByInode(*inode);
  if (!obj || objects_->KindOf(*obj) != kind) return Errno{EBADFD};
  objects_->NoteHolder(*obj, ProcessOf(tid), fd);  // Holds looks there first
  return *obj;
}



void Supervisor::DrainIfNeeded(emul::ObjectId obj, pid_t tid, int fd) {
  objects_->ApplyReadiness();  // a parked call answered nothing yet
  objects_->DrainIfNeeded(obj, ProcessOf(tid), fd);
}

int Supervisor::InstallObject(pid_t tid, uint64_t id, abi::ObjectKind kind, emul::ObjectId obj,
                              bool* delivered, bool cloexec) {
  *delivered = false;
  Result<ObjectTable::Pair> pair = objects_->MakePair(kind);
  if (!pair.ok()) {
    engines_->LastClose(obj);
    const int err = pair.error().value;
    Respond(tid, id, 0, err == EMFILE || err == ENFILE ? ENOMEM : err);
    return -1;
  }
  const AdoptedReadiness adopted = PrepareAdoptedPort(kind, obj, pair->own, pair->program);
  FaultOr<AddFdResult> added =
      answering_->AddFd(AddFdRequest{id, pair->program, /*target_fd=*/-1, cloexec, /*answer_with_fd=*/true});
  close(pair->program);
  if (!added.ok() || added->fd < 0) {
    close(pair->own);
    engines_->LastClose(obj);
    if (!added.ok()) {
      faults_->OnFault(added.fault(), tid);
    } else if (added->error != ENOENT) {
      // EMFILE: the target's descriptor table is full (port.c:765-774).
      Respond(tid, id, 0, added->error == EBADF ? EMFILE : added->error);
    }
    return -1;
  }
  // Kernels before 5.14 add, then answer. If that answer is refused (the
  // call was interrupted) the target holds a descriptor it does not know of;
  // the socket's HUP cleans up when it exits.
  if (!added->answered) Respond(tid, id, added->fd, 0);
  RegisterObject(tid, kind, obj, pair->own, pair->inode);
  if (adopted.readable || adopted.full) objects_->MarkAdopted(obj, adopted.readable, adopted.full);
  *delivered = true;
  return added->fd;
}

// A port an engine handed over (PORT_EVSHIM_ADOPT; docs/design.md "Moving
// a port at fork") may arrive with events queued (POLLIN) or full (no
// POLLOUT, rule 3): its descriptor says so before the program has it.
Supervisor::AdoptedReadiness Supervisor::PrepareAdoptedPort(abi::ObjectKind kind, emul::ObjectId obj, int sup_end,
                                                            int target_end) {
  AdoptedReadiness r;
  if (kind != abi::ObjectKind::kPort) return r;
  if (ports_->QueuedCount(obj) > 0) {
    char byte = 1;
    r.readable = send(sup_end, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1;
  }
  if (!ports_->HasFreeSlot(obj)) {
    static const char kFiller[4096] = {};
    while (send(target_end, kFiller, sizeof kFiller, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
    }
    r.full = true;
  }
  return r;
}

void Supervisor::RegisterObject(pid_t tid, abi::ObjectKind kind, emul::ObjectId obj, int sup_end,
                                uint64_t inode) {
  if (std::optional<Fault> fault = objects_->Add(obj, kind, sup_end, inode)) faults_->OnFault(*fault, tid);
}

int Supervisor::ReplaceObjectDescriptors(uint64_t id, emul::Pid pid, abi::ObjectKind kind,
                                         emul::ObjectId from, emul::ObjectId to,
                                         std::optional<Fault>* fault) {
  std::optional<uint64_t> from_inode = objects_->InodeOf(from);
  if (!from_inode) {
    engines_->LastClose(to);  // the parent's descriptor is gone: nothing to stand in for
    return 0;
  }
  const uint64_t old_inode = *from_inode;
  // The child's descriptors of the parent's object (dup'd ones included).
  std::vector<std::pair<int, bool>> fds;  // number, close-on-exec
  for (int fd : target_fds::SocketFds(pid, old_inode, /*first_only=*/false)) {
    fds.emplace_back(fd, target_fds::CloseOnExec(pid, fd));
  }
  if (fds.empty()) {
    engines_->LastClose(to);
    return 0;
  }
  Result<ObjectTable::Pair> pair = objects_->MakePair(kind);
  if (!pair.ok()) {
    engines_->LastClose(to);
    const int err = pair.error().value;
    return err == EMFILE || err == ENFILE ? ENOMEM : err;
  }
  int err = 0;
  for (auto [fd, cloexec] : fds) {
    // At the inherited descriptor's number, replacing it like dup2.
    FaultOr<AddFdResult> added = answering_->AddFd(AddFdRequest{id, pair->program, fd, cloexec, false});
    if (!added.ok()) {
      if (!*fault) *fault = added.fault();  // the caller handles it instead of answering
    } else if (added->fd < 0 && err == 0) {
      err = added->error;
    }
  }
  close(pair->program);
  RegisterObject(pid, kind, to, pair->own, pair->inode);
  if (err != 0) return err == ENOENT ? EINTR : err;  // ENOENT: the call was interrupted
  // Copied pending events: the new descriptor polls readable as the old one did.
  if (kind == abi::ObjectKind::kKqueue && kqueues_->PendingCount(to) > 0) objects_->OnReadiness(to, true);
  return 0;
}

void Supervisor::HandleNotification(const Notification& n) {
  const abi::DataModel model = n.arch == AUDIT_ARCH_I386 ? abi::DataModel::kIlp32 : abi::DataModel::kLp64;
  const abi::SyscallEntry* entry = abi::FindSyscall(model, n.nr);
  const bool numbered = Numbered(n, entry);
  if (options_.observer != nullptr && !EngineHandOver(entry, n) && !LibraryProbe(n, numbered)) {
    TraceEnter(n, model, entry);  // trace
  }
  // A restart, re-issue or probe of the thread's previous call (call_replay.h).
  if (replay_->AnswerRepeat(n, numbered, parked_, [this](emul::WaitId w) { CancelWait(w); })) return;
  if (entry == nullptr) {
    Respond(n.tid, n.id, 0, ENOSYS);
    return;
  }
  const emul::Pid pid = ProcessOf(n.tid);
  CatchUpBeforeCall(pid);
  Context ctx(*this, n, pid, numbered);
  abi::Outcome out;
  if (entry->handler != nullptr) {
    out = entry->handler(ctx, abi::SyscallArgs(model, n.args));
  } else {
    ctx.NotImplemented(std::string(abi::PersonalityName(entry->personality)) + " " + std::string(entry->name));
    out = abi::Outcome::Error(ENOSYS);
  }
  // Before answering: a process that got a timer cannot exec unseen.
  if (ports_->HasTimers()) execs_->Watch(pid);
  if (std::optional<Fault> fault = ctx.fault()) {
    // Never the program's errno (docs/design.md "Supervisor faults").
    if (out.kind == abi::Outcome::Kind::kNewObject) engines_->LastClose(out.object);
    faults_->OnFault(*fault, n.tid);
    return;
  }
  switch (out.kind) {
    case abi::Outcome::Kind::kValue:
    case abi::Outcome::Kind::kError:
      // A call that died while its memory was read did nothing for the
      // program: a re-issue must run again, not replay.
      replay_->AnswerNow(n, numbered, out, /*remember=*/!ctx.call_died());
      break;
    case abi::Outcome::Kind::kNewObject: {
      bool delivered = false;
      InstallObject(n.tid, n.id, out.object_kind, out.object, &delivered, out.cloexec);
      break;
    }
    case abi::Outcome::Kind::kDeferred:
      if (options_.observer != nullptr) options_.observer->OnDeferred(n.id);  // trace
      break;
  }
  if (auto lo = ctx.last_object()) DrainIfNeeded(lo->first, n.tid, lo->second);
}

// What happened before a call is seen before it is handled.
void Supervisor::CatchUpBeforeCall(emul::Pid pid) {
  // File changes (inotify queues them synchronously): PORT_SOURCE_FILE stays causal.
  if (host_->path_watch_count() > 0) host_->ReadPathEvents();
  // Every watched descriptor that became ready: the kernels activate the
  // association or knote in the wake-up itself (port.c:158-163; DF
  // kern_event.c:1647-1660; OB kern_event.c:1731-1760).
  if (host_->watch_count() > 0) router_->CollectWatchReadiness();
  // An exec: the old image's timers go first.
  if (ports_->HasTimers()) execs_->Notice(pid);
  // Deadlines already due are served first: the kernels' timer callouts are
  // punctual, while a busy supervisor may not have read its timerfd yet, and a
  // retrieval must count every expiration so far (timer.c T:459-467, timer
  // knotes' data) and never beat a timeout that has passed.
  engines_->CatchUpDeadlines();
}

// An in-process engine handing a port over before fork (PORT_EVSHIM_ADOPT,
// docs/design.md "Moving a port at fork") is evshim's own work, not a call
// of the program: a trace shows the same lines in both modes.
bool Supervisor::EngineHandOver(const abi::SyscallEntry* entry, const Notification& n) {
  namespace il = abi::illumos;
  if (entry == nullptr || entry->call != abi::Call::kPortfs) return false;
  const uint32_t op = static_cast<uint32_t>(n.args[0]);
  return (op & il::PORT_SYS_NOPORT) != 0 && (op & il::PORT_CODE_MASK) == il::PORT_EVSHIM_ADOPT;
}

// The library's probe after an interrupted wait (docs/abi.md "Call
// numbers": did the answer get lost?) is evshim's own question, not a call
// of the program: its answer is the interrupted call's (already traced, or
// EINTR), so a trace shows the same lines in both modes.
bool Supervisor::LibraryProbe(const Notification& n, bool numbered) {
  return numbered && (n.args[0] & kProbeBit) != 0;
}

// trace: reports a call to the observer before anything answers it.
void Supervisor::TraceEnter(const Notification& n, abi::DataModel model, const abi::SyscallEntry* entry) {
  RemoteMemory memory(n.tid);
  abi::trace::CallStart call;
  call.id = n.id;
  call.caller = {ProcessOf(n.tid), static_cast<emul::Pid>(n.tid)};
  call.model = model;
  call.nr = n.nr;
  call.entry = entry;
  for (int i = 0; i < 6; ++i) call.raw[i] = n.args[i];
  call.ip = n.instruction_pointer;
  call.memory = &memory;
  options_.observer->OnEnter(call);
}

void Supervisor::SweepParked() {
  // Calls a signal interrupted: a kernel restart arriving after this sweep
  // is still answered EINTR.
  auto abandoned = parked_.TakeIf([this](const ParkedCall& call) { return !answering_->IdValid(call.notif_id); });
  for (const auto& [wait, call] : abandoned) {
    replay_->WaitAbandoned(call);
    CancelWait(wait);
  }
  SweepClosedPorts();
}

// Rule 27 (docs/design.md "Close and exec"): a thread waiting on a port
// descriptor that another thread closed fails with EBADF, as illumos's
// closeandsetf makes it; and if its process holds the port nowhere any more,
// the process loses its associations (docs/rules-ports.md rule 32).
void Supervisor::SweepClosedPorts() {
  std::vector<ParkedCalls::Named> closed;
  for (const ParkedCalls::Named& named : parked_.NamedObjects()) {
    if (objects_->KindOf(named.object) == abi::ObjectKind::kPort &&
        !objects_->IsAt(named.object, static_cast<emul::Pid>(named.tid), named.fd)) {
      closed.push_back(named);
    }
  }
  for (const ParkedCalls::Named& named : closed) {
    parked_.ForgetNamed(named.wait);
    ports_->AbortWait(named.wait, EBADF);
    emul::Pid pid = ProcessOf(named.tid);
    if (!objects_->Holds(pid, named.object)) ports_->CloseBy(named.object, pid);
  }
  // A PORT_DISPATCH waiting for a slot: associations whose descriptors were
  // closed since gave theirs back (port_close_fd); close() is not seen, so
  // look here too.
  std::set<emul::ObjectId> full_ports;
  for (const ParkedCalls::Named& named : parked_.NamedObjects()) {
    if (ports_->Exists(named.object) && ports_->DispatcherCount(named.object) > 0) full_ports.insert(named.object);
  }
  for (emul::ObjectId obj : full_ports) ports_->DropClosedFds(obj);
}

void Supervisor::ReapChildren() {
  int status = 0;
  pid_t pid;
  while ((pid = waitpid(-1, &status, WNOHANG | __WALL)) > 0) {
    if (pid == options_.child) {
      child_done_ = true;
      child_status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
  }
}

int Supervisor::Run() {
  if (cannot_serve_) return 70;  // EX_SOFTWARE: logged as a fault
  epoll_event events[64];
  const bool launcher = options_.child > 0;
  while (true) {
    // Between iterations: a termination request was forwarded by its
    // handler; the loop is alive, so the watchdog stops. The supervisor
    // then ends with the program, as for any other exit.
    if (int sig = termination::Acknowledge(); sig != 0) supervisor_log::Log("signal %d: passed on to the program", sig);
    if (launcher && child_done_ && listener_hup_) break;
    if (!launcher && listener_hup_) break;
    int n = epoll_wait(epoll_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      supervisor_log::Log("epoll_wait failed: %s", std::strerror(errno));
      break;
    }
    // MOUNTEDOVER stays causal without a check per call: mount(2) wakes the
    // mount table's pollers before it returns, so a mount made before a call
    // is in the same batch as that call's notification, or an earlier one.
    // Act on it before any call of the batch (the poll that reports it also
    // consumes it).
    for (int i = 0; i < n; ++i) {
      if ((events[i].data.u64 & loop_tag::kMask) == kTagPathMounts && host_->path_watch_count() > 0) {
        host_->OnMountsChanged();
      }
      // EVFILT_FS likewise: a mount table's change goes to its knotes
      // before the calls of the batch (routed here, not below).
      if (LinuxHost::IsMountTableEvent(events[i].data.u64)) {
        host_->OnHostEvent(events[i].data.u64);
        objects_->ApplyReadiness();
        events[i].data.u64 = 0;
      }
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data == 0) continue;  // routed above
      if (router_->Route(data)) {  // the host's sources, the objects' last closes
        objects_->ApplyReadiness();
        continue;
      }
      switch (data & loop_tag::kMask) {
        case kTagListener: {
          if (events[i].events & EPOLLIN) {
            FaultOr<std::optional<Notification>> received = answering_->Receive();
            if (!received.ok()) {
              faults_->OnFault(received.fault(), 0);
            } else if (*received) {
              HandleNotification(**received);
            }
          } else if (events[i].events & (EPOLLHUP | EPOLLERR)) {
            listener_hup_ = true;
            if (epoll_ctl(epoll_, EPOLL_CTL_DEL, listener_, nullptr) != 0) {
              faults_->OnFault(Fault{"epoll_ctl", errno, "removing the listener"}, 0);
            }
          }
          break;
        }
        case kTagPathMounts:  // handled before the batch
          break;
        case kTagTerminate: {
          char buf[64];
          while (read(terminate_pipe_[0], buf, sizeof buf) > 0) {
          }
          break;  // acknowledged at the top of the loop
        }
        case kTagSweep: {
          uint64_t ticks;
          while (read(sweep_fd_, &ticks, sizeof ticks) > 0) {
          }
          if (!parked_.empty()) SweepParked();
          break;
        }
        case kTagProcess: {
          emul::Pid pid = static_cast<emul::Pid>(data & 0xffffffffu);
          ProcessGone(pid);
          break;
        }
        case kTagSignal: {
          signalfd_siginfo si{};
          while (read(signal_fd_, &si, sizeof si) == sizeof si) {
            if (si.ssi_signo == SIGCHLD) {
              ReapChildren();
            } else if (launcher && si.ssi_code <= 0 && !child_done_) {
              // Sent to us by someone (kill): pass it on to the program. A
              // terminal's signal (SI_KERNEL) already reached the program.
              kill(options_.child, static_cast<int>(si.ssi_signo));
            }
          }
          break;
        }
        default:
          break;
      }
      objects_->ApplyReadiness();
    }
  }
  return launcher ? child_status_ : 0;
}

int InstallFilter() {
  std::vector<sock_filter> f = BuildFilter();
  sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return -errno;
  long fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  return fd < 0 ? -errno : static_cast<int>(fd);
}

}  // namespace evshim::shim
