// The supervisor's parts without a target: ParkedCalls' indexes, CallReplay's
// exactly-once rules through the Notifier double (docs/abi.md "Call numbers,
// restarts and lost replies"; docs/design.md "Signals and exactly once"),
// RemoteMemory's fault/guest-error split, and the Supervisor serving scripted
// notifications (docs/design.md "Supervisor faults").
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <sys/eventfd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "abi/illumos/constants.h"
#include "shim/supervisor/call_replay.h"
#include "shim/supervisor/parked_calls.h"
#include "shim/supervisor/remote_memory.h"
#include "shim/supervisor/supervisor.h"
#include "tests/support/fake_notifier.h"

namespace evshim::shim {
namespace {

using testing::FakeNotifier;
using testing::RecordingFaultSink;

constexpr int kPortfs64 = 182;   // x86_64 portfs (docs/abi.md §1)
constexpr int kPortfs32 = 1000;  // i386, relocated
constexpr uint64_t kNumbered = 1ULL << 32;  // bit 32: the call carries a number

Notification Call(uint64_t id, pid_t tid, std::array<uint64_t, 6> args, int nr = kPortfs64,
                  uint32_t arch = AUDIT_ARCH_X86_64) {
  Notification n;
  n.id = id;
  n.tid = tid;
  n.nr = nr;
  n.arch = arch;
  n.args = args;
  return n;
}

ParkedCall Parked(pid_t tid, uint64_t notif_id, std::optional<std::pair<emul::ObjectId, int>> named = {}) {
  return ParkedCall{tid, notif_id, CallRegisters{kPortfs64, {6, 3, 0x1000, 1, 1, 0}}, named};
}

// ---- ParkedCalls: one part, indexes kept in step ----

TEST(ParkedCalls, ParkAnswerAndTakeKeepEveryIndexInStep) {
  ParkedCalls parked(16);
  EXPECT_FALSE(parked.Park(1, Parked(100, 11)));
  EXPECT_FALSE(parked.Park(2, Parked(101, 12, std::make_pair(emul::ObjectId{7}, 5))));
  EXPECT_FALSE(parked.Park(3, Parked(102, 13)));
  EXPECT_TRUE(parked.Consistent());
  parked.Answered(101, 12);
  EXPECT_EQ(parked.size(), 2u);
  EXPECT_TRUE(parked.NamedObjects().empty());  // answered: its named port goes with it
  EXPECT_TRUE(parked.Consistent());
  auto taken = parked.TakeThread(100);
  ASSERT_TRUE(taken);
  EXPECT_EQ(taken->first, 1u);
  EXPECT_EQ(taken->second.notif_id, 11u);
  EXPECT_FALSE(parked.TakeThread(100));
  EXPECT_TRUE(parked.Consistent());
  EXPECT_EQ(parked.size(), 1u);
}

TEST(ParkedCalls, AnswerOfAnEarlierCallLeavesTheThreadsLaterCallParked) {
  ParkedCalls parked(16);
  (void)parked.Park(1, Parked(100, 11));
  parked.Answered(100, 10);  // a completion of the thread's previous call, arriving late
  EXPECT_EQ(parked.size(), 1u);
  EXPECT_TRUE(parked.TakeThread(100));
}

TEST(ParkedCalls, AThreadHasOneParkedCallANewOneDisplacesTheOld) {
  ParkedCalls parked(16);
  (void)parked.Park(1, Parked(100, 11));
  std::optional<emul::WaitId> displaced = parked.Park(2, Parked(100, 12));
  ASSERT_TRUE(displaced);
  EXPECT_EQ(*displaced, 1u);
  EXPECT_EQ(parked.size(), 1u);
  EXPECT_TRUE(parked.Consistent());
}

TEST(ParkedCalls, TakeIfRemovesTheSelectedCallsFromEveryIndex) {
  ParkedCalls parked(16);
  for (pid_t tid = 100; tid < 110; ++tid) (void)parked.Park(static_cast<emul::WaitId>(tid), Parked(tid, tid));
  auto taken = parked.TakeIf([](const ParkedCall& c) { return c.tid % 2 == 0; });
  EXPECT_EQ(taken.size(), 5u);
  EXPECT_EQ(parked.size(), 5u);
  EXPECT_TRUE(parked.Consistent());
  EXPECT_FALSE(parked.TakeThread(104));
  EXPECT_TRUE(parked.TakeThread(105));
}

TEST(ParkedCalls, ForgetNamedKeepsTheCallParked) {
  ParkedCalls parked(16);
  (void)parked.Park(1, Parked(100, 11, std::make_pair(emul::ObjectId{7}, 5)));
  ASSERT_EQ(parked.NamedObjects().size(), 1u);
  EXPECT_EQ(parked.NamedObjects()[0].fd, 5);
  parked.ForgetNamed(1);
  EXPECT_TRUE(parked.NamedObjects().empty());
  EXPECT_EQ(parked.size(), 1u);
}

TEST(ParkedCalls, FullAtTheMaxWaitsBound) {
  ParkedCalls parked(2);
  (void)parked.Park(1, Parked(100, 11));
  EXPECT_FALSE(parked.full());
  (void)parked.Park(2, Parked(101, 12));
  EXPECT_TRUE(parked.full());
}

// ---- CallReplay through the Notifier double ----

class Replay : public ::testing::Test {
 protected:
  FakeNotifier notifier;
  RecordingFaultSink faults;
  CallReplay replay{notifier, faults};
  ParkedCalls parked{16};
  std::vector<emul::WaitId> cancelled;
  bool Repeat(const Notification& n, bool numbered) {
    return replay.AnswerRepeat(n, numbered, parked, [this](emul::WaitId w) { cancelled.push_back(w); });
  }
};

// A port_send (opcode 3) interrupted on its way back, re-issued by an
// SA_RESTART restart (identical registers): answered with its first outcome,
// and not handled again (AnswerRepeat true = the handler is not run).
TEST_F(Replay, NonBlockingCallInterruptedAndReissuedGetsItsFirstOutcomeOnce) {
  const std::array<uint64_t, 6> send{3, 4, 0x10, 0x99, 0, 0};
  Notification first = Call(1, 100, send);
  ASSERT_FALSE(Repeat(first, false));
  notifier.Interrupt(1);
  EXPECT_FALSE(replay.AnswerNow(first, false, abi::Outcome::Error(EAGAIN), /*remember=*/true));
  Notification again = Call(2, 100, send);
  EXPECT_TRUE(Repeat(again, false));
  ASSERT_EQ(notifier.AnswersTo(2).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, EAGAIN);
  // Delivered now, and not numbered: a third identical call is a new call.
  EXPECT_FALSE(Repeat(Call(3, 100, send), false));
}

// The library's own retry of a numbered call (same number) after a reply the
// kernel accepted and then dropped: the first answer again, as often as asked.
TEST_F(Replay, NumberedCallAnsweredThenReissuedIsReplayedNotApplied) {
  const std::array<uint64_t, 6> send{kNumbered | (5ULL << 33) | 3, 4, 0x10, 0x99, 0, 0};
  ASSERT_FALSE(Repeat(Call(1, 100, send), true));
  EXPECT_TRUE(replay.AnswerNow(Call(1, 100, send), true, abi::Outcome::Value(0), true));
  for (uint64_t id = 2; id < 4; ++id) {
    EXPECT_TRUE(Repeat(Call(id, 100, send), true));
    ASSERT_EQ(notifier.AnswersTo(id).size(), 1u);
    EXPECT_EQ(notifier.AnswersTo(id)[0].error, 0);
    EXPECT_EQ(notifier.AnswersTo(id)[0].value, 0);
  }
  // The next number is a new call.
  std::array<uint64_t, 6> next = send;
  next[0] = kNumbered | (6ULL << 33) | 3;
  EXPECT_FALSE(Repeat(Call(4, 100, next), true));
}

// A call that died while its arguments were read did nothing: its re-issue
// runs again.
TEST_F(Replay, CallThatDiedWhileReadIsNotReplayed) {
  const std::array<uint64_t, 6> send{3, 4, 0x10, 0x99, 0, 0};
  notifier.Interrupt(1);
  EXPECT_FALSE(replay.AnswerNow(Call(1, 100, send), false, abi::Outcome::Error(EFAULT), /*remember=*/false));
  EXPECT_FALSE(Repeat(Call(2, 100, send), false));
}

// A parked port_get abandoned by a signal, restarted by the kernel before the
// sweep saw it: the wait is cancelled in the engines and the restart gets
// EINTR (illumos ends a wait a signal broke with EINTR, port.c:1330-1347,
// and has no restart of it).
TEST_F(Replay, WaitInterruptedAndRestartedAnswersEintr) {
  const std::array<uint64_t, 6> get{5, 4, 0x2000, 0, 0, 0};
  (void)parked.Park(42, ParkedCall{100, 1, CallRegisters{kPortfs64, get}, {}});
  EXPECT_TRUE(Repeat(Call(2, 100, get), false));
  EXPECT_EQ(cancelled, std::vector<emul::WaitId>{42});
  ASSERT_EQ(notifier.AnswersTo(2).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, EINTR);
  EXPECT_TRUE(parked.empty());
}

// The same after the sweep found the wait abandoned.
TEST_F(Replay, WaitFoundAbandonedBySweepThenRestartedAnswersEintr) {
  const std::array<uint64_t, 6> get{5, 4, 0x2000, 0, 0, 0};
  replay.WaitAbandoned(ParkedCall{100, 1, CallRegisters{kPortfs64, get}, {}});
  EXPECT_TRUE(Repeat(Call(2, 100, get), false));
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, EINTR);
  // Once: a later identical port_get is a new wait.
  EXPECT_FALSE(Repeat(Call(3, 100, get), false));
}

// A parked wait whose answer the kernel refused (the signal came first): the
// caller puts the events back (false), and a restart answers EINTR.
TEST_F(Replay, WaitAnswerRefusedThenRestartedAnswersEintr) {
  const std::array<uint64_t, 6> getn{6, 4, 0x2000, 8, 1, 0};
  notifier.Interrupt(1);
  EXPECT_FALSE(replay.AnswerParked(100, 1, CallRegisters{kPortfs64, getn}, false, abi::Outcome::Value(1)));
  EXPECT_TRUE(Repeat(Call(2, 100, getn), false));
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, EINTR);
}

