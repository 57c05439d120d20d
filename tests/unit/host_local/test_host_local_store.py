"""The disk store on a temp dir: exact names, bytes and modes; the lock; the owner cache; hostile entries."""
from __future__ import annotations

import fcntl
import marshal
import os
import stat
from pathlib import Path

import pytest

from common.errors import CniError, Code
from host_local.store import DiskStore, is_ip_name


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
        assert s.owners == {"10.0.0.7": "go-cid\r\neth0", "10.0.0.8": "legacy-cid", "10.0.0.9": ""}
        assert s.last_reserved(0) == "10.0.0.8"
    assert not (net / ".pycni-tmp.99999").exists()


def test_cache_is_used_while_the_directory_is_unchanged(store: DiskStore, tmp_path: Path) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 0)
    cache = tmp_path / ".pycni-owners.net1"
    data = marshal.loads(cache.read_bytes())
    assert data["owners"] == {"10.0.0.2": "cid\r\neth0"}
    assert set(data["listing"]) == {"10.0.0.2", "last_reserved_ip.0", "lock"}
    data["owners"]["10.0.0.2"] = "from-cache\r\neth0"   # prove the next session trusts it without reading
    cache.write_bytes(marshal.dumps(data))
    with store.session() as s:
        assert s.owners == {"10.0.0.2": "from-cache\r\neth0"}


def test_cache_is_ignored_after_a_foreign_change(store: DiskStore, tmp_path: Path) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 0)
    net = tmp_path / "net1"
    os.unlink(net / "10.0.0.2")                        # another plugin releases and reallocates the address
    (net / "10.0.0.2").write_bytes(b"new\r\neth0")
    (net / "10.0.0.3").write_bytes(b"go\r\neth0")
    with store.session() as s:
        assert s.owners == {"10.0.0.2": "new\r\neth0", "10.0.0.3": "go\r\neth0"}


def test_cache_entry_of_a_recreated_file_is_not_trusted_even_in_the_same_tick(store: DiskStore,
                                                                              tmp_path: Path) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 0)
        s.reserve("10.0.0.3", "cid2\r\neth0", 0)
    net = tmp_path / "net1"
    before = os.stat(net)
    os.unlink(net / "10.0.0.2")
    (net / "10.0.0.9").write_bytes(b"x\r\neth0")          # takes a fresh inode ...
    (net / "10.0.0.2").write_bytes(b"new\r\neth0")
    os.utime(net, ns=(before.st_atime_ns, before.st_mtime_ns))   # ... and the directory looks unchanged
    with store.session() as s:
        assert s.owners == {"10.0.0.2": "new\r\neth0", "10.0.0.3": "cid2\r\neth0", "10.0.0.9": "x\r\neth0"}


def test_release_never_frees_an_address_whose_file_names_another_owner(store: DiskStore, tmp_path: Path) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "old\r\neth0", 0)
    net = tmp_path / "net1"
    before = os.stat(net)
    (net / "10.0.0.2").write_bytes(b"new\r\neth0")     # same inode, same directory mtime: the cache is stale
    os.utime(net, ns=(before.st_atime_ns, before.st_mtime_ns))
    with store.session() as s:
        assert s.owners["10.0.0.2"] == "old\r\neth0"
        s.release("10.0.0.2")
        assert s.owners["10.0.0.2"] == "new\r\neth0"
    assert (net / "10.0.0.2").read_bytes() == b"new\r\neth0"


def test_unreadable_cache_is_rebuilt(store: DiskStore, tmp_path: Path) -> None:
    with store.session() as s:
        s.reserve("10.0.0.2", "cid\r\neth0", 0)
    (tmp_path / ".pycni-owners.net1").write_bytes(b"\xfb broken")
    with store.session() as s:
        assert s.owners == {"10.0.0.2": "cid\r\neth0"}
    assert marshal.loads((tmp_path / ".pycni-owners.net1").read_bytes())["owners"] == {"10.0.0.2": "cid\r\neth0"}


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
                                           ("fe80::1%eth0", False)])
def test_ip_names_are_canonical_strings(name: str, expected: bool) -> None:
    assert is_ip_name(name) is expected
