// The `evshim` command: the launcher is the supervisor of the program's tree.
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "abi/syscall_table.h"
#include "shim/supervisor/supervisor.h"

#ifndef EVSHIM_VERSION
#define EVSHIM_VERSION "unknown"
#endif
#ifndef EVSHIM_INSTALLED_PRELOAD
#define EVSHIM_INSTALLED_PRELOAD ""
#endif

namespace {

using evshim::shim::Supervisor;
using evshim::shim::SupervisorOptions;

constexpr const char* kUsage =
    "usage: evshim run [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "       evshim trace [OPTIONS] [--] PROGRAM [ARGS...]\n"
    "       evshim --support-matrix | --help | --version\n"
    "\n"
    "Runs an illumos event-port or BSD kqueue program on Linux: its foreign\n"
    "system calls are served by evshim with the foreign kernel's semantics.\n"
    "\n"
    "run options:\n"
    "  --max-port-events N  event slots per port (illumos process.max-port-events; default 65536)\n"
    "  --max-ports N        ports per process tree (illumos project.max-port-ids; default 8192)\n"
    "  --no-sync-wakeup     do not use SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (for benchmarks)\n"
    "  -h, --help           this text\n"
    "\n"
    "Exit status: the program's, 128+N if it was killed by signal N, 127 if it\n"
    "was not found, 126 if it could not be executed, 2 for a usage error.\n";

[[noreturn]] void Usage(const char* msg) {
  std::fprintf(stderr, "evshim: %s\nTry 'evshim --help'.\n", msg);
  std::exit(2);
}

std::string SelfDir() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  buf[n] = '\0';
  std::string s(buf);
  return s.substr(0, s.rfind('/'));
}

std::string PreloadPath() {
  if (const char* p = std::getenv("EVSHIM_PRELOAD")) return p;
  std::string local = SelfDir() + "/libevshim-preload.so";
  if (access(local.c_str(), R_OK) == 0) return local;
  return EVSHIM_INSTALLED_PRELOAD;
}

bool ParseCount(const char* s, uint32_t* out) {
  char* end = nullptr;
  errno = 0;
  unsigned long v = std::strtoul(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v == 0 || v > 0x3fffffffUL) return false;
  *out = static_cast<uint32_t>(v);
  return true;
}

// Parses run/serve options; returns the index of the program (or argc).
int ParseOptions(int argc, char** argv, int i, SupervisorOptions* o) {
  for (; i < argc; ++i) {
    std::string_view a = argv[i];
    if (a == "--") return i + 1;
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    }
    if (a == "--max-port-events" || a == "--max-ports") {
      if (i + 1 >= argc) Usage((std::string(a) + " needs a number").c_str());
      uint32_t* dst = a == "--max-ports" ? &o->port_limits.max_ports
                                         : &o->port_limits.max_events_per_port;
      if (!ParseCount(argv[++i], dst)) Usage((std::string("bad number for ") + std::string(a)).c_str());
      continue;
    }
    if (a == "--no-sync-wakeup") {
      o->sync_wakeup = false;
      continue;
    }
    if (a == "-v" || a == "--verbose") {
      o->verbose = true;
      continue;
    }
    if (!a.empty() && a[0] == '-') Usage(("unknown option '" + std::string(a) + "'").c_str());
    return i;
  }
  return i;
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

int Run(int argc, char** argv, int first) {
  SupervisorOptions opts;
  int prog = ParseOptions(argc, argv, first, &opts);
  if (prog >= argc) Usage("no program given");

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
  std::string preload = PreloadPath();
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
      std::fprintf(stderr,
                   "evshim: cannot install the seccomp user-notification filter: %s "
                   "(needs Linux >= 5.9 with seccomp, and no container policy blocking it)\n",
                   std::strerror(-listener));
      _exit(1);
    }
    if (!SendFd(sv[1], listener)) _exit(1);
    close(listener);
    close(sv[1]);
    if (!preload.empty()) {
      std::string env = preload;
      if (const char* cur = std::getenv("LD_PRELOAD"); cur && *cur) env += std::string(":") + cur;
      setenv("LD_PRELOAD", env.c_str(), 1);
    }
    setenv("EVSHIM_SUPERVISED", "1", 1);
    execvp(argv[prog], argv + prog);
    int err = errno;
    (void)!write(exec_pipe[1], &err, sizeof err);
    _exit(err == ENOENT ? 127 : 126);
  }
  close(sv[1]);
  close(exec_pipe[1]);
  int listener = RecvFd(sv[0]);
  close(sv[0]);
  int exec_err = 0;
  ssize_t got = read(exec_pipe[0], &exec_err, sizeof exec_err);
  close(exec_pipe[0]);
  if (got == sizeof exec_err) {
    std::fprintf(stderr, "evshim: %s: %s\n", argv[prog], std::strerror(exec_err));
    int status;
    waitpid(child, &status, 0);
    return exec_err == ENOENT ? 127 : 126;
  }
  if (listener < 0) {
    int status;
    waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
  }
  opts.child = child;
  Supervisor sup(listener, opts);
  return sup.Run();
}

// A supervisor the program started must not hold the program's stdout or
// stderr: whoever reads them waits for EOF before reaping the program, and on
// kernels before ~6.2 the listener reports the tree's end only after that
// reap. Messages go to $EVSHIM_LOG, or to stderr when it is a terminal.
void DetachFromProgramStdio() {
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
  } else if (!isatty(2)) {
    dup2(null_fd, 2);
  }
  close(null_fd);
}

// `evshim --serve FD`: the supervisor a preloaded program started for itself.
int Serve(int argc, char** argv) {
  if (argc < 3) Usage("--serve needs a descriptor");
  int sock = std::atoi(argv[2]);
  SupervisorOptions opts;
  ParseOptions(argc, argv, 3, &opts);
  int listener = RecvFd(sock);
  close(sock);
  if (listener < 0) return 1;
  // Detach from the program's terminal signals; we live as long as the tree.
  setsid();
  DetachFromProgramStdio();
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
  if (cmd == "run") return Run(argc, argv, 2);
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
  if (cmd == "trace") {
    std::fprintf(stderr, "evshim: trace is not implemented yet\n");
    return 2;
  }
  Usage(("unknown command '" + std::string(cmd) + "'").c_str());
}
