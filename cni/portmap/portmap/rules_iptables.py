"""Pure builders of the iptables-restore scripts (nat table) for ADD, DEL and GC, and of CHECK's findings.

The layout is the reference's, byte for byte, so either implementation can DEL the other's rules:

    PREROUTING, OUTPUT    -m addrtype --dst-type LOCAL -j CNI-HOSTPORT-DNAT
    CNI-HOSTPORT-DNAT     -m comment --comment "dnat name: ..." -m multiport -p P --destination-ports ... -j CNI-DN-h
    CNI-DN-h              per mapping: [hairpin mark] [localhost mark (v4)] DNAT
    POSTROUTING           (inserted at 1) -m comment --comment "CNI portfwd requiring masquerade" -j CNI-HOSTPORT-MASQ
    CNI-HOSTPORT-SETMARK  -j MARK --set-xmark <mark>;  CNI-HOSTPORT-MASQ  -m mark --mark <mark> -j MASQUERADE

Per-container chain rules are written in iptables-save's canonical text so CHECK can compare lines; shared
chains are created with `-N` (never `:CHAIN`, which would flush another container's rules under --noflush).
"""
from __future__ import annotations

from common.config import IPInterface
from common.firewall.iptables import SavedTable, deletion, quote, rule_comment
from common.firewall.names import chain_name, is_trimmed, trim_comment

from .config import Mapping, PortmapConf

DNAT_CHAIN = "CNI-HOSTPORT-DNAT"
SETMARK_CHAIN = "CNI-HOSTPORT-SETMARK"
MASQ_CHAIN = "CNI-HOSTPORT-MASQ"
OLD_SNAT_CHAIN = "CNI-HOSTPORT-SNAT"
TOPLEVEL_JUMP = f"-m addrtype --dst-type LOCAL -j {DNAT_CHAIN}"
MASQ_JUMP = f'-m comment --comment "CNI portfwd requiring masquerade" -j {MASQ_CHAIN}'
MULTIPORT_MAX = 15


def dn_chain(network: str, container_id: str) -> str:
    return chain_name(network, container_id, "DN-")


def sn_chain(network: str, container_id: str) -> str:
    """The per-container SNAT chain of old reference versions; DEL still removes it."""
    return chain_name(network, container_id, "SN-")


def comment(network: str, container_id: str) -> str:
    return trim_comment(f'dnat name: "{network}" id: "{container_id}"')


def _mark(bit: int) -> str:
    value = 1 << bit
    return f"{value:#x}/{value:#x}"


def setmark_rule(bit: int) -> str:
    return (f'-A {SETMARK_CHAIN} -m comment --comment "CNI portfwd masquerade mark" '
            f"-j MARK --set-xmark {_mark(bit)}")


def masq_rule(bit: int) -> str:
    return f"-A {MASQ_CHAIN} -m mark --mark {_mark(bit)} -j MASQUERADE"


# --- the per-container chain ------------------------------------------------------------------------------

def dn_rules(conf: PortmapConf, container_id: str, ip: IPInterface) -> list[str]:
    """CNI-DN-<hash> rules in iptables-save's canonical form: per mapping hairpin mark, localhost mark (v4), DNAT."""
    chain = dn_chain(conf.name, container_id)
    target = conf.external_setmark or SETMARK_CHAIN
    lines: list[str] = []
    for m in conf.mappings:
        if not m.applies_to(ip.version):
            continue
        if conf.snat:
            source = "" if conf.masq_all else f"-s {ip.network} "    # save omits -s 0.0.0.0/0
            lines.append(f"-A {chain} {source}{_match(m)} -j {target}")
            if ip.version == 4 and not conf.masq_all:
                lines.append(f"-A {chain} -s 127.0.0.1/32 {_match(m)} -j {target}")
        lines.append(f"-A {chain} {_match(m)} -j DNAT --to-destination {_ip_port(ip, m.container_port)}")
    return _unique(lines)


