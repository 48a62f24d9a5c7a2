#!/usr/bin/env bash
# libevent 2.1.12 (Debian's source) under evshim: built statically with only
# the backend under test, once per variant, and its own tests run per case
# (test/test.sh's programs, regress, regress with EVENT_DEBUG_MODE=1) under
# `evshim run`, against the same tests of a native epoll-only build.
#   variants: kqueue-freebsd kqueue-openbsd kqueue-dragonfly evport (+ native)
# docs/clients.md "## libevent" says what runs in which mode and why.
# Environment: EVSHIM_CLIENTS_FULL=1 (everything), EVSHIM_CLIENTS_JOBS
# (builds at a time and make jobs, default 2), EVSHIM_LIBEVENT_TEST_JOBS
# (test units at a time, default 8: the default mode's every regress unit
# at once; they mostly sleep), EVSHIM_CLIENTS_CASE_TIMEOUT (seconds, 30),
# EVSHIM_LIBEVENT_VARIANTS (a subset of the variants, for development).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=common.sh
source "$here/common.sh"

jobs=${EVSHIM_CLIENTS_JOBS:-2}
test_jobs=${EVSHIM_LIBEVENT_TEST_JOBS:-8}
case_timeout=${EVSHIM_CLIENTS_CASE_TIMEOUT:-30}
full=${EVSHIM_CLIENTS_FULL:-0}
quick=${EVSHIM_CLIENTS_QUICK:-0}
all_variants=(kqueue-freebsd kqueue-openbsd kqueue-dragonfly evport)
read -r -a variants <<<"${EVSHIM_LIBEVENT_VARIANTS:-${all_variants[*]}}"

# Which variants also run the EVENT_DEBUG_MODE=1 pass (the rest run
# regress once): all of them with EVSHIM_CLIENTS_FULL=1; by default the
# FreeBSD kqueue and the event-port variants; none with --quick.
debug_pass() {
  ((full)) && return 0
  ((quick)) && return 1
  case $1 in kqueue-freebsd|evport|native) return 0 ;; *) return 1 ;; esac
}

clients_need_packages autoconf automake libtool make gcc binutils python3 || exit 1
clients_fetch_source libevent 2.1.12-stable-8+deb12u1 libevent || exit 1
src=$EVSHIM_CLIENTS_WORK/src/libevent
# Debian's patches touch Makefile.am: the autotools files must be remade.
if [ ! -f "$src/.evshim-autoreconf" ]; then
  (cd "$src" && autoreconf -fi >autoreconf.log 2>&1) || { clients_log "libevent: autoreconf failed ($src/autoreconf.log)"; exit 1; }
  touch "$src/.evshim-autoreconf"
fi
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1

work=$EVSHIM_CLIENTS_WORK/libevent
results=$work/results
rm -rf "$results"
mkdir -p "$work" "$results"

# variant -> pkg-config package, backend name (EVENT_SHOW_METHOD), the
# backend's ops table and the syscall wrapper its object must reference.
pkg_of() { case $1 in kqueue-*) echo "evshim-$1" ;; evport) echo evshim-ports ;; native) echo "" ;; esac; }
method_of() { case $1 in kqueue-*) echo kqueue ;; evport) echo evport ;; native) echo epoll ;; esac; }
ops_of() { case $1 in kqueue) echo kqops ;; evport) echo evportops ;; epoll) echo epollops ;; esac; }
call_of() { case $1 in kqueue) echo kevent ;; evport) echo port_getn ;; epoll) echo epoll_wait ;; esac; }

programs=(test/regress test/test-init test/test-eof test/test-closed test/test-weof test/test-time
          test/test-changelist test/test-fdleak test/test-dumpevents)

