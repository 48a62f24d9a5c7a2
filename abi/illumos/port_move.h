// The evshim-private PORT_EVSHIM_ADOPT call: a port's state (emul::PortState)
// as bytes, written by the in-process engine and read by the supervisor
// from the caller's memory (docs/design.md "Moving a port at fork";
// docs/abi.md §10). Fixed little-endian records, the same for both data
// models:
//   header (48): u32 magic 'EVPS', u32 version 1, u32 max_events, u32 flags
//     (1 had_fd_assoc, 2 had_file_source, 4 alert), u32 alert_events,
//     u32 assocs, u64 alert_user, u32 timers, u32 events, u64 0
//   assoc (24): i32 fd, u32 canonical poll events, u64 user, u32 active (0/1), u32 0
//   timer (48): i32 id, i32 clock, i32 notify, i32 pending, u64 user,
//     i32 overrun, u32 flags (1 unbound), i64 next (monotonic ns), i64 interval
//   event (32): u8 kind (0 plain, 1 fd, 2 timer), u8 owner_only (0/1),
//     u16 source, u32 ref, u32 events, u32 0, u64 object, u64 user
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "abi/common/call.h"
#include "emul/event_port.h"

namespace evshim::abi::illumos {

constexpr uint32_t kPortStateMagic = 0x53505645;  // "EVPS"
constexpr uint32_t kPortStateVersion = 1;
constexpr size_t kPortStateHeader = 48, kPortStateAssoc = 24, kPortStateTimer = 48, kPortStateEvent = 32;
// The most the supervisor reads for one port (the program names the size):
// a port at the default 65536 events needs under 6 MiB.
constexpr size_t kMaxPortStateBytes = 16u << 20;

std::vector<std::byte> EncodePortState(const emul::PortState& state);
// The counts a header announces, and the whole size they imply; EINVAL if
// the header is not one (magic, version, flags, a size beyond
// kMaxPortStateBytes).
struct PortStateHeader {
  uint32_t assocs = 0, timers = 0, events = 0;
  size_t total = 0;
};
emul::Result<PortStateHeader> DecodePortStateHeader(std::span<const std::byte> header);
// The whole record (`bytes.size()` must be the header's total): EINVAL for
// any field out of its range.
emul::Result<emul::PortState> DecodePortState(std::span<const std::byte> bytes);

// PORT_EVSHIM_ADOPT: a1 = address, a2 = size. EINVAL (size, malformed,
// inconsistent state), EFAULT (unreadable), or the engine's errors
// (emul::EventPorts::ImportPort); else a new port descriptor.
Outcome AdoptPort(CallContext& ctx, const SyscallArgs& args);

}  // namespace evshim::abi::illumos
