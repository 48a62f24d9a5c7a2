// The move of a port shared across fork from the in-process engine to the
// supervisor (issue 15 item 3; docs/design.md "Moving a port at fork").
//
// illumos shares an event port between a process and the children it forks
// (docs/rules-ports.md rule 34, port.c:241-248). The engine lives in one
// process; the supervisor serves every process of the tree. So just before
// fork (the pthread_atfork prepare handler, engine lock held) each port the
// engine serves is exported (emul::EventPorts::ExportPort), handed to the
// supervisor with the evshim-private portfs call PORT_EVSHIM_ADOPT (a raw
// system call: the seccomp filter takes it there), and the supervisor's new
// descriptor replaces the engine's at every number the program has for the
// port, with the number's own FD_CLOEXEC. From then on a call naming that
// number is not the engine's (an unknown socket with a supervisor present:
// the library issues it to the supervisor), in the parent and the child.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "abi/illumos/constants.h"
#include "abi/illumos/port_move.h"
#include "shim/inproc/engine.h"
#include "shim/inproc/native_abi.h"
#include "shim/inproc/trap_install.h"
#include "shim/runtime/own_fd.h"
#include "shim/inproc/trap.h"

namespace evshim::shim::inproc {

namespace {

// portfs's number in this process (abi/syscall_table.cc: 182 on x86_64,
// 1000 on i386).
long PortfsNumber() {
  for (const abi::SyscallEntry& e : abi::AllSyscalls()) {
    if (e.call == abi::Call::kPortfs) return ProcessNumber(e);
  }
  return -1;
}

// The program's descriptors whose open file is the socket with `inode`.
std::vector<int> DescriptorsOf(uint64_t inode) {
  std::vector<int> fds;
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return fds;
  const int skip = dirfd(d);
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const int fd = std::atoi(e->d_name);
    struct stat st {};
    if (fd != skip && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode) fds.push_back(fd);
  }
  closedir(d);
  return fds;
}

// True if one of the program's numbers for the socket `inode` stays open
// across exec (no FD_CLOEXEC).
bool KeptAcrossExec(uint64_t inode) {
  for (int fd : DescriptorsOf(inode)) {
    const int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && !(flags & FD_CLOEXEC)) return true;
  }
  return false;
}

}  // namespace

void Engine::MovePortsToSupervisor(bool kept_across_exec_only, bool parent_goes_on) {
  if (!options_.supervisor_present) return;  // no one to hand it to: the child gets ENOTSUP
  std::vector<emul::ObjectId> ports;
  objects_->ForEach([&](emul::ObjectId obj, abi::ObjectKind kind, uint64_t) {
    if (kind != abi::ObjectKind::kPort) return;
    if (kept_across_exec_only) {
      const std::optional<uint64_t> inode = objects_->InodeOf(obj);
      if (!inode || !KeptAcrossExec(*inode)) return;  // dies with this image: rule 35's close
    }
    ports.push_back(obj);
  });
  if (ports.empty()) return;
  host_->ForgetFileChecks();
  // What is ready now is queued first (as before any call), so the state
  // handed over is the state a call would see.
  PrepareCall();
  bool moved = false;
  for (emul::ObjectId obj : ports) moved = MovePort(obj, kept_across_exec_only && !parent_goes_on) || moved;
  // After a move every timer call is the supervisor's (TimerCallMoved): a
  // process that goes on takes its timers there too, with their ports.
  if (moved && parent_goes_on) MoveTimersToSupervisor();
  objects_->ApplyReadiness();
  host_->ForgetFileChecks();
  host_->EndCall();  // this look's reports are no later call's readiness
}