# build_variant VARIANT: configures and builds libevent statically with only
# the variant's backend; every other backend's detection is answered "no"
# through configure's cache variables (select and poll included).
build_variant() {
  local v=$1 dir=$work/$1 pkg method
  pkg=$(pkg_of "$v")
  method=$(method_of "$v")
  local no=(ac_cv_func_select=no ac_cv_func_poll=no ac_cv_header_sys_devpoll_h=no)
  local epoll_no=(ac_cv_func_epoll_ctl=no ac_cv_header_sys_epoll_h=no ac_cv_func_epoll_create1=no)
  local kq_no=(ac_cv_header_sys_event_h=no ac_cv_func_kqueue=no)
  local port_no=(ac_cv_func_port_create=no ac_cv_header_port_h=no)
  local cppflags="" libs=""
  case $v in
    kqueue-*) no+=("${epoll_no[@]}" "${port_no[@]}") ;;
    evport) no+=("${epoll_no[@]}" "${kq_no[@]}") ;;
    native) no+=("${kq_no[@]}" "${port_no[@]}") ;;
  esac
  if [ -n "$pkg" ]; then
    cppflags=$(clients_cflags "$pkg") && libs=$(clients_libs "$pkg") || return 1
  fi
  # The configuration, with the foreign headers' contents: a rebuild only
  # when one of them changed (the library itself is linked dynamically).
  local key
  key=$( { echo "${no[*]} $cppflags $libs"; [ -n "$pkg" ] && cat "$(pkg-config --variable=includedir "$pkg")"/evshim/*/{sys/event.h,port.h,sys/port.h} 2>/dev/null; } | sha256sum | cut -c1-16)
  if [ -f "$dir/.evshim-built-$key" ]; then
    echo "libevent $v: up to date"
    build_bench "$dir"
    return
  fi
  rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || return 1
  # The native build's configure cache serves the evshim builds (configure
  # is about a third of a build's cpu), without the answers they must find
  # again (native_cache_kept).
  local cache=(--cache-file="$dir/config.cache")
  if [ "$v" != native ] && [ -f "$work/native.config.cache" ]; then
    native_cache_kept "$pkg" >"$dir/config.cache" || return 1
  fi
  # -Wno-error=int-conversion: kqueue.c stores an intptr_t in udata on
  # systems it does not know as BSD (an error with GCC >= 14).
  "$src/configure" "${cache[@]}" --disable-shared --enable-static --disable-openssl \
      --disable-samples --disable-libevent-install "${no[@]}" \
      CFLAGS="-O2 -g -Wno-error=int-conversion" CPPFLAGS="$cppflags" LIBS="$libs" \
      >configure.log 2>&1 || { echo "libevent $v: configure failed ($dir/configure.log)"; return 1; }
  [ "$v" = native ] && cp "$dir/config.cache" "$work/native.config.cache"
  if [ "$method" = kqueue ]; then
    # configure's "working kqueue" run-test ran without the supervisor, so
    # it said no; the same program runs under evshim as the case
    # configure/working-kqueue, and the result is forced here.
    grep -q "checking for working kqueue... yes" configure.log ||
      sed -i 's|/\* #undef HAVE_WORKING_KQUEUE \*/|#define HAVE_WORKING_KQUEUE 1|' config.h
    grep -q "^#define HAVE_WORKING_KQUEUE 1" config.h || { echo "libevent $v: HAVE_WORKING_KQUEUE not set"; return 1; }
  fi
  # configure compiles signal.c only when select, poll, epoll or event
  # ports is present, yet kqueue.c and event.c call it: with kqueue alone
  # the link fails. signal.c is the generic signal code, not a backend.
  sed -i -E 's/^#(am__(append|objects)_[0-9]+ = signal\.(c|lo))$/\1/' Makefile
  # The generated files and automake's directory stamps first: the objects
  # share_objects copies must be newer than they are.
  { make -j"$jobs" include/event2/event-config.h test/rpcgen-attempted test/.dirstamp \
      test/.deps/.dirstamp && share_objects "$v" &&
    make -j"$jobs" "${programs[@]}"; } >make.log 2>&1 ||
    { echo "libevent $v: make failed ($dir/make.log)"; tail -20 make.log; return 1; }
  touch "$dir/.evshim-built-$key"
  echo "libevent $v: built"
  build_bench "$dir"
}

# native_cache_kept PKG: the native build's configure cache
# ($work/native.config.cache) without what a build against PKG must find
# again: the ac_cv_env_* entries (configure's record of CPPFLAGS, LIBS ...),
# every backend's answer (the variants force others "no" on the command
# line, and native forced kqueue and event ports "no"), the answers about
# headers that PKG's include directories hold (sys/event.h, port.h ...),
# the answers about functions that an evshim library defines (kqueue,
# port_create, but also fcntl, sigaction, signal: linked with LIBS, which
# name the library), and libtool's -static link test (a static link
# against the library fails: there is no archive of it). Every other
# answer comes from compiling or linking code that uses none of these, so
# it is the same with PKG's flags; the variants' config.h, event-config.h,
# Makefile and libtool script are the same as with no cache
# (docs/clients.md "## libevent", "Builds").
native_cache_kept() {
  local pkg=$1 syms headers d
  syms=$(nm -D --defined-only "$EVSHIM_LIBDIR"/lib*.so | awk 'NF == 3 { sub(/@.*/, "", $3); print $3 }' |
         sort -u | paste -sd'|') || return 1
  [ -n "$syms" ] || { echo "libevent: no symbols in $EVSHIM_LIBDIR"; return 1; }
  headers=$(for d in $(pkg-config --cflags-only-I "$pkg"); do
              (cd "${d#-I}" && find . -name '*.h' | sed 's|^\./||')
            done | sed 's/[^A-Za-z0-9]/_/g' | paste -sd'|')
  grep -vE "^(ac_cv_env_|lt_cv_prog_compiler_static_works=|ac_cv_func_(select|poll|epoll_ctl|epoll_create1|kqueue|port_create)=|ac_cv_header_(sys_devpoll_h|sys_epoll_h|sys_event_h|port_h)=|ac_cv_(func|search)_($syms)=|ac_cv_header_(${headers:-none})=)" \
    "$work/native.config.cache"
}

# share_objects VARIANT: kqueue-openbsd and kqueue-dragonfly take from
# kqueue-freebsd's build every object compiled from the same files with the
# same command: the personalities differ only in their sys/event.h, which
# kqueue.c alone includes. An object is taken when its dependency list
# (automake's .deps file, written by the compiler) names no file of an
# evshim include directory and each build-directory file it names
# (event-config.h, evconfig-private.h, test/regress.gen.[ch]) is the same in
# both builds, and when the Makefiles are the same but for the
# personality's name and the build's directory; make compiles the rest
# (kqueue.c) and links. A taken object differs from the one this build
# would compile only in its debug information's directory, kqueue-freebsd's
# (docs/clients.md "## libevent", "Builds").
share_objects() {
  local v=$1 dir=$work/$1 ref=$work/kqueue-freebsd evshim_inc dep target f ok n=0 p
  case $v in kqueue-openbsd|kqueue-dragonfly) ;; *) return 0 ;; esac
  [ -n "$(ls "$ref"/.evshim-built-* 2>/dev/null)" ] || return 0
  p=${v#kqueue-}
  cmp -s <(sed -e "s|$ref|DIR|g; s|evshim/freebsd|evshim/P|g; s|evshim-kqueue-freebsd|evshim-kqueue-P|g" "$ref/Makefile") \
         <(sed -e "s|$dir|DIR|g; s|evshim/$p|evshim/P|g; s|evshim-kqueue-$p|evshim-kqueue-P|g" "$dir/Makefile") ||
    { echo "libevent $v: the Makefile differs from kqueue-freebsd's: no object taken"; return 0; }
  evshim_inc=$(pkg-config --variable=includedir "$(pkg_of "$v")")/evshim/
  for dep in "$ref"/.deps/*.Plo "$ref"/test/.deps/*.Po; do
    target=$(sed -n '1s/:.*//p' "$dep")
    [ -n "$target" ] && [ -f "$ref/$target" ] || continue
    grep -qF "$evshim_inc" "$dep" && continue
    ok=1
    for f in $(tr ' \\' '\n\n' <"$dep" | grep -vE '^(/|$)|:$'); do
      cmp -s "$ref/$f" "$dir/$f" || { ok=0; break; }
    done
    ((ok)) || continue
    if [[ $target == *.lo ]]; then
      cp "$ref/${target%.lo}.o" "$dir/${target%.lo}.o" || return 1
    fi
    cp "$ref/$target" "$dir/$target" && cp "$dep" "$dir/${dep#"$ref"/}" || return 1
    n=$((n + 1))
  done
  # kqueue.c includes the personality's sys/event.h: always compiled here.
  [ ! -e "$dir/kqueue.lo" ] || { echo "libevent $v: kqueue.lo taken from kqueue-freebsd"; return 1; }
  echo "libevent $v: $n objects taken from kqueue-freebsd"
}

