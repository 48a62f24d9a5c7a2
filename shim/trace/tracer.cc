#include "shim/trace/tracer.h"

#include <fmt/format.h>
#include <time.h>

#include <algorithm>

#include "abi/syscall_table.h"

namespace evshim::shim::trace {

using abi::trace::Answer;
using abi::trace::CallStart;
using abi::trace::CallView;
using abi::trace::ResultText;

int64_t MonotonicNs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

bool KnownCallName(std::string_view name) {
  for (const abi::SyscallEntry& e : abi::AllSyscalls()) {
    if (e.name == name) return true;
    if (e.trace != nullptr) {
      for (std::string_view n : e.trace->names) {
        if (n == name) return true;
      }
    }
  }
  return false;
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  return out;
}

namespace {

std::string Seconds(int64_t ns) { return fmt::format("{}.{:06}", ns / 1'000'000'000, (ns % 1'000'000'000) / 1000); }

std::string LocationJson(const Location& l) {
  return fmt::format("{{\"object\":{},\"offset\":\"{:#x}\",\"address\":\"{:#x}\"}}", JsonString(l.object),
                     l.offset, l.addr);
}

}  // namespace

Tracer::Tracer(TraceOptions options, Sink sink, Clock clock, SiteSource sites)
    : options_(std::move(options)), sink_(std::move(sink)), clock_(std::move(clock)),
      sites_(std::move(sites)) {
  origin_ns_ = clock_();
}

Tracer::~Tracer() { Finish(); }

bool Tracer::Selected(const Pending& p) const {
  if (options_.only.empty()) return true;
  return options_.only.count(p.text.name) != 0 || options_.only.count(p.syscall) != 0;
}

std::string Tracer::Prefix(const Pending& p) const {
  std::string s = fmt::format("[pid {}", p.start.caller.pid);
  if (p.start.caller.tid != p.start.caller.pid) s += fmt::format(" tid {}", p.start.caller.tid);
  if (default_ && p.personality != default_->first) s += fmt::format(" {}", abi::PersonalityName(p.personality));
  if (default_ && p.start.model != default_->second) s += fmt::format(" {}", abi::DataModelName(p.start.model));
  return s + "] ";
}

std::string Tracer::SiteSuffix(const Pending& p) const {
  if (!options_.sites) return "";
  if (!p.site) return " [at ?]";
  std::string s = fmt::format(" [at {} ({})", p.site->at.Text(), p.site->insn);
  if (p.site->caller) s += fmt::format(", from {}", p.site->caller->Text());
  return s + "]";
}

void Tracer::Emit(const std::string& line) { sink_(line + "\n"); }

void Tracer::OnEnter(const CallStart& call) { Enter(call, clock_(), false, std::nullopt); }

void Tracer::OnServedEnter(const CallStart& call, int64_t time_ns, std::optional<Site> site) {
  Enter(call, time_ns, true, std::move(site));
}

void Tracer::Enter(const CallStart& call, int64_t now_ns, bool in_process, std::optional<Site> site) {
  // A thread has one call in flight: a new call ends an unanswered one.
  if (auto t = in_flight_by_tid_.find(call.caller.tid); t != in_flight_by_tid_.end()) {
    uint64_t old = t->second;
    in_flight_by_tid_.erase(t);
    if (auto o = pending_.find(old); o != pending_.end()) {
      Complete(o->second, nullptr, false, now_ns);
      pending_.erase(o);
    }
  }
  Pending p;
  p.start = call;
  p.start.memory = nullptr;
  p.personality = call.entry != nullptr ? call.entry->personality
                                        : (default_ ? default_->first : abi::Personality::kIllumos);
  p.syscall = call.entry != nullptr ? std::string(call.entry->name) : fmt::format("syscall_{}", call.nr);
  p.format = call.entry != nullptr && call.entry->trace != nullptr ? call.entry->trace
                                                                     : &abi::trace::kGenericFormatter;
  p.text.name = p.syscall;
  abi::SyscallArgs args(call.model, call.raw);
  CallView view(p.personality, call.model, args, call.memory, {});
  p.format->enter(view, p.text);
  if (!Selected(p)) return;
  if (!default_) default_ = {p.personality, call.model};
  p.in_process = in_process;
  if (in_process) {
    p.site = std::move(site);
  } else if (options_.sites && sites_) {
    p.site = sites_(call);
  }
  p.start_ns = in_process ? now_ns : clock_();  // the supervisor's: after the site's reads
  in_flight_by_tid_[call.caller.tid] = call.id;
  pending_[call.id] = std::move(p);
}