// A kevent answer whose changes stay applied (stands_if_refused) and that a
// signal refused: the library's probe gets that answer, not ECANCELED, so the
// program never re-registers the changes (OB kern_event.c:929-965; the
// 'received 4001 duplicates 1' of Stress.KqueueExactlyOnceUnderSignalStorm).
TEST_F(Replay, RefusedAnswerThatStandsIsReplayedToTheProbe) {
  const std::array<uint64_t, 6> kev{kNumbered | (9ULL << 33) | 6, 0x1000, 1, 0x2000, 1, 0};
  notifier.Interrupt(1);
  abi::Outcome applied = abi::Outcome::Value(0);
  applied.stands_if_refused = true;
  EXPECT_FALSE(replay.AnswerParked(100, 1, CallRegisters{kPortfs64, kev}, true, applied));
  std::array<uint64_t, 6> probe = kev;
  probe[0] |= kProbeBit;
  EXPECT_TRUE(Repeat(Call(2, 100, probe), true));
  ASSERT_EQ(notifier.AnswersTo(2).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, 0);
  EXPECT_EQ(notifier.AnswersTo(2)[0].value, 0);
}

// A probe (bit 63) after EINTR from a numbered wait whose answer the kernel
// had accepted: the answer already sent (its events are in the buffer).
TEST_F(Replay, ProbeGetsTheResultAlreadySent) {
  const std::array<uint64_t, 6> getn{kNumbered | (9ULL << 33) | 6, 4, 0x2000, 8, 1, 0};
  EXPECT_TRUE(replay.AnswerParked(100, 1, CallRegisters{kPortfs64, getn}, true, abi::Outcome::Value(2)));
  std::array<uint64_t, 6> probe = getn;
  probe[0] |= kProbeBit;
  EXPECT_TRUE(Repeat(Call(2, 100, probe), true));
  ASSERT_EQ(notifier.AnswersTo(2).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, 0);
  EXPECT_EQ(notifier.AnswersTo(2)[0].value, 2);
}

