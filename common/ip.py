"""IP addresses, interfaces (address/prefix) and networks: the part of the stdlib `ipaddress` the plugins use.

`ipaddress` costs ~2 ms to import in a frozen plugin, and its functools import brings collections, operator,
keyword, reprlib and itertools (~4.5 ms more); this module imports nothing. Parsing, text, equality, hashing and
ordering follow Python 3.11's ipaddress exactly, quirks included (IPv6 zones, netmask prefixes on IPv4, leading
zeros in a prefix length); tests/unit/common/test_ip.py checks that against the stdlib on generated inputs.
One class per kind serves both families (`version` tells them apart); where ipaddress has an attribute on one
family only, the other answers None (`ipv4_mapped`, `scope_id`). Values are always true (no __bool__ or __len__),
as in ipaddress, so `addr.ipv4_mapped or addr` is safe for 0.0.0.0.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

_BITS = {4: 32, 6: 128}
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")


def _v4_int(text: str) -> int:
    """Dotted quad; octets of 1-3 ASCII digits, no leading zero (as glibc's inet_pton), at most 255."""
    octets = text.split(".")
    if len(octets) != 4:
        raise ValueError(f"expected 4 octets in {text!r}")
    value = 0
    for octet in octets:
        if not (octet.isascii() and octet.isdigit()) or len(octet) > 3 or (octet[0] == "0" and octet != "0"):
            raise ValueError(f"invalid octet {octet!r} in {text!r}")
        if int(octet) > 255:
            raise ValueError(f"octet {octet} (> 255) in {text!r}")
        value = value << 8 | int(octet)
    return value


def _hextet(part: str, text: str) -> int:
    if not part or len(part) > 4 or not _HEX_DIGITS.issuperset(part):
        raise ValueError(f"invalid hextet {part!r} in {text!r}")
    return int(part, 16)


def _v6_int(text: str) -> int:
    """ipaddress's _BaseV6._ip_int_from_string, step by step (the same inputs are refused)."""
    parts = text.split(":")
    if len(parts) < 3:
        raise ValueError(f"at least 3 parts expected in {text!r}")
    if "." in parts[-1]:                        # an embedded IPv4 tail: ::ffff:1.2.3.4
        v4 = _v4_int(parts.pop())
        parts += [f"{v4 >> 16:x}", f"{v4 & 0xFFFF:x}"]
    skip = None                                 # where '::' stands, ignoring the two ends
    for i in range(1, len(parts) - 1):
        if not parts[i]:
            if skip is not None:
                raise ValueError(f"at most one '::' permitted in {text!r}")
            skip = i
    if skip is not None:
        high, low = skip, len(parts) - skip - 1
        if not parts[0]:
            high -= 1
            if high:
                raise ValueError(f"leading ':' only permitted as part of '::' in {text!r}")
        if not parts[-1]:
            low -= 1
            if low:
                raise ValueError(f"trailing ':' only permitted as part of '::' in {text!r}")
        skipped = 8 - (high + low)
        if skipped < 1:
            raise ValueError(f"expected at most 7 other parts with '::' in {text!r}")
    elif len(parts) != 8:
        raise ValueError(f"exactly 8 parts expected without '::' in {text!r}")
    else:
        high, low, skipped = 8, 0, 0
    value = 0
    for part in parts[:high]:
        value = value << 16 | _hextet(part, text)
    value <<= 16 * skipped
    for part in parts[len(parts) - low:]:
        value = value << 16 | _hextet(part, text)
    return value


def _v6_text(value: int) -> str:
    """Lowercase hextets without leading zeros; the longest run of two or more zero hextets (the first of equal
    runs) becomes '::'. IPv4-mapped addresses get no dotted tail (3.11 writes ::ffff:102:304)."""
    hextets = [f"{(value >> shift) & 0xFFFF:x}" for shift in range(112, -16, -16)]
    best_start, best_len, start, run = -1, 0, -1, 0
    for i, hextet in enumerate(hextets):
        if hextet == "0":
            run += 1
            if start == -1:
                start = i
            if run > best_len:
                best_start, best_len = start, run
        else:
            start, run = -1, 0
    if best_len < 2:
        return ":".join(hextets)
    return ":".join(hextets[:best_start]) + "::" + ":".join(hextets[best_start + best_len:])


def _ordering(cls: type) -> type:
    """The three comparisons functools.total_ordering derives from __lt__ and __eq__, as ipaddress has them."""
    def le(self: Any, other: Any) -> Any:
        less = type(self).__lt__(self, other)
        return less if less is NotImplemented else less or self == other

    def gt(self: Any, other: Any) -> Any:
        less = type(self).__lt__(self, other)
        return less if less is NotImplemented else not less and self != other

    def ge(self: Any, other: Any) -> Any:
        less = type(self).__lt__(self, other)
        return less if less is NotImplemented else not less

    for name, method in ("__le__", le), ("__gt__", gt), ("__ge__", ge):
        setattr(cls, name, method)
    return cls


def _format(value: object, spec: str) -> str:
    """String specs ("", ">20s") as ipaddress; its binary and hex ones ("b", "#x") are not needed here."""
    if spec and spec[-1] != "s":
        raise TypeError(f"unsupported format string {spec!r} for {type(value).__name__}")
    return format(str(value), spec)


def _same_version(a: IPAddress, b: IPAddress) -> None:
    if a.version != b.version:
        raise TypeError(f"{a} and {b} are not of the same version")


@_ordering
class IPAddress:
    """IPv4Address or IPv6Address. IPv6 keeps a zone ("fe80::1%eth0") as ipaddress does: it is printed and
    compared, but not ordered and not kept by arithmetic."""

    __slots__ = ("_ip", "version", "scope_id")

    def __init__(self, value: int, version: int, scope_id: str | None = None) -> None:
        if not 0 <= value < 1 << _BITS[version]:
            raise ValueError(f"{value} is not permitted as an IPv{version} address")
        self._ip = value
        self.version = version
        self.scope_id = scope_id

    @property
    def max_prefixlen(self) -> int:
        return _BITS[self.version]

    @property
    def packed(self) -> bytes:
        return self._ip.to_bytes(_BITS[self.version] // 8, "big")

    @property
    def is_loopback(self) -> bool:
        """127.0.0.0/8 or ::1 (not ::ffff:127.0.0.1, as ipaddress before 3.13)."""
        return self._ip >> 24 == 127 if self.version == 4 else self._ip == 1

    @property
    def is_unspecified(self) -> bool:
        return self._ip == 0

    @property
    def ipv4_mapped(self) -> IPAddress | None:
        """The IPv4 address of ::ffff:a.b.c.d; None otherwise (also for IPv4, which ipaddress lacks it on)."""
        if self.version == 4 or self._ip >> 32 != 0xFFFF:
            return None
        return IPAddress(self._ip & 0xFFFFFFFF, 4)

    def __int__(self) -> int:
        return self._ip

    def __add__(self, other: int) -> IPAddress:
        if not isinstance(other, int):
            return NotImplemented
        return IPAddress(self._ip + other, self.version)

    def __sub__(self, other: int) -> IPAddress:
        if not isinstance(other, int):
            return NotImplemented
        return IPAddress(self._ip - other, self.version)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPAddress):
            return NotImplemented
        return self._ip == other._ip and self.version == other.version and self.scope_id == other.scope_id

    def __lt__(self, other: IPAddress) -> bool:
        if not isinstance(other, IPAddress):
            return NotImplemented
        _same_version(self, other)
        return self._ip < other._ip

    if TYPE_CHECKING:   # set by @_ordering
        def __le__(self, other: IPAddress) -> bool: ...
        def __gt__(self, other: IPAddress) -> bool: ...
        def __ge__(self, other: IPAddress) -> bool: ...

    def __hash__(self) -> int:
        return hash(hex(self._ip)) if self.version == 4 else hash((self._ip, self.scope_id))

    def __str__(self) -> str:
        if self.version == 4:
            return ".".join(map(str, self._ip.to_bytes(4, "big")))
        text = _v6_text(self._ip)
        return f"{text}%{self.scope_id}" if self.scope_id else text

    def __format__(self, spec: str) -> str:
        return _format(self, spec)

    def __repr__(self) -> str:
        return f"IPv{self.version}Address({str(self)!r})"


def _netmask(bits: int, prefixlen: int) -> int:
    return ((1 << prefixlen) - 1) << (bits - prefixlen)


@_ordering
class IPNetwork:
    """IPv4Network or IPv6Network: an address with the host bits clear, and a prefix length."""

    __slots__ = ("network_address", "prefixlen")

    def __init__(self, address: IPAddress, prefixlen: int, *, strict: bool = True) -> None:
        """`strict`: host bits set are an error, else they are cleared (which drops a zone, as in ipaddress)."""
        if not 0 <= prefixlen <= address.max_prefixlen:
            raise ValueError(f"{prefixlen!r} is not a valid netmask")
        mask = _netmask(address.max_prefixlen, prefixlen)
        if int(address) & mask != int(address):
            if strict:
                raise ValueError(f"{address}/{prefixlen} has host bits set")
            address = IPAddress(int(address) & mask, address.version)
        self.network_address = address
        self.prefixlen = prefixlen

    @property
    def version(self) -> int:
        return self.network_address.version

    @property
    def max_prefixlen(self) -> int:
        return self.network_address.max_prefixlen

    @property
    def broadcast_address(self) -> IPAddress:
        return IPAddress(int(self.network_address) | (1 << self.max_prefixlen - self.prefixlen) - 1, self.version)

    def __contains__(self, other: IPAddress) -> bool:
        mask = _netmask(self.max_prefixlen, self.prefixlen)
        return other.version == self.version and int(other) & mask == int(self.network_address)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPNetwork):
            return NotImplemented
        return self.network_address == other.network_address and self.prefixlen == other.prefixlen

    def __lt__(self, other: IPNetwork) -> bool:
        if not isinstance(other, IPNetwork):
            return NotImplemented
        _same_version(self.network_address, other.network_address)
        if self.network_address != other.network_address:   # a zone alone makes them differ, as in ipaddress
            return self.network_address < other.network_address
        return self.prefixlen < other.prefixlen             # ipaddress compares the netmasks: the same order

    if TYPE_CHECKING:   # set by @_ordering
        def __le__(self, other: IPNetwork) -> bool: ...
        def __gt__(self, other: IPNetwork) -> bool: ...
        def __ge__(self, other: IPNetwork) -> bool: ...

    def __hash__(self) -> int:
        return hash(int(self.network_address) ^ _netmask(self.max_prefixlen, self.prefixlen))

    def __str__(self) -> str:
        return f"{self.network_address}/{self.prefixlen}"

    def __repr__(self) -> str:
        return f"IPv{self.version}Network({str(self)!r})"


