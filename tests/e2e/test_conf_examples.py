"""Every file in conf-examples/ through libcni with the built executables: ADD, CHECK, traffic, DEL, nothing left.
Run at each cniVersion libcni (Debian 1.1.2) speaks: 0.3.1, 0.4.0, 1.0.0."""
from __future__ import annotations

import ipaddress
import json

import pytest

from support import REPO, Node

pytestmark = pytest.mark.e2e
EXAMPLES = sorted((REPO / "conf-examples").glob("*.conflist"))
VERSIONS = ("0.3.1", "0.4.0", "1.0.0")
HOST_PORT, POD_PORT = 8080, 80
MAPPING = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]}


def addresses(result: dict, version: int) -> list[str]:
    return [ip["address"].split("/")[0] for ip in result["ips"]
            if ipaddress.ip_interface(ip["address"]).version == version]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_example(example, version, netns_factory, dist_bin, cnitool, tmp_path):
    conflist = json.loads(example.read_text())
    conflist["cniVersion"] = version
    node = Node(netns_factory, cni_bin=dist_bin, cnitool=cnitool, work=tmp_path, conflist=conflist)
    pod1, pod2 = node.pod(), node.pod()
    static = "static" in example.stem
    cap1 = {**MAPPING, **({"ips": ["10.92.0.150/24"]} if static else {})}
    try:
        result1 = node.add(pod1, cap_args=cap1)
        result2 = node.add(pod2)
        assert result1["cniVersion"] == version
        if static:
            assert addresses(result1, 4) == ["10.92.0.150"]
        if version != "0.3.1":
            node.ok("check", pod1, cap_args=cap1)
            node.ok("check", pod2)
        v4_1, v4_2 = addresses(result1, 4)[0], addresses(result2, 4)[0]
        assert node.ping(pod2, v4_1) and node.ping(pod1, v4_2) and node.ping(node.host, v4_1)
        for v6 in addresses(result1, 6):
            assert node.ping(pod2, v6)
        gateway = str(ipaddress.ip_interface(result1["ips"][0]["address"]).network.network_address + 1)
        node.serve(pod1, "0.0.0.0", POD_PORT)
        assert node.connect(pod2, gateway, HOST_PORT) == f"hello from {pod1.name}"
        assert node.connect(node.host, "127.0.0.1", HOST_PORT) == f"hello from {pod1.name}"
        node.stop_servers()
        node.ok("del", pod1, cap_args=cap1)
        node.ok("del", pod2)
        node.assert_clean()
    finally:
        node.stop_servers()
