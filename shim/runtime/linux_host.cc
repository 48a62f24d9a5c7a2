#include "shim/runtime/linux_host.h"

#include <fcntl.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <linux/sockios.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <ctime>

#include "shim/runtime/object_table.h"
#include "shim/runtime/own_fd.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;

namespace {
int PidfdGetfd(int pidfd, int fd) {
  return static_cast<int>(syscall(SYS_pidfd_getfd, pidfd, fd, 0));
}
}  // namespace

LinuxHost::LinuxHost(int loop_epoll, std::function<int(emul::Pid)> pidfd_of)
    : loop_epoll_(loop_epoll), self_pid_(getpid()), pidfd_of_(std::move(pidfd_of)) {
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
  if (!MakeCollectEpoll()) {
    setup_fault_ = Fault{"epoll_ctl", errno, "adding the watches' collecting epoll to the loop"};
  }
}

bool LinuxHost::MakeCollectEpoll() {
  collect_epoll_ = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kWatchTag;
  return epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, collect_epoll_, &ev) == 0;
}

void LinuxHost::HostFault(const char* operation, std::string detail, emul::Pid pid) {
  Fault f{operation, errno, std::move(detail)};
  if (fault_sink_) {
    fault_sink_(f, pid);
  } else {
    std::fprintf(stderr, "evshim: supervisor fault: %s\n", f.Describe().c_str());
  }
}

LinuxHost::~LinuxHost() {
  watches_.ForEach([](emul::WatchId, Watch& w) {
    if (w.epfd >= 0) close(w.epfd);
  });
  // kqueue PROC/VNODE sources (linux_host_kqueue.cc).
  for (auto& [pid, w] : proc_watches_) {
    if (w.pidfd >= 0) close(w.pidfd);
  }
  if (connector_fd_ >= 0) close(connector_fd_);
  if (inotify_fd_ >= 0) close(inotify_fd_);
  for (MountTable& t : mount_tables_) CloseOwnFd(t.fd);  // kqueue FS (linux_host_kqueue.cc)
  if (path_inotify_fd_ >= 0) close(path_inotify_fd_);  // PORT_SOURCE_FILE (linux_host_ports.cc)
  if (path_mounts_fd_ >= 0) close(path_mounts_fd_);
  if (timer_fd_ >= 0) close(timer_fd_);
  if (collect_epoll_ >= 0) close(collect_epoll_);
}

emul::Nanos LinuxHost::Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * emul::kNanosPerSecond + ts.tv_nsec;
}

emul::Nanos LinuxHost::RealtimeOffset() {
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  return (real.tv_sec - mono.tv_sec) * emul::kNanosPerSecond + (real.tv_nsec - mono.tv_nsec);
}

void LinuxHost::SendTimerSignal(emul::Pid pid, int signo, uint64_t value, int timer_id) {
  // As a POSIX timer's expiry: si_code SI_TIMER, the sigevent's value.
  siginfo_t info{};
  info.si_signo = signo;
  info.si_code = SI_TIMER;
  info.si_value.sival_ptr = reinterpret_cast<void*>(static_cast<uintptr_t>(value));
  (void)timer_id;
  syscall(SYS_rt_sigqueueinfo, pid, signo, &info);
}

// One timer for the process's engines: emul::Engines arms it at the
// earliest deadline of all.
void LinuxHost::ArmDeadline(emul::Nanos when) {
  if (when == armed_deadline_.load(std::memory_order_relaxed)) return;
  armed_deadline_.store(when, std::memory_order_relaxed);
  itimerspec its{};
  if (when != kNever) {
    if (when <= 0) when = 1;
    its.it_value.tv_sec = when / emul::kNanosPerSecond;
    its.it_value.tv_nsec = when % emul::kNanosPerSecond;
  }
  timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &its, nullptr);
}

int LinuxHost::DupTargetFd(emul::Pid pid, int fd) {
  // The host's own process (the in-process engine): a local duplicate.
  if (pid == local_pid_) return fcntl(fd, F_DUPFD_CLOEXEC, 0);
  int pidfd = pidfd_of_(pid);
  if (pidfd < 0) {
    errno = EBADF;
    return -1;
  }
  return PidfdGetfd(pidfd, fd);
}

