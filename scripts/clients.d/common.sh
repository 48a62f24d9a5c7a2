# Shared by the client scripts in scripts/clients.d (sourced, not run).
# scripts/clients exports EVSHIM_REPO, EVSHIM_CLIENTS_WORK (sources and
# builds), EVSHIM_CLIENTS_LOGS (results), EVSHIM_CLIENTS_QUICK,
# EVSHIM_CLIENTS_PREPARE (1: stop after the build, `scripts/clients --prepare`)
# and EVSHIM_CLIENTS_FETCH (1: stop once the packages and the source are
# there, before evshim is installed, `scripts/clients --fetch`: build/ need
# not be built yet).
set -uo pipefail
: "${EVSHIM_REPO:?run through scripts/clients}"

clients_log() { echo "clients: $*" >&2; }

# Installs the Debian packages that are missing.
clients_need_packages() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  clients_log "installing ${missing[*]}"
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  # Several client scripts (and engineers) may install at once: wait for
  # dpkg's lock instead of failing.
  "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# `apt-get source` needs a deb-src entry; adds one mirroring each deb entry
# (deb822 .sources files and one-line sources.list) when none is configured.
clients_ensure_deb_src() {
  if grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/ 2>/dev/null; then
    return 0
  fi
  local out=/etc/apt/sources.list.d/evshim-deb-src.sources tmp
  tmp=$(mktemp)
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    # Keep only stanzas of Debian's own archive (Types: deb), as deb-src.
    awk -v RS= -v ORS='\n\n' '/(^|\n)Types:[^\n]*deb/ && /debian/ { sub(/Types:[^\n]*/, "Types: deb-src"); print }' "$f" >>"$tmp"
  done
  if [ -f /etc/apt/sources.list ]; then
    grep -E '^deb ' /etc/apt/sources.list | grep debian | sed 's/^deb /deb-src /' >"$tmp.list" || true
  fi
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  [ -s "$tmp" ] && "${sudo_cmd[@]}" cp "$tmp" "$out"
  [ -s "$tmp.list" ] && "${sudo_cmd[@]}" cp "$tmp.list" /etc/apt/sources.list.d/evshim-deb-src.list
  rm -f "$tmp" "$tmp.list"
  clients_log "added a deb-src entry ($out)"
  "${sudo_cmd[@]}" apt-get update -qq
}

