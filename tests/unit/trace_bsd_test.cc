// Trace formatting of the BSD kqueue calls without a process: golden strings
// for kqueue/kqueuex/kqueue1/kevent/freebsd11_kevent of FreeBSD, OpenBSD and
// DragonFly, LP64 and ILP32 (records hand-built at the offsets of
// docs/rules-bsd.md §2, not with the codec), and a blocking kevent
// through the tracer.
#include <gtest/gtest.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "abi/bsd/trace.h"
#include "abi/common/wire.h"
#include "abi/syscall_table.h"
#include "abi/trace/format.h"
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
namespace bsd = evshim::abi::bsd;
namespace st = evshim::shim::trace;

constexpr Personality kFb = Personality::kFreebsd;
constexpr Personality kOb = Personality::kOpenbsd;
constexpr Personality kDf = Personality::kDragonfly;
constexpr DataModel kLp64 = DataModel::kLp64;
constexpr DataModel kIlp32 = DataModel::kIlp32;

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

// Where the fields of one struct kevent are, written out independently of
// abi/bsd/kevent.h (docs/rules-bsd.md §2).
struct Shape {
  size_t size, ptr, data, data_width, udata, ext;  // ext 0: none
};
constexpr Shape kFreebsd64{64, 8, 16, 8, 24, 32};
constexpr Shape kFreebsd32{56, 4, 12, 8, 20, 24};
constexpr Shape kFreebsd11_64{32, 8, 16, 8, 24, 0};
constexpr Shape kFreebsd11_32{20, 4, 12, 4, 16, 0};
constexpr Shape kOpenbsd64{32, 8, 16, 8, 24, 0};
constexpr Shape kOpenbsd32{24, 4, 12, 8, 20, 0};
constexpr Shape kDragonfly64{32, 8, 16, 8, 24, 0};
constexpr Shape kDragonfly32{20, 4, 12, 4, 16, 0};

struct Kev {
  uint64_t ident;
  int16_t filter;
  uint16_t flags;
  uint32_t fflags;
  int64_t data;
  uint64_t udata;
  std::array<uint64_t, 4> ext{};
};

// Records in `s`, filled with 0xAA first so a field read at a wrong offset shows.
std::vector<std::byte> Records(const Shape& s, std::initializer_list<Kev> evs) {
  std::vector<std::byte> b(s.size * evs.size(), std::byte{0xAA});
  size_t i = 0;
  for (const Kev& k : evs) {
    evshim::abi::ByteWriter w{std::span<std::byte>(b).subspan(i++ * s.size, s.size)};
    w.PutPtr(0, s.ptr, k.ident);
    w.Put<int16_t>(s.ptr, k.filter);
    w.Put<uint16_t>(s.ptr + 2, k.flags);
    w.Put<uint32_t>(s.ptr + 4, k.fflags);
    w.PutLong(s.data, s.data_width, k.data);
    w.PutPtr(s.udata, s.ptr, k.udata);
    if (s.ext != 0) {
      for (size_t e = 0; e < 4; ++e) w.Put<uint64_t>(s.ext + 8 * e, k.ext[e]);
    }
  }
  return b;
}

std::vector<std::byte> Timespec(size_t sec_width, size_t size, int64_t sec, int64_t nsec) {
  std::vector<std::byte> b(size, std::byte{0xAA});
  evshim::abi::ByteWriter w(b);
  w.PutLong(0, sec_width, sec);
  w.PutLong(sec_width, size - sec_width, nsec);
  return b;
}
std::vector<std::byte> Ts64(int64_t s, int64_t ns) { return Timespec(8, 16, s, ns); }
std::vector<std::byte> TsFreebsd32(int64_t s, int64_t ns) { return Timespec(4, 8, s, ns); }
std::vector<std::byte> TsOpenbsd32(int64_t s, int64_t ns) { return Timespec(8, 12, s, ns); }

