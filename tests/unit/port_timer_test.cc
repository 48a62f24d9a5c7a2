// Unit tests of POSIX timers with port notification (illumos timer.c, cited
// "T:N" = line N of shared/seeds/003_*; docs/rules-ports.md §3.4).
#include <gtest/gtest.h>

#include <climits>
#include <memory>
#include <vector>

#include "emul/event_port.h"
#include "tests/support/fake_host.h"

namespace evshim::emul {
namespace {

using namespace timer_abi;
constexpr uint16_t kTimerSource = 2;
constexpr Nanos kMs = 1'000'000;

class Collect : public GetCompletion {
 public:
  explicit Collect(std::vector<GetOutcome>* out) : out_(out) {}
  bool Complete(const GetOutcome& o) override {
    out_->push_back(o);
    return true;
  }

 private:
  std::vector<GetOutcome>* out_;
};

class PortTimerTest : public ::testing::Test {
 protected:
  PortTimerTest() : ports_(host_, PortLimits{}) { port_ = *ports_.Create(kA); }

  TimerNotify PortNotify(uint64_t user) {
    TimerNotify n;
    n.notify = kSigevPort;
    n.port = port_;
    n.user = user;
    return n;
  }
  std::vector<PortEvent> Poll(Caller who) {
    std::vector<GetOutcome> out;
    GetSpec s;
    s.max = 16;
    s.nget = 1;
    s.timeout = Timeout::Value(0, 0);
    ports_.Get(who, port_, s, std::make_unique<Collect>(&out));
    return out.empty() ? std::vector<PortEvent>{} : out[0].events;
  }
  void Run(Nanos d) {  // advance time in small steps, firing deadlines
    for (Nanos t = 0; t < d; t += kMs) {
      host_.Advance(kMs);
      if (host_.deadline() <= host_.Now()) ports_.OnDeadline();
    }
  }

  static constexpr Caller kA{100, 100}, kB{200, 200};
  testing::FakeHost host_;
  EventPorts ports_;
  ObjectId port_;
};

// T:459-467: every missed period counts, however many: one arithmetic step,
// not one per period (a 1 ns interval with the clock 2^62 ns late took 2^32
// steps before). The count saturates; the next expiry is the next period.
TEST_F(PortTimerTest, TinyIntervalCatchUpIsOneStep) {
  Result<int> id = ports_.TimerCreate(kA, kClockHighres, PortNotify(1));
  ASSERT_TRUE(id.ok());
  ASSERT_TRUE(ports_.TimerSettime(kA, *id, 0, 0, 1, 0, 1).ok());  // 1 ns, every 1 ns
  host_.Advance(Nanos{1} << 62);
  ports_.OnDeadline();
  EXPECT_EQ(host_.deadline(), host_.Now() + 1);
  std::vector<PortEvent> ev = Poll(kA);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].events, 1u + INT_MAX / 2);
  host_.Advance(1000);
  ports_.OnDeadline();
  ev = Poll(kA);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].events, 1000u);
  // A deadline beyond the clock's range stops the timer instead of wrapping.
  host_.Advance(INT64_MAX - host_.Now() - 10);
  ASSERT_TRUE(ports_.TimerSettime(kA, *id, 0, 0, 5, INT64_MAX / 1'000'000'000 - 2, 0).ok());
  ports_.OnDeadline();
  host_.Advance(10);
  ports_.OnDeadline();
  EXPECT_EQ(host_.deadline(), Host::kNever);
  EXPECT_EQ(Poll(kA).size(), 1u);
}

// T:531-545: ids are the lowest free slot; T:459-467 + T:1026-1051: one
// queued event carries the number of expirations since the last delivery.
TEST_F(PortTimerTest, PeriodicTimerCountsExpirationsInOneEvent) {
  Result<int> id = ports_.TimerCreate(kA, kClockHighres, PortNotify(0xabc));
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(*id, 0);
  ASSERT_TRUE(ports_.TimerSettime(kA, *id, 0, 0, 10 * kMs, 0, 10 * kMs).ok());
  Run(55 * kMs);
  EXPECT_EQ(ports_.QueuedCount(port_), 1u);  // one wired event, not five
  std::vector<PortEvent> ev = Poll(kA);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].source, kTimerSource);
  EXPECT_EQ(ev[0].object, 0u);  // portev_object = the timer id
  EXPECT_EQ(ev[0].user, 0xabcu);
  EXPECT_EQ(ev[0].events, 5u);  // portev_events = expirations
  Run(20 * kMs);
  ev = Poll(kA);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].events, 2u);  // counted again from zero
}

