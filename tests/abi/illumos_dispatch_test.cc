// (4) ILP32 dispatch: synthetic AUDIT_ARCH_I386 notifications for every
// portfs opcode go through the syscall table to the real handler
// (abi::illumos::SysPortfs) with a fake 32-bit guest memory and a real event
// port engine. The bytes written to guest memory are checked exactly: a
// port_event32_t is 16 bytes, a timespec32_t is 8, and junk in the upper 32
// bits of every register is ignored. A few LP64 twins show the difference.
#include <gtest/gtest.h>

#include <linux/audit.h>

#include <cerrno>
#include <vector>

#include "abi/common/wire.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/portfs.h"
#include "abi/syscall_table.h"
#include "tests/abi/fake_context.h"

namespace evshim::abi::illumos {
namespace {

using testing::FakeCallContext;
using testing::SyntheticNotif;

constexpr int kPortfs32 = 1000;  // i386: relocated (182 is chown)
constexpr int kPortfs64 = 182;   // x86_64: illumos's own number (putpmsg, never implemented)
constexpr int kPortFd = 5;
constexpr std::byte kFill{0xa5};

// A 32-bit register value as the kernel might hand it to us with garbage above.
constexpr uint64_t J(uint32_t v) { return 0x5a5a5a5a00000000ULL | v; }

std::vector<std::byte> Bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

std::vector<std::byte> Slice(const std::vector<std::byte>& v, size_t off, size_t n) {
  return {v.begin() + static_cast<ptrdiff_t>(off), v.begin() + static_cast<ptrdiff_t>(off + n)};
}

class Ilp32Dispatch : public ::testing::Test {
 protected:
  Ilp32Dispatch() {
    std::optional<Outcome> o = Call32({J(PORT_CREATE | PORT_SYS_NOPORT), J(0), J(0), J(0), J(0), J(0)});
    EXPECT_TRUE(o && o->kind == Outcome::Kind::kNewObject && o->object_kind == ObjectKind::kPort);
    port_ = o->object;
    ctx_.Install(kPortFd, ObjectKind::kPort, port_);
  }

  std::optional<Outcome> Call(uint32_t arch, int nr, std::array<uint64_t, 6> args) {
    return testing::Dispatch(ctx_, SyntheticNotif{arch, nr, args});
  }
  std::optional<Outcome> Call32(std::array<uint64_t, 6> args) {
    return Call(AUDIT_ARCH_I386, kPortfs32, args);
  }
  std::optional<Outcome> Call64(std::array<uint64_t, 6> args) {
    return Call(AUDIT_ARCH_X86_64, kPortfs64, args);
  }
  // The answer of a deferred call (a retrieval), once it was given.
  std::optional<Outcome> Answer() {
    if (!ctx_.last_responder) return std::nullopt;
    return ctx_.last_responder->outcome;
  }
  static void ExpectValue(const std::optional<Outcome>& o, int64_t v) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->kind, Outcome::Kind::kValue);
    EXPECT_EQ(o->value, v) << std::hex << o->value;
  }
  static void ExpectError(const std::optional<Outcome>& o, int e) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->kind, Outcome::Kind::kError);
    EXPECT_EQ(o->error, e);
  }
  static void ExpectDeferred(const std::optional<Outcome>& o) {
    ASSERT_TRUE(o.has_value());
    EXPECT_EQ(o->kind, Outcome::Kind::kDeferred);
  }

  FakeCallContext ctx_;
  emul::ObjectId port_ = 0;
};

TEST_F(Ilp32Dispatch, NumbersSelectTheHandler) {
  const SyscallEntry* e = FindSyscall(DataModel::kIlp32, kPortfs32);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->handler, &SysPortfs);
  EXPECT_EQ(FindSyscall(DataModel::kIlp32, 182), nullptr);  // i386 chown stays chown
  EXPECT_EQ(FindSyscall(DataModel::kLp64, kPortfs64)->handler, &SysPortfs);
}

