// Raw foreign system calls served by the in-process engine (trap.h; issue
// 15 item 4; docs/design.md "Raw foreign calls in fast mode: the trap").
#include "shim/inproc/trap.h"

#include <dlfcn.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "abi/syscall_table.h"
#include "shim/inproc/engine_entry.h"
#include "shim/inproc/native_abi.h"
#include "shim/inproc/trap_filter.h"
#include "shim/inproc/trap_install.h"
#include "shim/inproc/trap_registers.h"

// The gate: the one system-call instruction the filter lets the foreign
// numbers through (the libraries' calls meant for the supervisor). Its bytes
// are copied to kGateAddress; this copy in .text is never run. Called as
// long gate(nr, a0, a1, a2, a3, a4, a5) with the C convention.
#if defined(__x86_64__)
asm(R"(
  .pushsection .text.evshim_gate,"ax",@progbits
  .globl evshim_gate_begin
  .hidden evshim_gate_begin
  .globl evshim_gate_after_syscall
  .hidden evshim_gate_after_syscall
  .globl evshim_gate_end
  .hidden evshim_gate_end
evshim_gate_begin:
  mov %rdi, %rax
  mov %rsi, %rdi
  mov %rdx, %rsi
  mov %rcx, %rdx
  mov %r8, %r10
  mov %r9, %r8
  mov 8(%rsp), %r9
  syscall
evshim_gate_after_syscall:
  ret
evshim_gate_end:
  .popsection
)");
#elif defined(__i386__)
// i386: `int $0x80` (the vDSO's sysenter returns to the vDSO, not here), the
// arguments from the stack into ebx, ecx, edx, esi, edi, ebp; ebx, esi, edi
// and ebp are the caller's and saved around the call.
asm(R"(
  .pushsection .text.evshim_gate,"ax",@progbits
  .globl evshim_gate_begin
  .hidden evshim_gate_begin
  .globl evshim_gate_after_syscall
  .hidden evshim_gate_after_syscall
  .globl evshim_gate_end
  .hidden evshim_gate_end
evshim_gate_begin:
  push %ebp
  push %edi
  push %esi
  push %ebx
  mov 20(%esp), %eax
  mov 24(%esp), %ebx
  mov 28(%esp), %ecx
  mov 32(%esp), %edx
  mov 36(%esp), %esi
  mov 40(%esp), %edi
  mov 44(%esp), %ebp
  int $0x80
evshim_gate_after_syscall:
  pop %ebx
  pop %esi
  pop %edi
  pop %ebp
  ret
evshim_gate_end:
  .popsection
)");
#endif
extern "C" {
extern const char evshim_gate_begin[] __attribute__((visibility("hidden")));
extern const char evshim_gate_after_syscall[] __attribute__((visibility("hidden")));
extern const char evshim_gate_end[] __attribute__((visibility("hidden")));
}

// The signal wrappers call in here from the program's sigaction(), which in
// a ThreadSanitizer build runs inside TSan's interceptors, even while TSan
// initializes (docs/design.md "Tests and threads"); the handler runs inside
// a signal. Neither may carry TSan instrumentation.
#if defined(__SANITIZE_THREAD__)
#define NOT_TSAN_INSTRUMENTED __attribute__((no_sanitize("thread")))
#else
#define NOT_TSAN_INSTRUMENTED
#endif

