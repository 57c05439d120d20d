"""tuning's verbs through common.skel.dispatch, with a fake pod (sysctl files and one link in memory) and the
restore files on tmp_path: the production verbs and Host file code, no root."""
from __future__ import annotations

import contextlib
import errno
import json
import os

import pytest

from common.netlink import LinkError
from common.netns import NetnsGone
from support import cni_env, in_process
from tuning.host import Host
from tuning.plugin import make_plugin

PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p"}, {"name": "lo"}],
        "ips": [{"address": "10.1.0.5/24", "interface": 0}]}
ORIGINAL = {"mac": "fe:9b:10:e4:da:30", "promisc": False, "mtu": 1500, "allmulti": False, "txQLen": 1000}


class FakePod:
    """One link eth0 and some sysctl files; `refuse` maps (key, value) to the errno the kernel answers."""

    def __init__(self) -> None:
        self.sysctls = {"/proc/sys/net/core/somaxconn": "4096\n", "/proc/sys/net/ipv4/conf/eth0/arp_filter": "0\n"}
        self.link_state: dict | None = dict(ORIGINAL)
        self.refuse: dict[tuple[str, object], int] = {}
        self.gone = False

    def read_sysctl(self, path: str) -> str:
        if path not in self.sysctls:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return self.sysctls[path]

    def write_sysctl(self, path: str, value: str) -> None:
        if path not in self.sysctls:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        if not value.strip().isdigit():
            raise OSError(errno.EINVAL, "Invalid argument")
        self.sysctls[path] = value + "\n"

    def link(self, ifname: str):
        return None if self.link_state is None or ifname != "eth0" else (7, dict(self.link_state))

    def set(self, index: int, key: str, value) -> None:
        assert index == 7 and self.link_state is not None
        if (key, value) in self.refuse:
            code = self.refuse[(key, value)]
            raise LinkError(code, f"setting {key}: {errno.errorcode[code]}")
        self.link_state[key] = value


@pytest.fixture
def pod() -> FakePod:
    return FakePod()


@pytest.fixture
def plugin(pod, tmp_path):
    @contextlib.contextmanager
    def enter(path: str):
        if pod.gone:
            raise NetnsGone(path)
        yield pod
    return make_plugin(Host(enter=enter, allowlist_path=str(tmp_path / "allowlist.conf")))


def call(plugin, command, conf, **env):
    return in_process(plugin, cni_env(command, **{"netns": "/run/netns/p", **env}), conf)


def tuning(tmp_path, **keys):
    return {"cniVersion": "1.0.0", "name": "net", "type": "tuning", "dataDir": str(tmp_path / "data"),
            "prevResult": PREV, **keys}


def restore_file(tmp_path, cid="c1", ifname="eth0"):
    return tmp_path / "data" / f"{cid}_{ifname}.json"


def test_add_sets_everything_saves_originals_and_reports_the_mac(plugin, pod, tmp_path) -> None:
    conf = tuning(tmp_path, sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1"}, mac="02:00:00:00:00:09", mtu=1400,
                  promisc=True, allmulti=True, txQLen=500)
    answer = call(plugin, "ADD", conf)
    assert answer.status == 0, answer.stdout
    result = json.loads(answer.stdout)
    assert result["interfaces"] == [{"name": "eth0", "mac": "02:00:00:00:00:09", "sandbox": "/run/netns/p"},
                                    {"name": "lo"}]
    assert pod.sysctls["/proc/sys/net/ipv4/conf/eth0/arp_filter"] == "1\n"
    assert pod.link_state == {"mac": "02:00:00:00:00:09", "promisc": True, "mtu": 1400, "allmulti": True,
                              "txQLen": 500}
    path = restore_file(tmp_path)
    assert path.read_bytes() == (b'{\n "mac": "fe:9b:10:e4:da:30",\n "promisc": false,\n "mtu": 1500,\n'
                                 b' "allmulti": false,\n "txQLen": 1000\n}')
    assert (os.stat(path).st_mode & 0o777, os.stat(path.parent).st_mode & 0o777) == (0o600, 0o600)
    assert call(plugin, "CHECK", conf).status == 0

    assert call(plugin, "DEL", conf).status == 0
    assert pod.link_state == ORIGINAL and not path.exists()
    assert os.listdir(path.parent) == []


