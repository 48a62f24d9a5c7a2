// Helpers of the idle pump's tests (inproc_test.cc, inproc_kqueue_test.cc):
// a child's threads seen from /proc, a watchdog for forked children, and
// the pump thread traced alone (ptrace, x86_64).
#pragma once

#include <dirent.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>

namespace evshim::testing {

// Threads blocked in the engine, seen from /proc: the system call a thread
// is blocked in (-1 while it runs), and its voluntary context switches (each
// wake-up from a blocking call counts one).
// The number a /proc file of thread `tid` of process `pid` begins with
// (-1 if none).
inline long long LeadingNumber(pid_t pid, pid_t tid, const char* file) {
  char path[96];
  if (pid == 0) {
    std::snprintf(path, sizeof path, "/proc/self/task/%d/%s", tid, file);
  } else {
    std::snprintf(path, sizeof path, "/proc/%d/task/%d/%s", pid, tid, file);
  }
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return -1;
  long long n = -1;
  if (std::fscanf(f, "%lld", &n) != 1) n = -1;
  std::fclose(f);
  return n;
}

inline long BlockedSyscall(pid_t tid) { return static_cast<long>(LeadingNumber(0, tid, "syscall")); }

// The time thread `tid` has run on a processor, in ns (schedstat).
inline int64_t RunNs(pid_t tid) { return LeadingNumber(0, tid, "schedstat"); }

inline long VoluntarySwitches(pid_t tid) {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/self/task/%d/status", tid);
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return -1;
  char line[256];
  long n = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::sscanf(line, "voluntary_ctxt_switches: %ld", &n) == 1) break;
  }
  std::fclose(f);
  return n;
}

inline int64_t NowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// The other thread of this process (the idle pump), or 0.
inline pid_t OtherThread() {
  DIR* d = opendir("/proc/self/task");
  if (d == nullptr) return 0;
  const pid_t self = gettid();
  pid_t other = 0;
  while (dirent* e = readdir(d)) {
    const pid_t tid = static_cast<pid_t>(std::atoi(e->d_name));
    if (tid > 0 && tid != self) other = tid;
  }
  closedir(d);
  return other;
}

// Starts the engine's idle pump as a program does: a poll of an object's
// descriptor through the library (poll is the library's here), zero
// timeout, its answer unused. The pump starts on demand, not with the
// engine (docs/design.md "The idle pump on demand").
inline void PollOnceThroughTheLibrary(int object_fd) {
  pollfd p{object_fd, POLLIN, 0};
  (void)poll(&p, 1, 0);
}

// The other thread of this process once there is one (up to about a
// second), or 0.
inline pid_t WaitForAnotherThread() {
  pid_t other = 0;
  for (int tries = 0; other == 0 && tries < 1000; ++tries) {
    other = OtherThread();
    if (other == 0) usleep(1000);
  }
  return other;
}

// The idle pump, started by a poll of `object_fd` (up to about a second),
// or 0.
inline pid_t WaitForThePump(int object_fd) {
  PollOnceThroughTheLibrary(object_fd);
  return WaitForAnotherThread();
}

// The pump and this thread on this thread's processor, the pump at
// SCHED_IDLE: it runs only while this thread sleeps (the resume tests'
// reproduction of a pump slow to get a processor). False if refused.
inline bool PinThePumpIdleBesideThisThread(pid_t pump) {
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  sched_param none{};
  return sched_setaffinity(0, sizeof one, &one) == 0 && sched_setaffinity(pump, sizeof one, &one) == 0 &&
         sched_setscheduler(pump, SCHED_IDLE, &none) == 0;
}

// Kills a forked child that is still running after a limit, first
// recording where each of its threads stood (state, wait channel, system
// call, kernel stack), so that a test that would hang fails with that
// record instead of running into the suite's timeout. Why: a pump test timed
// out once in 200+ runs (2026-12-04) and never again; the next time, the
// record says where.
class ChildWatchdog {
 public:
  ChildWatchdog(pid_t child, std::chrono::seconds limit)
      : thread_([this, child, limit] {
          std::unique_lock<std::mutex> lock(mu_);
          if (cv_.wait_for(lock, limit, [this] { return done_; })) return;
          record_ = Snapshot(child);
          fired_ = true;
          kill(child, SIGKILL);
        }) {}
  ~ChildWatchdog() { Stop(); }
  // Stops the watch; true when the limit passed and the child was killed.
  bool Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    return fired_;
  }
  const std::string& record() const { return record_; }

 private:
  static std::string ReadSmall(const std::string& path) {
    std::string text;
    if (FILE* f = std::fopen(path.c_str(), "r")) {
      char buf[4096];
      const size_t n = std::fread(buf, 1, sizeof buf, f);
      text.assign(buf, n);
      std::fclose(f);
    }
    return text;
  }
  static std::string Snapshot(pid_t child) {
    std::ostringstream out;
    const std::string base = "/proc/" + std::to_string(child) + "/task";
    if (DIR* d = opendir(base.c_str())) {
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        const std::string task = base + "/" + e->d_name;
        out << "task " << e->d_name << ": stat " << ReadSmall(task + "/stat") << " wchan "
            << ReadSmall(task + "/wchan") << "\n syscall " << ReadSmall(task + "/syscall") << " stack\n"
            << ReadSmall(task + "/stack") << "\n";
      }
      closedir(d);
    }
    return out.str();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool fired_ = false;
  std::string record_;
  std::thread thread_;
};

