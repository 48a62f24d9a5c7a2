// The in-process engine's hand-over counts (evshim_engine_hand_overs,
// shim/inproc/engine_entry.h), for the tests that run the real engine in
// their own process (inproc_test.cc, inproc_kqueue_test.cc): whether a
// retrieval was answered by the hand-over or by the queued path, which
// answer alike.
#pragma once

#include <dlfcn.h>

#include <cstdint>

#include "shim/inproc/engine_entry.h"

namespace evshim::testing {

struct HandOverCounts {
  uint64_t port_retrievals = 0;
  uint64_t kevents = 0;
  bool engine = false;  // an engine serves this process
};

// The engine is loaded with the foreign library (not linked by the test).
inline HandOverCounts EngineHandOvers() {
  using Entry = int (*)(evshim_engine_hand_over_counts*);
  static const Entry entry = reinterpret_cast<Entry>(dlsym(RTLD_DEFAULT, "evshim_engine_hand_overs"));
  HandOverCounts out;
  if (entry == nullptr) return out;
  evshim_engine_hand_over_counts counts{};
  out.engine = entry(&counts) != 0;
  out.port_retrievals = counts.port_retrievals;
  out.kevents = counts.kevents;
  return out;
}

}  // namespace evshim::testing
