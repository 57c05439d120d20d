"""A typed, thin facade over rtnetlink (common.rtnl): the only module that talks netlink.

A `Handle` is one rtnetlink socket bound to one network namespace (the namespace is fixed when the socket is
created, as in netavark's `open_netlink_sockets`). Open the container's with `open_in(path)`: the namespace is
opened by path through common.netns and never created; the socket is created while inside it.
Kernel errors become `LinkError` carrying the errno, so callers can tolerate EEXIST/ENODEV explicitly.
"""
from __future__ import annotations

import errno as errnos
import time

TYPE_CHECKING = False   # `typing` costs a few ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator

from . import netns, rtnl
from .config import IPAddress, IPInterface, IPNetwork
from .errors import CniError, Code
from .ip import from_packed
from .record import record
from .rtnl import IFADDRMSG, IFINFOMSG, RTMSG
from .scoped import contextmanager

IFF_UP = 0x1
IFF_PROMISC = 0x100
IFF_ALLMULTI = 0x200
BRIDGE_VLAN_INFO_PVID = 0x2
BRIDGE_VLAN_INFO_UNTAGGED = 0x4
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")   # IF_OPER_*
NEW = rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL    # create, EEXIST when it exists already


class LinkError(CniError):
    """A netlink request the kernel refused; `errno` says why (EEXIST, ENODEV, EOPNOTSUPP...)."""

    def __init__(self, errno: int, msg: str) -> None:
        super().__init__(Code.INTERNAL, msg)
        self.errno = errno


@record(frozen=True)
class Link:
    index: int
    name: str
    kind: str           # "bridge", "veth", "" for plain devices
    mac: str
    mtu: int
    master: int         # index of the bridge it is a port of, 0 if none
    peer: int           # IFLA_LINK: a veth's peer index (in the peer's namespace), 0 if none
    operstate: str
    flags: int
    txqlen: int = 0     # IFLA_TXQLEN

    @property
    def promisc(self) -> bool:
        return bool(self.flags & IFF_PROMISC)

    @property
    def allmulti(self) -> bool:
        return bool(self.flags & IFF_ALLMULTI)


@record(frozen=True)
class RouteSpec:
    dst: IPNetwork
    gateway: IPAddress | None = None
    priority: int | None = None
    table: int | None = None
    scope: int | None = None


@record(frozen=True)
class RouteEntry:
    dst: IPNetwork
    gateway: IPAddress | None
    oif: int


def open_host() -> Handle:
    """A handle on this process's current namespace."""
    return Handle()


def open_in(path: str) -> Handle:
    """A handle on the namespace at `path`; NetnsGone if it does not exist (never created)."""
    with netns.entered(path):
        return Handle()


def _family(version: int) -> int:
    return rtnl.AF_INET if version == 4 else rtnl.AF_INET6


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", "").replace("-", ""))


