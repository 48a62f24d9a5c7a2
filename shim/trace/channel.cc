#include "shim/trace/channel.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <vector>

#include <fmt/format.h>

#include "abi/syscall_table.h"
#include "shim/trace/record.h"

namespace evshim::shim::trace {

// A thread's in-process calls were all sent before it made this one: taken
// first, so each thread's lines stay in order across the two paths.
void LockedObserver::OnEnter(const abi::trace::CallStart& call) {
  std::lock_guard<std::mutex> lock(mu_);
  if (channel_ != nullptr) channel_->DrainLocked();
  tracer_.OnEnter(call);
}
void LockedObserver::OnWrite(uint64_t id, uint64_t addr, std::span<const std::byte> bytes) {
  std::lock_guard<std::mutex> lock(mu_);
  tracer_.OnWrite(id, addr, bytes);
}
void LockedObserver::OnDeferred(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  tracer_.OnDeferred(id);
}
void LockedObserver::OnExit(uint64_t id, int64_t value, int error, bool delivered) {
  std::lock_guard<std::mutex> lock(mu_);
  if (channel_ != nullptr) channel_->DrainLocked();
  tracer_.OnExit(id, value, error, delivered);
}

namespace {

// True if `pid` descends from this process (parent links in /proc, at most
// 256 levels: a guest cannot make the walk unbounded).
bool IsOurDescendant(pid_t pid) {
  const pid_t self = getpid();
  for (int depth = 0; depth < 256 && pid > 1; ++depth) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    FILE* f = std::fopen(path, "re");
    if (f == nullptr) return false;
    char buf[512];
    const size_t n = std::fread(buf, 1, sizeof buf - 1, f);
    std::fclose(f);
    buf[n] = '\0';
    const char* close_paren = std::strrchr(buf, ')');  // the name may hold ')' or spaces
    int parent = 0;
    if (close_paren == nullptr || std::sscanf(close_paren + 1, " %*c %d", &parent) != 1) return false;
    if (parent == self) return true;
    pid = parent;
  }
  return false;
}

// The caller's memory as the engine read it at entry: the formatter asks
// the same reads again; anything else is unreadable.
class EntrySnapshot final : public abi::GuestMemory {
 public:
  struct Region {
    uint64_t addr;
    bool readable;
    std::span<const std::byte> bytes;
  };
  std::vector<Region> regions;

  emul::Result<void> Read(uint64_t addr, std::span<std::byte> out) override {
    for (const Region& r : regions) {
      if (!r.readable || addr < r.addr || addr - r.addr > r.bytes.size() ||
          out.size() > r.bytes.size() - (addr - r.addr)) {
        continue;
      }
      std::memcpy(out.data(), r.bytes.data() + (addr - r.addr), out.size());
      return {};
    }
    return emul::Errno{EFAULT};
  }
  emul::Result<void> Write(uint64_t, std::span<const std::byte>) override { return emul::Errno{EFAULT}; }
};

}  // namespace

class FastPathChannel::Reader {
 public:
  // Everything below runs with mu_ (the tracer's lock) held.
  Reader(Tracer& tracer, std::mutex& mu) : tracer_(tracer), mu_(mu) {}
  ~Reader() {
    for (auto& [fd, c] : conns_) close(fd);
    if (epoll_ >= 0) close(epoll_);
    if (listener_ >= 0) close(listener_);
  }

  int listener_ = -1;
  int epoll_ = -1;

