"""ipam configuration: defaults, the three sources of ranges and of requested IPs, every invalid-input message."""
from __future__ import annotations

from typing import Any

import pytest

from common.config import base_netconf
from common.errors import CniError, Code
from common.ip import ip_address
from host_local import config


def load(ipam: dict[str, Any] | None, *, version: str = "1.0.0", cni_args: dict[str, str] | None = None,
         **top: Any) -> config.IpamConfig:
    data: dict[str, Any] = {"cniVersion": version, "name": "net1", "type": "bridge", **top}
    if ipam is not None:
        data["ipam"] = {"type": "host-local", **ipam}
    return config.load(base_netconf(data), cni_args or {})


def addr(text: str) -> Any:
    return ip_address(text)


def test_defaults_for_ipv4() -> None:
    conf = load({"ranges": [[{"subnet": "10.0.0.0/24"}]]})
    (r,) = conf.range_sets[0].ranges
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.0.0.1", "10.0.0.254", "10.0.0.1")
    assert conf.data_dir == "/var/lib/cni/networks"
    assert conf.resolv_conf == "" and conf.routes == () and conf.requested == ()
    assert str(conf.range_sets[0]) == "10.0.0.1-10.0.0.254"


def test_ipv6_range_ends_at_the_last_address() -> None:
    (r,) = load({"ranges": [[{"subnet": "fd00::/120"}]]}).range_sets[0].ranges
    assert (str(r.start), str(r.end), str(r.gateway)) == ("fd00::1", "fd00::ff", "fd00::1")


def test_explicit_range_and_gateway() -> None:
    (r,) = load({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.10", "rangeEnd": "10.0.0.20",
                              "gateway": "10.0.0.254"}]]}).range_sets[0].ranges
    assert (str(r.start), str(r.end), str(r.gateway)) == ("10.0.0.10", "10.0.0.20", "10.0.0.254")


def test_order_is_runtime_ranges_then_legacy_then_ranges() -> None:
    conf = load({"subnet": "10.1.0.0/24", "ranges": [[{"subnet": "10.2.0.0/24"}]]},
                runtimeConfig={"ipRanges": [[{"subnet": "10.3.0.0/24"}]]})
    assert [s.path for s in conf.range_sets] == ["runtimeConfig.ipRanges[0]", "ipam", "ipam.ranges[0]"]
    assert [str(s.ranges[0].subnet) for s in conf.range_sets] == ["10.3.0.0/24", "10.1.0.0/24", "10.2.0.0/24"]


def test_requested_ips_are_concatenated_in_reference_order_without_duplicates() -> None:
    conf = load({"ranges": [[{"subnet": "10.0.0.0/24"}]]}, cni_args={"IP": "10.0.0.5"},
                args={"cni": {"ips": ["10.0.0.6/24", "10.0.0.5"]}}, runtimeConfig={"ips": ["::ffff:10.0.0.7"]})
    assert conf.requested == (addr("10.0.0.5"), addr("10.0.0.6"), addr("10.0.0.7"))


def test_routes_resolvconf_and_datadir() -> None:
    conf = load({"ranges": [[{"subnet": "10.0.0.0/24"}]], "dataDir": "/tmp/x", "resolvConf": "/etc/r",
                 "routes": [{"dst": "0.0.0.0/0"}, {"dst": "192.168.0.0/16", "gw": "10.0.0.9", "mtu": 1400}]})
    assert conf.data_dir == "/tmp/x" and conf.resolv_conf == "/etc/r"
    assert [str(r.dst) for r in conf.routes] == ["0.0.0.0/0", "192.168.0.0/16"]
    assert str(conf.routes[1].gw) == "10.0.0.9" and conf.routes[1].mtu == 1400


