#!/usr/bin/env bash
# libuv 1.44.2 (Debian's source, libuv1) under evshim: its kqueue poller
# (src/unix/kqueue.c, with uv_fs_event on EVFILT_VNODE) and its event-port
# poller (src/unix/sunos.c, with uv_fs_event on PORT_SOURCE_FILE), each in a
# Linux build that has no epoll and no inotify, against a native (epoll)
# build of the same source. Runs libuv's own test runner (uv_run_tests_a)
# under `evshim run` (fast and --supervised) and natively; each test case is
# counted.
#   variants: kqueue ports (+ native)
# docs/clients.md "## libuv" says how the build is changed, what runs and
# how the backend is proved.
# Environment: EVSHIM_CLIENTS_JOBS (make jobs, default 2),
# EVSHIM_LIBUV_RUN_TIMEOUT (seconds per run of the runner, 400).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

libuv_version=1.44.2-1+deb12u1
jobs=${EVSHIM_CLIENTS_JOBS:-2}
run_timeout=${EVSHIM_LIBUV_RUN_TIMEOUT:-400}
variants=(kqueue ports)
# The runner refuses to run as root (test/run-tests.c:68-72): as root, every
# run is made as this user (nobody), in a directory it owns.
run_as=()
[ "$(id -u)" -eq 0 ] && run_as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
# --quick: these cases only, each in its own runner process (`uv_run_tests_a
# NAME`), chosen for the loop (docs/clients.md "## libuv", "The subset").
quick_cases=(
  tcp_ping_pong tcp6_ping_pong pipe_ping_pong udp_send_and_recv tcp_write_queue_order
  timer timer_again timer_order idle_starvation idle_check async we_get_signal
  we_get_signals poll_duplex poll_unidirectional fs_event_watch_file_exact_path fs_event_watch_dir
  fs_event_close_in_callback
  spawn_and_kill spawn_exit_code spawn_stdout threadpool_queue_work_simple loop_stop
  loop_alive fork_timer fork_socketpair ipc_send_recv_pipe embed
)
quick=${EVSHIM_CLIENTS_QUICK:-0}
# Expected differences: cases whose expectation is epoll's, not a kqueue
# or illumos system's, and two that depend on this machine's network. A
# key NAME holds for every variant, VARIANT:NAME for that variant only.
# Each is still run; when it fails under evshim and passes natively it is
# reported as skipped under evshim (with its native status), its reason in
# the log (docs/clients.md "## libuv", "Not run, and expected
# differences").
declare -A expected_differences=(
  # Not run on FreeBSD, DragonFly, OpenBSD, illumos (test-poll.c:627-636):
  # a directory's descriptor is pollable by a BSD kqueue (EVFILT_READ) and
  # by an event port (PORT_SOURCE_FD), not by epoll.
  [poll_bad_fdtype]="test-poll.c:627-636 (not on the BSDs nor __sun): uv_poll_init of a directory fails with epoll only"
  # This machine's network, not the backend: they connect to 1.2.3.4 and
  # 8.8.8.8:9999 and expect no answer before a 1-ms timer (close while
  # connecting) or a 50-ms one (connect timeout); here the connection is
  # accepted within a millisecond (connect() to any address completes here:
  # 0.2-0.3 ms, status 0), so natively they fail most runs (a race).
  [tcp_close_while_connecting]="test-tcp-close-while-connecting.c:45,72-82: 1.2.3.4 must not answer within 1 ms; here any connect() completes in 0.3 ms (natively 5 of 6 runs fail)"
  [tcp_connect_timeout]="test-tcp-connect-timeout.c:42,67-79: 8.8.8.8:9999 must not answer within 50 ms; here any connect() completes in 0.2 ms (fails natively)"
  # A TCP socket never connected: Linux polls it POLLHUP, a port reports
  # POLLHUP unasked (docs/rules-ports.md rule 6), sunos.c hands the bits on
  # as they are (sunos.c:310) and uv__poll_io makes no UV_ event of a lone
  # POLLHUP (poll.c:55-62), so the callback gets 0; epoll.c merges the
  # watched POLLIN into a lone POLLHUP (epoll.c:362-364): "linux
  # immediately reports UV_READABLE, other OS do not" (the test's comment).
  [ports:poll_multiple_handles]="test-poll-multiple-handles.c:41-44: expects epoll.c's POLLIN for a lone POLLHUP (epoll.c:362-364); sunos.c passes POLLHUP on (sunos.c:310), which uv__poll_io reports as no event (poll.c:55-62)"
)
# Not run: with the expectations of a kqueue or illumos system (the
# builds' test-fork.c, below) these cases return at once without testing
# anything; reported as skipped under evshim.
declare -A not_run=(
  # test-fork.c:521-530, __linux__ and __APPLE__ only: a write to a file
  # seen on its directory, which inotify reports and neither an
  # EVFILT_VNODE knote nor a PORT_SOURCE_FILE watch on the directory does.
  [fork_fs_events_child_dir]="test-fork.c:521-530: runs on __linux__ and __APPLE__ only (a file's write seen on its directory: inotify's)"
  # test-fork.c:537-545: not on __sun, "not possible ... without
  # additional bookkeeping": sunos.c's uv__io_fork closes the fs-event port
  # (sunos.c:102-111), so the child's watch is gone.
  [ports:fork_fs_events_file_parent_child]="test-fork.c:537-545: returns at once on __sun (sunos.c's uv__io_fork drops the parent's file watches, sunos.c:102-111)"
)

