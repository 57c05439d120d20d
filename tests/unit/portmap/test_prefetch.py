"""portmap ADD's prefetch: the route lookup starts first, the chain reads start under the portmap lock (so no
other pycni portmap writes between them and our write), and a failed ADD leaves no child process."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

import pytest

from common.exec import SYSTEM, Completed, Programs
from portmap.host import Host
from portmap.plugin import make_plugin
from support import Caller
from support.children import children, tools

PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/c"}],
        "ips": [{"address": "10.4.0.5/24", "interface": 0}]}
MAPS = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}


def _portmap(host: Host) -> Caller:
    return Caller(make_plugin(host), cid="abc123", netns="/run/netns/c", cni_path="/opt/cni/bin", path=None,
                  CNI_ARGS=None)


def _held(lock: Path) -> bool:
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_reads_start_under_the_lock_after_the_route_lookup(tmp_path: Path) -> None:
    lock, events = tmp_path / "lock", []
    (tmp_path / "sys/net/ipv4/conf/cni0").mkdir(parents=True)
    (tmp_path / "sys/net/ipv4/conf/cni0/route_localnet").write_text("0\n")

    def run(argv: Any, *, input: bytes = b"", **_: Any) -> Completed:
        events.append((f"{argv[0]} -S {argv[-1]}" if "-S" in argv else argv[0], _held(lock)))
        if argv[0] == "ip":
            return Completed(0, b"10.4.0.5 dev cni0 src 10.4.0.1 uid 0\n", b"")
        if "-S" in argv:
            return Completed(0, f"-P {argv[-1]} ACCEPT\n".encode(), b"")
        return Completed(0, b"", b"")

    host = Host(programs=Programs.faked(run), lock_path=str(lock), sysctl_root=str(tmp_path / "sys"),
                log=lambda _: None)
    assert _portmap(host)("ADD", {"cniVersion": "1.0.0", "name": "mynet", "type": "portmap", "prevResult": PREV,
                                  "runtimeConfig": MAPS}).status == 0
    assert events[0] == ("ip", False)
    assert all(held for name, held in events[1:] if name.startswith("iptables"))
    assert [name for name, _ in events[1:]] == [
        "iptables -S PREROUTING", "iptables -S OUTPUT", "iptables -S POSTROUTING", "iptables -S CNI-HOSTPORT-DNAT",
        "iptables -S CNI-HOSTPORT-SETMARK", "iptables -S CNI-HOSTPORT-MASQ", "iptables-restore"]
    assert (tmp_path / "sys/net/ipv4/conf/cni0/route_localnet").read_text() == "1"


def test_a_failed_add_leaves_no_child_and_its_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Real processes: the reads (scripts that would run 30 s) are running when route_localnet cannot be
    written; ADD fails with that error and leaves no child, running or unreaped."""
    monkeypatch.setenv("PATH", tools(tmp_path, ip="echo '10.4.0.5 dev cni0 src 10.4.0.1 uid 0'",
                                     iptables="exec sleep 30"))
    before = children()
    host = Host(programs=SYSTEM, lock_path=str(tmp_path / "lock"), sysctl_root=str(tmp_path / "no-sys"),
                log=lambda _: None)
    answer = _portmap(host)("ADD", {"cniVersion": "1.0.0", "name": "mynet", "type": "portmap", "prevResult": PREV,
                                    "runtimeConfig": MAPS})
    assert (answer.status, answer.out["code"]) == (1, 999)
    assert answer.out["msg"] == "unable to enable route_localnet on cni0: No such file or directory"
    assert children() == before
