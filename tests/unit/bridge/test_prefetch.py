"""bridge ADD's prefetch of its masquerade read: started before the netlink work, collected by masq_setup's
write, read again when it shows this container's own rules, and never left running when the ADD fails."""
from __future__ import annotations

from ipaddress import ip_interface
from pathlib import Path
from typing import Any

import pytest

from bridge import plugin, rules
from bridge.config import BridgeConf
from bridge.host import Host
from common import netns
from common.exec import SYSTEM, Completed, Programs
from support import request
from support.children import children, tools

CHAIN = "CNI-70a29d9dc18bc4d652ea5d59"          # FormatChainName("mynet", "abc123")
CONF = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", "isGateway": True, "ipMasq": True,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.22.0.0/24"}]]}}
JUMP = (f'-A POSTROUTING -s 10.22.0.5/32 -m comment --comment "name: \\"mynet\\" id: \\"abc123\\"" '
        f"-j {CHAIN}")


class Log:
    """One ordered record of programs (as "iptables -S CHAIN" or the program) and netlink steps."""

    def __init__(self, *postrouting: str) -> None:
        self.events: list[str] = []
        self.scripts: list[str] = []
        self.postrouting = list(postrouting) or ["-P POSTROUTING ACCEPT\n"]

    def run(self, argv: Any, *, input: bytes = b"", **_: Any) -> Completed:
        if "-S" in argv:
            self.events.append(f"{argv[0]} -S {argv[-1]}")
            answer = self.postrouting.pop(0) if len(self.postrouting) > 1 else self.postrouting[0]
            return Completed(0, answer.encode(), b"")
        self.events.append(argv[0])
        self.scripts.append(input.decode())
        return Completed(0, b"", b"")


def test_the_read_starts_before_the_netlink_work() -> None:
    log = Log()

    def open_node() -> Any:
        log.events.append("netlink: open node")
        raise netns.NetnsGone("/proc/self/ns/net")     # enough: what ran before it is what this test is about

    host = Host(open_node=open_node, programs=Programs.faked(log.run))
    with pytest.raises(netns.NetnsGone):
        plugin.add(request("ADD", CONF, cid="abc123", netns="/run/netns/c", ifname="eth0"), host)
    assert log.events == ["iptables -S POSTROUTING", "netlink: open node"]


def test_no_masquerade_no_prefetch() -> None:
    log = Log()

    def open_node() -> Any:
        raise netns.NetnsGone("/proc/self/ns/net")

    with pytest.raises(netns.NetnsGone):
        plugin.add(request("ADD", {**CONF, "ipMasq": False}, cid="abc123", netns="/run/netns/c", ifname="eth0"),
                   Host(open_node=open_node, programs=Programs.faked(log.run)))
    assert log.events == []


def _setup(log: Log) -> None:
    conf = BridgeConf(name="mynet", cni_version="1.0.0", ip_masq=True, ipam_type="host-local")
    with rules.Rules(Programs.faked(log.run)) as masq:
        masq.prefetch_masq(conf=conf, container_id="abc123", ifname="eth0", families=(4,))
        log.events.append("netlink and IPAM")
        masq.masq_setup([ip_interface("10.22.0.5/24")], conf=conf, container_id="abc123", ifname="eth0")


def test_the_write_uses_the_prefetched_read() -> None:
    log = Log()
    _setup(log)
    assert log.events == ["iptables -S POSTROUTING", "netlink and IPAM", "iptables-restore"]
    assert JUMP in log.scripts[0]


def test_an_early_read_showing_this_containers_rules_is_read_again() -> None:
    log = Log(f"-P POSTROUTING ACCEPT\n{JUMP}\n", "-P POSTROUTING ACCEPT\n")   # a concurrent DEL removed it
    _setup(log)
    assert log.events == ["iptables -S POSTROUTING", "netlink and IPAM", "iptables -S POSTROUTING",
                          "iptables-restore"]
    assert JUMP in log.scripts[0]                 # the fresh read decided: the jump is written again


@pytest.mark.parametrize(("ipam", "families"), [
    ({"type": "host-local", "ranges": [[{"subnet": "10.1.0.0/16"}], [{"subnet": "fd00::/64"}]]}, (4, 6)),
    ({"type": "host-local", "subnet": "fd00::/64"}, (6,)),
    ({"type": "static", "addresses": [{"address": "10.1.0.5/24"}]}, (4,)),
    ({"type": "dhcp"}, (4,)),
    ({"type": "host-local", "ranges": "junk"}, (4,)),
    (None, (4,)),
])
def test_likely_families(ipam: Any, families: tuple[int, ...]) -> None:
    assert rules.likely_families(ipam) == families


def test_a_failed_add_leaves_no_child_and_its_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real processes: the prefetched `iptables -S` (a script that would run 30 s) is running while the netlink
    work starts; the netns is gone, so ADD fails with that error, and no child is left, running or unreaped."""
    monkeypatch.setenv("PATH", tools(tmp_path, iptables="exec sleep 30", ip6tables="exec sleep 30"))
    before, during = children(), set()

    class Node:
        def __enter__(self) -> Node:
            return self

        def __exit__(self, *_: object) -> None:
            return None

    def open_pod(path: str) -> Any:
        during.update(children() - before)
        raise netns.NetnsGone(path)

    host = Host(open_node=Node, open_pod=open_pod, programs=SYSTEM)
    with pytest.raises(netns.NetnsGone) as info:
        plugin.add(request("ADD", CONF, cid="abc123", netns="/run/netns/gone", ifname="eth0"), host)
    assert (info.value.code, info.value.msg) == (3, "network namespace '/run/netns/gone' does not exist")
    assert len(during) == 1                        # the prefetch ran during the netlink work
    assert children() == before
