"""common.firewall.backend's prefetch: the programs start at once, the first read collects them, a write or the
end of the operation reaps what was not collected, and an early answer the caller distrusts is read again."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from common.errors import CniError
from common.exec import SYSTEM, Completed, Programs
from common.firewall.backend import Iptables, Nftables
from support.children import children, tools


class Fake:
    """Answers `iptables -S CHAIN` with `answers` in turn (then the last one), records every call."""

    def __init__(self, *answers: str) -> None:
        self.calls: list[str] = []
        self.answers = list(answers) or ["-P POSTROUTING ACCEPT\n"]

    def __call__(self, argv: Any, *, input: bytes = b"", **_: Any) -> Completed:
        self.calls.append(" ".join(argv[:1] + argv[-2:]) if "-S" in argv else argv[0])
        if "-S" in argv:
            return Completed(0, (self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]).encode(), b"")
        if argv[:3] == ["nft", "-j", "list"]:
            return Completed(0, b'{"nftables": [{"chain": {"name": "c"}}]}', b"")
        return Completed(0, b"", b"")


def test_a_prefetch_runs_at_once_and_the_read_collects_it() -> None:
    fake = Fake()
    ipt = Iptables(Programs.faked(fake), needed_by="test")
    ipt.prefetch("nat", 4, ["POSTROUTING"])
    assert fake.calls == ["iptables -S POSTROUTING"]
    assert ipt.readable("nat", 4, ["POSTROUTING"])
    assert ipt.read("nat", 4, ["POSTROUTING"]) == "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    assert fake.calls == ["iptables -S POSTROUTING"]       # no second read


def test_an_early_answer_the_caller_distrusts_is_read_again() -> None:
    fake = Fake("-P POSTROUTING ACCEPT\n-A POSTROUTING -j CNI-x\n", "-P POSTROUTING ACCEPT\n")
    ipt = Iptables(Programs.faked(fake), needed_by="test")
    ipt.prefetch("nat", 4, ["POSTROUTING"], recheck=lambda text: "CNI-x" in text)
    assert ipt.read("nat", 4, ["POSTROUTING"]) == "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    assert fake.calls == ["iptables -S POSTROUTING"] * 2


def test_a_write_drops_a_prefetch_not_collected() -> None:
    fake = Fake()
    ipt = Iptables(Programs.faked(fake), needed_by="test")
    ipt.prefetch("nat", 6, ["POSTROUTING"])
    ipt.write("*nat\nCOMMIT\n", 4)
    ipt.read("nat", 6, ["POSTROUTING"])
    assert fake.calls == ["ip6tables -S POSTROUTING", "iptables-restore", "ip6tables -S POSTROUTING"]


def test_nftables_prefetch_is_collected_by_the_read() -> None:
    fake = Fake()
    nft = Nftables(Programs.faked(fake), needed_by="test")
    nft.prefetch("t")
    assert nft.read("t") == [{"chain": {"name": "c"}}] and fake.calls == ["nft"]


def test_a_program_that_cannot_start_fails_at_the_read_as_without_prefetch(monkeypatch: pytest.MonkeyPatch,
                                                                             tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    messages = []
    for prefetch in (False, True):
        ipt = Iptables(SYSTEM, needed_by="test")
        if prefetch:
            ipt.prefetch("nat", 4, ["POSTROUTING"])
        with pytest.raises(CniError) as info:
            ipt.read("nat", 4, ["POSTROUTING"])
        messages.append((info.value.code, info.value.msg))
    assert messages[0] == messages[1] == (999, "program 'iptables' not found (needed by test)")


def _running(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("end", ["close", "with", "forget", "write"])
def test_a_prefetch_never_collected_is_killed_and_reaped(end: str, monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", tools(tmp_path, iptables="exec sleep 30", iptables_restore="cat >/dev/null"))
    before = children()
    started = time.monotonic()
    with Iptables(SYSTEM, needed_by="test") as ipt:
        ipt.prefetch("nat", 4, ["POSTROUTING", "OUTPUT"])
        assert len(children() - before) == 2        # running
        assert all(_running(pid) for pid in children() - before)
        if end == "close":
            ipt.close()
        elif end == "forget":
            ipt.forget()
        elif end == "write":
            ipt.write("*nat\nCOMMIT\n", 4)
        if end != "with":
            assert children() == before
    assert children() == before
    assert time.monotonic() - started < 5           # killed, not waited for