  void Run(int stop_fd) {
    for (;;) {
      epoll_event events[16];
      int n = epoll_wait(epoll_, events, 16, -1);
      if (n < 0) {
        if (errno == EINTR) continue;
        return;
      }
      std::lock_guard<std::mutex> lock(mu_);
      for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (fd == stop_fd) {
          DrainLocked();
          return;
        }
        if (fd == listener_) {
          AcceptAll();
        } else {
          ReadConnection(fd);
        }
      }
    }
  }

  struct Connection {
    std::vector<std::byte> buffer;
    std::unordered_map<uint64_t, uint64_t> ids;  // the engine's id -> the tracer's
  };

  void AcceptAll() {
    for (;;) {
      int fd = accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        return;
      }
      // The name is visible to the whole host: only our user's processes,
      // and the traced tree's own (a server's workers that changed user).
      ucred cred{};
      socklen_t len = sizeof cred;
      if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
          (cred.uid != getuid() && !IsOurDescendant(cred.pid))) {
        close(fd);
        continue;
      }
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = fd;
      epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
      conns_[fd];
      // Accepted: the process waits for this byte before it sends (fast_trace.cc Connect).
      const char ack = 'y';
      if (send(fd, &ack, 1, MSG_NOSIGNAL) != 1) {
        epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
        conns_.erase(fd);
        close(fd);
      }
    }
  }

  // Reads what is there; closes the connection at its end.
  void ReadConnection(int fd) {
    auto it = conns_.find(fd);
    if (it == conns_.end()) return;
    Connection& c = it->second;
    std::byte chunk[65536];
    for (;;) {
      ssize_t n = read(fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n > 0) {
        c.buffer.insert(c.buffer.end(), chunk, chunk + n);
        if (!Parse(c)) n = 0;  // a corrupt stream: drop it
        if (n > 0) continue;
      }
      if (n < 0 && errno == EAGAIN) return;
      epoll_ctl(epoll_, EPOLL_CTL_DEL, fd, nullptr);
      close(fd);
      conns_.erase(it);
      return;
    }
  }

  // Everything the processes sent so far, handed to the tracer now (mu_ held).
  void DrainLocked() {
    AcceptAll();
    std::vector<int> fds;
    for (auto& [fd, c] : conns_) fds.push_back(fd);
    for (int fd : fds) ReadConnection(fd);
  }

  // Hands every complete record to the tracer. False: the stream is corrupt.
  bool Parse(Connection& c) {
    size_t at = 0;
    bool ok = true;
    while (c.buffer.size() - at >= sizeof(record::RecordHeader)) {
      record::RecordHeader h;
      std::memcpy(&h, c.buffer.data() + at, sizeof h);
      if (h.size > record::kMaxBody) {
        ok = false;
        break;
      }
      if (c.buffer.size() - at - sizeof h < h.size) break;
      std::span<const std::byte> body(c.buffer.data() + at + sizeof h, h.size);
      at += sizeof h + h.size;
      if (!Dispatch(c, h, body)) {
        ok = false;
        break;
      }
    }
    c.buffer.erase(c.buffer.begin(), c.buffer.begin() + static_cast<std::ptrdiff_t>(at));
    return ok;
  }

 private:

  bool Dispatch(Connection& c, const record::RecordHeader& h, std::span<const std::byte> body) {
    switch (static_cast<record::Type>(h.type)) {
      case record::Type::kEnter:
        return Enter(c, h.id, body);
      case record::Type::kWrite: {
        uint64_t addr = 0;
        if (body.size() < sizeof addr) return false;
        std::memcpy(&addr, body.data(), sizeof addr);
        auto id = c.ids.find(h.id);
        if (id == c.ids.end()) return true;
        tracer_.OnWrite(id->second, addr, body.subspan(sizeof addr));
        return true;
      }
      case record::Type::kDeferred: {
        auto id = c.ids.find(h.id);
        if (id == c.ids.end()) return true;
        tracer_.OnDeferred(id->second);
        return true;
      }
      case record::Type::kExit: {
        record::ExitBody e;
        if (body.size() != sizeof e) return false;
        std::memcpy(&e, body.data(), sizeof e);
        auto id = c.ids.find(h.id);
        if (id == c.ids.end()) return true;
        tracer_.OnServedExit(id->second, e.value, e.error, e.delivered != 0, e.time_ns);
        c.ids.erase(id);
        return true;
      }
      default:
        return false;
    }
  }

  bool Enter(Connection& c, uint64_t engine_id, std::span<const std::byte> body) {
    record::EnterBody e;
    if (body.size() < sizeof e) return false;
    std::memcpy(&e, body.data(), sizeof e);
    size_t at = sizeof e;
    auto take = [&](size_t n) -> std::span<const std::byte> {
      if (body.size() - at < n) return {};
      auto s = body.subspan(at, n);
      at += n;
      return s;
    };
    if (body.size() - at < static_cast<size_t>(e.at_name_size) + e.from_name_size) return false;
    auto at_name = take(e.at_name_size);
    auto from_name = take(e.from_name_size);
    EntrySnapshot snapshot;
    for (uint32_t i = 0; i < e.regions; ++i) {
      record::RegionHeader r;
      if (body.size() - at < sizeof r) return false;
      std::memcpy(&r, take(sizeof r).data(), sizeof r);
      const size_t n = r.readable ? r.size : 0;
      if (body.size() - at < n) return false;
      snapshot.regions.push_back({r.addr, r.readable != 0, take(n)});
    }
    abi::trace::CallStart call;
    call.id = next_id_++;
    call.caller = {static_cast<emul::Pid>(e.pid), static_cast<emul::Pid>(e.tid)};
    call.model = e.model == static_cast<uint32_t>(abi::DataModel::kIlp32) ? abi::DataModel::kIlp32
                                                                         : abi::DataModel::kLp64;
    call.nr = e.nr;
    call.entry = abi::FindSyscall(call.model, e.nr);
    for (int i = 0; i < 6; ++i) call.raw[i] = e.raw[i];
    call.memory = &snapshot;
    std::optional<Site> site;
    if (e.at_addr != 0) {
      auto name = [](std::span<const std::byte> s) { return std::string(reinterpret_cast<const char*>(s.data()), s.size()); };
      site = Site{};
      site->at = Location{e.at_addr, name(at_name), e.at_offset};
      site->insn = "in-process";
      if (e.from_addr != 0) site->caller = Location{e.from_addr, name(from_name), e.from_offset};
    }
    c.ids[engine_id] = call.id;
    tracer_.OnServedEnter(call, e.time_ns, std::move(site));
    return true;
  }

  Tracer& tracer_;
  std::mutex& mu_;
  std::unordered_map<int, Connection> conns_;
  // Apart from the supervisor's notification ids (random 64-bit starts).
  uint64_t next_id_ = (1ULL << 63) | 1;
};

