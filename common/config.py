"""Typed reads of the stdin network configuration; every error names the key path and the value.

Plugins parse their own keys with `Node` getters, e.g. `Node(conf).obj("ipam").string("type")`, and get
`ConfigError("invalid CIDR '10.0.0.0/33' at ipam.ranges[0][0].subnet")` instead of a KeyError.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import Any, Literal, TypeVar, overload
    T = TypeVar("T")

from . import jsonio
from .errors import CniError, Code, ConfigError
from .ip import IPAddress as IPAddress  # re-exported: the plugins' address types (common/ip.py)
from .ip import IPInterface as IPInterface
from .ip import IPNetwork as IPNetwork
from .ip import ip_address, ip_interface
from .record import record

NAME_PATTERN = r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$"   # network names and container IDs (the spec's rule)
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_NAME_CHARS = _ALNUM | frozenset("_.-")


def describe(value: Any) -> str:
    """A short, quoted rendering of a JSON value for error messages."""
    text = jsonio.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "list", dict: "object", type(None): "null"}.get(type(value), "value")


def fold(key: str) -> str:
    """The case folding Go's encoding/json matches object keys with, for our ASCII key names: ASCII case, plus
    the two non-ASCII letters whose simple fold is ASCII (KELVIN SIGN ~ k, LONG S ~ s)."""
    return key.replace("\u017f", "s").lower()   # str.lower maps U+212A to 'k' already


class Node:
    """A JSON object together with its key path.

    Keys are looked up the way Go's encoding/json fills a struct, so configs written for the Go plugins mean the
    same here: case-insensitively (containerd sends untagged Go structs: "HostPort", "IPRanges"), and among
    keys that fold alike the last non-null one wins (jsonio keeps objects in last-occurrence order). This class
    is the one place that owns the rule; output is always written with the canonical keys."""

    def __init__(self, data: Any, path: str = "") -> None:
        if not isinstance(data, dict):
            where = f" at {path}" if path else ""
            raise ConfigError(f"expected an object{where}, got {type_name(data)} {describe(data)}")
        self.data: dict[str, Any] = data
        self.path = path
        self._folded: dict[str, str] | None = None   # fold(key) -> the key that wins; built on first miss

    def at(self, key: str | int) -> str:
        if isinstance(key, int):
            return f"{self.path}[{key}]"
        return f"{self.path}.{key}" if self.path else key

    def key_of(self, key: str) -> str:
        """The key of the document that `key` reads (itself when absent): "HostPort" for "hostPort"."""
        if self._folded is None:
            self._folded = {fold(k): k for k, v in self.data.items() if v is not None}
        return self._folded.get(fold(key), key)

    def get(self, key: str) -> Any:
        """The value `key` reads, None when absent or null."""
        return self.data.get(self.key_of(key))

    def has(self, key: str) -> bool:
        return self.get(key) is not None

    def raw(self, key: str, default: Any = None) -> Any:
        value = self.get(key)
        return default if value is None else value

    def _typed(self, key: str, kind: type | tuple[type, ...], kind_name: str, default: Any, required: bool) -> Any:
        value = self.get(key)
        if value is None:
            if required:
                raise ConfigError(f"missing required key {self.at(key)}")
            return default
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(f"expected {kind_name} at {self.at(self.key_of(key))}, got {type_name(value)} "
                              f"{describe(value)}")
        return value

    if TYPE_CHECKING:   # a default or required=True: never None
        @overload
        def string(self, key: str, default: str, *, required: bool = False,
                   choices: tuple[str, ...] | None = None) -> str: ...
        @overload
        def string(self, key: str, default: None = None, *, required: Literal[True],
                   choices: tuple[str, ...] | None = None) -> str: ...
        @overload
        def string(self, key: str, default: str | None = None, *, required: bool = False,
                   choices: tuple[str, ...] | None = None) -> str | None: ...

    def string(self, key: str, default: str | None = None, *, required: bool = False,
               choices: tuple[str, ...] | None = None) -> str | None:
        value: str | None = self._typed(key, str, "string", default, required)
        if choices is not None and value is not None and value not in choices:
            raise ConfigError(f"invalid value {describe(value)} at {self.at(self.key_of(key))}: "
                              f"expected one of {list(choices)}")
        return value

    def boolean(self, key: str, default: bool = False) -> bool:
        return bool(self._typed(key, bool, "boolean", default, False))

    if TYPE_CHECKING:   # a default or required=True: never None
        @overload
        def integer(self, key: str, default: int, *, minimum: int | None = None, maximum: int | None = None,
                    required: bool = False) -> int: ...
        @overload
        def integer(self, key: str, default: None = None, *, minimum: int | None = None,
                    maximum: int | None = None, required: Literal[True]) -> int: ...
        @overload
        def integer(self, key: str, default: int | None = None, *, minimum: int | None = None,
                    maximum: int | None = None, required: bool = False) -> int | None: ...

    def integer(self, key: str, default: int | None = None, *, minimum: int | None = None,
                maximum: int | None = None, required: bool = False) -> int | None:
        found: int | float | None = self._typed(key, (int, float), "integer", default, required)
        if found is None:
            return None
        if isinstance(found, float) and not found.is_integer():
            raise ConfigError(f"expected integer at {self.at(self.key_of(key))}, got {describe(found)}")
        value = int(found)
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise ConfigError(f"{describe(value)} out of range at {self.at(self.key_of(key))}: "
                              f"expected {minimum}..{maximum}")
        return value

    def obj(self, key: str, *, required: bool = False) -> Node | None:
        value = self._typed(key, dict, "object", None, required)
        return None if value is None else Node(value, self.at(self.key_of(key)))

    def obj_or_empty(self, key: str) -> Node:
        return self.obj(key) or Node({}, self.at(key))

    def items(self, key: str) -> Iterator[tuple[str, Any]]:
        """(path, value) of every element of the list at key; an absent key is an empty list."""
        values = self._typed(key, list, "list", [], False)
        path = self.at(self.key_of(key))
        return ((f"{path}[{i}]", v) for i, v in enumerate(values))

    def objects(self, key: str) -> list[Node]:
        return [Node(value, path) for path, value in self.items(key)]

    def strings(self, key: str) -> list[str]:
        return [expect_str(value, path) for path, value in self.items(key)]

    def required(self, key: str, parse: Callable[[Any, str], T]) -> T:
        """parse(value, path) of a key that must be present (code 7 naming it when absent)."""
        value = self.parsed(key, parse, required=True)
        assert value is not None
        return value

    def parsed(self, key: str, parse: Callable[[Any, str], T], *, required: bool = False) -> T | None:
        value = self.get(key)
        if value is None:
            if required:
                raise ConfigError(f"missing required key {self.at(key)}")
            return None
        return parse(value, self.at(self.key_of(key)))


def expect_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"expected string at {path}, got {type_name(value)} {describe(value)}")
    return value


# --- addresses (common/ip.py parses as the stdlib ipaddress, which costs ~6 ms to import; netaddr ~40 ms) ---

def ip(value: Any, path: str) -> IPAddress:
    text = expect_str(value, path)
    try:
        if "%" in text:     # ipaddress accepts IPv6 zones ("fe80::1%eth0"); Go's net.ParseIP does not
            raise ValueError(text)
        return ip_address(text)
    except ValueError:
        raise ConfigError(f"invalid IP address {describe(value)} at {path}") from None


def cidr(value: Any, path: str) -> IPInterface:
    """An address with prefix that keeps its host bits ("10.0.0.5/24"), as Go's types.ParseCIDR does."""
    text = expect_str(value, path)
    if "/" not in text:
        raise ConfigError(f"invalid CIDR {describe(value)} at {path}: missing prefix length")
    try:
        if "%" in text:
            raise ValueError(text)
        return ip_interface(text)
    except ValueError:
        raise ConfigError(f"invalid CIDR {describe(value)} at {path}") from None


