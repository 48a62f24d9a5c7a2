// The event-port engine's PORT_SOURCE_FILE watches, PORT_DISPATCH, and the
// lazy close rules, against a fake host; and the file_obj_t codec (golden
// bytes, ILP32 and LP64). Each test names its rule of
// docs/rules-ports.md or the illumos source it pins.
#include <linux/audit.h>

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "abi/illumos/constants.h"
#include "abi/illumos/layouts.h"
#include "abi/illumos/portfs.h"
#include "emul/event_port.h"
#include "tests/abi/fake_context.h"
#include "tests/support/fake_host.h"

namespace evshim::emul {
namespace {

namespace fb = file_bits;
constexpr uint16_t kFile = 7, kAio = 1, kMq = 6, kUserSrc = 3, kAlertSrc = 5;

// A fake host with named files and with processes that may have closed a port.
class FileHost : public testing::FakeHost {
 public:
  std::map<std::string, PathWatch> files;  // name -> identity and times
  std::map<WatchId, std::string> watching;
  std::set<std::pair<Pid, ObjectId>> closed;
  int holds_calls = 0;
  bool last_nofollow = false;

  void AddFile(const std::string& name, uint64_t ino, FileStamp a = {}, FileStamp m = {}, FileStamp c = {}) {
    PathWatch w;
    w.atime = a;
    w.mtime = m;
    w.ctime = c;
    w.dev = 1;
    w.ino = ino;
    w.dir_dev = 1;
    w.dir_ino = 2;
    files[name] = w;
  }
  Result<PathWatch> WatchPath(Pid, const std::string& path, bool nofollow) override {
    last_nofollow = nofollow;
    auto it = files.find(path);
    if (it == files.end()) return Errno{ENOENT};
    PathWatch w = it->second;
    w.id = next_id_++;
    watching[w.id] = path;
    return w;
  }
  void DropPathWatch(WatchId id) override { watching.erase(id); }
  bool HoldsObject(Pid pid, ObjectId obj) override {
    ++holds_calls;
    return closed.count({pid, obj}) == 0;
  }

 private:
  WatchId next_id_ = 1000;
};

struct Record {
  std::vector<GetOutcome> outcomes;
  bool refuse = false;
};
class Recorder : public GetCompletion {
 public:
  explicit Recorder(std::shared_ptr<Record> r) : r_(std::move(r)) {}
  bool Complete(const GetOutcome& out) override {
    if (r_->refuse) return false;
    r_->outcomes.push_back(out);
    return true;
  }

 private:
  std::shared_ptr<Record> r_;
};

class PortFileTest : public ::testing::Test {
 protected:
  PortFileTest() : ports_(host_, PortLimits{}) { host_.AddFile("/f", 10, {1, 0}, {2, 0}, {3, 0}); }
  ObjectId NewPort() { return *ports_.Create(kA); }
  std::shared_ptr<Record> Poll(Caller who, ObjectId port, uint32_t max = 4) {
    auto rec = std::make_shared<Record>();
    GetSpec s;
    s.max = max;
    s.nget = 1;
    s.timeout = Timeout::Value(0, 0);
    ports_.Get(who, port, s, std::make_unique<Recorder>(rec));
    return rec;
  }
  std::vector<PortEvent> Events(Caller who, ObjectId port) {
    auto rec = Poll(who, port);
    EXPECT_EQ(rec->outcomes.size(), 1u);
    return rec->outcomes.empty() ? std::vector<PortEvent>{} : rec->outcomes[0].events;
  }
  Result<void> Watch(Caller who, ObjectId port, uint64_t obj, uint32_t events, uint64_t user,
                     FileObject fo = {{}, {}, {}, "/f"}) {
    return ports_.AssociateFile(who, port, obj, fo, events, user);
  }
  WatchId OnlyWatch() {
    EXPECT_EQ(host_.watching.size(), 1u);
    return host_.watching.empty() ? 0 : host_.watching.begin()->first;
  }
  std::optional<WaitId> DispatchEv(Caller who, ObjectId port, int32_t source, uint32_t events, bool noshare,
                                   std::shared_ptr<Record> rec) {
    return ports_.Dispatch(who, port, source, events, 0x5000, 0x77, noshare, std::make_unique<Recorder>(rec));
  }

