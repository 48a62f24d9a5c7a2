/*
 * evshim: illumos <sys/port_impl.h> for Linux builds (docs/abi.md).
 *
 * On illumos this header belongs to the event-port implementation: its
 * kernel half (port and queue structures) is hidden behind _KERNEL, and
 * what remains visible to a program is the portfs system call's opcode
 * numbering and the list limit. Programs are not meant to use it (illumos
 * marks its contents private), but some include it next to <port.h>
 * (APR's poll code does), so it exists and gives the same user-visible
 * names with illumos's values. They are the opcodes evshim's library sends
 * on the raw portfs call (<evshim_portfs.h> spells them EVSHIM_PORT_*).
 * Nothing here is needed to use the port_* functions of <port.h>.
 */
#ifndef EVSHIM_SYS_PORT_IMPL_H
#define EVSHIM_SYS_PORT_IMPL_H

#include <sys/port.h>

/* portfs opcodes: the low byte of the call's first argument */
#define PORT_CREATE 0
#define PORT_ASSOCIATE 1
#define PORT_DISSOCIATE 2
#define PORT_SEND 3
#define PORT_SENDN 4
#define PORT_GET 5
#define PORT_GETN 6
#define PORT_ALERT 7
#define PORT_DISPATCH 8

/* opcode flags: the call names no port (PORT_CREATE, PORT_SENDN, and the
 * descriptor notices), and an event that cannot be shared */
#define PORT_SYS_NOPORT 0x100
#define PORT_SYS_NOSHARE 0x200
#define PORT_CODE_MASK 0xff

/* the list limit: PORT_SENDN takes at most this many ports, PORT_GETN
 * returns at most this many events per call (illumos port.c:992, 1394) */
#define PORT_MAX_LIST 8192

#endif
