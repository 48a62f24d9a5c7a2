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
// Defined only by the wrappers `evshim run` preloads (signals_preload.c):
// weak references, which the loader resolves when this engine is loaded
// (null without the preload). Not dlsym: a failed lookup in this library's
// constructors made every signal scenario of the ports library die in the
// ThreadSanitizer builds ("ThreadSanitizer:DEADLYSIGNAL ... nested bug",
// both modes; CI of 7f815de).
__attribute__((weak)) void evshim_preloaded_signals(void);
__attribute__((weak)) void evshim_signals_attach(int (*kept)(int, const struct sigaction*, struct sigaction*, int*),
                                                 void (*unblock)(sigset_t*));
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

// The signals the engine keeps: while its handler holds one, the program's
// disposition is recorded here (sigaction() shows it back, the handler
// calls it for every delivery that is not the engine's own). SIGSYS: the
// trap's (held while the trap is on); SIGSEGV and SIGBUS: the fault copy's
// (held once InstallFaultCopy installed the handler). Written with every
// signal blocked under the lock; the handlers read it without the lock.
enum KeptIndex : int { kKeptSys = 0, kKeptSegv = 1, kKeptBus = 2, kKeptCount = 3 };
constexpr int kKeptSignal[kKeptCount] = {SIGSYS, SIGSEGV, SIGBUS};
struct sigaction g_program[kKeptCount] = {};
pthread_mutex_t g_program_lock = PTHREAD_MUTEX_INITIALIZER;

// SIGSEGV and SIGBUS are kept unblockable (the libraries' mask functions and
// every handler's sa_mask drop them): set when the engine is loaded in fast
// mode and the program's signal functions are the libraries'
// (GuardFaultSignals).
int g_fault_guard = 0;
// The fault copy's handler is installed: copies may use CopyCatchingFaults.
int g_fault_copy_on = 0;
// Per thread: the program's own handlers the engine's handlers are running
// (Chain). The kernel would have blocked their signal and sa_mask there, so
// a copy first asks the thread's mask (FaultCopyReady). A handler that
// leaves by siglongjmp leaves it up: that thread then asks every time.
thread_local int t_chained = 0;
// Per thread: a thread of the engine's own, made with every signal blocked,
// SIGSEGV and SIGBUS too (BlockEverySignal); its copies open those two for
// the copy's time (OpenFaultSignalsForCopy). A SIGSEGV or SIGBUS sent to
// the process and taken by that thread in such a window is recorded here
// and sent again once it is closed (CloseFaultSignalsAfterCopy).
thread_local int t_fault_signals_blocked = 0;
constexpr int kSentSegv = 1, kSentBus = 2;
thread_local volatile sig_atomic_t t_sent_during_copy = 0;

// SIGSEGV and SIGBUS: the fault copy's two signals.
sigset_t FaultSignals() {
  sigset_t faults;
  sigemptyset(&faults);
  sigaddset(&faults, SIGSEGV);
  sigaddset(&faults, SIGBUS);
  return faults;
}

int KeptIndexOf(int sig) {
  for (int i = 0; i < kKeptCount; ++i) {
    if (kKeptSignal[i] == sig) return i;
  }
  return -1;
}

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

// Kills the process as the default action of `sig` would (core dump).
[[noreturn]] void DieOf(int sig) {
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  RealSigaction()(sig, &dfl, nullptr);
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, sig);
  RealSigmask()(SIG_UNBLOCK, &s, nullptr);
  syscall(SYS_tgkill, getpid(), gettid(), sig);
  _exit(128 + sig);
}

// A fault (SIGSEGV, SIGBUS) the kernel raised, which it forces through a
// blocked or ignored disposition: si_code > 0 (a kill(2), tgkill or
// sigqueue is SI_USER, SI_TKILL, SI_QUEUE: <= 0).
bool RaisedByTheKernel(const siginfo_t* info) { return info->si_code > 0; }

// The default action for a kept signal. SIGSYS and a sent fault signal:
// killed here. A fault the kernel raised: the default disposition is put
// back and the handler returns, so the instruction faults again and the
// kernel kills the process (its core shows the faulting instruction).
void DefaultAction(int index, int sig, const siginfo_t* info) {
  if (index == kKeptSys || !RaisedByTheKernel(info)) DieOf(sig);
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  RealSigaction()(sig, &dfl, nullptr);
}

