#!/bin/sh
# Runs README.md's porting example as a new user pastes it: the two indented
# lines after "Programs are built against" (cc ... pkg-config ...; evshim run),
# taken from the README itself, in a folder where `build` is this build tree
# and prog.c is a small event-port program. No LD_LIBRARY_PATH, no help.
#   readme-example.sh BUILDDIR SRCDIR
set -eu
builddir=$(cd "$1" && pwd) srcdir=$(cd "$2" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
commands=$(awk '/^Programs are built against/ {on=1} on && /^    [^ ]/ {print substr($0, 5); n++} on && n && /^$/ {exit}' "$srcdir/README.md")
[ "$(echo "$commands" | wc -l)" = 2 ] || { echo "FAIL: README's example is not two command lines:"; echo "$commands"; exit 1; }
echo "$commands"
ln -s "$builddir" "$tmp/build"
cp "$srcdir/tests/pkgconfig/ports_hello.c" "$tmp/prog.c"
cd "$tmp"
unset LD_LIBRARY_PATH PKG_CONFIG_PATH PKG_CONFIG_SYSROOT_DIR 2>/dev/null || true
out=$(sh -ec "$commands" 2>&1) || { echo "FAIL: the README's commands failed:"; echo "$out"; exit 1; }
echo "$out"
echo "$out" | grep -q 'ports_hello: ok$' || { echo "FAIL: the program did not report ok"; exit 1; }
echo "passed"
