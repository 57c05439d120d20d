"""firewall against real iptables-restore / nft, inside a throwaway "node" netns (netfilter state is per netns).

The node has two bridges, br-a (10.98.1.1/24, pods A 10.98.1.2 and A2 10.98.1.3) and br-b (10.98.2.1/24, pod B
10.98.2.2), forwarding on. For the iptables backend its FORWARD policy is DROP (as on every host with Docker), so
pod traffic across the node flows only through the plugin's accepts. An nftables accept cannot override another
table's drop (rules_nftables' docstring), so the nftables runs keep FORWARD's policy and check what the backend
does decide: the isolation drops. The plugin runs from the source tree as a process inside the node.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firewall_cni import rules_iptables
from support import Answer, Caller, Netns, firewall_state, ok, source_argv

pytestmark = pytest.mark.root

DATA = Path("/var/lib/cni/pycni-firewall")
DNAT_ACCEPT = rules_iptables.DNAT_ACCEPT   # pycni's one shared accept of port-mapped (DNAT'ed) connections
BACKENDS = ["iptables", "nftables"]
PODS = {"a": ("10.98.1.2", "br-a", "fd98:1::2"), "a2": ("10.98.1.3", "br-a", "fd98:1::3"),
        "b": ("10.98.2.2", "br-b", "fd98:2::2")}
# What the node holds before any plugin runs: an admin's rule and a chain of someone else's.
PRE_EXISTING = ("iptables -N OTHER && iptables -A OTHER -j RETURN && iptables -A FORWARD -i up0 -j OTHER && "
                "nft add table inet other && nft add chain inet other c")


class Node:
    def __init__(self, host: Netns, pods: dict[str, Netns], network: str) -> None:
        self.host, self.pods, self.network = host, pods, network

    def conf(self, pod: str, backend: str, **keys: Any) -> dict[str, Any]:
        ip, bridge, ip6 = PODS[pod]
        prev = {"cniVersion": "1.0.0",
                "interfaces": [{"name": bridge}, {"name": f"v-{pod}"},
                               {"name": "eth0", "sandbox": self.pods[pod].path}],
                "ips": [{"address": f"{ip}/24", "interface": 2, "gateway": ip.rsplit(".", 1)[0] + ".1"},
                        {"address": f"{ip6}/64", "interface": 2}]}
        return {"cniVersion": "1.0.0", "name": self.network, "type": "firewall", "backend": backend,
                "prevResult": prev, **keys}

    def firewall(self, command: str, pod: str, conf: dict[str, Any]) -> Answer:
        caller = Caller(source_argv("firewall"), inside=self.host, cni_path="/opt/cni/bin")
        return caller(command, conf, cid=f"pfw-{pod}", netns=self.pods[pod].path)

    def reaches(self, src: str, dst: str) -> bool:
        return self.pods[src].run("ping", "-c", "1", "-W", "1", PODS[dst][0], check=False).returncode == 0

    def state(self) -> str:
        return firewall_state(self.host)

    def rule_listings(self, backend: str) -> list[list[str]]:
        """The plugin's rules, one list per table, as listed (no counters)."""
        if backend == "nftables":
            text = self.host.sh("nft list table inet cni_plugins_firewall")
            return [[line.strip() for line in text.splitlines() if "comment" in line or "jump" in line]]
        return [[line for line in self.host.sh(f"{tool}-save -t filter").splitlines() if line.startswith("-A")]
                for tool in ("iptables", "ip6tables")]

    def added(self, before: str) -> dict[str, set[str]]:
        """Per tool, the rule and chain lines that are there now and were not in `before` (an earlier state())."""
        old = set(before.splitlines())
        out = {}
        for tool in ("iptables", "ip6tables"):
            now = self.host.sh(f"{tool}-save -t filter").splitlines()
            out[tool] = {line.split(" [")[0] for line in now if line.startswith(("-A", ":"))
                         and line.split(" [")[0] not in old and line.split(" [")[0][1:].split()[0]
                         not in ("INPUT", "FORWARD", "OUTPUT")}
        return out


@pytest.fixture
def node(netns_factory: Callable[[str], Netns], request: pytest.FixtureRequest) -> Iterator[Node]:
    host = netns_factory("pfw-node")
    host.sh("sysctl -qw net.ipv4.ip_forward=1 && sysctl -qw net.ipv6.conf.all.forwarding=1 && "
            "ip link add up0 type veth peer name up0p && " + PRE_EXISTING)
    for bridge, net in (("br-a", "1"), ("br-b", "2")):
        host.sh(f"ip link add {bridge} type bridge && ip addr add 10.98.{net}.1/24 dev {bridge} && "
                f"ip addr add fd98:{net}::1/64 dev {bridge} nodad && ip link set {bridge} up")
    pods = {}
    for name, (ip, bridge, ip6) in PODS.items():
        pod = netns_factory(f"pfw-{name}")
        host.sh(f"ip link add v-{name} type veth peer name eth0 netns {pod.name} && "
                f"ip link set v-{name} master {bridge} up")
        pod.sh(f"ip addr add {ip}/24 dev eth0 && ip addr add {ip6}/64 dev eth0 nodad && ip link set eth0 up && "
               f"ip route add default via {ip.rsplit('.', 1)[0]}.1")
        pods[name] = pod
    network = f"pfw-{host.name[-8:]}"
    try:
        yield Node(host, pods, network)
    finally:
        shutil.rmtree(DATA / network, ignore_errors=True)


