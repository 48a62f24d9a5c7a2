// A fake abi::CallContext for ABI tests: a guest memory made of mapped
// regions, a descriptor table of emulated objects, a real emul::EventPorts
// over testing::FakeHost, and a responder that records the deferred answer.
// With it a synthetic notification (arch, nr, six registers) runs through the
// syscall table's real handler without any process.
#pragma once

#include <linux/audit.h>

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "abi/common/call.h"
#include "abi/syscall_table.h"
#include "emul/event_port.h"
#include "tests/support/fake_host.h"

namespace evshim::testing {

// Guest memory: non-overlapping regions; an access that is not entirely
// inside one region is EFAULT (all or nothing, as the real transport is).
class FakeGuestMemory final : public abi::GuestMemory {
 public:
  void Map(uint64_t base, size_t size, std::byte fill = std::byte{0xa5}) {
    regions_[base] = std::vector<std::byte>(size, fill);
  }
  void Unmap(uint64_t base) { regions_.erase(base); }
  std::vector<std::byte>& Region(uint64_t base) { return regions_.at(base); }

  emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    std::vector<std::byte>* r = Find(addr, out.size());
    if (r == nullptr) return emul::Errno{EFAULT};
    std::memcpy(out.data(), r->data() + (addr - base_), out.size());
    ++reads;
    return {};
  }
  emul::Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    std::vector<std::byte>* r = Find(addr, in.size());
    if (r == nullptr) return emul::Errno{EFAULT};
    std::memcpy(r->data() + (addr - base_), in.data(), in.size());
    writes.push_back({addr, in.size()});
    return {};
  }

  // As the in-process engine's memory on the caller's own frames
  // (GuestMemory::InPlace): a range wholly inside one region is lent in
  // place, counted in `lent`; what is not goes through Read and Write.
  std::byte* InPlace(uint64_t addr, size_t size) override {
    if (!lends || size == 0) return nullptr;
    std::vector<std::byte>* r = Find(addr, size);
    if (r == nullptr) return nullptr;
    ++lent;
    return r->data() + (addr - base_);
  }
  bool lends = false;
  int lent = 0;

  struct WriteRecord {
    uint64_t addr;
    size_t size;
  };
  std::vector<WriteRecord> writes;
  int reads = 0;

 private:
  std::vector<std::byte>* Find(uint64_t addr, size_t size) {
    auto it = regions_.upper_bound(addr);
    if (it == regions_.begin()) return nullptr;
    --it;
    if (addr < it->first || addr - it->first + size > it->second.size()) return nullptr;
    base_ = it->first;
    return &it->second;
  }
  std::map<uint64_t, std::vector<std::byte>> regions_;
  uint64_t base_ = 0;
};

class RecordingResponder final : public abi::Responder {
 public:
  bool StillPending() override { return pending; }
  bool Respond(const abi::Outcome& out) override {
    if (!pending) return false;
    pending = false;
    outcome = out;
    return true;
  }
  bool pending = true;
  std::optional<abi::Outcome> outcome;
};

class FakeCallContext final : public abi::CallContext {
 public:
  FakeCallContext() : ports_(host_, emul::PortLimits{}) {}

  // --- the test's controls ---
  FakeHost& host() { return host_; }
  FakeGuestMemory& mem() { return memory_; }
  // Installs an emulated object at descriptor `fd` of the caller.
  void Install(int fd, abi::ObjectKind kind, emul::ObjectId obj) { objects_[fd] = {kind, obj}; }
  // Makes a host file ready and lets the engine hear of it.
  void Ready(const FakeHost::FileRef& f, uint32_t bits) {
    host_.SetReady(f, bits, [this](emul::WatchId id, uint32_t b) { ports_.OnWatchReady(id, b); });
  }
  void Expire(emul::Nanos d) {
    host_.Advance(d);
    ports_.OnDeadline();
  }
  std::shared_ptr<RecordingResponder> last_responder;
  // AnswersInCall: as the in-process engine, a retrieval answered before its
  // handler returns is the handler's outcome (no responder taken).
  bool answers_in_call = false;
  std::optional<emul::WaitId> parked;
  std::vector<std::string> not_implemented;

  // --- abi::CallContext ---
  emul::Caller caller() const override { return kCaller; }
  abi::GuestMemory& memory() override { return memory_; }
  emul::Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    auto it = objects_.find(fd);
    if (it == objects_.end()) {
      if (host_.FdOpen(kCaller.pid, fd)) return emul::Errno{EBADFD};  // an ordinary file
      return emul::Errno{EBADF};
    }
    if (it->second.first != kind) return emul::Errno{EBADFD};
    return it->second.second;
  }
  emul::EventPorts& ports() override { return ports_; }
  std::shared_ptr<abi::Responder> Defer() override {
    last_responder = std::make_shared<RecordingResponder>();
    return last_responder;
  }
  bool AnswersInCall() const override { return answers_in_call; }
  void Parked(emul::WaitId id) override { parked = id; }
  void NotImplemented(std::string_view what) override { not_implemented.emplace_back(what); }

  static constexpr emul::Caller kCaller{100, 101};

 private:
  FakeHost host_;
  FakeGuestMemory memory_;
  emul::EventPorts ports_;
  std::map<int, std::pair<abi::ObjectKind, emul::ObjectId>> objects_;
};

// A seccomp notification as the supervisor receives it (the fields it uses).
struct SyntheticNotif {
  uint32_t arch;
  int nr;
  std::array<uint64_t, 6> args;
};

// What the supervisor does with a notification (shim/supervisor/supervisor.cc
// HandleNotification): pick the data model from the audit arch, find the
// entry by number, run its handler. nullopt: the number is not in the table.
inline std::optional<abi::Outcome> Dispatch(abi::CallContext& ctx, const SyntheticNotif& n) {
  const abi::DataModel model = n.arch == AUDIT_ARCH_I386 ? abi::DataModel::kIlp32 : abi::DataModel::kLp64;
  const abi::SyscallEntry* e = abi::FindSyscall(model, n.nr);
  if (e == nullptr || e->handler == nullptr) return std::nullopt;
  return e->handler(ctx, abi::SyscallArgs(model, n.args));
}

}  // namespace evshim::testing
