// The shim's own descriptors (the in-process engine's epolls, eventfds, a
// file it reads, the supervisor's port put in place of the engine's) are
// closed and replaced with the system calls themselves, never through
// close() and dup3(). In a program with the engine those names are the
// foreign libraries' wrappers (shim/foreign/bsd/kqueue.c, shim/foreign/illumos/port.c),
// which report a close of a number the program once named (a knote's or an
// association's, left hinted by a raw close) to the engine: on a thread that
// holds the engine's lock that report waited for the lock for ever (the idle
// pump, docs/vm-test.md "A rare hang, found and fixed"), and on a calling
// thread it went to the supervisor as a close of the program's. Tests
// InprocKqueueOwnDescriptors.*.
//
// For shim/ only: emul/ makes no system calls and abi/ none of its own.
#pragma once

#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace evshim::shim {

inline void CloseOwnFd(int fd) { (void)syscall(SYS_close, fd); }

// A file the shim reads for itself and closes with CloseOwnFd is opened and
// read with the system calls too: a tool that follows descriptors through
// libc (ThreadSanitizer) then sees none of its life rather than an open
// with no close, which it held against the program's later use of the
// same number in another thread as a data race (s23, RawBlockedInAWait).
inline int OpenOwnFd(const char* path, int flags) {
  return static_cast<int>(syscall(SYS_openat, AT_FDCWD, path, flags));
}

inline long ReadOwnFd(int fd, void* buf, unsigned long count) { return syscall(SYS_read, fd, buf, count); }

inline int Dup3OwnFd(int oldfd, int newfd, int flags) {
  return static_cast<int>(syscall(SYS_dup3, oldfd, newfd, flags));
}

}  // namespace evshim::shim
