"""A small rtnetlink (NETLINK_ROUTE) client on the stdlib: message packing, attributes, requests and dumps.

Wire layout (native byte order; every part starts on a 4-byte boundary):

    nlmsghdr    u32 len | u16 type | u16 flags | u32 seq | u32 pid                          16 bytes
    then the family header of the message type:
      ifinfomsg u8 family | u8 pad | u16 type | s32 index | u32 flags | u32 change           RTM_*LINK, 16
      ifaddrmsg u8 family | u8 prefixlen | u8 flags | u8 scope | u32 index                   RTM_*ADDR,  8
      rtmsg     u8 family | dst_len | src_len | tos | table | protocol | scope | type | u32 flags
                                                                                             RTM_*ROUTE, 12
    then attributes: u16 len | u16 type | payload, padded to 4 bytes. A nested attribute's payload is more
    attributes (NLA_F_NESTED in the type marks it where the kernel asks for it, e.g. AF_BRIDGE IFLA_PROTINFO).
    NLMSG_ERROR carries nlmsgerr: s32 error (-errno; 0 is the ACK) | the request's nlmsghdr.

A request with NLM_F_ACK is answered by its replies, if any (a GET's answer), then NLMSG_ERROR. A dump
(NLM_F_DUMP) is answered by NLM_F_MULTI messages and NLMSG_DONE; NLM_F_DUMP_INTR on any of them means the
table changed meanwhile, so the dump is retried. A socket stays bound to the network namespace it was
created in.
"""
from __future__ import annotations

import _socket  # the C module: `socket` (selectors, enum constants...) costs ~3 ms per plugin start
import errno
import os
import struct

TYPE_CHECKING = False   # `typing` costs a few ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Iterator

# linux/netlink.h
NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_ROOT = 0x100
NLM_F_MATCH = 0x200
NLM_F_DUMP = NLM_F_ROOT | NLM_F_MATCH
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER) & 0xFFFF

# linux/rtnetlink.h
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_SETLINK = 16, 17, 18, 19
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
RTN_UNICAST = 1
RTPROT_BOOT = 3        # what the Go plugins (vishvananda/netlink) set on the routes they add
RT_SCOPE_UNIVERSE = 0
RT_TABLE_UNSPEC = 0
RT_TABLE_MAIN = 254
RTA_DST, RTA_OIF, RTA_GATEWAY, RTA_PRIORITY, RTA_TABLE = 1, 4, 5, 6, 15
RTEXT_FILTER_BRVLAN = 2

# linux/if_link.h, linux/if_bridge.h, linux/veth.h
IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_LINK = 5
IFLA_MASTER = 10
IFLA_PROTINFO = 12
IFLA_TXQLEN = 13
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_AF_SPEC = 26
IFLA_NET_NS_FD = 28
IFLA_EXT_MASK = 29
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
IFLA_BR_VLAN_FILTERING = 7
IFLA_BRPORT_MODE = 4
IFLA_BRPORT_ISOLATED = 33
IFLA_BRIDGE_VLAN_INFO = 2
VETH_INFO_PEER = 1

# linux/if_addr.h
IFA_ADDRESS = 1
IFA_LOCAL = 2
IFA_BROADCAST = 4

AF_UNSPEC, AF_INET, AF_BRIDGE, AF_INET6 = 0, 2, 7, 10

NLMSGHDR = struct.Struct("=IHHII")
NLATTR = struct.Struct("=HH")
NLMSGERR = struct.Struct("=i")
IFINFOMSG = struct.Struct("=BxHiII")
IFADDRMSG = struct.Struct("=BBBBI")
RTMSG = struct.Struct("=BBBBBBBBI")
BRIDGE_VLAN_INFO = struct.Struct("=HH")    # flags, vid
U8, U16, U32 = struct.Struct("=B"), struct.Struct("=H"), struct.Struct("=I")

RECV_SIZE = 1 << 16     # the kernel fills dump datagrams up to 32 KiB
DUMP_ATTEMPTS = 5


class NetlinkError(OSError):
    """The kernel refused a request (NLMSG_ERROR with a negative error); `errno` says why."""

    def __init__(self, code: int) -> None:
        super().__init__(code, os.strerror(code))


# --- attributes ---------------------------------------------------------------------------------------------

def align(size: int) -> int:
    return (size + 3) & ~3


def attr(kind: int, payload: bytes) -> bytes:
    size = NLATTR.size + len(payload)
    return NLATTR.pack(size, kind) + payload + b"\0" * (align(size) - size)


def attr_u8(kind: int, value: int) -> bytes:
    return attr(kind, U8.pack(value))


def attr_u32(kind: int, value: int) -> bytes:
    return attr(kind, U32.pack(value))


def attr_str(kind: int, value: str) -> bytes:
    return attr(kind, value.encode("utf-8", "surrogateescape") + b"\0")


def nest(kind: int, *attrs: bytes, flags: int = 0) -> bytes:
    return attr(kind | flags, b"".join(attrs))


