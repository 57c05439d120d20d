"""The one place that runs other programs; failures become CniErrors that name the program.

Speed: this uses os.posix_spawn instead of the subprocess module, which imports locale and re (~10-20 ms per
plugin start). The child's stdin, stdout and stderr are anonymous memory files (memfd): the input is written
before the child starts and the output read after it exits, so no pipe can fill up and deadlock, without threads.
A pidfd gives the timeout.
"""
from __future__ import annotations

import os
import select

from .errors import CniError, Code
from .record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Callable, Mapping, Sequence
    Runner = Callable[..., Completed]

# Where tools are looked for when PATH is not set at all (as execvp does); a set PATH is searched alone, as Go does.
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record(frozen=True)
class Completed:
    status: int
    stdout: bytes
    stderr: bytes


def run(argv: Sequence[str], *, input: bytes = b"", env: Mapping[str, str] | None = None,
        timeout: float = 60.0, needed_by: str = "") -> Completed:
    """Run argv to completion. A missing program is a clear error naming it (and what needs it)."""
    environ = os.environ if env is None else env
    program = find_program(argv[0], environ.get("PATH", DEFAULT_PATH))
    if program is None:
        why = f" (needed by {needed_by})" if needed_by else ""
        raise CniError(Code.INTERNAL, f"program {argv[0]!r} not found{why}")
    stdin, stdout, stderr = _memfd("stdin", input), _memfd("stdout"), _memfd("stderr")
    try:
        actions = [(os.POSIX_SPAWN_DUP2, fd, target) for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2))]
        try:
            pid = os.posix_spawn(program, list(argv), dict(environ), file_actions=actions)
        except OSError as exc:
            raise CniError(Code.INTERNAL, f"cannot run {argv[0]!r}: {exc.strerror}") from None
        status = _wait(pid, timeout, argv[0])
        return Completed(status, _read_all(stdout), _read_all(stderr))
    finally:
        for fd in (stdin, stdout, stderr):
            os.close(fd)


def check(argv: Sequence[str], **kwargs: object) -> Completed:
    """run() that turns a non-zero exit into an error carrying the program's stderr."""
    done = run(argv, **kwargs)  # type: ignore[arg-type]
    if done.status != 0:
        text = (done.stderr or done.stdout).decode(errors="replace").strip()
        raise CniError(Code.INTERNAL, f"{' '.join(argv[:3])} failed (exit {done.status}): {text}")
    return done


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


def _wait(pid: int, timeout: float, name: str) -> int:
    """The child's exit status (negative: killed by that signal); past the timeout it is killed (code 11)."""
    pidfd = os.pidfd_open(pid)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        if not poller.poll(int(timeout * 1000)):
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            raise CniError(Code.TRY_AGAIN_LATER, f"{name} did not finish within {timeout:g} s")
    finally:
        os.close(pidfd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
