"""Gateways, default routes and the assembled ADD result (pure)."""
from __future__ import annotations

from bridge.plan import Interfaces, assemble, gateway_ip, gateways, route_gateway
from common.ip import ip_address, ip_interface
from common.result import render
from common.types import DNS, Interface, IPConfig, Result, Route

V4 = IPConfig(address=ip_interface("10.1.2.5/24"))
V6 = IPConfig(address=ip_interface("fd00:1::5/64"))


def test_gateway_is_network_plus_one_with_prefix() -> None:
    assert gateway_ip(ip_interface("10.1.2.5/24")) == ip_interface("10.1.2.1/24")
    assert gateway_ip(ip_interface("fd00:1::5/64")) == ip_interface("fd00:1::1/64")


def test_l2_like_no_gateway_keeps_ips_and_points_them_at_the_container() -> None:
    plan = gateways(Result(ips=(V4,)), is_gateway=False, is_default_gateway=False)
    assert plan.result.ips == (IPConfig(address=V4.address, interface=2),)
    assert plan.result.routes == () and plan.v4 == () and plan.v6 == ()


def test_is_gateway_fills_missing_gateway_and_lists_bridge_addresses() -> None:
    plan = gateways(Result(ips=(V4, V6)), is_gateway=True, is_default_gateway=False)
    assert [i.gateway for i in plan.result.ips] == [ip_address("10.1.2.1"), ip_address("fd00:1::1")]
    assert plan.v4 == (ip_interface("10.1.2.1/24"),) and plan.v6 == (ip_interface("fd00:1::1/64"),)
    assert plan.result.routes == ()


def test_ipam_gateway_is_kept() -> None:
    ipc = IPConfig(address=ip_interface("10.1.2.5/24"), gateway=ip_address("10.1.2.254"))
    plan = gateways(Result(ips=(ipc,)), is_gateway=True, is_default_gateway=True)
    assert plan.v4 == (ip_interface("10.1.2.254/24"),)
    assert plan.result.routes == (Route(dst=ip_interface("0.0.0.0/0"), gw=ip_address("10.1.2.254")),)


def test_default_route_per_family_once() -> None:
    second = IPConfig(address=ip_interface("10.9.0.5/16"))
    plan = gateways(Result(ips=(V4, second, V6)), is_gateway=True, is_default_gateway=True)
    assert plan.result.routes == (
        Route(dst=ip_interface("0.0.0.0/0"), gw=ip_address("10.1.2.1")),
        Route(dst=ip_interface("::/0"), gw=ip_address("fd00:1::1")),
    )
    assert plan.v4 == (ip_interface("10.1.2.1/24"), ip_interface("10.9.0.1/16"))


def test_no_default_route_when_ipam_returned_one_with_gw() -> None:
    existing = Route(dst=ip_interface("0.0.0.0/0"), gw=ip_address("10.1.2.99"))
    plan = gateways(Result(ips=(V4, V6), routes=(existing,)), is_gateway=True, is_default_gateway=True)
    assert plan.result.routes == (existing, Route(dst=ip_interface("::/0"), gw=ip_address("fd00:1::1")))


def test_ipam_default_route_without_gw_does_not_count() -> None:
    bare = Route(dst=ip_interface("0.0.0.0/0"))
    plan = gateways(Result(ips=(V4,), routes=(bare,)), is_gateway=True, is_default_gateway=True)
    assert plan.result.routes == (bare, Route(dst=ip_interface("0.0.0.0/0"), gw=ip_address("10.1.2.1")))


def test_input_is_not_mutated() -> None:
    ipam = Result(ips=(V4,))
    gateways(ipam, is_gateway=True, is_default_gateway=True)
    assert ipam == Result(ips=(V4,))


def test_route_without_gw_uses_first_gateway_of_its_family() -> None:
    ips = (IPConfig(address=V4.address), IPConfig(address=V4.address, gateway=ip_address("10.1.2.1")),
           IPConfig(address=V4.address, gateway=ip_address("10.1.2.2")))
    route = Route(dst=ip_interface("192.168.0.0/16"))
    assert route_gateway(route, ips).gw == ip_address("10.1.2.1")
    assert route_gateway(Route(dst=ip_interface("fd01::/48")), ips).gw is None


def _links() -> Interfaces:
    return Interfaces(bridge=Interface(name="cni0", mac="aa:aa:aa:aa:aa:aa"),
                      host=Interface(name="veth0123abcd", mac="bb:bb:bb:bb:bb:bb"),
                      container=Interface(name="eth0", mac="cc:cc:cc:cc:cc:cc", sandbox="/run/netns/c"))


def test_assembled_result_rendered_like_the_reference() -> None:
    plan = gateways(Result(ips=(V4,), dns=DNS(nameservers=("1.1.1.1",))), is_gateway=True,
                    is_default_gateway=True)
    result = assemble(plan.result, _links(), dns=DNS())
    assert render(result, "1.0.0") == {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "cni0", "mac": "aa:aa:aa:aa:aa:aa"},
                       {"name": "veth0123abcd", "mac": "bb:bb:bb:bb:bb:bb"},
                       {"name": "eth0", "mac": "cc:cc:cc:cc:cc:cc", "sandbox": "/run/netns/c"}],
        "ips": [{"interface": 2, "address": "10.1.2.5/24", "gateway": "10.1.2.1"}],
        "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.2.1"}],
        "dns": {"nameservers": ["1.1.1.1"]},
    }


def test_configured_dns_overrides_ipam_dns_and_vlan_gateway_is_appended() -> None:
    links = Interfaces(**{**_links().__dict__, "extra": (Interface(name="cni0.7", mac="dd:dd:dd:dd:dd:dd"),)})
    result = assemble(Result(ips=(V4,), dns=DNS(nameservers=("1.1.1.1",))), links,
                      dns=DNS(nameservers=("9.9.9.9",)))
    assert result.dns == DNS(nameservers=("9.9.9.9",))
    assert [i.name for i in result.interfaces] == ["cni0", "veth0123abcd", "eth0", "cni0.7"]
