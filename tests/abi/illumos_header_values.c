/*
 * (6) The values the illumos foreign headers give a program, emitted into a
 * table the abi tests compare with abi/illumos/constants.h and the syscall
 * table (illumos_constants_test.cc). Compiled as C against the installed
 * header layout (-I abi/illumos/include) only, so nothing of evshim's C++
 * side can leak into what the headers define.
 *
 * The same file is compiled with -m32 by the header checks
 * (tests/meson.build): the static assertions below then pin the i386 layout
 * of the header's structs.
 */
#include <port.h>
#include <stddef.h>
#include <sys/port_impl.h>

#include "evshim_portfs.h"

#include "illumos_header_values.h"

#define V(name) {#name, (long long)(name)}
#define SIZE(type) {"sizeof(" #type ")", (long long)sizeof(type)}
#define OFF(type, field) {"offsetof(" #type ", " #field ")", (long long)offsetof(type, field)}

const struct evshim_header_value evshim_illumos_header_values[] = {
    /* <sys/port.h> */
    V(PORT_SOURCE_AIO),
    V(PORT_SOURCE_TIMER),
    V(PORT_SOURCE_USER),
    V(PORT_SOURCE_FD),
    V(PORT_SOURCE_ALERT),
    V(PORT_SOURCE_MQ),
    V(PORT_SOURCE_FILE),
    V(PORT_ALERT_SET),
    V(PORT_ALERT_UPDATE),
    V(PORT_ALERT_INVALID),
    V(FILE_ACCESS),
    V(FILE_MODIFIED),
    V(FILE_ATTRIB),
    V(FILE_TRUNC),
    V(FILE_NOFOLLOW),
    V(FILE_DELETE),
    V(FILE_RENAME_TO),
    V(FILE_RENAME_FROM),
    V(UNMOUNTED),
    V(MOUNTEDOVER),
    V(FILE_EXCEPTION),
    SIZE(port_event_t),
    OFF(port_event_t, portev_events),
    OFF(port_event_t, portev_source),
    OFF(port_event_t, portev_pad),
    OFF(port_event_t, portev_object),
    OFF(port_event_t, portev_user),
    SIZE(port_notify_t),
    OFF(port_notify_t, portnfy_port),
    OFF(port_notify_t, portnfy_user),
    SIZE(file_obj_t),
    OFF(file_obj_t, fo_atime),
    OFF(file_obj_t, fo_mtime),
    OFF(file_obj_t, fo_ctime),
    OFF(file_obj_t, fo_pad),
    OFF(file_obj_t, fo_name),
    SIZE(timespec_t),
    SIZE(uint_t),
    SIZE(ushort_t),
    /* <sys/port_impl.h> */
    V(PORT_CREATE),
    V(PORT_ASSOCIATE),
    V(PORT_DISSOCIATE),
    V(PORT_SEND),
    V(PORT_SENDN),
    V(PORT_GET),
    V(PORT_GETN),
    V(PORT_ALERT),
    V(PORT_DISPATCH),
    V(PORT_SYS_NOPORT),
    V(PORT_SYS_NOSHARE),
    V(PORT_CODE_MASK),
    V(PORT_MAX_LIST),
    /* <evshim_portfs.h> */
    V(EVSHIM_SYS_portfs),
    V(EVSHIM_SYS_timer_create),
    V(EVSHIM_SYS_timer_delete),
    V(EVSHIM_SYS_timer_settime),
    V(EVSHIM_SYS_timer_gettime),
    V(EVSHIM_SYS_timer_getoverrun),
    V(EVSHIM_PORT_CREATE),
    V(EVSHIM_PORT_ASSOCIATE),
    V(EVSHIM_PORT_DISSOCIATE),
    V(EVSHIM_PORT_SEND),
    V(EVSHIM_PORT_SENDN),
    V(EVSHIM_PORT_GET),
    V(EVSHIM_PORT_GETN),
    V(EVSHIM_PORT_ALERT),
    V(EVSHIM_PORT_DISPATCH),
    V(EVSHIM_PORT_SYS_NOPORT),
    V(EVSHIM_PORT_FD_CLOSING),
    V(EVSHIM_PORT_SETTLE),
    V(EVSHIM_PORT_ILP32_ETIME_BIT),
    V(EVSHIM_ILLUMOS_POLLWRBAND),
    V(EVSHIM_ILLUMOS_POLLRDHUP),
};

const unsigned evshim_illumos_header_value_count =
    sizeof evshim_illumos_header_values / sizeof evshim_illumos_header_values[0];

#if defined(__i386__)
/* docs/rules-ports.md §1.6, i386 column; docs/abi.md "Wire structs". */
_Static_assert(sizeof(port_event_t) == 16, "port_event32_t size");
_Static_assert(offsetof(port_event_t, portev_object) == 8, "port_event32_t object");
_Static_assert(offsetof(port_event_t, portev_user) == 12, "port_event32_t user");
_Static_assert(sizeof(port_notify_t) == 8, "port_notify32_t size");
_Static_assert(offsetof(port_notify_t, portnfy_user) == 4, "port_notify32_t user");
_Static_assert(sizeof(file_obj_t) == 40, "file_obj32_t size");
_Static_assert(offsetof(file_obj_t, fo_pad) == 24, "file_obj32_t pad");
_Static_assert(offsetof(file_obj_t, fo_name) == 36, "file_obj32_t name");
_Static_assert(sizeof(timespec_t) == 8, "timespec32_t size");
_Static_assert(EVSHIM_SYS_portfs == 1000, "i386 portfs is relocated (182 is chown)");
#elif defined(__x86_64__)
_Static_assert(sizeof(port_event_t) == 24, "port_event_t size");
_Static_assert(EVSHIM_SYS_portfs == 182, "x86_64 portfs keeps illumos's number");
#endif
