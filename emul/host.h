// Host effects the core needs, behind an interface so the core is testable
// without seccomp, processes or real descriptors (tests/support/fake_host.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "emul/result.h"
#include "emul/types.h"

namespace evshim::emul {

// What kind of file a descriptor holds, as far as measuring it goes
// (Host::ProbeFd). It never changes for an open file, so a caller that
// confirms the file before each measurement (a knote, Host::SameFile) keeps
// it and hands it back: the host then skips the queries that found it.
enum class FdKind : uint8_t {
  kUnknown,
  kRegular,
  kPipe,     // pipe or FIFO, which way it is open not asked yet (docs/kqueue.md "READ/WRITE data")
  kPipeReadEnd,   // an anonymous pipe's read end: its WRITE is the reverse direction
  kPipeWriteEnd,  // an anonymous pipe's write end: its READ is the reverse direction
  kFifo,     // a FIFO, or a pipe open both ways: measured as the host has it
  kFifoReadOnly,   // a FIFO opened read-only: WRITE is a filter its open mode lacks
  kFifoWriteOnly,  // a FIFO opened write-only: READ is a filter its open mode lacks
  kSocket,   // a socket whose SIOCINQ fails (EINVAL) exactly when it listens: AF_UNIX, TCP, UDP
  kSocketOther,  // another socket: asked whether it listens at each measurement
  kOther,    // anything else (tty, eventfd, ...): FIONREAD
};

constexpr bool IsPipeKind(FdKind k) {
  return k == FdKind::kPipe || k == FdKind::kPipeReadEnd || k == FdKind::kPipeWriteEnd || k == FdKind::kFifo ||
         k == FdKind::kFifoReadOnly || k == FdKind::kFifoWriteOnly;
}

// Which of FdProbe's counts the caller reads; `revents` is always measured.
enum class FdProbeNeeds : uint8_t { kReadable, kWritable, kReadiness };

// What a descriptor holds right now (kqueue READ/WRITE `data`).
struct FdProbe {
  uint32_t revents = 0;   // canonical poll bits (IN OUT PRI ERR HUP RDHUP)
  int64_t readable = 0;   // bytes to read; pending connections (listening socket); bytes to EOF (file)
  int64_t writable = 0;   // free space for writing
  bool regular = false;   // a regular file: no readiness notifications exist
  bool listening = false; // a listening socket
  bool pipe = false;      // a pipe or FIFO (POLLERR: the write end, every reader gone)
  int eof_error = 0;      // the socket's pending error at EOF, if known (kqueue fflags)
  FdKind kind = FdKind::kUnknown;  // what the host found the file to be (kept by the caller)
};

// A file's timestamp (illumos timestruc_t; Linux struct timespec).
struct FileStamp {
  int64_t sec = 0;
  int64_t nsec = 0;
  bool zero() const { return sec == 0 && nsec == 0; }
  friend bool operator==(const FileStamp&, const FileStamp&) = default;
};

// Changes of a watched file (illumos PORT_SOURCE_FILE). Canonical values are
// illumos's (sys/port.h; docs/rules-ports.md §1.7): Linux has no equivalent.
namespace file_bits {
constexpr uint32_t kAccess = 0x00000001, kModified = 0x00000002, kAttrib = 0x00000004,
                   kDelete = 0x00000010, kRenameTo = 0x00000020, kRenameFrom = 0x00000040,
                   kTrunc = 0x00100000, kNoFollow = 0x10000000, kUnmounted = 0x20000000,
                   kMountedOver = 0x40000000;
// Exceptions: always delivered, and they end the watch.
constexpr uint32_t kException = kUnmounted | kDelete | kRenameTo | kRenameFrom | kMountedOver;
// What port_associate accepts (FILE_EVENTS_MASK).
constexpr uint32_t kEventsMask = kAccess | kModified | kAttrib | kNoFollow | kTrunc;
}  // namespace file_bits

// Changes of a mount table (kqueue EVFILT_FS, Host::WatchMounts): what the
// host saw between two reads of it. The engine turns them into each
// kernel's VQ_* hint (docs/kqueue.md "EVFILT_FS").
namespace mount_bits {
constexpr uint32_t kMounted = 0x1, kUnmounted = 0x2, kRemounted = 0x4;
}  // namespace mount_bits

// A file watched by name (Host::WatchPath).
struct PathWatch {
  WatchId id = 0;
  FileStamp atime, mtime, ctime;  // the file's, when the watch started
  bool fifo = false;              // timestamps are not compared for FIFOs
  // Identity: the file, and the directory it was found in (0 when none).
  uint64_t dev = 0, ino = 0;
  uint64_t dir_dev = 0, dir_ino = 0;
};

class Host {
 public:
  virtual ~Host() = default;

