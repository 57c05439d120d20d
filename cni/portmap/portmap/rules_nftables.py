"""Pure builders of the `nft -f -` scripts for ADD, DEL and GC, and of CHECK's findings.

The reference's layout (tables `ip cni_hostport` / `ip6 cni_hostport`), every rule of a container carrying the
container ID as its comment:

    hostports         <conditions> [ip daddr H] tcp dport P counter name N dnat to C:CP   comment "<cid>"
    hostip_hostports  legacy (hostIP rules of older versions), cleaned on DEL
    hostports_all     jump hostip_hostports; jump hostports              (flushed and rewritten on every ADD)
    prerouting/output fib daddr type local jump hostports_all            (flushed and rewritten on every ADD)
    masquerading      ip saddr C ip daddr C counter name N masquerade; ip saddr 127.0.0.1 ... (v4)

Ownership. The reference's comment names the container, not the network, so a pod on two portmap networks has
two sets of rules with the same comment, and the reference's DEL on one network removes both. pycni keeps that
comment (a Go DEL still removes what pycni added) and tags each of its rules with its network: the rule counts
into the named counter N = `network-<sha512(network)[:16]>`, one per network and table. A rule belongs to
(network, container) when its comment is the container's and either
  - it counts into that network's counter (pycni wrote it), or
  - it counts into no named counter (the reference wrote it, or pycni before the tag) and the container address
    it serves is the container's address on that network (DEL without prevResult: the comment alone decides,
    as in the reference).
GC removes tagged rules only: an untagged rule does not say which network it is on.
The reference's conditionsV4/V6 sit on the shared prerouting/output jump, so every ADD re-gated all networks'
mappings with its own network's conditions; here they are part of each DNAT rule.
A container ID longer than nft's 128-character comment limit (the reference cannot add those) is commented as
"<first 48 characters>... sha512:<64 hex>": the space cannot occur in a container ID, so that never equals one.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any
    Objects = list[dict[str, Any]]
    Tables = dict[int, "Objects | None"]

from common.config import IPInterface
from common.firewall.names import sha512_hex
from common.firewall.nftables import chains, quote, rules

from .config import PortmapConf

TABLE = "cni_hostport"
RULE_CHAINS = ("hostports", "hostip_hostports", "masquerading")
COMMENT_MAX = 128   # nft refuses longer comments


def family_name(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def network_counter(network: str) -> str:
    """The named counter every pycni rule of `network` counts into: the rule's network tag."""
    return "network-" + sha512_hex(network)[:16]


def container_comment(container_id: str) -> str:
    """The comment of a container's rules: its ID (the reference's), or a digest when nft would refuse the ID."""
    if len(container_id.encode()) <= COMMENT_MAX:
        return container_id
    return f"{container_id[:48]}... sha512:{sha512_hex(container_id)[:64]}"


# --- ownership --------------------------------------------------------------------------------------------

def counter_of(rule: dict[str, Any]) -> str | None:
    """The named counter a rule counts into (an anonymous `counter` has packets/bytes instead of a name)."""
    for expr in rule.get("expr") or ():
        if isinstance(expr, dict) and isinstance(expr.get("counter"), str):
            return str(expr["counter"])
    return None


def address_of(rule: dict[str, Any]) -> str | None:
    """The container address a rule serves: its DNAT target, else the address its daddr matches."""
    daddr = None
    for expr in rule.get("expr") or ():
        if not isinstance(expr, dict):
            continue
        if isinstance(expr.get("dnat"), dict):
            return str(expr["dnat"].get("addr"))
        match = expr.get("match")
        if isinstance(match, dict) and _field(match.get("left")) == "daddr":
            daddr = str(match.get("right"))
    return daddr


def _field(left: Any) -> Any:
    payload = left.get("payload") if isinstance(left, dict) else None
    return payload.get("field") if isinstance(payload, dict) else None


def owned_by(network: str, container_id: str, addresses: Collection[str] | None) -> Callable[[dict[str, Any]], bool]:
    """Whether a rule belongs to the container on this network (module doc); `addresses` None: unknown."""
    counter, comment = network_counter(network), container_comment(container_id)

    def owned(rule: dict[str, Any]) -> bool:
        if rule.get("comment") != comment:
            return False
        tag = counter_of(rule)
        if tag is not None:
            return tag == counter
        return addresses is None or address_of(rule) in addresses
    return owned


def stale_in(network: str, valid: frozenset[str]) -> Callable[[dict[str, Any]], bool]:
    """GC: a rule tagged with this network whose container is not valid."""
    counter, keep = network_counter(network), {container_comment(cid) for cid in valid}
    return lambda rule: counter_of(rule) == counter and rule.get("comment") not in keep


# --- ADD --------------------------------------------------------------------------------------------------

