// Watches on the host's own descriptors (the in-process engine; docs/design.md
// "The in-process fast path", Watches): the program's descriptor itself is
// registered in engine-wide epolls, so a watch costs no descriptor.
//
// epoll keys a registration by (open file, descriptor number) and allows one
// per key and epoll, while several watches can name one descriptor (a
// kqueue's READ and WRITE knotes on a socket, two ports on one fd). So one
// `File` per watched number multiplexes its watches:
// - the level epoll holds one persistent level-triggered registration per
//   file; a report goes to each armed watch it matches (then disarmed) and
//   leaves the registration as it is, so re-arming a watch whose file is
//   not ready costs no system call. Disarming is lazy: only a report that
//   concerns no armed watch narrows the registration to the armed watches'
//   masks, or switches it off (a mask-less EPOLLONESHOT one) when none is;
//   an identity check of a switched-off file sets it one-shot with its
//   last mask (a ready file then reports once, and no second EPOLL_CTL_MOD
//   is needed to arm a watch that is not ready); a file whose watches are
//   all port associations is one-shot while armed instead, so that the
//   identity check's MOD places an association's event in epoll's ready
//   list (set_one_shot_associations);
// - edge watches (kqueue EV_CLEAR) share an EPOLLET registration per file and
//   mask, in one edge epoll per mask (so a write wake-up is never a read
//   edge); a report goes to an armed watch, or is kept as the watch's pending
//   edge until it is armed or settled;
// - the level registration is also the file's identity: EPOLL_CTL_MOD on the
//   number fails (ENOENT, EBADF) once the number no longer names that file.
//   A file found so is dead for good; its registrations may linger in the
//   kernel (a raw close with the file open elsewhere), and are ignored.
// The level registrations sit directly in the *look* epoll, the one the
// engine reads (and waits on): it also holds the engine's loop epoll (the
// other host sources, nested), the edge epolls and the kick eventfd, so one
// epoll_wait reads the level reports and tells whether anything else is
// worth a look (TakeLoopReport).
#pragma once

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "emul/result.h"
#include "emul/types.h"
#include "shim/runtime/by_number.h"
#include "shim/runtime/slot_table.h"

namespace evshim::shim {

class LocalWatches {
 public:
  using ReadyList = std::vector<std::pair<emul::WatchId, uint32_t>>;
  // `loop_epoll` (the other host sources) is nested in the look epoll. A
  // failure there is reported through `fault` (also later ones: epoll_ctl
  // failures of our own, errno set).
  LocalWatches(int loop_epoll, std::function<void(const char*, std::string)> fault);
  ~LocalWatches();
  LocalWatches(const LocalWatches&) = delete;
  LocalWatches& operator=(const LocalWatches&) = delete;

  // Hears of each descriptor newly registered (the engine notes watches on
  // its own objects' descriptors).
  void set_register_callback(std::function<void(int)> cb) { register_cb_ = std::move(cb); }
  // Identity checks are kept until ForgetFileChecks() while `on`.
  void set_memo(bool on) {
    memo_ = on;
    NextEpoch();
  }
  // Atomic: TSan does not see the engine lock taken inside its own poll
  // interceptor (the poll family's settle), though the lock is held.
  void ForgetFileChecks() { NextEpoch(); }
  // The identity of number `fd` alone is checked again at its next use.
  void ForgetFileCheck(int fd) {
    if (File* f = FindLive(fd)) f->checked = 0;  // epoch_ is never 0
  }

