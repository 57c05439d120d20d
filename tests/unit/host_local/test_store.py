"""The disk store on a temp dir: exact names, bytes and modes; the lock; owners read whole; hostile entries."""
from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path

import pytest

from common.errors import CniError, Code
from host_local.allocator import address_of
from host_local.store import DiskStore


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.fixture
def store(tmp_path: Path) -> DiskStore:
    return DiskStore(str(tmp_path), "net1", lock_timeout=0.2)


def test_reserve_writes_reference_files(store: DiskStore, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with store.session() as s:
            assert s.reserve("10.0.0.2", "cid\r\neth0", 0)
            assert s.reserve("2001:db8::2", "cid\r\neth0", 1)
            assert not s.reserve("10.0.0.2", "other\r\neth0", 0)
    finally:
        os.umask(old)
    net = tmp_path / "net1"
    assert sorted(p.name for p in net.iterdir()) == ["10.0.0.2", "2001:db8::2", "last_reserved_ip.0",
                                                     "last_reserved_ip.1", "lock"]
    assert (net / "10.0.0.2").read_bytes() == b"cid\r\neth0"
    assert (net / "last_reserved_ip.0").read_bytes() == b"10.0.0.2"
    assert (net / "last_reserved_ip.1").read_bytes() == b"2001:db8::2"
    assert [mode(net / n) for n in ("10.0.0.2", "2001:db8::2", "last_reserved_ip.0")] == [0o600] * 3
    assert mode(net) == 0o755 and mode(net / "lock") == 0o750


def test_a_new_session_sees_owners_and_last_reserved(store: DiskStore) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 3)
    with store.session() as s:
        assert s.owners == {"10.0.0.2": "cid\r\neth0"}
        assert s.last_reserved(3) == "10.0.0.2" and s.last_reserved(0) is None
        s.release("10.0.0.2")
        s.release("10.0.0.2")        # releasing twice is fine
    with store.session() as s:
        assert s.owners == {}


def test_foreign_files_are_read_and_junk_is_ignored(store: DiskStore, tmp_path: Path) -> None:
    net = tmp_path / "net1"
    net.mkdir()
    (net / "10.0.0.7").write_bytes(b"go-cid\r\neth0\n")       # as another writer left it
    (net / "10.0.0.8").write_bytes(b"legacy-cid")              # pre-ifname format
    (net / "last_reserved_ip.0").write_bytes(b"10.0.0.8")
    (net / "notes.txt").write_bytes(b"x")
    (net / "010.0.0.9").write_bytes(b"not canonical")
    (net / ".pycni-tmp.99999").write_bytes(b"half")            # a crashed writer's temp file
    (tmp_path / "secret").write_bytes(b"cid\r\neth0")
    (net / "10.0.0.9").symlink_to(tmp_path / "secret")         # taken, but never followed
    with store.session() as s:
        # "010.0.0.9" has only address characters, so it is read; the allocator never treats it as an address
        assert s.owners == {"10.0.0.7": "go-cid\r\neth0", "10.0.0.8": "legacy-cid", "10.0.0.9": "",
                            "010.0.0.9": "not canonical"}
        assert s.last_reserved(0) == "10.0.0.8"
    assert not (net / ".pycni-tmp.99999").exists()


def test_nothing_is_kept_beside_the_network_directory(store: DiskStore, tmp_path: Path) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 0)
        s.release("10.0.0.2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net1"]
    assert sorted(p.name for p in (tmp_path / "net1").iterdir()) == ["last_reserved_ip.0", "lock"]


def test_every_session_reads_the_files_as_they_are_now(store: DiskStore, tmp_path: Path) -> None:
    """Another plugin releases and reallocates within the same timestamp tick, reusing the inode: seen at once."""
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 0)
        s.reserve("10.0.0.3", "cid2\r\neth0", 0)
    net = tmp_path / "net1"
    before = os.stat(net)
    os.unlink(net / "10.0.0.2")
    (net / "10.0.0.2").write_bytes(b"new\r\neth0")
    (net / "10.0.0.3").write_bytes(b"rewritten\r\neth0")       # in place, as Go 1.1.1 writes
    os.utime(net, ns=(before.st_atime_ns, before.st_mtime_ns))
    with store.session() as s:
        assert s.owners == {"10.0.0.2": "new\r\neth0", "10.0.0.3": "rewritten\r\neth0"}


