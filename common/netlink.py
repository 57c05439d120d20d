"""A typed, thin facade over pyroute2's IPRoute: the only module that imports pyroute2.

A `Handle` is one rtnetlink socket bound to one network namespace (the namespace is fixed when the socket is
opened, as in netavark's `open_netlink_sockets`). Open the container's with `open_in(path)`: the namespace is
opened by path through common.netns and never created (pyroute2's own `netns=` argument would create it).
Kernel errors become `LinkError` carrying the errno, so callers can tolerate EEXIST/ENODEV explicitly.
"""
from __future__ import annotations

import contextlib
import errno as errnos
import importlib.util
import ipaddress
import socket
import sys
import time
import types
from dataclasses import dataclass
from typing import Any, Iterator

from . import netns
from .config import IPAddress, IPInterface, IPNetwork
from .errors import CniError, Code

IFF_UP = 0x1
IFF_PROMISC = 0x100
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4


class LinkError(CniError):
    """A netlink request the kernel refused; `errno` says why (EEXIST, ENODEV, EOPNOTSUPP...)."""

    def __init__(self, errno: int, msg: str) -> None:
        super().__init__(Code.INTERNAL, msg)
        self.errno = errno


def _load_iproute() -> tuple[Any, type[Exception]]:
    """pyroute2's IPRoute class and NetlinkError, without running the package's __init__.

    `import pyroute2` imports every protocol pyroute2 supports (NDB, IPDB, conntrack, wireguard, nl80211...):
    ~55 ms of the ~170 ms it costs to reach IPRoute. Registering a bare package module whose __path__ points at
    the installed package lets Python import just the submodules IPRoute needs. If pyroute2 was already
    imported normally, that module is reused.
    """
    if "pyroute2" not in sys.modules:
        spec = importlib.util.find_spec("pyroute2")
        if spec is None or spec.submodule_search_locations is None:
            raise CniError(Code.INTERNAL, "pyroute2 is not installed (needed for netlink)")
        package = types.ModuleType("pyroute2")
        package.__path__ = list(spec.submodule_search_locations)
        package.__spec__ = spec
        package.__file__ = spec.origin
        sys.modules["pyroute2"] = package
    from pyroute2.iproute.linux import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError
    return IPRoute, NetlinkError


@dataclass(frozen=True)
class Link:
    index: int
    name: str
    kind: str           # "bridge", "veth", "" for plain devices
    mac: str
    mtu: int
    master: int         # index of the bridge it is a port of, 0 if none
    peer: int           # IFLA_LINK: a veth's peer index (in the peer's namespace), 0 if none
    operstate: str
    flags: int

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)


@dataclass(frozen=True)
class RouteSpec:
    dst: IPNetwork
    gateway: IPAddress | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


@dataclass(frozen=True)
class RouteEntry:
    dst: IPNetwork
    gateway: IPAddress | None
    oif: int


def open_host() -> "Handle":
    """A handle on this process's current namespace."""
    return Handle()


def open_in(path: str) -> "Handle":
    """A handle on the namespace at `path`; NetnsGone if it does not exist (never created)."""
    with netns.entered(path):
        return Handle()