def network(value: Any, path: str) -> IPNetwork:
    """A network address; host bits set is an error (as host-local's "Network has host bits set")."""
    iface = cidr(value, path)
    if iface.ip != iface.network.network_address:
        raise ConfigError(f"invalid subnet {describe(value)} at {path}: host bits set "
                          f"(network address is {iface.network})")
    return iface.network


def ip_or_cidr(value: Any, path: str) -> IPAddress:
    """'10.0.0.5' or '10.0.0.5/24' -> the address (the prefix is ignored, as in the reference)."""
    text = expect_str(value, path)
    return cidr(text, path).ip if "/" in text else ip(text, path)


# --- CNI_ARGS ------------------------------------------------------------------------------------------------

def parse_cni_args(text: str, known: tuple[str, ...]) -> dict[str, str]:
    """`K=V;K=V` as Go's types.LoadArgs reads it: keys are case-sensitive, unknown keys are an error unless
    `IgnoreUnknown` is 1/true, a pair must hold exactly one '='."""
    pairs: list[tuple[str, str]] = []
    if text:
        for item in text.split(";"):
            parts = item.split("=")
            if len(parts) != 2:
                raise CniError(Code.INVALID_ENVIRONMENT, f"invalid CNI_ARGS pair {item!r}: expected KEY=VALUE")
            pairs.append((parts[0], parts[1]))
    values = dict(pairs)
    ignore_unknown = values.get("IgnoreUnknown", "").lower() in ("1", "true")
    unknown = [key for key, _ in pairs if key not in known and key != "IgnoreUnknown"]
    if unknown and not ignore_unknown:
        raise CniError(Code.INVALID_ENVIRONMENT,
                       f"unknown CNI_ARGS key {unknown[0]!r} (known: {', '.join(known) or 'none'}; "
                       "set IgnoreUnknown=1 to ignore unknown keys)")
    return {key: value for key, value in values.items() if key in known}


