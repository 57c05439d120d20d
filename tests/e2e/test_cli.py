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
    if not all((path / p).exists() for p in ("bridge", "host-local", "portmap", "loopback")):
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
        return f"cli-{self.tag}-{what}"

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
            if name.startswith(f"pycni-cli-{self.tag}-"):
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
    out += [f"netns {n}" for n in os.listdir("/run/netns") if n.startswith(f"pycni-cli-{cli.tag}-")]
    veths = cli.node.sh("ip -o link show type veth")
    out += [f"veth {line}" for line in veths.splitlines()]
    return out


def _create(cli: Cli, name: str, *flags: str) -> None:
    cli("network", "create", name, "--ipam-dir", str(cli.work / "ipam"), *flags)


def test_seeds_walkthrough(cli: Cli, netns_factory: Callable[[str], Netns]) -> None:
    """docker's network tutorial in pycni commands: two networks, a server with --ip and -p, a second container
    connected to the first network too, reachability, inspect, detach, rm."""
    net1, net2 = cli.name("net1"), cli.name("net2")
    _create(cli, net1, "--subnet", "10.61.0.0/16", "--ip-range", "10.61.1.0/24", "--gateway", "10.61.0.254")
    _create(cli, net2, "--subnet", "10.62.0.0/24")
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
    refused = cli("network", "rm", net1, ok=False)
    assert refused.returncode == 1 and f"{s1['containerId']}/eth0" in refused.stderr and "--force" in refused.stderr

    server.send_signal(signal.SIGTERM)       # the command gets it; pycni run then tears everything down
    assert server.wait(30) == 128 + signal.SIGTERM
    sleeper.send_signal(signal.SIGINT)
    assert sleeper.wait(30) == 128 + signal.SIGINT
    assert _leftovers(cli) == []
    cli("network", "rm", net1)
    cli("network", "rm", net2, "--purge")
    assert cli("network", "ls", "--json").stdout.strip() == "[]"
    assert cli.node.sh("ip -o link show type bridge").count("pycni-") == 1   # net1's bridge kept (no --purge)


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