def bridge_filtering(node: Node) -> bool:
    """Whether bridged (same-bridge) traffic passes the FORWARD hook here (br_netfilter on in this netns)."""
    return node.host.sh("cat /proc/sys/net/bridge/bridge-nf-call-iptables 2>/dev/null || echo 0").strip() == "1"


def test_iptables_accepts_open_the_forward_path_only_with_add_and_del_closes_it(node: Node) -> None:
    node.host.sh("iptables -P FORWARD DROP")
    before = node.state()
    assert not node.reaches("a", "b")
    assert ok(node.firewall("ADD", "a", node.conf("a", "iptables")))["ips"][0]["address"] == "10.98.1.2/24"
    assert node.reaches("a", "b")                          # A's request and B's reply (RELATED,ESTABLISHED)
    assert not node.reaches("b", "a")                      # B has no accept of its own
    assert node.firewall("CHECK", "a", node.conf("a", "iptables")).status == 0
    assert os.listdir(DATA / node.network) == ["pfw-a_eth0"]
    assert node.firewall("DEL", "a", node.conf("a", "iptables")).status == 0
    assert not node.reaches("a", "b")
    assert node.firewall("DEL", "a", node.conf("a", "iptables")).status == 0          # again: nothing left
    assert not (DATA / node.network / "pfw-a_eth0").exists()
    shared = {":CNI-ADMIN -", ":CNI-FORWARD -",
              '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
              '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
              DNAT_ACCEPT}
    assert node.added(before) == {"iptables": shared, "ip6tables": shared}
    assert [line for line in before.splitlines() if line not in node.state().splitlines()] == []


@pytest.mark.parametrize("policy", ["same-bridge", "isolated"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_ingress_policy_blocks_cross_bridge_traffic(node: Node, backend: str, policy: str) -> None:
    if backend == "iptables":
        node.host.sh("iptables -P FORWARD DROP")
    for pod in PODS:
        ok(node.firewall("ADD", pod, node.conf(pod, backend, ingressPolicy=policy)))
    assert not node.reaches("a", "b") and not node.reaches("b", "a")
    if policy == "same-bridge" or not bridge_filtering(node):
        assert node.reaches("a", "a2")
    else:
        assert not node.reaches("a", "a2")
    for pod in PODS:
        assert node.firewall("CHECK", pod, node.conf(pod, backend, ingressPolicy=policy)).status == 0
    for pod in PODS:                                            # a repeated ADD adds nothing
        ok(node.firewall("ADD", pod, node.conf(pod, backend, ingressPolicy=policy)))
    for listing in node.rule_listings(backend):
        assert len(listing) == len(set(listing)) and listing


@pytest.mark.parametrize("backend", BACKENDS)
def test_del_and_gc_leave_the_pre_existing_state_plus_the_shared_chains(node: Node, backend: str) -> None:
    before = node.state()
    for pod in PODS:
        ok(node.firewall("ADD", pod, node.conf(pod, backend, ingressPolicy="same-bridge")))
    gc = {"cniVersion": "1.1.0", "name": node.network, "type": "firewall", "backend": backend,
          "cni.dev/valid-attachments": [{"containerID": "pfw-b", "ifname": "eth0"}]}
    assert node.firewall("GC", "b", gc).status == 0                            # a and a2 are gone
    state = node.state()
    assert "10.98.1.2" not in state and "10.98.1.3" not in state and "fd98:1::2" not in state
    assert "10.98.2.2" in state and "br-a" in state                             # br-a still exists
    assert sorted(os.listdir(DATA / node.network)) == ["pfw-b_eth0"]
    assert node.firewall("DEL", "b", {k: v for k, v in node.conf("b", backend).items() if k != "prevResult"}
                         ).status == 0                                          # from the record
    node.host.sh("ip link del br-a && ip link del br-b")
    gc["cni.dev/valid-attachments"] = []
    assert node.firewall("GC", "b", gc).status == 0                            # removes the gone bridges' rules
    after = node.state().splitlines()
    added = [line for line in after if line not in before.splitlines()]
    assert [line for line in before.splitlines() if line not in after] == []
    assert not any(word in line for line in added for word in ("br-a", "br-b", "10.98.", "fd98:", "pfw-"))
    if backend == "iptables":
        assert node.added(before)["iptables"] == node.added(before)["ip6tables"] == {
            ":CNI-ADMIN -", ":CNI-FORWARD -", ":CNI-ISOLATION-STAGE-1 -", ":CNI-ISOLATION-STAGE-2 -",
            '-A FORWARD -m comment --comment "CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" '
            "-j CNI-ISOLATION-STAGE-1",
            '-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
            '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
            DNAT_ACCEPT,
            '-A CNI-ISOLATION-STAGE-1 -m comment --comment "CNI firewall plugin rules (ingressPolicy: '
            'same-bridge|isolated)" -j RETURN',
            '-A CNI-ISOLATION-STAGE-2 -m comment --comment "CNI firewall plugin rules (ingressPolicy: '
            'same-bridge|isolated)" -j RETURN'}
    assert not (DATA / node.network).exists()                     # gone with its last record


def test_an_ingress_policy_error_installs_nothing(node: Node) -> None:
    before = node.state()
    answer = node.firewall("ADD", "a", node.conf("a", "iptables", ingressPolicy="strict"))
    assert (answer.status, answer.code) == (1, 7)
    assert node.state() == before and not (DATA / node.network).exists()