  static constexpr Caller kA{100, 100};
  static constexpr Caller kB{200, 200};
  FileHost host_;
  EventPorts ports_;
};

// Rule 36 (port_associate_fop): bits outside FILE_EVENTS_MASK are EINVAL,
// before any lookup; lookup errors are the host's; FILE_NOFOLLOW reaches it.
TEST_F(PortFileTest, Rule36EventBitsAndLookupErrors) {
  ObjectId p = NewPort();
  EXPECT_EQ(Watch(kA, p, 0x1000, 0x8, 0).error().value, EINVAL);
  EXPECT_EQ(Watch(kA, p, 0x1000, fb::kDelete, 0).error().value, EINVAL);
  EXPECT_TRUE(host_.watching.empty());
  EXPECT_EQ(Watch(kA, p, 0x1000, fb::kModified, 0, {{}, {}, {}, "/missing"}).error().value, ENOENT);
  EXPECT_TRUE(Watch(kA, p, 0x1000, fb::kModified | fb::kNoFollow, 0).ok());
  EXPECT_TRUE(host_.last_nofollow);
  EXPECT_EQ(ports_.SlotsInUse(p), 1u);  // a watch holds a slot (rule 4)
}

// Rule 36: one-shot; only requested bits; portev_object = the file_obj
// address; re-associating re-arms with the new user and drops a queued event.
TEST_F(PortFileTest, Rule36OneShotAndReassociate) {
  ObjectId p = NewPort();
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 0x11).ok());
  WatchId w = OnlyWatch();
  ports_.OnFileEvent(w, fb::kModified | fb::kAttrib);
  ports_.OnFileEvent(w, fb::kModified);  // inactive now: nothing
  EXPECT_EQ(ports_.QueuedCount(p), 1u);
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 0x22).ok());  // re-associate: the queued event goes
  EXPECT_EQ(ports_.QueuedCount(p), 0u);
  ports_.OnFileEvent(OnlyWatch(), fb::kModified);
  auto ev = Events(kA, p);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], (PortEvent{kFile, fb::kModified, 0x1000, 0x22}));
  ports_.OnFileEvent(OnlyWatch(), fb::kAccess);  // unrequested
  EXPECT_EQ(ports_.QueuedCount(p), 0u);
}

// Rule 3 with port_fop_excep: the exception reuses the watch's slot, so a
// full port never polls POLLOUT in between (a poller waiting for it would
// wake on a full port: scenario pollout_file_exception).
TEST_F(PortFileTest, Rule3ExceptionKeepsAFullPortFull) {
  EventPorts limited(host_, PortLimits{2, 8192});
  ObjectId p = *limited.Create(kA);
  ASSERT_TRUE(limited.AssociateFile(kA, p, 0x1000, {{}, {}, {}, "/f"}, fb::kModified, 0x11).ok());
  ASSERT_TRUE(limited.Send(kA, p, 1, 1).ok());
  EXPECT_FALSE(host_.writable(p));
  const int changes = host_.writable_changes;
  limited.OnFileEvent(OnlyWatch(), fb::kDelete);
  EXPECT_EQ(host_.writable_changes, changes);  // not even for a moment
  EXPECT_EQ(limited.QueuedCount(p), 2u);
  EXPECT_EQ(limited.SlotsInUse(p), 2u);
}

// Rule 36 (port_check_timestamp): non-zero stored times that differ fire
// their requested event at once; zero ones are not compared; FIFOs never.
TEST_F(PortFileTest, Rule36StaleTimestampsFireAtOnce) {
  ObjectId p = NewPort();
  FileObject fo{{0, 0}, {1, 999}, {3, 0}, "/f"};  // atime unset, mtime stale, ctime current
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kAccess | fb::kModified | fb::kAttrib, 5, fo).ok());
  auto ev = Events(kA, p);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].events, fb::kModified);
  // Stale but not requested: nothing.
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kAttrib, 5, fo).ok());
  EXPECT_EQ(ports_.QueuedCount(p), 0u);
  host_.files["/fifo"] = host_.files["/f"];
  host_.files["/fifo"].fifo = true;
  host_.files["/fifo"].ino = 11;
  fo.name = "/fifo";
  ASSERT_TRUE(Watch(kA, p, 0x2000, fb::kModified, 5, fo).ok());
  EXPECT_EQ(ports_.QueuedCount(p), 0u);
}

