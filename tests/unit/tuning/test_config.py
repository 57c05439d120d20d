"""tuning's config, sysctl keys, allowlist and restore file: pure, no root."""
from __future__ import annotations

import re

import pytest

from common.config import base_netconf
from common.errors import CniError
from tuning import config, regexp, restore, sysctls
from tuning.config import Setting, Sysctl, TuningConf


def conf(**keys):
    return base_netconf({"cniVersion": "1.0.0", "name": "net", "type": "tuning", **keys})


def parsed(cni_args: str = "", **keys) -> TuningConf:
    return config.parse(conf(**keys), cni_args)


def refused(cni_args: str = "", **keys) -> tuple[int, str]:
    with pytest.raises(CniError) as caught:
        parsed(cni_args, **keys)
    return caught.value.code, caught.value.msg


# --- precedence --------------------------------------------------------------------------------------------

MAC_TOP, MAC_ENV, MAC_RT, MAC_ARGS = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"


@pytest.mark.parametrize("keys,cni_args,expected", [
    ({"mac": MAC_TOP}, "", (MAC_TOP, "mac")),
    ({"mac": MAC_TOP}, f"MAC={MAC_ENV}", (MAC_ENV, "CNI_ARGS MAC")),
    ({"mac": MAC_TOP, "runtimeConfig": {"mac": MAC_RT}}, f"MAC={MAC_ENV}", (MAC_RT, "runtimeConfig.mac")),
    ({"mac": MAC_TOP, "runtimeConfig": {"mac": MAC_RT}, "args": {"cni": {"mac": MAC_ARGS}}}, f"MAC={MAC_ENV}",
     (MAC_ARGS, "args.cni.mac")),
    ({"mac": MAC_TOP, "runtimeConfig": {"mac": ""}}, "", (MAC_TOP, "mac")),      # empty capability: no override
    ({"mac": MAC_TOP, "args": {"cni": {"mac": ""}}}, "", None),                   # empty args.cni.mac unsets
    ({"mac": MAC_TOP}, "IgnoreUnknown=1;K8S_POD_NAME=x", (MAC_TOP, "mac")),
    ({"MAC": "C2-B0-57-49-47-F2"}, "", ("c2:b0:57:49:47:f2", "MAC")),             # Go's folding and forms
    ({"mac": "c2b0.5749.47f2"}, "", ("c2:b0:57:49:47:f2", "mac")),
], ids=["top", "cni-args", "capability", "args-cni", "empty-capability", "empty-args-cni", "ignore-unknown",
        "key-case-dashes", "dotted-form"])
def test_mac_precedence(keys, cni_args, expected) -> None:
    mac = parsed(cni_args, **keys).mac
    assert (None if mac is None else (mac.value, mac.source)) == expected


def test_args_cni_override_the_top_level_keys() -> None:
    got = parsed(mtu=1400, promisc=True, allmulti=False, txQLen=100,
                 args={"cni": {"mtu": 1300, "promisc": False, "allmulti": True, "txQLen": 0}})
    assert got.mtu == Setting(1300, "args.cni.mtu")
    assert got.promisc is None                      # false turns nothing on, as the reference
    assert got.allmulti == Setting(True, "args.cni.allmulti")
    assert got.txqlen == Setting(0, "args.cni.txQLen")
    assert [key for key, _ in got.link_settings()] == ["mtu", "allmulti", "txQLen"]


def test_zero_mtu_is_unset_and_defaults() -> None:
    got = parsed(mtu=0)
    assert (got.mtu, got.promisc, got.allmulti, got.txqlen, got.data_dir) == (None, None, None, None,
                                                                              "/run/cni/tuning")
    assert got.link_settings() == []


def test_args_cni_sysctl_merges_and_works_without_a_top_level_sysctl() -> None:
    """The reference panics (assignment to entry in nil map) without a top-level sysctl."""
    alone = parsed(args={"cni": {"sysctl": {"net.core.somaxconn": "600"}}})
    assert alone.sysctls == (Sysctl("net.core.somaxconn", "600", "args.cni.sysctl"),)
    merged = parsed(sysctl={"net.core.somaxconn": "500", "net.ipv4.ip_forward": "1"},
                    args={"cni": {"sysctl": {"net.core.somaxconn": "600"}}})
    assert {s.key: (s.value, s.source) for s in merged.sysctls} == {
        "net.core.somaxconn": ("600", "args.cni.sysctl"), "net.ipv4.ip_forward": ("1", "sysctl")}


def test_sysctl_keys_are_not_case_folded() -> None:
    got = parsed(sysctl={"net.ipv4.conf.IFNAME.arp_filter": "1", "net.ipv4.conf.ifname.arp_filter": "0"})
    assert [s.key for s in got.sysctls] == ["net.ipv4.conf.IFNAME.arp_filter", "net.ipv4.conf.ifname.arp_filter"]


