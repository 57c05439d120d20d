"""Allocation state: the `Session` the allocator works on, an in-memory store (tests) and the disk store.

On disk (byte-identical to the reference, so Go and Python binaries can be swapped on a live node):

    <dataDir>/<network>/                 directory, 0755
        lock                             flock(LOCK_EX) for the whole operation (go-filemutex takes the same lock)
        <ip>                             one per allocation, 0600, "containerID\\r\\nifname" (legacy: "containerID")
        last_reserved_ip.<set index>     the last address reserved in that range set, no newline, 0600

Files appear whole: content goes to a temp file that is then hard-linked to its name (the link fails if the
address is taken) or renamed over it. The owners of allocation files are remembered in `owners.OwnerCache`, so
an operation lists the directory once and reads only the files it has not seen before.
"""
from __future__ import annotations

import contextlib
import ipaddress
import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Iterator, Protocol

    class Session(Protocol):
        """Allocation state while the store is locked.

        `owners` maps every allocated address (canonical string) to its owner: "containerID\\r\\nifname", a legacy
        "containerID", or "" when unknown (not a regular file, unreadable)."""

        owners: dict[str, str]

        def last_reserved(self, index: int) -> str | None: ...

        def reserve(self, ip: str, owner: str, index: int) -> bool: ...

        def release(self, ip: str) -> None: ...

from common import flock
from common.errors import CniError, Code, ConfigError

from .owners import CacheEntry, OwnerCache, Stamp

LOCK_NAME = "lock"
LAST_RESERVED_PREFIX = "last_reserved_ip."
TEMP_PREFIX = ".pycni-tmp."
MAX_OWNER_BYTES = 4096
_NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC




class MemoryStore:
    """A Session without a disk, for tests of the allocation policy."""

    def __init__(self, owners: dict[str, str] | None = None, last: dict[int, str] | None = None) -> None:
        self.owners = dict(owners or {})
        self.last = dict(last or {})

    @contextlib.contextmanager
    def session(self) -> Iterator["MemoryStore"]:
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
        self.cache = OwnerCache(os.path.join(data_dir, f".pycni-owners.{network}"))

    @contextlib.contextmanager
    def session(self) -> Iterator["DiskSession"]:
        """The network directory, locked for the whole block."""
        dir_fd = self._open_dir()
        try:
            lock_fd = _os_call(f"opening {self.lock_path}", os.open, LOCK_NAME,
                               os.O_CREAT | os.O_RDONLY | _NOFOLLOW, 0o750, dir_fd=dir_fd)
            try:
                self._acquire(lock_fd)
                session = DiskSession(dir_fd, self.dir, self.cache)
                try:
                    yield session
                finally:
                    session.save_cache()
            finally:
                os.close(lock_fd)   # closing the only descriptor releases the flock
        finally:
            os.close(dir_fd)

    def _open_dir(self) -> int:
        _os_call(f"creating {self.dir}", os.makedirs, self.dir, 0o755, exist_ok=True)
        return _os_call(f"opening {self.dir}", os.open, self.dir, os.O_RDONLY | os.O_DIRECTORY | _NOFOLLOW)

    def _acquire(self, lock_fd: int) -> None:
        flock.acquire(lock_fd, timeout=self.lock_timeout, what=f"the lock {self.lock_path}")


