// OpenBSD kqueue constants, spelled as OpenBSD spells them (sys/sys/event.h
// 1.74; docs/rules-bsd.md §3). Never include a system <sys/event.h> here.
#pragma once

#include <cstdint>

namespace evshim::abi::openbsd {

constexpr int16_t EVFILT_READ = -1;
constexpr int16_t EVFILT_WRITE = -2;
constexpr int16_t EVFILT_AIO = -3;
constexpr int16_t EVFILT_VNODE = -4;
constexpr int16_t EVFILT_PROC = -5;
constexpr int16_t EVFILT_SIGNAL = -6;
constexpr int16_t EVFILT_TIMER = -7;
constexpr int16_t EVFILT_DEVICE = -8;
constexpr int16_t EVFILT_EXCEPT = -9;
constexpr int16_t EVFILT_USER = -10;
constexpr int16_t EVFILT_SYSCOUNT = 10;

constexpr uint16_t EV_ADD = 0x0001;
constexpr uint16_t EV_DELETE = 0x0002;
constexpr uint16_t EV_ENABLE = 0x0004;
constexpr uint16_t EV_DISABLE = 0x0008;
constexpr uint16_t EV_ONESHOT = 0x0010;
constexpr uint16_t EV_CLEAR = 0x0020;
constexpr uint16_t EV_RECEIPT = 0x0040;
constexpr uint16_t EV_DISPATCH = 0x0080;
constexpr uint16_t EV_SYSFLAGS = 0xf800;
constexpr uint16_t EV_FLAG1 = 0x2000;
constexpr uint16_t EV_EOF = 0x8000;
constexpr uint16_t EV_ERROR = 0x4000;

constexpr uint32_t NOTE_FFNOP = 0x00000000;
constexpr uint32_t NOTE_FFAND = 0x40000000;
constexpr uint32_t NOTE_FFOR = 0x80000000;
constexpr uint32_t NOTE_FFCOPY = 0xc0000000;
constexpr uint32_t NOTE_FFCTRLMASK = 0xc0000000;
constexpr uint32_t NOTE_FFLAGSMASK = 0x00ffffff;
constexpr uint32_t NOTE_TRIGGER = 0x01000000;

constexpr uint32_t NOTE_LOWAT = 0x0001;
constexpr uint32_t NOTE_EOF = 0x0002;
constexpr uint32_t NOTE_OOB = 0x0004;

constexpr uint32_t NOTE_DELETE = 0x0001;
constexpr uint32_t NOTE_WRITE = 0x0002;
constexpr uint32_t NOTE_EXTEND = 0x0004;
constexpr uint32_t NOTE_ATTRIB = 0x0008;
constexpr uint32_t NOTE_LINK = 0x0010;
constexpr uint32_t NOTE_RENAME = 0x0020;
constexpr uint32_t NOTE_REVOKE = 0x0040;
constexpr uint32_t NOTE_TRUNCATE = 0x0080;

constexpr uint32_t NOTE_EXIT = 0x80000000;
constexpr uint32_t NOTE_FORK = 0x40000000;
constexpr uint32_t NOTE_EXEC = 0x20000000;
constexpr uint32_t NOTE_PCTRLMASK = 0xf0000000;
constexpr uint32_t NOTE_PDATAMASK = 0x000fffff;
constexpr uint32_t NOTE_TRACK = 0x00000001;
constexpr uint32_t NOTE_TRACKERR = 0x00000002;
constexpr uint32_t NOTE_CHILD = 0x00000004;

// Timer units: an enumeration in the low two bits, 0 = milliseconds.
constexpr uint32_t NOTE_MSECONDS = 0x00000000;
constexpr uint32_t NOTE_SECONDS = 0x00000001;
constexpr uint32_t NOTE_USECONDS = 0x00000002;
constexpr uint32_t NOTE_NSECONDS = 0x00000003;
constexpr uint32_t NOTE_TIMER_UNITMASK = 0x00000003;
constexpr uint32_t NOTE_ABSTIME = 0x00000010;

// kqueue1(2) flags, OpenBSD's O_* values.
constexpr uint32_t O_NONBLOCK = 0x0004;
constexpr uint32_t O_CLOEXEC = 0x10000;

}  // namespace evshim::abi::openbsd
