// The `evshim` command: the launcher is the supervisor of the program's tree.
#include <fcntl.h>
#include <limits.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "abi/syscall_table.h"
#include "shim/cli/launch_preload.h"
#include "shim/supervisor/supervisor.h"
#include "shim/trace/channel.h"
#include "shim/trace/record.h"
#include "shim/trace/tracer.h"

#ifndef EVSHIM_VERSION
#define EVSHIM_VERSION "unknown"
#endif
#ifndef EVSHIM_SIGNALS_PRELOAD
#define EVSHIM_SIGNALS_PRELOAD 0
#endif
#ifndef EVSHIM_INSTALLED_BINDIR
#define EVSHIM_INSTALLED_BINDIR "/usr/local/bin"
#endif
#ifndef EVSHIM_INSTALLED_LIBDIR
#define EVSHIM_INSTALLED_LIBDIR "/usr/local/lib"
#endif
#ifndef EVSHIM_INSTALLED_I386_LIBDIR
#define EVSHIM_INSTALLED_I386_LIBDIR "/usr/local/lib32"
#endif

namespace {

using evshim::shim::Supervisor;
using evshim::shim::SupervisorOptions;
namespace trace = evshim::shim::trace;

constexpr const char* kUsage =
    "usage: evshim run [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "       evshim trace [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "       evshim --support-matrix | --help | --version\n"
    "\n"
    "Runs an illumos event-port or BSD kqueue program on Linux: its foreign\n"
    "system calls are served by evshim with the foreign kernel's semantics.\n"
    "`evshim trace` also prints each of them, decoded (see `evshim trace --help`).\n"
    "Preload-only mode (LD_PRELOAD=libevshim-preload.so) traces with\n"
    "EVSHIM_TRACE=FILE, or EVSHIM_TRACE=1 for standard error.\n"
    "\n"
    "Exit status: the program's, 128+N if it was killed by signal N, 127 if it\n"
    "was not found, 126 if it could not be executed, 2 for a usage error, 1 if\n"
    "the foreign system calls cannot be trapped here (no seccomp user notification).\n";

constexpr const char* kRunUsage =
    "usage: evshim run [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM and every process it starts under evshim.\n"
    "\n"
    "options:\n"
    "  --max-port-events N  event slots per port (illumos process.max-port-events; default 65536)\n"
    "  --max-ports N        ports per process tree (illumos project.max-port-ids; default 8192)\n"
    "  --max-kqueues N      kqueues per process tree (default 65536); more: ENOMEM\n"
    "  --max-knotes N       knotes per process tree (default 1048576); more: ENOMEM\n"
    "  --max-waits N        threads waiting in port_get/kevent at once in the tree; more\n"
    "                       fail with ENOMEM (default 65536)\n"
    "  --no-sync-wakeup     do not use SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (for benchmarks)\n"
    "  --supervised         every foreign call goes to the supervisor, none is served inside\n"
    "                       the program (sets EVSHIM_SUPERVISED=1 in its environment)\n"
    "  --trace[=FILE]       trace the foreign system calls to FILE (default: standard error);\n"
    "                       `evshim trace` has more options\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: the program's, 128+N if it was killed by signal N, 127 if it\n"
    "was not found, 126 if it could not be executed, 2 for a usage error, 1 if\n"
    "the foreign system calls cannot be trapped here (no seccomp user notification).\n";

constexpr const char* kTraceUsage =
    "usage: evshim trace [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "\n"
    "Runs PROGRAM like `evshim run` and prints one line per foreign system call\n"
    "of every process of its tree: the call decoded with symbolic arguments, its\n"
    "result, the structures it returned and the time it took. A call that blocks\n"
    "prints `<unfinished ...>` and later `<... NAME resumed>`. See docs/trace.md.\n"
    "\n"
    "options:\n"
    "  -o FILE              write the trace to FILE (default: standard error)\n"
    "  -e NAME[,NAME...]    only these calls (port_getn, port_associate, portfs, kevent, ...)\n"
    "  --json               one JSON object per completed call (docs/trace-schema.json)\n"
    "  -c                   only a summary table at exit: calls, errors, total and average time\n"
    "  -C                   the lines and the summary\n"
    "  --sites              show where each call came from: the syscall instruction\n"
    "                       (object+offset, disassembled) and the calling object+offset\n"
    "  --max-port-events N, --max-ports N, --max-waits N, --no-sync-wakeup   as for `evshim run`\n"
    "  --supervised         run supervised (as `evshim run --supervised`); by default the calls\n"
    "                       served inside the program (the fast path) are traced too\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: as `evshim run`.\n";

[[noreturn]] void Usage(const std::string& msg) {
  std::fprintf(stderr, "evshim: %s\nTry 'evshim --help'.\n", msg.c_str());
  std::exit(2);
}

bool ParseCount(const char* s, uint32_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v == 0 || v > 0x3fffffffUL) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

enum class Command : uint8_t { kRun, kTrace, kServe };

// Tracing as asked on the command line (or by EVSHIM_TRACE through --serve).
struct TraceRequest {
  bool on = false;
  std::string output;  // "" = standard error
  trace::TraceOptions options;
};

// How the launched program's foreign calls are served: by default the foreign
// libraries may serve them inside the process (the fast path, issue 15);
// supervised, every call is a user notification to us. Tracing works in
// both: the engines report their calls over the trace channel.
struct LaunchMode {
  bool supervised = false;
};

// Parses the options of `command`; returns the index of the program (or argc).
int ParseOptions(int argc, char** argv, int i, Command command, SupervisorOptions* o, TraceRequest* t,
                 LaunchMode* mode) {
  const bool tracing = command == Command::kTrace;
  bool summary_only = false, summary_and_lines = false;
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") {
      ++i;
      break;
    }
    if (a == "-h" || a == "--help") {
      std::fputs(command == Command::kTrace ? kTraceUsage : kRunUsage, stdout);
      std::exit(0);
    }
    if (a == "--max-port-events" || a == "--max-ports") {
      if (i + 1 >= argc) Usage(std::string(a) + " needs a number");
      uint32_t* dst = a == "--max-ports" ? &o->port_limits.max_ports
                                         : &o->port_limits.max_events_per_port;
      if (!ParseCount(argv[++i], dst)) Usage("bad number for " + std::string(a));
      continue;
    }
    if (a == "--max-kqueues" || a == "--max-knotes") {
      uint32_t n = 0;
      if (i + 1 >= argc || !ParseCount(argv[++i], &n)) Usage(std::string(a) + " needs a number");
      (a == "--max-kqueues" ? o->kqueue_limits.max_kqueues : o->kqueue_limits.max_knotes) = n;
      continue;
    }
    if (a == "--max-waits") {
      uint32_t n = 0;
      if (i + 1 >= argc || !ParseCount(argv[++i], &n)) Usage("--max-waits needs a number");
      o->max_parked_waits = n;
      continue;
    }
    if (a == "--no-sync-wakeup") {
      o->sync_wakeup = false;
      continue;
    }
    if (command != Command::kServe && a == "--supervised") {
      mode->supervised = true;
      continue;
    }
    if (a == "-v" || a == "--verbose") {
      o->verbose = true;
      continue;
    }
    if (command != Command::kTrace && (a == "--trace" || a.rfind("--trace=", 0) == 0)) {
      t->on = true;
      t->output = a.size() > 8 ? std::string(a.substr(8)) : "";
      if (command == Command::kServe && t->output == "1") t->output = "";  // EVSHIM_TRACE=1
      continue;
    }
    if (tracing && (a == "-o" || a.rfind("--output=", 0) == 0)) {
      if (a == "-o" && i + 1 >= argc) Usage("-o needs a file name");
      t->output = a == "-o" ? argv[++i] : std::string(a.substr(9));
      if (t->output.empty()) Usage("-o needs a file name");
      continue;
    }
    if (tracing && a == "-e") {
      if (i + 1 >= argc) Usage("-e needs a call name");
      std::string_view list = argv[++i];
      while (!list.empty()) {
        size_t comma = list.find(',');
        std::string name(list.substr(0, comma));
        if (!trace::KnownCallName(name)) Usage("-e: unknown call '" + name + "'");
        t->options.only.insert(name);
        list = comma == std::string_view::npos ? std::string_view() : list.substr(comma + 1);
      }
      continue;
    }
    if (tracing && a == "--json") {
      t->options.json = true;
      continue;
    }
    if (tracing && (a == "-c" || a == "-C")) {
      (a == "-c" ? summary_only : summary_and_lines) = true;
      continue;
    }
    if (tracing && a == "--sites") {
      t->options.sites = true;
      continue;
    }
    if (!a.empty() && a[0] == '-') Usage("unknown option '" + std::string(a) + "'");
    break;
  }
  if (tracing) {
    t->on = true;
    if (summary_only || summary_and_lines) {
      if (t->options.json) Usage("-c/-C cannot be combined with --json");
      t->options.summary = true;
      t->options.lines = summary_and_lines;
    }
  }
  return i;
}

