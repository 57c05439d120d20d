"""Concurrency storm: 200 operations (ADD and DEL of 50 containers, each ADD, DEL, ADD, DEL), interleaved, 8 at a
time, through libcni (tests/driver cnitool) and the built executables: bridge (ipMasq) + host-local + portmap.

Zero duplicate addresses at every moment (a container's address counts from its ADD's result until its DEL
starts); afterwards zero allocations, veths and per-container rules, and exactly one copy of each shared chain
and jump rule.
"""
from __future__ import annotations

import json
import random
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import pytest

from reliability_support import (NETWORK, SYSTEM_PATH, allocations, bridge_conf, container_rules, firewall_state,
                                 sh, veths)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONTAINERS = 50
PARALLEL = 8
PLAN = ("add", "del", "add", "del")


def test_storm(dist_bin: Path, cnitool: Path, host_ns: Any, netns_factory: Callable[[str], Any], tmp_path: Path) -> None:
    data = tmp_path / "ipam"
    bridge = bridge_conf(data)
    del bridge["cniVersion"], bridge["name"]
    conflist = {"cniVersion": "1.0.0", "name": NETWORK, "plugins": [
        bridge, {"type": "portmap", "capabilities": {"portMappings": True}, "backend": "iptables"}]}
    (tmp_path / "net.d").mkdir()
    (tmp_path / "net.d" / "storm.conflist").write_text(json.dumps(conflist))
    pods = [netns_factory(f"s{i}") for i in range(CONTAINERS)]

    def cni(verb: str, i: int) -> subprocess.CompletedProcess[bytes]:
        env = {"PATH": SYSTEM_PATH, "CNI_PATH": str(dist_bin), "NETCONFPATH": str(tmp_path / "net.d"),
               "CNI_IFNAME": "eth0", "CNI_CONTAINERID": f"storm-{i}", "CNI_CACHE_DIR": str(tmp_path / "cache"),
               "CAP_ARGS": json.dumps({"portMappings": [{"hostPort": 20000 + i, "containerPort": 80,
                                                         "protocol": "tcp"}]})}
        return subprocess.run(["nsenter", f"--net={host_ns.path}", "--", str(cnitool), verb, NETWORK, pods[i].path],
                              env=env, capture_output=True, timeout=120)

    lock = threading.Lock()
    live: dict[int, str] = {}
    seen: list[str] = []
    step = [0] * CONTAINERS              # next op of each container
    busy: set[int] = set()
    failures: list[str] = []
    rng = random.Random(8)

    def next_op() -> tuple[int, str] | None:
        with lock:
            ready = [i for i in range(CONTAINERS) if i not in busy and step[i] < len(PLAN)]
            if not ready:
                return None
            i = rng.choice(ready)
            busy.add(i)
            verb = PLAN[step[i]]
            if verb == "del":
                live.pop(i, None)        # from here the address may go to someone else
            return i, verb

    def worker() -> None:
        while True:
            op = next_op()
            if op is None:
                with lock:
                    if all(s == len(PLAN) for s in step):
                        return
                threading.Event().wait(0.01)
                continue
            i, verb = op
            done = cni(verb, i)
            with lock:
                if done.returncode != 0:
                    failures.append(f"{verb} storm-{i}: {done.stderr.decode()}")
                elif verb == "add":
                    address = json.loads(done.stdout)["ips"][0]["address"]
                    holders = [j for j, a in live.items() if a == address]
                    if holders:
                        failures.append(f"{address} given to storm-{i} while storm-{holders[0]} holds it")
                    live[i] = address
                    seen.append(address)
                step[i] += 1
                busy.discard(i)

    with ThreadPoolExecutor(PARALLEL) as pool:
        for future in [pool.submit(worker) for _ in range(PARALLEL)]:
            future.result()
    assert failures == []
    assert len(seen) == 2 * CONTAINERS
    assert allocations(data) == []
    assert veths(host_ns.path) == []
    state = firewall_state(host_ns.path)
    leftover = [line for i in range(CONTAINERS) for line in container_rules("", f"storm-{i}", state=state)]
    assert leftover == []
    nat = sh(host_ns.path, "iptables-save -t nat").splitlines()
    shared = {
        ":CNI-HOSTPORT-DNAT": 1, ":CNI-HOSTPORT-SETMARK": 1, ":CNI-HOSTPORT-MASQ": 1,
        "-A PREROUTING -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT": 1,
        "-A OUTPUT -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT": 1,
        '-A POSTROUTING -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ': 1,
        "-A CNI-HOSTPORT-SETMARK ": 1, "-A CNI-HOSTPORT-MASQ ": 1, "-A CNI-HOSTPORT-DNAT ": 0}
    counts = {key: sum(line.startswith(key) for line in nat) for key in shared}
    assert counts == shared, "\n".join(nat)
    assert [line for line in nat if line.startswith(":CNI-") and line.split()[0][1:] not in
            ("CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ")] == []
