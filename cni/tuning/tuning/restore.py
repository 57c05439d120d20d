"""The restore file and the link comparisons. Pure.

`<dataDir>/<containerID>_<ifname>.json` holds the attributes an ADD changes, with the values they had before,
in the reference's exact bytes (Go's json.MarshalIndent with a one-space indent, no trailing newline, fields in
the struct's order, empty MAC and zero MTU omitted), so the Go tuning's DEL restores from our file and ours
from its:

    {
     "mac": "fe:9b:10:e4:da:30",
     "promisc": false,
     "mtu": 1500,
     "allmulti": false
    }

`txQLen` (the reference since v1.4.0) comes last; Debian's 1.1.1 ignores it.
"""
from __future__ import annotations

from common import jsonio
from common.config import Node

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

    from .config import TuningConf

    LinkState = dict[str, Any]   # {"mac": str, "promisc": bool, "mtu": int, "allmulti": bool, "txQLen": int}

KEYS = ("mac", "promisc", "mtu", "allmulti", "txQLen")          # the file's order
RESTORE_ORDER = ("mtu", "mac", "promisc", "allmulti", "txQLen")  # DEL's order (the reference's)
_TYPES = {"mac": str, "promisc": bool, "mtu": int, "allmulti": bool, "txQLen": int}


def file_name(container_id: str, ifname: str) -> str:
    return f"{container_id}_{ifname}.json"


def _omitted(key: str, value: Any) -> bool:
    """Go's omitempty on the string and int fields: an empty MAC and MTU 0 are not written (nor restored)."""
    return (key == "mac" and value == "") or (key == "mtu" and value == 0)


def originals(keys: list[str], current: LinkState, existing: dict[str, Any] | None) -> dict[str, Any]:
    """What the file must hold after an ADD changing `keys`: the values an earlier ADD saved (the true
    originals: the link holds tuned values by now), and the current ones for the keys it did not save."""
    merged = dict(existing or {})
    for key in keys:
        merged.setdefault(key, current[key])
    return {key: merged[key] for key in KEYS if key in merged and not _omitted(key, merged[key])}


def render(saved: dict[str, Any]) -> bytes:
    ordered = {key: saved[key] for key in KEYS if key in saved}
    return jsonio.dumps(ordered, 1).encode()


def parse(data: bytes) -> dict[str, Any]:
    """A restore file, as Go reads it (keys case-insensitively, null as absent); ValueError when it is none."""
    try:
        node = Node(jsonio.loads(data))
    except Exception as exc:   # ValueError, RecursionError, ConfigError (not an object)
        raise ValueError(f"not a restore file: {exc}") from None
    out: dict[str, Any] = {}
    for key in KEYS:
        value = node.get(key)
        if value is None:
            continue
        kind = _TYPES[key]
        if kind is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ValueError(f"not a restore file: {key} is {value!r}")
        if not _omitted(key, value):
            out[key] = value
    return out


def restore_steps(saved: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(key, saved[key]) for key in RESTORE_ORDER if key in saved]


def sysctl_mismatch(path: str, configured: str, current: str) -> str | None:
    """CHECK of one sysctl. Whitespace-insensitive: the kernel prints multi-value sysctls (tcp_rmem) with tabs,
    a config writes them with spaces; the reference compares bytes and fails there."""
    if configured.split() == current.split():
        return None
    return f"Error: Tuning configured value of {path} is {configured}, current value is {current.rstrip(chr(10))}"


def link_mismatch(conf: TuningConf, state: LinkState, ifname: str) -> str | None:
    """CHECK of the link attributes this config sets (the reference's wording, values instead of pointers)."""
    if conf.mac is not None and conf.mac.value != state["mac"]:
        return f"Error: Tuning configured Ethernet of {ifname} is {conf.mac.value}, current value is {state['mac']}"
    if conf.promisc is not None and not state["promisc"]:
        return f"Error: Tuning link {ifname} configured promisc is true, current value is 0"
    if conf.mtu is not None and conf.mtu.value != state["mtu"]:
        return f"Error: Tuning configured MTU of {ifname} is {conf.mtu.value}, current value is {state['mtu']}"
    if conf.allmulti is not None and conf.allmulti.value != state["allmulti"]:
        return (f"Error: Tuning configured all-multicast mode of {ifname} is {_go(conf.allmulti.value)}, current value "
                f"is {_go(state['allmulti'])}")
    if conf.txqlen is not None and conf.txqlen.value != state["txQLen"]:
        return (f"Error: Tuning configured Transmit Queue Length of {ifname} is {conf.txqlen.value}, current value is "
                f"{state['txQLen']}")
    return None


def _go(value: bool) -> str:
    return "true" if value else "false"
