// Unit tests of a port's move from one engine to another (the in-process
// engine hands a port to the supervisor before fork; docs/design.md
// "Moving a port at fork"): ExportPort, ForgetExported, ImportPort. The
// rule is docs/rules-ports.md rule 34 (port.c:241-248: after fork the child
// shares the port, with everything queued and associated); nothing may be
// lost or delivered twice. Both engines share one fake host: the same
// process, the same files.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "emul/event_port.h"
#include "tests/support/fake_host.h"

namespace evshim::emul {
namespace {

using testing::FakeHost;
using namespace timer_abi;
constexpr uint16_t kUser = 3, kFd = 4, kTimer = 2, kAlert = 5;
constexpr uint32_t kIn = poll_bits::kIn;

class Recorder : public GetCompletion {
 public:
  explicit Recorder(std::shared_ptr<std::vector<GetOutcome>> out) : out_(std::move(out)) {}
  bool Complete(const GetOutcome& o) override {
    out_->push_back(o);
    return true;
  }

 private:
  std::shared_ptr<std::vector<GetOutcome>> out_;
};

class PortMoveTest : public ::testing::Test {
 protected:
  PortMoveTest() : from_(host_, PortLimits{}), to_(host_, PortLimits{}) { port_ = *from_.Create(kA); }

  // Everything `who` may retrieve now from `engine`'s `port`.
  std::vector<PortEvent> Poll(EventPorts& engine, ObjectId port, Caller who) {
    auto out = std::make_shared<std::vector<GetOutcome>>();
    GetSpec s;
    s.max = 16;
    s.nget = 1;
    s.timeout = Timeout::Value(0, 0);
    engine.Get(who, port, s, std::make_unique<Recorder>(out));
    EXPECT_EQ(out->size(), 1u);
    return out->empty() ? std::vector<PortEvent>{} : (*out)[0].events;
  }
  void Ready(const FakeHost::FileRef& f, uint32_t bits) {
    host_.SetReady(f, bits, [this](WatchId id, uint32_t b) {
      from_.OnWatchReady(id, b);
      to_.OnWatchReady(id, b);
    });
  }
  TimerNotify PortNotify(ObjectId port, uint64_t user) {
    TimerNotify n;
    n.notify = kSigevPort;
    n.port = port;
    n.user = user;
    return n;
  }
  // Export, import, forget: the engine's sequence (shim/inproc/fork_move.cc).
  ObjectId Move() {
    Result<PortState> s = from_.ExportPort(port_, kA.pid, true);
    EXPECT_TRUE(s.ok());
    Result<ObjectId> moved = to_.ImportPort(kA, *s);
    EXPECT_TRUE(moved.ok());
    EXPECT_TRUE(from_.ForgetExported(port_, kA.pid, *s).empty());
    return *moved;
  }

