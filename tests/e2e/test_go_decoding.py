"""Capability args as containerd sends them, side by side with the Go reference plugins (/usr/lib/cni).

containerd's go-cni passes `portMappings` and `ipRanges` entries as untagged Go structs ("HostPort",
"ContainerPort", "Subnet", "RangeStart" ...); Go's encoding/json matches keys case-insensitively, so the Go
plugins take them as the lowercase keys. For each implementation and each spelling, one ADD on a fresh node
through libcni (dist/cnitool) must give the same result and the same nat rules, and DEL must leave nothing.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from support import GO_BIN, Node, link_dir, requires_go

pytestmark = [pytest.mark.e2e, requires_go("bridge", "host-local", "portmap")]
CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "gocase",
    "plugins": [
        {"type": "bridge", "bridge": "gocase0", "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "routes": [{"dst": "0.0.0.0/0"}]},
         "capabilities": {"ipRanges": True}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}
LOWER = {
    "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": ""},
                     {"hostPort": 5353, "containerPort": 53, "protocol": "udp", "hostIP": "127.0.0.1"}],
    "ipRanges": [[{"subnet": "10.94.0.0/24", "rangeStart": "10.94.0.50", "rangeEnd": "10.94.0.60",
                   "gateway": "10.94.0.1"}]],
}
# go-cni's PortMapping and IPRanges structs, marshalled without tags (what containerd 1.6 writes).
CAPITALISED = {
    "portMappings": [{"HostPort": 8080, "ContainerPort": 80, "Protocol": "tcp", "HostIP": ""},
                     {"HostPort": 5353, "ContainerPort": 53, "Protocol": "udp", "HostIP": "127.0.0.1"}],
    "ipRanges": [[{"Subnet": "10.94.0.0/24", "RangeStart": "10.94.0.50", "RangeEnd": "10.94.0.60",
                   "Gateway": "10.94.0.1"}]],
}


def plugin_dir(work: Path, impl: str, dist_bin: Path) -> Path:
    """A CNI_PATH of symlinks to one implementation's bridge, host-local and portmap."""
    source = GO_BIN if impl == "go" else dist_bin.resolve()
    return link_dir(work / f"bin-{impl}", {name: source / name for name in ("bridge", "host-local", "portmap")})


def nat_rules(node: Node, pod_name: str) -> list[str]:
    """The node's nat rules with what differs per run made generic: the container ID and the chain names
    hashed from it."""
    text = node.host.sh("iptables-save -t nat")
    text = text.replace(pod_name, "<ID>")
    text = re.sub(r"CNI-DN-[0-9a-f]+", "CNI-DN-<hash>", text)
    text = re.sub(r"CNI-[0-9a-f]{16,}", "CNI-<hash>", text)
    return sorted(line for line in text.splitlines() if line.startswith(("-A", ":CNI")))


def add_and_del(impl: str, cap_args: dict[str, Any], netns_factory: Any, dist_bin: Path, cnitool: Path,
                work: Path) -> tuple[dict[str, Any], list[str]]:
    work.mkdir()
    node = Node(netns_factory, cni_bin=plugin_dir(work, impl, dist_bin), cnitool=cnitool, work=work,
                conflist=CONFLIST)
    pod = node.pod()
    try:
        result = node.add(pod, cap_args=cap_args)
        rules = nat_rules(node, pod.name)
        node.ok("del", pod, cap_args=cap_args)
        node.assert_clean()
    finally:
        node.cni("del", pod, cap_args=cap_args)
    shape = {"ips": result["ips"], "routes": result.get("routes"), "dns": result.get("dns")}
    return shape, rules


def test_capitalised_capability_keys_mean_what_they_mean_to_the_go_plugins(netns_factory, dist_bin, cnitool,
                                                                          tmp_path):
    seen = {}
    for impl in ("go", "ours"):
        for spelling, cap_args in (("lower", LOWER), ("capitalised", CAPITALISED)):
            seen[impl, spelling] = add_and_del(impl, cap_args, netns_factory, dist_bin, cnitool,
                                               tmp_path / f"{impl}-{spelling}")
    go_result, go_rules = seen["go", "lower"]
    assert go_result["ips"][0]["address"] == "10.94.0.50/24", go_result   # the ipRanges entry was used
    assert any("--dport 8080" in r and "10.94.0.50:80" in r for r in go_rules), go_rules
    assert any("127.0.0.1" in r and "--dport 5353" in r for r in go_rules), go_rules
    for key, (result, rules) in seen.items():
        assert result == go_result, f"{key}: {json.dumps(result)} != go lower {json.dumps(go_result)}"
        assert rules == go_rules, f"{key}: nat rules differ from the Go plugins' with lowercase keys"
