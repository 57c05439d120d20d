"""--ip-masq: masquerade pod traffic that leaves the cluster network, never pod-to-pod (flannel's FLANNEL-POSTRTG).

One chain, rewritten whole by one `iptables-restore --noflush` (the `:CHAIN` line flushes it), plus one jump
from POSTROUTING, added only when `-C` does not find it.
"""
from __future__ import annotations

import subprocess

CHAIN = "PYCNI-OVERLAY-POSTRTG"
COMMENT = "pycni-overlay masquerade"


def rules(network: str, subnet: str) -> str:
    """The chain as iptables-restore input (pure)."""
    return "\n".join([
        "*nat",
        f":{CHAIN} - [0:0]",
        f"-A {CHAIN} -s {network} -d {network} -m comment --comment \"{COMMENT}\" -j RETURN",
        f"-A {CHAIN} ! -s {network} -d {subnet} -m comment --comment \"{COMMENT}\" -j RETURN",
        f"-A {CHAIN} -s {network} ! -d 224.0.0.0/4 -m comment --comment \"{COMMENT}\" -j MASQUERADE --random-fully",
        "COMMIT", ""])


def ensure(network: str, subnet: str) -> None:
    """Raises OSError naming the failing command (the agent then exits 1 before it is ready)."""
    _run(["iptables-restore", "--noflush", "-w", "5"], rules(network, subnet).encode())
    jump = ["POSTROUTING", "-m", "comment", "--comment", COMMENT, "-j", CHAIN]
    if subprocess.run(["iptables", "-w", "5", "-t", "nat", "-C", *jump], capture_output=True).returncode != 0:
        _run(["iptables", "-w", "5", "-t", "nat", "-I", *jump])


def _run(argv: list[str], stdin: bytes = b"") -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode(errors='replace').strip()}")