TEST_F(Ilp32Dispatch, CreateWithoutNoportIsEbadf) {
  // PORT_CREATE without PORT_SYS_NOPORT reads a0 as a port: EBADF (port.c:588).
  ExpectError(Call32({J(PORT_CREATE), J(77), 0, 0, 0, 0}), EBADF);
  // ...and EINVAL on a real port (the opcode is unknown there).
  ExpectError(Call32({J(PORT_CREATE), J(kPortFd), 0, 0, 0, 0}), EINVAL);
}

TEST_F(Ilp32Dispatch, SendThenGetWrites16Bytes) {
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(0x2a), J(0x0804a000), 0, 0}), 0);
  ctx_.mem().Map(0x10000, 32, kFill);
  // port_get(port, pe, NULL): a2/a3 are the by-value timeout, a4 the "has a timeout" flag.
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), J(0), J(0), J(0)}));
  ExpectValue(Answer(), 0);
  const auto& m = ctx_.mem().Region(0x10000);
  EXPECT_EQ(Slice(m, 0, 16), Bytes({0x2a, 0, 0, 0,  3, 0,  0, 0,  0, 0, 0, 0,  0x00, 0xa0, 0x04, 0x08}));
  EXPECT_EQ(Slice(m, 16, 16), std::vector<std::byte>(16, kFill));  // nothing past port_event32_t
  ASSERT_EQ(ctx_.mem().writes.size(), 1u);
  EXPECT_EQ(ctx_.mem().writes[0].size, 16u);
}

// A transport that AnswersInCall (the in-process engine) gets a retrieval
// answered at once as the handler's own outcome, with the same bytes and
// no responder taken; one that waits takes the transport's responder when
// it parks, and is answered through it (abi/common/call.h AnswerTo).
TEST_F(Ilp32Dispatch, RetrievalAnsweredInTheCallIsTheHandlersOutcome) {
  ctx_.answers_in_call = true;
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(0x2a), J(0x0804a000), 0, 0}), 0);
  ctx_.mem().Map(0x10000, 32, kFill);
  ExpectValue(Call32({J(PORT_GET), J(kPortFd), J(0x10000), J(0), J(0), J(0)}), 0);
  EXPECT_EQ(ctx_.last_responder, nullptr) << "a responder was taken for an answer at once";
  EXPECT_EQ(Slice(ctx_.mem().Region(0x10000), 0, 16),
            Bytes({0x2a, 0, 0, 0,  3, 0,  0, 0,  0, 0, 0, 0,  0x00, 0xa0, 0x04, 0x08}));
  // An error answered by the core at once is the outcome too (rule 21's
  // timeout check: a negative tv_sec, nothing queued).
  ExpectError(Call32({J(PORT_GET), J(kPortFd), J(0x10000), J(0xffffffff), J(0), J(1)}), EINVAL);
  EXPECT_EQ(ctx_.last_responder, nullptr);
  // Nothing queued, no timeout: parked, answered through the responder.
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), J(0), J(0), J(0)}));
  ASSERT_NE(ctx_.last_responder, nullptr);
  EXPECT_TRUE(ctx_.parked.has_value());
  EXPECT_TRUE(ctx_.last_responder->pending);
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(0x2b), J(0x0804b000), 0, 0}), 0);
  ExpectValue(Answer(), 0);
  EXPECT_EQ(Slice(ctx_.mem().Region(0x10000), 0, 16),
            Bytes({0x2b, 0, 0, 0,  3, 0,  0, 0,  0, 0, 0, 0,  0x00, 0xb0, 0x04, 0x08}));
}

TEST_F(Ilp32Dispatch, GetTimeoutIsSignExtended) {
  // portfs32 sign-extends the by-value timeout (port.c:529-547): a tv_sec of
  // 0xffffffff is -1, which is EINVAL when the call has to wait.
  ctx_.mem().Map(0x10000, 16);
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), J(0xffffffff), J(0), J(1)}));
  ExpectError(Answer(), EINVAL);
  // The same registers from an LP64 process mean 4294967295 s: it waits.
  ExpectDeferred(Call64({PORT_GET, kPortFd, 0x10000, 0xffffffffULL, 0, 1}));
  EXPECT_TRUE(ctx_.last_responder->pending) << "LP64 answered at once";
}

