"""A cluster on one machine for the overlay tests: an underlay netns with a bridge, node netns on it, an etcd
member in its own netns, pycni-overlayd on each node, pods added through libcni (cnitool) with the overlay
plugin. Only addresses inside these namespaces are used (192.0.2.0/24 underlay, 10.244.0.0/16 pods).

    ov-<id>-ul   br-ul 192.0.2.1/24 (also "outside the cluster network" for masquerade checks)
    ov-<id>-e1   eth0 192.0.2.11  etcd member m1 (e2, e3: 192.0.2.12, .13 for a 3-member cluster)
    ov-<id>-n1.. eth0 192.0.2.21.. pycni-overlayd, cni0, pods ov-<id>-p1..

`close()` kills every process it started (by PID) and deletes every namespace, also after a failure.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from conftest import REPO
from support.node import CLIENT

ETCD_IPS = ("192.0.2.11", "192.0.2.12", "192.0.2.13")
ETCD_IP = ETCD_IPS[0]
OUTSIDE_IP = "192.0.2.1"
SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(16)
print('ready', flush=True)
while True:
    c, peer = s.accept()
    c.sendall(('seen ' + peer[0]).encode())
    c.close()
"""


def agent_argv() -> list[str]:
    """The built agent next to the plugins under test, else (or with PYCNI_OVERLAYD=source) the source tree's."""
    if os.environ.get("PYCNI_OVERLAYD") == "source":
        return [sys.executable, str(REPO / "overlay" / "main.py")]
    built = Path(os.environ.get("PYCNI_E2E_BIN", REPO / "dist" / "cni-bin")).parent / "overlayd" / "pycni-overlayd"
    return [str(built)] if built.exists() else [sys.executable, str(REPO / "overlay" / "main.py")]


def sh(*argv: str, check: bool = True, timeout: float = 60, input: bytes | None = None) -> str:
    done = subprocess.run(argv, capture_output=True, timeout=timeout, input=input)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()}")
    return done.stdout.decode()


class Ns:
    def __init__(self, name: str) -> None:
        self.name, self.path = name, f"/run/netns/{name}"

    def run(self, *argv: str, check: bool = True, timeout: float = 60, env: dict[str, str] | None = None,
            input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        done = subprocess.run(["ip", "netns", "exec", self.name, *argv], capture_output=True, timeout=timeout,
                              env=env, input=input)
        if check and done.returncode != 0:
            raise AssertionError(f"[{self.name}] {' '.join(argv)}: exit {done.returncode}: {done.stderr.decode()}")
        return done

    def out(self, *argv: str) -> str:
        return self.run(*argv).stdout.decode()

    def popen(self, *argv: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *argv], **kwargs)


