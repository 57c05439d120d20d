"""tuning's configuration as frozen values; every error is code 7 and names the key path and the value.

Where each setting comes from, highest first (as the reference merges them):

    mac       args.cni.mac > runtimeConfig.mac (capability "mac") > CNI_ARGS MAC > mac
    others    args.cni.<key> > <key>              (promisc, mtu, allmulti, txQLen)
    sysctl    sysctl, with args.cni.sysctl merged over it (also without a top-level sysctl: the reference panics)

Pure: nothing here reads the host. CNI_ARGS are parsed with Go's strict rules (unknown keys need IgnoreUnknown).
"""
from __future__ import annotations

from common.config import NetConf, Node, describe, parse_cni_args, type_name
from common.errors import ConfigError
from common.record import record

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

DATA_DIR = "/run/cni/tuning"
CNI_ARGS_KEYS = ("MAC",)
_HEX = frozenset("0123456789abcdefABCDEF")


@record(frozen=True)
class Setting:
    """One configured value and the key it came from (named in errors)."""
    value: Any
    source: str


@record(frozen=True)
class Sysctl:
    key: str            # as configured (dotted, with a literal IFNAME)
    value: str
    source: str         # "sysctl" or "args.cni.sysctl"


@record(frozen=True)
class TuningConf:
    data_dir: str = DATA_DIR
    sysctls: tuple[Sysctl, ...] = ()
    mac: Setting | None = None          # normalised: lower-case, colon-separated
    promisc: Setting | None = None      # only when on: `false` changes nothing (as the reference)
    mtu: Setting | None = None          # 0 is unset
    allmulti: Setting | None = None
    txqlen: Setting | None = None

    def link_settings(self) -> list[tuple[str, Setting]]:
        """The link attributes this config sets, by restore-file key, in the reference's order of changes."""
        found = (("mac", self.mac), ("promisc", self.promisc), ("mtu", self.mtu), ("allmulti", self.allmulti),
                 ("txQLen", self.txqlen))
        return [(key, setting) for key, setting in found if setting is not None]


def data_dir(conf: NetConf) -> str:
    """dataDir for DEL and GC: a value ADD would have refused falls back to the default (DEL never refuses)."""
    value = conf.node.get("dataDir")
    return value if isinstance(value, str) and value else DATA_DIR


def parse(conf: NetConf, cni_args: str) -> TuningConf:
    node, args = conf.node, conf.cni_args
    return TuningConf(
        data_dir=node.string("dataDir", "") or DATA_DIR,
        sysctls=_sysctls(node, args),
        mac=_mac(node, args, conf.runtime_config, cni_args),
        promisc=_overridden(node, args, "promisc", _bool, lambda on: on is True),
        mtu=_overridden(node, args, "mtu", _uint31, lambda mtu: mtu != 0),
        allmulti=_overridden(node, args, "allmulti", _bool, lambda _: True),
        txqlen=_overridden(node, args, "txQLen", _uint32, lambda _: True),
    )


def _overridden(node: Node, args: Node, key: str, parse: Any, effective: Any) -> Setting | None:
    for where in (args, node):
        if where.has(key):
            path = where.at(where.key_of(key))
            value = parse(where.get(key), path)
            return Setting(value, path) if effective(value) else None
    return None


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"expected boolean at {path}, got {type_name(value)} {describe(value)}")
    return value


def _integer(value: Any, path: str, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"expected integer at {path}, got {type_name(value)} {describe(value)}")
    if not 0 <= value <= maximum:
        raise ConfigError(f"{describe(value)} out of range at {path}: expected 0..{maximum}")
    return int(value)


def _uint31(value: Any, path: str) -> int:
    return _integer(value, path, 2**31 - 1)


def _uint32(value: Any, path: str) -> int:
    return _integer(value, path, 2**32 - 1)


def _sysctls(node: Node, args: Node) -> tuple[Sysctl, ...]:
    merged: dict[str, Sysctl] = {}
    for where in (node, args):   # args.cni.sysctl last: its keys win
        table = where.obj("sysctl")
        if table is None:
            continue
        for key, value in table.data.items():   # keys are data: exact, not case-folded
            if not isinstance(value, str):
                raise ConfigError(f"expected string at {table.path}[{describe(key)}], got {type_name(value)} "
                                  f"{describe(value)}")
            merged[key] = Sysctl(key, value, table.path)
    return tuple(merged.values())


def _mac(node: Node, args: Node, runtime: Node, cni_args: str) -> Setting | None:
    env = parse_cni_args(cni_args, CNI_ARGS_KEYS).get("MAC", "")   # strict, also when no MAC is set anywhere
    candidates = [(args, "mac"), (runtime, "mac")]
    for where, key in candidates:
        if where.has(key):
            text = where.get(key)
            path = where.at(where.key_of(key))
            if not isinstance(text, str):
                raise ConfigError(f"expected string at {path}, got {type_name(text)} {describe(text)}")
            if text or where is args:   # an empty args.cni.mac unsets, as the reference's pointer does
                return Setting(parse_mac(text, path), path) if text else None
    if env:
        return Setting(parse_mac(env, "CNI_ARGS MAC"), "CNI_ARGS MAC")
    text = node.string("mac", "")
    return Setting(parse_mac(text, node.at(node.key_of("mac"))), node.at(node.key_of("mac"))) if text else None


def parse_mac(text: str, path: str) -> str:
    """Go's net.ParseMAC forms (6, 8 or 20 bytes: aa:bb:.., aa-bb-.., aabb.ccdd.eeff), in Go's String() form."""
    octets = _mac_octets(text)
    if octets is None:
        raise ConfigError(f"invalid MAC address {describe(text)} at {path}")
    return ":".join(octets).lower()


def _mac_octets(text: str) -> list[str] | None:
    if len(text) < 14:
        return None
    if text[2] in ":-":
        parts = text.split(text[2])
        ok = all(len(p) == 2 for p in parts)
    elif text[4] == ".":
        groups = text.split(".")
        ok = all(len(g) == 4 for g in groups)
        parts = [g[i:i + 2] for g in groups for i in (0, 2)] if ok else []
    else:
        return None
    if not ok or len(parts) not in (6, 8, 20) or not all(c in _HEX for p in parts for c in p):
        return None
    return parts