// A probe of a wait that was interrupted (refused answer): ECANCELED, which
// the library reports as EINTR.
TEST_F(Replay, ProbeOfAnInterruptedWaitGetsEcanceled) {
  const std::array<uint64_t, 6> getn{kNumbered | (9ULL << 33) | 6, 4, 0x2000, 8, 1, 0};
  notifier.Interrupt(1);
  EXPECT_FALSE(replay.AnswerParked(100, 1, CallRegisters{kPortfs64, getn}, true, abi::Outcome::Value(2)));
  std::array<uint64_t, 6> probe = getn;
  probe[0] |= kProbeBit;
  EXPECT_TRUE(Repeat(Call(2, 100, probe), true));
  EXPECT_EQ(notifier.AnswersTo(2)[0].error, ECANCELED);
}

// A probe with nothing to recover (the probed wait never reached us, or is
// still parked and now abandoned): ECANCELED; never handled as a call.
TEST_F(Replay, ProbeWithNothingToRecoverGetsEcanceled) {
  const std::array<uint64_t, 6> probe{kProbeBit | kNumbered | (9ULL << 33) | 6, 4, 0x2000, 8, 1, 0};
  EXPECT_TRUE(Repeat(Call(1, 100, probe), true));
  EXPECT_EQ(notifier.AnswersTo(1)[0].error, ECANCELED);
  std::array<uint64_t, 6> parked_regs = probe;
  parked_regs[0] &= ~kProbeBit;
  (void)parked.Park(7, ParkedCall{100, 2, CallRegisters{kPortfs64, parked_regs}, {}});
  EXPECT_TRUE(Repeat(Call(3, 100, probe), true));
  EXPECT_EQ(notifier.AnswersTo(3)[0].error, ECANCELED);
  EXPECT_EQ(cancelled, std::vector<emul::WaitId>{7});
}