  virtual Nanos Now() = 0;
  // The core wants OnDeadline() called at (or soon after) `when`; kNever disarms.
  static constexpr Nanos kNever = INT64_MAX;
  virtual void ArmDeadline(Nanos when) = 0;

  // --- Watching a target's open file without keeping it open. ---
  // Starts watching the file that process `pid` has at descriptor `fd`.
  // EBADF if the descriptor is not open. The watch is disarmed until Arm().
  virtual Result<WatchId> WatchFd(Pid pid, int fd) = 0;
  // Arms the watch for `events` (canonical poll bits; POLLERR|POLLHUP always
  // implied). Returns the file's readiness right now, masked, so an already
  // ready descriptor fires at once. When it becomes ready later the host calls
  // Core::OnWatchReady once and disarms (one-shot). `pid`/`fd` name a
  // descriptor the caller holds for the same file (needed to change the mask).
  virtual Result<uint32_t> ArmWatch(WatchId id, Pid pid, int fd, uint32_t events) = 0;
  // As ArmWatch, when the caller has just measured the file (`measured`:
  // ProbeFd's revents) after confirming it with SameFile: a host whose
  // registration of the file is armed for `events` already may answer from
  // the measurement instead of looking again (activity after it is reported
  // by that registration). Default: ArmWatch.
  virtual Result<uint32_t> ArmWatchMeasured(WatchId id, Pid pid, int fd, uint32_t events,
                                            uint32_t measured) {
    (void)measured;
    return ArmWatch(id, pid, fd, events);
  }
  // As ArmWatch, for a caller every observer of which looks at the host's
  // events first (an event port: each call and the poll family's settle
  // route ready watches before they read the queue): a host whose
  // level-triggered registration of the file already covers `events` may
  // answer 0 for a ready file and report it (Core::OnWatchReady) at that
  // look instead, with no look of its own now. Default: ArmWatch.
  virtual Result<uint32_t> ArmWatchReportedAtLook(WatchId id, Pid pid, int fd, uint32_t events) {
    return ArmWatch(id, pid, fd, events);
  }
  // True only when the host knows the file of a level watch armed with
  // ArmWatchReportedAtLook is not ready: the watch is still armed, and an
  // observer's look that would have reported it (every caller looks first)
  // was completed after it was armed. False when it cannot tell. Default:
  // false (the caller measures).
  virtual bool QuietSinceArm(WatchId id) {
    (void)id;
    return false;
  }
  // As ArmWatchReportedAtLook, but only where that costs no look of its
  // own (the level registration is on and covers `events`, or a watch not
  // registered yet can be registered, once); otherwise the watch is left as
  // it is and `events` returned (the caller measures). Default: never.
  virtual Result<uint32_t> ArmWatchIfFree(WatchId id, Pid pid, int fd, uint32_t events) {
    (void)id;
    (void)pid;
    (void)fd;
    return events;
  }
  virtual void DisarmWatch(WatchId id) = 0;
  virtual void DropWatch(WatchId id) = 0;
  // As DropWatch, for the watch of a level READ knote on process `pid`'s
  // descriptor `fd` (a `kind` file) that goes while that descriptor still
  // names its file (a delivered EV_ONESHOT, EV_DELETE): a host may keep it
  // for the next WatchFd of the same number, which then confirms the file
  // with the watch's registration instead of a new look, and whose first
  // look may report the file. Default: DropWatch.
  virtual void ReleaseWatch(WatchId id, Pid pid, int fd, FdKind kind) {
    (void)pid;
    (void)fd;
    (void)kind;
    DropWatch(id);
  }
  // Process `pid` is closing descriptor `fd` (the kqueue library's report,
  // before the close): what ReleaseWatch kept for it goes. Default: nothing.
  virtual void ForgetFd(Pid pid, int fd) {
    (void)pid;
    (void)fd;
  }
  // True if process `pid` has, at descriptor `fd`, the very open file the
  // watch was made on (illumos getf(fd) == association's file_t).
  virtual bool SameFile(Pid pid, int fd, WatchId id) = 0;
  // True if process `pid` has descriptor `fd` open at all.
  virtual bool FdOpen(Pid pid, int fd) = 0;
  // The object's descriptor should poll readable (events queued) or not.
  virtual void ObjectReadinessChanged(ObjectId obj, bool readable) = 0;
  // The object's descriptor should poll writable or not (an event port:
  // POLLOUT while event slots remain). Default: always writable.
  virtual void ObjectWritableChanged(ObjectId obj, bool writable) {
    (void)obj;
    (void)writable;
  }