  // The id the next watch should take (`tag`: bits 46 and up, the
  // caller's own; slot_table.h): Add it. A watch's record is addressed by
  // its id, so the id names a free slot of the table.
  emul::WatchId NewId(uint64_t tag);
  // Starts a watch under `id` (NewId's, or one whose slot is free: tests).
  void Add(emul::WatchId id);
  // Whether Arm must answer the file's readiness now (kNow), or may leave
  // a ready file to be reported at the next TakeReady (kReportedAtLook:
  // the caller's every observer takes the ready watches first). Then a
  // watch whose file's level registration already covers `events` is armed
  // with no system call.
  // kIfFree: as kReportedAtLook where that costs no system call; otherwise
  // the watch is left as it is and `events` returned (the caller measures).
  // A watch no registration carries yet is registered first (RegisterLevel:
  // one system call or two, once, instead of a measurement at every scan).
  enum Answer : uint8_t { kNow, kReportedAtLook, kIfFree };
  // `measured`: the file's poll bits, measured by the caller after it
  // confirmed the file (SameFile); answers instead of a poll (the
  // registration reports what comes later, if need be once widened).
  // Inline, an association's re-arm on the file its identity check (or its
  // registration) placed in this call first (ArmOnItsPlacement: every
  // port_associate placed without a look); the rest out of line.
  [[gnu::always_inline]] emul::Result<uint32_t> Arm(emul::WatchId id, int fd, uint32_t events,
                                                    const uint32_t* measured = nullptr, Answer answer = kNow) {
    if (answer == kReportedAtLook && one_shot_assocs_) {
      if (Watch* w = watches_.Find(id); w != nullptr && ArmOnItsPlacement(*w, id, fd, events & kPollBits)) return 0u;
    }
    return ArmAny(id, fd, events, measured, answer);
  }
  emul::Result<uint32_t> ArmEdge(emul::WatchId id, int fd, uint32_t events);
  void SettleEdge(emul::WatchId id, int fd, uint32_t events);
  void Disarm(emul::WatchId id);
  void Drop(emul::WatchId id);
  // Keeps level watch `id`, which nothing arms for now, on number `fd`'s
  // file with its level registration on for `events` (LinuxHost::
  // ReleaseWatch): the next look reports a ready file to it
  // (ReportedReadyThisCall) and its next user confirms the number with that
  // registration (SameFile). No call when the registration is on and
  // covers `events` already; a report of this call counts as taken (the
  // watch's last user measured the file at this call). False: not kept
  // (an edge or pollless watch, a file gone); the caller drops it.
  bool Keep(emul::WatchId id, int fd, uint32_t events);
  // `open_known`: the caller saw the number open in this call (answers a
  // watch not registered yet with no system call).
  // Inline: every association's re-arm and every delivery asks.
  bool SameFile(int fd, emul::WatchId id, bool open_known = false) {
    const Watch* w = watches_.Find(id);
    if (w == nullptr) return false;
    // Not registered (not armed yet, or a file epoll refuses): open is all
    // that can be told.
    if (w->file == 0) return open_known || NumberOpen(fd);
    if (fd != w->fd) return false;
    File* f = FileOf(*w);
    return f != nullptr && Confirm(*f);
  }
  // Every armed watch reported since the last call (each is then disarmed),
  // read with one epoll_wait of the look epoll.
  void TakeReady(ReadyList* out);
  // Switch-offs decided per call (the engine): a level report that
  // concerns no armed watch leaves the registration as it is until
  // EndCall(). An Arm(kReportedAtLook) in the same call takes that report
  // as the file's readiness at the call (rule 6: fires at once, no poll);
  // a registration whose reports went unused at the end of two calls in a
  // row is narrowed to the armed watches (off when none is). Off (the
  // default): a report that concerns no armed watch narrows at once.
  void set_switch_offs_per_call(bool on) { per_call_ = on; }
  // Port associations placed by their EPOLL_CTL_MOD (docs/design.md
  // "The in-process fast path", Watches: an association placed without a
  // look): a file whose every watch is armed by kReportedAtLook (FD
  // associations) keeps a one-shot registration while armed, so the identity check's EPOLL_CTL_MOD both
  // re-arms it and, when the file is ready, links it at the tail of epoll's
  // ready list: where illumos queues the association's event (port.c:153-163),
  // behind every file that woke before. Per call only (EndCall).
  void set_one_shot_associations(bool on) { one_shot_assocs_ = on; }
  // How an association (kReportedAtLook) of number `fd` in this call,
  // before any look, would be placed: by its identity check (kByItsMod: its
  // live file has only such watches, and its registration reported since
  // the last MOD, one-shot, so disabled and off the ready list), or by the
  // EPOLL_CTL_ADD of a new record (kByItsAdd: no live file has the number;
  // the caller makes sure epoll takes the file, or the association would
  // not be registered at all). Then the call needs no look of its own.
  // No system call.
  enum class Placement : uint8_t { kByALook, kByItsMod, kByItsAdd };
  Placement PlacementWithoutLook(int fd);
  // The end of a call, or of a look made outside one (a waiter's wake-up,
  // the idle pump): the switch-offs of its reports are decided.
  // Inline when the call listed nothing to settle (its READ reports, its
  // reports that concerned no armed watch); the lists' walk out of line.
  // The call's placements end with its number (File::placed_call).
  void EndCall() {
    if (!listed_) [[likely]] {
      looked_ = false;
      NextCall();
      return;
    }
    EndCallListed();
  }
  // Whether this thread may make descriptors (default: yes). The engine's
  // idle pump may not: it runs while the program makes system calls of its
  // own, and a descriptor it made would take the lowest free number, which
  // the program may be about to reuse (close(n) then dup2(x, n), or
  // close(0) then open()), on a thread and at a moment the program does not
  // know of. A look that may not make descriptors and meets a registration
  // to renew (RenewLevelEpoll: a fresh epoll, at the first renewal the
  // `retired` eventfd) leaves the renewal owed; it routes every other
  // report as usual and ignores the lingering one (which reports at every
  // look until the renewal). The next look that may make descriptors renews.
  // No descriptor is held ahead of need (the program's budget is its own).
  void set_may_create(bool on) { may_create_ = on; }
  // A renewal is owed (above): the caller's next look on a thread that may
  // make descriptors renews. Until then the look epoll stays readable.
  bool renewal_owed() const { return renewal_owed_; }
  // Whether a TakeReady since the last TakeLoopReport saw the nested loop
  // epoll report (its sources need a look); cleared.
  bool TakeLoopReport() {
    const bool r = loop_reported_;
    loop_reported_ = false;
    return r;
  }
  // The epoll to read and wait on (-1 if it could not be made: then the
  // loop epoll is all there is, and the watches are off).
  int look_fd() const { return level_epfd_; }
  // A descriptor of the caller's read at each look without a read of the
  // loop epoll (the in-process engine's signal eventfd: its count may stay
  // up while the calls go on, Engine::WakePumpFromLook), registered
  // level-triggered in the look epoll itself (and in a renewed one); one
  // at most. False if there is no look epoll or the registration failed.
  bool AddLookSource(int fd);
  // Whether a TakeReady since the last call saw that source report; cleared.
  bool TakeLookSourceReport() {
    const bool r = look_source_reported_;
    look_source_reported_ = false;
    return r;
  }
  // The reports the looks (TakeReady) have read from the look epoll so far,
  // AddLookSource's own left out, the kick's (a watch found ready outside
  // TakeReady, Fire) counted as it is drained; a look without a look epoll
  // counts one.
  // What tells a look that took reports (each of which woke any thread
  // asleep in a poll of the look epoll) from one that found none.
  uint64_t reports_taken() const { return reports_taken_; }
  // The caller's look at the loop epoll (which holds the level epoll) and
  // the routing of all it reported: BeginLook before its first read,
  // EndLook(what BeginLook returned) once it read everything ready. A
  // TakeReady within it completes its level part at once.
  uint64_t BeginLook() { return ++looks_begun_; }
  void EndLook(uint64_t look) { looks_done_ = std::max(looks_done_, look); }
  // A level watch still armed on a live file's registration that covers it,
  // armed before the last look, which has read the level epoll since: that
  // read would have reported (and disarmed) it had the file been ready, so
  // it is not ready now, unless it became so after that read. False while
  // a look has not read the level epoll yet. Inline: every scan of a
  // delivered level knote asks (Kqueues::Collect), once a call in a loop.
  bool QuietSinceArm(emul::WatchId id) {
    const Watch* w = watches_.Find(id);
    if (w == nullptr) return false;
    // A look begun and not past the level epoll yet (the loop's other events
    // are routed in their order, and may scan a kqueue) says nothing: the file
    // may have become ready since the previous look.
    if (looks_done_ != looks_begun_) return false;
    // Armed at or after the last completed look (serial numbers: see Watch).
    if (!w->armed || w->edge || w->pollless ||
        static_cast<int32_t>(w->armed_look - static_cast<uint32_t>(looks_done_)) >= 0) {
      return false;
    }
    const File* f = FileOf(*w);
    // A dead file's watch never fires: the caller's own look finds it closed.
    return f != nullptr && !f->dead && f->reg != File::Reg::kOff && (f->level_events & w->mask) == w->mask;
  }
  // Whether the look of the call in progress reported this level watch's
  // file ready (armed, or disarmed with the registration still covering
  // its mask: the report speaks for its bits) with no hang-up and no error, and no later report of this
  // call said otherwise: then the report's bits are the file's readiness
  // at the call, as a poll would tell (kqueue's READ filter: POLLIN
  // alone). Forgotten at EndCall. Never for a watch last armed by
  // kReportedAtLook (a port association's: nobody asks, and its report then
  // costs no entry to clear at EndCall).
  bool ReportedReadyThisCall(emul::WatchId id) const {
    const Watch* w = watches_.Find(id);
    return w != nullptr && w->reported_ready;
  }
  size_t size() const { return watches_.size(); }
  // Tests: the call counter and the identity-check epoch as they would be
  // after that many calls (their wrap at 2^32; Watch, File).
  void SetCallForTest(uint32_t call) { call_ = call; }
  void SetEpochForTest(uint32_t epoch) { epoch_.store(epoch, std::memory_order_relaxed); }