// T:1033-1038: timer events are never delivered to another process.
TEST_F(PortTimerTest, EventsOnlyForTheCreatingProcess) {
  int id = *ports_.TimerCreate(kA, kClockRealtime, PortNotify(1));
  ASSERT_TRUE(ports_.TimerSettime(kA, id, 0, 0, 5 * kMs, 0, 0).ok());
  Run(10 * kMs);
  EXPECT_TRUE(Poll(kB).empty());
  EXPECT_EQ(ports_.QueuedCount(port_), 1u);
  EXPECT_EQ(Poll(kA).size(), 1u);
}

// T:143-160: timer_delete removes a queued, undelivered event.
TEST_F(PortTimerTest, DeleteRemovesQueuedEvent) {
  int id = *ports_.TimerCreate(kA, kClockHighres, PortNotify(1));
  ASSERT_TRUE(ports_.TimerSettime(kA, id, 0, 0, 1 * kMs, 0, 0).ok());
  Run(3 * kMs);
  EXPECT_EQ(ports_.QueuedCount(port_), 1u);
  ASSERT_TRUE(ports_.TimerDelete(kA, id).ok());
  EXPECT_EQ(ports_.QueuedCount(port_), 0u);
  EXPECT_EQ(ports_.SlotsInUse(port_), 0u);
  EXPECT_EQ(ports_.TimerDelete(kA, id).error().value, EINVAL);
}

// T:1062-1087: closing the port leaves the timer running, notifying nobody.
TEST_F(PortTimerTest, PortCloseLeavesTimerRunning) {
  int id = *ports_.TimerCreate(kA, kClockHighres, PortNotify(1));
  ASSERT_TRUE(ports_.TimerSettime(kA, id, 0, 0, 10 * kMs, 0, 10 * kMs).ok());
  ports_.CloseBy(port_, kA.pid);
  Run(30 * kMs);
  EXPECT_EQ(ports_.QueuedCount(port_), 0u);
  Result<TimerSpec> s = ports_.TimerGettime(kA, id);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->interval, 10 * kMs);
  EXPECT_GT(s->value, 0);
}

// T:598-599, T:644-656, T:733-753, T:773: the order of timer_create's checks.
TEST_F(PortTimerTest, CreateChecksInKernelOrder) {
  EXPECT_EQ(ports_.TimerCreate(kA, 6, PortNotify(0)).error().value, EINVAL);   // no such clock
  EXPECT_EQ(ports_.TimerCreate(kA, -1, PortNotify(0)).error().value, EINVAL);
  TimerNotify bad_port = PortNotify(0);
  bad_port.port = Errno{EBADFD};
  // A CPU-time clock fails in the backend, after the port check (T:773).
  EXPECT_EQ(ports_.TimerCreate(kA, kClockVirtual, bad_port).error().value, EBADFD);
  EXPECT_EQ(ports_.TimerCreate(kA, kClockVirtual, PortNotify(0)).error().value, EINVAL);
  EXPECT_EQ(ports_.SlotsInUse(port_), 0u);  // the failed create released its slot
  TimerNotify sig;
  sig.notify = kSigevSignal;
  sig.signo = 0;
  EXPECT_EQ(ports_.TimerCreate(kA, kClockRealtime, sig).error().value, EINVAL);
  TimerNotify weird;
  weird.notify = 99;
  EXPECT_EQ(ports_.TimerCreate(kA, kClockRealtime, weird).error().value, EINVAL);
}

