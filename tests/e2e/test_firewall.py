"""The built firewall (dist/cni-bin/firewall) chained after our bridge + host-local through libcni (dist/cnitool),
side by side with Debian's Go 1.1.1 /usr/lib/cni/firewall on the same node, whose FORWARD policy is DROP:

- pods on the bridge reach each other only through the firewall's accepts (br_netfilter hands bridged traffic to
  FORWARD), whichever implementation added them;
- ours ADD -> Go CHECK and DEL, Go ADD -> ours CHECK and DEL: the per-address rules are gone afterwards;
- same-bridge rules made by Go and then by ours are not duplicated;
- a SIGKILL during ADD, then DEL (with or without prevResult), leaves no per-address rules;
- 30 parallel ADDs of distinct pods, then 30 DELs: no duplicates on the way, no rules at the end.

Everything runs inside throwaway namespaces (pycni-pfw-*).
"""
from __future__ import annotations

import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from support import GO_BIN, Caller, Node, link_dir, ok, plugin_argv, requires_go

pytestmark = [pytest.mark.e2e, requires_go("firewall")]
DATA = Path("/var/lib/cni/pycni-firewall")
SUBNET = "10.97.0.0/24"


def conflist(name: str, **firewall: Any) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": "pfw-br0", "isGateway": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "firewall", **firewall}]}


def paths(work: Path, ours: Path) -> dict[str, Path]:
    """CNI_PATHs: our bridge + host-local, with our firewall or the Go one."""
    base = {name: ours.resolve() / name for name in ("bridge", "host-local")}
    return {"ours": link_dir(work / "path-ours", {**base, "firewall": ours.resolve() / "firewall"}),
            "go": link_dir(work / "path-go", {**base, "firewall": GO_BIN / "firewall"})}


def make_node(netns_factory: Any, dist_bin: Path, cnitool: Path, tmp_path: Path, **firewall: Any) -> Node:
    name = f"pfw-{tmp_path.name[-12:].strip('_-')}".replace("_", "-")
    node = Node(lambda role: netns_factory(f"pfw-{role}"), cni_bin=dist_bin, cnitool=cnitool, work=tmp_path,
                conflist=conflist(name, **firewall))
    node.host.sh("iptables -P FORWARD DROP && ip6tables -P FORWARD DROP")
    return node


def address(result: dict[str, Any]) -> str:
    return str(result["ips"][0]["address"]).split("/")[0]


def filter_rules(node: Node) -> list[str]:
    return [line for tool in ("iptables-save", "ip6tables-save")
            for line in node.host.sh(f"{tool} -t filter").splitlines() if line.startswith("-A ")]


def per_address(node: Node) -> list[str]:
    return [line for line in filter_rules(node) if "10.97." in line]


@pytest.fixture
def cleanup_records() -> Any:
    made: list[str] = []
    yield made
    for name in made:
        shutil.rmtree(DATA / name, ignore_errors=True)


@pytest.mark.parametrize(("adder", "remover"), [("ours", "go"), ("go", "ours")])
def test_one_implementation_adds_the_other_checks_and_deletes(adder: str, remover: str, netns_factory: Any,
                                                                dist_bin: Path, cnitool: Path, tmp_path: Path,
                                                                cleanup_records: list[str]) -> None:
    node = make_node(netns_factory, dist_bin, cnitool, tmp_path)
    cleanup_records.append(node.name)
    path = paths(tmp_path, dist_bin)
    pod1, pod2 = node.pod(), node.pod()
    node.cni_bin = path[adder]
    try:
        r1, r2 = node.add(pod1), node.add(pod2)
        assert node.ping(pod1, address(r2)) and node.ping(pod2, address(r1))
        assert sorted(per_address(node)) == sorted(
            f"-A CNI-FORWARD {rule}" for ip in (address(r1), address(r2))
            for rule in (f"-d {ip}/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", f"-s {ip}/32 -j ACCEPT"))
        node.cni_bin = path[remover]
        node.ok("check", pod1)
        node.ok("del", pod1)
        assert all(address(r1) + "/" not in line for line in per_address(node))
        node.ok("check", pod2)
        assert node.ping(pod2, "10.97.0.1")                     # the node: INPUT, not the firewall's business
        node.ok("del", pod2)
        assert per_address(node) == []
        node.ok("del", pod1)                                   # repeated DEL
    finally:
        for pod in (pod1, pod2):
            node.cni("del", pod)
    assert per_address(node) == []


