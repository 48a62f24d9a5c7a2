#include "shim/runtime/local_watches.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "shim/runtime/own_fd.h"

namespace evshim::shim {

using emul::Errno;
using emul::Result;
using emul::WatchId;

namespace {
constexpr uint32_t kAlways = EPOLLERR | EPOLLHUP;
// Readiness of a file epoll cannot watch (as the supervised host reports it).
constexpr uint32_t kPolllessReady = EPOLLIN | EPOLLOUT | EPOLLRDNORM | EPOLLWRNORM;

// A system call of the watches' own with four arguments (epoll_ctl's MOD
// and DEL, the look's epoll_wait), made in place: libc's syscall() moves
// its seven arguments into the kernel's registers for any call, and these
// run at every association's identity check and every look. The same
// system call and, on a failure, -1 with errno set, as syscall().
long OwnSyscall(long nr, long a1, long a2, long a3, long a4) {
#if defined(__x86_64__)
  long ret;
  register long r10 __asm__("r10") = a4;
  __asm__ volatile("syscall" : "=a"(ret) : "0"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10) : "rcx", "r11", "memory");
  if (ret < 0 && ret > -4096) [[unlikely]] {
    errno = static_cast<int>(-ret);
    return -1;
  }
  return ret;
#else
  return syscall(nr, a1, a2, a3, a4);
#endif
}

int Ctl(int epfd, int op, int fd, uint32_t events, uint64_t data) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = data;
#ifdef SYS_epoll_ctl
  // A MOD or DEL with the system call itself, as ReadReady: the foreign
  // libraries' interposed epoll_ctl (shim/foreign/poll_settle.h) acts on
  // an ADD only (an object's descriptor given to an epoll) and passes
  // these on, about 26 instructions an association's identity check.
  if (op != EPOLL_CTL_ADD) {
    return static_cast<int>(OwnSyscall(SYS_epoll_ctl, epfd, op, fd, reinterpret_cast<long>(&ev)));
  }
#endif
  return epoll_ctl(epfd, op, fd, &ev);
}

// Ctl on a descriptor number of the program's (a watched file), not one of
// ours. The program may close or replace that number at any moment in
// another thread (its close() takes no lock of ours; the idle pump and the
// callers act under the engine lock). That is safe: the kernel finds a
// registration by (the file the number names now, the number) (ep_find,
// fs/eventpoll.c), and close and epoll_ctl are each atomic on the
// descriptor table, so the call acts either on the watched file before the
// close, or on whatever the number names after it, where the only
// registration of that key in our epolls can be one we made for that very
// file (a record's own, or a raw-closed file's that came back); a new file
// has none and the call fails (ENOENT, EBADF: Gone), which kills the record
// (docs/design.md "Watches", "A close in another thread").
// ThreadSanitizer reports the number's use by two threads as a race on the
// descriptor; tests/support/tsan.supp names this function for that alone
// (it touches nothing else shared but our own epoll, under the lock).
__attribute__((noinline)) int CtlProgramNumber(int epfd, int op, int fd, uint32_t events, uint64_t data) {
  return Ctl(epfd, op, fd, events, data);
}

// The number no longer names the registered file (or nothing at all).
bool Gone(int err) { return err == ENOENT || err == EBADF; }

// Reads what `epfd` has ready without waiting, with the system call itself:
// in a program with the engine, the foreign libraries interpose the poll
// family (shim/foreign/poll_settle.h), and for the engine's own look their
// epoll_wait only passes the call on (Engine::PollBegin: "the engine's own
// poll"), about 160 instructions a look. The same system call
// (epoll_wait, which the budget tests tell from a waiter's epoll_pwait).
int ReadReady(int epfd, epoll_event* evs, int max) {
#ifdef SYS_epoll_wait
  return static_cast<int>(OwnSyscall(SYS_epoll_wait, epfd, reinterpret_cast<long>(evs), max, 0));
#else
  return epoll_wait(epfd, evs, max, 0);
#endif
}

}  // namespace

std::vector<int> LocalWatches::LiveFiles::Numbers() const {
  std::vector<int> numbers;
  numbers.reserve(files_.size());
  files_.ForEach([&numbers](int fd, const File&) { numbers.push_back(fd); });
  return numbers;
}

LocalWatches::LocalWatches(int loop_epoll, std::function<void(const char*, std::string)> fault)
    : loop_epoll_(loop_epoll), fault_(std::move(fault)) {
  // The per-call lists are cleared, not freed, at the end of each call; a
  // little room up front keeps a call's rarer paths (a report no armed
  // watch takes, which may come first in the program's hundredth call)
  // from allocating (InprocKqueueAllocations).
  constexpr size_t kPerCallRoom = 16;
  unused_.reserve(kPerCallRoom);
  reported_ready_.reserve(kPerCallRoom);
  level_epfd_ = epoll_create1(EPOLL_CLOEXEC);
  kick_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (level_epfd_ < 0 || kick_fd_ < 0) {
    setup_errno_ = errno;
    fault_("epoll_create1/eventfd", "creating the in-process watches' epoll");
    if (level_epfd_ >= 0) CloseOwnFd(level_epfd_);
    level_epfd_ = -1;
    return;
  }
  if (!AddOwnSources(level_epfd_)) {
    setup_errno_ = errno;
    CloseOwnFd(level_epfd_);
    level_epfd_ = -1;
  }
}

