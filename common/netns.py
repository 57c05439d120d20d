"""Entering network namespaces by path, without ever creating one.

Netlink libraries such as pyroute2 create a missing namespace by default (`IPRoute(netns=...)`); a DEL must
never do that, so this module opens the path itself and reports a missing one as `NetnsGone`, which DEL treats
as "already gone".
"""
from __future__ import annotations

import errno
import os

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

from .errors import CniError, Code
from .scoped import contextmanager

CLONE_NEWNET = 0x40000000


def _libc_setns() -> Callable[[int, int], int]:
    """libc's setns(2) through the C module _ctypes alone (os.setns arrives in Python 3.12). The ctypes package
    on top costs ~3.5 ms of every plugin start here, and with it in the build, PyInstaller's bootstrap imports it
    in every plugin (docs/benchmarks.md, "Where the time goes"); tests/unit/common/test_netns.py holds it to ctypes."""
    import _ctypes

    class CInt(_ctypes._SimpleCData):  # type: ignore[type-arg]  # ctypes.c_int
        _type_ = "i"

    class Function(_ctypes.CFuncPtr):  # a cdecl function returning int that saves errno (use_errno=True)
        _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
        _restype_ = CInt

    class Libc:                         # the process's own symbols, as ctypes.CDLL(None)
        _handle = _ctypes.dlopen(None, os.RTLD_NOW | os.RTLD_LOCAL)  # type: ignore[arg-type]  # NULL: ourselves

    setns = Function(("setns", Libc))  # type: ignore[arg-type]  # anything with a _handle, as CDLL
    setns.argtypes = (CInt, CInt)
    return setns


def _errno() -> int:
    import _ctypes
    return _ctypes.get_errno()


_libc: list[Callable[[int, int], int]] = []     # setns, made on first use: VERSION and GC never load _ctypes


def _setns_call(fd: int, nstype: int) -> int:
    if not _libc:
        _libc.append(_libc_setns())
    return _libc[0](fd, nstype)


class NetnsGone(CniError):
    def __init__(self, path: str) -> None:
        super().__init__(Code.UNKNOWN_CONTAINER, f"network namespace {path!r} does not exist")
        self.path = path


class NotANetns(CniError):
    """The path exists but holds no network namespace (an unmounted bind-mount target, a FIFO, a directory):
    ADD and CHECK refuse it (code 4); DEL takes it as a namespace already gone."""

    def __init__(self, path: str) -> None:
        super().__init__(Code.INVALID_ENVIRONMENT, f"{path!r} is not a network namespace")
        self.path = path


def _setns(fd: int, path: str) -> None:
    if _setns_call(fd, CLONE_NEWNET) != 0:
        err = _errno()
        if err == errno.EINVAL:
            raise NotANetns(path)
        raise CniError(Code.INTERNAL, f"cannot enter network namespace {path!r}: {os.strerror(err)}")


def open_netns(path: str) -> int:
    """An fd for the namespace at path; NetnsGone if it is missing. O_NONBLOCK: a FIFO (or device) at the path
    must not hang the plugin in open(); setns then refuses the fd (code 4, not a network namespace)."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except FileNotFoundError:
        raise NetnsGone(path) from None
    except OSError as exc:
        raise CniError(Code.INTERNAL, f"cannot open network namespace {path!r}: {exc.strerror}") from None


@contextmanager
def entered(path: str) -> Iterator[None]:
    """Run the block inside the namespace at `path`; the original namespace is restored even on error."""
    target = open_netns(path)
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        _setns(target, path)
        try:
            yield
        finally:
            _setns(own, "/proc/thread-self/ns/net")
    finally:
        os.close(target)
        os.close(own)
