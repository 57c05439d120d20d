"""The allocation policy over an in-memory store: round-robin, wrap, gateway, exhaustion, atomicity, requests."""
from __future__ import annotations

from typing import Any

import pytest

from common.config import Node
from common.errors import CniError, Code
from common.ip import ip_address
from host_local import allocator
from host_local.config import RangeSet, parse_range
from host_local.store import MemoryStore


def rset(*ranges: dict[str, Any], path: str = "ipam.ranges[0]") -> RangeSet:
    return RangeSet(ranges=tuple(parse_range(Node(r, f"{path}[{i}]")) for i, r in enumerate(ranges)), path=path)


def addr(text: str) -> Any:
    return ip_address(text)


def add(store: MemoryStore, sets: tuple[RangeSet, ...], cid: str, ifname: str = "eth0",
        requested: tuple[Any, ...] = ()) -> list[str]:
    wanted = allocator.plan_requests(sets, requested)
    ips = allocator.allocate(store, sets, wanted, container_id=cid, ifname=ifname)
    return [str(i.address) for i in ips]


SMALL = rset({"subnet": "10.0.0.0/29"})          # hosts .1-.6, gateway .1


def test_first_address_skips_the_gateway_and_result_carries_prefix_and_gateway() -> None:
    store = MemoryStore()
    ips = allocator.allocate(store, (SMALL,), (None,), container_id="c1", ifname="eth0")
    assert [(str(i.address), str(i.gateway)) for i in ips] == [("10.0.0.2/29", "10.0.0.1")]
    assert store.owners == {"10.0.0.2": "c1\r\neth0"} and store.last == {0: "10.0.0.2"}


def test_round_robin_does_not_reuse_the_address_just_freed() -> None:
    store = MemoryStore()
    assert add(store, (SMALL,), "c1") == ["10.0.0.2/29"]
    allocator.release(store, "c1", "eth0")
    assert add(store, (SMALL,), "c2") == ["10.0.0.3/29"]


def test_wraps_to_the_start_after_the_end() -> None:
    store = MemoryStore(owners={"10.0.0.3": "x\r\neth0"}, last={0: "10.0.0.6"})
    assert add(store, (SMALL,), "c1") == ["10.0.0.2/29"]
    assert add(store, (SMALL,), "c2") == ["10.0.0.4/29"]


def test_last_reserved_outside_the_set_starts_at_range_start() -> None:
    store = MemoryStore(last={0: "192.168.1.1"})
    assert add(store, (SMALL,), "c1") == ["10.0.0.2/29"]


def test_candidates_cross_ranges_and_skip_each_gateway() -> None:
    two = rset({"subnet": "10.0.0.0/30"}, {"subnet": "10.0.1.0/30", "gateway": "10.0.1.2"})
    order = [str(a) for a, _ in allocator.candidates(two, addr("10.0.0.2"))]
    assert order == ["10.0.1.1", "10.0.0.2"]          # .0.1 and .1.2 are gateways


def test_candidates_from_the_end_of_a_range_continue_in_the_next() -> None:
    two = rset({"subnet": "10.0.0.0/29", "rangeEnd": "10.0.0.3"}, {"subnet": "10.0.1.0/29", "rangeEnd": "10.0.1.3"})
    order = [str(a) for a, _ in allocator.candidates(two, addr("10.0.0.3"))]
    assert order == ["10.0.1.2", "10.0.1.3", "10.0.0.2", "10.0.0.3"]


def test_explicit_range_start_may_be_the_network_address_as_in_the_reference() -> None:
    r = rset({"subnet": "10.0.0.0/30", "rangeStart": "10.0.0.0", "rangeEnd": "10.0.0.3", "gateway": "10.0.0.3"})
    assert [str(a) for a, _ in allocator.candidates(r, None)] == ["10.0.0.0", "10.0.0.1", "10.0.0.2"]


def test_exhausted_set_error_names_the_set() -> None:
    tiny = rset({"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.2", "rangeEnd": "10.0.0.3"})
    store = MemoryStore()
    add(store, (tiny,), "c1")
    add(store, (tiny,), "c2")
    with pytest.raises(CniError) as info:
        add(store, (tiny,), "c3")
    assert info.value.msg == "failed to allocate for range 0: no IP addresses available in range set " \
                             "10.0.0.2-10.0.0.3"
    assert allocator.exhausted(store, (tiny,)) == [tiny]


def test_failure_in_a_later_set_leaves_nothing_allocated() -> None:
    full_v6 = rset({"subnet": "fd00::/126", "rangeStart": "fd00::2", "rangeEnd": "fd00::2"}, path="ipam.ranges[1]")
    store = MemoryStore(owners={"fd00::2": "other\r\neth0"})
    with pytest.raises(CniError) as info:
        add(store, (SMALL, full_v6), "c1")
    assert info.value.msg == "failed to allocate for range 1: no IP addresses available in range set fd00::2-fd00::2"
    assert store.owners == {"fd00::2": "other\r\neth0"}


def test_dual_stack_gets_one_address_per_set() -> None:
    v6 = rset({"subnet": "fd00::/120"}, path="ipam.ranges[1]")
    store = MemoryStore()
    assert add(store, (SMALL, v6), "c1") == ["10.0.0.2/29", "fd00::2/120"]
    assert store.last == {0: "10.0.0.2", 1: "fd00::2"}


