/*
 * evshim: the illumos event-port API (port_create(3C) and friends) for
 * programs built on Linux. Link with -levshim-ports (pkg-config evshim-ports)
 * and run under `evshim run`. Errors are reported in errno with the host's
 * (glibc) values; poll bits are this system's <poll.h> values.
 */
#ifndef EVSHIM_PORT_H
#define EVSHIM_PORT_H

#include <sys/port.h>

#ifdef __cplusplus
extern "C" {
#endif

int port_create(void);
int port_associate(int port, int source, uintptr_t object, int events, void *user);
int port_dissociate(int port, int source, uintptr_t object);
int port_send(int port, int events, void *user);
int port_sendn(int ports[], int errors[], uint_t nent, int events, void *user);
int port_get(int port, port_event_t *pe, struct timespec *timeout);
int port_getn(int port, port_event_t list[], uint_t max, uint_t *nget, struct timespec *timeout);
int port_alert(int port, int flags, int events, void *user);

#ifdef __cplusplus
}
#endif

#endif /* EVSHIM_PORT_H */
