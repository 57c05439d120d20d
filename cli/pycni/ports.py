"""-p [HOSTIP:]HOSTPORT:PORT[/PROTO] (Docker's syntax; an IPv6 host IP in brackets) -> a portMappings entry."""
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
