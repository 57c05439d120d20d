"""netns helpers against real namespaces (root)."""
from __future__ import annotations

import os

import pytest

from common import netns
from common.errors import CniError

pytestmark = pytest.mark.root


def inode(path: str) -> int:
    return os.stat(path).st_ino


def test_entered_switches_and_restores(host_ns):
    own = inode("/proc/thread-self/ns/net")
    with netns.entered(host_ns.path):
        assert inode("/proc/thread-self/ns/net") == inode(host_ns.path)
    assert inode("/proc/thread-self/ns/net") == own


def test_entered_restores_after_an_error(host_ns):
    own = inode("/proc/thread-self/ns/net")
    with pytest.raises(RuntimeError):
        with netns.entered(host_ns.path):
            raise RuntimeError("boom")
    assert inode("/proc/thread-self/ns/net") == own


def test_missing_namespace_is_netns_gone_and_never_created(tmp_path):
    path = str(tmp_path / "gone")
    with pytest.raises(netns.NetnsGone) as info:
        with netns.entered(path):
            pass
    assert info.value.code == 3 and not os.path.exists(path)


def test_a_regular_file_is_not_a_namespace(tmp_path):
    path = tmp_path / "plain"
    path.write_text("")
    with pytest.raises(CniError) as info:
        with netns.entered(str(path)):
            pass
    assert "is not a network namespace" in info.value.msg


def test_a_fifo_is_refused_at_once_not_waited_on(tmp_path):
    """open() of a FIFO blocks until a writer comes; a netns path must never hang a plugin."""
    path = tmp_path / "fifo"
    os.mkfifo(path)
    with pytest.raises(CniError) as info:
        with netns.entered(str(path)):
            pass
    assert info.value.code == 4 and "is not a network namespace" in info.value.msg
