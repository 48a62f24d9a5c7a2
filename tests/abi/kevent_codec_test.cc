// BSD struct kevent codecs (golden bytes) and the kqueue/kevent handlers
// driven with synthetic LP64 and ILP32 (AUDIT_ARCH_I386) calls through a
// fake CallContext: no process, no 32-bit build needed.
#include <gtest/gtest.h>

#include <climits>
#include <cstring>
#include <optional>
#include <map>
#include <vector>

#include "abi/bsd/kevent.h"
#include "abi/dragonfly/constants.h"
#include "abi/freebsd/constants.h"
#include "abi/openbsd/constants.h"
#include "abi/syscall_table.h"

namespace evshim::abi {
namespace {

using bsd::KeventLayout;
using emul::KFilter;

std::vector<std::byte> Bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

// --- golden bytes ---

// The codec reads each field at the offset, width and signedness the layout
// table gives (issue 12 item 4): a made-up layout with a 4-byte filter and
// a 4-byte data round-trips, negative values sign-extended.
TEST(KeventCodecLayout, FieldWidthsAndSignednessComeFromTheTable) {
  constexpr KeventLayout kWide{30,           Unsigned(0, 8),  Signed(8, 4), Unsigned(12, 2),
                               Unsigned(14, 4), Signed(18, 4), Unsigned(22, 8), {}};
  auto in = Bytes({0x05, 0, 0, 0, 0, 0, 0, 0,                      // ident 5
                   0xf5, 0xff, 0xff, 0xff,                          // filter -11 (USER), 4 bytes
                   0x01, 0x00,                                      // EV_ADD
                   0x00, 0x00, 0x00, 0x01,                          // NOTE_TRIGGER
                   0xfe, 0xff, 0xff, 0xff,                          // data -2, 4 bytes
                   0x0d, 0xf0, 0xfe, 0xca, 0xef, 0xbe, 0xad, 0xde}); // udata
  emul::KChange c = bsd::DecodeChange(bsd::Freebsd(), kWide, in);
  EXPECT_EQ(c.error, 0);
  EXPECT_EQ(c.kev.wire_filter, -11);
  EXPECT_EQ(c.kev.filter, KFilter::kUser);
  EXPECT_EQ(c.kev.data, -2);
  EXPECT_EQ(c.kev.udata, 0xdeadbeefcafef00dULL);
  std::vector<std::byte> out(kWide.size);
  bsd::EncodeEvent(kWide, c.kev, out);
  EXPECT_EQ(out, in);
}

TEST(KeventCodecFreebsdLp64, DecodesEveryFieldAndMasksSysflags) {
  auto in = Bytes({0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // ident
                   0xf5, 0xff,                                      // filter -11 (USER)
                   0x21, 0x10,                                      // EV_ADD|EV_CLEAR|0x1000
                   0x00, 0x00, 0x00, 0x01,                          // NOTE_TRIGGER
                   0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,  // data -2
                   0x0d, 0xf0, 0xfe, 0xca, 0xef, 0xbe, 0xad, 0xde,  // udata
                   1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0,
                   3, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0});
  ASSERT_EQ(in.size(), 64u);
  emul::KChange c = bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsdLp64, in);
  EXPECT_EQ(c.error, 0);
  EXPECT_EQ(c.kev.ident, 0x1122334455667788u);
  EXPECT_EQ(c.kev.filter, KFilter::kUser);
  EXPECT_EQ(c.kev.wire_filter, -11);
  EXPECT_EQ(c.kev.flags, 0x21);  // EV_SYSFLAGS 0xF000 masked (FB kqueue_register)
  EXPECT_EQ(c.kev.fflags, 0x01000000u);
  EXPECT_EQ(c.kev.data, -2);
  EXPECT_EQ(c.kev.udata, 0xdeadbeefcafef00du);
  EXPECT_EQ(c.kev.ext, (std::array<uint64_t, 4>{1, 2, 3, 4}));
  std::vector<std::byte> out(64);
  emul::KeventRecord r = c.kev;
  r.flags = 0x21;
  bsd::EncodeEvent(bsd::kFreebsdLp64, r, out);
  auto expect = in;
  expect[11] = std::byte{0x00};
  EXPECT_EQ(out, expect);
}

TEST(KeventCodecFreebsdIlp32, Kevent32Layout56Bytes) {
  // struct kevent32: ident@0 filter@4 flags@6 fflags@8 data(int64)@12 udata@20 ext@24.
  std::vector<std::byte> in(56);
  auto put = [&](size_t off, auto v) { std::memcpy(in.data() + off, &v, sizeof v); };
  put(0, uint32_t{0x80000005});
  put(4, int16_t{freebsd::EVFILT_TIMER});
  put(6, uint16_t{freebsd::EV_ADD | freebsd::EV_ONESHOT});
  put(8, uint32_t{freebsd::NOTE_USECONDS});
  put(12, int64_t{1500});
  put(20, uint32_t{0xfeedf00d});
  put(24, uint64_t{7});
  emul::KChange c = bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsdIlp32, in);
  EXPECT_EQ(c.kev.ident, 0x80000005u);  // uintptr_t: zero-extended
  EXPECT_EQ(c.kev.filter, KFilter::kTimer);
  EXPECT_EQ(c.kev.udata, 0xfeedf00du);
  EXPECT_EQ(c.kev.ext[0], 7u);
  EXPECT_EQ(c.timer_period, 1'500'000);  // 1500 us
  std::vector<std::byte> out(56);
  bsd::EncodeEvent(bsd::kFreebsdIlp32, c.kev, out);
  EXPECT_EQ(out, in);
}

TEST(KeventCodecFreebsd11Ilp32, DataIsIntptrSignExtended) {
  auto in = Bytes({0x03, 0, 0, 0, 0xff, 0xff, 0x01, 0x00, 0x01, 0, 0, 0,  // READ, EV_ADD, LOWAT
                   0xf6, 0xff, 0xff, 0xff,                                // data -10 (int32)
                   0x44, 0x33, 0x22, 0x11});                              // udata
  ASSERT_EQ(in.size(), 20u);
  emul::KChange c = bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsd11Ilp32, in);
  EXPECT_EQ(c.kev.ident, 3u);
  EXPECT_EQ(c.kev.filter, KFilter::kRead);
  EXPECT_EQ(c.kev.data, -10);
  EXPECT_EQ(c.kev.udata, 0x11223344u);
  EXPECT_EQ(c.kev.ext, (std::array<uint64_t, 4>{}));
  std::vector<std::byte> out(20);
  bsd::EncodeEvent(bsd::kFreebsd11Ilp32, c.kev, out);
  EXPECT_EQ(out, in);
}

TEST(KeventCodecOpenbsdIlp32, Kevent24BytesInt64Data) {
  auto in = Bytes({0x07, 0, 0, 0, 0xf6, 0xff, 0x01, 0x08,  // ident 7, USER(-10), EV_ADD|0x0800
                   0, 0, 0, 0,                              // fflags
                   0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00,  // data 1<<32
                   0x78, 0x56, 0x34, 0x12});
  ASSERT_EQ(in.size(), 24u);
  emul::KChange c = bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdIlp32, in);
  EXPECT_EQ(c.kev.filter, KFilter::kUser);
  EXPECT_EQ(c.kev.flags, 0x0001);  // OpenBSD EV_SYSFLAGS 0xf800 clears 0x0800 (OB kern_event.c:942)
  EXPECT_EQ(c.kev.data, int64_t{1} << 32);
  EXPECT_EQ(c.kev.udata, 0x12345678u);
}

