"""What a plugin leaves behind, read back: links, lo, host-local's files, iptables and nftables state."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .configs import NETWORK
from .netns import Netns


def links(ns: Netns) -> list[str]:
    return [link["ifname"] for link in json.loads(ns.sh("ip -j link show", check=False) or "[]")]


def veths(ns: Netns) -> list[str]:
    return [link["ifname"] for link in json.loads(ns.sh("ip -j link show type veth", check=False) or "[]")]


def lo_state(ns: Netns) -> tuple[bool, tuple[str, ...]]:
    """(is lo administratively up, its addresses in kernel order)."""
    (link,) = json.loads(ns.sh("ip -j addr show dev lo"))
    return "UP" in link["flags"], tuple(f"{a['local']}/{a['prefixlen']}" for a in link.get("addr_info", []))


def allocations(data_dir: Path, network: str = NETWORK) -> list[str]:
    """host-local's allocation files (and anything unexpected) in the network directory: all but `lock` and the
    `last_reserved_ip.N` hints."""
    net = data_dir / network
    if not net.exists():
        return []
    return sorted(p.name for p in net.iterdir() if p.name != "lock" and not p.name.startswith("last_reserved_ip."))


def tree(root: Path) -> dict[str, str]:
    """Every path under root -> type (for "nothing written outside dataDir")."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            out[str(p.relative_to(root))] = "l" if p.is_symlink() else "d" if p.is_dir() else "f"
    return out


def firewall_state(ns: Netns) -> str:
    """iptables (both families, all tables) and the nft ruleset of a netns, without counters and handles."""
    text = ns.sh("iptables-save; ip6tables-save; echo ---; nft list ruleset", check=False)
    lines = []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if line.startswith(":"):
            line = line.split(" [")[0]
        line = re.sub(r"counter packets \d+ bytes \d+", "counter", line)
        lines.append(line)
    return "\n".join(lines)


def nat_rules(ns: Netns) -> str:
    """Both families' nat tables as iptables-save prints them, without comments and chain counters."""
    text = ns.sh("iptables-save -t nat; ip6tables-save -t nat")
    return "\n".join(line.split(" [")[0] if line.startswith(":") else line
                     for line in text.splitlines() if not line.startswith("#"))


def nft_ruleset(ns: Netns) -> str:
    """The nft ruleset without packet counters (pod traffic such as IPv6 ND moves them; they are not rules)."""
    return re.sub(r"counter packets \d+ bytes \d+", "counter", ns.sh("nft list ruleset", check=False))


def container_rules(where: Netns | str, cid: str, network: str = NETWORK) -> list[str]:
    """Firewall lines that belong to one container, in a netns or a `firewall_state()` read earlier: naming its ID
    (comments) or its per-container chains (portmap CNI-DN-/CNI-SN-, bridge ipMasq CNI-<hash>). Shared chains
    and their jumps are meant to stay."""
    from common.firewall.names import chain_name
    marks = [cid] + [chain_name(network, cid, prefix) for prefix in ("", "DN-", "SN-")]
    text = where if isinstance(where, str) else firewall_state(where)
    return [line for line in text.splitlines() if any(m in line for m in marks)]
