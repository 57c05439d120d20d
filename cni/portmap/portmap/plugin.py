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
from .host import Host, enable_route_localnet, flush_udp_conntrack, locked, start_route_lookup

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
    lookup = start_route_lookup(host, str(ips[0].ip)) if conf.snat and ips[0].version == 4 else None
    mark("portmap: config read")
    try:
        with locked(host), Backends(host) as backends:   # leaving it reaps a prefetched read
            _prefetch_add(backends, conf, req.container_id, ips)
            if lookup is not None:
                enable_route_localnet(host, lookup)
            driver, backend = _driver(backends, conf.backend, lambda: _add_read_chains(conf, req.container_id))
            driver.add(backend, conf, req.container_id, ips)
    finally:
        if lookup is not None:
            lookup.close()
    mark("portmap: rules written")
    flush_udp_conntrack(host, _udp_ports(conf), [ip.version for ip in ips])
    return prev


def _prefetch_add(backends: Backends, conf: PortmapConf, container_id: str, ips: list[IPInterface]) -> None:
    """Start the reads ADD will make (common.firewall.backend, "Prefetch"): they run while the route lookup of
    route_localnet finishes. Started under the portmap lock, as the reads were, so no other pycni portmap writes
    between them and our write: they are as fresh as before. A writer that takes no lock (a Go portmap) could
    already write between our read and our write; the reads still take as long, so that window is no wider
    (the route lookup now runs beside them, not before), and `-N` of a shared chain it created meanwhile still
    fails the restore and is settled by one fresh read (backend_iptables)."""
    families = dict.fromkeys(ip.version for ip in ips)
    if conf.backend == "nftables":
        from . import rules_nftables
        for family in families:
            backends.nftables.prefetch(rules_nftables.TABLE, rules_nftables.family_name(family))
        return
    chains = _add_read_chains(conf, container_id)
    for family in ({4: None, **families} if conf.backend is None else families):   # the probe reads family 4
        backends.iptables.prefetch("nat", family, chains)


def delete(req: Request, host: Host) -> None:
    if not config.has_mappings(req.conf):
        return None
    try:
        conf = config.parse(req.conf)
    except ConfigError:   # DEL is best-effort: remove whatever this container has, by name and ID
        conf = PortmapConf(name=req.conf.name)
    ips = _del_ips(req)
    with locked(host):
        driver, backend = _driver(Backends(host), conf.backend,
                                  lambda: _delete_read_chains(conf.name, req.container_id))
        driver.delete(backend, conf.name, req.container_id, [str(ip.ip) for ip in ips] or None)
    flush_udp_conntrack(host, _udp_ports(conf), [4, 6], replies_from=ips)
    return None


def check(req: Request, host: Host) -> None:
    _, conf, ips = _mapped(req)
    if not ips:
        return None
    driver, backend = _driver(Backends(host), conf.backend, lambda: _check_read_chains(conf, req.container_id))
    driver.check(backend, conf, req.container_id, ips)
    return None


def gc(req: Request, host: Host) -> None:
    conf = config.parse(req.conf)
    valid = config.valid_container_ids(req.conf)
    with locked(host):
        driver, backend = _driver(Backends(host), conf.backend, lambda: None)
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


class Backends:
    """The two firewall backends of one operation, one of which _driver chooses. A context manager: leaving it
    reaps whatever either prefetched and did not collect."""

    def __init__(self, host: Host) -> None:
        from common.firewall.backend import Iptables, Nftables
        self.iptables = Iptables(host.programs, needed_by=NEEDED_BY)
        self.nftables = Nftables(host.programs, needed_by=NEEDED_BY)

    def __enter__(self) -> Backends:
        return self

    def __exit__(self, *_: object) -> None:
        self.iptables.close()
        self.nftables.close()


def _driver(backends: Backends, configured: str | None,
            chains: Callable[[], list[str] | None]) -> tuple[Driver, Any]:
    """The backend, chosen once for the operation (configured, else iptables if the nat chains the verb needs
    can be read: that read is kept for the verb), and portmap's verbs over it."""
    from common.firewall.backend import choose
    backend = choose(configured, iptables_backend=backends.iptables, nftables_backend=backends.nftables,
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


def _check_read_chains(conf: PortmapConf, container_id: str) -> list[str]:
    """rules_iptables.check_read_chains, imported only when iptables is probed."""
    from . import rules_iptables
    return rules_iptables.check_read_chains(conf, container_id)


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
