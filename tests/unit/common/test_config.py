from __future__ import annotations

import pytest

from common.config import Node, cidr, ip, ip_or_cidr, network, parse_cni_args
from common.errors import CniError, ConfigError


def msg(fn, *args, **kwargs) -> str:
    with pytest.raises(CniError) as info:
        fn(*args, **kwargs)
    return info.value.msg


def test_getters_name_the_key_path():
    node = Node({"ipam": {"ranges": [[{"subnet": "10.0.0.0/33"}]]}})
    path, first_set = next(node.obj("ipam").items("ranges"))
    inner = Node(first_set[0], f"{path}[0]")
    assert msg(inner.parsed, "subnet", network) == "invalid CIDR '10.0.0.0/33' at ipam.ranges[0][0].subnet"


@pytest.mark.parametrize("data, call, text", [
    ({"a": "yes"}, lambda n: n.boolean("a"), "expected boolean at a, got string 'yes'"),
    ({"a": 1}, lambda n: n.boolean("a"), "expected boolean at a, got number 1"),
    ({"a": True}, lambda n: n.integer("a"), "expected integer at a, got boolean true"),
    ({"a": 1.5}, lambda n: n.integer("a"), "expected integer at a, got 1.5"),
    ({"a": 70000}, lambda n: n.integer("a", minimum=1, maximum=65535), "70000 out of range at a: expected 1..65535"),
    ({"a": "x"}, lambda n: n.string("a", choices=("iptables", "nftables")),
     "invalid value 'x' at a: expected one of ['iptables', 'nftables']"),
    ({}, lambda n: n.string("a", required=True), "missing required key a"),
    ({"a": [1]}, lambda n: n.strings("a"), "expected string at a[0], got number 1"),
    ({"a": {"b": []}}, lambda n: n.obj("a").obj("b"), "expected object at a.b, got list []"),
])
def test_typed_getter_errors(data, call, text):
    assert msg(call, Node(data)) == text


def test_defaults_and_values():
    node = Node({"b": True, "i": 3.0, "s": "v", "n": None})
    assert node.boolean("b") is True and node.boolean("missing") is False
    assert node.integer("i") == 3 and node.integer("missing", 7) == 7
    assert node.string("s") == "v" and node.string("n", "d") == "d"


@pytest.mark.parametrize("fn, value, text", [
    (ip, "10.0.0.999", "invalid IP address '10.0.0.999' at k"),
    (cidr, "10.0.0.1", "invalid CIDR '10.0.0.1' at k: missing prefix length"),
    (network, "10.0.0.1/24", "invalid subnet '10.0.0.1/24' at k: host bits set (network address is 10.0.0.0/24)"),
    (ip_or_cidr, "nope", "invalid IP address 'nope' at k"),
])
def test_address_errors(fn, value, text):
    assert msg(fn, value, "k") == text


def test_address_values():
    assert str(cidr("10.0.0.5/24", "k")) == "10.0.0.5/24"
    assert str(ip_or_cidr("2001:db8::5/64", "k")) == "2001:db8::5"
    assert str(network("2001:db8::/64", "k")) == "2001:db8::/64"


def test_cni_args_known_keys():
    assert parse_cni_args("IP=10.0.0.5;MAC=aa", ("IP", "MAC")) == {"IP": "10.0.0.5", "MAC": "aa"}
    assert parse_cni_args("", ("IP",)) == {}


def test_cni_args_unknown_key_is_an_error_unless_ignored():
    assert "unknown CNI_ARGS key 'K8S_POD_NAME'" in msg(parse_cni_args, "K8S_POD_NAME=x", ("IP",))
    args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;IP=10.0.0.9"
    assert parse_cni_args(args, ("IP",)) == {"IP": "10.0.0.9"}
    assert parse_cni_args("IgnoreUnknown=TRUE;X=1", ()) == {}


