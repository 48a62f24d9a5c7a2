/*
 * evshim: OpenBSD <sys/event.h> for Linux builds. Values are OpenBSD's
 * (sys/sys/event.h 1.74; docs/rules-bsd.md), the system call
 * numbers are evshim's (abi/syscall_table.cc, docs/kqueue.md). Errors are
 * reported with glibc's errno values, in errno and in EV_ERROR `data`.
 */
#ifndef EVSHIM_OPENBSD_SYS_EVENT_H
#define EVSHIM_OPENBSD_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
/* struct timespec even under strict -std=c99 (glibc declares it only for POSIX). */
#include <bits/types/struct_timespec.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVSHIM_KQUEUE_PERSONALITY "openbsd"

/* filters */
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_AIO (-3)
#define EVFILT_VNODE (-4)
#define EVFILT_PROC (-5)
#define EVFILT_SIGNAL (-6)
#define EVFILT_TIMER (-7)
#define EVFILT_DEVICE (-8)
#define EVFILT_EXCEPT (-9)
#define EVFILT_USER (-10)
#define EVFILT_SYSCOUNT 10

/* actions, flags, returned values */
#define EV_ADD 0x0001
#define EV_DELETE 0x0002
#define EV_ENABLE 0x0004
#define EV_DISABLE 0x0008
#define EV_ONESHOT 0x0010
#define EV_CLEAR 0x0020
#define EV_RECEIPT 0x0040
#define EV_DISPATCH 0x0080
#define EV_SYSFLAGS 0xf800
#define EV_FLAG1 0x2000
#define EV_EOF 0x8000
#define EV_ERROR 0x4000

/* filter-specific flags (fflags) */
#define NOTE_FFNOP 0x00000000
#define NOTE_FFAND 0x40000000
#define NOTE_FFOR 0x80000000
#define NOTE_FFCOPY 0xc0000000
#define NOTE_FFCTRLMASK 0xc0000000
#define NOTE_FFLAGSMASK 0x00ffffff
#define NOTE_TRIGGER 0x01000000
#define NOTE_LOWAT 0x0001
#define NOTE_EOF 0x0002
#define NOTE_OOB 0x0004
#define NOTE_DELETE 0x0001
#define NOTE_WRITE 0x0002
#define NOTE_EXTEND 0x0004
#define NOTE_ATTRIB 0x0008
#define NOTE_LINK 0x0010
#define NOTE_RENAME 0x0020
#define NOTE_REVOKE 0x0040
#define NOTE_TRUNCATE 0x0080
#define NOTE_EXIT 0x80000000U
#define NOTE_FORK 0x40000000
#define NOTE_EXEC 0x20000000
#define NOTE_PCTRLMASK 0xf0000000U
#define NOTE_PDATAMASK 0x000fffff
#define NOTE_TRACK 0x00000001
#define NOTE_TRACKERR 0x00000002
#define NOTE_CHILD 0x00000004
#define NOTE_MSECONDS 0x00000000
#define NOTE_SECONDS 0x00000001
#define NOTE_USECONDS 0x00000002
#define NOTE_NSECONDS 0x00000003
#define NOTE_TIMER_UNITMASK 0x00000003
#define NOTE_ABSTIME 0x00000010

struct kevent {
  uintptr_t ident;        /* identifier for this event */
  short filter;           /* filter for event */
  unsigned short flags;   /* action flags for kqueue */
  unsigned int fflags;    /* filter flag value */
  int64_t data;        /* filter data value */
  void *udata;            /* opaque user data identifier */
};

#define EV_SET(kevp_, a, b, c, d, e, f)          \
  do {                                           \
    struct kevent *evshim_kevp_ = (kevp_);       \
    evshim_kevp_->ident = (a);                   \
    evshim_kevp_->filter = (short)(b);           \
    evshim_kevp_->flags = (unsigned short)(c);   \
    evshim_kevp_->fflags = (unsigned int)(d);    \
    evshim_kevp_->data = (e);                    \
    evshim_kevp_->udata = (f);                   \
  } while (0)

/* evshim's system call numbers for this personality (x86_64 / i386). */
#if defined(__x86_64__)
#define EVSHIM_SYS_kevent 1030
#define EVSHIM_SYS_kqueue 1031
#define EVSHIM_SYS_kqueue1 1032
#else
#define EVSHIM_SYS_kevent 1030
#define EVSHIM_SYS_kqueue 1031
#define EVSHIM_SYS_kqueue1 1032
#endif

int kqueue(void);
int kqueue1(int flags); /* O_CLOEXEC, O_NONBLOCK (glibc's values) */
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* EVSHIM_OPENBSD_SYS_EVENT_H */
