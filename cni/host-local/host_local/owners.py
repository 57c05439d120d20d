"""Who owns each allocation file, remembered between runs so an ADD does not read every file.

The reference reads every allocation file on each ADD and DEL, so its cost grows with the number of
allocations. We keep `{name: (inode, owner)}` in `<dataDir>/.pycni-owners.<network>` (outside the network
directory, which stays byte-identical to the reference's) together with the directory's stamp
(device, inode, mtime) taken after our last change. The cache is trusted only while the stamp is unchanged,
i.e. nobody (say, the Go plugin) created, removed or renamed a file since; even then an entry counts only when the
listed file still has the remembered inode. Anything else is read from disk and the cache rewritten.
"""
from __future__ import annotations

import json
import os

Stamp = tuple[int, int, int]
FORMAT = 1


class OwnerCache:
    def __init__(self, path: str) -> None:
        self.path = path

    def load(self, stamp: Stamp) -> dict[str, tuple[int, str]]:
        """The remembered owners if the directory is as we left it, else nothing."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return {}
        try:
            with os.fdopen(fd, "rb") as f:
                data = json.loads(f.read())
            if data["format"] != FORMAT or tuple(data["stamp"]) != stamp:
                return {}
            return {name: (int(inode), str(owner)) for name, inode, owner in data["entries"]}
        except (OSError, ValueError, TypeError, KeyError):
            return {}

    def save(self, stamp: Stamp, entries: dict[str, tuple[int, str]]) -> None:
        """Best effort: a cache that cannot be written is rebuilt by the next operation."""
        data = {"format": FORMAT, "stamp": list(stamp),
                "entries": [[name, inode, owner] for name, (inode, owner) in entries.items()]}
        temp = f"{self.path}.tmp{os.getpid()}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(json.dumps(data, separators=(",", ":")).encode())
            os.replace(temp, self.path)
        except OSError:
            try:
                os.unlink(temp)
            except OSError:
                pass