TEST_F(Ilp32Dispatch, GetnReadsTimespec32AndEncodesEtime) {
  // timespec32_t {0, 5 ms} in the last 8 bytes of a mapping: reading 16
  // would fault, so this also shows only 8 bytes are read.
  ctx_.mem().Map(0x20000, 8);
  ctx_.mem().Region(0x20000) = Bytes({0, 0, 0, 0, 0x40, 0x4b, 0x4c, 0x00});
  ctx_.mem().Map(0x30000, 3 * 16 + 8, kFill);
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(1), J(0x111), 0, 0}), 0);
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(2), J(0x222), 0, 0}), 0);
  // port_getn(port, list, max 3, *nget 3, &ts): two events, then the timeout.
  ExpectDeferred(Call32({J(PORT_GETN), J(kPortFd), J(0x30000), J(3), J(3), J(0x20000)}));
  EXPECT_TRUE(ctx_.last_responder->pending);
  EXPECT_TRUE(ctx_.parked.has_value());
  ctx_.Expire(4'000'000);
  EXPECT_TRUE(ctx_.last_responder->pending);
  ctx_.Expire(1'000'000);
  ExpectValue(Answer(), 0x40000002);  // count 2 | ILP32 ETIME bit
  // Rule 22: the timeout is read, never written back (P:1287-1292).
  for (const auto& w : ctx_.mem().writes) EXPECT_NE(w.addr, 0x20000u);
  EXPECT_EQ(ctx_.mem().Region(0x20000), Bytes({0, 0, 0, 0, 0x40, 0x4b, 0x4c, 0x00}));
  const auto& m = ctx_.mem().Region(0x30000);
  EXPECT_EQ(Slice(m, 0, 32), Bytes({1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x01, 0, 0,
                                    2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0x22, 0x02, 0, 0}));
  EXPECT_EQ(Slice(m, 32, 24), std::vector<std::byte>(24, kFill));
}

TEST_F(Ilp32Dispatch, GetnLp64TwinEncodesRvals) {
  ctx_.mem().Map(0x20000, 16);  // timespec_t {0, 5 ms}
  ctx_.mem().Region(0x20000) = Bytes({0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0x4b, 0x4c, 0, 0, 0, 0, 0});
  ctx_.mem().Map(0x30000, 3 * 24, kFill);
  ExpectValue(Call64({PORT_SEND, kPortFd, 1, 0xaaaabbbbccccddddULL, 0, 0}), 0);
  ExpectDeferred(Call64({PORT_GETN, kPortFd, 0x30000, 3, 2, 0x20000}));
  ctx_.Expire(5'000'000);
  ExpectValue(Answer(), 0x0000003e00000001LL);  // r_val1 = 1, r_val2 = ETIME
  const auto& m = ctx_.mem().Region(0x30000);
  EXPECT_EQ(Slice(m, 0, 24), Bytes({1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                    0xdd, 0xdd, 0xcc, 0xcc, 0xbb, 0xbb, 0xaa, 0xaa}));
  EXPECT_EQ(Slice(m, 24, 48), std::vector<std::byte>(48, kFill));
}

// Rule 22 (P:1798-1800): a negative or out-of-range timeout is EINVAL.
TEST_F(Ilp32Dispatch, GetnTimespecNegativeIsEinval) {
  ctx_.mem().Map(0x20000, 8);
  ctx_.mem().Region(0x20000) = Bytes({0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0});  // tv_sec = -1
  ctx_.mem().Map(0x30000, 16);
  ExpectDeferred(Call32({J(PORT_GETN), J(kPortFd), J(0x30000), J(1), J(1), J(0x20000)}));
  ExpectError(Answer(), EINVAL);
}

