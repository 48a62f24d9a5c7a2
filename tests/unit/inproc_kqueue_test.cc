// The FreeBSD kqueue library in this very process, served by
// libevshim-engine with no supervisor (fast mode, x86_64), as
// inproc_test.cc does for event ports: what a kevent round allocates.
#include <gtest/gtest.h>

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/event.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "shim/runtime/proc_connector.h"
#include "tests/support/counting_new.h"
#include "tests/support/fault_copy.h"
#include "tests/support/hand_overs.h"
#include "tests/support/pump_trace.h"
#include "tests/support/syscall_segments.h"

// This process's own close() and dup3() come first (before the kqueue
// library's wrappers, which they call): they count the calls made while
// g_counting is set, so a test can tell whether the engine closes or
// replaces its own descriptors through the program's close()/dup3()
// (InprocKqueueOwnDescriptors below).
namespace {
std::atomic<bool> g_counting{false};
std::atomic<int> g_counted{0};
}  // namespace

extern "C" int close(int fd) {
  using Fn = int (*)(int);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "close"));
  if (g_counting.load()) g_counted.fetch_add(1);
  return next != nullptr ? next(fd) : static_cast<int>(syscall(SYS_close, fd));
}

extern "C" int dup3(int oldfd, int newfd, int flags) noexcept {
  using Fn = int (*)(int, int, int);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "dup3"));
  if (g_counting.load()) g_counted.fetch_add(1);
  return next != nullptr ? next(oldfd, newfd, flags) : static_cast<int>(syscall(SYS_dup3, oldfd, newfd, flags));
}

// fopen (fopen64 with 64-bit offsets) counts the calls made by a thread
// other than the process's first while g_fopen_counting is set: the
// engine's idle pump must open nothing (InprocKqueueOwnDescriptors below).
namespace {
std::atomic<bool> g_fopen_counting{false};
std::atomic<int> g_fopen_counted{0};
using FopenFn = FILE* (*)(const char*, const char*);
FILE* CountedFopen(const char* name, const char* path, const char* mode) {
  const FopenFn next = reinterpret_cast<FopenFn>(dlsym(RTLD_NEXT, name));
  if (g_fopen_counting.load() && gettid() != getpid()) g_fopen_counted.fetch_add(1);
  if (next == nullptr) {
    errno = ENOSYS;
    return nullptr;
  }
  return next(path, mode);
}
}  // namespace

extern "C" FILE* CountingFopen(const char* path, const char* mode) __asm__("fopen");
extern "C" FILE* CountingFopen(const char* path, const char* mode) { return CountedFopen("fopen", path, mode); }
extern "C" FILE* CountingFopen64(const char* path, const char* mode) __asm__("fopen64");
extern "C" FILE* CountingFopen64(const char* path, const char* mode) { return CountedFopen("fopen64", path, mode); }

namespace {

__attribute__((constructor)) void PinFastMode() { setenv("EVSHIM_SUPERVISED", "0", 1); }

// Runs `round` until the engine's reused storage has grown, then counts
// what kRounds more rounds allocate.
template <typename Round>
long AllocationsIn(Round round) {
  for (int i = 0; i < 20; ++i) round();  // capacities reached
  constexpr int kRounds = 100;
  t_news = 0;
  t_count_news = true;
  for (int i = 0; i < kRounds; ++i) round();
  t_count_news = false;
  return t_news;
}

// bench_kqueue loop's round: a kevent without changes that waits and
// returns one READ event (a level knote, delivered and re-queued), then
// the token read and written again.
TEST(InprocKqueueAllocations, ReadEventRoundAllocatesNothing) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  struct kevent ch;
  EV_SET(&ch, sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  ASSERT_EQ(kevent(kq, &ch, 1, nullptr, 0, nullptr), 0);
  bool ok = true;
  const long news = AllocationsIn([&] {
    ok = ok && write(sv[1], "t", 1) == 1;
    struct kevent out[8];
    ok = ok && kevent(kq, nullptr, 0, out, 8, nullptr) == 1 && out[0].ident == uintptr_t(sv[0]) &&
         out[0].filter == EVFILT_READ && out[0].data == 1;
    char c;
    ok = ok && read(sv[0], &c, 1) == 1;
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(news, 0) << news << " allocations in 100 rounds";
  close(sv[0]);
  close(sv[1]);
  close(kq);
}

// bench_kqueue fdwait's round: EV_ADD|EV_ONESHOT on a ready pipe and the
// wait in one call; the knote is new each time and goes with its event.
TEST(InprocKqueueAllocations, OneshotAddAndWaitAllocatesNothing) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "x", 1), 1);
  bool ok = true;
  const long news = AllocationsIn([&] {
    struct kevent ch, out;
    EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
    ok = ok && kevent(kq, &ch, 1, &out, 1, nullptr) == 1 && out.ident == uintptr_t(p[0]) &&
         out.data == 1;
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(news, 0) << news << " allocations in 100 rounds";
  close(p[0]);
  close(p[1]);
  close(kq);
}

// A libevent-shaped round: the change and event lists on the heap, a
// timeout, a knote added and later deleted through the change list, a WRITE
// knote toggled (EV_ADD, EV_DELETE) as a buffered writer does.
TEST(InprocKqueueAllocations, HeapListsAndATimeoutAllocateNothing) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  auto* changes = new struct kevent[4];
  auto* events = new struct kevent[64];
  EV_SET(&changes[0], sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  ASSERT_EQ(kevent(kq, changes, 1, nullptr, 0, nullptr), 0);
  bool ok = true;
  const long news = AllocationsIn([&] {
    ok = ok && write(sv[1], "t", 1) == 1;
    const struct timespec second {1, 0};
    EV_SET(&changes[0], sv[0], EVFILT_WRITE, EV_ADD, 0, 0, nullptr);
    const int n = kevent(kq, changes, 1, events, 64, &second);
    ok = ok && n == 2;
    char c;
    ok = ok && read(sv[0], &c, 1) == 1;
    EV_SET(&changes[0], sv[0], EVFILT_WRITE, EV_DELETE, 0, 0, nullptr);
    const struct timespec zero {};
    ok = ok && kevent(kq, changes, 1, events, 64, &zero) == 0;
  });
  EXPECT_TRUE(ok);
  EXPECT_EQ(news, 0) << news << " allocations in 100 rounds";
  delete[] changes;
  delete[] events;
  close(sv[0]);
  close(sv[1]);
  close(kq);
}

// A READ knote's watch kept for its number's next knote (LinuxHost::kept_:
// an index for small numbers, a map for large ones) serves only the file
// the number names: after a raw dup2 puts an empty pipe at the number
// (the library's dup2 is interposed; the raw call is not: nothing tells
// the engine), the next knote sees that pipe, not the old one.
void KeptWatchFollowsTheFile(int kq, int number) {
  int full[2], empty[2];
  ASSERT_EQ(pipe(full), 0);
  ASSERT_EQ(pipe(empty), 0);
  ASSERT_EQ(dup2(full[0], number), number);
  ASSERT_EQ(write(full[1], "xy", 2), 2);
  const struct timespec zero {};
  for (int i = 0; i < 3; ++i) {  // the watch is kept, then kept registered
    struct kevent ch, out;
    EV_SET(&ch, number, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
    ASSERT_EQ(kevent(kq, &ch, 1, &out, 1, &zero), 1) << number << " round " << i;
    EXPECT_EQ(out.ident, uintptr_t(number));
    EXPECT_EQ(out.data, 2);
  }
  ASSERT_EQ(syscall(SYS_dup2, empty[0], number), number);
  struct kevent ch, out;
  EV_SET(&ch, number, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
  EXPECT_EQ(kevent(kq, &ch, 1, &out, 1, &zero), 0) << number << ": the old pipe's readiness";
  ASSERT_EQ(write(empty[1], "z", 1), 1);
  ASSERT_EQ(kevent(kq, nullptr, 0, &out, 1, &zero), 1) << number;
  EXPECT_EQ(out.ident, uintptr_t(number));
  EXPECT_EQ(out.data, 1);
  close(number);
  for (int fd : {full[0], full[1], empty[0], empty[1]}) close(fd);
}

TEST(InprocKqueueKeptWatch, SmallNumberFollowsTheFile) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  KeptWatchFollowsTheFile(kq, 200);
  close(kq);
}

TEST(InprocKqueueKeptWatch, LargeNumberFollowsTheFile) {
  struct rlimit rl {};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  constexpr int kNumber = (1 << 14) + 100;  // past the index (LinuxHost::KeptWatches)
  if (rl.rlim_max <= kNumber) {
    // Debian 12's guest (the VM suite) starts with a hard limit of 4096:
    // root may raise it.
    const struct rlimit raised{kNumber + 1, kNumber + 1};
    if (setrlimit(RLIMIT_NOFILE, &raised) != 0) GTEST_SKIP() << "RLIMIT_NOFILE hard limit " << rl.rlim_max;
    rl = raised;
  }
  if (rl.rlim_cur <= kNumber) {
    rl.rlim_cur = kNumber + 1;
    ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &rl), 0);
  }
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  KeptWatchFollowsTheFile(kq, kNumber);
  close(kq);
}

// A kevent on a kqueue whose knotes no host source feeds (USER and TIMER
// only) makes no look (shim/inproc/engine.cc KeventWithoutLook): the BSDs
// activate a knote when its source fires (knote_activate, OB
// kern_event.c:1732-1739; a NOTE_TRIGGER in filt_usertouch, DF
// kern_event.c:577-609), so nothing a look could find is queued on such a
// kqueue. Segments: the trigger, then the collect, each round.
constexpr int kBudgetRounds = 5;

[[noreturn]] void UserRoundsChild(bool with_pipe) {
  const int kq = kqueue();
  int p[2];
  if (kq < 0 || pipe(p) != 0) _exit(2);
  struct kevent ch[2];
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[1], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);  // never ready
  if (kevent(kq, ch, with_pipe ? 2 : 1, nullptr, 0, nullptr) != 0) _exit(3);
  for (int round = -2; round < kBudgetRounds; ++round) {  // two rounds to warm up
    if (round >= 0) syscall(SYS_getppid);  // marker
    struct kevent trig, out;
    EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
    if (kevent(kq, &trig, 1, nullptr, 0, nullptr) != 0) _exit(4);
    if (round >= 0) syscall(SYS_getppid);  // marker
    if (kevent(kq, nullptr, 0, &out, 1, nullptr) != 1 || out.filter != EVFILT_USER) _exit(5);
  }
  syscall(SYS_getppid);
  _exit(0);
}

int Looks(const std::map<long, int>& seg) {
  int n = 0;
  for (long nr : {SYS_epoll_wait, SYS_epoll_pwait, SYS_poll, SYS_ppoll}) n += seg.count(nr) ? seg.at(nr) : 0;
  return n;
}

TEST(InprocKqueueBudget, UserEventOnAKqueueWithoutHostSourcesLooksAtNothing) {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { UserRoundsChild(false); }, &segments));
  ASSERT_EQ(segments.size(), 2u * kBudgetRounds + 1);
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    EXPECT_EQ(Looks(segments[i]), 0) << "segment " << i << evshim::testing::Describe(segments[i]);
  }
}

// The same kqueue with a READ knote on a pipe: the look stays (a file that
// became ready before the trigger is queued ahead of it).
TEST(InprocKqueueBudget, UserEventOnAKqueueWithAReadKnoteStillLooks) {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { UserRoundsChild(true); }, &segments));
  ASSERT_EQ(segments.size(), 2u * kBudgetRounds + 1);
  for (size_t i = 0; i + 1 < segments.size(); i += 2) {
    EXPECT_GE(Looks(segments[i]), 1) << "round " << i / 2 << evshim::testing::Describe(segments[i]);
  }
}

