"""Pure builders of the `nft -f -` scripts for ADD, DEL and GC, and of CHECK's findings (the reference has no
nftables backend: this layout is pycni's own).

One table, `inet cni_plugins_firewall` (named like our masquerade and portmap tables), for both address families:

    forward            type filter hook forward priority filter; policy accept
                       jump isolation-stage-1; jump cni-forward            (rewritten by every ADD)
    cni-forward        jump <admin chain>  comment "CNI firewall plugin admin overrides"   (first; one per name)
                       per address: ip daddr A ct state related,established accept;  ip saddr A accept
                       both with the comment "<network> <containerID> <ifname>"
    <admin chain>      iptablesAdminChainName (default CNI-ADMIN): the admin's own, never edited
    isolation-stage-1  [isolated: iifname BR oifname BR drop  comment "isolated BR"]
                       iifname BR oifname != BR jump isolation-stage-2     comment "isolation BR"
    isolation-stage-2  oifname BR drop                                     comment "isolation BR"

The newest bridge's isolation rules are inserted on top, as the reference's. DEL removes the rules with the
attachment's comment; GC the rules of this network whose attachment is not valid, and the isolation rules of
bridges that no longer exist. A comment over nft's 128 bytes (or an interface name outside [A-Za-z0-9_.-])
is hashed: "<network or sha512:16 hex> sha512:<48 hex>"; the first word still names the network.

What this backend cannot do: an nftables `accept` ends only this table's verdict for the packet. A drop made by
another table at the forward hook (iptables-nft's FORWARD with policy DROP, a distribution's `inet filter`)
still drops it. On such hosts the iptables backend is the one that opens the forward path; here, the isolation
drops and the admin chain (whose drops precede the accepts) are what take effect.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any
    Objects = list[dict[str, Any]]

from common.config import IPAddress
from common.firewall.names import sha512_hex
from common.firewall.nftables import chains, quote, rules

from .config import Attachment, FirewallConf

TABLE = "cni_plugins_firewall"
FAMILY = "inet"
HEAD = f"{FAMILY} {TABLE}"
BASE = "forward"
CNI_FORWARD = "cni-forward"
STAGE_1 = "isolation-stage-1"
STAGE_2 = "isolation-stage-2"
ADMIN_COMMENT = "CNI firewall plugin admin overrides"
COMMENT_MAX = 128   # nft refuses longer comments
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def network_tag(network: str) -> str:
    """The first word of every per-address comment of `network`."""
    return network if len(network) <= 64 else "sha512:" + sha512_hex(network)[:16]


def comment(who: Attachment) -> str:
    """The comment of an attachment's accept rules (module doc)."""
    tag = network_tag(who.network)
    text = f"{tag} {who.container_id} {who.ifname}"
    if len(text.encode("utf-8", "surrogateescape")) <= COMMENT_MAX and set(who.ifname) <= _SAFE:
        return text
    digest = sha512_hex(who.container_id + "\0" + who.ifname.encode("utf-8", "surrogateescape").hex())
    return f"{tag} sha512:{digest[:48]}"


def host_rules(ip: IPAddress) -> list[str]:
    """'<match> <verdict>' of one address's accept rules."""
    fam = "ip" if ip.version == 4 else "ip6"
    return [f"{fam} daddr {ip} ct state related,established accept", f"{fam} saddr {ip} accept"]


def isolation_rules(policy: str, bridge: str) -> list[tuple[str, str, str]]:
    """(chain, rule, comment) of one bridge, in insertion order (each inserted on top)."""
    br = quote(bridge)
    out = [(STAGE_1, f"iifname {br} oifname != {br} jump {STAGE_2}", f"isolation {bridge}")]
    if policy == "isolated":
        out.append((STAGE_1, f"iifname {br} oifname {br} drop", f"isolated {bridge}"))
    out.append((STAGE_2, f"oifname {br} drop", f"isolation {bridge}"))
    return out


def _admin(name: str) -> str:
    return name   # config validated it as an identifier (nft 1.0 takes no quoted chain names)


def _rules(objects: Objects | None, chain: str) -> list[dict[str, Any]]:
    return rules(objects or [], chain)


def _deletion(rule: dict[str, Any]) -> str:
    return f"delete rule {HEAD} {rule['chain']} handle {rule['handle']}"


def _admin_jumps(objects: Objects | None) -> list[dict[str, Any]]:
    return [r for r in _rules(objects, CNI_FORWARD) if r.get("comment") == ADMIN_COMMENT]


def _jump_target(rule: dict[str, Any]) -> str | None:
    for expr in rule.get("expr") or ():
        jump = expr.get("jump") if isinstance(expr, dict) else None
        if isinstance(jump, dict):
            return str(jump.get("target"))
    return None


# --- ADD --------------------------------------------------------------------------------------------------

