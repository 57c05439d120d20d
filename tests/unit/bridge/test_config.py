"""bridge config: every key, its default, and the exact error for bad values."""
from __future__ import annotations

from typing import Any

import pytest

from bridge.config import BridgeConf, parse
from common.config import base_netconf
from common.errors import Code, ConfigError
from common.types import DNS


def conf(extra: dict[str, Any] | None = None, *, cni_args: dict[str, str] | None = None) -> BridgeConf:
    data = {"cniVersion": "1.0.0", "name": "mynet", "type": "bridge", **(extra or {})}
    return parse(base_netconf(data), cni_args or {})


def test_defaults() -> None:
    c = conf()
    assert c == BridgeConf(name="mynet", cni_version="1.0.0")
    assert (c.bridge, c.is_gateway, c.ip_masq, c.ip_masq_backend, c.mtu) == ("cni0", False, False, None, 0)
    assert (c.preserve_default_vlan, c.enable_dad, c.layer3, c.vlan_filtering) == (False, False, False, False)


def test_every_key() -> None:
    c = conf({"bridge": "br1", "isGateway": False, "isDefaultGateway": True, "forceAddress": True,
              "ipMasq": True, "ipMasqBackend": "nftables", "mtu": 1400, "promiscMode": True, "vlan": 7,
              "preserveDefaultVlan": True, "macspoofchk": True, "enabledad": True, "portIsolation": True,
              "ipam": {"type": "host-local"}, "dns": {"nameservers": ["10.0.0.53"], "search": ["x"]}})
    assert c.bridge == "br1" and c.is_gateway and c.is_default_gateway and c.force_address
    assert c.ip_masq and c.ip_masq_backend == "nftables" and c.mtu == 1400 and c.promisc_mode
    assert c.vlan == 7 and c.vlan_filtering and c.preserve_default_vlan and c.macspoofchk
    assert c.enable_dad and c.port_isolation and c.layer3 and c.ipam_type == "host-local"
    assert c.dns == DNS(nameservers=("10.0.0.53",), search=("x",))


def test_default_gateway_implies_gateway() -> None:
    assert conf({"isDefaultGateway": True}).is_gateway


def test_vlan_trunk_ranges_and_ids_are_sorted_unique() -> None:
    c = conf({"vlanTrunk": [{"id": 9}, {"minID": 3, "maxID": 5}, {"id": 4}]})
    assert c.vlan_trunk == (3, 4, 5, 9) and c.vlan_filtering


@pytest.mark.parametrize(("runtime", "args", "env", "expected"), [
    ("0a:58:0a:00:00:01", "0a:58:0a:00:00:02", "0a:58:0a:00:00:03", "0a:58:0a:00:00:01"),
    (None, "0A-58-0A-00-00-02", "0a:58:0a:00:00:03", "0a:58:0a:00:00:02"),
    (None, None, "0a:58:0a:00:00:03", "0a:58:0a:00:00:03"),
    (None, None, None, ""),
], ids=["runtimeConfig", "args", "CNI_ARGS", "none"])
def test_mac_precedence(runtime: str | None, args: str | None, env: str | None, expected: str) -> None:
    extra: dict[str, Any] = {}
    if runtime:
        extra["runtimeConfig"] = {"mac": runtime}
    if args:
        extra["args"] = {"cni": {"mac": args}}
    assert conf(extra, cni_args={"MAC": env} if env else {}).mac == expected


ERRORS = [
    ({"hairpinMode": True, "promiscMode": True}, "cannot set hairpinMode and promiscMode at the same time"),
    ({"vlan": 4095}, "4095 out of range at vlan: expected 0..4094"),
    ({"vlan": -1}, "-1 out of range at vlan: expected 0..4094"),
    ({"vlan": 5, "vlanTrunk": [{"id": 6}]}, "cannot set vlan (5) and vlanTrunk at the same time"),
    ({"vlanTrunk": [{"minID": 5}]}, "minID and maxID must be set together at vlanTrunk[0]: maxID is missing"),
    ({"vlanTrunk": [{"id": 1}, {"maxID": 5}]},
     "minID and maxID must be set together at vlanTrunk[1]: minID is missing"),
    ({"vlanTrunk": [{"minID": 9, "maxID": 5}]}, "minID 9 is greater than maxID 5 at vlanTrunk[0]"),
    ({"vlanTrunk": [{"id": 0}]}, "0 out of range at vlanTrunk[0].id: expected 1..4094"),
    ({"vlanTrunk": [{"minID": 1, "maxID": 4095}]}, "4095 out of range at vlanTrunk[0].maxID: expected 1..4094"),
    ({"vlanTrunk": {"id": 1}}, "expected list at vlanTrunk, got object {\"id\": 1}"),
    ({"ipMasqBackend": "pf"}, "invalid value 'pf' at ipMasqBackend: expected one of ['iptables', 'nftables']"),
    ({"isGateway": "yes"}, "expected boolean at isGateway, got string 'yes'"),
    ({"mtu": "1500"}, "expected integer at mtu, got string '1500'"),
    ({"mtu": 70000}, "70000 out of range at mtu: expected 0..65535"),
    ({"bridge": "a-very-long-bridge-name"},
     "invalid bridge name 'a-very-long-bridge-name' at bridge: must be a valid interface name "
     "(at most 15 bytes, no '/', ':' or whitespace)"),
    ({"bridge": "br:0"}, "invalid bridge name 'br:0' at bridge: must be a valid interface name "
     "(at most 15 bytes, no '/', ':' or whitespace)"),
    ({"bridge": 7}, "expected string at bridge, got number 7"),
    ({"disableContainerInterface": True, "ipam": {"type": "host-local"}},
     "cannot use IPAM (ipam.type 'host-local') when disableContainerInterface is set"),
    ({"runtimeConfig": {"mac": "not-a-mac"}}, "invalid MAC address 'not-a-mac' at runtimeConfig.mac"),
    ({"args": {"cni": {"mac": "0a:58:0a:00:00"}}}, "invalid MAC address '0a:58:0a:00:00' at args.cni.mac"),
    ({"dns": {"nameservers": "1.1.1.1"}}, "expected list at dns.nameservers, got string '1.1.1.1'"),
]


@pytest.mark.parametrize(("extra", "message"), ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_errors(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        conf(extra)
    assert info.value.msg == message
    assert info.value.code == Code.INVALID_CONFIG


def test_bad_cni_args_mac() -> None:
    with pytest.raises(ConfigError, match=r"^invalid MAC address 'zz' at CNI_ARGS MAC$"):
        conf(cni_args={"MAC": "zz"})
