#!/usr/bin/env bash
# lighttpd 1.4.69 (Debian's source) under evshim: its event-port handler
# (solaris-eventports) and its kqueue handler (freebsd-kqueue), both in one
# build against evshim's libraries and chosen when the server starts by
# `server.event-handler`, against a native build on linux-sysepoll. Runs
# lighttpd's own test suite (its run-tests.pl: request.t,
# core-condition.t, mod-fastcgi.t, mod-scgi.t) under `evshim run` (fast and
# --supervised), the test driver and every lighttpd, CGI and FastCGI/SCGI
# backend it starts, and natively; each TAP line is a case.
#   variants: ports kqueue (+ native)
# docs/clients.md "## lighttpd" says what runs and how the handler is proved.
# Environment: EVSHIM_LIGHTTPD_RUN_TIMEOUT (seconds per suite run, 300),
# EVSHIM_LIGHTTPD_HANDLER_ports / _kqueue (the handler a variant's runs
# name; default solaris-eventports / freebsd-kqueue: set to linux-sysepoll
# to see the method check fail).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

lighttpd_version=1.4.69-1
run_timeout=${EVSHIM_LIGHTTPD_RUN_TIMEOUT:-300}
variants=(ports kqueue)
# The suite's files (run-tests.pl's RUNTESTS); --quick: the request parser
# and the static, CGI and proxy cases, and FastCGI (a backend the server
# spawns and talks to over a socket).
tests=(request core-condition mod-fastcgi mod-scgi)
if [ "${EVSHIM_CLIENTS_QUICK:-0}" = 1 ]; then
  tests=(request mod-fastcgi)
fi

clients_need_packages gcc meson ninja-build binutils pkg-config perl python3 \
  libpcre2-dev zlib1g-dev || exit 1
clients_fetch_source lighttpd "$lighttpd_version" lighttpd || exit 1
src=$EVSHIM_CLIENTS_WORK/src/lighttpd
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1

work=$EVSHIM_CLIENTS_WORK/lighttpd
results=$work/results
logs=$EVSHIM_CLIENTS_LOGS/lighttpd
rm -rf "$results" "$logs"
mkdir -p "$work" "$results" "$logs"

# The handler (server.event-handler) a variant's server runs, the call its
# loop waits in (what the trace must count) and the build it runs.
variant_handler() {
  case $1 in ports) echo solaris-eventports ;; kqueue) echo freebsd-kqueue ;; native) echo linux-sysepoll ;; esac
}
handler_of() {
  case $1 in
    ports) echo "${EVSHIM_LIGHTTPD_HANDLER_ports:-solaris-eventports}" ;;
    kqueue) echo "${EVSHIM_LIGHTTPD_HANDLER_kqueue:-freebsd-kqueue}" ;;
    native) echo linux-sysepoll ;;
  esac
}
call_of() { case $1 in ports) echo port_getn ;; kqueue) echo kevent ;; esac; }
build_of() { case $1 in native) echo native ;; *) echo evshim ;; esac; }

