"""`make demo`, act three: the seeds' isolation story with the `pycni` command, on a node whose FORWARD policy is
DROP (as on every host where Docker is installed).

Two networks made with `pycni network create --isolate` (bridge + host-local + portmap + firewall); a pod on each
cannot reach the other; a third pod attached to both (eth0 on red, eth1 on blue: `docker network connect`) reaches
both; the node, a published port and the other pods of one network still work. Then everything is detached and
the networks removed. All of it runs in throwaway namespaces, with every file under the demo's work dir.
"""
from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

SERVER = """
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    c.sendall(sys.argv[2].encode())
    c.close()
"""
CLIENT = """
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2).recv(100).decode(), end="")
except OSError as e:
    sys.exit(str(e))
"""
PORT, HOST_PORT = 80, 8080
NETWORKS = {"red": ("10.94.1.0/24", "10.94.1.1"), "blue": ("10.94.2.0/24", "10.94.2.1")}


class IsolationAct:
    def __init__(self, pycni: list[str], cni_bin: Path, work: Path, step: Callable[..., None]) -> None:
        tag = uuid.uuid4().hex[:6]
        self.node = f"pycni-demo-iso-{tag}"
        self.pods = {name: f"pycni-demo-{name}-{tag}" for name in ("red", "blue", "both")}
        self.pycni, self.cni_bin, self.work, self.step = pycni, cni_bin, work / "isolation", step
        self.servers: list[subprocess.Popen[str]] = []

    def sh(self, *argv: str, ns: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
        full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
        done = subprocess.run(full, capture_output=True, text=True, timeout=60)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`pycni ARGS` inside the node, every path of its state under the work dir."""
        return self.sh(*self.pycni, "--conf-dir", str(self.work / "net.d"), "--cni-path", str(self.cni_bin),
                       "--cache-dir", str(self.work / "cache"), "--state-dir", str(self.work / "state"), *args,
                       ns=self.node, check=check)

    def run(self) -> None:
        print("7. act three: isolated networks with the pycni command (node FORWARD policy DROP)", flush=True)
        try:
            self.setup()
            self.attach()
            self.traffic()
            self.detach()
        except RuntimeError as exc:
            self.step("act three", False, str(exc))
        finally:
            self.teardown()

    def setup(self) -> None:
        self.work.mkdir(parents=True)
        for ns in (self.node, *self.pods.values()):
            self.sh("ip", "netns", "add", ns)
        self.sh("ip", "link", "set", "lo", "up", ns=self.node)
        self.sh("iptables", "-P", "FORWARD", "DROP", ns=self.node)
        for name, (subnet, _) in NETWORKS.items():
            shown = self.cli("network", "create", name, "--subnet", subnet, "--isolate").stdout.strip()
            self.step(f"pycni network create {name} --subnet {subnet} --isolate", True, shown)
        for line in self.cli("network", "ls").stdout.rstrip().splitlines():
            print(f"         {line}")

    def attach(self) -> None:
        started = time.perf_counter()
        shown = self.cli("attach", "red", f"/run/netns/{self.pods['red']}", "-p", f"{HOST_PORT}:{PORT}")
        self.step(f"pycni attach red {self.pods['red']} -p {HOST_PORT}:{PORT}", True, shown.stdout.strip(), started)
        for network, pod, ifname in (("blue", "blue", "eth0"), ("red", "both", "eth0"), ("blue", "both", "eth1")):
            started = time.perf_counter()
            shown = self.cli("attach", network, f"/run/netns/{self.pods[pod]}", "--ifname", ifname)
            self.step(f"pycni attach {network} {self.pods[pod]} --ifname {ifname}", True, shown.stdout.strip(),
                      started)
        for pod, ns in (*self.pods.items(), ("node", self.node)):
            proc = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, str(PORT), pod],
                                    stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            self.servers.append(proc)
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"the server in {ns} did not start")

    def address(self, pod: str, ifname: str = "eth0") -> str:
        out = self.sh("ip", "-4", "-o", "addr", "show", ifname, ns=self.pods[pod]).stdout.split()
        return out[out.index("inet") + 1].split("/")[0]

    def reach(self, ns: str, address: str, port: int) -> str | None:
        done = self.sh(sys.executable, "-c", CLIENT, address, str(port), ns=ns, check=False)
        return done.stdout if done.returncode == 0 else None

    def traffic(self) -> None:
        red, blue = self.address("red"), self.address("blue")
        cases = [("red pod -> blue pod (isolated)", self.pods["red"], blue, PORT, None),
                 ("blue pod -> red pod (isolated)", self.pods["blue"], red, PORT, None),
                 ("pod on both -> red pod (via eth0)", self.pods["both"], red, PORT, "red"),
                 ("pod on both -> blue pod (via eth1)", self.pods["both"], blue, PORT, "blue"),
                 ("red pod -> pod on both (same network)", self.pods["red"], self.address("both"), PORT, "both"),
                 ("node -> red pod's published port (127.0.0.1)", self.node, "127.0.0.1", HOST_PORT, "red"),
                 ("blue pod -> its gateway on the node", self.pods["blue"], NETWORKS["blue"][1], PORT, "node")]
        for title, ns, address, port, expected in cases:
            started = time.perf_counter()
            got = self.reach(ns, address, port)
            shown = f"answered by {got}" if got else "no connection"
            self.step(f"{title}: {address}:{port}", got == expected, shown, started)

    def detach(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        self.servers.clear()
        for network, pod, ifname in (("red", "red", "eth0"), ("blue", "blue", "eth0"), ("red", "both", "eth0"),
                                     ("blue", "both", "eth1")):
            self.cli("detach", network, f"/run/netns/{self.pods[pod]}", "--ifname", ifname)
        for network in NETWORKS:
            self.cli("network", "rm", network, "--purge")
        left = self.sh("iptables-save", ns=self.node).stdout
        pod_rules = [line for line in left.splitlines() if " 10.94." in line]
        links = self.sh("ip", "-o", "link", "show", "type", "veth", ns=self.node).stdout.strip()
        self.step("detached and removed: no veth, no per-pod rule, no network", not pod_rules and not links
                  and self.cli("network", "ls", "--json").stdout.strip() == "[]", "; ".join(pod_rules) or links)

    def teardown(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        for ns in (*self.pods.values(), self.node):
            self.sh("ip", "netns", "delete", ns, check=False)