// Rule 36 (port_fop_excep): exceptions are delivered unrequested, replace a
// queued event, and end the watch; an inactive watch just ends.
TEST_F(PortFileTest, Rule36ExceptionsEndTheWatch) {
  ObjectId p = NewPort();
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kAccess, 1).ok());
  ports_.OnFileEvent(OnlyWatch(), fb::kDelete);
  EXPECT_TRUE(host_.watching.empty());
  EXPECT_EQ(ports_.FileWatchCount(p), 0u);
  EXPECT_EQ(ports_.SlotsInUse(p), 1u);  // the exception event holds one until retrieved
  auto ev = Events(kA, p);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], (PortEvent{kFile, fb::kDelete, 0x1000, 1}));
  EXPECT_EQ(ports_.SlotsInUse(p), 0u);
  // Queued event + exception: one event, the exception.
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 2).ok());
  ports_.OnFileEvent(OnlyWatch(), fb::kModified);
  ports_.OnFileEvent(OnlyWatch(), fb::kRenameFrom);
  ev = Events(kA, p);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].events, fb::kRenameFrom);
  // Retrieved (inactive, nothing queued) + exception: no event.
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 3).ok());
  ports_.OnFileEvent(OnlyWatch(), fb::kModified);
  EXPECT_EQ(Events(kA, p).size(), 1u);
  ports_.OnFileEvent(OnlyWatch(), fb::kUnmounted);
  EXPECT_EQ(ports_.QueuedCount(p), 0u);
  EXPECT_EQ(ports_.FileWatchCount(p), 0u);
}

// Rule 36 (port_dissociate_fop): no FILE source on the port is EINVAL; the
// key is (pid, object): unknown is ENOENT; live is 0; retrieved is ENOENT.
TEST_F(PortFileTest, Rule36DissociateRules) {
  ObjectId p = NewPort();
  EXPECT_EQ(ports_.DissociateFile(kA, p, 0x1000).error().value, EINVAL);
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 1).ok());
  EXPECT_EQ(ports_.DissociateFile(kA, p, 0x2000).error().value, ENOENT);
  EXPECT_EQ(ports_.DissociateFile(kB, p, 0x1000).error().value, ENOENT);  // another process's key
  EXPECT_TRUE(ports_.DissociateFile(kA, p, 0x1000).ok());
  EXPECT_TRUE(host_.watching.empty());
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 1).ok());
  ports_.OnFileEvent(OnlyWatch(), fb::kModified);
  EXPECT_EQ(Events(kA, p).size(), 1u);
  EXPECT_EQ(ports_.DissociateFile(kA, p, 0x1000).error().value, ENOENT);
  EXPECT_EQ(ports_.FileWatchCount(p), 0u);
  // The source stays: a lookup failure after that is still the lookup's.
  EXPECT_EQ(ports_.DissociateFile(kA, p, 0x1000).error().value, ENOENT);
}

// Rule 36: several watches per file (one per object); events only for the
// watching process (port_fop_callback EACCES); another file at the same key
// replaces the watch.
TEST_F(PortFileTest, Rule36KeysOwnersAndReplacement) {
  ObjectId p = NewPort();
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 1).ok());
  ASSERT_TRUE(Watch(kA, p, 0x2000, fb::kModified, 2).ok());
  ASSERT_TRUE(Watch(kB, p, 0x1000, fb::kModified, 3).ok());
  EXPECT_EQ(ports_.FileWatchCount(p), 3u);
  std::vector<WatchId> ids;
  for (auto& [id, name] : host_.watching) ids.push_back(id);
  for (WatchId id : ids) ports_.OnFileEvent(id, fb::kModified);
  auto a = Events(kA, p);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(a[0].user + a[1].user, 3u);
  auto b = Events(kB, p);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].user, 3u);
  host_.AddFile("/g", 20);
  ASSERT_TRUE(Watch(kA, p, 0x1000, fb::kModified, 4, {{}, {}, {}, "/g"}).ok());
  EXPECT_EQ(ports_.FileWatchCount(p), 3u);
  EXPECT_EQ(host_.watching.size(), 3u);
}

// Rule 4: a watch needs a slot: EAGAIN when the port is full.
TEST_F(PortFileTest, Rule4WatchWithoutSlotIsEagain) {
  EventPorts small(host_, PortLimits{1, 8});
  ObjectId p = *small.Create(kA);
  ASSERT_TRUE(small.Send(kA, p, 1, 1).ok());
  EXPECT_EQ(small.AssociateFile(kA, p, 0x1000, {{}, {}, {}, "/f"}, fb::kModified, 0).error().value, EAGAIN);
  EXPECT_TRUE(host_.watching.empty());  // the host watch was given back
}