 private:
  // 28 bytes, 32 in its table slot (docs/design.md "Memory per watch"):
  // masks are poll bits (kPollBits); links are slots + 1 (0: none); the two
  // counters, 32 bits wide, are the per-call report (fast path, rule 6
  // without a poll) and the kqueue level knote's quiet look.
  struct Watch {
    uint32_t next_slot = 0;  // the next watch of its file (0: the last)
    int fd = -1;
    uint32_t file = 0;     // its File's generation (0: not registered yet)
    uint16_t mask = 0;
    uint16_t pending = 0;  // edge: reported by the shared registration, not yet to this watch
    bool edge : 1 = false;
    bool armed : 1 = false;
    bool pollless : 1 = false;  // epoll refuses the file (regular file): always ready
    // Level: a report of the file matched this watch while it was disarmed
    // and left the registration on, so it will not report it again for the
    // next Arm: that Arm looks itself.
    bool seen_ready : 1 = false;
    bool fired_at_arm : 1 = false;  // its last Arm that looked found the file ready
    bool reported_ready : 1 = false;  // ReportedReadyThisCall (listed in reported_ready_)
    bool for_assoc : 1 = false;  // last armed by kReportedAtLook (set_one_shot_associations)
    // Per call: the file's report at call `seen_call`'s look (its poll bits).
    uint16_t seen_events = 0;
    uint32_t seen_call = 0;   // call_ wraps to 1 after clearing every seen_call
    // looks_begun_ when it was last armed (QuietSinceArm), its low 32 bits:
    // compared as serial numbers, an arm older than 2^31 looks reads as
    // recent, so QuietSinceArm says "cannot tell" (the caller measures).
    uint32_t armed_look = 0;
  };
  static_assert(sizeof(Watch) <= 28, "a watch outgrew its memory budget");
  // One watched number's open file. Its registrations carry
  // (generation << 32 | number).
  // 28 bytes (in its table by number: 28 a watched number).
  struct File {
    uint32_t first_slot = 0;  // its watches (slot + 1), linked through Watch::next_slot
    uint32_t checked = 0;     // epoch of the last identity confirmation
    // Per call: the call whose look reported it to no armed watch (below).
    uint32_t unused_call = 0;
    // Per call (Placed): the call that set it one-shot with level_events
    // while unlinked or after that call's look, so a ready file was linked
    // then, in the order of the call (0: none). A number rather than a flag
    // listed for the call's end: the next call's number ends it, with no
    // walk (every association placed without a look is one).
    uint32_t placed_call = 0;
    uint32_t gen = 0;
    int fd = -1;
    uint16_t level_events = 0;  // poll bits (kPollBits)
    // The level registration: off (one-shot without a mask, disabled once
    // it reported), one-shot with level_events (reports once), or
    // level-triggered with level_events. level_events is kept while off.
    enum class Reg : uint8_t { kOff, kOneShot, kLevel };
    Reg reg = Reg::kOff;
    bool dead : 1 = false;  // the number no longer names this file
    // Per call: whether an Arm of unused_call took the report (and below,
    // how many calls in a row ended with such a report untaken).
    bool taken : 1 = false;
    // Its registration reported as one-shot (the kernel disabled it and took
    // it off the ready list; no wake-up links it again) and no MOD since.
    bool unlinked : 1 = false;
    uint8_t unused_calls : 2 = 0;  // 0 to 2
  };
  static_assert(sizeof(File) <= 28, "a file record outgrew its memory budget");
  // The live files by number (shim/runtime/by_number.h: the numbers below
  // Linux's default fs.nr_open in chunks indexed by number, no heap node
  // and no bucket per file; a File never moves, File* stays valid until it
  // is erased).
  class LiveFiles {
   public:
    // Inline: an association finds its record several times (a placement,
    // its watch's file, the identity check, the report, the call's end).
    File* Find(int fd) { return files_.Find(fd); }
    File& Insert(const File& f) { return files_.Put(f.fd, f); }  // f.fd must not be present; f.gen != 0
    void Erase(int fd) { files_.Erase(fd); }
    size_t size() const { return files_.size(); }
    std::vector<int> Numbers() const;
    template <typename F>
    void ForEach(F&& f) {
      files_.ForEach([&f](int, File& file) { f(file); });
    }

