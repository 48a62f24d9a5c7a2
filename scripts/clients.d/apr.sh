#!/usr/bin/env bash
# APR 1.7.2 (Debian's source) under evshim: its pollset and pollcb code, with
# the event-port backend (port.c) and the kqueue backend (kqueue.c), each in
# a build that has no other kernel-event backend, against a native epoll
# build. Runs APR's own test/testall, per suite, under `evshim run` (fast and
# --supervised) and natively; each case of a suite is counted.
#   variants: ports kqueue (+ native)
# docs/clients.md "## APR" says what runs and how the method is proved.
# Environment: EVSHIM_CLIENTS_JOBS (make jobs, default 2),
# EVSHIM_APR_SUITE_TIMEOUT (seconds per suite run, 60).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

apr_version=1.7.2-3+deb12u1
jobs=${EVSHIM_CLIENTS_JOBS:-2}
suite_timeout=${EVSHIM_APR_SUITE_TIMEOUT:-60}
variants=(ports kqueue)
# testpoll: the pollset and pollcb API. The socket and pipe suites: with
# poll(2) answered "no" (below), every APR socket owns a one-descriptor
# pollset, and apr_wait_for_io_or_timeout() (a socket's or pipe's timeout)
# waits in it, so these suites run the backend too.
suites=(testpoll testpipe testsock testsockets testsockopt)
# Suites a variant does not run, each case then reported as skipped under
# evshim (with its native status). testsock with the kqueue backend: after
# a non-blocking connect() that answered EINPROGRESS (Linux's loopback TCP
# does; FreeBSD's reportedly completes inside the call), APR's kqueue
# pollset keeps the connect wait's EVFILT_WRITE knote (its remove deletes
# only the filters of the new wait, and a knote is keyed by ident and
# filter), and the next read wait is answered by it: apr_socket_recv()
# spins, and test_timeout's child never times out (docs/clients.md "## APR", "testsock and kqueue").
not_run_of() { case $1 in kqueue) echo testsock ;; *) echo "" ;; esac; }

clients_need_packages gcc make binutils python3 || exit 1
clients_fetch_source apr "$apr_version" apr || exit 1
src=$EVSHIM_CLIENTS_WORK/src/apr
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1

work=$EVSHIM_CLIENTS_WORK/apr
results=$work/results
logs=$EVSHIM_CLIENTS_LOGS/apr
rm -rf "$results" "$logs"
mkdir -p "$work" "$results" "$logs"

pkg_of() { case $1 in ports) echo evshim-ports ;; kqueue) echo evshim-kqueue-freebsd ;; native) echo "" ;; esac; }
# APR's provider names (apr_pollset_method_name) and the kernel call each
# backend's object must reference.
method_of() { case $1 in ports) echo port ;; kqueue) echo kqueue ;; native) echo epoll ;; esac; }
call_of() { case $1 in port) echo port_getn ;; kqueue) echo kevent ;; epoll) echo epoll_wait ;; *) echo "" ;; esac; }

# The per-case hook: abts (APR's test harness) prints no case names, so
# testall is linked with --wrap=abts_run_test and this wrapper, which calls
# abts's own abts_run_test and then prints the case's function (as an offset
# from abts_run_test, resolved with nm) and its verdict. APR's sources and
# objects are not changed.
write_case_hook() {
  cat >"$work/evshim_case_hook.c" <<'EOF'
#include <stdint.h>
#include <stdio.h>
#include "abts.h"

void __real_abts_run_test(abts_suite *ts, test_func f, void *value);

void __wrap_abts_run_test(abts_suite *ts, test_func f, void *value) {
  sub_suite *ss = ts->tail;
  int run_before = ss->num_test, failed_before = ss->failed;
  __real_abts_run_test(ts, f, value);
  if (ss->num_test == run_before) return; /* not selected */
  fprintf(stderr, "\nevshim-case %s %jx %s\n", ss->name,
          (uintmax_t)((uintptr_t)f - (uintptr_t)&__real_abts_run_test),
          ss->failed > failed_before ? "fail" : "pass");
  fflush(stderr);
}
EOF
}

# A check of the method in use, built against each variant's libapr: the
# default pollset's and pollcb's provider names (apr_pollset_method_name,
# apr_pollcb_method_name, apr_poll_method_defname).
write_method_check() {
  cat >"$work/evshim_method.c" <<'EOF'
#include <stdio.h>
#include "apr_general.h"
#include "apr_poll.h"

int main(void) {
  apr_pool_t *p;
  apr_pollset_t *ps;
  apr_pollcb_t *pcb;
  if (apr_initialize() != APR_SUCCESS || apr_pool_create(&p, NULL) != APR_SUCCESS) return 2;
  if (apr_pollset_create(&ps, 4, p, 0) != APR_SUCCESS) return 3;
  if (apr_pollcb_create(&pcb, 4, p, 0) != APR_SUCCESS) return 4;
  printf("default %s\npollset %s\npollcb %s\n", apr_poll_method_defname(),
         apr_pollset_method_name(ps), apr_pollcb_method_name(pcb));
  return 0;
}
EOF
}

