// Unit tests of the event-port engine against a fake host. Each test names
// the rule of docs/rules-ports.md (and the port.c lines) it pins.
#include "emul/event_port.h"

#include <gtest/gtest.h>

#include <climits>
#include <memory>
#include <vector>

#include "tests/support/fake_host.h"

namespace evshim::emul {
namespace {

using testing::FakeHost;
constexpr uint16_t kUser = 3, kFd = 4, kAlert = 5;
constexpr uint32_t kIn = poll_bits::kIn, kOut = poll_bits::kOut, kHup = poll_bits::kHup;

struct Record {
  std::vector<GetOutcome> outcomes;
  bool refuse = false;
};

class Recorder : public GetCompletion {
 public:
  explicit Recorder(std::shared_ptr<Record> r) : r_(std::move(r)) {}
  bool Complete(const GetOutcome& out) override {
    if (r_->refuse) return false;
    r_->outcomes.push_back(out);
    return true;
  }

 private:
  std::shared_ptr<Record> r_;
};

class EventPortTest : public ::testing::Test {
 protected:
  EventPortTest() : ports_(host_, PortLimits{}) {}

  ObjectId NewPort(PortLimits limits = {}) {
    if (limits.max_events_per_port != PortLimits{}.max_events_per_port) {
      custom_ = std::make_unique<EventPorts>(host_, limits);
    }
    Result<ObjectId> r = engine().Create(kA);
    EXPECT_TRUE(r.ok());
    return *r;
  }
  EventPorts& engine() { return custom_ ? *custom_ : ports_; }

  // Issues a retrieval; returns its record (outcome appears when completed).
  std::shared_ptr<Record> Get(Caller who, ObjectId port, GetSpec spec, std::optional<WaitId>* wait = nullptr) {
    auto rec = std::make_shared<Record>();
    auto w = engine().Get(who, port, spec, std::make_unique<Recorder>(rec));
    if (wait) *wait = w;
    return rec;
  }
  static GetSpec Getn(uint32_t max, uint32_t nget, Timeout t = Timeout::Forever()) {
    GetSpec s;
    s.max = max;
    s.nget = nget;
    s.timeout = t;
    return s;
  }
  static GetSpec GetOne(Timeout t = Timeout::Forever()) {
    GetSpec s;
    s.one = true;
    s.timeout = t;
    return s;
  }
  // The user values of a retrieval's one outcome, in order.
  static std::vector<uint64_t> UsersOf(const Record& r) {
    std::vector<uint64_t> u;
    for (const PortEvent& ev : r.outcomes.at(0).events) u.push_back(ev.user);
    return u;
  }
  void Ready(const FakeHost::FileRef& f, uint32_t bits) {
    host_.SetReady(f, bits, [this](WatchId id, uint32_t b) { engine().OnWatchReady(id, b); });
  }
  void Expire(Nanos d) {
    host_.Advance(d);
    engine().OnDeadline();
  }

  static constexpr Caller kA{100, 100};
  static constexpr Caller kA2{100, 101};  // another thread of process A
  static constexpr Caller kB{200, 200};   // another process
  FakeHost host_;
  EventPorts ports_;
  std::unique_ptr<EventPorts> custom_;
};

// Rule 1 (port.c:742-755): the per-tree port count gives EAGAIN.
TEST_F(EventPortTest, Rule1CreateBeyondPortLimitIsEagain) {
  EventPorts small(host_, PortLimits{65536, 2});
  EXPECT_TRUE(small.Create(kA).ok());
  EXPECT_TRUE(small.Create(kA).ok());
  Result<ObjectId> third = small.Create(kA);
  ASSERT_FALSE(third.ok());
  EXPECT_EQ(third.error().value, EAGAIN);
}

// Rule 13: port_send queues {PORT_SOURCE_USER, object 0, events, user}.
TEST_F(EventPortTest, Rule13SendThenGetReturnsUserEvent) {
  ObjectId p = NewPort();
  ASSERT_TRUE(engine().Send(kA, p, 42, 0xfeed).ok());
  auto rec = Get(kA, p, GetOne());
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, 0);
  ASSERT_EQ(rec->outcomes[0].events.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].events[0], (PortEvent{kUser, 42, 0, 0xfeed}));
}

// Rule 24 (port.c:1284, 1546-1578): a zero timeout with nothing queued is
// not ETIME: it returns success with no events.
TEST_F(EventPortTest, Rule24ZeroTimeoutPollsWithoutEtime) {
  ObjectId p = NewPort();
  auto one = Get(kA, p, GetOne(Timeout::Value(0, 0)));
  ASSERT_EQ(one->outcomes.size(), 1u);
  EXPECT_EQ(one->outcomes[0].error, 0);
  EXPECT_TRUE(one->outcomes[0].events.empty());
  EXPECT_TRUE(engine().Send(kA, p, 1, 1).ok());
  auto n = Get(kA, p, Getn(8, 4, Timeout::Value(0, 0)));
  ASSERT_EQ(n->outcomes.size(), 1u);
  EXPECT_EQ(n->outcomes[0].error, 0);
  EXPECT_EQ(n->outcomes[0].events.size(), 1u);  // what there was, fewer than nget
}

// Rule 25 (port.c:1333-1348): port_get's deadline is ETIME with no event.
TEST_F(EventPortTest, Rule25GetTimesOutWithEtime) {
  ObjectId p = NewPort();
  std::optional<WaitId> wait;
  auto rec = Get(kA, p, GetOne(Timeout::Value(1, 0)), &wait);
  EXPECT_TRUE(wait.has_value());
  EXPECT_TRUE(rec->outcomes.empty());
  EXPECT_EQ(host_.deadline(), host_.Now() + kNanosPerSecond);
  Expire(kNanosPerSecond / 2);
  EXPECT_TRUE(rec->outcomes.empty());
  Expire(kNanosPerSecond / 2);
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, ETIME);
  EXPECT_TRUE(rec->outcomes[0].events.empty());
  EXPECT_EQ(engine().WaiterCount(p), 0u);
}

// Rule 25 (port.c:638-643): port_getn's deadline returns the events that are
// there together with ETIME.
TEST_F(EventPortTest, Rule25GetnTimesOutWithPartialEvents) {
  ObjectId p = NewPort();
  EXPECT_TRUE(engine().Send(kA, p, 1, 1).ok());
  auto rec = Get(kA, p, Getn(8, 3, Timeout::Value(0, 5'000'000)));
  EXPECT_TRUE(rec->outcomes.empty());  // 1 < nget 3: waits
  EXPECT_TRUE(engine().Send(kA, p, 2, 2).ok());
  EXPECT_TRUE(rec->outcomes.empty());
  Expire(5'000'000);
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, ETIME);
  EXPECT_EQ(rec->outcomes[0].events.size(), 2u);
  EXPECT_EQ(engine().QueuedCount(p), 0u);
}

// A blocked retrieval wakes when an event is sent (port_send_event).
TEST_F(EventPortTest, WaiterWakesOnSend) {
  ObjectId p = NewPort();
  auto rec = Get(kA, p, GetOne());
  EXPECT_TRUE(rec->outcomes.empty());
  EXPECT_EQ(engine().WaiterCount(p), 1u);
  EXPECT_TRUE(engine().Send(kA2, p, 7, 7).ok());
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].events[0].events, 7u);
}