// An open trace: the output, the site finder, the tracer, and the channel
// the in-process engines report to (docs/trace.md "Fast mode").
struct OpenTrace {
  std::FILE* out = nullptr;
  std::unique_ptr<trace::SiteFinder> sites;
  std::unique_ptr<trace::Tracer> tracer;
  std::mutex mu;  // the tracer's: the supervisor and the channel's reader
  std::unique_ptr<trace::LockedObserver> locked;
  std::unique_ptr<trace::FastPathChannel> channel;
  evshim::abi::trace::CallObserver* observer() {
    if (locked) return locked.get();
    return tracer.get();
  }
  ~OpenTrace() {
    if (channel) channel->Stop();  // every record first: the tree is gone
    channel.reset();
    if (tracer) tracer->Finish();
    tracer.reset();
    if (out != nullptr && out != stderr) std::fclose(out);
  }
};

// Opens the output (and, with `fast_path`, the engines' channel); false
// (with errno) if it cannot be written.
bool StartTrace(const TraceRequest& t, OpenTrace* open, bool fast_path) {
  if (!t.on) return true;
  open->out = stderr;
  if (!t.output.empty()) {
    open->out = std::fopen(t.output.c_str(), "we");
    if (open->out == nullptr) return false;
    setvbuf(open->out, nullptr, _IOLBF, 0);
  }
  trace::Tracer::SiteSource sites;
  if (t.options.sites) {
    open->sites = std::make_unique<trace::SiteFinder>();
    sites = [finder = open->sites.get()](const evshim::abi::trace::CallStart& c) {
      return c.memory != nullptr ? finder->Find(c.caller.pid, c.caller.tid, c.model, c.ip, *c.memory)
                                 : std::nullopt;
    };
  }
  std::FILE* f = open->out;
  open->tracer = std::make_unique<trace::Tracer>(
      t.options, [f](std::string_view s) { std::fwrite(s.data(), 1, s.size(), f); }, &trace::MonotonicNs,
      std::move(sites));
  if (fast_path) {
    open->channel = trace::FastPathChannel::Open(*open->tracer, open->mu, t.options.sites);
    if (!open->channel) {
      std::fprintf(stderr, "evshim: cannot open the trace channel (%s): calls served inside the program "
                           "are not traced\n", std::strerror(errno));
    } else {
      open->locked = std::make_unique<trace::LockedObserver>(*open->tracer, open->mu, open->channel.get());
    }
  }
  return true;
}