// One system-call stop of a traced thread (PTRACE_GET_SYSCALL_INFO, the
// kernel's struct ptrace_syscall_info; glibc's header names the request
// only): the entry with its number and arguments, or the exit with its
// value.
struct SyscallStop {
  bool entry = false;
  long nr = -1;
  uint64_t args[6] = {};
  int64_t value = 0;
};

inline bool ReadSyscallStop(pid_t tid, SyscallStop* out) {
  // struct ptrace_syscall_info, its parts named (clang's -Wnested-anon-types
  // refuses anonymous types declared inside an anonymous union).
  struct EntryInfo {
    uint64_t nr;
    uint64_t args[6];
  };
  struct ExitInfo {
    int64_t rval;
    uint8_t is_error;
  };
  struct {
    uint8_t op;
    uint8_t pad[3];
    uint32_t arch;
    uint64_t instruction_pointer;
    uint64_t stack_pointer;
    union {
      EntryInfo entry;
      ExitInfo exit;
    };
  } info{};
  if (ptrace(static_cast<__ptrace_request>(PTRACE_GET_SYSCALL_INFO), tid, reinterpret_cast<void*>(sizeof info),
             &info) <= 0) {
    return false;
  }
  if (info.op == 1) {  // PTRACE_SYSCALL_INFO_ENTRY
    out->entry = true;
    out->nr = static_cast<long>(info.entry.nr);
    std::copy(std::begin(info.entry.args), std::end(info.entry.args), out->args);
    return true;
  }
  if (info.op == 2) {  // PTRACE_SYSCALL_INFO_EXIT
    out->entry = false;
    out->value = info.exit.rval;
    return true;
  }
  return false;
}

// The idle pump's nap (Engine::Nap): a futex wait with a deadline
// (FUTEX_WAIT_BITSET); the engine lock's waits are plain FUTEX_WAITs.
constexpr long kNap = -100;
inline bool IsPumpNap(const SyscallStop& stop) {
  return stop.entry && stop.nr == SYS_futex && (stop.args[1] & 0x7f) == 9 /* FUTEX_WAIT_BITSET */;
}

// Resumes the traced thread `tid` (seized, in a stop) from one system-call
// stop to the next, passing its signals on, and calls `on_stop` with each
// stop it can read; returns once the thread ends or `on_stop` returns false
// (the thread is then left in that stop). A thread that cannot be resumed
// was taken out of its stop by the program's exit (exit_group's SIGKILL):
// it is reaped here (__WALL), since a traced thread's exit is its tracer's
// to reap, and until it is the program's own exit is not reported (the
// caller's waitpid of the program would wait for ever: in the 6.1 guest
// ANapEndsAtADeadline and the TraceTheBusyPump tests hung so, 5 runs of 40
// of the pump suite with the pump's wake from its look, 0 of 30 without;
// both the program and the caller in wait, the pump a zombie).
template <typename OnStop>
inline void FollowSyscallStops(pid_t tid, OnStop&& on_stop) {
  int deliver = 0;
  for (;;) {
    if (ptrace(PTRACE_SYSCALL, tid, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(deliver))) != 0) {
      if (errno != ESRCH) return;
      int status = 0;
      while (waitpid(tid, &status, __WALL) == tid && !WIFEXITED(status) && !WIFSIGNALED(status)) {
        ptrace(PTRACE_CONT, tid, nullptr, nullptr);
      }
      return;
    }
    deliver = 0;
    int status = 0;
    if (waitpid(tid, &status, __WALL) != tid || WIFEXITED(status) || WIFSIGNALED(status)) return;
    if (!WIFSTOPPED(status)) continue;
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
      // A group stop or the interrupt's own stop: not a signal to deliver.
      if (status >> 16 == 0) deliver = WSTOPSIG(status);
      continue;
    }
    SyscallStop stop;
    if (ReadSyscallStop(tid, &stop) && !on_stop(stop)) return;
  }
}

// Seizes the thread `tid` and stops it (its stops are seen with __WALL).
inline void SeizeAndStop(pid_t tid) {
  ASSERT_EQ(ptrace(PTRACE_SEIZE, tid, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD)), 0)
      << "errno " << errno;
  ASSERT_EQ(ptrace(PTRACE_INTERRUPT, tid, nullptr, nullptr), 0);
  int status = 0;
  ASSERT_EQ(waitpid(tid, &status, __WALL), tid);
}

// Whether thread `tid` of process `pid` sleeps in poll (its own system
// call, as /proc shows it).
inline bool SleepsInPoll(pid_t pid, pid_t tid) {
  const long long nr = LeadingNumber(pid, tid, "syscall");
  return nr == SYS_poll || nr == SYS_ppoll;
}

