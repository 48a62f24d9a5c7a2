// LinuxHost, continued: illumos PORT_SOURCE_FILE watches on inotify
// (port_fop.c; docs/rules-ports.md rule 36, §1.7; docs/design.md "File watches").
//
// A watch resolves the program's name as the program would: relative names
// from its working directory (/proc/PID/cwd), absolute ones in its root
// (/proc/PID/root). It opens the file O_PATH (nothing is read, nothing stays
// open), stats it for the timestamps the engine compares, and adds inotify
// watches through /proc/self/fd/N, so the very inode found is watched (a
// FILE_NOFOLLOW watch on a symbolic link watches the link). A second inotify
// watch on the directory the name was found in reports the name's removal
// and renames, which illumos turns into exceptions only for that name (a
// hard link's other names give FILE_ATTRIB). inotify watches are per inode:
// one wd serves every watch on it, in either role.
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "shim/runtime/own_fd.h"
#include "shim/runtime/linux_host.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;
namespace fb = emul::file_bits;

namespace {

// Every wd gets the same mask, so adding an inode twice never narrows it.
constexpr uint32_t kPathMask = IN_ACCESS | IN_MODIFY | IN_ATTRIB | IN_CREATE | IN_DELETE |
                               IN_MOVED_FROM | IN_MOVED_TO | IN_DELETE_SELF | IN_MOVE_SELF |
                               IN_EXCL_UNLINK;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::string SelfFdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

bool SameInode(const struct stat& a, const struct stat& b) {
  return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

emul::FileStamp Stamp(const timespec& ts) { return {ts.tv_sec, ts.tv_nsec}; }

}  // namespace

int LinuxHost::path_mounts_fd() {
  if (path_mounts_fd_ < 0) path_mounts_fd_ = open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  return path_mounts_fd_;
}

namespace {

// The parent of mount `id` in /proc/self/mountinfo ("ID PARENT ..."), or 0.
uint64_t ParentMount(uint64_t id) {
  FILE* f = std::fopen("/proc/self/mountinfo", "re");
  if (f == nullptr) return 0;
  unsigned long long mid = 0, parent = 0, found = 0;
  char line[4096];
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "%llu %llu", &mid, &parent) == 2 && mid == id) {
      found = parent;
      break;
    }
  }
  std::fclose(f);
  return found;
}

// The mount `path` (not following a final symbolic link) is on, and whether
// it is that mount's root.
bool MountOf(int dirfd, const char* path, int flags, uint64_t* mnt_id, bool* mount_root) {
  struct statx stx {};
  if (statx(dirfd, path, flags | AT_SYMLINK_NOFOLLOW, STATX_MNT_ID, &stx) != 0) return false;
  if (!(stx.stx_mask & STATX_MNT_ID)) return false;
  *mnt_id = stx.stx_mnt_id;
  *mount_root = (stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) && (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT);
  return true;
}

}  // namespace

// illumos sends MOUNTEDOVER when a file system is mounted on the watched file
// or directory itself (vnevent_mountedover from domount; port_fop.c
// VE_MOUNTEDOVER), an exception that ends every watch on it. inotify says
// nothing about mounts. When the mount table changes, each watched name (as
// found: w.path) is looked up again: if it now leads to the root of another
// mount whose parent is the mount the file was on, something was mounted
// over it. A mount elsewhere, or the unmount of a mount stacked under the
// watched one, does not match.
void LinuxHost::OnMountsChanged() {
  std::vector<emul::WatchId> covered;
  for (auto& [id, w] : path_watches_) {
    uint64_t now = 0;
    bool root = false;
    if (w.mnt_id == 0 || w.path.empty() || !MountOf(AT_FDCWD, w.path.c_str(), 0, &now, &root)) continue;
    if (now != w.mnt_id && root && ParentMount(now) == w.mnt_id) covered.push_back(id);
  }
  for (emul::WatchId id : covered) {
    if (path_watches_.count(id) != 0 && path_sink_) path_sink_(id, fb::kMountedOver);
  }
}

int LinuxHost::path_inotify_fd() {
  if (path_inotify_fd_ >= 0) return path_inotify_fd_;
  path_inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (path_inotify_fd_ >= 0 && path_inotify_loop_tag_ != 0) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = path_inotify_loop_tag_;
    if (epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, path_inotify_fd_, &ev) != 0) {
      // Unwatched, its events would never be read: not kept.
      HostFault("epoll_ctl", "adding the file watches' inotify to the loop", local_pid_);
      CloseOwnFd(path_inotify_fd_);
      path_inotify_fd_ = -1;
    }
  }
  return path_inotify_fd_;
}