// i386 (no call numbers, docs/abi.md "Call numbers": the first two
// guarantees only): a refused answer is replayed to an identical restart, a
// wait restart gets EINTR, but a delivered answer is not kept: an identical
// call after it is a new call, and bit 63 is no probe.
TEST_F(Replay, I386CallsWithoutNumbersGetRestartsButNoLostReplyRecovery) {
  const std::array<uint64_t, 6> send{3, 4, 0x10, 0x99, 0, 0};
  notifier.Interrupt(1);
  EXPECT_FALSE(replay.AnswerNow(Call(1, 100, send, kPortfs32, AUDIT_ARCH_I386), false, abi::Outcome::Value(0), true));
  EXPECT_TRUE(Repeat(Call(2, 100, send, kPortfs32, AUDIT_ARCH_I386), false));
  EXPECT_EQ(notifier.AnswersTo(2)[0].value, 0);
  EXPECT_FALSE(Repeat(Call(3, 100, send, kPortfs32, AUDIT_ARCH_I386), false));
  EXPECT_TRUE(replay.AnswerNow(Call(3, 100, send, kPortfs32, AUDIT_ARCH_I386), false, abi::Outcome::Value(0), true));
  EXPECT_EQ(replay.remembered(), 0u);
  const std::array<uint64_t, 6> high{kProbeBit | 6, 4, 0x2000, 8, 1, 0};
  EXPECT_FALSE(Repeat(Call(4, 100, high, kPortfs32, AUDIT_ARCH_I386), false));
}

TEST_F(Replay, ADifferentCallIsHandledAndTheRecordDropped) {
  const std::array<uint64_t, 6> send{3, 4, 0x10, 0x99, 0, 0};
  notifier.Interrupt(1);
  (void)replay.AnswerNow(Call(1, 100, send), false, abi::Outcome::Value(0), true);
  std::array<uint64_t, 6> other = send;
  other[3] = 0x98;
  EXPECT_FALSE(Repeat(Call(2, 100, other), false));
  EXPECT_EQ(replay.remembered(), 0u);
  EXPECT_TRUE(notifier.AnswersTo(2).empty());
}

// A fault answering (the ioctl fails for evshim's reasons) goes to the sink.
TEST_F(Replay, AnAnswerThatFaultsGoesToTheFaultSink) {
  notifier.Break(ENOMEM);
  EXPECT_FALSE(replay.AnswerNow(Call(1, 100, {3, 4, 0, 0, 0, 0}), false, abi::Outcome::Value(0), true));
  ASSERT_EQ(faults.faults.size(), 1u);
  EXPECT_EQ(faults.faults[0].first.error, ENOMEM);
  EXPECT_EQ(faults.faults[0].second, 100);
}

// ---- RemoteMemory: the guest's EFAULT vs the supervisor's fault ----

int g_errno_to_give = 0;
ssize_t FailingTransfer(pid_t, const iovec*, unsigned long, const iovec*, unsigned long, unsigned long) {
  errno = g_errno_to_give;
  return -1;
}
ssize_t ShortTransfer(pid_t, const iovec*, unsigned long, const iovec*, unsigned long, unsigned long) { return 1; }
constexpr MemoryTransfer kFailing{&FailingTransfer, &FailingTransfer};

TEST(RemoteMemory, YamaEpermIsAFaultNotTheGuestsError) {
  g_errno_to_give = EPERM;
  RemoteMemory mem(getpid(), nullptr, 0, nullptr, kFailing);
  std::byte buf[8];
  EXPECT_FALSE(mem.Read(0x1000, buf).ok());
  ASSERT_TRUE(mem.fault());
  EXPECT_EQ(mem.fault()->error, EPERM);
  EXPECT_STREQ(mem.fault()->operation, "process_vm_readv");
  EXPECT_FALSE(mem.died());
}