// Two waiters, two events: each event is delivered exactly once.
TEST_F(EventPortTest, TwoWaitersEachGetOneOfTwoEvents) {
  ObjectId p = NewPort();
  auto r1 = Get(kA, p, GetOne());
  auto r2 = Get(kA2, p, GetOne());
  EXPECT_TRUE(engine().Send(kB, p, 1, 1).ok());
  EXPECT_TRUE(engine().Send(kB, p, 2, 2).ok());
  ASSERT_EQ(r1->outcomes.size(), 1u);
  ASSERT_EQ(r2->outcomes.size(), 1u);
  std::set<uint32_t> got{r1->outcomes[0].events[0].events, r2->outcomes[0].events[0].events};
  EXPECT_EQ(got, (std::set<uint32_t>{1, 2}));
  EXPECT_EQ(engine().QueuedCount(p), 0u);
}

// Rule 30 (port.c:1814-1855): the insertion quirk. With waiter A(nget 1)
// then B(nget 5), B becomes the head and one event wakes nobody.
TEST_F(EventPortTest, Rule30WaiterInsertionQuirkHeadIsLargerNget) {
  ObjectId p = NewPort();
  auto a = Get(kA, p, Getn(8, 1));
  auto b = Get(kA2, p, Getn(8, 5));
  EXPECT_TRUE(engine().Send(kB, p, 1, 1).ok());
  EXPECT_TRUE(a->outcomes.empty());
  EXPECT_TRUE(b->outcomes.empty());
  EXPECT_EQ(engine().QueuedCount(p), 1u);
}

// Rule 30: equal nget, the newest waiter is woken first (LIFO).
TEST_F(EventPortTest, Rule30EqualNgetNewestFirst) {
  ObjectId p = NewPort();
  auto first = Get(kA, p, GetOne());
  auto second = Get(kA2, p, GetOne());
  EXPECT_TRUE(engine().Send(kB, p, 1, 1).ok());
  EXPECT_TRUE(first->outcomes.empty());
  EXPECT_EQ(second->outcomes.size(), 1u);
}

// Rule 20 (port.c:1188-1222): the argument checks and their order.
TEST_F(EventPortTest, Rule20ArgumentChecksInOrder) {
  ObjectId p = NewPort();
  EXPECT_TRUE(engine().Send(kA, p, 1, 1).ok());
  EXPECT_TRUE(engine().Send(kA, p, 2, 2).ok());
  EXPECT_EQ(Get(kA, p, Getn(1, 2))->outcomes[0].error, EINVAL);  // nget > max > 0
  auto count = Get(kA, p, Getn(0, 5));                            // max == 0: the count
  ASSERT_TRUE(count->outcomes[0].count_only.has_value());
  EXPECT_EQ(*count->outcomes[0].count_only, 2u);
  GetSpec null_list = Getn(4, 1);
  null_list.list_is_null = true;
  EXPECT_EQ(Get(kA, p, null_list)->outcomes[0].error, EFAULT);
  auto zero = Get(kA, p, Getn(4, 0));  // nget == 0: nothing required
  EXPECT_EQ(zero->outcomes[0].error, 0);
  EXPECT_TRUE(zero->outcomes[0].events.empty());
  EXPECT_EQ(engine().QueuedCount(p), 2u);
}

// Rule 21 (port.c:1268-1285): the timeout is examined only if the call
// would wait.
TEST_F(EventPortTest, Rule21InvalidTimeoutOnlyMattersWhenWaiting) {
  ObjectId p = NewPort();
  EXPECT_TRUE(engine().Send(kA, p, 1, 1).ok());
  EXPECT_EQ(Get(kA, p, GetOne(Timeout::Value(-1, 0)))->outcomes[0].error, 0);
  EXPECT_EQ(Get(kA, p, GetOne(Timeout::Value(-1, 0)))->outcomes[0].error, EINVAL);
  EXPECT_EQ(Get(kA, p, GetOne(Timeout::Value(0, 1'000'000'000)))->outcomes[0].error, EINVAL);
  EXPECT_EQ(Get(kA, p, Getn(4, 1, Timeout::Fault()))->outcomes[0].error, EFAULT);
}

// Rule 23 (port.c:1369): up to max events, not nget, in FIFO order.
TEST_F(EventPortTest, Rule23ReturnsUpToMaxInFifoOrder) {
  ObjectId p = NewPort();
  for (uint32_t i = 1; i <= 5; ++i) EXPECT_TRUE(engine().Send(kA, p, i, i).ok());
  auto rec = Get(kA, p, Getn(3, 1));
  ASSERT_EQ(rec->outcomes[0].events.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(rec->outcomes[0].events[i].events, i + 1);
  EXPECT_EQ(engine().QueuedCount(p), 2u);
}

// Rules 16-18 (port.c:1065-1136, 1230-1237): alert mode.
TEST_F(EventPortTest, Rules16To18AlertWakesAllAndIsReturnedWhileSet) {
  ObjectId p = NewPort();
  auto w1 = Get(kA, p, GetOne());
  auto w2 = Get(kA2, p, Getn(8, 4));
  EXPECT_TRUE(engine().Send(kB, p, 9, 9).ok());  // stays queued through the alert
  // Rule 30: w2 (nget 4) became the head, so this event woke nobody.
  EXPECT_EQ(w1->outcomes.size() + w2->outcomes.size(), 0u);
  auto w3 = Get(kB, p, Getn(8, 4));
  ASSERT_TRUE(engine().Alert(kA, p, 0x01, 0x55, 0xa1e).ok());
  for (auto* w : {&w1, &w2, &w3}) {  // every waiter wakes with the alert (rule 17)
    ASSERT_EQ((*w)->outcomes.size(), 1u);
    EXPECT_EQ((*w)->outcomes[0].events[0], (PortEvent{kAlert, 0x55, 0, 0xa1e}));
  }
  EXPECT_TRUE(engine().Send(kB, p, 10, 10).ok());
  auto now = Get(kA, p, Getn(8, 1));
  ASSERT_EQ(now->outcomes[0].events.size(), 1u);
  EXPECT_EQ(now->outcomes[0].events[0].source, kAlert);
  EXPECT_EQ(engine().QueuedCount(p), 2u);  // queued events stay queued
  EXPECT_EQ(engine().Alert(kA, p, 0x02, 1, 1).error().value, EBUSY);  // UPDATE while set
  EXPECT_EQ(engine().Alert(kA, p, 0x03, 1, 1).error().value, EINVAL);
  EXPECT_TRUE(engine().Alert(kA, p, 0x03, 0, 0).ok());  // events 0 clears, flags ignored
  auto after = Get(kA, p, GetOne());
  EXPECT_EQ(after->outcomes[0].events[0].source, kUser);
}

// Rule 19 (port.c:217-221): the alert goes when its owner closes the port.
TEST_F(EventPortTest, Rule19AlertRemovedWhenOwnerCloses) {
  ObjectId p = NewPort();
  EXPECT_TRUE(engine().Alert(kB, p, 0x01, 1, 1).ok());
  engine().CloseBy(p, kB.pid);
  auto rec = Get(kA, p, GetOne(Timeout::Value(0, 0)));
  EXPECT_TRUE(rec->outcomes[0].events.empty());
}

// Rules 5 and 6: one-shot FD associations; an already ready descriptor fires
// at once; POLLHUP is reported even when not requested.
TEST_F(EventPortTest, Rules5And6FdAssociationIsOneShot) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xc0).ok());
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  Ready(f, kIn);
  ASSERT_EQ(engine().QueuedCount(p), 1u);
  auto rec = Get(kA, p, GetOne());
  EXPECT_EQ(rec->outcomes[0].events[0], (PortEvent{kFd, kIn, 5, 0xc0}));
  Ready(f, kIn);  // still readable, but the association is inactive
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kOut, 0xc1).ok());  // ready now? only IN
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  Ready(f, kIn | kHup);
  auto hup = Get(kA, p, GetOne());
  EXPECT_EQ(hup->outcomes[0].events[0].events, kHup);  // HUP always reported, IN not asked
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xc2).ok());  // ready: fires at once
  EXPECT_EQ(engine().QueuedCount(p), 1u);
}