  // --- POSIX timers (event ports' SIGEV_* timers). ---
  // CLOCK_REALTIME minus CLOCK_MONOTONIC, for absolute realtime deadlines.
  virtual Nanos RealtimeOffset() { return 0; }
  // Queues signal `signo` (host numbering) to process `pid` as a timer
  // expiry (si_code SI_TIMER, si_value = value).
  virtual void SendTimerSignal(Pid pid, int signo, uint64_t value, int timer_id) {
    (void)pid;
    (void)signo;
    (void)value;
    (void)timer_id;
  }

  // --- Added for kqueue (emul/kqueue.h); defaults keep other hosts compiling. ---
  // Like ArmWatch, but the watch fires only for activity after the previous
  // report (edge-triggered, for EV_CLEAR). The returned readiness is the
  // activity not yet reported. Default: level-triggered ArmWatch.
  virtual Result<uint32_t> ArmWatchEdge(WatchId id, Pid pid, int fd, uint32_t events) {
    return ArmWatch(id, pid, fd, events);
  }
  // The engine is about to measure an EV_CLEAR knote's descriptor: the
  // readiness it is going to see is no edge for a later ArmWatchEdge (with
  // the same `events`); only activity after this call is. Default: nothing.
  virtual void SettleWatchEdge(WatchId id, Pid pid, int fd, uint32_t events) {
    (void)id;
    (void)pid;
    (void)fd;
    (void)events;
  }
  // Measures process `pid`'s descriptor `fd` without keeping it open.
  // EBADF if it is not open. Only `needs` is filled in besides revents
  // (each count costs system calls); `known`: the kind an earlier probe of
  // this very open file returned (kUnknown: none, or the file may differ).
  virtual Result<FdProbe> ProbeFd(Pid pid, int fd, FdProbeNeeds needs, FdKind known) {
    (void)pid;
    (void)fd;
    (void)needs;
    (void)known;
    return Errno{ENOSYS};
  }

  // As ProbeFd with needs kReadable, for a descriptor whose watch `watch`
  // the caller has just confirmed (SameFile), of kind `known` (kUnknown: a
  // new knote; a host that kept the watch knows the kind itself): a
  // host that kept its look's report of the watch in this call (ready,
  // without hang-up or error) may take that for the readiness bits and
  // measure only the count, where the count agrees (a pipe's or a socket's
  // bytes: more than 0 is readable, filt_piperead/filt_soread). Default:
  // ProbeFd.
  virtual Result<FdProbe> ProbeReadableAfterLook(Pid pid, int fd, FdKind known, WatchId watch) {
    (void)watch;
    return ProbeFd(pid, fd, FdProbeNeeds::kReadable, known);
  }

