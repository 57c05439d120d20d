"""The tuning plugin in-process (common.skel.dispatch, the production Host) on throwaway pod namespaces (ptn-*)
holding a veth `eth0` (and one named like a VLAN, `eth0.100`: this kernel has no vlan or dummy module): real
sysctl files, real netlink. Every namespace is the
test's own and is removed afterwards, also after a failure."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import Netns, cni_env, in_process, ok, spec_error
from tuning.host import Host
from tuning.plugin import make_plugin

pytestmark = pytest.mark.root
PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "x"}],
        "ips": [{"address": "10.1.0.5/24", "interface": 0}]}


@pytest.fixture
def pod() -> Iterator[Netns]:
    ns = Netns.create(f"ptn-pod-{uuid.uuid4().hex[:8]}")
    try:
        ns.sh("ip link add name eth0 address 02:00:00:00:00:01 mtu 1500 type veth peer name peer0 && "
              "ip link add name eth0.100 type veth peer name peer1 && ip link set eth0 up")
        yield ns
    finally:
        ns.delete()


@pytest.fixture
def plugin(tmp_path: Path):
    return make_plugin(Host(allowlist_path=str(tmp_path / "allowlist.conf")))


def conf(tmp_path: Path, version: str = "1.0.0", **keys):
    return {"cniVersion": version, "name": "tnet", "type": "tuning", "dataDir": str(tmp_path / "data"),
            "prevResult": PREV, **keys}


def call(plugin, verb: str, pod: Netns, body, ifname: str = "eth0", **env):
    return in_process(plugin, cni_env(verb, **{"netns": pod.path, "ifname": ifname, **env}), body)


def link(pod: Netns, name: str = "eth0") -> dict:
    [info] = json.loads(pod.run("ip", "-d", "-j", "link", "show", name).stdout)
    return {"mac": info["address"], "mtu": info["mtu"], "promisc": info.get("promiscuity", 0) > 0,
            "allmulti": "ALLMULTI" in info["flags"], "txqlen": info.get("txqlen")}


def sysctl(pod: Netns, key: str) -> str:
    return pod.sh(f"cat /proc/sys/{key}").strip()


def test_add_check_del_restores_the_link(plugin, pod, tmp_path) -> None:
    before = link(pod)
    body = conf(tmp_path, sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1", "net.core.somaxconn": "601"},
                mac="02:00:00:00:00:77", mtu=1400, promisc=True, allmulti=True, txQLen=500)
    result = ok(call(plugin, "ADD", pod, body))
    assert result["interfaces"][0]["mac"] == "02:00:00:00:00:77"
    assert link(pod) == {"mac": "02:00:00:00:00:77", "mtu": 1400, "promisc": True, "allmulti": True, "txqlen": 500}
    assert (sysctl(pod, "net/ipv4/conf/eth0/arp_filter"), sysctl(pod, "net/core/somaxconn")) == ("1", "601")
    saved = (tmp_path / "data" / "c1_eth0.json").read_bytes()
    assert saved == (b'{\n "mac": "02:00:00:00:00:01",\n "promisc": false,\n "mtu": 1500,\n "allmulti": false,\n'
                     b' "txQLen": %d\n}' % before["txqlen"])
    ok(call(plugin, "CHECK", pod, body))
    pod.sh("ip link set eth0 mtu 1450")
    assert spec_error(call(plugin, "CHECK", pod, body))["msg"] == (
        "Error: Tuning configured MTU of eth0 is 1400, current value is 1450")
    ok(call(plugin, "DEL", pod, body))
    assert link(pod) == before
    assert not (tmp_path / "data" / "c1_eth0.json").exists()


def test_vlan_ifname_sysctl(plugin, pod, tmp_path) -> None:
    """IFNAME after the dots became slashes: eth0.100 stays one component (1.1.1 wrote into eth0/100)."""
    body = conf(tmp_path, sysctl={"net.ipv4.conf.IFNAME.arp_ignore": "2"})
    ok(call(plugin, "ADD", pod, body, ifname="eth0.100"))
    assert sysctl(pod, "net/ipv4/conf/eth0.100/arp_ignore") == "2"
    ok(call(plugin, "CHECK", pod, body, ifname="eth0.100"))


def test_failed_add_rolls_back(plugin, pod, tmp_path) -> None:
    before, somaxconn = link(pod), sysctl(pod, "net/core/somaxconn")
    body = conf(tmp_path, sysctl={"net.core.somaxconn": "602"}, mac="02:00:00:00:00:78", mtu=99999999)
    error = spec_error(call(plugin, "ADD", pod, body), 7)
    assert error["msg"] == ("cannot set the MTU of eth0 to 99999999 (mtu): the kernel refused it: EINVAL "
                            "(Invalid argument)")
    assert link(pod) == before and sysctl(pod, "net/core/somaxconn") == somaxconn
    assert not (tmp_path / "data" / "c1_eth0.json").exists()


def test_args_cni_sysctl_without_a_top_level_sysctl(plugin, pod, tmp_path) -> None:
    ok(call(plugin, "ADD", pod, conf(tmp_path, args={"cni": {"sysctl": {"net.core.somaxconn": "603"}}})))
    assert sysctl(pod, "net/core/somaxconn") == "603"


def test_second_add_then_del_gets_the_true_original_back(plugin, pod, tmp_path) -> None:
    before = link(pod)
    ok(call(plugin, "ADD", pod, conf(tmp_path, mtu=1400)))
    ok(call(plugin, "ADD", pod, conf(tmp_path, mtu=1300, mac="02:00:00:00:00:79")))
    ok(call(plugin, "DEL", pod, conf(tmp_path)))
    assert link(pod) == before


def test_del_when_the_link_or_netns_is_gone(plugin, pod, tmp_path) -> None:
    ok(call(plugin, "ADD", pod, conf(tmp_path, mtu=1400)))
    pod.sh("ip link del eth0")
    ok(call(plugin, "DEL", pod, conf(tmp_path)))
    assert not (tmp_path / "data" / "c1_eth0.json").exists()
    ok(call(plugin, "DEL", pod, conf(tmp_path), netns=pod.path + "-gone"))


def test_sysctl_errors_name_the_key(plugin, pod, tmp_path) -> None:
    error = spec_error(call(plugin, "ADD", pod, conf(tmp_path, sysctl={"net.core.nope": "1"})), 7)
    assert error["msg"] == ("cannot set sysctl net.core.nope to '1' (sysctl, /proc/sys/net/core/nope): "
                            "No such file or directory")
    assert spec_error(call(plugin, "ADD", pod, conf(tmp_path, sysctl={"kernel.hostname": "x"})), 7)
