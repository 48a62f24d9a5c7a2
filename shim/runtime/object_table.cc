#include "shim/runtime/object_table.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

namespace evshim::shim {

ObjectTable::ObjectTable(int loop_epoll, uint64_t close_tag, ProgramEnds& ends, bool drain_at_once,
                         const std::atomic<int>* pollers)
    : loop_epoll_(loop_epoll), close_tag_(close_tag), ends_(ends), drain_at_once_(drain_at_once),
      pollers_(pollers) {}

ObjectTable::~ObjectTable() {
  for (auto& [obj, o] : objects_) close(o.own);
}

emul::Result<ObjectTable::Pair> ObjectTable::MakePair(abi::ObjectKind kind) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) return emul::Errno{errno};
  struct stat st {};
  fstat(sv[1], &st);
  if (kind == abi::ObjectKind::kPort) {
    // The smallest send buffer (the kernel rounds up to SOCK_MIN_SNDBUF): a
    // few KiB of filler make the port descriptor unwritable (OnWritable).
    int one = 1;
    setsockopt(sv[1], SOL_SOCKET, SO_SNDBUF, &one, sizeof one);
  }
  return Pair{sv[0], sv[1], static_cast<uint64_t>(st.st_ino)};
}

std::optional<Fault> ObjectTable::Add(emul::ObjectId obj, abi::ObjectKind kind, int own, uint64_t inode) {
  Object o;
  o.kind = kind;
  o.own = own;
  o.inode = inode;
  objects_[obj] = o;
  by_inode_[inode] = obj;
  epoll_event ev{};
  ev.events = EPOLLRDHUP | EPOLLHUP;
  ev.data.u64 = close_tag_ | obj;
  if (epoll_ctl(loop_epoll_, EPOLL_CTL_ADD, own, &ev) != 0) {
    // The last close would go unseen: the object would outlive its descriptors.
    return Fault{"epoll_ctl", errno, "watching the last close of an emulated object"};
  }
  return std::nullopt;
}

std::optional<abi::ObjectKind> ObjectTable::Remove(emul::ObjectId obj, std::optional<Fault>* fault) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return std::nullopt;
  ++removals_;
  const abi::ObjectKind kind = it->second.kind;
  Unowe(it->second);
  SetNeedsDrain(it->second, false);
  if (epoll_ctl(loop_epoll_, EPOLL_CTL_DEL, it->second.own, nullptr) != 0 && fault != nullptr) {
    // Harmless (close removes it) but not expected.
    *fault = Fault{"epoll_ctl", errno, "removing a closed object's handle"};
  }
  close(it->second.own);
  by_inode_.erase(it->second.inode);
  if (Recent& r = recent_[obj % kRecent]; r.id == obj) r = Recent{};
  objects_.erase(it);
  for (auto h = holder_fd_.lower_bound({obj, 0}); h != holder_fd_.end() && h->first.first == obj;) {
    h = holder_fd_.erase(h);
  }
  noted_ = Noted{};
  return kind;
}

std::optional<emul::ObjectId> ObjectTable::FindByInode(uint64_t inode) const {
  auto it = by_inode_.find(inode);
  if (it == by_inode_.end()) return std::nullopt;
  return it->second;
}

ObjectTable::Object* ObjectTable::FindInMap(emul::ObjectId obj) {
  Recent& r = recent_[obj % kRecent];
  auto it = objects_.find(obj);
  if (it == objects_.end()) return nullptr;
  r = Recent{obj, &it->second};
  return r.object;
}

std::optional<abi::ObjectKind> ObjectTable::KindOf(emul::ObjectId obj) const {
  const Object* o = Find(obj);
  if (o == nullptr) return std::nullopt;
  return o->kind;
}

std::optional<uint64_t> ObjectTable::InodeOf(emul::ObjectId obj) const {
  const Object* o = Find(obj);
  if (o == nullptr) return std::nullopt;
  return o->inode;
}

bool ObjectTable::IsAt(emul::ObjectId obj, emul::Pid pid, int fd) {
  auto it = objects_.find(obj);
  return it != objects_.end() && ends_.FdIs(pid, fd, it->second.inode);
}

