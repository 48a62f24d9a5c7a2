/*
 * Raw illumos portfs ABI test (x86_64, LP64), run under `evshim run` by
 * tests/abi/raw_portfs_run_test.cc. It bypasses the API library: it issues
 * the `syscall` instruction itself with the registers illumos libc would
 * load (docs/abi.md "portfs"), builds and reads port_event_t / timespec_t as
 * raw bytes at the documented offsets, and checks every byte written back:
 * nothing past the structs, the PORT_GETN two-result encoding
 * (count | ETIME << 32), illumos poll bits at the boundary (POLLWRBAND
 * 0x100, POLLRDHUP 0x4000, never Linux's 0x200/0x2000), and Linux errno
 * values in the -errno return.
 *
 * Prints "raw_portfs: ok (N checks)" and exits 0, or lists each failure.
 *
 * Built a second time as raw_portfs_lib (-DWITH_LIBRARY, linked with
 * libevshim-ports): the port the checks use is made by the library
 * (port_create), so in fast mode it is an in-process object and every raw
 * call on it is served by the engine's trap (docs/design.md "Raw foreign
 * calls in fast mode: the trap"), with the same bytes as the supervisor's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#if !defined(__x86_64__)
#error "raw_portfs hand-builds LP64 structs: x86_64 only"
#endif

#define NR_PORTFS 182
#define OP_CREATE 0
#define OP_ASSOCIATE 1
#define OP_DISSOCIATE 2
#define OP_SEND 3
#define OP_SENDN 4
#define OP_GET 5
#define OP_GETN 6
#define OP_ALERT 7
#define NOPORT 0x100
#define SRC_USER 3
#define SRC_FD 4
#define SRC_ALERT 5
#define I_POLLIN 0x0001
#define I_POLLOUT 0x0004
#define I_POLLWRBAND 0x0100
#define I_POLLRDHUP 0x4000
#define I_ETIME 62

/* port_event_t, amd64 (docs/abi.md): events@0 source@4 pad@6 object@8 user@16, 24 bytes */
#define EV_SIZE 24
#define FILL 0xAA

static int checks, failures;

#define CHECK(cond, ...)                          \
  do {                                            \
    ++checks;                                     \
    if (!(cond)) {                                \
      ++failures;                                 \
      fprintf(stderr, "FAIL %s:%d: ", __func__, __LINE__); \
      fprintf(stderr, __VA_ARGS__);               \
      fputc('\n', stderr);                        \
    }                                             \
  } while (0)

/* The raw instruction: returns rax as the kernel (supervisor) left it. */
static long raw(long op, long a0, long a1, long a2, long a3, long a4) {
  long ret;
  register long r10 __asm__("r10") = a2;
  register long r8 __asm__("r8") = a3;
  register long r9 __asm__("r9") = a4;
  __asm__ volatile("syscall"
                   : "=a"(ret)
                   : "a"((long)NR_PORTFS), "D"(op), "S"(a0), "d"(a1), "r"(r10), "r"(r8), "r"(r9)
                   : "rcx", "r11", "memory");
  return ret;
}

static void put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }

/* The 24 bytes a port_event_t with these fields must be (pad 0). */
static void expect_event(unsigned char out[EV_SIZE], uint32_t events, uint16_t source, uint64_t object,
                         uint64_t user) {
  memset(out, 0, EV_SIZE);
  put32(out + 0, events);
  memcpy(out + 4, &source, 2);
  put64(out + 8, object);
  put64(out + 16, user);
}

