#include "shim/supervisor/supervisor.h"
#include "shim/supervisor/termination.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
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

#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS SECCOMP_IOW(4, __u64)
#endif
#ifndef SECCOMP_ADDFD_FLAG_SEND
#define SECCOMP_ADDFD_FLAG_SEND (1UL << 1)
#endif

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

// Target memory through process_vm_readv/writev (accept a tid). Short
// transfers are EFAULT: nothing partial is ever reported as success.
class RemoteMemory final : public abi::GuestMemory {
 public:
  // `listener`/`id`: the notification this memory belongs to. A tid can be
  // recycled once its call is gone, so every read is followed by a check that
  // the notification is still pending before anything read is acted on
  // (seccomp_unotify(2)); a dead call reads as EFAULT and its answer is lost
  // anyway. listener < 0: no check (tracing reads only for display).
  // trace: `observer` (null when tracing is off) hears of each write of call `id`.
  RemoteMemory(pid_t tid, int listener = -1, uint64_t id = 0,
               abi::trace::CallObserver* observer = nullptr)
      : tid_(tid), listener_(listener), observer_(observer), id_(id) {}
  Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    if (out.empty()) return {};
    iovec local{out.data(), out.size()};
    iovec remote{reinterpret_cast<void*>(addr), out.size()};
    ssize_t n = process_vm_readv(tid_, &local, 1, &remote, 1, 0);
    if (n != static_cast<ssize_t>(out.size())) return Errno{EFAULT};
    if (listener_ >= 0 && ioctl(listener_, SECCOMP_IOCTL_NOTIF_ID_VALID, &id_) != 0) {
      died_ = true;
      return Errno{EFAULT};
    }
    return {};
  }
  // The call died (a signal) while its arguments were being read: whatever
  // the handler answers, it did not happen for the program.
  bool died() const { return died_; }
  Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    if (in.empty()) return {};
    iovec local{const_cast<std::byte*>(in.data()), in.size()};
    iovec remote{reinterpret_cast<void*>(addr), in.size()};
    ssize_t n = process_vm_writev(tid_, &local, 1, &remote, 1, 0);
    if (n != static_cast<ssize_t>(in.size())) return Errno{EFAULT};
    if (observer_ != nullptr) observer_->OnWrite(id_, addr, in);  // trace
    return {};
  }

 private:
  pid_t tid_;
  int listener_;
  abi::trace::CallObserver* observer_;
  uint64_t id_;
  bool died_ = false;
};

// The foreign libraries number their LP64 portfs calls in the upper half of the
// opcode register (docs/abi.md "Call numbers"): bit 32 set = numbered, bits
// 32..62 the number, bit 63 = a probe ("did my interrupted wait complete?").
constexpr uint64_t kProbeBit = 1ULL << 63;
// The same for kevent, in the upper half of the kq register.
bool Numbered(const seccomp_notif& req, const abi::SyscallEntry* entry) {
  return entry != nullptr && (entry->call == abi::Call::kPortfs || entry->call == abi::Call::kKevent) &&
         req.data.arch == AUDIT_ARCH_X86_64 && ((req.data.args[0] >> 32) & 1) != 0;
}
bool SameCall(int nr, const std::array<uint64_t, 6>& a, const seccomp_notif& req) {
  if (nr != req.data.nr) return false;
  if ((a[0] & ~kProbeBit) != (req.data.args[0] & ~kProbeBit)) return false;
  for (int i = 1; i < 6; ++i) {
    if (a[i] != req.data.args[i]) return false;
  }
  return true;
}

}  // namespace

