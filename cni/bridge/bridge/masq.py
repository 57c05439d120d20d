"""ipMasq rules as text: pure builders of one iptables-restore script or one nft script per operation.

The state is exactly the reference's (containernetworking/plugins pkg/ip/ipmasq_*_linux.go), so a Go bridge
can delete what we create and vice versa:

iptables (nat table, per family), chain CNI-<sha512(net+cid)[:24]>, comment `name: "<net>" id: "<cid>"`:
    -A POSTROUTING -s <ip>/32 -m comment --comment C -j CNI-<h>
    -A CNI-<h> -d <subnet> -m comment --comment C -j ACCEPT
    -A CNI-<h> ! -d 224.0.0.0/4 -m comment --comment C -j MASQUERADE        (ff00::/8 for IPv6)
nftables: table inet cni_plugins_masquerade, base chain postrouting (rewritten on every ADD) jumping to
masq_checks, which holds one rule per IP commented "<h(net)>-<h(ifname:cid)>, net: .., if: .., id: ..".

Teardown needs no IP: the iptables chain name and the nft comment prefix identify a container's rules.
"""
from __future__ import annotations

from common.record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from collections.abc import Set as AbstractSet
    from typing import Any

from common.config import IPInterface
from common.firewall import iptables, nftables
from common.firewall.names import chain_name, go_quote, sha512

MULTICAST = {4: "224.0.0.0/4", 6: "ff00::/8"}
TABLE = "cni_plugins_masquerade"
CHAIN = "masq_checks"
TABLE_COMMENT = "Masquerading for plugins from github.com/containernetworking/plugins"
CHAIN_COMMENT = "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"
NFT_COMMENT_MAX = 128   # knftables.CommentLengthMax


# --- iptables ----------------------------------------------------------------------------------------------

def ipt_comment(network: str, container_id: str) -> str:
    return f"name: {go_quote(network)} id: {go_quote(container_id)}"


def ipt_rules(ips: Sequence[IPInterface], *, network: str, container_id: str) -> tuple[list[str], list[str]]:
    """(rules of the per-container chain, POSTROUTING rules) in iptables-save's canonical form."""
    chain = chain_name(network, container_id)
    comment = "-m comment --comment " + iptables.quote(ipt_comment(network, container_id))
    accepts = dict.fromkeys(f"-A {chain} -d {ip.network} {comment} -j ACCEPT" for ip in ips)
    masq = dict.fromkeys(f"-A {chain} ! -d {MULTICAST[ip.version]} {comment} -j MASQUERADE" for ip in ips)
    jumps = dict.fromkeys(f"-A POSTROUTING -s {ip.ip}/{ip.max_prefixlen} {comment} -j {chain}" for ip in ips)
    return [*accepts, *masq], list(jumps)


def ipt_setup(ips: Sequence[IPInterface], *, network: str, container_id: str, saved: str) -> str:
    """One script (IPs of one family): `:CHAIN` creates or flushes the chain, so it is rewritten idempotently;
    POSTROUTING jumps are appended only when `saved` (iptables-save -t nat) lacks them."""
    chain_rules, jumps = ipt_rules(ips, network=network, container_id=container_id)
    present = {tuple(iptables.split_rule(line)) for line in saved.splitlines() if line.startswith("-A POSTROUTING ")}
    new_jumps = [j for j in jumps if tuple(iptables.split_rule(j)) not in present]
    chain = chain_name(network, container_id)
    return "\n".join(["*nat", f":{chain} - [0:0]", *chain_rules, *new_jumps, "COMMIT", ""])


@record(frozen=True)
class SavedNat:
    """The parts of `iptables-save -t nat` that masquerade teardown and GC need."""
    chains: frozenset[str]
    rules: tuple[str, ...]          # "-A ..." lines, verbatim

    @classmethod
    def parse(cls, text: str) -> SavedNat:
        chains = frozenset(line[1:].split()[0] for line in text.splitlines() if line.startswith(":"))
        return cls(chains=chains, rules=tuple(line for line in text.splitlines() if line.startswith("-A ")))

    def jumps_to(self, chain: str) -> list[str]:
        return [r for r in self.rules
                if r.endswith(chain) and iptables.split_rule(r)[-2:] in (["-j", chain], ["-g", chain])]

    def rules_of(self, chain: str) -> list[str]:
        return [r for r in self.rules if r.split(None, 2)[1] == chain]


def ipt_teardown(saved: SavedNat, chains: Iterable[str]) -> str:
    """Delete every rule jumping to each chain (found by name, no IP needed), then flush and delete it."""
    lines: list[str] = []
    for chain in chains:
        lines += ["-D" + rule[2:] for rule in saved.jumps_to(chain)]
        if chain in saved.chains:
            lines += [f":{chain} - [0:0]", f"-X {chain}"]
    return "\n".join(["*nat", *lines, "COMMIT", ""]) if lines else ""


