"""The bridge plugin as a process inside a throwaway "host" namespace, with pod namespaces from netns_factory.

IPAM is the Go host-local from /usr/lib/cni (dataDir in tmp_path). Reference comparisons run
/usr/lib/cni/bridge (Debian 1.1.1) in a second host namespace for the same network name and container ID.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from support import GO_BIN, Caller, Netns, allocations, bridge_conf, links, nat_rules, ok, source_argv

pytestmark = pytest.mark.root
# Our bridge from the source tree, and Debian's Go bridge; both with the Go host-local as IPAM.
our_bridge = Caller(source_argv("bridge"), cid="abc123", cni_path=GO_BIN)
go_bridge = Caller([GO_BIN / "bridge"], cid="abc123", cni_path=GO_BIN)
netconf = partial(bridge_conf, name="mynet", bridge="cni0", subnet="10.22.0.0/24")
NETWORK = "mynet"


def cni_lines(ns: Netns) -> list[str]:
    return [line for line in nat_rules(ns).splitlines() if "CNI-" in line]


def nft(ns: Netns, what: str) -> str:
    return ns.run("nft", "list", *what.split(), check=False).stdout.decode()


@pytest.fixture
def pod(netns_factory: Callable[[str], Any]) -> Any:
    return netns_factory("pod")


# --- ADD / CHECK / DEL --------------------------------------------------------------------------------------

def test_dual_stack_add_check_del(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    conf = netconf(tmp_path, isDefaultGateway=True,
                   ranges=[[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]])
    result = ok(our_bridge("ADD", conf, netns=pod.path, inside=host_ns))
    bridge, veth, eth0 = result["interfaces"]
    assert bridge["name"] == "cni0" and veth["name"].startswith("veth") and len(veth["name"]) == 12
    assert eth0 == {"name": "eth0", "mac": eth0["mac"], "sandbox": pod.path}
    assert result["ips"] == [{"interface": 2, "address": "10.22.0.2/24", "gateway": "10.22.0.1"},
                             {"interface": 2, "address": "fd00:22::2/64", "gateway": "fd00:22::1"}]
    assert result["routes"] == [{"dst": "0.0.0.0/0", "gw": "10.22.0.1"}, {"dst": "::/0", "gw": "fd00:22::1"}]
    assert "inet 10.22.0.1/24" in host_ns.sh("ip addr show cni0")
    assert "inet6 fd00:22::1/64" in host_ns.sh("ip addr show cni0")
    assert host_ns.sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding") == "1\n1\n"
    assert "default via 10.22.0.1 dev eth0" in pod.sh("ip route")
    assert "default via fd00:22::1 dev eth0" in pod.sh("ip -6 route")
    assert pod.sh("cat /proc/sys/net/ipv6/conf/eth0/accept_dad") == "0\n"
    assert "tentative" not in pod.sh("ip -6 addr show eth0")
    ok(our_bridge("CHECK", {**conf, "prevResult": result}, netns=pod.path, inside=host_ns))
    ok(our_bridge("DEL", {**conf, "prevResult": result}, netns=pod.path, inside=host_ns))
    assert links(pod) == ["lo"] and veth["name"] not in links(host_ns)
    assert allocations(tmp_path, NETWORK) == []
    ok(our_bridge("DEL", {**conf, "prevResult": result}, netns=pod.path, inside=host_ns))     # idempotent
    assert "cni0" in links(host_ns)                                              # the bridge is kept


def test_check_names_what_is_missing(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    conf = netconf(tmp_path, isGateway=True, ipMasq=True)
    result = ok(our_bridge("ADD", conf, netns=pod.path, inside=host_ns))
    with_prev = {**conf, "prevResult": result}
    host_ns.sh("iptables -t nat -F POSTROUTING")
    failed = our_bridge("CHECK", with_prev, netns=pod.path, inside=host_ns)
    assert failed.status == 1 and "masquerade rules missing" in failed.out["msg"]
    assert "-A POSTROUTING -s 10.22.0.2/32" in failed.out["msg"]
    pod.sh("ip addr flush dev eth0")
    failed = our_bridge("CHECK", with_prev, netns=pod.path, inside=host_ns)
    assert failed.out["msg"] == "address 10.22.0.2/24 not found on 'eth0'"
    pod.sh("ip link del eth0")
    failed = our_bridge("CHECK", with_prev, netns=pod.path, inside=host_ns)
    assert failed.out["msg"] == f"CNI created interface 'eth0' in container {pod.path} not found"


def test_connectivity_between_pods_and_from_host(host_ns: Any, netns_factory: Callable[[str], Any],
                                                 tmp_path: Path) -> None:
    conf = netconf(tmp_path, isGateway=True)
    pods = [netns_factory("pod") for _ in range(2)]
    ips = [ok(our_bridge("ADD", conf, netns=p.path, cid=f"c{i}", inside=host_ns))["ips"][0]["address"].split("/")[0]
           for i, p in enumerate(pods)]
    pods[0].run("ping", "-c1", "-W2", ips[1])
    pods[1].run("ping", "-c1", "-W2", ips[0])
    host_ns.run("ping", "-c1", "-W2", ips[0])
    pods[0].run("ping", "-c1", "-W2", "10.22.0.1")


# --- options ------------------------------------------------------------------------------------------------

def test_mtu_mac_hairpin_isolation(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    conf = netconf(tmp_path, mtu=1400, hairpinMode=True, portIsolation=True,
                   runtimeConfig={"mac": "0a:58:0a:16:00:99"}, args={"cni": {"mac": "0a:58:0a:16:00:98"}})
    result = ok(our_bridge("ADD", conf, netns=pod.path, args="IgnoreUnknown=1;MAC=0a:58:0a:16:00:97", inside=host_ns))
    veth = result["interfaces"][1]["name"]
    assert result["interfaces"][2]["mac"] == "0a:58:0a:16:00:99"
    assert "link/ether 0a:58:0a:16:00:99" in pod.sh("ip link show eth0")
    assert "mtu 1400" in pod.sh("ip link show eth0") and "mtu 1400" in host_ns.sh(f"ip link show {veth}")
    assert "mtu 1400" in host_ns.sh("ip link show cni0")
    detail = host_ns.sh(f"ip -d link show {veth}")
    assert "hairpin on" in detail and "isolated on" in detail and "master cni0" in detail


def test_defaults_leave_hairpin_and_isolation_off(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    veth = ok(our_bridge("ADD", netconf(tmp_path), netns=pod.path, inside=host_ns))["interfaces"][1]["name"]
    detail = host_ns.sh(f"ip -d link show {veth}")
    assert "hairpin off" in detail and "isolated off" in detail
    assert "inet " not in host_ns.sh("ip addr show cni0")        # no isGateway: no address on the bridge


def test_promisc_mode(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    ok(our_bridge("ADD", netconf(tmp_path, promiscMode=True), netns=pod.path, inside=host_ns))
    assert "PROMISC" in host_ns.sh("ip link show cni0")


def test_hairpin_and_promisc_is_a_config_error(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    failed = our_bridge("ADD", netconf(tmp_path, hairpinMode=True, promiscMode=True), netns=pod.path, inside=host_ns)
    assert failed.status == 1 and failed.out["code"] == 7
    assert links(host_ns) == ["lo"]


def test_enabledad(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    ok(our_bridge("ADD", netconf(tmp_path, enabledad=True, ranges=[[{"subnet": "fd00:22::/64"}]]),
           netns=pod.path, inside=host_ns))
    assert pod.sh("cat /proc/sys/net/ipv6/conf/eth0/accept_dad") == "1\n"


def test_layer2_only_and_disabled_container_interface(host_ns: Any, netns_factory: Callable[[str], Any],
                                                       tmp_path: Path) -> None:
    l2 = {"cniVersion": "1.0.0", "name": "l2net", "type": "bridge", "bridge": "br-l2"}
    up, down = netns_factory("pod"), netns_factory("pod")
    result = ok(our_bridge("ADD", l2, netns=up.path, inside=host_ns))
    assert "ips" not in result and len(result["interfaces"]) == 3
    assert "state UP" in up.sh("ip link show eth0") and "inet " not in up.sh("ip addr show eth0")
    ok(our_bridge("ADD", {**l2, "disableContainerInterface": True}, netns=down.path, cid="c2", inside=host_ns))
    assert "state DOWN" in down.sh("ip link show eth0")


def test_force_address_replaces_a_different_bridge_address(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    host_ns.sh("ip link add cni0 type bridge && ip addr add 10.99.0.1/24 dev cni0")
    ok(our_bridge("ADD", netconf(tmp_path, isGateway=True, forceAddress=True), netns=pod.path, inside=host_ns))
    addrs = host_ns.sh("ip -4 addr show cni0")
    assert "10.22.0.1/24" in addrs and "10.99.0.1" not in addrs


def test_existing_non_bridge_link_is_an_error(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    host_ns.sh("ip link add cni0 type veth peer name cni0-peer")
    failed = our_bridge("ADD", netconf(tmp_path), netns=pod.path, inside=host_ns)
    assert failed.out["msg"] == "'cni0' already exists but is not a bridge (link type veth)"
    assert links(pod) == ["lo"] and allocations(tmp_path, NETWORK) == []


def test_vlan_without_kernel_support_fails_cleanly(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    """This machine's kernel lacks CONFIG_BRIDGE_VLAN_FILTERING (the Go plugin fails here too)."""
    supported = host_ns.run("ip", "link", "add", "probe0", "type", "bridge", "vlan_filtering", "1", check=False)
    if supported.returncode == 0:
        pytest.skip("kernel supports VLAN filtering; this test covers the unsupported case")
    failed = our_bridge("ADD", netconf(tmp_path, vlan=10, isGateway=True), netns=pod.path, inside=host_ns)
    assert failed.status == 1 and "failed to create bridge 'cni0'" in failed.out["msg"]
    assert links(pod) == ["lo"] and allocations(tmp_path, NETWORK) == []