TEST(KeventCodec, FreebsdKeeps0x0800ThatOpenbsdClears) {
  std::vector<std::byte> in(64);
  int16_t f = -11;
  uint16_t fl = 0x0801;
  std::memcpy(in.data() + 8, &f, 2);
  std::memcpy(in.data() + 10, &fl, 2);
  EXPECT_EQ(bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsdLp64, in).kev.flags, 0x0801);
}

TEST(KeventCodec, FilterNumbersPerPersonality) {
  std::vector<std::byte> in(32);
  auto with_filter = [&](int16_t f) {
    std::memcpy(in.data() + 8, &f, 2);
    return in;
  };
  // EVFILT_USER is -11 on FreeBSD, -10 on OpenBSD, -9 on DragonFly (docs/rules-bsd.md §3.1).
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, with_filter(-10)).kev.filter,
            KFilter::kUser);
  EXPECT_EQ(bsd::DecodeChange(bsd::Dragonfly(), bsd::kDragonflyLp64, with_filter(-9)).kev.filter,
            KFilter::kUser);
  EXPECT_EQ(bsd::DecodeChange(bsd::Dragonfly(), bsd::kDragonflyLp64, with_filter(-8)).kev.filter,
            KFilter::kExcept);
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, with_filter(-9)).kev.filter,
            KFilter::kExcept);
  // Not a filter of the kernel: EINVAL (OB kern_event.c:1051-1064).
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, with_filter(-11)).error, EINVAL);
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, with_filter(3)).error, EINVAL);
  // FreeBSD skips filter 0 silently; OpenBSD rejects it.
  std::vector<std::byte> fb(64);
  EXPECT_TRUE(bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsdLp64, fb).skip);
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, with_filter(0)).error, EINVAL);
}

// CanonicalFilter indexes the numbers (KqueuePersonality::filter_slots):
// every number answers as the personality's list says, out of the
// slots' range too.
TEST(KeventCodec, CanonicalFilterAnswersAsTheListForEveryNumber) {
  for (const bsd::KqueuePersonality* p : {&bsd::Freebsd(), &bsd::Openbsd(), &bsd::Dragonfly()}) {
    std::vector<int32_t> numbers{INT32_MIN, -70000, -32768, 32767, INT32_MAX};
    for (int32_t number = -100; number <= 100; ++number) numbers.push_back(number);
    for (int32_t number : numbers) {
      std::optional<KFilter> listed;
      for (const bsd::FilterNumber& f : p->filters) {
        if (f.number == number) listed = f.filter;
      }
      EXPECT_EQ(bsd::CanonicalFilter(*p, number), listed) << PersonalityName(p->personality) << " " << number;
    }
  }
}

TEST(KeventCodec, OpenbsdAioFilterIsEinval) {
  // OpenBSD has no filterops for EVFILT_AIO (NULL in sysfilt_ops, OB
  // kern_event.c:177-187), so kqueue_register answers EINVAL (:1057-1064).
  // DragonFly and FreeBSD have one; evshim does not emulate it: EOPNOTSUPP.
  std::vector<std::byte> in(64);
  int16_t aio = -3;
  std::memcpy(in.data() + 8, &aio, 2);
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, in).error, EINVAL);
  EXPECT_EQ(bsd::DecodeChange(bsd::Dragonfly(), bsd::kDragonflyLp64, in).error, EOPNOTSUPP);
  EXPECT_EQ(bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsdLp64, in).error, EOPNOTSUPP);
  int16_t device = openbsd::EVFILT_DEVICE;  // has filterops, not emulated
  std::memcpy(in.data() + 8, &device, 2);
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, in).error, EOPNOTSUPP);
}

TEST(KeventCodec, FsFilterIsFreebsdsAndDragonflysOnly) {
  // EVFILT_FS: FreeBSD -9, DragonFly -10 (their sys/event.h) are emulated;
  // OpenBSD has no such filter: its -9 and -10 stay EXCEPT and USER.
  EXPECT_EQ(bsd::CanonicalFilter(bsd::Freebsd(), freebsd::EVFILT_FS), emul::KFilter::kFs);
  EXPECT_EQ(bsd::CanonicalFilter(bsd::Dragonfly(), dragonfly::EVFILT_FS), emul::KFilter::kFs);
  EXPECT_EQ(bsd::FilterNumberOf(bsd::Openbsd(), emul::KFilter::kFs), 0);
  EXPECT_EQ(bsd::CanonicalFilter(bsd::Openbsd(), -9), emul::KFilter::kExcept);
  EXPECT_EQ(bsd::CanonicalFilter(bsd::Openbsd(), -10), emul::KFilter::kUser);
  std::vector<std::byte> in(64);
  int16_t fs = freebsd::EVFILT_FS;
  std::memcpy(in.data() + 8, &fs, 2);
  EXPECT_EQ(bsd::DecodeChange(bsd::Freebsd(), bsd::kFreebsdLp64, in).error, 0);
  fs = dragonfly::EVFILT_FS;
  std::memcpy(in.data() + 8, &fs, 2);
  EXPECT_EQ(bsd::DecodeChange(bsd::Dragonfly(), bsd::kDragonflyLp64, in).error, 0);
  int16_t beyond = -11;  // past OpenBSD's EVFILT_SYSCOUNT (10): no filter
  std::memcpy(in.data() + 8, &beyond, 2);
  EXPECT_EQ(bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64, in).error, EINVAL);
}

emul::KChange TimerChange(const bsd::KqueuePersonality& p, uint32_t fflags, int64_t data,
                          uint16_t flags = 1) {
  std::vector<std::byte> in(64);
  int16_t f = -7;
  std::memcpy(in.data() + 8, &f, 2);
  std::memcpy(in.data() + 10, &flags, 2);
  std::memcpy(in.data() + 12, &fflags, 4);
  std::memcpy(in.data() + 16, &data, 8);
  return bsd::DecodeChange(p, p.current_lp64, in);
}

