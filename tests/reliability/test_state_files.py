"""State files: modes as the reference (allocation and last_reserved_ip files 0600, the network directory 0755),
whole files via a temp file in the same directory that is linked/renamed into place (checked with strace), and no
symlink planted in dataDir is ever followed."""
from __future__ import annotations

import re
import shutil
import stat
from pathlib import Path

import pytest

from support import NETWORK, Answer, cni_env, host_local_conf, run

pytestmark = pytest.mark.e2e


def host_local(dist_bin: Path, conf: dict, command: str, cid: str, *, trace: Path | None = None) -> Answer:
    """The built host-local (under strace, writing `trace`, when given)."""
    argv = [str(dist_bin / "host-local")]
    if trace is not None:
        argv = ["strace", "-f", "-o", str(trace), "-e", "trace=openat,linkat,link,renameat,renameat2,rename"] + argv
    return run(argv, cni_env(command, cid=cid, netns="/run/netns/none"), conf)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_modes_and_atomic_writes(dist_bin: Path, tmp_path: Path) -> None:
    if not shutil.which("strace"):
        pytest.skip("needs strace")
    data = tmp_path / "data"
    conf = host_local_conf(data)
    trace = tmp_path / "trace"
    done = host_local(dist_bin, conf, "ADD", "c1", trace=trace)
    assert done.status == 0, done.stdout
    net = data / NETWORK
    assert mode(net) == 0o755
    assert mode(net / "10.77.0.2") == 0o600 and mode(net / "last_reserved_ip.0") == 0o600
    calls = trace.read_text()
    # the final names are never opened for writing: content goes to a temp file in the same directory first
    for name in ("10.77.0.2", "last_reserved_ip.0"):
        assert not re.search(rf'openat\([^)]*"{re.escape(name)}"[^)]*O_(WRONLY|RDWR)', calls), calls
    assert re.search(r'linkat\(\d+, "\.pycni-tmp\.\d+", \d+, "10\.77\.0\.2"', calls), calls
    assert re.search(r'rename(at2?)?\(\d+, "\.pycni-tmp\.\d+", \d+, "last_reserved_ip\.0"', calls), calls
    assert sorted(p.name for p in net.iterdir()) == ["10.77.0.2", "last_reserved_ip.0", "lock"]
    assert [p.name for p in data.iterdir()] == [NETWORK]        # nothing beside the network directory


@pytest.mark.parametrize("planted", ["10.77.0.2", "last_reserved_ip.0", "lock", ".pycni-tmp.1", "..",
                                     "network-dir"])
def test_planted_symlinks_are_not_followed(dist_bin: Path, tmp_path: Path, planted: str) -> None:
    data = tmp_path / "data"
    net = data / NETWORK
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "file").write_text("untouched")
    target = victim / "file"
    conf = host_local_conf(data)
    if planted == "network-dir":
        data.mkdir()
        net.symlink_to(victim, target_is_directory=True)
    else:
        net.mkdir(parents=True)
        if planted == "..":
            conf["ipam"]["dataDir"] = str(data / "link")
            (data / "link").symlink_to(victim, target_is_directory=True)
            net = data / "link" / NETWORK
        else:
            (net / planted).symlink_to(target)
    before = {p.name: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"") for p in victim.iterdir()}
    add = host_local(dist_bin, conf, "ADD", "c1")
    delete = host_local(dist_bin, conf, "DEL", "c1")
    for done in (add, delete):
        assert "Traceback" not in done.stderr
        if done.status != 0:
            error = done.out
            assert type(error["code"]) is int and error["msg"], error
    if planted == "..":     # dataDir itself may be a symlink (the admin's choice): it is used, as the reference
        assert add.status == 0
        return
    if planted in ("lock", "network-dir"):
        assert add.status != 0 and add.code == 5   # refused, clearly
    else:
        assert add.status == 0 and delete.status == 0, (add.stdout, delete.stdout)
        assert add.out["ips"][0]["address"] != "10.77.0.2/24" or planted != "10.77.0.2"
    after = {p.name: (p.stat().st_mode, p.read_bytes() if p.is_file() else b"") for p in victim.iterdir()}
    assert after == before
    assert target.read_text() == "untouched"