void Tracer::OnWrite(uint64_t id, uint64_t addr, std::span<const std::byte> bytes) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  it->second.writes.push_back({addr, std::vector<std::byte>(bytes.begin(), bytes.end())});
}

void Tracer::OnDeferred(uint64_t id) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;  // already answered (or not traced)
  Pending& p = it->second;
  p.unfinished_shown = true;
  if (!options_.lines || options_.json) return;
  const auto& args = p.text.args;
  size_t first_out = 0;
  while (first_out < args.size() && !args[first_out].output) ++first_out;
  std::string s = Prefix(p) + p.text.name + "(";
  for (size_t i = 0; i < first_out; ++i) s += (i ? ", " : "") + args[i].value;
  s += first_out == 0 ? "" : (first_out < args.size() ? ", " : " ");
  Emit(s + "<unfinished ...>" + SiteSuffix(p));
}

void Tracer::OnExit(uint64_t id, int64_t value, int error, bool delivered) {
  Exit(id, value, error, delivered, clock_());
}

void Tracer::OnServedExit(uint64_t id, int64_t value, int error, bool delivered, int64_t time_ns) {
  Exit(id, value, error, delivered, time_ns);
}

void Tracer::Exit(uint64_t id, int64_t value, int error, bool delivered, int64_t now_ns) {
  auto it = pending_.find(id);
  if (it == pending_.end()) return;
  Answer answer{value, error};
  Complete(it->second, &answer, delivered, now_ns);
  auto t = in_flight_by_tid_.find(it->second.start.caller.tid);
  if (t != in_flight_by_tid_.end() && t->second == id) in_flight_by_tid_.erase(t);
  pending_.erase(it);
}