# build_variant BUILD: meson, out of tree (the source stays as fetched), in
# $work/BUILD. The evshim build compiles both foreign handlers beside
# lighttpd's own (epoll, poll): src/meson.build finds evshim's
# <sys/event.h> and kqueue() in it by itself (HAVE_SYS_EVENT_H,
# HAVE_KQUEUE: fdevent_impl.h:43-46), and the event-port handler, which
# fdevent_impl.h:36-41 enables only on Solaris (`__sun`), is enabled by
# defining its macro FDEVENT_USE_SOLARIS_PORT (and reading <port.h>, which
# that block would have included) on the command line; the `__sun` block,
# which would also take epoll away, stays off. No lighttpd file is changed.
build_variant() {
  local b=$1 dir=$work/$1 cflags="" ldflags=""
  if [ "$b" = evshim ]; then
    cflags="-DFDEVENT_USE_SOLARIS_PORT -include port.h $(clients_cflags "evshim-ports evshim-kqueue-freebsd")" &&
      ldflags="-Wl,--as-needed $(clients_libs "evshim-ports evshim-kqueue-freebsd")" || return 1
  fi
  local key
  key=$( { echo "$cflags $ldflags"; declare -f build_variant;
           [ "$b" = evshim ] && find "$(pkg-config --variable=includedir evshim-ports)/evshim" -name '*.h' -exec cat {} +; } |
         sha256sum | cut -c1-16)
  if [ -f "$dir/.evshim-built-$key" ]; then
    echo "lighttpd $b: up to date"
    return 0
  fi
  rm -rf "$dir"
  # The modules the suite loads are built by default; PCRE2 for the
  # conditions (core-condition.t skips 15 cases without it), zlib for
  # mod_deflate. No TLS, no other optional library.
  CFLAGS="$cflags" LDFLAGS="$ldflags" meson setup --buildtype=debugoptimized -Dwith_pcre=pcre2 \
      -Dwith_zlib=enabled "$src" "$dir" >"$work/setup-$b.log" 2>&1 ||
    { echo "lighttpd $b: meson setup failed ($work/setup-$b.log)"; tail -20 "$work/setup-$b.log"; return 1; }
  nice -n 10 ninja -C "$dir" -j "${EVSHIM_CLIENTS_JOBS:-2}" >"$dir/ninja.log" 2>&1 ||
    { echo "lighttpd $b: ninja failed ($dir/ninja.log)"; tail -20 "$dir/ninja.log"; return 1; }
  touch "$dir/.evshim-built-$key"
  echo "lighttpd $b: built"
}
built_ok() {
  [ -x "$work/$1/src/lighttpd" ] && [ -x "$work/$1/tests/fcgi-responder" ] && [ -x "$work/$1/tests/scgi-responder" ]
}

