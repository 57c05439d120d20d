"""Phase marks of a plugin run, for `scripts/timeline.py` (docs/benchmarks.md, "Where the time goes").

With PYCNI_TIMELINE=<file> in the environment, `mark(phase)` appends one line, "<unix time> <pid> <phase>", to
that file; processes of one operation (a plugin, its IPAM delegate, the next plugin of the chain) share it, and
O_APPEND keeps their short lines whole. Without it, a mark costs one dict lookup, so the marks stay in the shipped
build: the timeline is measured on the executables users run.
"""
from __future__ import annotations

import os

_FILE = os.environ.get("PYCNI_TIMELINE")


def mark(phase: str) -> None:
    if not _FILE:
        return
    import time  # a built-in module: nothing to load from disk
    line = f"{time.time():.6f} {os.getpid()} {phase}\n".encode()
    try:
        fd = os.open(_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError:
        return      # a diagnostic aid never fails the operation
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
