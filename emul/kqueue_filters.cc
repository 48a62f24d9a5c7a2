// The kqueue filters: one table entry of operations each, as the BSDs'
// struct filterops (DF kern_event.c:137-187, OB kern_event.c:134-187):
// attach (f_attach), detach (f_detach), event (f_event: does the knote
// report now?), touch (f_touch EVENT_REGISTER: a change to an existing
// knote), clear (f_touch EVENT_PROCESS with EV_CLEAR: after delivery) and
// copy (FreeBSD's f_copy, for KQUEUE_CPONFORK). After the table, the
// sources that feed the filters: timer expiry, process events, vnode
// changes, signal deliveries.
// The engine (kqueue.cc) calls only these for what differs between filters;
// docs/design.md "Adding a kqueue filter" says what a new one needs.
#include <algorithm>
#include <cerrno>
#include <climits>
#include <set>
#include <vector>

#include "emul/kqueue.h"

namespace evshim::emul {

namespace {
constexpr uint32_t kAlways = poll_bits::kHup | poll_bits::kErr;

// The entry of a filter whose events a source of the registering process
// feeds (PROC: its target's exit, forks, execs; FS: its mount table): no
// descriptor, no touch, not copied by KQUEUE_CPONFORK. A template so that
// the table (Kqueues::Filters) can use it before its own class is complete.
template <typename Ops, typename Attach, typename Detach, typename Event, typename Clear>
constexpr Ops ProcessSourceOps(KFilter filter, Attach attach, Detach detach, Event event, Clear clear) {
  return Ops{.filter = filter,
             .on_descriptor = false,
             .watch_mask = 0,
             .attach = attach,
             .detach = detach,
             .event = event,
             .touch = nullptr,
             .clear = clear,
             .copy = nullptr};
}
}  // namespace

struct Kqueues::Filters {
  // --- READ, WRITE, EXCEPT: a descriptor's readiness, through a host watch ---

  // The host watch of an fd knote; a kqueue's descriptor has only
  // EVFILT_READ (kqueue_kqfilter, OB kern_event.c:245-256, DF :258-269).
  static int WatchDescriptor(Kqueues& self, Kq& kq, Knote& kn, Caller caller) {
    if (kn.kev.filter != KFilter::kRead && self.host_.KqueueAt(caller.pid, kn.fd)) {
      return kq.policy.kqueue_descriptor_filter_errno;
    }
    Result<WatchId> w = self.host_.WatchFd(caller.pid, kn.fd);
    if (!w.ok()) return w.error().value;
    kn.io.watch = *w;
    self.AdoptWatchUid(kn, *w);
    return 0;
  }

  static int FdAttach(Kqueues& self, Kq& kq, Knote& kn, Caller caller, const KChange&) {
    return WatchDescriptor(self, kq, kn, caller);
  }

  static int ReadAttach(Kqueues& self, Kq& kq, Knote& kn, Caller caller, const KChange&) {
    if (int err = WatchDescriptor(self, kq, kn, caller); err != 0) return err;
    // READ on a kqueue's descriptor watches that kqueue (filt_kqueue).
    std::optional<ObjectId> inner = self.host_.KqueueAt(caller.pid, kn.fd);
    if (inner && self.Exists(*inner)) {
      kn.io.watched_kq = *inner;
      self.kq_watchers_.emplace(*inner, kn.uid);
    }
    return 0;
  }

  static void FdDetach(Kqueues& self, Knote& kn) {
    if (kn.io.file) DropRegularFileWatch(self, kn);
    if (kn.io.watch) {
      // A level READ knote's watch, its file still the knote's: the host
      // may keep it for the number's next knote (docs/kqueue.md "What a
      // kevent costs": EV_ONESHOT added again and again).
      if (kn.keep_watch && kn.kev.filter == KFilter::kRead && !kn.io.watched_kq && !(kn.kev.flags & kev::kClear)) {
        self.host_.ReleaseWatch(*kn.io.watch, kn.owner, kn.fd, kn.io_kind);
      } else {
        self.host_.DropWatch(*kn.io.watch);
      }
      kn.io.watch.reset();  // its uid stays: the knote goes now (Drop, ~Kqueues)
    }
    if (kn.io.watched_kq) {
      auto range = self.kq_watchers_.equal_range(*kn.io.watched_kq);
      for (auto it = range.first; it != range.second; ++it) {
        if (it->second == kn.uid) {
          self.kq_watchers_.erase(it);
          break;
        }
      }
      kn.io.watched_kq.reset();
    }
  }

  // A fork copy watches the parent's descriptor (the child's, once it
  // claims the copy: the same open file at the same number). A knote on a
  // kqueue's descriptor is not copied: that descriptor is not the child's
  // (a kqueue without KQUEUE_CPONFORK is not inherited).
  static bool FdCopy(Kqueues& self, const Knote& src, Knote& copy) {
    if (src.io.watched_kq) return false;
    copy.io = {};
    if (!src.io.watch) return true;
    Result<WatchId> w = self.host_.WatchFd(src.owner, src.fd);
    if (!w.ok()) return false;  // closed meanwhile
    copy.io.watch = *w;
    self.AdoptWatchUid(copy, *w);
    // A copy of a READ knote on a regular file is woken as its original is
    // (it may never be measured before the file's next change).
    if (src.io.file) (void)WatchRegularFile(self, copy);
    return true;
  }

  // READ on a regular file has no readiness to watch (epoll refuses the
  // file): its wake-up is the file's change, as the BSDs' file systems run
  // the read filter from the vnode's knote list at each write or size
  // change (VN_KNOTE/VFS_KNOTE): FreeBSD filt_vfsread (sys/kern/vfs_subr.c),
  // OpenBSD and DragonFly filt_ufsread (sys/ufs/ufs/ufs_vnops.c,
  // sys/vfs/ufs/ufs_vnops.c). One host vnode watch per knote, made at its
  // first measurement and dropped with it (FdDetach).
  static bool WatchRegularFile(Kqueues& self, Knote& kn) {
    Result<WatchId> w = self.host_.WatchVnode(kn.owner, kn.fd, false);
    if (!w.ok()) return false;  // no wake-up (the host's limit): the scan still measures it
    kn.io.file = *w;
    self.by_vnode_[*w] = kn.uid;
    return true;
  }

