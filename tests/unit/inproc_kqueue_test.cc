// The FreeBSD kqueue library in this very process, served by
// libevshim-engine with no supervisor (fast mode, x86_64), as
// inproc_test.cc does for event ports: what a kevent round allocates.
#include <gtest/gtest.h>

#include <sys/event.h>
#include <sys/socket.h>
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

}  // namespace
