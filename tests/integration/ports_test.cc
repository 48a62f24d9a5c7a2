// Event-port programs under the real supervisor: `evshim run` and preload-only.
#include <gtest/gtest.h>

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/run.h"

namespace {

using evshim::testing::AsanOptionsForAPreload;
using evshim::testing::RunCommand;
using evshim::testing::RunResult;

const std::string kEvshim = EVSHIM_BIN;
const std::string kPreload = EVSHIM_PRELOAD;
// EVSHIM_TESTBIN_DIR runs the same scenarios with other builds of the test
// programs (the VM suite uses it for the 32-bit ones).
std::string TestbinDir() {
  const char* d = std::getenv("EVSHIM_TESTBIN_DIR");
  return d && *d ? d : TESTBIN_DIR;
}
const std::string kScenarios = TestbinDir() + "/port_scenarios";
const std::string kDemo = TestbinDir() + "/port_demo";

// The FastPath tests pin fast mode, also in CI's supervised pass. Every
// scenario runs in both modes (no scenario is supervised-only any more:
// exec_timer was, until a port kept across exec moved before exec).
const std::vector<std::string> kFastMode = {"EVSHIM_SUPERVISED=0"};

RunResult Scenario(const std::string& name) {
  return RunCommand({kEvshim, "run", "--", kScenarios, name}, 30);
}

class PortScenario : public ::testing::TestWithParam<const char*> {};

// scripts/test's ThreadSanitizer pass sets EVSHIM_UNDER_TSAN=1. Two
// scenarios meet GCC 12 TSan's own limits there, so they run in the normal
// and ASan builds only, in both modes:
// - close_waiter: TSan hits its own CHECK (sanitizer_allocator_secondary.h:297)
//   while reporting the scenario's deliberate race (a descriptor closed under
//   a waiting thread, rule 27; it passes with TSAN_OPTIONS=report_bugs=0);
// - fork_move_waiter: forks while a second thread waits in the engine; the
//   child's first new thread gets the pthread id of the parent's waiter and
//   TSan aborts ("dup thread with used id"): TSan does not support threads
//   after a multi-threaded fork (die_after_fork=0 is best effort).
bool SkippedUnderTsan(const std::string& scenario) {
  const char* tsan = getenv("EVSHIM_UNDER_TSAN");
  return tsan != nullptr && std::string(tsan) == "1" &&
         (scenario == "close_waiter" || scenario == "fork_move_waiter");
}

TEST_P(PortScenario, PassesUnderEvshimRun) {
  if (SkippedUnderTsan(GetParam())) GTEST_SKIP() << "TSan's own CHECK failure (see SkippedUnderTsan)";
  RunResult r = Scenario(GetParam());
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << "stdout:\n" << r.out << "stderr:\n" << r.err;
}

INSTANTIATE_TEST_SUITE_P(Ports, PortScenario,
                         ::testing::Values("etime", "wake_on_send", "two_waiters", "epipe",
                                           // the readiness byte's drain never reads another socket
                                           // that took the number (docs/design.md "Emulated objects")
                                           "drain_number_reused",
                                           "socket_eof", "fd_oneshot", "get_zero_untouched", "close_discards",
                                           // rules 6 and 23 as Redis meets them (docs/clients.md "## Redis")
                                           "fd_fire_order", "pipe_writer_gone",
                                           "getn_partial", "alert", "sendn", "bad_ports",
                                           "pollable", "pollable_handoff", "fork_shares", "fork_dissociate", "eintr",
                                           "timer_port", "timer_fork", "timer_signal",
                                           // PORT_SOURCE_FILE (rule 36; illumos's file_assoc.c
                                           // and libuv's fs-event use, docs/rules-ports.md §5)
                                           "file_assoc", "file_events", "file_stamps_errors",
                                           "file_owner_only", "file_libuv",
                                           // MOUNTEDOVER: mounts over watched names (root)
                                           "file_mountedover", "file_trunc",
                                           // close and exec (rules 27, 32; docs/design.md)
                                           "close_shared", "exec_cloexec", "exec_keep",
                                           "close_waiter",
                                           // fast mode: the port moves to the supervisor at fork
                                           // (docs/design.md "Moving a port at fork")
                                           "fork_move_state", "fork_move_waiter",
                                           // a port kept across exec without fork, and shared
                                           // with a posix_spawn child: it moves before exec
                                           "exec_alone", "spawn_shares",
                                           // a port passed with SCM_RIGHTS moves before the message
                                           "scm_rights_shares",
                                           // system(), popen(), vfork() + exec: the port moves
                                           // before the child can exec; the parent's timers stay
                                           "system_shares", "popen_shares", "vfork_shares",
                                           "spawn_timer_kept"));

// Raw foreign calls on the library's port: the trap in fast mode
// (docs/design.md "Raw foreign calls in fast mode: the trap"), the
// supervisor in the other. x86_64 programs only (the VM's i386 pass runs
// Ports/*): the fast path and the trap are 64-bit (docs/abi.md §10).
INSTANTIATE_TEST_SUITE_P(Trap, PortScenario, ::testing::Values("raw_library_port", "sigsys_kept"));

// illumos deletes every POSIX timer of a process at exec (exec_common ->
// timer_exit, timer.c:1000): the new image sees no event or signal of the
// old timers, and their ids are free. With the process connector (root
// here) and with its fallback (/proc/PID/mem of the old image reads EOF).
TEST(PortExec, TimersDeletedAtExec) {
  RunResult r = Scenario("exec_timer");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("exec deleted the old image's timers"), std::string::npos) << r.out;
}

