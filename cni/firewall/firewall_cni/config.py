"""The firewall plugin's configuration and its inputs from prevResult, as frozen values. Pure: no host probing.

Keys (as the reference's, plus `nftables`):

    backend                 "" / absent: iptables when `iptables -S` on the filter table works, else nftables;
                            "iptables"; "nftables"; "firewalld": code 2 (D-Bus zones are not implemented);
                            anything else: code 7 naming key and value
    iptablesAdminChainName  the admin chain jumped to first from CNI-FORWARD (default CNI-ADMIN; <= 28 chars)
    firewalldZone           accepted (a string), only meaningful to firewalld
    ingressPolicy           "" / "open", "same-bridge", "isolated"
    dataDir                 ★ where the per-attachment records live (default /var/lib/cni/pycni-firewall); an
                            absolute path

ADD, CHECK and STATUS are strict: a key the reference would silently ignore (a typo) is code 7 naming it, and an
ingress-policy error is raised here, before any rule is written. DEL and GC are lenient (`parse_lenient`): they
never refuse a config, they remove what is there.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable

from common.config import IPAddress, NetConf, Node, describe, fold, interface_name_problem
from common.errors import CniError, Code, ConfigError
from common.firewall import BACKENDS
from common.record import record
from common.types import Result

DEFAULT_ADMIN_CHAIN = "CNI-ADMIN"
DEFAULT_ZONE = "trusted"
POLICIES = ("open", "same-bridge", "isolated")

# Keys of the spec and of libcni's injection that any plugin config may carry, and this plugin's own keys.
STANDARD_KEYS = ("cniVersion", "cniVersions", "name", "type", "capabilities", "runtimeConfig", "args",
                 "prevResult", "ipam", "dns", "disableCheck", "disableGC", "loadOnlyInlinedPlugins")
OWN_KEYS = ("backend", "iptablesAdminChainName", "firewalldZone", "ingressPolicy", "dataDir")
_KNOWN = frozenset(fold(key) for key in STANDARD_KEYS + OWN_KEYS)

# Chains a user's admin chain must not be: built-in chains, and the chains the plugin itself manages.
_RESERVED_CHAINS = ("INPUT", "FORWARD", "OUTPUT", "PREROUTING", "POSTROUTING", "CNI-FORWARD",
                    "CNI-ISOLATION-STAGE-1", "CNI-ISOLATION-STAGE-2")
_CHAIN_FIRST = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_CHAIN_CHARS = _CHAIN_FIRST | frozenset("0123456789.-")
MAX_CHAIN = 28


@record(frozen=True)
class FirewallConf:
    name: str
    backend: str | None = None          # None: probe (iptables when usable); "firewalld" only from parse_lenient
    admin_chain: str = DEFAULT_ADMIN_CHAIN
    zone: str = DEFAULT_ZONE
    ingress_policy: str = "open"
    data_dir: str | None = None         # None: the host's default (host.DATA_DIR)


@record(frozen=True)
class Attachment:
    """Who an operation is for: the network and the container's interface (GC's unit)."""
    network: str
    container_id: str
    ifname: str


def parse(conf: NetConf) -> FirewallConf:
    """ADD, CHECK, STATUS: every key checked (module doc)."""
    node = conf.node
    for key in node.data:
        if fold(key) not in _KNOWN:
            raise ConfigError(f"unknown key {key!r} in the firewall configuration: expected one of "
                              f"{', '.join(OWN_KEYS)} (besides the standard keys)")
    backend = node.string("backend", "") or None
    if backend == "firewalld":
        raise CniError(Code.UNSUPPORTED_FIELD, "backend 'firewalld' (firewalld D-Bus zones) is not supported by "
                       "pycni's firewall plugin at backend: use 'iptables' or 'nftables', or leave backend unset")
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"invalid value {describe(backend)} at backend: expected one of "
                          f"{', '.join(BACKENDS)}, or unset")
    policy = node.string("ingressPolicy", "") or "open"
    if policy not in POLICIES:
        raise ConfigError(f"unknown ingress policy {describe(policy)} at ingressPolicy: expected one of "
                          f"{', '.join(POLICIES)}")
    return FirewallConf(name=conf.name, backend=backend, admin_chain=_admin_chain(node),
                        zone=node.string("firewalldZone", "") or DEFAULT_ZONE, ingress_policy=policy,
                        data_dir=_data_dir(node))


def parse_lenient(conf: NetConf) -> FirewallConf:
    """DEL, GC: the keys that parse; anything else is its default (an unknown backend: probe)."""
    node = conf.node
    backend = _lenient(lambda: node.string("backend", ""), "")
    admin = _lenient(lambda: _admin_chain(node), DEFAULT_ADMIN_CHAIN)
    policy = _lenient(lambda: node.string("ingressPolicy", ""), "") or "open"
    data_dir = _lenient(lambda: _data_dir(node), "") or None
    return FirewallConf(name=conf.name, backend=backend if backend in BACKENDS + ("firewalld",) else None,
                        admin_chain=admin, ingress_policy=policy if policy in POLICIES else "open",
                        data_dir=data_dir)


def _lenient(read: Callable[[], str | None], default: str) -> str:
    try:
        value = read()
    except CniError:
        return default
    return value if isinstance(value, str) else default


def _data_dir(node: Node) -> str | None:
    value = node.string("dataDir", "") or None
    if value is not None and (not value.startswith("/") or "\0" in value):
        raise ConfigError(f"invalid dataDir {describe(value)}: expected an absolute path")
    return value


def _admin_chain(node: Node) -> str:
    value = node.string("iptablesAdminChainName", "") or DEFAULT_ADMIN_CHAIN
    if not (len(value) <= MAX_CHAIN and value[0] in _CHAIN_FIRST and set(value) <= _CHAIN_CHARS):
        raise ConfigError(f"invalid chain name {describe(value)} at iptablesAdminChainName: expected at most "
                          f"{MAX_CHAIN} letters, digits, '_', '.', '-', starting with a letter or '_'")
    if value in _RESERVED_CHAINS:
        raise ConfigError(f"invalid chain name {describe(value)} at iptablesAdminChainName: the chain is "
                          "built in or managed by the plugin")
    return value


# --- inputs from prevResult ---------------------------------------------------------------------------------

MISSING_PREV = "missing prevResult from earlier plugin"


def addresses(result: Result) -> list[IPAddress]:
    """Every address of prevResult's `ips` (the reference takes them all), without repeats, in order."""
    return list(dict.fromkeys(ipc.address.ip for ipc in result.ips))


def bridge_name(result: Result, policy: str) -> str | None:
    """The bridge an ingress policy isolates: prevResult's first interface (the bridge plugin lists the bridge
    first); None for the open policy. Errors (the reference's texts) are raised before anything is written."""
    if policy == "open":
        return None
    if not result.interfaces:
        raise ConfigError(f'interface needs to be set for ingress policy "{policy}", make sure to chain '
                          '"firewall" plugin with "bridge"')
    name = result.interfaces[0].name
    if not name:
        raise ConfigError("got empty bridge name")
    problem = interface_name_problem(name)
    if problem is None and (name[0] in "-!+" or any(c in name for c in "\"'\\") or not name.isprintable()):
        problem = "must not start with '-', '!' or '+', nor hold quotes, backslashes or control characters"
    if problem:   # it becomes an argument of iptables-restore and nft scripts
        raise ConfigError(f"invalid bridge name {describe(name)} at prevResult.interfaces[0].name: {problem}")
    return name
