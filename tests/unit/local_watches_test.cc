// The in-process engine's watches (shim/runtime/local_watches.h;
// docs/design.md "The in-process fast path", Watches): the program's own
// descriptors registered in shared epolls, several watches multiplexed on
// one registration, and a closed or replaced number noticed (rule 10).
#include "shim/runtime/local_watches.h"

#include <gtest/gtest.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace evshim::shim {
namespace {

int OpenFds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(d);
  return n - 1;  // the directory's own
}

class LocalWatchesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    loop_ = epoll_create1(EPOLL_CLOEXEC);
    ASSERT_GE(loop_, 0);
    watches_ = std::make_unique<LocalWatches>(loop_, [this](const char* op, std::string detail) {
      faults_.push_back(std::string(op) + ": " + detail);
    });
    watches_->set_memo(false);
  }
  void TearDown() override {
    watches_.reset();
    for (int fd : fds_) close(fd);
    close(loop_);
    EXPECT_TRUE(faults_.empty()) << faults_.front();
  }
  // A socketpair whose ends are closed after the test.
  std::pair<int, int> Pair() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    fds_.push_back(sv[0]);
    fds_.push_back(sv[1]);
    return {sv[0], sv[1]};
  }
  // A socketpair end watched (level, POLLIN) by watch `id`, and a copy of it
  // that keeps its file open after a raw close of the number.
  struct KeptWatch {
    int fd, peer, kept;
  };
  KeptWatch WatchedAndKeptOpen(emul::WatchId id) {
    auto [fd, peer] = Pair();
    watches_->Add(id);
    EXPECT_EQ(*watches_->Arm(id, fd, POLLIN), 0u);
    const int kept = dup(fd);
    EXPECT_GE(kept, 0);
    fds_.push_back(kept);
    return {fd, peer, kept};
  }
  LocalWatches::ReadyList Take() {
    LocalWatches::ReadyList ready;
    watches_->TakeReady(&ready);
    return ready;
  }
  // A whole look (begun, read, ended): how many watches it reported.
  size_t Look() {
    const uint64_t look = watches_->BeginLook();
    const size_t n = Take().size();
    watches_->EndLook(look);
    return n;
  }
  // Whether the look epoll reports the watches (what wakes the engine; the
  // loop epoll nested in it is empty here). poll(): consumes no report.
  bool LoopReady() {
    pollfd look{watches_->look_fd(), POLLIN, 0};
    return poll(&look, 1, 0) == 1 && (look.revents & POLLIN);
  }
  static void Fill(int fd) {
    char buf[4096] = {};
    while (write(fd, buf, sizeof buf) > 0) {
    }
  }
  static void Drain(int fd) {
    char buf[4096];
    while (read(fd, buf, sizeof buf) > 0) {
    }
  }
  // A file left ready after its watches' reports, taken by nobody in two
  // calls (switch-offs per call): switched off, the look epoll quiet.
  void SwitchedOffInTwoCalls() {
    for (int call = 0; call < 2; ++call) {
      EXPECT_TRUE(Take().empty());
      watches_->EndCall();
    }
    EXPECT_FALSE(LoopReady());
  }
  // Switch-offs per call (the engine's mode), and a socketpair end with
  // watch 1 on it (level, POLLIN, armed kNow), made ready and delivered by
  // a look: the file is left ready, the call not ended.
  std::pair<int, int> DeliveredLeftReady() {
    watches_->set_switch_offs_per_call(true);
    auto [a, b] = Pair();
    watches_->Add(1);
    EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
    EXPECT_EQ(write(b, "x", 1), 1);
    EXPECT_EQ(Take().size(), 1u);
    return {a, b};
  }
  // Switch-offs per call and associations placed one-shot (the engine's
  // modes), and a socketpair end, not ready, with watch 1 on it: a kqueue
  // READ knote's (level, armed kNow).
  std::pair<int, int> EngineModesAndAKnote() {
    watches_->set_switch_offs_per_call(true);
    watches_->set_one_shot_associations(true);
    auto [a, b] = Pair();
    watches_->Add(1);
    EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
    return {a, b};
  }

  int loop_ = -1;
  std::unique_ptr<LocalWatches> watches_;
  std::vector<std::string> faults_;
  std::vector<int> fds_;
};

// No descriptor per watch: 64 descriptors, a level and an edge watch each.
TEST_F(LocalWatchesTest, WatchesOpenNoDescriptor) {
  std::vector<int> mine;
  for (int i = 0; i < 64; ++i) mine.push_back(Pair().first);
  // The edge epoll of a mask is made once, by its first edge watch.
  watches_->Add(1000);
  ASSERT_TRUE(watches_->ArmEdge(1000, mine[0], POLLOUT).ok());
  const int before = OpenFds();
  for (int i = 0; i < 64; ++i) {
    watches_->Add(2 * i + 1);
    watches_->Add(2 * i + 2);
    ASSERT_EQ(*watches_->Arm(2 * i + 1, mine[i], POLLIN), 0u);
    ASSERT_EQ(*watches_->ArmEdge(2 * i + 2, mine[i], POLLOUT), static_cast<uint32_t>(POLLOUT));
  }
  EXPECT_EQ(OpenFds(), before);
}

// Files are kept in a table by number, in chunks of 64 numbers that go with
// their last file: watches on numbers in different chunks are reported
// apart, and a number whose chunk went and came back is watched anew.
TEST_F(LocalWatchesTest, SparseNumbersAreReportedApartAndWatchedAgain) {
  const std::vector<int> numbers = {63, 64, 700};
  std::vector<int> writers;
  for (size_t i = 0; i < numbers.size(); ++i) {
    auto [a, b] = Pair();
    ASSERT_EQ(dup2(a, numbers[i]), numbers[i]);
    fds_.push_back(numbers[i]);
    writers.push_back(b);
    watches_->Add(i + 1);
    ASSERT_EQ(*watches_->Arm(i + 1, numbers[i], POLLIN), 0u);
  }
  for (size_t i = numbers.size(); i-- > 0;) {
    ASSERT_EQ(write(writers[i], "x", 1), 1);
    LocalWatches::ReadyList ready = Take();
    ASSERT_EQ(ready.size(), 1u) << numbers[i];
    EXPECT_EQ(ready[0].first, i + 1);
  }
  // The last file of 700's chunk goes (and the table's end with it); the
  // number is watched again, and 64's chunk was kept.
  watches_->Drop(3);
  watches_->Add(4);
  EXPECT_EQ(*watches_->Arm(4, 700, POLLIN), static_cast<uint32_t>(POLLIN));
  EXPECT_TRUE(watches_->SameFile(700, 4));
  EXPECT_TRUE(watches_->SameFile(64, 2));
  EXPECT_EQ(watches_->size(), 3u);
}

