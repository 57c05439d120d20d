"""resolv.conf -> the result's DNS (`ipam.resolvConf`), read as the reference reads it."""
from __future__ import annotations

from common.config import describe
from common.errors import ConfigError
from common.types import DNS

from . import files


def parse_resolv_conf(text: str) -> DNS:
    """nameserver (one each), domain (the last one wins), search and options (all words, accumulated)."""
    nameservers: list[str] = []
    domain = ""
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 2 or fields[0][0] in "#;":
            continue
        keyword, values = fields[0], fields[1:]
        if keyword == "nameserver":
            nameservers.append(values[0])
        elif keyword == "domain":
            domain = values[0]
        elif keyword == "search":
            search.extend(values)
        elif keyword == "options":
            options.extend(values)
    return DNS(nameservers=tuple(nameservers), domain=domain, search=tuple(search), options=tuple(options))


def read_resolv_conf(path: str) -> DNS:
    """The file named by the config (a symlink is fine, /etc/resolv.conf often is one); a FIFO or device there is
    a wrong value of the key, refused without waiting on it."""
    try:
        return parse_resolv_conf(files.read_regular(path, follow=True).decode("utf-8", "replace"))
    except OSError as exc:
        raise ConfigError(f"cannot read resolvConf {describe(path)} at ipam.resolvConf: "
                          f"{exc.strerror or exc}") from None
