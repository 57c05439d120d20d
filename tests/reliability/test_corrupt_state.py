"""host-local over damaged state: ADD and DEL keep working or fail with a clear spec error, never a traceback,
never an address handed out twice. Runs in-process through common.skel.dispatch with the real PLUGIN (dispatch
lets any non-CniError exception escape, so a traceback fails the test), plus a few runs of the executable."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from host_local.plugin import PLUGIN
from support import NETWORK, Caller, cni_env, host_local_conf, ok, run, source_argv, spec_error

SMALL = "10.77.0.0/28"      # 13 allocatable addresses (.2-.14; .1 is the gateway)
hl = Caller(PLUGIN, netns="/run/netns/none")


def add(conf: dict[str, Any], cid: str) -> str:
    return ok(hl("ADD", conf, cid=cid))["ips"][0]["address"].split("/")[0]


def deleted(conf: dict[str, Any], cid: str) -> None:
    ok(hl("DEL", conf, cid=cid))


def fill(conf: dict[str, Any], net: Path, taken: set[str]) -> list[str]:
    """ADD until the range is exhausted: every address is new, not `taken`, and its file names its owner."""
    got = []
    for i in range(20):
        out = hl("ADD", conf, cid=f"fill{i}")
        if out.status != 0:
            assert "no IP addresses available" in spec_error(out)["msg"]
            break
        ip = json.loads(out.stdout)["ips"][0]["address"].split("/")[0]
        assert ip not in got and ip not in taken, (ip, got, taken)
        assert (net / ip).read_bytes() == f"fill{i}\r\neth0".encode()
        got.append(ip)
    return got


@pytest.fixture
def conf(tmp_path: Path) -> dict[str, Any]:
    return host_local_conf(tmp_path / "data", subnet=SMALL)


@pytest.fixture
def net(tmp_path: Path) -> Path:
    return tmp_path / "data" / NETWORK


def test_empty_last_reserved_continues_after_the_highest_allocation(conf: dict[str, Any], net: Path) -> None:
    assert [add(conf, f"c{i}") for i in range(3)] == ["10.77.0.2", "10.77.0.3", "10.77.0.4"]
    deleted(conf, "c0")
    (net / "last_reserved_ip.0").write_bytes(b"")
    # the reference restarts at the range start and hands the just-freed .2 out again (measurements.md)
    assert add(conf, "c3") == "10.77.0.5"
    (net / "last_reserved_ip.0").write_bytes(b"garbage\x00\xff")
    assert add(conf, "c4") == "10.77.0.6"
    fill(conf, net, {"10.77.0.3", "10.77.0.4", "10.77.0.5", "10.77.0.6"})


def test_garbage_allocation_file_is_never_handed_out_and_gc_releases_it(conf: dict[str, Any], net: Path) -> None:
    add(conf, "c0")
    (net / "10.77.0.3").write_bytes(b"\x00\xff\xfe garbage \r\n\r\n" * 50)
    (net / "10.77.0.4").write_bytes(b"")            # truncated to nothing
    assert add(conf, "c1") == "10.77.0.5"
    deleted(conf, "c1")
    deleted(conf, "c0")
    assert (net / "10.77.0.3").exists() and (net / "10.77.0.4").exists()   # DEL frees only the caller's own
    got = fill(conf, net, {"10.77.0.3", "10.77.0.4"})
    assert len(got) == 11
    # GC knows every valid attachment, so a file owned by nobody valid is released (the reference never does)
    gc = dict(conf, cniVersion="1.1.0", **{"cni.dev/valid-attachments": [
        {"containerID": f"fill{i}", "ifname": "eth0"} for i in range(len(got))]})
    ok(hl("GC", gc, cni_path="/x", path=None, container=False))
    assert not (net / "10.77.0.3").exists()
    assert (net / "10.77.0.4").exists()     # an empty file names no owner: kept, as an unknown holder


@pytest.mark.parametrize("stray", ["file", "dir", "symlink", "fifo", "temp-dir", "last-dir", "lock-dir"])
def test_stray_entries_in_the_network_directory(conf: dict[str, Any], net: Path, tmp_path: Path,
                                                stray: str) -> None:
    add(conf, "c0")                                 # 10.77.0.2, creates the directory
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    if stray == "file":
        (net / "notes.txt").write_text("x")
        (net / "10.77.0.300").write_text("c9\r\neth0")
        (net / "10.77.0.03").write_text("c9\r\neth0")
    elif stray == "dir":
        (net / "10.77.0.3").mkdir()
    elif stray == "symlink":
        (net / "10.77.0.3").symlink_to(victim)
    elif stray == "fifo":
        os.mkfifo(net / "10.77.0.3")
    elif stray == "temp-dir":
        (net / ".pycni-tmp.1").mkdir()
    elif stray == "last-dir":
        os.unlink(net / "last_reserved_ip.0")
        (net / "last_reserved_ip.0").mkdir()
    elif stray == "lock-dir":
        os.unlink(net / "lock")
        (net / "lock").mkdir()
    out = hl("ADD", conf, cid="c1")
    if stray == "lock-dir":     # nowhere to lock: a clear I/O error naming the lock, nothing allocated
        error = spec_error(out, 5)
        assert "lock" in error["msg"], error
        assert spec_error(hl("DEL", conf, cid="c0"), 5)
        return
    assert out.status == 0, out.stdout
    ip = json.loads(out.stdout)["ips"][0]["address"].split("/")[0]
    squatted = {"10.77.0.3"} if stray in ("dir", "symlink", "fifo") else set()
    assert ip != "10.77.0.2" and ip not in squatted, ip
    deleted(conf, "c1")
    deleted(conf, "c0")
    fill(conf, net, squatted)
    assert victim.read_text() == "untouched"


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("not a directory")
    conf = host_local_conf(tmp_path / "data")
    for command in ("ADD", "DEL", "CHECK"):
        error = spec_error(hl(command, conf, cid="c0"), 5)
        assert str(tmp_path / "data") in error["msg"], error


def test_unreadable_data_dir_as_unprivileged_user(tmp_path: Path) -> None:
    """The source plugin run as nobody over a root-only dataDir: code 5 naming the directory."""
    if os.geteuid() != 0:
        pytest.skip("needs root to switch to nobody")
    data = tmp_path / "data"
    (data / NETWORK).mkdir(parents=True)
    data.chmod(0o700)
    tmp_path.chmod(0o755)
    conf = host_local_conf(data)
    for command in ("ADD", "DEL"):
        argv = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "python3",
                *source_argv("host-local")[1:]]
        error = spec_error(run(argv, cni_env(command, cid="c0", netns="/run/netns/none"), conf), 5)
        assert "Permission denied" in error["msg"] and str(data) in error["msg"], error


@pytest.mark.parametrize("left", ["lying", "symlink", "directory"])
def test_owner_cache_of_an_earlier_version_is_never_trusted(conf: dict[str, Any], net: Path, tmp_path: Path,
                                                             left: str) -> None:
    """Earlier pycni kept `<dataDir>/.pycni-owners.<net>`; now every operation reads the files themselves and
    removes that file (a directory of that name is only ignored), so the dataDir is what the reference keeps."""
    import marshal
    for i in range(3):
        add(conf, f"c{i}")
    cache = net.parent / f".pycni-owners.{NETWORK}"
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    if left == "lying":     # valid for the old reader (its stamp matches), with c0 owning c1's address too
        st = os.stat(net)
        names = {p.name: p.stat().st_ino for p in net.iterdir()}
        owners = {"10.77.0.2": "c0\r\neth0", "10.77.0.3": "c0\r\neth0", "10.77.0.4": "c2\r\neth0"}
        cache.write_bytes(marshal.dumps({"format": 3, "stamp": (st.st_dev, st.st_ino, st.st_mtime_ns),
                                         "listing": names, "owners": owners}))
    elif left == "symlink":
        cache.symlink_to(victim)
    else:
        cache.mkdir()
    deleted(conf, "c0")
    assert sorted(p.name for p in net.iterdir()) == ["10.77.0.3", "10.77.0.4", "last_reserved_ip.0", "lock"]
    assert (net / "10.77.0.3").read_bytes() == b"c1\r\neth0"
    assert cache.is_dir() if left == "directory" else not os.path.lexists(cache)
    assert victim.read_text() == "untouched"
    fill(conf, net, {"10.77.0.3", "10.77.0.4"})


def test_executable_over_damaged_state_answers_spec_json(dist_bin: Path, tmp_path: Path) -> None:
    """The same damage through the built host-local: a result or a spec error, never a traceback."""
    data = tmp_path / "data"
    conf = host_local_conf(data, subnet=SMALL)

    built = Caller([dist_bin / "host-local"], netns="/run/netns/none")
    assert built("ADD", conf, cid="c0").status == 0
    net = data / NETWORK
    os.unlink(net / "last_reserved_ip.0")
    (net / "last_reserved_ip.0").mkdir()
    (net / "10.77.0.3").write_bytes(b"\xff\x00")
    (net / ".pycni-tmp.7").mkdir()
    assert ok(built("ADD", conf, cid="c1"))["ips"][0]["address"] == "10.77.0.4/28"
    assert built("DEL", conf, cid="c1").status == 0 and built("DEL", conf, cid="c0").status == 0
    os.rmdir(net / "last_reserved_ip.0")
    os.rmdir(net / "lock") if (net / "lock").is_dir() else os.unlink(net / "lock")
    (net / "lock").mkdir()
    spec_error(built("ADD", conf, cid="c2"), 5)