// Answers one notification, now or later. Shared by the handler and any
// completion that outlives it.
class Supervisor::NotifResponder final : public abi::Responder {
 public:
  NotifResponder(Supervisor& sup, uint64_t id, pid_t tid, int nr, const __u64* args, bool numbered)
      : sup_(sup), id_(id), tid_(tid), nr_(nr), numbered_(numbered) {
    for (int i = 0; i < 6; ++i) args_[i] = args[i];
  }
  bool StillPending() override {
    if (answered_) return false;
    return ioctl(sup_.listener_, SECCOMP_IOCTL_NOTIF_ID_VALID, &id_) == 0;
  }
  bool Respond(const abi::Outcome& out) override {
    if (answered_) return false;
    answered_ = true;
    sup_.ForgetParked(tid_, id_);
    switch (out.kind) {
      case abi::Outcome::Kind::kValue:
      case abi::Outcome::Kind::kError:
        if (out.kind == abi::Outcome::Kind::kValue ? sup_.Respond(id_, out.value, 0)
                                                   : sup_.Respond(id_, 0, out.error)) {
          // The kernel can still drop a reply it accepted (a signal that
          // broke the target's wait just before): if this call comes back
          // identical, its answer is replayed, the events it wrote stay valid.
          if (numbered_) sup_.RememberInterrupted(tid_, nr_, args_.data(), /*wait=*/false, out);
          return true;
        }
        // The thread was interrupted before it got the answer. Either the
        // engine undoes the call (retrieved events go back) and a re-issue
        // of it answers EINTR, or its effect stands (a kevent's changes are
        // applied) and a re-issue gets this answer again: a retry that
        // applied the changes once more would trigger a one-shot twice.
        sup_.RememberInterrupted(tid_, nr_, args_.data(), /*wait=*/!out.stands_if_refused, out);
        return false;
      case abi::Outcome::Kind::kNewObject: {
        bool delivered = false;
        sup_.InstallObject(id_, out.object_kind, out.object, &delivered, out.cloexec);
        return delivered;
      }
      case abi::Outcome::Kind::kDeferred:
        break;
    }
    return false;
  }
  bool answered() const { return answered_; }

 private:
  Supervisor& sup_;
  uint64_t id_;
  pid_t tid_;
  int nr_;
  std::array<__u64, 6> args_{};
  bool numbered_;
  bool answered_ = false;
};

class Supervisor::Context final : public abi::CallContext {
 public:
  Context(Supervisor& sup, const seccomp_notif& req, emul::Pid pid, bool numbered)
      : sup_(sup), req_(req), caller_{pid, static_cast<emul::Pid>(req.pid)},
        memory_(std::make_shared<RemoteMemory>(static_cast<pid_t>(req.pid), sup.listener_, req.id,
                                               sup.options_.observer)),
        numbered_(numbered) {}
  bool call_died() const { return memory_->died(); }

  emul::Caller caller() const override { return caller_; }
  abi::GuestMemory& memory() override { return *memory_; }
  Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    Result<emul::ObjectId> r = sup_.ResolveObject(static_cast<pid_t>(req_.pid), fd, kind);
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
    deferred_ = std::make_shared<DeferredResponder>(
        std::make_shared<NotifResponder>(sup_, req_.id, static_cast<pid_t>(req_.pid),
                                         req_.data.nr, req_.data.args, numbered_),
        memory_);
    return deferred_;
  }
  void Parked(emul::WaitId id) override {
    if (sup_.parked_.size() >= sup_.options_.max_parked_waits) {
      // Too many waiting threads in the tree (--max-waits): this one fails
      // with ENOMEM instead of growing the supervisor without bound.
      sup_.ports_->CancelWait(id);
      sup_.kqueues_->CancelWait(id);
      if (deferred_) deferred_->Respond(abi::Outcome::Error(ENOMEM));
      return;
    }
    std::array<uint64_t, 6> args{};
    for (int i = 0; i < 6; ++i) args[i] = req_.data.args[i];
    sup_.parked_[id] = ParkedCall{static_cast<pid_t>(req_.pid), req_.id, req_.data.nr, args};
    sup_.parked_by_tid_[static_cast<pid_t>(req_.pid)] = id;
    if (last_object_) sup_.parked_object_[id] = *last_object_;  // docs/rules-ports.md rule 27: SweepParked
  }
  int ReplaceObject(abi::ObjectKind kind, emul::ObjectId from, emul::ObjectId to) override {
    return sup_.ReplaceObjectDescriptors(req_.id, caller_.pid, kind, from, to);
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
  // Keeps the target memory object alive as long as a completion may use it.
  class DeferredResponder final : public abi::Responder {
   public:
    DeferredResponder(std::shared_ptr<NotifResponder> inner, std::shared_ptr<RemoteMemory> mem)
        : inner_(std::move(inner)), mem_(std::move(mem)) {}
    bool StillPending() override { return inner_->StillPending(); }
    bool Respond(const abi::Outcome& out) override { return inner_->Respond(out); }

   private:
    std::shared_ptr<NotifResponder> inner_;
    std::shared_ptr<RemoteMemory> mem_;
  };

  Supervisor& sup_;
  const seccomp_notif& req_;
  emul::Caller caller_;
  std::shared_ptr<RemoteMemory> memory_;
  std::shared_ptr<abi::Responder> deferred_;
  bool numbered_;
  std::optional<std::pair<emul::ObjectId, int>> last_object_;
};

