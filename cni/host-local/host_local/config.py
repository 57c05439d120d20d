"""host-local's configuration, parsed once into frozen values; every error names the key path and the value.

Effective range sets, in the reference's order: `runtimeConfig.ipRanges`, then the legacy top-level range
(`ipam.subnet`, ...), then `ipam.ranges`. Their index in this list names `last_reserved_ip.<index>`.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from common import version as versions
from common.config import IPAddress, IPNetwork, NetConf, Node, describe, ip, ip_or_cidr, network
from common.errors import ConfigError
from common.record import record
from common.result import parse_route
from common.types import Route

DEFAULT_DATA_DIR = "/var/lib/cni/networks"


def canonical(addr: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 (::ffff:10.0.0.1) is the IPv4 address, as Go's To4() makes it."""
    return addr.ipv4_mapped or addr


@record(frozen=True)
class Range:
    subnet: IPNetwork
    start: IPAddress        # inclusive
    end: IPAddress          # inclusive
    gateway: IPAddress      # never allocated

    def contains(self, addr: IPAddress) -> bool:
        return addr.version == self.start.version and int(self.start) <= int(addr) <= int(self.end)

    def size(self) -> int:
        """Allocatable addresses: the span minus the gateway when it lies inside."""
        return int(self.end) - int(self.start) + 1 - (1 if self.contains(self.gateway) else 0)

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


@record(frozen=True)
class RangeSet:
    ranges: tuple[Range, ...]
    path: str               # where it was configured, for messages

    @property
    def version(self) -> int:
        return self.ranges[0].start.version

    def range_for(self, addr: IPAddress) -> Range | None:
        return next((r for r in self.ranges if r.contains(addr)), None)

    def contains(self, addr: IPAddress) -> bool:
        return self.range_for(addr) is not None

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.ranges)


@record(frozen=True)
class IpamConfig:
    name: str
    cni_version: str
    range_sets: tuple[RangeSet, ...]
    routes: tuple[Route, ...]
    data_dir: str
    resolv_conf: str
    requested: tuple[IPAddress, ...]    # CNI_ARGS IP, args.cni.ips, runtimeConfig.ips (concatenated, deduplicated)


def teardown_data_dir(conf: NetConf) -> str:
    """The one key DEL and GC need (the network name is the config's). Read leniently: a config that ADD refuses
    (a Go plugin may have ADDed it: a gateway outside the subnet, a malformed range) must still be DELed, and a
    dataDir that is no string falls back to the default, as it could never have been used."""
    ipam = conf.node.get("ipam")
    data_dir = Node(ipam, "ipam").get("dataDir") if isinstance(ipam, dict) else None
    return data_dir if isinstance(data_dir, str) and data_dir else DEFAULT_DATA_DIR


def load(conf: NetConf, cni_args: dict[str, str]) -> IpamConfig:
    ipam = conf.node.obj("ipam", required=True)
    assert ipam is not None
    range_sets = _range_sets(conf, ipam)
    _check_families_for_version(range_sets, conf.cni_version)
    _check_no_overlap(range_sets)
    return IpamConfig(
        name=conf.name, cni_version=conf.cni_version, range_sets=range_sets,
        routes=tuple(parse_route(n) for n in ipam.objects("routes")),
        data_dir=ipam.string("dataDir", "") or DEFAULT_DATA_DIR,
        resolv_conf=ipam.string("resolvConf", "") or "",
        requested=_requested_ips(conf, cni_args),
    )


# --- ranges ---------------------------------------------------------------------------------------------

def _range_sets(conf: NetConf, ipam: Node) -> tuple[RangeSet, ...]:
    sets = [_range_set(value, path) for path, value in conf.runtime_config.items("ipRanges")]
    if ipam.has("subnet"):
        sets.append(RangeSet(ranges=(parse_range(ipam),), path="ipam"))
    sets.extend(_range_set(value, path) for path, value in ipam.items("ranges"))
    if not sets:
        raise ConfigError("no IP ranges specified: set ipam.ranges (or ipam.subnet)")
    return tuple(sets)


