"""The steps DEL, GC and STATUS take, with their effects faked: removals that converge under a race, GC/STATUS to
an IPAM plugin that predates them, a CNI_NETNS that is no namespace any more, and which host-local runs
in-process (common.ipam.is_bundled). The executables are driven by tests/e2e/test_bridge_swap.py."""
from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from hashlib import sha512
from pathlib import Path
from typing import Any

import pytest

from bridge import container, plugin, rules
from bridge.host import Host
from common import ipam, netns
from common.errors import CniError, Code, TryAgainError
from common.exec import Completed, Programs
from common.skel import Request
from support import request

# --- removals converge ---------------------------------------------------------------------------------------

def converge(states: list[str], failures: list[Exception | None]) -> tuple[int, list[str]]:
    """Runs rules._converge over scripted reads and applies: (reads made, scripts applied)."""
    reads, applied = [0], []

    def read() -> str:
        reads[0] += 1
        return states.pop(0)

    def apply(script: str) -> None:
        applied.append(script)
        failure = failures.pop(0)
        if failure:
            raise failure

    rules._converge(read, apply)
    return reads[0], applied


def test_a_vanished_item_is_dropped_by_the_next_read() -> None:
    vanished = CniError(Code.INTERNAL, "iptables-restore: Chain 'CNI-a' does not exist")
    assert converge(["-X CNI-a\n-X CNI-b", "-X CNI-b"], [vanished, None]) == (2, ["-X CNI-a\n-X CNI-b", "-X CNI-b"])


def test_nothing_left_after_the_race_is_success() -> None:
    assert converge(["-X CNI-a", ""], [CniError(Code.INTERNAL, "gone")]) == (2, ["-X CNI-a"])


def test_nothing_to_remove_runs_nothing() -> None:
    assert converge([""], []) == (1, [])


def test_a_lasting_failure_is_raised_after_the_last_read() -> None:
    states = ["-X CNI-a"] * rules.RACE_ATTEMPTS
    with pytest.raises(CniError, match="still failing"):
        converge(states, [CniError(Code.INTERNAL, "still failing")] * rules.RACE_ATTEMPTS)


def test_a_held_lock_is_not_retried() -> None:
    with pytest.raises(TryAgainError):
        converge(["-X CNI-a", "-X CNI-a"], [TryAgainError("xtables lock"), None])


@pytest.mark.parametrize(("error", "raised"), [
    (TryAgainError("xtables lock held"), True),
    (CniError(Code.TRY_AGAIN_LATER, "iptables-save did not finish within 60 s"), True),
    (CniError(Code.INTERNAL, "program 'iptables-save' not found"), False),
    (CniError(Code.INTERNAL, "can't initialize ip6tables table `nat'"), False),
], ids=["lock", "timeout", "missing-program", "no-nat-table"])
def test_an_unusable_iptables_is_skipped_but_a_busy_one_is_an_error(error: CniError, raised: bool) -> None:
    def failing(argv: Any, **kwargs: Any) -> Completed:
        raise error
    masquerade = rules.Rules(Programs.faked(failing))
    if raised:
        with pytest.raises(CniError) as exc:
            masquerade._saves([4], ["POSTROUTING"])
        assert exc.value.code == Code.TRY_AGAIN_LATER
    else:
        assert masquerade._saves([4], ["POSTROUTING"]) is None


# --- CNI_NETNS that is no namespace any more ------------------------------------------------------------------

@pytest.mark.parametrize(("error", "raised"), [
    (netns.NotANetns("/run/netns/x"), False),
    (CniError(Code.INTERNAL, "cannot open network namespace '/run/netns/x': Permission denied"), True),
], ids=["not-a-netns", "unreadable"])
def test_delete_interface_treats_a_non_namespace_as_gone(error: CniError, raised: bool) -> None:
    def open_in(path: str) -> Any:
        raise error
    if raised:
        with pytest.raises(CniError):
            container.delete_interface("/run/netns/x", "eth0", open_pod=open_in)
    else:
        container.delete_interface("/run/netns/x", "eth0", open_pod=open_in)


# --- GC and STATUS to an IPAM plugin that predates them ---------------------------------------------------------

def gc_request(tmp_path: Path, command: str = "GC", version: str = "1.1.0") -> Request:
    """`command` of a bridge whose IPAM is a host-local in tmp_path (GC and STATUS: no container variables)."""
    binary = tmp_path / "host-local"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    data = {"cniVersion": version, "name": "n", "type": "bridge", "ipam": {"type": "host-local"}}
    return request(command, data, path=[tmp_path], stdin=b"{}")


