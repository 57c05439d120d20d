"""The loopback plugin (source tree, cni/loopback/main.py) as a process inside a throwaway "host" namespace,
acting on pod namespaces from netns_factory. Every namespace is the test's own and is removed afterwards.

The expected results are written out by hand per version family (not computed with common.result).
"""
from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from support import GO_BIN, Caller, links, lo_state, ok, source_argv
from support import error as failed
from support import loopback_conf as conf
from support.protocol_cases import SPEC_VERSIONS as VERSIONS

WITH_CHECK = ("0.4.0", "1.0.0", "1.1.0")
pytestmark = pytest.mark.root
loopback = Caller(source_argv("loopback"), ifname="lo", cni_path=GO_BIN)


def expected(version: str, sandbox: str, *, ipv6: bool = True) -> dict[str, Any]:
    """ADD's result at `version`, in that version's own shape (a deliberate difference from the reference, which
    prints the 1.0.0 shape at every version: tests/unit/loopback/test_addresses.py)."""
    if version in ("0.1.0", "0.2.0"):
        legacy: dict[str, Any] = {"cniVersion": version, "ip4": {"ip": "127.0.0.1/8"}}
        if ipv6:
            legacy["ip6"] = {"ip": "::1/128"}
        return {**legacy, "dns": {}}
    ips = [{"interface": 0, "address": "127.0.0.1/8"}, {"interface": 0, "address": "::1/128"}][:2 if ipv6 else 1]
    if version in ("0.3.0", "0.3.1", "0.4.0"):
        ips = [{"version": "6" if ":" in ip["address"] else "4", **ip} for ip in ips]
    out = {"cniVersion": version, "interfaces": [{"name": "lo", "mac": "00:00:00:00:00:00", "sandbox": sandbox}],
           "ips": ips}
    return out if version == "1.1.0" else {**out, "dns": {}}


@pytest.fixture
def pod(netns_factory: Callable[[str], Any]) -> Any:
    """A pod namespace whose lo starts down, as in a namespace fresh from the runtime."""
    ns = netns_factory("pod")
    ns.sh("ip link set lo down")
    return ns


# --- ADD / CHECK / DEL at every version ---------------------------------------------------------------------

@pytest.mark.parametrize("version", VERSIONS)
def test_add_check_del_at_every_version(host_ns: Any, pod: Any, version: str) -> None:
    assert lo_state(pod) == (False, ("127.0.0.1/8",))
    result = ok(loopback("ADD", conf(version), netns=pod.path, inside=host_ns))
    assert result == expected(version, pod.path)
    assert lo_state(pod) == (True, ("127.0.0.1/8", "::1/128"))
    with_prev = conf(version, prevResult=result)
    if version in WITH_CHECK:
        assert ok(loopback("CHECK", with_prev, netns=pod.path, inside=host_ns)) is None
    else:
        code, msg = failed(loopback("CHECK", with_prev, netns=pod.path, inside=host_ns))
        assert code == 1 and "does not allow CHECK" in msg
    assert ok(loopback("DEL", with_prev, netns=pod.path, inside=host_ns)) is None
    assert lo_state(pod) == (False, ("127.0.0.1/8",))       # down; the kernel itself drops ::1 of a down lo
    if version in WITH_CHECK:
        assert failed(loopback("CHECK", with_prev, netns=pod.path, inside=host_ns)) == \
            (999, "loopback interface is down")
    assert ok(loopback("DEL", with_prev, netns=pod.path, inside=host_ns)) is None          # idempotent
    assert ok(loopback("ADD", conf(version), netns=pod.path, inside=host_ns)) == expected(version, pod.path)
    assert lo_state(pod) == (True, ("127.0.0.1/8", "::1/128"))


def test_absent_cni_version_reads_as_0_1_0(host_ns: Any, pod: Any) -> None:
    assert ok(loopback("ADD", conf(None), netns=pod.path, inside=host_ns)) == expected("0.1.0", pod.path)


@pytest.mark.parametrize("ifname", ["eth0", "net1", "lo"])
def test_cni_ifname_is_ignored(host_ns: Any, pod: Any, ifname: str) -> None:
    result = ok(loopback("ADD", conf(), netns=pod.path, ifname=ifname, inside=host_ns))
    assert result == expected("1.0.0", pod.path) and links(pod) == ["lo"]
    assert lo_state(pod)[0]
    ok(loopback("CHECK", conf(prevResult=result), netns=pod.path, ifname=ifname, inside=host_ns))
    ok(loopback("DEL", conf(), netns=pod.path, ifname=ifname, inside=host_ns))
    assert not lo_state(pod)[0]