clients_need_packages gcc make cmake binutils pkg-config python3 util-linux strace || exit 1
clients_fetch_source libuv1 "$libuv_version" libuv || exit 1
src=$EVSHIM_CLIENTS_WORK/src/libuv
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1

work=$EVSHIM_CLIENTS_WORK/libuv
gen=$work/gen
genp=$work/gen-ports
results=$work/results
logs=$EVSHIM_CLIENTS_LOGS/libuv
rm -rf "$results" "$logs"
mkdir -p "$work" "$gen/include/sys" "$genp" "$results" "$logs"

pkg_of() { case $1 in kqueue) echo evshim-kqueue-freebsd ;; ports) echo evshim-ports ;; native) echo "" ;; esac; }

# The kqueue build's changes, all in files written here and read through
# CMake's and the compiler's options; no libuv file is edited
# (docs/clients.md "## libuv", "The build change", numbered as here, says
# why each is so).
write_kqueue_files() {
  # 4. kqueue.c includes <sys/sysctl.h> (kqueue.c:29), which glibc 2.32+
  # no longer has; kqueue.c uses nothing from it.
  cat >"$gen/include/sys/sysctl.h" <<'EOF'
/* scripts/clients.d/libuv.sh: libuv's kqueue.c includes <sys/sysctl.h>,
 * which glibc no longer ships; it uses nothing from it. */
EOF
  # 3. The public header's platform fields (read first by every C file of
  # the build, the tests included: -include). unix.h includes uv/linux.h on
  # Linux; its guard is taken here, and its fields given instead: the loop's
  # keep Linux's (linux-core.c's uv__platform_loop_init and _delete use
  # inotify_fd, which stays -1), the fs_event handle and uv__io_t get the
  # BSD ones (uv/bsd.h) that kqueue.c, stream.c and core.c use under
  # UV_HAVE_KQUEUE.
  cat >"$gen/evshim_uv_kqueue.h" <<'EOF'
/* scripts/clients.d/libuv.sh: read before every C file of the kqueue build. */
#ifndef EVSHIM_UV_KQUEUE_H
#define EVSHIM_UV_KQUEUE_H
#define UV_LINUX_H 1
#define UV_PLATFORM_LOOP_FIELDS \
  uv__io_t inotify_read_watcher; \
  void* inotify_watchers; \
  int inotify_fd;
#define UV_PLATFORM_FS_EVENT_FIELDS \
  uv__io_t event_watcher;
#define UV_IO_PRIVATE_PLATFORM_FIELDS \
  int rcount; \
  int wcount;
#define UV_HAVE_KQUEUE 1
#endif
EOF
  # 2. linux-core.c's own uv__io_fork re-creates the epoll descriptor and
  # the inotify watchers; kqueue.c has its own. linux-core.c's is compiled
  # under another name that nothing calls, and the inotify call in it goes
  # to this stub.
  cat >"$gen/evshim_uv_kqueue.c" <<'EOF'
/* scripts/clients.d/libuv.sh: the kqueue build's stand-in for the inotify
 * fork (linux-inotify.c is not built). Only linux-core.c's renamed, never
 * called uv__io_fork refers to it. */
#include <stdlib.h>
#include "uv.h"
int uv__evshim_no_inotify_fork(uv_loop_t* loop, void* old_watchers);
int uv__evshim_no_inotify_fork(uv_loop_t* loop, void* old_watchers) {
  (void) loop;
  (void) old_watchers;
  abort();
}
EOF
  # 1. The sources: read by CMake right after libuv's project() call
  # (CMAKE_PROJECT_INCLUDE). epoll.c and linux-inotify.c are marked as not
  # compiled, linux-core.c gets its three renames, and kqueue.c (and the
  # stub) join both libraries once CMakeLists.txt has made them (DEFER: at
  # the end of its directory). 5. The fs-event tests' expectations of a
  # kqueue system: test-fs-event.c and test-fork.c are compiled without
  # __linux__, whose branches in them are inotify's (a file name in every
  # callback; kqueue.c gives NULL without F_GETPATH, macOS's) and nothing
  # else (no header they include changes a layout with it).
  cat >"$gen/evshim_uv_kqueue.cmake" <<EOF
# scripts/clients.d/libuv.sh: the kqueue build's source list.
set_source_files_properties(src/unix/epoll.c src/unix/linux-inotify.c
  PROPERTIES HEADER_FILE_ONLY ON)
set_source_files_properties(src/unix/linux-core.c PROPERTIES COMPILE_DEFINITIONS
  "uv__epoll_init=uv__kqueue_init;uv__io_fork=uv__evshim_linux_io_fork;uv__inotify_fork=uv__evshim_no_inotify_fork")
cmake_language(DEFER CALL target_sources uv PRIVATE src/unix/kqueue.c $gen/evshim_uv_kqueue.c)
cmake_language(DEFER CALL target_sources uv_a PRIVATE src/unix/kqueue.c $gen/evshim_uv_kqueue.c)
set_source_files_properties(test/test-fs-event.c test/test-fork.c PROPERTIES COMPILE_OPTIONS -U__linux__)
EOF
}