TEST(KeventCodec, TimerUnitsPerPersonality) {
  // 0x2: milliseconds on FreeBSD, microseconds on OpenBSD (docs/rules-bsd.md §3.6).
  EXPECT_EQ(TimerChange(bsd::Freebsd(), freebsd::NOTE_MSECONDS, 5).timer_period, 5'000'000);
  EXPECT_EQ(TimerChange(bsd::Openbsd(), openbsd::NOTE_USECONDS, 5).timer_period, 5'000);
  EXPECT_EQ(TimerChange(bsd::Freebsd(), freebsd::NOTE_NSECONDS, 5).timer_period, 5);
  EXPECT_EQ(TimerChange(bsd::Openbsd(), openbsd::NOTE_NSECONDS, 5).timer_period, 5);
  EXPECT_EQ(TimerChange(bsd::Freebsd(), 0, 5).timer_period, 5'000'000);
  EXPECT_EQ(TimerChange(bsd::Freebsd(), freebsd::NOTE_SECONDS, 2).timer_period, 2'000'000'000);
  // 0x4 is NOTE_USECONDS on FreeBSD, EINVAL on OpenBSD.
  EXPECT_EQ(TimerChange(bsd::Freebsd(), 0x4, 5).timer_period, 5'000);
  EXPECT_EQ(TimerChange(bsd::Openbsd(), 0x4, 5).error, EINVAL);
  // Two FreeBSD unit bits, or a negative period: EINVAL (filt_timervalidate).
  EXPECT_EQ(TimerChange(bsd::Freebsd(), 0x3, 5).error, EINVAL);
  EXPECT_EQ(TimerChange(bsd::Freebsd(), 0, -1).error, EINVAL);
  // FreeBSD: 0 without EV_ONESHOT is one unit.
  EXPECT_EQ(TimerChange(bsd::Freebsd(), 0, 0).timer_period, 1'000'000);
  // DragonFly: milliseconds only, fflags ignored (DF kern_event.c:427-428).
  EXPECT_EQ(TimerChange(bsd::Dragonfly(), 0x3, 5).timer_period, 5'000'000);
  EXPECT_EQ(TimerChange(bsd::Dragonfly(), 0x3, 5).error, 0);
}

TEST(KeventCodec, AbstimeIsAnEpochTimeInTheUnits) {
  // FreeBSD filt_timervalidate / timer2sbintime, OpenBSD filt_timervalidate:
  // NOTE_ABSTIME (0x10 on both) takes `data` as a CLOCK_REALTIME time.
  const int64_t t = 1'800'000'000;  // seconds since the epoch
  emul::KChange fb = TimerChange(bsd::Freebsd(), freebsd::NOTE_SECONDS | freebsd::NOTE_ABSTIME, t);
  EXPECT_EQ(fb.error, 0);
  EXPECT_TRUE(fb.timer_absolute);
  EXPECT_EQ(fb.timer_period, t * 1'000'000'000);  // beyond the relative cap (INT64_MAX / 4)
  emul::KChange ob = TimerChange(bsd::Openbsd(), openbsd::NOTE_SECONDS | openbsd::NOTE_ABSTIME, t);
  EXPECT_EQ(ob.error, 0);
  EXPECT_TRUE(ob.timer_absolute);
  EXPECT_EQ(ob.timer_period, t * 1'000'000'000);
  // Milliseconds, the default unit of both.
  emul::KChange ms = TimerChange(bsd::Freebsd(), freebsd::NOTE_ABSTIME, 5);
  EXPECT_TRUE(ms.timer_absolute);
  EXPECT_EQ(ms.timer_period, 5'000'000);
  // DragonFly has no NOTE_ABSTIME: fflags are ignored, 0x10 is a relative ms period.
  emul::KChange df = TimerChange(bsd::Dragonfly(), 0x10, 5);
  EXPECT_EQ(df.error, 0);
  EXPECT_FALSE(df.timer_absolute);
  EXPECT_EQ(df.timer_period, 5'000'000);
  EXPECT_FALSE(TimerChange(bsd::Freebsd(), freebsd::NOTE_SECONDS, 5).timer_absolute);
}

TEST(KeventCodec, TimespecLayouts) {
  auto fb = Bytes({0xff, 0xff, 0xff, 0xff, 0x10, 0, 0, 0});
  EXPECT_EQ(bsd::DecodeTimespec(bsd::kFreebsdTimespecIlp32, fb), std::make_pair(int64_t{-1}, int64_t{16}));
  auto ob = Bytes({0, 0, 0, 0, 1, 0, 0, 0, 0x20, 0, 0, 0});
  EXPECT_EQ(bsd::DecodeTimespec(bsd::kOpenbsdTimespecIlp32, ob),
            std::make_pair(int64_t{1} << 32, int64_t{32}));
}

// --- handlers through a fake CallContext ---

class NullHost : public emul::Host {
 public:
  emul::Nanos Now() override { return now; }
  void ArmDeadline(emul::Nanos) override {}
  emul::Result<emul::WatchId> WatchFd(emul::Pid, int) override { return emul::Errno{EBADF}; }
  emul::Result<uint32_t> ArmWatch(emul::WatchId, emul::Pid, int, uint32_t) override { return 0u; }
  void DisarmWatch(emul::WatchId) override {}
  void DropWatch(emul::WatchId) override {}
  bool SameFile(emul::Pid, int, emul::WatchId) override { return false; }
  bool FdOpen(emul::Pid, int) override { return false; }
  void ObjectReadinessChanged(emul::ObjectId, bool) override {}
  emul::Nanos now = 1'000'000'000;
};

class FakeMemory : public GuestMemory {
 public:
  static constexpr uint64_t kBase = 0x10000;
  std::vector<std::byte> mem = std::vector<std::byte>(4096);
  emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    if (addr < kBase || addr + out.size() > kBase + mem.size()) return emul::Errno{EFAULT};
    std::memcpy(out.data(), mem.data() + (addr - kBase), out.size());
    ++reads;
    return {};
  }
  emul::Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    if (addr < kBase || addr + in.size() > kBase + mem.size()) return emul::Errno{EFAULT};
    std::memcpy(mem.data() + (addr - kBase), in.data(), in.size());
    ++writes;
    return {};
  }
  // With `lends`, as the in-process engine on the caller's own frames
  // (GuestMemory::InPlace): a range wholly inside `mem` is lent in place.
  std::byte* InPlace(uint64_t addr, size_t size) override {
    if (!lends || size == 0 || addr < kBase || addr + size > kBase + mem.size()) return nullptr;
    ++lent;
    return at(addr);
  }
  bool lends = false;
  int reads = 0, writes = 0, lent = 0;
  std::byte* at(uint64_t addr) { return mem.data() + (addr - kBase); }
};

class FakeContext : public CallContext {
 public:
  struct Recorder : Responder {
    std::optional<Outcome> got;
    // A signal took the caller away: the call is no longer pending and an
    // answer is refused (recorded all the same: it is what a re-issue of
    // the call would be told, if it stands).
    bool gone = false;
    bool StillPending() override { return !got && !gone; }
    bool Respond(const Outcome& o) override {
      got = o;
      return !gone;
    }
  };
  explicit FakeContext(emul::Kqueues* kqs) : kqs_(kqs) {}
  emul::Caller caller() const override { return who; }
  emul::Caller who{50, 50};
  GuestMemory& memory() override { return mem; }
  emul::Result<emul::ObjectId> Resolve(int fd, ObjectKind kind) override {
    if (fd == 3 && kind == ObjectKind::kKqueue) return kq;
    if (fd == 4) return emul::Errno{EBADFD};  // open, not a kqueue
    return emul::Errno{EBADF};
  }
  emul::EventPorts& ports() override { std::abort(); }
  emul::Kqueues* kqueues() override { return kqs_; }
  std::shared_ptr<Responder> Defer() override {
    rec = std::make_shared<Recorder>();
    rec->gone = caller_gone;
    return rec;
  }
  bool caller_gone = false;
  // AnswersInCall: as the in-process engine, a call answered before its
  // handler returns is the handler's outcome (no responder taken).
  bool answers_in_call = false;
  bool AnswersInCall() const override { return answers_in_call; }
  void Parked(emul::WaitId) override { parked = true; }
  void NotImplemented(std::string_view) override {}
  int ReplaceObject(ObjectKind kind, emul::ObjectId from, emul::ObjectId to) override {
    if (kind == ObjectKind::kKqueue) replaced.emplace_back(from, to);
    return 0;
  }
  std::vector<std::pair<emul::ObjectId, emul::ObjectId>> replaced;
  // The answer, deferred or not.
  Outcome Answer(const Outcome& o) {
    if (o.kind == Outcome::Kind::kDeferred) return rec && rec->got ? *rec->got : Outcome::Value(-999);
    return o;
  }

  FakeMemory mem;
  emul::ObjectId kq = 0;
  bool parked = false;
  std::shared_ptr<Recorder> rec;

 private:
  emul::Kqueues* kqs_;
};

// The table's handler for (personality, call): the tests call what the
// supervisor calls.
Handler TableHandler(Personality p, abi::Call c) {
  for (const SyscallEntry& e : AllSyscalls()) {
    if (e.personality == p && e.call == c) return e.handler;
  }
  ADD_FAILURE() << "no such row";
  return nullptr;
}
const Handler DfKevent = TableHandler(Personality::kDragonfly, abi::Call::kKevent);
const Handler DfKqueueFdClose = TableHandler(Personality::kDragonfly, abi::Call::kKqueueFdClose);
const Handler FbKevent = TableHandler(Personality::kFreebsd, abi::Call::kKevent);
const Handler FbKqueueFdClose = TableHandler(Personality::kFreebsd, abi::Call::kKqueueFdClose);
const Handler FbKqueueFork = TableHandler(Personality::kFreebsd, abi::Call::kKqueueFork);
const Handler FbKqueuex = TableHandler(Personality::kFreebsd, abi::Call::kKqueuex);
const Handler ObKevent = TableHandler(Personality::kOpenbsd, abi::Call::kKevent);
const Handler ObKqueue = TableHandler(Personality::kOpenbsd, abi::Call::kKqueue);
const Handler ObKqueue1 = TableHandler(Personality::kOpenbsd, abi::Call::kKqueuex);
const Handler ObKqueueFdClose = TableHandler(Personality::kOpenbsd, abi::Call::kKqueueFdClose);
const Handler FbKqueueSettle = TableHandler(Personality::kFreebsd, abi::Call::kKqueueSettle);
const Handler DfKqueueSettle = TableHandler(Personality::kDragonfly, abi::Call::kKqueueSettle);
const Handler ObKqueueSettle = TableHandler(Personality::kOpenbsd, abi::Call::kKqueueSettle);

class KeventHandlerTest : public ::testing::Test {
 protected:
  KeventHandlerTest() : ctx_(&kqs_) {}
  NullHost host_;
  emul::Kqueues kqs_{host_};
  FakeContext ctx_;
  static constexpr uint64_t kJunk = 0xa5a5a5a500000000ULL;  // upper halves of ILP32 registers
  static constexpr uint64_t kChanges = FakeMemory::kBase + 0x100;
  static constexpr uint64_t kEvents = FakeMemory::kBase + 0x400;
  static constexpr uint64_t kTimeout = FakeMemory::kBase + 0x800;

  Outcome Call(Handler h, DataModel m, std::array<uint64_t, 6> raw) {
    return ctx_.Answer(h(ctx_, SyscallArgs(m, raw)));
  }
};

TEST_F(KeventHandlerTest, TableRoutesEveryKqueueCall) {
  // The handler pointers are set for every BSD row of the one table.
  for (const SyscallEntry& e : AllSyscalls()) {
    if (e.personality == Personality::kIllumos) continue;
    EXPECT_NE(e.handler, nullptr) << e.name;
  }
  // One shared function per call, bound to the personality's data.
  EXPECT_EQ(FindSyscall(DataModel::kIlp32, 1010)->handler, Handler::Bind<&bsd::SysKqueue>(bsd::kFreebsdKqueue));
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 560)->handler, Handler::Bind<&bsd::SysKevent>(bsd::kFreebsdKqueue));
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 1030)->handler, Handler::Bind<&bsd::SysKevent>(bsd::kOpenbsdKqueue));
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 363)->handler,
            Handler::Bind<&bsd::SysFreebsd11Kevent>(bsd::kFreebsdKqueue));
  EXPECT_NE(FindSyscall(DataModel::kLp64, 1030)->handler, FindSyscall(DataModel::kLp64, 1021)->handler);
}

