"""Pure builders of the iptables-restore scripts (filter table, one family) for ADD, DEL and GC, and of CHECK's
findings, from a snapshot of the chains the plugin uses (`read_chains`).

The layout is the reference's, rule for rule, so either implementation's DEL removes the other's rules:

    FORWARD                (inserted at 1) -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD
    CNI-FORWARD            (inserted at 1) -m comment --comment "CNI firewall plugin admin overrides" -j CNI-ADMIN
                           per address, appended, no comment (the reference's DEL matches them exactly):
                           -d IP/32 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT;  -s IP/32 -j ACCEPT
                           ★ once, shared (no address, never removed, like the jumps), appended:
                           -m conntrack --ctstate DNAT -m comment --comment "... (port mappings)" -j ACCEPT
    CNI-ADMIN              the admin's own (iptablesAdminChainName); never edited
    ingressPolicy same-bridge / isolated, per bridge BR (the newest bridge on top):
    FORWARD                (inserted at 1, above the CNI-FORWARD jump) -j CNI-ISOLATION-STAGE-1
    CNI-ISOLATION-STAGE-1  [isolated: -i BR -o BR -j DROP]  -i BR ! -o BR -j CNI-ISOLATION-STAGE-2 ... -j RETURN
    CNI-ISOLATION-STAGE-2  -o BR -j DROP ... -j RETURN

★ The DNAT accept is pycni's: with FORWARD policy DROP the reference's accepts let in only replies to a pod, so a
hostPort (portmap's DNAT) is unreachable from outside the node. Connections whose destination a DNAT rule
rewrote are accepted after the admin chain (whose drops still win) and after the isolation stages (so a port
mapping never crosses isolated networks). It names no pod, so a Go DEL leaves nothing of a pod behind, and the
reference's CHECK and DEL ignore it.

Isolation rules carry the reference v1.9.x comments; a rule is already present when a rule with the same matches
and target exists with any of the comments v1.9.x or 1.1.1 write (1.1.1 wrote "(ingressPolicy: same-bridge)" on
all of them), so a node that ran either Go version gets no duplicates. Shared chains are created with `-N`, only
when absent: `:CHAIN - [0:0]` would flush another writer's chain under --noflush.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable

from common.config import IPAddress
from common.firewall.iptables import SavedTable, deletion, quote, split_rule

from .config import FirewallConf

FORWARD = "FORWARD"
CNI_FORWARD = "CNI-FORWARD"
STAGE_1 = "CNI-ISOLATION-STAGE-1"
STAGE_2 = "CNI-ISOLATION-STAGE-2"
RULES_COMMENT = "CNI firewall plugin rules"
ADMIN_COMMENT = "CNI firewall plugin admin overrides"
FORWARD_JUMP = f"-A {FORWARD} -m comment --comment {quote(RULES_COMMENT)} -j {CNI_FORWARD}"
DNAT_ACCEPT = (f"-A {CNI_FORWARD} -m conntrack --ctstate DNAT -m comment "
               f"--comment {quote(RULES_COMMENT + ' (port mappings)')} -j ACCEPT")
SAME_BRIDGE_COMMENT = f"{RULES_COMMENT} (ingressPolicy: same-bridge)"
ISOLATED_COMMENT = f"{RULES_COMMENT} (ingressPolicy: isolated)"
SHARED_COMMENT = f"{RULES_COMMENT} (ingressPolicy: same-bridge|isolated)"
ISOLATION_COMMENTS = (SAME_BRIDGE_COMMENT, ISOLATED_COMMENT, SHARED_COMMENT)


def read_chains(conf: FirewallConf) -> list[str]:
    """The chains every verb looks at (the rest of the filter table is none of our business)."""
    return [FORWARD, CNI_FORWARD, conf.admin_chain, STAGE_1, STAGE_2]


def admin_jump(admin_chain: str) -> str:
    return f"-A {CNI_FORWARD} -m comment --comment {quote(ADMIN_COMMENT)} -j {admin_chain}"


def host_rules(ip: IPAddress) -> list[str]:
    """The two accept rules of one address, as iptables-save prints them."""
    host = f"{ip}/{ip.max_prefixlen}"
    return [f"-A {CNI_FORWARD} -d {host} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
            f"-A {CNI_FORWARD} -s {host} -j ACCEPT"]


def isolation_steps(policy: str, bridge: str) -> list[tuple[str, str]]:
    """(how, rule line) in the reference's order: how is "insert" (at position 1) or "append"."""
    tagged = quote(SHARED_COMMENT)
    own = quote(ISOLATED_COMMENT if policy == "isolated" else SAME_BRIDGE_COMMENT)
    steps = [("insert", f"-A {FORWARD} -m comment --comment {tagged} -j {STAGE_1}"),
             ("insert", f"-A {STAGE_1} -i {bridge} ! -o {bridge} -m comment --comment {own} -j {STAGE_2}")]
    if policy == "isolated":
        steps.append(("insert", f"-A {STAGE_1} -i {bridge} -o {bridge} -m comment --comment {own} -j DROP"))
    steps += [("append", f"-A {STAGE_1} -m comment --comment {tagged} -j RETURN"),
              ("insert", f"-A {STAGE_2} -o {bridge} -m comment --comment {tagged} -j DROP"),
              ("append", f"-A {STAGE_2} -m comment --comment {tagged} -j RETURN")]
    return steps


