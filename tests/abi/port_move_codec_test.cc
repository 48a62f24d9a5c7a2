// The evshim-private PORT_EVSHIM_ADOPT call (abi/illumos/port_move.h): the
// record's codec, and the handler with bad input from the caller's memory.
// Every size and pointer is the program's: a wrong one is EINVAL or EFAULT,
// never a crash, and nothing is read or allocated beyond the bound.
#include <gtest/gtest.h>

#include <linux/audit.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "abi/common/wire.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/port_move.h"
#include "tests/abi/fake_context.h"

namespace evshim::abi::illumos {
namespace {

using emul::PortState;
using testing::FakeCallContext;
using testing::FakeHost;
using testing::SyntheticNotif;

constexpr int kPortfs64 = 182, kPortfs32 = 1000;
constexpr uint64_t kBuf = 0x10000;
constexpr uint32_t kAdopt = PORT_EVSHIM_ADOPT | PORT_SYS_NOPORT;

PortState Sample() {
  PortState s;
  s.max_events = 16;
  s.had_fd_assoc = true;
  s.had_file_source = true;
  s.alert = true;
  s.alert_events = 9;
  s.alert_user = 0x900;
  s.assocs = {PortState::Assoc{7, 0x1, 0xa, false}, PortState::Assoc{8, 0x4, 0xb, true}};
  s.timers = {PortState::Timer{2, true, emul::timer_abi::kClockHighres, emul::timer_abi::kSigevPort, 0x71, 3, 0,
                               123456789, 1000},
              PortState::Timer{5, false, emul::timer_abi::kClockRealtime, emul::timer_abi::kSigevPort, 0x75, 0, 0,
                               0, 0}};
  s.queue = {PortState::Event{PortState::EventKind::kPlain, 0, {3, 1, 0, 0x1}, false},
             PortState::Event{PortState::EventKind::kFd, 0, {4, 0x1, 7, 0xa}, false},
             PortState::Event{PortState::EventKind::kTimer, 0, {2, 0, 2, 0x71}, false},
             PortState::Event{PortState::EventKind::kPlain, 0, {1, 2, 0xdead, 0x2}, true}};
  return s;
}

TEST(PortMoveCodec, RoundTripsEveryField) {
  PortState s = Sample();
  std::vector<std::byte> bytes = EncodePortState(s);
  EXPECT_EQ(bytes.size(), kPortStateHeader + 2 * kPortStateAssoc + 2 * kPortStateTimer + 4 * kPortStateEvent);
  emul::Result<PortState> back = DecodePortState(bytes);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, s);
}

TEST(PortMoveCodec, MalformedRecordsAreEinval) {
  const std::vector<std::byte> good = EncodePortState(Sample());
  auto expect_einval = [](std::vector<std::byte> b, const char* what) {
    emul::Result<PortState> r = DecodePortState(b);
    ASSERT_FALSE(r.ok()) << what;
    EXPECT_EQ(r.error().value, EINVAL) << what;
  };
  auto patch = [&](size_t at, uint32_t v) {
    std::vector<std::byte> b = good;
    std::memcpy(b.data() + at, &v, sizeof v);
    return b;
  };
  expect_einval(std::vector<std::byte>(good.begin(), good.begin() + 47), "short header");
  expect_einval(patch(0, 0x12345678), "magic");
  expect_einval(patch(4, 2), "version");
  expect_einval(patch(12, 8), "unknown flag");
  expect_einval(patch(40, 1), "reserved");
  expect_einval(std::vector<std::byte>(good.begin(), good.end() - 1), "size below the counts");
  std::vector<std::byte> longer = good;
  longer.push_back(std::byte{0});
  expect_einval(longer, "size beyond the counts");
  expect_einval(patch(20, 0xffffffff), "counts beyond kMaxPortStateBytes");
  const size_t assoc0 = kPortStateHeader, timer0 = assoc0 + 2 * kPortStateAssoc;
  const size_t event0 = timer0 + 2 * kPortStateTimer;
  expect_einval(patch(assoc0 + 16, 2), "active is 0 or 1");
  expect_einval(patch(assoc0 + 20, 1), "assoc padding");
  expect_einval(patch(timer0 + 28, 2), "unknown timer flag");
  expect_einval(patch(event0, 3), "event kind");
  expect_einval(patch(event0, 0x0200), "owner_only is 0 or 1");
  expect_einval(patch(event0 + 12, 1), "event padding");
}

class AdoptCall : public ::testing::Test {
 protected:
  std::optional<Outcome> Adopt(uint64_t addr, uint64_t size, uint32_t arch = AUDIT_ARCH_X86_64) {
    const int nr = arch == AUDIT_ARCH_I386 ? kPortfs32 : kPortfs64;
    return testing::Dispatch(ctx_, SyntheticNotif{arch, nr, {kAdopt, addr, size, 0, 0, 0}});
  }
  void Put(const std::vector<std::byte>& bytes) {
    ctx_.mem().Map(kBuf, bytes.size());
    std::memcpy(ctx_.mem().Region(kBuf).data(), bytes.data(), bytes.size());
  }
  static void ExpectError(const std::optional<Outcome>& o, int err) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->kind, Outcome::Kind::kError);
    EXPECT_EQ(o->error, err);
  }
  FakeCallContext ctx_;
};

