"""The protocol around the handlers, with a toy plugin: env validation, decoding, version gates, output shape.

The cases every plugin must answer alike are data (tests/support/protocol_cases.py): `test_protocol_case` runs
them here, in-process, and tests/e2e/test_executables.py runs the same table against every shipped executable.
What stays below depends on the toy plugin's handlers.
"""
from __future__ import annotations

import ipaddress
import json

import pytest

from common import ip
from common.errors import CniError, Code
from common.skel import Plugin, Request
from common.types import IPConfig, Result
from support import Caller, in_process
from support.protocol_cases import CASES, SPEC_VERSIONS, check_answer, check_result_shape

CONF = {"cniVersion": "1.0.0", "name": "net1", "type": "demo"}


def add(request: Request) -> Result:
    return Result(ips=(IPConfig(address=ip.ip_interface("10.0.0.2/24"), gateway=ip.ip_address("10.0.0.1")),))


def boom(request: Request) -> None:
    raise CniError(Code.TRY_AGAIN_LATER, "busy")


PLUGIN = Plugin(name="demo", handlers={"ADD": add, "DEL": lambda r: None, "CHECK": lambda r: None,
                                       "GC": boom})
# The container variables (for every verb), CNI_PATH, no PATH and no CNI_ARGS
demo = Caller(PLUGIN, netns="/run/netns/x", cni_path="/opt/cni/bin", path=None, CNI_ARGS=None)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_protocol_case(case):
    """The shared table (tests/support/protocol_cases.py); the same cases run against every executable."""
    out = in_process(PLUGIN, case.env, case.stdin)
    check_answer(case, PLUGIN.name, out.status, out.stdout, out.stderr)


def test_add_renders_result_at_config_version():
    out = demo("ADD", {**CONF, "cniVersion": "0.4.0"})
    assert out.status == 0
    assert json.loads(out.stdout) == {"cniVersion": "0.4.0", "dns": {},
                                      "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"}]}


@pytest.mark.parametrize("version", SPEC_VERSIONS)
def test_result_has_the_shape_of_every_version(version):
    out = demo("ADD", {**CONF, "cniVersion": version})
    assert out.status == 0, out
    assert check_result_shape(json.loads(out.stdout), version) == [ipaddress.ip_interface("10.0.0.2/24")]


def test_del_prints_nothing():
    assert demo("DEL", CONF).stdout == ""


def test_del_does_not_need_netns():
    assert demo("DEL", CONF, CNI_NETNS=None).status == 0


def test_missing_cni_version_means_0_1_0():
    out = demo("ADD", {"name": "n", "type": "demo"})
    assert json.loads(out.stdout)["cniVersion"] == "0.1.0"


@pytest.mark.parametrize("command, conf_version", [("CHECK", "0.4.0"), ("CHECK", "1.1.0"), ("GC", "1.1.0"),
                                                   ("STATUS", "1.1.0")])
def test_verbs_at_their_minimum_version_reach_the_handler(command, conf_version):
    """(Below the minimum they are refused with code 1: the table's CHECK-at-*, GC-at-*, STATUS-at-* cases.)"""
    out = demo(command, {**CONF, "cniVersion": conf_version})
    assert out.status == (1 if command == "GC" else 0), out   # the toy's GC handler answers code 11
    if command == "GC":
        assert json.loads(out.stdout)["code"] == 11


def test_verbs_without_handler_succeed_silently():
    out = demo("STATUS", {**CONF, "cniVersion": "1.1.0"})
    assert (out.status, out.stdout) == (0, "")


def test_handler_error_is_spec_json_on_stdout():
    out = demo("GC", {**CONF, "cniVersion": "1.1.0"}, cni_path="/x", container=False)
    assert json.loads(out.stdout) == {"cniVersion": "1.1.0", "code": 11, "msg": "busy"}
    assert out.stderr == "demo: busy\n"


def test_own_netns_is_refused_unless_overridden():
    def same(path: str) -> bool:
        return True
    assert in_process(PLUGIN, demo.env("ADD"), CONF, same_netns=same).code == 8
    out = in_process(PLUGIN, demo.env("ADD", CNI_NETNS_OVERRIDE="true"), CONF, same_netns=same)
    assert out.status == 0
