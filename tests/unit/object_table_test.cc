// The emulated objects' descriptors (shim/runtime/object_table.h), shared by
// the supervisor and the in-process engine: the readiness byte, its drain,
// the POLLOUT filler of a full port, the last close, who holds an object.
// Real socketpairs and a real epoll in the test process (the program's ends
// are this process's descriptors, as in the in-process engine). Also the
// HostEventRouter (shim/runtime/host_events.h) that both loops use.
#include "shim/runtime/object_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>

#include <atomic>
#include <cstdlib>

#include "shim/runtime/host_events.h"
#include "tests/support/recording_engine.h"

namespace evshim::shim {
namespace {

constexpr uint64_t kCloseTag = loop_tag::kObject;
constexpr emul::Pid kPid = 42;

class LocalEnds final : public ProgramEnds {
 public:
  bool FdIs(emul::Pid, int fd, uint64_t inode) override {
    struct stat st {};
    return fd >= 0 && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode;
  }
  int Borrow(emul::Pid, int fd) override { return fd; }
  void Release(int) override {}
  int FindFd(emul::Pid pid, uint64_t inode) override {
    DIR* d = opendir("/proc/self/fd");
    if (d == nullptr) return kUnknown;
    int found = kNone;
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      int fd = std::atoi(e->d_name);
      if (fd != dirfd(d) && FdIs(pid, fd, inode)) {
        found = fd;
        break;
      }
    }
    closedir(d);
    return found;
  }
};

short Revents(int fd, short events) {
  pollfd p{fd, events, 0};
  return poll(&p, 1, 0) == 1 ? p.revents : 0;
}

class ObjectTableTest : public ::testing::Test {
 protected:
  ~ObjectTableTest() override {
    table_.reset();
    for (int fd : program_) close(fd);
    close(epoll_);
  }
  void Make(bool drain_at_once) {
    table_ = std::make_unique<ObjectTable>(epoll_, kCloseTag, ends_, drain_at_once);
  }
  // A new object `obj` of `kind`; returns the program's end.
  int Install(emul::ObjectId obj, abi::ObjectKind kind) {
    emul::Result<ObjectTable::Pair> pair = table_->MakePair(kind);
    EXPECT_TRUE(pair.ok());
    EXPECT_FALSE(table_->Add(obj, kind, pair->own, pair->inode).has_value());
    table_->NoteHolder(obj, kPid, pair->program);
    program_.push_back(pair->program);
    return pair->program;
  }
  bool Readable(int fd) { return (Revents(fd, POLLIN) & POLLIN) != 0; }

  int epoll_ = epoll_create1(EPOLL_CLOEXEC);
  LocalEnds ends_;
  std::unique_ptr<ObjectTable> table_;
  std::vector<int> program_;
};

// The byte is written only when readiness is applied (before an answer),
// and drained at the next call naming the object once no event is queued.
TEST_F(ObjectTableTest, ReadinessByteOnThenDrainedAtTheNextCall) {
  Make(/*drain_at_once=*/false);
  int fd = Install(1, abi::ObjectKind::kKqueue);
  table_->OnReadiness(1, true);
  EXPECT_FALSE(Readable(fd));  // not applied yet
  EXPECT_TRUE(table_->ApplyReadiness());
  EXPECT_TRUE(Readable(fd));
  EXPECT_FALSE(table_->ApplyReadiness());  // nothing new
  table_->OnReadiness(1, false);
  table_->ApplyReadiness();
  EXPECT_TRUE(Readable(fd));  // only a holder can read the byte back
  EXPECT_TRUE(table_->StateOf(1)->needs_drain);
  table_->DrainIfNeeded(1, kPid, fd);
  EXPECT_FALSE(Readable(fd));
  EXPECT_FALSE(table_->StateOf(1)->signalled);
}

// The drain reads through the number the answered call named, after the
// answer: by then another thread may have closed it and made a socket
// there (a libuv loop closing its port while a worker's getaddrinfo opened
// its netlink socket: the drain ate the netlink answer, and getaddrinfo
// waited for ever). A number that no longer names the object's end is not
// read; the byte stays owed until a call names the object again.
TEST_F(ObjectTableTest, DrainLeavesAnotherSocketAtTheNumberAlone) {
  Make(/*drain_at_once=*/false);
  int fd = Install(1, abi::ObjectKind::kPort);
  table_->OnReadiness(1, true);
  table_->ApplyReadiness();
  table_->OnReadiness(1, false);
  table_->ApplyReadiness();
  ASSERT_TRUE(table_->StateOf(1)->needs_drain);
  // The program's end is closed and another socket takes its number.
  int other[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, other), 0);
  ASSERT_EQ(dup3(other[0], fd, O_CLOEXEC), fd);
  close(other[0]);
  ASSERT_EQ(send(other[1], "answer", 6, 0), 6);
  table_->DrainIfNeeded(1, kPid, fd);
  char buf[16];
  EXPECT_EQ(recv(fd, buf, sizeof buf, MSG_DONTWAIT), 6);  // still there
  EXPECT_TRUE(table_->StateOf(1)->needs_drain);
  close(other[1]);
}

