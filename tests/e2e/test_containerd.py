"""containerd (Debian 12: 1.6 with its CRI plugin) runs pod sandboxes on pycni, driven through the CRI gRPC API as
kubelet drives it. containerd is configured as the README tells an operator: conf-examples/containerd-config.toml
as its config.toml (bin_dir /opt/cni/bin, conf_dir /etc/cni/net.d), the plugin directory under test as bin_dir
(dist_bin: `make install` puts the same files there; PYCNI_E2E_BIN=/usr/lib/cni runs it against the Go plugins),
and conf-examples/10-pycni.conflist (bridge + host-local + portmap) as the one conflist.

containerd runs confined to a throwaway node (tests/support/containerd/node.py): a node netns and a private mount
namespace, its own root/state/sockets, a private /var/lib/cni. One containerd start per test (containerd answers
within ~0.1 s; each test takes 1-2 s).
"""
from __future__ import annotations

import ipaddress
import json
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import REPO, Netns, have
from support.containerd.node import NODE_ADDRESS, ContainerdNode, Pod
from support.runtime import BUSYBOX, is_static

CONFLIST = REPO / "conf-examples" / "10-pycni.conflist"
SNIPPET = REPO / "conf-examples" / "containerd-config.toml"
POD_PORT = 80

# Every message, field and enum value the test relies on, as published in kubernetes/cri-api
# pkg/apis/runtime/v1/api.proto (read at master 791729b2; a published proto never renumbers or retypes a field):
# message -> {field: (number, type, label)}; type is a scalar name, or the message / enum name.
PUBLISHED_FIELDS: dict[str, dict[str, tuple[int, str, str]]] = {
    "VersionRequest": {"version": (1, "string", "optional")},
    "VersionResponse": {"version": (1, "string", "optional"), "runtime_name": (2, "string", "optional"),
                        "runtime_version": (3, "string", "optional"),
                        "runtime_api_version": (4, "string", "optional")},
    "PortMapping": {"protocol": (1, "Protocol", "optional"), "container_port": (2, "int32", "optional"),
                    "host_port": (3, "int32", "optional"), "host_ip": (4, "string", "optional")},
    "PodSandboxMetadata": {"name": (1, "string", "optional"), "uid": (2, "string", "optional"),
                           "namespace": (3, "string", "optional"), "attempt": (4, "uint32", "optional")},
    "LinuxPodSandboxConfig": {"cgroup_parent": (1, "string", "optional")},
    "PodSandboxConfig": {"metadata": (1, "PodSandboxMetadata", "optional"), "hostname": (2, "string", "optional"),
                         "port_mappings": (5, "PortMapping", "repeated"), "labels": (6, "map<string,string>", "map"),
                         "linux": (8, "LinuxPodSandboxConfig", "optional")},
    "RunPodSandboxRequest": {"config": (1, "PodSandboxConfig", "optional"),
                             "runtime_handler": (2, "string", "optional")},
    "RunPodSandboxResponse": {"pod_sandbox_id": (1, "string", "optional")},
    "StopPodSandboxRequest": {"pod_sandbox_id": (1, "string", "optional")},
    "StopPodSandboxResponse": {},
    "RemovePodSandboxRequest": {"pod_sandbox_id": (1, "string", "optional")},
    "RemovePodSandboxResponse": {},
    "PodSandboxStatusRequest": {"pod_sandbox_id": (1, "string", "optional"), "verbose": (2, "bool", "optional")},
    "PodIP": {"ip": (1, "string", "optional")},
    "PodSandboxNetworkStatus": {"ip": (1, "string", "optional"), "additional_ips": (2, "PodIP", "repeated")},
    "PodSandboxStatus": {"id": (1, "string", "optional"), "metadata": (2, "PodSandboxMetadata", "optional"),
                         "state": (3, "PodSandboxState", "optional"), "created_at": (4, "int64", "optional"),
                         "network": (5, "PodSandboxNetworkStatus", "optional"),
                         "labels": (7, "map<string,string>", "map")},
    "PodSandboxStatusResponse": {"status": (1, "PodSandboxStatus", "optional"),
                                 "info": (2, "map<string,string>", "map")},
    "PodSandboxStateValue": {"state": (1, "PodSandboxState", "optional")},
    "PodSandboxFilter": {"id": (1, "string", "optional"), "state": (2, "PodSandboxStateValue", "optional"),
                         "label_selector": (3, "map<string,string>", "map")},
    "ListPodSandboxRequest": {"filter": (1, "PodSandboxFilter", "optional")},
    "PodSandbox": {"id": (1, "string", "optional"), "metadata": (2, "PodSandboxMetadata", "optional"),
                   "state": (3, "PodSandboxState", "optional"), "created_at": (4, "int64", "optional"),
                   "labels": (5, "map<string,string>", "map")},
    "ListPodSandboxResponse": {"items": (1, "PodSandbox", "repeated")},
}
PUBLISHED_ENUMS = {"Protocol": {"TCP": 0, "UDP": 1, "SCTP": 2},
                   "PodSandboxState": {"SANDBOX_READY": 0, "SANDBOX_NOTREADY": 1}}
