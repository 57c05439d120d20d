"""The firewall plugin's verbs: an imperative shell around pure config parsing and rule builders.

ADD: the config (strict: typos, an unknown backend or ingress policy are errors here), prevResult's addresses and
bridge, then under the lock: the record (host.py), the rules; a failed write removes what it added. DEL and GC
are lenient and remove only what is there; shared chains and jumps stay (other pods, other implementations).
STATUS: code 50 when the chosen backend's tools are missing. A config without addresses runs no program.
"""
from __future__ import annotations

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType
    from typing import Any, Protocol

    class Driver(Protocol):
        """The verbs over one backend (backend_iptables, backend_nftables: modules of these functions)."""

        def add(self, backend: Any, conf: FirewallConf, who: Attachment, ips: list[IPAddress],
                bridge: str | None) -> None: ...

        def delete(self, backend: Any, conf: FirewallConf, who: Attachment, ips: list[IPAddress]) -> None: ...

        def check(self, backend: Any, conf: FirewallConf, who: Attachment, ips: list[IPAddress],
                  bridge: str | None) -> None: ...

        def gc(self, backend: Any, conf: FirewallConf, stale: list[IPAddress], valid: frozenset[tuple[str, str]],
               interfaces: frozenset[str] | None) -> None: ...

        def status(self, backend: Any) -> None: ...

        def installed(self, backend: Any) -> bool: ...

from common.config import IPAddress, valid_attachments
from common.errors import ConfigError, ErrorCollector
from common.record import replace
from common.skel import Plugin, Request
from common.types import Result

from . import config
from . import host as hosts
from .config import Attachment, FirewallConf
from .host import Host, locked


def add(req: Request, host: Host) -> Result:
    conf = config.parse(req.conf)
    host = _records_in(host, conf)
    prev = _prev_result(req)
    ips = config.addresses(prev)
    bridge = config.bridge_name(prev, conf.ingress_policy)
    if not ips:
        return prev
    who = _attachment(req, conf)
    with locked(host):
        driver, backend = _driver(host, conf)
        hosts.write_record(host, who, ips)   # first: a DEL after a crash mid-ADD finds the addresses
        try:
            driver.add(backend, conf, who, ips, bridge)
        except BaseException:
            _undo_add(driver, backend, host, conf, who, ips)
            raise
    return prev


def _undo_add(driver: Driver, backend: Any, host: Host, conf: FirewallConf, who: Attachment,
              ips: list[IPAddress]) -> None:
    """A failed ADD leaves no accept rules (a family written before another failed) and no record."""
    errors = ErrorCollector("undo ADD")
    with errors.step("removing the accept rules"):
        backend.forget()
        driver.delete(backend, conf, who, ips)
    with errors.step("removing the record"):
        hosts.remove_record(host, who)


def delete(req: Request, host: Host) -> None:
    conf = config.parse_lenient(req.conf)
    host = _records_in(host, conf)
    who = _attachment(req, conf)
    ips = list(dict.fromkeys(_del_addresses(req) + hosts.read_record(host, who)))
    if conf.backend == "firewalld" or not ips:   # nothing of ours can be there: ADD refused it, or had no address
        hosts.remove_record(host, who)
        return None
    with locked(host):
        driver, backend = _driver(host, conf)
        if driver.installed(backend):   # else no rule of ours can exist: DEL succeeds (after a failed ADD)
            driver.delete(backend, conf, who, ips)
        hosts.remove_record(host, who)
    return None


def check(req: Request, host: Host) -> None:
    conf = config.parse(req.conf)
    prev = _prev_result(req)
    ips = config.addresses(prev)
    bridge = config.bridge_name(prev, conf.ingress_policy)
    if not ips:
        return None
    driver, backend = _driver(host, conf)
    driver.check(backend, conf, _attachment(req, conf), ips, bridge)
    return None


def gc(req: Request, host: Host) -> None:
    conf = config.parse_lenient(req.conf)
    host = _records_in(host, conf)
    valid = valid_attachments(req.conf.node)
    if conf.backend == "firewalld":
        return None
    keep_names = {hosts.record_name(cid, ifname) for cid, ifname in valid}
    with locked(host):
        found = hosts.records(host)
        stale = [key for key in found if key[0] == conf.name and key[1] not in keep_names]
        held = {ip for key, ips in found.items() if key not in stale for ip in ips}
        stale_ips = list(dict.fromkeys(ip for key in stale for ip in found[key] if ip not in held))
        driver, backend = _driver(host, conf)
        if driver.installed(backend):
            driver.gc(backend, conf, stale_ips, valid, hosts.interfaces(host))
        for network, name in stale:
            hosts.remove_named(host, network, name)
    return None


def status(req: Request, host: Host) -> None:
    conf = config.parse(req.conf)
    driver, backend = _driver(host, conf)
    driver.status(backend)
    return None


# --- helpers ----------------------------------------------------------------------------------------------

def _records_in(host: Host, conf: FirewallConf) -> Host:
    """The host with the config's `dataDir` (when given) as the records' directory."""
    if conf.data_dir is None or conf.data_dir == host.data_dir:
        return host
    return replace(host, data_dir=conf.data_dir)


def _prev_result(req: Request) -> Result:
    prev = req.prev_result()
    if prev is None:
        raise ConfigError(config.MISSING_PREV)
    return prev


def _attachment(req: Request, conf: FirewallConf) -> Attachment:
    return Attachment(network=conf.name, container_id=req.container_id, ifname=req.ifname)


def _del_addresses(req: Request) -> list[IPAddress]:
    """DEL: prevResult's addresses; [] when prevResult is absent or unusable (then the record tells)."""
    try:
        prev = req.prev_result()
    except ConfigError:
        prev = None
    return config.addresses(prev) if prev is not None else []


def _iptables_driver() -> ModuleType:
    from . import backend_iptables
    return backend_iptables


def _nftables_driver() -> ModuleType:
    from . import backend_nftables
    return backend_nftables


# The backends by name; each module is imported only when chosen (each costs start-up).
DRIVERS: dict[str, Callable[[], ModuleType]] = {"iptables": _iptables_driver, "nftables": _nftables_driver}
NEEDED_BY = 'firewall (config key "backend"; unset: iptables when usable, else nftables)'


def _driver(host: Host, conf: FirewallConf) -> tuple[Driver, Any]:
    """The backend, chosen once for the operation (configured, else iptables if the filter chains the verbs
    read can be read: that read is kept for the verb), and the verbs over it."""
    from common.firewall.backend import Iptables, Nftables, choose

    from .rules_iptables import read_chains
    backend = choose(conf.backend, iptables_backend=Iptables(host.programs, needed_by=NEEDED_BY),
                     nftables_backend=Nftables(host.programs, needed_by=NEEDED_BY),
                     probe=lambda ipt: ipt.readable("filter", 4, read_chains(conf)))
    driver: Driver = DRIVERS[backend.name]()
    return driver, backend


def make_plugin(host: Host | None = None) -> Plugin:
    """The plugin with its effects behind `host` (tests inject fake programs and temporary paths)."""
    h = host or Host()
    return Plugin(name="firewall", handlers={
        "ADD": lambda req: add(req, h), "DEL": lambda req: delete(req, h), "CHECK": lambda req: check(req, h),
        "GC": lambda req: gc(req, h), "STATUS": lambda req: status(req, h)})


PLUGIN = make_plugin()
