// `evshim trace` on real programs: golden output (times, pids and addresses
// normalized), JSON lines against docs/trace-schema.json, -C totals, --sites,
// tracing from `evshim run` and preload-only mode, the CLI's errors, and a
// seccomp policy that keeps evshim from trapping calls. The goldens also run
// in the VM against the i386 programs (TraceLayouts below; vm-tests.txt).
#include <gtest/gtest.h>

#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/run.h"

namespace {

using evshim::testing::RunCommand;
using evshim::testing::RunResult;

const std::string kEvshim = EVSHIM_BIN;
const std::string kPreload = EVSHIM_PRELOAD;
// EVSHIM_TESTBIN_DIR traces another build of the test programs: the VM
// (vm-tests.txt) runs the goldens against the i386 build (build32).
std::string TestbinDir() {
  const char* d = std::getenv("EVSHIM_TESTBIN_DIR");
  return d && *d ? d : TESTBIN_DIR;
}

const std::string kDemo = TestbinDir() + "/port_demo";
const std::string kScenarios = TestbinDir() + "/port_scenarios";
const std::string kTraceProg = TestbinDir() + "/trace_prog";
const std::string kSchema = SOURCE_DIR "/docs/trace-schema.json";
const std::string kChecker = SOURCE_DIR "/tests/integration/trace_schema_check.py";

std::string TempPath(const std::string& tag) {
  char path[] = "/tmp/evshim-trace-XXXXXX";
  int fd = mkstemp(path);
  if (fd >= 0) close(fd);
  unlink(path);  // only its unique name is wanted
  return std::string(path) + "-" + tag;
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> Lines(const std::string& s) {
  std::vector<std::string> out;
  std::istringstream in(s);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}

// Only the trace's lines (the program may print on stderr too).
std::string TraceLines(const std::string& s) {
  std::string out;
  for (const std::string& l : Lines(s)) {
    if (l.rfind("[pid ", 0) == 0) out += l + "\n";
  }
  return out;
}

// The data model of the traced programs, from trace_prog's ELF class
// (EI_CLASS: 1 = 32-bit).
bool Ilp32Testbins() {
  std::ifstream f(kTraceProg, std::ios::binary);
  char ident[5] = {};
  f.read(ident, sizeof ident);
  return f && ident[4] == 1;
}

// The VM's run (EVSHIM_EXPECT_ILP32=1) names the i386 programs: a wrong
// directory must fail, not quietly compare the x86_64 goldens.
void ExpectDataModelAsConfigured() {
  const char* want = std::getenv("EVSHIM_EXPECT_ILP32");
  if (want != nullptr && std::string(want) == "1" && !Ilp32Testbins()) {
    ADD_FAILURE() << kTraceProg << " is not an i386 program";
  }
}

// A golden written once for both data models: "0xADDR" stands for an address
// of the traced program's width.
std::string Golden(const std::string& s) {
  ExpectDataModelAsConfigured();
  return std::regex_replace(s, std::regex("0xADDR"), Ilp32Testbins() ? "0xADDR32" : "0xADDR64");
}

// pids -> P1, P2... in order of appearance; tids -> T; durations -> <T>;
// addresses (5+ hex digits) -> 0xADDR32 (up to 8 digits) or 0xADDR64, so a
// golden shows the pointer width; the test programs' cookies (0xc0ffee..)
// are kept.
std::string Normalize(const std::string& s) {
  std::map<std::string, std::string> pids;
  std::string out;
  std::regex pid_re("\\[pid (\\d+)( tid \\d+)?");
  for (const std::string& raw : Lines(s)) {
    std::string l = raw;
    std::smatch m;
    if (std::regex_search(l, m, pid_re)) {
      auto [it, fresh] = pids.emplace(m[1].str(), "P" + std::to_string(pids.size() + 1));
      (void)fresh;
      l = m.prefix().str() + "[pid " + it->second + (m[2].matched ? " tid T" : "") + m.suffix().str();
    }
    l = std::regex_replace(l, std::regex("<\\d+\\.\\d+>"), "<T>");
    l = std::regex_replace(l, std::regex("0x(?!c0ffee)[0-9a-f]{9,}"), "0xADDR64");
    l = std::regex_replace(l, std::regex("0x(?!c0ffee)[0-9a-f]{5,8}\\b"), "0xADDR32");
    out += l + "\n";
  }
  return out;
}

// The suite's mode (tests/meson.build runs it twice): fast unless
// EVSHIM_SUPERVISED=1. `evshim trace` keeps the caller's mode.
bool FastMode() {
  const char* v = std::getenv("EVSHIM_SUPERVISED");
  return v == nullptr || std::string(v) != "1";
}

// trace_prog forkexec shares its port with the child it execs: rule 34
// (docs/rules-ports.md, port.c:241-248), which fast mode cannot keep yet
// (docs/abi.md §10 "Fast mode"). Its tests run supervised in both passes;
// trace_prog tree covers a traced tree in fast mode (TraceFast below).
const std::vector<std::string> kSharesPortAcrossExec = {"EVSHIM_SUPERVISED=1"};

// In fast mode the engine's own descriptors come first, so the program's
// descriptors have other numbers than supervised (docs/abi.md §10). Pairs
// the descriptor numbers of `actual` with the golden's, token by token at
// the places a descriptor is shown (results of port_create/kqueue*, the
// first argument, PORT_SOURCE_FD objects, kevent idents of fd filters,
// portnfy_port); if the pairing is one-to-one and consistent, writes the
// golden's numbers into `actual`. Every other character is compared as is.
struct DescriptorToken {
  size_t pos, len;
  std::string value;
};
std::vector<DescriptorToken> DescriptorTokens(const std::string& s) {
  static const std::vector<std::regex> patterns = {
      std::regex("(?:port_create\\(\\)|kqueue\\(\\)|kqueuex\\([^)]*\\)|kqueue1\\([^)]*\\)) = (\\d+)"),
      std::regex("\\b(?:port_[a-z]+|kevent|freebsd11_kevent|evshim_kqueue_fdclose)\\((\\d+)"),
      std::regex("port_sendn\\(\\[(\\d+)"),
      std::regex("PORT_SOURCE_FD, (\\d+)"),
      std::regex("source=PORT_SOURCE_FD, events=[A-Z0-9|]+, object=(\\d+)"),
      std::regex("portnfy_port=(\\d+)"),
      std::regex("ident=(\\d+), EVFILT_(?:READ|WRITE|VNODE|EXCEPT)"),
  };
  std::map<size_t, DescriptorToken> by_pos;
  for (const std::regex& re : patterns) {
    for (auto it = std::sregex_iterator(s.begin(), s.end(), re); it != std::sregex_iterator(); ++it) {
      const size_t pos = static_cast<size_t>(it->position(1));
      by_pos[pos] = {pos, static_cast<size_t>(it->length(1)), (*it)[1].str()};
    }
  }
  std::vector<DescriptorToken> out;
  for (auto& [pos, t] : by_pos) out.push_back(t);
  return out;
}
std::string Renumbered(const std::string& actual, const std::string& golden, bool fast = FastMode()) {
  if (!fast) return actual;
  std::vector<DescriptorToken> a = DescriptorTokens(actual), g = DescriptorTokens(golden);
  if (a.size() != g.size()) return actual;
  std::map<std::string, std::string> to_golden, from_golden;
  for (size_t i = 0; i < a.size(); ++i) {
    auto [t, fresh_t] = to_golden.emplace(a[i].value, g[i].value);
    auto [f, fresh_f] = from_golden.emplace(g[i].value, a[i].value);
    if (t->second != g[i].value || f->second != a[i].value) return actual;  // not one-to-one
  }
  std::string out = actual;
  for (size_t i = a.size(); i-- > 0;) out.replace(a[i].pos, a[i].len, g[i].value);
  return out;
}
#define EXPECT_TRACE(actual, golden)                \
  do {                                              \
    const std::string golden_ = (golden);           \
    EXPECT_EQ(Renumbered((actual), golden_), golden_); \
  } while (0)

// The lines of each process together, in their order (processes report
// over separate connections in fast mode: their lines interleave freely).
std::string ByProcess(const std::string& s) {
  std::vector<std::string> lines = Lines(s);
  std::stable_sort(lines.begin(), lines.end(), [](const std::string& a, const std::string& b) {
    return a.substr(0, a.find_first_of(" ]", 5)) < b.substr(0, b.find_first_of(" ]", 5));
  });
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

TEST(TraceGolden, ForkExecReadsLikeStrace) {
  RunResult r = RunCommand({kEvshim, "trace", "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "forkexec done\n");
  EXPECT_EQ(Normalize(TraceLines(r.err)),
            Golden("[pid P1] port_create() = 3 <T>\n"
            "[pid P2] port_send(3, 7, 0x77) = 0 <T>\n"
            "[pid P1] port_get(3, {source=PORT_SOURCE_USER, events=7, object=0, user=0x77}, NULL) = 0 <T>\n"
            "[pid P1] port_associate(3, PORT_SOURCE_FD, 5, POLLOUT, 0x1234) = 0 <T>\n"
            "[pid P1] port_associate(3, PORT_SOURCE_FD, 4, POLLIN|POLLPRI, NULL) = 0 <T>\n"
            "[pid P1] port_dissociate(3, PORT_SOURCE_FD, 4) = 0 <T>\n"
            "[pid P1] port_sendn([3, 99], [0, EBADF], 2, 5, 0x55) = 1 <T>\n"
            "[pid P1] port_getn(3, [{source=PORT_SOURCE_FD, events=POLLOUT, object=5, user=0x1234}, "
            "{source=PORT_SOURCE_USER, events=5, object=0, user=0x55}], 4, 2, {0.000000000}) = 0 (nget=2) <T>\n"
            "[pid P1] port_getn(3, NULL, 0, 0, NULL) = 0 (nget=0) <T>\n"
            "[pid P1] port_alert(3, PORT_ALERT_SET, 3, 0x66) = 0 <T>\n"
            "[pid P1] port_get(3, {source=PORT_SOURCE_ALERT, events=3, object=0, user=0x66}, {1.000000000}) = 0 <T>\n"
            "[pid P1] port_alert(3, 0, 0, NULL) = 0 <T>\n"
            "[pid P1] port_getn(3, <unfinished ...>\n"
            "[pid P1] <... port_getn resumed>0xADDR, 4, 1, {0.050000000}) = -1 ETIME (Timer expired) (nget=0) <T>\n"
            "[pid P1] port_associate(3, PORT_SOURCE_FD, 1000, POLLIN, NULL) = -1 EBADFD (File descriptor in bad "
            "state) <T>\n"
            "[pid P1] port_send(12345, 1, NULL) = -1 EBADF (Bad file descriptor) <T>\n"));
}

TEST(TraceGolden, DemoShowsBlockingAndThreads) {
  RunResult r = RunCommand({kEvshim, "trace", "--", kDemo}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRACE(Normalize(TraceLines(r.err)),
            Golden("[pid P1] port_create() = 3 <T>\n"
            "[pid P1] port_associate(3, PORT_SOURCE_FD, 4, POLLIN, 0xADDR) = 0 <T>\n"
            "[pid P1] port_getn(3, <unfinished ...>\n"
            "[pid P1] <... port_getn resumed>[{source=PORT_SOURCE_FD, events=POLLIN, object=4, user=0xADDR}], 4, "
            "1, {2.000000000}) = 0 (nget=1) <T>\n"
            "[pid P1] port_getn(3, <unfinished ...>\n"
            "[pid P1] <... port_getn resumed>[{source=PORT_SOURCE_USER, events=42, object=0, user=0xADDR}], 4, 1, "
            "{2.000000000}) = 0 (nget=1) <T>\n"
            "[pid P1 tid T] port_send(3, 42, 0xADDR) = 0 <T>\n"
            "[pid P1] port_get(3, <unfinished ...>\n"
            "[pid P1] <... port_get resumed>0xADDR, {0.200000000}) = -1 ETIME (Timer expired) <T>\n"));
}

// The durations are real: the demo's port_get waits its 200 ms timeout.
TEST(TraceGolden, DurationsAreMeasured) {
  RunResult r = RunCommand({kEvshim, "trace", "-e", "port_get", "--", kDemo}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  std::smatch m;
  std::string lines = TraceLines(r.err);
  ASSERT_TRUE(std::regex_search(lines, m, std::regex("ETIME \\(Timer expired\\) <(\\d+\\.\\d+)>"))) << lines;
  double d = std::stod(m[1].str());
  EXPECT_GE(d, 0.19);
  EXPECT_LT(d, 2.0);
}

TEST(TraceFilter, SelectsNamedCalls) {
  RunResult r = RunCommand({kEvshim, "trace", "-e", "port_send,port_create", "--", kTraceProg, "forkexec"}, 30,
                           kSharesPortAcrossExec);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Normalize(TraceLines(r.err)),
            "[pid P1] port_create() = 3 <T>\n"
            "[pid P2] port_send(3, 7, 0x77) = 0 <T>\n"
            "[pid P1] port_send(12345, 1, NULL) = -1 EBADF (Bad file descriptor) <T>\n");
}

TEST(TraceOutput, WritesToFileAndKeepsStderrForTheProgram) {
  std::string path = TempPath("o");
  RunResult r = RunCommand({kEvshim, "trace", "-o", path, "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(TraceLines(r.err), "");
  EXPECT_EQ(Lines(TraceLines(ReadAll(path))).size(), 16u) << ReadAll(path);
  unlink(path.c_str());
}

TEST(TraceJson, LinesMatchTheSchemaAndLoadInJsonTool) {
  for (const std::string mode : {"", "forkexec", "tree"}) {
    const std::string prog = mode.empty() ? kDemo : kTraceProg;
    std::string path = TempPath("json");
    std::vector<std::string> argv = {kEvshim, "trace", "--json", "--sites", "-o", path, "--", prog};
    if (!mode.empty()) argv.push_back(mode);
    RunResult r = RunCommand(argv, 30, mode == "forkexec" ? kSharesPortAcrossExec : std::vector<std::string>{});
    ASSERT_EQ(r.status, 0) << r.err;
    std::vector<std::string> lines = Lines(ReadAll(path));
    ASSERT_GE(lines.size(), 6u);  // one object per completed call
    RunResult check = RunCommand({"python3", kChecker, kSchema, path}, 30);
    EXPECT_EQ(check.status, 0) << check.out << check.err;
    for (const std::string& l : lines) {
      std::string one = path + ".line";
      std::ofstream(one) << l << "\n";
      RunResult tool = RunCommand({"python3", "-m", "json.tool", one}, 30);
      EXPECT_EQ(tool.status, 0) << l << tool.err;
      unlink(one.c_str());
    }
    // The checker is not a rubber stamp: a line without "pid", or with a
    // wrong type, is rejected.
    std::string bad = path + ".bad";
    std::ofstream(bad) << std::regex_replace(lines[0], std::regex("\"pid\":\\d+,"), "") << "\n";
    EXPECT_EQ(RunCommand({"python3", kChecker, kSchema, bad}, 30).status, 1);
    std::ofstream(bad) << std::regex_replace(lines[0], std::regex("\"blocked\":(true|false)"), "\"blocked\":1")
                       << "\n";
    EXPECT_EQ(RunCommand({"python3", kChecker, kSchema, bad}, 30).status, 1);
    unlink(bad.c_str());
    unlink(path.c_str());
  }
}

TEST(TraceJson, CarriesRawAndDecodedViews) {
  std::string path = TempPath("json");
  RunResult r = RunCommand({kEvshim, "trace", "--json", "-e", "port_getn", "-o", path, "--", kTraceProg, "forkexec"}, 30,
                           kSharesPortAcrossExec);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(ReadAll(path));
  ASSERT_EQ(lines.size(), 3u) << ReadAll(path);
  // The ETIME retrieval: the system call succeeded (count 0 | ETIME << 32);
  // the program sees -1/ETIME.
  EXPECT_NE(lines[2].find("\"result\":266287972352,\"errno\":null"), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("\"failed\":true,\"api_errno\":\"ETIME\""), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("\"blocked\":true"), std::string::npos) << lines[2];
  EXPECT_NE(lines[0].find("\"call\":\"port_getn\""), std::string::npos);
  EXPECT_NE(lines[0].find("\"syscall\":\"portfs\",\"nr\":182"), std::string::npos);
  unlink(path.c_str());
}

TEST(TraceSummary, TotalsAreConsistentWithTheLines) {
  std::string path = TempPath("sum");
  RunResult r = RunCommand({kEvshim, "trace", "-C", "-o", path, "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  ASSERT_EQ(r.status, 0) << r.err;
  std::map<std::string, std::pair<int, int>> from_lines;  // name -> calls, errors
  std::map<std::string, std::pair<int, int>> from_table;
  std::regex line_re("^\\[pid [^\\]]*\\] (?:<\\.\\.\\. )?([a-z_]+)[( ].*\\) = (-1|\\?|\\d)");
  std::regex row_re("^\\s*(\\d+)\\s+(\\d+)\\s+([\\d.]+)\\s+([\\d.]+) ([a-z_]+)$");
  int total_calls = -1, total_errors = -1;
  for (const std::string& l : Lines(ReadAll(path))) {
    std::smatch m;
    if (std::regex_search(l, m, line_re)) {
      auto& e = from_lines[m[1].str()];
      ++e.first;
      e.second += m[2].str() == "-1" ? 1 : 0;
    } else if (std::regex_search(l, m, row_re)) {
      if (m[5].str() == "total") {
        total_calls = std::stoi(m[1].str());
        total_errors = std::stoi(m[2].str());
      } else {
        from_table[m[5].str()] = {std::stoi(m[1].str()), std::stoi(m[2].str())};
      }
    }
  }
  EXPECT_EQ(from_lines, from_table) << ReadAll(path);
  EXPECT_EQ(total_calls, 15);  // 16 lines: one call blocked (two lines)
  EXPECT_EQ(total_errors, 3);
  EXPECT_EQ(from_table["port_getn"], std::make_pair(3, 1));
  // -c alone: the table and no lines.
  RunResult c = RunCommand({kEvshim, "trace", "-c", "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(TraceLines(c.err), "");
  EXPECT_NE(c.err.find("     15       3"), std::string::npos) << c.err;
  unlink(path.c_str());
}

TEST(TraceSites, ShowTheSyscallInstructionAndTheCallingLibrary) {
  RunResult r = RunCommand({kEvshim, "trace", "--sites", "-e", "port_create,port_send", "--", kDemo}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(TraceLines(r.err));
  ASSERT_EQ(lines.size(), 2u) << r.err;
  // Fast mode: served at the engine's entry; the library's call into it.
  std::regex site_re(FastMode() ? "\\[at libevshim-engine\\.so\\+0x[0-9a-f]+ \\(in-process\\), from "
                                  "libevshim-ports\\.so\\+0x[0-9a-f]+\\]$"
                                : "\\[at libc\\.so\\.6\\+0x[0-9a-f]+ \\(syscall\\), from "
                                  "libevshim-ports\\.so\\+0x[0-9a-f]+\\]$");
  for (const std::string& l : lines) EXPECT_TRUE(std::regex_search(l, site_re)) << l;
  // Different library functions, different callers.
  EXPECT_NE(lines[0].substr(lines[0].find("from ")), lines[1].substr(lines[1].find("from ")));
}

// --- fast mode (issue 15 item 6; docs/trace.md "Fast mode") ---
//
// These pin the mode themselves (EVSHIM_SUPERVISED=0 or --supervised), so
// both passes of the suite check both paths.
const std::vector<std::string> kFast = {"EVSHIM_SUPERVISED=0"};

std::vector<std::string> JsonLines(const std::vector<std::string>& argv, const std::vector<std::string>& env) {
  std::string path = TempPath("fast");
  std::vector<std::string> full = {kEvshim, "trace", "--json", "-o", path};
  full.insert(full.end(), argv.begin(), argv.end());
  RunResult r = RunCommand(full, 30, env);
  EXPECT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(ReadAll(path));
  unlink(path.c_str());
  return lines;
}

// The calls were served by the program's engine and traced from there:
// every line says so, and no call reached the supervisor.
TEST(TraceFast, CallsServedInProcessAreTraced) {
  std::vector<std::string> lines = JsonLines({"--", kDemo}, kFast);
  ASSERT_EQ(lines.size(), 6u);  // port_create, port_associate, 2 x port_getn, port_send, port_get
  for (const std::string& l : lines) EXPECT_NE(l.find("\"served\":\"in-process\""), std::string::npos) << l;
  EXPECT_NE(lines[2].find("\"call\":\"port_getn\""), std::string::npos) << lines[2];
  EXPECT_NE(lines[2].find("\"blocked\":true"), std::string::npos) << lines[2];
}

// `evshim run --trace` traces the fast path too.
TEST(TraceFast, RunTraceOptionTracesInProcessCalls) {
  RunResult r = RunCommand({kEvshim, "run", "--trace", "--", kDemo}, 30, kFast);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Lines(TraceLines(r.err)).size(), 9u) << r.err;  // 6 calls, 3 of them blocked
  EXPECT_NE(r.out.find("done"), std::string::npos) << r.out;
  EXPECT_EQ(r.out, RunCommand({kEvshim, "run", "--", kDemo}, 30, kFast).out);  // the fast mode's numbers
}

// --supervised still traces, through the supervisor.
TEST(TraceFast, SupervisedTraceStillWorks) {
  std::vector<std::string> lines = JsonLines({"--supervised", "--", kDemo}, kFast);
  ASSERT_EQ(lines.size(), 6u);
  for (const std::string& l : lines) EXPECT_NE(l.find("\"served\":\"supervisor\""), std::string::npos) << l;
}

// A wait a signal interrupts (port_scenarios eintr: SIGALRM with SA_RESTART,
// rule 26). Fast mode shows the EINTR the program got; supervised shows the
// wait interrupted and the kernel's restart of it answered EINTR. Neither
// shows the library's probe (docs/abi.md "Call numbers"): evshim's own
// question, not a call of the program (it read `= -1 ECANCELED`).
TEST(TraceInterrupted, AWaitEndedByASignalShowsEintrInBothModes) {
  for (const bool supervised : {false, true}) {
    RunResult r = RunCommand({kEvshim, "trace", "-e", "port_get", "--", kScenarios, "eintr"}, 30,
                             {supervised ? "EVSHIM_SUPERVISED=1" : "EVSHIM_SUPERVISED=0"});
    ASSERT_EQ(r.status, 0) << r.err;
    // The port's number: 3 supervised, after the engine's own in fast mode.
    const std::string lines = std::regex_replace(Normalize(TraceLines(r.err)), std::regex("port_get\\(\\d+, "),
                                                 "port_get(P, ");
    EXPECT_EQ(lines.find("ECANCELED"), std::string::npos) << lines;
    const std::string resumed = "<... port_get resumed>0xADDR64, {5.000000000}) = ";
    const std::string retrieved =
        "port_get(P, {source=PORT_SOURCE_USER, events=3, object=0, user=NULL}, {5.000000000}) = 0 <T>\n";
    if (supervised) {
      EXPECT_NE(lines.find(resumed + "? (interrupted) <T>\n[pid P1] port_get(P, 0xADDR64, {5.000000000}) = -1 EINTR "
                                     "(Interrupted system call) <T>\n[pid P1] " + retrieved),
                std::string::npos)
          << lines;
    } else {
      EXPECT_NE(lines.find(resumed + "-1 EINTR (Interrupted system call) <T>\n[pid P1] " + retrieved),
                std::string::npos)
          << lines;
    }
  }
}

const std::string kTreeGolden =
    "[pid P1] port_create() = 3 <T>\n"
    "[pid P1 tid T] port_send(3, 1, 0x11) = 0 <T>\n"
    "[pid P1] port_get(3, {source=PORT_SOURCE_USER, events=1, object=0, user=0x11}, NULL) = 0 <T>\n"
    "[pid P1] port_send(3, 3, 0x33) = 0 <T>\n"
    "[pid P2] port_create() = 4 <T>\n"
    "[pid P2] port_send(4, 2, 0x22) = 0 <T>\n"
    "[pid P2] port_getn(4, [{source=PORT_SOURCE_USER, events=2, object=0, user=0x22}], 4, 1, {0.000000000}) = 0 "
    "(nget=1) <T>\n"
    "[pid P2] port_create() = 5 <T>\n"
    "[pid P2] port_get(5, <unfinished ...>\n"
    "[pid P2] <... port_get resumed>0xADDR, {0.020000000}) = -1 ETIME (Timer expired) <T>\n";

// A tree: a thread, a forked child, the child's exec. Each process's lines
// in its order (processes interleave freely: separate connections).
TEST(TraceFast, TreeOfProcessesAndThreads) {
  RunResult r = RunCommand({kEvshim, "trace", "--", kTraceProg, "tree"}, 30, kFast);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(r.out, "tree done\n");
  const std::string golden = Golden(kTreeGolden);
  EXPECT_EQ(Renumbered(ByProcess(Normalize(TraceLines(r.err))), golden, true), golden);
  // And every one of them was served in-process, except the parent's call
  // on its port after the fork: the port moved to the supervisor before
  // fork (rule 34, port.c:241-248; docs/design.md "Moving a port at fork").
  std::vector<std::string> lines = JsonLines({"--", kTraceProg, "tree"}, kFast);
  ASSERT_EQ(lines.size(), 9u);
  std::set<std::string> pids;
  for (const std::string& l : lines) {
    const bool moved_port = l.find("0x33") != std::string::npos;
    EXPECT_NE(l.find(moved_port ? "\"served\":\"supervisor\"" : "\"served\":\"in-process\""), std::string::npos)
        << l;
    pids.insert(l.substr(0, l.find(',')));
  }
  EXPECT_EQ(pids.size(), 2u);
  // The same tree supervised: the same lines.
  RunResult s = RunCommand({kEvshim, "trace", "--supervised", "--", kTraceProg, "tree"}, 30);
  ASSERT_EQ(s.status, 0) << s.err;
  EXPECT_EQ(ByProcess(Normalize(TraceLines(s.err))), golden);
}

// A process of the traced tree that gives up root (nginx's workers run as
// `nobody`) is still traced: the launcher accepts a connection from its own
// descendants whatever their user (shim/trace/channel.cc). Needs root to
// change user, as CI has; the same lines supervised.
TEST(TraceFast, DescendantUnderAnotherUserIsTraced) {
  ASSERT_EQ(geteuid(), 0u) << "this test changes user: run the suite as root (CI does)";
  for (const std::vector<std::string>& env : {kFast, std::vector<std::string>{"EVSHIM_SUPERVISED=1"}}) {
    RunResult r = RunCommand({kEvshim, "trace", "--", kTraceProg, "dropuid"}, 30, env);
    ASSERT_EQ(r.status, 0) << r.err;
    EXPECT_EQ(r.out, "dropuid done\n");
    const std::string lines = Normalize(TraceLines(r.err));
    EXPECT_NE(lines.find("port_create() = "), std::string::npos) << r.err;
    EXPECT_NE(lines.find(", 5, 0x55) = 0"), std::string::npos) << r.err;  // port_send
  }
}

TEST(TraceFast, FilterAndSummaryCountInProcessCalls) {
  // --sites marks each line served in-process.
  RunResult e = RunCommand({kEvshim, "trace", "--sites", "-e", "port_send", "--", kTraceProg, "tree"}, 30, kFast);
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_EQ(Lines(TraceLines(e.err)).size(), 3u) << e.err;
  for (const std::string& l : Lines(TraceLines(e.err))) {
    EXPECT_NE(l.find("] port_send("), std::string::npos) << l;
    // The parent's port moved to the supervisor at fork (see above).
    if (l.find("0x33") != std::string::npos) continue;
    EXPECT_NE(l.find(" (in-process), from libevshim-ports.so+0x"), std::string::npos) << l;
  }
  RunResult c = RunCommand({kEvshim, "trace", "-c", "--", kTraceProg, "tree"}, 30, kFast);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(TraceLines(c.err), "");
  // -C: the same table under the lines, all of them served in-process.
  RunResult lc = RunCommand({kEvshim, "trace", "-C", "--sites", "--", kTraceProg, "tree"}, 30, kFast);
  ASSERT_EQ(lc.status, 0) << lc.err;
  ASSERT_EQ(Lines(TraceLines(lc.err)).size(), 10u) << lc.err;
  for (const std::string& l : Lines(TraceLines(lc.err))) {
    if (l.find("resumed>") == std::string::npos && l.find("0x33") == std::string::npos) {
      EXPECT_NE(l.find("(in-process)"), std::string::npos) << l;
    }
  }
  EXPECT_NE(lc.err.find("      9       1"), std::string::npos) << lc.err;
  EXPECT_NE(c.err.find("      9       1"), std::string::npos) << c.err;  // 9 calls, the ETIME
  auto row = [&](int calls, int errors, const std::string& name) {
    return std::regex_search(c.err, std::regex("\\n\\s+" + std::to_string(calls) + "\\s+" + std::to_string(errors) +
                                                   "\\s+[\\d.]+\\s+[\\d.]+ " + name + "\\n"));
  };
  EXPECT_TRUE(row(2, 1, "port_get")) << c.err;  // the exec'd child's ETIME
  EXPECT_TRUE(row(3, 0, "port_send")) << c.err;
  EXPECT_TRUE(row(3, 0, "port_create")) << c.err;
  EXPECT_TRUE(row(1, 0, "port_getn")) << c.err;
}

// --sites in fast mode: the engine's entry, and the library's call into it.
TEST(TraceFast, SitesNameTheLibrary) {
  RunResult r = RunCommand({kEvshim, "trace", "--sites", "-e", "port_create,port_send", "--", kDemo}, 30, kFast);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(TraceLines(r.err));
  ASSERT_EQ(lines.size(), 2u) << r.err;
  std::regex site_re(
      "\\[at libevshim-engine\\.so\\+0x[0-9a-f]+ \\(in-process\\), from libevshim-ports\\.so\\+0x[0-9a-f]+\\]$");
  for (const std::string& l : lines) EXPECT_TRUE(std::regex_search(l, site_re)) << l;
  EXPECT_NE(lines[0].substr(lines[0].find("from ")), lines[1].substr(lines[1].find("from ")));
}

// Tracing does not move the program's descriptors: the channel sits at the
// top of the descriptor table.
TEST(TraceFast, ProgramDescriptorsAreTheUntracedOnes) {
  RunResult plain = RunCommand({kEvshim, "run", "--", kDemo}, 30, kFast);
  RunResult traced = RunCommand({kEvshim, "trace", "-o", "/dev/null", "--", kDemo}, 30, kFast);
  ASSERT_EQ(plain.status, 0) << plain.err;
  ASSERT_EQ(traced.status, 0) << traced.err;
  EXPECT_EQ(plain.out, traced.out);  // it prints its port's and pipe's numbers
}

// Tracing observes only: scenarios that check illumos results pass under it.
class TraceScenario : public ::testing::TestWithParam<const char*> {};
TEST_P(TraceScenario, PassesUnderTrace) {
  const bool shares = std::string(GetParam()) == "fork_shares";  // rule 34: supervised only
  RunResult r = RunCommand({kEvshim, "trace", "-o", "/dev/null", "--", kScenarios, GetParam()}, 30,
                           shares ? kSharesPortAcrossExec : std::vector<std::string>{});
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}
INSTANTIATE_TEST_SUITE_P(Trace, TraceScenario,
                         ::testing::Values("etime", "two_waiters", "getn_partial", "alert", "sendn", "bad_ports",
                                           "fork_shares", "eintr"));

// --- the BSD kqueue personalities ---

std::string KqScenarios(const std::string& personality) { return TestbinDir() + "/kq_scenarios_" + personality; }

// A wait whose events come from the host (pipe readiness, a thread's
// trigger) parks or not depending on timing: joins each
// "NAME(args, <unfinished ...>" with its "<... NAME resumed>rest" so both
// forms read as the one-line form.
std::string Unfold(const std::string& s) {
  const std::string unfinished = "<unfinished ...>";
  std::vector<std::string> lines = Lines(s);
  std::vector<bool> used(lines.size(), false);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (used[i]) continue;
    std::string l = lines[i];
    const size_t close = l.find("] ");
    const size_t paren = l.find('(');
    if (l.size() >= unfinished.size() && l.compare(l.size() - unfinished.size(), unfinished.size(), unfinished) == 0 &&
        close != std::string::npos && paren != std::string::npos) {
      const std::string resumed =
          l.substr(0, close + 2) + "<... " + l.substr(close + 2, paren - close - 2) + " resumed>";
      for (size_t j = i + 1; j < lines.size(); ++j) {
        if (!used[j] && lines[j].rfind(resumed, 0) == 0) {
          l = l.substr(0, l.size() - unfinished.size()) + lines[j].substr(resumed.size());
          used[j] = true;
          break;
        }
      }
    }
    out += l + "\n";
  }
  return out;
}

std::string Sorted(const std::string& s) {
  std::vector<std::string> lines = Lines(s);
  std::sort(lines.begin(), lines.end());
  std::string out;
  for (const std::string& l : lines) out += l + "\n";
  return out;
}

bool HaveKqScenarios(const std::string& personality) { return access(KqScenarios(personality).c_str(), X_OK) == 0; }

TEST(TraceKqueueGolden, UnfoldJoinsAParkedCallWithItsAnswer) {
  EXPECT_EQ(Unfold("[pid P1] kevent(3, NULL, 0, <unfinished ...>\n"
            "[pid P1 tid T] kqueue() = 4 <T>\n"
            "[pid P1] <... kevent resumed>[{ident=4}], 1, NULL) = 1 <T>\n"),
            "[pid P1] kevent(3, NULL, 0, [{ident=4}], 1, NULL) = 1 <T>\n"
            "[pid P1 tid T] kqueue() = 4 <T>\n");
}

TEST(TraceKqueueGolden, FreebsdPipeReadShowsChangesAndReturnedEvents) {
  RunResult r = RunCommand({kEvshim, "trace", "--", KqScenarios("freebsd"), "pipe_read"}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRACE(Unfold(Normalize(TraceLines(r.err))),
            Golden("[pid P1] kqueue() = 3 <T>\n"
            "[pid P1] kevent(3, [{ident=4, EVFILT_READ, EV_ADD, fflags=0, data=0, udata=0xADDR}], 1, NULL, 0, NULL) "
            "= 0 <T>\n"
            "[pid P1] kevent(3, NULL, 0, 0xADDR, 1, {0.000000000}) = 0 <T>\n"
            "[pid P1] kevent(3, NULL, 0, [{ident=4, EVFILT_READ, 0, fflags=0, data=5, udata=0xADDR}], 1, NULL) = 1 "
            "<T>\n"
            "[pid P1] kevent(3, NULL, 0, 0xADDR, 1, {0.000000000}) = 0 <T>\n"
            "[pid P1] kevent(3, NULL, 0, [{ident=4, EVFILT_READ, EV_EOF, fflags=0, data=0, udata=0xADDR}], 1, NULL) "
            "= 1 <T>\n"));
}

TEST(TraceKqueueGolden, OpenbsdErrorsShowErrorRecordsAndErrnos) {
  RunResult r = RunCommand({kEvshim, "trace", "--", KqScenarios("openbsd"), "errors"}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRACE(Normalize(TraceLines(r.err)),
            Golden("[pid P1] kqueue() = 3 <T>\n"
            "[pid P1] kevent(3, [{ident=99, EVFILT_USER, EV_DELETE, fflags=0, data=0, udata=0x7}], 1, [{ident=99, "
            "EVFILT_USER, EV_ERROR, fflags=0, data=ENOENT, udata=0x7}], 2, {0.000000000}) = 1 <T>\n"
            "[pid P1] kevent(3, [{ident=99, EVFILT_USER, EV_DELETE, fflags=0, data=0, udata=0x7}], 1, NULL, 0, "
            "{0.000000000}) = -1 ENOENT (No such file or directory) <T>\n"
            "[pid P1] kevent(3, [{ident=1, EVFILT_USER, EV_ADD|EV_RECEIPT, fflags=0, data=0, udata=NULL}], 1, "
            "[{ident=1, EVFILT_USER, EV_ERROR, fflags=0, data=0, udata=NULL}], 2, {0.000000000}) = 1 <T>\n"
            "[pid P1] kevent(4, NULL, 0, 0xADDR, 1, {0.000000000}) = -1 EBADF (Bad file descriptor) <T>\n"
            "[pid P1] kevent(1000, NULL, 0, 0xADDR, 1, {0.000000000}) = -1 EBADF (Bad file descriptor) <T>\n"
            "[pid P1] kevent(3, NULL, 0, 0xADDR, 1, {0.000000000}) = -1 EBADF (Bad file descriptor) <T>\n"));
}

TEST(TraceKqueueGolden, FlagsOfKqueuexAndKqueue1) {
  RunResult f = RunCommand({kEvshim, "trace", "--", KqScenarios("freebsd"), "kqueue_flags"}, 30);
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_TRACE(Normalize(TraceLines(f.err)),
            "[pid P1] kqueuex(KQUEUE_CLOEXEC) = 3 <T>\n"
            "[pid P1] kqueue() = 4 <T>\n"
            "[pid P1] kqueuex(0x4) = -1 EINVAL (Invalid argument) <T>\n"
            "[pid P1] kqueuex(KQUEUE_CLOEXEC|KQUEUE_CPONFORK) = 5 <T>\n");
  RunResult o = RunCommand({kEvshim, "trace", "--", KqScenarios("openbsd"), "kqueue_flags"}, 30);
  ASSERT_EQ(o.status, 0) << o.err;
  EXPECT_TRACE(Normalize(TraceLines(o.err)),
            "[pid P1] kqueue1(O_CLOEXEC) = 3 <T>\n"
            "[pid P1] kqueue() = 4 <T>\n");
}

// A wait that times out always parks: the two-line form, and the time waited.
TEST(TraceKqueueGolden, DragonflyTimeoutIsUnfinishedThenResumed) {
  if (!HaveKqScenarios("dragonfly")) GTEST_SKIP() << "no DragonFly testbin on this architecture";
  RunResult r = RunCommand({kEvshim, "trace", "--", KqScenarios("dragonfly"), "timeout"}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string lines = TraceLines(r.err);
  EXPECT_TRACE(Normalize(lines),
            Golden("[pid P1] kqueue() = 3 <T>\n"
            "[pid P1] kevent(3, NULL, 0, <unfinished ...>\n"
            "[pid P1] <... kevent resumed>0xADDR, 1, {0.080000000}) = 0 <T>\n"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(lines, m, std::regex("resumed>.* = 0 <(\\d+\\.\\d+)>"))) << lines;
  EXPECT_GE(std::stod(m[1].str()), 0.075);
}

// Two threads parked on one kqueue, woken by the main thread's changes: each
// resumed line shows the event its thread got.
TEST(TraceKqueueGolden, ThreadsWaitingOnOneKqueue) {
  RunResult r = RunCommand({kEvshim, "trace", "--", KqScenarios("freebsd"), "two_waiters"}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  // One descriptor: the sorted order does not depend on its number.
  EXPECT_TRACE(Sorted(Unfold(Normalize(TraceLines(r.err)))),
            "[pid P1 tid T] kevent(3, NULL, 0, [{ident=1, EVFILT_USER, EV_ONESHOT, fflags=0, data=0, udata=NULL}], "
            "1, NULL) = 1 <T>\n"
            "[pid P1 tid T] kevent(3, NULL, 0, [{ident=2, EVFILT_USER, EV_ONESHOT, fflags=0, data=0, udata=NULL}], "
            "1, NULL) = 1 <T>\n"
            "[pid P1] kevent(3, [{ident=1, EVFILT_USER, EV_ADD|EV_ONESHOT, fflags=NOTE_TRIGGER, data=0, udata=NULL}, "
            "{ident=2, EVFILT_USER, EV_ADD|EV_ONESHOT, fflags=NOTE_TRIGGER, data=0, udata=NULL}], 2, NULL, 0, NULL) "
            "= 0 <T>\n"
            "[pid P1] kqueue() = 3 <T>\n");
}

TEST(TraceKqueueFilter, SelectsKqueueCallsByName) {
  RunResult r = RunCommand({kEvshim, "trace", "-e", "kqueuex", "--", KqScenarios("freebsd"), "kqueue_flags"}, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRACE(Normalize(TraceLines(r.err)),
            "[pid P1] kqueuex(KQUEUE_CLOEXEC) = 3 <T>\n"
            "[pid P1] kqueuex(0x4) = -1 EINVAL (Invalid argument) <T>\n"
            "[pid P1] kqueuex(KQUEUE_CLOEXEC|KQUEUE_CPONFORK) = 5 <T>\n");
  // KQUEUE_CPONFORK's fork hook: the parent's prepare, then the child's claim.
  RunResult c = RunCommand({kEvshim, "trace", "-e", "evshim_kqueue_fork", "--", KqScenarios("freebsd"), "cponfork"}, 30);
  ASSERT_EQ(c.status, 0) << c.err;
  EXPECT_EQ(Normalize(TraceLines(c.err)),
            "[pid P1] evshim_kqueue_fork(prepare, 0) = 1 <T>\n"
            "[pid P2] evshim_kqueue_fork(child, 1) = 0 <T>\n");
  // knote_fdclose: the library reports each close of a number with an fd
  // knote, once (four rounds: pipe ends 4 and 5 with knotes, then 4 again).
  RunResult f = RunCommand(
      {kEvshim, "trace", "-e", "evshim_kqueue_fdclose", "--", KqScenarios("openbsd"), "close_same_file_back"}, 30);
  ASSERT_EQ(f.status, 0) << f.err;
  std::string rounds;
  for (int i = 0; i < 4; ++i) {
    rounds += "[pid P1] evshim_kqueue_fdclose(4) = 0 <T>\n"
              "[pid P1] evshim_kqueue_fdclose(5) = 0 <T>\n"
              "[pid P1] evshim_kqueue_fdclose(4) = 0 <T>\n";
  }
  EXPECT_TRACE(Normalize(TraceLines(f.err)), rounds);
  RunResult k = RunCommand({kEvshim, "trace", "-e", "kqueue1,kqueue", "--", KqScenarios("openbsd"), "errors"}, 30);
  ASSERT_EQ(k.status, 0) << k.err;
  EXPECT_TRACE(Normalize(TraceLines(k.err)), "[pid P1] kqueue() = 3 <T>\n");
}

TEST(TraceKqueueJson, KeventLinesMatchTheSchema) {
  for (const std::string p : {"freebsd", "openbsd", "dragonfly"}) {
    if (!HaveKqScenarios(p)) continue;
    for (const std::string scenario : {"pipe_read", "errors", "timeout", "kqueue_flags", "signal_count"}) {
      if (p == "dragonfly" && scenario == "kqueue_flags") continue;  // no kqueue1: no calls
      std::string path = TempPath("kqjson");
      RunResult r = RunCommand({kEvshim, "trace", "--json", "-o", path, "--", KqScenarios(p), scenario}, 30);
      ASSERT_EQ(r.status, 0) << p << " " << scenario << r.err;
      const std::string text = ReadAll(path);
      EXPECT_GE(Lines(text).size(), 1u) << p << " " << scenario;
      RunResult check = RunCommand({"python3", kChecker, kSchema, path}, 30);
      EXPECT_EQ(check.status, 0) << p << " " << scenario << ": " << check.out << check.err << text;
      EXPECT_NE(text.find("\"personality\":\"" + p + "\""), std::string::npos) << text;
      unlink(path.c_str());
    }
  }
  // The decoded view of an EV_ERROR record, and a kevent that failed.
  std::string path = TempPath("kqjson");
  RunResult r = RunCommand({kEvshim, "trace", "--json", "-e", "kevent", "-o", path, "--", KqScenarios("openbsd"),
                            "errors"},
                           30);
  ASSERT_EQ(r.status, 0) << r.err;
  std::vector<std::string> lines = Lines(ReadAll(path));
  ASSERT_EQ(lines.size(), 6u) << ReadAll(path);
  // The kqueue's number: 3 supervised; after the engine's own in fast mode.
  const std::string kq =
      std::regex_replace(lines[0], std::regex(".*\"name\":\"kq\",\"value\":\"(\\d+)\".*"), "$1");
  if (!FastMode()) {
    EXPECT_EQ(kq, "3");
  }
  EXPECT_NE(lines[0].find("\"syscall\":\"kevent\",\"nr\":1030,\"call\":\"kevent\",\"args\":[{\"name\":\"kq\","
                          "\"value\":\"" + kq + "\",\"output\":false},{\"name\":\"changelist\",\"value\":\"[{ident=99, "
                          "EVFILT_USER, EV_DELETE, fflags=0, data=0, udata=0x7}]\",\"output\":false},"
                          "{\"name\":\"nchanges\",\"value\":\"1\",\"output\":false},{\"name\":\"eventlist\","
                          "\"value\":\"[{ident=99, EVFILT_USER, EV_ERROR, fflags=0, data=ENOENT, udata=0x7}]\","
                          "\"output\":true},{\"name\":\"nevents\",\"value\":\"2\",\"output\":false},"
                          "{\"name\":\"timeout\",\"value\":\"{0.000000000}\",\"output\":false}]"),
            std::string::npos)
      << lines[0];
  EXPECT_NE(lines[0].find("\"result\":1,\"errno\":null"), std::string::npos) << lines[0];
  EXPECT_NE(lines[1].find("\"result\":-1,\"errno\":\"ENOENT\",\"result_text\":\"-1 ENOENT (No such file or "
                          "directory)\",\"failed\":true,\"api_errno\":\"ENOENT\""),
            std::string::npos)
      << lines[1];
  // The checker rejects a kevent line whose argument is malformed.
  std::string bad = path + ".bad";
  std::ofstream(bad) << std::regex_replace(lines[0], std::regex("\"output\":true"), "\"output\":\"yes\"") << "\n";
  EXPECT_EQ(RunCommand({"python3", kChecker, kSchema, bad}, 30).status, 1);
  unlink(bad.c_str());
  unlink(path.c_str());
}

// Tracing observes only: kqueue scenarios that check results pass under it.
class TraceKqueueScenario : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};
TEST_P(TraceKqueueScenario, PassesUnderTrace) {
  auto [personality, scenario] = GetParam();
  if (!HaveKqScenarios(personality)) GTEST_SKIP() << "no testbin for " << personality;
  RunResult r = RunCommand({kEvshim, "trace", "-o", "/dev/null", "--", KqScenarios(personality), scenario}, 30);
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
}
INSTANTIATE_TEST_SUITE_P(Trace, TraceKqueueScenario,
                         ::testing::Combine(::testing::Values("freebsd", "openbsd", "dragonfly"),
                                            ::testing::Values("user_pollable", "timer", "eintr", "errors",
                                                              "signal_count", "proc_exit", "vnode_file",
                                                              "trace_fields")),
                         [](const auto& p) { return std::string(std::get<0>(p.param)) + "_" + std::get<1>(p.param); });

TEST(TraceFromRun, TraceOptionOfRun) {
  RunResult r = RunCommand({kEvshim, "run", "--trace", "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_EQ(Lines(TraceLines(r.err)).size(), 16u) << r.err;
  std::string path = TempPath("run");
  RunResult f = RunCommand({kEvshim, "run", "--trace=" + path, "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  ASSERT_EQ(f.status, 0) << f.err;
  EXPECT_EQ(Normalize(TraceLines(ReadAll(path))), Normalize(TraceLines(r.err)));
  unlink(path.c_str());
  // Without the option, nothing is traced.
  RunResult plain = RunCommand({kEvshim, "run", "--", kTraceProg, "forkexec"}, 30, kSharesPortAcrossExec);
  EXPECT_EQ(TraceLines(plain.err), "");
}

TEST(TraceFromPreload, EvshimTraceEnvironmentVariable) {
  std::string path = TempPath("preload");
  RunResult f = RunCommand({kTraceProg, "forkexec"}, 30, {"LD_PRELOAD=" + kPreload, "EVSHIM_TRACE=" + path});
  ASSERT_EQ(f.status, 0) << f.err;
  // The supervisor outlives the program by a moment: wait for its last line.
  std::string text;
  for (int i = 0; i < 50; ++i) {
    text = TraceLines(ReadAll(path));
    if (Lines(text).size() >= 16) break;
    usleep(100 * 1000);
  }
  EXPECT_EQ(Lines(text).size(), 16u) << text;
  EXPECT_NE(text.find("port_sendn([3, 99], [0, EBADF], 2, 5, 0x55) = 1"), std::string::npos) << text;
  unlink(path.c_str());
  RunResult e = RunCommand({kDemo}, 30, {"LD_PRELOAD=" + kPreload, "EVSHIM_TRACE=1"});
  ASSERT_EQ(e.status, 0) << e.err;
  EXPECT_NE(e.err.find("] port_create() = 3 <"), std::string::npos) << e.err;
  RunResult off = RunCommand({kDemo}, 30, {"LD_PRELOAD=" + kPreload});
  EXPECT_EQ(TraceLines(off.err), "");
}

// Tracing implies the supervised mode in preload-only mode too (as `evshim
// trace` does; docs/trace.md): the preload sets EVSHIM_SUPERVISED=1 when it
// starts a tracing supervisor, and leaves the caller's value otherwise.
TEST(TraceFromPreload, TracingRunsSupervised) {
  const std::string show = "echo \"[${EVSHIM_SUPERVISED-unset}]\"";
  RunResult traced = RunCommand({"env", "-u", "EVSHIM_SUPERVISED", "LD_PRELOAD=" + kPreload,
                                 "EVSHIM_TRACE=/dev/null", "sh", "-c", show}, 30);
  ASSERT_EQ(traced.status, 0) << traced.err;
  EXPECT_EQ(traced.out, "[1]\n");
  RunResult plain = RunCommand({"env", "-u", "EVSHIM_SUPERVISED", "-u", "EVSHIM_TRACE",
                                "LD_PRELOAD=" + kPreload, "sh", "-c", show}, 30);
  ASSERT_EQ(plain.status, 0) << plain.err;
  EXPECT_EQ(plain.out, "[unset]\n");
}

TEST(TraceCli, HelpVersionAndErrors) {
  RunResult help = RunCommand({kEvshim, "--help"});
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("evshim trace"), std::string::npos);
  RunResult run_help = RunCommand({kEvshim, "run", "--help"});
  EXPECT_EQ(run_help.status, 0);
  EXPECT_NE(run_help.out.find("--trace[=FILE]"), std::string::npos);
  RunResult trace_help = RunCommand({kEvshim, "trace", "--help"});
  EXPECT_EQ(trace_help.status, 0);
  EXPECT_NE(trace_help.out.find("--sites"), std::string::npos);
  EXPECT_NE(trace_help.out.find("--json"), std::string::npos);
  RunResult version = RunCommand({kEvshim, "--version"});
  EXPECT_EQ(version.status, 0);
  EXPECT_EQ(version.out.rfind("evshim ", 0), 0u);

  auto usage_error = [](std::vector<std::string> argv, const std::string& says) {
    RunResult r = RunCommand(argv);
    EXPECT_EQ(r.status, 2) << r.err;
    EXPECT_EQ(r.err.rfind("evshim: ", 0), 0u) << r.err;
    EXPECT_NE(r.err.find(says), std::string::npos) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 2u) << r.err;  // the error and "Try 'evshim --help'."
  };
  usage_error({kEvshim, "trace", "--bogus", "--", kDemo}, "unknown option '--bogus'");
  usage_error({kEvshim, "--bogus"}, "unknown option '--bogus'");
  usage_error({kEvshim, "frob"}, "unknown command 'frob'");
  usage_error({kEvshim, "trace"}, "no program given");
  usage_error({kEvshim, "trace", "-e", "port_frob", "--", kDemo}, "unknown call 'port_frob'");
  usage_error({kEvshim, "trace", "-c", "--json", "--", kDemo}, "cannot be combined");
  usage_error({kEvshim, "trace", "-o"}, "-o needs a file name");

  RunResult missing = RunCommand({kEvshim, "trace", "--", "/nonexistent/prog"});
  EXPECT_EQ(missing.status, 127);
  EXPECT_EQ(Lines(missing.err).size(), 1u) << missing.err;
  std::string noexec = TempPath("noexec");
  std::ofstream(noexec) << "x";
  chmod(noexec.c_str(), 0644);
  EXPECT_EQ(RunCommand({kEvshim, "trace", "--", noexec}).status, 126);
  unlink(noexec.c_str());
  RunResult unwritable = RunCommand({kEvshim, "trace", "-o", "/nonexistent/dir/t", "--", kDemo});
  EXPECT_EQ(unwritable.status, 2);
  EXPECT_NE(unwritable.err.find("/nonexistent/dir/t"), std::string::npos);
}

// --- the data models: one program, built for x86_64 and for i386 ---
//
// trace_prog layouts and kq_scenarios trace_fields put their own value in
// every field the trace decodes, with pointer-wide cookies (0xc0ffee00..01 on
// i386, 0xc0ffee0000000001 on x86_64). The i386 builds run in the VM
// (vm-tests.txt: EVSHIM_TESTBIN_DIR=build32/testbins, EVSHIM_EXPECT_ILP32=1);
// each test holds both goldens and checks the one of the programs' model.

// Traces `program` and compares the golden of its data model.
void ExpectModelGolden(const std::vector<std::string>& program, const std::string& lp64, const std::string& ilp32) {
  ExpectDataModelAsConfigured();
  std::vector<std::string> argv = {kEvshim, "trace", "--"};
  argv.insert(argv.end(), program.begin(), program.end());
  RunResult r = RunCommand(argv, 30);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_TRACE(Normalize(TraceLines(r.err)), Ilp32Testbins() ? ilp32 : lp64);
}

// port_event_t (16 bytes on i386, 24 on x86_64; port_event32_t, port.c:1433-1435
// and port_copy_event32, port.c:1647),
// port_notify_t inside the sigevent, itimerspec and timespec with i386's
// 32-bit time_t and long: each field read at its model's offset and width.
TEST(TraceLayouts, IllumosStructsAtTheModelsOffsets) {
  const std::string lp64 =
      "[pid P1] port_create() = 3 <T>\n"
      "[pid P1] port_send(3, 19088743, 0xc0ffee0000000001) = 0 <T>\n"
      "[pid P1] port_associate(3, PORT_SOURCE_FD, 5, POLLOUT, 0xc0ffee0000000002) = 0 <T>\n"
      "[pid P1] port_getn(3, [{source=PORT_SOURCE_USER, events=19088743, object=0, user=0xc0ffee0000000001}, "
      "{source=PORT_SOURCE_FD, events=POLLOUT, object=5, user=0xc0ffee0000000002}], 4, 2, {3.250000000}) = 0 "
      "(nget=2) <T>\n"
      "[pid P1] timer_create(CLOCK_MONOTONIC, {sigev_notify=SIGEV_PORT, portnfy_port=3, "
      "portnfy_user=0xc0ffee0000000003}, [0]) = 0 <T>\n"
      "[pid P1] timer_settime(0, 0, {it_interval={7.000000008}, it_value={1000.000000009}}, "
      "{it_interval={0.000000000}, it_value={0.000000000}}) = 0 <T>\n"
      "[pid P1] timer_delete(0) = 0 <T>\n"
      "[pid P1] port_getn(3, <unfinished ...>\n"
      "[pid P1] <... port_getn resumed>0xADDR64, 4, 1, {0.001000000}) = -1 ETIME (Timer expired) (nget=0) <T>\n";
  const std::string ilp32 =
      "[pid P1] port_create() = 3 <T>\n"
      "[pid P1] port_send(3, 19088743, 0xc0ffee01) = 0 <T>\n"
      "[pid P1] port_associate(3, PORT_SOURCE_FD, 5, POLLOUT, 0xc0ffee02) = 0 <T>\n"
      "[pid P1] port_getn(3, [{source=PORT_SOURCE_USER, events=19088743, object=0, user=0xc0ffee01}, "
      "{source=PORT_SOURCE_FD, events=POLLOUT, object=5, user=0xc0ffee02}], 4, 2, {3.250000000}) = 0 "
      "(nget=2) <T>\n"
      "[pid P1] timer_create(CLOCK_MONOTONIC, {sigev_notify=SIGEV_PORT, portnfy_port=3, "
      "portnfy_user=0xc0ffee03}, [0]) = 0 <T>\n"
      "[pid P1] timer_settime(0, 0, {it_interval={7.000000008}, it_value={1000.000000009}}, "
      "{it_interval={0.000000000}, it_value={0.000000000}}) = 0 <T>\n"
      "[pid P1] timer_delete(0) = 0 <T>\n"
      "[pid P1] port_getn(3, <unfinished ...>\n"
      "[pid P1] <... port_getn resumed>0xADDR32, 4, 1, {0.001000000}) = -1 ETIME (Timer expired) (nget=0) <T>\n";
  ExpectModelGolden({kTraceProg, "layouts"}, lp64, ilp32);
}

// The JSON view shows what the text line leaves implicit: the data model, the
// number the call came in on (portfs is 182 on x86_64, 1000 on i386, where
// 182 is chown), 32-bit registers, and port_getn's ETIME travelling as bit 30
// of the count on i386 (docs/abi.md "Two results") but in the upper half of
// the 64-bit value on x86_64.
TEST(TraceLayouts, IllumosJsonNamesTheModelAndItsEncodings) {
  ExpectDataModelAsConfigured();
  std::string path = TempPath("layouts-json");
  RunResult r = RunCommand({kEvshim, "trace", "--json", "-e", "port_getn,port_send", "-o", path, "--", kTraceProg,
                            "layouts"},
                           30);
  ASSERT_EQ(r.status, 0) << r.err;
  const std::vector<std::string> lines = Lines(ReadAll(path));
  ASSERT_EQ(lines.size(), 3u) << ReadAll(path);
  const bool ilp32 = Ilp32Testbins();
  for (const std::string& l : lines) {
    EXPECT_NE(l.find(ilp32 ? "\"data_model\":\"ilp32\"" : "\"data_model\":\"lp64\""), std::string::npos) << l;
    EXPECT_NE(l.find(ilp32 ? "\"nr\":1000," : "\"nr\":182,"), std::string::npos) << l;
  }
  // port_send(port, 0x1234567, cookie): the registers as received.
  // On x86_64 the library's call number fills the upper half of the first
  // (docs/abi.md "Call numbers"); i386 registers have no upper half.
  // In fast mode the library hands the engine its arguments before
  // numbering the call: the opcode alone, the port as numbered there (the
  // engine's own descriptors come first).
  if (FastMode()) {
    EXPECT_TRUE(std::regex_search(
        lines[0], std::regex(ilp32 ? "\"raw_args\":\\[\"0x3\",\"0x[0-9a-f]+\",\"0x1234567\",\"0xc0ffee01\",\"0x0\",\"0x0\"\\]"
                                   : "\"raw_args\":\\[\"0x3\",\"0x[0-9a-f]+\",\"0x1234567\",\"0xc0ffee0000000001\",\"0x0\",\"0x0\"\\]")))
        << lines[0];
  } else {
    EXPECT_NE(lines[0].find(ilp32 ? "\"raw_args\":[\"0x3\",\"0x3\",\"0x1234567\",\"0xc0ffee01\",\"0x0\",\"0x0\"]"
                                  : "00000003\",\"0x3\",\"0x1234567\",\"0xc0ffee0000000001\",\"0x0\",\"0x0\"]"),
              std::string::npos)
        << lines[0];
  }
  EXPECT_NE(lines[2].find(ilp32 ? "\"result\":1073741824,\"errno\":null" : "\"result\":266287972352,\"errno\":null"),
            std::string::npos)
      << lines[2];
  EXPECT_NE(lines[2].find("\"result_text\":\"-1 ETIME (Timer expired) (nget=0)\",\"failed\":true,"
                          "\"api_errno\":\"ETIME\""),
            std::string::npos)
      << lines[2];
  unlink(path.c_str());
}

// struct kevent: FreeBSD's is 56 bytes on i386 (4-byte ident and udata
// around a 64-bit data, then ext[4]) and 64 on x86_64; its compat
// freebsd11_kevent record 20 and 32 (intptr_t data); the timeout's time_t is
// 32 bits on i386 FreeBSD (docs/rules-bsd.md §2, FreeBSD kevent(2)).
TEST(TraceLayouts, FreebsdKeventAtTheModelsOffsets) {
  const std::string lp64 =
      "[pid P1] kqueue() = 3 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, EV_ADD|EV_CLEAR, fflags=NOTE_FFCOPY|0x21, data=4886718345, "
      "udata=0xc0ffee0000000001, ext=[0, 0, 0x33, 0xc0ffee00000000aa]}], 1, NULL, 0, NULL) = 0 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, 0, fflags=NOTE_TRIGGER, data=0, udata=0xc0ffee0000000001}], "
      "1, [{ident=124076833, EVFILT_USER, EV_CLEAR, fflags=0x21, data=0, udata=0xc0ffee0000000001, "
      "ext=[0, 0, 0x33, 0xc0ffee00000000aa]}], 1, {3.250000000}) = 1 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, EV_KEEPUDATA, fflags=NOTE_TRIGGER, data=0, udata=NULL}], "
      "1, [{ident=124076833, EVFILT_USER, EV_CLEAR, fflags=0x21, data=0, udata=0xc0ffee0000000001, "
      "ext=[0, 0, 0x33, 0xc0ffee00000000aa]}], 1, {3.250000000}) = 1 <T>\n"
      "[pid P1] freebsd11_kevent(3, [{ident=124076834, EVFILT_USER, EV_ADD|EV_ONESHOT, fflags=NOTE_TRIGGER, data=-5, "
      "udata=0xc0ffee0000000003}], 1, [{ident=124076834, EVFILT_USER, EV_ONESHOT, fflags=0, data=-5, "
      "udata=0xc0ffee0000000003}], 1, {3.250000000}) = 1 <T>\n";
  const std::string ilp32 =
      "[pid P1] kqueue() = 3 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, EV_ADD|EV_CLEAR, fflags=NOTE_FFCOPY|0x21, data=4886718345, "
      "udata=0xc0ffee01, ext=[0, 0, 0x33, 0xc0ffee00000000aa]}], 1, NULL, 0, NULL) = 0 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, 0, fflags=NOTE_TRIGGER, data=0, udata=0xc0ffee01}], "
      "1, [{ident=124076833, EVFILT_USER, EV_CLEAR, fflags=0x21, data=0, udata=0xc0ffee01, "
      "ext=[0, 0, 0x33, 0xc0ffee00000000aa]}], 1, {3.250000000}) = 1 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, EV_KEEPUDATA, fflags=NOTE_TRIGGER, data=0, udata=NULL}], "
      "1, [{ident=124076833, EVFILT_USER, EV_CLEAR, fflags=0x21, data=0, udata=0xc0ffee01, "
      "ext=[0, 0, 0x33, 0xc0ffee00000000aa]}], 1, {3.250000000}) = 1 <T>\n"
      "[pid P1] freebsd11_kevent(3, [{ident=124076834, EVFILT_USER, EV_ADD|EV_ONESHOT, fflags=NOTE_TRIGGER, data=-5, "
      "udata=0xc0ffee03}], 1, [{ident=124076834, EVFILT_USER, EV_ONESHOT, fflags=0, data=-5, "
      "udata=0xc0ffee03}], 1, {3.250000000}) = 1 <T>\n";
  ExpectModelGolden({KqScenarios("freebsd"), "trace_fields"}, lp64, ilp32);
}

// OpenBSD's struct kevent: 24 bytes on i386 (4-byte ident and udata, no
// ext), 32 on x86_64; its timespec keeps a 64-bit time_t on i386 (12 bytes,
// 4-aligned).
TEST(TraceLayouts, OpenbsdKeventAtTheModelsOffsets) {
  const std::string lp64 =
      "[pid P1] kqueue() = 3 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, EV_ADD|EV_CLEAR, fflags=NOTE_FFCOPY|0x21, data=4886718345, "
      "udata=0xc0ffee0000000001}], 1, NULL, 0, NULL) = 0 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, 0, fflags=NOTE_TRIGGER, data=0, udata=0xc0ffee0000000001}], "
      "1, [{ident=124076833, EVFILT_USER, EV_ADD|EV_CLEAR, fflags=0x21, data=0, udata=0xc0ffee0000000001}], 1, "
      "{3.250000000}) = 1 <T>\n";
  const std::string ilp32 =
      "[pid P1] kqueue() = 3 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, EV_ADD|EV_CLEAR, fflags=NOTE_FFCOPY|0x21, data=4886718345, "
      "udata=0xc0ffee01}], 1, NULL, 0, NULL) = 0 <T>\n"
      "[pid P1] kevent(3, [{ident=124076833, EVFILT_USER, 0, fflags=NOTE_TRIGGER, data=0, udata=0xc0ffee01}], "
      "1, [{ident=124076833, EVFILT_USER, EV_ADD|EV_CLEAR, fflags=0x21, data=0, udata=0xc0ffee01}], 1, "
      "{3.250000000}) = 1 <T>\n";
  ExpectModelGolden({KqScenarios("openbsd"), "trace_fields"}, lp64, ilp32);
}

// --- a seccomp policy around evshim (as a restrictive container has) ---

// Runs `argv` under an outer seccomp filter that answers system call `nr`
// with `err`, and reports how it ended.
RunResult RunUnderPolicy(int nr, int err, const std::vector<std::string>& argv) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) std::abort();
  pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, static_cast<uint32_t>(nr), 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (static_cast<uint32_t>(err) & SECCOMP_RET_DATA)),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof f / sizeof f[0]), f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) != 0) {
      _exit(99);
    }
    RunResult r = RunCommand(argv, 20);
    std::string report = std::to_string(r.status) + "\n" + r.err;
    (void)!write(pipe_fds[1], report.data(), report.size());
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string report;
  char buf[4096];
  ssize_t n;
  while ((n = read(pipe_fds[0], buf, sizeof buf)) > 0) report.append(buf, static_cast<size_t>(n));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  RunResult r;
  size_t nl = report.find('\n');
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || nl == std::string::npos) return r;
  r.status = std::stoi(report.substr(0, nl));
  r.timed_out = r.status == -1;
  r.err = report.substr(nl + 1);
  return r;
}

TEST(NoSeccompNotification, SeccompForbiddenIsOneLine) {
  for (int err : {EPERM, EINVAL}) {
    RunResult r = RunUnderPolicy(SYS_seccomp, err, {kEvshim, "trace", "--", kDemo});
    EXPECT_FALSE(r.timed_out);
    EXPECT_EQ(r.status, 1) << r.err;
    ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_NE(r.err.find("evshim: cannot trap foreign system calls: "), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(err == EPERM ? "(EPERM)" : "(EINVAL)"), std::string::npos) << r.err;
  }
}

TEST(NoSeccompNotification, ForeignNumberAnsweredByAnotherPolicyIsOneLine) {
  RunResult r = RunUnderPolicy(182, ENOSYS, {kEvshim, "run", "--", kDemo});
  EXPECT_FALSE(r.timed_out);
  EXPECT_EQ(r.status, 1) << r.err;
  ASSERT_EQ(Lines(r.err).size(), 1u) << r.err;
  EXPECT_NE(r.err.find("system call 182 (illumos portfs) is answered by another seccomp policy (ENOSYS)"),
            std::string::npos)
      << r.err;
  // The control: the same helper with a harmless policy runs the demo.
  RunResult ok = RunUnderPolicy(9999, ENOSYS, {kEvshim, "run", "--", kDemo});
  EXPECT_EQ(ok.status, 0) << ok.err;
}

}  // namespace