TEST_F(KeventHandlerTest, KqueueCreatesAKqueueObject) {
  Outcome o = Call(ObKqueue, DataModel::kLp64, {});
  ASSERT_EQ(o.kind, Outcome::Kind::kNewObject);
  EXPECT_EQ(o.object_kind, ObjectKind::kKqueue);
  EXPECT_GE(o.object, emul::Kqueues::kFirstId);
  EXPECT_FALSE(o.cloexec);
}

TEST_F(KeventHandlerTest, KqueueFlagsAreTheForeignValues) {
  // FreeBSD kqueuex: KQUEUE_CLOEXEC 1, KQUEUE_CPONFORK 2; OpenBSD kqueue1:
  // O_CLOEXEC 0x10000 | O_NONBLOCK 4.
  Outcome o = Call(FbKqueuex, DataModel::kIlp32, {kJunk | 1});
  ASSERT_EQ(o.kind, Outcome::Kind::kNewObject);
  EXPECT_TRUE(o.cloexec);
  EXPECT_EQ(Call(FbKqueuex, DataModel::kLp64, {4}).error, EINVAL);
  o = Call(FbKqueuex, DataModel::kLp64, {2});
  ASSERT_EQ(o.kind, Outcome::Kind::kNewObject);
  EXPECT_FALSE(o.cloexec);
  // The kqueue is copy-on-fork: a fork prepare of its owner copies it.
  EXPECT_NE(kqs_.ForkPrepare(ctx_.caller().pid), 0u);
  o = Call(ObKqueue1, DataModel::kLp64, {0x10004});
  ASSERT_EQ(o.kind, Outcome::Kind::kNewObject);
  EXPECT_TRUE(o.cloexec);
  EXPECT_EQ(Call(ObKqueue1, DataModel::kLp64, {0x80000}).error, EINVAL);  // Linux O_CLOEXEC
}

TEST_F(KeventHandlerTest, FdCloseReportTakesAnIntDescriptor) {
  // evshim_kqueue_fdclose(fd), the library's close/dup2/dup3 (knote_fdclose,
  // OB kern_event.c:1826-1845): a0 is an int, a negative one EBADF; the
  // engine's side is KqueueTest.FdClosingDropsTheKnotesOnThatNumberInEvery-
  // KqueueOfTheProcess. A USER knote whose ident is the number stays.
  const emul::ObjectId kq = *kqs_.Create(ctx_.caller());
  emul::KChange c;
  c.kev.ident = 5;
  c.kev.filter = emul::KFilter::kUser;
  c.kev.flags = emul::kev::kAdd;
  struct Ignore final : emul::KeventCompletion {
    bool Complete(const emul::KeventOutcome&) override { return true; }
  };
  kqs_.Kevent(ctx_.caller(), kq, emul::KqueuePolicy{}, {&c, 1}, false, emul::KeventWait{0, false, 0, 0},
              std::make_unique<Ignore>());
  ASSERT_EQ(kqs_.KnoteCount(kq), 1u);
  for (const Handler& fn : {FbKqueueFdClose, ObKqueueFdClose, DfKqueueFdClose}) {
    EXPECT_EQ(Call(fn, DataModel::kIlp32, {kJunk | 0xffffffff}).error, EBADF);  // -1
    EXPECT_EQ(Call(fn, DataModel::kLp64, {kJunk | 5}).value, 0);
  }
  EXPECT_EQ(kqs_.KnoteCount(kq), 1u);
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 1014)->handler, Handler(&bsd::SysKqueueFdClose));
  EXPECT_EQ(FindSyscall(DataModel::kIlp32, 1023)->handler, Handler(&bsd::SysKqueueFdClose));
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 1034)->handler, Handler(&bsd::SysKqueueFdClose));
}

TEST_F(KeventHandlerTest, SettleRequestChangesNothingAndAnswersZero) {
  // evshim_kqueue_settle(), the library's poll family (docs/abi.md §10): the
  // readiness applied around every call is its point; the call itself
  // ignores its registers and changes no kqueue.
  const emul::ObjectId kq = *kqs_.Create(ctx_.caller());
  for (const Handler& fn : {FbKqueueSettle, ObKqueueSettle, DfKqueueSettle}) {
    EXPECT_EQ(Call(fn, DataModel::kLp64, {kJunk | 5, kJunk, 1, 2, 3, 4}).value, 0);
    EXPECT_EQ(Call(fn, DataModel::kIlp32, {0xffffffff}).value, 0);
  }
  EXPECT_EQ(kqs_.KnoteCount(kq), 0u);
  EXPECT_EQ(kqs_.PendingCount(kq), 0u);
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 1015)->handler, Handler(&bsd::SysKqueueSettle));
  EXPECT_EQ(FindSyscall(DataModel::kIlp32, 1024)->handler, Handler(&bsd::SysKqueueSettle));
  EXPECT_EQ(FindSyscall(DataModel::kLp64, 1035)->handler, Handler(&bsd::SysKqueueSettle));
}

