"""portmap's effects on the host besides the firewall: the lock, route_localnet, conntrack, logging.

Everything goes through a `Host`, so tests can inject fake programs, a temporary lock file and sysctl root; the
firewall backends (common.firewall.backend) it makes run through the same programs.
"""
from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # the typing module costs ~4 ms per plugin start; annotations are strings
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from common.config import IPInterface

from common import exec as execs
from common import flock
from common.errors import CniError, Code
from common.record import field, record
from common.scoped import contextmanager

LOCK_PATH = "/run/pycni/portmap.lock"
LOCK_TIMEOUT = 10.0


def _log(text: str) -> None:
    sys.stderr.write(f"portmap: {text}\n")


@record(frozen=True)
class Host:
    programs: execs.Programs = execs.SYSTEM
    lock_path: str = LOCK_PATH
    lock_timeout: float = LOCK_TIMEOUT
    sysctl_root: str = "/proc/sys"
    log: Callable[[str], None] = field(default=_log)

    def run(self, argv: Sequence[str], *, needed_by: str) -> execs.Completed:
        return self.programs.run(argv, needed_by=needed_by)


@contextmanager
def locked(host: Host) -> Iterator[None]:
    """Exclusive flock serialising our read-modify-write of the shared chains (two ADDs that both read
    "jump missing" would otherwise both add it). Waits at most lock_timeout, then code 11."""
    try:
        os.makedirs(os.path.dirname(host.lock_path), mode=0o755, exist_ok=True)
        fd = os.open(host.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        raise CniError(Code.IO_FAILURE, f"cannot open the lock {host.lock_path}: {exc.strerror}") from None
    try:
        _acquire(fd, host)
        yield
    finally:
        os.close(fd)   # closing releases the lock


def lock_timeout(host: Host) -> float:
    """host.lock_timeout, or PYCNI_LOCK_TIMEOUT seconds (as host-local)."""
    return flock.timeout_from_env(os.environ, host.lock_timeout)


def _acquire(fd: int, host: Host) -> None:
    flock.acquire(fd, timeout=lock_timeout(host), what=f"the portmap lock {host.lock_path}")


def start_route_lookup(host: Host, container_ip: str) -> execs.Started:
    """enable_route_localnet's `ip route get`, started now: it runs while ADD takes its lock and reads its chains."""
    return host.programs.start(["ip", "-o", "route", "get", container_ip], needed_by="portmap snat (route_localnet)")


def enable_route_localnet(host: Host, lookup: execs.Started) -> None:
    """Let 127.0.0.1 cross to the container: route_localnet=1 on the host interface routing to it (`lookup`:
    start_route_lookup's)."""
    done = lookup.collect(execs.TIMEOUT)
    if done.status != 0:
        return   # no route: nothing to enable, as the reference
    words = done.stdout.decode(errors="replace").split()
    if "dev" not in words[:-1]:
        return
    dev = words[words.index("dev") + 1]
    path = os.path.join(host.sysctl_root, "net/ipv4/conf", dev, "route_localnet")
    try:
        with open(path) as f:
            current = f.read().strip()
        if current != "1":
            with open(path, "w") as f:
                f.write("1")
    except OSError as exc:
        raise CniError(Code.INTERNAL, f"unable to enable route_localnet on {dev}: {exc.strerror}") from None


def flush_udp_conntrack(host: Host, ports: list[int], families: list[int], *,
                        replies_from: Sequence[IPInterface] = ()) -> None:
    """Forget UDP flows to the host ports so that new packets meet the new rules. ADD: all flows of the
    ports' families. DEL: only the flows the container answered (`replies_from` its addresses, when known), not
    those of another container mapped on the same port. Only logged on failure; conntrack exits 1 when it
    deleted nothing."""
    scopes: list[tuple[int, list[str]]] = [(ip.version, ["--reply-src", str(ip.ip)]) for ip in replies_from]
    for family, only in scopes or [(f, []) for f in families]:
        for port in dict.fromkeys(ports):
            argv = ["conntrack", "-D", "-f", "ipv4" if family == 4 else "ipv6", "-p", "udp",
                    "--orig-port-dst", str(port), *only]
            try:
                done = host.run(argv, needed_by="portmap (UDP conntrack cleanup)")
            except CniError as exc:
                host.log(f"failed to delete stale UDP conntrack entries for port {port}: {exc.msg}")
                return
            if done.status not in (0, 1):
                text = (done.stderr or b"").decode(errors="replace").strip()
                host.log(f"failed to delete stale UDP conntrack entries for port {port}: {text}")