// A level READ knote added while its socket is readable, the file ready
// again at every scan (the next request there before the next kevent: a
// busy server's connection). Its EV_ADD measures it and queues it without a
// registration; its first delivery registers the watch (LocalWatches::
// RegisterLevel), and from then on each round (kevent, read, write) costs
// the look's epoll_wait and the FIONREAD for `data`: no poll, no fcntl
// (before session 32 each scan measured it with a poll, and with several
// knotes an fcntl too: docs/performance.md "Session 32: a knote added on a
// ready file").
// `before`: what the program does before each kevent besides: nothing,
// open and close a file of its own (AnUnrelatedCloseCostsTheNextKeventNothing
// below), or spawn a vfork child that closes a range
// (AVforkChildsRangeCloseCostsTheNextKeventNothing).
enum class BeforeEachKevent { kNothing, kCloseAnotherFile, kVforkChildClosesARange };
[[noreturn]] void ReadyAtEveryScanChild(BeforeEachKevent before) {
  const int kq = kqueue();
  int sv[2];
  if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) _exit(2);
  if (write(sv[1], "x", 1) != 1) _exit(3);
  struct kevent ch;
  EV_SET(&ch, sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  char buf[8];
  for (int round = -2; round < kBudgetRounds; ++round) {  // two rounds to warm up
    switch (before) {
      case BeforeEachKevent::kNothing:
        break;
      case BeforeEachKevent::kCloseAnotherFile: {
        const int other = open("/dev/null", O_RDONLY);
        if (other < 0 || close(other) != 0) _exit(5);
        break;
      }
      case BeforeEachKevent::kVforkChildClosesARange: {
        const pid_t child = vfork();
        if (child == 0) {
          close_range(3, ~0u, 0);
          closefrom(3);
          _exit(0);
        }
        int status = 0;
        if (child < 0 || waitpid(child, &status, 0) != child || status != 0) _exit(5);
        break;
      }
    }
    if (round >= 0) syscall(SYS_getppid);  // marker
    struct kevent out;
    if (kevent(kq, nullptr, 0, &out, 1, nullptr) != 1 || out.data != 1) _exit(6);
    if (read(sv[0], buf, sizeof buf) != 1 || write(sv[1], "x", 1) != 1) _exit(7);
  }
  syscall(SYS_getppid);
  _exit(0);
}

TEST(InprocKqueueBudget, LevelKnoteAddedOnAReadyFileIsAnsweredByTheLooksOnceDelivered) {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { ReadyAtEveryScanChild(BeforeEachKevent::kNothing); }, &segments));
  ASSERT_EQ(segments.size(), kBudgetRounds + 1u);
  auto count = [](const std::map<long, int>& seg, long nr) { return seg.count(nr) ? seg.at(nr) : 0; };
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    const auto& seg = segments[i];
    EXPECT_EQ(count(seg, SYS_poll) + count(seg, SYS_ppoll), 0) << "round " << i << evshim::testing::Describe(seg);
    EXPECT_EQ(count(seg, SYS_fcntl), 0) << "round " << i << evshim::testing::Describe(seg);
    EXPECT_LE(count(seg, SYS_epoll_wait) + count(seg, SYS_epoll_pwait), 1) << "round " << i;
    EXPECT_EQ(count(seg, SYS_ioctl), 1) << "round " << i << ": the FIONREAD for data";
  }
}

// The same knote with the program opening and closing a file of its own
// before each kevent (a server reading a file per request): the close the
// library reports names a number the engine keeps nothing about, so the
// knote's identity answer and the kqueue's object stay kept: no
// EPOLL_CTL_MOD to confirm the file, no fstat of the kqueue (before
// session 32 each such close cost both at the next kevent:
// Engine::NoteDescriptorClosed).
// Each round of ReadyAtEveryScanChild(kBefore) confirms nothing again: no
// EPOLL_CTL_MOD, no fstat.
template <BeforeEachKevent kBefore>
void ExpectRoundsConfirmNothing() {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { ReadyAtEveryScanChild(kBefore); }, &segments));
  ASSERT_EQ(segments.size(), kBudgetRounds + 1u);
  auto count = [](const std::map<long, int>& seg, long nr) { return seg.count(nr) ? seg.at(nr) : 0; };
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    const auto& seg = segments[i];
    EXPECT_EQ(count(seg, SYS_epoll_ctl), 0) << "round " << i << evshim::testing::Describe(seg);
    EXPECT_EQ(count(seg, SYS_newfstatat) + count(seg, SYS_fstat), 0) << "round " << i << evshim::testing::Describe(seg);
  }
}

// EV_ADD|EV_ONESHOT on a ready pipe and the wait, in one kevent, again and
// again (bench_kqueue fdwait): the READ knote's watch is kept for the
// number (LinuxHost::ReleaseWatch) with its registration on, so each round
// costs the look's epoll_wait, the EPOLL_CTL_MOD that confirms the file
// (ConfirmKept) and the FIONREAD for `data`: no fstat, no poll, no fcntl,
// whichever road the release takes (docs/performance.md "Session 38:
// kqueue").
[[noreturn]] void OneshotRoundsChild() {
  const int kq = kqueue();
  int p[2];
  if (kq < 0 || pipe(p) != 0 || write(p[1], "x", 1) != 1) _exit(2);
  for (int round = -3; round < kBudgetRounds; ++round) {  // three rounds to warm up
    if (round >= 0) syscall(SYS_getppid);  // marker
    struct kevent ch, out;
    EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
    if (kevent(kq, &ch, 1, &out, 1, nullptr) != 1 || out.data != 1) _exit(3);
  }
  syscall(SYS_getppid);
  _exit(0);
}

TEST(InprocKqueueBudget, OneshotReaddedOnAReadyPipeCostsALookAConfirmationAndACount) {
  std::vector<std::map<long, int>> segments;
  ASSERT_NO_FATAL_FAILURE(evshim::testing::TraceSegments([] { OneshotRoundsChild(); }, &segments));
  ASSERT_EQ(segments.size(), kBudgetRounds + 1u);
  auto count = [](const std::map<long, int>& seg, long nr) { return seg.count(nr) ? seg.at(nr) : 0; };
  for (size_t i = 0; i + 1 < segments.size(); ++i) {
    const auto& seg = segments[i];
    EXPECT_EQ(Looks(seg), 1) << "round " << i << evshim::testing::Describe(seg);
    EXPECT_EQ(count(seg, SYS_epoll_ctl), 1) << "round " << i << evshim::testing::Describe(seg);
    EXPECT_EQ(count(seg, SYS_ioctl), 1) << "round " << i << evshim::testing::Describe(seg);
    EXPECT_EQ(count(seg, SYS_newfstatat) + count(seg, SYS_fstat) + count(seg, SYS_fcntl), 0)
        << "round " << i << evshim::testing::Describe(seg);
  }
}

TEST(InprocKqueueBudget, AnUnrelatedCloseCostsTheNextKeventNothing) {
  ExpectRoundsConfirmNothing<BeforeEachKevent::kCloseAnotherFile>();
}

// The same knote with the program spawning a vfork child before each
// kevent that closes a range of its numbers (CPython's subprocess does at
// every spawn: close_range in its vfork child). Linux's vfork copies the
// descriptor table (as illumos's and the BSDs' do): the child's closes are
// its own, and the parent's numbers still name the same files, so the next
// kevent confirms nothing again: no EPOLL_CTL_MOD, no fstat
// (poll_settle.h, settle_note_range_closed; before session 33 the child's
// range made the parent's engine check every kept answer again).
TEST(InprocKqueueBudget, AVforkChildsRangeCloseCostsTheNextKeventNothing) {
  ExpectRoundsConfirmNothing<BeforeEachKevent::kVforkChildClosesARange>();
}

// Without the look, a timer that expired before a NOTE_TRIGGER is still
// queued ahead of it (its callout ran first: filt_timerexpire activates it
// then; the engine catches due deadlines up by the clock), and a READ
// knote added later to such a kqueue is measured at its registration.
TEST(InprocKqueue, UserOnlyKqueueKeepsTheOrderOfATimerDueBeforeTheTrigger) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  struct kevent ch[2];
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[1], 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 1, nullptr);  // 1 ms
  ASSERT_EQ(kevent(kq, ch, 2, nullptr, 0, nullptr), 0);
  const struct timespec ten_ms {0, 10 * 1000 * 1000};
  nanosleep(&ten_ms, nullptr);
  struct kevent trig, out[4];
  EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
  ASSERT_EQ(kevent(kq, &trig, 1, nullptr, 0, nullptr), 0);
  ASSERT_EQ(kevent(kq, nullptr, 0, out, 4, nullptr), 2);
  EXPECT_EQ(out[0].filter, EVFILT_TIMER);
  EXPECT_EQ(out[0].ident, 7u);
  EXPECT_EQ(out[1].filter, EVFILT_USER);
  int p[2];
  ASSERT_EQ(pipe(p), 0);
  ASSERT_EQ(write(p[1], "xyz", 3), 3);
  EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  const struct timespec zero {};
  ASSERT_EQ(kevent(kq, ch, 1, out, 4, &zero), 1);
  EXPECT_EQ(out[0].filter, EVFILT_READ);
  EXPECT_EQ(out[0].data, 3);
  close(p[0]);
  close(p[1]);
  close(kq);
}

// A kevent that waits on such a kqueue, with no look before it, is still
// answered by its timer when it expires and by a NOTE_TRIGGER from
// another thread.
TEST(InprocKqueue, WaitOnAUserOnlyKqueueEndsAtItsTimerAndAtATrigger) {
  const int kq = kqueue();
  ASSERT_GE(kq, 0);
  struct kevent ch[2], out;
  EV_SET(&ch[0], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[1], 7, EVFILT_TIMER, EV_ADD | EV_ONESHOT, 0, 20, nullptr);  // 20 ms
  ASSERT_EQ(kevent(kq, ch, 2, nullptr, 0, nullptr), 0);
  ASSERT_EQ(kevent(kq, nullptr, 0, &out, 1, nullptr), 1);  // waits for the timer
  EXPECT_EQ(out.filter, EVFILT_TIMER);
  std::thread trigger([kq] {
    const struct timespec ten_ms {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, nullptr);
    struct kevent trig;
    EV_SET(&trig, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
    EXPECT_EQ(kevent(kq, &trig, 1, nullptr, 0, nullptr), 0);
  });
  ASSERT_EQ(kevent(kq, nullptr, 0, &out, 1, nullptr), 1);  // waits for the trigger
  EXPECT_EQ(out.filter, EVFILT_USER);
  trigger.join();
  close(kq);
}

// The engine's own descriptors go through neither the program's close()
// nor its dup3(): those are the foreign library's wrappers, which report a
// close of a number a knote once named (its hint, set at EV_ADD and kept
// by a raw close) to the engine, on the engine's own thread. The idle pump
// holds the engine's lock while it looks: such a report from it waited for
// that lock for ever, and every later call with it (found in the VM: the
// rare hang of freebsd_oneshot_readd_exact, docs/vm-test.md). Each child
// runs in its own process, ended after kChildSeconds if it hangs.
constexpr int kChildSeconds = 20;

// The child's exit status, or -1 if it did not end in time (then killed).
int RunChild(void (*child)()) {
  const pid_t pid = fork();
  if (pid < 0) return -2;
  if (pid == 0) {
    child();
    _exit(0);
  }
  for (int i = 0; i < kChildSeconds * 100; ++i) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) {
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    const struct timespec ten_ms {0, 10 * 1000 * 1000};
    nanosleep(&ten_ms, nullptr);
  }
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  return -1;
}

