#!/usr/bin/env bash
# Redis 7.0.15 (Debian's source) under evshim: its event loop (ae.c) with
# the event-port backend (ae_evport.c) and the kqueue backend
# (ae_kqueue.c), each in a build that has no other backend, against a
# native epoll build. Runs Redis's own Tcl suite (./runtest) on a subset of
# units under `evshim run` (fast and --supervised), the test driver and
# every redis-server it starts, and natively; each case is counted.
#   variants: ports kqueue (+ native)
# docs/clients.md "## Redis" says what runs and how the backend is proved.
# Environment: EVSHIM_CLIENTS_JOBS (make jobs, default 2),
# EVSHIM_REDIS_RUN_TIMEOUT (seconds per runtest run, 300).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

redis_version=5:7.0.15-1~deb12u10
jobs=${EVSHIM_CLIENTS_JOBS:-2}
run_timeout=${EVSHIM_REDIS_RUN_TIMEOUT:-300}
variants=(ports kqueue)
# The units (docs/clients.md "## Redis", "The subset"): the protocol
# parser (malformed requests, protocol desync, many arguments, pipelining),
# keyspace commands, INFO and its counters, Pub/Sub (subscribers on several
# connections, patterns), expiry (the server's timer event and lazy expiry,
# with sleeps; a replica), and the list type with its blocking commands
# (BLPOP, BLMOVE, timeouts, clients unblocked by other clients).
units=(unit/protocol unit/keyspace unit/info unit/pubsub unit/expire unit/type/list)
if [ "${EVSHIM_CLIENTS_QUICK:-0}" = 1 ]; then
  units=(unit/protocol unit/keyspace unit/info unit/pubsub)
fi

# The cases that send a command on one connection, do not wait for its
# reply, and then send one on another connection that must be served after
# it (docs/clients.md "## Redis", "The event-port variant").
ports_order_cases=(
  "BRPOPLPUSH does not affect WATCH while still blocked"
  "PUBLISH/SUBSCRIBE after UNSUBSCRIBE without arguments"
  "PUBLISH/PSUBSCRIBE after PUNSUBSCRIBE without arguments"
)

clients_need_packages gcc make binutils pkg-config python3 tcl procps || exit 1
clients_fetch_source redis "$redis_version" redis || exit 1
src=$EVSHIM_CLIENTS_WORK/src/redis
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1

work=$EVSHIM_CLIENTS_WORK/redis
results=$work/results
logs=$EVSHIM_CLIENTS_LOGS/redis
rm -rf "$results" "$logs"
mkdir -p "$work" "$results" "$logs"

pkg_of() { case $1 in ports) echo evshim-ports ;; kqueue) echo evshim-kqueue-freebsd ;; native) echo "" ;; esac; }
# Redis's name of the backend (aeApiName(), INFO's multiplexing_api) and the
# kernel call each backend's object must reference.
api_of() { case $1 in ports) echo evport ;; kqueue) echo kqueue ;; native) echo epoll ;; esac; }
call_of() { case $1 in evport) echo port_getn ;; kqueue) echo kevent ;; epoll) echo epoll_wait ;; select) echo select ;; esac; }

# Redis picks its backend in ae.c: HAVE_EVPORT, else HAVE_EPOLL, else
# HAVE_KQUEUE, else select; config.h defines HAVE_EPOLL on every Linux
# build and the other two only on their systems. The evshim builds compile
# ae.c (only) with config.h read first (-include config.h; its include
# guard keeps ae.c's own #include from reading it again) and then this
# header, which takes HAVE_EPOLL away and names the variant's backend. No
# Redis source file is changed.
write_backend_headers() {
  local v macro
  for v in "${variants[@]}"; do
    case $v in ports) macro=HAVE_EVPORT ;; kqueue) macro=HAVE_KQUEUE ;; esac
    cat >"$work/evshim_backend_$v.h" <<EOF
/* scripts/clients.d/redis.sh: read by ae.c only, after Redis's config.h. */
#undef HAVE_EPOLL
#define $macro 1
EOF
  done
  # Read by make after Redis's src/Makefile (make -f Makefile -f evshim.mk):
  # the backend's flags for ae.o only ("private": not passed on to its
  # prerequisites), evshim's library at the end of every link.
  cat >"$work/evshim.mk" <<'EOF'
ae.o: private FINAL_CFLAGS += $(EVSHIM_AE_FLAGS)
FINAL_LIBS += $(EVSHIM_LIBS)
EOF
}