  static void DropRegularFileWatch(Kqueues& self, Knote& kn) {
    self.host_.DropVnode(*kn.io.file);
    self.by_vnode_.erase(*kn.io.file);
    kn.io.file.reset();
  }

  // The descriptor's state now, or nullopt after dropping a knote whose
  // descriptor was closed (knote_fdclose: silently).
  static std::optional<FdProbe> Probe(Kqueues& self, Kq& kq, Knote& kn, FdProbeNeeds needs,
                                      bool* dropped) {
    // The descriptor this knote was registered on is closed (or now names
    // another file). Not asked at the add's own measurement: its watch was
    // made for the number's file a moment ago in this call (attached_uid_).
    if (kn.io.watch && kn.uid != self.attached_uid_ && !self.host_.SameFile(kn.owner, kn.fd, *kn.io.watch)) {
      self.Drop(kq, kn);
      *dropped = true;
      return std::nullopt;
    }
    // EV_CLEAR: what this measurement sees is reported now (or found not
    // ready); it must not come back as an edge once the knote is re-armed
    // after delivery. A knote added while data is pending is reported once
    // (DF kern_event.c:1312-1322 activates it at register, 1535-1544 clears
    // it at the scan; OB :1174-1178, :1980-1993).
    if ((kn.kev.flags & kev::kClear) && kn.io.watch) {
      self.host_.SettleWatchEdge(*kn.io.watch, kn.owner, kn.fd, WatchMask(kn));
    }
    // The file was just confirmed to be the knote's own (SameFile): what an
    // earlier probe learned of its kind still holds.
    const FdKind known = kn.io.watch ? kn.io_kind : FdKind::kUnknown;
    // READ: the look of this call may have said "readable" already; then
    // the count is all that is measured (Host::ProbeReadableAfterLook; a
    // new knote's kind is the host's, if it kept the watch). Not EV_CLEAR:
    // its measurement settles an edge watch, which no look reports to.
    Result<FdProbe> pr = needs == FdProbeNeeds::kReadable && kn.io.watch && !(kn.kev.flags & kev::kClear)
                             ? self.host_.ProbeReadableAfterLook(kn.owner, kn.fd, known, *kn.io.watch)
                             : self.host_.ProbeFd(kn.owner, kn.fd, needs, known);
    if (!pr.ok()) {
      self.Drop(kq, kn);
      *dropped = true;
      return std::nullopt;
    }
    if (kn.io.watch) kn.io_kind = pr->kind;
    self.last_probe_ = {kn.uid, pr->revents};
    kn.eof = 0;
    kn.fflags = 0;
    return *pr;
  }

  static bool ReadEvent(Kqueues& self, Kq& kq, Knote& kn, bool* dropped) {
    // OpenBSD's NOTE_EOF stays in the fflags from report to report (the
    // probe starts them anew).
    const uint32_t eof_reported = kn.fflags & kq.policy.regular_read_eof_fflag;
    const std::optional<FdProbe> probe = Probe(self, kq, kn, FdProbeNeeds::kReadable, dropped);
    if (!probe) return false;
    const FdProbe& p = *probe;
    if (kn.io.watched_kq) {
      // filt_kqueue (DF kern_event.c:281-287, OB :267-272): data = the
      // watched kqueue's pending events (kq_count), not the socket's byte.
      const Kq* inner = self.Find(*kn.io.watched_kq);
      kn.data = inner == nullptr ? 0 : static_cast<int64_t>(inner->queue.size());
      return kn.data > 0;
    }
    if (p.kind == FdKind::kFifoWriteOnly) return LackingFifoFilterEvent(kq, kn, p.readable, 1);
    // A pipe's write end: the BSDs' pipes run both ways, and its READ
    // reads the reverse direction (filt_piperead on the end's own struct
    // pipe: FreeBSD sys_pipe.c, OpenBSD filt_piperead_common, DragonFly
    // its rpb), which a Linux program can never write: no byte, ever; only
    // EV_EOF once every reader is gone (below). Not the forward bytes.
    // A regular file's first measurement: its change watch, then a second
    // look, for bytes written between the probe and the watch (once per knote).
    if (p.regular && !kn.io.file && kn.io.watch && WatchRegularFile(self, kn) && p.readable == 0) {
      return ReadEvent(self, kq, kn, dropped);
    }
    kn.data = p.kind == FdKind::kPipeWriteEnd ? 0 : p.readable;
    if (p.revents & (poll_bits::kRdHup | poll_bits::kHup)) kn.eof = kev::kEof;
    // A pipe's write end whose readers are all gone (Linux: POLLERR): the
    // BSDs' pipe read filter reports EV_EOF (docs/kqueue.md).
    if (p.pipe && (p.revents & poll_bits::kErr)) kn.eof = kev::kEof;
    if (kn.eof) kn.fflags = static_cast<uint32_t>(p.eof_error);  // the socket error
    // DragonFly's filt_piperead: EV_NODATA with EV_EOF once no byte is left.
    if (kn.eof && p.pipe && kn.data == 0) kn.eof = static_cast<uint16_t>(kn.eof | kq.policy.pipe_eof_nodata);
    if (kn.eof) return true;
    // A pending socket error makes the socket readable (filt_soread's
    // so_error). The watch wakes on POLLERR (kAlways): a filter that did not
    // count it would leave the knote queued and never delivered, its
    // waiters asleep (DF kern_event.c:1796-1797, 1510-1518).
    if (p.revents & poll_bits::kErr) return true;
    if (p.regular) {
      // filt_vfsread / filt_ufsread: bytes to EOF, or the knote's fflag
      // (KqueuePolicy::regular_read_poll_fflag, regular_read_eof_fflag).
      kn.fflags |= eof_reported;
      if (kn.sfflags & kq.policy.regular_read_poll_fflag) return true;
      if (kn.data == 0 && (kn.sfflags & kq.policy.regular_read_eof_fflag)) {
        kn.fflags |= kq.policy.regular_read_eof_fflag;
        return true;
      }
      return kn.data != 0;
    }
    if (p.listening) return kn.data > 0 || (p.revents & poll_bits::kIn);
    // A pipe's or FIFO's READ reads no NOTE_LOWAT: ready from one byte on
    // the three (FreeBSD filt_piperead, FIFOs included; OpenBSD
    // filt_piperead, filt_fiforead; DragonFly filt_piperead, filt_fiforead).
    if ((kn.sfflags & kev::kNoteLowat) && !p.pipe) return kn.data >= std::max<int64_t>(kn.sdata, 1);
    return kn.data > 0 || (p.revents & poll_bits::kIn) != 0;
  }