// More ready knotes than the event list holds (64 and more: the look
// reads its epoll 64 reports at a time): a kevent with a zero timeout
// returns a full list, and the next one the rest, each knote once, as on
// the BSDs (kqueue_scan takes at most nevents, the others stay queued).
// Every kevent of libevent's test/bench -a 100 spun for ever in fast mode.
// Exit 0, or the step that failed.
void ManyReadyKnotes() {
  constexpr int kPairs = 100;
  const int kq = kqueue();
  if (kq < 0) _exit(1);
  // All knotes in one change list, then every socket made readable: one
  // look then finds them all ready.
  std::vector<int> readers, writers;
  std::vector<struct kevent> changes(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0) _exit(2);
    EV_SET(&changes[i], sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
    readers.push_back(sv[0]);
    writers.push_back(sv[1]);
  }
  if (kevent(kq, changes.data(), kPairs, nullptr, 0, nullptr) != 0) _exit(3);
  for (const int w : writers) {
    if (write(w, "x", 1) != 1) _exit(4);
  }
  const struct timespec zero {};
  struct kevent out[64];
  std::vector<uintptr_t> seen;
  for (const int want : {64, kPairs - 64}) {
    if (kevent(kq, nullptr, 0, out, 64, &zero) != want) _exit(5);
    for (int i = 0; i < want; ++i) {
      char c;
      if (out[i].filter != EVFILT_READ || out[i].data != 1) _exit(6);
      if (read(static_cast<int>(out[i].ident), &c, 1) != 1) _exit(7);
      seen.push_back(out[i].ident);
    }
  }
  std::sort(seen.begin(), seen.end());
  std::vector<uintptr_t> all(readers.begin(), readers.end());
  std::sort(all.begin(), all.end());
  if (seen != all) _exit(8);
  if (kevent(kq, nullptr, 0, out, 64, &zero) != 0) _exit(9);
}

TEST(InprocKqueue, KeventWithMoreReadyKnotesThanItsListReturnsThemAll) {
  EXPECT_EQ(RunChild(ManyReadyKnotes), 0) << "-1: the kevent did not return (killed after "
                                          << kChildSeconds << " s)";
}

// A raw close of a number whose kept READ watch has its registration on,
// with the file (ready) kept open elsewhere: the next change finds the
// number closed (EBADF) and the record dies, and its registration lingers
// in the look epoll. The next look renews that epoll (LocalWatches::
// RenewLevelEpoll), whose fresh epoll takes the lowest free number: the
// closed one, still hinted. `idle`: the program then stays out of the
// engine, so the look is the idle pump's (1 ms after the last call);
// otherwise the next kevent's own. Exit 10 + n: n calls of close()/dup3()
// during the renewal.
void RenewalAfterARawClose(bool idle) {
  const int kq = kqueue();
  int p[2];
  if (kq < 0 || pipe(p) != 0 || write(p[1], "xy", 2) != 2) _exit(2);
  // The pump starts on demand (docs/design.md "The idle pump on demand"):
  // a poll through the library, before anything this test watches.
  if (idle && evshim::testing::WaitForThePump(kq) == 0) _exit(8);
  const struct timespec zero {};
  struct kevent ch, out;
  EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
  for (int i = 0; i < 3; ++i) {  // the number's watch kept, its registration on from the second
    if (kevent(kq, &ch, 1, &out, 1, &zero) != 1 || out.data != 2) _exit(3);
  }
  if (dup(p[0]) < 0) _exit(4);
  g_counting = true;
  if (syscall(SYS_close, p[0]) != 0) _exit(5);
  if (kevent(kq, &ch, 1, &out, 1, &zero) != 1 || !(out.flags & EV_ERROR) || out.data != EBADF) _exit(6);
  if (idle) {
    const struct timespec hundred_ms {0, 100 * 1000 * 1000};
    nanosleep(&hundred_ms, nullptr);
  }
  if (kevent(kq, nullptr, 0, &out, 1, &zero) != 0) _exit(7);
  g_counting = false;
  const int n = g_counted.load();
  _exit(n == 0 ? 0 : 10 + std::min(n, 100));
}

TEST(InprocKqueueOwnDescriptors, IdlePumpRenewingTheLookEpollAfterARawCloseDoesNotHang) {
  const int status = RunChild([] { RenewalAfterARawClose(true); });
  EXPECT_NE(status, -1) << "the kevent after the idle pump's renewal never returned";
  EXPECT_EQ(status, 0) << "exit 10 + n: n calls of close()/dup3() from the engine's renewal";
}

TEST(InprocKqueueOwnDescriptors, RenewalAtACallClosesNothingThroughTheLibrary) {
  const int status = RunChild([] { RenewalAfterARawClose(false); });
  EXPECT_NE(status, -1) << "the renewal's kevent never returned";
  EXPECT_EQ(status, 0) << "exit 10 + n: n calls of close()/dup3() from the engine's renewal";
}

// The idle pump makes no descriptor: it runs while the program makes
// system calls of its own, and a descriptor it made would take the lowest
// free number, which the program may be about to reuse (close(n) then
// dup2(x, n): in the VM the scenario's raw dup3 met the pump's fresh epoll
// at its number). A renewal the pump meets is owed to the next call.
//
// The descriptors open now, by number: fcntl only (it makes none).
std::vector<int> OpenNumbers() {
  std::vector<int> open;
  for (int fd = 0; fd < 1024; ++fd) {
    if (fcntl(fd, F_GETFD) != -1) open.push_back(fd);
  }
  return open;
}

// Whether an epoll of this process still holds a registration of number
// `fd` for the file of inode `ino` (the lingering one: /proc/self/fdinfo).
// Closes with the system call: a close() through the library would make
// the engine forget the numbers it knows (and the next call look).
bool SomeEpollHolds(int fd, ino_t ino) {
  char want[64];
  std::snprintf(want, sizeof want, "ino:%llx ", static_cast<unsigned long long>(ino));
  bool found = false;
  for (int n : OpenNumbers()) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/fdinfo/%d", n);
    const int info = open(path, O_RDONLY | O_CLOEXEC);
    if (info < 0) continue;
    static char text[1 << 16];
    size_t len = 0;
    ssize_t got;
    while (len < sizeof text - 1 && (got = read(info, text + len, sizeof text - 1 - len)) > 0) len += static_cast<size_t>(got);
    text[len] = '\0';
    syscall(SYS_close, info);
    for (char* line = text; line != nullptr && *line != '\0';) {
      char* nl = std::strchr(line, '\n');
      if (nl != nullptr) *nl = '\0';
      int tfd = -1;
      if (std::sscanf(line, "tfd: %d ", &tfd) == 1 && tfd == fd && std::strstr(line, want) != nullptr) found = true;
      line = nl != nullptr ? nl + 1 : nullptr;
    }
  }
  return found;
}

// RenewalAfterARawClose's start: a READ knote kept on a pipe's number, the
// number raw-closed with the (ready) pipe kept open elsewhere, so the
// record dies and its level registration lingers in the look epoll. Then
// the pipe's write end is closed (the system call: no engine call), so
// that the lingering registration reports whatever state the rounds left
// it in: on (level, EPOLLIN: it reports at every look), or switched off (a
// mask-less one-shot registration, which reports nothing but a hang-up,
// once). Which of the two depends on when the idle pump looked between the
// rounds; without the hang-up the second reports nothing and no look
// meets it (seen in CI, 2026-12-04: the tests then found nothing renewed).
// Returns the closed number; the pipe's inode in `*ino`.
int LeaveALingeringRegistration(int kq, ino_t* ino) {
  int p[2];
  if (pipe(p) != 0 || write(p[1], "xy", 2) != 2) _exit(2);
  struct stat st {};
  if (fstat(p[0], &st) != 0) _exit(2);
  *ino = st.st_ino;
  const struct timespec zero {};
  struct kevent ch, out;
  EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
  for (int i = 0; i < 3; ++i) {  // the number's watch kept, its registration on from the second
    if (kevent(kq, &ch, 1, &out, 1, &zero) != 1 || out.data != 2) _exit(3);
  }
  if (fcntl(p[0], F_DUPFD_CLOEXEC, 100) < 0) _exit(4);  // the file open elsewhere, above the numbers looked at
  if (syscall(SYS_close, p[0]) != 0) _exit(5);
  if (kevent(kq, &ch, 1, &out, 1, &zero) != 1 || !(out.flags & EV_ERROR) || out.data != EBADF) _exit(6);
  if (syscall(SYS_close, p[1]) != 0) _exit(7);  // a hang-up: the lingering registration reports
  return p[0];
}

// Exit 10: the idle pump renewed (the lingering registration is gone
// without a call); 11: a descriptor appeared or went meanwhile; 12: the
// lowest free number changed; 13: the next call did not renew.
void PumpMakesNoDescriptor() {
  const int kq = kqueue();
  // A kqueue with only a USER knote: its retrieval makes no look of its
  // own (Engine::KeventWithoutLook).
  const int user_kq = kqueue();
  if (kq < 0 || user_kq < 0) _exit(2);
  struct kevent user;
  EV_SET(&user, 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  if (kevent(user_kq, &user, 1, nullptr, 0, nullptr) != 0) _exit(2);
  const struct timespec zero {};
  struct kevent out;
  if (kevent(user_kq, nullptr, 0, &out, 1, &zero) != 0) _exit(2);  // the engine knows the number now
  // The pump starts on demand: a poll through the library starts it.
  evshim::testing::PollOnceThroughTheLibrary(kq);
  ino_t ino = 0;
  const int closed = LeaveALingeringRegistration(kq, &ino);
  const std::vector<int> before = OpenNumbers();
  int lowest_free = 0;
  while (std::find(before.begin(), before.end(), lowest_free) != before.end()) ++lowest_free;
  if (lowest_free > closed) _exit(8);
  // No engine call: the idle pump looks (1 ms after the last call) and
  // meets the lingering registration, again and again.
  const struct timespec hundred_ms {0, 100 * 1000 * 1000};
  nanosleep(&hundred_ms, nullptr);
  const std::vector<int> after = OpenNumbers();
  if (!SomeEpollHolds(closed, ino)) _exit(10);
  if (after != before) _exit(11);
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd != lowest_free) _exit(12);
  if (syscall(SYS_close, fd) != 0) _exit(9);
  // The next call renews, even one that otherwise makes no look.
  if (kevent(user_kq, nullptr, 0, &out, 1, &zero) != 0) _exit(9);
  if (SomeEpollHolds(closed, ino)) _exit(13);
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpMakesNoDescriptor) {
  const int status = RunChild(PumpMakesNoDescriptor);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: the idle pump renewed the look epoll; 11: descriptors changed without a call; "
                          "12: the lowest free number changed; 13: the next call did not renew";
}

