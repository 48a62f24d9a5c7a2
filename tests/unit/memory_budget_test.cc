// Memory per watch (issue 15 item 1, docs/design.md "Memory per watch"):
// the heap bytes the emulation engines hold per event-port association and
// per knote, counted exactly by replacing the global allocator, with a host
// that keeps nothing per watch. The benchmark (`bench_* memory`) measures
// the whole process by its RSS; this test pins the engines' share so that a
// regression fails here, deterministically.
#include <gtest/gtest.h>
#include <malloc.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "emul/event_port.h"
#include "emul/kqueue.h"

namespace {

// Live heap bytes as glibc's allocator spends them: the usable size plus the
// chunk header, which is what RSS grows by.
std::atomic<long> live_heap_bytes{0};

void* CountedAlloc(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  live_heap_bytes += static_cast<long>(malloc_usable_size(p) + sizeof(std::size_t));
  return p;
}

void CountedFree(void* p) {
  if (p == nullptr) return;
  live_heap_bytes -= static_cast<long>(malloc_usable_size(p) + sizeof(std::size_t));
  std::free(p);
}

}  // namespace

void* operator new(std::size_t n) { return CountedAlloc(n); }
void* operator new[](std::size_t n) { return CountedAlloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return CountedAlloc(n);
  } catch (...) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return CountedAlloc(n);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { CountedFree(p); }
void operator delete[](void* p) noexcept { CountedFree(p); }
void operator delete(void* p, std::size_t) noexcept { CountedFree(p); }
void operator delete[](void* p, std::size_t) noexcept { CountedFree(p); }