# build_variant VARIANT: configures APR (static, out of tree) with only the
# variant's kernel-event backend and builds testall and its helpers. The
# other backends' detection is answered "no" through configure's cache
# variables; poll(2) too, so that apr_poll() and socket/pipe timeouts take
# the pollset path (select.c is compiled in every APR build: apr_poll()'s
# fallback and the APR_POLLSET_SELECT provider, which no default uses).
build_variant() {
  local v=$1 dir=$work/$1 pkg
  pkg=$(pkg_of "$v")
  local no=(ac_cv_func_poll=no)
  local epoll_no=(apr_cv_epoll=no apr_cv_epoll_create1=no)
  case $v in
    ports) no+=("${epoll_no[@]}" ac_cv_func_kqueue=no) ;;
    kqueue) no+=("${epoll_no[@]}" ac_cv_func_port_create=no) ;;
    native) no+=(ac_cv_func_kqueue=no ac_cv_func_port_create=no) ;;
  esac
  local cppflags="" libs=""
  if [ -n "$pkg" ]; then
    cppflags=$(clients_cflags "$pkg") && libs=$(clients_libs "$pkg") || return 1
  fi
  local key
  key=$( { echo "${no[*]} $cppflags $libs"; cat "$work/evshim_case_hook.c";
           [ -n "$pkg" ] && find "$(pkg-config --variable=includedir "$pkg")/evshim" -name '*.h' -exec cat {} +; } |
         sha256sum | cut -c1-16)
  if [ -f "$dir/.evshim-built-$key" ]; then
    echo "apr $v: up to date"
    return 0
  fi
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
  # The native build's configure cache serves the others (a configure run
  # is most of a build's time), without every answer that depends on the
  # backend, the flags or the library: those are found again.
  local cache=(--cache-file="$dir/config.cache")
  if [ "$v" != native ] && [ -f "$work/native.config.cache" ]; then
    grep -vE '^(ac_cv_env_|ac_cv_func_(kqueue|port_create|poll)=|apr_cv_epoll|ac_cv_header_(port_h|sys_event_h|sys_port)|ac_cv_lib_)' \
      "$work/native.config.cache" >"$dir/config.cache"
  fi
  "$src/configure" "${cache[@]}" --disable-shared --enable-static "${no[@]}" \
      CFLAGS="-O2 -g" CPPFLAGS="$cppflags" LIBS="$libs" \
      >configure.log 2>&1 || { echo "apr $v: configure failed ($dir/configure.log)"; return 1; }
  [ "$v" = native ] && cp "$dir/config.cache" "$work/native.config.cache"
  gcc -c -O2 -g -I"$src/test" -o evshim_case_hook.o "$work/evshim_case_hook.c" || return 1
  # testall's helper programs (TESTALL_COMPONENTS), then testall itself with
  # the case hook.
  { nice -n 10 make -j"$jobs" &&
    nice -n 10 make -C test -j"$jobs" globalmutexchild libmod_test.la mod_test.la occhild \
      proc_child readchild sockchild testshmproducer testshmconsumer tryread &&
    nice -n 10 make -C test -j"$jobs" testall \
      LDFLAGS="-Wl,--wrap=abts_run_test $dir/evshim_case_hook.o"; } >make.log 2>&1 ||
    { echo "apr $v: make failed ($dir/make.log)"; tail -20 make.log; return 1; }
  # shellcheck disable=SC2046,SC2086
  gcc -O2 -o evshim_method "$work/evshim_method.c" -I"$dir/include" -I"$src/include" \
      .libs/libapr-1.a $libs $(sed -n 's/^EXTRA_LIBS=//p' build/apr_rules.mk) >>make.log 2>&1 ||
    { echo "apr $v: the method check failed to build"; return 1; }
  touch "$dir/.evshim-built-$key"
  echo "apr $v: built"
}

# check_backends VARIANT: the build holds exactly one kernel-event
# backend: its pollset and pollcb providers are defined and its kernel call
# referenced; no other backend's provider (poll's included) or call is.
check_backends() {
  local v=$1 syms m entries=()
  syms=$(nm "$work/$v/.libs/libapr-1.a" "$work/$v/test/testall" 2>/dev/null) || { echo "nm failed"; return 1; }
  for m in kqueue port epoll poll aio_msgq; do
    entries+=("$m:apr_pollset_provider_$m,apr_pollcb_provider_$m:$(call_of "$m")")
  done
  clients_one_backend "$syms" "$(method_of "$v")" "${entries[@]}"
}

