"""Allocation state: the `Session` the allocator works on, an in-memory store (tests) and the disk store.

On disk (byte-identical to the reference, so Go and Python binaries can be swapped on a live node):

    <dataDir>/<network>/                 directory, 0755
        lock                             flock(LOCK_EX) for the whole operation (go-filemutex takes the same lock)
        <ip>                             one per allocation, 0600, "containerID\\r\\nifname" (legacy: "containerID")
        last_reserved_ip.<set index>     the last address reserved in that range set, no newline, 0600

Nothing else is kept, in the network directory or beside it. Every operation lists the directory once and reads
every allocation file whole, as the reference does: at a node's density (a /24, <= 250 pods) that costs about a
millisecond, and it is right whatever changed the directory in between (the Go plugin, a clock or filesystem
with coarse timestamps, reused inode numbers), which a cache of owners could only guess.

Files appear whole: content goes to a temp file that is then hard-linked to its name (the link fails if the
address is taken) or renamed over it; a temp file that cannot be written whole (ENOSPC) is removed at once.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import ParamSpec, Protocol, TypeVar
    P = ParamSpec("P")
    T = TypeVar("T")

    class Session(Protocol):
        """Allocation state while the store is locked.

        `owners` maps every entry that may be an allocation (its name has only the characters of an address's
        canonical string) to its owner: "containerID\\r\\nifname", a legacy "containerID", or "" when unknown
        (not a regular file, unreadable). The allocator acts only on names that are an address's canonical
        string (`allocator.address_of`), so junk such as "10.0.0.09" is never freed or counted."""

        owners: dict[str, str]

        def last_reserved(self, index: int) -> str | None: ...

        def reserve(self, ip: str, owner: str, index: int) -> bool: ...

        def release(self, ip: str) -> None: ...

from common import flock
from common.errors import CniError, Code, ConfigError
from common.scoped import contextmanager

from . import files

LOCK_NAME = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
TEMP_PREFIX = ".pycni-tmp."
# Owners come from CNI_CONTAINERID and CNI_IFNAME, and Linux caps one environment string at 128 KiB
# (MAX_ARG_STRLEN): a larger file names nobody who could ask, so it is kept as a holder we do not know.
MAX_OWNER_BYTES = 1 << 20
# A hint holds one address; a larger file is no hint.
MAX_HINT_BYTES = 4096
# The characters of canonical address strings (Go's net.IP.String() writes lowercase hex): a cheap filter that
# spares reading files such as "lock" or "notes.txt"; the exact test is the allocator's.
_ADDRESS_CHARS = frozenset("0123456789abcdef.:")
_OWNER_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | files.FLAGS
ENCODING = ("utf-8", "surrogateescape")     # owners are bytes to the kernel: compare them byte for byte


class MemoryStore:
    """A Session without a disk, for tests of the allocation policy."""

    def __init__(self, owners: dict[str, str] | None = None, last: dict[int, str] | None = None) -> None:
        self.owners = dict(owners or {})
        self.last = dict(last or {})

    @contextmanager
    def session(self) -> Iterator[MemoryStore]:
        yield self

    def last_reserved(self, index: int) -> str | None:
        return self.last.get(index)

    def reserve(self, ip: str, owner: str, index: int) -> bool:
        if ip in self.owners:
            return False
        self.owners[ip] = owner
        self.last[index] = ip
        return True

    def release(self, ip: str) -> None:
        self.owners.pop(ip, None)


def check_network_name(name: str) -> None:
    """Defence in depth (skel already checks the name): nothing may resolve outside dataDir."""
    if not name or name.startswith(".") or "/" in name or "\0" in name:
        raise ConfigError(f"invalid network name {name!r} at name: it must not be empty, start with '.' "
                          "or contain '/'")


class DiskStore:
    def __init__(self, data_dir: str, network: str, *, lock_timeout: float = 30.0) -> None:
        check_network_name(network)
        self.data_dir = data_dir
        self.dir = os.path.join(data_dir, network)
        self.lock_path = os.path.join(self.dir, LOCK_NAME)
        self.lock_timeout = lock_timeout
        self.old_cache = os.path.join(data_dir, f".pycni-owners.{network}")

    @contextmanager
    def session(self) -> Iterator[DiskSession]:
        """The network directory, locked for the whole block."""
        dir_fd = self._open_dir()
        try:
            lock_fd = _os_call(f"opening {self.lock_path}", files.open_regular, LOCK_NAME,
                               os.O_CREAT | os.O_RDONLY, 0o750, dir_fd=dir_fd)
            try:
                self._acquire(lock_fd)
                self._forget_old_cache()
                yield DiskSession(dir_fd, self.dir)
            finally:
                os.close(lock_fd)   # closing the only descriptor releases the flock
        finally:
            os.close(dir_fd)

    def _open_dir(self) -> int:
        try:
            os.makedirs(self.dir, 0o755, exist_ok=True)
        except FileExistsError:
            pass        # something that is no directory: opening it below says so ("Not a directory")
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"creating {self.dir}: {exc.strerror or exc}") from None
        return _os_call(f"opening {self.dir}", os.open, self.dir,
                        os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)

    def _acquire(self, lock_fd: int) -> None:
        flock.acquire(lock_fd, timeout=self.lock_timeout, what=f"the lock {self.lock_path}")

    def _forget_old_cache(self) -> None:
        """Earlier pycni versions kept an owner cache beside the network directory: remove it, so the dataDir is
        the reference's and a downgraded plugin cannot trust a cache that no longer describes the files."""
        try:
            os.unlink(self.old_cache)
        except OSError:
            pass