bool ObjectTable::Holds(emul::Pid pid, emul::ObjectId obj) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return true;  // not installed yet: its creator holds it
  const uint64_t inode = it->second.inode;
  auto known = holder_fd_.find({obj, pid});
  if (known != holder_fd_.end() && ends_.FdIs(pid, known->second, inode)) return true;
  const int fd = ends_.FindFd(pid, inode);
  if (fd == ProgramEnds::kUnknown) return true;
  noted_ = Noted{};
  if (fd == ProgramEnds::kNone) {
    // Gone (or a zombie): exit closed everything.
    holder_fd_.erase({obj, pid});
    return false;
  }
  holder_fd_[{obj, pid}] = fd;
  return true;
}

void ObjectTable::NoteHolderInMap(emul::ObjectId obj, emul::Pid pid, int fd) {
  holder_fd_[{obj, pid}] = fd;
  noted_ = Noted{obj, pid, fd};
}

void ObjectTable::ForgetProcess(emul::Pid pid) {
  std::erase_if(holder_fd_, [pid](const auto& e) { return e.first.second == pid; });
  noted_ = Noted{};
}

void ObjectTable::OnReadiness(emul::ObjectId obj, bool readable) {
  Object* found = Find(obj);
  if (found == nullptr) return;
  Object& o = *found;
  o.want_readable = readable;
  if (!o.readiness_pending) {
    o.readiness_pending = true;
    readiness_pending_.push_back(obj);
  }
}

// Called before every answer and after every loop event (or at the end of
// an in-process call), so a program never sees an answer before the
// readiness it implies, and only the net change since the last call costs
// a send (or a drain). In-process, a byte nobody can look for is owed
// (ByteWanted): a port_send taken by the next port_get costs no byte.
bool ObjectTable::ApplyReportedReadiness() {
  bool sent = false;
  for (emul::ObjectId obj : readiness_pending_) {
    Object* found = Find(obj);
    if (found == nullptr) continue;
    Object& o = *found;
    o.readiness_pending = false;
    if (!o.want_readable) {
      Unowe(o);
    } else if (!o.signalled) {
      if (ByteWanted(o) && SendByte(o)) {
        sent = true;
      } else if (pollers_ != nullptr) {
        Owe(obj, o);
      }
    }
    // Only a holder of the program end can read the byte back: drained at
    // the next call that names the object (DrainIfNeeded), unless the object
    // is readable again by then (the byte is right as it is); in-process,
    // through the descriptor last named, now.
    SetNeedsDrain(o, !o.want_readable && o.signalled);
    if (o.needs_drain && drain_at_once_) {
      // The first holder whose number is still the object's end (checked
      // through the borrowed descriptor, DrainIfNeeded).
      for (auto h = holder_fd_.lower_bound({obj, 0}); h != holder_fd_.end() && h->first.first == obj; ++h) {
        DrainIfNeeded(obj, h->first.second, h->second);
        if (!o.needs_drain) break;
      }
    }
  }
  readiness_pending_.clear();
  if (!owed_.empty()) {
    // Owed first, then the count: a poller counts itself first, then looks
    // at AnyOwed, so a poller that came meanwhile is seen here or sees this.
    owed_any_.store(true, std::memory_order_seq_cst);
    if (pollers_ != nullptr && pollers_->load(std::memory_order_seq_cst) > 0) sent |= SendOwed();
  }
  return sent;
}

bool ObjectTable::ByteWanted(const Object& o) const {
  return pollers_ == nullptr || all_polled_ || o.polled || pollers_->load(std::memory_order_seq_cst) > 0;
}