Result<void> LinuxHost::Register(Watch& w, emul::Pid pid, int fd, uint32_t mask, bool edge) {
  int dup = DupTargetFd(pid, fd);
  if (dup < 0) return Errno{errno == EBADF ? EBADF : errno};
  // A new private epoll each time the mask changes: epoll keys registrations
  // by (file, descriptor number), and the number we registered under is gone.
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) {
    int err = errno;
    close(dup);
    return Errno{err};
  }
  epoll_event ev{};
  // Level-triggered: an already ready file reports at once. Edge (EPOLLET):
  // reports once now if ready, then only new activity.
  ev.events = mask | (edge ? static_cast<uint32_t>(EPOLLET) : 0u);
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, dup, &ev) != 0) {
    // Files without poll support (regular files) cannot be registered:
    // illumos reports them always ready for the requested bits.
    int err = errno;
    close(dup);
    close(epfd);
    return Errno{err};
  }
  if (register_cb_) register_cb_(dup);
  file_checks_.clear();  // SameFile of this watch now asks the new registration
  close(dup);  // never keep the target's file open
  if (w.epfd >= 0) close(w.epfd);  // also drops it from the collecting epoll
  w.epfd = epfd;
  w.tfd = dup;
  w.mask = mask;
  w.edge = edge;
  w.registered = true;
  w.in_loop = false;
  return {};
}

void LinuxHost::set_local_process(emul::Pid pid) {
  local_pid_ = pid;
  if (local_) return;
  // The local process's watches are LocalWatches': the collecting epoll
  // (for watches of other processes, each an epoll of its own) is not held
  // ahead of need in a program's own descriptor table (libevent's
  // test-fdleak runs at RLIMIT_NOFILE 20); a watch of another process
  // makes it again (ArmWatch).
  if (collect_epoll_ >= 0 && watches_.empty()) {
    CloseOwnFd(collect_epoll_);
    collect_epoll_ = -1;
  }
  local_ = std::make_unique<LocalWatches>(loop_epoll_, [this](const char* op, std::string detail) {
    HostFault(op, std::move(detail), local_pid_);
  });
  local_->set_memo(file_check_memo_);
  if (register_cb_) local_->set_register_callback(register_cb_);
}

emul::WatchId LinuxHost::UnparkConfirmedKept(int fd) {
  if (fd != kept_confirmed_fd_ || !file_check_memo_) return 0;
  KeptWatch* kept = kept_.Find(fd);
  if (kept == nullptr || !kept->parked) return 0;
  kept->parked = false;
  return kept->id;
}

Result<emul::WatchId> LinuxHost::WatchFd(emul::Pid pid, int fd) {
  // The file is registered by the first ArmWatch, which knows the mask.
  const bool local = pid == local_pid_ && local_;
  // A kqueue change's own FdOpen (Kqueues::Register) confirmed the watch
  // kept for this number: FdOpen would answer from that confirmation, so
  // it is not asked again.
  if (local) {
    if (const emul::WatchId kept = UnparkConfirmedKept(fd); kept != 0) return kept;
  }
  if (!FdOpen(pid, fd)) return Errno{EBADF};
  if (local) {
    // FdOpen just confirmed the watch kept for this number (a fork copy's
    // watch: no FdOpen before).
    if (const emul::WatchId kept = UnparkConfirmedKept(fd); kept != 0) return kept;
    const emul::WatchId id = local_->NewId(kLocalWatch);
    local_->Add(id);
    return id;
  }
  const emul::WatchId id = watches_.NextId(kSlotWatch);
  if (watches_.Insert(id) == nullptr) return Errno{ENOMEM};  // past SlotTable::kMaxSlots watches
  return id;
}

uint32_t LinuxHost::Readiness(emul::WatchId id) {
  const Watch* found = watches_.Find(id);
  if (found == nullptr) return 0;
  const Watch& w = *found;
  if (!w.registered) return w.mask & (EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM);
  epoll_event ev{};
  int n = epoll_wait(w.epfd, &ev, 1, 0);
  return n == 1 ? ev.events : 0;
}

Result<uint32_t> LinuxHost::ArmWatch(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) {
  if (IsLocal(id)) return local_->Arm(id, fd, events);
  return Arm(id, pid, fd, events, false);
}

Result<uint32_t> LinuxHost::ArmWatchMeasured(emul::WatchId id, emul::Pid pid, int fd, uint32_t events,
                                             uint32_t measured) {
  if (IsLocal(id)) return local_->Arm(id, fd, events, &measured);
  return Arm(id, pid, fd, events, false);
}