static void check_bytes(const char *what, const unsigned char *got, const unsigned char *want, size_t n) {
  for (size_t i = 0; i < n; i++) {
    CHECK(got[i] == want[i], "%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i], want[i]);
  }
}

static void check_untouched(const char *what, const unsigned char *p, size_t n) {
  for (size_t i = 0; i < n; i++) CHECK(p[i] == FILL, "%s: byte %zu was written (0x%02x)", what, i, p[i]);
}

static int create_port(void) {
  /* Junk in the opcode's upper half (where the LP64 library keeps its call
   * number) must be ignored: illumos reads the opcode as an int. */
  long fd = raw((long)(OP_CREATE | NOPORT) | (0x13579bdfL << 32), 0, 0, 0, 0, 0);
  CHECK(fd >= 0, "PORT_CREATE returned %ld", fd);
  return (int)fd;
}

static void test_send_get(int port) {
  long r = raw(OP_SEND, port, 0x2a, 0x1122334455667788L, 0, 0);
  CHECK(r == 0, "PORT_SEND returned %ld", r);
  unsigned char buf[EV_SIZE + 16], want[EV_SIZE];
  memset(buf, FILL, sizeof buf);
  /* port_get: timeout by value in a2/a3, a4 non-zero = "there is a timeout" (0 s: poll) */
  r = raw(OP_GET, port, (long)buf, 0, 0, 1);
  CHECK(r == 0, "PORT_GET returned %ld", r);
  expect_event(want, 0x2a, SRC_USER, 0, 0x1122334455667788ULL);
  check_bytes("PORT_GET event", buf, want, EV_SIZE);
  check_untouched("PORT_GET past the event", buf + EV_SIZE, 16);
  /* Nothing queued, zero timeout: 0 and *pe untouched (docs/rules-ports.md rule 24). */
  memset(buf, FILL, sizeof buf);
  r = raw(OP_GET, port, (long)buf, 0, 0, 1);
  CHECK(r == 0, "empty PORT_GET, zero timeout, returned %ld", r);
  check_untouched("empty PORT_GET", buf, sizeof buf);
  /* Nothing queued, 1 ms: port_get has one result, so ETIME is an error. */
  r = raw(OP_GET, port, (long)buf, 0, 1000000, 1);
  CHECK(r == -ETIME, "empty PORT_GET, 1 ms, returned %ld", r);
  check_untouched("timed-out PORT_GET", buf, sizeof buf);
}

static void test_getn(int port) {
  unsigned char list[4 * EV_SIZE], want[EV_SIZE];
  unsigned char ts[16 + 8];
  memset(ts, FILL, sizeof ts);
  put64(ts + 0, 0);         /* tv_sec */
  put64(ts + 8, 20000000);  /* tv_nsec: 20 ms */
  CHECK(raw(OP_SEND, port, 1, 0x101, 0, 0) == 0, "send 1");
  CHECK(raw(OP_SEND, port, 2, 0x202, 0, 0) == 0, "send 2");
  /* max 0: the number queued, nothing written */
  long r = raw(OP_GETN, port, 0, 0, 0, 0);
  CHECK(r == 2, "PORT_GETN max=0 returned %ld", r);
  /* Want 3, only 2 come: r_val1 = 2, r_val2 = ETIME, in one register. */
  memset(list, FILL, sizeof list);
  r = raw(OP_GETN, port, (long)list, 4, 3, (long)ts);
  CHECK(r == (2L | ((long)I_ETIME << 32)), "PORT_GETN partial returned 0x%lx, want 0x%lx", r,
        2L | ((long)I_ETIME << 32));
  expect_event(want, 1, SRC_USER, 0, 0x101);
  check_bytes("PORT_GETN event 0", list, want, EV_SIZE);
  expect_event(want, 2, SRC_USER, 0, 0x202);
  check_bytes("PORT_GETN event 1", list + EV_SIZE, want, EV_SIZE);
  check_untouched("PORT_GETN past 2 events", list + 2 * EV_SIZE, 2 * EV_SIZE);
  check_untouched("timespec padding", ts + 16, 8);
  /* Nothing at all: 0 | ETIME << 32. */
  memset(list, FILL, sizeof list);
  r = raw(OP_GETN, port, (long)list, 4, 1, (long)ts);
  CHECK(r == ((long)I_ETIME << 32), "empty PORT_GETN returned 0x%lx", r);
  check_untouched("empty PORT_GETN", list, sizeof list);
  /* Exactly enough: count only. */
  CHECK(raw(OP_SEND, port, 3, 0x303, 0, 0) == 0, "send 3");
  r = raw(OP_GETN, port, (long)list, 4, 1, (long)ts);
  CHECK(r == 1, "PORT_GETN complete returned 0x%lx", r);
  /* A bad timespec only matters if the call waits: tv_nsec 1e9 is EINVAL. */
  put64(ts + 8, 1000000000);
  r = raw(OP_GETN, port, (long)list, 4, 1, (long)ts);
  CHECK(r == -EINVAL, "PORT_GETN bad timespec returned %ld", r);
}

static void test_poll_bits(int port) {
  unsigned char buf[EV_SIZE + 8], want[EV_SIZE];
  long r;
  /* A writable AF_UNIX socket is Linux POLLOUT|POLLWRNORM|POLLWRBAND: asked
   * for illumos POLLOUT|POLLWRBAND (0x104), it reports exactly 0x104. */
  int sv[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0, "socketpair");
  r = raw(OP_ASSOCIATE, port, SRC_FD, sv[0], I_POLLOUT | I_POLLWRBAND, 0xfeed);
  CHECK(r == 0, "associate WRBAND returned %ld", r);
  memset(buf, FILL, sizeof buf);
  r = raw(OP_GET, port, (long)buf, 1, 0, 1);
  CHECK(r == 0, "GET writable returned %ld", r);
  expect_event(want, I_POLLOUT | I_POLLWRBAND, SRC_FD, (uint64_t)sv[0], 0xfeed);
  check_bytes("WRBAND event", buf, want, EV_SIZE);
  check_untouched("WRBAND event tail", buf + EV_SIZE, 8);

  /* illumos 0x100 alone is POLLWRBAND, not Linux POLLWRNORM: a pipe (Linux
   * POLLOUT|POLLWRNORM, no WRBAND) must not fire it. */
  int pfd[2];
  CHECK(pipe(pfd) == 0, "pipe");
  r = raw(OP_ASSOCIATE, port, SRC_FD, pfd[1], I_POLLWRBAND, 0);
  CHECK(r == 0, "associate pipe WRBAND returned %ld", r);
  unsigned char ts[16];
  put64(ts, 0);
  put64(ts + 8, 30000000);
  memset(buf, FILL, sizeof buf);
  r = raw(OP_GETN, port, (long)buf, 1, 1, (long)ts);
  CHECK(r == ((long)I_ETIME << 32), "pipe WRBAND fired: 0x%lx events 0x%x", r, *(uint32_t *)buf);
  CHECK(raw(OP_DISSOCIATE, port, SRC_FD, pfd[1], 0, 0) == 0, "dissociate pipe");

  /* Peer shut down writing: Linux POLLRDHUP 0x2000 is illumos 0x4000. */
  int s2[2];
  CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, s2) == 0, "socketpair 2");
  CHECK(shutdown(s2[1], SHUT_WR) == 0, "shutdown");
  r = raw(OP_ASSOCIATE, port, SRC_FD, s2[0], I_POLLRDHUP | I_POLLIN, 0xbeef);
  CHECK(r == 0, "associate RDHUP returned %ld", r);
  memset(buf, FILL, sizeof buf);
  r = raw(OP_GET, port, (long)buf, 1, 0, 1);
  CHECK(r == 0, "GET rdhup returned %ld", r);
  expect_event(want, I_POLLIN | I_POLLRDHUP, SRC_FD, (uint64_t)s2[0], 0xbeef);
  check_bytes("RDHUP event", buf, want, EV_SIZE);

  /* Associating with Linux's bit values is not translated: 0x2000 is
   * illumos POLLET and asks for nothing the socket reports. */
  r = raw(OP_ASSOCIATE, port, SRC_FD, s2[0], 0x2000, 0);
  CHECK(r == 0, "associate 0x2000 returned %ld", r);
  memset(buf, FILL, sizeof buf);
  r = raw(OP_GETN, port, (long)buf, 1, 1, (long)ts);
  CHECK(r == ((long)I_ETIME << 32), "Linux POLLRDHUP value fired: 0x%lx", r);
  raw(OP_DISSOCIATE, port, SRC_FD, s2[0], 0, 0);
  close(sv[0]);
  close(sv[1]);
  close(s2[0]);
  close(s2[1]);
  close(pfd[0]);
  close(pfd[1]);
}

