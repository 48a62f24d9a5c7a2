// shim/supervisor/termination.h without a supervisor: a process stands in
// for `evshim run`, another for the program. The supervisor's loop wedged in
// a handler (issue 14 item 3: a 0 ms periodic timer) ignored SIGTERM, and
// `timeout` could not stop `evshim run`.
#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "shim/supervisor/termination.h"

namespace evshim::shim {
namespace {

double Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// Waits for `pid` up to `seconds`; -1 if it is still running (then killed).
int WaitFor(pid_t pid, double seconds) {
  const double end = Now() + seconds;
  int status = 0;
  while (Now() < end) {
    if (waitpid(pid, &status, WNOHANG) == pid) return status;
    usleep(10'000);
  }
  kill(pid, SIGKILL);
  waitpid(pid, &status, 0);
  return -1;
}

// The program: exits 0 on SIGTERM/SIGINT, 3 if nothing comes. Returns
// once its handlers are in place (a signal forwarded before that killed it
// on a loaded machine: CI, 2026-12-05).
pid_t StartProgram() {
  int ready[2];
  if (pipe(ready) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    close(ready[0]);
    struct sigaction sa {};
    sa.sa_handler = [](int) { _exit(0); };
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    if (write(ready[1], "r", 1) != 1) _exit(4);
    sleep(20);
    _exit(3);
  }
  close(ready[1]);
  char c;
  if (pid > 0 && read(ready[0], &c, 1) != 1) pid = -1;
  close(ready[0]);
  return pid;
}

// The launcher's loop never comes back (it spins in a handler): the signal
// still reaches the program at once, and the launcher exits with 128+N
// after the grace period.
TEST(Termination, AStuckLoopStillForwardsAndExits) {
  for (int sig : {SIGTERM, SIGINT}) {
    pid_t program = StartProgram();
    ASSERT_GT(program, 0);
    int ready[2];
    ASSERT_EQ(pipe(ready), 0);
    pid_t launcher = fork();
    if (launcher == 0) {
      sigset_t block;
      sigemptyset(&block);
      sigaddset(&block, sig);
      sigprocmask(SIG_BLOCK, &block, nullptr);  // as main.cc blocks them before fork
      int p[2];
      if (pipe(p) != 0) _exit(9);
      termination::Install(program, p[1], 1);
      if (write(ready[1], "r", 1) != 1) _exit(8);
      for (;;) {  // never acknowledges
      }
    }
    char c;
    ASSERT_EQ(read(ready[0], &c, 1), 1) << "the launcher did not start";
    close(ready[0]);
    close(ready[1]);
    const double sent = Now();
    kill(launcher, sig);
    const int program_status = WaitFor(program, 5);
    ASSERT_NE(program_status, -1) << "the signal was not forwarded";
    EXPECT_TRUE(WIFEXITED(program_status) && WEXITSTATUS(program_status) == 0);
    const int status = WaitFor(launcher, 10);
    ASSERT_NE(status, -1) << "the launcher ignored signal " << sig;
    EXPECT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 128 + sig);
    EXPECT_LT(Now() - sent, 4.0);
  }
}

// A live loop acknowledges: no exit, and the signal is reported once.
TEST(Termination, ALiveLoopAcknowledgesAndKeepsRunning) {
  pid_t program = StartProgram();
  ASSERT_GT(program, 0);
  int ready[2];
  ASSERT_EQ(pipe(ready), 0);
  pid_t launcher = fork();
  if (launcher == 0) {
    int p[2];
    if (pipe(p) != 0) _exit(9);
    termination::Install(program, p[1], 1);
    if (write(ready[1], "r", 1) != 1) _exit(8);
    char byte;
    while (read(p[0], &byte, 1) != 1) {
    }
    if (termination::Acknowledge() != SIGTERM) _exit(4);
    if (termination::Acknowledge() != 0) _exit(5);
    sleep(2);  // past the grace period: the watchdog was stopped
    _exit(0);
  }
  char c;
  ASSERT_EQ(read(ready[0], &c, 1), 1) << "the launcher did not start";
  close(ready[0]);
  close(ready[1]);
  kill(launcher, SIGTERM);
  const int status = WaitFor(launcher, 10);
  ASSERT_NE(status, -1);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  WaitFor(program, 5);
}

}  // namespace
}  // namespace evshim::shim