Result<uint32_t> LinuxHost::ArmWatchReportedAtLook(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) {
  if (IsLocal(id)) return local_->Arm(id, fd, events, nullptr, LocalWatches::kReportedAtLook);
  return Arm(id, pid, fd, events, false);
}

Result<uint32_t> LinuxHost::ArmWatchEdge(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) {
  if (IsLocal(id)) return local_->ArmEdge(id, fd, events);
  const Watch* found = watches_.Find(id);
  // A file without readiness notifications has no edges: never fires.
  if (found != nullptr && found->pollless) return 0u;
  return Arm(id, pid, fd, events, true);
}

void LinuxHost::SettleWatchEdge(emul::WatchId id, emul::Pid pid, int fd, uint32_t events) {
  if (IsLocal(id)) {
    local_->SettleEdge(id, fd, events);
    return;
  }
  Watch* found = watches_.Find(id);
  if (found == nullptr || found->pollless) return;
  Watch& w = *found;
  // Registered edge-triggered now if not yet (EPOLLET then reports the
  // present state once): that report, or an edge pending from activity the
  // coming measurement includes, is consumed here.
  if (!w.registered || w.mask != events || !w.edge) {
    Result<void> r = Register(w, pid, fd, events, true);
    if (!r.ok()) {
      // As in Arm: a file without poll support has no edges.
      if (r.error().value == EPERM) {
        w.pollless = true;
        w.mask = events;
      }
      return;  // otherwise ArmWatchEdge will say why
    }
  }
  epoll_event ev{};
  (void)epoll_wait(w.epfd, &ev, 1, 0);
}

Result<uint32_t> LinuxHost::Arm(emul::WatchId id, emul::Pid pid, int fd, uint32_t events, bool edge) {
  Watch* found = watches_.Find(id);
  if (found == nullptr) return Errno{EBADF};
  Watch& w = *found;
  if (w.pollless) {
    w.mask = events;
  } else if (!w.registered || w.mask != events || w.edge != edge) {
    Result<void> r = Register(w, pid, fd, events, edge);
    if (!r.ok()) {
      // epoll refuses files without poll support (regular files): illumos
      // reports those always ready for the requested bits.
      if (r.error().value != EPERM) return r.error();
      w.pollless = true;
      w.mask = events;
    }
  }
  uint32_t ready = Readiness(id);
  if (ready != 0 || !w.registered) return ready;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = id;
  int op = w.in_loop ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (collect_epoll_ < 0 && !MakeCollectEpoll()) {
    if (collect_epoll_ >= 0) CloseOwnFd(collect_epoll_);
    collect_epoll_ = -1;
    HostFault("epoll_ctl", "making the watches' collecting epoll for process " + std::to_string(pid), pid);
    return 0u;
  }
  if (epoll_ctl(collect_epoll_, op, w.epfd, &ev) != 0) {
    // Ours (ENOMEM, ENOSPC at max_user_watches), not the program's: never its errno.
    HostFault("epoll_ctl", "arming a watch of process " + std::to_string(pid), pid);
    return 0u;
  }
  w.in_loop = true;
  return 0u;
}

void LinuxHost::RearmInLoop(emul::WatchId id) {
  const Watch* w = watches_.Find(id);
  if (w == nullptr || !w->in_loop) return;
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLONESHOT;
  ev.data.u64 = id;
  if (epoll_ctl(collect_epoll_, EPOLL_CTL_MOD, w->epfd, &ev) != 0) {
    HostFault("epoll_ctl", "re-arming a watch (its readiness may go unseen)", 0);
  }
}

void LinuxHost::TakeReadyWatches(std::vector<std::pair<emul::WatchId, uint32_t>>* ready) {
  if (local_) local_->TakeReady(ready);
  if (watches_.empty() || collect_epoll_ < 0) return;  // nothing in the collecting epoll
  epoll_event evs[64];
  std::vector<emul::WatchId> spurious;
  while (true) {
    int n = epoll_wait(collect_epoll_, evs, 64, 0);
    for (int i = 0; i < n; ++i) {
      const emul::WatchId id = evs[i].data.u64;
      const uint32_t r = Readiness(id);
      if (r != 0) {
        ready->emplace_back(id, r);
      } else {
        spurious.push_back(id);
      }
    }
    if (n < 64) break;
  }
  // Re-armed only now, so that one still ready is not reported twice here.
  for (emul::WatchId id : spurious) RearmInLoop(id);
}