// Formats one call as a single strace-like line: "name(args) = result".
std::string Show(const evshim::abi::trace::Formatter& f, std::string_view table_name, Personality p, DataModel m,
                 std::array<uint64_t, 6> raw, Answer answer, FakeMemory* mem = nullptr,
                 std::vector<Write> writes = {}) {
  SyscallArgs args(m, raw);
  CallText text;
  text.name = std::string(table_name);
  f.enter(CallView(p, m, args, mem, {}), text);
  ResultText r;
  f.exit(CallView(p, m, args, nullptr, writes), text, answer, r);
  std::vector<std::string> values;
  for (auto& a : text.args) values.push_back(a.value);
  for (auto& [i, v] : r.outputs) values.at(i) = v;
  std::string s = text.name + "(";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + values[i];
  return s + ") = " + r.text;
}

constexpr uint16_t EV_ADD = 0x1, EV_DELETE = 0x2, EV_ONESHOT = 0x10, EV_CLEAR = 0x20, EV_RECEIPT = 0x40;
constexpr uint16_t EV_ERROR = 0x4000, EV_EOF = 0x8000;
constexpr int16_t EVFILT_READ = -1, EVFILT_PROC = -5, EVFILT_SIGNAL = -6, EVFILT_TIMER = -7;
constexpr int16_t FB_USER = -11, OB_USER = -10, DF_USER = -9, OB_EXCEPT = -9, DF_EXCEPT = -8;
constexpr uint64_t kJunk = 0xdead'beef'0000'0000ULL;  // an upper half nobody may read

// --- FreeBSD ---

TEST(BsdTrace, FreebsdKeventLp64ReadsChangesTimeoutAndReturnedEvents) {
  FakeMemory mem;
  mem.Put(0x7ff000001000, Records(kFreebsd64, {{7, EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, 0x7ff000009000}}));
  mem.Put(0x7ff000002000, Ts64(1, 500000000));
  std::vector<Write> w = {{0x7ff000003000, Records(kFreebsd64, {{7, EVFILT_READ, EV_CLEAR, 0, 5, 0x7ff000009000}})}};
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kLp64, {3, 0x7ff000001000, 1, 0x7ff000003000, 8, 0x7ff000002000},
                 {1, 0}, &mem, w),
            "kevent(3, [{ident=7, EVFILT_READ, EV_ADD|EV_CLEAR, fflags=0, data=0, udata=0x7ff000009000}], 1, "
            "[{ident=7, EVFILT_READ, EV_CLEAR, fflags=0, data=5, udata=0x7ff000009000}], 8, {1.500000000}) = 1");
  // Nothing returned: the event list stays a pointer; int arguments ignore junk above bit 31.
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kLp64, {kJunk | 3, 0, kJunk, 0x7ff000003000, kJunk | 8, 0},
                 {0, 0}, &mem),
            "kevent(3, NULL, 0, 0x7ff000003000, 8, NULL) = 0");
}

TEST(BsdTrace, FreebsdExtIsDecodedAndTheStrideIs64Bytes) {
  FakeMemory mem;
  mem.Put(0x1000, Records(kFreebsd64, {{1, FB_USER, EV_ADD, 0, 0, 0x10, {0x11, 0, 0, 0x44}},
                                        {2, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0x4 /* NOTE_USECONDS */, 250, 0}}));
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kLp64, {3, 0x1000, 2, 0, 0, 0}, {0, 0}, &mem),
            "kevent(3, [{ident=1, EVFILT_USER, EV_ADD, fflags=0, data=0, udata=0x10, ext=[0x11, 0, 0, 0x44]}, "
            "{ident=2, EVFILT_TIMER, EV_ADD|EV_ONESHOT, fflags=NOTE_USECONDS, data=250, udata=NULL}], 2, NULL, 0, "
            "NULL) = 0");
}

TEST(BsdTrace, FreebsdIlp32IgnoresUpperHalvesAndUsesThe56ByteStruct) {
  FakeMemory mem;
  mem.Put(0x1000, Records(kFreebsd32, {{5, FB_USER, 0, 0xc1000021 /* TRIGGER|FFCOPY|0x21 */, -1, 0xfffffff0}}));
  mem.Put(0x2000, TsFreebsd32(2, 250000000));
  std::vector<Write> w = {{0x3000, Records(kFreebsd32, {{5, FB_USER, EV_CLEAR, 0x21, 0, 0xfffffff0, {0, 0, 0, 9}}})}};
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kIlp32,
                 {kJunk | 3, kJunk | 0x1000, kJunk | 1, kJunk | 0x3000, kJunk | 4, kJunk | 0x2000}, {1, 0}, &mem, w),
            "kevent(3, [{ident=5, EVFILT_USER, 0, fflags=NOTE_TRIGGER|NOTE_FFCOPY|0x21, data=-1, udata=0xfffffff0}], "
            "1, [{ident=5, EVFILT_USER, EV_CLEAR, fflags=0x21, data=0, udata=0xfffffff0, ext=[0, 0, 0, 0x9]}], 4, "
            "{2.250000000}) = 1");
}

