// LinuxHost: the sources of kqueue's EVFILT_PROC and EVFILT_VNODE
// (docs/kqueue.md, "Processes" and "Files").
//
// Processes. Each watched pid has a pidfd in the main loop: it polls readable
// once the whole process has exited (it is then a zombie and waitable). The
// wait status is read without reaping and without touching the parent's
// SIGCHLD: from the netlink process connector (PROC_EVENT_EXIT carries the
// exit code in wait(2) form) when it is available, else from field 52 of
// /proc/PID/stat while the process is a zombie. The connector also reports
// forks and execs (NOTE_FORK, NOTE_EXEC, NOTE_TRACK); it needs CAP_NET_ADMIN,
// and without it those notes are EOPNOTSUPP. EVSHIM_NO_PROC_CONNECTOR=1
// disables it (tests of the fallback).
//
// Files. One inotify instance; a watch is added on /proc/PID/fd/N, which
// resolves to the file the target has open (deleted ones included) without
// opening it. inotify says that something happened; stat()ing the target's
// descriptor through /proc tells which NOTE_* it was (link count and size
// compared with the previous look).
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "emul/kqueue.h"
#include "shim/runtime/linux_host.h"
#include "shim/runtime/own_fd.h"
#include "shim/runtime/proc_connector.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;

namespace {

constexpr uint64_t kKindPidfd = 1, kKindConnector = 2, kKindInotify = 3, kKindMounts = 4;
// waitid's P_PIDFD (Linux 5.4), which older C libraries do not name.
constexpr int kPidfdIdType = 3;

uint64_t Tag(uint64_t kind, uint32_t low) {
  return LinuxHost::kHostTag | (kind << 32) | low;
}

// /proc/PID/stat: state (field 3), the parent's pid (field 4) and
// exit_code (field 52, wait(2) form).
struct StatFields {
  char state = 0;
  emul::Pid ppid = 0;
  int64_t exit_code = 0;
};

bool ParseStat(char* buf, StatFields* out) {
  char* p = std::strrchr(buf, ')');
  if (p == nullptr) return false;
  std::vector<std::string> fields;
  for (char* tok = std::strtok(p + 1, " \n"); tok != nullptr; tok = std::strtok(nullptr, " \n")) {
    fields.emplace_back(tok);
  }
  if (fields.size() < 2) return false;
  out->state = fields[0][0];
  out->ppid = static_cast<emul::Pid>(std::atoll(fields[1].c_str()));
  out->exit_code = fields.size() > 49 ? std::atoll(fields[49].c_str()) : 0;  // field 52
  return true;
}

bool ReadStat(emul::Pid pid, StatFields* out) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  FILE* f = std::fopen(path, "re");
  if (f == nullptr) return false;
  char buf[2048];
  size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  buf[n] = '\0';
  return ParseStat(buf, out);
}

// The same from a /proc/PID/stat descriptor held open (ProcWatch::stat_fd):
// pread makes no descriptor. Fails (ESRCH) once that process is reaped.
bool ReadStatFd(int fd, StatFields* out) {
  char buf[2048];
  const ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return false;
  buf[n] = '\0';
  return ParseStat(buf, out);
}

bool Exited(const StatFields& st) { return st.state == 'Z' || st.state == 'X'; }

// PIDFD_GET_INFO (Linux 6.13) asking PIDFD_INFO_EXIT (6.15): the kernel
// keeps a process's wait status for its pidfds once the process is reaped
// (release_task), child or not, and answers it with no descriptor made and
// no /proc read. Earlier kernels answer ENOTTY, or no PIDFD_INFO_EXIT in
// the mask (not reaped yet, too): false. Layout: linux/pidfd.h, the first
// published struct (PIDFD_INFO_SIZE_VER0, 64 bytes), exit_code last.
struct PidfdInfo {
  uint64_t mask;
  uint64_t cgroupid;
  uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
  int32_t exit_code;
};
static_assert(sizeof(PidfdInfo) == 64, "PIDFD_INFO_SIZE_VER0");
constexpr uint64_t kPidfdInfoExit = uint64_t{1} << 3;
constexpr unsigned long kPidfdGetInfo = _IOWR(0xFF, 11, PidfdInfo);

bool ReapedExitStatus(int pidfd, int64_t* status) {
  PidfdInfo info{};
  info.mask = kPidfdInfoExit;
  // The system call: a foreign library may wrap ioctl().
  if (syscall(SYS_ioctl, pidfd, kPidfdGetInfo, &info) != 0 || !(info.mask & kPidfdInfoExit)) return false;
  *status = info.exit_code;  // wait(2) form, as the connector's and /proc's
  return true;
}

// The wait(2) status a waitid reported.
int64_t WaitStatus(const siginfo_t& si) {
  switch (si.si_code) {
    case CLD_EXITED:
      return (si.si_status & 0xff) << 8;
    case CLD_KILLED:
      return si.si_status & 0x7f;
    case CLD_DUMPED:
      return (si.si_status & 0x7f) | 0x80;
    default:
      return 0;
  }
}

constexpr uint32_t kInotifyMask = IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF | IN_DELETE_SELF |
                                  IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO;
