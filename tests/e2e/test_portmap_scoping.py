"""portmap touches only its own network's rules, and every rule of a container whatever the length of its ID
(issue 12, items 1 and 8), through the built executables in a throwaway node namespace.

* A pod on two portmap networks (and another pod on the second one), through libcni: ADD, CHECK, GC and DEL on
  one network leave the other network's mappings working, on both backends.
* Container IDs of 300 characters that differ only at the end (iptables keeps 255 bytes of a comment, nft
  refuses comments over 128): ADD, CHECK, GC and DEL tell them apart, on both backends; on iptables the Go
  portmap (1.1.1, /usr/lib/cni) and ours remove each other's rules for such IDs.
* nftables rules in the reference's own format (comment = container ID, no network): told apart by the address
  they serve, so DEL on one network does not remove the pod's mapping on another.
GC is run directly (Debian's libcni knows only spec <= 1.0.0), as in test_gc_status.py.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from common.firewall.names import chain_name
from support import GO_BIN, Caller, Netns, Node, gc_conf, ok, portmap_conf, requires_go

pytestmark = pytest.mark.e2e
GO_PORTMAP = GO_BIN / "portmap"
HOST_IP = "192.0.2.10"      # the node's own address (on a veth "uplink"): mappings are reached through it
BACKENDS = ["iptables", "nftables"]


def conflist(name: str, bridge: str, subnet: str, backend: str, *, routes: list[dict[str, str]]) -> dict[str, Any]:
    return {"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "routes": routes}},
        {"type": "portmap", "backend": backend, "capabilities": {"portMappings": True}}]}


def mapping(host_port: int) -> dict[str, Any]:
    return {"portMappings": [{"hostPort": host_port, "containerPort": 80, "protocol": "tcp"}]}


def add_host_address(host: Netns) -> None:
    host.sh(f"ip link add p12up type veth peer name p12upp && ip link set p12upp up && "
            f"ip addr add {HOST_IP}/24 dev p12up && ip link set p12up up")


def portmap_state(host: Netns) -> str:
    """Per-container state of both backends: CNI-DN chains and jumps, nft rules naming a container, and nft
    network counters (shared chains and their jumps are meant to stay)."""
    nat = host.sh("iptables-save -t nat; ip6tables-save -t nat")
    nft = host.sh("nft list ruleset", check=False)
    lines = [line for line in nat.splitlines() if "CNI-DN-" in line]
    lines += [line.strip() for line in nft.splitlines() if re.search(r'(dnat to|masquerade) .*comment "', line)
              or line.strip().startswith("counter network-")]
    return "\n".join(lines)


def portmap(host: Netns, binary: Path) -> Caller:
    """`binary` in the node, CNI_PATH its directory; GC gets no container variables (as the spec sends none)."""
    return Caller([binary], inside=host, cni_path=binary.parent, cid="", container=None, CNI_ARGS=None)


def gc_portmap(net: str, backend: str, valid: list[str] | list[tuple[str, str]]) -> dict[str, Any]:
    """portmap's GC config for network `net`, the attachments `valid` kept."""
    return gc_conf({"name": net, "type": "portmap", "backend": backend}, *valid)


# --- item 1: a pod on two networks --------------------------------------------------------------------------