// Rule 7: re-associating replaces a queued, unretrieved event and the user value.
TEST_F(EventPortTest, Rule7ReassociateReplacesQueuedEventAndUser) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  EXPECT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 1).ok());
  Ready(f, kIn);
  ASSERT_EQ(engine().QueuedCount(p), 1u);
  Ready(f, 0);
  EXPECT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 2).ok());
  EXPECT_EQ(engine().QueuedCount(p), 0u);  // the fired event was removed
  Ready(f, kIn);
  auto rec = Get(kA, p, GetOne());
  EXPECT_EQ(rec->outcomes[0].events[0].user, 2u);
  EXPECT_EQ(engine().AssociationCount(p), 1u);
}

// Rule 8 (port_fd.c): a descriptor that is not open, or an object above
// INT_MAX, is EBADFD (not EBADF).
TEST_F(EventPortTest, Rule8AssociateBadDescriptorIsEbadfd) {
  ObjectId p = NewPort();
  EXPECT_EQ(engine().AssociateFd(kA, p, 9, kIn, 0).error().value, EBADFD);
  EXPECT_EQ(engine().AssociateFd(kA, p, int64_t{INT_MAX} + 1, kIn, 0).error().value, EBADFD);
}

// Rule 11 (port_fd.c port_dissociate_fd): each error, in the kernel's order.
TEST_F(EventPortTest, Rule11DissociateErrors) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  EXPECT_EQ(engine().DissociateFd(kA, p, 77).error().value, ENOENT);  // never had one: before fd check
  EXPECT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  EXPECT_EQ(engine().DissociateFd(kA, p, 77).error().value, EBADFD);  // not open
  auto g = host_.NewFile();
  host_.Open(kA.pid, 6, g);
  EXPECT_EQ(engine().DissociateFd(kA, p, 6).error().value, ENOENT);  // no association
  host_.Fork(kA.pid, kB.pid);
  EXPECT_EQ(engine().DissociateFd(kB, p, 5).error().value, EACCES);  // not the owner
  EXPECT_TRUE(engine().DissociateFd(kA, p, 5).ok());                  // active: 0
  EXPECT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  Ready(f, kIn);
  Get(kA, p, GetOne());  // retrieved: inactive
  EXPECT_EQ(engine().DissociateFd(kA, p, 5).error().value, ENOENT);
  EXPECT_EQ(engine().AssociationCount(p), 0u);  // and freed
}

// Rule 10: closing an associated descriptor dissociates it and discards its
// queued event; nothing is delivered for it.
TEST_F(EventPortTest, Rule10CloseDiscardsQueuedEvent) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  EXPECT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  Ready(f, kIn);
  host_.Close(kA.pid, 5);
  auto rec = Get(kA, p, GetOne(Timeout::Value(0, 0)));
  EXPECT_TRUE(rec->outcomes[0].events.empty());
  EXPECT_EQ(engine().AssociationCount(p), 0u);
  EXPECT_EQ(engine().SlotsInUse(p), 0u);
}

// port.c:164-169, 306-316 (port_close_fd): closing an associated descriptor
// dissociates it. The engine sees the close when the number is named again:
// a new file at the reused number gets a fresh association, the old one's
// slot and watch are gone (one association per number, not one per cycle).
TEST_F(EventPortTest, Rule10CloseThenReassociateReusedNumberStartsClean) {
  ObjectId p = NewPort();
  for (int cycle = 0; cycle < 100; ++cycle) {
    auto f = host_.NewFile();
    host_.Open(kA.pid, 5, f);
    ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok()) << cycle;
    if (cycle & 1) Ready(f, kIn);
    host_.Close(kA.pid, 5);
  }
  EXPECT_EQ(engine().AssociationCount(p), 1u);
  EXPECT_EQ(engine().SlotsInUse(p), 1u);
  EXPECT_EQ(host_.live_watches(), 1u);
}

// port_close_fd at every point a program can count: closed descriptors'
// associations give their slots back before EAGAIN and before the port
// looks full (POLLOUT), and their events are not counted by
// port_getn(max 0) (port.c:1188-1199) nor towards nget.
TEST_F(EventPortTest, Rule10ClosedAssociationsFreeSlotsAndEvents) {
  PortLimits limits;
  limits.max_events_per_port = 4;
  ObjectId p = NewPort(limits);
  for (int fd = 10; fd < 14; ++fd) {
    auto f = host_.NewFile();
    host_.Open(kA.pid, fd, f);
    ASSERT_TRUE(engine().AssociateFd(kA, p, fd, kIn, 0).ok());
    if (fd & 1) Ready(f, kIn);
  }
  EXPECT_FALSE(host_.writable(p));  // four live associations: full
  for (int fd = 10; fd < 14; ++fd) host_.Close(kA.pid, fd);
  auto count = Get(kA, p, Getn(0, 0, Timeout::Value(0, 0)));
  ASSERT_EQ(count->outcomes.size(), 1u);
  EXPECT_EQ(count->outcomes[0].count_only, std::optional<uint32_t>(0u));
  for (int i = 0; i < 4; ++i) EXPECT_TRUE(engine().Send(kA, p, 0, 0).ok()) << i;
  EXPECT_EQ(engine().Send(kA, p, 0, 0).error().value, EAGAIN);
  EXPECT_EQ(engine().AssociationCount(p), 0u);
  EXPECT_EQ(host_.live_watches(), 0u);
}

TEST_F(EventPortTest, Rule10ClosedDescriptorsEventsDoNotCountTowardsNget) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  Ready(f, kIn);
  host_.Close(kA.pid, 5);
  ASSERT_TRUE(engine().Send(kA, p, 1, 0).ok());
  std::optional<WaitId> wait;
  auto rec = Get(kA, p, Getn(2, 2), &wait);  // one live event: waits for another
  EXPECT_TRUE(rec->outcomes.empty());
  ASSERT_TRUE(engine().Send(kA, p, 2, 0).ok());
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].events.size(), 2u);
}

