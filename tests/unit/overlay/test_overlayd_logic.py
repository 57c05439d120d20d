"""pycni-overlayd's pure parts: the cluster config, lease keys/values and subnet choice, the data-plane plan."""
from __future__ import annotations

import json
import random

import netaddr
import pytest

from overlay import leases, masq, netconfig, plan
from overlay.agent import read_previous, read_previous_subnet, write_subnet_file
from overlay.leases import Lease
from overlay.plan import Fdb, Neigh, Route

CONFIG = netconfig.parse('{"Network": "10.244.0.0/16", "Backend": {"Type": "vxlan", "VNI": 7}}')


def test_config_defaults_are_flannels() -> None:
    assert (CONFIG.subnet_len, str(CONFIG.subnet_min), str(CONFIG.subnet_max), CONFIG.vni, CONFIG.port) == \
        (24, "10.244.1.0", "10.244.255.0", 7, 8472)
    assert len(CONFIG.candidates()) == 255


@pytest.mark.parametrize("text, message", [
    ("[]", "config must be a JSON object"),
    ('{"Network": "10.0.0.1/16"}', "network address with its length"),
    ('{"Network": "10.0.0.0/16", "SubnetLen": 8}', "SubnetLen must be an integer in 17..30"),
    ('{"Network": "10.0.0.0/16", "SubnetMin": "10.1.0.0"}', "SubnetMin 10.1.0.0 is outside Network"),
    ('{"Network": "10.0.0.0/16", "Backend": {"Type": "vxlan", "VNI": -1}}', "Backend.VNI must be"),
    ('{"Network": "10.0.0.0/16", "Backend": "vxlan"}', "Backend must be an object"),
])
def test_bad_configs_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(netconfig.ConfigError, match=message):
        netconfig.parse(text)


def lease(subnet: str, ip: str, mac: str | None = "0e:76:00:00:00:01", backend: str = "vxlan") -> Lease:
    return Lease(subnet=netaddr.IPNetwork(subnet), public_ip=netaddr.IPAddress(ip), backend=backend,
                 vtep_mac=mac, vni=7)


def test_lease_value_and_key_are_flannels() -> None:
    value = leases.encode(lease("10.244.3.0/24", "192.0.2.23"))
    assert json.loads(value) == {"PublicIP": "192.0.2.23", "PublicIPv6": None, "BackendType": "vxlan",
                                 "BackendData": {"VNI": 7, "VtepMAC": "0e:76:00:00:00:01"}}
    key = leases.key_of("/coreos.com/network", netaddr.IPNetwork("10.244.3.0/24"))
    assert key == "/coreos.com/network/subnets/10.244.3.0-24"
    assert leases.decode(key, value.encode()) == lease("10.244.3.0/24", "192.0.2.23")
    assert leases.decode(key, b"{bad") is None and leases.decode("/p/subnets/garbage", value.encode()) is None
    assert leases.vtep_mac(netaddr.IPAddress("192.0.2.21")) == "0e:76:c0:00:02:15"


def test_subnet_choice_order_own_then_previous_then_random() -> None:
    rng, me = random.Random(1), netaddr.IPAddress("192.0.2.21")
    taken = [lease("10.244.5.0/24", "192.0.2.21"), lease("10.244.6.0/24", "192.0.2.22")]
    chosen = leases.choose_subnet(CONFIG, taken, public_ip=me, previous=None, rng=rng)[0]
    assert chosen == netaddr.IPNetwork("10.244.5.0/24")
    previous = netaddr.IPNetwork("10.244.9.0/24")
    assert leases.choose_subnet(CONFIG, taken[1:], public_ip=me, previous=previous, rng=rng) == (previous, None)
    busy = netaddr.IPNetwork("10.244.6.0/24")
    subnet, own = leases.choose_subnet(CONFIG, taken[1:], public_ip=me, previous=busy, rng=rng)
    assert own is None and subnet != busy and CONFIG.allows(subnet)


def test_no_free_subnet() -> None:
    small = netconfig.parse('{"Network": "10.9.0.0/23", "SubnetLen": 24}')
    with pytest.raises(leases.NoFreeSubnet, match="no free /24 left in 10.9.0.0/23"):
        leases.choose_subnet(small, [lease("10.9.1.0/24", "192.0.2.9")], public_ip=netaddr.IPAddress("192.0.2.1"),
                             previous=None, rng=random.Random())