class TwoNetworks:
    """Networks p12a (10.96.1.0/24, bridge p12a0) and p12b (10.96.2.0/24, p12b0) on one node, through libcni."""

    def __init__(self, netns_factory: Any, dist_bin: Path, cnitool: Path, work: Path, backend: str) -> None:
        self.a = conflist("p12a", "p12a0", "10.96.1.0/24", backend, routes=[{"dst": "0.0.0.0/0"}])
        self.b = conflist("p12b", "p12b0", "10.96.2.0/24", backend, routes=[{"dst": "192.0.2.0/24"}])
        self.node = Node(netns_factory, cni_bin=dist_bin, cnitool=cnitool, work=work, conflist=self.a)
        self.b["plugins"][0]["ipam"]["dataDir"] = str(self.node.data_dir)
        (work / "net.d" / "b.conflist").write_text(json.dumps(self.b))
        self.dist_bin, self.work = dist_bin, work
        add_host_address(self.node.host)

    def cni(self, verb: str, net: str, pod: Netns, ifname: str, port: int) -> Any:
        return self.node.cni(verb, pod, network=net, ifname=ifname, cap_args=mapping(port))

    def ok(self, verb: str, net: str, pod: Netns, ifname: str, port: int) -> None:
        self.node.ok(verb, pod, network=net, ifname=ifname, cap_args=mapping(port))

    def gc(self, net: str, valid: list[tuple[str, str]], backend: str) -> None:
        ok(portmap(self.node.host, self.dist_bin / "portmap")("GC", gc_portmap(net, backend, valid)))

    def reaches(self, port: int, pod: Netns) -> bool:
        return self.node.connect(self.node.host, HOST_IP, port) == f"hello from {pod.name}"


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_network_keeps_its_own_mappings(backend, netns_factory, dist_bin, cnitool, tmp_path):
    nets = TwoNetworks(netns_factory, dist_bin, cnitool, tmp_path, backend)
    node = nets.node
    pod1, pod2 = node.pod(), node.pod()
    attached = [("p12a", pod1, "eth0", 8081), ("p12b", pod1, "eth1", 8082), ("p12b", pod2, "eth0", 8083)]
    try:
        for net, pod, ifname, port in attached:
            nets.ok("add", net, pod, ifname, port)
        node.serve(pod1, "0.0.0.0", 80)
        node.serve(pod2, "0.0.0.0", 80)
        # ADD on p12b (pod1's second network, then pod2) kept pod1's p12a mapping
        assert nets.reaches(8081, pod1) and nets.reaches(8082, pod1) and nets.reaches(8083, pod2)
        for net, pod, ifname, port in attached:
            nets.ok("check", net, pod, ifname, port)

        # GC of p12a with its only container valid: nothing of p12b (pod2 is not in p12a's list) goes
        nets.gc("p12a", [(pod1.name, "eth0")], backend)
        assert nets.reaches(8081, pod1) and nets.reaches(8082, pod1) and nets.reaches(8083, pod2)

        # DEL of pod1 on p12a removes its p12a mapping only; CHECK on p12a now fails, on p12b still passes
        nets.ok("del", "p12a", pod1, "eth0", 8081)
        assert not nets.reaches(8081, pod1)
        assert nets.reaches(8082, pod1) and nets.reaches(8083, pod2)
        assert nets.cni("check", "p12a", pod1, "eth0", 8081).returncode != 0
        nets.ok("check", "p12b", pod1, "eth1", 8082)

        # GC of p12b with both its containers valid changes nothing
        before = portmap_state(node.host)
        nets.gc("p12b", [(pod1.name, "eth1"), (pod2.name, "eth0")], backend)
        assert portmap_state(node.host) == before

        nets.ok("del", "p12b", pod1, "eth1", 8082)
        nets.ok("del", "p12b", pod2, "eth0", 8083)
        assert portmap_state(node.host) == ""         # no rule, no nft network counter left
    finally:
        node.stop_servers()
        for net, pod, ifname, port in attached:
            nets.cni("del", net, pod, ifname, port)


# --- item 8: long container IDs ------------------------------------------------------------------------------

LONG_KEEP, LONG_GONE = "k" * 300, "k" * 299 + "g"   # the same first 299 characters


def dn_chain(cid: str) -> str:
    return chain_name("p12long", cid, "DN-")


