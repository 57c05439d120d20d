"""The bridge plugin's verbs: an imperative shell of named steps over pure plans (plan, masq, spoofchk).

A failed ADD unwinds, in reverse order, what it created for this container (common.scoped.Undo callbacks): the veth,
the IPAM allocation (IPAM DEL), spoof-check and masquerade rules. The bridge and its addresses are shared by
all containers and are kept, as in the reference.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings

from common.config import valid_attachments
from common.errors import CniError, Code, ConfigError, ErrorCollector
from common.scoped import Undo
from common.skel import Plugin, Request
from common.timeline import mark
from common.types import Interface, Result

from .host import Host

if TYPE_CHECKING:
    from collections.abc import Callable

    from common.netlink import Handle, Link

    from .config import BridgeConf, TeardownConf
    from .plan import Gateways
    from .rules import Rules


PORT_UP_TIMEOUT = 2.55   # the reference polls 0/50/500/1000/1000 ms before "bridge port in error state"


def load(request: Request) -> BridgeConf:
    from . import config  # imported per verb: VERSION and the protocol errors need none of this
    return config.parse(request.conf, request.cni_args(config.KNOWN_CNI_ARGS))


def load_teardown(request: Request) -> TeardownConf:
    """DEL and GC: only what they need, and no key refused (config.TeardownConf); CNI_ARGS only held a MAC."""
    from . import config
    return config.parse_teardown(request.conf)


def add(request: Request, effects: Host) -> Result:
    from .rules import Rules, likely_families
    conf = load(request)
    with Rules(effects.programs) as rules:     # leaving it reaps a prefetched read whatever happened
        if conf.ip_masq and conf.layer3:       # the reads run during the netlink and IPAM work below
            rules.prefetch_masq(conf=conf, container_id=request.container_id, ifname=request.ifname,
                                families=likely_families(request.conf.node.get("ipam")))
        with effects.open_node() as host, effects.open_pod(request.netns) as cont:
            with Undo() as undo:   # inside: the undo callbacks still need both handles
                result = _add(request, conf, host=host, cont=cont, undo=undo, effects=effects, rules=rules)
                undo.pop_all()
    return result


def _add(request: Request, conf: BridgeConf, *, host: Handle, cont: Handle, undo: Undo,
         effects: Host, rules: Rules) -> Result:
    from . import links, plan
    bridge = links.ensure_bridge(host, conf)
    if cont.link(request.ifname) is not None:
        raise CniError(Code.INTERNAL, f"container veth name {request.ifname!r} already exists in "
                       f"{request.netns}")
    port = links.create_veth(host, peer=request.ifname, peer_netns=request.netns, mtu=conf.mtu, mac=conf.mac)
    undo.callback(_quietly, host.delete_link, port.index)
    links.attach_port(host, port, bridge, links.port_options(conf))
    inner = cont.link(request.ifname)
    if inner is None:
        raise CniError(Code.INTERNAL, f"container interface {request.ifname!r} vanished during ADD")
    mark("bridge: bridge and veth ready")
    if conf.macspoofchk:
        undo.callback(_quietly, rules.spoofchk_setup(container_id=request.container_id, ifname=request.ifname,
                                                    host_veth=port.name, mac=inner.mac))
    result: Result = Result()
    extra: tuple[Interface, ...] = ()
    if conf.layer3:
        result, extra = _add_layer3(request, conf, host=host, cont=cont, bridge=bridge, undo=undo,
                                    effects=effects, rules=rules)
    elif not conf.disable_container_interface:
        cont.set_up(inner.index)
    if not conf.disable_container_interface:
        _wait_port_up(host, port.index)
        mark("bridge: port up")
    ifaces = plan.Interfaces(
        bridge=Interface(name=bridge.name, mac=_mac(host, bridge.index)),
        host=Interface(name=port.name, mac=_mac(host, port.index)),
        container=Interface(name=request.ifname, mac=inner.mac, sandbox=request.netns), extra=extra)
    return plan.assemble(result, ifaces, dns=conf.dns)


def _add_layer3(request: Request, conf: BridgeConf, *, host: Handle, cont: Handle, bridge: Link,
                undo: Undo, effects: Host, rules: Rules) -> tuple[Result, tuple[Interface, ...]]:
    """IPAM, container addresses and routes, gateway addresses, masquerading."""
    from common import ipam

    from . import container, plan
    allocated = ipam.delegate("ADD", request, invoke=effects.invoke)
    undo.callback(_quietly, lambda: ipam.delegate("DEL", request, invoke=effects.invoke))
    if allocated is None or not allocated.ips:
        raise CniError(Code.INTERNAL, "IPAM plugin returned missing IP config")
    gws = plan.gateways(allocated, is_gateway=conf.is_gateway, is_default_gateway=conf.is_default_gateway)
    container.set_sysctls(request.netns, request.ifname, enable_dad=conf.enable_dad,
                          ipv6=any(i.version == 6 for i in gws.result.ips))
    link = cont.link(request.ifname)
    if link is None:
        raise CniError(Code.INTERNAL, f"container interface {request.ifname!r} vanished during ADD")
    container.configure(cont, link.index, gws.result)
    extra = _gateways(host, conf, bridge, gws) if conf.is_gateway else ()
    mark("bridge: addresses and routes set")
    if conf.ip_masq:
        ips = [i.address for i in gws.result.ips]
        undo.callback(_quietly, rules.masq_setup(ips, conf=conf, container_id=request.container_id,
                                                 ifname=request.ifname))
        mark("bridge: masquerade rules written")
    return gws.result, extra


def _gateways(host: Handle, conf: BridgeConf, bridge: Link, gws: Gateways) -> tuple[Interface, ...]:
    """Gateway addresses on the bridge (or on `<bridge>.<vlan>` with vlan) and forwarding per family."""
    from . import links
    target = bridge
    extra: tuple[Interface, ...] = ()
    if conf.vlan and (gws.v4 or gws.v6):
        target = links.ensure_vlan_gateway(host, conf, bridge)
        extra = (Interface(name=target.name, mac=target.mac),)
    for family, addresses in gws.by_family():
        for address in addresses:
            current = host.link_by_index(target.index)     # re-read: its MAC is pinned from the current one
            if current is None:
                raise CniError(Code.INTERNAL, f"{target.name!r} vanished during ADD")
            links.ensure_address(host, current, address, force=conf.force_address)
        if addresses:
            links.enable_forwarding(family)
    return extra


def _wait_port_up(host: Handle, index: int) -> None:
    state = host.wait_oper_up(index, timeout=PORT_UP_TIMEOUT)
    if state != "UP":
        raise CniError(Code.INTERNAL, f"bridge port in error state: {state}")


def _mac(host: Handle, index: int) -> str:
    link = host.link_by_index(index)
    return link.mac if link else ""


def _quietly(func: Callable[..., object], *args: object) -> None:
    """Rollback steps must not hide the error that caused the rollback."""
    import sys
    try:
        func(*args)
    except Exception as exc:  # noqa: BLE001 - reported on stderr, the original error is what the runtime sees
        sys.stderr.write(f"bridge: rollback step failed: {exc}\n")


# --- DEL -------------------------------------------------------------------------------------------------

def delete(request: Request, effects: Host) -> None:
    """Best effort: every step runs; missing netns, links or rules count as already removed. The interface is
    removed on a second thread (common/background.py) while the other steps run: none of them needs it gone."""
    from common import background, ipam

    from . import container
    from .rules import Rules
    conf = load_teardown(request)
    rules = Rules(effects.programs)
    errors = ErrorCollector("DEL")
    removal = background.start(container.delete_interface, request.netns, request.ifname, effects.open_pod) \
        if request.netns else None
    if conf.layer3:
        with errors.step("IPAM DEL"):
            ipam.delegate("DEL", request, invoke=effects.invoke)
    if conf.macspoofchk:
        with errors.step("removing spoof-check rules"):
            rules.spoofchk_teardown(container_id=request.container_id, ifname=request.ifname)
    if conf.ip_masq:
        with errors.step("removing masquerade rules"):
            rules.masq_teardown(conf.name, container_id=request.container_id, ifname=request.ifname,
                                families=_families(request))
    if removal is not None:
        with errors.step("removing container interface"):
            removal.wait()
    errors.raise_if_any()


def _families(request: Request) -> tuple[int, ...]:
    """Families to look at in iptables: those of prevResult's IPs, both when it has none."""
    try:
        prev = request.prev_result()
    except CniError:
        prev = None
    found = tuple(sorted({ipc.version for ipc in prev.ips})) if prev else ()
    return found or (4, 6)


