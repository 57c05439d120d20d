"""The one place that runs other programs; failures become CniErrors that name the program.

Speed: this uses os.posix_spawn instead of the subprocess module, which imports locale and re (~10-20 ms per
plugin start). The child's stdin, stdout and stderr are anonymous memory files (memfd): the input is written
before the child starts and the output read after it exits, so no pipe can fill up and deadlock, without threads.
A pidfd gives the timeout. `start` hands back a program still running, for a caller that has other work to do
before it needs the answer (common.firewall.backend's prefetch); it must collect() or close() it.
"""
from __future__ import annotations

import os
import select
import sys

from .errors import CniError, Code
from .record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Protocol

    class Runner(Protocol):
        """What runs a program: `run` itself, or a test's fake."""

        def __call__(self, argv: Sequence[str], *, input: bytes = ..., env: Mapping[str, str] | None = ...,
                     timeout: float = ..., needed_by: str = ...) -> Completed: ...

    class RunAll(Protocol):
        """What runs independent programs together: `run_all` itself, or a test's fake."""

        def __call__(self, commands: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = ...,
                     timeout: float = ..., needed_by: str = ...) -> list[Completed]: ...

    class Started(Protocol):
        """A program started and not yet waited for: collect() it once, or close() it (kills it if running)."""

        def collect(self, timeout: float) -> Completed: ...

        def close(self) -> None: ...

    class Start(Protocol):
        """What starts a program without waiting for it: `start` itself, or a test's fake."""

        def __call__(self, argv: Sequence[str], *, input: bytes = ..., env: Mapping[str, str] | None = ...,
                     needed_by: str = ...) -> Started: ...

# Where tools are looked for when PATH is not set at all (as execvp does); a set PATH is searched alone, as Go does.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
TIMEOUT = 60.0  # seconds a program may run, unless the caller says otherwise


@record(frozen=True)
class Completed:
    status: int
    stdout: bytes
    stderr: bytes


def run(argv: Sequence[str], *, input: bytes = b"", env: Mapping[str, str] | None = None,
        timeout: float = TIMEOUT, needed_by: str = "") -> Completed:
    """Run argv to completion. A missing program is a clear error naming it (and what needs it)."""
    return _Child(argv, input, env, needed_by).collect(timeout)


def start(argv: Sequence[str], *, input: bytes = b"", env: Mapping[str, str] | None = None,
          needed_by: str = "") -> Started:
    """Start argv and return at once; the caller must collect() or close() it (a missing program: as `run`)."""
    return _Child(argv, input, env, needed_by)


def run_all(commands: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT,
            needed_by: str = "") -> list[Completed]:
    """Run independent commands at the same time (e.g. several `iptables -S CHAIN` reads): all are started
    before the first is waited for, so they cost about as much as the slowest one."""
    children: list[_Child] = []
    try:
        for argv in commands:
            children.append(_Child(argv, b"", env, needed_by))
        return [child.collect(timeout) for child in children]
    finally:
        for child in children:
            child.close()


def one_by_one(run: Runner) -> RunAll:
    """A RunAll over `run` that runs the commands in turn (a test's fake runner sees each one)."""
    def run_all(commands: Sequence[Sequence[str]], *, env: Mapping[str, str] | None = None, timeout: float = TIMEOUT,
                needed_by: str = "") -> list[Completed]:
        return [run(argv, env=env, timeout=timeout, needed_by=needed_by) for argv in commands]
    return run_all


def at_once(run: Runner) -> Start:
    """A Start over `run` that runs the program when it is started (a test's fake runner sees it then)."""
    def start(argv: Sequence[str], *, input: bytes = b"", env: Mapping[str, str] | None = None,
              needed_by: str = "") -> Started:
        return _Finished(run(argv, input=input, env=env, needed_by=needed_by))
    return start


class _Finished:
    """A Started whose program has already run (what `at_once` returns)."""

    def __init__(self, done: Completed) -> None:
        self.done = done

    def collect(self, timeout: float) -> Completed:
        return self.done

    def close(self) -> None:
        return None