TEST(BsdTrace, Freebsd11KeventUsesThe32ByteStructInBothModels) {
  FakeMemory mem;
  mem.Put(0x1000, Records(kFreebsd11_64, {{4, EVFILT_READ, EV_ADD, 0, 0, 0x99}, {1234, EVFILT_PROC, EV_ADD,
                                                                                  0x80000000, 0, 0}}));
  EXPECT_EQ(Show(bsd::kFreebsd11KeventTrace, "freebsd11_kevent", kFb, kLp64, {3, 0x1000, 2, 0, 0, 0}, {0, 0}, &mem),
            "freebsd11_kevent(3, [{ident=4, EVFILT_READ, EV_ADD, fflags=0, data=0, udata=0x99}, {ident=1234, "
            "EVFILT_PROC, EV_ADD, fflags=NOTE_EXIT, data=0, udata=NULL}], 2, NULL, 0, NULL) = 0");
  // ILP32: 20 bytes, a 4-byte data (sign-extended), 8-byte timespec.
  mem.Put(0x4000, Records(kFreebsd11_32, {{4, EVFILT_READ, EV_ADD, 0, -7, 0x99}}));
  mem.Put(0x5000, TsFreebsd32(0, 5));
  std::vector<Write> w = {{0x6000, Records(kFreebsd11_32, {{4, EVFILT_READ, EV_EOF, 0, 3, 0x99},
                                                           {9, EVFILT_READ, 0, 0, 1, 0}})}};
  EXPECT_EQ(Show(bsd::kFreebsd11KeventTrace, "freebsd11_kevent", kFb, kIlp32,
                 {kJunk | 3, kJunk | 0x4000, 1, kJunk | 0x6000, 2, kJunk | 0x5000}, {2, 0}, &mem, w),
            "freebsd11_kevent(3, [{ident=4, EVFILT_READ, EV_ADD, fflags=0, data=-7, udata=0x99}], 1, [{ident=4, "
            "EVFILT_READ, EV_EOF, fflags=0, data=3, udata=0x99}, {ident=9, EVFILT_READ, 0, fflags=0, data=1, "
            "udata=NULL}], 2, {0.000000005}) = 2");
}

TEST(BsdTrace, KqueueAndKqueuexFlags) {
  EXPECT_EQ(Show(bsd::kKqueueTrace, "kqueue", kFb, kLp64, {0x55, 0x66, 0, 0, 0, 0}, {3, 0}), "kqueue() = 3");
  EXPECT_EQ(Show(bsd::kKqueueTrace, "kqueue", kFb, kIlp32, {0, 0, 0, 0, 0, 0}, {0, EMFILE}),
            "kqueue() = -1 EMFILE (Too many open files)");
  EXPECT_EQ(Show(bsd::kKqueueFlagsTrace, "kqueuex", kFb, kLp64, {kJunk | 1, 0, 0, 0, 0, 0}, {4, 0}),
            "kqueuex(KQUEUE_CLOEXEC) = 4");
  EXPECT_EQ(Show(bsd::kKqueueFlagsTrace, "kqueuex", kFb, kIlp32, {kJunk | 4, 0, 0, 0, 0, 0}, {0, EINVAL}),
            "kqueuex(0x4) = -1 EINVAL (Invalid argument)");
  EXPECT_EQ(Show(bsd::kKqueueFlagsTrace, "kqueuex", kFb, kLp64, {3, 0, 0, 0, 0, 0}, {5, 0}),
            "kqueuex(KQUEUE_CLOEXEC|KQUEUE_CPONFORK) = 5");
  EXPECT_EQ(Show(bsd::kKqueueForkTrace, "evshim_kqueue_fork", kFb, kLp64, {1, 0, 0, 0, 0, 0}, {7, 0}),
            "evshim_kqueue_fork(prepare, 0) = 7");
  EXPECT_EQ(Show(bsd::kKqueueForkTrace, "evshim_kqueue_fork", kFb, kIlp32, {2, 7, 0, 0, 0, 0}, {0, 0}),
            "evshim_kqueue_fork(child, 7) = 0");
}

