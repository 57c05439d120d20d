"""macspoofchk nft scripts (reference state: table bridge nat, chains cni-br-iface-<cid>-<ifname>[-mac])."""
from __future__ import annotations

from bridge import spoofchk

NOTE = 'comment "macspoofchk-abc123-eth0"'


def test_setup_golden() -> None:
    script = spoofchk.setup(container_id="abc123", ifname="eth0", host_veth="veth01234567",
                            mac="0a:58:0a:16:00:05")
    assert script == f"""add table bridge nat
add chain bridge nat PREROUTING {{ type filter hook prerouting priority -300 ; policy accept ; }}
add chain bridge nat cni-br-iface-abc123-eth0
add chain bridge nat cni-br-iface-abc123-eth0-mac
flush chain bridge nat cni-br-iface-abc123-eth0
flush chain bridge nat cni-br-iface-abc123-eth0-mac
add rule bridge nat PREROUTING iifname "veth01234567" jump cni-br-iface-abc123-eth0 {NOTE}
add rule bridge nat cni-br-iface-abc123-eth0 jump cni-br-iface-abc123-eth0-mac {NOTE}
add rule bridge nat cni-br-iface-abc123-eth0-mac ether saddr 0a:58:0a:16:00:05 return {NOTE}
add rule bridge nat cni-br-iface-abc123-eth0-mac drop {NOTE}
"""


LISTING = [
    {"table": {"family": "bridge", "name": "nat"}},
    {"chain": {"family": "bridge", "table": "nat", "name": "PREROUTING"}},
    {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-abc123-eth0"}},
    {"chain": {"family": "bridge", "table": "nat", "name": "cni-br-iface-abc123-eth0-mac"}},
    {"rule": {"chain": "PREROUTING", "handle": 5, "comment": "macspoofchk-abc123-eth0"}},
    {"rule": {"chain": "PREROUTING", "handle": 9, "comment": "macspoofchk-other-eth0"}},
]


def test_teardown_deletes_only_this_attachment() -> None:
    assert spoofchk.teardown(LISTING, container_id="abc123", ifname="eth0") == """\
delete rule bridge nat PREROUTING handle 5
flush chain bridge nat cni-br-iface-abc123-eth0
flush chain bridge nat cni-br-iface-abc123-eth0-mac
delete chain bridge nat cni-br-iface-abc123-eth0
delete chain bridge nat cni-br-iface-abc123-eth0-mac
"""


def test_teardown_when_nothing_exists() -> None:
    assert spoofchk.teardown(None, container_id="abc123", ifname="eth0") == ""
    assert spoofchk.teardown(LISTING[:2], container_id="abc123", ifname="eth0") == ""
