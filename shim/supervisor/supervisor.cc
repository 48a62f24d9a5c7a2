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
#include "abi/illumos/portfs.h"
#include "abi/syscall_table.h"
#include "abi/trace/observer.h"
#include "shim/supervisor/filter.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;

namespace {

// Tags for the main loop's epoll data (watches use LinuxHost::kWatchTag).
constexpr uint64_t kTagListener = 1ULL << 56;
constexpr uint64_t kTagSignal = 2ULL << 56;
constexpr uint64_t kTagDeadline = 3ULL << 56;
constexpr uint64_t kTagSweep = 4ULL << 56;
constexpr uint64_t kTagProcess = 5ULL << 56;
constexpr uint64_t kTagPort = 6ULL << 56;
constexpr uint64_t kTagMask = 0xffULL << 56;
constexpr uint64_t kTagPathWatch = 9ULL << 56;  // PORT_SOURCE_FILE inotify (linux_host_ports.cc)
constexpr uint64_t kTagPathMounts = 10ULL << 56;  // the mount table changed (MOUNTEDOVER)
constexpr uint64_t kTagTerminate = 11ULL << 56;  // SIGTERM/SIGINT under `evshim run`
// How long the loop has to come back to a termination request before the
// supervisor exits without it (termination.h).
constexpr unsigned kTerminateGraceSeconds = 3;

void Log(const char* fmt, auto... args) {
  std::fprintf(stderr, "evshim: ");
  std::fprintf(stderr, fmt, args...);
  std::fputc('\n', stderr);
}

// The foreign libraries number their LP64 portfs calls in the upper half of the
// opcode register (docs/abi.md "Call numbers"): bit 32 set = numbered, bits
// 32..62 the number, bit 63 = a probe (call_replay.h). The same for kevent,
// in the upper half of the kq register.
bool Numbered(const Notification& n, const abi::SyscallEntry* entry) {
  return entry != nullptr && (entry->call == abi::Call::kPortfs || entry->call == abi::Call::kKevent) &&
         n.arch == AUDIT_ARCH_X86_64 && ((n.args[0] >> 32) & 1) != 0;
}

}  // namespace

// The listener as the supervisor's parts use it: readiness is applied
// before every answer (docs/design.md "Emulated objects"), and `evshim trace`
// hears of every answer.
class Supervisor::Answering final : public Notifier {
 public:
  explicit Answering(Supervisor& sup) : sup_(sup) {}
  FaultOr<std::optional<Notification>> Receive() override { return sup_.notifier_->Receive(); }
  FaultOr<Delivery> Respond(uint64_t id, int64_t value, int error) override {
    sup_.ApplyReadiness();
    FaultOr<Delivery> d = sup_.notifier_->Respond(id, value, error);
    if (sup_.options_.observer != nullptr) {  // trace
      sup_.options_.observer->OnExit(id, value, error, d.ok() && *d == Delivery::kDelivered);
    }
    return d;
  }
  FaultOr<Delivery> Continue(uint64_t id) override {
    sup_.ApplyReadiness();
    return sup_.notifier_->Continue(id);
  }
  FaultOr<AddFdResult> AddFd(const AddFdRequest& request) override {
    if (request.answer_with_fd) sup_.ApplyReadiness();  // ADDFD_FLAG_SEND answers the call
    FaultOr<AddFdResult> r = sup_.notifier_->AddFd(request);
    if (r.ok() && r->answered && sup_.options_.observer != nullptr) {
      sup_.options_.observer->OnExit(request.id, r->fd, 0, true);  // trace
    }
    return r;
  }
  bool IdValid(uint64_t id) override { return sup_.notifier_->IdValid(id); }
  bool EnableSyncWakeup() override { return sup_.notifier_->EnableSyncWakeup(); }

 private:
  Supervisor& sup_;
};