@record(frozen=True)
class Programs:
    """The exec seam of a plugin's host object: one program, several at once, or one started now and collected
    later. Production uses `run`, `run_all` and `start`; a test passes its fake runner (`Programs.faked(fake)`),
    so the same code path runs either way."""

    run: Runner
    run_all: RunAll
    start: Start

    @classmethod
    def faked(cls, fake: Runner) -> Programs:
        return cls(run=fake, run_all=one_by_one(fake), start=at_once(fake))


class _Child:
    """One started program with its memfd stdio."""

    def __init__(self, argv: Sequence[str], input: bytes, env: Mapping[str, str] | None, needed_by: str) -> None:
        environ = os.environ if env is None else env
        program = find_program(argv[0], environ.get("PATH", DEFAULT_PATH))
        if program is None:
            why = f" (needed by {needed_by})" if needed_by else ""
            raise CniError(Code.INTERNAL, f"program {argv[0]!r} not found{why}")
        self.name = argv[0]
        self.fds = [_memfd("stdin", input), _memfd("stdout"), _memfd("stderr")]
        self.pid = 0
        try:
            actions = [(os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(self.fds)]
            self.pid = os.posix_spawn(program, list(argv), child_environ(environ), file_actions=actions)
        except OSError as exc:
            self.close()
            raise CniError(Code.INTERNAL, f"cannot run {argv[0]!r}: {exc.strerror}") from None

    def collect(self, timeout: float) -> Completed:
        """Wait for the exit (past `timeout`: code 11, and close() kills it) and read what it wrote."""
        try:
            if not _exits_within(self.pid, timeout):
                raise CniError(Code.TRY_AGAIN_LATER, f"{self.name} did not finish within {timeout:g} s")
            status = os.waitstatus_to_exitcode(os.waitpid(self.pid, 0)[1])
            self.pid = 0
            return Completed(status, _read_all(self.fds[1]), _read_all(self.fds[2]))
        finally:
            self.close()

    def close(self) -> None:
        if self.pid:            # never collected (an earlier child failed): do not leave it running
            os.kill(self.pid, 9)
            os.waitpid(self.pid, 0)
            self.pid = 0
        for fd in self.fds:
            os.close(fd)
        self.fds = []


def child_environ(environ: Mapping[str, str], *, frozen: bool | None = None) -> dict[str, str]:
    """The environment of a program we run: ours, with LD_LIBRARY_PATH as it was before PyInstaller's bootloader
    put the shared runtime folder (.pycni) in front of it. Left there, iptables, nft or an IPAM plugin would look
    for each of its libraries in ~10 directories of .pycni first, and could load our bundled libz, libffi or
    libpython instead of the system's. The bootloader kept a previous value in LD_LIBRARY_PATH_ORIG."""
    if frozen is None:
        frozen = bool(getattr(sys, "frozen", False))
    child = dict(environ)
    if frozen and "LD_LIBRARY_PATH" in child:
        original = child.pop("LD_LIBRARY_PATH_ORIG", None)
        if original is None:
            del child["LD_LIBRARY_PATH"]
        else:
            child["LD_LIBRARY_PATH"] = original
    return child


def find_program(name: str, path: str) -> str | None:
    """`name` itself when it has a slash, else the first executable of that name on path."""
    if "/" in name:
        return name if os.access(name, os.X_OK) else None
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", name)
        if os.access(candidate, os.X_OK) and not os.path.isdir(candidate):
            return candidate
    return None


def _memfd(name: str, data: bytes = b"") -> int:
    fd = os.memfd_create(name)      # close-on-exec; posix_spawn's dup2 makes the child's copy inheritable
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _read_all(fd: int) -> bytes:
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 16):
        chunks.append(chunk)
    return b"".join(chunks)


def _exits_within(pid: int, timeout: float) -> bool:
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        return bool(poller.poll(int(timeout * 1000)))
    finally:
        os.close(pidfd)


SYSTEM = Programs(run=run, run_all=run_all, start=start)   # the machine's programs, as a plugin runs them
