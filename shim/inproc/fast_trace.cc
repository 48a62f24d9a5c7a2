#include "shim/inproc/fast_trace.h"

#include <fcntl.h>
#include <link.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "abi/trace/format.h"
#include "shim/inproc/engine_entry.h"
#include "shim/inproc/native_abi.h"
#include "shim/trace/record.h"

namespace evshim::shim::inproc::fasttrace {

namespace record = shim::trace::record;

std::atomic<int> g_state{0};

namespace {

// The entry reads a formatter may make are small (a timeout, the first 32
// kevent records, port_sendn's list); past this much, reads are not
// recorded and show as unreadable.
constexpr size_t kMaxEntryBytes = 1 << 20;

int64_t NowNs() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// The connection to the launcher, one per process: a forked child opens
// its own (its copy of the parent's is closed), so each stream is one
// process's calls in order.
struct Channel {
  std::mutex mu;
  std::string name;
  bool sites = false;
  int fd = -1;
  pid_t pid = 0;
  ino_t inode = 0;  // of our socket: the program may close the number and reuse it
};

Channel& TheChannel() {
  static Channel* c = new Channel;  // never destroyed: calls may come during exit
  return *c;
}

void TurnOff(Channel& c, const char* why) {
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
  g_state.store(1, std::memory_order_relaxed);
  std::fprintf(stderr, "evshim: trace channel %s; this process's in-process calls are not traced\n", why);
}

// Tracing must not change the program's descriptor numbers: the channel
// takes a free number at the top of RLIMIT_NOFILE, not the lowest one.
int MoveHigh(int fd) {
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return fd;
  const long top = static_cast<long>(std::min<rlim_t>(rl.rlim_cur, 1 << 20)) - 1;
  for (long want = top; want > fd && want > top - 64; --want) {
    const int moved = fcntl(fd, F_DUPFD_CLOEXEC, static_cast<int>(want));
    if (moved >= 0) {
      close(fd);
      return moved;
    }
  }
  return fd;
}

// Connects this process (under c.mu). False: tracing is now off.
bool Connect(Channel& c) {
  const pid_t pid = getpid();
  if (c.fd >= 0) {
    struct stat st {};
    const bool ours = fstat(c.fd, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == c.inode;
    if (ours && c.pid == pid) return true;
    if (ours) close(c.fd);  // the parent's connection, inherited over fork
    // Not ours any more (the program closed it, maybe reopened the
    // number): leave it alone and connect again.
    c.fd = -1;
  }
  c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  c.pid = pid;
  if (c.fd < 0) {
    TurnOff(c, "cannot be opened");
    return false;
  }
  c.fd = MoveHigh(c.fd);
  struct stat st {};
  c.inode = fstat(c.fd, &st) == 0 ? st.st_ino : 0;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const size_t n = std::min(c.name.size(), sizeof addr.sun_path - 1);
  std::memcpy(addr.sun_path + 1, c.name.data(), n);  // abstract: a leading NUL
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  while (connect(c.fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    if (errno == EINTR) continue;
    TurnOff(c, "is unreachable");
    return false;
  }
  // The launcher checks who we are (our user, or a descendant of it) and
  // answers one byte: until then this process stays alive for the check (a
  // short-lived child would otherwise be gone from /proc before it).
  timeval limit{5, 0};
  setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  char ack = 0;
  ssize_t got;
  do got = recv(c.fd, &ack, 1, 0);
  while (got < 0 && errno == EINTR);
  if (got != 1) {
    TurnOff(c, "refused this process");
    return false;
  }
  return true;
}

void Send(std::span<const std::byte> bytes) {
  Channel& c = TheChannel();
  std::lock_guard<std::mutex> lock(c.mu);
  if (g_state.load(std::memory_order_relaxed) != 2 || !Connect(c)) return;
  while (!bytes.empty()) {
    ssize_t n = send(c.fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n < 0 && errno == EBADF) c.fd = -1;  // closed by the program meanwhile: not ours to close
      TurnOff(c, "was closed");  // the launcher is gone
      return;
    }
    bytes = bytes.subspan(static_cast<size_t>(n));
  }
}

thread_local const void* t_call_site = nullptr;
thread_local CallTrace* t_current = nullptr;
// A signal handler may call in while this thread waits inside the engine
// (the lock is free then): that call gets the second one. Deeper: untraced.
thread_local std::unique_ptr<CallTrace> t_traces[2];

// An address as object + file offset (what /proc/PID/maps would say), from
// the loader's program headers.
struct Located {
  uint64_t addr = 0, offset = 0;
  std::string object;
};

std::string Basename(std::string_view path) {
  const size_t slash = path.rfind('/');
  return std::string(slash == std::string_view::npos ? path : path.substr(slash + 1));
}

std::string ProgramName() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? Basename(std::string_view(buf, static_cast<size_t>(n))) : std::string("?");
}

Located Locate(const void* p) {
  struct Search {
    uintptr_t addr;
    Located found;
  } s{reinterpret_cast<uintptr_t>(p), {}};
  if (p == nullptr) return {};
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void* data) -> int {
        auto* search = static_cast<Search*>(data);
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD) continue;
          const uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          if (search->addr < start || search->addr >= start + ph.p_memsz) continue;
          search->found.addr = search->addr;
          search->found.offset = ph.p_offset + (search->addr - start);
          const char* name = info->dlpi_name;
          search->found.object = name != nullptr && *name != '\0' ? Basename(name) : ProgramName();
          return 1;
        }
        return 0;
      },
      &s);
  return s.found;
}

}  // namespace