// A fault is logged with its cause, and the process whose call met it is
// killed: evshim can no longer serve it truthfully (docs/design.md
// "Supervisor faults").
class Supervisor::Faults final : public FaultSink {
 public:
  explicit Faults(Supervisor& sup) : sup_(sup) {}
  void OnFault(const Fault& fault, pid_t tid) override {
    if (tid <= 0) {
      // Outside any call a fault can repeat at every loop event: logged once.
      std::string text = fault.Describe();
      if (logged_.insert(text).second) Log("supervisor fault: %s (logged once)", text.c_str());
      return;
    }
    auto t = sup_.tgid_of_.find(tid);
    const pid_t pid = t != sup_.tgid_of_.end() ? static_cast<pid_t>(t->second) : tid;
    Log("supervisor fault serving process %d: %s; the process is killed, evshim cannot serve it "
        "correctly (docs/design.md \"Supervisor faults\")",
        pid, fault.Describe().c_str());
    kill(pid, SIGKILL);
  }

 private:
  Supervisor& sup_;
  std::set<std::string> logged_;
};

// Answers one notification, now or later. Shared by the handler and any
// completion that outlives it.
class Supervisor::NotifResponder final : public abi::Responder {
 public:
  NotifResponder(Supervisor& sup, const Notification& n, bool numbered)
      : sup_(sup), id_(n.id), tid_(n.tid), call_(RegistersOf(n)), numbered_(numbered) {}
  bool StillPending() override {
    if (answered_) return false;
    return sup_.answering_->IdValid(id_);
  }
  bool Respond(const abi::Outcome& out) override {
    if (answered_) return false;
    answered_ = true;
    sup_.parked_.Answered(tid_, id_);
    switch (out.kind) {
      case abi::Outcome::Kind::kValue:
      case abi::Outcome::Kind::kError:
        return sup_.replay_->AnswerParked(tid_, id_, call_, numbered_, out);
      case abi::Outcome::Kind::kNewObject: {
        bool delivered = false;
        sup_.InstallObject(tid_, id_, out.object_kind, out.object, &delivered, out.cloexec);
        return delivered;
      }
      case abi::Outcome::Kind::kDeferred:
        break;
    }
    return false;
  }
  // The completion met a supervisor fault: not answered (its events go back),
  // the fault is handled instead.
  bool Fail(const Fault& fault) {
    if (answered_) return false;
    answered_ = true;
    sup_.parked_.Answered(tid_, id_);
    sup_.faults_->OnFault(fault, tid_);
    return false;
  }

 private:
  Supervisor& sup_;
  uint64_t id_;
  pid_t tid_;
  CallRegisters call_;
  bool numbered_;
  bool answered_ = false;
};

class Supervisor::Context final : public abi::CallContext {
 public:
  Context(Supervisor& sup, const Notification& n, emul::Pid pid, bool numbered)
      : sup_(sup), n_(n), caller_{pid, static_cast<emul::Pid>(n.tid)},
        memory_(std::make_shared<RemoteMemory>(n.tid, sup.answering_.get(), n.id, sup.options_.observer,
                                               sup.options_.memory_transfer)),
        numbered_(numbered) {}
  bool call_died() const { return memory_->died(); }
  // A supervisor fault met while serving the call (its memory, ADDFD).
  std::optional<Fault> fault() const { return fault_ ? fault_ : memory_->fault(); }

