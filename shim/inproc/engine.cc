#include "shim/inproc/engine.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <thread>

namespace evshim::shim::inproc {

using emul::Errno;
using emul::Result;

namespace {

// Tags of the loop epoll's events (LinuxHost's kWatchTag and kHostTag are
// bits 62 and 61; these use the top byte's low bits, as the supervisor does).
constexpr uint64_t kTagDeadline = 3ULL << 56;
constexpr uint64_t kTagSweep = 4ULL << 56;
constexpr uint64_t kTagObject = 6ULL << 56;
constexpr uint64_t kTagSignals = 7ULL << 56;
constexpr uint64_t kTagPathWatch = 9ULL << 56;
constexpr uint64_t kTagMask = 0xffULL << 56;

// The process's own memory through process_vm_readv/writev: a bad pointer
// is EFAULT, never SIGSEGV, and nothing partial counts as done.
class SelfMemory final : public abi::GuestMemory {
 public:
  explicit SelfMemory(pid_t pid) : pid_(pid) {}
  Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    if (out.empty()) return {};
    iovec local{out.data(), out.size()};
    iovec remote{reinterpret_cast<void*>(addr), out.size()};
    if (process_vm_readv(pid_, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(out.size())) {
      return Errno{EFAULT};
    }
    return {};
  }
  Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    if (in.empty()) return {};
    iovec local{const_cast<std::byte*>(in.data()), in.size()};
    iovec remote{reinterpret_cast<void*>(addr), in.size()};
    if (process_vm_writev(pid_, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(in.size())) {
      return Errno{EFAULT};
    }
    return {};
  }

 private:
  pid_t pid_;
};

// Each thread's wake-up eventfd (a deferred call answered by another thread
// writes it). Made again in a forked child, whose copy is the parent's.
struct ThreadWake {
  int fd = -1;
  pid_t pid = 0;
  ~ThreadWake() {
    if (fd >= 0) close(fd);
  }
};
thread_local ThreadWake t_wake;
// Set while this thread runs inside the engine: a signal handler's call on
// the same thread (a close() in a handler) must not wait for the lock.
thread_local bool t_in_engine = false;

// The calling thread's id (gettid is a system call; a thread keeps its id,
// and a forked child's only thread gets a new one: checked with the pid).
emul::Pid ThreadId(pid_t pid) {
  thread_local pid_t tid = 0, for_pid = 0;
  if (tid == 0 || for_pid != pid) {
    tid = gettid();
    for_pid = pid;
  }
  return static_cast<emul::Pid>(tid);
}

int WakeFd(pid_t pid) {
  if (t_wake.pid != pid || t_wake.fd < 0) {
    if (t_wake.fd >= 0 && t_wake.pid != pid) close(t_wake.fd);  // the parent's, inherited
    t_wake.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    t_wake.pid = pid;
  }
  return t_wake.fd;
}

int64_t MonotonicNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

void SleepNs(int64_t ns) {
  timespec t{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
  while (nanosleep(&t, &t) != 0 && errno == EINTR) {
  }
}

long EnvLimit(const char* name, long fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  long n = std::strtol(v, &end, 10);
  return (end != nullptr && *end == '\0' && n > 0) ? n : fallback;
}

}  // namespace

EngineOptions EngineOptions::FromEnvironment() {
  EngineOptions o;
  o.port_limits.max_events_per_port = static_cast<uint32_t>(
      EnvLimit("EVSHIM_MAX_PORT_EVENTS", o.port_limits.max_events_per_port));
  o.port_limits.max_ports = static_cast<uint32_t>(EnvLimit("EVSHIM_MAX_PORTS", o.port_limits.max_ports));
  o.kqueue_limits.max_kqueues =
      static_cast<decltype(o.kqueue_limits.max_kqueues)>(EnvLimit("EVSHIM_MAX_KQUEUES", o.kqueue_limits.max_kqueues));
  o.kqueue_limits.max_knotes =
      static_cast<decltype(o.kqueue_limits.max_knotes)>(EnvLimit("EVSHIM_MAX_KNOTES", o.kqueue_limits.max_knotes));
  // A seccomp filter (mode 2) is on the process: evshim's supervisor, whose
  // filter every process of an `evshim run` tree carries.
  o.supervisor_present = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2;
  return o;
}

// A deferred call's answer, given by whichever thread completes the wait.
class Engine::Waiter final : public abi::Responder {
 public:
  Waiter(int wake_fd) : wake_fd_(wake_fd), thread_(std::this_thread::get_id()) {}
  bool StillPending() override { return !answered_ && !cancelled_ && !moved_; }
  bool Respond(const abi::Outcome& out) override {
    if (answered_ || cancelled_ || moved_) return false;
    answered_ = true;
    outcome_ = out;
    if (std::this_thread::get_id() != thread_) {
      uint64_t one = 1;
      (void)!write(wake_fd_, &one, sizeof one);
    }
    return true;
  }
  // A signal ended the wait first: a later completion finds it gone and
  // keeps its events (the kernels never restart these waits).
  void Cancel() { cancelled_ = true; }
  // Its port moved to the supervisor (fork_move.cc): the call goes there.
  void Move() {
    moved_ = true;
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  bool moved() const { return moved_; }
  bool answered() const { return answered_; }
  const abi::Outcome& outcome() const { return outcome_; }

 private:
  int wake_fd_;
  std::thread::id thread_;
  bool answered_ = false;
  bool cancelled_ = false;
  bool moved_ = false;
  abi::Outcome outcome_;
};

class Engine::Context final : public abi::CallContext {
 public:
  Context(Engine& engine, abi::GuestMemory& memory)
      : engine_(engine), memory_(memory),
        caller_{static_cast<emul::Pid>(engine.pid_), ThreadId(engine.pid_)} {}

