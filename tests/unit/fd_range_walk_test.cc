// The walk a foreign library makes before close_range/closefrom
// (shim/foreign/fd_range_walk.h): the hinted numbers of the range from the
// bitmap, and, once the "high" flag is set, the open numbers beyond the
// bitmap from /proc/self/fd, whatever the range's size. The libraries'
// bitmap has 65536 bits, beyond what RLIMIT_NOFILE lets a test open on most
// machines, so the walk is driven here with a 128-bit one.
#include "shim/foreign/fd_range_walk.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <vector>

namespace {

std::vector<int> g_reported;
void Record(int fd) { g_reported.push_back(fd); }

constexpr unsigned kBits = 128;

std::vector<int> Walk(const unsigned long* hint, int high, unsigned first, unsigned last) {
  g_reported.clear();
  fd_walk_each_hinted(hint, kBits, &high, first, last, Record);
  return g_reported;
}

void Set(unsigned long* hint, unsigned fd) { hint[fd / FD_WALK_WORD_BITS] |= 1ul << (fd % FD_WALK_WORD_BITS); }

TEST(FdRangeWalk, ReportsTheHintedNumbersOfTheRangeOnly) {
  unsigned long hint[kBits / FD_WALK_WORD_BITS] = {};
  for (unsigned fd : {0u, 5u, 63u, 64u, 100u, 127u}) Set(hint, fd);
  EXPECT_EQ(Walk(hint, 0, 5, 100), (std::vector<int>{5, 63, 64, 100}));
  EXPECT_EQ(Walk(hint, 0, 6, 99), (std::vector<int>{63, 64}));
  EXPECT_EQ(Walk(hint, 0, 64, 64), (std::vector<int>{64}));
  EXPECT_EQ(Walk(hint, 0, 65, 99), (std::vector<int>{}));
  EXPECT_EQ(Walk(hint, 0, 0, ~0u), (std::vector<int>{0, 5, 63, 64, 100, 127}));
  EXPECT_EQ(Walk(hint, 0, 101, 5), (std::vector<int>{}));  // first > last: EINVAL, nothing closed
  EXPECT_EQ(Walk(hint, 0, 200, ~0u), (std::vector<int>{}));  // beyond the bitmap, no high flag
}

// Beyond the bitmap with the high flag: exactly the open numbers of the
// range (not the walk's own /proc descriptor), however large the range.
TEST(FdRangeWalk, BeyondTheBitmapReportsTheOpenNumbers) {
  unsigned long hint[kBits / FD_WALK_WORD_BITS] = {};
  Set(hint, 100);
  const int a = fcntl(0, F_DUPFD, 3000), b = fcntl(0, F_DUPFD, 3500);
  ASSERT_GE(a, 3000);
  ASSERT_GE(b, 3500);
  // Nothing else of the test's is open up there.
  for (int fd = 2500; fd < 4000; fd++) {
    if (fd != a && fd != b) {
      ASSERT_EQ(fcntl(fd, F_GETFD), -1) << fd;
    }
  }
  EXPECT_EQ(Walk(hint, 1, 2500, ~0u).size(), 2u);
  std::vector<int> got = Walk(hint, 1, 2500, ~0u);
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, (std::vector<int>{a, b}));
  EXPECT_EQ(Walk(hint, 1, static_cast<unsigned>(a) + 1, ~0u), (std::vector<int>{b}));
  EXPECT_EQ(Walk(hint, 1, 2500, static_cast<unsigned>(b) - 1), (std::vector<int>{a}));
  // From inside the bitmap: its hinted numbers, then the open ones beyond
  // it (here 0-2 and the test's own descriptors too, all >= 128 only).
  got = Walk(hint, 1, 100, static_cast<unsigned>(b));
  ASSERT_FALSE(got.empty());
  EXPECT_EQ(got[0], 100);
  for (size_t i = 1; i < got.size(); i++) {
    EXPECT_GE(got[i], static_cast<int>(kBits));
    EXPECT_GE(fcntl(got[i], F_GETFD), 0) << got[i];
  }
  // The whole unsigned range costs a directory read, not 2^32 steps.
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 100; i++) (void)Walk(hint, 1, kBits, ~0u);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  close(a);
  close(b);
  EXPECT_EQ(Walk(hint, 1, 2500, ~0u), (std::vector<int>{}));
}

}  // namespace
