"""Applying masquerade and spoof-check rules: read the current state once, apply one script per family.

Pure text comes from masq.py and spoofchk.py; this module only reads and writes through the firewall backends
(common.firewall.backend) of one operation, made over the host's programs by `Rules` (tests pass fake programs).
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from collections.abc import Set as AbstractSet
    from typing import Any
    Undo = Callable[[], None]
    Listing = list[dict[str, Any]] | None     # an `nft -j list table` answer; None: no such table

from common import exec as execs
from common.config import IPInterface
from common.errors import CniError, Code, ConfigError
from common.firewall import iptables
from common.firewall.backend import Iptables, Nftables, choose
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


def likely_families(ipam: object) -> tuple[int, ...]:
    """The address families an ADD will most likely get, from the IPAM config (host-local `ranges` or `subnet`,
    static `addresses`); (4,) when it names none. Only a guess for the prefetch: a wrong one costs one read."""
    subnets: list[object] = []
    if isinstance(ipam, dict):
        subnets.append(ipam.get("subnet"))
        for key, field in (("ranges", "subnet"), ("addresses", "address")):
            groups = ipam.get(key)
            for group in groups if isinstance(groups, list) else ():
                for item in (group if isinstance(group, list) else [group]):
                    subnets.append(item.get(field) if isinstance(item, dict) else None)
    found = {6 if ":" in text else 4 for text in subnets if isinstance(text, str) and text}
    return tuple(sorted(found)) or (4,)


class Rules:
    """bridge's masquerade and spoof-check effects, over the firewall backends of one operation. A context
    manager: leaving it reaps every read prefetched and not collected."""

    def __init__(self, programs: execs.Programs = execs.SYSTEM) -> None:
        self.iptables = Iptables(programs, needed_by=NEEDED_BY)
        self.nftables = Nftables(programs, needed_by=NEEDED_BY)
        self.spoof_nftables = Nftables(programs, needed_by="bridge macspoofchk")

    def __enter__(self) -> Rules:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        for backend in (self.iptables, self.nftables, self.spoof_nftables):
            backend.close()

    def prefetch_masq(self, *, conf: BridgeConf, container_id: str, ifname: str, families: Sequence[int]) -> None:
        """Start, as ADD begins, the reads masq_setup will make (common.firewall.backend, "Prefetch"), so that
        they run during the netlink and IPAM work: POSTROUTING of each likely family, or with ipMasqBackend
        nftables the masquerade table.

        Why an earlier read is as good as the one right before the write, which is no fresher under the xtables
        lock either (`-w` holds it per command, not from read to write, in Go and here). The read only decides
        whether this container's own rules are there already: its POSTROUTING jumps to CNI-<hash(net, id)> (with
        the address IPAM is allocating meanwhile), or its nft rules by instance comment. Other writers' rules
        are none of its business and change nothing in the script. An answer without any of them is what a
        later read would show too, unless an ADD of this very container runs at the same time (no runtime does
        that, and it was a race before, only shorter). An answer with some (an ADD after a failed DEL) is read
        again when collected, so what a concurrent DEL or GC removes meanwhile is not taken for present."""
        if conf.ip_masq_backend == "nftables":
            prefix = masq.nft_instance_prefix(conf.name, ifname, container_id)
            self.nftables.prefetch(masq.TABLE, recheck=lambda listing: bool(masq.nft_matching(listing, prefix)))
            return
        chain = chain_name(conf.name, container_id)
        for family in families:
            self.iptables.prefetch("nat", family, ["POSTROUTING"], recheck=lambda text: chain in text)

    def _saves(self, families: Sequence[int], chains: list[str] | None) -> dict[int, str] | None:
        """The nat table of each family where iptables can be used, limited to `chains` (None: all of it, for
        GC); None when it cannot be used for any of them (the backend probe). A held lock or a hung tool is no
        "unusable": it stays an error (code 11), or DEL would report success and leave the rules."""
        self.iptables.forget()    # every caller wants the state as it is now (a removal re-reads after a race)
        saves = {fam: self.iptables.read("nat", fam, chains) for fam in families
                 if self.iptables.readable("nat", fam, chains)}
        return saves or None

    def _ipt_removal(self, family: int, chains: list[str] | None, script_of: Callable[[masq.SavedNat], str]) -> None:
        """script_of(the saved `chains`, None: the whole nat table), applied until it converges."""
        def script() -> str:
            saves = self._saves([family], chains)
            return script_of(masq.SavedNat.parse(saves[family])) if saves else ""
        _converge(script, lambda text: self.iptables.write(text, family))

    def _nft_removal(self, script_of: Callable[[Listing], str], *, spoof: bool = False) -> None:
        """script_of(the listing of the masquerade table, or with `spoof` of the spoof-check one), applied until
        it converges."""
        backend = self.spoof_nftables if spoof else self.nftables
        _converge(lambda: script_of(self._nft_listing(spoof=spoof)), backend.write)

    # --- ipMasq ------------------------------------------------------------------------------------------------

    def masq_setup(self, ips: Sequence[IPInterface], *, conf: BridgeConf, container_id: str, ifname: str) -> Undo:
        """Install the rules with the backend chosen for this ADD (configured; unset: iptables when the nat table
        of every family of `ips` can be read, else nftables, which serves both); returns the undo for a failed
        ADD."""
        groups = by_family(ips)
        backend = choose(conf.ip_masq_backend, iptables_backend=self.iptables, nftables_backend=self.nftables,
                         probe=lambda ipt: all(ipt.readable("nat", fam, ["POSTROUTING"]) for fam in groups))
        if backend is self.iptables:
            if not all(self.iptables.readable("nat", fam, ["POSTROUTING"]) for fam in groups):
                raise ConfigError("ipMasqBackend is 'iptables' but iptables-save -t nat cannot be run")
            saved = {fam: self.iptables.read("nat", fam, ["POSTROUTING"]) for fam in groups}   # before any write
            for fam, group in groups.items():
                self.iptables.write(masq.ipt_setup(group, network=conf.name, container_id=container_id,
                                                   saved=saved[fam]), fam)
            return lambda: self._ipt_teardown(conf.name, container_id, sorted(groups))
        listing = self.nftables.read(masq.TABLE)
        stale = masq.nft_matching(listing, masq.nft_instance_prefix(conf.name, ifname, container_id))
        self.nftables.write(masq.nft_setup(ips, network=conf.name, ifname=ifname, container_id=container_id,
                                           stale_handles=stale))
        return lambda: self._nft_teardown(conf.name, ifname, container_id)

    def masq_teardown(self, network: str, *, container_id: str, ifname: str,
                      families: Sequence[int] = (4, 6)) -> None:
        """Both backends (the container may have been added by another version/config), no IP needed."""
        self._ipt_teardown(network, container_id, families)
        self._nft_teardown(network, ifname, container_id)

    def _ipt_teardown(self, network: str, container_id: str, families: Sequence[int]) -> None:
        chain = chain_name(network, container_id)
        for fam in families:
            self._ipt_removal(fam, ["POSTROUTING", chain], lambda saved: masq.ipt_teardown(saved, [chain]))

    def _nft_listing(self, *, spoof: bool = False) -> Listing:
        backend = self.spoof_nftables if spoof else self.nftables
        backend.forget()    # every caller wants the state as it is now (a removal re-reads after a race)
        try:
            return backend.read("nat", "bridge") if spoof else backend.read(masq.TABLE)
        except CniError as exc:
            if exc.code == Code.TRY_AGAIN_LATER:
                raise
            return None     # nft missing or unusable: there is nothing of ours to remove there

    def _nft_teardown(self, network: str, ifname: str, container_id: str) -> None:
        prefix = masq.nft_instance_prefix(network, ifname, container_id)
        self._nft_removal(lambda listing: masq.nft_delete(masq.nft_matching(listing, prefix)))

    def masq_gc(self, network: str, valid: AbstractSet[tuple[str, str]]) -> None:
        """Remove the rules of `network` whose (container ID, ifname) is not valid, in both backends."""
        valid_ids = {cid for cid, _ in valid}

        def stale(saved: masq.SavedNat) -> str:
            return masq.ipt_teardown(saved, masq.ipt_stale_chains(saved, network=network, valid_ids=valid_ids))

        for fam in (4, 6):
            self._ipt_removal(fam, None, stale)
        self._nft_removal(lambda listing: masq.nft_delete(masq.nft_stale(listing, network=network, valid=valid)))

    def masq_missing(self, ips: Sequence[IPInterface], *, conf: BridgeConf, container_id: str,
                     ifname: str) -> list[str]:
        """CHECK: what is missing from the masquerade state, in words (empty when complete in either backend)."""
        ipt_missing: list[str] = []
        read = ["POSTROUTING", chain_name(conf.name, container_id)]
        saves = None if conf.ip_masq_backend == "nftables" else self._saves(sorted(by_family(ips)), read)
        for fam, group in by_family(ips).items():
            chain_rules, jumps = masq.ipt_rules(group, network=conf.name, container_id=container_id)
            present = {tuple(iptables.split_rule(r)) for r in (saves or {}).get(fam, "").splitlines()
                       if r.startswith("-A ")}
            ipt_missing += [r for r in chain_rules + jumps if tuple(iptables.split_rule(r)) not in present]
        if saves is not None and not ipt_missing:
            return []
        comment = masq.nft_comment(conf.name, ifname, container_id)
        found = masq.nft_saddrs(self._nft_listing(), comment) if conf.ip_masq_backend != "iptables" else set()
        nft_missing = [f"nft rule in inet {masq.TABLE} {masq.CHAIN} for {ip.ip} ({comment})"
                       for ip in ips if str(ip.ip) not in found]
        if conf.ip_masq_backend == "nftables" or (not nft_missing and conf.ip_masq_backend is None):
            return nft_missing
        return [f"iptables rule '{r}'" for r in ipt_missing]

    # --- macspoofchk -------------------------------------------------------------------------------------------

    def spoofchk_setup(self, *, container_id: str, ifname: str, host_veth: str, mac: str) -> Undo:
        self.spoof_nftables.write(spoofchk.setup(container_id=container_id, ifname=ifname, host_veth=host_veth,
                                                 mac=mac))
        return lambda: self.spoofchk_teardown(container_id=container_id, ifname=ifname)

    def spoofchk_teardown(self, *, container_id: str, ifname: str) -> None:
        self._nft_removal(lambda listing: spoofchk.teardown(listing, container_id=container_id, ifname=ifname),
                          spoof=True)
