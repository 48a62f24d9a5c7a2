// libFuzzer target: sequences of foreign system calls and host events.
//
// The input is a script: each record is a call of any entry of the syscall
// table (any personality, either data model) with six arbitrary registers,
// or a host event (time passes, by a few nanoseconds up to most of the
// clock's range: the deadline paths; a watched file becomes ready, a process
// exits, a delivery is refused). Calls run through the real handlers (the
// ABI decoders) into the real engines (event ports, timers, kqueues) over a
// fake host and a fake guest memory whose bytes also come from the input.
// Sanitizers (ASan, UBSan) turn any memory error, overflow or crash into a
// finding; the engines' own invariants are checked after every record.
//
// A call record with bit 0x20 of its op byte goes through the in-process
// entry instead (evshim_engine_call, issue 15 item 8): the engine of this
// very process, with its LinuxHost, real descriptors and real memory. Its
// pointers land in a guarded arena (or in unmapped space: EFAULT); every
// answer must be a foreign errno, never a crash; a periodic thread-directed
// signal ends any wait (EINTR), and after each input the engine must still
// serve a port_send + port_getn (not wedged).
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "abi/common/call.h"
#include "abi/syscall_table.h"
#include "emul/event_port.h"
#include "emul/kqueue.h"
#include "shim/inproc/engine_entry.h"
#include "tests/support/fake_host.h"

namespace {

using namespace evshim;

constexpr uint64_t kBase = 0x10000;  // guest memory [kBase, kBase + kSize)
constexpr size_t kSize = 8192;

class Input {
 public:
  Input(const uint8_t* d, size_t n) : d_(d), n_(n) {}
  bool empty() const { return pos_ >= n_; }
  uint8_t Byte() { return pos_ < n_ ? d_[pos_++] : 0; }
  uint64_t U64() {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(Byte()) << (8 * i);
    return v;
  }

 private:
  const uint8_t* d_;
  size_t n_;
  size_t pos_ = 0;
};

class Memory final : public abi::GuestMemory {
 public:
  std::vector<std::byte> bytes = std::vector<std::byte>(kSize);
  emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    if (!Inside(addr, out.size())) return emul::Errno{EFAULT};
    std::memcpy(out.data(), bytes.data() + (addr - kBase), out.size());
    return {};
  }
  emul::Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    if (!Inside(addr, in.size())) return emul::Errno{EFAULT};
    std::memcpy(bytes.data() + (addr - kBase), in.data(), in.size());
    return {};
  }

 private:
  static bool Inside(uint64_t addr, size_t size) {
    return addr >= kBase && size <= kSize && addr - kBase <= kSize - size;
  }
};

class Responder final : public abi::Responder {
 public:
  explicit Responder(bool* refuse) : refuse_(refuse) {}
  bool StillPending() override { return pending_; }
  bool Respond(const abi::Outcome&) override {
    if (!pending_) __builtin_trap();  // answered twice: an engine bug
    pending_ = false;
    return !*refuse_;
  }

 private:
  bool* refuse_;
  bool pending_ = true;
};

class Context final : public abi::CallContext {
 public:
  Context() : ports_(host_, emul::PortLimits{64, 16, 8}), kqueues_(host_) {}
  testing::FakeHost& host() { return host_; }
  emul::EventPorts& engine() { return ports_; }
  emul::Kqueues& kq() { return kqueues_; }
  Memory mem;
  bool refuse = false;
  emul::Caller who{100, 100};
  std::map<int, std::pair<abi::ObjectKind, emul::ObjectId>> objects;
  int next_fd = 10;

  emul::Caller caller() const override { return who; }
  abi::GuestMemory& memory() override { return mem; }
  emul::Result<emul::ObjectId> Resolve(int fd, abi::ObjectKind kind) override {
    auto it = objects.find(fd);
    if (it == objects.end()) return host_.FdOpen(who.pid, fd) ? emul::Errno{EBADFD} : emul::Errno{EBADF};
    if (it->second.first != kind) return emul::Errno{EBADFD};
    return it->second.second;
  }
  emul::EventPorts& ports() override { return ports_; }
  emul::Kqueues* kqueues() override { return &kqueues_; }
  std::shared_ptr<abi::Responder> Defer() override { return std::make_shared<Responder>(&refuse); }
  void Parked(emul::WaitId id) override { waits.push_back(id); }
  void NotImplemented(std::string_view) override {}
  std::vector<emul::WaitId> waits;

