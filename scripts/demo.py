#!/usr/bin/env python3
"""The pycni demo: two "pods" on a bridge, ping, and a port mapping, all inside a throwaway "node" namespace.

Drives the built executables through the Go libcni driver (tests/driver) with a bridge + host-local + portmap
conflist, checks every step, DELs, and shows that nothing is left. Act two: two "node" namespaces on an underlay
bridge, an etcd, pycni-overlayd on each node (VXLAN), a pod on each through the overlay plugin; ping and HTTP
across nodes, DEL, nothing left. Act three (scripts/demo_isolation.py): two isolated networks made with the `pycni`
command on a node whose FORWARD policy is DROP, a pod on each and one on both. Never touches the machine's own
network (only addresses inside its namespaces).
Exits non-zero if any step fails.  Usage: demo.py --cni-bin dist/cni-bin --cnitool dist/cnitool
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from demo_isolation import IsolationAct

SUBNET, GATEWAY, HOST_PORT, POD_PORT = "10.88.0.0/24", "10.88.0.1", 8080, 80


def conflist(data_dir: str) -> dict[str, Any]:
    return {
        "cniVersion": "1.0.0", "name": "pycni-demo",
        "plugins": [
            {"type": "bridge", "bridge": "pycni-demo0", "isGateway": True, "ipMasq": True, "hairpinMode": True,
             "ipam": {"type": "host-local", "ranges": [[{"subnet": SUBNET}]], "dataDir": data_dir,
                      "routes": [{"dst": "0.0.0.0/0"}]}},
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


class Demo:
    def __init__(self, cni_bin: Path, cnitool: Path, work: Path) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node, self.pods = f"pycni-demo-node-{tag}", [f"pycni-demo-pod{i}-{tag}" for i in (1, 2)]
        self.cni_bin, self.cnitool, self.work = cni_bin.resolve(), cnitool.resolve(), work
        self.failures = 0

    # --- helpers ----------------------------------------------------------------------------------------------
    def sh(self, *argv: str, ns: str | None = None, check: bool = True,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
        done = subprocess.run(full, capture_output=True, text=True, timeout=60, env=env)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def step(self, title: str, ok: bool, detail: str = "", started: float | None = None) -> None:
        took = f" ({(time.perf_counter() - started) * 1000:.0f} ms)" if started else ""
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {title}{took}{': ' + detail if detail else ''}", flush=True)
        self.failures += 0 if ok else 1

    def cni(self, verb: str, pod: str, cap_args: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        env = {"PATH": os.environ["PATH"], "CNI_PATH": str(self.cni_bin), "NETCONFPATH": str(self.work / "net.d"),
               "CNI_IFNAME": "eth0", "CNI_CONTAINERID": pod, "CAP_ARGS": json.dumps(cap_args or {})}
        argv = [str(self.cnitool), "--cache-dir", str(self.work / "cache"), verb, "pycni-demo", f"/run/netns/{pod}"]
        return self.sh(*argv, ns=self.node, check=False, env=env)

    # --- the story ----------------------------------------------------------------------------------------------
    def run(self) -> int:
        print(f"pycni demo: plugins from {self.cni_bin}, driven by libcni ({self.cnitool.name})")
        print(f"node namespace {self.node}, pods {', '.join(self.pods)}")
        try:
            self.setup()
            addresses = self.add_pods()
            if len(addresses) == 2:
                self.connectivity(addresses)
            self.delete_pods()
            self.nothing_left()
        finally:
            self.teardown()
        if (self.cni_bin / "overlay").exists():
            OverlayAct(self, agent_command(self.cni_bin)).run()
        else:
            print(f"6. act two (the overlay) skipped: no overlay plugin in {self.cni_bin}", flush=True)
        pycni = pycni_command(self.cni_bin)
        if (self.cni_bin / "firewall").exists() and pycni:
            IsolationAct(pycni, self.cni_bin, self.work, self.step).run()
        else:
            print(f"7. act three (isolation) skipped: no firewall plugin in {self.cni_bin} or no pycni command",
                  flush=True)
        print("demo " + ("passed" if self.failures == 0 else f"FAILED ({self.failures} step(s))"))
        return 0 if self.failures == 0 else 1

    def setup(self) -> None:
        (self.work / "net.d").mkdir()
        (self.work / "net.d" / "10-pycni-demo.conflist").write_text(json.dumps(conflist(str(self.work / "ipam")),
                                                                              indent=2))
        for ns in (self.node, *self.pods):
            self.sh("ip", "netns", "add", ns)
        self.sh("ip", "link", "set", "lo", "up", ns=self.node)
        print("1. created the node and pod namespaces; conflist bridge + host-local + portmap", flush=True)

    def add_pods(self) -> dict[str, str]:
        print("2. ADD both pods through libcni", flush=True)
        addresses = {}
        for i, pod in enumerate(self.pods):
            mappings = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]}
            started = time.perf_counter()
            done = self.cni("add", pod, mappings if i == 0 else None)
            if done.returncode != 0:
                self.step(f"ADD {pod}", False, done.stderr.strip())
                continue
            address = json.loads(done.stdout)["ips"][0]["address"].split("/")[0]
            addresses[pod] = address
            extra = f", hostPort {HOST_PORT} -> {POD_PORT}/tcp" if i == 0 else ""
            self.step(f"ADD {pod}", True, f"eth0 {address}{extra}", started)
            check = self.cni("check", pod, mappings if i == 0 else None)
            self.step(f"CHECK {pod}", check.returncode == 0, check.stderr.strip())
        return addresses

    def connectivity(self, addresses: dict[str, str]) -> None:
        print("3. connectivity", flush=True)
        first, second = self.pods
        for src, dst, label in ((second, addresses[first], "pod2 -> pod1"),
                                (first, addresses[second], "pod1 -> pod2"),
                                (self.node, addresses[first], "node -> pod1")):
            started = time.perf_counter()
            done = self.sh("ping", "-c", "1", "-W", "2", dst, ns=src, check=False)
            self.step(f"ping {label} ({dst})", done.returncode == 0, "" if done.returncode == 0 else done.stdout[-200:],
                      started)
        server = subprocess.Popen(["ip", "netns", "exec", first, sys.executable, "-m", "http.server", str(POD_PORT),
                                   "--bind", "0.0.0.0", "--directory", str(self.work)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        (self.work / "index.html").write_text("hello from pod1\n")
        try:
            self.wait_for_server(first, addresses[first])
            for src, url, label in ((second, f"http://{GATEWAY}:{HOST_PORT}/", "pod2 -> node's address:hostPort"),
                                    (self.node, f"http://127.0.0.1:{HOST_PORT}/", "node -> 127.0.0.1:hostPort")):
                started = time.perf_counter()
                body = self.fetch(src, url)
                self.step(f"HTTP {label}", body == "hello from pod1\n", repr(body), started)
        finally:
            server.terminate()
            server.wait(timeout=10)

    def wait_for_server(self, pod: str, address: str) -> None:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.fetch(pod, f"http://{address}:{POD_PORT}/") is None:
            time.sleep(0.1)

    def fetch(self, ns: str, url: str) -> str | None:
        code = ("import sys, urllib.request\ntry:\n    print(urllib.request.urlopen(sys.argv[1], timeout=3).read()"
                ".decode(), end='')\nexcept Exception as e:\n    sys.exit(str(e))")
        done = self.sh(sys.executable, "-c", code, url, ns=ns, check=False)
        return done.stdout if done.returncode == 0 else None

    def delete_pods(self) -> None:
        print("4. DEL both pods", flush=True)
        for i, pod in enumerate(self.pods):
            mappings = {"portMappings": [{"hostPort": HOST_PORT, "containerPort": POD_PORT, "protocol": "tcp"}]}
            started = time.perf_counter()
            done = self.cni("del", pod, mappings if i == 0 else None)
            self.step(f"DEL {pod}", done.returncode == 0, done.stderr.strip(), started)

    def nothing_left(self) -> None:
        print("5. nothing left behind", flush=True)
        links = self.sh("ip", "-o", "link", "show", "type", "veth", ns=self.node).stdout.strip()
        self.step("no veth left on the node", links == "", links)
        data = self.work / "ipam" / "pycni-demo"
        held = sorted(p.name for p in data.iterdir() if p.name[0].isdigit()) if data.exists() else []
        self.step("no address allocated", held == [], ", ".join(held))
        rules = [line for line in self.sh("iptables-save", ns=self.node).stdout.splitlines()
                 if line.startswith("-A CNI-") and "CNI-HOSTPORT" not in line.split()[1]]
        self.step("no per-pod firewall rule", rules == [], "; ".join(rules[:3]))

    def teardown(self) -> None:
        for ns in (*self.pods, self.node):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


UNDERLAY, ETCD_IP, OVERLAY_CONFIG = "192.0.2.1", "192.0.2.11", '{"Network":"10.244.0.0/16","SubnetLen":24,' \
    '"Backend":{"Type":"vxlan","VNI":1}}'


class OverlayAct:
    """Act two: nodes n1, n2 (192.0.2.21, .22) on an underlay bridge (192.0.2.1), etcd on 192.0.2.11, all in
    throwaway namespaces; pycni-overlayd leases each node a /24 of 10.244.0.0/16; a pod on each node."""

    def __init__(self, demo: Demo, agent: list[str]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.demo, self.agent, self.work = demo, agent, demo.work / "overlay"
        self.ul, self.etcd_ns = f"pycni-demo-ul-{tag}", f"pycni-demo-etcd-{tag}"
        self.nodes = [f"pycni-demo-n{i}-{tag}" for i in (1, 2)]
        self.pods = [f"pycni-demo-n{i}pod-{tag}" for i in (1, 2)]
        self.namespaces: list[str] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.agents: list[subprocess.Popen[bytes]] = []

    def run(self) -> None:
        print("6. act two: two nodes joined by pycni-overlayd (VXLAN, etcd), a pod on each", flush=True)
        try:
            if self.setup() and self.start_agents():
                addresses = self.add_pods()
                if len(addresses) == 2:
                    self.connectivity(addresses)
                self.delete_pods()
                self.stop_agents()
                self.nothing_left()
        finally:
            self.teardown()

    def netns(self, name: str, address: str | None = None) -> None:
        self.demo.sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.demo.sh("ip", "link", "set", "lo", "up", ns=name)
        if address is not None:       # a veth into the underlay bridge, made from inside the namespaces only
            port = f"v{len(self.namespaces)}"
            self.demo.sh("ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", name, ns=self.ul)
            self.demo.sh("ip", "link", "set", port, "master", "br-ul", "up", ns=self.ul)
            self.demo.sh("ip", "addr", "add", f"{address}/24", "dev", "eth0", ns=name)
            self.demo.sh("ip", "link", "set", "eth0", "up", ns=name)
            self.demo.sh("ip", "route", "add", "default", "via", UNDERLAY, ns=name)

    def setup(self) -> bool:
        started = time.perf_counter()
        self.work.mkdir()
        self.netns(self.ul)
        for argv in (("link", "add", "br-ul", "type", "bridge"), ("addr", "add", f"{UNDERLAY}/24", "dev", "br-ul"),
                     ("link", "set", "br-ul", "up")):
            self.demo.sh("ip", *argv, ns=self.ul)
        self.netns(self.etcd_ns, ETCD_IP)
        for i, node in enumerate(self.nodes):
            self.netns(node, f"192.0.2.{21 + i}")
            (self.work / node / "net.d").mkdir(parents=True)
            (self.work / node / "net.d" / "10-overlay.conflist").write_text(json.dumps(self.conflist(node)))
        for pod in self.pods:
            self.netns(pod)
        self.demo.step("underlay bridge, etcd and two node namespaces", True, "192.0.2.0/24", started)
        if shutil.which("etcd") is None:
            self.demo.step("etcd", False, "not installed (scripts/install-deps.sh installs etcd-server)")
            return False
        started = time.perf_counter()
        data = self.work / "etcd"
        self.procs.append(subprocess.Popen(
            ["ip", "netns", "exec", self.etcd_ns, "etcd", "--name", "m1", "--data-dir", str(data),
             "--listen-client-urls", f"http://{ETCD_IP}:2379", "--advertise-client-urls", f"http://{ETCD_IP}:2379",
             "--listen-peer-urls", f"http://{ETCD_IP}:2380", "--initial-advertise-peer-urls",
             f"http://{ETCD_IP}:2380", "--initial-cluster", f"m1=http://{ETCD_IP}:2380"],
            stdout=subprocess.DEVNULL, stderr=open(self.work / "etcd.log", "wb")))
        deadline = time.monotonic() + 20
        while self.etcdctl("endpoint", "health").returncode != 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        put = self.etcdctl("put", "/pycni/network/config", "--", OVERLAY_CONFIG)
        self.demo.step("etcd up, cluster config put at /pycni/network/config", put.returncode == 0,
                       put.stderr.strip() or OVERLAY_CONFIG, started)
        return put.returncode == 0

    def etcdctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.demo.sh("etcdctl", "--endpoints", f"http://{ETCD_IP}:2379", "--dial-timeout", "2s", *args,
                            ns=self.ul, check=False, env={"ETCDCTL_API": "3", "PATH": os.environ["PATH"]})

    def conflist(self, node: str) -> dict[str, Any]:
        base = self.work / node
        return {"cniVersion": "1.0.0", "name": "pycni-overlay", "plugins": [
            {"type": "overlay", "subnetFile": str(base / "subnet.env"), "dataDir": str(base / "overlay"),
             "delegate": {"bridge": "pycni-ov0", "isDefaultGateway": True}, "ipam": {"dataDir": str(base / "ipam")}},
            {"type": "portmap", "capabilities": {"portMappings": True}}]}

    def start_agents(self) -> bool:
        ready = True
        for node in self.nodes:
            started = time.perf_counter()
            subnet_file = self.work / node / "subnet.env"
            agent = subprocess.Popen(["ip", "netns", "exec", node, *self.agent, "--etcd-endpoints",
                                      f"http://{ETCD_IP}:2379", "--subnet-file", str(subnet_file)],
                                     stdout=subprocess.DEVNULL, stderr=open(self.work / node / "agent.log", "wb"))
            self.agents.append(agent)
            self.procs.append(agent)
            deadline = time.monotonic() + 30
            while not subnet_file.exists() and agent.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            if subnet_file.exists():
                subnet = next(line.split("=", 1)[1] for line in subnet_file.read_text().splitlines()
                              if line.startswith("FLANNEL_SUBNET="))
                self.demo.step(f"pycni-overlayd ready on {node}", True, f"subnet {subnet}, pycni.1", started)
            else:
                log = (self.work / node / "agent.log").read_text()[-300:]
                self.demo.step(f"pycni-overlayd ready on {node}", False, log.strip(), started)
                ready = False
        return ready

    def cni(self, verb: str, i: int) -> subprocess.CompletedProcess[str]:
        base = self.work / self.nodes[i]
        env = {"PATH": os.environ["PATH"], "CNI_PATH": str(self.demo.cni_bin), "NETCONFPATH": str(base / "net.d"),
               "CNI_IFNAME": "eth0", "CNI_CONTAINERID": self.pods[i], "CAP_ARGS": "{}"}
        return self.demo.sh(str(self.demo.cnitool), "--cache-dir", str(base / "cache"), verb, "pycni-overlay",
                            f"/run/netns/{self.pods[i]}", ns=self.nodes[i], check=False, env=env)

    def add_pods(self) -> list[str]:
        addresses = []
        for i, pod in enumerate(self.pods):
            started = time.perf_counter()
            done = self.cni("add", i)
            if done.returncode != 0:
                self.demo.step(f"ADD {pod} on node {i + 1}", False, done.stderr.strip() or done.stdout.strip())
                continue
            addresses.append(json.loads(done.stdout)["ips"][0]["address"].split("/")[0])
            self.demo.step(f"ADD {pod} on node {i + 1}", True, f"eth0 {addresses[-1]}", started)
        return addresses

    def connectivity(self, addresses: list[str]) -> None:
        for src, dst in ((0, 1), (1, 0)):
            started, deadline = time.perf_counter(), time.monotonic() + 10
            while True:           # the peer's entries may land a moment after its agent is ready
                done = self.demo.sh("ping", "-c", "1", "-W", "1", addresses[dst], ns=self.pods[src], check=False)
                if done.returncode == 0 or time.monotonic() > deadline:
                    break
            self.demo.step(f"ping node {src + 1} pod -> node {dst + 1} pod ({addresses[dst]}) over VXLAN",
                           done.returncode == 0, "" if done.returncode == 0 else done.stdout[-200:], started)
        (self.work / "index.html").write_text("hello from the pod on node 1\n")
        server = subprocess.Popen(["ip", "netns", "exec", self.pods[0], sys.executable, "-m", "http.server",
                                   str(POD_PORT), "--bind", "0.0.0.0", "--directory", str(self.work)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(server)
        try:
            self.demo.wait_for_server(self.pods[0], addresses[0])
            started = time.perf_counter()
            body = self.demo.fetch(self.pods[1], f"http://{addresses[0]}:{POD_PORT}/")
            self.demo.step(f"HTTP node 2 pod -> node 1 pod ({addresses[0]}:{POD_PORT})",
                           body == "hello from the pod on node 1\n", repr(body), started)
        finally:
            server.terminate()
            server.wait(timeout=10)

    def delete_pods(self) -> None:
        for i, pod in enumerate(self.pods):
            started = time.perf_counter()
            done = self.cni("del", i)
            self.demo.step(f"DEL {pod}", done.returncode == 0, done.stderr.strip(), started)

    def stop_agents(self) -> None:
        for node, agent in zip(self.nodes, self.agents):
            started = time.perf_counter()
            agent.send_signal(signal.SIGTERM)
            status = agent.wait(timeout=20)
            self.demo.step(f"pycni-overlayd on {node} stopped by SIGTERM", status == 0, f"exit {status}", started)

    def nothing_left(self) -> None:
        veths = [line.split(":")[1].strip().split("@")[0] for node in self.nodes   # eth0 is the node's own
                 for line in self.demo.sh("ip", "-o", "link", "show", "type", "veth", ns=node).stdout.splitlines()]
        left = [name for name in veths if name != "eth0"]
        self.demo.step("no pod veth left on either node", left == [], ", ".join(left))
        held = sorted(p.name for node in self.nodes for p in (self.work / node / "ipam" / "pycni-overlay").glob("1*"))
        self.demo.step("no pod address allocated", held == [], ", ".join(held))

    def teardown(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", ns], capture_output=True)


def pycni_command(cni_bin: Path) -> list[str]:
    """The built `pycni` command (make build: dist/pycni/pycni), next to the plugins or in this checkout's dist."""
    for dist in (cni_bin.resolve().parent, Path(__file__).resolve().parent.parent / "dist"):
        if (dist / "pycni" / "pycni").exists():
            return [str(dist / "pycni" / "pycni")]
    return []


def agent_command(cni_bin: Path) -> list[str]:
    """The built pycni-overlayd next to the plugins (make build), else the source tree's."""
    built = cni_bin.resolve().parent / "overlayd" / "pycni-overlayd"
    if built.exists():
        return [str(built)]
    return [sys.executable, str(Path(__file__).resolve().parent.parent / "overlay" / "main.py")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cni-bin", type=Path, default=Path("dist/cni-bin"), help="directory used as CNI_PATH")
    parser.add_argument("--cnitool", type=Path, default=Path("dist/cnitool"), help="the Go libcni driver")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("the demo needs root (it creates network namespaces)")
    work = Path(tempfile.mkdtemp(prefix="pycni-demo-"))
    try:
        return Demo(args.cni_bin, args.cnitool, work).run()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
