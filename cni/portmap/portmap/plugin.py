"""The portmap plugin's verbs: an imperative shell around pure config parsing and rule builders.

Every input is validated before the first firewall command; a config without mappings (or a container without
addresses) runs no command at all, not even the backend probe.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings

from common.config import IPInterface
from common.errors import ConfigError
from common.skel import Plugin, Request
from common.timeline import mark
from common.types import Result

from . import config
from .config import PortmapConf
from .host import Host, enable_route_localnet, flush_udp_conntrack, locked

if TYPE_CHECKING:
    from collections.abc import Callable, Collection
    from typing import Any, Protocol

    class Driver(Protocol):
        """portmap's verbs over one backend (backend_iptables, backend_nftables: modules of these functions)."""

        def add(self, backend: Any, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None: ...

        def delete(self, backend: Any, network: str, container_id: str,
                   addresses: Collection[str] | None) -> None: ...

        def gc(self, backend: Any, network: str, valid: frozenset[str]) -> None: ...

        def check(self, backend: Any, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None: ...


def add(req: Request, host: Host) -> Result:
    prev, conf, ips = _mapped(req)
    if not ips:
        return prev
    if conf.snat and ips[0].version == 4:
        enable_route_localnet(host, str(ips[0].ip))
    mark("portmap: config read")
    with locked(host):
        driver, backend = _driver(host, conf.backend, lambda: _add_read_chains(conf, req.container_id))
        driver.add(backend, conf, req.container_id, ips)
    mark("portmap: rules written")
    flush_udp_conntrack(host, _udp_ports(conf), [ip.version for ip in ips])
    return prev


def delete(req: Request, host: Host) -> None:
    if not config.has_mappings(req.conf):
        return None
    try:
        conf = config.parse(req.conf)
    except ConfigError:   # DEL is best-effort: remove whatever this container has, by name and ID
        conf = PortmapConf(name=req.conf.name)
    ips = _del_ips(req)
    with locked(host):
        driver, backend = _driver(host, conf.backend, lambda: _delete_read_chains(conf.name, req.container_id))
        driver.delete(backend, conf.name, req.container_id, [str(ip.ip) for ip in ips] or None)
    flush_udp_conntrack(host, _udp_ports(conf), [4, 6], replies_from=ips)
    return None


def check(req: Request, host: Host) -> None:
    _, conf, ips = _mapped(req)
    if not ips:
        return None
    driver, backend = _driver(host, conf.backend, lambda: _add_read_chains(conf, req.container_id))
    driver.check(backend, conf, req.container_id, ips)
    return None


def gc(req: Request, host: Host) -> None:
    conf = config.parse(req.conf)
    valid = config.valid_container_ids(req.conf)
    with locked(host):
        driver, backend = _driver(host, conf.backend, lambda: None)
        driver.gc(backend, conf.name, valid)
    return None


# --- helpers ----------------------------------------------------------------------------------------------

def _mapped(req: Request) -> tuple[Result, PortmapConf, list[IPInterface]]:
    """prevResult, the config, and the container addresses that get mappings (none without mappings)."""
    prev = _prev_result(req)
    conf = config.parse(req.conf)
    return prev, conf, _container_ips(prev, req.ifname) if conf.mappings else []


def _prev_result(req: Request) -> Result:
    prev = req.prev_result()
    if prev is None:
        raise ConfigError("missing prevResult: portmap must be called as a chained plugin")
    return prev


def _container_ips(prev: Result, ifname: str) -> list[IPInterface]:
    return [ip for ip in config.container_ips(prev, ifname) if ip is not None]


NEEDED_BY = 'portmap (config key "backend"; unset: iptables when usable, else nftables)'


def _driver(host: Host, configured: str | None, chains: Callable[[], list[str] | None]) -> tuple[Driver, Any]:
    """The backend, chosen once for the operation (configured, else iptables if the nat chains the verb needs
    can be read: that read is kept for the verb), and portmap's verbs over it."""
    from common.firewall.backend import Iptables, Nftables, choose
    backend = choose(configured, iptables_backend=Iptables(host.programs, needed_by=NEEDED_BY),
                     nftables_backend=Nftables(host.programs, needed_by=NEEDED_BY),
                     probe=lambda ipt: ipt.readable("nat", 4, chains()))
    if backend.name == "iptables":   # imported only when chosen: each costs start-up
        from . import backend_iptables as driver
    else:
        from . import backend_nftables as driver  # type: ignore[no-redef]
    return driver, backend


def _add_read_chains(conf: PortmapConf, container_id: str) -> list[str]:
    """rules_iptables.add_read_chains, imported only when iptables is probed."""
    from . import rules_iptables
    return rules_iptables.add_read_chains(conf, container_id)


def _delete_read_chains(network: str, container_id: str) -> list[str]:
    """rules_iptables.delete_read_chains, imported only when iptables is probed."""
    from . import rules_iptables
    return rules_iptables.delete_read_chains(network, container_id)


def _udp_ports(conf: PortmapConf) -> list[int]:
    return [m.host_port for m in conf.mappings if m.protocol == "udp"]


def _del_ips(req: Request) -> list[IPInterface]:
    """DEL: prevResult's container addresses; [] when prevResult is absent or unusable (then nothing tells
    this network's container address apart from another network's)."""
    try:
        prev = req.prev_result()
    except ConfigError:
        prev = None
    return _container_ips(prev, req.ifname) if prev is not None else []


def make_plugin(host: Host | None = None) -> Plugin:
    """The plugin with its effects behind `host` (tests inject a fake runner and temporary paths)."""
    h = host or Host()
    return Plugin(name="portmap", handlers={
        "ADD": lambda req: add(req, h), "DEL": lambda req: delete(req, h),
        "CHECK": lambda req: check(req, h), "GC": lambda req: gc(req, h)})


PLUGIN = make_plugin()
