"""The cluster config at <prefix>/config: flannel's JSON, parsed into a value (pure).

    {"Network": "10.244.0.0/16", "SubnetLen": 24, "SubnetMin": "10.244.1.0", "SubnetMax": "10.244.254.0",
     "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}        or  "Backend": {"Type": "host-gw"}
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import netaddr

BACKENDS = ("vxlan", "host-gw")
DEFAULT_VXLAN_PORT = 8472      # flannel's (Linux's historic) port, not IANA's 4789: interop with flanneld
VXLAN_OVERHEAD = 50            # outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14


class ConfigError(ValueError):
    """The cluster config cannot be used (exit status 2: fixing it needs an operator)."""


@dataclass(frozen=True)
class NetworkConfig:
    network: netaddr.IPNetwork
    subnet_len: int
    subnet_min: netaddr.IPAddress
    subnet_max: netaddr.IPAddress
    backend: str
    vni: int = 1
    port: int = DEFAULT_VXLAN_PORT

    def subnet_at(self, first: netaddr.IPAddress) -> netaddr.IPNetwork:
        return netaddr.IPNetwork(f"{first}/{self.subnet_len}")

    def candidates(self) -> list[netaddr.IPNetwork]:
        """Every subnet the config allows, SubnetMin..SubnetMax."""
        size = 1 << (32 - self.subnet_len)
        return [self.subnet_at(netaddr.IPAddress(value))
                for value in range(int(self.subnet_min), int(self.subnet_max) + 1, size)]

    def allows(self, subnet: netaddr.IPNetwork) -> bool:
        return (subnet.prefixlen == self.subnet_len and subnet.network == subnet.ip
                and self.subnet_min <= subnet.ip <= self.subnet_max)


def parse(text: str | bytes) -> NetworkConfig:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"config is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config must be a JSON object, got {type(data).__name__}")
    network = _network(data.get("Network"))
    subnet_len = data.get("SubnetLen", 24 if network.prefixlen < 24 else network.prefixlen + 1)
    if type(subnet_len) is not int or not network.prefixlen < subnet_len <= 30:
        raise ConfigError(f"SubnetLen must be an integer in {network.prefixlen + 1}..30, got {subnet_len!r}")
    size = 1 << (32 - subnet_len)
    # flannel's defaults: skip the first subnet (its .0 network address would be a node's gateway), up to the last
    subnet_min = _address(data, "SubnetMin", netaddr.IPAddress(int(network.first) + size), network)
    subnet_max = _address(data, "SubnetMax", netaddr.IPAddress(int(network.last) + 1 - size), network)
    if subnet_min > subnet_max:
        raise ConfigError(f"SubnetMin {subnet_min} is above SubnetMax {subnet_max}")
    backend = data.get("Backend") or {"Type": "vxlan"}
    if not isinstance(backend, dict):
        raise ConfigError(f"Backend must be an object, got {backend!r}")
    kind = backend.get("Type", "vxlan")
    if kind not in BACKENDS:
        raise ConfigError(f"Backend.Type {kind!r} is not supported: expected one of {', '.join(BACKENDS)}")
    vni = _integer(backend, "VNI", 1, 0, (1 << 24) - 1)
    port = _integer(backend, "Port", DEFAULT_VXLAN_PORT, 1, 65535)
    return NetworkConfig(network=network, subnet_len=subnet_len, subnet_min=subnet_min, subnet_max=subnet_max,
                         backend=kind, vni=vni, port=port)


def _network(value: object) -> netaddr.IPNetwork:
    if not isinstance(value, str):
        raise ConfigError(f"Network must be an IPv4 CIDR string, got {value!r}")
    try:
        network = netaddr.IPNetwork(value)
    except (netaddr.AddrFormatError, ValueError):
        raise ConfigError(f"Network is not a CIDR: {value!r}") from None
    if network.version != 4 or network.ip != network.network:
        raise ConfigError(f"Network must be an IPv4 network address with its length, got {value!r}")
    return network


def _address(data: dict[str, object], key: str, default: netaddr.IPAddress,
             network: netaddr.IPNetwork) -> netaddr.IPAddress:
    value = data.get(key)
    if value is None:
        return default
    try:
        address = netaddr.IPAddress(str(value), version=4)
    except (netaddr.AddrFormatError, ValueError):
        raise ConfigError(f"{key} is not an IPv4 address: {value!r}") from None
    if address not in network:
        raise ConfigError(f"{key} {address} is outside Network {network}")
    return address


def _integer(data: dict[str, object], key: str, default: int, low: int, high: int) -> int:
    value = data.get(key, default)
    if type(value) is not int or not low <= value <= high:
        raise ConfigError(f"Backend.{key} must be an integer in {low}..{high}, got {value!r}")
    return value