LocalWatches::~LocalWatches() {
  for (EdgeEpoll& e : edges_) CloseOwnFd(e.epfd);
  if (kick_fd_ >= 0) CloseOwnFd(kick_fd_);
  if (retired_fd_ >= 0) CloseOwnFd(retired_fd_);
  if (level_epfd_ >= 0) CloseOwnFd(level_epfd_);
}

bool LocalWatches::AddOwnSources(int epfd) {
  bool ok = Ctl(epfd, EPOLL_CTL_ADD, loop_epoll_, EPOLLIN, kOwnLoop) == 0 &&
            Ctl(epfd, EPOLL_CTL_ADD, kick_fd_, EPOLLIN, kOwnKick) == 0;
  for (size_t i = 0; ok && i < edges_.size(); ++i) {
    ok = Ctl(epfd, EPOLL_CTL_ADD, edges_[i].epfd, EPOLLIN, kOwnEdge + i) == 0;
  }
  if (ok && look_source_fd_ >= 0) ok = Ctl(epfd, EPOLL_CTL_ADD, look_source_fd_, EPOLLIN, kOwnLookSource) == 0;
  if (!ok) fault_("epoll_ctl", "adding a source to the in-process watches' look epoll");
  return ok;
}

bool LocalWatches::AddLookSource(int fd) {
  if (level_epfd_ < 0 || fd < 0 || look_source_fd_ >= 0) return false;
  if (Ctl(level_epfd_, EPOLL_CTL_ADD, fd, EPOLLIN, kOwnLookSource) != 0) return false;
  look_source_fd_ = fd;
  return true;
}

WatchId LocalWatches::NewId(uint64_t tag) { return watches_.NextId(tag); }

void LocalWatches::Add(WatchId id) { (void)watches_.Insert(id); }

// The file at `fd` now, for `events` (POLLERR/POLLHUP always): EBADF if the
// number is not open.
Result<uint32_t> LocalWatches::PollNow(int fd, uint32_t events) {
  pollfd p{fd, static_cast<short>(events & kPollBits), 0};
  if (poll(&p, 1, 0) < 0) return Errno{errno};
  if (p.revents & POLLNVAL) return Errno{EBADF};
  return static_cast<uint32_t>(p.revents) & (events | kAlways);
}

LocalWatches::File* LocalWatches::DeadFileOf(const Watch& w) {
  auto d = dead_.find(w.file);
  return d == dead_.end() ? nullptr : &d->second;
}

// Whether another edge watch than `id` on `f` waits for `mask`.
bool LocalWatches::SharesEdge(const File& f, WatchId id, uint32_t mask) {
  for (WatchId o = FirstOf(f); o != 0;) {
    const Watch& ow = Listed(o);
    if (o != id && ow.edge && ow.mask == mask) return true;
    o = NextOf(ow);
  }
  return false;
}

// The number still names the file (one EPOLL_CTL_MOD, kept for the call
// when memoised). EPOLL_CTL_MOD addresses the file the number names now:
// it succeeds only on that file's registration.
bool LocalWatches::ConfirmByMod(File& f) {
  // A level registration stays as it is (a ready file is reported at the
  // next look, as it would be anyway). One that is off becomes one-shot
  // with its last mask: a ready file is reported once, and a watch armed
  // after this check on a file found not ready needs no other MOD (the
  // kqueue's scan: confirm, measure, arm).
  const uint32_t events = f.reg == File::Reg::kLevel ? f.level_events : EPOLLONESHOT | f.level_events;
  if (CtlProgramNumber(level_epfd_, EPOLL_CTL_MOD, f.fd, events, Key(f)) != 0) {
    if (Gone(errno)) {
      Kill(f);
      return false;
    }
    fault_("epoll_ctl", "checking a watched descriptor");
    return true;  // ours, not the program's: the watch is kept
  }
  const bool exact = f.unlinked || looked_;
  f.unlinked = false;
  if (f.reg != File::Reg::kLevel) {
    f.reg = f.level_events != 0 ? File::Reg::kOneShot : File::Reg::kOff;
    // Re-armed where illumos would queue an association's event made now.
    if (exact && f.reg == File::Reg::kOneShot) MarkPlaced(f);
  }
  f.checked = epoch_.load(std::memory_order_relaxed);
  return true;
}

void LocalWatches::MarkPlaced(File& f) {
  if (!one_shot_assocs_) return;
  f.placed_call = call_;
}

LocalWatches::Placement LocalWatches::PlacementWithoutLook(int fd) {
  if (!one_shot_assocs_) return Placement::kByALook;
  const File* f = FindLive(fd);
  // No record: the association's registration is made by its EPOLL_CTL_ADD
  // (Attach), which links a ready file at the tail as a MOD does (ep_insert).
  if (f == nullptr) return Placement::kByItsAdd;
  return !f->dead && f->unlinked && AssociationsOnly(*f) ? Placement::kByItsMod : Placement::kByALook;
}

// EPOLL_CTL_MOD of the file's registration: 1 done; 0 failed for a reason
// of ours (ENOMEM: reported, never the program's errno); -1 the number no
// longer names the file (killed: `f` moved).
int LocalWatches::Modify(File& f, uint32_t set) {
  if (CtlProgramNumber(level_epfd_, EPOLL_CTL_MOD, f.fd, set, Key(f)) == 0) return 1;
  if (Gone(errno)) {
    Kill(f);
    return -1;
  }
  fault_("epoll_ctl", "setting an in-process watch's registration (its readiness may go unseen)");
  return 0;
}