// FreeBSD's NOTE_OPEN, NOTE_CLOSE, NOTE_CLOSE_WRITE, NOTE_READ (vop_open_post,
// vop_close_post with or without FWRITE, vop_read_post/vop_readdir_post):
// on the watched file itself only, not on a directory's parent.
constexpr uint32_t kInotifyUseMask = IN_OPEN | IN_CLOSE_WRITE | IN_CLOSE_NOWRITE | IN_ACCESS;

std::string FdPath(emul::Pid pid, int fd) {
  return "/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd);
}

}  // namespace

bool LinuxHost::EnsureConnector() {
  if (connector_state_ != 0) return connector_state_ > 0;
  connector_state_ = -1;
  const char* off = std::getenv("EVSHIM_NO_PROC_CONNECTOR");
  if (off != nullptr && *off != '\0' && std::strcmp(off, "0") != 0) return false;
  int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (fd < 0) return false;
  int size = 8 << 20;  // events of the whole machine: make overflow unlikely
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
  if (!ListenToProcessEvents(fd)) {
    close(fd);  // EPERM without CAP_NET_ADMIN
    return false;
  }
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Tag(kKindConnector, 0);
  if (epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    // As without CAP_NET_ADMIN: pidfds and /proc stand in.
    HostFault("epoll_ctl", "adding the process connector to the loop", 0);
    close(fd);
    return false;
  }
  connector_fd_ = fd;
  connector_state_ = 1;
  return true;
}

Result<emul::Host::ProcessState> LinuxHost::WatchProcess(emul::Pid pid, bool fork_exec,
                                                         bool was_forked) {
  const bool connector = EnsureConnector();  // also the better exit status
  if (fork_exec && !connector) return Errno{EOPNOTSUPP};
  if (pid <= 0) return Errno{ESRCH};
  if (process_watch_cb_) process_watch_cb_();
  auto it = proc_watches_.find(pid);
  if (it != proc_watches_.end()) {
    ++it->second.refs;
    return ProcessState{it->second.exited && it->second.has_status, it->second.status};
  }
  ProcWatch w;
  w.refs = 1;
  if (!may_create_ && was_forked && connector) {
    // NOTE_TRACK's knote on a new process, from a fork message the
    // engine's idle pump read (the only way here on the pump: the
    // program's own registrations are calls, and the connector exists).
    // The pump makes no descriptor (set_local_may_create; docs/design.md,
    // Watches): a pidfd made here would take the lowest free number while
    // the program may be between close(n) and dup2(x, n). It is owed to
    // the next look that may (OpenOwedPidfds); meanwhile the connector's
    // exit message records the status. Test
    // InprocKqueueOwnDescriptors.IdlePumpTracksAForkWithoutADescriptor.
    w.pidfd_owed = true;
    pidfd_owed_ = true;
    proc_watches_.emplace(pid, w);
    return ProcessState{};
  }
  w.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (w.pidfd < 0) {
    // Reported by a fork and gone already: its exit message follows in the
    // connector's stream.
    if (!(was_forked && connector)) return Errno{ESRCH};
    w.exited = true;
    proc_watches_.emplace(pid, w);
    return ProcessState{};
  }
  fcntl(w.pidfd, F_SETFD, FD_CLOEXEC);
  // /proc/PID/stat, opened after the pidfd: both name this process (if it
  // is reaped in between, the read fails and the readable pidfd tells).
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", pid);
  const int stat_fd = open(path, O_RDONLY | O_CLOEXEC);
  StatFields st;
  const bool seen = stat_fd >= 0 && ReadStatFd(stat_fd, &st);
  if (seen && Exited(st)) {
    CloseOwnFd(stat_fd);
    CloseOwnFd(w.pidfd);
    w.pidfd = -1;
    w.exited = true;
    w.has_status = true;
    w.status = st.exit_code;
    proc_watches_.emplace(pid, w);
    return ProcessState{true, st.exit_code};
  }
  // In-process (fast mode) without the connector, a process that is not
  // the program's child keeps its /proc/PID/stat open: at its exit the
  // idle pump, which opens nothing, reads the zombie's status from it
  // (ProcessExited). A child's comes from its pidfd (waitid WNOWAIT), and
  // with the connector its exit message carries it: no descriptor more
  // (nor for the program itself, whose exit it never sees). One the limit
  // (RLIMIT_NOFILE) refuses leaves the status to the next call, as before.
  // Test InprocKqueueOwnDescriptors.IdlePumpReportsAnUnreapedNonChildsExitWithItsStatus.
  if (seen && local_ && !connector && pid != local_pid_ && st.ppid != local_pid_) {
    w.stat_fd = stat_fd;
  } else if (stat_fd >= 0) {
    CloseOwnFd(stat_fd);
  }
  AddPidfdToLoop(pid, w.pidfd);
  proc_watches_.emplace(pid, w);
  return ProcessState{};
}