  static bool WriteEvent(Kqueues& self, Kq& kq, Knote& kn, bool* dropped) {
    const std::optional<FdProbe> probe = Probe(self, kq, kn, FdProbeNeeds::kWritable, dropped);
    if (!probe) return false;
    const FdProbe& p = *probe;
    if (p.kind == FdKind::kPipeReadEnd) return ReverseWriteEvent(kq, kn, p);
    if (p.kind == FdKind::kFifoReadOnly) return LackingFifoFilterEvent(kq, kn, p.writable, kPipeBuf);
    kn.data = p.writable;
    if (p.revents & (poll_bits::kHup | poll_bits::kErr)) kn.eof = kev::kEof;
    if (kn.eof) kn.fflags = static_cast<uint32_t>(p.eof_error);
    // DragonFly's filt_pipewrite: EV_EOF|EV_NODATA.
    if (kn.eof && p.pipe) kn.eof = static_cast<uint16_t>(kn.eof | kq.policy.pipe_eof_nodata);
    // An anonymous pipe's write end whose readers are all gone (POLLERR;
    // the probe then learned its way). A FIFO's keeps the room.
    if (kn.eof && p.kind == FdKind::kPipeWriteEnd) WriteAtPipeClose(kq, kn, kn.data);
    if (kn.eof || p.regular) return true;
    // A pipe's or FIFO's WRITE reads no NOTE_LOWAT either: the three are
    // ready from PIPE_BUF of room (FreeBSD filt_pipewrite; OpenBSD
    // filt_pipewrite, filt_fifowrite's `sb_lowat`; DragonFly filt_pipewrite,
    // filt_fifowrite's `ssb_lowat`, both PIPE_BUF from fifo_open). Linux
    // polls POLLOUT from a free page slot, which is what a write can count
    // on (docs/kqueue.md "READ/WRITE data").
    if ((kn.sfflags & kev::kNoteLowat) && !p.pipe) return kn.data >= std::max<int64_t>(kn.sdata, 1);
    return (p.revents & poll_bits::kOut) != 0;
  }

  // READ on a FIFO opened write-only and WRITE on one opened read-only
  // (KqueuePolicy::LackingFifoFilter). FreeBSD's never fire; OpenBSD's
  // were refused at EV_ADD (Register drops the knote this no leaves).
  // DragonFly's fifo_kqfilter hangs them on the FIFO's sockets
  // (sys/vfs/fifofs/fifo_vnops.c): filt_fiforead counts the read socket's
  // bytes (`so_rcv.ssb_cc`), ready above 0; filt_fifowrite the write
  // socket's room (`ssb_space(&so->so_snd)`, here the pipe's size less the
  // bytes queued), ready from its low mark, PIPE_BUF (fifo_open sets
  // `ssb_lowat`); neither reads NOTE_LOWAT. Their EV_EOF comes from the
  // socket's SS_ISDISCONNECTED, which fifo_close sets once the last writer
  // (for READ) or reader (for WRITE) goes: never while this descriptor,
  // one of them, is open. So the other side's close (Linux: POLLERR, POLLHUP)
  // changes nothing. Neither has a poll bit behind its yes: a delivered one
  // is not left to the look (ArmForNextLook).
  static constexpr int64_t kPipeBuf = 512;  // PIPE_BUF, sys/syslimits.h of the three

  // `measured`: DragonFly's count (the bytes, the room), ready from
  // `ready_from` (above 0, PIPE_BUF).
  static bool LackingFifoFilterEvent(const Kq& kq, Knote& kn, int64_t measured, int64_t ready_from) {
    switch (kq.policy.lacking_fifo_filter) {
      case KqueuePolicy::LackingFifoFilter::kMeasuresTheFifo:
        kn.data = measured;
        return kn.data >= ready_from;
      case KqueuePolicy::LackingFifoFilter::kNeverFires:
      case KqueuePolicy::LackingFifoFilter::kRefused:
        break;
    }
    kn.data = 0;
    return false;
  }

  // WRITE on a pipe's read end: the BSDs' reverse direction (each end's
  // write goes to the other end's struct pipe), which nothing can fill
  // here (Linux's pipes run one way). While the write end is open its room
  // is the reverse buffer's whole size: OpenBSD filt_pipewrite_common
  // (`pipe_buffer.size - cnt`, both directions made alike by
  // pipe_pair_create), DragonFly filt_pipewrite (`wpb->size - (windex -
  // rindex)`, pipe_create sizes both), here the pipe's size (as the
  // forward direction's room is); FreeBSD's reverse pipe has no buffer
  // until written (pipe_paircreate backs the forward one only), and
  // filt_pipewrite then reports PIPE_BUF (KqueuePolicy::reverse_pipe_room).
  // Ready (the room is at least PIPE_BUF; none of the three reads
  // NOTE_LOWAT for pipes). The write end gone (Linux: POLLHUP on the read
  // end): EV_EOF, its data and FreeBSD's EV_ONESHOT as WriteAtPipeClose says.
  static bool ReverseWriteEvent(const Kq& kq, Knote& kn, const FdProbe& p) {
    const int64_t room = kq.policy.reverse_pipe_room > 0 ? kq.policy.reverse_pipe_room : p.writable;
    if (p.revents & (poll_bits::kHup | poll_bits::kErr)) {
      kn.eof = static_cast<uint16_t>(kev::kEof | kq.policy.pipe_eof_nodata);  // DF filt_pipewrite
      WriteAtPipeClose(kq, kn, room);
      return true;
    }
    kn.data = room;
    return true;
  }