bool SendFd(int sock, int fd) {
  char dummy = 'L';
  iovec iov{&dummy, 1};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof ctrl;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1;
}

int RecvFd(int sock) {
  char dummy;
  iovec iov{&dummy, 1};
  alignas(cmsghdr) char ctrl[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctrl;
  msg.msg_controllen = sizeof ctrl;
  if (recvmsg(sock, &msg, MSG_CMSG_CLOEXEC) != 1) return -1;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  if (c == nullptr || c->cmsg_type != SCM_RIGHTS) return -1;
  int fd;
  std::memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

// The probe: before exec, the child issues every foreign number once with
// these arguments and the launcher answers kProbeAnswer. A number that does
// not come back with it is answered by someone else (an outer seccomp policy
// returning ENOSYS, say): said in one line instead of failing later.
constexpr uint64_t kProbeArg0 = 0x65767368696d2d70ULL;  // "evshim-p"
constexpr uint64_t kProbeArg1 = 0x726f62652d2d2d2dULL;
constexpr long kProbeAnswer = 0x7e5;
constexpr int kProbeFailed = -1;  // written to the exec pipe: already explained

const char* FilterFailure(int err) {
  switch (err) {
    case EINVAL:
      return "the kernel refused a seccomp user-notification filter (EINVAL): it needs Linux >= 5.9 "
             "with SECCOMP_FILTER_FLAG_NEW_LISTENER";
    case EPERM:
    case EACCES:
      return "installing a seccomp filter is not permitted here (EPERM): a container or security "
             "policy blocks seccomp(); allow it (e.g. an unconfined seccomp profile)";
    case ENOSYS:
      return "this kernel has no seccomp (ENOSYS)";
    case EBUSY:
      return "another seccomp user-notification listener is already installed (EBUSY)";
    default:
      return nullptr;
  }
}

// In the child, after the filter is in place: every foreign number must reach us.
void ProbeOrExit(int exec_pipe) {
  for (const auto& e : evshim::abi::AllSyscalls()) {
    errno = 0;
    long r = syscall(e.nr_lp64, kProbeArg0, kProbeArg1, 0, 0, 0, 0);
    if (r != kProbeAnswer) {
      int err = errno;
      std::fprintf(stderr,
                   "evshim: system call %d (%s %s) is answered by another seccomp policy (%s) before "
                   "evshim sees it; run outside that policy or let it pass the call\n",
                   e.nr_lp64, std::string(evshim::abi::PersonalityName(e.personality)).c_str(),
                   std::string(e.name).c_str(), r == -1 ? strerrorname_np(err) : "unexpected value");
      int code = kProbeFailed;
      (void)!write(exec_pipe, &code, sizeof code);
      _exit(1);
    }
  }
}

// In the launcher: answers the child's probes until it execs (the pipe
// closes), fails to (an errno), or reports a failed probe. Returns what the
// pipe said: 0 (exec'd), an errno, or kProbeFailed.
int ServeProbes(int listener, int exec_pipe, pid_t child) {
  std::vector<std::byte> buf(sizeof(seccomp_notif) + 256);
  while (true) {
    pollfd fds[2] = {{exec_pipe, POLLIN, 0}, {listener, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      return EIO;
    }
    // The pipe first: once it is closed, notifications are the program's.
    if (fds[0].revents != 0) {
      int code = 0;
      ssize_t got = read(exec_pipe, &code, sizeof code);
      return got == sizeof code ? code : 0;
    }
    if (fds[1].revents & POLLIN) {
      auto* req = reinterpret_cast<seccomp_notif*>(buf.data());
      std::memset(buf.data(), 0, buf.size());
      if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) != 0) continue;
      seccomp_notif_resp resp{};
      resp.id = req->id;
      if (static_cast<pid_t>(req->pid) == child && req->data.args[0] == kProbeArg0 &&
          req->data.args[1] == kProbeArg1) {
        resp.val = kProbeAnswer;
      } else {
        resp.error = -ENOSYS;  // cannot happen before exec: only the child runs
      }
      ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
    } else if (fds[1].revents & (POLLHUP | POLLERR)) {
      fds[1].fd = -1;
    }
  }
}

// Fast mode: the foreign libraries' signal wrappers preloaded into the
// program (launch_preload.h; docs/design.md "A copy that survives a
// fault", The wrappers preloaded), when it takes them
// (shim/inproc/preload_target.h: a dynamic ELF image of this machine and
// class with the launcher's loader, or an i386 one with glibc's i386
// loader, and no sanitizer runtime, or a script whose interpreter is one):
// the build of its class, when that one is there (the i386 build:
// EVSHIM_SIGNALS_PRELOAD32, or the install's i386_libdir). The other build,
// when there is one, is saved for the program to pass on to its children
// of that class.
// Run in the child just before the exec.
void PreloadTheSignalWrappers(const char* program) {
  if (!EVSHIM_SIGNALS_PRELOAD) return;
  char exe[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return;
  exe[n] = '\0';
  const std::string own = evshim::cli::FindSignalsLibrary(exe, EVSHIM_INSTALLED_BINDIR, EVSHIM_INSTALLED_LIBDIR);
  const std::string i386 = evshim::cli::FindI386SignalsLibrary(std::getenv("EVSHIM_SIGNALS_PRELOAD32"), exe,
                                                              EVSHIM_INSTALLED_BINDIR, EVSHIM_INSTALLED_I386_LIBDIR);
  if (own.empty() && i386.empty()) return;
  const std::string image = evshim::cli::FindProgram(program, std::getenv("PATH"));
  const evshim_preload_libraries libraries = {own.c_str(), i386.c_str()};
  const char* passed = nullptr;
  const char* library = evshim_preload_library_for(
      &libraries, evshim::cli::PreloadClassOf(image, evshim::cli::ProgramInterpreter("/proc/self/exe")), &passed);
  if (library == nullptr) return;
  const evshim::cli::PreloadEnvironment e =
      evshim::cli::PreloadEnvironmentFor(std::getenv("LD_PRELOAD"), library, passed != nullptr ? passed : "");
  setenv(evshim::cli::kUserLdPreloadVariable, e.saved.c_str(), 1);
  setenv("LD_PRELOAD", e.ld_preload.c_str(), 1);
}

int Run(int argc, char** argv, int first, Command command) {
  SupervisorOptions opts;
  TraceRequest treq;
  LaunchMode mode;
  int prog = ParseOptions(argc, argv, first, command, &opts, &treq, &mode);
  if (prog >= argc) Usage("no program given");
  OpenTrace trace_out;
  if (!StartTrace(treq, &trace_out, /*fast_path=*/true)) {
    std::fprintf(stderr, "evshim: %s: %s\n", treq.output.c_str(), std::strerror(errno));
    return 2;
  }
  opts.observer = trace_out.observer();

  // Orphaned descendants are reparented to us, so we can reap them (on
  // kernels before 6.2-ish the listener reports POLLHUP only after reaping).
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  int sv[2], exec_pipe[2];
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0 || pipe2(exec_pipe, O_CLOEXEC) != 0) {
    std::perror("evshim: socketpair");
    return 1;
  }
  // Signals we serve through the supervisor's signalfd must be blocked before
  // fork so none is lost; the child unblocks them before exec.
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : {SIGCHLD, SIGTERM, SIGHUP, SIGINT, SIGQUIT}) sigaddset(&block, s);
  sigprocmask(SIG_BLOCK, &block, &old);
  std::fflush(nullptr);
  pid_t child = fork();
  if (child < 0) {
    std::perror("evshim: fork");
    return 1;
  }
  if (child == 0) {
    close(sv[0]);
    close(exec_pipe[0]);
    sigprocmask(SIG_SETMASK, &old, nullptr);
    int listener = evshim::shim::InstallFilter();
    if (listener < 0) {
      const char* why = FilterFailure(-listener);
      if (why != nullptr) {
        std::fprintf(stderr, "evshim: cannot trap foreign system calls: %s\n", why);
      } else {
        std::fprintf(stderr, "evshim: cannot install the seccomp user-notification filter: %s\n",
                     std::strerror(-listener));
      }
      _exit(1);
    }
    if (!SendFd(sv[1], listener)) _exit(1);
    close(listener);
    close(sv[1]);
    ProbeOrExit(exec_pipe[1]);
    // Not libevshim-preload.so: under the launcher it would have nothing
    // to do. EVSHIM_FILTER_INSTALLED tells one loaded anyway that the tree
    // already has its supervisor. EVSHIM_SUPERVISED is the mode switch: set
    // for --supervised, otherwise the caller's value stands. In fast mode
    // the signal wrappers are preloaded (PreloadTheSignalWrappers; the
    // library takes itself out of LD_PRELOAD before main, and passes itself
    // on to the children that take it).
    setenv("EVSHIM_FILTER_INSTALLED", "1", 1);
    if (mode.supervised) setenv("EVSHIM_SUPERVISED", "1", 1);
    const char* supervised = std::getenv("EVSHIM_SUPERVISED");
    if (supervised == nullptr || std::strcmp(supervised, "1") != 0) PreloadTheSignalWrappers(argv[prog]);
    // Tracing: where the in-process engines send their calls.
    if (trace_out.channel) {
      setenv(evshim::shim::trace::record::kChannelVariable, trace_out.channel->environment_value().c_str(), 1);
    }
    // The in-process engines apply the limits too (per process there).
    const SupervisorOptions defaults;
    auto export_limit = [](const char* name, uint64_t value, uint64_t fallback) {
      if (value != fallback) setenv(name, std::to_string(value).c_str(), 1);
    };
    export_limit("EVSHIM_MAX_PORT_EVENTS", opts.port_limits.max_events_per_port,
                 defaults.port_limits.max_events_per_port);
    export_limit("EVSHIM_MAX_PORTS", opts.port_limits.max_ports, defaults.port_limits.max_ports);
    export_limit("EVSHIM_MAX_KQUEUES", opts.kqueue_limits.max_kqueues, defaults.kqueue_limits.max_kqueues);
    export_limit("EVSHIM_MAX_KNOTES", opts.kqueue_limits.max_knotes, defaults.kqueue_limits.max_knotes);
    execvp(argv[prog], argv + prog);
    int err = errno;
    (void)!write(exec_pipe[1], &err, sizeof err);
    _exit(err == ENOENT ? 127 : 126);
  }
  close(sv[1]);
  close(exec_pipe[1]);
  if (trace_out.channel) trace_out.channel->Start();
  int listener = RecvFd(sv[0]);
  close(sv[0]);
  if (listener < 0) {
    close(exec_pipe[0]);
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  int exec_err = ServeProbes(listener, exec_pipe[0], child);
  close(exec_pipe[0]);
  if (exec_err != 0) {
    if (exec_err != kProbeFailed) std::fprintf(stderr, "evshim: %s: %s\n", argv[prog], std::strerror(exec_err));
    int status;
    waitpid(child, &status, 0);
    close(listener);
    if (exec_err == kProbeFailed) return 1;
    return exec_err == ENOENT ? 127 : 126;
  }
  opts.child = child;
  Supervisor sup(listener, opts);
  return sup.Run();
}

// `evshim --serve FD [--trace=FILE]`: the supervisor a preloaded program
// started for itself (the preload passes EVSHIM_TRACE as --trace=).
// A supervisor the program started must not hold the program's stdout or
// stderr: whoever reads them waits for EOF before reaping the program, and on
// kernels before ~6.2 the listener reports the tree's end only after that
// reap (a deadlock; docs/design.md). Messages go to $EVSHIM_LOG, or to stderr
// when it is a terminal; a trace asked for on stderr keeps stderr.
void DetachFromProgramStdio(bool keep_stderr) {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return;
  dup2(null_fd, 0);
  dup2(null_fd, 1);
  const char* log = std::getenv("EVSHIM_LOG");
  if (log != nullptr && *log != '\0') {
    int log_fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd >= 0) {
      dup2(log_fd, 2);
      close(log_fd);
    }
  } else if (!keep_stderr && !isatty(2)) {
    dup2(null_fd, 2);
  }
  close(null_fd);
}

