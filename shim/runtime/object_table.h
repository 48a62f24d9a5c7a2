// The emulated objects' descriptors (docs/design.md "Emulated objects"),
// shared by the supervisor and the in-process engine.
//
// The descriptor a program holds for an emulated object is one end of a
// socketpair: the object is recognised by that end's inode, our end polls
// HUP when the last holder closes it, and a byte written on our end makes
// the program's descriptor poll readable (events pending). A port's end has
// the smallest send buffer; filler written from it and left unread in our
// end makes it poll not writable while the port has no free slot
// (OnWritable). How the program's end is reached differs: the supervisor
// borrows it from another process (pidfd_getfd), the in-process engine has
// it already; ProgramEnds says which.
//
// In-process the byte is sent only when something may look at the
// descriptor without calling the engine first (a thread in an interposed
// poll-family call: the pollers count; or an object marked polled: in a
// program epoll, watched by the engine, shared with another process);
// otherwise it is owed, and sent when a poller comes (docs/design.md "The
// readiness byte on demand").
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "abi/common/call.h"
#include "emul/types.h"
#include "shim/runtime/fault.h"

namespace evshim::shim {

// Access to the program's ends of the objects' socketpairs.
class ProgramEnds {
 public:
  virtual ~ProgramEnds() = default;
  // Whether process `pid`'s descriptor `fd` is the socket with `inode`.
  virtual bool FdIs(emul::Pid pid, int fd, uint64_t inode) = 0;
  // A descriptor here for process `pid`'s `fd` (-1: none); Release it after
  // use. A duplicate where it can be: it names what `fd` named when
  // borrowed, whatever the program does to `fd` meanwhile, so a check made
  // on it holds (the in-process idle pump, which makes no descriptor, lends
  // the number itself).
  virtual int Borrow(emul::Pid pid, int fd) = 0;
  virtual void Release(int local) = 0;
  // A descriptor of `pid` that is the socket with `inode`: kNone when it has
  // none (or is gone), kUnknown when its table cannot be read.
  static constexpr int kNone = -1, kUnknown = -2;
  virtual int FindFd(emul::Pid pid, uint64_t inode) = 0;
};

class ObjectTable {
 public:
  // Our ends are registered in `loop_epoll` for HUP with data `close_tag | id`
  // (the owner's loop calls Remove when it fires). `drain_at_once`: the
  // program's ends are in this process, so a byte no longer wanted is
  // drained when readiness is applied, not at the next call naming it.
  // `pollers`: how many threads may be looking at an object's descriptor
  // without calling the owner first (the in-process engine's count); a
  // readable object's byte is owed while it is 0 and the object is not
  // marked polled. Null (the supervisor, which cannot see a target's
  // pollers): the byte is always sent.
  ObjectTable(int loop_epoll, uint64_t close_tag, ProgramEnds& ends, bool drain_at_once,
              const std::atomic<int>* pollers = nullptr);
  ~ObjectTable();
  ObjectTable(const ObjectTable&) = delete;
  ObjectTable& operator=(const ObjectTable&) = delete;

  // A new socketpair for an object of `kind`: [our end, the program's end]
  // (close-on-exec, non-blocking; a port's program end has the smallest
  // send buffer) and the program end's inode. The errno of socketpair on
  // failure.
  struct Pair {
    int own = -1;
    int program = -1;
    uint64_t inode = 0;
  };
  emul::Result<Pair> MakePair(abi::ObjectKind kind);
  // Enters object `obj` with our end `own` (now the table's) and the
  // program end's `inode`. A fault: its last close could not be watched
  // (the object is entered all the same).
  std::optional<Fault> Add(emul::ObjectId obj, abi::ObjectKind kind, int own, uint64_t inode);
  // Every descriptor was closed (our end's HUP): forgets the object, closes
  // our end; returns its kind, or nothing if it is not in the table. A
  // fault, if any, goes to `*fault`.
  std::optional<abi::ObjectKind> Remove(emul::ObjectId obj, std::optional<Fault>* fault = nullptr);
  // How many objects Remove has forgotten: an object found alive is alive
  // while this has not moved (a caller may keep what it found).
  uint64_t removals() const { return removals_; }