  // WRITE on an anonymous pipe's end whose other end is closed
  // (KqueuePolicy::pipe_close_clears_write): OpenBSD filt_pipewrite_common
  // and DragonFly filt_pipewrite set data 0 and keep the knote; FreeBSD's
  // pipeclose posts it once with the room filt_pipewrite measured at its
  // wake-up (`room`: the forward room, unchanged since, as nobody can write
  // or read it any more; PIPE_BUF for the reverse pipe) and knlist_clear
  // makes it EV_ONESHOT, which the record shows and the scan's delivery
  // drops (FreeBSD sys_pipe.c pipeclose, kern_event.c knlist_cleardel and
  // kqueue_scan).
  static void WriteAtPipeClose(const Kq& kq, Knote& kn, int64_t room) {
    if (!kq.policy.pipe_close_clears_write) {
      kn.data = 0;
      return;
    }
    kn.data = room;
    kn.kev.flags |= kev::kOneshot;
  }

  static bool ExceptEvent(Kqueues& self, Kq& kq, Knote& kn, bool* dropped) {
    const std::optional<FdProbe> probe = Probe(self, kq, kn, FdProbeNeeds::kReadiness, dropped);
    if (!probe) return false;
    kn.data = 0;  // out-of-band data pending
    return (probe->revents & poll_bits::kPri) != 0;
  }

  // EV_CLEAR after delivery, for the filters whose fflags and data are
  // measured or accumulated anew (filt_*: kn_data = 0, kn_fflags = 0).
  static void ClearDataAndFflags(const Kq&, Knote& kn) {
    kn.data = 0;
    kn.fflags = 0;
  }

  // --- TIMER: deadlines kept by the engine ---

  static int TimerAttach(Kqueues& self, Kq& kq, Knote& kn, Caller, const KChange& change) {
    // EV_CLEAR automatically set (DF kern_event.c:489), except for
    // NOTE_ABSTIME (FreeBSD and OpenBSD filt_timerattach): an absolute timer
    // that fired stays active until EV_DELETE.
    if (!change.timer_absolute) kn.kev.flags |= kev::kClear;
    return self.ArmTimer(kq, kn, change);
  }

  static void TimerDetach(Kqueues& self, Knote& kn) {
    if (kn.timer.running) self.RemoveDeadline(kn.timer.next_fire, DeadlineKind::kTimer, kn.uid);
    kn.timer.running = false;
  }

  static bool CountedEvent(Kqueues&, Kq&, Knote& kn, bool*) {
    return kn.data > 0;  // expirations (TIMER) or deliveries (SIGNAL) since the last retrieval
  }

  static void TimerTouch(Kqueues& self, Kq& kq, Knote& kn, const KChange& change) {
    if (!(change.kev.flags & kev::kAdd)) return;
    if (!kq.policy.timer_modify_restarts) {
      kn.timer.period = TimerPeriod(kq, change.timer_period);  // DragonFly: the period only
      return;
    }
    kn.data = 0;  // pending expirations are discarded
    kn.active = false;
    self.Dequeue(kq, kn);
    // filt_timertouch / filt_timermodify: restarted with the new fflags,
    // NOTE_ABSTIME included; a time already past fires at once. A FreeBSD
    // time before boot leaves the timer stopped and the change succeeds
    // (filt_timertouch records the error on the knote, never reported).
    if (self.ArmTimer(kq, kn, change) == 0 && kn.data > 0) self.Activate(kq, kn);
  }

  static void TimerClear(const Kq&, Knote& kn) { kn.data = 0; }

  // The copy runs on the same schedule: the same next expiry, its count kept.
  static bool TimerCopy(Kqueues& self, const Knote& src, Knote& copy) {
    copy.timer.running = false;
    if (!src.timer.running) return true;
    copy.timer.next_fire = src.timer.next_fire;
    copy.timer.running = true;
    self.AddDeadline(copy.timer.next_fire, DeadlineKind::kTimer, copy.uid);
    return true;
  }

  // No host resources: the registration and its state are the copy.
  static bool PlainCopy(Kqueues&, const Knote&, Knote&) { return true; }

  // --- USER: triggered by the program (DF kern_event.c:526-625) ---

  static int UserAttach(Kqueues&, Kq&, Knote& kn, Caller, const KChange& change) {
    // filt_userattach: trigger, then the fflags control.
    kn.user.triggered = (change.kev.fflags & kev::kNoteTrigger) != 0;
    switch (change.kev.fflags & kev::kNoteFfctrlMask) {
      case kev::kNoteFfand:
        kn.fflags &= change.kev.fflags & kev::kNoteFflagsMask;
        break;
      case kev::kNoteFfor:
      case kev::kNoteFfcopy:
        kn.fflags = change.kev.fflags & kev::kNoteFflagsMask;
        break;
      default:
        break;
    }
    kn.data = change.kev.data;
    return 0;
  }

  static bool UserEvent(Kqueues&, Kq&, Knote& kn, bool*) { return kn.user.triggered; }

  // filt_usertouch EVENT_REGISTER (DF kern_event.c:577-625), with or
  // without EV_ADD: NOTE_TRIGGER and the fflags controls act either way.
  static void UserTouch(Kqueues& self, Kq& kq, Knote& kn, const KChange& change) {
    if (change.kev.fflags & kev::kNoteTrigger) kn.user.triggered = true;
    switch (change.kev.fflags & kev::kNoteFfctrlMask) {
      case kev::kNoteFfand:
        kn.fflags &= change.kev.fflags & kev::kNoteFflagsMask;
        break;
      case kev::kNoteFfor:
        kn.fflags |= change.kev.fflags & kev::kNoteFflagsMask;
        break;
      case kev::kNoteFfcopy:
        kn.fflags = change.kev.fflags & kev::kNoteFflagsMask;
        break;
      default:
        break;
    }
    kn.data = change.kev.data;
    if (change.kev.flags & kev::kClear) {  // EV_CLEAR on a modify resets the trigger
      kn.user.triggered = false;
      kn.data = 0;
      kn.fflags = 0;
    }
    if (kn.user.triggered) {
      self.Activate(kq, kn);
    } else {
      kn.active = false;
      self.Dequeue(kq, kn);
    }
  }

