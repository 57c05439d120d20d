"""portmap over the iptables backend: per family one read (the chains the operation needs, read concurrently
with `iptables -S`; the whole nat table only for GC) and one `iptables-restore --noflush` write, under the portmap
lock (see host.locked). The backend object caches the reads of the operation."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Collection

from common.config import IPInterface
from common.errors import CniError, Code
from common.firewall import iptables
from common.firewall.backend import Iptables
from common.firewall.iptables import SavedTable

from . import rules_iptables as rules
from .config import PortmapConf


def read(backend: Iptables, family: int, chains: list[str] | None) -> SavedTable:
    """The nat table of `family`, limited to `chains` (None: all of it)."""
    return iptables.parse_save(backend.read("nat", family, chains))


def add(backend: Iptables, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    for ip in ips:
        _add_one(backend, conf, container_id, ip)


def _add_one(backend: Iptables, conf: PortmapConf, container_id: str, ip: IPInterface) -> None:
    # A writer that does not take our lock (a Go portmap) may create a shared chain between our read and our
    # write; `-N` then fails the whole (atomic) restore, and one fresh read settles it.
    for attempt in (1, 2):
        saved = read(backend, ip.version, rules.add_read_chains(conf, container_id))
        script = rules.add_script(conf, container_id, ip, saved)
        try:
            backend.write(script, ip.version)
            return
        except CniError as exc:
            if attempt == 2 or "already exists" not in exc.msg:
                raise


def delete(backend: Iptables, network: str, container_id: str, addresses: Collection[str] | None) -> None:
    _rewrite(backend, rules.delete_read_chains(network, container_id),
             lambda saved: rules.delete_script(saved, rules.container_chains(network, container_id)))


def gc(backend: Iptables, network: str, valid: frozenset[str]) -> None:
    _rewrite(backend, None, lambda saved: rules.gc_script(saved, network, valid))


def _rewrite(backend: Iptables, chains: list[str] | None, build: Callable[[SavedTable], str]) -> None:
    usable, failure = 0, ""
    for family in (4, 6):
        try:
            saved = read(backend, family, chains)
        except CniError as exc:
            failure = failure or exc.msg
            continue
        usable += 1
        backend.write(build(saved), family)
    if not usable:
        raise CniError(Code.INTERNAL, f"neither iptables nor ip6tables usable: {failure}")


def check(backend: Iptables, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    for ip in ips:
        saved = read(backend, ip.version, rules.check_read_chains(conf, container_id))
        missing = rules.check(conf, container_id, ip, saved)
        if missing:
            raise CniError(Code.INTERNAL, f"portmap rules of container {container_id} missing in "
                           f"{'iptables' if ip.version == 4 else 'ip6tables'}: {'; '.join(missing)}")
