// The engine's lock (Engine::mu_), header-only so that
// tests/unit/engine_mutex_test.cc can run it alone.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace evshim::shim::inproc {

// The engine lock: a futex word (0 free, 1 held, 2 held with sleepers
// possible; U. Drepper, "Futexes Are Tricky", mutex 3). Every foreign call
// takes it once: uncontended, taking and giving it back are one atomic
// exchange each, inline, where glibc's adaptive mutex made two calls
// through the PLT into its type dispatch (about 80 instructions a call;
// docs/performance.md "Session 17: the engine lock"). Like that mutex it
// spins a moment before it sleeps: the sections it guards are a few system
// calls long, and with many threads calling (waiters returning to
// port_get, a producer's port_send) a thread that sleeps on a held lock
// costs two futex calls and a switch each time. Not recursive, no owner
// check (as PTHREAD_MUTEX_ADAPTIVE_NP). A waiting thread answered under
// the lock is woken after the unlock (OweWake): woken inside the section,
// it would preempt the lock's holder and then queue on the lock it holds.
class EngineMutex {
 public:
  EngineMutex() = default;
  EngineMutex(const EngineMutex&) = delete;
  EngineMutex& operator=(const EngineMutex&) = delete;
  void lock() {
    int free = 0;
    if (!word_.compare_exchange_strong(free, 1, std::memory_order_acquire, std::memory_order_relaxed)) LockContended();
  }
  bool try_lock() {
    int free = 0;
    return word_.compare_exchange_strong(free, 1, std::memory_order_acquire, std::memory_order_relaxed);
  }
  // Writes each owed wake-up after unlocking, then sets its flag (release):
  // the woken thread must not end (closing `fd`) before it sees the flag.
  void unlock() {
    if (owed_.empty()) {
      Release();
    } else {
      UnlockAndWake();
    }
  }
  // With the lock held: write 1 to eventfd `fd` at the unlock, then set `*done`.
  void OweWake(int fd, std::atomic<bool>* done) { owed_.push_back(OwedWake{fd, done}); }

 private:
  struct OwedWake {
    int fd;
    std::atomic<bool>* done;
  };
  void Release() {
    if (word_.exchange(0, std::memory_order_release) == 2) WakeOne();
  }
  // How long a contended lock spins before it sleeps (glibc's adaptive
  // mutex's default, max_adaptive_count).
  static constexpr int kSpins = 100;
  static_assert(sizeof(std::atomic<int>) == sizeof(int) && std::atomic<int>::is_always_lock_free,
                "the futex word is the atomic's int");
  void LockContended();
  void WakeOne();
  void UnlockAndWake();
  std::atomic<int> word_{0};
  std::vector<OwedWake> owed_;  // with the lock held
};

inline void EngineMutex::LockContended() {
  // Spin first (a section is short), reading only, so the holder's release
  // is not slowed by a bouncing cache line; then sleep, marking the word 2
  // so the unlock knows to wake someone.
  for (int spins = 0; spins < kSpins; ++spins) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
    if (word_.load(std::memory_order_relaxed) == 0) {
      int free = 0;
      if (word_.compare_exchange_weak(free, 1, std::memory_order_acquire, std::memory_order_relaxed)) return;
    }
  }
  // 2 from here on: this thread cannot know it is the last sleeper, so a
  // lock taken after a sleep is held as "maybe sleepers" (one spare wake at
  // worst, never a lost one).
  while (word_.exchange(2, std::memory_order_acquire) != 0) {
    syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAIT_PRIVATE, 2, nullptr, nullptr, 0);
  }
}

inline void EngineMutex::WakeOne() {
  syscall(SYS_futex, reinterpret_cast<int*>(&word_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr, 0);
}

inline void EngineMutex::UnlockAndWake() {
  thread_local std::vector<OwedWake> t_waking;  // keeps its capacity: no allocation per unlock
  t_waking.swap(owed_);
  Release();
  for (const OwedWake& o : t_waking) {
    uint64_t one = 1;
    (void)!write(o.fd, &one, sizeof one);
    o.done->store(true, std::memory_order_release);
  }
  t_waking.clear();
}

}  // namespace evshim::shim::inproc
