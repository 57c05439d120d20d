"""Pure nftables builders: golden `nft -f` scripts, and DEL/GC/CHECK against a recorded `nft -j list table`
(two networks: net1 c1 isolated on cni1, net2 c2 same-bridge on cni2, as our ADDs left them)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.ip import ip_address
from firewall_cni import rules_nftables as rules
from firewall_cni.config import Attachment, FirewallConf

GOLDEN = Path(__file__).parent / "golden"
OBJECTS: list[dict[str, Any]] = json.loads((GOLDEN / "two_networks.json").read_text())["nftables"]
C1, C2 = Attachment("net1", "c1", "eth0"), Attachment("net2", "c2", "eth0")
IP4, IP6 = ip_address("10.99.1.2"), ip_address("fd99:1::2")


def handles(chain: str, comment: str) -> list[int]:
    return [o["rule"]["handle"] for o in OBJECTS if "rule" in o and o["rule"]["chain"] == chain
            and o["rule"].get("comment") == comment]


def test_add_on_a_clean_host_golden() -> None:
    conf = FirewallConf(name="net1", ingress_policy="isolated")
    assert rules.add_script(conf, C1, [IP4, IP6], "cni1", None) == (GOLDEN / "add_isolated_clean.nft").read_text()


def test_repeat_add_replaces_the_attachments_rules_and_adds_no_isolation_twice() -> None:
    conf = FirewallConf(name="net1", ingress_policy="isolated")
    script = rules.add_script(conf, C1, [IP4], "cni1", OBJECTS)
    deleted = [int(line.rsplit(" ", 1)[1]) for line in script.splitlines() if line.startswith("delete rule")]
    assert deleted == handles("cni-forward", "net1 c1 eth0") and len(deleted) == 4
    assert "insert rule" not in script          # the admin jump and cni1's isolation are there
    assert script.count("comment \"net1 c1 eth0\"") == 2


def test_add_custom_admin_chain_and_new_bridge() -> None:
    conf = FirewallConf(name="net3", admin_chain="MY-ADMIN", ingress_policy="same-bridge")
    script = rules.add_script(conf, Attachment("net3", "c3", "eth1"), [IP4], "cni3", OBJECTS)
    inserted = [line for line in script.splitlines() if line.startswith(("insert", "add chain"))]
    assert inserted[-3:] == [
        'insert rule inet cni_plugins_firewall cni-forward jump MY-ADMIN comment "CNI firewall plugin admin overrides"',
        'insert rule inet cni_plugins_firewall isolation-stage-1 iifname "cni3" oifname != "cni3" jump '
        'isolation-stage-2 comment "isolation cni3"',
        'insert rule inet cni_plugins_firewall isolation-stage-2 oifname "cni3" drop comment "isolation cni3"']
    assert "add chain inet cni_plugins_firewall MY-ADMIN" in script


def test_delete_removes_only_the_attachments_rules() -> None:
    script = rules.delete_script(C2, OBJECTS)
    assert script == "".join(f"delete rule inet cni_plugins_firewall cni-forward handle {h}\n"
                             for h in handles("cni-forward", "net2 c2 eth0"))
    assert rules.delete_script(Attachment("net2", "c2", "eth1"), OBJECTS) == ""
    assert rules.delete_script(C2, None) == ""


def test_gc_removes_invalid_attachments_of_its_network_and_gone_bridges() -> None:
    script = rules.gc_script("net1", frozenset({("c9", "eth0")}), frozenset({"lo", "cni2"}), OBJECTS)
    expected = (handles("cni-forward", "net1 c1 eth0") + handles("isolation-stage-1", "isolated cni1")
                + handles("isolation-stage-1", "isolation cni1") + handles("isolation-stage-2", "isolation cni1"))
    assert sorted(int(line.rsplit(" ", 1)[1]) for line in script.splitlines()) == sorted(expected)
    assert "cni-forward handle" in script
    assert rules.gc_script("net1", frozenset({("c1", "eth0")}), None, OBJECTS) == ""


@pytest.mark.parametrize(("who", "ips", "bridge", "policy", "msg"), [
    (C1, [IP4, IP6], "cni1", "isolated", None),
    (C2, [ip_address("10.99.2.2")], "cni2", "same-bridge", None),
    (C2, [IP4], None, "open", 'expected rule [ip daddr 10.99.1.2 ct state related,established accept comment '
     '"net2 c2 eth0"] in table inet cni_plugins_firewall not found'),
    (C2, [ip_address("10.99.2.2")], "cni2", "isolated",
     'expected isolation-stage-1 rule [iifname "cni2" oifname "cni2" drop] in table inet cni_plugins_firewall '
     "not found"),
], ids=["c1-ok", "c2-ok", "wrong-address", "isolated-missing"])
def test_check(who: Attachment, ips: list[Any], bridge: str | None, policy: str, msg: str | None) -> None:
    conf = FirewallConf(name=who.network, ingress_policy=policy)
    assert rules.check(conf, who, ips, bridge, OBJECTS) == msg


def test_check_without_table() -> None:
    assert rules.check(FirewallConf(name="net1"), C1, [IP4], None, None) == "table inet cni_plugins_firewall not found"


def test_long_or_odd_names_are_hashed_but_keep_the_network_word() -> None:
    long_id = "a" * 120
    text = rules.comment(Attachment("net1", long_id, "eth0"))
    assert text.startswith("net1 sha512:") and len(text) <= rules.COMMENT_MAX
    odd = rules.comment(Attachment("net1", "c1", "eth\udcff"))
    assert odd.startswith("net1 sha512:") and odd != text
    assert rules.comment(Attachment("n" * 70, "c1", "eth0")).startswith("sha512:")
