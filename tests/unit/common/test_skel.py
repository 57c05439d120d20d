"""The protocol around the handlers: env validation, decoding, version gates, output shape."""
from __future__ import annotations

import json

import pytest

from common import version as versions
from common.errors import CniError, Code
from common.skel import Plugin, Request, dispatch
from common.types import IPConfig, Result
import ipaddress

CONF = {"cniVersion": "1.0.0", "name": "net1", "type": "demo"}
ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
       "CNI_PATH": "/opt/cni/bin"}


def add(request: Request) -> Result:
    return Result(ips=(IPConfig(address=ipaddress.ip_interface("10.0.0.2/24"),
                                gateway=ipaddress.ip_address("10.0.0.1")),))


def boom(request: Request) -> None:
    raise CniError(Code.TRY_AGAIN_LATER, "busy")


PLUGIN = Plugin(name="demo", handlers={"ADD": add, "DEL": lambda r: None, "CHECK": lambda r: None,
                                       "GC": boom})


def run(env: dict[str, str], conf: object = CONF, plugin: Plugin = PLUGIN):
    stdin = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    return dispatch(plugin, env, lambda: stdin)


def error_of(outcome) -> dict:
    assert outcome.status == 1
    return json.loads(outcome.stdout)


def test_no_command_prints_about_to_stderr():
    out = run({})
    assert out.status == 0 and out.stdout == ""
    assert out.stderr.startswith("CNI demo plugin (pycni)") and "1.1.0" in out.stderr


def test_version_ignores_stdin():
    out = dispatch(PLUGIN, {"CNI_COMMAND": "VERSION"}, lambda: b"not json")
    assert out.status == 0
    assert json.loads(out.stdout) == {"cniVersion": "1.1.0", "supportedVersions": list(versions.SUPPORTED)}


def test_add_renders_result_at_config_version():
    out = run(ENV, {**CONF, "cniVersion": "0.4.0"})
    assert out.status == 0
    assert json.loads(out.stdout) == {"cniVersion": "0.4.0", "dns": {},
                                      "ips": [{"version": "4", "address": "10.0.0.2/24", "gateway": "10.0.0.1"}]}


def test_del_prints_nothing():
    assert run({**ENV, "CNI_COMMAND": "DEL"}).stdout == ""


@pytest.mark.parametrize("env, code, text", [
    ({"CNI_COMMAND": "FROB"}, 4, "unknown CNI_COMMAND 'FROB'"),
    ({**ENV, "CNI_NETNS": ""}, 4, "required environment variables missing for ADD: CNI_NETNS"),
    ({k: v for k, v in ENV.items() if k not in ("CNI_PATH", "CNI_IFNAME")}, 4,
     "required environment variables missing for ADD: CNI_IFNAME, CNI_PATH"),
    ({**ENV, "CNI_CONTAINERID": "-bad"}, 4, "invalid CNI_CONTAINERID '-bad'"),
    ({**ENV, "CNI_CONTAINERID": "a b"}, 4, "invalid CNI_CONTAINERID 'a b'"),
    ({**ENV, "CNI_CONTAINERID": "abc\n"}, 4, "invalid CNI_CONTAINERID 'abc\\n'"),
    ({**ENV, "CNI_IFNAME": "x" * 16}, 4, "invalid CNI_IFNAME 'xxxxxxxxxxxxxxxx': longer than 15 bytes"),
    ({**ENV, "CNI_IFNAME": ".."}, 4, "invalid CNI_IFNAME '..'"),
    ({**ENV, "CNI_IFNAME": "a/b"}, 4, "invalid CNI_IFNAME 'a/b': must not contain '/', ':' or whitespace"),
    ({**ENV, "CNI_IFNAME": "a:b"}, 4, "invalid CNI_IFNAME 'a:b'"),
    ({**ENV, "CNI_IFNAME": "a b"}, 4, "invalid CNI_IFNAME 'a b'"),
    ({"CNI_COMMAND": "GC"}, 4, "required environment variables missing for GC: CNI_PATH"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_environment_errors(env, code, text):
    err = error_of(run(env))
    assert err["code"] == code
    assert err["msg"].startswith(text), err["msg"]


def test_del_does_not_need_netns():
    env = {k: v for k, v in ENV.items() if k != "CNI_NETNS"}
    assert run({**env, "CNI_COMMAND": "DEL"}).status == 0


@pytest.mark.parametrize("conf, code, text", [
    (b"{not json", 6, "failed to decode network configuration"),
    (b"[1, 2]", 6, "failed to decode network configuration: expected a JSON object, got list"),
    (b"[" * 100000, 6, "failed to decode network configuration"),
    ({"cniVersion": "1.0.0"}, 7, "missing network name at name"),
    ({"cniVersion": "1.0.0", "name": "../etc"}, 7, "invalid network name '../etc' at name"),
    ({"cniVersion": "1.0.0", "name": "a/b"}, 7, "invalid network name 'a/b' at name"),
    ({"cniVersion": "1.0.0", "name": "net\n"}, 7, "invalid network name 'net\\n' at name"),
    ({"cniVersion": "1.0.0", "name": "n\u00e9t"}, 7, "invalid network name"),
    ({"cniVersion": "1.0.0", "name": 5}, 7, "expected string at name, got number 5"),
    ({"cniVersion": "9.9.9", "name": "n"}, 1, "incompatible CNI versions: config is '9.9.9'"),
    ({"cniVersion": 1, "name": "n"}, 7, "expected string at cniVersion, got number 1"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_config_errors(conf, code, text):
    err = error_of(run(ENV, conf))
    assert err["code"] == code
    assert err["msg"].startswith(text), err["msg"]


def test_missing_cni_version_means_0_1_0():
    out = run(ENV, {"name": "n", "type": "demo"})
    assert json.loads(out.stdout)["cniVersion"] == "0.1.0"


@pytest.mark.parametrize("command, conf_version, allowed", [
    ("CHECK", "0.3.1", False), ("CHECK", "0.4.0", True), ("GC", "1.0.0", False), ("STATUS", "1.0.0", False),
    ("STATUS", "1.1.0", True),
])
def test_version_gates(command, conf_version, allowed):
    out = run({**ENV, "CNI_COMMAND": command}, {**CONF, "cniVersion": conf_version})
    if allowed:
        assert out.status == 0
    else:
        err = error_of(out)
        assert err["code"] == 1 and f"does not allow {command}" in err["msg"]


def test_verbs_without_handler_succeed_silently():
    out = run({**ENV, "CNI_COMMAND": "STATUS"}, {**CONF, "cniVersion": "1.1.0"})
    assert (out.status, out.stdout) == (0, "")


def test_handler_error_is_spec_json_on_stdout():
    out = run({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, {**CONF, "cniVersion": "1.1.0"})
    assert json.loads(out.stdout) == {"cniVersion": "1.1.0", "code": 11, "msg": "busy"}
    assert out.stderr == "demo: busy\n"


def test_own_netns_is_refused_unless_overridden():
    def same(path: str) -> bool:
        return True
    err = json.loads(dispatch(PLUGIN, ENV, lambda: json.dumps(CONF).encode(), same_netns=same).stdout)
    assert err["code"] == 8
    out = dispatch(PLUGIN, {**ENV, "CNI_NETNS_OVERRIDE": "true"}, lambda: json.dumps(CONF).encode(),
                   same_netns=same)
    assert out.status == 0


def test_oversized_config_is_refused():
    err = error_of(run(ENV, b" " * (17 << 20)))
    assert err["code"] == 6 and "too large" in err["msg"]
