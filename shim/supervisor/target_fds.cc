#include "shim/supervisor/target_fds.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>

namespace evshim::shim::target_fds {

emul::Result<uint64_t> SocketInode(pid_t tid, int fd) {
  if (fd < 0) return emul::Errno{EBADF};
  char path[64], link[128];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", tid, fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return emul::Errno{EBADF};
  link[n] = '\0';
  unsigned long long inode = 0;
  if (std::sscanf(link, "socket:[%llu]", &inode) != 1) return emul::Errno{EBADFD};
  return static_cast<uint64_t>(inode);
}

bool IsSocket(pid_t pid, int fd, uint64_t inode) {
  char path[64], link[128];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  ssize_t n = readlink(path, link, sizeof link - 1);
  if (n < 0) return false;
  link[n] = '\0';
  unsigned long long ino = 0;
  return std::sscanf(link, "socket:[%llu]", &ino) == 1 && ino == inode;
}

std::vector<int> SocketFds(pid_t pid, uint64_t inode, bool first_only) {
  std::vector<int> fds;
  char dir[64];
  std::snprintf(dir, sizeof dir, "/proc/%d/fd", pid);
  DIR* d = opendir(dir);
  if (d == nullptr) return fds;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    int fd = std::atoi(e->d_name);
    if (!IsSocket(pid, fd, inode)) continue;
    fds.push_back(fd);
    if (first_only) break;
  }
  closedir(d);
  return fds;
}

bool CloseOnExec(pid_t pid, int fd) {
  char info[64], buf[256];
  std::snprintf(info, sizeof info, "/proc/%d/fdinfo/%d", pid, fd);
  unsigned flags = 0;
  if (FILE* f = std::fopen(info, "re")) {
    while (std::fgets(buf, sizeof buf, f)) {
      if (std::sscanf(buf, "flags: %o", &flags) == 1) break;
    }
    std::fclose(f);
  }
  return (flags & O_CLOEXEC) != 0;
}

bool TargetEnds::FdIs(emul::Pid pid, int fd, uint64_t inode) { return IsSocket(static_cast<pid_t>(pid), fd, inode); }

int TargetEnds::Borrow(emul::Pid pid, int fd) {
  return static_cast<int>(syscall(SYS_pidfd_getfd, pidfd_of_(pid), fd, 0));
}

void TargetEnds::Release(int local) { close(local); }

int TargetEnds::FindFd(emul::Pid pid, uint64_t inode) {
  std::vector<int> fds = SocketFds(static_cast<pid_t>(pid), inode, /*first_only=*/true);
  return fds.empty() ? kNone : fds.front();
}

}  // namespace evshim::shim::target_fds
