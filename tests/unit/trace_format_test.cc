// Trace formatting without a process: the illumos formatters (golden strings
// for every portfs opcode and the timer calls) and the tracer's line, JSON
// and summary assembly with a fake clock.
#include <gtest/gtest.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "abi/common/wire.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/layouts.h"
#include "abi/illumos/trace.h"
#include "abi/syscall_table.h"
#include "abi/trace/format.h"
#include "shim/trace/sites.h"
#include "shim/trace/tracer.h"

namespace {

using evshim::abi::DataModel;
using evshim::abi::Personality;
using evshim::abi::SyscallArgs;
using evshim::abi::trace::Answer;
using evshim::abi::trace::CallText;
using evshim::abi::trace::CallView;
using evshim::abi::trace::ResultText;
using evshim::abi::trace::Write;
namespace il = evshim::abi::illumos;
namespace st = evshim::shim::trace;

// Memory made of byte blocks at fixed addresses.
class FakeMemory : public evshim::abi::GuestMemory {
 public:
  void Put(uint64_t addr, std::vector<std::byte> bytes) { blocks_[addr] = std::move(bytes); }
  evshim::emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    for (auto& [a, b] : blocks_) {
      if (addr >= a && addr + out.size() <= a + b.size()) {
        std::memcpy(out.data(), b.data() + (addr - a), out.size());
        return {};
      }
    }
    return evshim::emul::Errno{EFAULT};
  }
  evshim::emul::Result<void> Write(uint64_t, std::span<const std::byte>) override {
    return evshim::emul::Errno{EFAULT};
  }

 private:
  std::map<uint64_t, std::vector<std::byte>> blocks_;
};

std::vector<std::byte> Timespec64(int64_t s, int64_t ns) {
  std::vector<std::byte> b(16);
  evshim::abi::ByteWriter w(b);
  w.Put<int64_t>(0, s);
  w.Put<int64_t>(8, ns);
  return b;
}

std::vector<std::byte> Ints(std::initializer_list<int32_t> v) {
  std::vector<std::byte> b(v.size() * 4);
  evshim::abi::ByteWriter w(b);
  size_t i = 0;
  for (int32_t x : v) w.Put<int32_t>(4 * i++, x);
  return b;
}

std::vector<std::byte> Event(DataModel m, uint32_t events, uint16_t source, uint64_t object, uint64_t user) {
  const auto& l = il::PortEvent(m);
  std::vector<std::byte> b(l.size);
  evshim::abi::ByteWriter w(b);
  w.Put<uint32_t>(l.events, events);
  w.Put<uint16_t>(l.source, source);
  w.PutPtr(l.object, evshim::abi::PointerSize(m), object);
  w.PutPtr(l.user, evshim::abi::PointerSize(m), user);
  return b;
}

// Formats one call: "name(args) = result".
std::string Show(const evshim::abi::trace::Formatter& f, std::string_view table_name, DataModel m,
                 std::array<uint64_t, 6> raw, Answer answer, FakeMemory* mem = nullptr,
                 std::vector<Write> writes = {}) {
  SyscallArgs args(m, raw);
  CallText text;
  text.name = std::string(table_name);
  f.enter(CallView(Personality::kIllumos, m, args, mem, {}), text);
  ResultText r;
  f.exit(CallView(Personality::kIllumos, m, args, nullptr, writes), text, answer, r);
  std::vector<std::string> values;
  for (auto& a : text.args) values.push_back(a.value);
  for (auto& [i, v] : r.outputs) values.at(i) = v;
  std::string s = text.name + "(";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + values[i];
  return s + ") = " + r.text;
}

constexpr uint64_t kSeq = 0x500000000ULL;  // the library's call number in the upper half (ignored)

TEST(IllumosTrace, PortCreate) {
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {kSeq | 0x100, 0, 0, 0, 0, 0}, {3, 0}),
            "port_create() = 3");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {0x100, 0, 0, 0, 0, 0}, {0, EAGAIN}),
            "port_create() = -1 EAGAIN (Resource temporarily unavailable)");
}

