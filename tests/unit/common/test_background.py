"""common/background.py: a step on a second thread, its result or error handed back by wait()."""
from __future__ import annotations

import _thread

import pytest

from common import background


def test_the_step_runs_while_the_caller_goes_on() -> None:
    released = _thread.allocate_lock()
    released.acquire()

    def step(value: int) -> int:
        # Only the caller can release this lock, and it does so after start() returned: had start() run the
        # step itself, the acquire below would time out and the step would fail.
        if not released.acquire(timeout=10):
            raise AssertionError("the caller never went on")
        return value * 2

    started = background.start(step, 21)
    released.release()
    assert started.wait() == 42


def test_the_steps_error_is_raised_by_wait() -> None:
    def step() -> None:
        raise FileNotFoundError("gone")

    started = background.start(step)
    with pytest.raises(FileNotFoundError, match="gone"):
        started.wait()
    with pytest.raises(FileNotFoundError):      # and again: wait() may be asked twice
        started.wait()


def test_the_step_runs_on_another_thread() -> None:
    assert background.start(_thread.get_ident).wait() != _thread.get_ident()