// A MOD links a ready file at the tail of the ready list when it is not
// linked (ep_modify): exact for an association only when the file was off
// the list (unlinked) or this call's look has just emptied it.
bool LocalWatches::SetOneShot(File& f, uint32_t events) {
  const bool exact = f.unlinked || looked_ || Placed(f);
  if (const int r = Modify(f, EPOLLONESHOT | events); r <= 0) return r == 0;
  f.unlinked = false;
  f.reg = File::Reg::kOneShot;
  f.level_events = static_cast<uint16_t>(events);
  if (exact) MarkPlaced(f);
  return true;
}

// Level-triggered for `events`, or off when 0 (one-shot without a mask: at
// most one hang-up report, then disabled by the kernel).
bool LocalWatches::SetLevel(File& f, uint32_t events) {
  const uint32_t set = events != 0 ? events : static_cast<uint32_t>(EPOLLONESHOT);
  if (const int r = Modify(f, set); r <= 0) return r == 0;
  f.unlinked = false;
  f.placed_call = 0;
  if (events != 0) {
    f.reg = File::Reg::kLevel;
    f.level_events = static_cast<uint16_t>(events);
  } else {
    f.reg = File::Reg::kOff;  // its mask is kept for Confirm
  }
  return true;
}

void LocalWatches::Kill(File& f) {
  // Its registrations stay while the file is open elsewhere: their reports
  // carry a generation no live file has.
  for (WatchId id = FirstOf(f); id != 0;) {
    Watch& w = Listed(id);
    w.armed = false;
    Unfire(id);
    id = NextOf(w);
  }
  File dead = f;
  dead.dead = true;
  EraseLive(dead.fd);
  if (dead.first_slot != 0) dead_.emplace(dead.gen, dead);
}

// Registers `w` on the file `fd` names: the live File of that number, if it
// still is that file, or a new one.
Result<LocalWatches::File*> LocalWatches::Attach(Watch& w, WatchId id, File* cur, int fd, uint32_t placing) {
  if (cur != nullptr) {
    // A watch whose file left the number stays dead: it must never start
    // watching a file that came to the number later (rule 10).
    if (cur->dead) return Errno{EBADF};
    if (cur->fd == fd) return cur;
    Detach(w, id);
  }
  // Without its epoll (a full descriptor table when the engine started),
  // no watch can be made: the error of that creation (EMFILE).
  if (level_epfd_ < 0 || kick_fd_ < 0) return Errno{setup_errno_};
  File* f = nullptr;
  if (File* live = FindLive(fd); live != nullptr && Confirm(*live)) f = live;
  if (f == nullptr) {
    File fresh;
    fresh.gen = next_gen_++;
    if (next_gen_ == 0) next_gen_ = 1;
    fresh.fd = fd;
    // Registered off (one-shot, no poll bits): switched on by Arm; or an
    // association's, one-shot with its mask: the ADD links a ready file at
    // the tail of the ready list now, where illumos queues its event.
    const uint32_t set = EPOLLONESHOT | placing;
    if (CtlProgramNumber(level_epfd_, EPOLL_CTL_ADD, fd, set, Key(fresh)) != 0) {
      // The same file back at the number whose registration a raw close
      // left behind (the file open elsewhere): that key is this file's. It
      // may sit in the ready list since its wake-up, which a MOD would keep:
      // deleted and added anew, it is polled and linked now.
      if (errno != EEXIST || CtlProgramNumber(level_epfd_, EPOLL_CTL_DEL, fd, 0, 0) != 0 ||
          CtlProgramNumber(level_epfd_, EPOLL_CTL_ADD, fd, set, Key(fresh)) != 0) {
        // EPERM: a file without poll support; EBADF: not open.
        return Errno{errno};
      }
    }
    fresh.checked = epoch_.load(std::memory_order_relaxed);
    if (placing != 0) {
      fresh.reg = File::Reg::kOneShot;
      fresh.level_events = static_cast<uint16_t>(placing);
    }
    f = &live_.Insert(fresh);
    if (placing != 0) MarkPlaced(*f);
    if (register_cb_) register_cb_(fd);
  }
  w.next_slot = f->first_slot;
  f->first_slot = LinkOf(id);
  w.file = f->gen;
  w.fd = fd;
  return f;
}

// Takes `w` out of its file's edge registration (the file stays).
void LocalWatches::DetachEdge(Watch& w, WatchId id, File& f) {
  if (!w.edge) return;
  w.edge = false;
  w.armed = false;
  w.pending = 0;
  Unfire(id);
  EdgeEpoll* e = EdgeFor(w.mask, false);
  if (e == nullptr) return;
  --e->watches;
  --edge_watches_;
  // Only the live file's: the number may name another file now.
  if (!f.dead && !SharesEdge(f, id, w.mask)) (void)CtlProgramNumber(e->epfd, EPOLL_CTL_DEL, f.fd, 0, 0);
}

void LocalWatches::Detach(Watch& w, WatchId id) {
  Unfire(id);
  if (File* f = FileOf(w)) {
    DetachEdge(w, id, *f);
    for (uint32_t* link = &f->first_slot; *link != 0; link = &watches_.AtSlot(*link - 1).next_slot) {
      if (*link == LinkOf(id)) {
        *link = w.next_slot;
        break;
      }
    }
    if (f->first_slot == 0) {
      if (f->dead) {
        dead_.erase(f->gen);
      } else {
        (void)CtlProgramNumber(level_epfd_, EPOLL_CTL_DEL, f->fd, 0, 0);
        EraseLive(f->fd);
      }
    }
  }
  w.next_slot = 0;
  w.file = 0;
  w.edge = false;
  w.armed = false;
  w.pending = 0;
}