// port_close_fd as reported by the library before a close (FdClosing): the
// associations the closing process made through that descriptor go, with
// their slot and event, in every port; another process's close of its copy
// of the descriptor (a fork child) leaves them (the association belongs to
// the owner's descriptor, rule 12).
TEST_F(EventPortTest, Rule10ReportedCloseDropsTheOwnersAssociations) {
  ObjectId p = NewPort();
  ObjectId q = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  host_.Fork(kA.pid, kB.pid);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  ASSERT_TRUE(engine().AssociateFd(kA, q, 5, kIn, 0).ok());
  Ready(f, kIn);
  engine().FdClosing(kB, 5);
  EXPECT_EQ(engine().AssociationCount(p), 1u);
  engine().FdClosing(kA, 5);  // the same file stays at 5 (dup2 back): still a close
  EXPECT_EQ(engine().AssociationCount(p), 0u);
  EXPECT_EQ(engine().AssociationCount(q), 0u);
  EXPECT_EQ(engine().SlotsInUse(p), 0u);
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  engine().FdClosing(kA, -1);  // not a descriptor: nothing
}

// Rule 12 (port.c:222-233): an FD event goes to a process that has the same
// open file at that number; another process's different file cannot take it.
TEST_F(EventPortTest, Rule12FdEventsSharedOnlyWithSameFile) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  host_.Fork(kA.pid, kB.pid);  // B shares the file
  Caller kC{300, 300};
  host_.Open(kC.pid, 5, host_.NewFile());  // C has another file at fd 5
  EXPECT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xab).ok());
  Ready(f, kIn);
  auto c = Get(kC, p, GetOne(Timeout::Value(0, 0)));
  EXPECT_TRUE(c->outcomes[0].events.empty());
  EXPECT_EQ(engine().QueuedCount(p), 1u);  // stays queued
  auto b = Get(kB, p, GetOne());
  ASSERT_EQ(b->outcomes[0].events.size(), 1u);
  EXPECT_EQ(b->outcomes[0].events[0].user, 0xabu);
}

// Rules 7 and 9: an association is keyed by number and open file, so two
// processes with different files at one number hold two associations of
// that number in one port, and each process's re-association replaces its
// own (no third one), also right after the other's event was reported
// (the engine keeps the association it last heard of for the number's
// re-association only while it is the number's only one: kept_assoc).
TEST_F(EventPortTest, Rule9EachProcessReassociatesItsOwnFileAtOneNumber) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  auto g = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  Caller kC{300, 300};
  host_.Open(kC.pid, 5, g);  // another file at the same number
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xa).ok());
  ASSERT_TRUE(engine().AssociateFd(kC, p, 5, kIn, 0xc).ok());
  EXPECT_EQ(engine().AssociationCount(p), 2u);
  Ready(f, kIn);  // A's association reports
  ASSERT_EQ(engine().QueuedCount(p), 1u);
  ASSERT_TRUE(engine().AssociateFd(kC, p, 5, kIn, 0xcc).ok());
  EXPECT_EQ(engine().AssociationCount(p), 2u) << "C's re-association made a third";
  EXPECT_EQ(engine().SlotsInUse(p), 2u);
  EXPECT_EQ(engine().QueuedCount(p), 1u);  // A's event stays
  Ready(g, kIn);  // C's association reports
  // A's event withdrawn and queued again (its file is still ready: rules 7, 6).
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xaa).ok());
  EXPECT_EQ(engine().AssociationCount(p), 2u) << "A's re-association made a third";
  EXPECT_EQ(engine().QueuedCount(p), 2u);
  auto c = Get(kC, p, GetOne(Timeout::Value(0, 0)));
  ASSERT_EQ(c->outcomes[0].events.size(), 1u);
  EXPECT_EQ(c->outcomes[0].events[0].user, 0xccu);
  // C's file leaves: A's association is alone on the number again, and
  // its re-association after its report still replaces it.
  host_.Close(kC.pid, 5);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xab).ok());
  EXPECT_EQ(engine().AssociationCount(p), 1u);
  Ready(f, kIn);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0xac).ok());
  EXPECT_EQ(engine().AssociationCount(p), 1u);
  EXPECT_EQ(engine().SlotsInUse(p), 1u);
}

// Rule 4: slots (associations for their life, queued user events until
// retrieved) are limited; none left is EAGAIN.
TEST_F(EventPortTest, Rule4SlotsExhaustedIsEagain) {
  ObjectId p = NewPort(PortLimits{2, 8192});
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  ASSERT_TRUE(engine().Send(kA, p, 1, 1).ok());
  EXPECT_EQ(engine().Send(kA, p, 1, 1).error().value, EAGAIN);
  host_.Open(kA.pid, 6, host_.NewFile());
  EXPECT_EQ(engine().AssociateFd(kA, p, 6, kIn, 0).error().value, EAGAIN);
  Get(kA, p, GetOne());  // retrieving the user event frees its slot
  EXPECT_TRUE(engine().Send(kA, p, 1, 1).ok());
}

// Fixed decision 6: a delivery the target could not take (interrupted by a
// signal) puts the events back at the head, in order.
TEST_F(EventPortTest, RefusedDeliveryRequeuesAtHead) {
  ObjectId p = NewPort();
  auto rec = Get(kA, p, Getn(8, 2));
  rec->refuse = true;
  EXPECT_TRUE(engine().Send(kB, p, 1, 1).ok());
  EXPECT_TRUE(engine().Send(kB, p, 2, 2).ok());
  EXPECT_TRUE(rec->outcomes.empty());
  EXPECT_EQ(engine().QueuedCount(p), 2u);
  EXPECT_TRUE(engine().Send(kB, p, 3, 3).ok());
  auto again = Get(kA, p, Getn(8, 1));
  ASSERT_EQ(again->outcomes[0].events.size(), 3u);
  EXPECT_EQ(again->outcomes[0].events[0].events, 1u);
  EXPECT_EQ(again->outcomes[0].events[2].events, 3u);
}

// EventPorts::Deliver hands one event with no error to
// GetCompletion::CompleteOne (no outcome list); any other answer goes
// through Complete. A refused hand-over puts the event back at the head,
// as a refused list does (fixed decision 6, above).
class OneRecorder : public GetCompletion {
 public:
  struct Log {
    std::vector<PortEvent> ones;  // CompleteOne's events
    std::vector<GetOutcome> lists;  // Complete's outcomes
    bool refuse = false;
  };
  explicit OneRecorder(std::shared_ptr<Log> log) : log_(std::move(log)) {}
  bool Complete(const GetOutcome& out) override {
    if (log_->refuse) return false;
    log_->lists.push_back(out);
    return true;
  }
  bool CompleteOne(const PortEvent& ev) override {
    if (log_->refuse) return false;
    log_->ones.push_back(ev);
    return true;
  }

 private:
  std::shared_ptr<Log> log_;
};