TEST(IllumosTrace, AssociateAndDissociate) {
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64,
                 {kSeq | 1, 5, 4, 7, il::POLLIN | il::POLLOUT, 0x7f0012345678}, {0, 0}),
            "port_associate(5, PORT_SOURCE_FD, 7, POLLIN|POLLOUT, 0x7f0012345678) = 0");
  // Junk in the upper half of int arguments is ignored (ILP32 and LP64 alike).
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kIlp32,
                 {1, 0xdead000000000005, 4, 7, il::POLLRDHUP | il::POLLWRBAND | 0x8000, 0}, {0, EBADFD}),
            "port_associate(5, PORT_SOURCE_FD, 7, POLLWRBAND|POLLRDHUP|0x8000, NULL) = -1 EBADFD (File "
            "descriptor in bad state)");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {1, 5, 7, 0x1000, 0, 0}, {0, EOPNOTSUPP}),
            "port_associate(5, PORT_SOURCE_FILE, 0x1000, 0, NULL) = -1 EOPNOTSUPP (Operation not supported)");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {2, 5, 4, 7, 0, 0}, {0, 0}),
            "port_dissociate(5, PORT_SOURCE_FD, 7) = 0");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {2, 5, 42, 7, 0, 0}, {0, EINVAL}),
            "port_dissociate(5, 42, 0x7) = -1 EINVAL (Invalid argument)");
}

TEST(IllumosTrace, SendAndSendn) {
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {3, 5, 42, 0x1234, 0, 0}, {0, 0}),
            "port_send(5, 42, 0x1234) = 0");
  FakeMemory mem;
  mem.Put(0x1000, Ints({5, 99}));
  std::vector<Write> w = {{0x2000, Ints({0, EBADF})}};
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {0x104, 0x1000, 0x2000, 2, 8, 0x55}, {1, 0},
                 &mem, w),
            "port_sendn([5, 99], [0, EBADF], 2, 8, 0x55) = 1");
  // All sent: errors[] is not written, so it stays a pointer.
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {0x104, 0x1000, 0x2000, 1, 8, 0}, {1, 0}, &mem),
            "port_sendn([5], 0x2000, 1, 8, NULL) = 1");
  // Unreadable list: the pointer.
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {0x104, 0x9000, 0x2000, 1, 8, 0}, {0, EFAULT}, &mem),
            "port_sendn(0x9000, 0x2000, 1, 8, NULL) = -1 EFAULT (Bad address)");
}

TEST(IllumosTrace, GetShowsTheEventItWrote) {
  std::vector<Write> w = {{0x3000, Event(DataModel::kLp64, il::POLLIN, 4, 7, 0xabc)}};
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {5, 5, 0x3000, 1, 500000000, 0x4000}, {0, 0},
                 nullptr, w),
            "port_get(5, {source=PORT_SOURCE_FD, events=POLLIN, object=7, user=0xabc}, {1.500000000}) = 0");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {5, 5, 0x3000, 0, 0, 0}, {0, ETIME}),
            "port_get(5, 0x3000, NULL) = -1 ETIME (Timer expired)");
  // ILP32: sec/nsec by value are 32-bit longs, sign-extended.
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kIlp32, {5, 5, 0x3000, 0xffffffff, 5, 0x4000}, {0, EINVAL}),
            "port_get(5, 0x3000, {tv_sec=-1, tv_nsec=5}) = -1 EINVAL (Invalid argument)");
}

TEST(IllumosTrace, GetnDecodesTwoResultsAndEvents) {
  FakeMemory mem;
  mem.Put(0x5000, Timespec64(2, 0));
  std::vector<std::byte> two = Event(DataModel::kLp64, 7, 3, 0, 0x10);
  std::vector<std::byte> fd = Event(DataModel::kLp64, il::POLLOUT, 4, 9, 0);
  two.insert(two.end(), fd.begin(), fd.end());
  std::vector<Write> w = {{0x3000, two}};
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {6, 5, 0x3000, 4, 1, 0x5000}, {2, 0}, &mem, w),
            "port_getn(5, [{source=PORT_SOURCE_USER, events=7, object=0, user=0x10}, {source=PORT_SOURCE_FD, "
            "events=POLLOUT, object=9, user=NULL}], 4, 1, {2.000000000}) = 0 (nget=2)");
  // LP64 ETIME rides in the upper half.
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {6, 5, 0x3000, 4, 1, 0x5000},
                 {static_cast<int64_t>(62ULL << 32), 0}, &mem),
            "port_getn(5, 0x3000, 4, 1, {2.000000000}) = -1 ETIME (Timer expired) (nget=0)");
  // ILP32 ETIME is bit 30 of the count; the event is the 16-byte layout.
  std::vector<Write> w32 = {{0x3000, Event(DataModel::kIlp32, 1, 3, 0, 0x20)}};
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kIlp32, {6, 5, 0x3000, 4, 2, 0}, {0x40000001, 0},
                 nullptr, w32),
            "port_getn(5, [{source=PORT_SOURCE_USER, events=1, object=0, user=0x20}], 4, 2, NULL) = -1 ETIME "
            "(Timer expired) (nget=1)");
  // max 0: the count only, nothing written.
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {6, 5, 0, 0, 0, 0}, {3, 0}),
            "port_getn(5, NULL, 0, 0, NULL) = 0 (nget=3)");
  // An unreadable timeout shows as its pointer.
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {6, 5, 0x3000, 4, 1, 0x9999}, {0, EFAULT}, &mem),
            "port_getn(5, 0x3000, 4, 1, 0x9999) = -1 EFAULT (Bad address)");
}

