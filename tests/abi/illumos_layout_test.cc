// illumos wire layouts and codecs, LP64 and ILP32.
//
// (1) Mirror structs written with explicit fixed-width types, compiled for
//     this (x86_64) target, are checked against abi/illumos/layouts.h. The
//     ILP32 mirrors use 32-bit fields of at most 4-byte alignment, so they
//     lay out exactly as the i386 compiler lays out port_event32_t and
//     friends; every ILP32 number is additionally pinned as a literal
//     (docs/rules-ports.md §1.6), because this TU cannot be compiled -m32.
// (2) Golden bytes: each codec encodes and decodes fixed byte strings, for
//     each data model, including junk in the upper 32 bits of ILP32 values.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <vector>

#include "abi/common/args.h"
#include "abi/common/wire.h"
#include "abi/illumos/constants.h"
#include "abi/illumos/layouts.h"
#include "abi/illumos/portfs.h"
#include "emul/types.h"

namespace evshim::abi::illumos {
namespace {

// --- (1) layouts ---------------------------------------------------------

struct PortEvent64 {  // port_event_t, amd64
  int32_t portev_events;
  uint16_t portev_source;
  uint16_t portev_pad;
  uint64_t portev_object;
  uint64_t portev_user;
};
struct PortEvent32 {  // port_event32_t, i386
  int32_t portev_events;
  uint16_t portev_source;
  uint16_t portev_pad;
  uint32_t portev_object;
  uint32_t portev_user;
};
struct Timespec64 {  // timespec_t, amd64
  int64_t tv_sec;
  int64_t tv_nsec;
};
struct Timespec32 {  // timespec32_t, i386
  int32_t tv_sec;
  int32_t tv_nsec;
};
struct PortNotify64 {  // port_notify_t, amd64
  int32_t portnfy_port;
  uint64_t portnfy_user;
};
struct PortNotify32 {  // port_notify32_t, i386
  int32_t portnfy_port;
  uint32_t portnfy_user;
};
struct FileObj64 {  // file_obj_t, amd64
  Timespec64 fo_atime, fo_mtime, fo_ctime;
  uint64_t fo_pad[3];
  uint64_t fo_name;
};
struct FileObj32 {  // file_obj32_t, i386
  Timespec32 fo_atime, fo_mtime, fo_ctime;
  uint32_t fo_pad[3];
  uint32_t fo_name;
};

// Mirrors against the layout tables.
static_assert(sizeof(PortEvent64) == kPortEventLp64.size);
static_assert(offsetof(PortEvent64, portev_events) == kPortEventLp64.events);
static_assert(offsetof(PortEvent64, portev_source) == kPortEventLp64.source);
static_assert(offsetof(PortEvent64, portev_pad) == kPortEventLp64.pad);
static_assert(offsetof(PortEvent64, portev_object) == kPortEventLp64.object);
static_assert(offsetof(PortEvent64, portev_user) == kPortEventLp64.user);
static_assert(sizeof(PortEvent32) == kPortEventIlp32.size);
static_assert(offsetof(PortEvent32, portev_events) == kPortEventIlp32.events);
static_assert(offsetof(PortEvent32, portev_source) == kPortEventIlp32.source);
static_assert(offsetof(PortEvent32, portev_pad) == kPortEventIlp32.pad);
static_assert(offsetof(PortEvent32, portev_object) == kPortEventIlp32.object);
static_assert(offsetof(PortEvent32, portev_user) == kPortEventIlp32.user);

static_assert(sizeof(Timespec64) == kTimespecLp64.size);
static_assert(offsetof(Timespec64, tv_sec) == kTimespecLp64.sec);
static_assert(offsetof(Timespec64, tv_nsec) == kTimespecLp64.nsec);
static_assert(sizeof(Timespec32) == kTimespecIlp32.size);
static_assert(offsetof(Timespec32, tv_sec) == kTimespecIlp32.sec);
static_assert(offsetof(Timespec32, tv_nsec) == kTimespecIlp32.nsec);

static_assert(sizeof(PortNotify64) == kPortNotifyLp64.size);
static_assert(offsetof(PortNotify64, portnfy_port) == kPortNotifyLp64.port);
static_assert(offsetof(PortNotify64, portnfy_user) == kPortNotifyLp64.user);
static_assert(sizeof(PortNotify32) == kPortNotifyIlp32.size);
static_assert(offsetof(PortNotify32, portnfy_port) == kPortNotifyIlp32.port);
static_assert(offsetof(PortNotify32, portnfy_user) == kPortNotifyIlp32.user);

// The accessors pick the right table.
static_assert(&PortEvent(DataModel::kLp64) == &kPortEventLp64);
static_assert(&PortEvent(DataModel::kIlp32) == &kPortEventIlp32);
static_assert(&Timespec(DataModel::kLp64) == &kTimespecLp64);
static_assert(&Timespec(DataModel::kIlp32) == &kTimespecIlp32);

// Literal pins (docs/rules-ports.md §1.6; docs/abi.md "Wire structs").
static_assert(kPortEventLp64.size == 24 && kPortEventLp64.events == 0 && kPortEventLp64.source == 4 &&
              kPortEventLp64.pad == 6 && kPortEventLp64.object == 8 && kPortEventLp64.user == 16);
static_assert(kPortEventIlp32.size == 16 && kPortEventIlp32.events == 0 && kPortEventIlp32.source == 4 &&
              kPortEventIlp32.pad == 6 && kPortEventIlp32.object == 8 && kPortEventIlp32.user == 12);
static_assert(kTimespecLp64.size == 16 && kTimespecLp64.sec == 0 && kTimespecLp64.nsec == 8);
static_assert(kTimespecIlp32.size == 8 && kTimespecIlp32.sec == 0 && kTimespecIlp32.nsec == 4);
static_assert(kPortNotifyLp64.size == 16 && kPortNotifyLp64.port == 0 && kPortNotifyLp64.user == 8);
static_assert(kPortNotifyIlp32.size == 8 && kPortNotifyIlp32.port == 0 && kPortNotifyIlp32.user == 4);

// file_obj_t (PORT_SOURCE_FILE): mirrors against the table, then literals.
static_assert(sizeof(FileObj64) == kFileObjLp64.size);
static_assert(offsetof(FileObj64, fo_atime) == kFileObjLp64.atime);
static_assert(offsetof(FileObj64, fo_mtime) == kFileObjLp64.mtime);
static_assert(offsetof(FileObj64, fo_ctime) == kFileObjLp64.ctime);
static_assert(offsetof(FileObj64, fo_pad) == kFileObjLp64.pad);
static_assert(offsetof(FileObj64, fo_name) == kFileObjLp64.name);
static_assert(sizeof(FileObj32) == kFileObjIlp32.size);
static_assert(offsetof(FileObj32, fo_atime) == kFileObjIlp32.atime);
static_assert(offsetof(FileObj32, fo_mtime) == kFileObjIlp32.mtime);
static_assert(offsetof(FileObj32, fo_ctime) == kFileObjIlp32.ctime);
static_assert(offsetof(FileObj32, fo_pad) == kFileObjIlp32.pad);
static_assert(offsetof(FileObj32, fo_name) == kFileObjIlp32.name);
static_assert(&FileObj(DataModel::kLp64) == &kFileObjLp64);
static_assert(&FileObj(DataModel::kIlp32) == &kFileObjIlp32);
static_assert(kFileObjLp64.size == 80 && kFileObjLp64.mtime == 16 && kFileObjLp64.ctime == 32 &&
              kFileObjLp64.pad == 48 && kFileObjLp64.name == 72);
static_assert(kFileObjIlp32.size == 40 && kFileObjIlp32.mtime == 8 && kFileObjIlp32.ctime == 16 &&
              kFileObjIlp32.pad == 24 && kFileObjIlp32.name == 36);

// --- (2) golden bytes ----------------------------------------------------

std::vector<std::byte> Bytes(std::initializer_list<int> v) {
  std::vector<std::byte> out;
  for (int b : v) out.push_back(static_cast<std::byte>(b));
  return out;
}

// Prints a byte vector on failure.
std::string Hex(const std::vector<std::byte>& v) {
  std::string s;
  char buf[4];
  for (std::byte b : v) {
    std::snprintf(buf, sizeof buf, "%02x ", static_cast<unsigned>(b));
    s += buf;
  }
  return s;
}

emul::PortEvent Event(uint16_t source, uint32_t events, uint64_t object, uint64_t user) {
  emul::PortEvent ev;
  ev.source = source;
  ev.events = events;
  ev.object = object;
  ev.user = user;
  return ev;
}

TEST(PortEventGoldenLp64, EncodeUserEvent) {
  std::vector<std::byte> out(24, std::byte{0xcc});
  EncodePortEvent(DataModel::kLp64, Event(PORT_SOURCE_USER, 0x12345678, 0x1122334455667788ULL,
                                          0x8877665544332211ULL),
                  out);
  auto expect = Bytes({0x78, 0x56, 0x34, 0x12,                           // portev_events
                       0x03, 0x00,                                       // portev_source USER
                       0x00, 0x00,                                       // portev_pad
                       0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,   // portev_object
                       0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88}); // portev_user
  EXPECT_EQ(out, expect) << Hex(out);
}

TEST(PortEventGoldenLp64, DecodeUserEvent) {
  auto in = Bytes({0x78, 0x56, 0x34, 0x12, 0x03, 0x00, 0xee, 0xee,
                   0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,
                   0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88});
  emul::PortEvent ev = DecodePortEvent(DataModel::kLp64, in);
  EXPECT_EQ(ev, Event(PORT_SOURCE_USER, 0x12345678, 0x1122334455667788ULL, 0x8877665544332211ULL));
}

TEST(PortEventGoldenLp64, FdEventPollBitsAtTheBoundary) {
  // Canonical (Linux) POLLOUT|POLLWRNORM|POLLWRBAND|POLLRDHUP|POLLIN goes out
  // as illumos POLLOUT|POLLWRBAND(0x100)|POLLRDHUP(0x4000)|POLLIN.
  using namespace emul::poll_bits;
  std::vector<std::byte> out(24, std::byte{0xcc});
  EncodePortEvent(DataModel::kLp64, Event(PORT_SOURCE_FD, kIn | kOut | kWrNorm | kWrBand | kRdHup, 7, 0xfeed),
                  out);
  auto expect = Bytes({0x05, 0x41, 0x00, 0x00,  // 0x4105
                       0x04, 0x00, 0x00, 0x00,
                       0x07, 0, 0, 0, 0, 0, 0, 0,
                       0xed, 0xfe, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(out, expect) << Hex(out);
  // And back: illumos 0x100 is POLLWRBAND, never Linux POLLWRNORM.
  emul::PortEvent ev = DecodePortEvent(DataModel::kLp64, expect);
  EXPECT_EQ(ev.events, kIn | kOut | kWrBand | kRdHup);
  EXPECT_EQ(ev.source, PORT_SOURCE_FD);
  EXPECT_EQ(ev.object, 7u);
  EXPECT_EQ(ev.user, 0xfeedu);
}

TEST(PortEventGoldenLp64, NonFdEventsAreNotTranslated) {
  // A user event's `events` is the program's own number: 0x2000 stays 0x2000.
  std::vector<std::byte> out(24);
  EncodePortEvent(DataModel::kLp64, Event(PORT_SOURCE_USER, 0x2100, 0, 0), out);
  EXPECT_EQ(ByteReader(out).Get<uint32_t>(0), 0x2100u);
  EncodePortEvent(DataModel::kLp64, Event(PORT_SOURCE_ALERT, 0xffffffffu, 0, 0), out);
  EXPECT_EQ(ByteReader(out).Get<uint32_t>(0), 0xffffffffu);
  EXPECT_EQ(ByteReader(out).Get<uint16_t>(4), PORT_SOURCE_ALERT);
}

TEST(PortEventGoldenIlp32, EncodeTruncatesPointers) {
  // 16 bytes; object and user are caddr32_t: the upper halves are dropped,
  // and nothing is written past byte 16.
  std::vector<std::byte> out(20, std::byte{0xcc});
  EncodePortEvent(DataModel::kIlp32, Event(PORT_SOURCE_USER, 0x2a, 0xdeadbeef00001234ULL, 0xabcdef0100005678ULL),
                  std::span(out).first(16));
  auto expect = Bytes({0x2a, 0x00, 0x00, 0x00,  // portev_events
                       0x03, 0x00,              // portev_source
                       0x00, 0x00,              // portev_pad
                       0x34, 0x12, 0x00, 0x00,  // portev_object (low 32)
                       0x78, 0x56, 0x00, 0x00,  // portev_user (low 32)
                       0xcc, 0xcc, 0xcc, 0xcc});
  EXPECT_EQ(out, expect) << Hex(out);
}

TEST(PortEventGoldenIlp32, DecodeZeroExtends) {
  auto in = Bytes({0x01, 0x01, 0x00, 0x00, 0x04, 0x00, 0x99, 0x99,
                   0xfc, 0xff, 0xff, 0xff,   // object 0xfffffffc
                   0x10, 0x32, 0x54, 0xf6}); // user 0xf6543210
  emul::PortEvent ev = DecodePortEvent(DataModel::kIlp32, in);
  EXPECT_EQ(ev.source, PORT_SOURCE_FD);
  EXPECT_EQ(ev.events, emul::poll_bits::kIn | emul::poll_bits::kWrBand);  // illumos 0x101
  EXPECT_EQ(ev.object, 0xfffffffcULL);
  EXPECT_EQ(ev.user, 0xf6543210ULL);
}

TEST(PortEventGoldenIlp32, FdEventPollBits) {
  using namespace emul::poll_bits;
  std::vector<std::byte> out(16);
  EncodePortEvent(DataModel::kIlp32, Event(PORT_SOURCE_FD, kIn | kRdNorm | kRdHup | kHup, 3, 4), out);
  auto expect = Bytes({0x51, 0x40, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00,
                       0x03, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00});
  EXPECT_EQ(out, expect) << Hex(out);
}

TEST(PollBits, TableBothWays) {
  using namespace emul::poll_bits;
  struct Row {
    uint32_t illumos, canonical;
  };
  // docs/rules-ports.md §2.2
  const Row rows[] = {
      {0x0001, kIn},     {0x0002, kPri},    {0x0004, kOut},    {0x0008, kErr},
      {0x0010, kHup},    {0x0020, kNval},   {0x0040, kRdNorm}, {0x0080, kRdBand},
      {0x0100, kWrBand}, {0x4000, kRdHup},
  };
  for (const Row& r : rows) {
    EXPECT_EQ(PollToCanonical(r.illumos), r.canonical) << std::hex << r.illumos;
    EXPECT_EQ(PollFromCanonical(r.canonical), r.illumos) << std::hex << r.canonical;
  }
  // Linux POLLWRNORM (0x100) is illumos POLLWRNORM == POLLOUT.
  EXPECT_EQ(PollFromCanonical(kWrNorm), POLLOUT);
  // illumos's /dev/poll-only bits and Linux-only bits do not cross.
  EXPECT_EQ(PollToCanonical(0x2000), 0u);  // illumos POLLET
  EXPECT_EQ(PollToCanonical(0x0800), 0u);  // illumos POLLREMOVE
  EXPECT_EQ(PollFromCanonical(0x0400), 0u);  // Linux POLLMSG
}

// Every combination of bits converts as the table's bits one by one (the
// conversions shift and mask whole words; s39): a bit the table does not
// name is dropped, and no bit reaches another's place.
TEST(PollBits, EveryCombinationIsItsBitsOneByOne) {
  using namespace emul::poll_bits;
  const std::pair<uint32_t, uint32_t> to_canonical[] = {
      {0x0001, kIn},     {0x0002, kPri},    {0x0004, kOut},    {0x0008, kErr},
      {0x0010, kHup},    {0x0020, kNval},   {0x0040, kRdNorm}, {0x0080, kRdBand},
      {0x0100, kWrBand}, {0x4000, kRdHup},
  };
  for (uint32_t v = 0; v <= 0xffff; ++v) {
    uint32_t canonical = 0, illumos = 0;
    for (const auto& [il, can] : to_canonical) {
      if (v & il) canonical |= can;
      if (v & can) illumos |= il;
    }
    if (v & kWrNorm) illumos |= POLLWRNORM;
    ASSERT_EQ(PollToCanonical(v), canonical) << std::hex << v;
    ASSERT_EQ(PollFromCanonical(v), illumos) << std::hex << v;
  }
}

TEST(GetnResult, Lp64IsIllumosRvals) {
  EXPECT_EQ(EncodeGetnResult(DataModel::kLp64, 5, false), 5);
  EXPECT_EQ(EncodeGetnResult(DataModel::kLp64, 5, true), 0x0000003e00000005LL);  // r_val2 = ETIME (62)
  EXPECT_EQ(EncodeGetnResult(DataModel::kLp64, 0, true), 0x0000003e00000000LL);
  EXPECT_EQ(EncodeGetnResult(DataModel::kLp64, 8192, false), 8192);
}

TEST(GetnResult, Ilp32CarriesEtimeInBit30) {
  EXPECT_EQ(EncodeGetnResult(DataModel::kIlp32, 5, false), 5);
  EXPECT_EQ(EncodeGetnResult(DataModel::kIlp32, 5, true), 0x40000005);
  EXPECT_EQ(EncodeGetnResult(DataModel::kIlp32, 0, true), 0x40000000);
  // Positive as a 32-bit int, so the i386 library never sees it as an error.
  EXPECT_GT(static_cast<int32_t>(EncodeGetnResult(DataModel::kIlp32, PORT_MAX_LIST, true)), 0);
}

TEST(SyscallArgs, Ilp32IgnoresUpperHalves) {
  SyscallArgs a(DataModel::kIlp32, {0xdeadbeef00000105ULL, 0xffffffff00000003ULL, 0x12345678fffffffeULL,
                                    0xcafef00d80000000ULL, 0x0000000100000000ULL, 0xaaaaaaaa0badf00dULL});
  EXPECT_EQ(a.Uint(0), 0x105u);
  EXPECT_EQ(a.Int(1), 3);
  EXPECT_EQ(a.Int(2), -2);
  EXPECT_EQ(a.Long(2), -2);            // long is 32 bits: sign-extended from bit 31
  EXPECT_EQ(a.Ulong(3), 0x80000000u);  // unsigned long / uintptr_t: zero-extended
  EXPECT_EQ(a.Ptr(4), 0u);             // a NULL pointer with junk above it is NULL
  EXPECT_EQ(a.Ptr(5), 0x0badf00du);
}

TEST(SyscallArgs, Lp64IntIgnoresUpperHalfLongDoesNot) {
  // The LP64 library puts its call number in the opcode's upper half.
  SyscallArgs a(DataModel::kLp64, {0x0000000700000006ULL, 0xffffffff00000004ULL, 0x12345678fffffffeULL,
                                   0, 0, 0});
  EXPECT_EQ(a.Uint(0), PORT_GETN);
  EXPECT_EQ(a.Int(1), 4);
  EXPECT_EQ(a.Long(2), 0x12345678fffffffeLL);
  EXPECT_EQ(a.Ptr(1), 0xffffffff00000004ULL);
}

}  // namespace
}  // namespace evshim::abi::illumos