def ipt_owner(saved: SavedNat, chain: str) -> tuple[str, str] | None:
    """(network, container ID) from the comment of a masquerade chain's rules, if it is one of ours."""
    for rule in saved.rules_of(chain):
        tokens = iptables.split_rule(rule)
        if "--comment" in tokens:
            owner = _comment_owner(tokens[tokens.index("--comment") + 1])
            if owner and chain_name(*owner) == chain:
                return owner
    return None


def _comment_owner(comment: str) -> tuple[str, str] | None:
    """(network, container ID) from `name: "<net>" id: "<cid>"` (names and IDs carry no quotes)."""
    head, sep, tail = comment.rpartition('" id: "')
    if not (sep and head.startswith('name: "') and tail.endswith('"')):
        return None
    return head[len('name: "'):], tail[:-1]


def ipt_stale_chains(saved: SavedNat, *, network: str, valid_ids: set[str]) -> list[str]:
    """Masquerade chains of `network` whose container is not in valid_ids (GC)."""
    stale = []
    for chain in sorted(saved.chains):
        owner = ipt_owner(saved, chain) if chain.startswith("CNI-") else None
        if owner and owner[0] == network and owner[1] not in valid_ids:
            stale.append(chain)
    return stale


# --- nftables ----------------------------------------------------------------------------------------------

def _hash16(text: str) -> str:
    return sha512(text.encode("utf-8", "surrogateescape")).hexdigest()[:16]   # the name's bytes, as Go hashes them


def nft_network_prefix(network: str) -> str:
    return _hash16(network)


def nft_instance_prefix(network: str, ifname: str, container_id: str) -> str:
    return f"{_hash16(network)}-{_hash16(ifname + ':' + container_id)}"


def nft_comment(network: str, ifname: str, container_id: str) -> str:
    clean = [s.replace('"', "") for s in (network, ifname, container_id)]
    text = f"{nft_instance_prefix(network, ifname, container_id)}, net: {clean[0]}, if: {clean[1]}, id: {clean[2]}"
    return text[:NFT_COMMENT_MAX]


def nft_setup(ips: Sequence[IPInterface], *, network: str, ifname: str, container_id: str,
              stale_handles: Sequence[int]) -> str:
    """Ensure table and chains, rewrite postrouting, replace this instance's rules: one `nft -f` script."""
    t = f"inet {TABLE}"
    comment = nft_comment(network, ifname, container_id).replace('"', "")
    lines = [
        f'add table {t} {{ comment "{TABLE_COMMENT}" ; }}',
        f'add chain {t} {CHAIN} {{ comment "{CHAIN_COMMENT}" ; }}',
        f"add chain {t} postrouting {{ type nat hook postrouting priority srcnat ; }}",
        f"flush chain {t} postrouting",
        f"add rule {t} postrouting ip daddr == {MULTICAST[4]} return",
        f"add rule {t} postrouting ip6 daddr == {MULTICAST[6]} return",
        f"add rule {t} postrouting goto {CHAIN}",
        *(f"delete rule {t} {CHAIN} handle {h}" for h in stale_handles),
    ]
    for ip in ips:
        fam = "ip" if ip.version == 4 else "ip6"
        lines.append(f'add rule {t} {CHAIN} {fam} saddr == {ip.ip} {fam} daddr != {ip.network} masquerade '
                     f'comment "{comment}"')
    return "\n".join(lines) + "\n"


def nft_rules(listing: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """The masq_checks rules of an `nft -j list table inet cni_plugins_masquerade` listing."""
    return nftables.rules(listing or [], CHAIN)


def nft_matching(listing: list[dict[str, Any]] | None, prefix: str) -> list[int]:
    """Handles of masq_checks rules whose comment starts with prefix (the reference's findRules)."""
    return [int(r["handle"]) for r in nft_rules(listing) if str(r.get("comment", "")).startswith(prefix)]


def nft_delete(handles: Sequence[int]) -> str:
    return "".join(f"delete rule inet {TABLE} {CHAIN} handle {h}\n" for h in handles)


def nft_stale(listing: list[dict[str, Any]] | None, *, network: str,
              valid: AbstractSet[tuple[str, str]]) -> list[int]:
    """GC: handles of this network's rules whose comment is not one of the valid (container ID, ifname)."""
    keep = {nft_comment(network, ifname, cid) for cid, ifname in valid}
    prefix = nft_network_prefix(network)
    return [int(r["handle"]) for r in nft_rules(listing)
            if str(r.get("comment", "")).startswith(prefix) and r.get("comment") not in keep]


def nft_saddrs(listing: list[dict[str, Any]] | None, comment: str) -> set[str]:
    """Source addresses matched by the rules carrying `comment` (for CHECK)."""
    out = set()
    for rule in nft_rules(listing):
        if rule.get("comment") == comment:
            for expr in rule.get("expr", ()):
                match = expr.get("match") if isinstance(expr, dict) else None
                if match and match.get("left", {}).get("payload", {}).get("field") == "saddr":
                    out.add(str(match.get("right")))
    return out
