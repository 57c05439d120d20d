"""What host-local meets in place of its files (issue 12, items 9 and 11), through the built executable.

- A FIFO, socket or device where the lock, an allocation, a `last_reserved_ip` hint, the network directory or
  resolvConf should be: a spec error naming the path, or the entry is treated as taken; never a hang in open().
- A full dataDir (no space, no inodes; a small tmpfs in a private mount namespace): code 5 naming the path and
  nothing half-written; once there is room again, the next ADD works.
"""
from __future__ import annotations

import errno
import os
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import (
    NETWORK,
    VALID,
    Answer,
    Netns,
    allocations,
    bridge_conf,
    cni_env,
    gc_conf,
    host_local_conf,
    ok,
    plugin_argv,
    run,
    spec_error,
    veths,
)

HANG = 20       # seconds: far beyond any answer; a plugin still running then is hung
VERBS = ("ADD", "CHECK", "DEL", "GC", "STATUS")


def host_local(dist_bin: Path, command: str, conf: dict[str, Any], cid: str = "c1", *,
               prefix: tuple[str, ...] = ()) -> Answer:
    """The built host-local (behind `prefix`, e.g. nsenter into a mount namespace), answering within 5 s."""
    if command in ("GC", "STATUS"):
        conf = {VALID: [], **conf, "cniVersion": "1.1.0"}
    env = cni_env(command, cid=cid, netns="/run/netns/none", PYCNI_LOCK_TIMEOUT="2")
    start = time.monotonic()
    done = run([*prefix, dist_bin / "host-local"], env, conf, timeout=HANG)
    assert time.monotonic() - start < 5, f"{command} took {time.monotonic() - start:.1f} s"
    return done


def address(done: Answer) -> str:
    (ip,) = ok(done)["ips"]
    return ip["address"].split("/")[0]


# --- not a regular file -------------------------------------------------------------------------------------

def plant(path: Path, kind: str) -> None:
    """Make `path` a FIFO, a socket or a character device (/dev/null's numbers)."""
    if kind == "chardev" and os.geteuid() != 0:
        pytest.skip("mknod of a device needs root")
    types = {"fifo": stat.S_IFIFO, "socket": stat.S_IFSOCK, "chardev": stat.S_IFCHR}
    os.mknod(path, types[kind] | 0o600, os.makedev(1, 3) if kind == "chardev" else 0)


@pytest.mark.parametrize("kind", ["fifo", "socket", "chardev"])
def test_a_lock_that_is_no_regular_file_is_an_io_error_for_every_verb(dist_bin: Path, tmp_path: Path,
                                                                     kind: str) -> None:
    conf = host_local_conf(tmp_path / "data")
    net = tmp_path / "data" / NETWORK
    net.mkdir(parents=True)
    plant(net / "lock", kind)
    for verb in VERBS:
        error = spec_error(host_local(dist_bin, verb, conf), 5)
        assert error["msg"].startswith(f"opening {net}/lock: "), error
        if kind != "socket":        # open() of a socket fails at once (ENXIO); the others are opened
            assert "not a regular file" in error["msg"], error
    assert sorted(p.name for p in net.iterdir()) == ["lock"]


@pytest.mark.parametrize("name", ["10.77.0.2", "last_reserved_ip.0"])
def test_a_fifo_in_place_of_a_state_file_never_blocks(dist_bin: Path, tmp_path: Path, name: str) -> None:
    conf = host_local_conf(tmp_path / "data")
    net = tmp_path / "data" / NETWORK
    net.mkdir(parents=True)
    os.mkfifo(net / name)
    got = address(host_local(dist_bin, "ADD", conf, "c1"))
    assert got == ("10.77.0.3" if name == "10.77.0.2" else "10.77.0.2")     # a FIFO address is taken
    ok(host_local(dist_bin, "CHECK", conf, "c1"))
    ok(host_local(dist_bin, "STATUS", conf))
    ok(host_local(dist_bin, "GC", gc_conf(conf, "c1")))
    assert (net / got).exists()
    ok(host_local(dist_bin, "DEL", conf, "c1"))
    assert not (net / got).exists()
    if name == "10.77.0.2":     # an owner we cannot read is never freed, by DEL or GC
        assert (net / name).is_fifo()