# --- masquerade: reference state, both backends, DEL without a netns ------------------------------------------

def test_iptables_masq_matches_the_go_plugin_byte_for_byte(netns_factory: Callable[[str], Any],
                                                            tmp_path: Path) -> None:
    states = []
    for plugin, name in ((our_bridge, "ours"), (go_bridge, "go")):
        host, pod = netns_factory("host"), netns_factory("pod")
        conf = netconf(tmp_path / name, ipMasq=True, isGateway=True,
                       ranges=[[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]])
        ok(plugin("ADD", conf, netns=pod.path, inside=host))
        states.append(nat_rules(host))
    assert states[0] == states[1]
    assert "-A POSTROUTING -s 10.22.0.2/32 -m comment --comment" in states[0]


def test_go_plugin_deletes_our_rules_and_we_delete_its_rules(host_ns: Any, netns_factory: Callable[[str], Any],
                                                             tmp_path: Path) -> None:
    conf = netconf(tmp_path, ipMasq=True, isGateway=True)
    ours, theirs = netns_factory("pod"), netns_factory("pod")
    ok(our_bridge("ADD", conf, netns=ours.path, cid="ours", inside=host_ns))
    ok(go_bridge("DEL", conf, netns=ours.path, cid="ours", inside=host_ns))
    assert cni_lines(host_ns) == []
    ok(go_bridge("ADD", conf, netns=theirs.path, cid="theirs", inside=host_ns))
    assert cni_lines(host_ns)
    ok(our_bridge("DEL", conf, netns="", cid="theirs", inside=host_ns))      # no netns: found by chain name
    assert cni_lines(host_ns) == []


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_del_after_the_pod_netns_was_deleted_leaves_no_rule(backend: str, host_ns: Any,
                                                            netns_factory: Callable[[str], Any],
                                                            tmp_path: Path) -> None:
    conf = netconf(tmp_path, ipMasq=True, ipMasqBackend=backend, macspoofchk=True,
                   ranges=[[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]])
    gone, empty = netns_factory("pod"), netns_factory("pod")
    result = ok(our_bridge("ADD", conf, netns=gone.path, cid="gone", inside=host_ns))
    ok(our_bridge("ADD", conf, netns=empty.path, cid="empty", inside=host_ns))
    gone.run("true")
    os.system(f"ip netns delete {gone.name}")
    ok(our_bridge("DEL", {**conf, "prevResult": result}, netns=gone.path, cid="gone", inside=host_ns))
    ok(our_bridge("DEL", conf, netns="", cid="empty", inside=host_ns))        # CNI_NETNS empty, no prevResult
    assert cni_lines(host_ns) == []
    assert "masquerade comment" not in nft(host_ns, "table inet cni_plugins_masquerade")
    assert "macspoofchk" not in nft(host_ns, "table bridge nat")
    assert allocations(tmp_path, NETWORK) == []


