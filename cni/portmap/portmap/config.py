"""portmap's configuration as frozen values; every error is code 7 and names the key path and value.

Pure: no host probing. The backend left unset (None) is resolved by plugin.py (iptables if usable).
"""
from __future__ import annotations

from common.record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from common.config import IPAddress, IPInterface, NetConf, Node, describe, ip, same_text, valid_attachments
from common.errors import ConfigError
from common.firewall import BACKENDS
from common.types import Result

PROTOCOLS = ("tcp", "udp", "sctp")
DEFAULT_MARK_BIT = 13
_CHAIN_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_")
_CHAIN_CHARS = _CHAIN_FIRST | frozenset(".-")

# iptables options that would turn a condition into another command or a jump (getopt also accepts unique
# prefixes of long options, e.g. "--ju", so those are refused by prefix).
_IPT_LONG = ("--jump", "--goto", "--append", "--insert", "--delete", "--replace", "--new-chain",
             "--delete-chain", "--flush", "--policy", "--rename-chain", "--zero", "--list", "--table")
_IPT_SHORT = set("jgAIDRNXFPEZLSt")
_IPT_SHORT_WITH_VALUE = set("sdiopm")   # "-s10.0.0.1" is one option; "-fj" would be -f -j
# nft words that end the rule's matches with a verdict or a NAT statement of their own.
_NFT_WORDS = {"jump", "goto", "accept", "drop", "reject", "return", "queue", "continue", "dnat", "snat",
              "masquerade", "redirect", "tproxy"}


@record(frozen=True)
class Mapping:
    host_port: int
    container_port: int
    protocol: str                       # lower case: tcp, udp, sctp
    host_ip: IPAddress | None = None    # None: all host addresses

    def applies_to(self, family: int) -> bool:
        """A hostIP of the other address family is skipped (as the reference does)."""
        return self.host_ip is None or self.host_ip.version == family

    @property
    def destination(self) -> IPAddress | None:
        """The host address to match, None for "any" (no hostIP, 0.0.0.0 or ::)."""
        return None if self.host_ip is None or self.host_ip.is_unspecified else self.host_ip


@record(frozen=True)
class PortmapConf:
    name: str
    mappings: tuple[Mapping, ...] = ()
    snat: bool = True
    masq_all: bool = False
    mark_bit: int = DEFAULT_MARK_BIT
    external_setmark: str | None = None
    conditions_v4: tuple[str, ...] = ()
    conditions_v6: tuple[str, ...] = ()
    backend: str | None = None          # explicit or implied by the conditions' syntax; None: probe

    def conditions(self, family: int) -> tuple[str, ...]:
        return self.conditions_v4 if family == 4 else self.conditions_v6


def parse(conf: NetConf) -> PortmapConf:
    node = conf.node
    mappings = tuple(_mapping(n) for n in conf.runtime_config.objects("portMappings"))
    if node.has("markMasqBit") and node.has("externalSetMarkChain"):
        raise ConfigError("cannot specify both externalSetMarkChain and markMasqBit")
    v4 = _conditions(node, "conditionsV4")
    v6 = _conditions(node, "conditionsV6")
    backend = _backend(node, v4, v6)
    if backend == "nftables":
        for key in ("markMasqBit", "externalSetMarkChain"):
            if node.has(key):
                raise ConfigError(f"{key} is only supported by the iptables backend (backend is nftables)")
    return PortmapConf(
        name=conf.name, mappings=mappings, snat=node.boolean("snat", True),
        masq_all=node.boolean("masqAll", False),
        mark_bit=node.integer("markMasqBit", DEFAULT_MARK_BIT, minimum=0, maximum=31),
        external_setmark=_chain(node, "externalSetMarkChain"),
        conditions_v4=v4[1], conditions_v6=v6[1], backend=backend)


def _mapping(node: Node) -> Mapping:
    proto_raw = node.string("protocol", "tcp") or "tcp"
    protocol = proto_raw.lower()
    if protocol not in PROTOCOLS:
        raise ConfigError(f"invalid protocol {describe(proto_raw)} at {node.at('protocol')}: "
                          f"expected one of {', '.join(PROTOCOLS)}")
    host_ip = node.raw("hostIP", "")
    return Mapping(
        host_port=node.integer("hostPort", minimum=1, maximum=65535, required=True),
        container_port=node.integer("containerPort", minimum=1, maximum=65535, required=True),
        protocol=protocol,
        host_ip=ip(host_ip, node.at("hostIP")) if host_ip != "" else None)


