"""Pure planning: gateways and default routes from the IPAM result, and the final result's shape.

The reference's calcGateways mutates the IPAM result; `gateways()` returns a new Result instead.
"""
from __future__ import annotations

from common.config import IPInterface
from common.ip import ip_interface
from common.record import field, record, replace
from common.types import DNS, Interface, IPConfig, Result, Route

CONTAINER_INDEX = 2   # interfaces = [bridge, host veth, container veth]: every IP is on the container veth
_DEFAULT = {4: ip_interface("0.0.0.0/0"), 6: ip_interface("::/0")}


@record(frozen=True)
class Gateways:
    result: Result                                  # ips pointing at the container, gateways, default routes
    v4: tuple[IPInterface, ...] = ()                # addresses to put on the bridge (gateway/prefix)
    v6: tuple[IPInterface, ...] = ()

    def by_family(self) -> tuple[tuple[int, tuple[IPInterface, ...]], ...]:
        return (4, self.v4), (6, self.v6)


def gateway_ip(address: IPInterface) -> IPInterface:
    """network + 1, with the address's prefix (the reference's calcGatewayIP)."""
    network = address.network
    return IPInterface(network.network_address + 1, network.prefixlen)


def gateways(ipam: Result, *, is_gateway: bool, is_default_gateway: bool) -> Gateways:
    """Set every IP's interface to the container veth, fill missing gateways (isGateway), add one default
    route per family via the first gateway of that family unless IPAM returned a default route with a gw."""
    ips: list[IPConfig] = []
    routes = list(ipam.routes)
    gws: dict[int, list[IPInterface]] = {4: [], 6: []}
    has_default = {v: any(r.gw is not None and r.dst == _DEFAULT[v] for r in ipam.routes) for v in (4, 6)}
    for ipc in ipam.ips:
        gateway = ipc.gateway
        if gateway is None and is_gateway:
            gateway = gateway_ip(ipc.address).ip
        ips.append(replace(ipc, gateway=gateway, interface=CONTAINER_INDEX))
        if is_default_gateway and not has_default[ipc.version]:
            routes.append(Route(dst=_DEFAULT[ipc.version], gw=gateway))
            has_default[ipc.version] = True
        if is_gateway:
            gws[ipc.version].append(ip_interface(f"{gateway}/{ipc.address.network.prefixlen}"))
    result = replace(ipam, ips=tuple(ips), routes=tuple(routes))
    return Gateways(result=result, v4=tuple(gws[4]), v6=tuple(gws[6]))


@record(frozen=True)
class Interfaces:
    bridge: Interface
    host: Interface
    container: Interface
    extra: tuple[Interface, ...] = field(default=())   # the `<bridge>.<vlan>` gateway veth, when created


def assemble(ipam: Result, links: Interfaces, *, dns: DNS) -> Result:
    """The ADD result: [bridge, host veth, container veth] (+ vlan gateway), IPs of the container, and the
    configured `dns` when set, else IPAM's."""
    interfaces = (links.bridge, links.host, links.container, *links.extra)
    return Result(interfaces=interfaces, ips=ipam.ips, routes=ipam.routes,
                  dns=ipam.dns if dns.is_empty() else dns)


def route_gateway(route: Route, ips: tuple[IPConfig, ...]) -> Route:
    """A route without gw goes via the gateway of the first IP of its family that has one (ConfigureIface)."""
    if route.gw is not None:
        return route
    gws = [i.gateway for i in ips if i.version == route.dst.version and i.gateway is not None]
    return replace(route, gw=gws[0]) if gws else route
