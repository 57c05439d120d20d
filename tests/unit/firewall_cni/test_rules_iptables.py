"""Pure iptables builders: golden restore scripts from iptables-save snapshots (clean, after Go 1.1.1, after
ourselves), DEL/GC against a dump with other writers' rules, CHECK's messages in the reference's words."""
from __future__ import annotations

from pathlib import Path

import pytest

from common.firewall.iptables import parse_save
from common.ip import IPAddress, ip_address
from firewall_cni import rules_iptables as rules
from firewall_cni.config import FirewallConf

GOLDEN = Path(__file__).parent / "golden"
IP4, IP4B, IP6 = (ip_address(a) for a in ("10.99.1.2", "10.99.1.3", "fd99:1::2"))

CLEAN = """*filter
:INPUT ACCEPT [0:0]
:FORWARD DROP [0:0]
:OUTPUT ACCEPT [0:0]
COMMIT
"""
# What Debian's Go 1.1.1 left after a same-bridge pod on cni-fr1 and one on cni-fr2 (reference facts, §2).
GO_111 = (GOLDEN / "go111.save").read_text()
# The state our own `isolated` ADD on cni1 leaves (v1.9.x's, as in the reference facts), plus a duplicate accept.
OURS = (GOLDEN / "ours.save").read_text()
SNAPSHOTS = {"clean": CLEAN, "go111": GO_111, "ours": OURS}


def conf(policy: str = "open", admin: str = "CNI-ADMIN") -> FirewallConf:
    return FirewallConf(name="net1", admin_chain=admin, ingress_policy=policy)


ADD_CASES = {   # golden file -> (snapshot, conf, addresses, bridge)
    "add_open_clean": ("clean", conf(), [IP4], None),
    "add_open_v6_clean": ("clean", conf(), [IP6], None),
    "add_isolated_clean": ("clean", conf("isolated"), [IP4], "cni1"),
    "add_same_bridge_after_go111": ("go111", conf("same-bridge"), [IP4], "cni-fr1"),
    "add_same_bridge_new_bridge_after_go111": ("go111", conf("same-bridge"), [IP4], "cni-fr3"),
    "add_isolated_after_go111": ("go111", conf("isolated"), [IP4B], "cni-fr1"),
    "add_custom_admin_after_ours": ("ours", conf(admin="MY-ADMIN"), [IP4], None),
    "add_repeat_ours": ("ours", conf("isolated"), [IP4], "cni1"),
}


@pytest.mark.parametrize("case", ADD_CASES)
def test_add_script_golden(case: str) -> None:
    snapshot, firewall, ips, bridge = ADD_CASES[case]
    script = rules.add_script(firewall, ips, bridge, parse_save(SNAPSHOTS[snapshot], "filter"))
    assert script == (GOLDEN / f"{case}.rules").read_text()


def test_add_on_complete_state_writes_nothing() -> None:
    saved = parse_save(OURS, "filter")
    assert rules.add_script(conf("isolated"), [IP4], "cni1", saved) == ""
    assert rules.add_script(conf("same-bridge"), [IP4], "cni1", saved) == ""   # isolated's rules cover it


def test_isolation_rules_of_either_go_version_count_as_present() -> None:
    bare = rules.without_isolation_comment
    v111 = ('-A CNI-ISOLATION-STAGE-2 -o br0 -m comment --comment '
            '"CNI firewall plugin rules (ingressPolicy: same-bridge)" -j DROP')
    v19 = ('-A CNI-ISOLATION-STAGE-2 -o br0 -m comment --comment '
           '"CNI firewall plugin rules (ingressPolicy: same-bridge|isolated)" -j DROP')
    assert bare(v111) == bare(v19) == "-A CNI-ISOLATION-STAGE-2 -o br0 -j DROP"
    other = '-A CNI-ISOLATION-STAGE-2 -o br0 -m comment --comment "something else" -j DROP'
    assert bare(other) == other


def test_delete_removes_every_copy_of_the_addresses_rules_only() -> None:
    assert rules.delete_script([IP4], parse_save(OURS, "filter")) == (
        "*filter\n"
        "-D CNI-FORWARD -d 10.99.1.2/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n"
        "-D CNI-FORWARD -s 10.99.1.2/32 -j ACCEPT\n"
        "-D CNI-FORWARD -s 10.99.1.2/32 -j ACCEPT\n"
        "COMMIT\n")


def test_delete_of_absent_rules_writes_nothing() -> None:
    assert rules.delete_script([IP6], parse_save(OURS, "filter")) == ""
    assert rules.delete_script([IP4], parse_save(CLEAN, "filter")) == ""


def test_gc_removes_stale_addresses_and_isolation_of_gone_bridges() -> None:
    saved = parse_save(GO_111, "filter")
    script = rules.gc_script([IP4B], frozenset({"lo", "eth0", "cni-fr2"}), saved)
    assert script == (GOLDEN / "gc_go111_fr1_gone.rules").read_text()


def test_gc_keeps_isolation_when_interfaces_are_unknown_and_wildcards() -> None:
    saved = parse_save(GO_111.replace("cni-fr1", "cni+"), "filter")
    assert rules.gc_script([], None, saved) == ""
    assert rules.gc_script([], frozenset({"cni-fr2"}), saved) == ""


@pytest.mark.parametrize(("snapshot", "ips", "bridge", "msg"), [
    ("clean", [IP4], None,
     "expected FORWARD rule [-m comment --comment CNI firewall plugin rules -j CNI-FORWARD] not found"),
    ("ours", [IP6], None, "expected rule [-d fd99:1::2/128 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT] "
     "not found"),
    ("go111", [IP4B], "cni-fr2", None),
    ("go111", [IP4B], "cni-fr9", "expected CNI-ISOLATION-STAGE-1 rule [-i cni-fr9 ! -o cni-fr9 -m comment "
     "--comment CNI firewall plugin rules (ingressPolicy: same-bridge) -j CNI-ISOLATION-STAGE-2] not found"),
    ("ours", [IP4], "cni1", None),
], ids=["no-jump", "no-v6-rule", "go111-ok", "other-bridge", "ours-ok"])
def test_check(snapshot: str, ips: list[IPAddress], bridge: str | None, msg: str | None) -> None:
    policy = "isolated" if snapshot == "ours" else "same-bridge"
    assert rules.check(conf(policy), list(ips), bridge, parse_save(SNAPSHOTS[snapshot], "filter")) == msg


def test_check_custom_admin_chain() -> None:
    assert rules.check(conf(admin="MY-ADMIN"), [IP4], None, parse_save(OURS, "filter")) == (
        "expected CNI-FORWARD rule [-m comment --comment CNI firewall plugin admin overrides -j MY-ADMIN] not found")
