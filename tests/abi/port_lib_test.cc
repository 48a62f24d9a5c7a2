// The illumos API library (libevshim-ports) at its system-call boundary.
//
// A forked child installs a seccomp filter that traps portfs (182) with
// SIGSYS; the handler records the six argument registers and answers with a
// scripted value, writing scripted bytes into the program's buffers the way
// the supervisor would. The parent then checks, with no supervisor involved:
//  - the registers of every call (opcode, PORT_SYS_NOPORT, argument order,
//    the per-thread call number in the opcode's upper half);
//  - poll bits: the program's <poll.h> (Linux) values go out as illumos
//    bits and come back as Linux bits; other sources' events are untouched;
//  - errno: a -EBADFD answer is errno EBADFD (glibc's 77);
//  - PORT_GETN's two results (count | ETIME << 32) become -1/ETIME with *nget;
//  - port_sendn splits lists above PORT_MAX_LIST.
#include <gtest/gtest.h>

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>

#include <port.h>

namespace {

// The boundary checked here is the supervised mode's: in fast mode (the
// default) the library serves calls in the process and issues no portfs
// call. The library decides at its first call, so this is set before any
// test runs (also where tests/meson.build's env is not used: the VM suite).
const int kSupervisedMode = setenv("EVSHIM_SUPERVISED", "1", 1);

constexpr int kMaxCalls = 32;

struct TrappedCall {
  uint64_t regs[6];  // rdi rsi rdx r10 r8 r9
};

// Shared between the child (which fills it) and the parent.
struct Shared {
  // script, set by the child before each library call
  int64_t answer;
  port_event_t events_to_write[2];
  int n_events_to_write;
  // what the trap saw
  TrappedCall calls[kMaxCalls];
  int n_calls;
  // what the library returned
  struct Result {
    int ret;
    int err;
    unsigned nget;
    port_event_t ev[2];
  } results[16];
  int n_results;
  bool done;
};

Shared* g_shared;

void OnSigsys(int, siginfo_t* si, void* uc_void) {
  auto* uc = static_cast<ucontext_t*>(uc_void);
  greg_t* g = uc->uc_mcontext.gregs;
  Shared& s = *g_shared;
  if (si->si_syscall != 182 || s.n_calls >= kMaxCalls) {
    g[REG_RAX] = -ENOSYS;
    return;
  }
  TrappedCall& c = s.calls[s.n_calls++];
  c.regs[0] = static_cast<uint64_t>(g[REG_RDI]);
  c.regs[1] = static_cast<uint64_t>(g[REG_RSI]);
  c.regs[2] = static_cast<uint64_t>(g[REG_RDX]);
  c.regs[3] = static_cast<uint64_t>(g[REG_R10]);
  c.regs[4] = static_cast<uint64_t>(g[REG_R8]);
  c.regs[5] = static_cast<uint64_t>(g[REG_R9]);
  const uint32_t op = static_cast<uint32_t>(c.regs[0]) & 0xff;
  if ((op == 5 || op == 6) && s.n_events_to_write > 0 && c.regs[2] != 0) {
    std::memcpy(reinterpret_cast<void*>(c.regs[2]), s.events_to_write,
                sizeof(port_event_t) * static_cast<size_t>(s.n_events_to_write));
  }
  g[REG_RAX] = s.answer;
}

bool InstallTrap() {
  sock_filter f[] = {
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(offsetof(seccomp_data, arch))},
      {BPF_JMP | BPF_JEQ | BPF_K, 0, 3, AUDIT_ARCH_X86_64},
      {BPF_LD | BPF_W | BPF_ABS, 0, 0, static_cast<uint32_t>(offsetof(seccomp_data, nr))},
      {BPF_JMP | BPF_JEQ | BPF_K, 0, 1, 182},
      {BPF_RET | BPF_K, 0, 0, SECCOMP_RET_TRAP},
      {BPF_RET | BPF_K, 0, 0, SECCOMP_RET_ALLOW},
  };
  sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
  struct sigaction sa {};
  sa.sa_sigaction = OnSigsys;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) return false;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) return false;
  return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) == 0;
}

port_event_t Ev(int events, unsigned short source, uintptr_t object, uintptr_t user) {
  port_event_t e{};
  e.portev_events = events;
  e.portev_source = source;
  e.portev_object = object;
  e.portev_user = reinterpret_cast<void*>(user);
  return e;
}