TEST(IllumosTrace, AlertDispatchAndUnknownOpcodes) {
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {7, 5, 1, 3, 0x66, 0}, {0, 0}),
            "port_alert(5, PORT_ALERT_SET, 3, 0x66) = 0");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {7, 5, 9, 3, 0, 0}, {0, EINVAL}),
            "port_alert(5, 9, 3, NULL) = -1 EINVAL (Invalid argument)");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {8, 5, 1, 2, 3, 4}, {0, ENOSYS}),
            "port_dispatch(5, 0x1, 0x2, 0x3, 0x4) = -1 ENOSYS (Function not implemented)");
  EXPECT_EQ(Show(il::kPortfsTrace, "portfs", DataModel::kLp64, {0x42, 5, 0, 0, 0, 0}, {0, EINVAL}),
            "portfs(0x42, 0x5, 0, 0, 0, 0) = -1 EINVAL (Invalid argument)");
}

TEST(IllumosTrace, Timers) {
  FakeMemory mem;
  // sigevent {SIGEV_PORT, 0, &port_notify}; port_notify {port 5, user 0x77}
  std::vector<std::byte> sev(24), pn(16);
  evshim::abi::ByteWriter ws(sev), wp(pn);
  ws.Put<int32_t>(0, 4);
  ws.Put<uint64_t>(8, 0x6000);
  wp.Put<int32_t>(0, 5);
  wp.Put<uint64_t>(8, 0x77);
  mem.Put(0x5000, sev);
  mem.Put(0x6000, pn);
  std::vector<Write> w = {{0x7000, Ints({3})}};
  EXPECT_EQ(Show(il::kTimerTrace, "timer_create", DataModel::kLp64, {4, 0x5000, 0x7000, 0, 0, 0}, {0, 0}, &mem, w),
            "timer_create(CLOCK_MONOTONIC, {sigev_notify=SIGEV_PORT, portnfy_port=5, portnfy_user=0x77}, [3]) = 0");
  EXPECT_EQ(Show(il::kTimerTrace, "timer_delete", DataModel::kLp64, {3, 0, 0, 0, 0, 0}, {0, ENOSYS}),
            "timer_delete(3) = -1 ENOSYS (Function not implemented)");
  std::vector<std::byte> its(32);
  evshim::abi::ByteWriter wi(its);
  wi.Put<int64_t>(16, 1);
  mem.Put(0x8000, its);
  EXPECT_EQ(Show(il::kTimerTrace, "timer_settime", DataModel::kLp64, {3, 1, 0x8000, 0, 0, 0}, {0, 0}, &mem),
            "timer_settime(3, TIMER_ABSTIME, {it_interval={0.000000000}, it_value={1.000000000}}, NULL) = 0");
  EXPECT_EQ(Show(il::kTimerTrace, "timer_gettime", DataModel::kLp64, {3, 0x8000, 0, 0, 0, 0}, {0, 0}, nullptr,
                 {{0x8000, its}}),
            "timer_gettime(3, {it_interval={0.000000000}, it_value={1.000000000}}) = 0");
  EXPECT_EQ(Show(il::kTimerTrace, "timer_getoverrun", DataModel::kLp64, {3, 0, 0, 0, 0, 0}, {2, 0}),
            "timer_getoverrun(3) = 2");
}

TEST(TraceTable, EveryIllumosEntryHasAFormatterAndNamesAreKnown) {
  for (const auto& e : evshim::abi::AllSyscalls()) {
    if (e.personality == Personality::kIllumos) {
      EXPECT_NE(e.trace, nullptr) << e.name;
    }
  }
  EXPECT_TRUE(st::KnownCallName("port_getn"));
  EXPECT_TRUE(st::KnownCallName("portfs"));
  EXPECT_TRUE(st::KnownCallName("timer_settime"));
  EXPECT_FALSE(st::KnownCallName("port_frobnicate"));
}

