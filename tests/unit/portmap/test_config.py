"""portmap configuration: every bad input is code 7 with a message naming the key path and the value."""
from __future__ import annotations

from typing import Any

import pytest

from common.config import base_netconf
from common.errors import CniError
from common.ip import ip_interface
from common.types import Interface, IPConfig, Result
from portmap import config

OK = {"hostPort": 1, "containerPort": 1}


def _parse(extra: dict[str, Any] | None = None, maps: list[dict[str, Any]] | None = None) -> config.PortmapConf:
    data: dict[str, Any] = {"cniVersion": "1.0.0", "name": "mynet", "type": "portmap"}
    if maps is not None:
        data["runtimeConfig"] = {"portMappings": [OK, *maps]}
    data.update(extra or {})
    return config.parse(base_netconf(data))


BAD_MAPPINGS = [
    ({"hostPort": 0, "containerPort": 80},
     "0 out of range at runtimeConfig.portMappings[1].hostPort: expected 1..65535"),
    ({"hostPort": 70000, "containerPort": 80},
     "70000 out of range at runtimeConfig.portMappings[1].hostPort: expected 1..65535"),
    ({"hostPort": 80, "containerPort": -1},
     "-1 out of range at runtimeConfig.portMappings[1].containerPort: expected 1..65535"),
    ({"hostPort": "80", "containerPort": 80},
     "expected integer at runtimeConfig.portMappings[1].hostPort, got string '80'"),
    ({"hostPort": True, "containerPort": 80},
     "expected integer at runtimeConfig.portMappings[1].hostPort, got boolean true"),
    ({"hostPort": 80, "containerPort": 80.5},
     "expected integer at runtimeConfig.portMappings[1].containerPort, got 80.5"),
    ({"containerPort": 80}, "missing required key runtimeConfig.portMappings[1].hostPort"),
    ({"hostPort": 80, "containerPort": 80, "protocol": "icmp"},
     "invalid protocol 'icmp' at runtimeConfig.portMappings[1].protocol: expected one of tcp, udp, sctp"),
    ({"hostPort": 80, "containerPort": 80, "hostIP": "not-an-ip"},
     "invalid IP address 'not-an-ip' at runtimeConfig.portMappings[1].hostIP"),
]


@pytest.mark.parametrize(("mapping", "message"), BAD_MAPPINGS, ids=[m for _, m in BAD_MAPPINGS])
def test_bad_mapping_is_code_7_naming_index_and_value(mapping: dict[str, Any], message: str) -> None:
    with pytest.raises(CniError) as err:
        _parse(maps=[mapping])
    assert (err.value.code, err.value.msg) == (7, message)


FORBID = "conditions may only add matches, not jumps, verdicts, commands or line breaks"
BAD_KEYS = [
    ({"markMasqBit": 3, "externalSetMarkChain": "X"}, "cannot specify both externalSetMarkChain and markMasqBit"),
    ({"markMasqBit": 32}, "32 out of range at markMasqBit: expected 0..31"),
    ({"backend": "ipfw"}, "invalid value 'ipfw' at backend: expected one of ['iptables', 'nftables']"),
    ({"backend": "nftables", "conditionsV4": ["-s", "1.2.3.4"]},
     "conditionsV4 uses iptables syntax but backend is nftables"),
    ({"backend": "iptables", "conditionsV6": ["ip6", "saddr", "::1"]},
     "conditionsV6 uses nftables syntax but backend is iptables"),
    ({"conditionsV4": ["-s", "1.1.1.1"], "conditionsV6": ["ip6", "saddr", "::1"]},
     "conditionsV4 use iptables syntax but conditionsV6 use nftables syntax"),
    ({"backend": "nftables", "markMasqBit": 3},
     "markMasqBit is only supported by the iptables backend (backend is nftables)"),
    ({"externalSetMarkChain": "A B"},
     "invalid chain name 'A B' at externalSetMarkChain: expected at most 28 letters, digits, '_', '.', '-'"),
    ({"conditionsV4": ["-s", "1.1.1.1", "-j", "ACCEPT"]}, f"forbidden token '-j' at conditionsV4[2]: {FORBID}"),
    ({"conditionsV4": ["!", "--ju", "X"]}, f"forbidden token '--ju' at conditionsV4[1]: {FORBID}"),
    ({"conditionsV4": ["-fjACCEPT"]}, f"forbidden token '-fjACCEPT' at conditionsV4[0]: {FORBID}"),
    ({"conditionsV4": ["-s", "1.1.1.1\n-A"]}, f"forbidden token '1.1.1.1\\n-A' at conditionsV4[1]: {FORBID}"),
    ({"conditionsV4": ["-s", "1.1.1.1", "--goto=X"]}, f"forbidden token '--goto=X' at conditionsV4[2]: {FORBID}"),
    ({"conditionsV6": ["ip6", "saddr", "::1", "accept"]}, f"forbidden token 'accept' at conditionsV6[3]: {FORBID}"),
    ({"conditionsV4": ["ip saddr 1.1.1.1; add rule ip x y"]},
     f"forbidden token 'ip saddr 1.1.1.1; add rule ip x y' at conditionsV4[0]: {FORBID}"),
]