class Node:
    def __init__(self, cluster: Cluster, n: int) -> None:
        self.cluster, self.n = cluster, n
        self.ns = cluster.netns(f"n{n}", f"192.0.2.{20 + n}")
        self.ip = f"192.0.2.{20 + n}"
        self.work = cluster.work / f"n{n}"
        self.work.mkdir()
        self.subnet_file = self.work / "subnet.env"
        self.agent: subprocess.Popen[bytes] | None = None
        self.log = self.work / "agent.log"
        self.pods: list[Ns] = []
        # the shipped example, with this node's paths
        conflist = json.loads((REPO / "conf-examples" / "overlay" / "10-overlay.conflist").read_text())
        conflist["name"] = "ovnet"
        overlay = conflist["plugins"][0]
        overlay.update(subnetFile=str(self.subnet_file), dataDir=str(self.work / "overlay"))
        overlay["ipam"]["dataDir"] = str(self.work / "ipam")
        (self.work / "net.d").mkdir()
        (self.work / "net.d" / "ovnet.conflist").write_text(json.dumps(conflist))

    # --- the agent -----------------------------------------------------------------------------------------
    def start_agent(self, *extra: str, wait: bool = True) -> None:
        argv = [*agent_argv(), "--etcd-endpoints", self.cluster.endpoints, "--subnet-file", str(self.subnet_file),
                "--lease-ttl", str(self.cluster.ttl), "--reconcile-interval", "2", "--healthz-port", "8471", *extra]
        self.agent = self.ns.popen(*argv, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        self.cluster.procs.append(self.agent)
        if wait:
            self.wait_ready()

    def run_agent(self, *extra: str, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
        """The agent in the foreground, for the cases where it must exit by itself."""
        argv = [*agent_argv(), "--etcd-endpoints", self.cluster.endpoints, "--subnet-file", str(self.subnet_file),
                "--lease-ttl", str(self.cluster.ttl), *extra]
        return self.ns.run(*argv, check=False, timeout=timeout)

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while not self.subnet_file.exists():
            assert self.agent is None or self.agent.poll() is None, f"agent n{self.n} exited: {self.log.read_text()}"
            assert time.monotonic() < deadline, f"agent n{self.n} not ready: {self.log.read_text()}"
            time.sleep(0.05)

    def stop_agent(self, sig: int = signal.SIGTERM) -> int:
        assert self.agent is not None
        self.agent.send_signal(sig)
        status = self.agent.wait(timeout=20)
        self.agent = None
        return status

    def vanish(self) -> None:
        """The node is gone: its agent SIGKILLed, its namespace and its pods' deleted (its underlay veth with them)."""
        if self.agent is not None:
            self.stop_agent(signal.SIGKILL)
        for ns in (*self.pods, self.ns):
            sh("ip", "netns", "delete", ns.name)
            self.cluster.namespaces.remove(ns)
        self.pods = []

    def change_ip(self, address: str) -> None:
        """A new underlay address on eth0 (the old one removed), default route as before."""
        self.ns.run("ip", "addr", "del", f"{self.ip}/24", "dev", "eth0")
        self.ns.run("ip", "addr", "add", f"{address}/24", "dev", "eth0")
        self.ns.run("ip", "route", "replace", "default", "via", OUTSIDE_IP)
        self.ip = address

    def lease_id(self) -> str:
        """The etcd lease (hex) this node's subnet key is bound to, as its subnet.env says."""
        for line in self.subnet_file.read_text().splitlines():
            if line.startswith("PYCNI_LEASE_ID="):
                return line.split("=", 1)[1]
        raise AssertionError(self.subnet_file.read_text())

    def healthz(self) -> str:
        probe = "import urllib.request as u\ntry:\n" \
                " print(u.urlopen('http://127.0.0.1:8471/healthz', timeout=2).status)\n" \
                "except Exception as e:\n print(getattr(e, 'code', e))"
        return self.ns.out(sys.executable, "-c", probe).strip()

    def subnet(self) -> str:
        """This node's pod subnet, as subnet.env says (10.244.N.0/24)."""
        for line in self.subnet_file.read_text().splitlines():
            if line.startswith("FLANNEL_SUBNET="):
                address, length = line.split("=", 1)[1].split("/")
                return f"{address.rsplit('.', 1)[0]}.0/{length}"
        raise AssertionError(self.subnet_file.read_text())

    # --- pods ----------------------------------------------------------------------------------------------
    def cni(self, verb: str, pod: Ns, cap_args: dict[str, Any] | None = None) -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "CNI_PATH": str(self.cluster.cni_bin),
               "NETCONFPATH": str(self.work / "net.d"), "CNI_IFNAME": "eth0", "CNI_CONTAINERID": pod.name,
               "CAP_ARGS": json.dumps(cap_args or {})}
        return self.ns.run(str(self.cluster.cnitool), "--cache-dir", str(self.work / "cache"), verb, "ovnet",
                           pod.path, env=env, check=False, timeout=120)

    def add_pod(self, cap_args: dict[str, Any] | None = None) -> tuple[Ns, str]:
        pod = self.cluster.netns(f"p{len(self.cluster.namespaces)}")
        done = self.cni("add", pod, cap_args)
        assert done.returncode == 0, f"ADD on n{self.n}: {done.stdout.decode()} {done.stderr.decode()}"
        self.pods.append(pod)
        return pod, json.loads(done.stdout)["ips"][0]["address"].split("/")[0]

    def entries(self) -> str:
        """What the agent programmed: routes, neighbours and FDB entries of the overlay (for assertions)."""
        return self.ns.out("sh", "-c", "ip route show proto 118; ip neigh show nud permanent; "
                                       "bridge fdb show dev pycni.1 2>/dev/null | grep dst || true")


class Cluster:
    def __init__(self, work: Path, *, cni_bin: Path, cnitool: Path, ttl: int = 4) -> None:
        self.id = uuid.uuid4().hex[:6]
        self.work, self.cni_bin, self.cnitool, self.ttl = work, cni_bin, cnitool, ttl
        self.namespaces: list[Ns] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.etcd: dict[int, subprocess.Popen[bytes]] = {}     # running members, by index into ETCD_IPS
        self.members = 0                                          # the cluster's size, fixed by the first start
        self.ul = self.netns("ul")
        self.ul.run("ip", "link", "add", "br-ul", "type", "bridge")
        self.ul.run("ip", "addr", "add", f"{OUTSIDE_IP}/24", "dev", "br-ul")
        self.ul.run("ip", "link", "set", "br-ul", "up")
        self.e1 = self.netns("e1", ETCD_IP)
        self.etcd_ns = [self.e1]
        self.nodes: list[Node] = []
        self.endpoints = f"http://{ETCD_IP}:2379"               # what agents get as --etcd-endpoints

    def netns(self, role: str, underlay_ip: str | None = None) -> Ns:
        ns = Ns(f"ov-{self.id}-{role}")
        sh("ip", "netns", "add", ns.name)
        self.namespaces.append(ns)
        ns.run("ip", "link", "set", "lo", "up")
        if underlay_ip is not None:   # a veth into the underlay bridge, created from inside the namespaces only
            self.ul.run("ip", "link", "add", f"v-{role}", "type", "veth", "peer", "name", "eth0", "netns", ns.name)
            self.ul.run("ip", "link", "set", f"v-{role}", "master", "br-ul", "up")
            ns.run("ip", "addr", "add", f"{underlay_ip}/24", "dev", "eth0")
            ns.run("ip", "link", "set", "eth0", "up")
            ns.run("ip", "route", "add", "default", "via", OUTSIDE_IP)
        return ns

    def add_node(self) -> Node:
        node = Node(self, len(self.nodes) + 1)
        self.nodes.append(node)
        return node

    # --- etcd ----------------------------------------------------------------------------------------------
    def start_etcd(self, members: int | None = None) -> None:
        """Start every member that is not running (the first call fixes the size: 1 or 3), wait until healthy."""
        if not self.members:
            self.members = members or 1
            for i in range(1, self.members):
                self.etcd_ns.append(self.netns(f"e{i + 1}", ETCD_IPS[i]))
            self.endpoints = ",".join(f"http://{ip}:2379" for ip in ETCD_IPS[:self.members])
        peers = ",".join(f"m{i + 1}=http://{ETCD_IPS[i]}:2380" for i in range(self.members))
        for i in range(self.members):
            if i in self.etcd:
                continue
            ip, data = ETCD_IPS[i], self.work / f"etcd-m{i + 1}"
            self.etcd[i] = self.etcd_ns[i].popen(
                "etcd", "--name", f"m{i + 1}", "--data-dir", str(data), "--listen-client-urls",
                f"http://{ip}:2379,http://127.0.0.1:2379", "--advertise-client-urls", f"http://{ip}:2379",
                "--listen-peer-urls", f"http://{ip}:2380", "--initial-advertise-peer-urls", f"http://{ip}:2380",
                "--initial-cluster", peers, "--initial-cluster-token", f"ov-{self.id}",
                "--initial-cluster-state", "existing" if data.exists() else "new",
                stdout=subprocess.DEVNULL, stderr=open(self.work / f"etcd-m{i + 1}.log", "ab"))
            self.procs.append(self.etcd[i])
        deadline = time.monotonic() + 20
        while self.etcdctl("endpoint", "health", "--cluster", check=False).returncode != 0:
            for i, proc in self.etcd.items():
                assert proc.poll() is None, (self.work / f"etcd-m{i + 1}.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "etcd not healthy"
            time.sleep(0.1)

    def stop_etcd(self, member: int | None = None) -> None:
        """SIGKILL one member (an index into ETCD_IPS), or all of them."""
        for i in ([member] if member is not None else list(self.etcd)):
            proc = self.etcd.pop(i)
            proc.kill()
            proc.wait(timeout=20)

    def etcd_leader(self) -> int:
        """The index of the member that is the raft leader now."""
        status = json.loads(self.etcdctl("endpoint", "status", "-w", "json").stdout)
        for i, ip in enumerate(ETCD_IPS):
            for member in status:
                leader = member["Status"].get("leader", 0)     # left out (0) while an election runs
                if member["Endpoint"] == f"http://{ip}:2379" and leader and \
                        leader == member["Status"]["header"]["member_id"]:
                    return i
        raise AssertionError(f"no leader: {status}")

    def etcdctl(self, *args: str, check: bool = True, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        """etcdctl against the running members (from the underlay namespace)."""
        env = {"ETCDCTL_API": "3", "PATH": "/usr/bin:/bin"}
        endpoints = ",".join(f"http://{ETCD_IPS[i]}:2379" for i in sorted(self.etcd)) or f"http://{ETCD_IP}:2379"
        return self.ul.run("etcdctl", "--endpoints", endpoints, "--dial-timeout", "2s", *args,
                           check=check, env=env, input=input)

    def put_config(self, config: dict[str, Any] | str, prefix: str = "/pycni/network") -> None:
        text = config if isinstance(config, str) else json.dumps(config)
        self.etcdctl("put", f"{prefix}/config", "--", text)

    # --- traffic -------------------------------------------------------------------------------------------
    def serve(self, ns: Ns, port: int) -> None:
        proc = ns.popen(sys.executable, "-c", SERVER, str(port), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"

    def connect(self, ns: Ns, address: str, port: int) -> str:
        done = ns.run(sys.executable, "-c", CLIENT, address, str(port), check=False, timeout=30)
        return done.stdout.decode() if done.returncode == 0 else f"FAILED: {done.stderr.decode().strip()}"

    def ping(self, ns: Ns, address: str, *extra: str) -> bool:
        return ns.run("ping", "-c", "1", "-W", "2", *extra, address, check=False).returncode == 0

    def eventually(self, check: Any, timeout: float = 15.0, what: str = "") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            assert time.monotonic() < deadline, f"timed out waiting for {what() if callable(what) else what or check}"
            time.sleep(0.2)

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=20)
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "delete", ns.name], capture_output=True)
