"""Pure nftables builders: golden `nft -f` scripts, and DEL/GC/CHECK against sample `nft -j list` objects."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from portmap_cases import CASES, CID, IP4

from portmap import rules_nftables as rules

GOLDEN = Path(__file__).parent / "golden"


def _rule(chain: str, handle: int, comment: str | None, family: str = "ip") -> dict[str, Any]:
    rule: dict[str, Any] = {"family": family, "table": "cni_hostport", "chain": chain, "handle": handle, "expr": []}
    if comment is not None:
        rule["comment"] = comment
    return {"rule": rule}


def _chain(name: str) -> dict[str, Any]:
    return {"chain": {"family": "ip", "table": "cni_hostport", "name": name}}


V4 = [{"metainfo": {"version": "1.0.6"}}, *(_chain(c) for c in
      ("hostports", "hostip_hostports", "hostports_all", "prerouting", "output", "masquerading")),
      _rule("hostports_all", 3, None), _rule("hostports", 10, CID), _rule("hostports", 11, "other"),
      _rule("hostip_hostports", 12, CID), _rule("masquerading", 13, CID), _rule("masquerading", 14, CID),
      _rule("masquerading", 15, "gone")]
V6 = [_rule("hostports", 20, CID, "ip6"), _rule("hostports", 21, "gone", "ip6")]


@pytest.mark.parametrize("name", [n for n in CASES if n not in ("conditions", "external")])
def test_add_script_on_a_fresh_table_matches_golden(name: str) -> None:
    conf, ip = CASES[name]
    assert rules.add_script(conf, CID, ip, None) == (GOLDEN / f"{name}.nft").read_text()


def test_add_script_deletes_the_containers_previous_rules_in_the_same_transaction() -> None:
    conf, ip = CASES["tcp"]
    deletes = [line for line in rules.add_script(conf, CID, ip, V4).splitlines() if line.startswith("delete")]
    assert deletes == ["delete rule ip cni_hostport hostports handle 10",
                       "delete rule ip cni_hostport hostip_hostports handle 12",
                       "delete rule ip cni_hostport masquerading handle 13",
                       "delete rule ip cni_hostport masquerading handle 14"]


def test_delete_script_covers_both_families_by_comment() -> None:
    assert rules.delete_script({4: V4, 6: V6}, CID).splitlines() == [
        "delete rule ip cni_hostport hostports handle 10",
        "delete rule ip cni_hostport hostip_hostports handle 12",
        "delete rule ip cni_hostport masquerading handle 13",
        "delete rule ip cni_hostport masquerading handle 14",
        "delete rule ip6 cni_hostport hostports handle 20"]
    assert rules.delete_script({4: None, 6: None}, CID) == ""


def test_gc_script_deletes_rules_of_containers_not_valid() -> None:
    assert rules.gc_script({4: V4, 6: V6}, frozenset({CID, "other"})).splitlines() == [
        "delete rule ip cni_hostport masquerading handle 15",
        "delete rule ip6 cni_hostport hostports handle 21"]


def test_check_counts_the_containers_rules() -> None:
    conf, ip = CASES["tcp"]
    assert rules.check(conf, CID, ip, V4) == []
    assert rules.check(conf, "other", ip, V4) == ["2 rule(s) in chain masquerading"]
    assert rules.check(conf, CID, IP4, None) == ["table ip cni_hostport not found"]