  std::optional<emul::ObjectId> FindByInode(uint64_t inode) const;
  std::optional<abi::ObjectKind> KindOf(emul::ObjectId obj) const;
  std::optional<uint64_t> InodeOf(emul::ObjectId obj) const;
  size_t size() const { return objects_.size(); }
  // Every object with its kind and the program end's inode.
  template <typename F>
  void ForEach(F f) const {
    for (const auto& [obj, o] : objects_) f(obj, o.kind, o.inode);
  }

  // Process `pid` named the object by `fd` (Holds looks there first).
  // Every call on an object notes it: the last note, still in the map, is
  // not written again.
  void NoteHolder(emul::ObjectId obj, emul::Pid pid, int fd) {
    if (obj == noted_.obj && pid == noted_.pid && fd == noted_.fd) return;
    NoteHolderInMap(obj, pid, fd);
  }
  // Whether `pid`'s descriptor `fd` is still the object (rule 27's sweep).
  bool IsAt(emul::ObjectId obj, emul::Pid pid, int fd);
  // Whether process `pid` still has a descriptor of `obj` (rule 32): the one
  // it last named it by, else a scan of its table. An object not in the
  // table is being created: its creator holds it.
  bool Holds(emul::Pid pid, emul::ObjectId obj);
  // Process `pid` is gone: its holder entries go.
  void ForgetProcess(emul::Pid pid);

  // The engine's readiness report; applied by ApplyReadiness only.
  void OnReadiness(emul::ObjectId obj, bool readable);
  // Sends (or marks for draining) the net readiness change of every object
  // reported since the last call; a byte nobody can look for is owed
  // instead. Returns whether a byte was sent.
  // Inline, nothing reported first: every call ends with it.
  bool ApplyReadiness() {
    if (readiness_pending_.empty() && owed_.empty()) [[likely]] return false;
    return ApplyReportedReadiness();
  }
  bool ApplyReportedReadiness();
  // A poller came (a thread entered the poll family): every owed byte is
  // sent. Returns whether one was.
  bool SendOwed();
  // Whether some byte is owed. Read without the owner's lock: a poller
  // counts itself first, then looks here (ApplyReadiness owes first, then
  // reads the count), so one of the two sends it.
  bool AnyOwed() const { return owed_any_.load(std::memory_order_seq_cst); }
  // Something that never calls the owner first may look at `obj`'s
  // descriptor (a program epoll holds it, a watch of the engine's own,
  // another process): its byte is exact from now on, an owed one sent now.
  void MarkPolled(emul::ObjectId obj);
  // Called at every MarkPolled/MarkAllPolled (the in-process engine starts
  // its idle pump: a marked object's byte must follow its readiness while
  // no thread calls). Cheap after the first: the callee keeps a flag.
  void set_polled_callback(std::function<void()> cb) { polled_cb_ = std::move(cb); }
  // The same for every object, now and from now on (the supervisor may
  // watch them: docs/design.md "The readiness byte on demand").
  void MarkAllPolled();
  // Drains the byte through process `pid`'s descriptor `fd` of the object if
  // the object is no longer readable and `fd` (as borrowed) is still its end.
  void DrainIfNeeded(emul::ObjectId obj, emul::Pid pid, int fd);
  // Rule 3 (port_vnops.c port_poll): POLLOUT only while a slot is free.
  void OnWritable(emul::ObjectId obj, bool writable);

  // An object that arrives with a byte already sent (`readable`) or filler
  // already written (`full`): a port handed over by an engine
  // (docs/design.md "Moving a port at fork").
  void MarkAdopted(emul::ObjectId obj, bool readable, bool full);

  // For tests: the state of an object's byte and filler.
  struct State {
    bool signalled = false;
    bool needs_drain = false;
    bool filled = false;
    bool owed = false;   // readable, byte not sent: nobody could look
    bool polled = false; // MarkPolled
  };
  std::optional<State> StateOf(emul::ObjectId obj) const;
  // StateOf(obj)->polled, and true for an object not in the table (one
  // lookup, no State built: the engine asks at every port_associate).
  bool PolledOrGone(emul::ObjectId obj) const {
    const Object* o = Find(obj);
    return o == nullptr || o->polled;
  }
  // Whether any object's byte waits to be drained (State::needs_drain):
  // the in-process engine asks after every call, and almost never finds one
  // (it drains at once), so a count answers without a lookup.
  bool AnyNeedsDrain() const { return needs_drain_count_ != 0; }