# build_bench DIR: libevent's own benchmark, test/bench (unchanged), which
# scripts/bench-clients runs; made apart from the stamp so that a build
# from before it gains the program.
build_bench() {
  [ -x "$1/test/bench" ] && return 0
  make -C "$1" -j"$jobs" test/bench >"$1/make-bench.log" 2>&1 ||
    { echo "libevent: make test/bench failed ($1/make-bench.log)"; tail -20 "$1/make-bench.log"; return 1; }
}

# check_backends VARIANT: the build holds exactly one backend, the one under
# test: its ops table is defined and its kernel call referenced, no other
# backend's table or call is.
check_backends() {
  local v=$1 dir=$work/$1 m ops syms entries=()
  syms=$(nm "$dir/.libs/libevent_core.a" "$dir/test/regress" 2>/dev/null) || { echo "nm failed"; return 1; }
  for m in kqueue evport epoll poll select devpoll; do
    ops=${m}ops
    [ "$m" = kqueue ] && ops=kqops
    entries+=("$m:$ops:$(call_of "$m")")
  done
  clients_one_backend "$syms" "$(method_of "$v")" "${entries[@]}"
}

# The configure run-test for a working kqueue (configure.ac, "checking for
# working kqueue"), extracted and built against the personality: run under
# evshim it must succeed (configure ran it without the supervisor).
working_kqueue_case() {
  local v=$1 dir=$work/$1 pkg
  pkg=$(pkg_of "$v")
  python3 - "$src/configure.ac" >"$dir/working-kqueue.c" <<'EOF' || return 1
import re, sys
text = open(sys.argv[1]).read()
start = text.index("AC_MSG_CHECKING(for working kqueue)")
m = re.compile(r"AC_LANG_PROGRAM\(\[(.*?)\],\s*\[\[(.*?)\]\]", re.S).search(text, start)
print("#define HAVE_STDLIB_H 1\n#define HAVE_STRING_H 1")
print(m.group(1))
print("int main(void) {")
print(m.group(2))
print("}")
EOF
  # shellcheck disable=SC2046
  gcc -w -o "$dir/working-kqueue" "$dir/working-kqueue.c" $(clients_cflags "$pkg") $(clients_libs "$pkg") || return 1
  local status=fail detail
  timeout 60 "$EVSHIM" run -- "$dir/working-kqueue" >"$dir/working-kqueue.log" 2>&1
  detail=$?
  [ "$detail" -eq 0 ] && status=pass
  # No native column: without the supervisor the program cannot work (that
  # is why configure said no), and a failure under evshim must count.
  printf 'configure/working-kqueue\t%s\t\n' "$status"
}