// The pidfds owed by watches the idle pump recorded (WatchProcess), on a
// look that may make descriptors, before it reads the loop.
void LinuxHost::OpenOwedPidfds() {
  pidfd_owed_ = false;
  std::vector<emul::Pid> owed;
  for (auto& [pid, w] : proc_watches_) {
    if (w.pidfd_owed) owed.push_back(pid);
  }
  // The exit messages that came meanwhile first: a process whose exit was
  // read is told apart from a later one with its pid (below).
  if (connector_state_ > 0) ReadConnector();
  for (emul::Pid pid : owed) {
    auto it = proc_watches_.find(pid);
    if (it == proc_watches_.end() || !it->second.pidfd_owed) continue;  // unwatched meanwhile
    ProcWatch& w = it->second;
    w.pidfd_owed = false;
    w.pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
    if (w.pidfd < 0) {
      // Reaped already. The kernel sends the exit message before the
      // process can be reaped, so it is in the connector's stream now:
      // read it (as exited, the watch is reported there, or with the /proc
      // value or 0 if the connector overflowed). A status still missing
      // was lost in an overflow before the watch was exited: 0.
      w.exited = true;
      if (!w.has_status && connector_state_ > 0) ReadConnector();
      it = proc_watches_.find(pid);
      if (it == proc_watches_.end() || it->second.reported) continue;
      it->second.has_status = true;
      ReportExit(pid);
      continue;
    }
    fcntl(w.pidfd, F_SETFD, FD_CLOEXEC);
    StatFields st;
    const bool seen = ReadStat(pid, &st);
    if (seen && (Exited(st) || w.has_status)) {
      // A zombie (status from the connector, else /proc), or a live
      // process under a pid whose exit was read: not the tracked one, which
      // is gone and reaped (a pid used again). Reported now.
      if (!w.has_status) w.status = st.exit_code;
      w.has_status = true;
      w.exited = true;
      CloseProcFds(w);
      ReportExit(pid);
      continue;
    }
    // Running, or reaped since pidfd_open (then the pidfd polls readable
    // and this look's read of the loop routes it: ProcessExited).
    AddPidfdToLoop(pid, w.pidfd);
  }
}

// The pidfd polls readable at the exit: the loop routes it (ProcessExited).
void LinuxHost::AddPidfdToLoop(emul::Pid pid, int pidfd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = Tag(kKindPidfd, static_cast<uint32_t>(pid));
  if (epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, pidfd, &ev) != 0) {
    HostFault("epoll_ctl", "watching the exit of process " + std::to_string(pid) +
                               " for EVFILT_PROC (only the connector can report it now)", 0);
  }
}

void LinuxHost::CloseProcFds(ProcWatch& w) {
  if (w.pidfd >= 0) CloseOwnFd(w.pidfd);  // leaves the main loop with it
  if (w.stat_fd >= 0) CloseOwnFd(w.stat_fd);
  w.pidfd = -1;
  w.stat_fd = -1;
}

void LinuxHost::UnwatchProcess(emul::Pid pid) {
  auto it = proc_watches_.find(pid);
  if (it == proc_watches_.end()) return;
  if (--it->second.refs > 0) return;
  CloseProcFds(it->second);
  proc_watches_.erase(it);
}

void LinuxHost::ReportExit(emul::Pid pid) {
  auto it = proc_watches_.find(pid);
  if (it == proc_watches_.end() || it->second.reported) return;
  it->second.reported = true;
  const int64_t status = it->second.status;
  // The sink unwatches: `it` may be gone after this.
  if (kqueue_sink_.exit) kqueue_sink_.exit(pid, status);
}

