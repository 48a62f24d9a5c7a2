/*
 * evshim: illumos <sys/port.h> for Linux builds. Values are illumos's
 * (usr/src/uts/common/sys/port.h); see docs/abi.md.
 */
#ifndef EVSHIM_SYS_PORT_H
#define EVSHIM_SYS_PORT_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>
/* Strict ISO C (-std=c99 without POSIX feature macros) hides struct timespec
 * in <time.h>; file_obj_t needs it, so take glibc's own definition. */
#if defined(__GLIBC__) && !defined(_STRUCT_TIMESPEC)
#include <bits/types/struct_timespec.h>
#endif

#ifndef EVSHIM_SOLARIS_TYPES
#define EVSHIM_SOLARIS_TYPES
typedef unsigned int uint_t;
typedef unsigned short ushort_t;
typedef struct timespec timespec_t;
typedef struct timespec timestruc_t;
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* port sources */
#define PORT_SOURCE_AIO 1
#define PORT_SOURCE_TIMER 2
#define PORT_SOURCE_USER 3
#define PORT_SOURCE_FD 4
#define PORT_SOURCE_ALERT 5
#define PORT_SOURCE_MQ 6
#define PORT_SOURCE_FILE 7

/*
 * timer_create(2) notification through a port: sigev_notify = SIGEV_PORT,
 * sigev_value.sival_ptr = &(port_notify_t){port, user}. illumos's value (4)
 * is glibc's SIGEV_THREAD_ID, so evshim uses 0x104; other notify kinds go to
 * glibc's timer_create unchanged (docs/abi.md "Timers").
 */
#define SIGEV_PORT 0x104

/* port_alert() flags */
#define PORT_ALERT_SET 0x01
#define PORT_ALERT_UPDATE 0x02
#define PORT_ALERT_INVALID (PORT_ALERT_SET | PORT_ALERT_UPDATE)

typedef struct port_event {
  int portev_events;       /* event data is source specific */
  ushort_t portev_source;  /* event source */
  ushort_t portev_pad;     /* port internal use */
  uintptr_t portev_object; /* source specific object */
  void *portev_user;       /* user cookie */
} port_event_t;

typedef struct port_notify {
  int portnfy_port;   /* bind request(s) to port */
  void *portnfy_user; /* user defined */
} port_notify_t;

/* PORT_SOURCE_FILE */
typedef struct file_obj {
  timestruc_t fo_atime; /* Access time from stat(2) */
  timestruc_t fo_mtime; /* Modification time from stat(2) */
  timestruc_t fo_ctime; /* Change time from stat(2) */
  uintptr_t fo_pad[3];  /* For future expansion */
  char *fo_name;        /* Null terminated file name */
} file_obj_t;

#define FILE_ACCESS 0x00000001
#define FILE_MODIFIED 0x00000002
#define FILE_ATTRIB 0x00000004
#define FILE_TRUNC 0x00100000
#define FILE_NOFOLLOW 0x10000000
#define FILE_DELETE 0x00000010
#define FILE_RENAME_TO 0x00000020
#define FILE_RENAME_FROM 0x00000040
#define UNMOUNTED 0x20000000
#define MOUNTEDOVER 0x40000000
#define FILE_EXCEPTION (UNMOUNTED | FILE_DELETE | FILE_RENAME_TO | FILE_RENAME_FROM | MOUNTEDOVER)

#ifdef __cplusplus
}
#endif

#endif /* EVSHIM_SYS_PORT_H */
