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
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any, Protocol

    class Backend(Protocol):
        name: str

        def usable(self) -> bool: ...

        def write(self, script: str, family: int = ...) -> None: ...

        def forget(self) -> None: ...

from .. import exec as execs
from ..errors import CniError, Code
from . import iptables, nftables


class Iptables:
    """iptables-save / `iptables -S` reads and one `iptables-restore --noflush` write per family."""

    name = "iptables"

    def __init__(self, programs: execs.Programs = execs.SYSTEM, *, needed_by: str) -> None:
        self.programs, self.needed_by = programs, needed_by
        self._reads: dict[tuple[str, int, tuple[str, ...] | None], str] = {}

    def read(self, table: str, family: int, chains: Sequence[str] | None = None) -> str:
        """`table` of `family` as iptables-save text: only `chains` (absent ones left out), or all of it."""
        key = (table, family, None if chains is None else tuple(chains))
        if key not in self._reads:
            self._reads[key] = (
                iptables.save(table, family, needed_by=self.needed_by, programs=self.programs) if chains is None
                else iptables.save_chains(table, chains, family, needed_by=self.needed_by, programs=self.programs))
        return self._reads[key]

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
        self._reads.clear()
        iptables.restore(script, family, needed_by=self.needed_by, programs=self.programs)

    def forget(self) -> None:
        self._reads.clear()


class Nftables:
    """`nft -j list table` reads and one `nft -f -` write (one transaction, whatever families it touches)."""

    name = "nftables"

    def __init__(self, programs: execs.Programs = execs.SYSTEM, *, needed_by: str) -> None:
        self.programs, self.needed_by = programs, needed_by
        self._reads: dict[tuple[str, str], list[dict[str, Any]] | None] = {}

    def read(self, table: str, family: str = "inet") -> list[dict[str, Any]] | None:
        if (table, family) not in self._reads:
            self._reads[table, family] = nftables.list_table(family, table, needed_by=self.needed_by,
                                                             programs=self.programs)
        return self._reads[table, family]

    def usable(self) -> bool:
        import os
        return execs.find_program("nft", os.environ.get("PATH", execs.DEFAULT_PATH)) is not None

    def write(self, script: str, family: int = 0) -> None:
        self._reads.clear()
        nftables.apply(script, needed_by=self.needed_by, programs=self.programs)

    def forget(self) -> None:
        self._reads.clear()


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
