#!/usr/bin/env python3
"""CPython's own test files, one line per test case, under evshim and natively.

  cpython_cases.py drive --evshim EVSHIM --python PY --kq-site DIR --jobs N
                         --case-timeout S --file-timeout S --logs DIR --out TSV
                         MODULE...
      Runs every MODULE (e.g. test.test_kqueue) once under `EVSHIM run --`
      with the kqueue `select` (DefaultSelector = KqueueSelector) and once
      natively (Debian's select, epoll), N jobs at a time, and writes
      "CASE<TAB>EVSHIM<TAB>NATIVE" lines (pass / fail / skip).
  cpython_cases.py worker MODULE STATUS_FILE DONE_FILE CASE_TIMEOUT
      Runs MODULE's cases that DONE_FILE does not list, appending
      "start<TAB>ID" and "end<TAB>ID<TAB>STATUS" to STATUS_FILE as it goes.

A case that runs longer than CASE_TIMEOUT is a hang: faulthandler dumps every
thread's stack into the log and ends the process; the driver records the case
as failed and starts the file again after it. FILE_TIMEOUT bounds a whole file
(all restarts); cases it never reached count as failed.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

# Longest first, so that the jobs finish together.
SLOW_FIRST = ["test_events", "test_subprocess", "test_tasks", "test_sslproto",
              "test_ssl", "test_streams", "test_base_events", "test_selectors",
              "test_sendfile", "test_unix_events", "test_locks", "test_queues"]


def worker(module, status_path, done_path, case_timeout):
    import faulthandler
    import unittest
    from test import support

    faulthandler.enable(all_threads=True)
    # Python installs its KeyboardInterrupt handler only when SIGINT is not
    # ignored at start, and a shell's background job starts with it ignored:
    # the runners' interrupt tests then hang, evshim or not. Install it as an
    # interactive start would, so the results do not depend on how CI began.
    import signal
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    support.verbose = 0          # as regrtest without -v
    support.use_resources = []   # as regrtest without -u

    expected = os.environ.get("EVSHIM_CPYTHON_EXPECT")
    import select
    import selectors
    if expected == "kqueue":
        # A silent fallback to epoll must never count as a kqueue pass.
        assert select.__spec__.origin == os.environ["KQ_SELECT_SO"], select.__spec__
        assert selectors.DefaultSelector is selectors.KqueueSelector, selectors.DefaultSelector
    elif expected == "epoll":
        assert not hasattr(select, "kqueue")
        assert selectors.DefaultSelector is selectors.EpollSelector, selectors.DefaultSelector

    done = set()
    if os.path.exists(done_path):
        with open(done_path) as f:
            done = {line.rstrip("\n") for line in f if line.strip()}

    status = open(status_path, "a", buffering=1)

    def record(*fields):
        status.write("\t".join(fields) + "\n")
        status.flush()

    def flatten(suite):
        for t in suite:
            if isinstance(t, unittest.TestSuite):
                yield from flatten(t)
            else:
                yield t

    loader = unittest.TestLoader()
    try:
        tests = [t for t in flatten(loader.loadTestsFromName(module)) if t.id() not in done]
    except unittest.SkipTest as e:
        record("end", module, "skip")
        print(f"{module}: skipped: {e}", file=sys.stderr)
        return 0

    class CaseResult(unittest.TextTestResult):
        """One status per case: fail if anything in it failed, else skip if
        skipped, else pass. Errors outside a case (setUpClass, module
        fixtures) are recorded under their own description."""

        def startTest(self, test):
            self._case_status = "pass"
            record("start", test.id())
            faulthandler.dump_traceback_later(case_timeout, exit=True)
            super().startTest(test)

        def stopTest(self, test):
            super().stopTest(test)
            faulthandler.cancel_dump_traceback_later()
            record("end", test.id(), self._case_status)

        def _mark(self, test, st):
            if isinstance(test, unittest.case._SubTest):
                test = test.test_case
            if not isinstance(test, unittest.TestCase) or not hasattr(self, "_case_status"):
                record("end", str(test), st)   # a fixture (_ErrorHolder)
                return
            if st == "fail" or self._case_status == "pass":
                self._case_status = st

        def addError(self, test, err):
            super().addError(test, err)
            self._mark(test, "fail")

        def addFailure(self, test, err):
            super().addFailure(test, err)
            self._mark(test, "fail")

        def addUnexpectedSuccess(self, test):
            super().addUnexpectedSuccess(test)
            self._mark(test, "fail")

        def addSkip(self, test, reason):
            super().addSkip(test, reason)
            self._mark(test, "skip")

        def addSubTest(self, test, subtest, err):
            super().addSubTest(test, subtest, err)
            if err is not None and not issubclass(err[0], unittest.SkipTest):
                self._case_status = "fail"

    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2, resultclass=CaseResult)
    runner.run(unittest.TestSuite(tests))
    return 0


class Job:
    def __init__(self, mode, module, args):
        self.mode, self.module, self.args = mode, module, args
        name = module.replace("test.", "", 1)
        self.base = os.path.join(args.logs, f"{mode}.{name}")
        self.status = self.base + ".status"
        self.done = self.base + ".done"
        self.log = self.base + ".log"
        for p in (self.status, self.done, self.log):
            if os.path.exists(p):
                os.unlink(p)
        self.results = {}   # case id -> status, in order
        self.notes = []

    def command(self):
        a = self.args
        cmd = [a.python, os.path.abspath(__file__), "worker", self.module,
               self.status, self.done, str(a.case_timeout)]
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)
        env["PYTHONHASHSEED"] = env.get("PYTHONHASHSEED", "0")
        if self.mode == "evshim":
            cmd = [a.evshim, "run", "--"] + cmd
            env["PYTHONPATH"] = a.kq_site
            env["EVSHIM_CPYTHON_EXPECT"] = "kqueue"
        else:
            env.pop("KQ_SELECT_SO", None)
            env["EVSHIM_CPYTHON_EXPECT"] = "epoll"
        return cmd, env

    def run(self):
        deadline = time.monotonic() + self.args.file_timeout
        for attempt in range(self.args.max_restarts + 1):
            left = deadline - time.monotonic()
            if left <= 0:
                self.notes.append("file timeout")
                break
            cmd, env = self.command()
            with open(self.log, "a") as log, tempfile.TemporaryDirectory(prefix="cpy-") as cwd:
                log.write(f"### attempt {attempt}: {' '.join(cmd)}\n")
                log.flush()
                p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
                try:
                    rc = p.wait(timeout=left)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, 9)
                    p.wait()
                    rc = None
                else:
                    try:
                        os.killpg(p.pid, 9)   # leftovers of the test (children)
                    except ProcessLookupError:
                        pass
            hung = self.collect()
            if hung:
                self.notes.append(f"{hung}: no result (hang or crash, exit {rc})")
                self.results[hung] = "fail"
                with open(self.done, "a") as f:
                    f.write(hung + "\n")
            if rc is None:
                self.notes.append("file timeout")
                break
            if not hung:
                if rc != 0:
                    self.notes.append(f"worker exit {rc}")
                    self.results.setdefault(self.module + " (worker)", "fail")
                break
        return self

    def collect(self):
        """Reads the status file; returns the case started but not ended."""
        open_case = None
        if not os.path.exists(self.status):
            return None
        with open(self.status) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if parts[0] == "start" and len(parts) == 2:
                    open_case = parts[1]
                elif parts[0] == "end" and len(parts) == 3:
                    self.results[parts[1]] = parts[2]
                    if parts[1] == open_case:
                        open_case = None
        done = set()
        if os.path.exists(self.done):
            with open(self.done) as f:
                done = {line.rstrip("\n") for line in f}
        with open(self.done, "a") as f:
            for case in self.results:
                if case not in done:
                    f.write(case + "\n")
        return open_case


def order(modules):
    def key(m):
        leaf = m.rsplit(".", 1)[-1]
        return (SLOW_FIRST.index(leaf) if leaf in SLOW_FIRST else len(SLOW_FIRST), m)
    return sorted(modules, key=key)


def drive(args):
    os.makedirs(args.logs, exist_ok=True)
    jobs = [Job(mode, m, args) for m in order(args.modules) for mode in ("evshim", "native")]
    pending = list(jobs)
    lock = threading.Lock()

    def take():
        with lock:
            return pending.pop(0) if pending else None

    def loop():
        while (job := take()) is not None:
            t0 = time.monotonic()
            job.run()
            job.seconds = time.monotonic() - t0
            print(f"cpython: {job.mode:6} {job.module}: {len(job.results)} cases, "
                  f"{job.seconds:.0f} s" + ("; " + "; ".join(job.notes) if job.notes else ""),
                  file=sys.stderr, flush=True)

    threads = [threading.Thread(target=loop) for _ in range(args.jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    ev, nat, cases = {}, {}, []
    for job in jobs:
        target = ev if job.mode == "evshim" else nat
        for case, st in job.results.items():
            target[case] = st
            if case not in cases:
                cases.append(case)
    seen = set()
    with open(args.out, "w") as out:
        for case in cases:
            if case in seen:
                continue
            seen.add(case)
            n = nat.get(case, "")
            if case not in ev and n == "skip":
                continue  # e.g. test_kqueue: skipped as a module natively, run case by case under evshim
            # A case the evshim run never reached (file timeout, crash) failed.
            e = ev.get(case, "fail")
            name = case[len("test."):] if case.startswith("test.") else case
            out.write(f"{name}\t{e}\t{n}\n")
    notes = [f"{j.mode} {j.module}: {'; '.join(j.notes)}" for j in jobs if j.notes]
    if notes:
        print("cpython: notes:\n  " + "\n  ".join(notes), file=sys.stderr)
    return 0


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "worker":
        module, status, done, timeout = sys.argv[2:6]
        return worker(module, status, done, float(timeout))
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["drive"])
    ap.add_argument("--evshim", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--kq-site", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--case-timeout", type=float, default=60)
    ap.add_argument("--file-timeout", type=float, default=300)
    ap.add_argument("--max-restarts", type=int, default=5)
    ap.add_argument("--logs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("modules", nargs="+")
    return drive(ap.parse_args())


if __name__ == "__main__":
    sys.exit(main())