// The pidfd polled readable: the process has exited and is waitable.
void LinuxHost::ProcessExited(emul::Pid pid) {
  auto it = proc_watches_.find(pid);
  if (it == proc_watches_.end()) return;
  if (!may_create_ && !it->second.has_status) {
    // The engine's idle pump makes no descriptor (set_local_may_create):
    // ReadStat below would take one. A child's status comes without one,
    // from its pidfd (WNOWAIT: the program still reaps it), another
    // process's zombie's from its /proc/PID/stat held open (WatchProcess);
    // a status still missing (reaped already, or the connector's message
    // lost) is owed to the next look that may make descriptors, which
    // finds the pidfd readable still.
    // (Read first: the connector may hold the exit message.)
    if (connector_state_ > 0) ReadConnector();
    it = proc_watches_.find(pid);
    if (it == proc_watches_.end()) return;
    ProcWatch& c = it->second;
    siginfo_t si{};
    if (!c.has_status && c.pidfd >= 0 &&
        waitid(static_cast<idtype_t>(kPidfdIdType), static_cast<id_t>(c.pidfd), &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        si.si_pid != 0) {
      c.has_status = true;
      c.status = WaitStatus(si);
    }
    // Another process's while it is a zombie (its parent has not reaped
    // it): pread of the descriptor held, on every kernel. Test
    // InprocKqueueOwnDescriptors.IdlePumpReportsAnUnreapedNonChildsExitWithItsStatus.
    StatFields st;
    if (!c.has_status && c.stat_fd >= 0 && ReadStatFd(c.stat_fd, &st) && Exited(st)) {
      c.has_status = true;
      c.status = st.exit_code;
    }
    // Another process's, once its parent reaped it (Linux 6.15): while it
    // is a zombie its pidfd stays readable and the pump, looking once per
    // millisecond while something is owed, asks again. Test
    // InprocKqueueOwnDescriptors.IdlePumpReportsAReapedNonChildsExitWithItsStatus.
    if (!c.has_status && c.pidfd >= 0 && ReapedExitStatus(c.pidfd, &c.status)) c.has_status = true;
    if (!c.has_status) {
      exit_owed_ = true;
      return;
    }
  }
  it->second.exited = true;
  if (!it->second.has_status && connector_state_ > 0) {
    ReadConnector();  // its exit message may be waiting
    it = proc_watches_.find(pid);
    if (it == proc_watches_.end()) return;  // reported and unwatched (its pidfd closed)
  }
  ProcWatch& w = it->second;
  // The pidfd stays open until the status is found: a reaped process's
  // status is the kernel's to tell through it (Linux 6.15).
  if (!w.has_status) {
    // The descriptor held, if any: it names this process, never a later
    // one with its pid.
    StatFields st;
    int64_t code = 0;
    if ((w.stat_fd >= 0 ? ReadStatFd(w.stat_fd, &st) : ReadStat(pid, &st)) && Exited(st)) {
      w.has_status = true;
      w.status = st.exit_code;
    } else if (w.pidfd >= 0 && ReapedExitStatus(w.pidfd, &code)) {
      // Reaped already (/proc has nothing): asked after /proc, not before,
      // as a zombie may be reaped between the two. Scenario proc_nonchild.
      w.has_status = true;
      w.status = code;
    } else if (connector_state_ > 0) {
      CloseProcFds(w);
      return;  // reaped already: the connector's message will tell the status
    } else {
      w.has_status = true;  // reaped before we looked, no connector, before 6.15: 0 (docs/kqueue.md)
    }
  }
  CloseProcFds(w);
  ReportExit(pid);
}

void LinuxHost::ReadConnector() {
  alignas(nlmsghdr) char buf[8192];
  while (true) {
    ssize_t n = recv(connector_fd_, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOBUFS) {
        // Messages were lost: processes waiting for their status get what
        // /proc still shows, or 0.
        std::vector<emul::Pid> waiting;
        for (auto& [pid, w] : proc_watches_) {
          if (w.exited && !w.has_status && !w.reported) waiting.push_back(pid);
        }
        for (emul::Pid pid : waiting) {
          auto it = proc_watches_.find(pid);
          if (it == proc_watches_.end()) continue;
          it->second.has_status = true;
          ReportExit(pid);
        }
        continue;
      }
      return;  // EAGAIN
    }
    for (nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<uint32_t>(n));
         nh = NLMSG_NEXT(nh, n)) {
      if (nh->nlmsg_type == NLMSG_NOOP || nh->nlmsg_type == NLMSG_ERROR) continue;
      auto* cn = static_cast<cn_msg*>(NLMSG_DATA(nh));
      if (cn->id.idx != CN_IDX_PROC || cn->id.val != CN_VAL_PROC) continue;
      // The payload is only 4-byte aligned in the message: copy it out.
      proc_event event{};
      std::memcpy(&event, cn->data, std::min<size_t>(cn->len, sizeof event));
      const proc_event* ev = &event;
      switch (ev->what) {
        case proc_event::PROC_EVENT_FORK: {
          const auto& f = ev->event_data.fork;
          if (f.child_pid != f.child_tgid) break;  // a thread, not a process
          const emul::Pid parent = f.parent_tgid;
          if (proc_watches_.count(parent) && kqueue_sink_.fork) {
            kqueue_sink_.fork(parent, f.child_tgid);
          }
          break;
        }
        case proc_event::PROC_EVENT_EXEC: {
          const emul::Pid pid = ev->event_data.exec.process_tgid;
          if (proc_watches_.count(pid) && kqueue_sink_.exec) kqueue_sink_.exec(pid);
          if (exec_sink_) exec_sink_(pid);  // event ports: timers die at exec
          break;
        }
        case proc_event::PROC_EVENT_EXIT: {
          const auto& e = ev->event_data.exit;
          if (e.process_pid != e.process_tgid) break;  // the leader's exit holds the status
          auto it = proc_watches_.find(e.process_tgid);
          if (it == proc_watches_.end() || it->second.has_status) break;
          it->second.has_status = true;
          it->second.status = e.exit_code;
          // Reported once the pidfd says the whole process is gone.
          if (it->second.exited) ReportExit(e.process_tgid);
          break;
        }
        case proc_event::PROC_EVENT_NONE:
        case proc_event::PROC_EVENT_UID:
        case proc_event::PROC_EVENT_GID:
        case proc_event::PROC_EVENT_SID:
        case proc_event::PROC_EVENT_PTRACE:
        case proc_event::PROC_EVENT_COMM:
        case proc_event::PROC_EVENT_COREDUMP:
          break;
      }
    }
  }
}

