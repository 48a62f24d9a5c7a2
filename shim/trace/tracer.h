// `evshim trace`: the observer that turns the supervisor's calls into
// strace-like lines, JSON lines (docs/trace-schema.json) or a summary.
// Formatting comes from the syscall table's per-personality formatters
// (abi/trace/format.h); this file only assembles and writes.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "abi/trace/format.h"
#include "abi/trace/observer.h"
#include "shim/trace/sites.h"

namespace evshim::shim::trace {

struct TraceOptions {
  bool json = false;     // --json: one JSON object per completed call
  bool lines = true;     // per-call output (-c turns it off)
  bool summary = false;  // -c / -C: the table at exit
  bool sites = false;    // --sites
  std::set<std::string> only;  // -e: call or syscall names; empty = all
};

// Is `name` something `-e` can select (a formatter's call name or a table name)?
bool KnownCallName(std::string_view name);
// Escapes `s` as a JSON string, quotes included.
std::string JsonString(std::string_view s);

class Tracer final : public abi::trace::CallObserver {
 public:
  using Sink = std::function<void(std::string_view)>;
  using Clock = std::function<int64_t()>;  // monotonic nanoseconds
  using SiteSource = std::function<std::optional<Site>(const abi::trace::CallStart&)>;

  Tracer(TraceOptions options, Sink sink, Clock clock, SiteSource sites);
  ~Tracer() override;

  void OnEnter(const abi::trace::CallStart& call) override;
  void OnWrite(uint64_t id, uint64_t addr, std::span<const std::byte> bytes) override;
  void OnDeferred(uint64_t id) override;
  void OnExit(uint64_t id, int64_t value, int error, bool delivered) override;

  // A call an in-process engine served (docs/trace.md "Fast mode"): its
  // times (CLOCK_MONOTONIC, as MonotonicNs) and site come with its records.
  // `call.memory` holds what the engine read at entry.
  void OnServedEnter(const abi::trace::CallStart& call, int64_t time_ns, std::optional<Site> site);
  void OnServedExit(uint64_t id, int64_t value, int error, bool delivered, int64_t time_ns);

  // Ends calls still in flight (their thread exited or was interrupted) and
  // writes the summary. Idempotent; the destructor calls it.
  void Finish();

 private:
  struct Pending {
    abi::trace::CallStart start;  // memory is cleared after OnEnter
    abi::Personality personality = abi::Personality::kIllumos;
    std::string syscall;          // the table's name
    const abi::trace::Formatter* format = nullptr;
    abi::trace::CallText text;
    std::vector<abi::trace::Write> writes;
    int64_t start_ns = 0;
    bool unfinished_shown = false;
    bool in_process = false;  // served by the fast path, not the supervisor
    std::optional<Site> site;
  };
  struct Stats {
    uint64_t calls = 0, errors = 0;
    int64_t total_ns = 0;
  };

  bool Selected(const Pending& p) const;
  std::string Prefix(const Pending& p) const;
  std::string SiteSuffix(const Pending& p) const;
  void Enter(const abi::trace::CallStart& call, int64_t now_ns, bool in_process, std::optional<Site> site);
  void Exit(uint64_t id, int64_t value, int error, bool delivered, int64_t now_ns);
  // Completes `p` at `now_ns`: `answer` is null when the caller was never answered.
  void Complete(Pending& p, const abi::trace::Answer* answer, bool delivered, int64_t now_ns);
  void Emit(const std::string& line);

  TraceOptions options_;
  Sink sink_;
  Clock clock_;
  SiteSource sites_;
  int64_t origin_ns_ = 0;
  bool finished_ = false;
  std::optional<std::pair<abi::Personality, abi::DataModel>> default_;
  std::unordered_map<uint64_t, Pending> pending_;
  std::unordered_map<int32_t, uint64_t> in_flight_by_tid_;
  std::map<std::string, Stats> stats_;
};

// The real clock (CLOCK_MONOTONIC).
int64_t MonotonicNs();

}  // namespace evshim::shim::trace