// An event queued and taken at once (readable, then not, before readiness
// is applied) costs no byte (docs/design.md "Emulated objects").
TEST_F(ObjectTableTest, NetChangeOnlyCostsNothingWhenTakenAtOnce) {
  Make(false);
  int fd = Install(1, abi::ObjectKind::kPort);
  table_->OnReadiness(1, true);
  table_->OnReadiness(1, false);
  EXPECT_FALSE(table_->ApplyReadiness());
  EXPECT_FALSE(Readable(fd));
  EXPECT_FALSE(table_->StateOf(1)->signalled);
}

// In-process, the program's descriptor is ours: drained when applied.
TEST_F(ObjectTableTest, DrainAtOnceInProcess) {
  Make(/*drain_at_once=*/true);
  int fd = Install(1, abi::ObjectKind::kPort);
  table_->OnReadiness(1, true);
  table_->ApplyReadiness();
  ASSERT_TRUE(Readable(fd));
  table_->OnReadiness(1, false);
  table_->ApplyReadiness();
  EXPECT_FALSE(Readable(fd));
  EXPECT_FALSE(table_->StateOf(1)->needs_drain);
}

// In-process, with a pollers count (docs/design.md "The readiness byte on
// demand"; port.c:1528-1534 wakes pollers only when one registered): a
// readable object's byte is owed while nobody polls, forgotten when the
// object empties, sent when a poller comes or the object is marked polled.
TEST_F(ObjectTableTest, ByteOwedWhileNobodyPollsAndSentWhenAPollerComes) {
  std::atomic<int> pollers{0};
  table_ = std::make_unique<ObjectTable>(epoll_, kCloseTag, ends_, /*drain_at_once=*/true, &pollers);
  int fd = Install(1, abi::ObjectKind::kPort);
  table_->OnReadiness(1, true);
  EXPECT_FALSE(table_->ApplyReadiness());
  EXPECT_FALSE(Readable(fd));
  EXPECT_TRUE(table_->StateOf(1)->owed);
  EXPECT_TRUE(table_->AnyOwed());
  // Emptied before anyone looked: the debt goes, nothing to drain.
  table_->OnReadiness(1, false);
  table_->ApplyReadiness();
  EXPECT_FALSE(table_->StateOf(1)->owed);
  EXPECT_FALSE(table_->AnyOwed());
  // Owed again; a poller comes: SendOwed pays.
  table_->OnReadiness(1, true);
  table_->ApplyReadiness();
  pollers = 1;
  EXPECT_TRUE(table_->SendOwed());
  EXPECT_TRUE(Readable(fd));
  EXPECT_FALSE(table_->AnyOwed());
  // While a poller is counted, a new readiness is sent at once.
  int other = Install(2, abi::ObjectKind::kKqueue);
  table_->OnReadiness(2, true);
  EXPECT_TRUE(table_->ApplyReadiness());
  EXPECT_TRUE(Readable(other));
  // And taken back when the object empties (drained at once in-process).
  pollers = 0;
  table_->OnReadiness(1, false);
  table_->ApplyReadiness();
  EXPECT_FALSE(Readable(fd));
}