  static constexpr Caller kA{100, 100};
  static constexpr Caller kChild{200, 200};
  FakeHost host_;
  EventPorts from_, to_;
  ObjectId port_ = 0;
};

// Rule 34 with rules 12, 14: the queue moves in order and once; user events
// go to anyone holding the port, FD events to a process with the same file,
// a timer's event to its owner only (timer.c: portev_events = expirations).
TEST_F(PortMoveTest, Rule34QueueMovesInOrderAndOnce) {
  FakeHost::FileRef a = host_.NewFile();
  host_.Open(kA.pid, 7, a);
  ASSERT_TRUE(from_.Send(kA, port_, 1, 0x1).ok());
  ASSERT_TRUE(from_.AssociateFd(kA, port_, 7, kIn, 0xa).ok());
  Ready(a, kIn);
  ASSERT_TRUE(from_.Send(kA, port_, 2, 0x2).ok());
  int timer = *from_.TimerCreate(kA, kClockHighres, PortNotify(port_, 0x71));
  ASSERT_TRUE(from_.TimerSettime(kA, timer, 0, 0, 1000, 0, 0).ok());
  host_.Advance(1000);
  from_.OnDeadline();
  ASSERT_EQ(from_.QueuedCount(port_), 4u);
  const uint32_t slots = from_.SlotsInUse(port_);

  ObjectId moved = Move();
  EXPECT_FALSE(from_.Exists(port_));
  EXPECT_EQ(from_.TimerCount(kA.pid), 0u);  // the timer went with its port
  EXPECT_EQ(host_.live_watches(), 1u);      // the association's watch: one, the new engine's
  EXPECT_EQ(to_.QueuedCount(moved), 4u);
  EXPECT_EQ(to_.SlotsInUse(moved), slots);
  EXPECT_TRUE(host_.readable(moved));

  host_.Fork(kA.pid, kChild.pid);
  EXPECT_EQ(Poll(to_, moved, kChild),
            (std::vector<PortEvent>{{kUser, 1, 0, 0x1}, {kFd, kIn, 7, 0xa}, {kUser, 2, 0, 0x2}}));
  EXPECT_EQ(Poll(to_, moved, kA), (std::vector<PortEvent>{{kTimer, 1, static_cast<uint64_t>(timer), 0x71}}));
  EXPECT_TRUE(Poll(to_, moved, kA).empty());
  EXPECT_EQ(to_.SlotsInUse(moved), 2u);  // the association and the timer
}

// Rules 5 and 6: an armed association is armed again by the new engine;
// readiness that arrived between export and import fires at once, later
// readiness fires through the new watch.
TEST_F(PortMoveTest, Rule5ArmedAssociationStaysArmed) {
  FakeHost::FileRef a = host_.NewFile(), b = host_.NewFile();
  host_.Open(kA.pid, 7, a);
  host_.Open(kA.pid, 8, b);
  ASSERT_TRUE(from_.AssociateFd(kA, port_, 7, kIn, 0xa).ok());
  ASSERT_TRUE(from_.AssociateFd(kA, port_, 8, kIn, 0xb).ok());
  Result<PortState> s = from_.ExportPort(port_, kA.pid, true);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->assocs.size(), 2u);
  EXPECT_TRUE(s->assocs[0].active && s->assocs[1].active);
  EXPECT_TRUE(s->had_fd_assoc);
  from_.ForgetExported(port_, kA.pid, *s);
  a->ready = kIn;  // seen by no engine: the old watch is gone, the new one not yet made
  ObjectId moved = *to_.ImportPort(kA, *s);
  EXPECT_EQ(Poll(to_, moved, kA), (std::vector<PortEvent>{{kFd, kIn, 7, 0xa}}));
  Ready(b, kIn);
  EXPECT_EQ(Poll(to_, moved, kA), (std::vector<PortEvent>{{kFd, kIn, 8, 0xb}}));
  // rule 11: the owner may dissociate, a retrieved association is ENOENT
  EXPECT_EQ(to_.DissociateFd(kA, moved, 8).error().value, ENOENT);
}

// port_close_fd (port.c:164-169): a descriptor closed before the export, or
// between export and import, takes its association and event along.
TEST_F(PortMoveTest, ClosedDescriptorIsNotCarried) {
  FakeHost::FileRef a = host_.NewFile(), b = host_.NewFile();
  host_.Open(kA.pid, 7, a);
  host_.Open(kA.pid, 8, b);
  ASSERT_TRUE(from_.AssociateFd(kA, port_, 7, kIn, 0xa).ok());
  ASSERT_TRUE(from_.AssociateFd(kA, port_, 8, kIn, 0xb).ok());
  Ready(a, kIn);
  Ready(b, kIn);
  host_.Close(kA.pid, 7);
  Result<PortState> s = from_.ExportPort(port_, kA.pid, true);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->assocs.size(), 1u);
  EXPECT_EQ(s->assocs[0].fd, 8);
  from_.ForgetExported(port_, kA.pid, *s);
  host_.Close(kA.pid, 8);
  ObjectId moved = *to_.ImportPort(kA, *s);
  EXPECT_EQ(to_.AssociationCount(moved), 0u);
  EXPECT_EQ(to_.QueuedCount(moved), 0u);
  EXPECT_EQ(to_.SlotsInUse(moved), 0u);
}

