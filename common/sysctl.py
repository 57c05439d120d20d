"""Kernel parameters under /proc/sys. Network ones are per network namespace: the namespace is the one of the
calling thread when the file is opened, so write them inside `netns.entered(path)` for a container."""
from __future__ import annotations

import os

from .errors import CniError, Code

ROOT = "/proc/sys"


def path_of(key: str) -> str:
    """'net/ipv4/ip_forward' -> '/proc/sys/net/ipv4/ip_forward'. Keys use '/' separators, so interface names
    containing dots ('cni0.100') stay intact."""
    return os.path.join(ROOT, key.lstrip("/"))


def read(key: str) -> str:
    try:
        with open(path_of(key)) as f:
            return f.read().strip()
    except OSError as exc:
        raise CniError(Code.INTERNAL, f"cannot read sysctl {key}: {exc.strerror}") from None


def write(key: str, value: str) -> None:
    try:
        with open(path_of(key), "w") as f:
            f.write(value)
    except OSError as exc:
        raise CniError(Code.INTERNAL, f"cannot set sysctl {key}={value}: {exc.strerror}") from None


def ensure(key: str, value: str) -> None:
    """Write only when different (as the reference does for ip_forward: a read is cheaper than a write that
    the kernel may act on)."""
    if read(key) != value:
        write(key, value)


def try_write(key: str, value: str) -> bool:
    """Best effort, for knobs that may not exist (IPv6 disabled on the host); True when written."""
    try:
        write(key, value)
        return True
    except CniError:
        return False
