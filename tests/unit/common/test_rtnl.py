"""rtnl wire format and the netlink facade's requests/parsing, against hand-made byte strings (no root)."""
from __future__ import annotations

import errno
import struct

import pytest

from common import netlink, rtnl
from common.ip import ip_address, ip_interface, ip_network
from common.netlink import Handle, LinkError, RouteSpec


def h(text: str) -> bytes:
    """Hex with spaces/newlines allowed, as bytes."""
    return bytes.fromhex("".join(text.split()))


# --- attributes ---------------------------------------------------------------------------------------------

def test_string_attribute_is_nul_terminated_and_padded() -> None:
    assert rtnl.attr_str(rtnl.IFLA_IFNAME, "eth0") == h("0900 0300 65746830 00 000000")


def test_u8_u32_attributes() -> None:
    assert rtnl.attr_u8(rtnl.IFLA_BR_VLAN_FILTERING, 1) == h("0500 0700 01 000000")
    assert rtnl.attr_u32(rtnl.IFLA_MTU, 1400) == h("0800 0400 78050000")


def test_nested_attribute_with_and_without_nla_f_nested() -> None:
    inner = rtnl.attr_u8(rtnl.IFLA_BRPORT_MODE, 1)
    assert rtnl.nest(rtnl.IFLA_PROTINFO, inner, flags=rtnl.NLA_F_NESTED) == h("0c00 0c80") + inner
    assert rtnl.nest(rtnl.IFLA_LINKINFO, inner) == h("0c00 1200") + inner