TEST_F(KeventHandlerTest, ForkHookCopiesThenTheChildClaims) {
  // evshim_kqueue_fork (KQUEUE_CPONFORK through the library's atfork hook):
  // phase 1 in the parent returns a token, phase 2 in the child claims the
  // copies and has its descriptors of the parent's kqueue replaced.
  EXPECT_EQ(Call(FbKqueueFork, DataModel::kLp64, {1, 0}).value, 0);  // nothing to copy
  Outcome o = Call(FbKqueuex, DataModel::kLp64, {2});
  ASSERT_EQ(o.kind, Outcome::Kind::kNewObject);
  const int64_t token = Call(FbKqueueFork, DataModel::kLp64, {1, 0}).value;
  ASSERT_GT(token, 0);
  // The claim comes from the child (another pid; the parent's own claim
  // takes nothing).
  EXPECT_EQ(Call(FbKqueueFork, DataModel::kLp64, {2, static_cast<uint64_t>(token)}).value, 0);
  EXPECT_TRUE(ctx_.replaced.empty());
  ctx_.who = {51, 51};
  EXPECT_EQ(Call(FbKqueueFork, DataModel::kIlp32, {kJunk | 2, kJunk | static_cast<uint64_t>(token)}).value, 0);
  ASSERT_EQ(ctx_.replaced.size(), 1u);
  EXPECT_EQ(ctx_.replaced[0].first, o.object);
  EXPECT_TRUE(kqs_.Exists(ctx_.replaced[0].second));
  EXPECT_EQ(Call(FbKqueueFork, DataModel::kLp64, {2, static_cast<uint64_t>(token)}).value, 0);
  EXPECT_EQ(ctx_.replaced.size(), 1u);  // claimed once
  EXPECT_EQ(Call(FbKqueueFork, DataModel::kLp64, {3, 0}).error, EINVAL);
}

TEST_F(KeventHandlerTest, FreebsdIlp32UserEventRoundTripWithJunkInUpperHalves) {
  ctx_.kq = *kqs_.Create({50, 50});
  // One kevent32 change: USER ident 9, EV_ADD, NOTE_TRIGGER, udata 0xcafe.
  std::byte* ch = ctx_.mem.at(kChanges);
  uint32_t ident = 9, fflags = freebsd::NOTE_TRIGGER | freebsd::NOTE_FFCOPY | 0x5, udata = 0xcafe;
  int16_t filter = freebsd::EVFILT_USER;
  uint16_t flags = freebsd::EV_ADD;
  std::memcpy(ch + 0, &ident, 4);
  std::memcpy(ch + 4, &filter, 2);
  std::memcpy(ch + 6, &flags, 2);
  std::memcpy(ch + 8, &fflags, 4);
  std::memcpy(ch + 20, &udata, 4);
  // timeout {0, 0}: 8-byte i386 timespec
  Outcome o = Call(FbKevent, DataModel::kIlp32,
                   {kJunk | 3, kJunk | kChanges, kJunk | 1, kJunk | kEvents, kJunk | 4,
                    kJunk | kTimeout});
  ASSERT_EQ(o.kind, Outcome::Kind::kValue) << o.error;
  EXPECT_EQ(o.value, 1);
  auto expect = Bytes({9, 0, 0, 0, 0xf5, 0xff, 0x00, 0x00, 0x05, 0, 0, 0,  // FreeBSD strips EV_ADD
                       0, 0, 0, 0, 0, 0, 0, 0,                                // data
                       0xfe, 0xca, 0, 0});
  expect.resize(56);
  EXPECT_EQ(std::vector<std::byte>(ctx_.mem.at(kEvents), ctx_.mem.at(kEvents) + 56), expect);
}

// A transport that AnswersInCall (the in-process engine) gets a kevent
// answered at once as the handler's own outcome, with no responder taken;
// one that waits takes the transport's responder when it parks, and is
// answered through it (abi/common/call.h AnswerTo).
TEST_F(KeventHandlerTest, KeventAnsweredInTheCallIsTheHandlersOutcome) {
  ctx_.kq = *kqs_.Create({50, 50});
  ctx_.answers_in_call = true;
  // A kevent32 USER change on ident 9 (FreeBSD ILP32: 56 bytes).
  auto change = [&](uint16_t flags, uint32_t fflags) {
    std::byte* ch = ctx_.mem.at(kChanges);
    std::memset(ch, 0, 56);
    uint32_t ident = 9;
    int16_t filter = freebsd::EVFILT_USER;
    std::memcpy(ch + 0, &ident, 4);
    std::memcpy(ch + 4, &filter, 2);
    std::memcpy(ch + 6, &flags, 2);
    std::memcpy(ch + 8, &fflags, 4);
  };
  std::memset(ctx_.mem.at(kTimeout), 0, 8);  // {0, 0}
  change(freebsd::EV_ADD | freebsd::EV_CLEAR, freebsd::NOTE_TRIGGER);
  Outcome o = ctx_.Answer(FbKevent(ctx_, SyscallArgs(DataModel::kIlp32, {3, kChanges, 1, kEvents, 4, kTimeout})));
  ASSERT_EQ(o.kind, Outcome::Kind::kValue) << o.error;
  EXPECT_EQ(o.value, 1);
  EXPECT_EQ(ctx_.rec, nullptr) << "a responder was taken for an answer at once";
  // Nothing active, no timeout: parked, answered through the responder.
  o = ctx_.Answer(FbKevent(ctx_, SyscallArgs(DataModel::kIlp32, {3, 0, 0, kEvents, 4, 0})));
  EXPECT_EQ(o.value, -999);  // deferred, not answered yet
  ASSERT_NE(ctx_.rec, nullptr);
  EXPECT_TRUE(ctx_.parked);
  const std::shared_ptr<FakeContext::Recorder> waiting = ctx_.rec;
  ctx_.rec = nullptr;
  change(0, freebsd::NOTE_TRIGGER);
  o = ctx_.Answer(FbKevent(ctx_, SyscallArgs(DataModel::kIlp32, {3, kChanges, 1, 0, 0, kTimeout})));
  ASSERT_EQ(o.kind, Outcome::Kind::kValue) << o.error;
  EXPECT_EQ(o.value, 0);
  EXPECT_EQ(ctx_.rec, nullptr);
  ASSERT_TRUE(waiting->got.has_value());
  EXPECT_EQ(waiting->got->kind, Outcome::Kind::kValue);
  EXPECT_EQ(waiting->got->value, 1);
}

TEST_F(KeventHandlerTest, OpenbsdIlp32TimeoutIs12Bytes) {
  ctx_.kq = *kqs_.Create({50, 50});
  // OpenBSD i386 timespec {int64 sec = 0, int32 nsec = 1e9}: invalid -> EINVAL
  // before any change (OB kern_event.c:919-922). Read as FreeBSD's 8-byte
  // layout it would be {0, 0}: a valid poll.
  int64_t sec = 0;
  int32_t nsec = 1'000'000'000;
  std::memcpy(ctx_.mem.at(kTimeout), &sec, 8);
  std::memcpy(ctx_.mem.at(kTimeout) + 8, &nsec, 4);
  Outcome o = Call(ObKevent, DataModel::kIlp32,
                   {kJunk | 3, 0, 0, kJunk | kEvents, kJunk | 4, kJunk | kTimeout});
  EXPECT_EQ(o.kind, Outcome::Kind::kError);
  EXPECT_EQ(o.error, EINVAL);
}

