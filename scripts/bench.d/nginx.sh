#!/usr/bin/env bash
# nginx's part of scripts/bench-clients (not a test): requests/s with `ab`
# against the clients harness's two builds, stock epoll natively and the
# event-port build under `evshim run` in each MODE (fast, supervised), with
# the configuration and the start/stop of the client tests
# (scripts/clients.d/nginx_server.sh). All servers run at once, idle but
# for the one `ab` drives; each evshim run follows a native run of the same
# case (paired runs).
#   EVSHIM=... scripts/bench.d/nginx.sh WORK BIN_EPOLL BIN_PORTS PAIRS N_KEEPALIVE N_CLOSE MODE...
# Prints tab-separated lines for scripts/bench-clients, which judges them:
#   server MODE PID METHOD_OK SUPERVISED    (one per server once started)
#   ab CASE MODE PAIR N STATUS LOG          (one per ab run)
#   stop MODE STATUS ALERTS                 (master's exit status, [alert]/[crit]/[emerg] lines)
# and exits 1 when a server does not start.
set -uo pipefail
here=$(cd "$(dirname "$0")/../clients.d" && pwd)
# shellcheck source=../clients.d/nginx_server.sh
source "$here/nginx_server.sh"
: "${EVSHIM:?the evshim command}"
work=$1 bin_epoll=$2 bin_ports=$3 pairs=$4 n_keepalive=$5 n_close=$6
shift 6
modes=("$@")
conc=32

declare -A jobs masters fronts runs
job=
cleanup() {
  local m
  for m in "${!jobs[@]}"; do [ -n "${jobs[$m]}" ] && kill -9 "${jobs[$m]}" 2>/dev/null; done
  kill_everything "$bin_ports"
  kill_everything "$bin_epoll"
}
trap cleanup EXIT

bin_of() { [ "$1" = native ] && echo "$bin_epoll" || echo "$bin_ports"; }
kind_of() { [ "$1" = native ] && echo native || echo evshim; }

for m in native "${modes[@]}"; do
  run=$work/bench-$m
  rm -rf "$run" && mkdir -p "$run"
  read -r front back < <(free_ports)
  write_site "$run"
  write_conf "$run" "$front" "$back"
  sup=0
  [ "$m" = supervised ] && sup=1
  if ! EVSHIM_SUPERVISED=$sup start_nginx "$(kind_of "$m")" "$(bin_of "$m")" "$run"; then
    echo "nginx bench: $m: nginx did not start: $(tail -3 "$run/logs/error.log" "$run/logs/stdout.log" 2>/dev/null | tr '\n' ' ')" >&2
    exit 1
  fi
  jobs[$m]=$job masters[$m]=$master fronts[$m]=$front runs[$m]=$run
  want=epoll
  [ "$m" = native ] || want=eventport
  method_ok=0
  grep -q "using the \"$want\" event method" "$run/logs/error.log" && method_ok=1
  # The mode: the environment `evshim run` (the job) started with (nginx
  # writes its process titles over its own processes' environment block).
  seen=$(tr '\0' '\n' <"/proc/$job/environ" 2>/dev/null | sed -n 's/^EVSHIM_SUPERVISED=//p')
  printf 'server\t%s\t%s\t%s\t%s\n' "$m" "$master" "$method_ok" "${seen:-unset}"
  # Warm-up (not counted): connections, page cache, the workers' pools.
  ab -q -k -n 500 -c "$conc" "http://127.0.0.1:$front/small.html" >/dev/null 2>&1
done

# ab_once CASE MODE PAIR: one ab run against MODE's server, logged.
ab_once() {
  local case=$1 m=$2 pair=$3 n opt=()
  local log=$work/bench-logs/ab-$case-$m-$pair.log
  mkdir -p "$work/bench-logs"
  case $case in
    keepalive) n=$n_keepalive opt=(-k) ;;
    close) n=$n_close ;;
  esac
  timeout 300 ab -r -s 20 "${opt[@]}" -n "$n" -c "$conc" "http://127.0.0.1:${fronts[$m]}/small.html" >"$log" 2>&1
  printf 'ab\t%s\t%s\t%s\t%s\t%s\t%s\n' "$case" "$m" "$pair" "$n" "$?" "$log"
}

for ((p = 1; p <= pairs; p++)); do
  for case in keepalive close; do
    for m in "${modes[@]}"; do
      ab_once "$case" native "$p.$m"
      ab_once "$case" "$m" "$p.$m"
    done
  done
done

for m in native "${modes[@]}"; do
  job=${jobs[$m]}
  stop_nginx "$(kind_of "$m")" "$(bin_of "$m")" "${runs[$m]}"
  jobs[$m]=
  alerts=$(grep -cE '\[(alert|crit|emerg)\]' "${runs[$m]}/logs/error.log")
  printf 'stop\t%s\t%s\t%s\n' "$m" "$stop_status" "$alerts"
done
trap - EXIT
