// (5) The seccomp filter never intercepts a system call the host implements.
//
// The set of intercepted numbers is read from the filter itself (the BPF
// program BuildFilter() emits, run by a tiny interpreter here for every
// number), not from the table, so a filter bug shows up too. Each number is
// checked two ways, for x86_64 (`syscall`) and i386 (`int $0x80`):
//  - libseccomp's own syscall list must not know it, unless it is one of the
//    numbers Linux reserves but never implemented (they answer ENOSYS);
//  - calling it natively, in a forked child without any filter, gives ENOSYS.
#include <gtest/gtest.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <seccomp.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <set>
#include <string>
#include <vector>

#include "abi/syscall_table.h"
#include "shim/supervisor/filter.h"

namespace evshim {
namespace {

// Runs a classic-BPF seccomp program on one (arch, nr). Supports what a
// seccomp filter may contain of LD/JMP/RET with constants; anything else
// fails the test.
uint32_t RunFilter(const std::vector<sock_filter>& prog, uint32_t arch, uint32_t nr) {
  seccomp_data d{};
  d.arch = arch;
  d.nr = static_cast<int>(nr);
  uint32_t acc = 0;
  for (size_t pc = 0; pc < prog.size(); ++pc) {
    const sock_filter& in = prog[pc];
    switch (in.code) {
      case BPF_LD | BPF_W | BPF_ABS:
        if (in.k + 4 > sizeof d) {
          ADD_FAILURE() << "load past seccomp_data at " << pc;
          return 0;
        }
        std::memcpy(&acc, reinterpret_cast<const char*>(&d) + in.k, 4);
        break;
      case BPF_JMP | BPF_JEQ | BPF_K:
        pc += acc == in.k ? in.jt : in.jf;
        break;
      case BPF_JMP | BPF_JA:
        pc += in.k;
        break;
      case BPF_RET | BPF_K:
        return in.k;
      default:
        ADD_FAILURE() << "unexpected BPF opcode " << in.code << " at " << pc;
        return 0;
    }
  }
  ADD_FAILURE() << "filter fell off its end";
  return 0;
}

// Every number the filter sends to the supervisor for `arch`.
std::set<uint32_t> Intercepted(uint32_t arch) {
  const std::vector<sock_filter> prog = shim::BuildFilter();
  std::set<uint32_t> out;
  for (uint32_t nr = 0; nr < 4096; ++nr) {
    uint32_t action = RunFilter(prog, arch, nr);
    if ((action & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_USER_NOTIF) {
      out.insert(nr);
    } else {
      EXPECT_EQ(action, SECCOMP_RET_ALLOW) << nr;
    }
  }
  return out;
}

// Numbers Linux lists in its syscall tables but never implemented: the
// kernel answers ENOSYS, so a foreign call may keep them
// (arch/x86/entry/syscalls/syscall_{64,32}.tbl entries without an entry point).
const std::set<uint32_t> kReservedX8664 = {174, 177, 178, 180, 181, 182, 183, 184, 185, 236};
const std::set<uint32_t> kReservedI386 = {17, 31, 32, 35, 44, 53, 56, 58, 98, 137, 188, 189, 273};

// The name libseccomp gives `nr` on `arch`, or "" if it knows none.
std::string LinuxName(uint32_t scmp_arch, uint32_t nr) {
  char* name = seccomp_syscall_resolve_num_arch(scmp_arch, static_cast<int>(nr));
  std::string s = name ? name : "";
  free(name);
  return s;
}

// Issues `nr` natively in a forked child (no filter: this test process has
// none) and returns the errno it got, 0 for success, or -signal if the
// child died (e.g. SIGSEGV when the kernel has no i386 emulation).
int NativeErrno(bool i386, uint32_t nr) {
  int pipefd[2];
  if (pipe(pipefd) != 0) return -1000;
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    long ret;
    if (i386) {
      // int $0x80 from a 64-bit task runs the i386 table. All arguments 0.
      long eax = nr;
      asm volatile("int $0x80"
                   : "+a"(eax)
                   : "b"(0L), "c"(0L), "d"(0L), "S"(0L), "D"(0L)
                   : "memory", "cc", "r8", "r9", "r10", "r11");
      ret = static_cast<int32_t>(eax);
    } else {
      ret = ::syscall(static_cast<long>(nr), 0L, 0L, 0L, 0L, 0L, 0L);
      if (ret == -1) ret = -errno;
    }
    int e = ret < 0 && ret > -4096 ? static_cast<int>(-ret) : 0;
    if (write(pipefd[1], &e, sizeof e) != sizeof e) _exit(2);
    _exit(0);
  }
  close(pipefd[1]);
  int e = -1000;
  ssize_t n = read(pipefd[0], &e, sizeof e);
  close(pipefd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return n == sizeof e ? e : -1000;
}

bool I386EmulationAvailable() { return NativeErrno(true, 20 /* getpid */) == 0; }

TEST(FilterNumbers, FilterMatchesTheTable) {
  std::set<uint32_t> lp64, ilp32;
  for (const abi::SyscallEntry& e : abi::AllSyscalls()) {
    lp64.insert(static_cast<uint32_t>(e.nr_lp64));
    ilp32.insert(static_cast<uint32_t>(e.nr_ilp32));
  }
  EXPECT_EQ(Intercepted(AUDIT_ARCH_X86_64), lp64);
  EXPECT_EQ(Intercepted(AUDIT_ARCH_I386), ilp32);
  // x32 calls (nr | __X32_SYSCALL_BIT) and other architectures pass.
  const std::vector<sock_filter> prog = shim::BuildFilter();
  for (uint32_t nr : lp64) {
    EXPECT_EQ(RunFilter(prog, AUDIT_ARCH_X86_64, nr | 0x40000000u), SECCOMP_RET_ALLOW) << nr;
  }
  EXPECT_EQ(RunFilter(prog, AUDIT_ARCH_AARCH64, 182), SECCOMP_RET_ALLOW);
}

TEST(FilterNumbers, RelocatedNumbersAreInTheReservedRange) {
  // A number is either the foreign kernel's own (then free on the host arch)
  // or in evshim's range 1000-1099.
  for (const abi::SyscallEntry& e : abi::AllSyscalls()) {
    for (int nr : {e.nr_lp64, e.nr_ilp32}) {
      const bool native = std::string(e.native).find(std::to_string(nr)) != std::string::npos;
      EXPECT_TRUE(native || (nr >= abi::kRelocatedFirst && nr <= abi::kRelocatedLast))
          << abi::PersonalityName(e.personality) << " " << e.name << " " << nr;
    }
  }
}

TEST(FilterNumbers, NoX8664NumberIsAHostSyscall) {
  // Control: the checks do see a real system call.
  EXPECT_EQ(LinuxName(SCMP_ARCH_X86_64, 39), "getpid");
  EXPECT_EQ(NativeErrno(false, 39), 0);
  for (uint32_t nr : Intercepted(AUDIT_ARCH_X86_64)) {
    if (!kReservedX8664.count(nr)) {
      EXPECT_EQ(LinuxName(SCMP_ARCH_X86_64, nr), "") << "x86_64 " << nr << " is a Linux system call";
    }
    EXPECT_EQ(NativeErrno(false, nr), ENOSYS) << "x86_64 " << nr << " is implemented by this kernel";
  }
}

TEST(FilterNumbers, NoI386NumberIsAHostSyscall) {
  EXPECT_EQ(LinuxName(SCMP_ARCH_X86, 182), "chown");  // control: why portfs moves on i386
  for (uint32_t nr : Intercepted(AUDIT_ARCH_I386)) {
    if (!kReservedI386.count(nr)) {
      EXPECT_EQ(LinuxName(SCMP_ARCH_X86, nr), "") << "i386 " << nr << " is a Linux system call";
    }
  }
  if (!I386EmulationAvailable()) {
    GTEST_SKIP() << "this kernel runs no i386 code (int $0x80 failed): native check skipped";
  }
  for (uint32_t nr : Intercepted(AUDIT_ARCH_I386)) {
    EXPECT_EQ(NativeErrno(true, nr), ENOSYS) << "i386 " << nr << " is implemented by this kernel";
  }
}

}  // namespace
}  // namespace evshim
