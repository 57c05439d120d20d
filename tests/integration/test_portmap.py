"""portmap against real iptables-restore / nft, inside a throwaway host netns (netfilter state is per netns).

The "node" is host_ns with a bridge br0 (10.88.0.1/24) and a veth "uplink" holding the host's own address
192.0.2.10; pod netns A (10.88.0.2, runs the servers) and B (10.88.0.3, a client) hang off the bridge.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from common import exec as execs
from portmap.host import Host
from portmap.plugin import make_plugin
from support import (
    GO_BIN,
    Answer,
    Caller,
    Netns,
    cni_env,
    finish,
    in_process,
    nat_rules,
    nft_ruleset,
    ok,
    portmap_conf,
    source_argv,
)

pytestmark = pytest.mark.root

HOST_IP = "192.0.2.10"
SERVER = """
import socket, sys, threading
tcp = socket.socket(); tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind(("0.0.0.0", 80)); tcp.listen()
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("0.0.0.0", 53))
def echo():
    while True:
        data, peer = udp.recvfrom(100); udp.sendto(b"udp:" + data, peer)
threading.Thread(target=echo, daemon=True).start()
print("ready", flush=True)
while True:
    conn, peer = tcp.accept(); conn.sendall(b"hello " + peer[0].encode()); conn.close()
