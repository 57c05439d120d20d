"""The loopback verbs through common.skel.dispatch, on the paths that never reach a namespace (no root needed).

Every CNI_NETNS here is a path that does not exist (or is empty), so nothing can touch a network namespace; the
verbs on a real one are in tests/integration/test_loopback.py.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from loopback.plugin import PLUGIN
from support import Answer, Caller, error, in_process
from support import loopback_conf as conf
from support.protocol_cases import SPEC_VERSIONS as VERSIONS

loopback = Caller(PLUGIN, ifname="lo", cni_path="/opt/cni/bin")


@pytest.fixture
def gone(tmp_path: Path) -> str:
    """A namespace path that does not exist (and must never be created)."""
    return str(tmp_path / "netns-gone")


@pytest.mark.parametrize("version", VERSIONS)
def test_del_without_netns_succeeds_silently(version: str) -> None:
    assert loopback("DEL", conf(version), netns="") == Answer(0)


@pytest.mark.parametrize("version", VERSIONS)
def test_del_with_the_netns_gone_succeeds_silently(gone: str, version: str) -> None:
    assert loopback("DEL", conf(version), netns=gone) == Answer(0)
    assert not os.path.exists(gone)


def test_del_does_not_read_prev_result(gone: str) -> None:
    """As the reference: DEL is best effort and acts on lo only, a broken prevResult does not stop it."""
    assert loopback("DEL", conf(prevResult={"ips": [{"address": "nope"}]}), netns=gone) == Answer(0)


@pytest.mark.parametrize("command, version", [("ADD", v) for v in VERSIONS] + [("CHECK", "0.4.0"),
                                                                               ("CHECK", "1.0.0"),
                                                                               ("CHECK", "1.1.0")])
def test_add_and_check_with_the_netns_gone_are_code_3(gone: str, command: str, version: str) -> None:
    """Spec code 3 ("container unknown or does not exist"); the reference answers 999 "failed to Statfs"."""
    assert error(loopback(command, conf(version), netns=gone)) == (3, f"network namespace {gone!r} does not exist")
    assert not os.path.exists(gone)


def test_check_below_0_4_0_is_refused(gone: str) -> None:
    code, msg = error(loopback("CHECK", conf("0.3.1"), netns=gone))
    assert code == 1 and "does not allow CHECK" in msg


@pytest.mark.parametrize("prev, text", [
    ({"ips": [{"address": "nope"}]}, "invalid CIDR 'nope' at prevResult.ips[0].address"),
    ({"ips": [{"interface": 0}]}, "missing required key prevResult.ips[0].address"),
    ("x", "expected an object at prevResult, got string 'x'"),
])
def test_bad_prev_result_is_code_7_before_the_netns_is_opened(gone: str, prev: Any, text: str) -> None:
    """Parsed first, as the reference does: the config error wins over the missing namespace (code 3)."""
    code, msg = error(loopback("ADD", conf(prevResult=prev), netns=gone))
    assert (code, msg[:len(text)]) == (7, text), msg


@pytest.mark.parametrize("command", ["GC", "STATUS"])
def test_gc_and_status_succeed_at_1_1_0(command: str) -> None:
    """Loopback keeps no state: nothing to collect, always able to serve ADD."""
    valid = {"cni.dev/valid-attachments": [{"containerID": "c1", "ifname": "lo"}]}
    assert loopback(command, conf("1.1.0", **valid), netns="") == Answer(0)
    assert loopback(command, conf("1.1.0"), netns="") == Answer(0)


@pytest.mark.parametrize("command", ["GC", "STATUS"])
@pytest.mark.parametrize("version", VERSIONS[:-1])
def test_gc_and_status_need_1_1_0(command: str, version: str) -> None:
    code, msg = error(loopback(command, conf(version), netns=""))
    assert code == 1 and f"does not allow {command}" in msg


def test_ifname_is_still_validated(gone: str) -> None:
    """CNI_IFNAME is ignored, but libcni's skel validates it for every plugin, so do we."""
    code, msg = error(loopback("ADD", conf(), netns=gone, CNI_IFNAME="a/b"))
    assert code == 4 and msg.startswith("invalid CNI_IFNAME 'a/b'")


def test_cni_args_and_unknown_keys_are_ignored(gone: str) -> None:
    """Nothing but cniVersion, name, type and prevResult is read: the outcome is the missing netns (code 3)."""
    outcome = loopback("ADD", conf(ipam={"type": "host-local"}, runtimeConfig={"mac": 5}), netns=gone,
                       CNI_ARGS="FOO=bar;x")
    assert error(outcome)[0] == 3


def test_about_names_the_plugin() -> None:
    outcome = in_process(PLUGIN, {}, b"")
    assert outcome.status == 0 and outcome.stderr.startswith("CNI loopback plugin (pycni)")
