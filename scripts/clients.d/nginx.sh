#!/usr/bin/env bash
# nginx (Debian 1.22.1) with ngx_eventport_module, unchanged, under evshim.
# Builds nginx twice from one source tree: with the event-ports module only
# (against evshim's <port.h> and libevshim-ports, see docs/clients.md
# "## nginx") and stock (epoll) for the baseline. Runs the same loopback
# checks against each: nginx with timer_resolution (timer_create with
# SIGEV_PORT), 2 workers, a thread pool with `aio threads` (port_send
# notify), static files and a keep-alive proxy; `ab` load with keep-alive on
# and off, body checksums, `nginx -s reload` and a worker SIGKILLed during
# load, a clean `nginx -s quit`. Each check is one case, evshim beside
# native; requests/s are reported, not judged.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

nginx_version=1.22.1-9+deb12u9   # the default revision's files are missing (404)
work=$EVSHIM_CLIENTS_WORK/nginx
src=$EVSHIM_CLIENTS_WORK/src/nginx
logs=$EVSHIM_CLIENTS_LOGS/nginx
results=$logs/results.tsv
speed=$logs/speed.tsv
quick=${EVSHIM_CLIENTS_QUICK:-0}

clients_need_packages gcc make binutils apache2-utils curl python3 || exit 1
clients_fetch_source nginx "$nginx_version" nginx || exit 1
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1
rm -rf "$logs" && mkdir -p "$logs" "$work"

log() { clients_log "nginx: [${SECONDS}s] $*"; }

# --- build -------------------------------------------------------------------

# Two --add-module directories change which event module is built; nginx's
# own sources are not touched. (nginx builds ngx_eventport_module only for
# Solaris; its --test-build-eventport links stubs that return -1.)
addons=$work/addons
mkdir -p "$addons/noepoll" "$addons/eventport"
cat >"$addons/noepoll/config" <<'EOF'
ngx_addon_name=evshim_noepoll
EVENT_MODULES=`echo "$EVENT_MODULES" | sed 's/ngx_epoll_module//'`
CORE_SRCS=`echo "$CORE_SRCS" | sed 's#src/event/modules/ngx_epoll_module.c##'`
EOF
cat >"$addons/eventport/config" <<'EOF'
ngx_addon_name=evshim_eventport
have=NGX_HAVE_EVENTPORT . auto/have
EVENT_MODULES="$EVENT_MODULES $EVENTPORT_MODULE"
CORE_SRCS="$CORE_SRCS $EVENTPORT_SRCS"
EOF

common_opts=(--with-threads --without-http_rewrite_module --without-http_gzip_module
             --prefix="$work/prefix")
eventport_opts=("${common_opts[@]}" --builddir="$work/objs-eventport"
  --with-cc-opt="-D_GNU_SOURCE -DNGX_HAVE_EPOLL=0 -DNGX_HAVE_EPOLLRDHUP=0 -DNGX_HAVE_EPOLLEXCLUSIVE=0 $(clients_cflags evshim-ports) -include poll.h -include port.h"
  --with-ld-opt="$(clients_libs evshim-ports)"
  --add-module="$addons/noepoll" --add-module="$addons/eventport")
epoll_opts=("${common_opts[@]}" --builddir="$work/objs-epoll")

