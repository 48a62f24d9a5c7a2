// (3) The raw-ABI program (testbins/raw_portfs.c) under the real supervisor:
// hand-built LP64 structs and the `syscall` instruction, no API library.
#include <gtest/gtest.h>

#include <string>

#include "tests/support/run.h"

namespace {

using evshim::testing::RunCommand;
using evshim::testing::RunResult;

const std::string kEvshim = EVSHIM_BIN;
const std::string kRawPortfs = std::string(TESTBIN_DIR) + "/raw_portfs";

TEST(RawPortfs, EveryByteUnderEvshimRun) {
  RunResult r = RunCommand({kEvshim, "run", "--", kRawPortfs}, 60);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
  EXPECT_NE(r.out.find("raw_portfs: ok"), std::string::npos) << r.out;
}

// The same raw calls on a port made by the library (raw_portfs_lib). In
// the default mode the port is the in-process engine's, and each raw call
// reaches it through the trap (SECCOMP_RET_TRAP + the engine's SIGSYS
// handler; docs/design.md "Raw foreign calls in fast mode: the trap"); in
// the supervised pass the supervisor answers. Same bytes either way.
// Without the trap, fast mode answers EBADFD: 149 of 451 checks failed.
TEST(RawPortfs, EveryByteOnALibraryPortUnderEvshimRun) {
  RunResult r = RunCommand({kEvshim, "run", "--", std::string(TESTBIN_DIR) + "/raw_portfs_lib"}, 60);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
  EXPECT_NE(r.out.find("raw_portfs: ok"), std::string::npos) << r.out;
}

// Control: without the supervisor 182 is Linux's unimplemented putpmsg.
TEST(RawPortfs, FailsWithoutEvshim) {
  RunResult r = RunCommand({kRawPortfs}, 10);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("not under evshim"), std::string::npos) << r.err;
}

}  // namespace

namespace {

// The BSD personalities' raw ABI (testbins/raw_kevent.c): hand-built LP64
// struct kevent, the relocated numbers, every byte written back.
class RawKevent : public ::testing::TestWithParam<const char*> {};

TEST_P(RawKevent, EveryByteUnderEvshimRun) {
  const std::string bin = std::string(TESTBIN_DIR) + "/raw_kevent";
  RunResult r = RunCommand({kEvshim, "run", "--", bin, GetParam()}, 60);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
  EXPECT_NE(r.out.find(": ok"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Bsd, RawKevent, ::testing::Values("freebsd", "openbsd", "dragonfly"));

// The same raw calls on a kqueue made by the personality's library
// (raw_kevent_lib_*): served by the trap in the default mode (without it:
// 70 of 332 checks failed on FreeBSD), by the supervisor in the other.
class RawKeventOnLibraryKqueue : public ::testing::TestWithParam<const char*> {};

TEST_P(RawKeventOnLibraryKqueue, EveryByteUnderEvshimRun) {
  const std::string bin = std::string(TESTBIN_DIR) + "/raw_kevent_lib_" + GetParam();
  RunResult r = RunCommand({kEvshim, "run", "--", bin, GetParam()}, 60);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
  EXPECT_NE(r.out.find(": ok"), std::string::npos) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Bsd, RawKeventOnLibraryKqueue, ::testing::Values("freebsd", "openbsd", "dragonfly"));

}  // namespace
