"""iptables edge: one read (of the chains an operation needs, or of the whole table) and one
`iptables-restore --noflush` write per operation.

Under `--noflush`, a `:CHAIN - [0:0]` line creates the chain or flushes it if it exists, and the whole script is
committed atomically (all or nothing), so a per-container chain is rewritten idempotently in one call.
The xtables lock is waited for at most LOCK_WAIT seconds; past that the caller gets code 11 (try again later).
"""
from __future__ import annotations

from .. import exec as execs
from ..errors import CniError, Code, TryAgainError
from ..record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Sequence

LOCK_WAIT = 10  # seconds; the reference waits forever (`--wait` without a timeout)
_TOOLS = {4: ("iptables", "iptables-save", "iptables-restore"), 6: ("ip6tables", "ip6tables-save", "ip6tables-restore")}


def save(table: str, family: int, *, needed_by: str, programs: execs.Programs = execs.SYSTEM) -> str:
    """The current rules of `table` in iptables-save format ('' when the table has no rules yet)."""
    done = programs.run([_TOOLS[family][1], "-t", table], needed_by=needed_by)
    if done.status != 0:
        raise _failure(_TOOLS[family][1], done, "")
    return done.stdout.decode(errors="replace")


def save_chains(table: str, chains: Sequence[str], family: int, *, needed_by: str,
                programs: execs.Programs = execs.SYSTEM) -> str:
    """An iptables-save style dump holding only `chains` (absent ones left out).

    Speed: `iptables -S CHAIN` costs ~1 ms whatever the size of the table, while iptables-save reads all of it
    (~45 ms with 5,000 kube-proxy rules). The reads run concurrently (exec.run_all)."""
    return saved_chains(table, family, programs.run_all(chain_reads(table, chains, family), needed_by=needed_by))


def chain_reads(table: str, chains: Sequence[str], family: int) -> list[list[str]]:
    """The `iptables -S CHAIN` commands of save_chains, one per chain, in order."""
    return [[_TOOLS[family][0], "-w", str(LOCK_WAIT), "-t", table, "-S", chain] for chain in chains]


def saved_chains(table: str, family: int, answers: Sequence[execs.Completed]) -> str:
    """save_chains' dump from the answers of its chain_reads (however they were run)."""
    lines = [f"*{table}"]
    for done in answers:   # one per chain, in order
        if done.status != 0:
            if _missing_chain(done):
                continue
            raise _failure(_TOOLS[family][0], done, "")
        lines += _as_save_lines(done.stdout.decode(errors="replace"))
    return "\n".join(lines + ["COMMIT", ""])


def _missing_chain(done: execs.Completed) -> bool:
    text = done.stderr.decode(errors="replace")
    # legacy: "No chain/target/match by that name"; nf_tables: "chain `X' in table `nat' is incompatible"
    return done.status == 1 and ("No chain/target/match" in text or "is incompatible" in text
                                 or "does not exist" in text)


def _as_save_lines(listing: str) -> list[str]:
    """`iptables -S` output as iptables-save lines: `-N X` -> `:X - [0:0]`, `-P X ACCEPT` -> `:X ACCEPT [0:0]`."""
    lines = []
    for line in listing.splitlines():
        if line.startswith("-N "):
            lines.append(f":{line[3:].strip()} - [0:0]")
        elif line.startswith("-P "):
            name, policy = line[3:].split()[:2]
            lines.append(f":{name} {policy} [0:0]")
        elif line.startswith("-A "):
            lines.append(line)
    return lines


def restore(script: str, family: int, *, needed_by: str, programs: execs.Programs = execs.SYSTEM) -> None:
    """Apply an iptables-restore script (with its `*table` header and COMMIT) without flushing other rules."""
    if not script.strip():
        return
    argv = [_TOOLS[family][2], "--noflush", "-w", str(LOCK_WAIT)]
    done = programs.run(argv, input=script.encode(), needed_by=needed_by, timeout=LOCK_WAIT + 30)
    if done.status != 0:
        raise _failure(_TOOLS[family][2], done, script)


def quote(text: str) -> str:
    """Quote a rule argument (comments carry network names and container IDs) for iptables-restore."""
    if text and all(c.isalnum() or c in "-_./:,=[]" for c in text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def split_rule(line: str) -> list[str]:
    """Tokenise one iptables-save rule line, undoing its quoting: iptables-save writes a value with anything
    but [A-Za-z0-9_-] in double quotes, with `"`, `\\` and `'` escaped by a backslash. (shlex would do, but it
    imports re and is slow on a kube-proxy node's thousands of lines.)"""
    if '"' not in line and "\\" not in line:
        return line.split()
    tokens: list[str] = []
    current: list[str] = []
    in_token = quoted = escaped = False
    for ch in line:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = in_token = True
        elif ch == '"':
            quoted, in_token = not quoted, True
        elif ch.isspace() and not quoted:
            if in_token:
                tokens.append("".join(current))
                current, in_token = [], False
        else:
            current.append(ch)
            in_token = True
    if quoted or escaped:
        raise ValueError(f"unbalanced quoting in iptables rule {line!r}")
    if in_token:
        tokens.append("".join(current))
    return tokens


@record(frozen=True)
class SavedTable:
    """One table of an `iptables-save` dump: chain names and `-A CHAIN ...` rule lines, in saved order.
    Rule lines are kept verbatim (iptables-save's canonical text), so `-D` + line[3:] deletes a rule."""

    chains: tuple[str, ...] = ()
    rules: tuple[str, ...] = ()

    def has_chain(self, name: str) -> bool:
        return name in self.chains

    def rules_of(self, chain: str) -> list[str]:
        head = f"-A {chain} "
        return [line for line in self.rules if line.startswith(head)]

    def has_rule(self, line: str) -> bool:
        return line in self.rules


def parse_save(text: str, table: str = "nat") -> SavedTable:
    """The `*table` section of iptables-save output; an absent table is an empty SavedTable."""
    chains: list[str] = []
    rules: list[str] = []
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            inside = line[1:] == table
        elif not inside or not line or line.startswith("#"):
            continue
        elif line == "COMMIT":
            inside = False
        elif line.startswith(":"):
            chains.append(line[1:].split(" ", 1)[0])
        elif line.startswith("-A "):
            rules.append(line)
    return SavedTable(tuple(chains), tuple(rules))


def deletion(rule_line: str) -> str:
    """The restore command deleting a saved rule: `-A CHAIN spec` -> `-D CHAIN spec`."""
    if not rule_line.startswith("-A "):
        raise ValueError(f"not a saved rule line: {rule_line!r}")
    return "-D " + rule_line[3:]


def rule_comment(rule_line: str) -> str | None:
    """The text of a rule's `--comment`, unquoted, or None."""
    try:
        tokens = split_rule(rule_line)
    except ValueError:
        return None
    for i, token in enumerate(tokens[:-1]):
        if token == "--comment":
            return tokens[i + 1]
    return None


def _failure(tool: str, done: execs.Completed, script: str) -> CniError:
    text = (done.stderr or done.stdout).decode(errors="replace").strip()
    if "xtables lock" in text or done.status == 4 and "lock" in text:
        return TryAgainError(f"{tool}: the xtables lock was held for more than {LOCK_WAIT} s: {text}")
    detail = f"script:\n{script}" if script else ""
    return CniError(Code.INTERNAL, f"{tool} failed (exit {done.status}): {text}", detail)
