"""Property-based tests of the protocol core: whatever arrives, the answer is a result or a spec error."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from common import result
from common.config import parse_cni_args
from common.errors import CniError
from common.ip import IPAddress, IPInterface
from common.skel import Plugin
from common.types import DNS, Interface, IPConfig, Result, Route
from support import cni_env, in_process

ECHO = Plugin(name="echo", handlers={"ADD": lambda r: r.prev_result() or Result(), "DEL": lambda r: None,
                                     "CHECK": lambda r: None})

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20)
config_keys = st.sampled_from(["cniVersion", "name", "type", "prevResult", "ipam", "runtimeConfig", "args", "dns"])
configs = st.dictionaries(config_keys, json_values | st.sampled_from(["1.0.0", "0.4.0", "0.2.0", "net1"]),
                          max_size=6)
env_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)


@settings(max_examples=400, deadline=None)
@given(conf=configs | json_values, command=st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION",
                                                             "BOGUS"]),
       container=env_values, ifname=env_values, args=env_values)
def test_dispatch_always_answers_with_result_or_spec_error(conf, command, container, ifname, args):
    env = cni_env(command, cid=container, netns="/run/netns/x", ifname=ifname, args=args, cni_path="/opt/cni/bin",
                  path=None)
    outcome = in_process(ECHO, env, json.dumps(conf).encode())
    assert outcome.status in (0, 1)
    if outcome.status == 1:
        error = json.loads(outcome.stdout)
        assert isinstance(error["code"], int) and error["code"] != 999 and error["msg"]
    elif outcome.stdout:
        assert isinstance(json.loads(outcome.stdout), dict)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_dispatch_survives_arbitrary_bytes(stdin):
    env = cni_env("ADD", cid="c", netns="/n", cni_path="/p", path=None, CNI_ARGS=None)
    outcome = in_process(ECHO, env, stdin)
    assert outcome.status in (0, 1)
    answer = json.loads(outcome.stdout) if outcome.stdout else None
    if outcome.status == 1:
        assert answer["code"] != 999 and answer["msg"], answer


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60))
def test_cni_args_parse_or_code_4(text):
    try:
        values = parse_cni_args(text, ("IP", "MAC"))
    except CniError as exc:
        assert exc.code == 4
    else:
        assert set(values) <= {"IP", "MAC"}


v4 = st.builds(lambda a, p: IPInterface(IPAddress(a, 4), p), st.integers(0, 2**32 - 1), st.integers(0, 32))
v6 = st.builds(lambda a, p: IPInterface(IPAddress(a, 6), p), st.integers(0, 2**128 - 1),
               st.integers(0, 128))
addresses = v4 | v6
ips = st.builds(lambda a, g, i: IPConfig(address=a, gateway=a.ip if g else None, interface=i),
                addresses, st.booleans(), st.none() | st.integers(0, 2))
routes = st.builds(lambda d, g: Route(dst=d, gw=d.ip if g else None), addresses, st.booleans())
names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789.-", min_size=1, max_size=10)
dns = st.builds(DNS, st.lists(names, max_size=2).map(tuple), names | st.just(""),
                st.lists(names, max_size=2).map(tuple), st.lists(names, max_size=2).map(tuple))
results = st.builds(Result, st.lists(st.builds(Interface, names, st.just(""), names | st.just("")), max_size=3)
                    .map(tuple), st.lists(ips, max_size=4).map(tuple), st.lists(routes, max_size=4).map(tuple), dns)


@settings(max_examples=300, deadline=None)
@given(results, st.sampled_from(["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]))
def test_round_trip_keeps_everything_the_version_expresses(res, version):
    again = result.parse(json.loads(json.dumps(result.render(res, version))), version)
    assert again == res


@settings(max_examples=300, deadline=None)
@given(results)
def test_downgrade_to_0_2_0_keeps_first_address_per_family(res):
    try:
        legacy = result.render(res, "0.2.0")
    except CniError:
        assert not res.ips
        return
    back = result.parse(legacy, "0.2.0")
    for version in (4, 6):
        first = next((i for i in res.ips if i.version == version), None)
        kept = [i for i in back.ips if i.version == version]
        assert [i.address for i in kept] == ([first.address] if first else [])
    assert back.dns == res.dns
    # 0.2.0 keeps routes under ip4/ip6, so only routes of a family that has an address can be expressed
    families = {i.version for i in res.ips}
    expressible = [r for r in res.routes if r.dst.version in families]
    assert sorted(str(r.dst) for r in back.routes) == sorted(str(r.dst) for r in expressible)
