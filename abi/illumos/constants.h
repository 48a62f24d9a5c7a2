// illumos event-port constants, spelled as illumos spells them
// (sys/port.h, sys/port_impl.h, sys/poll.h; research/ports.md §1.3, §1.5, §2.2).
#pragma once

#include <cstdint>

namespace evshim::abi::illumos {

// portfs opcodes (port_impl.h)
constexpr uint32_t PORT_CREATE = 0;
constexpr uint32_t PORT_ASSOCIATE = 1;
constexpr uint32_t PORT_DISSOCIATE = 2;
constexpr uint32_t PORT_SEND = 3;
constexpr uint32_t PORT_SENDN = 4;
constexpr uint32_t PORT_GET = 5;
constexpr uint32_t PORT_GETN = 6;
constexpr uint32_t PORT_ALERT = 7;
constexpr uint32_t PORT_DISPATCH = 8;
constexpr uint32_t PORT_SYS_NOPORT = 0x100;
constexpr uint32_t PORT_SYS_NOSHARE = 0x200;
constexpr uint32_t PORT_CODE_MASK = 0xff;
constexpr uint32_t PORT_MAX_LIST = 8192;

// sources (port.h)
constexpr uint16_t PORT_SOURCE_AIO = 1;
constexpr uint16_t PORT_SOURCE_TIMER = 2;
constexpr uint16_t PORT_SOURCE_USER = 3;
constexpr uint16_t PORT_SOURCE_FD = 4;
constexpr uint16_t PORT_SOURCE_ALERT = 5;
constexpr uint16_t PORT_SOURCE_MQ = 6;
constexpr uint16_t PORT_SOURCE_FILE = 7;

constexpr uint32_t PORT_ALERT_SET = 0x01;
constexpr uint32_t PORT_ALERT_UPDATE = 0x02;
constexpr uint32_t PORT_ALERT_INVALID = 0x03;

// illumos poll bits (sys/poll.h) where they differ from Linux's.
constexpr uint32_t POLLIN = 0x0001;
constexpr uint32_t POLLPRI = 0x0002;
constexpr uint32_t POLLOUT = 0x0004;
constexpr uint32_t POLLERR = 0x0008;
constexpr uint32_t POLLHUP = 0x0010;
constexpr uint32_t POLLNVAL = 0x0020;
constexpr uint32_t POLLRDNORM = 0x0040;
constexpr uint32_t POLLRDBAND = 0x0080;
constexpr uint32_t POLLWRNORM = POLLOUT;
constexpr uint32_t POLLWRBAND = 0x0100;
constexpr uint32_t POLLRDHUP = 0x4000;

// Return encoding of PORT_GETN's two results (docs/abi.md "Two results"):
// LP64 returns illumos's own r_vals (r_val1 | r_val2 << 32); ILP32 can only
// return 32 bits, so ETIME is bit 30 of the count.
constexpr int kEtime = 62;  // illumos ETIME (equal to Linux's)
constexpr uint32_t kIlp32EtimeBit = 0x40000000;

}  // namespace evshim::abi::illumos