@_ordering
class IPInterface:
    """IPv4Interface or IPv6Interface: an address that keeps its host bits ("10.0.0.5/24"), with its network."""

    __slots__ = ("_address", "ip", "network")

    def __init__(self, address: IPAddress, prefixlen: int) -> None:
        self.network = IPNetwork(address, prefixlen, strict=False)
        self._address = address     # with its zone, for str and ==; `ip` has none, as in ipaddress
        self.ip = address if address.scope_id is None else IPAddress(int(address), address.version)

    @property
    def version(self) -> int:
        return self.ip.version

    @property
    def max_prefixlen(self) -> int:
        return self.ip.max_prefixlen

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, IPInterface):
            return NotImplemented
        return self._address == other._address and self.network == other.network

    def __lt__(self, other: IPInterface) -> bool:
        if not isinstance(other, IPInterface):
            return NotImplemented
        address_less = self.ip < other.ip
        return self.network < other.network or self.network == other.network and address_less

    if TYPE_CHECKING:   # set by @_ordering
        def __le__(self, other: IPInterface) -> bool: ...
        def __gt__(self, other: IPInterface) -> bool: ...
        def __ge__(self, other: IPInterface) -> bool: ...

    def __hash__(self) -> int:
        return hash((int(self.ip), self.network.prefixlen, int(self.network.network_address)))

    def __str__(self) -> str:
        return f"{self._address}/{self.network.prefixlen}"

    def __format__(self, spec: str) -> str:
        return _format(self, spec)

    def __repr__(self) -> str:
        return f"IPv{self.version}Interface({str(self)!r})"


