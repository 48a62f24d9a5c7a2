// The engine's lock alone (shim/inproc/engine_mutex.h; docs/performance.md
// "Session 17: the engine lock"): it excludes, a thread asleep on it is
// woken by the unlock, and an owed wake-up is written after the unlock.
#include "shim/inproc/engine_mutex.h"

#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace evshim::shim::inproc {
namespace {

// Four threads enter the lock's section over and over; each entry marks
// the section occupied, stays a moment, adds to a plain counter, and
// leaves. A lock that lets two in is seen at once (an entry that finds the
// section occupied; TSan also reports the counter's race), and every
// addition counts only if no two sections overlapped.
TEST(EngineMutexTest, ExcludesUnderContention) {
  EngineMutex mu;
  long counter = 0;
  std::atomic<bool> occupied{false};
  std::atomic<long> overlaps{0};
  constexpr int kThreads = 4;
  constexpr long kRounds = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (long i = 0; i < kRounds; ++i) {
        std::lock_guard<EngineMutex> lock(mu);
        if (occupied.exchange(true, std::memory_order_relaxed)) overlaps.fetch_add(1, std::memory_order_relaxed);
        const long read = counter;
        for (int pause = 0; pause < 200; ++pause) asm volatile("" ::: "memory");
        counter = read + 1;
        occupied.store(false, std::memory_order_relaxed);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(overlaps.load(), 0);
  EXPECT_EQ(counter, kThreads * kRounds);
}

// Whether thread `tid` sleeps (state S in /proc/self/task/TID/stat).
bool Sleeps(pid_t tid) {
  char path[64], buf[512] = {};
  std::snprintf(path, sizeof path, "/proc/self/task/%d/stat", static_cast<int>(tid));
  FILE* f = std::fopen(path, "r");
  if (f == nullptr) return false;
  const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
  std::fclose(f);
  const char* paren = n > 0 ? std::strrchr(buf, ')') : nullptr;
  return paren != nullptr && paren[1] == ' ' && paren[2] == 'S';
}

// A thread that finds the lock held past its spins sleeps in the futex;
// the unlock must wake it (an unlock that forgot the sleepers would leave
// it asleep for good: the 10 s bound below fails instead of hanging).
TEST(EngineMutexTest, UnlockWakesAThreadAsleepOnIt) {
  // Shared with the taker, which is detached: if the unlock never wakes it,
  // the test fails and the thread stays asleep on a lock that outlives it.
  struct State {
    EngineMutex mu;
    std::atomic<pid_t> tid{0};
    std::atomic<bool> got{false};
    std::promise<void> done;
  };
  auto st = std::make_shared<State>();
  std::future<void> done = st->done.get_future();
  st->mu.lock();
  std::thread([st] {
    st->tid.store(gettid());
    st->mu.lock();
    st->got.store(true);
    st->mu.unlock();
    st->done.set_value();
  }).detach();
  while (st->tid.load() == 0) std::this_thread::yield();
  // Asleep in the lock (past its 100 spins): up to 5 s for a loaded machine.
  bool asleep = false;
  for (int i = 0; i < 5000 && !asleep; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    asleep = Sleeps(st->tid.load());
  }
  ASSERT_TRUE(asleep) << "the taker never slept on the held lock";
  EXPECT_FALSE(st->got.load());
  st->mu.unlock();
  ASSERT_EQ(done.wait_for(std::chrono::seconds(10)), std::future_status::ready) << "the unlock did not wake the sleeper";
  EXPECT_TRUE(st->got.load());
  // Free again: a try_lock takes it.
  EXPECT_TRUE(st->mu.try_lock());
  st->mu.unlock();
}

// An owed wake-up is written to its eventfd and marked done by the
// unlock, with the lock already free (Engine::Waiter::Respond).
TEST(EngineMutexTest, OwedWakeIsWrittenAtTheUnlock) {
  EngineMutex mu;
  const int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  ASSERT_GE(efd, 0);
  std::atomic<bool> done{false};
  mu.lock();
  mu.OweWake(efd, &done);
  uint64_t v = 0;
  EXPECT_LT(read(efd, &v, sizeof v), 0) << "written before the unlock";
  EXPECT_FALSE(done.load());
  mu.unlock();
  EXPECT_TRUE(done.load());
  EXPECT_EQ(read(efd, &v, sizeof v), static_cast<ssize_t>(sizeof v));
  EXPECT_EQ(v, 1u);
  EXPECT_TRUE(mu.try_lock());
  mu.unlock();
  close(efd);
}

}  // namespace
}  // namespace evshim::shim::inproc
