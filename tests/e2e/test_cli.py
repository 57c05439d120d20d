"""`pycni` (cli/, docs/cli.md) end to end: every command run inside a throwaway "node" namespace (nsenter --net, so
the namespaces `run` creates are visible to the test), against plugins built into PYCNI_CLI_BIN (default
dist/cni-bin; `make build DIST=/tmp/cli/dist` then PYCNI_CLI_BIN=/tmp/cli/dist/cni-bin), with every directory in
tmp_path. The CLI runs from the source tree (python -m pycni), and once from the PyInstaller build (PYCNI_CLI_EXE,
default dist/pycni/pycni)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import REPO, SYSTEM_PATH, Netns
from support.node import CLIENT, SERVER

pytestmark = pytest.mark.e2e


def _bin() -> Path:
    path = Path(os.environ.get("PYCNI_CLI_BIN", REPO / "dist" / "cni-bin"))
    if not all((path / p).exists() for p in ("bridge", "host-local", "portmap", "loopback", "firewall")):
        pytest.skip(f"{path}: plugins not built (make build)")
    return path


class Cli:
    def __init__(self, node: Netns, work: Path, argv0: list[str]) -> None:
        self.node, self.work, self.argv0 = node, work, argv0
        self.cni_bin = _bin()
        self.tag = uuid.uuid4().hex[:6]
        self.globals = ["--conf-dir", str(work / "net.d"), "--cni-path", str(self.cni_bin),
                        "--cache-dir", str(work / "cache"), "--state-dir", str(work / "state")]
        self.runs: list[subprocess.Popen[bytes]] = []

    def name(self, what: str) -> str:
        return f"pcli-{self.tag}-{what}"

    def argv(self, *args: str) -> list[str]:
        return ["nsenter", f"--net={self.node.path}", "env", f"PATH={SYSTEM_PATH}",
                f"PYTHONPATH={REPO / 'cli'}", *self.argv0, *self.globals, *args]

    def __call__(self, *args: str, ok: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.argv(*args), capture_output=True, text=True, timeout=timeout)
        if ok:
            assert done.returncode == 0, f"pycni {' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
        return done

    def json(self, *args: str) -> Any:
        return json.loads(self(*args).stdout)

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(self.argv(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.runs.append(proc)
        return proc

    def wait_running(self, name: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"run {name} ended: {proc.communicate()}"
            path = self.work / "state" / f"{name}.json"
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("childPid"):
                return state
            time.sleep(0.05)
        raise AssertionError(f"run {name} did not start")

    def cnitool(self, verb: str, network: str, netns: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["nsenter", f"--net={self.node.path}", "env", f"PATH={SYSTEM_PATH}",
                               f"CNI_PATH={self.cni_bin}", f"NETCONFPATH={self.work / 'net.d'}",
                               *[f"{k}={v}" for k, v in env.items()], str(REPO / "dist" / "cnitool"),
                               "--cache-dir", str(self.work / "cache"), verb, network, netns],
                              capture_output=True, text=True, timeout=60)

    def close(self) -> None:
        for proc in self.runs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for name in os.listdir("/run/netns"):
            if name.startswith(f"pycni-pcli-{self.tag}-"):
                subprocess.run(["ip", "netns", "delete", name], check=False)


@pytest.fixture
def cli(host_ns: Netns, tmp_path: Path) -> Iterator[Cli]:
    tool = Cli(host_ns, tmp_path, [sys.executable, "-m", "pycni"])
    try:
        yield tool
    finally:
        tool.close()


def _in(netns: str, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["nsenter", f"--net={netns}", *argv], capture_output=True, text=True, timeout=30,
                          check=check)


def _leftovers(cli: Cli) -> list[str]:
    out = []
    results = cli.work / "cache" / "results"
    if results.exists():
        out += [f"cache {n}" for n in os.listdir(results)]
    ipam = cli.work / "ipam"
    if ipam.exists():
        for net in os.listdir(ipam):
            out += [f"ipam {net}/{n}" for n in os.listdir(ipam / net) if n not in ("lock",)
                    and not n.startswith("last_reserved_ip")]
    state = cli.work / "state"
    if state.exists():
        out += [f"state {n}" for n in os.listdir(state)]
    out += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(f"pycni-pcli-{cli.tag}-")]
    records = Path("/var/lib/cni/pycni-firewall")          # the firewall plugin's per-network records
    if records.exists():
        out += [f"firewall {n}" for n in os.listdir(records) if n.startswith(f"pcli-{cli.tag}-")]
    veths = cli.node.sh("ip -o link show type veth")
    out += [f"veth {line}" for line in veths.splitlines()]
    return out


def _create(cli: Cli, name: str, *flags: str) -> None:
    cli("network", "create", name, "--ipam-dir", str(cli.work / "ipam"), *flags)


def test_seeds_walkthrough(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """docker's network tutorial in pycni commands, on a node whose FORWARD policy is DROP (as with Docker): two
    isolated networks, a server with --ip and -p, a second container on the other network that cannot reach it
    until it is connected to the first network too, inspect, detach (isolated again), rm."""
    cli.node.sh("iptables -P FORWARD DROP")
    net1, net2 = cli.name("net1"), cli.name("net2")
    _create(cli, net1, "--subnet", "10.61.0.0/16", "--ip-range", "10.61.1.0/24", "--gateway", "10.61.0.254",
            "--isolate")
    _create(cli, net2, "--subnet", "10.62.0.0/24", "--isolate")
    table = cli("network", "ls").stdout.splitlines()
    assert table[0].split() == ["NAME", "DRIVER", "SUBNETS", "GATEWAYS", "ATTACHED"]
    assert [line.split() for line in table[1:]] == [[net1, "bridge", "10.61.0.0/16", "10.61.0.254", "0"],
                                                  [net2, "bridge", "10.62.0.0/24", "10.62.0.1", "0"]]
    assert len({line.index("bridge") for line in table[1:]} | {table[0].index("DRIVER")}) == 1   # columns line up

    c1, c2 = cli.name("c1"), cli.name("c2")
    server = cli.start("run", "--name", c1, "--network", net1, "--ip", "10.61.1.10", "-p", "8080:80",
                       "--", sys.executable, "-c", SERVER, "0.0.0.0", "80", "c1")
    s1 = cli.wait_running(c1, server)
    assert server.stdout is not None and server.stdout.readline() == b"ready\n"
    sleeper = cli.start("run", "--name", c2, "--network", net2, "--", "sleep", "120")
    s2 = cli.wait_running(c2, sleeper)
    ps = cli.json("ps", "--json")
    assert {p["name"]: p["running"] for p in ps} == {c1: True, c2: True}
    assert ps[0]["attachments"][1]["addresses"] == ["10.61.1.10/16"]
    assert "10.62.0." in _in(s2["netns"], "ip", "-4", "-o", "addr", "show", "eth0").stdout

    # the networks are isolated: c2 on net2 cannot reach c1 on net1 (the node would route it, the firewall drops it)
    assert _in(s2["netns"], sys.executable, "-c", CLIENT, "10.61.1.10", "80", check=False).returncode != 0
    # connect c2 to net1 as well (docker network connect), then c2 reaches c1 on net1 directly
    cli("attach", net1, s2["netns"], "--id", s2["containerId"], "--ifname", "eth1")
    assert _in(s2["netns"], sys.executable, "-c", CLIENT, "10.61.1.10", "80").stdout == "hello from c1"
    # the published port, from the node on 127.0.0.1 and on the gateway address
    for address in ("127.0.0.1", "10.61.0.254"):
        assert _in(cli.node.path, sys.executable, "-c", CLIENT, address, "8080").stdout == "hello from c1"

    [info] = cli.json("network", "inspect", net1)
    by_id = {(a["containerId"], a["ifname"]): a for a in info["attachments"]}
    assert set(by_id) == {(s1["containerId"], "eth0"), (s2["containerId"], "eth1")}
    a1 = by_id[(s1["containerId"], "eth0")]
    assert a1["addresses"] == ["10.61.1.10/16"] and a1["hostLocal"] == ["10.61.1.10"]
    assert a1["portMappings"] == [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]
    assert a1["sources"] == ["libcni cache", "host-local", "live"] and a1["live"]["mac"] == a1["mac"]
    assert info["attached"] == 2 and info["gateways"] == ["10.61.0.254"]

    cli("detach", net1, s2["netns"], "--id", s2["containerId"], "--ifname", "eth1")
    assert _in(s2["netns"], "ip", "link", "show", "eth1", check=False).returncode != 0
    assert _in(s2["netns"], sys.executable, "-c", CLIENT, "10.61.1.10", "80", check=False).returncode != 0
    refused = cli("network", "rm", net1, ok=False)
    assert refused.returncode == 1 and f"{s1['containerId']}/eth0" in refused.stderr and "--force" in refused.stderr

    server.send_signal(signal.SIGTERM)       # the command gets it; pycni run then tears everything down
    assert server.wait(30) == 128 + signal.SIGTERM
    sleeper.send_signal(signal.SIGINT)
    assert sleeper.wait(30) == 128 + signal.SIGINT
    assert _leftovers(cli) == []
    bridges = {n["name"]: n["bridge"] for n in cli.json("network", "ls", "--json")}
    cli("network", "rm", net1)
    cli("network", "rm", net2, "--purge")
    assert cli("network", "ls", "--json").stdout.strip() == "[]"
    assert cli.node.sh("ip -o link show type bridge").count("pycni-") == 1   # net1's bridge kept (no --purge)
    isolation = cli.node.sh("iptables-save -t filter")
    assert f"-i {bridges[net1]} " in isolation and bridges[net2] not in isolation    # the purged bridge's rules go


def test_attach_then_cnitool_and_reverse(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """pycni writes libcni's cache: the Go driver CHECKs and DELs what pycni attached, and pycni what it added."""
    net = cli.name("x")
    _create(cli, net, "--subnet", "10.63.0.0/24")
    pod = netns_factory("pod")
    out = cli("attach", net, pod.path, "-p", "8090:80/udp", "--ip", "10.63.0.20", "--json").stdout
    assert json.loads(out)["ips"][0]["address"] == "10.63.0.20/24"
    cache = cli.work / "cache" / "results"
    [entry_file] = os.listdir(cache)
    entry = json.loads((cache / entry_file).read_text())
    assert entry["kind"] == "cniCacheV1" and entry["capabilityArgs"]["ips"] == ["10.63.0.20"]
    assert (cache / entry_file).stat().st_mode & 0o777 == 0o600
    check = cli.cnitool("check", net, pod.path,
                        CAP_ARGS=json.dumps({"portMappings": entry["capabilityArgs"]["portMappings"]}))
    assert check.returncode == 0, check.stderr
    deleted = cli.cnitool("del", net, pod.path)
    assert deleted.returncode == 0, deleted.stderr
    assert _leftovers(cli) == []

    added = cli.cnitool("add", net, pod.path)
    assert added.returncode == 0, added.stderr
    cli("check", net, pod.path)
    assert cli.json("network", "ls", "--json")[0]["attached"] == 1
    cli("detach", net, pod.path)
    assert _leftovers(cli) == []
    again = cli("detach", net, pod.path, ok=False)
    assert again.returncode == 1 and "is not attached" in again.stderr