class Handle:
    def __init__(self) -> None:
        self._nl = rtnl.Socket()

    def close(self) -> None:
        self._nl.close()

    def __enter__(self) -> Handle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _errors(self, what: str) -> Iterator[None]:
        try:
            yield
        except rtnl.NetlinkError as exc:
            code = exc.errno or 0
            raise LinkError(code, f"{what}: {errnos.errorcode.get(code, code)} ({exc.strerror})") from None

    def _link_request(self, what: str, body: bytes, flags: int = 0) -> None:
        with self._errors(what):
            self._nl.request(rtnl.RTM_NEWLINK, body, flags)

    # --- links --------------------------------------------------------------------------------------

    def link(self, name: str) -> Link | None:
        """The link called `name`, None if there is none (any refusal of the lookup counts as none)."""
        try:
            msgs = self._nl.request(rtnl.RTM_GETLINK, rtnl.ifinfomsg() + rtnl.attr_str(rtnl.IFLA_IFNAME, name))
        except rtnl.NetlinkError:
            return None
        return _link(msgs[0]) if msgs else None

    def link_by_index(self, index: int) -> Link | None:
        try:
            with self._errors(f"reading link {index}"):
                msgs = self._nl.request(rtnl.RTM_GETLINK, rtnl.ifinfomsg(index))
        except LinkError as exc:
            if exc.errno == errnos.ENODEV:
                return None
            raise
        return _link(msgs[0]) if msgs else None

    def add_bridge(self, name: str, *, mtu: int, vlan_filtering: bool) -> None:
        """Create a bridge; LinkError(EEXIST) when a link of that name exists already."""
        info = [rtnl.attr_str(rtnl.IFLA_INFO_KIND, "bridge")]
        if vlan_filtering:
            info.append(rtnl.nest(rtnl.IFLA_INFO_DATA, rtnl.attr_u8(rtnl.IFLA_BR_VLAN_FILTERING, 1)))
        body = [rtnl.ifinfomsg(), rtnl.attr_str(rtnl.IFLA_IFNAME, name)]
        if mtu:
            body.append(rtnl.attr_u32(rtnl.IFLA_MTU, mtu))
        body.append(rtnl.nest(rtnl.IFLA_LINKINFO, *info))
        self._link_request(f"creating bridge {name!r}", b"".join(body), NEW)

    def add_veth(self, name: str, *, peer: str, peer_netns_fd: int, mtu: int, peer_mac: str) -> None:
        """A veth pair: `name` here, `peer` created directly inside the namespace of `peer_netns_fd`."""
        peer_attrs = [rtnl.ifinfomsg(), rtnl.attr_str(rtnl.IFLA_IFNAME, peer),
                      rtnl.attr_u32(rtnl.IFLA_NET_NS_FD, peer_netns_fd)]
        body = [rtnl.ifinfomsg(), rtnl.attr_str(rtnl.IFLA_IFNAME, name)]
        if mtu:
            body.append(rtnl.attr_u32(rtnl.IFLA_MTU, mtu))
            peer_attrs.append(rtnl.attr_u32(rtnl.IFLA_MTU, mtu))
        if peer_mac:
            peer_attrs.append(rtnl.attr(rtnl.IFLA_ADDRESS, _mac(peer_mac)))
        info_data = rtnl.nest(rtnl.IFLA_INFO_DATA, rtnl.nest(rtnl.VETH_INFO_PEER, *peer_attrs))
        body.append(rtnl.nest(rtnl.IFLA_LINKINFO, rtnl.attr_str(rtnl.IFLA_INFO_KIND, "veth"), info_data))
        self._link_request(f"creating veth pair {name!r}/{peer!r}", b"".join(body), NEW)

    def set_up(self, index: int) -> None:
        self._link_request(f"setting link {index} up", rtnl.ifinfomsg(index, flags=IFF_UP, change=IFF_UP))

    def set_down(self, index: int) -> None:
        self._link_request(f"setting link {index} down", rtnl.ifinfomsg(index, flags=0, change=IFF_UP))

    def set_promisc(self, index: int) -> None:
        self._link_request(f"setting link {index} promiscuous",
                           rtnl.ifinfomsg(index, flags=IFF_PROMISC, change=IFF_PROMISC))

    def set_flag(self, index: int, flag: int, on: bool) -> None:
        """Turn one IFF_* flag (IFF_PROMISC, IFF_ALLMULTI) on or off, leaving the others alone."""
        self._link_request(f"setting flag {flag:#x} {'on' if on else 'off'} on link {index}",
                           rtnl.ifinfomsg(index, flags=flag if on else 0, change=flag))

    def set_mtu(self, index: int, mtu: int) -> None:
        self._link_request(f"setting MTU {mtu} on link {index}",
                           rtnl.ifinfomsg(index) + rtnl.attr_u32(rtnl.IFLA_MTU, mtu))

    def set_txqlen(self, index: int, qlen: int) -> None:
        self._link_request(f"setting transmit queue length {qlen} on link {index}",
                           rtnl.ifinfomsg(index) + rtnl.attr_u32(rtnl.IFLA_TXQLEN, qlen))

    def set_mac(self, index: int, mac: str) -> None:
        self._link_request(f"setting MAC {mac} on link {index}",
                           rtnl.ifinfomsg(index) + rtnl.attr(rtnl.IFLA_ADDRESS, _mac(mac)))

    def set_master(self, index: int, master: int) -> None:
        self._link_request(f"attaching link {index} to bridge {master}",
                           rtnl.ifinfomsg(index) + rtnl.attr_u32(rtnl.IFLA_MASTER, master))

    def set_bridge_port(self, index: int, *, hairpin: bool, isolated: bool) -> None:
        """IFLA_BRPORT_MODE (hairpin) and IFLA_BRPORT_ISOLATED of a bridge port (AF_BRIDGE IFLA_PROTINFO)."""
        protinfo = rtnl.nest(rtnl.IFLA_PROTINFO, rtnl.attr_u8(rtnl.IFLA_BRPORT_MODE, int(hairpin)),
                             rtnl.attr_u8(rtnl.IFLA_BRPORT_ISOLATED, int(isolated)), flags=rtnl.NLA_F_NESTED)
        with self._errors(f"setting bridge port options of link {index}"):
            self._nl.request(rtnl.RTM_SETLINK, rtnl.ifinfomsg(index, family=rtnl.AF_BRIDGE) + protinfo)

    def vlans(self, index: int) -> list[int]:
        """The VLAN ids configured on a bridge port (AF_BRIDGE dump with RTEXT_FILTER_BRVLAN)."""
        body = rtnl.ifinfomsg(family=rtnl.AF_BRIDGE) + rtnl.attr_u32(rtnl.IFLA_EXT_MASK, rtnl.RTEXT_FILTER_BRVLAN)
        with self._errors(f"listing VLANs of link {index}"):
            msgs = self._nl.dump(rtnl.RTM_GETLINK, body)
        vids = []
        for msg in msgs:
            if msg.header(IFINFOMSG)[2] != index:
                continue
            for kind, spec in msg.all_attrs(IFINFOMSG):
                if kind == rtnl.IFLA_AF_SPEC:
                    vids += [rtnl.BRIDGE_VLAN_INFO.unpack_from(info)[1] for sub, info in rtnl.iter_attrs(spec)
                             if sub == rtnl.IFLA_BRIDGE_VLAN_INFO]
        return vids

    def vlan(self, command: str, index: int, vid: int, *, pvid_untagged: bool = False) -> None:
        """command "add"/"del"; pvid_untagged makes it the port's access (native) VLAN."""
        flags = BRIDGE_VLAN_INFO_PVID | BRIDGE_VLAN_INFO_UNTAGGED if pvid_untagged else 0
        spec = rtnl.nest(rtnl.IFLA_AF_SPEC,
                         rtnl.attr(rtnl.IFLA_BRIDGE_VLAN_INFO, rtnl.BRIDGE_VLAN_INFO.pack(flags, vid)))
        kind = rtnl.RTM_SETLINK if command == "add" else rtnl.RTM_DELLINK
        with self._errors(f"{command} VLAN {vid} on link {index}"):
            self._nl.request(kind, rtnl.ifinfomsg(index, family=rtnl.AF_BRIDGE) + spec)

    def delete_link(self, index: int) -> None:
        with self._errors(f"deleting link {index}"):
            self._nl.request(rtnl.RTM_DELLINK, rtnl.ifinfomsg(index))

    def wait_oper_up(self, index: int, *, timeout: float) -> str:
        """Poll until the link's operstate is UP or the deadline passes; returns the last state seen."""
        deadline = time.monotonic() + timeout
        delay = 0.002
        while True:
            link = self.link_by_index(index)
            state = link.operstate if link else "GONE"
            if state == "UP" or time.monotonic() >= deadline:
                return state
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    # --- addresses and routes -------------------------------------------------------------------------

    def addresses(self, index: int, family: int = 0) -> list[tuple[IPInterface, int]]:
        """(address/prefix, scope) of every address on the link; family 4, 6 or 0 for both."""
        with self._errors(f"listing addresses of link {index}"):
            msgs = self._nl.dump(rtnl.RTM_GETADDR, rtnl.ifaddrmsg(_family(family) if family else rtnl.AF_UNSPEC))
        out = []
        for msg in msgs:
            fam, prefixlen, _flags, scope, ifindex = msg.header(IFADDRMSG)
            address = msg.attrs(IFADDRMSG).get(rtnl.IFA_ADDRESS)
            if ifindex == index and address and fam in (rtnl.AF_INET, rtnl.AF_INET6):
                out.append((IPInterface(from_packed(address), prefixlen), scope))
        return out

    def add_address(self, index: int, address: IPInterface) -> None:
        with self._errors(f"adding address {address} to link {index}"):
            self._nl.request(rtnl.RTM_NEWADDR, _address_body(index, address) + _broadcast(address), NEW)

    def delete_address(self, index: int, address: IPInterface) -> None:
        with self._errors(f"removing address {address} from link {index}"):
            self._nl.request(rtnl.RTM_DELADDR, _address_body(index, address))

    def add_route(self, index: int, route: RouteSpec) -> None:
        with self._errors(f"adding route {route.dst} via {route.gateway or '-'} dev {index}"):
            self._nl.request(rtnl.RTM_NEWROUTE, _route_body(index, route), NEW)

    def routes(self, family: int) -> list[RouteEntry]:
        """Routes of the main table (single-path: oif taken from RTA_OIF)."""
        with self._errors("listing routes"):
            msgs = self._nl.dump(rtnl.RTM_GETROUTE, rtnl.rtmsg(_family(family)))
        out = []
        for msg in msgs:
            fam, dst_len, _src, _tos, table, *_rest = msg.header(RTMSG)
            attrs = msg.attrs(RTMSG)
            if fam != _family(family) or rtnl.get_u32(attrs, rtnl.RTA_TABLE, table) != rtnl.RT_TABLE_MAIN:
                continue
            zero = bytes(4 if family == 4 else 16)
            dst = IPNetwork(from_packed(attrs.get(rtnl.RTA_DST, zero)), dst_len, strict=False)
            gateway = attrs.get(rtnl.RTA_GATEWAY)
            out.append(RouteEntry(dst, from_packed(gateway) if gateway else None,
                                  rtnl.get_u32(attrs, rtnl.RTA_OIF)))
        return out