void Record(Shared& s, int ret, unsigned nget = 0, const port_event_t* ev = nullptr, int nev = 0) {
  Shared::Result& r = s.results[s.n_results++];
  r.ret = ret;
  r.err = ret < 0 ? errno : 0;
  r.nget = nget;
  for (int i = 0; i < nev; ++i) r.ev[i] = ev[i];
}

// The child: every library call of the script, in order.
void RunScript(Shared& s) {
  int ports[8193] = {};
  int errors[8193] = {};
  // 0: port_create -> fd 5
  s.answer = 5;
  Record(s, port_create());
  // 1: port_associate, FD source, Linux bits IN|OUT|WRNORM|WRBAND|RDHUP
  s.answer = 0;
  Record(s, port_associate(5, PORT_SOURCE_FD, 7, POLLIN | POLLOUT | POLLWRNORM | POLLWRBAND | POLLRDHUP,
                           reinterpret_cast<void*>(0x1234)));
  // 2: port_associate, FILE source: events are not poll bits
  Record(s, port_associate(5, PORT_SOURCE_FILE, 0x7000, 0x2000, nullptr));
  // 3: port_get with a timeout passed by value; the kernel writes illumos bits
  s.events_to_write[0] = Ev(0x4105, PORT_SOURCE_FD, 7, 0x1234);
  s.n_events_to_write = 1;
  {
    port_event_t pe{};
    timespec ts{3, 500};
    Record(s, port_get(5, &pe, &ts), 0, &pe, 1);
  }
  // 4: port_getn, two events and ETIME (r_val2 = 62)
  s.events_to_write[1] = Ev(0x2a, PORT_SOURCE_USER, 0, 0x99);
  s.n_events_to_write = 2;
  s.answer = 2 | (int64_t{62} << 32);
  {
    port_event_t list[2] = {};
    uint_t nget = 2;
    timespec ts{0, 1000};
    int r = port_getn(5, list, 2, &nget, &ts);
    Record(s, r, nget, list, 2);
  }
  // 5: port_getn, 1 event, no ETIME
  s.n_events_to_write = 1;
  s.answer = 1;
  {
    port_event_t list[2] = {};
    uint_t nget = 1;
    int r = port_getn(5, list, 2, &nget, nullptr);
    Record(s, r, nget, list, 1);
  }
  s.n_events_to_write = 0;
  // 6: a supervisor error answer: -EBADFD
  s.answer = -EBADFD;
  Record(s, port_send(3, 0x2a, reinterpret_cast<void*>(0x42)));
  // 7: port_getn with nget == NULL: EINVAL without a system call
  Record(s, port_getn(5, nullptr, 0, nullptr, nullptr));
  // 8: a hard error from port_getn leaves *nget alone
  {
    uint_t nget = 77;
    int r = port_getn(5, nullptr, 0, &nget, nullptr);
    Record(s, r, nget);
  }
  // 9: port_alert, port_dissociate, port_send
  s.answer = 0;
  Record(s, port_alert(5, PORT_ALERT_SET, 0x77, reinterpret_cast<void*>(0xabc)));
  Record(s, port_dissociate(5, PORT_SOURCE_FD, 7));
  Record(s, port_send(5, 0x2a, reinterpret_cast<void*>(0x42)));
  // 12: port_sendn of 8193 entries: two calls (8192 + 1); each sends to all
  s.answer = 8192;
  // Both chunks get the same scripted answer; the library sums them.
  Record(s, port_sendn(ports, errors, 8193, 1, nullptr));
  // 13: port_get, zero timeout, nothing queued (count 0): *pe is the
  // program's old event, Linux bits (POLLWRNORM is illumos POLLWRBAND)
  s.n_events_to_write = 0;
  s.answer = 0;
  {
    port_event_t pe = Ev(POLLOUT | POLLWRNORM, PORT_SOURCE_FD, 9, 0x5678);
    timespec zero{0, 0};
    Record(s, port_get(5, &pe, &zero), 0, &pe, 1);
  }
  // 14: port_get, zero timeout, one event: translated
  s.events_to_write[0] = Ev(0x4105, PORT_SOURCE_FD, 7, 0x1234);
  s.n_events_to_write = 1;
  s.answer = 1;
  {
    port_event_t pe{};
    timespec zero{0, 0};
    Record(s, port_get(5, &pe, &zero), 0, &pe, 1);
  }
  s.n_events_to_write = 0;
  s.done = true;
}

