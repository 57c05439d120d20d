"""The nftables backend's effects: per family at most one `nft -j list table` read, one `nft -f -` write
for the whole operation (both families in one atomic transaction)."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any
    Tables = dict[int, "list[dict[str, Any]] | None"]

from common.config import IPInterface
from common.errors import CniError, Code
from common.firewall import nftables

from . import rules_nftables as rules
from .config import PortmapConf
from .host import Host

NEEDED_BY = 'portmap (config key "backend": nftables, or unset when iptables cannot be used)'


def read(host: Host, family: int) -> list[dict[str, Any]] | None:
    return nftables.list_table(rules.family_name(family), rules.TABLE, needed_by=NEEDED_BY, runner=host.run)


def add(host: Host, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    script = "".join(rules.add_script(conf, container_id, ip, read(host, ip.version)) for ip in ips)
    nftables.apply(script, needed_by=NEEDED_BY, runner=host.run)


def delete(host: Host, network: str, container_id: str, addresses: Collection[str] | None) -> None:
    script = rules.delete_script(_both(host), network, container_id, addresses)
    nftables.apply(script, needed_by=NEEDED_BY, runner=host.run)


def gc(host: Host, network: str, valid: frozenset[str]) -> None:
    nftables.apply(rules.gc_script(_both(host), network, valid), needed_by=NEEDED_BY, runner=host.run)


def _both(host: Host) -> Tables:
    return {family: read(host, family) for family in (4, 6)}


def check(host: Host, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    for ip in ips:
        missing = rules.check(conf, container_id, ip, read(host, ip.version))
        if missing:
            raise CniError(Code.INTERNAL, f"portmap rules of container {container_id} missing in table "
                           f"{rules.family_name(ip.version)} {rules.TABLE}: {'; '.join(missing)}")