// Rule 37 (port.c:668-681, 929-970): AIO and MQ only; shared unless NOSHARE;
// a full port parks the call until a slot frees; a cancelled wait queues
// nothing; the last close fails it with EBADF.
TEST_F(PortFileTest, Rule37Dispatch) {
  EventPorts small(host_, PortLimits{2, 8});
  ObjectId p = *small.Create(kA);
  auto rec = std::make_shared<Record>();
  auto d = [&](Caller who, int32_t src, uint32_t ev, bool noshare) {
    return small.Dispatch(who, p, src, ev, 0x5000, 0x77, noshare, std::make_unique<Recorder>(rec));
  };
  EXPECT_FALSE(d(kA, kUserSrc, 1, false));
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, EINVAL);
  EXPECT_FALSE(d(kA, kAio, 1, false));
  EXPECT_FALSE(d(kA, kMq, 2, true));
  EXPECT_EQ(rec->outcomes[2].error, 0);
  EXPECT_EQ(small.SlotsInUse(p), 2u);
  auto poll = [&](Caller who) {
    auto r = std::make_shared<Record>();
    GetSpec s;
    s.max = 1;
    s.timeout = Timeout::Value(0, 0);
    small.Get(who, p, s, std::make_unique<Recorder>(r));
    return r->outcomes.at(0).events;
  };
  // Full: the next dispatch waits.
  std::optional<WaitId> w = d(kB, kAio, 3, false);
  ASSERT_TRUE(w.has_value());
  EXPECT_EQ(rec->outcomes.size(), 3u);
  EXPECT_EQ(small.DispatcherCount(p), 1u);
  // B may take the shared AIO event, not A's NOSHARE MQ one; that frees a slot.
  auto got = poll(kB);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0], (PortEvent{kAio, 1, 0x5000, 0x77}));
  ASSERT_EQ(rec->outcomes.size(), 4u);  // the waiting dispatch completed
  EXPECT_EQ(rec->outcomes[3].error, 0);
  EXPECT_EQ(small.QueuedCount(p), 2u);
  got = poll(kB);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].events, 3u);  // B's own; A's MQ event stays
  got = poll(kA);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].source, kMq);
  // Cancelled (EINTR): nothing is queued when a slot frees.
  ASSERT_FALSE(d(kA, kAio, 4, false));
  ASSERT_FALSE(d(kA, kAio, 5, false));
  w = d(kA, kAio, 6, false);
  ASSERT_TRUE(w.has_value());
  small.CancelWait(*w);
  EXPECT_EQ(poll(kA).size(), 1u);
  EXPECT_EQ(small.QueuedCount(p), 1u);
  // Last close: a waiting dispatch fails with EBADF.
  ASSERT_FALSE(d(kA, kAio, 7, false));
  w = d(kA, kAio, 8, false);
  ASSERT_TRUE(w.has_value());
  size_t before = rec->outcomes.size();
  small.LastClose(p);
  ASSERT_EQ(rec->outcomes.size(), before + 1);
  EXPECT_EQ(rec->outcomes.back().error, EBADF);
}

// Rule 32, observed lazily (docs/design.md "Close and exec"): when B no longer
// holds the port, A's retrieval first takes B's associations, watches,
// alert and owner-only events away; while B holds it they stay.
TEST_F(PortFileTest, Rule32ClosedProcessLosesItsStateAtRetrieval) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kB.pid, 5, f);
  host_.Open(kA.pid, 5, f);  // inherited: A could retrieve B's FD event (rule 12)
  ASSERT_TRUE(ports_.AssociateFd(kB, p, 5, poll_bits::kIn, 0xb).ok());
  ASSERT_TRUE(Watch(kB, p, 0x1000, fb::kModified, 0xc).ok());
  ASSERT_TRUE(ports_.Alert(kB, p, 1, 9, 0).ok());
  ASSERT_TRUE(ports_.Send(kB, p, 1, 0xd).ok());
  auto ev = Events(kA, p);  // B holds the port: its alert is what A gets
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].source, kAlertSrc);
  host_.closed.insert({kB.pid, p});
  host_.SetReady(f, poll_bits::kIn, [&](WatchId id, uint32_t b) { ports_.OnWatchReady(id, b); });
  ev = Events(kA, p);
  ASSERT_EQ(ev.size(), 1u);  // no alert, no FD event: only B's user event survives (rule 14)
  EXPECT_EQ(ev[0], (PortEvent{kUserSrc, 1, 0, 0xd}));
  EXPECT_EQ(ports_.AssociationCount(p), 0u);
  EXPECT_EQ(ports_.FileWatchCount(p), 0u);
  EXPECT_EQ(ports_.SlotsInUse(p), 0u);
}

