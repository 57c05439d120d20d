"""The agent's iptables rules, each chain rewritten whole by one `iptables-restore --noflush` (the `:CHAIN` line
flushes it), plus one jump per chain, added only when `-C` does not find it.

    nat    PYCNI-OVERLAY-POSTRTG  (--ip-masq) masquerade pod traffic leaving the cluster network, never pod-to-pod
                                  (flannel's FLANNEL-POSTRTG)
    filter PYCNI-OVERLAY-FWD      (on unless --no-iptables-forward-rules) accept forwarding from and to the cluster
                                  network, for hosts whose FORWARD policy is DROP (flannel's FLANNEL-FWD)
"""
from __future__ import annotations

import subprocess

CHAIN = "PYCNI-OVERLAY-POSTRTG"
FORWARD_CHAIN = "PYCNI-OVERLAY-FWD"
COMMENT = "pycni-overlay masquerade"
FORWARD_COMMENT = "pycni-overlay forward"


def rules(network: str, subnet: str) -> str:
    """The nat chain as iptables-restore input (pure)."""
    return "\n".join([
        "*nat",
        f":{CHAIN} - [0:0]",
        f"-A {CHAIN} -s {network} -d {network} -m comment --comment \"{COMMENT}\" -j RETURN",
        f"-A {CHAIN} ! -s {network} -d {subnet} -m comment --comment \"{COMMENT}\" -j RETURN",
        f"-A {CHAIN} -s {network} ! -d 224.0.0.0/4 -m comment --comment \"{COMMENT}\" -j MASQUERADE --random-fully",
        "COMMIT", ""])


def forward_rules(network: str) -> str:
    """The filter chain as iptables-restore input (pure)."""
    return "\n".join([
        "*filter",
        f":{FORWARD_CHAIN} - [0:0]",
        f"-A {FORWARD_CHAIN} -s {network} -m comment --comment \"{FORWARD_COMMENT}\" -j ACCEPT",
        f"-A {FORWARD_CHAIN} -d {network} -m comment --comment \"{FORWARD_COMMENT}\" -j ACCEPT",
        "COMMIT", ""])


def ensure(network: str, subnet: str, *, masquerade: bool = True, forward: bool = False) -> None:
    """Raises OSError naming the failing command (the agent then exits 1 before it is ready)."""
    script = (rules(network, subnet) if masquerade else "") + (forward_rules(network) if forward else "")
    _run(["iptables-restore", "--noflush", "-w", "5"], script.encode())
    if masquerade:
        _ensure_jump("nat", ["POSTROUTING", "-m", "comment", "--comment", COMMENT, "-j", CHAIN])
    if forward:
        _ensure_jump("filter", ["FORWARD", "-m", "comment", "--comment", FORWARD_COMMENT, "-j", FORWARD_CHAIN])


def _ensure_jump(table: str, jump: list[str]) -> None:
    if subprocess.run(["iptables", "-w", "5", "-t", table, "-C", *jump], capture_output=True).returncode != 0:
        _run(["iptables", "-w", "5", "-t", table, "-I", *jump])


def _run(argv: list[str], stdin: bytes = b"") -> None:
    done = subprocess.run(argv, input=stdin, capture_output=True)
    if done.returncode != 0:
        raise OSError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.decode(errors='replace').strip()}")
