"""Shared inputs of the rule-builder tests: one network, one container, the mapping shapes that matter."""
from __future__ import annotations

from common.ip import ip_address, ip_interface
from portmap.config import Mapping, PortmapConf

CID = "abc123"
DN = "CNI-DN-70a29d9dc18bc4d652ea5"      # chain_name("mynet", "abc123", "DN-"), the reference's vector
IP4 = ip_interface("10.4.0.5/24")
IP6 = ip_interface("2001:db8:4::5/64")
TCP = Mapping(8080, 80, "tcp")
UDP = Mapping(8081, 81, "udp")

CASES = {
    "tcp": (PortmapConf(name="mynet", mappings=(TCP,)), IP4),
    "tcp_udp": (PortmapConf(name="mynet", mappings=(TCP, UDP)), IP4),
    "hostip": (PortmapConf(name="mynet", mappings=(Mapping(8080, 80, "tcp", ip_address("192.0.2.1")),
                                                   Mapping(9090, 90, "tcp", ip_address("2001:db8::1")))),
               IP4),
    "ipv6": (PortmapConf(name="mynet", mappings=(TCP, UDP)), IP6),
    "masq_all": (PortmapConf(name="mynet", mappings=(TCP,), masq_all=True), IP4),
    "external": (PortmapConf(name="mynet", mappings=(TCP,), external_setmark="KUBE-MARK-MASQ"), IP4),
    "conditions": (PortmapConf(name="mynet", mappings=(TCP,), mark_bit=0,
                               conditions_v4=("-s", "10.9.0.0/16", "!", "-i", "lo0")), IP4),
    "nft_conditions": (PortmapConf(name="mynet", mappings=(TCP,), backend="nftables",
                                   conditions_v4=("ip", "saddr", "10.9.0.0/16")), IP4),
}