// A waiting retrieval is neither answered nor lost: ForgetExported returns
// it, and the transport issues the call again to the new engine.
TEST_F(PortMoveTest, WaitersAreHandedBackUnanswered) {
  auto out = std::make_shared<std::vector<GetOutcome>>();
  GetSpec s;
  s.timeout = Timeout::Value(5, 0);
  std::optional<WaitId> wait = from_.Get(kA, port_, s, std::make_unique<Recorder>(out));
  ASSERT_TRUE(wait.has_value());
  Result<PortState> state = from_.ExportPort(port_, kA.pid, true);
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(from_.ForgetExported(port_, kA.pid, *state), std::vector<WaitId>{*wait});
  EXPECT_TRUE(out->empty());
  host_.Advance(6 * kNanosPerSecond);
  from_.OnDeadline();  // its deadline went with it
  EXPECT_TRUE(out->empty());
}

// timer.c: a moved timer keeps its id, deadline, period and undelivered
// expirations (T:459-467); one whose port is gone moves too, unbound (the
// process's timer ids are one table).
TEST_F(PortMoveTest, TimersKeepIdDeadlineAndPeriod) {
  ObjectId other = *from_.Create(kA);
  int gone = *from_.TimerCreate(kA, kClockHighres, PortNotify(other, 0x70));
  from_.LastClose(other);
  int t = *from_.TimerCreate(kA, kClockRealtime, PortNotify(port_, 0x71));
  ASSERT_TRUE(from_.TimerSettime(kA, t, 0, 0, 5000, 0, 1000).ok());
  Result<PortState> s = from_.ExportPort(port_, kA.pid, true);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->timers.size(), 2u);
  from_.ForgetExported(port_, kA.pid, *s);
  EXPECT_EQ(from_.TimerCount(kA.pid), 0u);
  ObjectId moved = *to_.ImportPort(kA, *s);
  EXPECT_EQ(to_.TimerCount(kA.pid), 2u);
  EXPECT_EQ(to_.TimerGettime(kA, gone)->value, 0);
  EXPECT_EQ(to_.TimerGettime(kA, t)->interval, 1000);
  EXPECT_EQ(to_.TimerGettime(kA, t)->value, 5000);
  host_.Advance(7500);  // the first expiry and two periods
  to_.OnDeadline();
  EXPECT_EQ(Poll(to_, moved, kA), (std::vector<PortEvent>{{kTimer, 3, static_cast<uint64_t>(t), 0x71}}));
  EXPECT_TRUE(to_.TimerDelete(kA, t).ok());
  EXPECT_EQ(to_.SlotsInUse(moved), 0u);
  EXPECT_TRUE(to_.TimerDelete(kA, gone).ok());
}

// Rules 16-19: the alert moves with its values; its owner is the importer.
TEST_F(PortMoveTest, AlertMoves) {
  ASSERT_TRUE(from_.Alert(kA, port_, 1, 5, 0x5).ok());
  ObjectId moved = Move();
  EXPECT_EQ(Poll(to_, moved, kA), (std::vector<PortEvent>{{kAlert, 5, 0, 0x5}}));
  EXPECT_EQ(to_.Alert(kA, moved, 2, 6, 0).error().value, EBUSY);  // PORT_ALERT_UPDATE: still set
}