def iter_attrs(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type without NLA_F_* flags, payload) of each attribute in a buffer; repeated types are all yielded."""
    offset = 0
    while offset + NLATTR.size <= len(data):
        size, kind = NLATTR.unpack_from(data, offset)
        if size < NLATTR.size:
            break
        yield kind & NLA_TYPE_MASK, data[offset + NLATTR.size:offset + size]
        offset += align(size)


def parse_attrs(data: bytes) -> dict[int, bytes]:
    return dict(iter_attrs(data))


def get_u8(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return U8.unpack_from(value)[0] if value else default


def get_u32(attrs: dict[int, bytes], kind: int, default: int = 0) -> int:
    value = attrs.get(kind)
    return U32.unpack_from(value)[0] if value else default


def get_str(attrs: dict[int, bytes], kind: int) -> str:
    # Names are bytes to the kernel: any byte string round-trips, as a non-UTF-8 CNI_IFNAME does through os.environ
    return attrs.get(kind, b"").split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


# --- family headers -------------------------------------------------------------------------------------

def ifinfomsg(index: int = 0, *, family: int = AF_UNSPEC, flags: int = 0, change: int = 0) -> bytes:
    return IFINFOMSG.pack(family, 0, index, flags, change)


def ifaddrmsg(family: int, *, prefixlen: int = 0, scope: int = RT_SCOPE_UNIVERSE, index: int = 0) -> bytes:
    return IFADDRMSG.pack(family, prefixlen, 0, scope, index)


def rtmsg(family: int, *, dst_len: int = 0, table: int = RT_TABLE_MAIN, protocol: int = 0,
          scope: int = RT_SCOPE_UNIVERSE, kind: int = 0) -> bytes:
    return RTMSG.pack(family, dst_len, 0, 0, table, protocol, scope, kind, 0)


# --- messages -------------------------------------------------------------------------------------------

class Message:
    """One netlink message: nlmsghdr fields and the body after it (family header + attributes)."""
    __slots__ = ("type", "flags", "seq", "body")

    def __init__(self, type: int, flags: int, seq: int, body: bytes) -> None:
        self.type, self.flags, self.seq, self.body = type, flags, seq, body

    def __repr__(self) -> str:
        return f"Message(type={self.type}, flags={self.flags:#x}, seq={self.seq}, body={self.body!r})"

    def header(self, fmt: struct.Struct) -> tuple[int, ...]:
        return fmt.unpack_from(self.body)

    def attrs(self, fmt: struct.Struct) -> dict[int, bytes]:
        return parse_attrs(self.body[align(fmt.size):])

    def all_attrs(self, fmt: struct.Struct) -> Iterator[tuple[int, bytes]]:
        return iter_attrs(self.body[align(fmt.size):])


def pack_message(kind: int, flags: int, seq: int, body: bytes, pid: int = 0) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, pid) + body


def parse_messages(data: bytes) -> Iterator[Message]:
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        size, kind, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if size < NLMSGHDR.size or offset + size > len(data):
            raise NetlinkError(errno.EBADMSG)
        yield Message(kind, flags, seq, data[offset + NLMSGHDR.size:offset + size])
        offset += align(size)


def check_error(msg: Message) -> None:
    """Raise NetlinkError for an NLMSG_ERROR/NLMSG_DONE carrying a negative error; an ACK passes."""
    if len(msg.body) >= NLMSGERR.size:
        code = NLMSGERR.unpack_from(msg.body)[0]
        if code < 0:
            raise NetlinkError(-code)


# --- socket ---------------------------------------------------------------------------------------------

class Socket:
    """A NETLINK_ROUTE socket in the namespace the calling thread is in when it is created."""

    def __init__(self) -> None:
        self._sock = _socket.socket(_socket.AF_NETLINK, _socket.SOCK_RAW | _socket.SOCK_CLOEXEC, NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = 0

    def close(self) -> None:
        self._sock.close()

    def request(self, kind: int, body: bytes, flags: int = 0) -> list[Message]:
        """Send with NLM_F_ACK; the replies before the ACK (a GET's answer). NetlinkError if refused."""
        seq = self._send(kind, NLM_F_REQUEST | NLM_F_ACK | flags, body)
        replies: list[Message] = []
        for msg in self._receive(seq):
            if msg.type == NLMSG_ERROR:
                check_error(msg)
                return replies
            replies.append(msg)
        raise AssertionError("unreachable")

    def dump(self, kind: int, body: bytes) -> list[Message]:
        """Every message of a dump; retried when the kernel flags it as interrupted (NLM_F_DUMP_INTR)."""
        for _ in range(DUMP_ATTEMPTS):
            seq = self._send(kind, NLM_F_REQUEST | NLM_F_DUMP, body)
            messages, interrupted = [], False
            for msg in self._receive(seq):
                interrupted |= bool(msg.flags & NLM_F_DUMP_INTR)
                if msg.type in (NLMSG_DONE, NLMSG_ERROR):
                    check_error(msg)
                    break
                messages.append(msg)
            if not interrupted:
                return messages
        raise NetlinkError(errno.EINTR)

    def _send(self, kind: int, flags: int, body: bytes) -> int:
        self._seq += 1
        self._sock.send(pack_message(kind, flags, self._seq, body))
        return self._seq

    def _receive(self, seq: int) -> Iterator[Message]:
        """The messages answering `seq`, datagram after datagram, until the caller stops."""
        while True:
            data, _, msg_flags, _ = self._sock.recvmsg(RECV_SIZE)
            if msg_flags & _socket.MSG_TRUNC:
                raise NetlinkError(errno.EMSGSIZE)
            for msg in parse_messages(data):
                if msg.seq == seq:
                    yield msg
