"""common.ip against the stdlib ipaddress (Python 3.11), on generated text and values: the same strings are
accepted and refused, and what is accepted prints, hashes, compares, contains and converts the same."""
from __future__ import annotations

import ipaddress
import operator
import random
import subprocess
import sys

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from common import ip
from support import REPO

# Characters that matter to the parsers, plus look-alikes they must refuse (Arabic-Indic digit, fullwidth 1).
ALPHABET = list("0123456789abcdefABCDEFg:.%/ ") + ["\u0661", "\uff11", "\n", "+", "-", "x"]


@st.composite
def v4_texts(draw: st.DrawFn) -> str:
    octets = draw(st.lists(st.sampled_from([0, 1, 10, 127, 255]) | st.integers(0, 255), min_size=4, max_size=4))
    return ".".join(map(str, octets))


@st.composite
def v6_texts(draw: st.DrawFn) -> str:
    """Every written form: full, zero-padded, uppercase, any run compressed (not only the canonical one),
    a dotted IPv4 tail, a zone."""
    hextets = draw(st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF]) | st.integers(0, 0xFFFF), min_size=8, max_size=8))
    parts = [f"{h:04x}" if draw(st.booleans()) else f"{h:x}" for h in hextets]
    if draw(st.booleans()):
        parts = [p.upper() for p in parts]
    tail = ""
    if draw(st.integers(0, 3)) == 0:    # ::ffff:1.2.3.4 and friends
        tail = ".".join(str(b) for b in (hextets[6] << 16 | hextets[7]).to_bytes(4, "big"))
        parts = parts[:6]
    if draw(st.booleans()):
        start = draw(st.integers(0, len(parts) - 1))
        end = draw(st.integers(start + 1, len(parts)))
        text = ":".join(parts[:start]) + "::" + ":".join(parts[end:])
        text += (":" if end < len(parts) else "") + tail if tail else ""
    else:
        text = ":".join(parts) + (":" + tail if tail else "")
    if draw(st.integers(0, 4)) == 0:
        text += "%" + draw(st.text(alphabet="ab0%/: ", max_size=4))
    return text


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """A valid text with a few characters inserted, deleted or replaced: the near misses."""
    text = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        pos = draw(st.integers(0, len(text)))
        char = draw(st.sampled_from(ALPHABET))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        if op == "insert":
            text = text[:pos] + char + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1:]
        else:
            text = text[:pos] + char + text[pos + 1:]
    return text


valid_addresses = v4_texts() | v6_texts()
addresses = valid_addresses | mutated(valid_addresses) | st.text(alphabet=ALPHABET, max_size=40)


@st.composite
def prefixes(draw: st.DrawFn) -> str:
    """Lengths (zero-padded, out of range), IPv4 netmasks and hostmasks, broken masks, junk."""
    length = draw(st.integers(0, 130))
    mask = ((1 << length) - 1) << (32 - length) if length <= 32 else draw(st.integers(0, 2**32 - 1))
    if draw(st.booleans()):
        mask ^= 0xFFFFFFFF          # a hostmask
    return draw(st.sampled_from([
        str(length), "0" + str(length), "00" + str(length), ".".join(str(b) for b in mask.to_bytes(4, "big")),
        draw(st.text(alphabet=ALPHABET, max_size=8)), draw(mutated(st.just(str(length))))]))


@st.composite
def with_prefix(draw: st.DrawFn) -> str:
    address = draw(addresses)
    shape = draw(st.integers(0, 5))
    if shape == 0:
        return address
    if shape == 1:
        return f"{address}/{draw(prefixes())}/{draw(prefixes())}"
    return f"{address}/{draw(prefixes())}"


def attempt(thunk):
    """The value, or None for a ValueError (what the callers catch)."""
    try:
        return thunk()
    except ValueError:
        return None


def parse(make, text):
    return attempt(lambda: make(text))


def same_address(ours: ip.IPAddress, theirs: ipaddress.IPv4Address | ipaddress.IPv6Address) -> None:
    assert type(ours) is ip.IPAddress
    assert (str(ours), repr(ours), int(ours), ours.version, ours.max_prefixlen, ours.packed, hash(ours)) == \
           (str(theirs), repr(theirs), int(theirs), theirs.version, theirs.max_prefixlen, theirs.packed, hash(theirs))
    assert (ours.is_loopback, ours.is_unspecified) == (theirs.is_loopback, theirs.is_unspecified)
    assert str(ours.ipv4_mapped) == str(getattr(theirs, "ipv4_mapped", None))
    assert ours.scope_id == getattr(theirs, "scope_id", None)
    assert (f"{ours}", f"{ours:>50s}") == (f"{theirs}", f"{theirs:>50s}")


