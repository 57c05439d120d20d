"""Result conversion between the version families, against golden JSON."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from common import result
from common.errors import CniError
from common.types import Result

GOLDEN = Path(__file__).parent / "golden"


def golden(version: str) -> dict:
    return json.loads((GOLDEN / f"result-{version}.json").read_text())


def full() -> Result:
    return result.parse(golden("1.1.0"), "1.1.0")


@pytest.mark.parametrize("version", ["1.1.0", "1.0.0", "0.4.0", "0.3.1", "0.2.0"])
def test_render_newest_at_each_version(version):
    assert result.render(full(), version) == golden(version)


@pytest.mark.parametrize("version", ["1.0.0", "0.4.0", "0.3.1"])
def test_round_trip_is_lossless_where_the_version_can_express_it(version):
    data = golden(version)
    assert result.render(result.parse(data, version), version) == data


def test_0_2_0_parses_into_ips_and_top_level_routes():
    parsed = result.parse(golden("0.2.0"), "0.2.0")
    assert [str(i.address) for i in parsed.ips] == ["10.0.0.5/24", "2001:db8::5/64"]
    assert [str(r.dst) for r in parsed.routes] == ["0.0.0.0/0", "192.168.7.0/24", "::/0"]
    assert parsed.interfaces == ()
    assert result.render(parsed, "0.2.0") == golden("0.2.0")


def test_0_2_0_upgrades_to_1_0_0():
    upgraded = result.render(result.parse(golden("0.2.0"), "0.2.0"), "1.0.0")
    assert upgraded["ips"] == [{"address": "10.0.0.5/24", "gateway": "10.0.0.1"},
                               {"address": "2001:db8::5/64", "gateway": "2001:db8::1"}]
    assert "interfaces" not in upgraded


def test_0_1_0_uses_the_legacy_shape():
    legacy = result.render(full(), "0.1.0")
    assert legacy["cniVersion"] == "0.1.0" and legacy["ip4"]["ip"] == "10.0.0.5/24"


def test_downgrade_to_0_2_0_without_ips_fails():
    with pytest.raises(CniError) as info:
        result.render(Result(), "0.2.0")
    assert "no valid IP addresses" in info.value.msg


def test_empty_dns_is_omitted_only_at_1_1_0():
    assert "dns" not in result.render(Result(), "1.1.0")
    assert result.render(Result(), "1.0.0")["dns"] == {}


def test_prev_result_version_comes_from_config_when_missing():
    data = golden("0.2.0")
    del data["cniVersion"]
    assert len(result.parse(data, "0.2.0").ips) == 2


def test_host_bits_are_kept():
    parsed = result.parse({"ips": [{"address": "10.1.2.3/8"}], "routes": [{"dst": "10.9.9.9/8"}]}, "1.0.0")
    assert str(parsed.ips[0].address) == "10.1.2.3/8" and str(parsed.routes[0].dst) == "10.9.9.9/8"


@pytest.mark.parametrize("data, text", [
    ({"ips": [{"address": "10.0.0.5"}]}, "invalid CIDR '10.0.0.5' at prevResult.ips[0].address"),
    ({"ips": [{"address": "10.0.0.5/24", "gateway": "::1"}]}, "gateway ::1 at prevResult.ips[0].gateway"),
    ({"ips": [{}]}, "missing required key prevResult.ips[0].address"),
    ({"routes": [{"dst": "0.0.0.0/0", "gw": "x"}]}, "invalid IP address 'x' at prevResult.routes[0].gw"),
    ({"interfaces": "eth0"}, "expected list at prevResult.interfaces"),
])
def test_invalid_results_name_the_path(data, text):
    with pytest.raises(CniError) as info:
        result.parse(data, "1.0.0")
    assert info.value.msg.startswith(text), info.value.msg


def test_strip_for_ipam_drops_interfaces():
    stripped = result.render(result.strip_for_ipam(full()), "1.0.0")
    assert "interfaces" not in stripped and all("interface" not in i for i in stripped["ips"])