Result<emul::WatchId> LinuxHost::WatchVnode(emul::Pid pid, int fd, bool use_events) {
  const std::string path = FdPath(pid, fd);
  char link[256];
  ssize_t n = readlink(path.c_str(), link, sizeof link - 1);
  if (n < 0) return Errno{EBADF};
  link[n] = '\0';
  // Pipes, sockets and the like are not vnodes: their kqfilter refuses
  // EVFILT_VNODE with EINVAL.
  if (link[0] != '/') return Errno{EINVAL};
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return Errno{EBADF};
  if (inotify_fd_ < 0) {
    inotify_fd_ = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
    if (inotify_fd_ < 0) return Errno{errno == EMFILE ? ENOMEM : errno};
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = Tag(kKindInotify, 0);
    if (epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, inotify_fd_, &ev) != 0) {
      HostFault("epoll_ctl", "adding the EVFILT_VNODE inotify to the loop (vnode events go unseen)", 0);
    }
  }
  // Follows the magic link to the open file's inode; holds no open file.
  // inotify has one watch per inode: IN_MASK_ADD never narrows what another
  // knote on the same file asked for.
  const uint32_t mask = kInotifyMask | (use_events ? kInotifyUseMask : 0) | IN_MASK_ADD;
  int wd = inotify_add_watch(inotify_fd_, path.c_str(), mask);
  if (wd < 0) return Errno{errno == ENOSPC ? ENOMEM : errno == ENOENT ? EBADF : errno};
  VnodeWatch v;
  v.pid = pid;
  v.fd = fd;
  v.wd = wd;
  v.dev = st.st_dev;
  v.ino = st.st_ino;
  v.nlink = st.st_nlink;
  v.size = st.st_size;
  v.dir = S_ISDIR(st.st_mode);
  if (v.dir) {
    std::string target(link);
    size_t slash = target.find_last_of('/');
    if (slash != std::string::npos && target.size() > 1 && target.find(" (deleted)") == std::string::npos) {
      std::string parent = slash == 0 ? "/" : target.substr(0, slash);
      v.name = target.substr(slash + 1);
      // IN_MASK_ADD: the parent may be watched itself, with the wider mask.
      v.parent_wd = inotify_add_watch(inotify_fd_, parent.c_str(), kInotifyMask | IN_MASK_ADD);
    }
  }
  emul::WatchId id = next_watch_++;
  vnodes_.emplace(id, v);
  return id;
}

void LinuxHost::WatchVnodeUse(emul::WatchId id) {
  auto it = vnodes_.find(id);
  if (it == vnodes_.end()) return;
  const VnodeWatch& v = it->second;
  const std::string path = FdPath(v.pid, v.fd);
  struct stat st {};
  // Only while the descriptor still names the watched inode (same wd).
  if (stat(path.c_str(), &st) != 0 || st.st_dev != v.dev || st.st_ino != v.ino) return;
  inotify_add_watch(inotify_fd_, path.c_str(), kInotifyMask | kInotifyUseMask | IN_MASK_ADD);
}

bool LinuxHost::SameVnode(emul::Pid pid, int fd, emul::WatchId id) {
  auto it = vnodes_.find(id);
  if (it == vnodes_.end()) return false;
  struct stat st {};
  if (stat(FdPath(pid, fd).c_str(), &st) != 0) return false;
  return st.st_dev == it->second.dev && st.st_ino == it->second.ino;
}

void LinuxHost::DropVnode(emul::WatchId id) {
  auto it = vnodes_.find(id);
  if (it == vnodes_.end()) return;
  const int wds[2] = {it->second.wd, it->second.parent_wd};
  vnodes_.erase(it);
  for (int wd : wds) {
    if (wd < 0) continue;
    bool used = false;  // inotify has one watch per inode: still in use?
    for (auto& [other, v] : vnodes_) used = used || v.wd == wd || v.parent_wd == wd;
    if (!used) inotify_rm_watch(inotify_fd_, wd);
  }
}

void LinuxHost::ReadInotify() {
  alignas(inotify_event) char buf[8192];
  using namespace emul::kev;
  while (true) {
    ssize_t n = read(inotify_fd_, buf, sizeof buf);
    if (n <= 0) return;
    for (char* p = buf; p < buf + n;) {
      auto* ie = reinterpret_cast<inotify_event*>(p);
      p += sizeof(inotify_event) + ie->len;
      // A directory's watch also hears of its entries' own changes (a name
      // is given): only entries coming and going concern the directory.
      const uint32_t mask =
          ie->len > 0 ? ie->mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO) : ie->mask;
      std::vector<std::pair<emul::WatchId, uint32_t>> fire;
      for (auto& [id, v] : vnodes_) {
        if (v.parent_wd == ie->wd && ie->len > 0 && v.name == ie->name &&
            (ie->mask & (IN_DELETE | IN_MOVED_FROM)) && !v.deleted) {
          // The watched directory's own name went away: removed if its
          // link count is 0 now (a rename is IN_MOVE_SELF on it).
          struct stat st {};
          if (stat(FdPath(v.pid, v.fd).c_str(), &st) == 0 && st.st_ino == v.ino && st.st_nlink == 0) {
            v.deleted = true;
            fire.emplace_back(id, kNoteDelete);
          }
          continue;
        }
        if (v.wd != ie->wd || mask == 0) continue;
        uint32_t notes = 0;
        if (mask & IN_IGNORED) {
          v.wd = -1;  // the inode is gone (after IN_DELETE_SELF) or unmounted
          if (!v.deleted) notes |= kNoteDelete;
        }
        if (mask & IN_DELETE_SELF) notes |= kNoteDelete;
        if (mask & IN_MOVE_SELF) notes |= kNoteRename;
        if (mask & IN_UNMOUNT) notes |= kNoteRevoke;
        if (mask & (IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_MOVED_TO)) notes |= kNoteWrite;
        if (mask & IN_OPEN) notes |= kNoteOpened;
        if (mask & IN_CLOSE_NOWRITE) notes |= kNoteClose;  // closed without write access
        if (mask & IN_CLOSE_WRITE) notes |= kNoteCloseWrite;
        if (mask & IN_ACCESS) notes |= kNoteRead;
        if ((mask & ~(kInotifyUseMask | IN_ISDIR)) == 0) {
          // Only opens, closes and reads: nothing to measure.
          if (notes != 0) fire.emplace_back(id, notes);
          continue;
        }
        struct stat st {};
        const bool seen = stat(FdPath(v.pid, v.fd).c_str(), &st) == 0 && st.st_dev == v.dev &&
                          st.st_ino == v.ino;
        if (seen) {
          const uint64_t nlink = st.st_nlink;
          const int64_t size = st.st_size;
          if (mask & IN_MODIFY) {
            // A write (NOTE_EXTEND if it grew the file), or a truncation.
            if (size < v.size) {
              notes |= kNoteAttrib | kNoteTruncate;
            } else {
              notes |= kNoteWrite | (size > v.size ? kNoteExtend : 0);
            }
          }
          if (nlink != v.nlink) {
            // A file's unlink is NOTE_DELETE (vop_remove), a link() NOTE_LINK;
            // a directory's count changes with its subdirectories.
            if (!v.dir && nlink < v.nlink) {
              notes |= kNoteDelete;
            } else if (nlink == 0) {
              notes |= kNoteDelete;
            } else {
              notes |= kNoteLink;
            }
          } else if (mask & IN_ATTRIB) {
            notes |= kNoteAttrib;
          }
          v.nlink = nlink;
          v.size = size;
        } else if (mask & IN_MODIFY) {
          notes |= kNoteWrite;
        }
        if (notes & kNoteDelete) v.deleted = true;
        if (notes != 0) fire.emplace_back(id, notes);
      }
      for (auto& [id, notes] : fire) {
        if (kqueue_sink_.vnode) kqueue_sink_.vnode(id, notes);
      }
    }
  }
}