  static void UserClear(const Kq& kq, Knote& kn) {
    kn.user.triggered = false;
    if (kq.policy.user_clear_resets_fflags) {
      kn.fflags = 0;
      kn.data = 0;
    }
  }

  // A knote's watch of a host source that reports by watch id (VNODE's
  // by_vnode_, FS's by_mounts_): kept in `slot` and indexed for the
  // reports; 0 or the errno the host refused it with.
  static int KeepSourceWatch(std::unordered_map<WatchId, uint64_t>& index, OptionalId<WatchId>& slot,
                             const Knote& kn, const Result<WatchId>& w) {
    if (!w.ok()) return w.error().value;
    slot = *w;
    index[*w] = kn.uid;
    return 0;
  }
  // Its index entry and slot go (the host's watch is dropped by the caller).
  static void ForgetSourceWatch(std::unordered_map<WatchId, uint64_t>& index, OptionalId<WatchId>& slot) {
    if (!slot) return;
    index.erase(*slot);
    slot.reset();
  }

  // --- VNODE: a file's changes, through a host vnode watch ---

  static int VnodeAttach(Kqueues& self, Kq& kq, Knote& kn, Caller caller, const KChange&) {
    if (self.host_.KqueueAt(caller.pid, kn.fd)) return kq.policy.kqueue_descriptor_filter_errno;
    kn.vnode_use = WantsVnodeUse(kq, kn.sfflags);
    return KeepSourceWatch(self.by_vnode_, kn.vnode.watch, kn,
                           self.host_.WatchVnode(caller.pid, kn.fd, kn.vnode_use));
  }

  static void VnodeDetach(Kqueues& self, Knote& kn) {
    if (kn.vnode.watch) self.host_.DropVnode(*kn.vnode.watch);
    ForgetSourceWatch(self.by_vnode_, kn.vnode.watch);
  }

  static bool VnodeEvent(Kqueues& self, Kq& kq, Knote& kn, bool* dropped) {
    // knote_fdclose, as for the other fd filters.
    if (self.Stale(kn)) {
      self.Drop(kq, kn);
      *dropped = true;
      return false;
    }
    return kn.fflags != 0 || kn.eof != 0;  // filt_vnode: kn_fflags != 0
  }

  static bool VnodeCopy(Kqueues& self, const Knote& src, Knote& copy) {
    copy.vnode.watch.reset();
    if (!src.vnode.watch) return true;
    Result<WatchId> w = self.host_.WatchVnode(src.owner, src.fd, src.vnode_use);
    if (!w.ok()) return false;
    copy.vnode.watch = *w;
    self.by_vnode_[*w] = copy.uid;
    return true;
  }

  static void VnodeTouch(Kqueues& self, Kq& kq, Knote& kn, const KChange&) {
    if (!kn.vnode_use && kn.vnode.watch && WantsVnodeUse(kq, kn.sfflags)) {
      kn.vnode_use = true;
      self.host_.WatchVnodeUse(*kn.vnode.watch);
    }
  }

  // --- FS: mounts and unmounts (Host::WatchMounts) ---

  // filt_fsattach (DF kern_event.c:656-662, FreeBSD vfs_subr.c): EV_CLEAR
  // forced and the knote put on the one list of every mount's signal; any
  // ident. Here the list is the mount table of the registering process's
  // namespace (docs/kqueue.md "EVFILT_FS").
  static int FsAttach(Kqueues& self, Kq&, Knote& kn, Caller caller, const KChange&) {
    kn.kev.flags |= kev::kClear;
    return KeepSourceWatch(self.by_mounts_, kn.fs.watch, kn, self.host_.WatchMounts(caller.pid));
  }

  static void FsDetach(Kqueues& self, Knote& kn) {
    if (kn.fs.watch) self.host_.DropMounts(*kn.fs.watch);
    ForgetSourceWatch(self.by_mounts_, kn.fs.watch);
  }

  // filt_fs (DF kern_event.c:671-675; FreeBSD filt_fsevent): the hints
  // accumulate in fflags (OnMountEvent) until the EV_CLEAR delivery.
  static bool FsEvent(Kqueues&, Kq&, Knote& kn, bool*) { return kn.fflags != 0; }

  // --- PROC: a process's exit, forks and execs (Host::WatchProcess) ---

  static int ProcAttach(Kqueues& self, Kq& kq, Knote& kn, Caller, const KChange& change) {
    // filt_procattach (OB kern_event.c:321-359, DF kern_event.c:289-336).
    if (kn.kev.ident == 0 || kn.kev.ident > static_cast<uint64_t>(INT_MAX)) return ESRCH;
    const Pid pid = static_cast<Pid>(kn.kev.ident);
    const bool fork_exec = (kn.sfflags & (kev::kNoteFork | kev::kNoteExec | kev::kNoteTrack)) != 0;
    Result<Host::ProcessState> st = self.host_.WatchProcess(pid, fork_exec, change.track_parent != 0);
    if (!st.ok()) return st.error().value;
    kn.proc.watched = true;
    self.proc_knotes_.emplace(pid, kn.uid);
    kn.kev.flags |= kev::kClear;  // automatically set (OB :343, DF :312)
    if (change.track_parent != 0) {
      // Registered by NOTE_TRACK: reports NOTE_CHILD with the parent's pid
      // (OB :348-352, DF :317-321).
      kn.fflags = kev::kNoteChild;
      kn.data = change.track_parent;
    } else if (st->zombie) {
      switch (kq.policy.zombie_attach) {
        case KqueuePolicy::ZombieAttach::kRefuse:
          return ESRCH;
        case KqueuePolicy::ZombieAttach::kWithNoteExit:
          if (!(kn.sfflags & kev::kNoteExit)) return ESRCH;
          break;
        case KqueuePolicy::ZombieAttach::kAlways:
          break;
      }
    }
    if (st->zombie) kn.proc.drop_now = self.ApplyExit(kq, kn, st->status);  // DF :325-331: at once
    return 0;
  }

