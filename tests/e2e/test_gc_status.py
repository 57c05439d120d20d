"""GC and STATUS (spec 1.1.0) of the built executables, executed directly: Debian's libcni (1.1.2) knows only
spec <= 1.0.0, so the runtime's part is played here (chained prevResult for portmap, the GC config with
`cni.dev/valid-attachments` or the legacy `cni.dev/attachments`, and no CNI_CONTAINERID/NETNS/IFNAME for GC and
STATUS, as the spec says). Everything runs in a throwaway node namespace; pods are throwaway namespaces too.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from support import VALID, Caller, Netns, gc_conf, ipam, ok

pytestmark = pytest.mark.e2e
NETWORK = "gcnet"
KEEP, DROP = "gc-keep-0123456789abcdef", "gc-drop-fedcba9876543210"
PORTS = {KEEP: 8081, DROP: 8082}
SHARED_CHAINS = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")


class Plugins:
    """Runs dist/cni-bin/<type> inside the node namespace with CNI_PATH=dist/cni-bin (bridge's IPAM delegate);
    GC and STATUS get no container variables (as the spec sends them)."""

    def __init__(self, host: Netns, bin_dir: Path) -> None:
        self.host, self.bin_dir = host, bin_dir

    def run(self, command: str, conf: dict[str, Any], *, plugin: str = "", **env: Any) -> Any:
        """Runs `plugin` (default: the config's type; "host-local" gets the same config, as bridge delegates)."""
        call = Caller([self.bin_dir / (plugin or conf["type"])], inside=self.host, cni_path=self.bin_dir,
                      cid="", netns="", container=None, CNI_ARGS=None)
        return call(command, conf, **env)

    def ok(self, command: str, conf: dict[str, Any], **kwargs: Any) -> Any:
        return ok(self.run(command, conf, **kwargs))

    def error_code(self, command: str, conf: dict[str, Any], **kwargs: Any) -> int:
        answer = self.run(command, conf, **kwargs)
        assert answer.code is not None, f"{command} {conf['type']} should fail: rc={answer.status} {answer.out}"
        return answer.code


def confs(backend: str, data_dir: Path, version: str = "1.1.0") -> tuple[dict[str, Any], dict[str, Any]]:
    """bridge (host-local IPAM with room for exactly two containers, ipMasq) and portmap, on `backend`."""
    bridge = {"cniVersion": version, "name": NETWORK, "type": "bridge", "bridge": "gc0", "isGateway": True,
              "ipMasq": True, "ipMasqBackend": backend,
              "ipam": ipam(data_dir, ranges=[[{"subnet": "10.94.0.0/24", "rangeStart": "10.94.0.10",
                                               "rangeEnd": "10.94.0.11"}]], routes=[{"dst": "0.0.0.0/0"}])}
    portmap = {"cniVersion": version, "name": NETWORK, "type": "portmap", "backend": backend,
               "capabilities": {"portMappings": True}}
    return bridge, portmap


def with_mapping(portmap: dict[str, Any], cid: str, prev: dict[str, Any]) -> dict[str, Any]:
    mapping = [{"hostPort": PORTS[cid], "containerPort": 80, "protocol": "tcp"}]
    return {**portmap, "runtimeConfig": {"portMappings": mapping}, "prevResult": prev}


def owners(data_dir: Path) -> dict[str, str]:
    """address -> owner file contents (first line: the container ID)."""
    net = data_dir / NETWORK
    return {p.name: p.read_text().splitlines()[0] for p in net.iterdir()
            if p.name[0].isdigit()} if net.exists() else {}


def firewall(host: Any) -> str:
    """The nat tables and the nft ruleset, without iptables-save's timestamp comments and counters."""
    text = host.sh("iptables-save -t nat; ip6tables-save -t nat; nft list ruleset", check=False)
    text = re.sub(r"^(:\S+ \S+) \[\d+:\d+\]$|packets \d+ bytes \d+", r"\1", text, flags=re.M)
    return "\n".join(line for line in text.splitlines() if not line.startswith("#"))


def container_chains(host: Any) -> list[str]:
    """Per-container iptables nat chains (bridge's CNI-<hash> masquerade chains, portmap's CNI-DN-<hash>)."""
    text = host.sh("iptables-save -t nat; ip6tables-save -t nat")
    return sorted(line[1:].split()[0] for line in text.splitlines()
                  if line.startswith(":CNI-") and line[1:].split()[0] not in SHARED_CHAINS)


def nft_rules_of(host: Any, cid: str) -> list[str]:
    return [line.strip() for line in host.sh("nft list ruleset", check=False).splitlines() if cid in line]


@pytest.mark.parametrize("key", [VALID, "cni.dev/attachments"])
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_gc_and_status(backend, key, host_ns, netns_factory, dist_bin, tmp_path):
    plugins = Plugins(host_ns, dist_bin)
    data_dir = tmp_path / "ipam"
    bridge, portmap = confs(backend, data_dir)
    pods = {KEEP: netns_factory("pod"), DROP: netns_factory("pod")}
    results: dict[str, dict[str, Any]] = {}
    try:
        assert plugins.ok("STATUS", bridge) is None  # both addresses free
        assert plugins.ok("STATUS", portmap) is None
        for cid, pod in pods.items():
            prev = plugins.ok("ADD", bridge, cid=cid, netns=pod.path)
            results[cid] = plugins.ok("ADD", with_mapping(portmap, cid, prev), cid=cid, netns=pod.path)
            assert results[cid]["cniVersion"] == "1.1.0"
        assert sorted(owners(data_dir).values()) == sorted(pods)
        fw = firewall(host_ns)
        assert str(PORTS[KEEP]) in fw and str(PORTS[DROP]) in fw
        if backend == "iptables":
            assert len(container_chains(host_ns)) == 4  # a masquerade chain and a DNAT chain each
        else:
            assert nft_rules_of(host_ns, KEEP) and nft_rules_of(host_ns, DROP)

        # the range (two addresses) is exhausted: STATUS says so with code 50, for the IPAM and via bridge
        assert plugins.error_code("STATUS", bridge) == 50
        assert plugins.error_code("STATUS", bridge, plugin="host-local") == 50

        # DROP's container went away without a DEL (its namespace, hence its veth, is gone) and GC is told
        # only KEEP is valid: DROP's address, masquerade and port-mapping rules go; KEEP's stay
        subprocess.run(["ip", "netns", "delete", pods[DROP].name], check=True)
        plugins.ok("GC", gc_conf(bridge, KEEP, key=key, version=None))
        plugins.ok("GC", gc_conf(portmap, KEEP, key=key, version=None))
        results.pop(DROP)
        assert list(owners(data_dir).values()) == [KEEP]
        fw = firewall(host_ns)
        assert str(PORTS[KEEP]) in fw and str(PORTS[DROP]) not in fw
        if backend == "iptables":
            assert len(container_chains(host_ns)) == 2
            assert KEEP in fw and DROP not in fw
        else:
            assert nft_rules_of(host_ns, KEEP) and not nft_rules_of(host_ns, DROP)
        # GC again is a no-op
        plugins.ok("GC", gc_conf(bridge, KEEP, key=key, version=None))
        plugins.ok("GC", gc_conf(portmap, KEEP, key=key, version=None))
        assert list(owners(data_dir).values()) == [KEEP]
        assert str(PORTS[KEEP]) in firewall(host_ns)

        assert plugins.ok("STATUS", bridge) is None  # an address is free again
        assert plugins.ok("STATUS", bridge, plugin="host-local") is None
        # KEEP still works after GC: CHECK passes
        plugins.ok("CHECK", {**bridge, "prevResult": results[KEEP]}, cid=KEEP, netns=pods[KEEP].path)
        plugins.ok("CHECK", with_mapping(portmap, KEEP, results[KEEP]), cid=KEEP, netns=pods[KEEP].path)

        # GC and STATUS need a 1.1.0 config: older ones are refused with code 1 (incompatible CNI version)
        old_bridge, old_portmap = confs(backend, data_dir, version="1.0.0")
        for conf in (old_bridge, old_portmap):
            assert plugins.error_code("GC", gc_conf(conf, key=key, version=None)) == 1
            assert plugins.error_code("STATUS", conf) == 1
        assert list(owners(data_dir).values()) == [KEEP]  # the refused GC(valid=[]) released nothing

        plugins.ok("DEL", with_mapping(portmap, KEEP, results.pop(KEEP)), cid=KEEP, netns=pods[KEEP].path)
        plugins.ok("DEL", bridge, cid=KEEP, netns=pods[KEEP].path)
        assert owners(data_dir) == {}
        assert host_ns.sh("ip -o link show type veth").strip() == ""
        fw = firewall(host_ns)
        assert KEEP not in fw and str(PORTS[KEEP]) not in fw
        if backend == "iptables":
            assert container_chains(host_ns) == []
    finally:
        for cid, result in results.items():
            plugins.run("DEL", with_mapping(portmap, cid, result), cid=cid, netns=pods[cid].path)
            plugins.run("DEL", bridge, cid=cid, netns=pods[cid].path)


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_gc_without_attachments_is_refused(backend, host_ns, netns_factory, dist_bin, tmp_path):
    """A GC config with neither key is an error (code 7), not "nothing is valid": that would remove everything."""
    plugins = Plugins(host_ns, dist_bin)
    data_dir = tmp_path / "ipam"
    bridge, portmap = confs(backend, data_dir)
    pod = netns_factory("pod")
    result = None
    try:
        prev = plugins.ok("ADD", bridge, cid=KEEP, netns=pod.path)
        result = plugins.ok("ADD", with_mapping(portmap, KEEP, prev), cid=KEEP, netns=pod.path)
        before = firewall(host_ns)
        for conf, plugin in ((bridge, ""), (bridge, "host-local"), (portmap, "")):
            assert plugins.error_code("GC", conf, plugin=plugin) == 7
        assert list(owners(data_dir).values()) == [KEEP]
        assert firewall(host_ns) == before
        plugins.ok("CHECK", with_mapping(portmap, KEEP, result), cid=KEEP, netns=pod.path)
    finally:
        if result is not None:
            plugins.run("DEL", with_mapping(portmap, KEEP, result), cid=KEEP, netns=pod.path)
            plugins.run("DEL", bridge, cid=KEEP, netns=pod.path)