class DiskSession:
    """The allocation files of one network directory, read with one listing while the lock is held."""

    def __init__(self, dir_fd: int, path: str) -> None:
        self.dir_fd = dir_fd
        self.path = path
        self.owners: dict[str, str] = self._read_owners()

    def _read_owners(self) -> dict[str, str]:
        entries = _os_call(f"listing {self.path}", _list, self.dir_fd)
        owners: dict[str, str] = {}
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX):
                self._discard(name)     # we hold the lock, so its writer died
            elif _ADDRESS_CHARS.issuperset(name):
                owners[name] = self._read_owner(entry)
        return owners

    def _read_owner(self, entry: os.DirEntry[str]) -> str:
        """The owner written in the file, read whole; "" (taken by someone we do not know) when it is no regular
        file or cannot be read. The type comes from the listing: an fstat per file would cost a third more, and
        O_NONBLOCK with a bounded read already keeps a FIFO or device slipped in since harmless."""
        if not entry.is_file(follow_symlinks=False):
            return ""
        try:
            fd = os.open(entry.name, _OWNER_FLAGS, dir_fd=self.dir_fd)
        except OSError:
            return ""
        try:
            return files.read_to_end(fd, MAX_OWNER_BYTES).decode(*ENCODING).strip()
        except OSError:
            return ""
        finally:
            os.close(fd)

    def last_reserved(self, index: int) -> str | None:
        try:
            data = files.read_regular(f"{LAST_RESERVED_PREFIX}{index}", dir_fd=self.dir_fd, limit=MAX_HINT_BYTES)
        except OSError:         # missing, a directory or FIFO of that name, say: no usable hint
            return None
        return data.decode(*ENCODING).strip() or None

    def reserve(self, ip: str, owner: str, index: int) -> bool:
        if ip in self.owners:
            return False
        if not self._create_exclusive(ip, owner.encode(*ENCODING)):
            self.owners[ip] = ""    # a writer that does not lock made it (the reference always locks)
            return False
        self.owners[ip] = owner
        # Only a hint for the next ADD: failing to write it (a directory of that name, a full disk) must not
        # fail this one.
        self._replace(f"{LAST_RESERVED_PREFIX}{index}", ip.encode())
        return True

    def release(self, ip: str) -> None:
        self._unlink(ip)
        self.owners.pop(ip, None)

    # --- writing whole files ---------------------------------------------------------------------------

    def _write_temp(self, name: str, data: bytes) -> str:
        """A temp file holding exactly `data`, to become `name`; none is left when it cannot be written whole."""
        temp = f"{TEMP_PREFIX}{os.getpid()}"
        self._unlink(temp)
        fd = _os_call(f"creating a file in {self.path}", os.open, temp,
                      os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.dir_fd)
        try:
            _write_all(fd, data)
        except OSError as exc:
            self._discard(temp)
            raise CniError(Code.IO_FAILURE, f"cannot write {os.path.join(self.path, name)}: "
                           f"{exc.strerror or exc}") from None
        return temp

    def _create_exclusive(self, name: str, data: bytes) -> bool:
        """Give `name` the content `data`, only if no such name exists (False: taken)."""
        temp = self._write_temp(name, data)
        try:
            os.link(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"cannot create {os.path.join(self.path, name)}: {exc.strerror}") from None
        finally:
            self._unlink(temp)

    def _replace(self, name: str, data: bytes) -> bool:
        """Best effort: False (and a note on stderr) when `name` cannot be replaced."""
        try:
            temp = self._write_temp(name, data)
        except CniError as exc:
            sys.stderr.write(f"host-local: {exc.msg}\n")
            return False
        try:
            os.replace(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as exc:
            self._discard(temp)
            sys.stderr.write(f"host-local: cannot write {os.path.join(self.path, name)}: {exc.strerror}\n")
            return False
        return True

    def _discard(self, name: str) -> None:
        """Remove a leftover if possible; one that cannot be removed (a directory) is only ignored."""
        try:
            self._unlink(name)
        except CniError:
            pass

    def _unlink(self, name: str) -> None:
        try:
            os.unlink(name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"cannot remove {os.path.join(self.path, name)}: {exc.strerror}") from None


def _list(dir_fd: int) -> list[os.DirEntry[str]]:
    with os.scandir(dir_fd) as it:
        return list(it)


def _write_all(fd: int, data: bytes) -> None:
    """Write `data` and close fd; a short write (a full disk) or a failing close (NFS) raises OSError."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    except OSError:
        os.close(fd)
        raise
    os.close(fd)


def _os_call(what: str, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    try:
        return func(*args, **kwargs)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"{what}: {exc.strerror or exc}") from None