// A polled object (a program epoll holds it, the engine watches it) keeps
// its byte exact with no poller counted; MarkPolled pays an owed byte at
// once, and Remove forgets a debt.
TEST_F(ObjectTableTest, PolledObjectKeepsItsByteAndRemoveForgetsADebt) {
  std::atomic<int> pollers{0};
  table_ = std::make_unique<ObjectTable>(epoll_, kCloseTag, ends_, true, &pollers);
  int fd = Install(1, abi::ObjectKind::kPort);
  Install(2, abi::ObjectKind::kPort);
  table_->OnReadiness(1, true);
  table_->OnReadiness(2, true);
  table_->ApplyReadiness();
  EXPECT_FALSE(Readable(fd));
  table_->MarkPolled(1);
  EXPECT_TRUE(Readable(fd));
  EXPECT_TRUE(table_->StateOf(1)->polled);
  EXPECT_FALSE(table_->StateOf(1)->owed);
  EXPECT_TRUE(table_->StateOf(2)->owed);
  table_->OnReadiness(1, false);
  table_->ApplyReadiness();
  EXPECT_FALSE(Readable(fd));
  table_->OnReadiness(1, true);
  table_->ApplyReadiness();
  EXPECT_TRUE(Readable(fd));  // polled: no poller needed
  table_->Remove(2);
  EXPECT_FALSE(table_->AnyOwed());
  EXPECT_FALSE(table_->SendOwed());
}

// Rule 3 (port_vnops.c port_poll): POLLOUT only while the port has a free
// slot: filler when it fills, read back when a slot frees.
TEST_F(ObjectTableTest, FillerAtFullPortClearsPollout) {
  Make(false);
  int fd = Install(1, abi::ObjectKind::kPort);
  EXPECT_TRUE(Revents(fd, POLLOUT) & POLLOUT);
  table_->OnWritable(1, false);
  EXPECT_TRUE(table_->StateOf(1)->filled);
  EXPECT_FALSE(Revents(fd, POLLOUT) & POLLOUT);
  EXPECT_FALSE(Readable(fd));  // the filler is in our end, not the program's
  table_->OnWritable(1, true);
  EXPECT_FALSE(table_->StateOf(1)->filled);
  EXPECT_TRUE(Revents(fd, POLLOUT) & POLLOUT);
}

// Rule 33: the last close is our end's hang-up in the loop epoll; Remove
// forgets the object and says its kind once.
TEST_F(ObjectTableTest, LastCloseIsSeenInTheLoopAndRemovesOnce) {
  Make(false);
  int fd = Install(7, abi::ObjectKind::kKqueue);
  struct stat st {};
  ASSERT_EQ(fstat(fd, &st), 0);
  epoll_event ev{};
  EXPECT_EQ(epoll_wait(epoll_, &ev, 1, 0), 0);
  close(fd);
  program_.clear();
  ASSERT_EQ(epoll_wait(epoll_, &ev, 1, 0), 1);
  EXPECT_EQ(ev.data.u64, kCloseTag | 7);
  std::optional<Fault> fault;
  EXPECT_EQ(table_->Remove(7, &fault), std::optional<abi::ObjectKind>(abi::ObjectKind::kKqueue));
  EXPECT_FALSE(fault.has_value());
  EXPECT_FALSE(table_->Remove(7).has_value());
  EXPECT_FALSE(table_->FindByInode(st.st_ino).has_value());
  EXPECT_EQ(epoll_wait(epoll_, &ev, 1, 0), 0);  // our end left the loop
}

