/*
 * evshim: the illumos event-port library. Each function issues the portfs
 * system call the way illumos libc does (event_port.c), and turns evshim's
 * Linux-convention result (docs/abi.md) into the illumos API's.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <unistd.h>
#include <sys/syscall.h>

#include "evshim_portfs.h"
#include "port.h"

#define EXPORT __attribute__((visibility("default")))

/*
 * On LP64 the upper half of the opcode register carries a per-thread call
 * number (illumos reads the opcode as an int, so those bits are free). When a
 * signal with SA_RESTART interrupts a wait, Linux re-issues the same call;
 * the identical call number tells the supervisor it is a restart, which
 * illumos never does: it answers EINTR (docs/abi.md "Signals").
 */
#if defined(__x86_64__)
static __thread unsigned call_seq;
#endif

static long portfs(long op, long a0, long a1, long a2, long a3, long a4) {
#if defined(__x86_64__)
  call_seq += 2;
  op |= (long)((unsigned long)(call_seq | 1) << 32);
#endif
  long r = syscall(EVSHIM_SYS_portfs, op, a0, a1, a2, a3, a4);
  return r; /* -1 with errno set on error, as syscall(2) does */
}

/* Linux <poll.h> bits -> illumos bits at the syscall boundary, and back. */
static int poll_to_illumos(int ev) {
  int out = ev & 0x00ff;
  if (ev & POLLWRNORM) out |= POLLOUT;
#ifdef POLLWRBAND
  if (ev & POLLWRBAND) out |= EVSHIM_ILLUMOS_POLLWRBAND;
#endif
#ifdef POLLRDHUP
  if (ev & POLLRDHUP) out |= EVSHIM_ILLUMOS_POLLRDHUP;
#endif
  return out;
}

static int poll_from_illumos(int ev) {
  int out = ev & 0x00ff;
#ifdef POLLWRBAND
  if (ev & EVSHIM_ILLUMOS_POLLWRBAND) out |= POLLWRBAND;
#endif
#ifdef POLLRDHUP
  if (ev & EVSHIM_ILLUMOS_POLLRDHUP) out |= POLLRDHUP;
#endif
  return out;
}

static void fix_events(port_event_t *pe, unsigned n) {
  for (unsigned i = 0; i < n; i++) {
    if (pe[i].portev_source == PORT_SOURCE_FD) pe[i].portev_events = poll_from_illumos(pe[i].portev_events);
  }
}

EXPORT int port_create(void) {
  return (int)portfs(EVSHIM_PORT_CREATE | EVSHIM_PORT_SYS_NOPORT, 0, 0, 0, 0, 0);
}

EXPORT int port_associate(int port, int source, uintptr_t object, int events, void *user) {
  if (source == PORT_SOURCE_FD) events = poll_to_illumos(events);
  return (int)portfs(EVSHIM_PORT_ASSOCIATE, port, source, (long)object, events, (long)user);
}

EXPORT int port_dissociate(int port, int source, uintptr_t object) {
  return (int)portfs(EVSHIM_PORT_DISSOCIATE, port, source, (long)object, 0, 0);
}

EXPORT int port_send(int port, int events, void *user) {
  return (int)portfs(EVSHIM_PORT_SEND, port, events, (long)user, 0, 0);
}

EXPORT int port_sendn(int ports[], int errors[], uint_t nent, int events, void *user) {
  uint_t done = 0;
  int total = 0;
  /* illumos libc sends lists above PORT_MAX_LIST in pieces (event_port.c). */
  do {
    uint_t chunk = nent - done > 8192 ? 8192 : nent - done;
    long r = portfs(EVSHIM_PORT_SENDN | EVSHIM_PORT_SYS_NOPORT, (long)(ports + done),
                    (long)(errors + done), chunk, events, (long)user);
    if (r < 0) return done == 0 ? -1 : total;
    total += (int)r;
    done += chunk;
  } while (done < nent);
  return total;
}

EXPORT int port_get(int port, port_event_t *pe, struct timespec *timeout) {
  long sec = timeout ? (long)timeout->tv_sec : 0;
  long nsec = timeout ? timeout->tv_nsec : 0;
  long r = portfs(EVSHIM_PORT_GET, port, (long)pe, sec, nsec, (long)timeout);
  if (r < 0) return -1;
  /* A zero timeout with nothing queued returns 0 and leaves *pe untouched. */
  if (pe != NULL && pe->portev_source == PORT_SOURCE_FD) pe->portev_events = poll_from_illumos(pe->portev_events);
  return 0;
}

EXPORT int port_getn(int port, port_event_t list[], uint_t max, uint_t *nget, struct timespec *timeout) {
  if (nget == NULL) {
    errno = EINVAL;
    return -1;
  }
  long r = portfs(EVSHIM_PORT_GETN, port, (long)list, max, *nget, (long)timeout);
  if (r == -1) return -1; /* a hard error: *nget is not updated (event_port.c) */
  unsigned long v = (unsigned long)r;
  unsigned count;
  int etime;
#if defined(__x86_64__)
  count = (unsigned)(v & 0xffffffffu);
  etime = (int)(v >> 32) == ETIME;
#else
  count = (unsigned)(v & ~EVSHIM_PORT_ILP32_ETIME_BIT);
  etime = (v & EVSHIM_PORT_ILP32_ETIME_BIT) != 0;
#endif
  *nget = count;
  if (max != 0 && list != NULL) fix_events(list, count);
  if (etime) {
    errno = ETIME;
    return -1;
  }
  return 0;
}

EXPORT int port_alert(int port, int flags, int events, void *user) {
  return (int)portfs(EVSHIM_PORT_ALERT, port, flags, events, (long)user, 0);
}
