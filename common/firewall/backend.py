"""The firewall backend: one interface for every plugin that writes rules (bridge's ipMasq, portmap, firewall).

A plugin builds its rules as text with pure functions from what its backend read, and hands the text back to the
same backend to write. The backend is chosen once per operation (`choose`), from the config and the host:

    Backend       name, usable(), write(script, family), forget(); each kind reads its own snapshot:
    Iptables      read(table, family, chains) -> iptables-save text (only `chains`, via `iptables -S`, when given)
    Nftables      read(table, family) -> the `nft -j list table` objects of `table` in nft's `family` (inet,
                  ip, ip6, bridge), None when it does not exist
    NullBackend   reads nothing and writes nothing: an operation that has no rules to write

Reads are cached by the backend object (it lives for one operation) and every write forgets them, so a rule
builder sees one consistent read and a retry after a race reads afresh. The effects go through the `Programs`
seam of common.exec, so a test's fake runner drives the very code production runs.

Prefetch (the one place of this trick): `prefetch()` starts a read's programs at once, when the operation
begins, and the first `read()` of the same key collects them. The read then costs nothing on the operation's
critical path: it ran while the plugin did its netlink, IPAM or lock work (a few ms per ADD). What is started
must end: `close()` (the backend is a context manager) kills and reaps whatever was never collected, and so do
`write` and `forget`, after which a prefetched answer would be stale by definition. A prefetched answer is taken
earlier than a plain read, so each caller says why it is still good enough (bridge.rules, portmap.plugin) and
may give `recheck`: a prefetched answer it says yes to is read again when it is collected. A program that cannot
even be started is no error at prefetch time: the read runs as if nothing was prefetched, and fails as before.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Protocol, TypeVar

    _Self = TypeVar("_Self", bound="_CachedReads")
    Listing = list[dict[str, Any]] | None     # an `nft -j list table` answer; None: no such table

    class Backend(Protocol):
        name: str

        def usable(self) -> bool: ...

        def write(self, script: str, family: int = ...) -> None: ...

        def forget(self) -> None: ...

        def close(self) -> None: ...

from .. import exec as execs
from ..errors import CniError, Code
from . import iptables, nftables


class _CachedReads:
    """What both program backends keep for one operation: the reads made (`_reads`, key -> answer) and the reads
    prefetched and not yet collected (`_early`, key -> programs and recheck), and how they end ("Prefetch")."""

    def __init__(self, programs: execs.Programs = execs.SYSTEM, *, needed_by: str) -> None:
        self.programs, self.needed_by = programs, needed_by
        self._reads: dict[Any, Any] = {}
        self._early: dict[Any, tuple[list[execs.Started], Callable[[Any], bool] | None]] = {}

    def _prefetch(self, key: object, commands: Sequence[Sequence[str]],
                  recheck: Callable[[Any], bool] | None) -> None:
        if key not in self._reads and key not in self._early:
            started = _start_all(self.programs, commands, self.needed_by)
            if started is not None:
                self._early[key] = started, recheck

    def _collect_prefetched(self, key: object, answer_of: Callable[[list[execs.Completed]], object]) -> None:
        """The prefetched read of `key`, if any, becomes the cached read, unless its recheck distrusts it."""
        if key in self._early:
            started, recheck = self._early.pop(key)
            answer = answer_of(_collect_all(started))
            if recheck is None or not recheck(answer):
                self._reads[key] = answer

    def forget(self) -> None:
        self._reads.clear()
        self.close()

    def close(self) -> None:
        """Kill and reap every prefetched read not collected (the operation ends, or wants the state anew)."""
        while self._early:
            _close_all(self._early.popitem()[1][0])

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class Iptables(_CachedReads):
    """iptables-save / `iptables -S` reads and one `iptables-restore --noflush` write per family."""

    name = "iptables"

    def prefetch(self, table: str, family: int, chains: Sequence[str], *,
                 recheck: Callable[[str], bool] | None = None) -> None:
        """Start read(table, family, chains) now (see "Prefetch" above); an answer `recheck` says yes to is
        read again when it is collected."""
        self._prefetch((table, family, tuple(chains)), iptables.chain_reads(table, chains, family), recheck)

    def read(self, table: str, family: int, chains: Sequence[str] | None = None) -> str:
        """`table` of `family` as iptables-save text: only `chains` (absent ones left out), or all of it."""
        key = (table, family, None if chains is None else tuple(chains))
        self._collect_prefetched(key, lambda answers: iptables.saved_chains(table, family, answers))
        if key not in self._reads:
            self._reads[key] = (
                iptables.save(table, family, needed_by=self.needed_by, programs=self.programs) if chains is None
                else iptables.save_chains(table, chains, family, needed_by=self.needed_by, programs=self.programs))
        text: str = self._reads[key]
        return text

    def readable(self, table: str, family: int, chains: Sequence[str] | None = None) -> bool:
        """Whether `table` of `family` can be read (the read is kept for the operation). A held xtables lock or
        a hung tool is no "unusable": it stays an error (code 11), or a DEL would report success and leave rules."""
        try:
            self.read(table, family, chains)
        except CniError as exc:
            if exc.code == Code.TRY_AGAIN_LATER:
                raise
            return False
        return True

    def usable(self) -> bool:
        return self.readable("filter", 4, ["FORWARD"])

    def write(self, script: str, family: int = 4) -> None:
        self.forget()
        iptables.restore(script, family, needed_by=self.needed_by, programs=self.programs)


class Nftables(_CachedReads):
    """`nft -j list table` reads and one `nft -f -` write (one transaction, whatever families it touches)."""

    name = "nftables"

    def prefetch(self, table: str, family: str = "inet", *, recheck: Callable[[Listing], bool] | None = None) -> None:
        """Start read(table, family) now (see "Prefetch" above); an answer `recheck` says yes to is read again
        when it is collected."""
        self._prefetch((table, family), [nftables.list_argv(family, table)], recheck)

    def read(self, table: str, family: str = "inet") -> Listing:
        """The objects of `table` in nft's `family`, None when it does not exist."""
        self._collect_prefetched((table, family), lambda answers: nftables.listed(family, table, answers[0]))
        if (table, family) not in self._reads:
            self._reads[table, family] = nftables.list_table(family, table, needed_by=self.needed_by,
                                                             programs=self.programs)
        listing: Listing = self._reads[table, family]
        return listing

    def usable(self) -> bool:
        import os
        return execs.find_program("nft", os.environ.get("PATH", execs.DEFAULT_PATH)) is not None

    def write(self, script: str, family: int = 0) -> None:
        self.forget()
        nftables.apply(script, needed_by=self.needed_by, programs=self.programs)