// Two level watches on one descriptor: a report goes to the watch it
// concerns, the other stays armed and is reported at its own readiness.
TEST_F(LocalWatchesTest, LevelWatchesOnOneDescriptorAreReportedApart) {
  auto [a, b] = Pair();
  Fill(a);  // not writable
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  EXPECT_EQ(*watches_->Arm(2, a, POLLOUT), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  ASSERT_TRUE(LoopReady());
  LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 1u);
  EXPECT_EQ(ready[0].second, static_cast<uint32_t>(POLLIN));
  // One-shot: watch 1 is not reported again; watch 2 still waits.
  EXPECT_TRUE(Take().empty());
  Drain(b);  // room to write again: watch 2
  ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 2u);
  EXPECT_EQ(ready[0].second, static_cast<uint32_t>(POLLOUT));
  // Level: armed again while still readable, watch 1 fires at once.
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), static_cast<uint32_t>(POLLIN));
}

// A disarmed watch is not reported (its registration is narrowed lazily).
TEST_F(LocalWatchesTest, DisarmedWatchIsNotReported) {
  auto [a, b] = Pair();
  watches_->Add(1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  watches_->Disarm(1);
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_TRUE(Take().empty());
}

// The level registration stays on after a report (rule 5, port.c:165-167
// (illumos): the association is deactivated, not the file's registration),
// so a watch armed again on a file read dry is armed with no look
// (kReportedAtLook) and its file's next readiness is reported. A file left
// ready after its watch fired is reported once more, which concerns no
// armed watch and switches the registration off: the loop is quiet again,
// and the next Arm looks at the file itself (rule 6: it fires at once).
TEST_F(LocalWatchesTest, LevelRegistrationStaysOnAndGoesOffWhenLeftReady) {
  auto [a, b] = Pair();
  watches_->Add(1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  ASSERT_EQ(Take().size(), 1u);
  Drain(a);
  EXPECT_FALSE(LoopReady());
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  ASSERT_EQ(write(b, "y", 1), 1);
  LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 1u);
  // Left ready: reported once more, to no watch, then off.
  ASSERT_TRUE(LoopReady());
  EXPECT_TRUE(Take().empty());
  EXPECT_FALSE(LoopReady());
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kReportedAtLook),
            static_cast<uint32_t>(POLLIN));
  // A hang-up on the switched-off registration is reported once at most.
  ASSERT_EQ(shutdown(b, SHUT_RDWR), 0);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(Take().empty());
  EXPECT_FALSE(LoopReady());
}

// Rule 6 (port.c:153-163 (illumos): port_associate fires at once for a file
// ready at the call) with switch-offs decided per call, as the engine runs
// them: a file left ready is reported at the look of the very call that
// arms its watch again; that report is the file's readiness at the call
// (the arm fires with it, no poll: the file read dry after the look still
// fires), and the registration is not switched off in the middle of the
// call. Reports nobody takes at the end of two calls in a row switch it off.
TEST_F(LocalWatchesTest, ReportAtTheArmingCallsLookIsItsReadinessPerCall) {
  auto [a, b] = DeliveredLeftReady();
  watches_->EndCall();
  // The next call: its look reports the file to no armed watch.
  EXPECT_TRUE(Take().empty());
  EXPECT_TRUE(LoopReady()) << "switched off in the middle of the call";
  Drain(a);  // after the look: a poll at the arm would say not ready
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kReportedAtLook),
            static_cast<uint32_t>(POLLIN));
  watches_->EndCall();
  // Left ready and never taken again: on after one call, off after two.
  ASSERT_EQ(write(b, "y", 1), 1);
  EXPECT_TRUE(Take().empty());
  watches_->EndCall();
  EXPECT_TRUE(LoopReady());
  EXPECT_TRUE(Take().empty());
  watches_->EndCall();
  EXPECT_FALSE(LoopReady());
}

