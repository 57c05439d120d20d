"""-p [NETWORK=][HOSTIP:]HOSTPORT:PORT[/PROTO] (Docker's syntax; an IPv6 host IP in brackets) -> a portMappings
entry, and the network it is for (`--mac NETWORK=MAC` likewise)."""
from __future__ import annotations

import ipaddress
import re
from typing import Any

from .errors import UserError

PROTOCOLS = ("tcp", "udp", "sctp")
_SPEC = re.compile(r"^(?:(?P<ip>\[[^\]]*\]|[^:\[\]]+):)?(?P<host>[^:]+):(?P<port>[^:/]+)(?:/(?P<proto>.*))?$")


def _port(text: str, what: str, spec: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise UserError(f"invalid {what} {text!r} in -p {spec!r}: expected a number from 1 to 65535")
    return int(text)


def parse(spec: str) -> dict[str, Any]:
    match = _SPEC.match(spec)
    if match is None:
        raise UserError(f"invalid -p {spec!r}: expected [HOSTIP:]HOSTPORT:PORT[/tcp|udp|sctp]")
    proto = (match["proto"] if match["proto"] is not None else "tcp").lower()
    if proto not in PROTOCOLS:
        raise UserError(f"invalid protocol {match['proto']!r} in -p {spec!r}: expected one of {', '.join(PROTOCOLS)}")
    mapping: dict[str, Any] = {"hostPort": _port(match["host"], "host port", spec),
                               "containerPort": _port(match["port"], "container port", spec), "protocol": proto}
    if match["ip"] is not None:
        text = match["ip"].strip("[]")
        try:
            mapping["hostIP"] = str(ipaddress.ip_address(text))
        except ValueError:
            raise UserError(f"invalid host IP {text!r} in -p {spec!r}") from None
    return mapping


_NETWORK = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")


def qualified(spec: str, flag: str) -> tuple[str | None, str]:
    """`NETWORK=VALUE` -> (NETWORK, VALUE); a value without `=` is for the first --network: (None, VALUE)."""
    if "=" not in spec:
        return None, spec
    network, _, value = spec.partition("=")
    if not _NETWORK.match(network):
        raise UserError(f"invalid network name {network!r} in {flag} {spec!r}: expected {flag} NETWORK=VALUE")
    return network, value


def publish(spec: str) -> tuple[str | None, dict[str, Any]]:
    """-p [NETWORK=][HOSTIP:]HOSTPORT:PORT[/PROTO]."""
    network, value = qualified(spec, "-p")
    return network, parse(value)