def test_unknown_top_level_keys_are_accepted() -> None:
    assert parsed(foo={"bar": 1}, capabilities={"mac": True}).mac is None


@pytest.mark.parametrize("cni_args,keys,expected", [
    ("", {"mtu": "1500"}, (7, "expected integer at mtu, got string '1500'")),
    ("", {"mtu": -1}, (7, "-1 out of range at mtu: expected 0..2147483647")),
    ("", {"mtu": 1500.5}, (7, "expected integer at mtu, got number 1500.5")),
    ("", {"txQLen": 2**32}, (7, "4294967296 out of range at txQLen: expected 0..4294967295")),
    ("", {"promisc": "yes"}, (7, "expected boolean at promisc, got string 'yes'")),
    ("", {"args": {"cni": {"allmulti": 1}}}, (7, "expected boolean at args.cni.allmulti, got number 1")),
    ("", {"mac": "zz"}, (7, "invalid MAC address 'zz' at mac")),
    ("", {"mac": 5}, (7, "expected string at mac, got number 5")),
    ("", {"runtimeConfig": {"mac": "02:00:00:00:00"}},
     (7, "invalid MAC address '02:00:00:00:00' at runtimeConfig.mac")),
    ("MAC=nope", {}, (7, "invalid MAC address 'nope' at CNI_ARGS MAC")),
    ("K8S_POD_NAME=x", {}, (4, "unknown CNI_ARGS key 'K8S_POD_NAME' (known: MAC; set IgnoreUnknown=1 to ignore "
                               "unknown keys)")),
    ("x", {}, (4, "invalid CNI_ARGS pair 'x': expected KEY=VALUE")),
    ("", {"sysctl": {"net.core.somaxconn": 600}},
     (7, "expected string at sysctl['net.core.somaxconn'], got number 600")),
    ("", {"sysctl": ["net.core.somaxconn"]}, (7, "expected object at sysctl, got list [\"net.core.somaxconn\"]")),
    ("", {"dataDir": 5}, (7, "expected string at dataDir, got number 5")),
], ids=["mtu-string", "mtu-negative", "mtu-fraction", "txqlen-too-big", "promisc-string", "allmulti-number",
        "mac-invalid", "mac-number", "capability-mac-short", "cni-args-mac", "cni-args-unknown", "cni-args-pair",
        "sysctl-value-number", "sysctl-list", "datadir-number"])
def test_config_errors(cni_args, keys, expected) -> None:
    assert refused(cni_args, **keys) == expected


def test_data_dir_for_del_falls_back_instead_of_refusing() -> None:
    assert config.data_dir(conf(dataDir=5)) == "/run/cni/tuning"
    assert config.data_dir(conf(dataDir="/tmp/x")) == "/tmp/x"


# --- sysctl keys ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("key,ifname,path", [
    ("net.core.somaxconn", "eth0", "/proc/sys/net/core/somaxconn"),
    ("net/core/somaxconn", "eth0", "/proc/sys/net/core/somaxconn"),
    ("net.ipv4.conf.IFNAME.arp_filter", "eth0", "/proc/sys/net/ipv4/conf/eth0/arp_filter"),
    ("net.ipv4.conf.IFNAME.arp_filter", "eth0.100", "/proc/sys/net/ipv4/conf/eth0.100/arp_filter"),  # VLAN name
    ("net.ipv6.conf.IFNAME.IFNAME", "a", "/proc/sys/net/ipv6/conf/a/IFNAME"),                 # the first only
    ("/net/core/somaxconn", "eth0", "/proc/sys/net/core/somaxconn"),
    ("net/core/../../kernel/hostname", "eth0", "/proc/sys/net/core/kernel/hostname"),   # dots are slashes first
], ids=["dotted", "slashed", "ifname", "vlan-ifname", "first-ifname-only", "leading-slash", "no-dot-dot"])
def test_sysctl_files(key, ifname, path) -> None:
    assert sysctls.resolve(Sysctl(key, "1", "sysctl"), ifname) == path


@pytest.mark.parametrize("key,path", [
    ("kernel.hostname", "/proc/sys/kernel/hostname"),
    ("net", "/proc/sys/net"),
    ("netfoo.bar", "/proc/sys/netfoo/bar"),
])
def test_only_net_sysctls(key, path) -> None:
    with pytest.raises(CniError) as caught:
        sysctls.resolve(Sysctl(key, "1", "args.cni.sysctl"), "eth0")
    assert (caught.value.code, caught.value.msg) == (
        7, f"invalid net sysctl key {key!r} at args.cni.sysctl: it is {path}, and only keys under /proc/sys/net/ "
           "(per network namespace) may be set")