std::unique_ptr<FastPathChannel> FastPathChannel::Open(Tracer& tracer, std::mutex& mu, bool sites) {
  std::unique_ptr<FastPathChannel> ch(new FastPathChannel);
  ch->reader_ = std::make_unique<Reader>(tracer, mu);
  Reader& r = *ch->reader_;
  uint64_t nonce = 0;
  if (getrandom(&nonce, sizeof nonce, 0) != sizeof nonce) return nullptr;
  const std::string name = fmt::format("evshim-trace-{}-{:016x}", getpid(), nonce);
  r.listener_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (r.listener_ < 0) return nullptr;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path + 1, name.data(), name.size());
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
  if (bind(r.listener_, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(r.listener_, 128) != 0) {
    return nullptr;
  }
  ch->stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  r.epoll_ = epoll_create1(EPOLL_CLOEXEC);
  if (ch->stop_fd_ < 0 || r.epoll_ < 0) return nullptr;
  for (int fd : {r.listener_, ch->stop_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(r.epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) return nullptr;
  }
  ch->env_value_ = sites ? name + ",sites" : name;
  return ch;
}

void FastPathChannel::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([reader = reader_.get(), stop = stop_fd_] { reader->Run(stop); });
}

void FastPathChannel::DrainLocked() {
  if (thread_.joinable()) reader_->DrainLocked();
}

void FastPathChannel::Stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  (void)!write(stop_fd_, &one, sizeof one);
  thread_.join();
}

FastPathChannel::~FastPathChannel() {
  Stop();
  if (stop_fd_ >= 0) close(stop_fd_);
}

}  // namespace evshim::shim::trace
