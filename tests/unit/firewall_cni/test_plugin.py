"""The verbs through common.skel.dispatch with a fake runner: which programs run, with what input, which records
are kept; errors before any rule is written."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.exec import Completed, Programs
from firewall_cni.host import Host
from firewall_cni.plugin import make_plugin
from support import Caller

PREV = {"cniVersion": "1.0.0",
        "interfaces": [{"name": "cni1"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/run/netns/c"}],
        "ips": [{"address": "10.4.0.5/24", "interface": 2}, {"address": "fd04::5/64", "interface": 2}]}
ACCEPTS_V4 = ("-A CNI-FORWARD -d 10.4.0.5/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
              "-A CNI-FORWARD -s 10.4.0.5/32 -j ACCEPT\n")


class FakeHost:
    """Answers like a node whose filter table holds `chains` (name -> `iptables -S` lines); records every call."""

    def __init__(self, tmp: Path, *, iptables: bool = True, nft: bool = True, fail_restore: int = 0,
                 chains: dict[str, str] | None = None) -> None:
        self.calls: list[tuple[list[str], bytes]] = []
        self.iptables, self.nft, self.fail_restore = iptables, nft, fail_restore
        self.chains = {"FORWARD": "-P FORWARD DROP\n", **(chains or {})}
        self.data = tmp / "records"
        (tmp / "net_dev").write_text("Inter-|   Receive\n face |bytes\n    lo: 0 0\n  cni1: 0 0\n")
        self.host = Host(programs=Programs.faked(self.run), lock_path=str(tmp / "lock"), data_dir=str(self.data),
                         net_dev=str(tmp / "net_dev"))
        self.firewall = Caller(make_plugin(self.host), cid="abc123", netns="/run/netns/c", cni_path="/opt/cni/bin",
                               path="/nonexistent", CNI_ARGS=None)

    def run(self, argv: list[str], *, input: bytes = b"", **_: Any) -> Completed:
        self.calls.append((list(argv), input))
        if argv[0] in ("iptables", "ip6tables"):
            if not self.iptables:
                return Completed(3, b"", b"iptables v1.8.9 (nf_tables): can't initialize table filter")
            if argv[-1] in self.chains:
                return Completed(0, self.chains[argv[-1]].encode(), b"")
            return Completed(1, b"", b"iptables: No chain/target/match by that name.")
        if argv[0].endswith("tables-restore"):
            if self.fail_restore:
                self.fail_restore -= 1
                return Completed(1, b"", b"iptables-restore: line 5 failed")
            return Completed(0, b"", b"")
        if argv[:3] == ["nft", "-j", "list"]:
            return Completed(1, b"", b"Error: No such file or directory")
        return Completed(0, b"", b"")

    @property
    def programs(self) -> list[str]:
        return [f"{argv[0]} -S {argv[-1]}" if "-S" in argv else " ".join(argv[:2]) for argv, _ in self.calls]

    def writes(self) -> list[tuple[str, str]]:
        return [(argv[0], data.decode()) for argv, data in self.calls if argv[0].endswith("-restore")
                or argv[:2] == ["nft", "-f"]]

    def records(self) -> dict[str, str]:
        return {str(p.relative_to(self.data)): p.read_text() for p in self.data.rglob("*") if p.is_file()}


def call(fake: FakeHost, command: str, cid: str = "abc123", **keys: Any) -> tuple[int, Any]:
    answer = fake.firewall(command, {"cniVersion": "1.0.0", "name": "net1", "type": "firewall", **keys}, cid=cid)
    return answer.status, answer.out


READS = ["FORWARD", "CNI-FORWARD", "CNI-ADMIN", "CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2"]


def test_add_reads_its_chains_writes_once_per_family_and_records_the_addresses(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    status, out = call(fake, "ADD", prevResult=PREV)
    assert (status, out) == (0, {**PREV, "dns": {}})
    assert fake.programs == ([f"iptables -S {c}" for c in READS] + ["iptables-restore --noflush"]
                             + [f"ip6tables -S {c}" for c in READS] + ["ip6tables-restore --noflush"])
    assert ACCEPTS_V4 in fake.writes()[0][1]
    assert fake.records() == {"net1/abc123_eth0": "10.4.0.5\nfd04::5\n"}


@pytest.mark.parametrize(("version", "ips_key"), [("0.4.0", "ips"), ("0.3.1", "ips"), ("0.2.0", "ip4"),
                                                  ("1.1.0", "ips")])
def test_add_returns_prev_result_in_the_configs_version(tmp_path: Path, version: str, ips_key: str) -> None:
    fake = FakeHost(tmp_path)
    prev = {**PREV, "cniVersion": version}
    if version == "0.2.0":
        prev = {"cniVersion": "0.2.0", "ip4": {"ip": "10.4.0.5/24"}}
    else:
        prev = {**prev, "ips": [{**ip, "version": "4" if "." in ip["address"] else "6"} for ip in PREV["ips"]]
                if version < "1.0.0" else PREV["ips"]}
    status, out = call(fake, "ADD", cniVersion=version, prevResult=prev)
    assert status == 0 and ips_key in out and out["cniVersion"] == version


@pytest.mark.parametrize(("keys", "code", "word"), [
    ({"ingressPolicy": "strict"}, 7, "ingressPolicy"),
    ({"backend": "firewalld"}, 2, "backend"),
    ({"backend": "ebtables"}, 7, "backend"),
    ({"ingresspolicy": "isolated", "zone": "x"}, 7, "zone"),
    ({"ingressPolicy": "same-bridge", "prevResult": {**PREV, "interfaces": []}}, 7, "bridge"),
    ({"prevResult": None}, 7, "missing prevResult"),
], ids=["policy", "firewalld", "backend", "unknown-key", "no-bridge", "no-prev"])
def test_add_errors_come_before_any_program_or_record(tmp_path: Path, keys: dict[str, Any], code: int,
                                                      word: str) -> None:
    fake = FakeHost(tmp_path)
    status, out = call(fake, "ADD", **{"prevResult": PREV, **keys})
    assert (status, out["code"]) == (1, code) and word in out["msg"]
    assert fake.calls == [] and fake.records() == {}


def test_add_without_addresses_runs_nothing(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    prev = {**PREV, "ips": []}
    assert call(fake, "ADD", prevResult=prev, ingressPolicy="isolated")[0] == 0
    assert fake.calls == [] and fake.records() == {}


def test_failed_add_removes_its_accepts_and_record(tmp_path: Path) -> None:
    # v4 written, v6 refused: the v4 accepts (now listed by the fake) are deleted again, the record is gone.
    fake = FakeHost(tmp_path)
    fake.fail_restore = 0

    def run(argv: list[str], *, input: bytes = b"", **kw: Any) -> Completed:
        if argv[0] == "ip6tables-restore" and b"-A CNI-FORWARD" in input:
            fake.calls.append((list(argv), input))
            fake.chains["CNI-FORWARD"] = ACCEPTS_V4
            return Completed(1, b"", b"ip6tables-restore: line 3 failed")
        return FakeHost.run(fake, argv, input=input, **kw)
    fake.host = Host(programs=Programs.faked(run), lock_path=fake.host.lock_path, data_dir=fake.host.data_dir)
    fake.firewall = Caller(make_plugin(fake.host), cid="abc123", netns="/run/netns/c", cni_path="/x",
                           path="/nonexistent", CNI_ARGS=None)
    status, out = call(fake, "ADD", prevResult=PREV)
    assert status == 1 and "ip6tables-restore failed" in out["msg"]
    assert fake.writes()[-1] == ("iptables-restore", "*filter\n" + ACCEPTS_V4.replace("-A ", "-D ") + "COMMIT\n")
    assert fake.records() == {}


def test_add_retries_once_when_another_writer_created_a_chain(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)

    def run(argv: list[str], *, input: bytes = b"", **kw: Any) -> Completed:
        if argv[0] == "iptables-restore" and b"-N CNI-FORWARD" in input:
            fake.calls.append((list(argv), input))
            fake.chains["CNI-FORWARD"] = "-N CNI-FORWARD\n"
            return Completed(1, b"", b"iptables-restore v1.8.9: Chain already exists")
        return FakeHost.run(fake, argv, input=input, **kw)
    fake.host = Host(programs=Programs.faked(run), lock_path=fake.host.lock_path, data_dir=fake.host.data_dir)
    fake.firewall = Caller(make_plugin(fake.host), cid="abc123", netns="/run/netns/c", cni_path="/x",
                           path="/nonexistent", CNI_ARGS=None)
    status, _ = call(fake, "ADD", prevResult={**PREV, "ips": PREV["ips"][:1]})
    assert status == 0
    scripts = [data for tool, data in fake.writes() if tool == "iptables-restore"]
    assert len(scripts) == 2 and "-N CNI-FORWARD" not in scripts[1] and "-N CNI-ADMIN" in scripts[1]


def test_auto_backend_is_nftables_when_iptables_cannot_read(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path, iptables=False)
    assert call(fake, "ADD", prevResult=PREV)[0] == 0
    assert fake.programs == ["iptables -S FORWARD", "iptables -S CNI-FORWARD", "iptables -S CNI-ADMIN",
                             "iptables -S CNI-ISOLATION-STAGE-1", "iptables -S CNI-ISOLATION-STAGE-2",
                             "nft -j", "nft -f"]
    assert 'comment "net1 abc123 eth0"' in fake.writes()[0][1]


def test_del_without_prev_result_uses_the_record_and_removes_it(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    call(fake, "ADD", prevResult=PREV)
    fake.calls.clear()
    fake.chains["CNI-FORWARD"] = ACCEPTS_V4
    assert call(fake, "DEL", backend="typo", zone="ignored")[0] == 0   # DEL is lenient
    assert fake.writes() == [("iptables-restore", "*filter\n" + ACCEPTS_V4.replace("-A ", "-D ") + "COMMIT\n")]
    assert fake.records() == {} and not (fake.data / "net1").exists()   # the network's directory went too


def test_del_with_nothing_known_runs_nothing(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    assert call(fake, "DEL")[0] == 0
    assert call(fake, "DEL", backend="firewalld", prevResult=PREV)[0] == 0
    assert fake.calls == []


def test_check_reports_the_first_missing_rule_in_the_references_words(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path, chains={
        "FORWARD": '-P FORWARD DROP\n-A FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD\n',
        "CNI-FORWARD": '-N CNI-FORWARD\n-A CNI-FORWARD -m comment --comment "CNI firewall plugin admin overrides" '
                       "-j CNI-ADMIN\n" + ACCEPTS_V4})
    status, out = call(fake, "CHECK", prevResult=PREV)
    assert (status, out["code"], out["msg"]) == (
        1, 999, "expected rule [-d fd04::5/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT] not found")
    assert call(fake, "CHECK", prevResult={**PREV, "ips": PREV["ips"][:1]}) == (0, None)
    assert not fake.writes()


def test_gc_removes_stale_attachments_but_not_addresses_still_held(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    one = {**PREV, "ips": PREV["ips"][:1]}
    call(fake, "ADD", cid="gone", prevResult=one)
    call(fake, "ADD", cid="kept", prevResult=one)              # the same address, still valid
    call(fake, "ADD", cid="gone2", prevResult={**PREV, "ips": [{"address": "10.4.0.9/24"}]})
    fake.calls.clear()
    fake.chains["CNI-FORWARD"] = ACCEPTS_V4 + "-A CNI-FORWARD -s 10.4.0.9/32 -j ACCEPT\n"
    fake.chains["CNI-ISOLATION-STAGE-2"] = ('-A CNI-ISOLATION-STAGE-2 -o cni1 -j DROP\n'
                                           '-A CNI-ISOLATION-STAGE-2 -o cni-old -m comment --comment '
                                           '"CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP\n')
    valid = [{"containerID": "kept", "ifname": "eth0"}]
    assert call(fake, "GC", cniVersion="1.1.0", **{"cni.dev/valid-attachments": valid})[0] == 0
    assert fake.writes()[0] == ("iptables-restore", "*filter\n-D CNI-FORWARD -s 10.4.0.9/32 -j ACCEPT\n"
                                "-D CNI-ISOLATION-STAGE-2 -o cni-old -m comment --comment "
                                '"CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP\nCOMMIT\n')
    assert fake.records() == {"net1/kept_eth0": "10.4.0.5\n"}


def test_status(tmp_path: Path) -> None:
    assert call(FakeHost(tmp_path), "STATUS", cniVersion="1.1.0") == (0, None)
    status, out = call(FakeHost(tmp_path, iptables=False), "STATUS", cniVersion="1.1.0", backend="iptables")
    assert (status, out["code"]) == (1, 50)
    status, out = call(FakeHost(tmp_path), "STATUS", cniVersion="1.1.0", backend="firewalld")
    assert (status, out["code"]) == (1, 2)


def test_status_without_any_tool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))      # nft is looked for on the plugin's PATH
    fake = FakeHost(tmp_path, iptables=False)
    status, out = call(fake, "STATUS", cniVersion="1.1.0")
    assert (status, out["code"]) == (1, 50) and "nft" in out["msg"]
    assert call(fake, "DEL", prevResult=PREV) == (0, None)    # no tool, so no rule of ours: DEL succeeds
    assert not fake.writes()
