"""Collecting the errors of every step (common.errors.ErrorCollector), as DEL and GC do."""
from __future__ import annotations

import pytest

from common.errors import CniError, ErrorCollector


def test_error_collector_runs_every_step():
    errors = ErrorCollector("DEL")
    done = []
    with errors.step("one"):
        raise CniError(11, "busy")
    with errors.step("two"):
        done.append(2)
    with pytest.raises(CniError) as info:
        errors.raise_if_any()
    assert done == [2] and info.value.code == 11 and info.value.msg == "DEL: one: busy"
    with errors.step("three"):
        raise ValueError("bad")
    with pytest.raises(CniError) as info:
        errors.raise_if_any()
    assert info.value.msg == "DEL failed in 2 steps: one: busy; three: ValueError: bad"


def test_error_collector_silent_when_all_good():
    errors = ErrorCollector("GC")
    with errors.step("ok"):
        pass
    errors.raise_if_any()