static void test_errors(int port) {
  int pfd[2];
  CHECK(pipe(pfd) == 0, "pipe");
  /* errno values are the host's: EBADFD is 77 (illumos 81), returned as -errno. */
  long r = raw(OP_SEND, pfd[0], 1, 0, 0, 0);
  CHECK(r == -77, "PORT_SEND to a pipe returned %ld, want -77 (Linux EBADFD)", r);
  r = raw(OP_SEND, 1000, 1, 0, 0, 0);
  CHECK(r == -EBADF, "PORT_SEND to a closed fd returned %ld", r);
  r = raw(9, port, 0, 0, 0, 0);
  CHECK(r == -EINVAL, "opcode 9 returned %ld", r);
  r = raw(OP_CREATE, port, 0, 0, 0, 0); /* no PORT_SYS_NOPORT: a0 is a port, opcode unknown there */
  CHECK(r == -EINVAL, "PORT_CREATE without NOPORT returned %ld", r);
  r = raw(OP_ASSOCIATE, port, SRC_USER, 0, 0, 0);
  CHECK(r == -EINVAL, "associate PORT_SOURCE_USER returned %ld", r);
  r = raw(OP_DISSOCIATE, port, SRC_FD, pfd[0], 0, 0);
  CHECK(r == -ENOENT, "dissociate unassociated returned %ld", r);
  CHECK(raw(OP_SEND, port, 1, 0, 0, 0) == 0, "send");
  r = raw(OP_GET, port, 8, 0, 0, 0); /* unmapped event buffer */
  CHECK(r == -EFAULT, "PORT_GET to address 8 returned %ld", r);

  /* PORT_SENDN: ports[] = {port, pipe}; errors[] gets 0 and 77 (int each). */
  int ports[2] = {port, pfd[0]};
  unsigned char errs[12];
  memset(errs, FILL, sizeof errs);
  r = raw(OP_SENDN | NOPORT, (long)ports, (long)errs, 2, 0x55, 0x66);
  CHECK(r == 1, "PORT_SENDN returned %ld", r);
  unsigned char want_errs[8] = {0, 0, 0, 0, 77, 0, 0, 0};
  check_bytes("PORT_SENDN errors", errs, want_errs, 8);
  check_untouched("PORT_SENDN errors tail", errs + 8, 4);
  close(pfd[0]);
  close(pfd[1]);
}

