// The C entry of libevshim-engine.so and the process-wide engine: made at
// the first call, decided once per process (fast or supervised), replaced
// by a fresh one in a forked child.
#include "shim/inproc/engine_entry.h"

#include <sys/uio.h>

#include <pthread.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "abi/syscall_table.h"
#include "shim/inproc/engine.h"
#include "shim/inproc/fast_trace.h"
#include "shim/inproc/native_abi.h"
#include "shim/inproc/trap_install.h"

namespace evshim::shim::inproc {
namespace {

enum class Mode : int { kUnknown = 0, kFast = 1, kSupervised = 2 };
// Fast mode is the default; EVSHIM_SUPERVISED=1 selects the supervised
// path (`evshim run --supervised`, `evshim trace`). EVSHIM_FAST=1 forces
// fast mode where the default were changed.
constexpr bool kFastByDefault = true;

std::atomic<int> g_mode{0};
std::atomic<Engine*> g_engine{nullptr};
pthread_mutex_t g_create = PTHREAD_MUTEX_INITIALIZER;
// The objects of the engines of parent processes (a child's inherited
// descriptors), kept across generations.
std::shared_ptr<Inherited> g_inherited;

void ForkPrepare() {
  pthread_mutex_lock(&g_create);
  if (Engine* e = g_engine.load(std::memory_order_acquire)) {
    e->LockForFork();
    e->MovePortsToSupervisor();  // rule 34: the child shares the ports
    e->MarkPortsShared();        // those that did not move
  }
}

void ForkParent() {
  if (Engine* e = g_engine.load(std::memory_order_acquire)) e->UnlockAfterFork();
  pthread_mutex_unlock(&g_create);
}

// The child shares the parent's engine's kernel objects (epolls, timerfd,
// inotify, socketpair ends): using them would act on the parent's. The old
// engine is abandoned, untouched (its lock is held; its memory and
// descriptors are the child's leak), and the next call makes a fresh one.
void ForkChild() {
  if (Engine* e = g_engine.load(std::memory_order_acquire)) {
    auto inherited = std::make_shared<Inherited>(g_inherited ? *g_inherited : Inherited{});
    e->AddInherited(inherited.get());
    g_inherited = std::move(inherited);
    g_engine.store(nullptr, std::memory_order_release);
  }
  Engine::AfterForkInChild();
  pthread_mutex_unlock(&g_create);
}

Mode DecideMode() {
  int m = g_mode.load(std::memory_order_acquire);
  if (m != 0) return static_cast<Mode>(m);
  const char* v = std::getenv("EVSHIM_SUPERVISED");
  const char* fast = std::getenv("EVSHIM_FAST");
  Mode mode = kFastByDefault ? Mode::kFast : Mode::kSupervised;
  if (fast != nullptr && std::strcmp(fast, "1") == 0) mode = Mode::kFast;
  if (v != nullptr && std::strcmp(v, "1") == 0) mode = Mode::kSupervised;
  g_mode.store(static_cast<int>(mode), std::memory_order_release);
  return mode;
}

Engine* GetEngine() {
  Engine* e = g_engine.load(std::memory_order_acquire);
  if (e != nullptr) return e;
  pthread_mutex_lock(&g_create);
  e = g_engine.load(std::memory_order_acquire);
  if (e == nullptr) {
    static bool hooked = false;
    if (!hooked) {
      hooked = true;
      pthread_atfork(ForkPrepare, ForkParent, ForkChild);
    }
    e = new Engine(EngineOptions::FromEnvironment(), g_inherited);
    g_engine.store(e, std::memory_order_release);
    // Raw foreign calls of this process are served here too (trap.h).
    InstallTrap();
    // Copies into the program's memory survive a fault (trap_install.h).
    InstallFaultCopy();
  }
  pthread_mutex_unlock(&g_create);
  return e;
}

}  // namespace
}  // namespace evshim::shim::inproc

extern "C" __attribute__((visibility("default"))) long evshim_engine_call(int nr, const long args[6],
                                                                          int* handled) {
  using namespace evshim::shim::inproc;
  *handled = 0;
  if (DecideMode() != Mode::kFast) return 0;
  const int saved = errno;
  // Looked up once here for the whole call (Engine::Call takes it).
  const evshim::abi::SyscallEntry* entry = evshim::abi::FindSyscall(kProcessModel, nr);
  if (entry != nullptr && entry->call == evshim::abi::Call::kKqueueSignal) {
    // From the kqueue library's signal handler: no lock, no allocation.
    Engine* e = g_engine.load(std::memory_order_acquire);
    if (e == nullptr) return 0;
    const int signo = static_cast<int>(args[0]);
    *handled = 1;
    if (signo <= 0 || signo >= 65) {
      errno = EINVAL;
      return -1;
    }
    e->NoteSignal(signo);
    errno = saved;
    return 0;
  }
  // Zero-extended: an i386 register is 32 bits (the codecs read ILP32 values
  // from the low half).
  const std::array<uint64_t, 6> raw{static_cast<unsigned long>(args[0]), static_cast<unsigned long>(args[1]),
                                    static_cast<unsigned long>(args[2]), static_cast<unsigned long>(args[3]),
                                    static_cast<unsigned long>(args[4]), static_cast<unsigned long>(args[5])};
  long result = 0;
  if (fasttrace::On()) fasttrace::NoteCallSite(__builtin_return_address(0));  // trace --sites
  Engine* engine = GetEngine();  // made at the first call, served or not
  if (entry == nullptr || !engine->Call(*entry, nr, raw, &result)) {
    errno = saved;
    return 0;
  }
  *handled = 1;
  if (result < 0) {
    errno = static_cast<int>(-result);
    return -1;
  }
  errno = saved;
  return result;
}