// A kept signal that is not the engine's own: what the program asked for.
NOT_TSAN_INSTRUMENTED void Chain(int index, int sig, siginfo_t* info, void* uc) {
  struct sigaction a = g_program[index];
  const bool siginfo = (a.sa_flags & SA_SIGINFO) != 0;
  if (!siginfo && a.sa_handler == SIG_IGN) {
    // The kernel forces a seccomp SIGSYS, and a fault, through SIG_IGN (it kills).
    if (index == kKeptSys ? info->si_code == kSysSeccomp : RaisedByTheKernel(info)) DefaultAction(index, sig, info);
    return;
  }
  if (!siginfo && a.sa_handler == SIG_DFL) {
    DefaultAction(index, sig, info);
    return;
  }
  if (a.sa_flags & SA_RESETHAND) {
    pthread_mutex_lock(&g_program_lock);
    g_program[index].sa_handler = SIG_DFL;
    g_program[index].sa_flags &= ~(SA_SIGINFO | SA_RESETHAND);
    pthread_mutex_unlock(&g_program_lock);
  }
  // The mask the kernel would give the program's handler: its sa_mask, and
  // the signal itself unless SA_NODEFER; never SIGSYS (the engine's
  // handlers run with SA_NODEFER and an empty mask, so a raw call in the
  // program's handler traps again).
  sigset_t mask = a.sa_mask, old;
  if (index != kKeptSys && !(a.sa_flags & SA_NODEFER)) sigaddset(&mask, sig);
  sigdelset(&mask, SIGSYS);
  RealSigmask()(SIG_BLOCK, &mask, &old);
  ++t_chained;
  if (siginfo) {
    a.sa_sigaction(sig, info, uc);
  } else {
    a.sa_handler(sig);
  }
  --t_chained;
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
    Chain(kKeptSys, sig, info, ucv);
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

// The engine's handler over SIGSEGV and SIGBUS: a fault of the copy's one
// instruction (CopyCatchingFaults) resumes at its fix-up, which returns
// failure; every other fault, and every such signal sent by a process,
// goes to the program's disposition (Chain).
NOT_TSAN_INSTRUMENTED void FaultHandler(int sig, siginfo_t* info, void* ucv) {
  if (RaisedByTheKernel(info) && RecoverCopyFault(ucv)) return;
  if (t_fault_signals_blocked != 0 && !RaisedByTheKernel(info)) {
    // Sent to the process and taken by the engine's own thread during a
    // copy: never the program's handler here (the foreign kernel has no
    // such thread); sent again when the copy is over.
    t_sent_during_copy = t_sent_during_copy | (sig == SIGSEGV ? kSentSegv : kSentBus);
    return;
  }
  const int saved_errno = errno;
  Chain(sig == SIGSEGV ? kKeptSegv : kKeptBus, sig, info, ucv);
  errno = saved_errno;
}

using KeptHandler = void (*)(int, siginfo_t*, void*);
constexpr KeptHandler kKeptHandler[kKeptCount] = {TrapHandler, FaultHandler, FaultHandler};

// The engine's action for kept signal `index`, the program's disposition
// being `program`. SA_NODEFER and an empty mask: SIGSYS is never blocked,
// not even inside this handler (a raw call from a signal handler that
// interrupted a trapped wait must trap again, not kill), and the program's
// handler gets the mask it asked for from Chain. The mask is otherwise the
// interrupted code's, so a wait inside the handler is interrupted by the
// signals the program lets through. The faults' handler runs on the
// program's sigaltstack when it has one (SA_ONSTACK: its stack-overflow
// handler still runs). The program's SA_RESTART applies to the calls its
// signal interrupts.
struct sigaction KeptAction(int index, const struct sigaction& program) {
  struct sigaction h {};
  h.sa_sigaction = kKeptHandler[index];
  h.sa_flags = SA_SIGINFO | SA_NODEFER | (program.sa_flags & SA_RESTART);
  if (index != kKeptSys) h.sa_flags |= SA_ONSTACK;
  sigemptyset(&h.sa_mask);
  return h;
}

// Our handler over kept signal `index`; the disposition it replaces is the
// program's (or a sanitizer runtime's: chained to the same way).
bool InstallHandler(int index) {
  SigactionFn real = RealSigaction();
  if (real == nullptr || RealSigmask() == nullptr) return false;
  const int sig = kKeptSignal[index];
  sigset_t all, old;
  sigfillset(&all);
  RealSigmask()(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&g_program_lock);
  struct sigaction cur {};
  bool ok = real(sig, nullptr, &cur) == 0;
  if (ok && cur.sa_sigaction != kKeptHandler[index]) {
    g_program[index] = cur;
    const struct sigaction h = KeptAction(index, cur);
    ok = real(sig, &h, nullptr) == 0;
  }
  pthread_mutex_unlock(&g_program_lock);
  RealSigmask()(SIG_SETMASK, &old, nullptr);
  return ok;
}

void RestoreProgramAction(int index) {
  sigset_t all, old;
  sigfillset(&all);
  RealSigmask()(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&g_program_lock);
  RealSigaction()(kKeptSignal[index], &g_program[index], nullptr);
  pthread_mutex_unlock(&g_program_lock);
  RealSigmask()(SIG_SETMASK, &old, nullptr);
}

// Whether the signal functions the program's code reaches are a foreign
// library's (trap_library.h, which marks itself with
// evshim_library_signals) or the wrappers `evshim run` preloads
// (signals_preload.c, evshim_preloaded_signals; attached to this engine by
// AttachToPreloadedWrappers): not when the library was loaded RTLD_LOCAL
// without the preload, nor when a sanitizer runtime (or the program)
// interposes them first. Only then does every change of a mask or
// disposition pass the engine.
bool LibrariesInterposeSignals() {
  void* const preloaded = reinterpret_cast<void*>(&::evshim_preloaded_signals);  // weak: null without it
  for (void* marker : {dlsym(RTLD_DEFAULT, "evshim_library_signals"), preloaded}) {
    Dl_info m{};
    if (marker == nullptr || dladdr(marker, &m) == 0) continue;
    bool all = true;
    for (const char* name : {"sigaction", "sigprocmask", "pthread_sigmask", "signal", "sigsuspend"}) {
      void* f = dlsym(RTLD_DEFAULT, name);
      Dl_info i{};
      all = all && f != nullptr && dladdr(f, &i) != 0 && i.dli_fbase == m.dli_fbase;
    }
    if (all) return true;
  }
  return false;
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
  if (!InstallHandler(kKeptSys)) return;
  g_probe_seen = 0;
  const int saved = errno;
  syscall(kProbeNr);
  errno = saved;
  if (!g_probe_seen) {
    RestoreProgramAction(kKeptSys);
    return;
  }
  MapGate();  // may fail: then calls meant for the supervisor get ENOSYS
  __atomic_store_n(&g_active, 1, __ATOMIC_RELEASE);
}

// In fast mode, with the libraries' signal functions global, SIGSEGV and
// SIGBUS are kept unblockable from the moment the engine is loaded, before
// the program's main: no thread blocks them when the fault copy comes. A
// mask inherited across exec is the loading thread's: it is opened here.
__attribute__((constructor)) void GuardFaultSignals() {
  if (SupervisedByEnvironment() || RealSigmask() == nullptr) return;
  if (!LibrariesInterposeSignals()) return;
  __atomic_store_n(&g_fault_guard, 1, __ATOMIC_RELAXED);
  const sigset_t faults = FaultSignals();
  RealSigmask()(SIG_UNBLOCK, &faults, nullptr);
}

// `evshim run` preloads the libraries' signal wrappers without an engine
// (signals_preload.c): until one is loaded they keep SIGSYS, SIGSEGV and
// SIGBUS out of every mask and leave dispositions alone; then they ask it.
// Handed over here, once this engine's state is decided above (with the
// program, or later by dlopen).
__attribute__((constructor)) void AttachToPreloadedWrappers() {
  if (&::evshim_signals_attach != nullptr) ::evshim_signals_attach(&::evshim_kept_sigaction, &::evshim_trap_unblock);
}

}  // namespace

