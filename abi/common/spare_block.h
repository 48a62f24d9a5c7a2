// The heap block of a call's completion, kept by its thread for the next.
#pragma once

#include <cstddef>
#include <new>
#include <type_traits>
#include <utility>

namespace evshim::abi {

// A final class whose objects are made once per call and mostly freed on
// the thread that made them (a retrieval's completion: answered at once)
// derives from ThreadSpareBlock<Itself>: that thread keeps the last freed
// block for its next object, so a call allocates nothing for it (final:
// every block has the one size).
template <typename T>
class ThreadSpareBlock {
 public:
  static void* operator new(size_t size) {
    static_assert(std::is_final_v<T>, "one size per block");
    if (void* kept = std::exchange(spare_.block, nullptr)) return kept;
    return ::operator new(size);
  }
  static void operator delete(void* block) {
    if (spare_.block == nullptr && !spare_.gone) {
      Keep(block);
    } else {
      ::operator delete(block);
    }
  }

 private:
  // Trivial and constant-initialized: the thread-local needs no guard, so
  // each use is one access at a fixed offset from the thread pointer. (A
  // destructor on it would add a guard, a thread-local of the default model
  // that costs a __tls_get_addr call per use in the engine's shared
  // library.) What the destructor did is the Reaper's, armed once per
  // thread by the first block kept.
  struct Spare {
    void* block = nullptr;
    bool armed = false;  // this thread's Reaper is registered
    bool gone = false;   // the thread is exiting: free, do not keep
  };
  struct Reaper {
    ~Reaper() {
      ::operator delete(spare_.block);
      spare_.block = nullptr;
      spare_.gone = true;
    }
  };
  static void Keep(void* block) {
    if (!spare_.armed) {
      spare_.armed = true;
      static thread_local Reaper reaper;  // constructed (and its exit registered) here, once
      (void)reaper;
    }
    spare_.block = block;
  }
  // initial-exec, as the engine's own thread-locals (shim/meson.build): the
  // default model for a shared library costs a __tls_get_addr call per use.
  __attribute__((tls_model("initial-exec"))) static constinit inline thread_local Spare spare_;
};

}  // namespace evshim::abi
