#!/usr/bin/env bash
# nng 1.5.2 (Debian's source) under evshim: its poller runs port_getn or
# kevent on a dedicated thread while other threads associate and re-arm.
# Three CMake builds from one source tree, out of tree in
# $EVSHIM_CLIENTS_WORK/nng/VARIANT: ports (evshim-ports), kqueue
# (evshim-kqueue-freebsd) and native (epoll, the baseline column). Runs
# nng's own ctest suite, each test's command as ctest runs it, under
# `evshim run` for both evshim builds and natively, in parallel
# (scripts/clients.d/nng_cases.py); in the default mode the ports build
# also under `evshim run --supervised`.
# docs/clients.md "## nng" says what runs in which mode and why.
# Environment: EVSHIM_CLIENTS_FULL=1 (every build supervised too),
# EVSHIM_NNG_JOBS (tests at a time, default 6: they mostly sleep),
# EVSHIM_CLIENTS_JOBS (builds at a time, default 2), EVSHIM_NNG_RETRIES
# (runs again alone of a failed test, default 2).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

variants=(ports kqueue-freebsd)
test_jobs=${EVSHIM_NNG_JOBS:-6}
make_jobs=${EVSHIM_CLIENTS_JOBS:-2}
full=${EVSHIM_CLIENTS_FULL:-0} quick=${EVSHIM_CLIENTS_QUICK:-0}

clients_need_packages cmake make gcc g++ binutils python3 || exit 1
clients_fetch_source nng 1.5.2-2 nng || exit 1
src=$EVSHIM_CLIENTS_WORK/src/nng
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
work=$EVSHIM_CLIENTS_WORK/nng results=$EVSHIM_CLIENTS_WORK/nng/results
clients_install_evshim && rm -rf "$results" && mkdir -p "$results" || exit 1

pkg_of() { case $1 in native) echo "" ;; ports) echo evshim-ports ;; *) echo "evshim-$1" ;; esac; }
# The poller's source file in nng (src/platform/posix/posix_pollq_*.c)
# and the calls it must reference.
pollq_of() { case $1 in native) echo epoll ;; ports) echo port ;; *) echo kqueue ;; esac; }
calls_of() {
  case $1 in
    epoll) echo epoll_create1 epoll_ctl epoll_wait ;;
    port) echo port_create port_associate port_dissociate port_getn port_send ;;
    kqueue) echo kqueue kevent ;;
  esac
}

