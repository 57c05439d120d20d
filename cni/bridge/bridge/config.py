"""The bridge plugin's configuration: every reference key, its default, and validation with key paths.

Pure: reads the decoded stdin config and CNI_ARGS, never probes the host (the masquerade backend left unset
is resolved when rules are applied, not here).
"""
from __future__ import annotations

from common.config import NetConf, Node, describe, interface_name_problem
from common.errors import ConfigError
from common.firewall import BACKENDS
from common.record import record
from common.result import parse_dns
from common.types import DNS

DEFAULT_BRIDGE = "cni0"
KNOWN_CNI_ARGS = ("MAC",)


@record(frozen=True, kw_only=True)
class BridgeConf:
    name: str                       # network name (rule comments, chain hashes)
    cni_version: str
    bridge: str = DEFAULT_BRIDGE
    is_gateway: bool = False        # true as well when isDefaultGateway is set (as in the reference)
    is_default_gateway: bool = False
    force_address: bool = False
    ip_masq: bool = False
    ip_masq_backend: str | None = None
    mtu: int = 0
    hairpin_mode: bool = False
    promisc_mode: bool = False
    vlan: int = 0
    vlan_trunk: tuple[int, ...] = ()    # sorted, unique VLAN ids
    preserve_default_vlan: bool = False
    macspoofchk: bool = False
    enable_dad: bool = False
    disable_container_interface: bool = False
    port_isolation: bool = False
    ipam_type: str = ""
    dns: DNS = DNS()
    mac: str = ""                   # container MAC, "" = kernel-chosen

    @property
    def layer3(self) -> bool:
        return bool(self.ipam_type)

    @property
    def vlan_filtering(self) -> bool:
        return bool(self.vlan or self.vlan_trunk)


@record(frozen=True, kw_only=True)
class TeardownConf:
    """What DEL and GC need of the config, read so that it refuses nothing.

    They must clean up after any ADD, including the Go plugins' ADD of a config that our ADD refuses (v1.1.1
    accepts `mtu: -1` and ignores keys it predates: `ipMasqBackend: "foo"`, a malformed `vlanTrunk`). Every
    other key only shapes what ADD creates, and DEL finds that by CNI_IFNAME, chain name or rule comment.
    `ipam` is passed on to the IPAM plugin verbatim; its own keys are its business.
    """
    name: str
    ipam_type: str = ""         # "" also when unreadable: no ADD, ours or Go's, delegated with such a config
    ip_masq: bool = False       # True also when unreadable: tearing down absent rules is a no-op
    macspoofchk: bool = False   # likewise

    @property
    def layer3(self) -> bool:
        return bool(self.ipam_type)


def parse_teardown(conf: NetConf) -> TeardownConf:
    """The one lenient read, for DEL and GC (ADD, CHECK and STATUS use the strict `parse`)."""
    node = conf.node
    ipam = node.get("ipam")
    ipam_type = Node(ipam, "ipam").get("type") if isinstance(ipam, dict) else None
    return TeardownConf(name=conf.name, ipam_type=ipam_type if isinstance(ipam_type, str) else "",
                        ip_masq=_maybe(node, "ipMasq"), macspoofchk=_maybe(node, "macspoofchk"))


def _maybe(node: Node, key: str) -> bool:
    """A flag that only gates a cleanup step: anything but absent, null or false means "clean up"."""
    value = node.get(key)
    return value is not None and value is not False     # `is`: 0 == False, and 0 is no boolean either


def parse(conf: NetConf, cni_args: dict[str, str]) -> BridgeConf:
    node = conf.node
    hairpin, promisc = node.boolean("hairpinMode"), node.boolean("promiscMode")
    if hairpin and promisc:
        raise ConfigError("cannot set hairpinMode and promiscMode at the same time")
    vlan = node.integer("vlan", 0, minimum=0, maximum=4094) or 0
    trunk = vlan_trunk(node)
    if vlan and trunk:
        raise ConfigError(f"cannot set vlan ({vlan}) and vlanTrunk at the same time")
    ipam_type = conf.ipam_type
    disabled = node.boolean("disableContainerInterface")
    if disabled and ipam_type:
        raise ConfigError(f"cannot use IPAM (ipam.type {ipam_type!r}) when disableContainerInterface is set")
    default_gw = node.boolean("isDefaultGateway")
    return BridgeConf(
        name=conf.name, cni_version=conf.cni_version, bridge=bridge_name(node),
        is_gateway=node.boolean("isGateway") or default_gw, is_default_gateway=default_gw,
        force_address=node.boolean("forceAddress"), ip_masq=node.boolean("ipMasq"),
        ip_masq_backend=node.string("ipMasqBackend", choices=BACKENDS),
        mtu=node.integer("mtu", 0, minimum=0, maximum=65535) or 0,
        hairpin_mode=hairpin, promisc_mode=promisc, vlan=vlan, vlan_trunk=trunk,
        preserve_default_vlan=node.boolean("preserveDefaultVlan"), macspoofchk=node.boolean("macspoofchk"),
        enable_dad=node.boolean("enabledad"), disable_container_interface=disabled,
        port_isolation=node.boolean("portIsolation"), ipam_type=ipam_type, dns=parse_dns(node.obj("dns")),
        mac=container_mac(conf, cni_args),
    )


def bridge_name(node: Node) -> str:
    name = node.string("bridge", DEFAULT_BRIDGE) or DEFAULT_BRIDGE
    if interface_name_problem(name):
        raise ConfigError(f"invalid bridge name {describe(name)} at bridge: must be a valid interface name "
                          "(at most 15 bytes, no '/', ':' or whitespace)")
    return str(name)


def vlan_trunk(node: Node) -> tuple[int, ...]:
    """vlanTrunk: [{"id": n} | {"minID": a, "maxID": b}] -> sorted unique ids (reference collectVlanTrunk)."""
    ids: set[int] = set()
    for item in node.objects("vlanTrunk"):
        has_min, has_max = item.has("minID"), item.has("maxID")
        if has_min != has_max:
            missing = "maxID" if has_min else "minID"
            raise ConfigError(f"minID and maxID must be set together at {item.path}: {missing} is missing")
        if has_min:
            low = item.integer("minID", minimum=1, maximum=4094, required=True)     # present: has() said so
            high = item.integer("maxID", minimum=1, maximum=4094, required=True)
            if high < low:
                raise ConfigError(f"minID {low} is greater than maxID {high} at {item.path}")
            ids.update(range(low, high + 1))
        if item.has("id"):
            ids.add(item.integer("id", minimum=1, maximum=4094, required=True))
    return tuple(sorted(ids))


def container_mac(conf: NetConf, cni_args: dict[str, str]) -> str:
    """runtimeConfig.mac > args.cni.mac > CNI_ARGS MAC (the reference's precedence)."""
    sources: list[tuple[str, str | None]] = [
        ("runtimeConfig.mac", conf.runtime_config.string("mac")),
        ("args.cni.mac", conf.cni_args.string("mac")),
        ("CNI_ARGS MAC", cni_args.get("MAC")),
    ]
    for where, value in sources:
        if value:
            if not is_mac(value):
                raise ConfigError(f"invalid MAC address {describe(value)} at {where}")
            return str(value).replace("-", ":").lower()
    return ""


_HEX = frozenset("0123456789abcdefABCDEF")


def is_mac(value: str) -> bool:
    """Six hex octets joined by ':' (or all by '-'), e.g. 0a:58:0a:00:00:05."""
    separator = ":" if ":" in value else "-"
    octets = value.split(separator)
    return len(octets) == 6 and all(len(o) == 2 and set(o) <= _HEX for o in octets)