def same_network(ours: ip.IPNetwork, theirs: ipaddress.IPv4Network | ipaddress.IPv6Network) -> None:
    assert type(ours) is ip.IPNetwork
    assert (str(ours), repr(ours), hash(ours), ours.version, ours.max_prefixlen, ours.prefixlen) == \
           (str(theirs), repr(theirs), hash(theirs), theirs.version, theirs.max_prefixlen, theirs.prefixlen)
    same_address(ours.network_address, theirs.network_address)
    same_address(ours.broadcast_address, theirs.broadcast_address)


def same_interface(ours: ip.IPInterface, theirs: ipaddress.IPv4Interface | ipaddress.IPv6Interface) -> None:
    assert type(ours) is ip.IPInterface
    assert (str(ours), repr(ours), hash(ours), ours.version, ours.max_prefixlen, f"{ours:<60s}") == \
           (str(theirs), repr(theirs), hash(theirs), theirs.version, theirs.max_prefixlen, f"{theirs:<60s}")
    same_address(ours.ip, theirs.ip)
    same_network(ours.network, theirs.network)


SAME = {ip.ip_address: same_address, ip.ip_interface: same_interface, ip.ip_network: same_network}
STDLIB = {ip.ip_address: ipaddress.ip_address, ip.ip_interface: ipaddress.ip_interface,
          ip.ip_network: ipaddress.ip_network}


def check_text(make, text: str) -> None:
    ours, theirs = parse(make, text), parse(STDLIB[make], text)
    assert (ours is None) == (theirs is None), (text, ours, theirs)
    if ours is not None:
        SAME[make](ours, theirs)


# Hand-picked edges; the generated inputs below find the rest.
EDGES = [
    "", ":", "::", ":::", "::1", "1::", "::ffff:1.2.3.4", "::ffff:0.0.0.0", "::1.2.3.4", "1.2.3.4::", "::1.2.3.4:5",
    "::ffff:1.2.3.256", "::ffff:01.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4", "1:2:3:4:5:6:7:8",
    "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1::3:4:5:6:7:8", "1:2:3:4:5:6:7:8::", "1::2::3",
    ":1::2", "1::2:", "12345::", "g::", "1:0:0:1:0:0:0:1", "0:0:1:0:0:1:0:0", "1:0:0:0:1:0:0:0", "2001:DB8::1",
    "fe80::1%eth0", "fe80::1%", "fe80::1%a%b", "fe80::%eth0", "::%x", "1.2.3.4%eth0", "0.0.0.0", "255.255.255.255",
    "127.255.255.255", "128.0.0.0", "1.2.3.04", "01.2.3.4", "1.2.3.0", "1.2.3", "1.2.3.4.5", "1..2.3", " 1.2.3.4",
    "1.2.3.4\n", "\u0661.2.3.4", "0x1.2.3.4", "1.2.3.256", "1.2.3.1000", "+1.2.3.4",
]
EDGE_PREFIXED = [
    "10.0.0.1/255.255.255.0", "10.0.0.1/0.0.0.255", "10.0.0.1/255.0.255.0", "10.0.0.1/0.0.0.0",
    "10.0.0.1/255.255.255.255", "10.0.0.1/024", "10.0.0.1/33", "10.0.0.1/", "10.0.0.1//24", "10.0.0.1/24/1",
    "10.0.0.0/24", "10.0.0.1/32", "::1/0128", "::1/ffff::", "::1/129", "::/0", "fe80::1%eth0/64", "fe80::%eth0/64",
    "fe80::%eth0/10", "1.2.3.4/+24", "1.2.3.4/ 24", "1.2.3.4/\u0662\u0664", "/24", "1.2.3.4/24%x", "::ffff:1.2.3.4/120",
]


