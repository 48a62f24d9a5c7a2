/*
 * A small illumos event-port program, built by tests/pkgconfig/build-and-run.sh with
 * nothing but `pkg-config --cflags --libs evshim-ports` and run under
 * `evshim run`. Exit 0 and "ports_hello: ok" when every step behaved as on
 * illumos. It includes <sys/port_impl.h> next to <port.h>, as APR's poll
 * code does (docs/clients.md "## APR"), and checks three of its values.
 */
#include <errno.h>
#include <poll.h>
#include <port.h>
#include <stdio.h>
#include <string.h>
#include <sys/port_impl.h>
#include <unistd.h>

#define CHECK(cond)                                                              \
  do {                                                                           \
    if (!(cond)) {                                                               \
      fprintf(stderr, "ports_hello:%d: %s failed (errno %d)\n", __LINE__, #cond, \
              errno);                                                            \
      return 1;                                                                  \
    }                                                                            \
  } while (0)

int main(void) {
  CHECK(PORT_CREATE == 0 && PORT_GETN == 6 && PORT_SYS_NOPORT == 0x100);
  int port = port_create();
  CHECK(port >= 0);
  int fds[2];
  CHECK(pipe(fds) == 0);
  CHECK(port_associate(port, PORT_SOURCE_FD, (uintptr_t)fds[0], POLLIN, &fds[0]) == 0);
  CHECK(write(fds[1], "x", 1) == 1);
  port_event_t pe;
  memset(&pe, 0, sizeof pe);
  CHECK(port_get(port, &pe, NULL) == 0);
  CHECK(pe.portev_source == PORT_SOURCE_FD);
  CHECK(pe.portev_events == POLLIN);
  CHECK(pe.portev_object == (uintptr_t)fds[0]);
  CHECK(pe.portev_user == &fds[0]);
  CHECK(port_send(port, 42, NULL) == 0);
  port_event_t list[4];
  uint_t nget = 2;
  struct timespec ts = {0, 10 * 1000 * 1000};
  CHECK(port_getn(port, list, 4, &nget, &ts) == -1 && errno == ETIME);
  CHECK(nget == 1);
  CHECK(list[0].portev_source == PORT_SOURCE_USER && list[0].portev_events == 42);
  CHECK(port_send(fds[0], 1, NULL) == -1 && errno == EBADFD);
  printf("ports_hello: ok\n");
  return 0;
}