TEST_F(EventPortTest, OneEventIsHandedOverWithoutAList) {
  ObjectId p = NewPort();
  auto get = [&](GetSpec spec) {
    auto log = std::make_shared<OneRecorder::Log>();
    engine().Get(kA, p, spec, std::make_unique<OneRecorder>(log));
    return log;
  };
  // Answered at once: port_get, and port_getn finding one event for max 4.
  ASSERT_TRUE(engine().Send(kA, p, 5, 50).ok());
  auto one = get(GetOne());
  ASSERT_EQ(one->ones.size(), 1u);
  EXPECT_TRUE(one->lists.empty());
  EXPECT_EQ(one->ones[0].source, kUser);
  EXPECT_EQ(one->ones[0].events, 5u);
  EXPECT_EQ(one->ones[0].user, 50u);
  ASSERT_TRUE(engine().Send(kA, p, 6, 60).ok());
  auto getn = get(Getn(4, 1));
  ASSERT_EQ(getn->ones.size(), 1u);
  EXPECT_EQ(getn->ones[0].events, 6u);
  // A parked retrieval answered by one event later: the same hand-over.
  auto parked = get(GetOne());
  EXPECT_TRUE(parked->ones.empty());
  ASSERT_TRUE(engine().Send(kB, p, 7, 70).ok());
  ASSERT_EQ(parked->ones.size(), 1u);
  EXPECT_EQ(parked->ones[0].user, 70u);
  // Two events, a zero timeout with none, an error: the list (Complete).
  ASSERT_TRUE(engine().Send(kA, p, 8, 0).ok());
  ASSERT_TRUE(engine().Send(kA, p, 9, 0).ok());
  auto two = get(Getn(4, 1));
  EXPECT_TRUE(two->ones.empty());
  ASSERT_EQ(two->lists.size(), 1u);
  EXPECT_EQ(two->lists[0].events.size(), 2u);
  auto none = get(Getn(4, 1, Timeout::Value(0, 0)));
  EXPECT_TRUE(none->ones.empty());
  ASSERT_EQ(none->lists.size(), 1u);
  EXPECT_TRUE(none->lists[0].events.empty());
  auto invalid = get(Getn(1, 2));
  EXPECT_TRUE(invalid->ones.empty());
  ASSERT_EQ(invalid->lists.size(), 1u);
  EXPECT_EQ(invalid->lists[0].error, EINVAL);
}

TEST_F(EventPortTest, RefusedOneEventHandOverRequeuesAtHead) {
  ObjectId p = NewPort();
  auto log = std::make_shared<OneRecorder::Log>();
  engine().Get(kA, p, GetOne(), std::make_unique<OneRecorder>(log));
  log->refuse = true;
  ASSERT_TRUE(engine().Send(kB, p, 1, 1).ok());  // refused: back to the head
  EXPECT_TRUE(log->ones.empty());
  EXPECT_EQ(engine().QueuedCount(p), 1u);
  ASSERT_TRUE(engine().Send(kB, p, 2, 2).ok());
  auto again = Get(kA, p, Getn(8, 1));
  ASSERT_EQ(again->outcomes.size(), 1u);
  ASSERT_EQ(again->outcomes[0].events.size(), 2u);
  EXPECT_EQ(again->outcomes[0].events[0].events, 1u);
  EXPECT_EQ(again->outcomes[0].events[1].events, 2u);
}

// The look's one report handed straight to the call's retrieval
// (OfferHandOver; docs/design.md "Instructions per event", s37): the
// retrieval gets what Enqueue, Collect and Deliver would have given it
// (one event, CompleteOne), the association is retrieved (one-shot, rule
// 5: a later readiness queues nothing until it is associated again), and
// the port's queue and slots are as after the queued path.
TEST_F(EventPortTest, LooksOneReportIsHandedStraightToTheRetrieval) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0x55).ok());
  engine().OfferHandOver(p);
  Ready(f, kIn);
  EXPECT_EQ(engine().QueuedCount(p), 0u);  // kept aside, not queued
  auto log = std::make_shared<OneRecorder::Log>();
  EXPECT_FALSE(engine().Get(kA, p, Getn(4, 1), std::make_unique<OneRecorder>(log)).has_value());
  engine().EndHandOver();
  EXPECT_EQ(engine().StraightHandOvers(), 1u);
  ASSERT_EQ(log->ones.size(), 1u);
  EXPECT_TRUE(log->lists.empty());
  EXPECT_EQ(log->ones[0].source, kFd);
  EXPECT_EQ(log->ones[0].events, kIn);
  EXPECT_EQ(log->ones[0].object, 5u);
  EXPECT_EQ(log->ones[0].user, 0x55u);
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  EXPECT_EQ(engine().SlotsInUse(p), 1u);  // the association's slot
  Ready(f, kIn);  // retrieved: inactive (rule 5)
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  EXPECT_EQ(engine().DissociateFd(kA, p, 5).error().value, ENOENT);  // rule 11: not live
  // Refused (a signal in the supervisor's transport): back in the queue,
  // delivered by the next retrieval.
  Ready(f, 0);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0x66).ok());
  engine().OfferHandOver(p);
  Ready(f, kIn);
  auto refused = std::make_shared<OneRecorder::Log>();
  refused->refuse = true;
  engine().Get(kA, p, GetOne(), std::make_unique<OneRecorder>(refused));
  engine().EndHandOver();
  EXPECT_EQ(engine().QueuedCount(p), 1u);
  EXPECT_EQ(UsersOf(*Get(kA, p, Getn(4, 1))), (std::vector<uint64_t>{0x66}));
}

// Where the kept report is not all the retrieval takes, or another event
// or call comes first, it is queued in its place: the answers are those of
// the queued path, in the look's order (rule 6), the timer's after it.
TEST_F(EventPortTest, LooksReportNotHandedStraightWhereMoreIsInPlay) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  auto g = host_.NewFile();
  host_.Open(kA.pid, 6, g);
  auto associate = [&](int fd, uint64_t user) { ASSERT_TRUE(engine().AssociateFd(kA, p, fd, kIn, user).ok()); };
  // The call's look, with the hand-over offered: file `file` at `fd` reports.
  auto offered_report = [&](int fd, const FakeHost::FileRef& file, uint64_t user) {
    Ready(file, 0);  // not ready at its association: reported by the look
    associate(fd, user);
    engine().OfferHandOver(p);
    Ready(file, kIn);
  };
  // The call's retrieval by `who`, then the offer's end.
  auto retrieve = [&](Caller who, GetSpec spec) {
    auto r = Get(who, p, spec);
    engine().EndHandOver();
    return r;
  };
  // A second report of the look: both queued, in the look's order.
  associate(6, 2);
  offered_report(5, f, 1);
  Ready(g, kIn);
  EXPECT_EQ(UsersOf(*retrieve(kA, Getn(8, 1))), (std::vector<uint64_t>{1, 2}));
  // An event queued after the report (a port_send here; a timer fired by
  // the call's catch-up the same way): behind it.
  offered_report(5, f, 3);
  ASSERT_TRUE(engine().Send(kA, p, 9, 4).ok());
  EXPECT_EQ(UsersOf(*retrieve(kA, Getn(8, 1))), (std::vector<uint64_t>{3, 4}));
  // Counting (max 0) and waiting for two (nget 2) count it as queued.
  offered_report(5, f, 5);
  auto count = retrieve(kA, Getn(0, 0));
  ASSERT_EQ(count->outcomes.size(), 1u);
  EXPECT_EQ(count->outcomes[0].count_only, std::optional<uint32_t>(1));
  EXPECT_EQ(engine().QueuedCount(p), 1u);
  std::optional<WaitId> wait;
  auto two = Get(kA, p, Getn(8, 2), &wait);
  EXPECT_TRUE(wait.has_value());
  associate(6, 6);
  Ready(g, kIn);
  EXPECT_EQ(UsersOf(*two), (std::vector<uint64_t>{5, 6}));
  // No retrieval in the call: queued at the offer's end.
  offered_report(5, f, 7);
  engine().EndHandOver();
  EXPECT_EQ(engine().QueuedCount(p), 1u);
  EXPECT_EQ(UsersOf(*Get(kA, p, GetOne())), (std::vector<uint64_t>{7}));
  // The file closed after the report (rule 10): the event is gone with its
  // association, as a queued one's.
  offered_report(5, f, 9);
  host_.Close(kA.pid, 5);
  EXPECT_TRUE(retrieve(kA, GetOne(Timeout::Value(0, 0)))->outcomes.at(0).events.empty());
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  EXPECT_EQ(engine().AssociationCount(p), 1u);  // fd 6's
  host_.Open(kA.pid, 5, f);
  // Another process (rule 12: not the same file at its fd 5): skipped, as
  // in the queue; the owner then gets it. (Last: the port has two users now.)
  Caller kC{300, 300};
  host_.Open(kC.pid, 5, host_.NewFile());
  offered_report(5, f, 8);
  EXPECT_TRUE(retrieve(kC, GetOne(Timeout::Value(0, 0)))->outcomes.at(0).events.empty());
  EXPECT_EQ(UsersOf(*Get(kA, p, GetOne())), (std::vector<uint64_t>{8}));
  EXPECT_EQ(engine().StraightHandOvers(), 0u);
}

