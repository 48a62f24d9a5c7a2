/*
 * evshim: DragonFly <sys/event.h> for Linux builds. Values are DragonFly's
 * (sys/sys/event.h; docs/rules-bsd.md), the system call
 * numbers are evshim's (abi/syscall_table.cc, docs/kqueue.md). Errors are
 * reported with glibc's errno values, in errno and in EV_ERROR `data`.
 */
#ifndef EVSHIM_DRAGONFLY_SYS_EVENT_H
#define EVSHIM_DRAGONFLY_SYS_EVENT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
/* struct timespec even under strict -std=c99 (glibc declares it only for POSIX). */
#include <bits/types/struct_timespec.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EVSHIM_KQUEUE_PERSONALITY "dragonfly"

/* filters */
#define EVFILT_READ (-1)
#define EVFILT_WRITE (-2)
#define EVFILT_AIO (-3)
#define EVFILT_VNODE (-4)
#define EVFILT_PROC (-5)
#define EVFILT_SIGNAL (-6)
#define EVFILT_TIMER (-7)
#define EVFILT_EXCEPT (-8)
#define EVFILT_USER (-9)
#define EVFILT_FS (-10)
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
#define EV_SYSFLAGS 0xF800
#define EV_HUP 0x0800
#define EV_NODATA 0x1000
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
/* EVFILT_FS hints: <sys/mount.h> on the BSDs, whose Linux namesake lacks
 * them. */
#ifndef VQ_MOUNT
#define VQ_MOUNT 0x0008
#define VQ_UNMOUNT 0x0010
#endif

#define NOTE_LOWAT 0x0001
#define NOTE_OOB 0x0002
#define NOTE_DELETE 0x0001
#define NOTE_WRITE 0x0002
#define NOTE_EXTEND 0x0004
#define NOTE_ATTRIB 0x0008
#define NOTE_LINK 0x0010
#define NOTE_RENAME 0x0020
#define NOTE_REVOKE 0x0040
#define NOTE_EXIT 0x80000000U
#define NOTE_FORK 0x40000000
#define NOTE_EXEC 0x20000000
#define NOTE_PCTRLMASK 0xf0000000U
#define NOTE_PDATAMASK 0x000fffff
#define NOTE_TRACK 0x00000001
#define NOTE_TRACKERR 0x00000002
#define NOTE_CHILD 0x00000004

struct kevent {
  uintptr_t ident;        /* identifier for this event */
  short filter;           /* filter for event */
  unsigned short flags;   /* action flags for kqueue */
  unsigned int fflags;    /* filter flag value */
  intptr_t data;       /* filter data value */
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
#define EVSHIM_SYS_kqueue 1020
#define EVSHIM_SYS_kevent 1021
#else
#define EVSHIM_SYS_kqueue 1020
#define EVSHIM_SYS_kevent 1021
#endif

int kqueue(void);
int kevent(int kq, const struct kevent *changelist, int nchanges, struct kevent *eventlist,
           int nevents, const struct timespec *timeout);

#ifdef __cplusplus
}
#endif

#endif /* EVSHIM_DRAGONFLY_SYS_EVENT_H */
