"""Issue 15 on one machine: pods on different nodes reach each other over pycni-overlayd's VXLAN or host-gw data
plane, backed by a real etcd (tests/e2e/overlay_cluster.py builds the namespaces; nothing outside them is used)."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from overlay_cluster import OUTSIDE_IP, Cluster

pytestmark = pytest.mark.e2e
VXLAN = {"Network": "10.244.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
HOST_GW = {"Network": "10.244.0.0/16", "SubnetLen": 24, "Backend": {"Type": "host-gw"}}


@contextmanager
def running(tmp_path: Path, dist_bin: Path, cnitool: Path, members: int) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, cni_bin=dist_bin, cnitool=cnitool)
    try:
        cluster.start_etcd(members)
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def cluster(tmp_path: Path, dist_bin: Path, cnitool: Path) -> Iterator[Cluster]:
    with running(tmp_path, dist_bin, cnitool, 1) as cluster:
        yield cluster


@pytest.fixture
def cluster3(tmp_path: Path, dist_bin: Path, cnitool: Path) -> Iterator[Cluster]:
    """A 3-member etcd."""
    with running(tmp_path, dist_bin, cnitool, 3) as cluster:
        yield cluster


def two_nodes(cluster: Cluster, config: dict, *extra: str, forward_drop: bool = False) -> tuple:
    cluster.put_config(config)
    n1, n2 = cluster.add_node(), cluster.add_node()
    for node in (n1, n2) if forward_drop else ():
        node.ns.run("iptables", "-w", "5", "-P", "FORWARD", "DROP")
    n1.start_agent(*extra)
    n2.start_agent(*extra)
    assert n1.subnet() != n2.subnet()
    (p1, ip1), (p2, ip2) = n1.add_pod(), n2.add_pod()
    cluster.eventually(lambda: cluster.ping(p1, ip2), what=f"{ip1} -> {ip2} across nodes")
    return n1, n2, p1, ip1, p2, ip2


@pytest.mark.parametrize("config, mtu", [(VXLAN, 1450), (HOST_GW, 1500)], ids=["vxlan", "host-gw"])
def test_pods_on_two_nodes_reach_each_other(cluster: Cluster, config: dict, mtu: int) -> None:
    """pod <-> pod (ping, TCP: the receiver sees the sender's pod address), node -> remote pod, a hostPort on
    node 1 from node 2, pod -> outside masqueraded (--ip-masq), the maximum DF ping passes and one byte more
    fails; nodes whose FORWARD policy is DROP (the agent's PYCNI-OVERLAY-FWD accepts the cluster network); an
    address of the cluster network that no node holds is unreachable, not sent out the default route. (~4 s each)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, config, "--ip-masq", forward_drop=True)
    assert f"FLANNEL_MTU={mtu}" in n1.subnet_file.read_text() and "FLANNEL_IPMASQ=true" in n1.subnet_file.read_text()
    assert n1.healthz() == "200"
    assert cluster.ping(p2, ip1)
    cluster.serve(p2, 7000)
    cluster.serve(p1, 7000)
    assert cluster.connect(p1, ip2, 7000) == f"seen {ip1}"         # never NATed across nodes
    assert cluster.connect(p2, ip1, 7000) == f"seen {ip2}"
    assert cluster.ping(n1.ns, ip2), "node -> remote pod"
    pod3, ip3 = n1.add_pod(cap_args={"portMappings": [{"hostPort": 8080, "containerPort": 7000,
                                                        "protocol": "tcp"}]})
    cluster.serve(pod3, 7000)
    assert cluster.connect(p1, ip3, 7000) == f"seen {ip1}"          # same node, not NATed either
    assert cluster.connect(n2.ns, n1.ip, 8080).startswith("seen "), "hostPort on node 1 from node 2"
    cluster.serve(cluster.ul, 7001)
    assert cluster.connect(p1, OUTSIDE_IP, 7001) == f"seen {n1.ip}", "leaving the cluster network: masqueraded"
    payload = mtu - 28                                                 # IPv4 20 + ICMP 8
    assert cluster.ping(p1, ip2, "-M", "do", "-s", str(payload)), f"DF ping of {mtu} bytes"
    assert not cluster.ping(p1, ip2, "-M", "do", "-s", str(payload + 1)), f"DF ping of {mtu + 1} bytes passed"
    assert "unreachable 10.244.0.0/16 proto 118" in n1.ns.out("ip", "route", "show", "type", "unreachable")
    nowhere = p1.run("ping", "-c", "1", "-W", "2", "10.244.250.9", check=False)
    assert nowhere.returncode != 0 and "Unreachable" in nowhere.stdout.decode(), nowhere.stdout.decode()
    if config is VXLAN:
        link = n1.ns.out("ip", "-d", "link", "show", "pycni.1")
        assert "vxlan id 1 " in link and "dstport 8472" in link and "nolearning" in link, link
        assert f"mtu {mtu}" in link
    for node in (n1, n2):
        for pod in node.pods:
            assert node.cni("del", pod).returncode == 0


# --- what it must survive ---------------------------------------------------------------------------------------

@pytest.mark.slow
def test_a_dead_nodes_entries_go_when_its_lease_expires(cluster: Cluster) -> None:
    """SIGKILL of node 3's agent, and node 4 gone whole (agent killed, its namespace and pods deleted): within
    the TTL (4 s) plus a reconcile, nodes 1 and 2 drop both nodes' route, neighbour and FDB entries; their own
    traffic is not disturbed. (~7 s)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    n3, n4 = cluster.add_node(), cluster.add_node()
    n3.start_agent()
    n4.start_agent()
    (_, ip3), (_, ip4) = n3.add_pod(), n4.add_pod()
    cluster.eventually(lambda: cluster.ping(p1, ip3) and cluster.ping(p2, ip4), what="pods on nodes 3 and 4")
    dead = [(n3.subnet(), n3.ip), (n4.subnet(), n4.ip)]
    assert all(subnet in n1.entries() and subnet in n2.entries() for subnet, _ in dead)
    n3.stop_agent(signal.SIGKILL)
    n4.vanish()
    started = time.monotonic()

    def forgotten() -> bool:
        entries = n1.entries() + n2.entries()
        return not any(subnet in entries or subnet.split("/")[0] + " " in entries or ip in entries
                       for subnet, ip in dead)   # route, neighbour ("10.244.N.0 dev pycni.1 ..."), FDB dst
    cluster.eventually(forgotten, timeout=cluster.ttl + 10,
                       what=lambda: f"peers to forget nodes 3, 4: {n1.entries()} {n1.log.read_text()[-1500:]}")
    assert time.monotonic() - started >= cluster.ttl - 1, "removed before the lease could expire"
    assert cluster.ping(p1, ip2) and cluster.ping(p2, ip1)


@pytest.mark.slow
def test_agent_restart_keeps_the_subnet_and_the_traffic(cluster: Cluster) -> None:
    """SIGTERM leaves device, entries and lease: a restart within the TTL gets the same subnet and a ping every
    50 ms across it loses nothing. After a longer stop (the lease expired, peers dropped the node) the agent
    still gets its subnet back, from subnet.env. (~14 s)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    subnet, before = n2.subnet(), n1.entries()
    pinger = p1.popen("ping", "-i", "0.05", "-w", "3", "-W", "1", ip2, stdout=subprocess.PIPE)
    cluster.procs.append(pinger)
    assert n2.stop_agent() == 0
    assert "pycni.1" in n2.ns.out("ip", "link", "show") and n1.entries() == before
    n2.start_agent()
    assert n2.subnet() == subnet
    out = pinger.communicate(timeout=20)[0].decode()
    assert " 0% packet loss" in out, out
    assert n2.stop_agent() == 0
    cluster.eventually(lambda: subnet not in n1.entries(), timeout=cluster.ttl + 10,
                       what="node 1 to drop node 2 after its lease expired")
    n2.start_agent()
    assert n2.subnet() == subnet
    cluster.eventually(lambda: n1.entries() == before, what="node 1 entries back as before")
    assert cluster.ping(p1, ip2)


def test_a_peers_new_vtep_mac_replaces_its_entries(cluster: Cluster) -> None:
    """Node 2's VTEP gets another MAC (as after a reboot): node 1 replaces the neighbour and FDB entries and
    removes the old FDB entry (flannel leaks it), and traffic flows again. (~6 s)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    old = n2.ns.out("cat", "/sys/class/net/pycni.1/address").strip()
    n2.stop_agent()
    new = "0e:76:aa:bb:cc:dd"
    n2.ns.run("ip", "link", "set", "pycni.1", "address", new)
    n2.start_agent()
    cluster.eventually(lambda: new in n1.entries(), what="the new MAC on node 1")
    entries = n1.entries()
    assert old not in entries, entries
    assert cluster.ping(p1, ip2)


@pytest.mark.parametrize("config", [VXLAN, HOST_GW], ids=["vxlan", "host-gw"])
def test_a_peers_new_public_ip_replaces_its_entries(cluster: Cluster, config: dict) -> None:
    """Node 2's underlay address changes (192.0.2.22 -> .42) and its agent restarts: it keeps its subnet (the key
    is still bound to the etcd lease its subnet.env names), node 1 replaces the FDB entry (vxlan) or the route
    (host-gw) with the new address, nothing with the old one is left, and traffic flows. (~3 s each)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, config)
    subnet, old = n2.subnet(), n2.ip
    assert n2.stop_agent() == 0
    n2.change_ip("192.0.2.42")
    n2.start_agent()
    assert n2.subnet() == subnet
    cluster.eventually(lambda: "192.0.2.42" in n1.entries(), what=lambda: f"the new address on node 1: {n1.entries()}")
    entries = n1.entries()
    assert old not in entries, entries
    key = f"/pycni/network/subnets/{subnet.replace('/', '-')}"
    value = json.loads(cluster.etcdctl("get", "--print-value-only", key).stdout)
    assert value["PublicIP"] == "192.0.2.42"
    assert len(cluster.etcdctl("get", "--prefix", "--keys-only", "/pycni/network/subnets/").stdout.split()) == 2
    cluster.eventually(lambda: cluster.ping(p1, ip2) and cluster.ping(p2, ip1), what="traffic after the change")