TEST(TraceHelpers, FlagsEnumsAndTimespecs) {
  constexpr evshim::abi::trace::FlagName names[] = {{1, "A"}, {4, "C"}};
  EXPECT_EQ(evshim::abi::trace::Flags(0, names), "0");
  EXPECT_EQ(evshim::abi::trace::Flags(5, names), "A|C");
  EXPECT_EQ(evshim::abi::trace::Flags(0x13, names), "A|0x12");
  EXPECT_EQ(evshim::abi::trace::Timespec(1, 5), "{1.000000005}");
  EXPECT_EQ(evshim::abi::trace::Timespec(1, 1000000000), "{tv_sec=1, tv_nsec=1000000000}");
  EXPECT_EQ(evshim::abi::trace::ErrorText(ETIME), "-1 ETIME (Timer expired)");
  EXPECT_EQ(st::JsonString("a\"b\\c\n\x01"), "\"a\\\"b\\\\c\\n\\u0001\"");
}

// --- the tracer, with a fake clock and sink ---

class TracerTest : public ::testing::Test {
 protected:
  std::unique_ptr<st::Tracer> Make(st::TraceOptions o) {
    return std::make_unique<st::Tracer>(
        std::move(o), [this](std::string_view s) { out += s; }, [this] { return now; }, nullptr);
  }
  evshim::abi::trace::CallStart Call(uint64_t id, int pid, int tid, std::array<uint64_t, 6> raw,
                                     DataModel m = DataModel::kLp64) {
    evshim::abi::trace::CallStart c;
    c.id = id;
    c.caller = {pid, tid};
    c.model = m;
    c.nr = m == DataModel::kLp64 ? 182 : 1000;
    c.entry = evshim::abi::FindSyscall(m, c.nr);
    c.raw = raw;
    c.memory = &mem;
    return c;
  }
  std::string out;
  int64_t now = 1'000'000'000;
  FakeMemory mem;
};

TEST_F(TracerTest, CompleteLineWithTidAndDuration) {
  auto t = Make({});
  t->OnEnter(Call(1, 10, 10, {0x100, 0, 0, 0, 0, 0}));
  now += 250'000;
  t->OnExit(1, 3, 0, true);
  t->OnEnter(Call(2, 10, 11, {3, 3, 42, 0, 0, 0}));
  t->OnExit(2, 0, 0, true);
  EXPECT_EQ(out,
            "[pid 10] port_create() = 3 <0.000250>\n"
            "[pid 10 tid 11] port_send(3, 42, NULL) = 0 <0.000000>\n");
}

TEST_F(TracerTest, BlockedCallIsUnfinishedThenResumedWithItsEvents) {
  auto t = Make({});
  mem.Put(0x5000, Timespec64(2, 0));
  t->OnEnter(Call(1, 10, 10, {6, 3, 0x3000, 4, 1, 0x5000}));
  t->OnDeferred(1);
  t->OnEnter(Call(2, 10, 11, {3, 3, 42, 0, 0, 0}));
  now += 100'000'000;
  t->OnWrite(1, 0x3000, Event(DataModel::kLp64, 42, 3, 0, 0));
  t->OnExit(1, 1, 0, true);
  t->OnExit(2, 0, 0, true);
  EXPECT_EQ(out,
            "[pid 10] port_getn(3, <unfinished ...>\n"
            "[pid 10] <... port_getn resumed>[{source=PORT_SOURCE_USER, events=42, object=0, user=NULL}], 4, 1, "
            "{2.000000000}) = 0 (nget=1) <0.100000>\n"
            "[pid 10 tid 11] port_send(3, 42, NULL) = 0 <0.100000>\n");
}

TEST_F(TracerTest, AnsweredWhileDispatchingIsOneLine) {
  auto t = Make({});
  t->OnEnter(Call(1, 10, 10, {5, 3, 0x3000, 0, 0, 0}));
  t->OnWrite(1, 0x3000, Event(DataModel::kLp64, 1, 4, 7, 0));
  t->OnExit(1, 0, 0, true);
  t->OnDeferred(1);  // the handler returns Deferred after answering
  EXPECT_EQ(out, "[pid 10] port_get(3, {source=PORT_SOURCE_FD, events=POLLIN, object=7, user=NULL}, NULL) = 0 <0.000000>\n");
}

