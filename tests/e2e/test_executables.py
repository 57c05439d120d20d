"""The built executables (dist/cni-bin) speak the protocol, and libcni accepts them.

Every case of the protocol table (tests/support/protocol_cases.py: error codes, version gates, VERSION, malformed input)
runs against every shipped plugin, as it runs in-process in tests/unit/common/test_skel.py: the frozen build
differs from the source tree (it once answered malformed JSON with 999 where the in-process tests passed). Each
run is inside a throwaway node netns, so an input that slipped through to a handler touches nothing of the
machine's. Then each plugin that outputs a result does so at every cniVersion, in that version's shape.
"""
from __future__ import annotations

import ipaddress
import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import SHIPPED_PLUGINS, SYSTEM_PATH, Caller, Netns, run, throwaway_netns, unique_name
from support.protocol_cases import CASES, SPEC_VERSIONS, check_answer, check_result_shape

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def table_ns() -> Iterator[Netns]:
    """One throwaway node netns for the whole table (removed afterwards, even on failure)."""
    with throwaway_netns(unique_name("proto")) as ns:
        yield ns


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_protocol_case(dist_bin: Path, table_ns: Netns, plugin: str, case: Any) -> None:
    done = run([dist_bin / plugin], {"PATH": SYSTEM_PATH, **case.env}, case.stdin, inside=table_ns, timeout=30)
    check_answer(case, plugin, done.status, done.stdout, done.stderr)


# --- results at every version ---------------------------------------------------------------------------------

SUBNET4, SUBNET6 = ipaddress.ip_network("10.78.0.0/24"), ipaddress.ip_network("fd78::/120")


def ipam(data_dir: Path) -> dict[str, Any]:
    return {"type": "host-local", "dataDir": str(data_dir),
            "ranges": [[{"subnet": str(SUBNET4)}], [{"subnet": str(SUBNET6)}]],
            "routes": [{"dst": "0.0.0.0/0"}, {"dst": "::/0"}]}


def prev_result(version: str) -> dict[str, Any]:
    """What bridge hands a chained plugin, in `version`'s own shape."""
    if version in ("0.1.0", "0.2.0"):
        return {"cniVersion": version, "ip4": {"ip": "10.78.0.5/24", "gateway": "10.78.0.1",
                                               "routes": [{"dst": "0.0.0.0/0"}]},
                "ip6": {"ip": "fd78::5/120"}, "dns": {"nameservers": ["10.78.0.1"]}}
    ips = [{"address": "10.78.0.5/24", "gateway": "10.78.0.1", "interface": 1}, {"address": "fd78::5/120",
                                                                                "interface": 1}]
    if version not in ("1.0.0", "1.1.0"):
        ips = [dict(ip, version="6" if ":" in ip["address"] else "4") for ip in ips]
    return {"cniVersion": version, "interfaces": [{"name": "veth1", "mac": "02:00:00:00:00:01"},
                                                 {"name": "eth0", "sandbox": "/run/netns/pod"}],
            "ips": ips, "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.78.0.1"]}}


