"""Opening and reading host-local's files so that nothing planted in their place can hang or mislead us.

Every file host-local opens (the lock, allocation files, `last_reserved_ip.N`, resolvConf) is opened with
O_NONBLOCK, because open() of a FIFO without it waits for a writer forever (a wait no lock timeout bounds), and
must be a regular file: a FIFO, socket or device there holds no state of ours. Reads go to the end of the file
(a short read is not the end on every filesystem), bounded where a file's size has a natural limit.
"""
from __future__ import annotations

import errno
import os
import stat

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFDIR: "a directory", stat.S_IFLNK: "a symlink"}
FLAGS = os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
CHUNK = 4096        # one read holds a usual allocation file or hint


def not_regular(mode: int) -> OSError:
    """The error for a file of the wrong type; its strerror reads well after "opening <path>: "."""
    kind = _KINDS.get(stat.S_IFMT(mode))
    return OSError(errno.EINVAL, f"not a regular file ({kind})" if kind else "not a regular file")


def open_regular(path: str, flags: int = os.O_RDONLY, mode: int = 0o600, *, dir_fd: int | None = None,
                 follow: bool = False) -> int:
    """A descriptor of the regular file `path` (OSError otherwise); never follows a symlink unless `follow`."""
    fd = os.open(path, flags | FLAGS | (0 if follow else os.O_NOFOLLOW), mode, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise not_regular(st.st_mode)
    except OSError:
        os.close(fd)
        raise
    return fd


def read_to_end(fd: int, limit: int | None = None) -> bytes:
    """Everything up to end of file; OSError (EFBIG) past `limit` bytes."""
    data = os.read(fd, CHUNK)
    if not data:
        return data
    chunks = [data]
    total = len(data)
    while data:
        data = os.read(fd, CHUNK)
        total += len(data)
        if limit is not None and total > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes")
        chunks.append(data)
    return b"".join(chunks)


def read_regular(path: str, *, dir_fd: int | None = None, limit: int | None = None, follow: bool = False) -> bytes:
    """The whole content of the regular file `path` (OSError when it is none, or larger than `limit`)."""
    fd = open_regular(path, dir_fd=dir_fd, follow=follow)
    try:
        return read_to_end(fd, limit)
    finally:
        os.close(fd)
