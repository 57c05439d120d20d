"""A throwaway "node" for e2e tests: a host netns, pod netns, a conflist, and the libcni driver (dist/cnitool) to
run it, as a runtime would; traffic between pods and the node; what is left afterwards."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .paths import SYSTEM_PATH
from .state import allocations, veths

SERVER = """
import socket, sys
family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
s = socket.socket(family, socket.SOCK_STREAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(16)
print('ready', flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b'hello from ' + sys.argv[3].encode())
    c.close()
"""
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
    print(c.recv(100).decode(), end='')
except OSError as e:
    sys.exit(f'connect {sys.argv[1]}:{sys.argv[2]}: {e}')
"""


class Node:
    def __init__(self, make_ns: Callable[[str], Any], *, cni_bin: Path, cnitool: Path, work: Path,
                 conflist: dict[str, Any]) -> None:
        self.make_ns, self.cni_bin, self.cnitool, self.work = make_ns, cni_bin, cnitool, work
        self.host = make_ns("node")
        self.data_dir = work / "ipam"
        conflist = json.loads(json.dumps(conflist))
        for plugin in conflist["plugins"]:
            if "ipam" in plugin:
                plugin["ipam"]["dataDir"] = str(self.data_dir)
            if plugin.get("type") in ("firewall", "tuning"):   # their records and restore files (Go ignores the key)
                plugin.setdefault("dataDir", str(work / plugin["type"]))
        self.conflist = conflist
        self.name = conflist["name"]
        (work / "net.d").mkdir(exist_ok=True)
        (work / "net.d" / "net.conflist").write_text(json.dumps(conflist))
        self.servers: list[subprocess.Popen[bytes]] = []

    def pod(self) -> Any:
        return self.make_ns("pod")

    def cni(self, verb: str, pod: Any, *, cap_args: dict[str, Any] | None = None, ifname: str = "eth0",
            cni_args: str = "", network: str | None = None,
            cid: str | None = None) -> subprocess.CompletedProcess[bytes]:
        """libcni's `verb` (add, check, del) of `pod` on the node's network (or another one in net.d); the
        container ID is the pod's name unless `cid`."""
        env = {"PATH": SYSTEM_PATH, "CNI_PATH": str(self.cni_bin),
               "NETCONFPATH": str(self.work / "net.d"), "CNI_IFNAME": ifname, "CNI_CONTAINERID": cid or pod.name,
               "CAP_ARGS": json.dumps(cap_args or {}), "CNI_ARGS": cni_args}
        argv = [str(self.cnitool), "--cache-dir", str(self.work / "cache"), verb, network or self.name, pod.path]
        return self.host.run(*argv, env=env, check=False, timeout=120)

    def add(self, pod: Any, **kwargs: Any) -> dict[str, Any]:
        done = self.cni("add", pod, **kwargs)
        assert done.returncode == 0, f"ADD failed: {done.stderr.decode()}"
        return json.loads(done.stdout)

    def ok(self, verb: str, pod: Any, **kwargs: Any) -> None:
        done = self.cni(verb, pod, **kwargs)
        assert done.returncode == 0, f"{verb.upper()} failed: {done.stdout.decode()} {done.stderr.decode()}"

    # --- traffic -------------------------------------------------------------------------------------------------
    def serve(self, pod: Any, address: str, port: int) -> None:
        proc = subprocess.Popen(["ip", "netns", "exec", pod.name, sys.executable, "-c", SERVER, address, str(port),
                                 pod.name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        self.servers.append(proc)

    def connect(self, ns: Any, address: str, port: int) -> str:
        done = ns.run(sys.executable, "-c", CLIENT, address, str(port), check=False, timeout=30)
        return done.stdout.decode() if done.returncode == 0 else f"FAILED: {done.stderr.decode().strip()}"

    def ping(self, ns: Any, address: str) -> bool:
        for _ in range(3):  # the first IPv6 ping may race neighbour discovery
            if ns.run("ping", "-c", "1", "-W", "2", address, check=False).returncode == 0:
                return True
            time.sleep(0.2)
        return False

    def stop_servers(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()
        self.servers.clear()

    # --- leftovers -----------------------------------------------------------------------------------------------
    def allocations(self) -> list[str]:
        return allocations(self.data_dir, self.name)

    def pod_rules(self) -> list[str]:
        """Per-pod firewall state: iptables rules in per-container chains or naming a container, nft rules with
        a comment (shared chains and their jumps are meant to stay)."""
        shared = ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")
        lines = []
        for tool in ("iptables-save", "ip6tables-save"):
            for line in self.host.sh(f"{tool} -t nat").splitlines():
                words = line.split()
                if line.startswith("-A ") and (words[1].startswith("CNI-") and words[1] not in shared
                                               or "-j CNI-" in line and not any(s in line for s in shared)):
                    lines.append(line)
        nft = self.host.sh("nft list ruleset", check=False)
        lines += [line.strip() for line in nft.splitlines() if "comment" in line and "masquerading" not in line
                  and ("dnat" in line or "masquerade" in line)]
        return lines

    def assert_clean(self) -> None:
        assert self.allocations() == []
        assert veths(self.host) == []
        assert self.pod_rules() == []
