#include "shim/supervisor/termination.h"

#include <errno.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

namespace evshim::shim::termination {
namespace {

std::atomic<pid_t> g_child{0};
std::atomic<int> g_wake_fd{-1};
std::atomic<int> g_pending{0};  // the signal not yet acknowledged by the loop
unsigned g_grace = 3;

void OnTerminate(int sig, siginfo_t* info, void*) {
  const int saved = errno;
  const pid_t child = g_child.load();
  if (child > 0 && info != nullptr && info->si_code <= 0) kill(child, sig);
  g_pending.store(sig);
  alarm(g_grace);  // the watchdog: Acknowledge stops it
  const int fd = g_wake_fd.load();
  if (fd >= 0) {
    const char byte = 1;
    (void)!write(fd, &byte, 1);
  }
  errno = saved;
}

void OnWatchdog(int) {
  const int sig = g_pending.load();
  if (sig == 0) return;
  static const char kMsg[] = "evshim: the supervisor did not come back to a termination request; exiting\n";
  (void)!write(2, kMsg, sizeof kMsg - 1);
  _exit(128 + sig);
}

}  // namespace

void Install(pid_t child, int wake_fd, unsigned grace_seconds) {
  g_child.store(child);
  g_wake_fd.store(wake_fd);
  g_grace = grace_seconds;
  struct sigaction sa {};
  sa.sa_sigaction = OnTerminate;
  sa.sa_flags = SA_SIGINFO | SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGALRM);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  struct sigaction wd {};
  wd.sa_handler = OnWatchdog;
  sigemptyset(&wd.sa_mask);
  sigaction(SIGALRM, &wd, nullptr);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGALRM);
  sigprocmask(SIG_UNBLOCK, &set, nullptr);
}

int Acknowledge() {
  const int sig = g_pending.exchange(0);
  if (sig != 0) alarm(0);
  return sig;
}

}  // namespace evshim::shim::termination
