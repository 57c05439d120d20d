"""The built loopback (dist) side by side with Debian's Go loopback 1.1.1 (/usr/lib/cni/loopback).

Each case runs both executables on the same input: the same stdin and environment, from the same throwaway node
netns, on a pod netns recreated at the same path with the same set-up for each of them. The answers are compared
as exit status + parsed JSON, and so is the state each leaves on lo (up or down, its addresses).

Most cases must answer alike. The rest are the documented differences (README, "Differences from the reference
plugins"), each asserted exactly on both sides:
- result shapes: at 0.1.0-0.4.0 the reference prints its 1.0.0 shape relabelled; we print each version's own;
- spec codes instead of 999: a missing netns is 3, a path that is no netns 4, a bad prevResult 7;
- what 1.1.1 cannot do: cniVersion 1.1.0, GC and STATUS (v1.9.x answers these as we do);
- CNI_NETNS naming the plugin's own netns is refused (code 8, as v1.9.x), where 1.1.1 sets the node's lo down.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support import GO_BIN, Netns, cni_env, lo_state, run, throwaway_netns, unique_name
from support import loopback_conf as conf

pytestmark = pytest.mark.e2e
GO = GO_BIN / "loopback"


@dataclass(frozen=True)
class Observed:
    status: int
    out: Any                            # parsed stdout, None when empty
    lo: tuple[bool, tuple[str, ...]]    # the pod's lo afterwards (the node's, for the own-netns case)

    @property
    def code(self) -> int:
        assert self.status == 1 and isinstance(self.out, dict), self
        return int(self.out["code"])


@dataclass(frozen=True)
class Case:
    id: str
    command: str
    conf: Any                           # a dict (sent as JSON) or raw bytes
    setup: str = ""                     # shell run in the fresh pod netns first (its lo starts down)
    env: dict[str, str] = field(default_factory=dict)   # "{pod}", "{gone}", "{plain}", "{node}" are filled in
    expect: str = "same"                # "same", "same-code" or the name of a documented difference


UP = "ip link set lo up"
PREV_1_0 = {"cniVersion": "1.0.0",
            "interfaces": [{"name": "eth0", "mac": "02:00:00:00:00:01", "sandbox": "/run/netns/x", "mtu": 1400}],
            "ips": [{"interface": 0, "address": "10.1.0.5/24", "gateway": "10.1.0.1"}],
            "routes": [{"dst": "0.0.0.0/0", "gw": "10.1.0.1", "priority": 5}],
            "dns": {"nameservers": ["1.1.1.1"]}, "foo": "bar"}
PREV_0_4 = {"cniVersion": "0.4.0", "interfaces": [{"name": "eth0"}],
            "ips": [{"version": "4", "interface": 0, "address": "10.1.0.5/24"},
                    {"version": "6", "address": "fd::5/64"}],
            "dns": {}}
PREV_0_2 = {"cniVersion": "0.2.0",
            "ip4": {"ip": "10.1.0.5/24", "gateway": "10.1.0.1", "routes": [{"dst": "0.0.0.0/0"}]},
            "ip6": {"ip": "fd::5/64"}, "dns": {"nameservers": ["10.1.0.1"]}}

CASES = [
    # ADD: the same result and the same lo
    Case("ADD-1.0.0", "ADD", conf("1.0.0")),
    Case("ADD-without-cniVersion", "ADD", conf(None)),
    Case("ADD-ifname-eth0", "ADD", conf(), env={"CNI_IFNAME": "eth0"}),
    Case("ADD-lo-already-up", "ADD", conf(), setup=UP),
    Case("ADD-second-loopback-address", "ADD", conf(), setup="ip addr add 127.0.0.2/8 dev lo"),
    Case("ADD-ipv6-disabled", "ADD", conf(), setup="sysctl -qw net.ipv6.conf.lo.disable_ipv6=1"),
    Case("ADD-ipv6-disabled-no-cniVersion", "ADD", conf(None), setup="sysctl -qw net.ipv6.conf.lo.disable_ipv6=1"),
    Case("ADD-prevResult-1.0.0", "ADD", conf("1.0.0", prevResult=PREV_1_0)),
    Case("ADD-prevResult-0.4.0", "ADD", conf("0.4.0", prevResult=PREV_0_4)),
    Case("ADD-prevResult-0.3.1-inherits-cniVersion", "ADD",
         conf("0.3.1", prevResult={k: v for k, v in PREV_0_4.items() if k != "cniVersion"})),
    Case("ADD-prevResult-0.2.0", "ADD", conf("0.2.0", prevResult=PREV_0_2)),
    Case("ADD-prevResult-empty", "ADD", conf("1.0.0", prevResult={})),
    Case("ADD-prevResult-null", "ADD", conf("1.0.0", prevResult=None)),
    Case("ADD-cni-args-ignored", "ADD", conf(), env={"CNI_ARGS": "FOO=bar;K8S_POD_NAME=x"}),
    # ADD: the same error
    Case("ADD-foreign-ipv4", "ADD", conf(), setup="ip addr add 10.5.5.5/32 dev lo"),
    Case("ADD-foreign-ipv6", "ADD", conf(), setup=f"{UP}; ip -6 addr add fd00::1/128 dev lo"),
    Case("ADD-foreign-both-names-ipv4", "ADD", conf(),
         setup=f"{UP}; ip -6 addr add fd00::1/128 dev lo; ip addr add 10.5.5.5/32 dev lo"),
    # DEL and CHECK
    Case("DEL-lo-up", "DEL", conf(), setup=UP),
    Case("DEL-lo-down", "DEL", conf()),
    Case("DEL-with-prevResult", "DEL", conf(prevResult=PREV_1_0), setup=UP),
    Case("DEL-bad-prevResult-not-read", "DEL", conf(prevResult={"ips": [{"address": "nope"}]}), setup=UP),
    Case("DEL-0.1.0", "DEL", conf("0.1.0"), setup=UP),
    Case("DEL-empty-netns", "DEL", conf(), setup=UP, env={"CNI_NETNS": ""}),
    Case("DEL-netns-gone", "DEL", conf(), env={"CNI_NETNS": "{gone}"}),
    Case("CHECK-up-0.4.0", "CHECK", conf("0.4.0"), setup=UP),
    Case("CHECK-up-1.0.0", "CHECK", conf("1.0.0", prevResult=PREV_1_0), setup=UP),
    Case("CHECK-down", "CHECK", conf("1.0.0")),
    Case("CHECK-down-0.4.0", "CHECK", conf("0.4.0")),
    # protocol errors: the same code (the messages are worded differently: ours name the variable/key/value)
    Case("CHECK-at-0.3.1", "CHECK", conf("0.3.1"), setup=UP, expect="same-code"),
    Case("no-name", "ADD", {"cniVersion": "1.0.0", "type": "loopback"}, expect="same-code"),
    Case("bad-name", "ADD", conf(name="a/b"), expect="same-code"),
    Case("unsupported-version", "ADD", conf("9.9.9"), expect="same-code"),
    Case("not-json", "ADD", b"{not json", expect="same-code"),
    Case("bad-ifname", "ADD", conf(), env={"CNI_IFNAME": "a/b"}, expect="same-code"),
    Case("long-ifname", "ADD", conf(), env={"CNI_IFNAME": "x" * 16}, expect="same-code"),
    Case("bad-container-id", "ADD", conf(), env={"CNI_CONTAINERID": "-bad"}, expect="same-code"),
    Case("DEL-bad-ifname", "DEL", conf(), setup=UP, env={"CNI_IFNAME": "a b"}, expect="same-code"),
    # documented differences
    *[Case(f"ADD-{v}", "ADD", conf(v), expect="spec-shape-0.3-0.4") for v in ("0.3.0", "0.3.1", "0.4.0")],
    *[Case(f"ADD-{v}", "ADD", conf(v), expect="spec-shape-0.1-0.2") for v in ("0.1.0", "0.2.0")],
    Case("ADD-prevResult-ip-without-version", "ADD",
         conf("0.4.0", prevResult={"ips": [{"version": "4", "address": "10.1.0.5/24"}, {"address": "fd::5/64"}]}),
         expect="ips-version-recomputed"),
    Case("ADD-prevResult-1.0.0-in-0.4.0-config", "ADD", conf("0.4.0", prevResult=PREV_1_0),
         expect="prevResult-converted"),
    Case("ADD-bad-prevResult", "ADD", conf(prevResult={"ips": [{"address": "nope"}]}), expect="code-7-not-999"),
    Case("ADD-netns-gone", "ADD", conf(), env={"CNI_NETNS": "{gone}"}, expect="code-3-not-999"),
    Case("CHECK-netns-gone", "CHECK", conf(), env={"CNI_NETNS": "{gone}"}, expect="code-3-not-999"),
    *[Case(f"{verb}-not-a-netns", verb, conf(), env={"CNI_NETNS": "{plain}"}, expect="code-4-not-999")
      for verb in ("ADD", "CHECK")],
    Case("DEL-not-a-netns", "DEL", conf(), env={"CNI_NETNS": "{plain}"}, expect="del-not-a-netns-is-gone"),
    Case("ADD-1.1.0", "ADD", conf("1.1.0"), expect="speaks-1.1.0"),
    Case("GC-1.1.0", "GC", conf("1.1.0", **{"cni.dev/valid-attachments": []}), setup=UP, expect="gc-status"),
    Case("STATUS-1.1.0", "STATUS", conf("1.1.0"), setup=UP, expect="gc-status"),
    Case("DEL-own-netns", "DEL", conf(), env={"CNI_NETNS": "{node}"}, expect="own-netns-refused"),
]


# --- running one case ---------------------------------------------------------------------------------------

@pytest.fixture
def go_bin() -> Path:
    if not GO.exists():
        pytest.skip(f"{GO} not installed (Debian's containernetworking-plugins)")
    return GO


def answer(exe: Path, case: Case, node: Netns, pod_name: str, plain: Path) -> Observed:
    """`exe` on `case`, from the node netns, on a pod netns created afresh at /run/netns/<pod_name>."""
    with throwaway_netns(pod_name) as pod:       # lo down, as the runtime hands it over
        if case.setup:
            pod.sh(case.setup)
        if case.expect == "own-netns-refused":
            node.sh("ip link set lo up")
        fill = {"{pod}": pod.path, "{gone}": pod.path + "-gone", "{plain}": str(plain), "{node}": node.path}
        # every verb gets the container variables: Go's 1.1.1 checks them before the command (GC/STATUS cases)
        variables = {"CNI_ARGS": None, **case.env}
        environ = cni_env(case.command, netns="{pod}", ifname="lo", cni_path=exe.parent, **variables)
        environ = {k: fill.get(v, v) for k, v in environ.items()}
        done = run([exe], environ, case.conf, inside=node, timeout=30)
        assert done.status in (0, 1), (exe, done.status, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr and "panic" not in done.stderr, done.stderr
        return Observed(done.status, done.out, lo_state(node if case.expect == "own-netns-refused" else pod))


# --- the documented differences, each stated on both sides ------------------------------------------------------

def without(data: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != key}


def with_ip_versions(result: dict[str, Any]) -> dict[str, Any]:
    """The 0.3.x/0.4.0 shape of a 1.0.0-shaped result: ips[].version by address family (first key)."""
    ips = [{"version": "6" if ":" in ip["address"] else "4", **ip} for ip in result["ips"]]
    return {**result, "ips": ips}


def as_legacy(result: dict[str, Any]) -> dict[str, Any]:
    """The 0.1.0/0.2.0 shape of a 1.0.0-shaped result: the first address of each family as ip4/ip6."""
    out: dict[str, Any] = {"cniVersion": result["cniVersion"]}
    for key, is_v6 in (("ip4", False), ("ip6", True)):
        first = next((ip for ip in result["ips"] if (":" in ip["address"]) == is_v6), None)
        if first is not None:
            out[key] = {"ip": first["address"]}
    return {**out, "dns": result["dns"]}


def comparable(ours: Observed) -> Any:
    """Our output as the reference would print it: errors without cniVersion (the spec's error object has one,
    libcni's 1.1.x skel prints none; libcni reads both)."""
    if ours.status == 0:
        return ours.out
    assert isinstance(ours.out.get("cniVersion"), str), ours
    return without(ours.out, "cniVersion")


def check_difference(case: Case, go: Observed, ours: Observed) -> None:
    kind = case.expect
    if kind == "spec-shape-0.3-0.4":
        assert "version" not in json.dumps(go.out["ips"]), go      # the reference's quirk, still there
        assert (go.status, ours.status, ours.out, ours.lo) == (0, 0, with_ip_versions(go.out), go.lo)
    elif kind == "spec-shape-0.1-0.2":
        assert "ips" in go.out and "ip4" not in go.out, go
        assert (go.status, ours.status, ours.out, ours.lo) == (0, 0, as_legacy(go.out), go.lo)
    elif kind == "ips-version-recomputed":    # Go re-encodes the missing version as ""; we derive it
        assert [ip["version"] for ip in go.out["ips"]] == ["4", ""], go
        assert ours.out == {**go.out, "ips": [{**ip, "version": "6" if ":" in ip["address"] else "4"}
                                              for ip in go.out["ips"]]}
        assert (go.status, ours.status, ours.lo) == (0, 0, go.lo)
    elif kind == "prevResult-converted":      # Go refuses a prevResult of another version; we convert it
        assert (go.code, go.out["msg"].startswith("failed to parse prevResult")) == (999, True), go
        assert ours.status == 0 and ours.out["cniVersion"] == "0.4.0", ours
        assert [ip["version"] for ip in ours.out["ips"]] == ["4"] and "mtu" not in ours.out["interfaces"][0]
        assert (go.lo[0], ours.lo[0]) == (False, True), "Go failed before touching lo"
    elif kind == "code-7-not-999":
        assert (go.code, ours.code) == (999, 7) and go.out["msg"].startswith("failed to parse prevResult"), go
        assert ours.out["msg"].startswith("invalid CIDR 'nope' at prevResult.ips[0].address") and ours.lo == go.lo
    elif kind == "code-3-not-999":
        assert (go.code, ours.code) == (999, 3) and go.out["msg"].startswith("failed to Statfs"), go
        msg = ours.out["msg"]
        assert msg.startswith("network namespace '/run/netns/") and msg.endswith("-gone' does not exist"), msg
        assert ours.lo == go.lo
    elif kind == "code-4-not-999":
        assert (go.code, ours.code) == (999, 4) and go.out["msg"].startswith("unknown FS magic"), go
        assert "is not a network namespace" in ours.out["msg"] and ours.lo == go.lo
    elif kind == "del-not-a-netns-is-gone":   # ours: an unmounted netns file is a namespace already gone
        assert go.code == 999 and go.out["msg"].startswith("unknown FS magic"), go
        assert (ours.status, ours.out) == (0, None), ours
    elif kind == "speaks-1.1.0":              # ours: the 1.0.0 result relabelled, dns omitted when empty
        assert go.code == 1 and go.out["msg"] == "incompatible CNI versions", go
        assert ours.status == 0 and ours.lo == (True, ("127.0.0.1/8", "::1/128")), ours
    elif kind == "gc-status":                 # 1.1.1 predates GC/STATUS; v1.9.x and we succeed, no output
        assert go.code == 4 and go.out["msg"].startswith("unknown CNI_COMMAND"), go
        assert (ours.status, ours.out, ours.lo) == (0, None, go.lo)
    elif kind == "own-netns-refused":         # 1.1.1 sets the node's own lo down; we refuse (code 8)
        assert (go.status, go.out, go.lo[0]) == (0, None, False), go
        assert (ours.code, ours.lo[0]) == (8, True), ours
    else:
        raise AssertionError(f"unknown expectation {kind!r}")


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_side_by_side(dist_bin: Path, go_bin: Path, host_ns: Netns, tmp_path: Path, case: Case) -> None:
    plain = tmp_path / "plain-file"
    plain.write_text("")
    pod_name = unique_name("lopod")
    go = answer(go_bin, case, host_ns, pod_name, plain)
    ours = answer(dist_bin / "loopback", case, host_ns, pod_name, plain)
    if case.expect == "same":
        assert (ours.status, comparable(ours), ours.lo) == (go.status, go.out, go.lo), f"\nGo:   {go}\nours: {ours}"
    elif case.expect == "same-code":
        assert (ours.status, ours.code, ours.lo) == (go.status, go.code, go.lo), f"\nGo:   {go}\nours: {ours}"
    else:
        check_difference(case, go, ours)


def test_1_1_0_result_is_the_1_0_0_result_relabelled(dist_bin: Path, go_bin: Path, host_ns: Netns,
                                                     tmp_path: Path) -> None:
    """What v1.9.x prints at 1.1.0 (its 1.1.0 types omit the empty dns), checked against 1.1.1's 1.0.0 answer."""
    name = unique_name("lopod")
    go = answer(go_bin, Case("go-1.0.0", "ADD", conf("1.0.0")), host_ns, name, tmp_path)
    ours = answer(dist_bin / "loopback", Case("ours-1.1.0", "ADD", conf("1.1.0")), host_ns, name, tmp_path)
    assert go.out["dns"] == {} and ours.status == 0
    assert ours.out == {**without(go.out, "dns"), "cniVersion": "1.1.0"} and ours.lo == go.lo


def test_every_documented_difference_has_a_case() -> None:
    """A difference listed in check_difference without a case would never be checked."""
    kinds = {case.expect for case in CASES} - {"same", "same-code"}
    assert kinds == {"spec-shape-0.3-0.4", "spec-shape-0.1-0.2", "ips-version-recomputed", "prevResult-converted",
                     "code-7-not-999", "code-3-not-999", "code-4-not-999", "del-not-a-netns-is-gone", "speaks-1.1.0",
                     "gc-status",
                     "own-netns-refused"}
    assert len({case.id for case in CASES}) == len(CASES)