TEST(PortExec, TimersDeletedAtExecWithoutProcConnector) {
  RunResult r = RunCommand({kEvshim, "run", "--", kScenarios, "exec_timer"}, 30,
                           {"EVSHIM_NO_PROC_CONNECTOR=1"});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("exec deleted the old image's timers"), std::string::npos) << r.out;
}

RunResult LimitedScenario(const std::string& flag, const std::string& n, const std::string& name) {
  return RunCommand({kEvshim, "run", flag, n, "--", kScenarios, name}, 30);
}

// Rule 37: PORT_DISPATCH (raw syscalls): AIO/MQ only, NOSHARE, a full port
// (--max-port-events 3) makes it wait for a slot, a signal ends the wait.
TEST(PortLimits, DispatchWaitsForASlot) {
  RunResult r = LimitedScenario("--max-port-events", "3", "dispatch_events");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Rules 1 and 4: `--max-port-events N` is illumos's process.max-port-events:
// the N+1th event slot is EAGAIN for port_send, port_associate,
// timer_create and port_sendn's entries.
TEST(PortLimits, MaxPortEventsGivesEagain) {
  RunResult r = LimitedScenario("--max-port-events", "3", "limit_events");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  // The default limit is far above 3: the same scenario fails without the flag.
  EXPECT_NE(Scenario("limit_events").status, 0);
}

// Rule 3 (port_vnops.c port_poll): the port descriptor polls POLLOUT only
// while event slots remain; a poller waiting for POLLOUT on a full port wakes
// when a slot frees.
TEST(PortLimits, PolloutOnlyWhileSlotsRemain) {
  RunResult r = LimitedScenario("--max-port-events", "2", "pollout_slots");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Rule 3 with a FILE watch's exception (port_fop_excep): the watch's slot
// passes to the exception event; a poller waiting for POLLOUT on the full
// port is not woken (it was, now and then, before).
TEST(PortLimits, FileExceptionKeepsAFullPortUnwritable) {
  RunResult r = LimitedScenario("--max-port-events", "2", "pollout_file_exception");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Rule 1: `--max-ports N` is project.max-port-ids: port_create is EAGAIN.
TEST(PortLimits, MaxPortsGivesEagain) {
  RunResult r = LimitedScenario("--max-ports", "2", "limit_ports");
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(Scenario("limit_ports").status, 0);
}

// Readiness before the call (port.c:158-163, 1268-1285): an association is
// activated when its file becomes ready, so a port_getn/port_get, with a
// zero timeout or not, returns every descriptor that was ready before it
// (50 rounds of 32 pipes; failed in round 0 before the supervisor collected
// its watches' readiness before each call). Also through a port associated
// with another port.
TEST(PortReadiness, ReadyBeforeTheCallIsSeenByIt) {
  RunResult r = Scenario("ready_before_get");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

TEST(PortReadiness, PortInPortReadyBeforeTheCall) {
  RunResult r = Scenario("port_in_port_ready");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// port.c:158-162 (the association is activated in the file's wake-up;
// port_poll reports queued events): poll() on the port descriptor with a
// zero timeout right after an associated pipe became ready sees POLLIN in
// 200 of 200 rounds (the library's poll settles first, docs/abi.md §10).
TEST(PortReadiness, PollOnThePortSeesReadinessBeforeIt) {
  RunResult r = Scenario("poll_after_ready");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  std::printf("%s", r.out.c_str());
}

// The same through poll, ppoll, select, pselect, epoll_wait/pwait/pwait2 on
// a program epoll holding the port, an epoll in an epoll, dup/dup2/fcntl
// copies, and a port in a port (port.c:158-162): 50 of 50 rounds each, and
// never readable before the write.
TEST(PortReadiness, PollFamilyOnThePortSeesReadinessBeforeIt) {
  RunResult r = Scenario("poll_family_after_ready");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// port.c:164-169, 202-205, 306-316 (port_close_fd): closing an associated
// descriptor without port_dissociate frees the association: 4000 cycles
// under --max-port-events 64 never hit EAGAIN, the supervisor's descriptor
// count stays flat, closed descriptors' events are not counted and their
// slots come back (EAGAIN at cycle 64 before).
TEST(PortClose, CloseWithoutDissociateFreesTheAssociation) {
  RunResult r = LimitedScenario("--max-port-events", "64", "close_no_dissociate");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// port_close_fd (port.c:164-169, 306-316): close() followed by the same
// open file landing at the same number (dup2 back, dup2/dup3 over and back,
// SCM_RIGHTS) still removes the association. Seen through the library's
// close/dup2/dup3 (the event was delivered before).
TEST(PortClose, CloseThenSameFileBackDropsTheAssociation) {
  RunResult r = Scenario("close_same_file_back");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// port.c:164-169: the closes libc makes itself (fclose of an fdopen'd pipe,
// pclose, closedir, close_range, closefrom) dissociate too, when the same
// open file then comes back at the number (F_DUPFD from a kept dup): no
// event for the ready file and port_dissociate is ENOENT; close_range with
// CLOSE_RANGE_CLOEXEC closes nothing and the association fires. Seen
// through the library's wrappers (shim/foreign/poll_settle.h).
TEST(PortClose, LibcClosesThenSameFileBackDropTheAssociation) {
  RunResult r = Scenario("libc_close_same_file_back");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// A vfork child's close, close_range and closefrom are its own table's
// (port.c:164-169 runs for the closing process): the parent's association
// stays, with a close-on-exec port (in the parent's engine) and a plain one
// (shim/foreign/poll_settle.h, settle_memory_pid).
TEST(PortClose, AVforkChildsClosesLeaveTheParentsAssociation) {
  RunResult r = Scenario("vfork_child_close");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// The same once the port moved to the supervisor (fast mode: popen's child
// kept it): the library's close report is served by the engine and then
// issued to the supervisor too (shim/inproc/engine.cc, ForwardCloseReport).
TEST(PortClose, CloseOnAMovedPortThenSameFileBackDropsTheAssociation) {
  RunResult r = Scenario("moved_port_close_same_file_back");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Rule 6 at the association (port.c:153-163): supervised mode measures the
// file at port_associate and queues its event, which outlives the read that
// empties the pipe before the retrieval, as on illumos; fast mode takes the
// readiness at its next look and has no event then (docs/abi.md §10 "Fast
// mode", readiness at the next look: the price of the association's look).
// Pins both, so a change of either shows here and in the docs.
TEST(FastPath, ReadinessIsTakenAtTheNextLook) {
  for (const char* mode : {"EVSHIM_SUPERVISED=0", "EVSHIM_SUPERVISED=1"}) {
    SCOPED_TRACE(mode);
    RunResult r = RunCommand({kEvshim, "run", "--", kScenarios, "drained_before_look"}, 30, {mode});
    EXPECT_EQ(r.status, 0) << r.out << r.err;
    const bool supervised = std::string(mode) == "EVSHIM_SUPERVISED=1";
    EXPECT_NE(r.out.find(supervised ? "drained before the retrieval: event 0x1" : "drained before the retrieval: no event"),
              std::string::npos)
        << r.out;
  }
}

// Supervised, without a supervisor the foreign call is an unknown syscall:
// the scenario must fail, which shows the scenarios test evshim and not
// something else.
TEST(PortScenarioControl, FailsWithoutEvshim) {
  RunResult r = RunCommand({kScenarios, "wake_on_send"}, 10, {"EVSHIM_SUPERVISED=1"});
  EXPECT_NE(r.status, 0);
}

// Fast mode (issue 15): the library's calls are served in the process, so
// the same programs work with no supervisor at all (no `evshim run`, no
// preload): proof that no call went to a supervisor. Waits, timeouts,
// threads, signals, poll on the port and PORT_SOURCE_FILE included.
TEST(FastPath, ScenariosRunWithoutAnySupervisor) {
  for (const char* name : {"etime", "wake_on_send", "two_waiters", "fd_oneshot", "get_zero_untouched",
                           "close_discards", "getn_partial", "alert", "sendn", "bad_ports", "pollable",
                           "pollable_handoff", "eintr", "timer_port", "file_events",
                           "close_waiter", "fd_fire_order", "pipe_writer_gone",
                           // the engine's copy that survives a fault (docs/design.md)
                           "fault_copy"}) {
    if (SkippedUnderTsan(name)) continue;
    RunResult r = RunCommand({kScenarios, name}, 30, kFastMode);
    EXPECT_FALSE(r.timed_out) << name;
    EXPECT_EQ(r.status, 0) << name << "\n" << r.out << r.err;
  }
}

// What the in-process engine holds in the program's descriptor table (the
// program's budget: libevent's test-fdleak runs at RLIMIT_NOFILE 20): its
// loop, look epoll and kick, deadline and sweep timers, the signal eventfd
// (also the idle pump's wake when calls resume: no descriptor of its own),
// the port's two ends; a waiting thread's wake-up eventfd; PORT_SOURCE_FILE's
// inotify only once a file is watched (then in the loop: a waiting port_get
// hears of the file), and no collecting epoll (docs/design.md "Host
// events"). The scenario checks the counts.
TEST(FastPath, EngineHoldsNoDescriptorAheadOfNeed) {
  RunResult r = RunCommand({kScenarios, "engine_fds"}, 30, kFastMode);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Fast mode without a supervisor (no `evshim run`): the engine dies with
// the image and there is no one to move the port to, so a port descriptor
// kept across exec polls POLLHUP and names no port (EBADFD) (docs/abi.md
// §10 "Fast mode"). Under `evshim run` it moves before exec and lives on, in
// both modes (PortScenario exec_alone, exec_timer), so this scenario fails
// there.
TEST(FastPath, InheritedPortIsDeadAfterExecWithoutSupervisor) {
  RunResult r = RunCommand({kScenarios, "fast_exec_dead_port"}, 30, kFastMode);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("after exec the fast-mode port is dead"), std::string::npos) << r.out;
  for (const char* mode : {"EVSHIM_SUPERVISED=0", "EVSHIM_SUPERVISED=1"}) {
    EXPECT_NE(RunCommand({kEvshim, "run", "--", kScenarios, "fast_exec_dead_port"}, 30, {mode}).status, 0) << mode;
  }
}

// Fast mode without a supervisor (no `evshim run`): a port shared with a
// forked child (rule 34) has nowhere to move, so the child fails clearly
// (ENOTSUP and a message naming the remedy) instead of diverging silently.
// Under `evshim run` the port moves to the supervisor before fork and the
// same scenario passes (PortScenario fork_shares, fork_move_*).
TEST(FastPath, PortSharedAcrossForkFailsClearlyWithoutSupervisor) {
  RunResult r = RunCommand({kScenarios, "fork_shares"}, 30, kFastMode);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("fast mode cannot share it (ENOTSUP); run with EVSHIM_SUPERVISED=1"), std::string::npos)
      << r.err;
}

// Raw foreign calls in fast mode (issue 15 item 4; docs/design.md "Raw
// foreign calls in fast mode: the trap"). The trap filter survives exec:
// an image that links the library handles SIGSYS from the moment the engine
// loads, so even its first call, a raw one, is served.
TEST(TrapExec, ImageWithTheLibraryServesItsFirstRawCall) {
  RunResult r = Scenario("trap_exec_engine");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("the exec'd image's raw calls are served"), std::string::npos) << r.out;
}

// The decision for an image without the engine (docs/abi.md §10): exec'd
// from a process with the trap, its first raw foreign call is killed by
// SIGSYS (the inherited filter traps it; nothing handles SIGSYS).
// Supervised (no trap), the supervisor serves it.
TEST(TrapExec, ImageWithoutTheEngineDiesOfSigsysInFastMode) {
  RunResult r = Scenario("trap_exec_foreign");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  const char* sup = std::getenv("EVSHIM_SUPERVISED");
  const bool supervised = sup != nullptr && std::string(sup) == "1";
  EXPECT_NE(r.out.find(supervised ? "supervised: the exec'd raw program is served"
                                   : "fast mode: the exec'd raw program without the engine dies of SIGSYS"),
            std::string::npos)
      << r.out;
}

// The filter goes on every thread at once (SECCOMP_FILTER_FLAG_TSYNC): a
// thread started before the first library call has its raw calls served.
TEST(TrapThreads, ThreadOlderThanTheTrapIsCovered) {
  RunResult r = Scenario("trap_older_thread");
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Preload-only mode has a filter too: the trap is installed there as well.
TEST(TrapPreloadOnly, RawCallsOnTheLibraryPortAreServed) {
  RunResult r = RunCommand({kScenarios, "raw_library_port"}, 30, {"LD_PRELOAD=" + kPreload, "EVSHIM_SUPERVISED=0"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

// Decided: without any seccomp filter (no evshim run, no preload) the engine
// adds none (no new privilege question): a raw foreign number stays an
// unknown Linux system call, ENOSYS (38), as it was.
TEST(TrapWithoutSupervisor, RawCallsAreEnosys) {
  RunResult r = RunCommand({kScenarios, "raw_library_port"}, 30, kFastMode);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("errno 38"), std::string::npos) << r.err;
}

// Under `evshim run`, fast mode: the port moved before fork, in the parent
// as in the child (docs/design.md "Moving a port at fork").
TEST(FastPath, PortSharedAcrossForkMovesToSupervisor) {
  for (const char* name : {"fork_shares", "fork_move_state", "fork_move_waiter", "exec_keep"}) {
    if (SkippedUnderTsan(name)) continue;
    RunResult r = RunCommand({kEvshim, "run", "--", kScenarios, name}, 30, kFastMode);
    EXPECT_FALSE(r.timed_out) << name;
    EXPECT_EQ(r.status, 0) << name << "\n" << r.out << r.err;
    EXPECT_EQ(r.err.find("could not move"), std::string::npos) << name << "\n" << r.err;
  }
}

// A port with a PORT_SOURCE_FILE watch is not moved (docs/abi.md §10): the
// parent keeps it in-process, with a message, and the child's call is ENOTSUP.
TEST(FastPath, PortWithFileWatchStaysInProcessAtFork) {
  RunResult r = RunCommand({kEvshim, "run", "--", kScenarios, "fast_fork_file_watch_stays"}, 30, kFastMode);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("could not move to the supervisor"), std::string::npos) << r.err;
}

TEST(Demo, PrintsBothEvents) {
  RunResult r = RunCommand({kEvshim, "run", "--", kDemo}, 30);
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("source=PORT_SOURCE_FD events=0x1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("source=PORT_SOURCE_USER events=0x2a"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ETIME"), std::string::npos) << r.out;
}

// LD_PRELOAD without the launcher: the library starts a supervisor itself.
TEST(PreloadOnly, RunsScenarioWithoutLauncher) {
  RunResult r = RunCommand({kScenarios, "two_waiters"}, 30, {"LD_PRELOAD=" + kPreload});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  RunResult fork_case =
      RunCommand({kScenarios, "fork_shares"}, 30, {"LD_PRELOAD=" + kPreload, "EVSHIM_SUPERVISED=1"});
  EXPECT_EQ(fork_case.status, 0) << fork_case.out << fork_case.err;
}

// The supervisor the preload starts must not hold the program's stdout or
// stderr (on Linux 6.1 that deadlocked whoever read them: it waited for EOF
// before reaping, the supervisor waited for the reap; seen in the VM).
TEST(PreloadOnly, SupervisorDoesNotHoldProgramStdio) {
  RunResult r = RunCommand(
      {"sh", "-c",
       "LD_PRELOAD=" + kPreload + " " + kScenarios + " block_forever & pid=$!; "
       // The supervisor needs a moment to start (longer in sanitizer builds).
       "for i in $(seq 50); do sleep 0.1; found=; "
       "  for p in /proc/[0-9]*; do "
       // Only supervisors the preload started (`--serve`): a launcher of
       // a test running at the same time holds pipes, as it should.
       "    if [ \"$(readlink $p/exe)\" = " + kEvshim + " ] && "
       "       tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q -- --serve; then "
       "      found=\"serve: $(readlink $p/fd/1) $(readlink $p/fd/2)\"; fi; done; "
       "  case \"$found\" in *null*null*) break;; esac; done; "
       "echo \"$found\"; kill $pid; wait"},
      30);
  EXPECT_NE(r.out.find("serve: /dev/null /dev/null"), std::string::npos) << r.out << r.err;
  EXPECT_EQ(r.out.find("pipe:"), std::string::npos) << r.out;
}

// Under the launcher the preload must not start a second supervisor.
TEST(PreloadOnly, NoSecondSupervisorUnderLauncher) {
  RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c",
                            "LD_PRELOAD=" + kPreload + " " + kScenarios + " wake_on_send"},
                           30);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_EQ(r.err.find("cannot install"), std::string::npos) << r.err;
}

// The same in either mode, seen directly: the preload would start the
// supervisor named by EVSHIM_BIN, here a script that leaves a mark. The
// launcher's marker (EVSHIM_FILTER_INSTALLED) stops it, not the mode switch
// EVSHIM_SUPERVISED, which plain `evshim run` no longer sets.
TEST(PreloadOnly, StartsNoSupervisorUnderLauncherInEitherMode) {
  char dir[] = "/tmp/evshim-fakebin-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string fake = std::string(dir) + "/evshim", mark = std::string(dir) + "/started";
  {
    std::ofstream f(fake);
    f << "#!/bin/sh\ntouch " << mark << "\nexit 1\n";
  }
  chmod(fake.c_str(), 0755);
  for (const char* mode : {"--supervised", "--no-sync-wakeup"}) {  // the latter: default mode
    RunResult r = RunCommand({"env", "-u", "EVSHIM_SUPERVISED", "EVSHIM_BIN=" + fake, kEvshim, "run", mode,
                              "--", "sh", "-c", "LD_PRELOAD=" + kPreload + " " + kScenarios + " wake_on_send"},
                             30);
    EXPECT_EQ(r.status, 0) << mode << r.out << r.err;
    EXPECT_NE(access(mark.c_str(), F_OK), 0) << mode << ": the preload started a supervisor";
    unlink(mark.c_str());
  }
  unlink(fake.c_str());
  rmdir(dir);
}

// The launcher is the supervisor: the program's environment gets only
// EVSHIM_SUPERVISED, no LD_PRELOAD (a 32-bit program's loader would print
// "wrong ELF class" for the 64-bit preload library).
TEST(Launcher, LeavesTheEnvironmentAlone) {
  RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c", "echo \"[${LD_PRELOAD-unset}]\""});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[unset]\n");
}

// Fast mode preloads the signal wrappers (libevshim-signals.so, docs/design.md
// "A copy that survives a fault", The wrappers preloaded) into the program it
// starts, a 64-bit dynamic image (sh), and the library passes itself on to
// the children that take it (grep, env: exec'd by sh's forked children).
// Each puts the user's LD_PRELOAD back before main, so the program and its
// children see the environment as given (unset, empty, or the user's own
// library, which stays first and loaded). Supervised: no preload anywhere.
// Not in builds whose libraries carry ThreadSanitizer (no preload there at
// all).
#if defined(__SANITIZE_THREAD__)
const bool kPreloadedInFastMode = false;
#else
const bool kPreloadedInFastMode = true;
#endif
const std::string kSpawnExec = std::string(TESTBIN_DIR) + "/spawn_exec";
const std::string kStaticEnv = std::string(TESTBIN_DIR) + "/static_env";

TEST(Launcher, PreloadsTheSignalWrappersIntoTheProgramAndTheChildrenThatTakeThem) {
  const std::string show =
      "grep -q libevshim-signals /proc/$$/maps && echo program-preloaded; "
      "grep -q libevshim-signals /proc/self/maps && echo child-preloaded; "
      "grep -q libdl /proc/$$/maps && echo user-preload-loaded; "
      "echo \"[${LD_PRELOAD-unset}][${EVSHIM_USER_LD_PRELOAD-unset}]\"; "
      "env | grep -E '^(LD_PRELOAD|EVSHIM_USER_LD_PRELOAD)=' || echo child-env-clean";
  auto run = [&](const std::string& mode, const std::vector<std::string>& env) {
    RunResult r = RunCommand({kEvshim, "run", mode, "--", "sh", "-c", show}, 30, env);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return r.out;
  };
  const std::string fast = kPreloadedInFastMode ? "program-preloaded\nchild-preloaded\n" : "";
  EXPECT_EQ(run("--no-sync-wakeup", {"EVSHIM_SUPERVISED=0"}), fast + "[unset][unset]\nchild-env-clean\n");
  EXPECT_EQ(run("--no-sync-wakeup", {"EVSHIM_SUPERVISED=0", "LD_PRELOAD="}), fast + "[][unset]\nLD_PRELOAD=\n");
  // The user's own: a harmless library (glibc's libdl stub), which the
  // launcher itself loads too.
  EXPECT_EQ(run("--no-sync-wakeup", {"EVSHIM_SUPERVISED=0", "LD_PRELOAD=libdl.so.2", AsanOptionsForAPreload()}),
            fast + "user-preload-loaded\n[libdl.so.2][unset]\nLD_PRELOAD=libdl.so.2\n");
  EXPECT_EQ(run("--supervised", {}), "[unset][unset]\nchild-env-clean\n");
  EXPECT_EQ(run("--no-sync-wakeup", {"EVSHIM_SUPERVISED=1"}), "[unset][unset]\nchild-env-clean\n");
}

// The child's environment decides: its own LD_PRELOAD (not the parent's)
// comes first and is what it sees; one that says supervised gets nothing,
// and passes nothing on; an environment emptied by `env -i` is preloaded
// and stays empty. Every image in between (sh, env) is preloaded and sees
// what it was given.
TEST(Launcher, TheChildsEnvironmentDecidesItsPreload) {
  const std::string show =
      "grep -q libevshim-signals /proc/$$/maps && echo preloaded; "
      "grep -q libdl /proc/$$/maps && echo user-preload-loaded; "
      "echo \"[${LD_PRELOAD-unset}][${EVSHIM_USER_LD_PRELOAD-unset}][${EVSHIM_SUPERVISED-unset}]\"";
  auto run = [&](const std::string& script) {
    RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c", script}, 30, {"EVSHIM_SUPERVISED=0"});
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    return r.out;
  };
  const std::string yes = kPreloadedInFastMode ? "preloaded\n" : "";
  EXPECT_EQ(run("LD_PRELOAD=libdl.so.2 sh -c '" + show + "'"), yes + "user-preload-loaded\n[libdl.so.2][unset][0]\n");
  EXPECT_EQ(run("LD_PRELOAD= sh -c '" + show + "'"), yes + "[][unset][0]\n");
  EXPECT_EQ(run("EVSHIM_SUPERVISED=1 sh -c '" + show + "; sh -c \"" + show + "\"'"),
            "[unset][unset][1]\n[unset][unset][1]\n");
  EXPECT_EQ(run("env -i sh -c '[ \"$(env)\" = \"$(" + kStaticEnv + ")\" ] && echo same; "
                "grep -q libevshim-signals /proc/$$/maps && echo preloaded; exit 0'"),
            "same\n" + yes);
}

// What a child is given is what it sees, in order: a preloaded child (env)
// prints the same entries as a static one (static_env: nothing preloaded,
// the kernel's environment as the parent passed it), also with thousands of
// variables.
TEST(Launcher, PreloadedChildrenSeeTheirEnvironmentAsGivenInOrder) {
  for (int variables : {0, 3000, 10000}) {
    std::string many;
    for (int i = 0; i < variables; ++i) many += " V" + std::to_string(i) + "=" + std::to_string(i);
    const std::string script = "export LD_PRELOAD= A=1" + many + "; grep -q libevshim-signals /proc/self/maps && "
                               "echo child-preloaded; env > \"$1.env\"; " + kStaticEnv + " > \"$1.static\"; "
                               "cmp \"$1.env\" \"$1.static\" && echo same; rm -f \"$1\".*";
    char dir[] = "/tmp/evshim-env-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c", script, "sh", std::string(dir) + "/out"}, 60,
                             {"EVSHIM_SUPERVISED=0"});
    rmdir(dir);
    EXPECT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.err, "");
    // 3000 variables fit the bound of an exec's environment on the stack
    // (about 4000); 10000 do not, and that child goes without the preload.
    const bool preloaded = kPreloadedInFastMode && variables <= 3000;
    EXPECT_EQ(r.out.find("child-preloaded"), preloaded ? 0u : std::string::npos) << variables << r.out;
    EXPECT_NE(r.out.find("same\n"), std::string::npos) << variables << r.out;
  }
}

// Images that cannot take the preload get nothing and print nothing: a
// static program sees the environment as passed (no LD_PRELOAD, no saved
// value); an ASan program runs (its runtime aborts when a preloaded library
// comes first; testbins/asan_hello.c); so does a script whose interpreter is
// one of those.
TEST(Launcher, ChildrenThatCannotTakeThePreloadGetNothing) {
  RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c",
                            kStaticEnv + " | grep -E '^(LD_PRELOAD|EVSHIM_USER_LD_PRELOAD)=' || echo static-clean; " +
                                std::string(TESTBIN_DIR) + "/asan_hello; " + kSpawnExec + " execve " +
                                std::string(TESTBIN_DIR) + "/asan_hello"},
                           30, {"EVSHIM_SUPERVISED=0"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "static-clean\nhello\nhello\n");
  EXPECT_EQ(r.err, "");
}

// Every exec and spawn entry of glibc passes the preload on (spawn_exec:
// each entry starts grep, which reports its own maps), with the environment
// as given; so does system() (signals_preload.c runs it as glibc's does,
// through the wrapped posix_spawn). popen() does not: glibc spawns its
// /bin/sh with an internal call no wrapper sees (docs/design.md, The
// wrappers preloaded: children).
TEST(Launcher, EveryExecAndSpawnEntryPassesThePreloadOn) {
  const std::string grep = "/usr/bin/grep";
  ASSERT_EQ(access(grep.c_str(), X_OK), 0);
  for (const std::string entry : {"execve", "execv", "execvp", "execvpe", "execl", "execle", "execlp", "fexecve",
                                  "execveat", "posix_spawn", "posix_spawnp", "vfork", "system", "popen"}) {
    const bool by_name = entry == "execvp" || entry == "execvpe" || entry == "execlp" || entry == "posix_spawnp";
    RunResult r = RunCommand(
        {kEvshim, "run", "--", kSpawnExec, entry, by_name ? "grep" : grep, "-q", "libevshim-signals", "/proc/self/maps"},
        30, {"EVSHIM_SUPERVISED=0"});
    EXPECT_EQ(r.status, kPreloadedInFastMode && entry != "popen" ? 0 : 1) << entry << r.out << r.err;
    EXPECT_EQ(r.err, "") << entry;
  }
}

// What system() runs in the preloaded shell is what glibc's system() would
// have run (sysdeps/posix/system.c, 2.36): the same environment in the same
// order (the user's LD_PRELOAD unset, empty or set, quotes in values), $0
// "sh", the exit status, a signal's death, a command the shell takes for
// options; while it runs the caller ignores SIGINT and SIGQUIT and blocks
// SIGCHLD, and the shell has the caller's mask and dispositions; a thread
// cancelled in it leaves no child and SIGINT as it was. popen()'s shell
// is not preloaded. Each against the same program run natively; only the launcher's
// own EVSHIM_FILTER_INSTALLED differs, and that the shell was preloaded.
TEST(Launcher, SystemRunsTheCommandAsGlibcsWould) {
  const std::vector<std::string> commands = {
      "env", "echo \"$0\" \"it's\"; exit 7", "kill -9 $$", "-x", "+x",
      // Read by the shell itself: a child of it (grep) would race with
      // dash's own blocking of signals while it waits for that child. The
      // caller blocks every signal inside posix_spawn (glibc's) until it
      // returns, a moment after the shell started: first wait for that.
      "all=fffffffffffbfeff; b=$all; i=0; while [ $b = $all ] && [ $i -lt 100000 ]; do "
      "while read -r k v; do [ $k = SigBlk: ] && b=$v; done < /proc/$PPID/status; i=$((i+1)); done; "
      "for p in $PPID $$; do while read -r k v; do case $k in SigBlk:|SigIgn:|SigCgt:) echo $k $v;; esac; "
      "done < /proc/$p/status; done",
      "grep -q libevshim-signals /proc/self/maps && echo preloaded || echo plain"};
  for (const std::string entry : {"system", "popen"}) {
    for (const std::string& command : commands) {
      const bool maps = command.rfind("grep", 0) == 0;
      if (entry == "popen" && !maps) continue;  // glibc's own: only that it stays so
      std::vector<std::vector<std::string>> users = {{}};
      if (command == "env") users = {{}, {"LD_PRELOAD="}, {"LD_PRELOAD=   ", "Q=a 'b' \"c\""}};
      for (const std::vector<std::string>& user : users) {
        std::vector<std::string> env = {"EVSHIM_SUPERVISED=0"};
        env.insert(env.end(), user.begin(), user.end());
        RunResult native = RunCommand({kSpawnExec, entry, command}, 30, env);
        RunResult run = RunCommand({kEvshim, "run", "--", kSpawnExec, entry, command}, 30, env);
        const std::string filter_line = "EVSHIM_FILTER_INSTALLED=1\n";
        const size_t at = run.out.find(filter_line);
        if (at != std::string::npos) run.out.erase(at, filter_line.size());
        if (maps) {
          EXPECT_EQ(native.out, "plain\n");
        }
        EXPECT_EQ(run.out, maps && kPreloadedInFastMode && entry == "system" ? "preloaded\n" : native.out)
            << entry << " " << command << " " << user.size();
        EXPECT_EQ(run.status, native.status) << entry << " " << command;
        EXPECT_EQ(run.err, native.err) << entry << " " << command;
      }
    }
  }
  RunResult native = RunCommand({kSpawnExec, "system-cancelled", "exec sleep 5"}, 30, {"EVSHIM_SUPERVISED=0"});
  RunResult run = RunCommand({kEvshim, "run", "--", kSpawnExec, "system-cancelled", "exec sleep 5"}, 30,
                             {"EVSHIM_SUPERVISED=0"});
  EXPECT_EQ(native.out, "cancelled SIGINT-default no-child\n");
  EXPECT_EQ(run.out, native.out) << run.err;
  EXPECT_EQ(run.status, 0);
}

// A failing exec's errno is the real one: the program missing (ENOENT, also
// by name through PATH), a file without execute permission (EACCES). An
// exec the two added variables would make too big (a user's LD_PRELOAD near
// the kernel's 128 KiB limit for one string) runs as given, without them.
TEST(Launcher, AFailingExecKeepsItsErrno) {
  char dir[] = "/tmp/evshim-noexec-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string noexec = std::string(dir) + "/noexec";  // a script that would take the preload
  std::ofstream(noexec) << "#!/bin/sh\n";
  chmod(noexec.c_str(), 0644);
  auto run = [&](const std::string& entry, const std::string& program, const std::vector<std::string>& env = {}) {
    std::vector<std::string> e = {"EVSHIM_SUPERVISED=0"};
    e.insert(e.end(), env.begin(), env.end());
    return RunCommand({kEvshim, "run", "--", kSpawnExec, entry, program}, 30, e);
  };
  for (const char* entry : {"execve", "execvp", "posix_spawn", "posix_spawnp"}) {
    EXPECT_EQ(run(entry, std::string(dir) + "/none").out, "ENOENT\n") << entry;
    EXPECT_EQ(run(entry, noexec).out, "EACCES\n") << entry;
  }
  EXPECT_EQ(run("fexecve", noexec).out, "EACCES\n");
  EXPECT_EQ(run("execvp", "evshim-no-such-program").out, "ENOENT\n");
  unlink(noexec.c_str());
  rmdir(dir);
  // posix_spawn (no bound on the environment it maps): the user's
  // LD_PRELOAD 131055 spaces, so that the library's path after it passes the
  // 128 KiB one string may have. The spawn runs as given.
  RunResult big = run("posix_spawn", "/usr/bin/env", {"SPAWN_EXEC_LD_PRELOAD_SPACES=131055"});
  EXPECT_EQ(big.status, 0) << big.out << big.err;
  EXPECT_NE(big.out.find("\nLD_PRELOAD=" + std::string(131055, ' ') + "\n"), std::string::npos);
  EXPECT_EQ(big.out.find("EVSHIM_USER_LD_PRELOAD"), std::string::npos);
  EXPECT_EQ(big.out.find("E2BIG"), std::string::npos);
  EXPECT_EQ(big.err, "");
}

// A program that needs a sanitizer runtime gets no preload: ASan's runtime
// aborts when a preloaded library comes before it (and with a sanitizer
// interposing first the engine's copy would stay off anyway).
// testbins/asan_hello.c, built with ASan in every build.
TEST(Launcher, PreloadsNothingIntoASanitizedProgram) {
  RunResult r = RunCommand({kEvshim, "run", "--", std::string(TESTBIN_DIR) + "/asan_hello"}, 30,
                           {"EVSHIM_SUPERVISED=0"});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "hello\n");
  EXPECT_EQ(r.err, "");
}

// The mode switch (issue 15): `evshim run --supervised` and `evshim trace
// --supervised` put EVSHIM_SUPERVISED=1 in the program's environment; plain
// `evshim run`, `evshim run --trace` and `evshim trace` pass the caller's
// value on unchanged (tracing works in both modes, docs/trace.md). Every launch
// carries the launcher's marker for the preload (docs/design.md "The
// supervisor and the filter").
TEST(Launcher, SupervisedSwitchReachesTheProgram) {
  const std::string show = "echo \"[${EVSHIM_SUPERVISED-unset}][${EVSHIM_FILTER_INSTALLED-unset}]\"";
  auto env_of = [&](std::vector<std::string> launch, const std::string& caller_value) {
    std::vector<std::string> argv = {"env", "-u", "EVSHIM_SUPERVISED"};
    if (!caller_value.empty()) argv.push_back("EVSHIM_SUPERVISED=" + caller_value);
    argv.insert(argv.end(), launch.begin(), launch.end());
    argv.insert(argv.end(), {"--", "sh", "-c", show});
    RunResult r = RunCommand(argv);
    EXPECT_EQ(r.status, 0) << r.err;
    return r.out;
  };
  EXPECT_EQ(env_of({kEvshim, "run"}, ""), "[unset][1]\n");
  EXPECT_EQ(env_of({kEvshim, "run"}, "1"), "[1][1]\n");
  EXPECT_EQ(env_of({kEvshim, "run", "--supervised"}, ""), "[1][1]\n");
  EXPECT_EQ(env_of({kEvshim, "run", "--trace=/dev/null"}, ""), "[unset][1]\n");
  EXPECT_EQ(env_of({kEvshim, "trace", "-o", "/dev/null"}, ""), "[unset][1]\n");
  EXPECT_EQ(env_of({kEvshim, "trace", "-o", "/dev/null"}, "1"), "[1][1]\n");
  EXPECT_EQ(env_of({kEvshim, "trace", "--supervised", "-o", "/dev/null"}, ""), "[1][1]\n");
}

// Each integration suite runs twice (tests/meson.build): the mode its
// registration sets (EVSHIM_SUPERVISED=0 or 1) must reach the programs
// `evshim run` starts, or both passes would test one mode.
TEST(Launcher, TheSuitesModeReachesThePrograms) {
  const char* mode = std::getenv("EVSHIM_SUPERVISED");
  RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c", "echo \"[${EVSHIM_SUPERVISED-unset}]\""});
  EXPECT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "[" + std::string(mode ? mode : "unset") + "]\n");
}

