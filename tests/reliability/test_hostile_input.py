"""Hostile input through the built executables, inside a throwaway node netns: each case gets a spec error (exit 1,
JSON with an int code and a message) and creates nothing: no file outside (or inside) dataDir, no link, no
iptables/nftables rule."""
from __future__ import annotations

import json
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from support import (
    Caller,
    Netns,
    bridge_conf,
    firewall_state,
    host_local_conf,
    links,
    plugin_argv,
    portmap_conf,
    spec_error,
    tree,
)

pytestmark = pytest.mark.e2e
bridge = partial(bridge_conf, isGateway=True, ipMasq=True)

WEB = {"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}
BAD_NAMES = ["..", "../../etc", "a/b", "/abs", 'a"b', "a'b", "a\nb", "net\n", " net", "-net", ".hidden", "a;b", "a b",
             "n\u00e9t", "a\x00b"]
BAD_IDS = ["../x", "a/b", "a b", "a\nb", "c1\n", "-a", ".a", '"', "a;b", "\u00e4", "a" * 5000 + "/"]
BAD_IFNAMES = ["a" * 16, ".", "..", "a/b", "a:b", "a b", "eth0\n", "\t"]
PORT_CASES = [dict(WEB, hostPort=p) for p in (0, -1, 70000, 1.5, "80", True, None)] + \
             [dict(WEB, containerPort=p) for p in (0, -1, 70000)] + \
             [dict(WEB, protocol=p) for p in ("icmp", "tcp;udp", "tcp ", 6)] + \
             [dict(WEB, hostIP=h) for h in ("not-an-ip", "10.0.0.999", "10.0.0.1/24", "::1%eth0", 7)]
CONDITIONS = [["-j", "ACCEPT"], ["-jACCEPT"], ["--jump", "ACCEPT"], ["--ju", "ACCEPT"], ["-g", "X"],
              ["-p", "tcp", "-j"],
              ["-A", "INPUT"], ["-s", "1.2.3.4", "-j", "ACCEPT"], ["-s", "1.2.3.4\n-A INPUT -j ACCEPT"],
              ["-s", "1.2.3.4 -j ACCEPT"], ["-p tcp -j ACCEPT"], ["!", "-s", "1.2.3.4", "-tfilter"],
              ["tcp dport 80 accept"], ["ip saddr 1.2.3.4 ; add rule ip filter input accept"],
              ["ip saddr 1.2.3.4", "jump x"], ["meta l4proto tcp counter drop"], ["ip saddr 1.2.3.4\nflush ruleset"],
              ["tcp dport 80 # comment"]]


def nested(depth: int) -> bytes:
    return b'{"cniVersion":"1.0.0","name":"n","type":"portmap","x":' + b"[" * depth + b"]" * depth + b"}"


@pytest.fixture
def node(dist_bin: Path, host_ns: Netns, netns_factory: Callable[[str], Netns], tmp_path: Path) -> Callable[..., dict]:
    pod = netns_factory("pod")
    root = tmp_path / "root"
    data = root / "data"
    data.mkdir(parents=True)
    # The bridge device is shared node state that a bridge ADD sets up before IPAM runs (as the reference does);
    # it exists from the first container on, so it exists here too.
    host_ns.run("ip", "link", "add", "relbr0", "type", "bridge")
    before = {"fw": firewall_state(host_ns), "links": links(host_ns), "pod": links(pod)}

    def attempt(plugin: str, conf: dict[str, Any] | bytes | Callable[[Path], Any], *codes: int,
                **env: str) -> dict[str, Any]:
        if callable(conf):
            conf = conf(data)
        call = Caller(plugin_argv(plugin, dist_bin), inside=host_ns, cid="pod-1", netns=pod.path, cni_path=dist_bin)
        error = spec_error(call("ADD", conf, **env), *codes)
        assert tree(root) == {"data": "d"}, f"{plugin} wrote something: {tree(root)}"
        assert firewall_state(host_ns) == before["fw"]
        assert links(host_ns) == before["links"] and links(pod) == before["pod"]
        return error
    return attempt


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize("plugin", ["bridge", "host-local", "portmap"])
def test_network_names(node: Callable[..., dict], plugin: str, name: str) -> None:
    conf = (lambda data: portmap_conf([WEB], name=name)) if plugin == "portmap" else \
        (lambda data: bridge(data, name=name))
    error = node(plugin, conf, 7)
    assert "name" in error["msg"]


@pytest.mark.parametrize("cid", BAD_IDS)
def test_container_ids(node: Callable[..., dict], cid: str) -> None:
    for plugin in ("bridge", "portmap"):
        conf = (lambda data: portmap_conf([WEB])) if plugin == "portmap" else bridge
        assert "CNI_CONTAINERID" in node(plugin, conf, 4, CNI_CONTAINERID=cid)["msg"]
    assert "CNI_CONTAINERID" in node("host-local", host_local_conf, 4, CNI_CONTAINERID=cid, CNI_COMMAND="DEL")["msg"]


@pytest.mark.parametrize("ifname", BAD_IFNAMES)
def test_ifnames(node: Callable[..., dict], ifname: str) -> None:
    assert "CNI_IFNAME" in node("bridge", bridge, 4, CNI_IFNAME=ifname)["msg"]
    assert "CNI_IFNAME" in node("portmap", lambda data: portmap_conf([WEB]), 4, CNI_IFNAME=ifname)["msg"]


def test_huge_and_deep_configs(node: Callable[..., dict]) -> None:
    big = json.dumps(portmap_conf([dict(WEB, hostPort=1 + i % 65000) for i in range((4 << 20) // 60)])).encode()
    assert len(big) > 4 << 20
    assert "too large" in node("portmap", big, 6)["msg"]
    assert "too large" in node("bridge", lambda data: json.dumps(bridge(data, pad="x" * (4 << 20))).encode(),
                               6)["msg"]
    for depth in (100_000, 5_000):
        node("portmap", nested(depth), 6)
        node("host-local", nested(depth), 6)
    node("portmap", b"\xff\xfe{", 6)
    node("portmap", b"", 6)
    node("portmap", b"[]", 6)


@pytest.mark.parametrize("mapping", PORT_CASES, ids=lambda m: json.dumps(m))
def test_port_mappings(node: Callable[..., dict], mapping: dict[str, Any]) -> None:
    node("portmap", lambda data: portmap_conf([WEB, mapping]), 7)


def test_bad_static_ip_in_cni_args(node: Callable[..., dict]) -> None:
    """(An empty `IP=` is no request, as Go's net.IP.UnmarshalText reads it; the bridge itself knows only MAC, so
    runtimes send IgnoreUnknown=1, and host-local still sees IP.)"""
    for args in ("IP=10.0.0.999", "IP=10.77.0.5;IP=x", "IP=10.77.0.1", "IP=10.99.0.5", "IP=10.77.0.5=x",
                 "IP=fe80::1%eth0", "IP=10.77.0.5/33", "K8S_POD=x"):
        node("host-local", bridge, 4, 7, CNI_ARGS=args)
        node("bridge", bridge, 4, 7, CNI_ARGS=args)
        if args.startswith("IP="):
            node("bridge", bridge, 4, 7, CNI_ARGS=f"IgnoreUnknown=1;{args}")


@pytest.mark.parametrize("conditions", CONDITIONS, ids=lambda c: json.dumps(c))
@pytest.mark.parametrize("key", ["conditionsV4", "conditionsV6"])
def test_conditions_cannot_smuggle_rules(node: Callable[..., dict], conditions: list[str], key: str) -> None:
    node("portmap", lambda data: portmap_conf([WEB], **{key: conditions}), 7)


def test_external_chain_and_mark_bit(node: Callable[..., dict]) -> None:
    for extra in ({"externalSetMarkChain": "X -j ACCEPT"}, {"externalSetMarkChain": "a" * 29},
                  {"externalSetMarkChain": "ACCEPT\n"}, {"markMasqBit": 32}, {"markMasqBit": -1},
                  {"backend": "iptables; rm"}, {"backend": "nftables", "markMasqBit": 3}):
        node("portmap", portmap_conf([WEB], **extra), 7)


def firewall_conf(*, interfaces: list[dict[str, Any]] | None = None, ips: list[dict[str, Any]] | None = None,
                  **keys: Any) -> dict[str, Any]:
    prev = {"cniVersion": "1.0.0", "interfaces": interfaces or [{"name": "relbr0"}, {"name": "eth0"}],
            "ips": ips or [{"address": "10.77.0.5/24"}]}
    return {"cniVersion": "1.0.0", "name": "net", "type": "firewall", "prevResult": prev, **keys}


FIREWALL_CASES = [
    ({"iptablesAdminChainName": "-j ACCEPT"}, 7), ({"iptablesAdminChainName": "X\n-A INPUT -j ACCEPT"}, 7),
    ({"iptablesAdminChainName": "FORWARD"}, 7), ({"iptablesAdminChainName": "A" * 29}, 7),
    ({"iptablesAdminChainName": "a b"}, 7), ({"iptablesAdminChainName": 5}, 7),
    ({"ingressPolicy": "isolated;drop"}, 7), ({"ingressPolicy": ["open"]}, 7), ({"backend": "firewalld"}, 2),
    ({"backend": "nft"}, 7), ({"Zone": "trusted"}, 7), ({"firewalldZone": 1}, 7),
    ({"ingressPolicy": "same-bridge", "interfaces": [{"name": "br0\n-A INPUT -j ACCEPT"}]}, 7),
    ({"ingressPolicy": "isolated", "interfaces": [{"name": "-jACCEPT"}]}, 7),
    ({"ingressPolicy": "isolated", "interfaces": [{"name": 'a"b'}]}, 7),
    ({"ingressPolicy": "isolated", "interfaces": [{"name": "a" * 16}]}, 7),
    ({"ips": [{"address": "10.0.0.1/33"}]}, 7), ({"ips": [{"address": "10.0.0.1\n-A INPUT -j ACCEPT/24"}]}, 7),
    ({"prevResult": None}, 7), ({"prevResult": "x"}, 7),
]


@pytest.mark.parametrize(("keys", "code"), FIREWALL_CASES,
                         ids=lambda c: json.dumps(c) if isinstance(c, dict) else None)
def test_firewall_keys_prev_result_and_bridge_names(node: Callable[..., dict], keys: dict[str, Any],
                                                    code: int) -> None:
    conf = firewall_conf(**{k: v for k, v in keys.items() if k in ("interfaces", "ips")})
    conf.update({k: v for k, v in keys.items() if k not in ("interfaces", "ips")})
    node("firewall", {k: v for k, v in conf.items() if v is not None}, code)


def test_firewall_names_ids_and_ifnames(node: Callable[..., dict]) -> None:
    for name in BAD_NAMES:
        assert "name" in node("firewall", firewall_conf(name=name), 7)["msg"]
    for cid in BAD_IDS:
        assert "CNI_CONTAINERID" in node("firewall", firewall_conf(), 4, CNI_CONTAINERID=cid)["msg"]
    for ifname in BAD_IFNAMES:
        assert "CNI_IFNAME" in node("firewall", firewall_conf(), 4, CNI_IFNAME=ifname)["msg"]
    node("firewall", b'{"cniVersion":"1.0.0","name":"n","type":"firewall","x":' + b"[" * 100_000 + b"]" * 100_000
         + b"}", 6)