TEST_F(Ilp32Dispatch, GetnCountOnlyWithMaxZero) {
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(1), 0, 0, 0}), 0);
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(2), 0, 0, 0}), 0);
  ExpectDeferred(Call32({J(PORT_GETN), J(kPortFd), J(0), J(0), J(0), J(0)}));
  ExpectValue(Answer(), 2);
  EXPECT_TRUE(ctx_.mem().writes.empty());
}

TEST_F(Ilp32Dispatch, AssociateFdTranslatesPollBitsBothWays) {
  auto file = ctx_.host().NewFile();
  ctx_.host().Open(FakeCallContext::kCaller.pid, 7, file);
  // object is a uintptr_t (32 bits here); events are illumos POLLOUT|POLLWRBAND.
  ExpectValue(Call32({J(PORT_ASSOCIATE), J(kPortFd), J(PORT_SOURCE_FD), J(7), J(0x104), J(0xc0ffee)}), 0);
  using namespace emul::poll_bits;
  ctx_.Ready(file, kOut | kWrNorm | kWrBand);
  ctx_.mem().Map(0x10000, 16);
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), 0, 0, 0}));
  ExpectValue(Answer(), 0);
  EXPECT_EQ(ctx_.mem().Region(0x10000),
            Bytes({0x04, 0x01, 0, 0, 4, 0, 0, 0, 7, 0, 0, 0, 0xee, 0xff, 0xc0, 0}));
}

TEST_F(Ilp32Dispatch, IllumosWrbandIsNotLinuxWrnorm) {
  // illumos 0x100 asks for POLLWRBAND: a pipe's POLLOUT|POLLWRNORM must not fire it.
  auto file = ctx_.host().NewFile();
  ctx_.host().Open(FakeCallContext::kCaller.pid, 8, file);
  ExpectValue(Call32({J(PORT_ASSOCIATE), J(kPortFd), J(PORT_SOURCE_FD), J(8), J(0x100), 0}), 0);
  ctx_.Ready(file, emul::poll_bits::kOut | emul::poll_bits::kWrNorm);
  EXPECT_EQ(ctx_.ports().QueuedCount(port_), 0u);
  // illumos POLLRDHUP (0x4000) is Linux 0x2000.
  auto sock = ctx_.host().NewFile();
  ctx_.host().Open(FakeCallContext::kCaller.pid, 9, sock);
  ExpectValue(Call32({J(PORT_ASSOCIATE), J(kPortFd), J(PORT_SOURCE_FD), J(9), J(0x4000), J(0x99)}), 0);
  ctx_.Ready(sock, emul::poll_bits::kIn | emul::poll_bits::kRdHup);
  ctx_.mem().Map(0x10000, 16);
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), 0, 0, 0}));
  ExpectValue(Answer(), 0);
  EXPECT_EQ(ctx_.mem().Region(0x10000),
            Bytes({0x00, 0x40, 0, 0, 4, 0, 0, 0, 9, 0, 0, 0, 0x99, 0, 0, 0}));
}

TEST_F(Ilp32Dispatch, DissociateAndBadSources) {
  auto file = ctx_.host().NewFile();
  ctx_.host().Open(FakeCallContext::kCaller.pid, 7, file);
  ExpectValue(Call32({J(PORT_ASSOCIATE), J(kPortFd), J(PORT_SOURCE_FD), J(7), J(1), 0}), 0);
  EXPECT_EQ(ctx_.ports().AssociationCount(port_), 1u);
  ExpectValue(Call32({J(PORT_DISSOCIATE), J(kPortFd), J(PORT_SOURCE_FD), J(7), J(0xffffffff), J(0xffffffff)}), 0);
  EXPECT_EQ(ctx_.ports().AssociationCount(port_), 0u);
  ExpectError(Call32({J(PORT_DISSOCIATE), J(kPortFd), J(PORT_SOURCE_FD), J(7), 0, 0}), ENOENT);
  ExpectError(Call32({J(PORT_ASSOCIATE), J(kPortFd), J(PORT_SOURCE_USER), J(7), J(1), 0}), EINVAL);
  // PORT_SOURCE_FILE reads the file_obj_t (40 bytes in ILP32): unmapped is
  // EFAULT (port_fop.c; tests/unit/port_file_test.cc has the rest).
  ExpectError(Call32({J(PORT_ASSOCIATE), J(kPortFd), J(PORT_SOURCE_FILE), J(0x1000), J(1), 0}), EFAULT);
}