PUBLISHED_RPCS = {"Version": ("VersionRequest", "VersionResponse"),
                  "RunPodSandbox": ("RunPodSandboxRequest", "RunPodSandboxResponse"),
                  "StopPodSandbox": ("StopPodSandboxRequest", "StopPodSandboxResponse"),
                  "RemovePodSandbox": ("RemovePodSandboxRequest", "RemovePodSandboxResponse"),
                  "PodSandboxStatus": ("PodSandboxStatusRequest", "PodSandboxStatusResponse"),
                  "ListPodSandbox": ("ListPodSandboxRequest", "ListPodSandboxResponse")}


@pytest.fixture(scope="module")
def cri_api(tmp_path_factory: pytest.TempPathFactory) -> types.SimpleNamespace:
    """cri_api.proto compiled with grpc_tools (dev dependency) into a temporary directory."""
    pytest.importorskip("grpc", reason="grpcio not installed (make venv)")
    pytest.importorskip("grpc_tools", reason="grpcio-tools not installed (make venv)")
    from support.containerd.cri import compile_api

    return compile_api(tmp_path_factory.mktemp("cri_api"))


def conflist(cni_version: str) -> dict[str, Any]:
    doc = json.loads(CONFLIST.read_text())
    doc["cniVersion"] = cni_version
    return doc


@pytest.fixture
def containerd_factory(host_ns: Netns, dist_bin: Path,
                       cri_api: types.SimpleNamespace) -> Iterator[Callable[..., ContainerdNode]]:
    """start(cni_version) -> a ContainerdNode running on host_ns with the example conflist at that version;
    stopped and cleaned up at teardown, also on failure."""
    for tool, package in (("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc"),
                          ("nsenter", "util-linux"), ("unshare", "util-linux"), ("iptables-save", "iptables")):
        if not have(tool):
            pytest.skip(f"{tool} not installed (apt-get install {package}; scripts/install-deps.sh)")
    if not is_static(BUSYBOX):
        pytest.skip("a static /bin/busybox is needed for the pause image (apt-get install busybox-static)")
    nodes: list[ContainerdNode] = []

    def start(cni_version: str = "1.0.0") -> ContainerdNode:
        node = ContainerdNode(host_ns, cni_bin=dist_bin, snippet=SNIPPET.read_text(),
                              conflist=conflist(cni_version), api=cri_api)
        nodes.append(node)
        node.start()
        return node

    yield start
    for node in nodes:
        node.stop()
        timings = ", ".join(f"{step} {secs:.2f}s" for step, secs in node.timings)
        print(f"containerd e2e timings: {timings}")


def assert_pod_network(node: ContainerdNode, pod: Pod) -> None:
    """Ready with an IP in the conflist's subnet that is on its eth0, with the IPv4 broadcast the Go bridge sets."""
    subnet = ipaddress.ip_network(node.conflist["plugins"][0]["ipam"]["ranges"][0][0]["subnet"])
    assert ipaddress.ip_address(pod.ip) in subnet, pod
    shown = pod.run("ip", "-o", "-4", "addr", "show", "dev", "eth0", check=True).stdout.decode()
    assert f"inet {pod.ip}/{subnet.prefixlen} brd {subnet.broadcast_address} " in shown, shown


def assert_gone(node: ContainerdNode, ids: list[str]) -> None:
    """Nothing of the removed pods is left in the node: veth, address, per-pod rule, libcni cache, netns file."""
    assert node.veths() == []
    assert node.allocations() == []
    assert node.pod_rules(ids) == []
    assert node.cache_entries() == []
    assert node.netns_files() == []
    assert node.listed_pods() == []


@pytest.mark.e2e
@pytest.mark.root
@pytest.mark.parametrize("cni_version", ["1.0.0", "0.4.0"])
def test_two_pods_with_host_ports(containerd_factory: Callable[..., ContainerdNode], cni_version: str) -> None:
    node = containerd_factory(cni_version)
    assert node.version.runtime_api_version == "v1"
    pod1 = node.run_pod("pod1", port_mappings=[(8080, POD_PORT)])
    pod2 = node.run_pod("pod2", port_mappings=[(8081, POD_PORT)])
    pods, ids = [pod1, pod2], [pod1.id, pod2.id]
    assert pod1.ip != pod2.ip
    for pod in pods:
        assert_pod_network(node, pod)
    assert node.allocations() == sorted([pod1.ip, pod2.ip])
    # libcni caches each network's result: ours (eth0) and the CRI's own loopback network (lo).
    assert sorted(node.cache_entries()) == sorted(f"{net}-{pod.id}-{ifname}" for pod in pods
                                                  for net, ifname in ((node.conflist["name"], "eth0"),
                                                                      ("cni-loopback", "lo")))
    assert node.dnat_rules(pod1) and node.dnat_rules(pod2)
    assert node.pod_rules(ids), "no per-pod rules while the pods run: the leftover check would be blind"
    node.mark("pods checked")

    assert node.ping(None, pod1.ip) and node.ping(None, pod2.ip)
    assert node.ping(pod1, pod2.ip) and node.ping(pod2, pod1.ip)
    node.serve(pod1)
    node.serve(pod2)
    assert node.fetch(pod2, f"http://{pod1.ip}:{POD_PORT}/") == "hello from pod1"
    node.mark("pod-to-pod")

    # hostPorts: on the node's own address and on 127.0.0.1 from the node, from the other pod, and hairpin (the
    # pod reaching its own hostPort).
    for port, pod in ((8080, pod1), (8081, pod2)):
        want = f"hello from {pod.name}"
        other = pod2 if pod is pod1 else pod1
        assert node.fetch(None, f"http://{NODE_ADDRESS}:{port}/") == want
        assert node.fetch(None, f"http://127.0.0.1:{port}/") == want
        assert node.fetch(other, f"http://{NODE_ADDRESS}:{port}/") == want
        assert node.fetch(pod, f"http://{NODE_ADDRESS}:{port}/") == want
    node.mark("hostPorts")

    # StopPodSandbox already tears the network down (CNI DEL of both networks); RemovePodSandbox removes the rest.
    node.stop_servers()
    for pod in pods:
        node.stop_pod(pod)
    assert node.veths() == [] and node.allocations() == [] and node.pod_rules(ids) == []
    assert node.cache_entries() == []
    assert node.fetch(None, "http://127.0.0.1:8080/").startswith("FAILED")
    for pod in pods:
        node.delete_pod(pod)
    assert_gone(node, ids)


