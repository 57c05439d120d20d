"""The plugins' whole stdin/env surface, fuzzed (hypothesis): never a traceback, always exit 0 with a valid result
(or nothing) or exit 1 with a spec error JSON carrying an int code and a message.

In-process (thousands of cases) through common.skel.dispatch with each plugin's real PLUGIN: host-local on a temp
dataDir, portmap with a fake command runner and temp lock, bridge with container netns paths that do not exist and
every program it would run answered by a stand-in (nothing reaches the machine's network namespace). Then a few
hundred cases through the built executables (every shipped plugin), inside a throwaway node netns: structured
configs, and raw bytes (random, JSON-token soup, byte-mutated configs), which must never give 999 or hang.
(tests/unit/common/test_protocol_properties.py covers dispatch itself with a toy plugin.)
"""
from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import common.exec
from support import SHIPPED_PLUGINS, SYSTEM_PATH, Answer, Netns, cni_env, in_process, plugin_argv, run

COMMANDS = st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION", "", "add", "FOO"])
NAMES = st.one_of(st.sampled_from(["net", "relnet", "a.b-c_d", "", "..", "a/b", "x" * 300]), st.text(max_size=12))
IDS = st.one_of(st.sampled_from(["c1", "pod-1", "a" * 200, "", "-x", "../x"]), st.text(max_size=12))
IFNAMES = st.one_of(st.sampled_from(["eth0", "net1", "a" * 15, "a" * 16, "", ".", "a:b"]), st.text(max_size=17))
VERSIONS = st.one_of(st.sampled_from(["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0", "2.0.0", ""]),
                     st.integers(), st.none())
ADDRESSES = st.one_of(st.sampled_from(["10.77.0.5/24", "10.77.0.5", "fd00::5/64", "::ffff:10.0.0.1/96", "bad",
                                       "10.77.0.0/33", "fe80::1%eth0/64"]), st.ip_addresses().map(str))
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-2, 70000), st.floats(allow_nan=False, width=32),
                    st.text(max_size=10))
JSON = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                    max_leaves=8)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(strategy, JSON)


MAPPING = st.fixed_dictionaries({"hostPort": maybe(st.integers(-1, 70000)),
                                 "containerPort": maybe(st.integers(-1, 70000))},
                                optional={"protocol": maybe(st.sampled_from(["tcp", "udp", "sctp", "TCP", "icmp"])),
                                          "hostIP": maybe(st.sampled_from(["", "0.0.0.0", "::", "10.0.0.1",
                                                                           "not-an-ip"]))})
PREV = st.fixed_dictionaries({"cniVersion": VERSIONS},
                             optional={"ips": st.lists(st.fixed_dictionaries(
                                 {"address": maybe(ADDRESSES)},
                                 optional={"interface": maybe(st.integers(-1, 3)), "gateway": maybe(ADDRESSES),
                                           "version": st.sampled_from(["4", "6", "5"])}), max_size=3),
                                 "interfaces": st.lists(st.fixed_dictionaries(
                                     {"name": IFNAMES}, optional={"sandbox": st.sampled_from(["", "/x"]),
                                                                  "mac": st.text(max_size=5)}), max_size=3),
                                 "routes": st.lists(st.fixed_dictionaries({"dst": maybe(ADDRESSES)}), max_size=2),
                                 "dns": maybe(st.fixed_dictionaries({}, optional={"nameservers": st.lists(
                                     st.text(max_size=8), max_size=2)}))})
RANGE = st.fixed_dictionaries({"subnet": maybe(st.sampled_from(["10.77.0.0/24", "10.77.0.0/30", "10.77.0.0/31",
                                                                 "fd00::/120", "10.77.0.1/24", "300.0.0.0/8"]))},
                              optional={"rangeStart": maybe(ADDRESSES), "rangeEnd": maybe(ADDRESSES),
                                        "gateway": maybe(ADDRESSES)})


def ipam(data_dir: str) -> st.SearchStrategy[Any]:
    return maybe(st.fixed_dictionaries(
        {"type": maybe(st.sampled_from(["host-local", "", "../x"])), "dataDir": st.just(data_dir)},
        optional={"ranges": maybe(st.lists(st.lists(RANGE, max_size=2), max_size=2)), "subnet": maybe(ADDRESSES),
                  "routes": maybe(st.lists(st.fixed_dictionaries({"dst": maybe(ADDRESSES)},
                                                                  optional={"gw": maybe(ADDRESSES)}), max_size=2)),
                  "resolvConf": maybe(st.sampled_from(["/nonexistent", "/etc/hostname"]))}))