Supervisor::Supervisor(int listener, SupervisorOptions options)
    : listener_(listener), options_(options) {
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
  ports_ = std::make_unique<emul::EventPorts>(*host_, options_.port_limits);
  kqueue_host_ = std::make_unique<DeadlineSlotHost>(*host_, 1);
  kqueues_ = std::make_unique<emul::Kqueues>(*kqueue_host_, options_.kqueue_limits);
  // kqueue PROC/VNODE sources (linux_host_kqueue.cc) feed the engine.
  host_->set_kqueue_sink(LinuxHost::KqueueSink{
      [this](emul::Pid pid, int64_t status) { kqueues_->OnProcessExit(pid, status); },
      [this](emul::Pid parent, emul::Pid child) { kqueues_->OnProcessFork(parent, child); },
      [this](emul::Pid pid) { kqueues_->OnProcessExec(pid); },
      [this](emul::WatchId id, uint32_t notes) { kqueues_->OnVnodeEvent(id, notes); }});

  if (options_.sync_wakeup) {
    uint64_t flags = SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP;
    if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_SET_FLAGS, flags) != 0) options_.sync_wakeup = false;
  }
  auto add = [this](int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  };
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

bool Supervisor::Respond(uint64_t id, int64_t value, int error) {
  ApplyReadiness();
  seccomp_notif_resp resp{};
  resp.id = id;
  resp.val = error ? 0 : value;
  resp.error = error ? -error : 0;
  resp.flags = 0;
  const bool sent = ioctl(listener_, SECCOMP_IOCTL_NOTIF_SEND, &resp) == 0;
  if (options_.observer != nullptr) options_.observer->OnExit(id, value, error, sent);  // trace
  // ENOENT: the target was interrupted or died meanwhile. Routine.
  return sent;
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
  epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
  return fd;
}

void Supervisor::ProcessGone(emul::Pid pid) {
  // Exit closes every descriptor: the process's associations, alerts and
  // owner-only events go, its waiters vanish (docs/rules-ports.md rule 35).
  std::erase_if(holder_fd_, [pid](const auto& e) { return e.first.second == pid; });
  std::vector<emul::WaitId> waits;
  for (auto& [wid, who] : parked_) {
    auto t = tgid_of_.find(who.tid);
    if (t != tgid_of_.end() && t->second == pid) waits.push_back(wid);
  }
  for (emul::WaitId w : waits) {
    parked_by_tid_.erase(parked_[w].tid);
    parked_.erase(w);
    ports_->CancelWait(w);
    kqueues_->CancelWait(w);
  }
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
      interrupted_.erase(t->first);
      t = tgid_of_.erase(t);
    } else {
      ++t;
    }
  }
}

void Supervisor::RememberInterrupted(pid_t tid, int nr, const __u64* args, bool wait,
                                     const abi::Outcome& out) {
  Interrupted rec{nr, {}, wait, out};
  for (int i = 0; i < 6; ++i) rec.args[i] = args[i];
  interrupted_[tid] = rec;
}