LocalWatches::EdgeEpoll* LocalWatches::EdgeFor(uint32_t mask, bool create) {
  for (EdgeEpoll& e : edges_) {
    if (e.mask == mask) return &e;
  }
  if (!create) return nullptr;
  int epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) return nullptr;
  if (Ctl(level_epfd_, EPOLL_CTL_ADD, epfd, EPOLLIN, kOwnEdge + edges_.size()) != 0) {
    fault_("epoll_ctl", "adding an edge epoll to the in-process watches' look epoll");
    CloseOwnFd(epfd);
    return nullptr;
  }
  edges_.push_back(EdgeEpoll{mask, epfd, 0});
  return &edges_.back();
}

// Puts `w` in the edge registration of its file and `events`. A watch that
// joins an existing registration gets what a registration of its own would
// report at once: the present readiness.
Result<LocalWatches::File*> LocalWatches::AttachEdge(Watch& w, WatchId id, int fd, uint32_t events) {
  File* cur = FileOf(w);
  if (cur != nullptr) {
    if (cur->dead) return Errno{EBADF};  // as in Attach
    if (w.edge && w.mask == events && w.fd == fd) return cur;
    DetachEdge(w, id, *cur);
  }
  Result<File*> attached = Attach(w, id, cur, fd);
  if (!attached.ok()) return attached.error();
  File& f = **attached;
  EdgeEpoll* e = EdgeFor(events, true);
  if (e == nullptr) {
    const int err = errno;
    Detach(w, id);
    return Errno{err};
  }
  const bool shared = SharesEdge(f, id, events);
  w.pending = 0;
  if (shared) {
    Result<uint32_t> now = PollNow(fd, events);
    if (!now.ok()) {
      Detach(w, id);
      return now.error();
    }
    w.pending = static_cast<uint16_t>(*now);
  } else if (CtlProgramNumber(e->epfd, EPOLL_CTL_ADD, fd, events | EPOLLET, Key(f)) != 0) {
    // A registration a raw close left behind, of this very file: taken
    // over (EPOLL_CTL_MOD reports the present readiness once, as an add).
    if (errno != EEXIST || CtlProgramNumber(e->epfd, EPOLL_CTL_MOD, fd, events | EPOLLET, Key(f)) != 0) {
      const int err = errno;
      Detach(w, id);
      return Errno{err};
    }
  }
  // A new registration is not armed (as the supervised host's).
  w.armed = false;
  Unfire(id);
  w.edge = true;
  w.mask = static_cast<uint16_t>(events);
  ++e->watches;
  ++edge_watches_;
  return &f;
}

// A level watch whose file's registration is on and covers its mask (w.mask,
// set by the caller, with the watch disarmed), armed kReportedAtLook, and
// either not seen_ready or ReportedToNoneThisCall: armed with no
// system call, or answered from this call's report. The one statement of
// that rule, for Arm's general path and its kIfFree shortcut.
uint32_t LocalWatches::ArmReportedAtLook(Watch& w, File& f) {
  if (ReportedToNoneThisCall(w, f)) {
    // This call's look reported the file (to no armed watch) and the
    // registration is still on: that report is its readiness at the call
    // (rule 6), as a poll would tell, and the registration stays on.
    const uint32_t bits = w.seen_events & (w.mask | kAlways);
    if (bits != 0) {
      f.taken = true;
      return bits;  // fires at once: not armed (one-shot)
    }
    w.armed = true;  // not ready for these bits: a later report is its
    w.armed_look = static_cast<uint32_t>(looks_begun_);
    return 0u;
  }
  // The registration reports a ready file at the caller's next look (a
  // file ready before this call was reported at its look, and then
  // switched off or marked seen_ready, unless it concerned this watch).
  w.armed = true;
  w.armed_look = static_cast<uint32_t>(looks_begun_);
  return 0u;
}

// A level watch that no registration carries yet (Watch::file 0), asked to
// be armed for free: a kqueue knote its EV_ADD found ready, measured and
// queued without registering it, which a scan has just delivered
// (Kqueues::ArmForNextLook). Left so, every later scan measures it with a
// poll (and confirms its number with an fcntl) for as long as the file is
// ready again at each scan: a busy server's connections, whose next request
// is there before the next kevent (Redis: docs/performance.md "Session 32:
// a knote added on a ready file"). Registered now, level with `events` (an
// EPOLL_CTL_ADD and a MOD, once), the looks report it from then on, as they
// do a knote armed after a scan found it not ready, and the scan's identity
// check is the registration's. False: not registered (a file epoll refuses,
// marked pollless as Arm does; the number closed): the caller measures, as
// before.
bool LocalWatches::RegisterLevel(Watch& w, WatchId id, int fd, uint32_t events) {
  Result<File*> attached = Attach(w, id, nullptr, fd);
  if (!attached.ok()) {
    if (attached.error().value == EPERM) {
      w.pollless = true;
      w.mask = static_cast<uint16_t>(events);
    }
    return false;
  }
  File& f = **attached;
  if (f.reg == File::Reg::kLevel && (f.level_events & events) == events) return true;
  return SetLevel(f, (f.reg != File::Reg::kOff ? f.level_events : 0) | events);
}