   private:
    ByNumber<File, 1 << 20> files_;  // 1 << 20: Linux's default fs.nr_open
  };
  // The live record of number `fd` (live_.Find), the last one found kept
  // until that number's record is erased (EraseLive): an association finds
  // its record several times a call (the number's check, its placement,
  // its watch's file, the identity check, the report, the call's end).
  File* FindLive(int fd) {
    if (fd == kept_fd_) return kept_file_;
    File* f = live_.Find(fd);
    if (f != nullptr) {
      kept_fd_ = fd;
      kept_file_ = f;
    }
    return f;
  }
  void EraseLive(int fd) {
    if (fd == kept_fd_) {
      kept_fd_ = -1;
      kept_file_ = nullptr;
    }
    live_.Erase(fd);
  }
  struct EdgeEpoll {
    uint32_t mask = 0;
    int epfd = -1;
    size_t watches = 0;
    bool reported = false;  // by the look epoll, not drained yet
  };

  emul::WatchId FirstOf(const File& f) { return f.first_slot == 0 ? 0 : watches_.IdAt(f.first_slot - 1); }
  emul::WatchId NextOf(const Watch& w) { return w.next_slot == 0 ? 0 : watches_.IdAt(w.next_slot - 1); }
  static uint32_t LinkOf(emul::WatchId id) { return SlotTable<Watch>::SlotOf(id) + 1; }
  // A watch reached through a file's list (FirstOf, NextOf): linked only
  // while its slot is in use (Detach before Erase), so the look-up needs no
  // generation check (SlotTable::Find); the lists are walked on every look
  // and association.
  Watch& Listed(emul::WatchId id) { return watches_.AtSlot(SlotTable<Watch>::SlotOf(id)); }
  // The counters are 32 bits (Watch, File): at a wrap every record's copy
  // is cleared first, so an old value never equals a new one.
  void NextEpoch();
  // Inline, the count's usual step first (every call's end).
  void NextCall() {
    if (++call_ != 0) [[likely]] return;
    RestartCallCount();
  }
  __attribute__((noinline, cold)) void RestartCallCount();
  __attribute__((noinline)) void EndCallListed();
  // Poll bits only: a mask never carries epoll's mode flags.
  static constexpr uint32_t kPollBits = 0xffff;
  static uint64_t Key(const File& f) { return (static_cast<uint64_t>(f.gen) << 32) | static_cast<uint32_t>(f.fd); }
  // Inline, the live file first: asked several times per call and look.
  [[gnu::always_inline]] File* FileOf(const Watch& w) {
    if (w.file == 0) return nullptr;
    if (File* f = FindLive(w.fd); f != nullptr && f->gen == w.file) [[likely]] return f;
    return DeadFileOf(w);
  }
  __attribute__((noinline, cold)) File* DeadFileOf(const Watch& w);
  // A live file's registration reported.
  File* FileOfReport(uint64_t key) {
    File* f = FindLive(static_cast<int>(static_cast<uint32_t>(key)));
    // Another generation: left behind by a raw close (the file open elsewhere).
    if (f == nullptr || f->gen != static_cast<uint32_t>(key >> 32)) return nullptr;
    return f;
  }
  bool SharesEdge(const File& f, emul::WatchId id, uint32_t mask);
  // `cur`: FileOf(w), which every caller has just found (DetachEdge keeps
  // the record). `placing`: a new record is registered one-shot with it (an
  // association's mask) and placed; 0: off.
  emul::Result<File*> Attach(Watch& w, emul::WatchId id, File* cur, int fd, uint32_t placing = 0);
  // Arm(kIfFree) of a watch never registered: registers it level (below the
  // definition says when and why). False: not registered.
  bool RegisterLevel(Watch& w, emul::WatchId id, int fd, uint32_t events);
  emul::Result<File*> AttachEdge(Watch& w, emul::WatchId id, int fd, uint32_t events);
  void Detach(Watch& w, emul::WatchId id);
  void DetachEdge(Watch& w, emul::WatchId id, File& f);
  // Inline, the answer this epoch already found first (every delivery asks).
  bool Confirm(File& f) {
    if (f.dead) return false;
    if (memo_ && f.checked == epoch_.load(std::memory_order_relaxed)) return true;
    return ConfirmByMod(f);
  }
  bool ConfirmByMod(File& f);
  static bool NumberOpen(int fd);  // fcntl(F_GETFD)
  void Kill(File& f);  // `f` is moved: not to be used after
  emul::Result<uint32_t> PollNow(int fd, uint32_t events);
  bool SetLevel(File& f, uint32_t events);  // false: `f` was killed (moved)
  int Modify(File& f, uint32_t set);  // SetLevel's and SetOneShot's MOD
  // One-shot with `events` (an association's placement); false: killed.
  bool SetOneShot(File& f, uint32_t events);
  void MarkPlaced(File& f);
  bool Placed(const File& f) const { return f.placed_call == call_; }
  __attribute__((noinline)) emul::Result<uint32_t> ArmAny(emul::WatchId id, int fd, uint32_t events,
                                                          const uint32_t* measured, Answer answer);
  // The armed watches' masks on `f` but watch `id`'s, and `events` (an
  // association's placement registers them all).
  uint32_t MasksWith(const File& f, emul::WatchId id, uint32_t events) {
    const uint32_t self = LinkOf(id);
    for (uint32_t link = f.first_slot; link != 0;) {
      const Watch& ow = watches_.AtSlot(link - 1);
      if (link != self && ow.armed) events |= ow.mask;
      link = ow.next_slot;
    }
    return events;
  }
  // Arm(kReportedAtLook) of watch `w` (`id`), on its live file at `fd`,
  // whose every watch is an association (AssociationsOnly, `w` being one
  // now) and whose registration this call placed one-shot with exactly
  // the armed watches' masks (MasksWith): the placement made the next
  // look report a ready file in the order of the call, so the watch is
  // armed with no system call and no poll, as Arm's placed path does. False:
  // another case, nothing changed.
  [[gnu::always_inline]] bool ArmOnItsPlacement(Watch& w, emul::WatchId id, int fd, uint32_t events) {
    if (w.edge || w.pollless) return false;
    File* f = FileOf(w);
    if (f == nullptr || f->dead || f->fd != fd || !Placed(*f) || f->reg != File::Reg::kOneShot) return false;
    // One walk for both: every other watch an association, and MasksWith.
    const uint32_t self = LinkOf(id);
    uint32_t want = events;
    for (uint32_t link = f->first_slot; link != 0;) {
      const Watch& ow = watches_.AtSlot(link - 1);
      if (link != self) {
        if (ow.edge || ow.pollless || !ow.for_assoc) return false;
        if (ow.armed) want |= ow.mask;
      }
      link = ow.next_slot;
    }
    if (f->level_events != want) return false;
    w.mask = static_cast<uint16_t>(events);
    w.for_assoc = true;
    w.seen_ready = false;
    Unfire(id);
    ArmPlaced(w);
    return true;
  }
  // Armed on a placed registration (its report comes at the next look).
  void ArmPlaced(Watch& w) {
    w.fired_at_arm = false;
    w.armed = true;
    w.armed_look = static_cast<uint32_t>(looks_begun_);
  }
  // Every watch of `f` is a level one armed by kReportedAtLook. Inline:
  // every association's placement and arm asks (by slot, the list's own
  // links: no watch's id is needed).
  [[gnu::always_inline]] bool AssociationsOnly(const File& f) {
    for (uint32_t link = f.first_slot; link != 0;) {
      const Watch& ow = watches_.AtSlot(link - 1);
      if (ow.edge || ow.pollless || !ow.for_assoc) return false;
      link = ow.next_slot;
    }
    return true;
  }
  EdgeEpoll* EdgeFor(uint32_t mask, bool create);
  void DrainEdge(EdgeEpoll& e, ReadyList* take);
  // Adds the look epoll's own sources (the loop, the kick, the edge epolls)
  // to `epfd`; false on a failure (reported).
  bool AddOwnSources(int epfd);
  // Data of those sources: generation 0, which no registration has.
  static constexpr uint64_t kOwnLoop = 0;
  static constexpr uint64_t kOwnKick = 1;
  static constexpr uint64_t kOwnRetired = 2;  // in a look epoll replaced (RenewLevelEpoll) only
  static constexpr uint64_t kOwnEdge = 3;     // + the edge epoll's index
  static constexpr uint64_t kOwnLookSource = 0xffff'ffff;  // AddLookSource (past any edge index)
  void Fire(emul::WatchId id, uint32_t bits, ReadyList* take);
  // Whether a report was dropped. Inline, the usual empty list first
  // (every Arm asks).
  bool Unfire(emul::WatchId id) {
    if (fired_.empty()) [[likely]] return false;
    return UnfireListed(id);
  }
  bool UnfireListed(emul::WatchId id);
  // Per call: this call's look reported `w`'s file to no armed watch
  // (seen_call, unused_call) and the registration is still on, level.
  bool ReportedToNoneThisCall(const Watch& w, const File& f) const {
    return per_call_ && w.seen_call == call_ && f.unused_call == call_ && f.reg == File::Reg::kLevel;
  }
  uint32_t ArmReportedAtLook(Watch& w, File& f);
  void RenewLevelEpoll();