// A valid state from the caller: a new port descriptor (close-on-exec: the
// engine puts the port at its own numbers), with the state's events.
TEST_F(AdoptCall, ValidStateIsANewPort) {
  FakeHost::FileRef f = ctx_.host().NewFile();
  ctx_.host().Open(FakeCallContext::kCaller.pid, 7, f);
  PortState s;
  s.max_events = 8;
  s.assocs = {PortState::Assoc{7, 0x1, 0xa, false}};
  s.queue = {PortState::Event{PortState::EventKind::kPlain, 0, {3, 1, 0, 0x1}, false},
             PortState::Event{PortState::EventKind::kFd, 0, {4, 0x1, 7, 0xa}, false}};
  std::vector<std::byte> bytes = EncodePortState(s);
  Put(bytes);
  std::optional<Outcome> o = Adopt(kBuf, bytes.size());
  ASSERT_TRUE(o.has_value());
  ASSERT_EQ(o->kind, Outcome::Kind::kNewObject);
  EXPECT_EQ(o->object_kind, ObjectKind::kPort);
  EXPECT_TRUE(o->cloexec);
  EXPECT_EQ(ctx_.ports().QueuedCount(o->object), 2u);
  EXPECT_EQ(ctx_.ports().AssociationCount(o->object), 1u);
  // ILP32: the same record (fixed layout), the pointer is 32 bits.
  std::optional<Outcome> o32 = Adopt(0xffffffff00000000ULL | kBuf, bytes.size(), AUDIT_ARCH_I386);
  ASSERT_TRUE(o32.has_value());
  EXPECT_EQ(o32->kind, Outcome::Kind::kNewObject);
}

TEST_F(AdoptCall, BadSizesAreEinvalBeforeAnyRead) {
  const std::vector<std::byte> bytes = EncodePortState(Sample());
  Put(bytes);
  ExpectError(Adopt(kBuf, 0), EINVAL);
  ExpectError(Adopt(kBuf, kPortStateHeader - 1), EINVAL);
  ExpectError(Adopt(kBuf, kMaxPortStateBytes + 1), EINVAL);
  ExpectError(Adopt(kBuf, ~0ULL), EINVAL);
  EXPECT_EQ(ctx_.mem().reads, 0);
  ExpectError(Adopt(kBuf, bytes.size() - 1), EINVAL);  // not the size the header announces
  ExpectError(Adopt(kBuf, bytes.size() + 1), EINVAL);
  EXPECT_EQ(ctx_.ports().port_count(), 0u);
}

TEST_F(AdoptCall, UnreadableMemoryIsEfault) {
  const std::vector<std::byte> bytes = EncodePortState(Sample());
  ExpectError(Adopt(0, bytes.size()), EFAULT);
  ExpectError(Adopt(kBuf, bytes.size()), EFAULT);
  // The header is readable, the records are not.
  ctx_.mem().Map(kBuf, kPortStateHeader);
  std::memcpy(ctx_.mem().Region(kBuf).data(), bytes.data(), kPortStateHeader);
  ExpectError(Adopt(kBuf, bytes.size()), EFAULT);
  ExpectError(Adopt(~0ULL - 8, bytes.size()), EFAULT);
  EXPECT_EQ(ctx_.ports().port_count(), 0u);
}

// Counts that promise a huge record are refused from the header alone.
TEST_F(AdoptCall, HugeCountsAreEinvalWithoutReadingThem) {
  std::vector<std::byte> header = EncodePortState(PortState{});
  ByteWriter w(header);
  w.Put<uint32_t>(36, 0x00ffffff);  // 16M events
  Put(header);
  ExpectError(Adopt(kBuf, kMaxPortStateBytes), EINVAL);
  EXPECT_EQ(ctx_.mem().reads, 1);
}

// A well-formed record of a state no port could be in: the engine's EINVAL.
TEST_F(AdoptCall, InconsistentStateIsEinval) {
  PortState s = Sample();
  s.max_events = 0;
  std::vector<std::byte> bytes = EncodePortState(s);
  Put(bytes);
  ExpectError(Adopt(kBuf, bytes.size()), EINVAL);
  EXPECT_EQ(ctx_.ports().port_count(), 0u);
}

}  // namespace
}  // namespace evshim::abi::illumos
