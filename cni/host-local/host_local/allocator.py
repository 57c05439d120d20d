"""The allocation policy, over any `store.Session` (pure apart from the session's own effects).

Round-robin as the reference: each range set continues after its `last_reserved_ip` (when that address is still
in the set, else at the first range's start), wraps across its ranges and never hands out a gateway, so a
restarted pod does not get the address just freed. All range sets of one ADD are allocated in one session; if
one fails, the addresses already reserved in this ADD are released before the error is raised.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator
    from collections.abc import Set as AbstractSet

from common.config import IPAddress
from common.errors import CniError, Code, ConfigError, ErrorCollector
from common.ip import IPInterface, ip_address
from common.types import IPConfig

from .config import Range, RangeSet, canonical

if TYPE_CHECKING:
    from .store import Session


def owner_of(container_id: str, ifname: str) -> str:
    """The content of an allocation file."""
    return f"{container_id.strip()}\r\n{ifname}"


def _address(text: str) -> IPAddress | None:
    """An address as Go's net.ParseIP reads it (a `last_reserved_ip` hint), v4-mapped as IPv4."""
    try:
        return canonical(ip_address(text))
    except ValueError:
        return None


def address_of(name: str) -> IPAddress | None:
    """The address an allocation file stands for: its name must be the address's canonical string, what Go's
    net.IP.String() writes (no zone, no leading zeros, lowercase, v4-mapped written as IPv4). Other names
    ("10.0.0.09", "2001:DB8::1") are junk the reference never reads as an allocation."""
    if "%" in name:
        return None
    try:
        addr = ip_address(name)
    except ValueError:
        return None
    if str(addr) != name or addr.ipv4_mapped is not None:
        return None
    return addr


# --- requested addresses (pure) ------------------------------------------------------------------------

def plan_requests(range_sets: tuple[RangeSet, ...], requested: tuple[IPAddress, ...]) -> tuple[IPAddress | None, ...]:
    """The requested address for each range set (None: allocate the next free one)."""
    remaining = list(requested)
    plan: list[IPAddress | None] = []
    for range_set in range_sets:
        wanted = next((a for a in remaining if range_set.contains(a)), None)
        if wanted is not None:
            remaining.remove(wanted)
            home = range_set.range_for(wanted)
            assert home is not None     # range_set.contains(wanted)
            if wanted == home.gateway:
                raise ConfigError(f"requested IP {wanted} is the gateway of range set {range_set}")
        plan.append(wanted)
    if remaining:
        raise ConfigError(f"failed to allocate all requested IPs: {' '.join(map(str, remaining))}: "
                          f"{_why_not_placed(remaining[0], range_sets)}")
    return tuple(plan)


def _why_not_placed(addr: IPAddress, range_sets: tuple[RangeSet, ...]) -> str:
    home = next((s for s in range_sets if s.contains(addr)), None)
    if home is not None:
        return f"only one address per range set can be requested ({home})"
    return f"{addr} is in no range set ({'; '.join(str(s) for s in range_sets)})"


# --- ADD -----------------------------------------------------------------------------------------------

def candidates(range_set: RangeSet, last: IPAddress | None) -> Iterator[tuple[IPAddress, Range]]:
    """Every allocatable address once: after `last`, through the following ranges, wrapping to `last`."""
    ranges = range_set.ranges
    home = range_set.range_for(last) if last is not None else None
    if home is None or last is None:
        index, first = 0, int(ranges[0].start)
    elif last == home.end:
        index = (ranges.index(home) + 1) % len(ranges)
        first = int(ranges[index].start)
    else:
        index, first = ranges.index(home), int(last) + 1
    version = range_set.version
    order = [ranges[(index + k) % len(ranges)] for k in range(len(ranges))]
    spans = [(order[0], first, int(order[0].end))]
    spans += [(r, int(r.start), int(r.end)) for r in order[1:]]
    spans.append((order[0], int(order[0].start), first - 1))    # the wrap back to where we began
    for r, low, high in spans:
        gateway = int(r.gateway)
        for value in range(low, high + 1):
            if value != gateway:
                yield IPAddress(value, version), r