# The event-port build's changes (docs/clients.md "## libuv", "The
# event-port build", numbered as here), all in files written in gen-ports/
# and read through CMake's and the compiler's options; no libuv file is
# edited. sunos.c gives the poller (uv__platform_loop_init/_delete,
# uv__io_fork, uv__platform_invalidate_fd, uv__io_check_fd, uv__io_poll)
# and uv_fs_event on PORT_SOURCE_FILE; everything else of the platform
# stays linux-core.c's.
write_ports_files() {
  mkdir -p "$genp/include/sys" "$genp/include/net"
  # 4. What sunos.c includes and Linux lacks (sunos.c:35-42, :60): empty
  # headers, save kstat.h and procfs.h, which declare only what the
  # renamed, never called functions of item 3 use.
  local h
  for h in net/if_dl.h sys/sockio.h sys/loadavg.h; do
    cat >"$genp/include/$h" <<EOF
/* scripts/clients.d/libuv.sh: libuv's sunos.c includes <$h>, which Linux
 * has not; what it would use from it is in functions not compiled
 * (SUNOS_NO_IFADDRS) or from glibc (getloadavg). */
EOF
  done
  cat >"$genp/include/sys/filio.h" <<'EOF'
/* scripts/clients.d/libuv.sh: libuv's core.c, compiled with __sun in the
 * event-port build, includes <sys/filio.h> (core.c:47-50); FIONBIO and
 * FIOCLEX come from glibc's <sys/ioctl.h>, which core.c includes too. */
EOF
  cat >"$genp/include/kstat.h" <<'EOF'
/* scripts/clients.d/libuv.sh: the names sunos.c's uv_uptime and uv_cpu_info
 * use (renamed away, never called: linux-core.c's are libuv's). Only what
 * makes them compile; the functions are evshim_uv_ports.c's, which abort. */
#ifndef EVSHIM_UV_STUB_KSTAT_H
#define EVSHIM_UV_STUB_KSTAT_H
#include <stdint.h>
enum { KSTAT_DATA_INT32 = 1, KSTAT_DATA_INT64 = 3, KSTAT_DATA_UINT64 = 4, KSTAT_DATA_STRING = 9 };
typedef struct kstat_named {
  unsigned char data_type;
  union {
    int32_t i32;
    int64_t i64;
    uint64_t ui64;
    unsigned long ul;
    char* str;
  } value;
} kstat_named_t;
#define KSTAT_NAMED_STR_PTR(knp) ((knp)->value.str)
typedef struct kstat kstat_t;
typedef struct kstat_ctl kstat_ctl_t;
kstat_ctl_t* kstat_open(void);
kstat_t* kstat_lookup(kstat_ctl_t* kc, char* module, int instance, char* name);
int kstat_read(kstat_ctl_t* kc, kstat_t* ksp, void* buf);
void* kstat_data_lookup(kstat_t* ksp, char* name);
int kstat_close(kstat_ctl_t* kc);
#endif
EOF
  cat >"$genp/include/procfs.h" <<'EOF'
/* scripts/clients.d/libuv.sh: the one field sunos.c's uv_resident_set_memory
 * reads (renamed away, never called: linux-core.c's is libuv's). */
#ifndef EVSHIM_UV_STUB_PROCFS_H
#define EVSHIM_UV_STUB_PROCFS_H
#include <stddef.h>
typedef struct psinfo {
  size_t pr_rssize;
} psinfo_t;
#endif
EOF
  # 2. The public header's platform fields (read first by every C file of
  # the build, the tests included: -include). unix.h includes uv/linux.h on
  # Linux; its guard is taken here, and the fields given instead: the
  # loop's are uv/sunos.h's (fs_event_watcher, fs_fd: sunos.c's) and
  # Linux's (linux-core.c's renamed, never called loop functions still
  # name them); the fs_event handle's are uv/sunos.h's (file_obj_t fo, int
  # fd), so <sys/port.h> and <port.h> (evshim's) come first, as uv/sunos.h
  # includes them. gethrtime: see evshim_uv_ports.c.
  cat >"$genp/evshim_uv_ports.h" <<'EOF'
/* scripts/clients.d/libuv.sh: read before every C file of the event-port build. */
#ifndef EVSHIM_UV_PORTS_H
#define EVSHIM_UV_PORTS_H
#define UV_LINUX_H 1
#define UV_SUNOS_H 1
#include <sys/port.h>
#include <port.h>
#define UV_PLATFORM_LOOP_FIELDS \
  uv__io_t fs_event_watcher; \
  int fs_fd; \
  uv__io_t inotify_read_watcher; \
  void* inotify_watchers; \
  int inotify_fd;
#define UV_PLATFORM_FS_EVENT_FIELDS \
  file_obj_t fo; \
  int fd;
long long gethrtime(void);
#endif
EOF
  # 3. The stand-ins: linux-core.c's renamed loop functions call the epoll
  # and inotify set-ups (epoll.c and linux-inotify.c are not built), and
  # sunos.c's renamed uv_uptime and uv_cpu_info call kstat: each aborts,
  # none is reached. gethrtime is called: sunos.c's uv__hrtime is renamed
  # away, and the rename reaches internal.h's uv__update_time (a static
  # inline, internal.h:310-313) in sunos.c, which uv__io_poll calls after
  # port_getn (sunos.c:258); it is Linux's uv__hrtime(UV_CLOCK_FAST), the
  # clock every other uv__update_time of the build reads.
  cat >"$genp/evshim_uv_ports.c" <<'EOF'
/* scripts/clients.d/libuv.sh: the event-port build's stand-ins. */
#include <stdint.h>
#include <stdlib.h>
#include "uv.h"
#include "unix/internal.h"
#include <kstat.h>
long long gethrtime(void) {
  return (long long) uv__hrtime(UV_CLOCK_FAST);
}
int uv__evshim_no_epoll_init(uv_loop_t* loop);
int uv__evshim_no_epoll_init(uv_loop_t* loop) {
  (void) loop;
  abort();
}
int uv__evshim_no_inotify_fork(uv_loop_t* loop, void* old_watchers);
int uv__evshim_no_inotify_fork(uv_loop_t* loop, void* old_watchers) {
  (void) loop;
  (void) old_watchers;
  abort();
}
kstat_ctl_t* kstat_open(void) { abort(); }
kstat_t* kstat_lookup(kstat_ctl_t* kc, char* module, int instance, char* name) {
  (void) kc; (void) module; (void) instance; (void) name;
  abort();
}
int kstat_read(kstat_ctl_t* kc, kstat_t* ksp, void* buf) {
  (void) kc; (void) ksp; (void) buf;
  abort();
}
void* kstat_data_lookup(kstat_t* ksp, char* name) {
  (void) ksp; (void) name;
  abort();
}
int kstat_close(kstat_ctl_t* kc) {
  (void) kc;
  abort();
}
EOF
  # 1. The sources (CMAKE_PROJECT_INCLUDE, as the kqueue build's): epoll.c
  # and linux-inotify.c are not compiled; linux-core.c's loop functions are
  # renamed away (sunos.c's are the loop's); sunos.c's functions that are
  # not the poller or fs events are renamed away (linux-core.c's are
  # libuv's), with SUNOS_NO_IFADDRS (sunos.c:752-757: no getifaddrs,
  # sockaddr_dl or SIOCGARP code); core.c is compiled with __sun for its
  # two event-port rules (core.c:164-172: uv__fs_event_close makes the
  # handle close-pending itself; core.c:887-894: every uv__io_start
  # re-queues the watcher, the association being one-shot). 5. As the
  # kqueue build: test-fs-event.c and test-fork.c without __linux__
  # (sunos.c's fs event callbacks give no file name, sunos.c:490).
  cat >"$genp/evshim_uv_ports.cmake" <<EOF
# scripts/clients.d/libuv.sh: the event-port build's source list.
set_source_files_properties(src/unix/epoll.c src/unix/linux-inotify.c
  PROPERTIES HEADER_FILE_ONLY ON)
set_source_files_properties(src/unix/linux-core.c PROPERTIES COMPILE_DEFINITIONS
  "uv__platform_loop_init=uv__evshim_linux_loop_init;uv__platform_loop_delete=uv__evshim_linux_loop_delete;uv__io_fork=uv__evshim_linux_io_fork;uv__epoll_init=uv__evshim_no_epoll_init;uv__inotify_fork=uv__evshim_no_inotify_fork")
set_source_files_properties(src/unix/sunos.c PROPERTIES COMPILE_DEFINITIONS
  "SUNOS_NO_IFADDRS;uv__hrtime=uv__evshim_sunos_hrtime;uv_exepath=uv__evshim_sunos_exepath;uv_get_free_memory=uv__evshim_sunos_get_free_memory;uv_get_total_memory=uv__evshim_sunos_get_total_memory;uv_get_constrained_memory=uv__evshim_sunos_get_constrained_memory;uv_loadavg=uv__evshim_sunos_loadavg;uv_resident_set_memory=uv__evshim_sunos_resident_set_memory;uv_uptime=uv__evshim_sunos_uptime;uv_cpu_info=uv__evshim_sunos_cpu_info;uv_interface_addresses=uv__evshim_sunos_interface_addresses;uv_free_interface_addresses=uv__evshim_sunos_free_interface_addresses")
set_source_files_properties(src/unix/core.c PROPERTIES COMPILE_DEFINITIONS "__sun=1")
cmake_language(DEFER CALL target_sources uv PRIVATE src/unix/sunos.c $genp/evshim_uv_ports.c)
cmake_language(DEFER CALL target_sources uv_a PRIVATE src/unix/sunos.c $genp/evshim_uv_ports.c)
set_source_files_properties(test/test-fs-event.c PROPERTIES COMPILE_OPTIONS -U__linux__)
set_source_files_properties(test/test-fork.c PROPERTIES COMPILE_OPTIONS "-U__linux__;-D__sun")
EOF
}