def add_script(conf: PortmapConf, container_id: str, ip: IPInterface, existing: Objects | None) -> str:
    """ADD for one family. The container's old rules on this network (a repeated ADD) are deleted in the same
    transaction; its rules on other networks stay."""
    fam = family_name(ip.version)
    head = f"{fam} {TABLE}"
    lines = [f'add table {head} {{ comment "CNI portmap plugin" ; }}']
    lines += [f"add chain {head} {c}" for c in ("hostports", "hostip_hostports", "hostports_all")]
    lines += [f"flush chain {head} hostports_all",
              f"add rule {head} hostports_all jump hostip_hostports",
              f"add rule {head} hostports_all jump hostports"]
    for chain, hook in (("prerouting", "prerouting"), ("output", "output")):
        lines += [f"add chain {head} {chain} {{ type nat hook {hook} priority -100 ; }}",
                  f"flush chain {head} {chain}",
                  f"add rule {head} {chain} fib daddr type local jump hostports_all"]
    if conf.snat:
        lines.append(f"add chain {head} masquerading {{ type nat hook postrouting priority 100 ; }}")
    new = container_rules(conf, ip)
    if new:
        about = quote(f"portmap network {conf.name}"[:COMMENT_MAX])
        lines.append(f"add counter {head} {network_counter(conf.name)} {{ comment {about} ; }}")
    owned = owned_by(conf.name, container_id, {str(ip.ip)})
    lines += [_deletion(fam, rule) for rule in _rule_objects(existing) if owned(rule)]
    comment = quote(container_comment(container_id))
    lines += [f"add rule {head} {rule} comment {comment}" for rule in new]
    return "\n".join(lines) + "\n"


def container_rules(conf: PortmapConf, ip: IPInterface) -> list[str]:
    """'<chain> <rule>' for each rule of this container in one family."""
    fam = family_name(ip.version)
    target = f"{ip.ip}" if ip.version == 4 else f"[{ip.ip}]"
    count = f"counter name {network_counter(conf.name)}"
    conditions = "".join(token + " " for token in conf.conditions(ip.version))
    out: list[str] = []
    for m in conf.mappings:
        if not m.applies_to(ip.version):
            continue
        dest = f"{fam} daddr {m.destination} " if m.destination is not None else ""
        out.append(f"hostports {conditions}{dest}{m.protocol} dport {m.host_port} {count} "
                   f"dnat to {target}:{m.container_port}")
    out += [f"masquerading {rule} {count} masquerade" for rule in _masquerade(conf, ip)] if out else []
    return list(dict.fromkeys(out))


def _masquerade(conf: PortmapConf, ip: IPInterface) -> list[str]:
    """The matches of the hairpin / localhost masquerade rules."""
    if not conf.snat:
        return []
    fam = family_name(ip.version)
    if conf.masq_all:   # any source, but only connections that were DNATed (to a mapped port)
        return [f"{fam} daddr {ip.ip} ct status dnat"]
    matches = [f"{fam} saddr {ip.ip} {fam} daddr {ip.ip}"]
    if ip.version == 4:
        matches.append(f"ip saddr 127.0.0.1 ip daddr {ip.ip}")
    return matches


# --- DEL and GC -------------------------------------------------------------------------------------------

def _rule_objects(objects: Objects | None) -> list[dict[str, Any]]:
    return [rule for rule in rules(objects or []) if rule.get("chain") in RULE_CHAINS and "comment" in rule]


def _deletion(fam: str, rule: dict[str, Any]) -> str:
    return f"delete rule {fam} {TABLE} {rule['chain']} handle {rule['handle']}"


def _removal(tables: Tables, network: str, doomed: Callable[[dict[str, Any]], bool]) -> str:
    """Delete the doomed rules of both families, and the network's counter where no rule counts into it any
    more (so the last DEL leaves the table as the reference's would); '' when there is nothing to do."""
    counter = network_counter(network)
    lines = []
    for version, objects in tables.items():
        fam = family_name(version)
        gone = [rule for rule in _rule_objects(objects) if doomed(rule)]
        lines += [_deletion(fam, rule) for rule in gone]
        handles = {rule["handle"] for rule in gone}
        users = [r for r in rules(objects or []) if counter_of(r) == counter and r.get("handle") not in handles]
        if counter in _counters(objects) and not users:
            lines.append(f"delete counter {fam} {TABLE} {counter}")
    return "\n".join(lines) + "\n" if lines else ""


def _counters(objects: Objects | None) -> set[str]:
    return {str(obj["counter"].get("name")) for obj in objects or () if isinstance(obj.get("counter"), dict)}


def delete_script(tables: Tables, network: str, container_id: str, addresses: Collection[str] | None) -> str:
    """DEL: the container's rules on this network, in both families; '' when there is none."""
    return _removal(tables, network, owned_by(network, container_id, addresses))


def gc_script(tables: Tables, network: str, valid: frozenset[str]) -> str:
    """GC: this network's (tagged) rules whose container is not valid."""
    return _removal(tables, network, stale_in(network, valid))


# --- CHECK ------------------------------------------------------------------------------------------------

def check(conf: PortmapConf, container_id: str, ip: IPInterface, objects: Objects | None) -> list[str]:
    """What is missing for this container in one family ([] when everything is in place)."""
    fam = family_name(ip.version)
    if objects is None:
        return [f"table {fam} {TABLE} not found"]
    missing = [f"chain {c}" for c in ("hostports_all", "prerouting", "output") if c not in chains(objects)]
    owned = owned_by(conf.name, container_id, {str(ip.ip)})
    mine = [rule for rule in _rule_objects(objects) if owned(rule)]
    expected = container_rules(conf, ip)
    for chain in ("hostports", "masquerading"):
        want = sum(1 for rule in expected if rule.startswith(chain + " "))
        have = sum(1 for r in mine if r["chain"] == chain or (chain, r["chain"]) == ("hostports", "hostip_hostports"))
        if have < want:
            missing.append(f"{want - have} rule(s) in chain {chain}")
    return missing