  emul::Caller caller() const override { return caller_; }
  abi::GuestMemory& memory() override { return memory_; }
  Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    if (fd < 0) return Errno{EBADF};
    struct stat st {};
    if (fstat(fd, &st) != 0) return Errno{EBADF};
    if (S_ISSOCK(st.st_mode)) {
      auto it = engine_.by_inode_.find(st.st_ino);
      if (it != engine_.by_inode_.end()) {
        Object& o = engine_.objects_.at(it->second);
        if (o.kind != kind) return Errno{EBADFD};
        if (move_named_port_) {
          (void)engine_.MovePort(it->second);  // not moved: the supervisor answers EBADFD
          return Errno{EBADFD};
        }
        o.holder_fd = fd;
        last_object_ = {it->second, fd};
        return it->second;
      }
      if (engine_.inherited_ != nullptr) {
        auto inh = engine_.inherited_->objects.find(st.st_ino);
        if (inh != engine_.inherited_->objects.end()) return InheritedObject(inh->second, kind, fd);
      }
    }
    // Not an object of this engine. A socket may be one of the
    // supervisor's objects (made by a raw foreign syscall): with a
    // supervisor present, the call goes there.
    if (S_ISSOCK(st.st_mode) && engine_.options_.supervisor_present) foreign_ = true;
    return Errno{EBADFD};
  }
  emul::EventPorts& ports() override { return *engine_.ports_; }
  emul::Kqueues* kqueues() override { return engine_.kqueues_.get(); }
  std::shared_ptr<abi::Responder> Defer() override {
    if (!waiter_) waiter_ = std::make_shared<Waiter>(WakeFd(engine_.pid_));
    return waiter_;
  }
  void Parked(emul::WaitId id) override {
    wait_ = id;
    ParkedWait p;
    if (last_object_) {
      p.obj = last_object_->first;
      p.fd = last_object_->second;
      auto it = engine_.objects_.find(p.obj);
      p.port = it != engine_.objects_.end() && it->second.kind == abi::ObjectKind::kPort;
    }
    p.waiter = waiter_;
    engine_.parked_[id] = p;
    if (p.port) engine_.ArmSweep(true);
  }
  void NotImplemented(std::string_view what) override {
    if (engine_.reported_.insert(std::string(what)).second) {
      std::fprintf(stderr, "evshim: %.*s is not implemented yet (answered ENOSYS/ENOTSUP); see docs/abi.md\n",
                   static_cast<int>(what.size()), what.data());
    }
  }

  // After a port moved, timer_create is the supervisor's (one timer id
  // table per process); a port of this engine it names moves there first.
  void ForwardTimerCreate() {
    foreign_ = true;
    move_named_port_ = true;
  }
  bool foreign() const { return foreign_; }
  std::shared_ptr<Waiter> waiter() const { return waiter_; }
  std::optional<emul::WaitId> wait() const { return wait_; }
  std::optional<std::pair<emul::ObjectId, int>> last_object() const { return last_object_; }

