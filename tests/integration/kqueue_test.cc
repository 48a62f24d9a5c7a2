// kqueue programs under the real supervisor: the same scenario source
// (testbins/kq_scenarios.c) compiled against each personality's header and
// library, with real processes and descriptors.
#include <gtest/gtest.h>

#include <string>
#include <tuple>

#include "tests/support/run.h"

namespace {

using evshim::testing::RunCommand;
using evshim::testing::RunResult;

const std::string kEvshim = EVSHIM_BIN;

std::string Binary(const std::string& personality) {
  return std::string(TESTBIN_DIR) + "/kq_scenarios_" + personality;
}

class KqueueScenario
    : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(KqueueScenario, PassesUnderEvshimRun) {
  auto [personality, scenario] = GetParam();
  RunResult r = RunCommand({kEvshim, "run", "--", Binary(personality), scenario}, 30);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
}

INSTANTIATE_TEST_SUITE_P(
    Kqueue, KqueueScenario,
    ::testing::Combine(::testing::Values("freebsd", "openbsd", "dragonfly"),
                       ::testing::Values("user_pollable", "pipe_read", "socket_eof", "timer",
                                         "timeout", "close_drops", "fork_ebadf", "eintr",
                                         "two_waiters", "kq_in_kq", "errors", "kqueue_flags")),
    [](const auto& p) {
      return std::string(std::get<0>(p.param)) + "_" + std::get<1>(p.param);
    });

// Without a supervisor the foreign calls are unknown system calls: the
// scenarios must fail, so they test evshim and not something else.
TEST(KqueueScenarioControl, FailsWithoutEvshim) {
  for (const char* p : {"freebsd", "openbsd", "dragonfly"}) {
    RunResult r = RunCommand({Binary(p), "user_pollable"}, 10);
    EXPECT_NE(r.status, 0) << p;
  }
}

}  // namespace