// In a child: sends its own thread id and its idle pump's on `up`, the
// pump started by a poll of `object_fd`.
inline bool SendThreadIds(int up, int object_fd) {
  const pid_t ids[2] = {gettid(), WaitForThePump(object_fd)};
  return ids[1] != 0 && write(up, ids, sizeof ids) == sizeof ids;
}

// The parent's start of a test whose program sends its main thread's and
// its idle pump's ids on `up` (and waits for `go`, watching `file`): the
// child's ends closed, the ids read, the pump seized and stopped. The
// caller's watchdog, made first, bounds the read.
inline void SeizeTheProgramsPump(int up[2], int go[2], int file[2], pid_t* main_thread, pid_t* pump) {
  close(up[1]);
  close(go[0]);
  close(file[0]);
  pid_t ids[2] = {0, 0};
  ASSERT_EQ(read(up[0], ids, sizeof ids), static_cast<ssize_t>(sizeof ids));
  *main_thread = ids[0];
  *pump = ids[1];
  ASSERT_NO_FATAL_FAILURE(SeizeAndStop(*pump));
}

// The parent's side of the poller-kick tests (InprocPump. and
// InprocKqueuePump.APollerWakesTheNappingPump): `pid` is the program, which
// sends its thread ids on `up`, calls until a byte arrives on `go`, then
// polls its port or kqueue descriptor, which watches `file`'s read end and
// must report the byte this side writes once the pump's nap was kicked.
// The pump is traced: four naps in a row while the program calls, the nap
// held at its entry until the program sleeps in poll; that nap must end by
// the kick, and the pump's next sleep must be its look, at whose entry the
// file is written.
inline void ExpectAPollerWakesTheNappingPump(pid_t pid, int up[2], int go[2], int file[2]) {
  ChildWatchdog watchdog(pid, std::chrono::seconds(30));
  pid_t main_thread = 0, pump = 0;
  ASSERT_NO_FATAL_FAILURE(SeizeTheProgramsPump(up, go, file, &main_thread, &pump));
  int status = 0;
  enum { kCalling, kKicking, kAfterKick, kDone } phase = kCalling;
  int naps_in_a_row = 0, naps_after_kick = 0;
  int64_t kicked_nap_value = 0;
  bool program_polled = false;
  bool wrote = true;
  FollowSyscallStops(pump, [&](const SyscallStop& stop) {
    switch (phase) {
      case kCalling:
        if (stop.entry && stop.nr == SYS_poll) naps_in_a_row = 0;  // it looked: the nap starts again
        if (IsPumpNap(stop) && ++naps_in_a_row >= 4) {
          // Held at the nap's entry: the program polls meanwhile.
          wrote = write(go[1], "g", 1) == 1;
          for (int tries = 0; wrote && tries < 10'000 && !program_polled; ++tries) {
            program_polled = SleepsInPoll(pid, main_thread);
            if (!program_polled) usleep(1000);
          }
          phase = kKicking;
        }
        break;
      case kKicking:
        if (!stop.entry) {
          kicked_nap_value = stop.value;
          phase = kAfterKick;
        }
        break;
      case kAfterKick:
        if (IsPumpNap(stop)) ++naps_after_kick;
        if (stop.entry && stop.nr == SYS_poll) {
          wrote = write(file[1], "x", 1) == 1;  // after the poll began, from another process
          phase = kDone;
        }
        break;
      case kDone:
        break;
    }
    return wrote && phase != kDone;
  });
  ASSERT_TRUE(wrote);
  if (phase == kDone) ptrace(PTRACE_DETACH, pump, nullptr, nullptr);
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_FALSE(watchdog.Stop()) << "the child was still running after 30 s; where it stood:\n" << watchdog.record();
  close(up[0]);
  close(go[1]);
  close(file[1]);
  EXPECT_TRUE(program_polled);
  EXPECT_EQ(phase, kDone);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  EXPECT_NE(kicked_nap_value, -ETIMEDOUT) << "the nap ran to its end: no kick";
  EXPECT_EQ(naps_after_kick, 0);
}

// Runs `child(up)` in a forked child, which sends a count of the pump's
// voluntary switches on `up` and exits 0; returns the count (-1 if none).
inline int64_t PumpSwitchesOfChild(void (*child)(int)) {
  int up[2];
  if (pipe(up) != 0) return -1;
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(up[0]);
    child(up[1]);
    _exit(1);
  }
  close(up[1]);
  ChildWatchdog watchdog(pid, std::chrono::seconds(30));
  int64_t switches = -1;
  const ssize_t got = read(up[0], &switches, sizeof switches);
  close(up[0]);
  int status = 0;
  const bool reaped = waitpid(pid, &status, 0) == pid;
  const bool killed = watchdog.Stop();
  EXPECT_TRUE(reaped && !killed && WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << (killed ? "; killed after 30 s, where it stood:\n" + watchdog.record() : "");
  return got == static_cast<ssize_t>(sizeof switches) ? switches : -1;
}

}  // namespace evshim::testing
