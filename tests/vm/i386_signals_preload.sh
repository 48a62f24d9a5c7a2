#!/usr/bin/env bash
# The preloaded signal wrappers for i386 programs and their children
# (docs/design.md "A copy that survives a fault", The wrappers preloaded;
# docs/vm-test.md). Runs in the VM (i386 programs need IA-32 emulation):
#
#   tests/vm/i386_signals_preload.sh BUILD BUILD32
#
# kq_dlopen fault_copy (the FreeBSD kqueue library loaded with dlopen; heap
# event lists with process_vm_readv/writev denied get their events only
# with the engine's copy that survives a fault, which the preloaded
# wrappers turn on) under the 64-bit `evshim run` in fast mode:
#  - with the i386 build named (EVSHIM_SIGNALS_PRELOAD32): the i386 program
#    directly, through a 64-bit sh, an i386 program's exec, spawn and
#    system() of i386 and 64-bit children, and back: each passes, stderr
#    empty;
#  - without it, or with the 64-bit build named instead: the i386 program
#    fails (EFAULT), and no loader line ("wrong ELF class", "cannot be
#    preloaded") is printed.
set -uo pipefail
build=${1:?usage: $0 BUILD BUILD32}
build32=${2:?usage: $0 BUILD BUILD32}
evshim=$build/shim/evshim
lib64=$build/shim/libevshim-signals.so
lib32=$build32/shim/libevshim-signals.so
kq64=$build/testbins/kq_dlopen
kq32=$build32/testbins/kq_dlopen
spawn64=$build/testbins/spawn_exec
spawn32=$build32/testbins/spawn_exec
for f in "$evshim" "$lib64" "$lib32" "$kq64" "$kq32" "$spawn64" "$spawn32"; do
  [ -e "$f" ] || { echo "missing $f" >&2; exit 1; }
done
# The install's i386 libdir (the default prefix and i386_libdir) must not
# hold one: the runs without the variable would find it.
installed=/usr/local/lib32/libevshim-signals.so
[ ! -e "$installed" ] || { echo "an installed $installed would be found" >&2; exit 1; }

export EVSHIM_SUPERVISED=0
unset LD_PRELOAD EVSHIM_SIGNALS_PRELOAD32
err=$(mktemp)
failures=0
# run EXPECT LABEL [VAR=VALUE...] -- ARGV...: EXPECT is pass (status 0,
# stderr empty) or fail (status not 0, no loader line on stderr).
run() {
  local expect=$1 label=$2
  shift 2
  local vars=()
  while [ "$1" != "--" ]; do vars+=("$1"); shift; done
  shift
  env "${vars[@]}" "$evshim" run -- "$@" >/dev/null 2>"$err"
  local st=$?
  local ok=1
  case $expect in
    pass) [ "$st" = 0 ] && [ ! -s "$err" ] || ok=0 ;;
    fail) [ "$st" != 0 ] && ! grep -q -e 'ld\.so' -e 'ELF class' -e 'cannot be preloaded' "$err" || ok=0 ;;
  esac
  if ((ok)); then
    echo "ok   $expect: $label"
  else
    echo "FAIL $expect: $label (status $st)"
    sed 's/^/     stderr: /' "$err"
    failures=$((failures + 1))
  fi
}
with32=(EVSHIM_SIGNALS_PRELOAD32="$lib32")
run pass "i386 program" "${with32[@]}" -- "$kq32" fault_copy
run pass "64-bit sh execs it" "${with32[@]}" -- sh -c "exec $kq32 fault_copy"
run pass "64-bit sh forks and execs it" "${with32[@]}" -- sh -c "$kq32 fault_copy; st=\$?; exit \$st"
run pass "64-bit posix_spawn of it" "${with32[@]}" -- "$spawn64" posix_spawn "$kq32" fault_copy
run pass "i386 execve of an i386 child" "${with32[@]}" -- "$spawn32" execve "$kq32" fault_copy
run pass "i386 posix_spawn of an i386 child" "${with32[@]}" -- "$spawn32" posix_spawn "$kq32" fault_copy
run pass "i386 vfork+execve of a 64-bit child" "${with32[@]}" -- "$spawn32" vfork "$kq64" fault_copy
run pass "i386 posix_spawn of a 64-bit child" "${with32[@]}" -- "$spawn32" posix_spawn "$kq64" fault_copy
run pass "i386, 64-bit, i386" "${with32[@]}" -- "$spawn32" execv "$spawn64" vfork "$kq32" fault_copy
run pass "i386 execvp of a 64-bit sh that execs an i386 child" "${with32[@]}" -- \
  "$spawn32" execvp sh -c "exec $kq32 fault_copy"
run pass "i386 system(): a 64-bit /bin/sh runs an i386 child" "${with32[@]}" -- "$spawn32" system "$kq32" fault_copy
run pass "i386 system(): a 64-bit /bin/sh runs a 64-bit child" "${with32[@]}" -- "$spawn32" system "$kq64" fault_copy
# Without the i386 build the i386 program has no copy, and nothing is
# preloaded that its loader would refuse; neither does it pass anything on.
run fail "i386 program without the i386 build" -- "$kq32" fault_copy
run fail "64-bit sh execs it without the i386 build" -- sh -c "exec $kq32 fault_copy"
run fail "the 64-bit child of an i386 program without the i386 build" -- "$spawn32" posix_spawn "$kq64" fault_copy
run fail "the 64-bit build named as the i386 one" EVSHIM_SIGNALS_PRELOAD32="$lib64" -- "$kq32" fault_copy
run fail "a missing i386 build" EVSHIM_SIGNALS_PRELOAD32="$build32/nothere.so" -- sh -c "exec $kq32 fault_copy"
# The 64-bit program is served as before, with or without it.
run pass "64-bit program without the i386 build" -- "$spawn64" posix_spawn "$kq64" fault_copy
rm -f "$err"
echo "i386_signals_preload: $failures failed"
[ "$failures" = 0 ]
