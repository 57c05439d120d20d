"""Host-side link steps: the bridge, the veth pair, bridge ports, and gateway addresses on the bridge."""
from __future__ import annotations

import errno
import os

from common import netns, sysctl
from common.config import IPInterface
from common.errors import CniError, Code
from common.netlink import Handle, Link, LinkError
from common.record import record

from .config import BridgeConf

VETH_ATTEMPTS = 10


def ensure_bridge(host: Handle, conf: BridgeConf) -> Link:
    """Create the bridge or reuse it; a racing ADD creating it at the same time is fine (EEXIST)."""
    try:
        host.add_bridge(conf.bridge, mtu=conf.mtu, vlan_filtering=conf.vlan_filtering)
    except LinkError as exc:
        if exc.errno != errno.EEXIST:
            raise CniError(Code.INTERNAL, f"failed to create bridge {conf.bridge!r}: {exc.msg}") from None
    bridge = host.link(conf.bridge)
    if bridge is None:
        raise CniError(Code.INTERNAL, f"bridge {conf.bridge!r} vanished while being set up")
    if bridge.kind != "bridge":
        raise CniError(Code.INTERNAL, f"{conf.bridge!r} already exists but is not a bridge "
                       f"(link type {bridge.kind or 'device'})")
    if conf.promisc_mode and not bridge.promisc:
        host.set_promisc(bridge.index)
    sysctl.try_write(f"net/ipv6/conf/{conf.bridge}/accept_ra", "0")  # we own this interface's routes
    host.set_up(bridge.index)
    return bridge


def random_veth_name() -> str:
    return f"veth{int.from_bytes(os.urandom(4), 'big'):08x}"


def create_veth(host: Handle, *, peer: str, peer_netns: str, mtu: int, mac: str) -> Link:
    """A veth pair: host end `veth<8 hex>` here, `peer` created directly inside `peer_netns` (one request,
    no move). Retries on a host-name clash, as the reference does."""
    fd = netns.open_netns(peer_netns)
    try:
        for _ in range(VETH_ATTEMPTS):
            name = random_veth_name()
            try:
                host.add_veth(name, peer=peer, peer_netns_fd=fd, mtu=mtu, peer_mac=mac)
            except LinkError as exc:
                if exc.errno == errno.EEXIST and host.link(name) is not None:
                    continue
                raise CniError(Code.INTERNAL, f"failed to create veth pair for {peer!r}: {exc.msg}") from None
            link = host.link(name)
            if link is not None:
                return link
        raise CniError(Code.INTERNAL, f"failed to find a free host veth name in {VETH_ATTEMPTS} attempts")
    finally:
        os.close(fd)


@record(frozen=True)
class PortOptions:
    hairpin: bool = False
    isolated: bool = False
    vlan: int = 0                       # access VLAN (PVID, untagged)
    trunk: tuple[int, ...] = ()         # tagged VLANs
    preserve_default_vlan: bool = False


def attach_port(host: Handle, port: Link, bridge: Link, options: PortOptions) -> None:
    """Master, hairpin/isolation and VLANs of a host veth, then up."""
    host.set_master(port.index, bridge.index)
    if options.hairpin or options.isolated:
        host.set_bridge_port(port.index, hairpin=options.hairpin, isolated=options.isolated)
    if (options.vlan or options.trunk) and not options.preserve_default_vlan:
        for vid in host.vlans(port.index):
            host.vlan("del", port.index, vid)
    if options.vlan:
        host.vlan("add", port.index, options.vlan, pvid_untagged=True)
    for vid in options.trunk:
        host.vlan("add", port.index, vid)
    sysctl.try_write(f"net/ipv6/conf/{port.name}/accept_ra", "0")
    host.set_up(port.index)


def port_options(conf: BridgeConf) -> PortOptions:
    return PortOptions(hairpin=conf.hairpin_mode, isolated=conf.port_isolation, vlan=conf.vlan,
                       trunk=conf.vlan_trunk, preserve_default_vlan=conf.preserve_default_vlan)


def ensure_address(host: Handle, link: Link, address: IPInterface, *, force: bool) -> None:
    """Put the gateway address on the bridge (or vlan gateway). Another IPv4 address, or an overlapping
    IPv6 one, is an error unless forceAddress; a concurrent ADD adding the same address is fine (EEXIST)."""
    for current, _scope in host.addresses(link.index, address.version):
        if current == address:
            return
        if address.version == 4 or address.ip in current.network or current.ip in address.network:
            if not force:
                raise CniError(Code.INTERNAL, f"{link.name!r} already has an IP address different from "
                               f"{address}")
            host.delete_address(link.index, current)
    try:
        host.add_address(link.index, address)
    except LinkError as exc:
        if exc.errno != errno.EEXIST:
            raise CniError(Code.INTERNAL, f"could not add IP address to {link.name!r}: {exc.msg}") from None
    # Pin the MAC: otherwise a bridge takes the lowest port MAC and changes as ports come and go (cni#285).
    host.set_mac(link.index, link.mac)


def ensure_vlan_gateway(host: Handle, conf: BridgeConf, bridge: Link) -> Link:
    """`<bridge>.<vlan>`: a veth in the host namespace whose peer is an access port of the VLAN, carrying
    the gateway addresses when `vlan` and `isGateway` are set (reference ensureVlanInterface)."""
    name = f"{conf.bridge}.{conf.vlan}"
    existing = host.link(name)
    if existing is not None:
        return existing
    port = create_veth(host, peer=name, peer_netns="/proc/thread-self/ns/net", mtu=bridge.mtu, mac="")
    attach_port(host, port, bridge, PortOptions(vlan=conf.vlan, preserve_default_vlan=conf.preserve_default_vlan))
    gateway = host.link(name)
    if gateway is None:
        raise CniError(Code.INTERNAL, f"vlan gateway {name!r} vanished while being set up")
    host.set_up(gateway.index)
    return gateway


def enable_forwarding(family: int) -> None:
    key = "net/ipv4/ip_forward" if family == 4 else "net/ipv6/conf/all/forwarding"
    sysctl.ensure(key, "1")
