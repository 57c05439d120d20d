"""The whole plugin through common.skel.dispatch: env dict + stdin bytes in, exit status + JSON out."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import pytest

from common import result as results
from common.ip import ip_address, ip_interface
from common.types import DNS, IPConfig, Result
from host_local import dns
from host_local.plugin import PLUGIN
from support import Caller, error, gc_conf, host_local_conf, ok

run = Caller(PLUGIN, netns="/run/netns/x", cni_path="/opt/cni/bin")
# host-local as bridge delegates to it: the main plugin's config, its `ipam` keys
netconf = partial(host_local_conf, name="net1", subnet="10.0.0.0/29", type="bridge")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_add_del_cycle(data_dir: Path) -> None:
    conf = netconf(data_dir, routes=[{"dst": "0.0.0.0/0"}])
    out = ok(run("ADD", conf))
    assert out == {"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/29", "gateway": "10.0.0.1"}],
                   "routes": [{"dst": "0.0.0.0/0"}], "dns": {}}
    assert (data_dir / "net1" / "10.0.0.2").read_bytes() == b"c1\r\neth0"
    assert ok(run("CHECK", conf)) is None
    assert ok(run("DEL", conf)) is None
    assert ok(run("DEL", conf)) is None                      # DEL twice succeeds
    assert not (data_dir / "net1" / "10.0.0.2").exists()
    code, msg = error(run("CHECK", conf))
    assert code == 999 and msg.startswith("host-local: no address is allocated to container c1 interface eth0")


def test_del_needs_no_netns(data_dir: Path) -> None:
    conf = netconf(data_dir)
    ok(run("ADD", conf))
    assert ok(run("DEL", conf, CNI_NETNS="")) is None
    assert not (data_dir / "net1" / "10.0.0.2").exists()


@pytest.mark.parametrize("version,expected", [
    ("0.2.0", {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.2/29", "gateway": "10.0.0.1"},
               "ip6": {"ip": "fd00::2/120", "gateway": "fd00::1"}, "dns": {}}),
    ("0.4.0", {"cniVersion": "0.4.0", "ips": [{"version": "4", "address": "10.0.0.2/29", "gateway": "10.0.0.1"},
                                              {"version": "6", "address": "fd00::2/120", "gateway": "fd00::1"}],
               "dns": {}}),
    ("1.1.0", {"cniVersion": "1.1.0", "ips": [{"address": "10.0.0.2/29", "gateway": "10.0.0.1"},
                                              {"address": "fd00::2/120", "gateway": "fd00::1"}]}),
])
def test_dual_stack_result_at_each_version_family(data_dir: Path, version: str, expected: dict[str, Any]) -> None:
    conf = netconf(data_dir, version=version, ranges=[[{"subnet": "10.0.0.0/29"}], [{"subnet": "fd00::/120"}]])
    assert ok(run("ADD", conf)) == expected


@pytest.mark.parametrize("version", ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"])
def test_every_version_allocates(data_dir: Path, version: str) -> None:
    out = ok(run("ADD", netconf(data_dir, version=version)))
    assert out["cniVersion"] == version and "interfaces" not in out


def test_result_renders_with_dns_at_three_versions() -> None:
    result = Result(ips=(IPConfig(address=ip_interface("10.0.0.2/24"),
                                  gateway=ip_address("10.0.0.1")),),
                    dns=DNS(nameservers=("10.0.0.53",), domain="example.org"))
    dns_json = {"nameservers": ["10.0.0.53"], "domain": "example.org"}
    assert results.render(result, "0.2.0") == {"cniVersion": "0.2.0", "dns": dns_json,
                                               "ip4": {"ip": "10.0.0.2/24", "gateway": "10.0.0.1"}}
    assert results.render(result, "0.4.0")["ips"] == [{"version": "4", "address": "10.0.0.2/24",
                                                       "gateway": "10.0.0.1"}]
    assert results.render(result, "1.0.0")["dns"] == dns_json


def test_resolv_conf_becomes_result_dns(data_dir: Path, tmp_path: Path) -> None:
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\n; other\nnameserver 10.0.0.53\nnameserver fd00::53\ndomain a.example\n"
                      "search a.example b.example\noptions ndots:5 rotate\nsearch c.example\nbogus\n")
    out = ok(run("ADD", netconf(data_dir, resolvConf=str(resolv))))
    assert out["dns"] == {"nameservers": ["10.0.0.53", "fd00::53"], "domain": "a.example",
                          "search": ["a.example", "b.example", "c.example"], "options": ["ndots:5", "rotate"]}
    assert dns.parse_resolv_conf("") == DNS()


def test_missing_resolv_conf_is_a_config_error_and_allocates_nothing(data_dir: Path) -> None:
    code, msg = error(run("ADD", netconf(data_dir, resolvConf="/nonexistent/resolv.conf")))
    assert (code, msg) == (7, "cannot read resolvConf '/nonexistent/resolv.conf' at ipam.resolvConf: "
                              "No such file or directory")
    assert not (data_dir / "net1").exists()


def test_static_ips_from_all_three_sources(data_dir: Path) -> None:
    conf = netconf(data_dir, ranges=[[{"subnet": "10.0.0.0/29"}], [{"subnet": "10.1.0.0/29"}],
                                     [{"subnet": "fd00::/120"}]])
    conf["args"] = {"cni": {"ips": ["10.1.0.5"]}}
    conf["runtimeConfig"] = {"ips": ["fd00::9/120"]}
    out = ok(run("ADD", conf, CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.4"))
    assert [i["address"] for i in out["ips"]] == ["10.0.0.4/29", "10.1.0.5/29", "fd00::9/120"]


def test_unknown_cni_args_without_ignore_unknown_is_refused(data_dir: Path) -> None:
    code, msg = error(run("ADD", netconf(data_dir), CNI_ARGS="FOO=1"))
    assert code == 4 and "unknown CNI_ARGS key 'FOO'" in msg


def test_exhaustion_and_duplicate_errors(data_dir: Path) -> None:
    conf = netconf(data_dir, ranges=[[{"subnet": "10.0.0.0/29", "rangeStart": "10.0.0.2", "rangeEnd": "10.0.0.3"}]])
    ok(run("ADD", conf, cid="a"))
    assert error(run("ADD", conf, cid="a")) == (999, "failed to allocate for range 0: 10.0.0.2 has been allocated "
                                                     "to a, duplicate allocation is not allowed")
    ok(run("ADD", conf, cid="b"))
    assert error(run("ADD", conf, cid="c")) == (999, "failed to allocate for range 0: no IP addresses available "
                                                     "in range set 10.0.0.2-10.0.0.3")


def test_gc_keeps_valid_attachments_only(data_dir: Path) -> None:
    conf = netconf(data_dir, version="1.1.0")
    for cid in ("a", "b", "c"):
        ok(run("ADD", conf, cid=cid))
    gc = {**gc_conf(conf, "a"), "cni.dev/attachments": [{"containerID": "c", "ifname": "eth0"}]}
    assert ok(run("GC", gc)) is None
    names = sorted(p.name for p in (data_dir / "net1").iterdir() if p.name[0].isdigit())
    assert names == ["10.0.0.2", "10.0.0.4"]


def test_gc_without_attachment_list_is_refused(data_dir: Path) -> None:
    ok(run("ADD", netconf(data_dir, version="1.1.0")))
    assert error(run("GC", netconf(data_dir, version="1.1.0"))) == (
        7, "missing required key cni.dev/valid-attachments (GC needs the list of valid attachments)")
    assert (data_dir / "net1" / "10.0.0.2").exists()


def test_gc_entries_must_be_objects_with_both_keys(data_dir: Path) -> None:
    conf = {**netconf(data_dir, version="1.1.0"), "cni.dev/valid-attachments": [{"containerID": "a"}]}
    assert error(run("GC", conf)) == (7, "missing required key cni.dev/valid-attachments[0].ifname")


def test_status_reports_the_exhausted_set(data_dir: Path) -> None:
    conf = netconf(data_dir, version="1.1.0", ranges=[[{"subnet": "10.0.0.0/29", "rangeEnd": "10.0.0.2"}],
                                              [{"subnet": "fd00::/120"}]])
    assert ok(run("STATUS", conf)) is None
    ok(run("ADD", conf))
    assert error(run("STATUS", conf)) == (50, "no IP addresses available in range set 10.0.0.1-10.0.0.2 "
                                              "(range set 0)")


def test_lock_timeout_env_must_be_a_number(data_dir: Path) -> None:
    code, msg = error(run("ADD", netconf(data_dir), PYCNI_LOCK_TIMEOUT="soon"))
    assert (code, msg) == (4, "invalid PYCNI_LOCK_TIMEOUT 'soon': expected seconds >= 0")


def test_invalid_config_creates_nothing(data_dir: Path) -> None:
    code, msg = error(run("ADD", netconf(data_dir, ranges=[[{"subnet": "10.0.0.0/33"}]])))
    assert (code, msg) == (7, "invalid CIDR '10.0.0.0/33' at ipam.ranges[0][0].subnet")
    assert not data_dir.exists()


def test_network_name_with_path_is_refused_before_anything_is_created(data_dir: Path) -> None:
    conf = {**netconf(data_dir), "name": "../escape"}
    code, _ = error(run("ADD", conf))
    assert code == 7 and not data_dir.exists() and not (data_dir.parent / "escape").exists()


def test_version_command() -> None:
    out = ok(run("VERSION", b""))
    assert out["supportedVersions"][-1] == "1.1.0"