def test_desired_entries_per_peer_skip_ours_and_foreign_backends() -> None:
    peers = [lease("10.244.1.0/24", "192.0.2.21"), lease("10.244.2.0/24", "192.0.2.22", "0E:76:00:00:00:02"),
             lease("10.244.3.0/24", "192.0.2.23", backend="host-gw")]
    wanted = plan.desired(peers, own=netaddr.IPNetwork("10.244.1.0/24"), backend="vxlan", vni=7)
    assert wanted == {Neigh("10.244.2.0", "0e:76:00:00:00:02"), Fdb("0e:76:00:00:00:02", "192.0.2.22"),
                      Route("10.244.2.0/24", "10.244.2.0", True)}
    gw = plan.desired(peers, own=netaddr.IPNetwork("10.244.1.0/24"), backend="host-gw", vni=7)
    assert gw == {Route("10.244.3.0/24", "192.0.2.23")}


def test_diff_replaces_a_changed_mac_and_drops_the_old_fdb_entry_in_order() -> None:
    old = {Neigh("10.244.2.0", "aa:00:00:00:00:01"), Fdb("aa:00:00:00:00:01", "192.0.2.22"),
           Route("10.244.2.0/24", "10.244.2.0", True), Route("10.244.9.0/24", "10.244.9.0", True),
           Neigh("10.244.9.0", "aa:00:00:00:00:09"), Fdb("aa:00:00:00:00:09", "192.0.2.29")}
    new = {Neigh("10.244.2.0", "bb:00:00:00:00:01"), Fdb("bb:00:00:00:00:01", "192.0.2.22"),
           Route("10.244.2.0/24", "10.244.2.0", True)}
    changes = plan.diff(old, new)
    assert changes.replace == (Neigh("10.244.2.0", "bb:00:00:00:00:01"), Fdb("bb:00:00:00:00:01", "192.0.2.22"))
    assert changes.remove == (Route("10.244.9.0/24", "10.244.9.0", True), Neigh("10.244.9.0", "aa:00:00:00:00:09"),
                              Fdb("aa:00:00:00:00:01", "192.0.2.22"), Fdb("aa:00:00:00:00:09", "192.0.2.29"))
    assert not plan.diff(new, new)


def test_subnet_file_is_flannels_and_remembers_the_subnet(tmp_path) -> None:
    path = tmp_path / "run" / "subnet.env"
    write_subnet_file(str(path), network=netaddr.IPNetwork("10.244.0.0/16"), subnet=netaddr.IPNetwork("10.244.7.0/24"),
                      mtu=1450, ip_masq=True)
    assert path.read_text() == ("FLANNEL_NETWORK=10.244.0.0/16\nFLANNEL_SUBNET=10.244.7.1/24\nFLANNEL_MTU=1450\n"
                                "FLANNEL_IPMASQ=true\n")
    assert read_previous_subnet(str(path)) == netaddr.IPNetwork("10.244.7.0/24")
    assert [p.name for p in path.parent.iterdir()] == ["subnet.env"]
    assert read_previous_subnet(str(tmp_path / "missing")) is None


def test_subnet_file_names_the_lease_and_a_key_still_bound_to_it_is_ours(tmp_path) -> None:
    """After the node's address changed, our old key carries the old PublicIP: the etcd lease saved in subnet.env
    proves it is ours; a previous subnet held under another lease is someone else's (flannel #1289)."""
    path = tmp_path / "subnet.env"
    write_subnet_file(str(path), network=netaddr.IPNetwork("10.244.0.0/16"), subnet=netaddr.IPNetwork("10.244.7.0/24"),
                      mtu=1450, ip_masq=False, lease_id=0x694D9A1B2C)
    assert path.read_text().endswith("FLANNEL_IPMASQ=false\nPYCNI_LEASE_ID=694d9a1b2c\n")
    previous, lease_id = read_previous(str(path))
    assert (previous, lease_id) == (netaddr.IPNetwork("10.244.7.0/24"), 0x694D9A1B2C)
    old = Lease(subnet=previous, public_ip=netaddr.IPAddress("192.0.2.22"), backend="vxlan",
                vtep_mac="0e:76:c0:00:02:16", vni=7, etcd_lease=0x694D9A1B2C)
    me, rng = netaddr.IPAddress("192.0.2.42"), random.Random(1)
    assert leases.choose_subnet(CONFIG, [old], public_ip=me, previous=previous, rng=rng,
                                previous_lease=lease_id) == (previous, old)
    subnet, own = leases.choose_subnet(CONFIG, [old], public_ip=me, previous=previous, rng=rng, previous_lease=1)
    assert own is None and subnet != previous


def test_forward_rules_accept_the_cluster_network_both_ways() -> None:
    assert masq.forward_rules("10.244.0.0/16").splitlines() == [
        "*filter", ":PYCNI-OVERLAY-FWD - [0:0]",
        '-A PYCNI-OVERLAY-FWD -s 10.244.0.0/16 -m comment --comment "pycni-overlay forward" -j ACCEPT',
        '-A PYCNI-OVERLAY-FWD -d 10.244.0.0/16 -m comment --comment "pycni-overlay forward" -j ACCEPT',
        "COMMIT"]
