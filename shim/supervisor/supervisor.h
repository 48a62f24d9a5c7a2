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
#include "shim/runtime/host_events.h"
#include "shim/runtime/object_table.h"
#include "shim/supervisor/call_replay.h"
#include "shim/supervisor/exec_watch.h"
#include "shim/runtime/fault.h"
#include "shim/runtime/linux_host.h"
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
  struct AdoptedReadiness {
    bool readable = false;
    bool full = false;
  };
  AdoptedReadiness PrepareAdoptedPort(abi::ObjectKind kind, emul::ObjectId obj, int sup_end, int target_end);

  void HandleNotification(const Notification& n);
  void CatchUpBeforeCall(emul::Pid pid);
  static bool EngineHandOver(const abi::SyscallEntry* entry, const Notification& n);
  static bool LibraryProbe(const Notification& n, bool numbered);
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
  emul::Pid ProcessOf(pid_t tid);
  int PidfdOf(emul::Pid pid);
  void ProcessGone(emul::Pid pid);
  void DrainIfNeeded(emul::ObjectId obj, pid_t tid, int fd);
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
  std::unique_ptr<emul::Kqueues> kqueues_;
  // Routes host events to the engine that owns them; owns the deadline.
  std::unique_ptr<emul::Engines> engines_;
  std::unordered_map<emul::Pid, Process> processes_;
  std::unordered_map<pid_t, emul::Pid> tgid_of_;
  // The emulated objects' descriptors (shim/runtime/object_table.h), and
  // how it reaches the targets' ends (/proc/PID/fd, pidfd_getfd).
  std::unique_ptr<ProgramEnds> program_ends_;
  std::unique_ptr<ObjectTable> objects_;
  std::unique_ptr<HostEventRouter> router_;  // the host's events to their owners
  std::unique_ptr<ExecWatch> execs_;  // SIGEV_* timers die at exec
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