void InstallFaultCopy() {
  if (__atomic_load_n(&g_fault_copy_on, __ATOMIC_ACQUIRE)) return;
  // Checked again: a library loaded since may interpose first.
  if (!__atomic_load_n(&g_fault_guard, __ATOMIC_RELAXED) || !LibrariesInterposeSignals()) return;
  if (!InstallHandler(kKeptSegv)) return;
  if (!InstallHandler(kKeptBus)) {
    RestoreProgramAction(kKeptSegv);
    return;
  }
  __atomic_store_n(&g_fault_copy_on, 1, __ATOMIC_RELEASE);
}

NOT_TSAN_INSTRUMENTED bool FaultCopyReady() {
  if (!__atomic_load_n(&g_fault_copy_on, __ATOMIC_ACQUIRE)) return false;
  if (t_chained == 0) return true;
  // Inside the program's handler (Chain): the mask may hold them.
  sigset_t cur;
  if (RealSigmask()(SIG_BLOCK, nullptr, &cur) != 0) return false;
  return !sigismember(&cur, SIGSEGV) && !sigismember(&cur, SIGBUS);
}

namespace {
// The thread's mask through the system call itself: the libraries'
// functions keep SIGSEGV and SIGBUS open and show them open.
bool RawThreadMask(int how, const sigset_t* set, sigset_t* old) {
  return syscall(SYS_rt_sigprocmask, how, set, old, _NSIG / 8) == 0;
}

}  // namespace