# build_nginx FLAVOUR OPTS...: configures (again only when the options or
# evshim's headers changed) and makes objs-FLAVOUR/nginx.
build_nginx() {
  local flavour=$1; shift
  local objs=$work/objs-$flavour key
  key=$( { printf '%s\n' "$@"; cat "$addons"/*/config;
           [ "$flavour" = eventport ] && find "$EVSHIM_CLIENTS_WORK/root" -name '*.h' -exec cat {} +; } | sha256sum)
  local cc=gcc
  command -v ccache >/dev/null && cc="ccache gcc"
  (
    cd "$src" || exit 1
    if [ "$(cat "$objs/evshim-config.key" 2>/dev/null)" != "$key" ]; then
      rm -rf "$objs"
      CC=$cc ./configure "$@" >"$logs/configure-$flavour.log" 2>&1 || exit 1
      echo "$key" >"$objs/evshim-config.key"
    fi
    nice -n 10 make -j2 -f "$objs/Makefile" >"$logs/make-$flavour.log" 2>&1
  ) || { log "building the $flavour flavour failed (logs: $logs/{configure,make}-$flavour.log)";
         tail -20 "$logs/make-$flavour.log" "$logs/configure-$flavour.log" 2>/dev/null >&2; return 1; }
}

log "building (eventport against evshim, and stock epoll)"
build_ok=pass
build_nginx eventport "${eventport_opts[@]}" || build_ok=fail
build_nginx epoll "${epoll_opts[@]}" || build_ok=fail
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0
bin_ports=$work/objs-eventport/nginx
bin_epoll=$work/objs-epoll/nginx

# --- per-case results ----------------------------------------------------------
declare -A status
# record CASE MODE pass|fail [why]
record() {
  status[$1.$2]=$3
  [ "$3" = pass ] || log "$2: $1 failed${4:+: $4}"
}
cases=()
case_names() { local c; for c in "$@"; do cases+=("$c"); done; }

# The binary holds exactly the event module under test, and the eventport one
# calls the port functions and timer_create (which evshim's supervisor
# intercepts for SIGEV_PORT).
check_binary() {
  local bin=$1 want=$2 mode=$3 mods
  [ -x "$bin" ] || { record binary_event_modules "$mode" fail "no binary"; return; }
  mods=$(nm "$bin" | awk '$3 ~ /^ngx_(epoll|eventport|kqueue|devpoll|poll|select|iocp)_module$/ {print $3}' | sort -u | tr '\n' ' ')
  if [ "$mods" = "$want " ]; then
    record binary_event_modules "$mode" pass
  else
    record binary_event_modules "$mode" fail "event modules in the binary: '$mods', want '$want'"
  fi
  if [ "$want" = ngx_eventport_module ]; then
    local undefined missing=() f
    undefined=$(nm -u "$bin")
    for f in port_create port_associate port_dissociate port_getn port_send timer_create timer_settime; do
      grep -qE "^ +U $f(@|$)" <<<"$undefined" || missing+=("$f")
    done
    if ((${#missing[@]})); then
      record binary_calls_ports "$mode" fail "not called: ${missing[*]}"
    else
      record binary_calls_ports "$mode" pass
    fi
    local libs
    libs=$(ldd "$bin")
    if grep -q "libevshim-ports" <<<"$libs"; then
      record binary_links_evshim "$mode" pass
    else
      record binary_links_evshim "$mode" fail "$(tr '\n' ' ' <<<"$libs")"
    fi
  fi
}
case_names binary_event_modules binary_calls_ports binary_links_evshim
check_binary "$bin_ports" ngx_eventport_module evshim
check_binary "$bin_epoll" ngx_epoll_module native
status[binary_calls_ports.native]=skip   # evshim-only properties
status[binary_links_evshim.native]=skip

# --- the server --------------------------------------------------------------
# shellcheck source=nginx_server.sh
source "$here/nginx_server.sh"

# --- load --------------------------------------------------------------------

# ab_run NAME ARGS...: one ab run (logged); sets ab_failed (failed + non-2xx
# + missing), ab_rps, ab_complete. URL is the last argument.
ab_run() {
  local name=$1; shift
  local out=$logdir/ab-$name.log n
  n=$(awk '{for (i = 1; i < NF; i++) if ($i == "-n") print $(i + 1)}' <<<"$*")
  timeout 120 ab -q -r -s "${ab_timeout:-20}" "$@" >"$out" 2>&1
  local rc=$?
  ab_complete=$(awk '/^Complete requests:/ {print $3}' "$out")
  local failed non2xx
  failed=$(awk '/^Failed requests:/ {print $3}' "$out")
  non2xx=$(awk '/^Non-2xx responses:/ {print $3}' "$out")
  ab_rps=$(awk '/^Requests per second:/ {print $4}' "$out")
  ab_failed=$(( ${failed:-0} + ${non2xx:-0} ))
  # With -t the count is the time's, not -n's.
  [[ " $* " == *" -t "* ]] && n=$ab_complete
  if [ "$rc" -ne 0 ] || [ -z "$ab_complete" ] || [ -z "$n" ]; then
    ab_failed=${n:-1}
    ab_err="ab exited $rc: $(tail -2 "$out" | tr '\n' ' ')"
    return 1
  fi
  ab_failed=$(( ab_failed + n - ab_complete ))
  ab_err="$ab_complete complete, ${failed:-0} failed, ${non2xx:-0} non-2xx (log $out)"
  [ "$ab_failed" -eq 0 ]
}

load_case() {  # CASE MODE ab-args...
  local case=$1 mode=$2; shift 2
  if ab_run "$case" "$@"; then
    record "$case" "$mode" pass
  else
    record "$case" "$mode" fail "$ab_err"
  fi
  printf '%s\t%s\t%s\n' "$case" "$mode" "${ab_rps:-0}" >>"$speed"
}

# The scale: thousands of requests per load case (fewer with --quick).
if [ "$quick" = 1 ]; then n_small=1500 n_close=600 n_big=60 span=3; else n_small=4000 n_close=2000 n_big=160 span=4; fi
conc=32

# run_mode MODE BIN: every server check under MODE (evshim or native).
run_mode() {
  local mode=$1 bin=$2
  local run=$work/run-$mode
  logdir=$logs/$mode
  rm -rf "$run" && mkdir -p "$run" "$logdir"
  read -r front back < <(free_ports)
  write_site "$run"
  write_conf "$run" "$front" "$back"
  local base=http://127.0.0.1:$front

  log "$mode: starting ($bin)"
  if ! start_nginx "$mode" "$bin" "$run"; then
    record start "$mode" fail "$(tail -5 "$run/logs/error.log" "$run/logs/stdout.log" 2>/dev/null | tr '\n' ' ')"
    kill_everything "$bin"; wait "$job" 2>/dev/null; job=
    return
  fi
  record start "$mode" pass

  # Which event method the running nginx uses (logged by the master at
  # start, before the workers fork).
  local want=epoll
  [ "$mode" = evshim ] && want=eventport
  if grep -q "using the \"$want\" event method" "$run/logs/error.log"; then
    record event_method "$mode" pass
  else
    record event_method "$mode" fail "error.log does not say: using the \"$want\" event method"
  fi

  # Bodies: the big file directly and through the proxy, the small one.
  local ok=pass what
  for what in big.bin proxy-close/big.bin small.html proxy/small.html; do
    if ! curl -sf -o "$run/got" "$base/$what" || ! cmp -s "$run/got" "$run/html/${what#proxy*/}"; then
      ok=fail
      log "$mode: $what: body differs or request failed"
    fi
  done
  record body_checksums "$mode" "$ok"

  log "$mode: load"
  load_case static_small_keepalive "$mode" -k -n "$n_small" -c "$conc" "$base/small.html"
  load_case static_small_close "$mode" -n "$n_close" -c "$conc" "$base/small.html"
  # Big bodies with keep-alive off: nginx's eventport module loses the read
  # interest of a keep-alive connection whose response waited for POLLOUT
  # (nginx's own bug, on illumos too: docs/clients.md "## nginx").
  load_case static_big_close "$mode" -n "$n_big" -c 8 "$base/big.bin"
  load_case proxy_small_keepalive "$mode" -k -n "$n_small" -c "$conc" "$base/proxy/small.html"
  load_case proxy_small_close "$mode" -n "$n_close" -c "$conc" "$base/proxy/small.html"
  load_case proxy_big_close "$mode" -n "$((n_big / 2))" -c 8 "$base/proxy-close/big.bin"

  # nginx -s reload during load (static and proxied, keep-alive off): the
  # old workers finish their requests, new ones take the listeners.
  log "$mode: reload under load"
  local before after
  before=$(workers_of "$master" | sort | tr '\n' ' ')
  ab_run reload_static -t "$span" -n 1000000 -c 16 "$base/small.html" &
  local ab1=$!
  ab_run reload_proxy -t "$span" -n 1000000 -c 16 "$base/proxy/small.html" &
  local ab2=$!
  sleep 1.5
  signal_nginx "$mode" "$bin" "$run" reload
  local r1 r2
  wait "$ab1"; r1=$?
  wait "$ab2"; r2=$?
  sleep 0.5
  after=$(workers_of "$master" | sort | tr '\n' ' ')
  local reload_err=
  [ "$r1" -eq 0 ] || reload_err+="static run: $(grep -E '^(Complete|Failed|Non-2xx)' "$logdir/ab-reload_static.log" | tr '\n' ' ') "
  [ "$r2" -eq 0 ] || reload_err+="proxy run: $(grep -E '^(Complete|Failed|Non-2xx)' "$logdir/ab-reload_proxy.log" | tr '\n' ' ') "
  grep -q "reconfiguring" "$run/logs/error.log" || reload_err+="no 'reconfiguring' in error.log "
  { [ -n "$after" ] && [ "$before" != "$after" ]; } || reload_err+="workers not replaced ($before -> $after) "
  if [ -z "$reload_err" ]; then record reload_under_load "$mode" pass; else record reload_under_load "$mode" fail "$reload_err"; fi

  # SIGKILL one worker during load; the master respawns it. Requests in
  # flight on the killed worker's connections are lost (natively too), so
  # the case asks that no more than about the killed worker's share of the
  # connections fails, that the master replaces the worker, and that the
  # next run loses nothing. The counts of both modes are in the report.
  log "$mode: worker killed under load"
  local victim
  ab_run kill_static -t "$span" -n 1000000 -c "$conc" "$base/small.html" &
  ab1=$!
  sleep 1.5
  victim=$(workers_of "$master" | head -1)
  [ -n "$victim" ] && kill -9 "$victim"
  wait "$ab1"
  local lost
  lost=$(awk '/^Failed requests:/ {f=$3} /^Non-2xx responses:/ {x=$3} END {print f + x}' "$logdir/ab-kill_static.log")
  printf 'worker_kill\t%s\t%s\n' "$mode" "${lost:-?}" >>"$logs/lost.tsv"
  sleep 0.5
  local kill_err=
  after=$(workers_of "$master")
  [ -n "$victim" ] || kill_err+="no worker to kill "
  [ "$(wc -w <<<"$after")" -eq 2 ] || kill_err+="$(wc -w <<<"$after") workers after the kill "
  grep -qw "$victim" <<<"$after" && kill_err+="worker $victim still there "
  grep -q "worker process $victim exited on signal 9" "$run/logs/error.log" || kill_err+="master did not see $victim exit "
  grep -q "Complete requests:" "$logdir/ab-kill_static.log" || kill_err+="ab did not finish: $(tail -1 "$logdir/ab-kill_static.log") "
  # ab counts each broken connection's failures its own way (receive and
  # length errors): natively a kill has lost up to 54 with 32 connections.
  # The bound only catches losses far beyond the killed worker's share.
  [ "${lost:-999}" -le "$((4 * conc))" ] || kill_err+="$lost requests lost (> 4 x $conc connections) "
  ab_run after_kill -k -n "$((n_small / 5))" -c "$conc" "$base/small.html" || kill_err+="after the respawn: $ab_err "
  if [ -z "$kill_err" ]; then record worker_kill_under_load "$mode" pass; else record worker_kill_under_load "$mode" fail "$kill_err"; fi
  log "$mode: killed worker $victim: $lost requests lost"

  # nginx -s quit: the master exits 0 with no worker left, and the error
  # log has no alert/crit/emerg (but the kill's own "exited on signal 9").
  log "$mode: shutdown"
  local m=$master
  stop_nginx "$mode" "$bin" "$run"
  local quit_err= left
  [ "$stop_status" = 0 ] || quit_err+="master exit status $stop_status "
  left=$(procs_of "$bin" | tr '\n' ' ')
  [ -z "$left" ] || { quit_err+="processes left: $left "; kill_everything "$bin"; }
  kill -0 "$m" 2>/dev/null && quit_err+="master $m still there "
  grep -q "exiting" "$run/logs/error.log" || quit_err+="no 'exiting' in error.log "
  if [ -z "$quit_err" ]; then record clean_shutdown "$mode" pass; else record clean_shutdown "$mode" fail "$quit_err"; fi
  local bad
  bad=$(grep -E '\[(alert|crit|emerg)\]' "$run/logs/error.log" | grep -v "worker process $victim exited on signal 9")
  if [ -z "$bad" ]; then
    record error_log_clean "$mode" pass
  else
    record error_log_clean "$mode" fail "$(head -3 <<<"$bad" | tr '\n' ' ')"
  fi
  cp "$run/logs/error.log" "$logdir/error.log"
}

# trace_check: a short run under `evshim trace` proves that the requests
# travel through event ports: FD associations, port_getn returning FD,
# TIMER (timer_resolution's SIGEV_PORT timer) and USER (the thread pool's
# port_send) events. Fails if nginx used anything else.
trace_check() {
  local run=$work/run-trace
  logdir=$logs/trace
  rm -rf "$run" && mkdir -p "$run" "$logdir"
  read -r front back < <(free_ports)
  write_site "$run"
  write_conf "$run" "$front" "$back"
  local err=
  if start_nginx trace "$bin_ports" "$run"; then
    curl -sf -o /dev/null "http://127.0.0.1:$front/small.html" || err+="small.html failed "
    curl -sf -o /dev/null "http://127.0.0.1:$front/big.bin" || err+="big.bin failed "
    sleep 0.3
    stop_nginx evshim "$bin_ports" "$run"
    [ "$stop_status" = 0 ] || err+="exit status $stop_status "
  else
    err+="did not start "
    kill_everything "$bin_ports"; wait "$job" 2>/dev/null; job=
  fi
  cp "$run/trace.log" "$logdir/trace.log" 2>/dev/null
  local t=$run/trace.log pattern
  for pattern in 'port_create\(\) = [0-9]' \
                 'timer_create\(CLOCK_REALTIME, \{sigev_notify=SIGEV_PORT' \
                 'port_associate\([0-9]+, PORT_SOURCE_FD, [0-9]+, POLLIN' \
                 'port_send\([0-9]+, ' \
                 'source=PORT_SOURCE_FD' 'source=PORT_SOURCE_TIMER' 'source=PORT_SOURCE_USER'; do
    grep -qE "$pattern" "$t" 2>/dev/null || err+="no /$pattern/ in the trace "
  done
  if [ -z "$err" ]; then record event_ports_traced evshim pass; else record event_ports_traced evshim fail "$err"; fi
  status[event_ports_traced.native]=skip
}

# Closed connections give their port slots back: illumos dissociates an fd
# when it is closed (port.c:168-169 (illumos)), and nginx closes without
# port_dissociate. With the port's event limit lowered to 256
# (--max-port-events, process.max-port-events on illumos), 1500
# connections in a row must all be served. Natively: the same load.
limit_check() {
  local mode=$1 bin=$2
  local run=$work/run-$mode-limit
  logdir=$logs/$mode
  rm -rf "$run" && mkdir -p "$run"
  read -r front back < <(free_ports)
  write_site "$run"
  write_conf "$run" "$front" "$back"
  local err=
  [ "$mode" = evshim ] && evshim_opts=(--max-port-events 256)
  if start_nginx "$mode" "$bin" "$run"; then
    ab_timeout=5 ab_run port_slots -n 1500 -c 4 "http://127.0.0.1:$front/small.html" || err+="$ab_err "
    local n
    n=$(grep -c "port_associate() failed" "$run/logs/error.log")
    [ "$n" -eq 0 ] || err+="$n port_associate() failures in error.log: $(grep -m1 "port_associate() failed" "$run/logs/error.log") "
    stop_nginx "$mode" "$bin" "$run"
    [ "$stop_status" = 0 ] || err+="exit status $stop_status "
  else
    err+="did not start "
    kill_everything "$bin"; wait "$job" 2>/dev/null; job=
  fi
  evshim_opts=()
  cp "$run/logs/error.log" "$logdir/error-limit.log" 2>/dev/null
  if [ -z "$err" ]; then record closed_fds_free_port_slots "$mode" pass; else record closed_fds_free_port_slots "$mode" fail "$err"; fi
}

case_names start event_method body_checksums static_small_keepalive static_small_close \
  static_big_close proxy_small_keepalive proxy_small_close proxy_big_close \
  reload_under_load worker_kill_under_load clean_shutdown error_log_clean event_ports_traced \
  closed_fds_free_port_slots

job=
trap 'kill_everything "$bin_ports"; kill_everything "$bin_epoll"' EXIT
: >"$speed"
: >"$logs/lost.tsv"
if [ "$build_ok" = pass ]; then
  run_mode native "$bin_epoll"
  run_mode evshim "$bin_ports"
  trace_check
  limit_check native "$bin_epoll"
  limit_check evshim "$bin_ports"
fi
trap - EXIT

# A case with no result failed; with no build at all there is no native
# result either, so that nothing is discounted as "fails natively too".
no_result=fail
[ "$build_ok" = pass ] || no_result=
: >"$results"
for c in "${cases[@]}"; do
  printf '%s\t%s\t%s\n' "$c" "${status[$c.evshim]:-fail}" "${status[$c.native]:-$no_result}" >>"$results"
done
clients_report nginx "$results"
rc=$?
[ "$build_ok" = pass ] || rc=1

# Speed: reported, not judged (same machine, same run).
{
  echo "  nginx requests/s (evshim eventport / native epoll, same run):"
  awk -F'\t' '{ r[$1 "," $2] = $3; if (!($1 in seen)) { seen[$1] = 1; order[n++] = $1 } }
       END { for (i = 0; i < n; i++) { c = order[i]; e = r[c ",evshim"]; x = r[c ",native"];
               printf "    %-24s %10s / %10s", c, e, x;
               if (e > 0 && x > 0) printf "  (%.2f)", e / x; printf "\n" } }' "$speed"
  awk -F'\t' '{ l[$2] = $3 } END { printf "  requests lost when a worker was SIGKILLed under load: evshim %s, native %s\n", l["evshim"], l["native"] }' "$logs/lost.tsv"
} | tee -a "$EVSHIM_CLIENTS_LOGS/nginx.summary"
exit $rc
