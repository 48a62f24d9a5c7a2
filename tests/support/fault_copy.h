// What the in-process suites share to test the engine's copy into the
// program's memory that survives a fault (docs/design.md "A copy that
// survives a fault"): children that run a check and report by exit status,
// a seccomp filter that takes process_vm_readv/writev away, and the bad
// buffers (unmapped, PROT_NONE, read-only, running into a guard page, a
// mapping of a file truncated to nothing).
#pragma once

#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>

#include "testbins/fault_copy.h"

namespace evshim::testing {

// The engine copies with plain instructions only where the program's signal
// functions are the foreign library's: a sanitizer runtime interposes them
// first in the instrumented test drivers, and there every copy off the
// stack is process_vm_readv/writev, as before.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
inline constexpr bool kFaultCopyInThisBuild = false;
#else
inline constexpr bool kFaultCopyInThisBuild = true;
#endif

// Runs `body` in a forked child (it returns the child's exit code); the
// child's raw wait status. No core file from the children that die of a
// fault on purpose.
template <typename Body>
int ChildStatus(Body body) {
  const pid_t pid = fork();
  if (pid == 0) {
    const struct rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    alarm(30);  // a fault that repeats for ever ends as SIGALRM, not a hang
    _exit(body());
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
  return status;
}

inline std::string DescribeStatus(int status) {
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Variadic: the lambda's commas are not the macro's.
#define EXPECT_CHILD_EXITS_0(...)                                                         \
  do {                                                                                    \
    const int child_status_ = ::evshim::testing::ChildStatus(__VA_ARGS__);                \
    EXPECT_TRUE(WIFEXITED(child_status_) && WEXITSTATUS(child_status_) == 0)              \
        << ::evshim::testing::DescribeStatus(child_status_);                              \
  } while (0)

// From here on this process's process_vm_readv and process_vm_writev fail
// with EPERM (a seccomp filter; no_new_privs first). False if it could not
// be installed. The scenarios' own (testbins/fault_copy.h).
inline bool DenyProcessVmCalls() { return deny_process_vm_calls() == 0; }

// Two pages: the first readable and writable (`protection` on request),
// the second PROT_NONE. `page_end` is the first page's end.
struct GuardedPage {
  char* page = nullptr;
  char* page_end = nullptr;
  explicit GuardedPage(int protection = PROT_READ | PROT_WRITE) {
    void* p = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return;
    page = static_cast<char*>(p);
    page_end = page + 4096;
    mprotect(page_end, 4096, PROT_NONE);
    if (protection != (PROT_READ | PROT_WRITE)) mprotect(page, 4096, protection);
  }
};

// An address nothing is mapped at: the second page, below mmap_min_addr
// (nothing maps there, so no other mapping of the process takes it).
inline void* UnmappedAddress() { return reinterpret_cast<void*>(uintptr_t{4096}); }

// Not inlined: callers may sigsetjmp (-Wclobbered).
// A shared mapping of a file truncated to nothing: every access is SIGBUS.
__attribute__((noinline)) inline void* TruncatedFileMapping() {
  char path[] = "/tmp/evshim-fcopy-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) return nullptr;
  unlink(path);
  void* p = nullptr;
  if (ftruncate(fd, 4096) == 0) {
    p = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED || ftruncate(fd, 0) != 0) p = nullptr;
  }
  close(fd);
  return p;
}

}  // namespace evshim::testing