bool BlockEverySignal(sigset_t* old) {
  sigset_t all;
  sigfillset(&all);  // glibc's full set leaves out its internal signals (setuid across threads)
  return RawThreadMask(SIG_BLOCK, &all, old);
}

void RestoreSignalMask(const sigset_t& old) { RawThreadMask(SIG_SETMASK, &old, nullptr); }

void MarkFaultSignalsBlockedOnThisThread() {
  sigset_t cur;
  if (RawThreadMask(SIG_BLOCK, nullptr, &cur) && sigismember(&cur, SIGSEGV) && sigismember(&cur, SIGBUS)) {
    t_fault_signals_blocked = 1;
  }
}

bool OpenFaultSignalsForCopy() {
  if (t_fault_signals_blocked == 0) return false;
  const sigset_t faults = FaultSignals();
  return RawThreadMask(SIG_UNBLOCK, &faults, nullptr);
}

void CloseFaultSignalsAfterCopy() {
  const sigset_t faults = FaultSignals();
  RawThreadMask(SIG_BLOCK, &faults, nullptr);
  const int sent = t_sent_during_copy;
  t_sent_during_copy = 0;
  // Now blocked here: the process's other threads take them.
  if (sent & kSentSegv) kill(getpid(), SIGSEGV);
  if (sent & kSentBus) kill(getpid(), SIGBUS);
}

bool InstallTrap() {
  if (__atomic_load_n(&g_active, __ATOMIC_ACQUIRE)) return true;
  // Decided: only where a seccomp filter already is (evshim run, the
  // preload library, or any sandbox): no new privilege question. Without
  // one, a raw foreign number stays an unknown Linux call (ENOSYS).
  if (!IsFiltered()) return false;
  if (!MapGate()) return false;
  if (!InstallHandler(kKeptSys)) return false;
  const uint64_t gate_ip =
      kGateAddress + static_cast<uint64_t>(evshim_gate_after_syscall - evshim_gate_begin);
  std::vector<sock_filter> f = BuildTrapFilter(gate_ip);
  sock_fprog prog{static_cast<unsigned short>(f.size()), f.data()};
  // Every thread at once (TSYNC): any of them may issue a raw call.
  const long r = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
  if (r != 0) {
    RestoreProgramAction(kKeptSys);
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

extern "C" __attribute__((visibility("default"))) NOT_TSAN_INSTRUMENTED int evshim_kept_sigaction(
    int sig, const struct sigaction* act, struct sigaction* oldact, int* r) {
  using namespace evshim::shim::inproc;
  const int index = KeptIndexOf(sig);
  if (index < 0) return 0;
  const bool held = index == kKeptSys ? evshim_trap_active() != 0 : __atomic_load_n(&g_fault_copy_on, __ATOMIC_ACQUIRE) != 0;
  if (!held) return 0;
  sigset_t all, old;
  sigfillset(&all);
  RealSigmask()(SIG_BLOCK, &all, &old);
  pthread_mutex_lock(&g_program_lock);
  const struct sigaction prev = g_program[index];
  int result = 0;
  // Our own handler handed back (a program that saved what libc showed it)
  // is not the program's: chaining to it would recurse.
  if (act != nullptr && act->sa_sigaction != kKeptHandler[index]) {
    g_program[index] = *act;
    const struct sigaction h = KeptAction(index, *act);  // the handler stays ours
    result = RealSigaction()(sig, &h, nullptr);
  }
  pthread_mutex_unlock(&g_program_lock);
  RealSigmask()(SIG_SETMASK, &old, nullptr);
  if (result == 0 && oldact != nullptr) *oldact = prev;
  *r = result;
  return 1;
}

extern "C" __attribute__((visibility("default"))) NOT_TSAN_INSTRUMENTED void evshim_trap_unblock(sigset_t* set) {
  using evshim::shim::inproc::g_fault_guard;
  if (set == nullptr) return;
  if (__atomic_load_n(&g_active, __ATOMIC_ACQUIRE) || __atomic_load_n(&g_may_trap, __ATOMIC_RELAXED)) {
    sigdelset(set, SIGSYS);
  }
  if (__atomic_load_n(&g_fault_guard, __ATOMIC_RELAXED)) {
    sigdelset(set, SIGSEGV);
    sigdelset(set, SIGBUS);
  }
}