class PortLibrary : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    void* m = mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(m, MAP_FAILED);
    shared_ = new (m) Shared{};
    g_shared = shared_;
    pid_t pid = fork();
    if (pid == 0) {
      if (!InstallTrap()) _exit(3);
      RunScript(*shared_);
      _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "child status " << status;
    ASSERT_TRUE(shared_->done);
  }
  static void TearDownTestSuite() { munmap(shared_, sizeof(Shared)); }

  static const TrappedCall& C(int i) { return shared_->calls[i]; }
  static const Shared::Result& R(int i) { return shared_->results[i]; }
  static uint32_t Op(int i) { return static_cast<uint32_t>(C(i).regs[0]); }
  static uint32_t Seq(int i) { return static_cast<uint32_t>(C(i).regs[0] >> 32); }

  static Shared* shared_;
};
Shared* PortLibrary::shared_ = nullptr;

TEST_F(PortLibrary, TrapsEveryCallButTheLocalEinval) {
  EXPECT_EQ(shared_->n_results, 15);
  EXPECT_EQ(shared_->n_calls, 15);  // 15 results, minus getn(NULL nget), plus a second sendn chunk
}

TEST_F(PortLibrary, CreateIsCreateNoport) {
  EXPECT_EQ(Op(0), 0x100u);
  for (int i = 1; i < 6; ++i) EXPECT_EQ(C(0).regs[i], 0u) << i;
  EXPECT_EQ(R(0).ret, 5);
}

TEST_F(PortLibrary, CallNumberInTheUpperHalfIsOddAndAdvances) {
  for (int i = 0; i < shared_->n_calls; ++i) {
    EXPECT_EQ(Seq(i) & 1, 1u) << i;
    if (i > 0) {
      EXPECT_EQ(Seq(i), Seq(i - 1) + 2) << i;
    }
  }
}

TEST_F(PortLibrary, AssociateSendsIllumosPollBits) {
  EXPECT_EQ(Op(1), 1u);
  EXPECT_EQ(C(1).regs[1], 5u);
  EXPECT_EQ(C(1).regs[2], 4u);    // PORT_SOURCE_FD
  EXPECT_EQ(C(1).regs[3], 7u);    // object
  EXPECT_EQ(C(1).regs[4], 0x4105u);  // POLLIN|POLLOUT|illumos POLLWRBAND 0x100|illumos POLLRDHUP 0x4000
  EXPECT_EQ(C(1).regs[5], 0x1234u);
  // Not an FD source: events go as given.
  EXPECT_EQ(C(2).regs[2], 7u);
  EXPECT_EQ(C(2).regs[4], 0x2000u);
}

TEST_F(PortLibrary, GetPassesTimeoutByValueAndReturnsLinuxBits) {
  EXPECT_EQ(Op(3), 5u);
  EXPECT_EQ(C(3).regs[1], 5u);
  EXPECT_NE(C(3).regs[2], 0u);  // pe
  EXPECT_EQ(C(3).regs[3], 3u);  // tv_sec
  EXPECT_EQ(C(3).regs[4], 500u);  // tv_nsec
  EXPECT_NE(C(3).regs[5], 0u);  // "has a timeout"
  EXPECT_EQ(R(3).ret, 0);
  EXPECT_EQ(R(3).ev[0].portev_events, POLLIN | POLLOUT | POLLWRBAND | POLLRDHUP);
  EXPECT_EQ(R(3).ev[0].portev_source, PORT_SOURCE_FD);
}

TEST_F(PortLibrary, GetnSplitsTheTwoResults) {
  EXPECT_EQ(Op(4), 6u);
  EXPECT_EQ(C(4).regs[3], 2u);  // max
  EXPECT_EQ(C(4).regs[4], 2u);  // *nget, by value
  EXPECT_NE(C(4).regs[5], 0u);  // timeout pointer
  EXPECT_EQ(R(4).ret, -1);
  EXPECT_EQ(R(4).err, ETIME);
  EXPECT_EQ(R(4).nget, 2u);
  EXPECT_EQ(R(4).ev[0].portev_events, POLLIN | POLLOUT | POLLWRBAND | POLLRDHUP);
  EXPECT_EQ(R(4).ev[1].portev_events, 0x2a);  // a user event: untouched
  EXPECT_EQ(R(5).ret, 0);
  EXPECT_EQ(R(5).nget, 1u);
  EXPECT_EQ(C(5).regs[5], 0u);  // NULL timeout
}