def _range_set(value: Any, path: str) -> RangeSet:
    if not isinstance(value, list):
        raise ConfigError(f"expected a list of ranges at {path}, got {describe(value)}")
    if not value:
        raise ConfigError(f"empty range set at {path}")
    ranges = tuple(parse_range(Node(item, f"{path}[{i}]")) for i, item in enumerate(value))
    for i, r in enumerate(ranges[1:], start=1):
        if r.start.version != ranges[0].start.version:
            raise ConfigError(f"mixed address families in range set at {path}: {ranges[0].subnet} and "
                              f"{r.subnet} at {path}[{i}]")
    for i, first in enumerate(ranges):
        for second in ranges[i + 1:]:
            if _overlap(first, second):
                raise ConfigError(f"ranges {first} and {second} overlap in range set at {path}")
    return RangeSet(ranges=ranges, path=path)


def parse_range(node: Node) -> Range:
    subnet = node.required("subnet", network)
    mapped = subnet.network_address.ipv4_mapped
    if mapped is not None:   # Go refuses it too ("IPNet IP and Mask version mismatch"); it would hand out IPv6
        hint = f" ({mapped}/{subnet.prefixlen - 96})" if subnet.prefixlen >= 96 else ""
        raise ConfigError(f"invalid subnet {describe(node.get('subnet'))} at {node.at('subnet')}: an IPv4-mapped IPv6 "
                          f"subnet; write the IPv4 subnet{hint}")
    if subnet.prefixlen > subnet.max_prefixlen - 2:
        raise ConfigError(f"subnet {describe(str(subnet))} at {node.at('subnet')} is too small to allocate from "
                          f"(at most /{subnet.max_prefixlen - 2})")
    first_host = subnet.network_address + 1
    last = subnet.broadcast_address - 1 if subnet.version == 4 else subnet.broadcast_address
    gateway = _address_in(node, "gateway", subnet) or first_host
    start = _address_in(node, "rangeStart", subnet) or first_host
    end = _address_in(node, "rangeEnd", subnet) or last
    if int(end) < int(start):     # same family: _address_in checked it
        raise ConfigError(f"rangeEnd {describe(str(end))} at {node.at('rangeEnd')} is before rangeStart {start}")
    return Range(subnet=subnet, start=start, end=end, gateway=gateway)


def _address_in(node: Node, key: str, subnet: IPNetwork) -> IPAddress | None:
    addr = node.parsed(key, ip)
    if addr is None:
        return None
    addr = canonical(addr)
    if addr.version != subnet.version:
        raise ConfigError(f"{key} {describe(str(addr))} at {node.at(key)} is not an IPv{subnet.version} address "
                          f"like subnet {subnet}")
    if addr not in subnet:
        raise ConfigError(f"{key} {describe(str(addr))} at {node.at(key)} is not in subnet {subnet}")
    return addr


def _overlap(a: Range, b: Range) -> bool:
    return a.start.version == b.start.version and int(a.start) <= int(b.end) and int(b.start) <= int(a.end)


def _check_no_overlap(sets: tuple[RangeSet, ...]) -> None:
    for i, first in enumerate(sets):
        for j in range(i + 1, len(sets)):
            second = sets[j]
            if any(_overlap(a, b) for a in first.ranges for b in second.ranges):
                raise ConfigError(f"range set {i} ({first} at {first.path}) overlaps with range set {j} "
                                  f"({second} at {second.path})")


def _check_families_for_version(sets: tuple[RangeSet, ...], cni_version: str) -> None:
    """Results before 0.3.0 hold one IPv4 and one IPv6 address at most (as the reference checks)."""
    per_family = [sum(1 for s in sets if s.version == v) for v in (4, 6)]
    if max(per_family) > 1 and not versions.at_least(cni_version, "0.3.0"):
        raise ConfigError(f"cniVersion {describe(cni_version)} does not support more than 1 address per family "
                          f"({len(sets)} range sets configured; use cniVersion >= 0.3.0)")


# --- routes and requested addresses ---------------------------------------------------------------------

def _requested_ips(conf: NetConf, cni_args: dict[str, str]) -> tuple[IPAddress, ...]:
    found: list[IPAddress] = []
    if cni_args.get("IP"):
        found.append(ip_or_cidr(cni_args["IP"], "CNI_ARGS IP"))
    found.extend(ip_or_cidr(v, p) for p, v in conf.cni_args.items("ips"))
    found.extend(ip_or_cidr(v, p) for p, v in conf.runtime_config.items("ips"))
    return tuple(dict.fromkeys(canonical(a) for a in found))