TEST_F(TracerTest, UnansweredCallsEndAsInterrupted) {
  auto t = Make({});
  t->OnEnter(Call(1, 10, 10, {5, 3, 0x3000, 0, 0, 0}));
  t->OnDeferred(1);
  t->OnEnter(Call(2, 10, 10, {5, 3, 0x3000, 0, 0, 0}));  // same thread: the first was abandoned
  t->OnExit(2, 0, EINTR, true);
  t->OnEnter(Call(3, 12, 12, {5, 3, 0x3000, 0, 0, 0}));
  t->OnDeferred(3);
  t->Finish();  // its process went away
  EXPECT_EQ(out,
            "[pid 10] port_get(3, <unfinished ...>\n"
            "[pid 10] <... port_get resumed>0x3000, NULL) = ? (interrupted) <0.000000>\n"
            "[pid 10] port_get(3, 0x3000, NULL) = -1 EINTR (Interrupted system call) <0.000000>\n"
            "[pid 12] port_get(3, <unfinished ...>\n"
            "[pid 12] <... port_get resumed>0x3000, NULL) = ? (interrupted) <0.000000>\n");
}

TEST_F(TracerTest, FilterSelectsByCallOrSyscallName) {
  st::TraceOptions o;
  o.only = {"port_send"};
  auto t = Make(o);
  t->OnEnter(Call(1, 10, 10, {0x100, 0, 0, 0, 0, 0}));
  t->OnExit(1, 3, 0, true);
  t->OnEnter(Call(2, 10, 10, {3, 3, 1, 0, 0, 0}));
  t->OnExit(2, 0, 0, true);
  EXPECT_EQ(out, "[pid 10] port_send(3, 1, NULL) = 0 <0.000000>\n");
  out.clear();
  o.only = {"portfs"};
  auto all = Make(o);
  all->OnEnter(Call(1, 10, 10, {0x100, 0, 0, 0, 0, 0}));
  all->OnExit(1, 3, 0, true);
  EXPECT_EQ(out, "[pid 10] port_create() = 3 <0.000000>\n");
}

TEST_F(TracerTest, DataModelTagWhenNotTheDefault) {
  auto t = Make({});
  t->OnEnter(Call(1, 10, 10, {0x100, 0, 0, 0, 0, 0}));
  t->OnExit(1, 3, 0, true);
  t->OnEnter(Call(2, 20, 20, {0x100, 0, 0, 0, 0, 0}, DataModel::kIlp32));
  t->OnExit(2, 3, 0, true);
  EXPECT_EQ(out,
            "[pid 10] port_create() = 3 <0.000000>\n"
            "[pid 20 ilp32] port_create() = 3 <0.000000>\n");
}

TEST_F(TracerTest, JsonLine) {
  st::TraceOptions o;
  o.json = true;
  auto t = Make(o);
  now += 2000;
  t->OnEnter(Call(1, 10, 11, {kSeq | 3, 3, 42, 0, 0, 0}));
  now += 1500;
  t->OnExit(1, 0, EBADF, true);
  EXPECT_EQ(out,
            "{\"pid\":10,\"tid\":11,\"personality\":\"illumos\",\"data_model\":\"lp64\",\"syscall\":\"portfs\","
            "\"nr\":182,\"call\":\"port_send\",\"args\":[{\"name\":\"port\",\"value\":\"3\",\"output\":false},"
            "{\"name\":\"events\",\"value\":\"42\",\"output\":false},{\"name\":\"user\",\"value\":\"NULL\","
            "\"output\":false}],\"raw_args\":[\"0x500000003\",\"0x3\",\"0x2a\",\"0x0\",\"0x0\",\"0x0\"],"
            "\"result\":-1,\"errno\":\"EBADF\",\"result_text\":\"-1 EBADF (Bad file descriptor)\",\"failed\":true,"
            "\"api_errno\":\"EBADF\",\"start\":0.000002,\"duration\":0.000001,\"blocked\":false,"
            "\"interrupted\":false,\"served\":\"supervisor\"}\n");
}