// What the engine does to a port between the look that kept a report
// (OfferHandOver) and the call's retrieval, other than queue or retrieve:
// the association dissociated, the port moved (ExportPort: the kept event
// travels in its queue, as the association's fired event), the port's last
// close (another thread closed the number while this call looked). Each
// ends the offer with the state the queued path leaves; after the last
// close the retrieval is EBADFD and the engine goes on. (Without
// DissociateFd's look at the kept event the dissociation answers ENOENT;
// without ExportPort's EndHandOver the moved queue is empty. ErasePort's
// reset of the offer is not needed by this sequence: the last close frees
// the association first, so the offer's end reads no freed port. A
// program reaches this last close: InprocHandOver.APortClosedAtItsRetrievalsLookTakesItsOfferWithIt.)
TEST_F(EventPortTest, KeptReportFollowsADissociationAMoveAndTheLastClose) {
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  auto kept_report = [&](ObjectId p, uint64_t user) {
    Ready(f, 0);
    ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, user).ok());
    engine().OfferHandOver(p);
    Ready(f, kIn);
    ASSERT_EQ(engine().QueuedCount(p), 0u);  // kept aside
  };
  // Dissociated (rule 11: the fired association is still there to remove;
  // its event goes with it, port.c port_dissociate_fd).
  ObjectId p = NewPort();
  kept_report(p, 1);
  ASSERT_TRUE(engine().DissociateFd(kA, p, 5).ok());
  EXPECT_TRUE(Get(kA, p, GetOne(Timeout::Value(0, 0)))->outcomes.at(0).events.empty());
  engine().EndHandOver();
  EXPECT_EQ(engine().QueuedCount(p), 0u);
  EXPECT_EQ(engine().AssociationCount(p), 0u);
  // Moved: the exported queue holds the fired event, its association not
  // active (PortState::Assoc::active false: "fired").
  ObjectId moved = NewPort();
  kept_report(moved, 2);
  Result<PortState> state = engine().ExportPort(moved, kA.pid, true);
  ASSERT_TRUE(state.ok());
  ASSERT_EQ(state->queue.size(), 1u);
  EXPECT_EQ(state->queue[0].kind, PortState::EventKind::kFd);
  ASSERT_EQ(state->assocs.size(), 1u);
  EXPECT_FALSE(state->assocs[0].active);
  EXPECT_EQ(state->assocs[0].user, 2u);
  engine().ForgetExported(moved, kA.pid, *state);
  engine().EndHandOver();  // nothing left to queue
  // The last close: the retrieval finds no port (EBADFD, port.c:588-594).
  ObjectId closed = NewPort();
  kept_report(closed, 3);
  engine().LastClose(closed);
  auto rec = Get(kA, closed, GetOne());
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, EBADFD);
  engine().EndHandOver();
  ObjectId after = NewPort();  // the engine goes on
  ASSERT_TRUE(engine().Send(kA, after, 1, 4).ok());
  EXPECT_EQ(UsersOf(*Get(kA, after, GetOne())), (std::vector<uint64_t>{4}));
  EXPECT_EQ(engine().StraightHandOvers(), 0u);
}

// EventPorts::Get with a lent completion (the port handler's, on its
// stack): answered at once it is never copied; a retrieval that parks
// keeps its KeepForWait copy in the waiter, which a later event answers;
// one that cannot be copied (the default) is answered EINTR where it would
// have waited, and the port is left as it was.
TEST_F(EventPortTest, LentCompletionIsCopiedOnlyForAWait) {
  struct Lent : GetCompletion {
    std::vector<GetOutcome> outcomes;
    int copies = 0;
    bool copyable = true;
    std::shared_ptr<Record> waiter_record = std::make_shared<Record>();
    bool Complete(const GetOutcome& out) override {
      outcomes.push_back(out);
      return true;
    }
    std::unique_ptr<GetCompletion> KeepForWait() override {
      if (!copyable) return nullptr;
      ++copies;
      return std::make_unique<Recorder>(waiter_record);
    }
  };
  ObjectId p = NewPort();
  ASSERT_TRUE(engine().Send(kA, p, 1, 10).ok());
  Lent at_once;
  EXPECT_FALSE(engine().Get(kA, p, GetOne(), at_once).has_value());
  ASSERT_EQ(at_once.outcomes.size(), 1u);
  EXPECT_EQ(at_once.outcomes[0].events.at(0).user, 10u);
  EXPECT_EQ(at_once.copies, 0);
  Lent parks;
  EXPECT_TRUE(engine().Get(kA, p, GetOne(), parks).has_value());
  EXPECT_EQ(parks.copies, 1);
  ASSERT_TRUE(engine().Send(kA, p, 2, 20).ok());
  EXPECT_TRUE(parks.outcomes.empty());  // the waiter's copy answered
  ASSERT_EQ(parks.waiter_record->outcomes.size(), 1u);
  EXPECT_EQ(parks.waiter_record->outcomes[0].events.at(0).user, 20u);
  Lent uncopyable;
  uncopyable.copyable = false;
  EXPECT_FALSE(engine().Get(kA, p, GetOne(), uncopyable).has_value());
  ASSERT_EQ(uncopyable.outcomes.size(), 1u);
  EXPECT_EQ(uncopyable.outcomes[0].error, EINTR);
  EXPECT_EQ(engine().WaiterCount(p), 0u);
}

// Rule 33: the last close wakes waiters with EBADFD.
// Rules 27 and 33: the last close while threads wait. A waiter holds no
// descriptor of its own here, so the close was of the descriptor it named by
// another thread: illumos's closeandsetf makes that EBADF (fio.c; rule 27),
// not the port_close path's EBADFD (docs/design.md "Close and exec").
TEST_F(EventPortTest, Rule27LastCloseFailsWaitersWithEbadf) {
  ObjectId p = NewPort();
  auto rec = Get(kA, p, GetOne());
  auto timed = Get(kA2, p, Getn(4, 2, Timeout::Value(5, 0)));
  engine().LastClose(p);
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, EBADF);
  ASSERT_EQ(timed->outcomes.size(), 1u);
  EXPECT_EQ(timed->outcomes[0].error, EBADF);
  EXPECT_FALSE(engine().Exists(p));
  Expire(6 * kNanosPerSecond);  // its deadline is gone with it: no second answer
  EXPECT_EQ(timed->outcomes.size(), 1u);
}