@pytest.mark.parametrize("text", ["IP", "IP=a=b", "IP=1;", ";"])
def test_cni_args_malformed_pairs(text):
    with pytest.raises(CniError) as info:
        parse_cni_args(text, ("IP",))
    assert info.value.code == 4 and "invalid CNI_ARGS pair" in info.value.msg


def test_config_error_is_code_7():
    assert ConfigError("x").code == 7


def test_valid_attachments_union_of_both_keys():
    from common.config import valid_attachments
    node = Node({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
                 "cni.dev/attachments": [{"containerID": "b", "ifname": "net1"}]})
    assert valid_attachments(node) == {("a", "eth0"), ("b", "net1")}
    assert valid_attachments(Node({"cni.dev/attachments": []})) == frozenset()


@pytest.mark.parametrize("data, text", [
    ({}, "missing required key cni.dev/valid-attachments"),
    ({"cni.dev/valid-attachments": {}}, "expected list at cni.dev/valid-attachments"),
    ({"cni.dev/valid-attachments": [{"ifname": "eth0"}]},
     "missing required key cni.dev/valid-attachments[0].containerID"),
    ({"cni.dev/valid-attachments": [{"containerID": "a", "ifname": ""}]},
     "empty value '' at cni.dev/valid-attachments[0].ifname"),
])
def test_valid_attachments_errors(data, text):
    from common.config import valid_attachments
    assert msg(valid_attachments, Node(data)).startswith(text)


# --- keys as Go's encoding/json matches them ----------------------------------------------------------------

def loads_node(text: str) -> Node:
    from common import jsonio
    return Node(jsonio.loads(text))


@pytest.mark.parametrize("key", ["hostPort", "HostPort", "HOSTPORT", "hostport", "hoStpOrt"])
def test_keys_match_case_insensitively(key):
    assert loads_node(f'{{"{key}": 8080}}').integer("hostPort") == 8080


def test_kelvin_sign_and_long_s_fold_as_in_go():
    """Go's simple folding: U+212A KELVIN SIGN ~ 'k', U+017F LATIN SMALL LETTER LONG S ~ 's'."""
    assert Node({"\u212aey": 1}).integer("key") == 1
    assert Node({"ho\u017ftPort": 2}).integer("hostPort") == 2
    assert Node({"h\u00f6stPort": 3}).integer("hostPort") is None   # no other non-ASCII letter folds to ASCII


@pytest.mark.parametrize("text, value", [
    ('{"hostPort": 1, "HostPort": 2}', 2),     # the last key that folds alike wins, as in Go ...
    ('{"HostPort": 1, "hostPort": 2}', 2),
    ('{"hostPort": 1, "HostPort": 2, "hostPort": 3}', 3),
    ('{"HostPort": 1, "hostPort": 2, "HostPort": 3}', 3),   # ... also when an exact match came earlier
    ('{"hostPort": 1, "HostPort": null}', 1),  # null into a Go int field changes nothing
])
def test_duplicate_and_fold_equal_keys_the_last_one_wins(text, value):
    assert loads_node(text).integer("hostPort") == value


def test_errors_name_the_key_as_written():
    node = loads_node('{"runtimeConfig": {"PortMappings": [{"HostPort": "x"}]}}')
    mapping = node.obj("runtimeConfig").objects("portMappings")[0]
    assert msg(mapping.integer, "hostPort") == \
        "expected integer at runtimeConfig.PortMappings[0].HostPort, got string 'x'"
    assert msg(mapping.integer, "containerPort", required=True) == \
        "missing required key runtimeConfig.PortMappings[0].containerPort"


def test_has_raw_and_parsed_fold_too():
    node = Node({"IPAM": {"Subnet": "10.1.0.0/16"}, "CniVersion": "1.0.0"})
    assert node.has("ipam") and node.raw("cniVersion") == "1.0.0"
    assert node.obj("ipam").parsed("subnet", network) == network("10.1.0.0/16", "x")
