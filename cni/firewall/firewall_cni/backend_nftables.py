"""The firewall plugin over the nftables backend (layout: rules_nftables): one `nft -j list table` read and one
`nft -f -` write (one atomic transaction) per operation, under the firewall lock (host.locked).

Same functions, same signatures as backend_iptables: plugin.py picks one by the backend's name."""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from common.config import IPAddress
from common.errors import CniError, Code
from common.firewall.backend import Nftables

from . import rules_nftables as rules
from .config import Attachment, FirewallConf


def read(backend: Nftables) -> list[dict[str, Any]] | None:
    return backend.read(rules.TABLE, rules.FAMILY)


def add(backend: Nftables, conf: FirewallConf, who: Attachment, ips: list[IPAddress], bridge: str | None) -> None:
    backend.write(rules.add_script(conf, who, ips, bridge, read(backend)))


def delete(backend: Nftables, conf: FirewallConf, who: Attachment, ips: list[IPAddress]) -> None:
    backend.write(rules.delete_script(who, read(backend)))


def check(backend: Nftables, conf: FirewallConf, who: Attachment, ips: list[IPAddress], bridge: str | None) -> None:
    missing = rules.check(conf, who, ips, bridge, read(backend))
    if missing:
        raise CniError(Code.INTERNAL, missing)


def gc(backend: Nftables, conf: FirewallConf, stale: list[IPAddress], valid: frozenset[tuple[str, str]],
       interfaces: frozenset[str] | None) -> None:
    backend.write(rules.gc_script(conf.name, valid, interfaces, read(backend)))


def installed(backend: Nftables) -> bool:
    """Whether nft is on PATH at all (without it there can be no rules of ours to remove)."""
    return backend.usable()


def status(backend: Nftables) -> None:
    if not backend.usable():
        raise CniError(Code.NOT_AVAILABLE, "the nftables backend is not usable: program 'nft' not found")
