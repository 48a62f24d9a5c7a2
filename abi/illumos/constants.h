// illumos event-port constants, spelled as illumos spells them
// (sys/port.h, sys/port_impl.h, sys/poll.h; docs/rules-ports.md §1.3, §1.5, §2.2).
#pragma once

#include <cstddef>
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
// evshim-private (with PORT_SYS_NOPORT; a0 = a descriptor number): the
// library's close()/dup2()/dup3() report that the caller is about to close
// a descriptor it associated (port_close_fd, port.c:164-169; docs/design.md
// "Closing an associated descriptor"). illumos has no such opcode.
constexpr uint32_t PORT_EVSHIM_FD_CLOSING = 0x40;
// evshim-private (with PORT_SYS_NOPORT, no argument): the library's poll
// family is about to look at a port descriptor; the call itself does
// nothing, the readiness collected before every call and the descriptor
// bytes written before every answer are the point (docs/abi.md §10 "poll()
// on a port or kqueue descriptor"). illumos has no such opcode.
constexpr uint32_t PORT_EVSHIM_SETTLE = 0x41;
// evshim-private (with PORT_SYS_NOPORT; a0 = the address of a port's state,
// a1 = its size in bytes; abi/illumos/port_move.h): the in-process engine
// hands a port it serves to the supervisor before fork (docs/design.md
// "Moving a port at fork"); the answer is a new port descriptor.
constexpr uint32_t PORT_EVSHIM_ADOPT = 0x42;
constexpr uint32_t PORT_MAX_LIST = 8192;

// sources (port.h)
constexpr uint16_t PORT_SOURCE_AIO = 1;
constexpr uint16_t PORT_SOURCE_TIMER = 2;
constexpr uint16_t PORT_SOURCE_USER = 3;
constexpr uint16_t PORT_SOURCE_FD = 4;
constexpr uint16_t PORT_SOURCE_ALERT = 5;
constexpr uint16_t PORT_SOURCE_MQ = 6;
constexpr uint16_t PORT_SOURCE_FILE = 7;

// PORT_SOURCE_FILE events (port.h, port_impl.h; docs/rules-ports.md §1.7)
constexpr uint32_t FILE_ACCESS = 0x00000001;
constexpr uint32_t FILE_MODIFIED = 0x00000002;
constexpr uint32_t FILE_ATTRIB = 0x00000004;
constexpr uint32_t FILE_DELETE = 0x00000010;
constexpr uint32_t FILE_RENAME_TO = 0x00000020;
constexpr uint32_t FILE_RENAME_FROM = 0x00000040;
constexpr uint32_t FILE_TRUNC = 0x00100000;
constexpr uint32_t FILE_NOFOLLOW = 0x10000000;
constexpr uint32_t UNMOUNTED = 0x20000000;
constexpr uint32_t MOUNTEDOVER = 0x40000000;
constexpr uint32_t FILE_EXCEPTION = UNMOUNTED | FILE_DELETE | FILE_RENAME_TO | FILE_RENAME_FROM | MOUNTEDOVER;
constexpr uint32_t FILE_EVENTS_MASK = FILE_ACCESS | FILE_MODIFIED | FILE_ATTRIB | FILE_NOFOLLOW | FILE_TRUNC;
// The longest path name pn_get copies in, NUL included (sys/param.h).
constexpr size_t MAXPATHLEN = 1024;

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