def config(data_dir: str, plugin_type: str) -> st.SearchStrategy[Any]:
    common_keys = {"cniVersion": VERSIONS, "name": NAMES, "type": st.just(plugin_type)}
    optional = {"prevResult": maybe(PREV), "ipam": ipam(data_dir),
                "runtimeConfig": maybe(st.fixed_dictionaries({}, optional={
                    "portMappings": maybe(st.lists(MAPPING, max_size=3)),
                    "ipRanges": maybe(st.lists(st.lists(RANGE, max_size=1), max_size=1)),
                    "ips": maybe(st.lists(ADDRESSES, max_size=2)), "mac": maybe(st.text(max_size=17))})),
                "args": maybe(st.fixed_dictionaries({"cni": maybe(st.fixed_dictionaries({}, optional={
                    "ips": maybe(st.lists(ADDRESSES, max_size=2))}))})),
                "cni.dev/valid-attachments": maybe(st.lists(st.fixed_dictionaries(
                    {"containerID": IDS, "ifname": IFNAMES}), max_size=2)),
                "ipMasq": maybe(st.booleans()), "ipMasqBackend": maybe(st.sampled_from(["iptables", "nftables", "x"])),
                "backend": maybe(st.sampled_from(["iptables", "nftables", "x"])), "snat": maybe(st.booleans()),
                "masqAll": maybe(st.booleans()), "markMasqBit": maybe(st.integers(-1, 40)),
                "externalSetMarkChain": maybe(st.sampled_from(["X", "CNI-X", "a b"])),
                "conditionsV4": maybe(st.lists(st.sampled_from(["-s", "10.0.0.1", "-j", "ACCEPT", "ip", "saddr",
                                                                "accept", "!", "-m", "tcp"]), max_size=4)),
                "isGateway": maybe(st.booleans()), "mtu": maybe(st.integers(-1, 70000)),
                "vlan": maybe(st.integers(-1, 5000)),
                "vlanTrunk": maybe(st.lists(st.fixed_dictionaries({}, optional={
                    "id": st.integers(-1, 5000), "minID": st.integers(-1, 5000), "maxID": st.integers(-1, 5000)}),
                    max_size=2)),
                "hairpinMode": maybe(st.booleans()), "promiscMode": maybe(st.booleans()),
                "dns": maybe(st.fixed_dictionaries({}, optional={"nameservers": st.lists(st.text(max_size=5))}))}
    structured = st.fixed_dictionaries(common_keys, optional=optional).map(lambda d: json.dumps(d).encode())
    return st.one_of(structured, structured, structured, JSON.map(lambda d: json.dumps(d).encode()),
                     st.binary(max_size=40))


def env(netns: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, str]]:
    return st.fixed_dictionaries(
        {"CNI_COMMAND": COMMANDS, "CNI_CONTAINERID": IDS, "CNI_IFNAME": IFNAMES, "CNI_NETNS": netns,
         "CNI_PATH": st.sampled_from(["/nonexistent", "", "/a:/b"])},
        optional={"CNI_ARGS": st.one_of(st.sampled_from(["IP=10.77.0.9", "IP=10.0.0.999", "IgnoreUnknown=1;X=1",
                                                         "MAC=02:00:00:00:00:01", "a", "=", ";", "IP=fd00::9"]),
                                        st.text(max_size=12)),
                  "CNI_NETNS_OVERRIDE": st.sampled_from(["1", "true", "0"]),
                  "PYCNI_LOCK_TIMEOUT": st.sampled_from(["1", "0", "-1", "x"])})


def assert_protocol_answer(outcome: Answer) -> None:
    """exit 0: nothing or a result object with cniVersion; exit 1: {code:int, msg:str}; no traceback anywhere."""
    assert "Traceback" not in outcome.stderr
    if outcome.status == 0:
        if outcome.stdout.strip():
            data = json.loads(outcome.stdout)
            assert isinstance(data, dict) and isinstance(data.get("cniVersion"), str), outcome.stdout
        return
    assert outcome.status == 1, outcome
    data = json.loads(outcome.stdout)
    assert type(data.get("code")) is int and isinstance(data.get("msg"), str) and data["msg"], outcome.stdout
    assert not (data["code"] == 999 and data["msg"].startswith("internal error")), outcome.stdout


