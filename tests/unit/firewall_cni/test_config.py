"""firewall config parsing: strict for ADD/CHECK/STATUS (exact messages, codes), lenient for DEL/GC; prevResult's
addresses and the bridge an ingress policy isolates."""
from __future__ import annotations

from typing import Any

import pytest

from common.config import base_netconf
from common.errors import CniError, Code
from common.result import parse as parse_result
from firewall_cni import config
from firewall_cni.config import FirewallConf


def conf(**keys: Any) -> Any:
    return base_netconf({"cniVersion": "1.0.0", "name": "net1", "type": "firewall", **keys})


def test_defaults() -> None:
    assert config.parse(conf()) == FirewallConf(name="net1", backend=None, admin_chain="CNI-ADMIN",
                                                zone="trusted", ingress_policy="open")


@pytest.mark.parametrize(("keys", "expected"), [
    ({"backend": ""}, FirewallConf(name="net1")),
    ({"backend": "iptables"}, FirewallConf(name="net1", backend="iptables")),
    ({"Backend": "nftables"}, FirewallConf(name="net1", backend="nftables")),     # Go's case-insensitive keys
    ({"ingressPolicy": ""}, FirewallConf(name="net1")),
    ({"ingressPolicy": "same-bridge"}, FirewallConf(name="net1", ingress_policy="same-bridge")),
    ({"ingressPolicy": "isolated"}, FirewallConf(name="net1", ingress_policy="isolated")),
    ({"iptablesAdminChainName": "MY_ADMIN-1"}, FirewallConf(name="net1", admin_chain="MY_ADMIN-1")),
    ({"iptablesAdminChainName": ""}, FirewallConf(name="net1")),
    ({"firewalldZone": "public"}, FirewallConf(name="net1", zone="public")),
    ({"capabilities": {}, "runtimeConfig": {}, "args": {}, "dns": {}, "ipam": {}, "cniVersions": ["1.0.0"]},
     FirewallConf(name="net1")),
], ids=["empty-backend", "iptables", "nftables-case", "empty-policy", "same-bridge", "isolated", "admin",
        "empty-admin", "zone", "standard-keys"])
def test_accepted(keys: dict[str, Any], expected: FirewallConf) -> None:
    assert config.parse(conf(**keys)) == expected


@pytest.mark.parametrize(("keys", "code", "msg"), [
    ({"backend": "firewalld"}, Code.UNSUPPORTED_FIELD,
     "backend 'firewalld' (firewalld D-Bus zones) is not supported by pycni's firewall plugin at backend: use "
     "'iptables' or 'nftables', or leave backend unset"),
    ({"backend": "iptable"}, Code.INVALID_CONFIG,
     "invalid value 'iptable' at backend: expected one of iptables, nftables, or unset"),
    ({"backend": 1}, Code.INVALID_CONFIG, "expected string at backend, got number 1"),
    ({"ingressPolicy": "foo"}, Code.INVALID_CONFIG,
     "unknown ingress policy 'foo' at ingressPolicy: expected one of open, same-bridge, isolated"),
    ({"ingressPolicy": 5}, Code.INVALID_CONFIG, "expected string at ingressPolicy, got number 5"),
    ({"zone": "trusted"}, Code.INVALID_CONFIG,
     "unknown key 'zone' in the firewall configuration: expected one of backend, iptablesAdminChainName, "
     "firewalldZone, ingressPolicy, dataDir (besides the standard keys)"),
    ({"ingresPolicy": "isolated"}, Code.INVALID_CONFIG,
     "unknown key 'ingresPolicy' in the firewall configuration: expected one of backend, iptablesAdminChainName, "
     "firewalldZone, ingressPolicy, dataDir (besides the standard keys)"),
    ({"iptablesAdminChainName": "A" * 29}, Code.INVALID_CONFIG,
     f"invalid chain name '{'A' * 29}' at iptablesAdminChainName: expected at most 28 letters, digits, '_', '.', "
     "'-', starting with a letter or '_'"),
    ({"iptablesAdminChainName": "-j ACCEPT"}, Code.INVALID_CONFIG,
     "invalid chain name '-j ACCEPT' at iptablesAdminChainName: expected at most 28 letters, digits, '_', '.', "
     "'-', starting with a letter or '_'"),
    ({"iptablesAdminChainName": "CNI-FORWARD"}, Code.INVALID_CONFIG,
     "invalid chain name 'CNI-FORWARD' at iptablesAdminChainName: the chain is built in or managed by the plugin"),
    ({"dataDir": "relative/dir"}, Code.INVALID_CONFIG, "invalid dataDir 'relative/dir': expected an absolute path"),
], ids=["firewalld", "typo-backend", "backend-type", "policy", "policy-type", "zone-key", "typo-key",
        "long-chain", "option-chain", "reserved-chain", "relative-data-dir"])
