"""Bounded lock waits (common.flock): code 11 naming what was waited for, and PYCNI_LOCK_TIMEOUT."""
from __future__ import annotations

import fcntl
import os

import pytest

from common import flock
from common.errors import CniError


def test_flock_times_out_with_try_again_naming_what_it_waited_for(tmp_path):
    path = tmp_path / "lock"
    holder = os.open(path, os.O_CREAT | os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    waiter = os.open(path, os.O_RDWR)
    try:
        with pytest.raises(CniError) as info:
            flock.acquire(waiter, timeout=0.05, what=f"the lock {path}")
        assert info.value.code == 11 and info.value.msg == f"timed out after 0.05 s waiting for the lock {path}"
        os.close(holder)
        flock.acquire(waiter, timeout=0.05, what="the lock")
    finally:
        os.close(waiter)


@pytest.mark.parametrize("value, expected", [("", 30.0), ("0", 0.0), ("2.5", 2.5)])
def test_lock_timeout_from_env(value, expected):
    assert flock.timeout_from_env({"PYCNI_LOCK_TIMEOUT": value}, 30.0) == expected


@pytest.mark.parametrize("value", ["x", "-1", "nan"])
def test_bad_lock_timeout_env_is_code_4(value):
    with pytest.raises(CniError) as info:
        flock.timeout_from_env({"PYCNI_LOCK_TIMEOUT": value}, 30.0)
    assert info.value.code == 4 and "PYCNI_LOCK_TIMEOUT" in info.value.msg