TEST_F(KeventHandlerTest, NotAKqueueErrnoPerPersonality) {
  // FreeBSD EINVAL (kqueue_acquire); OpenBSD/DragonFly EBADF (OB kern_event.c:906-909).
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {4, 0, 0, 0, 0, 0}).error, EINVAL);
  EXPECT_EQ(Call(ObKevent, DataModel::kLp64, {4, 0, 0, 0, 0, 0}).error, EBADF);
  EXPECT_EQ(Call(DfKevent, DataModel::kLp64, {4, 0, 0, 0, 0, 0}).error, EBADF);
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {9, 0, 0, 0, 0, 0}).error, EBADF);
}

TEST_F(KeventHandlerTest, TimeoutFaultOrderPerPersonality) {
  // FreeBSD/DragonFly copy the timeout in before looking at the descriptor;
  // OpenBSD looks at the descriptor first (OB kern_event.c:903-912, DF :1047-1057).
  const uint64_t bad = 0x10;
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {9, 0, 0, 0, 0, bad}).error, EFAULT);
  EXPECT_EQ(Call(DfKevent, DataModel::kLp64, {9, 0, 0, 0, 0, bad}).error, EFAULT);
  EXPECT_EQ(Call(ObKevent, DataModel::kLp64, {9, 0, 0, 0, 0, bad}).error, EBADF);
}

TEST_F(KeventHandlerTest, FreebsdNegativeCountsAreEinval) {
  ctx_.kq = *kqs_.Create({50, 50});
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {3, 0, 0, 0, 0xffffffff, 0}).error, EINVAL);
  Outcome o = Call(ObKevent, DataModel::kLp64, {3, 0, 0, 0, 0xffffffff, 0});
  EXPECT_EQ(o.kind, Outcome::Kind::kValue);
  EXPECT_EQ(o.value, 0);
}

TEST_F(KeventHandlerTest, ErrorRecordCarriesGlibcErrnoInData) {
  ctx_.kq = *kqs_.Create({50, 50});
  // OpenBSD LP64: EV_DELETE of an unknown knote, nevents 2 -> one EV_ERROR record.
  std::byte* ch = ctx_.mem.at(kChanges);
  uint64_t ident = 77, udata = 0x1234;
  int16_t filter = openbsd::EVFILT_USER;
  uint16_t flags = openbsd::EV_DELETE;
  std::memcpy(ch, &ident, 8);
  std::memcpy(ch + 8, &filter, 2);
  std::memcpy(ch + 10, &flags, 2);
  std::memcpy(ch + 24, &udata, 8);
  Outcome o = Call(ObKevent, DataModel::kLp64, {3, kChanges, 1, kEvents, 2, 0});
  ASSERT_EQ(o.kind, Outcome::Kind::kValue);
  EXPECT_EQ(o.value, 1);
  emul::KChange rec = bsd::DecodeChange(bsd::Openbsd(), bsd::kOpenbsdLp64,
                                        std::span(ctx_.mem.at(kEvents), 32));
  uint16_t raw_flags;
  std::memcpy(&raw_flags, ctx_.mem.at(kEvents) + 10, 2);
  EXPECT_EQ(raw_flags, openbsd::EV_ERROR);
  EXPECT_EQ(rec.kev.data, ENOENT);
  EXPECT_EQ(rec.kev.udata, 0x1234u);
  EXPECT_EQ(rec.kev.ident, 77u);
}

// Change i of an LP64 change list: an EVFILT_USER change.
void PutUserChange(FakeMemory& mem, uint64_t list, const bsd::KqueuePersonality& p, size_t i,
                   uint64_t ident, uint16_t flags, uint64_t udata = 0, uint32_t fflags = 0) {
  const bsd::KeventLayout& l = p.current_lp64;
  std::byte* ch = mem.at(list + i * l.size);
  std::memset(ch, 0, l.size);
  auto filter = static_cast<int16_t>(bsd::FilterNumberOf(p, KFilter::kUser));
  std::memcpy(ch + l.ident.offset, &ident, 8);
  std::memcpy(ch + l.filter.offset, &filter, 2);
  std::memcpy(ch + l.flags.offset, &flags, 2);
  std::memcpy(ch + l.fflags.offset, &fflags, 4);
  std::memcpy(ch + l.udata.offset, &udata, 8);
}

constexpr uint16_t kAdd = 0x1, kDelete = 0x2, kError = 0x4000;

// A memory that lends the caller's lists in place (GuestMemory::InPlace:
// the in-process engine on the caller's own frames) has the changes
// decoded and the events encoded there, with no Read or Write: the same
// answers and bytes as the copies, for one event (CompleteOne) and two
// (Complete), in FreeBSD's LP64 layout (the constant one) and ILP32 (read
// at run time). A list it cannot lend is read or written as before: a bad
// pointer is still EFAULT.
TEST_F(KeventHandlerTest, ListsAreDecodedAndEncodedInPlaceWhereTheMemoryLendsThem) {
  ctx_.kq = *kqs_.Create({50, 50});
  const bsd::KqueuePersonality& p = bsd::Freebsd();
  constexpr uint16_t kOneshot = 0x10;
  for (DataModel m : {DataModel::kLp64, DataModel::kIlp32}) {
    const bsd::KeventLayout& l = m == DataModel::kLp64 ? p.current_lp64 : p.current_ilp32;
    // Triggered EV_ONESHOT USER changes on idents 5 and 6 (udata 0x50 and
    // 0x60): each call adds, triggers and retrieves them afresh.
    auto put = [&](size_t i, uint64_t ident) {
      std::byte* ch = ctx_.mem.at(kChanges + i * l.size);
      std::memset(ch, 0, l.size);
      const auto filter = static_cast<int16_t>(bsd::FilterNumberOf(p, KFilter::kUser));
      const uint16_t flags = kAdd | kOneshot;
      const uint32_t fflags = freebsd::NOTE_TRIGGER;
      const uint64_t udata = ident << 4;
      std::memcpy(ch + l.ident.offset, &ident, l.ident.width);
      std::memcpy(ch + l.filter.offset, &filter, 2);
      std::memcpy(ch + l.flags.offset, &flags, 2);
      std::memcpy(ch + l.fflags.offset, &fflags, 4);
      std::memcpy(ch + l.udata.offset, &udata, l.udata.width);
    };
    put(0, 5);
    put(1, 6);
    for (uint64_t count : {1, 2}) {
      std::vector<std::byte> copied;
      for (bool lends : {false, true}) {
        SCOPED_TRACE(testing::Message() << "ILP32 " << (m == DataModel::kIlp32) << " count " << count
                                        << " lends " << lends);
        ctx_.mem.lends = lends;
        ctx_.mem.reads = ctx_.mem.writes = ctx_.mem.lent = 0;
        std::memset(ctx_.mem.at(kEvents), 0xee, 3 * l.size);
        Outcome o = Call(FbKevent, m, {3, kChanges, count, kEvents, 3, 0});
        ASSERT_EQ(o.kind, Outcome::Kind::kValue) << o.error;
        EXPECT_EQ(o.value, static_cast<int64_t>(count));
        const std::vector<std::byte> got(ctx_.mem.at(kEvents), ctx_.mem.at(kEvents) + 3 * l.size);
        EXPECT_EQ(std::to_integer<int>(got[count * l.size]), 0xee);  // nothing past the events
        emul::KChange first = bsd::DecodeChange(p, l, std::span(got.data(), l.size));
        EXPECT_EQ(first.kev.ident, 5u);
        EXPECT_EQ(first.kev.udata, 0x50u);
        if (!lends) {
          EXPECT_EQ(ctx_.mem.reads, 1);
          EXPECT_EQ(ctx_.mem.writes, 1);
          copied = got;
          continue;
        }
        EXPECT_EQ(got, copied) << "in place, other bytes than the copy's";
        EXPECT_EQ(ctx_.mem.lent, 2);
        EXPECT_EQ(ctx_.mem.reads, 0) << "the change list was copied, not decoded in place";
        EXPECT_EQ(ctx_.mem.writes, 0) << "the events were copied, not encoded in place";
      }
    }
    EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 0u);
  }
  // Lists that are not lent: an unmapped change list or event list is EFAULT.
  ctx_.mem.lends = true;
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {3, 0x20, 1, kEvents, 1, 0}).error, EFAULT);
  PutUserChange(ctx_.mem, kChanges, p, 0, 5, kAdd | kOneshot, 0, freebsd::NOTE_TRIGGER);
  const uint64_t past_end = FakeMemory::kBase + ctx_.mem.mem.size() - 8;  // one event does not fit
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {3, kChanges, 1, past_end, 1, 0}).error, EFAULT);
  EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 0u);  // the event was taken (and lost, as copyout loses it)
}