# check_handlers BUILD WANT...: `lighttpd -V` (fdevent_show_event_handlers,
# fdevent_impl.c:140-165) lists each WANT handler with "+", and the binary
# references each one's call; for the evshim build, it links both evshim
# libraries. Prints what is wrong and fails otherwise.
check_handlers() {
  local b=$1 bin=$work/$1/src/lighttpd v out syms problems=()
  shift
  out=$("$bin" -V 2>&1) || { echo "lighttpd -V failed: $out"; return 1; }
  syms=$(nm -u "$bin" 2>/dev/null) || { echo "nm failed"; return 1; }
  for v in "$@"; do
    local line call
    case $v in
      eventports) line="eventports (Solaris)" call=port_getn ;;
      kqueue) line="kqueue (FreeBSD)" call=kevent ;;
      epoll) line="epoll (Linux)" call=epoll_wait ;;
    esac
    grep -qF "+ $line" <<<"$out" || problems+=("-V: no '+ $line'")
    grep -qE "^ +U $call(@|$)" <<<"$syms" || problems+=("no call to $call")
  done
  if [ "$b" = evshim ]; then
    local libs
    libs=$(ldd "$bin")
    grep -q libevshim-ports <<<"$libs" || problems+=("not linked with libevshim-ports")
    grep -q libevshim-kqueue-freebsd <<<"$libs" || problems+=("not linked with libevshim-kqueue-freebsd")
  fi
  ((${#problems[@]} == 0)) && return 0
  echo "${problems[*]}"
  return 1
}

# prepare_tests VARIANT: the suite's own prepare.sh (its tmp/ tree in
# the build directory), and the handler: every configuration of the suite
# (lighttpd.conf, condition.conf, fastcgi-responder.conf, proxy.conf,
# scgi-responder.conf) includes env.SRCDIR + "/tmp/bind*.conf", the
# suite's hook for a local override (LightyTest.pm sets SRCDIR to the build
# directory's tests/); bind-evshim.conf names the variant's handler.
prepare_tests() {
  local v=$1 dir
  dir=$work/$(build_of "$1")
  (cd "$dir" && srcdir=$src/tests top_builddir=$dir sh "$src/tests/prepare.sh") >/dev/null || return 1
  printf 'server.event-handler = "%s"\n' "$(handler_of "$v")" >"$dir/tests/tmp/bind-evshim.conf"
}

# method_case VARIANT MODE: one server of the variant, started as the suite
# starts it (LightyTest.pm's start_proc, the suite's lighttpd.conf with the
# same include), serves a few requests (static, CGI) under `evshim trace -c`
# (MODE fast or supervised): the trace's summary counts the variant's call
# (port_getn, kevent), more than none, and not the other handler's. A
# server that ran on epoll makes no foreign call: it fails here. Natively
# (MODE native): the server holds an epoll descriptor.
method_case() {
  local v=$1 mode=$2 b dir log run=()
  b=$(build_of "$v")
  dir=$work/$b
  log=$logs/method-$v-$mode
  prepare_tests "$v" || { echo "prepare.sh failed"; return 1; }
  case $mode in
    fast) run=("$EVSHIM" trace -c -o "$log.trace" --) ;;
    supervised) run=("$EVSHIM" trace --supervised -c -o "$log.trace" --) ;;
  esac
  (cd "$dir/tests" && srcdir=$src/tests top_builddir=$dir timeout -k 5 60 "${run[@]}" perl - "$mode") >"$log.out" 2>&1 <<'EOF'
use strict;
use lib $ENV{srcdir};
use LightyTest;
my $mode = $ARGV[0];
my $tf = LightyTest->new();
$tf->start_proc == 0 or die "lighttpd did not start\n";
my $t = {};
for my $req ("GET /12345.txt HTTP/1.0\r\nHost: 123.example.org",
             "GET /cgi.pl HTTP/1.0",
             "GET /index.html HTTP/1.0") {
	$t->{REQUEST} = ( $req );
	$t->{RESPONSE} = [ { 'HTTP-Protocol' => 'HTTP/1.0', 'HTTP-Status' => 200 } ];
	$tf->handle_http($t) == 0 or die "request failed: $req\n";
}
# After the requests: the listening socket is the suite's (socket
# activation), so it accepts before the server has made its loop.
if ($mode eq "native") {
	my $pid = $tf->{LIGHTTPD_PID};
	my $epoll = grep { (readlink($_) // "") eq "anon_inode:[eventpoll]" } glob("/proc/$pid/fd/*");
	print "epoll descriptors: $epoll\n";
}
$tf->stop_proc == 0 or die "lighttpd did not stop\n";
print "served\n";
EOF
  grep -qx served "$log.out" || { echo "the server failed: $(tail -3 "$log.out" | tr '\n' ' ') ($log.out)"; return 1; }
  if [ "$mode" = native ]; then
    grep -qE '^epoll descriptors: [1-9]' "$log.out" || { echo "no epoll descriptor in the server ($log.out)"; return 1; }
    return 0
  fi
  # The summary table (-c): a row per call, its count first, its name last.
  local want other n m
  want=$(call_of "$v")
  other=$(call_of "$([ "$v" = ports ] && echo kqueue || echo ports)")
  n=$(awk -v c="$want" '$NF == c {print $1}' "$log.trace" 2>/dev/null)
  m=$(awk -v c="$other" '$NF == c {print $1}' "$log.trace" 2>/dev/null)
  [[ "$n" =~ ^[0-9]+$ ]] && ((n > 0)) || { echo "no $want in the trace ($log.trace): the server did not run on $(variant_handler "$v") (bind-evshim.conf: $(handler_of "$v"))"; return 1; }
  [ -z "$m" ] || { echo "$m $other calls in the trace ($log.trace)"; return 1; }
}

# run_suite VARIANT MODE: run-tests.pl (Test::Harness, verbose: every TAP
# line) and results/VARIANT.MODE (CASE<TAB>pass|fail|skip<TAB>detail).
run_suite() {
  local v=$1 mode=$2 b dir run=()
  b=$(build_of "$v")
  dir=$work/$b
  case $mode in fast) run=("$EVSHIM" run --) ;; supervised) run=("$EVSHIM" run --supervised --) ;; esac
  local log=$logs/$v.$mode.log t0=$SECONDS
  if prepare_tests "$v"; then
    (cd "$dir/tests" && srcdir=$src/tests top_builddir=$dir VERBOSE=1 RUNTESTS="${tests[*]}" \
        timeout -k 10 "$run_timeout" "${run[@]}" perl "$src/tests/run-tests.pl") >"$log" 2>&1
    echo "exit $?" >>"$log"
  else
    echo "prepare.sh failed" >"$log"
  fi
  # The server's own logs (errors, breakage, access), kept beside the run's.
  cp -r "$dir/tests/tmp/lighttpd/logs" "$logs/$v.$mode.server-logs" 2>/dev/null
  clients_log "lighttpd $v $mode: $((SECONDS - t0)) s"
  python3 - "$log" "${tests[@]}" >"$results/$v.$mode" <<'EOF'
import re, sys
log, files = sys.argv[1], [f + ".t" for f in sys.argv[2:]]
rows, plan, count, bad, seen = [], {}, {}, set(), {}
cur, exit_line = None, ""
for line in open(log, errors="replace"):
    line = line.rstrip("\n")
    m = re.match(r"\S*/([^/\s]+\.t) \.+\s*$", line)
    if m:
        cur = m.group(1); count.setdefault(cur, 0); continue
    if line.startswith("exit "):
        exit_line = line; continue
    if cur is None:
        continue
    m = re.match(r"1\.\.(\d+)", line)
    if m:
        plan[cur] = int(m.group(1)); continue
    m = re.match(r"(not )?ok (\d+)(?: -)? ?(.*)$", line)
    if m:
        desc, status = m.group(3), "fail" if m.group(1) else "pass"
        d = re.search(r"\s*# (skip|SKIP|TODO)\b\s*(.*)$", desc)
        if d:
            desc = desc[:d.start()]
            if d.group(1).lower() == "skip" or status == "fail":
                status = "skip"
        count[cur] += 1
        # The case is FILE/DESCRIPTION (#2 for a description met twice in a
        # file): the numbers are not stable (core-condition.t runs its
        # cases in the order of a Perl hash).
        key = f"{cur}/{desc.strip() or '(no name)'}"
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            key += f"#{seen[key]}"
        rows.append((key, status, d.group(2) if d else ""))
        continue
    if re.match(r"(Dubious|No subtests run|Bad plan|Parse errors)", line):
        bad.add(cur)
    if rows and rows[-1][1] == "fail" and line.startswith("#") and not rows[-1][2]:
        rows[-1] = (rows[-1][0], "fail", line[:300])
for r in rows:
    print("\t".join(r))
# Each file ran to its plan, and run-tests.pl's exit (0: every case
# passed); a case the run never reached has no line here and counts
# against the native list.
for f in files:
    ok = f in plan and count.get(f, 0) == plan[f] and f not in bad
    print(f"{f}/(done)\t{'pass' if ok else 'fail'}\t")
print(f"(exit)\t{'pass' if exit_line == 'exit 0' else 'fail'}\t{exit_line}")
EOF
}