Result<uint32_t> LocalWatches::ArmAny(WatchId id, int fd, uint32_t events, const uint32_t* measured,
                                      Answer answer) {
  Watch* found_watch = watches_.Find(id);
  if (found_watch == nullptr) return Errno{EBADF};
  Watch& w = *found_watch;
  events &= kPollBits;
  const bool for_assoc = answer == kReportedAtLook;
  if (answer == kIfFree) {
    if (w.file == 0 && !w.edge && !w.pollless && !RegisterLevel(w, id, fd, events)) return events;
    File* f = w.edge || w.pollless ? nullptr : FileOf(w);
    if (f != nullptr && !f->dead && f->fd == fd && f->reg == File::Reg::kLevel &&
        (f->level_events & events) == events && ReportedToNoneThisCall(w, *f)) {
      // This call's look found the file ready, and the caller has measured
      // it since (the knote it re-arms is on its kqueue's list already):
      // armed all the same, so the next look answers for it. A level
      // registration reports a file still ready at every look; one that
      // does not report it tells the next scan the file is not ready
      // (QuietSinceArm), where answering "ready" here left the knote to be
      // measured with a poll at every scan that followed a delivery (a busy
      // server's connections: docs/performance.md "Session 32: a knote
      // added on a ready file").
      w.mask = static_cast<uint16_t>(events);
      w.for_assoc = false;
      w.seen_ready = false;
      Unfire(id);
      f->taken = true;
      w.armed = true;
      w.armed_look = static_cast<uint32_t>(looks_begun_);
      return 0u;
    }
    // A one-shot registration was set by an identity check or a renewal
    // since any report (a report leaves it off or level): the kernel
    // reports a ready file at the next look, seen_ready or not.
    const bool reports = f != nullptr && (f->reg == File::Reg::kOneShot || (f->reg == File::Reg::kLevel && !w.seen_ready));
    if (!reports || f->dead || f->fd != fd || (f->level_events & events) != events) return events;
    // The watch is on that live file (FileOf), which a look reports: what
    // the path below does for it as kReportedAtLook, without finding its
    // file again (Attach would keep it) — every delivered level knote's
    // re-arm (Kqueues::ArmForNextLook).
    w.mask = static_cast<uint16_t>(events);
    w.armed = false;
    w.for_assoc = false;
    w.seen_ready = false;
    Unfire(id);
    return ArmReportedAtLook(w, *f);
  }
  if (w.pollless) {
    w.mask = static_cast<uint16_t>(events);
    return events & kPolllessReady;
  }
  File* cur = FileOf(w);
  if (cur != nullptr && w.edge) DetachEdge(w, id, *cur);
  // A new record for an association is placed by its ADD (below). A watch
  // on its live file at that number (every re-arm of an event loop's
  // association) keeps it, as Attach would, without the call.
  Result<File*> attached = cur != nullptr && !cur->dead && cur->fd == fd
                               ? Result<File*>(cur)
                               : Attach(w, id, cur, fd, for_assoc && one_shot_assocs_ ? events : 0);
  if (!attached.ok()) {
    // epoll refuses files without poll support (regular files): illumos
    // reports those always ready for the requested bits.
    if (attached.error().value != EPERM) return attached.error();
    w.pollless = true;
    w.mask = static_cast<uint16_t>(events);
    return events & kPolllessReady;
  }
  File& f = **attached;
  w.mask = static_cast<uint16_t>(events);
  w.armed = false;
  w.for_assoc = for_assoc;
  Unfire(id);
  const bool seen_ready = w.seen_ready;
  w.seen_ready = false;
  if (for_assoc && one_shot_assocs_ && AssociationsOnly(f)) {
    // Placed (set_one_shot_associations): the registration, one-shot with
    // the armed watches' masks, was re-armed in this call where a ready
    // file is linked in the order of the call, so the next look reports it
    // behind every file that woke before (and seen_ready says nothing any
    // more). Armed: no poll, and no MOD unless the masks changed.
    const uint32_t want = MasksWith(f, id, events);
    const bool placed_now = Placed(f);
    const bool placed = placed_now && f.reg == File::Reg::kOneShot && f.level_events == want;
    if (placed || placed_now || f.unlinked || looked_) {
      if (!placed && !SetOneShot(f, want)) return Errno{EBADF};
      ArmPlaced(w);
      return 0u;
    }
  }
  const bool covered = f.reg != File::Reg::kOff && (f.level_events & events) == events;
  if (covered && answer == kReportedAtLook && (!seen_ready || ReportedToNoneThisCall(w, f))) {
    return ArmReportedAtLook(w, f);
  }
  // A measurement the caller made after confirming the file stands for a
  // poll: the registration, if it is widened below, reports what came since.
  Result<uint32_t> now = measured != nullptr ? Result<uint32_t>(*measured & (events | kAlways))
                                             : PollNow(fd, events);
  if (!now.ok()) return now.error();
  if (*now != 0) {  // fires at once: not armed (one-shot)
    // Per call, a watch found ready at its arm twice in a row (a file kept
    // ready: associate, get, associate...) gets the registration widened
    // to its mask, so that its next arms take the call's look instead of a
    // poll (the registration stays on while those reports are taken).
    const bool level_covers = f.reg == File::Reg::kLevel && (f.level_events & events) == events;
    if (per_call_ && answer == kReportedAtLook && !level_covers && w.fired_at_arm) {
      (void)SetLevel(f, (f.reg != File::Reg::kOff ? f.level_events : 0) | events);
    }
    w.fired_at_arm = true;
    return *now;
  }
  w.fired_at_arm = false;
  w.armed = true;
  w.armed_look = static_cast<uint32_t>(looks_begun_);
  if (covered) return 0u;
  // The registration widens to the armed watches' masks, keeping those of
  // disarmed ones (narrowed lazily, by a report that concerns no armed watch).
  uint32_t want = f.reg != File::Reg::kOff ? f.level_events : 0;
  for (WatchId o = FirstOf(f); o != 0;) {
    const Watch& ow = Listed(o);
    if (!ow.edge && ow.armed) want |= ow.mask;
    o = NextOf(ow);
  }
  // EPOLL_CTL_MOD on a ready file reports it at the next look.
  if (!SetLevel(f, want)) return Errno{EBADF};
  return 0u;
}

