"""common/scoped.py stands in for contextlib in the plugins: each case runs against both and must agree."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from common import scoped


def test_undo_runs_steps_in_reverse_when_the_block_fails() -> None:
    for stack in (contextlib.ExitStack, scoped.Undo):
        done: list[int] = []
        with pytest.raises(KeyError):
            with stack() as undo:
                undo.callback(done.append, 1)
                undo.callback(done.append, 2)
                raise KeyError("step 3 failed")
        assert done == [2, 1], stack


def test_undo_keeps_everything_after_pop_all() -> None:
    for stack in (contextlib.ExitStack, scoped.Undo):
        done: list[int] = []
        with stack() as undo:
            undo.callback(done.append, 1)
            undo.pop_all()
        assert done == [], stack


def test_undo_runs_every_step_when_one_raises_and_raises_the_last_error() -> None:
    def fail(message: str) -> None:
        raise ValueError(message)

    for stack in (contextlib.ExitStack, scoped.Undo):
        done: list[int] = []
        with pytest.raises(ValueError) as caught:
            with stack() as undo:
                undo.callback(done.append, 1)
                undo.callback(fail, "second")
                undo.callback(fail, "first")
                raise KeyError("the block")
        assert done == [1], stack
        assert str(caught.value) == "second", stack


@pytest.mark.parametrize("make", [contextlib.contextmanager, scoped.contextmanager], ids=["contextlib", "scoped"])
def test_contextmanager_enter_exit_and_errors(make) -> None:
    events: list[str] = []

    @make
    def around(name: str) -> Iterator[str]:
        events.append("enter")
        try:
            yield name.upper()
        finally:
            events.append("exit")

    with around("x") as value:
        assert value == "X"
    error = OSError("inside")
    with pytest.raises(OSError) as caught:
        with around("y"):
            raise error
    assert caught.value is error
    assert events == ["enter", "exit", "enter", "exit"]
    assert around.__name__ == "around"


@pytest.mark.parametrize("make", [contextlib.contextmanager, scoped.contextmanager], ids=["contextlib", "scoped"])
def test_contextmanager_a_generator_may_translate_or_swallow_the_error(make) -> None:
    @make
    def translating() -> Iterator[None]:
        try:
            yield
        except KeyError:
            raise RuntimeError("translated") from None

    @make
    def swallowing() -> Iterator[None]:
        try:
            yield
        except KeyError:
            pass

    with pytest.raises(RuntimeError, match="translated"):
        with translating():
            raise KeyError("x")
    with swallowing():
        raise KeyError("swallowed")
    with pytest.raises(ValueError):      # not the caught kind: goes through
        with swallowing():
            raise ValueError("y")


@pytest.mark.parametrize("make", [contextlib.contextmanager, scoped.contextmanager], ids=["contextlib", "scoped"])
def test_contextmanager_refuses_generators_that_do_not_yield_once(make) -> None:
    @make
    def never() -> Iterator[None]:
        return
        yield

    @make
    def twice() -> Iterator[None]:
        yield
        yield

    with pytest.raises(RuntimeError):
        with never():
            pass
    with pytest.raises(RuntimeError):
        with twice():
            pass


@pytest.mark.parametrize("suppress", [contextlib.suppress, scoped.suppress], ids=["contextlib", "scoped"])
def test_suppress_ends_the_block_on_the_named_errors_and_their_subclasses(suppress) -> None:
    reached: list[str] = []
    with suppress(OSError):
        raise FileNotFoundError("a subclass")
    with suppress(FileNotFoundError, ValueError):
        raise ValueError("second kind")
    with suppress(OSError):
        reached.append("no error")
    with pytest.raises(KeyError):
        with suppress(OSError):
            raise KeyError("other")
    assert reached == ["no error"]
