// `evshim run` and termination requests. SIGTERM and SIGINT sent to the
// launcher must reach the program at once and must end the supervisor even
// if its loop cannot come back to them (a handler that does not return): a
// signalfd read by the loop alone would leave both waiting on that loop.
#pragma once

#include <sys/types.h>

namespace evshim::shim::termination {

// Installs SIGTERM and SIGINT handlers and unblocks both. A signal sent by
// a process (si_code <= 0; a terminal's signal already reached the
// program's process group) is forwarded to `child` from the handler, and
// `wake_fd` (the write end of a pipe the loop polls) is written so the loop
// wakes. If the loop has not called Acknowledge within `grace_seconds`, the
// process exits with 128 + the signal.
void Install(pid_t child, int wake_fd, unsigned grace_seconds);
// The loop is alive: stops the watchdog. Returns the signal received since
// the last call, 0 if none.
int Acknowledge();

}  // namespace evshim::shim::termination