int Serve(int argc, char** argv) {
  if (argc < 3) Usage("--serve needs a descriptor");
  int sock = std::atoi(argv[2]);
  SupervisorOptions opts;
  TraceRequest treq;
  LaunchMode mode;  // the preloaded program decides its own mode
  ParseOptions(argc, argv, 3, Command::kServe, &opts, &treq, &mode);
  OpenTrace trace_out;
  if (!StartTrace(treq, &trace_out, /*fast_path=*/false)) {
    // The program runs anyway; only the trace is lost.
    std::fprintf(stderr, "evshim: EVSHIM_TRACE=%s: %s (not tracing)\n", treq.output.c_str(), std::strerror(errno));
  }
  opts.observer = trace_out.tracer.get();
  int listener = RecvFd(sock);
  close(sock);
  if (listener < 0) return 1;
  // Detach from the program's terminal signals; we live as long as the tree.
  setsid();
  DetachFromProgramStdio(/*keep_stderr=*/opts.observer != nullptr && treq.output.empty());
  Supervisor sup(listener, opts);
  return sup.Run();
}

int SupportMatrix() {
  std::printf("| personality | call | x86_64 nr | i386 nr | native nr | support | notes |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const auto& e : evshim::abi::AllSyscalls()) {
    std::printf("| %s | %s | %d | %d | %s | %s | %s |\n",
                std::string(evshim::abi::PersonalityName(e.personality)).c_str(),
                std::string(e.name).c_str(), e.nr_lp64, e.nr_ilp32, std::string(e.native).c_str(),
                std::string(evshim::abi::SupportName(e.support)).c_str(), std::string(e.note).c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) Usage("missing command");
  std::string_view cmd = argv[1];
  if (cmd == "run") return Run(argc, argv, 2, Command::kRun);
  if (cmd == "trace") return Run(argc, argv, 2, Command::kTrace);
  if (cmd == "--serve") return Serve(argc, argv);
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::fputs(kUsage, stdout);
    return 0;
  }
  if (cmd == "--version") {
    std::printf("evshim %s\n", EVSHIM_VERSION);
    return 0;
  }
  if (cmd == "--support-matrix") return SupportMatrix();
  if (!cmd.empty() && cmd[0] == '-') Usage("unknown option '" + std::string(cmd) + "'");
  Usage("unknown command '" + std::string(cmd) + "'");
}
