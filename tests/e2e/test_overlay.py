"""Issue 15 on one machine: pods on different nodes reach each other over pycni-overlayd's VXLAN or host-gw data
plane, backed by a real etcd (tests/e2e/overlay_cluster.py builds the namespaces; nothing outside them is used)."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path
from typing import Iterator

import pytest

from overlay_cluster import OUTSIDE_IP, Cluster

pytestmark = pytest.mark.e2e
VXLAN = {"Network": "10.244.0.0/16", "SubnetLen": 24, "Backend": {"Type": "vxlan", "VNI": 1, "Port": 8472}}
HOST_GW = {"Network": "10.244.0.0/16", "SubnetLen": 24, "Backend": {"Type": "host-gw"}}


@pytest.fixture
def cluster(tmp_path: Path, dist_bin: Path, cnitool: Path) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path, cni_bin=dist_bin, cnitool=cnitool)
    try:
        cluster.start_etcd()
        yield cluster
    finally:
        cluster.close()


def two_nodes(cluster: Cluster, config: dict, *extra: str) -> tuple:
    cluster.put_config(config)
    n1, n2 = cluster.add_node(), cluster.add_node()
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
    fails. (~6 s each)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, config, "--ip-masq")
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
    """SIGKILL of node 3's agent: within the TTL (4 s) plus a reconcile, nodes 1 and 2 drop its route,
    neighbour and FDB entries; their own traffic is not disturbed. (~9 s)"""
    n1, n2, p1, ip1, p2, ip2 = two_nodes(cluster, VXLAN)
    n3 = cluster.add_node()
    n3.start_agent()
    p3, ip3 = n3.add_pod()
    cluster.eventually(lambda: cluster.ping(p1, ip3), what="pod on node 3")
    dead = n3.subnet()
    assert dead in n1.entries() and dead in n2.entries()
    n3.stop_agent(signal.SIGKILL)
    started = time.monotonic()
    gateway = dead.split("/")[0] + " "          # its neighbour entry: "10.244.N.0 dev pycni.1 ..."

    def forgotten() -> bool:
        entries = n1.entries() + n2.entries()
        return dead not in entries and gateway not in entries and n3.ip not in entries
    cluster.eventually(forgotten, timeout=cluster.ttl + 10,
                       what=lambda: f"peers to forget node 3: {n1.entries()} {n1.log.read_text()[-1500:]}")
    assert time.monotonic() - started >= cluster.ttl - 1, "removed before the lease could expire"
    assert n3.ip not in n1.entries() and n3.ip not in n2.entries()
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