# --- CHECK, GC, STATUS --------------------------------------------------------------------------------------

def check(request: Request, effects: Host) -> None:
    from common import ipam

    from . import check as checks
    conf = load(request)
    if conf.layer3:
        ipam.delegate("CHECK", request, invoke=effects.invoke)
    prev = request.prev_result()
    if prev is None:
        raise ConfigError("CHECK requires prevResult: Required prevResult missing")
    checks.verify(request, conf, prev, effects)


def gc(request: Request, effects: Host) -> None:
    from .rules import Rules
    conf = load_teardown(request)
    valid = valid_attachments(request.conf.node)  # a config error (code 7) before anything is changed
    errors = ErrorCollector("GC")
    with errors.step("removing stale masquerade rules"):
        Rules(effects.programs).masq_gc(conf.name, valid)
    if conf.layer3:
        with errors.step("IPAM GC"):
            _delegate_optional("GC", request, effects)
    errors.raise_if_any()


def status(request: Request, effects: Host) -> None:
    """Ready when ADD would accept the config, the firewall programs ipMasq and macspoofchk need are there,
    and the IPAM plugin is on CNI_PATH and ready (as far as it knows STATUS)."""
    conf = load(request)
    _firewall_programs(conf)
    if conf.layer3:
        _delegate_optional("STATUS", request, effects)