 private:
  // A descriptor of the engine a parent process had before fork. kqueues
  // are not inherited (docs/rules-bsd.md §4.6, each BSD's fdcopy): EBADF,
  // as the supervised path answers. An illumos port is shared with the
  // child (docs/rules-ports.md rule 34, port.c:241-248), which this slice
  // cannot do in-process: it fails clearly (docs/abi.md §10 "Fast mode").
  Result<emul::ObjectId> InheritedObject(abi::ObjectKind was, abi::ObjectKind kind, int fd) {
    if (was != kind) return Errno{EBADFD};
    if (kind == abi::ObjectKind::kKqueue) return Errno{EBADF};
    if (!engine_.warned_fork_port_) {
      engine_.warned_fork_port_ = true;
      std::fprintf(stderr,
                   "evshim: event port %d was created by the parent process before fork: fast mode "
                   "cannot share it (ENOTSUP); run with EVSHIM_SUPERVISED=1 (docs/abi.md §10)\n",
                   fd);
    }
    return Errno{ENOTSUP};
  }

  Engine& engine_;
  abi::GuestMemory& memory_;
  emul::Caller caller_;
  std::shared_ptr<Waiter> waiter_;
  std::optional<emul::WaitId> wait_;
  std::optional<std::pair<emul::ObjectId, int>> last_object_;
  bool foreign_ = false;
  bool move_named_port_ = false;
};

Engine::Engine(EngineOptions options, std::shared_ptr<const Inherited> inherited)
    : options_(options), inherited_(std::move(inherited)), pid_(getpid()),
      memory_(std::make_unique<SelfMemory>(pid_)) {
  loop_ = epoll_create1(EPOLL_CLOEXEC);
  host_ = std::make_unique<LinuxHost>(loop_, [this](emul::Pid pid) { return PidfdOf(pid); });
  host_->set_local_process(pid_);
  host_->set_file_check_memo(true);  // forgotten whenever the lock is taken or given up
  host_->set_register_callback([this](int fd) {
    struct stat st {};
    if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && by_inode_.count(st.st_ino) != 0) objects_watched_ = true;
  });
  host_->set_readiness_callback([this](emul::ObjectId o, bool r) { OnObjectReadiness(o, r); });
  host_->set_writable_callback([this](emul::ObjectId o, bool w) { OnObjectWritable(o, w); });
  ports_ = std::make_unique<emul::EventPorts>(*host_, options_.port_limits);
  kqueue_host_ = std::make_unique<DeadlineSlotHost>(*host_, 1);
  kqueues_ = std::make_unique<emul::Kqueues>(*kqueue_host_, options_.kqueue_limits);
  host_->set_kqueue_sink(LinuxHost::KqueueSink{
      [this](emul::Pid pid, int64_t status) { kqueues_->OnProcessExit(pid, status); },
      [this](emul::Pid parent, emul::Pid child) { kqueues_->OnProcessFork(parent, child); },
      [this](emul::Pid pid) { kqueues_->OnProcessExec(pid); },
      [this](emul::WatchId id, uint32_t notes) { kqueues_->OnVnodeEvent(id, notes); }});
  host_->set_path_sink([this](emul::WatchId id, uint32_t bits) { ports_->OnFileEvent(id, bits); });
  host_->set_holds_callback([this](emul::Pid, emul::ObjectId obj) { return HoldsObject(obj); });
  host_->set_kqueue_at_callback([this](emul::Pid, int fd) -> std::optional<emul::ObjectId> {
    struct stat st {};
    if (fstat(fd, &st) != 0) return std::nullopt;
    auto it = by_inode_.find(st.st_ino);
    if (it == by_inode_.end() || objects_.at(it->second).kind != abi::ObjectKind::kKqueue) return std::nullopt;
    return it->second;
  });
  auto add = [this](int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(loop_, EPOLL_CTL_ADD, fd, &ev);
  };
  add(host_->deadline_fd(), kTagDeadline, EPOLLIN);
  if (host_->path_inotify_fd() >= 0) add(host_->path_inotify_fd(), kTagPathWatch, EPOLLIN);
  // The mount table is not in the loop: a poll of /proc/self/mountinfo
  // consumes its change, so a waiter's or the idle pump's look at the loop
  // would lose it. Each call polls it instead (PrepareCall).
  signal_efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  add(signal_efd_, kTagSignals, EPOLLIN);
  sweep_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  add(sweep_fd_, kTagSweep, EPOLLIN);
}

Engine::~Engine() {
  ports_.reset();
  kqueues_.reset();
  kqueue_host_.reset();
  host_.reset();
  for (auto& [obj, o] : objects_) close(o.engine_end);
  for (auto& [pid, fd] : pidfds_) close(fd);
  if (sweep_fd_ >= 0) close(sweep_fd_);
  if (signal_efd_ >= 0) close(signal_efd_);
  if (loop_ >= 0) close(loop_);
}

void Engine::AddInherited(Inherited* into) const {
  for (const auto& [obj, o] : objects_) into->objects[o.inode] = o.kind;
}

int Engine::PidfdOf(emul::Pid pid) {
  auto it = pidfds_.find(pid);
  if (it != pidfds_.end()) return it->second;
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return -1;
  pidfds_[pid] = fd;
  return fd;
}

void Engine::NoteSignal(int signo) {
  if (signo <= 0 || signo >= kSignals) return;
  pending_signals_[signo].fetch_add(1, std::memory_order_relaxed);
  any_signal_.store(true, std::memory_order_release);
  uint64_t one = 1;
  (void)!write(signal_efd_, &one, sizeof one);  // wakes waiting threads
}

void Engine::ApplySignals() {
  if (!any_signal_.exchange(false, std::memory_order_acquire)) return;
  for (int sig = 1; sig < kSignals; ++sig) {
    for (uint32_t n = pending_signals_[sig].exchange(0, std::memory_order_relaxed); n > 0; --n) {
      kqueues_->OnSignal(static_cast<emul::Pid>(pid_), sig);
    }
  }
}

bool Engine::Call(int nr, const uint64_t args[6], long* result) {
  const abi::SyscallEntry* entry = abi::FindSyscall(abi::DataModel::kLp64, nr);
  if (entry == nullptr) return false;
  if (t_in_engine) return false;  // a signal handler on a thread inside the engine
  std::unique_lock<std::mutex> lock(mu_);
  if (timers_moved_ && TimerCallMoved(entry->call)) return false;
  t_in_engine = true;
  host_->ForgetFileChecks();
  struct Leave {
    Engine& e;
    ~Leave() {
      e.host_->ForgetFileChecks();
      t_in_engine = false;
      e.last_call_ns_.store(MonotonicNs(), std::memory_order_relaxed);
    }
  } leave{*this};
  PrepareCall();
  std::array<uint64_t, 6> raw{};
  for (int i = 0; i < 6; ++i) raw[i] = args[i];
  abi::SyscallArgs a(abi::DataModel::kLp64, raw);
  Context ctx(*this, *memory_);
  if (timers_moved_ && entry->call == abi::Call::kTimerCreate) ctx.ForwardTimerCreate();
  abi::Outcome out;
  if (entry->handler != nullptr) {
    out = entry->handler(ctx, a);
  } else {
    ctx.NotImplemented(std::string(abi::PersonalityName(entry->personality)) + " " + std::string(entry->name));
    out = abi::Outcome::Error(ENOSYS);
  }
  if (ctx.foreign()) {
    // The descriptor is not this engine's: the supervisor's call. Nothing
    // happened here (handlers resolve their object before any effect).
    if (entry->call == abi::Call::kTimerCreate && !timers_moved_) MoveTimersToSupervisor();
    if (ctx.wait()) {
      ports_->CancelWait(*ctx.wait());
      kqueues_->CancelWait(*ctx.wait());
      parked_.erase(*ctx.wait());
    }
    if (ctx.waiter()) ctx.waiter()->Cancel();
    ApplyReadiness();
    return false;
  }
  if (out.kind == abi::Outcome::Kind::kDeferred) {
    std::shared_ptr<Waiter> w = ctx.waiter();
    bool interrupted = false;
    bool moved = false;
    // Signals are blocked while the thread is in the engine and delivered
    // only inside ppoll, so a signal that arrives while the thread is
    // between two polls still ends the wait (EINTR) instead of being
    // handled unseen.
    sigset_t all, old_mask;
    bool masked = false;
    while (w && !w->answered()) {
      if (!masked) {
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &old_mask);
        masked = true;
      }
      // Wait for the engine's host events or this thread's wake-up; the
      // lock is free meanwhile, so other threads' calls complete this one.
      ApplyReadiness();
      pollfd fds[2] = {{loop_, POLLIN, 0}, {WakeFd(pid_), POLLIN, 0}};
      t_in_engine = false;
      waiting_threads_.fetch_add(1, std::memory_order_relaxed);
      host_->ForgetFileChecks();
      lock.unlock();
      int n = ppoll(fds, 2, nullptr, &old_mask);
      int err = n < 0 ? errno : 0;
      lock.lock();
      host_->ForgetFileChecks();
      waiting_threads_.fetch_sub(1, std::memory_order_relaxed);
      t_in_engine = true;
      if (fds[1].revents & POLLIN) {
        uint64_t v;
        (void)!read(fds[1].fd, &v, sizeof v);
      }
      Pump();
      if (w->answered()) break;
      if (w->moved()) {
        moved = true;
        break;
      }
      if (err == EINTR) {
        // A signal: illumos and the BSDs never restart these waits.
        w->Cancel();
        interrupted = true;
        break;
      }
    }
    if (masked) pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
    if (moved) {
      // The port moved before fork while this call waited: nothing was
      // taken here; the library issues the call to the supervisor.
      if (ctx.wait()) parked_.erase(*ctx.wait());
      ApplyReadiness();
      return false;
    }
    if (ctx.wait()) {
      if (interrupted) {
        ports_->CancelWait(*ctx.wait());
        kqueues_->CancelWait(*ctx.wait());
      }
      parked_.erase(*ctx.wait());
    }
    out = interrupted || !w ? abi::Outcome::Error(EINTR) : w->outcome();
  }
  long r = 0;
  switch (out.kind) {
    case abi::Outcome::Kind::kValue:
      r = static_cast<long>(out.value);
      break;
    case abi::Outcome::Kind::kError:
      r = -out.error;
      break;
    case abi::Outcome::Kind::kNewObject:
      r = InstallObject(out.object_kind, out.object, out.cloexec);
      break;
    case abi::Outcome::Kind::kDeferred:
      r = -EINTR;
      break;
  }
  if (auto lo = ctx.last_object()) DrainIfNeeded(lo->first, lo->second);
  ApplyReadiness();
  *result = r;
  return true;
}