def test_refused(keys: dict[str, Any], code: int, msg: str) -> None:
    with pytest.raises(CniError) as caught:
        config.parse(conf(**keys))
    assert (caught.value.code, caught.value.msg) == (code, msg)


@pytest.mark.parametrize(("keys", "expected"), [
    ({"backend": "iptable", "ingressPolicy": 5, "zone": "x"}, FirewallConf(name="net1")),
    ({"backend": "firewalld"}, FirewallConf(name="net1", backend="firewalld")),
    ({"backend": "nftables", "iptablesAdminChainName": "A" * 40}, FirewallConf(name="net1", backend="nftables")),
    ({"ingressPolicy": "isolated", "iptablesAdminChainName": "ADM"},
     FirewallConf(name="net1", admin_chain="ADM", ingress_policy="isolated")),
], ids=["typos-default", "firewalld-kept", "bad-chain-default", "valid-kept"])
def test_lenient_never_refuses(keys: dict[str, Any], expected: FirewallConf) -> None:
    assert config.parse_lenient(conf(**keys)) == expected


PREV = {"cniVersion": "1.0.0", "interfaces": [{"name": "cni1"}, {"name": "veth1"}, {"name": "eth0", "sandbox": "/x"}],
        "ips": [{"address": "10.9.0.2/24", "interface": 2}, {"address": "fd09::2/64", "interface": 2},
                {"address": "10.9.0.2/24", "interface": 2}]}


def test_addresses_are_every_ip_once() -> None:
    assert [str(ip) for ip in config.addresses(parse_result(PREV, "1.0.0"))] == ["10.9.0.2", "fd09::2"]


def test_bridge_name() -> None:
    prev = parse_result(PREV, "1.0.0")
    assert config.bridge_name(prev, "open") is None
    assert config.bridge_name(prev, "isolated") == "cni1"


@pytest.mark.parametrize(("interfaces", "msg"), [
    ([], 'interface needs to be set for ingress policy "same-bridge", make sure to chain "firewall" plugin with '
         '"bridge"'),
    ([{"name": ""}], "got empty bridge name"),
    ([{"name": "br0\n-A INPUT -j ACCEPT"}], "invalid bridge name 'br0\\n-A INPUT -j ACCEPT' at "
     "prevResult.interfaces[0].name: longer than 15 bytes"),
    ([{"name": "b r"}], "invalid bridge name 'b r' at prevResult.interfaces[0].name: must not contain '/', ':' or "
     "whitespace"),
    ([{"name": '-jACCEPT'}], "invalid bridge name '-jACCEPT' at prevResult.interfaces[0].name: must not start with "
     "'-', '!' or '+', nor hold quotes, backslashes or control characters"),
    ([{"name": 'b"r'}], "invalid bridge name 'b\"r' at prevResult.interfaces[0].name: must not start with "
     "'-', '!' or '+', nor hold quotes, backslashes or control characters"),
], ids=["no-interfaces", "empty-name", "newline", "space", "option", "quote"])
def test_bridge_errors(interfaces: list[Any], msg: str) -> None:
    prev = parse_result({**PREV, "interfaces": interfaces, "ips": [{"address": "10.9.0.2/24"}]}, "1.0.0")
    with pytest.raises(CniError) as caught:
        config.bridge_name(prev, "same-bridge")
    assert (caught.value.code, caught.value.msg) == (Code.INVALID_CONFIG, msg)