// The engine keeps the port it found last (EventPorts::Find): after the
// last close, and after a port was moved away (ForgetExported), the id
// names nothing, however recently it was found (port.c:588-594: EBADFD).
TEST_F(EventPortTest, PortFoundLastIsGoneAfterItsLastCloseOrItsMove) {
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  ObjectId closed = NewPort();
  ObjectId moved = NewPort();
  ObjectId other = NewPort();
  ASSERT_TRUE(engine().Send(kA, closed, 1, 0).ok());  // found: kept
  engine().LastClose(closed);
  EXPECT_EQ(engine().Send(kA, closed, 1, 0).error().value, EBADFD);
  EXPECT_EQ(engine().AssociateFd(kA, closed, 5, kIn, 0).error().value, EBADFD);
  auto rec = Get(kA, closed, GetOne());
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, EBADFD);
  EXPECT_EQ(engine().QueuedCount(closed), 0u);
  Result<PortState> state = engine().ExportPort(moved, kA.pid, true);  // found: kept
  ASSERT_TRUE(state.ok());
  EXPECT_TRUE(engine().ForgetExported(moved, kA.pid, *state).empty());
  EXPECT_EQ(engine().Send(kA, moved, 1, 0).error().value, EBADFD);
  EXPECT_TRUE(engine().Send(kA, other, 1, 0).ok());  // the others are intact
  EXPECT_EQ(engine().QueuedCount(other), 1u);
}

// Rules 14 and 32: a process that stops holding the port loses its
// associations; user events it sent survive.
TEST_F(EventPortTest, Rules14And32CloseByKeepsUserEventsDropsAssociations) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kB.pid, 5, f);
  EXPECT_TRUE(engine().AssociateFd(kB, p, 5, kIn, 0).ok());
  EXPECT_TRUE(engine().Send(kB, p, 1, 1).ok());
  engine().CloseBy(p, kB.pid);
  EXPECT_EQ(engine().AssociationCount(p), 0u);
  EXPECT_EQ(engine().QueuedCount(p), 1u);
  auto rec = Get(kA, p, GetOne());
  EXPECT_EQ(rec->outcomes[0].events[0].source, kUser);
}

// Rule 3: the port descriptor polls readable iff events are queued.
TEST_F(EventPortTest, Rule3ReadableIffEventsQueued) {
  ObjectId p = NewPort();
  EXPECT_FALSE(host_.readable(p));
  EXPECT_TRUE(engine().Send(kA, p, 1, 1).ok());
  EXPECT_TRUE(host_.readable(p));
  Get(kA, p, GetOne());
  EXPECT_FALSE(host_.readable(p));
}

// Rule 3 over a call (EventPorts::ReportHold): the port descriptor's
// POLLIN (port_vnops.c port_poll: events queued) is reported at the hold's
// end only when it differs from what the host was last told. An event the
// call's look queues and its port_getn takes (fdwait) reports nothing: the
// in-process engine applies the reports only after the call, so no thread
// could see the state in between (docs/design.md "Instructions per event").
TEST(EventPortReportHold, APortThatEndsAsItBeganReportsNothing) {
  struct CountingHost : FakeHost {
    int reports = 0;
    void ObjectReadinessChanged(ObjectId obj, bool readable) override {
      ++reports;
      FakeHost::ObjectReadinessChanged(obj, readable);
    }
  } host;
  EventPorts ports(host, PortLimits{});
  constexpr Caller kA{100, 100};
  const ObjectId p = *ports.Create(kA);
  auto take = [&] {
    auto rec = std::make_shared<Record>();
    GetSpec one;
    one.one = true;
    one.timeout = Timeout::Value(0, 0);
    (void)ports.Get(kA, p, one, std::make_unique<Recorder>(rec));
    return rec->outcomes.size() == 1 && rec->outcomes[0].events.size() == 1;
  };
  {
    // Queued then taken: empty before and after.
    EventPorts::ReportHold hold(ports);
    ASSERT_TRUE(ports.Send(kA, p, 1, 1).ok());
    EXPECT_TRUE(take());
  }
  EXPECT_EQ(host.reports, 0);
  EXPECT_FALSE(host.readable(p));
  {
    // Left queued: one report, at the end.
    EventPorts::ReportHold hold(ports);
    ASSERT_TRUE(ports.Send(kA, p, 2, 2).ok());
    EXPECT_FALSE(host.readable(p));
    hold.Release();
    EXPECT_EQ(host.reports, 1);
    EXPECT_TRUE(host.readable(p));
  }
  EXPECT_EQ(host.reports, 1);  // released once
  {
    // Taken and another queued: readable before and after.
    EventPorts::ReportHold hold(ports);
    EXPECT_TRUE(take());
    ASSERT_TRUE(ports.Send(kA, p, 3, 3).ok());
  }
  EXPECT_EQ(host.reports, 1);
  EXPECT_TRUE(host.readable(p));
  {
    // Let out inside the hold (ReportHeldNow), which goes on.
    EventPorts::ReportHold hold(ports);
    EXPECT_TRUE(take());
    ports.ReportHeldNow();
    EXPECT_EQ(host.reports, 2);
    EXPECT_FALSE(host.readable(p));
    ASSERT_TRUE(ports.Send(kA, p, 3, 3).ok());
    EXPECT_EQ(host.reports, 2);
  }
  EXPECT_EQ(host.reports, 3);
  EXPECT_TRUE(host.readable(p));
  // Without a hold, each change is reported at once.
  EXPECT_TRUE(take());
  EXPECT_EQ(host.reports, 4);
  EXPECT_FALSE(host.readable(p));
  // A port erased while its report is held is reported at its erasure (the
  // host forgets the object after that), and not again at the hold's end.
  const ObjectId q = *ports.Create(kA);
  {
    EventPorts::ReportHold hold(ports);
    ASSERT_TRUE(ports.Send(kA, q, 4, 4).ok());
    ports.LastClose(q);
    EXPECT_EQ(host.reports, 5);
  }
  EXPECT_EQ(host.reports, 5);
  // Several ports in one hold, the first held erased before the end: each
  // other is reported once, at the end.
  const ObjectId r = *ports.Create(kA), s = *ports.Create(kA), t = *ports.Create(kA);
  {
    EventPorts::ReportHold hold(ports);
    for (ObjectId each : {r, s, t}) ASSERT_TRUE(ports.Send(kA, each, 5, 5).ok());
    ports.LastClose(r);
    EXPECT_EQ(host.reports, 6);
  }
  EXPECT_EQ(host.reports, 8);
  EXPECT_TRUE(host.readable(s));
  EXPECT_TRUE(host.readable(t));
}