# build_variant VARIANT: CMake (out of tree: the source stays as fetched),
# the shared and static libraries and the static test runner.
build_variant() {
  local v=$1 dir=$work/$1 pkg cflags="-O2 -g" libs="" extra=() g=$gen name=evshim_uv_$1
  pkg=$(pkg_of "$v")
  [ "$v" = ports ] && g=$genp
  if [ -n "$pkg" ]; then
    cflags+=" -include $g/$name.h -I$g/include $(clients_cflags "$pkg")" &&
      libs=$(clients_libs "$pkg") || return 1
    extra=(-DCMAKE_PROJECT_INCLUDE="$g/$name.cmake" -DCMAKE_C_STANDARD_LIBRARIES="$libs")
  fi
  local key
  key=$( { echo "$cflags $libs ${extra[*]}"; declare -f build_variant;
           [ -n "$pkg" ] && { cat "$g"/"$name".*; find "$g/include" -type f | sort | xargs cat;
                              find "$(pkg-config --variable=includedir "$pkg")/evshim" -name '*.h' -exec cat {} +; }; } |
         sha256sum | cut -c1-16)
  if [ -f "$dir/.evshim-built-$key" ]; then
    echo "libuv $v: up to date"
    return 0
  fi
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
  cmake -S "$src" -B . -DBUILD_TESTING=ON -DCMAKE_C_FLAGS="$cflags" "${extra[@]}" >cmake.log 2>&1 ||
    { echo "libuv $v: cmake failed ($dir/cmake.log)"; tail -20 cmake.log; return 1; }
  nice -n 10 make -j"$jobs" uv uv_a uv_run_tests_a >make.log 2>&1 ||
    { echo "libuv $v: make failed ($dir/make.log)"; grep -m5 -B2 -A5 'error' make.log; tail -5 make.log; return 1; }
  touch "$dir/.evshim-built-$key"
  echo "libuv $v: built"
}