@pytest.mark.e2e
@pytest.mark.root
def test_pod_without_port_mappings(containerd_factory: Callable[..., ContainerdNode]) -> None:
    node = containerd_factory()
    pod = node.run_pod("plain")
    assert_pod_network(node, pod)
    assert node.allocations() == [pod.ip]
    assert node.dnat_rules(pod) == []
    assert node.ping(None, pod.ip)
    node.serve(pod)
    assert node.fetch(None, f"http://{pod.ip}:{POD_PORT}/") == "hello from plain"
    node.stop_servers()
    node.remove_pod(pod)
    assert_gone(node, [pod.id])


@pytest.mark.e2e
@pytest.mark.root
def test_restart_containerd_then_remove(containerd_factory: Callable[..., ContainerdNode]) -> None:
    """containerd restarted while pods run: they stay Ready and reachable, and removing them afterwards runs DEL
    from libcni's cached result (the new containerd never ran their ADD)."""
    node = containerd_factory()
    pod1 = node.run_pod("pod1", port_mappings=[(8080, POD_PORT)])
    pod2 = node.run_pod("pod2")
    pods, ids = [pod1, pod2], [pod1.id, pod2.id]
    node.serve(pod1)
    cached = node.cache_entries()
    node.stop_containerd()
    # With containerd gone the pods and their network stay as they were.
    assert node.fetch(pod2, f"http://{NODE_ADDRESS}:8080/") == "hello from pod1"
    node.start_containerd()
    for pod in pods:
        status = node.pod_status(pod)
        assert status.state == node.api.pb2.SANDBOX_READY and status.network.ip == pod.ip, status
    assert node.cache_entries() == cached
    assert node.fetch(None, f"http://{NODE_ADDRESS}:8080/") == "hello from pod1"
    node.stop_servers()
    for pod in pods:
        node.remove_pod(pod)
    assert_gone(node, ids)


def test_cri_subset_matches_published_api(cri_api: types.SimpleNamespace) -> None:
    """cri_api.proto, as compiled, against kubernetes/cri-api's runtime.v1: a wrong number or type would make
    containerd read another field (or drop ours) without any error."""
    from google.protobuf.descriptor import FieldDescriptor

    file = cri_api.pb2.DESCRIPTOR
    assert file.package == "runtime.v1"
    scalar = {getattr(FieldDescriptor, name): name[5:].lower() for name in dir(FieldDescriptor)
              if name.startswith("TYPE_") and name not in ("TYPE_MESSAGE", "TYPE_ENUM", "TYPE_GROUP")}

    def describe(field: FieldDescriptor) -> tuple[int, str, str]:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key, value = (describe(field.message_type.fields_by_name[n])[1] for n in ("key", "value"))
            return field.number, f"map<{key},{value}>", "map"
        # protobuf >= 6 has is_repeated; older releases only the label (removed in 7).
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == FieldDescriptor.LABEL_REPEATED
        label = "repeated" if repeated else "optional"
        if field.message_type is not None:
            return field.number, field.message_type.name, label
        if field.enum_type is not None:
            return field.number, field.enum_type.name, label
        return field.number, scalar[field.type], label

    compiled = {name: {f.name: describe(f) for f in message.fields}
                for name, message in file.message_types_by_name.items()}
    assert compiled == PUBLISHED_FIELDS
    assert {name: {v.name: v.number for v in enum.values} for name, enum in file.enum_types_by_name.items()} \
        == PUBLISHED_ENUMS
    service = file.services_by_name["RuntimeService"]
    assert service.full_name == "runtime.v1.RuntimeService"
    assert {m.name: (m.input_type.name, m.output_type.name) for m in service.methods} == PUBLISHED_RPCS