namespace {
// What a kept watch's registration waits for: a READ knote's readiness.
constexpr uint32_t kKeptEvents =
    emul::poll_bits::kIn | emul::poll_bits::kRdHup | emul::poll_bits::kHup | emul::poll_bits::kErr;
}  // namespace

// A READ knote's watch whose knote went with its file still at the number:
// kept for the number's next knote (docs/kqueue.md "What a kevent costs").
// The first time as it is, with this call's fstat of the number; when the
// watch served a second knote, with its level registration kept on.
void LinuxHost::ReleaseWatch(emul::WatchId id, emul::Pid pid, int fd, emul::FdKind kind) {
  using emul::FdKind;
  // Only a file whose look report can stand for the poll
  // (ProbeReadableAfterLook), and only with this call's fstat of the number.
  const bool keepable = IsLocal(id) && local_ && pid == local_pid_ && file_check_memo_ &&
                        fd == local_stat_fd_ && ((emul::IsPipeKind(kind) && kind != FdKind::kPipeWriteEnd) ||
                                                                kind == FdKind::kSocket);
  KeptWatch* kept = keepable ? kept_.Find(fd) : nullptr;
  if (kept != nullptr && kept->id == id && kept->registered && fd == kept_confirmed_fd_ && kept->kind == kind) {
    // Given back in the call that confirmed it (its knote lived one call:
    // EV_ONESHOT added again and again): its record is what this call's
    // fstat answer came from (ConfirmKept), only its registration is kept
    // again.
    if (!local_->Keep(id, fd, kKeptEvents)) {
      kept_.Erase(fd);
      local_->Drop(id);
      return;
    }
    kept->parked = true;
    return;
  }
  if (!keepable || (kept != nullptr && kept->parked && kept->id != id)) {
    DropWatch(id);  // one kept watch per number
    return;
  }
  KeptWatch k;
  k.id = id;
  k.dev = local_stat_.st_dev;
  k.ino = local_stat_.st_ino;
  k.mode = local_stat_.st_mode;
  k.kind = kind;
  k.parked = true;
  if (kept != nullptr && kept->id == id) {
    // Its second knote at least: its registration stays on from now.
    k.registered = local_->Keep(id, fd, kKeptEvents);
    if (!k.registered) {
      kept_.Erase(fd);
      local_->Drop(id);
      return;
    }
    *kept = k;
    return;
  }
  kept_.Put(fd, k);
}

void LinuxHost::ForgetFd(emul::Pid pid, int fd) {
  if (pid != local_pid_ || kept_.empty()) return;
  KeptWatch* kept = kept_.Find(fd);
  if (kept == nullptr) return;
  if (kept->parked && local_) local_->Drop(kept->id);
  kept_.Erase(fd);
  if (fd == kept_confirmed_fd_) kept_confirmed_fd_ = -1;
}

LinuxHost::Kept LinuxHost::ConfirmKept(int fd) {
  const KeptWatch* kept = kept_.Find(fd);
  if (kept == nullptr || !kept->parked || !local_ || !file_check_memo_) return Kept::kNone;
  if (fd == kept_confirmed_fd_) return Kept::kConfirmed;
  const KeptWatch& k = *kept;
  Kept verdict = Kept::kNone;
  if (k.registered) {
    // EPOLL_CTL_MOD on the number succeeds only on this file's registration.
    if (local_->SameFile(fd, k.id)) {
      // The three fields LocalStat's readers read (its type, its inode, its
      // device: linux_host.h); the rest is not cleared (144 bytes a change).
      local_stat_.st_dev = static_cast<dev_t>(k.dev);
      local_stat_.st_ino = static_cast<ino_t>(k.ino);
      local_stat_.st_mode = static_cast<mode_t>(k.mode);
      local_stat_fd_ = fd;
      verdict = Kept::kConfirmed;
    }
  } else {
    // Not registered: the number's fstat (kept for the call) names the file;
    // an unregistered watch holds nothing of the old one.
    const struct stat* st = LocalStat(fd);
    if (st == nullptr) {
      verdict = Kept::kClosed;
    } else if (static_cast<uint64_t>(st->st_dev) == k.dev && static_cast<uint64_t>(st->st_ino) == k.ino &&
               local_->SameFile(fd, k.id, true)) {
      verdict = Kept::kConfirmed;
    }
  }
  if (verdict == Kept::kConfirmed) {
    kept_confirmed_fd_ = fd;
    return verdict;
  }
  local_->Drop(k.id);
  kept_.Erase(fd);
  return verdict;
}