TEST(Launcher, PropagatesExitStatus) {
  EXPECT_EQ(RunCommand({kEvshim, "run", "--", "/bin/false"}).status, 1);
  EXPECT_EQ(RunCommand({kEvshim, "run", "--", "/bin/true"}).status, 0);
  EXPECT_EQ(RunCommand({kEvshim, "run", "--", "sh", "-c", "kill -TERM $$"}).status, 143);
  EXPECT_EQ(RunCommand({kEvshim, "run", "--", "sh", "-c", "exit 7"}).status, 7);
}

TEST(Launcher, MissingAndNonExecutablePrograms) {
  RunResult missing = RunCommand({kEvshim, "run", "--", "/nonexistent/prog"});
  EXPECT_EQ(missing.status, 127);
  EXPECT_NE(missing.err.find("No such file"), std::string::npos) << missing.err;
  char path[] = "/tmp/evshim-noexec-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  chmod(path, 0644);
  EXPECT_EQ(RunCommand({kEvshim, "run", "--", path}).status, 126);
  unlink(path);
  EXPECT_EQ(RunCommand({kEvshim, "run", "--bogus", "/bin/true"}).status, 2);
  EXPECT_EQ(RunCommand({kEvshim}).status, 2);
}

TEST(Launcher, HelpAndVersion) {
  RunResult help = RunCommand({kEvshim, "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("usage: evshim run"), std::string::npos);
  RunResult version = RunCommand({kEvshim, "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out.rfind("evshim ", 0), 0u);
}

// Every process of the tree is served, including exec'd images.
TEST(Launcher, ServesChildrenAcrossExec) {
  RunResult r = RunCommand({kEvshim, "run", "--", "sh", "-c", kScenarios + " sendn && " + kScenarios + " alert"});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}

std::vector<pid_t> ChildrenOf(pid_t pid) {
  std::vector<pid_t> kids;
  std::ifstream f("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children");
  pid_t k;
  while (f >> k) kids.push_back(k);
  return kids;
}

// kill -9 of the program while it is blocked in port_get leaves no evshim
// process behind, and evshim reports 128+9.
TEST(Launcher, KillNineWhileBlockedLeavesNothingBehind) {
  int out[2];
  ASSERT_EQ(pipe(out), 0);
  pid_t sup = fork();
  if (sup == 0) {
    dup2(out[1], 1);
    close(out[0]);
    execl(kEvshim.c_str(), kEvshim.c_str(), "run", "--", kScenarios.c_str(), "block_forever", nullptr);
    _exit(127);
  }
  close(out[1]);
  char buf[64] = {};
  ASSERT_GT(read(out[0], buf, sizeof buf - 1), 0);
  ASSERT_NE(std::string(buf).find("blocking"), std::string::npos);
  usleep(100 * 1000);  // let it park in port_get
  std::vector<pid_t> kids = ChildrenOf(sup);
  ASSERT_EQ(kids.size(), 1u);
  ASSERT_EQ(kill(kids[0], SIGKILL), 0);
  int status = 0;
  for (int i = 0; i < 100 && waitpid(sup, &status, WNOHANG) == 0; ++i) usleep(50 * 1000);
  ASSERT_TRUE(WIFEXITED(status)) << "evshim did not exit after its program was killed";
  EXPECT_EQ(WEXITSTATUS(status), 137);
  EXPECT_EQ(kill(sup, 0), -1);  // gone
  close(out[0]);
}

}  // namespace