def test_second_add_keeps_the_true_original(plugin, pod, tmp_path) -> None:
    assert call(plugin, "ADD", tuning(tmp_path, mtu=1400)).status == 0
    assert call(plugin, "ADD", tuning(tmp_path, mtu=1300, mac="02:00:00:00:00:09")).status == 0
    assert restore_file(tmp_path).read_bytes() == b'{\n "mac": "fe:9b:10:e4:da:30",\n "mtu": 1500\n}'
    assert call(plugin, "DEL", tuning(tmp_path)).status == 0
    assert pod.link_state == ORIGINAL


def test_failed_add_rolls_back_everything(plugin, pod, tmp_path) -> None:
    pod.refuse[("txQLen", 5)] = errno.EINVAL
    conf = tuning(tmp_path, sysctl={"net.core.somaxconn": "600"}, mac="02:00:00:00:00:09", mtu=1400, txQLen=5)
    answer = call(plugin, "ADD", conf)
    assert (answer.status, json.loads(answer.stdout)["code"], json.loads(answer.stdout)["msg"]) == (
        1, 7, "cannot set the transmit queue length of eth0 to 5 (txQLen): the kernel refused it: EINVAL "
              "(Invalid argument)")
    assert pod.link_state == ORIGINAL
    assert pod.sysctls["/proc/sys/net/core/somaxconn"] == "4096\n"
    assert not restore_file(tmp_path).exists()


def test_failed_second_add_puts_the_earlier_file_back(plugin, pod, tmp_path) -> None:
    assert call(plugin, "ADD", tuning(tmp_path, mtu=1400)).status == 0
    before = restore_file(tmp_path).read_bytes()
    pod.refuse[("mac", "01:00:00:00:00:01")] = errno.EADDRNOTAVAIL
    answer = call(plugin, "ADD", tuning(tmp_path, mtu=1300, mac="01:00:00:00:00:01"))
    assert json.loads(answer.stdout)["code"] == 7
    assert restore_file(tmp_path).read_bytes() == before and pod.link_state["mtu"] == 1400


