"""SIGKILL during ADD at many points (40 delays after start, spread over
the measured duration of an uninterrupted ADD, no hook in the plugins): a DEL with the same
arguments exits 0 and leaves nothing (no veth, no allocation, no firewall rule), and another ADD succeeds.

Everything runs in throwaway namespaces: the "node" is host_ns, pods come from netns_factory.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import Caller, Netns, allocations, bridge_conf, firewall_state, links, ok, plugin_argv, portmap_conf, veths

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

STEPS = 40


def _delays(duration: float) -> list[float]:
    """STEPS kill points spread from 0 to 110 % of an uninterrupted ADD's duration (seconds), and one at 300 %: on a
    loaded machine one ADD can take longer than the one measured, and the sweep must also see an ADD finish."""
    return [round(duration * 1.1 * i / (STEPS - 2), 4) for i in range(STEPS - 1)] + [round(duration * 3, 4)]


def _timed(func: Callable[[], Any]) -> float:
    start = time.monotonic()
    ok(func())
    return time.monotonic() - start


def _killed(proc: Any, delay: float) -> str:
    time.sleep(delay)
    proc.kill()
    proc.wait()
    return "finished" if proc.returncode == 0 else f"killed (status {proc.returncode})"


def test_bridge_add_killed_anywhere_is_cleaned_by_del(dist_bin: Path, host_ns: Netns,
                                                      netns_factory: Callable[[str], Netns], tmp_path: Path) -> None:
    data_dir = tmp_path / "ipam"
    conf = bridge_conf(data_dir, isGateway=True, ipMasq=True)
    pod, spare = netns_factory("pod"), netns_factory("spare")
    plugin = Caller(plugin_argv("bridge", dist_bin), inside=host_ns, cni_path=dist_bin)

    def bridge(command: str, cid: str, netns: str) -> Any:
        return plugin(command, conf, cid=cid, netns=netns)

    # Warm-up: the shared state (bridge, gateway address, nat table) exists from then on and must not grow.
    ok(bridge("ADD", "warm", spare.path))
    ok(bridge("DEL", "warm", spare.path))
    duration = _timed(lambda: bridge("ADD", "warm", spare.path))
    ok(bridge("DEL", "warm", spare.path))
    baseline = firewall_state(host_ns)
    outcomes = {}
    for delay in _delays(duration):
        cid = f"killed-{delay}"
        proc = plugin.start("ADD", conf, cid=cid, netns=pod.path)
        outcomes[delay] = _killed(proc, delay)
        ok(bridge("DEL", cid, pod.path))
        assert veths(host_ns) == [], (delay, outcomes[delay])
        assert "eth0" not in links(pod), delay
        assert allocations(data_dir) == [], (delay, outcomes[delay])
        assert firewall_state(host_ns) == baseline, (delay, outcomes[delay])
        ok(bridge("DEL", cid, pod.path))       # a second DEL is fine too
        # another container is served normally right after, and leaves nothing either
        result = ok(bridge("ADD", f"next-{delay}", spare.path))
        assert result["ips"][0]["address"].startswith("10.77.0.")
        ok(bridge("DEL", f"next-{delay}", spare.path))
        assert allocations(data_dir) == [] and veths(host_ns) == []
    # the sweep really hit the middle of ADDs, not only before start or after the end
    assert sum(o.startswith("killed") for o in outcomes.values()) >= len(outcomes) // 2, outcomes
    assert sum(o == "finished" for o in outcomes.values()) >= 1, outcomes
    # nothing stray next to the network directory either, and in it only what the reference keeps
    assert [p.name for p in data_dir.iterdir()] == ["relnet"]
    assert sorted(p.name for p in (data_dir / "relnet").iterdir()) == ["last_reserved_ip.0", "lock"]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_portmap_add_killed_anywhere_is_cleaned_by_del(dist_bin: Path, host_ns: Netns,
                                                       netns_factory: Callable[[str], Netns], backend: str) -> None:
    pod = netns_factory("pod")
    mappings = [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]
    conf = portmap_conf(mappings, backend=backend)

    plugin = Caller(plugin_argv("portmap", dist_bin), inside=host_ns, netns=pod.path)

    def portmap(command: str, cid: str) -> Any:
        return plugin(command, conf, cid=cid)

    ok(portmap("ADD", "warm"))
    ok(portmap("DEL", "warm"))
    duration = _timed(lambda: portmap("ADD", "warm"))
    ok(portmap("DEL", "warm"))
    baseline = firewall_state(host_ns)     # shared chains and jumps stay, as in the reference
    outcomes = {}
    for delay in _delays(duration):
        cid = f"killed-{delay}"
        proc = plugin.start("ADD", conf, cid=cid)
        outcomes[delay] = _killed(proc, delay)
        ok(portmap("DEL", cid))
        assert firewall_state(host_ns) == baseline, (delay, outcomes[delay])
        ok(portmap("ADD", f"next-{delay}"))
        ok(portmap("DEL", f"next-{delay}"))
        assert firewall_state(host_ns) == baseline, delay
    assert sum(o.startswith("killed") for o in outcomes.values()) >= len(outcomes) // 2, outcomes