def random_text(rng: random.Random) -> str:
    """A valid address or address/prefix, then maybe a few characters inserted, deleted or replaced (the bulk
    run below: many inputs cheaply; the hypothesis tests after it shrink what they find)."""
    if rng.random() < 0.5:
        text = ".".join(str(rng.choice([0, 1, 255, rng.randrange(256)])) for _ in range(4))
    else:
        hextets = [rng.choice([0, 0, 0, 1, 0xFFFF, rng.randrange(0x10000)]) for _ in range(8)]
        text = str(ipaddress.IPv6Address(int.from_bytes(b"".join(h.to_bytes(2, "big") for h in hextets), "big")))
        if rng.random() < 0.2:
            text = text.upper()
        if rng.random() < 0.2:
            text += "%" + rng.choice(["eth0", "", "a%b", "1"])
    if rng.random() < 0.5:
        text += "/" + rng.choice([str(rng.randrange(130)), "0" + str(rng.randrange(40)), "255.255.255.0", "0.0.0.255",
                                  "255.0.255.0", ""])
    for _ in range(rng.choice([0, 0, 1, 2, 3])):
        pos, char = rng.randrange(len(text) + 1), rng.choice(ALPHABET)
        text = rng.choice([text[:pos] + char + text[pos:], text[:pos] + text[pos + 1:],
                           text[:pos] + char + text[pos + 1:]])
    return text


def test_bulk_texts() -> None:
    rng = random.Random(17)
    texts = [random_text(rng) for _ in range(8000)]
    assert 0.2 < sum(parse(ipaddress.ip_interface, t) is not None for t in texts) / len(texts) < 0.8   # both kinds
    for text in texts:
        for make in (ip.ip_address, ip.ip_interface, ip.ip_network):
            check_text(make, text)


@pytest.mark.parametrize("text", EDGES + EDGE_PREFIXED)
@pytest.mark.parametrize("make", [ip.ip_address, ip.ip_interface, ip.ip_network], ids=lambda f: f.__name__)
def test_edges(make, text: str) -> None:
    check_text(make, text)


def test_the_texts_3_11_writes() -> None:
    """Spelled out, so a change on either side shows here first."""
    assert str(ip.ip_address("::ffff:1.2.3.4")) == "::ffff:102:304"
    assert str(ip.ip_address("1:0:0:1:0:0:0:1")) == "1:0:0:1::1"            # the longest run
    assert str(ip.ip_address("1:0:0:1:0:0:1:1")) == "1::1:0:0:1:1"           # the first of equal runs
    assert str(ip.ip_address("1:0:1:1:1:1:1:1")) == "1:0:1:1:1:1:1:1"        # a single zero stays
    assert str(ip.ip_interface("10.0.0.5/255.255.255.0")) == "10.0.0.5/24"
    assert ip.ip_address("::ffff:127.0.0.1").is_loopback is False


@settings(max_examples=800, deadline=None)
@given(addresses)
@example("::ffff:1.2.3.4")
def test_addresses(text: str) -> None:
    check_text(ip.ip_address, text)


@settings(max_examples=600, deadline=None)
@given(with_prefix())
def test_interfaces_and_networks(text: str) -> None:
    check_text(ip.ip_interface, text)
    check_text(ip.ip_network, text)
    ours, theirs = parse(lambda t: ip.ip_network(t, strict=False), text), parse(
        lambda t: ipaddress.ip_network(t, strict=False), text)
    assert (ours is None) == (theirs is None), text
    if ours is not None:
        same_network(ours, theirs)


# Small pools, so that equal values, equal addresses under other zones or prefixes, and both families meet.
near_addresses = st.builds(lambda v6, low, zone: f"fe80::{low}{zone}" if v6 else f"10.0.0.{low}",
                           st.booleans(), st.integers(0, 3), st.sampled_from(["", "", "%a", "%b"]))
near_prefixed = st.builds(lambda a, p: f"{a}/{p}", near_addresses, st.sampled_from([0, 1, 24, 30, 31, 32, 64, 126,
                                                                                      127, 128]))
RELATIONS = [operator.eq, operator.ne, operator.lt, operator.le, operator.gt, operator.ge]


def relation(op, a, b):
    try:
        return op(a, b)
    except TypeError:
        return TypeError


@settings(max_examples=500, deadline=None)
@given(st.sampled_from([ip.ip_address, ip.ip_interface, ip.ip_network]), near_addresses | near_prefixed | addresses,
       near_addresses | near_prefixed | addresses)
def test_comparisons_and_hashes(make, a: str, b: str) -> None:
    ours = parse(make, a), parse(make, b)
    theirs = parse(STDLIB[make], a), parse(STDLIB[make], b)
    assert [x is None for x in ours] == [x is None for x in theirs], (a, b)
    if None in ours:
        return
    for op in RELATIONS:
        assert relation(op, *ours) == relation(op, *theirs), (op.__name__, a, b)
    assert len({*ours}) == len({*theirs})