// While the renewal is owed, the lingering registration keeps the look
// epoll readable: the idle pump must neither spin on it nor stop serving.
// A level knote on another pipe that fires meanwhile reaches a program
// that waits outside the engine (the kqueue's descriptor in an epoll of its
// own, waited on by the raw system call: no settle, no look) within a
// bounded time, through the pump. Exit 10: the process used more than
// 50 ms of CPU in 200 ms of idleness (a pump that spins uses them all);
// 11: the program's epoll_wait did not see the kqueue readable within 1 s;
// 12: the knote's event was not there; 13: a descriptor appeared.
void PumpServesWhileARenewalIsOwed() {
  const int kq = kqueue();
  int q[2];
  if (kq < 0 || pipe(q) != 0) _exit(2);
  const struct timespec zero {};
  struct kevent ch, out;
  EV_SET(&ch, q[0], EVFILT_READ, EV_ADD, 0, 0, reinterpret_cast<void*>(7));
  if (kevent(kq, &ch, 1, nullptr, 0, &zero) != 0) _exit(3);  // not ready: armed
  // Given to epoll_ctl through the library, the kqueue's readiness byte is
  // kept exact (the epoll may be waited on by a raw system call: "The
  // readiness byte on demand", polled objects).
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ev) != 0) _exit(4);
  ino_t ino = 0;
  const int closed = LeaveALingeringRegistration(kq, &ino);
  const struct timespec fifty_ms {0, 50 * 1000 * 1000};
  nanosleep(&fifty_ms, nullptr);  // the pump has met the lingering registration
  const std::vector<int> before = OpenNumbers();
  rusage r0{}, r1{};
  getrusage(RUSAGE_SELF, &r0);
  const struct timespec two_hundred_ms {0, 200 * 1000 * 1000};
  nanosleep(&two_hundred_ms, nullptr);
  getrusage(RUSAGE_SELF, &r1);
  auto us = [](const rusage& r) {
    return (r.ru_utime.tv_sec + r.ru_stime.tv_sec) * 1000000L + r.ru_utime.tv_usec + r.ru_stime.tv_usec;
  };
  const long cpu_us = us(r1) - us(r0);
  std::fprintf(stderr, "cpu over 200 ms of idleness with the renewal owed: %ld us\n", cpu_us);
  if (cpu_us > 50 * 1000) _exit(10);
  if (OpenNumbers() != before) _exit(13);
  if (write(q[1], "z", 1) != 1) _exit(5);
  // A raw wait: the library's epoll_wait would settle (a look, which
  // renews) because the epoll holds the kqueue.
  epoll_event got{};
  const long n = syscall(SYS_epoll_pwait, ep, &got, 1, 1000, nullptr, 8);
  if (n != 1) _exit(11);
  if (!SomeEpollHolds(closed, ino)) _exit(14);  // still owed: no call yet
  if (kevent(kq, nullptr, 0, &out, 1, &zero) != 1 || out.ident != static_cast<uintptr_t>(q[0]) ||
      out.udata != reinterpret_cast<void*>(7)) {
    _exit(12);
  }
  if (SomeEpollHolds(closed, ino)) _exit(15);  // that call renewed
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpServesWithoutSpinningWhileARenewalIsOwed) {
  const int status = RunChild(PumpServesWhileARenewalIsOwed);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: the pump spun; 11: the kqueue's readiness did not reach the program's epoll_wait; "
                          "12: the event was missing; 13: descriptors changed; 14: renewed without a call; "
                          "15: the call did not renew";
}

// The exit of a watched process (EVFILT_PROC) routed by the idle pump:
// its status used to come from /proc/PID/stat, a descriptor opened on the
// pump. A child's status now comes from its pidfd (waitid, WNOWAIT), so
// the exit still reaches a program that waits outside the engine; another
// process's is left to the next call. Without the process connector (as
// for a program without CAP_NET_ADMIN), so the status is the host's to
// find. Exit 10: the pump opened a file; 11: the exit did not reach the
// program's raw epoll_pwait within 2 s; 12: the event or its status was
// wrong.
void ChildExitRoutedByThePump() {
  setenv("EVSHIM_NO_PROC_CONNECTOR", "1", 1);
  const int kq = kqueue();
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  int go[2];
  if (kq < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ev) != 0 || pipe(go) != 0) _exit(2);
  // The child exits once told to, after the watch began: one that exited
  // before (a fixed pause, outrun by a loaded machine) is reported by the
  // EV_ADD itself (a zombie's exit, at once), and the pump has no part.
  const pid_t child = fork();
  if (child < 0) _exit(2);
  if (child == 0) {
    char c;
    (void)!read(go[0], &c, 1);
    _exit(3);
  }
  struct kevent ch, out;
  EV_SET(&ch, child, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, nullptr);
  if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  g_fopen_counting = true;
  if (write(go[1], "g", 1) != 1) _exit(5);
  epoll_event got{};
  const long n = syscall(SYS_epoll_pwait, ep, &got, 1, 2000, nullptr, 8);
  g_fopen_counting = false;
  if (g_fopen_counted.load() != 0) _exit(10);
  if (n != 1) _exit(11);
  const struct timespec zero {};
  if (kevent(kq, nullptr, 0, &out, 1, &zero) != 1 || out.ident != static_cast<uintptr_t>(child) ||
      !(out.fflags & NOTE_EXIT) || out.data != (3 << 8)) {
    _exit(12);
  }
  int status = 0;
  if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 3) _exit(13);
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpTakesAChildsExitStatusWithoutADescriptor) {
  const int status = RunChild(ChildExitRoutedByThePump);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: the idle pump opened a file; 11: the exit did not reach the raw epoll_pwait; "
                          "12: the event was wrong; 13: the child's status was taken";
}

// A program that only calls kevent (READ, USER and TIMER knotes) stays
// single-threaded (docs/design.md "The idle pump on demand"); giving its
// kqueue to an epoll through the library starts the pump (the byte must
// follow the readiness for a raw epoll_wait). Exit 10: a second thread
// before the epoll_ctl; 11: none after it.
void OnlyCallsThenEpollCtl() {
  const int kq = kqueue();
  int p[2];
  if (kq < 0 || pipe(p) != 0) _exit(2);
  struct kevent ch[3], out[3];
  EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  EV_SET(&ch[1], 1, EVFILT_USER, EV_ADD | EV_CLEAR, 0, 0, nullptr);
  EV_SET(&ch[2], 2, EVFILT_TIMER, EV_ADD, 0, 1, nullptr);  // every millisecond
  if (kevent(kq, ch, 3, nullptr, 0, nullptr) != 0) _exit(3);
  for (int i = 0; i < 100; ++i) {
    if (write(p[1], "x", 1) != 1) _exit(4);
    struct kevent trigger;
    EV_SET(&trigger, 1, EVFILT_USER, 0, NOTE_TRIGGER, 0, nullptr);
    if (kevent(kq, &trigger, 1, out, 3, nullptr) < 2) _exit(5);
    char c;
    if (read(p[0], &c, 1) != 1) _exit(6);
  }
  usleep(20 * 1000);
  if (evshim::testing::OtherThread() != 0) _exit(10);
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ev) != 0) _exit(7);
  if (evshim::testing::WaitForAnotherThread() == 0) _exit(11);
  _exit(0);
}

TEST(InprocKqueuePump, AProgramThatOnlyCallsStaysSingleThreadedUntilItsKqueueIsPolled) {
  const int status = RunChild(OnlyCallsThenEpollCtl);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: a second thread before the epoll_ctl; 11: no pump after it";
}

// A process watch starts the idle pump (docs/design.md "The idle pump on
// demand"): a child that exits while the program makes no call has its
// status taken then, before the program reaps it. A program that reaps
// first and asks kevent after still gets the real status: on kernels
// before 6.15, without the connector, only the pump's look at the zombie
// has it (after the reap a status can be had only from PIDFD_INFO_EXIT,
// Linux 6.15). Exit 10: no second thread after the EV_ADD; 11: the
// event's status was not the child's; 12: no event.
void ChildReapedBeforeTheCallKeepsItsStatus() {
  setenv("EVSHIM_NO_PROC_CONNECTOR", "1", 1);
  const int kq = kqueue();
  int go[2];
  if (kq < 0 || pipe(go) != 0) _exit(2);
  const pid_t child = fork();
  if (child < 0) _exit(2);
  if (child == 0) {
    close(go[1]);  // the parent's exit ends the read
    char c;
    (void)!read(go[0], &c, 1);
    _exit(3);
  }
  struct kevent ch, out;
  EV_SET(&ch, child, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, nullptr);
  if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  if (evshim::testing::OtherThread() == 0) _exit(10);
  if (write(go[1], "g", 1) != 1) _exit(5);
  // The zombie, seen by the pump; then the program reaps it.
  siginfo_t si{};
  if (waitid(P_PID, static_cast<id_t>(child), &si, WEXITED | WNOWAIT) != 0) _exit(6);
  usleep(50 * 1000);
  int status = 0;
  if (waitpid(child, &status, 0) != child) _exit(7);
  const struct timespec zero {};
  if (kevent(kq, nullptr, 0, &out, 1, &zero) != 1 || out.ident != static_cast<uintptr_t>(child) ||
      !(out.fflags & NOTE_EXIT)) {
    _exit(12);
  }
  if (out.data != (3 << 8)) _exit(11);
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, ChildReapedBeforeTheCallKeepsItsStatus) {
  const int status = RunChild(ChildReapedBeforeTheCallKeepsItsStatus);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: no idle pump after the watch began; 11: the event's status was not the child's; "
                          "12: no event";
}

// The lowest number not in `open`.
int LowestFree(const std::vector<int>& open) {
  int n = 0;
  while (std::find(open.begin(), open.end(), n) != open.end()) ++n;
  return n;
}

// Whether the idle pump made no descriptor between the two listings: none
// appeared (one the pump closed, its own, may have gone), and the lowest
// free number is the one the listings say (a descriptor made and closed
// again, or made at a number a closed one left, would show there): an
// open() takes it. Closed with the system call (no engine call).
bool NothingMadeBetween(const std::vector<int>& before, const std::vector<int>& after) {
  for (int fd : after) {
    if (std::find(before.begin(), before.end(), fd) == before.end()) return false;
  }
  const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0) syscall(SYS_close, fd);
  return fd == LowestFree(after);
}

// The exit of a watched process that is not the program's child, while
// it is a zombie (its parent has not reaped it), without the process
// connector: the program waits outside the engine (a raw epoll_pwait on
// the kqueue's descriptor: no settle, no call), so only the idle pump can
// report it. The status is then only in /proc/PID/stat (field 52), which
// the pump may not open; the call that began the watch keeps that file
// open for a non-child (LinuxHost::WatchProcess), and the pump preads it.
// This holds on every kernel, 6.1 as 6.18: a zombie's /proc/PID/stat is
// as old as /proc, and PIDFD_GET_INFO's PIDFD_INFO_EXIT (Linux 6.15) has
// no part in it, as the kernel records the exit for the pidfd only when
// the process is reaped (pidfs_exit, from release_task): while it is a
// zombie that ioctl answers no exit on 6.18 either (ENOTTY on 6.1). So
// before the descriptor was kept the exit was left to the program's next
// call, on every kernel, and the wait below timed out.
// Exit 10: the pump opened a file (fopen); 11: the exit did not reach the
// raw epoll_pwait within 2 s; 12: the event or its status was wrong; 13:
// the pump made a descriptor (a new number, or the lowest free one taken).
void UnreapedNonChildExitRoutedByThePump() {
  setenv("EVSHIM_NO_PROC_CONNECTOR", "1", 1);
  const int kq = kqueue();
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  int go[2], says[2], reap[2];
  if (kq < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ev) != 0 || pipe(go) != 0 || pipe(says) != 0 ||
      pipe(reap) != 0) {
    _exit(2);
  }
  const pid_t middle = fork();
  if (middle < 0) _exit(2);
  if (middle == 0) {
    // Forks the watched process, which exits with 5 once told to, and
    // reaps it only once told to (a zombie meanwhile, not the watcher's
    // child).
    const pid_t watched = fork();
    if (watched == 0) {
      char c;
      (void)!read(go[0], &c, 1);
      _exit(5);
    }
    if (write(says[1], &watched, sizeof watched) != sizeof watched) _exit(1);
    char c;
    (void)!read(reap[0], &c, 1);
    waitpid(watched, nullptr, 0);
    _exit(0);
  }
  pid_t watched = 0;
  if (read(says[0], &watched, sizeof watched) != sizeof watched) _exit(3);
  struct kevent ch, out;
  EV_SET(&ch, watched, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, nullptr);
  if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  const std::vector<int> before = OpenNumbers();
  g_fopen_counting = true;
  if (write(go[1], "g", 1) != 1) _exit(5);
  epoll_event got{};
  const long n = syscall(SYS_epoll_pwait, ep, &got, 1, 2000, nullptr, 8);
  g_fopen_counting = false;
  const int opened = g_fopen_counted.load();
  const bool nothing_made = NothingMadeBetween(before, OpenNumbers());
  const struct timespec zero {};
  const int taken = kevent(kq, nullptr, 0, &out, 1, &zero);
  (void)!write(reap[1], "r", 1);
  waitpid(middle, nullptr, 0);
  if (opened != 0) _exit(10);
  if (n != 1) _exit(11);
  if (taken != 1 || out.ident != static_cast<uintptr_t>(watched) || !(out.fflags & NOTE_EXIT) || out.data != (5 << 8)) {
    std::fprintf(stderr, "taken %d, data %ld\n", taken, static_cast<long>(out.data));
    _exit(12);
  }
  if (!nothing_made) _exit(13);
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpReportsAnUnreapedNonChildsExitWithItsStatus) {
  const int status = RunChild(UnreapedNonChildExitRoutedByThePump);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: the idle pump opened a file; 11: the exit did not reach the raw epoll_pwait; "
                          "12: the event or its status was wrong; 13: the idle pump made a descriptor";
}