bool Decide() {
  const char* v = std::getenv(record::kChannelVariable);
  if (v == nullptr || *v == '\0') {
    g_state.store(1, std::memory_order_relaxed);
    return false;
  }
  std::string_view value(v);
  Channel& c = TheChannel();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    const size_t comma = value.find(',');
    c.name = std::string(value.substr(0, comma));
    c.sites = comma != std::string_view::npos && value.substr(comma + 1) == "sites";
  }
  g_state.store(2, std::memory_order_relaxed);
  return true;
}

void NoteCallSite(const void* return_address) { t_call_site = return_address; }

// The handler's memory: the process's own, with every write reported; at
// entry it also keeps what the formatter read.
class CallTrace::Memory final : public abi::GuestMemory {
 public:
  abi::GuestMemory* real = nullptr;
  CallTrace* owner = nullptr;
  bool recording = false;
  uint32_t regions = 0;
  std::vector<std::byte> reads;

  emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    emul::Result<void> r = real->Read(addr, out);
    if (recording && reads.size() + out.size() <= kMaxEntryBytes) {
      record::RegionHeader h{addr, static_cast<uint32_t>(out.size()), r.ok() ? 1u : 0u};
      auto hb = record::Bytes(h);
      reads.insert(reads.end(), hb.begin(), hb.end());
      if (r.ok()) reads.insert(reads.end(), out.begin(), out.end());
      ++regions;
    }
    return r;
  }
  emul::Result<void> Write(uint64_t addr, std::span<const std::byte> in) override {
    emul::Result<void> r = real->Write(addr, in);
    if (r.ok() && (owner->phase_ == Phase::kHandling || owner->phase_ == Phase::kOpen)) {
      const std::span<const std::byte> parts[] = {record::Bytes(addr), in};
      record::Append(owner->pending_, record::Type::kWrite, owner->id_, parts);
    }
    return r;
  }
};

CallTrace::~CallTrace() { delete memory_; }

abi::GuestMemory& CallTrace::memory() { return *memory_; }