def add_script(conf: FirewallConf, who: Attachment, ips: list[IPAddress], bridge: str | None,
               existing: Objects | None) -> str:
    """ADD: the table, its chains and jumps, the admin jump where missing, the attachment's accepts (its old
    ones deleted in the same transaction: a repeated ADD), then the bridge's isolation rules where missing."""
    lines = [f'add table {HEAD} {{ comment "CNI firewall plugin (pycni)" ; }}',
             f"add chain {HEAD} {BASE} {{ type filter hook forward priority filter ; policy accept ; }}"]
    lines += [f"add chain {HEAD} {c}" for c in (STAGE_1, STAGE_2, CNI_FORWARD, _admin(conf.admin_chain))]
    lines += [f"flush chain {HEAD} {BASE}", f"add rule {HEAD} {BASE} jump {STAGE_1}",
              f"add rule {HEAD} {BASE} jump {CNI_FORWARD}"]
    if conf.admin_chain not in {_jump_target(r) for r in _admin_jumps(existing)}:
        lines.append(f"insert rule {HEAD} {CNI_FORWARD} jump {_admin(conf.admin_chain)} "
                     f"comment {quote(ADMIN_COMMENT)}")
    mine = comment(who)
    lines += [_deletion(r) for r in _rules(existing, CNI_FORWARD) if r.get("comment") == mine]
    lines += [f"add rule {HEAD} {CNI_FORWARD} {rule} comment {quote(mine)}"
              for ip in ips for rule in host_rules(ip)]
    if bridge is not None:
        present = {(r.get("chain"), r.get("comment")) for r in _rules(existing, STAGE_1) + _rules(existing, STAGE_2)}
        lines += [f"insert rule {HEAD} {chain} {rule} comment {quote(text)}"
                  for chain, rule, text in isolation_rules(conf.ingress_policy, bridge)
                  if (chain, text) not in present]
    return "\n".join(lines) + "\n"


# --- DEL and GC -------------------------------------------------------------------------------------------

def delete_script(who: Attachment, existing: Objects | None) -> str:
    """DEL: the attachment's accept rules ('' when there are none); chains and isolation rules stay."""
    mine = comment(who)
    return _joined([_deletion(r) for r in _rules(existing, CNI_FORWARD) if r.get("comment") == mine])


def gc_script(network: str, valid: frozenset[tuple[str, str]], interfaces: frozenset[str] | None,
              existing: Objects | None) -> str:
    """GC: this network's accept rules whose attachment is not valid, and (when the node's interfaces are known)
    the isolation rules of bridges that are gone."""
    tag = network_tag(network)
    keep = {comment(Attachment(network, cid, ifname)) for cid, ifname in valid} | {ADMIN_COMMENT}
    lines = [_deletion(r) for r in _rules(existing, CNI_FORWARD)
             if str(r.get("comment", "")).split(" ", 1)[0] == tag and r.get("comment") not in keep]
    if interfaces is not None:
        for rule in _rules(existing, STAGE_1) + _rules(existing, STAGE_2):
            words = str(rule.get("comment", "")).split(" ", 1)
            if len(words) == 2 and words[0] in ("isolation", "isolated") and words[1] not in interfaces:
                lines.append(_deletion(rule))
    return _joined(lines)


def _joined(lines: list[str]) -> str:
    return "\n".join(lines) + "\n" if lines else ""


# --- CHECK ------------------------------------------------------------------------------------------------

def _matched(rule: dict[str, Any]) -> set[tuple[str, str]]:
    """(saddr|daddr, address) of every address match of a rule."""
    found = set()
    for expr in rule.get("expr") or ():
        match = expr.get("match") if isinstance(expr, dict) else None
        left = match.get("left") if isinstance(match, dict) else None
        payload = left.get("payload") if isinstance(left, dict) else None
        if isinstance(payload, dict) and payload.get("field") in ("saddr", "daddr"):
            found.add((str(payload["field"]), str(match.get("right"))))  # type: ignore[union-attr]
    return found


def check(conf: FirewallConf, who: Attachment, ips: list[IPAddress], bridge: str | None,
          existing: Objects | None) -> str | None:
    """The first thing missing for this attachment, or None when everything is in place."""
    if existing is None:
        return f"table {HEAD} not found"
    if not {BASE, CNI_FORWARD, conf.admin_chain} <= chains(existing):
        return f"expected chains {BASE}, {CNI_FORWARD} and {conf.admin_chain} in table {HEAD}"
    if not {STAGE_1, CNI_FORWARD} <= {_jump_target(r) for r in _rules(existing, BASE)}:
        return f"expected rule [jump {CNI_FORWARD}] in chain {BASE} of table {HEAD} not found"
    if conf.admin_chain not in {_jump_target(r) for r in _admin_jumps(existing)}:
        return f"expected {CNI_FORWARD} rule [jump {conf.admin_chain}] in table {HEAD} not found"
    mine = comment(who)
    matched = set().union(*(_matched(r) for r in _rules(existing, CNI_FORWARD) if r.get("comment") == mine))
    for ip in ips:
        for field, rule in zip(("daddr", "saddr"), host_rules(ip), strict=True):
            if (field, str(ip)) not in matched:
                return f"expected rule [{rule} comment {quote(mine)}] in table {HEAD} not found"
    if bridge is not None:
        present = {(r.get("chain"), r.get("comment")) for r in _rules(existing, STAGE_1) + _rules(existing, STAGE_2)}
        for chain, rule, text in isolation_rules(conf.ingress_policy, bridge):
            if (chain, text) not in present:
                return f"expected {chain} rule [{rule}] in table {HEAD} not found"
    return None