class DiskSession:
    """The allocation files of one network directory, read with one listing while the lock is held.

    `listing` ({name: inode} of every entry) is kept in step with our own changes, so the cache written at the
    end describes the directory exactly without listing it again."""

    def __init__(self, dir_fd: int, path: str, cache: OwnerCache) -> None:
        self.dir_fd = dir_fd
        self.path = path
        self.cache = cache
        self.changed = False
        with os.scandir(dir_fd) as it:
            entries = list(it)
        self.listing: dict[str, int] = {e.name: e.inode() for e in entries}
        known = cache.load(self._stamp())
        if known is not None and known.listing == self.listing:
            self.owners: dict[str, str] = known.owners      # the usual case: nothing to read
        else:
            self.owners = self._read_owners(entries, known)

    def _stamp(self) -> Stamp:
        st = os.fstat(self.dir_fd)
        return (st.st_dev, st.st_ino, st.st_mtime_ns)

    def _read_owners(self, entries: list[os.DirEntry[str]], known: CacheEntry | None) -> dict[str, str]:
        """Owners from the cache where the file still has the remembered inode, else from the file."""
        self.changed = True
        owners: dict[str, str] = {}
        for entry in entries:
            name = entry.name
            if name.startswith(TEMP_PREFIX):
                self._discard(name)     # we hold the lock, so its writer died
            elif known is not None and name in known.owners and known.listing.get(name) == entry.inode():
                owners[name] = known.owners[name]
            elif is_ip_name(name):
                owners[name] = self._read_owner(entry)
        return owners

    def _read_owner(self, entry: os.DirEntry[str]) -> str:
        if not entry.is_file(follow_symlinks=False):
            return ""
        return self._read_file_owner(entry.name) or ""

    def _read_file_owner(self, name: str) -> str | None:
        """The owner written in file `name`; None when it is gone, "" when it cannot be read as a file."""
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW, dir_fd=self.dir_fd)
        except FileNotFoundError:
            return None
        except OSError:
            return ""
        try:
            return os.read(fd, MAX_OWNER_BYTES).decode(errors="replace").strip()
        except OSError:
            return ""
        finally:
            os.close(fd)

    def last_reserved(self, index: int) -> str | None:
        try:
            fd = os.open(f"{LAST_RESERVED_PREFIX}{index}", os.O_RDONLY | os.O_NONBLOCK | _NOFOLLOW,
                         dir_fd=self.dir_fd)
        except OSError:
            return None
        try:
            return os.read(fd, 64).decode(errors="replace").strip() or None
        except OSError:         # a directory of that name, say: no usable hint
            return None
        finally:
            os.close(fd)

    def reserve(self, ip: str, owner: str, index: int) -> bool:
        if ip in self.owners:
            return False
        if not self._create_exclusive(ip, owner.encode()):
            self.owners[ip] = ""    # a writer that does not lock made it (the reference always locks)
            return False
        self.owners[ip] = owner
        # Only a hint for the next ADD: failing to write it (a directory of that name) must not fail this one.
        self._replace(f"{LAST_RESERVED_PREFIX}{index}", ip.encode())
        return True

    def release(self, ip: str) -> None:
        """Remove the allocation, but only if its file still names the owner we matched. The owner may come from
        the cache; reading it once more means a stale entry can never free an address someone else holds."""
        actual = self._read_file_owner(ip)
        if actual is not None and actual != self.owners.get(ip):
            self.owners[ip] = actual
            self.changed = True
            return
        self._unlink(ip)
        self.owners.pop(ip, None)

    def save_cache(self) -> None:
        if self.changed:
            self.cache.save(self._stamp(), CacheEntry(listing=self.listing, owners=self.owners))

    # --- writing whole files ---------------------------------------------------------------------------

    def _write_temp(self, data: bytes) -> str:
        temp = f"{TEMP_PREFIX}{os.getpid()}"
        self._unlink(temp)
        fd = _os_call(f"creating a file in {self.path}", os.open, temp,
                      os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600, dir_fd=self.dir_fd)
        self.changed = True
        try:
            self.listing[temp] = os.fstat(fd).st_ino
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            return temp
        finally:
            os.close(fd)

    def _create_exclusive(self, name: str, data: bytes) -> bool:
        """Give `name` the content `data`, only if no such name exists (False: taken)."""
        temp = self._write_temp(data)
        try:
            os.link(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
            self.listing[name] = self.listing[temp]
            return True
        except FileExistsError:
            return False
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"cannot create {os.path.join(self.path, name)}: {exc.strerror}")
        finally:
            self._unlink(temp)

    def _replace(self, name: str, data: bytes) -> bool:
        """Best effort: False (and a note on stderr) when `name` cannot be replaced."""
        temp = self._write_temp(data)
        try:
            os.replace(temp, name, src_dir_fd=self.dir_fd, dst_dir_fd=self.dir_fd)
        except OSError as exc:
            self._discard(temp)
            sys.stderr.write(f"host-local: cannot write {os.path.join(self.path, name)}: {exc.strerror}\n")
            return False
        self.listing[name] = self.listing.pop(temp)
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
            self.changed = True
            self.listing.pop(name, None)
        except FileNotFoundError:
            self.listing.pop(name, None)
        except OSError as exc:
            raise CniError(Code.IO_FAILURE, f"cannot remove {os.path.join(self.path, name)}: {exc.strerror}")


def is_ip_name(name: str) -> bool:
    """A file named by an address's canonical string (what Go's net.IP.String() writes)."""
    if (not name[:1].isalnum() and name[:1] != ":") or "%" in name:    # Go's ParseIP knows no zones
        return False
    try:
        return str(ipaddress.ip_address(name)) == name
    except ValueError:
        return False


def _os_call(what: str, func, *args, **kwargs):  # type: ignore[no-untyped-def]
    try:
        return func(*args, **kwargs)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"{what}: {exc.strerror or exc}") from None
