/*
 * (6) The values a BSD personality's foreign <sys/event.h> gives a program,
 * emitted into a table that bsd_constants_test.cc compares with
 * abi/<personality>/constants.h, abi/bsd/kevent.h and the syscall table.
 * Compiled once per personality (EVSHIM_P = freebsd, openbsd, dragonfly)
 * against that personality's include directory alone.
 */
#include <stddef.h>
#include <sys/event.h>

#include "illumos_header_values.h" /* struct evshim_header_value */

#define EVSHIM_CAT3(a, b, c) a##b##c
#define EVSHIM_TABLE(p) EVSHIM_CAT3(evshim_, p, _header_values)
#define EVSHIM_COUNT(p) EVSHIM_CAT3(evshim_, p, _header_value_count)

#define X(name) {#name, (long long)(name)},
#define SIZE(type) {"sizeof(" #type ")", (long long)sizeof(type)},
#define OFF(type, field) {"offsetof(" #type ", " #field ")", (long long)offsetof(type, field)},

extern const struct evshim_header_value EVSHIM_TABLE(EVSHIM_P)[];
extern const unsigned EVSHIM_COUNT(EVSHIM_P);

const struct evshim_header_value EVSHIM_TABLE(EVSHIM_P)[] = {
#include EVSHIM_NAMES /* "bsd_names_<p>.def", from the build */
    SIZE(struct kevent)
    OFF(struct kevent, ident)
    OFF(struct kevent, filter)
    OFF(struct kevent, flags)
    OFF(struct kevent, fflags)
    OFF(struct kevent, data)
    OFF(struct kevent, udata)
#if defined(EVSHIM_SYS_kqueuex) /* FreeBSD */
    OFF(struct kevent, ext)
    SIZE(struct kevent_freebsd11)
    OFF(struct kevent_freebsd11, data)
    OFF(struct kevent_freebsd11, udata)
    X(EVSHIM_SYS_kqueuex)
    X(EVSHIM_SYS_freebsd11_kevent)
#endif
#if defined(EVSHIM_SYS_kqueue1)
    X(EVSHIM_SYS_kqueue1)
#endif
    X(EVSHIM_SYS_kqueue)
    X(EVSHIM_SYS_kevent)
};

const unsigned EVSHIM_COUNT(EVSHIM_P) = sizeof EVSHIM_TABLE(EVSHIM_P) / sizeof EVSHIM_TABLE(EVSHIM_P)[0];