def test_nftables_masq_state(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    """Debian's Go bridge 1.1.1 predates ipMasqBackend: compared with the v1.9.1 state (knftables)."""
    conf = netconf(tmp_path, ipMasq=True, ipMasqBackend="nftables",
                   ranges=[[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd00:22::/64"}]])
    ok(our_bridge("ADD", conf, netns=pod.path, inside=host_ns))
    comment = "d23676b4f2d9fe04-ebce0e3dd4dafae3, net: mynet, if: eth0, id: abc123"
    assert nft(host_ns, "table inet cni_plugins_masquerade") == f"""table inet cni_plugins_masquerade {{
\tcomment "Masquerading for plugins from github.com/containernetworking/plugins"
\tchain masq_checks {{
\t\tcomment "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
\t\tip saddr 10.22.0.2 ip daddr != 10.22.0.0/24 masquerade comment "{comment}"
\t\tip6 saddr fd00:22::2 ip6 daddr != fd00:22::/64 masquerade comment "{comment}"
\t}}

\tchain postrouting {{
\t\ttype nat hook postrouting priority srcnat; policy accept;
\t\tip daddr 224.0.0.0/4 return
\t\tip6 daddr ff00::/8 return
\t\tgoto masq_checks
\t}}
}}
"""
    assert cni_lines(host_ns) == []                               # nothing in iptables


def test_macspoofchk_matches_the_go_plugin(netns_factory: Callable[[str], Any], tmp_path: Path) -> None:
    states = []
    for plugin, name in ((our_bridge, "ours"), (go_bridge, "go")):
        host, pod = netns_factory("host"), netns_factory("pod")
        conf = netconf(tmp_path / name, macspoofchk=True, runtimeConfig={"mac": "0a:58:0a:16:00:05"})
        veth = ok(plugin("ADD", conf, netns=pod.path, inside=host))["interfaces"][1]["name"]
        states.append(nft(host, "table bridge nat").replace(veth, "VETH"))
    assert states[0] == states[1]
    assert 'ether saddr 0a:58:0a:16:00:05 return comment "macspoofchk-abc123-eth0"' in states[0]


def test_gc_removes_rules_of_stale_attachments(host_ns: Any, netns_factory: Callable[[str], Any],
                                               tmp_path: Path) -> None:
    for backend in ("iptables", "nftables"):
        conf = netconf(tmp_path, ipMasq=True, ipMasqBackend=backend)
        for cid in (f"keep-{backend}", f"stale-{backend}"):
            ok(our_bridge("ADD", conf, netns=netns_factory("pod").path, cid=cid, inside=host_ns))
    gc = {**netconf(tmp_path), "cniVersion": "1.1.0", "cni.dev/valid-attachments": [
        {"containerID": "keep-iptables", "ifname": "eth0"}, {"containerID": "keep-nftables", "ifname": "eth0"}]}
    ok(our_bridge("GC", gc, inside=host_ns))
    assert {line.split('id: \\"')[1].split('\\"')[0] for line in cni_lines(host_ns) if "id:" in line} \
        == {"keep-iptables"}
    listing = nft(host_ns, "table inet cni_plugins_masquerade")
    assert "id: keep-nftables" in listing and "stale" not in listing
    ok(our_bridge("STATUS", gc, inside=host_ns))


# --- rollback and concurrency ---------------------------------------------------------------------------------

def test_failed_add_with_exhausted_ipam_leaves_no_veth_and_no_allocation(host_ns: Any, pod: Any,
                                                                          netns_factory: Callable[[str], Any],
                                                                          tmp_path: Path) -> None:
    conf = netconf(tmp_path, ipMasq=True, isGateway=True, ranges=[[{"subnet": "10.30.0.0/30"}]])
    ok(our_bridge("ADD", conf, netns=pod.path, cid="first", inside=host_ns))
    before = links(host_ns)
    second = netns_factory("pod")
    failed = our_bridge("ADD", conf, netns=second.path, cid="second", inside=host_ns)
    assert failed.status == 1 and "no IP addresses available" in failed.out["msg"]
    assert links(host_ns) == before and links(second) == ["lo"]
    assert allocations(tmp_path, NETWORK) == ["10.30.0.2"]


def test_failure_after_ipam_releases_the_allocation(host_ns: Any, pod: Any, tmp_path: Path) -> None:
    host_ns.sh("ip link add cni0 type bridge && ip addr add 10.99.0.1/24 dev cni0")
    failed = our_bridge("ADD", netconf(tmp_path, isGateway=True, ipMasq=True), netns=pod.path, inside=host_ns)
    assert failed.out["msg"] == "'cni0' already has an IP address different from 10.22.0.1/24"
    assert links(host_ns) == ["lo", "cni0"] and links(pod) == ["lo"]
    assert allocations(tmp_path, NETWORK) == [] and cni_lines(host_ns) == []


def test_30_parallel_adds_onto_a_new_bridge(host_ns: Any, netns_factory: Callable[[str], Any],
                                            tmp_path: Path) -> None:
    conf = netconf(tmp_path, isGateway=True, ipMasq=True, bridge="br-par")
    pods = [netns_factory("pod") for _ in range(30)]
    with ThreadPoolExecutor(max_workers=30) as pool:
        outcomes = list(pool.map(lambda i: our_bridge("ADD", conf, netns=pods[i].path, cid=f"p{i}", inside=host_ns),
                                 range(30)))
    assert [o.status for o in outcomes] == [0] * 30, [o.out for o in outcomes if o.status]
    assert len({o.out["ips"][0]["address"] for o in outcomes}) == 30
    assert host_ns.sh("ip -4 addr show br-par").count("inet ") == 1
