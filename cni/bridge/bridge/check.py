"""CHECK: the state prevResult describes is still there (reference cmdCheck), plus the masquerade rules."""
from __future__ import annotations

from common.config import same_text
from common.errors import CniError, Code
from common.netlink import Handle, Link
from common.skel import Request
from common.types import Interface, Result

from .config import BridgeConf
from .host import Host
from .plan import CONTAINER_INDEX, route_gateway
from .rules import Rules


def fail(msg: str) -> CniError:
    return CniError(Code.INTERNAL, msg)


def verify(request: Request, conf: BridgeConf, prev: Result, effects: Host) -> None:
    bridge_if = next((i for i in prev.interfaces if i.name == conf.bridge and not i.sandbox), None)
    cont_if = next((i for i in prev.interfaces
                    if same_text(i.name, request.ifname) and same_text(i.sandbox, request.netns)), None)
    if bridge_if is None:
        raise fail(f"prevResult has no interface for bridge {conf.bridge!r}")
    if cont_if is None:
        raise fail(f"prevResult has no interface {request.ifname!r} with sandbox {request.netns!r}")
    with effects.open_node() as host, effects.open_pod(request.netns) as cont:
        bridge = _bridge(host, bridge_if, conf)
        inner = _container_link(cont, cont_if, request.ifname)
        _host_veth(host, prev.interfaces, bridge=bridge, inner=inner)
        _addresses(cont, inner, prev)
        _routes(cont, prev)
    if conf.ip_masq and conf.layer3:
        ips = [i.address for i in prev.ips if i.interface in (None, CONTAINER_INDEX)]
        missing = Rules(effects.programs).masq_missing(ips, conf=conf, container_id=request.container_id,
                                                       ifname=request.ifname)
        if missing:
            raise fail("masquerade rules missing: " + "; ".join(missing))


def _bridge(host: Handle, iface: Interface, conf: BridgeConf) -> Link:
    link = host.link(iface.name)
    if link is None:
        raise fail(f"CNI created bridge {iface.name!r} in host namespace was not found")
    if link.kind != "bridge":
        raise fail(f"interface {iface.name!r} is a {link.kind or 'device'}, not a bridge")
    if iface.mac and iface.mac != link.mac:
        raise fail(f"bridge {iface.name!r} MAC {link.mac} doesn't match prevResult {iface.mac}")
    if link.promisc != conf.promisc_mode:
        raise fail(f"bridge {iface.name!r} promiscuous mode is {link.promisc}, configured {conf.promisc_mode}")
    return link


def _container_link(cont: Handle, iface: Interface, ifname: str) -> Link:
    """The link is looked up by CNI_IFNAME, the name's real bytes (prevResult may hold Go's U+FFFD form)."""
    link = cont.link(ifname)
    if link is None:
        raise fail(f"CNI created interface {iface.name!r} in container {iface.sandbox} not found")
    if link.kind != "veth":
        raise fail(f"container interface {iface.name!r} is not a veth ({link.kind or 'device'})")
    if iface.mac and iface.mac != link.mac:
        raise fail(f"container interface {iface.name!r} MAC {link.mac} doesn't match prevResult {iface.mac}")
    return link


def _host_veth(host: Handle, interfaces: tuple[Interface, ...], *, bridge: Link, inner: Link) -> None:
    """The host end: a prevResult interface that is the container veth's peer and a port of the bridge."""
    for iface in interfaces:
        if iface.sandbox or iface.name == bridge.name:
            continue
        link = host.link(iface.name)
        if link and link.kind == "veth" and link.index == inner.peer and link.peer == inner.index:
            if link.master != bridge.index:
                raise fail(f"veth {iface.name!r} is not attached to bridge {bridge.name!r}")
            if iface.mac and iface.mac != link.mac:
                raise fail(f"veth {iface.name!r} MAC {link.mac} doesn't match prevResult {iface.mac}")
            return
    raise fail(f"CNI veth created for bridge {bridge.name!r} was not found (peer of {inner.name!r})")


def _addresses(cont: Handle, inner: Link, prev: Result) -> None:
    present = {address for address, _scope in cont.addresses(inner.index)}
    for ipc in prev.ips:
        if ipc.interface in (None, CONTAINER_INDEX) and ipc.address not in present:
            raise fail(f"address {ipc.address} not found on {inner.name!r}")


def _routes(cont: Handle, prev: Result) -> None:
    """Every prevResult route exists with its gateway (reference ValidateExpectedRoute)."""
    tables = {fam: cont.routes(fam) for fam in {r.dst.version for r in prev.routes}}
    for route in prev.routes:
        route = route_gateway(route, prev.ips)
        found = [r for r in tables[route.dst.version] if r.dst == route.dst.network]
        if not any(route.gw is None or r.gateway == route.gw for r in found):
            raise fail(f"route {route.dst} via {route.gw or '-'} not found in the container")