def test_gc_and_status_succeed_and_touch_nothing(host_ns: Any, pod: Any) -> None:
    ok(loopback("ADD", conf("1.1.0"), netns=pod.path, inside=host_ns))
    before = lo_state(pod)
    valid = {"cni.dev/valid-attachments": [{"containerID": "other", "ifname": "lo"}]}   # c1 is not listed
    assert ok(loopback("GC", conf("1.1.0", **valid), netns=pod.path, inside=host_ns)) is None
    assert ok(loopback("STATUS", conf("1.1.0"), netns=pod.path, inside=host_ns)) is None
    assert lo_state(pod) == before == (True, ("127.0.0.1/8", "::1/128"))


# --- prevResult -----------------------------------------------------------------------------------------------

BRIDGE_PREV = {"cniVersion": "1.1.0",
               "interfaces": [{"name": "cni0", "mac": "02:00:00:00:00:01"},
                              {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/run/netns/p", "mtu": 1400}],
               "ips": [{"interface": 1, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}],
               "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "priority": 5}],
               "dns": {"nameservers": ["10.1.0.1"]}, "unknownKey": True}


@pytest.mark.parametrize("version, prev, want", [
    ("1.1.0", BRIDGE_PREV, {k: v for k, v in BRIDGE_PREV.items() if k != "unknownKey"}),
    ("1.0.0", {**BRIDGE_PREV, "cniVersion": "1.0.0"},    # no 1.1.0 fields (interface mtu, route priority) at 1.0.0
     {"cniVersion": "1.0.0", "interfaces": [{"name": "cni0", "mac": "02:00:00:00:00:01"},
                                            {"name": "eth0", "mac": "02:00:00:00:00:02", "sandbox": "/run/netns/p"}],
      "ips": BRIDGE_PREV["ips"], "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1"}],
      "dns": {"nameservers": ["10.1.0.1"]}}),
    ("0.4.0", {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.5/24"}], "dns": {}},
     {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.1.0.5/24"}], "dns": {}}),
    ("0.3.1", {"ips": [{"version": "4", "address": "10.1.0.5/24"}]},      # no cniVersion: the config's
     {"cniVersion": "0.3.1", "ips": [{"version": "4", "address": "10.1.0.5/24"}], "dns": {}}),
    ("0.2.0", {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1",
                                              "routes": [{"dst": "0.0.0.0/0"}]}, "dns": {}},
     {"cniVersion": "0.2.0", "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
      "dns": {}}),
], ids=lambda v: v if isinstance(v, str) else None)
def test_prev_result_passes_through_and_lo_still_comes_up(host_ns: Any, pod: Any, version: str, prev: Any,
                                                          want: Any) -> None:
    assert ok(loopback("ADD", conf(version, prevResult=prev), netns=pod.path, inside=host_ns)) == want
    assert lo_state(pod) == (True, ("127.0.0.1/8", "::1/128"))


def test_bad_prev_result_is_code_7_and_leaves_lo_alone(host_ns: Any, pod: Any) -> None:
    bad = conf(prevResult={"ips": [{"address": "10.0.0.300/24"}]})
    code, msg = failed(loopback("ADD", bad, netns=pod.path, inside=host_ns))
    assert (code, msg) == (7, "invalid CIDR '10.0.0.300/24' at prevResult.ips[0].address")
    assert lo_state(pod) == (False, ("127.0.0.1/8",))


# --- addresses on lo --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("setup, named", [
    ("ip addr add 10.5.5.5/32 dev lo", "10.5.5.5"),
    ("ip link set lo up; ip -6 addr add fd00::1/128 dev lo", "fd00::1"),   # (a down lo drops IPv6 addresses)
    ("ip link set lo up; ip -6 addr add fd00::1/128 dev lo; ip addr add 10.5.5.5/32 dev lo", "10.5.5.5"),
])
def test_a_non_loopback_address_is_named(host_ns: Any, pod: Any, setup: str, named: str) -> None:
    pod.sh(setup)
    assert lo_state(pod)[1].count("127.0.0.1/8") == 1
    code, msg = failed(loopback("ADD", conf(), netns=pod.path, inside=host_ns))
    assert (code, msg) == (999, f'loopback interface found with non-loopback address "{named}"')
    assert lo_state(pod)[0], "lo is set up before the addresses are checked (as the reference)"