 private:
  testing::FakeHost host_;
  emul::EventPorts ports_;
  emul::Kqueues kqueues_;
};

// Values that mean something to some call: portfs opcodes (with the NOPORT
// and NOSHARE bits), sources, flags, filters, the descriptors emulated
// objects get (10...), timer ids and clocks, boundary values.
constexpr uint64_t kInteresting[] = {
    0x100, 0x104, 1, 2, 3, 5, 6, 7, 8, 0x208, 4, 10, 11, 12, 13, 0, 0x7fffffff, 0x80000000,
    0xffffffff, 0xffffffffffffffffULL, 0x1, 0x11, 0x21, 0x1000000, 0x80000000ULL << 32,
    static_cast<uint64_t>(-1), static_cast<uint64_t>(-2), static_cast<uint64_t>(-7),
    static_cast<uint64_t>(-11), 1000000000, 999999999,
};

uint64_t Arg(Input& in) {
  uint8_t kind = in.Byte();
  uint64_t v = in.U64();
  switch (kind % 5) {
    case 0: return v;                                        // anything
    case 1: return kBase + (v % (kSize + 32));               // a pointer into (or just past) memory
    case 2: return v % 16;                                   // a small number
    case 3: return (v & 0xffffffff00000000ULL) | (v % 64);   // junk in the upper half
    default: return kInteresting[v % std::size(kInteresting)];
  }
}

// --- the in-process entry ---

constexpr size_t kArenaSize = 16 * 4096;
constexpr size_t kArenaGuard = 16 * 4096;  // PROT_NONE on both sides
constexpr int kInterruptSignal = 42;       // a real-time signal nobody else uses here

struct InprocState {
  std::byte* arena = nullptr;
  timer_t interrupter{};
  bool ready = false;
  std::vector<int> objects;  // descriptors the entry made during this input
};
InprocState g_inproc;

void Interrupted(int) {}