  emul::Caller caller() const override { return caller_; }
  abi::GuestMemory& memory() override { return *memory_; }
  Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    Result<emul::ObjectId> r = sup_.ResolveObject(n_.tid, fd, kind);
    // kqueues are not inherited by fork: another process's kqueue is a
    // closed descriptor to this one (docs/rules-bsd.md §4.6). A
    // KQUEUE_CPONFORK child has its own copy at that number instead.
    if (r.ok() && kind == abi::ObjectKind::kKqueue && sup_.kqueues_->Owner(*r) != caller_.pid) {
      return Errno{EBADF};
    }
    if (r.ok()) last_object_ = {*r, fd};
    return r;
  }
  emul::EventPorts& ports() override { return *sup_.ports_; }
  emul::Kqueues* kqueues() override { return sup_.kqueues_.get(); }
  std::shared_ptr<abi::Responder> Defer() override {
    deferred_ = std::make_shared<DeferredResponder>(std::make_shared<NotifResponder>(sup_, n_, numbered_),
                                                    memory_);
    return deferred_;
  }
  void Parked(emul::WaitId id) override {
    if (sup_.parked_.full()) {
      // Too many waiting threads in the tree (--max-waits): this one fails
      // with ENOMEM instead of growing the supervisor without bound.
      sup_.CancelWait(id);
      if (deferred_) deferred_->Respond(abi::Outcome::Error(ENOMEM));
      return;
    }
    // last_object_: the port it waits on (docs/rules-ports.md rule 27: SweepClosedPorts).
    std::optional<emul::WaitId> displaced = sup_.parked_.Park(id, ParkedCall{n_.tid, n_.id, RegistersOf(n_), last_object_});
    if (displaced) sup_.CancelWait(*displaced);
  }
  int ReplaceObject(abi::ObjectKind kind, emul::ObjectId from, emul::ObjectId to) override {
    return sup_.ReplaceObjectDescriptors(n_.id, caller_.pid, kind, from, to, &fault_);
  }
  void NotImplemented(std::string_view what) override {
    std::string key(what);
    if (sup_.reported_.insert(key).second) {
      Log("%.*s is not implemented yet (answered ENOSYS/ENOTSUP); see docs/abi.md",
          static_cast<int>(what.size()), what.data());
    }
  }
  std::optional<std::pair<emul::ObjectId, int>> last_object() const { return last_object_; }

 private:
  // Keeps the target memory object alive as long as a completion may use it,
  // and turns a fault met there into a fault, not an answer.
  class DeferredResponder final : public abi::Responder {
   public:
    DeferredResponder(std::shared_ptr<NotifResponder> inner, std::shared_ptr<RemoteMemory> mem)
        : inner_(std::move(inner)), mem_(std::move(mem)) {}
    bool StillPending() override { return inner_->StillPending(); }
    bool Respond(const abi::Outcome& out) override {
      if (mem_->fault()) return inner_->Fail(*mem_->fault());
      return inner_->Respond(out);
    }

   private:
    std::shared_ptr<NotifResponder> inner_;
    std::shared_ptr<RemoteMemory> mem_;
  };

  Supervisor& sup_;
  const Notification& n_;
  emul::Caller caller_;
  std::shared_ptr<RemoteMemory> memory_;
  std::shared_ptr<abi::Responder> deferred_;
  bool numbered_;
  std::optional<std::pair<emul::ObjectId, int>> last_object_;
  std::optional<Fault> fault_;
};

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
  host_ = std::make_unique<LinuxHost>(epoll_, [this](emul::Pid pid) { return PidfdOf(pid); });
  host_->set_readiness_callback([this](emul::ObjectId o, bool r) { OnObjectReadiness(o, r); });
  host_->set_writable_callback([this](emul::ObjectId o, bool w) { OnObjectWritable(o, w); });
  host_->set_exec_sink([this](emul::Pid pid) { ExecSeen(pid); });
  host_->set_fault_sink([this](const Fault& f, emul::Pid pid) { faults_->OnFault(f, static_cast<pid_t>(pid)); });
  ports_ = std::make_unique<emul::EventPorts>(*host_, options_.port_limits);
  kqueue_host_ = std::make_unique<DeadlineSlotHost>(*host_, 1);
  kqueues_ = std::make_unique<emul::Kqueues>(*kqueue_host_, options_.kqueue_limits);
  // kqueue PROC/VNODE sources (linux_host_kqueue.cc) feed the engine.
  host_->set_kqueue_sink(LinuxHost::KqueueSink{
      [this](emul::Pid pid, int64_t status) { kqueues_->OnProcessExit(pid, status); },
      [this](emul::Pid parent, emul::Pid child) { kqueues_->OnProcessFork(parent, child); },
      [this](emul::Pid pid) { kqueues_->OnProcessExec(pid); },
      [this](emul::WatchId id, uint32_t notes) { kqueues_->OnVnodeEvent(id, notes); }});

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
  add(host_->deadline_fd(), kTagDeadline, EPOLLIN);
  // Event ports: PORT_SOURCE_FILE watches, and who still holds a port
  // (docs/design.md "Close and exec").
  host_->set_path_sink([this](emul::WatchId id, uint32_t bits) { ports_->OnFileEvent(id, bits); });
  host_->set_holds_callback([this](emul::Pid pid, emul::ObjectId obj) { return HoldsObject(pid, obj); });
  host_->set_kqueue_at_callback([this](emul::Pid pid, int fd) -> std::optional<emul::ObjectId> {
    Result<emul::ObjectId> r = ResolveObject(static_cast<pid_t>(pid), fd, abi::ObjectKind::kKqueue);
    if (!r.ok()) return std::nullopt;
    return *r;
  });
  if (host_->path_inotify_fd() >= 0) add(host_->path_inotify_fd(), kTagPathWatch, EPOLLIN);
  if (host_->path_mounts_fd() >= 0) add(host_->path_mounts_fd(), kTagPathMounts, EPOLLPRI);

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
  ports_.reset();
  kqueues_.reset();
  host_.reset();
  for (auto& [pid, p] : processes_) close(p.pidfd);
  for (auto& [pid, fd] : image_fd_) {
    if (fd >= 0) close(fd);
  }
  for (auto& [obj, h] : object_handles_) close(h.sup_end);
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

