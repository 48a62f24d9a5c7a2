// The in-process engine (issue 15, docs/design.md "The in-process fast
// path"): the foreign libraries' calls served inside the calling process by
// the same abi handlers and emul engines the supervisor uses, over a second
// transport (a CallContext on the process's own memory and descriptors) and
// a LinuxHost living in the process.
//
// Built into libevshim-engine.so; the only exported symbols are the C entry
// points (engine_entry.h: the call and the poll family's settle), everything
// else is hidden.
#pragma once

#include <pthread.h>
#include <sys/types.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "abi/common/call.h"
#include "abi/illumos/constants.h"
#include "abi/syscall_table.h"
#include "emul/event_port.h"
#include "emul/kqueue.h"
#include "shim/inproc/engine_mutex.h"
#include "shim/runtime/host_events.h"
#include "shim/runtime/object_table.h"
#include "shim/runtime/linux_host.h"

namespace evshim::shim::inproc {

// Limits the engine applies (the launcher's --max-* options reach the
// process as EVSHIM_MAX_* variables; see FromEnvironment).
struct EngineOptions {
  emul::PortLimits port_limits;
  emul::Kqueues::Limits kqueue_limits;
  // Whether a raw syscall can reach a supervisor (a seccomp filter is on the
  // process): calls naming a descriptor the engine does not own go there.
  bool supervisor_present = false;
  // EVSHIM_READINESS_BYTE=always: every readable object keeps its byte, as
  // for a program that polls its descriptors with raw system calls or
  // io_uring (docs/design.md "The readiness byte on demand", docs/abi.md §10).
  bool byte_always = false;
  static EngineOptions FromEnvironment();
};

// Descriptors (by inode) of objects a previous engine of this process owned:
// after fork the child's engine is a fresh one, and these are the parent's.
struct Inherited {
  std::unordered_map<uint64_t, abi::ObjectKind> objects;
};

// One portfs call decoded once (Engine::Call), for the questions asked of
// it before its handler runs: which identity answers it checks again
// (NumberToCheck), whether it may wait (LikelyToWait), whether it needs a
// look (Engine::SendOrRetrievalWithoutLook, AssociatePlacedWithoutLook).
// Every other call decodes with `portfs` false.
struct PortCall {
  bool portfs = false;
  bool noport = false;  // PORT_SYS_NOPORT: the call names no port
  uint32_t code = 0;    // the opcode's PORT_CODE_MASK bits
  int port_fd = -1;     // a call on a port: the number it names (args[1])
  // port_associate/port_dissociate(PORT_SOURCE_FD) of a valid number:
  // that number; otherwise -1.
  int fd_object = -1;
  // port_get: 1; port_getn: its max (0: counting the events); else 0.
  uint32_t max = 0;
  static PortCall Decode(abi::Call call, const uint64_t args[6]);
  bool OnPort(uint32_t c) const { return portfs && !noport && code == c; }
  // Inline: out of line, the library's interposable symbols were calls
  // (about 20 instructions an operation).
  bool IsRetrieval() const {
    return portfs && !noport && (code == abi::illumos::PORT_GET || code == abi::illumos::PORT_GETN);
  }
  bool IsFdAssociation() const { return OnPort(abi::illumos::PORT_ASSOCIATE) && fd_object >= 0; }
  // The library's report of a close (port_close_fd, port.c:164-169).
  bool IsCloseReport() const { return portfs && noport && code == abi::illumos::PORT_EVSHIM_FD_CLOSING; }
};

// Inline: every call decodes (Engine::Call).
inline PortCall PortCall::Decode(abi::Call call, const uint64_t args[6]) {
  namespace il = abi::illumos;
  PortCall c;
  if (call != abi::Call::kPortfs) return c;
  const uint32_t opcode = static_cast<uint32_t>(args[0]);
  c.portfs = true;
  c.noport = (opcode & il::PORT_SYS_NOPORT) != 0;
  c.code = opcode & il::PORT_CODE_MASK;
  if (!c.noport) c.port_fd = static_cast<int>(args[1]);
  switch (c.code) {  // decoded with or without PORT_SYS_NOPORT (NumberToCheck reads it so)
    case il::PORT_ASSOCIATE:
    case il::PORT_DISSOCIATE:
      // portfs(op, port, source, object, ...): an FD object is a number.
      if (static_cast<uint16_t>(args[2]) == il::PORT_SOURCE_FD && args[3] <= 0x7fffffff) {
        c.fd_object = static_cast<int>(args[3]);
      }
      break;
    case il::PORT_GET:
      c.max = 1;
      break;
    case il::PORT_GETN:
      c.max = static_cast<uint32_t>(args[3]);
      break;
    default:
      break;
  }
  return c;
}

class Engine {
 public:
  // The numbers a call checks afresh (SyncFileChecks): every one, or none.
  static constexpr int kCheckAll = -2, kCheckNone = -1;
  Engine(EngineOptions options, std::shared_ptr<const Inherited> inherited);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Runs the call `nr` (x86_64 number; `entry` is its row of the syscall
  // table, looked up once by the caller) with the registers `args`. Returns
  // false when the engine does not serve it (the library then issues the
  // system call); else `*result` is the value, or -errno.
  bool Call(const abi::SyscallEntry& entry, int nr, const std::array<uint64_t, 6>& args, long* result);

  // evshim_engine_settle: what a call would see first (PrepareCall) is
  // applied, and each object's descriptor byte with it (ApplyReadiness).
  void Settle();
  // A library's own read of a call's argument before the call (the kqueue
  // library's change-list hints and timeout): false for a bad pointer,
  // never SIGSEGV. evshim_engine_read_program (engine_entry.h).
  bool ReadProgram(void* dst, const void* src, size_t n);
  // The calling thread's stack as ReadProgram knows it, [*low, *high)
  // (equal when unknown): evshim_engine_thread_stack (engine_entry.h).
  static void CallingThreadStack(uintptr_t* low, uintptr_t* high);

  // evshim_engine_poll_begin/end (shim/foreign/poll_settle.h): the program's
  // thread enters a poll-family call. It counts as a poller until PollEnd
  // (a readable object's byte is sent at once while one is counted) and
  // the bytes owed so far are sent; `settle`: it names an object's
  // descriptor, Settle first. Returns whether it was counted (the engine's
  // own polls are not).
  bool PollBegin(bool settle);
  static void PollEnd();
  // In a forked child only the forking thread lives on: the count is its
  // own, and it is no longer inside the (abandoned) engine.
  static void AfterForkInChild();
  // Every port still served here may be reached by another process (a
  // fork without a supervisor, or a port that could not move): its byte
  // follows its readiness from now on (docs/design.md "The readiness byte
  // on demand"). With the lock held.
  void MarkPortsShared();
  // The program gives descriptor `fd` to epoll_ctl(EPOLL_CTL_ADD): if it is
  // an object, whatever waits on that epoll may not be interposed (a raw
  // epoll_wait, io_uring, a nested epoll added raw): its byte stays exact.
  void NotePolledByEpoll(int fd);

  // A signal delivery the kqueue library's hook counted (EVFILT_SIGNAL):
  // async-signal-safe, applied at the next call or wake-up.
  void NoteSignal(int signo);

  // fork(): the parent holds the lock across it (pthread_atfork).
  // The thread is the engine's meanwhile: its own polls (the moves') are
  // not the program's (PollBegin).
  void LockForFork();
  void UnlockAfterFork();
  // The objects this engine serves, as a child inherits them.
  void AddInherited(Inherited* into) const;
  // Before fork, with the lock held (LockForFork): with a supervisor
  // present, every port this engine serves moves there, at the same
  // descriptor numbers (docs/design.md "Moving a port at fork";
  // shim/inproc/fork_move.cc). A port that cannot move stays here.
  // `kept_across_exec_only`: only the ports with a number that is not
  // close-on-exec (MovePortsBeforeExec).
  // `parent_goes_on` (a spawned child: posix_spawn, system, popen, vfork):
  // the process keeps running, so its timers must stay reachable: once a
  // port moved, every port carrying a timer follows (one id table).
  void MovePortsToSupervisor(bool kept_across_exec_only = false, bool parent_goes_on = false);
  // Before exec (the libraries' exec wrappers): with a supervisor present,
  // each port the new image keeps (a number without FD_CLOEXEC) moves there,
  // so it outlives this image's engine (rule 35, port.c:241-248 as at fork).
  void MovePortsBeforeExec();
  // Before a child is started that will exec while this process goes on
  // (posix_spawn, system, popen, vfork): the ports the child keeps (a number
  // without FD_CLOEXEC) move to the supervisor, so the child shares them
  // (rule 34, port.c:241-248), and the timers follow so that this process's
  // timer calls still find them.
  void MovePortsBeforeSpawn();
  // Before sendmsg passes descriptors (SCM_RIGHTS): each of `fds` that is
  // one of this engine's ports moves to the supervisor, as at fork, since
  // the receiving process shares it (rule 34 for a passed port).
  void MovePortsBeforeSend(const int* fds, size_t count);

  pid_t pid() const { return pid_; }
  // evshim_engine_hand_overs (tests): the retrievals answered by the two
  // hand-overs so far (EventPorts::StraightHandOvers, Kqueues::HandOverCount),
  // read under the lock. Counted by the engines already: nothing per call.
  struct HandOvers {
    uint64_t port_retrievals = 0;
    uint64_t kevents = 0;
  };
  // Cold: out of the calls' text (the hot path's layout unchanged).
  [[gnu::cold]] HandOvers CountHandOvers();
  // The library's close_range/closefrom wrappers report that descriptor
  // numbers may name other files now (evshim_engine_fd_closed;
  // async-signal-safe, no lock; the other closes: NoteDescriptorClosed). Identity answers
  // kept across calls are valid until then (docs/design.md "The in-process
  // fast path", "What a call costs").
  static void NoteDescriptorsChanged() {
    closed_all_.store(true, std::memory_order_relaxed);
    close_epoch_.fetch_add(1, std::memory_order_release);
  }
  // The same for the one number `fd` (the libraries' close, dup2 and dup3:
  // evshim_engine_fd_closed_at): only what was kept about that number is
  // checked again, so a program that opens and closes files of its own
  // between its calls (a server reading a file per request, a log) keeps
  // the answers about its watched numbers and its objects
  // (docs/design.md "The in-process fast path", "What a call costs": by
  // number). The bit is set before the epoch moves, so a sync that sees
  // the epoch sees the bit (SyncFileChecksNow).
  static void NoteDescriptorClosed(int fd) {
    if (fd < 0 || fd >= kClosedNumbers) {
      NoteDescriptorsChanged();
      return;
    }
    const unsigned word = static_cast<unsigned>(fd) / 64;
    closed_words_[word].fetch_or(uint64_t{1} << (static_cast<unsigned>(fd) % 64), std::memory_order_relaxed);
    closed_groups_.fetch_or(uint64_t{1} << (word / kClosedWordsPerGroup), std::memory_order_relaxed);
    close_epoch_.fetch_add(1, std::memory_order_release);
  }
  // Starts the idle pump (a thread with every signal blocked) unless it
  // runs already. Not at the engine's birth: only once something needs
  // host events routed while no thread calls (docs/design.md "The idle
  // pump on demand"): a thread enters the poll family (PollBegin), an
  // object's byte must follow its readiness (ObjectTable::MarkPolled: a
  // program epoll, a watch of the engine's own, another process or the
  // supervisor may look at it; EVSHIM_READINESS_BYTE=always), a timer is
  // made (a SIGEV_SIGNAL timer's signal must come on time), or a process
  // is watched (its exit status taken before the program reaps it,
  // LinuxHost::WatchProcess). Until then
  // a program that only calls stays single-threaded, and the kernel's
  // descriptor look-ups stay uncounted (fdget without a reference).
  void EnsureIdlePump() {
    if (!pump_started_.load(std::memory_order_acquire)) StartIdlePumpOnce();
  }

 private:
  class Context;
  class Waiter;
  friend class Context;

  // The program's ends of the objects are this process's descriptors.
  class OwnEnds final : public ProgramEnds {
   public:
    bool FdIs(emul::Pid pid, int fd, uint64_t inode) override;
    int Borrow(emul::Pid pid, int fd) override;
    void Release(int local) override;
    int FindFd(emul::Pid pid, uint64_t inode) override;
  };
  struct ParkedWait {
    emul::ObjectId obj = 0;
    int fd = -1;
    bool port = false;
    std::weak_ptr<Waiter> waiter;
  };

  // Everything ready before a call is seen before it (issue 14 item 1).
  void PrepareCall();
  // The deadlines due now run (catch-up before a call); whether any is.
  void CatchUpDeadlines();
  bool AnyDeadlineDue();
  // The port a call on a port names, when the engine kept it
  // (KnownObjectAt) and it is alive, with what the predicates below read.
  struct KnownPort {
    emul::ObjectId obj;
    emul::EventPorts::Glance glance;
  };
  [[gnu::always_inline]] inline std::optional<KnownPort> KnownPortOfCall(const PortCall& call);
  // A port_get/port_getn whose port already holds `max` events needs no
  // look first: it takes them from the head of the queue, and whatever a
  // look would find is queued after them.
  static bool QueueAnswersWithoutLook(const PortCall& call, const KnownPort& port);
  // A port_send, port_get or port_getn on a port no host source feeds (no
  // FD association, no FILE watch) needs no look either: nothing a look
  // finds can be queued on that port, ahead of the sent event or in the
  // waiter's answer (threads blocked in port_get, issue 15).
  static bool PortFedByNoHostSource(const KnownPort& port);
  // A port_send/port_get/port_getn on a port the engine kept, which one of
  // the two above answers without a look. A retrieval that needs the look
  // leaves its port's id in `*look_for` (0: none), for the hand-over.
  bool SendOrRetrievalWithoutLook(const PortCall& call, emul::ObjectId* look_for);
  // A kevent on a kqueue the engine kept whose knotes no host source feeds
  // (only USER and TIMER) needs no look either. Inline, the two counts
  // first: a program with no such knote pays two compares.
  bool KeventWithoutLook(abi::Call call, const uint64_t args[6]) {
    return (call == abi::Call::kKevent || call == abi::Call::kKevent11) && kqueues_->SomeKnoteFedByNoHostSource() &&
           KqueueFedByNoHostSource(static_cast<int>(args[0]));
  }
  // Number `fd` names a kqueue the engine kept, fed by no host source.
  bool KqueueFedByNoHostSource(int fd);
  // A port_associate(PORT_SOURCE_FD) whose identity check or new
  // registration places the association's event itself
  // (LocalWatches::PlacementWithoutLook) needs no look either, when nothing
  // else would be queued at the look ahead of it.
  // `call`: a port_associate(PORT_SOURCE_FD) (PortCall::IsFdAssociation).
  bool AssociatePlacedWithoutLook(const PortCall& call);
  // Whether number `fd` names a pipe or a socket that is no object of this
  // engine: a file epoll takes, whose readiness no look of ours changes.
  bool PlainPollableFile(int fd);
  // The watches' identity answers (LinuxHost::ForgetFileChecks) are kept
  // while no descriptor was closed or replaced through the library; a call
  // checks again the number it names (`number` >= 0), every answer
  // (kCheckAll) or none (kCheckNone). Inline, the usual
  // answer first (no number, nothing closed since): every call and every
  // waiter's wake-up asks.
  void SyncFileChecks(int number) {
    if (number == kCheckNone && close_epoch_.load(std::memory_order_acquire) == file_checks_epoch_) return;
    SyncFileChecksNow(number);
  }
  void SyncFileChecksNow(int number);
  // The object a descriptor number was found to be, kept while no
  // descriptor was closed or replaced through the library and the object
  // lives: a call on a port or kqueue then costs no fstat. `epoch` is
  // close_epoch_ read before the fstat that found it.
  // With its kind (the lookup that finds it alive reads it: callers need
  // not look it up again).
  struct KnownObject {
    emul::ObjectId obj;
    abi::ObjectKind kind;
  };
  // A call names its object two or three times (the look-free predicates,
  // the handler): the last answer stands while no object was removed since
  // it was found alive (inline; the list otherwise).
  std::optional<KnownObject> KnownObjectAt(int fd, uint64_t epoch) {
    if (epoch == known_object_epoch_ && fd == known_last_.fd && known_last_.removals == objects_->removals()) {
      return KnownObject{known_last_.obj, known_last_.kind};
    }
    return KnownObjectInList(fd, epoch);
  }
  // Out of line for good: link-time optimization inlined it into a copy of
  // KnownObjectAt, whose frame every predicate's look-up then paid.
  __attribute__((noinline)) std::optional<KnownObject> KnownObjectInList(int fd, uint64_t epoch);
  void RememberObjectAt(int fd, emul::ObjectId obj, uint64_t epoch);
  // Reads the look epoll without waiting (the watches' level reports), and
  // the loop epoll nested in it only when that reported, and routes each
  // event to its owner.
  void Pump(bool apply_readiness = true);
  void ApplySignals();
  // signal_efd_ reported at a look: its count read (unless a wake of the
  // pump is owed: WakePumpFromLook), the signals applied.
  void OnSignalReport();
  long InstallObject(abi::ObjectKind kind, emul::ObjectId obj, bool cloexec);
  bool HoldsObject(emul::ObjectId obj);
  void Sweep();
  void ArmSweep(bool on);
  // fork_move.cc: one port's move; the calls waiting on a moved port go
  // back to their library, which issues them to the supervisor.
  // `before_exec`: the process's timers that are not the port's stay here
  // (exec deletes them: timer.c:1000), the port's own move along.
  bool MovePort(emul::ObjectId obj, bool before_exec = false);
  // A timer_create went to the supervisor (its port is there): the
  // process's own timers follow, with the ports they are bound to.
  void MoveTimersToSupervisor();
  void DisplaceWaits(const std::vector<emul::WaitId>& waits);
  // The threads waiting in Call, with the lock held (docs/design.md
  // "Waiting"): each waits for its own wake-up, and one of them, the loop
  // watcher, for the loop epoll too; when it stops waiting, the watch
  // passes to another waiting thread (woken to take it).
  void StartWaiting(Waiter* w);
  void StopWaiting(Waiter* w);
  // Whether [addr, addr + size) lies on the callers' frames of a thread
  // listed in waiting_ (copied directly: SelfMemory in engine.cc).
  bool OnWaitingStack(uint64_t addr, size_t size) const;
  // Once a port moved, the process's timers are the supervisor's (one id
  // table per process): a timer call other than timer_create goes there.
  static bool TimerCallMoved(abi::Call call);
  int PidfdOf(emul::Pid pid);
  // While no thread calls into the engine or waits in it, host events are
  // still routed (a program that polls the port or kqueue descriptor
  // itself, a SIGEV_SIGNAL timer): the idle pump does it, and stays out of
  // the way of a busy program: while calls keep ending it naps, kIdleNs
  // first, twice as long at each pass that saw calls, up to kNapCapNs
  // (docs/design.md "Host events").
  void IdlePumpLoop();
  __attribute__((noinline, cold)) void StartIdlePumpOnce();
  std::atomic<bool> pump_started_{false};
  // Whether no call ended since a thread last entered the poll family.
  bool OnlyThePollersOwnCalls() const {
    return calls_ended_.load(std::memory_order_relaxed) == calls_at_poll_begin_.load(std::memory_order_relaxed);
  }
  static constexpr int64_t kIdleNs = 1'000'000;
  static constexpr int64_t kNapCapNs = 8'000'000;
  // The pump's nap: a futex wait on nap_word_ until `ns` from now, which a
  // thread entering the poll family ends at once (PollBegin, KickPump).
  enum class NapEnd {
    kPolled,  // a poller was counted: no nap at all
    kSlept,   // the whole nap
    kKicked,  // a poller came meanwhile
  };
  NapEnd Nap(int64_t ns);
  __attribute__((noinline, cold)) void KickPump();
  enum : uint32_t { kPumpAwake = 0, kPumpNapping = 1, kPumpKicked = 2 };
  std::atomic<uint32_t> nap_word_{kPumpAwake};
  // The pump asleep in its look (a blocking poll of the look epoll) while
  // calls resume: their looks take each report of their traffic first, and
  // the kernel puts the poll back to sleep at each (docs/design.md "Host
  // events"). pump_look_ is kInLook from just before that poll until it
  // returns; a call whose look took reports while it is so (one load,
  // Call) and sees calls keep coming makes it kPumpWakeOwed and writes
  // signal_efd_, which the looks then leave readable (they still apply the
  // signals): the poll returns however the reports race; the first look
  // after it reads the count back. No descriptor of its own (libevent's
  // test-fdleak runs at RLIMIT_NOFILE 20). pump_look_since_: calls_ended_
  // when it fell asleep there.
  enum : uint32_t { kPumpOutOfLook = 0, kPumpInLook = 1, kPumpWakeOwed = 2 };
  std::atomic<uint32_t> pump_look_{kPumpOutOfLook};
  std::atomic<uint64_t> pump_look_since_{0};
  __attribute__((noinline, cold)) void WakePumpFromLook(uint64_t taken);
  void WakeTheWatcherOffTheLook();
  // A loop watcher that saw the wake owed waits for its own wake-up only
  // (Call); the pump wakes it once out of its look.
  std::atomic<bool> watcher_off_look_{false};
  static inline std::atomic<uint64_t> close_epoch_{0};
  // The numbers closed since the last sync (NoteDescriptorClosed): a bit a
  // number below kClosedNumbers, a group bit per kClosedWordsPerGroup
  // words, and "every number" (a range, a close libc made, a number past
  // the bitmap). Taken by SyncFileChecksNow under the lock.
  static constexpr int kClosedNumbers = 65536;
  static constexpr unsigned kClosedWords = kClosedNumbers / 64;
  static constexpr unsigned kClosedWordsPerGroup = kClosedWords / 64;
  static inline std::atomic<uint64_t> closed_words_[kClosedWords]{};
  static inline std::atomic<uint64_t> closed_groups_{0};
  static inline std::atomic<bool> closed_all_{false};
  // What the closed numbers' answers were: forgotten, each (or all).
  void ForgetClosedNumbers();
  void ForgetKnownObjectAt(int fd);
  // Threads of the program inside an interposed poll-family call (PollBegin).
  static inline std::atomic<int> pollers_{0};
  uint64_t file_checks_epoch_ = 0;  // close_epoch_ the watches' answers were kept for
  struct KnownObjectFd {
    int fd = -1;
    emul::ObjectId obj = 0;
  };
  static constexpr size_t kKnownObjectFds = 16;
  std::vector<KnownObjectFd> known_object_fds_;  // valid at known_object_epoch_
  uint64_t known_object_epoch_ = 0;
  // KnownObjectAt's last answer, valid at known_object_epoch_ while the
  // object table has removed nothing since (ObjectTable::removals).
  struct KnownLast {
    int fd = -1;
    emul::ObjectId obj = 0;
    abi::ObjectKind kind = abi::ObjectKind::kPort;
    uint64_t removals = 0;
  };
  KnownLast known_last_;
  // Counts calls ended (Call), for the idle pump: changed since its last
  // pass, the program is calling (IdlePumpLoop).
  std::atomic<uint64_t> calls_ended_{0};
  // calls_ended_ when a thread last entered the poll family (PollBegin):
  // still equal, no call ended since, so the calls the pump saw were the
  // poller's own, made before it began to wait, and nobody else's call
  // will look for it (IdlePumpLoop; bench_ports pollwait).
  std::atomic<uint64_t> calls_at_poll_begin_{0};
  // Counts the calls' looks (PrepareCall), for the idle pump: changed while
  // it slept in its look, the calls route for a poller themselves.
  std::atomic<uint64_t> looks_{0};
  std::atomic<int> waiting_threads_{0};
  // The idle pump's look left work that makes a descriptor owed to a call
  // and keeps the look epoll readable until a call does it
  // (LinuxHost::OwedKeepingTheLookReadable: the look epoll's renewal, an
  // exit status from /proc), so the pump looks once per kIdleNs instead of
  // polling it. Written under mu_ (the pump's look, a call's end, a
  // settle).
  std::atomic<bool> owed_to_a_call_{false};

  EngineOptions options_;
  std::shared_ptr<const Inherited> inherited_;
  EngineMutex mu_;
  pid_t pid_;
  // The process's memory; lives as long as the engine (completions of
  // deferred calls keep a reference).
  std::unique_ptr<abi::GuestMemory> memory_;
  int loop_ = -1;        // epoll of every host event source but the watches
  // What the engine reads and waits on: the watches' look epoll, with loop_
  // nested (LocalWatches), or loop_ itself if it could not be made. Its
  // number stays when the watches renew it.
  int look_ = -1;
  // Written by NoteSignal, and by a call that wakes the pump from its look
  // (WakePumpFromLook); in the look epoll (LinuxHost::AddLookSource), or in
  // the loop without one.
  int signal_efd_ = -1;
  int sweep_fd_ = -1;    // periodic check of waiters' port descriptors (rule 27)
  bool sweep_armed_ = false;
  std::unique_ptr<LinuxHost> host_;
  std::unique_ptr<emul::EventPorts> ports_;
  std::unique_ptr<emul::Kqueues> kqueues_;
  std::unique_ptr<emul::Engines> engines_;  // routes host events; owns the deadline
  OwnEnds ends_;
  std::unique_ptr<ObjectTable> objects_;  // the objects' descriptors
  std::unique_ptr<HostEventRouter> router_;  // the host's events to their owners
  std::unordered_map<emul::WaitId, ParkedWait> parked_;
  std::vector<Waiter*> waiting_;      // StartWaiting, oldest first
  Waiter* loop_watcher_ = nullptr;   // one of waiting_, or none
  std::unordered_map<emul::Pid, int> pidfds_;
  std::set<std::string> reported_;
  bool warned_fork_port_ = false;
  bool warned_move_ = false;
  bool timers_moved_ = false;  // a port moved: timer calls are the supervisor's (TimerCallMoved)
  bool objects_watched_ = false;  // some watch was registered on an object's descriptor
  static constexpr int kSignals = 65;  // Linux _NSIG
  std::atomic<uint32_t> pending_signals_[kSignals] = {};
  std::atomic<bool> any_signal_{false};
};

}  // namespace evshim::shim::inproc