// T:56, T:272, T:678-682: at most timer_max timers per process, then EAGAIN.
TEST_F(PortTimerTest, TimerLimitIsEagain) {
  TimerNotify none;
  none.notify = kSigevNone;
  for (int i = 0; i < 32; ++i) ASSERT_EQ(*ports_.TimerCreate(kA, kClockRealtime, none), i);
  EXPECT_EQ(ports_.TimerCreate(kA, kClockRealtime, none).error().value, EAGAIN);
  EXPECT_TRUE(ports_.TimerCreate(kB, kClockRealtime, none).ok());  // per process
  ASSERT_TRUE(ports_.TimerDelete(kA, 7).ok());
  EXPECT_EQ(*ports_.TimerCreate(kA, kClockRealtime, none), 7);  // lowest free slot
}

// T:865-872: settime validates the new value; bad ids are EINVAL.
TEST_F(PortTimerTest, SettimeValidation) {
  int id = *ports_.TimerCreate(kA, kClockRealtime, PortNotify(0));
  EXPECT_EQ(ports_.TimerSettime(kA, id, 0, -1, 0, 0, 0).error().value, EINVAL);
  EXPECT_EQ(ports_.TimerSettime(kA, id, 0, 0, kNanosPerSecond, 0, 0).error().value, EINVAL);
  EXPECT_EQ(ports_.TimerSettime(kA, id, 0, 1, 0, 0, -5).error().value, EINVAL);
  EXPECT_TRUE(ports_.TimerSettime(kA, id, 0, 0, 0, 0, -5).ok());  // disarming ignores interval
  EXPECT_EQ(ports_.TimerSettime(kA, 99, 0, 1, 0, 0, 0).error().value, EINVAL);
  EXPECT_EQ(ports_.TimerGettime(kA, 99).error().value, EINVAL);
  EXPECT_EQ(ports_.TimerGetoverrun(kA, 99).error().value, EINVAL);
}

// Absolute deadlines: realtime clocks are converted with the host's offset.
TEST_F(PortTimerTest, AbsoluteRealtimeDeadline) {
  int id = *ports_.TimerCreate(kA, kClockRealtime, PortNotify(0));
  Nanos real_now = host_.Now() + host_.RealtimeOffset();
  Nanos at = real_now + 20 * kMs;
  ASSERT_TRUE(ports_.TimerSettime(kA, id, kTimerAbstime, at / kNanosPerSecond, at % kNanosPerSecond, 0, 0).ok());
  Run(15 * kMs);
  EXPECT_TRUE(Poll(kA).empty());
  Run(10 * kMs);
  EXPECT_EQ(Poll(kA).size(), 1u);
}

// SIGEV_SIGNAL: each expiry queues the signal with the sigevent's value;
// evp == NULL means SIGALRM with the timer id as value (T:692-693).
TEST_F(PortTimerTest, SignalNotification) {
  TimerNotify sig;
  sig.notify = kSigevSignal;
  sig.signo = 10;
  sig.value = 0x5150;
  sig.value_is_id = false;
  int id = *ports_.TimerCreate(kA, kClockHighres, sig);
  ASSERT_TRUE(ports_.TimerSettime(kA, id, 0, 0, 5 * kMs, 0, 0).ok());
  int id2 = *ports_.TimerCreate(kA, kClockRealtime, TimerNotify{});
  ASSERT_TRUE(ports_.TimerSettime(kA, id2, 0, 0, 5 * kMs, 0, 0).ok());
  Run(10 * kMs);
  ASSERT_EQ(host_.signals().size(), 2u);
  EXPECT_EQ(host_.signals()[0].signo, 10);
  EXPECT_EQ(host_.signals()[0].value, 0x5150u);
  EXPECT_EQ(host_.signals()[1].signo, 14);
  EXPECT_EQ(host_.signals()[1].value, static_cast<uint64_t>(id2));
}