TEST(RemoteMemory, BadAddressIsTheGuestsEfaultNoFault) {
  g_errno_to_give = EFAULT;
  RemoteMemory mem(getpid(), nullptr, 0, nullptr, kFailing);
  std::byte buf[8];
  EXPECT_EQ(mem.Read(0x1000, buf).error().value, EFAULT);
  EXPECT_FALSE(mem.fault());
  RemoteMemory short_mem(getpid(), nullptr, 0, nullptr, MemoryTransfer{&ShortTransfer, &ShortTransfer});
  EXPECT_EQ(short_mem.Write(0x1000, buf).error().value, EFAULT);
  EXPECT_FALSE(short_mem.fault());
}

TEST(RemoteMemory, GoneThreadIsDiedNotAFault) {
  g_errno_to_give = ESRCH;
  RemoteMemory mem(getpid(), nullptr, 0, nullptr, kFailing);
  std::byte buf[8];
  EXPECT_FALSE(mem.Read(0x1000, buf).ok());
  EXPECT_TRUE(mem.died());
  EXPECT_FALSE(mem.fault());
}

// Without cross-memory attach (ENOSYS): /proc/TID/mem, same results.
TEST(RemoteMemory, WithoutCrossMemoryAttachProcMemServes) {
  g_errno_to_give = ENOSYS;
  RemoteMemory mem(getpid(), nullptr, 0, nullptr, kFailing);
  static uint64_t value = 0x1122334455667788ULL;
  uint64_t read = 0;
  ASSERT_TRUE(mem.Read(reinterpret_cast<uint64_t>(&value), std::as_writable_bytes(std::span(&read, 1))).ok());
  EXPECT_EQ(read, value);
  const uint64_t written = 42;
  ASSERT_TRUE(mem.Write(reinterpret_cast<uint64_t>(&value), std::as_bytes(std::span(&written, 1))).ok());
  EXPECT_EQ(value, 42u);
  EXPECT_FALSE(mem.fault());
}

// A call read through an ID_VALID check that fails: died, not a fault.
TEST(RemoteMemory, ReadOfACallNoLongerPendingIsDied) {
  FakeNotifier notifier;
  notifier.Interrupt(9);
  RemoteMemory mem(getpid(), &notifier, 9);
  static uint64_t value = 7;
  uint64_t read = 0;
  EXPECT_FALSE(mem.Read(reinterpret_cast<uint64_t>(&value), std::as_writable_bytes(std::span(&read, 1))).ok());
  EXPECT_TRUE(mem.died());
  EXPECT_FALSE(mem.fault());
}

// ---- The supervisor serving scripted notifications ----

class Served : public ::testing::Test {
 protected:
  void SetUp() override {
    listener_stand_in_ = eventfd(0, EFD_CLOEXEC);  // for the loop's epoll; the double answers
    SupervisorOptions o;
    o.notifier = &notifier;
    o.fault_sink = &faults;
    o.memory_transfer = transfer;
    sup_ = std::make_unique<Supervisor>(listener_stand_in_, o);  // closes it
  }
  FakeNotifier notifier;
  RecordingFaultSink faults;
  MemoryTransfer transfer = MemoryTransfer::Host();
  std::unique_ptr<Supervisor> sup_;
  int listener_stand_in_ = -1;
};

class ServedWithoutMemoryAccess : public Served {
 protected:
  void SetUp() override {
    g_errno_to_give = EPERM;
    transfer = kFailing;
    Served::SetUp();
  }
};

// Issue 12 item 2: a Yama EPERM reading the caller's memory (port_sendn reads
// its port list first, port.c:995-999 copyin) is a supervisor fault: the
// sink gets it, and the program is never answered EFAULT.
TEST_F(ServedWithoutMemoryAccess, RemoteMemoryEpermNeverBecomesEfault) {
  const uint64_t sendn = abi::illumos::PORT_SENDN | abi::illumos::PORT_SYS_NOPORT;
  sup_->Serve(Call(1, getpid(), {sendn, 0x1000, 0x2000, 1, 0x4, 0x99}));
  EXPECT_TRUE(notifier.AnswersTo(1).empty());
  ASSERT_EQ(faults.faults.size(), 1u);
  EXPECT_EQ(faults.faults[0].first.error, EPERM);
  EXPECT_STREQ(faults.faults[0].first.operation, "process_vm_readv");
  EXPECT_EQ(faults.faults[0].second, getpid());
}

