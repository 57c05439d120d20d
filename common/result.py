"""The only module that knows the result shapes of each CNI version family.

    0.1.0, 0.2.0           {"ip4": {"ip", "gateway", "routes"}, "ip6": {...}, "dns"}
    0.3.0, 0.3.1, 0.4.0    {"interfaces", "ips": [{"version", "interface", "address", "gateway"}], "routes", "dns"}
    1.0.0, 1.1.0           as 0.4.0 without ips[].version; 1.1.0 adds interface mtu/socketPath/pciID and
                           route mtu/advmss/priority/table/scope

`parse(data, version)` reads any of them into a types.Result; `render(result, version)` writes one.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from typing import Any

from . import version as versions
from .config import Node, cidr, ip
from .errors import CniError, Code
from .types import DNS, Interface, IPConfig, Result, Route

_LEGACY = ("0.1.0", "0.2.0")
ROUTE_EXTRAS = ("mtu", "advmss", "priority", "table", "scope")   # 1.1.0 route fields (same names in JSON)


def family(version: str) -> str:
    if version in _LEGACY:
        return "0.2"
    return "0.4" if versions.parse(version) < (1, 0, 0) else "1.x"


# --- parsing (any version -> Result) --------------------------------------------------------------------

def parse(data: Any, version: str, path: str = "prevResult") -> Result:
    node = Node(data, path)
    if family(node.string("cniVersion") or version) == "0.2":
        return _parse_legacy(node)
    return Result(
        interfaces=tuple(_parse_interface(n) for n in node.objects("interfaces")),
        ips=tuple(_parse_ip(n) for n in node.objects("ips")),
        routes=tuple(parse_route(n) for n in node.objects("routes")),
        dns=parse_dns(node.obj("dns")),
    )


def _parse_legacy(node: Node) -> Result:
    ips: list[IPConfig] = []
    routes: list[Route] = []
    for key in ("ip4", "ip6"):
        sub = node.obj(key)
        if sub is None:
            continue
        ips.append(IPConfig(address=sub.required("ip", cidr),
                            gateway=sub.parsed("gateway", ip)))
        routes.extend(parse_route(n) for n in sub.objects("routes"))
    return Result(ips=tuple(ips), routes=tuple(routes), dns=parse_dns(node.obj("dns")))


def _parse_interface(node: Node) -> Interface:
    return Interface(
        name=node.string("name", "") or "",
        mac=node.string("mac", "") or "",
        sandbox=node.string("sandbox", "") or "",
        mtu=node.integer("mtu", 0, minimum=0) or 0,
        socket_path=node.string("socketPath", "") or "",
        pci_id=node.string("pciID", "") or "",
    )


def _parse_ip(node: Node) -> IPConfig:
    address = node.required("address", cidr)
    gateway = node.parsed("gateway", ip)
    if gateway is not None and gateway.version != address.version:
        raise CniError(Code.INVALID_CONFIG, f"gateway {gateway} at {node.at('gateway')} is not of the "
                       f"address family of {address}")
    return IPConfig(address=address, gateway=gateway, interface=node.integer("interface", minimum=0))


def parse_route(node: Node) -> Route:
    extras = {key: node.integer(key) for key in ROUTE_EXTRAS}
    return Route(dst=node.required("dst", cidr), gw=node.parsed("gw", ip), **extras)


def parse_dns(node: Node | None) -> DNS:
    if node is None:
        return DNS()
    return DNS(nameservers=tuple(node.strings("nameservers")), domain=node.string("domain", "") or "",
               search=tuple(node.strings("search")), options=tuple(node.strings("options")))


# --- rendering (Result -> any version) ------------------------------------------------------------------

def render(result: Result, version: str) -> dict[str, Any]:
    fam = family(version)
    if fam == "0.2":
        return _render_legacy(result, version)
    out: dict[str, Any] = {"cniVersion": version}
    if result.interfaces:
        out["interfaces"] = [_render_interface(i, version) for i in result.interfaces]
    if result.ips:
        out["ips"] = [_render_ip(i, with_version=fam == "0.4") for i in result.ips]
    if result.routes:
        out["routes"] = [_render_route(r, extras=version == "1.1.0") for r in result.routes]
    dns = render_dns(result.dns)
    if dns or version != "1.1.0":   # before 1.1.0 the Go types always print "dns": {}
        out["dns"] = dns
    return out


def _render_legacy(result: Result, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"cniVersion": version}
    for ver, key in ((4, "ip4"), (6, "ip6")):
        first = next((i for i in result.ips if i.version == ver), None)
        if first is None:
            continue
        entry: dict[str, Any] = {"ip": str(first.address)}
        if first.gateway is not None:
            entry["gateway"] = str(first.gateway)
        routes = [_render_route(r, extras=False) for r in result.routes if r.dst.version == ver]
        if routes:
            entry["routes"] = routes
        out[key] = entry
    if len(out) == 1:
        raise CniError(Code.INCOMPATIBLE_VERSION, f"cannot convert result to version {version}: "
                       "no valid IP addresses")
    out["dns"] = render_dns(result.dns)
    return out


def _render_interface(iface: Interface, version: str) -> dict[str, Any]:
    out: dict[str, Any] = {"name": iface.name}
    if iface.mac:
        out["mac"] = iface.mac
    if version == "1.1.0":
        if iface.mtu:
            out["mtu"] = iface.mtu
        if iface.socket_path:
            out["socketPath"] = iface.socket_path
        if iface.pci_id:
            out["pciID"] = iface.pci_id
    if iface.sandbox:
        out["sandbox"] = iface.sandbox
    return out


def _render_ip(ipc: IPConfig, *, with_version: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if with_version:
        out["version"] = str(ipc.version)
    if ipc.interface is not None:
        out["interface"] = ipc.interface
    out["address"] = str(ipc.address)
    if ipc.gateway is not None:
        out["gateway"] = str(ipc.gateway)
    return out


def _render_route(route: Route, *, extras: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"dst": str(route.dst)}
    if route.gw is not None:
        out["gw"] = str(route.gw)
    if extras:
        for key in ROUTE_EXTRAS:
            value = getattr(route, key)
            if value is not None:
                out[key] = value
    return out


def render_dns(dns: DNS) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if dns.nameservers:
        out["nameservers"] = list(dns.nameservers)
    if dns.domain:
        out["domain"] = dns.domain
    if dns.search:
        out["search"] = list(dns.search)
    if dns.options:
        out["options"] = list(dns.options)
    return out


def strip_for_ipam(result: Result) -> Result:
    """IPAM results carry no interfaces and no ips[].interface (SPEC §5)."""
    return Result(ips=tuple(IPConfig(address=i.address, gateway=i.gateway) for i in result.ips),
                  routes=result.routes, dns=result.dns)


__all__ = ["parse", "parse_dns", "parse_route", "render", "render_dns", "family", "strip_for_ipam"]