// Rule 3 (port_vnops.c port_poll: POLLOUT iff port_curr < port_max_events):
// the descriptor stops polling writable when the last slot is taken and
// polls writable again when any slot comes back (retrieval, dissociation,
// a process's close), not while a refused delivery holds the events.
TEST_F(EventPortTest, Rule3WritableWhileSlotsRemain) {
  ObjectId p = NewPort(PortLimits{2, 8192});
  EXPECT_TRUE(host_.writable(p));
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 0).ok());
  EXPECT_TRUE(host_.writable(p));
  ASSERT_TRUE(engine().Send(kA, p, 1, 1).ok());
  EXPECT_FALSE(host_.writable(p));  // full: associations and queued user events count
  auto got = Get(kA, p, GetOne());
  ASSERT_EQ(got->outcomes.size(), 1u);
  EXPECT_TRUE(host_.writable(p));  // retrieving the user event returned its slot
  ASSERT_TRUE(engine().Send(kA, p, 2, 2).ok());
  EXPECT_FALSE(host_.writable(p));
  ASSERT_TRUE(engine().DissociateFd(kA, p, 5).ok());
  EXPECT_TRUE(host_.writable(p));
  // A delivery the target refused puts the event (and its slot) back.
  ASSERT_TRUE(engine().Send(kB, p, 3, 3).ok());
  EXPECT_FALSE(host_.writable(p));
  auto rec = std::make_shared<Record>();
  rec->refuse = true;
  engine().Get(kA, p, GetOne(), std::make_unique<Recorder>(rec));
  EXPECT_FALSE(host_.writable(p));
  auto again = Get(kA, p, Getn(8, 1));  // events 2 and 3
  ASSERT_EQ(again->outcomes.size(), 1u);
  ASSERT_EQ(again->outcomes[0].events.size(), 2u);
  EXPECT_TRUE(host_.writable(p));
  host_.Open(kB.pid, 7, host_.NewFile());
  ASSERT_TRUE(engine().AssociateFd(kB, p, 7, kIn, 0).ok());
  ASSERT_TRUE(engine().Send(kA, p, 4, 4).ok());
  EXPECT_FALSE(host_.writable(p));
  engine().CloseBy(p, kB.pid);  // B's association goes with B's close
  EXPECT_TRUE(host_.writable(p));
}

// Rule 9: an association is keyed by (fd, open file): two dups of one file
// are two associations with two events; one fd may be on two ports.
TEST_F(EventPortTest, Rule9DupsAreSeparateAssociations) {
  ObjectId p = NewPort();
  ObjectId q = *engine().Create(kA);
  auto f = host_.NewFile();
  host_.Open(kA.pid, 5, f);
  host_.Open(kA.pid, 6, f);  // dup(5)
  ASSERT_TRUE(engine().AssociateFd(kA, p, 5, kIn, 5).ok());
  ASSERT_TRUE(engine().AssociateFd(kA, p, 6, kIn, 6).ok());
  ASSERT_TRUE(engine().AssociateFd(kA, q, 5, kIn, 55).ok());
  EXPECT_EQ(engine().AssociationCount(p), 2u);
  EXPECT_EQ(engine().SlotsInUse(p), 2u);
  Ready(f, kIn);
  auto both = Get(kA, p, Getn(8, 1));
  ASSERT_EQ(both->outcomes[0].events.size(), 2u);
  EXPECT_EQ(both->outcomes[0].events[0].object + both->outcomes[0].events[1].object, 11u);
  auto other = Get(kA, q, GetOne());
  ASSERT_EQ(other->outcomes[0].events.size(), 1u);
  EXPECT_EQ(other->outcomes[0].events[0].user, 55u);
}

// Rule 29 (P:1246-1266, 1546-1574): events the caller may not retrieve
// (here another process's FD event on a file it does not have) are skipped
// and stay queued; with nothing deliverable the caller waits, with the same
// deadline, for new events.
TEST_F(EventPortTest, Rule29SkipsForeignEventsAndWaitsForNewOnes) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kB.pid, 5, f);
  ASSERT_TRUE(engine().AssociateFd(kB, p, 5, kIn, 0).ok());
  Ready(f, kIn);
  ASSERT_EQ(engine().QueuedCount(p), 1u);
  auto rec = Get(kA, p, GetOne(Timeout::Value(1, 0)));
  EXPECT_TRUE(rec->outcomes.empty());  // waits: nothing it may take
  EXPECT_EQ(engine().QueuedCount(p), 1u);
  ASSERT_TRUE(engine().Send(kB, p, 7, 7).ok());
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].events[0].source, kUser);  // the new, shareable event
  EXPECT_EQ(engine().QueuedCount(p), 1u);                // B's FD event still queued
  auto late = Get(kA, p, GetOne(Timeout::Value(1, 0)));
  Expire(1 * kNanosPerSecond);
  ASSERT_EQ(late->outcomes.size(), 1u);
  EXPECT_EQ(late->outcomes[0].error, ETIME);
  auto owner = Get(kB, p, GetOne(Timeout::Value(0, 0)));
  EXPECT_EQ(owner->outcomes[0].events[0].source, kFd);
}

// Rule 31 (P:1367-1384, 1499-1505): illumos appends a retrieval's leftovers
// to the tail of the live queue, so events that arrived during the
// retrieval's copy-out can overtake them. evshim retrieves and copies out in
// one step of the supervisor, so nothing arrives meanwhile and leftovers keep
// their place ahead of later events: the same order illumos gives when no
// event races the copy-out.
TEST_F(EventPortTest, Rule31LeftoversStayAheadOfLaterEvents) {
  ObjectId p = NewPort();
  ASSERT_TRUE(engine().Send(kA, p, 1, 1).ok());
  ASSERT_TRUE(engine().Send(kA, p, 2, 2).ok());
  auto first = Get(kA, p, Getn(1, 1));
  EXPECT_EQ(first->outcomes[0].events[0].events, 1u);
  ASSERT_TRUE(engine().Send(kA, p, 3, 3).ok());
  auto rest = Get(kA, p, Getn(8, 1));
  ASSERT_EQ(rest->outcomes[0].events.size(), 2u);
  EXPECT_EQ(rest->outcomes[0].events[0].events, 2u);
  EXPECT_EQ(rest->outcomes[0].events[1].events, 3u);
}

// A thread that goes away (EINTR, exit) is forgotten; the event goes to the
// next waiter, not to nobody.
TEST_F(EventPortTest, CancelledWaiterIsSkipped) {
  ObjectId p = NewPort();
  std::optional<WaitId> w1;
  auto r1 = Get(kA, p, GetOne(), &w1);
  auto r2 = Get(kA2, p, GetOne());
  ASSERT_TRUE(w1.has_value());
  engine().CancelWait(*w1);
  EXPECT_EQ(engine().WaiterCount(p), 1u);
  EXPECT_TRUE(engine().Send(kB, p, 1, 1).ok());
  EXPECT_TRUE(r1->outcomes.empty());
  EXPECT_EQ(r2->outcomes.size(), 1u);
}

// Rule 35: process exit cancels its waiters and closes what it held.
TEST_F(EventPortTest, Rule35ProcessExitCancelsWaitersAndAssociations) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kB.pid, 5, f);
  EXPECT_TRUE(engine().AssociateFd(kB, p, 5, kIn, 0).ok());
  auto rec = Get(kB, p, GetOne());
  engine().ProcessExited(kB.pid);
  EXPECT_EQ(engine().WaiterCount(p), 0u);
  EXPECT_EQ(engine().AssociationCount(p), 0u);
  EXPECT_EQ(host_.live_watches(), 0u);
  EXPECT_TRUE(rec->outcomes.empty());
}

}  // namespace
}  // namespace evshim::emul