// More files ready than one read of the look epoll takes (64), with
// switch-offs per call as the engine runs them: each delivered file stays
// ready and its level registration on until the call ends, and every read
// puts it back at the tail of epoll's ready list. The look must still end,
// with each watch reported once (a kevent with 64 or more ready knotes
// spun for ever in fast mode: libevent's test/bench -a 64). Run in a child
// with an alarm, so a look that goes round for ever fails the test.
TEST_F(LocalWatchesTest, LookWithMoreReadyFilesThanOneReadEndsAndReportsEachOnce) {
  watches_->set_switch_offs_per_call(true);
  constexpr int kFiles = 150;
  for (int i = 0; i < kFiles; ++i) {
    auto [a, b] = Pair();
    watches_->Add(i + 1);
    ASSERT_EQ(*watches_->Arm(i + 1, a, POLLIN), 0u);
    ASSERT_EQ(write(b, "x", 1), 1);
  }
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    alarm(10);
    LocalWatches::ReadyList ready = Take();
    std::vector<emul::WatchId> ids;
    for (const auto& r : ready) ids.push_back(r.first);
    std::sort(ids.begin(), ids.end());
    bool once = ids.size() == kFiles;
    for (size_t i = 0; once && i < ids.size(); ++i) once = ids[i] == i + 1;
    watches_->EndCall();
    // The next call's look: nothing armed, nothing to report, and it ends.
    once = once && Take().empty();
    _exit(once ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << (WIFSIGNALED(status) ? "the look went round for ever (killed by the alarm)" : "wrong reports");
}

// A delivered level kqueue knote is re-checked at the next scan (DF
// kern_event.c:1545-1548 then 1510-1518): the watch armed for the next look
// tells "not ready" only once a look begun after the arm was completed and
// did not report it; a report (or a look still going on) says nothing.
TEST_F(LocalWatchesTest, QuietSinceArmOnlyAfterACompletedLookThatDidNotReport) {
  auto [a, b] = Pair();
  watches_->Add(1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  uint64_t look = watches_->BeginLook();
  ASSERT_EQ(Take().size(), 1u);
  watches_->EndLook(look);
  // Delivered, still ready: armed for the next look with no call.
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  EXPECT_FALSE(watches_->QuietSinceArm(1)) << "no look since the arm";
  look = watches_->BeginLook();
  EXPECT_FALSE(watches_->QuietSinceArm(1)) << "the look is not complete";
  ASSERT_EQ(Take().size(), 1u);  // still ready: reported, disarmed
  watches_->EndLook(look);
  EXPECT_FALSE(watches_->QuietSinceArm(1)) << "reported ready";
  // Read dry, armed again: the next complete look reports nothing.
  Drain(a);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  look = watches_->BeginLook();
  EXPECT_TRUE(Take().empty());
  watches_->EndLook(look);
  EXPECT_TRUE(watches_->QuietSinceArm(1));
  // A look that has not read the level epoll yet (the loop's events are
  // routed in order: a deadline may scan the kqueue first) says nothing;
  // once it has, the answer holds again.
  look = watches_->BeginLook();
  EXPECT_FALSE(watches_->QuietSinceArm(1)) << "a look is going on";
  EXPECT_TRUE(Take().empty());
  EXPECT_TRUE(watches_->QuietSinceArm(1)) << "its level read found nothing";
  watches_->EndLook(look);
  EXPECT_TRUE(watches_->QuietSinceArm(1));
  // Ready after that look: the next one reports it.
  ASSERT_EQ(write(b, "y", 1), 1);
  look = watches_->BeginLook();
  ASSERT_EQ(Take().size(), 1u);
  watches_->EndLook(look);
  EXPECT_FALSE(watches_->QuietSinceArm(1));
  // An edge watch never answers (its registration is not the level one).
  watches_->Add(2);
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLOUT), static_cast<uint32_t>(POLLOUT));
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLOUT), 0u);
  look = watches_->BeginLook();
  (void)Take();
  watches_->EndLook(look);
  EXPECT_FALSE(watches_->QuietSinceArm(2));
}

// A delivered level knote's re-arm (Kqueues::ArmForNextLook): kIfFree arms
// a watch whose file's level registration covers its mask, so the next
// look reports the file if it is still (or again) ready, and leaves a
// watch it cannot arm that way as it is, answering the mask (the caller
// measures).
TEST_F(LocalWatchesTest, ArmIfFreeArmsOnACoveringRegistrationAndOtherwiseLeavesTheWatch) {
  auto [a, b] = Pair();
  watches_->Add(1);
  ASSERT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  ASSERT_EQ(Look(), 1u);  // reported, disarmed; the registration stays on
  // Still ready: armed, and the next look reports it again.
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kIfFree), 0u);
  ASSERT_EQ(Look(), 1u) << "armed by kIfFree";
  // Read dry: armed, a complete look finds nothing, then activity reports.
  Drain(a);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kIfFree), 0u);
  EXPECT_EQ(Look(), 0u);
  EXPECT_TRUE(watches_->QuietSinceArm(1));
  ASSERT_EQ(write(b, "y", 1), 1);
  ASSERT_EQ(Look(), 1u);
  // A mask the registration does not cover: not armed, the mask answered.
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN | POLLOUT, nullptr, LocalWatches::kIfFree),
            static_cast<uint32_t>(POLLIN | POLLOUT));
  Drain(a);
  EXPECT_EQ(Look(), 0u);
  EXPECT_FALSE(watches_->QuietSinceArm(1)) << "left disarmed";
  // A watch on another number than the one named: left as it is too.
  auto [c, d] = Pair();
  (void)d;
  EXPECT_EQ(*watches_->Arm(1, c, POLLIN, nullptr, LocalWatches::kIfFree), static_cast<uint32_t>(POLLIN));
}

// A knote whose EV_ADD found its file ready was measured and queued with
// its watch never registered. Its re-arm after the first delivery
// (kIfFree) registers the watch, level (RegisterLevel): from then on the
// looks answer for it, where before every scan measured it with a poll (a
// busy server's connections, docs/performance.md "Session 32: a knote added
// on a ready file"). A number epoll cannot watch, or one closed, is left
// to the caller's measurement, as before.
TEST_F(LocalWatchesTest, ArmIfFreeRegistersAWatchNoRegistrationCarriesYet) {
  auto [a, b] = Pair();
  watches_->Add(1);  // never armed: the knote's EV_ADD found the file ready
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kIfFree), 0u) << "registered and armed";
  ASSERT_EQ(Look(), 1u) << "the registration reports the ready file";
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kIfFree), 0u);
  Drain(a);
  EXPECT_EQ(Look(), 0u);
  EXPECT_TRUE(watches_->QuietSinceArm(1)) << "the next scan needs no measurement";
  ASSERT_EQ(write(b, "y", 1), 1);
  EXPECT_EQ(Look(), 1u);
  // A regular file (epoll refuses it) and a closed number: not registered,
  // the mask answered (the caller measures).
  char path[] = "/tmp/evshim-lw-XXXXXX";
  const int reg = mkstemp(path);
  ASSERT_GE(reg, 0);
  unlink(path);
  fds_.push_back(reg);
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(2, reg, POLLIN, nullptr, LocalWatches::kIfFree), static_cast<uint32_t>(POLLIN));
  EXPECT_EQ(*watches_->Arm(2, reg, POLLIN, nullptr, LocalWatches::kIfFree), static_cast<uint32_t>(POLLIN));
  auto [c, d] = Pair();
  (void)d;
  watches_->Add(3);
  ASSERT_EQ(close(c), 0);
  fds_.erase(std::find(fds_.begin(), fds_.end(), c));
  EXPECT_EQ(*watches_->Arm(3, c, POLLIN, nullptr, LocalWatches::kIfFree), static_cast<uint32_t>(POLLIN));
  EXPECT_FALSE(watches_->QuietSinceArm(3));
}