// The context switches of this process's threads other than the first
// (the engine's idle pump): how often the pump woke up.
long OtherThreadsSwitches() {
  long total = 0;
  DIR* dir = opendir("/proc/self/task");
  if (dir == nullptr) return -1;
  while (dirent* e = readdir(dir)) {
    const long tid = std::atol(e->d_name);
    if (tid <= 0 || tid == getpid()) continue;
    char path[64];
    std::snprintf(path, sizeof path, "/proc/self/task/%ld/status", tid);
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    char text[4096];
    const ssize_t n = read(fd, text, sizeof text - 1);
    syscall(SYS_close, fd);
    if (n <= 0) continue;
    text[n] = '\0';
    for (const char* key : {"voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:"}) {
      if (const char* at = std::strstr(text, key)) total += std::atol(at + std::strlen(key));
    }
  }
  closedir(dir);
  return total;
}

// A listener of the process connector of its own (as root), or -1: it
// counts the machine's process events, each of which wakes the idle pump.
int ProcessEventListener() {
  const int fd = socket(PF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_CONNECTOR);
  if (fd < 0) return -1;
  if (!evshim::shim::ListenToProcessEvents(fd)) {
    syscall(SYS_close, fd);
    return -1;
  }
  return fd;
}

// The messages waiting on the listener (read: counted once).
long ProcessEvents(int fd) {
  long count = 0;
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n < 0 && errno == ENOBUFS) {
      count += 1000;  // lost some: many
      continue;
    }
    if (n <= 0) return count;
    for (nlmsghdr* nh = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(nh, static_cast<uint32_t>(n)); nh = NLMSG_NEXT(nh, n)) {
      ++count;
    }
  }
}

// NOTE_TRACK with the process connector: the knote on a new process is
// registered when the connector's fork message is read. The program waits
// outside the engine (a raw epoll_pwait on the kqueue's descriptor), so
// the idle pump reads that message; its watch of the new process used to
// open a pidfd there (and read /proc/PID/stat), a descriptor at the lowest
// free number made while the program makes system calls of its own. The
// pidfd is owed to the next call now (LinuxHost::OpenOwedPidfds), and the
// exit message (the pump reads it too) carries the status.
// A child C of the program, watched with NOTE_TRACK|NOTE_EXIT|NOTE_FORK,
// forks G1, which exits with 5 at once (a zombie: C reaps nothing until
// told), and G2, which exits with 6 once told to. Exit 77: no connector
// (skipped); 10: the pump opened a file (fopen); 11: the forks did not
// reach the raw epoll_pwait within 2 s; 12: the pump made a descriptor;
// 13: the next kevent's events were wrong (NOTE_FORK on C, NOTE_CHILD on
// G1 and G2, G1's NOTE_EXIT with 5 << 8); 14: G2's exit, after the call
// (its pidfd open then), did not reach the raw epoll_pwait; 15: its event
// was wrong; 16: the pump woke more than 20 times in 100 ms meanwhile
// (beyond twice the machine's process events then).
void TrackedForkRoutedByThePump() {
  unsetenv("EVSHIM_NO_PROC_CONNECTOR");
  const int kq = kqueue();
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  int go[2], says[2], g2go[2], reap[2];
  if (kq < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ev) != 0 || pipe(go) != 0 || pipe(says) != 0 ||
      pipe(g2go) != 0 || pipe(reap) != 0) {
    _exit(2);
  }
  const pid_t c = fork();
  if (c < 0) _exit(2);
  if (c == 0) {
    char ch;
    (void)!read(go[0], &ch, 1);
    const pid_t g1 = fork();
    if (g1 == 0) _exit(5);
    const pid_t g2 = fork();
    if (g2 == 0) {
      (void)!read(g2go[0], &ch, 1);
      _exit(6);
    }
    const pid_t g[2] = {g1, g2};
    if (write(says[1], g, sizeof g) != sizeof g) _exit(1);
    (void)!read(reap[0], &ch, 1);
    waitpid(g1, nullptr, 0);
    waitpid(g2, nullptr, 0);
    _exit(0);
  }
  struct kevent chg, out;
  EV_SET(&chg, c, EVFILT_PROC, EV_ADD, NOTE_TRACK | NOTE_EXIT | NOTE_FORK, 0, reinterpret_cast<void*>(0x55));
  if (kevent(kq, &chg, 1, nullptr, 0, nullptr) != 0) {
    const int err = errno;
    kill(c, SIGKILL);
    waitpid(c, nullptr, 0);
    if (err == EOPNOTSUPP) {
      std::fprintf(stderr, "NOTE_TRACK refused (EOPNOTSUPP): no process connector (it needs CAP_NET_ADMIN)\n");
      _exit(77);
    }
    _exit(3);
  }
  const int listener = ProcessEventListener();
  if (listener < 0) _exit(3);
  const std::vector<int> before = OpenNumbers();
  g_fopen_counting = true;
  if (write(go[1], "g", 1) != 1) _exit(4);
  pid_t g[2] = {0, 0};
  if (read(says[0], g, sizeof g) != sizeof g) _exit(4);
  epoll_event got{};
  const long n = syscall(SYS_epoll_pwait, ep, &got, 1, 2000, nullptr, 8);
  const struct timespec fifty_ms {0, 50 * 1000 * 1000};
  nanosleep(&fifty_ms, nullptr);  // G1's exit message: read by the pump too
  // The owed pidfds keep nothing readable: the pump sleeps in its poll
  // meanwhile, instead of looking once a millisecond (about 100 wake-ups
  // in 100 ms) as for work that does. It still wakes for the machine's
  // process events (the connector is in its loop): counted beside it.
  ProcessEvents(listener);
  const long switches = OtherThreadsSwitches();
  const struct timespec hundred_ms {0, 100 * 1000 * 1000};
  nanosleep(&hundred_ms, nullptr);
  const long pump_wakeups = OtherThreadsSwitches() - switches;
  const long machine_events = ProcessEvents(listener);
  g_fopen_counting = false;
  const int opened = g_fopen_counted.load();
  const bool nothing_made = NothingMadeBetween(before, OpenNumbers());
  // The next call: every event there is.
  const struct timespec zero {};
  std::map<uintptr_t, unsigned> flags;
  std::map<uintptr_t, intptr_t> data;
  for (int i = 0; i < 10 && kevent(kq, nullptr, 0, &out, 1, &zero) == 1; ++i) {
    if (out.filter != EVFILT_PROC || out.udata != reinterpret_cast<void*>(0x55)) continue;
    flags[out.ident] |= out.fflags;
    if ((out.fflags & NOTE_EXIT) || out.ident != static_cast<uintptr_t>(c)) data[out.ident] = out.data;
  }
  const auto g1 = static_cast<uintptr_t>(g[0]), g2 = static_cast<uintptr_t>(g[1]);
  const bool first_right = flags[static_cast<uintptr_t>(c)] == NOTE_FORK &&
                           flags[g1] == (NOTE_CHILD | NOTE_EXIT) && data[g1] == (5 << 8) &&
                           flags[g2] == NOTE_CHILD && data[g2] == c;
  if (!first_right) {
    std::fprintf(stderr, "C %x; G1 %x data %ld; G2 %x data %ld\n", flags[static_cast<uintptr_t>(c)], flags[g1],
                 static_cast<long>(data[g1]), flags[g2], static_cast<long>(data[g2]));
  }
  // G2 exits now: its watch has its pidfd (opened by that call), and the
  // pump reports it with the connector's status.
  if (write(g2go[1], "g", 1) != 1) _exit(5);
  const long n2 = syscall(SYS_epoll_pwait, ep, &got, 1, 2000, nullptr, 8);
  const int taken = kevent(kq, nullptr, 0, &out, 1, &zero);
  (void)!write(reap[1], "r", 1);
  waitpid(c, nullptr, 0);
  if (opened != 0) _exit(10);
  if (n != 1) _exit(11);
  if (!nothing_made) _exit(12);
  if (!first_right) _exit(13);
  std::fprintf(stderr, "idle pump wake-ups in 100 ms with the pidfds owed: %ld (process events: %ld)\n",
               pump_wakeups, machine_events);
  if (switches < 0 || pump_wakeups > 20 + 2 * machine_events) _exit(16);
  if (n2 != 1) _exit(14);
  if (taken != 1 || out.ident != g2 || out.fflags != NOTE_EXIT || out.data != (6 << 8)) {
    std::fprintf(stderr, "taken %d, fflags %x, data %ld\n", taken, out.fflags, static_cast<long>(out.data));
    _exit(15);
  }
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpTracksAForkWithoutADescriptor) {
  const int status = RunChild(TrackedForkRoutedByThePump);
  if (status == 77) GTEST_SKIP() << "no process connector (CAP_NET_ADMIN): NOTE_TRACK is EOPNOTSUPP here";
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: the idle pump opened a file; 11: the forks did not reach the raw epoll_pwait; "
                          "12: the idle pump made a descriptor; 13: the next kevent's events were wrong; "
                          "14: the later exit did not reach the raw epoll_pwait; 15: its event was wrong; "
                          "16: the pump looked once a millisecond meanwhile";
}

// Whether this kernel keeps a reaped process's wait status for its pidfds
// (PIDFD_GET_INFO with PIDFD_INFO_EXIT, Linux 6.15): a child exits with 7,
// is reaped, and its pidfd is asked.
bool KernelKeepsReapedExitStatus() {
  struct Info {
    uint64_t mask, cgroupid;
    uint32_t ids[11];
    int32_t exit_code;
  } info{};
  static_assert(sizeof(Info) == 64);
  const pid_t child = fork();
  if (child == 0) _exit(7);
  const int pidfd = static_cast<int>(syscall(SYS_pidfd_open, child, 0));
  waitpid(child, nullptr, 0);
  if (pidfd < 0) return false;
  info.mask = uint64_t{1} << 3;
  const bool kept = syscall(SYS_ioctl, pidfd, _IOWR(0xFF, 11, Info), &info) == 0 &&
                    (info.mask & (uint64_t{1} << 3)) && info.exit_code == (7 << 8);
  close(pidfd);
  return kept;
}