TEST_F(KeventHandlerTest, RecordsBeforeTheRoomRanOutAreInTheList) {
  // OB kern_event.c:940-956 (copyout at 948), FreeBSD kqueue_kevent: with
  // room for one record, the first failure is copied out at once; the
  // second finds nevents == 0 and the call fails with its errno, the first
  // record staying in the list; the change after it is not applied.
  for (const bsd::KqueuePersonality* p : {&bsd::Openbsd(), &bsd::Freebsd()}) {
    ctx_.kq = *kqs_.Create({50, 50});
    PutUserChange(ctx_.mem, kChanges, *p, 0, 77, kDelete, 0x1234);
    PutUserChange(ctx_.mem, kChanges, *p, 1, 78, kDelete);
    PutUserChange(ctx_.mem, kChanges, *p, 2, 5, kAdd);
    std::memset(ctx_.mem.at(kEvents), 0xee, 2 * p->current_lp64.size);
    Handler h = p == &bsd::Openbsd() ? ObKevent : FbKevent;
    Outcome o = Call(h, DataModel::kLp64, {3, kChanges, 3, kEvents, 1, 0});
    EXPECT_EQ(o.kind, Outcome::Kind::kError);
    EXPECT_EQ(o.error, ENOENT);
    emul::KChange rec = bsd::DecodeChange(*p, p->current_lp64,
                                          std::span(ctx_.mem.at(kEvents), p->current_lp64.size));
    uint16_t raw_flags;
    std::memcpy(&raw_flags, ctx_.mem.at(kEvents) + p->current_lp64.flags.offset, 2);
    EXPECT_EQ(raw_flags, kError) << PersonalityName(p->personality);
    EXPECT_EQ(rec.kev.ident, 77u);
    EXPECT_EQ(rec.kev.data, ENOENT);
    EXPECT_EQ(rec.kev.udata, 0x1234u);
    EXPECT_EQ(std::to_integer<int>(*ctx_.mem.at(kEvents + p->current_lp64.size)), 0xee);  // one slot only
    EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 0u);
  }
}

TEST_F(KeventHandlerTest, DragonflyNullEventlistStopsAtTheFailingChange) {
  // DF kern_event.c:846-853: the record is copied out whatever nevents says;
  // into a NULL list the copy-out faults (DF :759-765) and the call returns
  // the change's error at once: the changes after it are not applied.
  ctx_.kq = *kqs_.Create({50, 50});
  const bsd::KqueuePersonality& p = bsd::Dragonfly();
  PutUserChange(ctx_.mem, kChanges, p, 0, 77, kDelete);
  PutUserChange(ctx_.mem, kChanges, p, 1, 5, kAdd);
  Outcome o = Call(DfKevent, DataModel::kLp64, {3, kChanges, 2, 0, 0, 0});
  EXPECT_EQ(o.kind, Outcome::Kind::kError);
  EXPECT_EQ(o.error, ENOENT);
  EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 0u);
  // A writable list with nevents == 0: the record is posted past the room,
  // the later change applied, the call returns the records (DF :854-861).
  o = Call(DfKevent, DataModel::kLp64, {3, kChanges, 2, kEvents, 0, 0});
  ASSERT_EQ(o.kind, Outcome::Kind::kValue);
  EXPECT_EQ(o.value, 1);
  EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 1u);
  // OpenBSD and FreeBSD with nevents == 0: the errno at once, nothing after
  // it applied, whether or not the list is NULL (OB :953-955).
  for (const bsd::KqueuePersonality* q : {&bsd::Openbsd(), &bsd::Freebsd()}) {
    ctx_.kq = *kqs_.Create({50, 50});
    PutUserChange(ctx_.mem, kChanges, *q, 0, 77, kDelete);
    PutUserChange(ctx_.mem, kChanges, *q, 1, 5, kAdd);
    Handler h = q == &bsd::Openbsd() ? ObKevent : FbKevent;
    for (uint64_t list : {uint64_t{0}, kEvents}) {
      o = Call(h, DataModel::kLp64, {3, kChanges, 2, list, 0, 0});
      EXPECT_EQ(o.error, ENOENT);
      EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 0u);
    }
  }
}

TEST_F(KeventHandlerTest, NegativeNeventsPostsEveryRecord) {
  // nevents is only compared with 0 while posting (OB kern_event.c:945,
  // FreeBSD kqueue_kevent): -1 never runs out. Without records FreeBSD's
  // kqueue_scan refuses it (EINVAL) after the changes; OpenBSD returns 0.
  const uint64_t minus_one = 0xffffffff;
  for (const bsd::KqueuePersonality* p : {&bsd::Openbsd(), &bsd::Freebsd()}) {
    ctx_.kq = *kqs_.Create({50, 50});
    PutUserChange(ctx_.mem, kChanges, *p, 0, 77, kDelete);
    PutUserChange(ctx_.mem, kChanges, *p, 1, 78, kDelete);
    Handler h = p == &bsd::Openbsd() ? ObKevent : FbKevent;
    Outcome o = Call(h, DataModel::kLp64, {3, kChanges, 2, kEvents, minus_one, 0});
    ASSERT_EQ(o.kind, Outcome::Kind::kValue) << PersonalityName(p->personality);
    EXPECT_EQ(o.value, 2);
    emul::KChange second = bsd::DecodeChange(
        *p, p->current_lp64,
        std::span(ctx_.mem.at(kEvents + p->current_lp64.size), p->current_lp64.size));
    EXPECT_EQ(second.kev.ident, 78u);
    EXPECT_EQ(second.kev.data, ENOENT);
    PutUserChange(ctx_.mem, kChanges, *p, 0, 5, kAdd);
    o = Call(h, DataModel::kLp64, {3, kChanges, 1, kEvents, minus_one, 0});
    if (p == &bsd::Freebsd()) {
      EXPECT_EQ(o.error, EINVAL);
    } else {
      EXPECT_EQ(o.kind, Outcome::Kind::kValue);
      EXPECT_EQ(o.value, 0);
    }
    EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 1u);  // applied before the EINVAL
  }
  // FreeBSD: nchanges < 0 is EINVAL before anything (kqueue_kevent).
  EXPECT_EQ(Call(FbKevent, DataModel::kLp64, {3, kChanges, minus_one, kEvents, 1, 0}).error,
            EINVAL);
}