# -- build -------------------------------------------------------------------
status=0
clients_build_all lighttpd "$work" native evshim || exit 1
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# -- run -----------------------------------------------------------------------
clients_run_all lighttpd run_suite "${variants[@]}"

# -- report --------------------------------------------------------------------
native_handlers=pass
problem=$(check_handlers native epoll) || { native_handlers=fail; clients_log "lighttpd native: $problem"; }
handlers_case=pass
problem=$(check_handlers evshim eventports kqueue epoll) || { handlers_case=fail; clients_log "lighttpd evshim build: $problem"; }
native_method=pass
problem=$(method_case native native) || { native_method=fail; clients_log "lighttpd native: method: $problem"; }
for v in "${variants[@]}"; do
  tsv=$results/lighttpd-$v.tsv
  {
    printf 'build/handlers\t%s\t%s\n' "$handlers_case" "$native_handlers"
    clients_method_cases lighttpd "$v" "$(variant_handler "$v")" "$native_method"
    clients_join_modes "$results" "$v"  # per mode, joined with native (common.sh)
  } >"$tsv"
  # The failing lines, for the log.
  awk -F'\t' '$2 == "fail" {print "  " $1}' "$tsv" >&2
  clients_report "lighttpd-$v" "$tsv" || status=1
done
exit $status