Result<uint32_t> LocalWatches::ArmEdge(WatchId id, int fd, uint32_t events) {
  Watch* found_watch = watches_.Find(id);
  if (found_watch == nullptr) return Errno{EBADF};
  Watch& w = *found_watch;
  events &= kPollBits;
  // A file without readiness notifications has no edges: never fires.
  if (w.pollless) return 0u;
  Result<File*> attached = AttachEdge(w, id, fd, events);
  if (!attached.ok()) {
    if (attached.error().value != EPERM) return attached.error();
    w.pollless = true;
    w.mask = static_cast<uint16_t>(events);
    return events & kPolllessReady;  // as the first level report of such a file
  }
  w.armed = false;
  Unfire(id);
  // The kernel's edges not read yet become pending first.
  if (EdgeEpoll* e = EdgeFor(events, false)) DrainEdge(*e, nullptr);
  const uint32_t edge = w.pending & (events | kAlways);
  w.pending = 0;
  if (edge != 0) return edge;
  w.armed = true;
  return 0u;
}

void LocalWatches::SettleEdge(WatchId id, int fd, uint32_t events) {
  Watch* found_watch = watches_.Find(id);
  if (found_watch == nullptr || found_watch->pollless) return;
  Watch& w = *found_watch;
  events &= kPollBits;
  Result<File*> attached = AttachEdge(w, id, fd, events);
  if (!attached.ok()) {
    // As in ArmEdge: a file without poll support has no edges.
    if (attached.error().value == EPERM) {
      w.pollless = true;
      w.mask = static_cast<uint16_t>(events);
    }
    return;  // otherwise ArmEdge will say why
  }
  // What the coming measurement sees is no edge for this watch: its
  // registration's report (a new one reports the present state) and every
  // edge already pending are consumed; the other watches keep theirs.
  // A report for it not taken yet is consumed as well; an armed watch stays armed.
  const bool armed = Unfire(id) || w.armed;
  w.armed = false;
  if (EdgeEpoll* e = EdgeFor(events, false)) DrainEdge(*e, nullptr);
  w.pending = 0;
  w.armed = armed;
}

void LocalWatches::Fire(WatchId id, uint32_t bits, ReadyList* take) {
  if (take != nullptr) {
    take->emplace_back(id, bits);
    return;
  }
  // Found while arming or settling another watch: kept for TakeReady, and
  // the loop is told (the kernel's report is consumed).
  fired_.emplace_back(id, bits);
  if (!kicked_) {
    const uint64_t one = 1;
    if (write(kick_fd_, &one, sizeof one) != sizeof one) {
      fault_("write", "waking the loop for an in-process watch");
    }
    kicked_ = true;
  }
}

bool LocalWatches::UnfireListed(WatchId id) {
  auto end = std::remove_if(fired_.begin(), fired_.end(), [id](const auto& r) { return r.first == id; });
  const bool found = end != fired_.end();
  fired_.erase(end, fired_.end());
  return found;
}

void LocalWatches::DrainEdge(EdgeEpoll& e, ReadyList* take) {
  epoll_event evs[64];
  int n;
  do {
    n = ReadReady(e.epfd, evs, 64);
    for (int i = 0; i < n; ++i) {
      const File* f = FileOfReport(evs[i].data.u64);
      if (f == nullptr) continue;
      for (WatchId id = FirstOf(*f); id != 0;) {
        Watch& w = Listed(id);
        const WatchId this_id = id;
        id = NextOf(w);
        if (!w.edge || w.mask != e.mask) continue;
        const uint32_t bits = evs[i].events & (w.mask | kAlways);
        if (bits == 0) continue;
        if (w.armed) {
          w.armed = false;
          Fire(this_id, bits, take);
        } else {
          w.pending = static_cast<uint16_t>(w.pending | bits);
        }
      }
    }
  } while (n == 64);
}