// Lookups keep the last objects found by the low bits of their ids
// (ObjectTable::Find): ids that share an entry, a port id and a kqueue id
// (kKqueueIdBase + n), are each found as themselves, and a removed id is
// gone at once, also when its id comes back for a new object.
TEST_F(ObjectTableTest, LookupsFollowRemovalAndIdsSharingAnEntry) {
  Make(/*drain_at_once=*/true);
  constexpr emul::ObjectId kKqueueId = emul::kKqueueIdBase + 1;
  Install(1, abi::ObjectKind::kPort);
  Install(9, abi::ObjectKind::kKqueue);
  Install(kKqueueId, abi::ObjectKind::kKqueue);
  for (int round = 0; round < 2; ++round) {
    EXPECT_EQ(table_->KindOf(1), std::optional<abi::ObjectKind>(abi::ObjectKind::kPort));
    EXPECT_EQ(table_->KindOf(9), std::optional<abi::ObjectKind>(abi::ObjectKind::kKqueue));
    EXPECT_EQ(table_->KindOf(kKqueueId), std::optional<abi::ObjectKind>(abi::ObjectKind::kKqueue));
  }
  EXPECT_FALSE(table_->KindOf(17).has_value());
  ASSERT_TRUE(table_->StateOf(9).has_value());  // 9 is the one kept now
  EXPECT_TRUE(table_->Remove(9).has_value());
  EXPECT_FALSE(table_->KindOf(9).has_value());
  EXPECT_FALSE(table_->StateOf(9).has_value());
  EXPECT_EQ(table_->KindOf(1), std::optional<abi::ObjectKind>(abi::ObjectKind::kPort));
  EXPECT_TRUE(table_->Remove(1).has_value());
  EXPECT_FALSE(table_->KindOf(1).has_value());
  Install(1, abi::ObjectKind::kKqueue);
  EXPECT_EQ(table_->KindOf(1), std::optional<abi::ObjectKind>(abi::ObjectKind::kKqueue));
  EXPECT_EQ(table_->KindOf(kKqueueId), std::optional<abi::ObjectKind>(abi::ObjectKind::kKqueue));
}

// Rule 32: a process holds the object while any of its descriptors is it:
// the one it last named it by, else one found by a scan.
TEST_F(ObjectTableTest, HoldsFollowsTheProcessDescriptors) {
  Make(false);
  int fd = Install(1, abi::ObjectKind::kPort);
  EXPECT_TRUE(table_->Holds(kPid, 1));
  int other = dup(fd);
  close(fd);
  program_ = {other};
  EXPECT_TRUE(table_->Holds(kPid, 1));  // found by the scan
  EXPECT_TRUE(table_->IsAt(1, kPid, other));
  close(other);
  program_.clear();
  EXPECT_FALSE(table_->Holds(kPid, 1));
  EXPECT_TRUE(table_->Holds(kPid, 99));  // not installed yet: its creator holds it
}

// The in-process engine asks after every call whether any byte waits to
// be drained (AnyNeedsDrain, a count rather than a lookup): it follows
// every object's needs_drain, through the drain and the last close.
TEST_F(ObjectTableTest, AnyNeedsDrainFollowsEveryObjectsDrain) {
  Make(/*drain_at_once=*/false);
  int a = Install(1, abi::ObjectKind::kPort);
  Install(2, abi::ObjectKind::kKqueue);
  EXPECT_FALSE(table_->AnyNeedsDrain());
  for (emul::ObjectId obj : {1, 2}) table_->OnReadiness(obj, true);
  table_->ApplyReadiness();
  EXPECT_FALSE(table_->AnyNeedsDrain());  // signalled, not to be drained
  for (emul::ObjectId obj : {1, 2}) table_->OnReadiness(obj, false);
  table_->ApplyReadiness();
  EXPECT_TRUE(table_->AnyNeedsDrain());
  table_->OnReadiness(2, false);  // no change: still one count for it
  table_->ApplyReadiness();
  table_->DrainIfNeeded(1, kPid, a);
  EXPECT_FALSE(table_->StateOf(1)->needs_drain);
  EXPECT_TRUE(table_->AnyNeedsDrain());  // object 2's byte still waits
  EXPECT_EQ(table_->removals(), 0u);
  EXPECT_TRUE(table_->Remove(2).has_value());
  EXPECT_FALSE(table_->AnyNeedsDrain());
  EXPECT_EQ(table_->removals(), 1u);
  EXPECT_FALSE(table_->Remove(2).has_value());  // nothing removed: not counted
  EXPECT_EQ(table_->removals(), 1u);
}

