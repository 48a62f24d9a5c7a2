"""The end of the harness checks in this folder: their problems, one line
each, and the exit status meson reads."""
import sys


def finish(name, problems):
    if problems:
        print(f"{name}: FAILED")
        for problem in problems:
            print("  " + problem)
        sys.exit(1)
    print(f"{name}: ok")