// A look of the arming call that reported the file while its watch was
// disarmed (its first read fired the watch, a second read of the same call
// found the file still ready: seen_ready): the re-arm of the knote, which
// is on its kqueue's list already and was measured since, arms the watch
// all the same, so that a next look that does not report the file says it
// is not ready (QuietSinceArm). Answering "ready" there left the knote to
// be measured with a poll at every scan after each delivery.
TEST_F(LocalWatchesTest, ArmIfFreeArmsAWatchThisCallsLookFoundReadyWhileDisarmed) {
  auto [a, b] = EngineModesAndAKnote();
  ASSERT_EQ(write(b, "x", 1), 1);
  ASSERT_EQ(Take().size(), 1u);  // fired, disarmed
  EXPECT_TRUE(Take().empty());   // the same call reads again: ready, no armed watch
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kIfFree), 0u) << "armed";
  watches_->EndCall();
  Drain(a);
  EXPECT_EQ(Look(), 0u);
  EXPECT_TRUE(watches_->QuietSinceArm(1));
  watches_->EndCall();
  ASSERT_EQ(write(b, "y", 1), 1);
  EXPECT_EQ(Look(), 1u) << "the registration stayed on";
}

// kqueue's READ filter takes the look's report for the poll it would make
// (docs/kqueue.md "What a kevent costs"): only a report of this call, to
// this armed level watch, readable with no hang-up or error, and only until
// a later report of the same call says otherwise.
TEST_F(LocalWatchesTest, ReportedReadyThisCallOnlyForThisCallsPlainReadyReport) {
  watches_->set_switch_offs_per_call(true);
  auto [a, b] = Pair();
  watches_->Add(1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN | POLLRDHUP), 0u);
  EXPECT_FALSE(watches_->ReportedReadyThisCall(1)) << "nothing reported";
  ASSERT_EQ(write(b, "x", 1), 1);
  ASSERT_EQ(Take().size(), 1u);
  EXPECT_TRUE(watches_->ReportedReadyThisCall(1));
  // A later report of the same call that says the file is not ready only
  // for this watch's bits clears it: here the watch is armed again and the
  // peer's shutdown makes it report a hang-up.
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN | POLLRDHUP, nullptr, LocalWatches::kReportedAtLook), 0u);
  ASSERT_EQ(shutdown(b, SHUT_WR), 0);
  ASSERT_EQ(Take().size(), 1u);
  EXPECT_FALSE(watches_->ReportedReadyThisCall(1)) << "a hang-up is no plain readiness";
  watches_->EndCall();
  // The next call: nothing until its own look reports.
  auto [c, d] = Pair();
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(2, c, POLLIN | POLLRDHUP), 0u);
  ASSERT_EQ(write(d, "y", 1), 1);
  ASSERT_EQ(Take().size(), 1u);
  EXPECT_TRUE(watches_->ReportedReadyThisCall(2));
  watches_->EndCall();
  EXPECT_FALSE(watches_->ReportedReadyThisCall(2)) << "forgotten at the end of the call";
  // The file left ready, its watch disarmed (delivered by an earlier look:
  // the idle pump's), the registration left on: the next call's look
  // reports it again, and that is the file's readiness at that call.
  Take();
  EXPECT_TRUE(watches_->ReportedReadyThisCall(2)) << "the next call would measure the file in full";
  watches_->EndCall();
  // An edge watch never has one.
  watches_->Add(3);
  EXPECT_NE(*watches_->ArmEdge(3, c, POLLIN), 0u);
  EXPECT_EQ(*watches_->ArmEdge(3, c, POLLIN), 0u);
  ASSERT_EQ(write(d, "z", 1), 1);
  ASSERT_EQ(Take().size(), 1u);
  EXPECT_FALSE(watches_->ReportedReadyThisCall(3));
  watches_->EndCall();
  // Nor a watch last armed by kReportedAtLook (a port association's, which
  // nobody asks): its plain ready report is not listed for EndCall.
  auto [e, f] = Pair();
  watches_->Add(4);
  EXPECT_EQ(*watches_->Arm(4, e, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  ASSERT_EQ(write(f, "w", 1), 1);
  ASSERT_EQ(Take().size(), 1u);
  EXPECT_FALSE(watches_->ReportedReadyThisCall(4));
  watches_->EndCall();
}

// The call's end forgets a report listed for ReportedReadyThisCall also
// when it is the only entry the call listed (EndCall's walk is out of
// line, taken only when the call listed something).
TEST_F(LocalWatchesTest, ReportedReadyThisCallIsForgottenWhenItIsTheCallsOnlyEntry) {
  DeliveredLeftReady();  // no report to an unarmed watch
  EXPECT_TRUE(watches_->ReportedReadyThisCall(1));
  watches_->EndCall();
  EXPECT_FALSE(watches_->ReportedReadyThisCall(1)) << "the call's report outlived the call";
}

// Edge watches with one mask share a registration, each with its own edge
// (kqueue EV_CLEAR: DF kern_event.c:1535-1544, only new activity after a
// report): settling one forgets its pending edge, not the other's.
TEST_F(LocalWatchesTest, EdgeWatchesSharingARegistrationKeepTheirOwnEdges) {
  auto [a, b] = Pair();
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->ArmEdge(1, a, POLLIN), 0u);
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLIN), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  LocalWatches::ReadyList ready = Take();
  std::sort(ready.begin(), ready.end());
  ASSERT_EQ(ready.size(), 2u);
  EXPECT_EQ(ready[0].first, 1u);
  EXPECT_EQ(ready[1].first, 2u);
  // The byte is still there, but it was reported: no edge for either.
  EXPECT_EQ(*watches_->ArmEdge(1, a, POLLIN), 0u);
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLIN), 0u);
  // New activity while watch 2 is disarmed and watch 1 settles: watch 1's
  // measurement includes it, watch 2 keeps it as its pending edge.
  watches_->Disarm(2);
  ASSERT_EQ(write(b, "y", 1), 1);
  watches_->SettleEdge(1, a, POLLIN);
  EXPECT_TRUE(Take().empty()) << "settled watch 1 was reported";
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLIN), static_cast<uint32_t>(POLLIN));
}

// A watch joining an edge registration gets the present state once, as a
// registration of its own reports it (DF kern_event.c:1312-1322).
TEST_F(LocalWatchesTest, EdgeWatchJoiningARegistrationGetsThePresentStateOnce) {
  auto [a, b] = Pair();
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->ArmEdge(1, a, POLLOUT), static_cast<uint32_t>(POLLOUT));
  EXPECT_EQ(*watches_->ArmEdge(1, a, POLLOUT), 0u);
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLOUT), static_cast<uint32_t>(POLLOUT));
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLOUT), 0u);
  (void)b;
}

