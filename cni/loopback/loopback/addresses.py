"""Pure logic of loopback's ADD: which addresses may sit on `lo`, and the result it reports.

Addresses come in the kernel's dump order; the reference lists IPv4 then IPv6 (one netlink dump per family), so
"first" below always means: IPv4 before IPv6, kernel order within a family.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterable

    from common.config import IPInterface

from common.types import Interface, IPConfig, Result

LO = "lo"                        # the interface loopback acts on, whatever CNI_IFNAME says (as the reference)
LO_MAC = "00:00:00:00:00:00"     # what the reference reports (lo's hardware address)


def in_reference_order(addresses: Iterable[IPInterface]) -> list[IPInterface]:
    """IPv4 first, then IPv6; the kernel's order is kept within each family (sorted() is stable)."""
    return sorted(addresses, key=lambda address: address.version)


def is_loopback(address: IPInterface) -> bool:
    """Go's net.IP.IsLoopback: 127.0.0.0/8, ::1, and IPv4-mapped 127.x (::ffff:127.0.0.1), which Python's
    IPv6Address.is_loopback does not count before 3.13."""
    return (address.ip.ipv4_mapped or address.ip).is_loopback


def first_non_loopback(addresses: Iterable[IPInterface]) -> IPInterface | None:
    """The address the reference names in its error (it checks every IPv4 address, then every IPv6 one)."""
    return next((a for a in in_reference_order(addresses) if not is_loopback(a)), None)


def lo_result(addresses: Iterable[IPInterface], sandbox: str) -> Result:
    """ADD's result without a prevResult: `lo` (index 0) with its first IPv4 and first IPv6 address.

    Rendering (common.skel at the config's cniVersion, common.result) is spec-correct for every version: 0.1.0
    and 0.2.0 get `ip4`/`ip6`, 0.3.x/0.4.0 get `ips[].version`. The reference labels a 1.0.0-shaped result with
    the config's version instead (README, "Differences"); libcni and containerd (go-cni asks loopback for 0.3.1)
    read the spec shape, which is also what every other plugin, Go's included, prints at those versions."""
    ordered = in_reference_order(addresses)
    firsts = [next((a for a in ordered if a.version == v), None) for v in (4, 6)]
    return Result(interfaces=(Interface(name=LO, mac=LO_MAC, sandbox=sandbox),),
                  ips=tuple(IPConfig(address=a, interface=0) for a in firsts if a is not None))
