"""The netlink facade against the kernel, only inside throwaway namespaces (root); state checked with `ip -j`."""
from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from common import netlink, netns
from common.ip import ip_address, ip_interface, ip_network
from common.netlink import LinkError, RouteSpec

pytestmark = pytest.mark.root


def ip_json(ns: Any, *args: str) -> Any:
    return json.loads(ns.run("ip", "-j", *args).stdout or b"[]")


@pytest.fixture
def host(host_ns: Any) -> Iterator[netlink.Handle]:
    with netlink.open_in(host_ns.path) as handle:
        yield handle


def make_veth(host: netlink.Handle, pod: Any, *, mac: str = "", mtu: int = 0) -> netlink.Link:
    fd = netns.open_netns(pod.path)
    try:
        host.add_veth("vethtest0", peer="eth0", peer_netns_fd=fd, mtu=mtu, peer_mac=mac)
    finally:
        os.close(fd)
    link = host.link("vethtest0")
    assert link is not None
    return link


def test_handle_is_bound_to_its_namespace(host_ns: Any, host: netlink.Handle) -> None:
    host.add_bridge("br-x", mtu=0, vlan_filtering=False)
    assert [link["ifname"] for link in ip_json(host_ns, "link", "show", "br-x")] == ["br-x"]
    with netlink.open_host() as own:
        assert own.link("br-x") is None


def test_bridge_create_lookup_and_eexist(host_ns: Any, host: netlink.Handle) -> None:
    host.add_bridge("br0", mtu=1400, vlan_filtering=False)
    bridge = host.link("br0")
    assert bridge is not None and bridge.kind == "bridge" and bridge.mtu == 1400 and bridge.master == 0
    assert host.link_by_index(bridge.index) == bridge
    with pytest.raises(LinkError) as info:
        host.add_bridge("br0", mtu=0, vlan_filtering=False)
    assert info.value.errno == errno.EEXIST
    host.set_promisc(bridge.index)
    host.set_mac(bridge.index, "02:aa:bb:cc:dd:ee")
    host.set_up(bridge.index)
    again = host.link("br0")
    assert again is not None and again.promisc and again.mac == "02:aa:bb:cc:dd:ee" and again.flags & 1
    [shown] = ip_json(host_ns, "link", "show", "br0")
    assert shown["address"] == "02:aa:bb:cc:dd:ee" and "PROMISC" in shown["flags"] and "UP" in shown["flags"]


def test_vlan_filtering_bridge_is_created_or_cleanly_refused(host: netlink.Handle) -> None:
    try:
        host.add_bridge("brv", mtu=0, vlan_filtering=True)
    except LinkError as exc:   # kernels without CONFIG_BRIDGE_VLAN_FILTERING
        assert exc.errno == errno.EOPNOTSUPP and host.link("brv") is None
    else:
        assert host.link("brv") is not None


def test_veth_peer_is_created_in_the_other_namespace(host_ns: Any, netns_factory: Callable[[str], Any],
                                                     host: netlink.Handle) -> None:
    pod = netns_factory("pod")
    port = make_veth(host, pod, mac="02:11:22:33:44:55", mtu=1400)
    assert port.kind == "veth" and port.mtu == 1400
    with netlink.open_in(pod.path) as cont:
        inner = cont.link("eth0")
        assert inner is not None and inner.kind == "veth" and inner.mac == "02:11:22:33:44:55" and inner.mtu == 1400
        assert inner.peer == port.index and port.peer == inner.index
        cont.set_up(inner.index)
    [shown] = ip_json(pod, "link", "show", "eth0")
    assert shown["address"] == "02:11:22:33:44:55" and shown["mtu"] == 1400
    assert host.link("eth0") is None


def test_bridge_port_master_hairpin_isolation_and_oper_up(host_ns: Any, netns_factory: Callable[[str], Any],
                                                          host: netlink.Handle) -> None:
    pod = netns_factory("pod")
    host.add_bridge("br0", mtu=0, vlan_filtering=False)
    bridge = host.link("br0")
    port = make_veth(host, pod)
    host.set_master(port.index, bridge.index)
    host.set_bridge_port(port.index, hairpin=True, isolated=True)
    host.set_up(bridge.index)
    host.set_up(port.index)
    pod.run("ip", "link", "set", "eth0", "up")
    assert host.link_by_index(port.index).master == bridge.index
    [shown] = ip_json(host_ns, "-d", "link", "show", port.name)
    slave = shown["linkinfo"]["info_slave_data"]
    assert slave["hairpin"] is True and slave["isolated"] is True
    assert host.wait_oper_up(port.index, timeout=2.0) == "UP"
    host.set_bridge_port(port.index, hairpin=False, isolated=False)
    [shown] = ip_json(host_ns, "-d", "link", "show", port.name)
    assert shown["linkinfo"]["info_slave_data"]["hairpin"] is False
    assert host.vlans(port.index) in ([], [1])   # [1]: default PVID where the kernel filters VLANs
    try:
        host.vlan("add", port.index, 10, pvid_untagged=True)
    except LinkError as exc:   # no CONFIG_BRIDGE_VLAN_FILTERING: a clean EOPNOTSUPP
        assert exc.errno == errno.EOPNOTSUPP
    host.delete_link(port.index)
    assert host.link_by_index(port.index) is None
    assert ip_json(pod, "link", "show", "type", "veth") == []