@pytest.mark.parametrize("holder", ["c1\r\neth0", "c1"], ids=["current", "legacy"])
def test_second_add_of_an_attachment_is_refused(holder: str) -> None:
    store = MemoryStore(owners={"10.0.0.4": holder})
    with pytest.raises(CniError) as info:
        add(store, (SMALL,), "c1")
    assert (info.value.code, info.value.msg) == (Code.INTERNAL, "failed to allocate for range 0: 10.0.0.4 has been "
                                                 "allocated to c1, duplicate allocation is not allowed")


def test_same_container_other_interface_is_not_a_duplicate() -> None:
    store = MemoryStore(owners={"10.0.0.2": "c1\r\neth0"})
    assert add(store, (SMALL,), "c1", "net1") == ["10.0.0.3/29"]


def test_requested_address_is_reserved_and_becomes_last_reserved() -> None:
    store = MemoryStore()
    assert add(store, (SMALL,), "c1", requested=(addr("10.0.0.5"),)) == ["10.0.0.5/29"]
    assert store.last == {0: "10.0.0.5"}
    with pytest.raises(CniError) as info:
        add(store, (SMALL,), "c2", requested=(addr("10.0.0.5"),))
    assert info.value.msg == ("failed to allocate for range 0: requested IP address 10.0.0.5 is not available in "
                              "range set 10.0.0.1-10.0.0.6")


@pytest.mark.parametrize("requested,message", [
    (("10.0.0.1",), "requested IP 10.0.0.1 is the gateway of range set 10.0.0.1-10.0.0.6"),
    (("10.9.9.9",), "failed to allocate all requested IPs: 10.9.9.9: 10.9.9.9 is in no range set "
                    "(10.0.0.1-10.0.0.6)"),
    (("10.0.0.7",), "failed to allocate all requested IPs: 10.0.0.7: 10.0.0.7 is in no range set "
                    "(10.0.0.1-10.0.0.6)"),
    (("10.0.0.2", "10.0.0.3"), "failed to allocate all requested IPs: 10.0.0.3: only one address per range set "
                               "can be requested (10.0.0.1-10.0.0.6)"),
], ids=["gateway", "outside", "broadcast", "two-in-one-set"])
def test_unplaceable_requests_are_config_errors(requested: tuple[str, ...], message: str) -> None:
    with pytest.raises(CniError) as info:
        allocator.plan_requests((SMALL,), tuple(map(addr, requested)))
    assert (info.value.code, info.value.msg) == (Code.INVALID_CONFIG, message)


def test_release_prefers_exact_owner_then_legacy_files() -> None:
    store = MemoryStore(owners={"10.0.0.2": "c1\r\neth0", "10.0.0.3": "c1", "10.0.0.4": "c1\r\nnet1"})
    assert allocator.release(store, "c1", "eth0") == ["10.0.0.2"]
    assert allocator.release(store, "c1", "eth0") == ["10.0.0.3"]      # only legacy ones left
    assert allocator.release(store, "c1", "eth0") == []
    assert store.owners == {"10.0.0.4": "c1\r\nnet1"}


def test_held_by_checks_current_and_legacy_owners() -> None:
    store = MemoryStore(owners={"10.0.0.2": "c1\r\neth0", "10.0.0.3": "c2"})
    assert allocator.held_by(store, "c1", "eth0") == ["10.0.0.2"]
    assert allocator.held_by(store, "c2", "eth0") == ["10.0.0.3"]
    assert allocator.held_by(store, "c3", "eth0") == []


def test_gc_releases_attachments_not_listed_and_keeps_unknown_owners() -> None:
    store = MemoryStore(owners={"10.0.0.2": "keep\r\neth0", "10.0.0.3": "keep\r\nnet1", "10.0.0.4": "gone\r\neth0",
                                "10.0.0.5": "keep", "10.0.0.6": "gone", "fd00::9": ""})
    assert sorted(allocator.collect_garbage(store, {("keep", "eth0")})) == ["10.0.0.3", "10.0.0.4", "10.0.0.6"]
    assert set(store.owners) == {"10.0.0.2", "10.0.0.5", "fd00::9"}


def test_status_counts_only_addresses_inside_the_set_excluding_gateway() -> None:
    owners = {f"10.0.0.{i}": f"c{i}\r\neth0" for i in range(2, 6)}
    store = MemoryStore(owners={**owners, "10.0.0.1": "odd", "10.5.0.1": "elsewhere"})
    assert allocator.exhausted(store, (SMALL,)) == []
    store.owners["10.0.0.6"] = "c6\r\neth0"
    assert allocator.exhausted(store, (SMALL,)) == [SMALL]


def test_names_that_are_no_canonical_address_are_never_released_counted_or_refused() -> None:
    """The store reads any name made of address characters; only canonical address strings are allocations."""
    junk = {"010.0.0.2": "c1\r\neth0", "10.0.0.300": "c1\r\neth0", "fd00::0009": "c1\r\neth0", "::ffff:a00:3": "c1"}
    store = MemoryStore(owners=dict(junk))
    assert allocator.held_by(store, "c1", "eth0") == []
    assert allocator.release(store, "c1", "eth0") == []
    assert allocator.collect_garbage(store, set()) == []
    assert add(store, (SMALL,), "c1") == ["10.0.0.2/29"]        # no duplicate, despite the junk naming c1
    assert store.owners == {**junk, "10.0.0.2": "c1\r\neth0"}