void LinuxHost::DisarmWatch(emul::WatchId id) {
  if (IsLocal(id)) {
    local_->Disarm(id);
    return;
  }
  const Watch* w = watches_.Find(id);
  if (w == nullptr || !w->in_loop) return;
  epoll_event ev{};
  ev.events = 0;
  ev.data.u64 = id;
  if (epoll_ctl(collect_epoll_, EPOLL_CTL_MOD, w->epfd, &ev) != 0) {
    HostFault("epoll_ctl", "disarming a watch (it may wake the loop for nothing)", 0);
  }
}

void LinuxHost::DropWatch(emul::WatchId id) {
  if (IsLocal(id)) {
    local_->Drop(id);
    return;
  }
  const Watch* w = watches_.Find(id);
  if (w == nullptr) return;
  if (w->epfd >= 0) close(w->epfd);
  watches_.Erase(id);
  file_checks_.clear();
}

bool LinuxHost::SameFileOfAnother(emul::Pid pid, int fd, emul::WatchId id) {
  const Watch* found = watches_.Find(id);
  if (found == nullptr) return false;
  const Watch& w = *found;
  if (!w.registered) return FdOpen(pid, fd);
  if (file_check_memo_) {
    for (const FileCheck& c : file_checks_) {
      if (c.pid == pid && c.fd == fd && c.watch == id) return c.same;
    }
  }
  kcmp_epoll_slot slot{};
  slot.efd = static_cast<uint32_t>(w.epfd);
  slot.tfd = static_cast<uint32_t>(w.tfd);
  slot.toff = 0;
  long r = syscall(SYS_kcmp, pid, self_pid_, KCMP_EPOLL_TFD, fd, reinterpret_cast<uintptr_t>(&slot));
  if (file_check_memo_) {
    if (file_checks_.size() >= kMaxFileChecks) file_checks_.clear();
    file_checks_.push_back(FileCheck{pid, fd, id, r == 0});
  }
  return r == 0;
}

const struct stat* LinuxHost::LocalStat(int fd) {
  if (fd >= 0 && fd == local_stat_fd_ && file_check_memo_) return &local_stat_;
  struct stat st {};
  if (fstat(fd, &st) != 0) return nullptr;  // not kept: EBADF is asked again
  local_stat_ = st;
  local_stat_fd_ = fd;
  return &local_stat_;
}

bool LinuxHost::FdOpen(emul::Pid pid, int fd) {
  if (pid == local_pid_) {
    if (!kept_.empty()) {
      switch (ConfirmKept(fd)) {
        case Kept::kConfirmed:
          return true;
        case Kept::kClosed:
          return false;
        case Kept::kNone:
          break;
      }
    }
    return LocalStat(fd) != nullptr;
  }
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  struct stat st {};
  return lstat(path, &st) == 0;
}

namespace {

// A socket's kind for ProbeFd, asked once per open file (domain and
// protocol never change): AF_UNIX, TCP and UDP answer SIOCINQ with EINVAL
// exactly when they listen (unix_inq_len, tcp_ioctl; UDP cannot listen),
// which spares asking SO_ACCEPTCONN at every measurement.
emul::FdKind SocketKind(int fd) {
  int domain = 0, protocol = 0;
  socklen_t len = sizeof domain;
  if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) != 0) return emul::FdKind::kSocketOther;
  if (domain == AF_UNIX) return emul::FdKind::kSocket;
  if (domain != AF_INET && domain != AF_INET6) return emul::FdKind::kSocketOther;
  len = sizeof protocol;
  if (getsockopt(fd, SOL_SOCKET, SO_PROTOCOL, &protocol, &len) != 0) return emul::FdKind::kSocketOther;
  return protocol == IPPROTO_TCP || protocol == IPPROTO_UDP ? emul::FdKind::kSocket
                                                            : emul::FdKind::kSocketOther;
}

emul::FdKind KindOf(int fd, const struct stat& st) {
  if (S_ISREG(st.st_mode)) return emul::FdKind::kRegular;
  if (S_ISFIFO(st.st_mode)) return emul::FdKind::kPipe;
  if (S_ISSOCK(st.st_mode)) return SocketKind(fd);
  return emul::FdKind::kOther;
}

