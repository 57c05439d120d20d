#!/usr/bin/env python3
"""pycni benchmark: pycni and the Go reference plugins side by side, in one run, in throwaway namespaces.

Method
------
* Everything happens inside network namespaces this tool creates: one "node" namespace (``ip netns add``) and a
  pool of "pod" namespaces.  The machine's own network namespace is never touched; host-local data, the libcni
  cache and NETCONFPATH live in a temp dir.  All of it is removed at the end, also on failure or Ctrl-C, and the
  tool then checks that none of its namespaces remain.
* Both sides ("pycni" = --cni-bin, "go" = --go-bin) are driven through the Go libcni driver (``cnitool``), on
  separate bridges, subnets and host ports in the same node namespace, alternating A B A B.
* Timing is done by a small agent (this file with ``--agent``) started once with ``ip netns exec NODE``: it
  spawns each measured process (``os.posix_spawn``), waits for it with ``os.wait4`` and reports the wall time and
  ``ru_maxrss``.  So a time is exactly one cnitool (or plugin) process from spawn to exit, without the cost of
  ``ip netns exec`` or of this tool.
* Peak RSS is measured in separate, untimed passes, with GNU time (``/usr/bin/time -f %M``) as the plugin's
  parent.  Why not ``os.wait4`` from the agent: at exec, Linux seeds a process's ``ru_maxrss`` with the high-water
  RSS of the address space it replaces, and a child spawned by a Python process replaces that ~18 MiB
  interpreter's address space (vfork) or a copy of it (fork), so every plugin would read >= 18 MiB (the Go
  plugins really peak at ~4 MiB).  GNU time
  is a ~1 MiB parent; the floor of the method (``/bin/true``) is reported with the results.  Without
  /usr/bin/time the tool falls back to ``os.wait4`` and says so.  ``ru_maxrss`` is the maximum over the process
  and its waited-for children: bridge's row includes its IPAM delegate, portmap's its iptables children.
* Rows (see docs/benchmarks.md):
  1. full chain bridge(isGateway, ipMasq) + host-local + portmap (one TCP mapping): ADD, DEL, ADD+DEL;
  2. bridge + host-local only: ADD, DEL, ADD+DEL;
  3. the full chain with --nat-rules extra nat rules (one iptables-restore into BENCH-KUBE-SVC, jumped to from
     PREROUTING, like a kube-proxy node), removed afterwards;
  4. --parallel ADDs at once, then as many DELs: wall time of each batch and of both;
  5. host-local executed directly: --allocations ADDs into a /20, first 100 vs last 100 (growth ratio =
     mean(last 100) / mean(first 100));
  6. VERSION of each executable (pure start-up) with its peak RSS, and the peak RSS of each plugin during a real
     full-chain ADD (a separate, untimed pass that execs bridge, portmap and host-local directly);
  7. the overlay (pycni only, no Go counterpart): pod->pod TCP throughput (iperf3, --overlay-seconds) and ping
     RTT (median/p90 of --overlay-pings) on one node, across nodes over VXLAN and over host-gw; and the time from
     starting pycni-overlayd on a new node to its subnet.env, and to a pod on it answering a remote pod.
  8. podman's own chain (bridge, portmap, firewall, tuning) through libcni: ADD, DEL, ADD+DEL;
  9. loopback, firewall and tuning each executed directly (no libcni) in a pod namespace: ADD, DEL, ADD+DEL;
  10. the overlay plugin executed directly, as a kubelet-driven runtime would, over a subnet.env like the one
     pycni-overlayd (or flannel) writes; it runs the bundled bridge and host-local in-process. Go has no overlay
     plugin here (flannel's is not in Debian's containernetworking-plugins), so the Go column is Go's bridge
     executed with the config flannel's plugin delegates for that subnet.env: a lower bound for Go flannel,
     which adds its own exec.
* The first iteration (or round) of every repeated row is a warm-up and is discarded.  Each row reports the
  median and p90 (nearest rank) per side and the pycni/go ratio of the medians.  Absolute times on shared
  machines are noisy; compare the ratios measured in one run.

A side that fails a row gets the error in that row of the table (the other side is still measured) and the tool
exits non-zero.  Usage: bench.py [--cni-bin dist/cni-bin] [--go-bin /usr/lib/cni] [--cnitool dist/cnitool]
[--quick] [--rows 1,2,5] [--json out.json]
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PLUGINS = ("bridge", "host-local", "portmap")
META_PLUGINS = ("loopback", "firewall", "tuning")   # row 9
RSS_TOOL = Path("/usr/bin/time")  # GNU time, the small parent used for peak-RSS passes (module doc)
JOB_TIMEOUT = 180.0  # seconds; a hung plugin is killed and reported as an error
NS_PREFIX = "pycni-bench"


# ======================================================================================================== agent
# Runs inside the node namespace (started with `ip netns exec NODE python bench.py --agent SCRATCH`).  Protocol:
# one JSON request per line on stdin, one JSON reply per line on stdout.
#   {"op": "run", "job": JOB}            -> RESULT
#   {"op": "parallel", "jobs": [JOB...]} -> {"wall": seconds, "results": [RESULT...]}
#   JOB    = {"argv": [...], "env": {...}, "stdin": "text" or null}
#   RESULT = {"rc", "secs", "maxrss_kib", "out", "err", "timeout"}

class _Timeout(Exception):
    pass


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise _Timeout()


def agent_spawn(job: dict[str, Any], scratch: Path, key: str) -> int:
    """Start one job with stdin/stdout/stderr redirected to files; return its pid (or raise OSError)."""
    stdin = scratch / f"{key}.in"
    stdin.write_text(job.get("stdin") or "")
    trunc = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    actions = [(os.POSIX_SPAWN_OPEN, 0, str(stdin), os.O_RDONLY, 0),
               (os.POSIX_SPAWN_OPEN, 1, str(scratch / f"{key}.out"), trunc, 0o600),
               (os.POSIX_SPAWN_OPEN, 2, str(scratch / f"{key}.err"), trunc, 0o600)]
    return os.posix_spawn(job["argv"][0], job["argv"], job["env"], file_actions=actions, setsid=True)


def agent_reap(pids: dict[int, str], timeout: float) -> dict[str, tuple[float, int, int, bool]]:
    """Wait for all pids; return key -> (end time, exit code, maxrss KiB, timed out).  Kill them all on timeout."""
    done: dict[str, tuple[float, int, int, bool]] = {}
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        while len(done) < len(pids):
            pid, status, usage = os.wait4(-1, 0)
            if pid in pids:
                done[pids[pid]] = (time.perf_counter(), os.waitstatus_to_exitcode(status), usage.ru_maxrss, False)
    except _Timeout:
        for pid, key in pids.items():
            if key not in done:
                os.killpg(pid, signal.SIGKILL)
                _, status, usage = os.wait4(pid, 0)
                done[key] = (time.perf_counter(), -9, usage.ru_maxrss, True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return done


def agent_result(scratch: Path, key: str, started: float, reaped: tuple[float, int, int, bool]) -> dict[str, Any]:
    ended, rc, maxrss, timed_out = reaped
    return {"rc": rc, "secs": ended - started, "maxrss_kib": maxrss, "timeout": timed_out,
            "out": (scratch / f"{key}.out").read_text(errors="replace"),
            "err": (scratch / f"{key}.err").read_text(errors="replace")}


def agent_jobs(jobs: list[dict[str, Any]], scratch: Path) -> dict[str, Any]:
    """Start all jobs at once, wait for all; wall time from the first spawn to the last exit."""
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    pids: dict[int, str] = {}
    started = time.perf_counter()
    for i, job in enumerate(jobs):
        try:
            pids[agent_spawn(job, scratch, str(i))] = str(i)
        except OSError as exc:
            results[i] = {"rc": 127, "secs": 0.0, "maxrss_kib": 0, "timeout": False, "out": "",
                          "err": f"cannot execute {job['argv'][0]}: {exc.strerror}"}
    reaped = agent_reap(pids, JOB_TIMEOUT)
    for key, item in reaped.items():
        results[int(key)] = agent_result(scratch, key, started, item)
    wall = max((item[0] for item in reaped.values()), default=started) - started
    return {"wall": wall, "results": results}


def agent_main(scratch: Path) -> int:
    signal.signal(signal.SIGALRM, _on_alarm)
    for line in sys.stdin:
        request = json.loads(line)
        jobs = request["jobs"] if request["op"] == "parallel" else [request["job"]]
        reply = agent_jobs(jobs, scratch)
        sys.stdout.write(json.dumps(reply if request["op"] == "parallel" else reply["results"][0]) + "\n")
        sys.stdout.flush()
    return 0


# ===================================================================================================== host side
class SideError(Exception):
    """One side failed a measurement; the message is shown in that side's cell of the row."""


