"""Chain names and rule comments exactly as the reference plugins write them (they must never change:
a Go plugin has to find and delete what we created, and we what it created)."""
from __future__ import annotations

try:    # the builtin SHA-512 needs no OpenSSL: hashlib's _hashlib costs ~3 ms per plugin start
    from _sha512 import sha512
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha512

MAX_CHAIN = 28  # iptables chain names are at most 28 characters


def chain_name(network: str, container_id: str, prefix: str = "") -> str:
    """Go's utils.FormatChainName / MustFormatChainNameWithPrefix: "CNI-" + prefix + sha512 hex, cut to 28."""
    digest = sha512((network + container_id).encode()).hexdigest()
    head = "CNI-" + prefix
    return head + digest[:MAX_CHAIN - len(head)]


def go_quote(text: str) -> str:
    """Go's %q for the strings that reach comments (network names and container IDs are validated ASCII)."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def trim_comment(comment: str, limit: int = 255) -> str:
    """iptables comments are at most 256 bytes; the reference cuts to 253 + '...'."""
    return comment if len(comment) <= limit else comment[:limit - 2] + "..."
