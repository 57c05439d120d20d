"""tuning's effects, in one object the verbs are given: the pod's network namespace (its /proc/sys/net files and
its links, through common.netns and common.netlink), the data dir of restore files, and the allowlist file.

Production uses `Host()`; tests give another `enter` (a fake pod) and allowlist path, and run the same verbs.
"""
from __future__ import annotations

import os

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from contextlib import AbstractContextManager
    from typing import Any

    from common.netlink import Handle

    from .restore import LinkState

from common.record import field, record
from common.scoped import contextmanager, suppress

from .sysctls import ALLOWLIST


class Pod:
    """The container's namespace while it is entered: sysctl files resolve there (the kernel picks the netns of
    the thread opening them), and the netlink socket, made on first use, is bound to it."""

    def __init__(self) -> None:
        self._handle: Handle | None = None

    def _netlink(self) -> Handle:
        if self._handle is None:
            from common import netlink
            self._handle = netlink.Handle()
        return self._handle

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def read_sysctl(self, path: str) -> str:
        """The file's text (OSError as the kernel gives it)."""
        with open(path) as f:
            return f.read()

    def write_sysctl(self, path: str, value: str) -> None:
        """The value verbatim, no newline added, as the reference writes it (OSError as the kernel gives it)."""
        with open(path, "w") as f:
            f.write(value)

    def link(self, ifname: str) -> tuple[int, LinkState] | None:
        """The link's index and the attributes tuning sets, None when there is no such link."""
        link = self._netlink().link(ifname)
        if link is None:
            return None
        return link.index, {"mac": link.mac, "promisc": link.promisc, "mtu": link.mtu,
                            "allmulti": link.allmulti, "txQLen": link.txqlen}

    def set(self, index: int, key: str, value: Any) -> None:
        """Set one attribute (a restore-file key); common.netlink.LinkError when the kernel refuses."""
        from common.netlink import IFF_ALLMULTI, IFF_PROMISC
        handle = self._netlink()
        if key == "mac":
            handle.set_mac(index, value)
        elif key == "mtu":
            handle.set_mtu(index, value)
        elif key == "txQLen":
            handle.set_txqlen(index, value)
        else:
            handle.set_flag(index, IFF_PROMISC if key == "promisc" else IFF_ALLMULTI, bool(value))


@contextmanager
def _enter(path: str) -> Iterator[Pod]:
    from common import netns
    with netns.entered(path):   # NetnsGone (code 3) when missing, NotANetns (code 4)
        pod = Pod()
        try:
            yield pod
        finally:
            pod.close()


@record(frozen=True)
class Host:
    enter: Callable[[str], AbstractContextManager[Pod]] = field(default=_enter)
    allowlist_path: str = ALLOWLIST

    def allowlist(self) -> str | None:
        """The allowlist's text, None when there is no file (then every net sysctl is allowed)."""
        try:
            with open(self.allowlist_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except FileNotFoundError:
            return None

    def write(self, path: str, data: bytes) -> None:
        """Atomically (a temporary file renamed over it): a reader, Go's DEL too, sees the old file or the new
        one, never half of one. The directory is made 0600 as the reference makes it; the file is 0600."""
        directory = os.path.dirname(path)
        os.makedirs(directory, mode=0o600, exist_ok=True)
        temporary = temporary_of(path)
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        os.rename(temporary, path)

    def remove(self, path: str) -> None:
        for name in (path, temporary_of(path)):
            with suppress(FileNotFoundError):
                os.unlink(name)

    def names(self, directory: str) -> list[str]:
        try:
            return os.listdir(directory)
        except (FileNotFoundError, NotADirectoryError):
            return []


def temporary_of(path: str) -> str:
    """One per restore file (one writer per attachment): a killed ADD's leftover is removed by its DEL or GC."""
    directory, name = os.path.split(path)
    return os.path.join(directory, f".{name}.tmp")