void Engine::DisplaceWaits(const std::vector<emul::WaitId>& waits) {
  for (emul::WaitId id : waits) {
    auto it = parked_.find(id);
    if (it == parked_.end()) continue;
    if (std::shared_ptr<Waiter> w = it->second.waiter.lock()) w->Move();
  }
}

void Engine::StartIdlePump() {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &old);  // the thread inherits: no signal is the pump's
  pthread_t t;
  if (pthread_create(&t, nullptr, [](void* self) -> void* {
        static_cast<Engine*>(self)->IdlePumpLoop();
        return nullptr;
      }, this) == 0) {
    pthread_detach(t);
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

void Engine::IdlePumpLoop() {
  for (;;) {
    epoll_event ev;
    // Level-triggered: this only looks; Pump() consumes.
    if (epoll_wait(loop_, &ev, 1, -1) < 0) {
      if (errno == EINTR) continue;
      return;
    }
    const int64_t idle = MonotonicNs() - last_call_ns_.load(std::memory_order_relaxed);
    if (waiting_threads_.load(std::memory_order_relaxed) > 0 || idle < kIdleNs) {
      // A thread is in the engine or was a moment ago: it pumps itself.
      SleepNs(idle < kIdleNs && idle >= 0 ? kIdleNs - idle : kIdleNs);
      continue;
    }
    std::lock_guard<std::mutex> lock(mu_);
    host_->ForgetFileChecks();
    Pump();
    host_->ForgetFileChecks();
  }
}

void Engine::PrepareCall() {
  Pump(/*apply_readiness=*/false);
  // As the supervisor before each call: file changes, watched descriptors
  // that became ready and deadlines already due are seen first
  // (port.c:158-163; DF kern_event.c:1647-1660; OB kern_event.c:1731-1760).
  if (host_->path_watch_count() > 0) {
    // MOUNTEDOVER: a mount made before this call is seen by it.
    pollfd mounts{host_->path_mounts_fd(), POLLPRI, 0};
    if (mounts.fd >= 0 && poll(&mounts, 1, 0) == 1 && (mounts.revents & POLLPRI)) host_->OnMountsChanged();
    host_->ReadPathEvents();
  }
  // Ready watches were routed by Pump: the watches' collecting epoll sits
  // in the loop, and epoll readiness propagates synchronously.
  ApplySignals();
  ports_->CatchUpDeadlines();
  kqueues_->CatchUpDeadlines();
}

void Engine::Pump(bool apply_readiness) {
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(loop_, events, 64, 0);
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (data & LinuxHost::kHostTag) {
        host_->OnHostEvent(data);
        continue;
      }
      if (data & LinuxHost::kWatchTag) {
        CollectWatchReadiness();
        continue;
      }
      switch (data & kTagMask) {
        case kTagDeadline: {
          uint64_t ticks;
          while (read(host_->deadline_fd(), &ticks, sizeof ticks) > 0) {
          }
          ports_->OnDeadline();
          kqueues_->OnDeadline();
          break;
        }
        case kTagPathWatch:
          host_->ReadPathEvents();
          break;
        case kTagSignals: {
          uint64_t v;
          (void)!read(signal_efd_, &v, sizeof v);
          ApplySignals();
          break;
        }
        case kTagSweep: {
          uint64_t ticks;
          while (read(sweep_fd_, &ticks, sizeof ticks) > 0) {
          }
          Sweep();
          break;
        }
        case kTagObject:
          ObjectClosed(data & ~kTagMask);
          break;
        default:
          break;
      }
    }
    // A call applies readiness at its end (an event it takes at once then
    // costs no byte); a wake-up without a call applies it now.
    if (apply_readiness) ApplyReadiness();
  } while (n == 64);
}