def test_a_network_directory_that_is_a_fifo_is_an_io_error(dist_bin: Path, tmp_path: Path) -> None:
    conf = host_local_conf(tmp_path / "data")
    (tmp_path / "data").mkdir()
    os.mkfifo(tmp_path / "data" / NETWORK)
    for verb in VERBS:
        error = spec_error(host_local(dist_bin, verb, conf), 5)
        assert f"{tmp_path}/data/{NETWORK}" in error["msg"], error


def test_a_resolv_conf_that_is_a_fifo_is_refused_without_waiting(dist_bin: Path, tmp_path: Path) -> None:
    fifo = tmp_path / "resolv.conf"
    os.mkfifo(fifo)
    conf = host_local_conf(tmp_path / "data", resolvConf=str(fifo))
    error = spec_error(host_local(dist_bin, "ADD", conf), 7)
    assert error["msg"] == f"cannot read resolvConf '{fifo}' at ipam.resolvConf: not a regular file (a FIFO)"
    assert allocations(tmp_path / "data") == []
    (tmp_path / "real.conf").write_text("nameserver 10.0.0.53\n")
    fifo.unlink()
    fifo.symlink_to(tmp_path / "real.conf")         # a symlinked resolv.conf is usual, and read
    assert ok(host_local(dist_bin, "ADD", conf))["dns"] == {"nameservers": ["10.0.0.53"]}


@pytest.mark.root
def test_bridge_with_a_fifo_lock_fails_at_once_and_leaves_nothing(dist_bin: Path, host_ns: Netns,
                                                                  netns_factory: Callable[[str], Netns],
                                                                  tmp_path: Path) -> None:
    """bridge runs the bundled host-local in its own process: the same check applies there."""
    data = tmp_path / "data"
    (data / NETWORK).mkdir(parents=True)
    os.mkfifo(data / NETWORK / "lock")
    pod = netns_factory("pod")
    env = cni_env("ADD", cid="c1", netns=pod.path, cni_path=dist_bin)
    start = time.monotonic()
    conf = bridge_conf(data, isGateway=True, ipMasq=True)
    error = spec_error(run(plugin_argv("bridge", dist_bin), env, conf, inside=host_ns, timeout=HANG), 5)
    assert time.monotonic() - start < 5
    assert f"{data}/{NETWORK}/lock" in error["msg"], error
    assert veths(host_ns) == [] and "eth0" not in pod.sh("ip -o link")


# --- a full dataDir -----------------------------------------------------------------------------------------

class Tmpfs:
    """A tmpfs mounted at `path` in a private mount namespace, kept alive by process `pid`: plugins run in it
    with nsenter, the test sees it through /proc/<pid>/root. Nothing is mounted in the machine's namespace."""

    def __init__(self, pid: int, path: Path) -> None:
        self.pid = pid
        self.path = path
        self.view = Path(f"/proc/{pid}/root") / path.relative_to("/")
        self.prefix = ("nsenter", "-t", str(pid), "-m", "--")

    def fill(self, leave: int = 0) -> None:
        """Fill the filesystem, then free `leave` bytes again."""
        fd = os.open(self.view / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        if leave:
            os.truncate(self.view / "filler", os.path.getsize(self.view / "filler") - leave)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Tmpfs]]:
    if os.geteuid() != 0:
        pytest.skip("mount namespaces need root")
    holders: list[subprocess.Popen[bytes]] = []

    def make(options: str) -> Tmpfs:
        path = tmp_path / f"tmpfs{len(holders)}"
        path.mkdir()
        script = f'mount -t tmpfs -o {options},mode=0755 pycni-test "$0" && echo ready && exec sleep 600'
        proc = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(path)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        holders.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n", proc.stderr
        return Tmpfs(proc.pid, path)

    yield make
    for proc in holders:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def listing(fs: Tmpfs) -> list[str]:
    net = fs.view / "data" / NETWORK
    return sorted(p.name for p in net.iterdir()) if net.exists() else []