// Which way a pipe is open, asked once per open file (its access mode never
// changes): an anonymous pipe's (pipefs) read or write end, whose other
// filter is the BSDs' reverse direction (docs/kqueue.md "READ/WRITE data");
// a FIFO opened one way, whose other filter each BSD answers its own way
// (docs/kqueue.md "READ/WRITE data", a FIFO opened one way); a FIFO open
// both ways, or a pipe opened so through /proc, is measured as it is.
emul::FdKind PipeWay(int fd) {
  constexpr long kPipefsMagic = 0x50495045;  // linux/magic.h PIPEFS_MAGIC
  struct statfs sfs {};
  const int flags = fcntl(fd, F_GETFL);
  if (flags < 0 || fstatfs(fd, &sfs) != 0) return emul::FdKind::kFifo;
  const bool anonymous = static_cast<long>(sfs.f_type) == kPipefsMagic;
  switch (flags & O_ACCMODE) {
    case O_RDONLY:
      return anonymous ? emul::FdKind::kPipeReadEnd : emul::FdKind::kFifoReadOnly;
    case O_WRONLY:
      return anonymous ? emul::FdKind::kPipeWriteEnd : emul::FdKind::kFifoWriteOnly;
    default:
      return emul::FdKind::kFifo;
  }
}

// A listening socket's pending connections: TCP reports the accept backlog
// in tcpi_unacked for a listener; otherwise 1 while it polls readable.
int64_t ListenBacklog(int fd, uint32_t revents) {
  tcp_info ti{};
  socklen_t len = sizeof ti;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0) return ti.tcpi_unacked;
  return (revents & POLLIN) ? 1 : 0;
}

}  // namespace