@pytest.mark.parametrize(("supported", "raised"), [
    (("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0"), False),   # Go's host-local 1.1.1
    (("0.4.0", "1.0.0", "1.1.0"), True),                               # it knows GC: its error stands
    (None, True),                                                      # VERSION unreadable: so does the error
], ids=["predates-1.1.0", "speaks-1.1.0", "version-unreadable"])
def test_a_gc_or_status_failure_counts_only_from_a_plugin_that_has_the_verb(
        supported: tuple[str, ...] | None, raised: bool, tmp_path: Path) -> None:
    def invoke(binary: str, env: Any, stdin: bytes) -> Completed:
        if env["CNI_COMMAND"] == "VERSION":
            return Completed(0, json.dumps({"supportedVersions": supported}).encode(), b"") if supported else \
                Completed(2, b"", b"crashed")
        return Completed(1, b'{"code": 3, "msg": "missing containerID"}', b"")
    for command in ("GC", "STATUS"):
        if raised:
            with pytest.raises(CniError, match="missing containerID"):
                plugin._delegate_optional(command, gc_request(tmp_path, command), Host(invoke=invoke))
        else:
            plugin._delegate_optional(command, gc_request(tmp_path, command), Host(invoke=invoke))


@pytest.mark.parametrize(("done", "expected"), [
    (Completed(0, b'{"cniVersion":"1.0.0","supportedVersions":["0.4.0","1.0.0"]}', b""), ("0.4.0", "1.0.0")),
    (Completed(0, b'{"supportedVersions":["1.1.0",7]}', b""), ("1.1.0",)),
    (Completed(1, b'{"code":4,"msg":"unknown CNI_COMMAND"}', b""), None),
    (Completed(0, b"not json", b""), None),
    (Completed(0, b"[]", b""), None),
    (Completed(0, b'{"supportedVersions":"1.0.0"}', b""), None),
], ids=["go-1.1.1", "junk-entries-dropped", "fails", "undecodable", "not-an-object", "not-a-list"])
def test_supported_versions(done: Completed, expected: tuple[str, ...] | None, tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    def invoke(binary: str, env: Any, stdin: bytes) -> Completed:
        calls.append({"argv": [binary], "env": env})
        return done
    assert ipam.supported_versions(gc_request(tmp_path), invoke=invoke) == expected
    assert calls[0]["env"]["CNI_COMMAND"] == "VERSION" and calls[0]["argv"] == [str(tmp_path / "host-local")]


# --- which host-local runs in-process ----------------------------------------------------------------------------

@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake frozen install: bin/{bridge,host-local} and bin/.pycni/executables.sha512."""
    bin_dir = tmp_path / "bin"
    (bin_dir / ".pycni").mkdir(parents=True)
    for name in ("bridge", "host-local"):
        (bin_dir / name).write_bytes(f"pycni {name} executable".encode())
    (bin_dir / ".pycni" / ipam.MANIFEST).write_text("".join(
        f"{sha512((bin_dir / name).read_bytes()).hexdigest()}  {name}\n" for name in ("bridge", "host-local")))
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(bin_dir / "bridge"))
    monkeypatch.setattr(sys, "_MEIPASS", str(bin_dir / ".pycni"), raising=False)
    return bin_dir


def test_our_own_host_local_is_bundled(install: Path) -> None:
    assert ipam.is_bundled(str(install / "host-local"))


def test_a_link_to_it_is_bundled(install: Path, tmp_path: Path) -> None:
    os.symlink(install / "host-local", tmp_path / "host-local")
    assert ipam.is_bundled(str(tmp_path / "host-local"))


def renamed_over(install: Path) -> None:
    (install / "new").write_bytes(b"\x7fELF go")
    os.rename(install / "new", install / "host-local")


CHANGES: dict[str, Callable[[Path], object]] = {
    "written-over-in-place": lambda d: (d / "host-local").write_bytes(b"#!/bin/sh\nexec /usr/lib/cni/host-local\n"),
    "renamed-over": renamed_over,
    "manifest-missing": lambda d: (d / ".pycni" / ipam.MANIFEST).unlink(),
    "manifest-garbage": lambda d: (d / ".pycni" / ipam.MANIFEST).write_bytes(b"\xff\xfe nonsense"),
    "manifest-without-it": lambda d: (d / ".pycni" / ipam.MANIFEST).write_text("00  bridge\n"),
}


@pytest.mark.parametrize("change", CHANGES)
def test_anything_else_is_execd(change: str, install: Path) -> None:
    CHANGES[change](install)
    assert not ipam.is_bundled(str(install / "host-local"))


def test_a_byte_identical_copy_elsewhere_is_execd(install: Path, tmp_path: Path) -> None:
    """It would load the runtime next to it, which need not be ours."""
    (tmp_path / "host-local").write_bytes((install / "host-local").read_bytes())
    assert not ipam.is_bundled(str(tmp_path / "host-local"))


def test_from_the_source_tree_nothing_is_bundled(install: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "frozen", False)
    assert not ipam.is_bundled(str(install / "host-local"))
