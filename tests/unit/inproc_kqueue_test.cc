// The FreeBSD kqueue library in this very process, served by
// libevshim-engine with no supervisor (fast mode, x86_64), as
// inproc_test.cc does for event ports: what a kevent round allocates.
#include <gtest/gtest.h>

#include <sys/event.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <thread>
#include <vector>

#include "tests/support/counting_new.h"
#include "tests/support/syscall_segments.h"

namespace {

__attribute__((constructor)) void PinFastMode() { setenv("EVSHIM_SUPERVISED", "0", 1); }

// Runs `round` until the engine's reused storage has grown, then counts
// what kRounds more rounds allocate.
template <typename Round>
long AllocationsIn(Round round) {
  for (int i = 0; i < 20; ++i) round();  // capacities reached
  constexpr int kRounds = 100;
  t_news = 0;
  t_count_news = true;
  for (int i = 0; i < kRounds; ++i) round();
  t_count_news = false;
  return t_news;
}

// bench_kqueue loop's round: a kevent without changes that waits and
// returns one READ event (a level knote, delivered and re-queued), then
// the token read and written again.
TEST(InprocKqueueAllocations, ReadEventRoundAllocatesNothing) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct kevent ch;
  EV_SET(&ch, sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  ASSERT_EQ(kevent(kq, &ch, 1, nullptr, 0, nullptr), 0);
  bool ok = true;
  const long news = AllocationsIn([&] {
    ok = ok && write(sv[1], "t", 1) == 1;
    struct kevent out[8];
    ok = ok && kevent(kq, nullptr, 0, out, 8, nullptr) == 1 && out[0].ident == uintptr_t(sv[0]) &&
         out[0].filter == EVFILT_READ && out[0].data == 1;
    char c;
    ok = ok && read(sv[0], &c, 1) == 1;
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(news, 0) << news << " allocations in 100 rounds";
  close(sv[0]);
  close(sv[1]);
  close(kq);
}

// bench_kqueue fdwait's round: EV_ADD|EV_ONESHOT on a ready pipe and the
// wait in one call; the knote is new each time and goes with its event.
TEST(InprocKqueueAllocations, OneshotAddAndWaitAllocatesNothing) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "x", 1), 1);
  bool ok = true;
  const long news = AllocationsIn([&] {
    struct kevent ch, out;
    EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
    ok = ok && kevent(kq, &ch, 1, &out, 1, nullptr) == 1 && out.ident == uintptr_t(p[0]) &&
         out.data == 1;
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(news, 0) << news << " allocations in 100 rounds";
  close(p[0]);
  close(p[1]);
  close(kq);
}

// A READ knote's watch kept for its number's next knote (LinuxHost::kept_:
// an index for small numbers, a map for large ones) serves only the file
// the number names: after a raw dup2 puts an empty pipe at the number
// (the library's dup2 is interposed; the raw call is not: nothing tells
// the engine), the next knote sees that pipe, not the old one.
void KeptWatchFollowsTheFile(int kq, int number) {
  int full[2], empty[2];
  ASSERT_EQ(pipe(full), 0);
  ASSERT_EQ(pipe(empty), 0);
  ASSERT_EQ(dup2(full[0], number), number);
  ASSERT_EQ(write(full[1], "xy", 2), 2);
  const struct timespec zero {};
  for (int i = 0; i < 3; ++i) {  // the watch is kept, then kept registered
    struct kevent ch, out;
    EV_SET(&ch, number, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
    ASSERT_EQ(kevent(kq, &ch, 1, &out, 1, &zero), 1) << number << " round " << i;
    EXPECT_EQ(out.ident, uintptr_t(number));
    EXPECT_EQ(out.data, 2);
  }
  ASSERT_EQ(syscall(SYS_dup2, empty[0], number), number);
  struct kevent ch, out;
  EV_SET(&ch, number, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
  EXPECT_EQ(kevent(kq, &ch, 1, &out, 1, &zero), 0) << number << ": the old pipe's readiness";
  ASSERT_EQ(write(empty[1], "z", 1), 1);
  ASSERT_EQ(kevent(kq, nullptr, 0, &out, 1, &zero), 1) << number;
  EXPECT_EQ(out.ident, uintptr_t(number));
  EXPECT_EQ(out.data, 1);
  close(number);
  for (int fd : {full[0], full[1], empty[0], empty[1]}) close(fd);
}

TEST(InprocKqueueKeptWatch, SmallNumberFollowsTheFile) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  KeptWatchFollowsTheFile(kq, 200);
  close(kq);
}

TEST(InprocKqueueKeptWatch, LargeNumberFollowsTheFile) {
  struct rlimit rl {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  constexpr int kNumber = (1 << 14) + 100;  // past the index (LinuxHost::KeptWatches)
  if (rl.rlim_max <= kNumber) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max;
  if (rl.rlim_cur <= kNumber) {
    rl.rlim_cur = kNumber + 1;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  KeptWatchFollowsTheFile(kq, kNumber);
  close(kq);
}

// A kevent on a kqueue whose knotes no host source feeds (USER and TIMER
// only) makes no look (shim/inproc/engine.cc KeventWithoutLook): the BSDs
// activate a knote when its source fires (knote_activate, OB
// kern_event.c:1732-1739; a NOTE_TRIGGER in filt_usertouch, DF
// kern_event.c:577-609), so nothing a look could find is queued on such a
// kqueue. Segments: the trigger, then the collect, each round.
constexpr int kBudgetRounds = 5;

[[noreturn]] void UserRoundsChild(bool with_pipe) {
  const int kq = kqueue();
  int p[2];
  if (kq < 0 || pipe(p) != 0) _exit(2);
  struct kevent ch[2];
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[1], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);  // never ready
  if (kevent(kq, ch, with_pipe ? 2 : 1, nullptr, 0, nullptr) != 0) _exit(3);
  for (int round = -2; round < kBudgetRounds; ++round) {  // two rounds to warm up
    if (round >= 0) syscall(SYS_getppid);  // marker
    struct kevent trig, out;
    EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
    if (kevent(kq, &trig, 1, nullptr, 0, nullptr) != 0) _exit(4);
    if (round >= 0) syscall(SYS_getppid);  // marker
    if (kevent(kq, nullptr, 0, &out, 1, nullptr) != 1 || out.filter != EVFILT_USER) _exit(5);
  }
  syscall(SYS_getppid);
  _exit(0);
}

int Looks(const std::map<long, int>& seg) {
  int n = 0;
  for (long nr : {SYS_epoll_wait, SYS_epoll_pwait, SYS_poll, SYS_ppoll}) n += seg.count(nr) ? seg.at(nr) : 0;
  return n;
}

TEST(InprocKqueueBudget, UserEventOnAKqueueWithoutHostSourcesLooksAtNothing) {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { UserRoundsChild(false); }, &segments));
  ASSERT_EQ(segments.size(), 2u * kBudgetRounds + 1);
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    EXPECT_EQ(Looks(segments[i]), 0) << "segment " << i << evshim::testing::Describe(segments[i]);
  }
}

// The same kqueue with a READ knote on a pipe: the look stays (a file that
// became ready before the trigger is queued ahead of it).
TEST(InprocKqueueBudget, UserEventOnAKqueueWithAReadKnoteStillLooks) {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { UserRoundsChild(true); }, &segments));
  ASSERT_EQ(segments.size(), 2u * kBudgetRounds + 1);
  for (size_t i = 0; i + 1 < segments.size(); i += 2) {
    EXPECT_GE(Looks(segments[i]), 1) << "round " << i / 2 << evshim::testing::Describe(segments[i]);
  }
}