def _chain(node: Node, key: str) -> str | None:
    value = node.string(key)
    if value is not None and not (0 < len(value) <= 28 and value[0] in _CHAIN_FIRST
                                  and set(value) <= _CHAIN_CHARS):
        raise ConfigError(f"invalid chain name {describe(value)} at {node.at(key)}: expected at most 28 "
                          "letters, digits, '_', '.', '-'")
    return value


def syntax_of(tokens: tuple[str, ...]) -> str | None:
    """iptables conditions start with an option or '!'; anything else is nftables syntax."""
    if not tokens:
        return None
    return "iptables" if tokens[0][:1] in ("-", "!") else "nftables"


def _conditions(node: Node, key: str) -> tuple[str | None, tuple[str, ...]]:
    tokens = tuple(node.strings(key))
    if any(not t for t in tokens):
        raise ConfigError(f"empty token in {node.at(key)}")
    syntax = syntax_of(tokens)
    forbidden = _forbidden_iptables if syntax == "iptables" else _forbidden_nft
    for i, token in enumerate(tokens):
        if forbidden(token):
            raise ConfigError(f"forbidden token {describe(token)} at {node.at(key)}[{i}]: conditions may only "
                              "add matches, not jumps, verdicts, commands or line breaks")
    return syntax, tokens


def _forbidden_iptables(token: str) -> bool:
    if any(c in token for c in "\n\r\0"):
        return True
    words = token.split()
    if len(words) > 1:      # "-s 10.0.0.1 -j ACCEPT" in one token: quoted, it could not jump; refuse it clearly
        return any(_forbidden_iptables(word) for word in words)
    if token.startswith("--"):
        name = token.split("=", 1)[0]
        return len(name) > 2 and any(opt.startswith(name) for opt in _IPT_LONG)
    if token.startswith("-") and len(token) > 1:
        letter = token[1]
        return letter in _IPT_SHORT or (len(token) > 2 and letter not in _IPT_SHORT_WITH_VALUE)
    return False


def _forbidden_nft(token: str) -> bool:
    return any(c in token for c in ";\n\r\0#") or any(w.lower() in _NFT_WORDS for w in token.split())


def _backend(node: Node, v4: tuple[str | None, tuple[str, ...]], v6: tuple[str | None, tuple[str, ...]]) -> str | None:
    explicit = node.string("backend", choices=BACKENDS)
    for key, (syntax, _) in (("conditionsV4", v4), ("conditionsV6", v6)):
        if syntax and explicit and syntax != explicit:
            raise ConfigError(f"{key} uses {syntax} syntax but backend is {explicit}")
    if v4[0] and v6[0] and v4[0] != v6[0]:
        raise ConfigError(f"conditionsV4 use {v4[0]} syntax but conditionsV6 use {v6[0]} syntax")
    return explicit or v4[0] or v6[0]


# --- the container's addresses and GC's valid attachments --------------------------------------------------

def container_ips(result: Result, ifname: str) -> tuple[IPInterface | None, IPInterface | None]:
    """First IPv4 and first IPv6 of the container interface (an IP without interface index is accepted)."""
    found: dict[int, IPInterface] = {}
    for ipc in result.ips:
        if ipc.version in found:
            continue
        idx = ipc.interface
        if idx is not None and 0 <= idx < len(result.interfaces):
            iface = result.interfaces[idx]
            if not same_text(iface.name, ifname) or not iface.sandbox:
                continue
        found[ipc.version] = ipc.address
    return found.get(4), found.get(6)


def valid_container_ids(conf: NetConf) -> frozenset[str]:
    """Container IDs of GC's valid attachments (portmap's rules carry no interface name)."""
    return frozenset(cid for cid, _ in valid_attachments(conf.node))


def has_mappings(conf: NetConf) -> bool:
    value: Any = conf.runtime_config.raw("portMappings")
    return isinstance(value, list) and len(value) > 0