void Engine::CollectWatchReadiness() {
  for (int pass = 0; pass < 8; ++pass) {
    std::vector<std::pair<emul::WatchId, uint32_t>> ready = host_->TakeReadyWatches();
    if (ready.empty()) break;
    for (auto [id, revents] : ready) {
      ports_->OnWatchReady(id, revents);
      kqueues_->OnWatchReady(id, revents);  // watch ids are host-wide: one engine owns it
    }
    // A byte sent can make a watch on that object's descriptor ready (a
    // port in a port): only then is another pass worth a look. While no
    // watch is on an object's descriptor, the byte waits for the end of
    // the call, which usually takes the event at once (no byte at all).
    if (!objects_watched_ || !ApplyReadiness()) break;
  }
}

long Engine::InstallObject(abi::ObjectKind kind, emul::ObjectId obj, bool cloexec) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) {
    int err = errno;
    objects_.erase(obj);
    switch (kind) {
      case abi::ObjectKind::kPort:
        ports_->LastClose(obj);
        break;
      case abi::ObjectKind::kKqueue:
        kqueues_->Close(obj);
        break;
    }
    // The process's descriptor table is full (port.c:765-774).
    return -(err == ENFILE ? ENOMEM : err);
  }
  if (!cloexec) fcntl(sv[1], F_SETFD, 0);
  struct stat st {};
  fstat(sv[1], &st);
  if (kind == abi::ObjectKind::kPort) {
    // The smallest send buffer: a little filler makes the port descriptor
    // unwritable while the port is full (OnObjectWritable, rule 3).
    int one = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  }
  Object o;
  o.kind = kind;
  o.engine_end = sv[0];
  o.inode = st.st_ino;
  o.holder_fd = sv[1];
  objects_[obj] = o;
  by_inode_[st.st_ino] = obj;
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLHUP;
  ev.data.u64 = kTagObject | obj;
  epoll_ctl(loop_, EPOLL_CTL_ADD, sv[0], &ev);
  // Events queued before the descriptor existed (a kqueue copy) show now.
  if (kind == abi::ObjectKind::kKqueue && kqueues_->PendingCount(obj) > 0) OnObjectReadiness(obj, true);
  return sv[1];
}