// kqueue's READ filter on a pipe or a (not listening) socket whose watch
// this call's look reported readable, with no hang-up and no error: that
// report stands for the poll (docs/kqueue.md "What a kevent costs"), and
// FIONREAD (SIOCINQ for a socket: the same request) measures `data`. More
// than 0 bytes agrees with the report: readable without EOF, as
// filt_piperead/filt_soread say with data > 0 and no EOF state. Otherwise
// (read dry by another thread since, a listening socket's EINVAL, an
// empty datagram) the file is measured in full.
Result<emul::FdProbe> LinuxHost::ProbeReadableAfterLook(emul::Pid pid, int fd, emul::FdKind known,
                                                        emul::WatchId watch) {
  using emul::FdKind;
  if (known == FdKind::kUnknown && fd == kept_confirmed_fd_ && file_check_memo_) {
    // A new knote on the watch kept for this number (ReleaseWatch).
    const KeptWatch* kept = kept_.Find(fd);
    if (kept != nullptr && kept->id == watch) known = kept->kind;
  }
  // Not a pipe's write end: its READ is the reverse direction, with no bytes.
  const bool counted_kind =
      (emul::IsPipeKind(known) && known != FdKind::kPipeWriteEnd) || known == FdKind::kSocket;
  if (pid == local_pid_ && counted_kind && IsLocal(watch) && local_ && local_->ReportedReadyThisCall(watch)) {
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) == 0 && n > 0) {
      emul::FdProbe p;
      p.kind = known;
      p.revents = POLLIN;
      p.readable = n;
      p.pipe = emul::IsPipeKind(known);
      return p;
    }
  }
  return ProbeFd(pid, fd, emul::FdProbeNeeds::kReadable, known);
}

void LinuxHost::OnHostEvent(uint64_t data) {
  const uint64_t kind = (data >> 32) & 0xff;
  switch (kind) {
    case kKindPidfd:
      ProcessExited(static_cast<emul::Pid>(data & 0xffffffffu));
      break;
    case kKindConnector:
      if (connector_fd_ >= 0) ReadConnector();
      break;
    case kKindInotify:
      if (inotify_fd_ >= 0) ReadInotify();
      break;
    case kKindMounts:
      for (MountTable& t : mount_tables_) {
        if (t.tag == static_cast<uint32_t>(data & 0xffffffffu)) {
          CheckMountTable(t);
          break;
        }
      }
      break;
    default:
      break;
  }
}