def test_release_on_exit_drops_the_node_at_once(cluster: Cluster) -> None:
    """--release-on-exit: SIGTERM exits 0 and deletes the subnet key; node 1 drops node 2's entries at once (well
    before the TTL), node 2's own device stays. (~2 s)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN, "--release-on-exit")
    subnet = n2.subnet()
    assert subnet in n1.entries()
    started = time.monotonic()
    assert n2.stop_agent() == 0
    assert subnet.replace("/", "-") not in cluster.etcdctl("get", "--prefix", "--keys-only", "/pycni/").stdout.decode()
    cluster.eventually(lambda: subnet not in n1.entries() and n2.ip not in n1.entries(), timeout=1.5,
                       what=lambda: f"node 1 to drop node 2 at once: {n1.entries()}")
    assert time.monotonic() - started < cluster.ttl - 1
    assert "pycni.1" in n2.ns.out("ip", "link", "show")
    assert "released " + subnet in n2.log.read_text()


def test_healthz_is_503_until_ready_then_200(cluster: Cluster) -> None:
    """An agent waiting for etcd answers /healthz with 503 and writes no subnet.env; once etcd is up and the
    first reconcile done, 200. (~3 s)"""
    cluster.put_config(VXLAN)
    cluster.stop_etcd()
    node = cluster.add_node()
    node.start_agent(wait=False)
    cluster.eventually(lambda: node.healthz() == "503", what=lambda: f"503 from healthz: {node.healthz()}")
    assert not node.subnet_file.exists()
    cluster.start_etcd()
    node.wait_ready()
    assert node.healthz() == "200"


@pytest.mark.slow
def test_etcd_leader_killed_pods_keep_traffic_and_leases_renew(cluster3: Cluster) -> None:
    """A 3-member etcd whose leader the agents talk to is SIGKILLed: a ping every 50 ms between pods on two nodes
    loses nothing, both subnet keys are still bound to their leases and renewed well past the TTL, and a node
    joining afterwards is programmed on both (their watches failed over). (~10 s)"""
    cluster = cluster3
    leader = cluster.etcd_leader()
    urls = cluster.endpoints.split(",")
    cluster.endpoints = ",".join([urls[leader], *(url for i, url in enumerate(urls) if i != leader)])
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    leases = {node.n: node.lease_id() for node in (n1, n2)}
    pinger = p1.popen("ping", "-i", "0.05", "-w", str(cluster.ttl + 3), "-W", "1", ip2, stdout=subprocess.PIPE)
    cluster.procs.append(pinger)
    cluster.stop_etcd(leader)
    killed = time.monotonic()
    cluster.eventually(lambda: _has_leader(cluster), what="a new etcd leader")
    time.sleep(max(0.0, cluster.ttl + 2 - (time.monotonic() - killed)))   # past the TTL: renewals must work
    for node in (n1, n2):
        ttl = json.loads(cluster.etcdctl("lease", "timetolive", leases[node.n], "-w", "json").stdout)["ttl"]
        assert ttl > 0, f"node {node.n}'s lease {leases[node.n]} expired: {node.log.read_text()[-1500:]}"
    out = pinger.communicate(timeout=20)[0].decode()
    assert " 0% packet loss" in out, out
    n3 = cluster.add_node()
    n3.start_agent()
    p3, ip3 = n3.add_pod()
    cluster.eventually(lambda: cluster.ping(p1, ip3) and cluster.ping(p2, ip3), what="nodes 1, 2 to program node 3")


def _has_leader(cluster: Cluster) -> bool:
    try:
        cluster.etcd_leader()
        return True
    except AssertionError:
        return False


def test_racing_agents_never_share_a_subnet_and_the_next_one_exits_2(cluster: Cluster) -> None:
    """Three agents start at once for a network of three subnets: three different subnets (etcd Txn). A fourth
    node exits with status 2 naming the exhausted network, and touches nothing. (~5 s)"""
    cluster.put_config({"Network": "10.244.0.0/22", "SubnetLen": 24, "Backend": {"Type": "vxlan"}})
    nodes = [cluster.add_node() for _ in range(3)]
    for node in nodes:
        node.start_agent(wait=False)
    for node in nodes:
        node.wait_ready()
    assert sorted(node.subnet() for node in nodes) == ["10.244.1.0/24", "10.244.2.0/24", "10.244.3.0/24"]
    late = cluster.add_node()
    done = late.run_agent()
    assert done.returncode == 2, done.stderr.decode()
    assert "no free /24 left in 10.244.0.0/22" in done.stderr.decode()
    assert "pycni.1" not in late.ns.out("ip", "link", "show") and not late.subnet_file.exists()


@pytest.mark.parametrize("config, message", [
    ("{not json", "config is not JSON"),
    ({"Network": "10.244.0.0/33"}, "Network is not a CIDR"),
    ({"Network": "10.244.0.0/16", "Backend": {"Type": "udp"}}, "Backend.Type 'udp' is not supported"),
], ids=["not-json", "bad-network", "bad-backend"])
def test_a_bad_config_exits_2_and_leaves_the_data_plane(cluster: Cluster, config: object, message: str) -> None:
    """A running node whose config goes bad: the restarted agent exits 2 with the reason; device, peers'
    entries, subnet.env and pod traffic stay. (~5 s each)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    before, env = n1.entries(), n1.subnet_file.read_text()
    assert n1.stop_agent() == 0
    cluster.put_config(config)
    done = n1.run_agent()
    assert done.returncode == 2 and message in done.stderr.decode(), done.stderr.decode()
    assert "Traceback" not in done.stderr.decode()
    assert n1.entries() == before and n1.subnet_file.read_text() == env
    assert cluster.ping(p1, ip2)