def test_same_bridge_rules_of_go_then_ours_are_not_duplicated(netns_factory: Any, dist_bin: Path, cnitool: Path,
                                                              tmp_path: Path, cleanup_records: list[str]) -> None:
    node = make_node(netns_factory, dist_bin, cnitool, tmp_path, ingressPolicy="same-bridge")
    cleanup_records.append(node.name)
    path = paths(tmp_path, dist_bin)
    pods = [node.pod(), node.pod()]
    try:
        node.cni_bin = path["go"]
        node.add(pods[0])
        go_made = [line for line in filter_rules(node) if "ISOLATION" in line]
        node.cni_bin = path["ours"]
        result = node.add(pods[1])
        assert [line for line in filter_rules(node) if "ISOLATION" in line] == go_made
        assert len(go_made) == 5          # IPv4 only: the FORWARD jump, 2 rules in STAGE-1, 2 in STAGE-2
        assert node.ping(pods[1], address(result)) and node.ping(pods[0], address(result))
        node.ok("check", pods[0])                              # ours CHECKs Go's isolation (1.1.1 comments)
    finally:
        for pod in pods:
            node.cni("del", pod)
    assert per_address(node) == []


def _conf(network: str, ip: str) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": network, "type": "firewall",
            "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "pfw-br0"}],
                           "ips": [{"address": f"{ip}/24"}]}}


def test_sigkill_during_add_then_del_leaves_no_rules(netns_factory: Any, dist_bin: Path, tmp_path: Path,
                                                     cleanup_records: list[str]) -> None:
    host = netns_factory("pfw-node")
    network = f"pfw-kill-{host.name[-8:]}"
    cleanup_records.append(network)
    firewall = Caller(plugin_argv("firewall", dist_bin), inside=host, cni_path=dist_bin, netns="/run/netns/x")
    for i, delay in enumerate((0.0, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.2)):
        conf, cid = _conf(network, f"10.97.1.{i + 2}"), f"kill{i}"
        proc = firewall.start("ADD", conf, cid=cid)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        bare = {k: v for k, v in conf.items() if k != "prevResult"}
        assert ok(firewall("DEL", bare if i % 2 else conf, cid=cid)) is None   # odd: from the record only
    leftovers = [line for tool in ("iptables-save", "ip6tables-save") for line in host.sh(f"{tool} -t filter")
                 .splitlines() if "10.97.1." in line]
    assert leftovers == []
    assert not (DATA / network).exists()


def test_storm_of_parallel_adds_then_dels(netns_factory: Any, dist_bin: Path, tmp_path: Path,
                                          cleanup_records: list[str]) -> None:
    host = netns_factory("pfw-node")
    network = f"pfw-storm-{host.name[-8:]}"
    cleanup_records.append(network)
    firewall = Caller(plugin_argv("firewall", dist_bin), inside=host, cni_path=dist_bin, netns="/run/netns/x")
    confs = {f"storm{i}": _conf(network, f"10.97.2.{i + 2}") for i in range(30)}

    def each(command: str) -> list[int]:
        with ThreadPoolExecutor(30) as pool:
            return list(pool.map(lambda cid: firewall(command, confs[cid], cid=cid, timeout=120).status, confs))

    assert each("ADD") == [0] * 30
    rules = [line for line in host.sh("iptables-save -t filter").splitlines() if line.startswith("-A ")]
    assert len(rules) == len(set(rules)) == 3 + 60   # FORWARD and admin jumps, the DNAT accept; 2 per pod
    assert each("CHECK") == [0] * 30
    assert each("DEL") == [0] * 30
    rules = [line for line in host.sh("iptables-save -t filter").splitlines() if line.startswith("-A ")]
    assert rules == ['-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD',
                     '-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN',
                     '-A CNI-FORWARD -m conntrack --ctstate DNAT -m comment --comment '
                     '"CNI firewall plugin rules (port mappings)" -j ACCEPT']
    assert not (DATA / network).exists()
