#!/bin/sh
# Builds each small foreign program with nothing but pkg-config and runs it
# under `evshim run` (issue 5, acceptance).
#   build-and-run.sh uninstalled BUILDDIR SRCDIR
#       PKG_CONFIG_PATH=BUILDDIR/meson-uninstalled, the build tree's evshim.
#   build-and-run.sh installed BUILDDIR SRCDIR
#       `meson install --destdir` into a temporary directory, checks the
#       installed files, then uses the installed .pc files and evshim.
# CC names the C compiler (default cc). Exit 0 when everything passed.
set -eu
mode=$1 builddir=$(cd "$2" && pwd) srcdir=$(cd "$3" && pwd)
here=$srcdir/tests/pkgconfig
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0

packages="evshim-ports evshim-kqueue-freebsd evshim-kqueue-dragonfly evshim-kqueue-openbsd"
program_of() { case $1 in evshim-ports) echo ports_hello ;; *) echo kqueue_hello ;; esac; }

if [ "$mode" = uninstalled ]; then
  export PKG_CONFIG_PATH=$builddir/meson-uninstalled
  unset PKG_CONFIG_SYSROOT_DIR PKG_CONFIG_LIBDIR 2>/dev/null || true
  evshim=$builddir/shim/evshim
  unset EVSHIM_PRELOAD 2>/dev/null || true
elif [ "$mode" = installed ]; then
  dest=$tmp/dest
  meson install -C "$builddir" --destdir "$dest" --no-rebuild --quiet >"$tmp/install.log" 2>&1 || {
    cat "$tmp/install.log"; echo "FAIL: meson install"; exit 1; }
  prefix=$(meson introspect "$builddir" --buildoptions |
    python3 -c 'import json,sys; o={x["name"]:x["value"] for x in json.load(sys.stdin)}; print(o["prefix"]); print(o["libdir"]); print(o["bindir"]); print(o["includedir"])')
  pfx=$(echo "$prefix" | sed -n 1p)
  libdir=$(echo "$prefix" | sed -n 2p) bindir=$(echo "$prefix" | sed -n 3p) incdir=$(echo "$prefix" | sed -n 4p)
  case $libdir in /*) ;; *) libdir=$pfx/$libdir ;; esac
  case $bindir in /*) ;; *) bindir=$pfx/$bindir ;; esac
  case $incdir in /*) ;; *) incdir=$pfx/$incdir ;; esac
  # What `meson install` must install: the command, the preload library,
  # the signal wrappers' library, the API libraries, their headers and .pc
  # files.
  for f in "$bindir/evshim" "$libdir/libevshim-preload.so" "$libdir/libevshim-signals.so" \
           "$libdir/libevshim-ports.so" "$libdir/pkgconfig/evshim-ports.pc" \
           "$incdir/evshim/illumos/port.h" "$incdir/evshim/illumos/sys/port.h" \
           "$incdir/evshim/illumos/sys/port_impl.h" "$incdir/evshim/illumos/evshim_portfs.h"; do
    if [ -e "$dest$f" ]; then echo "installed: $f"; else echo "FAIL: not installed: $f"; fail=1; fi
  done
  for p in freebsd dragonfly openbsd; do
    for f in "$libdir/libevshim-kqueue-$p.so" "$libdir/pkgconfig/evshim-kqueue-$p.pc" \
             "$incdir/evshim/$p/sys/event.h"; do
      if [ -e "$dest$f" ]; then echo "installed: $f"; else echo "FAIL: not installed: $f"; fail=1; fi
    done
  done
  [ -x "$dest$bindir/evshim" ] || { echo "FAIL: evshim is not executable"; fail=1; }
  export PKG_CONFIG_PATH=$dest$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest
  evshim=$dest$bindir/evshim
  export EVSHIM_PRELOAD=$dest$libdir/libevshim-preload.so
else
  echo "usage: $0 uninstalled|installed BUILDDIR SRCDIR" >&2
  exit 2
fi

for pc in $packages; do
  if ! pkg-config --exists "$pc"; then
    echo "FAIL: pkg-config does not know $pc (PKG_CONFIG_PATH=$PKG_CONFIG_PATH)"
    fail=1
    continue
  fi
  prog=$(program_of "$pc")
  flags=$(pkg-config --cflags --libs "$pc")
  echo "$pc: $flags"
  # shellcheck disable=SC2086
  if ! $cc -std=c99 -Wall -Wextra -Werror -o "$tmp/$pc" "$here/$prog.c" $flags; then
    echo "FAIL: $prog does not build with pkg-config $pc"
    fail=1
    continue
  fi
  # The library's directory, from pkg-config as well.
  libpath=$(pkg-config --libs-only-L "$pc" | sed 's/-L//g; s/ \{1,\}/:/g; s/:$//')
  if out=$(LD_LIBRARY_PATH=$libpath "$evshim" run -- "$tmp/$pc" 2>&1) && echo "$out" | grep -q ': ok$'; then
    echo "$pc: $out"
  else
    echo "FAIL: $prog ($pc) under evshim run: $out"
    fail=1
  fi
done
if [ "$mode" = installed ]; then
  # `evshim run` in fast mode preloads the installed signal wrappers (found
  # at libdir under the root of its own bindir, here the DESTDIR) into the
  # program it starts, and the library takes itself out of LD_PRELOAD.
  got=$(EVSHIM_SUPERVISED=0 "$evshim" run -- sh -c \
    'grep -o "/[^ ]*libevshim-signals\.so" /proc/$$/maps | sort -u; echo "[${LD_PRELOAD-unset}]"')
  want="$dest$libdir/libevshim-signals.so
[unset]"
  if [ "$got" = "$want" ]; then
    echo "preloaded from the install: $dest$libdir/libevshim-signals.so"
  else
    echo "FAIL: evshim run from the install preloaded [$got], not [$want]"
    fail=1
  fi
fi
[ $fail = 0 ] && echo "all passed"
exit $fail