ALLOWLIST = "\n  ^net\\.ipv4\\.conf\\.all\\.[a-z_]*$ \n\n^net\\.ipv4\\.conf\\.IFNAME\\.[a-z_]*$\n"


def test_allowlist_allows_by_configured_key() -> None:
    allowed = (Sysctl("net.ipv4.conf.all.arp_filter", "1", "sysctl"),
               Sysctl("net.ipv4.conf.IFNAME.arp_filter", "1", "args.cni.sysctl"))
    sysctls.check_allowed(allowed, ALLOWLIST)
    with pytest.raises(CniError) as caught:
        sysctls.check_allowed((*allowed, Sysctl("net.core.somaxconn", "1", "sysctl")), ALLOWLIST, "/x/allow.conf")
    assert (caught.value.code, caught.value.msg) == (
        7, "sysctl 'net.core.somaxconn' at sysctl is not allowed: the allowlist /x/allow.conf allows only "
           "['^net\\\\.ipv4\\\\.conf\\\\.all\\\\.[a-z_]*$', '^net\\\\.ipv4\\\\.conf\\\\.IFNAME\\\\.[a-z_]*$']")


def test_allowlist_bad_pattern() -> None:
    with pytest.raises(CniError) as caught:
        sysctls.check_allowed((Sysctl("net.core.somaxconn", "1", "sysctl"),), "net.(core\n", "/a")
    assert (caught.value.code, caught.value.msg) == (
        7, "invalid pattern 'net.(core' in the sysctl allowlist /a: error parsing regexp: missing closing ): "
           "`net.(core`")


def test_empty_allowlist_allows_nothing_but_an_empty_sysctl_set() -> None:
    sysctls.check_allowed((), "")
    with pytest.raises(CniError):
        sysctls.check_allowed((Sysctl("net.core.somaxconn", "1", "sysctl"),), "\n\n")


# --- the allowlist's regexps, against Python's re on the same (RE2-compatible) patterns ------------------------

PATTERNS = [
    r"^net\.ipv4\.conf\.all\.[a-z_]*$", r"^net\.ipv4\.conf\.IFNAME\.[a-z_]*$", r"somaxconn", r"^net\.core\.",
    r"^net\.(ipv4|ipv6)\.conf\.[^.]+\.(accept_ra|forwarding)$", r"(?i)^NET\.CORE\.SOMAXCONN$", r"^net\.ipv4\.ip_\w+$",
    r"^net\..{3,5}\.", r"a{2}", r"^(ab)+$", r"^net\.ipv4\.tcp_(r|w)mem?$", r"\bcore\b", r"^\w+\.\d*$",
    r"[[:alpha:]]+\.x",
    r"^(?:net|kernel)\.x?$", r"ipv[46]", r"^$", r"\.\*", r"[\]a]b", r"x{2,}y", r"x{1,3}?$", r"(?i:AB)c", r"\x41",
    r"[^\s]+\s", r"^net\.ipv4\.conf\.eth0/100\.", r"^.*$", r"a|b|^c", r"\Bre", r"(a*)*b", r"^x{0}y",
]
KEYS = ["net.ipv4.conf.all.arp_filter", "net.ipv4.conf.IFNAME.arp_filter", "net.core.somaxconn", "kernel.hostname",
        "net.ipv6.conf.eth0.accept_ra", "net.ipv4.conf.eth0/100.forwarding", "net.ipv4.ip_forward", "aa", "ababab",
        "abab a", "net.ipv4.tcp_rmem", "net.ipv4.tcp_wme", "core.5", "", "net.x", "xxxy", "xxx", "ABc", "abc", "A",
        "]b", ".*", "aaaa", "b", "c", "xc", "y", "net.ipv4.conf.IFNAME.arp_filter2", "NET.core.somaxconn"]


@pytest.mark.parametrize("pattern", PATTERNS)
def test_regexp_agrees_with_re(pattern) -> None:
    ours = regexp.compile(pattern)
    python = re.compile(pattern.replace("[[:alpha:]]", "[A-Za-z]"))
    assert {key: ours.search(key) for key in KEYS} == {key: bool(python.search(key)) for key in KEYS}


@pytest.mark.parametrize("pattern,message", [
    ("a(b", "missing closing ): `a(b`"), ("a)b", "unexpected ): `a)b`"), ("[a-", "missing closing ]: `[a-`"),
    ("*a", "missing argument to repetition operator: `*`"), ("a**", "invalid nested repetition operator: `**`"),
    (r"\q", "invalid escape sequence: `\\q`"), ("[z-a]", "invalid character class range: `z-a`"),
    ("a{2,1}", "invalid repeat count: `{2,1}`"), ("a{1001}", "invalid repeat count: `{1001}`"),
    ("(?z)", "invalid or unsupported Perl syntax: `(?z)`"),
])
def test_regexp_errors_as_go_words_them(pattern, message) -> None:
    with pytest.raises(regexp.RegexpError) as caught:
        regexp.compile(pattern)
    assert str(caught.value) == f"error parsing regexp: {message}"