void Supervisor::ForgetParked(pid_t tid, uint64_t notif_id) {
  auto t = parked_by_tid_.find(tid);
  if (t == parked_by_tid_.end()) return;
  auto p = parked_.find(t->second);
  if (p != parked_.end() && p->second.notif_id == notif_id) {
    parked_.erase(p);
    parked_by_tid_.erase(t);
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

int Supervisor::InstallObject(uint64_t id, abi::ObjectKind kind, emul::ObjectId obj,
                              bool* delivered, bool cloexec) {
  *delivered = false;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    int err = errno;
    ObjectClosed(kind, obj);
    Respond(id, 0, err == EMFILE || err == ENFILE ? ENOMEM : err);
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
  seccomp_notif_addfd addfd{};
  addfd.id = id;
  addfd.srcfd = static_cast<uint32_t>(sv[1]);
  addfd.newfd = 0;
  addfd.newfd_flags = cloexec ? O_CLOEXEC : 0;
  addfd.flags = addfd_send_ ? SECCOMP_ADDFD_FLAG_SEND : 0;
  ApplyReadiness();  // ADDFD_FLAG_SEND answers the call (see Respond)
  int newfd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  if (newfd < 0 && errno == EINVAL && addfd_send_) {
    addfd_send_ = false;  // kernel < 5.14: add, then answer
    addfd.flags = 0;
    newfd = ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd);
  }
  int err = newfd < 0 ? errno : 0;
  close(sv[1]);
  if (newfd < 0) {
    close(sv[0]);
    ObjectClosed(kind, obj);
    // EMFILE: the target's descriptor table is full (port.c:765-774).
    if (err != ENOENT) Respond(id, 0, err == EBADF ? EMFILE : err);
    return -1;
  }
  if (addfd_send_ && options_.observer != nullptr) options_.observer->OnExit(id, newfd, 0, true);  // trace
  if (!addfd_send_ && !Respond(id, newfd, 0)) {
    // The fd was installed but the call was interrupted: the target will
    // close nothing; the socket's HUP will clean up when it exits.
  }
  RegisterObject(kind, obj, sv[0], st.st_ino);
  *delivered = true;
  return newfd;
}

void Supervisor::RegisterObject(abi::ObjectKind kind, emul::ObjectId obj, int sup_end, uint64_t inode) {
  ObjectHandle h;
  h.kind = kind;
  h.sup_end = sup_end;
  h.inode = inode;
  object_handles_[obj] = h;
  object_by_inode_[inode] = obj;
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLHUP;
  ev.data.u64 = kTagPort | obj;
  epoll_ctl(epoll_, EPOLL_CTL_ADD, sup_end, &ev);
}

int Supervisor::ReplaceObjectDescriptors(uint64_t id, emul::Pid pid, abi::ObjectKind kind,
                                         emul::ObjectId from, emul::ObjectId to) {
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
    seccomp_notif_addfd addfd{};
    addfd.id = id;
    addfd.srcfd = static_cast<uint32_t>(sv[1]);
    addfd.newfd = static_cast<uint32_t>(fd);
    addfd.newfd_flags = cloexec ? O_CLOEXEC : 0;
    addfd.flags = SECCOMP_ADDFD_FLAG_SETFD;  // replaces the inherited descriptor, like dup2
    if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_ADDFD, &addfd) < 0 && err == 0) err = errno;
  }
  close(sv[1]);
  RegisterObject(kind, to, sv[0], st.st_ino);
  if (err != 0) return err == ENOENT ? EINTR : err;  // ENOENT: the call was interrupted
  // Copied pending events: the new descriptor polls readable as the old one did.
  if (kind == abi::ObjectKind::kKqueue && kqueues_->PendingCount(to) > 0) OnObjectReadiness(to, true);
  return 0;
}