static void test_alert(void) {
  int port = create_port();
  long r = raw(OP_ALERT, port, 1 /* PORT_ALERT_SET */, 0x77, 0xabc, 0);
  CHECK(r == 0, "PORT_ALERT returned %ld", r);
  unsigned char buf[EV_SIZE], want[EV_SIZE];
  memset(buf, FILL, sizeof buf);
  r = raw(OP_GET, port, (long)buf, 0, 0, 0);
  CHECK(r == 0, "GET alert returned %ld", r);
  expect_event(want, 0x77, SRC_ALERT, 0, 0xabc);
  check_bytes("alert event", buf, want, EV_SIZE);
  close(port);
}

#if defined(WITH_LIBRARY)
int port_create(void); /* libevshim-ports (no header: this file keeps its own constants) */
#endif

int main(void) {
#if defined(WITH_LIBRARY)
  close(create_port()); /* a raw PORT_CREATE works beside the library's */
  int port = port_create();
#else
  int port = create_port();
#endif
  if (port < 0) {
    fprintf(stderr, "raw_portfs: portfs is not available (not under evshim?)\n");
    return 1;
  }
  test_send_get(port);
  test_getn(port);
  test_poll_bits(port);
  test_errors(port);
  test_alert();
  close(port);
  if (failures) {
    fprintf(stderr, "raw_portfs: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("raw_portfs: ok (%d checks)\n", checks);
  return 0;
}