# build_variant VARIANT: configures and builds nng with its tests and
# nngcat. CMake's probes for the pollers (nng_check_sym, i.e.
# check_symbol_exists) are answered in the cache: "no" for every poller
# but the variant's, and the variant's own probe compiles and links
# against evshim (CMAKE_REQUIRED_INCLUDES / _LIBRARIES). Every program
# links the library (CMAKE_C_STANDARD_LIBRARIES: after libnng.a).
build_variant() {
  local v=$1 dir=$work/$1 pkg
  pkg=$(pkg_of "$v")
  local opts=(-DNNG_TESTS=ON -DNNG_TOOLS=ON -DNNG_ENABLE_NNGCAT=ON)
  case $v in
    native) opts+=(-DNNG_HAVE_PORT_CREATE=0 -DNNG_HAVE_KQUEUE=0) ;;
    ports) opts+=(-DNNG_HAVE_KQUEUE=0 -DNNG_HAVE_EPOLL=0 -DNNG_HAVE_EPOLL_CREATE1=0) ;;
    *) opts+=(-DNNG_HAVE_PORT_CREATE=0 -DNNG_HAVE_EPOLL=0 -DNNG_HAVE_EPOLL_CREATE1=0) ;;
  esac
  if [ -n "$pkg" ]; then
    local cflags libs incs
    cflags=$(clients_cflags "$pkg") && libs=$(clients_libs "$pkg") || return 1
    incs=$(pkg-config --cflags-only-I "$pkg" | sed 's/-I//g; s/ *$//; s/ \+/;/g')
    opts+=(-DCMAKE_C_FLAGS="$cflags" -DCMAKE_CXX_FLAGS="$cflags"
           -DCMAKE_REQUIRED_INCLUDES="$incs" -DCMAKE_REQUIRED_LIBRARIES="$libs"
           -DCMAKE_C_STANDARD_LIBRARIES="$libs" -DCMAKE_CXX_STANDARD_LIBRARIES="$libs")
  fi
  # Rebuilt only when the options or evshim's foreign headers change.
  local key
  key=$( { printf '%s\n' "${opts[@]}"; [ -n "$pkg" ] && cat "$(pkg-config --variable=includedir "$pkg")"/evshim/*/{sys/event.h,port.h,sys/port.h} 2>/dev/null; } | sha256sum | cut -c1-16)
  if [ -f "$dir/.evshim-built-$key" ]; then
    echo "nng $v: up to date"
    return
  fi
  rm -rf "$dir" && mkdir -p "$dir" || return 1
  local cc=()
  command -v ccache >/dev/null && cc=(-DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
  cmake -S "$src" -B "$dir" "${opts[@]}" "${cc[@]}" >"$dir/cmake.log" 2>&1 ||
    { echo "nng $v: cmake failed ($dir/cmake.log)"; tail -20 "$dir/cmake.log"; return 1; }
  local want=NNG_HAVE_PORT_CREATE
  case $v in native) want=NNG_HAVE_EPOLL ;; kqueue-*) want=NNG_HAVE_KQUEUE ;; esac
  grep -q "^$want:INTERNAL=1$" "$dir/CMakeCache.txt" ||
    { echo "nng $v: cmake did not find its poller ($want; $dir/CMakeFiles/CMakeError.log)"; return 1; }
  nice -n 10 make -C "$dir" -j"$make_jobs" >"$dir/make.log" 2>&1 ||
    { echo "nng $v: make failed ($dir/make.log)"; tail -20 "$dir/make.log"; return 1; }
  touch "$dir/.evshim-built-$key"
  echo "nng $v: built"
}

# check_backend VARIANT: libnng.a holds exactly one poller, the variant's
# (its object posix_pollq_X.c.o), which references the variant's calls;
# no object references another poller's calls (epoll's included).
check_backend() {
  local v=$1 lib=$work/$1/libnng.a want problems=() p f
  want=$(pollq_of "$v")
  local members
  members=$(ar t "$lib" 2>/dev/null | grep -o 'posix_pollq_[a-z]*' | sort -u | tr '\n' ' ')
  [ "$members" = "posix_pollq_$want " ] || problems+=("pollers in libnng.a: '$members'")
  local undef
  undef=$(nm -u "$lib" 2>/dev/null) || { echo "nm failed"; return 1; }
  for p in epoll port kqueue; do
    for f in $(calls_of "$p"); do
      if [ "$p" = "$want" ]; then
        grep -qE "^ +U $f(@.*)?$" <<<"$undef" || problems+=("no call to $f")
      else
        grep -qE "^ +U $f(@.*)?$" <<<"$undef" && problems+=("calls $f")
      fi
    done
  done
  ((${#problems[@]} == 0)) && return 0
  echo "${problems[*]}"
  return 1
}

# check_links VARIANT: every program the tests run (nngcat included, which
# the nngcat tests' scripts run) that holds nng's poller (calls the
# poller's wait, port_getn or kevent: the linker takes the poller from
# libnng.a only into programs that use it; `options`, for one, does not)
# needs the variant's evshim library (its dynamic section's NEEDED), and
# there is at least one.
check_links() {
  local v=$1 dir=$work/$1 lib wait
  lib=lib$(pkg_of "$v")
  wait=kevent
  [ "$v" = ports ] && wait=port_getn
  ctest --test-dir "$dir" --show-only=json-v1 | python3 -c '
import json, subprocess, sys
build, lib, wait = sys.argv[1:4]
progs = sorted({w for t in json.load(sys.stdin)["tests"] for w in t["command"]
                if w.startswith(build + "/")})
# One readelf for all: each file'"'"'s NEEDED entries and dynamic symbols.
out = subprocess.run(["readelf", "-W", "-d", "--dyn-syms"] + progs,
                     capture_output=True, text=True).stdout
info, cur = {}, progs[0] if len(progs) == 1 else None
for line in out.splitlines():
    if line.startswith("File: "):
        cur = line[6:].strip()
        continue
    if cur is None:
        continue
    i = info.setdefault(cur, {"needed": False, "wait": False})
    if "(NEEDED)" in line and "[" + lib + ".so" in line:
        i["needed"] = True
    f = line.split()
    if len(f) >= 8 and f[6] == "UND" and f[7].split("@")[0] == wait:
        i["wait"] = True
holders = [p for p in progs if info.get(p, {}).get("wait")]
bad = [p.rsplit("/", 1)[1] for p in holders if not info[p]["needed"]]
if not holders:
    print("no program holds the poller"); sys.exit(1)
if bad:
    print("do not need " + lib + ": " + " ".join(bad)); sys.exit(1)
print(f"{len(holders)} of {len(progs)} programs hold the poller and need {lib}", file=sys.stderr)
' "$dir" "$lib" "$wait"
}

# trace_case VARIANT: one test (nng.tcp: connections, sends and receives
# over loopback TCP) under `evshim trace`: the poller must wait on its own
# thread and other threads must register and re-arm descriptors.
#   ports: port_getn(..., NULL) on a thread, port_associate from another
#          thread, port_send (the poller's wake-up), port_dissociate;
#   kqueue: kevent(..., NULL, 0, list, n, NULL) on a thread, EV_ADD with
#          EV_DISABLE|EV_CLEAR, EV_ENABLE|EV_DISPATCH|EV_CLEAR from
#          another thread than the poller's.
# The native build under `evshim trace` would print nothing, so the case
# fails for a build that does not go through evshim.
trace_case() {
  local v=$1 dir=$work/$1 t=$results/trace-$1.log
  local cmd
  cmd=$(ctest --test-dir "$dir" --show-only=json-v1 | python3 -c '
import json, shlex, sys
for t in json.load(sys.stdin)["tests"]:
    if t["name"] == "nng.tcp":
        print(shlex.join(t["command"]))')
  [ -n "$cmd" ] || { echo "no nng.tcp test"; return 1; }
  # shellcheck disable=SC2086
  (cd "$dir/tests" && NUTS_PORT_FILE=$work/nuts_ports timeout 300 "$EVSHIM" trace -o "$t" -- $cmd >"$t.out" 2>&1) ||
    { echo "nng.tcp under evshim trace failed ($t.out)"; return 1; }
  python3 - "$t" "$(pollq_of "$v")" <<'EOF'
import re, sys
path, kind = sys.argv[1:3]
lines = open(path, errors="replace").read().splitlines()
def tid(line):
    m = re.match(r"\[pid (\d+)(?: tid (\d+))?", line)
    return (m.group(1), m.group(2) or m.group(1)) if m else None
problems = []
if kind == "port":
    waits = {tid(l) for l in lines if re.search(r"\] port_getn\(\d+, .*NULL\)|\] port_getn\(\d+, <unfinished", l) and " tid " in l}
    assoc = {tid(l) for l in lines if "] port_associate(" in l and "PORT_SOURCE_FD" in l}
    if not waits: problems.append("no port_getn on a thread of its own")
    if not assoc - waits: problems.append("no port_associate from another thread than the poller's")
    for call in ("port_send(", "port_dissociate("):
        if not any("] " + call in l for l in lines): problems.append("no " + call.rstrip("("))
else:
    waits = {tid(l) for l in lines if re.search(r"\] kevent\(\d+, NULL, 0, ", l) and " tid " in l}
    add = [l for l in lines if re.search(r"EV_ADD\|EV_DISABLE\|EV_CLEAR|EV_ADD\|EV_CLEAR\|EV_DISABLE", l)]
    rearm = {tid(l) for l in lines if re.search(r"\] kevent\(\d+, \[.*EV_ENABLE", l) and "EV_DISPATCH" in l and "EV_CLEAR" in l}
    if not waits: problems.append("no kevent wait on a thread of its own")
    if not add: problems.append("no EV_ADD|EV_DISABLE|EV_CLEAR")
    if not rearm - waits: problems.append("no EV_ENABLE|EV_DISPATCH|EV_CLEAR re-arm from another thread than the poller's")
if problems:
    print("; ".join(problems))
    sys.exit(1)
EOF
}

# -- build ---------------------------------------------------------------
status=0
clients_build_all nng "$work" native "${variants[@]}" || exit 1
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# -- run -------------------------------------------------------------------
# Units: every build in fast mode (and natively); supervised: the ports
# build by default, every evshim build with EVSHIM_CLIENTS_FULL=1, none
# with --quick.
supervised=()
((quick)) || supervised=(ports)
((full)) && supervised=("${variants[@]}")
t1=$SECONDS
units=("name=native,build=$work/native,out=$results/native.tsv")
for v in "${variants[@]}"; do
  units+=("name=$v,build=$work/$v,out=$results/$v.tsv,run=$EVSHIM:run:--")
done
for v in "${supervised[@]}"; do
  units+=("name=$v-supervised,build=$work/$v,out=$results/$v-supervised.tsv,run=$EVSHIM:run:--supervised:--")
done
# reqstress and multistress run STRESSTIME seconds each (nng's own knob,
# default 30): 10 by default, one at a time (nng_cases.py --serial); 30
# with EVSHIM_CLIENTS_FULL=1.
stress=10
((full)) && stress=30
rm -f "$work/nuts_ports"
STRESSTIME=$stress python3 "$here/nng_cases.py" --jobs "$test_jobs" --durations "$work/durations.tsv" \
  --port-file "$work/nuts_ports" --serial nng.reqstress,nng.multistress \
  --retries "${EVSHIM_NNG_RETRIES:-2}" "${units[@]}" >&2 ||
  { clients_log "nng: the test runner failed"; exit 1; }
clients_log "nng: tests took $((SECONDS - t1)) s"

# -- report ----------------------------------------------------------------
# case_line CASE NATIVE CHECK...: one line CASE<TAB>pass|fail<TAB>NATIVE, by
# CHECK's status (its output logged when it fails).
case_line() {
  local name=$1 native=$2 out st=pass; shift 2
  out=$("$@") || { st=fail; clients_log "nng: $name: $out"; }
  printf '%s\t%s\t%s\n' "$name" "$st" "$native"
}
native_backend=pass
check_backend native >/dev/null || native_backend=fail
for v in "${variants[@]}" "${supervised[@]/%/-supervised}"; do
  [ -n "$v" ] || continue
  build=${v%-supervised}
  tsv=$results/nng-$v.cases
  {
    case_line "build/only-$(pollq_of "$build")-poller" "$native_backend" check_backend "$build"
    case_line build/programs-load-evshim "" check_links "$build"
    [ "$v" = "$build" ] && case_line trace/threaded-poller "" trace_case "$build"
    # CASE EVSHIM NATIVE, joined on the test name.
    join -t $'\t' -a 1 -o 1.1,1.2,2.2 <(cut -f1,2 "$results/$v.tsv" | sort) \
      <(cut -f1,2 "$results/native.tsv" | sort)
  } >"$tsv"
  clients_report "nng-$v" "$tsv" || status=1
  # The tests that passed only when run again (both columns), by name.
  again=$(awk -F'\t' '$4 ~ /^passed at attempt/ {printf " %s (%s)", $1, $4}' "$results/$v.tsv")
  [ -z "$again" ] || echo "  passed only when run again alone:$again" | tee -a "$EVSHIM_CLIENTS_LOGS/nng-$v.summary"
  races=$(awk -F'\t' '$2 == "skip" {printf " %s (%s)", $1, $4}' "$results/$v.tsv")
  [ -z "$races" ] || echo "  counted skipped, a race of nng's own threads:$races" |
    tee -a "$EVSHIM_CLIENTS_LOGS/nng-$v.summary"
done
again=$(awk -F'\t' '$4 ~ /^passed at attempt/ {printf " %s (%s)", $1, $4}' "$results/native.tsv")
[ -z "$again" ] || echo "  nng native: passed only when run again alone:$again" |
  tee -a "$EVSHIM_CLIENTS_LOGS/nng-native-retries.summary"
exit $status