// --- OpenBSD ---

TEST(BsdTrace, OpenbsdLp64AndIlp32) {
  FakeMemory mem;
  mem.Put(0x1000, Records(kOpenbsd64, {{6, OB_EXCEPT, EV_ADD, 0x4 /* NOTE_OOB */, 0, 0},
                                        {8, EVFILT_TIMER, EV_ADD, 0x12 /* USECONDS|ABSTIME */, 100, 0},
                                        {9, OB_USER, EV_ADD | EV_CLEAR, 0x40000000 /* FFAND */, 0, 0}}));
  mem.Put(0x2000, Ts64(0, 0));
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kOb, kLp64, {3, 0x1000, 3, 0, 0, 0x2000}, {0, EOPNOTSUPP}, &mem),
            "kevent(3, [{ident=6, EVFILT_EXCEPT, EV_ADD, fflags=NOTE_OOB, data=0, udata=NULL}, {ident=8, "
            "EVFILT_TIMER, EV_ADD, fflags=NOTE_USECONDS|NOTE_ABSTIME, data=100, udata=NULL}, {ident=9, EVFILT_USER, "
            "EV_ADD|EV_CLEAR, fflags=NOTE_FFAND, data=0, udata=NULL}], 3, NULL, 0, {0.000000000}) = -1 EOPNOTSUPP "
            "(Operation not supported)");
  // ILP32: 24 bytes (8-byte data at 12), timespec with a 64-bit tv_sec, 12 bytes.
  mem.Put(0x4000, Records(kOpenbsd32, {{4, EVFILT_READ, EV_ADD, 0x2 /* NOTE_EOF */, 0x100000000LL, 0x1234}}));
  mem.Put(0x5000, TsOpenbsd32(0x100000001LL, 7));
  std::vector<Write> w = {{0x6000, Records(kOpenbsd32, {{4, EVFILT_READ, EV_ADD | EV_EOF, 0, 0x100000000LL, 0x1234}})}};
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kOb, kIlp32,
                 {kJunk | 3, kJunk | 0x4000, kJunk | 1, kJunk | 0x6000, kJunk | 1, kJunk | 0x5000}, {1, 0}, &mem, w),
            "kevent(3, [{ident=4, EVFILT_READ, EV_ADD, fflags=NOTE_EOF, data=4294967296, udata=0x1234}], 1, "
            "[{ident=4, EVFILT_READ, EV_ADD|EV_EOF, fflags=0, data=4294967296, udata=0x1234}], 1, "
            "{4294967297.000000007}) = 1");
}

TEST(BsdTrace, OpenbsdKqueue1AndNotes) {
  EXPECT_EQ(Show(bsd::kKqueueFlagsTrace, "kqueue1", kOb, kLp64, {0x10004, 0, 0, 0, 0, 0}, {3, 0}),
            "kqueue1(O_NONBLOCK|O_CLOEXEC) = 3");
  EXPECT_EQ(Show(bsd::kKqueueFlagsTrace, "kqueue1", kOb, kIlp32, {kJunk | 0x1, 0, 0, 0, 0, 0}, {0, EINVAL}),
            "kqueue1(0x1) = -1 EINVAL (Invalid argument)");
  EXPECT_EQ(bsd::NoteNames(kOb, EVFILT_TIMER, 0), "0");
  EXPECT_EQ(bsd::NoteNames(kOb, EVFILT_TIMER, 0x10), "NOTE_ABSTIME");
  EXPECT_EQ(bsd::NoteNames(kOb, EVFILT_TIMER, 0x3), "NOTE_NSECONDS");
  EXPECT_EQ(bsd::NoteNames(kOb, EVFILT_TIMER, 0x101), "NOTE_SECONDS|0x100");
  EXPECT_EQ(bsd::NoteNames(kOb, -4 /* VNODE */, 0x81), "NOTE_DELETE|NOTE_TRUNCATE");
  EXPECT_EQ(bsd::FilterName(kOb, -8), "EVFILT_DEVICE");
  EXPECT_EQ(bsd::FilterName(kOb, -11), "-11");
}

