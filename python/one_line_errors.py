"""The command-line entry of the programs in python/ (an argument parser and `run`): every failure
is one `error:` line on stderr and exit status 1 (a `UsageError` prints its message alone,
anything else its type too); PHD_DEBUG=1 shows the traceback. Imports nothing but the standard library, so an interpreter with
numpy and no torch (python/bench_peers.py's numpy peer) can use it."""

import argparse
import os
import sys


class UsageError(Exception):
    """Bad input: printed as one `error:` line, exit status 1."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are `UsageError`s (one line), not argparse's usage text."""

    def error(self, message):
        raise UsageError(message)


def positive(v):
    """argparse type: a positive integer."""
    if not v.isdigit() or int(v) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {v!r}")
    return int(v)


def non_negative(v):
    """argparse type: an integer >= 0."""
    if not v.isdigit():
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {v!r}")
    return int(v)


def run(main):
    """Calls `main(sys.argv[1:])`, turning any failure into one `error:` line and exit 1."""
    try:
        main(sys.argv[1:])
    except Exception as err:
        if os.environ.get("PHD_DEBUG"):
            raise
        what = str(err).splitlines()[0] if str(err) else ""
        print(
            f"error: {what if isinstance(err, UsageError) else f'{type(err).__name__}: {what}'}",
            file=sys.stderr,
        )
        sys.exit(1)
