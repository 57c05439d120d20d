"""The CNI result in its newest shape (spec 1.1.0), as frozen values. Only result.py knows older shapes."""
from __future__ import annotations

from .config import IPAddress, IPInterface
from .record import field, record


@record(frozen=True)
class Interface:
    name: str
    mac: str = ""
    sandbox: str = ""
    mtu: int = 0            # 1.1.0
    socket_path: str = ""   # 1.1.0
    pci_id: str = ""        # 1.1.0


@record(frozen=True)
class IPConfig:
    address: IPInterface            # keeps host bits: 10.0.0.5/24
    gateway: IPAddress | None = None
    interface: int | None = None    # index into Result.interfaces

    @property
    def version(self) -> int:
        return self.address.version


@record(frozen=True)
class Route:
    dst: IPInterface                # kept as written (Go's types.ParseCIDR keeps host bits too)
    gw: IPAddress | None = None
    mtu: int | None = None          # the route fields below are 1.1.0
    advmss: int | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


@record(frozen=True)
class DNS:
    nameservers: tuple[str, ...] = ()
    domain: str = ""
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def is_empty(self) -> bool:
        return not (self.nameservers or self.domain or self.search or self.options)


@record(frozen=True)
class Result:
    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: DNS = field(default_factory=DNS)