namespace evshim::shim::inproc {
namespace {

// The registers of this architecture's entry (trap_registers.h), checked
// against its <sys/ucontext.h>.
#if defined(__x86_64__)
constexpr const TrapRegisters& kTrapRegisters = kTrapRegistersX86_64;
static_assert(kTrapRegistersX86_64.result == REG_RAX && kTrapRegistersX86_64.args[0] == REG_RDI &&
              kTrapRegistersX86_64.args[1] == REG_RSI && kTrapRegistersX86_64.args[2] == REG_RDX &&
              kTrapRegistersX86_64.args[3] == REG_R10 && kTrapRegistersX86_64.args[4] == REG_R8 &&
              kTrapRegistersX86_64.args[5] == REG_R9);
#elif defined(__i386__)
constexpr const TrapRegisters& kTrapRegisters = kTrapRegistersI386;
static_assert(kTrapRegistersI386.result == REG_EAX && kTrapRegistersI386.args[0] == REG_EBX &&
              kTrapRegistersI386.args[1] == REG_ECX && kTrapRegistersI386.args[2] == REG_EDX &&
              kTrapRegistersI386.args[3] == REG_ESI && kTrapRegistersI386.args[4] == REG_EDI &&
              kTrapRegistersI386.args[5] == REG_EBP);
#endif

// The same in every image (an exec'd image must put its gate where the
// inherited filter expects it): below 1 GiB, where neither position-
// independent programs, the mmap area, nor the sanitizers' reserved ranges
// lie; a non-PIE program's heap would have to grow past 900 MiB first.
constexpr uintptr_t kGateAddress = 0x3e5e0000;
constexpr size_t kGateSize = 4096;
constexpr int kSysSeccomp = 1;  // si_code of a seccomp SIGSYS (SYS_SECCOMP)

using SigactionFn = int (*)(int, const struct sigaction*, struct sigaction*);
using SigmaskFn = int (*)(int, const sigset_t*, sigset_t*);
using GateFn = long (*)(long, long, long, long, long, long, long);

// __atomic builtins on plain ints (not std::atomic): read from code that
// carries no TSan instrumentation.
int g_active = 0;
// Whether this process may still get the trap (under a seccomp filter, not
// EVSHIM_SUPERVISED=1): SIGSYS is kept unblockable from the start, so no
// thread blocks it when the trap arrives.
int g_may_trap = 0;
GateFn g_gate = nullptr;
volatile sig_atomic_t g_probe_seen = 0;

// The program's SIGSYS disposition (its handler runs for every SIGSYS that
// is not the trap's). Written with every signal blocked under the lock;
// the handler reads it without the lock.
struct sigaction g_program {};
pthread_mutex_t g_program_lock = PTHREAD_MUTEX_INITIALIZER;

// libc's own functions: the libraries interpose the program's names.
void* LibcSymbol(const char* name) {
  static void* libc = nullptr;
  if (libc == nullptr) libc = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
  return libc != nullptr ? dlsym(libc, name) : nullptr;
}
SigactionFn RealSigaction() {
  static SigactionFn fn = reinterpret_cast<SigactionFn>(LibcSymbol("sigaction"));
  return fn;
}
SigmaskFn RealSigmask() {
  static SigmaskFn fn = reinterpret_cast<SigmaskFn>(LibcSymbol("pthread_sigmask"));
  return fn;
}

bool IsFiltered() { return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2; }

bool SupervisedByEnvironment() {
  const char* v = std::getenv("EVSHIM_SUPERVISED");
  return v != nullptr && std::strcmp(v, "1") == 0;
}

// Kills the process as the default action of SIGSYS would (core dump).
[[noreturn]] void DieOfSigsys() {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  RealSigaction()(SIGSYS, &dfl, nullptr);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGSYS);
  RealSigmask()(SIG_UNBLOCK, &s, nullptr);
  syscall(SYS_tgkill, getpid(), gettid(), SIGSYS);
  _exit(128 + SIGSYS);
}

// A SIGSYS that is not the trap's: what the program asked for.
NOT_TSAN_INSTRUMENTED void Chain(int sig, siginfo_t* info, void* uc) {
  struct sigaction a = g_program;
  const bool siginfo = (a.sa_flags & SA_SIGINFO) != 0;
  if (!siginfo && a.sa_handler == SIG_IGN) {
    // The kernel forces a seccomp SIGSYS through SIG_IGN (it kills).
    if (info->si_code == kSysSeccomp) DieOfSigsys();
    return;
  }
  if (!siginfo && a.sa_handler == SIG_DFL) DieOfSigsys();
  if (a.sa_flags & SA_RESETHAND) {
    pthread_mutex_lock(&g_program_lock);
    g_program.sa_handler = SIG_DFL;
    g_program.sa_flags &= ~(SA_SIGINFO | SA_RESETHAND);
    pthread_mutex_unlock(&g_program_lock);
  }
  sigset_t mask = a.sa_mask, old;
  sigdelset(&mask, SIGSYS);
  RealSigmask()(SIG_BLOCK, &mask, &old);
  if (siginfo) {
    a.sa_sigaction(sig, info, uc);
  } else {
    a.sa_handler(sig);
  }
  RealSigmask()(SIG_SETMASK, &old, nullptr);
}

long Forward(long nr, const long args[6]) {
  if (g_gate == nullptr) return -ENOSYS;  // no gate in this image: nothing reaches the supervisor
  return g_gate(nr, args[0], args[1], args[2], args[3], args[4], args[5]);
}

// evshim's own messages to the supervisor (portfs opcodes from 0x40 on,
// abi/illumos/constants.h; the KQUEUE_CPONFORK fork hook): never served
// in-process. Code of the engine may issue them with a plain syscall while
// it holds the engine's lock (the move of a port at fork): entering the
// engine then would deadlock.
bool MeantForTheSupervisor(long nr, const long args[6]) {
  const abi::SyscallEntry* e = abi::FindSyscall(kProcessModel, static_cast<int>(nr));
  if (e == nullptr) return false;
  switch (e->call) {
    case abi::Call::kPortfs:
      return (static_cast<uint32_t>(args[0]) & 0xff) >= 0x40;
    case abi::Call::kKqueueFork:
    case abi::Call::kKqueueSettle:  // the library's supervised-mode settle (poll_settle.h)
      return true;
    case abi::Call::kTimerCreate:
    case abi::Call::kTimerDelete:
    case abi::Call::kTimerSettime:
    case abi::Call::kTimerGettime:
    case abi::Call::kTimerGetoverrun:
    case abi::Call::kKqueue:
    case abi::Call::kKqueuex:
    case abi::Call::kKevent:
    case abi::Call::kKevent11:
    case abi::Call::kKqueueSignal:
    case abi::Call::kKqueueFdClose:
      return false;
  }
  return false;
}

// The raw call, served as the library's would be: by the engine, else (the
// supervised mode, a descriptor the engine does not own, a call from a
// signal handler on a thread inside the engine) by the supervisor.
long Serve(long nr, const long args[6]) {
  if (MeantForTheSupervisor(nr, args)) return Forward(nr, args);
  int handled = 0;
  const long v = evshim_engine_call(static_cast<int>(nr), args, &handled);
  if (!handled) return Forward(nr, args);
  return v == -1 ? -errno : v;
}

NOT_TSAN_INSTRUMENTED void TrapHandler(int sig, siginfo_t* info, void* ucv) {
  const int saved_errno = errno;
  if (info->si_code != kSysSeccomp || static_cast<uint32_t>(info->si_errno) != kTrapData ||
      info->si_arch != kProcessAuditArch) {
    Chain(sig, info, ucv);
    errno = saved_errno;
    return;
  }
  auto* uc = static_cast<ucontext_t*>(ucv);
  greg_t* g = uc->uc_mcontext.gregs;
  const long nr = info->si_syscall;
  long result;
  if (nr == kProbeNr) {
    g_probe_seen = 1;
    result = 0;
  } else {
    uint64_t regs[6];
    ReadTrappedArgs(kTrapRegisters, g, regs);
    long args[6];
    for (int i = 0; i < 6; ++i) args[i] = static_cast<long>(regs[i]);
    result = Serve(nr, args);
  }
  // The kernel showed the original registers (the return register holds
  // the number); the call returns what is written here.
  WriteTrappedResult(kTrapRegisters, g, result);
  errno = saved_errno;
}

// Our handler over SIGSYS; the disposition it replaces is the program's.
// SA_NODEFER: SIGSYS is never blocked, not even inside this handler (a
// raw call from a signal handler that interrupted a trapped wait must trap
// again, not kill). The mask is otherwise the interrupted code's, so a
// wait inside the handler is interrupted by the signals the program lets
// through.
bool InstallHandler() {
  SigactionFn real = RealSigaction();
  if (real == nullptr || RealSigmask() == nullptr) return false;
  sigset_t all, old;
  sigfillset(&all);
  RealSigmask()(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&g_program_lock);
  struct sigaction cur {};
  bool ok = real(SIGSYS, nullptr, &cur) == 0;
  if (ok && cur.sa_sigaction != TrapHandler) {
    g_program = cur;
    struct sigaction h {};
    h.sa_sigaction = TrapHandler;
    h.sa_flags = SA_SIGINFO | SA_NODEFER | (cur.sa_flags & SA_RESTART);
    sigemptyset(&h.sa_mask);
    ok = real(SIGSYS, &h, nullptr) == 0;
  }
  pthread_mutex_unlock(&g_program_lock);
  RealSigmask()(SIG_SETMASK, &old, nullptr);
  return ok;
}

void RestoreProgramAction() {
  sigset_t all, old;
  sigfillset(&all);
  RealSigmask()(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&g_program_lock);
  RealSigaction()(SIGSYS, &g_program, nullptr);
  pthread_mutex_unlock(&g_program_lock);
  RealSigmask()(SIG_SETMASK, &old, nullptr);
}

// Maps the gate at its fixed address. False when something else is there.
bool MapGate() {
  if (g_gate != nullptr) return true;
  void* p = mmap(reinterpret_cast<void*>(kGateAddress), kGateSize, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return false;
  if (reinterpret_cast<uintptr_t>(p) != kGateAddress) {  // a kernel before 4.17: only a hint
    munmap(p, kGateSize);
    return false;
  }
  std::memcpy(p, evshim_gate_begin, static_cast<size_t>(evshim_gate_end - evshim_gate_begin));
  if (mprotect(p, kGateSize, PROT_READ | PROT_EXEC) != 0) {
    munmap(p, kGateSize);
    return false;
  }
  g_gate = reinterpret_cast<GateFn>(p);
  return true;
}

// The trap filter of this process's architecture (trap_filter.h): its
// foreign numbers and the probe.
std::vector<sock_filter> BuildTrapFilter(uint64_t gate_ip) {
  std::vector<uint32_t> nrs;
  for (const abi::SyscallEntry& e : abi::AllSyscalls()) nrs.push_back(static_cast<uint32_t>(ProcessNumber(e)));
  nrs.push_back(kProbeNr);
  return TrapFilter(kProcessAuditArch, nrs, gate_ip);
}

// An image started by exec from a process with the trap inherits the
// filter: it must handle SIGSYS before its first foreign call, so this runs
// when the engine is loaded. The probe says whether the filter is there.
__attribute__((constructor)) void FindInheritedTrap() {
  if (!IsFiltered()) return;  // no filter at all: no trap, none can come
  if (!SupervisedByEnvironment()) __atomic_store_n(&g_may_trap, 1, __ATOMIC_RELAXED);
  if (!InstallHandler()) return;
  g_probe_seen = 0;
  const int saved = errno;
  syscall(kProbeNr);
  errno = saved;
  if (!g_probe_seen) {
    RestoreProgramAction();
    return;
  }
  MapGate();  // may fail: then calls meant for the supervisor get ENOSYS
  __atomic_store_n(&g_active, 1, __ATOMIC_RELEASE);
}

}  // namespace

bool InstallTrap() {
  if (__atomic_load_n(&g_active, __ATOMIC_ACQUIRE)) return true;
  // Decided: only where a seccomp filter already is (evshim run, the
  // preload library, or any sandbox): no new privilege question. Without
  // one, a raw foreign number stays an unknown Linux call (ENOSYS).
  if (!IsFiltered()) return false;
  if (!MapGate()) return false;
  if (!InstallHandler()) return false;
  const uint64_t gate_ip =
      kGateAddress + static_cast<uint64_t>(evshim_gate_after_syscall - evshim_gate_begin);
  std::vector<sock_filter> f = BuildTrapFilter(gate_ip);
  sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
  // Every thread at once (TSYNC): any of them may issue a raw call.
  const long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (r != 0) {
    RestoreProgramAction();
    return false;
  }
  __atomic_store_n(&g_active, 1, __ATOMIC_RELEASE);
  return true;
}

}  // namespace evshim::shim::inproc