// A call the in-process engine served (docs/trace.md "Fast mode"): its
// times and its site come with its records, not from the tracer's clock or
// /proc; JSON says who served it.
TEST_F(TracerTest, ServedInProcessUsesTheRecordsTimesAndSite) {
  st::TraceOptions o;
  o.json = true;
  o.sites = true;
  auto t = Make(o);
  st::Site site;
  site.at = {0x7f0000001000, "libevshim-engine.so", 0x1000};
  site.insn = "in-process";
  site.caller = st::Location{0x7f0000002345, "libevshim-ports.so", 0x1345};
  mem.Put(0x5000, Timespec64(2, 0));
  t->OnServedEnter(Call(1, 10, 10, {6, 3, 0x3000, 4, 1, 0x5000}), now + 1'000'000, site);
  t->OnDeferred(1);
  t->OnWrite(1, 0x3000, Event(DataModel::kLp64, 42, 3, 0, 0));
  now += 900'000'000;  // the tracer's clock is not used for it
  t->OnServedExit(1, 1, 0, true, now - 800'000'000);
  EXPECT_NE(out.find("\"start\":0.001000,\"duration\":0.099000,\"blocked\":true,\"interrupted\":false,"
                     "\"served\":\"in-process\",\"site\":{\"at\":{\"object\":\"libevshim-engine.so\","
                     "\"offset\":\"0x1000\",\"address\":\"0x7f0000001000\"},\"insn\":\"in-process\","
                     "\"caller\":{\"object\":\"libevshim-ports.so\",\"offset\":\"0x1345\","
                     "\"address\":\"0x7f0000002345\"}}}"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("[{source=PORT_SOURCE_USER, events=42, object=0, user=NULL}]"), std::string::npos) << out;
}

TEST_F(TracerTest, SummaryCountsCallsErrorsAndTime) {
  st::TraceOptions o;
  o.summary = true;
  o.lines = false;
  auto t = Make(o);
  for (uint64_t id = 1; id <= 3; ++id) {
    t->OnEnter(Call(id, 10, 10, {3, 3, 1, 0, 0, 0}));
    now += 1'000'000;
    t->OnExit(id, 0, id == 2 ? EBADF : 0, true);
  }
  t->OnEnter(Call(9, 10, 10, {0x100, 0, 0, 0, 0, 0}));
  now += 4'000'000;
  t->OnExit(9, 3, 0, true);
  t->Finish();
  EXPECT_EQ(out,
            "  calls  errors    total (s)     avg (us) call\n"
            "------- ------- ------------ ------------ ----------------\n"
            "      1       0     0.004000       4000.0 port_create\n"
            "      3       1     0.003000       1000.0 port_send\n"
            "------- ------- ------------ ------------ ----------------\n"
            "      4       1     0.007000       1750.0 total\n");
}

TEST(Sites, MapsAndLocations) {
  std::vector<st::Mapping> maps = st::ParseMaps(
      "55d0c0a00000-55d0c0a01000 r--p 00000000 08:01 123 /usr/bin/prog\n"
      "7f0000001000-7f0000002000 r-xp 00001000 08:01 456 /lib/x86_64-linux-gnu/libc.so.6\n"
      "7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0 [vdso]\n"
      "7ffe00000000-7ffe00001000 rw-p 00000000 00:00 0\n");
  ASSERT_EQ(maps.size(), 4u);
  EXPECT_TRUE(maps[1].exec);
  auto l = st::Locate(maps, 0x7f0000001234);
  ASSERT_TRUE(l.has_value());
  EXPECT_EQ(l->Text(), "libc.so.6+0x1234");
  EXPECT_EQ(st::Locate(maps, 0x7ffd00000010)->Text(), "[vdso]+0x10");
  EXPECT_EQ(st::Locate(maps, 0x7ffe00000010)->Text(), "[anon]+0x10");
  EXPECT_FALSE(st::Locate(maps, 0x10).has_value());
}

TEST(Sites, DecodesSyscallInstructions) {
  const std::byte syscall_insn[] = {std::byte{0x0f}, std::byte{0x05}};
  const std::byte int80[] = {std::byte{0xcd}, std::byte{0x80}};
  const std::byte call_rel[] = {std::byte{0xe8}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
  EXPECT_EQ(st::DecodeOne(DataModel::kLp64, 0x1000, syscall_insn), "syscall");
  EXPECT_EQ(st::DecodeOne(DataModel::kIlp32, 0x1000, int80), "int 0x80");
  EXPECT_EQ(st::DecodeOne(DataModel::kLp64, 0x1000, call_rel), "call 0x1005");
  EXPECT_EQ(st::DecodeOne(DataModel::kLp64, 0x1000, std::span(call_rel).first(3)), "");
}

}  // namespace