  static void ProcDetach(Kqueues& self, Knote& kn) {
    if (!kn.proc.watched) return;
    kn.proc.watched = false;
    const Pid pid = static_cast<Pid>(kn.kev.ident);
    auto range = self.proc_knotes_.equal_range(pid);
    for (auto it = range.first; it != range.second; ++it) {
      if (it->second == kn.uid) {
        self.proc_knotes_.erase(it);
        break;
      }
    }
    self.host_.UnwatchProcess(pid);
  }

  static bool ProcEvent(Kqueues&, Kq&, Knote& kn, bool*) {
    return kn.fflags != 0 || kn.eof != 0;  // OB kern_event.c:449
  }

  // --- SIGNAL: deliveries reported by the library (OnSignal) ---

  static int SignalAttach(Kqueues&, Kq&, Knote& kn, Caller, const KChange&) {
    // filt_sigattach: a valid signal number; EV_CLEAR forced.
    if (kn.kev.ident == 0 || kn.kev.ident >= kev::kNsig) return EINVAL;
    kn.kev.flags |= kev::kClear;
    return 0;
  }

  // --- the table ---
  // PROC and SIGNAL are the process's own: KQUEUE_CPONFORK does not copy
  // them (kqueue_fork_copy: no f_copy).
  static constexpr FilterOps kRead{
      .filter = KFilter::kRead,
      .on_descriptor = true,
      .watch_mask = poll_bits::kIn | poll_bits::kRdHup | kAlways,
      .attach = &ReadAttach,
      .detach = &FdDetach,
      .event = &ReadEvent,
      .touch = nullptr,
      .clear = &ClearDataAndFflags,
      .copy = &FdCopy};
  static constexpr FilterOps kWrite{
      .filter = KFilter::kWrite,
      .on_descriptor = true,
      .watch_mask = poll_bits::kOut | kAlways,
      .attach = &FdAttach,
      .detach = &FdDetach,
      .event = &WriteEvent,
      .touch = nullptr,
      .clear = &ClearDataAndFflags,
      .copy = &FdCopy};
  static constexpr FilterOps kExcept{
      .filter = KFilter::kExcept,
      .on_descriptor = true,
      .watch_mask = poll_bits::kPri | kAlways,
      .attach = &FdAttach,
      .detach = &FdDetach,
      .event = &ExceptEvent,
      .touch = nullptr,
      .clear = &ClearDataAndFflags,
      .copy = &FdCopy};
  static constexpr FilterOps kVnode{
      .filter = KFilter::kVnode,
      .on_descriptor = true,
      .watch_mask = 0,
      .attach = &VnodeAttach,
      .detach = &VnodeDetach,
      .event = &VnodeEvent,
      .touch = &VnodeTouch,
      .clear = &ClearDataAndFflags,
      .copy = &VnodeCopy};
  static constexpr FilterOps kProc =
      ProcessSourceOps<FilterOps>(KFilter::kProc, &ProcAttach, &ProcDetach, &ProcEvent, &ClearDataAndFflags);
  static constexpr FilterOps kSignal{
      .filter = KFilter::kSignal,
      .on_descriptor = false,
      .watch_mask = 0,
      .attach = &SignalAttach,
      .detach = nullptr,
      .event = &CountedEvent,
      .touch = nullptr,
      .clear = &ClearDataAndFflags,
      .copy = nullptr};
  static constexpr FilterOps kTimer{
      .filter = KFilter::kTimer,
      .on_descriptor = false,
      .watch_mask = 0,
      .attach = &TimerAttach,
      .detach = &TimerDetach,
      .event = &CountedEvent,
      .touch = &TimerTouch,
      .clear = &TimerClear,
      .copy = &TimerCopy};
  static constexpr FilterOps kFs =
      ProcessSourceOps<FilterOps>(KFilter::kFs, &FsAttach, &FsDetach, &FsEvent, &ClearDataAndFflags);
  static constexpr FilterOps kUser{
      .filter = KFilter::kUser,
      .on_descriptor = false,
      .watch_mask = 0,
      .attach = &UserAttach,
      .detach = nullptr,
      .event = &UserEvent,
      .touch = &UserTouch,
      .clear = &UserClear,
      .copy = &PlainCopy};