// A write wake-up is no read edge: the READ and WRITE masks of one
// descriptor are separate registrations (filt_soread hears only the
// receive side).
TEST_F(LocalWatchesTest, WriteWakeUpIsNoReadEdge) {
  auto [a, b] = Pair();
  ASSERT_EQ(write(b, "x", 1), 1);  // readable, and stays so
  Fill(a);
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->ArmEdge(1, a, POLLIN), static_cast<uint32_t>(POLLIN));  // its first report
  EXPECT_EQ(*watches_->ArmEdge(1, a, POLLIN), 0u);
  EXPECT_EQ(*watches_->ArmEdge(2, a, POLLOUT), 0u);
  Drain(b);  // room to write: a write wake-up on `a`
  LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 2u);
}

// Rule 10 (port.c:168-169) after a raw close: the number reused by another
// file is not the watched one, the old watch stays dead (it never follows
// the number), a new watch sees the new file, and the old file's
// registration left behind (the file open elsewhere) reports nothing. When
// that same file comes back at the number, a new watch takes its
// registration over (EEXIST).
TEST_F(LocalWatchesTest, RawCloseAndReuseNeverConfuseFiles) {
  auto [old_fd, old_peer, kept] = WatchedAndKeptOpen(1);
  ASSERT_GE(kept, 0);
  ASSERT_EQ(syscall(SYS_close, old_fd), 0);
  auto [new_fd, new_peer] = Pair();
  ASSERT_EQ(dup2(new_fd, old_fd), old_fd);
  const int number = old_fd;
  EXPECT_FALSE(watches_->SameFile(number, 1));
  EXPECT_EQ(watches_->Arm(1, number, POLLIN).error().value, EBADF);  // dead for good
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(2, number, POLLIN), 0u);
  EXPECT_TRUE(watches_->SameFile(number, 2));
  ASSERT_EQ(write(old_peer, "o", 1), 1);
  EXPECT_TRUE(Take().empty());
  ASSERT_EQ(write(new_peer, "n", 1), 1);
  LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 2u);
  watches_->Drop(2);
  // The old file back at its number: a new watch on it works.
  ASSERT_EQ(dup2(kept, number), number);
  Drain(kept);
  watches_->Add(3);
  EXPECT_EQ(*watches_->Arm(3, number, POLLIN), 0u);
  EXPECT_TRUE(watches_->SameFile(number, 3));
  EXPECT_FALSE(watches_->SameFile(number, 1));
  ASSERT_EQ(write(old_peer, "p", 1), 1);
  ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 3u);
}

// The idle pump's switch-off (EndCall -> SetLevel, an EPOLL_CTL_MOD by
// number, under the engine lock) while the program closes that number in
// another thread and a new file takes it (docs/design.md "A close in
// another thread"). epoll_ctl finds a registration by (the file the number
// names now, the number) (ep_find, fs/eventpoll.c), and close and epoll_ctl
// are each atomic on the descriptor table, so the race has two outcomes:
// the MOD switches the old file's own registration off before the close
// (which then removes it), or, after it, finds none for the new file and
// fails (ENOENT), which kills the old record. Either way the old watch
// never follows its number to the new file (rule 10, port.c:168-169
// (illumos)), the new file's watch works as on a single thread, and no
// fault is reported. The two threads are ordered only by a relaxed flag,
// which ThreadSanitizer does not count as synchronisation: with the MOD
// first (its report: TSan forgets a descriptor's accesses at its close),
// the close is reported as a race on the descriptor under TSan (suite
// 'threaded', scripts/test), which tests/support/tsan.supp declares benign
// (CtlProgramNumber).
void SwitchOffRacingACloseLeavesTheNewFileAlone(LocalWatches& watches, std::vector<int>& fds,
                                                bool switch_off_first) {
  watches.set_switch_offs_per_call(true);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  const int number = sv[0], old_peer = sv[1];
  fds.push_back(number);
  fds.push_back(old_peer);
  LocalWatches::ReadyList ready;
  watches.Add(1);
  EXPECT_EQ(*watches.Arm(1, number, POLLIN), 0u);
  ASSERT_EQ(write(old_peer, "x", 1), 1);
  watches.TakeReady(&ready);
  ASSERT_EQ(ready.size(), 1u);  // delivered; the file is left ready
  watches.EndCall();
  for (int call = 0; call < 2; ++call) {  // reported to no armed watch
    ready.clear();
    watches.TakeReady(&ready);
    EXPECT_TRUE(ready.empty());
    if (call == 0) watches.EndCall();  // the second EndCall switches it off
  }
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  const int new_fd = sv[0], new_peer = sv[1];
  fds.push_back(new_peer);
  std::atomic<bool> first_done{false};
  auto program_closes = [&] {
    // The number closed and taken by another file.
    EXPECT_EQ(close(number), 0);
    EXPECT_EQ(dup2(new_fd, number), number);
    EXPECT_EQ(close(new_fd), 0);
  };
  std::thread pump([&] {
    if (!switch_off_first) {
      while (!first_done.load(std::memory_order_relaxed)) {
      }
    }
    watches.EndCall();
    if (switch_off_first) first_done.store(true, std::memory_order_relaxed);
  });
  if (switch_off_first) {
    while (!first_done.load(std::memory_order_relaxed)) {
    }
    // The pump's thread is gone before the close: a sanitizer's runtime
    // uses descriptors at thread exit (ASan's accessibility probe makes a
    // pipe, taking the lowest free numbers), which raced with the number's
    // close and dup2 below (dup2 EBUSY, or the probe's close taking the new
    // file: about 1 run in 100 under ASan).
    pump.join();
  }
  program_closes();
  if (!switch_off_first) {
    first_done.store(true, std::memory_order_relaxed);
    pump.join();
  }
  EXPECT_FALSE(watches.SameFile(number, 1));
  EXPECT_EQ(watches.Arm(1, number, POLLIN).error().value, EBADF);  // dead for good
  watches.Add(2);
  EXPECT_EQ(*watches.Arm(2, number, POLLIN), 0u);  // the new file, not ready
  EXPECT_TRUE(watches.SameFile(number, 2));
  ASSERT_EQ(write(new_peer, "n", 1), 1);
  ready.clear();
  watches.TakeReady(&ready);
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 2u);
  EXPECT_EQ(ready[0].second, static_cast<uint32_t>(POLLIN));
}

