// A target's descriptors as the supervisor sees them, through /proc: which
// are an emulated object's socket (by the socket's inode), and the
// ProgramEnds of the supervisor's ObjectTable.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "emul/result.h"
#include "shim/runtime/object_table.h"

namespace evshim::shim::target_fds {

// The inode of the socket that thread `tid` has at `fd`: EBADF if the
// descriptor is not open, EBADFD if it is not a socket.
emul::Result<uint64_t> SocketInode(pid_t tid, int fd);
// Whether `pid`'s descriptor `fd` is the socket with `inode`.
bool IsSocket(pid_t pid, int fd, uint64_t inode);
// The descriptors of `pid` that are the socket with `inode` (only the first
// with `first_only`). Empty if the process is gone.
std::vector<int> SocketFds(pid_t pid, uint64_t inode, bool first_only);
// Whether `pid`'s descriptor `fd` is close-on-exec (/proc/PID/fdinfo).
bool CloseOnExec(pid_t pid, int fd);

// The targets' ends of the objects' socketpairs, reached through /proc and
// pidfd_getfd (the supervisor never keeps one open: the last close is seen
// as our end's hang-up). `pidfd_of` gives a process's pidfd (kept by the
// supervisor).
class TargetEnds final : public ProgramEnds {
 public:
  explicit TargetEnds(std::function<int(emul::Pid)> pidfd_of) : pidfd_of_(std::move(pidfd_of)) {}
  bool FdIs(emul::Pid pid, int fd, uint64_t inode) override;
  int Borrow(emul::Pid pid, int fd) override;
  void Release(int local) override;
  int FindFd(emul::Pid pid, uint64_t inode) override;

 private:
  std::function<int(emul::Pid)> pidfd_of_;
};

}  // namespace evshim::shim::target_fds