void Supervisor::CancelWait(emul::WaitId wait) {
  ports_->CancelWait(wait);
  kqueues_->CancelWait(wait);
}

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
  std::erase_if(holder_fd_, [pid](const auto& e) { return e.first.second == pid; });
  auto waits = parked_.TakeIf([this, pid](const ParkedCall& call) {
    auto t = tgid_of_.find(call.tid);
    return t != tgid_of_.end() && t->second == pid;
  });
  for (const auto& [wait, call] : waits) CancelWait(wait);
  ports_->ProcessExited(pid);
  kqueues_->ProcessExited(pid);
  ForgetImage(pid);
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
  if (fd < 0) return Errno{EBADF};
  char path[64], link[128];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", tid, fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return Errno{EBADF};
  link[n] = '\0';
  unsigned long long inode = 0;
  if (std::sscanf(link, "socket:[%llu]", &inode) != 1) return Errno{EBADFD};
  auto it = object_by_inode_.find(inode);
  if (it == object_by_inode_.end()) return Errno{EBADFD};
  const ObjectHandle& h = object_handles_.at(it->second);
  if (h.kind != kind) return Errno{EBADFD};
  holder_fd_[{it->second, ProcessOf(tid)}] = fd;  // HoldsObject looks there first
  return it->second;
}

void Supervisor::ObjectClosed(abi::ObjectKind kind, emul::ObjectId obj) {
  switch (kind) {
    case abi::ObjectKind::kPort:
      ports_->LastClose(obj);
      break;
    case abi::ObjectKind::kKqueue:
      kqueues_->Close(obj);
      kqueues_->ForkSourceClosed(obj);  // no child can claim its unclaimed copies now
      break;
  }
}

void Supervisor::OnObjectReadiness(emul::ObjectId obj, bool readable) {
  auto it = object_handles_.find(obj);
  if (it == object_handles_.end()) return;
  ObjectHandle& h = it->second;
  h.want_readable = readable;
  if (!h.readiness_pending) {
    h.readiness_pending = true;
    readiness_pending_.push_back(obj);
  }
}

