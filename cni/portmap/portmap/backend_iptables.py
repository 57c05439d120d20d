"""The iptables backend's effects: per family one read (the chains the operation needs, read concurrently
with `iptables -S`; the whole nat table only for GC) and one `iptables-restore --noflush` write, under the portmap
lock (see host.locked)."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

from common.config import IPInterface
from common.errors import CniError, Code
from common.firewall import iptables
from common.firewall.iptables import SavedTable

from . import rules_iptables as rules
from .config import PortmapConf
from .host import Host

NEEDED_BY = 'portmap (config key "backend": iptables, the default when usable)'
Cache = dict[int, SavedTable]


def read(host: Host, family: int, cache: Cache, chains: list[str] | None) -> SavedTable:
    """The nat table of `family`, limited to `chains` (None: all of it)."""
    if family not in cache:
        if chains is None:
            text = iptables.save("nat", family, needed_by=NEEDED_BY, runner=host.run)
        else:
            text = iptables.save_chains("nat", chains, family, needed_by=NEEDED_BY, runner=host.run)
        cache[family] = iptables.parse_save(text)
    return cache[family]


def try_read(host: Host, family: int, cache: Cache, chains: list[str] | None) -> SavedTable | None:
    """The nat table, or None when this family's iptables is not usable (missing tool, no kernel support)."""
    try:
        return read(host, family, cache, chains)
    except CniError:
        return None


def add(host: Host, conf: PortmapConf, container_id: str, ips: list[IPInterface], cache: Cache) -> None:
    for ip in ips:
        _add_one(host, conf, container_id, ip, cache)


def _add_one(host: Host, conf: PortmapConf, container_id: str, ip: IPInterface, cache: Cache) -> None:
    # A writer that does not take our lock (a Go portmap) may create a shared chain between our read and our
    # write; `-N` then fails the whole (atomic) restore, and one fresh read settles it.
    for attempt in (1, 2):
        saved = read(host, ip.version, cache, rules.add_read_chains(conf, container_id))
        script = rules.add_script(conf, container_id, ip, saved)
        try:
            iptables.restore(script, ip.version, needed_by=NEEDED_BY, runner=host.run)
            return
        except CniError as exc:
            if attempt == 2 or "already exists" not in exc.msg:
                raise
            cache.pop(ip.version, None)


def delete(host: Host, network: str, container_id: str, cache: Cache) -> None:
    _rewrite(host, cache, rules.delete_read_chains(network, container_id),
             lambda saved: rules.delete_script(saved, rules.container_chains(network, container_id)))


def gc(host: Host, network: str, valid: frozenset[str], cache: Cache) -> None:
    _rewrite(host, cache, None, lambda saved: rules.gc_script(saved, network, valid))


def _rewrite(host: Host, cache: Cache, chains: list[str] | None, build: Callable[[SavedTable], str]) -> None:
    usable, failure = 0, ""
    for family in (4, 6):
        try:
            saved = read(host, family, cache, chains)
        except CniError as exc:
            failure = failure or exc.msg
            continue
        usable += 1
        iptables.restore(build(saved), family, needed_by=NEEDED_BY, runner=host.run)
    if not usable:
        raise CniError(Code.INTERNAL, f"neither iptables nor ip6tables usable: {failure}")


def check(host: Host, conf: PortmapConf, container_id: str, ips: list[IPInterface], cache: Cache) -> None:
    for ip in ips:
        saved = read(host, ip.version, cache, rules.add_read_chains(conf, container_id))
        missing = rules.check(conf, container_id, ip, saved)
        if missing:
            raise CniError(Code.INTERNAL, f"portmap rules of container {container_id} missing in "
                           f"{'iptables' if ip.version == 4 else 'ip6tables'}: {'; '.join(missing)}")