// Without the fault, an unreadable port list is the guest's EFAULT.
TEST_F(Served, UnmappedPortListIsTheGuestsEfault) {
  const uint64_t sendn = abi::illumos::PORT_SENDN | abi::illumos::PORT_SYS_NOPORT;
  sup_->Serve(Call(1, getpid(), {sendn, 8, 0x2000, 1, 0x4, 0x99}));  // address 8: unmapped
  ASSERT_EQ(notifier.AnswersTo(1).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(1)[0].error, EFAULT);
  EXPECT_TRUE(faults.faults.empty());
}

// A probe through the whole notification path: ECANCELED, nothing handled.
TEST_F(Served, ProbeWithNothingToRecoverGetsEcanceled) {
  sup_->Serve(Call(1, getpid(), {kProbeBit | kNumbered | (3ULL << 33) | 6, 4, 0x2000, 8, 1, 0}));
  ASSERT_EQ(notifier.AnswersTo(1).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(1)[0].error, ECANCELED);
}

// port_create: the new descriptor is installed and answered in one ADDFD
// (ADDFD_FLAG_SEND), through the notifier.
TEST_F(Served, PortCreateIsAnsweredByAddfd) {
  sup_->Serve(Call(1, getpid(), {abi::illumos::PORT_CREATE | abi::illumos::PORT_SYS_NOPORT, 0, 0, 0, 0, 0}));
  ASSERT_EQ(notifier.added.size(), 1u);
  EXPECT_TRUE(notifier.added[0].answer_with_fd);
  ASSERT_EQ(notifier.AnswersTo(1).size(), 1u);
  EXPECT_EQ(notifier.AnswersTo(1)[0].value, 3);
  EXPECT_TRUE(faults.faults.empty());
}

// The default policy (docs/design.md "Supervisor faults"): the process whose
// call met a fault is killed, not answered.
TEST(SupervisorFaultPolicy, TheProcessWhoseCallMetAFaultIsKilled) {
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pause();
    _exit(0);
  }
  g_errno_to_give = EPERM;
  FakeNotifier notifier;
  SupervisorOptions o;
  o.notifier = &notifier;
  o.memory_transfer = kFailing;
  {
    Supervisor sup(eventfd(0, EFD_CLOEXEC), o);
    const uint64_t sendn = abi::illumos::PORT_SENDN | abi::illumos::PORT_SYS_NOPORT;
    sup.Serve(Call(1, child, {sendn, 0x1000, 0x2000, 1, 0x4, 0x99}));
  }
  int status = 0;
  pid_t reaped = 0;
  for (int i = 0; i < 500 && reaped == 0; ++i) {  // up to 5 s
    reaped = waitpid(child, &status, WNOHANG);
    if (reaped == 0) usleep(10'000);
  }
  if (reaped == 0) {  // not killed: end it here, and fail
    kill(child, SIGKILL);
    waitpid(child, &status, 0);
    FAIL() << "the process whose call met a fault was not killed";
  }
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
  EXPECT_TRUE(notifier.AnswersTo(1).empty());
}

// A descriptor of the loop that cannot be watched (here: no listener at all)
// is a fault: logged, and the supervisor does not serve (Run ends at once)
// instead of wedging or answering anything.
TEST(SupervisorSetup, UnwatchableListenerIsAFaultAndRunEndsAtOnce) {
  FakeNotifier notifier;
  RecordingFaultSink faults;
  SupervisorOptions o;
  o.notifier = &notifier;
  o.fault_sink = &faults;
  Supervisor sup(-1, o);
  ASSERT_FALSE(faults.faults.empty());
  EXPECT_STREQ(faults.faults[0].first.operation, "epoll_ctl");
  EXPECT_EQ(faults.faults[0].first.error, EBADF);
  EXPECT_EQ(sup.Run(), 70);
}

// The host's own epoll_ctl (the watches' collecting epoll into the loop) is
// checked too.
TEST(SupervisorSetup, HostThatCannotJoinTheLoopReportsAFault) {
  LinuxHost host(-1, [](emul::Pid) { return -1; });
  ASSERT_TRUE(host.setup_fault());
  EXPECT_EQ(host.setup_fault()->error, EBADF);
}

}  // namespace
}  // namespace evshim::shim