// --- DragonFly ---

TEST(BsdTrace, DragonflyLp64AndIlp32) {
  FakeMemory mem;
  mem.Put(0x1000, Records(kDragonfly64, {{11, DF_EXCEPT, EV_ADD, 0x2 /* NOTE_OOB */, 0, 0},
                                          {12, EVFILT_TIMER, EV_ADD, 0x4, 30, 0}}));
  std::vector<Write> w = {{0x3000, Records(kDragonfly64, {{4321, EVFILT_PROC, EV_ADD | EV_ONESHOT | EV_CLEAR | 0x1000 |
                                                                                   EV_EOF,
                                                           0x80000000, 1792, 0x77}})}};
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kDf, kLp64, {5, 0x1000, 2, 0x3000, 1, 0}, {1, 0}, &mem, w),
            "kevent(5, [{ident=11, EVFILT_EXCEPT, EV_ADD, fflags=NOTE_OOB, data=0, udata=NULL}, {ident=12, "
            "EVFILT_TIMER, EV_ADD, fflags=0x4, data=30, udata=NULL}], 2, [{ident=4321, EVFILT_PROC, "
            "EV_ADD|EV_ONESHOT|EV_CLEAR|EV_NODATA|EV_EOF, fflags=NOTE_EXIT, data=1792, udata=0x77}], 1, NULL) = 1");
  // ILP32 (what i386 would be): 20 bytes, 4-byte data; FreeBSD's 8-byte timespec.
  mem.Put(0x4000, Records(kDragonfly32, {{1, DF_USER, EV_ADD | 0x0800 /* EV_HUP */, 0x80000003, -2, 0xcafe}}));
  mem.Put(0x5000, TsFreebsd32(-1, 0));
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kDf, kIlp32,
                 {kJunk | 3, kJunk | 0x4000, kJunk | 1, kJunk | 0x6000, kJunk | 1, kJunk | 0x5000}, {0, EINVAL}, &mem),
            "kevent(3, [{ident=1, EVFILT_USER, EV_ADD|EV_HUP, fflags=NOTE_FFOR|0x3, data=-2, udata=0xcafe}], 1, "
            "0x6000, 1, {tv_sec=-1, tv_nsec=0}) = -1 EINVAL (Invalid argument)");
}

// --- errors, EV_ERROR records, limits ---

TEST(BsdTrace, ErrorsAndErrorRecords) {
  FakeMemory mem;
  mem.Put(0x1000, Records(kFreebsd64, {{99, FB_USER, EV_DELETE, 0, 0, 7}, {1, FB_USER, EV_ADD | EV_RECEIPT, 0, 0, 0},
                                        {2, -42, EV_ADD, 0x5, 0, 0}}));
  std::vector<Write> w = {{0x3000, Records(kFreebsd64, {{99, FB_USER, EV_ERROR, 0, ENOENT, 7},
                                                        {1, FB_USER, EV_ERROR, 0, 0, 0},
                                                        {2, -42, EV_ADD | EV_ERROR, 0x5, EINVAL, 0},
                                                        {3, FB_USER, EV_ERROR, 0, 100000, 0}})}};
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kLp64, {3, 0x1000, 3, 0x3000, 4, 0}, {4, 0}, &mem, w),
            "kevent(3, [{ident=99, EVFILT_USER, EV_DELETE, fflags=0, data=0, udata=0x7}, {ident=1, EVFILT_USER, "
            "EV_ADD|EV_RECEIPT, fflags=0, data=0, udata=NULL}, {ident=2, -42, EV_ADD, fflags=0x5, data=0, "
            "udata=NULL}], 3, [{ident=99, EVFILT_USER, EV_ERROR, fflags=0, data=ENOENT, udata=0x7}, {ident=1, "
            "EVFILT_USER, EV_ERROR, fflags=0, data=0, udata=NULL}, {ident=2, -42, EV_ADD|EV_ERROR, fflags=0x5, "
            "data=EINVAL, udata=NULL}, {ident=3, EVFILT_USER, EV_ERROR, fflags=0, data=100000, udata=NULL}], 4, "
            "NULL) = 4");
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kLp64, {1000, 0, 0, 0x3000, 1, 0}, {0, EBADF}),
            "kevent(1000, NULL, 0, 0x3000, 1, NULL) = -1 EBADF (Bad file descriptor)");
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kOb, kLp64, {4, 0, 0, 0x3000, 1, 0}, {0, EBADF}),
            "kevent(4, NULL, 0, 0x3000, 1, NULL) = -1 EBADF (Bad file descriptor)");
  // A change in the program's input with EV_ERROR set is not an error record: data stays a number.
  EXPECT_EQ(bsd::KeventText(kFb, bsd::kFreebsdLp64, Records(kFreebsd64, {{1, FB_USER, EV_ERROR, 0, 2, 0}}), false),
            "{ident=1, EVFILT_USER, EV_ERROR, fflags=0, data=2, udata=NULL}");
}