class Pods:
    """A node with bridge p12br (10.97.0.1/24) and pods wired to it by hand (portmap needs only addresses)."""

    def __init__(self, netns_factory: Any, binary: Path) -> None:
        self.make, self.binary = netns_factory, binary
        self.host = netns_factory("node")
        self.host.sh("ip link add p12br type bridge && ip addr add 10.97.0.1/24 dev p12br && ip link set p12br up")
        add_host_address(self.host)
        self.pods: list[Netns] = []
        self.servers: list[subprocess.Popen[bytes]] = []

    def pod(self) -> tuple[Netns, str]:
        pod, n = self.make("pod"), len(self.pods) + 2
        self.host.sh(f"ip link add p12v{n} type veth peer name eth0 netns {pod.name} && "
                     f"ip link set p12v{n} master p12br up")
        pod.sh(f"ip addr add 10.97.0.{n}/24 dev eth0 && ip link set eth0 up && ip route add default via 10.97.0.1")
        self.pods.append(pod)
        return pod, f"10.97.0.{n}"

    def conf(self, backend: str, address: str, port: int) -> dict[str, Any]:
        return portmap_conf(mapping(port)["portMappings"], name="p12long", ip=f"{address}/24", sandbox="/x",
                            backend=backend)

    def call(self, command: str, conf: dict[str, Any], cid: str, pod: Netns, binary: Path | None = None) -> Any:
        return portmap(self.host, binary or self.binary)(command, conf, cid=cid, netns=pod.path)

    def ok(self, command: str, conf: dict[str, Any], cid: str, pod: Netns, binary: Path | None = None) -> None:
        done = self.call(command, conf, cid, pod, binary)
        assert done.status == 0, f"{command} {cid[-8:]}: {done.stdout}"

    def gc(self, backend: str, valid: list[str]) -> None:
        ok(portmap(self.host, self.binary)("GC", gc_portmap("p12long", backend, valid)))

    def serve(self, pod: Netns) -> None:
        """A TCP server on the pod's port 80 answering with the pod's name."""
        proc = subprocess.Popen(["ip", "netns", "exec", pod.name, "python3", "-c", SERVER, pod.name],
                                stdout=subprocess.PIPE)
        self.servers.append(proc)
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"

    def stop_servers(self) -> None:
        for proc in self.servers:
            proc.kill()
            proc.wait()

    def reaches(self, port: int, pod: Netns) -> bool:
        done = self.host.run("python3", "-c", CLIENT, HOST_IP, str(port), check=False, timeout=30)
        return done.returncode == 0 and done.stdout.decode() == pod.name


CLIENT = ("import socket,sys; s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3); "
          "print(s.recv(100).decode(), end='')")
SERVER = ("import socket,sys; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
          "s.bind(('0.0.0.0', 80)); s.listen(8); print('ready', flush=True)\n"
          "while True:\n c, _ = s.accept(); c.sendall(sys.argv[1].encode()); c.close()")


@pytest.fixture
def pods(netns_factory, dist_bin) -> Iterator[Pods]:
    made = Pods(netns_factory, dist_bin / "portmap")
    try:
        yield made
    finally:
        made.stop_servers()


@pytest.mark.parametrize("backend", BACKENDS)
def test_long_container_ids_are_told_apart(backend, pods):
    (keep_pod, keep_ip), (gone_pod, gone_ip) = pods.pod(), pods.pod()
    keep, gone = pods.conf(backend, keep_ip, 8091), pods.conf(backend, gone_ip, 8092)
    pods.ok("ADD", keep, LONG_KEEP, keep_pod)       # nft: a 300-character comment was refused (999)
    pods.ok("ADD", gone, LONG_GONE, gone_pod)
    pods.serve(keep_pod)
    pods.serve(gone_pod)
    assert pods.reaches(8091, keep_pod) and pods.reaches(8092, gone_pod)

    pods.gc(backend, [LONG_KEEP])                    # iptables: a cut comment was never matched, GC kept it
    assert pods.reaches(8091, keep_pod) and not pods.reaches(8092, gone_pod)
    pods.ok("CHECK", keep, LONG_KEEP, keep_pod)     # iptables: the cut comment was not recognised
    assert pods.call("CHECK", gone, LONG_GONE, gone_pod).status != 0

    pods.ok("DEL", keep, LONG_KEEP, keep_pod)
    assert not pods.reaches(8091, keep_pod)
    assert portmap_state(pods.host) == ""