TEST_F(Ilp32Dispatch, SendnWritesErrorsArray) {
  ctx_.mem().Map(0x40000, 8);
  ctx_.mem().Region(0x40000) = Bytes({kPortFd, 0, 0, 0, 99, 0, 0, 0});  // ports[] = {port, 99}
  ctx_.mem().Map(0x41000, 12, kFill);
  ExpectValue(Call32({J(PORT_SENDN | PORT_SYS_NOPORT), J(0x40000), J(0x41000), J(2), J(0x55), J(0x1234)}), 1);
  EXPECT_EQ(ctx_.mem().Region(0x41000),
            Bytes({0, 0, 0, 0, EBADF, 0, 0, 0, 0xa5, 0xa5, 0xa5, 0xa5}));  // int errors[2]
  EXPECT_EQ(ctx_.ports().QueuedCount(port_), 1u);
  // nent 0 and nent > PORT_MAX_LIST are EINVAL.
  ExpectError(Call32({J(PORT_SENDN | PORT_SYS_NOPORT), J(0x40000), J(0x41000), J(0), J(1), 0}), EINVAL);
  ExpectError(Call32({J(PORT_SENDN | PORT_SYS_NOPORT), J(0x40000), J(0x41000), J(8193), J(1), 0}), EINVAL);
  // An unmapped ports[] is EFAULT.
  ExpectError(Call32({J(PORT_SENDN | PORT_SYS_NOPORT), J(0x50000), J(0x41000), J(1), J(1), 0}), EFAULT);
}

TEST_F(Ilp32Dispatch, SettleOpcodeAnswersZeroAndChangesNothing) {
  // PORT_SYS_NOPORT | PORT_EVSHIM_SETTLE, the library's poll family
  // (docs/abi.md §10): a0 is no port, the other registers are ignored.
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(1), J(0x5), 0, 0}), 0);
  ExpectValue(Call32({J(PORT_EVSHIM_SETTLE | PORT_SYS_NOPORT), J(0xffffffff), J(1), J(2), J(3), J(4)}), 0);
  ExpectValue(Call64({PORT_EVSHIM_SETTLE | PORT_SYS_NOPORT, 0, 0, 0, 0, 0}), 0);
  EXPECT_EQ(ctx_.ports().QueuedCount(port_), 1u);
}

TEST_F(Ilp32Dispatch, AlertThenGet) {
  ExpectValue(Call32({J(PORT_ALERT), J(kPortFd), J(PORT_ALERT_SET), J(0x77), J(0xabcd), 0}), 0);
  ExpectError(Call32({J(PORT_ALERT), J(kPortFd), J(PORT_ALERT_INVALID), J(1), 0, 0}), EINVAL);
  ctx_.mem().Map(0x10000, 16);
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), 0, 0, 0}));
  ExpectValue(Answer(), 0);
  EXPECT_EQ(ctx_.mem().Region(0x10000),
            Bytes({0x77, 0, 0, 0, PORT_SOURCE_ALERT, 0, 0, 0, 0, 0, 0, 0, 0xcd, 0xab, 0, 0}));
}

TEST_F(Ilp32Dispatch, DispatchAndUnknownOpcodes) {
  // PORT_DISPATCH takes only AIO and MQ events (port.c:675-678; docs/rules-ports.md rule 37).
  ExpectError(Call32({J(PORT_DISPATCH), J(kPortFd), J(PORT_SOURCE_USER), J(1), 0, 0}), EINVAL);
  ExpectError(Call32({J(9), J(kPortFd), 0, 0, 0, 0}), EINVAL);
  ExpectError(Call32({J(PORT_SEND), J(3), J(1), 0, 0, 0}), EBADF);  // not open
  auto file = ctx_.host().NewFile();
  ctx_.host().Open(FakeCallContext::kCaller.pid, 3, file);
  ExpectError(Call32({J(PORT_SEND), J(3), J(1), 0, 0, 0}), EBADFD);  // open, not a port
}