void Tracer::Complete(Pending& p, const Answer* answer, bool delivered, int64_t now_ns) {
  const int64_t dur = std::max<int64_t>(0, now_ns - p.start_ns);
  ResultText rt;
  const bool answered = answer != nullptr && delivered;
  if (answered) {
    abi::SyscallArgs args(p.start.model, p.start.raw);
    CallView view(p.personality, p.start.model, args, nullptr, p.writes);
    p.format->exit(view, p.text, *answer, rt);
  } else {
    rt.text = "? (interrupted)";
  }
  if (options_.summary) {
    Stats& s = stats_[p.text.name];
    ++s.calls;
    s.errors += rt.failed ? 1 : 0;
    s.total_ns += dur;
  }
  if (!options_.lines) return;

  std::vector<std::string> values;
  for (const auto& a : p.text.args) values.push_back(a.value);
  for (const auto& [index, v] : rt.outputs) {
    if (index < values.size()) values[index] = v;
  }

  if (options_.json) {
    std::string j = fmt::format(
        "{{\"pid\":{},\"tid\":{},\"personality\":{},\"data_model\":{},\"syscall\":{},\"nr\":{},\"call\":{},"
        "\"args\":[",
        p.start.caller.pid, p.start.caller.tid, JsonString(abi::PersonalityName(p.personality)),
        JsonString(abi::DataModelName(p.start.model)), JsonString(p.syscall), p.start.nr,
        JsonString(p.text.name));
    for (size_t i = 0; i < values.size(); ++i) {
      j += fmt::format("{}{{\"name\":{},\"value\":{},\"output\":{}}}", i ? "," : "",
                       JsonString(p.text.args[i].name), JsonString(values[i]),
                       p.text.args[i].output ? "true" : "false");
    }
    j += "],\"raw_args\":[";
    for (size_t i = 0; i < p.start.raw.size(); ++i) j += fmt::format("{}\"{:#x}\"", i ? "," : "", p.start.raw[i]);
    j += "],";
    if (answered) {
      j += answer->error != 0
               ? fmt::format("\"result\":-1,\"errno\":{},", JsonString(abi::trace::ErrnoName(answer->error)))
               : fmt::format("\"result\":{},\"errno\":null,", answer->value);
    } else {
      j += "\"result\":null,\"errno\":null,";
    }
    j += fmt::format(
        "\"result_text\":{},\"failed\":{},\"api_errno\":{},\"start\":{},\"duration\":{},\"blocked\":{},"
        "\"interrupted\":{},\"served\":{}",
        JsonString(rt.text), rt.failed ? "true" : "false",
        rt.errname.empty() ? std::string("null") : JsonString(rt.errname),
        Seconds(std::max<int64_t>(0, p.start_ns - origin_ns_)), Seconds(dur), p.unfinished_shown ? "true" : "false",
        answered ? "false" : "true", p.in_process ? "\"in-process\"" : "\"supervisor\"");
    if (options_.sites) {
      if (p.site) {
        j += fmt::format(",\"site\":{{\"at\":{},\"insn\":{},\"caller\":{}}}", LocationJson(p.site->at),
                         JsonString(p.site->insn), p.site->caller ? LocationJson(*p.site->caller) : "null");
      } else {
        j += ",\"site\":null";
      }
    }
    Emit(j + "}");
    return;
  }

  const std::string tail = fmt::format(") = {} <{}>", rt.text, Seconds(dur));
  if (p.unfinished_shown) {
    size_t first_out = 0;
    while (first_out < values.size() && !p.text.args[first_out].output) ++first_out;
    std::string s = Prefix(p) + "<... " + p.text.name + " resumed>";
    for (size_t i = first_out; i < values.size(); ++i) s += (i > first_out ? ", " : "") + values[i];
    Emit(s + tail);
    return;
  }
  std::string s = Prefix(p) + p.text.name + "(";
  for (size_t i = 0; i < values.size(); ++i) s += (i ? ", " : "") + values[i];
  Emit(s + tail + SiteSuffix(p));
}

void Tracer::Finish() {
  if (finished_) return;
  finished_ = true;
  std::vector<Pending*> left;
  for (auto& [id, p] : pending_) left.push_back(&p);
  std::sort(left.begin(), left.end(), [](const Pending* a, const Pending* b) { return a->start_ns < b->start_ns; });
  const int64_t now = clock_();
  for (Pending* p : left) Complete(*p, nullptr, false, now);
  pending_.clear();
  in_flight_by_tid_.clear();
  if (!options_.summary) return;
  std::vector<std::pair<std::string, Stats>> rows(stats_.begin(), stats_.end());
  std::stable_sort(rows.begin(), rows.end(),
                   [](const auto& a, const auto& b) { return a.second.total_ns > b.second.total_ns; });
  const std::string rule = "------- ------- ------------ ------------ ----------------";
  Emit(fmt::format("{:>7} {:>7} {:>12} {:>12} {}", "calls", "errors", "total (s)", "avg (us)", "call"));
  Emit(rule);
  Stats total;
  for (const auto& [name, s] : rows) {
    Emit(fmt::format("{:>7} {:>7} {:>12} {:>12.1f} {}", s.calls, s.errors, Seconds(s.total_ns),
                     static_cast<double>(s.total_ns) / 1000.0 / static_cast<double>(s.calls), name));
    total.calls += s.calls;
    total.errors += s.errors;
    total.total_ns += s.total_ns;
  }
  Emit(rule);
  Emit(fmt::format("{:>7} {:>7} {:>12} {:>12.1f} {}", total.calls, total.errors, Seconds(total.total_ns),
                   total.calls ? static_cast<double>(total.total_ns) / 1000.0 / static_cast<double>(total.calls) : 0.0,
                   "total"));
}

}  // namespace evshim::shim::trace
