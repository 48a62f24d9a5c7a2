// The idle pump's copy window (docs/design.md "A copy that survives a
// fault", Never blocked; shim/inproc/trap.cc): the engine's own thread has
// every signal blocked, SIGSEGV and SIGBUS too, and opens those two for a
// copy's time only (OpenFaultSignalsForCopy). A SIGSEGV or SIGBUS sent to
// the process that the thread takes in that window is never the program's
// handler's there: the engine's handler records it, and
// CloseFaultSignalsAfterCopy sends it to the process again (`kill`) once the
// two are blocked.
//
// The pump copies into a waiter's list on the heap only when it takes the
// engine's lock between that waiter's wake-up and the waiter's own return
// to the lock (it looks only while no thread waits in the engine): a race
// no test can steer. This driver therefore holds the engine's sources and
// the event-port library itself, and a thread of the test's own makes the
// copy as the pump does: every signal blocked (BlockEverySignal), marked
// (MarkFaultSignalsBlockedOnThisThread), then the engine's copy into a heap
// buffer (CopyCatchingFaults, which opens and closes the window). Nothing
// in the engine is changed or stubbed for it.
#include <gtest/gtest.h>
#include <port.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "shim/inproc/trap_install.h"
#include "tests/support/fault_copy.h"

namespace {

using evshim::shim::inproc::BlockEverySignal;
using evshim::shim::inproc::CopyCatchingFaults;
using evshim::shim::inproc::FaultCopyReady;
using evshim::shim::inproc::MarkFaultSignalsBlockedOnThisThread;

// What the program's handler saw, per signal (index 0 SIGSEGV, 1 SIGBUS).
volatile sig_atomic_t g_handled[2] = {0, 0};
volatile sig_atomic_t g_code[2] = {0, 0};
volatile sig_atomic_t g_tid[2] = {0, 0};
int IndexOf(int sig) { return sig == SIGSEGV ? 0 : 1; }
void Record(int sig, siginfo_t* info, void*) {
  const int i = IndexOf(sig);
  g_handled[i] = g_handled[i] + 1;
  g_code[i] = info->si_code;
  g_tid[i] = static_cast<sig_atomic_t>(gettid());
}

bool SetHandler(int sig) {
  struct sigaction a {};
  a.sa_sigaction = Record;
  a.sa_flags = SA_SIGINFO;
  sigemptyset(&a.sa_mask);
  return sigaction(sig, &a, nullptr) == 0;
}

// The thread's mask through the system call itself: the library's mask
// functions keep SIGSEGV and SIGBUS open.
bool RawMask(int how, const std::vector<int>& sigs) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : sigs) sigaddset(&set, sig);
  return syscall(SYS_rt_sigprocmask, how, &set, nullptr, _NSIG / 8) == 0;
}

bool ProcessPending(int sig) {
  sigset_t pending;
  return sigpending(&pending) == 0 && sigismember(&pending, sig);
}

// The copy as the idle pump makes it (IdlePumpLoop, SelfMemory::Write).
struct PumpCopy {
  bool ready = false;
  bool copied = false;
  bool intact = false;
  int handled_in_thread[2] = {0, 0};
  static void* Run(void* arg) {
    auto* c = static_cast<PumpCopy*>(arg);
    sigset_t old;
    if (!BlockEverySignal(&old)) return nullptr;
    MarkFaultSignalsBlockedOnThisThread();
    c->ready = FaultCopyReady();
    const char src[] = "a waiter's list";
    auto dst = std::make_unique<char[]>(sizeof src);  // on the heap: not a stack the engine writes directly
    c->copied = CopyCatchingFaults(dst.get(), src, sizeof src);
    c->intact = std::memcmp(dst.get(), src, sizeof src) == 0;
    for (int i = 0; i < 2; ++i) c->handled_in_thread[i] = g_handled[i];
    return nullptr;
  }
};

// `sigs`, queued to the process (si_code SI_QUEUE) while the only program
// thread blocks them, are taken by the copy's window and sent again after
// it: the program's handler runs once for each, on the program's thread
// when it unblocks them, and sees the re-send (SI_USER from the process
// itself: `kill`), never on the window's thread.
int SentDuringTheWindowIsSentAgain(const std::vector<int>& sigs) {
  if (port_create() < 0) return 2;  // the engine: its fault handler is installed
  if (!evshim::testing::kFaultCopyInThisBuild) {
    // The instrumented drivers: the copy is never used, so no window opens.
    return FaultCopyReady() ? 3 : 0;
  }
  if (!FaultCopyReady()) return 4;
  for (int sig : sigs) {
    if (!SetHandler(sig)) return 5;
  }
  // Blocked on this thread (the thread below inherits it) and on the
  // engine's pump: queued to the process, the signals wait.
  if (!RawMask(SIG_BLOCK, sigs)) return 6;
  for (int sig : sigs) {
    const sigval v{.sival_int = 7};
    if (sigqueue(getpid(), sig, v) != 0 || !ProcessPending(sig)) return 7;
  }
  PumpCopy copy;
  pthread_t t;
  if (pthread_create(&t, nullptr, PumpCopy::Run, &copy) != 0 || pthread_join(t, nullptr) != 0) return 8;
  if (!copy.ready || !copy.copied || !copy.intact) return 9;
  for (int sig : sigs) {
    const int i = IndexOf(sig);
    if (copy.handled_in_thread[i] != 0 || g_handled[i] != 0) return 10;  // run on the window's thread
    if (!ProcessPending(sig)) return 11;  // taken by the window and lost
  }
  if (!RawMask(SIG_UNBLOCK, sigs)) return 12;
  for (int sig : sigs) {
    const int i = IndexOf(sig);
    if (g_handled[i] != 1) return 13;
    if (g_tid[i] != getpid()) return 14;
    if (g_code[i] != SI_USER) return 15;  // the queued one itself: the window never took it
  }
  return 0;
}

TEST(FaultCopyWindow, ASentSigsegvTakenInThePumpsCopyIsSentAgain) {
  EXPECT_CHILD_EXITS_0([] { return SentDuringTheWindowIsSentAgain({SIGSEGV}); });
}

TEST(FaultCopyWindow, ASentSigbusTakenInThePumpsCopyIsSentAgain) {
  EXPECT_CHILD_EXITS_0([] { return SentDuringTheWindowIsSentAgain({SIGBUS}); });
}

TEST(FaultCopyWindow, BothTakenInOneCopyAreBothSentAgain) {
  EXPECT_CHILD_EXITS_0([] { return SentDuringTheWindowIsSentAgain({SIGSEGV, SIGBUS}); });
}

}  // namespace