Result<emul::PathWatch> LinuxHost::WatchPath(emul::Pid pid, const std::string& path, bool nofollow) {
  if (path.empty()) return Errno{ENOENT};  // lookuppn of ""
  const int ifd = path_inotify_fd();
  if (ifd < 0) return Errno{ENOMEM};
  const bool absolute = path[0] == '/';
  const std::string proc = "/proc/" + std::to_string(pid);
  Fd base(open((proc + (absolute ? "/root" : "/cwd")).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (base.fd < 0) return Errno{ENOENT};
  const int flags = O_PATH | O_CLOEXEC | (nofollow ? O_NOFOLLOW : 0);
  int fd = -1;
  if (!absolute) {
    fd = openat(base.fd, path.c_str(), flags);
  } else {
    struct stat their_root {}, our_root {};
    if (fstat(base.fd, &their_root) == 0 && stat("/", &our_root) == 0 && SameInode(their_root, our_root)) {
      // The program's root is ours: resolve as it would, /proc magic
      // included; its /proc/self and /dev/fd are its own.
      std::string p = path;
      if (p.rfind("/proc/self/", 0) == 0) p = proc + p.substr(10);
      if (p.rfind("/dev/fd/", 0) == 0) p = proc + "/fd/" + p.substr(8);
      fd = open(p.c_str(), flags);
    } else {
      // A chrooted program: resolve inside its root (no magic links there).
      open_how how{};
      how.flags = static_cast<uint64_t>(flags);
      how.resolve = RESOLVE_IN_ROOT;
      fd = static_cast<int>(syscall(SYS_openat2, base.fd, path.c_str(), &how, sizeof how));
    }
  }
  if (fd < 0) return Errno{errno};
  Fd file(fd);
  struct stat st {};
  if (fstatat(file.fd, "", &st, AT_EMPTY_PATH) != 0) return Errno{errno};

  PathWatchState w;
  w.dev = st.st_dev;
  w.ino = st.st_ino;
  w.size = st.st_size;
  w.atime = Stamp(st.st_atim);
  w.mtime = Stamp(st.st_mtim);
  bool mount_root = false;
  if (!MountOf(file.fd, "", AT_EMPTY_PATH, &w.mnt_id, &mount_root)) w.mnt_id = 0;
  char link[4096];
  ssize_t n = readlink(SelfFdPath(file.fd).c_str(), link, sizeof link - 1);
  if (n > 0) w.path.assign(link, static_cast<size_t>(n));
  w.wd = inotify_add_watch(ifd, SelfFdPath(file.fd).c_str(), kPathMask);
  if (w.wd < 0) return Errno{errno == ENOSPC ? ENOMEM : errno};  // out of inotify watches

  emul::PathWatch out;
  // Its directory (not for "/" or a name that is not a path any more).
  size_t slash = w.path.rfind('/');
  if (w.path.size() > 1 && w.path[0] == '/' && slash != std::string::npos) {
    std::string dir = slash == 0 ? "/" : w.path.substr(0, slash);
    w.name = w.path.substr(slash + 1);
    Fd dfd(open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    struct stat dst {};
    // A directory on another file system is ignored, as port_fop.c does.
    if (dfd.fd >= 0 && fstat(dfd.fd, &dst) == 0 && dst.st_dev == st.st_dev) {
      w.dir_wd = inotify_add_watch(ifd, SelfFdPath(dfd.fd).c_str(), kPathMask);
      if (w.dir_wd >= 0) {
        out.dir_dev = dst.st_dev;
        out.dir_ino = dst.st_ino;
      }
    }
  }
  emul::WatchId id = next_watch_++;
  path_by_wd_[w.wd].push_back(id);
  if (w.dir_wd >= 0) path_by_wd_[w.dir_wd].push_back(id);
  path_watches_.emplace(id, w);

  out.id = id;
  out.atime = Stamp(st.st_atim);
  out.mtime = Stamp(st.st_mtim);
  out.ctime = Stamp(st.st_ctim);
  out.fifo = S_ISFIFO(st.st_mode);
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  return out;
}

void LinuxHost::ReleaseWd(int wd, emul::WatchId id) {
  auto it = path_by_wd_.find(wd);
  if (it == path_by_wd_.end()) return;
  std::erase(it->second, id);
  if (it->second.empty()) {
    inotify_rm_watch(path_inotify_fd_, wd);
    path_by_wd_.erase(it);
  }
}

void LinuxHost::DropPathWatch(emul::WatchId id) {
  auto it = path_watches_.find(id);
  if (it == path_watches_.end()) return;
  if (it->second.wd >= 0) ReleaseWd(it->second.wd, id);
  if (it->second.dir_wd >= 0) ReleaseWd(it->second.dir_wd, id);
  path_watches_.erase(it);
}

// One inotify event, as the illumos watch `w` sees it (port_fop.c: the FEM
// hooks' FOP_* masks, port_impl.h, and the vnevents).
uint32_t LinuxHost::TranslatePathEvent(PathWatchState& w, int wd, uint32_t mask, const char* name) {
  const bool named = name != nullptr && name[0] != '\0';
  if (wd == w.dir_wd && wd != w.wd) {
    // The directory the name was found in: only that name's fate matters.
    if (!named || w.name != name) return 0;
    if (mask & IN_DELETE) return fb::kDelete;          // VE_REMOVE / VE_RMDIR
    if (mask & IN_MOVED_FROM) return fb::kRenameFrom;  // VE_RENAME_SRC
    if (mask & IN_MOVED_TO) return fb::kRenameTo;      // VE_RENAME_DEST: replaced
    return 0;
  }
  if (wd != w.wd) return 0;
  if (named) {
    // The watched file is a directory and one of its entries changed:
    // create/remove/link/rename/mkdir/rmdir/symlink on it (FOP_MODIFIED_MASK,
    // FOP_ATTRIB_MASK; a create is also FOP_TRUNC_MASK).
    if (mask & IN_CREATE) return fb::kModified | fb::kAttrib | fb::kTrunc;
    if (mask & (IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) return fb::kModified | fb::kAttrib;
    return 0;  // reads and writes of its entries are theirs
  }
  if (mask & IN_UNMOUNT) return fb::kUnmounted;
  if (mask & IN_DELETE_SELF) return fb::kDelete;
  if (mask & IN_MOVE_SELF) {
    // Renamed under a name we do not watch (a hard link): FILE_ATTRIB, as
    // port_fop_sendevent does; without a directory watch it is ours.
    return w.dir_wd >= 0 ? fb::kAttrib : fb::kRenameFrom;
  }
  uint32_t bits = 0;
  if (mask & IN_ACCESS) bits |= fb::kAccess;                   // read, readdir, map
  if (mask & IN_MODIFY) bits |= fb::kModified | fb::kAttrib;  // write, truncate
  if (mask & IN_ATTRIB) bits |= fb::kAttrib;                   // setattr, link count
  if (mask & (IN_MODIFY | IN_ATTRIB)) {
    // What inotify merges: a truncation and utimes (the times moved:
    // FILE_ACCESS / FILE_MODIFIED). illumos reports FILE_TRUNC for every
    // setattr of the size (port_fop_setattr AT_SIZE: truncate, ftruncate,
    // open O_TRUNC); Linux reports those and writes alike as IN_MODIFY. A
    // write never shrinks a file nor leaves a regular file empty (an empty
    // write is no IN_MODIFY), so: the size shrank, or a regular file is
    // empty after IN_MODIFY (O_TRUNC, truncate to 0 of an empty file).
    // Growing or same-size truncations look like writes (docs/abi.md).
    struct stat st {};
    if (!w.path.empty() && stat(w.path.c_str(), &st) == 0 && st.st_dev == w.dev && st.st_ino == w.ino) {
      const bool emptied = (mask & IN_MODIFY) && S_ISREG(st.st_mode) && st.st_size == 0;
      if (st.st_size < w.size || emptied) bits |= fb::kTrunc | fb::kModified;
      if ((mask & IN_ATTRIB) && Stamp(st.st_mtim) != w.mtime) bits |= fb::kModified;
      if ((mask & IN_ATTRIB) && Stamp(st.st_atim) != w.atime) bits |= fb::kAccess;
      w.size = st.st_size;
      w.mtime = Stamp(st.st_mtim);
      w.atime = Stamp(st.st_atim);
    }
  }
  return bits;
}

void LinuxHost::ReadPathEvents() {
  if (path_inotify_fd_ < 0) return;
  alignas(inotify_event) char buf[16384];
  while (true) {
    ssize_t n = read(path_inotify_fd_, buf, sizeof buf);
    if (n <= 0) return;
    for (ssize_t off = 0; off < n;) {
      const auto* ev = reinterpret_cast<const inotify_event*>(buf + off);
      off += static_cast<ssize_t>(sizeof(inotify_event) + ev->len);
      if (ev->mask & IN_Q_OVERFLOW) continue;  // lost events: nothing to report faithfully
      auto users = path_by_wd_.find(ev->wd);
      if (users == path_by_wd_.end()) continue;
      const std::vector<emul::WatchId> ids = users->second;  // the sink may drop watches
      for (emul::WatchId id : ids) {
        auto w = path_watches_.find(id);
        if (w == path_watches_.end()) continue;
        uint32_t bits = TranslatePathEvent(w->second, ev->wd, ev->mask, ev->len ? ev->name : nullptr);
        if (bits != 0 && path_sink_) path_sink_(id, bits);
      }
      if (ev->mask & IN_IGNORED) {
        // The kernel dropped the wd (the inode is gone, or unmounted).
        auto again = path_by_wd_.find(ev->wd);
        if (again != path_by_wd_.end()) {
          for (emul::WatchId id : again->second) {
            auto w = path_watches_.find(id);
            if (w == path_watches_.end()) continue;
            if (w->second.wd == ev->wd) w->second.wd = -1;
            if (w->second.dir_wd == ev->wd) w->second.dir_wd = -1;
          }
          path_by_wd_.erase(again);
        }
      }
    }
  }
}

}  // namespace evshim::shim
