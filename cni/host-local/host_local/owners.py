"""Who owns each allocation file, remembered between runs so an operation does not read every file.

The reference reads every allocation file on each ADD and DEL, so its cost grows with the number of
allocations. We keep the directory's listing ({name: inode}) and the owners of its allocation files in
`<dataDir>/.pycni-owners.<network>` (outside the network directory, which stays byte-identical to the
reference's), stamped with the directory's (device, inode, mtime) taken after our last change.

The cache is trusted only while that stamp is unchanged, i.e. nobody (say, the Go plugin) created, removed or
renamed an entry since - inode numbers are reused at once, so the stamp is what makes a recreated file visible.
Even then an owner counts only for a file that still has the remembered inode (a change within the same
timestamp tick). Anything else is read from disk, and the cache rewritten. Losing the cache costs one full read.

The file is written with `marshal` (a 2,000-entry cache loads and saves in ~0.5 ms, JSON took ~3 ms, which
is what made the 2,000th ADD slower). It is a private cache, 0600 in the root-owned dataDir: whoever can write
it can write the allocation files themselves; an unreadable one (other Python version, damage) is rebuilt.
"""
from __future__ import annotations

import marshal
import os

from common.record import record

Stamp = tuple[int, int, int]
FORMAT = 3


@record(frozen=True)
class CacheEntry:
    listing: dict[str, int]     # every entry of the network directory -> inode
    owners: dict[str, str]      # allocation file -> owner


class OwnerCache:
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self, stamp: Stamp) -> CacheEntry | None:
        """The remembered state if the directory is as we left it, else None."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            with os.fdopen(fd, "rb") as f:
                data = marshal.loads(f.read())
            if data["format"] != FORMAT or data["stamp"] != stamp:
                return None
            listing, owners = data["listing"], data["owners"]
            if isinstance(listing, dict) and isinstance(owners, dict):
                return CacheEntry(listing=listing, owners=owners)
        except (OSError, ValueError, EOFError, TypeError, KeyError):
            pass
        return None

    def save(self, stamp: Stamp, entry: CacheEntry) -> None:
        """Best effort: a cache that cannot be written is rebuilt by the next operation."""
        data = {"format": FORMAT, "stamp": stamp, "listing": entry.listing, "owners": entry.owners}
        temp = f"{self.path}.tmp{os.getpid()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(marshal.dumps(data))
            os.replace(temp, self.path)
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass
