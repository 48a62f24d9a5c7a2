// Canonical values shared by the core, the codecs and the transport.
#pragma once

#include <cstdint>

namespace evshim::emul {

// A process is named by its thread-group id, a thread by its tid.
using Pid = int32_t;
struct Caller {
  Pid pid;  // thread group
  Pid tid;  // the calling thread
};

// Monotonic nanoseconds (CLOCK_MONOTONIC in the real host).
using Nanos = int64_t;
constexpr Nanos kNanosPerSecond = 1'000'000'000;
// The latest representable time: "never" (Host::kNever has the same value).
constexpr Nanos kLatest = INT64_MAX;
// a + b for a deadline, b >= 0: kLatest instead of wrapping past it. Guest
// arguments (timeouts, periods) reach deadlines; none may overflow one.
constexpr Nanos AddNanos(Nanos a, Nanos b) { return a > kLatest - b ? kLatest : a + b; }

// Canonical poll bits are the host's (Linux) values; foreign bits are mapped
// by the abi codecs.
namespace poll_bits {
constexpr uint32_t kIn = 0x001, kPri = 0x002, kOut = 0x004, kErr = 0x008, kHup = 0x010,
                   kNval = 0x020, kRdNorm = 0x040, kRdBand = 0x080, kWrNorm = 0x100,
                   kWrBand = 0x200, kRdHup = 0x2000;
}  // namespace poll_bits

// Identifies an emulated object (port or kqueue) inside the core.
using ObjectId = uint64_t;
// Identifies a host-side watch on a target file (see Host::WatchFd).
using WatchId = uint64_t;
// Identifies a parked (waiting) retrieval.
using WaitId = uint64_t;

// An optional object or watch id in 8 bytes (std::optional takes 16): ids
// count from 1, so 0 means none. The subset of std::optional's interface
// the engines use.
template <typename Id>
class OptionalId {
 public:
  OptionalId() = default;
  OptionalId(Id id) : id_(id) {}  // converts like std::optional
  explicit operator bool() const { return id_ != 0; }
  bool has_value() const { return id_ != 0; }
  Id operator*() const { return id_; }
  void reset() { id_ = 0; }

 private:
  Id id_ = 0;
};

}  // namespace evshim::emul