def test_addresses(host_ns: Any, host: netlink.Handle) -> None:
    host.add_bridge("br0", mtu=0, vlan_filtering=False)
    index = host.link("br0").index
    v4, v6 = ip_interface("10.22.0.1/24"), ip_interface("fd00:22::1/64")
    host.add_address(index, v4)
    host.add_address(index, v6)
    with pytest.raises(LinkError) as info:
        host.add_address(index, v4)
    assert info.value.errno == errno.EEXIST
    assert host.addresses(index, 4) == [(v4, 0)]
    assert (v6, 0) in host.addresses(index, 6) and (v4, 0) in host.addresses(index)
    [shown] = ip_json(host_ns, "addr", "show", "br0")
    assert {(a["local"], a["prefixlen"]) for a in shown["addr_info"]} >= {("10.22.0.1", 24), ("fd00:22::1", 64)}
    host.delete_address(index, v4)
    assert host.addresses(index, 4) == []
    with pytest.raises(LinkError) as info:
        host.delete_address(index, v4)
    assert info.value.errno == errno.EADDRNOTAVAIL


def test_routes(host_ns: Any, host: netlink.Handle) -> None:
    host.add_bridge("br0", mtu=0, vlan_filtering=False)
    index = host.link("br0").index
    host.set_up(index)
    host.add_address(index, ip_interface("10.22.0.1/24"))
    gw = ip_address("10.22.0.254")
    host.add_route(index, RouteSpec(dst=ip_network("0.0.0.0/0"), gateway=gw))
    host.add_route(index, RouteSpec(dst=ip_network("10.9.0.0/16"), priority=7))
    host.add_route(index, RouteSpec(dst=ip_network("10.8.0.0/16"), gateway=gw, table=1000))
    host.add_route(index, RouteSpec(dst=ip_network("10.7.0.0/16"), scope=253))
    host.add_route(index, RouteSpec(dst=ip_network("fd01::/64")))
    with pytest.raises(LinkError) as info:
        host.add_route(index, RouteSpec(dst=ip_network("0.0.0.0/0"), gateway=gw))
    assert info.value.errno == errno.EEXIST
    routes = {(r.dst, r.gateway, r.oif) for r in host.routes(4)}
    assert routes == {(ip_network("0.0.0.0/0"), gw, index),
                      (ip_network("10.22.0.0/24"), None, index),
                      (ip_network("10.9.0.0/16"), None, index),
                      (ip_network("10.7.0.0/16"), None, index)}
    assert (ip_network("fd01::/64"), None, index) in {(r.dst, r.gateway, r.oif) for r in host.routes(6)}
    [table] = ip_json(host_ns, "route", "show", "table", "1000")
    assert table["dst"] == "10.8.0.0/16" and table["gateway"] == "10.22.0.254"
    [metric] = ip_json(host_ns, "route", "show", "10.9.0.0/16")
    assert metric["metric"] == 7 and metric.get("protocol", "boot") == "boot"   # ip omits the default "boot"
    [link_scope] = ip_json(host_ns, "route", "show", "10.7.0.0/16")
    assert link_scope["scope"] == "link"


def test_missing_links_and_namespaces(tmp_path: Any, host: netlink.Handle) -> None:
    assert host.link("nope") is None
    assert host.link_by_index(99999) is None
    with pytest.raises(LinkError) as info:
        host.delete_link(99999)
    assert info.value.errno == errno.ENODEV and "ENODEV" in info.value.msg
    with pytest.raises(LinkError) as info:
        host.set_up(99999)
    assert info.value.errno == errno.ENODEV
    gone = str(tmp_path / "gone")
    with pytest.raises(netns.NetnsGone):
        netlink.open_in(gone)
    assert not os.path.exists(gone)


@pytest.mark.parametrize("address, broadcast", [
    ("10.22.0.1/24", "10.22.0.255"), ("10.22.7.9/16", "10.22.255.255"), ("10.22.0.1/30", "10.22.0.3"),
    ("10.22.0.0/31", None), ("10.22.0.1/32", None),   # RFC 3021: no broadcast, as Go's netlink.AddrAdd
])
def test_ipv4_addresses_get_the_subnet_broadcast_as_go_sets_it(host_ns: Any, host: netlink.Handle,
                                                                address: str, broadcast: str | None) -> None:
    host.add_bridge("br0", mtu=0, vlan_filtering=False)
    host.add_address(host.link("br0").index, ip_interface(address))
    [shown] = ip_json(host_ns, "addr", "show", "br0")
    [entry] = [a for a in shown["addr_info"] if a["family"] == "inet"]
    assert entry.get("broadcast") == broadcast