TEST(BsdTrace, UnreadableListsLongListsAndUnwrittenOutput) {
  FakeMemory mem;
  // Unreadable change list and timeout: their pointers. Negative counts: the pointer.
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kFb, kLp64, {3, 0x9000, 1, 0x3000, 1, 0x9100}, {0, EFAULT}, &mem),
            "kevent(3, 0x9000, 1, 0x3000, 1, 0x9100) = -1 EFAULT (Bad address)");
  mem.Put(0x1000, Records(kOpenbsd64, {{1, EVFILT_READ, EV_ADD, 0, 0, 0}}));
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kOb, kLp64, {3, 0x1000, static_cast<uint32_t>(-1), 0, 0, 0}, {0, 0},
                 &mem),
            "kevent(3, 0x1000, -1, NULL, 0, NULL) = 0");
  // 40 changes, 33 returned: the first 32 of each, then "...".
  std::vector<std::byte> many;
  for (int i = 0; i < 40; ++i) {
    auto one = Records(kOpenbsd64, {{static_cast<uint64_t>(i), EVFILT_READ, EV_ADD, 0, 0, 0}});
    many.insert(many.end(), one.begin(), one.end());
  }
  mem.Put(0x10000, many);
  std::vector<Write> w = {{0x20000, std::vector<std::byte>(many.begin(), many.begin() + 33 * 32)}};
  std::string line = Show(bsd::kKeventTrace, "kevent", kOb, kLp64, {3, 0x10000, 40, 0x20000, 40, 0}, {33, 0}, &mem, w);
  EXPECT_NE(line.find("{ident=31, EVFILT_READ, EV_ADD, fflags=0, data=0, udata=NULL}, ...], 40, "), std::string::npos)
      << line;
  EXPECT_EQ(line.find("ident=32"), std::string::npos) << line;
  EXPECT_NE(line.rfind("{ident=31, EVFILT_READ, EV_ADD, fflags=0, data=0, udata=NULL}, ...], 40, NULL) = 33"),
            std::string::npos)
      << line;
  // A result but no write (the copy-out faulted): the pointer.
  EXPECT_EQ(Show(bsd::kKeventTrace, "kevent", kOb, kLp64, {3, 0, 0, 0x3000, 1, 0}, {1, 0}),
            "kevent(3, NULL, 0, 0x3000, 1, NULL) = 1");
}