// A port another process used already is shared: not this engine's alone
// to hand over (ENOTSUP; the caller keeps it).
TEST_F(PortMoveTest, ExportRefusesASharedPort) {
  ASSERT_TRUE(from_.Send(kChild, port_, 1, 0).ok());
  EXPECT_EQ(from_.ExportPort(port_, kA.pid, true).error().value, ENOTSUP);
  EXPECT_EQ(from_.ExportPort(port_ + 99, kA.pid, true).error().value, EBADFD);
  EXPECT_EQ(from_.QueuedCount(port_), 1u);
}

// A state is accepted only if a port could be in it (the supervisor reads
// it from the program's memory): EINVAL, and nothing is left behind.
TEST_F(PortMoveTest, ImportRefusesInconsistentStates) {
  FakeHost::FileRef a = host_.NewFile();
  host_.Open(kA.pid, 7, a);
  PortState good;
  good.max_events = 8;
  good.assocs = {PortState::Assoc{7, kIn, 0xa, false}};
  good.timers = {PortState::Timer{3, true, kClockHighres, kSigevPort, 0x71, 1, 0, 0, 0}};
  good.queue = {PortState::Event{PortState::EventKind::kFd, 0, {kFd, kIn, 7, 0xa}, false},
                PortState::Event{PortState::EventKind::kTimer, 0, {}, false},
                PortState::Event{PortState::EventKind::kPlain, 0, {kUser, 1, 0, 1}, false}};
  std::vector<PortState> bad(14, good);
  bad[0].max_events = 0;
  bad[1].max_events = PortLimits{}.max_events_per_port + 1;
  bad[2].assocs.push_back(good.assocs[0]);           // the same descriptor twice
  bad[3].queue[0].ref = 1;                           // no such association
  bad[4].assocs[0].active = true;                    // an armed association has no event
  bad[5].timers[0].pending = 0;                      // a queued timer event without expirations
  bad[6].timers.push_back(good.timers[0]);           // the same timer id twice
  bad[7].timers[0].clock = kClockVirtual;            // no timers on that clock
  bad[8].queue.push_back(good.queue[0]);             // one association, two events
  bad[9].max_events = 2;                             // 3 slots
  bad[10].queue[2].ev.source = kFd;                  // a plain event is USER, AIO or MQ
  bad[11].timers[0].id = 32;                         // beyond the process's timers
  bad[12].timers[0].next = -1;
  bad[13].queue.pop_back();
  bad[13].queue.erase(bad[13].queue.begin() + 1);    // pending expirations with no queued event
  for (size_t i = 0; i < bad.size(); ++i) {
    Result<ObjectId> r = to_.ImportPort(kA, bad[i]);
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_EQ(r.error().value, EINVAL) << i;
  }
  EXPECT_EQ(to_.port_count(), 0u);
  EXPECT_EQ(to_.TimerCount(kA.pid), 0u);
  EXPECT_EQ(host_.live_watches(), 0u);
  Result<ObjectId> ok = to_.ImportPort(kA, good);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(to_.QueuedCount(*ok), 3u);
  EXPECT_EQ(to_.SlotsInUse(*ok), 3u);
}

// Resources: a timer id the importer already has, or one port too many, is
// EAGAIN, with nothing left behind.
TEST_F(PortMoveTest, ImportOfATakenTimerIdOrBeyondThePortLimitIsEagain) {
  ObjectId mine = *to_.Create(kA);
  ASSERT_EQ(*to_.TimerCreate(kA, kClockHighres, PortNotify(mine, 0)), 0);
  PortState s;
  s.max_events = 8;
  s.timers = {PortState::Timer{0, true, kClockHighres, kSigevPort, 0, 0, 0, 0, 0}};
  EXPECT_EQ(to_.ImportPort(kA, s).error().value, EAGAIN);
  EXPECT_EQ(to_.port_count(), 1u);
  EventPorts one(host_, PortLimits{65536, 1});
  ASSERT_TRUE(one.Create(kA).ok());
  s.timers.clear();
  EXPECT_EQ(one.ImportPort(kA, s).error().value, EAGAIN);
}

}  // namespace
}  // namespace evshim::emul
