"""Exclusive flock(2) with a deadline: a stuck holder makes a plugin fail with code 11 ("try again later")
instead of hanging the runtime. Shared by host-local (its network directory's `lock`) and portmap."""
from __future__ import annotations

import errno
import fcntl
import time

from .errors import CniError, Code, TryAgainError

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Mapping

ENV_TIMEOUT = "PYCNI_LOCK_TIMEOUT"


def timeout_from_env(env: Mapping[str, str], default: float) -> float:
    """PYCNI_LOCK_TIMEOUT seconds when set (code 4 when it is not a number >= 0), else `default`."""
    text = env.get(ENV_TIMEOUT, "")
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:     # also refuses NaN
        raise CniError(Code.INVALID_ENVIRONMENT, f"invalid {ENV_TIMEOUT} {text!r}: expected seconds >= 0")
    return value


def acquire(fd: int, *, timeout: float, what: str) -> None:
    """Take LOCK_EX on fd, polling with a growing pause (1 ms .. 20 ms) until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    pause = 0.0005
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise CniError(Code.IO_FAILURE, f"cannot lock {what}: {exc.strerror}") from None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TryAgainError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(min(pause, remaining))
        pause = min(pause * 2, 0.02)