def _delegate_optional(command: str, request: Request, effects: Host) -> None:
    """GC or STATUS to the IPAM plugin, as the spec says. A plugin that predates spec 1.1.0 has neither verb,
    and its answer is no verdict: Go's 1.1.1 host-local says code 3 "missing containerID" without
    CNI_CONTAINERID (as the spec sends GC and STATUS), else code 4 "interface name is empty" or "unknown
    CNI_COMMAND: GC". So a failure counts only when the plugin's VERSION lists 1.1.0 (or cannot be read)."""
    from common import ipam
    try:
        ipam.delegate(command, request, invoke=effects.invoke)
    except CniError:
        supported = ipam.supported_versions(request, invoke=effects.invoke)
        if supported is None or "1.1.0" in supported:
            raise


def _firewall_programs(conf: BridgeConf) -> None:
    """STATUS: ADD would fail for want of iptables or nft (looked up as exec looks them up; nothing is run)."""
    import os

    from common.exec import DEFAULT_PATH, find_program
    path = os.environ.get("PATH", DEFAULT_PATH)
    have = {"iptables": all(find_program(p, path) for p in ("iptables-save", "iptables-restore")),
            "nftables": find_program("nft", path) is not None}
    backend = conf.ip_masq_backend
    if conf.ip_masq and not (have[backend] if backend else any(have.values())):
        tools = {"iptables": "iptables-save and iptables-restore", "nftables": "nft"}
        raise CniError(Code.NOT_AVAILABLE, f"ipMasq needs {tools.get(backend or '', ' or '.join(tools.values()))}"
                       f": not found in PATH {path}")
    if conf.macspoofchk and not have["nftables"]:
        raise CniError(Code.NOT_AVAILABLE, f"macspoofchk needs nft: not found in PATH {path}")


def make_plugin(effects: Host | None = None) -> Plugin:
    """The plugin with its effects behind `effects` (tests inject fakes)."""
    h = effects or Host()
    return Plugin(name="bridge", handlers={
        "ADD": lambda req: add(req, h), "DEL": lambda req: delete(req, h), "CHECK": lambda req: check(req, h),
        "GC": lambda req: gc(req, h), "STATUS": lambda req: status(req, h)})


PLUGIN = make_plugin()