using evshim::shim::inproc::g_active;
using evshim::shim::inproc::g_may_trap;

extern "C" __attribute__((visibility("default"))) NOT_TSAN_INSTRUMENTED int evshim_trap_active(void) {
  return __atomic_load_n(&g_active, __ATOMIC_ACQUIRE);
}

extern "C" __attribute__((visibility("default"))) NOT_TSAN_INSTRUMENTED long evshim_supervisor_syscall(long nr, long a0, long a1,
                                                                                 long a2, long a3, long a4,
                                                                                 long a5) {
  if (!evshim_trap_active()) return syscall(nr, a0, a1, a2, a3, a4, a5);
  const long args[6] = {a0, a1, a2, a3, a4, a5};
  const long r = evshim::shim::inproc::Forward(nr, args);
  if (r < 0 && r > -4096) {
    errno = static_cast<int>(-r);
    return -1;
  }
  return r;
}

extern "C" __attribute__((visibility("default"))) NOT_TSAN_INSTRUMENTED int evshim_trap_sigaction(const struct sigaction* act,
                                                                            struct sigaction* oldact,
                                                                            int* r) {
  using namespace evshim::shim::inproc;
  if (!evshim_trap_active()) return 0;
  sigset_t all, old;
  sigfillset(&all);
  RealSigmask()(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&g_program_lock);
  const struct sigaction prev = g_program;
  int result = 0;
  // Our own handler handed back (a program that saved what libc showed it)
  // is not the program's: chaining to it would recurse.
  if (act != nullptr && act->sa_sigaction != TrapHandler) {
    g_program = *act;
    // The program's SA_RESTART choice applies to the calls its SIGSYS
    // interrupts; the handler stays ours.
    struct sigaction h {};
    h.sa_sigaction = TrapHandler;
    h.sa_flags = SA_SIGINFO | SA_NODEFER | (act->sa_flags & SA_RESTART);
    sigemptyset(&h.sa_mask);
    result = RealSigaction()(SIGSYS, &h, nullptr);
  }
  pthread_mutex_unlock(&g_program_lock);
  RealSigmask()(SIG_SETMASK, &old, nullptr);
  if (result == 0 && oldact != nullptr) *oldact = prev;
  *r = result;
  return 1;
}

extern "C" __attribute__((visibility("default"))) NOT_TSAN_INSTRUMENTED void evshim_trap_unblock(sigset_t* set) {
  if (set == nullptr) return;
  if (__atomic_load_n(&g_active, __ATOMIC_ACQUIRE) || __atomic_load_n(&g_may_trap, __ATOMIC_RELAXED)) {
    sigdelset(set, SIGSYS);
  }
}