// A watched process that is not the program's child, reaped by its own
// parent: its status is the kernel's (Linux 6.15), which the idle pump asks
// without a descriptor, so the exit reaches a program that waits outside
// the engine. Before 6.15 the exit usually waits for the next call, which
// finds the process reaped and no connector: status 0 (docs/kqueue.md,
// limits); but a pump that looks while the process is still a zombie (its
// parent not yet scheduled to reap it: seen in the 6.1 guest under TCG)
// reads its status and routes the exit at once, with that status.
// Exit 10: the pump opened a file; 11: the exit did not reach the raw
// epoll_pwait within 2 s (6.15+); 12: the event or its status was wrong
// (5 when routed by the pump, 0 when found by the call).
void ReapedNonChildExitRoutedByThePump() {
  setenv("EVSHIM_NO_PROC_CONNECTOR", "1", 1);
  const bool kept = KernelKeepsReapedExitStatus();
  const int kq = kqueue();
  const int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  int go[2], says[2];
  if (kq < 0 || ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, kq, &ev) != 0 || pipe(go) != 0 || pipe(says) != 0) _exit(2);
  const pid_t middle = fork();
  if (middle < 0) _exit(2);
  if (middle == 0) {
    // Forks the watched process, which exits with 5 once told to, and
    // reaps it at once.
    const pid_t watched = fork();
    if (watched == 0) {
      char c;
      (void)!read(go[0], &c, 1);
      _exit(5);
    }
    if (write(says[1], &watched, sizeof watched) != sizeof watched) _exit(1);
    waitpid(watched, nullptr, 0);
    const struct timespec two_s {2, 0};
    nanosleep(&two_s, nullptr);  // stays, so the watched process is not the program's
    _exit(0);
  }
  pid_t watched = 0;
  if (read(says[0], &watched, sizeof watched) != sizeof watched) _exit(3);
  struct kevent ch, out;
  EV_SET(&ch, watched, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, nullptr);
  if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  g_fopen_counting = true;
  if (write(go[1], "g", 1) != 1) _exit(5);
  epoll_event got{};
  const long n = syscall(SYS_epoll_pwait, ep, &got, 1, kept ? 2000 : 300, nullptr, 8);
  g_fopen_counting = false;
  const int opened = g_fopen_counted.load();
  const struct timespec zero {};
  const int taken = kevent(kq, nullptr, 0, &out, 1, &zero);
  kill(middle, SIGKILL);
  waitpid(middle, nullptr, 0);
  if (opened != 0) _exit(10);
  if (kept && n != 1) _exit(11);
  if (taken != 1 || out.ident != static_cast<uintptr_t>(watched) || !(out.fflags & NOTE_EXIT) ||
      out.data != (n == 1 ? (5 << 8) : 0)) {
    _exit(12);
  }
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpReportsAReapedNonChildsExitWithItsStatus) {
  std::fprintf(stderr, "PIDFD_INFO_EXIT: %s\n", KernelKeepsReapedExitStatus() ? "kept (6.15+)" : "not kept");
  const int status = RunChild(ReapedNonChildExitRoutedByThePump);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "10: the idle pump opened a file; 11: the exit did not reach the raw epoll_pwait (6.15+); "
                          "12: the event or its status was wrong";
}

// The same exit found by a call: the program waits in kevent while it is
// stopped (SIGSTOP from the middle process), the watched process exits and
// is reaped meanwhile, and the waiting thread, a call's, finds the pidfd
// readable and /proc empty at SIGCONT (the idle pump keeps away from a
// waiting thread's loop). Linux 6.15: the status from the pidfd; before:
// 0 (docs/kqueue.md, limits). Exit 12: the event or its status was wrong.
void ReapedNonChildExitFoundByACall() {
  setenv("EVSHIM_NO_PROC_CONNECTOR", "1", 1);
  const bool kept = KernelKeepsReapedExitStatus();
  const pid_t watcher = getpid();
  const int kq = kqueue();
  int go[2], says[2], ready[2];
  if (kq < 0 || pipe(go) != 0 || pipe(says) != 0 || pipe(ready) != 0) _exit(2);
  const pid_t middle = fork();
  if (middle < 0) _exit(2);
  if (middle == 0) {
    const pid_t watched = fork();
    if (watched == 0) {
      char c;
      (void)!read(go[0], &c, 1);
      _exit(5);
    }
    if (write(says[1], &watched, sizeof watched) != sizeof watched) _exit(1);
    char c;
    if (read(ready[0], &c, 1) != 1) _exit(1);
    const struct timespec fifty_ms {0, 50 * 1000 * 1000};
    nanosleep(&fifty_ms, nullptr);  // the watcher waits in kevent
    kill(watcher, SIGSTOP);
    for (int i = 0; i < 1000; ++i) {  // until it is stopped
      char path[64], buf[512] = {};
      std::snprintf(path, sizeof path, "/proc/%d/stat", watcher);
      const int fd = open(path, O_RDONLY);
      const ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf - 1);
      if (fd >= 0) close(fd);
      const char* paren = n > 0 ? std::strrchr(buf, ')') : nullptr;
      if (paren != nullptr && paren[2] == 'T') break;
      usleep(1000);
    }
    if (write(go[1], "g", 1) != 1) _exit(1);
    waitpid(watched, nullptr, 0);  // reaped while the watcher is stopped
    kill(watcher, SIGCONT);
    const struct timespec two_s {2, 0};
    nanosleep(&two_s, nullptr);
    _exit(0);
  }
  pid_t watched = 0;
  if (read(says[0], &watched, sizeof watched) != sizeof watched) _exit(3);
  struct kevent ch, out;
  EV_SET(&ch, watched, EVFILT_PROC, EV_ADD, NOTE_EXIT, 0, nullptr);
  if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  if (write(ready[1], "r", 1) != 1) _exit(5);
  const struct timespec five_s {5, 0};
  const int taken = kevent(kq, nullptr, 0, &out, 1, &five_s);
  kill(middle, SIGKILL);
  waitpid(middle, nullptr, 0);
  if (taken != 1 || out.ident != static_cast<uintptr_t>(watched) || !(out.fflags & NOTE_EXIT) ||
      out.data != (kept ? (5 << 8) : 0)) {
    std::fprintf(stderr, "taken %d, data %ld\n", taken, static_cast<long>(out.data));
    _exit(12);
  }
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, CallReportsAReapedNonChildsExitWithItsStatus) {
  const int status = RunChild(ReapedNonChildExitFoundByACall);
  EXPECT_NE(status, -1) << "hung";
  EXPECT_EQ(status, 0) << "12: the event or its status was wrong";
}

// An object's last close that the idle pump routes (a raw close of a
// kqueue's descriptor: its own end hangs up) closes the engine's own end
// (ObjectTable::Remove) through close(). When that end took a number a
// knote once named (closed raw, so still hinted), the library reports it to
// the engine from the pump, which holds the lock: the report must not wait
// for it (the pump is inside the engine, as a call's thread: Engine::Call).
void LastCloseRoutedByThePump() {
  const int kq = kqueue();
  int s[2];
  if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, s) != 0) _exit(2);
  // The pump, started as a program starts it (docs/design.md "The idle
  // pump on demand").
  if (evshim::testing::WaitForThePump(kq) == 0) _exit(9);
  struct kevent ch[2];
  EV_SET(&ch[0], s[0], EVFILT_WRITE, EV_ADD, 0, 0, nullptr);
  EV_SET(&ch[1], s[1], EVFILT_WRITE, EV_ADD, 0, 0, nullptr);
  if (kevent(kq, ch, 2, nullptr, 0, nullptr) != 0) _exit(3);  // both numbers hinted
  EV_SET(&ch[0], s[0], EVFILT_WRITE, EV_DELETE, 0, 0, nullptr);
  EV_SET(&ch[1], s[1], EVFILT_WRITE, EV_DELETE, 0, 0, nullptr);
  if (kevent(kq, ch, 2, nullptr, 0, nullptr) != 0) _exit(4);
  if (syscall(SYS_close, s[0]) != 0 || syscall(SYS_close, s[1]) != 0) _exit(5);
  // A new kqueue's socketpair takes the two numbers: the engine's own end
  // the first, the program's end the second (ObjectTable::MakePair).
  const int inner = kqueue();
  if (inner != s[1]) _exit(6);
  if (syscall(SYS_close, inner) != 0) _exit(7);
  const struct timespec hundred_ms {0, 100 * 1000 * 1000};
  nanosleep(&hundred_ms, nullptr);  // the idle pump routes the last close
  const struct timespec zero {};
  struct kevent out;
  if (kevent(kq, nullptr, 0, &out, 1, &zero) != 0) _exit(8);
  _exit(0);
}

TEST(InprocKqueueOwnDescriptors, IdlePumpClosingAnObjectsEndAtAHintedNumberDoesNotHang) {
  const int status = RunChild(LastCloseRoutedByThePump);
  EXPECT_NE(status, -1) << "the kevent after the idle pump routed the last close never returned";
  EXPECT_EQ(status, 0);
}