def test_iter_attrs_masks_flags_keeps_repeats_and_stops_on_garbage() -> None:
    data = (rtnl.attr(rtnl.IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", 0, 10))
            + rtnl.nest(rtnl.IFLA_PROTINFO, b"", flags=rtnl.NLA_F_NESTED)
            + rtnl.attr(rtnl.IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", 6, 20)) + h("0200"))
    assert list(rtnl.iter_attrs(data)) == [(2, h("0000 0a00")), (12, b""), (2, h("0600 1400"))]
    assert list(rtnl.iter_attrs(h("0200 0300 0000"))) == []     # nla_len below the header size


def test_getters_with_defaults() -> None:
    attrs = rtnl.parse_attrs(rtnl.attr_str(rtnl.IFLA_IFNAME, "br0") + rtnl.attr_u8(rtnl.IFLA_OPERSTATE, 6))
    assert rtnl.get_str(attrs, rtnl.IFLA_IFNAME) == "br0"
    assert rtnl.get_u8(attrs, rtnl.IFLA_OPERSTATE) == 6
    assert rtnl.get_u32(attrs, rtnl.IFLA_MTU) == 0 and rtnl.get_u32(attrs, rtnl.IFLA_MTU, 7) == 7
    assert rtnl.get_str(attrs, rtnl.IFLA_ADDRESS) == ""


# --- messages -----------------------------------------------------------------------------------------------

def test_pack_message_header() -> None:
    msg = rtnl.pack_message(rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK, 7, rtnl.ifinfomsg(1))
    assert msg == h("20000000 1200 0500 07000000 00000000  00 00 0000 01000000 00000000 00000000")


def test_family_headers() -> None:
    assert rtnl.ifaddrmsg(rtnl.AF_INET6, prefixlen=64, index=3) == h("0a 40 00 00 03000000")
    assert rtnl.rtmsg(rtnl.AF_INET, dst_len=16, protocol=rtnl.RTPROT_BOOT, kind=rtnl.RTN_UNICAST) == \
        h("02 10 00 00 fe 03 00 01 00000000")


def test_parse_messages_splits_a_datagram() -> None:
    one = rtnl.pack_message(rtnl.RTM_NEWLINK, rtnl.NLM_F_MULTI, 5, rtnl.ifinfomsg(1))
    done = rtnl.pack_message(rtnl.NLMSG_DONE, rtnl.NLM_F_MULTI, 5, struct.pack("=i", 0))
    msgs = list(rtnl.parse_messages(one + done))
    assert [(m.type, m.flags, m.seq) for m in msgs] == [(16, 2, 5), (3, 2, 5)]
    assert msgs[0].header(rtnl.IFINFOMSG)[2] == 1


def test_a_truncated_message_is_ebadmsg() -> None:
    with pytest.raises(rtnl.NetlinkError) as info:   # nlmsg_len 64, but the datagram holds 16 bytes
        list(rtnl.parse_messages(h("40000000 1000 0000 01000000 00000000")))
    assert info.value.errno == errno.EBADMSG


# A captured-style RTM_NEWLINK for a veth that is a bridge port (kernel attribute order, trimmed):
# index 5, flags UP|BROADCAST|RUNNING|MULTICAST|LOWER_UP, name veth0, mtu 1400, master 3, link 2, operstate UP,
# address 02:11:22:33:44:55, linkinfo{kind "veth"}, af_spec{...} that must be skipped.
NEWLINK_VETH = h("""
    8c000000 1000 0200 2a000000 39300000
    00 00 0100 05000000 43100100 00000000
    0a00 0300 7665746830 00 0000
    0800 0400 78050000
    0800 0a00 03000000
    0800 0500 02000000
    0500 1000 06 000000
    0a00 0100 021122334455 0000
    1000 1200 0900 0100 7665746800 000000
    2400 1a00 2000 0280 1c00 0100 00000000 00000000 00000000 00000000 00000000 00000000
""")


def test_link_from_a_newlink_dump_message() -> None:
    [msg] = rtnl.parse_messages(NEWLINK_VETH)
    assert (msg.type, msg.flags, msg.seq) == (rtnl.RTM_NEWLINK, rtnl.NLM_F_MULTI, 42)
    link = netlink._link(msg)
    assert link == netlink.Link(index=5, name="veth0", kind="veth", mac="02:11:22:33:44:55", mtu=1400,
                                master=3, peer=2, operstate="UP", flags=0x11043)
    assert not link.promisc


def test_link_without_optional_attributes() -> None:
    msg = rtnl.Message(rtnl.RTM_NEWLINK, 0, 1, rtnl.ifinfomsg(1, flags=0x100) + rtnl.attr_str(rtnl.IFLA_IFNAME, "x"))
    link = netlink._link(msg)
    assert (link.kind, link.mac, link.mtu, link.master, link.peer, link.operstate) == ("", "", 0, 0, 0, "UNKNOWN")
    assert link.promisc


# --- socket protocol over a fake kernel ---------------------------------------------------------------------

class FakeKernel:
    """Stands in for the netlink socket: records what is sent, answers with queued datagrams."""

    def __init__(self, *answers: list[tuple[int, int, bytes]]) -> None:
        self.sent: list[bytes] = []
        self.answers = list(answers)

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recvmsg(self, size: int) -> tuple[bytes, list, int, None]:
        seq = struct.unpack_from("=I", self.sent[-1], 8)[0]
        datagram = b"".join(rtnl.pack_message(kind, flags, seq, body) for kind, flags, body in self.answers.pop(0))
        return datagram, [], 0, None

    def close(self) -> None:
        pass


def ack(code: int = 0) -> tuple[int, int, bytes]:
    return rtnl.NLMSG_ERROR, 0, struct.pack("=i", code) + bytes(16)


def done() -> tuple[int, int, bytes]:
    return rtnl.NLMSG_DONE, rtnl.NLM_F_MULTI, struct.pack("=i", 0)


def fake_socket(*answers: list[tuple[int, int, bytes]]) -> tuple[rtnl.Socket, FakeKernel]:
    sock = rtnl.Socket.__new__(rtnl.Socket)
    kernel = FakeKernel(*answers)
    sock._sock, sock._seq = kernel, 0
    return sock, kernel


def fake_handle(*answers: list[tuple[int, int, bytes]]) -> tuple[Handle, FakeKernel]:
    handle = Handle.__new__(Handle)
    handle._nl, kernel = fake_socket(*answers)
    return handle, kernel


def sent(kernel: FakeKernel, i: int = -1) -> tuple[int, int, bytes]:
    """(type, flags, body) of a sent request."""
    [msg] = rtnl.parse_messages(kernel.sent[i])
    return msg.type, msg.flags, msg.body


def test_request_returns_the_replies_before_the_ack() -> None:
    reply = (rtnl.RTM_NEWLINK, 0, rtnl.ifinfomsg(1))
    sock, kernel = fake_socket([reply, ack()])
    [msg] = sock.request(rtnl.RTM_GETLINK, rtnl.ifinfomsg(1))
    assert msg.type == rtnl.RTM_NEWLINK
    assert sent(kernel)[:2] == (rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK)


def test_request_error_is_netlink_error_with_errno() -> None:
    sock, _ = fake_socket([ack(-errno.EEXIST)])
    with pytest.raises(rtnl.NetlinkError) as info:
        sock.request(rtnl.RTM_NEWLINK, rtnl.ifinfomsg(), rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL)
    assert info.value.errno == errno.EEXIST and isinstance(info.value, OSError)


def test_replies_to_other_sequence_numbers_are_skipped() -> None:
    sock, kernel = fake_socket([ack()])
    stale = rtnl.pack_message(rtnl.NLMSG_ERROR, 0, 999, struct.pack("=i", -errno.ENODEV) + bytes(16))
    real_recvmsg = kernel.recvmsg
    kernel.recvmsg = lambda size: (stale + real_recvmsg(size)[0], [], 0, None)   # type: ignore[method-assign]
    assert sock.request(rtnl.RTM_DELLINK, rtnl.ifinfomsg(4)) == []


def test_dump_collects_multipart_messages_across_datagrams() -> None:
    part = (rtnl.RTM_NEWLINK, rtnl.NLM_F_MULTI, rtnl.ifinfomsg(1))
    sock, kernel = fake_socket([part, part], [part, done()])
    assert len(sock.dump(rtnl.RTM_GETLINK, rtnl.ifinfomsg())) == 3
    assert sent(kernel)[1] == rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP


def test_interrupted_dump_is_retried_then_eintr() -> None:
    intr = (rtnl.RTM_NEWADDR, rtnl.NLM_F_MULTI | rtnl.NLM_F_DUMP_INTR, rtnl.ifaddrmsg(rtnl.AF_INET))
    good = (rtnl.RTM_NEWADDR, rtnl.NLM_F_MULTI, rtnl.ifaddrmsg(rtnl.AF_INET))
    sock, kernel = fake_socket([intr, done()], [good, done()])
    assert len(sock.dump(rtnl.RTM_GETADDR, rtnl.ifaddrmsg(rtnl.AF_INET))) == 1 and len(kernel.sent) == 2
    sock, _ = fake_socket(*[[intr, done()]] * rtnl.DUMP_ATTEMPTS)
    with pytest.raises(rtnl.NetlinkError) as info:
        sock.dump(rtnl.RTM_GETADDR, rtnl.ifaddrmsg(rtnl.AF_INET))
    assert info.value.errno == errno.EINTR


def test_dump_error_in_done_or_error_message() -> None:
    sock, _ = fake_socket([(rtnl.NLMSG_DONE, rtnl.NLM_F_MULTI, struct.pack("=i", -errno.EOPNOTSUPP))])
    with pytest.raises(rtnl.NetlinkError):
        sock.dump(rtnl.RTM_GETLINK, rtnl.ifinfomsg(family=rtnl.AF_BRIDGE))


# --- facade: requests as pyroute2 sent them, and error mapping ----------------------------------------------

def test_add_veth_request_matches_pyroute2() -> None:
    handle, kernel = fake_handle([ack()])
    handle.add_veth("vethA", peer="eth0", peer_netns_fd=6, mtu=1400, peer_mac="02:11:22:33:44:55")
    kind, flags, body = sent(kernel)
    assert kind == rtnl.RTM_NEWLINK
    assert flags == rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    # bytes pyroute2 0.9.7 sent for the same call (strace); IFLA_INFO_DATA holds VETH_INFO_PEER
    assert body == h("""
        00 00 0000 00000000 00000000 00000000
        0a00 0300 766574684100 0000   0800 0400 78050000
        5000 1200  0900 0100 7665746800 000000
          4000 0200 3c00 0100 00000000000000000000000000000000
            0900 0300 6574683000 000000  0800 1c00 06000000  0800 0400 78050000
            0a00 0100 021122334455 0000""")


def test_add_bridge_request_matches_pyroute2() -> None:
    handle, kernel = fake_handle([ack()])
    handle.add_bridge("br0", mtu=1400, vlan_filtering=True)
    assert sent(kernel)[2] == rtnl.ifinfomsg() + h("""
        0800 0300 62723000  0800 0400 78050000
        1c00 1200  0b00 0100 62726964676500 00  0c00 0200 0500 0700 01000000""")


def test_set_requests() -> None:
    handle, kernel = fake_handle(*[[ack()]] * 5)
    handle.set_up(3)
    handle.set_promisc(3)
    handle.set_mac(3, "02:aa:bb:cc:dd:ee")
    handle.set_master(4, 3)
    handle.set_bridge_port(4, hairpin=True, isolated=False)
    assert sent(kernel, 0) == (rtnl.RTM_NEWLINK, 5, rtnl.ifinfomsg(3, flags=1, change=1))
    assert sent(kernel, 1)[2] == rtnl.ifinfomsg(3, flags=0x100, change=0x100)
    assert sent(kernel, 2)[2] == rtnl.ifinfomsg(3) + h("0a00 0100 02aabbccddee 0000")
    assert sent(kernel, 3)[2] == rtnl.ifinfomsg(4) + h("0800 0a00 03000000")
    assert sent(kernel, 4) == (rtnl.RTM_SETLINK, 5, rtnl.ifinfomsg(4, family=rtnl.AF_BRIDGE)
                               + h("1400 0c80  0500 0400 01000000  0500 2100 00000000"))


def test_vlan_requests_and_eopnotsupp() -> None:
    handle, kernel = fake_handle([ack(-errno.EOPNOTSUPP)], [ack()])
    with pytest.raises(LinkError) as info:
        handle.vlan("add", 4, 10, pvid_untagged=True)
    assert info.value.errno == errno.EOPNOTSUPP
    assert info.value.msg == "add VLAN 10 on link 4: ENOTSUP (Operation not supported)"
    handle.vlan("del", 4, 10)
    spec = rtnl.ifinfomsg(4, family=rtnl.AF_BRIDGE) + h("0c00 1a00 0800 0200")
    assert sent(kernel, 0) == (rtnl.RTM_SETLINK, 5, spec + h("0600 0a00"))
    assert sent(kernel, 1) == (rtnl.RTM_DELLINK, 5, spec + h("0000 0a00"))


def test_vlans_parses_the_af_bridge_dump_of_that_port() -> None:
    def port(index: int, *vids: int) -> tuple[int, int, bytes]:
        infos = b"".join(rtnl.attr(rtnl.IFLA_BRIDGE_VLAN_INFO, struct.pack("=HH", 0, v)) for v in vids)
        body = rtnl.ifinfomsg(index, family=rtnl.AF_BRIDGE) + rtnl.attr_str(rtnl.IFLA_IFNAME, "p") \
            + rtnl.nest(rtnl.IFLA_AF_SPEC, infos)
        return rtnl.RTM_NEWLINK, rtnl.NLM_F_MULTI, body
    handle, kernel = fake_handle([port(3, 1), port(4, 1, 10, 20), done()])
    assert handle.vlans(4) == [1, 10, 20]
    assert sent(kernel) == (rtnl.RTM_GETLINK, rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP,
                            rtnl.ifinfomsg(family=rtnl.AF_BRIDGE) + h("0800 1d00 02000000"))


def test_link_lookup_errors() -> None:
    handle, kernel = fake_handle([ack(-errno.ENODEV)], [ack(-errno.ENODEV)], [ack(-errno.EPERM)])
    assert handle.link("nope") is None
    assert sent(kernel)[2] == rtnl.ifinfomsg() + rtnl.attr_str(rtnl.IFLA_IFNAME, "nope")
    assert handle.link_by_index(99) is None
    with pytest.raises(LinkError) as info:
        handle.link_by_index(99)
    assert info.value.errno == errno.EPERM


def test_errors_become_link_error_with_errno() -> None:
    handle, _ = fake_handle([ack(-errno.ENODEV)])
    with pytest.raises(LinkError) as info:
        handle.delete_link(42)
    assert info.value.errno == errno.ENODEV
    assert info.value.msg == "deleting link 42: ENODEV (No such device)"


def test_address_requests_and_dump_filtering() -> None:
    def addr(family: int, index: int, raw: bytes, prefixlen: int, scope: int) -> tuple[int, int, bytes]:
        body = rtnl.ifaddrmsg(family, prefixlen=prefixlen, scope=scope, index=index)
        return rtnl.RTM_NEWADDR, rtnl.NLM_F_MULTI, body + rtnl.attr(rtnl.IFA_ADDRESS, raw)
    v6 = ip_address("fe80::1").packed
    handle, kernel = fake_handle(
        [ack()], [ack()],
        [addr(2, 3, h("0a000001"), 24, 0), addr(2, 9, h("0a000101"), 24, 0), addr(10, 3, v6, 64, 253), done()])
    handle.add_address(3, ip_interface("10.0.0.1/24"))
    handle.delete_address(3, ip_interface("fd00::1/64"))
    assert sent(kernel, 0) == (rtnl.RTM_NEWADDR, 0x605, h("02 18 00 00 03000000")
                               + h("0800 0200 0a000001 0800 0100 0a000001 0800 0400 0a0000ff"))   # IFA_BROADCAST
    packed = ip_address("fd00::1").packed
    assert sent(kernel, 1) == (rtnl.RTM_DELADDR, 5, h("0a 40 00 00 03000000") + h("1400 0200") + packed
                               + h("1400 0100") + packed)
    assert handle.addresses(3) == [(ip_interface("10.0.0.1/24"), 0),
                                   (ip_interface("fe80::1/64"), 253)]
    assert sent(kernel)[2] == h("00 00 00 00 00000000")


def test_route_requests() -> None:
    handle, kernel = fake_handle([ack()], [ack()], [ack(-errno.EEXIST)])
    handle.add_route(3, RouteSpec(dst=ip_network("10.9.0.0/16")))
    handle.add_route(3, RouteSpec(dst=ip_network("0.0.0.0/0"), gateway=ip_address("10.1.0.254"),
                                  priority=5, table=1000, scope=0))
    with pytest.raises(LinkError) as info:
        handle.add_route(3, RouteSpec(dst=ip_network("fd01::/64"), table=100))
    assert info.value.errno == errno.EEXIST
    new = rtnl.NLM_F_REQUEST | rtnl.NLM_F_ACK | rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    assert sent(kernel, 0) == (rtnl.RTM_NEWROUTE, new, h("02 10 00 00 fe 03 00 01 00000000")
                               + h("0800 0100 0a090000  0800 0400 03000000"))
    assert sent(kernel, 1)[2] == h("02 00 00 00 00 03 00 01 00000000") + h(
        "0800 0400 03000000  0800 0500 0a0100fe  0800 0600 05000000  0800 0f00 e8030000")
    assert sent(kernel, 2)[2][:12] == h("0a 40 00 00 64 03 00 01 00000000")


def test_routes_keep_the_main_table_of_the_family() -> None:
    def route(table: int, dst: bytes, dst_len: int, gw: bytes = b"", oif: int = 3) -> tuple[int, int, bytes]:
        attrs = rtnl.attr_u32(rtnl.RTA_TABLE, table) + (rtnl.attr(rtnl.RTA_DST, dst) if dst else b"")
        attrs += (rtnl.attr(rtnl.RTA_GATEWAY, gw) if gw else b"") + rtnl.attr_u32(rtnl.RTA_OIF, oif)
        return rtnl.RTM_NEWROUTE, rtnl.NLM_F_MULTI, rtnl.rtmsg(2, dst_len=dst_len, table=min(table, 252)) + attrs
    handle, kernel = fake_handle([route(254, b"", 0, h("0a0000fe")), route(255, h("0a000001"), 32),
                                  route(1000, h("0a080000"), 16), route(254, h("0a000000"), 24), done()])
    assert handle.routes(4) == [
        netlink.RouteEntry(ip_network("0.0.0.0/0"), ip_address("10.0.0.254"), 3),
        netlink.RouteEntry(ip_network("10.0.0.0/24"), None, 3)]
    assert sent(kernel)[:2] == (rtnl.RTM_GETROUTE, rtnl.NLM_F_REQUEST | rtnl.NLM_F_DUMP)