def test_unreachable_etcd_exits_1_after_the_start_timeout(cluster: Cluster) -> None:
    node = cluster.add_node()
    started = time.monotonic()
    done = node.ns.run(*__import__("overlay_cluster").agent_argv(), "--etcd-endpoints",
                       "http://192.0.2.99:2379,http://127.0.0.1:1", "--start-timeout", "2",
                       "--subnet-file", str(node.subnet_file), check=False, timeout=60)
    assert done.returncode == 1, done.stderr.decode()
    assert "no etcd endpoint answered" in done.stderr.decode() and "Traceback" not in done.stderr.decode()
    assert time.monotonic() - started < 30


@pytest.mark.slow
def test_etcd_down_pods_still_come_and_go_and_agents_reconverge(cluster: Cluster) -> None:
    """etcd killed: ADD/DEL on both nodes still work (they read only subnet.env) and traffic flows; etcd back:
    a new node joins and the running agents program it (their watches come back). (~10 s)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    cluster.stop_etcd()
    (q1, qip1), (q2, qip2) = n1.add_pod(), n2.add_pod()
    assert cluster.ping(q1, qip2) and cluster.ping(p2, qip1)
    assert n1.cni("del", q1).returncode == 0 and n2.cni("del", q2).returncode == 0
    time.sleep(2)
    cluster.start_etcd()
    n3 = cluster.add_node()
    n3.start_agent()
    p3, ip3 = n3.add_pod()
    cluster.eventually(lambda: cluster.ping(p1, ip3) and cluster.ping(p2, ip3), timeout=20,
                       what="nodes 1 and 2 to reach the new node after etcd came back")
