"""The data plane as values: what the kernel should hold for the peers' leases, and how to get there (pure).

vxlan, per peer (in this order, so the kernel never ARPs for a gateway it cannot resolve yet):
    neighbour  10.244.2.0 lladdr <VtepMAC> permanent          on pycni.<VNI>
    fdb        <VtepMAC> dst <PublicIP> self permanent        on pycni.<VNI>
    route      10.244.2.0/24 via 10.244.2.0 onlink            on pycni.<VNI> (it has only a /32)
host-gw, per peer:
    route      10.244.2.0/24 via <PublicIP>                   on the underlay interface

Entries are compared by identity (neighbour: address, fdb: MAC, route: destination), so a peer whose MAC or
address changed gets its entries *replaced* and the old FDB entry removed (flannel leaks it).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import netaddr

from .leases import Lease


@dataclass(frozen=True, order=True)
class Neigh:
    ip: str
    mac: str

    @property
    def key(self) -> tuple[str, str]:
        return ("neigh", self.ip)


@dataclass(frozen=True, order=True)
class Fdb:
    mac: str
    dst: str

    @property
    def key(self) -> tuple[str, str]:
        return ("fdb", self.mac)


@dataclass(frozen=True, order=True)
class Route:
    dst: str
    via: str
    onlink: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return ("route", self.dst)


Entry = Neigh | Fdb | Route
ORDER = {Neigh: 0, Fdb: 1, Route: 2}           # replace: resolvable before routed
REMOVE_ORDER = {Route: 0, Neigh: 1, Fdb: 2}    # remove: unrouted before unresolved


@dataclass(frozen=True)
class Changes:
    replace: tuple[Entry, ...] = ()     # neighbours, then FDB entries, then routes
    remove: tuple[Entry, ...] = ()      # routes, then neighbours, then FDB entries

    def __bool__(self) -> bool:
        return bool(self.replace or self.remove)


def desired(leases: Iterable[Lease], *, own: netaddr.IPNetwork, backend: str, vni: int) -> frozenset[Entry]:
    """The peers' entries: every lease but ours, of our backend (and VNI, for vxlan)."""
    out: set[Entry] = set()
    for lease in leases:
        if lease.subnet == own or lease.backend != backend:
            continue
        gateway = str(lease.subnet.ip)
        if backend == "vxlan":
            if lease.vtep_mac is None or (lease.vni is not None and lease.vni != vni):
                continue
            mac = lease.vtep_mac.lower()
            out |= {Neigh(gateway, mac), Fdb(mac, str(lease.public_ip)), Route(str(lease.subnet), gateway, True)}
        else:
            out.add(Route(str(lease.subnet), str(lease.public_ip)))
    return frozenset(out)


def diff(current: Iterable[Entry], wanted: Iterable[Entry]) -> Changes:
    have = {entry.key: entry for entry in current}
    want = {entry.key: entry for entry in wanted}
    replace = [entry for key, entry in want.items() if have.get(key) != entry]
    remove = [entry for key, entry in have.items() if key not in want]
    return Changes(replace=tuple(sorted(replace, key=lambda e: (ORDER[type(e)], e.key))),
                   remove=tuple(sorted(remove, key=lambda e: (REMOVE_ORDER[type(e)], e.key))))
