"""The overlay CNI plugin in-process: subnet.env parsing, the delegate config, and the verbs over a fake delegate."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from common.config import base_netconf
from common.exec import Completed
from common.skel import dispatch
from overlay_cni import config, subnet_env
from overlay_cni.plugin import make_plugin

ENV_TEXT = "FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.1.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=true\n"
RESULT = {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/p"}],
          "ips": [{"address": "10.244.1.2/24", "gateway": "10.244.1.1", "interface": 0}],
          "routes": [{"dst": "10.244.0.0/16"}]}


def test_subnet_env_is_flannels_format() -> None:
    env = subnet_env.parse(ENV_TEXT)
    assert (str(env.network), str(env.subnet), env.mtu, env.ipmasq) == ("10.244.0.0/16", "10.244.1.0/24", 1450, True)
    assert env.ranges() == [(env.subnet, env.network)]


@pytest.mark.parametrize("text, message", [
    ("FLANNEL_MTU=1450\n", "has neither FLANNEL_SUBNET nor FLANNEL_IPV6_SUBNET"),
    ("FLANNEL_SUBNET=10.1.0.1/24\n", "FLANNEL_MTU must be an integer 68..65535, got None"),
    ("FLANNEL_SUBNET=10.1.0.1/24\nFLANNEL_MTU=x\n", "FLANNEL_MTU must be an integer 68..65535, got 'x'"),
    ("FLANNEL_SUBNET=10.1.0.1/33\nFLANNEL_MTU=1450\n", "FLANNEL_SUBNET is not a CIDR: '10.1.0.1/33'"),
    ("FLANNEL_SUBNET=10.1.0.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=yes\n", "FLANNEL_IPMASQ must be true or false"),
])
def test_bad_subnet_env_is_code_7(text: str, message: str) -> None:
    with pytest.raises(Exception) as info:
        subnet_env.parse(text)
    assert info.value.code == 7 and message in info.value.msg


def netconf(**extra: Any) -> Any:
    return base_netconf({"cniVersion": "1.0.0", "name": "ovnet", "type": "overlay", **extra})


def test_delegate_config_is_bridge_over_the_node_subnet_without_nat() -> None:
    conf = netconf(ipam={"dataDir": "/tmp/x", "routes": [{"dst": "192.168.0.0/16"}]},
                   runtimeConfig={"portMappings": []})
    cfg = config.delegate_config(conf, config.parse(conf),
                                 subnet_env.parse(ENV_TEXT))
    assert cfg == {"cniVersion": "1.0.0", "name": "ovnet", "type": "bridge", "mtu": 1450, "ipMasq": False,
                   "isGateway": True, "runtimeConfig": {"portMappings": []},
                   "ipam": {"type": "host-local", "dataDir": "/tmp/x", "ranges": [[{"subnet": "10.244.1.0/24"}]],
                            "routes": [{"dst": "192.168.0.0/16"}, {"dst": "10.244.0.0/16"}]}}


def test_delegate_keys_override_and_type_is_kept() -> None:
    conf = netconf(delegate={"MTU": 1400, "bridge": "ov0", "isDefaultGateway": True, "hairpinMode": True,
                             "ipMasq": True})
    cfg = config.delegate_config(conf, config.parse(conf), subnet_env.parse(ENV_TEXT))
    assert (cfg["MTU"], "mtu" in cfg, cfg["bridge"], cfg["ipMasq"], cfg["isDefaultGateway"]) == \
        (1400, False, "ov0", True, True)
    other = netconf(delegate={"type": "ipvlan", "master": "eth0"})
    cfg = config.delegate_config(other, config.parse(other), subnet_env.parse(ENV_TEXT))
    assert cfg["type"] == "ipvlan" and "isGateway" not in cfg


class FakeDelegate:
    """Records (binary, command, config) and answers like bridge."""

    def __init__(self, status: int = 0, stdout: bytes | None = None) -> None:
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.status, self.stdout = status, stdout

    def __call__(self, binary: str, env: Any, stdin: bytes) -> Completed:
        self.calls.append((binary, env["CNI_COMMAND"], json.loads(stdin)))
        out = self.stdout if self.stdout is not None else (json.dumps(RESULT).encode()
                                                           if env["CNI_COMMAND"] == "ADD" else b"")
        return Completed(self.status, out, b"")


@pytest.fixture
def node(tmp_path: Path) -> dict[str, Any]:
    cni_bin = tmp_path / "bin"
    cni_bin.mkdir()
    (cni_bin / "bridge").write_text("#!/bin/sh\n")
    (cni_bin / "bridge").chmod(0o755)
    return {"bin": cni_bin, "env_file": tmp_path / "subnet.env", "data": tmp_path / "state"}


def call(node: dict[str, Any], fake: FakeDelegate, command: str, **extra: Any) -> Any:
    conf = {"cniVersion": "1.1.0", "name": "ovnet", "type": "overlay", "subnetFile": str(node["env_file"]),
            "dataDir": str(node["data"]), **extra}
    env = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0",
           "CNI_PATH": str(node["bin"])}
    return dispatch(make_plugin(call=fake), env, lambda: json.dumps(conf).encode())


def test_add_without_subnet_file_is_code_11_and_runs_nothing(node: dict[str, Any]) -> None:
    fake = FakeDelegate()
    outcome = call(node, fake, "ADD")
    assert outcome.status == 1 and json.loads(outcome.stdout)["code"] == 11
    assert "not found: is pycni-overlayd running" in json.loads(outcome.stdout)["msg"]
    assert fake.calls == []
    assert json.loads(call(node, fake, "STATUS").stdout)["code"] == 50
    assert call(node, fake, "DEL").status == 0 and fake.calls == []   # nothing saved, nothing to undo


def test_add_saves_the_delegate_config_and_del_replays_it(node: dict[str, Any]) -> None:
    node["env_file"].write_text(ENV_TEXT)
    fake = FakeDelegate()
    outcome = call(node, fake, "ADD")
    assert outcome.status == 0, outcome
    assert json.loads(outcome.stdout)["ips"][0]["address"] == "10.244.1.2/24"
    (binary, command, cfg), = fake.calls
    assert (binary, command) == (str(node["bin"] / "bridge"), "ADD")
    assert json.loads((node["data"] / "c1").read_text()) == cfg
    assert (node["data"] / "c1").stat().st_mode & 0o777 == 0o600
    node["env_file"].unlink()                       # the agent is gone: DEL still undoes what ADD did
    assert call(node, fake, "DEL", prevResult=RESULT).status == 0
    assert fake.calls[-1][1] == "DEL" and fake.calls[-1][2]["ipam"] == cfg["ipam"]
    assert fake.calls[-1][2]["prevResult"] == RESULT
    assert not (node["data"] / "c1").exists()


def test_failed_add_keeps_the_delegates_code_and_removes_the_state(node: dict[str, Any]) -> None:
    node["env_file"].write_text(ENV_TEXT)
    fake = FakeDelegate(1, b'{"cniVersion": "1.1.0", "code": 11, "msg": "lock held"}')
    outcome = call(node, fake, "ADD")
    assert (outcome.status, json.loads(outcome.stdout)["code"], json.loads(outcome.stdout)["msg"]) == \
        (1, 11, "lock held")
    assert not (node["data"] / "c1").exists()


def test_missing_delegate_is_code_7(node: dict[str, Any]) -> None:
    node["env_file"].write_text(ENV_TEXT)
    outcome = call(node, FakeDelegate(), "ADD", delegate={"type": "macvlan"})
    assert json.loads(outcome.stdout)["code"] == 7
    assert "failed to find delegate plugin 'macvlan'" in json.loads(outcome.stdout)["msg"]


def test_gc_delegates_and_drops_state_of_invalid_containers(node: dict[str, Any]) -> None:
    node["env_file"].write_text(ENV_TEXT)
    fake = FakeDelegate()
    assert call(node, fake, "ADD").status == 0
    (node["data"] / "gone").write_text("{}")
    outcome = call(node, fake, "GC", **{"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "eth0"}]})
    assert outcome.status == 0, outcome
    assert fake.calls[-1][1] == "GC"
    assert fake.calls[-1][2]["cni.dev/valid-attachments"] == [{"containerID": "c1", "ifname": "eth0"}]
    assert sorted(p.name for p in node["data"].iterdir()) == ["c1"]