// NoteHolder skips a note that holder_fd_ holds already; a change of the
// holders by anything else (Holds' scan) makes the next note count again:
// the filler of a full port goes through the descriptor noted last.
TEST_F(ObjectTableTest, NoteAfterHoldsMovedTheHolderIsWritten) {
  Make(false);
  const int first = Install(1, abi::ObjectKind::kPort);  // noted at `first`
  const int other = dup(first);
  ASSERT_GE(other, 0);
  close(first);
  EXPECT_TRUE(table_->Holds(kPid, 1));  // found at `other` by the scan
  const int again = dup(other);  // the lowest free number: `first` again
  ASSERT_EQ(again, first);
  table_->NoteHolder(1, kPid, again);
  close(other);
  program_ = {again};
  table_->OnWritable(1, false);  // filler through the holder noted last
  EXPECT_TRUE(table_->StateOf(1)->filled);
  EXPECT_FALSE(Revents(again, POLLOUT) & POLLOUT);
}

// A last close that cannot be watched is a fault, never silent (issue 12
// item 2: every epoll_ctl result is checked).
TEST_F(ObjectTableTest, UnwatchableLastCloseIsAFault) {
  table_ = std::make_unique<ObjectTable>(/*loop_epoll=*/-1, kCloseTag, ends_, false);
  emul::Result<ObjectTable::Pair> pair = table_->MakePair(abi::ObjectKind::kPort);
  ASSERT_TRUE(pair.ok());
  program_.push_back(pair->program);
  std::optional<Fault> fault = table_->Add(1, abi::ObjectKind::kPort, pair->own, pair->inode);
  ASSERT_TRUE(fault.has_value());
  EXPECT_EQ(fault->error, EBADF);
}

// The router: an object's last close goes to the engine that owns the
// object, once; a due deadline runs after the loop's hook; the loop's own
// tags are left to the loop.
class HostEventRouterTest : public ObjectTableTest {
 protected:
  HostEventRouterTest()
      : host_(epoll_, [](emul::Pid) { return -1; }), ports_(host_, 1, 11, 21), kqueues_(host_, 2, 12, 22),
        engines_(host_) {
    Make(false);
    engines_.Add(ports_);
    engines_.Add(kqueues_);
    router_ = std::make_unique<HostEventRouter>(
        host_, engines_, *table_,
        HostEventRouter::Hooks{.before_deadline = [this] { ++hook_calls_; },
                               .after_watch_pass = [] { return false; },
                               .on_fault = [this](const Fault&) { ++faults_; }});
  }
  ~HostEventRouterTest() override { router_.reset(); }
  LinuxHost host_;
  testing::RecordingEngine ports_, kqueues_;
  emul::Engines engines_;  // after the engines: it forgets them first
  std::unique_ptr<HostEventRouter> router_;
  int hook_calls_ = 0;
  int faults_ = 0;
};

TEST_F(HostEventRouterTest, LastCloseGoesToTheOwningEngineOnce) {
  int fd = Install(2, abi::ObjectKind::kKqueue);
  close(fd);
  program_.clear();
  epoll_event ev{};
  ASSERT_EQ(epoll_wait(epoll_, &ev, 1, 0), 1);
  EXPECT_TRUE(router_->Route(ev.data.u64));
  EXPECT_EQ(kqueues_.closed, std::vector<emul::ObjectId>{2});
  EXPECT_TRUE(ports_.closed.empty());
  EXPECT_EQ(table_->size(), 0u);
  EXPECT_TRUE(router_->Route(ev.data.u64));  // a stale report: nothing more
  EXPECT_EQ(kqueues_.closed.size(), 1u);
  EXPECT_EQ(faults_, 0);
}

TEST_F(HostEventRouterTest, DueDeadlineRunsAfterTheHookAndOwnTagsAreLeft) {
  ports_.SetDeadline(host_.Now());  // due at once
  kqueues_.SetDeadline(host_.Now() + 3'600 * emul::kNanosPerSecond);
  EXPECT_TRUE(router_->Route(loop_tag::kDeadline));
  EXPECT_EQ(hook_calls_, 1);
  EXPECT_EQ(ports_.deadlines_run, 1);
  EXPECT_EQ(kqueues_.deadlines_run, 0);
  EXPECT_FALSE(router_->Route(1ULL << 56));  // the supervisor's listener tag
  EXPECT_EQ(hook_calls_, 1);
}

}  // namespace
}  // namespace evshim::shim
