// The launcher's end of the fast path's trace channel (docs/trace.md "Fast
// mode"): an abstract stream socket the program's in-process engines
// connect to (its name travels in EVSHIM_TRACE_CHANNEL), one connection per
// process, read by a thread that hands each record to the Tracer, the same
// Tracer the supervisor reports to (under one lock: LockedObserver).
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>

#include "abi/trace/observer.h"
#include "shim/trace/tracer.h"

namespace evshim::shim::trace {

class FastPathChannel;

// The supervisor's observer while a channel feeds the same tracer.
class LockedObserver final : public abi::trace::CallObserver {
 public:
  LockedObserver(Tracer& tracer, std::mutex& mu, FastPathChannel* channel)
      : tracer_(tracer), mu_(mu), channel_(channel) {}
  void OnEnter(const abi::trace::CallStart& call) override;
  void OnWrite(uint64_t id, uint64_t addr, std::span<const std::byte> bytes) override;
  void OnDeferred(uint64_t id) override;
  void OnExit(uint64_t id, int64_t value, int error, bool delivered) override;

 private:
  Tracer& tracer_;
  std::mutex& mu_;
  FastPathChannel* channel_;
};

class FastPathChannel {
 public:
  // Listens on a fresh name; records go to `tracer` under `mu`. `sites`:
  // the engines report call sites (--sites). nullptr (errno set) on failure.
  static std::unique_ptr<FastPathChannel> Open(Tracer& tracer, std::mutex& mu, bool sites);
  ~FastPathChannel();
  FastPathChannel(const FastPathChannel&) = delete;
  FastPathChannel& operator=(const FastPathChannel&) = delete;

  // EVSHIM_TRACE_CHANNEL's value for the program.
  const std::string& environment_value() const { return env_value_; }

  // Starts reading (a thread): after the launcher's fork, so the child
  // never inherits a lock that thread holds. Connections made before wait.
  void Start();

  // Hands the tracer every record already sent (the caller holds the
  // tracer's lock): the supervisor's calls come after them.
  void DrainLocked();

  // Reads everything the processes sent and stops; call once the traced
  // tree is gone (every record is then in the sockets). Idempotent.
  void Stop();

 private:
  class Reader;
  FastPathChannel() = default;

  std::string env_value_;
  int stop_fd_ = -1;
  std::unique_ptr<Reader> reader_;
  std::thread thread_;
};

}  // namespace evshim::shim::trace
