"""DEL and GC read the config leniently (bridge.config.parse_teardown), ADD strictly (bridge.config.parse).

The table of strict ADD checks lives in tests/support/bridge_strict_checks.py (the e2e test runs it against the Go
plugin); here: each case is refused by the ADD read, accepted by the teardown read, and the table misses no
`raise` and no strict getter of the ADD read.
"""
from __future__ import annotations

import ast
import inspect
import json
import traceback
from typing import Any

import pytest

from bridge import config
from common.config import base_netconf, parse_cni_args
from common.errors import CniError
from support.bridge_strict_checks import CHECKS, StrictCheck
from support.bridge_strict_checks import config as make

BRIDGE_CHECKS = [c for c in CHECKS if c.strict_in == "bridge"]
# The functions of the ADD read whose refusals the table must cover.
ADD_READ = (config.parse, config.bridge_name, config.vlan_trunk, config.container_mac)
GETTERS = {"boolean", "integer", "string", "obj", "objects", "strings"}


def add_read(check: StrictCheck) -> config.BridgeConf:
    """What plugin.load does for ADD, CHECK and STATUS."""
    netconf = base_netconf(config_of(check))
    return config.parse(netconf, parse_cni_args(check.cni_args, config.KNOWN_CNI_ARGS))


def config_of(check: StrictCheck) -> dict[str, Any]:
    return make(check, data_dir="/nonexistent")


@pytest.mark.parametrize("check", BRIDGE_CHECKS, ids=[c.id for c in BRIDGE_CHECKS])
def test_add_refuses_and_teardown_accepts(check: StrictCheck) -> None:
    with pytest.raises(CniError) as refused:
        add_read(check)
    assert refused.value.code == check.code, refused.value.msg
    teardown = config.parse_teardown(base_netconf(config_of(check)))
    assert teardown.name == "b12strict"
    ipam = config_of(check)["ipam"]
    expected_type = ipam["type"] if isinstance(ipam, dict) and isinstance(ipam["type"], str) else ""
    assert teardown.ipam_type == expected_type
    assert teardown.ip_masq and teardown.macspoofchk   # the base has both; junk values still mean "clean up"


def _raise_lines() -> set[tuple[str, int]]:
    """(function, line) of every `raise` in the ADD read."""
    found = set()
    for func in ADD_READ:
        lines, start = inspect.getsourcelines(func)
        for node in ast.walk(ast.parse("".join(lines))):
            if isinstance(node, ast.Raise):
                found.add((func.__name__, start + node.lineno - 1))
    return found


def _getter_keys() -> set[str]:
    """Keys the ADD read reads with a strict getter: `node.boolean("ipMasq")` and the like."""
    keys = set()
    for func in ADD_READ:
        for node in ast.walk(ast.parse(inspect.getsource(func))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in GETTERS
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                keys.add(node.args[0].value)
    return keys


def test_the_table_covers_every_refusal_of_the_add_read() -> None:
    hit = set()
    for check in BRIDGE_CHECKS:
        try:
            add_read(check)
        except CniError as exc:
            frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == config.__file__]
            if frames:
                hit.add((frames[-1].name, frames[-1].lineno))
    assert _raise_lines() - hit == set(), "a `raise` of the ADD read has no case in support/bridge_strict_checks.py"
    in_table = {key for check in BRIDGE_CHECKS for key in _keys_in(check.keys)} | {"MAC"}
    assert _getter_keys() - in_table == set(), "a strictly read key has no case in support/bridge_strict_checks.py"


def _keys_in(value: Any) -> set[str]:
    text = json.dumps(value)
    return {key for key in _getter_keys() | {"ipam", "dns"} if f'"{key}"' in text}


@pytest.mark.parametrize("junk", ["x", "", -1, 1.5, 0, [], [1], {}, {"a": 1}, True, False, None])
def test_teardown_read_refuses_no_value_of_any_key(junk: Any) -> None:
    keys = _getter_keys() | {"ipam", "dns", "vlanTrunk", "runtimeConfig", "args"}
    for key in sorted(keys):
        data = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", key: junk,
                "ipam": junk if key == "ipam" else {"type": "host-local", "type2": junk}}
        conf = config.parse_teardown(base_netconf(data))
        assert conf.ip_masq == (key == "ipMasq" and junk is not None and junk is not False)
        assert conf.macspoofchk == (key == "macspoofchk" and junk is not None and junk is not False)


@pytest.mark.parametrize(("ipam", "expected"), [
    ({"type": "host-local"}, "host-local"), ({"TYPE": "dhcp"}, "dhcp"), ({"type": 7}, ""), ({}, ""), ("x", ""),
    (None, ""), ({"type": None}, ""),
], ids=["host-local", "key-case-as-go", "type-not-a-string", "no-type", "not-an-object", "null", "type-null"])
def test_teardown_ipam_type(ipam: Any, expected: str) -> None:
    data = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipam": ipam}
    conf = config.parse_teardown(base_netconf(data))
    assert (conf.ipam_type, conf.layer3) == (expected, bool(expected))


@pytest.mark.parametrize(("value", "expected"), [(True, True), (False, False), (None, False), (0, True),
                                                 ("false", True)])
def test_teardown_flags_mean_clean_up_unless_absent_or_false(value: Any, expected: bool) -> None:
    data = {"cniVersion": "1.0.0", "name": "n", "type": "bridge", "ipMasq": value, "macspoofchk": value}
    conf = config.parse_teardown(base_netconf(data))
    assert (conf.ip_masq, conf.macspoofchk) == (expected, expected)
