"""Applying masquerade and spoof-check rules: read the current state once, apply one script per family.

Pure text comes from masq.py and spoofchk.py; this module only runs iptables-save/-restore and nft.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from collections.abc import Set as AbstractSet
    from typing import Any
    Undo = Callable[[], None]
    Listing = list[dict[str, Any]] | None     # an `nft -j list table` answer; None: no such table

from common.config import IPInterface
from common.errors import CniError, Code, ConfigError
from common.firewall import iptables, nftables
from common.firewall.names import chain_name

from . import masq, spoofchk
from .config import BridgeConf

NEEDED_BY = 'bridge (config keys "ipMasq", "ipMasqBackend")'


def by_family(ips: Sequence[IPInterface]) -> dict[int, list[IPInterface]]:
    out: dict[int, list[IPInterface]] = {}
    for ip in ips:
        out.setdefault(ip.version, []).append(ip)
    return out


RACE_ATTEMPTS = 3   # reads before a removal gives up; a race with one other DEL or GC settles on the second


def _saves(families: Sequence[int], chains: list[str] | None) -> dict[int, str] | None:
    """The nat table of each family where iptables can be used, limited to `chains` (None: all of it, for
    GC); None when it cannot be used for any of them (the backend probe). A held lock or a hung tool is no
    "unusable": it stays an error (code 11), or DEL would report success and leave the rules."""
    saves = {}
    for fam in families:
        try:
            saves[fam] = (iptables.save("nat", fam, needed_by=NEEDED_BY) if chains is None else
                          iptables.save_chains("nat", chains, fam, needed_by=NEEDED_BY))
        except CniError as exc:
            if exc.code == Code.TRY_AGAIN_LATER:
                raise
    return saves or None


def _converge(script_of_state: Callable[[], str], apply: Callable[[str], None]) -> None:
    """Apply a removal script built from a fresh read of the state, until there is nothing left to remove.

    A concurrent DEL or GC of the same container may remove a chain or rule between our read and our write,
    which fails the whole (atomic) script. The next read no longer shows what vanished and still shows the
    rest: "already gone" is success, and one vanished item never keeps the others of a batch in place.
    """
    for attempt in range(RACE_ATTEMPTS):
        script = script_of_state()
        if not script:
            return
        try:
            apply(script)
            return
        except CniError as exc:
            if exc.code == Code.TRY_AGAIN_LATER or attempt + 1 == RACE_ATTEMPTS:
                raise


def _ipt_removal(family: int, chains: list[str] | None, script_of: Callable[[masq.SavedNat], str]) -> None:
    """script_of(the saved `chains`, None: the whole nat table), applied until it converges."""
    def script() -> str:
        saves = _saves([family], chains)
        return script_of(masq.SavedNat.parse(saves[family])) if saves else ""
    _converge(script, lambda text: iptables.restore(text, family, needed_by=NEEDED_BY))


def _nft_removal(script_of: Callable[[Listing], str], *, family: str = "inet", table: str = masq.TABLE,
                 needed_by: str = NEEDED_BY) -> None:
    """script_of(the listing of `table`), applied until it converges."""
    _converge(lambda: script_of(_nft_listing(family, table, needed_by)),
              lambda text: nftables.apply(text, needed_by=needed_by))


# --- ipMasq ------------------------------------------------------------------------------------------------

def masq_setup(ips: Sequence[IPInterface], *, conf: BridgeConf, container_id: str, ifname: str) -> Undo:
    """Install the rules with the configured backend (unset: iptables if usable, else nftables); returns the
    undo callback for a failed ADD."""
    groups = by_family(ips)
    saved = None if conf.ip_masq_backend == "nftables" else _saves(sorted(groups), ["POSTROUTING"])
    if saved is not None and len(saved) < len(groups):
        saved = None    # e.g. no usable ip6tables for a dual-stack container: one backend serves both families
    if saved is None and conf.ip_masq_backend == "iptables":
        raise ConfigError("ipMasqBackend is 'iptables' but iptables-save -t nat cannot be run")
    if saved is not None:
        for fam, group in groups.items():
            script = masq.ipt_setup(group, network=conf.name, container_id=container_id, saved=saved[fam])
            iptables.restore(script, fam, needed_by=NEEDED_BY)
        return lambda: _ipt_teardown(conf.name, container_id, sorted(groups))
    listing = nftables.list_table("inet", masq.TABLE, needed_by=NEEDED_BY)
    stale = masq.nft_matching(listing, masq.nft_instance_prefix(conf.name, ifname, container_id))
    nftables.apply(masq.nft_setup(ips, network=conf.name, ifname=ifname, container_id=container_id,
                                  stale_handles=stale), needed_by=NEEDED_BY)
    return lambda: _nft_teardown(conf.name, ifname, container_id)


def masq_teardown(network: str, *, container_id: str, ifname: str, families: Sequence[int] = (4, 6)) -> None:
    """Both backends (the container may have been added by another version/config), no IP needed."""
    _ipt_teardown(network, container_id, families)
    _nft_teardown(network, ifname, container_id)


def _ipt_teardown(network: str, container_id: str, families: Sequence[int]) -> None:
    chain = chain_name(network, container_id)
    for fam in families:
        _ipt_removal(fam, ["POSTROUTING", chain], lambda saved: masq.ipt_teardown(saved, [chain]))


def _nft_listing(family: str = "inet", table: str = masq.TABLE, needed_by: str = NEEDED_BY) -> Listing:
    try:
        return nftables.list_table(family, table, needed_by=needed_by)
    except CniError as exc:
        if exc.code == Code.TRY_AGAIN_LATER:
            raise
        return None     # nft missing or unusable: there is nothing of ours to remove there


def _nft_teardown(network: str, ifname: str, container_id: str) -> None:
    prefix = masq.nft_instance_prefix(network, ifname, container_id)
    _nft_removal(lambda listing: masq.nft_delete(masq.nft_matching(listing, prefix)))


def masq_gc(network: str, valid: AbstractSet[tuple[str, str]]) -> None:
    """Remove the rules of `network` whose (container ID, ifname) is not valid, in both backends."""
    valid_ids = {cid for cid, _ in valid}

    def stale(saved: masq.SavedNat) -> str:
        return masq.ipt_teardown(saved, masq.ipt_stale_chains(saved, network=network, valid_ids=valid_ids))

    for fam in (4, 6):
        _ipt_removal(fam, None, stale)
    _nft_removal(lambda listing: masq.nft_delete(masq.nft_stale(listing, network=network, valid=valid)))


def masq_missing(ips: Sequence[IPInterface], *, conf: BridgeConf, container_id: str, ifname: str) -> list[str]:
    """CHECK: what is missing from the masquerade state, in words (empty when complete in either backend)."""
    ipt_missing: list[str] = []
    read = ["POSTROUTING", chain_name(conf.name, container_id)]
    saves = None if conf.ip_masq_backend == "nftables" else _saves(sorted(by_family(ips)), read)
    for fam, group in by_family(ips).items():
        chain_rules, jumps = masq.ipt_rules(group, network=conf.name, container_id=container_id)
        present = {tuple(iptables.split_rule(r)) for r in (saves or {}).get(fam, "").splitlines()
                   if r.startswith("-A ")}
        ipt_missing += [r for r in chain_rules + jumps if tuple(iptables.split_rule(r)) not in present]
    if saves is not None and not ipt_missing:
        return []
    comment = masq.nft_comment(conf.name, ifname, container_id)
    found = masq.nft_saddrs(_nft_listing(), comment) if conf.ip_masq_backend != "iptables" else set()
    nft_missing = [f"nft rule in inet {masq.TABLE} {masq.CHAIN} for {ip.ip} ({comment})"
                   for ip in ips if str(ip.ip) not in found]
    if conf.ip_masq_backend == "nftables" or (not nft_missing and conf.ip_masq_backend is None):
        return nft_missing
    return [f"iptables rule '{r}'" for r in ipt_missing]


# --- macspoofchk -------------------------------------------------------------------------------------------

def spoofchk_setup(*, container_id: str, ifname: str, host_veth: str, mac: str) -> Undo:
    nftables.apply(spoofchk.setup(container_id=container_id, ifname=ifname, host_veth=host_veth, mac=mac),
                   needed_by="bridge macspoofchk")
    return lambda: spoofchk_teardown(container_id=container_id, ifname=ifname)


def spoofchk_teardown(*, container_id: str, ifname: str) -> None:
    _nft_removal(lambda listing: spoofchk.teardown(listing, container_id=container_id, ifname=ifname),
                 family="bridge", table="nat", needed_by="bridge macspoofchk")
