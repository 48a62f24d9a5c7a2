// The illumos portfs call: codecs and the handler.
#pragma once

#include <cstdint>
#include <span>

#include "abi/common/call.h"
#include "emul/event_port.h"

namespace evshim::abi::illumos {

uint32_t PollToCanonical(uint32_t illumos_bits);
uint32_t PollFromCanonical(uint32_t canonical_bits);
// port_event_t ⇄ canonical; FD events carry poll bits, translated here.
void EncodePortEvent(DataModel m, const emul::PortEvent& ev, std::span<std::byte> out);
emul::PortEvent DecodePortEvent(DataModel m, std::span<const std::byte> in);
// PORT_GETN's two results in one return value (docs/abi.md "Two results").
int64_t EncodeGetnResult(DataModel m, uint32_t count, bool etime);

// file_obj_t (PORT_SOURCE_FILE's object): the three timestamps, and the
// address of fo_name in `*name_ptr` (the name itself is read separately).
emul::FileObject DecodeFileObj(DataModel m, std::span<const std::byte> in, uint64_t* name_ptr);

// SysPortfs implements illumos portfs(2) (port.c:556-715). Arguments:
// args[0] = opcode, args[1..5] = a0..a4 as illumos libc passes them.
Outcome SysPortfs(CallContext& ctx, const SyscallArgs& args);

}  // namespace evshim::abi::illumos