class StandIn:
    """Replaces common.exec._Child: every program "fails" without running."""

    def __init__(self, argv: Any, *args: Any) -> None:
        self.argv = argv

    def collect(self, timeout: float) -> Any:
        return common.exec.Completed(1, b"", b"stand-in: not run in tests")

    def close(self) -> None:
        pass


def fuzz(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck), database=None)


DATA_DIR = tempfile.mkdtemp(prefix="pycni-fuzz-")


@pytest.fixture(scope="module", autouse=True)
def _remove_data_dir() -> Any:
    yield
    shutil.rmtree(DATA_DIR, ignore_errors=True)


@fuzz(1500)
@given(stdin=config(DATA_DIR, "host-local"), environ=env(st.sampled_from(["/run/netns/x", "", "/proc/self/ns/net"])))
def test_host_local_in_process(stdin: bytes, environ: dict[str, str]) -> None:
    from host_local.plugin import PLUGIN
    assert_protocol_answer(in_process(PLUGIN, environ, stdin))


@fuzz(1500)
@given(stdin=config(DATA_DIR, "portmap"), environ=env(st.sampled_from(["/run/netns/x", ""])),
       answer=st.sampled_from([(0, b""), (1, b""), (0, b"*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"), (0, b"{}"),
                               (0, b'{"nftables": [{"rule": {"chain": "hostports", "comment": "c1", "handle": 3}}]}'),
                               (4, b"Another app is currently holding the xtables lock"), (0, b"\xff")]))
def test_portmap_in_process(stdin: bytes, environ: dict[str, str], answer: tuple[int, bytes]) -> None:
    from common.exec import Completed, Programs
    from portmap.host import Host
    from portmap.plugin import make_plugin
    plugin = make_plugin(Host(programs=Programs.faked(lambda argv, **kw: Completed(answer[0], answer[1], answer[1])),
                              lock_path=f"{DATA_DIR}/portmap.lock", sysctl_root=DATA_DIR, log=lambda text: None))
    assert_protocol_answer(in_process(plugin, environ, stdin))


@fuzz(1500)
@given(stdin=config(DATA_DIR, "firewall"), environ=env(st.sampled_from(["/run/netns/x", ""])),
       answer=st.sampled_from([(0, b""), (1, b""), (0, b"-P FORWARD DROP\n-N CNI-FORWARD\n"), (0, b"{}"),
                               (0, b'{"nftables": [{"rule": {"chain": "cni-forward", "comment": "n c1 e", '
                                   b'"handle": 3}}]}'),
                               (4, b"Another app is currently holding the xtables lock"), (0, b"\xff")]))
def test_firewall_in_process(stdin: bytes, environ: dict[str, str], answer: tuple[int, bytes]) -> None:
    from common.exec import Completed, Programs
    from firewall_cni.host import Host
    from firewall_cni.plugin import make_plugin
    plugin = make_plugin(Host(programs=Programs.faked(lambda argv, **kw: Completed(answer[0], answer[1], answer[1])),
                              lock_path=f"{DATA_DIR}/firewall.lock", data_dir=f"{DATA_DIR}/firewall",
                              net_dev=f"{DATA_DIR}/net_dev"))
    assert_protocol_answer(in_process(plugin, environ, stdin))


@fuzz(600)
@given(stdin=config(DATA_DIR, "bridge"), environ=env(st.sampled_from(["/nonexistent/netns", ""])))
def test_bridge_in_process_without_a_container_netns(stdin: bytes, environ: dict[str, str]) -> None:
    """Programs are answered by a stand-in (module-local patch), container netns paths do not exist."""
    from bridge.plugin import PLUGIN
    original = common.exec._Child
    common.exec._Child = StandIn
    try:
        assert_protocol_answer(in_process(PLUGIN, environ, stdin))
    finally:
        common.exec._Child = original


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_executables(dist_bin: Path, host_ns: Netns, tmp_path: Path, plugin: str) -> None:
    """Through the built executable in a throwaway node netns (bridge: container netns paths do not exist)."""
    netns = st.sampled_from(["/nonexistent/netns", ""]) if plugin == "bridge" else st.just("/run/netns/none")

    @fuzz(100)
    @given(stdin=config(str(tmp_path / "data"), plugin), environ=env(netns))
    def one(stdin: bytes, environ: dict[str, str]) -> None:
        environ = {**{k: v.replace("\0", "") for k, v in environ.items()}, "PATH": SYSTEM_PATH}   # no NUL in env
        if environ["CNI_PATH"] == "/a:/b":
            environ["CNI_PATH"] = str(dist_bin)
        assert_protocol_answer(run(plugin_argv(plugin, dist_bin), environ, stdin, inside=host_ns))
    one()


