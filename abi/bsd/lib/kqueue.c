/*
 * evshim: the kqueue library of one BSD personality (FreeBSD, OpenBSD or
 * DragonFly: the <sys/event.h> it is compiled against decides). Each
 * function issues the personality's system call with the foreign wire
 * layouts (struct kevent is already one; the timeout is converted to the
 * foreign struct timespec) and reports errors the Linux way: -1 and errno.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/event.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

/* The foreign struct timespec (research/kevent-abi.md §2): 16 bytes on
 * x86_64; on i386 FreeBSD and DragonFly 8 (32-bit time_t), OpenBSD 12
 * (64-bit time_t, 4-byte aligned). */
#if defined(__x86_64__)
struct wire_timespec {
  int64_t sec;
  int64_t nsec;
};
#elif defined(EVFILT_DEVICE) /* OpenBSD */
struct wire_timespec {
  int64_t sec;
  int32_t nsec;
} __attribute__((packed, aligned(4)));
#else
struct wire_timespec {
  int32_t sec;
  int32_t nsec;
};
#endif

static const struct wire_timespec *to_wire(const struct timespec *ts, struct wire_timespec *out) {
  if (ts == NULL) return NULL;
  out->sec = ts->tv_sec;
  out->nsec = ts->tv_nsec;
  return out;
}

EXPORT int kqueue(void) { return (int)syscall(EVSHIM_SYS_kqueue); }

#ifdef EVSHIM_SYS_kqueuex
EXPORT int kqueuex(unsigned int flags) { return (int)syscall(EVSHIM_SYS_kqueuex, (long)flags); }

/* FreeBSD libc: kqueue1(O_CLOEXEC) is kqueuex(KQUEUE_CLOEXEC). */
EXPORT int kqueue1(int flags) {
  if (flags & ~O_CLOEXEC) {
    errno = EINVAL;
    return -1;
  }
  return kqueuex((flags & O_CLOEXEC) ? KQUEUE_CLOEXEC : 0);
}
#endif

#ifdef EVSHIM_SYS_kqueue1
/* OpenBSD kqueue1: glibc's O_CLOEXEC/O_NONBLOCK become OpenBSD's; any other
 * bit reaches the kernel, which refuses it (EINVAL). */
EXPORT int kqueue1(int flags) {
  long wire = 0;
  if (flags & O_CLOEXEC) wire |= 0x10000;
  if (flags & O_NONBLOCK) wire |= 0x0004;
  if (flags & ~(O_CLOEXEC | O_NONBLOCK)) wire |= 0x40000000;
  return (int)syscall(EVSHIM_SYS_kqueue1, wire);
}
#endif

EXPORT int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
                  int nevents, const struct timespec *timeout) {
  struct wire_timespec ts;
  return (int)syscall(EVSHIM_SYS_kevent, (long)kq, changelist, (long)nchanges, eventlist,
                      (long)nevents, to_wire(timeout, &ts));
}

#ifdef EVSHIM_SYS_freebsd11_kevent
EXPORT int freebsd11_kevent(int kq, const struct kevent_freebsd11 *changelist, int nchanges,
                            struct kevent_freebsd11 *eventlist, int nevents,
                            const struct timespec *timeout) {
  struct wire_timespec ts;
  return (int)syscall(EVSHIM_SYS_freebsd11_kevent, (long)kq, changelist, (long)nchanges, eventlist,
                      (long)nevents, to_wire(timeout, &ts));
}
#endif
