"""One blocking step on a second thread while this one goes on:

    removal = background.start(delete_interface, path, ifname)
    ...                     # other steps of the operation
    removal.wait()          # its result, or its exception raised here

What it buys: deleting a veth blocks in the kernel for ~10-30 ms (unregistering a netdevice waits for RCU grace
periods) while holding no Python lock, so bridge DEL runs its IPAM DEL and firewall teardown meanwhile
(docs/benchmarks.md, "Where the time goes"). `_thread`, not threading: the C module is loaded with the interpreter
already, threading costs ~2 ms to import. A namespace entered on the second thread (setns) is that thread's
alone, so the step may enter the pod's namespace while this thread stays in the node's.
"""
from __future__ import annotations

import _thread

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


class Started:
    def __init__(self, step: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._done = _thread.allocate_lock()
        self._done.acquire()
        self._result: Any = None
        self._error: BaseException | None = None
        _thread.start_new_thread(self._run, (step, args))

    def _run(self, step: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._result = step(*args)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, raised there
            self._error = exc
        finally:
            self._done.release()

    def wait(self) -> Any:
        """Blocks until the step has ended (as the step would have blocked this thread)."""
        self._done.acquire()
        self._done.release()
        if self._error is not None:
            raise self._error
        return self._result


def start(step: Callable[..., Any], *args: Any) -> Started:
    return Started(step, args)