# --- raw bytes through the executables ---------------------------------------------------------------------

SPEC_CODES = {1, 2, 3, 4, 5, 6, 7, 8, 11, 50, 51}   # libcni's codes; 999 (internal) is a bug for these inputs
TOKENS = st.sampled_from([b"{", b"}", b"[", b"]", b",", b":", b'"', b"\\", b" ", b"\n", b'"cniVersion"',
                          b'"1.0.0"', b'"name"', b'"fuzz"', b'"type"', b'"prevResult"', b"NaN", b"Infinity",
                          b"-Infinity", b"1e999", b"-0", b"0x1", b"null", b"true", b'"\\ud800"', b'"\\u0000"',
                          b"\xff", b"\xc3", b"\xe2\x82", b"\xef\xbb\xbf", b"\x00", b"'"])


def minimal_config(plugin: str) -> bytes:
    """Decodable and valid up to the plugin's own keys, so a mutation of it reaches the decoder's error paths
    but never a firewall, an allocation or a kernel call (bridge stops at the missing container netns, code 3;
    portmap without mappings passes prevResult through; host-local has no ipam, code 7)."""
    conf: dict[str, Any] = {"cniVersion": "1.0.0", "name": "fuzz", "type": plugin}
    if plugin == "portmap":
        conf["prevResult"] = {"cniVersion": "1.0.0", "ips": [{"address": "10.77.0.5/24"}]}
    return json.dumps(conf).encode()


def mutations(base: bytes) -> st.SearchStrategy[bytes]:
    """`base` with up to four edits, each deleting 0-3 bytes at a position and inserting 0-4 random ones."""
    edit = st.tuples(st.integers(0, len(base)), st.integers(0, 3), st.binary(max_size=4))

    def apply(edits: list[tuple[int, int, bytes]]) -> bytes:
        data = base
        for at, drop, insert in edits:
            at = min(at, len(data))
            data = data[:at] + insert + data[at + drop:]
        return data
    return st.lists(edit, min_size=1, max_size=4).map(apply)


def raw_stdin(plugin: str) -> st.SearchStrategy[bytes]:
    return st.one_of(st.binary(max_size=300), st.lists(TOKENS, max_size=40).map(b"".join),
                     mutations(minimal_config(plugin)), mutations(minimal_config(plugin)))


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.parametrize("plugin", SHIPPED_PLUGINS)
def test_executables_raw_bytes(dist_bin: Path, host_ns: Netns, plugin: str) -> None:
    """Any bytes on stdin: exit 0 (nothing, or a result object) or exit 1 with a libcni error code on stdout, never
    999 or a traceback, and an answer within 10 s. (100 cases per plugin: ~4 s each.)"""
    netns = "/nonexistent/netns" if plugin == "bridge" else "/run/netns/none"

    @fuzz(100)
    @given(stdin=raw_stdin(plugin), command=st.sampled_from(["ADD", "DEL", "CHECK", "GC", "STATUS", "VERSION"]))
    def one(stdin: bytes, command: str) -> None:
        environ = cni_env(command, netns=netns, CNI_ARGS=None)
        try:
            done = run(plugin_argv(plugin, dist_bin), environ, stdin, inside=host_ns, timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{plugin} {command} hung on stdin {stdin!r}") from None
        out, err = done.stdout, done.stderr
        assert "Traceback" not in err, err
        assert done.status in (0, 1), (done.status, out, err)
        if done.status == 0:
            assert not out.strip() or isinstance(json.loads(out).get("cniVersion"), str), out
            return
        error = json.loads(out)
        assert error["code"] in SPEC_CODES and isinstance(error["msg"], str) and error["msg"], \
            f"{plugin} {command} on stdin {stdin!r}: {out}"
    one()
