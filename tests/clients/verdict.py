"""The harness checks in this folder: their problems, one line each
(Checks), and their end with the exit status meson reads (finish)."""
import sys


def finish(name, problems):
    if problems:
        print(f"{name}: FAILED")
        for problem in problems:
            print("  " + problem)
        sys.exit(1)
    print(f"{name}: ok")


class Checks:
    """`check(cond, what)` keeps `what` as a problem when `cond` is false."""

    def __init__(self):
        self.problems = []

    def __call__(self, cond, what):
        if not cond:
            self.problems.append(what)
