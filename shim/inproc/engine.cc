#include "shim/inproc/engine.h"

#include "shim/inproc/fast_trace.h"
#include "shim/inproc/native_abi.h"
#include "shim/inproc/trap_install.h"
#include "shim/runtime/own_fd.h"

#include "abi/illumos/constants.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <linux/futex.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <optional>
#include <string>
#include <thread>

namespace evshim::shim::inproc {

using emul::Errno;
using emul::Result;

namespace {

// Tags of the loop epoll's own events; the host's sources use loop_tag
// (shim/runtime/host_events.h) and LinuxHost's bits.
constexpr uint64_t kTagSweep = 4ULL << 56;
constexpr uint64_t kTagSignals = 7ULL << 56;

// The calling thread's own stack, found once per thread: [low, high) is
// mapped readable and writable for as long as the thread lives (a stack
// mapping never shrinks while its thread runs). Unknown (low == high) when
// it cannot be told.
struct OwnStack {
  uintptr_t low = 0;
  uintptr_t high = 0;
  pid_t pid = 0;  // found in this process (a forked child finds it again)
};
thread_local OwnStack t_stack;
// While the thread is inside Engine::Call: that frame's address. Memory
// from there up to the stack's top holds the callers' frames, so it is
// mapped; 0 outside a call (the idle pump, the poll family's settle: their
// copies take the checked path, as do copies to another thread's stack when
// a call completes that thread's wait).
thread_local uintptr_t t_call_frame = 0;

// The mapping of /proc/self/maps that contains `addr`, if it is readable
// and writable. Read with the system calls (OpenOwnFd, ReadOwnFd) into a
// buffer on the stack: no stdio (fclose would report a close) and no
// allocation (it runs inside the program's call, whose own memory it must
// leave as it was).
bool FindRwMapping(uintptr_t addr, uintptr_t* low, uintptr_t* high) {
  const int fd = OpenOwnFd("/proc/self/maps", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[8192];
  size_t held = 0;  // bytes of an unfinished line at the start of buf
  bool found = false, done = false;
  while (!done) {
    const ssize_t n = ReadOwnFd(fd, buf + held, sizeof buf - 1 - held);
    if (n <= 0) break;
    held += static_cast<size_t>(n);
    buf[held] = '\0';
    char* line = buf;
    while (char* nl = std::strchr(line, '\n')) {
      *nl = '\0';
      unsigned long start = 0, stop = 0;
      char perms[5] = {};
      if (std::sscanf(line, "%lx-%lx %4s", &start, &stop, perms) == 3 && addr >= start && addr < stop) {
        found = perms[0] == 'r' && perms[1] == 'w';
        *low = start;
        *high = stop;
        done = true;
        break;
      }
      line = nl + 1;
    }
    if (done) break;
    held = static_cast<size_t>(buf + held - line);
    if (held == sizeof buf - 1) break;  // a line longer than the buffer: give up (checked copies)
    std::memmove(buf, line, held);
  }
  CloseOwnFd(fd);  // not the libraries' close() (shim/runtime/own_fd.h)
  return found;
}

const OwnStack& ThisThreadStack(pid_t pid) {
  if (t_stack.pid == pid) return t_stack;
  t_stack = OwnStack{};
  t_stack.pid = pid;
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return t_stack;
  void* base = nullptr;
  size_t size = 0;
  const bool got = pthread_attr_getstack(&attr, &base, &size) == 0;
  pthread_attr_destroy(&attr);
  if (!got) return t_stack;
  uintptr_t low = reinterpret_cast<uintptr_t>(base);
  uintptr_t high = low + size;
  // The main thread's stack is the size of its limit, not of its mapping:
  // only the part mapped now counts (it grows down and never shrinks).
  uintptr_t map_low = 0, map_high = 0;
  const uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  if (!FindRwMapping(here, &map_low, &map_high)) return t_stack;
  low = std::max(low, map_low);
  high = std::min(high, map_high);
  if (low < high && here >= low && here < high) {
    t_stack.low = low;
    t_stack.high = high;
  }
  return t_stack;
}

// The process's own memory. A range on the calling thread's stack between
// the engine's call frame and the stack's top is mapped: copied directly
// (the program's locals: port_getn's list and count in an event loop).
// Anything else is copied by CopyCatchingFaults where FaultCopyReady says
// it may run (the engine's SIGSEGV/SIGBUS handler turns a fault of that copy
// into its failure: docs/design.md "A copy that survives a fault"), else
// through process_vm_readv/writev: either way a bad pointer is EFAULT,
// never SIGSEGV, and nothing partial counts as done (part of a write may
// have landed, as with process_vm_writev).
//
// A range on the stack of a thread waiting in Engine::Call (between that
// call's frame and its stack's top) is copied directly too: that thread
// cannot leave the call while the copy runs (it needs the lock, or the
// answer that follows the copy), so its callers' frames stay mapped and
// untouched (`on_waiting_stack`, with the lock held).
class SelfMemory final : public abi::GuestMemory {
 public:
  using StackCheck = std::function<bool(uint64_t addr, size_t size)>;
  SelfMemory(pid_t pid, StackCheck on_waiting_stack) : pid_(pid), on_waiting_stack_(std::move(on_waiting_stack)) {}
  Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    if (out.empty()) return {};
    if (OnCallersStack(addr, out.size())) {
      std::memcpy(out.data(), reinterpret_cast<const void*>(addr), out.size());
      return {};
    }
    if (FaultCopyReady()) {
      if (CopyCatchingFaults(out.data(), reinterpret_cast<const void*>(addr), out.size())) return {};
      return Errno{EFAULT};
    }
    iovec local{out.data(), out.size()};
    iovec remote{reinterpret_cast<void*>(addr), out.size()};
    if (process_vm_readv(pid_, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(out.size())) {
      return Errno{EFAULT};
    }
    return {};
  }
  // The caller's own frames first, inline (a retrieval's list on the
  // program's stack: every answer of an event loop); the rest out of line.
  Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    if (!in.empty() && OnCallersStack(addr, in.size())) [[likely]] {
      std::memcpy(reinterpret_cast<void*>(addr), in.data(), in.size());
      return {};
    }
    return WriteElsewhere(addr, in);
  }
  // The caller's own frames only (OnCallersStack): mapped and writable for
  // the whole call. Another thread's waiting stack is not lent: its copy
  // needs the lock, which the codec does not know of.
  std::byte* InPlace(uint64_t addr, size_t size) override {
    if (size != 0 && OnCallersStack(addr, size)) [[likely]] return reinterpret_cast<std::byte*>(addr);
    return nullptr;
  }

 private:
  __attribute__((noinline)) Result<void> WriteElsewhere(uint64_t addr, std::span<const std::byte> in) {
    if (in.empty()) return {};
    if (on_waiting_stack_(addr, in.size())) {
      std::memcpy(reinterpret_cast<void*>(addr), in.data(), in.size());
      return {};
    }
    if (FaultCopyReady()) {
      if (CopyCatchingFaults(reinterpret_cast<void*>(addr), in.data(), in.size())) return {};
      return Errno{EFAULT};
    }
    iovec local{const_cast<std::byte*>(in.data()), in.size()};
    iovec remote{reinterpret_cast<void*>(addr), in.size()};
    if (process_vm_writev(pid_, &local, 1, &remote, 1, 0) != static_cast<ssize_t>(in.size())) {
      return Errno{EFAULT};
    }
    return {};
  }

  // Inline and with no call on the usual path (the thread's stack already
  // found in this process), so that the copies' fast paths are leaves.
  bool OnCallersStack(uint64_t addr, size_t size) const {
    const uintptr_t frame = t_call_frame;
    if (frame == 0) return false;
    if (t_stack.pid != pid_) [[unlikely]] return OnCallersStackFirst(frame, addr, size);
    return WithinCallersFrames(t_stack, frame, addr, size);
  }
  // The thread's first copy in this process: its stack is found first.
  __attribute__((noinline)) bool OnCallersStackFirst(uintptr_t frame, uint64_t addr, size_t size) const {
    return WithinCallersFrames(ThisThreadStack(pid_), frame, addr, size);
  }
  static bool WithinCallersFrames(const OwnStack& stack, uintptr_t frame, uint64_t addr, size_t size) {
    if (frame < stack.low || frame >= stack.high) return false;  // another stack (sigaltstack, a fiber)
    return addr >= frame && addr < stack.high && size <= stack.high - addr;
  }

  pid_t pid_;
  StackCheck on_waiting_stack_;
};

// Each thread's wake-up eventfd (a deferred call answered by another thread
// writes it). Made again in a forked child, whose copy is the parent's.
// `epfd`: an epoll holding only that eventfd, edge-triggered, which a
// waiter that does not watch the loop sleeps on: every write is one edge,
// so the count needs no read (docs/design.md "Waiting"). `unread`: such a
// wake-up left the count up; a ppoll (level) on the eventfd must read it
// first.
struct ThreadWake {
  int fd = -1;
  int epfd = -1;
  pid_t pid = 0;
  bool unread = false;
  ~ThreadWake() {
    if (epfd >= 0) close(epfd);
    if (fd >= 0) close(fd);
  }
};
thread_local ThreadWake t_wake;
// Set while this thread runs inside the engine (a call, a settle, the idle
// pump's look): a call reaching the engine again on the same thread (a
// close() in a signal handler, a library wrapper the engine's own work
// calls) must not wait for the lock it holds.
thread_local bool t_in_engine = false;
// Set for the whole of a call on this thread (its wait included) and on the
// idle pump: the engine's own poll/ppoll/epoll_wait reach the foreign
// library's interposed ones, whose settle must then do nothing (a waiting
// thread that settled would take its own answer and then sleep in ppoll).
thread_local bool t_engine_thread = false;
// Set on the idle pump's thread: it makes no descriptor (IdlePumpLoop).
thread_local bool t_idle_pump = false;
// Poll-family calls of this thread counted in Engine::pollers_ (nested: a
// signal handler's poll inside a poll).
thread_local int t_poll_depth = 0;

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

int MakeWakeFd(pid_t pid);
// Inline, the usual answer first: every deferred call asks (Context::Defer).
inline int WakeFd(pid_t pid) {
  if (t_wake.pid == pid && t_wake.fd >= 0) [[likely]] return t_wake.fd;
  return MakeWakeFd(pid);
}

// The thread's first wake-up eventfd in this process (or again after a
// failed eventfd).
__attribute__((noinline)) int MakeWakeFd(pid_t pid) {
  if (t_wake.pid != pid) {  // the parent's, inherited
    if (t_wake.epfd >= 0) close(t_wake.epfd);
    if (t_wake.fd >= 0) close(t_wake.fd);
    t_wake.epfd = -1;
    t_wake.unread = false;
  }
  t_wake.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  t_wake.pid = pid;
  return t_wake.fd;
}

// The edge-triggered epoll on this thread's eventfd (-1 if it could not be
// made: the waiter then polls the eventfd itself).
int WakeEpoll(pid_t pid) {
  const int fd = WakeFd(pid);
  if (t_wake.epfd < 0 && fd >= 0) {
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    if (ep >= 0 && epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
      t_wake.epfd = ep;
    } else if (ep >= 0) {
      close(ep);
    }
  }
  return t_wake.epfd;
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

// Which identity answers a call checks afresh (Engine::SyncFileChecks).
// Retrieval (port_get/port_getn, a kevent without changes) and
// port_send/port_alert name no watched descriptor: they deliver what the
// watches reported and keep the answers while no descriptor was closed
// through the library. An association names one number: that number is
// checked again (its re-arm is the check, one EPOLL_CTL_MOD). Anything
// else (kevent change lists, the close report, timers, file watches)
// checks every answer again, as before.
int NumberToCheck(abi::Call call, const PortCall& port_call, const uint64_t args[6]) {
  namespace il = abi::illumos;
  if (call == abi::Call::kKevent || call == abi::Call::kKevent11) {
    // kevent(kq, changelist, nchanges, eventlist, nevents, timeout): the
    // same on the three BSDs and both data models.
    return static_cast<int32_t>(args[2]) == 0 ? Engine::kCheckNone : Engine::kCheckAll;
  }
  if (!port_call.portfs) return Engine::kCheckAll;
  switch (port_call.code) {
    case il::PORT_GET:
    case il::PORT_GETN:
    case il::PORT_SEND:
    case il::PORT_ALERT:
      return Engine::kCheckNone;
    case il::PORT_ASSOCIATE:
    case il::PORT_DISSOCIATE:
      return port_call.fd_object >= 0 ? port_call.fd_object : Engine::kCheckAll;
    default:
      return Engine::kCheckAll;
  }
}

// An answer the woken thread can return without the lock (no descriptor
// to install).
bool IsPlainAnswer(const abi::Outcome& out) {
  switch (out.kind) {
    case abi::Outcome::Kind::kValue:
    case abi::Outcome::Kind::kError:
      return true;
    case abi::Outcome::Kind::kNewObject:
    case abi::Outcome::Kind::kDeferred:
      return false;
  }
  return false;
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
  const char* byte = std::getenv("EVSHIM_READINESS_BYTE");
  o.byte_always = byte != nullptr && std::strcmp(byte, "always") == 0;
  return o;
}

// A deferred call's answer, given by whichever thread completes the wait
// (always with the engine lock held). `woken_with_answer_` is also read
// without the lock by the waiting thread once woken: set last, with release.
class Engine::Waiter final : public abi::Responder {
 public:
  Waiter(Engine& engine, int wake_fd)
      : engine_(engine), wake_fd_(wake_fd), pid_(engine.pid_), thread_(std::this_thread::get_id()) {}
  // Whether this waiter, kept by its thread after its call ended, may serve
  // that thread's next deferred call on `engine` (no allocation per call):
  // nothing else holds it (no completion, no parked entry) and it belongs
  // to this engine and process. With the lock held.
  bool ReusableFor(const Engine& engine, long use_count, int wake_fd) const {
    if (use_count != 1 || &engine_ != &engine || pid_ != engine.pid_ || wake_fd_ != wake_fd) return false;
    return !wait_id_ || !engine.parked_.contains(*wait_id_);
  }
  // Made new again for the next call of its thread (ReusableFor).
  void Reset() {
    trace_ = fasttrace::On() ? fasttrace::Current() : nullptr;
    answered_ = false;
    woken_with_answer_.store(false, std::memory_order_relaxed);
    answer_on_its_way_.store(false, std::memory_order_relaxed);
    wake_owed_ = false;
    cancelled_ = false;
    moved_ = false;
    wait_id_.reset();
    outcome_ = abi::Outcome();
    listed = false;
    stack_low = stack_high = 0;
  }
  bool StillPending() override { return !answered() && !cancelled_ && !moved_; }
  bool Respond(const abi::Outcome& out) override {
    if (answered() || cancelled_ || moved_) return false;
    outcome_ = out;
    if (trace_ != nullptr) trace_->Answered(out);  // trace
    // Its bookkeeping is done here, under the lock, so that the woken
    // thread returns without taking the lock again (Engine::Call).
    // Answered before it waited (a retrieval the handler answers at once)
    // is neither listed nor the loop's watcher: nothing to stop.
    if (listed || engine_.loop_watcher_ == this) engine_.StopWaiting(this);
    if (wait_id_) engine_.parked_.erase(*wait_id_);
    answered_ = true;
    if (std::this_thread::get_id() != thread_) {
      // Woken once the lock is free (EngineMutex::unlock), which then sets
      // woken_with_answer_: only then may the thread return (its wake-up
      // descriptor is closed when the thread ends).
      wake_owed_ = true;
      answer_on_its_way_.store(true, std::memory_order_release);
      engine_.mu_.OweWake(wake_fd_, &woken_with_answer_);
    }
    return true;
  }
  // A signal ended the wait first: a later completion finds it gone and
  // keeps its events (the kernels never restart these waits).
  void Cancel() { cancelled_ = true; }
  // Its port moved to the supervisor (fork_move.cc): the call goes there.
  void Move() {
    moved_ = true;
    Wake();
  }
  void Wake() {
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
  }
  void set_wait_id(emul::WaitId id) { wait_id_ = id; }
  bool moved() const { return moved_; }
  bool answered() const { return answered_; }  // with the lock held
  // Without the lock: answered by another thread, which has woken this one.
  bool woken_with_answer() const { return woken_with_answer_.load(std::memory_order_acquire); }
  // Answered by another thread, whose unlock wakes this one.
  bool wake_owed() const { return wake_owed_; }
  // Without the lock: answered by another thread, which is about to mark
  // it woken (it runs between its unlock and that mark: a few instructions
  // and one write).
  bool answer_on_its_way() const { return answer_on_its_way_.load(std::memory_order_acquire); }
  const abi::Outcome& outcome() const { return outcome_; }
  // In Engine::waiting_ (the thread is in its wait loop), with the part of
  // its stack that holds its callers' frames ([low, high); empty if unknown).
  bool listed = false;
  uintptr_t stack_low = 0, stack_high = 0;

 private:
  Engine& engine_;
  int wake_fd_;
  pid_t pid_;
  std::thread::id thread_;
  fasttrace::CallTrace* trace_ = fasttrace::On() ? fasttrace::Current() : nullptr;
  bool answered_ = false;
  std::atomic<bool> woken_with_answer_{false};
  std::atomic<bool> answer_on_its_way_{false};
  bool wake_owed_ = false;
  bool cancelled_ = false;
  bool moved_ = false;
  std::optional<emul::WaitId> wait_id_;
  abi::Outcome outcome_;
};

class Engine::Context final : public abi::CallContext {
 public:
  Context(Engine& engine, abi::GuestMemory& memory, bool traced)
      : engine_(engine), memory_(memory),
        caller_{static_cast<emul::Pid>(engine.pid_), ThreadId(engine.pid_)}, traced_(traced) {}

  emul::Caller caller() const override { return caller_; }
  abi::GuestMemory& memory() override { return memory_; }
  Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    if (fd < 0) return Errno{EBADF};
    // Read before the fstat: a close reported during it makes the answer
    // kept under this epoch stale at once.
    const uint64_t epoch = close_epoch_.load(std::memory_order_acquire);
    if (std::optional<KnownObject> known = engine_.KnownObjectAt(fd, epoch)) {
      return Found(known->obj, kind, fd, known->kind);
    }
    return ResolveByStat(fd, kind, epoch);
  }
  // Out of line (its stat buffer and calls): the usual call names an
  // object the engine kept (Resolve).
  __attribute__((noinline)) Result<emul::ObjectId> ResolveByStat(int fd, abi::ObjectKind kind, uint64_t epoch) {
    struct stat st {};
    if (fstat(fd, &st) != 0) return Errno{EBADF};
    if (S_ISSOCK(st.st_mode)) {
      if (std::optional<emul::ObjectId> obj = engine_.objects_->FindByInode(st.st_ino)) {
        engine_.RememberObjectAt(fd, *obj, epoch);
        return Found(*obj, kind, fd, engine_.objects_->KindOf(*obj));
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
  // `actual`: the object's kind, as the caller looked it up.
  Result<emul::ObjectId> Found(emul::ObjectId obj, abi::ObjectKind kind, int fd,
                               std::optional<abi::ObjectKind> actual) {
    if (actual != kind) return Errno{EBADFD};
    if (move_named_port_) {
      (void)engine_.MovePort(obj);  // not moved: the supervisor answers EBADFD
      return Errno{EBADFD};
    }
    engine_.objects_->NoteHolder(obj, caller_.pid, fd);
    last_object_ = {obj, fd};
    return obj;
  }
  emul::EventPorts& ports() override { return *engine_.ports_; }
  emul::Kqueues* kqueues() override { return engine_.kqueues_.get(); }
  // The calling thread runs the handler and holds the lock: an answer given
  // before the handler returns is never refused (Waiter::Respond accepts it
  // as well), so it is the handler's outcome, with no Waiter made ready for
  // it (Defer). Not while the call is traced: the trace hears of deferred
  // answers through the Waiter (docs/trace.md "Fast mode").
  bool AnswersInCall() const override {
    if (traced_) return false;
    asked_in_call_ = true;
    return true;
  }
  std::shared_ptr<abi::Responder> Defer() override {
    if (waiter_) return waiter_;
    // The thread's previous waiter, when its call left nothing holding it.
    thread_local std::shared_ptr<Waiter> t_spare;
    const int wake_fd = WakeFd(engine_.pid_);
    if (t_spare && t_spare->ReusableFor(engine_, t_spare.use_count(), wake_fd)) {
      t_spare->Reset();
    } else {
      t_spare = std::make_shared<Waiter>(engine_, wake_fd);
    }
    waiter_ = t_spare;
    return waiter_;
  }
  void Parked(emul::WaitId id) override {
    wait_ = id;
    ParkedWait p;
    if (last_object_) {
      p.obj = last_object_->first;
      p.fd = last_object_->second;
      p.port = engine_.objects_->KindOf(p.obj) == abi::ObjectKind::kPort;
    }
    p.waiter = waiter_;
    if (waiter_) {
      if (waiter_->answered()) return;  // answered already: nothing to keep
      waiter_->set_wait_id(id);
    }
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
  // The call was served here and goes to the supervisor as well (a close
  // report once a port moved there).
  void ForwardCloseReport() { foreign_ = true; }
  bool foreign() const { return foreign_; }
  // The handler may have answered in the call (AnswersInCall was asked).
  bool asked_in_call() const { return asked_in_call_; }
  const std::shared_ptr<Waiter>& waiter() const { return waiter_; }
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
  bool traced_;
  mutable bool asked_in_call_ = false;
};

Engine::Engine(EngineOptions options, std::shared_ptr<const Inherited> inherited)
    : options_(options), inherited_(std::move(inherited)), pid_(getpid()),
      memory_(std::make_unique<SelfMemory>(pid_, [this](uint64_t addr, size_t size) {
        return OnWaitingStack(addr, size);
      })) {
  loop_ = epoll_create1(EPOLL_CLOEXEC);
  objects_ = std::make_unique<ObjectTable>(loop_, loop_tag::kObject, ends_, /*drain_at_once=*/true,
                                           options_.byte_always ? nullptr : &pollers_);
  host_ = std::make_unique<LinuxHost>(loop_, [this](emul::Pid pid) { return PidfdOf(pid); });
  host_->set_local_process(pid_);
  look_ = host_->look_fd() >= 0 ? host_->look_fd() : loop_;
  host_->set_switch_offs_per_call(true);  // EndCall at the end of each call and look
  host_->set_one_shot_associations(true);  // AssociatePlacedWithoutLook
  host_->set_file_check_memo(true);  // forgotten whenever the lock is taken or given up
  // A watch of the engine's own on an object's descriptor (a port in a
  // port) reads the byte itself, registered before its readiness is polled.
  // The number's fstat is the call's (the watch's open check made it).
  host_->set_register_callback([this](int fd) {
    const struct stat* st = host_->LocalStat(fd);
    if (st == nullptr || !S_ISSOCK(st->st_mode)) return;
    if (std::optional<emul::ObjectId> obj = objects_->FindByInode(st->st_ino)) {
      objects_watched_ = true;
      objects_->MarkPolled(*obj);
    }
  });
  host_->set_readiness_table(objects_.get());
  objects_->set_polled_callback([this] { EnsureIdlePump(); });
  host_->set_process_watch_callback([this] { EnsureIdlePump(); });
  host_->set_writable_callback([this](emul::ObjectId o, bool w) { objects_->OnWritable(o, w); });
  ports_ = std::make_unique<emul::EventPorts>(*host_, options_.port_limits);
  kqueues_ = std::make_unique<emul::Kqueues>(*host_, options_.kqueue_limits);
  engines_ = std::make_unique<emul::Engines>(*host_);
  // Engine::CatchUpDeadlines and AnyDeadlineDue name these two, in this
  // order: an engine added here is added there too.
  engines_->Add(*ports_);
  engines_->Add(*kqueues_);
  host_->set_kqueue_sink(LinuxHost::KqueueSink{
      [this](emul::Pid pid, int64_t status) { kqueues_->OnProcessExit(pid, status); },
      [this](emul::Pid parent, emul::Pid child) { kqueues_->OnProcessFork(parent, child); },
      [this](emul::Pid pid) { kqueues_->OnProcessExec(pid); },
      [this](emul::WatchId id, uint32_t notes) { kqueues_->OnVnodeEvent(id, notes); },
      [this](emul::WatchId id, uint32_t changes) { kqueues_->OnMountEvent(id, changes); }});
  host_->set_path_sink([this](emul::WatchId id, uint32_t bits) { ports_->OnFileEvent(id, bits); });
  host_->set_holds_callback([this](emul::Pid, emul::ObjectId obj) { return HoldsObject(obj); });
  host_->set_kqueue_at_callback([this](emul::Pid, int fd) -> std::optional<emul::ObjectId> {
    const struct stat* st = host_->LocalStat(fd);  // the change's open check made it
    // An object's descriptor is a socket (ObjectTable::MakePair): a pipe or
    // a file is none, whatever its inode number (another file system's).
    if (st == nullptr || !S_ISSOCK(st->st_mode)) return std::nullopt;
    std::optional<emul::ObjectId> obj = objects_->FindByInode(st->st_ino);
    if (!obj) return std::nullopt;
    // Every fd knote asks this before its first probe (kqueue_filters.cc
    // WatchDescriptor, ReadAttach): a knote on an object's descriptor
    // probes the byte, which must be there by then.
    objects_->MarkPolled(*obj);
    if (objects_->KindOf(*obj) != abi::ObjectKind::kKqueue) return std::nullopt;
    return obj;
  });
  auto add = [this](int fd, uint64_t tag, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    epoll_ctl(loop_, EPOLL_CTL_ADD, fd, &ev);
  };
  add(host_->deadline_fd(), loop_tag::kDeadline, EPOLLIN);
  // PORT_SOURCE_FILE's inotify: made by the first file watch, which adds
  // it to the loop (no descriptor ahead of need).
  host_->set_path_inotify_loop_tag(loop_tag::kPathWatch);
  // The mount table is not in the loop: a poll of /proc/self/mountinfo
  // consumes its change, so a waiter's or the idle pump's look at the loop
  // would lose it. Each call polls it instead (PrepareCall).
  // In the look epoll itself (else in the loop): while a wake of the pump
  // is owed its count stays up (WakePumpFromLook), and each look then
  // reads one more report, with no read of the loop epoll.
  signal_efd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!host_->AddLookSource(signal_efd_)) add(signal_efd_, kTagSignals, EPOLLIN);
  sweep_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  add(sweep_fd_, kTagSweep, EPOLLIN);
  router_ = std::make_unique<HostEventRouter>(*host_, *engines_, *objects_, HostEventRouter::Hooks{
      .before_deadline = nullptr,
      // While no watch is on an object's descriptor, the byte waits for the
      // end of the call, which usually takes the event at once (no byte at
      // all); else a byte sent can make such a watch ready: look again.
      // The ports' reports held over the call go first (ReportHold).
      .after_watch_pass =
          [this] {
            if (!objects_watched_) return false;
            ports_->ReportHeldNow();
            return objects_->ApplyReadiness();
          },
      .on_fault = [](const Fault& f) { std::fprintf(stderr, "evshim: %s\n", f.Describe().c_str()); }});
  // Every byte exact from the start (a raw poll of any object's descriptor).
  if (options_.byte_always) EnsureIdlePump();
}

Engine::~Engine() {
  engines_.reset();
  ports_.reset();
  kqueues_.reset();
  host_.reset();
  objects_.reset();
  for (auto& [pid, fd] : pidfds_) close(fd);
  if (sweep_fd_ >= 0) close(sweep_fd_);
  if (signal_efd_ >= 0) close(signal_efd_);
  if (loop_ >= 0) close(loop_);
}

void Engine::AddInherited(Inherited* into) const {
  objects_->ForEach([into](emul::ObjectId, abi::ObjectKind kind, uint64_t inode) { into->objects[inode] = kind; });
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

void Engine::OnSignalReport() {
  // A wake of the pump asleep in its look is owed: the count stays until
  // the pump is out of its look (WakeTheWatcherOffTheLook), so that its poll
  // returns even if this look took the report it was woken for; the first
  // look after that reads it. Signals noted meanwhile are applied all the
  // same.
  if (pump_look_.load(std::memory_order_seq_cst) != kPumpWakeOwed) {
    uint64_t v;
    (void)!read(signal_efd_, &v, sizeof v);
  }
  ApplySignals();
}

void Engine::ApplySignals() {
  // A load first: the exchange is a locked write of the line at every
  // call, and a signal is rare.
  if (!any_signal_.load(std::memory_order_relaxed) || !any_signal_.exchange(false, std::memory_order_acquire)) return;
  for (int sig = 1; sig < kSignals; ++sig) {
    for (uint32_t n = pending_signals_[sig].exchange(0, std::memory_order_relaxed); n > 0; --n) {
      kqueues_->OnSignal(static_cast<emul::Pid>(pid_), sig);
    }
  }
}

namespace {

// Whether this thread's last port_get/port_getn waited (LikelyToWait).
thread_local bool t_last_get_waited = false;

// A wait blocks every signal before it lets the lock go (Engine::Call). A
// thread whose last retrieval waited blocks them before it takes the lock
// instead, so the lock's section holds no system call (threads blocked in
// port_get, issue 15); a signal then arriving is delivered in the wait
// (EINTR) or, if the call does not wait, once it gave the lock back, as at
// the end of a system call.
bool LikelyToWait(const PortCall& call) { return t_last_get_waited && call.IsRetrieval(); }

// Every signal blocked ahead of a call likely to wait: the wait takes the
// old mask over, or it is put back at scope exit.
class SignalsBlockedAhead {
 public:
  SignalsBlockedAhead() = default;
  SignalsBlockedAhead(const SignalsBlockedAhead&) = delete;
  SignalsBlockedAhead& operator=(const SignalsBlockedAhead&) = delete;
  ~SignalsBlockedAhead() {
    if (on_) pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  void Block() {
    sigset_t all;
    FillEngineMask(&all);  // SIGSEGV, SIGBUS stay open (trap_install.h)
    on_ = pthread_sigmask(SIG_BLOCK, &all, &old_) == 0;
  }
  bool TakeOver(sigset_t* old) {
    if (!on_) return false;
    *old = old_;
    on_ = false;
    return true;
  }

 private:
  bool on_ = false;
  sigset_t old_;  // read only while on_ (not cleared: every call builds one)
};

}  // namespace

bool Engine::Call(const abi::SyscallEntry& row, int nr, const std::array<uint64_t, 6>& raw, long* result) {
  const abi::SyscallEntry* entry = &row;
  const uint64_t* args = raw.data();
  if (t_in_engine) return false;  // a signal handler on a thread inside the engine
  // A timer's expiry may be awaited outside the engine (a SIGEV_SIGNAL
  // timer's signal in sigsuspend): the pump runs its deadlines then.
  if (entry->call == abi::Call::kTimerCreate) EnsureIdlePump();
  // Destroyed after the lock: a call that blocked signals ahead and did not
  // wait gives the mask back once the lock is free.
  SignalsBlockedAhead ahead;
  const PortCall port_call = PortCall::Decode(entry->call, args);
  if (LikelyToWait(port_call)) ahead.Block();
  std::unique_lock<EngineMutex> lock(mu_);
  if (timers_moved_ && TimerCallMoved(entry->call)) return false;
  t_in_engine = true;
  t_engine_thread = true;
  t_call_frame = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  SyncFileChecks(NumberToCheck(entry->call, port_call, args));
  struct Leave {
    Engine& e;
    std::unique_lock<EngineMutex>& lock;
    ~Leave() {
      // Under the lock still (`lock` is destroyed after this); a waiter
      // answered while the lock was free returns without it, and its wait
      // already ended the call's look (EndCall before the ppoll).
      if (lock.owns_lock()) {
        e.host_->EndCall();
        e.owed_to_a_call_.store(e.host_->OwedKeepingTheLookReadable(), std::memory_order_relaxed);
      }
      t_call_frame = 0;
      t_in_engine = false;
      t_engine_thread = false;
      // A change is all the idle pump needs: no clock read per call. (Not
      // an atomic add: two calls ending at once may count as one change.)
      e.calls_ended_.store(e.calls_ended_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
  } leave{*this, lock};
  // After a look, the ports' POLLIN reports wait for the handler's end:
  // the object table applies them only after the call (the look's Pump
  // does not; a watch pass with an object's descriptor watched lets them
  // out first), so a port that the look makes readable and the handler
  // empties reports nothing. A call without a look changes a port's POLLIN
  // in its handler only, usually once (a port_send, a port_get; twice when
  // a waiting thread takes at once what is sent): no hold; nor a call that
  // is not a portfs call (its look reports at once, as before).
  std::optional<emul::EventPorts::ReportHold> held_reports;
  // A retrieval on an empty port that looks: the look's one report for it
  // may be handed to it straight (EventPorts::OfferHandOver), except where
  // a watch on an object's descriptor lets the ports' POLLIN reports out
  // during the look (the port would not read readable then).
  emul::ObjectId hand_over_port = 0;
  // Work the idle pump left owed (it makes no descriptor: the look epoll's
  // renewal, an exit status from /proc, the pidfd of a process NOTE_TRACK
  // began to watch): this call looks, and its look does it.
  if (host_->OwedToACall()) {
    if (port_call.portfs) held_reports.emplace(*ports_);
    const uint64_t taken = host_->LookReportsTaken();
    PrepareCall();
    if (pump_look_.load(std::memory_order_seq_cst) == kPumpInLook) WakePumpFromLook(taken);
  } else if (port_call.IsFdAssociation() && AssociatePlacedWithoutLook(port_call)) {
    // No look, and no deadline is due (checked): the next look reads the
    // association's report in its place, then runs the deadlines due by then.
  } else if (SendOrRetrievalWithoutLook(port_call, &hand_over_port) || KeventWithoutLook(entry->call, args)) {
    // No look, but due deadlines still run (the clock, no system call): a
    // queued timer event counts its expirations up to the retrieval
    // (firings while it is queued count, timer.c:459-467; delivered with
    // the count, 1026-1051).
    CatchUpDeadlines();
  } else {
    if (port_call.portfs) held_reports.emplace(*ports_);
    if (hand_over_port != 0 && !objects_watched_) ports_->OfferHandOver(hand_over_port);
    const uint64_t taken = host_->LookReportsTaken();
    PrepareCall();
    // The pump asleep in its look while calls come (one load otherwise).
    if (pump_look_.load(std::memory_order_seq_cst) == kPumpInLook) WakePumpFromLook(taken);
  }
  abi::SyscallArgs a(kProcessModel, raw);
  fasttrace::CallTrace* traced =  // trace (docs/trace.md "Fast mode")
      fasttrace::On() ? fasttrace::Begin(*entry, nr, args, pid_, ThreadId(pid_), *memory_) : nullptr;
  Context ctx(*this, traced != nullptr ? traced->memory() : *memory_, traced != nullptr);
  if (timers_moved_ && entry->call == abi::Call::kTimerCreate) ctx.ForwardTimerCreate();
  abi::Outcome out;
  // Answered by another thread, whose unlock writes this thread's eventfd
  // and then marks the waiter: the call waits for that mark before it
  // returns (the waiter and the eventfd must outlive the write).
  std::shared_ptr<Waiter> owed_waiter;
  if (entry->handler != nullptr) {
    out = entry->handler(ctx, a);
  } else {
    ctx.NotImplemented(std::string(abi::PersonalityName(entry->personality)) + " " + std::string(entry->name));
    out = abi::Outcome::Error(ENOSYS);
  }
  ports_->EndHandOver();  // a report the handler did not take: queued, before the hold ends
  held_reports.reset();  // before any ApplyReadiness, and before a wait unlocks
  // A port of this process moved to the supervisor: the library's report of
  // a close (port_close_fd, port.c:164-169) is that port's too. Served here
  // for this engine's ports, then issued there by the library (docs/design.md
  // "Closing an associated descriptor").
  if (timers_moved_ && port_call.IsCloseReport()) ctx.ForwardCloseReport();
  if (traced != nullptr) traced->Handled(ctx.foreign(), out.kind == abi::Outcome::Kind::kDeferred);  // trace
  if (ctx.foreign()) {
    // The descriptor is not this engine's: the supervisor's call. Nothing
    // happened here (handlers resolve their object before any effect).
    if (entry->call == abi::Call::kTimerCreate && !timers_moved_) MoveTimersToSupervisor();
    if (ctx.wait()) {
      engines_->CancelWait(*ctx.wait());
      parked_.erase(*ctx.wait());
    }
    if (ctx.waiter()) ctx.waiter()->Cancel();
    // The supervisor serves objects of this process (a CPONFORK kqueue, a
    // moved port), and may watch this engine's objects' descriptors for
    // them (a kqueue of its own holding one): never settled here, so
    // every byte stays exact from now on.
    objects_->MarkAllPolled();
    objects_->ApplyReadiness();
    return false;
  }
  // A retrieval answered in the call did not wait (LikelyToWait), as one
  // whose Waiter was answered at once (below).
  if (ctx.asked_in_call() && out.kind != abi::Outcome::Kind::kDeferred && port_call.IsRetrieval()) {
    t_last_get_waited = false;
  }
  if (out.kind == abi::Outcome::Kind::kDeferred) {
    const std::shared_ptr<Waiter>& w = ctx.waiter();  // ctx outlives it
    bool interrupted = false;
    bool moved = false;
    // Signals are blocked while the thread is in the engine and delivered
    // only inside ppoll, so a signal that arrives while the thread is
    // between two polls still ends the wait (EINTR) instead of being
    // handled unseen.
    sigset_t all, old_mask;
    bool masked = false;
    // A retrieval is deferred also when it is answered at once (by the
    // handler itself): only a sleep counts for LikelyToWait.
    if (port_call.IsRetrieval()) t_last_get_waited = w && !w->answered();
    // Answered while the lock was free: the thread that answered did the
    // bookkeeping (Waiter::Respond), so the call returns without the lock.
    bool answered_unlocked = false;
    while (w && !w->answered()) {
      if (!masked && !ahead.TakeOver(&old_mask)) {
        FillEngineMask(&all);  // SIGSEGV, SIGBUS stay open (trap_install.h)
        pthread_sigmask(SIG_BLOCK, &all, &old_mask);
      }
      masked = true;
      // Wait for this thread's wake-up and, if no other waiting thread
      // does, for the engine's host events (one watcher: a host event
      // wakes one thread, not every waiter); the lock is free meanwhile,
      // so other threads' calls complete this one.
      objects_->ApplyReadiness();
      host_->EndCall();  // a report left for no watch must not keep the wait awake
      StartWaiting(w.get());
      const bool watch_loop = loop_watcher_ == nullptr || loop_watcher_ == w.get();
      if (watch_loop) loop_watcher_ = w.get();
      // A waiter that does not watch the loop sleeps on its eventfd's edges
      // (no read per wake-up); the watcher polls the eventfd (level) with
      // the look epoll, and first reads what edges left counted (under the
      // lock: every write made so far was for an earlier wait).
      const int edge_fd = watch_loop ? -1 : WakeEpoll(pid_);
      if (edge_fd < 0 && t_wake.unread) {
        uint64_t v;
        (void)!read(WakeFd(pid_), &v, sizeof v);
        t_wake.unread = false;
      }
      pollfd fds[2] = {{WakeFd(pid_), POLLIN, 0}, {look_, POLLIN, 0}};
      // While a wake of the pump asleep in its look is owed, the look epoll
      // stays readable (signal_efd_'s count, left for the pump): the
      // watcher would return at once, again and again. It waits for its
      // own wake-up only, marked (watcher_off_look_); the pump, once out of
      // its look, wakes the marked watcher under the lock
      // (WakeTheWatcherOffTheLook), which then watches the loop again (and
      // its look reads the count). The mark first, then the word; the pump
      // writes the word, then reads the mark: either this sees the wake
      // taken or the pump sees the mark and wakes this thread (both may: a
      // wake-up for nothing, harmless).
      bool watch_look = watch_loop;
      if (watch_loop) {
        watcher_off_look_.store(true, std::memory_order_seq_cst);
        watch_look = pump_look_.load(std::memory_order_seq_cst) != kPumpWakeOwed;
        if (watch_look) watcher_off_look_.store(false, std::memory_order_relaxed);
      }
      t_in_engine = false;
      waiting_threads_.fetch_add(1, std::memory_order_relaxed);
      lock.unlock();
      int err = 0;
      if (edge_fd >= 0) {
        epoll_event edge{};
        const int n = epoll_pwait(edge_fd, &edge, 1, -1, &old_mask);
        if (n < 0) err = errno;
        if (n > 0) t_wake.unread = true;
      } else {
        const int n = ppoll(fds, watch_look ? 2 : 1, nullptr, &old_mask);
        if (n < 0) err = errno;
        if (fds[0].revents & POLLIN) {
          uint64_t v;
          (void)!read(fds[0].fd, &v, sizeof v);
        }
      }
      waiting_threads_.fetch_sub(1, std::memory_order_relaxed);
      // Woken by the write of the thread that answered, before its mark:
      // the mark follows at once, with no lock to take.
      if (!w->woken_with_answer() && w->answer_on_its_way()) {
        while (!w->woken_with_answer()) sched_yield();
      }
      if (w->woken_with_answer() && traced == nullptr && IsPlainAnswer(w->outcome())) {
        answered_unlocked = true;
        break;
      }
      lock.lock();
      if (watch_loop && !watch_look) watcher_off_look_.store(false, std::memory_order_relaxed);
      SyncFileChecks(kCheckNone);
      t_in_engine = true;
      Pump();  // a watcher that woke keeps the watch: it is looking now
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
    if (!answered_unlocked && w && w->wake_owed()) owed_waiter = w;
    if (answered_unlocked) {
      const abi::Outcome& answer = w->outcome();
      *result = answer.kind == abi::Outcome::Kind::kValue ? static_cast<long>(answer.value) : -answer.error;
      return true;
    }
    if (w && (w->listed || loop_watcher_ == w.get())) StopWaiting(w.get());
    if (moved) {
      // The port moved before fork while this call waited: nothing was
      // taken here; the library issues the call to the supervisor.
      if (ctx.wait()) parked_.erase(*ctx.wait());
      objects_->ApplyReadiness();
      return false;
    }
    if (ctx.wait()) {
      if (interrupted) engines_->CancelWait(*ctx.wait());
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
  if (auto lo = ctx.last_object(); lo && objects_->AnyNeedsDrain()) {
    // The number was recognised from what the engine kept (KnownObjectAt):
    // the drain checks it through the borrowed descriptor (rarely reached).
    objects_->DrainIfNeeded(lo->first, static_cast<emul::Pid>(pid_), lo->second);
  }
  objects_->ApplyReadiness();
  if (traced != nullptr) traced->End(r);  // trace
  *result = r;
  if (owed_waiter && !owed_waiter->woken_with_answer()) {
    // Not holding the lock meanwhile: the writer needs none, but a signal
    // handler that interrupted it may call into the engine.
    lock.unlock();
    while (!owed_waiter->woken_with_answer()) sched_yield();
  }
  return true;
}

void Engine::Settle() {
  if (t_engine_thread) return;  // the engine's own poll, or a signal handler inside a call
  std::lock_guard<EngineMutex> lock(mu_);
  t_in_engine = true;
  t_engine_thread = true;
  SyncFileChecks(kCheckNone);
  PrepareCall();
  objects_->ApplyReadiness();
  objects_->SendOwed();
  host_->EndCall();
  owed_to_a_call_.store(host_->OwedKeepingTheLookReadable(), std::memory_order_relaxed);
  t_in_engine = false;
  t_engine_thread = false;
  // calls_ended_ stays: a poll that blocks after this relies on the idle
  // pump for what happens later.
}

Engine::HandOvers Engine::CountHandOvers() {
  std::lock_guard<EngineMutex> lock(mu_);
  return HandOvers{ports_->StraightHandOvers(), kqueues_->HandOverCount()};
}

// The count is taken before the settle (and before AnyOwed is read), and
// ObjectTable::ApplyReadiness reads it under the lock after owing a byte:
// an event that arrives at any point of the poll either finds the count
// raised and sends its byte, or is owed before the settle or the AnyOwed
// look, which send it (docs/design.md "The readiness byte on demand").
bool Engine::PollBegin(bool settle) {
  if (t_engine_thread) return false;  // the engine's own poll, or a signal handler inside a call
  // The poller may wait for an event that only the pump routes while no
  // thread calls (docs/design.md "The idle pump on demand").
  EnsureIdlePump();
  calls_at_poll_begin_.store(calls_ended_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  pollers_.fetch_add(1, std::memory_order_seq_cst);
  // The idle pump naps while calls keep ending (IdlePumpLoop): a thread
  // that now waits outside the engine ends the nap, so the pump looks for
  // it at once. The count above, then the word (Nap: the word, then the
  // count), both sequentially consistent: either the pump sees the poller
  // and does not nap, or this sees the nap and ends it. One load when the
  // pump is not napping.
  if (nap_word_.load(std::memory_order_seq_cst) == kPumpNapping) KickPump();
  ++t_poll_depth;
  if (settle) {
    Settle();
  } else if (objects_->AnyOwed()) {
    std::lock_guard<EngineMutex> lock(mu_);
    objects_->SendOwed();
  }
  return true;
}

// The futex call whose timeout is this build's timespec: with a 64-bit
// time_t on a 32-bit target (_TIME_BITS=64) that is futex_time64.
#if defined(SYS_futex_time64)
constexpr long kFutexCall = sizeof(time_t) > sizeof(long) ? SYS_futex_time64 : SYS_futex;
#else
constexpr long kFutexCall = SYS_futex;
#endif

void Engine::KickPump() {
  uint32_t napping = kPumpNapping;
  if (nap_word_.compare_exchange_strong(napping, kPumpKicked, std::memory_order_seq_cst)) {
    syscall(kFutexCall, reinterpret_cast<uint32_t*>(&nap_word_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
  }
}

// A call's look found the pump asleep in its look (IdlePumpLoop). If that
// look took reports, each of them woke the pump's poll, and the kernel,
// finding nothing left when the pump ran, put the poll back to sleep: a
// voluntary switch each, for as long as the calls go on (hundreds in
// 300 ms on a loaded machine; the whole of a busy stretch in the 6.1 guest
// under TCG). Only a return of the poll ends it: then the pump sees calls
// ending and naps. So the call makes the look epoll readable in a way no
// look takes away: the wake owed (pump_look_), then a count on signal_efd_
// (in the look epoll), which the looks leave while the wake is owed
// (OnSignalReport). Under the lock, as every look: no look runs between the
// two. Not before two calls ended since the pump fell asleep: a program
// that waits outside the engine makes one or two calls per wake-up of the
// pump (bench_ports pollwait: a retrieval and an association), and the
// pump's poll returns for its next event by itself. And only after a look
// that took reports (`taken`: LinuxHost::LookReportsTaken before it): a
// look that found none woke no one, and a program whose calls look only
// now and then (a look-free caller's, after a close the library reported)
// would otherwise wake the pump at each (s19: about a hundred wake-ups in
// 200 ms of InprocPump.APollerBesideALookFreeCallerHearsOfItsFile, the
// pump then over its cpu budget in the 6.1 guest). Test
// InprocPump.CallsResumingWakeThePumpFromItsLook.
void Engine::WakePumpFromLook(uint64_t taken) {
  if (host_->LookReportsTaken() == taken) return;
  if (calls_ended_.load(std::memory_order_relaxed) - pump_look_since_.load(std::memory_order_relaxed) < 2) return;
  uint32_t in_look = kPumpInLook;
  if (pump_look_.compare_exchange_strong(in_look, kPumpWakeOwed, std::memory_order_seq_cst)) {
    const uint64_t one = 1;
    (void)!write(signal_efd_, &one, sizeof one);
  }
}

// On the pump, out of its look, when a call owed it a wake (pump_look_ was
// kPumpWakeOwed; it is kPumpOutOfLook now, so the looks read signal_efd_
// again). The wake's count is left to the next look (a call's, a waiter's,
// or this thread's own, whose poll it makes return at once), which reads
// it and applies any signal noted meanwhile: no lock for it, since a pump
// queued on the lock behind a thread that calls again at once, without
// looks, is woken at each of its unlocks (a convoy; s19 took the lock here
// at every wake). Only a loop watcher that saw the wake owed and waits for
// its own wake-up alone (Call: watcher_off_look_) needs the lock, to be
// woken and watch the loop again.
void Engine::WakeTheWatcherOffTheLook() {
  if (!watcher_off_look_.load(std::memory_order_seq_cst)) return;
  std::lock_guard<EngineMutex> lock(mu_);
  watcher_off_look_.store(false, std::memory_order_relaxed);
  if (loop_watcher_ != nullptr) loop_watcher_->Wake();
}

Engine::NapEnd Engine::Nap(int64_t ns) {
  nap_word_.store(kPumpNapping, std::memory_order_seq_cst);
  if (pollers_.load(std::memory_order_seq_cst) != 0) {
    // A thread waits outside the engine already (it may have seen the word
    // and kicked: no one waits on it, the wake is lost harmlessly).
    nap_word_.store(kPumpAwake, std::memory_order_seq_cst);
    return NapEnd::kPolled;
  }
  // A deadline of the engine's due within the nap ends it there: while
  // the pump naps it does not read the loop, where the deadline's timer
  // reports, and a program that stopped calling may wait for that
  // deadline outside the engine (a SIGEV_SIGNAL timer's signal in
  // sigsuspend, a timer event on a port it polls with a raw poll). A
  // deadline already past is left to the calls (they run it at their look)
  // or to the look after the nap. Test InprocPump.ANapEndsAtADeadline.
  const int64_t now = MonotonicNs();
  int64_t end = now + ns;
  if (const int64_t deadline = host_->armed_deadline(); deadline > now && deadline < end) end = deadline;
  const timespec until{static_cast<time_t>(end / 1'000'000'000), static_cast<long>(end % 1'000'000'000)};
  // An absolute deadline: a spurious wake-up (or EINTR) waits for the rest.
  while (nap_word_.load(std::memory_order_seq_cst) == kPumpNapping) {
    if (syscall(kFutexCall, reinterpret_cast<uint32_t*>(&nap_word_), FUTEX_WAIT_BITSET_PRIVATE, kPumpNapping,
                &until, nullptr, FUTEX_BITSET_MATCH_ANY) != 0 &&
        errno == ETIMEDOUT) {
      break;
    }
  }
  return nap_word_.exchange(kPumpAwake, std::memory_order_seq_cst) == kPumpKicked ? NapEnd::kKicked
                                                                                   : NapEnd::kSlept;
}

void Engine::PollEnd() {
  if (t_poll_depth <= 0) return;
  --t_poll_depth;
  pollers_.fetch_sub(1, std::memory_order_release);
}

void Engine::LockForFork() {
  mu_.lock();
  t_engine_thread = true;
}

void Engine::UnlockAfterFork() {
  t_engine_thread = false;
  mu_.unlock();
}

void Engine::AfterForkInChild() {
  t_engine_thread = false;
  pollers_.store(t_poll_depth, std::memory_order_relaxed);
}

void Engine::MarkPortsShared() {
  objects_->ForEach([this](emul::ObjectId obj, abi::ObjectKind kind, uint64_t) {
    if (kind == abi::ObjectKind::kPort) objects_->MarkPolled(obj);
  });
}

void Engine::NotePolledByEpoll(int fd) {
  if (t_engine_thread) return;
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) return;
  std::lock_guard<EngineMutex> lock(mu_);
  if (std::optional<emul::ObjectId> obj = objects_->FindByInode(st.st_ino)) objects_->MarkPolled(*obj);
}

void Engine::StartWaiting(Waiter* w) {
  if (w->listed) return;
  w->listed = true;
  const OwnStack& stack = ThisThreadStack(pid_);
  if (t_call_frame >= stack.low && t_call_frame < stack.high) {  // not on a sigaltstack or a fiber
    w->stack_low = t_call_frame;
    w->stack_high = stack.high;
  }
  waiting_.push_back(w);
}

bool Engine::OnWaitingStack(uint64_t addr, size_t size) const {
  for (const Waiter* w : waiting_) {
    if (addr >= w->stack_low && addr < w->stack_high && size <= w->stack_high - addr) return true;
  }
  return false;
}

void Engine::StopWaiting(Waiter* w) {
  if (w->listed) {
    w->listed = false;
    waiting_.erase(std::find(waiting_.begin(), waiting_.end(), w));
  }
  if (loop_watcher_ != w) return;
  loop_watcher_ = nullptr;
  if (waiting_.empty()) return;
  // The watch passes to the thread waiting longest (the ports wake the
  // newest first, rule 30): woken, it looks at the loop and waits again,
  // watching it.
  loop_watcher_ = waiting_.front();
  loop_watcher_->Wake();
}

void Engine::DisplaceWaits(const std::vector<emul::WaitId>& waits) {
  for (emul::WaitId id : waits) {
    auto it = parked_.find(id);
    if (it == parked_.end()) continue;
    if (std::shared_ptr<Waiter> w = it->second.waiter.lock()) w->Move();
  }
}

void Engine::MovePortsBeforeExec() {
  // A vfork child (or a raw clone) shares this memory but not the parent's
  // descriptor table: moving there would take the parent's ports away.
  if (getpid() != pid_) return;
  if (t_in_engine) return;  // exec from a signal handler inside a call: the lock is this thread's
  std::lock_guard<EngineMutex> lock(mu_);
  t_in_engine = true;
  t_engine_thread = true;
  if (options_.supervisor_present) {
    MovePortsToSupervisor(/*kept_across_exec_only=*/true);
  } else {
    MarkPortsShared();  // nowhere to move them: they stay, shared with the new image
  }
  t_in_engine = false;
  t_engine_thread = false;
}

void Engine::MovePortsBeforeSpawn() {
  if (getpid() != pid_ || t_in_engine) return;
  std::lock_guard<EngineMutex> lock(mu_);
  t_in_engine = true;
  t_engine_thread = true;
  if (options_.supervisor_present) {
    MovePortsToSupervisor(/*kept_across_exec_only=*/true, /*parent_goes_on=*/true);
  }
  MarkPortsShared();  // those that stay may be polled by the new image: their byte stays exact
  t_in_engine = false;
  t_engine_thread = false;
}

void Engine::MovePortsBeforeSend(const int* fds, size_t count) {
  if (getpid() != pid_ || t_in_engine) return;
  std::lock_guard<EngineMutex> lock(mu_);
  t_in_engine = true;
  t_engine_thread = true;
  std::vector<emul::ObjectId> ports;
  for (size_t i = 0; i < count; ++i) {
    struct stat st {};
    if (fstat(fds[i], &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    std::optional<emul::ObjectId> obj = objects_->FindByInode(st.st_ino);
    if (!obj) continue;
    // Whatever stays here (a kqueue; a port without a supervisor) may be
    // polled by the receiver, which never settles with this engine.
    objects_->MarkPolled(*obj);
    if (objects_->KindOf(*obj) == abi::ObjectKind::kPort &&
        std::find(ports.begin(), ports.end(), *obj) == ports.end()) {
      ports.push_back(*obj);
    }
  }
  if (!ports.empty() && options_.supervisor_present) {
    host_->ForgetFileChecks();
    PrepareCall();  // what is ready now travels with the port
    for (emul::ObjectId obj : ports) (void)MovePort(obj);
    objects_->ApplyReadiness();
    host_->ForgetFileChecks();
    host_->EndCall();  // this look's reports are no later call's readiness
  }
  t_in_engine = false;
  t_engine_thread = false;
}

bool Engine::ReadProgram(void* dst, const void* src, size_t n) {
  if (n == 0) return true;
  // On this thread's stack above this frame: the callers' locals (a
  // timeout, a change list of one), mapped while they run.
  const uintptr_t addr = reinterpret_cast<uintptr_t>(src);
  const uintptr_t here = reinterpret_cast<uintptr_t>(__builtin_frame_address(0));
  const OwnStack& stack = ThisThreadStack(pid_);
  if (here >= stack.low && here < stack.high && addr >= here && addr < stack.high && n <= stack.high - addr) {
    std::memcpy(dst, src, n);
    return true;
  }
  // Elsewhere as the engine's own reads: the copy that survives a fault,
  // else process_vm_readv (SelfMemory).
  return memory_->Read(addr, {static_cast<std::byte*>(dst), n}).ok();
}

void Engine::CallingThreadStack(uintptr_t* low, uintptr_t* high) {
  const OwnStack& stack = ThisThreadStack(getpid());
  *low = stack.low;
  *high = stack.high;
}

void Engine::StartIdlePumpOnce() {
  if (pump_started_.exchange(true, std::memory_order_acq_rel)) return;
  // The thread inherits the mask: no signal is the pump's, not even a
  // SIGSEGV or SIGBUS sent to the process (trap_install.h).
  sigset_t old;
  const bool blocked = BlockEverySignal(&old);
  pthread_t t;
  if (pthread_create(&t, nullptr, [](void* self) -> void* {
        static_cast<Engine*>(self)->IdlePumpLoop();
        return nullptr;
      }, this) == 0) {
    pthread_detach(t);
  }
  if (blocked) RestoreSignalMask(old);
}

void Engine::IdlePumpLoop() {
  t_engine_thread = true;
  t_idle_pump = true;
  MarkFaultSignalsBlockedOnThisThread();
  uint64_t seen = calls_ended_.load(std::memory_order_relaxed);  // calls ended by the last pass
  int64_t nap = kIdleNs;     // the next nap while calls keep ending
  int64_t last_look_ns = 0;  // when this thread last looked (for a poller, below)
  uint64_t seen_looks = looks_.load(std::memory_order_relaxed);  // the calls' looks, as last seen
  bool resumed = false;  // a call woke this thread from its look: nap
  for (;;) {
    // While the program calls (a call ended since the last pass), its next
    // call looks itself. The pump then naps without polling the look
    // epoll: the program's own traffic keeps that epoll readable, so a poll
    // there would return (or be woken by the program's next write) at every
    // pass, one wasted wake-up and two system calls each. Each wake-up costs
    // the calling program cpu (docs/performance.md "Session 17"), so the
    // nap grows while calls keep ending: kIdleNs, then twice as long at each
    // pass, up to kNapCapNs; a pass that finds no call ended starts again
    // at kIdleNs and looks. Test InprocPump.IdlePumpBacksOffWhileTheProgramCalls.
    bool polled_while_calling = false;
    if (const uint64_t now = calls_ended_.load(std::memory_order_relaxed); now != seen || resumed) {
      resumed = false;
      seen = now;
      switch (Nap(nap)) {
        case NapEnd::kSlept:
          nap = std::min(nap * 2, kNapCapNs);
          continue;
        case NapEnd::kKicked:
          // A thread entered the poll family meanwhile (PollBegin): it may
          // wait outside the engine for an event only this thread routes,
          // so look now. Its calls came before: only the ones from here on
          // say the program is still calling. Test
          // InprocPump.APollerWakesTheNappingPump.
          if (pollers_.load(std::memory_order_seq_cst) == 0) {
            // Its poll is over already (it returned at once): the kicks of
            // a program whose polls come and go between calls stay at one
            // per kIdleNs (this sleep is not a nap: no kick ends it).
            SleepNs(kIdleNs);
            continue;
          }
          nap = kIdleNs;
          seen = calls_ended_.load(std::memory_order_relaxed);
          seen_looks = looks_.load(std::memory_order_relaxed);
          break;
        case NapEnd::kPolled:
          // A thread waits in the poll family while calls end. If some of
          // them looked since this thread last decided, they routed
          // everything for the poller too; and while calls that look go
          // on, a poll of the look epoll here would be woken at each of
          // their reports even when their own look takes it first (the
          // kernel wakes the poll, finds nothing, and sleeps again: about
          // 8000 wake-ups in 200 ms inside a few dozen polls). So sleep
          // kIdleNs and decide again: once the calls stop, the next pass
          // finds none and looks. If none looked, look now (below), at a
          // bounded rate. Unless no call ended since the latest poller
          // began (OnlyThePollersOwnCalls): then the calls were its own,
          // before its wait, none will look for it, and the pump looks now
          // (a program that polls the port's descriptor between its calls:
          // 1 ms an operation otherwise; docs/performance.md "Waiting
          // outside the calls").
          if (OnlyThePollersOwnCalls()) {
            seen_looks = looks_.load(std::memory_order_relaxed);
          } else if (const uint64_t looks = looks_.load(std::memory_order_relaxed); looks != seen_looks) {
            seen_looks = looks;
            SleepNs(kIdleNs);
            continue;
          }
          polled_while_calling = true;
          break;
      }
    } else {
      nap = kIdleNs;
    }
    bool readable_at_once = false;
    if (owed_to_a_call_.load(std::memory_order_relaxed)) {
      // Work owed to a call (below: a renewal, an exit status): what it
      // waits for (the lingering registration, the pidfd) keeps the look
      // epoll readable, so a poll there would return at once, every time.
      // (A tracked process's pidfd owed keeps nothing readable: polled.)
      // The pump looks once per kIdleNs instead: its look ignores the
      // lingering report and routes the others, so a program that waits
      // outside the engine (a poll of the port or kqueue descriptor) still
      // hears of its files within about a millisecond, at no more than a
      // thousand wake-ups a second, until the program's next call does it.
      // Test InprocKqueueOwnDescriptors.IdlePumpServesWithoutSpinningWhileARenewalIsOwed.
      SleepNs(kIdleNs);
    } else {
      // This only looks (a poll of the look epoll consumes no one-shot
      // registration's report, which epoll_wait would); Pump() consumes.
      pollfd look{look_, POLLIN, 0};
      int ready = 0;
      if (polled_while_calling) {
        ready = poll(&look, 1, 0);
        readable_at_once = ready > 0;
      }
      if (ready == 0) {
        // Asleep in the look: a call that finds this while calls resume
        // wakes it (WakePumpFromLook). The count, then the word (a call
        // reads the word, then the count).
        pump_look_since_.store(calls_ended_.load(std::memory_order_relaxed), std::memory_order_relaxed);
        pump_look_.store(kPumpInLook, std::memory_order_seq_cst);
        ready = poll(&look, 1, -1);
        if (pump_look_.exchange(kPumpOutOfLook, std::memory_order_seq_cst) == kPumpWakeOwed) {
          WakeTheWatcherOffTheLook();
          // The calls look themselves: nap while they go on (above).
          resumed = true;
          continue;
        }
      }
      if (ready < 0) {
        if (errno == EINTR) continue;
        return;
      }
    }
    if (waiting_threads_.load(std::memory_order_relaxed) > 0) {
      // A thread waits in the engine: the loop watcher looks itself.
      SleepNs(kIdleNs);
      continue;
    }
    if (readable_at_once || calls_ended_.load(std::memory_order_relaxed) != seen) {
      // The program called while this thread slept in poll (or the look
      // epoll was readable at once while calls kept ending): its calls
      // look themselves; the nap above, until it stops.
      if (pollers_.load(std::memory_order_seq_cst) == 0) continue;
      // Unless a thread waits in the poll family meanwhile. The callers'
      // own traffic keeps the look epoll readable: no look at each of its
      // reports. If calls looked since this thread last decided, they
      // routed everything for the poller too: sleep kIdleNs and look again.
      // If none did (port_send, port_get on a port no host source feeds,
      // ...), route for the poller, at most once per kIdleNs. A poll that
      // slept until a report while no call ended (a poller waiting on
      // another process) routes at once (above: this check is skipped).
      // Tests InprocPump.APollerBesideACallingThreadLeavesThePumpBounded,
      // InprocPump.APollerBesideALookFreeCallerHearsOfItsFile.
      // No call ended since the latest poller began: the calls were its
      // own, and the report is for it (OnlyThePollersOwnCalls): route now.
      if (!OnlyThePollersOwnCalls()) {
        if (const uint64_t looks = looks_.load(std::memory_order_relaxed); looks != seen_looks) {
          seen_looks = looks;
          SleepNs(kIdleNs);
          continue;
        }
        const int64_t since = MonotonicNs() - last_look_ns;
        if (since < kIdleNs) SleepNs(kIdleNs - since);
      }
      if (waiting_threads_.load(std::memory_order_relaxed) > 0) continue;
    }
    std::unique_lock<EngineMutex> lock(mu_, std::try_to_lock);
    if (!lock.owns_lock()) {
      if (pollers_.load(std::memory_order_seq_cst) != 0 && MonotonicNs() - last_look_ns < 4 * kIdleNs) {
        // A thread is in the engine while one waits in the poll family:
        // usually a calling thread, which takes the lock again right after
        // each call, so a queue on the lock would wake this thread again
        // and again (a convoy). Look again in kIdleNs; after 4 ms without
        // a look, queue all the same (a look-free caller may hold the lock
        // nearly all the time).
        SleepNs(kIdleNs);
        continue;
      }
      lock.lock();
    }
    // Inside the engine, as a call's thread: a foreign library's wrapper
    // that the engine's own work reaches (an object's end closed through
    // close() when its last close is routed, at a number a knote once
    // named) issues its system call instead of taking the lock this thread
    // holds (Call). Test
    // InprocKqueueOwnDescriptors.IdlePumpClosingAnObjectsEndAtAHintedNumberDoesNotHang.
    t_in_engine = true;
    SyncFileChecks(kCheckNone);
    // No descriptor made here (LocalWatches::set_may_create): the program
    // makes system calls of its own meanwhile, and may be between a close
    // and its reuse of the number (close(n) then dup2(x, n)), where a new
    // descriptor of ours would take n. A renewal of the look epoll this
    // look meets is owed to the program's next call, which looks and
    // renews (Call). Test InprocKqueueOwnDescriptors.IdlePumpMakesNoDescriptor.
    host_->set_local_may_create(false);
    Pump();
    host_->EndCall();
    host_->set_local_may_create(true);
    owed_to_a_call_.store(host_->OwedKeepingTheLookReadable(), std::memory_order_relaxed);
    t_in_engine = false;
    last_look_ns = MonotonicNs();
    seen_looks = looks_.load(std::memory_order_relaxed);
  }
}

void Engine::SyncFileChecksNow(int number) {
  const uint64_t epoch = close_epoch_.load(std::memory_order_acquire);
  if (epoch != file_checks_epoch_) {
    // The closes reported since the last sync: a bit set before the epoch
    // moved is seen here (acquire); one set after the load is taken now or
    // at the next sync, whose epoch it moved.
    if (closed_all_.exchange(false, std::memory_order_relaxed)) {
      ForgetClosedNumbers();  // taken, so the next sync does not redo them
      host_->ForgetFileChecks();
      // The kept objects go at their next look-up (known_object_epoch_).
    } else {
      const bool objects_current = known_object_epoch_ == file_checks_epoch_;
      ForgetClosedNumbers();
      // Every other number's object still holds: the list is current at
      // this epoch (a close reported from here on moves it again).
      if (objects_current) known_object_epoch_ = epoch;
    }
  }
  if (number == kCheckAll) {
    host_->ForgetFileChecks();
  } else if (number >= 0) {
    host_->ForgetLocalFileCheck(number);
  }
  file_checks_epoch_ = epoch;
}

void Engine::ForgetClosedNumbers() {
  uint64_t groups = closed_groups_.exchange(0, std::memory_order_relaxed);
  while (groups != 0) {
    const unsigned group = static_cast<unsigned>(__builtin_ctzll(groups));
    groups &= groups - 1;
    for (unsigned w = group * kClosedWordsPerGroup; w < (group + 1) * kClosedWordsPerGroup; ++w) {
      uint64_t bits = closed_words_[w].exchange(0, std::memory_order_relaxed);
      while (bits != 0) {
        const int fd = static_cast<int>(w * 64 + static_cast<unsigned>(__builtin_ctzll(bits)));
        bits &= bits - 1;
        host_->ForgetLocalFileCheck(fd);
        ForgetKnownObjectAt(fd);
      }
    }
  }
}

void Engine::ForgetKnownObjectAt(int fd) {
  if (known_last_.fd == fd) known_last_ = KnownLast{};
  for (auto it = known_object_fds_.begin(); it != known_object_fds_.end(); ++it) {
    if (it->fd == fd) {
      known_object_fds_.erase(it);
      return;
    }
  }
}

std::optional<Engine::KnownObject> Engine::KnownObjectInList(int fd, uint64_t epoch) {
  if (epoch != known_object_epoch_) {
    known_object_fds_.clear();
    known_object_epoch_ = epoch;
    known_last_ = KnownLast{};
    return std::nullopt;
  }
  for (const KnownObjectFd& k : known_object_fds_) {
    if (k.fd != fd) continue;
    // Its last close (our end's hang-up, routed by the Pump before the
    // handler) removed it: the number was closed without the library.
    const std::optional<abi::ObjectKind> kind = objects_->KindOf(k.obj);
    if (!kind) return std::nullopt;
    known_last_ = KnownLast{fd, k.obj, *kind, objects_->removals()};
    return KnownObject{k.obj, *kind};
  }
  return std::nullopt;
}

void Engine::RememberObjectAt(int fd, emul::ObjectId obj, uint64_t epoch) {
  if (epoch != known_object_epoch_) return;  // a close was reported meanwhile
  if (known_last_.fd == fd) known_last_ = KnownLast{};
  for (KnownObjectFd& k : known_object_fds_) {
    if (k.fd == fd) {
      k.obj = obj;
      return;
    }
  }
  if (known_object_fds_.size() >= kKnownObjectFds) known_object_fds_.erase(known_object_fds_.begin());
  known_object_fds_.push_back(KnownObjectFd{fd, obj});
}

// port_getn returns at once when the port holds enough events
// (port.c:1153-1155) and takes them from the head of its queue
// (port.c:1379-1381, 1402-1403, port_get_kevent 1751-1755); new events are
// appended. So a look first could only queue events behind the `max` it
// returns. Due deadlines are still caught up (the caller does), since a
// queued timer event's count runs to the retrieval. The object comes from
// what the engine kept (no fstat); a call it does not know yet looks as
// always. Skipped with the look: routing the
// port's own last close, so after a raw close of its only descriptor such a
// call still takes the queued events (docs/abi.md §10 "Fast mode").
bool Engine::QueueAnswersWithoutLook(const PortCall& call, const KnownPort& port) {
  return call.max != 0 && port.glance.queued >= call.max;
}

// illumos queues an FD event when its file becomes ready (pollwakeup,
// port.c:158-163) and a FILE event when the file changes (port_fop), each
// at that moment, while port_send queues the user event and looks at no
// other source (port.c:897-916). A look before a port_send exists to put
// the events of files that became ready before it ahead of the sent event;
// and a waiting port_get/port_getn looks so that such a file answers it
// at once (rule 6). A port with no FD association and no FILE watch has
// neither: a look could only queue events on other objects, which their
// own calls (or the loop watcher, the idle pump) see. Its timers' due
// deadlines are caught up by the caller (the clock, no system call), so a
// timer that fired before a port_send is still queued ahead of it (queued
// when it fires, timer_fire, timer.c:463-467). Like QueueAnswersWithoutLook,
// the object comes from what the engine kept, and the port's own last close
// by a raw close is not routed first (docs/abi.md §10 "Fast mode").
bool Engine::PortFedByNoHostSource(const KnownPort& port) {
  return port.glance.fd_associations == 0 && port.glance.file_watches == 0;
}

// A port_send, port_get or port_getn either of the two above answers
// without a look; the kept port is looked up once for both.
bool Engine::SendOrRetrievalWithoutLook(const PortCall& call, emul::ObjectId* look_for) {
  namespace il = abi::illumos;
  if (!call.OnPort(il::PORT_SEND) && !call.IsRetrieval()) return false;
  const std::optional<KnownPort> port = KnownPortOfCall(call);
  if (!port) return false;
  if (QueueAnswersWithoutLook(call, *port) || PortFedByNoHostSource(*port)) return true;
  // An empty port's retrieval: its look's one report may go to it straight.
  if (port->glance.queued == 0 && call.IsRetrieval()) *look_for = port->obj;
  return false;
}

// The kqueue counterpart of PortFedByNoHostSource: the BSDs activate a
// knote when its source fires (knote and knote_activate, OB
// kern_event.c:1732-1760, DF kern_event.c:1738-1800; a NOTE_TRIGGER in
// filt_usertouch, DF :577-609), and kevent's scan takes only the knotes
// queued by then (kqueue_scan, OB :1274, DF :1437). A look before a
// kevent exists to activate, ahead of the call's changes and in its
// scan, the knotes whose host source fired before it; a kqueue with only
// USER and TIMER knotes has none (Kqueues::FedByNoHostSource), and its
// timers' due deadlines are caught up by the caller. An empty kqueue
// keeps the look: its first descriptor knote then takes the look's report
// of a kept watch for its poll (Host::ProbeReadableAfterLook).
bool Engine::KqueueFedByNoHostSource(int fd) {
  if (fd < 0) return false;
  const std::optional<KnownObject> known = KnownObjectAt(fd, close_epoch_.load(std::memory_order_acquire));
  return known && known->kind == abi::ObjectKind::kKqueue && kqueues_->FedByNoHostSource(known->obj);
}

std::optional<Engine::KnownPort> Engine::KnownPortOfCall(const PortCall& call) {
  if (call.port_fd < 0) return std::nullopt;
  const std::optional<KnownObject> known =
      KnownObjectAt(call.port_fd, close_epoch_.load(std::memory_order_acquire));
  if (!known || known->kind != abi::ObjectKind::kPort) return std::nullopt;
  const std::optional<emul::EventPorts::Glance> glance = ports_->GlanceAt(known->obj);
  if (!glance) return std::nullopt;
  return KnownPort{known->obj, *glance};
}

// illumos queues an FD association's event at port_associate when the file
// is ready then (port.c:153-163), behind every event queued before: those
// of files that woke earlier (queued at the wake-up, pollwakeup), of timers
// that fired earlier (timer_fire, timer.c:463-467), of FILE watches. The
// engine queues host events only at its looks, so a look first orders them
// (PrepareCall). It is not needed when the association's file is placed by
// its identity check's EPOLL_CTL_MOD or, for a number no record has, by its
// registration's EPOLL_CTL_ADD (LocalWatches::PlacementWithoutLook: off
// epoll's ready list until then, linked at its tail if ready), epoll keeping
// its ready list in wake-up order, so the next look reads the files that
// woke before, then this one, then the later ones: queued in illumos's
// order. It must hold for every other source the look would have queued
// ahead: no deadline due now (a timer that fired before the call; those
// that fire later are run after the next look's reports, as fired after
// it), no FILE watch on the port (read after the watches at a look). And
// the port's byte must be free to follow late: no poller counted and the
// port not polled (a raw poll sees it readable right after the call in
// illumos). The object comes from what the engine kept (as
// QueueAnswersWithoutLook).
bool Engine::AssociatePlacedWithoutLook(const PortCall& call) {
  if (pollers_.load(std::memory_order_seq_cst) != 0) return false;
  const int fd = call.fd_object;
  const LocalWatches::Placement placement = host_->LocalPlacementWithoutLook(fd);
  if (placement == LocalWatches::Placement::kByALook) return false;
  const std::optional<KnownPort> port = KnownPortOfCall(call);
  if (!port) return false;
  if (port->glance.file_watches != 0) return false;
  if (objects_->PolledOrGone(port->obj)) return false;
  if (AnyDeadlineDue()) return false;
  // A first association (or one after a close the library reported): its
  // ADD places it only if epoll takes the file (a regular file is always
  // ready, fired at once by the association: it needs the look first).
  return placement == LocalWatches::Placement::kByItsMod || PlainPollableFile(fd);
}

// The fstat is the association's open check (LinuxHost::FdOpen), kept for
// the call. Our objects' descriptors (sockets) are left to the look: their
// readiness is what the engine applies after routing host events.
bool Engine::PlainPollableFile(int fd) {
  const struct stat* st = host_->LocalStat(fd);
  if (st == nullptr) return false;
  if (S_ISFIFO(st->st_mode)) return true;
  if (!S_ISSOCK(st->st_mode) || objects_->FindByInode(st->st_ino)) return false;
  return inherited_ == nullptr || !inherited_->objects.contains(st->st_ino);
}

void Engine::PrepareCall() {
  // For the idle pump: the calls look themselves (IdlePumpLoop). Under the
  // lock: one writer at a time.
  looks_.store(looks_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
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
  CatchUpDeadlines();
}

// Engines::CatchUpDeadlines and AnyDeadlineDue over the router's two
// engines (Add, in its order) called on their own final types: their
// NextDeadline inlined, no virtual call before every call.
void Engine::CatchUpDeadlines() {
  if (emul::DeadlineDue(ports_->NextDeadline(), host_)) ports_->OnDeadline();
  if (emul::DeadlineDue(kqueues_->NextDeadline(), host_)) kqueues_->OnDeadline();
}

bool Engine::AnyDeadlineDue() {
  return emul::DeadlineDue(std::min(ports_->NextDeadline(), kqueues_->NextDeadline()), host_);
}

void Engine::Pump(bool apply_readiness) {
  // One epoll_wait reads the watches' reports and whether the other
  // sources (the loop epoll, nested) have anything: usually they do not.
  // The look begins with that read (the level registrations are in the
  // look epoll itself), so a watch armed before it and not reported by it
  // is quiet (QuietSinceArm) also when the loop has nothing.
  const uint64_t look = host_->BeginLook();
  router_->CollectWatchReadiness();
  if (host_->TakeLookSourceReport()) OnSignalReport();
  if (!host_->TakeLoopReport()) {
    if (apply_readiness) objects_->ApplyReadiness();
    return;
  }
  // EVFILT_FS: the look's check of the nested loop epoll took the mount
  // table's change (LinuxHost::CheckMountTables): every table is read again.
  if (host_->mount_watch_count() > 0) host_->CheckMountTables();
  epoll_event events[64];
  int n;
  do {
    n = epoll_wait(loop_, events, 64, 0);
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events[i].data.u64;
      if (router_->Route(data)) continue;  // the host's sources, the objects' last closes
      switch (data & loop_tag::kMask) {
        case kTagSignals:  // without a look epoll (AddLookSource)
          OnSignalReport();
          break;
        case kTagSweep: {
          uint64_t ticks;
          while (read(sweep_fd_, &ticks, sizeof ticks) > 0) {
          }
          Sweep();
          break;
        }
        default:
          break;
      }
    }
    // A call applies readiness at its end (an event it takes at once then
    // costs no byte); a wake-up without a call applies it now.
    if (apply_readiness) objects_->ApplyReadiness();
  } while (n == 64);
  if (n >= 0) host_->EndLook(look);
}

long Engine::InstallObject(abi::ObjectKind kind, emul::ObjectId obj, bool cloexec) {
  Result<ObjectTable::Pair> pair = objects_->MakePair(kind);
  if (!pair.ok()) {
    const int err = pair.error().value;
    engines_->LastClose(obj);
    // The process's descriptor table is full (port.c:765-774).
    return -(err == ENFILE ? ENOMEM : err);
  }
  if (!cloexec) fcntl(pair->program, F_SETFD, 0);
  if (std::optional<Fault> fault = objects_->Add(obj, kind, pair->own, pair->inode)) {
    // Its last close could not be watched: the object would outlive its
    // descriptors. Reported, and the creation fails as one that found no
    // memory for its descriptor would (docs/design.md "Emulated objects").
    std::fprintf(stderr, "evshim: %s; the object is not created\n", fault->Describe().c_str());
    objects_->Remove(obj);
    close(pair->program);
    engines_->LastClose(obj);
    return -ENOMEM;
  }
  objects_->NoteHolder(obj, static_cast<emul::Pid>(pid_), pair->program);
  // Events queued before the descriptor existed (a kqueue copy) show now.
  if (kind == abi::ObjectKind::kKqueue && kqueues_->PendingCount(obj) > 0) objects_->OnReadiness(obj, true);
  return pair->program;
}

// Whether the process still has a descriptor of `obj` (rule 32): the one
// it last named it by, else a scan of its descriptor table.
bool Engine::OwnEnds::FdIs(emul::Pid, int fd, uint64_t inode) {
  struct stat st {};
  return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode;
}

// A duplicate, not the number: another thread may close `fd` and make a
// socket there before the borrower reads through it. (Rare in-process: a
// byte is written only for a descriptor somebody polls, docs/design.md
// "The readiness byte on demand".) Except on the idle pump, which makes no
// descriptor (a program that closes 0 and opens /dev/null must get 0): the
// number itself, checked by the borrower just before its read.
int Engine::OwnEnds::Borrow(emul::Pid, int fd) { return t_idle_pump ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 0); }

void Engine::OwnEnds::Release(int local) {
  if (!t_idle_pump) close(local);
}

// A scan of this process's descriptor table.
int Engine::OwnEnds::FindFd(emul::Pid pid, uint64_t inode) {
  // Not on the idle pump: opendir makes a descriptor (IdlePumpLoop). Its
  // Sweep keeps the waiter for now ("cannot tell"), and the next sweep on
  // a waiting thread decides. (The pump sweeps only when a waiter has
  // just left its wait: it does not look while a thread waits.)
  if (t_idle_pump) return kUnknown;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return kUnknown;
  const int skip = dirfd(d);
  int found = kNone;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (fd == skip || !FdIs(pid, fd, inode)) continue;
    found = fd;
    break;
  }
  closedir(d);
  return found;
}

// Whether the process still has a descriptor of `obj` (rule 32).
bool Engine::HoldsObject(emul::ObjectId obj) { return objects_->Holds(static_cast<emul::Pid>(pid_), obj); }

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
    if (!objects_->IsAt(p.obj, static_cast<emul::Pid>(pid_), p.fd)) {
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
  objects_->ApplyReadiness();
}

}  // namespace evshim::shim::inproc
