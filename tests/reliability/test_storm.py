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
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support import NETWORK, Netns, Node, bridge_conf, container_rules, firewall_state, veths

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CONTAINERS = 50
PARALLEL = 8
PLAN = ("add", "del", "add", "del")


def test_storm(dist_bin: Path, cnitool: Path, netns_factory: Callable[[str], Netns], tmp_path: Path) -> None:
    bridge = bridge_conf(tmp_path / "ipam", isGateway=True, ipMasq=True)
    del bridge["cniVersion"], bridge["name"]
    conflist = {"cniVersion": "1.0.0", "name": NETWORK, "plugins": [
        bridge, {"type": "portmap", "capabilities": {"portMappings": True}, "backend": "iptables"}]}
    node = Node(netns_factory, cni_bin=dist_bin, cnitool=cnitool, work=tmp_path, conflist=conflist)
    pods = [netns_factory(f"s{i}") for i in range(CONTAINERS)]

    def libcni(verb: str, i: int) -> subprocess.CompletedProcess[bytes]:
        mapping = {"hostPort": 20000 + i, "containerPort": 80, "protocol": "tcp"}
        return node.cni(verb, pods[i], cid=f"storm-{i}", cap_args={"portMappings": [mapping]})

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
            done = libcni(verb, i)
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
    assert node.allocations() == []
    assert veths(node.host) == []
    state = firewall_state(node.host)
    leftover = [line for i in range(CONTAINERS) for line in container_rules(state, f"storm-{i}")]
    assert leftover == []
    nat = node.host.sh("iptables-save -t nat", check=False).splitlines()
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