@requires_go("portmap")
@pytest.mark.parametrize("adder", ["go", "ours"])
def test_long_container_ids_with_the_go_portmap(adder, pods):
    """iptables: for IDs whose comment is cut, the other implementation's DEL removes the rules, and our CHECK
    and GC recognise the Go plugin's."""
    (pod1, ip1), (pod2, ip2) = pods.pod(), pods.pod()
    first, second = (GO_PORTMAP, None) if adder == "go" else (None, GO_PORTMAP)
    conf1, conf2 = pods.conf("iptables", ip1, 8093), pods.conf("iptables", ip2, 8094)
    pods.ok("ADD", conf1, LONG_KEEP, pod1, first)
    pods.ok("ADD", conf2, LONG_GONE, pod2, first)
    pods.serve(pod1)
    assert pods.reaches(8093, pod1)
    if adder == "go":   # (the Go portmap's own CHECK is broken with ip6tables usable: tests/driver/README.md)
        pods.ok("CHECK", conf1, LONG_KEEP, pod1)
        pods.gc("iptables", [LONG_KEEP])
        state = portmap_state(pods.host)
        assert dn_chain(LONG_GONE) not in state and dn_chain(LONG_KEEP) in state and pods.reaches(8093, pod1)
    pods.ok("DEL", conf2, LONG_GONE, pod2, second)
    pods.ok("DEL", conf1, LONG_KEEP, pod1, second)
    assert not pods.reaches(8093, pod1)
    assert portmap_state(pods.host) == ""


# --- nftables rules in the reference's format -----------------------------------------------------------------

def reference_rules(address: str, port: int, cid: str) -> str:
    """What the reference portmap (v1.9.1, knftables) writes for one mapping of an IPv4 container."""
    t = "ip cni_hostport"
    return "\n".join([
        f'add table {t} {{ comment "CNI portmap plugin" ; }}',
        f"add chain {t} hostports", f"add chain {t} hostip_hostports", f"add chain {t} hostports_all",
        f"flush chain {t} hostports_all",
        f"add rule {t} hostports_all jump hostip_hostports", f"add rule {t} hostports_all jump hostports",
        f"add chain {t} prerouting {{ type nat hook prerouting priority -100 ; }}", f"flush chain {t} prerouting",
        f"add rule {t} prerouting fib daddr type local jump hostports_all",
        f"add chain {t} output {{ type nat hook output priority -100 ; }}", f"flush chain {t} output",
        f"add rule {t} output fib daddr type local jump hostports_all",
        f"add chain {t} masquerading {{ type nat hook postrouting priority 100 ; }}",
        f'add rule {t} hostports tcp dport {port} dnat to {address}:80 comment "{cid}"',
        f'add rule {t} masquerading ip saddr {address} ip daddr {address} masquerade comment "{cid}"',
        f'add rule {t} masquerading ip saddr 127.0.0.1 ip daddr {address} masquerade comment "{cid}"', ""])


def test_reference_nftables_rules_are_told_apart_by_address(pods):
    """One container on networks p12long (10.97.0.2, port 8095) and p12other (10.97.0.3, 8096; a second pod
    netns stands in for its second interface), both mapped by the reference: its rules carry the same comment."""
    (pod_a, ip_a), (pod_b, ip_b) = pods.pod(), pods.pod()
    cid = "p12-ref-0123456789abcdef"
    pods.host.run("nft", "-f", "-", input=(reference_rules(ip_a, 8095, cid) + reference_rules(ip_b, 8096, cid))
                  .encode())
    pods.serve(pod_a)
    pods.serve(pod_b)
    on_a = pods.conf("nftables", ip_a, 8095)
    on_b = {**pods.conf("nftables", ip_b, 8096), "name": "p12other"}
    assert pods.reaches(8095, pod_a) and pods.reaches(8096, pod_b)
    pods.ok("CHECK", on_a, cid, pod_a)
    pods.ok("CHECK", on_b, cid, pod_b)

    pods.ok("DEL", on_a, cid, pod_a)                 # prevResult's address says which rules are p12long's
    assert not pods.reaches(8095, pod_a) and pods.reaches(8096, pod_b)
    pods.ok("CHECK", on_b, cid, pod_b)

    # GC cannot place an untagged rule on a network (its comment names none): it leaves it alone
    ok(portmap(pods.host, pods.binary)("GC", gc_portmap("p12other", "nftables", [])))
    assert pods.reaches(8096, pod_b)

    pods.ok("ADD", on_b, cid, pod_b)                 # a repeated ADD replaces the reference's rules with ours
    state = portmap_state(pods.host)
    assert state.count(f"dnat to {ip_b}:80") == 1 and state.count("masquerade") == 2, state
    assert pods.reaches(8096, pod_b)
    pods.ok("DEL", on_b, cid, pod_b)
    assert portmap_state(pods.host) == ""
