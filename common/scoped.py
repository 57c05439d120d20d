"""The three pieces of contextlib the plugins use: `contextmanager`, `suppress`, and `Undo` (ExitStack's
callback/pop_all subset, for rolling back a failed ADD).

Why not contextlib: importing it pulls in functools and collections (with operator, keyword, reprlib), ~4.5 ms
of every plugin start on this machine (docs/benchmarks.md, "Where the time goes"). The behaviour kept is the
part the plugins rely on; tests/unit/test_scoped.py holds it next to contextlib's.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Generator, Iterator
    from contextlib import AbstractContextManager
    from types import TracebackType
    from typing import Any, Literal, ParamSpec, TypeVar

    P = ParamSpec("P")
    T = TypeVar("T")


class _GeneratorContext:
    """One `with` over a generator that yields once: before the yield is __enter__, after it __exit__."""

    def __init__(self, generator: Generator[Any, None, None]) -> None:
        self._generator = generator

    def __enter__(self) -> Any:
        try:
            return next(self._generator)
        except StopIteration:
            raise RuntimeError("generator didn't yield") from None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> bool:
        if error is None:
            try:
                next(self._generator)
            except StopIteration:
                return False
            raise RuntimeError("generator didn't stop")
        try:
            self._generator.throw(error)
        except StopIteration as stop:
            return stop is not error     # the generator caught the error and returned: suppressed
        except BaseException as raised:
            if raised is error:
                return False             # not handled: the original error goes on, with its traceback
            raise
        raise RuntimeError("generator didn't stop after throw()")


def contextmanager(function: Callable[P, Iterator[T]]) -> Callable[P, AbstractContextManager[T]]:
    """As contextlib.contextmanager, for generators that yield exactly once."""
    def context(*args: P.args, **kwargs: P.kwargs) -> AbstractContextManager[T]:
        # generator functions, annotated `-> Iterator[T]` as contextlib allows
        return _GeneratorContext(function(*args, **kwargs))  # type: ignore[arg-type]
    context.__name__ = function.__name__
    context.__qualname__ = function.__qualname__
    context.__doc__ = function.__doc__
    return context


class suppress:  # noqa: N801 - named as contextlib's, which it replaces
    """`with suppress(FileNotFoundError): ...`: those errors (and their subclasses) end the block silently."""

    def __init__(self, *errors: type[BaseException]) -> None:
        self._errors = errors

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> bool:
        return kind is not None and issubclass(kind, self._errors)


class Undo:
    """What a failed step must take back: `callback(f, *args)` records a step, leaving the `with` block runs
    them in reverse order unless `pop_all()` (success: keep everything) came first. Like ExitStack, every step
    runs even when one raises, and the last error raised by a step is what propagates (unlike ExitStack, its
    __context__ is the block's error, not the other steps' errors: the plugins' steps log and never raise)."""

    def __init__(self) -> None:
        self._steps: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def callback(self, step: Callable[..., Any], *args: Any) -> None:
        self._steps.append((step, args))

    def pop_all(self) -> None:
        self._steps = []

    def __enter__(self) -> Undo:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> Literal[False]:
        failed: BaseException | None = None
        while self._steps:
            step, args = self._steps.pop()
            try:
                step(*args)
            except BaseException as exc:  # noqa: BLE001 - the remaining steps still run; raised below
                failed = exc
        if failed is not None:
            raise failed
        return False
