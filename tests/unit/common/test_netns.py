"""common/netns.py calls setns(2) through _ctypes alone: it must answer as ctypes' libc.setns does."""
from __future__ import annotations

import ctypes
import errno
import os

import pytest

from common import netns


def ctypes_setns(fd: int) -> tuple[int, int]:
    libc = ctypes.CDLL(None, use_errno=True)
    ctypes.set_errno(0)
    return libc.setns(fd, netns.CLONE_NEWNET), ctypes.get_errno()


def ours(fd: int) -> tuple[int, int]:
    return netns._setns_call(fd, netns.CLONE_NEWNET), netns._errno()


def test_a_file_that_is_no_namespace_is_einval_as_with_ctypes(tmp_path) -> None:
    path = tmp_path / "plain"
    path.write_bytes(b"")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert ours(fd) == ctypes_setns(fd) == (-1, errno.EINVAL)
        with pytest.raises(netns.NotANetns):
            netns._setns(fd, str(path))
    finally:
        os.close(fd)


def test_a_descriptor_that_is_not_open_is_ebadf_as_with_ctypes() -> None:
    fd = 1_000_000      # above any open descriptor (RLIMIT_NOFILE here is far below)
    assert ours(fd) == ctypes_setns(fd) == (-1, errno.EBADF)
    with pytest.raises(netns.CniError, match="Bad file descriptor"):
        netns._setns(fd, "/gone")


@pytest.mark.skipif(os.geteuid() != 0, reason="setns needs CAP_SYS_ADMIN")
def test_entering_our_own_namespace_succeeds() -> None:
    fd = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        assert ours(fd)[0] == 0
    finally:
        os.close(fd)
