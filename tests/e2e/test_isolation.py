"""The seeds' isolation story, through the built bridge + host-local + portmap + firewall, driven by the Go libcni
driver: two networks on a node whose FORWARD policy is DROP (as on every host with Docker installed).

- a pod on network A cannot reach a pod on network B, nor the reverse (firewall `ingressPolicy: same-bridge`);
- a third pod attached to both (eth0 on A, eth1 on B: `docker network connect`) reaches both;
- what should flow still flows: pod to pod on one network, pod to node, pod to a host outside the node (forwarded,
  masqueraded), and a hostPort from outside the node (DNAT'ed, then forwarded);
- a network without the firewall plugin (the control) cannot leave the node: the DROP policy is really there.

Everything runs in throwaway namespaces: the "node", its pods, and a "lan" host joined to the node by a veth.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support import Netns, Node

pytestmark = pytest.mark.e2e

LAN_NODE, LAN_HOST = "192.168.77.1", "192.168.77.2"
HOST_PORT, POD_PORT = 18080, 8080


def network(name: str, bridge: str, subnet: str, *, firewall: bool = True) -> dict[str, Any]:
    plugins: list[dict[str, Any]] = [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]
    if firewall:
        plugins.append({"type": "firewall", "ingressPolicy": "same-bridge"})
    return {"cniVersion": "1.0.0", "name": name, "plugins": plugins}


def add_network(node: Node, conflist: dict[str, Any]) -> None:
    """A further network in the node's net.d, its host-local state in the node's work dir."""
    conflist["plugins"][0]["ipam"]["dataDir"] = str(node.data_dir)
    (node.work / "net.d" / f"{conflist['name']}.conflist").write_text(json.dumps(conflist))


def address(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"]).split("/")[0]


def test_two_isolated_networks_and_a_pod_on_both(netns_factory: Any, dist_bin: Path, cnitool: Path,
                                                 tmp_path: Path) -> None:
    node = Node(netns_factory, cni_bin=dist_bin, cnitool=cnitool, work=tmp_path,
                conflist=network("isoa", "isoa0", "10.91.1.0/24"))
    add_network(node, network("isob", "isob0", "10.91.2.0/24"))
    add_network(node, network("isoc", "isoc0", "10.91.3.0/24", firewall=False))
    lan: Netns = netns_factory("lan")
    node.host.sh(f"ip link add lan0 type veth peer name lan1 && ip link set lan1 netns {lan.name} && "
                 f"ip addr add {LAN_NODE}/24 dev lan0 && ip link set lan0 up && "
                 "iptables -P FORWARD DROP && ip6tables -P FORWARD DROP")
    lan.sh(f"ip addr add {LAN_HOST}/24 dev lan1 && ip link set lan1 up")

    pod_a, pod_a2, pod_b, pod_ab, pod_c = (node.pod() for _ in range(5))
    published = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]}
    ip_a = address(node.add(pod_a, cap_args=published))
    ip_a2 = address(node.add(pod_a2))
    ip_b = address(node.add(pod_b, network="isob"))
    ip_ab_a = address(node.add(pod_ab))
    ip_ab_b = address(node.add(pod_ab, network="isob", ifname="eth1"))
    ip_c = address(node.add(pod_c, network="isoc"))
    for pod, ip in ((pod_a, ip_a), (pod_a2, ip_a2), (pod_b, ip_b), (pod_ab, ip_ab_a), (pod_ab, ip_ab_b),
                    (pod_c, ip_c)):
        node.serve(pod, ip, POD_PORT)
    node.serve(node.host, "10.91.1.1", POD_PORT)
    node.serve(lan, LAN_HOST, POD_PORT)
    try:
        # Isolation, both ways.
        assert node.connect(pod_a, ip_b, POD_PORT).startswith("FAILED")
        assert node.connect(pod_b, ip_a, POD_PORT).startswith("FAILED")
        # The pod on both networks reaches both, each through its own interface.
        assert node.connect(pod_ab, ip_a, POD_PORT) == f"hello from {pod_a.name}"
        assert node.connect(pod_ab, ip_b, POD_PORT) == f"hello from {pod_b.name}"
        assert node.connect(pod_a, ip_ab_a, POD_PORT) == f"hello from {pod_ab.name}"
        # What should flow on a DROP-policy node: one network's pods, the node, the LAN, a hostPort from the LAN.
        assert node.connect(pod_a, ip_a2, POD_PORT) == f"hello from {pod_a2.name}"
        assert node.connect(pod_a, "10.91.1.1", POD_PORT) == f"hello from {node.host.name}"
        assert node.connect(pod_b, LAN_HOST, POD_PORT) == f"hello from {lan.name}"
        assert node.connect(lan, LAN_NODE, HOST_PORT) == f"hello from {pod_a.name}"
        # The control: without the firewall plugin, the DROP policy keeps the pod inside the node.
        assert node.connect(pod_c, LAN_HOST, POD_PORT).startswith("FAILED")
    finally:
        node.stop_servers()
    forward = node.host.sh("iptables -S FORWARD")
    assert forward.index("CNI-ISOLATION-STAGE-1") < forward.index("CNI-FORWARD")   # isolation is judged first

    node.ok("del", pod_ab, network="isob", ifname="eth1")
    node.ok("del", pod_ab)
    node.ok("del", pod_a, cap_args=published)
    for pod, name in ((pod_a2, "isoa"), (pod_b, "isob"), (pod_c, "isoc")):
        node.ok("del", pod, network=name)
    node.host.sh("ip link delete lan0")
    node.assert_clean()
    rules = node.host.sh("iptables-save -t filter")
    for ip in (ip_a, ip_a2, ip_b, ip_ab_a, ip_ab_b):
        assert f" {ip}/32 " not in rules, rules
