"""macspoofchk as nft text: frames entering the bridge from the host veth must carry the container's MAC.

Same state as the reference (pkg/link/spoofcheck.go), so either implementation can remove the other's:
    table bridge nat
      chain PREROUTING { type filter hook prerouting priority -300; policy accept; }
        iifname "<host veth>" jump cni-br-iface-<id>                comment "macspoofchk-<id>"
      chain cni-br-iface-<id>        { jump cni-br-iface-<id>-mac     comment "macspoofchk-<id>" }
      chain cni-br-iface-<id>-mac    { ether saddr <mac> return; drop  comment "macspoofchk-<id>" }
with <id> = "<containerID>-<ifname>".
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from common.firewall import nftables

FAMILY_TABLE = "bridge nat"
BASE_CHAIN = "PREROUTING"


def ref_id(container_id: str, ifname: str) -> str:
    return f"{container_id}-{ifname}"


def chains(container_id: str, ifname: str) -> tuple[str, str]:
    iface_chain = "cni-br-iface-" + ref_id(container_id, ifname)
    return iface_chain, iface_chain + "-mac"


def comment(container_id: str, ifname: str) -> str:
    return "macspoofchk-" + ref_id(container_id, ifname)


def setup(*, container_id: str, ifname: str, host_veth: str, mac: str) -> str:
    """One `nft -f` transaction: ensure table and chains, (re)write this attachment's rules."""
    iface_chain, mac_chain = chains(container_id, ifname)
    note = f'comment "{comment(container_id, ifname)}"'
    t = FAMILY_TABLE
    return "\n".join([
        f"add table {t}",
        f"add chain {t} {BASE_CHAIN} {{ type filter hook prerouting priority -300 ; policy accept ; }}",
        f'add chain {t} {iface_chain}',
        f'add chain {t} {mac_chain}',
        f'flush chain {t} {iface_chain}',
        f'flush chain {t} {mac_chain}',
        f'add rule {t} {BASE_CHAIN} iifname "{host_veth}" jump {iface_chain} {note}',
        f'add rule {t} {iface_chain} jump {mac_chain} {note}',
        f'add rule {t} {mac_chain} ether saddr {mac} return {note}',
        f'add rule {t} {mac_chain} drop {note}',
    ]) + "\n"


def teardown(listing: list[dict[str, Any]] | None, *, container_id: str, ifname: str) -> str:
    """Delete the PREROUTING jump(s) by comment, then flush and delete both chains, only those that exist
    (one missing object would fail the whole transaction)."""
    if listing is None:
        return ""
    note = comment(container_id, ifname)
    existing = nftables.chains(listing)
    lines = [f"delete rule {FAMILY_TABLE} {BASE_CHAIN} handle {rule['handle']}"
             for rule in nftables.rules(listing, BASE_CHAIN) if rule.get("comment") == note]
    present = [c for c in chains(container_id, ifname) if c in existing]
    lines += [f'flush chain {FAMILY_TABLE} {c}' for c in present]
    lines += [f'delete chain {FAMILY_TABLE} {c}' for c in present]
    return "\n".join(lines) + "\n" if lines else ""