def without_isolation_comment(line: str) -> str:
    """A rule line with any comment of the reference's isolation rules removed (what "already present" compares)."""
    for text in ISOLATION_COMMENTS:
        line = line.replace(f" -m comment --comment {quote(text)}", "")
    return line


def _has_isolation_rule(saved: SavedTable, line: str) -> bool:
    bare = without_isolation_comment(line)
    chain = line.split()[1]
    return any(without_isolation_comment(have) == bare for have in saved.rules_of(chain))


def _command(how: str, line: str) -> str:
    chain, spec = line[3:].split(" ", 1)
    return f"-I {chain} 1 {spec}" if how == "insert" else line


# --- scripts ----------------------------------------------------------------------------------------------

def add_script(conf: FirewallConf, ips: list[IPAddress], bridge: str | None, saved: SavedTable) -> str:
    """ADD for one family: the chains and jumps where missing, each address's accepts unless present, then the
    ingress policy's chains and rules where missing ('' when everything is there)."""
    lines = [f"-N {chain}" for chain in (CNI_FORWARD, conf.admin_chain) if not saved.has_chain(chain)]
    if not saved.has_rule(FORWARD_JUMP):
        lines.append(_command("insert", FORWARD_JUMP))
    if not saved.has_rule(admin_jump(conf.admin_chain)):
        lines.append(_command("insert", admin_jump(conf.admin_chain)))
    if not saved.has_rule(DNAT_ACCEPT):
        lines.append(DNAT_ACCEPT)
    lines += [rule for rule in _unique(r for ip in ips for r in host_rules(ip)) if not saved.has_rule(rule)]
    if bridge is not None:
        lines += [f"-N {chain}" for chain in (STAGE_1, STAGE_2) if not saved.has_chain(chain)]
        lines += [_command(how, line) for how, line in isolation_steps(conf.ingress_policy, bridge)
                  if not _has_isolation_rule(saved, line)]
    return _script(lines)


def delete_script(ips: list[IPAddress], saved: SavedTable) -> str:
    """DEL: the addresses' accept rules that are present (every copy); chains and jumps stay (shared)."""
    doomed = set(_unique(r for ip in ips for r in host_rules(ip)))
    return _script([deletion(line) for line in saved.rules_of(CNI_FORWARD) if line in doomed])


def stale_bridges(saved: SavedTable, interfaces: frozenset[str]) -> list[str]:
    """GC: the isolation rules naming a bridge (`-i BR` / `-o BR`) that no longer exists on the node."""
    stale = []
    for line in saved.rules_of(STAGE_1) + saved.rules_of(STAGE_2):
        try:
            tokens = split_rule(line)
        except ValueError:
            continue
        named = [tokens[i + 1] for i, token in enumerate(tokens[:-1]) if token in ("-i", "-o")]
        if any(name not in interfaces and not name.endswith("+") for name in named):
            stale.append(line)
    return stale


def gc_script(stale_ips: list[IPAddress], interfaces: frozenset[str] | None, saved: SavedTable) -> str:
    """GC: the stale addresses' accept rules, and (when the node's interfaces are known) the isolation rules of
    bridges that are gone."""
    doomed = set(_unique(r for ip in stale_ips for r in host_rules(ip)))
    lines = [deletion(line) for line in saved.rules_of(CNI_FORWARD) if line in doomed]
    if interfaces is not None:
        lines += [deletion(line) for line in stale_bridges(saved, interfaces)]
    return _script(lines)


def _script(lines: list[str]) -> str:
    return "\n".join(["*filter", *lines, "COMMIT", ""]) if lines else ""


def _unique(lines: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(lines))


# --- CHECK ------------------------------------------------------------------------------------------------

def check(conf: FirewallConf, ips: list[IPAddress], bridge: str | None, saved: SavedTable) -> str | None:
    """The first missing rule, in the reference's words (its CHECK looks at the jumps and the accepts; the
    isolation rules are checked here too, under the same words), or None when everything is in place."""
    if not saved.has_rule(FORWARD_JUMP):
        return f"expected {FORWARD} rule {_go_args(FORWARD_JUMP)} not found"
    if not saved.has_rule(admin_jump(conf.admin_chain)):
        return f"expected {CNI_FORWARD} rule {_go_args(admin_jump(conf.admin_chain))} not found"
    for ip in ips:
        for rule in host_rules(ip):
            if not saved.has_rule(rule):
                return f"expected rule {_go_args(rule)} not found"
    if bridge is not None:
        for _, line in isolation_steps(conf.ingress_policy, bridge):
            if not _has_isolation_rule(saved, line):
                return f"expected {line.split()[1]} rule {_go_args(line)} not found"
    return None


def _go_args(line: str) -> str:
    """A rule as the reference prints it in errors: Go's %v of its argument list, e.g. `[-s 10.0.0.2/32 -j ACCEPT]`."""
    return "[" + " ".join(split_rule(line)[2:]) + "]"