def _address_body(index: int, address: IPInterface) -> bytes:
    packed = address.ip.packed
    return (rtnl.ifaddrmsg(_family(address.version), prefixlen=address.network.prefixlen, index=index)
            + rtnl.attr(rtnl.IFA_LOCAL, packed) + rtnl.attr(rtnl.IFA_ADDRESS, packed))


def _broadcast(address: IPInterface) -> bytes:
    """IFA_BROADCAST as Go's netlink.AddrAdd sets it: the subnet's last address, for IPv4 prefixes below /31
    (RFC 3021 point-to-point /31 and /32 have none). `ip addr` then shows `brd`, as podman's tests expect."""
    if address.version != 4 or address.network.prefixlen >= 31:
        return b""
    return rtnl.attr(rtnl.IFA_BROADCAST, address.network.broadcast_address.packed)


def _route_body(index: int, route: RouteSpec) -> bytes:
    """As the Go plugins send it: unicast, proto boot, scope universe unless given, main table unless given
    (RTA_TABLE carries any table; the header byte only holds those below 256)."""
    table = rtnl.RT_TABLE_MAIN if route.table is None else route.table
    header = rtnl.rtmsg(_family(route.dst.version), dst_len=route.dst.prefixlen,
                        table=table if table < 256 else rtnl.RT_TABLE_UNSPEC, protocol=rtnl.RTPROT_BOOT,
                        scope=route.scope or rtnl.RT_SCOPE_UNIVERSE, kind=rtnl.RTN_UNICAST)
    attrs = [rtnl.attr(rtnl.RTA_DST, route.dst.network_address.packed)] if route.dst.prefixlen else []
    attrs.append(rtnl.attr_u32(rtnl.RTA_OIF, index))
    if route.gateway is not None:
        attrs.append(rtnl.attr(rtnl.RTA_GATEWAY, route.gateway.packed))
    if route.priority is not None:
        attrs.append(rtnl.attr_u32(rtnl.RTA_PRIORITY, route.priority))
    if route.table is not None:
        attrs.append(rtnl.attr_u32(rtnl.RTA_TABLE, route.table))
    return header + b"".join(attrs)


def _link(msg: rtnl.Message) -> Link:
    _family_, _type, index, flags, _change = msg.header(IFINFOMSG)
    attrs = msg.attrs(IFINFOMSG)
    info = rtnl.parse_attrs(attrs.get(rtnl.IFLA_LINKINFO, b""))
    mac = attrs.get(rtnl.IFLA_ADDRESS)
    operstate = rtnl.get_u8(attrs, rtnl.IFLA_OPERSTATE)
    return Link(
        index=index, name=rtnl.get_str(attrs, rtnl.IFLA_IFNAME), kind=rtnl.get_str(info, rtnl.IFLA_INFO_KIND),
        mac=mac.hex(":") if mac else "", mtu=rtnl.get_u32(attrs, rtnl.IFLA_MTU),
        master=rtnl.get_u32(attrs, rtnl.IFLA_MASTER), peer=rtnl.get_u32(attrs, rtnl.IFLA_LINK),
        operstate=OPERSTATES[operstate] if operstate < len(OPERSTATES) else "", flags=flags,
        txqlen=rtnl.get_u32(attrs, rtnl.IFLA_TXQLEN),
    )