  int loop_epoll_;
  bool loop_reported_ = false;
  std::function<void(const char*, std::string)> fault_;
  std::function<void(int)> register_cb_;
  int level_epfd_ = -1;  // the look epoll (its number is kept across renewals)
  int kick_fd_ = -1;  // an eventfd in the look epoll: reports found outside TakeReady
  int retired_fd_ = -1;  // an eventfd always readable: wakes the sleepers of a replaced look epoll
  int look_source_fd_ = -1;  // AddLookSource's (not ours: never closed here)
  bool look_source_reported_ = false;
  uint64_t reports_taken_ = 0;  // reports_taken
  bool may_create_ = true;     // set_may_create
  bool renewal_owed_ = false;  // renewal_owed
  bool kicked_ = false;
  int setup_errno_ = 0;  // why level_epfd_ or kick_fd_ could not be made
  ReadyList fired_;
  bool memo_ = false;
  bool per_call_ = false;
  bool one_shot_assocs_ = false;
  bool looked_ = false;  // a TakeReady in this call (until EndCall)
  uint32_t call_ = 1;
  std::vector<uint64_t> unused_;  // keys of the files reported to no armed watch in this call
  bool listed_ = false;  // unused_ or reported_ready_ has an entry (EndCall)
  std::vector<emul::WatchId> reported_ready_;  // watches with reported_ready set in this call
  std::atomic<uint32_t> epoch_{1};
  uint32_t next_gen_ = 1;
  uint64_t looks_begun_ = 0;
  uint64_t looks_done_ = 0;
  size_t edge_watches_ = 0;
  std::vector<EdgeEpoll> edges_;  // one per distinct edge mask (a handful of filter masks)
  SlotTable<Watch> watches_;                  // by id, which names the slot
  LiveFiles live_;                            // by number
  int kept_fd_ = -1;                          // FindLive's kept record (-1: none)
  File* kept_file_ = nullptr;
  std::unordered_map<uint32_t, File> dead_;   // by generation, until their last watch goes
};

}  // namespace evshim::shim
