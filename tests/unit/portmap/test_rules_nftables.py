"""Pure nftables builders: golden `nft -f` scripts, and DEL/GC/CHECK against sample `nft -j list` objects."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from common.ip import ip_interface
from portmap import rules_nftables as rules
from portmap.config import PortmapConf
from support.portmap_cases import CASES, CID, IP4

GOLDEN = Path(__file__).parent / "golden"
MYNET, OTHERNET = rules.network_counter("mynet"), rules.network_counter("othernet")


def _rule(chain: str, handle: int, comment: str | None, *, addr: str, counter: str | None = None,
          family: str = "ip", dnat: bool = False) -> dict[str, Any]:
    """A rule as `nft -j list table` prints it: a daddr match or a DNAT target, and the network's counter."""
    fam = "ip" if family == "ip" else "ip6"
    expr: list[dict[str, Any]] = [{"dnat": {"addr": addr, "port": 80}}] if dnat else [
        {"match": {"op": "==", "left": {"payload": {"protocol": fam, "field": "daddr"}}, "right": addr}}]
    if counter is not None:
        expr.insert(0, {"counter": counter})
    rule: dict[str, Any] = {"family": family, "table": "cni_hostport", "chain": chain, "handle": handle,
                            "expr": expr}
    if comment is not None:
        rule["comment"] = comment
    return {"rule": rule}


def _chain(name: str) -> dict[str, Any]:
    return {"chain": {"family": "ip", "table": "cni_hostport", "name": name}}


def _counter(name: str, family: str = "ip") -> dict[str, Any]:
    return {"counter": {"family": family, "name": name, "table": "cni_hostport", "packets": 0, "bytes": 0}}


# CID is on two networks: mynet (10.4.0.5) and othernet (10.5.0.5). Tagged rules were written by pycni; untagged
# ones by the reference (or pycni before the tag), told apart by the address they serve.
V4 = [{"metainfo": {"version": "1.0.6"}}, _counter(MYNET), _counter(OTHERNET), *(_chain(c) for c in
      ("hostports", "hostip_hostports", "hostports_all", "prerouting", "output", "masquerading")),
      _rule("hostports_all", 3, None, addr=""),
      _rule("hostports", 10, CID, addr="10.4.0.5", counter=MYNET, dnat=True),
      _rule("hostports", 11, CID, addr="10.5.0.5", counter=OTHERNET, dnat=True),
      _rule("hostip_hostports", 12, CID, addr="10.4.0.5", dnat=True),
      _rule("masquerading", 13, CID, addr="10.4.0.5", counter=MYNET),
      _rule("masquerading", 14, CID, addr="10.5.0.5"),
      _rule("masquerading", 15, "gone", addr="10.4.0.9", counter=MYNET),
      _rule("hostports", 16, "gone-untagged", addr="10.4.0.8", dnat=True),
      _rule("hostports", 17, "other", addr="10.4.0.6", counter=MYNET, dnat=True),
      _rule("masquerading", 18, CID, addr="10.4.0.5", counter=MYNET)]
V6 = [_counter(MYNET, "ip6"),
      _rule("hostports", 20, CID, addr="2001:db8:4::5", counter=MYNET, family="ip6", dnat=True),
      _rule("hostports", 21, "gone", addr="2001:db8:4::9", counter=MYNET, family="ip6", dnat=True)]
MINE = {"10.4.0.5", "2001:db8:4::5"}


def _deleted(script: str) -> list[str]:
    """The deleted rules as "<family> <handle>"."""
    return [f"{line.split()[2]} {line.split()[-1]}" for line in script.splitlines()
            if line.startswith("delete rule")]


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("conditions", "external")])
def test_add_script_on_a_fresh_table_matches_golden(name: str) -> None:
    conf, ip = CASES[name]
    assert rules.add_script(conf, CID, ip, None) == (GOLDEN / f"{name}.nft").read_text()


def test_add_script_replaces_the_containers_rules_on_this_network_only() -> None:
    conf, ip = CASES["tcp"]
    # not 11 (tagged othernet) nor 14 (untagged, othernet's address)
    assert _deleted(rules.add_script(conf, CID, ip, V4)) == ["ip 10", "ip 12", "ip 13", "ip 18"]


def test_delete_script_removes_this_networks_rules_in_both_families() -> None:
    assert _deleted(rules.delete_script({4: V4, 6: V6}, "mynet", CID, MINE)) == [
        "ip 10", "ip 12", "ip 13", "ip 18", "ip6 20"]
    assert rules.delete_script({4: None, 6: None}, "mynet", CID, MINE) == ""


def test_delete_without_addresses_lets_the_id_decide_for_untagged_rules() -> None:
    """No prevResult: an untagged rule cannot be placed on a network, so the reference's rule (the ID) applies;
    a rule tagged with another network is still left alone."""
    assert _deleted(rules.delete_script({4: V4}, "mynet", CID, None)) == [
        "ip 10", "ip 12", "ip 13", "ip 14", "ip 18"]


def test_the_last_rule_of_a_network_takes_its_counter_along() -> None:
    alone = [_counter(MYNET), _counter(OTHERNET), _rule("hostports", 10, CID, addr="10.4.0.5", counter=MYNET,
                                                         dnat=True)]
    assert rules.delete_script({4: alone}, "mynet", CID, MINE).splitlines() == [
        "delete rule ip cni_hostport hostports handle 10", f"delete counter ip cni_hostport {MYNET}"]


def test_gc_script_deletes_only_this_networks_stale_rules() -> None:
    assert _deleted(rules.gc_script({4: V4, 6: V6}, "mynet", frozenset({CID, "other"}))) == [
        "ip 15", "ip6 21"]          # not 11 (othernet), not 16 (untagged: whose is it?)
    assert rules.gc_script({4: V4}, "othernet", frozenset()).splitlines() == [
        "delete rule ip cni_hostport hostports handle 11", f"delete counter ip cni_hostport {OTHERNET}"]


def test_check_counts_the_containers_rules_on_this_network() -> None:
    conf, ip = CASES["tcp"]
    assert rules.check(conf, CID, ip, V4) == []
    assert rules.check(conf, "other", ip, V4) == ["2 rule(s) in chain masquerading"]
    other = PortmapConf(name="othernet", mappings=conf.mappings)
    # othernet's rules: 11 (tagged) and 14 (untagged, its address); mynet's two masquerade rules do not count
    assert rules.check(other, CID, ip_interface("10.5.0.5/24"), V4) == ["1 rule(s) in chain masquerading"]
    assert rules.check(conf, CID, IP4, None) == ["table ip cni_hostport not found"]


def test_long_container_ids_get_a_bounded_distinct_comment() -> None:
    a, b = "a" * 300, "a" * 299 + "b"
    assert rules.container_comment(CID) == CID and rules.container_comment("x" * 128) == "x" * 128
    assert len(rules.container_comment(a)) <= rules.COMMENT_MAX
    assert rules.container_comment(a) != rules.container_comment(b)
    assert " " in rules.container_comment(a)      # never a container ID