class Handle:
    def __init__(self) -> None:
        iproute, self._netlink_error = _load_iproute()
        self._ipr = iproute()

    def close(self) -> None:
        self._ipr.close()

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except self._netlink_error as exc:  # type: ignore[misc]
            code = int(exc.code)
            raise LinkError(code, f"{what}: {errnos.errorcode.get(code, code)} ({exc.args[-1]})") from None

    # --- links --------------------------------------------------------------------------------------

    def link(self, name: str) -> Link | None:
        with self._errors(f"looking up link {name!r}"):
            indexes = self._ipr.link_lookup(ifname=name)
        return self.link_by_index(indexes[0]) if indexes else None

    def link_by_index(self, index: int) -> Link | None:
        try:
            with self._errors(f"reading link {index}"):
                msgs = self._ipr.get_links(index)
        except LinkError as exc:
            if exc.errno == errnos.ENODEV:
                return None
            raise
        return _link(msgs[0]) if msgs else None

    def add_bridge(self, name: str, *, mtu: int, vlan_filtering: bool) -> None:
        """Create a bridge; LinkError(EEXIST) when a link of that name exists already."""
        attrs: dict[str, Any] = {"ifname": name, "kind": "bridge"}
        if mtu:
            attrs["mtu"] = mtu
        if vlan_filtering:
            attrs["br_vlan_filtering"] = 1
        with self._errors(f"creating bridge {name!r}"):
            self._ipr.link("add", **attrs)

    def add_veth(self, name: str, *, peer: str, peer_netns_fd: int, mtu: int, peer_mac: str) -> None:
        """A veth pair: `name` here, `peer` created directly inside the namespace of `peer_netns_fd`."""
        peer_attrs: dict[str, Any] = {"ifname": peer, "net_ns_fd": peer_netns_fd}
        attrs: dict[str, Any] = {"ifname": name, "kind": "veth"}
        if mtu:
            attrs["mtu"] = peer_attrs["mtu"] = mtu
        if peer_mac:
            peer_attrs["address"] = peer_mac
        with self._errors(f"creating veth pair {name!r}/{peer!r}"):
            self._ipr.link("add", peer=peer_attrs, **attrs)

    def set_up(self, index: int) -> None:
        with self._errors(f"setting link {index} up"):
            self._ipr.link("set", index=index, state="up")

    def set_promisc(self, index: int) -> None:
        with self._errors(f"setting link {index} promiscuous"):
            self._ipr.link("set", index=index, flags=IFF_PROMISC, change=IFF_PROMISC)

    def set_mac(self, index: int, mac: str) -> None:
        with self._errors(f"setting MAC {mac} on link {index}"):
            self._ipr.link("set", index=index, address=mac)

    def set_master(self, index: int, master: int) -> None:
        with self._errors(f"attaching link {index} to bridge {master}"):
            self._ipr.link("set", index=index, master=master)

    def set_bridge_port(self, index: int, *, hairpin: bool, isolated: bool) -> None:
        """IFLA_BRPORT_MODE (hairpin) and IFLA_BRPORT_ISOLATED of a bridge port."""
        with self._errors(f"setting bridge port options of link {index}"):
            self._ipr.link("set", index=index, kind="bridge_slave", mode=int(hairpin), isolated=int(isolated))

    def vlans(self, index: int) -> list[int]:
        """The VLAN ids configured on a bridge port."""
        with self._errors(f"listing VLANs of link {index}"):
            msgs = self._ipr.get_links(index, family=socket.AF_BRIDGE, ext_mask=2)
        infos = [a for m in msgs for a in m.get_attrs("IFLA_AF_SPEC")]
        return [v["vid"] for spec in infos for v in spec.get_attrs("IFLA_BRIDGE_VLAN_INFO")]

    def vlan(self, command: str, index: int, vid: int, *, pvid_untagged: bool = False) -> None:
        """command "add"/"del"; pvid_untagged makes it the port's access (native) VLAN."""
        flags = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED if pvid_untagged else 0
        with self._errors(f"{command} VLAN {vid} on link {index}"):
            self._ipr.vlan_filter(command, index=index, vlan_info={"vid": vid, "flags": flags})

    def delete_link(self, index: int) -> None:
        with self._errors(f"deleting link {index}"):
            self._ipr.link("del", index=index)

    def wait_oper_up(self, index: int, *, timeout: float) -> str:
        """Poll until the link's operstate is UP or the deadline passes; returns the last state seen."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            link = self.link_by_index(index)
            state = link.operstate if link else "GONE"
            if state == "UP" or time.monotonic() >= deadline:
                return state
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # --- addresses and routes -------------------------------------------------------------------------

    def addresses(self, index: int, family: int = 0) -> list[tuple[IPInterface, int]]:
        """(address/prefix, scope) of every address on the link; family 4, 6 or 0 for both."""
        kwargs: dict[str, Any] = {"index": index}
        if family:
            kwargs["family"] = socket.AF_INET if family == 4 else socket.AF_INET6
        with self._errors(f"listing addresses of link {index}"):
            msgs = self._ipr.get_addr(**kwargs)
        return [(ipaddress.ip_interface(f"{m.get('address')}/{m['prefixlen']}"), int(m["scope"])) for m in msgs]

    def add_address(self, index: int, address: IPInterface) -> None:
        with self._errors(f"adding address {address} to link {index}"):
            self._ipr.addr("add", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)

    def delete_address(self, index: int, address: IPInterface) -> None:
        with self._errors(f"removing address {address} from link {index}"):
            self._ipr.addr("del", index=index, address=str(address.ip), prefixlen=address.network.prefixlen)

    def add_route(self, index: int, route: RouteSpec) -> None:
        attrs: dict[str, Any] = {
            "dst": str(route.dst.network_address), "dst_len": route.dst.prefixlen, "oif": index,
            "family": socket.AF_INET if route.dst.version == 4 else socket.AF_INET6,
        }
        if route.gateway is not None:
            attrs["gateway"] = str(route.gateway)
        for key in ("priority", "table", "scope"):
            if getattr(route, key) is not None:
                attrs[key] = getattr(route, key)
        with self._errors(f"adding route {route.dst} via {route.gateway or '-'} dev {index}"):
            self._ipr.route("add", **attrs)

    def routes(self, family: int) -> list[RouteEntry]:
        """Routes of the main table (single-path: oif taken from RTA_OIF)."""
        with self._errors("listing routes"):
            msgs = self._ipr.get_routes(family=socket.AF_INET if family == 4 else socket.AF_INET6, table=254)
        out = []
        for m in msgs:
            zero = "0.0.0.0" if family == 4 else "::"
            dst = ipaddress.ip_network(f"{m.get('dst') or zero}/{m['dst_len']}", strict=False)
            gw = m.get("gateway")
            out.append(RouteEntry(dst, ipaddress.ip_address(gw) if gw else None, int(m.get("oif") or 0)))
        return out


def _link(msg: Any) -> Link:
    info = msg.get_attr("IFLA_LINKINFO")
    kind = (info.get_attr("IFLA_INFO_KIND") if info is not None else None) or ""
    return Link(
        index=int(msg["index"]), name=msg.get("ifname") or "", kind=kind, mac=msg.get("address") or "",
        mtu=int(msg.get("mtu") or 0), master=int(msg.get("master") or 0), peer=int(msg.get("link") or 0),
        operstate=msg.get("operstate") or "", flags=int(msg["flags"]),
    )