def scenario(plugin: str, version: str, data_dir: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """The config and environment under which `plugin` outputs a result (a new shipped plugin needs one here)."""
    base = {"cniVersion": version, "name": "protonet", "type": plugin}
    if plugin == "host-local":
        return {**base, "ipam": ipam(data_dir)}, {}
    if plugin == "bridge":
        return {**base, "bridge": "protobr0", "isGateway": True, "ipam": ipam(data_dir)}, {}
    if plugin == "portmap":   # no mappings: the prevResult passes through, no firewall command runs
        return {**base, "prevResult": prev_result(version)}, {}
    if plugin == "firewall":  # the prevResult passes through; its accepts are written in the node netns
        return {**base, "prevResult": prev_result(version)}, {}
    if plugin == "tuning":    # sysctls only: the prevResult passes through, the pod needs no eth0
        return {**base, "dataDir": str(data_dir / "tuning"), "sysctl": {"net.core.somaxconn": "600"},
                "prevResult": prev_result(version)}, {}
    if plugin == "loopback":
        return base, {"CNI_IFNAME": "lo"}
    if plugin == "overlay":   # bridge + host-local over the node subnet that subnet.env names (agent not needed)
        subnet_file = data_dir.parent / "subnet.env"
        subnet_file.write_text(f"FLANNEL_NETWORK=10.78.0.0/16\nFLANNEL_SUBNET=10.78.0.1/24\nFLANNEL_MTU=1450\n"
                               f"FLANNEL_IPMASQ=false\nFLANNEL_IPV6_NETWORK=fd78::/64\nFLANNEL_IPV6_SUBNET={SUBNET6}\n")
        return {**base, "subnetFile": str(subnet_file), "dataDir": str(data_dir / "overlay"),
                "delegate": {"bridge": "protobr0"}, "ipam": {"dataDir": str(data_dir)}}, {}
    raise AssertionError(f"no result scenario for {plugin!r}: add one to scenario()")


def check_addresses(plugin: str, version: str, data: dict[str, Any], addresses: list[Any], pod: Netns) -> None:
    legacy = version in ("0.1.0", "0.2.0")
    if plugin == "loopback":
        assert ipaddress.ip_interface("127.0.0.1/8") in addresses, data
        if not legacy:
            assert [(i["name"], i.get("sandbox")) for i in data["interfaces"]] == [("lo", pod.path)], data
        return
    assert [a.version for a in addresses] == [4, 6], data
    assert addresses[0] in SUBNET4 and addresses[1] in SUBNET6, data
    if plugin in ("portmap", "firewall", "tuning"):
        assert addresses == [ipaddress.ip_interface("10.78.0.5/24"), ipaddress.ip_interface("fd78::5/120")], data
    gateway = data["ip4"]["gateway"] if legacy else data["ips"][0]["gateway"]
    assert gateway == "10.78.0.1", data
    if plugin in ("bridge", "overlay") and not legacy:
        eth0 = [i for i in data["interfaces"] if i.get("sandbox") == pod.path]
        assert [i["name"] for i in eth0] == ["eth0"], data
        assert {data["interfaces"][ip["interface"]]["name"] for ip in data["ips"]} == {"eth0"}, data


@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_results_at_every_version(dist_bin: Path, netns_factory: Callable[[str], Netns], tmp_path: Path,
                                  plugin: str) -> None:
    """ADD at each cniVersion answers in that version's shape, CHECK (>= 0.4.0) with it as prevResult and DEL
    succeed silently; at 1.1.0 STATUS and GC (the container listed as valid) too. Nothing is left in dataDir."""
    node, pod = netns_factory("node"), netns_factory("pod")
    data_dir = tmp_path / "data"
    for n, version in enumerate(SPEC_VERSIONS):
        conf, extra = scenario(plugin, version, data_dir)
        call = Caller([dist_bin / plugin], inside=node, timeout=30, cid=f"proto-{n}", netns=pod.path,
                      cni_path=dist_bin, CNI_ARGS=None, **extra)
        environ = call.env("ADD")

        def verb(command: str, config: dict[str, Any] = conf, call: Caller = call, version: str = version) -> str:
            done = call(command, config)
            assert done.status == 0, (command, version, done.stdout, done.stderr)
            assert "Traceback" not in done.stderr, done.stderr
            return done.stdout

        data = json.loads(verb("ADD"))
        check_addresses(plugin, version, data, check_result_shape(data, version), pod)
        if version not in ("0.1.0", "0.2.0", "0.3.0", "0.3.1"):
            assert verb("CHECK", {**conf, "prevResult": data}) == ""
        if version == "1.1.0":
            assert verb("STATUS") == ""
            valid = [{"containerID": environ["CNI_CONTAINERID"], "ifname": environ["CNI_IFNAME"]}]
            assert verb("GC", {**conf, "cni.dev/valid-attachments": valid}) == ""
            assert verb("CHECK", {**conf, "prevResult": data}) == "", "GC removed a valid attachment"
        assert verb("DEL", {**conf, "prevResult": data}) == ""
    assert allocated_addresses(data_dir) == [], "allocations left after DEL"


def allocated_addresses(data_dir: Path) -> list[str]:
    """host-local's one file per allocated address (named by the address)."""
    found = []
    for path in data_dir.rglob("*"):
        try:
            ipaddress.ip_address(path.name)
        except ValueError:
            continue
        found.append(path.name)
    return sorted(found)


@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_libcni_reads_the_version(dist_bin: Path, cnitool: Path, plugin: str) -> None:
    done = subprocess.run([cnitool, "version", plugin], env={"CNI_PATH": str(dist_bin)}, capture_output=True,
                          timeout=30)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["supportedVersions"] == list(SPEC_VERSIONS)
