"""nftables edge: read a table as JSON with `nft -j list`, apply a transaction with one `nft -f -`."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from .. import exec as execs
from .. import jsonio
from ..errors import CniError, Code


def list_table(family: str, table: str, *, needed_by: str,
               programs: execs.Programs = execs.SYSTEM) -> list[dict[str, Any]] | None:
    """The table's objects (`nftables` array entries) or None when the table does not exist."""
    return listed(family, table, programs.run(list_argv(family, table), needed_by=needed_by))


def list_argv(family: str, table: str) -> list[str]:
    return ["nft", "-j", "list", "table", family, table]


def listed(family: str, table: str, done: execs.Completed) -> list[dict[str, Any]] | None:
    """list_table's answer from the run of its list_argv (however it was run)."""
    if done.status != 0:
        text = done.stderr.decode(errors="replace")
        if "No such file or directory" in text or "does not exist" in text:
            return None
        raise CniError(Code.INTERNAL, f"nft list table {family} {table} failed: {text.strip()}")
    try:
        data = jsonio.loads(done.stdout)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise CniError(Code.INTERNAL, f"nft printed undecodable JSON for table {family} {table}")
    return list(data.get("nftables", []))


def apply(script: str, *, needed_by: str, programs: execs.Programs = execs.SYSTEM) -> None:
    """Apply an nft script as one atomic transaction."""
    if not script.strip():
        return
    done = programs.run(["nft", "-f", "-"], input=script.encode(), needed_by=needed_by)
    if done.status != 0:
        text = done.stderr.decode(errors="replace").strip()
        raise CniError(Code.INTERNAL, f"nft -f failed (exit {done.status}): {text}", f"script:\n{script}")


def quote(text: str) -> str:
    """An nft string literal (comments carry container IDs); quotes and backslashes are dropped, not escaped,
    as nft has no escape for them inside strings."""
    return '"' + "".join(c for c in text if c not in '"\\\n\r') + '"'


def rules(objects: list[dict[str, Any]], chain: str | None = None) -> list[dict[str, Any]]:
    """The `rule` objects of a `list_table` answer, optionally only those of one chain."""
    found = (obj["rule"] for obj in objects if isinstance(obj.get("rule"), dict))
    return [rule for rule in found if chain is None or rule.get("chain") == chain]


def chains(objects: list[dict[str, Any]]) -> set[str]:
    """The chain names of a `list_table` answer."""
    return {obj["chain"]["name"] for obj in objects if isinstance(obj.get("chain"), dict)}
