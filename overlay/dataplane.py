"""The kernel side, through pyroute2: the VXLAN device, and the peers' neighbour/FDB/route entries.

Only entries this agent owns are read back: routes carry protocol PROTO (so host-gw routes are told apart from
the operator's), and on the VXLAN device every permanent neighbour and FDB entry with a destination is ours.
"""
from __future__ import annotations

import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl import ndmsg

from .plan import Changes, Entry, Fdb, Neigh, Route

log = logging.getLogger("pycni-overlayd")
PROTO = 118                   # rtm_protocol of our routes ('v'; free in iproute2's rt_protos)
ONLINK = 4                    # RTNH_F_ONLINK: the gateway is on the link although no address covers it
PERMANENT = ndmsg.states["permanent"]
NOARP = ndmsg.states["noarp"]
SELF = ndmsg.flags["self"]
UNREACHABLE = 7               # RTN_UNREACHABLE


class DataPlaneError(Exception):
    pass


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    mac: str
    mtu: int


class Kernel:
    """One rtnetlink socket in the agent's network namespace."""

    def __init__(self) -> None:
        self.ipr = IPRoute()

    def close(self) -> None:
        self.ipr.close()

    # --- the underlay ---------------------------------------------------------------------------------------
    def default_interface(self) -> str:
        for route in self.ipr.get_routes(family=socket.AF_INET, table=254):
            if route["dst_len"] == 0 and route.get("oif"):
                return self._name(route.get("oif"))
        raise DataPlaneError("no IPv4 default route: give --iface or --public-ip")

    def interface_of(self, address: str) -> str:
        for addr in self.ipr.get_addr(family=socket.AF_INET):
            if addr.get("address") == address:
                return self._name(addr["index"])
        raise DataPlaneError(f"no interface holds --public-ip {address}")

    def address_of(self, ifname: str) -> str:
        index = self._index(ifname)
        for addr in self.ipr.get_addr(family=socket.AF_INET, index=index):
            return str(addr.get("address"))
        raise DataPlaneError(f"interface {ifname} has no IPv4 address")

    def device(self, ifname: str) -> Device:
        link = self.ipr.get_links(self._index(ifname))[0]
        return Device(index=link["index"], name=ifname, mac=link.get("address"), mtu=link.get("mtu"))

    def enable_forwarding(self) -> None:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:   # per netns: the node's, not the machine's
            f.write("1")

    def ensure_unreachable(self, network: str) -> None:
        """`unreachable <cluster network>`: a pod address no node holds gets an ICMP error here instead of
        leaving by the default route (the nodes' own and peers' subnets are more specific routes)."""
        self.ipr.route("replace", dst=network, type="unreachable", proto=PROTO, table=254)
        for route in self.ipr.get_routes(family=socket.AF_INET, table=254, proto=PROTO):
            dst = f"{route.get('dst')}/{route['dst_len']}"
            if route["type"] == UNREACHABLE and dst != network:       # an earlier config's network
                self.ipr.route("del", dst=dst, type="unreachable", proto=PROTO, table=254)

    # --- the VXLAN device -------------------------------------------------------------------------------------
    def ensure_vxlan(self, name: str, *, vni: int, port: int, local: str, underlay: str, mtu: int, mac: str,
                     address: str) -> Device:
        """Keep a compatible existing device (its peers' entries stay: no blip on agent restart), else
        (re)create it. Learning is off: every peer is programmed explicitly."""
        parent = self._index(underlay)
        found = self.ipr.link_lookup(ifname=name)
        if found and not self._compatible(found[0], vni=vni, port=port, local=local, parent=parent):
            log.warning("replacing incompatible device %s", name)
            self.ipr.link("del", index=found[0])
            found = []
        if not found:
            self.ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni, vxlan_port=port, vxlan_local=local,
                          vxlan_link=parent, vxlan_learning=0, address=mac, mtu=mtu)
            log.info("created %s: vni %d port %d local %s dev %s mtu %d mac %s", name, vni, port, local, underlay,
                     mtu, mac)
        index = self._index(name)
        self.ipr.link("set", index=index, mtu=mtu)
        self._ensure_only_address(index, address)
        self.ipr.link("set", index=index, state="up")
        return self.device(name)

    def _compatible(self, index: int, *, vni: int, port: int, local: str, parent: int) -> bool:
        link = self.ipr.get_links(index)[0]
        info = link.get_nested("IFLA_LINKINFO", "IFLA_INFO_DATA")
        if link.get_nested("IFLA_LINKINFO", "IFLA_INFO_KIND") != "vxlan" or info is None:
            return False
        return (info.get("IFLA_VXLAN_ID"), info.get("IFLA_VXLAN_PORT"), info.get("IFLA_VXLAN_LOCAL"),
                info.get("IFLA_VXLAN_LINK"), info.get("IFLA_VXLAN_LEARNING")) == (vni, port, local, parent, 0)

    def _ensure_only_address(self, index: int, address: str) -> None:
        """<subnet>.0/32: the source of node -> remote pod traffic, and no connected route to anything."""
        present = {(a.get("address"), a["prefixlen"]) for a in self.ipr.get_addr(family=socket.AF_INET, index=index)}
        for addr, length in present - {(address, 32)}:
            self.ipr.addr("del", index=index, address=addr, prefixlen=length)
        if (address, 32) not in present:
            self.ipr.addr("add", index=index, address=address, prefixlen=32)

    # --- peers' entries ---------------------------------------------------------------------------------------
    def read(self, *, index: int, vxlan: bool) -> frozenset[Entry]:
        out: set[Entry] = set()
        for route in self.ipr.get_routes(family=socket.AF_INET, table=254, proto=PROTO):
            if route.get("oif") == index and route.get("gateway"):
                out.add(Route(f"{route.get('dst')}/{route['dst_len']}", route.get("gateway"),
                              bool(route["flags"] & ONLINK)))
        if vxlan:
            for neigh in self.ipr.get_neighbours(family=socket.AF_INET, ifindex=index):
                if neigh["state"] & PERMANENT and neigh.get("lladdr"):
                    out.add(Neigh(neigh.get("dst"), neigh.get("lladdr")))
            for entry in self.ipr.get_neighbours(family=socket.AF_BRIDGE, ifindex=index):
                if entry.get("dst") and entry.get("lladdr") and entry.get("lladdr") != "00:00:00:00:00:00":
                    out.add(Fdb(entry.get("lladdr"), entry.get("dst")))
        return frozenset(out)

    def apply(self, changes: Changes, *, index: int) -> list[str]:
        """Every change is tried (one failing peer must not block the others); the failures are returned."""
        failed = []
        for verb, entries in (("replace", changes.replace), ("del", changes.remove)):
            for entry in entries:
                try:
                    self._one(verb, entry, index)
                except NetlinkError as exc:
                    if not (verb == "del" and exc.code in (2, 3, 19)):   # already gone: fine
                        failed.append(f"{verb} {entry}: {exc}")
        return failed

    def _one(self, verb: str, entry: Entry, index: int) -> None:
        if isinstance(entry, Neigh):
            self.ipr.neigh(verb, ifindex=index, dst=entry.ip, lladdr=entry.mac, state=PERMANENT,
                           family=socket.AF_INET)
        elif isinstance(entry, Fdb):
            self.ipr.neigh(verb, ifindex=index, lladdr=entry.mac, dst=entry.dst, family=socket.AF_BRIDGE,
                           state=PERMANENT | NOARP, flags=SELF)
        else:
            self.ipr.route(verb, dst=entry.dst, gateway=entry.via, oif=index, proto=PROTO, table=254,
                           flags=ONLINK if entry.onlink else 0)

    # --- helpers ----------------------------------------------------------------------------------------------
    def _index(self, ifname: str) -> int:
        found = self.ipr.link_lookup(ifname=ifname)
        if not found:
            raise DataPlaneError(f"no interface {ifname!r}")
        return int(found[0])

    def _name(self, index: Any) -> str:
        return str(self.ipr.get_links(index)[0].get("ifname"))


def describe(entries: Iterable[Entry]) -> str:
    return ", ".join(str(e) for e in entries) or "nothing"