  // --- Processes, files and signals as event sources (kqueue PROC, VNODE,
  // SIGNAL; emul/kqueue.h). Defaults: not supported. ---
  // Starts reporting process `pid`'s exit (and, with `fork_exec`, its forks
  // and execs) to Kqueues::OnProcessExit/OnProcessFork/OnProcessExec.
  // Reference counted: one UnwatchProcess per successful WatchProcess.
  // ESRCH if there is no such process (a reaped one included); EOPNOTSUPP
  // if forks and execs cannot be observed on this host. `was_forked`: the
  // process was just reported by OnProcessFork (it may already be gone; its
  // exit is then still reported). Returns whether it is a zombie (exited,
  // not yet reaped) and then its wait status.
  struct ProcessState {
    bool zombie = false;
    int64_t status = 0;
  };
  virtual Result<ProcessState> WatchProcess(Pid pid, bool fork_exec, bool was_forked) {
    (void)pid;
    (void)fork_exec;
    (void)was_forked;
    return Errno{EOPNOTSUPP};
  }
  virtual void UnwatchProcess(Pid pid) { (void)pid; }
  // Starts watching the file (or directory) process `pid` has at `fd` for
  // changes, reported as canonical NOTE_* bits to Kqueues::OnVnodeEvent.
  // The host does not keep the file open. EBADF: not open; EINVAL: not a
  // file or directory (a pipe, a socket).
  // `use_events`: also report opens, closes and reads (FreeBSD's NOTE_OPEN,
  // NOTE_CLOSE, NOTE_CLOSE_WRITE, NOTE_READ). They wake the host at every use
  // of the file, so only a knote that asks for them gets them.
  virtual Result<WatchId> WatchVnode(Pid pid, int fd, bool use_events) {
    (void)pid;
    (void)fd;
    (void)use_events;
    return Errno{EOPNOTSUPP};
  }
  // A knote asked for use events after its watch was made (a new EV_ADD).
  virtual void WatchVnodeUse(WatchId id) { (void)id; }
  // True if `pid`'s descriptor `fd` still names the watched file.
  virtual bool SameVnode(Pid pid, int fd, WatchId id) {
    (void)pid;
    (void)fd;
    (void)id;
    return false;
  }
  virtual void DropVnode(WatchId id) { (void)id; }

  // --- Mount tables (kqueue EVFILT_FS). Defaults: not supported. ---
  // Starts reporting changes of the mount table process `pid` sees (its
  // mount namespace) to Kqueues::OnMountEvent as mount_bits. Watches of
  // one table may share the host's look at it.
  virtual Result<WatchId> WatchMounts(Pid pid) {
    (void)pid;
    return Errno{EOPNOTSUPP};
  }
  virtual void DropMounts(WatchId id) { (void)id; }

  // --- Files watched by name (illumos PORT_SOURCE_FILE, emul/event_port.h).
  // Defaults: not supported (EOPNOTSUPP, illumos's ENOTSUP). ---
  // Resolves `path` as process `pid` would (its root and working directory),
  // following a final symbolic link unless `nofollow`, and starts reporting
  // changes of that file to EventPorts::OnFileEvent as file_bits. The host
  // does not keep the file open. Errors are the lookup's (ENOENT, EACCES,
  // ELOOP, ENOTDIR, ENAMETOOLONG...).
  virtual Result<PathWatch> WatchPath(Pid pid, const std::string& path, bool nofollow) {
    (void)pid;
    (void)path;
    (void)nofollow;
    return Errno{EOPNOTSUPP};
  }
  virtual void DropPathWatch(WatchId id) { (void)id; }

  // --- Who holds an emulated object (lazy close detection, docs/design.md
  // "Close and exec"). Default: always (hosts that cannot tell). ---
  // False once process `pid` has no descriptor of object `obj` any more
  // (closed, closed at exec, or the process is gone).
  virtual bool HoldsObject(Pid pid, ObjectId obj) {
    (void)pid;
    (void)obj;
    return true;
  }
  // The emulated kqueue that process `pid`'s descriptor `fd` is, if it is
  // one: a kqueue watching a kqueue reports its pending count (filt_kqueue).
  // Default: none (hosts that cannot tell; the descriptor is then measured
  // like any other).
  virtual std::optional<ObjectId> KqueueAt(Pid pid, int fd) {
    (void)pid;
    (void)fd;
    return std::nullopt;
  }
};

}  // namespace evshim::emul
