#include "shim/supervisor/parked_calls.h"

namespace evshim::shim {

std::optional<emul::WaitId> ParkedCalls::Park(emul::WaitId wait, ParkedCall call) {
  std::optional<emul::WaitId> displaced;
  if (auto old = by_thread_.find(call.tid); old != by_thread_.end() && old->second != wait) {
    displaced = old->second;
    calls_.erase(old->second);
  }
  by_thread_[call.tid] = wait;
  calls_[wait] = std::move(call);
  return displaced;
}

void ParkedCalls::Answered(pid_t tid, uint64_t notif_id) {
  auto t = by_thread_.find(tid);
  if (t == by_thread_.end()) return;
  auto c = calls_.find(t->second);
  if (c != calls_.end() && c->second.notif_id == notif_id) {
    calls_.erase(c);
    by_thread_.erase(t);
  }
}

std::optional<std::pair<emul::WaitId, ParkedCall>> ParkedCalls::TakeThread(pid_t tid) {
  auto t = by_thread_.find(tid);
  if (t == by_thread_.end()) return std::nullopt;
  const emul::WaitId wait = t->second;
  by_thread_.erase(t);
  auto c = calls_.find(wait);
  ParkedCall call = std::move(c->second);
  calls_.erase(c);
  return std::make_pair(wait, std::move(call));
}

std::vector<std::pair<emul::WaitId, ParkedCall>> ParkedCalls::TakeIf(
    const std::function<bool(const ParkedCall&)>& doomed) {
  std::vector<std::pair<emul::WaitId, ParkedCall>> taken;
  for (auto it = calls_.begin(); it != calls_.end();) {
    if (!doomed(it->second)) {
      ++it;
      continue;
    }
    by_thread_.erase(it->second.tid);
    taken.emplace_back(it->first, std::move(it->second));
    it = calls_.erase(it);
  }
  return taken;
}

std::vector<ParkedCalls::Named> ParkedCalls::NamedObjects() const {
  std::vector<Named> named;
  for (const auto& [wait, call] : calls_) {
    if (call.named) named.push_back({wait, call.tid, call.named->first, call.named->second});
  }
  return named;
}

void ParkedCalls::ForgetNamed(emul::WaitId wait) {
  auto c = calls_.find(wait);
  if (c != calls_.end()) c->second.named.reset();
}

bool ParkedCalls::Consistent() const {
  if (calls_.size() != by_thread_.size()) return false;
  for (const auto& [tid, wait] : by_thread_) {
    auto c = calls_.find(wait);
    if (c == calls_.end() || c->second.tid != tid) return false;
  }
  return true;
}

}  // namespace evshim::shim