# build_variant VARIANT: a copy of the source (Redis builds in its tree)
# built with the libc allocator, without TLS and systemd; Redis's bundled
# deps (hiredis, lua, linenoise, hdr_histogram), which Debian's source
# keeps.
build_variant() {
  local v=$1 dir=$work/$1 pkg ae_flags="" libs=""
  pkg=$(pkg_of "$v")
  if [ -n "$pkg" ]; then
    ae_flags="-include config.h -include $work/evshim_backend_$v.h $(clients_cflags "$pkg")" &&
      libs=$(clients_libs "$pkg") || return 1
  fi
  local key
  key=$( { echo "$ae_flags $libs"; declare -f build_variant; cat "$work/evshim.mk";
           [ -n "$pkg" ] && { cat "$work/evshim_backend_$v.h";
                              find "$(pkg-config --variable=includedir "$pkg")/evshim" -name '*.h' -exec cat {} +; }; } |
         sha256sum | cut -c1-16)
  if [ -f "$dir/.evshim-built-$key" ]; then
    echo "redis $v: up to date"
    return 0
  fi
  rm -rf "$dir" && cp -a "$src" "$dir" && cd "$dir/src" || return 1
  # GIT_CEILING_DIRECTORIES: Redis's mkreleasehdr.sh asks git for the
  # sha1 INFO shows; without it git finds the evshim checkout around.
  GIT_CEILING_DIRECTORIES=$work nice -n 10 make -f Makefile -f "$work/evshim.mk" -j"$jobs" MALLOC=libc BUILD_TLS=no USE_SYSTEMD=no \
      EVSHIM_AE_FLAGS="$ae_flags" EVSHIM_LIBS="$libs" all >"$dir/make.log" 2>&1 ||
    { echo "redis $v: make failed ($dir/make.log)"; tail -20 "$dir/make.log"; return 1; }
  touch "$dir/.evshim-built-$key"
  echo "redis $v: built"
}

# check_backends VARIANT: redis-server references the variant's kernel
# call (port_getn, kevent; natively epoll_wait) and no other backend's
# (ae.c's backends define no data symbols: calls only).
check_backends() {
  local v=$1 syms a entries=()
  syms=$(nm "$work/$v/src/redis-server" 2>/dev/null) || { echo "nm failed"; return 1; }
  for a in evport kqueue epoll select; do
    entries+=("$a::$(call_of "$a")")
  done
  clients_one_backend "$syms" "$(api_of "$v")" "${entries[@]}"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# method_case VARIANT MODE: a redis-server of the variant, started under
# `evshim trace` (MODE fast or supervised; natively without), answers INFO
# with multiplexing_api:API, and (under evshim) the trace's summary counts
# its kernel call. Queried with the native build's redis-cli.
method_case() {
  local v=$1 mode=$2 api port run=() log
  log=$logs/method-$v-$mode
  api=$(api_of "$v")
  port=$(free_port)
  case $mode in
    fast) run=("$EVSHIM" trace -c -o "$log.trace" --) ;;
    supervised) run=("$EVSHIM" trace --supervised -c -o "$log.trace" --) ;;
  esac
  local cli=$work/native/src/redis-cli tmp
  tmp=$(mktemp -d)
  timeout -k 5 60 "${run[@]}" "$work/$v/src/redis-server" --port "$port" --bind 127.0.0.1 \
      --save "" --appendonly no --dir "$tmp" >"$log.server" 2>&1 &
  local pid=$! i info=""
  for i in $(seq 100); do
    [ "$("$cli" -p "$port" ping 2>/dev/null)" = PONG ] && break
    sleep 0.1
  done
  info=$("$cli" -p "$port" info server 2>&1 | tr -d '\r')
  # A few commands, so the loop serves more than one event.
  "$cli" -p "$port" set evshim 1 >/dev/null 2>&1
  "$cli" -p "$port" get evshim >/dev/null 2>&1
  "$cli" -p "$port" shutdown nosave >/dev/null 2>&1
  wait "$pid"
  rm -rf "$tmp"
  echo "$info" >"$log.info"
  grep -qx "multiplexing_api:$api" <<<"$info" || { echo "INFO: $(grep multiplexing_api <<<"$info")"; return 1; }
  [ "$mode" = native ] && return 0
  # The summary table (-c): a row per call, its count first, its name last.
  local n
  n=$(awk -v c="$(call_of "$api")" '$NF == c {print $1}' "$log.trace" 2>/dev/null)
  [[ "$n" =~ ^[0-9]+$ ]] && ((n > 0)) || { echo "no $(call_of "$api") in the trace ($log.trace)"; return 1; }
}

