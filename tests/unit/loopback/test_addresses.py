"""loopback's pure logic: Go's loopback-address rule, which address ADD names, the result and how it renders."""
from __future__ import annotations

from typing import Any

import pytest

from common import result as results
from common.ip import ip_interface
from loopback.addresses import first_non_loopback, is_loopback, lo_result

SANDBOX = "/run/netns/pod1"


def addrs(*texts: str) -> list[Any]:
    return [ip_interface(t) for t in texts]


@pytest.mark.parametrize("text, loopback", [
    ("127.0.0.1/8", True), ("127.255.255.254/8", True), ("127.0.0.2/32", True), ("::1/128", True),
    ("::ffff:127.0.0.9/128", True),   # Go's IsLoopback counts IPv4-mapped 127.x (Python 3.11's does not)
    ("10.5.5.5/32", False), ("0.0.0.0/8", False), ("128.0.0.1/8", False), ("fd00::1/128", False),
    ("fe80::1/64", False), ("::/128", False), ("::2/128", False), ("::ffff:10.0.0.1/128", False),
    ("::127.0.0.1/128", False),       # IPv4-compatible, not IPv4-mapped: not loopback in Go either
])
def test_is_loopback_follows_go(text: str, loopback: bool) -> None:
    assert is_loopback(ip_interface(text)) is loopback


def test_first_non_loopback_checks_every_ipv4_address_before_ipv6() -> None:
    """The reference lists (and checks) IPv4, then IPv6: a foreign IPv4 address is named even when the kernel
    listed a foreign IPv6 one first."""
    assert first_non_loopback(addrs("::1/128", "fd00::1/128", "127.0.0.1/8", "10.5.5.5/32")) == \
        ip_interface("10.5.5.5/32")
    assert first_non_loopback(addrs("127.0.0.1/8", "::1/128", "fd00::1/128", "fd00::2/128")) == \
        ip_interface("fd00::1/128")
    assert first_non_loopback(addrs("127.0.0.1/8", "127.0.0.2/8", "::1/128")) is None
    assert first_non_loopback([]) is None


def test_result_is_lo_with_the_first_address_of_each_family() -> None:
    result = lo_result(addrs("::1/128", "127.0.0.1/8", "127.0.0.2/8"), SANDBOX)
    assert [(i.name, i.mac, i.sandbox) for i in result.interfaces] == [("lo", "00:00:00:00:00:00", SANDBOX)]
    assert [(str(ip.address), ip.interface, ip.gateway) for ip in result.ips] == [
        ("127.0.0.1/8", 0, None), ("::1/128", 0, None)]
    assert result.routes == () and result.dns.is_empty()


def test_result_without_ipv6_or_without_any_address() -> None:
    assert [str(ip.address) for ip in lo_result(addrs("127.0.0.1/8"), SANDBOX).ips] == ["127.0.0.1/8"]
    assert lo_result([], SANDBOX).ips == ()


# --- rendering: spec-correct at every version (the reference prints the 1.0.0 shape for all of them) ----------

# What Debian's Go loopback 1.1.1 prints for ADD without prevResult (the same at 0.1.0 ... 1.0.0, apart from the
# cniVersion label; recorded in a throwaway netns, /work/shared/reference/cni-reference-more.md section 1).
GO_SHAPE = {"interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": SANDBOX}],
            "ips": [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}],
            "dns": {}}


def rendered(version: str) -> dict[str, Any]:
    return results.render(lo_result(addrs("127.0.0.1/8", "::1/128"), SANDBOX), version)


def test_1_0_0_is_the_reference_output_exactly() -> None:
    assert rendered("1.0.0") == {"cniVersion": "1.0.0", **GO_SHAPE}


@pytest.mark.parametrize("version", ["0.3.0", "0.3.1", "0.4.0"])
def test_0_3_and_0_4_carry_ips_version_unlike_the_reference(version: str) -> None:
    """Our choice: the 0.3.x/0.4.0 shape (ips[].version), which libcni's 040 types and containerd (go-cni asks
    loopback for 0.3.1) read, and which Go's other plugins print at these versions. The reference prints its
    1.0.0-shaped result relabelled; that is the only difference."""
    ours = rendered(version)
    assert ours == {"cniVersion": version, "interfaces": GO_SHAPE["interfaces"],
                    "ips": [{"version": "4", "interface": 0, "address": "127.0.0.1/8"},
                            {"version": "6", "interface": 0, "address": "::1/128"}], "dns": {}}
    assert {**ours, "ips": [{k: v for k, v in ip.items() if k != "version"} for ip in ours["ips"]]} == \
        {"cniVersion": version, **GO_SHAPE}


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0"])
def test_0_1_and_0_2_are_ip4_ip6(version: str) -> None:
    """The shape the reference itself prints when cniVersion is absent (it reads as 0.1.0); for an explicit
    0.1.0/0.2.0 it prints `interfaces`/`ips`, which a 0.2.0 reader (libcni's 020 types) sees as no address."""
    assert rendered(version) == {"cniVersion": version, "ip4": {"ip": "127.0.0.1/8"}, "ip6": {"ip": "::1/128"},
                                 "dns": {}}


def test_1_1_0_omits_the_empty_dns() -> None:
    """1.1.0 (which Debian's 1.1.1 does not speak; v1.9.x prints its 1.1.0 types, dns omitted when empty)."""
    assert rendered("1.1.0") == {"cniVersion": "1.1.0", "interfaces": GO_SHAPE["interfaces"],
                                 "ips": GO_SHAPE["ips"]}