def _match(m: Mapping) -> str:
    dest = m.destination
    dst = f"-d {dest}/{dest.max_prefixlen} " if dest is not None else ""
    return f"{dst}-p {m.protocol} -m {m.protocol} --dport {m.host_port}"


def _ip_port(ip: IPInterface, port: int) -> str:
    return f"{ip.ip}:{port}" if ip.version == 4 else f"[{ip.ip}]:{port}"


def entry_rules(conf: PortmapConf, container_id: str, family: int) -> list[str]:
    """Jumps from CNI-HOSTPORT-DNAT, in the reference's argument order (protocols sorted, <=15 ports each).
    Ports of every mapping are listed, even those skipped for this family, as the reference does."""
    by_proto: dict[str, list[str]] = {}
    for m in conf.mappings:
        by_proto.setdefault(m.protocol, []).append(str(m.host_port))
    text = quote(comment(conf.name, container_id))
    conditions = "".join(" " + quote(token) for token in conf.conditions(family))
    chain = dn_chain(conf.name, container_id)
    lines = []
    for proto in sorted(by_proto):
        ports = by_proto[proto]
        for i in range(0, len(ports), MULTIPORT_MAX):
            spec = ",".join(ports[i:i + MULTIPORT_MAX])
            lines.append(f"-A {DNAT_CHAIN} -m comment --comment {text} -m multiport -p {proto} "
                         f"--destination-ports {spec}{conditions} -j {chain}")
    return _unique(lines)


def _unique(lines: list[str]) -> list[str]:
    """The reference appends a rule only if it is not there yet."""
    return list(dict.fromkeys(lines))


# --- scripts ----------------------------------------------------------------------------------------------

def add_script(conf: PortmapConf, container_id: str, ip: IPInterface, saved: SavedTable) -> str:
    """ADD for one family: shared chains and jumps only where missing, the container's chain rewritten."""
    chain = dn_chain(conf.name, container_id)
    lines = ["*nat", f":{chain} - [0:0]"]               # creates, or flushes our own chain
    lines += [deletion(line) for line in _jumps_to(saved, chain)]
    if conf.snat and not conf.external_setmark:
        lines += _ensure_chain(saved, SETMARK_CHAIN, [setmark_rule(conf.mark_bit)])
        lines += _ensure_chain(saved, MASQ_CHAIN, [masq_rule(conf.mark_bit)])
        if not saved.has_rule(f"-A POSTROUTING {MASQ_JUMP}"):
            lines.append(f"-I POSTROUTING 1 {MASQ_JUMP}")
    lines += _ensure_chain(saved, DNAT_CHAIN, [])
    lines += [f"-A {c} {TOPLEVEL_JUMP}" for c in ("PREROUTING", "OUTPUT")
              if not saved.has_rule(f"-A {c} {TOPLEVEL_JUMP}")]
    lines += dn_rules(conf, container_id, ip)
    lines += entry_rules(conf, container_id, ip.version)
    return "\n".join(lines + ["COMMIT", ""])


def _ensure_chain(saved: SavedTable, chain: str, rules: list[str]) -> list[str]:
    lines = [] if saved.has_chain(chain) else [f"-N {chain}"]
    return lines + [rule for rule in rules if not saved.has_rule(rule)]


def _jumps_to(saved: SavedTable, chain: str) -> list[str]:
    return [line for line in saved.rules if line.endswith(f" -j {chain}") or line.endswith(f" -g {chain}")]


def delete_script(saved: SavedTable, chains: list[str]) -> str:
    """Remove every jump to the given per-container chains, then the chains; '' when nothing is there."""
    lines = [deletion(line) for chain in chains for line in _jumps_to(saved, chain)]
    for chain in chains:
        if saved.has_chain(chain):
            lines += [f"-F {chain}", f"-X {chain}"]
    return "\n".join(["*nat", *lines, "COMMIT", ""]) if lines else ""