// Rule 28 (P:1540-1544): a copy-out fault after the events were dequeued is
// EFAULT, and those events are lost.
TEST_F(Ilp32Dispatch, CopyOutFaultIsEfault) {
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(1), 0, 0, 0}), 0);
  ctx_.mem().Map(0x10000, 15);  // one byte short of a port_event32_t
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), 0, 0, 0}));
  ExpectError(Answer(), EFAULT);
  // port_getn(port, NULL, 0, &nget, NULL): the count of queued events.
  ExpectDeferred(Call32({J(PORT_GETN), J(kPortFd), J(0), J(0), J(0), J(0)}));
  ExpectValue(Answer(), 0);
}

// A memory that lends the caller's list in place (GuestMemory::InPlace:
// the in-process engine on the caller's own frames) gets the events
// encoded there, with no Write: the same bytes as the copy, in both data
// models, for port_get and port_getn. A list it cannot lend whole is
// written (and faults) as before (rule 28).
TEST_F(Ilp32Dispatch, RetrievalEncodesInPlaceWhereTheMemoryLendsTheList) {
  ctx_.mem().lends = true;
  ctx_.mem().Map(0x10000, 32, kFill);
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(0x2a), J(0x0804a000), 0, 0}), 0);
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x10000), J(0), J(0), J(0)}));
  ExpectValue(Answer(), 0);
  EXPECT_EQ(Slice(ctx_.mem().Region(0x10000), 0, 16),
            Bytes({0x2a, 0, 0, 0,  3, 0,  0, 0,  0, 0, 0, 0,  0x00, 0xa0, 0x04, 0x08}));
  EXPECT_EQ(Slice(ctx_.mem().Region(0x10000), 16, 16), std::vector<std::byte>(16, kFill));
  EXPECT_EQ(ctx_.mem().lent, 1);
  EXPECT_TRUE(ctx_.mem().writes.empty()) << "the event was copied, not encoded in place";

  // port_getn of two LP64 events: the list lent whole, both encoded there.
  ctx_.mem().Map(0x30000, 3 * 24, kFill);
  ExpectValue(Call64({PORT_SEND, kPortFd, 1, 0xaaaabbbbccccddddULL, 0, 0}), 0);
  ExpectValue(Call64({PORT_SEND, kPortFd, 2, 0x222, 0, 0}), 0);
  ExpectDeferred(Call64({PORT_GETN, kPortFd, 0x30000, 3, 1, 0}));
  ExpectValue(Answer(), 2);
  const auto& m = ctx_.mem().Region(0x30000);
  EXPECT_EQ(Slice(m, 0, 48), Bytes({1, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                    0xdd, 0xdd, 0xcc, 0xcc, 0xbb, 0xbb, 0xaa, 0xaa,
                                    2, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                                    0x22, 0x02, 0, 0, 0, 0, 0, 0}));
  EXPECT_EQ(Slice(m, 48, 24), std::vector<std::byte>(24, kFill));
  EXPECT_EQ(ctx_.mem().lent, 2);
  EXPECT_TRUE(ctx_.mem().writes.empty());

  // A list one byte short of the event is not lent: the write faults,
  // EFAULT and the event is lost.
  ctx_.mem().Map(0x50000, 15);
  ExpectValue(Call32({J(PORT_SEND), J(kPortFd), J(1), 0, 0, 0}), 0);
  ExpectDeferred(Call32({J(PORT_GET), J(kPortFd), J(0x50000), 0, 0, 0}));
  ExpectError(Answer(), EFAULT);
  EXPECT_EQ(ctx_.mem().lent, 2);
  ExpectDeferred(Call32({J(PORT_GETN), J(kPortFd), J(0), J(0), J(0), J(0)}));
  ExpectValue(Answer(), 0);
}

}  // namespace
}  // namespace evshim::abi::illumos