// ---- The idle pump with a kqueue (docs/design.md "Host events") ----
// As InprocPump.APollerWakesTheNappingPump (inproc_test.cc) for event
// ports: a thread that stops calling and waits outside the engine (its own
// poll of a kqueue descriptor) while the pump naps ends the nap
// (Engine::PollBegin, KickPump), and the pump looks at once for the file
// that becomes ready afterwards, instead of after its nap. Seen on the
// pump thread alone (ptrace): the program calls (a socket passes a byte to
// itself through a second kqueue: kevent looks, the traffic reaches the
// look epoll) until the pump is in its fourth nap in a row (1, 2, 4, 8 ms),
// held at its entry; then the program polls the kqueue; once it sleeps in
// poll the nap goes on, and must end by the kick (the futex wait does not
// time out); the pump's next sleep must be its look (a poll of the look
// epoll), not another nap; at its entry this process writes the file.
TEST(InprocKqueuePump, APollerWakesTheNappingPump) {
  using evshim::testing::SendThreadIds;
  int up[2], go[2], file[2];
  ASSERT_EQ(pipe(up), 0);
  ASSERT_EQ(pipe(go), 0);
  ASSERT_EQ(pipe(file), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(up[0]);
    close(go[1]);
    close(file[1]);
    const int kq = kqueue();
    const int busy = kqueue();
    int sv[2];
    if (kq < 0 || busy < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) _exit(2);
    struct kevent ch[2];
    EV_SET(&ch[0], file[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
    // EV_CLEAR: each byte must reach the calls as a look's report. A level
    // knote goes back on the queue after its event (OpenBSD kern_event.c
    // 1433-1442; EV_CLEAR leaves it off, 1426-1432), and each kevent,
    // called after the write, measures the socket readable again: no look
    // takes a report. A pump that once found no call ended within its nap
    // (the program preempted) then sleeps in its look for good, which costs
    // such a program nothing (no report wakes it, WakePumpFromLook), but
    // never naps: about 1 run in 50 hung so (s23).
    EV_SET(&ch[1], sv[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, nullptr);
    if (kevent(kq, &ch[0], 1, nullptr, 0, nullptr) != 0 || kevent(busy, &ch[1], 1, nullptr, 0, nullptr) != 0) {
      _exit(3);
    }
    if (!SendThreadIds(up[1], kq)) _exit(4);
    if (fcntl(go[0], F_SETFL, O_NONBLOCK) != 0) _exit(5);
    char c;
    while (read(go[0], &c, 1) != 1) {
      if (errno != EAGAIN) _exit(6);
      struct kevent out;
      if (write(sv[1], "t", 1) != 1 || kevent(busy, nullptr, 0, &out, 1, nullptr) != 1 ||
          out.ident != uintptr_t(sv[0]) || read(sv[0], &c, 1) != 1) {
        _exit(7);
      }
    }
    pollfd pfd{kq, POLLIN, 0};
    if (poll(&pfd, 1, 10'000) != 1 || !(pfd.revents & POLLIN)) _exit(8);
    struct kevent out;
    const struct timespec zero {};
    if (kevent(kq, nullptr, 0, &out, 1, &zero) != 1 || out.ident != uintptr_t(file[0]) ||
        out.filter != EVFILT_READ || out.data != 1) {
      _exit(9);
    }
    _exit(0);
  }
  evshim::testing::ExpectAPollerWakesTheNappingPump(pid, up, go, file);
}


// As InprocPump.CallsResumingWakeThePumpFromItsLook (inproc_test.cc), with
// a kqueue: a program idle for a while (the pump asleep in its look)
// starts calling again; its kevent looks take the reports that wake the
// pump's poll, which the kernel puts back to sleep at each, until a call
// wakes the pump (Engine::WakePumpFromLook). The pump shares the program's
// processor at SCHED_IDLE, and the program sleeps 100 µs between a
// token's read and its next write (no report pending then): the pump runs
// only then. Its voluntary switches over 250 ms of a ring of level READ
// knotes, after 50 ms idle; the busiest of three such stretches.
void ResumingKqueueRingChild(int up) {
  using evshim::testing::BlockedSyscall;
  using evshim::testing::NowNs;
  using evshim::testing::PinThePumpIdleBesideThisThread;
  using evshim::testing::VoluntarySwitches;
  using evshim::testing::WaitForThePump;
  constexpr int kPairs = 4;
  const int kq = kqueue();
  int sv[kPairs][2];
  if (kq < 0) _exit(2);
  for (int i = 0; i < kPairs; ++i) {
    struct kevent ch;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv[i]) != 0) _exit(3);
    EV_SET(&ch, sv[i][0], EVFILT_READ, EV_ADD, 0, 0, reinterpret_cast<void*>(static_cast<intptr_t>(i)));
    if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) _exit(4);
  }
  const pid_t pump = WaitForThePump(kq);
  if (pump == 0) _exit(5);
  if (!PinThePumpIdleBesideThisThread(pump)) _exit(6);
  int64_t most = 0;
  char c = 't';
  for (int stretch = 0; stretch < 3; ++stretch) {
    usleep(50 * 1000);  // idle: the pump ends its naps and sleeps in its look
    for (int tries = 0; BlockedSyscall(pump) != SYS_poll && tries < 1000; ++tries) usleep(1000);
    if (BlockedSyscall(pump) != SYS_poll) _exit(7);
    const long before = VoluntarySwitches(pump);
    if (write(sv[0][1], &c, 1) != 1) _exit(8);
    const int64_t start = NowNs();
    int holder = -1;
    while (NowNs() - start < 250'000'000) {
      struct kevent out[4];
      const int n = kevent(kq, nullptr, 0, out, 4, nullptr);
      if (n < 1) _exit(9);
      for (int j = 0; j < n; ++j) {
        const auto i = static_cast<int>(reinterpret_cast<intptr_t>(out[j].udata));
        if (read(sv[i][0], &c, 1) != 1) _exit(10);
        usleep(100);
        holder = (i + 1) % kPairs;
        if (write(sv[holder][1], &c, 1) != 1) _exit(11);
      }
    }
    const long after = VoluntarySwitches(pump);
    if (before < 0 || after < 0 || holder < 0) _exit(12);
    most = std::max<int64_t>(most, after - before);
    // The token is on its way: take it, so that the next stretch starts idle.
    if (read(sv[holder][0], &c, 1) != 1) _exit(13);
  }
  if (write(up, &most, sizeof most) != sizeof most) _exit(14);
  _exit(0);
}

// With the wake-up: the naps (35 in 250 ms); without it 700 to 1400 (20
// of 20 runs failed; with two stretches 9 of 10).
TEST(InprocKqueuePump, CallsResumingWakeThePumpFromItsLook) {
  const int64_t switches = evshim::testing::PumpSwitchesOfChild(ResumingKqueueRingChild);
  ASSERT_GE(switches, 0);
  RecordProperty("pump_switches", std::to_string(switches));
  EXPECT_LE(switches, 100) << "the pump's voluntary switches in the busiest of three stretches";
}

// The change's one ready knote handed to the scan's answer (docs/design.md
// "Instructions per event", s37 (kqueue); Kqueues::HandOver): a kevent
// whose scan would find on the list only the knote a change of this call
// measured ready answers it without the scan's lists. The answer is the
// scan's either way (kqueue_scan takes the list from its head after the
// changes: OB kern_event.c:1320-1444, DF kern_event.c kqueue_scan); only
// the engine's count tells the roads apart (evshim_engine_hand_overs). In
// a child: an engine of its own, the count its calls' alone.
uint64_t HandedOverKevents() { return evshim::testing::EngineHandOvers().kevents; }

// bench_kqueue fdwait's round (EV_ADD|EV_ONESHOT on a ready pipe and the
// wait in one call), a level knote (delivered, back on the list: the next
// kevent's scan reports it again, no change measured it) and EV_DISPATCH
// (handed over, disabled, handed over again at its EV_ENABLE). Fails with
// Kqueues::KeventWith's hand-over taken out: the count stays.
TEST(InprocKqueueHandOver, TheChangesOneReadyKnoteIsHandedOver) {
  EXPECT_CHILD_EXITS_0([] {
    const int kq = kqueue();
    int p[2];
    if (kq < 0 || pipe(p) != 0 || write(p[1], "xy", 2) != 2) return 2;
    if (!evshim::testing::EngineHandOvers().engine) return 3;
    const uint64_t before = HandedOverKevents();
    const struct timespec five{5, 0}, zero{0, 0};
    struct kevent ch[2], out[4];
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, reinterpret_cast<void*>(1));
    if (kevent(kq, ch, 1, out, 4, &five) != 1) return 4;
    if (out[0].ident != uintptr_t(p[0]) || out[0].filter != EVFILT_READ || out[0].data != 2 ||
        out[0].udata != reinterpret_cast<void*>(1)) {
      return 5;
    }
    if (HandedOverKevents() != before + 1) return 6;
    if (kevent(kq, nullptr, 0, out, 4, &zero) != 0) return 7;  // EV_ONESHOT: gone with its event
    // Level: handed over, then back on the list for the scan.
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD, 0, 0, reinterpret_cast<void*>(2));
    if (kevent(kq, ch, 1, out, 4, &five) != 1 || out[0].udata != reinterpret_cast<void*>(2)) return 8;
    if (HandedOverKevents() != before + 2) return 9;
    if (kevent(kq, nullptr, 0, out, 4, &zero) != 1 || out[0].data != 2) return 10;
    if (HandedOverKevents() != before + 2) return 11;  // the scan's
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_DELETE, 0, 0, nullptr);
    if (kevent(kq, ch, 1, nullptr, 0, nullptr) != 0) return 12;
    // EV_DISPATCH: disabled once delivered, handed over again at EV_ENABLE.
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ADD | EV_DISPATCH, 0, 0, reinterpret_cast<void*>(3));
    if (kevent(kq, ch, 1, out, 4, &five) != 1 || out[0].udata != reinterpret_cast<void*>(3)) return 13;
    if (kevent(kq, nullptr, 0, out, 4, &zero) != 0) return 14;
    // (FreeBSD takes the udata of a change without EV_ADD: docs/kqueue.md.)
    EV_SET(&ch[0], p[0], EVFILT_READ, EV_ENABLE, 0, 0, reinterpret_cast<void*>(3));
    if (kevent(kq, ch, 1, out, 4, &five) != 1 || out[0].udata != reinterpret_cast<void*>(3)) return 15;
    if (HandedOverKevents() != before + 4) return 16;
    return 0;
  });
}