def _start_all(programs: execs.Programs, commands: Sequence[Sequence[str]],
               needed_by: str) -> list[execs.Started] | None:
    """Every command started; None, with none left running, when one cannot be (the read will say why)."""
    started: list[execs.Started] = []
    try:
        for argv in commands:
            started.append(programs.start(argv, needed_by=needed_by))
    except CniError:
        _close_all(started)
        return None
    return started


def _collect_all(started: list[execs.Started]) -> list[execs.Completed]:
    """Their answers in order, as exec.run_all gives them: each waited for at most exec.TIMEOUT; after a failure
    the rest are killed."""
    try:
        return [child.collect(execs.TIMEOUT) for child in started]
    finally:
        _close_all(started)


def _close_all(started: list[execs.Started]) -> None:
    for child in started:
        child.close()


class NullBackend:
    """The backend of an operation with nothing to write: no program is run, not even a probe."""

    name = "none"

    def usable(self) -> bool:
        return True

    def write(self, script: str, family: int = 0) -> None:
        if script.strip():
            raise CniError(Code.INTERNAL, "internal error: rules written to the null firewall backend")

    def forget(self) -> None:
        return None

    def close(self) -> None:
        return None


def choose(configured: str | None, *, iptables_backend: Iptables, nftables_backend: Nftables,
           probe: Callable[[Iptables], bool] | None = None) -> Iptables | Nftables:
    """The configured backend; unset, iptables when `probe` (default: its filter table can be read) says it is
    usable, else nftables. The probe's read stays cached in the backend for the operation's own reads."""
    if configured == "nftables":
        return nftables_backend
    if configured == "iptables":
        return iptables_backend
    usable = probe(iptables_backend) if probe is not None else iptables_backend.usable()
    return iptables_backend if usable else nftables_backend