// --- kqueue FS: mount tables (docs/kqueue.md "EVFILT_FS") ---
//
// /proc/PID/mountinfo polls POLLPRI (and POLLERR) once the mount namespace
// it shows changed since its last poll (fs/proc_namespace.c mounts_poll).
// That says only that something changed: the table is read again and
// compared with the last read, by mount ID (the first field): a new ID is a
// mount, a missing one an unmount, a changed line under the same ID an
// update (a remount, a propagation change).
namespace {

// Bounds of one read: a namespace's mounts past kMaxMounts are not compared
// (and a table past kMaxTableBytes is read no further), so no read and no
// snapshot grows without bound whatever a program mounts.
constexpr size_t kMaxMounts = 1 << 16;
constexpr size_t kMaxTableBytes = 64u << 20;

uint64_t MountNamespace(emul::Pid pid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/ns/mnt", pid);
  struct stat st {};
  if (stat(path, &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_ino);
}

}  // namespace

bool LinuxHost::IsMountTableEvent(uint64_t data) {
  return (data & kHostTag) != 0 && ((data >> 32) & 0xff) == kKindMounts;
}

// One pass over the table in fixed chunks: each line's ID, a hash of what
// makes it that mount (fields 2 to 5: parent, device, root, mount point)
// and one of the whole line (FNV-1a), sorted by ID. Linux gives a freed ID
// to the next mount: an unmount and a mount between two reads can leave
// the same ID, which its identity then tells apart from an update.
bool LinuxHost::ReadMountTable(int fd, std::vector<MountLine>* out) {
  out->clear();
  if (lseek(fd, 0, SEEK_SET) != 0) return false;
  constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull, kFnvPrime = 0x100000001b3ull;
  char buf[16384];
  size_t total = 0;
  MountLine line{0, kFnvBasis, kFnvBasis};
  unsigned field = 1;
  bool has_id = false;
  while (total < kMaxTableBytes && out->size() < kMaxMounts) {
    const long n = ReadOwnFd(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) break;
    total += static_cast<size_t>(n);
    for (long i = 0; i < n && out->size() < kMaxMounts; ++i) {
      const char c = buf[i];
      if (c == '\n') {
        if (has_id) out->push_back(line);
        line = MountLine{0, kFnvBasis, kFnvBasis};
        field = 1;
        has_id = false;
        continue;
      }
      line.whole = (line.whole ^ static_cast<unsigned char>(c)) * kFnvPrime;
      if (c == ' ') {
        ++field;
        continue;
      }
      if (field == 1 && c >= '0' && c <= '9' && line.id < (UINT64_MAX - 9) / 10) {
        line.id = line.id * 10 + static_cast<uint64_t>(c - '0');
        has_id = true;
      } else if (field >= 2 && field <= 5) {
        line.identity = (line.identity ^ (static_cast<unsigned char>(c) + (field << 8))) * kFnvPrime;
      }
    }
  }
  std::sort(out->begin(), out->end(), [](const MountLine& a, const MountLine& b) { return a.id < b.id; });
  return true;
}

Result<emul::WatchId> LinuxHost::WatchMounts(emul::Pid pid) {
  const uint64_t ns = MountNamespace(pid);
  if (ns == 0) return Errno{ESRCH};  // no such process: gone meanwhile
  auto table = std::find_if(mount_tables_.begin(), mount_tables_.end(),
                            [&](const MountTable& t) { return t.ns == ns; });
  if (table == mount_tables_.end()) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/mountinfo", pid);
    MountTable t;
    t.ns = ns;
    t.fd = OpenOwnFd(path, O_RDONLY | O_CLOEXEC);
    // Out of descriptors or gone: no knote (the BSDs' answer when the
    // kernel cannot allocate one).
    if (t.fd < 0) return Errno{errno == ENOENT || errno == ESRCH ? ESRCH : ENOMEM};
    // The read that later ones are compared with: what was mounted before
    // the knote is no event. Reading takes no change (only a poll does),
    // so a change between this read and the first poll is still seen.
    if (!ReadMountTable(t.fd, &t.mounts)) {
      CloseOwnFd(t.fd);
      return Errno{ENOMEM};
    }
    t.tag = next_mount_tag_++;
    epoll_event ev{};
    ev.events = EPOLLPRI;
    ev.data.u64 = Tag(kKindMounts, t.tag);
    if (epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, t.fd, &ev) != 0) {
      HostFault("epoll_ctl", "watching the mount table of process " + std::to_string(pid) + " for EVFILT_FS",
                pid);
      CloseOwnFd(t.fd);
      return Errno{ENOMEM};
    }
    mount_tables_.push_back(std::move(t));
    table = mount_tables_.end() - 1;
  }
  const emul::WatchId id = next_watch_++;
  table->watches.push_back(id);
  mount_watches_[id] = ns;
  return id;
}

void LinuxHost::DropMounts(emul::WatchId id) {
  auto w = mount_watches_.find(id);
  if (w == mount_watches_.end()) return;
  const uint64_t ns = w->second;
  mount_watches_.erase(w);
  for (auto t = mount_tables_.begin(); t != mount_tables_.end(); ++t) {
    if (t->ns != ns) continue;
    std::erase(t->watches, id);
    if (t->watches.empty()) {
      epoll_ctl(loop_epoll_, EPOLL_CTL_DEL, t->fd, nullptr);
      CloseOwnFd(t->fd);
      mount_tables_.erase(t);
    }
    return;
  }
}

void LinuxHost::CheckMountTables() {
  // By tag: a report can drop a watch, and with it a table (EV_ONESHOT
  // delivered to a waiter).
  std::vector<uint32_t> tags;
  tags.reserve(mount_tables_.size());
  for (const MountTable& t : mount_tables_) tags.push_back(t.tag);
  for (uint32_t tag : tags) {
    for (MountTable& t : mount_tables_) {
      if (t.tag == tag) {
        CheckMountTable(t);
        break;
      }
    }
  }
}

// Compares the table with its last read; each of its watches hears what
// changed. The sink may drop watches (an EV_ONESHOT delivered later, not
// here: the engine only activates), so the list is copied first.
void LinuxHost::CheckMountTable(MountTable& t) {
  std::vector<MountLine> now;
  now.reserve(t.mounts.size() + 4);
  if (!ReadMountTable(t.fd, &now)) return;
  uint32_t changes = 0;
  size_t a = 0, b = 0;
  while (a < t.mounts.size() || b < now.size()) {
    if (b == now.size() || (a < t.mounts.size() && t.mounts[a].id < now[b].id)) {
      changes |= emul::mount_bits::kUnmounted;
      ++a;
    } else if (a == t.mounts.size() || now[b].id < t.mounts[a].id) {
      changes |= emul::mount_bits::kMounted;
      ++b;
    } else {
      if (t.mounts[a].identity != now[b].identity) {
        changes |= emul::mount_bits::kUnmounted | emul::mount_bits::kMounted;  // its ID given again
      } else if (t.mounts[a].whole != now[b].whole) {
        changes |= emul::mount_bits::kRemounted;
      }
      ++a;
      ++b;
    }
  }
  t.mounts.swap(now);
  if (changes == 0 || !kqueue_sink_.mounts) return;
  const std::vector<emul::WatchId> watches = t.watches;
  for (emul::WatchId id : watches) {
    if (mount_watches_.count(id) != 0) kqueue_sink_.mounts(id, changes);
  }
}

}  // namespace evshim::shim
