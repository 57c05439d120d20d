"""pycni mixed with the Go reference plugins (Debian's 1.1.1 in /usr/lib/cni), through libcni (dist/cnitool).

* Mixed chains: our bridge + host-local with the Go portmap, and the Go bridge + host-local with our portmap.
* Cross-implementation lifecycle on one dataDir, one firewall state and one libcni cache dir: containers ADDed
  by the Go plugins are CHECKed and DELed by ours, and the reverse. Switching CNI_PATH between ADD and DEL while
  keeping the cache dir is what an operator swapping the binaries on a node does.

Each CNI_PATH is a temp dir of symlinks (the PyInstaller bootloader resolves its real path, so a link to
dist/cni-bin/bridge finds dist/cni-bin/.pycni). Debian's portmap 1.1.1 CHECK is broken whenever ip6tables is
usable (upstream containernetworking/plugins#819, see tests/driver/README.md), so CHECKs that would run the Go
portmap run our portmap instead, with the Go bridge + host-local.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from support import GO_BIN, Node, cni_env, link_dir, ok, requires_go, run

pytestmark = [pytest.mark.e2e, requires_go("bridge", "host-local", "portmap")]
HOST_PORT, POD_PORT = 8080, 80
MAPPING = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]}
CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "mixed",
    "plugins": [
        {"type": "bridge", "bridge": "mixed0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.93.0.0/24"}]],
                  "routes": [{"dst": "0.0.0.0/0"}]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


def cni_path(work: Path, label: str, ours: Path, *, bridge: str, portmap: str) -> Path:
    """A CNI_PATH of symlinks: bridge and host-local from `bridge` ("ours"/"go"), portmap from `portmap`."""
    where = {"ours": ours.resolve(), "go": GO_BIN}
    sides = {"bridge": bridge, "host-local": bridge, "portmap": portmap}
    path = link_dir(work / f"cni-path-{label}", {name: where[side] / name for name, side in sides.items()})
    for name, side in sides.items():
        # the link runs the intended implementation: only ours speaks spec 1.1.0
        versions = ok(run([path / name], cni_env("VERSION"), b"{}", timeout=30))["supportedVersions"]
        assert ("1.1.0" in versions) == (side == "ours"), (name, side)
    return path


def ipv4(result: dict) -> str:
    return next(ip["address"].split("/")[0] for ip in result["ips"]
                if ipaddress.ip_interface(ip["address"]).version == 4)


def gateway(result: dict) -> str:
    return str(ipaddress.ip_interface(result["ips"][0]["address"]).network.network_address + 1)


def assert_traffic(node: Node, pod1, pod2, result1: dict, result2: dict) -> None:
    """pod <-> pod, node -> pod, and pod1's POD_PORT through HOST_PORT from pod2 (node's gateway address) and
    from the node (127.0.0.1)."""
    assert node.ping(pod2, ipv4(result1)) and node.ping(pod1, ipv4(result2)) and node.ping(node.host, ipv4(result1))
    node.serve(pod1, "0.0.0.0", POD_PORT)
    try:
        assert node.connect(pod2, gateway(result1), HOST_PORT) == f"hello from {pod1.name}"
        assert node.connect(node.host, "127.0.0.1", HOST_PORT) == f"hello from {pod1.name}"
    finally:
        node.stop_servers()


def cleanup(node: Node, pods: list, path: Path) -> None:
    """Best-effort DEL of whatever a failed test left (the namespaces are deleted by netns_factory anyway)."""
    node.stop_servers()
    node.cni_bin = path
    for pod in pods:
        node.cni("del", pod, cap_args=MAPPING)


@pytest.mark.parametrize("bridge,portmap", [("ours", "go"), ("go", "ours")],
                         ids=["our-bridge+go-portmap", "go-bridge+our-portmap"])
def test_mixed_chain(bridge, portmap, netns_factory, dist_bin, cnitool, tmp_path):
    path = cni_path(tmp_path, "mixed", dist_bin, bridge=bridge, portmap=portmap)
    node = Node(netns_factory, cni_bin=path, cnitool=cnitool, work=tmp_path, conflist=CONFLIST)
    pod1, pod2 = node.pod(), node.pod()
    try:
        result1 = node.add(pod1, cap_args=MAPPING)
        result2 = node.add(pod2)
        if portmap == "ours":  # the Go portmap's CHECK is broken (module doc)
            node.ok("check", pod1, cap_args=MAPPING)
            node.ok("check", pod2)
        assert_traffic(node, pod1, pod2, result1, result2)
        node.ok("del", pod1, cap_args=MAPPING)
        node.ok("del", pod2)
        node.assert_clean()
    finally:
        cleanup(node, [pod1, pod2], path)


@pytest.mark.parametrize("adder", ["go", "ours"], ids=["go-add+our-check-del", "our-add+go-check-del"])
def test_cross_lifecycle(adder, netns_factory, dist_bin, cnitool, tmp_path):
    other = "ours" if adder == "go" else "go"
    add_path = cni_path(tmp_path, "add", dist_bin, bridge=adder, portmap=adder)
    del_path = cni_path(tmp_path, "del", dist_bin, bridge=other, portmap=other)
    # CHECK by the other side; the Go portmap's CHECK is broken (module doc), so ours stands in for it
    check_path = cni_path(tmp_path, "check", dist_bin, bridge=other, portmap="ours")
    node = Node(netns_factory, cni_bin=add_path, cnitool=cnitool, work=tmp_path, conflist=CONFLIST)
    pod1, pod2 = node.pod(), node.pod()
    try:
        result1 = node.add(pod1, cap_args=MAPPING)
        result2 = node.add(pod2)
        assert len(node.allocations()) == 2 and node.pod_rules() != []
        assert len(list((tmp_path / "cache").rglob("*mixed*"))) == 2, "libcni cached no ADD result"

        node.cni_bin = check_path  # same cache dir: libcni hands the cached ADD result over as prevResult
        node.ok("check", pod1, cap_args=MAPPING)
        node.ok("check", pod2)
        assert_traffic(node, pod1, pod2, result1, result2)

        node.cni_bin = del_path
        node.ok("del", pod1, cap_args=MAPPING)
        node.ok("del", pod2)
        node.assert_clean()
        assert not any((tmp_path / "cache").rglob("*mixed*")), "libcni cache entries left after DEL"
        # a second DEL (runtimes retry) must succeed on the emptied state and cache
        node.ok("del", pod1, cap_args=MAPPING)
        node.ok("del", pod2)
    finally:
        cleanup(node, [pod1, pod2], del_path)