def test_failed_sysctl_names_key_and_value_and_undoes_earlier_ones(plugin, pod, tmp_path) -> None:
    conf = tuning(tmp_path, sysctl={"net.core.somaxconn": "600"},
                  args={"cni": {"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "x"}}})
    answer = call(plugin, "ADD", conf)
    assert json.loads(answer.stdout)["msg"] == (
        "cannot set sysctl net.ipv4.conf.IFNAME.arp_filter to 'x' (args.cni.sysctl, "
        "/proc/sys/net/ipv4/conf/eth0/arp_filter): Invalid argument")
    assert json.loads(answer.stdout)["code"] == 7
    assert pod.sysctls["/proc/sys/net/core/somaxconn"] == "4096\n"
    missing = call(plugin, "ADD", tuning(tmp_path, sysctl={"net.foo.bar": "1"}))
    assert json.loads(missing.stdout)["code"] == 7


def test_add_refusals_before_anything_changes(plugin, pod, tmp_path) -> None:
    no_prev = tuning(tmp_path, mtu=1400)
    del no_prev["prevResult"]
    cases = [
        (no_prev, {}, 7, "missing prevResult: tuning must be called as a chained plugin"),
        (tuning(tmp_path, mtu=1400, sysctl={"kernel.hostname": "x"}), {}, 7,
         "invalid net sysctl key 'kernel.hostname' at sysctl: it is /proc/sys/kernel/hostname, and only keys under "
         "/proc/sys/net/ (per network namespace) may be set"),
        (tuning(tmp_path, mtu=1400), {"args": "FOO=1"}, 4,
         "unknown CNI_ARGS key 'FOO' (known: MAC; set IgnoreUnknown=1 to ignore unknown keys)"),
    ]
    for conf, env, code, msg in cases:
        out = json.loads(call(plugin, "ADD", conf, **env).stdout)
        assert (out["code"], out["msg"]) == (code, msg)
    assert pod.link_state == ORIGINAL and not (tmp_path / "data").exists()


def test_allowlist_file_is_honoured_in_add_only(plugin, pod, tmp_path) -> None:
    (tmp_path / "allowlist.conf").write_text("^net\\.core\\.somaxconn$\n")
    assert call(plugin, "ADD", tuning(tmp_path, sysctl={"net.core.somaxconn": "600"})).status == 0
    conf = tuning(tmp_path, sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1"})
    assert json.loads(call(plugin, "ADD", conf).stdout)["code"] == 7
    assert pod.sysctls["/proc/sys/net/ipv4/conf/eth0/arp_filter"] == "0\n"


def test_check_reports_the_first_difference(plugin, pod, tmp_path) -> None:
    conf = tuning(tmp_path, sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1"}, mtu=1400)
    assert call(plugin, "ADD", conf).status == 0
    pod.sysctls["/proc/sys/net/ipv4/conf/eth0/arp_filter"] = "0\n"
    assert json.loads(call(plugin, "CHECK", conf).stdout)["msg"] == (
        "Error: Tuning configured value of /proc/sys/net/ipv4/conf/eth0/arp_filter is 1, current value is 0")
    pod.sysctls["/proc/sys/net/ipv4/conf/eth0/arp_filter"] = "1\n"
    pod.link_state["mtu"] = 9000
    assert json.loads(call(plugin, "CHECK", conf).stdout)["msg"] == (
        "Error: Tuning configured MTU of eth0 is 1400, current value is 9000")
    pod.link_state = None
    assert json.loads(call(plugin, "CHECK", conf).stdout)["msg"] == "Cannot find container link eth0"
    out = json.loads(call(plugin, "CHECK", tuning(tmp_path, sysctl={"kernel.x": "1"})).stdout)
    assert out["code"] == 7


@pytest.mark.parametrize("gone", ["netns", "link", "empty-netns"])
def test_del_when_things_are_gone_succeeds_and_removes_the_file(plugin, pod, tmp_path, gone) -> None:
    assert call(plugin, "ADD", tuning(tmp_path, mtu=1400)).status == 0
    env = {}
    if gone == "netns":
        pod.gone = True
    elif gone == "link":
        pod.link_state = None
    else:
        env = {"netns": ""}
    answer = call(plugin, "DEL", {"cniVersion": "1.0.0", "name": "net", "type": "tuning",
                                  "dataDir": str(tmp_path / "data")}, **env)
    assert (answer.status, answer.stdout) == (0, "")
    assert not restore_file(tmp_path).exists()


def test_del_without_a_file_or_with_a_bad_one(plugin, pod, tmp_path) -> None:
    assert call(plugin, "DEL", tuning(tmp_path, mtu="not even valid", args="FOO=1")).status == 0
    restore_file(tmp_path).parent.mkdir()
    restore_file(tmp_path).write_text("{not json")
    assert call(plugin, "DEL", tuning(tmp_path)).status == 0
    assert not restore_file(tmp_path).exists() and pod.link_state == ORIGINAL


def test_del_restores_a_go_file_and_keeps_it_when_the_kernel_refuses(plugin, pod, tmp_path) -> None:
    pod.link_state = {**ORIGINAL, "mtu": 1400, "promisc": True}
    restore_file(tmp_path).parent.mkdir()
    restore_file(tmp_path).write_bytes(b'{\n "promisc": false,\n "mtu": 1500\n}')
    pod.refuse[("mtu", 1500)] = errno.EBUSY
    assert call(plugin, "DEL", tuning(tmp_path)).status == 0
    assert restore_file(tmp_path).exists() and pod.link_state["promisc"] is False
    del pod.refuse[("mtu", 1500)]
    assert call(plugin, "DEL", tuning(tmp_path)).status == 0
    assert not restore_file(tmp_path).exists() and pod.link_state == ORIGINAL


def test_gc_removes_files_of_attachments_no_longer_valid(plugin, tmp_path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in ("c1_eth0.json", "c2_eth0.json", "c1_net1.json", ".c3_eth0.json.tmp", "other.txt"):
        (data / name).write_text("{}")
    conf = {"cniVersion": "1.1.0", "name": "net", "type": "tuning", "dataDir": str(data),
            "cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]}
    assert call(plugin, "GC", conf, container=False).status == 0
    assert sorted(os.listdir(data)) == ["c1_eth0.json", "other.txt"]
    del conf["cni.dev/valid-attachments"]
    assert json.loads(call(plugin, "GC", conf, container=False).stdout)["code"] == 7


def test_status(plugin, tmp_path) -> None:
    conf = {"cniVersion": "1.1.0", "name": "net", "type": "tuning"}
    assert call(plugin, "STATUS", conf, container=False).status == 0
    assert json.loads(call(plugin, "STATUS", {**conf, "mtu": "x"}, container=False).stdout)["code"] == 7


def test_sysctl_only_add_needs_no_link(plugin, pod, tmp_path) -> None:
    pod.link_state = None
    answer = call(plugin, "ADD", tuning(tmp_path, sysctl={"net.core.somaxconn": "600"}))
    assert answer.status == 0 and json.loads(answer.stdout)["interfaces"][0] == {"name": "eth0",
                                                                                  "sandbox": "/run/netns/p"}
    assert not (tmp_path / "data").exists()