TEST(BsdTrace, FilterSpecificNotesAndSignalIdents) {
  EXPECT_EQ(bsd::NoteNames(kFb, FB_USER, 0x01000000 | 0xc0000000 | 0x21), "NOTE_TRIGGER|NOTE_FFCOPY|0x21");
  EXPECT_EQ(bsd::NoteNames(kDf, DF_USER, 0x01000000), "NOTE_TRIGGER");
  EXPECT_EQ(bsd::NoteNames(kFb, EVFILT_PROC, 0x80000000 | 0x40000000 | 0x4), "NOTE_EXIT|NOTE_FORK|NOTE_CHILD");
  EXPECT_EQ(bsd::NoteNames(kFb, EVFILT_TIMER, 0x1 | 0x10), "NOTE_SECONDS|NOTE_ABSTIME");
  EXPECT_EQ(bsd::NoteNames(kFb, EVFILT_TIMER, 0x8), "NOTE_NSECONDS");
  EXPECT_EQ(bsd::NoteNames(kDf, EVFILT_TIMER, 0x8), "0x8");
  EXPECT_EQ(bsd::NoteNames(kFb, -4, 0x1 | 0x400), "NOTE_DELETE|NOTE_READ");
  EXPECT_EQ(bsd::NoteNames(kDf, -4, 0x400), "0x400");
  EXPECT_EQ(bsd::NoteNames(kFb, EVFILT_READ, 0x3), "NOTE_LOWAT|NOTE_FILE_POLL");
  EXPECT_EQ(bsd::NoteNames(kFb, -12 /* SENDFILE: not emulated */, 0x3), "0x3");
  EXPECT_EQ(bsd::FilterName(kFb, -12), "EVFILT_SENDFILE");
  EXPECT_EQ(bsd::FilterName(kDf, -10), "EVFILT_FS");
  EXPECT_EQ(bsd::EvFlagNames(kFb, EV_ADD | 0x0100 | 0x0200 | 0x1000), "EV_ADD|EV_FORCEONESHOT|EV_KEEPUDATA|EV_DROP");
  EXPECT_EQ(bsd::EvFlagNames(kOb, EV_ADD | 0x0100), "EV_ADD|0x100");
  EXPECT_EQ(bsd::KeventText(kOb, bsd::kOpenbsdLp64, Records(kOpenbsd64, {{SIGUSR1, EVFILT_SIGNAL, EV_ADD, 0, 3, 0}}),
                            true),
            "{ident=SIGUSR1, EVFILT_SIGNAL, EV_ADD, fflags=0, data=3, udata=NULL}");
  EXPECT_EQ(bsd::KeventText(kFb, bsd::kFreebsdLp64, Records(kFreebsd64, {{200, EVFILT_SIGNAL, EV_ADD, 0, 0, 0}}),
                            false),
            "{ident=200, EVFILT_SIGNAL, EV_ADD, fflags=0, data=0, udata=NULL}");
  EXPECT_EQ(Show(bsd::kKqueueSignalTrace, "evshim_kqueue_signal", kDf, kLp64, {kJunk | SIGCHLD, 0, 0, 0, 0, 0}, {0, 0}),
            "evshim_kqueue_signal(SIGCHLD) = 0");
  EXPECT_EQ(Show(bsd::kKqueueSignalTrace, "evshim_kqueue_signal", kOb, kIlp32, {99, 0, 0, 0, 0, 0}, {0, EINVAL}),
            "evshim_kqueue_signal(99) = -1 EINVAL (Invalid argument)");
  // The library's close report: the descriptor, an int (upper half ignored).
  EXPECT_EQ(Show(bsd::kKqueueFdCloseTrace, "evshim_kqueue_fdclose", kFb, kLp64, {kJunk | 5, 0, 0, 0, 0, 0}, {0, 0}),
            "evshim_kqueue_fdclose(5) = 0");
  EXPECT_EQ(Show(bsd::kKqueueFdCloseTrace, "evshim_kqueue_fdclose", kOb, kIlp32, {0xffffffff, 0, 0, 0, 0, 0},
                 {0, EBADF}),
            "evshim_kqueue_fdclose(-1) = -1 EBADF (Bad file descriptor)");
  // The library's poll-family settle request: no argument.
  EXPECT_EQ(Show(bsd::kKqueueSettleTrace, "evshim_kqueue_settle", kDf, kLp64, {kJunk, 0, 0, 0, 0, 0}, {0, 0}),
            "evshim_kqueue_settle() = 0");
}

TEST(BsdTrace, EveryKqueueEntryHasAFormatterThatNamesIt) {
  int seen = 0;
  for (const auto& e : evshim::abi::AllSyscalls()) {
    if (e.personality == Personality::kIllumos) continue;
    ASSERT_NE(e.trace, nullptr) << PersonalityName(e.personality) << " " << e.name;
    // The formatter's names include the table's name, so `-e NAME` selects it.
    bool named = false;
    for (std::string_view n : e.trace->names) named |= n == e.name;
    EXPECT_TRUE(named) << e.name;
    ++seen;
  }
  EXPECT_EQ(seen, 19);
  EXPECT_TRUE(st::KnownCallName("kevent"));
  EXPECT_TRUE(st::KnownCallName("evshim_kqueue_settle"));
  EXPECT_TRUE(st::KnownCallName("kqueue1"));
  EXPECT_TRUE(st::KnownCallName("freebsd11_kevent"));
}

