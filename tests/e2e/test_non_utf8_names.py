"""Interface names are bytes to the kernel: a CNI_IFNAME that is not UTF-8 (`eth\\xff`, a valid Linux name the Go
plugins accept) works in every plugin and verb, and a pod the Go plugins created with one is DELed by ours
(issue 12, item 10). Through libcni (dist/cnitool) with bridge + host-local + portmap, side by side with
/usr/lib/cni, and loopback called directly."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from support import GO_BIN, SHIPPED_PLUGINS, Caller, Node, link_dir, requires_go

pytestmark = pytest.mark.e2e
IFNAME = os.fsdecode(b"eth\xff")   # what os.environ holds for those bytes; subprocess passes the bytes back
MAPPING = {"portMappings": [{"hostPort": 8090, "containerPort": 80, "protocol": "tcp"}]}
CONFLIST = {
    "cniVersion": "1.0.0",
    "name": "bytesnet",
    "plugins": [
        {"type": "bridge", "bridge": "bytes0", "isGateway": True, "ipMasq": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.95.0.0/24"}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}},
    ],
}


def plugin_dir(work: Path, impl: str, dist_bin: Path) -> Path:
    source = GO_BIN if impl == "go" else dist_bin.resolve()
    return link_dir(work / f"bin-{impl}", {name: source / name for name in ("bridge", "host-local", "portmap")})


@requires_go("bridge", "host-local", "portmap")
@pytest.mark.parametrize("adder, deleter", [("ours", "ours"), ("go", "ours"), ("ours", "go")])
def test_chain_with_a_non_utf8_ifname(adder, deleter, netns_factory, dist_bin, cnitool, tmp_path):
    paths = {impl: plugin_dir(tmp_path, impl, dist_bin) for impl in {adder, deleter}}
    node = Node(netns_factory, cni_bin=paths[adder], cnitool=cnitool, work=tmp_path, conflist=CONFLIST)
    pod = node.pod()
    try:
        result = node.add(pod, cap_args=MAPPING, ifname=IFNAME)
        assert b"eth\xff" in pod.run("ip", "-o", "link", "show").stdout
        assert len(node.allocations()) == 1 and node.pod_rules() != []
        owner = (node.data_dir / node.name / node.allocations()[0]).read_bytes()
        assert owner == pod.name.encode() + b"\r\neth\xff", owner   # the reference's bytes
        if adder == "ours":
            node.ok("check", pod, cap_args=MAPPING, ifname=IFNAME)
        node.cni_bin = paths[deleter]
        node.ok("del", pod, cap_args=MAPPING, ifname=IFNAME)
        node.assert_clean()
        assert result["ips"]
    finally:
        node.cni_bin = paths[deleter]
        node.cni("del", pod, cap_args=MAPPING, ifname=IFNAME)


def test_every_plugin_answers_a_non_utf8_ifname_without_internal_error(dist_bin, host_ns):
    """Protocol level, for every shipped plugin: the name passes validation (no 999) for each verb."""
    conf = b'{"cniVersion": "1.0.0", "name": "bytesnet", "type": "t"}'
    for plugin in SHIPPED_PLUGINS:
        call = Caller([dist_bin / plugin], inside=host_ns, timeout=30, ifname=IFNAME, cni_path=dist_bin,
                      CNI_ARGS=None)
        done = call("DEL", conf)
        assert '"code": 999' not in done.stdout and "Traceback" not in done.stderr, (plugin, done.stdout)