  static constexpr const FilterOps* kAll[] = {&kRead, &kWrite, &kExcept, &kVnode, &kProc,
                                              &kSignal, &kTimer, &kFs, &kUser};
  // Every filter once, each at its KFilter value (OpsOf indexes by it).
  static constexpr bool InFilterOrder() {
    for (size_t i = 0; i < std::size(kAll); ++i) {
      if (static_cast<size_t>(kAll[i]->filter) != i) return false;
    }
    return std::size(kAll) == kFilterCount;
  }
  // kAll as the index OpsOf reads (a filter added to KFilter and not to
  // kAll fails InFilterOrder here, at compile time).
  static constexpr std::array<const FilterOps*, kFilterCount> ByFilter() {
    static_assert(InFilterOrder());
    std::array<const FilterOps*, kFilterCount> ops{};
    for (size_t i = 0; i < kFilterCount; ++i) ops[i] = kAll[i];
    return ops;
  }
};

constinit const std::array<const Kqueues::FilterOps*, Kqueues::kFilterCount> Kqueues::kOpsByFilter =
    Filters::ByFilter();

std::span<const Kqueues::FilterOps* const> Kqueues::AllFilters() { return kOpsByFilter; }

// The watched process exited; true if the knote is to be dropped silently.
bool Kqueues::ApplyExit(Kq& kq, Knote& kn, int64_t status) {
  Filters::ProcDetach(*this, kn);  // detached: the process is gone (OB kern_event.c:413-420)
  kn.fflags |= kn.sfflags & kev::kNoteExit;
  if (!kq.policy.proc_exit_always && kn.fflags == 0) return true;  // FreeBSD EV_DROP
  kn.data = status;  // the wait status (OB :419 W_EXITCODE, DF :384 p_xstat)
  kn.eof = static_cast<uint16_t>(kev::kEof | kq.policy.proc_exit_flags);
  kn.kev.flags |= kev::kOneshot;  // deleted once read out (OB :418, DF :388)
  return false;
}

// Whether a VNODE knote asks for notes only use events give (FreeBSD's
// NOTE_OPEN, NOTE_CLOSE, NOTE_CLOSE_WRITE, NOTE_READ), in its wire fflags.
bool Kqueues::WantsVnodeUse(const Kq& kq, uint32_t sfflags) {
  constexpr uint32_t kUseNotes = kev::kNoteOpened | kev::kNoteClose | kev::kNoteCloseWrite | kev::kNoteRead;
  const uint32_t notes = kq.policy.vnode_notes;
  uint32_t wanted = sfflags & notes & kUseNotes;
  if ((notes & kev::kNoteOpened) && (sfflags & kev::kNoteOpenWire)) wanted |= kev::kNoteOpened;
  return wanted != 0;
}

// --- The filters' sources: what the host reports, turned into knote state ---

// TIMER: the engine's deadlines.
Nanos Kqueues::TimerPeriod(const Kq& kq, Nanos requested) {
  return std::max({requested, kq.policy.timer_min_period, Nanos{1}});
}

void Kqueues::StartTimer(Knote& kn, Nanos now) {
  if (kn.timer.running) RemoveDeadline(kn.timer.next_fire, DeadlineKind::kTimer, kn.uid);
  kn.timer.running = false;
  kn.timer.next_fire = AddNanos(now, kn.timer.period);
  if (kn.timer.next_fire == kLatest) return;  // beyond the clock's range: never expires
  kn.timer.running = true;
  AddDeadline(kn.timer.next_fire, DeadlineKind::kTimer, kn.uid);
}

int Kqueues::ArmTimer(Kq& kq, Knote& kn, const KChange& change) {
  if (change.timer_period < 0) return EINVAL;
  if (!change.timer_absolute) {
    kn.timer.absolute = false;
    kn.timer.period = TimerPeriod(kq, change.timer_period);
    StartTimer(kn, host_.Now());
    return 0;
  }
  // NOTE_ABSTIME: the CLOCK_REALTIME expiry becomes a point on the host's
  // clock once, at registration, as both kernels do (FreeBSD subtracts the
  // boot time, OpenBSD takes `expiry - nanotime()`): a later step of the
  // wall clock does not move it.
  const Nanos expiry = change.timer_period - host_.RealtimeOffset();
  if (expiry < 0 && kq.policy.abstime_before_boot_einval) return EINVAL;
  if (kn.timer.running) RemoveDeadline(kn.timer.next_fire, DeadlineKind::kTimer, kn.uid);
  kn.timer.running = false;
  kn.timer.absolute = true;
  kn.timer.period = 0;  // never repeats (FreeBSD kc->to = 0, OpenBSD ft_reschedule = 0)
  if (expiry <= host_.Now()) {
    ++kn.data;  // already past: expires at once (OpenBSD filt_timeradd)
    return 0;
  }
  kn.timer.next_fire = expiry;
  kn.timer.running = true;
  AddDeadline(kn.timer.next_fire, DeadlineKind::kTimer, kn.uid);
  return 0;
}

// A timer knote's deadline `when` passed (OnDeadline, at `now`): counts
// the expirations and re-arms a periodic timer. Its kqueue if it activated.
Kqueues::Kq* Kqueues::ExpireTimer(Knote& kn, Nanos when, Nanos now) {
  if (!kn.timer.running || kn.timer.next_fire != when) return nullptr;
  kn.timer.running = false;
  // Expirations since the last retrieval, missed periods included:
  // arithmetic, never a step per period (a period is at least 1 ns,
  // TimerPeriod), and the next expiry is strictly after `now`.
  const bool repeats = !(kn.kev.flags & kev::kOneshot) && !kn.timer.absolute;
  int64_t fired = 1;
  if (repeats) {
    const Nanos period = std::max<Nanos>(kn.timer.period, 1);
    const Nanos late = now - when;  // >= 0
    fired += late / period;
    kn.timer.next_fire = AddNanos(now - late % period, period);
    if (kn.timer.next_fire != kLatest) {  // else beyond the clock's range: stops
      kn.timer.running = true;
      AddDeadline(kn.timer.next_fire, DeadlineKind::kTimer, kn.uid);
    }
  }
  kn.data = fired > INT64_MAX - kn.data ? INT64_MAX : kn.data + fired;
  Kq* kq = Find(kn.kq);
  if (kq == nullptr) return nullptr;
  Activate(*kq, kn);
  return kq;
}

// PROC: Host::WatchProcess reports exits, forks and execs.
std::vector<uint64_t> Kqueues::ProcKnotes(Pid pid) const {
  std::vector<uint64_t> uids;
  auto range = proc_knotes_.equal_range(pid);
  for (auto it = range.first; it != range.second; ++it) uids.push_back(it->second);
  return uids;
}

template <typename Fn>
void Kqueues::ForEachProcKnote(Pid pid, Fn&& fn) {
  // The PROC knotes watching `pid` (a copy: `fn` may add or drop knotes),
  // each with its kqueue; then the kqueues touched wake their waiters.
  std::set<ObjectId> touched;
  for (uint64_t uid : ProcKnotes(pid)) {
    auto k = knotes_.find(uid);
    if (k == knotes_.end()) continue;
    Knote& kn = *k->second;
    Kq* kq = Find(kn.kq);
    if (kq == nullptr) continue;
    touched.insert(kq->id);
    fn(*kq, kn);
  }
  for (ObjectId id : touched) {
    if (Kq* kq = Find(id)) Pump(*kq);
  }
  ReapClosed();
}

void Kqueues::OnProcessExit(Pid pid, int64_t status) {
  ForEachProcKnote(pid, [&](Kq& kq, Knote& kn) {
    if (ApplyExit(kq, kn, status)) {
      Drop(kq, kn);
    } else {
      Activate(kq, kn);
    }
  });
}

void Kqueues::OnProcessFork(Pid parent, Pid child) {
  ForEachProcKnote(parent, [&](Kq& kq, Knote& kn) {
    if (kn.sfflags & kev::kNoteFork) kn.fflags |= kev::kNoteFork;
    if (kn.sfflags & kev::kNoteTrack) {
      // filt_proc NOTE_TRACK (OB kern_event.c:430-447, DF :397-415): a knote
      // on the child in the same kqueue, same fflags and udata; failing
      // that, NOTE_TRACKERR on the parent's.
      KChange c;
      c.kev = kn.Registered();
      c.kev.ident = static_cast<uint64_t>(child);
      c.kev.flags = static_cast<uint16_t>((kn.kev.flags | kev::kAdd | kev::kEnable) & ~kev::kOneshot);
      c.kev.fflags = kn.sfflags;
      c.kev.data = parent;
      c.track_parent = parent;
      if (Register(kq, Caller{kq.owner, kq.owner}, c) != 0) kn.fflags |= kev::kNoteTrackErr;
    }
    if (kn.fflags != 0) Activate(kq, kn);
  });
}

void Kqueues::OnProcessExec(Pid pid) {
  ForEachProcKnote(pid, [&](Kq& kq, Knote& kn) {
    if (!(kn.sfflags & kev::kNoteExec)) return;
    kn.fflags |= kev::kNoteExec;
    Activate(kq, kn);
  });
}

// VNODE: Host::WatchVnode reports a file's changes.
void Kqueues::OnVnodeEvent(WatchId watch, uint32_t notes) {
  auto it = by_vnode_.find(watch);
  if (it == by_vnode_.end()) return;
  Knote& kn = *knotes_.at(it->second);
  Kq* kq = Find(kn.kq);
  if (kq == nullptr) return;
  if (kn.kev.filter == KFilter::kRead) {
    OnRegularFileChange(*kq, kn);
    return;
  }
  // filt_vnode: `notes` is one hint, as a BSD file system posts it
  // (NOTE_WRITE|NOTE_EXTEND for a growing write; OpenBSD's NOTE_ATTRIB|
  // NOTE_TRUNCATE for a shrinking setattr; NOTE_WRITE|NOTE_LINK on a
  // directory for mkdir/rmdir). If the knote asked for any of its bits it
  // records the whole hint (`if (kn_sfflags & hint) kn_fflags |= hint`).
  // A revoke is the end.
  uint32_t wire = notes & kq->policy.vnode_notes;
  if (wire & kev::kNoteOpened) wire = (wire & ~kev::kNoteOpened) | kev::kNoteOpenWire;  // FreeBSD only
  if (wire & kn.sfflags) kn.fflags |= wire;
  if (notes & kev::kNoteRevoke) {
    kn.eof = kev::kEof;
    kn.kev.flags |= kev::kOneshot;
  }
  if (kn.fflags == 0 && kn.eof == 0) return;
  Activate(*kq, kn);
  Pump(*kq);
  ReapClosed();
}

// FS: Host::WatchMounts reports the mount table's changes. DragonFly's
// sys_mount and FreeBSD's vfs_domount_first signal VQ_MOUNT for a new
// mount, dounmount VQ_UNMOUNT (DF vfs_syscalls.c, FreeBSD vfs_mount.c); an
// update of a mount (MNT_UPDATE) signals nothing in either (DF sys_mount's
// MNT_UPDATE branch, FreeBSD vfs_domount_update: a devctl REMOUNT only).
// filt_fs ORs the hint into fflags whether or not the knote is enabled
// (knote() runs the filter of a disabled knote too, DF kern_event.c:1794-1797).
void Kqueues::OnMountEvent(WatchId watch, uint32_t changes) {
  auto it = by_mounts_.find(watch);
  if (it == by_mounts_.end()) return;
  auto k = knotes_.find(it->second);
  if (k == knotes_.end()) return;
  Knote& kn = *k->second;
  Kq* kq = Find(kn.kq);
  if (kq == nullptr) return;
  uint32_t hint = 0;
  if (changes & mount_bits::kMounted) hint |= kev::kVqMount;
  if (changes & mount_bits::kUnmounted) hint |= kev::kVqUnmount;
  if (hint == 0) return;
  kn.fflags |= hint;
  Activate(*kq, kn);
  Pump(*kq);
  ReapClosed();
}

// READ on a regular file: its file changed (written, extended, truncated,
// its attributes). The file system's VN_KNOTE runs the read filter then
// (filt_vfsread, filt_ufsread: data = size - offset, yes if not 0) and a
// yes activates the knote (DF kern_event.c:1796-1797); a no changes
// nothing. A queued level knote is left to the scan, which measures it; an
// EV_ONESHOT is measured now, as it is posted as last measured (as
// RouteWatchReady does).
void Kqueues::OnRegularFileChange(Kq& kq, Knote& kn) {
  if (kn.queued && !(kn.kev.flags & kev::kOneshot)) return;
  bool dropped = false;
  if (Evaluate(kq, kn, &dropped) && !dropped) Activate(kq, kn);
  Pump(kq);
  ReapClosed();
}

// SIGNAL: the library's counting hook (abi: evshim_kqueue_signal).
void Kqueues::OnSignal(Pid pid, int signo) {
  if (signo <= 0 || static_cast<uint64_t>(signo) >= kev::kNsig) return;
  std::vector<ObjectId> touched;
  for (auto& [id, kq] : kqs_) {
    if (kq->owner != pid) continue;
    Knote* kn = FindKnote(*kq, KFilter::kSignal, static_cast<uint64_t>(signo));
    if (kn == nullptr) continue;
    ++kn->data;  // counted even while disabled; reported when enabled
    Activate(*kq, *kn);
    touched.push_back(id);
  }
  for (ObjectId id : touched) {
    if (Kq* kq = Find(id)) Pump(*kq);
  }
  ReapClosed();
}

}  // namespace evshim::emul