void SetUpInproc() {
  if (g_inproc.ready) return;
  unsetenv("EVSHIM_SUPERVISED");
  setenv("EVSHIM_FAST", "1", 1);
  void* m = mmap(nullptr, kArenaSize + 2 * kArenaGuard, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (m == MAP_FAILED) __builtin_trap();
  g_inproc.arena = static_cast<std::byte*>(m) + kArenaGuard;
  if (mprotect(g_inproc.arena, kArenaSize, PROT_READ | PROT_WRITE) != 0) __builtin_trap();
  struct sigaction sa {};
  sa.sa_handler = Interrupted;  // no SA_RESTART: a wait ends with EINTR
  sigaction(kInterruptSignal, &sa, nullptr);
  sigevent sev{};
  sev.sigev_notify = SIGEV_THREAD_ID;
  sev.sigev_signo = kInterruptSignal;
  sev._sigev_un._tid = static_cast<pid_t>(syscall(SYS_gettid));
  if (timer_create(CLOCK_MONOTONIC, &sev, &g_inproc.interrupter) != 0) __builtin_trap();
  g_inproc.ready = true;
}

void ArmInterrupter(bool on) {
  itimerspec its{};
  if (on) its.it_value.tv_nsec = its.it_interval.tv_nsec = 2'000'000;
  timer_settime(g_inproc.interrupter, 0, &its, nullptr);
}

// Whether [addr, addr + 64 KiB) touches mapped memory outside the arena: a
// write there would land in this process's own heap, stack or ASan shadow.
bool TouchesForeignMapping(uint64_t addr) {
  if (addr >= (1ULL << 47)) return false;  // not a user address: EFAULT
  const uint64_t arena = reinterpret_cast<uint64_t>(g_inproc.arena);
  for (uint64_t page = addr & ~4095ULL; page < addr + kArenaSize; page += 4096) {
    if (page >= arena - kArenaGuard && page < arena + kArenaSize + kArenaGuard) continue;
    if (msync(reinterpret_cast<void*>(page), 4096, MS_ASYNC) == 0 || errno != ENOMEM) return true;
  }
  return false;
}

uint64_t InprocArg(Input& in) {
  const uint8_t kind = in.Byte();
  const uint64_t v = in.U64();
  const uint64_t arena = reinterpret_cast<uint64_t>(g_inproc.arena);
  uint64_t a = 0;
  switch (kind % 6) {
    case 0: a = v; break;                                                     // anything
    case 1: a = arena + (v % (kArenaSize + 64)); break;                       // into (or just past) the arena
    case 2: a = v % 16; break;                                                // a small number
    case 3: a = (v & 0xffffffff00000000ULL) | (v % 64); break;                // junk in the upper half
    case 4: a = g_inproc.objects.empty() ? v % 8 : g_inproc.objects[v % g_inproc.objects.size()]; break;
    default: a = kInteresting[v % std::size(kInteresting)]; break;
  }
  if (TouchesForeignMapping(a)) a = arena + (a % kArenaSize);
  return a;
}

long Entry(int nr, std::array<long, 6> args, bool* handled) {
  int h = 0;
  errno = 0;
  const long r = evshim_engine_call(nr, args.data(), &h);
  *handled = h != 0;
  return r;
}

void InprocCall(Input& in, const abi::SyscallEntry& e) {
  std::array<long, 6> args{};
  for (auto& a : args) a = static_cast<long>(InprocArg(in));
  // A SIGEV_SIGNAL timer would make the engine send this process whatever
  // signal the input names (as asked): not a finding.
  if (e.call == abi::Call::kTimerCreate) return;
  ArmInterrupter(true);
  bool handled = false;
  const long r = Entry(e.nr_lp64, args, &handled);
  const int err = errno;
  ArmInterrupter(false);
  if (!handled) return;  // supervised mode or not the engine's: the library would issue it
  if (r == -1) {
    if (err <= 0 || err >= 4096) __builtin_trap();  // an error without a proper errno
    return;
  }
  if (r < -1) __builtin_trap();
  const bool creates = e.call == abi::Call::kKqueue || e.call == abi::Call::kKqueuex ||
                       (e.call == abi::Call::kPortfs && (args[0] & 0x1ff) == 0x100);
  if (creates && r >= 0 && r < 1 << 20) g_inproc.objects.push_back(static_cast<int>(r));
}

// After each input: the objects go, and the engine still answers.
void CheckInprocAlive() {
  for (int fd : g_inproc.objects) close(fd);
  g_inproc.objects.clear();
  bool handled = false;
  const long port = Entry(182, {0x100, 0, 0, 0, 0, 0}, &handled);  // port_create
  if (!handled) __builtin_trap();
  if (port < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == EAGAIN || errno == ENOMEM) return;  // a limit, not a wedge
    __builtin_trap();
  }
  if (Entry(182, {3, port, 7, 0x99, 0, 0}, &handled) != 0) __builtin_trap();  // port_send
  timespec zero{};
  // port_getn(port, arena, 4, 1, &zero): one event, count 1 in the low half.
  std::memcpy(g_inproc.arena, &zero, sizeof zero);
  const long got = Entry(182, {6, port, reinterpret_cast<long>(g_inproc.arena + 64), 4, 1,
                               reinterpret_cast<long>(g_inproc.arena)}, &handled);
  if ((got & 0xffffffff) != 1) __builtin_trap();
  close(static_cast<int>(port));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  SetUpInproc();
  Input in(data, size);
  Context ctx;
  // Guest memory: the first bytes of the input, repeated.
  for (size_t i = 0; i < kSize && size > 0; ++i) ctx.mem.bytes[i] = std::byte{data[i % size]};
  std::vector<testing::FakeHost::FileRef> files;
  for (int fd = 3; fd < 8; ++fd) {
    files.push_back(ctx.host().NewFile());
    ctx.host().Open(100, fd, files.back());
    ctx.host().Open(200, fd, files.back());
  }
  const auto table = abi::AllSyscalls();
  for (int steps = 0; steps < 64 && !in.empty(); ++steps) {
    uint8_t op = in.Byte();
    ctx.refuse = (op & 0x80) != 0;
    ctx.who = (op & 0x40) ? emul::Caller{200, 201} : emul::Caller{100, 100};
    switch (op % 8) {
      case 0:
      case 1:
      case 2:
      case 3: {  // a system call
        const abi::SyscallEntry& e = table[in.Byte() % table.size()];
        if (op & 0x20) {
          InprocCall(in, e);
          break;
        }
        const bool ilp32 = in.Byte() & 1;
        std::array<uint64_t, 6> raw{};
        for (auto& r : raw) r = Arg(in);
        if (e.handler == nullptr) break;
        abi::Outcome out = e.handler(ctx, abi::SyscallArgs(ilp32 ? abi::DataModel::kIlp32 : abi::DataModel::kLp64, raw));
        if (out.kind == abi::Outcome::Kind::kNewObject) ctx.objects[ctx.next_fd++] = {out.object_kind, out.object};
        break;
      }
      case 4: {  // time passes: nanoseconds to most of the clock's range
        const uint8_t how = in.Byte();
        const uint64_t v = in.U64();
        emul::Nanos d = 0;
        switch (how % 4) {
          case 0: d = static_cast<emul::Nanos>(v % 1'000); break;             // ns
          case 1: d = static_cast<emul::Nanos>(v % 256) * 1'000'000; break;   // ms
          case 2: d = static_cast<emul::Nanos>(v % (1ULL << 50)); break;      // up to days
          default: d = static_cast<emul::Nanos>(v >> 1); break;               // anything
        }
        const emul::Nanos room = INT64_MAX - ctx.host().Now();
        ctx.host().Advance(d > room ? room : d);
        // Each engine handles everything due in one call, whatever the
        // periods (no step per period; libFuzzer's -timeout catches a loop),
        // and leaves no deadline of its own in the past.
        ctx.engine().OnDeadline();
        ctx.kq().OnDeadline();
        if (ctx.kq().NextDeadline() <= ctx.host().Now() && ctx.host().Now() != INT64_MAX) __builtin_trap();
        break;
      }
      case 5: {  // a file becomes ready (or not)
        auto& f = files[in.Byte() % files.size()];
        uint32_t bits = in.Byte() & 0x1f;
        ctx.host().SetReady(f, bits, [&](emul::WatchId id, uint32_t b) {
          ctx.engine().OnWatchReady(id, b);
          ctx.kq().OnWatchReady(id, b);
        });
        break;
      }
      case 6: {  // a descriptor is closed, or an object's last descriptor
        int fd = 3 + in.Byte() % 16;
        ctx.host().Close(ctx.who.pid, fd);
        auto it = ctx.objects.find(fd);
        if (it != ctx.objects.end() && (in.Byte() & 1)) {
          if (it->second.first == abi::ObjectKind::kPort) {
            ctx.engine().LastClose(it->second.second);
          }
          ctx.objects.erase(it);
        }
        break;
      }
      default: {  // a process exits, or a parked wait is abandoned
        if (in.Byte() & 1) {
          ctx.engine().ProcessExited(ctx.who.pid);
        } else if (!ctx.waits.empty()) {
          emul::WaitId w = ctx.waits[in.Byte() % ctx.waits.size()];
          ctx.engine().CancelWait(w);
          ctx.kq().CancelWait(w);
        }
        break;
      }
    }
    // Invariants: slots never exceed the limit; counts stay consistent.
    for (auto& [fd, obj] : ctx.objects) {
      if (obj.first != abi::ObjectKind::kPort || !ctx.engine().Exists(obj.second)) continue;
      if (ctx.engine().SlotsInUse(obj.second) > 64 + 8) __builtin_trap();
    }
  }
  CheckInprocAlive();
  return 0;
}