@pytest.mark.root
def test_no_space_left_is_an_io_error_naming_the_file_and_leaves_nothing(dist_bin: Path,
                                                                         tmpfs: Callable[[str], Tmpfs]) -> None:
    fs = tmpfs("size=64k")
    conf = host_local_conf(fs.path / "data")
    fs.fill()
    error = spec_error(host_local(dist_bin, "ADD", conf, prefix=fs.prefix), 5)
    path = fs.path / "data" / NETWORK / "10.77.0.2"
    assert error["msg"] == f"failed to allocate for range 0: cannot write {path}: No space left on device", error
    assert listing(fs) == ["lock"]                  # what Go's host-local also creates before it writes
    spec_error(host_local(dist_bin, "CHECK", conf, prefix=fs.prefix))
    ok(host_local(dist_bin, "DEL", conf, prefix=fs.prefix))
    os.unlink(fs.view / "filler")
    assert address(host_local(dist_bin, "ADD", conf, prefix=fs.prefix)) == "10.77.0.2"
    ok(host_local(dist_bin, "DEL", conf, prefix=fs.prefix))
    assert listing(fs) == ["last_reserved_ip.0", "lock"]


@pytest.mark.root
def test_room_for_the_allocation_but_not_the_hint_still_allocates(dist_bin: Path,
                                                                  tmpfs: Callable[[str], Tmpfs]) -> None:
    """`last_reserved_ip` is only where the next ADD starts looking: failing to update it fails nothing."""
    fs = tmpfs("size=64k")
    conf = host_local_conf(fs.path / "data")
    assert address(host_local(dist_bin, "ADD", conf, "c0", prefix=fs.prefix)) == "10.77.0.2"
    fs.fill(leave=4096)                             # one page: the allocation file's
    done = host_local(dist_bin, "ADD", conf, "c1", prefix=fs.prefix)
    assert address(done) == "10.77.0.3"
    assert "cannot write" in done.stderr and "last_reserved_ip.0: No space left on device" in done.stderr
    assert listing(fs) == ["10.77.0.2", "10.77.0.3", "last_reserved_ip.0", "lock"]
    assert (fs.view / "data" / NETWORK / "last_reserved_ip.0").read_bytes() == b"10.77.0.2"
    ok(host_local(dist_bin, "DEL", conf, "c1", prefix=fs.prefix))
    ok(host_local(dist_bin, "DEL", conf, "c0", prefix=fs.prefix))
    assert listing(fs) == ["last_reserved_ip.0", "lock"]


@pytest.mark.root
@pytest.mark.parametrize("inodes,message", [
    (3, "opening {net}/lock: No space left on device"),
    (4, "failed to allocate for range 0: creating a file in {net}: No space left on device"),
    (5, "failed to allocate for range 0: cannot create {net}/10.77.0.2: No space left on device"),  # tmpfs: a link
], ids=["lock", "temp-file", "link"])                                                            # takes an inode
def test_no_inode_left_is_an_io_error_naming_the_file(dist_bin: Path, tmpfs: Callable[[str], Tmpfs],
                                                     inodes: int, message: str) -> None:
    fs = tmpfs(f"size=64k,nr_inodes={inodes}")
    conf = host_local_conf(fs.path / "data")
    net = fs.path / "data" / NETWORK
    error = spec_error(host_local(dist_bin, "ADD", conf, prefix=fs.prefix), 5)
    assert error["msg"] == message.format(net=net), error
    assert listing(fs) == ([] if inodes == 3 else ["lock"])
