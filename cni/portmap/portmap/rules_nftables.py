"""Pure builders of the `nft -f -` scripts for ADD, DEL and GC, and of CHECK's findings.

The reference's layout (tables `ip cni_hostport` / `ip6 cni_hostport`), every rule of a container carrying the
container ID as its comment:

    hostports         [ip daddr H] tcp dport P dnat to C:CP             comment "<cid>"
    hostip_hostports  legacy (hostIP rules of older versions), cleaned on DEL
    hostports_all     jump hostip_hostports; jump hostports              (flushed and rewritten on every ADD)
    prerouting/output <conditions> fib daddr type local jump hostports_all  (flushed and rewritten on every ADD)
    masquerading      ip saddr C ip daddr C masquerade; ip saddr 127.0.0.1 ip daddr C masquerade (v4)
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from common.config import IPInterface
from common.firewall.nftables import chains, quote, rules

from .config import PortmapConf

TABLE = "cni_hostport"
RULE_CHAINS = ("hostports", "hostip_hostports", "masquerading")


def family_name(version: int) -> str:
    return "ip" if version == 4 else "ip6"


def add_script(conf: PortmapConf, container_id: str, ip: IPInterface, existing: list[dict[str, Any]] | None) -> str:
    """ADD for one family. The container's old rules (a repeated ADD) are deleted in the same transaction."""
    fam = family_name(ip.version)
    head = f"{fam} {TABLE}"
    lines = [f'add table {head} {{ comment "CNI portmap plugin" ; }}']
    lines += [f"add chain {head} {c}" for c in ("hostports", "hostip_hostports", "hostports_all")]
    lines += [f"flush chain {head} hostports_all",
              f"add rule {head} hostports_all jump hostip_hostports",
              f"add rule {head} hostports_all jump hostports"]
    conditions = "".join(token + " " for token in conf.conditions(ip.version))
    for chain, hook in (("prerouting", "prerouting"), ("output", "output")):
        lines += [f"add chain {head} {chain} {{ type nat hook {hook} priority -100 ; }}",
                  f"flush chain {head} {chain}",
                  f"add rule {head} {chain} {conditions}fib daddr type local jump hostports_all"]
    if conf.snat:
        lines.append(f"add chain {head} masquerading {{ type nat hook postrouting priority 100 ; }}")
    lines += _deletions(fam, existing or [], lambda cid: cid == container_id)
    lines += [f"add rule {head} {rule} comment {quote(container_id)}" for rule in container_rules(conf, ip)]
    return "\n".join(lines) + "\n"


def container_rules(conf: PortmapConf, ip: IPInterface) -> list[str]:
    """'<chain> <rule>' for each rule of this container in one family."""
    fam = family_name(ip.version)
    target = f"{ip.ip}" if ip.version == 4 else f"[{ip.ip}]"
    out: list[str] = []
    for m in conf.mappings:
        if not m.applies_to(ip.version):
            continue
        dest = f"{fam} daddr {m.destination} " if m.destination is not None else ""
        out.append(f"hostports {dest}{m.protocol} dport {m.host_port} dnat to {target}:{m.container_port}")
    out += [f"masquerading {rule}" for rule in _masquerade(conf, ip)] if out else []
    return list(dict.fromkeys(out))


def _masquerade(conf: PortmapConf, ip: IPInterface) -> list[str]:
    if not conf.snat:
        return []
    fam = family_name(ip.version)
    if conf.masq_all:   # any source, but only connections that were DNATed (to a mapped port)
        return [f"{fam} daddr {ip.ip} ct status dnat masquerade"]
    rules_ = [f"{fam} saddr {ip.ip} {fam} daddr {ip.ip} masquerade"]
    if ip.version == 4:
        rules_.append(f"ip saddr 127.0.0.1 ip daddr {ip.ip} masquerade")
    return rules_


def _deletions(fam: str, objects: list[dict[str, Any]], doomed: Any) -> list[str]:
    lines = []
    for rule in rules(objects):
        if rule.get("chain") in RULE_CHAINS and "comment" in rule and doomed(rule["comment"]):
            lines.append(f"delete rule {fam} {TABLE} {rule['chain']} handle {rule['handle']}")
    return lines


def delete_script(tables: dict[int, list[dict[str, Any]] | None], container_id: str) -> str:
    """DEL: every rule whose comment is the container ID, in both families; '' when there is none."""
    lines = [line for version, objects in tables.items()
             for line in _deletions(family_name(version), objects or [], lambda cid: cid == container_id)]
    return "\n".join(lines) + "\n" if lines else ""


def gc_script(tables: dict[int, list[dict[str, Any]] | None], valid: frozenset[str]) -> str:
    """GC: every rule whose comment is not a valid container ID. The reference's comments carry no network
    name, so with several portmap networks on nftables GC must get the attachments of all of them."""
    lines = [line for version, objects in tables.items()
             for line in _deletions(family_name(version), objects or [], lambda cid: cid not in valid)]
    return "\n".join(lines) + "\n" if lines else ""


def check(conf: PortmapConf, container_id: str, ip: IPInterface, objects: list[dict[str, Any]] | None) -> list[str]:
    """What is missing for this container in one family ([] when everything is in place)."""
    fam = family_name(ip.version)
    if objects is None:
        return [f"table {fam} {TABLE} not found"]
    missing = [f"chain {c}" for c in ("hostports_all", "prerouting", "output") if c not in chains(objects)]
    expected = container_rules(conf, ip)
    for chain in ("hostports", "masquerading"):
        want = sum(1 for rule in expected if rule.startswith(chain + " "))
        have = sum(1 for r in rules(objects, chain) if r.get("comment") == container_id)
        if chain == "hostports":
            have += sum(1 for r in rules(objects, "hostip_hostports") if r.get("comment") == container_id)
        if have < want:
            missing.append(f"{want - have} rule(s) in chain {chain}")
    return missing
