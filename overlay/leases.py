"""Subnet leases in flannel's layout, and the choice of this node's subnet (pure).

    <prefix>/subnets/10.244.1.0-24  ->  {"PublicIP": "192.0.2.21", "PublicIPv6": null, "BackendType": "vxlan",
                                         "BackendData": {"VNI": 1, "VtepMAC": "0e:76:c0:00:02:15"}}

The key is bound to an etcd lease of --lease-ttl seconds: when a node stops renewing, etcd deletes the key and
every peer's watch sees it go. A flanneld node and ours can share a prefix.
"""
from __future__ import annotations

import json
import random
from collections.abc import Iterable
from dataclasses import dataclass

import netaddr

from .netconfig import NetworkConfig


class NoFreeSubnet(Exception):
    """Every subnet SubnetMin..SubnetMax is leased (exit status 2)."""


@dataclass(frozen=True)
class Lease:
    subnet: netaddr.IPNetwork
    public_ip: netaddr.IPAddress
    backend: str
    vtep_mac: str | None = None       # vxlan only
    vni: int | None = None
    etcd_lease: int = 0               # the etcd lease the key is bound to (0: none)
    mod_revision: int = 0             # of the key: a Txn on it proves nobody changed it meanwhile


def key_of(prefix: str, subnet: netaddr.IPNetwork) -> str:
    return f"{prefix}/subnets/{subnet.ip}-{subnet.prefixlen}"


def subnet_of(key: str) -> netaddr.IPNetwork | None:
    """10.244.1.0-24 (the last path element) -> 10.244.1.0/24; None for a key that is no lease."""
    address, sep, length = key.rsplit("/", 1)[-1].partition("-")
    try:
        subnet = netaddr.IPNetwork(f"{address}/{length}") if sep and length.isdigit() else None
    except (netaddr.AddrFormatError, ValueError):
        return None
    return subnet if subnet is not None and subnet.version == 4 and subnet.ip == subnet.network else None


def encode(lease: Lease) -> str:
    data = None if lease.backend != "vxlan" else {"VNI": lease.vni, "VtepMAC": lease.vtep_mac}
    return json.dumps({"PublicIP": str(lease.public_ip), "PublicIPv6": None, "BackendType": lease.backend,
                       "BackendData": data}, separators=(",", ":"))


def decode(key: str, value: bytes, *, etcd_lease: int = 0, mod_revision: int = 0) -> Lease | None:
    """A peer's lease, or None when the key or value is unusable (logged by the caller, never fatal)."""
    subnet = subnet_of(key)
    try:
        data = json.loads(value)
        public_ip = netaddr.IPAddress(data["PublicIP"], version=4)
        backend = data.get("BackendType") or "vxlan"
        extra = data.get("BackendData") or {}
        mac = extra.get("VtepMAC") if isinstance(extra, dict) else None
        vni = extra.get("VNI") if isinstance(extra, dict) else None
    except (ValueError, KeyError, TypeError, AttributeError, netaddr.AddrFormatError):
        return None
    if subnet is None or not isinstance(backend, str) or (mac is not None and not _is_mac(mac)):
        return None
    return Lease(subnet=subnet, public_ip=public_ip, backend=backend, vtep_mac=mac,
                 vni=vni if isinstance(vni, int) else None, etcd_lease=etcd_lease, mod_revision=mod_revision)


def choose_subnet(config: NetworkConfig, leases: Iterable[Lease], *, public_ip: netaddr.IPAddress,
                  previous: netaddr.IPNetwork | None, rng: random.Random,
                  previous_lease: int = 0) -> tuple[netaddr.IPNetwork, Lease | None]:
    """flannel's order: our own lease (same PublicIP) -> the subnet we had before (saved in subnet.env) if it is
    free, or still bound to the etcd lease we saved with it (ours, under an old PublicIP: the node's address
    changed) -> a random free one. Returns the subnet and, when reusing, our existing lease."""
    taken = {lease.subnet: lease for lease in leases}
    for lease in taken.values():
        if lease.public_ip == public_ip and config.allows(lease.subnet):
            return lease.subnet, lease
    if previous is not None and config.allows(previous):
        held = taken.get(previous)
        if held is None:
            return previous, None
        if previous_lease and held.etcd_lease == previous_lease:
            return previous, held
    free = [subnet for subnet in config.candidates() if subnet not in taken]
    if not free:
        raise NoFreeSubnet(f"no free /{config.subnet_len} left in {config.network} "
                           f"({config.subnet_min}..{config.subnet_max}): {len(taken)} leased")
    return rng.choice(free), None


def vtep_mac(public_ip: netaddr.IPAddress) -> str:
    """A stable VTEP MAC from the public IP (locally administered 0e:76 + the 4 bytes), so a recreated device
    or a restarted node keeps the MAC its peers have programmed."""
    return "0e:76:" + ":".join(f"{byte:02x}" for byte in public_ip.packed)


def _is_mac(text: object) -> bool:
    return isinstance(text, str) and netaddr.valid_mac(text) and len(text) == 17
