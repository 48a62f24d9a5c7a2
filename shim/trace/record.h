// The fast path's trace records (docs/trace.md "Fast mode"): what an
// in-process engine (shim/inproc/fast_trace.cc) sends to the launcher's
// tracer (shim/trace/channel.cc) over the stream the launcher listens on.
// Both ends are the same build on the same machine (the engine is x86_64
// only), so the records are native-endian.
//
// A stream carries records back to back, each a RecordHeader followed by
// `size` bytes of body:
//   kEnter     EnterBody, then the site's two object names (at, from), then
//              `regions` x (RegionHeader + bytes): the caller's memory the
//              call's formatter read at entry (a region that could not be
//              read has `readable` 0 and no bytes).
//   kWrite     u64 addr, then the bytes the call wrote there.
//   kDeferred  nothing: the call parked.
//   kExit      ExitBody.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>
#include <vector>

namespace evshim::shim::trace::record {

// The launcher's listening socket, in the abstract namespace, is named by
// this variable in the program's environment: "NAME" or "NAME,sites".
inline constexpr const char* kChannelVariable = "EVSHIM_TRACE_CHANNEL";

enum class Type : uint32_t { kEnter = 1, kWrite = 2, kDeferred = 3, kExit = 4 };

struct RecordHeader {
  uint32_t type = 0;
  uint32_t size = 0;  // body bytes
  uint64_t id = 0;    // the call: unique per stream while in flight
};

struct EnterBody {
  int32_t pid = 0;
  int32_t tid = 0;
  int32_t nr = 0;
  uint32_t regions = 0;
  uint64_t raw[6] = {};
  int64_t time_ns = 0;  // CLOCK_MONOTONIC at entry
  // The site (docs/trace.md "Call sites"): where the call was served and
  // the library code that called in; address 0 = unknown.
  uint64_t at_addr = 0, at_offset = 0;
  uint64_t from_addr = 0, from_offset = 0;
  uint32_t at_name_size = 0, from_name_size = 0;
  // The process's data model (abi::DataModel: 0 lp64, 1 ilp32): an i386
  // program's engine writes the same records (docs/trace.md).
  uint32_t model = 0;
  uint32_t reserved = 0;
};
// One layout for the x86_64 and the i386 engine (uint64_t is 4-aligned on i386).
static_assert(sizeof(EnterBody) == 120);

struct RegionHeader {
  uint64_t addr = 0;
  uint32_t size = 0;
  uint32_t readable = 0;
};

struct ExitBody {
  int64_t value = 0;
  int32_t error = 0;
  uint32_t delivered = 0;
  int64_t time_ns = 0;
};

// Upper bound of one record's body: larger records are a corrupt stream.
inline constexpr uint32_t kMaxBody = 64u << 20;

// Appends a record to `out`.
inline void Append(std::vector<std::byte>& out, Type type, uint64_t id,
                   std::span<const std::span<const std::byte>> parts) {
  RecordHeader h;
  h.type = static_cast<uint32_t>(type);
  h.id = id;
  size_t size = 0;
  for (auto p : parts) size += p.size();
  h.size = static_cast<uint32_t>(size);
  const auto* hb = reinterpret_cast<const std::byte*>(&h);
  out.insert(out.end(), hb, hb + sizeof h);
  for (auto p : parts) out.insert(out.end(), p.begin(), p.end());
}

template <typename T>
std::span<const std::byte> Bytes(const T& v) {
  return {reinterpret_cast<const std::byte*>(&v), sizeof v};
}

inline std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

}  // namespace evshim::shim::trace::record