void Supervisor::HandleNotification(seccomp_notif& req) {
  const bool ilp32 = req.data.arch == AUDIT_ARCH_I386;
  const abi::DataModel model = ilp32 ? abi::DataModel::kIlp32 : abi::DataModel::kLp64;
  const abi::SyscallEntry* entry = abi::FindSyscall(model, req.data.nr);
  const pid_t tid = static_cast<pid_t>(req.pid);
  if (options_.observer != nullptr) TraceEnter(req, model, entry);  // trace
  // A thread has one system call in flight: a parked one from the same
  // thread was abandoned because a signal interrupted it. If this is the
  // very same call (same number and registers, including the library's call
  // number), Linux is restarting it after an SA_RESTART handler, or the
  // library is probing (kProbeBit); illumos and the BSDs never restart these
  // waits: EINTR (ECANCELED to a probe, which the library turns into EINTR).
  const bool probe = Numbered(req, entry) && (req.data.args[0] & kProbeBit) != 0;
  const int interrupted_errno = probe ? ECANCELED : EINTR;
  if (auto t = parked_by_tid_.find(tid); t != parked_by_tid_.end()) {
    emul::WaitId w = t->second;
    const ParkedCall old = parked_[w];
    parked_by_tid_.erase(t);
    parked_.erase(w);
    ports_->CancelWait(w);
    kqueues_->CancelWait(w);
    if (SameCall(old.nr, old.args, req)) {
      Respond(req.id, 0, interrupted_errno);
      return;
    }
  }
  // The thread's previous call, if it is being issued again: a non-blocking
  // call's outcome is replayed (never applied twice); an interrupted wait
  // gets EINTR; a completed wait whose answer the kernel dropped gets its
  // answer again (the events are in its buffer already).
  if (auto it = interrupted_.find(tid); it != interrupted_.end()) {
    const Interrupted rec = it->second;
    interrupted_.erase(it);
    std::array<uint64_t, 6> rec_args{};
    for (int i = 0; i < 6; ++i) rec_args[i] = rec.args[i];
    if (SameCall(rec.nr, rec_args, req)) {
      if (rec.wait) {
        Respond(req.id, 0, interrupted_errno);
      } else if (rec.outcome.kind == abi::Outcome::Kind::kValue) {
        if (!Respond(req.id, rec.outcome.value, 0) || Numbered(req, entry)) interrupted_[tid] = rec;
      } else {
        if (!Respond(req.id, 0, rec.outcome.error) || Numbered(req, entry)) interrupted_[tid] = rec;
      }
      return;
    }
  }
  if (probe) {  // nothing to recover: the probed wait never reached us
    Respond(req.id, 0, ECANCELED);
    return;
  }
  if (entry == nullptr) {
    Respond(req.id, 0, ENOSYS);
    return;
  }
  // File changes made before this call are seen before it is handled
  // (inotify queues them synchronously): PORT_SOURCE_FILE stays causal.
  if (host_->path_watch_count() > 0) host_->ReadPathEvents();
  // Likewise every watched descriptor that became ready before this call:
  // the kernels activate the association or knote in the wake-up itself
  // (port.c:158-163; DF kern_event.c:1647-1660; OB kern_event.c:1731-1760).
  if (host_->watch_count() > 0) CollectWatchReadiness();
  emul::Pid pid = ProcessOf(tid);
  // Likewise an exec before this call: the old image's timers go first.
  if (ports_->HasTimers()) NoticeExecs(pid);
  // Deadlines already due are served first: the kernels' timer callouts are
  // punctual, while a busy supervisor may not have read its timerfd yet, and a
  // retrieval must count every expiration so far (timer.c T:459-467, timer
  // knotes' data) and never beat a timeout that has passed.
  ports_->CatchUpDeadlines();
  kqueues_->CatchUpDeadlines();
  std::array<uint64_t, 6> raw{};
  for (int i = 0; i < 6; ++i) raw[i] = req.data.args[i];
  abi::SyscallArgs args(model, raw);
  const bool numbered = Numbered(req, entry);
  Context ctx(*this, req, pid, numbered);
  abi::Outcome out;
  if (entry->handler != nullptr) {
    out = entry->handler(ctx, args);
  } else {
    ctx.NotImplemented(std::string(abi::PersonalityName(entry->personality)) + " " +
                       std::string(entry->name));
    out = abi::Outcome::Error(ENOSYS);
  }
  // Before answering: a process that got a timer cannot exec unseen.
  if (ports_->HasTimers()) WatchExecs(pid);
  switch (out.kind) {
    case abi::Outcome::Kind::kValue:
    case abi::Outcome::Kind::kError:
      if (!(out.kind == abi::Outcome::Kind::kValue ? Respond(req.id, out.value, 0)
                                                   : Respond(req.id, 0, out.error)) ||
          numbered) {
        // Done, but the thread may not get the answer (interrupted, or the
        // kernel dropped an accepted reply): an identical re-issue replays it.
        // Not if the call died while its arguments were read: then nothing
        // happened for the program, and the re-issue must run again.
        if (!ctx.call_died()) RememberInterrupted(tid, req.data.nr, req.data.args, /*wait=*/false, out);
      }
      break;
    case abi::Outcome::Kind::kNewObject: {
      bool delivered = false;
      InstallObject(req.id, out.object_kind, out.object, &delivered, out.cloexec);
      break;
    }
    case abi::Outcome::Kind::kDeferred:
      if (options_.observer != nullptr) options_.observer->OnDeferred(req.id);  // trace
      break;
  }
  if (auto lo = ctx.last_object()) DrainIfNeeded(lo->first, tid, lo->second);
}