def test_failed_attach_leaves_nothing(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    net = cli.name("f")
    _create(cli, net, "--subnet", "10.64.0.0/24", "--ip-range", "10.64.0.128/25")
    pod = netns_factory("pod")
    failed = cli("attach", net, pod.path, "--ip", "10.64.0.5", ok=False)      # in the subnet, outside the range
    assert failed.returncode == 1 and "plugin type='bridge'" in failed.stderr, failed.stderr
    assert _leftovers(cli) == [] and "eth0" not in pod.sh("ip -o link")
    missing = cli("attach", net, "cli-no-such-netns", ok=False)
    assert "netns 'cli-no-such-netns' not found" in missing.stderr
    outside = cli("attach", net, pod.path, "--ip", "10.99.0.5", ok=False)
    assert "--ip 10.99.0.5 is in none of the subnets" in outside.stderr


def test_run_none_host_exit_status(cli: Cli) -> None:
    done = cli("run", "--name", cli.name("none"), "--network", "none", "--", "sh", "-c",
               "ip -o link show up | grep -c ': lo:'; ip -o link | wc -l; exit 3", ok=False)
    assert done.returncode == 3 and done.stdout.split() == ["1", "1"], done
    cli.node.run("ip", "link", "add", "cli-dummy0", "type", "veth", "peer", "name", "cli-dummy1")
    done = cli("run", "--network", "host", "--", "ip", "link", "show", "cli-dummy0")
    assert "cli-dummy0" in done.stdout
    cli.node.run("ip", "link", "delete", "cli-dummy0")
    bad = cli("run", "--network", "host", "-p", "80:80", "--", "true", ok=False)
    assert bad.returncode == 1 and "-p needs a network" in bad.stderr
    missing = cli("run", "--name", cli.name("nocmd"), "--", "cli-no-such-command", ok=False)
    assert "command not found: 'cli-no-such-command'" in missing.stderr
    assert _leftovers(cli) == []


def test_container_mode_and_killed_run_gc(cli: Cli) -> None:
    net = cli.name("k")
    _create(cli, net, "--subnet", "10.65.0.0/24")
    name = cli.name("victim")
    proc = cli.start("run", "--name", name, "--network", net, "--", "sleep", "120")
    state = cli.wait_running(name, proc)
    joined = cli("run", "--network", f"container:{name}", "--", "ip", "-4", "-o", "addr", "show", "eth0")
    assert "10.65.0." in joined.stdout
    os.kill(state["pid"], signal.SIGKILL)          # pycni itself, not its command: nothing gets torn down
    proc.wait(10)
    os.kill(state["childPid"], signal.SIGKILL)
    doctor = cli("doctor", ok=False)
    assert doctor.returncode == 1 and f"--name {name}" in doctor.stdout and "Fix: pycni gc" in doctor.stdout
    assert [p["running"] for p in cli.json("ps", "--json")] == [False]
    assert f"run {name}: cleaned" in cli("gc").stdout
    assert _leftovers(cli) == [] and cli("doctor").stdout.strip() == "no problems found"


def test_rm_force_and_stale_cache_gc(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    net = cli.name("r")
    _create(cli, net, "--subnet", "10.66.0.0/24")
    pods = [netns_factory("pod") for _ in range(2)]
    for pod in pods:
        cli("attach", net, pod.path)
    pods[1].delete()                                   # a container deleted without DEL
    assert "is gone" in cli("doctor", ok=False).stdout
    assert "detached" in cli("gc", net).stdout
    assert cli.json("network", "ls", "--json")[0]["attached"] == 1
    cli("network", "rm", net, "--force", "--purge")
    assert _leftovers(cli) == [] and not (cli.work / "ipam" / net).exists()


def _orphan(cli: Cli, net: str, pod: Netns, host_port: int) -> tuple[str, str]:
    """cnitool ADD (with a published port) whose cache entry is then deleted, as a runtime that crashed before it
    cached, or lost its cache: the allocation, masquerade chain, portmap and firewall rules stay. (ID, address)"""
    added = cli.cnitool("add", net, pod.path, CAP_ARGS=json.dumps(
        {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}))
    assert added.returncode == 0, added.stderr
    address = json.loads(added.stdout)["ips"][0]["address"].split("/")[0]
    [entry] = [f for f in (cli.work / "cache" / "results").iterdir() if pod.path in f.read_text()]
    cid = json.loads(entry.read_text())["containerId"]
    entry.unlink()
    return cid, address


def _node_rules(cli: Cli) -> str:
    return cli.node.sh("iptables-save -t nat; iptables-save -t filter")


def test_gc_sends_the_plugins_gc(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """Attachments no cache knows: doctor names each leak (allocation, veth, masquerade chain, portmap and firewall
    rules) with its fix; gc's plugin GC (cni.dev/valid-attachments) removes them and keeps the valid attachment."""
    net = cli.name("g")
    _create(cli, net, "--subnet", "10.68.0.0/24")
    lost, kept = netns_factory("pcli-lost"), netns_factory("pcli-kept")
    cid, address = _orphan(cli, net, lost, 8110)
    cli("attach", net, kept.path, "-p", "8111:80")
    [entry] = (cli.work / "cache" / "results").iterdir()
    valid = json.loads(entry.read_text())
    kept_address = valid["result"]["ips"][0]["address"].split("/")[0]
    rules = _node_rules(cli)
    assert rules.count(cid) >= 3                          # masquerade chain, its POSTROUTING jump, portmap's DNAT
    assert f"-s {address}/32 -j ACCEPT" in rules and (cli.work / "ipam" / net / address).exists()
    veths_before = cli.node.sh("ip -o link show type veth").count("master")

    doctor = cli("doctor", ok=False)
    assert doctor.returncode == 1
    found = doctor.stdout.splitlines()
    assert any(f"host-local holds {address} for {cid}/eth0" in line and line.endswith(f"Fix: pycni gc {net}")
               for line in found), found
    for what in ("masquerade chain CNI-", "portmap rules (CNI-DN-", f"firewall accept rules for {address}",
                 "host veth "):
        assert any(what in line and line.endswith(f"Fix: pycni gc {net}") for line in found), (what, found)
    assert kept_address not in doctor.stdout and valid["containerId"] not in doctor.stdout

    done = cli("gc")
    assert f"network {net}: bridge: GC done; portmap: GC done; firewall: GC done" in done.stdout, done.stdout
    assert f"removed: network {net!r}: host-local holds {address}" in done.stdout
    assert not (cli.work / "ipam" / net / address).exists() and (cli.work / "ipam" / net / kept_address).exists()
    rules = _node_rules(cli)
    assert cid not in rules and f"{address}/32" not in rules
    assert valid["containerId"] in rules and f"-s {kept_address}/32 -j ACCEPT" in rules and "8111" in rules
    assert cli.node.sh("ip -o link show type veth").count("master") == veths_before - 1
    assert "eth0" not in lost.sh("ip -o link") and "eth0" in kept.sh("ip -o link")
    assert entry.exists() and cli("doctor").stdout.strip() == "no problems found"
    cli("check", net, kept.path)
    cli("detach", net, kept.path)
    assert _leftovers(cli) == []


def test_gc_nftables_backends(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """The same leaks with every plugin on its nftables backend: doctor finds the rules in nft, gc removes them."""
    net = cli.name("n")
    _create(cli, net, "--subnet", "10.75.0.0/24")
    path = cli.work / "net.d" / f"{net}.conflist"
    conf = json.loads(path.read_text())
    conf["plugins"][0]["ipMasqBackend"] = "nftables"
    conf["plugins"][1]["backend"] = conf["plugins"][2]["backend"] = "nftables"
    path.write_text(json.dumps(conf))
    cid, address = _orphan(cli, net, netns_factory("pcli-lost"), 8113)
    assert cid not in _node_rules(cli) and f"{address}/32" not in _node_rules(cli)     # nothing in iptables
    ruleset = cli.node.sh("nft list ruleset")
    assert cid in ruleset and address in ruleset
    found = cli("doctor", ok=False).stdout.splitlines()
    for what in ("masquerade rules (nftables table inet cni_plugins_masquerade) of container",
                 "portmap rules (nftables table ip cni_hostport) of container",
                 "firewall accept rules (nftables table inet cni_plugins_firewall) of"):
        assert any(what in line and cid in line and line.endswith(f"Fix: pycni gc {net}") for line in found), \
            (what, found)
    cli("gc", net)
    ruleset = cli.node.sh("nft list ruleset")
    assert cid not in ruleset and address not in ruleset
    assert not (cli.work / "ipam" / net / address).exists() and cli("doctor").stdout.strip() == "no problems found"


def test_gc_valid(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """--valid keeps only the attachments listed (by ID, or ID/IFNAME): the others are DELed, then GCed."""
    net = cli.name("v")
    _create(cli, net, "--subnet", "10.69.0.0/24")
    pods = [netns_factory("pcli-pod") for _ in range(3)]
    ids = [cli("attach", net, pod.path).stdout.split()[1] for pod in pods]
    bad = cli("gc", "--valid", "x/", ok=False)
    assert bad.returncode == 1 and "invalid --valid 'x/'" in bad.stderr
    done = cli("gc", net, "--valid", ids[0], "--valid", f"{ids[1]}/eth0")
    assert f"attachment {net} {ids[2]} eth0: detached (it is not in --valid)" in done.stdout, done.stdout
    assert [a["containerId"] for a in cli.json("network", "inspect", net)[0]["attachments"]] == sorted(ids[:2])
    done = cli("gc", net, "--valid", f"{ids[0]}/eth1")
    assert f"{ids[0]} eth0: detached (it is not in --valid)" in done.stdout
    assert f"{ids[1]} eth0: detached (it is not in --valid)" in done.stdout
    assert _leftovers(cli) == [] and cli("doctor").stdout.strip() == "no problems found"


def test_rm_of_host_local_only_attachments(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    net = cli.name("h")
    _create(cli, net, "--subnet", "10.70.0.0/24")
    pod = netns_factory("pcli-pod")
    cid, address = _orphan(cli, net, pod, 8112)
    refused = cli("network", "rm", net, ok=False)
    assert refused.returncode == 1 and f"{cid}/eth0 (only in host-local: {address})" in refused.stderr
    assert "--force" in refused.stderr and (cli.work / "net.d" / f"{net}.conflist").exists()
    cli("network", "rm", net, "--force")
    assert not (cli.work / "net.d" / f"{net}.conflist").exists()
    assert _leftovers(cli) == [] and cid not in _node_rules(cli) and "eth0" not in pod.sh("ip -o link")


def test_doctor_isolation_rules_of_a_deleted_bridge(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    net = cli.name("i")
    _create(cli, net, "--subnet", "10.74.0.0/24", "--isolate")
    pod = netns_factory("pcli-pod")
    cli("attach", net, pod.path)
    cli("detach", net, pod.path)
    bridge = cli.json("network", "ls", "--json")[0]["bridge"]
    assert cli("doctor").stdout.strip() == "no problems found"
    cli.node.run("ip", "link", "delete", bridge)
    doctor = cli("doctor", ok=False)
    assert doctor.returncode == 1 and f"name bridge {bridge}, which no longer exists. Fix: pycni gc {net}" in \
        doctor.stdout, doctor.stdout
    assert "removed: iptables isolation rules in CNI-ISOLATION-STAGE-" in cli("gc", net).stdout
    assert bridge not in cli.node.sh("iptables-save -t filter") and cli("doctor").stdout.strip() == "no problems found"


def test_overlay_network(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """--driver overlay: the node's subnet and MTU come from the agent's subnet file (written here by hand)."""
    subnet_env = cli.work / "subnet.env"
    subnet_env.write_text("FLANNEL_NETWORK=10.76.0.0/16\nFLANNEL_SUBNET=10.76.3.1/24\nFLANNEL_MTU=1400\n"
                          "FLANNEL_IPMASQ=false\n")
    net = cli.name("o")
    _create(cli, net, "--driver", "overlay", "--subnet-file", str(subnet_env))
    path = cli.work / "net.d" / f"{net}.conflist"
    conf = json.loads(path.read_text())
    conf["plugins"][0]["dataDir"] = str(cli.work / "overlay")          # every directory in tmp_path
    path.write_text(json.dumps(conf))
    refused = cli("network", "create", cli.name("o2"), "--driver", "overlay", "--subnet", "10.77.0.0/24", ok=False)
    assert refused.returncode == 1 and "--subnet does not apply to --driver overlay" in refused.stderr
    pod = netns_factory("pcli-pod")
    out = cli("attach", net, pod.path, "--mac", "02:42:0a:4c:03:09", "--json").stdout
    assert json.loads(out)["ips"][0]["address"].startswith("10.76.3.")
    link = pod.sh("ip -o link show eth0")
    assert "mtu 1400" in link and "02:42:0a:4c:03:09" in link
    [row] = cli.json("network", "ls", "--json")
    assert row["driver"] == "overlay" and row["attached"] == 1 and row["bridge"] == conf["plugins"][0]["delegate"][
        "bridge"]
    [info] = cli.json("network", "inspect", net)
    assert info["attachments"][0]["sources"] == ["libcni cache", "host-local", "live"]
    cli("detach", net, pod.path)
    assert _leftovers(cli) == [] and cli("doctor").stdout.strip() == "no problems found"
    cli("network", "rm", net, "--purge")


def test_run_publish_and_mac_per_network(cli: Cli) -> None:
    """-p and --mac unqualified go to the first --network, NETWORK=... to that one; ports are the node's."""
    n1, n2 = cli.name("p1"), cli.name("p2")
    _create(cli, n1, "--subnet", "10.71.0.0/24")
    _create(cli, n2, "--subnet", "10.72.0.0/24")
    name = cli.name("pm")
    proc = cli.start("run", "--name", name, "--network", n1, "--network", n2, "-p", "8120:80",
                     "-p", f"{n2}=8121:80", "--mac", f"{n2}=02:42:ac:11:00:02", "--mac", "02:42:ac:11:00:01",
                     "--", sys.executable, "-c", SERVER, "0.0.0.0", "80", "pm")
    state = cli.wait_running(name, proc)
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    links = _in(state["netns"], "ip", "-o", "link").stdout
    assert "eth0" in links and "02:42:ac:11:00:01" in links.split("eth0")[1].splitlines()[0]
    assert "02:42:ac:11:00:02" in links.split("eth1")[1].splitlines()[0]
    by_net = {a["network"]: a for a in state["attachments"]}
    assert by_net[n1]["portMappings"] == [{"hostPort": 8120, "containerPort": 80, "protocol": "tcp"}]
    assert by_net[n2]["portMappings"] == [{"hostPort": 8121, "containerPort": 80, "protocol": "tcp"}]
    nat = cli.node.sh("iptables-save -t nat")
    assert "--to-destination 10.71.0.2:80" in nat and "--to-destination 10.72.0.2:80" in nat
    for port in ("8120", "8121"):
        assert _in(cli.node.path, sys.executable, "-c", CLIENT, "127.0.0.1", port).stdout == "hello from pm"
    bad = cli("run", "--network", n1, "-p", f"{n2}=1:1", "--", "true", ok=False)
    assert bad.returncode == 1 and f"-p {n2}=...: {n2!r} is not one of the --network values" in bad.stderr
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 128 + signal.SIGTERM
    assert _leftovers(cli) == []


def test_built_executable(host_ns: Netns, tmp_path: Path, netns_factory: Callable[[str], Netns]) -> None:
    exe = Path(os.environ.get("PYCNI_CLI_EXE", REPO / "dist" / "pycni" / "pycni"))
    if not exe.exists():
        pytest.skip(f"{exe} not built (make build)")
    cli = Cli(host_ns, tmp_path, [str(exe)])
    try:
        net = cli.name("b")
        _create(cli, net, "--subnet", "10.67.0.0/24")
        done = cli("run", "--name", cli.name("b1"), "--network", net, "--", "ip", "-4", "-o", "addr", "show", "eth0")
        assert "10.67.0.2/24" in done.stdout
        pod = netns_factory("pod")
        cli("attach", net, pod.path)
        cli("detach", net, pod.path)
        assert _leftovers(cli) == []
    finally:
        cli.close()
