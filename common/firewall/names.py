"""Chain names and rule comments exactly as the reference plugins write them (they must never change:
a Go plugin has to find and delete what we created, and we what it created)."""
from __future__ import annotations

try:    # the builtin SHA-512 needs no OpenSSL: hashlib's _hashlib costs ~3 ms per plugin start
    from _sha512 import sha512 as sha512  # re-exported: bridge.masq hashes bytes with it
except ImportError:  # pragma: no cover - a Python built without it
    from hashlib import sha512 as sha512

MAX_CHAIN = 28  # iptables chain names are at most 28 characters


def chain_name(network: str, container_id: str, prefix: str = "") -> str:
    """Go's utils.FormatChainName / MustFormatChainNameWithPrefix: "CNI-" + prefix + sha512 hex, cut to 28."""
    digest = sha512_hex(network + container_id)
    head = "CNI-" + prefix
    return head + digest[:MAX_CHAIN - len(head)]


def sha512_hex(text: str) -> str:
    """The SHA-512 hex digest of `text`, which hashed names and tags are cut from."""
    return str(sha512(text.encode()).hexdigest())


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


IPT_COMMENT_MAX = 255  # xt_comment holds 256 bytes with the NUL; iptables cuts longer comments silently


def trim_comment(comment: str) -> str:
    """A comment as iptables stores it, hence as iptables-save shows it and as rules are matched by. The
    reference cuts comments over 255 bytes to 253 + "...", of which iptables keeps 255: 253 + ".."."""
    return comment if len(comment) <= IPT_COMMENT_MAX else comment[:IPT_COMMENT_MAX - 2] + ".."


def is_trimmed(comment: str) -> bool:
    """Whether a stored comment may be a cut one (its end, and with it a container ID's end, is lost)."""
    return len(comment) == IPT_COMMENT_MAX and comment.endswith("..")