// Without the look, a timer that expired before a NOTE_TRIGGER is still
// queued ahead of it (its callout ran first: filt_timerexpire activates it
// then; the engine catches due deadlines up by the clock), and a READ
// knote added later to such a kqueue is measured at its registration.
TEST(InprocKqueue, UserOnlyKqueueKeepsTheOrderOfATimerDueBeforeTheTrigger) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  struct kevent ch[2];
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[1], 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, nullptr);  // 1 ms
  ASSERT_EQ(kevent(kq, ch, 2, nullptr, 0, nullptr), 0);
  const struct timespec ten_ms {0, 10 * 1000 * 1000};
  nanosleep(&ten_ms, nullptr);
  struct kevent trig, out[4];
  EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
  ASSERT_EQ(kevent(kq, &trig, 1, nullptr, 0, nullptr), 0);
  ASSERT_EQ(kevent(kq, nullptr, 0, out, 4, nullptr), 2);
  EXPECT_EQ(out[0].filter, EVFILT_TIMER);
  EXPECT_EQ(out[0].ident, 7u);
  EXPECT_EQ(out[1].filter, EVFILT_USER);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "xyz", 3), 3);
  EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  const struct timespec zero {};
  ASSERT_EQ(kevent(kq, ch, 1, out, 4, &zero), 1);
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[0].data, 3);
  close(p[0]);
  close(p[1]);
  close(kq);
}

// A kevent that waits on such a kqueue, with no look before it, is still
// answered by its timer when it expires and by a NOTE_TRIGGER from
// another thread.
TEST(InprocKqueue, WaitOnAUserOnlyKqueueEndsAtItsTimerAndAtATrigger) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  struct kevent ch[2], out;
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[1], 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 20, nullptr);  // 20 ms
  ASSERT_EQ(kevent(kq, ch, 2, nullptr, 0, nullptr), 0);
  ASSERT_EQ(kevent(kq, nullptr, 0, &out, 1, nullptr), 1);  // waits for the timer
  EXPECT_EQ(out.filter, EVFILT_TIMER);
  std::thread trigger([kq] {
    const struct timespec ten_ms {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, nullptr);
    struct kevent trig;
    EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
    EXPECT_EQ(kevent(kq, &trig, 1, nullptr, 0, nullptr), 0);
  });
  ASSERT_EQ(kevent(kq, nullptr, 0, &out, 1, nullptr), 1);  // waits for the trigger
  EXPECT_EQ(out.filter, EVFILT_USER);
  trigger.join();
  close(kq);
}

}  // namespace