TEST_F(LocalWatchesTest, PumpSwitchOffJustBeforeACloseLeavesTheNewFileAlone) {
  SwitchOffRacingACloseLeavesTheNewFileAlone(*watches_, fds_, /*switch_off_first=*/true);
}

TEST_F(LocalWatchesTest, PumpSwitchOffJustAfterACloseLeavesTheNewFileAlone) {
  SwitchOffRacingACloseLeavesTheNewFileAlone(*watches_, fds_, /*switch_off_first=*/false);
}

// Rule 10 (port.c:168-169 (illumos); knote_fdclose, DragonFly
// kern_event.c:1868-1902): a close the engine does not see (a raw close)
// while the file stays open elsewhere leaves its level registration in the
// kernel, where it can no longer be addressed. Level-triggered, it would
// report at every look while that file is ready (a waiting thread would
// spin): its first report renews the level epoll with the live files only,
// and the other watches go on.
TEST_F(LocalWatchesTest, LingeringRegistrationOfARawClosedFileIsDropped) {
  auto [old_fd, old_peer] = Pair();
  auto [other, other_peer] = Pair();
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(1, old_fd, POLLIN), 0u);
  EXPECT_EQ(*watches_->Arm(2, other, POLLIN), 0u);
  const int kept = dup(old_fd);
  ASSERT_GE(kept, 0);
  fds_.push_back(kept);
  ASSERT_EQ(syscall(SYS_close, old_fd), 0);
  EXPECT_FALSE(watches_->SameFile(old_fd, 1));  // noticed: watch 1 is dead
  ASSERT_EQ(write(old_peer, "o", 1), 1);  // the old file stays readable
  EXPECT_TRUE(LoopReady());
  EXPECT_TRUE(Take().empty());
  EXPECT_FALSE(LoopReady()) << "the closed file's registration still reports";
  ASSERT_EQ(write(other_peer, "x", 1), 1);
  ASSERT_TRUE(LoopReady());
  LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 2u);
  EXPECT_TRUE(Take().empty());
  EXPECT_FALSE(LoopReady());
}

// The renewal above replaces the look epoll under its number (dup3). A
// thread asleep on the old one (a waiter's ppoll, the idle pump) holds that
// file: it must wake to look at the new one, so the old one stays readable
// for good, while the new one reports nothing.
TEST_F(LocalWatchesTest, RenewalWakesSleepersOnTheReplacedLookEpoll) {
  auto [old_fd, old_peer, kept] = WatchedAndKeptOpen(1);
  ASSERT_GE(kept, 0);
  const int look_number = watches_->look_fd();
  const int old_look = dup(look_number);  // what a sleeper holds
  ASSERT_GE(old_look, 0);
  fds_.push_back(old_look);
  ASSERT_EQ(syscall(SYS_close, old_fd), 0);
  EXPECT_FALSE(watches_->SameFile(old_fd, 1));
  ASSERT_EQ(write(old_peer, "o", 1), 1);
  EXPECT_TRUE(Take().empty());  // the lingering report: renewed
  Drain(kept);  // the old file is quiet again
  EXPECT_EQ(watches_->look_fd(), look_number);
  EXPECT_FALSE(LoopReady());
  pollfd sleeper{old_look, POLLIN, 0};
  EXPECT_EQ(poll(&sleeper, 1, 0), 1) << "a sleeper on the replaced look epoll is never woken";
}

// A file epoll cannot watch (a regular file) is always ready and has no
// edges, as the supervised host reports it.
TEST_F(LocalWatchesTest, RegularFileIsAlwaysReadyAndHasNoEdges) {
  char name[] = "/tmp/evshim-local-watches-XXXXXX";
  const int fd = mkstemp(name);
  ASSERT_GE(fd, 0);
  unlink(name);
  fds_.push_back(fd);
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(1, fd, POLLIN), static_cast<uint32_t>(POLLIN));
  EXPECT_EQ(*watches_->Arm(1, fd, POLLIN), static_cast<uint32_t>(POLLIN));
  watches_->SettleEdge(2, fd, POLLIN);
  EXPECT_EQ(*watches_->ArmEdge(2, fd, POLLIN), 0u);
}

// The per-call counter is 32 bits (a Watch's and a File's copies of it):
// when it wraps, every copy is cleared, so a report seen at call N is not
// taken for the report of a call 2^32 later that has the same number. The
// file read dry is not ready at that call (rule 6: nothing fires), and
// nothing reported it at that call's look.
TEST_F(LocalWatchesTest, PerCallReportIsNotTakenAfterTheCallCounterWraps) {
  watches_->set_switch_offs_per_call(true);
  watches_->SetCallForTest(0xfffffffeu);
  auto [a, b] = Pair();
  watches_->Add(1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  ASSERT_EQ(Take().size(), 1u);  // delivered; the file is left ready
  watches_->EndCall();
  EXPECT_TRUE(Take().empty());  // call 0xffffffff: reported to no armed watch
  Drain(a);
  watches_->EndCall();  // the counter wraps
  watches_->SetCallForTest(0xffffffffu);  // 2^32 - 1 calls later, none about this file
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u)
      << "an old call's report taken for this call's";
}

// The identity-check epoch is 32 bits: when it wraps, every file's last
// confirmation is cleared, so a number confirmed at epoch N and replaced
// since is checked again at an epoch 2^32 later with the same number
// (rule 10: the watch is on the file, not the number).
TEST_F(LocalWatchesTest, IdentityIsCheckedAgainAfterTheEpochWraps) {
  watches_->set_memo(true);
  auto [a, b] = Pair();
  auto [other, other_peer] = Pair();
  watches_->Add(1);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN), 0u);
  watches_->SetEpochForTest(0xffffffffu);
  EXPECT_TRUE(watches_->SameFile(a, 1));  // confirmed at epoch 0xffffffff
  ASSERT_EQ(dup2(other, a), a);           // the number now names another file
  watches_->ForgetFileChecks();           // the epoch wraps
  watches_->SetEpochForTest(0xffffffffu);  // 2^32 - 1 epochs later, no check of this file
  EXPECT_FALSE(watches_->SameFile(a, 1)) << "an old confirmation taken for this epoch's";
}

