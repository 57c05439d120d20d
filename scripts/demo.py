#!/usr/bin/env python3
"""The pycni demo: two "pods" on a bridge, ping, and a port mapping, all inside a throwaway "node" namespace.

Drives the built executables through the Go libcni driver (tests/driver) with a bridge + host-local + portmap
conflist, checks every step, DELs, and shows that nothing is left. Never touches the machine's own network.
Exits non-zero if any step fails.  Usage: demo.py --cni-bin dist/cni-bin --cnitool dist/cnitool
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

SUBNET, GATEWAY, HOST_PORT, POD_PORT = "10.88.0.0/24", "10.88.0.1", 8080, 80


def conflist(data_dir: str) -> dict:
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
    def sh(self, *argv: str, ns: str | None = None, check: bool = True, **kw) -> subprocess.CompletedProcess:
        full = ["ip", "netns", "exec", ns, *argv] if ns else list(argv)
        done = subprocess.run(full, capture_output=True, text=True, timeout=60, **kw)
        if check and done.returncode != 0:
            raise RuntimeError(f"{' '.join(full)} failed: {done.stderr.strip() or done.stdout.strip()}")
        return done

    def step(self, title: str, ok: bool, detail: str = "", started: float | None = None) -> None:
        took = f" ({(time.perf_counter() - started) * 1000:.0f} ms)" if started else ""
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {title}{took}{': ' + detail if detail else ''}", flush=True)
        self.failures += 0 if ok else 1

    def cni(self, verb: str, pod: str, cap_args: dict | None = None) -> subprocess.CompletedProcess:
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