def allocate(session: Session, range_sets: tuple[RangeSet, ...], wanted: tuple[IPAddress | None, ...], *,
             container_id: str, ifname: str) -> list[IPConfig]:
    """One address per range set, all or nothing."""
    owner = owner_of(container_id, ifname)
    reserved: list[IPConfig] = []
    try:
        for index, (range_set, request) in enumerate(zip(range_sets, wanted)):
            try:
                reserved.append(_reserve(session, range_set, index, request, owner))
            except CniError as exc:
                raise CniError(exc.code, f"failed to allocate for range {index}: {exc.msg}") from None
    except BaseException:
        for ipc in reserved:
            session.release(str(ipc.address.ip))
        raise
    return reserved


def _reserve(session: Session, range_set: RangeSet, index: int, request: IPAddress | None,
             owner: str) -> IPConfig:
    if request is not None:
        if not session.reserve(str(request), owner, index):
            raise CniError(Code.INTERNAL, f"requested IP address {request} is not available in range set "
                           f"{range_set}")
        home = range_set.range_for(request)
        assert home is not None         # plan_requests placed the request in this set
        return _ip_config(request, home)
    _refuse_duplicate(session, range_set, owner)
    last = _address(session.last_reserved(index) or "")
    if last is None:
        last = _highest_allocated(session, range_set)
    for addr, r in candidates(range_set, last):
        name = str(addr)
        if name not in session.owners and session.reserve(name, owner, index):
            return _ip_config(addr, r)
    raise CniError(Code.INTERNAL, f"no IP addresses available in range set {range_set}")


def _highest_allocated(session: Session, range_set: RangeSet) -> IPAddress | None:
    """Where to continue when `last_reserved_ip` is missing, empty or garbage: after the highest address in use
    in the set. (The reference restarts at the range start and hands out the address freed last at once.)"""
    used = [a for a in map(address_of, session.owners) if a is not None and range_set.contains(a)]
    return max(used) if used else None


def _refuse_duplicate(session: Session, range_set: RangeSet, owner: str) -> None:
    """ADD is not idempotent in the reference: an address of this attachment in the set is an error."""
    container_id = owner.split("\r\n")[0]
    holders = set(session.owners.values())      # one pass in C; the loop below runs only on a hit
    if owner not in holders and container_id not in holders:
        return
    for name, holder in session.owners.items():
        if holder in (owner, container_id):
            addr = address_of(name)
            if addr is not None and range_set.contains(addr):
                raise CniError(Code.INTERNAL, f"{name} has been allocated to {container_id}, duplicate "
                               "allocation is not allowed")


def _ip_config(addr: IPAddress, r: Range) -> IPConfig:
    return IPConfig(address=IPInterface(addr, r.subnet.prefixlen), gateway=r.gateway)


# --- DEL, CHECK, GC, STATUS ----------------------------------------------------------------------------

def held_by(session: Session, container_id: str, ifname: str) -> list[str]:
    """Addresses of the attachment; files of the legacy format (container ID only) when there are none."""
    owner = owner_of(container_id, ifname)
    exact = [name for name, holder in session.owners.items() if holder == owner and address_of(name) is not None]
    return exact or [name for name, holder in session.owners.items()
                     if holder == container_id.strip() and address_of(name) is not None]


def release(session: Session, container_id: str, ifname: str) -> list[str]:
    """Best effort: every address of the attachment is tried; failures are reported together."""
    names = held_by(session, container_id, ifname)
    errors = ErrorCollector("releasing addresses")
    for name in names:
        with errors.step(name):
            session.release(name)
    errors.raise_if_any()
    return names


def collect_garbage(session: Session, valid: AbstractSet[tuple[str, str]]) -> list[str]:
    """Release every allocation whose attachment is not valid; files of unknown owner are kept."""
    valid_owners = {owner_of(cid, ifname) for cid, ifname in valid}
    valid_ids = {cid.strip() for cid, _ in valid}
    stale = [name for name, holder in session.owners.items()
             if holder and holder not in valid_owners and not ("\r\n" not in holder and holder in valid_ids)
             and address_of(name) is not None]
    errors = ErrorCollector("GC")
    for name in stale:
        with errors.step(f"releasing {name}"):
            session.release(name)
    errors.raise_if_any()
    return stale


def exhausted(session: Session, range_sets: tuple[RangeSet, ...]) -> list[RangeSet]:
    """Range sets in which no address is free."""
    taken = [a for a in map(address_of, session.owners) if a is not None]
    full = []
    for range_set in range_sets:
        used = 0
        for addr in taken:
            r = range_set.range_for(addr)
            used += r is not None and addr != r.gateway
        if used >= sum(r.size() for r in range_set.ranges):
            full.append(range_set)
    return full