"""
TCP_CLIENT = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); "
              "print(s.recv(100).decode())")
UDP_CLIENT = ("import socket,sys; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(3); "
              "s.sendto(b'ping', (sys.argv[1], int(sys.argv[2]))); print(s.recv(100).decode())")


class Node:
    def __init__(self, host: Netns, pod_a: Netns, pod_b: Netns) -> None:
        self.host, self.pod_a, self.pod_b = host, pod_a, pod_b

    def portmap(self, binary: str | None = None) -> Caller:
        """Our portmap from the source tree (or `binary`, e.g. the Go reference) in the node netns, for pod A."""
        return Caller([binary] if binary else source_argv("portmap"), inside=self.host, cid="pod-a",
                      netns=self.pod_a.path, cni_path=GO_BIN)

    def plugin(self, command: str, conf: dict[str, Any], *, binary: str | None = None, **env: Any) -> Answer:
        return self.portmap(binary)(command, conf, **env)

    def connect(self, ns: Netns, host: str, port: int, client: str = TCP_CLIENT) -> str:
        done = ns.run("python3", "-c", client, host, str(port), check=False, timeout=20)
        return done.stdout.decode().strip() if done.returncode == 0 else f"failed: {done.stderr.decode()[-120:]}"

    def nat(self) -> str:
        return nat_rules(self.host)

    def nft(self) -> str:
        return nft_ruleset(self.host)


def _pod(netns_factory: Callable[[str], Netns], host: Netns, name: str, ip: str, veth: str) -> Netns:
    pod = netns_factory(name)
    host.sh(f"ip link add {veth} type veth peer name eth0 netns {pod.name} && ip link set {veth} master br0 up")
    pod.sh(f"ip addr add {ip}/24 dev eth0 && ip link set eth0 up && ip route add default via 10.88.0.1")
    return pod


@pytest.fixture
def node(host_ns: Netns, netns_factory: Callable[[str], Netns]) -> Iterator[Node]:
    host_ns.sh("ip link add br0 type bridge && ip addr add 10.88.0.1/24 dev br0 && ip link set br0 up && "
               "ip link add up0 type veth peer name up0p && ip link set up0p up && "
               f"ip addr add {HOST_IP}/24 dev up0 && ip link set up0 up && "
               "sysctl -qw net.ipv4.ip_forward=1")
    pod_a = _pod(netns_factory, host_ns, "poda", "10.88.0.2", "veth-a")
    pod_b = _pod(netns_factory, host_ns, "podb", "10.88.0.3", "veth-b")
    server = subprocess.Popen(["ip", "netns", "exec", pod_a.name, sys.executable, "-c", SERVER],
                              stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None and server.stdout.readline() == b"ready\n"
        yield Node(host_ns, pod_a, pod_b)
    finally:
        server.kill()
        server.wait()


def config(mappings: list[dict[str, Any]], *, backend: str | None = None, **keys: Any) -> dict[str, Any]:
    """portmap on network mynet after a plugin that gave pod A 10.88.0.2/24."""
    conf = portmap_conf(mappings, name="mynet", ip="10.88.0.2/24", **keys)
    if backend:
        conf["backend"] = backend
    return conf


WEB = {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
DNS = {"hostPort": 5353, "containerPort": 53, "protocol": "udp"}
PINNED = {"hostPort": 8081, "containerPort": 80, "protocol": "tcp", "hostIP": HOST_IP}
BACKENDS = ["iptables", "nftables"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_mapping_reaches_the_pod_from_pod_host_address_and_localhost(node: Node, backend: str) -> None:
    conf = config([WEB, DNS, PINNED], backend=backend)
    assert ok(node.plugin("ADD", conf))["ips"] == conf["prevResult"]["ips"]
    # another pod: iptables marks the whole container subnet for masquerade, nftables only the pod itself
    peer = "10.88.0.1" if backend == "iptables" else "10.88.0.3"
    assert node.connect(node.pod_b, HOST_IP, 8080) == f"hello {peer}"
    assert node.connect(node.host, HOST_IP, 8080) == f"hello {HOST_IP}"
    assert node.connect(node.host, "127.0.0.1", 8080) == "hello 10.88.0.1"          # route_localnet + snat
    assert node.host.sh("cat /proc/sys/net/ipv4/conf/br0/route_localnet").strip() == "1"
    assert node.connect(node.host, HOST_IP, 5353, UDP_CLIENT) == "udp:ping"
    assert node.connect(node.host, HOST_IP, 8081) == f"hello {HOST_IP}"               # hostIP-specific
    assert node.connect(node.host, "10.88.0.1", 8081).startswith("failed")
    assert node.plugin("CHECK", conf).status == 0                                  # IPv4-only CHECK
    assert node.plugin("DEL", conf, netns="/run/netns/pycni-gone").status == 0     # netns already gone
    assert node.connect(node.host, HOST_IP, 8080).startswith("failed")
    assert node.plugin("CHECK", conf).status != 0
    assert node.plugin("DEL", conf).status == 0                                    # already gone


def _reference_vs_ours(netns_factory: Callable[[str], Netns], command_conf: dict[str, Any]) -> tuple[str, str]:
    nodes = []
    for binary in ("/usr/lib/cni/portmap", None):
        host, pod = netns_factory("cmp"), netns_factory("cmpod")
        node = Node(host, pod, pod)
        ok(node.plugin("ADD", command_conf, cid="abc123", binary=binary))
        nodes.append(node)
    return nodes[0].nat(), nodes[1].nat()


def test_iptables_save_after_add_equals_the_reference_byte_for_byte(netns_factory: Callable[[str], Netns]) -> None:
    conf = config([WEB, DNS, PINNED, {"hostPort": 8443, "containerPort": 443, "protocol": "sctp",
                                      "hostIP": "2001:db8::1"}], conditionsV4=["-s", "10.9.0.0/16", "!", "-i", "lo0"])
    conf["prevResult"]["ips"].append({"address": "fd00:88::2/64", "interface": 0})
    reference, ours = _reference_vs_ours(netns_factory, conf)
    assert "CNI-DN-" in ours and ours == reference


@pytest.mark.parametrize("first,second", [(None, "/usr/lib/cni/portmap"), ("/usr/lib/cni/portmap", None)],
                         ids=["ours-add-go-del", "go-add-ours-del"])
def test_either_implementation_deletes_the_others_rules(node: Node, first: str | None, second: str | None) -> None:
    conf = config([WEB, DNS])
    assert node.plugin("ADD", conf, binary=first).status == 0
    assert node.plugin("ADD", conf, cid="pod-b", binary=first).status == 0
    before = node.nat()
    assert node.plugin("DEL", conf, binary=second).status == 0
    after = node.nat()
    assert "CNI-DN-" in before and 'id: \\"pod-a\\"' in before
    assert 'id: \\"pod-a\\"' not in after and 'id: \\"pod-b\\"' in after
    mine = node.host.run("iptables-save", "-t", "nat").stdout.decode()
    assert "CNI-DN-" + "" in mine and mine.count(":CNI-DN-") == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_gc_removes_only_containers_missing_from_valid_attachments(node: Node, backend: str) -> None:
    for cid in ("keep", "stale1", "stale2"):
        assert node.plugin("ADD", config([WEB], backend=backend), cid=cid).status == 0
    gc = {"cniVersion": "1.1.0", "name": "mynet", "type": "portmap", "backend": backend,
          "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    ok(node.plugin("GC", gc, container=False))
    state = node.nat() if backend == "iptables" else node.nft()
    assert "keep" in state and "stale1" not in state and "stale2" not in state
    assert node.connect(node.host, HOST_IP, 8080) == f"hello {HOST_IP}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_parallel_adds_leave_one_copy_of_each_shared_rule(node: Node, backend: str) -> None:
    if backend == "iptables":   # shared chains present but their jumps gone (e.g. PREROUTING was flushed):
        node.host.run("iptables-restore", "--noflush", input=b"*nat\n-N CNI-HOSTPORT-DNAT\n-N CNI-HOSTPORT-SETMARK\n"
                      b"-N CNI-HOSTPORT-MASQ\nCOMMIT\n")   # every ADD reads "jump missing"; only the lock helps
    procs = [node.portmap().start("ADD", cid=f"c{i}") for i in range(30)]
    conf = config([{"hostPort": 9000, "containerPort": 80, "protocol": "tcp"}], backend=backend)
    results = [finish(p, conf) for p in procs]
    assert [r.status for r in results] == [0] * 30, results[0]
    if backend == "iptables":
        rules = node.host.run("iptables-save", "-t", "nat").stdout.decode().splitlines()
        for shared in ("-A PREROUTING -m addrtype", "-A OUTPUT -m addrtype", "-A POSTROUTING -m comment",
                       "-A CNI-HOSTPORT-SETMARK", "-A CNI-HOSTPORT-MASQ"):
            assert sum(line.startswith(shared) for line in rules) == 1, shared
        assert sum(line.startswith(":CNI-DN-") for line in rules) == 30
    else:
        text = node.nft()
        assert text.count("fib daddr type local jump hostports_all") == 2       # prerouting + output
        assert text.count("jump hostports\n") == 1 and text.count("dnat to") == 30


BAD = [
    {"hostPort": 0, "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 8080, "containerPort": 65536, "protocol": "tcp"},
    {"hostPort": "8080", "containerPort": 80, "protocol": "tcp"},
    {"hostPort": 8080, "containerPort": 80, "protocol": "icmp"},
    {"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "not-an-ip"},
]


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_input_writes_nothing(node: Node, backend: str) -> None:
    assert node.plugin("ADD", config([WEB], backend=backend), cid="existing").status == 0
    before = (node.nat(), node.nft())
    cases = [config([WEB, bad], backend=backend) for bad in BAD]
    cases.append(config([WEB], backend=backend, **{"conditionsV4": ["-s", "1.1.1.1", "-j", "ACCEPT"]
                                                   if backend == "iptables" else ["ip", "saddr", "1.1.1.1", "accept"]}))
    cases.append(config([WEB], backend=backend, **{"conditionsV4": ["ip", "saddr", "1.1.1.1"]
                                                   if backend == "iptables" else ["-s", "1.1.1.1"]}))
    for i, conf in enumerate(cases):
        done = node.plugin("ADD", conf, cid=f"bad{i}")
        assert (done.status, done.code) == (1, 7), done.out
        assert (node.nat(), node.nft()) == before, conf


def test_lock_keeps_racing_adds_from_duplicating_jumps(node: Node, tmp_path: Path) -> None:
    """Widen the read-modify-write window (0.2 s between iptables-save and iptables-restore) for 8 concurrent
    ADDs: each reads "jump missing", so only the lock keeps them from each appending the jump."""
    def run_in_node(argv: list[str], **kwargs: Any) -> execs.Completed:
        done = execs.run(["ip", "netns", "exec", node.host.name, *argv], **kwargs)
        if argv[0] == "iptables-save":
            time.sleep(0.2)
        return done

    node.host.run("iptables-restore", "--noflush", input=b"*nat\n-N CNI-HOSTPORT-DNAT\nCOMMIT\n")
    plugin = make_plugin(Host(programs=execs.Programs.faked(run_in_node), lock_path=str(tmp_path / "portmap.lock")))
    stdin = config([WEB], backend="iptables", snat=False)

    def add(i: int) -> int:
        env = cni_env("ADD", cid=f"r{i}", netns=node.pod_a.path, cni_path="/x", path=None, CNI_ARGS=None)
        return in_process(plugin, env, stdin).status

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(add, range(8))) == [0] * 8
    rules = node.host.run("iptables-save", "-t", "nat").stdout.decode().splitlines()
    assert sum(line.startswith("-A PREROUTING -m addrtype") for line in rules) == 1
    assert sum(line.startswith(":CNI-DN-") for line in rules) == 8


def test_nft_conditions_gate_only_their_own_networks_mappings(node: Node) -> None:
    """The reference put conditionsV4 on the shared prerouting/output jump, so each ADD re-gated every
    network's mappings with its own conditions; here they are part of the network's DNAT rules."""
    gated = {**config([WEB], backend="nftables"), "conditionsV4": ["ip", "saddr", "10.88.0.0/24"]}
    other = {**config([{"hostPort": 8082, "containerPort": 80, "protocol": "tcp"}], backend="nftables"),
             "name": "othernet"}
    assert node.plugin("ADD", gated).status == 0
    assert node.connect(node.pod_b, HOST_IP, 8080) == "hello 10.88.0.3"       # 10.88.0.3 passes the condition
    assert node.connect(node.host, HOST_IP, 8080).startswith("failed")        # 192.0.2.10 does not
    assert node.plugin("ADD", other).status == 0                          # a network without conditions
    assert node.connect(node.host, HOST_IP, 8082) == f"hello {HOST_IP}"
    assert node.connect(node.host, HOST_IP, 8080).startswith("failed")        # still gated
    assert node.plugin("ADD", gated).status == 0                          # and the other way round
    assert node.connect(node.host, HOST_IP, 8082) == f"hello {HOST_IP}"
    for conf in (gated, other):
        assert node.plugin("CHECK", conf).status == 0
        assert node.plugin("DEL", conf).status == 0
    assert "dnat" not in node.nft()
