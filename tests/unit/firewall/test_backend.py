"""common.firewall.backend: the backend is chosen once from the config and the host, reads are cached for the
operation and forgotten by every write, and the programs are those of the injected seam."""
from __future__ import annotations

from typing import Any

import pytest

from common.errors import CniError, Code
from common.exec import Completed, Programs
from common.firewall.backend import Iptables, Nftables, NullBackend, choose


class FakePrograms:
    """Answers `iptables -S CHAIN` (when iptables works), `iptables-save`, `nft -j list` and records every call."""

    def __init__(self, *, iptables: bool = True, busy: bool = False) -> None:
        self.calls: list[list[str]] = []
        self.iptables, self.busy = iptables, busy

    def __call__(self, argv: Any, *, input: bytes = b"", **_: Any) -> Completed:
        self.calls.append(list(argv))
        if argv[0] == "iptables" and self.busy:
            raise CniError(Code.TRY_AGAIN_LATER, "iptables did not finish within 60 s")
        if argv[0] == "iptables":
            return (Completed(0, f"-P {argv[-1]} ACCEPT\n".encode(), b"") if self.iptables
                    else Completed(3, b"", b"can't initialize iptables table `filter'"))
        if argv[:3] == ["nft", "-j", "list"]:
            return Completed(0, b'{"nftables": [{"chain": {"name": "c"}}]}', b"")
        return Completed(0, b"", b"")


def backends(fake: FakePrograms) -> tuple[Iptables, Nftables]:
    programs = Programs.faked(fake)
    return Iptables(programs, needed_by="test"), Nftables(programs, needed_by="test")


@pytest.mark.parametrize(("configured", "iptables_works", "chosen", "probed"), [
    ("iptables", False, "iptables", False),
    ("nftables", True, "nftables", False),
    (None, True, "iptables", True),
    (None, False, "nftables", True),
])
def test_choose(configured: str | None, iptables_works: bool, chosen: str, probed: bool) -> None:
    fake = FakePrograms(iptables=iptables_works)
    ipt, nft = backends(fake)
    assert choose(configured, iptables_backend=ipt, nftables_backend=nft).name == chosen
    assert bool(fake.calls) == probed    # a configured backend is not probed


def test_a_busy_iptables_is_an_error_not_a_fallback() -> None:
    ipt, nft = backends(FakePrograms(busy=True))
    with pytest.raises(CniError) as info:
        choose(None, iptables_backend=ipt, nftables_backend=nft)
    assert info.value.code == Code.TRY_AGAIN_LATER


def test_the_probe_read_serves_the_operation_and_a_write_forgets_it() -> None:
    fake = FakePrograms()
    ipt, nft = backends(fake)
    choose(None, iptables_backend=ipt, nftables_backend=nft, probe=lambda b: b.readable("nat", 4, ["POSTROUTING"]))
    assert ipt.read("nat", 4, ["POSTROUTING"]) == "*nat\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
    assert len(fake.calls) == 1
    ipt.write("*nat\nCOMMIT\n", 4)
    ipt.read("nat", 4, ["POSTROUTING"])
    assert [call[0] for call in fake.calls] == ["iptables", "iptables-restore", "iptables"]


def test_nftables_reads_are_cached_per_table_and_family() -> None:
    fake = FakePrograms()
    _, nft = backends(fake)
    assert nft.read("t") == nft.read("t") == [{"chain": {"name": "c"}}]
    nft.read("t", "ip6")
    assert fake.calls == [["nft", "-j", "list", "table", "inet", "t"], ["nft", "-j", "list", "table", "ip6", "t"]]
    nft.write("add table inet t\n")
    nft.read("t")
    assert fake.calls[-2:] == [["nft", "-f", "-"], ["nft", "-j", "list", "table", "inet", "t"]]


def test_the_null_backend_runs_nothing_and_refuses_rules() -> None:
    null = NullBackend()
    null.write("")
    null.forget()
    assert null.usable() and null.name == "none"
    with pytest.raises(CniError):
        null.write("add table inet t\n")