// A port used by one process never asks who holds it (no cost for the
// common case); slots held by a process that closed the port unseen are
// reclaimed before EAGAIN (rule 4).
TEST_F(PortFileTest, Rule32ReapOnlyWhenSharedAndBeforeEagain) {
  EventPorts small(host_, PortLimits{1, 8});
  ObjectId p = *small.Create(kA);
  ASSERT_TRUE(small.Send(kA, p, 1, 1).ok());
  auto rec = std::make_shared<Record>();
  GetSpec s;
  s.timeout = Timeout::Value(0, 0);
  small.Get(kA, p, s, std::make_unique<Recorder>(rec));
  EXPECT_EQ(host_.holds_calls, 0);
  auto f = host_.NewFile();
  host_.Open(kB.pid, 5, f);
  ASSERT_TRUE(small.AssociateFd(kB, p, 5, poll_bits::kIn, 0).ok());
  EXPECT_EQ(small.Send(kA, p, 1, 1).error().value, EAGAIN);  // B still holds it
  host_.closed.insert({kB.pid, p});
  EXPECT_TRUE(small.Send(kA, p, 1, 1).ok());
  EXPECT_EQ(small.AssociationCount(p), 0u);
}

// Rule 32: a waiter of A is not woken by an event of B's association when B
// no longer holds the port (checked before waking, in Pump).
TEST_F(PortFileTest, Rule32WaiterNotWokenByClosedProcessEvent) {
  ObjectId p = NewPort();
  auto f = host_.NewFile();
  host_.Open(kB.pid, 5, f);
  host_.Open(kA.pid, 5, f);
  ASSERT_TRUE(ports_.AssociateFd(kB, p, 5, poll_bits::kIn, 0xb).ok());
  auto rec = std::make_shared<Record>();
  GetSpec s;
  std::optional<WaitId> w = ports_.Get(kA, p, s, std::make_unique<Recorder>(rec));
  ASSERT_TRUE(w.has_value());
  host_.closed.insert({kB.pid, p});
  host_.SetReady(f, poll_bits::kIn, [&](WatchId id, uint32_t b) { ports_.OnWatchReady(id, b); });
  EXPECT_TRUE(rec->outcomes.empty());
  EXPECT_EQ(ports_.QueuedCount(p), 0u);
  ports_.AbortWait(*w, EBADF);  // rule 27: the descriptor it waits on was closed
  ASSERT_EQ(rec->outcomes.size(), 1u);
  EXPECT_EQ(rec->outcomes[0].error, EBADF);
  EXPECT_EQ(ports_.WaiterCount(p), 0u);
}

}  // namespace
}  // namespace evshim::emul

