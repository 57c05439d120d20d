"""The verbs through common.skel.dispatch, with a fake runner: which programs run, with what input."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.exec import Completed, Programs
from portmap.host import Host
from portmap.plugin import make_plugin
from support import Caller
from support.portmap_cases import DN

PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/c"}],
        "ips": [{"address": "10.4.0.5/24", "interface": 0}]}


class FakeHost:
    """Records every program the plugin runs and answers like an empty host would."""

    def __init__(self, tmp: Path, *, iptables: bool = True) -> None:
        self.calls: list[tuple[list[str], bytes]] = []
        self.iptables = iptables
        sysctl = tmp / "sys/net/ipv4/conf/cni0"
        sysctl.mkdir(parents=True)
        (sysctl / "route_localnet").write_text("0\n")
        self.route_localnet = sysctl / "route_localnet"
        self.host = Host(programs=Programs.faked(self.run), lock_path=str(tmp / "lock"), sysctl_root=str(tmp / "sys"),
                         log=lambda _: None)
        self.portmap = Caller(make_plugin(self.host), cid="abc123", netns="/run/netns/c", cni_path="/opt/cni/bin",
                              path=None, CNI_ARGS=None)

    def run(self, argv: list[str], *, input: bytes = b"", **_: Any) -> Completed:
        self.calls.append((list(argv), input))
        if argv[0].endswith("tables-save"):
            return Completed(0 if self.iptables else 1, b"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", b"")
        if "-S" in argv:          # `iptables -S CHAIN`: only the built-in chains exist on an empty host
            if not self.iptables:
                return Completed(3, b"", b"iptables v1.8.9 (nf_tables): can't initialize table nat")
            if argv[-1] in ("PREROUTING", "OUTPUT", "POSTROUTING"):
                return Completed(0, f"-P {argv[-1]} ACCEPT\n".encode(), b"")
            return Completed(1, b"", f"iptables: chain `{argv[-1]}' in table `nat' is incompatible".encode())
        if argv[:3] == ["nft", "-j", "list"]:
            return Completed(1, b"", b"Error: No such file or directory")
        if argv[:2] == ["ip", "-o"]:
            return Completed(0, b"10.4.0.5 dev cni0 src 10.4.0.1 uid 0 \\    cache \n", b"")
        return Completed(1 if argv[0] == "conntrack" else 0, b"", b"")

    @property
    def programs(self) -> list[str]:
        """Each call as "program first-argument", a chain read as "iptables -S CHAIN"."""
        return [f"{argv[0]} -S {argv[-1]}" if "-S" in argv else " ".join(argv[:2]) for argv, _ in self.calls]

    def reads(self, tool: str = "iptables") -> set[str]:
        return {p.split()[-1] for p in self.programs if p.startswith(f"{tool} -S ")}


def _call(fake: FakeHost, conf: dict[str, Any], command: str = "ADD") -> tuple[int, Any]:
    """(exit status, output) of `command` on network mynet with the keys `conf`."""
    answer = fake.portmap(command, {"cniVersion": "1.0.0", "name": "mynet", "type": "portmap", **conf})
    return answer.status, answer.out


MAPS = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"},
                         {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}]}


ADD_READS = {"PREROUTING", "OUTPUT", "POSTROUTING", "CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK",
             "CNI-HOSTPORT-MASQ"}     # not DN: ADD rewrites it whatever it holds
CHECK_READS = ADD_READS | {DN}


def test_add_reads_only_its_chains_then_one_restore_and_returns_prev_result(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    status, out = _call(fake, {"prevResult": PREV, "runtimeConfig": MAPS})
    assert (status, out) == (0, {**PREV, "dns": {}})
    reads = len(ADD_READS)
    assert fake.programs[0] == "ip -o" and fake.reads() == ADD_READS
    assert fake.programs[1 + reads:] == ["iptables-restore --noflush", "conntrack -D"]
    script = fake.calls[1 + reads][1].decode()
    assert f":{DN} - [0:0]" in script and "-N CNI-HOSTPORT-DNAT" in script
    assert fake.calls[-1][0] == ["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-port-dst", "5353"]
    assert fake.route_localnet.read_text() == "1"


def test_without_mappings_nothing_runs_not_even_the_backend_probe(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    assert _call(fake, {"prevResult": PREV}) == (0, {**PREV, "dns": {}})
    assert _call(fake, {"prevResult": PREV}, "DEL") == (0, None)
    assert fake.calls == []


def test_add_without_prev_result_is_code_7(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    status, out = _call(fake, {"runtimeConfig": MAPS})
    assert (status, out["code"]) == (1, 7)
    assert out["msg"] == "missing prevResult: portmap must be called as a chained plugin"
    assert fake.calls == []


@pytest.mark.parametrize("mapping", [{"hostPort": 0, "containerPort": 80}, {"hostPort": 80, "containerPort": 80,
                                     "protocol": "icmp"}, {"hostPort": 80, "containerPort": 80, "hostIP": "x"}])
def test_bad_input_runs_no_program(tmp_path: Path, mapping: dict[str, Any]) -> None:
    fake = FakeHost(tmp_path)
    status, out = _call(fake, {"prevResult": PREV, "runtimeConfig": {"portMappings": [mapping]}})
    assert (status, out["code"]) == (1, 7) and "runtimeConfig.portMappings[0]" in out["msg"]
    assert fake.calls == []


def test_unusable_iptables_falls_back_to_one_nft_transaction(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path, iptables=False)
    assert _call(fake, {"prevResult": PREV, "runtimeConfig": MAPS, "snat": False})[0] == 0
    probe = [p for p in fake.programs if p.startswith("iptables -S ")]   # one concurrent read of the chains
    assert probe and fake.programs == [*probe, "nft -j", "nft -f", "conntrack -D"]
    assert 'comment "abc123"' in fake.calls[len(probe) + 1][1].decode()


def test_del_removes_both_families_and_flushes_udp_conntrack(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    assert _call(fake, {"prevResult": PREV, "runtimeConfig": MAPS, "backend": "iptables"}, "DEL") == (0, None)
    # nothing of the container exists in the fake host: reads only, no restore
    assert fake.reads("iptables") == fake.reads("ip6tables") == {"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SNAT",
                                                                 "POSTROUTING", DN, "CNI-SN-" + DN[7:]}
    assert fake.programs[-1] == "conntrack -D" and not any("restore" in p for p in fake.programs)
    # only the flows the container answered: another network's container may map the same port
    assert fake.calls[-1][0] == ["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-port-dst", "5353",
                                 "--reply-src", "10.4.0.5"]


def test_del_without_prev_result_flushes_the_ports_in_both_families(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    assert _call(fake, {"runtimeConfig": MAPS, "backend": "nftables"}, "DEL") == (0, None)
    assert [argv for argv, _ in fake.calls if argv[0] == "conntrack"] == [
        ["conntrack", "-D", "-f", family, "-p", "udp", "--orig-port-dst", "5353"] for family in ("ipv4", "ipv6")]


def test_check_reports_missing_rules(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    status, out = _call(fake, {"prevResult": PREV, "runtimeConfig": MAPS}, "CHECK")
    assert status == 1 and f"chain {DN} not found" in out["msg"]
    assert fake.reads() == CHECK_READS and len(fake.programs) == len(CHECK_READS)


def test_gc_with_nftables_reads_both_tables(tmp_path: Path) -> None:
    fake = FakeHost(tmp_path)
    conf = {"cniVersion": "1.1.0", "backend": "nftables", "cni.dev/valid-attachments": []}
    out = fake.portmap("GC", {"name": "mynet", "type": "portmap", **conf}, cni_path="/x", container=False)
    assert out.status == 0
    assert fake.programs == ["nft -j", "nft -j"]
