"""The CNI protocol cases as data: one table, run in three places.

- in-process, through `common.skel.dispatch` with a toy plugin (tests/unit/common/test_skel.py);
- against every shipped executable, dist/cni-bin/<plugin> (tests/e2e/test_executables.py);
- in a bare `python -I -S` over each plugin's main.py (tests/unit/test_startup_budget.py, the malformed ones).

A case is an environment, stdin bytes and the expected answer: a spec error (exit 1, one JSON object on stdout
with the spec's code, the cniVersion it is labelled with and the start of its message), the VERSION output, or
the about text (no CNI_COMMAND). Every case is decided by the protocol layer before a plugin's handler would run,
so the same answer is right for every plugin; an input that slips through reaches a handler and fails the case.

Why three places: the frozen build once answered `{not json` with code 999 (`_json` raised through
json.decoder, a module the executables never imported) while the in-process tests passed, because pytest had
imported json. `check_result_shape` is the matching check for results, per version family.
"""
from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field

from .cni import cni_env

# The spec's versions, as a plugin must report them (stated here, not read from common.version).
SPEC_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")
CURRENT = "1.1.0"
VERSION_OUTPUT = {"cniVersion": CURRENT, "supportedVersions": list(SPEC_VERSIONS)}
VERBS = ("ADD", "DEL", "CHECK", "GC", "STATUS")
# What each verb needs (libcni's skel): reported as missing in this order.
REQUIRED = {"ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
            "DEL": ("CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
            "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
            "GC": ("CNI_PATH",), "STATUS": ("CNI_PATH",)}
ERROR_KEYS = {"cniVersion", "code", "msg", "details"}
DECODE = "failed to decode network configuration"

CODE_VERSION, CODE_ENV, CODE_DECODE, CODE_CONFIG = 1, 4, 6, 7


def conf(version: str = "1.1.0", **extra: object) -> bytes:
    """A config the protocol layer accepts at `version` ("type" is no plugin: nothing here reaches one)."""
    return json.dumps({"cniVersion": version, "name": "protonet", "type": "pycni-protocol-case", **extra}).encode()


def env(command: str, **overrides: str | None) -> dict[str, str]:
    """A complete environment for `command` (no PATH: each place adds its own); an override of None removes the
    variable."""
    return cni_env(command, netns="/run/netns/pycni-no-such-netns", path=None, CNI_ARGS=None, **overrides)


@dataclass(frozen=True)
class Case:
    id: str
    env: dict[str, str]
    stdin: bytes
    answer: str = "error"         # "error", "version" (VERSION output) or "about" (no CNI_COMMAND)
    code: int | None = None       # the spec code of an error
    msg: str = ""                 # how the error message starts
    version: str = CURRENT        # the cniVersion the error is labelled with (the config's when supported)
    tags: frozenset[str] = field(default_factory=frozenset)   # "malformed": undecodable stdin


def _error(id: str, environ: dict[str, str], stdin: bytes, code: int, msg: str, version: str = CURRENT,
           *tags: str) -> Case:
    return Case(id, environ, stdin, code=code, msg=msg, version=version, tags=frozenset(tags))


def _nested(depth: int) -> bytes:
    return conf("1.0.0")[:-1] + b', "x": ' + b"[" * depth + b"]" * depth + b"}"


HUGE = conf("1.0.0", pad="x" * (4 << 20))   # 4 MiB: over the 1 MiB stdin limit (README, "Errors"; issue 8)

# Undecodable stdin: every shape is code 6, labelled with our version (the config's is unknown), never 999.
MALFORMED = {
    "empty": b"",
    "whitespace": b" \n\t ",
    "brace-not-json": b"{not json",
    "trailing-comma": b'{"a":1,}',
    "unclosed-list": b"[1,2",
    "unclosed-object": b'{"cniVersion": "1.0.0", "name": "n"',
    "unclosed-string": b'{"cniVersion": "1.0.0", "name": "n',
    "missing-colon": b'{"cniVersion" "1.0.0"}',
    "single-quotes": b"{'cniVersion': '1.0.0'}",
    "extra-data": conf("1.0.0") + b" {}",
    "bare-word": b"nul",
    "bad-escape": b'{"cniVersion": "1.0.0", "name": "n\\q"}',
    "control-char-in-string": b'{"cniVersion": "1.0.0", "name": "n\x01"}',
    "list": b"[1, 2]",
    "empty-list": b"[]",
    "string": b'"net"',
    "number": b"42",
    "null": b"null",
    "true": b"true",
    "invalid-utf8": b"\xff\xfe{",
    # (Invalid UTF-8 inside a string is not here: Go reads it as U+FFFD and so do we, see test_jsonio.)
    "utf8-bom": b"\xef\xbb\xbf" + conf("1.0.0"),
    "utf16": conf("1.0.0").decode().encode("utf-16"),
    # Go's encoding/json refuses these tokens; Python's scanner would read them as floats.
    "nan": conf("1.0.0")[:-1] + b', "mtu": NaN}',
    "infinity": conf("1.0.0")[:-1] + b', "mtu": Infinity}',
    "minus-infinity": conf("1.0.0")[:-1] + b', "mtu": -Infinity}',
    "nan-nested": conf("1.0.0")[:-1] + b', "ipam": {"ranges": [[{"subnet": NaN}]]}}',
    "nan-document": b"NaN",
    "deep-unclosed": b"[" * 100_000,
    "deep-balanced": _nested(100_000),
}

CASES: list[Case] = [
    Case("no-command-prints-about", {}, conf(), answer="about"),
    Case("version", {"CNI_COMMAND": "VERSION"}, b"", answer="version"),
    Case("version-ignores-malformed-stdin", {"CNI_COMMAND": "VERSION"}, b"{not json", answer="version"),
    Case("version-ignores-bad-env", {"CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "-bad", "CNI_IFNAME": "a/b"},
         conf("9.9.9"), answer="version"),
]

for command in ("FROB", "add", "DELETE", " ADD"):
    CASES.append(_error(f"unknown-command:{command!r}", env(command), conf(), CODE_ENV,
                        f"unknown CNI_COMMAND {command!r}"))
CASES.append(_error("unknown-command-before-stdin", env("FROB"), b"{not json", CODE_ENV, "unknown CNI_COMMAND"))

for verb, needed in REQUIRED.items():
    for var in needed:
        CASES.append(_error(f"{verb}-without-{var}", env(verb, **{var: None}), conf(), CODE_ENV,
                            f"required environment variables missing for {verb}: {var}"))
    CASES.append(_error(f"{verb}-with-empty-{needed[-1]}", env(verb, **{needed[-1]: ""}), conf(), CODE_ENV,
                        f"required environment variables missing for {verb}: {needed[-1]}"))
CASES += [
    _error("ADD-missing-two-in-order", env("ADD", CNI_PATH=None, CNI_IFNAME=None), conf(), CODE_ENV,
           "required environment variables missing for ADD: CNI_IFNAME, CNI_PATH"),
    _error("ADD-env-checked-before-stdin", env("ADD", CNI_NETNS=None), b"{not json", CODE_ENV,
           "required environment variables missing for ADD: CNI_NETNS"),
]

BAD_IDS = ("-bad", ".a", "a b", "abc\n", "../x", "a/b", "\u00e4")
BAD_IFNAMES = (("x" * 16, "longer than 15 bytes"), (".", ""), ("..", ""),
               ("a/b", "must not contain '/', ':' or whitespace"), ("a:b", ""), ("a b", ""), ("eth0\n", ""),
               ("\t", ""))
for verb in ("ADD", "DEL", "CHECK"):   # every bad value on ADD, two of each on DEL and CHECK (one check in skel)
    for cid in BAD_IDS if verb == "ADD" else BAD_IDS[2:4]:
        CASES.append(_error(f"{verb}-container-id:{cid!r}", env(verb, CNI_CONTAINERID=cid), conf(), CODE_ENV,
                            f"invalid CNI_CONTAINERID {cid!r}"))
    for ifname, problem in BAD_IFNAMES if verb == "ADD" else BAD_IFNAMES[:4:3]:
        CASES.append(_error(f"{verb}-ifname:{ifname!r}", env(verb, CNI_IFNAME=ifname), conf(), CODE_ENV,
                            f"invalid CNI_IFNAME {ifname!r}" + (f": {problem}" if problem else "")))

for version in ("9.9.9", "0.5.0", "1.2.0", "2.0.0", "1.0", "v1.0.0"):
    CASES.append(_error(f"unsupported-version:{version}", env("ADD"), conf(version), CODE_VERSION,
                        f"incompatible CNI versions: config is {version!r}"))
CASES.append(_error("unsupported-version-DEL", env("DEL"), conf("9.9.9"), CODE_VERSION,
                    "incompatible CNI versions: config is '9.9.9'"))
for verb, minimum in (("CHECK", "0.4.0"), ("GC", "1.1.0"), ("STATUS", "1.1.0")):
    for version in SPEC_VERSIONS[:SPEC_VERSIONS.index(minimum)]:
        CASES.append(_error(f"{verb}-at-{version}", env(verb), conf(version), CODE_VERSION,
                            f"config version {version!r} does not allow {verb} (needs >= {minimum})", version))

CASES += [
    _error("no-name", env("ADD"), b'{"cniVersion": "1.0.0"}', CODE_CONFIG, "missing network name at name",
           "1.0.0"),
    _error("name-number", env("ADD"), b'{"cniVersion": "1.0.0", "name": 5}', CODE_CONFIG,
           "expected string at name, got number 5", "1.0.0"),
    _error("version-number", env("ADD"), b'{"cniVersion": 1, "name": "n"}', CODE_CONFIG,
           "expected string at cniVersion, got number 1"),
]
for name in ("../etc", "a/b", "net\n", "-net", "n\u00e9t"):
    CASES.append(_error(f"name:{name!r}", env("ADD"), json.dumps({"cniVersion": "1.0.0", "name": name}).encode(),
                        CODE_CONFIG, f"invalid network name {name!r} at name", "1.0.0"))

for key, stdin in MALFORMED.items():
    CASES.append(_error(f"malformed:{key}", env("ADD"), stdin, CODE_DECODE, DECODE, CURRENT, "malformed"))
CASES += [
    _error("malformed-DEL", env("DEL"), b'{"a":1,}', CODE_DECODE, DECODE, CURRENT, "malformed"),
    _error("malformed-GC", env("GC"), b"[1,2", CODE_DECODE, DECODE, CURRENT, "malformed"),
    _error("malformed-STATUS", env("STATUS"), b"{not json", CODE_DECODE, DECODE, CURRENT, "malformed"),
    _error("malformed-before-version", env("ADD"), b'{"cniVersion": "9.9.9", x', CODE_DECODE, DECODE, CURRENT,
           "malformed"),
    _error("too-large", env("ADD"), HUGE, CODE_DECODE, "network configuration too large", CURRENT, "malformed"),
]

assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"
BY_ID = {c.id: c for c in CASES}


def check_answer(case: Case, plugin: str, status: int, stdout: str, stderr: str) -> None:
    """The answer `plugin` gave to `case` is the one the spec asks for."""
    assert "Traceback" not in stderr and "Traceback" not in stdout, stderr
    if case.answer == "about":
        assert (status, stdout) == (0, ""), (status, stdout)
        assert stderr.startswith(f"CNI {plugin} plugin (pycni)") and CURRENT in stderr, stderr
        return
    if case.answer == "version":
        assert status == 0, (status, stdout, stderr)
        assert json.loads(stdout) == VERSION_OUTPUT, stdout
        return
    assert status == 1, f"exit {status}, want 1: stdout {stdout[:300]!r} stderr {stderr[:300]!r}"
    error = json.loads(stdout)
    assert isinstance(error, dict) and set(error) <= ERROR_KEYS and {"cniVersion", "code", "msg"} <= set(error), \
        stdout
    assert (error["code"], error["cniVersion"]) == (case.code, case.version), \
        f"want code {case.code} labelled {case.version}, got {stdout}"
    assert isinstance(error["msg"], str) and error["msg"].startswith(case.msg), \
        f"want a message starting {case.msg!r}, got {error['msg']!r}"


# --- results --------------------------------------------------------------------------------------------------

LEGACY = ("0.1.0", "0.2.0")
RESULT_KEYS = {"cniVersion", "interfaces", "ips", "routes", "dns"}


def check_result_shape(data: object, version: str) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    """A result rendered at `version` has that version's shape; returns its addresses (in order).

    0.1.0/0.2.0: {ip4: {ip, gateway?, routes?}, ip6: {...}, dns?}; 0.3.x/0.4.0: {interfaces?, ips:
    [{version, address, interface?, gateway?}], routes?, dns?}; 1.x: as 0.4.0 without ips[].version."""
    assert isinstance(data, dict) and data.get("cniVersion") == version, data
    addresses = []
    if version in LEGACY:
        assert set(data) <= {"cniVersion", "ip4", "ip6", "dns"}, data
        for key, family in (("ip4", 4), ("ip6", 6)):
            if key in data:
                entry = data[key]
                assert set(entry) <= {"ip", "gateway", "routes"}, entry
                address = ipaddress.ip_interface(entry["ip"])
                assert address.version == family, entry
                if "gateway" in entry:
                    assert ipaddress.ip_address(entry["gateway"]).version == family, entry
                for route in entry.get("routes", []):
                    assert ipaddress.ip_network(route["dst"], strict=False).version == family, route
                addresses.append(address)
        return addresses
    assert set(data) <= RESULT_KEYS, data
    interfaces = data.get("interfaces", [])
    assert isinstance(interfaces, list) and all(isinstance(i.get("name"), str) and i["name"] for i in interfaces)
    for entry in data.get("ips", []):
        address = ipaddress.ip_interface(entry["address"])
        if version in ("0.3.0", "0.3.1", "0.4.0"):
            assert entry.get("version") == str(address.version), entry
        else:
            assert "version" not in entry, entry
        if "interface" in entry:
            assert 0 <= entry["interface"] < len(interfaces), (entry, interfaces)
        if "gateway" in entry:
            assert ipaddress.ip_address(entry["gateway"]).version == address.version, entry
        addresses.append(address)
    for route in data.get("routes", []):
        ipaddress.ip_network(route["dst"], strict=False)
    return addresses
