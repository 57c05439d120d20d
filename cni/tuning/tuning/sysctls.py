"""Sysctl keys to /proc/sys files, and the allowlist. Pure.

A key is dotted (`net.ipv4.conf.IFNAME.arp_filter`) or slashed (`net/core/somaxconn`). As the reference since
v1.2.0: dots become slashes first, then the first `IFNAME` becomes CNI_IFNAME, so a VLAN name such as `eth0.100`
stays one path component. The file must lie under /proc/sys/net/ once the path is cleaned (Go's filepath.Join):
net sysctls are per network namespace, anything else would change the node.
"""
from __future__ import annotations

import posixpath

from common.errors import ConfigError

from .config import Sysctl

ROOT = "/proc/sys"
NET = "/proc/sys/net/"
ALLOWLIST = "/etc/cni/tuning/allowlist.conf"


def file_of(key: str, ifname: str) -> str:
    """The /proc/sys file of `key` for the interface `ifname` (no check of where it lies)."""
    return posixpath.normpath(ROOT + "/" + key.replace(".", "/").replace("IFNAME", ifname, 1))


def resolve(sysctl: Sysctl, ifname: str) -> str:
    """The file of a configured sysctl; code 7 naming the key when it is no net sysctl."""
    path = file_of(sysctl.key, ifname)
    if not path.startswith(NET):
        raise ConfigError(f"invalid net sysctl key {sysctl.key!r} at {sysctl.source}: it is {path}, and only "
                          f"keys under {NET} (per network namespace) may be set")
    return path


def allowlist_patterns(text: str) -> list[str]:
    """The allowlist file's patterns: one per line, trimmed, blank lines skipped."""
    return [line.strip() for line in text.split("\n") if line.strip()]


def check_allowed(sysctls: tuple[Sysctl, ...], text: str, source: str = ALLOWLIST) -> None:
    """Every configured key (as written: dotted, a literal IFNAME) must match one pattern of the allowlist (Go
    regexps, unanchored); code 7 naming the first key that matches none, or a pattern that does not parse."""
    if not sysctls:
        return
    from . import regexp
    patterns = allowlist_patterns(text)
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(regexp.compile(pattern))
        except regexp.RegexpError as exc:
            raise ConfigError(f"invalid pattern {pattern!r} in the sysctl allowlist {source}: {exc}") from None
    for sysctl in sysctls:
        if not any(matcher.search(sysctl.key) for matcher in compiled):
            raise ConfigError(f"sysctl {sysctl.key!r} at {sysctl.source} is not allowed: the allowlist {source} "
                              f"allows only {patterns}")
