"""IPAM delegation (common.ipam): finding the plugin on CNI_PATH, the environment and stdin it gets, its result
and its errors."""
from __future__ import annotations

import json
import stat

import pytest

from common import ipam
from common.errors import CniError
from common.exec import Completed
from support import cni_env, request

CONF = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": {"type": "fake-ipam"}}


def add_request(tmp_path, conf=CONF):
    return request("ADD", conf, cid="c1", netns="/run/netns/x", ifname="eth0", path=[tmp_path],
                   env=cni_env("ADD", cni_path=tmp_path, path=None, container=False, KEEP="1"))


@pytest.fixture
def fake_ipam(tmp_path):
    binary = tmp_path / "fake-ipam"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(binary.stat().st_mode | stat.S_IEXEC)
    return binary


def test_delegate_passes_env_and_stdin_and_parses_result(tmp_path, fake_ipam):
    seen = {}

    def invoke(binary, env, stdin):
        seen.update(argv=[binary], input=stdin, env=env)
        return Completed(0, json.dumps({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}).encode(), b"")

    req = add_request(tmp_path)
    res = ipam.delegate("DEL", req, invoke=invoke)
    assert res is None and seen["env"]["CNI_COMMAND"] == "DEL" and seen["env"]["KEEP"] == "1"
    res = ipam.delegate("ADD", req, invoke=invoke)
    assert seen["argv"] == [str(fake_ipam)] and seen["input"] == req.stdin
    assert [str(i.address) for i in res.ips] == ["10.0.0.2/24"]


def test_delegate_keeps_the_delegates_error_code(tmp_path, fake_ipam):
    def invoke(binary, env, stdin):
        return Completed(1, json.dumps({"code": 11, "msg": "locked", "details": "x"}).encode(), b"")

    with pytest.raises(CniError) as info:
        ipam.delegate("ADD", add_request(tmp_path), invoke=invoke)
    assert (info.value.code, info.value.msg, info.value.details) == (11, "locked", "x")


def test_delegate_without_json_error_reports_output(tmp_path, fake_ipam):
    def invoke(binary, env, stdin):
        return Completed(2, b"", b"segfault")

    with pytest.raises(CniError) as info:
        ipam.delegate("ADD", add_request(tmp_path), invoke=invoke)
    assert "IPAM plugin 'fake-ipam' ADD failed (exit 2): segfault" in info.value.msg


def test_missing_ipam_binary_names_type_and_path(tmp_path):
    with pytest.raises(CniError) as info:
        ipam.delegate("ADD", add_request(tmp_path))
    assert info.value.msg == f"failed to find IPAM plugin 'fake-ipam' in CNI_PATH {tmp_path}"


@pytest.mark.parametrize("name", ["../bin/sh", "a/b", ".."])
def test_ipam_type_cannot_be_a_path(tmp_path, name):
    with pytest.raises(CniError) as info:
        ipam.find_plugin(name, (str(tmp_path),))
    assert info.value.code == 7


def test_real_delegate_process(tmp_path):
    script = tmp_path / "echo-ipam"
    script.write_text('#!/bin/sh\necho \'{"cniVersion":"1.0.0","ips":[{"address":"10.9.0.2/16"}]}\'\n')
    script.chmod(0o755)
    conf = {**CONF, "ipam": {"type": "echo-ipam"}}
    res = ipam.delegate("ADD", add_request(tmp_path, conf))
    assert str(res.ips[0].address) == "10.9.0.2/16"