TEST_F(PortLibrary, ErrnoIsGlibcs) {
  EXPECT_EQ(R(6).ret, -1);
  EXPECT_EQ(R(6).err, EBADFD);
  EXPECT_EQ(EBADFD, 77);  // Linux's; illumos's is 81
  EXPECT_EQ(R(7).ret, -1);
  EXPECT_EQ(R(7).err, EINVAL);
  EXPECT_EQ(R(8).ret, -1);
  EXPECT_EQ(R(8).err, EBADFD);
  EXPECT_EQ(R(8).nget, 77u);  // a hard error does not update *nget
}

TEST_F(PortLibrary, AlertDissociateSend) {
  // calls: 0 create, 1-2 associate, 3 get, 4-5 getn, 6 send, 7 getn(err), 8 alert ...
  EXPECT_EQ(Op(8), 7u);
  EXPECT_EQ(C(8).regs[1], 5u);
  EXPECT_EQ(C(8).regs[2], 1u);
  EXPECT_EQ(C(8).regs[3], 0x77u);
  EXPECT_EQ(C(8).regs[4], 0xabcu);
  EXPECT_EQ(Op(9), 2u);
  EXPECT_EQ(C(9).regs[2], 4u);
  EXPECT_EQ(C(9).regs[3], 7u);
  EXPECT_EQ(Op(10), 3u);
  EXPECT_EQ(C(10).regs[2], 0x2au);
  EXPECT_EQ(C(10).regs[3], 0x42u);
}

TEST_F(PortLibrary, SendnChunksAtPortMaxList) {
  EXPECT_EQ(Op(11), 0x104u);
  EXPECT_EQ(Op(12), 0x104u);
  EXPECT_EQ(C(11).regs[3], 8192u);
  EXPECT_EQ(C(12).regs[3], 1u);
  EXPECT_EQ(C(12).regs[1] - C(11).regs[1], 8192u * sizeof(int));  // ports + 8192
  EXPECT_EQ(C(12).regs[2] - C(11).regs[2], 8192u * sizeof(int));  // errors + 8192
  EXPECT_EQ(R(12).ret, 8192 * 2);  // the sum of both answers
}

// Rule: a zero-timeout port_get that finds nothing succeeds and leaves *pe
// untouched (port.c:614-619 PORT_GET is port_getn for one event; 1284-1285
// a zero timeout does not block; 1539-1543 copyout only if there are events).
// PORT_GET answers 0 either way, so the library asks PORT_GETN(max 1, nget 1,
// zero timeout), whose count says whether an event was written.
TEST_F(PortLibrary, GetZeroTimeoutWithNothingLeavesTheEventUntouched) {
  EXPECT_EQ(Op(13), 6u);           // PORT_GETN (call 13: getn(NULL nget) made none, sendn two)
  EXPECT_NE(C(13).regs[2], 0u);    // pe: the program's
  EXPECT_EQ(C(13).regs[3], 1u);    // max
  EXPECT_EQ(C(13).regs[4], 1u);    // nget
  ASSERT_NE(C(13).regs[5], 0u);    // a zero timespec
  EXPECT_EQ(R(13).ret, 0);
  EXPECT_EQ(R(13).ev[0].portev_events, POLLOUT | POLLWRNORM);
  EXPECT_EQ(R(13).ev[0].portev_source, PORT_SOURCE_FD);
  EXPECT_EQ(R(13).ev[0].portev_object, 9u);
  EXPECT_EQ(R(13).ev[0].portev_user, reinterpret_cast<void*>(0x5678));
}

TEST_F(PortLibrary, GetZeroTimeoutWithAnEventTranslatesIt) {
  EXPECT_EQ(Op(14), 6u);
  EXPECT_EQ(R(14).ret, 0);
  EXPECT_EQ(R(14).ev[0].portev_events, POLLIN | POLLOUT | POLLWRBAND | POLLRDHUP);
  EXPECT_EQ(R(14).ev[0].portev_user, reinterpret_cast<void*>(0x1234));
}

}  // namespace
