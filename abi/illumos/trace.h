// How `evshim trace` shows illumos calls: portfs by opcode (port_create,
// port_associate, ... port_alert) and the SIGEV_PORT timer calls.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "abi/common/data_model.h"
#include "abi/trace/format.h"

namespace evshim::abi::illumos {

extern const trace::Formatter kPortfsTrace;
extern const trace::Formatter kTimerTrace;

// Exposed for unit tests and other formatters.
std::string PollNames(uint32_t illumos_bits);
std::string SourceName(int32_t source);
// One port_event_t as the call wrote it (illumos bits):
// {source=PORT_SOURCE_FD, events=POLLIN, object=5, user=0x...}
std::string PortEventText(DataModel m, std::span<const std::byte> bytes);

}  // namespace evshim::abi::illumos