// What kevent's READ/WRITE filters need, in as few system calls as the
// file allows (docs/kqueue.md "What a kevent costs"): a poll for the
// readiness bits, then only the count the filter reads. The file's kind is
// learned once (fstat, and for a socket its domain and protocol) and handed
// back by the engine, which confirms the open file before each probe.
Result<emul::FdProbe> LinuxHost::ProbeFd(emul::Pid pid, int fd, emul::FdProbeNeeds needs,
                                         emul::FdKind known) {
  using emul::FdKind;
  using emul::FdProbeNeeds;
  // The host's own process: its descriptor is measured as it is.
  const bool local = pid == local_pid_;
  int dup = local ? fd : DupTargetFd(pid, fd);
  if (dup < 0) return Errno{EBADF};
  emul::FdProbe p;
  p.kind = known;
  struct stat st {};
  // A regular file's size is needed each time; other kinds are fstat'ed
  // once. Locally, fstat's (or poll's POLLNVAL) EBADF is the check that the
  // descriptor is open.
  if (local && p.kind == FdKind::kUnknown) {
    // The type, from the call's fstat (LocalStat); a regular file's size
    // is measured below.
    const struct stat* kept = LocalStat(fd);
    if (kept == nullptr) return Errno{EBADF};
    p.kind = KindOf(dup, *kept);
  }
  if (p.kind == FdKind::kUnknown || p.kind == FdKind::kRegular) {
    if (fstat(dup, &st) != 0) {
      if (!local) close(dup);
      return Errno{EBADF};
    }
    if (p.kind == FdKind::kUnknown) p.kind = KindOf(dup, st);
  }
  pollfd pfd{dup, POLLIN | POLLOUT | POLLPRI | POLLRDHUP, 0};
  if (poll(&pfd, 1, 0) == 1) {
    if (pfd.revents & POLLNVAL) {
      if (!local) close(dup);
      return Errno{EBADF};
    }
    p.revents = static_cast<uint32_t>(pfd.revents);
  }
  const bool readable = needs == FdProbeNeeds::kReadable;
  const bool writable = needs == FdProbeNeeds::kWritable;
  int n = 0;
  switch (p.kind) {
    case FdKind::kRegular: {
      // filt_vfsread/filt_ufsread: the size minus the (shared) offset,
      // negative once the file was truncated below the offset (and then
      // ready: not 0), as the three kernels report (docs/kqueue.md "A
      // regular file that grows").
      p.regular = true;
      if (readable) {
        off_t off = lseek(dup, 0, SEEK_CUR);
        p.readable = off >= 0 ? st.st_size - off : 0;
      }
      p.writable = 0;
      break;
    }
    case FdKind::kPipe:
    case FdKind::kPipeReadEnd:
    case FdKind::kPipeWriteEnd:
    case FdKind::kFifo:
    case FdKind::kFifoReadOnly:
    case FdKind::kFifoWriteOnly: {
      p.pipe = true;
      // Which way it is open is asked only when the answer could differ
      // (PipeWay): a write end never polls POLLIN, a read end never
      // POLLOUT nor POLLERR. So READ on bytes without POLLIN, or with
      // POLLOUT or POLLERR (open for writing: OpenBSD refuses READ on a
      // FIFO opened write-only, EINVAL, so its add must know; a write end
      // whose readers are gone has EV_EOF, but not a FIFO's on FreeBSD or
      // DragonFly), or WRITE without POLLOUT or with POLLERR (an anonymous
      // pipe's refuses a new WRITE knote, EPIPE, a FIFO's does not), asks
      // once; READ on a read end never does.
      if (p.kind == FdKind::kPipe && ((readable && (p.revents & (POLLOUT | POLLERR))) ||
                                      (writable && (!(p.revents & POLLOUT) || (p.revents & POLLERR))))) {
        p.kind = PipeWay(dup);
      }
      if (((readable && p.kind != FdKind::kPipeWriteEnd) || (writable && p.kind != FdKind::kPipeReadEnd)) &&
          ioctl(dup, FIONREAD, &n) == 0) {
        p.readable = n;
        if (readable && p.kind == FdKind::kPipe && n > 0 && !(p.revents & POLLIN)) {
          p.kind = PipeWay(dup);
          if (p.kind == FdKind::kPipeWriteEnd) p.readable = 0;  // the other direction's bytes
        }
      }
      if (writable) {
        // A read end's WRITE: the reverse direction, never written (Linux
        // pipes run one way), is the pipe's whole size.
        int size = fcntl(dup, F_GETPIPE_SZ);
        if (size > 0) p.writable = std::max<int64_t>(0, size - (p.kind == FdKind::kPipeReadEnd ? 0 : p.readable));
      }
      break;
    }
    case FdKind::kSocket:
    case FdKind::kSocketOther: {
      bool listening = false;
      if (p.kind == FdKind::kSocket) {
        // SIOCINQ is asked for WRITE too: its EINVAL is the listening test.
        if (ioctl(dup, SIOCINQ, &n) == 0) {
          if (readable) p.readable = n;
        } else {
          listening = errno == EINVAL;
        }
      } else {
        int acceptconn = 0;
        socklen_t len = sizeof acceptconn;
        listening = getsockopt(dup, SOL_SOCKET, SO_ACCEPTCONN, &acceptconn, &len) == 0 && acceptconn;
        if (!listening && readable && ioctl(dup, SIOCINQ, &n) == 0) p.readable = n;
      }
      if (listening) {
        p.listening = true;
        p.readable = readable ? ListenBacklog(dup, p.revents) : 0;
        break;
      }
      // kqueue EV_EOF fflags: the socket's error, without reading SO_ERROR
      // (that would consume the program's error). A TCP socket the peer
      // reset is CLOSE with POLLERR pending: ECONNRESET.
      if (p.revents & POLLERR) {
        tcp_info ti{};
        socklen_t len = sizeof ti;
        if (getsockopt(dup, IPPROTO_TCP, TCP_INFO, &ti, &len) == 0 && ti.tcpi_state == TCP_CLOSE) {
          p.eof_error = ECONNRESET;
        }
      }
      if (writable) {
        int sndbuf = 0, outq = 0;
        socklen_t len = sizeof sndbuf;
        if (getsockopt(dup, SOL_SOCKET, SO_SNDBUF, &sndbuf, &len) == 0 &&
            ioctl(dup, SIOCOUTQ, &outq) == 0) {
          p.writable = std::max(0, sndbuf - outq);
        }
      }
      break;
    }
    case FdKind::kOther:
    case FdKind::kUnknown:  // not after KindOf
      if (readable && ioctl(dup, FIONREAD, &n) == 0) p.readable = n;
      break;
  }
  if (!local) close(dup);  // never keep the target's file open
  return p;
}

void LinuxHost::ObjectReadinessChanged(emul::ObjectId obj, bool readable) {
  if (readiness_table_ != nullptr) readiness_table_->OnReadiness(obj, readable);
}

}  // namespace evshim::shim
