"""Interface names are bytes to the kernel: a CNI_IFNAME that is not UTF-8 (`eth\\xff`, a valid Linux name the Go
plugins accept) works in every plugin and verb, and a pod the Go plugins created with one is DELed by ours
(issue 12, item 10). Through libcni (dist/cnitool) with bridge + host-local + portmap, side by side with
/usr/lib/cni, and loopback called directly."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import SHIPPED_PLUGINS
from node import Node

pytestmark = pytest.mark.e2e
GO_BIN = Path("/usr/lib/cni")
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
    path = work / f"bin-{impl}"
    path.mkdir()
    for name in ("bridge", "host-local", "portmap"):
        os.symlink(source / name, path / name)
    return path


@pytest.mark.parametrize("adder, deleter", [("ours", "ours"), ("go", "ours"), ("ours", "go")])
def test_chain_with_a_non_utf8_ifname(adder, deleter, netns_factory, dist_bin, cnitool, tmp_path):
    if not (GO_BIN / "bridge").exists():
        pytest.skip("the Go reference plugins are not in /usr/lib/cni")
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
        env = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_NETNS": "", "CNI_IFNAME": IFNAME,
               "CNI_PATH": str(dist_bin), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        done = subprocess.run(["nsenter", f"--net={host_ns.path}", "--", str(dist_bin / plugin)], input=conf,
                              env=env, capture_output=True, timeout=30)
        assert b'"code": 999' not in done.stdout and b"Traceback" not in done.stderr, (plugin, done.stdout)