def test_regexp_literal_brace_and_lazy_forms() -> None:
    assert regexp.compile("a{x").search("a{x") and regexp.compile("a+?b").search("aab")
    assert not regexp.compile("^a{2}$").search("aaa")


# --- the restore file ------------------------------------------------------------------------------------------

STATE = {"mac": "fe:9b:10:e4:da:30", "promisc": False, "mtu": 1500, "allmulti": False, "txQLen": 1000}


def test_restore_file_bytes_as_the_reference_writes_them() -> None:
    saved = restore.originals(["allmulti", "mtu", "mac", "promisc"], STATE, None)
    assert restore.render(saved) == (b'{\n "mac": "fe:9b:10:e4:da:30",\n "promisc": false,\n "mtu": 1500,\n'
                                     b' "allmulti": false\n}')
    assert restore.render(restore.originals(["txQLen"], STATE, None)) == b'{\n "txQLen": 1000\n}'
    assert restore.render(restore.originals([], STATE, None)) == b"{}"


def test_a_second_add_keeps_the_true_originals() -> None:
    first = restore.originals(["mtu"], STATE, None)
    tuned = {**STATE, "mtu": 1300, "mac": "02:00:00:00:00:01"}
    second = restore.originals(["mtu", "mac"], tuned, first)
    assert second == {"mac": "02:00:00:00:00:01", "mtu": 1500}


def test_omitempty_as_go() -> None:
    assert restore.originals(["mac", "mtu"], {**STATE, "mac": "", "mtu": 0}, None) == {}


@pytest.mark.parametrize("data,expected", [
    (b'{\n "mac": "fe:9b:10:e4:da:30",\n "promisc": false,\n "mtu": 1500,\n "allmulti": true\n}',
     [("mtu", 1500), ("mac", "fe:9b:10:e4:da:30"), ("promisc", False), ("allmulti", True)]),
    (b'{"MTU": 1400, "txqlen": 5, "mac": "", "promisc": null, "extra": 1}', [("mtu", 1400), ("txQLen", 5)]),
    (b"{}", []),
])
def test_restore_steps_in_the_reference_order(data, expected) -> None:
    assert restore.restore_steps(restore.parse(data)) == expected


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b'{"mtu": "1500"}', b'{"promisc": 1}', b'{"mtu": true}'])
def test_unusable_restore_files(data) -> None:
    with pytest.raises(ValueError):
        restore.parse(data)


# --- CHECK's messages ----------------------------------------------------------------------------------------

def test_check_messages_name_values_not_pointers() -> None:
    assert restore.sysctl_mismatch("/proc/sys/net/core/somaxconn", "601", "600\n") == (
        "Error: Tuning configured value of /proc/sys/net/core/somaxconn is 601, current value is 600")
    assert restore.sysctl_mismatch("/p", "4096 87380 6291456", "4096\t87380\t6291456\n") is None
    cases = [
        (TuningConf(mac=Setting("c2:b0:57:49:47:f2", "mac")), {"mac": "c2:b0:57:49:47:f1"},
         "Error: Tuning configured Ethernet of eth0 is c2:b0:57:49:47:f2, current value is c2:b0:57:49:47:f1"),
        (TuningConf(promisc=Setting(True, "promisc")), {"promisc": False},
         "Error: Tuning link eth0 configured promisc is true, current value is 0"),
        (TuningConf(mtu=Setting(1300, "mtu")), {"mtu": 1400},
         "Error: Tuning configured MTU of eth0 is 1300, current value is 1400"),
        (TuningConf(allmulti=Setting(False, "allmulti")), {"allmulti": True},
         "Error: Tuning configured all-multicast mode of eth0 is false, current value is true"),
        (TuningConf(txqlen=Setting(500, "txQLen")), {"txQLen": 1000},
         "Error: Tuning configured Transmit Queue Length of eth0 is 500, current value is 1000"),
    ]
    for tuning, differs, message in cases:
        assert restore.link_mismatch(tuning, {**STATE, **differs}, "eth0") == message
        assert restore.link_mismatch(tuning, {**STATE, **{k: getattr(tuning, k if k != "txQLen" else "txqlen")
                                                              .value for k in differs}}, "eth0") is None
    # promisc is compared only when configured on: something else turning it on does not fail CHECK
    assert restore.link_mismatch(TuningConf(), {**STATE, "promisc": True}, "eth0") is None