bool Engine::MovePort(emul::ObjectId obj, bool before_exec) {
  const std::optional<uint64_t> found = objects_->InodeOf(obj);
  if (!found) return false;
  const uint64_t inode = *found;
  auto fail = [&](const char* why, int err) {
    if (!warned_move_) {
      warned_move_ = true;
      std::fprintf(stderr,
                   "evshim: an event port could not move to the supervisor (%s: %s); it stays in this "
                   "process: another process (a forked child, a new image) cannot use it (ENOTSUP; docs/abi.md §10)\n",
                   why, std::strerror(err));
    }
    return false;
  };
  // The process's timer ids are one table: the first port to move takes
  // the timers whose port is gone along (after it, every timer call is the
  // supervisor's: TimerCallMoved).
  emul::Result<emul::PortState> state =
      ports_->ExportPort(obj, static_cast<emul::Pid>(pid_), /*unbound_timers=*/!timers_moved_ && !before_exec);
  if (!state.ok()) return fail("its state", state.error().value);
  std::vector<std::byte> bytes = abi::illumos::EncodePortState(*state);
  const long op = abi::illumos::PORT_EVSHIM_ADOPT | abi::illumos::PORT_SYS_NOPORT;
  // No signal may interrupt the hand-over half way (the supervisor would
  // drop the port it made, and its timers would hold their ids).
  sigset_t all, old_mask;
  FillEngineMask(&all);  // SIGSEGV, SIGBUS stay open (trap_install.h)
  pthread_sigmask(SIG_BLOCK, &all, &old_mask);
  // Through the trap's gate (shim/inproc/trap.h): with the trap on, a plain
  // syscall here would raise SIGSYS only to be forwarded.
  const long fd = evshim_supervisor_syscall(PortfsNumber(), op, reinterpret_cast<long>(bytes.data()), static_cast<long>(bytes.size()),
                          0L, 0L, 0L);
  const int err = errno;
  pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (fd < 0) return fail("PORT_EVSHIM_ADOPT", err);
  // The supervisor's port takes the engine's place at each number, close-on-exec as that number was.
  for (int old_fd : DescriptorsOf(inode)) {
    const int flags = fcntl(old_fd, F_GETFD);
    const int dup_flags = flags >= 0 && (flags & FD_CLOEXEC) ? O_CLOEXEC : 0;
    // Raw calls: the library's dup3/close would report to a locked engine
    // (shim/runtime/own_fd.h).
    if (Dup3OwnFd(static_cast<int>(fd), old_fd, dup_flags) < 0) {
      std::fprintf(stderr, "evshim: moving event port descriptor %d to the supervisor: %s\n", old_fd,
                   std::strerror(errno));
    }
  }
  CloseOwnFd(static_cast<int>(fd));
  // Forgotten here: the waits on it go back to their library (the calls
  // are issued again to the supervisor), its timers are the supervisor's.
  timers_moved_ = true;
  DisplaceWaits(ports_->ForgetExported(obj, static_cast<emul::Pid>(pid_), *state));
  (void)objects_->Remove(obj);  // our end goes; its HUP would close the port here
  // The supervisor's port may watch this engine's objects' descriptors
  // (docs/design.md "The readiness byte on demand").
  objects_->MarkAllPolled();
  return true;
}

void Engine::MoveTimersToSupervisor() {
  if (!options_.supervisor_present) return;
  bool unbound = false;
  std::vector<emul::ObjectId> carriers = ports_->PortsWithTimersOf(static_cast<emul::Pid>(pid_), &unbound);
  if (carriers.empty() && unbound) {
    // Timers whose port is gone travel with a port: any of this engine's.
    objects_->ForEach([&](emul::ObjectId obj, abi::ObjectKind kind, uint64_t) {
      if (kind == abi::ObjectKind::kPort && carriers.empty()) carriers.push_back(obj);
    });
  }
  for (emul::ObjectId obj : carriers) (void)MovePort(obj);
  // From here every timer call is the supervisor's (TimerCallMoved); timers
  // that could not move (none, unless a move failed) keep ids the
  // supervisor may hand out again (docs/abi.md §10).
  timers_moved_ = true;
}

bool Engine::TimerCallMoved(abi::Call call) {
  // timer_create is forwarded by its Context (ForwardTimerCreate), which
  // first moves an in-process port the notification names.
  return call == abi::Call::kTimerDelete || call == abi::Call::kTimerSettime ||
         call == abi::Call::kTimerGettime || call == abi::Call::kTimerGetoverrun;
}

}  // namespace evshim::shim::inproc
