// The supervisor: one per process tree, the authority for every emulated
// object. It receives the tree's foreign syscalls as seccomp user
// notifications, hands them to the abi handlers and the core, and answers.
// It never blocks on a target's behalf: a waiting call is parked and
// answered when its events, deadline, alert or close arrive.
#pragma once

#include <linux/types.h>
#include <sys/types.h>

#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "abi/common/call.h"
#include "abi/syscall_table.h"
#include "emul/event_port.h"
#include "emul/kqueue.h"
#include "shim/supervisor/call_replay.h"
#include "shim/supervisor/fault.h"
#include "shim/supervisor/linux_host.h"
#include "shim/supervisor/notifier.h"
#include "shim/supervisor/parked_calls.h"
#include "shim/supervisor/remote_memory.h"

namespace evshim::abi::trace {
class CallObserver;  // abi/trace/observer.h
}

namespace evshim::shim {

struct SupervisorOptions {
  emul::PortLimits port_limits;
  bool sync_wakeup = true;     // SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP when the kernel has it
  bool verbose = false;
  pid_t child = -1;            // launcher mode: the program's pid (we reap it)
  size_t max_parked_waits = 65536;  // threads waiting at once in the tree (--max-waits)
  emul::Kqueues::Limits kqueue_limits;  // --max-kqueues, --max-knotes
  // `evshim trace`: hears of every call; null (the default) = tracing off.
  abi::trace::CallObserver* observer = nullptr;
  // Unit tests (tests/unit/supervisor_parts_test.cc): a notifier double
  // instead of the seccomp listener, a fault sink instead of the default
  // (log and kill the process), another way to the target's memory.
  Notifier* notifier = nullptr;
  FaultSink* fault_sink = nullptr;
  MemoryTransfer memory_transfer = MemoryTransfer::Host();
};

class Supervisor {
 public:
  Supervisor(int listener, SupervisorOptions options);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Serves until every process of the tree has exited. Returns the exit
  // status of `options.child` in shell convention (128+N for signal N), or 0.
  int Run();
  // Serves one notification as the loop does (unit tests drive it directly).
  void Serve(const Notification& n) { HandleNotification(n); }

 private:
  class Context;
  class NotifResponder;
  class Answering;
  class Faults;
  friend class Context;
  friend class NotifResponder;
  friend class Answering;
  friend class Faults;

  struct Process {
    int pidfd = -1;
  };
  // The descriptor a target holds for an emulated object is one end of a
  // socketpair: the object is recognised by that end's inode, our end polls
  // HUP when the last holder closes it, and a byte written on our end makes
  // the target's descriptor poll readable (events pending). A port's end has
  // the smallest send buffer; filler written from it (through a momentary
  // duplicate) and left unread in our end makes it poll not writable while
  // the port has no free slot (OnObjectWritable).
  struct ObjectHandle {
    abi::ObjectKind kind = abi::ObjectKind::kPort;
    int sup_end = -1;       // our end of the socketpair; HUP = last close
    uint64_t inode = 0;     // the target end's inode: how a descriptor is recognised
    bool signalled = false; // a byte is waiting in the target end
    bool needs_drain = false;
    bool filled = false;    // filler sits in our end: the target end is not writable
    // Readiness the engine last reported, applied to the byte only before
    // the next answer or at the end of the loop event (ApplyReadiness): an
    // event queued and handed to a waiter at once sends and drains nothing.
    bool want_readable = false;
    bool readiness_pending = false;
  };

  struct AdoptedReadiness {
    bool readable = false;
    bool full = false;
  };
  AdoptedReadiness PrepareAdoptedPort(abi::ObjectKind kind, emul::ObjectId obj, int sup_end, int target_end);