def is_valid_name(text: str) -> bool:
    """NAME_PATTERN without the re module (and without its `$` also matching before a trailing newline)."""
    return bool(text) and text[0] in _ALNUM and all(c in _NAME_CHARS for c in text)


def same_text(a: str, b: str) -> bool:
    """Whether two names are the same once each went through Go's JSON, as names in a prevResult did (libcni
    re-encodes it): an invalid UTF-8 byte, a lone surrogate in os.environ's reading, is U+FFFD there."""
    return a == b or _as_go_json_reads(a) == _as_go_json_reads(b)


def _as_go_json_reads(text: str) -> str:
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)


def interface_name_problem(name: str) -> str | None:
    """What makes `name` unusable as a Linux interface name (the kernel's dev_valid_name), None when fine."""
    if len(name.encode("utf-8", "surrogateescape")) > 15:   # bytes, as the kernel counts (os.environ decodes so)
        return "longer than 15 bytes"
    if name in (".", ".."):
        return "'.' and '..' are not interface names"
    if any(c in name for c in "/:") or any(c.isspace() for c in name):
        return "must not contain '/', ':' or whitespace"
    return None


def validate_name(value: Any, path: str = "name") -> str:
    if value is None or value == "":
        raise ConfigError(f"missing network name at {path}")
    text = expect_str(value, path)
    if not is_valid_name(text):
        raise ConfigError(f"invalid network name {describe(text)} at {path}: must match {NAME_PATTERN}")
    return text


@record(frozen=True)
class NetConf:
    """The keys every plugin shares; plugin-specific keys are read from `node`."""

    cni_version: str
    name: str
    type: str
    node: Node

    @property
    def runtime_config(self) -> Node:
        return self.node.obj_or_empty("runtimeConfig")

    @property
    def ipam(self) -> Node:
        return self.node.obj_or_empty("ipam")

    @property
    def ipam_type(self) -> str:
        return self.ipam.string("type", "") or ""

    @property
    def cni_args(self) -> Node:
        """`args.cni` (CONVENTIONS.md), e.g. {"ips": [...], "mac": ...}."""
        return self.node.obj_or_empty("args").obj_or_empty("cni")


def decode(stdin: bytes) -> dict[str, Any]:
    """stdin bytes -> JSON object; undecodable or non-object input is code 6 (decoding failure)."""
    try:
        data = jsonio.loads(stdin)
    except (ValueError, RecursionError) as exc:
        raise CniError(Code.DECODING_FAILURE, f"failed to decode network configuration: {exc}") from None
    if not isinstance(data, dict):
        raise CniError(Code.DECODING_FAILURE,
                       f"failed to decode network configuration: expected a JSON object, got {type_name(data)}")
    return data


def base_netconf(data: dict[str, Any]) -> NetConf:
    node = Node(data)
    version = node.string("cniVersion", "0.1.0") or "0.1.0"
    name = validate_name(node.get("name"))
    return NetConf(cni_version=version, name=name, type=node.string("type", "") or "", node=node)


GC_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")   # the second is the pre-1.1.0 name


def valid_attachments(node: Node) -> frozenset[tuple[str, str]]:
    """GC's (containerID, ifname) pairs: the union of both keys (libcni sends both). Neither key present is an
    error: read as "nothing is valid", it would remove everything."""
    if not any(node.has(key) for key in GC_KEYS):
        raise ConfigError(f"missing required key {GC_KEYS[0]} (GC needs the list of valid attachments)")
    valid: set[tuple[str, str]] = set()
    for key in GC_KEYS:
        for item in node.objects(key):
            valid.add((_attachment_field(item, "containerID"), _attachment_field(item, "ifname")))
    return frozenset(valid)


def _attachment_field(item: Node, key: str) -> str:
    value = item.string(key, required=True)
    if not value:
        raise ConfigError(f"empty value {describe(value)} at {item.at(key)}")
    return str(value)