# -- build ---------------------------------------------------------------
status=0
built_ok() { [ -x "$work/$1/test/regress" ] && [ -x "$work/$1/test/bench" ]; }
# native first: the evshim builds start from its configure cache; then
# kqueue-freebsd beside the others that take no objects (share_objects),
# then those that do.
first=() later=()
for v in "${variants[@]}"; do
  case $v in
    kqueue-openbsd|kqueue-dragonfly) [[ " ${variants[*]} " == *" kqueue-freebsd "* ]] && { later+=("$v"); continue; } ;;
  esac
  first+=("$v")
done
clients_build_all libevent "$work" native && clients_build_all libevent "$work" "${first[@]}" &&
  { ((${#later[@]} == 0)) || clients_build_all libevent "$work" "${later[@]}"; } || exit 1
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# -- run -------------------------------------------------------------------
t1=$SECONDS
units=()
unit() { # VARIANT KIND
  local run=""
  [ "$1" = native ] || run="$EVSHIM:run:--"
  units+=("out=$results/$1.$2,build=$work/$1,src=$src,method=$(method_of "$1"),kind=$2,run=$run")
}
# The longest units first.
for v in native "${variants[@]}"; do unit "$v" regress; done
for v in native "${variants[@]}"; do debug_pass "$v" && unit "$v" regress-debug; done
for v in native "${variants[@]}"; do unit "$v" programs; done
python3 "$EVSHIM_REPO/scripts/lib/libevent_cases.py" --jobs "$test_jobs" --timeout "$case_timeout" "${units[@]}" >&2 ||
  { clients_log "libevent: the case runner failed"; exit 1; }
clients_log "libevent: tests took $((SECONDS - t1)) s"

# -- report ----------------------------------------------------------------
native_backends=pass
problem=$(check_backends native) || { native_backends=fail; clients_log "libevent native: $problem"; }
for v in "${variants[@]}"; do
  tsv=$results/libevent-$v.tsv
  {
    clients_backend_case libevent "$v" "$(method_of "$v")" "$native_backends"
    [ "$(method_of "$v")" = kqueue ] && working_kqueue_case "$v"
    # CASE EVSHIM NATIVE, joined on the case name.
    python3 - "$results" "$v" <<'EOF'
import os, sys
results, v = sys.argv[1:3]
def load(name):
    out = {}
    for kind in ("programs", "regress", "regress-debug"):
        p = os.path.join(results, f"{name}.{kind}")
        if os.path.exists(p):
            for line in open(p):
                case, status, _ = line.rstrip("\n").split("\t", 2)
                out[case] = status
    return out
ev, nat = load(v), load("native")
for case, status in ev.items():
    print(f"{case}\t{status}\t{nat.get(case, '')}")
EOF
  } >"$tsv"
  clients_report "libevent-$v" "$tsv" || status=1
done
exit $status