# method_case VARIANT MODE: the default pollset, pollcb and method name are
# the variant's backend at run time.
method_case() {
  local v=$1 mode=$2 want out run=()
  want=$(method_of "$v")
  case $mode in fast) run=("$EVSHIM" run --) ;; supervised) run=("$EVSHIM" run --supervised --) ;; esac
  out=$(timeout 30 "${run[@]}" "$work/$v/evshim_method" 2>&1)
  echo "$out" >"$logs/method-$v-$mode.log"
  [ "$out" = "$(printf 'default %s\npollset %s\npollcb %s' "$want" "$want" "$want")" ]
}

# run_suites VARIANT MODE: runs each suite in its own testall process and
# writes results/VARIANT.MODE (CASE<TAB>pass|fail<TAB>detail).
run_suites() {
  local v=$1 mode=$2 dir=$work/$1 run=() s
  case $mode in fast) run=("$EVSHIM" run --) ;; supervised) run=("$EVSHIM" run --supervised --) ;; esac
  local out=$results/$v.$mode
  : >"$out"
  local skip
  skip=" $(not_run_of "$v") "
  for s in "${suites[@]}"; do
    [[ $skip == *" $s "* ]] && continue
    local log=$logs/$v.$mode.$s.log
    # testall finds its helper programs (sockchild, readchild ...) in the
    # current directory, as `make check` runs it.
    (cd "$dir/test" && timeout -k 5 "$suite_timeout" "${run[@]}" ./testall -v "$s") >"$log" 2>&1
    echo "exit $?" >>"$log"
    python3 - "$dir/test/testall" "$log" "$s" >>"$out" <<'EOF'
import re, subprocess, sys
binary, log, suite = sys.argv[1:4]
# Static functions by address, and abts_run_test's.
names, base = {}, None
for line in subprocess.run(["nm", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tT":
        names.setdefault(int(parts[0], 16), parts[2])
        if parts[2] == "abts_run_test":
            base = int(parts[0], 16)
seen, detail = {}, []
exit_line = ""
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"evshim-case (\S+) ([0-9a-f]+) (pass|fail)$", line)
    if m:
        name = names.get(base + int(m.group(2), 16), "0x" + m.group(2))
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name += f"#{seen[name]}"
        print(f"{suite}/{name}\t{m.group(3)}\t{' | '.join(detail)}")
        detail = []
    elif line.startswith("Line "):
        detail.append(line)
    elif line.startswith("exit "):
        exit_line = line
# testall's own end (0: every case passed); a case the process never
# reached has no line here and counts against the native list.
print(f"{suite}/(exit)\t{'pass' if exit_line == 'exit 0' else 'fail'}\t{exit_line}")
EOF
  done
}

# -- build -------------------------------------------------------------------
write_case_hook
write_method_check
status=0
# native first: the evshim builds start from its configure cache.
built_ok() { [ -x "$work/$1/test/testall" ] && [ -x "$work/$1/evshim_method" ]; }
clients_build_all apr "$work" native && clients_build_all apr "$work" "${variants[@]}" || exit 1
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# -- run -----------------------------------------------------------------------
clients_run_all apr run_suites "${variants[@]}"

# -- report --------------------------------------------------------------------
native_backend=pass
problem=$(check_backends native) || { native_backend=fail; clients_log "apr native: $problem"; }
native_method=pass
method_case native native || { native_method=fail; clients_log "apr native: method: $(tr '\n' ' ' <"$logs/method-native-native.log")"; }
for v in "${variants[@]}"; do
  tsv=$results/apr-$v.tsv
  {
    clients_backend_case apr "$v" "$(method_of "$v")" "$native_backend"
    for mode in fast supervised; do
      if method_case "$v" "$mode"; then
        printf '%s/method-%s\tpass\t%s\n' "$mode" "$(method_of "$v")" "$native_method"
      else
        clients_log "apr $v $mode: method: $(tr '\n' ' ' <"$logs/method-$v-$mode.log")"
        printf '%s/method-%s\tfail\t%s\n' "$mode" "$(method_of "$v")" "$native_method"
      fi
    done
    # CASE EVSHIM NATIVE, per mode, joined on the case name; a case that
    # ran natively but not under evshim (the process died first) fails.
    python3 - "$results" "$v" "$(not_run_of "$v")" <<'EOF'
import sys
results, v, not_run = sys.argv[1], sys.argv[2], sys.argv[3].split()
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
        if case.split("/")[0] in not_run:
            status = "skip"
        else:
            status = ev.get(case, ("fail", "not reached"))[0]
        print(f"{mode}/{case}\t{status}\t{nat.get(case, ('', ''))[0]}")
EOF
  } >"$tsv"
  # The failing lines, for the log.
  awk -F'\t' '$2 == "fail" {print "  " $1}' "$tsv" >&2
  grep -h $'\tfail\t' "$results/$v".{fast,supervised} 2>/dev/null | cut -f1,3 | sed 's/^/  detail: /' >&2
  clients_report "apr-$v" "$tsv" || status=1
done
exit $status