// trace: reports a call to the observer before anything answers it.
void Supervisor::TraceEnter(const seccomp_notif& req, abi::DataModel model, const abi::SyscallEntry* entry) {
  const pid_t tid = static_cast<pid_t>(req.pid);
  RemoteMemory memory(tid);
  abi::trace::CallStart call;
  call.id = req.id;
  call.caller = {ProcessOf(tid), static_cast<emul::Pid>(tid)};
  call.model = model;
  call.nr = req.data.nr;
  call.entry = entry;
  for (int i = 0; i < 6; ++i) call.raw[i] = req.data.args[i];
  call.ip = req.data.instruction_pointer;
  call.memory = &memory;
  options_.observer->OnEnter(call);
}

void Supervisor::SweepParked() {
  std::vector<emul::WaitId> dead;
  for (auto& [wid, who] : parked_) {
    uint64_t id = who.notif_id;
    if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) != 0) dead.push_back(wid);
  }
  for (emul::WaitId w : dead) {
    // A signal interrupted this wait. Remember it, so that a kernel restart
    // arriving after this sweep is still answered EINTR.
    const ParkedCall& call = parked_[w];
    interrupted_[call.tid] = Interrupted{call.nr, call.args, /*wait=*/true, abi::Outcome::Error(EINTR)};
    parked_by_tid_.erase(call.tid);
    parked_.erase(w);
    parked_object_.erase(w);
    ports_->CancelWait(w);
    kqueues_->CancelWait(w);
  }
  SweepClosedPorts();
}

// Rule 27 (docs/design.md "Close and exec"): a thread waiting on a port
// descriptor that another thread closed fails with EBADF, as illumos's
// closeandsetf makes it; and if its process holds the port nowhere any more,
// the process loses its associations (docs/rules-ports.md rule 32).
void Supervisor::SweepClosedPorts() {
  std::vector<std::pair<emul::WaitId, pid_t>> closed;
  for (auto it = parked_object_.begin(); it != parked_object_.end();) {
    auto call = parked_.find(it->first);
    if (call == parked_.end()) {
      it = parked_object_.erase(it);
      continue;
    }
    auto h = object_handles_.find(it->second.first);
    if (h != object_handles_.end() && h->second.kind == abi::ObjectKind::kPort &&
        !FdIsObject(call->second.tid, it->second.second, h->second.inode)) {
      closed.emplace_back(it->first, call->second.tid);
    }
    ++it;
  }
  for (auto& [wid, tid] : closed) {
    emul::ObjectId obj = parked_object_[wid].first;
    parked_object_.erase(wid);
    ports_->AbortWait(wid, EBADF);
    emul::Pid pid = ProcessOf(tid);
    if (!HoldsObject(pid, obj)) ports_->CloseBy(obj, pid);
  }
  // A PORT_DISPATCH waiting for a slot: associations whose descriptors were
  // closed since gave theirs back (port_close_fd); close() is not seen, so
  // look here too.
  std::set<emul::ObjectId> full_ports;
  for (auto& [wid, named] : parked_object_) {
    if (ports_->Exists(named.first) && ports_->DispatcherCount(named.first) > 0) full_ports.insert(named.first);
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
  std::vector<std::byte> req_buf(sizeof(seccomp_notif) + 64);
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
            auto* req = reinterpret_cast<seccomp_notif*>(req_buf.data());
            std::memset(req, 0, sizeof(seccomp_notif));
            if (ioctl(listener_, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) {
              HandleNotification(*req);
            }
            // ENOENT/EINTR/EAGAIN from RECV are routine (the target went away).
          } else if (events[i].events & (EPOLLHUP | EPOLLERR)) {
            listener_hup_ = true;
            epoll_ctl(epoll_, EPOLL_CTL_DEL, listener_, nullptr);
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
            epoll_ctl(epoll_, EPOLL_CTL_DEL, it->second.sup_end, nullptr);
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
