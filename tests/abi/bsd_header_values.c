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
/* A field's width and whether its type is signed ((T)-1 is below (T)1). */
#define FIELD_TYPE(type, field) __typeof__(((type *)0)->field)
#define WIDTH(type, field) {"width(" #type ", " #field ")", (long long)sizeof(((type *)0)->field)},
#define SIGNED(type, field) \
  {"signed(" #type ", " #field ")", (long long)((FIELD_TYPE(type, field))-1 < (FIELD_TYPE(type, field))1)},
#define INT_FIELD(type, field) OFF(type, field) WIDTH(type, field) SIGNED(type, field)

extern const struct evshim_header_value EVSHIM_TABLE(EVSHIM_P)[];
extern const unsigned EVSHIM_COUNT(EVSHIM_P);

const struct evshim_header_value EVSHIM_TABLE(EVSHIM_P)[] = {
#include EVSHIM_NAMES /* "bsd_names_<p>.def", from the build */
    SIZE(struct kevent)
    INT_FIELD(struct kevent, ident)
    INT_FIELD(struct kevent, filter)
    INT_FIELD(struct kevent, flags)
    INT_FIELD(struct kevent, fflags)
    INT_FIELD(struct kevent, data)
    OFF(struct kevent, udata)
    WIDTH(struct kevent, udata)
#if defined(EVSHIM_SYS_kqueuex) /* FreeBSD */
    OFF(struct kevent, ext)
    INT_FIELD(struct kevent, ext[0])
    SIZE(struct kevent_freebsd11)
    OFF(struct kevent_freebsd11, data)
    WIDTH(struct kevent_freebsd11, data)
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