// --- through the tracer: a blocking kevent ---

class BsdTracerTest : public ::testing::Test {
 protected:
  std::unique_ptr<st::Tracer> Make(st::TraceOptions o = {}) {
    return std::make_unique<st::Tracer>(
        std::move(o), [this](std::string_view s) { out += s; }, [this] { return now; }, nullptr);
  }
  evshim::abi::trace::CallStart Call(uint64_t id, int nr, std::array<uint64_t, 6> raw, DataModel m = kLp64) {
    evshim::abi::trace::CallStart c;
    c.id = id;
    c.caller = {10, 10};
    c.model = m;
    c.nr = nr;
    c.entry = evshim::abi::FindSyscall(m, nr);
    c.raw = raw;
    c.memory = &mem;
    return c;
  }
  std::string out;
  int64_t now = 1'000'000'000;
  FakeMemory mem;
};

TEST_F(BsdTracerTest, BlockingKeventIsUnfinishedThenResumedWithItsEvents) {
  auto t = Make();
  mem.Put(0x5000, Ts64(2, 0));
  t->OnEnter(Call(1, 560, {3, 0, 0, 0x3000, 4, 0x5000}));  // FreeBSD kevent
  t->OnDeferred(1);
  now += 50'000'000;
  t->OnWrite(1, 0x3000, Records(kFreebsd64, {{4, EVFILT_READ, 0, 0, 5, 0x77}}));
  t->OnExit(1, 1, 0, true);
  // OpenBSD kevent (1030) in the same trace: the personality is tagged.
  t->OnEnter(Call(2, 1030, {3, 0, 0, 0x3000, 4, 0}));
  t->OnDeferred(2);
  t->OnExit(2, 0, EINTR, true);
  EXPECT_EQ(out,
            "[pid 10] kevent(3, NULL, 0, <unfinished ...>\n"
            "[pid 10] <... kevent resumed>[{ident=4, EVFILT_READ, 0, fflags=0, data=5, udata=0x77}], 4, "
            "{2.000000000}) = 1 <0.050000>\n"
            "[pid 10 openbsd] kevent(3, NULL, 0, <unfinished ...>\n"
            "[pid 10 openbsd] <... kevent resumed>0x3000, 4, NULL) = -1 EINTR (Interrupted system call) <0.000000>\n");
}

TEST_F(BsdTracerTest, JsonMarksTheEventListAsOutput) {
  st::TraceOptions o;
  o.json = true;
  auto t = Make(o);
  mem.Put(0x1000, Records(kFreebsd32, {{4, EVFILT_READ, EV_ADD, 0, 0, 0}}));
  t->OnEnter(Call(1, 560, {3, 0x1000, 1, 0x3000, 1, 0}, kIlp32));
  t->OnWrite(1, 0x3000, Records(kFreebsd32, {{4, EVFILT_READ, 0, 0, 2, 0}}));
  t->OnExit(1, 1, 0, true);
  EXPECT_NE(out.find("\"personality\":\"freebsd\",\"data_model\":\"ilp32\",\"syscall\":\"kevent\",\"nr\":560,"
                     "\"call\":\"kevent\",\"args\":[{\"name\":\"kq\",\"value\":\"3\",\"output\":false},"
                     "{\"name\":\"changelist\",\"value\":\"[{ident=4, EVFILT_READ, EV_ADD, fflags=0, data=0, "
                     "udata=NULL}]\",\"output\":false},{\"name\":\"nchanges\",\"value\":\"1\",\"output\":false},"
                     "{\"name\":\"eventlist\",\"value\":\"[{ident=4, EVFILT_READ, 0, fflags=0, data=2, udata=NULL}]\","
                     "\"output\":true},{\"name\":\"nevents\",\"value\":\"1\",\"output\":false},{\"name\":\"timeout\","
                     "\"value\":\"NULL\",\"output\":false}]"),
            std::string::npos)
      << out;
}

}  // namespace