# run_units VARIANT MODE: one ./runtest (one test client, so a case's unit
# is the one announced before it) and results/VARIANT.MODE
# (CASE<TAB>pass|fail|skip<TAB>detail).
run_units() {
  local v=$1 mode=$2 dir=$work/$1 run=() u t args=()
  case $mode in fast) run=("$EVSHIM" run --) ;; supervised) run=("$EVSHIM" run --supervised --) ;; esac
  for u in "${units[@]}"; do args+=(--single "$u"); done
  # What Redis's event-port backend does not do, on illumos as under
  # evshim (docs/clients.md "## Redis", "The event-port variant"): the
  # diskless master's RDB pipe (its EOF comes as POLLHUP alone, which
  # ae_evport.c drops), and the cases that assume commands sent on two
  # connections are served in the order they were sent.
  if [ "$v" = ports ]; then
    args+=(--config repl-diskless-sync no)
    for t in "${ports_order_cases[@]}"; do args+=(--skiptest "$t"); done
  fi
  local log=$logs/$v.$mode.log t0=$SECONDS
  # TERM=dumb: no colour codes. --timeout: a test client that reports
  # nothing for 60 s is stopped (the run then ends: its cases fail).
  (cd "$dir" && TERM=dumb timeout -k 10 "$run_timeout" "${run[@]}" ./runtest --clients 1 \
      --timeout 60 --dump-logs "${args[@]}") >"$log" 2>&1
  echo "exit $?" >>"$log"
  clients_log "redis $v $mode: $((SECONDS - t0)) s"
  python3 - "$log" "${units[@]}" >"$results/$v.$mode" <<'EOF'
import re, sys
log, units = sys.argv[1], sys.argv[2:]
unit, seen, rows = "(none)", {}, []
exit_line, done = "", set()
def case(name, status):
    key = f"{unit}/{name}"
    seen[key] = seen.get(key, 0) + 1
    if seen[key] > 1:
        key += f"#{seen[key]}"
    rows.append([key, status, ""])
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    if rows and rows[-1][1] == "fail" and not rows[-1][2] and line and not line.startswith("["):
        rows[-1][2] = line[:300]  # the assertion, after an [err] line
    m = re.match(r"Testing (\S+)$", line)
    if m:
        unit = m.group(1)
        continue
    m = re.match(r"\[ok\]: (.*) \(\d+ ms\)$", line)
    if m:
        case(m.group(1), "pass"); continue
    m = re.match(r"\[err\]: (.*) in tests/\S+\.tcl$", line)
    if m:
        case(m.group(1), "fail"); continue
    m = re.match(r"\[(skip|ignore)\]: (.*)$", line)
    if m:
        name = m.group(2)
        if m.group(1) == "ignore":  # "NAME: the reason"
            name = re.sub(r": [^:]*$", "", name)
        case(name, "skip"); continue
    m = re.match(r"\[\d+/\d+ done\]: (\S+) \(\d+ seconds\)$", line)
    if m:
        done.add(m.group(1)); continue
    if line.startswith("exit "):
        exit_line = line
for r in rows:
    print("\t".join(r))
# Each unit's end and runtest's own exit (0: every case passed); a case the
# run never reached has no line here and counts against the native list.
for u in units:
    print(f"{u}/(done)\t{'pass' if u in done else 'fail'}\t")
print(f"(exit)\t{'pass' if exit_line == 'exit 0' else 'fail'}\t{exit_line}")
EOF
}

# -- build -------------------------------------------------------------------
write_backend_headers
status=0
built_ok() { [ -x "$work/$1/src/redis-server" ] && [ -x "$work/$1/src/redis-cli" ]; }
clients_build_all redis "$work" native "${variants[@]}" || exit 1
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# -- run -----------------------------------------------------------------------
clients_run_all redis run_units "${variants[@]}"

# -- report --------------------------------------------------------------------
native_backend=pass
problem=$(check_backends native) || { native_backend=fail; clients_log "redis native: $problem"; }
native_method=pass
problem=$(method_case native native) || { native_method=fail; clients_log "redis native: method: $problem"; }
for v in "${variants[@]}"; do
  tsv=$results/redis-$v.tsv
  {
    clients_backend_case redis "$v" "$(api_of "$v")" "$native_backend"
    clients_method_cases redis "$v" "$(api_of "$v")" "$native_method"
    clients_join_modes "$results" "$v"  # per mode, joined with native (common.sh)
  } >"$tsv"
  # The failing lines, for the log.
  awk -F'\t' '$2 == "fail" {print "  " $1}' "$tsv" >&2
  clients_report "redis-$v" "$tsv" || status=1
done
exit $status
