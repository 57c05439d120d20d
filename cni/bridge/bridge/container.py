"""Container-side steps: sysctls, addresses and routes on CNI_IFNAME, and removing it on DEL."""
from __future__ import annotations

import errno

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

from common import netns, sysctl
from common.errors import CniError, Code
from common.netlink import Handle, LinkError, RouteSpec
from common.types import Result

from .plan import CONTAINER_INDEX, route_gateway


def set_sysctls(path: str, ifname: str, *, enable_dad: bool, ipv6: bool) -> None:
    """Per-interface knobs, written inside the container's namespace (net sysctls are per namespace).
    DAD is off unless enabledad: waiting for it costs ~1-2 s per ADD (k8s #54651)."""
    with netns.entered(path):
        if enable_dad:
            sysctl.try_write(f"net/ipv6/conf/{ifname}/enhanced_dad", "1")
            sysctl.try_write(f"net/ipv6/conf/{ifname}/accept_dad", "1")
        else:
            sysctl.try_write(f"net/ipv6/conf/{ifname}/accept_dad", "0")
        sysctl.try_write(f"net/ipv4/conf/{ifname}/arp_notify", "1")
        if ipv6:
            sysctl.try_write(f"net/ipv6/conf/{ifname}/disable_ipv6", "0")
            sysctl.try_write(f"net/ipv6/conf/{ifname}/keep_addr_on_down", "1")


def configure(handle: Handle, index: int, result: Result) -> None:
    """Link up, then the container's addresses, then routes (they need the link up and the addresses)."""
    handle.set_up(index)
    for ipc in result.ips:
        if ipc.interface != CONTAINER_INDEX:
            continue
        try:
            handle.add_address(index, ipc.address)
        except LinkError as exc:
            raise CniError(Code.INTERNAL, f"failed to add IP addr {ipc.address}: {exc.msg}") from None
    for route in result.routes:
        route = route_gateway(route, result.ips)
        spec = RouteSpec(dst=route.dst.network, gateway=route.gw, priority=route.priority, table=route.table,
                         scope=route.scope)
        try:
            handle.add_route(index, spec)
        except LinkError as exc:
            if exc.errno != errno.EEXIST:
                raise CniError(Code.INTERNAL, f"failed to add route {route.dst} via {route.gw}: {exc.msg}") \
                    from None


def delete_interface(path: str, ifname: str, open_pod: Callable[[str], Handle]) -> None:
    """Remove CNI_IFNAME (and with it the host veth). A missing namespace or link is already done, and so is
    a path that is no namespace any more: the empty file left where one was bind-mounted, once unmounted."""
    try:
        handle = open_pod(path)
    except (netns.NetnsGone, netns.NotANetns):
        return
    with handle:
        link = handle.link(ifname)
        if link is None:
            return
        try:
            handle.delete_link(link.index)
        except LinkError as exc:
            if exc.errno != errno.ENODEV:
                raise