void LocalWatches::TakeReady(ReadyList* out) {
  if (kicked_) {
    uint64_t v;
    (void)!read(kick_fd_, &v, sizeof v);
    kicked_ = false;
    ++reports_taken_;  // the kick's report, drained here rather than read below
    out->insert(out->end(), fired_.begin(), fired_.end());
    fired_.clear();
  }
  if (level_epfd_ < 0) {
    loop_reported_ = true;  // no look epoll: the loop is read directly
    ++reports_taken_;       // unknown: counted as one
    return;
  }
  looked_ = true;
  epoll_event evs[64];
  int n;
  bool lingering = false;
  // More than 64 reports take several reads, and a level registration
  // left on (a delivered watch's file stays ready until the program reads
  // it; switch-offs wait for the call's end when per call) is put back at
  // the tail of epoll's ready list by each read (ep_send_events): the reads
  // would go round those files for ever. The first such file's report
  // marks the turn: met again, every file ready when the look began has
  // been read once, and the look ends as one read large enough would have.
  // The rest of that read is taken for its one-shot reports only: the
  // level ones are repeats, or files ready since the look began, which
  // their registration keeps in the ready list for the next look; but a
  // one-shot registration that became ready meanwhile was disabled by this
  // read, and its report would be lost. `rounds` bounds the reads in any
  // case (a list of one-shot or dropped reports has no mark); counted from
  // the first full read (a look usually reads once).
  uint64_t turn = 0;
  bool have_turn = false, turned = false;
  size_t rounds = 0;
  const auto read_again = [&] {
    if (rounds == 0) rounds = live_.size() / 64 + edges_.size() + 4;
    return --rounds != 0;
  };
  do {
    n = ReadReady(level_epfd_, evs, 64);
    if (n > 0) reports_taken_ += static_cast<uint64_t>(n);
    for (int i = 0; i < n; ++i) {
      const uint64_t data = evs[i].data.u64;
      if (have_turn && data == turn) turned = true;
      if (data >> 32 == 0) {  // one of the look epoll's own sources
        if (data == kOwnLoop) {
          loop_reported_ = true;
        } else if (data == kOwnLookSource) {
          look_source_reported_ = true;
          --reports_taken_;  // the caller's own source: not counted (below)
        } else if (data >= kOwnEdge && data - kOwnEdge < edges_.size()) {
          edges_[data - kOwnEdge].reported = true;
        }
        continue;  // kOwnKick: its reports were taken above
      }
      File* found = FileOfReport(data);
      if (found == nullptr) {
        lingering = true;
        continue;
      }
      File& f = *found;
      // Off: a hang-up reported once more, now disabled by the kernel.
      if (f.reg == File::Reg::kOff) {
        f.unlinked = true;
        continue;
      }
      if (turned && f.reg != File::Reg::kOneShot) continue;  // the turn: above
      const bool one_shot = f.reg == File::Reg::kOneShot;
      if (one_shot) {
        f.reg = File::Reg::kOff;  // the kernel disabled it
        f.placed_call = 0;
      }
      bool delivered = false;
      uint32_t still = 0;
      for (WatchId id = FirstOf(f); id != 0;) {
        Watch& w = Listed(id);
        const WatchId this_id = id;
        id = NextOf(w);
        if (w.edge) continue;
        const uint32_t bits = evs[i].events & (w.mask | kAlways);
        // ReportedReadyThisCall: the newest report of this call decides.
        // Asked only of a kqueue knote's watch (ProbeReadableAfterLook): a
        // watch last armed by kReportedAtLook (for_assoc: a port
        // association's, never a knote's) is given no yes, so its report
        // costs no entry to clear at the call's end.
        const bool ready_only = bits != 0 && (bits & (kAlways | EPOLLRDHUP)) == 0;
        // A disarmed watch counts too when the registration that reported
        // covers its mask (an armed one's always does): a watch the idle
        // pump's look fired and left on keeps its file's report for the
        // next call, which then does not measure the file in full.
        const bool covers = w.armed || (f.level_events & w.mask) == w.mask;
        if (!ready_only) {
          w.reported_ready = false;
        } else if (covers && !w.reported_ready && !w.for_assoc) {
          reported_ready_.push_back(this_id);
          listed_ = true;
          w.reported_ready = true;
        }
        if (!w.armed) {
          if (bits != 0) w.seen_ready = true;
          w.seen_call = call_;
          w.seen_events = static_cast<uint16_t>(evs[i].events & kPollBits);
        } else if (bits != 0) {
          w.armed = false;
          w.seen_ready = false;
          delivered = true;
          out->emplace_back(this_id, bits);
        } else {
          still |= w.mask;
        }
      }
      // Level and left on: the watches just disarmed are usually armed
      // again once their file was read dry, with no system call. A report
      // that concerned no armed watch narrows the registration to the armed
      // watches (off when none is), so a file left ready is reported once.
      // Per call, that is decided at the end of the call (EndCall).
      if (one_shot ? still != 0 : !delivered) {
        if (per_call_ && !one_shot) {
          if (f.unused_call != call_) {
            f.unused_call = call_;
            f.taken = false;
            unused_.push_back(Key(f));
            listed_ = true;
          }
        } else if (one_shot && one_shot_assocs_ && AssociationsOnly(f)) {
          // Associations still armed (other bits): one-shot again, now.
          (void)SetOneShot(f, still);
        } else {
          (void)SetLevel(f, still);
        }
      } else if (one_shot) {
        f.unlinked = true;
      }
      if (!have_turn && delivered && !one_shot) {
        turn = data;  // left on and ready: it comes round again
        have_turn = true;
      }
    }
  } while (n == 64 && !turned && read_again());
  // Every armed level watch whose file is ready was reported just now: the
  // look in progress has done its part (QuietSinceArm).
  looks_done_ = looks_begun_;
  // A registration left behind reported (or did before, on a look that
  // could not renew): renewed now, or owed to a look that may make
  // descriptors (set_may_create; the idle pump makes none).
  if (lingering || renewal_owed_) {
    if (may_create_) {
      renewal_owed_ = false;
      RenewLevelEpoll();
    } else {
      renewal_owed_ = true;
    }
  }
  // Only the edge epolls that reported (an edge epoll with no watch left
  // is drained too: a raw-closed file's lingering edge is consumed).
  for (EdgeEpoll& e : edges_) {
    if (!e.reported) continue;
    e.reported = false;
    DrainEdge(e, out);
  }
}