// Every descriptor of the object is closed: the last close (rule 33;
// kqueue_close).
void Engine::ObjectClosed(emul::ObjectId obj) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return;
  const abi::ObjectKind kind = it->second.kind;
  epoll_ctl(loop_, EPOLL_CTL_DEL, it->second.engine_end, nullptr);
  close(it->second.engine_end);
  by_inode_.erase(it->second.inode);
  objects_.erase(it);
  switch (kind) {
    case abi::ObjectKind::kPort:
      ports_->LastClose(obj);
      break;
    case abi::ObjectKind::kKqueue:
      kqueues_->Close(obj);
      kqueues_->ForkSourceClosed(obj);
      break;
  }
}

bool Engine::FdIsObject(int fd, uint64_t inode) const {
  struct stat st {};
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode;
}

// Whether the process still has a descriptor of `obj` (rule 32): the one
// it last named it by, else a scan of its descriptor table.
bool Engine::HoldsObject(emul::ObjectId obj) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return true;  // being created: its creator holds it
  Object& o = it->second;
  if (FdIsObject(o.holder_fd, o.inode)) return true;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return true;
  const int skip = dirfd(d);
  bool found = false;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd == skip || !FdIsObject(fd, o.inode)) continue;
    o.holder_fd = fd;
    found = true;
    break;
  }
  closedir(d);
  return found;
}