void CallTrace::Begin(const abi::SyscallEntry& entry, int nr, const uint64_t raw[6], pid_t pid, pid_t tid,
                      abi::GuestMemory& memory) {
  static std::atomic<uint64_t> next_id{0};
  id_ = next_id.fetch_add(1, std::memory_order_relaxed) + 1;
  phase_ = Phase::kHandling;
  answered_early_ = false;
  pending_.clear();
  if (memory_ == nullptr) memory_ = new Memory;  // lives as long as the thread's CallTrace
  memory_->real = &memory;
  memory_->owner = this;
  memory_->reads.clear();
  memory_->regions = 0;

  // The inputs, read now as the launcher's formatter will ask for them
  // (the handler may overwrite them: kevent's lists can be one buffer).
  std::array<uint64_t, 6> regs{};
  for (int i = 0; i < 6; ++i) regs[i] = raw[i];
  abi::SyscallArgs args(kProcessModel, regs);
  const abi::trace::Formatter* f = entry.trace != nullptr ? entry.trace : &abi::trace::kGenericFormatter;
  abi::trace::CallText text;
  text.name = std::string(entry.name);  // as the Tracer presets it (the timer formatter reads it)
  memory_->recording = true;
  f->enter(abi::trace::CallView(entry.personality, kProcessModel, args, memory_, {}), text);
  memory_->recording = false;
  outer_ = t_current;

  record::EnterBody body;
  body.pid = pid;
  body.tid = tid;
  body.nr = nr;
  body.model = static_cast<uint32_t>(kProcessModel);
  body.regions = memory_->regions;
  for (int i = 0; i < 6; ++i) body.raw[i] = raw[i];
  body.time_ns = NowNs();
  Located at, from;
  if (TheChannel().sites) {
    at = Locate(reinterpret_cast<const void*>(&evshim_engine_call));
    from = Locate(t_call_site);
  }
  body.at_addr = at.addr;
  body.at_offset = at.offset;
  body.from_addr = from.addr;
  body.from_offset = from.offset;
  body.at_name_size = static_cast<uint32_t>(at.object.size());
  body.from_name_size = static_cast<uint32_t>(from.object.size());
  const std::span<const std::byte> parts[] = {record::Bytes(body), record::Bytes(std::string_view(at.object)),
                                              record::Bytes(std::string_view(from.object)), memory_->reads};
  record::Append(pending_, record::Type::kEnter, id_, parts);
  t_current = this;
}

void CallTrace::Handled(bool foreign, bool deferred) {
  if (foreign) {
    // The supervisor serves it, and traces it.
    pending_.clear();
    phase_ = Phase::kIdle;
    t_current = outer_;
    return;
  }
  if (!deferred) {
    phase_ = Phase::kOpen;
    return;
  }
  if (answered_early_) {
    // A retrieval that found events: one line, as the supervisor shows it.
    phase_ = Phase::kDone;
  } else {
    record::Append(pending_, record::Type::kDeferred, id_, {});
    phase_ = Phase::kOpen;
  }
  Flush();
}

void CallTrace::Answered(const abi::Outcome& outcome) {
  if (phase_ != Phase::kHandling && phase_ != Phase::kOpen) return;
  if (outcome.kind == abi::Outcome::Kind::kError) {
    AddExit(-1, outcome.error);
  } else {
    AddExit(outcome.value, 0);
  }
  if (phase_ == Phase::kHandling) {
    answered_early_ = true;  // Handled() sends it
    return;
  }
  // Now, not when the waiter wakes: the answer comes before whatever the
  // answering thread's own call shows, as in the supervisor.
  phase_ = Phase::kDone;
  Flush();
}

void CallTrace::End(long result) {
  if (phase_ == Phase::kOpen || phase_ == Phase::kHandling) {
    if (result < 0) {
      AddExit(-1, static_cast<int>(-result));
    } else {
      AddExit(result, 0);
    }
    Flush();
  }
  phase_ = Phase::kIdle;
  t_current = outer_;
}

void CallTrace::AddExit(int64_t value, int error) {
  record::ExitBody body;
  body.value = value;
  body.error = error;
  body.delivered = 1;
  body.time_ns = NowNs();
  const std::span<const std::byte> parts[] = {record::Bytes(body)};
  record::Append(pending_, record::Type::kExit, id_, parts);
}

void CallTrace::Flush() {
  if (!pending_.empty()) Send(pending_);
  pending_.clear();
}

CallTrace* Begin(const abi::SyscallEntry& entry, int nr, const uint64_t raw[6], pid_t pid, pid_t tid,
                 abi::GuestMemory& memory) {
  for (std::unique_ptr<CallTrace>& t : t_traces) {
    if (!t) t = std::make_unique<CallTrace>();
    if (!t->busy()) {
      t->Begin(entry, nr, raw, pid, tid, memory);
      return t.get();
    }
  }
  return nullptr;
}

CallTrace* Current() { return t_current; }

}  // namespace evshim::shim::inproc::fasttrace
