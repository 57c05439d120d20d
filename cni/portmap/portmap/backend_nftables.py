"""portmap over the nftables backend: per family at most one `nft -j list table` read, one `nft -f -` write
for the whole operation (both families in one atomic transaction)."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Collection
    from typing import Any
    Tables = dict[int, "list[dict[str, Any]] | None"]

from common.config import IPInterface
from common.errors import CniError, Code
from common.firewall.backend import Nftables

from . import rules_nftables as rules
from .config import PortmapConf


def read(backend: Nftables, family: int) -> list[dict[str, Any]] | None:
    return backend.read(rules.TABLE, rules.family_name(family))


def add(backend: Nftables, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    backend.write("".join(rules.add_script(conf, container_id, ip, read(backend, ip.version)) for ip in ips))


def delete(backend: Nftables, network: str, container_id: str, addresses: Collection[str] | None) -> None:
    backend.write(rules.delete_script(_both(backend), network, container_id, addresses))


def gc(backend: Nftables, network: str, valid: frozenset[str]) -> None:
    backend.write(rules.gc_script(_both(backend), network, valid))


def _both(backend: Nftables) -> Tables:
    return {family: read(backend, family) for family in (4, 6)}


def check(backend: Nftables, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    for ip in ips:
        missing = rules.check(conf, container_id, ip, read(backend, ip.version))
        if missing:
            raise CniError(Code.INTERNAL, f"portmap rules of container {container_id} missing in table "
                           f"{rules.family_name(ip.version)} {rules.TABLE}: {'; '.join(missing)}")