# The calls of each backend: the variant's must be referenced (U) in both
# libraries (libuv.so, libuv_a.a), no other backend's. (The runner itself
# is not checked: test-poll.c's poll_nested_epoll, a __linux__ test, calls
# epoll_create in every Linux build.)
calls_of() {
  case $1 in
    kqueue) echo "kqueue kevent" ;;
    ports) echo "port_create port_associate port_dissociate port_getn" ;;
    native) echo "epoll_create epoll_create1 epoll_ctl epoll_wait epoll_pwait inotify_init1 inotify_add_watch" ;;
  esac
}
# check_backends VARIANT: the kqueue build references kqueue and kevent,
# the event-port build port_create, port_associate, port_dissociate and
# port_getn, and neither any other backend's call (no epoll or inotify
# call); the native build epoll_create1, epoll_ctl and epoll_pwait at
# least (epoll.c's; libuv calls epoll_wait through epoll_pwait), and no
# kqueue or event-port call.
check_backends() {
  local v=$1 f syms problems=() c other
  for f in libuv.so libuv_a.a; do
    syms=$(nm -D "$work/$v/$f" 2>/dev/null || nm "$work/$v/$f" 2>/dev/null) || { problems+=("$f: nm failed"); continue; }
    [ "$f" = libuv_a.a ] && syms=$(nm "$work/$v/$f" 2>/dev/null)
    for c in $(calls_of "$v"); do
      [ "$v" = native ] && [[ $c != epoll_create1 && $c != epoll_ctl && $c != epoll_pwait ]] && continue
      grep -qE " U $c(@.*)?$" <<<"$syms" || problems+=("$f: no call to $c")
    done
    for other in kqueue ports native; do
      [ "$other" = "$v" ] && continue
      for c in $(calls_of "$other"); do
        grep -qE " U $c(@.*)?$" <<<"$syms" && problems+=("$f: calls $c")
      done
    done
  done
  ((${#problems[@]} == 0)) && return 0
  echo "${problems[*]}"
  return 1
}

# rundir NAME: a fresh directory owned by the runner's user, with the test
# fixtures (test/fixtures/...: the runner's paths are relative to it).
rundir() {
  local d=$work/run/$1
  rm -rf "$d" && mkdir -p "$d/test" && cp -a "$src/test/fixtures" "$d/test/" || return 1
  if ((${#run_as[@]})); then chown -R 65534:65534 "$d" || return 1; fi
  echo "$d"
}

# method_case VARIANT MODE: one loop test (tcp_ping_pong) of the variant
# under `evshim trace -c` (MODE fast or supervised): it passes and the
# trace's summary counts the poller's wait, more than none (kevent;
# port_getn for the event-port build). Natively (MODE native): under
# `strace -f -c`, it passes and epoll_wait is counted (libuv calls glibc's
# epoll_pwait with no signal mask, which makes epoll_wait).
method_case() {
  local v=$1 mode=$2 d log run=() want=kevent
  [ "$v" = ports ] && want=port_getn
  log=$logs/method-$v-$mode
  d=$(rundir "method-$v-$mode") || return 1
  case $mode in
    fast) run=("$EVSHIM" trace -c -o "$log.trace" --) ;;
    supervised) run=("$EVSHIM" trace --supervised -c -o "$log.trace" --) ;;
    native) run=(strace -f -c -o "$log.trace" --); want=epoll_wait ;;
  esac
  # The trace file is written by the runner's user.
  touch "$log.trace" && { ((${#run_as[@]} == 0)) || chown 65534:65534 "$log.trace"; }
  (cd "$d" && timeout -k 5 60 "${run_as[@]}" "${run[@]}" "$work/$v/uv_run_tests_a" tcp_ping_pong) >"$log.out" 2>&1
  grep -qx "ok 1 - tcp_ping_pong" "$log.out" || { echo "tcp_ping_pong: $(head -3 "$log.out" | tr '\n' ' ')"; return 1; }
  local n
  n=$(awk -v c="$want" '$NF == c {print ($1 ~ /^[0-9]+$/) ? $1 : $4}' "$log.trace" 2>/dev/null | head -1)
  [[ "$n" =~ ^[0-9]+$ ]] && ((n > 0)) || { echo "no $want in the trace ($log.trace)"; return 1; }
}

# run_tests VARIANT MODE: the runner (the whole list, one process, or with
# --quick each case of quick_cases in its own runner) and
# results/VARIANT.MODE (CASE<TAB>pass|fail|skip<TAB>detail).
run_tests() {
  local v=$1 mode=$2 run=() d
  case $mode in fast) run=("$EVSHIM" run --) ;; supervised) run=("$EVSHIM" run --supervised --) ;; esac
  d=$(rundir "$v.$mode") || return 1
  local log=$logs/$v.$mode.log t0=$SECONDS bin=$work/$v/uv_run_tests_a
  if [ "$quick" = 1 ]; then
    # One launcher for all: the shell and every runner are its process tree.
    (cd "$d" && timeout -k 10 "$run_timeout" "${run_as[@]}" "${run[@]}" /bin/sh -c \
        'bin=$1; shift; echo "1..$#"; s=0; for t; do "$bin" "$t" || s=1; done; exit $s' sh "$bin" "${quick_cases[@]}") >"$log" 2>&1
  else
    (cd "$d" && timeout -k 10 "$run_timeout" "${run_as[@]}" "${run[@]}" "$bin") >"$log" 2>&1
  fi
  echo "exit $?" >>"$log"
  clients_log "libuv $v $mode: $((SECONDS - t0)) s"
  python3 - "$log" >"$results/$v.$mode" <<'EOF'
import re, sys
rows, plan, exit_line = [], None, ""
for line in open(sys.argv[1], errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"1\.\.(\d+)$", line)
    if m and plan is None:
        plan = int(m.group(1)); continue
    m = re.match(r"(not ok|ok) \d+ - (\S+)( # SKIP ?(.*))?$", line)
    if m:
        status = "fail" if m.group(1) == "not ok" else ("skip" if m.group(3) else "pass")
        rows.append([m.group(2), status, (m.group(4) or "")[:300]])
        continue
    # The first "# " line after a failure: its exit code or assertion.
    if rows and rows[-1][1] == "fail" and line.startswith("# ") and (
            not rows[-1][2] or rows[-1][2].startswith("exit code")):
        if "Output from process" not in line:
            rows[-1][2] = (rows[-1][2] + " " + line[2:]).strip()[:300]
        continue
    if line.startswith("exit "):
        exit_line = line
for r in rows:
    print("\t".join(r))
# Every case the plan announced was reported (the runner was not cut short).
print(f"(all reported)\t{'pass' if plan is not None and plan == len(rows) else 'fail'}\t{len(rows)} of {plan} {exit_line}")
EOF
}

# -- build -------------------------------------------------------------------
write_kqueue_files
write_ports_files
status=0
built_ok() { [ -x "$work/$1/uv_run_tests_a" ] && [ -f "$work/$1/libuv.so" ] && [ -f "$work/$1/libuv_a.a" ]; }
clients_build_all libuv "$work" native "${variants[@]}" || exit 1
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# -- run -----------------------------------------------------------------------
clients_run_all libuv run_tests "${variants[@]}"

# -- report --------------------------------------------------------------------
native_backend=pass
problem=$(check_backends native) || { native_backend=fail; clients_log "libuv native: $problem"; }
native_method=pass
problem=$(method_case native native) || { native_method=fail; clients_log "libuv native: method: $problem"; }
for v in "${variants[@]}"; do
  tsv=$results/libuv-$v.tsv
  {
    clients_backend_case libuv "$v" "$v" "$native_backend"
    clients_method_cases libuv "$v" "$v" "$native_method"
    # CASE EVSHIM NATIVE, per mode, joined on the case name; a case that
    # ran natively but not under evshim (the run ended first) fails.
    for c in "${!expected_differences[@]}"; do
      [[ $c != *:* || $c == "$v":* ]] && printf '%s\t%s\n' "${c#"$v":}" "${expected_differences[$c]}"
    done >"$results/expected"
    for c in "${!not_run[@]}"; do
      [[ $c != *:* || $c == "$v":* ]] && printf '%s\t%s\n' "${c#"$v":}" "${not_run[$c]}"
    done >"$results/not_run"
    python3 - "$results" "$v" <<'EOF'
import sys
results, v = sys.argv[1], sys.argv[2]
def reasons(name):
    return dict(line.rstrip("\n").split("\t", 1) for line in open(f"{results}/{name}"))
expected, not_run = reasons("expected"), reasons("not_run")
def load(name):
    out = {}
    for line in open(f"{results}/{name}"):
        case, status, detail = line.rstrip("\n").split("\t", 2)
        out[case] = (status, detail)
    return out
nat = load("native.native")
for mode in ("fast", "supervised"):
    ev = load(f"{v}.{mode}")
    for case in list(nat) + [c for c in ev if c not in nat]:
        status = ev.get(case, ("fail", "not reached"))[0]
        if case in not_run:
            status = "skip"
            print(f"  not run: {mode}/{case}: {not_run[case]}", file=sys.stderr)
        # (A case failing natively too stays a failure: counted as
        # "fails natively too".)
        if status == "fail" and case in expected and nat.get(case, ("", ""))[0] != "fail":
            status = "skip"
            print(f"  expected difference: {mode}/{case}: {expected[case]}", file=sys.stderr)
        print(f"{mode}/{case}\t{status}\t{nat.get(case, ('', ''))[0]}")
EOF
  } >"$tsv"
  # The failing lines, for the log.
  awk -F'\t' '$2 == "fail" {print "  " $1}' "$tsv" >&2
  grep -h $'\tfail\t' "$results/$v".{fast,supervised} 2>/dev/null | cut -f1,3 | sed 's/^/  detail: /' >&2
  clients_report "libuv-$v" "$tsv" || status=1
done
exit $status
