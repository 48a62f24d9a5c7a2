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
      spare_.block = block;
    } else {
      ::operator delete(block);
    }
  }

 private:
  struct Spare {
    void* block = nullptr;
    bool gone = false;  // the thread is exiting: free, do not keep
    ~Spare() {
      ::operator delete(block);
      block = nullptr;
      gone = true;
    }
  };
  // initial-exec, as the engine's own thread-locals (shim/meson.build): the
  // default model for a shared library costs a __tls_get_addr call per use.
  __attribute__((tls_model("initial-exec"))) static inline thread_local Spare spare_;
};

}  // namespace evshim::abi
