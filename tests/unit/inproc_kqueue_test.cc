// The FreeBSD kqueue library in this very process, served by
// libevshim-engine with no supervisor (fast mode, x86_64), as
// inproc_test.cc does for event ports: what a kevent round allocates.
#include <gtest/gtest.h>

#include <sys/event.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdlib>

#include "tests/support/counting_new.h"

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

}  // namespace
