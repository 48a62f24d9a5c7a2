#!/usr/bin/env bash
# Rewrites citations of the research notes that live outside the repository
# (shared/design/research/{ports,kevent-abi,interpose,vm32,style}.md) into
# citations of the project's own docs (docs/rules-ports.md, docs/rules-bsd.md,
# docs/design.md, docs/vm-test.md, docs/trace.md). Only the citation text
# changes: no line is reflowed. Idempotent: a second run changes nothing.
# tests/docs/check_citations.py (suite docs) fails while any remains.
#   scripts/lib/fix-research-citations.sh     (from anywhere in the worktree)
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
export LC_ALL=C.UTF-8

# Files that must keep naming the notes: this script and the checker.
skip='^(scripts/lib/fix-research-citations\.sh|tests/docs/check_citations\.py|docs/rules-(ports|bsd)\.md)$'

# Every tracked text file that mentions one of the patterns below.
mapfile -t files < <(git ls-files | grep -Ev "$skip" |
  xargs -d '\n' grep -lIE 'research/|shared/design|(^|[^-/[:alnum:]_])(ports|kevent-abi|vm32)\.md|(^|[^-/[:alnum:]_[])abi\.md §|style\.md §' 2>/dev/null || true)

for f in "${files[@]}"; do
  sed -E -i \
    -e 's|\("abi\.md §N"\)|("§N")|g' \
    -e 's|shared/design/research/ports\.md|docs/rules-ports.md|g' \
    -e 's|shared/design/research/kevent-abi\.md|docs/rules-bsd.md|g' \
    -e 's|research/ports\.md|docs/rules-ports.md|g' \
    -e 's|research/kevent-abi\.md|docs/rules-bsd.md|g' \
    -e 's/(^|[^-/[:alnum:]_])ports\.md/\1docs\/rules-ports.md/g' \
    -e 's/(^|[^-/[:alnum:]_])kevent-abi\.md/\1docs\/rules-bsd.md/g' \
    -e 's/(^|[^-/[:alnum:]_[])abi\.md §/\1docs\/rules-bsd.md §/g' \
    -e 's|style\.md §9\.4 rule 13|docs/trace.md "Design"|g' \
    -e 's|\(shared/design/ARCHITECTURE\.md "decide"\) ||g' \
    -e 's|\(research/interpose\.md( §4)?\)|(docs/design.md "Interception costs")|g' \
    -e 's|^`shared/design/research/vm32\.md`\.$|the sections "Timings" and "Known differences of the 6.1 guest kernel" below.|' \
    -e 's|^These are from `shared/design/research/vm32\.md`, and all were verified there\.$|Each was observed in the VM (Debian 12'"'"'s 6.1 kernel) while the harness was built.|' \
    -e 's|^From vm32\.md: |Measured while the harness was built: |' \
    -e 's| and shared/design/research/vm32\.md\)|)|' \
    "$f"
done

# Bare "rule N" in files that never say whose rules they are.
for f in shim/supervisor/supervisor.cc abi/illumos/portfs.cc \
         tests/abi/illumos_dispatch_test.cc testbins/stress_ports.c; do
  [ -f "$f" ] || continue
  sed -E -i 's@(\(|; |// )(port )?(rules? [0-9])@\1docs/rules-ports.md \3@g' "$f"
done
if [ -f docs/performance.md ]; then
  sed -E -i 's|fixed a rule 3 bug|fixed a docs/rules-ports.md rule 3 bug|' docs/performance.md
fi

# Seed line citations that were off (checked against seed 000, port.c):
# port_sendn is 978-1054, its errors[] copy-out 1045-1050, port_alert with
# its comment 1065-1136 (1061 is inside port_errorn).
sed -i 's|port\.c:983-1056|port.c:978-1054|g' abi/illumos/portfs.cc 2>/dev/null || true
sed -i 's|port\.c:1040-1050|port.c:1045-1050|g' abi/illumos/trace.cc 2>/dev/null || true
sed -i 's|port\.c:1061-1136|port.c:1065-1136|g' emul/event_port.cc tests/unit/event_port_test.cc 2>/dev/null || true