// --- the file_obj_t codec (docs/rules-ports.md §1.6; port_fop.c) ---
namespace evshim::abi::illumos {
namespace {

std::vector<std::byte> Le(std::initializer_list<uint64_t> words, size_t width) {
  std::vector<std::byte> out;
  for (uint64_t w : words) {
    for (size_t i = 0; i < width; ++i) out.push_back(static_cast<std::byte>((w >> (8 * i)) & 0xff));
  }
  return out;
}

// ILP32 file_obj32_t, 40 bytes: times at 0/8/16 as {int32 sec, int32 nsec},
// fo_pad[3] at 24, fo_name at 36; seconds are signed.
TEST(FileObjCodec, Ilp32GoldenBytes) {
  static_assert(kFileObjIlp32.size == 40 && kFileObjIlp32.name == 36 && kFileObjIlp32.pad == 24);
  std::vector<std::byte> raw = Le({0x11223344, 5, 0xffffffff, 6, 7, 8, 0xaaaaaaaa, 0xbbbbbbbb, 0xcccccccc,
                                   0xdeadbeef},
                                  4);
  ASSERT_EQ(raw.size(), 40u);
  uint64_t name = 0;
  emul::FileObject fo = DecodeFileObj(DataModel::kIlp32, raw, &name);
  EXPECT_EQ(fo.atime, (emul::FileStamp{0x11223344, 5}));
  EXPECT_EQ(fo.mtime, (emul::FileStamp{-1, 6}));
  EXPECT_EQ(fo.ctime, (emul::FileStamp{7, 8}));
  EXPECT_EQ(name, 0xdeadbeefu);
}

// LP64 file_obj_t, 80 bytes: 16-byte times, fo_name at 72.
TEST(FileObjCodec, Lp64GoldenBytes) {
  std::vector<std::byte> raw = Le({1, 2, 3, 4, 5, 6, 0, 0, 0, 0x00007fff12345678}, 8);
  ASSERT_EQ(raw.size(), 80u);
  uint64_t name = 0;
  emul::FileObject fo = DecodeFileObj(DataModel::kLp64, raw, &name);
  EXPECT_EQ(fo.atime, (emul::FileStamp{1, 2}));
  EXPECT_EQ(fo.ctime, (emul::FileStamp{5, 6}));
  EXPECT_EQ(name, 0x00007fff12345678u);
}

// The ILP32 handler reads exactly 40 bytes and the name; its order is
// port_associate_fop's: bad events EINVAL before the copyin, EFAULT, then
// pn_get's EFAULT / ENAMETOOLONG, then the lookup (the fake host has no
// file watches: the default Host answers EOPNOTSUPP, illumos's ENOTSUP).
TEST(FileObjCodec, Ilp32HandlerOrder) {
  testing::FakeCallContext ctx;
  emul::ObjectId port = *ctx.ports().Create(testing::FakeCallContext::kCaller);
  ctx.Install(5, ObjectKind::kPort, port);
  auto call = [&](uint64_t obj, uint32_t events) {
    testing::SyntheticNotif n{AUDIT_ARCH_I386, 1000, {PORT_ASSOCIATE, 5, PORT_SOURCE_FILE, obj, events, 0x99}};
    return *testing::Dispatch(ctx, n);
  };
  EXPECT_EQ(call(0x9000, 0x8).error, EINVAL);  // unmapped too, but the events come first
  ctx.mem().Map(0x9000, 39);
  EXPECT_EQ(call(0x9000, FILE_MODIFIED).error, EFAULT);  // one byte short of 40
  ctx.mem().Map(0xa000, 40);
  std::vector<std::byte>& fo = ctx.mem().Region(0xa000);
  std::vector<std::byte> bytes = Le({0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb000}, 4);
  std::copy(bytes.begin(), bytes.end(), fo.begin());
  EXPECT_EQ(call(0xa000, FILE_MODIFIED).error, EFAULT);  // the name is unmapped
  ctx.mem().Map(0xb000, 2048, std::byte{'a'});
  EXPECT_EQ(call(0xa000, FILE_MODIFIED).error, ENAMETOOLONG);  // no NUL within MAXPATHLEN
  ctx.mem().Region(0xb000)[1024] = std::byte{0};
  EXPECT_EQ(call(0xa000, FILE_MODIFIED).error, ENAMETOOLONG);  // 1024 chars + NUL: 1025 bytes
  ctx.mem().Region(0xb000)[1023] = std::byte{0};
  EXPECT_EQ(call(0xa000, FILE_MODIFIED).error, EOPNOTSUPP);  // 1023 + NUL fits MAXPATHLEN
  // A name that ends just before an unmapped page is read page by page.
  ctx.mem().Map(0xcffc, 4);
  ctx.mem().Region(0xcffc) = {std::byte{'/'}, std::byte{'x'}, std::byte{0}, std::byte{0}};
  std::vector<std::byte> at_edge = Le({0, 0, 0, 0, 0, 0, 0, 0, 0, 0xcffc}, 4);
  std::copy(at_edge.begin(), at_edge.end(), fo.begin());
  EXPECT_EQ(call(0xa000, FILE_MODIFIED).error, EOPNOTSUPP);
  // PORT_DISPATCH's sources are checked before it may wait (port.c:675-678).
  testing::SyntheticNotif d{AUDIT_ARCH_I386, 1000, {PORT_DISPATCH, 5, PORT_SOURCE_FD, 1, 0, 0}};
  EXPECT_EQ(testing::Dispatch(ctx, d)->error, EINVAL);
}

}  // namespace
}  // namespace evshim::abi::illumos
