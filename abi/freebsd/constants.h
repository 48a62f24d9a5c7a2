// FreeBSD kqueue constants, spelled as FreeBSD spells them (sys/sys/event.h,
// 14.x; docs/rules-bsd.md §3). Never include a system <sys/event.h> here.
#pragma once

#include <cstdint>

namespace evshim::abi::freebsd {

constexpr int16_t EVFILT_READ = -1;
constexpr int16_t EVFILT_WRITE = -2;
constexpr int16_t EVFILT_AIO = -3;
constexpr int16_t EVFILT_VNODE = -4;
constexpr int16_t EVFILT_PROC = -5;
constexpr int16_t EVFILT_SIGNAL = -6;
constexpr int16_t EVFILT_TIMER = -7;
constexpr int16_t EVFILT_PROCDESC = -8;
constexpr int16_t EVFILT_FS = -9;
constexpr int16_t EVFILT_LIO = -10;
constexpr int16_t EVFILT_USER = -11;
constexpr int16_t EVFILT_SENDFILE = -12;
constexpr int16_t EVFILT_EMPTY = -13;
constexpr int16_t EVFILT_SYSCOUNT = 13;

constexpr uint16_t EV_ADD = 0x0001;
constexpr uint16_t EV_DELETE = 0x0002;
constexpr uint16_t EV_ENABLE = 0x0004;
constexpr uint16_t EV_DISABLE = 0x0008;
constexpr uint16_t EV_FORCEONESHOT = 0x0100;
constexpr uint16_t EV_KEEPUDATA = 0x0200;
constexpr uint16_t EV_ONESHOT = 0x0010;
constexpr uint16_t EV_CLEAR = 0x0020;
constexpr uint16_t EV_RECEIPT = 0x0040;
constexpr uint16_t EV_DISPATCH = 0x0080;
constexpr uint16_t EV_SYSFLAGS = 0xF000;
constexpr uint16_t EV_DROP = 0x1000;
constexpr uint16_t EV_FLAG1 = 0x2000;
constexpr uint16_t EV_FLAG2 = 0x4000;
constexpr uint16_t EV_EOF = 0x8000;
constexpr uint16_t EV_ERROR = 0x4000;

constexpr uint32_t NOTE_FFNOP = 0x00000000;
constexpr uint32_t NOTE_FFAND = 0x40000000;
constexpr uint32_t NOTE_FFOR = 0x80000000;
constexpr uint32_t NOTE_FFCOPY = 0xc0000000;
constexpr uint32_t NOTE_FFCTRLMASK = 0xc0000000;
constexpr uint32_t NOTE_FFLAGSMASK = 0x00ffffff;
constexpr uint32_t NOTE_TRIGGER = 0x01000000;

// EVFILT_FS hints (vfsquery flags, FreeBSD sys/sys/mount.h; the others, VQ_NOTRESP...,
// are never signalled under evshim: docs/kqueue.md "EVFILT_FS").
constexpr uint32_t VQ_MOUNT = 0x0008;
constexpr uint32_t VQ_UNMOUNT = 0x0010;

constexpr uint32_t NOTE_LOWAT = 0x0001;
constexpr uint32_t NOTE_FILE_POLL = 0x0002;

constexpr uint32_t NOTE_DELETE = 0x0001;
constexpr uint32_t NOTE_WRITE = 0x0002;
constexpr uint32_t NOTE_EXTEND = 0x0004;
constexpr uint32_t NOTE_ATTRIB = 0x0008;
constexpr uint32_t NOTE_LINK = 0x0010;
constexpr uint32_t NOTE_RENAME = 0x0020;
constexpr uint32_t NOTE_REVOKE = 0x0040;
constexpr uint32_t NOTE_OPEN = 0x0080;
constexpr uint32_t NOTE_CLOSE = 0x0100;
constexpr uint32_t NOTE_CLOSE_WRITE = 0x0200;
constexpr uint32_t NOTE_READ = 0x0400;

constexpr uint32_t NOTE_EXIT = 0x80000000;
constexpr uint32_t NOTE_FORK = 0x40000000;
constexpr uint32_t NOTE_EXEC = 0x20000000;
constexpr uint32_t NOTE_PCTRLMASK = 0xf0000000;
constexpr uint32_t NOTE_PDATAMASK = 0x000fffff;
constexpr uint32_t NOTE_TRACK = 0x00000001;
constexpr uint32_t NOTE_TRACKERR = 0x00000002;
constexpr uint32_t NOTE_CHILD = 0x00000004;

// Timer units: bits, 0 = milliseconds (timer2sbintime).
constexpr uint32_t NOTE_SECONDS = 0x00000001;
constexpr uint32_t NOTE_MSECONDS = 0x00000002;
constexpr uint32_t NOTE_USECONDS = 0x00000004;
constexpr uint32_t NOTE_NSECONDS = 0x00000008;
constexpr uint32_t NOTE_ABSTIME = 0x00000010;
constexpr uint32_t NOTE_TIMER_PRECMASK = NOTE_SECONDS | NOTE_MSECONDS | NOTE_USECONDS | NOTE_NSECONDS;

constexpr uint32_t KQUEUE_CLOEXEC = 0x00000001;
constexpr uint32_t KQUEUE_CPONFORK = 0x00000002;

}  // namespace evshim::abi::freebsd