// Where the changes' knote is not the scan's whole answer, the scan
// answers, as the kernels' (the list from its head, OB kern_event.c:1320-1444):
// two knotes a change measured ready (both, in their order; fails with
// SoleKnoteMeasuredByChange's look at the list's length taken out: only
// the first came, by the hand-over), a knote queued before the call (it
// comes first), a knote the call's next change disabled (KN_DISABLED
// skipped, OB :1363-1366: nothing), an EV_CLEAR knote (never listed as
// measured: the scan measures it).
TEST(InprocKqueueHandOver, TheScanAnswersWhereTheChangesKnoteIsNotItsWholeAnswer) {
  EXPECT_CHILD_EXITS_0([] {
    const int kq = kqueue();
    const evshim::testing::HandOverCounts at_start = evshim::testing::EngineHandOvers();
    if (kq < 0 || !at_start.engine) return 2;
    const uint64_t before = at_start.kevents;
    // Two pipes, a with 1 byte and b with 2.
    int a[2], b[2];
    if (pipe(a) != 0 || pipe(b) != 0 || write(a[1], "a", 1) != 1 || write(b[1], "bb", 2) != 2) return 3;
    const struct timespec five{5, 0}, zero{0, 0};
    struct kevent ch[2], out[4];
    // Two measured ready by the call's changes.
    EV_SET(&ch[0], a[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, reinterpret_cast<void*>(1));
    EV_SET(&ch[1], b[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, reinterpret_cast<void*>(2));
    if (kevent(kq, ch, 2, out, 4, &five) != 2) return 5;
    if (out[0].udata != reinterpret_cast<void*>(1) || out[1].udata != reinterpret_cast<void*>(2) ||
        out[1].data != 2) {
      return 6;
    }
    // A knote queued before the call, then a change's ready knote: both,
    // the earlier first.
    EV_SET(&ch[0], a[0], EVFILT_READ, EV_ADD, 0, 0, reinterpret_cast<void*>(3));
    if (kevent(kq, ch, 1, nullptr, 0, nullptr) != 0) return 7;
    EV_SET(&ch[0], b[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, reinterpret_cast<void*>(4));
    if (kevent(kq, ch, 1, out, 4, &five) != 2) return 8;
    if (out[0].udata != reinterpret_cast<void*>(3) || out[1].udata != reinterpret_cast<void*>(4)) return 9;
    EV_SET(&ch[0], a[0], EVFILT_READ, EV_DELETE, 0, 0, nullptr);
    if (kevent(kq, ch, 1, nullptr, 0, nullptr) != 0) return 10;
    // Added ready, then disabled by the call's next change: not reported.
    EV_SET(&ch[0], a[0], EVFILT_READ, EV_ADD, 0, 0, reinterpret_cast<void*>(5));
    EV_SET(&ch[1], a[0], EVFILT_READ, EV_DISABLE, 0, 0, nullptr);
    if (kevent(kq, ch, 2, out, 4, &zero) != 0) return 11;
    EV_SET(&ch[0], a[0], EVFILT_READ, EV_DELETE, 0, 0, nullptr);
    if (kevent(kq, ch, 1, nullptr, 0, nullptr) != 0) return 12;
    // EV_CLEAR: the scan measures it.
    EV_SET(&ch[0], b[0], EVFILT_READ, EV_ADD | EV_CLEAR, 0, 0, reinterpret_cast<void*>(6));
    if (kevent(kq, ch, 1, out, 4, &five) != 1 || out[0].udata != reinterpret_cast<void*>(6) || out[0].data != 2) {
      return 13;
    }
    if (HandedOverKevents() != before) return 14;
    return 0;
  });
}

}  // namespace

// The engine's copy into the program's memory that survives a fault
// (docs/design.md "A copy that survives a fault"), for kevent: children, so
// that the seccomp filter and a fault the engine did not survive stay
// theirs. The dispositions are tested with the event-port library
// (inproc_test.cc InprocFaultCopy): one engine and one set of wrappers.
namespace {
namespace fcopy {

using evshim::testing::DenyProcessVmCalls;
using evshim::testing::GuardedPage;
using evshim::testing::kFaultCopyInThisBuild;
using evshim::testing::TruncatedFileMapping;
using evshim::testing::UnmappedAddress;

// kevent's change list and event list on the heap, with
// process_vm_readv/writev taken away: the change is made and the event
// arrives, so the engine copied both with no such call (without the fault
// copy: EFAULT).
TEST(InprocKqueueFaultCopy, HeapListsNeedNoProcessVmCall) {
  EXPECT_CHILD_EXITS_0([] {
    const int kq = kqueue();  // the engine, before the filter
    int sv[2];
    if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 2;
    if (!DenyProcessVmCalls()) return 3;
    auto* changes = new struct kevent[1];
    EV_SET(&changes[0], sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
    auto* events = new struct kevent[4]{};
    auto* zero = new timespec{0, 0};
    if (write(sv[1], "ab", 2) != 2) return 4;
    errno = 0;
    const int n = kevent(kq, changes, 1, events, 4, zero);
    if (!kFaultCopyInThisBuild) return n == -1 && errno == EFAULT ? 0 : 5;  // the slow path, gated off
    if (n != 1 || events[0].ident != uintptr_t(sv[0]) || events[0].filter != EVFILT_READ || events[0].data != 2) {
      return 6;
    }
    return 0;
  });
}

// A bad list is EFAULT and the kqueue goes on: the level knote reports again
// into a good list. Event lists: unmapped, PROT_NONE, read-only, running
// into a guard page, a mapping of a truncated file (SIGBUS); a change list
// on a read-only page is read.
TEST(InprocKqueueFaultCopy, BadListsAreEfaultAndTheKqueueGoesOn) {
  EXPECT_CHILD_EXITS_0([] {
    const int kq = kqueue();
    int sv[2];
    if (kq < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 2;
    struct kevent ch;
    EV_SET(&ch, sv[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
    if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0 || write(sv[1], "x", 1) != 1) return 3;
    GuardedPage none(PROT_NONE), read_only(PROT_READ), guarded;
    void* unmapped = UnmappedAddress();
    void* bus = TruncatedFileMapping();
    if (none.page == nullptr || read_only.page == nullptr || guarded.page == nullptr || unmapped == nullptr ||
        bus == nullptr) {
      return 4;
    }
    const timespec zero{0, 0};
    auto goes_on = [&] {
      struct kevent out[2];
      return kevent(kq, nullptr, 0, out, 2, &zero) == 1 && out[0].ident == uintptr_t(sv[0]) && out[0].data == 1;
    };
    // Two events' room, the second past the page's end (a second ready knote).
    int other[2];
    if (pipe(other) != 0 || write(other[1], "y", 1) != 1) return 5;
    EV_SET(&ch, other[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
    if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0) return 6;
    auto goes_on_both = [&] {
      struct kevent out[4];
      return kevent(kq, nullptr, 0, out, 4, &zero) == 2;
    };
    auto* running = reinterpret_cast<struct kevent*>(guarded.page_end - sizeof(struct kevent) - 8);
    int code = 10;
    for (void* bad : {unmapped, static_cast<void*>(none.page), static_cast<void*>(read_only.page),
                      static_cast<void*>(running), bus}) {
      ++code;
      errno = 0;
      if (kevent(kq, nullptr, 0, static_cast<struct kevent*>(bad), 2, &zero) != -1 || errno != EFAULT) return code;
      if (!goes_on_both()) return code + 10;
    }
    // Reads: a good change list (bad ones and bad timeouts: scenario
    // bad_change_list, which runs in both modes).
    EV_SET(&ch, other[0], EVFILT_READ, EV_DELETE, 0, 0, nullptr);
    if (kevent(kq, &ch, 1, nullptr, 0, nullptr) != 0 || !goes_on()) return 40;
    // A change list on a read-only page: read.
    if (mprotect(read_only.page, 4096, PROT_READ | PROT_WRITE) != 0) return 81;
    EV_SET(reinterpret_cast<struct kevent*>(read_only.page), other[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
    if (mprotect(read_only.page, 4096, PROT_READ) != 0) return 82;
    if (kevent(kq, reinterpret_cast<struct kevent*>(read_only.page), 1, nullptr, 0, nullptr) != 0) return 83;
    return goes_on_both() ? 0 : 84;
  });
}

}  // namespace fcopy
}  // namespace

// The library's own read of a kevent's change list and timeout before the
// call (its close hints and signal hooks; shim/foreign/bsd/kqueue.c
// read_program): a list on the calling thread's stack above the library's
// frame is copied there, anything else goes through the engine's read,
// which never faults (FreeBSD answers a bad list EFAULT, kern_event.c
// kern_kevent_fp's copyin). This process's own evshim_engine_read_program
// comes first and counts the engine's reads.
namespace libread {

std::atomic<int> g_engine_reads{0};

extern "C" int evshim_engine_read_program(void* dst, const void* src, size_t n) {
  using Fn = int (*)(void*, const void*, size_t);
  static const Fn next = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "evshim_engine_read_program"));
  g_engine_reads.fetch_add(1);
  return next(dst, src, n);
}

// The knote on `fd` (a pipe's read end with a byte in it, added by
// `change`) went with the number's close: the close hint was set before the
// call (closed and the same pipe put back at the number, so only the hint's
// close report can drop it: knote_fdclose, OB kern_event.c:1826-1845;
// docs/kqueue.md "Not yet").
bool HintDropsAtClose(int kq, int fd, const struct kevent* change) {
  if (kevent(kq, change, 1, nullptr, 0, nullptr) != 0) return false;
  const int saved = dup(fd);
  if (saved < 0 || close(fd) != 0 || dup2(saved, fd) != fd || close(saved) != 0) return false;
  const timespec zero{0, 0};
  struct kevent out;
  return kevent(kq, nullptr, 0, &out, 1, &zero) == 0;
}

// Taken: the re-arm of an event loop, one change on the caller's stack (a
// timeout there too), copied by the library alone, on the first thread and
// on a new one (which learns its stack at its first call).
// A kqueue and a pipe with a byte to read, closed at the end.
struct ReadyPipe {
  int kq = kqueue();
  int p[2] = {-1, -1};
  bool ok = kq >= 0 && pipe(p) == 0 && write(p[1], "x", 1) == 1;
  ~ReadyPipe() {
    close(p[0]);
    close(p[1]);
    close(kq);
  }
};

TEST(InprocKqueueLibraryRead, AChangeOnTheCallersStackIsReadWithoutTheEngine) {
  ReadyPipe ready;
  ASSERT_TRUE(ready.ok);
  const int kq = ready.kq;
  const int* p = ready.p;
  auto rounds = [&] {
    int reads = 0;
    for (int i = 0; i < 3; ++i) {
      struct kevent ch, out;
      const timespec five{5, 0};
      EV_SET(&ch, p[0], EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
      const int before = g_engine_reads.load();
      if (kevent(kq, &ch, 1, &out, 1, i == 2 ? &five : nullptr) != 1 || out.ident != uintptr_t(p[0])) return -1;
      reads += g_engine_reads.load() - before;
    }
    return reads;
  };
  EXPECT_EQ(rounds(), 0);
  int on_thread = -2;
  std::thread([&] { on_thread = rounds(); }).join();
  EXPECT_EQ(on_thread, 0);
  struct kevent ch;
  EV_SET(&ch, p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  EXPECT_TRUE(HintDropsAtClose(kq, p[0], &ch));
}

// Not taken: a change on the heap (below the stack) is read by the engine,
// and its hint is set.
TEST(InprocKqueueLibraryRead, AChangeOnTheHeapIsReadByTheEngine) {
  ReadyPipe ready;
  ASSERT_TRUE(ready.ok);
  auto change = std::make_unique<struct kevent>();
  EV_SET(change.get(), ready.p[0], EVFILT_READ, EV_ADD, 0, 0, nullptr);
  const int before = g_engine_reads.load();
  EXPECT_TRUE(HintDropsAtClose(ready.kq, ready.p[0], change.get()));
  EXPECT_EQ(g_engine_reads.load() - before, 1);
}

// Not taken: a change list that starts on the thread's stack and runs past
// its top (a guard page above it) is EFAULT, never SIGSEGV. The thread's
// stack is mapped here, so its top is known.
TEST(InprocKqueueLibraryRead, AListRunningPastTheStacksTopIsEfault) {
  EXPECT_CHILD_EXITS_0([] {
    const int kq = kqueue();
    if (kq < 0) return 2;
    constexpr size_t kStack = 512 * 1024;
    void* map = mmap(nullptr, kStack + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return 3;
    char* top = static_cast<char*>(map) + kStack;
    if (mprotect(top, 4096, PROT_NONE) != 0) return 4;
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0 || pthread_attr_setstack(&attr, map, kStack) != 0) return 5;
    struct Run {
      int kq;
      char* top;
      int code = 6;
    } run{kq, top};
    pthread_t t;
    if (pthread_create(&t, &attr, [](void* arg) -> void* {
          auto* r = static_cast<Run*>(arg);
          struct kevent ch;  // on this stack: the thread learns its stack
          EV_SET(&ch, 1, EVFILT_USER, EV_ADD, 0, 0, nullptr);
          if (kevent(r->kq, &ch, 1, nullptr, 0, nullptr) != 0) return nullptr;
          const int before = g_engine_reads.load();
          errno = 0;
          auto* running = reinterpret_cast<const struct kevent*>(r->top - 16);
          if (kevent(r->kq, running, 1, nullptr, 0, nullptr) != -1 || errno != EFAULT) {
            r->code = 7;
          } else {
            r->code = g_engine_reads.load() - before == 1 ? 0 : 8;
          }
          return nullptr;
        }, &run) != 0) {
      return 9;
    }
    pthread_join(t, nullptr);
    return run.code;
  });
}

// Not taken: a signal handler on an alternate stack (below the thread's
// stack) reads through the engine, its own change as a bad list above it.
namespace altstack {
int g_kq = -1;
int g_fd = -1;
char* g_bad = nullptr;
int g_code = -1;
void OnSignal(int) {
  struct kevent ch;  // on the alternate stack
  EV_SET(&ch, g_fd, EVFILT_READ, EV_ADD | EV_ONESHOT, 0, 0, nullptr);
  const int before = g_engine_reads.load();
  struct kevent out;
  if (kevent(g_kq, &ch, 1, &out, 1, nullptr) != 1 || out.ident != uintptr_t(g_fd)) {
    g_code = 1;
    return;
  }
  const int saved = errno;
  errno = 0;
  const bool efault = kevent(g_kq, reinterpret_cast<const struct kevent*>(g_bad), 1, nullptr, 0, nullptr) == -1 &&
                      errno == EFAULT;
  g_code = !efault ? 2 : g_engine_reads.load() - before != 2 ? 3 : 0;
  errno = saved;
}
}  // namespace altstack

TEST(InprocKqueueLibraryRead, AChangeOnAnAlternateSignalStackIsReadByTheEngine) {
  EXPECT_CHILD_EXITS_0([] {
    using namespace altstack;
    int p[2];
    g_kq = kqueue();
    if (g_kq < 0 || pipe(p) != 0 || write(p[1], "x", 1) != 1) return 2;
    g_fd = p[0];
    struct kevent ch;  // the first thread learns its stack here
    EV_SET(&ch, 1, EVFILT_USER, EV_ADD, 0, 0, nullptr);
    if (kevent(g_kq, &ch, 1, nullptr, 0, nullptr) != 0) return 3;
    // The alternate stack, and right above it an unmapped page: the bad list
    // lies between the handler's frame and the thread's stack.
    constexpr size_t kAlt = 256 * 1024;
    void* map = mmap(nullptr, kAlt + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) return 4;
    g_bad = static_cast<char*>(map) + kAlt;
    if (munmap(g_bad, 4096) != 0) return 5;
    if (reinterpret_cast<uintptr_t>(g_bad) > reinterpret_cast<uintptr_t>(&ch)) return 6;  // below the stack
    stack_t alt{};
    alt.ss_sp = map;
    alt.ss_size = kAlt;
    if (sigaltstack(&alt, nullptr) != 0) return 7;
    struct sigaction sa {};
    sa.sa_handler = OnSignal;
    sa.sa_flags = SA_ONSTACK;
    if (sigaction(SIGUSR1, &sa, nullptr) != 0) return 8;
    raise(SIGUSR1);
    return g_code == 0 ? 0 : 10 + g_code;
  });
}

}  // namespace libread