def sh(*argv: str, ns: str | None = None, check: bool = True, stdin: str | None = None) -> str:
    """Run an untimed helper command (in namespace `ns` when given); return stdout."""
    full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
    done = subprocess.run(full, input=stdin, capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(full)} failed: {(done.stderr or done.stdout).strip()}")
    return done.stdout


class Agent:
    """The timing agent, running inside the node namespace."""

    def __init__(self, node: str, scratch: Path) -> None:
        scratch.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", node, sys.executable, "-I", os.path.abspath(__file__), "--agent", str(scratch)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        to_agent, from_agent = self.proc.stdin, self.proc.stdout
        assert to_agent is not None and from_agent is not None   # Popen(stdin=PIPE, stdout=PIPE)
        to_agent.write(json.dumps(request) + "\n")
        to_agent.flush()
        line = from_agent.readline()
        if not line:
            raise RuntimeError("the timing agent died")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def run(self, argv: list[str], env: dict[str, str], stdin: str | None = None) -> dict[str, Any]:
        return self._ask({"op": "run", "job": {"argv": argv, "env": env, "stdin": stdin}})

    def parallel(self, jobs: list[dict[str, Any]]) -> dict[str, Any]:
        return self._ask({"op": "parallel", "jobs": jobs})

    def close(self) -> None:
        """Stop the agent: close its stdin (it finishes the job at hand), then kill its group if it does not exit."""
        try:
            self.proc.communicate(timeout=JOB_TIMEOUT + 10)  # closes stdin, drains a pending reply
        except (OSError, ValueError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def failure(result: dict[str, Any]) -> str:
    """A one-line reason for a failed job: the CNI error, cnitool's `error:` line, or the exit status."""
    if result["timeout"]:
        return f"timed out after {JOB_TIMEOUT:.0f} s"
    try:
        reply = json.loads(result["out"])
        if isinstance(reply, dict) and "msg" in reply:
            return f"code {reply.get('code')}: {reply['msg']}"
    except ValueError:
        pass
    text: str = result["err"] + "\n" + result["out"]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("error:"):
            return line[len("error:"):].strip()
    return lines[-1] if lines else f"exit status {result['rc']}"


@dataclass
class Side:
    """One set of plugins under test, with its own bridges, subnets, ports, pods and state dirs."""

    name: str
    bin_dir: Path
    number: int          # 1 for pycni, 2 for go: picks subnets 10.20N/10.21N/10.22N
    work: Path
    pods: list[str] = field(default_factory=list)

    @property
    def netconf(self) -> Path:
        return self.work / "net.d"

    @property
    def cache(self) -> Path:
        return self.work / "cache"

    @property
    def data_dir(self) -> Path:
        return self.work / "ipam"

    def host_port(self, j: int) -> int:
        return 10000 * self.number + j

    def bridge_conf(self, bridge: str, subnet: str) -> dict[str, Any]:
        return {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": str(self.data_dir),
                         "routes": [{"dst": "0.0.0.0/0"}]}}

    def networks(self) -> dict[str, dict[str, Any]]:
        short = self.name[:2]
        chain = [self.bridge_conf(f"{short}b0", f"10.20{self.number}.0.0/16"),
                 {"type": "portmap", "capabilities": {"portMappings": True}}]
        plain = [self.bridge_conf(f"{short}b1", f"10.21{self.number}.0.0/16")]
        podman = [self.bridge_conf(f"{short}b2", f"10.23{self.number}.0.0/16"),
                  {"type": "portmap", "capabilities": {"portMappings": True}}, {"type": "firewall", "backend": ""},
                  {"type": "tuning"}]
        return {"bench-chain": {"cniVersion": "1.0.0", "name": "bench-chain", "plugins": chain},
                "bench-bridge": {"cniVersion": "1.0.0", "name": "bench-bridge", "plugins": plain},
                "bench-podman": {"cniVersion": "1.0.0", "name": "bench-podman", "plugins": podman}}

    def meta_conf(self, plugin: str) -> tuple[dict[str, Any], str]:
        """Row 9: a config for `plugin` executed alone, and the CNI_IFNAME it acts on (in the side's first pod)."""
        if plugin == "loopback":
            return {"cniVersion": "1.0.0", "name": "bench-lo", "type": "loopback"}, "lo"
        if plugin == "firewall":   # a prevResult like bridge's: the bridge first, one container address
            prev = {"cniVersion": "1.0.0", "interfaces": [{"name": f"{self.name[:2]}b9"}],
                    "ips": [{"address": f"10.24{self.number}.0.2/24"}]}
            return {"cniVersion": "1.0.0", "name": "bench-fw", "type": "firewall", "prevResult": prev}, "eth0"
        prev = {"cniVersion": "1.0.0", "interfaces": [{"name": "lo", "sandbox": "/run/netns/x"}], "ips": []}
        return {"cniVersion": "1.0.0", "name": "bench-tn", "type": "tuning", "mtu": 1400,
                "sysctl": {"net.core.somaxconn": "1000"}, "prevResult": prev}, "lo"

    def overlay_subnet(self) -> tuple[str, str]:
        """Row 10: this side's cluster network and node subnet (FLANNEL_NETWORK, FLANNEL_SUBNET)."""
        return f"10.25{self.number}.0.0/16", f"10.25{self.number}.1.1/24"

    def overlay_conf(self) -> dict[str, Any]:
        """Row 10: the overlay plugin's config; where there is none (Go), the bridge config flannel's plugin
        builds from the same subnet.env (its defaults: isGateway, ipMasq off when the agent masquerades,
        FLANNEL_MTU, host-local over FLANNEL_SUBNET with a route to FLANNEL_NETWORK) and the same delegate keys."""
        network, subnet = self.overlay_subnet()
        delegate = {"bridge": f"{self.name[:2]}b3", "hairpinMode": True, "isDefaultGateway": True}
        ipam = {"dataDir": str(self.data_dir)}
        if (self.bin_dir / "overlay").exists():
            return {"cniVersion": "1.0.0", "name": "bench-overlay", "type": "overlay",
                    "subnetFile": str(self.work / "subnet.env"), "dataDir": str(self.work / "overlay"),
                    "delegate": delegate, "ipam": ipam}
        prefix = subnet.split("/")[1]
        host_subnet = f"{subnet.rsplit('.', 1)[0]}.0/{prefix}"
        return {"cniVersion": "1.0.0", "name": "bench-overlay", "type": "bridge", "mtu": 1450, "ipMasq": False,
                "isGateway": True, **delegate,
                "ipam": {"type": "host-local", **ipam, "ranges": [[{"subnet": host_subnet}]],
                         "routes": [{"dst": network}]}}

    def write_subnet_env(self) -> None:
        network, subnet = self.overlay_subnet()
        (self.work / "subnet.env").write_text(f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={subnet}\n"
                                              "FLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n")

    def host_local_conf(self) -> dict[str, Any]:
        return {"cniVersion": "1.0.0", "name": "bench-host-local",
                "ipam": {"type": "host-local", "ranges": [[{"subnet": f"10.22{self.number}.0.0/20"}]],
                         "dataDir": str(self.data_dir)}}

    def write_configs(self) -> None:
        for path in (self.netconf, self.cache, self.data_dir):
            path.mkdir(parents=True, exist_ok=True)
        for name, conf in self.networks().items():
            (self.netconf / f"10-{name}.conflist").write_text(json.dumps(conf, indent=2))

    def mapping(self, j: int) -> dict[str, Any]:
        return {"portMappings": [{"hostPort": self.host_port(j), "containerPort": 80, "protocol": "tcp"}]}