# --- parsing: IPv4 is tried first, then IPv6, as ipaddress.ip_address/ip_interface/ip_network do ----------

def _address(text: str, version: int) -> IPAddress:
    if "/" in text:
        raise ValueError(f"unexpected '/' in {text!r}")
    if version == 4:
        return IPAddress(_v4_int(text), 4)
    text, sep, zone = text.partition("%")
    if sep and (not zone or "%" in zone):
        raise ValueError(f"invalid IPv6 zone in {text!r}")
    return IPAddress(_v6_int(text), 6, zone if sep else None)


def _prefixlen(text: str, version: int) -> int:
    """ASCII digits (leading zeros allowed: "/024"); IPv4 also takes a netmask ("/255.255.255.0") or, failing
    that, a hostmask ("/0.0.0.255"), as ipaddress does."""
    if text.isascii() and text.isdigit():
        if int(text) <= _BITS[version]:
            return int(text)
    elif version == 4:
        mask = _v4_int(text)
        for bits in (mask, mask ^ 0xFFFFFFFF):
            host = bits ^ 0xFFFFFFFF
            if host & (host + 1) == 0:      # ones, then only zeros
                return 32 - host.bit_length()
    raise ValueError(f"{text!r} is not a valid netmask")


def _with_prefix(text: str, version: int) -> tuple[IPAddress, int]:
    parts = text.split("/")
    if len(parts) > 2:
        raise ValueError(f"only one '/' permitted in {text!r}")
    address = _address(parts[0], version)
    return address, _prefixlen(parts[1], version) if len(parts) == 2 else _BITS[version]


def ip_address(text: str) -> IPAddress:
    for version in (4, 6):
        try:
            return _address(text, version)
        except ValueError:
            pass
    raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 address")


def ip_interface(text: str) -> IPInterface:
    """"10.0.0.5/24" keeps its host bits; without a prefix the address is /32 or /128."""
    for version in (4, 6):
        try:
            return IPInterface(*_with_prefix(text, version))
        except ValueError:
            pass
    raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 interface")


def ip_network(text: str, *, strict: bool = True) -> IPNetwork:
    """Host bits set are an error when `strict` (at once, without trying IPv6, as ipaddress)."""
    for version in (4, 6):
        try:
            address, prefixlen = _with_prefix(text, version)
        except ValueError:
            continue
        return IPNetwork(address, prefixlen, strict=strict)
    raise ValueError(f"{text!r} does not appear to be an IPv4 or IPv6 network")


def from_packed(data: bytes) -> IPAddress:
    """4 bytes are IPv4, 16 IPv6 (netlink's attributes), as ipaddress.ip_address(bytes)."""
    if len(data) not in (4, 16):
        raise ValueError(f"{data!r} does not appear to be an IPv4 or IPv6 address")
    return IPAddress(int.from_bytes(data, "big"), 4 if len(data) == 4 else 6)