bool ObjectTable::SendByte(Object& o) {
  char byte = 1;
  if (send(o.own, &byte, 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1) return false;
  o.signalled = true;
  return true;
}

void ObjectTable::Owe(emul::ObjectId obj, Object& o) {
  if (o.owed) return;
  o.owed = true;
  o.owed_at = owed_.size();
  owed_.push_back(obj);
}

void ObjectTable::Unowe(Object& o) {
  if (!o.owed) return;
  o.owed = false;
  const size_t at = o.owed_at;
  const emul::ObjectId last = owed_.back();
  owed_[at] = last;
  owed_.pop_back();
  if (at < owed_.size()) objects_.at(last).owed_at = at;
  if (owed_.empty()) owed_any_.store(false, std::memory_order_relaxed);
}

bool ObjectTable::SendOwed() {
  bool sent = false;
  // Readiness reported but not applied yet (inside a call) is left to
  // ApplyReadiness: an owed object stays owed until the byte goes.
  for (size_t i = owed_.size(); i-- > 0;) {
    Object& o = objects_.at(owed_[i]);
    if (o.want_readable && !o.signalled) {
      if (!SendByte(o)) continue;  // stays owed
      sent = true;
    }
    Unowe(o);
  }
  return sent;
}

void ObjectTable::MarkPolled(emul::ObjectId obj) {
  if (polled_cb_) polled_cb_();
  auto it = objects_.find(obj);
  if (it == objects_.end()) return;
  Object& o = it->second;
  o.polled = true;
  if (o.owed && (o.signalled || SendByte(o))) Unowe(o);
}

void ObjectTable::MarkAllPolled() {
  all_polled_ = true;
  if (polled_cb_) polled_cb_();
  for (auto& [obj, o] : objects_) MarkPolled(obj);
}

void ObjectTable::DrainIfNeeded(emul::ObjectId obj, emul::Pid pid, int fd) {
  auto it = objects_.find(obj);
  if (it == objects_.end() || !it->second.needs_drain) return;
  int local = ends_.Borrow(pid, fd);
  if (local < 0) return;
  // The number is checked through the descriptor borrowed, not before: the
  // call that named it may be answered already, and another thread of the
  // program may have closed it and made a socket at that number meanwhile;
  // a read there would eat that socket's data (glibc's getaddrinfo then
  // waited for ever for its netlink answer). The byte stays owed until a
  // call names the object again.
  if (IsEnd(local, it->second.inode)) {
    // Only one byte is ever in flight (written when the queue becomes non-empty).
    char buf[64];
    (void)recv(local, buf, sizeof buf, MSG_DONTWAIT);
    it->second.signalled = false;
    SetNeedsDrain(it->second, false);
  }
  ends_.Release(local);
}

bool ObjectTable::IsEnd(int local, uint64_t inode) {
  struct stat st {};
  return fstat(local, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode;
}

void ObjectTable::SetNeedsDrain(Object& o, bool on) {
  if (o.needs_drain == on) return;
  o.needs_drain = on;
  if (on) {
    ++needs_drain_count_;
  } else {
    --needs_drain_count_;
  }
}

// Rule 3 (port_vnops.c port_poll): a port polls POLLOUT only while it has a
// free event slot. The program's end of the socketpair polls writable while
// the data it has in flight (unread in our end) is under a quarter of its
// send buffer (af_unix unix_writable), so: when the port fills, write filler
// into it until it would block, through a descriptor of a process that
// holds the port (the supervisor borrows one and closes it at once: it never
// holds a program end, so the last close is seen as our end's hang-up);
// when a slot frees, read the filler from our end, which wakes the
// program's pollers. Our end is registered for hang-ups only, so the filler
// wakes nobody. Nothing happens while the port has free slots.
void ObjectTable::OnWritable(emul::ObjectId obj, bool writable) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return;
  Object& o = it->second;
  if (writable) {
    if (!o.filled) return;
    char buf[4096];
    while (recv(o.own, buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
    o.filled = false;
    return;
  }
  if (o.filled) return;
  // Any process that named the port holds a descriptor of it (the call that
  // took the last slot named it).
  for (auto h = holder_fd_.lower_bound({obj, 0}); h != holder_fd_.end() && h->first.first == obj; ++h) {
    const emul::Pid pid = h->first.second;
    int local = ends_.Borrow(pid, h->second);
    if (local < 0) continue;
    if (IsEnd(local, o.inode)) {
      static const char kFiller[4096] = {};
      while (send(local, kFiller, sizeof kFiller, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) {
      }
      o.filled = true;
    }
    ends_.Release(local);
    if (o.filled) return;
  }
}

std::optional<ObjectTable::State> ObjectTable::StateOf(emul::ObjectId obj) const {
  const Object* found = Find(obj);
  if (found == nullptr) return std::nullopt;
  const Object& o = *found;
  return State{o.signalled, o.needs_drain, o.filled, o.owed, o.polled};
}

void ObjectTable::MarkAdopted(emul::ObjectId obj, bool readable, bool full) {
  auto it = objects_.find(obj);
  if (it == objects_.end()) return;
  it->second.signalled = it->second.want_readable = readable;
  it->second.filled = full;
}

}  // namespace evshim::shim