# clients_fetch_source PACKAGE VERSION DIR: unpacks PACKAGE's Debian source
# into $EVSHIM_CLIENTS_WORK/src/DIR (kept between runs). VERSION pins the
# one that the snapshot mirror really holds (research: some index entries
# name a newer revision whose files are missing); empty = the default.
clients_fetch_source() {
  local pkg=$1 version=$2 dir=$3
  local src=$EVSHIM_CLIENTS_WORK/src
  [ -d "$src/$dir" ] && return 0
  clients_need_packages dpkg-dev
  clients_ensure_deb_src
  mkdir -p "$src/dl-$pkg"
  (
    cd "$src/dl-$pkg" || exit 1
    if ! apt-get source --download-only "$pkg${version:+=$version}" >fetch.log 2>&1; then
      [ -n "$version" ] && apt-get source --download-only "$pkg" >>fetch.log 2>&1 || { cat fetch.log >&2; exit 1; }
    fi
    rm -rf unpacked && dpkg-source -x ./*.dsc unpacked >>fetch.log 2>&1 || { cat fetch.log >&2; exit 1; }
  ) || { clients_log "could not fetch the source of $pkg"; return 1; }
  mv "$src/dl-$pkg/unpacked" "$src/$dir"
}

# Installs evshim (headers, libraries, pkg-config files, the evshim
# command) from the build into a staging root, and points pkg-config at it:
# clients are built exactly as against an installed evshim.
clients_install_evshim() {
  local root=$EVSHIM_CLIENTS_WORK/root
  rm -rf "$root"
  meson install -C "$EVSHIM_REPO/build" --destdir "$root" >"$EVSHIM_CLIENTS_WORK/install.log" 2>&1 ||
    { cat "$EVSHIM_CLIENTS_WORK/install.log" >&2; return 1; }
  local pc
  pc=$(dirname "$(find "$root" -name evshim-ports.pc | head -1)")
  export PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$root
  export EVSHIM_LIBDIR=$root$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=libdir evshim-ports)
  export EVSHIM=$root$(PKG_CONFIG_SYSROOT_DIR= pkg-config --variable=prefix evshim-ports)/bin/evshim
  [ -x "$EVSHIM" ] || { clients_log "no evshim command in $root"; return 1; }
}

# clients_flags PACKAGE: cflags and libs for a client build, with an rpath
# so the client finds the library wherever the staging root is.
clients_cflags() { pkg-config --cflags "$1"; }
clients_libs() { echo "$(pkg-config --libs "$1") -Wl,-rpath,$EVSHIM_LIBDIR"; }

# clients_build_all NAME WORK VARIANT...: runs the calling script's
# build_variant for each VARIANT, EVSHIM_CLIENTS_JOBS (default 2) at a
# time, each logged in WORK/build-VARIANT.log (printed after), and fails
# unless each left its stamp WORK/VARIANT/.evshim-built-* and passes the
# script's built_ok VARIANT, if it has one.
clients_build_all() {
  local name=$1 work=$2; shift 2
  local t0=$SECONDS v failed=()
  for v in "$@"; do
    while (($(jobs -rp | wc -l) >= ${EVSHIM_CLIENTS_JOBS:-2})); do wait -n; done
    (build_variant "$v") >"$work/build-$v.log" 2>&1 &
  done
  wait
  for v in "$@"; do
    sed 's/^/  /' "$work/build-$v.log" >&2
    if [ -z "$(ls "$work/$v"/.evshim-built-* 2>/dev/null)" ] ||
       { declare -F built_ok >/dev/null && ! built_ok "$v"; }; then
      failed+=("$v")
    fi
  done
  ((${#failed[@]})) && { clients_log "$name: build failed: ${failed[*]}"; return 1; }
  clients_log "$name: builds took $((SECONDS - t0)) s"
}

# clients_run_all NAME RUN VARIANT...: the calling script's `RUN VARIANT
# MODE` for the native build (native native), then for each VARIANT fast
# and supervised, one run at a time; logs the time they took.
clients_run_all() {
  local name=$1 run=$2 v t0=$SECONDS
  shift 2
  "$run" native native
  for v in "$@"; do
    "$run" "$v" fast
    "$run" "$v" supervised
  done
  clients_log "$name: tests took $((SECONDS - t0)) s"
}

# clients_method_cases NAME VARIANT LABEL NATIVE: the rows of the check that
# VARIANT's program used its backend, in both modes (the calling script's
# `method_case VARIANT MODE`, which prints what is wrong and fails), each
# "MODE/method-LABEL<TAB>pass|fail<TAB>NATIVE".
clients_method_cases() {
  local name=$1 v=$2 label=$3 native=$4 mode problem
  for mode in fast supervised; do
    if problem=$(method_case "$v" "$mode"); then
      printf '%s/method-%s\tpass\t%s\n' "$mode" "$label" "$native"
    else
      clients_log "$name $v $mode: method: $problem"
      printf '%s/method-%s\tfail\t%s\n' "$mode" "$label" "$native"
    fi
  done
}

# clients_report NAME RESULTS: RESULTS holds lines "CASE<TAB>EVSHIM<TAB>NATIVE",
# each status pass, fail or skip. Writes the JUnit file and the summary line.
clients_report() {
  python3 "$EVSHIM_REPO/scripts/lib/client_report.py" "$1" "$2" "$EVSHIM_CLIENTS_LOGS"
}

# clients_one_backend SYMS WANT ENTRY...: whether a build holds exactly one
# event backend. SYMS is `nm` output of the build; each ENTRY is
# NAME:DEFS:CALL, DEFS the comma-separated data symbols the backend
# defines (its ops table or providers) and CALL its kernel call (empty for
# none). WANT's symbols must all be defined and its call referenced; no
# other ENTRY's symbol may be defined nor its call referenced. Prints what
# is wrong and fails otherwise.
clients_one_backend() {
  local syms=$1 want=$2 e name defs call d problems=()
  shift 2
  for e in "$@"; do
    IFS=: read -r name defs call <<<"$e"
    for d in ${defs//,/ }; do
      if [ "$name" = "$want" ]; then
        grep -qE " [DdRr] $d$" <<<"$syms" || problems+=("no $d")
      else
        grep -qE " [DdRr] $d$" <<<"$syms" && problems+=("$d present")
      fi
    done
    [ -n "$call" ] || continue
    if [ "$name" = "$want" ]; then
      grep -qE " U $call(@.*)?$" <<<"$syms" || problems+=("no call to $call")
    else
      grep -qE " U $call(@.*)?$" <<<"$syms" && problems+=("calls $call")
    fi
  done
  ((${#problems[@]} == 0)) && return 0
  echo "${problems[*]}"
  return 1
}

# clients_backend_case CLIENT VARIANT METHOD NATIVE: prints the case
# build/only-METHOD-backend from the client script's own
# `check_backends VARIANT` (pass or fail), beside NATIVE, the native
# build's status.
clients_backend_case() {
  local problem status=pass
  problem=$(check_backends "$2") || { status=fail; clients_log "$1 $2: the build has other backends: $problem"; }
  printf 'build/only-%s-backend\t%s\t%s\n' "$3" "$status" "$4"
}

# The rows of VARIANT's two modes joined with the native run on the case
# name: "MODE/CASE<TAB>STATUS<TAB>NATIVE" from RESULTS/VARIANT.fast,
# RESULTS/VARIANT.supervised and RESULTS/native.native (each
# "CASE<TAB>STATUS<TAB>DETAIL"); a case that ran natively but not under
# evshim (the run ended first) fails ("not reached").
clients_join_modes() {
  python3 - "$1" "$2" <<'EOF'
import sys
results, v = sys.argv[1], sys.argv[2]
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
        print(f"{mode}/{case}\t{status}\t{nat.get(case, ('', ''))[0]}")
EOF
}