@settings(max_examples=300, deadline=None)
@given(near_prefixed | with_prefix(), near_addresses | addresses, st.integers(-2, 2))
def test_containment(network: str, address: str, offset: int) -> None:
    net = parse(lambda t: ip.ip_network(t, strict=False), network)
    if net is None:
        return
    theirs_net = ipaddress.ip_network(network, strict=False)
    probes = [address, str(net.network_address), str(net.broadcast_address)]
    for text in probes:
        ours, theirs = parse(ip.ip_address, text), parse(ipaddress.ip_address, text)
        if ours is None:
            continue
        moved = attempt(lambda ours=ours: ours + offset)
        if moved is not None:
            assert (moved in net) == ((theirs + offset) in theirs_net), (network, text, offset)
        assert (ours in net) == (theirs in theirs_net), (network, text)


@settings(max_examples=300, deadline=None)
@given(valid_addresses, st.integers(-2**129, 2**129) | st.integers(-3, 3) | st.sampled_from([2**32, 2**128]))
def test_arithmetic(text: str, offset: int) -> None:
    ours, theirs = parse(ip.ip_address, text), parse(ipaddress.ip_address, text)
    if ours is None or theirs is None:
        assert ours is theirs is None, text
        return
    for op in (operator.add, operator.sub):
        mine, stdlib = attempt(lambda op=op: op(ours, offset)), attempt(lambda op=op: op(theirs, offset))
        assert (mine is None) == (stdlib is None), (text, op.__name__, offset)
        if mine is not None:
            same_address(mine, stdlib)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 2**128 - 1), st.sampled_from([4, 6]), st.integers(-1, 130))
def test_values_and_prefixes(value: int, version: int, prefixlen: int) -> None:
    """IPAddress(value, version), IPInterface(address, prefix) and IPNetwork(..., strict) as the callers build
    them, against the stdlib forms they replaced (IPv4Address(int), ip_interface(f"{addr}/{len}"), tuples)."""
    stdlib_make = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    ours, theirs = attempt(lambda: ip.IPAddress(value, version)), attempt(lambda: stdlib_make(value))
    assert (ours is None) == (theirs is None)
    if ours is None:
        return
    same_address(ours, theirs)
    iface = attempt(lambda: ip.IPInterface(ours, prefixlen))
    assert (iface is None) == (parse(ipaddress.ip_interface, f"{theirs}/{prefixlen}") is None)
    if iface is not None:
        same_interface(iface, ipaddress.ip_interface(f"{theirs}/{prefixlen}"))
    for strict in (True, False):
        net = attempt(lambda strict=strict: ip.IPNetwork(ours, prefixlen, strict=strict))
        stdlib_net = attempt(lambda strict=strict: ipaddress.ip_network((theirs, prefixlen), strict=strict))
        assert (net is None) == (stdlib_net is None), (value, version, prefixlen, strict)
        if net is not None:
            same_network(net, stdlib_net)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=17) | st.binary(min_size=4, max_size=4) | st.binary(min_size=16, max_size=16),
       st.integers(-1, 130))
def test_packed(data: bytes, prefixlen: int) -> None:
    """netlink's attributes: from_packed against ip_address(bytes) and the (bytes, prefix) tuple forms."""
    ours, theirs = parse(ip.from_packed, data), parse(ipaddress.ip_address, data)
    assert (ours is None) == (theirs is None)
    if ours is None:
        return
    same_address(ours, theirs)
    iface = attempt(lambda: ip.IPInterface(ours, prefixlen))
    stdlib_iface = parse(ipaddress.ip_interface, (data, prefixlen))
    assert (iface is None) == (stdlib_iface is None)
    if iface is not None:
        same_interface(iface, stdlib_iface)
        same_network(ip.IPNetwork(ours, prefixlen, strict=False), ipaddress.ip_network((data, prefixlen), strict=False))


def test_zones_print_and_compare_but_do_not_order() -> None:
    a, b = ip.ip_address("fe80::1%a"), ip.ip_address("fe80::1%b")
    assert (a == b, a < b, a <= b, a >= b, str(ip.ip_interface("fe80::1%a/64").ip)) == (False, False, False, True,
                                                                                          "fe80::1")
    with pytest.raises(TypeError):
        _ = ip.ip_address("10.0.0.1") < ip.ip_address("::1")


def test_imports_nothing() -> None:
    """The point of the module: it loads no module beyond itself (ipaddress brings functools, collections...)."""
    probe = (f"import sys; sys.path[:0] = [{str(REPO)!r}]; before = set(sys.modules)\n"
             "import common.ip\nprint(' '.join(sorted(set(sys.modules) - before)))")
    done = subprocess.run([sys.executable, "-I", "-S", "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["__future__", "common", "common.ip"]   # __future__: every module has it