namespace evshim::emul {
namespace {

constexpr Caller kP{100, 100};
constexpr long kWatches = 10000;

// The engines' heap bytes per watch (glibc x86_64; the hash tables' spare
// room shared out). Before the compaction of issue 15 item 1 they were 184
// (port fd), 400 (READ), 360 (USER), 424 (TIMER); before session 8 (the
// knote's filter union, the timer heap, FlatIdMap indexes) 152, 280,
// 240-251, 304-315, which these budgets refuse. The host's share
// (LocalWatches in the fast mode, the supervisor's watch table) and a fired
// event come on top: docs/design.md "Memory per watch".
constexpr long kPortFdBudget = 144;      // measured 138
constexpr long kKnoteFdBudget = 224;     // measured 220
constexpr long kKnoteUserBudget = 200;   // measured 194 (10000 and 100000)
constexpr long kKnoteTimerBudget = 224;  // measured 220 (10000), 215 (100000)

// A host that keeps nothing per watch: every descriptor is open, idle and
// the same file; watch ids count up.
class BareHost final : public Host {
 public:
  Nanos Now() override { return 1'000'000'000; }
  void ArmDeadline(Nanos) override {}
  Result<WatchId> WatchFd(Pid, int) override { return next_watch_++; }
  Result<uint32_t> ArmWatch(WatchId, Pid, int, uint32_t) override { return 0u; }
  void DisarmWatch(WatchId) override {}
  void DropWatch(WatchId) override {}
  bool SameFile(Pid, int, WatchId) override { return true; }
  bool FdOpen(Pid, int) override { return true; }
  void ObjectReadinessChanged(ObjectId, bool) override {}
  Result<FdProbe> ProbeFd(Pid, int, FdProbeNeeds, FdKind) override { return FdProbe{}; }

 private:
  WatchId next_watch_ = 1;
};

class Ignore final : public KeventCompletion {
 public:
  bool Complete(KeventOutcome) override { return true; }
};

// Bytes per knote for `count` knotes of `filter` added one change at a time.
long BytesPerKnote(KFilter filter, long count) {
  BareHost host;
  Kqueues engine(host);
  KqueuePolicy policy;
  Result<ObjectId> kq = engine.Create(kP);
  EXPECT_TRUE(kq.ok());
  KeventWait no_events;
  no_events.nevents = 0;
  no_events.forever = false;
  const long before = live_heap_bytes.load();
  for (long i = 0; i < count; ++i) {
    KChange change;
    change.kev.ident = static_cast<uint64_t>(i + 3);
    change.kev.filter = filter;
    change.kev.flags = kev::kAdd;
    // TIMER: never fires here; distinct deadlines, as a real clock gives.
    change.timer_period = 3600 * kNanosPerSecond + i;
    std::vector<KChange> changes;
    changes.push_back(change);
    engine.Kevent(kP, *kq, policy, std::move(changes), false, no_events, std::make_unique<Ignore>());
  }
  const long bytes = live_heap_bytes.load() - before;
  EXPECT_EQ(engine.KnoteCount(*kq), static_cast<size_t>(count));
  return bytes / count;
}

TEST(MemoryBudget, PortFdAssociation) {
  BareHost host;
  EventPorts engine(host, PortLimits{});
  Result<ObjectId> port = engine.Create(kP);
  ASSERT_TRUE(port.ok());
  const long before = live_heap_bytes.load();
  for (long i = 0; i < kWatches; ++i) {
    ASSERT_TRUE(engine.AssociateFd(kP, *port, i + 3, poll_bits::kIn, static_cast<uint64_t>(i)).ok());
  }
  const long per = (live_heap_bytes.load() - before) / kWatches;
  EXPECT_EQ(engine.AssociationCount(*port), static_cast<size_t>(kWatches));
  std::printf("port fd association: %ld bytes\n", per);
  EXPECT_LE(per, kPortFdBudget);
}

TEST(MemoryBudget, KnoteOnDescriptor) {
  const long per = BytesPerKnote(KFilter::kRead, kWatches);
  std::printf("EVFILT_READ knote: %ld bytes\n", per);
  EXPECT_LE(per, kKnoteFdBudget);
}

TEST(MemoryBudget, UserKnote) {
  for (long count : {kWatches, 10 * kWatches}) {
    const long per = BytesPerKnote(KFilter::kUser, count);
    std::printf("EVFILT_USER knote (%ld): %ld bytes\n", count, per);
    EXPECT_LE(per, kKnoteUserBudget) << count << " knotes";
  }
}

TEST(MemoryBudget, TimerKnote) {
  for (long count : {kWatches, 10 * kWatches}) {
    const long per = BytesPerKnote(KFilter::kTimer, count);
    std::printf("EVFILT_TIMER knote (%ld): %ld bytes\n", count, per);
    EXPECT_LE(per, kKnoteTimerBudget) << count << " knotes";
  }
}

// A timer's deadline is an entry of a heap; changing a running timer leaves
// its old entry there, stale, unless it is first. Stale entries are
// compacted away once they are half the heap, so a program that re-arms one
// timer over and over (an EV_ADD with a new period restarts it:
// kern_event.c:517-535 filt_timermodify (OpenBSD), the policy's
// timer_modify_restarts) holds its memory constant.
TEST(MemoryBudget, RearmedTimerHoldsNoMoreMemory) {
  BareHost host;
  Kqueues engine(host);
  KqueuePolicy policy;
  policy.timer_modify_restarts = true;
  Result<ObjectId> kq = engine.Create(kP);
  ASSERT_TRUE(kq.ok());
  KeventWait no_events;
  no_events.nevents = 0;
  no_events.forever = false;
  auto arm = [&](uint64_t ident, Nanos period) {
    KChange change;
    change.kev.ident = ident;
    change.kev.filter = KFilter::kTimer;
    change.kev.flags = kev::kAdd;
    change.timer_period = period;
    std::vector<KChange> changes;
    changes.push_back(change);
    engine.Kevent(kP, *kq, policy, std::move(changes), false, no_events, std::make_unique<Ignore>());
  };
  arm(1, kNanosPerSecond);  // first in the heap: the re-armed timer's entries are not
  arm(2, 3600 * kNanosPerSecond);
  const long before = live_heap_bytes.load();
  for (long i = 0; i < 100000; ++i) arm(2, 3600 * kNanosPerSecond + i + 1);
  const long grown = live_heap_bytes.load() - before;
  std::printf("one timer re-armed 100000 times: %ld bytes more\n", grown);
  EXPECT_LT(grown, 4096);
  EXPECT_EQ(engine.KnoteCount(*kq), 2u);
}

// FreeBSD's ext[] costs nothing until a change sets it; a copy (a knote
// copied at fork, KQUEUE_CPONFORK) has its own words.
TEST(MemoryBudget, ExtWordsOnlyWhenSet) {
  const long before = live_heap_bytes.load();
  ExtWords ext;
  ext.Set(ExtWords::Words{});
  EXPECT_EQ(live_heap_bytes.load(), before);
  ext.Set(ExtWords::Words{0, 0, 0x33, 0xc0ffee00000000aaULL});
  EXPECT_GT(live_heap_bytes.load(), before);
  ExtWords copy = ext;
  ext.Set(ExtWords::Words{});
  EXPECT_EQ(copy.Get(), (ExtWords::Words{0, 0, 0x33, 0xc0ffee00000000aaULL}));
  EXPECT_EQ(ext.Get(), ExtWords::Words{});
  copy = ext;
  EXPECT_EQ(live_heap_bytes.load(), before);
}

}  // namespace
}  // namespace evshim::emul