@dataclass
class Row:
    """One line of the table: samples per side, or the error that stopped a side."""

    label: str
    unit: str
    values: dict[str, list[float]] = field(default_factory=lambda: {"pycni": [], "go": []})
    errors: dict[str, str] = field(default_factory=dict)

    def add(self, side: str, value: float) -> None:
        self.values[side].append(value)

    def fail(self, side: str, message: str) -> None:
        self.errors.setdefault(side, message)

    def stats(self, side: str) -> dict[str, Any]:
        if side in self.errors:
            return {"error": self.errors[side]}
        xs = sorted(self.values[side])
        if not xs:
            return {"error": "no samples"}
        return {"median": statistics.median(xs), "p90": xs[max(0, math.ceil(0.9 * len(xs)) - 1)], "n": len(xs),
                "samples": xs}

    def ratio(self) -> float | None:
        a, b = self.stats("pycni"), self.stats("go")
        if "median" in a and "median" in b and b["median"]:
            ratio: float = a["median"] / b["median"]
            return ratio
        return None


def ms(result: dict[str, Any]) -> float:
    secs: float = result["secs"]
    return secs * 1000.0


def mib(result: dict[str, Any]) -> float:
    kib: int = result["maxrss_kib"]
    return kib / 1024.0


class Bench:
    """Creates the namespaces, runs the rows, tears everything down."""

    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args, self.work = args, work
        self.tag = uuid.uuid4().hex[:6]
        self.node = f"{NS_PREFIX}-{self.tag}-node"
        self.cnitool_path = str(args.cnitool.resolve())
        self.sides = [Side("pycni", args.pycni_bin.resolve(), 1, work / "pycni"),
                      Side("go", args.go_bin.resolve(), 2, work / "go")]
        self.created: list[str] = []
        self._agent: Agent | None = None   # started by setup()
        self.rows: list[Row] = []
        self.overlay: list[dict[str, Any]] = []            # row 7 (pycni only)
        self.procs: list[subprocess.Popen[bytes]] = []    # row 7's etcd, agents, iperf3 servers
        self.notes: list[str] = []
        self.started = time.monotonic()

    # --- set-up and tear-down ---------------------------------------------------------------------------------
    def setup(self) -> None:
        self.add_netns(self.node)
        sh("ip", "link", "set", "lo", "up", ns=self.node)
        for side in self.sides:
            side.write_configs()
            side.pods = [f"{NS_PREFIX}-{self.tag}-{side.name[:2]}{j}" for j in range(self.args.parallel)]
            for pod in side.pods:
                self.add_netns(pod)
        self._agent = Agent(self.node, self.work / "agent")
        self.progress(f"node namespace {self.node}, {len(self.created) - 1} pod namespaces; "
                      f"pycni={self.sides[0].bin_dir} go={self.sides[1].bin_dir}")

    def add_netns(self, name: str) -> None:
        sh("ip", "netns", "add", name)
        self.created.append(name)

    def teardown(self) -> None:
        if self._agent is not None:
            self._agent.close()
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
        for name in reversed(self.created):
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)

    def leftovers(self) -> list[str]:
        """Namespaces of this run still present, and bench bridges that would have leaked into the host."""
        names = [line.split()[0] for line in sh("ip", "netns", "list").splitlines() if line.strip()]
        left = [name for name in names if name.startswith(f"{NS_PREFIX}-{self.tag}")]
        host_links = sh("ip", "-o", "link", "show").split("\n")
        for bridge in ("pyb0", "pyb1", "pyb2", "gob0", "gob1", "gob2"):
            if any(f": {bridge}:" in line for line in host_links):
                left.append(f"link {bridge} in the host namespace")
        return left

    # --- helpers ------------------------------------------------------------------------------------------------
    @property
    def agent(self) -> Agent:
        if self._agent is None:
            raise RuntimeError("the timing agent is not running (setup() has not run)")
        return self._agent

    def progress(self, text: str) -> None:
        print(f"[{time.monotonic() - self.started:7.1f}s] {text}", flush=True)

    def report(self, rows: list[Row]) -> None:
        for row in rows:
            cells = []
            for side in ("pycni", "go"):
                st = row.stats(side)
                cells.append(f"{side} ERROR ({st['error'][:80]})" if "error" in st
                             else f"{side} {st['median']:.1f} {row.unit}")
            ratio = row.ratio()
            self.progress(f"{row.label}: {', '.join(cells)}" + (f" -> {ratio:.2f}x" if ratio else ""))
        self.rows.extend(rows)

    def cnitool_job(self, side: Side, verb: str, net: str, cid: str, pod: str,
                    cap_args: dict[str, Any]) -> dict[str, Any]:
        env = {"PATH": PATH, "CNI_PATH": str(side.bin_dir), "NETCONFPATH": str(side.netconf), "CNI_IFNAME": "eth0",
               "CNI_CONTAINERID": cid, "CAP_ARGS": json.dumps(cap_args)}
        argv = [self.cnitool_path, "--cache-dir", str(side.cache), verb, net, f"/run/netns/{pod}"]
        return {"argv": argv, "env": env, "stdin": None}

    def cnitool(self, side: Side, verb: str, net: str, cid: str, pod: str,
                cap_args: dict[str, Any]) -> dict[str, Any]:
        job = self.cnitool_job(side, verb, net, cid, pod, cap_args)
        return self.agent.run(job["argv"], job["env"])

    def plugin(self, side: Side, plugin: str, command: str, conf: dict[str, Any] | None, cid: str = "bench",
               rss: bool = False, ifname: str = "eth0") -> dict[str, Any]:
        """Exec one plugin directly (no libcni) with a CNI environment and `conf` on stdin.

        With `rss`, the plugin runs under GNU time and the result's maxrss_kib is GNU time's figure (module doc).
        """
        env = {"PATH": PATH, "CNI_COMMAND": command, "CNI_PATH": str(side.bin_dir)}
        if command != "VERSION":
            env.update(CNI_CONTAINERID=cid, CNI_NETNS=f"/run/netns/{side.pods[0]}", CNI_IFNAME=ifname)
        stdin = json.dumps(conf if conf is not None else {"cniVersion": "1.0.0"})
        return self.measured([str(side.bin_dir / plugin)], env, stdin, rss)

    def measured(self, argv: list[str], env: dict[str, str], stdin: str | None, rss: bool) -> dict[str, Any]:
        if not (rss and RSS_TOOL.exists()):
            return self.agent.run(argv, env, stdin)
        report = self.work / "rss.txt"
        result = self.agent.run([str(RSS_TOOL), "-q", "-f", "%M", "-o", str(report), *argv], env, stdin)
        try:
            result["maxrss_kib"] = int(report.read_text().split()[-1])
        except (OSError, ValueError, IndexError):
            result["maxrss_kib"] = 0
        return result

    def rss_floor(self) -> float:
        """Peak RSS the method reports for /bin/true: nothing below this can be told apart."""
        return mib(self.measured(["/bin/true"], {"PATH": PATH}, None, rss=True))

    # --- rows 1-3: serial ADD / DEL through libcni ----------------------------------------------------------------
    def add_del(self, side: Side, net: str, cid: str, cap_args: dict[str, Any]) -> tuple[float, float]:
        pod = side.pods[0]
        added = self.cnitool(side, "add", net, cid, pod, cap_args)
        if added["rc"] != 0:
            self.cnitool(side, "del", net, cid, pod, cap_args)  # best-effort clean-up before the next row
            raise SideError(f"ADD: {failure(added)}")
        deleted = self.cnitool(side, "del", net, cid, pod, cap_args)
        if deleted["rc"] != 0:
            raise SideError(f"DEL: {failure(deleted)}")
        return ms(added), ms(deleted)

    def serial_rows(self, label: str, net: str, key: str) -> list[Row]:
        rows = [Row(f"{label} ADD", "ms"), Row(f"{label} DEL", "ms"), Row(f"{label} ADD+DEL", "ms")]
        for i in range(self.args.iterations + 1):
            for side in self.sides:
                if side.name in rows[0].errors:
                    continue
                cap_args = side.mapping(0) if net in ("bench-chain", "bench-podman") else {}
                try:
                    add, delete = self.add_del(side, net, f"bench-{side.name}-{key}-{i}", cap_args)
                except SideError as exc:
                    for row in rows:
                        row.fail(side.name, str(exc))
                    continue
                if i > 0:  # iteration 0 is the warm-up
                    for row, value in zip(rows, (add, delete, add + delete)):
                        row.add(side.name, value)
        return rows

    def row_chain(self) -> list[Row]:
        return self.serial_rows("chain", "bench-chain", "chain")

    def row_bridge(self) -> list[Row]:
        return self.serial_rows("bridge+host-local", "bench-bridge", "bridge")

    def row_podman(self) -> list[Row]:
        return self.serial_rows("podman chain", "bench-podman", "podman")

    # --- row 9: loopback, firewall, tuning alone ---------------------------------------------------------------
    def row_meta(self) -> list[Row]:
        def job_of(plugin: str) -> Callable[[Side], tuple[str, dict[str, Any], str]]:
            return lambda side: (plugin, *side.meta_conf(plugin))
        return [row for plugin in META_PLUGINS for row in self.direct_rows(plugin, job_of(plugin))]

    # --- row 10: the overlay plugin (Go: the bridge config flannel would delegate) ---------------------------
    def row_overlay_cni(self) -> list[Row]:
        for side in self.sides:
            side.write_subnet_env()

        def job(side: Side) -> tuple[str, dict[str, Any], str]:
            conf = side.overlay_conf()
            return str(conf["type"]), conf, "eth0"
        return self.direct_rows("overlay", job)

    def direct_rows(self, label: str, job: Callable[[Side], tuple[str, dict[str, Any], str]]) -> list[Row]:
        """Rows 9 and 10: `label` ADD, DEL and ADD+DEL, each side's plugin exec'd directly in its first pod;
        job(side) -> (plugin, config, CNI_IFNAME)."""
        rows = [Row(f"{label} ADD", "ms"), Row(f"{label} DEL", "ms"), Row(f"{label} ADD+DEL", "ms")]
        for i in range(self.args.iterations + 1):
            for side in self.sides:
                if side.name in rows[0].errors:
                    continue
                plugin, conf, ifname = job(side)
                cid = f"bench-{side.name}-{label}-{i}"
                added = self.plugin(side, plugin, "ADD", conf, cid, ifname=ifname)
                deleted = self.plugin(side, plugin, "DEL", conf, cid, ifname=ifname)
                failed = next((f"{verb}: {failure(r)}" for verb, r in (("ADD", added), ("DEL", deleted))
                               if r["rc"] != 0), None)
                if failed:
                    for row in rows:
                        row.fail(side.name, failed)
                elif i > 0:   # iteration 0 is the warm-up
                    for row, value in zip(rows, (ms(added), ms(deleted), ms(added) + ms(deleted))):
                        row.add(side.name, value)
        return rows

    def row_nat_rules(self) -> list[Row]:
        count = self.args.nat_rules
        started = time.monotonic()
        sh("iptables-restore", "-w", "--noflush", ns=self.node, stdin=nat_rules(count))
        loaded = sh("iptables-save", "-t", "nat", ns=self.node).count("-A BENCH-KUBE-SVC ")
        if loaded != count:
            raise RuntimeError(f"loaded {loaded} nat rules, expected {count}")
        self.notes.append(f"row 3: {count} nat rules loaded with one iptables-restore in "
                          f"{time.monotonic() - started:.1f} s")
        self.progress(self.notes[-1])
        try:
            amount = f"{count // 1000}k" if count >= 1000 and count % 1000 == 0 else str(count)
            return self.serial_rows(f"chain, {amount} nat rules", "bench-chain", "nat")
        finally:
            sh("iptables-restore", "-w", "--noflush", ns=self.node, stdin=nat_rules_removal())

    # --- row 4: parallel ADDs then DELs ---------------------------------------------------------------------------
    def batch_jobs(self, side: Side, verb: str, round_no: int) -> list[dict[str, Any]]:
        return [self.cnitool_job(side, verb, "bench-chain", f"bench-{side.name}-par{round_no}-{j}", pod,
                                 side.mapping(j)) for j, pod in enumerate(side.pods)]

    def batch(self, side: Side, verb: str, round_no: int) -> float:
        """All pods of `side` at once through libcni; returns the wall time (ms) of the whole batch."""
        reply = self.agent.parallel(self.batch_jobs(side, verb, round_no))
        failed = [failure(r) for r in reply["results"] if r["rc"] != 0]
        if failed:
            if verb == "add":  # best-effort clean-up before the next row
                self.agent.parallel(self.batch_jobs(side, "del", round_no))
            raise SideError(f"{verb.upper()}: {len(failed)}/{len(side.pods)} failed, first: {failed[0]}")
        wall: float = reply["wall"]
        return wall * 1000.0

    def row_parallel(self) -> list[Row]:
        n = self.args.parallel
        rows = [Row(f"{n} parallel ADD, wall", "ms"), Row(f"{n} parallel DEL, wall", "ms"),
                Row(f"{n} parallel ADD + {n} parallel DEL, wall", "ms")]
        for r in range(self.args.parallel_rounds + 1):
            for side in self.sides:
                if side.name in rows[0].errors:
                    continue
                try:
                    walls = (self.batch(side, "add", r), self.batch(side, "del", r))
                except SideError as exc:
                    for row in rows:
                        row.fail(side.name, str(exc))
                    continue
                if r > 0:
                    for row, wall in zip(rows, (*walls, sum(walls))):
                        row.add(side.name, wall)
        return rows

    # --- row 5: host-local alone, growth ----------------------------------------------------------------------------
    def row_host_local(self) -> list[Row]:
        n = self.args.allocations
        window = min(100, n // 2)
        times: dict[str, list[float]] = {side.name: [] for side in self.sides}
        errors: dict[str, str] = {}
        for k in range(n):
            for side in self.sides:
                if side.name in errors:
                    continue
                result = self.plugin(side, "host-local", "ADD", side.host_local_conf(), f"bench-hl-{k}")
                if result["rc"] != 0:
                    errors[side.name] = f"ADD #{k + 1}: {failure(result)}"
                    continue
                times[side.name].append(ms(result))
            if (k + 1) % max(100, n // 4) == 0 and k + 1 < n:
                self.progress(f"host-local: {k + 1}/{n} allocations")
        rows = [Row(f"host-local first {window} of {n}", "ms"), Row(f"host-local last {window} of {n}", "ms"),
                Row("host-local growth (mean last/first)", "x"), Row(f"host-local all {n} allocations", "s")]
        for side in self.sides:
            if side.name in errors:
                for row in rows:
                    row.fail(side.name, errors[side.name])
                continue
            first, last = times[side.name][:window], times[side.name][-window:]
            rows[0].values[side.name] = first
            rows[1].values[side.name] = last
            rows[2].add(side.name, statistics.mean(last) / statistics.mean(first))
            rows[3].add(side.name, sum(times[side.name]) / 1000.0)
        return rows

    # --- row 6: start-up and memory ------------------------------------------------------------------------------
    def row_version(self) -> list[Row]:
        latency = {p: Row(f"VERSION {p}", "ms") for p in PLUGINS}
        for i in range(self.args.iterations + 1):
            for side in self.sides:
                for p in PLUGINS:
                    result = self.plugin(side, p, "VERSION", None)
                    if result["rc"] != 0 or not result["out"].strip().startswith("{"):
                        latency[p].fail(side.name, failure(result))
                    elif i > 0:
                        latency[p].add(side.name, ms(result))
        return list(latency.values())

    def row_rss_version(self) -> list[Row]:
        memory = {p: Row(f"peak RSS, VERSION {p}", "MiB") for p in PLUGINS}
        for i in range(self.args.iterations + 1):
            for side in self.sides:
                for p in PLUGINS:
                    result = self.plugin(side, p, "VERSION", None, rss=True)
                    if result["rc"] != 0:
                        memory[p].fail(side.name, failure(result))
                    elif i > 0:
                        memory[p].add(side.name, mib(result))
        return list(memory.values())

    def rss_add_once(self, side: Side, i: int) -> dict[str, float]:
        """One untimed full-chain ADD with each plugin exec'd directly; returns plugin -> peak RSS (MiB)."""
        chain = side.networks()["bench-chain"]
        bridge = {"cniVersion": "1.0.0", "name": "bench-chain", **chain["plugins"][0]}
        portmap = {"cniVersion": "1.0.0", "name": "bench-chain", "type": "portmap",
                   "runtimeConfig": side.mapping(0)}
        host_local = {"cniVersion": "1.0.0", "name": "bench-chain", "ipam": bridge["ipam"]}
        cid = f"bench-{side.name}-rss-{i}"
        peaks: dict[str, float] = {}
        try:
            added = self.plugin(side, "bridge", "ADD", bridge, cid, rss=True)
            if added["rc"] != 0:
                raise SideError(f"bridge ADD: {failure(added)}")
            peaks["bridge"] = mib(added)
            mapped = self.plugin(side, "portmap", "ADD", {**portmap, "prevResult": json.loads(added["out"])}, cid,
                                 rss=True)
            if mapped["rc"] != 0:
                raise SideError(f"portmap ADD: {failure(mapped)}")
            peaks["portmap"] = mib(mapped)
            allocated = self.plugin(side, "host-local", "ADD", host_local, cid + "-hl", rss=True)
            if allocated["rc"] != 0:
                raise SideError(f"host-local ADD: {failure(allocated)}")
            peaks["host-local"] = mib(allocated)
        finally:
            self.plugin(side, "host-local", "DEL", host_local, cid + "-hl")
            self.plugin(side, "portmap", "DEL", portmap, cid)
            self.plugin(side, "bridge", "DEL", bridge, cid)
        return peaks

    def row_rss_add(self) -> list[Row]:
        rows = {p: Row(f"peak RSS, full-chain ADD, {p}", "MiB") for p in PLUGINS}
        for i in range(self.args.iterations + 1):
            for side in self.sides:
                if side.name in rows["bridge"].errors:
                    continue
                try:
                    peaks = self.rss_add_once(side, i)
                except SideError as exc:
                    for row in rows.values():
                        row.fail(side.name, str(exc))
                    continue
                for p, value in peaks.items():
                    if i > 0:
                        rows[p].add(side.name, value)
        return list(rows.values())

    def row_startup(self) -> list[Row]:
        floor = self.rss_floor()
        method = f"GNU time ({RSS_TOOL})" if RSS_TOOL.exists() else "os.wait4 from the agent (inflated, see doc)"
        self.notes.append(f"peak RSS measured with {method}; floor of the method (/bin/true): {floor:.1f} MiB")
        self.progress(self.notes[-1])
        return self.row_version() + self.row_rss_version() + self.row_rss_add()

    # --- the run --------------------------------------------------------------------------------------------------
    def run(self, wanted: set[int]) -> None:
        rows = {1: self.row_chain, 2: self.row_bridge, 3: self.row_nat_rules, 4: self.row_parallel,
                5: self.row_host_local, 6: self.row_startup, 8: self.row_podman, 9: self.row_meta,
                10: self.row_overlay_cni}
        for number, measure in rows.items():
            if number in wanted:
                self.report(measure())
        if 7 in wanted:
            self.row_overlay()

    def row_overlay(self) -> None:
        for backend in ("vxlan", "host-gw"):
            try:
                rows = OverlayBench(self, backend).run()
            except (SideError, subprocess.SubprocessError, RuntimeError, OSError) as exc:
                self.overlay.append({"path": f"overlay {backend}", "error": str(exc)})
                self.progress(f"overlay {backend}: ERROR {exc}")
                continue
            for row in rows:
                self.progress(f"overlay: {row['path']}: " + ", ".join(
                    f"{key} {value:.0f}" for key, value in row.items() if key != "path"))
            self.overlay.extend(rows)


OVERLAY_NET = {"vxlan": '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"vxlan","VNI":1}}',
               "host-gw": '{"Network":"10.244.0.0/16","SubnetLen":24,"Backend":{"Type":"host-gw"}}'}


class OverlayBench:
    """Row 7: a cluster in namespaces (underlay bridge 192.0.2.1/24, etcd .11, nodes .21/.22, pods in 10.244/16)
    per backend; every namespace and process is the Bench's to remove (teardown), also on failure."""

    def __init__(self, bench: Bench, backend: str) -> None:
        self.bench, self.backend = bench, backend
        self.base = f"{NS_PREFIX}-{bench.tag}-{'vx' if backend == 'vxlan' else 'gw'}"
        self.work = bench.work / f"overlay-{backend}"
        self.ul, self.etcd = f"{self.base}-ul", f"{self.base}-etcd"
        self.nodes = [f"{self.base}-n1", f"{self.base}-n2"]
        self.pods: list[str] = []

    def netns(self, name: str, address: str | None = None) -> None:
        self.bench.add_netns(name)
        sh("ip", "link", "set", "lo", "up", ns=name)
        if address is not None:
            port = f"v{len(self.bench.created)}"
            sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name, ns=self.ul)
            sh("ip", "link", "set", port, "master", "br-ul", "up", ns=self.ul)
            sh("ip", "addr", "add", f"{address}/24", "dev", "eth0", ns=name)
            sh("ip", "link", "set", "eth0", "up", ns=name)
            sh("ip", "route", "add", "default", "via", "192.0.2.1", ns=name)

    def popen(self, ns: str, argv: list[str], log: str) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(["ip", "netns", "exec", ns, *argv], stdout=subprocess.DEVNULL,
                                stderr=open(self.work / log, "ab"))
        self.bench.procs.append(proc)
        return proc

    def setup(self) -> None:
        self.work.mkdir()
        self.netns(self.ul)
        sh("ip", "link", "add", "br-ul", "type", "bridge", ns=self.ul)
        sh("ip", "addr", "add", "192.0.2.1/24", "dev", "br-ul", ns=self.ul)
        sh("ip", "link", "set", "br-ul", "up", ns=self.ul)
        self.netns(self.etcd, "192.0.2.11")
        url = "http://192.0.2.11:2379"
        self.popen(self.etcd, ["etcd", "--name", "m1", "--data-dir", str(self.work / "etcd"), "--listen-client-urls",
                               url, "--advertise-client-urls", url, "--listen-peer-urls", "http://192.0.2.11:2380",
                               "--initial-advertise-peer-urls", "http://192.0.2.11:2380",
                               "--initial-cluster", "m1=http://192.0.2.11:2380"], "etcd.log")
        deadline = time.monotonic() + 20
        while subprocess.run(["ip", "netns", "exec", self.ul, "etcdctl", "--endpoints", url, "put",
                              "/pycni/network/config", "--", OVERLAY_NET[self.backend]], capture_output=True,
                             env={"ETCDCTL_API": "3", "PATH": PATH}).returncode != 0:
            if time.monotonic() > deadline:
                raise SideError(f"etcd did not start: {(self.work / 'etcd.log').read_text()[-300:]}")
            time.sleep(0.1)
        for i, node in enumerate(self.nodes):
            self.netns(node, f"192.0.2.{21 + i}")
            (self.work / node / "net.d").mkdir(parents=True)
            conflist = {"cniVersion": "1.0.0", "name": "ovbench", "plugins": [
                {"type": "overlay", "subnetFile": str(self.work / node / "subnet.env"),
                 "dataDir": str(self.work / node / "state"), "ipam": {"dataDir": str(self.work / node / "ipam")}}]}
            (self.work / node / "net.d" / "ovbench.conflist").write_text(json.dumps(conflist))

    def start_agent(self, i: int) -> tuple[float, float]:
        """Start node i's agent; (seconds to its subnet.env, the same as a monotonic instant)."""
        agent = self.bench.args.overlayd
        argv = [str(agent)] if agent.suffix != ".py" else [sys.executable, str(agent)]
        node, started = self.nodes[i], time.monotonic()
        env_file = self.work / node / "subnet.env"
        proc = self.popen(node, [*argv, "--etcd-endpoints", "http://192.0.2.11:2379", "--subnet-file", str(env_file)],
                          f"agent-{i + 1}.log")
        while not env_file.exists():
            if proc.poll() is not None or time.monotonic() - started > 30:
                log = (self.work / f"agent-{i + 1}.log").read_text()[-300:]
                raise SideError(f"pycni-overlayd on node {i + 1}: {log}")
            time.sleep(0.005)
        return time.monotonic() - started, started

    def add_pod(self, i: int) -> tuple[str, str]:
        pod = f"{self.base}-p{len(self.pods) + 1}"
        self.netns(pod)
        self.pods.append(pod)
        env = {"PATH": PATH, "CNI_PATH": str(self.bench.args.pycni_bin.resolve()), "CNI_IFNAME": "eth0",
               "NETCONFPATH": str(self.work / self.nodes[i] / "net.d"), "CNI_CONTAINERID": pod}
        done = subprocess.run(["ip", "netns", "exec", self.nodes[i], self.bench.cnitool_path, "--cache-dir",
                               str(self.work / "cache"), "add", "ovbench", f"/run/netns/{pod}"],
                              capture_output=True, text=True, env=env, timeout=60)
        if done.returncode != 0:
            raise SideError(f"overlay ADD on node {i + 1}: {done.stderr.strip() or done.stdout.strip()}")
        return pod, json.loads(done.stdout)["ips"][0]["address"].split("/")[0]

    def rtt(self, src: str, dst: str) -> tuple[float, float]:
        """Median and p90 of ping RTTs, microseconds."""
        count = self.bench.args.overlay_pings
        out = sh("ping", "-n", "-c", str(count), "-i", "0.01", dst, ns=src)
        times = sorted(float(line.split("time=")[1].split()[0]) * 1000 for line in out.splitlines() if "time=" in line)
        if not times:
            raise SideError(f"ping {dst} from {src}: {out[-200:]}")
        return statistics.median(times), times[max(0, math.ceil(0.9 * len(times)) - 1)]

    def throughput(self, src: str, dst: str, dst_ip: str) -> float:
        """iperf3 TCP throughput src -> dst, Mbit/s (the receiver's figure)."""
        server = subprocess.Popen(["ip", "netns", "exec", dst, "iperf3", "-s", "-1", "-B", dst_ip],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.bench.procs.append(server)
        try:
            for _ in range(50):
                done = subprocess.run(["ip", "netns", "exec", src, "iperf3", "-c", dst_ip, "-J", "-t",
                                       str(self.bench.args.overlay_seconds)], capture_output=True, text=True,
                                      timeout=120)
                if done.returncode == 0:    # iperf 3.12 -J also exits 0 on "unable to connect": see "error"
                    try:
                        answer = json.loads(done.stdout)
                        if "error" not in answer:
                            return float(answer["end"]["sum_received"]["bits_per_second"]) / 1e6
                    except (ValueError, KeyError, TypeError):
                        raise SideError(f"iperf3 to {dst_ip}: no receiver figure in {done.stdout[-300:]!r}") \
                            from None
                time.sleep(0.1)      # the server is not listening yet
            raise SideError(f"iperf3 to {dst_ip}: {done.stdout[-300:]} {done.stderr[-300:]}")
        finally:
            server.kill()
            server.wait(timeout=10)

    def run(self) -> list[dict[str, Any]]:
        """One row per path, and the agent start-up row of this backend."""
        self.setup()
        self.start_agent(0)
        (p1, ip1), (p2, ip2) = self.add_pod(0), self.add_pod(0)
        ready, started = self.start_agent(1)
        p3, ip3 = self.add_pod(1)
        while subprocess.run(["ip", "netns", "exec", p1, "ping", "-c", "1", "-W", "0.2", ip3],
                             capture_output=True).returncode != 0:
            if time.monotonic() - started > 30:
                raise SideError(f"{ip3} on node 2 never answered {ip1} on node 1")
        reachable = time.monotonic() - started
        rows = []
        paths = ([("same node (bridge)", p1, p2, ip2)] if self.backend == "vxlan" else []) + \
            [(f"across nodes ({self.backend})", p1, p3, ip3)]
        for label, src, dst, dst_ip in paths:
            median, p90 = self.rtt(src, dst_ip)
            rows.append({"path": label, "throughput_mbit_s": self.throughput(src, dst, dst_ip),
                         "rtt_median_us": median, "rtt_p90_us": p90})
        rows.append({"path": f"agent start ({self.backend}, 2nd node)", "start_to_ready_ms": ready * 1000,
                     "start_to_reachable_ms": reachable * 1000})
        return rows


def overlay_table(rows: list[dict[str, Any]]) -> str:
    lines = ["| pod -> pod | TCP throughput (Mbit/s) | RTT median (µs) | RTT p90 (µs) |", "|---|---|---|---|"]
    for row in rows:
        if "throughput_mbit_s" in row:
            lines.append(f"| {row['path']} | {row['throughput_mbit_s']:.0f} | {row['rtt_median_us']:.0f} | "
                         f"{row['rtt_p90_us']:.0f} |")
    lines += ["", "| pycni-overlayd | start -> subnet.env (ms) | start -> pod on it reachable from a remote pod (ms) |",
              "|---|---|---|"]
    for row in rows:
        if "start_to_ready_ms" in row:
            lines.append(f"| {row['path']} | {row['start_to_ready_ms']:.0f} | {row['start_to_reachable_ms']:.0f} |")
    return "\n".join(lines)


def nat_rules(count: int) -> str:
    """A kube-proxy-like nat table: `count` DNAT rules for service IPs in a chain jumped to from PREROUTING."""
    lines = ["*nat", ":BENCH-KUBE-SVC - [0:0]", "-A PREROUTING -j BENCH-KUBE-SVC"]
    for i in range(count):
        svc = f"172.30.{i // 250}.{i % 250 + 1}"
        backend = f"10.250.{i // 250}.{i % 250 + 1}"
        lines.append(f'-A BENCH-KUBE-SVC -d {svc}/32 -p tcp -m tcp --dport 80 -m comment --comment "bench/svc-{i}" '
                     f"-j DNAT --to-destination {backend}:8080")
    return "\n".join(lines + ["COMMIT", ""])


def nat_rules_removal() -> str:
    return "\n".join(["*nat", "-D PREROUTING -j BENCH-KUBE-SVC", "-F BENCH-KUBE-SVC", "-X BENCH-KUBE-SVC",
                      "COMMIT", ""])


# ====================================================================================================== output
def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    iptables = subprocess.run(["iptables", "--version"], capture_output=True, text=True).stdout.strip()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown")
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "iptables": iptables, "python": platform.python_version(), "loadavg_start": os.getloadavg(),
            "pycni_bin": str(args.pycni_bin.resolve()), "go_bin": str(args.go_bin.resolve()),
            "cnitool": str(args.cnitool.resolve())}


def cell(stats: dict[str, Any], key: str, unit: str) -> str:
    if "error" in stats:
        return f"ERROR: {stats['error'][:70]}" if key == "median" else "—"
    if key == "p90" and stats["n"] == 1:
        return "—"
    return f"{stats[key]:.2f}" if unit == "x" else f"{stats[key]:.1f}"


def table(rows: list[Row]) -> str:
    """The result as a Markdown table (pasteable into docs/benchmarks.md)."""
    head = ["row", "unit", "pycni median", "pycni p90", "go median", "go p90", "pycni/go"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        a, b = row.stats("pycni"), row.stats("go")
        ratio = row.ratio()
        cells = [row.label, row.unit, cell(a, "median", row.unit), cell(a, "p90", row.unit),
                 cell(b, "median", row.unit), cell(b, "p90", row.unit), f"{ratio:.2f}" if ratio else "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors_list(rows: list[Row]) -> list[str]:
    """One line per distinct (side, error), naming the rows it stopped."""
    stopped: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for side, message in row.errors.items():
            stopped.setdefault((side, message), []).append(row.label)
    return [f"[{side}] {message} (rows: {'; '.join(labels)})" for (side, message), labels in stopped.items()]


def as_json(rows: list[Row], notes: list[str], info: dict[str, Any], args: argparse.Namespace, left: list[str],
            complete: bool) -> dict[str, Any]:
    settings = {k: v for k, v in vars(args).items() if isinstance(v, (int, str, bool, float)) or v is None}
    return {"machine": info, "settings": settings, "complete": complete, "leftovers": left, "notes": notes,
            "rows": [{"row": row.label, "unit": row.unit, "pycni": row.stats("pycni"), "go": row.stats("go"),
                      "ratio": row.ratio()} for row in rows]}


# ======================================================================================================== main
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cni-bin", "--pycni-bin", dest="pycni_bin", type=Path, default=Path("dist/cni-bin"),
                        help="pycni's plugin directory (default dist/cni-bin)")
    parser.add_argument("--go-bin", type=Path, default=Path("/usr/lib/cni"),
                        help="the Go reference plugins (default /usr/lib/cni)")
    parser.add_argument("--cnitool", type=Path, default=Path("dist/cnitool"), help="the Go libcni driver")
    parser.add_argument("--iterations", type=int, help="measured iterations of rows 1-3, 6 and 8-10 (default 15; "
                        "--quick 5), plus one discarded warm-up")
    parser.add_argument("--parallel-rounds", type=int, help="measured rounds of row 4 (default 3; --quick 1), "
                        "plus one discarded warm-up")
    parser.add_argument("--parallel", type=int, default=30, help="pods per parallel batch (default 30)")
    parser.add_argument("--allocations", type=int, help="host-local allocations of row 5 (default 2000; "
                        "--quick 300)")
    parser.add_argument("--nat-rules", type=int, default=5000, help="extra nat rules of row 3 (default 5000)")
    parser.add_argument("--rows", default="1,2,3,4,5,6,7,8,9,10", help="which rows to run, e.g. 1,5 (default all)")
    parser.add_argument("--overlayd", type=Path, help="pycni-overlayd for row 7 (default: dist/overlayd/ next to "
                        "--cni-bin, else overlay/main.py)")
    parser.add_argument("--overlay-seconds", type=int, default=3, help="iperf3 duration per path, row 7")
    parser.add_argument("--overlay-pings", type=int, default=200, help="pings per path, row 7")
    parser.add_argument("--quick", action="store_true", help="fewer iterations, 300 allocations (development)")
    parser.add_argument("--json", type=Path, help="also write the results (with machine info) as JSON here")
    parser.add_argument("--agent", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    defaults = {"iterations": (15, 5), "parallel_rounds": (3, 1), "allocations": (2000, 300)}
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    if args.allocations < 2 or args.iterations < 1 or args.parallel_rounds < 1 or args.parallel < 1:
        parser.error("--iterations, --parallel-rounds, --parallel must be >= 1 and --allocations >= 2")
    args.wanted = {int(x) for x in args.rows.split(",") if x.strip()}
    if not args.wanted <= set(range(1, 11)):
        parser.error("--rows takes numbers 1-10")
    if args.overlayd is None:
        built = args.pycni_bin.resolve().parent / "overlayd" / "pycni-overlayd"
        args.overlayd = built if built.exists() else Path(__file__).resolve().parent.parent / "overlay" / "main.py"
    return args


class Interrupted(BaseException):
    """SIGINT, SIGTERM or SIGHUP: stop measuring, clean up, show what was measured."""


def raise_on_signal(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(128 + signum)


def main() -> int:
    args = parse_args()
    if args.agent is not None:
        return agent_main(args.agent)
    if os.geteuid() != 0:
        sys.exit("bench.py needs root (it creates network namespaces)")
    if not args.cnitool.exists():
        sys.exit(f"{args.cnitool} not found (make driver)")
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_on_signal)
    info = machine_info(args)
    print(f"pycni bench: {info['nproc']} cores, kernel {info['kernel']}, {info['iptables']}, {info['date']}",
          flush=True)
    work = Path(tempfile.mkdtemp(prefix="pycni-bench-"))
    bench = Bench(args, work)
    complete, interrupted = False, 0
    try:
        bench.setup()
        bench.run(args.wanted)
        complete = True
    except Interrupted as exc:
        interrupted = exc.args[0]
        print("\ninterrupted; cleaning up", flush=True)
    except Exception:  # set-up or a helper failed: still clean up and show what was measured
        traceback.print_exc()
        print("bench aborted; cleaning up", flush=True)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not abort clean-up
            signal.signal(signum, signal.SIG_IGN)
        bench.teardown()
        shutil.rmtree(work, ignore_errors=True)
        left = bench.leftovers()
        info["loadavg_end"] = os.getloadavg()
    if bench.rows:
        print("\n" + table(bench.rows))
    if bench.overlay:
        print("\n" + overlay_table(bench.overlay))
    problems = errors_list(bench.rows) + [f"[overlay] {row['error']}" for row in bench.overlay if "error" in row]
    for line in problems:
        print(f"error: {line}")
    for note in bench.notes:
        print(f"note: {note}")
    load = f"load average {info['loadavg_start'][0]:.1f} -> {info['loadavg_end'][0]:.1f}"
    print(f"\n{info['nproc']} cores, {info['kernel']}, {info['date']}, {load}; "
          f"{args.iterations} iterations, {args.parallel_rounds} parallel rounds, {args.allocations} allocations")
    print("leftovers: " + (", ".join(left) if left else "none (all namespaces of this run removed)"))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        result = as_json(bench.rows, bench.notes, info, args, left, complete)
        result["overlay"] = bench.overlay
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.json}")
    if not complete:
        return interrupted or 1
    return 1 if problems or left else 0


if __name__ == "__main__":
    sys.exit(main())