  void HandleNotification(const Notification& n);
  void CatchUpBeforeCall(emul::Pid pid);
  void TraceEnter(const Notification& n, abi::DataModel model, const abi::SyscallEntry* entry);
  // Answers call `id` of thread `tid`; false when not delivered.
  bool Respond(pid_t tid, uint64_t id, int64_t value, int error);
  // Wait `wait` is abandoned: no engine answers it any more.
  void CancelWait(emul::WaitId wait);
  int InstallObject(pid_t tid, uint64_t id, abi::ObjectKind kind, emul::ObjectId obj, bool* delivered,
                    bool cloexec = false);
  // Our end and the target end's inode of a newly installed object.
  void RegisterObject(pid_t tid, abi::ObjectKind kind, emul::ObjectId obj, int sup_end, uint64_t inode);
  // KQUEUE_CPONFORK: process `pid`'s descriptors of `from` become `to`'s
  // (SECCOMP_ADDFD_FLAG_SETFD on notification `id`). 0 or an errno; a
  // supervisor fault goes to `fault` instead.
  int ReplaceObjectDescriptors(uint64_t id, emul::Pid pid, abi::ObjectKind kind, emul::ObjectId from,
                               emul::ObjectId to, std::optional<Fault>* fault);
  void ObjectClosed(abi::ObjectKind kind, emul::ObjectId obj);
  emul::Pid ProcessOf(pid_t tid);
  int PidfdOf(emul::Pid pid);
  void ProcessGone(emul::Pid pid);
  void OnObjectReadiness(emul::ObjectId obj, bool readable);
  void ApplyReadiness();
  // Every watched descriptor ready now goes to its engine (before each call
  // and when the watches' collecting epoll polls readable).
  void CollectWatchReadiness();
  void DrainIfNeeded(emul::ObjectId obj, pid_t tid, int fd);
  void OnObjectWritable(emul::ObjectId obj, bool writable);
  // SIGEV_* timers die at exec (docs/design.md "Close and exec").
  void WatchExecs(emul::Pid pid);
  void NoticeExecs(emul::Pid caller);
  void ExecSeen(emul::Pid pid);
  // /proc/PID/mem of each process with timers (it reads EOF once that image
  // is gone), or one of these when it cannot be opened.
  static constexpr int kImageByConnector = -1, kImageUnwatched = -2;
  std::unordered_map<emul::Pid, int> image_fd_;
  size_t execs_by_connector_ = 0;  // image_fd_ entries the process connector covers
  void ForgetImage(emul::Pid pid);
  void SweepParked();
  void ReapChildren();
  emul::Result<emul::ObjectId> ResolveObject(pid_t tid, int fd, abi::ObjectKind kind);

  int listener_;
  SupervisorOptions options_;
  std::unique_ptr<Notifier> seccomp_;  // the listener's, unless options_.notifier
  Notifier* notifier_;
  std::unique_ptr<Answering> answering_;  // notifier_, applying readiness and tracing
  std::unique_ptr<FaultSink> own_faults_;
  FaultSink* faults_;
  ParkedCalls parked_;
  std::unique_ptr<CallReplay> replay_;
  bool cannot_serve_ = false;  // a descriptor of the loop could not be watched
  int epoll_ = -1;
  int signal_fd_ = -1;
  // `evshim run`: SIGTERM/SIGINT handlers write here (termination.h).
  int terminate_pipe_[2] = {-1, -1};
  int sweep_fd_ = -1;
  std::unique_ptr<LinuxHost> host_;
  std::unique_ptr<emul::EventPorts> ports_;
  // kqueue engine (emul/kqueue.h) with its own deadline slot on the host.
  std::unique_ptr<DeadlineSlotHost> kqueue_host_;
  std::unique_ptr<emul::Kqueues> kqueues_;
  std::unordered_map<emul::Pid, Process> processes_;
  std::unordered_map<pid_t, emul::Pid> tgid_of_;
  std::unordered_map<emul::ObjectId, ObjectHandle> object_handles_;
  std::unordered_map<uint64_t, emul::ObjectId> object_by_inode_;
  std::vector<emul::ObjectId> readiness_pending_;  // see ObjectHandle::want_readable
  // The descriptor each process last named an object by (HoldsObject tries
  // it before scanning /proc/PID/fd; docs/design.md "Close and exec").
  std::map<std::pair<emul::ObjectId, emul::Pid>, int> holder_fd_;
  bool HoldsObject(emul::Pid pid, emul::ObjectId obj);
  static bool FdIsObject(pid_t pid, int fd, uint64_t inode);
  // The descriptors of `pid` that are the object with `inode` (a scan of
  // /proc/PID/fd; only the first with `first_only`). Empty if the process is
  // gone.
  static std::vector<int> ObjectFds(pid_t pid, uint64_t inode, bool first_only);
  void SweepClosedPorts();
  std::set<std::string> reported_;
  bool listener_hup_ = false;
  bool child_done_ = false;
  int child_status_ = 0;
};

// Installs evshim's filter in the calling process (which must be single
// threaded or accept that only this thread and its future children are
// covered) and returns the listener, or -errno.
int InstallFilter();

}  // namespace evshim::shim