// A registration of a file no record has any more reported: a close the
// engine did not see (a raw close, fclose) left it behind while the file is
// open elsewhere. It cannot be addressed (the number names another file, or
// none), and a level-triggered one would report at every look while that
// file is ready. So the look epoll is made anew with the live files only
// (each confirmed first on the old one) and its own sources, under the same
// number; the old one goes with every registration it held once its last
// sleeper woke. Costs O(live files), once per such close.
void LocalWatches::RenewLevelEpoll() {
  const int fresh = epoll_create1(EPOLL_CLOEXEC);
  if (fresh < 0) {
    fault_("epoll_create1", "renewing the in-process watches' epoll (a closed file's reports go on)");
    return;
  }
  for (int fd : live_.Numbers()) {
    File* found = FindLive(fd);
    if (found == nullptr) continue;
    File& f = *found;
    f.checked = 0;
    if (!Confirm(f)) continue;  // killed: its registration goes with the old epoll
    const uint32_t events = f.reg == File::Reg::kLevel ? f.level_events : EPOLLONESHOT | f.level_events;
    if (CtlProgramNumber(fresh, EPOLL_CTL_ADD, fd, events, Key(f)) != 0) {
      if (Gone(errno)) {
        Kill(f);
      } else {
        fault_("epoll_ctl", "renewing an in-process watch's registration (its readiness may go unseen)");
      }
    }
  }
  if (!AddOwnSources(fresh)) {
    CloseOwnFd(fresh);
    return;
  }
  // The fresh epoll takes the look epoll's number, so every reader keeps
  // it. A thread already asleep on the old one (a waiter's ppoll, the idle
  // pump) holds that file until it wakes: an eventfd that is always
  // readable, added to the old one only, wakes it (and every later look at
  // the old one returns at once) to look at the new one.
  if (retired_fd_ < 0) retired_fd_ = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
  if (retired_fd_ < 0 || Ctl(level_epfd_, EPOLL_CTL_ADD, retired_fd_, EPOLLIN, kOwnRetired) != 0) {
    fault_("eventfd/epoll_ctl", "waking the in-process watches' sleepers after a renewal");
  }
  if (Dup3OwnFd(fresh, level_epfd_, O_CLOEXEC) < 0) {
    fault_("dup3", "renewing the in-process watches' epoll (a closed file's reports go on)");
  }
  CloseOwnFd(fresh);
}

void LocalWatches::EndCallListed() {
  looked_ = false;
  listed_ = false;
  for (WatchId id : reported_ready_) {
    if (Watch* w = watches_.Find(id)) w->reported_ready = false;
  }
  reported_ready_.clear();
  for (uint64_t key : unused_) {
    File* f = FileOfReport(key);
    if (f == nullptr || f->unused_call != call_ || f->reg != File::Reg::kLevel) continue;
    if (f->taken) {
      f->unused_calls = 0;
      continue;
    }
    // Left ready with no armed watch at the end of two calls in a row (a
    // delivered file never read): narrowed, so a waiter or the idle pump
    // does not wake for it again and again.
    if (++f->unused_calls < 2) continue;
    f->unused_calls = 0;
    uint32_t still = 0;
    for (WatchId o = FirstOf(*f); o != 0;) {
      const Watch& ow = Listed(o);
      if (!ow.edge && ow.armed) still |= ow.mask;
      o = NextOf(ow);
    }
    if (still != f->level_events) (void)SetLevel(*f, still);
  }
  unused_.clear();
  NextCall();
}

void LocalWatches::RestartCallCount() {
  watches_.ForEach([](WatchId, Watch& w) { w.seen_call = 0; });
  live_.ForEach([](File& f) {
    f.unused_call = 0;
    f.placed_call = 0;
  });
  for (auto& [gen, f] : dead_) {
    f.unused_call = 0;
    f.placed_call = 0;
  }
  call_ = 1;
}

void LocalWatches::NextEpoch() {
  if (epoch_.fetch_add(1, std::memory_order_relaxed) + 1 != 0) return;
  live_.ForEach([](File& f) { f.checked = 0; });
  for (auto& [gen, f] : dead_) f.checked = 0;
  epoch_.store(1, std::memory_order_relaxed);
}

void LocalWatches::Disarm(WatchId id) {
  Watch* w = watches_.Find(id);
  if (w == nullptr) return;
  // A level registration is narrowed lazily: a report for a disarmed watch
  // is dropped when it comes (one wake-up at most).
  w->armed = false;
  Unfire(id);
}

void LocalWatches::Drop(WatchId id) {
  Watch* w = watches_.Find(id);
  if (w == nullptr) return;
  Detach(*w, id);
  watches_.Erase(id);
}

bool LocalWatches::Keep(WatchId id, int fd, uint32_t events) {
  Watch* found_watch = watches_.Find(id);
  if (found_watch == nullptr || found_watch->edge || found_watch->pollless) return false;
  Watch& w = *found_watch;
  events &= kPollBits;
  // Usually on its number's file still (its knote's own): Attach's first
  // answer, without its call.
  File* on = FileOf(w);
  if (on == nullptr || on->dead || on->fd != fd) {
    Result<File*> attached = Attach(w, id, on, fd);
    if (!attached.ok()) return false;
    on = *attached;
  }
  File& f = *on;
  w.armed = false;
  Unfire(id);
  w.mask = static_cast<uint16_t>(events);
  if (f.reg == File::Reg::kLevel && (f.level_events & events) == events) {
    if (f.unused_call == call_) f.taken = true;
    return true;
  }
  // EPOLL_CTL_MOD on a ready file reports it at the next look.
  return SetLevel(f, (f.reg != File::Reg::kOff ? f.level_events : 0) | events);
}

bool LocalWatches::NumberOpen(int fd) { return fcntl(fd, F_GETFD) != -1; }

}  // namespace evshim::shim