 private:
  struct Object {
    abi::ObjectKind kind = abi::ObjectKind::kPort;
    int own = -1;           // our end; HUP = last close
    uint64_t inode = 0;     // the program end's inode: how a descriptor is recognised
    bool signalled = false; // a byte is waiting in the program's end
    bool needs_drain = false;
    bool filled = false;    // filler sits in our end: the program end is not writable
    // Readiness the engine last reported, applied to the byte only before
    // the next answer or at the end of the loop event (ApplyReadiness): an
    // event queued and handed to a waiter at once sends and drains nothing.
    bool want_readable = false;
    bool readiness_pending = false;
    bool owed = false;     // readable as applied, no byte sent: in owed_ at owed_at
    size_t owed_at = 0;
    bool polled = false;   // MarkPolled: the byte always follows the readiness
  };

  // The object `obj`, or nullptr. The last objects found are kept by the
  // low bits of their ids (port ids count up from 1, kqueue ids from
  // kKqueueIdBase): a call names an object several times (its kind, its
  // readiness, its state after the call), and a hit is one compare where
  // the map hashes and walks a bucket. An entry points into objects_, whose
  // nodes never move; Remove clears it. Eight, where Kqueues keeps its
  // last one (emul/kqueue.h last_found_): this table serves every object
  // kind, and a call names several objects (a port and one it holds, a
  // kqueue and a port it watches); a kevent names one kqueue.
  // Inline, the kept entry first (every port call asks); the map out of
  // line (FindInMap).
  Object* Find(emul::ObjectId obj) {
    const Recent& r = recent_[obj % kRecent];
    if (r.object != nullptr && r.id == obj) [[likely]] return r.object;
    return FindInMap(obj);
  }
  __attribute__((noinline, cold)) Object* FindInMap(emul::ObjectId obj);
  const Object* Find(emul::ObjectId obj) const { return const_cast<ObjectTable*>(this)->Find(obj); }
  bool ByteWanted(const Object& o) const;
  // Whether `local` (a borrowed descriptor) is the program's end with `inode`.
  static bool IsEnd(int local, uint64_t inode);
  bool SendByte(Object& o);
  void Owe(emul::ObjectId obj, Object& o);
  void Unowe(Object& o);
  void SetNeedsDrain(Object& o, bool on);  // keeps needs_drain_count_
  void NoteHolderInMap(emul::ObjectId obj, emul::Pid pid, int fd);

  int loop_epoll_;
  uint64_t close_tag_;
  ProgramEnds& ends_;
  bool drain_at_once_;
  std::unordered_map<emul::ObjectId, Object> objects_;
  struct Recent {
    emul::ObjectId id = 0;
    Object* object = nullptr;  // nullptr: empty
  };
  static constexpr size_t kRecent = 8;
  std::array<Recent, kRecent> recent_{};  // Find's, by id % kRecent
  std::unordered_map<uint64_t, emul::ObjectId> by_inode_;
  std::vector<emul::ObjectId> readiness_pending_;
  const std::atomic<int>* pollers_;
  std::vector<emul::ObjectId> owed_;  // objects whose byte is owed
  std::atomic<bool> owed_any_{false};
  bool all_polled_ = false;  // MarkAllPolled
  std::function<void()> polled_cb_;  // set_polled_callback
  size_t needs_drain_count_ = 0;  // objects with needs_drain set (AnyNeedsDrain)
  uint64_t removals_ = 0;         // removals()
  // The descriptor each process last named an object by.
  std::map<std::pair<emul::ObjectId, emul::Pid>, int> holder_fd_;
  // NoteHolder's last entry, as it stands in holder_fd_ (object 0, which
  // no object has: none). Cleared by every other change of the map.
  struct Noted {
    emul::ObjectId obj = 0;
    emul::Pid pid = 0;
    int fd = -1;
  };
  Noted noted_;
};

}  // namespace evshim::shim