// Timers are not inherited and die with their process (T:1001-1016).
TEST_F(PortTimerTest, ProcessExitDeletesTimers) {
  int id = *ports_.TimerCreate(kA, kClockHighres, PortNotify(0));
  ASSERT_TRUE(ports_.TimerSettime(kA, id, 0, 0, 1 * kMs, 0, 1 * kMs).ok());
  EXPECT_EQ(ports_.TimerGettime(kB, id).error().value, EINVAL);  // another process: no such timer
  ports_.ProcessExited(kA.pid);
  EXPECT_EQ(ports_.TimerCount(kA.pid), 0u);
  Run(5 * kMs);
  EXPECT_EQ(ports_.QueuedCount(port_), 0u);
}

// exec deletes every POSIX timer of the process (illumos exec_common:
// "Delete the POSIX timers" -> timer_exit, T:1000-1015), whatever its
// notification: the queued expiry event goes, the ids are free again, the
// slot returns to the port, and no signal or event follows.
TEST_F(PortTimerTest, ExecDeletesTimersOfEveryKind) {
  int by_port = *ports_.TimerCreate(kA, kClockHighres, PortNotify(7));
  TimerNotify sig;
  sig.notify = kSigevSignal;
  sig.signo = 10;
  int by_signal = *ports_.TimerCreate(kA, kClockHighres, sig);
  int other = *ports_.TimerCreate(kB, kClockHighres, PortNotify(8));  // another process keeps its own
  ASSERT_TRUE(ports_.TimerSettime(kA, by_port, 0, 0, 1 * kMs, 0, 1 * kMs).ok());
  ASSERT_TRUE(ports_.TimerSettime(kA, by_signal, 0, 0, 1 * kMs, 0, 1 * kMs).ok());
  Run(2 * kMs);
  ASSERT_EQ(ports_.QueuedCount(port_), 1u);  // A's expiry event waits
  const size_t signals_before = host_.signals().size();
  const uint32_t slots_before = ports_.SlotsInUse(port_);
  ports_.ProcessExeced(kA.pid);
  EXPECT_EQ(ports_.TimerCount(kA.pid), 0u);
  EXPECT_EQ(ports_.TimerCount(kB.pid), 1u);
  EXPECT_EQ(ports_.QueuedCount(port_), 0u);
  EXPECT_EQ(ports_.SlotsInUse(port_), slots_before - 1);
  Run(5 * kMs);
  EXPECT_EQ(host_.signals().size(), signals_before);
  EXPECT_EQ(ports_.QueuedCount(port_), 0u);
  EXPECT_TRUE(Poll(kA).empty());
  // The new image gets the lowest ids again (T:531-545).
  EXPECT_EQ(*ports_.TimerCreate(kA, kClockHighres, PortNotify(9)), 0);
  EXPECT_EQ(*ports_.TimerCreate(kA, kClockHighres, PortNotify(9)), 1);
  (void)other;
}

// A timer holds one event slot for its life (T:744-753): none left is EAGAIN.
TEST_F(PortTimerTest, TimerNeedsAnEventSlot) {
  EventPorts small(host_, PortLimits{1, 8192, 32});
  ObjectId p = *small.Create(kA);
  TimerNotify n;
  n.notify = kSigevPort;
  n.port = p;
  Result<int> id = small.TimerCreate(kA, kClockRealtime, n);
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(small.TimerCreate(kA, kClockRealtime, n).error().value, EAGAIN);
  // Rule 3: the timer's wired slot makes the port poll not writable until the
  // timer is deleted (port_vnops.c port_poll; T:744).
  EXPECT_FALSE(host_.writable(p));
  ASSERT_TRUE(small.TimerDelete(kA, *id).ok());
  EXPECT_TRUE(host_.writable(p));
  // A create that fails after taking the slot (bad clock) leaves it writable.
  EXPECT_EQ(small.TimerCreate(kA, 1, n).error().value, EINVAL);
  EXPECT_TRUE(host_.writable(p));
}

}  // namespace
}  // namespace evshim::emul
