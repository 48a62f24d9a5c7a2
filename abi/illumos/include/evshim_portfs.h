/*
 * evshim: the raw portfs system-call convention (docs/abi.md). For programs
 * that issue the syscall themselves, and for evshim's ABI tests.
 */
#ifndef EVSHIM_PORTFS_H
#define EVSHIM_PORTFS_H

#if defined(__x86_64__)
#define EVSHIM_SYS_portfs 182
#else
#define EVSHIM_SYS_portfs 1000
#endif
#define EVSHIM_SYS_timer_create 1001
#define EVSHIM_SYS_timer_delete 1002
#define EVSHIM_SYS_timer_settime 1003
#define EVSHIM_SYS_timer_gettime 1004
#define EVSHIM_SYS_timer_getoverrun 1005

/* portfs opcodes */
#define EVSHIM_PORT_CREATE 0
#define EVSHIM_PORT_ASSOCIATE 1
#define EVSHIM_PORT_DISSOCIATE 2
#define EVSHIM_PORT_SEND 3
#define EVSHIM_PORT_SENDN 4
#define EVSHIM_PORT_GET 5
#define EVSHIM_PORT_GETN 6
#define EVSHIM_PORT_ALERT 7
#define EVSHIM_PORT_DISPATCH 8
#define EVSHIM_PORT_SYS_NOPORT 0x100
/* evshim-private, with EVSHIM_PORT_SYS_NOPORT: a0 = a descriptor the caller
 * is about to close (the library's close/dup2/dup3; docs/design.md). */
#define EVSHIM_PORT_FD_CLOSING 0x40
/* evshim-private, with EVSHIM_PORT_SYS_NOPORT, no argument: the library's
 * poll family makes port descriptors' readiness current (docs/abi.md §10). */
#define EVSHIM_PORT_SETTLE 0x41
/* evshim-private, with EVSHIM_PORT_SYS_NOPORT: a0 = a port's state, a1 = its
 * size; the in-process engine's hand-over of a port before fork (docs/design.md). */
#define EVSHIM_PORT_ADOPT 0x42

/* PORT_GETN returns count | ETIME << 32 (LP64) or count | 0x40000000 (ILP32). */
#define EVSHIM_PORT_ILP32_ETIME_BIT 0x40000000u

/* illumos poll bits at the syscall boundary (where they differ from Linux). */
#define EVSHIM_ILLUMOS_POLLWRBAND 0x0100
#define EVSHIM_ILLUMOS_POLLRDHUP 0x4000

#endif