@pytest.mark.parametrize(("keys", "message"), BAD_KEYS, ids=[m for _, m in BAD_KEYS])
def test_bad_key_is_code_7(keys: dict[str, Any], message: str) -> None:
    with pytest.raises(CniError) as err:
        _parse(keys)
    assert (err.value.code, err.value.msg) == (7, message)


def test_defaults_and_normalisation() -> None:
    conf = _parse(maps=[{"hostPort": 53, "containerPort": 5353, "protocol": "UDP", "hostIP": "0.0.0.0"}])
    assert conf.snat and not conf.masq_all and conf.mark_bit == 13 and conf.backend is None
    assert conf.mappings[0] == config.Mapping(1, 1, "tcp")
    assert conf.mappings[1].protocol == "udp" and conf.mappings[1].destination is None
    assert conf.mappings[1].applies_to(4) and not conf.mappings[1].applies_to(6)


def test_conditions_choose_the_backend_when_unset() -> None:
    assert _parse({"conditionsV4": ["!", "-s", "10.0.0.0/8"]}).backend == "iptables"
    assert _parse({"conditionsV6": ["ip6", "saddr", "fd00::/8"]}).backend == "nftables"
    assert _parse({"conditionsV4": ["-m", "tcp", "--dport", "80", "-s10.0.0.1"]}).conditions(4)[-1] == "-s10.0.0.1"


def test_container_ips_follow_the_interface_index_like_the_reference() -> None:
    result = Result(
        interfaces=(Interface("cni0"), Interface("eth0", sandbox="/run/netns/x"), Interface("eth1", sandbox="/x")),
        ips=(IPConfig(ip_interface("10.0.0.1/24"), interface=0),
             IPConfig(ip_interface("10.0.1.5/24"), interface=2),
             IPConfig(ip_interface("10.0.2.5/24"), interface=1),
             IPConfig(ip_interface("fd00::5/64")),
             IPConfig(ip_interface("10.0.3.5/24"), interface=1)))
    assert config.container_ips(result, "eth0") == (ip_interface("10.0.2.5/24"),
                                                     ip_interface("fd00::5/64"))
    assert config.container_ips(Result(), "eth0") == (None, None)


def test_valid_attachments_and_legacy_key() -> None:
    def ids(data: dict[str, Any]) -> frozenset[str]:
        return config.valid_container_ids(base_netconf({"cniVersion": "1.1.0", "name": "n", **data}))
    assert ids({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}]}) == {"a"}
    assert ids({"cni.dev/attachments": [{"containerID": "b", "ifname": "eth0"}]}) == {"b"}
    assert ids({"cni.dev/valid-attachments": []}) == frozenset()
    with pytest.raises(CniError, match="cni.dev/valid-attachments"):  # not "nothing is valid"
        ids({})