extern "C" __attribute__((visibility("default"))) int evshim_engine_read_program(void* dst, const void* src,
                                                                                size_t n) {
  using namespace evshim::shim::inproc;
  const int saved = errno;
  Engine* e = DecideMode() == Mode::kFast ? g_engine.load(std::memory_order_acquire) : nullptr;
  bool ok;
  if (e != nullptr) {
    ok = e->ReadProgram(dst, src, n);
  } else {
    iovec local{dst, n};
    iovec remote{const_cast<void*>(src), n};
    ok = n == 0 || process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == static_cast<ssize_t>(n);
  }
  errno = saved;
  return ok ? 0 : -1;
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_thread_stack(uintptr_t* low, uintptr_t* high) {
  const int saved = errno;
  evshim::shim::inproc::Engine::CallingThreadStack(low, high);
  errno = saved;
}

extern "C" __attribute__((visibility("default"))) int evshim_engine_settle(void) {
  using namespace evshim::shim::inproc;
  if (DecideMode() != Mode::kFast) return 0;
  // No engine yet: no object of this process has readiness to apply.
  Engine* e = g_engine.load(std::memory_order_acquire);
  if (e == nullptr) return 1;
  const int saved = errno;
  e->Settle();
  errno = saved;
  return 1;
}

extern "C" __attribute__((visibility("default"))) int evshim_engine_poll_begin(int involved) {
  using namespace evshim::shim::inproc;
  if (DecideMode() != Mode::kFast) return 0;
  // No engine yet: no object of this process, nothing to settle or owe.
  Engine* e = g_engine.load(std::memory_order_acquire);
  if (e == nullptr) return EVSHIM_POLL_SETTLED;
  const int saved = errno;
  const bool counted = e->PollBegin(involved != 0);
  errno = saved;
  return EVSHIM_POLL_SETTLED | (counted ? EVSHIM_POLL_COUNTED : 0);
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_poll_end(int token) {
  if (token & EVSHIM_POLL_COUNTED) evshim::shim::inproc::Engine::PollEnd();
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_epoll_add(int fd) {
  using namespace evshim::shim::inproc;
  if (g_mode.load(std::memory_order_acquire) != static_cast<int>(Mode::kFast)) return;
  if (Engine* e = g_engine.load(std::memory_order_acquire)) {
    const int saved = errno;
    e->NotePolledByEpoll(fd);
    errno = saved;
  }
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_before_exec(void) {
  using namespace evshim::shim::inproc;
  if (g_mode.load(std::memory_order_acquire) != static_cast<int>(Mode::kFast)) return;
  // No engine: no port of this process is in-process. (No g_create lock:
  // a vfork child must not wait for its parent's threads.)
  if (Engine* e = g_engine.load(std::memory_order_acquire)) {
    const int saved = errno;
    e->MovePortsBeforeExec();
    errno = saved;
  }
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_before_spawn(void) {
  using namespace evshim::shim::inproc;
  if (g_mode.load(std::memory_order_acquire) != static_cast<int>(Mode::kFast)) return;
  if (Engine* e = g_engine.load(std::memory_order_acquire)) {
    const int saved = errno;
    e->MovePortsBeforeSpawn();
    errno = saved;
  }
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_before_send_fds(const int* fds, int count) {
  using namespace evshim::shim::inproc;
  if (g_mode.load(std::memory_order_acquire) != static_cast<int>(Mode::kFast) || count <= 0) return;
  if (Engine* e = g_engine.load(std::memory_order_acquire)) {
    const int saved = errno;
    e->MovePortsBeforeSend(fds, static_cast<size_t>(count));
    errno = saved;
  }
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_fd_closed(void) {
  evshim::shim::inproc::Engine::NoteDescriptorsChanged();
}

extern "C" __attribute__((visibility("default"))) void evshim_engine_fd_closed_at(int fd) {
  evshim::shim::inproc::Engine::NoteDescriptorClosed(fd);
}

extern "C" __attribute__((visibility("default"), cold)) int evshim_engine_hand_overs(
    struct evshim_engine_hand_over_counts* counts) {
  using namespace evshim::shim::inproc;
  *counts = evshim_engine_hand_over_counts{0, 0};
  if (g_mode.load(std::memory_order_acquire) != static_cast<int>(Mode::kFast)) return 0;
  Engine* e = g_engine.load(std::memory_order_acquire);
  if (e == nullptr) return 0;
  const Engine::HandOvers n = e->CountHandOvers();
  counts->port_retrievals = n.port_retrievals;
  counts->kevents = n.kevents;
  return 1;
}