def test_more_loopback_addresses_report_the_first_of_each_family(host_ns: Any, pod: Any) -> None:
    pod.sh("ip addr add 127.0.0.2/8 dev lo")
    assert ok(loopback("ADD", conf(), netns=pod.path, inside=host_ns)) == expected("1.0.0", pod.path)
    ok(loopback("DEL", conf(), netns=pod.path, inside=host_ns))
    assert lo_state(pod) == (False, ("127.0.0.1/8", "127.0.0.2/8")), "DEL leaves the addresses alone"


@pytest.mark.parametrize("version", ["0.2.0", "0.4.0", "1.0.0"])
def test_ipv6_disabled_reports_ipv4_only(host_ns: Any, pod: Any, version: str) -> None:
    pod.sh("sysctl -qw net.ipv6.conf.lo.disable_ipv6=1")
    assert ok(loopback("ADD", conf(version), netns=pod.path, inside=host_ns)) == expected(version, pod.path, ipv6=False)


# --- the namespace: missing, gone, not one, the plugin's own -----------------------------------------------

def test_del_without_netns_succeeds(host_ns: Any) -> None:
    before = lo_state(host_ns)
    assert ok(loopback("DEL", conf(), netns="", inside=host_ns)) is None
    assert lo_state(host_ns) == before


@pytest.mark.parametrize("version", ["0.3.1", "1.0.0"])
def test_netns_deleted_after_add(host_ns: Any, netns_factory: Callable[[str], Any], version: str) -> None:
    """DEL succeeds (nothing left to do); CHECK and ADD say the container is gone (code 3, the spec's code for
    it; the reference answers 999 "failed to Statfs"). The path is never recreated."""
    pod = netns_factory("pod")
    result = ok(loopback("ADD", conf(version), netns=pod.path, inside=host_ns))
    subprocess.run(["ip", "netns", "delete", pod.name], check=True)
    assert not os.path.exists(pod.path)
    assert ok(loopback("DEL", conf(version, prevResult=result), netns=pod.path, inside=host_ns)) is None
    assert failed(loopback("CHECK", conf("1.0.0", prevResult=result), netns=pod.path, inside=host_ns)) == \
        (3, f"network namespace {pod.path!r} does not exist")
    assert failed(loopback("ADD", conf(version), netns=pod.path, inside=host_ns))[0] == 3
    assert not os.path.exists(pod.path)


@pytest.mark.parametrize("command", ["ADD", "CHECK"])
def test_a_path_that_is_no_netns_is_code_4(host_ns: Any, tmp_path: Path, command: str) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert failed(loopback(command, conf(), netns=str(plain), inside=host_ns)) == \
        (4, f"{str(plain)!r} is not a network namespace")


def test_del_takes_a_path_left_holding_no_netns_as_gone(host_ns: Any, tmp_path: Path) -> None:
    """The empty file an unmounted netns bind mount leaves: DEL succeeds (retries would fail forever otherwise)."""
    plain = tmp_path / "plain"
    plain.write_text("")
    done = loopback("DEL", conf(), netns=str(plain), inside=host_ns)
    assert (done.status, done.out) == (0, None), done


@pytest.mark.parametrize("command", ["ADD", "DEL", "CHECK"])
def test_the_plugins_own_netns_is_refused(host_ns: Any, command: str) -> None:
    """CNI_NETNS naming the namespace the plugin runs in would set the node's own lo down on DEL: code 8 (as
    libcni v1.9's skel), lo untouched."""
    host_ns.sh("ip link set lo up")
    code, _msg = failed(loopback(command, conf(), netns=host_ns.path, inside=host_ns))
    assert code == 8 and lo_state(host_ns)[0]


def test_netns_override_allows_the_own_netns(host_ns: Any) -> None:
    """CNI_NETNS_OVERRIDE=1 is libcni's escape hatch; here it is the throwaway host namespace that goes down."""
    host_ns.sh("ip link set lo up")
    ok(loopback("DEL", conf(), netns=host_ns.path, CNI_NETNS_OVERRIDE="1", inside=host_ns))
    assert not lo_state(host_ns)[0]


def test_bad_ifname_is_code_4_and_touches_nothing(host_ns: Any, pod: Any) -> None:
    code, msg = failed(loopback("ADD", conf(), netns=pod.path, ifname="a/b", inside=host_ns))
    assert code == 4 and msg.startswith("invalid CNI_IFNAME 'a/b'")
    assert lo_state(pod) == (False, ("127.0.0.1/8",))