def test_dual_stack_at_0_2_0_is_allowed_but_two_ipv4_sets_are_not() -> None:
    load({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "fd00::/64"}]]}, version="0.2.0")
    with pytest.raises(CniError) as info:
        load({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.1.0.0/24"}]]}, version="0.2.0")
    assert info.value.msg == ("cniVersion '0.2.0' does not support more than 1 address per family "
                              "(2 range sets configured; use cniVersion >= 0.3.0)")


BAD = [
    ("no-ipam", None, {}, "missing required key ipam"),
    ("no-ranges", {}, {}, "no IP ranges specified: set ipam.ranges (or ipam.subnet)"),
    ("bad-cidr", {"ranges": [[{"subnet": "10.0.0.0/33"}]]}, {},
     "invalid CIDR '10.0.0.0/33' at ipam.ranges[0][0].subnet"),
    ("no-prefix", {"ranges": [[{"subnet": "10.0.0.0"}]]}, {},
     "invalid CIDR '10.0.0.0' at ipam.ranges[0][0].subnet: missing prefix length"),
    ("host-bits", {"ranges": [[{"subnet": "10.0.0.1/24"}]]}, {},
     "invalid subnet '10.0.0.1/24' at ipam.ranges[0][0].subnet: host bits set (network address is 10.0.0.0/24)"),
    ("too-small-v4", {"ranges": [[{"subnet": "10.0.0.0/31"}]]}, {},
     "subnet '10.0.0.0/31' at ipam.ranges[0][0].subnet is too small to allocate from (at most /30)"),
    ("too-small-v6", {"ranges": [[{"subnet": "fd00::/127"}]]}, {},
     "subnet 'fd00::/127' at ipam.ranges[0][0].subnet is too small to allocate from (at most /126)"),
    ("missing-subnet", {"ranges": [[{"rangeStart": "10.0.0.2"}]]}, {},
     "missing required key ipam.ranges[0][0].subnet"),
    ("subnet-not-string", {"ranges": [[{"subnet": 10}]]}, {},
     "expected string at ipam.ranges[0][0].subnet, got number 10"),
    ("start-outside", {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.1.5"}]]}, {},
     "rangeStart '10.0.1.5' at ipam.ranges[0][0].rangeStart is not in subnet 10.0.0.0/24"),
    ("end-before-start", {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.9",
                                       "rangeEnd": "10.0.0.5"}]]}, {},
     "rangeEnd '10.0.0.5' at ipam.ranges[0][0].rangeEnd is before rangeStart 10.0.0.9"),
    ("bad-start", {"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.0.0.300"}]]}, {},
     "invalid IP address '10.0.0.300' at ipam.ranges[0][0].rangeStart"),
    ("gateway-family", {"ranges": [[{"subnet": "10.0.0.0/24", "gateway": "fd00::1"}]]}, {},
     "gateway 'fd00::1' at ipam.ranges[0][0].gateway is not an IPv4 address like subnet 10.0.0.0/24"),
    ("gateway-outside", {"subnet": "10.0.0.0/24", "gateway": "10.0.9.1"}, {},
     "gateway '10.0.9.1' at ipam.gateway is not in subnet 10.0.0.0/24"),
    ("empty-set", {"ranges": [[]]}, {}, "empty range set at ipam.ranges[0]"),
    ("set-not-list", {"ranges": [{"subnet": "10.0.0.0/24"}]}, {},
     'expected a list of ranges at ipam.ranges[0], got {"subnet": "10.0.0.0/24"}'),
    ("mixed-family", {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "fd00::/64"}]]}, {},
     "mixed address families in range set at ipam.ranges[0]: 10.0.0.0/24 and fd00::/64 at ipam.ranges[0][1]"),
    ("overlap-in-set", {"ranges": [[{"subnet": "10.0.0.0/24"}, {"subnet": "10.0.0.0/25"}]]}, {},
     "ranges 10.0.0.1-10.0.0.254 and 10.0.0.1-10.0.0.126 overlap in range set at ipam.ranges[0]"),
    ("overlapping-sets", {"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]}, {},
     "range set 0 (10.0.0.1-10.0.0.254 at ipam.ranges[0]) overlaps with range set 1 "
     "(10.0.0.1-10.0.255.254 at ipam.ranges[1])"),
    ("runtime-overlaps-legacy", {"subnet": "10.0.0.0/24"},
     {"runtimeConfig": {"ipRanges": [[{"subnet": "10.0.0.0/24"}]]}},
     "range set 0 (10.0.0.1-10.0.0.254 at runtimeConfig.ipRanges[0]) overlaps with range set 1 "
     "(10.0.0.1-10.0.0.254 at ipam)"),
    ("bad-route", {"subnet": "10.0.0.0/24", "routes": [{"dst": "nonsense"}]}, {},
     "invalid CIDR 'nonsense' at ipam.routes[0].dst: missing prefix length"),
    ("bad-datadir", {"subnet": "10.0.0.0/24", "dataDir": 5}, {}, "expected string at ipam.dataDir, got number 5"),
    ("bad-args-ip", {"subnet": "10.0.0.0/24"}, {"args": {"cni": {"ips": ["10.0.0.x"]}}},
     "invalid IP address '10.0.0.x' at args.cni.ips[0]"),
    ("bad-runtime-ip", {"subnet": "10.0.0.0/24"}, {"runtimeConfig": {"ips": ["10.0.0.1/99"]}},
     "invalid CIDR '10.0.0.1/99' at runtimeConfig.ips[0]"),
]


@pytest.mark.parametrize("ipam,top,message", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_invalid_config_is_code_7_naming_path_and_value(ipam: Any, top: dict[str, Any], message: str) -> None:
    with pytest.raises(CniError) as info:
        load(ipam, **top)
    assert (info.value.code, info.value.msg) == (Code.INVALID_CONFIG, message)


def test_bad_cni_args_ip() -> None:
    with pytest.raises(CniError) as info:
        load({"subnet": "10.0.0.0/24"}, cni_args={"IP": "x"})
    assert (info.value.code, info.value.msg) == (7, "invalid IP address 'x' at CNI_ARGS IP")


@pytest.mark.parametrize("subnet, hint", [("::ffff:10.1.0.0/120", "(10.1.0.0/24)"), ("::ffff:0:0/96", "(0.0.0.0/0)")])
def test_ipv4_mapped_ipv6_subnets_are_refused_as_go_refuses_them(subnet: str, hint: str) -> None:
    """Go: "IPNet IP and Mask version mismatch"; accepting it would hand IPv6 ::ffff:a.b.c.d addresses out."""
    with pytest.raises(CniError) as info:
        load({"ranges": [[{"subnet": subnet}]]})
    assert info.value.code == Code.INVALID_CONFIG
    assert info.value.msg.startswith(f"invalid subnet '{subnet}' at ipam.ranges[0][0].subnet: an IPv4-mapped")
    assert info.value.msg.endswith(hint)