// Called before every answer (Respond) and after every loop event, so a
// program never sees an answer before the readiness it implies, and only
// the net change since the last call costs a send (or a drain).
void Supervisor::ApplyReadiness() {
  for (emul::ObjectId obj : readiness_pending_) {
    auto it = object_handles_.find(obj);
    if (it == object_handles_.end()) continue;
    ObjectHandle& h = it->second;
    h.readiness_pending = false;
    if (h.want_readable && !h.signalled) {
      char byte = 1;
      if (send(h.sup_end, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) h.signalled = true;
    }
    // Only a holder of the target end can read the byte back: drained at the
    // next call that names the object (DrainIfNeeded), unless the object is
    // readable again by then (the byte is right as it is).
    h.needs_drain = !h.want_readable && h.signalled;
  }
  readiness_pending_.clear();
}

void Supervisor::DrainIfNeeded(emul::ObjectId obj, pid_t tid, int fd) {
  ApplyReadiness();  // a parked call answered nothing yet
  auto it = object_handles_.find(obj);
  if (it == object_handles_.end() || !it->second.needs_drain) return;
  int pidfd = PidfdOf(ProcessOf(tid));
  int dup = static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
  if (dup < 0) return;
  // Only one byte is ever in flight (written when the queue becomes non-empty).
  char buf[64];
  (void)recv(dup, buf, sizeof buf, MSG_DONTWAIT);
  close(dup);
  it->second.signalled = false;
  it->second.needs_drain = false;
}

// Rule 3 (port_vnops.c port_poll): a port polls POLLOUT only while it has a
// free event slot. The target's end of the socketpair polls writable while
// the data it has in flight (unread in our end) is under a quarter of its
// send buffer (af_unix unix_writable), so: when the port fills, write filler
// into it until it would block, through a duplicate taken from a process
// that holds the port and closed at once (the supervisor never holds a
// target end: the last close is seen as our end's hang-up); when a slot
// frees, read the filler from our end, which wakes the target's pollers. Our
// end is registered for hang-ups only, so the filler wakes nobody. Nothing
// happens while the port has free slots.
void Supervisor::OnObjectWritable(emul::ObjectId obj, bool writable) {
  auto it = object_handles_.find(obj);
  if (it == object_handles_.end()) return;
  ObjectHandle& h = it->second;
  if (writable) {
    if (!h.filled) return;
    char buf[4096];
    while (recv(h.sup_end, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    h.filled = false;
    return;
  }
  if (h.filled) return;
  // Any process that named the port holds a descriptor of it (the call that
  // took the last slot named it).
  for (auto e = holder_fd_.lower_bound({obj, 0}); e != holder_fd_.end() && e->first.first == obj; ++e) {
    emul::Pid pid = e->first.second;
    if (!FdIsObject(pid, e->second, h.inode)) continue;
    int dup = static_cast<int>(syscall(SYS_pidfd_getfd, PidfdOf(pid), e->second, 0));
    if (dup < 0) continue;
    struct stat st {};
    if (fstat(dup, &st) == 0 && st.st_ino == h.inode) {
      static const char kFiller[4096] = {};
      while (send(dup, kFiller, sizeof kFiller, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
      }
      h.filled = true;
    }
    close(dup);
    if (h.filled) return;
  }
}

// illumos deletes a process's POSIX timers at exec (exec_common: "Delete the
// POSIX timers" -> timer_exit, timer.c:1000). Linux does not tell the
// supervisor about an execve, so, for each process that has timers:
// /proc/PID/mem opened then keeps the old address space; once that image is
// gone (exec or exit) a read returns 0 bytes (mem_rw: mmget_not_zero fails),
// while a live one returns EIO at address 0. It is checked before each call
// of that process and before timers fire, so the new image never sees the
// old timers. Exact, per process, one pread. Only if the file cannot be
// opened does the process connector (CAP_NET_ADMIN) stand in: its exec
// message is queued before the new image runs, but it carries every exec of
// the machine and drops messages when it overflows.
void Supervisor::WatchExecs(emul::Pid pid) {
  if (image_fd_.count(pid) != 0 || ports_->TimerCount(pid) == 0) return;
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/mem", pid);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    // Without either, the timers live until exit (docs/design.md).
    fd = host_->ListenForExecs() ? kImageByConnector : kImageUnwatched;
    if (fd == kImageByConnector) ++execs_by_connector_;
  }
  image_fd_[pid] = fd;
}

void Supervisor::NoticeExecs(emul::Pid caller) {
  if (execs_by_connector_ > 0) host_->ReadExecs();
  auto replaced = [](int fd) {
    char byte;
    return fd >= 0 && pread(fd, &byte, 1, 0) == 0;
  };
  if (caller != 0) {
    auto it = image_fd_.find(caller);
    if (it != image_fd_.end() && replaced(it->second)) ExecSeen(caller);
    return;
  }
  std::vector<emul::Pid> gone;
  for (auto& [pid, fd] : image_fd_) {
    if (replaced(fd)) gone.push_back(pid);
  }
  for (emul::Pid pid : gone) ExecSeen(pid);
}

void Supervisor::ForgetImage(emul::Pid pid) {
  auto img = image_fd_.find(pid);
  if (img == image_fd_.end()) return;
  if (img->second >= 0) close(img->second);
  if (img->second == kImageByConnector) --execs_by_connector_;
  image_fd_.erase(img);
}

void Supervisor::ExecSeen(emul::Pid pid) {
  ForgetImage(pid);
  ports_->ProcessExeced(pid);
}

int Supervisor::InstallObject(pid_t tid, uint64_t id, abi::ObjectKind kind, emul::ObjectId obj,
                              bool* delivered, bool cloexec) {
  *delivered = false;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    int err = errno;
    ObjectClosed(kind, obj);
    Respond(tid, id, 0, err == EMFILE || err == ENFILE ? ENOMEM : err);
    return -1;
  }
  struct stat st {};
  fstat(sv[1], &st);
  if (kind == abi::ObjectKind::kPort) {
    // The smallest send buffer (the kernel rounds up to SOCK_MIN_SNDBUF): a
    // few KiB of filler make the port descriptor unwritable (OnObjectWritable).
    int one = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  }
  const AdoptedReadiness adopted = PrepareAdoptedPort(kind, obj, sv[0], sv[1]);
  FaultOr<AddFdResult> added =
      answering_->AddFd(AddFdRequest{id, sv[1], /*target_fd=*/-1, cloexec, /*answer_with_fd=*/true});
  close(sv[1]);
  if (!added.ok() || added->fd < 0) {
    close(sv[0]);
    ObjectClosed(kind, obj);
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
  RegisterObject(tid, kind, obj, sv[0], st.st_ino);
  if (adopted.readable || adopted.full) {
    ObjectHandle& h = object_handles_[obj];
    h.signalled = h.want_readable = adopted.readable;
    h.filled = adopted.full;
  }
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
  ObjectHandle h;
  h.kind = kind;
  h.sup_end = sup_end;
  h.inode = inode;
  object_handles_[obj] = h;
  object_by_inode_[inode] = obj;
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLHUP;
  ev.data.u64 = kTagPort | obj;
  if (epoll_ctl(epoll_, EPOLL_CTL_ADD, sup_end, &ev) != 0) {
    // The last close would go unseen: the object would outlive its descriptors.
    faults_->OnFault(Fault{"epoll_ctl", errno, "watching the last close of an emulated object"}, tid);
  }
}

int Supervisor::ReplaceObjectDescriptors(uint64_t id, emul::Pid pid, abi::ObjectKind kind,
                                         emul::ObjectId from, emul::ObjectId to,
                                         std::optional<Fault>* fault) {
  auto h = object_handles_.find(from);
  if (h == object_handles_.end()) {
    ObjectClosed(kind, to);  // the parent's descriptor is gone: nothing to stand in for
    return 0;
  }
  const uint64_t old_inode = h->second.inode;
  // The child's descriptors of the parent's object (dup'd ones included).
  std::vector<std::pair<int, bool>> fds;  // number, close-on-exec
  for (int fd : ObjectFds(pid, old_inode, /*first_only=*/false)) {
    char info[64], buf[256];
    std::snprintf(info, sizeof info, "/proc/%d/fdinfo/%d", pid, fd);
    unsigned flags = 0;
    if (FILE* f = std::fopen(info, "re")) {
      while (std::fgets(buf, sizeof buf, f)) {
        if (std::sscanf(buf, "flags: %o", &flags) == 1) break;
      }
      std::fclose(f);
    }
    fds.emplace_back(fd, (flags & O_CLOEXEC) != 0);
  }
  if (fds.empty()) {
    ObjectClosed(kind, to);
    return 0;
  }
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    ObjectClosed(kind, to);
    return errno == EMFILE || errno == ENFILE ? ENOMEM : errno;
  }
  struct stat st {};
  fstat(sv[1], &st);
  int err = 0;
  for (auto [fd, cloexec] : fds) {
    // At the inherited descriptor's number, replacing it like dup2.
    FaultOr<AddFdResult> added = answering_->AddFd(AddFdRequest{id, sv[1], fd, cloexec, false});
    if (!added.ok()) {
      if (!*fault) *fault = added.fault();  // the caller handles it instead of answering
    } else if (added->fd < 0 && err == 0) {
      err = added->error;
    }
  }
  close(sv[1]);
  RegisterObject(pid, kind, to, sv[0], st.st_ino);
  if (err != 0) return err == ENOENT ? EINTR : err;  // ENOENT: the call was interrupted
  // Copied pending events: the new descriptor polls readable as the old one did.
  if (kind == abi::ObjectKind::kKqueue && kqueues_->PendingCount(to) > 0) OnObjectReadiness(to, true);
  return 0;
}

void Supervisor::HandleNotification(const Notification& n) {
  const abi::DataModel model = n.arch == AUDIT_ARCH_I386 ? abi::DataModel::kIlp32 : abi::DataModel::kLp64;
  const abi::SyscallEntry* entry = abi::FindSyscall(model, n.nr);
  if (options_.observer != nullptr) TraceEnter(n, model, entry);  // trace
  const bool numbered = Numbered(n, entry);
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
  if (ports_->HasTimers()) WatchExecs(pid);
  if (std::optional<Fault> fault = ctx.fault()) {
    // Never the program's errno (docs/design.md "Supervisor faults").
    if (out.kind == abi::Outcome::Kind::kNewObject) ObjectClosed(out.object_kind, out.object);
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
  if (host_->watch_count() > 0) CollectWatchReadiness();
  // An exec: the old image's timers go first.
  if (ports_->HasTimers()) NoticeExecs(pid);
  // Deadlines already due are served first: the kernels' timer callouts are
  // punctual, while a busy supervisor may not have read its timerfd yet, and a
  // retrieval must count every expiration so far (timer.c T:459-467, timer
  // knotes' data) and never beat a timeout that has passed.
  ports_->CatchUpDeadlines();
  kqueues_->CatchUpDeadlines();
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
    auto h = object_handles_.find(named.object);
    if (h != object_handles_.end() && h->second.kind == abi::ObjectKind::kPort &&
        !FdIsObject(named.tid, named.fd, h->second.inode)) {
      closed.push_back(named);
    }
  }
  for (const ParkedCalls::Named& named : closed) {
    parked_.ForgetNamed(named.wait);
    ports_->AbortWait(named.wait, EBADF);
    emul::Pid pid = ProcessOf(named.tid);
    if (!HoldsObject(pid, named.object)) ports_->CloseBy(named.object, pid);
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

bool Supervisor::FdIsObject(pid_t pid, int fd, uint64_t inode) {
  char path[64], link[128];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return false;
  link[n] = '\0';
  unsigned long long ino = 0;
  return std::sscanf(link, "socket:[%llu]", &ino) == 1 && ino == inode;
}

// Whether process `pid` still has a descriptor of `obj`: the descriptor it
// last named it by, else a scan of its descriptor table.
bool Supervisor::HoldsObject(emul::Pid pid, emul::ObjectId obj) {
  auto h = object_handles_.find(obj);
  if (h == object_handles_.end()) return true;  // not installed yet: its creator holds it
  const uint64_t inode = h->second.inode;
  auto known = holder_fd_.find({obj, pid});
  if (known != holder_fd_.end() && FdIsObject(pid, known->second, inode)) return true;
  // Gone (or a zombie): exit closed everything.
  std::vector<int> fds = ObjectFds(pid, inode, /*first_only=*/true);
  if (fds.empty()) {
    holder_fd_.erase({obj, pid});
    return false;
  }
  holder_fd_[{obj, pid}] = fds.front();
  return true;
}

std::vector<int> Supervisor::ObjectFds(pid_t pid, uint64_t inode, bool first_only) {
  std::vector<int> fds;
  char dir[64];
  std::snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR* d = opendir(dir);
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (!FdIsObject(pid, fd, inode)) continue;
    fds.push_back(fd);
    if (first_only) break;
  }
  closedir(d);
  return fds;
}

// Hands every ready watch to its engine. A port or kqueue that becomes
// readable gets its byte (ApplyReadiness), which can make a watch on that
// object's descriptor ready in turn (a port in a port): a few passes follow
// such chains; a deeper one finishes in the main loop.
void Supervisor::CollectWatchReadiness() {
  for (int pass = 0; pass < 8; ++pass) {
    std::vector<std::pair<emul::WatchId, uint32_t>> ready = host_->TakeReadyWatches();
    if (ready.empty()) break;
    for (auto [id, revents] : ready) {
      ports_->OnWatchReady(id, revents);
      kqueues_->OnWatchReady(id, revents);  // watch ids are host-wide: one engine owns it
    }
    ApplyReadiness();
  }
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
    if (int sig = termination::Acknowledge(); sig != 0) Log("signal %d: passed on to the program", sig);
    if (launcher && child_done_ && listener_hup_) break;
    if (!launcher && listener_hup_) break;
    int n = epoll_wait(epoll_, events, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      Log("epoll_wait failed: %s", std::strerror(errno));
      break;
    }
    // MOUNTEDOVER stays causal without a check per call: mount(2) wakes the
    // mount table's pollers before it returns, so a mount made before a call
    // is in the same batch as that call's notification, or an earlier one.
    // Act on it before any call of the batch (the poll that reports it also
    // consumes it).
    for (int i = 0; i < n; ++i) {
      if ((events[i].data.u64 & kTagMask) == kTagPathMounts && host_->path_watch_count() > 0) {
        host_->OnMountsChanged();
      }
    }
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data & LinuxHost::kHostTag) {  // kqueue PROC/VNODE sources
        host_->OnHostEvent(data);
        ApplyReadiness();
        continue;
      }
      if (data & LinuxHost::kWatchTag) {
        CollectWatchReadiness();
        continue;
      }
      switch (data & kTagMask) {
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
        case kTagDeadline: {
          uint64_t ticks;
          while (read(host_->deadline_fd(), &ticks, sizeof ticks) > 0) {
          }
          if (ports_->HasTimers()) NoticeExecs(0);  // an exec'd image's timers must not fire
          ports_->OnDeadline();
          kqueues_->OnDeadline();
          break;
        }
        case kTagPathWatch:
          host_->ReadPathEvents();
          break;
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
        case kTagPort: {
          emul::ObjectId obj = data & ~kTagMask;
          auto it = object_handles_.find(obj);
          if (it != object_handles_.end()) {
            // Every holder closed the descriptor: the last close (docs/rules-ports.md rule 33).
            abi::ObjectKind kind = it->second.kind;
            if (epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second.sup_end, nullptr) != 0) {
              // Harmless (close removes it) but not expected: logged.
              faults_->OnFault(Fault{"epoll_ctl", errno, "removing a closed object's handle"}, 0);
            }
            close(it->second.sup_end);
            object_by_inode_.erase(it->second.inode);
            object_handles_.erase(it);
            std::erase_if(holder_fd_, [obj](const auto& e) { return e.first.first == obj; });
            ObjectClosed(kind, obj);
          }
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
      ApplyReadiness();
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