@pytest.mark.parametrize("length", [4089, 4090, 4096, 5000, 200_000])
def test_long_owners_are_read_whole(store: DiskStore, tmp_path: Path, length: int) -> None:
    owner = "c" * length + "\r\neth0"
    with store.session() as s:
        assert s.reserve("10.0.0.2", owner, 0)
    assert (tmp_path / "net1" / "10.0.0.2").read_bytes() == owner.encode()
    with store.session() as s:
        assert s.owners == {"10.0.0.2": owner}


def test_a_file_larger_than_any_owner_is_a_holder_we_do_not_know(store: DiskStore, tmp_path: Path) -> None:
    (tmp_path / "net1").mkdir()
    (tmp_path / "net1" / "10.0.0.2").write_bytes(b"x" * (2 << 20))
    with store.session() as s:
        assert s.owners == {"10.0.0.2": ""}


def test_owners_are_compared_as_bytes(store: DiskStore, tmp_path: Path) -> None:
    """A non-UTF-8 ifname (os.environ gives it with surrogate escapes) is written and read back unchanged."""
    ifname = b"eth\xff".decode("utf-8", "surrogateescape")
    with store.session() as s:
        assert s.reserve("10.0.0.2", f"cid\r\n{ifname}", 0)
    assert (tmp_path / "net1" / "10.0.0.2").read_bytes() == b"cid\r\neth\xff"
    with store.session() as s:
        assert s.owners == {"10.0.0.2": f"cid\r\n{ifname}"}


@pytest.mark.parametrize("name", ["lock", "10.0.0.2", "last_reserved_ip.0"])
def test_a_fifo_in_place_of_a_file_never_blocks(store: DiskStore, tmp_path: Path, name: str) -> None:
    (tmp_path / "net1").mkdir()
    os.mkfifo(tmp_path / "net1" / name)
    if name == "lock":
        with pytest.raises(CniError) as info:
            with store.session():
                pass
        assert info.value.code == Code.IO_FAILURE
        assert info.value.msg == f"opening {tmp_path}/net1/lock: not a regular file (a FIFO)"
        return
    with store.session() as s:
        assert s.last_reserved(0) is None
        assert s.owners == ({"10.0.0.2": ""} if name == "10.0.0.2" else {})


def test_a_full_disk_is_an_io_error_and_leaves_no_temp_file(store: DiskStore, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    def full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    with store.session() as s:
        monkeypatch.setattr(os, "write", full)
        with pytest.raises(CniError) as info:
            s.reserve("10.0.0.2", "cid\r\neth0", 0)
        monkeypatch.undo()
    assert (info.value.code, info.value.msg) == (Code.IO_FAILURE, f"cannot write {tmp_path}/net1/10.0.0.2: "
                                                                  "No space left on device")
    assert sorted(p.name for p in (tmp_path / "net1").iterdir()) == ["lock"]


def test_lock_timeout_is_try_again_naming_the_lock(store: DiskStore, tmp_path: Path) -> None:
    (tmp_path / "net1").mkdir()
    holder = os.open(tmp_path / "net1" / "lock", os.O_CREAT | os.O_RDONLY, 0o750)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(CniError) as info:
            with store.session():
                pass
        assert info.value.code == Code.TRY_AGAIN_LATER
        assert info.value.msg == f"timed out after 0.2 s waiting for the lock {tmp_path}/net1/lock"
    finally:
        os.close(holder)
    with store.session():       # released: usable again
        pass


@pytest.mark.parametrize("name", ["..", ".", "a/b", "../x", ".hidden", ""])
def test_network_names_that_could_escape_data_dir_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(CniError) as info:
        DiskStore(str(tmp_path / "data"), name)
    assert info.value.code == Code.INVALID_CONFIG
    assert not (tmp_path / "data").exists()


def test_symlinked_network_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "net1").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(CniError) as info:
        with DiskStore(str(tmp_path / "data"), "net1").session():
            pass
    assert info.value.code == Code.IO_FAILURE and "net1" in info.value.msg
    assert list((tmp_path / "elsewhere").iterdir()) == []


@pytest.mark.parametrize("name,expected", [("10.0.0.1", True), ("2001:db8::1", True), ("2001:DB8::1", False),
                                           ("lock", False), ("last_reserved_ip.0", False), ("10.0.0.01", False),
                                           (".pycni-tmp.1", False), ("::1", True),
                                           ("fe80::1%eth0", False), ("::ffff:a00:1", False)])
def test_ip_names_are_canonical_strings(name: str, expected: bool) -> None:
    assert (address_of(name) is not None) is expected
