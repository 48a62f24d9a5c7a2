// Counts a forked child's system calls by number, in segments (ptrace,
// x86_64): what a call of the fast path costs (inproc_test.cc,
// inproc_kqueue_test.cc).
#pragma once

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace evshim::testing {

inline std::string Describe(const std::map<long, int>& nrs) {
  std::ostringstream o;
  for (auto [nr, n] : nrs) o << " nr" << nr << "x" << n;
  return o.str();
}

// Runs child() in a forked child traced with ptrace and counts its system
// calls by number, in segments: each getppid() the child makes starts one.
// Only the child's main thread is traced (no PTRACE_O_TRACECLONE): the idle
// pump's own system calls are not counted. `at_entry` (if any) is called
// at each counted call's entry, with the child stopped there.
inline void TraceSegments(void (*child)(), std::vector<std::map<long, int>>* segments,
                          const std::function<void(size_t segment, long nr)>& at_entry = nullptr) {
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ptrace(PTRACE_TRACEME, 0, nullptr, nullptr);
    raise(SIGSTOP);
    child();
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSTOPPED(status));
  ASSERT_EQ(ptrace(PTRACE_SETOPTIONS, pid, nullptr, PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL), 0);
  bool entering = true;
  int deliver = 0;
  for (;;) {
    ASSERT_EQ(ptrace(PTRACE_SYSCALL, pid, nullptr, reinterpret_cast<void*>(static_cast<intptr_t>(deliver))), 0);
    deliver = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    if (WIFEXITED(status) || WIFSIGNALED(status)) break;
    if (!WIFSTOPPED(status)) continue;
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {
      deliver = WSTOPSIG(status);
      continue;
    }
    if (entering) {
      user_regs_struct regs{};
      ASSERT_EQ(ptrace(PTRACE_GETREGS, pid, nullptr, &regs), 0);
      const long nr = static_cast<long>(regs.orig_rax);
      if (nr == SYS_getppid) {
        segments->emplace_back();
      } else if (!segments->empty()) {
        ++segments->back()[nr];
        if (at_entry) at_entry(segments->size() - 1, nr);
      }
    }
    entering = !entering;
  }
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  ASSERT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace evshim::testing