def add_read_chains(conf: PortmapConf, container_id: str) -> list[str]:
    """The chains ADD looks at (everything else in the nat table is none of our business). Not the container's
    own chain: ADD rewrites it whatever it holds (`:CHAIN`), and no rule in it can jump to it (the kernel refuses
    loops), so reading it changed nothing in the script."""
    return ["PREROUTING", "OUTPUT", "POSTROUTING", DNAT_CHAIN, SETMARK_CHAIN, MASQ_CHAIN]


def check_read_chains(conf: PortmapConf, container_id: str) -> list[str]:
    """The chains CHECK looks at: ADD's and the container's own, whose rules it compares."""
    return [*add_read_chains(conf, container_id), dn_chain(conf.name, container_id)]


def delete_read_chains(network: str, container_id: str) -> list[str]:
    """The chains DEL looks at: where jumps to the container's chains live (CNI-HOSTPORT-SNAT and POSTROUTING
    for the legacy CNI-SN chain), and the chains themselves."""
    return [DNAT_CHAIN, "CNI-HOSTPORT-SNAT", "POSTROUTING", *container_chains(network, container_id)]


def container_chains(network: str, container_id: str) -> list[str]:
    return [dn_chain(network, container_id), sn_chain(network, container_id)]


def stale_chains(saved: SavedTable, network: str, valid: frozenset[str]) -> list[str]:
    """GC: the per-container chains of this network's containers that are not in the valid list.

    A DNAT jump is this network's when its comment names the network; its target, the hash of network and
    container ID, says which container it is, whatever the ID's length. That target is what is compared with
    the valid containers' chains: a long ID's comment is cut at 255 bytes (as the Go plugin's), and two IDs that
    differ only past the cut share one. A complete comment must also name the container whose chain is the
    target (a forged or damaged one is ignored), and gives its legacy CNI-SN chain."""
    prefix = f'dnat name: "{network}" id: "'
    keep = {dn_chain(network, cid) for cid in valid}
    stale: list[str] = []
    for line in saved.rules_of(DNAT_CHAIN):
        text, target = rule_comment(line), _target(line)
        if not text or not text.startswith(prefix) or target in keep or target in stale:
            continue
        cid = text[len(prefix):-1]
        if text.endswith('"') and target == dn_chain(network, cid):
            stale += [target, sn_chain(network, cid)]
        elif is_trimmed(text) and target.startswith("CNI-DN-"):
            stale.append(target)
    return stale


def _target(line: str) -> str:
    words = line.split()
    return words[-1] if len(words) > 2 and words[-2] in ("-j", "-g") else ""


def gc_script(saved: SavedTable, network: str, valid: frozenset[str]) -> str:
    return delete_script(saved, stale_chains(saved, network, valid))


# --- CHECK ------------------------------------------------------------------------------------------------

def check(conf: PortmapConf, container_id: str, ip: IPInterface, saved: SavedTable) -> list[str]:
    """What is missing for this container in one family ([] when everything is in place)."""
    chain = dn_chain(conf.name, container_id)
    if not saved.has_chain(chain):
        return [f"chain {chain} not found in table nat"]
    missing = [f"rule {r!r}" for r in dn_rules(conf, container_id, ip) if not saved.has_rule(r)]
    text = quote(comment(conf.name, container_id))
    jumps = [line for line in _jumps_to(saved, chain) if f"--comment {text} " in line]
    if len(jumps) < len(entry_rules(conf, container_id, ip.version)):
        missing.append(f"jumps from {DNAT_CHAIN} to {chain}")
    shared = [f"-A {c} {TOPLEVEL_JUMP}" for c in ("PREROUTING", "OUTPUT")]
    if conf.snat and not conf.external_setmark:
        shared += [setmark_rule(conf.mark_bit), masq_rule(conf.mark_bit), f"-A POSTROUTING {MASQ_JUMP}"]
    missing += [f"rule {r!r}" for r in shared if not saved.has_rule(r)]
    return missing
