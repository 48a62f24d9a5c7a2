#!/usr/bin/env bash
# CPython 3.11's select.kqueue on evshim: Debian's python3.11 source, only
# Modules/selectmodule.c rebuilt with kqueue against evshim-kqueue-freebsd
# and loaded as `select` (so asyncio's DefaultSelector is the
# KqueueSelector); CPython's own test_kqueue, test_selectors and every
# test_asyncio file, under `evshim run` and natively (Debian's select,
# epoll). docs/clients.md "## CPython".
source "$(dirname "$0")/common.sh"

python=/usr/bin/python3.11          # Debian's: matches the testsuite and headers
version=3.11.2-6+deb12u8            # the revision the snapshot mirror holds
work=$EVSHIM_CLIENTS_WORK/cpython
logs=$EVSHIM_CLIENTS_LOGS/cpython
case_timeout=${EVSHIM_CPYTHON_CASE_TIMEOUT:-60}
file_timeout=${EVSHIM_CPYTHON_FILE_TIMEOUT:-400}

clients_need_packages gcc python3.11-dev libpython3.11-testsuite || exit 1
clients_fetch_source python3.11 "$version" python3.11 || exit 1
[ "${EVSHIM_CLIENTS_FETCH:-0}" = 1 ] && exit 0
clients_install_evshim || exit 1

src=$EVSHIM_CLIENTS_WORK/src/python3.11
rm -rf "$work" "$logs"
mkdir -p "$work/site" "$logs"

# Debian's python3.11 has select built in; only the kqueue-enabled module is
# built here, with the headers and library of an installed evshim.
kq_so=$work/select_kq.so
# shellcheck disable=SC2046
gcc -shared -fPIC -O2 -DPy_BUILD_CORE_MODULE -DHAVE_KQUEUE=1 -DHAVE_SYS_EVENT_H=1 \
  $(clients_cflags evshim-kqueue-freebsd) $("$python-config" --includes) \
  -I/usr/include/python3.11/internal -I"$src/Modules" \
  "$src/Modules/selectmodule.c" -o "$kq_so" $(clients_libs evshim-kqueue-freebsd) \
  2>"$logs/build.log" || { cat "$logs/build.log" >&2; clients_log "cpython: select_kq.so does not build"; exit 1; }
nm -D --undefined-only "$kq_so" | grep -qw kevent || { clients_log "cpython: select_kq.so does not call kevent"; exit 1; }

# A built-in module cannot be shadowed through sys.path: sitecustomize loads
# the .so as `select` before anything imports it.
cat >"$work/site/sitecustomize.py" <<'EOF'
import importlib.machinery, importlib.util, os, sys
_path = os.environ["KQ_SELECT_SO"]
_loader = importlib.machinery.ExtensionFileLoader("select", _path)
_module = importlib.util.module_from_spec(importlib.util.spec_from_file_location("select", _path, loader=_loader))
_loader.exec_module(_module)
sys.modules["select"] = _module
EOF
export KQ_SELECT_SO=$kq_so
# The build takes seconds; --prepare stops here, with select_kq.so and
# site/ in place for scripts/bench-clients.
[ "${EVSHIM_CLIENTS_PREPARE:-0}" = 1 ] && exit 0

# Preflight: under evshim, selectors picks kqueue and a kqueue really works
# (a kevent round trip through the supervisor); natively it is epoll.
preflight='
import os, select, selectors, sys
want = sys.argv[1]
if want == "kqueue":
    assert select.__spec__.origin == os.environ["KQ_SELECT_SO"], select.__spec__
    assert selectors.DefaultSelector is selectors.KqueueSelector, selectors.DefaultSelector
    kq = select.kqueue()
    assert kq.fileno() >= 0
    r, w = os.pipe()
    kq.control([select.kevent(r, select.KQ_FILTER_READ, select.KQ_EV_ADD)], 0)
    assert kq.control(None, 4, 0) == []
    os.write(w, b"x")
    events = kq.control(None, 4, 5)
    assert len(events) == 1 and events[0].ident == r and events[0].filter == select.KQ_FILTER_READ \
        and events[0].data == 1, events
    import asyncio
    loop = asyncio.new_event_loop()
    assert isinstance(loop._selector, selectors.KqueueSelector), loop._selector
    loop.close()
else:
    assert not hasattr(select, "kqueue")
    assert selectors.DefaultSelector is selectors.EpollSelector, selectors.DefaultSelector
print("preflight", want, "ok")
'
PYTHONPATH=$work/site timeout 60 "$EVSHIM" run -- "$python" -c "$preflight" kqueue ||
  { clients_log "cpython: preflight under evshim failed: DefaultSelector is not a working KqueueSelector"; exit 1; }
(unset KQ_SELECT_SO; timeout 60 "$python" -c "$preflight" epoll) ||
  { clients_log "cpython: native preflight failed"; exit 1; }

modules=(test.test_kqueue test.test_selectors)
if [ "${EVSHIM_CLIENTS_QUICK:-0}" = 1 ]; then
  # --quick: the files that drive the kqueue hardest (subprocesses, pipes,
  # signals, sockets).
  modules+=(test.test_asyncio.test_events test.test_asyncio.test_subprocess
            test.test_asyncio.test_base_events test.test_asyncio.test_streams)
else
  for f in /usr/lib/python3.11/test/test_asyncio/test_*.py; do
    modules+=("test.test_asyncio.$(basename "$f" .py)")
  done
fi

start=$SECONDS
nice -n 5 "$python" "$EVSHIM_REPO/scripts/clients.d/cpython_cases.py" drive \
  --evshim "$EVSHIM" --python "$python" --kq-site "$work/site" --jobs 2 \
  --case-timeout "$case_timeout" --file-timeout "$file_timeout" \
  --logs "$logs" --out "$work/results.tsv" "${modules[@]}" || exit 1
clients_log "cpython: ${#modules[@]} test files under evshim and natively in $((SECONDS - start)) s (logs: $logs)"
clients_report cpython "$work/results.tsv"
