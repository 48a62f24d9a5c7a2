// The engines' common interface and router (emul/engine.h): each event goes
// to the engine that owns it, and the host's one deadline timer is armed at
// the earliest deadline of all engines (docs/design.md "Two engines over
// shared parts").
#include "emul/engine.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <vector>

#include "emul/event_port.h"
#include "emul/kqueue.h"
#include "tests/support/fake_host.h"
#include "tests/support/recording_engine.h"

namespace evshim::emul {
namespace {

// Equal deadlines come out in key order, and removing one entry removes
// that key only (a guest can give thousands of timers one NOTE_ABSTIME
// deadline: removal is by (deadline, key), never a scan of the equal ones).
TEST(DeadlineQueueTest, EqualDeadlinesInKeyOrderAndRemovalByKey) {
  DeadlineQueue<uint64_t> q;
  for (uint64_t key : {3u, 1u, 4u, 2u}) q.Add(100, key);
  q.Add(50, 9);
  q.Remove(100, 4);
  q.Remove(100, 7);  // not there: nothing
  q.Remove(60, 9);   // another deadline: nothing
  EXPECT_EQ(q.size(), 4u);
  std::vector<uint64_t> order;
  while (auto e = q.TakeDue(100)) order.push_back(e->second);
  EXPECT_EQ(order, (std::vector<uint64_t>{9, 1, 2, 3}));
  EXPECT_TRUE(q.empty());
}

TEST(DeadlineQueueTest, ManyEntriesWithOneDeadlineAreRemovedOneByOne) {
  DeadlineQueue<std::pair<int, uint64_t>> q;
  constexpr uint64_t kCount = 200000;
  for (uint64_t i = 0; i < kCount; ++i) q.Add(7, {1, i});
  for (uint64_t i = 0; i < kCount; i += 2) q.Remove(7, {1, i});
  EXPECT_EQ(q.size(), kCount / 2);
  auto first = q.TakeDue(7);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->second.second, 1u);
}

using testing::FakeHost;
using testing::RecordingEngine;

class EnginesTest : public ::testing::Test {
 protected:
  EnginesTest() : a_(host_, 1, 11, 21), b_(host_, 2, 12, 22), engines_(host_) {
    engines_.Add(a_);
    engines_.Add(b_);
  }
  FakeHost host_;
  RecordingEngine a_, b_;
  Engines engines_;
};

TEST_F(EnginesTest, EachEventGoesOnlyToItsOwner) {
  engines_.CancelWait(12);
  engines_.OnWatchReady(21, poll_bits::kIn);
  engines_.LastClose(2);
  EXPECT_TRUE(a_.cancelled.empty());
  EXPECT_EQ(b_.cancelled, std::vector<WaitId>{12});
  EXPECT_EQ(a_.ready, std::vector<WatchId>{21});
  EXPECT_TRUE(b_.ready.empty());
  EXPECT_TRUE(a_.closed.empty());
  EXPECT_EQ(b_.closed, std::vector<ObjectId>{2});
  // Nobody's: nothing happens.
  engines_.CancelWait(99);
  engines_.OnWatchReady(99, poll_bits::kIn);
  EXPECT_EQ(a_.cancelled.size() + b_.cancelled.size(), 1u);
  EXPECT_EQ(a_.ready.size() + b_.ready.size(), 1u);
}

TEST_F(EnginesTest, ProcessExitReachesEveryEngine) {
  engines_.ProcessExited(7);
  EXPECT_EQ(a_.exited, std::vector<Pid>{7});
  EXPECT_EQ(b_.exited, std::vector<Pid>{7});
}

// One timer, at the earliest deadline of all engines: an engine arming a
// later deadline does not push back another's earlier one.
TEST_F(EnginesTest, OneTimerAtTheEarliestDeadline) {
  const Nanos now = host_.Now();
  a_.SetDeadline(now + 100);
  b_.SetDeadline(now + 500);
  EXPECT_EQ(host_.deadline(), now + 100);
  b_.SetDeadline(now + 50);
  EXPECT_EQ(host_.deadline(), now + 50);
  b_.SetDeadline(Host::kNever);
  EXPECT_EQ(host_.deadline(), now + 100);
}

TEST_F(EnginesTest, DeadlineRunsOnlyTheEnginesThatAreDue) {
  const Nanos now = host_.Now();
  a_.SetDeadline(now + 100);
  b_.SetDeadline(now + 500);
  host_.Advance(100);
  engines_.OnDeadline();
  EXPECT_EQ(a_.deadlines_run, 1);
  EXPECT_EQ(b_.deadlines_run, 0);
  EXPECT_EQ(host_.deadline(), now + 500);
  engines_.CatchUpDeadlines();  // nothing more is due
  EXPECT_EQ(b_.deadlines_run, 0);
  host_.Advance(400);
  engines_.CatchUpDeadlines();
  EXPECT_EQ(b_.deadlines_run, 1);
  EXPECT_EQ(host_.deadline(), Host::kNever);
}

// Every in-process call catches up due deadlines first (docs/design.md
// "One look per call"): with none armed, that reads no clock (a vDSO read per
// engine and call, or a system call where the clocksource has no vDSO).
TEST_F(EnginesTest, CatchingUpWithNoDeadlineReadsNoClock) {
  const int before = host_.clock_reads();
  engines_.CatchUpDeadlines();
  EXPECT_EQ(host_.clock_reads(), before);
  a_.SetDeadline(host_.Now() + 100);
  const int armed = host_.clock_reads();
  engines_.CatchUpDeadlines();  // one engine has a deadline: it reads the clock
  EXPECT_EQ(host_.clock_reads(), armed + 1);
  EXPECT_EQ(a_.deadlines_run, 0);
}

// The real engines on one host: a port_get timeout (port.c:1333-1348) and a
// kevent timeout (DF kern_event.c:864-962, 1028-1030: 0 events, no error) each keep their deadline, and
// the earlier wins the host's timer whichever was armed last.
TEST(EnginesRealTest, PortAndKqueueTimeoutsShareOneTimer) {
  FakeHost host;
  EventPorts ports(host, PortLimits{});
  Kqueues kqueues(host);
  Engines engines(host);
  engines.Add(ports);
  engines.Add(kqueues);
  const Caller caller{100, 100};
  const Nanos start = host.Now();

  Result<ObjectId> kq = kqueues.Create(caller);
  ASSERT_TRUE(kq.ok());
  class Done final : public KeventCompletion {
   public:
    explicit Done(bool* called) : called_(called) {}
    bool Complete(const KeventOutcome&) override { return *called_ = true; }

   private:
    bool* called_;
  };
  bool kevent_done = false;
  KqueuePolicy policy;
  std::optional<WaitId> kwait = kqueues.Kevent(caller, *kq, policy, {}, false,
                                               KeventWait{8, false, 1, 0}, std::make_unique<Done>(&kevent_done));
  ASSERT_TRUE(kwait.has_value());
  EXPECT_TRUE(kqueues.OwnsWait(*kwait));
  EXPECT_FALSE(ports.OwnsWait(*kwait));

  Result<ObjectId> port = ports.Create(caller);
  ASSERT_TRUE(port.ok());
  class Got final : public GetCompletion {
   public:
    explicit Got(std::optional<int>* error) : error_(error) {}
    bool Complete(const GetOutcome& out) override {
      *error_ = out.error;
      return true;
    }

   private:
    std::optional<int>* error_;
  };
  std::optional<int> get_error;
  GetSpec spec;
  spec.one = true;
  spec.timeout = Timeout::Value(5, 0);
  std::optional<WaitId> pwait = ports.Get(caller, *port, spec, std::make_unique<Got>(&get_error));
  ASSERT_TRUE(pwait.has_value());
  EXPECT_TRUE(ports.OwnsWait(*pwait));
  EXPECT_FALSE(kqueues.OwnsWait(*pwait));

  // The port armed its 5 s last; the kqueue's 1 s stays the timer.
  EXPECT_EQ(host.deadline(), start + kNanosPerSecond);
  host.Advance(kNanosPerSecond);
  engines.OnDeadline();
  EXPECT_TRUE(kevent_done);
  EXPECT_FALSE(get_error.has_value());
  EXPECT_EQ(host.deadline(), start + 5 * kNanosPerSecond);
  host.Advance(4 * kNanosPerSecond);
  engines.OnDeadline();
  EXPECT_EQ(get_error, std::optional<int>(ETIME));
  EXPECT_EQ(host.deadline(), Host::kNever);
}

}  // namespace
}  // namespace evshim::emul
