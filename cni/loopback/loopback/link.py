"""The netlink edge of loopback: `lo` in the container's namespace, through common.netlink/common.rtnl.

The namespace is opened by path through common.netns and never created: a missing path raises
`netns.NetnsGone` (code 3, "container unknown or does not exist"), a path that is no network namespace code 4.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from common.config import IPInterface

from common import netlink
from common.errors import CniError, Code
from common.netlink import IFF_UP, Link

from .addresses import LO


def find_lo(handle: netlink.Handle, path: str) -> Link:
    link = handle.link(LO)
    if link is None:   # every network namespace has one; the kernel refuses to delete it
        raise CniError(Code.INTERNAL, f"no loopback interface {LO!r} in network namespace {path!r}")
    return link


def bring_up(path: str) -> list[IPInterface]:
    """Set `lo` up and return its addresses, in the kernel's order (after the link is up: IPv6 puts ::1 back
    on an up lo, and drops it when lo goes down)."""
    with netlink.open_in(path) as handle:
        link = find_lo(handle, path)
        handle.set_up(link.index)
        return [address for address, _scope in handle.addresses(link.index)]


def bring_down(path: str) -> None:
    """Set `lo` down; its addresses are left alone (the kernel itself drops the IPv6 ones)."""
    with netlink.open_in(path) as handle:
        handle.set_down(find_lo(handle, path).index)


def is_up(path: str) -> bool:
    with netlink.open_in(path) as handle:
        return bool(find_lo(handle, path).flags & IFF_UP)
