"""The firewall plugin over the iptables backend: per family that has addresses, one concurrent read of the
chains the plugin uses (`iptables -S`) and one `iptables-restore --noflush` write, under the firewall lock
(host.locked). A writer that does not take our lock (the Go plugin) may create a shared chain between our read
and our write: `-N` then fails the whole (atomic) restore, and one fresh read settles it.

Same functions, same signatures as backend_nftables: plugin.py picks one by the backend's name."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

from common.config import IPAddress
from common.errors import CniError, Code
from common.exec import DEFAULT_PATH, find_program
from common.firewall import iptables
from common.firewall.backend import Iptables
from common.firewall.iptables import SavedTable

from . import rules_iptables as rules
from .config import Attachment, FirewallConf


def read(backend: Iptables, conf: FirewallConf, family: int) -> SavedTable:
    return iptables.parse_save(backend.read("filter", family, rules.read_chains(conf)), "filter")


def _families(ips: list[IPAddress]) -> dict[int, list[IPAddress]]:
    by_family: dict[int, list[IPAddress]] = {}
    for ip in ips:
        by_family.setdefault(ip.version, []).append(ip)
    return by_family


def add(backend: Iptables, conf: FirewallConf, who: Attachment, ips: list[IPAddress], bridge: str | None) -> None:
    for family, own in sorted(_families(ips).items()):
        for attempt in (1, 2):
            script = rules.add_script(conf, own, bridge, read(backend, conf, family))
            try:
                backend.write(script, family)
                break
            except CniError as exc:
                if attempt == 2 or "already exists" not in exc.msg:
                    raise


def delete(backend: Iptables, conf: FirewallConf, who: Attachment, ips: list[IPAddress]) -> None:
    for family, own in sorted(_families(ips).items()):
        backend.write(rules.delete_script(own, read(backend, conf, family)), family)


def check(backend: Iptables, conf: FirewallConf, who: Attachment, ips: list[IPAddress], bridge: str | None) -> None:
    for family, own in sorted(_families(ips).items()):
        missing = rules.check(conf, own, bridge, read(backend, conf, family))
        if missing:
            raise CniError(Code.INTERNAL, missing)


def gc(backend: Iptables, conf: FirewallConf, stale: list[IPAddress], valid: frozenset[tuple[str, str]],
       interfaces: frozenset[str] | None) -> None:
    by_family = _families(stale)
    _each_family(backend, conf, lambda family, saved: rules.gc_script(by_family.get(family, []), interfaces, saved))


def _each_family(backend: Iptables, conf: FirewallConf, build: Callable[[int, SavedTable], str]) -> None:
    """GC in both families; one that cannot be read (no ip6tables) is skipped, unless neither can."""
    usable, failure = 0, ""
    for family in (4, 6):
        try:
            saved = read(backend, conf, family)
        except CniError as exc:
            if exc.code == Code.TRY_AGAIN_LATER:
                raise
            failure = failure or exc.msg
            continue
        usable += 1
        backend.write(build(family, saved), family)
    if not usable:
        raise CniError(Code.INTERNAL, f"neither iptables nor ip6tables usable: {failure}")


def installed(backend: Iptables) -> bool:
    """Whether the tools are on PATH at all (without them there can be no rules of ours to remove)."""
    import os
    path = os.environ.get("PATH", DEFAULT_PATH)
    return all(find_program(tool, path) is not None for tool in ("iptables", "iptables-restore"))


def status(backend: Iptables) -> None:
    if not backend.usable():
        raise CniError(Code.NOT_AVAILABLE, "the iptables backend is not usable: `iptables -t filter -S FORWARD` "
                       "failed (is iptables installed and the filter table available?)")