// An association placed without a look (docs/design.md, Watches;
// set_one_shot_associations) is for a file whose every watch is an FD
// association (AssociationsOnly): only then is the one-shot registration's
// EPOLL_CTL_MOD at the association exactly where illumos queues its event
// (port.c:153-163: fired at once, behind the files that woke before).
// A file that also has another watch (here a kqueue READ knote: a level
// watch armed kNow) is placed by a look. Watch 1 (the knote) joined the
// file first, so the association is the file's newest watch: every watch
// is read, not only the newest. The record's registration has reported
// since its last MOD (unlinked), as kByItsMod asks otherwise.
TEST_F(LocalWatchesTest, FileWithAnotherKindOfWatchIsPlacedByALook) {
  auto [a, b] = EngineModesAndAKnote();
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(2, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);  // the association
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(Take().size(), 2u);
  watches_->EndCall();
  SwitchedOffInTwoCalls();
  // An identity check (rule 10) re-arms it one-shot; its report (to no
  // armed watch) leaves it off epoll's ready list.
  EXPECT_TRUE(watches_->SameFile(a, 2));
  EXPECT_TRUE(Take().empty());
  watches_->EndCall();
  EXPECT_FALSE(LoopReady());
  EXPECT_EQ(watches_->PlacementWithoutLook(a), LocalWatches::Placement::kByALook)
      << "a file with a knote placed by the association's MOD";
  // Associations only, their one-shot registration reported since its
  // MOD (off the list): placed by the MOD.
  auto [c, d] = Pair();
  watches_->Add(3);
  watches_->Add(4);
  EXPECT_EQ(*watches_->Arm(3, c, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  EXPECT_EQ(*watches_->Arm(4, c, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  ASSERT_EQ(write(d, "x", 1), 1);
  EXPECT_EQ(Take().size(), 2u);
  watches_->EndCall();
  EXPECT_EQ(watches_->PlacementWithoutLook(c), LocalWatches::Placement::kByItsMod);
}

// The same rule where an association is armed after the call's look
// (LocalWatches::Arm): the one-shot registration that places it
// (port.c:153-163) is for associations only. A kqueue READ knote (level,
// armed kNow) on the file keeps the level registration: delivered with the
// association and re-armed as Kqueues::ArmForNextLook does (kIfFree) on the
// file left ready, it is armed with no system call and reported at the next
// look (a level knote stays active while its data is left). Placed one-shot
// instead, the registration is off after that report, and each such re-arm
// is left to the kqueue's scan to measure (the same answer, at a cost).
TEST_F(LocalWatchesTest, LevelWatchBesideAnAssociationKeepsTheLevelRegistration) {
  auto [a, b] = EngineModesAndAKnote();
  watches_->Add(2);
  EXPECT_TRUE(Take().empty());                  // the association's call looks first
  EXPECT_EQ(*watches_->Arm(2, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  watches_->EndCall();
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(Take().size(), 2u);
  EXPECT_EQ(*watches_->Arm(1, a, POLLIN, nullptr, LocalWatches::kIfFree), 0u)
      << "the knote's re-arm measures: the registration was left one-shot";
  watches_->EndCall();
  const LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 1u);
}

// The same rule where a one-shot registration reports (TakeReady): the
// watches it left armed (other bits) are registered again, one-shot for
// associations only, else level. Here a kqueue WRITE knote (watch 1, level,
// armed kNow) and an association for POLLIN (watch 2) share a registration
// made one-shot by an identity check (rule 10). Its report delivers the
// association and leaves the knote armed: level again, the knote's report
// leaves the registration on, and its re-arm as Kqueues::ArmForNextLook
// does (kIfFree) on the file left writable is armed with no system call and
// reported at the next look. Registered one-shot instead, that report turns
// the registration off, and the re-arm is left to the kqueue's scan to
// measure (the same answer, one poll more for each).
TEST_F(LocalWatchesTest, KnoteLeftArmedByAOneShotReportGetsTheLevelRegistration) {
  watches_->set_switch_offs_per_call(true);
  watches_->set_one_shot_associations(true);
  auto [a, b] = Pair();
  Fill(a);  // not writable
  watches_->Add(1);
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(1, a, POLLOUT), 0u);  // the knote
  EXPECT_EQ(*watches_->Arm(2, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);  // the association
  watches_->EndCall();
  // Both delivered (level, POLLIN | POLLOUT), then switched off with its
  // mask.
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(Take().size(), 1u);
  watches_->EndCall();
  Drain(b);
  EXPECT_EQ(Take().size(), 1u);
  watches_->EndCall();
  SwitchedOffInTwoCalls();
  // Neither ready now; an identity check makes the registration one-shot.
  Drain(a);
  Fill(a);
  EXPECT_TRUE(watches_->SameFile(a, 2));
  EXPECT_TRUE(Take().empty());
  watches_->EndCall();
  // Both armed on it, covered: no other registration.
  EXPECT_EQ(*watches_->Arm(1, a, POLLOUT), 0u);
  EXPECT_EQ(*watches_->Arm(2, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);
  watches_->EndCall();
  // The one-shot report: the association; the knote left armed.
  ASSERT_EQ(write(b, "y", 1), 1);
  LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 2u);
  watches_->EndCall();
  // Writable: the knote's report, and its re-arm on the file left writable.
  Drain(b);
  ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 1u);
  EXPECT_EQ(*watches_->Arm(1, a, POLLOUT, nullptr, LocalWatches::kIfFree), 0u)
      << "the knote's re-arm measures: the registration was left one-shot";
  watches_->EndCall();
  ready = Take();
  ASSERT_EQ(ready.size(), 1u);
  EXPECT_EQ(ready[0].first, 1u);
}


// An association's file placed by its identity check's EPOLL_CTL_MOD
// (port.c:153-163: the event queued at the association, behind the files
// that woke before) is placed for the rest of that call only: the MOD
// linked a ready file in the order of that call. In a later call, before
// any look, the file may have been linked since (a wake-up), so an
// association armed then is not taken as placed: the watch's report seen
// while it was disarmed is measured instead (the file's readiness at the
// call, rule 6). Here the association's watch is disarmed, its file's
// one-shot report comes (seen_ready, off epoll's ready list), an identity
// check re-arms it one-shot (placed, in that call), and the association is
// armed again in `arm_call`.
class LocalWatchesPlacementTest : public LocalWatchesTest {
 protected:
  // The engine's modes, and a socketpair end, not ready, with association
  // watch 1 on it for POLLIN: placed by its registration's ADD in this
  // call.
  std::pair<int, int> PlacedAssociation() {
    watches_->set_switch_offs_per_call(true);
    watches_->set_one_shot_associations(true);
    auto [a, b] = Pair();
    watches_->Add(1);
    EXPECT_EQ(ArmAssociation(1, a, POLLIN), 0u);
    return {a, b};
  }
  uint32_t ArmAssociation(emul::WatchId id, int fd, uint32_t events) {
    return *watches_->Arm(id, fd, events, nullptr, LocalWatches::kReportedAtLook);
  }
  // The readiness the association's arm answers in the call after call
  // `check_call`, where its file was placed, or, with `ending_call`, in the
  // call after that one (SetCallForTest).
  uint32_t ArmAfterPlacementIn(uint32_t check_call, std::optional<uint32_t> ending_call = std::nullopt) {
    auto [a, b] = PlacedAssociation();
    watches_->EndCall();
    watches_->Disarm(1);
    EXPECT_EQ(write(b, "x", 1), 1);
    EXPECT_TRUE(Take().empty());  // disarmed: seen ready, the registration off
    watches_->EndCall();
    watches_->SetCallForTest(check_call);
    EXPECT_TRUE(watches_->SameFile(a, 1));  // one-shot again: placed in this call
    watches_->EndCall();
    if (ending_call) {
      watches_->SetCallForTest(*ending_call);
      watches_->EndCall();
    }
    return ArmAssociation(1, a, POLLIN);
  }
};

TEST_F(LocalWatchesPlacementTest, APlacementLastsOnlyItsCall) {
  EXPECT_EQ(ArmAfterPlacementIn(7), static_cast<uint32_t>(POLLIN))
      << "the association armed as placed in a call after its placement's";
}

// The call counter is 32 bits: when it wraps, every file's placement is
// cleared, so a file placed at call N is not taken as placed at the call
// 2^32 later with the same number.
TEST_F(LocalWatchesPlacementTest, APlacementIsNotTakenAfterTheCallCounterWraps) {
  EXPECT_EQ(ArmAfterPlacementIn(1, 0xffffffffu), static_cast<uint32_t>(POLLIN))
      << "an old call's placement taken for this call's";
}


// An association re-armed in the call that placed its file, with the same
// mask (LocalWatches::ArmOnItsPlacement: no system call, no poll): armed,
// so the placed registration's report is its own. Here its watch was
// disarmed since (as a dissociation leaves it) and the file becomes ready
// after the arm.
TEST_F(LocalWatchesPlacementTest, AnAssociationReArmedOnItsPlacementIsArmed) {
  auto [a, b] = PlacedAssociation();
  watches_->Disarm(1);
  EXPECT_EQ(ArmAssociation(1, a, POLLIN), 0u);
  ASSERT_EQ(write(b, "x", 1), 1);
  const LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u) << "the re-armed association was not armed";
  EXPECT_EQ(ready[0], (std::pair<emul::WatchId, uint32_t>{1, POLLIN}));
}

// Not with another mask than the placement registered: the registration is
// set one-shot with the new one (an EPOLL_CTL_MOD, which links a ready file
// now), or the file's readiness for the new bits would never be reported.
TEST_F(LocalWatchesPlacementTest, AnAssociationReArmedWithAnotherMaskIsRegisteredAgain) {
  const int a = PlacedAssociation().first;
  EXPECT_EQ(ArmAssociation(1, a, POLLOUT), 0u);  // writable: at the look
  const LocalWatches::ReadyList ready = Take();
  ASSERT_EQ(ready.size(), 1u) << "the placement's registration kept its old mask";
  EXPECT_EQ(ready[0], (std::pair<emul::WatchId, uint32_t>{1, POLLOUT}));
}

// Nor on a file with another kind of watch (here a kqueue READ knote's,
// level, armed kNow): its placement says nothing of the association's
// event (FileWithAnotherKindOfWatchIsPlacedByALook), so the report the
// association saw while disarmed is measured (rule 6: fires at once).
TEST_F(LocalWatchesPlacementTest, AnAssociationBesideAKnoteIsNotArmedOnAPlacement) {
  auto [a, b] = EngineModesAndAKnote();
  watches_->Add(2);
  EXPECT_EQ(*watches_->Arm(2, a, POLLIN, nullptr, LocalWatches::kReportedAtLook), 0u);  // the association
  watches_->EndCall();
  ASSERT_EQ(write(b, "x", 1), 1);
  EXPECT_EQ(Take().size(), 2u);
  watches_->EndCall();
  SwitchedOffInTwoCalls();  // left ready: seen by both while disarmed
  EXPECT_TRUE(Take().empty());            // this call's look
  EXPECT_TRUE(watches_->SameFile(a, 2));  // one-shot after the look: placed
  EXPECT_EQ(ArmAssociation(2, a, POLLIN), static_cast<uint32_t>(POLLIN)) << "armed as placed beside a knote";
}

// The masks a placement must carry are the armed watches': an association
// re-armed in its placing call beside another one disarmed since (here for
// POLLOUT, on a writable file) narrows the registration to its own mask, so
// the disarmed one's readiness does not wake the look.
TEST_F(LocalWatchesPlacementTest, AnAssociationReArmedBesideADisarmedOneNarrowsThePlacement) {
  const int a = PlacedAssociation().first;
  watches_->Add(2);
  EXPECT_EQ(ArmAssociation(2, a, POLLOUT), 0u);  // widened: POLLIN | POLLOUT
  EXPECT_TRUE(LoopReady());  // writable
  watches_->Disarm(2);
  watches_->Disarm(1);
  EXPECT_EQ(ArmAssociation(1, a, POLLIN), 0u);
  EXPECT_FALSE(LoopReady()) << "the placement kept a disarmed association's mask";
}

}  // namespace
}  // namespace evshim::shim