TEST_F(KeventHandlerTest, RecordAfterAFaultedOneTakesTheNextSlotOnlyOnOpenbsd) {
  // OpenBSD moves the list on after every record, copied out or not (OB
  // kern_event.c:948-950); FreeBSD's kevent_copyout advances it only when
  // the copy-out succeeded, so the next record faults at the same place.
  // The list starts one record before the writable memory.
  for (const bsd::KqueuePersonality* p : {&bsd::Openbsd(), &bsd::Freebsd()}) {
    ctx_.kq = *kqs_.Create({50, 50});
    const size_t size = p->current_lp64.size;
    PutUserChange(ctx_.mem, kChanges, *p, 0, 77, kDelete);
    PutUserChange(ctx_.mem, kChanges, *p, 1, 78, kDelete);
    std::memset(ctx_.mem.at(FakeMemory::kBase), 0xee, size);
    Handler h = p == &bsd::Openbsd() ? ObKevent : FbKevent;
    Outcome o = Call(h, DataModel::kLp64, {3, kChanges, 2, FakeMemory::kBase - size, 4, 0});
    ASSERT_EQ(o.kind, Outcome::Kind::kValue);
    EXPECT_EQ(o.value, 2);  // copy-out results ignored: nerrors
    emul::KChange at_base =
        bsd::DecodeChange(*p, p->current_lp64, std::span(ctx_.mem.at(FakeMemory::kBase), size));
    if (p == &bsd::Openbsd()) {
      EXPECT_EQ(at_base.kev.ident, 78u);
      EXPECT_EQ(at_base.kev.data, ENOENT);
    } else {
      EXPECT_EQ(std::to_integer<int>(*ctx_.mem.at(FakeMemory::kBase)), 0xee);
    }
  }
}

TEST_F(KeventHandlerTest, UnreadableChangelistIsEfault) {
  ctx_.kq = *kqs_.Create({50, 50});
  Outcome o = Call(DfKevent, DataModel::kLp64, {3, 0x20, 1, kEvents, 1, 0});
  EXPECT_EQ(o.error, EFAULT);
}

// docs/design.md "Signals and exactly once". A signal took the caller away
// after the changes were applied: they stay applied (a BSD kevent that
// registered changes returns without EINTR unless it then slept: OB
// kern_event.c:929-965, 975, 1309-1317; DF kern_event.c:820-861, 896-967),
// so the answer is still given and stands for a re-issue of the call. Before,
// nothing was answered, the re-issue got EINTR and the program's retry
// triggered the one-shot knote a second time.
TEST_F(KeventHandlerTest, ChangesStandWhenTheCallerIsGone) {
  for (const bsd::KqueuePersonality* p : {&bsd::Freebsd(), &bsd::Openbsd(), &bsd::Dragonfly()}) {
    ctx_.kq = *kqs_.Create({50, 50});
    const Handler h = p == &bsd::Freebsd()   ? FbKevent
                      : p == &bsd::Openbsd() ? ObKevent
                                             : DfKevent;
    const uint16_t oneshot = 0x0010;
    const uint32_t trigger = 0x01000000;  // NOTE_TRIGGER, the same on the three
    PutUserChange(ctx_.mem, kChanges, *p, 0, 7, kAdd | oneshot, 0, trigger);
    ctx_.caller_gone = true;
    Outcome o = Call(h, DataModel::kLp64, {3, kChanges, 1, 0, 0, 0});  // no event list
    ctx_.caller_gone = false;
    ASSERT_EQ(o.kind, Outcome::Kind::kValue) << PersonalityName(p->personality);
    EXPECT_EQ(o.value, 0);
    EXPECT_TRUE(o.stands_if_refused) << PersonalityName(p->personality);
    // The knote was added and triggered, once.
    std::memset(ctx_.mem.at(kTimeout), 0, 16);
    o = Call(h, DataModel::kLp64, {3, 0, 0, kEvents, 4, kTimeout});
    EXPECT_EQ(o.value, 1) << PersonalityName(p->personality);
    o = Call(h, DataModel::kLp64, {3, 0, 0, kEvents, 4, kTimeout});
    EXPECT_EQ(o.value, 0) << PersonalityName(p->personality);
  }
}

// The same with EV_RECEIPT records: they are out, the answer (their count)
// stands.
TEST_F(KeventHandlerTest, ChangesStandWhenTheCallerIsGoneWithReceipts) {
  ctx_.kq = *kqs_.Create({50, 50});
  const uint16_t receipt = 0x0040, oneshot = 0x0010;
  PutUserChange(ctx_.mem, kChanges, bsd::Freebsd(), 0, 7, kAdd | oneshot | receipt, 0, 0x01000000);
  ctx_.caller_gone = true;
  Outcome o = Call(FbKevent, DataModel::kLp64, {3, kChanges, 1, kEvents, 1, 0});
  ctx_.caller_gone = false;
  ASSERT_EQ(o.kind, Outcome::Kind::kValue);
  EXPECT_EQ(o.value, 1);
  EXPECT_TRUE(o.stands_if_refused);
  EXPECT_EQ(kqs_.PendingCount(ctx_.kq), 1u);
}

// Retrieved events are what a refused answer takes back: they go back to the
// queue, and that answer does not stand (its re-issue is an interrupted
// call). Guards the other half of the rule above (unchanged by it).
TEST_F(KeventHandlerTest, RetrievalRefusedPutsTheEventBackAndDoesNotStand) {
  ctx_.kq = *kqs_.Create({50, 50});
  PutUserChange(ctx_.mem, kChanges, bsd::Freebsd(), 0, 7, kAdd | 0x0010, 0, 0x01000000);
  ASSERT_EQ(Call(FbKevent, DataModel::kLp64, {3, kChanges, 1, 0, 0, 0}).value, 0);
  std::memset(ctx_.mem.at(kTimeout), 0, 16);
  ctx_.caller_gone = true;
  Outcome o = Call(FbKevent, DataModel::kLp64, {3, 0, 0, kEvents, 4, kTimeout});
  ctx_.caller_gone = false;
  EXPECT_FALSE(o.kind == Outcome::Kind::kValue && o.stands_if_refused);
  EXPECT_EQ(kqs_.PendingCount(ctx_.kq), 1u);
  o = Call(FbKevent, DataModel::kLp64, {3, 0, 0, kEvents, 4, kTimeout});
  EXPECT_EQ(o.value, 1);
  EXPECT_EQ(kqs_.PendingCount(ctx_.kq), 0u);
}

// A change list longer than one chunk whose second chunk could not be read
// because a signal took the caller away: nothing happened, not even the
// first chunk (a genuine fault applies what was read, OB kern_event.c:
// 929-935); nothing is answered, so the re-issue runs afresh.
TEST_F(KeventHandlerTest, ChangeListCutShortByASignalAppliesNothing) {
  ctx_.kq = *kqs_.Create({50, 50});
  const bsd::KqueuePersonality& p = bsd::Openbsd();
  const size_t chunk = 64;  // kevent.cc kChunk
  const uint64_t list = FakeMemory::kBase + ctx_.mem.mem.size() - chunk * p.current_lp64.size;
  for (size_t i = 0; i < chunk; ++i) PutUserChange(ctx_.mem, list, p, i, 100 + i, kAdd);
  // Change 65 lies past the mapped memory: its read fails.
  ctx_.caller_gone = true;
  Outcome o = Call(ObKevent, DataModel::kLp64, {3, list, chunk + 1, 0, 0, 0});
  ctx_.caller_gone = false;
  EXPECT_EQ(o.kind, Outcome::Kind::kValue);
  EXPECT_EQ(o.value, -999);  // FakeContext::Answer: nothing answered
  EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), 0u);
  // With the caller there, the fault applies the first chunk, then EFAULT.
  o = Call(ObKevent, DataModel::kLp64, {3, list, chunk + 1, 0, 0, 0});
  EXPECT_EQ(o.error, EFAULT);
  EXPECT_EQ(kqs_.KnoteCount(ctx_.kq), chunk);
}

}  // namespace
}  // namespace evshim::abi