void Engine::OnObjectReadiness(emul::ObjectId obj, bool readable) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return;
  Object& o = it->second;
  o.want_readable = readable;
  if (!o.readiness_pending) {
    o.readiness_pending = true;
    readiness_pending_.push_back(obj);
  }
}

// As the supervisor's: a byte in the program's end while events are
// queued, applied only at the end of a call or a wake-up, so an event taken
// at once costs nothing.
bool Engine::ApplyReadiness() {
  bool sent = false;
  for (emul::ObjectId obj : readiness_pending_) {
    auto it = objects_.find(obj);
    if (it == objects_.end()) continue;
    Object& o = it->second;
    o.readiness_pending = false;
    if (o.want_readable && !o.signalled) {
      char byte = 1;
      if (send(o.engine_end, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) == 1) {
        o.signalled = true;
        sent = true;
      }
    }
    o.needs_drain = !o.want_readable && o.signalled;
    // The program's descriptor is in this process: drain it now.
    if (o.needs_drain && FdIsObject(o.holder_fd, o.inode)) DrainIfNeeded(obj, o.holder_fd);
  }
  readiness_pending_.clear();
  return sent;
}

void Engine::DrainIfNeeded(emul::ObjectId obj, int fd) {
  auto it = objects_.find(obj);
  if (it == objects_.end() || !it->second.needs_drain) return;
  char buf[64];
  (void)recv(fd, buf, sizeof buf, MSG_DONTWAIT);
  it->second.signalled = false;
  it->second.needs_drain = false;
}

// Rule 3 (port_vnops.c port_poll): POLLOUT only while a slot is free. As
// the supervisor does, with the program's own descriptor.
void Engine::OnObjectWritable(emul::ObjectId obj, bool writable) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return;
  Object& o = it->second;
  if (writable) {
    if (!o.filled) return;
    char buf[4096];
    while (recv(o.engine_end, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    o.filled = false;
    return;
  }
  if (o.filled || !FdIsObject(o.holder_fd, o.inode)) return;
  static const char kFiller[4096] = {};
  while (send(o.holder_fd, kFiller, sizeof kFiller, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
  }
  o.filled = true;
}

void Engine::ArmSweep(bool on) {
  if (on == sweep_armed_) return;
  sweep_armed_ = on;
  itimerspec its{};
  if (on) {
    its.it_interval.tv_nsec = 200'000'000;
    its.it_value.tv_nsec = 200'000'000;
  }
  timerfd_settime(sweep_fd_, 0, &its, nullptr);
}

// Rule 27 (port.c closeandsetf): a thread waiting on a port descriptor that
// another thread closed fails with EBADF; a process that holds the port
// nowhere any more loses its associations (rule 32). close() of the port
// descriptor is not seen, so waiters are checked periodically, as the
// supervisor does.
void Engine::Sweep() {
  std::vector<std::pair<emul::WaitId, emul::ObjectId>> closed;
  std::set<emul::ObjectId> dispatch_ports;
  bool any_port = false;
  for (auto& [wid, p] : parked_) {
    if (!p.port) continue;
    any_port = true;
    auto it = objects_.find(p.obj);
    if (it == objects_.end() || !FdIsObject(p.fd, it->second.inode)) {
      closed.emplace_back(wid, p.obj);
    } else if (ports_->Exists(p.obj) && ports_->DispatcherCount(p.obj) > 0) {
      dispatch_ports.insert(p.obj);
    }
  }
  for (auto& [wid, obj] : closed) {
    parked_.erase(wid);
    ports_->AbortWait(wid, EBADF);
    if (!HoldsObject(obj)) ports_->CloseBy(obj, static_cast<emul::Pid>(pid_));
  }
  // A PORT_DISPATCH waiting for a slot: closed associations give theirs back.
  for (emul::ObjectId obj : dispatch_ports) ports_->DropClosedFds(obj);
  if (!any_port) ArmSweep(false);
  ApplyReadiness();
}

}  // namespace evshim::shim::inproc
